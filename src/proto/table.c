/*
 * table.c - AMQP field tables and field values (see table.h).
 *
 * Tables stay in wire form; this module validates them, walks them and
 * writes them.  The one place that recurses is validation of nested tables
 * and arrays, and it stops at max_depth, so stack use is bounded by the
 * caller's limit (WR_TABLE_MAX_DEPTH small frames) whatever the input.
 * Depth counts the outermost table or array as level 1.
 */
#include "proto/table.h"

#include <assert.h>
#include <stdio.h>

#include "core/err.h"

/*
 * read_value reads the value of a field of type `type` from [*pp, end),
 * advancing *pp past it.  It checks bounds and the type octet but does not
 * look inside nested tables and arrays (validation does that).  Returns 0
 * or WR_EFRAME.
 */
static int read_value(uint8_t type, const uint8_t **pp, const uint8_t *end, wr_field_t *val)
{
    const uint8_t *p = *pp;
    size_t avail = (size_t)(end - p);
    size_t need;

    switch (type) {
    case 't':
    case 'b':
    case 'B':
        need = 1;
        break;
    case 's':
    case 'u':
        need = 2;
        break;
    case 'I':
    case 'i':
    case 'f':
        need = 4;
        break;
    case 'l':
    case 'd':
    case 'T':
        need = 8;
        break;
    case 'D':
        need = 5;
        break;
    case 'S':
    case 'x':
    case 'A':
    case 'F':
        if (avail < 4)
            return WR_EFRAME;
        need = wr_get_u32(p);
        p += 4;
        avail -= 4;
        break;
    case 'V':
        need = 0;
        break;
    default:
        return WR_EFRAME;
    }
    if (need > avail)
        return WR_EFRAME;

    val->type = type;
    switch (type) {
    case 't':
        /* RabbitMQ reads any non-zero octet as true. */
        val->v.i = p[0] != 0;
        break;
    case 'b':
        val->v.i = (int8_t)p[0];
        break;
    case 'B':
        val->v.i = p[0];
        break;
    case 's':
        val->v.i = (int16_t)wr_get_u16(p);
        break;
    case 'u':
        val->v.i = wr_get_u16(p);
        break;
    case 'I':
        val->v.i = (int32_t)wr_get_u32(p);
        break;
    case 'i':
        val->v.i = wr_get_u32(p);
        break;
    case 'l':
        val->v.i = (int64_t)wr_get_u64(p);
        break;
    case 'f': {
        uint32_t bits = wr_get_u32(p);
        memcpy(&val->v.f, &bits, sizeof bits);
        break;
    }
    case 'd': {
        uint64_t bits = wr_get_u64(p);
        memcpy(&val->v.d, &bits, sizeof bits);
        break;
    }
    case 'D':
        val->v.dec.scale = p[0];
        val->v.dec.value = wr_get_u32(p + 1);
        break;
    case 'T':
        val->v.u = wr_get_u64(p);
        break;
    case 'V':
        val->v.u = 0;
        break;
    default: /* S x A F */
        val->v.bytes.p = p;
        val->v.bytes.n = need;
        break;
    }
    *pp = p + need;
    return 0;
}

static int validate(wr_bytes_t c, int is_table, int max_depth);

/* Validates whatever a value contains: nested tables and arrays one level
 * further down; every other type is complete once read_value accepted it. */
static int validate_nested(const wr_field_t *val, int max_depth)
{
    if (val->type == 'F')
        return validate(val->v.bytes, 1, max_depth - 1);
    if (val->type == 'A')
        return validate(val->v.bytes, 0, max_depth - 1);
    return 0;
}

/* validate checks a table (key, value pairs) or array (values) content. */
static int validate(wr_bytes_t c, int is_table, int max_depth)
{
    if (max_depth < 1)
        return WR_EDEPTH;
    if (c.n == 0)
        return 0;
    const uint8_t *p = c.p;
    const uint8_t *end = c.p + c.n;
    while (p != end) {
        if (is_table) {
            size_t klen = p[0];
            if (klen > (size_t)(end - p) - 1)
                return WR_EFRAME;
            p += 1 + klen;
        }
        if (p == end)
            return WR_EFRAME;
        uint8_t type = *p++;
        wr_field_t val;
        int rc = read_value(type, &p, end, &val);
        if (rc < 0)
            return rc;
        rc = validate_nested(&val, max_depth);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wr_table_validate(wr_bytes_t t, int max_depth)
{
    return validate(t, 1, max_depth);
}

int wr_array_validate(wr_bytes_t a, int max_depth)
{
    return validate(a, 0, max_depth);
}

void wr_table_iter_init(wr_table_iter_t *it, wr_bytes_t t)
{
    /* No arithmetic on a NULL view: an empty table may be {NULL, 0}. */
    it->p = t.p;
    it->end = t.n ? t.p + t.n : t.p;
}

int wr_table_next(wr_table_iter_t *it, wr_bytes_t *key, wr_field_t *val)
{
    if (it->p == it->end)
        return 0;
    const uint8_t *p = it->p;
    size_t klen = p[0];
    if (klen > (size_t)(it->end - p) - 1)
        return WR_EFRAME;
    key->p = p + 1;
    key->n = klen;
    p += 1 + klen;
    if (p == it->end)
        return WR_EFRAME;
    uint8_t type = *p++;
    int rc = read_value(type, &p, it->end, val);
    if (rc < 0)
        return rc;
    it->p = p;
    return 1;
}

int wr_array_next(wr_table_iter_t *it, wr_field_t *val)
{
    if (it->p == it->end)
        return 0;
    const uint8_t *p = it->p;
    uint8_t type = *p++;
    int rc = read_value(type, &p, it->end, val);
    if (rc < 0)
        return rc;
    it->p = p;
    return 1;
}

int wr_table_get(wr_bytes_t t, const char *key, wr_field_t *val)
{
    wr_bytes_t want = wr_bytes_of(key);
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    wr_table_iter_init(&it, t);
    while (wr_table_next(&it, &k, &v) == 1) {
        if (wr_bytes_eq(k, want)) {
            *val = v;
            return 1;
        }
    }
    return 0;
}

int wr_field_int(const wr_field_t *f, int64_t *out)
{
    switch (f->type) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
        *out = f->v.i;
        return 1;
    default:
        return 0;
    }
}

int wr_field_equal(const wr_field_t *a, const wr_field_t *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case 't':
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
        return a->v.i == b->v.i;
    case 'T':
        return a->v.u == b->v.u;
    case 'f':
        /* Numeric equality: NaN never matches, 0.0 matches -0.0. */
        return a->v.f == b->v.f;
    case 'd':
        return a->v.d == b->v.d;
    case 'D':
        return a->v.dec.scale == b->v.dec.scale && a->v.dec.value == b->v.dec.value;
    case 'V':
        return 1;
    case 'S':
    case 'x':
    case 'A':
    case 'F':
        return wr_bytes_eq(a->v.bytes, b->v.bytes);
    default:
        return 0;
    }
}

void wr_field_put(wr_buf_t *b, const wr_field_t *f)
{
    switch (f->type) {
    case 't':
        wr_buf_put_u8(b, 't');
        wr_buf_put_u8(b, f->v.i ? 1 : 0);
        return;
    case 'b':
    case 'B':
        wr_buf_put_u8(b, f->type);
        wr_buf_put_u8(b, (uint8_t)f->v.i);
        return;
    case 's':
    case 'u':
        wr_buf_put_u8(b, f->type);
        wr_buf_put_u16(b, (uint16_t)f->v.i);
        return;
    case 'I':
    case 'i':
        wr_buf_put_u8(b, f->type);
        wr_buf_put_u32(b, (uint32_t)f->v.i);
        return;
    case 'l':
        wr_buf_put_u8(b, 'l');
        wr_buf_put_u64(b, (uint64_t)f->v.i);
        return;
    case 'f': {
        uint32_t bits;
        memcpy(&bits, &f->v.f, sizeof bits);
        wr_buf_put_u8(b, 'f');
        wr_buf_put_u32(b, bits);
        return;
    }
    case 'd': {
        uint64_t bits;
        memcpy(&bits, &f->v.d, sizeof bits);
        wr_buf_put_u8(b, 'd');
        wr_buf_put_u64(b, bits);
        return;
    }
    case 'D':
        wr_buf_put_u8(b, 'D');
        wr_buf_put_u8(b, f->v.dec.scale);
        wr_buf_put_u32(b, f->v.dec.value);
        return;
    case 'T':
        wr_buf_put_u8(b, 'T');
        wr_buf_put_u64(b, f->v.u);
        return;
    case 'S':
    case 'x':
    case 'A':
    case 'F':
        wr_buf_put_u8(b, f->type);
        wr_buf_put_longstr(b, f->v.bytes);
        return;
    case 'V':
        wr_buf_put_u8(b, 'V');
        return;
    default:
        /* An unknown type is a caller bug.  Without assertions, write void
         * so that the surrounding table at least stays well-formed. */
        assert(0 && "wr_field_put: unknown field type");
        wr_buf_put_u8(b, 'V');
        return;
    }
}

void wr_table_put_key(wr_buf_t *b, wr_bytes_t key)
{
    wr_buf_put_shortstr(b, key);
}

size_t wr_table_begin(wr_buf_t *b)
{
    size_t off = b->len;
    wr_buf_put_u32(b, 0);
    return off;
}

void wr_table_end(wr_buf_t *b, size_t off)
{
    wr_buf_patch_u32(b, off, (uint32_t)(b->len - off - 4));
}

const char *wr_field_type_name(uint8_t type)
{
    switch (type) {
    case 't':
        return "bool";
    case 'b':
        return "byte";
    case 'B':
        return "unsignedbyte";
    case 's':
        return "short";
    case 'u':
        return "unsignedshort";
    case 'I':
        return "signedint";
    case 'i':
        return "unsignedint";
    case 'l':
        return "long";
    case 'f':
        return "float";
    case 'd':
        return "double";
    case 'D':
        return "decimal";
    case 'S':
        return "longstr";
    case 'x':
        return "binary";
    case 'A':
        return "array";
    case 'T':
        return "timestamp";
    case 'F':
        return "table";
    case 'V':
        return "void";
    default:
        return "unknown";
    }
}

void wr_field_format(const wr_field_t *f, char *out, size_t n)
{
    int64_t v;
    if (f->type == 't')
        snprintf(out, n, "%s", f->v.i ? "true" : "false");
    else if (wr_field_int(f, &v))
        snprintf(out, n, "%lld", (long long)v);
    else if (f->type == 'S' || f->type == 'x')
        snprintf(out, n, "%.*s", (int)(f->v.bytes.n > 200 ? 200 : f->v.bytes.n),
                 (const char *)f->v.bytes.p);
    else if (f->type == 'd')
        snprintf(out, n, "%g", f->v.d);
    else if (f->type == 'f')
        snprintf(out, n, "%g", (double)f->v.f);
    else if (f->type == 'T')
        snprintf(out, n, "%llu", (unsigned long long)f->v.u);
    else if (f->type == 'V')
        snprintf(out, n, "undefined");
    else
        snprintf(out, n, "[...]");
}
