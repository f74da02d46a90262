/*
 * headers.c - binding matching for headers exchanges (see headers.h).
 *
 * RabbitMQ decodes both tables into Erlang terms and compares values with
 * =:=, after turning the message's headers into a map of bare values (so
 * the wire type is gone) and its timestamps into milliseconds.  Rather
 * than build those terms, this file classifies each wire value by the
 * Erlang term it would decode to (binary, integer, float, boolean atom,
 * decimal tuple, undefined, list of array elements, list of table entries)
 * and compares within a class.  Nested arrays and tables keep their
 * element types in RabbitMQ's terms ({long, 1} vs {signedint, 1}), so
 * below the top level values compare type and value.
 *
 * A header name is looked up by scanning the message's table for each
 * considered binding argument: tables are short, a scan allocates nothing,
 * and it makes "last occurrence wins" (RabbitMQ builds a map by folding
 * over the headers) trivial.
 */
#include "broker/headers.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "proto/table.h"

enum { MATCH_ALL, MATCH_ANY, MATCH_ALL_WITH_X, MATCH_ANY_WITH_X };

static int parse_x_match(wr_bytes_t args)
{
    wr_field_t f;
    /* Anything but one of the four long strings means "all": RabbitMQ
     * kept that fallback for bindings made before it validated x-match. */
    if (!wr_table_get(args, "x-match", &f) || f.type != 'S')
        return MATCH_ALL;
    if (wr_bytes_eq_str(f.v.bytes, "any"))
        return MATCH_ANY;
    if (wr_bytes_eq_str(f.v.bytes, "all-with-x"))
        return MATCH_ALL_WITH_X;
    if (wr_bytes_eq_str(f.v.bytes, "any-with-x"))
        return MATCH_ANY_WITH_X;
    return MATCH_ALL;
}

/* The last entry named key in headers, as RabbitMQ's map would keep. */
static int header_last(wr_bytes_t headers, wr_bytes_t key, wr_field_t *out)
{
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    int found = 0;
    wr_table_iter_init(&it, headers);
    while (wr_table_next(&it, &k, &v) == 1) {
        if (wr_bytes_eq(k, key)) {
            *out = v;
            found = 1;
        }
    }
    return found;
}

/* ---- values as Erlang terms -------------------------------------------- */

enum { T_BINARY, T_INTEGER, T_FLOAT, T_BOOL, T_DECIMAL, T_UNDEFINED, T_ARRAY, T_TABLE, T_OTHER };

static int term_class(uint8_t type)
{
    switch (type) {
    case 'S':
    case 'x':
        return T_BINARY;
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
    case 'T':
        return T_INTEGER;
    case 'f':
    case 'd':
        return T_FLOAT;
    case 't':
        return T_BOOL;
    case 'D':
        return T_DECIMAL;
    case 'V':
        return T_UNDEFINED;
    case 'A':
        return T_ARRAY;
    case 'F':
        return T_TABLE;
    default:
        return T_OTHER;
    }
}

/* An integer of up to 65 bits: sign and magnitude, or "too big", which
 * only a header timestamp times 1000 can be, and which then equals
 * nothing a binding argument can hold. */
typedef struct bigint {
    int neg;
    int big;
    uint64_t mag;
} bigint_t;

static bigint_t to_bigint(const wr_field_t *f, int header_side)
{
    bigint_t r = {0, 0, 0};
    if (f->type == 'T') {
        if (!header_side) {
            r.mag = f->v.u;
        } else if (f->v.u > UINT64_MAX / 1000) {
            r.big = 1;
        } else {
            /* mc_amqpl:routing_value(timestamp, V) -> V * 1000. */
            r.mag = f->v.u * 1000;
        }
        return r;
    }
    r.neg = f->v.i < 0;
    r.mag = r.neg ? (uint64_t)0 - (uint64_t)f->v.i : (uint64_t)f->v.i;
    return r;
}

static double to_double(const wr_field_t *f)
{
    return f->type == 'f' ? (double)f->v.f : f->v.d;
}

/* Erlang's =:= on floats: numeric equality, except that (from OTP 27 on)
 * 0.0 and -0.0 are different terms. */
static int float_identical(double a, double b)
{
    return a == b && signbit(a) == signbit(b);
}

static int arrays_identical(wr_bytes_t a, wr_bytes_t b);
static int tables_identical(wr_bytes_t a, wr_bytes_t b);

/* Equality of two nested {Type, Value} terms: same type, same value. */
static int field_identical(const wr_field_t *a, const wr_field_t *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
        return a->v.i == b->v.i;
    case 't':
        return (a->v.i != 0) == (b->v.i != 0);
    case 'T':
        return a->v.u == b->v.u;
    case 'f':
    case 'd':
        return float_identical(to_double(a), to_double(b));
    case 'D':
        return a->v.dec.scale == b->v.dec.scale && a->v.dec.value == b->v.dec.value;
    case 'V':
        return 1;
    case 'S':
    case 'x':
        return wr_bytes_eq(a->v.bytes, b->v.bytes);
    case 'A':
        return arrays_identical(a->v.bytes, b->v.bytes);
    case 'F':
        return tables_identical(a->v.bytes, b->v.bytes);
    default:
        return 0;
    }
}

static int arrays_identical(wr_bytes_t a, wr_bytes_t b)
{
    wr_table_iter_t ia, ib;
    wr_field_t fa, fb;
    wr_table_iter_init(&ia, a);
    wr_table_iter_init(&ib, b);
    for (;;) {
        int ra = wr_array_next(&ia, &fa);
        int rb = wr_array_next(&ib, &fb);
        if (ra < 0 || rb < 0 || ra != rb)
            return 0;
        if (ra == 0)
            return 1;
        if (!field_identical(&fa, &fb))
            return 0;
    }
}

static int tables_identical(wr_bytes_t a, wr_bytes_t b)
{
    wr_table_iter_t ia, ib;
    wr_bytes_t ka, kb;
    wr_field_t fa, fb;
    wr_table_iter_init(&ia, a);
    wr_table_iter_init(&ib, b);
    for (;;) {
        int ra = wr_table_next(&ia, &ka, &fa);
        int rb = wr_table_next(&ib, &kb, &fb);
        if (ra < 0 || rb < 0 || ra != rb)
            return 0;
        if (ra == 0)
            return 1;
        if (!wr_bytes_eq(ka, kb) || !field_identical(&fa, &fb))
            return 0;
    }
}

/* Top-level comparison: binding argument bv against header value hv. */
static int routing_equal(const wr_field_t *bv, const wr_field_t *hv)
{
    int cb = term_class(bv->type), ch = term_class(hv->type);
    if (cb != ch) {
        /* [] =:= []: an empty array equals an empty table. */
        int lists = (cb == T_ARRAY || cb == T_TABLE) && (ch == T_ARRAY || ch == T_TABLE);
        return lists && bv->v.bytes.n == 0 && hv->v.bytes.n == 0;
    }
    switch (cb) {
    case T_BINARY:
        return wr_bytes_eq(bv->v.bytes, hv->v.bytes);
    case T_INTEGER: {
        bigint_t a = to_bigint(bv, 0), b = to_bigint(hv, 1);
        return !a.big && !b.big && a.mag == b.mag && (a.neg == b.neg || a.mag == 0);
    }
    case T_FLOAT:
        return float_identical(to_double(bv), to_double(hv));
    case T_BOOL:
    case T_DECIMAL:
    case T_UNDEFINED:
        return field_identical(bv, hv);
    case T_ARRAY:
        return arrays_identical(bv->v.bytes, hv->v.bytes);
    case T_TABLE:
        return tables_identical(bv->v.bytes, hv->v.bytes);
    default:
        return 0;
    }
}

int wr_headers_match(wr_bytes_t binding_args, wr_bytes_t msg_headers)
{
    int mode = parse_x_match(binding_args);
    int any = mode == MATCH_ANY || mode == MATCH_ANY_WITH_X;
    int with_x = mode == MATCH_ALL_WITH_X || mode == MATCH_ANY_WITH_X;
    wr_table_iter_t it;
    wr_bytes_t key;
    wr_field_t bv, hv;
    int rc;

    wr_table_iter_init(&it, binding_args);
    while ((rc = wr_table_next(&it, &key, &bv)) == 1) {
        if (wr_bytes_eq_str(key, "x-match"))
            continue;
        if (!with_x && key.n >= 2 && key.p[0] == 'x' && key.p[1] == '-')
            continue;
        int found = header_last(msg_headers, key, &hv);
        int ok = bv.type == 'V' ? found : found && routing_equal(&bv, &hv);
        if (any && ok)
            return 1;
        if (!any && !ok)
            return 0;
    }
    if (rc < 0)
        return 0;
    return !any;
}

/* ---- validation and RabbitMQ's error text ------------------------------ */

static void put_str(wr_buf_t *b, const char *s)
{
    wr_buf_put(b, s, strlen(s));
}

static void put_fmt(wr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(wr_buf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        wr_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* A binary as io_lib's ~tp prints it: <<>> when empty, <<"text">> when it
 * is printable ASCII, <<"text"/utf8>> when it is printable UTF-8, else
 * <<1,2,3>>. */
static void put_binary(wr_buf_t *b, wr_bytes_t s)
{
    int printable = 1, ascii = 1;
    for (size_t i = 0; i < s.n && printable;) {
        uint8_t c = s.p[i];
        size_t len = utf8_len(s.p + i, s.n - i);
        if (len == 0 || (c < 0x20 && !strchr("\n\r\t\v\b\f\x1b", c)) || c == 0x7f)
            printable = 0;
        if (len > 1)
            ascii = 0;
        i += len ? len : 1;
    }
    put_str(b, "<<");
    if (s.n == 0) {
        put_str(b, ">>");
        return;
    }
    if (!printable) {
        for (size_t i = 0; i < s.n; i++)
            put_fmt(b, i ? ",%u" : "%u", s.p[i]);
        put_str(b, ">>");
        return;
    }
    wr_buf_put_u8(b, '"');
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\v':
            esc = "\\v";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case 0x1b:
            esc = "\\e";
            break;
        default:
            break;
        }
        if (esc)
            put_str(b, esc);
        else
            wr_buf_put_u8(b, c);
    }
    put_str(b, ascii ? "\">>" : "\"/utf8>>");
}

/* Shortest representation that reads back to the same double, with the
 * ".0" Erlang always prints ("1.0", "1.0e10"). */
static void put_float(wr_buf_t *b, double d)
{
    char tmp[40];
    if (!isfinite(d)) {
        put_str(b, isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    char *e = strchr(tmp, 'e');
    char exp[16] = "";
    if (e != NULL) {
        snprintf(exp, sizeof exp, "e%d", atoi(e + 1));
        *e = '\0';
    }
    put_str(b, tmp);
    if (strchr(tmp, '.') == NULL)
        put_str(b, ".0");
    put_str(b, exp);
}

static void put_term(wr_buf_t *b, const wr_field_t *f);

static void put_array(wr_buf_t *b, wr_bytes_t a)
{
    wr_table_iter_t it;
    wr_field_t v;
    int first = 1;
    wr_table_iter_init(&it, a);
    wr_buf_put_u8(b, '[');
    while (wr_array_next(&it, &v) == 1) {
        put_fmt(b, "%s{%s,", first ? "" : ",", wr_field_type_name(v.type));
        put_term(b, &v);
        wr_buf_put_u8(b, '}');
        first = 0;
    }
    wr_buf_put_u8(b, ']');
}

static void put_table(wr_buf_t *b, wr_bytes_t t)
{
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    int first = 1;
    wr_table_iter_init(&it, t);
    wr_buf_put_u8(b, '[');
    while (wr_table_next(&it, &k, &v) == 1) {
        put_str(b, first ? "{" : ",{");
        put_binary(b, k);
        put_fmt(b, ",%s,", wr_field_type_name(v.type));
        put_term(b, &v);
        wr_buf_put_u8(b, '}');
        first = 0;
    }
    wr_buf_put_u8(b, ']');
}

/* A value as RabbitMQ's decoded term prints with ~tp. */
static void put_term(wr_buf_t *b, const wr_field_t *f)
{
    switch (f->type) {
    case 'S':
    case 'x':
        put_binary(b, f->v.bytes);
        break;
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
        put_fmt(b, "%" PRId64, f->v.i);
        break;
    case 'T':
        put_fmt(b, "%" PRIu64, f->v.u);
        break;
    case 'f':
    case 'd':
        put_float(b, to_double(f));
        break;
    case 't':
        put_str(b, f->v.i ? "true" : "false");
        break;
    case 'D':
        put_fmt(b, "{%u,%" PRIu32 "}", f->v.dec.scale, f->v.dec.value);
        break;
    case 'V':
        put_str(b, "undefined");
        break;
    case 'A':
        put_array(b, f->v.bytes);
        break;
    case 'F':
        put_table(b, f->v.bytes);
        break;
    default:
        put_str(b, "?");
        break;
    }
}

int wr_headers_validate_binding(wr_bytes_t binding_args, char *err, size_t errlen)
{
    wr_field_t f;
    if (!wr_table_get(binding_args, "x-match", &f))
        return 0;
    if (f.type == 'S' &&
        (wr_bytes_eq_str(f.v.bytes, "all") || wr_bytes_eq_str(f.v.bytes, "any") ||
         wr_bytes_eq_str(f.v.bytes, "all-with-x") || wr_bytes_eq_str(f.v.bytes, "any-with-x")))
        return 0;

    wr_buf_t b;
    wr_buf_init(&b);
    if (f.type == 'S') {
        put_str(&b, "Invalid x-match field value ");
        put_term(&b, &f);
        put_str(&b, "; expected all, any, all-with-x, or any-with-x");
    } else {
        put_fmt(&b, "Invalid x-match field type %s (value ", wr_field_type_name(f.type));
        put_term(&b, &f);
        put_str(&b, "); expected longstr");
    }
    if (err != NULL && errlen > 0) {
        size_t n = b.len < errlen - 1 ? b.len : errlen - 1;
        if (n)
            memcpy(err, b.p, n);
        err[n] = '\0';
    }
    wr_buf_free(&b);
    return WR_EINVAL;
}
