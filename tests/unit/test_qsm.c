/*
 * test_qsm.c - the queue state machine (broker/qsm.h).
 *
 * First, focused tests: one rule or command each, with the whole effect
 * list compared as text.  Then a model-based test: a deliberately naive
 * reference model (an unsorted array scanned linearly, each rule written
 * again from qsm.h's documented semantics) and the real state machine are
 * driven with the same random commands, and their state, effects and
 * delivery order are compared after every step.
 *
 * Entries carry fake msg pointers (MSG(id): small, never-mapped
 * addresses): qsm must never look inside its payload, and any test here
 * would crash if it did.  loc.off holds the entry's id, so that every
 * entry that comes out of qsm (checkout, effects, foreach) says which one
 * it is.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/qsm.h"
#include "test.h"

#define MSG(id)  ((wr_msg_t *)(uintptr_t)((uintptr_t)(id)*16))
#define LOC_SEG  7
#define T0       1000 /* the focused tests' clock starts here (0 would mean "no deadline") */
#define SEQ_MASK ((1ull << 56) - 1)

static wr_qent_t ent(uint32_t id, uint32_t size)
{
    wr_qent_t e = {MSG(id), 0, 0, {LOC_SEG, id}, 0, size};
    return e;
}

static uint32_t id_of(const wr_qent_t *e)
{
    return e->loc.off;
}

static wr_qsm_limits_t no_limits(void)
{
    wr_qsm_limits_t l = {-1, -1, -1, -1, WR_OVERFLOW_DROP_HEAD, 0};
    return l;
}

static int enq(wr_qsm_t *sm, uint32_t id, uint32_t size, int64_t msg_ttl, uint8_t prio, int64_t now,
               wr_qfx_t *fx)
{
    wr_qent_t e = ent(id, size);
    return wr_qsm_enqueue(sm, &e, msg_ttl, prio, now, fx);
}

/* Checks out the next entry into *e (if e is not NULL): its id, 0 if none. */
static uint32_t co(wr_qsm_t *sm, int64_t now, wr_qent_t *e, wr_qfx_t *fx)
{
    wr_qent_t tmp;
    if (e == NULL)
        e = &tmp;
    return wr_qsm_checkout(sm, now, e, fx) ? id_of(e) : 0;
}

/* The effects in fx as text ("dead:maxlen:1 gone:2 timer:1010"), and fx
 * reset: a focused test compares a whole effect list at a glance.  An
 * entry whose msg is not its id's fake pointer shows as "?". */
static const char *fxs(wr_qfx_t *fx)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < fx->n && n + 64 < sizeof buf; i++) {
        const wr_qfx_item_t *it = &fx->v[i];
        const char *sep = i ? " " : "";
        int k;
        if (it->kind == WR_QFX_TIMER)
            k = snprintf(buf + n, sizeof buf - n, "%stimer:%" PRId64, sep, it->at);
        else if (it->e.msg != MSG(id_of(&it->e)) || it->e.loc.seg != LOC_SEG)
            k = snprintf(buf + n, sizeof buf - n, "%s?", sep);
        else if (it->kind == WR_QFX_DEAD)
            k = snprintf(buf + n, sizeof buf - n, "%sdead:%s:%u", sep,
                         wr_qsm_reason_name(it->reason), id_of(&it->e));
        else
            k = snprintf(buf + n, sizeof buf - n, "%sgone:%u", sep, id_of(&it->e));
        n += (size_t)k;
    }
    wr_qfx_reset(fx);
    return buf;
}

/* Checks out and settles every ready entry at now: their ids in order as
 * text ("1 2 3").  Effects on the way (expiries) are left in fx. */
static const char *drain(wr_qsm_t *sm, int64_t now, wr_qfx_t *fx)
{
    static char buf[8192];
    size_t n = 0;
    uint32_t id;
    buf[0] = 0;
    while ((id = co(sm, now, NULL, fx)) != 0) {
        wr_qsm_settle(sm);
        if (n + 16 < sizeof buf)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%u", n ? " " : "", id);
    }
    return buf;
}

/* ---- focused tests ---- */

static void test_qsm_fifo(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 5; id++)
        CHECK_EQ(enq(&sm, id, 10 * id, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qsm_ready(&sm), 5);
    CHECK_EQ(sm.ready_bytes, 150);

    wr_qent_t e;
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    /* The caller's payload comes back untouched; seq is the arrival. */
    CHECK(e.msg == MSG(1));
    CHECK_EQ(e.loc.seg, LOC_SEG);
    CHECK_EQ(e.seq, 0);
    CHECK_EQ(e.deliveries, 0);
    CHECK_EQ(e.size, 10);
    CHECK_EQ(e.expires_at, 0);
    CHECK_EQ(sm.out, 1);
    CHECK_EQ(wr_qsm_ready(&sm), 4);
    CHECK_EQ(sm.ready_bytes, 140);
    wr_qsm_settle(&sm);
    CHECK_EQ(sm.out, 0);
    CHECK_STR(drain(&sm, T0, &fx), "2 3 4 5");
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(co(&sm, T0, NULL, &fx), 0);
    CHECK_EQ(sm.ready_bytes, 0);

    /* Across the ring's 1024-entry blocks, interleaved with checkouts so
     * that head and tail move through several blocks. */
    uint32_t next_out = 100;
    for (uint32_t id = 100; id < 5100; id++) {
        CHECK_EQ(enq(&sm, id, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
        if (id % 3 == 0) {
            CHECK_EQ(co(&sm, T0, NULL, &fx), next_out++);
            wr_qsm_settle(&sm);
        }
    }
    CHECK_EQ(wr_qsm_ready(&sm), 5100 - next_out);
    while (next_out < 5100) {
        CHECK_EQ(co(&sm, T0, NULL, &fx), next_out++);
        wr_qsm_settle(&sm);
    }
    CHECK_EQ(co(&sm, T0, NULL, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_requeue_position(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 6; id++)
        enq(&sm, id, 1, -1, 0, T0, &fx);
    wr_qent_t e1, e2, e3;
    CHECK_EQ(co(&sm, T0, &e1, &fx), 1);
    CHECK_EQ(co(&sm, T0, &e2, &fx), 2);
    CHECK_EQ(co(&sm, T0, &e3, &fx), 3);
    enq(&sm, 7, 1, -1, 0, T0, &fx);
    /* Returned in any order, they come back in their original order,
     * before everything that was behind them. */
    CHECK_EQ(wr_qsm_return(&sm, &e3, T0, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e1, T0, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0, &fx), 1);
    CHECK_EQ(sm.out, 0);
    CHECK_EQ(wr_qsm_ready(&sm), 7);
    CHECK_EQ(sm.ready_bytes, 7);
    wr_qent_t e;
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(e.deliveries, 1); /* redelivered */
    CHECK_EQ(e.seq, 0);
    wr_qsm_settle(&sm);
    CHECK_STR(drain(&sm, T0, &fx), "2 3 4 5 6 7");

    /* One returned while the ring's head has moved past it goes before
     * the head. */
    for (uint32_t id = 11; id <= 15; id++)
        enq(&sm, id, 1, -1, 0, T0, &fx);
    CHECK_EQ(co(&sm, T0, &e1, &fx), 11);
    CHECK_EQ(co(&sm, T0, &e2, &fx), 12);
    CHECK_EQ(co(&sm, T0, &e3, &fx), 13);
    wr_qsm_settle(&sm);
    wr_qsm_settle(&sm);
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0, &fx), 1);
    CHECK_STR(drain(&sm, T0, &fx), "12 14 15");
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_putback_not_counted(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.delivery_limit = 1;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 5, -1, 0, T0, &fx);
    enq(&sm, 2, 5, -1, 0, T0, &fx);
    wr_qent_t e;
    /* Put back (inspection, replay) as often as you like: not a delivery,
     * so never past the limit, and still first. */
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(co(&sm, T0, &e, &fx), 1);
        CHECK_EQ(e.deliveries, 0);
        wr_qsm_putback(&sm, &e, T0, &fx);
        CHECK_EQ(sm.out, 0);
        CHECK_EQ(wr_qsm_ready(&sm), 2);
        CHECK_EQ(sm.ready_bytes, 10);
    }
    CHECK_STR(fxs(&fx), "");
    /* A return is one. */
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(e.deliveries, 1);
    wr_qsm_putback(&sm, &e, T0, &fx);
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(e.deliveries, 1);
    CHECK_STR(fxs(&fx), "");
    wr_qsm_settle(&sm);
    CHECK_STR(drain(&sm, T0, &fx), "2");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_delivery_limit(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.delivery_limit = 3;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 5, -1, 0, T0, &fx);
    enq(&sm, 2, 5, -1, 0, T0, &fx);
    wr_qent_t e;
    /* Returned up to the limit: ready again each time. */
    for (uint32_t i = 1; i <= 3; i++) {
        CHECK_EQ(co(&sm, T0, &e, &fx), 1);
        CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
        CHECK_EQ(e.deliveries, i);
    }
    CHECK_STR(fxs(&fx), "");
    /* Returned once more than the limit: dead-lettered, not ready. */
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(e.deliveries, 3);
    CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 0);
    CHECK_EQ(fx.n, 1);
    CHECK_EQ(fx.v[0].e.deliveries, 4);
    CHECK_STR(fxs(&fx), "dead:delivery_limit:1");
    CHECK_EQ(sm.out, 0);
    CHECK_EQ(wr_qsm_ready(&sm), 1);
    CHECK_EQ(sm.ready_bytes, 5);

    /* Without a limit (-1), never. */
    lim.delivery_limit = -1;
    wr_qsm_set_limits(&sm, &lim);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(co(&sm, T0, &e, &fx), 2);
        CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
    }
    CHECK_STR(fxs(&fx), "");
    CHECK_STR(drain(&sm, T0, &fx), "2");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_discard(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 5, -1, 0, T0, &fx);
    enq(&sm, 2, 5, -1, 0, T0, &fx);
    wr_qent_t e;
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    wr_qsm_discard(&sm, &e, WR_QR_REJECTED, &fx);
    CHECK_STR(fxs(&fx), "dead:rejected:1");
    CHECK_EQ(sm.out, 0);
    CHECK_EQ(wr_qsm_ready(&sm), 1);
    CHECK_STR(wr_qsm_reason_name(WR_QR_EXPIRED), "expired");
    CHECK_STR(wr_qsm_reason_name(WR_QR_MAXLEN), "maxlen");
    CHECK_STR(wr_qsm_reason_name(WR_QR_REJECTED), "rejected");
    CHECK_STR(wr_qsm_reason_name(WR_QR_DELIVERY_LIMIT), "delivery_limit");
    CHECK_STR(wr_qsm_reason_name(99), "unknown");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* The deadline an entry gets: now + the smaller of the queue's and the
 * message's TTL. */
static void test_qsm_ttl_queue_and_message(void)
{
    static const struct {
        int64_t queue_ttl, msg_ttl, expires_at;
    } cases[] = {
        {100, -1, T0 + 100}, {100, 50, T0 + 50}, {100, 200, T0 + 100},
        {-1, 30, T0 + 30},   {-1, -1, 0},        {100, 100, T0 + 100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wr_qsm_limits_t lim = no_limits();
        lim.message_ttl = cases[i].queue_ttl;
        wr_qsm_t sm;
        wr_qfx_t fx;
        wr_qsm_init(&sm, &lim);
        wr_qfx_init(&fx);
        CHECK_EQ(wr_qsm_ttl(&sm, cases[i].msg_ttl),
                 cases[i].expires_at ? cases[i].expires_at - T0 : -1);
        CHECK_EQ(enq(&sm, 1, 1, cases[i].msg_ttl, 0, T0, &fx), WR_QSM_QUEUED);
        wr_qent_t e;
        CHECK_EQ(co(&sm, T0, &e, &fx), 1);
        CHECK_EQ(e.expires_at, cases[i].expires_at);
        wr_qsm_settle(&sm);
        wr_qsm_free(&sm);
        wr_qfx_free(&fx);
    }
}

/* An entry that expires behind others leaves at once (a tombstone in the
 * ring), not when it reaches the head. */
static void test_qsm_expire_middle(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, -1, 0, T0, &fx);
    enq(&sm, 2, 2, 10, 0, T0, &fx);
    enq(&sm, 3, 4, -1, 0, T0, &fx);
    enq(&sm, 4, 8, 20, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1010");
    /* Not before its deadline; the owner is told it again. */
    wr_qsm_expire(&sm, T0 + 9, &fx);
    CHECK_STR(fxs(&fx), "timer:1010");
    CHECK_EQ(wr_qsm_ready(&sm), 4);
    wr_qsm_expire(&sm, T0 + 10, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:2 timer:1020");
    CHECK_EQ(wr_qsm_ready(&sm), 3);
    CHECK_EQ(sm.ready_bytes, 13);
    CHECK_STR(drain(&sm, T0 + 15, &fx), "1 3 4");
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Many tombstones over several ring blocks (the binary search that finds
 * an expiring entry crosses blocks). */
static void test_qsm_expire_many_blocks(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    /* Every third entry expires, at T0 + 1 .. T0 + 7 by id. */
    for (uint32_t id = 1; id <= 4000; id++)
        enq(&sm, id, 1, id % 3 == 0 ? (int64_t)(1 + id % 7) : -1, 0, T0, &fx);
    wr_qfx_reset(&fx);
    /* Some of the first ones go out and come back (the heap). */
    wr_qent_t out[300];
    for (uint32_t i = 0; i < 300; i++)
        CHECK_EQ(co(&sm, T0, &out[i], &fx), i + 1);
    for (uint32_t i = 300; i-- > 0;)
        CHECK_EQ(wr_qsm_return(&sm, &out[i], T0, &fx), 1);
    wr_qfx_reset(&fx);
    for (int64_t t = 1; t <= 7; t++) {
        wr_qsm_expire(&sm, T0 + t, &fx);
        /* Exactly the entries due at t, in queue order. */
        size_t k = 0;
        for (uint32_t id = 3; id <= 4000; id += 3) {
            if (1 + id % 7 != t)
                continue;
            CHECK(k < fx.n);
            CHECK_EQ(fx.v[k].kind, WR_QFX_DEAD);
            CHECK_EQ(fx.v[k].reason, WR_QR_EXPIRED);
            CHECK_EQ(id_of(&fx.v[k].e), id);
            k++;
        }
        /* Then the next deadline; after the last one, nothing (the
         * owner's timer fired: it is not armed any more). */
        if (t < 7) {
            CHECK_EQ(fx.n, k + 1);
            CHECK_EQ(fx.v[k].kind, WR_QFX_TIMER);
            CHECK_EQ(fx.v[k].at, T0 + t + 1);
        } else {
            CHECK_EQ(fx.n, k);
        }
        wr_qfx_reset(&fx);
    }
    CHECK_EQ(wr_qsm_ready(&sm), 4000 - 4000 / 3);
    for (uint32_t id = 1; id <= 4000; id++) {
        if (id % 3 == 0)
            continue;
        CHECK_EQ(co(&sm, T0 + 7, NULL, &fx), id);
        wr_qsm_settle(&sm);
    }
    CHECK_EQ(co(&sm, T0 + 7, NULL, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Returned entries keep their deadline, and expire in the heap. */
static void test_qsm_expire_in_heap(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 100;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, -1, 0, T0, &fx);
    enq(&sm, 2, 1, -1, 0, T0, &fx);
    enq(&sm, 3, 1, -1, 0, T0 + 50, &fx);
    CHECK_STR(fxs(&fx), "timer:1100");
    wr_qent_t e1, e2;
    CHECK_EQ(co(&sm, T0 + 10, &e1, &fx), 1);
    CHECK_EQ(co(&sm, T0 + 10, &e2, &fx), 2);
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0 + 20, &fx), 1);
    CHECK_EQ(e2.expires_at, T0 + 100);
    fxs(&fx); /* whatever timer it re-tells: not later than 1100 */
    wr_qsm_expire(&sm, T0 + 100, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:2 timer:1150");
    CHECK_EQ(wr_qsm_ready(&sm), 1);
    /* One already past its deadline when it comes back expires at the
     * next wake-up. */
    CHECK_EQ(wr_qsm_return(&sm, &e1, T0 + 120, &fx), 1);
    CHECK_STR(fxs(&fx), "timer:1100");
    wr_qsm_expire(&sm, T0 + 120, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:1 timer:1150");
    wr_qsm_expire(&sm, T0 + 150, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:3");
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    CHECK_EQ(sm.ready_bytes, 0);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* An entry is expired when now >= its deadline, not before. */
static void test_qsm_expire_boundary(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 100;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, -1, 0, T0, &fx);
    wr_qent_t e;
    CHECK_EQ(co(&sm, T0 + 99, &e, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e, T0 + 99, &fx), 1);
    fxs(&fx);
    /* Found expired on the way by a checkout. */
    CHECK_EQ(co(&sm, T0 + 100, &e, &fx), 0);
    CHECK_STR(fxs(&fx), "dead:expired:1");
    CHECK_EQ(sm.out, 0);

    enq(&sm, 2, 1, -1, 0, 2 * T0, &fx);
    fxs(&fx);
    wr_qsm_expire(&sm, 2 * T0 + 99, &fx);
    CHECK_STR(fxs(&fx), "timer:2100");
    wr_qsm_expire(&sm, 2 * T0 + 100, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:2");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* TIMER tells the owner the earliest deadline: on enqueue only when it
 * moves earlier; 0 when a purge leaves nothing that can expire. */
static void test_qsm_timer(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, 100, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1100");
    enq(&sm, 2, 1, 200, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    enq(&sm, 3, 1, 50, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1050");
    enq(&sm, 4, 1, -1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "");
    /* A checkout leaves the timer alone: a wake-up for an entry that is
     * gone is only a wasted one, and the next wake-up re-tells. */
    wr_qent_t e;
    CHECK_EQ(co(&sm, T0, &e, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
    CHECK_STR(fxs(&fx), "");
    wr_qsm_expire(&sm, T0 + 50, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:3 timer:1100");
    CHECK_EQ(wr_qsm_purge(&sm, 10, &fx), 3);
    CHECK_STR(fxs(&fx), "gone:1 gone:2 gone:4 timer:0");
    /* Nothing to tell when nothing can expire. */
    wr_qsm_arm(&sm, &fx);
    CHECK_STR(fxs(&fx), "");
    enq(&sm, 5, 1, -1, 0, T0, &fx);
    wr_qsm_expire(&sm, T0 + 1000, &fx);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qsm_purge(&sm, 10, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:5");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Found by this suite (fixed): wr_qsm_arm must tell the owner the
 * earliest *live* deadline after checkouts left stale items on top of the
 * expiry heap, not keep it waking up for entries that are gone. */
static void test_qsm_arm_after_checkout(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, 50, 0, T0, &fx);
    enq(&sm, 2, 1, 100, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1050");
    /* Freed before the checks, so that a failure leaks nothing (a leak
     * report would swallow the runner's output). */
    char after1[64], after2[64];
    CHECK_EQ(co(&sm, T0, NULL, &fx), 1);
    wr_qsm_settle(&sm);
    wr_qsm_arm(&sm, &fx);
    snprintf(after1, sizeof after1, "%s", fxs(&fx));
    CHECK_EQ(co(&sm, T0, NULL, &fx), 2);
    wr_qsm_settle(&sm);
    wr_qsm_arm(&sm, &fx);
    snprintf(after2, sizeof after2, "%s", fxs(&fx));
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
    CHECK_STR(after1, "timer:1100");
    CHECK_STR(after2, "timer:0");
}

/* TTL 0: delivered at once or not at all (RabbitMQ's stand-in for the
 * immediate flag): the entry is checked out by the enqueue itself. */
static void test_qsm_ttl_zero_immediate(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 0;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    wr_qent_t e = ent(1, 5);
    CHECK_EQ(wr_qsm_enqueue(&sm, &e, -1, 0, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(e.seq, 0);
    CHECK_EQ(e.expires_at, T0); /* due now, should it come back */
    CHECK(e.msg == MSG(1));
    CHECK_EQ(sm.out, 1);
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    CHECK_EQ(sm.ready_bytes, 0);
    /* Nobody could take it: the caller discards it as expired. */
    wr_qsm_discard(&sm, &e, WR_QR_EXPIRED, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:1");
    CHECK_EQ(sm.out, 0);
    /* A message TTL of 0 under a larger queue TTL, and on a plain queue. */
    lim.message_ttl = 100;
    wr_qsm_set_limits(&sm, &lim);
    e = ent(2, 5);
    CHECK_EQ(wr_qsm_enqueue(&sm, &e, 0, 0, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_EQ(e.seq, 1);
    wr_qsm_settle(&sm);
    lim.message_ttl = -1;
    wr_qsm_set_limits(&sm, &lim);
    e = ent(3, 5);
    CHECK_EQ(wr_qsm_enqueue(&sm, &e, 0, 0, T0, &fx), WR_QSM_IMMEDIATE);
    CHECK_EQ(e.seq, 2);
    wr_qsm_settle(&sm);
    CHECK_STR(fxs(&fx), "");
    /* The immediate ones used their positions. */
    CHECK_EQ(enq(&sm, 4, 5, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_EQ(co(&sm, T0, &e, &fx), 4);
    CHECK_EQ(e.seq, 3);
    wr_qsm_settle(&sm);
    /* A full reject-publish queue refuses even those. */
    lim.max_length = 0;
    lim.overflow = WR_OVERFLOW_REJECT_PUBLISH;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(enq(&sm, 5, 5, 0, 0, T0, &fx), WR_QSM_REFUSED);
    CHECK_EQ(sm.out, 0);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* An immediate (TTL 0) entry of a priority queue gets its priority key
 * (found by the model: it used to keep its bare seq, which ranks above
 * every priority), and is due at once: requeued, it waits behind the
 * higher priorities and expires when it reaches the front. */
static void test_qsm_immediate_requeue_priority(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_priority = 5;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    wr_qent_t e = ent(1, 1);
    /* Delivered at once to a consumer (the queue is empty)... */
    CHECK_EQ(wr_qsm_enqueue(&sm, &e, 0, 0, T0, &fx), WR_QSM_IMMEDIATE);
    enq(&sm, 2, 1, -1, 5, T0, &fx);
    enq(&sm, 3, 1, -1, 5, T0, &fx);
    /* ... which requeues it: priority 0, so behind 2 and 3. */
    CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
    CHECK_EQ(e.seq >> 56, 255); /* priority 0's key */
    wr_qfx_reset(&fx);
    char order[64];
    snprintf(order, sizeof order, "%s", drain(&sm, T0, &fx));
    char effects[128];
    snprintf(effects, sizeof effects, "%s", fxs(&fx));
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
    CHECK_STR(order, "2 3");
    CHECK(strstr(effects, "dead:expired:1") != NULL);
}

static void test_qsm_max_length_drop_head(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_length = 3;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 3; id++)
        CHECK_EQ(enq(&sm, id, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(enq(&sm, 4, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "dead:maxlen:1");
    CHECK_EQ(enq(&sm, 5, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "dead:maxlen:2");
    CHECK_EQ(wr_qsm_ready(&sm), 3);
    /* Entries that are out do not count; the head may be a returned one. */
    wr_qent_t e;
    CHECK_EQ(co(&sm, T0, &e, &fx), 3);
    CHECK_EQ(enq(&sm, 6, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
    CHECK_EQ(enq(&sm, 7, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "dead:maxlen:3 dead:maxlen:4");
    CHECK_STR(drain(&sm, T0, &fx), "5 6 7");

    /* x-max-length 0: nothing stays. */
    lim.max_length = 0;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(enq(&sm, 8, 1, -1, 0, T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(fxs(&fx), "dead:maxlen:8");
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    wr_qsm_free(&sm);

    /* x-max-length-bytes. */
    lim = no_limits();
    lim.max_length_bytes = 100;
    wr_qsm_init(&sm, &lim);
    enq(&sm, 1, 40, -1, 0, T0, &fx);
    enq(&sm, 2, 40, -1, 0, T0, &fx);
    enq(&sm, 3, 20, -1, 0, T0, &fx); /* exactly 100: not over */
    CHECK_STR(fxs(&fx), "");
    enq(&sm, 4, 30, -1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "dead:maxlen:1");
    CHECK_EQ(sm.ready_bytes, 90);
    /* Bigger than the limit on its own: everything goes, itself too. */
    enq(&sm, 5, 150, -1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "dead:maxlen:2 dead:maxlen:3 dead:maxlen:4 dead:maxlen:5");
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    CHECK_EQ(sm.ready_bytes, 0);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_reject_publish(void)
{
    static const int modes[] = {WR_OVERFLOW_REJECT_PUBLISH, WR_OVERFLOW_REJECT_PUBLISH_DLX};
    for (size_t m = 0; m < 2; m++) {
        wr_qsm_limits_t lim = no_limits();
        lim.max_length = 2;
        lim.overflow = modes[m];
        wr_qsm_t sm;
        wr_qfx_t fx;
        wr_qsm_init(&sm, &lim);
        wr_qfx_init(&fx);
        CHECK_EQ(enq(&sm, 1, 10, -1, 0, T0, &fx), WR_QSM_QUEUED);
        CHECK_EQ(enq(&sm, 2, 10, -1, 0, T0, &fx), WR_QSM_QUEUED);
        CHECK(wr_qsm_would_reject(&sm, 0));
        /* Refused: no entry, no effect, nothing changed. */
        CHECK_EQ(enq(&sm, 3, 10, 5, 0, T0, &fx), WR_QSM_REFUSED);
        CHECK_STR(fxs(&fx), "");
        CHECK_EQ(wr_qsm_ready(&sm), 2);
        CHECK_EQ(sm.ready_bytes, 20);
        CHECK_EQ(sm.out, 0);
        wr_qent_t e;
        CHECK_EQ(co(&sm, T0, &e, &fx), 1);
        wr_qsm_settle(&sm);
        CHECK(!wr_qsm_would_reject(&sm, 0));
        CHECK_EQ(enq(&sm, 4, 10, -1, 0, T0, &fx), WR_QSM_QUEUED);
        CHECK_EQ(co(&sm, T0, &e, &fx), 2);
        wr_qsm_settle(&sm);
        CHECK_EQ(co(&sm, T0, &e, &fx), 4);
        CHECK_EQ(e.seq, 2); /* the refused one took no position */
        wr_qsm_settle(&sm);
        wr_qsm_free(&sm);

        lim.max_length = -1;
        lim.max_length_bytes = 100;
        wr_qsm_init(&sm, &lim);
        CHECK_EQ(enq(&sm, 1, 60, -1, 0, T0, &fx), WR_QSM_QUEUED);
        CHECK_EQ(enq(&sm, 2, 50, -1, 0, T0, &fx), WR_QSM_REFUSED);
        CHECK_EQ(enq(&sm, 3, 40, -1, 0, T0, &fx), WR_QSM_QUEUED); /* exactly 100 */
        CHECK_EQ(enq(&sm, 4, 0, -1, 0, T0, &fx), WR_QSM_QUEUED);  /* 0 bytes fit */
        CHECK_EQ(enq(&sm, 5, 1, -1, 0, T0, &fx), WR_QSM_REFUSED);
        CHECK_STR(fxs(&fx), "");
        CHECK_STR(drain(&sm, T0, &fx), "1 3 4");
        wr_qsm_free(&sm);
        wr_qfx_free(&fx);
    }
}

/* A policy lowers a limit: nothing is dropped until enforce_limits, which
 * drops from the head in batches and says when more are left. */
static void test_qsm_enforce_limits(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 10; id++)
        enq(&sm, id, 10, -1, 0, T0, &fx);
    lim.max_length = 3;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(wr_qsm_ready(&sm), 10);
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:maxlen:1 dead:maxlen:2");
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:maxlen:3 dead:maxlen:4");
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 1);
    CHECK_STR(fxs(&fx), "dead:maxlen:5 dead:maxlen:6");
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 0);
    CHECK_STR(fxs(&fx), "dead:maxlen:7");
    CHECK_EQ(wr_qsm_ready(&sm), 3);
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    /* A batch that finishes the job exactly says nothing is left. */
    lim.max_length_bytes = 10;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 2, &fx), 0);
    CHECK_STR(fxs(&fx), "dead:maxlen:8 dead:maxlen:9");
    CHECK_EQ(sm.ready_bytes, 10);

    /* Under reject-publish a lowered limit drops nothing: new messages
     * are refused until the queue is back under it. */
    for (uint32_t id = 11; id <= 15; id++)
        enq(&sm, id, 10, -1, 0, T0, &fx);
    fxs(&fx);
    lim.max_length = 1;
    lim.max_length_bytes = -1;
    lim.overflow = WR_OVERFLOW_REJECT_PUBLISH;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(wr_qsm_ready(&sm), 1);
    lim.max_length = 5;
    wr_qsm_set_limits(&sm, &lim);
    for (uint32_t id = 16; id <= 19; id++)
        CHECK_EQ(enq(&sm, id, 10, -1, 0, T0, &fx), WR_QSM_QUEUED);
    lim.max_length = 2;
    wr_qsm_set_limits(&sm, &lim);
    CHECK_EQ(wr_qsm_enforce_limits(&sm, 100, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    CHECK_EQ(wr_qsm_ready(&sm), 5);
    CHECK_EQ(enq(&sm, 20, 10, -1, 0, T0, &fx), WR_QSM_REFUSED);
    CHECK_STR(drain(&sm, T0, &fx), "15 16 17 18 19");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_priority(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_priority = 5;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    /* Higher first, FIFO within a priority; 9 counts as 5 (clamped), so
     * 4 and 6 are equals in arrival order. */
    static const uint8_t prio[] = {0, 1, 3, 3, 9, 0, 5};
    for (uint32_t id = 1; id <= 6; id++)
        CHECK_EQ(enq(&sm, id, 1, -1, prio[id], T0, &fx), WR_QSM_QUEUED);
    CHECK_STR(drain(&sm, T0, &fx), "4 6 2 3 1 5");

    /* Requeued entries keep their place. */
    for (uint32_t id = 1; id <= 6; id++)
        enq(&sm, id, 1, -1, prio[id], T0, &fx);
    wr_qent_t e4, e6, e2;
    CHECK_EQ(co(&sm, T0, &e4, &fx), 4);
    CHECK_EQ(co(&sm, T0, &e6, &fx), 6);
    CHECK_EQ(co(&sm, T0, &e2, &fx), 2);
    enq(&sm, 7, 1, -1, 5, T0, &fx); /* behind 4 and 6 */
    enq(&sm, 8, 1, -1, 4, T0, &fx); /* ahead of 2 */
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0, &fx), 1);
    CHECK_EQ(wr_qsm_return(&sm, &e6, T0, &fx), 1);
    wr_qsm_putback(&sm, &e4, T0, &fx);
    CHECK_STR(drain(&sm, T0, &fx), "4 6 7 8 2 3 1 5");

    /* Drop-head drops the head: the highest priority. */
    lim.max_length = 2;
    wr_qsm_set_limits(&sm, &lim);
    enq(&sm, 1, 1, -1, 1, T0, &fx);
    enq(&sm, 2, 1, -1, 3, T0, &fx);
    enq(&sm, 3, 1, -1, 2, T0, &fx);
    CHECK_STR(fxs(&fx), "dead:maxlen:2");
    /* The priority is the queue's, not a policy's: it stays. */
    lim.max_priority = 0;
    lim.max_length = -1;
    wr_qsm_set_limits(&sm, &lim);
    enq(&sm, 4, 1, -1, 4, T0, &fx);
    CHECK_STR(drain(&sm, T0, &fx), "4 3 1");
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);

    /* A queue without x-max-priority ignores priorities. */
    lim = no_limits();
    lim.max_length = 100; /* not the plain fast path */
    wr_qsm_init(&sm, &lim);
    for (uint32_t id = 1; id <= 6; id++)
        enq(&sm, id, 1, -1, prio[id], T0, &fx);
    CHECK_STR(drain(&sm, T0, &fx), "1 2 3 4 5 6");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Priority queues with TTL: expiry finds entries in the heap by key. */
static void test_qsm_priority_ttl(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_priority = 3;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, 30, 1, T0, &fx);
    enq(&sm, 2, 1, 10, 2, T0, &fx);
    enq(&sm, 3, 1, -1, 3, T0, &fx);
    enq(&sm, 4, 1, 10, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1030 timer:1010");
    wr_qsm_expire(&sm, T0 + 10, &fx);
    /* Same deadline: queue order. */
    CHECK_STR(fxs(&fx), "dead:expired:2 dead:expired:4 timer:1030");
    CHECK_STR(drain(&sm, T0 + 20, &fx), "3 1");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

static void test_qsm_purge(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 10; id++)
        enq(&sm, id, 1, id == 5 ? 5 : -1, 0, T0, &fx);
    wr_qent_t e1, e2;
    CHECK_EQ(co(&sm, T0, &e1, &fx), 1);
    CHECK_EQ(co(&sm, T0, &e2, &fx), 2);
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0, &fx), 1); /* in the heap */
    wr_qsm_expire(&sm, T0 + 5, &fx);               /* 5: a tombstone */
    CHECK_STR(fxs(&fx), "timer:1005 dead:expired:5");
    CHECK_EQ(wr_qsm_ready(&sm), 8);
    /* In queue order, in batches; what is out is not purged. */
    CHECK_EQ(wr_qsm_purge(&sm, 3, &fx), 3);
    CHECK_STR(fxs(&fx), "gone:2 gone:3 gone:4");
    CHECK_EQ(wr_qsm_ready(&sm), 5);
    CHECK_EQ(wr_qsm_purge(&sm, 100, &fx), 5);
    CHECK_STR(fxs(&fx), "gone:6 gone:7 gone:8 gone:9 gone:10");
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    CHECK_EQ(sm.ready_bytes, 0);
    CHECK_EQ(sm.out, 1);
    CHECK_EQ(wr_qsm_purge(&sm, 100, &fx), 0);
    CHECK_STR(fxs(&fx), "");
    /* Still works after: e1 comes back, new ones behind it. */
    CHECK_EQ(wr_qsm_return(&sm, &e1, T0, &fx), 1);
    enq(&sm, 11, 1, -1, 0, T0, &fx);
    CHECK_STR(drain(&sm, T0, &fx), "1 11");

    /* A purge that leaves nothing that can expire says so. */
    lim.message_ttl = 100;
    wr_qsm_set_limits(&sm, &lim);
    enq(&sm, 12, 1, -1, 0, T0, &fx);
    enq(&sm, 13, 1, -1, 0, T0, &fx);
    CHECK_STR(fxs(&fx), "timer:1100");
    CHECK_EQ(wr_qsm_purge(&sm, 1, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:12");
    CHECK_EQ(wr_qsm_purge(&sm, 1, &fx), 1);
    CHECK_STR(fxs(&fx), "gone:13 timer:0");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Recovery adds entries in segment order; compaction copies keep their
 * original rank, so `order` comes out of order and must merge back. */
static void test_qsm_recover(void)
{
    static const struct {
        uint32_t id;
        uint64_t order;
        uint32_t deliveries;
    } rec[] = {{1, 5, 0}, {2, 1, 0}, {3, 7, 1}, {4, 3, 0}, {5, 9, 0}, {6, 2, 2}};
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 100;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++) {
        wr_qent_t e = ent(rec[i].id, 1);
        e.deliveries = rec[i].deliveries;
        wr_qsm_recover(&sm, &e, rec[i].order, 5 * T0, &fx);
    }
    /* The queue's TTL from now. */
    CHECK_STR(fxs(&fx), "timer:5100");
    CHECK_EQ(wr_qsm_ready(&sm), 6);
    /* New messages go behind the highest rank. */
    enq(&sm, 7, 1, -1, 0, 5 * T0, &fx);
    static const uint32_t want[] = {2, 6, 4, 1, 3, 5, 7};
    static const uint64_t want_seq[] = {1, 2, 3, 5, 7, 9, 10};
    static const uint32_t want_del[] = {0, 2, 0, 0, 1, 0, 0};
    for (size_t i = 0; i < 7; i++) {
        wr_qent_t e;
        CHECK_EQ(co(&sm, 5 * T0, &e, &fx), want[i]);
        CHECK_EQ(e.seq, want_seq[i]);
        CHECK_EQ(e.deliveries, want_del[i]);
        CHECK_EQ(e.expires_at, 5 * T0 + 100);
        wr_qsm_settle(&sm);
    }
    CHECK_STR(fxs(&fx), "");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Random recovery orders (runs in order, with copies of earlier ranks
 * interleaved) always drain in rank order. */
static void test_qsm_recover_random(void)
{
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (int round = 0; round < 20; round++) {
        wr_qsm_limits_t lim = no_limits();
        wr_qsm_t sm;
        wr_qfx_t fx;
        wr_qsm_init(&sm, &lim);
        wr_qfx_init(&fx);
        enum { N = 3000 };
        static uint8_t used[N];
        memset(used, 0, sizeof used);
        /* Ranks 0..N-1 each once: mostly ascending, every so often one
         * picked from anywhere still unused. */
        uint32_t next = 0, added = 0;
        while (added < N) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            uint32_t r;
            if (rng % 5 == 0) {
                r = (uint32_t)(rng >> 8) % N;
                while (used[r])
                    r = (r + 1) % N;
            } else {
                while (used[next])
                    next++;
                r = next;
            }
            used[r] = 1;
            wr_qent_t e = ent(r + 1, 1);
            wr_qsm_recover(&sm, &e, r, T0, &fx);
            added++;
        }
        CHECK_STR(fxs(&fx), "");
        for (uint32_t r = 0; r < N; r++) {
            wr_qent_t e;
            CHECK_EQ(co(&sm, T0, &e, &fx), r + 1);
            CHECK_EQ(e.seq, r);
            wr_qsm_settle(&sm);
        }
        CHECK_EQ(co(&sm, T0, NULL, &fx), 0);
        wr_qsm_free(&sm);
        wr_qfx_free(&fx);
    }
}

static const uint8_t prio_by_id[] = {0, 1, 9, 4, 4, 0, 9, 3};
static int prio_calls;

static uint8_t prio_of(void *ctx, wr_qent_t *e)
{
    (void)ctx;
    prio_calls++;
    return prio_by_id[id_of(e)];
}

/* Recovery of a priority queue: only the payload knows the priority. */
static void test_qsm_reprioritise(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_priority = 5;
    lim.message_ttl = 100;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 7; id++) {
        wr_qent_t e = ent(id, 1);
        wr_qsm_recover(&sm, &e, id, T0, &fx);
    }
    fxs(&fx);
    prio_calls = 0;
    wr_qsm_reprioritise(&sm, prio_of, NULL, &fx);
    CHECK_EQ(prio_calls, 7);
    CHECK_STR(fxs(&fx), "timer:1100");
    /* 9 is clamped to 5. */
    CHECK_STR(drain(&sm, T0, &fx), "2 6 3 4 7 1 5");
    CHECK_STR(fxs(&fx), "");
    /* Their deadlines were kept: expiry finds them under their new keys. */
    for (uint32_t id = 1; id <= 7; id++) {
        wr_qent_t e = ent(id, 1);
        wr_qsm_recover(&sm, &e, 10 + id, T0, &fx);
    }
    wr_qsm_reprioritise(&sm, prio_of, NULL, &fx);
    fxs(&fx);
    wr_qsm_expire(&sm, T0 + 100, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:2 dead:expired:6 dead:expired:3 dead:expired:4 "
                        "dead:expired:7 dead:expired:1 dead:expired:5");
    CHECK_EQ(wr_qsm_ready(&sm), 0);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Found by this suite (fixed): recovered entries of a priority queue whose
 * order is below the ring's tail (compaction copies) go to the heap under
 * their bare order; wr_qsm_reprioritise must re-key them too (and keep
 * their expiry items), or they rank above every priority. */
static void test_qsm_reprioritise_out_of_order(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.max_priority = 9;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    static const struct {
        uint32_t id;
        uint64_t order;
    } rec[] = {{1, 10}, {2, 20}, {3, 5}, {4, 30}}; /* 3: a compaction copy */
    for (size_t i = 0; i < 4; i++) {
        wr_qent_t e = ent(rec[i].id, 1);
        wr_qsm_recover(&sm, &e, rec[i].order, T0, &fx);
    }
    /* prio_by_id: 1 -> 1, 2 -> 9, 3 -> 4, 4 -> 4 */
    wr_qsm_reprioritise(&sm, prio_of, NULL, &fx);
    /* Checked at the end, after the frees (no leak report on failure). */
    char order[64], expired[256];
    snprintf(order, sizeof order, "%s", drain(&sm, T0, &fx));
    wr_qsm_free(&sm);

    /* The same with a TTL: the copy must still expire. */
    lim.message_ttl = 100;
    wr_qsm_init(&sm, &lim);
    for (size_t i = 0; i < 4; i++) {
        wr_qent_t e = ent(rec[i].id, 1);
        wr_qsm_recover(&sm, &e, rec[i].order, T0, &fx);
    }
    wr_qsm_reprioritise(&sm, prio_of, NULL, &fx);
    fxs(&fx);
    wr_qsm_expire(&sm, T0 + 100, &fx);
    snprintf(expired, sizeof expired, "%s", fxs(&fx));
    size_t left = wr_qsm_ready(&sm);
    wr_qsm_purge(&sm, SIZE_MAX, &fx);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
    CHECK_STR(order, "2 3 4 1");
    CHECK_STR(expired, "dead:expired:2 dead:expired:3 dead:expired:4 dead:expired:1");
    CHECK_EQ(left, 0);
}

static const int64_t delay_by_id[] = {0, 30, -1, 10, 20, 10};

static int64_t delay_of(void *ctx, wr_qent_t *e)
{
    (void)ctx;
    return delay_by_id[id_of(e)];
}

/* Recovery of a delay queue: each entry is due its delay after now. */
static void test_qsm_restamp(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 4; id++) {
        wr_qent_t e = ent(id, 1);
        wr_qsm_recover(&sm, &e, id, T0, &fx);
    }
    CHECK_STR(fxs(&fx), "");
    wr_qsm_restamp(&sm, 2 * T0, delay_of, NULL, &fx);
    CHECK_STR(fxs(&fx), "timer:2030 timer:2010");
    wr_qsm_expire(&sm, 2 * T0 + 10, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:3 timer:2020");
    wr_qsm_expire(&sm, 2 * T0 + 30, &fx);
    CHECK_STR(fxs(&fx), "dead:expired:4 dead:expired:1");
    /* delay_of < 0: left without a deadline. */
    CHECK_STR(drain(&sm, 3 * T0, &fx), "2");
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Found by this suite (fixed): wr_qsm_restamp must also restamp recovered
 * delayed messages that wr_qsm_recover put in the heap (compaction
 * copies), or they never leave the delay queue. */
static void test_qsm_restamp_out_of_order(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    wr_qent_t e = ent(5, 1); /* delay 10 */
    wr_qsm_recover(&sm, &e, 2, T0, &fx);
    e = ent(3, 1); /* delay 10, a copy of an earlier rank */
    wr_qsm_recover(&sm, &e, 1, T0, &fx);
    wr_qsm_restamp(&sm, 2 * T0, delay_of, NULL, &fx);
    fxs(&fx);
    wr_qsm_expire(&sm, 2 * T0 + 10, &fx);
    char expired[128];
    snprintf(expired, sizeof expired, "%s", fxs(&fx));
    size_t left = wr_qsm_ready(&sm);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
    CHECK_STR(expired, "dead:expired:3 dead:expired:5");
    CHECK_EQ(left, 0);
}

typedef struct visit {
    uint32_t seen[32];
    size_t n;
} visit_t;

static void visit_fn(void *ctx, wr_qent_t *e)
{
    visit_t *v = ctx;
    uint32_t id = id_of(e);
    if (id < 32)
        v->seen[id]++;
    v->n++;
    e->loc.seg = 99; /* the payload may be updated in place */
}

static void test_qsm_foreach(void)
{
    wr_qsm_limits_t lim = no_limits();
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    for (uint32_t id = 1; id <= 8; id++)
        enq(&sm, id, 1, id == 4 ? 5 : -1, 0, T0, &fx);
    wr_qent_t e1, e2;
    CHECK_EQ(co(&sm, T0, &e1, &fx), 1);
    CHECK_EQ(co(&sm, T0, &e2, &fx), 2);
    CHECK_EQ(wr_qsm_return(&sm, &e2, T0, &fx), 1); /* heap */
    wr_qsm_expire(&sm, T0 + 5, &fx);               /* 4: tombstone */
    CHECK_STR(fxs(&fx), "timer:1005 dead:expired:4");
    visit_t v = {{0}, 0};
    wr_qsm_foreach(&sm, visit_fn, &v);
    /* Every ready entry once; not the one out, not the tombstone. */
    CHECK_EQ(v.n, 6);
    CHECK_EQ(v.n, wr_qsm_ready(&sm));
    for (uint32_t id = 1; id <= 8; id++)
        CHECK_EQ(v.seen[id], id == 1 || id == 4 ? 0 : 1);
    static const uint32_t want[] = {2, 3, 5, 6, 7, 8};
    for (size_t i = 0; i < 6; i++) {
        wr_qent_t e;
        CHECK_EQ(co(&sm, T0 + 5, &e, &fx), want[i]);
        CHECK_EQ(e.loc.seg, 99);
        CHECK(e.msg == MSG(want[i]));
        wr_qsm_settle(&sm);
    }
    CHECK_EQ(e1.loc.seg, LOC_SEG);
    wr_qsm_settle(&sm);
    v.n = 0;
    wr_qsm_foreach(&sm, visit_fn, &v);
    CHECK_EQ(v.n, 0);
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
}

/* Found by this suite (fixed): every return of an entry with a deadline
 * pushes a new expiry item while the one from before its checkout still
 * matches it, so a message a consumer keeps requeueing (a retry loop)
 * grew the expiry heap without bound; compaction now drops duplicates and
 * the heap stays O(ready). */
static void test_qsm_requeue_loop_expiry_items(void)
{
    wr_qsm_limits_t lim = no_limits();
    lim.message_ttl = 3600 * 1000;
    wr_qsm_t sm;
    wr_qfx_t fx;
    wr_qsm_init(&sm, &lim);
    wr_qfx_init(&fx);
    enq(&sm, 1, 1, -1, 0, T0, &fx);
    for (int i = 0; i < 5000; i++) {
        wr_qent_t e;
        CHECK_EQ(co(&sm, T0, &e, &fx), 1);
        CHECK_EQ(wr_qsm_return(&sm, &e, T0, &fx), 1);
        wr_qsm_arm(&sm, &fx);
        wr_qfx_reset(&fx);
    }
    size_t items = sm.exp_count;
    wr_qsm_free(&sm);
    wr_qfx_free(&fx);
    CHECK(items <= 1024 + 2);
}

/* ---- the reference model ----
 *
 * Written from qsm.h's rules, not from qsm.c: ready entries in an
 * unsorted array, every decision a linear scan for the head (the highest
 * priority, then the lowest arrival number).  Slow and obviously right. */

typedef struct ment {
    uint32_t id;
    uint64_t seq; /* arrival number */
    uint8_t prio; /* already clamped to max_priority */
    int64_t exp;  /* deadline, 0 for none */
    uint32_t deliveries;
    uint32_t size;
} ment_t;

typedef struct mfx {
    uint8_t kind, reason;
    ment_t e;
} mfx_t;

typedef struct model {
    wr_qsm_limits_t lim;
    ment_t *ready;
    size_t n, cap;
    uint64_t out;
    uint64_t next_seq;
    mfx_t *fx; /* DEAD and GONE of the current command */
    size_t n_fx, fx_cap;
} model_t;

/* Does a come before b in queue order? */
static int m_before(const model_t *m, const ment_t *a, const ment_t *b)
{
    if (m->lim.max_priority && a->prio != b->prio)
        return a->prio > b->prio;
    return a->seq < b->seq;
}

static size_t m_head(const model_t *m)
{
    size_t h = SIZE_MAX;
    for (size_t i = 0; i < m->n; i++)
        if (h == SIZE_MAX || m_before(m, &m->ready[i], &m->ready[h]))
            h = i;
    return h;
}

static ment_t m_take(model_t *m, size_t i)
{
    ment_t e = m->ready[i];
    m->ready[i] = m->ready[--m->n];
    return e;
}

static void m_add(model_t *m, const ment_t *e)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->ready = realloc(m->ready, m->cap * sizeof *m->ready);
    }
    m->ready[m->n++] = *e;
}

static uint64_t m_bytes(const model_t *m)
{
    uint64_t b = 0;
    for (size_t i = 0; i < m->n; i++)
        b += m->ready[i].size;
    return b;
}

static void m_emit(model_t *m, int kind, int reason, const ment_t *e)
{
    if (m->n_fx == m->fx_cap) {
        m->fx_cap = m->fx_cap ? m->fx_cap * 2 : 64;
        m->fx = realloc(m->fx, m->fx_cap * sizeof *m->fx);
    }
    mfx_t *f = &m->fx[m->n_fx++];
    f->kind = (uint8_t)kind;
    f->reason = (uint8_t)reason;
    f->e = *e;
}

/* Would extra_n more entries of extra_bytes put the queue over a limit? */
static int m_over(const model_t *m, uint64_t extra_n, uint64_t extra_bytes)
{
    if (m->lim.max_length >= 0 && m->n + extra_n > (uint64_t)m->lim.max_length)
        return 1;
    return m->lim.max_length_bytes >= 0 &&
           m_bytes(m) + extra_bytes > (uint64_t)m->lim.max_length_bytes;
}

static void m_drop_head(model_t *m)
{
    ment_t e = m_take(m, m_head(m));
    m_emit(m, WR_QFX_DEAD, WR_QR_MAXLEN, &e);
}

static int m_enqueue(model_t *m, uint32_t id, uint32_t size, int64_t msg_ttl, uint8_t prio,
                     int64_t now, ment_t *out)
{
    if (m->lim.overflow != WR_OVERFLOW_DROP_HEAD && m_over(m, 1, size))
        return WR_QSM_REFUSED;
    int64_t ttl = m->lim.message_ttl;
    if (msg_ttl >= 0 && (ttl < 0 || msg_ttl < ttl))
        ttl = msg_ttl;
    ment_t e = {id, m->next_seq++, 0, 0, 0, size};
    e.prio = prio < m->lim.max_priority ? prio : m->lim.max_priority;
    if (ttl == 0) {
        /* Due now: should it be requeued, it expires. */
        e.exp = now > 0 ? now : 1;
        m->out++;
        *out = e;
        return WR_QSM_IMMEDIATE;
    }
    if (ttl > 0)
        e.exp = now + ttl;
    m_add(m, &e);
    if (m->lim.overflow == WR_OVERFLOW_DROP_HEAD)
        while (m->n > 0 && m_over(m, 0, 0))
            m_drop_head(m);
    return WR_QSM_QUEUED;
}

static int m_checkout(model_t *m, int64_t now, ment_t *out)
{
    while (m->n) {
        ment_t e = m_take(m, m_head(m));
        if (e.exp && e.exp <= now) {
            m_emit(m, WR_QFX_DEAD, WR_QR_EXPIRED, &e);
            continue;
        }
        m->out++;
        *out = e;
        return 1;
    }
    return 0;
}

static int m_return(model_t *m, ment_t *e)
{
    m->out--;
    e->deliveries++;
    if (m->lim.delivery_limit >= 0 && e->deliveries > m->lim.delivery_limit) {
        m_emit(m, WR_QFX_DEAD, WR_QR_DELIVERY_LIMIT, e);
        return 0;
    }
    m_add(m, e);
    return 1;
}

static void m_putback(model_t *m, const ment_t *e)
{
    m->out--;
    m_add(m, e);
}

static void m_discard(model_t *m, const ment_t *e, int reason)
{
    m->out--;
    m_emit(m, WR_QFX_DEAD, reason, e);
}

/* Everything due by now, earliest deadline first, queue order among
 * equal deadlines. */
static void m_expire(model_t *m, int64_t now)
{
    for (;;) {
        size_t h = SIZE_MAX;
        for (size_t i = 0; i < m->n; i++) {
            const ment_t *e = &m->ready[i];
            if (e->exp == 0 || e->exp > now)
                continue;
            if (h == SIZE_MAX || e->exp < m->ready[h].exp ||
                (e->exp == m->ready[h].exp && m_before(m, e, &m->ready[h])))
                h = i;
        }
        if (h == SIZE_MAX)
            return;
        ment_t e = m_take(m, h);
        m_emit(m, WR_QFX_DEAD, WR_QR_EXPIRED, &e);
    }
}

static int m_enforce(model_t *m, size_t max)
{
    if (m->lim.overflow != WR_OVERFLOW_DROP_HEAD)
        return 0;
    while (m->n > 0 && m_over(m, 0, 0)) {
        if (max-- == 0)
            return 1;
        m_drop_head(m);
    }
    return 0;
}

static size_t m_purge(model_t *m, size_t max)
{
    size_t k = 0;
    while (k < max && m->n) {
        ment_t e = m_take(m, m_head(m));
        m_emit(m, WR_QFX_GONE, 0, &e);
        k++;
    }
    return k;
}

/* The earliest deadline of a ready entry, 0 for none. */
static int64_t m_earliest(const model_t *m)
{
    int64_t at = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->ready[i].exp && (at == 0 || m->ready[i].exp < at))
            at = m->ready[i].exp;
    return at;
}

/* ---- the model-based test ---- */

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
    OP_CHECKOUT,
    OP_SETTLE,
    OP_RETURN,
    OP_PUTBACK,
    OP_DISCARD,
    OP_EXPIRE,
    OP_FIRE,
    OP_PURGE,
    OP_LIMITS,
    OP_ARM,
    OP_N
};
static const char *const op_names[] = {"enqueue", "checkout",   "settle", "return",
                                       "putback", "discard",    "expire", "fire-timer",
                                       "purge",   "set-limits", "arm"};

typedef struct qcfg {
    const char *name;
    wr_qsm_limits_t lim;
    int ttl_pct;       /* % of messages with their own TTL ... */
    uint32_t max_ttl;  /* ... of 0..max_ttl ms */
    uint32_t max_size; /* body sizes 0..max_size */
    uint32_t prios;    /* priorities 0..prios-1 */
    uint32_t tick;     /* the clock advances 0..tick-1 ms a step */
    int steps;
    int w[OP_N]; /* how often each command comes */
    /* set-limits: the new limits (max_priority is the queue's anyway) */
    void (*vary)(uint64_t *rng, wr_qsm_limits_t *lim);
} qcfg_t;

/* An entry's fate as qsm reports it (the conservation check). */
enum { ST_NONE, ST_READY, ST_OUT, ST_LEFT, ST_SETTLED, ST_REFUSED };

/* An entry that is out: qsm's copy and the model's. */
typedef struct held {
    wr_qent_t e;
    ment_t m;
    int settle_only; /* see MODEL_REQUEUE_IMMEDIATE_PRIO */
} held_t;

/* An immediate entry of a priority queue that comes back jumps the queue
 * (the known bug of test_qsm_immediate_requeue_priority): until that is
 * fixed, the model test only settles or discards those, so that the bug
 * does not hide everything else.  Set to 1 once qsm.c is fixed. */
#define MODEL_REQUEUE_IMMEDIATE_PRIO 1

typedef struct run {
    const qcfg_t *cfg;
    uint64_t seed, rng;
    int step;
    const char *op;
    int64_t now;
    int64_t told; /* the deadline the owner's timer is set for, 0 if none */
    wr_qsm_t sm;
    wr_qfx_t fx;
    model_t m;
    held_t *held;
    size_t n_held, held_cap;
    uint8_t *st; /* by id */
    uint32_t n_ids;
    size_t st_cap;
} run_t;

static void mismatch(const run_t *r, int line, const char *what, long long a, long long b)
{
    printf("  qsm model [%s] seed %" PRIu64 " step %d (%s), line %d: %s (%lld vs %lld)\n",
           r->cfg->name, r->seed, r->step, r->op, line, what, a, b);
}

/* Inside the model test's helpers (which return 1 when all is well). */
#define MCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            mismatch(r, __LINE__, #cond, 0, 0);                                                    \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)
#define MCHECK_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            mismatch(r, __LINE__, #a " == " #b, a_, b_);                                           \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)

static int same_entry(const run_t *r, const wr_qent_t *q, const ment_t *m)
{
    MCHECK_EQ(id_of(q), m->id);
    MCHECK(q->msg == MSG(m->id));
    MCHECK_EQ(q->loc.seg, LOC_SEG);
    MCHECK_EQ(q->size, m->size);
    MCHECK_EQ(q->deliveries, m->deliveries);
    MCHECK_EQ(q->expires_at, m->exp);
    /* A priority queue's seq is its own key; elsewhere the arrival. */
    if (!r->m.lim.max_priority)
        MCHECK_EQ(q->seq, m->seq);
    return 1;
}

static void set_st(run_t *r, uint32_t id, uint8_t st)
{
    if (id >= r->st_cap) {
        size_t cap = r->st_cap ? r->st_cap * 2 : 1024;
        while (cap <= id)
            cap *= 2;
        r->st = realloc(r->st, cap);
        memset(r->st + r->st_cap, ST_NONE, cap - r->st_cap);
        r->st_cap = cap;
    }
    r->st[id] = st;
}

/* The command's effects: DEAD and GONE exactly as the model's, in order;
 * each TIMER re-sets the owner's timer.  Both lists are emptied. */
static int check_fx(run_t *r)
{
    size_t j = 0;
    for (size_t i = 0; i < r->fx.n; i++) {
        const wr_qfx_item_t *it = &r->fx.v[i];
        if (it->kind == WR_QFX_TIMER) {
            r->told = it->at;
            continue;
        }
        MCHECK(j < r->m.n_fx);
        const mfx_t *f = &r->m.fx[j++];
        MCHECK_EQ(it->kind, f->kind);
        if (it->kind == WR_QFX_DEAD)
            MCHECK_EQ(it->reason, f->reason);
        if (!same_entry(r, &it->e, &f->e))
            return 0;
        /* Each entry leaves once, from ready or out. */
        uint32_t id = id_of(&it->e);
        MCHECK(id < r->st_cap && (r->st[id] == ST_READY || r->st[id] == ST_OUT));
        r->st[id] = ST_LEFT;
    }
    MCHECK_EQ(j, r->m.n_fx);
    wr_qfx_reset(&r->fx);
    r->m.n_fx = 0;
    return 1;
}

static void hold(run_t *r, const wr_qent_t *e, const ment_t *m)
{
    if (r->n_held == r->held_cap) {
        r->held_cap = r->held_cap ? r->held_cap * 2 : 64;
        r->held = realloc(r->held, r->held_cap * sizeof *r->held);
    }
    r->held[r->n_held].e = *e;
    r->held[r->n_held].m = *m;
    r->held[r->n_held].settle_only = 0;
    r->n_held++;
}

static held_t unhold(run_t *r, size_t i)
{
    held_t h = r->held[i];
    r->held[i] = r->held[--r->n_held];
    return h;
}

typedef struct fe_ctx {
    run_t *r;
    size_t n;
    int ok;
} fe_ctx_t;

static void fe_check(void *ctx, wr_qent_t *e)
{
    fe_ctx_t *c = ctx;
    run_t *r = c->r;
    c->n++;
    uint32_t id = id_of(e);
    if (!c->ok)
        return;
    /* Ready, and not visited before (marked out while we walk). */
    if (id >= r->st_cap || r->st[id] != ST_READY) {
        mismatch(r, __LINE__, "foreach visits a ready entry once", id, 0);
        c->ok = 0;
        return;
    }
    r->st[id] = ST_NONE;
    for (size_t i = 0; i < r->m.n; i++)
        if (r->m.ready[i].id == id) {
            c->ok = same_entry(r, e, &r->m.ready[i]);
            return;
        }
    mismatch(r, __LINE__, "foreach entry ready in the model", id, 0);
    c->ok = 0;
}

/* The state after a command: counts, bytes, the owner's timer, and (every
 * so often: it is O(n)) every ready entry and the conservation of ids. */
static int check_state(run_t *r, int full)
{
    MCHECK_EQ(wr_qsm_ready(&r->sm), r->m.n);
    MCHECK_EQ(r->sm.ready_bytes, m_bytes(&r->m));
    MCHECK_EQ(r->sm.out, r->m.out);
    MCHECK_EQ(r->sm.out, r->n_held);
    /* The owner is never woken too late: while an entry can expire, its
     * timer is set, for no later than the earliest deadline (earlier is
     * allowed: items of entries that left are dropped lazily). */
    int64_t earliest = m_earliest(&r->m);
    if (earliest) {
        MCHECK(r->told != 0);
        MCHECK(r->told <= earliest);
    }
    if (!full)
        return 1;
    size_t n_ready = 0, n_out = 0;
    for (uint32_t id = 1; id <= r->n_ids; id++) {
        uint8_t s = id < r->st_cap ? r->st[id] : ST_NONE;
        MCHECK(s != ST_NONE);
        n_ready += s == ST_READY;
        n_out += s == ST_OUT;
    }
    MCHECK_EQ(n_ready, r->m.n);
    MCHECK_EQ(n_out, r->n_held);
    fe_ctx_t c = {r, 0, 1};
    wr_qsm_foreach(&r->sm, fe_check, &c);
    if (!c.ok)
        return 0;
    MCHECK_EQ(c.n, n_ready);
    for (size_t i = 0; i < r->m.n; i++) /* foreach marked them: back to ready */
        r->st[r->m.ready[i].id] = ST_READY;
    return 1;
}

static int do_enqueue(run_t *r)
{
    const qcfg_t *cfg = r->cfg;
    uint32_t id = ++r->n_ids;
    uint32_t size = rnd(&r->rng, cfg->max_size + 1);
    int64_t ttl =
        (int)rnd(&r->rng, 100) < cfg->ttl_pct ? (int64_t)rnd(&r->rng, cfg->max_ttl + 1) : -1;
    uint8_t prio = (uint8_t)rnd(&r->rng, cfg->prios);
    wr_qent_t e = ent(id, size);
    ment_t me;
    int got = wr_qsm_enqueue(&r->sm, &e, ttl, prio, r->now, &r->fx);
    int want = m_enqueue(&r->m, id, size, ttl, prio, r->now, &me);
    MCHECK_EQ(got, want);
    if (got == WR_QSM_REFUSED) {
        set_st(r, id, ST_REFUSED);
        MCHECK_EQ(r->fx.n, 0);
        return 1;
    }
    set_st(r, id, got == WR_QSM_IMMEDIATE ? ST_OUT : ST_READY);
    if (!check_fx(r))
        return 0;
    if (got == WR_QSM_IMMEDIATE) {
        if (!same_entry(r, &e, &me))
            return 0;
        /* As the broker does: delivered if a consumer takes it (then it
         * is out like any other), else discarded as expired. */
        if (wr_qsm_ready(&r->sm) == 0 && rnd(&r->rng, 2)) {
            hold(r, &e, &me);
            r->held[r->n_held - 1].settle_only =
                !MODEL_REQUEUE_IMMEDIATE_PRIO && r->m.lim.max_priority;
        } else {
            wr_qsm_discard(&r->sm, &e, WR_QR_EXPIRED, &r->fx);
            m_discard(&r->m, &me, WR_QR_EXPIRED);
            return check_fx(r);
        }
    }
    return 1;
}

static int do_checkout(run_t *r)
{
    wr_qent_t e;
    ment_t me;
    int got = wr_qsm_checkout(&r->sm, r->now, &e, &r->fx);
    int want = m_checkout(&r->m, r->now, &me);
    MCHECK_EQ(got, want);
    if (got) {
        if (!same_entry(r, &e, &me))
            return 0;
        MCHECK_EQ(r->st[me.id], ST_READY);
        r->st[me.id] = ST_OUT;
        hold(r, &e, &me);
    }
    return check_fx(r);
}

/* settle, return, putback or discard one of the entries that are out */
static int do_out(run_t *r, int op)
{
    if (r->n_held == 0)
        return 1;
    held_t h = unhold(r, rnd(&r->rng, (uint32_t)r->n_held));
    uint32_t id = h.m.id;
    if (h.settle_only && (op == OP_RETURN || op == OP_PUTBACK))
        op = OP_SETTLE;
    switch (op) {
    case OP_SETTLE:
        wr_qsm_settle(&r->sm);
        r->m.out--;
        r->st[id] = ST_SETTLED;
        break;
    case OP_RETURN: {
        int got = wr_qsm_return(&r->sm, &h.e, r->now, &r->fx);
        int want = m_return(&r->m, &h.m);
        MCHECK_EQ(got, want);
        if (got) {
            r->st[id] = ST_READY;
            if (!same_entry(r, &h.e, &h.m))
                return 0;
        }
        break;
    }
    case OP_PUTBACK:
        wr_qsm_putback(&r->sm, &h.e, r->now, &r->fx);
        m_putback(&r->m, &h.m);
        r->st[id] = ST_READY;
        break;
    default: {
        int reason = rnd(&r->rng, 2) ? WR_QR_REJECTED : WR_QR_EXPIRED;
        wr_qsm_discard(&r->sm, &h.e, reason, &r->fx);
        m_discard(&r->m, &h.m, reason);
        break;
    }
    }
    return check_fx(r);
}

/* The owner's timer fires (at a time of the test's choosing, or when it
 * was set for): it is not armed any more until a TIMER says so. */
static int do_expire(run_t *r)
{
    r->told = 0;
    wr_qsm_expire(&r->sm, r->now, &r->fx);
    m_expire(&r->m, r->now);
    return check_fx(r);
}

static int do_set_limits(run_t *r)
{
    wr_qsm_limits_t lim = r->cfg->lim;
    r->cfg->vary(&r->rng, &lim);
    wr_qsm_set_limits(&r->sm, &lim);
    uint8_t prio = r->m.lim.max_priority;
    r->m.lim = lim;
    r->m.lim.max_priority = prio;
    MCHECK_EQ(r->fx.n, 0);
    /* The owner applies a lowered limit in batches, as queue.c does. */
    size_t batch = 1 + rnd(&r->rng, 4);
    for (int i = 0;; i++) {
        MCHECK(i < 100000);
        int more = wr_qsm_enforce_limits(&r->sm, batch, &r->fx);
        MCHECK_EQ(more, m_enforce(&r->m, batch));
        if (!check_fx(r) || !check_state(r, 0))
            return 0;
        if (!more)
            return 1;
    }
}

static int step(run_t *r, int op)
{
    switch (op) {
    case OP_ENQ:
        return do_enqueue(r);
    case OP_CHECKOUT:
        return do_checkout(r);
    case OP_SETTLE:
    case OP_RETURN:
    case OP_PUTBACK:
    case OP_DISCARD:
        return do_out(r, op);
    case OP_EXPIRE:
        r->now += rnd(&r->rng, 3 * r->cfg->tick + 1);
        return do_expire(r);
    case OP_FIRE:
        if (r->told == 0)
            return 1;
        if (r->told > r->now)
            r->now = r->told;
        return do_expire(r);
    case OP_PURGE: {
        size_t max = 1 + rnd(&r->rng, 8);
        size_t got = wr_qsm_purge(&r->sm, max, &r->fx);
        MCHECK_EQ(got, m_purge(&r->m, max));
        return check_fx(r);
    }
    case OP_LIMITS:
        return r->cfg->vary ? do_set_limits(r) : 1;
    default:
        wr_qsm_arm(&r->sm, &r->fx);
        return check_fx(r);
    }
}

/* The end: everything out is settled or returned, the queue drained in
 * the model's order, and the owner's timer fired until nothing is left:
 * then every entry ever enqueued left exactly once. */
static int finish(run_t *r)
{
    r->op = "finish";
    while (r->n_held)
        if (!do_out(r, rnd(&r->rng, 2) ? OP_SETTLE : OP_RETURN) || !check_state(r, 0))
            return 0;
    r->op = "drain";
    for (;;) {
        int got = do_checkout(r);
        if (!got)
            return 0;
        if (r->n_held == 0)
            break;
        if (!do_out(r, OP_SETTLE) || !check_state(r, 0))
            return 0;
    }
    MCHECK_EQ(r->m.n, 0);
    r->op = "last timers";
    for (uint32_t i = 0; r->told; i++) {
        MCHECK(i <= r->n_ids + 16); /* each wake-up drops something */
        if (r->told > r->now)
            r->now = r->told;
        if (!do_expire(r))
            return 0;
    }
    if (!check_state(r, 1))
        return 0;
    for (uint32_t id = 1; id <= r->n_ids; id++)
        MCHECK(r->st[id] == ST_LEFT || r->st[id] == ST_SETTLED || r->st[id] == ST_REFUSED);
    return 1;
}

static int model_run(const qcfg_t *cfg, uint64_t seed)
{
    run_t run;
    run_t *r = &run;
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->seed = seed;
    r->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    r->now = T0;
    r->op = "init";
    wr_qsm_init(&r->sm, &cfg->lim);
    wr_qfx_init(&r->fx);
    r->m.lim = cfg->lim;
    int total = 0;
    for (int i = 0; i < OP_N; i++)
        total += cfg->w[i];
    int ok = 1;
    for (r->step = 0; ok && r->step < cfg->steps; r->step++) {
        r->now += rnd(&r->rng, cfg->tick);
        int pick = (int)rnd(&r->rng, (uint32_t)total), op = 0;
        while (pick >= cfg->w[op])
            pick -= cfg->w[op++];
        r->op = op_names[op];
        ok = step(r, op) && check_state(r, r->step % 16 == 0);
    }
    if (ok)
        ok = finish(r);
    wr_qsm_free(&r->sm);
    wr_qfx_free(&r->fx);
    free(r->m.ready);
    free(r->m.fx);
    free(r->held);
    free(r->st);
    return ok;
}

/* ---- the configurations ---- */

#define LIM(ttl, len, bytes, dl, ovf, prio)                                                        \
    {                                                                                              \
        (ttl), (len), (bytes), (dl), (ovf), (prio)                                                 \
    }
/*                       enq  co settle ret put disc exp fire purge lim arm */
#define W_DEFAULT                                                                                  \
    {                                                                                              \
        30, 20, 10, 8, 4, 3, 3, 4, 1, 2, 2                                                         \
    }
#define W_DEEP                                                                                     \
    {                                                                                              \
        60, 14, 8, 5, 2, 2, 2, 4, 0, 1, 2                                                          \
    }
#define W_RETRY                                                                                    \
    {                                                                                              \
        25, 25, 4, 25, 4, 2, 2, 3, 1, 2, 2                                                         \
    }

static void vary_ttl(uint64_t *rng, wr_qsm_limits_t *l)
{
    static const int64_t v[] = {-1, 0, 20, 40, 40, 80};
    l->message_ttl = v[rnd(rng, 6)];
}

static void vary_len(uint64_t *rng, wr_qsm_limits_t *l)
{
    static const int64_t v[] = {-1, 0, 4, 16, 16, 64};
    l->max_length = v[rnd(rng, 6)];
}

static void vary_bytes(uint64_t *rng, wr_qsm_limits_t *l)
{
    static const int64_t v[] = {-1, 300, 3000, 3000, 10000};
    static const int ovf[] = {WR_OVERFLOW_REJECT_PUBLISH, WR_OVERFLOW_REJECT_PUBLISH_DLX,
                              WR_OVERFLOW_DROP_HEAD};
    l->max_length_bytes = v[rnd(rng, 5)];
    l->overflow = ovf[rnd(rng, 3)];
}

static void vary_dl(uint64_t *rng, wr_qsm_limits_t *l)
{
    static const int64_t v[] = {-1, 0, 1, 2, 5};
    l->delivery_limit = v[rnd(rng, 5)];
}

static void vary_all(uint64_t *rng, wr_qsm_limits_t *l)
{
    if (rnd(rng, 2))
        vary_ttl(rng, l);
    if (rnd(rng, 2))
        vary_len(rng, l);
    if (rnd(rng, 2))
        vary_bytes(rng, l);
    if (rnd(rng, 2))
        vary_dl(rng, l);
    l->max_priority = (uint8_t)rnd(rng, 10); /* ignored: the queue's own stays */
}

static const qcfg_t qcfgs[] = {
    {"plain", LIM(-1, -1, -1, 0, WR_OVERFLOW_DROP_HEAD, 0), 0, 0, 100, 1, 3, 3000, W_DEFAULT, NULL},
    {"ttl", LIM(40, -1, -1, 0, WR_OVERFLOW_DROP_HEAD, 0), 30, 60, 100, 1, 3, 3000, W_DEFAULT,
     vary_ttl},
    {"max-length drop-head", LIM(-1, 16, -1, 0, WR_OVERFLOW_DROP_HEAD, 0), 20, 50, 100, 1, 3, 3000,
     W_DEFAULT, vary_len},
    {"max-length-bytes reject-publish", LIM(-1, -1, 3000, 0, WR_OVERFLOW_REJECT_PUBLISH, 0), 10, 50,
     400, 1, 3, 3000, W_DEFAULT, vary_bytes},
    {"priority", LIM(-1, 32, -1, 0, WR_OVERFLOW_DROP_HEAD, 4), 25, 50, 100, 7, 3, 3000, W_DEFAULT,
     vary_len},
    {"delivery limit", LIM(-1, -1, -1, 2, WR_OVERFLOW_DROP_HEAD, 0), 10, 80, 100, 1, 3, 3000,
     W_RETRY, vary_dl},
    {"everything", LIM(50, 40, 8000, 3, WR_OVERFLOW_DROP_HEAD, 3), 30, 70, 400, 5, 3, 3000,
     W_DEFAULT, vary_all},
    /* A backlog of thousands: the ring spans several blocks, expiry finds
     * entries deep inside it, the expiry heap is compacted. */
    {"deep ttl", LIM(-1, -1, -1, 0, WR_OVERFLOW_DROP_HEAD, 0), 60, 3000, 100, 1, 2, 8000, W_DEEP,
     NULL},
    {"deep priority", LIM(2000, -1, -1, 4, WR_OVERFLOW_DROP_HEAD, 9), 40, 3000, 100, 12, 2, 6000,
     W_DEEP, NULL},
};

static const uint64_t seeds[] = {1, 2, 3, 20240607, 0xDEADBEEF};

static void model_cfg(size_t k)
{
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        CHECK(model_run(&qcfgs[k], seeds[s]));
}

static void test_qsm_model_plain(void)
{
    model_cfg(0);
}
static void test_qsm_model_ttl(void)
{
    model_cfg(1);
}
static void test_qsm_model_drop_head(void)
{
    model_cfg(2);
}
static void test_qsm_model_bytes_reject(void)
{
    model_cfg(3);
}
static void test_qsm_model_priority(void)
{
    model_cfg(4);
}
static void test_qsm_model_delivery_limit(void)
{
    model_cfg(5);
}
static void test_qsm_model_everything(void)
{
    model_cfg(6);
}
static void test_qsm_model_deep_ttl(void)
{
    model_cfg(7);
}
static void test_qsm_model_deep_priority(void)
{
    model_cfg(8);
}

WR_SUITE(qsm)
{
    RUN(test_qsm_fifo);
    RUN(test_qsm_requeue_position);
    RUN(test_qsm_putback_not_counted);
    RUN(test_qsm_delivery_limit);
    RUN(test_qsm_discard);
    RUN(test_qsm_ttl_queue_and_message);
    RUN(test_qsm_expire_middle);
    RUN(test_qsm_expire_many_blocks);
    RUN(test_qsm_expire_in_heap);
    RUN(test_qsm_expire_boundary);
    RUN(test_qsm_timer);
    RUN(test_qsm_arm_after_checkout);
    RUN(test_qsm_ttl_zero_immediate);
    RUN(test_qsm_immediate_requeue_priority);
    RUN(test_qsm_max_length_drop_head);
    RUN(test_qsm_reject_publish);
    RUN(test_qsm_enforce_limits);
    RUN(test_qsm_priority);
    RUN(test_qsm_priority_ttl);
    RUN(test_qsm_purge);
    RUN(test_qsm_recover);
    RUN(test_qsm_recover_random);
    RUN(test_qsm_reprioritise);
    RUN(test_qsm_reprioritise_out_of_order);
    RUN(test_qsm_restamp);
    RUN(test_qsm_restamp_out_of_order);
    RUN(test_qsm_foreach);
    RUN(test_qsm_requeue_loop_expiry_items);
    RUN(test_qsm_model_plain);
    RUN(test_qsm_model_ttl);
    RUN(test_qsm_model_drop_head);
    RUN(test_qsm_model_bytes_reject);
    RUN(test_qsm_model_priority);
    RUN(test_qsm_model_delivery_limit);
    RUN(test_qsm_model_everything);
    RUN(test_qsm_model_deep_ttl);
    RUN(test_qsm_model_deep_priority);
}
