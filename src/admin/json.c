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
