/* json.c - AMQP field tables and tag lists as JSON (see json.h). */
#include "admin/json.h"

#include <stdio.h>
#include <string.h>

static json_t *field_at(const wr_field_t *f, int depth);

static json_t *table_at(wr_bytes_t t, int depth)
{
    json_t *o = json_object();
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t v;
    wr_table_iter_init(&it, t);
    while (wr_table_next(&it, &k, &v) == 1) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k.n, (const char *)k.p);
        json_object_set_new(o, key, field_at(&v, depth + 1));
    }
    return o;
}

static json_t *field_at(const wr_field_t *f, int depth)
{
    if (depth > 32)
        return json_null();
    switch (f->type) {
    case 'S':
    case 'x':
        return json_stringn((const char *)f->v.bytes.p, f->v.bytes.n);
    case 't':
        return json_boolean(f->v.i);
    case 'T':
        return json_integer((json_int_t)f->v.u);
    case 'f':
        return json_real(f->v.f);
    case 'd':
        return json_real(f->v.d);
    case 'D': {
        double d = f->v.dec.value;
        for (int i = 0; i < f->v.dec.scale; i++)
            d /= 10;
        return json_real(d);
    }
    case 'V':
        return json_null();
    case 'F':
        return table_at(f->v.bytes, depth);
    case 'A': {
        json_t *a = json_array();
        wr_table_iter_t it;
        wr_field_t v;
        wr_table_iter_init(&it, f->v.bytes);
        while (wr_array_next(&it, &v) == 1)
            json_array_append_new(a, field_at(&v, depth + 1));
        return a;
    }
    default:
        return json_integer(f->v.i);
    }
}

json_t *wr_json_tags(const char *csv)
{
    json_t *a = json_array();
    for (const char *p = csv; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    return a;
}

json_t *wr_json_table(wr_bytes_t table)
{
    return table_at(table, 0);
}

json_t *wr_json_field(const wr_field_t *f)
{
    return field_at(f, 0);
}

/* ---- JSON -> AMQP tables ---- */

static void put_value(wr_buf_t *b, const json_t *v, int depth);

static void put_table(wr_buf_t *b, const json_t *o, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        wr_table_put_key(b, wr_bytes_of(k));
        put_value(b, v, depth + 1);
    }
}

static void put_value(wr_buf_t *b, const json_t *v, int depth)
{
    wr_field_t f = {0};
    if (json_is_string(v)) {
        f = wr_field_longstr(
            (wr_bytes_t){(const uint8_t *)json_string_value(v), json_string_length(v)});
    } else if (json_is_integer(v)) {
        f = wr_field_long(json_integer_value(v));
    } else if (json_is_boolean(v)) {
        f = wr_field_bool(json_is_true(v));
    } else if (json_is_real(v)) {
        f.type = 'd';
        f.v.d = json_real_value(v);
    } else if (json_is_object(v) && depth < 32) {
        wr_buf_put_u8(b, 'F');
        size_t at = wr_table_begin(b);
        put_table(b, v, depth);
        wr_table_end(b, at);
        return;
    } else if (json_is_array(v) && depth < 32) {
        wr_buf_put_u8(b, 'A');
        size_t at = wr_table_begin(b);
        size_t i;
        json_t *e;
        json_array_foreach((json_t *)v, i, e) put_value(b, e, depth + 1);
        wr_table_end(b, at);
        return;
    } else {
        f.type = 'V';
    }
    wr_field_put(b, &f);
}

void wr_json_put_table(wr_buf_t *b, const json_t *o)
{
    put_table(b, o, 0);
}
