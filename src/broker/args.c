/* args.c - argument equivalence on redeclaration (see args.h). */
#include "broker/args.h"

#include <stdio.h>

#include "proto/table.h"

const char *const wr_queue_equiv_keys[] = {"x-expires",
                                           "x-message-ttl",
                                           "x-dead-letter-exchange",
                                           "x-dead-letter-routing-key",
                                           "x-max-length",
                                           "x-max-length-bytes",
                                           "x-max-priority",
                                           "x-overflow",
                                           "x-single-active-consumer",
                                           "x-delivery-limit",
                                           "x-dead-letter-strategy",
                                           NULL};

const char *const wr_exchange_equiv_keys[] = {"alternate-exchange", NULL};

static int type_class(uint8_t t)
{
    switch (t) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
        return 'I';
    case 'f':
    case 'd':
        return 'd';
    default:
        return t;
    }
}

static int same_value(const wr_field_t *a, const wr_field_t *b)
{
    if (type_class(a->type) != type_class(b->type))
        return 0;
    int64_t x, y;
    if (wr_field_int(a, &x) && wr_field_int(b, &y))
        return x == y;
    switch (a->type) {
    case 'f':
    case 'd': {
        double p = a->type == 'f' ? a->v.f : a->v.d;
        double q = b->type == 'f' ? b->v.f : b->v.d;
        return p == q;
    }
    case 't':
        return a->v.i == b->v.i;
    case 'T':
        return a->v.u == b->v.u;
    case 'D':
        return a->v.dec.scale == b->v.dec.scale && a->v.dec.value == b->v.dec.value;
    case 'V':
        return 1;
    default:
        return wr_bytes_eq(a->v.bytes, b->v.bytes);
    }
}

/* RabbitMQ's val/1: "none", "the value 'V' of type 'T'" or "'V'". */
static void describe(const wr_field_t *f, int with_type, char *out, size_t n)
{
    char v[256];
    if (f == NULL) {
        snprintf(out, n, "none");
        return;
    }
    wr_field_format(f, v, sizeof v);
    if (with_type)
        snprintf(out, n, "the value '%s' of type '%s'", v, wr_field_type_name(f->type));
    else
        snprintf(out, n, "'%s'", v);
}

int wr_args_equivalent(wr_bytes_t current, wr_bytes_t received, const char *const *keys,
                       const char *what, char *err, size_t errlen)
{
    for (; *keys; keys++) {
        wr_field_t c, r;
        int hc = current.n && wr_table_get(current, *keys, &c);
        int hr = received.n && wr_table_get(received, *keys, &r);
        if (!hc && !hr)
            continue;
        if (hc && hr && same_value(&c, &r))
            continue;
        char got[300], cur[300];
        /* Both present: RabbitMQ compares bare values and prints them so;
         * one missing: it prints the typed value against "none". */
        int typed = !(hc && hr);
        describe(hr ? &r : NULL, typed, got, sizeof got);
        describe(hc ? &c : NULL, typed, cur, sizeof cur);
        snprintf(err, errlen, "inequivalent arg '%s' for %s: received %s but current is %s", *keys,
                 what, got, cur);
        return 0;
    }
    return 1;
}
