/*
 * queue.c - queues: ready messages, dispatch to consumers, requeue at the
 * original position, expiry, length limits and dead-lettering (see
 * queue.h for the data structure).
 *
 * Entry life cycle:
 *
 *   push --> ready (ring or heap) --pop--> out (unacked, in a channel)
 *              ^   |                         |  settle  -> gone
 *              |   | expire / drop-head      |  discard -> dead-lettered or gone
 *              |   v                         |  requeue -> back to ready (heap)
 *              |  dead-lettered or gone      |
 *              '-----------------------------'
 */
#include "broker/queue.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/quorum.h"
#include "broker/vhost.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

static wr_queue_t *pending_head;

/* ---- arguments ---- */

/* Reports an invalid argument in RabbitMQ's words: "invalid arg 'K' for
 * queue 'Q' in vhost 'V': DETAIL", DETAIL being an Erlang term as RabbitMQ
 * prints it. */
static int bad_arg(char *err, size_t errlen, wr_bytes_t k, wr_bytes_t qname, const char *vhost,
                   const char *detail)
{
    snprintf(err, errlen, "invalid arg '%.*s' for queue '%.*s' in vhost '%s': %s", (int)k.n,
             (const char *)k.p, (int)qname.n, (const char *)qname.p, vhost, detail);
    return WR_EINVAL;
}

/* Integer argument check as RabbitMQ's check_int_arg and friends. */
static int int_arg(const wr_field_t *f, int64_t *v, char *why, size_t n)
{
    if (!wr_field_int(f, v)) {
        snprintf(why, n, "\"expected integer, got %s\"", wr_field_type_name(f->type));
        return -1;
    }
    if (*v < 0) {
        snprintf(why, n, "{value_negative,%" PRId64 "}", *v);
        return -1;
    }
    return 0;
}

#define MAX_EXPIRY 4294967295LL /* RabbitMQ's largest TTL / expiry */

int wr_queue_args_parse(wr_bytes_t table, wr_bytes_t qname, const char *vhost, wr_queue_args_t *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->message_ttl = out->expires = out->max_length = out->max_length_bytes = -1;
    out->overflow = WR_OVERFLOW_DROP_HEAD;
    wr_table_iter_t it;
    wr_table_iter_init(&it, table);
    wr_bytes_t k;
    wr_field_t f;
    char why[128];
    int has_dlrk = 0;
    while (wr_table_next(&it, &k, &f) == 1) {
        int64_t v = 0;
        why[0] = '\0';
        if (wr_bytes_eq_str(k, "x-message-ttl") || wr_bytes_eq_str(k, "x-expires")) {
            int expires = k.n == 9;
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (expires && v == 0)
                    snprintf(why, sizeof why, "{value_zero,0}");
                else if (v > MAX_EXPIRY)
                    snprintf(why, sizeof why, "{value_too_large,%" PRId64 "}", v);
                else if (expires)
                    out->expires = v;
                else
                    out->message_ttl = v;
            }
        } else if (wr_bytes_eq_str(k, "x-max-length") || wr_bytes_eq_str(k, "x-max-length-bytes")) {
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (k.n == 12)
                    out->max_length = v;
                else
                    out->max_length_bytes = v;
            }
        } else if (wr_bytes_eq_str(k, "x-max-priority")) {
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (v > 255)
                    snprintf(why, sizeof why, "{max_value_exceeded,%" PRId64 "}", v);
                else
                    out->max_priority = (uint8_t)v;
            }
        } else if (wr_bytes_eq_str(k, "x-delivery-limit")) {
            /* RabbitMQ 4: a negative limit means none (quorum queues
             * otherwise default to 20). */
            if (wr_field_int(&f, &v) && v < 0) {
                out->delivery_limit_set = 1;
                out->delivery_limit_none = 1;
            } else if (int_arg(&f, &v, why, sizeof why) == 0) {
                out->delivery_limit = v;
                out->delivery_limit_set = 1;
            }
        } else if (wr_bytes_eq_str(k, "x-dead-letter-exchange") ||
                   wr_bytes_eq_str(k, "x-dead-letter-routing-key")) {
            if (f.type != 'S') {
                snprintf(err, errlen,
                         "invalid type '%s' for arg '%.*s' in queue '%.*s' in vhost '%s'",
                         wr_field_type_name(f.type), (int)k.n, (const char *)k.p, (int)qname.n,
                         (const char *)qname.p, vhost);
                wr_queue_args_free(out);
                return WR_EINVAL;
            }
            char *str = wr_xstrndup((const char *)f.v.bytes.p, f.v.bytes.n);
            if (k.n == strlen("x-dead-letter-exchange")) {
                free(out->dlx);
                out->dlx = str;
            } else {
                free(out->dlrk);
                out->dlrk = str;
                has_dlrk = 1;
            }
        } else if (wr_bytes_eq_str(k, "x-overflow")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (wr_bytes_eq_str(f.v.bytes, "drop-head"))
                out->overflow = WR_OVERFLOW_DROP_HEAD;
            else if (wr_bytes_eq_str(f.v.bytes, "reject-publish"))
                out->overflow = WR_OVERFLOW_REJECT_PUBLISH;
            else if (wr_bytes_eq_str(f.v.bytes, "reject-publish-dlx"))
                out->overflow = WR_OVERFLOW_REJECT_PUBLISH_DLX;
            else
                snprintf(why, sizeof why, "invalid_overflow");
        } else if (wr_bytes_eq_str(k, "x-single-active-consumer")) {
            if (f.type != 't')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else
                out->single_active = (uint8_t)f.v.i;
        } else if (wr_bytes_eq_str(k, "x-queue-type")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (wr_bytes_eq_str(f.v.bytes, "quorum"))
                out->type = WR_QTYPE_QUORUM;
            else if (!wr_bytes_eq_str(f.v.bytes, "classic"))
                snprintf(why, sizeof why, "\"unsupported queue type '%.*s'\"",
                         (int)(f.v.bytes.n > 64 ? 64 : f.v.bytes.n), (const char *)f.v.bytes.p);
        } else if (wr_bytes_eq_str(k, "x-quorum-initial-group-size")) {
            if (int_arg(&f, &v, why, sizeof why) == 0)
                out->initial_group_size = v;
        } else if (wr_bytes_eq_str(k, "x-queue-leader-locator")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (wr_bytes_eq_str(f.v.bytes, "client-local"))
                out->leader_locator = 1;
            else if (wr_bytes_eq_str(f.v.bytes, "balanced"))
                out->leader_locator = 2;
            else
                snprintf(why, sizeof why, "\"unsupported leader locator '%.*s'\"",
                         (int)(f.v.bytes.n > 64 ? 64 : f.v.bytes.n), (const char *)f.v.bytes.p);
        } else if (wr_bytes_eq_str(k, "x-dead-letter-strategy")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (wr_bytes_eq_str(f.v.bytes, "at-least-once"))
                out->dl_at_least_once = 1;
            else if (!wr_bytes_eq_str(f.v.bytes, "at-most-once"))
                snprintf(why, sizeof why, "invalid_dead_letter_strategy");
        }
        if (why[0]) {
            wr_queue_args_free(out);
            return bad_arg(err, errlen, k, qname, vhost, why);
        }
    }
    if (has_dlrk && !out->dlx) {
        wr_queue_args_free(out);
        return bad_arg(err, errlen, WR_BYTES_LIT("x-dead-letter-routing-key"), qname, vhost,
                       "routing_key_but_no_dlx_defined");
    }
    return 0;
}

void wr_queue_args_free(wr_queue_args_t *a)
{
    free(a->dlx);
    free(a->dlrk);
    a->dlx = a->dlrk = NULL;
}

/* ---- life cycle ---- */

static wr_qsm_limits_t limits_of(const wr_queue_args_t *a)
{
    /* A classic queue's x-delivery-limit of 0 (or none) means no limit. */
    wr_qsm_limits_t l = {a->message_ttl,      a->max_length,
                         a->max_length_bytes, a->delivery_limit > 0 ? a->delivery_limit : -1,
                         a->overflow,         a->max_priority};
    return l;
}

wr_queue_t *wr_queue_new(wr_vhost_t *vh, wr_bytes_t name, int durable, int exclusive,
                         int auto_delete, void *owner, wr_bytes_t args_raw,
                         const wr_queue_args_t *args)
{
    wr_queue_t *q = wr_xcalloc(1, sizeof *q);
    q->name = wr_xstrndup((const char *)name.p, name.n);
    q->name_len = name.n;
    q->vhost = vh;
    q->refs = 1;
    q->durable = (uint8_t)durable;
    q->exclusive = (uint8_t)exclusive;
    q->auto_delete = (uint8_t)auto_delete;
    q->type = args->type == WR_QTYPE_QUORUM ? &wr_qtype_quorum : &wr_qtype_classic;
    q->owner = owner;
    wr_buf_init(&q->args_raw);
    wr_buf_put(&q->args_raw, args_raw.p, args_raw.n);
    q->args = *args;
    wr_qsm_limits_t lim = limits_of(args);
    wr_qsm_init(&q->sm, &lim);
    q->last_used = wr_now_ms();
    wr_map_put(&vh->queues, name, q);
    vh->names_gen++;
    return q;
}

void wr_queue_set_args(wr_queue_t *q, const wr_queue_args_t *a)
{
    wr_queue_args_free(&q->args);
    q->args = *a;
    wr_qsm_limits_t lim = limits_of(a);
    wr_qsm_set_limits(&q->sm, &lim);
    if (q->type->limits_changed)
        q->type->limits_changed(q);
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void wr_queue_unref(wr_queue_t *q)
{
    if (--q->refs > 0)
        return;
    wr_qsm_free(&q->sm);
    wr_buf_free(&q->args_raw);
    wr_queue_args_free(&q->args);
    free(q->name);
    free(q);
}

/* ---- dead-lettering ---- */

/* A table being built in RabbitMQ's key order: entries are collected as
 * (key, encoded value) and written sorted by key, as RabbitMQ's table
 * updates leave them. */
typedef struct kv {
    wr_bytes_t key;
    size_t off, len; /* encoded value (type octet + value) in the scratch */
} kv_t;

typedef struct kvs {
    kv_t *v;
    size_t n, cap;
    wr_buf_t scratch;
} kvs_t;

static void kvs_add(kvs_t *t, wr_bytes_t key, const wr_field_t *f)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = wr_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    size_t off = t->scratch.len;
    wr_field_put(&t->scratch, f);
    t->v[t->n++] = (kv_t){key, off, t->scratch.len - off};
}

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    size_t n = x->key.n < y->key.n ? x->key.n : y->key.n;
    int c = n ? memcmp(x->key.p, y->key.p, n) : 0;
    return c ? c : (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

static void kvs_write_sorted(kvs_t *t, wr_buf_t *out)
{
    if (t->n > 1)
        qsort(t->v, t->n, sizeof *t->v, kv_cmp);
    size_t top = wr_table_begin(out);
    for (size_t i = 0; i < t->n; i++) {
        wr_table_put_key(out, t->v[i].key);
        wr_buf_put(out, t->scratch.p + t->v[i].off, t->v[i].len);
    }
    wr_table_end(out, top);
}

static void kvs_free(kvs_t *t)
{
    free(t->v);
    wr_buf_free(&t->scratch);
}

static int entry_is(wr_bytes_t entry, wr_bytes_t qname, wr_bytes_t rsn)
{
    wr_field_t fq, fr;
    return wr_table_get(entry, "queue", &fq) && fq.type == 'S' && wr_bytes_eq(fq.v.bytes, qname) &&
           wr_table_get(entry, "reason", &fr) && fr.type == 'S' && wr_bytes_eq(fr.v.bytes, rsn);
}

/* Builds the headers of a dead-lettered copy exactly as RabbitMQ 3.10
 * lays them out (plus x-last-death-*, which RabbitMQ 3.13+ adds):
 * - the top-level table sorted by key;
 * - x-death newest first, one entry per (queue, reason): an existing one
 *   gets count + 1 and moves to the front; an entry RabbitMQ writes into a
 *   message that already had x-death, or updates, has its keys sorted,
 *   while the very first entry has them in the order count, reason, queue,
 *   time, exchange, routing-keys, original-expiration; older untouched
 *   entries are kept byte for byte;
 * - x-first-death-* set once; CC dropped when x-dead-letter-routing-key
 *   replaces the routing key (its values stay in routing-keys). */
static void build_dl_headers(wr_buf_t *out, wr_queue_t *q, const wr_msg_t *m,
                             const wr_basic_props_t *pr, const char *reason)
{
    wr_bytes_t qname = {(const uint8_t *)q->name, q->name_len};
    wr_bytes_t rsn = wr_bytes_of(reason);
    int have_first = 0;
    wr_bytes_t old_xdeath = {NULL, 0};
    wr_bytes_t cc = {NULL, 0};
    kvs_t top = {0};
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t f;
    if (pr->flags & WR_PROP_HEADERS) {
        wr_table_iter_init(&it, pr->headers);
        while (wr_table_next(&it, &k, &f) == 1) {
            if (wr_bytes_eq_str(k, "x-death")) {
                if (f.type == 'A')
                    old_xdeath = f.v.bytes;
                continue;
            }
            if (k.n > 13 && memcmp(k.p, "x-last-death-", 13) == 0)
                continue;
            if (wr_bytes_eq_str(k, "CC") && f.type == 'A') {
                cc = f.v.bytes;
                if (q->args.dlrk)
                    continue;
            }
            if (k.n > 14 && memcmp(k.p, "x-first-death-", 14) == 0)
                have_first = 1;
            kvs_add(&top, k, &f);
        }
    }
    wr_field_t fx = wr_field_longstr(wr_msg_exchange(m));
    wr_field_t fq = wr_field_longstr(qname);
    wr_field_t fr = wr_field_longstr(rsn);
    if (!have_first) {
        kvs_add(&top, WR_BYTES_LIT("x-first-death-exchange"), &fx);
        kvs_add(&top, WR_BYTES_LIT("x-first-death-queue"), &fq);
        kvs_add(&top, WR_BYTES_LIT("x-first-death-reason"), &fr);
    }
    kvs_add(&top, WR_BYTES_LIT("x-last-death-exchange"), &fx);
    kvs_add(&top, WR_BYTES_LIT("x-last-death-queue"), &fq);
    kvs_add(&top, WR_BYTES_LIT("x-last-death-reason"), &fr);

    /* The entry for (queue, reason): updated if present, else new. */
    wr_table_iter_t ai;
    wr_field_t e;
    wr_bytes_t existing = {NULL, 0};
    if (old_xdeath.n) {
        wr_table_iter_init(&ai, old_xdeath);
        while (wr_array_next(&ai, &e) == 1)
            if (e.type == 'F' && existing.p == NULL && entry_is(e.v.bytes, qname, rsn))
                existing = e.v.bytes;
    }
    wr_buf_t xd;
    wr_buf_init(&xd);
    size_t arr = wr_table_begin(&xd);
    wr_buf_put_u8(&xd, 'F');
    if (existing.p) {
        kvs_t ent = {0};
        wr_table_iter_init(&it, existing);
        while (wr_table_next(&it, &k, &f) == 1) {
            if (wr_bytes_eq_str(k, "count")) {
                int64_t c = 0;
                wr_field_int(&f, &c);
                wr_field_t nc = wr_field_long(c + 1);
                kvs_add(&ent, k, &nc);
            } else {
                kvs_add(&ent, k, &f);
            }
        }
        kvs_write_sorted(&ent, &xd);
        kvs_free(&ent);
    } else {
        kvs_t ent = {0};
        wr_field_t fc = wr_field_long(1);
        wr_field_t ft = wr_field_timestamp((uint64_t)time(NULL));
        wr_buf_t rks;
        wr_buf_init(&rks);
        size_t rk = wr_table_begin(&rks);
        wr_field_t fk = wr_field_longstr(wr_msg_routing_key(m));
        wr_field_put(&rks, &fk);
        if (cc.n) {
            wr_table_iter_init(&ai, cc);
            while (wr_array_next(&ai, &e) == 1)
                if (e.type == 'S')
                    wr_field_put(&rks, &e);
        }
        wr_table_end(&rks, rk);
        wr_field_t fa;
        fa.type = 'A';
        fa.v.bytes = (wr_bytes_t){rks.p + 4, rks.len - 4};
        wr_field_t fo = wr_field_longstr(pr->expiration);
        kvs_add(&ent, WR_BYTES_LIT("count"), &fc);
        kvs_add(&ent, WR_BYTES_LIT("reason"), &fr);
        kvs_add(&ent, WR_BYTES_LIT("queue"), &fq);
        kvs_add(&ent, WR_BYTES_LIT("time"), &ft);
        kvs_add(&ent, WR_BYTES_LIT("exchange"), &fx);
        kvs_add(&ent, WR_BYTES_LIT("routing-keys"), &fa);
        if (pr->flags & WR_PROP_EXPIRATION)
            kvs_add(&ent, WR_BYTES_LIT("original-expiration"), &fo);
        if (old_xdeath.n) {
            kvs_write_sorted(&ent, &xd);
        } else {
            size_t t0 = wr_table_begin(&xd);
            for (size_t i = 0; i < ent.n; i++) {
                wr_table_put_key(&xd, ent.v[i].key);
                wr_buf_put(&xd, ent.scratch.p + ent.v[i].off, ent.v[i].len);
            }
            wr_table_end(&xd, t0);
        }
        kvs_free(&ent);
        wr_buf_free(&rks);
    }
    if (old_xdeath.n) {
        wr_table_iter_init(&ai, old_xdeath);
        while (wr_array_next(&ai, &e) == 1) {
            if (e.type == 'F' && e.v.bytes.p == existing.p)
                continue;
            wr_field_put(&xd, &e);
        }
    }
    wr_table_end(&xd, arr);
    wr_field_t fd;
    fd.type = 'A';
    fd.v.bytes = (wr_bytes_t){xd.p + 4, xd.len - 4};
    kvs_add(&top, WR_BYTES_LIT("x-death"), &fd);
    kvs_write_sorted(&top, out);
    kvs_free(&top);
    wr_buf_free(&xd);
}

/* Would dead-lettering into target close a cycle that RabbitMQ drops?  A
 * message that went around without ever being rejected by a client would
 * circulate forever (TTL or max-length on every queue of the loop). */
static int is_cycle(wr_queue_t *target, wr_bytes_t xdeath, const char *reason)
{
    if (strcmp(reason, "rejected") == 0)
        return 0;
    wr_table_iter_t ai;
    wr_field_t e;
    int seen = 0;
    wr_table_iter_init(&ai, xdeath);
    while (wr_array_next(&ai, &e) == 1) {
        wr_field_t fq, fr;
        if (e.type != 'F')
            continue;
        if (wr_table_get(e.v.bytes, "reason", &fr) && fr.type == 'S' &&
            wr_bytes_eq_str(fr.v.bytes, "rejected"))
            return 0;
        if (wr_table_get(e.v.bytes, "queue", &fq) && fq.type == 'S' &&
            wr_bytes_eq(fq.v.bytes, (wr_bytes_t){(const uint8_t *)target->name, target->name_len}))
            seen = 1;
    }
    return seen;
}

/* A delayed message's time has come: route it through its exchange (named
 * by q->args.dlx) with the exchange's own type, as if published now.
 * Consumes the caller's reference. */
static void delay_fire(wr_queue_t *q, wr_msg_t *m)
{
    wr_exchange_t *x = wr_vhost_exchange(q->vhost, wr_bytes_of(q->args.dlx));
    if (x == NULL) {
        wr_msg_unref(m);
        return;
    }
    /* In the delay queue the x-delay served as the message's TTL; from now
     * on its own expiration applies again. */
    wr_basic_props_t pr;
    wr_bytes_t headers = {NULL, 0};
    m->ttl = -1;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) == 0) {
        char why[64];
        int64_t ttl;
        if ((pr.flags & WR_PROP_EXPIRATION) &&
            wr_msg_parse_expiration(pr.expiration, &ttl, why, sizeof why) == 0)
            m->ttl = ttl;
        if (pr.flags & WR_PROP_HEADERS)
            headers = pr.headers;
    }
    wr_route_t r = {NULL, 0, 0};
    wr_route(q->vhost, x, wr_msg_routing_key(m), headers, wr_msg_props(m), &r);
    int rejected;
    wr_queues_push(q->vhost, r.q, r.n, m, NULL, &rejected);
    free(r.q);
    wr_msg_unref(m);
}

/* Dead-letters m from q (consuming the caller's reference) or drops it;
 * scope as wr_queue_dead_letter, w as wr_queue_dead_letter_confirmed. */
static int dead_letter_to(wr_queue_t *q, wr_msg_t *m, const char *reason, int scope, wr_waits_t *w)
{
    if (q->delay) {
        delay_fire(q, m);
        return WR_DLR_DONE;
    }
    wr_exchange_t *x = NULL;
    if (q->args.dlx)
        x = wr_vhost_exchange(q->vhost, wr_bytes_of(q->args.dlx));
    if (x == NULL) {
        wr_msg_unref(m);
        return WR_DLR_NO_ROUTE;
    }
    wr_basic_props_t pr;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) != 0)
        memset(&pr, 0, sizeof pr);
    wr_buf_t hdr, props;
    wr_buf_init(&hdr);
    wr_buf_init(&props);
    build_dl_headers(&hdr, q, m, &pr, reason);
    wr_basic_props_t np = pr;
    np.flags = (uint16_t)((np.flags | WR_PROP_HEADERS) & ~WR_PROP_EXPIRATION);
    np.headers = (wr_bytes_t){hdr.p + 4, hdr.len - 4};
    np.expiration = (wr_bytes_t){NULL, 0};
    wr_props_encode(&props, &np);
    wr_bytes_t rk = q->args.dlrk ? wr_bytes_of(q->args.dlrk) : wr_msg_routing_key(m);
    wr_msg_t *d =
        wr_msg_new(wr_bytes_of(q->args.dlx), rk, (wr_bytes_t){props.p, props.len}, m->body_len);
    wr_msg_append_body(d, m->body, m->body_len);
    d->persistent = m->persistent;
    d->priority = m->priority;
    rk = wr_msg_routing_key(d); /* m may go now */
    wr_msg_unref(m);

    wr_field_t xd;
    wr_table_get(np.headers, "x-death", &xd);
    wr_route_t r = {NULL, 0, 0}; /* local: pushing may dead-letter again */
    /* Routing uses the dead-letter key only; CC of the original is not
     * applied again (the new headers keep it, so route with none). */
    wr_route(q->vhost, x, rk, (wr_bytes_t){NULL, 0}, (wr_bytes_t){props.p, props.len}, &r);
    size_t k = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (is_cycle(r.q[i], xd.v.bytes, reason))
            wr_debug("dead-letter cycle: dropping message for queue '%s'", r.q[i]->name);
        else if (scope == WR_DL_QUORUM_ONLY && !wr_queue_is_quorum(r.q[i]))
            continue;
        else if (scope == WR_DL_CLASSIC_ONLY && wr_queue_is_quorum(r.q[i]))
            continue;
        else
            r.q[k++] = r.q[i];
    }
    int rejected = 0, res = r.n == 0 ? WR_DLR_NO_ROUTE : WR_DLR_DONE;
    if (k > 0 && wr_queues_push(q->vhost, r.q, k, d, w, &rejected) != 0)
        res = WR_DLR_REFUSED; /* the store failed */
    if (rejected)
        res = WR_DLR_REFUSED;
    free(r.q);
    wr_msg_unref(d);
    wr_buf_free(&hdr);
    wr_buf_free(&props);
    return res;
}

static void dead_letter(wr_queue_t *q, wr_msg_t *m, const char *reason)
{
    dead_letter_to(q, m, reason, WR_DL_ALL, NULL);
}

void wr_queue_dead_letter(wr_queue_t *q, wr_msg_t *m, const char *reason, int scope)
{
    dead_letter_to(q, m, reason, scope, NULL);
}

int wr_queue_dead_letter_confirmed(wr_queue_t *q, wr_msg_t *m, const char *reason, wr_waits_t *w)
{
    return dead_letter_to(q, m, reason, WR_DL_ALL, w);
}

/* ---- carrying out the state machine's effects ---- */

/* Queues keep this many ready entries of a stored message in memory; past
 * that, entries keep only the message's location, so memory does not grow
 * with the backlog (the body is in the page cache or on disk). */
#define PAGE_AFTER 1024

static wr_store_t *store_of(const wr_queue_t *q)
{
    return q->vhost->store;
}

/* The entry left the queue for good: tell the store (an ack record, or
 * just a dropped reference once the queue itself is deleted) and drop the
 * entry's message reference. */
static void entry_gone(wr_queue_t *q, wr_qent_t *e)
{
    if (e->loc.seg && store_of(q)) {
        if (q->deleted || q->store_id == 0)
            wr_store_release(store_of(q), e->loc);
        else
            wr_store_ack(store_of(q), q->store_id, e->loc);
    }
    if (e->msg)
        wr_msg_unref(e->msg);
    e->msg = NULL;
}

int wr_queue_load(wr_queue_t *q, wr_qent_t *e)
{
    if (e->msg)
        return 0;
    wr_store_t *st = store_of(q);
    if (st == NULL || e->loc.seg == 0)
        return WR_ENOTFOUND;
    static wr_buf_t scratch;
    wr_store_msg_t sm;
    int r = wr_store_read(st, e->loc, &scratch, &sm);
    if (r != 0)
        return r;
    wr_msg_t *m = wr_msg_new(sm.exchange, sm.routing_key, sm.props, sm.body.n);
    wr_msg_append_body(m, sm.body.p, sm.body.n);
    m->persistent = sm.flags & 1;
    wr_basic_props_t pr;
    if (wr_props_decode(sm.props.p, sm.props.n, &pr) == 0) {
        if (pr.flags & WR_PROP_PRIORITY)
            m->priority = pr.priority;
    }
    e->msg = m;
    if (scratch.cap > (1u << 20))
        wr_buf_free(&scratch);
    return 0;
}

/* Queues with x-delivery-limit tell consumers how often a message was
 * returned before, in the x-delivery-count header (as quorum queues do):
 * the delivered copy gets the header, the stored message stays as it was. */
static void with_delivery_count(wr_qent_t *e)
{
    wr_field_t c = wr_field_long(e->deliveries);
    e->msg = wr_msg_set_header(e->msg, "x-delivery-count", &c);
}

/* The entry leaves by dead-lettering (or is dropped if there is no DLX). */
static void entry_dead(wr_queue_t *q, wr_qent_t *e, const char *reason)
{
    if (!q->delay) /* a delayed message leaving its hidden queue is no death */
        wr_stats_dead_lettered(reason, q->args.dlx != NULL);
    if (q->args.dlx && wr_queue_load(q, e) == 0) {
        wr_msg_ref(e->msg);
        dead_letter(q, e->msg, reason);
    }
    entry_gone(q, e);
}

static void ttl_timer_cb(uv_timer_t *t)
{
    wr_queue_expire(t->data);
}

/* The state machine's earliest deadline is now at (0: none). */
static void set_timer(wr_queue_t *q, int64_t at)
{
    if (at == 0 || q->deleted) {
        if (q->ttl_timer)
            uv_timer_stop(q->ttl_timer);
        return;
    }
    if (q->ttl_timer == NULL) {
        q->ttl_timer = wr_xmalloc(sizeof *q->ttl_timer);
        uv_timer_init(wr_loop, q->ttl_timer);
        q->ttl_timer->data = q;
    }
    int64_t wait = at - wr_now_ms();
    uv_timer_start(q->ttl_timer, ttl_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* Carries out what a command of q's state machine decided, in order, and
 * empties fx.  Dead-lettering routes messages, which may come back to q
 * as new commands: q is kept alive meanwhile. */
static void run_fx(wr_queue_t *q, wr_qfx_t *fx)
{
    q->refs++;
    for (size_t i = 0; i < fx->n; i++) {
        wr_qfx_item_t *it = &fx->v[i];
        switch (it->kind) {
        case WR_QFX_DEAD:
            entry_dead(q, &it->e, wr_qsm_reason_name(it->reason));
            break;
        case WR_QFX_GONE:
            entry_gone(q, &it->e);
            break;
        case WR_QFX_TIMER:
            set_timer(q, it->at);
            break;
        }
    }
    wr_qfx_free(fx);
    wr_queue_unref(q);
}

static inline void run_fx_if(wr_queue_t *q, wr_qfx_t *fx)
{
    if (fx->n)
        run_fx(q, fx);
}

void wr_queue_expire(wr_queue_t *q)
{
    if (q->deleted)
        return;
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    wr_qsm_expire(&q->sm, wr_now_ms(), &fx);
    run_fx_if(q, &fx);
}

/* ---- push / pop ---- */

void wr_queue_enforce_limits(wr_queue_t *q)
{
    if (q->type->replicated)
        return; /* its own commands enforce them (limits_changed) */
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    int more;
    do {
        if (q->deleted)
            return;
        more = wr_qsm_enforce_limits(&q->sm, 4096, &fx);
        run_fx_if(q, &fx);
    } while (more);
}

static wr_consumer_t *pick(wr_queue_t *q);
static void deliver_to(wr_queue_t *q, wr_consumer_t *c, wr_qent_t *e);

/* The x-delay of a delayed message, in ms (0 if none). */
static int64_t x_delay_of(const wr_msg_t *m)
{
    wr_basic_props_t pr;
    wr_field_t f;
    int64_t v = 0;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) == 0 &&
        (pr.flags & WR_PROP_HEADERS) && wr_table_get(pr.headers, "x-delay", &f) &&
        wr_field_int(&f, &v) && v > 0)
        return v;
    return 0;
}

int64_t wr_msg_x_delay(const wr_msg_t *m)
{
    return x_delay_of(m);
}

/* Recovery of a delay queue: only the relative x-delay is stored, so after
 * a restart the wait starts again (a delayed message is late, never
 * lost). */
static int64_t recovered_delay(void *ctx, wr_qent_t *e)
{
    wr_queue_t *q = ctx;
    if (wr_queue_load(q, e) != 0)
        return -1;
    int64_t d = x_delay_of(e->msg);
    wr_msg_unref(e->msg);
    e->msg = NULL;
    return d;
}

/* Recovery of a priority queue: recovery appended in publish order, and
 * only the message itself knows its priority. */
static uint8_t recovered_priority(void *ctx, wr_qent_t *e)
{
    wr_queue_t *q = ctx;
    uint8_t prio = 0;
    if (wr_queue_load(q, e) == 0) {
        prio = e->msg->priority;
        wr_msg_unref(e->msg);
        e->msg = NULL;
    }
    return prio;
}

void wr_queue_recovery_done(wr_queue_t *q)
{
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    if (q->delay)
        wr_qsm_restamp(&q->sm, wr_now_ms(), recovered_delay, q, &fx);
    else
        wr_qsm_reprioritise(&q->sm, recovered_priority, q, &fx);
    run_fx_if(q, &fx);
}

int wr_queue_would_reject(const wr_queue_t *q, const wr_msg_t *m)
{
    return wr_qsm_would_reject(&q->sm, wr_msg_size(m));
}

int wr_queues_push(wr_vhost_t *vh, wr_queue_t **qs, size_t n, wr_msg_t *m, wr_waits_t *w,
                   int *rejected)
{
    *rejected = 0;
    wr_loc_t loc0 = {0, 0};
    wr_loc_t *locs = NULL;
    if (vh->store && m->persistent) {
        /* Written once for all durable queues (records of up to 255). */
        uint32_t ids[255];
        size_t idx[255];
        uint8_t k = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && qs[i]->store_id && !qs[i]->type->replicated &&
                !wr_queue_would_reject(qs[i], m)) {
                ids[k] = qs[i]->store_id;
                idx[k++] = i;
            }
            if (k == 255 || (i == n && k > 0)) {
                wr_loc_t loc;
                int err =
                    wr_store_append(vh->store, ids, k, 1, wr_msg_exchange(m), wr_msg_routing_key(m),
                                    wr_msg_props(m), (wr_bytes_t){m->body, m->body_len}, &loc);
                if (err) {
                    free(locs);
                    return err;
                }
                if (n == 1) {
                    loc0 = loc;
                } else {
                    if (locs == NULL)
                        locs = wr_xcalloc(n, sizeof *locs);
                    for (uint8_t j = 0; j < k; j++)
                        locs[idx[j]] = loc;
                }
                k = 0;
                if (w)
                    wr_waits_add(w, &vh->durable, wr_store_gen(vh->store));
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        wr_loc_t loc = n == 1 ? loc0 : locs ? locs[i] : (wr_loc_t){0, 0};
        if (qs[i]->type->push(qs[i], m, loc, w) != 0)
            *rejected = 1;
    }
    free(locs);
    return 0;
}

int wr_queue_push(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc)
{
    if (q->deleted) {
        if (loc.seg && store_of(q))
            wr_store_release(store_of(q), loc);
        return 0;
    }
    wr_qent_t e = {m, 0, 0, loc, 0, (uint32_t)wr_msg_size(m)};
    /* Past PAGE_AFTER ready entries a stored message is kept on disk only. */
    if (loc.seg && wr_qsm_ready(&q->sm) >= PAGE_AFTER)
        e.msg = NULL;
    if (wr_qsm_enqueue_plain(&q->sm, &e, m->ttl)) {
        if (e.msg)
            wr_msg_ref(m); /* the entry's */
        q->st.n[WR_ST_PUBLISH]++;
        if (q->n_consumers)
            wr_queue_kick(q);
        return 0;
    }
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    int r = wr_qsm_enqueue(&q->sm, &e, m->ttl, m->priority, wr_now_ms(), &fx);
    if (r == WR_QSM_REFUSED) {
        if (q->args.overflow == WR_OVERFLOW_REJECT_PUBLISH_DLX) {
            wr_stats_dead_lettered("maxlen", q->args.dlx != NULL);
            wr_msg_ref(m);
            dead_letter(q, m, "maxlen");
        }
        if (loc.seg && store_of(q))
            wr_store_ack(store_of(q), q->store_id, loc);
        return WR_ERANGE;
    }
    q->st.n[WR_ST_PUBLISH]++;
    if (r == WR_QSM_IMMEDIATE) {
        e.msg = m;
        wr_msg_ref(m);
        wr_consumer_t *c = wr_qsm_ready(&q->sm) == 0 ? pick(q) : NULL;
        if (c)
            deliver_to(q, c, &e);
        else
            wr_qsm_discard(&q->sm, &e, WR_QR_EXPIRED, &fx);
    } else if (e.msg) {
        wr_msg_ref(m); /* the entry's */
    }
    run_fx_if(q, &fx);
    if (q->n_consumers)
        wr_queue_kick(q);
    return 0;
}

void wr_queue_push_recovered(wr_queue_t *q, wr_loc_t loc, uint64_t order, uint32_t size,
                             int redelivered)
{
    wr_qent_t e = {NULL, 0, 0, loc, redelivered ? 1u : 0u, size};
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    wr_qsm_recover(&q->sm, &e, order, wr_now_ms(), &fx);
    run_fx_if(q, &fx);
}

/* Settles e with the state machine and disposes of the entry. */
static void settle(wr_queue_t *q, wr_qent_t *e)
{
    wr_qsm_settle(&q->sm);
    entry_gone(q, e);
}

/* Prepares a checked-out entry for delivery: its message in memory, with
 * x-delivery-count where the queue has a delivery limit.  An entry whose
 * message cannot be read is dropped (returns 0). */
static int ready_to_deliver(wr_queue_t *q, wr_qent_t *e)
{
    int r = wr_queue_load(q, e);
    if (r != 0) {
        wr_error("queue '%s': message at %u:%u cannot be read (%s), dropped", q->name, e->loc.seg,
                 e->loc.off, wr_strerror(r));
        settle(q, e);
        return 0;
    }
    if (q->args.delivery_limit > 0 && e->deliveries > 0)
        with_delivery_count(e);
    return 1;
}

int wr_queue_pop(wr_queue_t *q, wr_qent_t *out)
{
    if (q->type->replicated)
        return 0; /* its deliveries are decided by its replicated state */
    if (wr_qsm_checkout_head(&q->sm, out) && ready_to_deliver(q, out))
        return 1;
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    int64_t now = wr_now_ms();
    int got;
    while ((got = wr_qsm_checkout(&q->sm, now, out, &fx)) && !ready_to_deliver(q, out))
        ;
    run_fx_if(q, &fx);
    return got;
}

void wr_queue_out(wr_queue_t *q, const wr_qent_t *e)
{
    q->unacked++;
    q->refs++;
    if (e->loc.seg && e->deliveries == 0 && q->store_id && store_of(q))
        wr_store_delivered(store_of(q), q->store_id, e->loc);
}

void wr_queue_taken(wr_queue_t *q, wr_qent_t *e)
{
    q->type->taken(q, e);
}

void wr_queue_settle(wr_queue_t *q, wr_qent_t *e)
{
    q->type->settle(q, e, WR_SETTLE_ACK);
}

void wr_queue_return(wr_queue_t *q, wr_qent_t *e, int to_back)
{
    q->type->settle(q, e, to_back ? WR_SETTLE_RETURN : WR_SETTLE_REQUEUE);
}

void wr_queue_requeue(wr_queue_t *q, wr_qent_t *e)
{
    q->type->settle(q, e, WR_SETTLE_REQUEUE);
}

void wr_queue_discard(wr_queue_t *q, wr_qent_t *e)
{
    q->type->settle(q, e, WR_SETTLE_DISCARD);
}

void wr_queue_putback(wr_queue_t *q, wr_qent_t *e)
{
    if (q->deleted) {
        settle(q, e);
        return;
    }
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    wr_qsm_putback(&q->sm, e, wr_now_ms(), &fx);
    run_fx_if(q, &fx);
    if (q->n_consumers)
        wr_queue_kick(q);
}

/* ---- memory ---- */

void wr_queue_trim_memory(void)
{
    /* Queue blocks and small messages come from malloc's heap, which only
     * shrinks from its top: after a large backlog drains, give the free
     * pages back (once the memory in use fell well below its peak). */
    uint64_t now = wr_qsm_block_bytes + wr_msg_mem_bytes;
    if (now > wr_qsm_mem_peak)
        wr_qsm_mem_peak = now;
    if (wr_qsm_mem_peak - now > (16u << 20) && now < wr_qsm_mem_peak / 2) {
        wr_debug("returning freed memory (in use %" PRIu64 " bytes, peak %" PRIu64 ")", now,
                 wr_qsm_mem_peak);
        wr_msg_cache_release();
        malloc_trim(0);
        wr_qsm_mem_peak = now;
    }
}

/* ---- compaction ---- */

const wr_reloc_t *wr_reloc_find(const wr_reloc_t *tab, size_t n, uint32_t off)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tab[mid].old_off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && tab[lo].old_off == off ? &tab[lo] : NULL;
}

typedef struct reloc_ctx {
    uint32_t seg;
    const wr_reloc_t *tab;
    size_t n;
} reloc_ctx_t;

static void relocate_entry(void *ctx, wr_qent_t *e)
{
    const reloc_ctx_t *c = ctx;
    if (e->loc.seg != c->seg)
        return;
    const wr_reloc_t *r = wr_reloc_find(c->tab, c->n, e->loc.off);
    if (r)
        e->loc = r->new_loc;
}

void wr_queue_relocate(wr_queue_t *q, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    reloc_ctx_t c = {seg, tab, n};
    wr_qsm_foreach(&q->sm, relocate_entry, &c);
}

/* ---- dispatch ---- */

/* The consumer to serve next: among those that can take a message, the
 * highest priority, round-robin from q->rr within it. */
static wr_consumer_t *pick(wr_queue_t *q)
{
    if (q->consumers == NULL)
        return NULL;
    if (q->args.single_active)
        return q->consumers->ops->can_take(q->consumers) ? q->consumers : NULL;
    wr_consumer_t *start = q->rr ? q->rr : q->consumers;
    wr_consumer_t *best = NULL;
    wr_consumer_t *c = start;
    do {
        if ((best == NULL || c->priority > best->priority) && c->ops->can_take(c))
            best = c;
        c = c->qnext ? c->qnext : q->consumers;
    } while (c != start);
    return best;
}

static void deliver_to(wr_queue_t *q, wr_consumer_t *c, wr_qent_t *e)
{
    q->rr = c->qnext;
    if (!c->no_ack)
        wr_queue_out(q, e);
    c->ops->deliver(c, e);
}

static void dispatch(wr_queue_t *q)
{
    if (q->dispatching || q->deleted)
        return;
    q->dispatching = 1;
    while (wr_qsm_ready(&q->sm) > 0) {
        wr_consumer_t *c = pick(q);
        if (c == NULL)
            break;
        wr_qent_t e;
        if (!wr_queue_pop(q, &e))
            break;
        deliver_to(q, c, &e);
    }
    q->dispatching = 0;
    if (q->ttl_timer) {
        /* Deliveries may have left the deadline the timer is set for. */
        wr_qfx_t fx;
        wr_qfx_init(&fx);
        wr_qsm_arm(&q->sm, &fx);
        run_fx_if(q, &fx);
    }
}

void wr_queue_kick(wr_queue_t *q)
{
    if (q->pending || q->deleted || q->type->replicated)
        return;
    q->pending = 1;
    q->refs++;
    q->pending_next = pending_head;
    pending_head = q;
}

void wr_queue_run_pending(void)
{
    while (pending_head) {
        wr_queue_t *q = pending_head;
        pending_head = q->pending_next;
        q->pending = 0;
        dispatch(q);
        wr_queue_unref(q);
    }
}

void wr_queue_add_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    c->queue = q;
    /* Insert after every consumer of the same or higher priority. */
    wr_consumer_t *prev = NULL, *cur = q->consumers;
    while (cur && cur->priority >= c->priority) {
        prev = cur;
        cur = cur->qnext;
    }
    c->qprev = prev;
    c->qnext = cur;
    if (prev)
        prev->qnext = c;
    else
        q->consumers = c;
    if (cur)
        cur->qprev = c;
    q->n_consumers++;
    q->had_consumer = 1;
    q->last_used = wr_now_ms();
    if (q->type->consumer_added)
        q->type->consumer_added(q, c);
}

static void unlink_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    if (c->qprev)
        c->qprev->qnext = c->qnext;
    else
        q->consumers = c->qnext;
    if (c->qnext)
        c->qnext->qprev = c->qprev;
    if (q->rr == c)
        q->rr = c->qnext;
    c->qnext = c->qprev = NULL;
    c->queue = NULL;
    q->n_consumers--;
}

int wr_queue_remove_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    if (q->type->consumer_removed)
        q->type->consumer_removed(q, c);
    unlink_consumer(q, c);
    q->last_used = wr_now_ms();
    if (q->n_consumers == 0 && q->auto_delete && q->had_consumer && !q->deleted) {
        wr_queue_delete(q);
        return 1;
    }
    /* With single active consumer, the next one may now be active. */
    if (q->n_consumers)
        wr_queue_kick(q);
    return 0;
}

uint32_t wr_queue_purge(wr_queue_t *q)
{
    return q->type->purge(q);
}

static uint32_t classic_purge(wr_queue_t *q)
{
    uint32_t n = 0;
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    size_t k;
    /* In batches, so a purge of millions never holds millions of effects. */
    while ((k = wr_qsm_purge(&q->sm, 4096, &fx)) > 0 || fx.n) {
        n += (uint32_t)k;
        run_fx_if(q, &fx);
    }
    return n;
}

uint32_t wr_queue_delete(wr_queue_t *q)
{
    if (q->deleted)
        return 0;
    wr_persist_queue_deleted(q);
    q->deleted = 1;
    if (!q->delay)
        wr_stats_count(WR_NS_QUEUES_DELETED);
    while (q->consumers) {
        wr_consumer_t *c = q->consumers;
        unlink_consumer(q, c);
        c->ops->cancelled(c);
    }
    while (q->bindings)
        wr_binding_remove(q->bindings);
    /* A quorum queue's messages go with its log (or stay in it at
     * shutdown): nothing to purge, and no PURGE may reach the log. */
    uint32_t n = q->type->replicated ? (uint32_t)wr_queue_ready(q) : wr_queue_purge(q);
    wr_map_del(&q->vhost->queues, (wr_bytes_t){(uint8_t *)q->name, q->name_len});
    q->vhost->names_gen++;
    if (q->ttl_timer) {
        uv_close((uv_handle_t *)q->ttl_timer, timer_closed);
        q->ttl_timer = NULL;
    }
    /* A deleted quorum queue's log goes with it; at shutdown (the store
     * already closed) it stays for the next start. */
    if (q->type->close)
        q->type->close(q, q->vhost->store != NULL);
    wr_queue_unref(q);
    return n;
}

/* ---- the classic queue type ---- */

static int classic_push(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc, wr_waits_t *w)
{
    (void)w; /* wr_queues_push made it wait on the vhost store's write */
    return wr_queue_push(q, m, loc) == WR_ERANGE;
}

static void classic_get(wr_queue_t *q, wr_channel_t *ch, int no_ack)
{
    wr_qent_t e;
    wr_channel_get_answer(ch, q, wr_queue_pop(q, &e) ? &e : NULL, no_ack);
}

static void classic_settle(wr_queue_t *q, wr_qent_t *e, int how)
{
    q->unacked--;
    if (how == WR_SETTLE_ACK || q->deleted) {
        settle(q, e);
    } else {
        wr_qfx_t fx;
        wr_qfx_init(&fx);
        if (how == WR_SETTLE_DISCARD) {
            wr_qsm_discard(&q->sm, e, WR_QR_REJECTED, &fx);
            run_fx(q, &fx);
        } else {
            /* Requeued or returned: back to its place, either way. */
            if (wr_qsm_return(&q->sm, e, wr_now_ms(), &fx) && q->n_consumers)
                wr_queue_kick(q);
            run_fx_if(q, &fx);
        }
    }
    wr_queue_unref(q);
}

static void classic_consumer_added(wr_queue_t *q, wr_consumer_t *c)
{
    (void)c;
    wr_queue_kick(q);
}

static size_t classic_ready(const wr_queue_t *q)
{
    return wr_qsm_ready(&q->sm);
}

static uint64_t classic_ready_bytes(const wr_queue_t *q)
{
    return q->sm.ready_bytes;
}

const wr_qtype_t wr_qtype_classic = {
    .name = "classic",
    .id = WR_QTYPE_CLASSIC,
    .replicated = 0,
    .push = classic_push,
    .get = classic_get,
    .settle = classic_settle,
    .taken = settle,
    .consumer_added = classic_consumer_added,
    .purge = classic_purge,
    .ready = classic_ready,
    .ready_bytes = classic_ready_bytes,
};
