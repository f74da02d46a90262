/* message.c - reference-counted messages (see message.h). */
#include "broker/message.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

uint64_t wr_msg_mem_bytes;

wr_msg_t *wr_msg_new(wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props,
                     uint64_t body_len)
{
    size_t hdr = exchange.n + routing_key.n + props.n;
    wr_msg_t *m = wr_xmalloc(sizeof *m + hdr + body_len);
    wr_msg_mem_bytes += sizeof *m + hdr + body_len;
    m->refs = 1;
    m->persistent = 0;
    m->priority = 0;
    m->exchange_len = (uint8_t)exchange.n;
    m->rk_len = (uint8_t)routing_key.n;
    m->props_len = (uint32_t)props.n;
    m->ttl = -1;
    m->body_len = body_len;
    m->body_have = 0;
    uint8_t *p = m->data;
    if (exchange.n)
        memcpy(p, exchange.p, exchange.n);
    p += exchange.n;
    if (routing_key.n)
        memcpy(p, routing_key.p, routing_key.n);
    p += routing_key.n;
    if (props.n)
        memcpy(p, props.p, props.n);
    m->body = p + props.n;
    return m;
}

int wr_msg_append_body(wr_msg_t *m, const uint8_t *p, size_t n)
{
    memcpy(m->body + m->body_have, p, n);
    m->body_have += n;
    return m->body_have == m->body_len;
}

void wr_msg_unref(wr_msg_t *m)
{
    if (--m->refs == 0) {
        wr_msg_mem_bytes -= sizeof *m + m->exchange_len + m->rk_len + m->props_len + m->body_len;
        free(m);
    }
}

int wr_msg_parse_expiration(wr_bytes_t s, int64_t *ms, char *why, size_t whylen)
{
    /* As Erlang's string:to_integer, which RabbitMQ uses: an optional sign,
     * digits, and nothing after them. */
    size_t i = 0;
    int neg = 0;
    if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
        neg = s.p[i++] == '-';
    size_t digits = i;
    int64_t v = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        if (v > (INT64_MAX - 9) / 10) {
            snprintf(why, whylen, "{value_too_large,%.*s}", (int)s.n, (const char *)s.p);
            return WR_EINVAL;
        }
        v = v * 10 + (s.p[i++] - '0');
    }
    if (i == digits) {
        snprintf(why, whylen, "no_integer");
        return WR_EINVAL;
    }
    if (i < s.n) {
        snprintf(why, whylen, "{leftover_string,\"%.*s\"}", (int)(s.n - i > 40 ? 40 : s.n - i),
                 (const char *)s.p + i);
        return WR_EINVAL;
    }
    if (neg && v != 0) {
        snprintf(why, whylen, "{value_negative,-%lld}", (long long)v);
        return WR_EINVAL;
    }
    *ms = v;
    return 0;
}

wr_msg_t *wr_msg_set_header(wr_msg_t *m, const char *key, const wr_field_t *val)
{
    wr_basic_props_t pr;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) != 0)
        return m;
    wr_bytes_t k0 = wr_bytes_of(key);
    wr_buf_t hdr, props;
    wr_buf_init(&hdr);
    wr_buf_init(&props);
    size_t top = wr_table_begin(&hdr);
    if (pr.flags & WR_PROP_HEADERS) {
        wr_table_iter_t it;
        wr_bytes_t k;
        wr_field_t f;
        wr_table_iter_init(&it, pr.headers);
        while (wr_table_next(&it, &k, &f) == 1) {
            if (wr_bytes_eq(k, k0))
                continue;
            wr_table_put_key(&hdr, k);
            wr_field_put(&hdr, &f);
        }
    }
    if (val) {
        wr_table_put_key(&hdr, k0);
        wr_field_put(&hdr, val);
    }
    wr_table_end(&hdr, top);
    pr.flags |= WR_PROP_HEADERS;
    pr.headers = (wr_bytes_t){hdr.p + 4, hdr.len - 4};
    wr_props_encode(&props, &pr);
    wr_msg_t *n = wr_msg_new(wr_msg_exchange(m), wr_msg_routing_key(m),
                             (wr_bytes_t){props.p, props.len}, m->body_len);
    wr_msg_append_body(n, m->body, m->body_len);
    n->persistent = m->persistent;
    n->priority = m->priority;
    n->ttl = m->ttl;
    wr_msg_unref(m);
    wr_buf_free(&hdr);
    wr_buf_free(&props);
    return n;
}
