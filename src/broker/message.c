/* message.c - reference-counted messages (see message.h). */
#include "broker/message.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

uint64_t wr_msg_mem_bytes;

/* Small messages are recycled through free lists, one per 64-byte size
 * class up to 512 bytes: a message lives for microseconds when consumers
 * keep up, and malloc's own caches are too shallow for the bursts of a
 * pipelined publisher (a read of 64 KB carries ~1,500 small messages), so
 * free() went down its slow path.  The lists hold at most MSG_CACHE_MAX
 * bytes in all. */
#define MSG_CLASS_SIZE 64
#define MSG_CLASSES    8
/* Under AddressSanitizer nothing is recycled, so that a message used after
 * its last reference is dropped is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define MSG_CACHE_MAX 0u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSG_CACHE_MAX 0u
#endif
#endif
#ifndef MSG_CACHE_MAX
#define MSG_CACHE_MAX (1u << 20)
#endif

typedef struct msg_free {
    struct msg_free *next;
} msg_free_t;

static msg_free_t *msg_cache[MSG_CLASSES];
static size_t msg_cache_bytes;

static size_t msg_bytes(size_t hdr, uint64_t body_len)
{
    return sizeof(wr_msg_t) + hdr + body_len;
}

/* The size class of a message of that many bytes, or -1 if too big. */
static int msg_class(size_t bytes)
{
    return bytes <= MSG_CLASS_SIZE * MSG_CLASSES ? (int)((bytes - 1) / MSG_CLASS_SIZE) : -1;
}

wr_msg_t *wr_msg_new(wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props,
                     uint64_t body_len)
{
    size_t hdr = exchange.n + routing_key.n + props.n;
    size_t bytes = msg_bytes(hdr, body_len);
    int cls = msg_class(bytes);
    wr_msg_t *m;
    if (cls >= 0 && msg_cache[cls]) {
        m = (wr_msg_t *)msg_cache[cls];
        msg_cache[cls] = msg_cache[cls]->next;
        msg_cache_bytes -= (size_t)(cls + 1) * MSG_CLASS_SIZE;
    } else {
        m = wr_xmalloc(cls >= 0 ? (size_t)(cls + 1) * MSG_CLASS_SIZE : bytes);
    }
    wr_msg_mem_bytes += bytes;
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
    if (--m->refs != 0)
        return;
    size_t bytes = msg_bytes((size_t)m->exchange_len + m->rk_len + m->props_len, m->body_len);
    wr_msg_mem_bytes -= bytes;
    int cls = msg_class(bytes);
    size_t csize = (size_t)(cls + 1) * MSG_CLASS_SIZE;
    if (cls >= 0 && msg_cache_bytes + csize <= MSG_CACHE_MAX) {
        msg_free_t *f = (msg_free_t *)m;
        f->next = msg_cache[cls];
        msg_cache[cls] = f;
        msg_cache_bytes += csize;
        return;
    }
    free(m);
}

void wr_msg_cache_release(void)
{
    for (int i = 0; i < MSG_CLASSES; i++) {
        while (msg_cache[i]) {
            msg_free_t *f = msg_cache[i];
            msg_cache[i] = f->next;
            free(f);
        }
    }
    msg_cache_bytes = 0;
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
