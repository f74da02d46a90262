/* replay.c - dead-letter replay and queue-to-queue move (see replay.h). */
#include "broker/replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

/* Originals held until the copy's store generation is on disk. */
typedef struct pending {
    wr_vhost_t *vh;
    wr_queue_t *q;
    wr_qent_t e;
    uint64_t gen;
} pending_t;

static pending_t *pend;
static size_t n_pend, cap_pend;

size_t wr_replay_pending(void)
{
    return n_pend;
}

static wr_bytes_t headers_of(const wr_msg_t *m)
{
    wr_bytes_t props = wr_msg_props(m);
    wr_basic_props_t pr;
    if (props.n >= 2 && (wr_get_u16(props.p) & WR_PROP_HEADERS) &&
        wr_props_decode(props.p, props.n, &pr) == 0)
        return pr.headers;
    return (wr_bytes_t){NULL, 0};
}

static wr_bytes_t header_str(wr_bytes_t h, const char *key)
{
    wr_field_t f;
    if (h.n && wr_table_get(h, key, &f) && (f.type == 'S' || f.type == 's'))
        return f.v.bytes;
    return (wr_bytes_t){NULL, 0};
}

/* Takes every ready entry of q (at most limit) out, in order. */
static size_t take_all(wr_queue_t *q, size_t limit, wr_qent_t **out)
{
    size_t n = 0, cap = 0;
    wr_qent_t *v = NULL;
    wr_qent_t e;
    while (n < limit && wr_queue_pop(q, &e)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = wr_xrealloc(v, cap * sizeof *v);
        }
        v[n++] = e;
    }
    *out = v;
    return n;
}

size_t wr_replay_scan(wr_queue_t *q, size_t limit,
                      void (*fn)(void *ctx, wr_bytes_t queue, wr_bytes_t reason,
                                 wr_bytes_t exchange),
                      void *ctx)
{
    wr_qent_t *v;
    size_t n = take_all(q, limit, &v);
    for (size_t i = 0; i < n; i++) {
        wr_bytes_t h = headers_of(v[i].msg);
        fn(ctx, header_str(h, "x-first-death-queue"), header_str(h, "x-first-death-reason"),
           header_str(h, "x-first-death-exchange"));
    }
    /* Back where they were, unchanged (not a delivery). */
    for (size_t i = n; i-- > 0;)
        wr_queue_putback(q, &v[i]);
    free(v);
    return n;
}

/* The text of a header value, for filters: strings as they are, numbers
 * and booleans as JSON writes them. */
static int header_matches(wr_bytes_t h, const char *key, const char *want)
{
    wr_field_t f;
    if (h.n == 0 || !wr_table_get(h, key, &f))
        return 0;
    if (want == NULL)
        return 1;
    char num[32];
    switch (f.type) {
    case 'S':
    case 's':
    case 'x':
        return wr_bytes_eq_str(f.v.bytes, want);
    case 't':
        return strcmp(f.v.i ? "true" : "false", want) == 0;
    case 'b':
    case 'B':
    case 'u':
    case 'U':
    case 'i':
    case 'I':
    case 'l':
    case 'L':
        snprintf(num, sizeof num, "%" PRId64, (int64_t)f.v.i);
        return strcmp(num, want) == 0;
    default:
        return 0;
    }
}

static int matches(const wr_replay_t *s, const wr_msg_t *m)
{
    if (s->move)
        return 1;
    wr_bytes_t h = headers_of(m);
    wr_bytes_t fq = header_str(h, "x-first-death-queue");
    if (fq.n == 0 && h.n == 0)
        return 0; /* never dead-lettered: nothing to replay */
    if (s->from_queue && !wr_bytes_eq_str(fq, s->from_queue))
        return 0;
    if (s->reason && !wr_bytes_eq_str(header_str(h, "x-first-death-reason"), s->reason))
        return 0;
    if (s->header && !header_matches(h, s->header, s->header_value))
        return 0;
    return fq.n > 0 || s->to_queue || s->to_exchange;
}

static void hold(wr_vhost_t *vh, wr_queue_t *q, const wr_qent_t *e, uint64_t gen)
{
    wr_queue_out(q, e);
    if (gen == 0) {
        wr_qent_t c = *e;
        wr_queue_settle(q, &c);
        return;
    }
    if (n_pend == cap_pend) {
        cap_pend = cap_pend ? cap_pend * 2 : 64;
        pend = wr_xrealloc(pend, cap_pend * sizeof *pend);
    }
    pend[n_pend++] = (pending_t){vh, q, *e, gen};
}

void wr_replay_store_synced(wr_vhost_t *vh, uint64_t gen, int err)
{
    size_t k = 0;
    for (size_t i = 0; i < n_pend; i++) {
        pending_t *p = &pend[i];
        if (p->vh != vh || p->gen > gen) {
            pend[k++] = *p;
            continue;
        }
        if (err)
            wr_queue_requeue(p->q, &p->e);
        else
            wr_queue_settle(p->q, &p->e);
    }
    n_pend = k;
}

int wr_replay_run(wr_vhost_t *vh, wr_queue_t *q, const wr_replay_t *s, const wr_actor_t *who,
                  size_t *done, wr_reply_t *r)
{
    *done = 0;
    r->code = 0;
    r->text[0] = '\0';
    if (s->move && (s->to_queue == NULL || s->to_queue == q)) {
        r->code = WR_AMQP_PRECONDITION_FAILED;
        snprintf(r->text, sizeof r->text, "a move needs another queue as destination");
        return -1;
    }
    wr_qent_t *v;
    size_t n = take_all(q, SIZE_MAX, &v);
    size_t i = 0;
    int failed = 0;
    for (; i < n && !failed; i++) {
        wr_qent_t *e = &v[i];
        if ((s->max && *done >= s->max) || !matches(s, e->msg)) {
            wr_queue_putback(q, e);
            e->msg = NULL; /* back in the queue */
            continue;
        }
        wr_msg_t *m = e->msg;
        wr_msg_ref(m);
        if (!s->move) {
            wr_bytes_t h = headers_of(m);
            wr_field_t f;
            int64_t times = h.n && wr_table_get(h, "x-warren-replayed", &f) &&
                                    (f.type == 'l' || f.type == 'I' || f.type == 'L')
                                ? (int64_t)f.v.i
                                : 0;
            wr_field_t mark = wr_field_long(times + 1);
            m = wr_msg_set_header(m, "x-warren-replayed", &mark);
        }
        wr_queue_t *target = s->to_queue;
        wr_bytes_t xname = WR_BYTES_LIT(""), rk = wr_msg_routing_key(m);
        if (s->to_exchange) {
            xname = wr_bytes_of(s->to_exchange);
            if (s->routing_key)
                rk = wr_bytes_of(s->routing_key);
        } else if (target == NULL) {
            wr_bytes_t fq = header_str(headers_of(m), "x-first-death-queue");
            target = wr_vhost_queue(vh, fq);
            if (target == NULL || target == q) {
                /* Its queue is gone (or is this one): it stays. */
                wr_msg_unref(m);
                wr_queue_putback(q, e);
                e->msg = NULL;
                continue;
            }
        }
        if (target)
            rk = (wr_bytes_t){(const uint8_t *)target->name, target->name_len};
        wr_publish_spec_t ps = {
            xname, rk, wr_msg_props(m), {m->body, m->body_len}, s->to_exchange ? NULL : target};
        size_t routed;
        uint64_t gen;
        if (wr_op_publish(vh, &ps, who, &routed, &gen, r) != 0) {
            wr_msg_unref(m);
            wr_queue_putback(q, e);
            e->msg = NULL;
            failed = 1;
            continue;
        }
        wr_msg_unref(m);
        /* Durable only if both sides are: a transient copy needs no sync. */
        hold(vh, q, e, e->loc.seg ? gen : 0);
        e->msg = NULL;
        (*done)++;
    }
    for (; i < n; i++)
        wr_queue_putback(q, &v[i]);
    free(v);
    return failed ? -1 : 0;
}
