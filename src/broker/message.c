/* message.c - reference-counted messages (see message.h). */
#include "broker/message.h"

#include <stdlib.h>

#include "core/err.h"

wr_msg_t *wr_msg_new(wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props,
                     uint64_t body_len)
{
    size_t hdr = exchange.n + routing_key.n + props.n;
    wr_msg_t *m = wr_xmalloc(sizeof *m + hdr + body_len);
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
    if (--m->refs == 0)
        free(m);
}

int wr_msg_parse_expiration(wr_bytes_t s, int64_t *ms)
{
    if (s.n == 0 || s.n > 18)
        return WR_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return WR_EINVAL;
        v = v * 10 + (s.p[i] - '0');
    }
    *ms = v;
    return 0;
}
