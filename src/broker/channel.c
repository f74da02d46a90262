/*
 * channel.c - AMQP channels: the exchange, queue, basic, confirm and tx
 * classes; content assembly; deliveries and their acknowledgement.
 *
 * Deliveries out on a channel are kept in a deque indexed by delivery tag:
 * tags are consecutive per channel, so the entry for tag t is at position
 * t - ua_base and every ack is O(1).  Settled entries become holes that are
 * trimmed from the front; deliveries without ack leave a hole only when
 * older deliveries are still out.
 *
 * Deliveries are written straight into the connection's output buffer
 * (method, header and body frames in one reservation); the socket layer
 * flushes once per loop pass.
 *
 * Direct reply-to (RabbitMQ's amq.rabbitmq.reply-to) involves no queue: a
 * channel consuming the pseudo-queue is registered in a broker-wide map
 * under a random suffix, requests it publishes with that reply_to get the
 * full name "amq.rabbitmq.reply-to.<suffix>" instead, and a publish to the
 * default exchange with such a routing key is written straight to the
 * channel found in the map (or dropped if none is: the requester is gone).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/args.h"
#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/headers.h"
#include "broker/access.h"
#include "broker/ops.h"
#include "broker/persist.h"
#include "broker/quorum.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/frame.h"
#include "proto/table.h"

static wr_channel_t *confirm_dirty;
static int durable_wake(wr_durable_waiter_t *w);
static void reply_consumer_drop(wr_channel_t *ch);
static void send_declare_ok(wr_channel_t *ch, wr_queue_t *q);

static uint64_t next_channel_uid;

static const char *vhname(const wr_channel_t *ch)
{
    return ch->conn->vhost->name;
}

#define BYTES_FMT(b) (int)(b).n, (const char *)(b).p

/* The actor an operation on this channel runs as. */
static wr_actor_t actor_of(const wr_channel_t *ch)
{
    return (wr_actor_t){ch->conn->auth_user, ch->conn};
}

/* An operation's refusal closes the channel (or the connection, for a
 * hard code). */
static void op_failed(wr_channel_t *ch, const wr_reply_t *r, uint32_t mid)
{
    wr_channel_error(ch, r->code, mid, "%s", r->text);
}

void wr_channel_error(wr_channel_t *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (wr_amqp_reply_is_hard(code)) {
        wr_conn_error(ch->conn, code, method_id, "%s", text);
        return;
    }
    if (ch->state != WR_CH_OPEN)
        return;
    char full[600];
    snprintf(full, sizeof full, "%s - %s", wr_amqp_reply_name(code), text);
    full[255] = '\0';
    wr_info("closing channel %u of %s: %s", ch->id, ch->conn->sock->peer, full);
    wr_method_t m = {.id = WR_M_CHANNEL_CLOSE};
    m.u.channel_close.reply_code = code;
    m.u.channel_close.reply_text = wr_bytes_of(full);
    m.u.channel_close.class_id = (uint16_t)(method_id >> 16);
    m.u.channel_close.method_id = (uint16_t)method_id;
    wr_conn_send_method(ch->conn, ch->id, &m);
    ch->state = WR_CH_CLOSING;
    wr_channel_release(ch);
}

/* ---- life cycle ---- */

wr_channel_t *wr_channel_new(wr_conn_t *c, uint16_t id)
{
    if (id >= c->n_channel_slots) {
        uint32_t n = c->n_channel_slots ? c->n_channel_slots : 8;
        while (n <= id)
            n *= 2;
        c->channels = wr_xrealloc(c->channels, n * sizeof *c->channels);
        memset(c->channels + c->n_channel_slots, 0, (n - c->n_channel_slots) * sizeof *c->channels);
        c->n_channel_slots = n;
    }
    wr_channel_t *ch = wr_xcalloc(1, sizeof *ch);
    if (c->auth_user)
        c->auth_user->n_channels++;
    ch->conn = c;
    ch->waiter.wake = durable_wake;
    ch->id = id;
    ch->state = WR_CH_OPEN;
    ch->flow_active = 1;
    ch->next_tag = 1;
    ch->ua_base = 1;
    ch->uid = ++next_channel_uid;
    wr_map_init(&ch->consumers);
    c->channels[id] = ch;
    ch->next = c->channel_list;
    if (c->channel_list)
        c->channel_list->prev = ch;
    c->channel_list = ch;
    c->n_channels++;
    wr_stats_count(WR_NS_CHANNELS_OPENED);
    return ch;
}

void wr_channel_free(wr_channel_t *ch)
{
    wr_conn_t *c = ch->conn;
    if (c->auth_user)
        c->auth_user->n_channels--;
    c->channels[ch->id] = NULL;
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        c->channel_list = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    c->n_channels--;
    if (ch->confirm_dirty) {
        for (wr_channel_t **pp = &confirm_dirty; *pp; pp = &(*pp)->confirm_next) {
            if (*pp == ch) {
                *pp = ch->confirm_next;
                break;
            }
        }
    }
    wr_durable_unwait(&ch->waiter);
    wr_quorum_channel_gone(ch);
    wr_stats_retire(c->vhost, &ch->st);
    wr_stats_count(WR_NS_CHANNELS_CLOSED);
    /* Normally gone already with wr_channel_release; a stale entry would
     * let a reply reach freed memory. */
    reply_consumer_drop(ch);
    free(ch->pc);
    wr_map_free(&ch->consumers);
    free(ch->ua);
    free(ch->txops);
    free(ch);
}

/* ---- the unacked deque ---- */

static wr_unacked_t *ua_at(wr_channel_t *ch, uint64_t tag)
{
    if (tag < ch->ua_base || tag - ch->ua_base >= ch->ua_count)
        return NULL;
    return &ch->ua[(ch->ua_head + (size_t)(tag - ch->ua_base)) & (ch->ua_cap - 1)];
}

static void ua_push(wr_channel_t *ch, const wr_unacked_t *u)
{
    if (ch->ua_count == ch->ua_cap) {
        size_t ncap = ch->ua_cap ? ch->ua_cap * 2 : 16;
        wr_unacked_t *n = wr_xmalloc(ncap * sizeof *n);
        for (size_t i = 0; i < ch->ua_count; i++)
            n[i] = ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
        free(ch->ua);
        ch->ua = n;
        ch->ua_cap = ncap;
        ch->ua_head = 0;
    }
    ch->ua[(ch->ua_head + ch->ua_count) & (ch->ua_cap - 1)] = *u;
    ch->ua_count++;
}

static void ua_trim(wr_channel_t *ch)
{
    while (ch->ua_count && ch->ua[ch->ua_head].queue == NULL) {
        ch->ua_head = (ch->ua_head + 1) & (ch->ua_cap - 1);
        ch->ua_count--;
        ch->ua_base++;
    }
    if (ch->ua_count == 0) {
        ch->ua_base = ch->next_tag;
        ch->ua_head = 0;
        if (ch->ua_cap > 4096) {
            free(ch->ua);
            ch->ua = NULL;
            ch->ua_cap = 0;
        }
    }
}

/* A delivery tag was used by a delivery that needs no ack. */
static void ua_skip(wr_channel_t *ch)
{
    if (ch->ua_count == 0) {
        ch->ua_base = ch->next_tag;
    } else {
        wr_unacked_t hole = {0};
        ua_push(ch, &hole);
    }
}

/* SETTLE_REQUEUE is a client's nack or reject with requeue; SETTLE_RETURN
 * a delivery that comes back because its channel closed (a quorum queue
 * puts the first at its back, the second where it was). */
enum { SETTLE_ACK, SETTLE_REQUEUE, SETTLE_DISCARD, SETTLE_RETURN };

static void settle_one(wr_channel_t *ch, wr_unacked_t *u, int how)
{
    wr_queue_t *q = u->queue;
    wr_qent_t e = u->ent;
    if (u->consumer)
        u->consumer->unacked--;
    ch->n_unacked--;
    u->queue = NULL;
    u->consumer = NULL;
    switch (how) {
    case SETTLE_ACK:
        ch->st.n[WR_ST_ACK]++;
        q->st.n[WR_ST_ACK]++;
        if (q->n_consumers)
            wr_queue_kick(q); /* a consumer may have credit again */
        wr_queue_settle(q, &e);
        break;
    case SETTLE_REQUEUE:
        wr_queue_return(q, &e, 1);
        break;
    case SETTLE_RETURN:
        wr_queue_requeue(q, &e);
        break;
    default:
        if (q->n_consumers)
            wr_queue_kick(q);
        wr_queue_discard(q, &e);
        break;
    }
}

/* Applies an ack/nack/reject.  Returns 0, or -1 after closing the channel
 * for an unknown tag (RabbitMQ checks the whole range first: nothing is
 * settled when the tag is unknown). */
static int settle(wr_channel_t *ch, uint64_t tag, int multiple, int how, uint32_t method_id)
{
    if (multiple && tag == 0) {
        if (ch->ua_count == 0)
            return 0;
        tag = ch->ua_base + ch->ua_count - 1;
    }
    wr_unacked_t *u = ua_at(ch, tag);
    if (u == NULL || u->queue == NULL) {
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, method_id,
                         "unknown delivery tag %" PRIu64, tag);
        return -1;
    }
    if (multiple) {
        for (uint64_t t = ch->ua_base; t <= tag; t++) {
            wr_unacked_t *v = ua_at(ch, t);
            if (v && v->queue)
                settle_one(ch, v, how);
        }
    } else {
        settle_one(ch, u, how);
    }
    ua_trim(ch);
    return 0;
}

/* Every delivery out comes back: how is SETTLE_RETURN when the channel
 * closes, SETTLE_REQUEUE for basic.recover (a quorum queue puts those at
 * its back, as RabbitMQ does). */
static void requeue_all(wr_channel_t *ch, int how)
{
    for (uint64_t t = ch->ua_base; ch->ua_count && t < ch->ua_base + ch->ua_count; t++) {
        wr_unacked_t *v = ua_at(ch, t);
        if (v && v->queue)
            settle_one(ch, v, how);
    }
    ua_trim(ch);
}

/* ---- consumers ---- */

static void forget_consumer(wr_channel_t *ch, wr_chconsumer_t *cc)
{
    for (size_t i = 0; i < ch->ua_count; i++) {
        wr_unacked_t *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
        if (u->consumer == cc)
            u->consumer = NULL;
    }
    wr_map_del(&ch->consumers, (wr_bytes_t){(uint8_t *)cc->tag, cc->tag_len});
    free(cc);
}

static int consumer_can_take(wr_consumer_t *base)
{
    wr_chconsumer_t *cc = (wr_chconsumer_t *)base;
    wr_channel_t *ch = cc->ch;
    if (ch->state != WR_CH_OPEN || !ch->flow_active || wr_sock_congested(ch->conn->sock))
        return 0;
    if (base->no_ack)
        return 1;
    if (cc->prefetch && cc->unacked >= cc->prefetch)
        return 0;
    if (ch->prefetch_channel && ch->n_unacked >= ch->prefetch_channel)
        return 0;
    return 1;
}

/* Writes header and body frames of m at p; returns the end. */
static uint8_t *put_content(uint8_t *p, uint16_t chid, uint32_t frame_max, const wr_msg_t *m)
{
    wr_bytes_t props = wr_msg_props(m);
    p[0] = 2;
    wr_set_u16(p + 1, chid);
    wr_set_u32(p + 3, (uint32_t)(12 + props.n));
    wr_set_u16(p + 7, WR_CLASS_BASIC);
    wr_set_u16(p + 9, 0);
    wr_set_u64(p + 11, m->body_len);
    p += 19;
    memcpy(p, props.p, props.n);
    p += props.n;
    *p++ = WR_FRAME_END_OCTET;
    uint64_t chunk = frame_max - WR_FRAME_OVERHEAD;
    for (uint64_t off = 0; off < m->body_len; off += chunk) {
        uint64_t n = m->body_len - off < chunk ? m->body_len - off : chunk;
        p[0] = 3;
        wr_set_u16(p + 1, chid);
        wr_set_u32(p + 3, (uint32_t)n);
        memcpy(p + 7, m->body + off, n);
        p += 7 + n;
        *p++ = WR_FRAME_END_OCTET;
    }
    return p;
}

static size_t content_size(uint32_t frame_max, const wr_msg_t *m)
{
    uint64_t chunk = frame_max - WR_FRAME_OVERHEAD;
    uint64_t frames = (m->body_len + chunk - 1) / chunk;
    return 8 + 12 + m->props_len + frames * 8 + m->body_len;
}

/* A content-carrying method goes out in place: content_begin reserves room
 * for the method frame (args_len bytes of arguments) and the message,
 * writes the method frame's header and returns where the arguments go;
 * content_end, given the end of the arguments, writes the rest. */
static uint8_t *content_begin(wr_channel_t *ch, uint32_t method_id, size_t args_len,
                              const wr_msg_t *m)
{
    wr_conn_t *c = ch->conn;
    uint8_t *p =
        wr_buf_reserve(wr_sock_out(c->sock), 8 + 4 + args_len + content_size(c->frame_max, m));
    p[0] = 1;
    wr_set_u16(p + 1, ch->id);
    wr_set_u32(p + 3, (uint32_t)(4 + args_len));
    wr_set_u32(p + 7, method_id);
    return p + 11;
}

static void content_end(wr_channel_t *ch, uint8_t *p, const wr_msg_t *m)
{
    wr_buf_t *b = wr_sock_out(ch->conn->sock);
    *p++ = WR_FRAME_END_OCTET;
    p = put_content(p, ch->id, ch->conn->frame_max, m);
    b->len = (size_t)(p - b->p);
}

/* Writes a content-carrying method (its arguments already encoded in args)
 * followed by the message. */
static void send_with_content(wr_channel_t *ch, uint32_t method_id, const uint8_t *args,
                              size_t args_len, const wr_msg_t *m)
{
    uint8_t *p = content_begin(ch, method_id, args_len, m);
    memcpy(p, args, args_len);
    content_end(ch, p + args_len, m);
}

static size_t put_short(uint8_t *p, wr_bytes_t s)
{
    p[0] = (uint8_t)s.n;
    memcpy(p + 1, s.p, s.n);
    return 1 + s.n;
}

static void consumer_deliver(wr_consumer_t *base, wr_qent_t *e)
{
    wr_chconsumer_t *cc = (wr_chconsumer_t *)base;
    wr_channel_t *ch = cc->ch;
    uint64_t tag = ch->next_tag++;
    wr_bytes_t x = wr_msg_exchange(e->msg), rk = wr_msg_routing_key(e->msg);
    /* basic.deliver's arguments go straight into the output buffer. */
    uint8_t *p =
        content_begin(ch, WR_M_BASIC_DELIVER, 1 + cc->tag_len + 8 + 1 + 1 + x.n + 1 + rk.n, e->msg);
    p += put_short(p, (wr_bytes_t){(uint8_t *)cc->tag, cc->tag_len});
    wr_set_u64(p, tag);
    p += 8;
    *p++ = e->deliveries > 0;
    p += put_short(p, x);
    p += put_short(p, rk);
    content_end(ch, p, e->msg);
    wr_stat_t st = base->no_ack ? WR_ST_DELIVER_NO_ACK : WR_ST_DELIVER;
    ch->st.n[st]++;
    base->queue->st.n[st]++;
    if (e->deliveries > 0) {
        ch->st.n[WR_ST_REDELIVER]++;
        base->queue->st.n[WR_ST_REDELIVER]++;
    }
    if (base->no_ack) {
        ua_skip(ch);
        wr_queue_taken(base->queue, e);
        return;
    }
    wr_unacked_t u = {base->queue, cc, *e, wr_now_ms()};
    ua_push(ch, &u);
    cc->unacked++;
    ch->n_unacked++;
}

static void consumer_cancelled(wr_consumer_t *base)
{
    wr_chconsumer_t *cc = (wr_chconsumer_t *)base;
    wr_channel_t *ch = cc->ch;
    if (ch->conn->cap_cancel_notify && ch->state == WR_CH_OPEN) {
        wr_method_t m = {.id = WR_M_BASIC_CANCEL};
        m.u.basic_cancel.consumer_tag = (wr_bytes_t){(uint8_t *)cc->tag, cc->tag_len};
        m.u.basic_cancel.no_wait = 1;
        wr_conn_send_method(ch->conn, ch->id, &m);
    }
    forget_consumer(ch, cc);
}

static const wr_consumer_ops_t chconsumer_ops = {consumer_can_take, consumer_deliver,
                                                 consumer_cancelled};

void wr_channel_release(wr_channel_t *ch)
{
    /* Cancel consumers first so requeued messages are not handed straight
     * back to this channel. */
    while (ch->consumers.count) {
        size_t i = 0;
        wr_map_slot_t *s;
        wr_map_next(&ch->consumers, &i, &s);
        wr_chconsumer_t *cc = s->value;
        wr_queue_t *q = cc->base.queue;
        if (q)
            wr_queue_remove_consumer(q, &cc->base);
        forget_consumer(ch, cc);
    }
    reply_consumer_drop(ch);
    requeue_all(ch, SETTLE_RETURN);
    if (ch->assembling) {
        wr_msg_unref(ch->assembling);
        ch->assembling = NULL;
    }
    ch->content = WR_CONTENT_NONE;
    for (size_t i = 0; i < ch->n_txops; i++)
        if (ch->txops[i].msg)
            wr_msg_unref(ch->txops[i].msg);
    ch->n_txops = 0;
}

/* ---- confirms ---- */

static void confirm_mark(wr_channel_t *ch, uint64_t seq)
{
    ch->confirm_ready = seq;
    if (!ch->confirm_dirty) {
        ch->confirm_dirty = 1;
        ch->confirm_next = confirm_dirty;
        confirm_dirty = ch;
    }
}

void wr_channel_flush_confirms(wr_channel_t *ch)
{
    if (ch->state != WR_CH_OPEN || ch->confirm_ready <= ch->confirm_sent)
        return;
    wr_method_t m = {.id = WR_M_BASIC_ACK};
    m.u.basic_ack.delivery_tag = ch->confirm_ready;
    m.u.basic_ack.multiple = ch->confirm_ready - ch->confirm_sent > 1;
    ch->st.n[WR_ST_CONFIRM] += ch->confirm_ready - ch->confirm_sent;
    wr_conn_send_method(ch->conn, ch->id, &m);
    ch->confirm_sent = ch->confirm_ready;
}

void wr_conn_flush_confirms(void)
{
    while (confirm_dirty) {
        wr_channel_t *ch = confirm_dirty;
        confirm_dirty = ch->confirm_next;
        ch->confirm_dirty = 0;
        wr_channel_flush_confirms(ch);
    }
}

static void confirm_nack(wr_channel_t *ch, uint64_t seq)
{
    ch->confirm_ready = seq - 1;
    wr_channel_flush_confirms(ch);
    wr_method_t m = {.id = WR_M_BASIC_NACK};
    m.u.basic_nack.delivery_tag = seq;
    wr_conn_send_method(ch->conn, ch->id, &m);
    ch->confirm_sent = ch->confirm_ready = seq;
}

/* ---- direct reply-to ---- */

#define REPLY_QUEUE  "amq.rabbitmq.reply-to"
#define REPLY_PREFIX REPLY_QUEUE "."

/* Reply suffix -> the wr_channel_t whose reply consumer it names.  A
 * channel is here exactly while it has a reply consumer and is open, so a
 * lookup never returns a closed or freed channel.  The suffix carries 132
 * random bits, so a reply-to name cannot be guessed from another one. */
static wr_map_t reply_channels;

static int has_prefix(wr_bytes_t s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

static void reply_consumer_drop(wr_channel_t *ch)
{
    if (!ch->has_reply)
        return;
    wr_map_del(&reply_channels, (wr_bytes_t){(uint8_t *)ch->reply_suffix, ch->reply_suffix_len});
    ch->has_reply = 0;
}

/* The channel a full reply-to name ("amq.rabbitmq.reply-to.<suffix>")
 * stands for, or NULL if it names none (any more). */
static wr_channel_t *reply_channel(wr_bytes_t name)
{
    size_t n = strlen(REPLY_PREFIX);
    if (!has_prefix(name, REPLY_PREFIX))
        return NULL;
    return wr_map_get(&reply_channels, (wr_bytes_t){name.p + n, name.n - n});
}

/* Writes m (published to the default exchange with a reply-to name as its
 * routing key) to the reply consumer it names; without one the message is
 * dropped, as in RabbitMQ. */
static void deliver_reply(const wr_msg_t *m)
{
    wr_channel_t *ch = reply_channel(wr_msg_routing_key(m));
    if (ch == NULL || ch->state != WR_CH_OPEN)
        return;
    /* RabbitMQ 3.10 stamps a reply with the channel's next delivery tag
     * without consuming it (the next delivery gets the same tag); no-ack
     * deliveries are never settled, so clients do not mind, and we keep
     * the tags identical. */
    uint8_t args[1 + 255 + 8 + 1 + 1 + 255 + 1 + 255];
    size_t n = put_short(args, (wr_bytes_t){(uint8_t *)ch->reply_tag, ch->reply_tag_len});
    wr_set_u64(args + n, ch->next_tag);
    n += 8;
    args[n++] = 0;
    n += put_short(args + n, wr_msg_exchange(m));
    n += put_short(args + n, wr_msg_routing_key(m));
    send_with_content(ch, WR_M_BASIC_DELIVER, args, n, m);
}

/* basic.consume on amq.rabbitmq.reply-to: registers the channel under a
 * fresh suffix; nothing is consumed from any queue. */
static void reply_consume(wr_channel_t *ch, const wr_basic_consume_t *a)
{
    const uint32_t mid = WR_M_BASIC_CONSUME;
    wr_bytes_t tag = a->consumer_tag;
    /* The reply consumer's tag is not in ch->consumers: RabbitMQ keeps it
     * apart too, so only regular consumers' tags clash with it. */
    if (wr_map_get(&ch->consumers, tag)) {
        wr_conn_error(ch->conn, WR_AMQP_NOT_ALLOWED, mid, "attempt to reuse consumer tag '%.*s'",
                      BYTES_FMT(tag));
        return;
    }
    /* RabbitMQ's order: a consumer that wants to ack is refused even when
     * a reply consumer already exists. */
    if (!a->no_ack) {
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, mid, "reply consumer cannot acknowledge");
        return;
    }
    if (ch->has_reply) {
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, mid, "reply consumer already set");
        return;
    }
    char gen[64];
    if (tag.n == 0) {
        wr_gen_name("amq.ctag-", gen, sizeof gen);
        tag = wr_bytes_of(gen);
    }
    ch->reply_tag_len = (uint8_t)tag.n;
    memcpy(ch->reply_tag, tag.p, tag.n);
    /* The channel's unique id keeps suffixes distinct; the random part
     * makes them unguessable. */
    char prefix[24];
    snprintf(prefix, sizeof prefix, "%" PRIx64 ".", ch->uid);
    wr_gen_name(prefix, ch->reply_suffix, sizeof ch->reply_suffix);
    ch->reply_suffix_len = (uint8_t)strlen(ch->reply_suffix);
    wr_map_put(&reply_channels, (wr_bytes_t){(uint8_t *)ch->reply_suffix, ch->reply_suffix_len},
               ch);
    ch->has_reply = 1;
    if (!a->no_wait) {
        wr_method_t r = {.id = WR_M_BASIC_CONSUME_OK};
        r.u.basic_consume_ok.consumer_tag = tag;
        wr_conn_send_method(ch->conn, ch->id, &r);
    }
}

/* queue.declare of amq.rabbitmq.reply-to or a name under it: RabbitMQ
 * answers for the pseudo-queue whatever the flags (0 messages, 1
 * consumer) and for a full reply-to name only while its consumer exists. */
static void reply_declare(wr_channel_t *ch, const wr_queue_declare_t *a)
{
    wr_bytes_t name = a->queue;
    if (!wr_bytes_eq_str(name, REPLY_QUEUE) && reply_channel(name) == NULL) {
        wr_channel_error(ch, WR_AMQP_NOT_FOUND, WR_M_QUEUE_DECLARE, "no queue '%.*s' in vhost '%s'",
                         BYTES_FMT(name), vhname(ch));
        return;
    }
    ch->last_queue_len = (uint8_t)name.n;
    memcpy(ch->last_queue, name.p, name.n);
    if (a->no_wait)
        return;
    wr_method_t r = {.id = WR_M_QUEUE_DECLARE_OK};
    r.u.queue_declare_ok.queue = name;
    r.u.queue_declare_ok.message_count = 0;
    r.u.queue_declare_ok.consumer_count = 1;
    wr_conn_send_method(ch->conn, ch->id, &r);
}

/* A request published with reply_to "amq.rabbitmq.reply-to" gets the full
 * name of this channel's reply consumer instead, which means re-encoding
 * its properties into a new message (every other byte stays as sent).
 * Returns the message to publish (m itself if nothing changes), or NULL
 * after closing the channel because it has no reply consumer. */
static wr_msg_t *rewrite_reply_to(wr_channel_t *ch, wr_msg_t *m)
{
    wr_bytes_t props = wr_msg_props(m);
    if (props.n < 2 || !(wr_get_u16(props.p) & WR_PROP_REPLY_TO))
        return m;
    wr_basic_props_t pr;
    if (wr_props_decode(props.p, props.n, &pr) != 0 || !wr_bytes_eq_str(pr.reply_to, REPLY_QUEUE))
        return m;
    if (!ch->has_reply) {
        wr_msg_unref(m);
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, WR_M_BASIC_PUBLISH,
                         "fast reply consumer does not exist");
        return NULL;
    }
    char name[sizeof REPLY_PREFIX + sizeof ch->reply_suffix];
    int len = snprintf(name, sizeof name, REPLY_PREFIX "%.*s", (int)ch->reply_suffix_len,
                       ch->reply_suffix);
    pr.reply_to = (wr_bytes_t){(uint8_t *)name, (size_t)len};
    wr_buf_t b;
    wr_buf_init(&b);
    wr_props_encode(&b, &pr);
    wr_msg_t *r = wr_msg_new(wr_msg_exchange(m), wr_msg_routing_key(m), (wr_bytes_t){b.p, b.len},
                             m->body_len);
    wr_msg_append_body(r, m->body, m->body_len);
    r->persistent = m->persistent;
    r->priority = m->priority;
    r->ttl = m->ttl;
    wr_buf_free(&b);
    wr_msg_unref(m);
    return r;
}

/* ---- publishing ---- */

static void send_return(wr_channel_t *ch, const wr_msg_t *m, uint16_t code, const char *text)
{
    uint8_t args[2 + 1 + 255 + 1 + 255 + 1 + 255];
    wr_set_u16(args, code);
    size_t n = 2 + put_short(args + 2, wr_bytes_of(text));
    n += put_short(args + n, wr_msg_exchange(m));
    n += put_short(args + n, wr_msg_routing_key(m));
    send_with_content(ch, WR_M_BASIC_RETURN, args, n, m);
}

/* Routes m (consuming the caller's reference) and answers the publisher. */
/* ---- confirms that wait for durability ---- */

static void pending_push(wr_channel_t *ch, uint64_t seq, wr_durable_t *d, uint64_t ticket, int nack,
                         int commit, int more)
{
    if (ch->pc_count == ch->pc_cap) {
        size_t ncap = ch->pc_cap ? ch->pc_cap * 2 : 64;
        wr_pending_confirm_t *n = wr_xmalloc(ncap * sizeof *n);
        for (size_t i = 0; i < ch->pc_count; i++)
            n[i] = ch->pc[(ch->pc_head + i) & (ch->pc_cap - 1)];
        free(ch->pc);
        ch->pc = n;
        ch->pc_cap = ncap;
        ch->pc_head = 0;
    }
    wr_pending_confirm_t *e = &ch->pc[(ch->pc_head + ch->pc_count) & (ch->pc_cap - 1)];
    e->seq = seq;
    e->d = d;
    e->ticket = ticket;
    e->nack = (uint8_t)nack;
    e->commit = (uint8_t)commit;
    e->more = (uint8_t)more;
    ch->pc_count++;
}

/* Queues one answer (a confirm for seq, or tx.commit-ok if commit) that
 * waits for every ticket in w: one entry per domain, the last one
 * answering. */
static void pending_push_all(wr_channel_t *ch, uint64_t seq, const wr_waits_t *w, int nack,
                             int commit)
{
    if (w->n == 0) {
        pending_push(ch, seq, NULL, 0, nack, commit, 0);
        return;
    }
    for (size_t i = 0; i + 1 < w->n; i++)
        pending_push(ch, seq, w->v[i].d, w->v[i].ticket, 0, commit, 1);
    pending_push(ch, seq, w->v[w->n - 1].d, w->v[w->n - 1].ticket, nack, commit, 0);
}

/* Answers the pending confirms at the front that are decided: durable
 * (ack), lost or refused (nack); stops at the first still waiting, and
 * waits on its domain.  Returns -1 if a failed transaction closed the
 * connection, which frees its channels (ch among them): the caller must
 * not touch ch again. */
static int pending_advance(wr_channel_t *ch)
{
    while (ch->pc_count) {
        wr_pending_confirm_t *e = &ch->pc[ch->pc_head];
        int st = e->d ? wr_durable_state(e->d, e->ticket) : 1;
        if (st == 0 && !(e->nack && !e->commit)) {
            if (ch->waiter.on != e->d)
                wr_durable_wait(e->d, &ch->waiter);
            return 0;
        }
        if (e->commit) {
            /* A transaction's persistent messages are durable (or were
             * lost): only now is tx.commit answered. */
            if (st < 0) {
                ch->pc_count = 0;
                wr_durable_unwait(&ch->waiter);
                wr_channel_error(ch, WR_AMQP_INTERNAL_ERROR, WR_M_TX_COMMIT,
                                 "the message store failed to write the transaction");
                return -1;
            }
            if (!e->more && ch->state == WR_CH_OPEN) {
                wr_method_t r = {.id = WR_M_TX_COMMIT_OK};
                wr_conn_send_method(ch->conn, ch->id, &r);
            }
        } else {
            if (e->nack || st < 0)
                ch->part_nack = 1;
            if (!e->more) {
                if (ch->part_nack)
                    confirm_nack(ch, e->seq);
                else
                    confirm_mark(ch, e->seq);
                ch->part_nack = 0;
            }
        }
        ch->pc_head = (ch->pc_head + 1) & (ch->pc_cap - 1);
        ch->pc_count--;
    }
    wr_durable_unwait(&ch->waiter);
    return 0;
}

static int durable_wake(wr_durable_waiter_t *w)
{
    wr_channel_t *ch = (wr_channel_t *)((char *)w - offsetof(wr_channel_t, waiter));
    return pending_advance(ch);
}

/* A domain in which every ticket is lost: what waited on a domain that
 * went without deciding it waits here instead (nack, or a failed
 * commit). */
static wr_lost_range_t all_lost_range = {0, UINT64_MAX};
static wr_durable_t all_lost = {0, UINT64_MAX, &all_lost_range, 1, 1, NULL};

void wr_channel_forget_domain(wr_durable_t *d)
{
restart:
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next) {
            int touched = 0;
            for (size_t i = 0; i < ch->pc_count; i++) {
                wr_pending_confirm_t *e = &ch->pc[(ch->pc_head + i) & (ch->pc_cap - 1)];
                if (e->d != d)
                    continue;
                e->d = wr_durable_state(d, e->ticket) == 1 ? NULL : &all_lost;
                touched = 1;
            }
            if (ch->waiter.on == d)
                wr_durable_unwait(&ch->waiter);
            /* A failed commit closes its connection, freeing channels: walk
             * again (entries already moved no longer point at d). */
            if (touched && pending_advance(ch) < 0)
                goto restart;
        }
    }
}

static void confirm_publish(wr_channel_t *ch, uint64_t seq, const wr_waits_t *w, int nack)
{
    if (ch->pc_count == 0 && w->n == 0) {
        if (nack)
            confirm_nack(ch, seq);
        else
            confirm_mark(ch, seq);
        return;
    }
    pending_push_all(ch, seq, w, nack, 0);
    (void)pending_advance(ch); /* no commits in confirm mode */
}

/* Whether a[0..n) equals b[0..n): inline, for the short names of the
 * publish caches (a call to memcmp cost more than the comparison). */
static inline int same_name(const char *a, const uint8_t *b, size_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    for (; n > 0; n--)
        if (*a++ != (char)*b++)
            return 0;
    return 1;
}

/* The exchange named name, through the channel's one-entry cache, which
 * is valid while neither the vhost's names nor any permission changed:
 * the permission to publish is checked when it is refilled, as RabbitMQ
 * checks write on the exchange (before looking it up). */
static wr_exchange_t *publish_exchange(wr_channel_t *ch, wr_bytes_t name, wr_reply_t *r)
{
    wr_vhost_t *vh = ch->conn->vhost;
    wr_exchange_t *x = ch->pub_x;
    uint64_t gen = vh->names_gen + wr_access_gen;
    if (x && ch->pub_x_gen == gen && x->name_len == name.n && same_name(x->name, name.p, name.n))
        return x;
    ch->pub_x = NULL;
    wr_actor_t who = actor_of(ch);
    if (wr_op_allowed(&who, vh, WR_PERM_WRITE, 0, name, r) != 0)
        return NULL;
    if ((x = wr_op_find_exchange(vh, name, r)) == NULL)
        return NULL;
    ch->pub_x = x;
    ch->pub_x_gen = gen;
    ch->pub_topic = ch->conn->auth_user ? wr_access_topic_for(ch->conn->auth_user, x) : NULL;
    return x;
}

/* The queue named name (the default exchange's route), through the
 * channel's one-entry cache. */
static wr_queue_t *publish_queue(wr_channel_t *ch, wr_bytes_t name)
{
    wr_vhost_t *vh = ch->conn->vhost;
    wr_queue_t *q = ch->pub_q;
    if (q && ch->pub_q_gen == vh->names_gen && q->name_len == name.n &&
        same_name(q->name, name.p, name.n))
        return q;
    q = wr_vhost_queue(vh, name);
    ch->pub_q = q;
    ch->pub_q_gen = vh->names_gen;
    return q;
}

/* Routes m (consuming the caller's reference), stores it if it is
 * persistent and reached durable queues, and answers the publisher.  What
 * makes it durable is added to *acc when acc is not NULL (a transaction
 * waits for all its messages at once). */
static void do_publish(wr_channel_t *ch, wr_exchange_t *x, wr_msg_t *m, int mandatory, uint64_t seq,
                       wr_waits_t *acc)
{
    static wr_route_t r; /* reused: routing allocates nothing per message */
    r.n = 0;
    wr_bytes_t headers = {NULL, 0};
    wr_bytes_t props = wr_msg_props(m);
    if (props.n >= 2 && (wr_get_u16(props.p) & WR_PROP_HEADERS)) {
        wr_basic_props_t pr;
        if (wr_props_decode(props.p, props.n, &pr) == 0)
            headers = pr.headers;
    }
    wr_vhost_t *vh = ch->conn->vhost;
    ch->st.n[WR_ST_PUBLISH]++;
    x->st.n[WR_ST_PUBLISH_IN]++;
    if (ch->confirm)
        wr_stats_count(WR_NS_RECEIVED_CONFIRM);
    int64_t delay = x->delayed ? wr_msg_x_delay(m) : 0;
    if (delay > 0) {
        /* x-delayed-message: wait in the exchange's delay queue, with the
         * delay as the message's TTL there (stored if persistent and the
         * exchange durable, so the confirm still means durable). */
        wr_queue_t *dq = wr_delay_queue(x);
        if (dq) {
            m->ttl = delay;
            wr_waits_t w;
            wr_waits_init(&w);
            int drej = 0;
            int derr = wr_queues_push(vh, &dq, 1, m, &w, &drej);
            if (derr)
                w.n = 0;
            if (seq)
                confirm_publish(ch, seq, &w, derr != 0);
            for (size_t i = 0; acc && i < w.n; i++)
                wr_waits_add(acc, w.v[i].d, w.v[i].ticket);
            wr_waits_free(&w);
            wr_msg_unref(m);
            return;
        }
    }
    /* A reply goes to its channel and still counts as unrouted: RabbitMQ
     * returns it to a mandatory publisher (312) even when delivered.  No
     * queue can carry the name (the amq. prefix is reserved), so routing
     * below finds only what CC headers name. */
    int direct_queue = 0; /* the default exchange without CC/BCC: no routing */
    if (x->name_len == 0) {
        if (has_prefix(wr_msg_routing_key(m), REPLY_PREFIX))
            deliver_reply(m);
        else if (headers.n == 0)
            direct_queue = 1;
    }
    wr_queue_t *one[1];
    wr_queue_t **qs = one;
    size_t n;
    if (direct_queue) {
        one[0] = publish_queue(ch, wr_msg_routing_key(m));
        n = one[0] != NULL;
    } else {
        wr_route(vh, x, wr_msg_routing_key(m), headers, props, &r);
        /* BCC routes like CC but, as RabbitMQ does, is removed from the
         * message before anyone sees it (or it is stored). */
        wr_field_t bcc;
        if (headers.n && wr_table_get(headers, "BCC", &bcc))
            m = wr_msg_set_header(m, "BCC", NULL);
        /* Pushing may route again (dead-lettering): keep a copy. */
        n = r.n;
        if (n == 1) {
            one[0] = r.q[0];
        } else if (n > 1) {
            qs = wr_xmalloc(n * sizeof *qs);
            memcpy(qs, r.q, n * sizeof *qs);
        }
    }

    wr_waits_t w;
    wr_waits_init(&w);
    int rejected = 0;
    int err = wr_queues_push(vh, qs, n, m, &w, &rejected);
    if (n > 1)
        free(qs);
    if (err != 0) {
        /* The store takes no writes (disk full or failing): the message
         * is not accepted anywhere. */
        w.n = 0;
        if (seq)
            confirm_publish(ch, seq, &w, 1);
        wr_waits_free(&w);
        wr_msg_unref(m);
        return;
    }
    x->st.n[WR_ST_PUBLISH_OUT] += n;
    wr_stats_events[WR_NS_ROUTED] += n;
    if (n == 0) {
        ch->st.n[mandatory ? WR_ST_RETURN_UNROUTABLE : WR_ST_DROP_UNROUTABLE]++;
        if (mandatory)
            send_return(ch, m, WR_AMQP_NO_ROUTE, "NO_ROUTE");
    }
    if (seq)
        confirm_publish(ch, seq, &w, rejected);
    for (size_t i = 0; acc && i < w.n; i++)
        wr_waits_add(acc, w.v[i].d, w.v[i].ticket);
    wr_waits_free(&w);
    wr_msg_unref(m);
}

static void txop_add(wr_channel_t *ch, const wr_txop_t *op)
{
    if (ch->n_txops == ch->cap_txops) {
        ch->cap_txops = ch->cap_txops ? ch->cap_txops * 2 : 16;
        ch->txops = wr_xrealloc(ch->txops, ch->cap_txops * sizeof *ch->txops);
    }
    ch->txops[ch->n_txops++] = *op;
}

static void publish_complete_inner(wr_channel_t *ch);

/* With a resource alarm on, a connection that publishes is not read any
 * further once this message is complete (as RabbitMQ blocks it). */
static void publish_complete(wr_channel_t *ch)
{
    publish_complete_inner(ch);
    if (wr_conn_alarm_active())
        wr_conn_hold_publisher(ch->conn);
}

static void publish_complete_inner(wr_channel_t *ch)
{
    wr_msg_t *m = ch->assembling;
    ch->assembling = NULL;
    ch->content = WR_CONTENT_NONE;
    wr_bytes_t xname = {(uint8_t *)ch->pub_exchange, ch->pub_exchange_len};
    wr_reply_t r;
    wr_exchange_t *x = publish_exchange(ch, xname, &r);
    if (x == NULL) {
        wr_msg_unref(m);
        op_failed(ch, &r, WR_M_BASIC_PUBLISH);
        return;
    }
    if (x->internal) {
        wr_msg_unref(m);
        wr_channel_error(ch, WR_AMQP_ACCESS_REFUSED, WR_M_BASIC_PUBLISH,
                         "cannot publish to internal exchange '%.*s' in vhost '%s'",
                         BYTES_FMT(xname), vhname(ch));
        return;
    }
    if (ch->pub_topic && !wr_pattern_match(&ch->pub_topic->write,
                                           (wr_bytes_t){(uint8_t *)ch->pub_rk, ch->pub_rk_len})) {
        wr_msg_unref(m);
        wr_channel_error(ch, WR_AMQP_ACCESS_REFUSED, WR_M_BASIC_PUBLISH,
                         "access to topic '%.*s' in exchange '%.*s' in vhost '%s' refused for "
                         "user '%s'",
                         (int)ch->pub_rk_len, ch->pub_rk, BYTES_FMT(xname), vhname(ch),
                         ch->conn->user);
        return;
    }
    m = rewrite_reply_to(ch, m);
    if (m == NULL)
        return;
    if (ch->tx) {
        wr_txop_t op = {0, m, ch->pub_mandatory, 0, 0, 0};
        txop_add(ch, &op);
        return;
    }
    do_publish(ch, x, m, ch->pub_mandatory, ch->confirm ? ++ch->pub_seq : 0, NULL);
}

void wr_channel_header(wr_channel_t *ch, wr_bytes_t payload)
{
    if (ch->content != WR_CONTENT_HEADER) {
        wr_conn_error(ch->conn, WR_AMQP_UNEXPECTED_FRAME,
                      ch->content == WR_CONTENT_BODY ? WR_M_BASIC_PUBLISH : 0,
                      ch->content == WR_CONTENT_BODY
                          ? "expected content body, got non content body frame instead"
                          : "expected method frame, got non method frame instead");
        return;
    }
    if (payload.n < 14) {
        wr_conn_error(ch->conn, WR_AMQP_FRAME_ERROR, WR_M_BASIC_PUBLISH,
                      "content header frame too short");
        return;
    }
    uint16_t class_id = wr_get_u16(payload.p);
    if (class_id != WR_CLASS_BASIC) {
        wr_conn_error(ch->conn, WR_AMQP_UNEXPECTED_FRAME, WR_M_BASIC_PUBLISH,
                      "expected content header for class 60, got one for class %u instead",
                      class_id);
        return;
    }
    uint64_t body_len = wr_get_u64(payload.p + 4);
    wr_bytes_t props = {payload.p + 12, payload.n - 12};
    wr_basic_props_t pr;
    int r = 0;
    if (props.n == 2 && props.p[0] == 0 && props.p[1] == 0)
        pr.flags = 0; /* no properties: nothing below looks further */
    else
        r = wr_props_decode(props.p, props.n, &pr);
    if (r != 0) {
        wr_conn_error(ch->conn, WR_AMQP_FRAME_ERROR, WR_M_BASIC_PUBLISH,
                      "cannot decode content header properties (%s)", wr_strerror(r));
        return;
    }
    uint64_t max_size = wr_broker.cfg->max_message_size;
    if (body_len > max_size) {
        ch->content = WR_CONTENT_NONE;
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, WR_M_BASIC_PUBLISH,
                         "message size %" PRIu64 " is larger than configured max size %" PRIu64,
                         body_len, max_size);
        return;
    }
    int64_t ttl = -1;
    char why[96];
    if ((pr.flags & WR_PROP_EXPIRATION) &&
        wr_msg_parse_expiration(pr.expiration, &ttl, why, sizeof why) != 0) {
        ch->content = WR_CONTENT_NONE;
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, WR_M_BASIC_PUBLISH,
                         "invalid expiration '%.*s': %s", BYTES_FMT(pr.expiration), why);
        return;
    }
    if ((pr.flags & WR_PROP_DELIVERY_MODE) && pr.delivery_mode > 2) {
        ch->content = WR_CONTENT_NONE;
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, WR_M_BASIC_PUBLISH,
                         "invalid message: {delivery_mode_unknown,%u}", pr.delivery_mode);
        return;
    }
    if ((pr.flags & WR_PROP_USER_ID) && !wr_bytes_eq_str(pr.user_id, ch->conn->user) &&
        !(ch->conn->auth_user && (ch->conn->auth_user->flags & WR_TAG_IMPERSONATOR))) {
        ch->content = WR_CONTENT_NONE;
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, WR_M_BASIC_PUBLISH,
                         "user_id property set to '%.*s' but authenticated user was '%s'",
                         BYTES_FMT(pr.user_id), ch->conn->user);
        return;
    }
    wr_msg_t *m = wr_msg_new((wr_bytes_t){(uint8_t *)ch->pub_exchange, ch->pub_exchange_len},
                             (wr_bytes_t){(uint8_t *)ch->pub_rk, ch->pub_rk_len}, props, body_len);
    m->persistent = (pr.flags & WR_PROP_DELIVERY_MODE) && pr.delivery_mode == 2;
    m->priority = (pr.flags & WR_PROP_PRIORITY) ? pr.priority : 0;
    m->ttl = ttl;
    ch->assembling = m;
    if (body_len == 0)
        publish_complete(ch);
    else
        ch->content = WR_CONTENT_BODY;
}

void wr_channel_body(wr_channel_t *ch, wr_bytes_t payload)
{
    if (ch->content != WR_CONTENT_BODY) {
        int hdr = ch->content == WR_CONTENT_HEADER;
        wr_conn_error(ch->conn, WR_AMQP_UNEXPECTED_FRAME, hdr ? WR_M_BASIC_PUBLISH : 0,
                      hdr ? "expected content header for class 60, got non content header frame "
                            "instead"
                          : "expected method frame, got non method frame instead");
        return;
    }
    wr_msg_t *m = ch->assembling;
    if (payload.n > m->body_len - m->body_have) {
        /* RabbitMQ notices the overrun at the next frame and says so. */
        wr_conn_error(ch->conn, WR_AMQP_UNEXPECTED_FRAME, WR_M_BASIC_PUBLISH,
                      "expected content body, got non content body frame instead");
        return;
    }
    if (wr_msg_append_body(m, payload.p, payload.n))
        publish_complete(ch);
}

/* ---- queue and exchange helpers ---- */

/* Resolves "" to the channel's last declared queue. */
static wr_bytes_t qname_of(wr_channel_t *ch, wr_bytes_t name)
{
    if (name.n == 0)
        return (wr_bytes_t){(uint8_t *)ch->last_queue, ch->last_queue_len};
    return name;
}

/* The queue to consume from or get from: read permission (checked
 * before the lookup, as RabbitMQ does), then the queue. */
static wr_queue_t *readable_queue(wr_channel_t *ch, wr_bytes_t name, uint32_t mid)
{
    wr_reply_t r;
    wr_actor_t who = actor_of(ch);
    wr_queue_t *q = NULL;
    if (wr_op_allowed(&who, ch->conn->vhost, WR_PERM_READ, 1, name, &r) != 0 ||
        (q = wr_op_find_queue(ch->conn->vhost, name, &who, &r)) == NULL)
        op_failed(ch, &r, mid);
    return q;
}

/* ---- exchange class ---- */

/* An answer sent once the cluster's metadata log has the change (a
 * majority of the nodes): the method to send and, for declare-ok, the
 * queue's name. */
typedef struct meta_answer {
    wr_conn_t *conn;
    uint16_t chid;
    uint32_t method_id;
    uint8_t qlen;
    char qname[256];
} meta_answer_t;

static void meta_answered(void *ctx, int applied)
{
    meta_answer_t *a = ctx;
    if (applied) {
        wr_conn_t *c = a->conn;
        wr_channel_t *ch = a->chid < c->n_channel_slots ? c->channels[a->chid] : NULL;
        if (ch && ch->state == WR_CH_OPEN) {
            wr_bytes_t qn = {(uint8_t *)a->qname, a->qlen};
            wr_queue_t *q =
                a->method_id == WR_M_QUEUE_DECLARE_OK ? wr_vhost_queue(c->vhost, qn) : NULL;
            if (q) {
                send_declare_ok(ch, q);
            } else {
                /* A declared queue deleted meanwhile (by another node)
                 * is answered as it was declared: empty. */
                wr_method_t m = {.id = a->method_id};
                if (a->method_id == WR_M_QUEUE_DECLARE_OK)
                    m.u.queue_declare_ok.queue = qn;
                wr_conn_send_method(c, ch->id, &m);
            }
        }
        wr_conn_meta_release(c);
    }
    free(a);
}

/* Answers with method_id now, or, when r says the change went to the
 * cluster's metadata log, once this node has applied it from there. */
static void answer(wr_channel_t *ch, const wr_reply_t *r, uint32_t method_id, const wr_queue_t *q)
{
    if (r->wait == 0) {
        if (q) {
            send_declare_ok(ch, (wr_queue_t *)q);
        } else {
            wr_method_t m = {.id = method_id};
            wr_conn_send_method(ch->conn, ch->id, &m);
        }
        return;
    }
    meta_answer_t *a = wr_xcalloc(1, sizeof *a);
    a->conn = ch->conn;
    a->chid = ch->id;
    a->method_id = method_id;
    if (q) {
        a->qlen = (uint8_t)q->name_len;
        memcpy(a->qname, q->name, q->name_len);
    }
    wr_conn_meta_hold(ch->conn);
    wr_cmeta_wait(r->wait, ch->conn, meta_answered, a);
}

static void exchange_declare(wr_channel_t *ch, const wr_exchange_declare_t *a)
{
    wr_exchange_spec_t s = {a->exchange,    a->type,     a->passive,  a->durable,
                            a->auto_delete, a->internal, a->arguments};
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    if (wr_op_exchange_declare(ch->conn->vhost, &s, &who, &r) != 0) {
        op_failed(ch, &r, WR_M_EXCHANGE_DECLARE);
        return;
    }
    if (!a->no_wait)
        answer(ch, &r, WR_M_EXCHANGE_DECLARE_OK, NULL);
}

static void exchange_delete(wr_channel_t *ch, const wr_exchange_delete_t *a)
{
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    if (wr_op_exchange_delete(ch->conn->vhost, a->exchange, a->if_unused, &who, &r) != 0) {
        op_failed(ch, &r, WR_M_EXCHANGE_DELETE);
        return;
    }
    if (!a->no_wait)
        answer(ch, &r, WR_M_EXCHANGE_DELETE_OK, NULL);
}

static void exchange_bind(wr_channel_t *ch, const wr_exchange_bind_t *a, int bind)
{
    const uint32_t mid = bind ? WR_M_EXCHANGE_BIND : WR_M_EXCHANGE_UNBIND;
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    if (wr_op_bind(ch->conn->vhost, bind, a->source, 0, a->destination, a->routing_key,
                   a->arguments, &who, &r) != 0) {
        op_failed(ch, &r, mid);
        return;
    }
    if (!a->no_wait)
        answer(ch, &r, bind ? WR_M_EXCHANGE_BIND_OK : WR_M_EXCHANGE_UNBIND_OK, NULL);
}

/* ---- queue class ---- */

static void remember_queue(wr_channel_t *ch, wr_bytes_t name)
{
    ch->last_queue_len = (uint8_t)name.n;
    memcpy(ch->last_queue, name.p, name.n);
}

static void send_declare_ok(wr_channel_t *ch, wr_queue_t *q)
{
    wr_method_t r = {.id = WR_M_QUEUE_DECLARE_OK};
    r.u.queue_declare_ok.queue = (wr_bytes_t){(uint8_t *)q->name, q->name_len};
    r.u.queue_declare_ok.message_count = (uint32_t)wr_queue_ready(q);
    /* A quorum queue with a single active consumer counts only that one
     * (RabbitMQ 3.10). */
    r.u.queue_declare_ok.consumer_count =
        wr_queue_is_quorum(q) && q->args.single_active && q->n_consumers ? 1 : q->n_consumers;
    wr_conn_send_method(ch->conn, ch->id, &r);
}

static void queue_declare(wr_channel_t *ch, const wr_queue_declare_t *a)
{
    if (has_prefix(a->queue, REPLY_QUEUE)) {
        reply_declare(ch, a);
        return;
    }
    /* A passive declare of "" means the channel's last declared queue. */
    wr_queue_spec_t s = {a->passive ? qname_of(ch, a->queue) : a->queue,
                         a->passive,
                         a->durable,
                         a->exclusive,
                         a->auto_delete,
                         a->arguments,
                         0};
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    wr_queue_t *q;
    if (wr_op_queue_declare(ch->conn->vhost, &s, &who, &q, &r) != 0) {
        op_failed(ch, &r, WR_M_QUEUE_DECLARE);
        return;
    }
    remember_queue(ch, (wr_bytes_t){(uint8_t *)q->name, q->name_len});
    if (!a->no_wait)
        answer(ch, &r, WR_M_QUEUE_DECLARE_OK, q);
}

static void queue_bind(wr_channel_t *ch, const wr_queue_bind_t *a, int bind)
{
    const uint32_t mid = bind ? WR_M_QUEUE_BIND : WR_M_QUEUE_UNBIND;
    wr_bytes_t qname = qname_of(ch, a->queue);
    /* Binding the last declared queue with no key uses its name as key. */
    wr_bytes_t key = a->queue.n == 0 && a->routing_key.n == 0 ? qname : a->routing_key;
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    if (wr_op_bind(ch->conn->vhost, bind, a->exchange, 1, qname, key, a->arguments, &who, &r) !=
        0) {
        op_failed(ch, &r, mid);
        return;
    }
    if (!bind || !a->no_wait)
        answer(ch, &r, bind ? WR_M_QUEUE_BIND_OK : WR_M_QUEUE_UNBIND_OK, NULL);
}

static void queue_purge(wr_channel_t *ch, const wr_queue_purge_t *a)
{
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    uint32_t n;
    if (wr_op_queue_purge(ch->conn->vhost, qname_of(ch, a->queue), &who, &n, &r) != 0) {
        op_failed(ch, &r, WR_M_QUEUE_PURGE);
        return;
    }
    if (!a->no_wait) {
        wr_method_t m = {.id = WR_M_QUEUE_PURGE_OK};
        m.u.queue_purge_ok.message_count = n;
        wr_conn_send_method(ch->conn, ch->id, &m);
    }
}

static void send_delete_ok(void *ctx, uint32_t count)
{
    wr_channel_t *ch = ctx;
    wr_method_t m = {.id = WR_M_QUEUE_DELETE_OK};
    m.u.queue_delete_ok.message_count = count;
    wr_conn_send_method(ch->conn, ch->id, &m);
}

static void queue_delete(wr_channel_t *ch, const wr_queue_delete_t *a)
{
    wr_actor_t who = actor_of(ch);
    wr_reply_t r;
    /* delete-ok goes first: RabbitMQ's basic.cancel to consumers of the
     * queue (this channel's included) arrives after it. */
    if (wr_op_queue_delete(ch->conn->vhost, qname_of(ch, a->queue), a->if_unused, a->if_empty, &who,
                           a->no_wait ? NULL : send_delete_ok, ch, &r) != 0)
        op_failed(ch, &r, WR_M_QUEUE_DELETE);
}

/* ---- basic class ---- */

static void basic_qos(wr_channel_t *ch, const wr_basic_qos_t *a)
{
    if (a->prefetch_size != 0) {
        wr_conn_error(ch->conn, WR_AMQP_NOT_IMPLEMENTED, WR_M_BASIC_QOS, "prefetch_size!=0 (%u)",
                      a->prefetch_size);
        return;
    }
    if (a->global)
        ch->prefetch_channel = a->prefetch_count;
    else
        ch->prefetch_consumer = a->prefetch_count;
    wr_method_t r = {.id = WR_M_BASIC_QOS_OK};
    wr_conn_send_method(ch->conn, ch->id, &r);
    /* A larger window may let held-back messages flow. */
    size_t i = 0;
    wr_map_slot_t *s;
    while (wr_map_next(&ch->consumers, &i, &s)) {
        wr_chconsumer_t *cc = s->value;
        if (cc->base.queue)
            wr_queue_kick(cc->base.queue);
    }
}

static void basic_consume(wr_channel_t *ch, const wr_basic_consume_t *a)
{
    const uint32_t mid = WR_M_BASIC_CONSUME;
    if (wr_bytes_eq_str(a->queue, REPLY_QUEUE)) {
        reply_consume(ch, a);
        return;
    }
    wr_queue_t *q = readable_queue(ch, qname_of(ch, a->queue), mid);
    if (q == NULL)
        return;
    if (wr_queue_is_quorum(q) && ch->prefetch_channel) {
        wr_conn_error(ch->conn, WR_AMQP_NOT_IMPLEMENTED, mid,
                      "queue '%s' in vhost '%s' does not support global qos", q->name, vhname(ch));
        return;
    }
    char gen[64];
    wr_bytes_t tag = a->consumer_tag;
    if (tag.n == 0) {
        wr_gen_name("amq.ctag-", gen, sizeof gen);
        tag = wr_bytes_of(gen);
    }
    if (wr_map_get(&ch->consumers, tag)) {
        wr_conn_error(ch->conn, WR_AMQP_NOT_ALLOWED, mid, "attempt to reuse consumer tag '%.*s'",
                      BYTES_FMT(tag));
        return;
    }
    int has_exclusive = q->consumers && q->consumers->exclusive;
    for (wr_consumer_t *c = q->consumers; c && !has_exclusive; c = c->qnext)
        has_exclusive = c->exclusive;
    if (has_exclusive || (a->exclusive && q->n_consumers)) {
        wr_channel_error(ch, WR_AMQP_ACCESS_REFUSED, mid,
                         "queue '%s' in vhost '%s' in exclusive use", q->name, vhname(ch));
        return;
    }
    int32_t priority = 0;
    wr_field_t f;
    if (a->arguments.n && wr_table_get(a->arguments, "x-priority", &f)) {
        int64_t v;
        if (!wr_field_int(&f, &v) || v < INT32_MIN || v > INT32_MAX) {
            wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, mid,
                             "invalid arg 'x-priority' for queue '%s' in vhost '%s': \"expected "
                             "integer, got %s\"",
                             q->name, vhname(ch), wr_field_type_name(f.type));
            return;
        }
        priority = (int32_t)v;
    }
    wr_chconsumer_t *cc = wr_xcalloc(1, sizeof *cc);
    cc->base.ops = &chconsumer_ops;
    cc->base.priority = priority;
    cc->base.exclusive = a->exclusive;
    cc->base.no_ack = a->no_ack;
    cc->ch = ch;
    cc->prefetch = ch->prefetch_consumer;
    cc->base.prefetch = cc->prefetch;
    cc->tag_len = (uint8_t)tag.n;
    memcpy(cc->tag, tag.p, tag.n);
    wr_map_put(&ch->consumers, tag, cc);
    if (!a->no_wait) {
        wr_method_t r = {.id = WR_M_BASIC_CONSUME_OK};
        r.u.basic_consume_ok.consumer_tag = tag;
        wr_conn_send_method(ch->conn, ch->id, &r);
    }
    /* Added after consume-ok is written, so deliveries follow it. */
    wr_queue_add_consumer(q, &cc->base);
}

static void basic_cancel(wr_channel_t *ch, const wr_basic_cancel_t *a)
{
    /* As in RabbitMQ the reply consumer is matched first, should a regular
     * consumer share its tag. */
    wr_chconsumer_t *cc = NULL;
    if (ch->has_reply &&
        wr_bytes_eq(a->consumer_tag, (wr_bytes_t){(uint8_t *)ch->reply_tag, ch->reply_tag_len}))
        reply_consumer_drop(ch);
    else
        cc = wr_map_get(&ch->consumers, a->consumer_tag);
    if (cc) {
        wr_queue_t *q = cc->base.queue;
        if (q)
            wr_queue_remove_consumer(q, &cc->base);
        forget_consumer(ch, cc);
    }
    if (!a->no_wait && ch->state == WR_CH_OPEN) {
        wr_method_t r = {.id = WR_M_BASIC_CANCEL_OK};
        r.u.basic_cancel_ok.consumer_tag = a->consumer_tag;
        wr_conn_send_method(ch->conn, ch->id, &r);
    }
}

void wr_channel_get_answer(wr_channel_t *ch, wr_queue_t *q, wr_qent_t *e, int no_ack)
{
    if (e && ch->state != WR_CH_OPEN) {
        /* Answered after the channel began to close: it goes back. */
        wr_queue_out(q, e);
        wr_queue_requeue(q, e);
        return;
    }
    if (e == NULL) {
        ch->st.n[WR_ST_GET_EMPTY]++;
        q->st.n[WR_ST_GET_EMPTY]++;
        wr_method_t r = {.id = WR_M_BASIC_GET_EMPTY};
        wr_conn_send_method(ch->conn, ch->id, &r);
        return;
    }
    uint64_t tag = ch->next_tag++;
    uint8_t args[8 + 1 + 256 + 256 + 4];
    wr_set_u64(args, tag);
    size_t n = 8;
    args[n++] = e->deliveries > 0;
    n += put_short(args + n, wr_msg_exchange(e->msg));
    n += put_short(args + n, wr_msg_routing_key(e->msg));
    wr_set_u32(args + n, (uint32_t)wr_queue_ready(q));
    n += 4;
    send_with_content(ch, WR_M_BASIC_GET_OK, args, n, e->msg);
    wr_stat_t st = no_ack ? WR_ST_GET_NO_ACK : WR_ST_GET;
    ch->st.n[st]++;
    q->st.n[st]++;
    if (e->deliveries > 0) {
        ch->st.n[WR_ST_REDELIVER]++;
        q->st.n[WR_ST_REDELIVER]++;
    }
    if (no_ack) {
        ua_skip(ch);
        wr_queue_taken(q, e);
        return;
    }
    wr_queue_out(q, e);
    wr_unacked_t u = {q, NULL, *e, wr_now_ms()};
    ua_push(ch, &u);
    ch->n_unacked++;
}

static void basic_get(wr_channel_t *ch, const wr_basic_get_t *a)
{
    wr_queue_t *q = readable_queue(ch, qname_of(ch, a->queue), WR_M_BASIC_GET);
    if (q == NULL)
        return;
    q->last_used = wr_now_ms();
    q->type->get(q, ch, a->no_ack);
}

static void basic_settle(wr_channel_t *ch, uint64_t tag, int multiple, int how, uint32_t mid)
{
    if (ch->tx) {
        /* Checked now, applied at commit. */
        if (!(multiple && tag == 0)) {
            wr_unacked_t *u = ua_at(ch, tag);
            if (u == NULL || u->queue == NULL) {
                wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, mid,
                                 "unknown delivery tag %" PRIu64, tag);
                return;
            }
        }
        wr_txop_t op = {how == SETTLE_ACK ? 1 : 2,        NULL, 0, (uint8_t)multiple,
                        (uint8_t)(how == SETTLE_REQUEUE), tag};
        txop_add(ch, &op);
        return;
    }
    settle(ch, tag, multiple, how, mid);
}

/* ---- tx ---- */

/* Runs the transaction's operations; adds to *w what makes its persistent
 * messages durable. */
static void tx_commit(wr_channel_t *ch, wr_waits_t *w)
{
    size_t n = ch->n_txops;
    wr_txop_t *ops = ch->txops;
    ch->txops = NULL;
    ch->n_txops = ch->cap_txops = 0;
    for (size_t i = 0; i < n; i++) {
        wr_txop_t *op = &ops[i];
        if (ch->state != WR_CH_OPEN) {
            if (op->msg)
                wr_msg_unref(op->msg);
            continue;
        }
        if (op->kind == 0) {
            wr_exchange_t *x = wr_vhost_exchange(ch->conn->vhost, wr_msg_exchange(op->msg));
            if (x)
                do_publish(ch, x, op->msg, op->mandatory, 0, w);
            else
                wr_msg_unref(op->msg);
        } else {
            int how = op->kind == 1 ? SETTLE_ACK : op->requeue ? SETTLE_REQUEUE : SETTLE_DISCARD;
            settle(ch, op->tag, op->multiple, how,
                   op->kind == 1 ? WR_M_BASIC_ACK : WR_M_BASIC_NACK);
        }
    }
    free(ops);
}

/* ---- dispatch ---- */

void wr_channel_publish(wr_channel_t *ch, wr_bytes_t exchange, wr_bytes_t routing_key,
                        int mandatory, int immediate)
{
    if (immediate) {
        wr_conn_error(ch->conn, WR_AMQP_NOT_IMPLEMENTED, WR_M_BASIC_PUBLISH, "immediate=true");
        return;
    }
    ch->pub_mandatory = (uint8_t)(mandatory != 0);
    ch->pub_exchange_len = (uint8_t)exchange.n;
    memcpy(ch->pub_exchange, exchange.p, exchange.n);
    ch->pub_rk_len = (uint8_t)routing_key.n;
    memcpy(ch->pub_rk, routing_key.p, routing_key.n);
    ch->content = WR_CONTENT_HEADER;
}

void wr_channel_method(wr_channel_t *ch, wr_method_t *m)
{
    wr_conn_t *c = ch->conn;
    switch (m->id) {
    case WR_M_BASIC_PUBLISH: {
        const wr_basic_publish_t *a = &m->u.basic_publish;
        wr_channel_publish(ch, a->exchange, a->routing_key, a->mandatory, a->immediate);
        return;
    }
    case WR_M_BASIC_ACK:
        basic_settle(ch, m->u.basic_ack.delivery_tag, m->u.basic_ack.multiple, SETTLE_ACK, m->id);
        return;
    case WR_M_BASIC_NACK:
        basic_settle(ch, m->u.basic_nack.delivery_tag, m->u.basic_nack.multiple,
                     m->u.basic_nack.requeue ? SETTLE_REQUEUE : SETTLE_DISCARD, m->id);
        return;
    case WR_M_BASIC_REJECT:
        basic_settle(ch, m->u.basic_reject.delivery_tag, 0,
                     m->u.basic_reject.requeue ? SETTLE_REQUEUE : SETTLE_DISCARD, m->id);
        return;
    case WR_M_BASIC_CONSUME:
        basic_consume(ch, &m->u.basic_consume);
        return;
    case WR_M_BASIC_CANCEL:
        basic_cancel(ch, &m->u.basic_cancel);
        return;
    case WR_M_BASIC_GET:
        basic_get(ch, &m->u.basic_get);
        return;
    case WR_M_BASIC_QOS:
        basic_qos(ch, &m->u.basic_qos);
        return;
    case WR_M_BASIC_RECOVER:
    case WR_M_BASIC_RECOVER_ASYNC:
        if (!(m->id == WR_M_BASIC_RECOVER ? m->u.basic_recover.requeue
                                          : m->u.basic_recover_async.requeue)) {
            wr_conn_error(c, WR_AMQP_NOT_IMPLEMENTED, m->id, "requeue=false");
            return;
        }
        requeue_all(ch, SETTLE_REQUEUE);
        if (m->id == WR_M_BASIC_RECOVER) {
            wr_method_t r = {.id = WR_M_BASIC_RECOVER_OK};
            wr_conn_send_method(c, ch->id, &r);
        }
        return;
    case WR_M_EXCHANGE_DECLARE:
        exchange_declare(ch, &m->u.exchange_declare);
        return;
    case WR_M_EXCHANGE_DELETE:
        exchange_delete(ch, &m->u.exchange_delete);
        return;
    case WR_M_EXCHANGE_BIND:
        exchange_bind(ch, &m->u.exchange_bind, 1);
        return;
    case WR_M_EXCHANGE_UNBIND: {
        /* Same layout as bind. */
        wr_exchange_bind_t b;
        b.destination = m->u.exchange_unbind.destination;
        b.source = m->u.exchange_unbind.source;
        b.routing_key = m->u.exchange_unbind.routing_key;
        b.no_wait = m->u.exchange_unbind.no_wait;
        b.arguments = m->u.exchange_unbind.arguments;
        exchange_bind(ch, &b, 0);
        return;
    }
    case WR_M_QUEUE_DECLARE:
        queue_declare(ch, &m->u.queue_declare);
        return;
    case WR_M_QUEUE_BIND:
        queue_bind(ch, &m->u.queue_bind, 1);
        return;
    case WR_M_QUEUE_UNBIND: {
        wr_queue_bind_t b;
        b.queue = m->u.queue_unbind.queue;
        b.exchange = m->u.queue_unbind.exchange;
        b.routing_key = m->u.queue_unbind.routing_key;
        b.no_wait = 0;
        b.arguments = m->u.queue_unbind.arguments;
        queue_bind(ch, &b, 0);
        return;
    }
    case WR_M_QUEUE_PURGE:
        queue_purge(ch, &m->u.queue_purge);
        return;
    case WR_M_QUEUE_DELETE:
        queue_delete(ch, &m->u.queue_delete);
        return;
    case WR_M_CHANNEL_CLOSE: {
        wr_channel_release(ch);
        wr_method_t r = {.id = WR_M_CHANNEL_CLOSE_OK};
        wr_conn_send_method(c, ch->id, &r);
        wr_channel_free(ch);
        return;
    }
    case WR_M_CHANNEL_CLOSE_OK:
        wr_conn_error(c, WR_AMQP_COMMAND_INVALID, m->id, "unimplemented method");
        return;
    case WR_M_CHANNEL_FLOW: {
        /* RabbitMQ no longer lets a client stop deliveries this way (use
         * basic.qos); it refuses active=false with a connection error. */
        if (!m->u.channel_flow.active) {
            wr_conn_error(c, WR_AMQP_NOT_IMPLEMENTED, m->id, "active=false");
            return;
        }
        ch->flow_active = m->u.channel_flow.active;
        wr_method_t r = {.id = WR_M_CHANNEL_FLOW_OK};
        r.u.channel_flow_ok.active = ch->flow_active;
        wr_conn_send_method(c, ch->id, &r);
        if (ch->flow_active) {
            size_t i = 0;
            wr_map_slot_t *s;
            while (wr_map_next(&ch->consumers, &i, &s)) {
                wr_chconsumer_t *cc = s->value;
                if (cc->base.queue)
                    wr_queue_kick(cc->base.queue);
            }
        }
        return;
    }
    case WR_M_CONFIRM_SELECT:
        if (ch->tx) {
            wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, m->id,
                             "cannot switch from tx to confirm mode");
            return;
        }
        ch->confirm = 1;
        if (!m->u.confirm_select.nowait) {
            wr_method_t r = {.id = WR_M_CONFIRM_SELECT_OK};
            wr_conn_send_method(c, ch->id, &r);
        }
        return;
    case WR_M_TX_SELECT:
        if (ch->confirm) {
            wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, m->id,
                             "cannot switch from confirm to tx mode");
            return;
        }
        ch->tx = 1;
        {
            wr_method_t r = {.id = WR_M_TX_SELECT_OK};
            wr_conn_send_method(c, ch->id, &r);
        }
        return;
    case WR_M_TX_COMMIT:
    case WR_M_TX_ROLLBACK:
        if (!ch->tx) {
            wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, m->id,
                             "channel is not transactional");
            return;
        }
        if (m->id == WR_M_TX_COMMIT) {
            wr_waits_t w;
            wr_waits_init(&w);
            tx_commit(ch, &w);
            int wait = ch->pc_count > 0;
            for (size_t i = 0; i < w.n; i++)
                if (wr_durable_state(w.v[i].d, w.v[i].ticket) != 1)
                    wait = 1;
            if (ch->state == WR_CH_OPEN && wait) {
                /* tx.commit-ok once the persistent messages are durable,
                 * in order behind earlier commits still waiting. */
                pending_push_all(ch, 0, &w, 0, 1);
                wr_waits_free(&w);
                (void)pending_advance(ch);
                return;
            }
            wr_waits_free(&w);
        } else {
            for (size_t i = 0; i < ch->n_txops; i++)
                if (ch->txops[i].msg)
                    wr_msg_unref(ch->txops[i].msg);
            ch->n_txops = 0;
        }
        if (ch->state == WR_CH_OPEN) {
            wr_method_t r = {.id =
                                 m->id == WR_M_TX_COMMIT ? WR_M_TX_COMMIT_OK : WR_M_TX_ROLLBACK_OK};
            wr_conn_send_method(c, ch->id, &r);
        }
        return;
    default:
        /* A known method the client may not send (e.g. basic.deliver). */
        wr_conn_error(c, WR_AMQP_COMMAND_INVALID, m->id, "unimplemented method");
        return;
    }
}

void wr_channel_check_timeout(wr_channel_t *ch, int64_t now, uint64_t timeout_ms)
{
    if (ch->state != WR_CH_OPEN || ch->n_unacked == 0 || ch->ua_count == 0)
        return;
    wr_unacked_t *u = &ch->ua[ch->ua_head];
    if (u->queue && now - u->delivered_at > (int64_t)timeout_ms)
        wr_channel_error(ch, WR_AMQP_PRECONDITION_FAILED, 0,
                         "delivery acknowledgement on channel %u timed out. Timeout value used: "
                         "%" PRIu64 " ms. This timeout value can be configured, see consumers "
                         "doc guide to learn more",
                         ch->id, timeout_ms);
}
