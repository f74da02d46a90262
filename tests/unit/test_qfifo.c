/*
 * test_qfifo.c - the replicated queue state machine (broker/qfifo.h).
 *
 * First, focused tests: one rule or command each, with the whole effect
 * list compared as text.  Then two randomised tests driven by the same
 * command generator:
 *
 *   determinism  two independent replicas fed the same commands must emit
 *                exactly the same effects and reach the same state after
 *                every step; a third one, rebuilt from a snapshot of the
 *                first every few hundred steps (as quorum.c's restore_cb
 *                does, through wr_qfifo_hold), must emit the same
 *                effects from then on (timers aside);
 *   model        a deliberately naive reference model of the dispatch
 *                rules (consumers in attach order, credit counted from
 *                the entries it thinks each holds, the consumer to serve
 *                found by a linear scan) checks the consumer of every
 *                DELIVER, the entry it gets (the next one in queue order),
 *                prefetch, and conservation: every entry enqueued is
 *                ready, held, or left through exactly one DEAD, GONE or
 *                no-ack DELIVER/GET.
 *
 * Entries carry fake msg pointers (MSG(id): small, never-mapped
 * addresses) that qfifo must never dereference; loc.off holds the entry's
 * id, so that every entry that comes out says which one it is.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/qfifo.h"
#include "test.h"

#define MSG(id) ((wr_msg_t *)(uintptr_t)((uintptr_t)(id)*16))
#define LOC_SEG 7
#define T0      1000 /* the focused tests' clock */

static wr_qent_t ent(uint32_t id, uint32_t size)
{
    wr_qent_t e = {MSG(id), 0, 0, {LOC_SEG, id}, 0, size};
    return e;
}

static uint32_t id_of(const wr_qent_t *e)
{
    return e->loc.off;
}

static int payload_ok(const wr_qent_t *e)
{
    return e->msg == MSG(id_of(e)) && e->loc.seg == LOC_SEG;
}

static wr_qsm_limits_t no_limits(void)
{
    wr_qsm_limits_t l = {-1, -1, -1, -1, WR_OVERFLOW_DROP_HEAD, 0};
    return l;
}

static int enq(wr_qfifo_t *f, uint32_t id, uint32_t size, int64_t msg_ttl, int64_t now,
               wr_qfx_t *fx)
{
    wr_qent_t e = ent(id, size);
    return wr_qfifo_enqueue(f, &e, msg_ttl, 0, now, fx);
}

/* The checked-out entry with id, or NULL. */
static const wr_qfifo_out_t *held_id(const wr_qfifo_t *f, uint32_t id)
{
    for (size_t s = 0; s < f->out_cap; s++)
        if (f->used[s] && id_of(&f->out[s].e) == id)
            return &f->out[s];
    return NULL;
}

/* The seq of the checked-out entry id (for settling it), or a seq that
 * nobody holds. */
static uint64_t seq_of(const wr_qfifo_t *f, uint32_t id)
{
    const wr_qfifo_out_t *o = held_id(f, id);
    return o ? o->e.seq : UINT64_MAX / 2;
}

/* Who holds entry id, or UINT64_MAX. */
static uint64_t holder_of(const wr_qfifo_t *f, uint32_t id)
{
    const wr_qfifo_out_t *o = held_id(f, id);
    return o ? o->cid : UINT64_MAX;
}

static uint32_t n_out(const wr_qfifo_t *f, uint64_t cid)
{
    const wr_qfifo_consumer_t *c = wr_qfifo_consumer(f, cid);
    return c ? c->n_out : UINT32_MAX;
}

/* The effects in fx as text, and fx reset:
 *   d:C:I    DELIVER of entry I to consumer C (held)
 *   dn:C:I   DELIVER to a no-ack consumer (reason 1: it left the queue)
 *   g:G:I    GET answered with I, held by getter G; gn:G:I no-ack; g:G:-
 *            the queue was empty
 *   dead:R:I, gone:I, timer:AT
 * An entry whose payload is not its id's shows as "?". */
static const char *fxs(wr_qfx_t *fx)
{
    static char buf[16384];
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < fx->n && n + 64 < sizeof buf; i++) {
        const wr_qfx_item_t *it = &fx->v[i];
        const char *sep = i ? " " : "";
        int k;
        if (it->kind == WR_QFX_TIMER)
            k = snprintf(buf + n, sizeof buf - n, "%stimer:%" PRId64, sep, it->at);
        else if (it->kind == WR_QFX_GET && it->reason == 1)
            k = snprintf(buf + n, sizeof buf - n, "%sg:%" PRIu64 ":%s", sep, it->to,
                         it->e.msg == NULL && it->e.seq == 0 && it->e.size == 0 ? "-" : "?");
        else if (!payload_ok(&it->e))
            k = snprintf(buf + n, sizeof buf - n, "%s?", sep);
        else if (it->kind == WR_QFX_DELIVER)
            k = snprintf(buf + n, sizeof buf - n, "%s%s:%" PRIu64 ":%u", sep,
                         it->reason == 0   ? "d"
                         : it->reason == 1 ? "dn"
                                           : "d?",
                         it->to, id_of(&it->e));
        else if (it->kind == WR_QFX_GET)
            k = snprintf(buf + n, sizeof buf - n, "%s%s:%" PRIu64 ":%u", sep,
                         it->reason == 0   ? "g"
                         : it->reason == 2 ? "gn"
                                           : "g?",
                         it->to, id_of(&it->e));
        else if (it->kind == WR_QFX_DEAD)
            k = snprintf(buf + n, sizeof buf - n, "%sdead:%s:%u", sep,
                         wr_qsm_reason_name(it->reason), id_of(&it->e));
        else if (it->kind == WR_QFX_GONE)
            k = snprintf(buf + n, sizeof buf - n, "%sgone:%u", sep, id_of(&it->e));
        else
            k = snprintf(buf + n, sizeof buf - n, "%skind%d", sep, it->kind);
        n += (size_t)k;
    }
    wr_qfx_reset(fx);
    return buf;
}

/* The last DELIVER or GET of entry id in fx (not reset), or an item
 * that matches no entry (msg NULL). */
static const wr_qfx_item_t *fx_find(const wr_qfx_t *fx, uint32_t id)
{
    static const wr_qfx_item_t none = {
        0xff, 0xff, -2, UINT64_MAX, {NULL, UINT64_MAX, -2, {0, 0}, UINT32_MAX, UINT32_MAX}};
    const wr_qfx_item_t *found = &none;
    for (size_t i = 0; i < fx->n; i++)
        if ((fx->v[i].kind == WR_QFX_DELIVER || fx->v[i].kind == WR_QFX_GET) &&
            fx->v[i].e.msg != NULL && id_of(&fx->v[i].e) == id)
            found = &fx->v[i];
    return found;
}

/* ---- snapshot and restore, as quorum.c's snapshot_cb and restore_cb ---- */

typedef struct restore_ctx {
    wr_qfifo_t *dst;
    wr_qfx_t *fx;
} restore_ctx_t;

static void restore_ready(void *ctx, wr_qent_t *e)
{
    restore_ctx_t *c = ctx;
    wr_qsm_restore(&c->dst->sm, e, c->fx);
}

/* Rebuilds dst (initialised or freed and re-initialised here) from src's
 * state; the effects of restoring (timers only) go to fx. */
static void snap_restore(wr_qfifo_t *src, wr_qfifo_t *dst, wr_qfx_t *fx)
{
    wr_qfifo_free(dst);
    wr_qfifo_init(dst, &src->sm.lim, src->single_active);
    dst->rr = src->rr;
    for (size_t i = 0; i < src->n_cons; i++)
        wr_qfifo_attach(dst, src->cons[i].cid, src->cons[i].prefetch, src->cons[i].priority,
                        src->cons[i].no_ack, 0, fx);
    restore_ctx_t c = {dst, fx};
    wr_qsm_foreach(&src->sm, restore_ready, &c);
    for (size_t s = 0; s < src->out_cap; s++)
        if (src->used[s])
            wr_qfifo_hold(dst, src->out[s].cid, &src->out[s].e);
    dst->sm.next_seq = src->sm.next_seq;
}

/* ---- focused tests ---- */

static void test_qfifo_attach_detach(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 3; id++)
        CHECK_EQ(enq(&f, id, 10, -1, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qfifo_ready(&f), 3);

    /* Attaching takes what is ready at once. */
    wr_qfifo_attach(&f, 1, 0, 0, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1 d:1:2 d:1:3");
    CHECK_EQ(f.n_cons, 1);
    CHECK_EQ(n_out(&f, 1), 3);
    CHECK_EQ(wr_qfifo_unacked(&f), 3);
    CHECK_EQ(f.sm.out, 3);
    CHECK_EQ(wr_qfifo_ready(&f), 0);
    CHECK(wr_qfifo_consumer(&f, 2) == NULL);
    const wr_qfifo_out_t *o = held_id(&f, 2);
    CHECK(o != NULL);
    CHECK_EQ(o->cid, 1);
    CHECK_EQ(o->e.seq, 1);
    CHECK(wr_qfifo_held(&f, 1) == o);
    CHECK(wr_qfifo_held(&f, 99) == NULL);

    /* Attaching an attached cid again updates it; what it holds stays
     * counted. */
    wr_qfifo_attach(&f, 1, 5, 3, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(f.n_cons, 1);
    const wr_qfifo_consumer_t *c = wr_qfifo_consumer(&f, 1);
    CHECK(c != NULL);
    CHECK_EQ(c->prefetch, 5);
    CHECK_EQ(c->priority, 3);
    CHECK_EQ(c->n_out, 3);

    /* Detaching an unknown cid does nothing; detaching keeps what the
     * consumer holds. */
    wr_qfifo_detach(&f, 99, T0, &fx);
    CHECK_EQ(f.n_cons, 1);
    wr_qfifo_detach(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(f.n_cons, 0);
    CHECK(wr_qfifo_consumer(&f, 1) == NULL);
    CHECK_EQ(wr_qfifo_unacked(&f), 3);
    CHECK_EQ(holder_of(&f, 3), 1);

    /* Nobody to deliver to. */
    CHECK_EQ(enq(&f, 4, 10, -1, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "");
    /* The detached consumer can still settle. */
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 1), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:1");
    CHECK_EQ(wr_qfifo_unacked(&f), 2);
    /* Its channel closes: the rest comes back, in its original place. */
    wr_qfifo_return_all(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qfifo_ready(&f), 3);
    CHECK_EQ(wr_qfifo_unacked(&f), 0);
    CHECK_EQ(f.sm.out, 0);
    wr_qfifo_attach(&f, 2, 0, 0, 0, T0, &fx);
    CHECK(fx_find(&fx, 2)->e.msg != NULL);
    CHECK_EQ(fx_find(&fx, 2)->e.deliveries, 1);
    CHECK_EQ(fx_find(&fx, 4)->e.deliveries, 0);
    CHECK_STR(fxs(&fx), "d:2:2 d:2:3 d:2:4");
    CHECK_EQ(n_out(&f, 2), 3);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_round_robin(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    for (uint64_t cid = 1; cid <= 3; cid++)
        wr_qfifo_attach(&f, cid, 0, 0, 0, T0, &fx);
    for (uint32_t id = 1; id <= 7; id++)
        enq(&f, id, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1 d:2:2 d:3:3 d:1:4 d:2:5 d:3:6 d:1:7");
    /* 2 is next; it leaves, so 3 is. */
    wr_qfifo_detach(&f, 2, T0, &fx);
    enq(&f, 8, 1, -1, T0, &fx);
    enq(&f, 9, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:3:8 d:1:9");
    /* A new consumer joins the rotation at the end. */
    wr_qfifo_attach(&f, 4, 0, 0, 0, T0, &fx);
    for (uint32_t id = 10; id <= 15; id++)
        enq(&f, id, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:3:10 d:4:11 d:1:12 d:3:13 d:4:14 d:1:15");
    /* The one served last leaves: the one after it is next. */
    wr_qfifo_detach(&f, 1, T0, &fx);
    enq(&f, 16, 1, -1, T0, &fx);
    enq(&f, 17, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:3:16 d:4:17");
    /* A burst (attach with a backlog) rotates too. */
    wr_qfifo_detach(&f, 3, T0, &fx);
    wr_qfifo_detach(&f, 4, T0, &fx);
    for (uint32_t id = 20; id <= 25; id++)
        enq(&f, id, 1, -1, T0, &fx);
    wr_qfifo_attach(&f, 5, 2, 0, 0, T0, &fx);
    wr_qfifo_attach(&f, 6, 0, 0, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "d:5:20 d:5:21 d:6:22 d:6:23 d:6:24 d:6:25");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_priority(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 0, 0, 0, T0, &fx);
    wr_qfifo_attach(&f, 2, 2, 5, 0, T0, &fx);
    wr_qfifo_attach(&f, 3, 1, 5, 0, T0, &fx);
    wr_qfifo_attach(&f, 4, 0, -1, 0, T0, &fx);
    /* Round-robin among the priority 5 ones while they have credit, then
     * the next priority down; -1 never while 1 can take. */
    for (uint32_t id = 1; id <= 6; id++)
        enq(&f, id, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:1 d:3:2 d:2:3 d:1:4 d:1:5 d:1:6");
    /* Credit back: the high priority consumer takes the next one. */
    CHECK_EQ(wr_qfifo_settle(&f, 2, seq_of(&f, 1), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:1");
    enq(&f, 7, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:7");
    CHECK_EQ(wr_qfifo_settle(&f, 3, seq_of(&f, 2), T0, &fx), 1);
    enq(&f, 8, 1, -1, T0, &fx);
    enq(&f, 9, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "gone:2 d:3:8 d:1:9");
    /* Without 1, the lowest priority consumer is the only one left with
     * credit. */
    wr_qfifo_detach(&f, 1, T0, &fx);
    enq(&f, 10, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:4:10");
    CHECK_EQ(n_out(&f, 2), 2);
    CHECK_EQ(n_out(&f, 3), 1);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_prefetch_settle(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 2, 0, 0, T0, &fx);
    for (uint32_t id = 1; id <= 6; id++)
        enq(&f, id, 10, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1 d:1:2");
    CHECK_EQ(n_out(&f, 1), 2);
    CHECK_EQ(wr_qfifo_ready(&f), 4);
    CHECK_EQ(f.sm.ready_bytes, 40);
    /* Each settle frees credit: the next one goes out at once. */
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 1), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:1 d:1:3");
    CHECK_EQ(n_out(&f, 1), 2);
    /* Returned to its place (the head): delivered again, counted. */
    CHECK_EQ(wr_qfifo_return(&f, 1, seq_of(&f, 2), 0, T0, &fx), 1);
    CHECK_EQ(fx_find(&fx, 2)->e.deliveries, 1);
    CHECK_STR(fxs(&fx), "d:1:2");
    CHECK_EQ(wr_qfifo_discard(&f, 1, seq_of(&f, 3), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:rejected:3 d:1:4");
    /* More credit. */
    wr_qfifo_attach(&f, 1, 3, 0, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:5");
    CHECK_EQ(n_out(&f, 1), 3);
    CHECK_EQ(wr_qfifo_unacked(&f), 3);
    CHECK_EQ(wr_qfifo_ready(&f), 1);
    /* A second consumer with credit takes the rest. */
    wr_qfifo_attach(&f, 2, 1, 0, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:6");
    for (uint32_t id = 7; id <= 9; id++)
        enq(&f, id, 10, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qfifo_settle(&f, 2, seq_of(&f, 6), T0, &fx), 1);
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 5), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:6 d:2:7 gone:5 d:1:8");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_no_ack(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 2; id++)
        enq(&f, id, 1, -1, T0, &fx);
    /* A no-ack consumer holds nothing: its prefetch never runs out. */
    wr_qfifo_attach(&f, 1, 1, 0, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "dn:1:1 dn:1:2");
    enq(&f, 3, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "dn:1:3");
    CHECK_EQ(wr_qfifo_unacked(&f), 0);
    CHECK_EQ(f.sm.out, 0);
    CHECK_EQ(n_out(&f, 1), 0);
    CHECK_EQ(wr_qfifo_ready(&f), 0);
    /* Nothing to settle. */
    CHECK_EQ(wr_qfifo_settle(&f, 1, 0, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_return(&f, 1, 1, 1, T0, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    /* Alongside an acking consumer, in turn. */
    wr_qfifo_attach(&f, 2, 0, 0, 0, T0, &fx);
    for (uint32_t id = 4; id <= 7; id++)
        enq(&f, id, 1, -1, T0, &fx);
    /* 1 was served last, and last in attach order: the rotation wraps to
     * the start, so 2, attached after it, comes second. */
    CHECK_STR(fxs(&fx), "dn:1:4 d:2:5 dn:1:6 d:2:7");
    CHECK_EQ(wr_qfifo_unacked(&f), 2);
    CHECK_EQ(f.sm.out, 2);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_single_active(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 1);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 2, 0, 0, T0, &fx);
    wr_qfifo_attach(&f, 2, 0, 9, 0, T0, &fx);
    wr_qfifo_attach(&f, 3, 0, 0, 0, T0, &fx);
    for (uint32_t id = 1; id <= 4; id++)
        enq(&f, id, 1, -1, T0, &fx);
    /* Only the first attached receives, even when out of credit. */
    CHECK_STR(fxs(&fx), "d:1:1 d:1:2");
    CHECK_EQ(wr_qfifo_ready(&f), 2);
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 1), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:1 d:1:3");
    /* It leaves: the next attached one takes over (what 1 holds stays
     * held), then gets what 1 held once it comes back. */
    wr_qfifo_detach(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:4");
    wr_qfifo_return_all(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:2 d:2:3");
    enq(&f, 5, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:5");
    CHECK_EQ(n_out(&f, 2), 4);
    CHECK_EQ(n_out(&f, 3), 0);
    /* One that is not active leaving changes nothing. */
    wr_qfifo_detach(&f, 3, T0, &fx);
    enq(&f, 6, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:2:6");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_settle_unknown(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 0, 0, 0, T0, &fx);
    wr_qfifo_attach(&f, 2, 0, 0, 0, T0, &fx);
    /* Nothing held at all. */
    CHECK_EQ(wr_qfifo_settle(&f, 1, 0, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_discard(&f, 1, 0, T0, &fx), 0);
    enq(&f, 1, 1, -1, T0, &fx);
    enq(&f, 2, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1 d:2:2");
    uint64_t s1 = seq_of(&f, 1);
    /* Held by someone else, or by nobody. */
    CHECK_EQ(wr_qfifo_settle(&f, 2, s1, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_return(&f, 2, s1, 0, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_return(&f, 2, s1, 1, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_discard(&f, 2, s1, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_settle(&f, 1, 12345, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_settle(&f, 77, s1, T0, &fx), 0);
    wr_qfifo_return_all(&f, 77, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(n_out(&f, 1), 1);
    CHECK_EQ(n_out(&f, 2), 1);
    CHECK_EQ(wr_qfifo_unacked(&f), 2);
    /* Twice: the second is a duplicate. */
    CHECK_EQ(wr_qfifo_settle(&f, 1, s1, T0, &fx), 1);
    CHECK_EQ(wr_qfifo_settle(&f, 1, s1, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_return(&f, 1, s1, 0, T0, &fx), 0);
    CHECK_STR(fxs(&fx), "gone:1");
    CHECK_EQ(n_out(&f, 1), 0);
    CHECK_EQ(n_out(&f, 2), 1);
    CHECK_EQ(f.sm.out, 1);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_return_position(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 3, 0, 0, T0, &fx);
    for (uint32_t id = 1; id <= 6; id++)
        enq(&f, id, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1 d:1:2 d:1:3");
    wr_qfifo_detach(&f, 1, T0, &fx);
    uint64_t s1 = seq_of(&f, 1), s2 = seq_of(&f, 2), s3 = seq_of(&f, 3);
    CHECK_EQ(s1, 0);
    CHECK_EQ(s2, 1);
    /* A reject with requeue: to the back, with a new seq; a channel that
     * closed: to its original place. */
    CHECK_EQ(wr_qfifo_return(&f, 1, s2, 1, T0, &fx), 1);
    CHECK_EQ(wr_qfifo_return(&f, 1, s3, 0, T0, &fx), 1);
    CHECK_EQ(wr_qfifo_return(&f, 1, s1, 0, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qfifo_ready(&f), 6);
    CHECK_EQ(f.sm.out, 0);
    wr_qfifo_attach(&f, 2, 0, 0, 0, T0, &fx);
    CHECK_EQ(fx_find(&fx, 2)->e.seq, 6);
    CHECK_EQ(fx_find(&fx, 2)->e.deliveries, 1);
    CHECK_EQ(fx_find(&fx, 1)->e.seq, 0);
    CHECK_EQ(fx_find(&fx, 1)->e.deliveries, 1);
    CHECK_EQ(fx_find(&fx, 3)->e.deliveries, 1);
    CHECK_EQ(fx_find(&fx, 4)->e.deliveries, 0);
    CHECK_STR(fxs(&fx), "d:2:1 d:2:3 d:2:4 d:2:5 d:2:6 d:2:2");
    /* The entry is held under its new seq. */
    CHECK(wr_qfifo_held(&f, 6) != NULL);
    CHECK_EQ(id_of(&wr_qfifo_held(&f, 6)->e), 2);
    CHECK(wr_qfifo_held(&f, 1) == NULL);
    CHECK_EQ(wr_qfifo_settle(&f, 2, 1, T0, &fx), 0);
    CHECK_EQ(wr_qfifo_settle(&f, 2, 6, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:2");

    /* A priority queue has no back: a requeue keeps the entry's place
     * within its priority. */
    wr_qfifo_t p;
    lim.max_priority = 5;
    wr_qfifo_init(&p, &lim, 0);
    wr_qfifo_attach(&p, 1, 1, 0, 0, T0, &fx);
    wr_qent_t e;
    for (uint32_t id = 1; id <= 3; id++) {
        e = ent(id, 1);
        wr_qfifo_enqueue(&p, &e, -1, id == 3 ? 4 : 1, T0, &fx);
    }
    CHECK_STR(fxs(&fx), "d:1:1");
    CHECK_EQ(wr_qfifo_return(&p, 1, seq_of(&p, 1), 1, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "d:1:3");
    CHECK_EQ(wr_qfifo_settle(&p, 1, seq_of(&p, 3), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:3 d:1:1");
    wr_qfifo_free(&p);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_return_all(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 5; id++)
        enq(&f, id, 3, -1, T0, &fx);
    wr_qfifo_get(&f, 77, 0, T0, &fx);
    wr_qfifo_get(&f, 77, 0, T0, &fx);
    wr_qfifo_attach(&f, 1, 2, 0, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "g:77:1 g:77:2 d:1:3 d:1:4");
    CHECK_EQ(wr_qfifo_unacked(&f), 4);
    CHECK_EQ(n_out(&f, 1), 2);
    /* The consumer's channel closes without a cancel: what it held comes
     * back counted as a delivery and goes out again at once. */
    wr_qfifo_return_all(&f, 1, T0, &fx);
    CHECK_EQ(fx_find(&fx, 3)->e.deliveries, 1);
    CHECK_EQ(fx_find(&fx, 4)->e.deliveries, 1);
    CHECK_STR(fxs(&fx), "d:1:3 d:1:4");
    CHECK_EQ(n_out(&f, 1), 2);
    /* The getter's: both back in front of 5, for the next with credit. */
    wr_qfifo_return_all(&f, 77, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qfifo_ready(&f), 3);
    CHECK_EQ(f.sm.ready_bytes, 9);
    CHECK_EQ(wr_qfifo_unacked(&f), 2);
    CHECK_EQ(f.sm.out, 2);
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 3), T0, &fx), 1);
    CHECK_EQ(fx_find(&fx, 1)->e.deliveries, 1);
    CHECK_STR(fxs(&fx), "gone:3 d:1:1");
    wr_qfifo_get(&f, 78, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "g:78:2");
    /* Nothing held: nothing happens. */
    wr_qfifo_return_all(&f, 77, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

/* Many holders in a table that grows, one of them returning everything:
 * the walk over the table must find each entry exactly once. */
static void test_qfifo_return_all_many(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    for (uint64_t cid = 1; cid <= 3; cid++)
        wr_qfifo_attach(&f, cid, 0, 0, 0, T0, &fx);
    for (uint32_t id = 1; id <= 3000; id++)
        enq(&f, id, 1, -1, T0, &fx);
    CHECK_EQ(fx.n, 3000);
    wr_qfx_reset(&fx);
    CHECK_EQ(wr_qfifo_unacked(&f), 3000);
    for (uint32_t id = 1; id <= 3000; id++) {
        const wr_qfifo_out_t *o = held_id(&f, id);
        CHECK(o != NULL);
        CHECK_EQ(o->cid, (id - 1) % 3 + 1);
        CHECK(wr_qfifo_held(&f, o->e.seq) == o);
    }
    wr_qfifo_detach(&f, 2, T0, &fx);
    wr_qfifo_return_all(&f, 2, T0, &fx);
    /* 2's 1000 come back in their order and go to 1 and 3 in turn. */
    CHECK_EQ(fx.n, 1000);
    for (size_t i = 0; i < fx.n; i++) {
        CHECK_EQ(fx.v[i].kind, WR_QFX_DELIVER);
        CHECK_EQ(id_of(&fx.v[i].e), 2 + 3 * i);
        CHECK_EQ(fx.v[i].to, i % 2 ? 3 : 1);
        CHECK_EQ(fx.v[i].e.deliveries, 1);
    }
    wr_qfx_reset(&fx);
    CHECK_EQ(n_out(&f, 1), 1500);
    CHECK_EQ(n_out(&f, 3), 1500);
    CHECK_EQ(wr_qfifo_unacked(&f), 3000);
    /* Settle everything, in a scrambled order. */
    uint64_t x = 12345;
    uint32_t left = 3000;
    for (uint32_t k = 0; k < 3000; k++) {
        uint32_t id = (uint32_t)((k * 1237u + (x % 7)) % 3000) + 1;
        const wr_qfifo_out_t *o = held_id(&f, id);
        CHECK(o != NULL);
        CHECK_EQ(wr_qfifo_settle(&f, o->cid, o->e.seq, T0, &fx), 1);
        left--;
        CHECK_EQ(wr_qfifo_unacked(&f), left);
    }
    CHECK_EQ(fx.n, 3000);
    CHECK_EQ(n_out(&f, 1), 0);
    CHECK_EQ(n_out(&f, 3), 0);
    CHECK_EQ(f.sm.out, 0);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_get(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    enq(&f, 1, 5, -1, T0, &fx);
    enq(&f, 2, 6, -1, T0, &fx);
    enq(&f, 3, 7, 10, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1010");
    wr_qfifo_get(&f, 7, 0, T0, &fx);
    CHECK_EQ(fx.n, 1);
    CHECK_EQ(fx.v[0].reason, 0);
    CHECK_EQ(fx.v[0].e.seq, 0);
    CHECK_EQ(fx.v[0].e.size, 5);
    CHECK_STR(fxs(&fx), "g:7:1");
    CHECK_EQ(holder_of(&f, 1), 7);
    CHECK_EQ(wr_qfifo_unacked(&f), 1);
    CHECK_EQ(f.sm.out, 1);
    wr_qfifo_get(&f, 8, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "gn:8:2");
    CHECK_EQ(wr_qfifo_unacked(&f), 1);
    CHECK_EQ(f.sm.out, 1);
    /* 3 expired on the way: empty. */
    wr_qfifo_get(&f, 9, 0, T0 + 10, &fx);
    CHECK_EQ(fx.v[fx.n - 1].reason, 1);
    CHECK_STR(fxs(&fx), "dead:expired:3 g:9:-");
    wr_qfifo_get(&f, 9, 1, T0 + 10, &fx);
    CHECK_STR(fxs(&fx), "g:9:-");
    CHECK_EQ(wr_qfifo_ready(&f), 0);
    /* The getter's entry is settled, returned or discarded like a
     * consumer's. */
    CHECK_EQ(wr_qfifo_return(&f, 7, seq_of(&f, 1), 1, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "");
    wr_qfifo_get(&f, 10, 0, T0, &fx);
    CHECK_EQ(fx.v[0].e.deliveries, 1);
    CHECK_STR(fxs(&fx), "g:10:1");
    CHECK_EQ(wr_qfifo_settle(&f, 7, seq_of(&f, 1), T0, &fx), 0);
    CHECK_EQ(wr_qfifo_discard(&f, 10, seq_of(&f, 1), T0, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:rejected:1");
    CHECK_EQ(wr_qfifo_unacked(&f), 0);
    CHECK_EQ(f.sm.out, 0);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_hold(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t a, b;
    wr_qfx_t fa, fb;
    wr_qfifo_init(&a, &lim, 0);
    wr_qfifo_init(&b, &lim, 0);
    wr_qfx_init(&fa);
    wr_qfx_init(&fb);
    wr_qfifo_attach(&a, 1, 2, 0, 0, T0, &fa);
    wr_qfifo_attach(&a, 2, 2, 0, 0, T0, &fa);
    for (uint32_t id = 1; id <= 7; id++)
        enq(&a, id, 4, -1, T0, &fa);
    wr_qfifo_get(&a, 50, 0, T0, &fa);
    CHECK_STR(fxs(&fa), "d:1:1 d:2:2 d:1:3 d:2:4 g:50:5");

    /* b rebuilt from a's snapshot: consumers first, then the entries. */
    snap_restore(&a, &b, &fb);
    CHECK_STR(fxs(&fb), "");
    CHECK_EQ(n_out(&b, 1), 2);
    CHECK_EQ(n_out(&b, 2), 2);
    CHECK_EQ(wr_qfifo_unacked(&b), 5);
    CHECK_EQ(b.sm.out, 5);
    CHECK_EQ(wr_qfifo_ready(&b), 2);
    CHECK_EQ(b.sm.ready_bytes, 8);
    CHECK_EQ(holder_of(&b, 5), 50);
    CHECK_EQ(holder_of(&b, 3), 1);

    /* Credit is where it was: both go on exactly alike. */
    CHECK_EQ(wr_qfifo_settle(&a, 1, seq_of(&a, 1), T0, &fa), 1);
    CHECK_EQ(wr_qfifo_settle(&b, 1, seq_of(&b, 1), T0, &fb), 1);
    CHECK_STR(fxs(&fa), "gone:1 d:1:6");
    CHECK_STR(fxs(&fb), "gone:1 d:1:6");
    enq(&a, 8, 4, -1, T0, &fa);
    enq(&b, 8, 4, -1, T0, &fb);
    CHECK_STR(fxs(&fa), "");
    CHECK_STR(fxs(&fb), "");
    CHECK_EQ(wr_qfifo_settle(&a, 2, seq_of(&a, 2), T0, &fa), 1);
    CHECK_EQ(wr_qfifo_settle(&b, 2, seq_of(&b, 2), T0, &fb), 1);
    CHECK_STR(fxs(&fa), "gone:2 d:2:7");
    CHECK_STR(fxs(&fb), "gone:2 d:2:7");
    wr_qfifo_return_all(&a, 50, T0, &fa);
    wr_qfifo_return_all(&b, 50, T0, &fb);
    CHECK_EQ(wr_qfifo_return(&a, 1, seq_of(&a, 3), 1, T0, &fa), 1);
    CHECK_EQ(wr_qfifo_return(&b, 1, seq_of(&b, 3), 1, T0, &fb), 1);
    CHECK_STR(fxs(&fa), "d:1:5");
    CHECK_STR(fxs(&fb), "d:1:5");
    /* The new seq of a requeue continues from the snapshot's. */
    wr_qfifo_attach(&a, 3, 0, 0, 0, T0, &fa);
    wr_qfifo_attach(&b, 3, 0, 0, 0, T0, &fb);
    CHECK_EQ(fx_find(&fa, 3)->e.seq, 8);
    CHECK_EQ(fx_find(&fb, 3)->e.seq, 8);
    CHECK_STR(fxs(&fa), "d:3:8 d:3:3");
    CHECK_STR(fxs(&fb), "d:3:8 d:3:3");

    /* An entry held by someone that is not a consumer (a getter, or a
     * consumer detached) counts as out but is nobody's credit. */
    wr_qent_t e = ent(99, 1);
    e.seq = 1000;
    wr_qfifo_hold(&b, 12345, &e);
    CHECK_EQ(holder_of(&b, 99), 12345);
    CHECK_EQ(n_out(&b, 3), 2);
    CHECK_EQ(wr_qfifo_unacked(&b), wr_qfifo_unacked(&a) + 1);
    CHECK_EQ(wr_qfifo_settle(&b, 12345, 1000, T0, &fb), 1);
    CHECK_STR(fxs(&fb), "gone:99");
    wr_qfifo_free(&a);
    wr_qfifo_free(&b);
    wr_qfx_free(&fa);
    wr_qfx_free(&fb);
}

/* Found by this suite (fixed): wr_qfifo_return_all walked the checkout
 * table in slot order, and that layout is the same only on members with
 * the same history (a restore fills it in another order), so a member
 * rebuilt from a snapshot emitted a return_all's DEAD delivery_limit
 * effects in another order than the others.  It now returns the held
 * entries in sequence order, as rabbit_fifo does. */
static void test_qfifo_return_all_order_after_restore(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.delivery_limit = 0;
    wr_qfifo_t a, b;
    wr_qfx_t fa, fb;
    wr_qfifo_init(&a, &lim, 0);
    wr_qfifo_init(&b, &lim, 0);
    wr_qfx_init(&fa);
    wr_qfx_init(&fb);
    wr_qfifo_attach(&a, 1, 0, 0, 0, T0, &fa);
    /* 40 out grow a's table to 128 slots; 8 of them stay out. */
    for (uint32_t id = 1; id <= 40; id++)
        enq(&a, id, 1, -1, T0, &fa);
    for (uint32_t id = 1; id <= 32; id++)
        CHECK_EQ(wr_qfifo_settle(&a, 1, seq_of(&a, id), T0, &fa), 1);
    wr_qfx_reset(&fa);
    snap_restore(&a, &b, &fb);
    CHECK_STR(fxs(&fb), "");
    CHECK_EQ(a.out_cap, 128);
    CHECK_EQ(b.out_cap, 64);
    wr_qfifo_return_all(&a, 1, T0, &fa);
    wr_qfifo_return_all(&b, 1, T0, &fb);
    char sa[512];
    snprintf(sa, sizeof sa, "%s", fxs(&fa));
    const char *sb = fxs(&fb);
    if (strcmp(sa, sb) != 0)
        printf("  return_all after a restore: %s\n             vs the others: %s\n", sb, sa);
    wr_qfifo_free(&a);
    wr_qfifo_free(&b);
    wr_qfx_free(&fa);
    wr_qfx_free(&fb);
    CHECK_STR(sa, sb);
}

static void test_qfifo_delivery_limit(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.delivery_limit = 2;
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 1, 0, 0, T0, &fx);
    enq(&f, 1, 1, -1, T0, &fx);
    enq(&f, 2, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:1");
    /* Two returns are allowed (either way back), the third is one too
     * many. */
    CHECK_EQ(wr_qfifo_return(&f, 1, seq_of(&f, 1), 0, T0, &fx), 1);
    CHECK_EQ(fx_find(&fx, 1)->e.deliveries, 1);
    CHECK_STR(fxs(&fx), "d:1:1");
    CHECK_EQ(wr_qfifo_return(&f, 1, seq_of(&f, 1), 1, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "d:1:2");
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 2), T0, &fx), 1);
    CHECK_EQ(fx_find(&fx, 1)->e.deliveries, 2);
    CHECK_STR(fxs(&fx), "gone:2 d:1:1");
    CHECK_EQ(wr_qfifo_return(&f, 1, seq_of(&f, 1), 0, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:delivery_limit:1");
    CHECK_EQ(wr_qfifo_unacked(&f), 0);
    CHECK_EQ(f.sm.out, 0);
    CHECK_EQ(n_out(&f, 1), 0);
    /* Through return_all (a channel that closes) too. */
    enq(&f, 3, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:3");
    wr_qfifo_return_all(&f, 1, T0, &fx);
    wr_qfifo_return_all(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "d:1:3 d:1:3");
    wr_qfifo_return_all(&f, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "dead:delivery_limit:3");
    CHECK_EQ(wr_qfifo_unacked(&f), 0);
    CHECK_EQ(f.sm.out, 0);
    /* Limit 0: no return at all. */
    lim.delivery_limit = 0;
    wr_qsm_set_limits(&f.sm, &lim);
    enq(&f, 4, 1, -1, T0, &fx);
    CHECK_EQ(wr_qfifo_return(&f, 1, seq_of(&f, 4), 1, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "d:1:4 dead:delivery_limit:4");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_ttl_zero(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    /* Nobody to take it: expired at once. */
    CHECK_EQ(enq(&f, 1, 1, 0, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_STR(fxs(&fx), "dead:expired:1");
    CHECK_EQ(f.sm.out, 0);
    wr_qfifo_attach(&f, 1, 1, 0, 0, T0, &fx);
    CHECK_EQ(enq(&f, 2, 1, 0, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_EQ(fx_find(&fx, 2)->e.expires_at, T0);
    CHECK_STR(fxs(&fx), "d:1:2");
    CHECK_EQ(n_out(&f, 1), 1);
    CHECK_EQ(wr_qfifo_unacked(&f), 1);
    CHECK_EQ(f.sm.out, 1);
    /* Out of credit. */
    enq(&f, 3, 1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:3");
    /* Credit, but others are waiting ahead of it. */
    wr_qfifo_detach(&f, 1, T0, &fx);
    enq(&f, 4, 1, -1, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    wr_qfifo_attach(&f, 2, 0, 0, 1, T0, &fx);
    CHECK_STR(fxs(&fx), "dn:2:4");
    enq(&f, 5, 1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "dn:2:5");
    CHECK_EQ(f.sm.out, 1);
    /* The queue's TTL of 0 does the same. */
    lim.message_ttl = 0;
    wr_qfifo_t g;
    wr_qfifo_init(&g, &lim, 0);
    CHECK_EQ(enq(&g, 6, 1, -1, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_STR(fxs(&fx), "dead:expired:6");
    wr_qfifo_attach(&g, 3, 0, 0, 0, T0, &fx);
    CHECK_EQ(enq(&g, 7, 1, 50, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_STR(fxs(&fx), "d:3:7");
    /* Returned, it is already due: it expires instead of going out. */
    CHECK_EQ(wr_qfifo_return(&g, 3, seq_of(&g, 7), 0, T0 + 5, &fx), 1);
    const char *s = fxs(&fx);
    CHECK(strstr(s, "dead:expired:7") != NULL);
    CHECK(strstr(s, "d:3:7") == NULL);
    CHECK_EQ(wr_qfifo_ready(&g), 0);
    CHECK_EQ(g.sm.out, 0);
    CHECK_EQ(n_out(&g, 3), 0);
    wr_qfifo_free(&g);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

static void test_qfifo_ttl_tick_purge(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 100;
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &lim, 0);
    wr_qfx_init(&fx);
    wr_qfifo_attach(&f, 1, 1, 0, 0, T0, &fx);
    enq(&f, 1, 1, -1, T0, &fx);
    enq(&f, 2, 1, -1, T0 + 10, &fx);
    enq(&f, 3, 1, 20, T0 + 20, &fx);
    enq(&f, 4, 1, -1, T0 + 30, &fx);
    CHECK_STR(fxs(&fx), "timer:1100 d:1:1 timer:1040");
    /* A held entry does not expire. */
    wr_qfifo_tick(&f, T0 + 40, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:3 timer:1110");
    wr_qfifo_tick(&f, T0 + 200, &fx);
    /* The timer fired: nothing left to arm. */
    CHECK_STR(fxs(&fx), "dead:expired:2 dead:expired:4");
    CHECK_EQ(wr_qfifo_ready(&f), 0);
    CHECK_EQ(holder_of(&f, 1), 1);
    enq(&f, 5, 1, -1, T0 + 200, &fx);
    enq(&f, 6, 1, -1, T0 + 200, &fx);
    CHECK_EQ(wr_qfifo_purge(&f, T0 + 200, &fx), 2);
    CHECK_STR(fxs(&fx), "timer:1300 gone:5 gone:6 timer:0");
    CHECK_EQ(wr_qfifo_unacked(&f), 1);
    CHECK_EQ(wr_qfifo_settle(&f, 1, seq_of(&f, 1), T0 + 300, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:1");
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
}

/* ---- the command generator of the randomised tests ---- */

static uint64_t rnd64(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
    return n ? (uint32_t)(rnd64(s) % n) : 0;
}

enum {
    OP_ENQ,
    OP_ATTACH,
    OP_REATTACH,
    OP_DETACH,
    OP_SETTLE,
    OP_RETURN,
    OP_DISCARD,
    OP_RETURN_ALL,
    OP_GET,
    OP_TICK,
    OP_PURGE,
    OP_BOGUS,
    OP_N
};
static const char *const op_names[] = {"enqueue", "attach", "re-attach", "detach",
                                       "settle",  "return", "discard",   "return-all",
                                       "get",     "tick",   "purge",     "bogus-settle"};
/* Weights, out of their sum. */
static const uint32_t op_weight[] = {34, 5, 2, 4, 18, 8, 4, 3, 6, 8, 1, 3};

#define GEN_MAX_CONS 6
#define GID_BIT      (1ull << 63)

typedef struct cmd {
    int op;
    int64_t now;
    uint64_t cid, seq; /* ATTACH..BOGUS, GET (gid) */
    uint32_t id, size; /* ENQ */
    int64_t ttl;       /* ENQ */
    uint8_t mprio;     /* ENQ */
    uint32_t prefetch; /* ATTACH */
    int32_t priority;  /* ATTACH */
    int flag;          /* ATTACH no-ack, RETURN to_back, GET no-ack, BOGUS kind */
} cmd_t;

typedef struct href {
    uint64_t holder, seq;
} href_t;

typedef struct gen {
    uint64_t rng;
    int64_t now;
    uint32_t next_id;
    uint64_t next_cid, next_gid;
    struct {
        uint64_t cid;
        uint32_t prefetch;
    } cons[GEN_MAX_CONS];
    size_t n_cons;
    href_t *held; /* what the effects said is held */
    size_t n_held, cap_held;
} gen_t;

static void gen_init(gen_t *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    g->now = T0;
    g->next_id = 1;
    g->next_cid = 1;
    g->next_gid = GID_BIT | 1;
}

static void gen_free(gen_t *g)
{
    free(g->held);
}

static void gen_add_held(gen_t *g, uint64_t holder, uint64_t seq)
{
    if (g->n_held == g->cap_held) {
        g->cap_held = g->cap_held ? g->cap_held * 2 : 64;
        g->held = realloc(g->held, g->cap_held * sizeof *g->held);
    }
    g->held[g->n_held++] = (href_t){holder, seq};
}

/* Learns from a command's effects what is held now. */
static void gen_seen(gen_t *g, const wr_qfx_t *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        const wr_qfx_item_t *it = &fx->v[i];
        if ((it->kind == WR_QFX_DELIVER || it->kind == WR_QFX_GET) && it->reason == 0)
            gen_add_held(g, it->to, it->e.seq);
    }
}

static void gen_take_held(gen_t *g, size_t i)
{
    g->held[i] = g->held[--g->n_held];
}

/* The next command; cfg_prio: the queue is a priority queue. */
static void gen_next(gen_t *g, cmd_t *c, int cfg_prio)
{
    memset(c, 0, sizeof *c);
    g->now += rnd(&g->rng, 8);
    c->now = g->now;
    uint32_t total = 0;
    for (int k = 0; k < OP_N; k++)
        total += op_weight[k];
    uint32_t w = rnd(&g->rng, total);
    int op = 0;
    while (w >= op_weight[op])
        w -= op_weight[op++];
    /* Not possible now: an enqueue instead. */
    if ((op == OP_ATTACH && g->n_cons == GEN_MAX_CONS) ||
        ((op == OP_REATTACH || op == OP_DETACH) && g->n_cons == 0) ||
        ((op == OP_SETTLE || op == OP_RETURN || op == OP_DISCARD || op == OP_RETURN_ALL ||
          op == OP_BOGUS) &&
         g->n_held == 0))
        op = OP_ENQ;
    c->op = op;
    switch (op) {
    case OP_ENQ: {
        c->id = g->next_id++;
        c->size = 1 + rnd(&g->rng, 100);
        uint32_t t = rnd(&g->rng, 10);
        c->ttl = t < 7 ? -1 : t == 7 ? 0 : 1 + (int64_t)rnd(&g->rng, 60);
        c->mprio = cfg_prio ? (uint8_t)rnd(&g->rng, 8) : 0;
        break;
    }
    case OP_ATTACH: {
        static const uint32_t pfs[] = {0, 1, 1, 2, 3, 5};
        c->cid = g->next_cid++;
        c->prefetch = pfs[rnd(&g->rng, 6)];
        c->priority = (int32_t)rnd(&g->rng, 3) - (rnd(&g->rng, 8) == 0);
        c->flag = rnd(&g->rng, 7) == 0;
        g->cons[g->n_cons].cid = c->cid;
        g->cons[g->n_cons].prefetch = c->prefetch;
        g->n_cons++;
        break;
    }
    case OP_REATTACH: {
        /* Priority and no-ack may change; prefetch only grows (a lower
         * one would leave a consumer holding more than it, legitimately). */
        size_t i = rnd(&g->rng, (uint32_t)g->n_cons);
        c->cid = g->cons[i].cid;
        c->prefetch = g->cons[i].prefetch ? g->cons[i].prefetch + rnd(&g->rng, 3) : 0;
        g->cons[i].prefetch = c->prefetch;
        c->priority = (int32_t)rnd(&g->rng, 3);
        c->flag = rnd(&g->rng, 7) == 0;
        break;
    }
    case OP_DETACH: {
        size_t i = rnd(&g->rng, (uint32_t)g->n_cons);
        c->cid = g->cons[i].cid;
        g->cons[i] = g->cons[--g->n_cons];
        break;
    }
    case OP_SETTLE:
    case OP_RETURN:
    case OP_DISCARD: {
        size_t i = rnd(&g->rng, (uint32_t)g->n_held);
        c->cid = g->held[i].holder;
        c->seq = g->held[i].seq;
        c->flag = (int)rnd(&g->rng, 2);
        gen_take_held(g, i);
        break;
    }
    case OP_RETURN_ALL: {
        c->cid = g->held[rnd(&g->rng, (uint32_t)g->n_held)].holder;
        for (size_t i = 0; i < g->n_held;)
            if (g->held[i].holder == c->cid)
                gen_take_held(g, i);
            else
                i++;
        break;
    }
    case OP_GET:
        c->cid = g->next_gid++;
        c->flag = rnd(&g->rng, 3) == 0;
        break;
    case OP_BOGUS: {
        /* A settle, return or discard that must be ignored: the wrong
         * holder, or a seq nobody holds. */
        size_t i = rnd(&g->rng, (uint32_t)g->n_held);
        c->flag = (int)rnd(&g->rng, 3);
        if (rnd(&g->rng, 2)) {
            c->cid = g->held[i].holder ^ 0x40;
            c->seq = g->held[i].seq;
        } else {
            c->cid = g->held[i].holder;
            c->seq = g->held[i].seq + (1ull << 40);
        }
        break;
    }
    default:
        break;
    }
}

/* Applies c to f; the result of settle, return and discard, else 0. */
static int apply(wr_qfifo_t *f, const cmd_t *c, wr_qfx_t *fx)
{
    switch (c->op) {
    case OP_ENQ: {
        wr_qent_t e = ent(c->id, c->size);
        wr_qfifo_enqueue(f, &e, c->ttl, c->mprio, c->now, fx);
        return 0;
    }
    case OP_ATTACH:
    case OP_REATTACH:
        wr_qfifo_attach(f, c->cid, c->prefetch, c->priority, c->flag, c->now, fx);
        return 0;
    case OP_DETACH:
        wr_qfifo_detach(f, c->cid, c->now, fx);
        return 0;
    case OP_SETTLE:
        return wr_qfifo_settle(f, c->cid, c->seq, c->now, fx);
    case OP_RETURN:
        return wr_qfifo_return(f, c->cid, c->seq, c->flag, c->now, fx);
    case OP_DISCARD:
        return wr_qfifo_discard(f, c->cid, c->seq, c->now, fx);
    case OP_RETURN_ALL:
        wr_qfifo_return_all(f, c->cid, c->now, fx);
        return 0;
    case OP_GET:
        wr_qfifo_get(f, c->cid, c->flag, c->now, fx);
        return 0;
    case OP_TICK:
        wr_qfifo_tick(f, c->now, fx);
        return 0;
    case OP_PURGE:
        wr_qfifo_purge(f, c->now, fx);
        return 0;
    case OP_BOGUS:
        if (c->flag == 0)
            return wr_qfifo_settle(f, c->cid, c->seq, c->now, fx);
        if (c->flag == 1)
            return wr_qfifo_return(f, c->cid, c->seq, 1, c->now, fx);
        return wr_qfifo_discard(f, c->cid, c->seq, c->now, fx);
    }
    return 0;
}

typedef struct qcfg {
    const char *name;
    wr_qsm_limits_t lim;
    int sac;
} qcfg_t;

static const qcfg_t qcfgs[] = {
    {"plain", {-1, -1, -1, -1, WR_OVERFLOW_DROP_HEAD, 0}, 0},
    {"ttl+limit", {40, -1, -1, 2, WR_OVERFLOW_DROP_HEAD, 0}, 0},
    {"maxlen", {-1, 8, 400, 0, WR_OVERFLOW_DROP_HEAD, 0}, 0},
    {"sac", {60, 20, -1, 3, WR_OVERFLOW_DROP_HEAD, 0}, 1},
    {"priority", {-1, -1, -1, 3, WR_OVERFLOW_DROP_HEAD, 5}, 0},
    {"priority+ttl+sac", {30, 12, -1, 1, WR_OVERFLOW_DROP_HEAD, 3}, 1},
};
#define N_QCFGS (sizeof qcfgs / sizeof qcfgs[0])

static const uint64_t seeds[] = {1, 2, 3, 20240607, 0xDEADBEEF};
#define N_SEEDS (sizeof seeds / sizeof seeds[0])

/* ---- determinism: replicas ---- */

typedef struct drun {
    const qcfg_t *cfg;
    uint64_t seed;
    int step;
    const char *op;
} drun_t;

static void dmismatch(const drun_t *r, int line, const char *what, long long a, long long b)
{
    printf("  qfifo determinism [%s] seed %" PRIu64 " step %d (%s), line %d: %s (%lld vs %lld)\n",
           r->cfg->name, r->seed, r->step, r->op, line, what, a, b);
}

#define DCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dmismatch(r, __LINE__, #cond, 0, 0);                                                   \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)
#define DCHECK_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            dmismatch(r, __LINE__, #a " == " #b, a_, b_);                                          \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)

static int same_ent(const wr_qent_t *a, const wr_qent_t *b)
{
    return a->msg == b->msg && a->seq == b->seq && a->expires_at == b->expires_at &&
           a->loc.seg == b->loc.seg && a->loc.off == b->loc.off && a->deliveries == b->deliveries &&
           a->size == b->size;
}

/* Compares what matters of an item of each kind (the rest is not set). */
static int same_item(const wr_qfx_item_t *a, const wr_qfx_item_t *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case WR_QFX_TIMER:
        return a->at == b->at;
    case WR_QFX_GONE:
        return same_ent(&a->e, &b->e);
    case WR_QFX_DEAD:
        return a->reason == b->reason && same_ent(&a->e, &b->e);
    default: /* DELIVER, GET */
        return a->reason == b->reason && a->to == b->to && same_ent(&a->e, &b->e);
    }
}

static int same_fx(const drun_t *r, const wr_qfx_t *a, const wr_qfx_t *b, int skip_timers)
{
    size_t i = 0, j = 0;
    for (;;) {
        if (skip_timers) {
            while (i < a->n && a->v[i].kind == WR_QFX_TIMER)
                i++;
            while (j < b->n && b->v[j].kind == WR_QFX_TIMER)
                j++;
        }
        if (i == a->n || j == b->n)
            break;
        if (!same_item(&a->v[i], &b->v[j])) {
            dmismatch(r, __LINE__, "effect differs (kind, id)",
                      a->v[i].kind * 1000000ll + a->v[i].e.loc.off,
                      b->v[j].kind * 1000000ll + b->v[j].e.loc.off);
            return 0;
        }
        i++;
        j++;
    }
    DCHECK_EQ(a->n - i, 0);
    DCHECK_EQ(b->n - j, 0);
    return 1;
}

/* The observable state of two replicas; same_layout: b went through the
 * same commands (not a snapshot), so even its table is laid out alike. */
static int same_state(const drun_t *r, const wr_qfifo_t *a, const wr_qfifo_t *b, int same_layout)
{
    DCHECK_EQ(wr_qfifo_ready(a), wr_qfifo_ready(b));
    DCHECK_EQ(a->sm.ready_bytes, b->sm.ready_bytes);
    DCHECK_EQ(a->sm.out, b->sm.out);
    DCHECK_EQ(a->sm.out, a->out_count);
    DCHECK_EQ(a->sm.next_seq, b->sm.next_seq);
    DCHECK_EQ(wr_qfifo_unacked(a), wr_qfifo_unacked(b));
    DCHECK_EQ(a->n_cons, b->n_cons);
    DCHECK_EQ(a->rr, b->rr);
    for (size_t i = 0; i < a->n_cons; i++) {
        DCHECK_EQ(a->cons[i].cid, b->cons[i].cid);
        DCHECK_EQ(a->cons[i].prefetch, b->cons[i].prefetch);
        DCHECK_EQ(a->cons[i].priority, b->cons[i].priority);
        DCHECK_EQ(a->cons[i].no_ack, b->cons[i].no_ack);
        DCHECK_EQ(a->cons[i].n_out, b->cons[i].n_out);
    }
    if (same_layout) {
        DCHECK_EQ(a->out_cap, b->out_cap);
        for (size_t s = 0; s < a->out_cap; s++) {
            DCHECK_EQ(a->used[s], b->used[s]);
            if (a->used[s]) {
                DCHECK_EQ(a->out[s].cid, b->out[s].cid);
                DCHECK(same_ent(&a->out[s].e, &b->out[s].e));
            }
        }
    }
    size_t n = 0;
    for (size_t s = 0; s < a->out_cap; s++) {
        if (!a->used[s])
            continue;
        n++;
        const wr_qfifo_out_t *o = wr_qfifo_held(b, a->out[s].e.seq);
        DCHECK(o != NULL);
        DCHECK_EQ(o->cid, a->out[s].cid);
        DCHECK(same_ent(&o->e, &a->out[s].e));
    }
    DCHECK_EQ(n, a->out_count);
    return 1;
}

static int det_run(const qcfg_t *cfg, uint64_t seed, int steps)
{
    drun_t rr = {cfg, seed, 0, "init"}, *r = &rr;
    wr_qfifo_t a, b, c;
    wr_qfx_t fa, fb, fc;
    wr_qfifo_init(&a, &cfg->lim, cfg->sac);
    wr_qfifo_init(&b, &cfg->lim, cfg->sac);
    wr_qfifo_init(&c, &cfg->lim, cfg->sac);
    wr_qfx_init(&fa);
    wr_qfx_init(&fb);
    wr_qfx_init(&fc);
    gen_t g;
    gen_init(&g, seed);
    int ok = 1;
    for (int step = 0; step < steps && ok; step++) {
        cmd_t cmd;
        gen_next(&g, &cmd, cfg->lim.max_priority != 0);
        r->step = step;
        r->op = op_names[cmd.op];
        if (step % 397 == 0) {
            /* c joins from a snapshot of a (a new or lagging member). */
            snap_restore(&a, &c, &fc);
            wr_qfx_reset(&fc);
            ok = same_state(r, &a, &c, 0);
            if (!ok)
                break;
        }
        int ra = apply(&a, &cmd, &fa);
        int rb = apply(&b, &cmd, &fb);
        int rc = apply(&c, &cmd, &fc);
        if (ra != rb || ra != rc) {
            dmismatch(r, __LINE__, "results differ", ra, rb * 10 + rc);
            ok = 0;
        } else if (cmd.op == OP_BOGUS && ra != 0) {
            dmismatch(r, __LINE__, "a bogus settle was taken", ra, 0);
            ok = 0;
        } else {
            /* A replica restored from a snapshot emits the same effects
             * in the same order (return_all returns in seq order). */
            ok = same_fx(r, &fa, &fb, 0) && same_state(r, &a, &b, 1) && same_fx(r, &fa, &fc, 1) &&
                 same_state(r, &a, &c, 0);
        }
        gen_seen(&g, &fa);
        wr_qfx_reset(&fa);
        wr_qfx_reset(&fb);
        wr_qfx_reset(&fc);
    }
    gen_free(&g);
    wr_qfifo_free(&a);
    wr_qfifo_free(&b);
    wr_qfifo_free(&c);
    wr_qfx_free(&fa);
    wr_qfx_free(&fb);
    wr_qfx_free(&fc);
    return ok;
}

static void test_qfifo_determinism(void)
{
    for (size_t k = 0; k < N_QCFGS; k++)
        for (size_t s = 0; s < N_SEEDS; s++)
            CHECK(det_run(&qcfgs[k], seeds[s], 3000));
}

/* ---- the model ---- */

enum { M_NONE, M_READY, M_HELD, M_LEFT, M_IMM, M_WANT_GONE, M_WANT_DEAD };

typedef struct ment {
    uint8_t st;
    uint8_t want_reason; /* M_WANT_DEAD */
    uint64_t holder;     /* M_HELD */
    uint64_t seq;        /* the key qfifo gives it (priority in it) */
    int64_t exp;
    uint32_t deliveries, size;
} ment_t;

typedef struct mcons {
    uint64_t cid;
    uint32_t prefetch;
    int32_t priority;
    uint8_t no_ack;
    uint64_t ord; /* attach order */
} mcons_t;

typedef struct mrun {
    const qcfg_t *cfg;
    uint64_t seed;
    int step;
    const char *op;
    const cmd_t *cmd;
    const wr_qfifo_t *f;
    /* The model. */
    mcons_t cons[GEN_MAX_CONS];
    size_t n_cons;
    uint64_t next_ord, serve_from; /* round-robin: the first ord to try */
    uint64_t next_seq;
    ment_t *ents; /* by id */
    uint32_t n_ids, lo;
    size_t cap_ents;
} mrun_t;

static uint32_t m_held_by(const mrun_t *r, uint64_t cid);

static void mmismatch(const mrun_t *r, int line, const char *what, long long a, long long b)
{
    printf("  qfifo model [%s] seed %" PRIu64 " step %d (%s), line %d: %s (%lld vs %lld)\n",
           r->cfg->name, r->seed, r->step, r->op, line, what, a, b);
    printf("    model consumers (round-robin from ord %" PRIu64 "):", r->serve_from);
    for (size_t i = 0; i < r->n_cons; i++)
        printf(" [cid %" PRIu64 " ord %" PRIu64 " prio %d prefetch %u held %u%s]", r->cons[i].cid,
               r->cons[i].ord, r->cons[i].priority, r->cons[i].prefetch,
               m_held_by(r, r->cons[i].cid), r->cons[i].no_ack ? " no-ack" : "");
    printf("\n    qfifo consumers (rr %zu):", r->f->rr);
    for (size_t i = 0; i < r->f->n_cons; i++)
        printf(" [cid %" PRIu64 " prio %d prefetch %u n_out %u]", r->f->cons[i].cid,
               r->f->cons[i].priority, r->f->cons[i].prefetch, r->f->cons[i].n_out);
    printf("\n");
}

#define MCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            mmismatch(r, __LINE__, #cond, 0, 0);                                                   \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)
#define MCHECK_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            mmismatch(r, __LINE__, #a " == " #b, a_, b_);                                          \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)

static ment_t *m_ent(mrun_t *r, uint32_t id)
{
    return id < r->n_ids ? &r->ents[id] : NULL;
}

/* Entries that have not left all have ids >= lo. */
static void m_advance_lo(mrun_t *r)
{
    while (r->lo < r->n_ids && (r->ents[r->lo].st == M_LEFT || r->ents[r->lo].st == M_NONE))
        r->lo++;
}

static uint32_t m_held_by(const mrun_t *r, uint64_t cid)
{
    uint32_t n = 0;
    for (uint32_t id = r->lo; id < r->n_ids; id++)
        if (r->ents[id].st == M_HELD && r->ents[id].holder == cid)
            n++;
    return n;
}

static size_t m_ready(const mrun_t *r, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t b = 0;
    for (uint32_t id = r->lo; id < r->n_ids; id++)
        if (r->ents[id].st == M_READY) {
            n++;
            b += r->ents[id].size;
        }
    if (bytes)
        *bytes = b;
    return n;
}

/* The next ready entry in queue order (smallest key), 0 if none. */
static uint32_t m_head(const mrun_t *r)
{
    uint32_t best = 0;
    for (uint32_t id = r->lo; id < r->n_ids; id++)
        if (r->ents[id].st == M_READY && (best == 0 || r->ents[id].seq < r->ents[best].seq))
            best = id;
    return best;
}

static int m_credit(const mrun_t *r, const mcons_t *c)
{
    return c->prefetch == 0 || m_held_by(r, c->cid) < c->prefetch;
}

/* The consumer to serve, from qfifo.h's rules: with single active
 * consumer the first attached, if it has credit; else among those with
 * credit the highest priority, the first in attach order at or after the
 * round-robin point, wrapping around.  Its index, or -1.
 *
 * The round-robin point is the consumer after the one served last; when
 * there is none (the last in attach order was served, or the ones after
 * it left) the next round starts at the first at once, so a consumer
 * attached after that waits for its turn at the end of that round (as
 * rabbit_fifo puts a new consumer at the back of its service queue). */
static int m_pick(const mrun_t *r)
{
    if (r->n_cons == 0)
        return -1;
    if (r->cfg->sac)
        return m_credit(r, &r->cons[0]) ? 0 : -1;
    int32_t top = INT32_MIN;
    int any = 0;
    for (size_t i = 0; i < r->n_cons; i++)
        if (m_credit(r, &r->cons[i]) && (!any || r->cons[i].priority > top)) {
            top = r->cons[i].priority;
            any = 1;
        }
    if (!any)
        return -1;
    int first = -1;
    for (size_t i = 0; i < r->n_cons; i++) {
        if (r->cons[i].priority != top || !m_credit(r, &r->cons[i]))
            continue;
        if (r->cons[i].ord >= r->serve_from)
            return (int)i;
        if (first < 0)
            first = (int)i;
    }
    return first;
}

static int m_cons_index(const mrun_t *r, uint64_t cid)
{
    for (size_t i = 0; i < r->n_cons; i++)
        if (r->cons[i].cid == cid)
            return (int)i;
    return -1;
}

/* An entry that qfifo reports must be the one the model knows. */
static int m_same(const mrun_t *r, const wr_qent_t *e, const ment_t *m)
{
    MCHECK(payload_ok(e));
    MCHECK_EQ(e->seq, m->seq);
    MCHECK_EQ(e->deliveries, m->deliveries);
    MCHECK_EQ(e->size, m->size);
    MCHECK_EQ(e->expires_at, m->exp);
    return 1;
}

static uint64_t m_key(const mrun_t *r, uint8_t prio, uint64_t seq)
{
    uint8_t maxp = r->cfg->lim.max_priority;
    if (!maxp)
        return seq;
    uint8_t p = prio < maxp ? prio : maxp;
    return (uint64_t)(255 - p) << 56 | (seq & ((1ull << 56) - 1));
}

/* One effect of the command being applied. */
static int m_effect(mrun_t *r, const wr_qfx_item_t *it)
{
    const cmd_t *c = r->cmd;
    int64_t now = c->now;
    if (it->kind == WR_QFX_TIMER)
        return 1;
    if (it->kind == WR_QFX_GET && it->reason == 1) {
        MCHECK(c->op == OP_GET);
        MCHECK_EQ(it->to, c->cid);
        MCHECK(it->e.msg == NULL && it->e.seq == 0 && it->e.size == 0);
        MCHECK_EQ(m_ready(r, NULL), 0);
        return 1;
    }
    MCHECK(payload_ok(&it->e));
    uint32_t id = id_of(&it->e);
    ment_t *m = m_ent(r, id);
    MCHECK(m != NULL);
    switch (it->kind) {
    case WR_QFX_DELIVER: {
        int i = m_pick(r);
        MCHECK(i >= 0);
        MCHECK_EQ(it->to, r->cons[i].cid);
        MCHECK_EQ(it->reason, r->cons[i].no_ack);
        if (m->st == M_IMM) {
            /* TTL 0: only when nothing is ready ahead of it. */
            MCHECK(c->op == OP_ENQ && c->id == id);
            MCHECK_EQ(m_ready(r, NULL), 0);
        } else {
            MCHECK_EQ(m->st, M_READY);
            MCHECK_EQ(m_head(r), id);
            MCHECK(m->exp == 0 || m->exp > now);
        }
        if (!m_same(r, &it->e, m))
            return 0;
        m->st = r->cons[i].no_ack ? M_LEFT : M_HELD;
        m->holder = r->cons[i].cid;
        r->serve_from = (size_t)i + 1 < r->n_cons ? r->cons[i + 1].ord : 0;
        return 1;
    }
    case WR_QFX_GET:
        MCHECK(c->op == OP_GET);
        MCHECK_EQ(it->to, c->cid);
        MCHECK_EQ(it->reason, c->flag ? 2 : 0);
        MCHECK_EQ(m->st, M_READY);
        MCHECK_EQ(m_head(r), id);
        MCHECK(m->exp == 0 || m->exp > now);
        if (!m_same(r, &it->e, m))
            return 0;
        m->st = c->flag ? M_LEFT : M_HELD;
        m->holder = c->cid;
        return 1;
    case WR_QFX_GONE:
        if (m->st == M_WANT_GONE) {
            MCHECK(c->op == OP_SETTLE);
        } else {
            /* Purged. */
            MCHECK(c->op == OP_PURGE);
            MCHECK_EQ(m->st, M_READY);
        }
        if (!m_same(r, &it->e, m))
            return 0;
        m->st = M_LEFT;
        return 1;
    case WR_QFX_DEAD:
        if (m->st == M_WANT_DEAD) {
            MCHECK_EQ(it->reason, m->want_reason);
        } else if (it->reason == WR_QR_EXPIRED) {
            if (m->st == M_IMM) {
                MCHECK(c->op == OP_ENQ && c->id == id);
            } else {
                MCHECK_EQ(m->st, M_READY);
                MCHECK(m->exp != 0 && m->exp <= now);
            }
        } else if (it->reason == WR_QR_MAXLEN) {
            /* Dropped from the head by an enqueue over a limit. */
            MCHECK(c->op == OP_ENQ);
            MCHECK_EQ(m->st, M_READY);
            MCHECK_EQ(m_head(r), id);
        } else {
            MCHECK(!"unexpected dead-lettering");
        }
        if (!m_same(r, &it->e, m))
            return 0;
        m->st = M_LEFT;
        return 1;
    }
    MCHECK(!"unknown effect kind");
    return 0;
}

/* The model's part of a command before its effects: what it does to the
 * entries it names. */
static int m_before(mrun_t *r, int *want_res)
{
    const cmd_t *c = r->cmd;
    const wr_qsm_limits_t *lim = &r->cfg->lim;
    *want_res = 0;
    switch (c->op) {
    case OP_ENQ: {
        if (c->id >= r->cap_ents) {
            r->cap_ents = r->cap_ents ? r->cap_ents * 2 : 1024;
            r->ents = realloc(r->ents, r->cap_ents * sizeof *r->ents);
        }
        MCHECK_EQ(c->id, r->n_ids);
        ment_t *m = &r->ents[r->n_ids++];
        memset(m, 0, sizeof *m);
        m->size = c->size;
        m->seq = m_key(r, c->mprio, r->next_seq++);
        int64_t ttl = lim->message_ttl;
        if (c->ttl >= 0 && (ttl < 0 || c->ttl < ttl))
            ttl = c->ttl;
        if (ttl == 0) {
            m->st = M_IMM;
            m->exp = c->now > 0 ? c->now : 1;
        } else {
            m->st = M_READY;
            m->exp = ttl > 0 ? c->now + ttl : 0;
        }
        return 1;
    }
    case OP_ATTACH:
    case OP_REATTACH: {
        int i = m_cons_index(r, c->cid);
        if (i < 0) {
            MCHECK(r->n_cons < GEN_MAX_CONS);
            i = (int)r->n_cons++;
            r->cons[i].cid = c->cid;
            r->cons[i].ord = ++r->next_ord;
        }
        r->cons[i].prefetch = c->prefetch;
        r->cons[i].priority = c->priority;
        r->cons[i].no_ack = (uint8_t)(c->flag != 0);
        return 1;
    }
    case OP_DETACH: {
        int i = m_cons_index(r, c->cid);
        if (i >= 0) {
            memmove(&r->cons[i], &r->cons[i + 1], (r->n_cons - (size_t)i - 1) * sizeof r->cons[0]);
            r->n_cons--;
        }
        /* Nobody left after the round-robin point: the next round starts
         * (as after serving the last one, see m_pick). */
        if (r->n_cons == 0 || r->cons[r->n_cons - 1].ord < r->serve_from)
            r->serve_from = 0;
        return 1;
    }
    case OP_SETTLE:
    case OP_RETURN:
    case OP_DISCARD:
    case OP_BOGUS:
    case OP_RETURN_ALL:
        for (uint32_t id = r->lo; id < r->n_ids; id++) {
            ment_t *m = &r->ents[id];
            if (m->st != M_HELD || m->holder != c->cid)
                continue;
            if (c->op != OP_RETURN_ALL && m->seq != c->seq)
                continue;
            *want_res = 1;
            int op = c->op;
            if (op == OP_BOGUS)
                op = c->flag == 0 ? OP_SETTLE : c->flag == 1 ? OP_RETURN : OP_DISCARD;
            if (op == OP_SETTLE) {
                m->st = M_WANT_GONE;
            } else if (op == OP_DISCARD) {
                m->st = M_WANT_DEAD;
                m->want_reason = WR_QR_REJECTED;
            } else {
                int to_back = c->op == OP_RETURN_ALL ? 0 : c->op == OP_BOGUS ? 1 : c->flag;
                m->deliveries++;
                if (lim->delivery_limit >= 0 && m->deliveries > lim->delivery_limit) {
                    m->st = M_WANT_DEAD;
                    m->want_reason = WR_QR_DELIVERY_LIMIT;
                } else {
                    m->st = M_READY;
                    if (to_back && !lim->max_priority)
                        m->seq = r->next_seq++;
                }
            }
        }
        return 1;
    default:
        return 1;
    }
}

/* After a command and its effects: the model and qfifo agree. */
static int m_after(mrun_t *r, const wr_qfifo_t *f, int res, int want_res)
{
    const cmd_t *c = r->cmd;
    const wr_qsm_limits_t *lim = &r->cfg->lim;
    if (c->op == OP_SETTLE || c->op == OP_RETURN || c->op == OP_DISCARD || c->op == OP_BOGUS)
        MCHECK_EQ(res, want_res);
    m_advance_lo(r);
    /* Conservation: every entry is ready, held or left, nothing in
     * between (every expected effect came). */
    size_t n_held = 0;
    for (uint32_t id = r->lo; id < r->n_ids; id++) {
        ment_t *m = &r->ents[id];
        if (m->st == M_IMM || m->st == M_WANT_GONE || m->st == M_WANT_DEAD) {
            mmismatch(r, __LINE__, "an expected effect did not come (id, state)", id, m->st);
            return 0;
        }
        if (m->st == M_HELD) {
            n_held++;
            const wr_qfifo_out_t *o = wr_qfifo_held(f, m->seq);
            MCHECK(o != NULL);
            MCHECK_EQ(o->cid, m->holder);
            MCHECK_EQ(id_of(&o->e), id);
            if (!m_same(r, &o->e, m))
                return 0;
        }
        if (m->st == M_READY && c->op == OP_TICK)
            MCHECK(m->exp == 0 || m->exp > c->now);
    }
    MCHECK_EQ(wr_qfifo_unacked(f), n_held);
    MCHECK_EQ(f->sm.out, n_held);
    uint64_t bytes;
    size_t ready = m_ready(r, &bytes);
    MCHECK_EQ(wr_qfifo_ready(f), ready);
    MCHECK_EQ(f->sm.ready_bytes, bytes);
    if (c->op == OP_ENQ && lim->overflow == WR_OVERFLOW_DROP_HEAD) {
        MCHECK(lim->max_length < 0 || (int64_t)ready <= lim->max_length);
        MCHECK(lim->max_length_bytes < 0 || (int64_t)bytes <= lim->max_length_bytes);
    }
    /* Consumers, and credit. */
    MCHECK_EQ(f->n_cons, r->n_cons);
    for (size_t i = 0; i < r->n_cons; i++) {
        const wr_qfifo_consumer_t *q = &f->cons[i];
        MCHECK_EQ(q->cid, r->cons[i].cid);
        MCHECK_EQ(q->prefetch, r->cons[i].prefetch);
        MCHECK_EQ(q->priority, r->cons[i].priority);
        MCHECK_EQ(q->no_ack, r->cons[i].no_ack);
        MCHECK_EQ(q->n_out, m_held_by(r, q->cid));
        if (q->prefetch && q->n_out > q->prefetch) {
            mmismatch(r, __LINE__, "a consumer holds more than its prefetch", q->n_out,
                      q->prefetch);
            return 0;
        }
    }
    /* Nothing waits while someone could take it. */
    if (ready > 0 && m_pick(r) >= 0) {
        mmismatch(r, __LINE__, "ready entries and a consumer with credit", (long long)ready,
                  (long long)r->cons[m_pick(r)].cid);
        return 0;
    }
    return 1;
}

static int model_run(const qcfg_t *cfg, uint64_t seed, int steps)
{
    mrun_t rr, *r = &rr;
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->seed = seed;
    r->op = "init";
    r->n_ids = 1; /* ids start at 1 */
    r->lo = 1;
    r->cap_ents = 1024;
    r->ents = calloc(r->cap_ents, sizeof *r->ents);
    wr_qfifo_t f;
    wr_qfx_t fx;
    wr_qfifo_init(&f, &cfg->lim, cfg->sac);
    wr_qfx_init(&fx);
    r->f = &f;
    gen_t g;
    gen_init(&g, seed ^ 0x5555);
    int ok = 1;
    size_t delivers = 0;
    for (int step = 0; step < steps && ok; step++) {
        cmd_t cmd;
        gen_next(&g, &cmd, cfg->lim.max_priority != 0);
        r->step = step;
        r->op = op_names[cmd.op];
        r->cmd = &cmd;
        int want_res;
        ok = m_before(r, &want_res);
        if (!ok)
            break;
        int res = apply(&f, &cmd, &fx);
        for (size_t i = 0; i < fx.n && ok; i++) {
            ok = m_effect(r, &fx.v[i]);
            delivers += fx.v[i].kind == WR_QFX_DELIVER;
        }
        ok = ok && m_after(r, &f, res, want_res);
        gen_seen(&g, &fx);
        wr_qfx_reset(&fx);
    }
    /* The test must have exercised dispatch. */
    if (ok && delivers < (size_t)steps / 10) {
        mmismatch(r, __LINE__, "too few deliveries", (long long)delivers, steps / 10);
        ok = 0;
    }
    gen_free(&g);
    free(r->ents);
    wr_qfifo_free(&f);
    wr_qfx_free(&fx);
    return ok;
}

static void test_qfifo_model(void)
{
    for (size_t k = 0; k < N_QCFGS; k++)
        for (size_t s = 0; s < N_SEEDS; s++)
            CHECK(model_run(&qcfgs[k], seeds[s], 3000));
}

WR_SUITE(qfifo)
{
    RUN(test_qfifo_attach_detach);
    RUN(test_qfifo_round_robin);
    RUN(test_qfifo_priority);
    RUN(test_qfifo_prefetch_settle);
    RUN(test_qfifo_no_ack);
    RUN(test_qfifo_single_active);
    RUN(test_qfifo_settle_unknown);
    RUN(test_qfifo_return_position);
    RUN(test_qfifo_return_all);
    RUN(test_qfifo_return_all_many);
    RUN(test_qfifo_get);
    RUN(test_qfifo_hold);
    RUN(test_qfifo_return_all_order_after_restore);
    RUN(test_qfifo_delivery_limit);
    RUN(test_qfifo_ttl_zero);
    RUN(test_qfifo_ttl_tick_purge);
    RUN(test_qfifo_determinism);
    RUN(test_qfifo_model);
}
