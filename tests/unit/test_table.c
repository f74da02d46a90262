/* test_table.c - field tables: encoding, validation, iteration, lookup. */
#include <math.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include <stdlib.h>

#include "proto/table.h"
#include "test.h"

static wr_field_t field_of(uint8_t type, int64_t i)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.v.i = i;
    return f;
}

static wr_field_t field_bytes(uint8_t type, wr_bytes_t s)
{
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.v.bytes = s;
    return f;
}

static void put(wr_buf_t *b, const char *key, wr_field_t f)
{
    wr_table_put_key(b, wr_bytes_of(key));
    wr_field_put(b, &f);
}

/* The content (without the length prefix) of a table written into b from
 * offset off by wr_table_begin/end. */
static wr_bytes_t content_at(const wr_buf_t *b, size_t off)
{
    wr_bytes_t t = {b->p + off + 4, wr_get_u32(b->p + off)};
    return t;
}

/* Builds a table holding one value of every field type, with a nested
 * table and an array inside it. */
static size_t build_every_type(wr_buf_t *b)
{
    size_t off = wr_table_begin(b);
    put(b, "bool", wr_field_bool(1));
    put(b, "i8", field_of('b', -5));
    put(b, "u8", field_of('B', 250));
    put(b, "i16", field_of('s', -300));
    put(b, "u16", field_of('u', 65000));
    put(b, "i32", field_of('I', -70000));
    put(b, "u32", field_of('i', 4000000000LL));
    put(b, "i64", field_of('l', INT64_MIN));
    wr_field_t f;
    memset(&f, 0, sizeof f);
    f.type = 'f';
    f.v.f = 1.5f;
    put(b, "float", f);
    f.type = 'd';
    f.v.d = -2.25;
    put(b, "double", f);
    f.type = 'D';
    f.v.dec.scale = 2;
    f.v.dec.value = 12345;
    put(b, "decimal", f);
    put(b, "str", wr_field_longstr(WR_BYTES_LIT("hello")));
    put(b, "bytes", field_bytes('x', (wr_bytes_t){(const uint8_t *)"\0\1\2\xff", 4}));
    put(b, "ts", wr_field_timestamp(1700000000ULL));
    f.type = 'V';
    put(b, "void", f);

    /* "nested": {"k": "v", "arr": [1, "two", {}]} */
    wr_table_put_key(b, WR_BYTES_LIT("nested"));
    wr_buf_put_u8(b, 'F');
    size_t inner = wr_table_begin(b);
    put(b, "k", wr_field_longstr(WR_BYTES_LIT("v")));
    wr_table_put_key(b, WR_BYTES_LIT("arr"));
    wr_buf_put_u8(b, 'A');
    size_t arr = wr_table_begin(b);
    wr_field_t one = field_of('I', 1);
    wr_field_put(b, &one);
    wr_field_t two = wr_field_longstr(WR_BYTES_LIT("two"));
    wr_field_put(b, &two);
    wr_buf_put_u8(b, 'F');
    size_t empty = wr_table_begin(b);
    wr_table_end(b, empty);
    wr_table_end(b, arr);
    wr_table_end(b, inner);

    put(b, "last", wr_field_long(42));
    wr_table_end(b, off);
    return off;
}

static void test_table_every_type_round_trip(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t off = build_every_type(&b);
    wr_bytes_t t = content_at(&b, off);
    CHECK_EQ(t.n + 4, b.len - off);
    CHECK_EQ(wr_table_validate(t, WR_TABLE_MAX_DEPTH), 0);

    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    wr_table_iter_init(&it, t);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "bool"));
    CHECK_EQ(v.type, 't');
    CHECK_EQ(v.v.i, 1);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "i8"));
    CHECK_EQ(v.type, 'b');
    CHECK_EQ(v.v.i, -5);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'B');
    CHECK_EQ(v.v.i, 250);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 's');
    CHECK_EQ(v.v.i, -300);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'u');
    CHECK_EQ(v.v.i, 65000);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'I');
    CHECK_EQ(v.v.i, -70000);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'i');
    CHECK_EQ(v.v.i, 4000000000LL);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "i64"));
    CHECK_EQ(v.type, 'l');
    CHECK(v.v.i == INT64_MIN);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'f');
    CHECK(v.v.f == 1.5f);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'd');
    CHECK(v.v.d == -2.25);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "decimal"));
    CHECK_EQ(v.type, 'D');
    CHECK_EQ(v.v.dec.scale, 2);
    CHECK_EQ(v.v.dec.value, 12345);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'S');
    CHECK(wr_bytes_eq_str(v.v.bytes, "hello"));

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'x');
    CHECK_EQ(v.v.bytes.n, 4);
    CHECK_MEM(v.v.bytes.p, "\0\1\2\xff", 4);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK_EQ(v.type, 'T');
    CHECK(v.v.u == 1700000000ULL);

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "void"));
    CHECK_EQ(v.type, 'V');

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "nested"));
    CHECK_EQ(v.type, 'F');
    wr_bytes_t nested = v.v.bytes;

    CHECK_EQ(wr_table_next(&it, &k, &v), 1);
    CHECK(wr_bytes_eq_str(k, "last"));
    CHECK_EQ(v.v.i, 42);
    CHECK_EQ(wr_table_next(&it, &k, &v), 0);
    CHECK_EQ(wr_table_next(&it, &k, &v), 0);

    /* Into the nested table and its array. */
    wr_field_t arr;
    CHECK_EQ(wr_table_get(nested, "k", &v), 1);
    CHECK(wr_bytes_eq_str(v.v.bytes, "v"));
    CHECK_EQ(wr_table_get(nested, "arr", &arr), 1);
    CHECK_EQ(arr.type, 'A');
    CHECK_EQ(wr_array_validate(arr.v.bytes, 2), 0);
    wr_table_iter_init(&it, arr.v.bytes);
    CHECK_EQ(wr_array_next(&it, &v), 1);
    CHECK_EQ(v.type, 'I');
    CHECK_EQ(v.v.i, 1);
    CHECK_EQ(wr_array_next(&it, &v), 1);
    CHECK(wr_bytes_eq_str(v.v.bytes, "two"));
    CHECK_EQ(wr_array_next(&it, &v), 1);
    CHECK_EQ(v.type, 'F');
    CHECK_EQ(v.v.bytes.n, 0);
    CHECK_EQ(wr_array_next(&it, &v), 0);

    /* Re-encoding every decoded field reproduces the original bytes. */
    wr_buf_t again;
    wr_buf_init(&again);
    wr_table_iter_init(&it, t);
    size_t off2 = wr_table_begin(&again);
    while (wr_table_next(&it, &k, &v) == 1) {
        wr_table_put_key(&again, k);
        wr_field_put(&again, &v);
    }
    wr_table_end(&again, off2);
    CHECK_EQ(again.len, b.len - off);
    CHECK_MEM(again.p, b.p + off, again.len);

    wr_buf_free(&again);
    wr_buf_free(&b);
}

static void test_table_get_and_lookup_rules(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t off = wr_table_begin(&b);
    put(&b, "x-max-length", field_of('I', 10));
    put(&b, "dup", wr_field_longstr(WR_BYTES_LIT("first")));
    put(&b, "dup", wr_field_longstr(WR_BYTES_LIT("second")));
    put(&b, "", wr_field_bool(0));
    wr_table_end(&b, off);
    wr_bytes_t t = content_at(&b, off);
    CHECK_EQ(wr_table_validate(t, 1), 0);

    wr_field_t v;
    CHECK_EQ(wr_table_get(t, "x-max-length", &v), 1);
    int64_t n = 0;
    CHECK_EQ(wr_field_int(&v, &n), 1);
    CHECK_EQ(n, 10);
    CHECK_EQ(wr_table_get(t, "dup", &v), 1);
    CHECK(wr_bytes_eq_str(v.v.bytes, "first"));
    CHECK_EQ(wr_table_get(t, "", &v), 1);
    CHECK_EQ(v.type, 't');
    CHECK_EQ(v.v.i, 0);
    CHECK_EQ(wr_table_get(t, "missing", &v), 0);
    CHECK_EQ(wr_table_get(t, "x-max-lengt", &v), 0);

    /* An empty table, including a NULL view. */
    wr_bytes_t none = {NULL, 0};
    CHECK_EQ(wr_table_validate(none, 1), 0);
    CHECK_EQ(wr_array_validate(none, 1), 0);
    CHECK_EQ(wr_table_get(none, "a", &v), 0);
    wr_buf_free(&b);
}

static void test_field_int_accepts_integer_types_only(void)
{
    static const uint8_t ints[] = {'b', 'B', 's', 'u', 'I', 'i', 'l'};
    for (size_t i = 0; i < sizeof ints; i++) {
        wr_field_t f = field_of(ints[i], -7);
        int64_t out = 0;
        CHECK_EQ(wr_field_int(&f, &out), 1);
        CHECK_EQ(out, -7);
    }
    static const uint8_t others[] = {'t', 'f', 'd', 'D', 'S', 'x', 'A', 'T', 'F', 'V'};
    for (size_t i = 0; i < sizeof others; i++) {
        wr_field_t f = field_of(others[i], 1);
        int64_t out = 99;
        CHECK_EQ(wr_field_int(&f, &out), 0);
        CHECK_EQ(out, 99);
    }
}

static void test_field_equal(void)
{
    wr_field_t a = field_of('I', 5), b = field_of('I', 5), c = field_of('l', 5);
    CHECK(wr_field_equal(&a, &b));
    CHECK(!wr_field_equal(&a, &c)); /* same number, different type */
    b.v.i = 6;
    CHECK(!wr_field_equal(&a, &b));

    wr_field_t s1 = wr_field_longstr(WR_BYTES_LIT("abc"));
    wr_field_t s2 = wr_field_longstr(wr_bytes_of("abc"));
    wr_field_t s3 = wr_field_longstr(WR_BYTES_LIT("abd"));
    wr_field_t x1 = field_bytes('x', WR_BYTES_LIT("abc"));
    CHECK(wr_field_equal(&s1, &s2));
    CHECK(!wr_field_equal(&s1, &s3));
    CHECK(!wr_field_equal(&s1, &x1));

    wr_field_t d1, d2;
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    d1.type = d2.type = 'D';
    d1.v.dec.scale = d2.v.dec.scale = 3;
    d1.v.dec.value = d2.v.dec.value = 1000;
    CHECK(wr_field_equal(&d1, &d2));
    d2.v.dec.scale = 2;
    CHECK(!wr_field_equal(&d1, &d2));

    wr_field_t v1 = field_of('V', 0), v2 = field_of('V', 0);
    CHECK(wr_field_equal(&v1, &v2));

    wr_field_t t1 = wr_field_timestamp(1), t2 = wr_field_timestamp(2);
    CHECK(!wr_field_equal(&t1, &t2));
    CHECK(wr_field_equal(&t1, &t1));

    wr_field_t f1, f2;
    memset(&f1, 0, sizeof f1);
    memset(&f2, 0, sizeof f2);
    f1.type = f2.type = 'd';
    f1.v.d = 0.5;
    f2.v.d = 0.5;
    CHECK(wr_field_equal(&f1, &f2));
    f2.v.d = NAN;
    CHECK(!wr_field_equal(&f2, &f2));

    wr_field_t bt = wr_field_bool(7), bf = wr_field_bool(0), bt2 = wr_field_bool(1);
    CHECK(wr_field_equal(&bt, &bt2));
    CHECK(!wr_field_equal(&bt, &bf));
}

static void test_table_truncated_at_every_length(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t off = build_every_type(&b);
    wr_bytes_t t = content_at(&b, off);

    /* Entry boundaries: the only prefixes that are whole tables. */
    size_t bounds[64];
    size_t nb = 0;
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    wr_table_iter_init(&it, t);
    bounds[nb++] = 0;
    while (wr_table_next(&it, &k, &v) == 1)
        bounds[nb++] = (size_t)(it.p - t.p);
    CHECK_EQ(bounds[nb - 1], t.n);

    for (size_t len = 0; len < t.n; len++) {
        wr_bytes_t cut = {t.p, len};
        int whole = 0;
        for (size_t i = 0; i < nb; i++)
            whole |= bounds[i] == len;
        int rc = wr_table_validate(cut, WR_TABLE_MAX_DEPTH);
        if (whole) {
            CHECK_EQ(rc, 0);
        } else {
            CHECK_EQ(rc, WR_EFRAME);
            /* Iteration over the cut table meets the error too. */
            int r;
            wr_table_iter_init(&it, cut);
            while ((r = wr_table_next(&it, &k, &v)) == 1)
                ;
            CHECK_EQ(r, WR_EFRAME);
        }
    }
    wr_buf_free(&b);
}

static void test_table_malformed(void)
{
    /* Unknown type octet 'Z'. */
    static const uint8_t bad_type[] = {1, 'a', 'Z', 0};
    CHECK_EQ(wr_table_validate((wr_bytes_t){bad_type, sizeof bad_type}, 10), WR_EFRAME);
    /* Key length runs past the end. */
    static const uint8_t bad_key[] = {9, 'a', 'b'};
    CHECK_EQ(wr_table_validate((wr_bytes_t){bad_key, sizeof bad_key}, 10), WR_EFRAME);
    /* Key with no value. */
    static const uint8_t no_value[] = {1, 'a'};
    CHECK_EQ(wr_table_validate((wr_bytes_t){no_value, sizeof no_value}, 10), WR_EFRAME);
    /* Long string claims 4 GiB. */
    static const uint8_t huge[] = {1, 'a', 'S', 0xff, 0xff, 0xff, 0xff, 'x'};
    CHECK_EQ(wr_table_validate((wr_bytes_t){huge, sizeof huge}, 10), WR_EFRAME);
    /* Nested table whose content is malformed. */
    static const uint8_t bad_nested[] = {1, 'a', 'F', 0, 0, 0, 3, 1, 'b', 'Q'};
    CHECK_EQ(wr_table_validate((wr_bytes_t){bad_nested, sizeof bad_nested}, 10), WR_EFRAME);
    /* Array holding a value of an unknown type. */
    static const uint8_t bad_array[] = {1, 'a', 'A', 0, 0, 0, 2, 'I', 0};
    CHECK_EQ(wr_table_validate((wr_bytes_t){bad_array, sizeof bad_array}, 10), WR_EFRAME);
    static const uint8_t arr_trunc[] = {'I', 0, 0};
    CHECK_EQ(wr_array_validate((wr_bytes_t){arr_trunc, sizeof arr_trunc}, 10), WR_EFRAME);
    /* A bool octet other than 0 or 1 is read as true, as RabbitMQ does. */
    static const uint8_t bool2[] = {1, 'a', 't', 2};
    wr_bytes_t t = {bool2, sizeof bool2};
    CHECK_EQ(wr_table_validate(t, 1), 0);
    wr_field_t v;
    CHECK_EQ(wr_table_get(t, "a", &v), 1);
    CHECK_EQ(v.v.i, 1);
    /* A nested table needs depth 2; depth 1 refuses it. */
    static const uint8_t nested[] = {1, 'a', 'F', 0, 0, 0, 0};
    CHECK_EQ(wr_table_validate((wr_bytes_t){nested, sizeof nested}, 2), 0);
    CHECK_EQ(wr_table_validate((wr_bytes_t){nested, sizeof nested}, 1), WR_EDEPTH);
    CHECK_EQ(wr_table_validate((wr_bytes_t){nested, sizeof nested}, 0), WR_EDEPTH);
}

/* Writes `depth` nested containers: tables ({"a": {"a": ...}}) or arrays
 * ([[[...]]]), the outermost content being what is returned. */
static wr_bytes_t build_nested(wr_buf_t *b, int depth, int arrays)
{
    size_t *offs = malloc((size_t)depth * sizeof *offs);
    for (int i = 0; i < depth - 1; i++) {
        if (!arrays)
            wr_table_put_key(b, WR_BYTES_LIT("a"));
        wr_buf_put_u8(b, arrays ? 'A' : 'F');
        offs[i] = wr_table_begin(b);
    }
    for (int i = depth - 2; i >= 0; i--)
        wr_table_end(b, offs[i]);
    free(offs);
    wr_bytes_t t = {b->p, b->len};
    return t;
}

static void test_table_deep_nesting(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_bytes_t t = build_nested(&b, 1000, 0);
    /* RabbitMQ accepts 1000 levels, and so does warren. */
    CHECK_EQ(wr_table_validate(t, WR_TABLE_MAX_DEPTH), 0);
    /* Even a generous limit is honoured without running out of stack. */
    CHECK_EQ(wr_table_validate(t, 999), WR_EDEPTH);
    CHECK_EQ(wr_table_validate(t, 1000), 0);
    wr_buf_free(&b);

    wr_buf_init(&b);
    t = build_nested(&b, 1000, 1);
    CHECK_EQ(wr_array_validate(t, WR_TABLE_MAX_DEPTH), 0);
    CHECK_EQ(wr_array_validate(t, 999), WR_EDEPTH);
    wr_buf_free(&b);

    /* Exactly at the limit passes; one more level fails. */
    wr_buf_init(&b);
    t = build_nested(&b, WR_TABLE_MAX_DEPTH, 0);
    CHECK_EQ(wr_table_validate(t, WR_TABLE_MAX_DEPTH), 0);
    wr_buf_free(&b);
    wr_buf_init(&b);
    t = build_nested(&b, WR_TABLE_MAX_DEPTH + 1, 0);
    CHECK_EQ(wr_table_validate(t, WR_TABLE_MAX_DEPTH), WR_EDEPTH);
    wr_buf_free(&b);
}

static void test_table_wire_bytes(void)
{
    /* A hand-written table: {"n": I 258, "s": S "hi"} */
    static const uint8_t want[] = {0, 0, 0,   16,  1, 'n', 'I', 0, 0,   1,
                                   2, 1, 's', 'S', 0, 0,   0,   2, 'h', 'i'};
    wr_buf_t b;
    wr_buf_init(&b);
    size_t off = wr_table_begin(&b);
    put(&b, "n", field_of('I', 258));
    put(&b, "s", wr_field_longstr(WR_BYTES_LIT("hi")));
    wr_table_end(&b, off);
    CHECK_EQ(b.len, sizeof want);
    CHECK_MEM(b.p, want, sizeof want);
    wr_buf_free(&b);
}

WR_SUITE(table)
{
    RUN(test_table_every_type_round_trip);
    RUN(test_table_get_and_lookup_rules);
    RUN(test_field_int_accepts_integer_types_only);
    RUN(test_field_equal);
    RUN(test_table_truncated_at_every_length);
    RUN(test_table_malformed);
    RUN(test_table_deep_nesting);
    RUN(test_table_wire_bytes);
}
