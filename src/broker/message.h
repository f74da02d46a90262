/*
 * message.h - a published message: reference counted, immutable once
 * complete, shared by every queue it was routed to.
 *
 * One allocation holds the header and, after it, the exchange name, the
 * routing key, the encoded content-header properties (flags + property
 * list, exactly as the publisher sent them) and the body.  Deliveries copy
 * the property bytes and body straight into the consumer's output buffer,
 * so a message is never re-encoded unless the broker changes it (dead
 * lettering adds x-death, which makes a new message).
 *
 * Ownership: wr_msg_new returns a message with one reference, owned by the
 * caller.  Each queue entry, unacked delivery and pending transaction holds
 * one reference; wr_msg_unref frees the message when the last one goes.
 */
#ifndef WR_MESSAGE_H
#define WR_MESSAGE_H

#include "core/buf.h"

typedef struct wr_msg {
    uint32_t refs;
    uint8_t persistent; /* delivery-mode 2 */
    uint8_t priority;
    uint8_t exchange_len;
    uint8_t rk_len;
    uint32_t props_len;
    int64_t ttl; /* per-message expiration in ms, or -1 */
    uint64_t body_len;
    uint64_t body_have; /* bytes received so far while assembling */
    uint8_t *body;      /* points into data[] */
    uint8_t data[];     /* exchange, routing key, properties, body */
} wr_msg_t;

/* Bytes held by all live messages (for the memory alarm). */
extern uint64_t wr_msg_mem_bytes;

/* Allocates a message with room for body_len bytes of body (to be filled
 * by wr_msg_append_body).  Strings longer than 255 are a caller bug. */
wr_msg_t *wr_msg_new(wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props,
                     uint64_t body_len);
/* Copies body bytes in; returns 1 once the body is complete. */
int wr_msg_append_body(wr_msg_t *m, const uint8_t *p, size_t n);

static inline void wr_msg_ref(wr_msg_t *m)
{
    m->refs++;
}
void wr_msg_unref(wr_msg_t *m);
/* Frees the recycled small-message blocks (see message.c). */
void wr_msg_cache_release(void);

static inline wr_bytes_t wr_msg_exchange(const wr_msg_t *m)
{
    return (wr_bytes_t){m->data, m->exchange_len};
}
static inline wr_bytes_t wr_msg_routing_key(const wr_msg_t *m)
{
    return (wr_bytes_t){m->data + m->exchange_len, m->rk_len};
}
static inline wr_bytes_t wr_msg_props(const wr_msg_t *m)
{
    return (wr_bytes_t){m->data + m->exchange_len + m->rk_len, m->props_len};
}
/* Bytes the message accounts for in x-max-length-bytes: the body. */
static inline uint64_t wr_msg_size(const wr_msg_t *m)
{
    return m->body_len;
}

struct wr_field;
/* Returns a copy of m whose headers have key set to *val (added last), or
 * removed when val is NULL; consumes the caller's reference to m.  Other
 * properties and the body are kept byte for byte. */
wr_msg_t *wr_msg_set_header(wr_msg_t *m, const char *key, const struct wr_field *val);

/* Parses an AMQP expiration property (a decimal string of milliseconds).
 * Returns 0 and *ms, or WR_EINVAL with RabbitMQ's reason in why
 * ("no_integer", "{value_negative,-1}", "{leftover_string,\".5\"}"). */
int wr_msg_parse_expiration(wr_bytes_t s, int64_t *ms, char *why, size_t whylen);

#endif
