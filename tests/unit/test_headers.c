/* test_headers.c - headers exchange matching and x-match validation,
 * against RabbitMQ 4.x's rules (see broker/headers.h). */
#include <math.h>
#include <stdint.h>

#include "broker/headers.h"
#include "core/buf.h"
#include "core/err.h"
#include "proto/table.h"
#include "test.h"

static wr_field_t fi(uint8_t type, int64_t v)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.v.i = v;
    return f;
}

static wr_field_t fs(uint8_t type, const char *s)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.v.bytes = wr_bytes_of(s);
    return f;
}

static wr_field_t fraw(uint8_t type, const wr_buf_t *content)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.v.bytes = (wr_bytes_t){content->p, content->len};
    return f;
}

static wr_field_t fts(uint64_t v)
{
    return wr_field_timestamp(v);
}

static wr_field_t ffloat(float v)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = 'f';
    f.v.f = v;
    return f;
}

static wr_field_t fdouble(double v)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = 'd';
    f.v.d = v;
    return f;
}

static wr_field_t fdec(uint8_t scale, uint32_t value)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = 'D';
    f.v.dec.scale = scale;
    f.v.dec.value = value;
    return f;
}

static wr_field_t fvoid(void)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = 'V';
    return f;
}

/* Appends one entry to a table being built in b. */
static void put(wr_buf_t *b, const char *key, wr_field_t f)
{
    wr_table_put_key(b, wr_bytes_of(key));
    wr_field_put(b, &f);
}

static wr_bytes_t bytes(const wr_buf_t *b)
{
    return (wr_bytes_t){b->p, b->len};
}

/* A binding (args) and a message (hdrs), rebuilt for each case. */
typedef struct pair {
    wr_buf_t args;
    wr_buf_t hdrs;
} pair_t;

static void pair_reset(pair_t *p)
{
    wr_buf_free(&p->args);
    wr_buf_free(&p->hdrs);
    wr_buf_init(&p->args);
    wr_buf_init(&p->hdrs);
}

/* -1 if the test built a malformed table, else the match result. */
static int pair_match(pair_t *p)
{
    if (wr_table_validate(bytes(&p->args), WR_TABLE_MAX_DEPTH) != 0 ||
        wr_table_validate(bytes(&p->hdrs), WR_TABLE_MAX_DEPTH) != 0)
        return -1;
    return wr_headers_match(bytes(&p->args), bytes(&p->hdrs));
}

/* One binding argument against one header, without x-match. */
static int one(wr_field_t bv, wr_field_t hv)
{
    pair_t p = {{0}, {0}};
    pair_reset(&p);
    put(&p.args, "k", bv);
    put(&p.hdrs, "k", hv);
    int r = wr_headers_match(bytes(&p.args), bytes(&p.hdrs));
    wr_buf_free(&p.args);
    wr_buf_free(&p.hdrs);
    return r;
}

static void test_headers_all_any(void)
{
    pair_t p = {{0}, {0}};

    /* Default is all. */
    pair_reset(&p);
    put(&p.args, "format", fs('S', "pdf"));
    put(&p.args, "type", fs('S', "report"));
    put(&p.hdrs, "type", fs('S', "report"));
    put(&p.hdrs, "format", fs('S', "pdf"));
    put(&p.hdrs, "extra", fi('l', 1));
    CHECK_EQ(pair_match(&p), 1);

    pair_reset(&p);
    put(&p.args, "format", fs('S', "pdf"));
    put(&p.args, "type", fs('S', "report"));
    put(&p.hdrs, "format", fs('S', "pdf"));
    CHECK_EQ(pair_match(&p), 0); /* type missing */

    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "all"));
    put(&p.args, "format", fs('S', "pdf"));
    put(&p.args, "type", fs('S', "report"));
    put(&p.hdrs, "format", fs('S', "pdf"));
    put(&p.hdrs, "type", fs('S', "log"));
    CHECK_EQ(pair_match(&p), 0); /* type differs */

    /* any: one is enough. */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "format", fs('S', "pdf"));
    put(&p.args, "type", fs('S', "report"));
    put(&p.hdrs, "type", fs('S', "report"));
    CHECK_EQ(pair_match(&p), 1);

    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "format", fs('S', "pdf"));
    put(&p.hdrs, "format", fs('S', "zip"));
    put(&p.hdrs, "type", fs('S', "report"));
    CHECK_EQ(pair_match(&p), 0);

    /* Nothing to compare: all matches everything, any matches nothing. */
    pair_reset(&p);
    CHECK_EQ(pair_match(&p), 1);
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 1);
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);

    /* Empty headers against a real condition. */
    pair_reset(&p);
    put(&p.args, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);

    /* An unknown x-match value (bindings made before validation) or a
     * non-longstr one behaves as all. */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "bogus"));
    put(&p.args, "a", fi('l', 1));
    put(&p.args, "b", fi('l', 2));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);
    put(&p.hdrs, "b", fi('l', 2));
    CHECK_EQ(pair_match(&p), 1);
    pair_reset(&p);
    put(&p.args, "x-match", fs('x', "any"));
    put(&p.args, "a", fi('l', 1));
    put(&p.args, "b", fi('l', 2));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);

    /* x-match is read from its first occurrence. */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "x-match", fs('S', "all"));
    put(&p.args, "a", fi('l', 1));
    put(&p.args, "b", fi('l', 2));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 1);

    wr_buf_free(&p.args);
    wr_buf_free(&p.hdrs);
}

static void test_headers_x_keys(void)
{
    pair_t p = {{0}, {0}};

    /* all / any skip binding keys starting with "x-". */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "all"));
    put(&p.args, "x-trace", fs('S', "on"));
    put(&p.args, "a", fi('l', 1));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 1);

    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "x-trace", fs('S', "on"));
    put(&p.hdrs, "x-trace", fs('S', "on"));
    CHECK_EQ(pair_match(&p), 0); /* nothing considered */

    /* The -with-x variants consider them... */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "all-with-x"));
    put(&p.args, "x-trace", fs('S', "on"));
    put(&p.args, "a", fi('l', 1));
    put(&p.hdrs, "a", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);
    put(&p.hdrs, "x-trace", fs('S', "on"));
    CHECK_EQ(pair_match(&p), 1);

    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any-with-x"));
    put(&p.args, "x-trace", fs('S', "on"));
    put(&p.args, "a", fi('l', 1));
    put(&p.hdrs, "x-trace", fs('S', "on"));
    CHECK_EQ(pair_match(&p), 1);
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any-with-x"));
    put(&p.args, "x-trace", fs('S', "on"));
    put(&p.hdrs, "x-trace", fs('S', "off"));
    CHECK_EQ(pair_match(&p), 0);

    /* ...but never x-match itself, even if the message carries one. */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "all-with-x"));
    put(&p.hdrs, "x-match", fs('S', "something-else"));
    CHECK_EQ(pair_match(&p), 1);
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any-with-x"));
    put(&p.hdrs, "x-match", fs('S', "any-with-x"));
    CHECK_EQ(pair_match(&p), 0);

    /* Only the exact prefix "x-" counts. */
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "all"));
    put(&p.args, "X-big", fi('l', 1));
    put(&p.args, "x_under", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);

    wr_buf_free(&p.args);
    wr_buf_free(&p.hdrs);
}

static void test_headers_void_means_present(void)
{
    pair_t p = {{0}, {0}};
    pair_reset(&p);
    put(&p.args, "flag", fvoid());
    CHECK_EQ(pair_match(&p), 0);
    put(&p.hdrs, "flag", fs('S', "whatever"));
    CHECK_EQ(pair_match(&p), 1);

    pair_reset(&p);
    put(&p.args, "flag", fvoid());
    put(&p.hdrs, "flag", fvoid());
    CHECK_EQ(pair_match(&p), 1);

    /* A void header does not equal a non-void binding value. */
    CHECK_EQ(one(fs('S', ""), fvoid()), 0);
    CHECK_EQ(one(fi('l', 0), fvoid()), 0);

    /* Presence works for complex values too. */
    wr_buf_t inner;
    wr_buf_init(&inner);
    put(&inner, "n", fi('l', 1));
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "tbl", fvoid());
    put(&p.hdrs, "tbl", fraw('F', &inner));
    CHECK_EQ(pair_match(&p), 1);
    wr_buf_free(&inner);

    wr_buf_free(&p.args);
    wr_buf_free(&p.hdrs);
}

static void test_headers_value_rules(void)
{
    /* Strings and byte arrays are both Erlang binaries. */
    CHECK_EQ(one(fs('S', "pdf"), fs('S', "pdf")), 1);
    CHECK_EQ(one(fs('S', "pdf"), fs('x', "pdf")), 1);
    CHECK_EQ(one(fs('x', "pdf"), fs('S', "pdf")), 1);
    CHECK_EQ(one(fs('S', "pdf"), fs('S', "PDF")), 0);
    CHECK_EQ(one(fs('S', ""), fs('x', "")), 1);
    CHECK_EQ(one(fs('S', "1"), fi('l', 1)), 0);

    /* Integers compare by value across widths and signedness. */
    CHECK_EQ(one(fi('b', 5), fi('l', 5)), 1);
    CHECK_EQ(one(fi('I', 5), fi('u', 5)), 1);
    CHECK_EQ(one(fi('B', 200), fi('s', 200)), 1);
    CHECK_EQ(one(fi('i', 4294967295), fi('l', 4294967295)), 1);
    CHECK_EQ(one(fi('b', -1), fi('l', -1)), 1);
    CHECK_EQ(one(fi('b', -1), fi('B', 255)), 0);
    CHECK_EQ(one(fi('l', 5), fi('l', 6)), 0);

    /* An integer is never equal to a float (=:=, not ==). */
    CHECK_EQ(one(fi('l', 1), fdouble(1.0)), 0);
    CHECK_EQ(one(fdouble(1.0), fi('I', 1)), 0);
    /* Floats compare by value whatever their width. */
    CHECK_EQ(one(ffloat(1.5f), fdouble(1.5)), 1);
    CHECK_EQ(one(fdouble(2.25), fdouble(2.25)), 1);
    CHECK_EQ(one(ffloat(0.1f), fdouble(0.1)), 0); /* 0.1f widened is not 0.1 */
    CHECK_EQ(one(fdouble(0.0), fdouble(-0.0)), 0);

    /* Booleans are atoms: equal only to booleans. */
    CHECK_EQ(one(wr_field_bool(1), wr_field_bool(1)), 1);
    CHECK_EQ(one(wr_field_bool(1), wr_field_bool(0)), 0);
    CHECK_EQ(one(wr_field_bool(1), fi('l', 1)), 0);
    CHECK_EQ(one(wr_field_bool(0), fi('b', 0)), 0);
    CHECK_EQ(one(wr_field_bool(1), fs('S', "true")), 0);

    /* Decimals are {Scale, Value} tuples, not normalised. */
    CHECK_EQ(one(fdec(2, 314), fdec(2, 314)), 1);
    CHECK_EQ(one(fdec(2, 314), fdec(3, 3140)), 0);
    CHECK_EQ(one(fdec(0, 3), fi('l', 3)), 0);

    /* Timestamps: the message's are compared in milliseconds. */
    CHECK_EQ(one(fi('l', 5000), fts(5)), 1);
    CHECK_EQ(one(fts(5), fts(5)), 0);
    CHECK_EQ(one(fts(5000), fts(5)), 1);
    CHECK_EQ(one(fts(0), fts(0)), 1);
    CHECK_EQ(one(fts(5), fi('l', 5)), 1); /* binding side taken as is */
    CHECK_EQ(one(fi('l', 5), fts(5)), 0);
    CHECK_EQ(one(fts(UINT64_MAX), fts(UINT64_MAX)), 0);
    CHECK_EQ(one(fi('l', -1), fts(UINT64_MAX / 1000 + 1)), 0);

    /* Last occurrence of a repeated header wins. */
    pair_t p = {{0}, {0}};
    pair_reset(&p);
    put(&p.args, "k", fi('l', 2));
    put(&p.hdrs, "k", fi('l', 1));
    put(&p.hdrs, "k", fi('l', 2));
    CHECK_EQ(pair_match(&p), 1);
    pair_reset(&p);
    put(&p.args, "k", fi('l', 1));
    put(&p.hdrs, "k", fi('l', 1));
    put(&p.hdrs, "k", fi('l', 2));
    CHECK_EQ(pair_match(&p), 0);

    /* Repeated binding keys are each checked. */
    pair_reset(&p);
    put(&p.args, "k", fi('l', 1));
    put(&p.args, "k", fi('l', 2));
    put(&p.hdrs, "k", fi('l', 1));
    CHECK_EQ(pair_match(&p), 0);
    pair_reset(&p);
    put(&p.args, "x-match", fs('S', "any"));
    put(&p.args, "k", fi('l', 3));
    put(&p.args, "k", fi('l', 1));
    put(&p.hdrs, "k", fi('l', 1));
    CHECK_EQ(pair_match(&p), 1);
    wr_buf_free(&p.args);
    wr_buf_free(&p.hdrs);
}

static void test_headers_nested_values(void)
{
    wr_buf_t a1, a2, a3, t1, t2, empty;
    wr_buf_init(&a1);
    wr_buf_init(&a2);
    wr_buf_init(&a3);
    wr_buf_init(&t1);
    wr_buf_init(&t2);
    wr_buf_init(&empty);
    wr_field_t e;
    e = fs('S', "x");
    wr_field_put(&a1, &e);
    e = fi('l', 1);
    wr_field_put(&a1, &e);
    e = fs('S', "x");
    wr_field_put(&a2, &e);
    e = fi('l', 1);
    wr_field_put(&a2, &e);
    /* Same values, different element types: RabbitMQ keeps {Type, Value}
     * inside arrays, so these differ. */
    e = fs('x', "x");
    wr_field_put(&a3, &e);
    e = fi('I', 1);
    wr_field_put(&a3, &e);
    put(&t1, "n", fi('l', 1));
    put(&t1, "s", fs('S', "v"));
    put(&t2, "s", fs('S', "v"));
    put(&t2, "n", fi('l', 1));

    CHECK_EQ(one(fraw('A', &a1), fraw('A', &a2)), 1);
    CHECK_EQ(one(fraw('A', &a1), fraw('A', &a3)), 0);
    CHECK_EQ(one(fraw('F', &t1), fraw('F', &t1)), 1);
    CHECK_EQ(one(fraw('F', &t1), fraw('F', &t2)), 0); /* order counts */
    CHECK_EQ(one(fraw('A', &a1), fraw('F', &t1)), 0);
    /* [] =:= []: an empty array equals an empty table. */
    CHECK_EQ(one(fraw('A', &empty), fraw('F', &empty)), 1);
    CHECK_EQ(one(fraw('A', &empty), fraw('A', &a1)), 0);

    wr_buf_free(&a1);
    wr_buf_free(&a2);
    wr_buf_free(&a3);
    wr_buf_free(&t1);
    wr_buf_free(&t2);
    wr_buf_free(&empty);
}

static void validate_err(wr_field_t xmatch, int expect_rc, const char *expect_msg)
{
    wr_buf_t b;
    char err[256];
    wr_buf_init(&b);
    put(&b, "a", fi('l', 1));
    put(&b, "x-match", xmatch);
    strcpy(err, "untouched");
    int rc = wr_headers_validate_binding(bytes(&b), err, sizeof err);
    wr_buf_free(&b);
    if (rc != expect_rc || (expect_msg && strcmp(err, expect_msg) != 0))
        printf("  got %d '%s'\n", rc, err);
    CHECK_EQ(rc, expect_rc);
    if (expect_msg)
        CHECK_STR(err, expect_msg);
}

static void test_headers_validate_binding(void)
{
    char err[128];
    CHECK_EQ(wr_headers_validate_binding((wr_bytes_t){NULL, 0}, err, sizeof err), 0);
    validate_err(fs('S', "all"), 0, NULL);
    validate_err(fs('S', "any"), 0, NULL);
    validate_err(fs('S', "all-with-x"), 0, NULL);
    validate_err(fs('S', "any-with-x"), 0, NULL);
    validate_err(fs('S', "foo"), WR_EINVAL,
                 "Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or "
                 "any-with-x");
    validate_err(fs('S', "ALL"), WR_EINVAL,
                 "Invalid x-match field value <<\"ALL\">>; expected all, any, all-with-x, or "
                 "any-with-x");
    validate_err(fs('S', ""), WR_EINVAL,
                 "Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x");
    validate_err(fs('S', "a\"b"), WR_EINVAL,
                 "Invalid x-match field value <<\"a\\\"b\">>; expected all, any, all-with-x, or "
                 "any-with-x");
    validate_err(fs('S', "caf\xc3\xa9"), WR_EINVAL,
                 "Invalid x-match field value <<\"caf\xc3\xa9\"/utf8>>; expected all, any, "
                 "all-with-x, or any-with-x");
    validate_err(fs('S', "\x01\x02"), WR_EINVAL,
                 "Invalid x-match field value <<1,2>>; expected all, any, all-with-x, or "
                 "any-with-x");
    validate_err(fs('x', "any"), WR_EINVAL,
                 "Invalid x-match field type binary (value <<\"any\">>); expected longstr");
    validate_err(fi('l', 1), WR_EINVAL,
                 "Invalid x-match field type long (value 1); expected longstr");
    validate_err(fi('b', -3), WR_EINVAL,
                 "Invalid x-match field type byte (value -3); expected longstr");
    validate_err(wr_field_bool(1), WR_EINVAL,
                 "Invalid x-match field type bool (value true); expected longstr");
    validate_err(fvoid(), WR_EINVAL,
                 "Invalid x-match field type void (value undefined); expected longstr");
    validate_err(fdouble(1.0), WR_EINVAL,
                 "Invalid x-match field type double (value 1.0); expected longstr");
    validate_err(fdouble(0.1), WR_EINVAL,
                 "Invalid x-match field type double (value 0.1); expected longstr");
    validate_err(fdec(2, 314), WR_EINVAL,
                 "Invalid x-match field type decimal (value {2,314}); expected longstr");
    validate_err(fts(7), WR_EINVAL,
                 "Invalid x-match field type timestamp (value 7); expected longstr");

    wr_buf_t arr;
    wr_buf_init(&arr);
    wr_field_t e = fs('S', "any");
    wr_field_put(&arr, &e);
    e = fi('I', 2);
    wr_field_put(&arr, &e);
    validate_err(fraw('A', &arr), WR_EINVAL,
                 "Invalid x-match field type array (value [{longstr,<<\"any\">>},{signedint,2}]); "
                 "expected longstr");
    wr_buf_free(&arr);

    /* First occurrence decides; NULL err is allowed; output is truncated
     * safely. */
    wr_buf_t b;
    wr_buf_init(&b);
    put(&b, "x-match", fs('S', "any"));
    put(&b, "x-match", fs('S', "bad"));
    CHECK_EQ(wr_headers_validate_binding(bytes(&b), NULL, 0), 0);
    wr_buf_free(&b);
    wr_buf_init(&b);
    put(&b, "x-match", fs('S', "bad"));
    CHECK_EQ(wr_headers_validate_binding(bytes(&b), NULL, 0), WR_EINVAL);
    char small[8];
    CHECK_EQ(wr_headers_validate_binding(bytes(&b), small, sizeof small), WR_EINVAL);
    CHECK_STR(small, "Invalid");
    wr_buf_free(&b);
}

WR_SUITE(headers)
{
    RUN(test_headers_all_any);
    RUN(test_headers_x_keys);
    RUN(test_headers_void_means_present);
    RUN(test_headers_value_rules);
    RUN(test_headers_nested_values);
    RUN(test_headers_validate_binding);
}
