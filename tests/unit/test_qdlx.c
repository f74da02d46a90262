/*
 * test_qdlx.c - dead letters kept until confirmed (broker/qdlx.h).
 *
 * Focused tests of ids, removal out of order, the leader's scan, and a
 * randomised test against a naive model (an array indexed by id): after
 * every step the live count, the bytes, find() of every id ever given,
 * the order next_ready() walks in, and a snapshot-style copy (restore of
 * the live entries in order) agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/qdlx.h"
#include "test.h"

#define MSG(id) ((wr_msg_t *)(uintptr_t)((uintptr_t)(id)*16))

static wr_qent_t ent(uint32_t id, uint32_t size)
{
    wr_qent_t e = {MSG(id), id, 0, {0, id}, 0, size};
    return e;
}

static int released;
static void count_release(wr_qent_t *e)
{
    (void)e;
    released++;
}

static void test_qdlx_ids_and_remove(void)
{
    wr_qdlx_t d;
    wr_qdlx_init(&d);
    for (uint32_t i = 1; i <= 5; i++) {
        wr_qent_t e = ent(i, 10 * i);
        CHECK_EQ(wr_qdlx_add(&d, &e, WR_QR_REJECTED), i);
    }
    CHECK_EQ(d.live, 5);
    CHECK_EQ(d.bytes, 150);
    wr_qent_t out;
    CHECK_EQ(wr_qdlx_remove(&d, 3, &out), 1);
    CHECK(out.msg == MSG(3));
    CHECK_EQ(wr_qdlx_remove(&d, 3, &out), 0); /* settled twice: no-op */
    CHECK_EQ(wr_qdlx_remove(&d, 99, &out), 0);
    CHECK(wr_qdlx_find(&d, 3) == NULL);
    CHECK(wr_qdlx_find(&d, 4) != NULL);
    CHECK_EQ(d.live, 4);
    CHECK_EQ(d.bytes, 120);
    /* The head passes holes. */
    CHECK_EQ(wr_qdlx_remove(&d, 1, &out), 1);
    CHECK_EQ(wr_qdlx_remove(&d, 2, &out), 1);
    CHECK_EQ(d.v[d.head].id, 4);
    released = 0;
    wr_qdlx_free(&d, count_release);
    CHECK_EQ(released, 2);
    CHECK_EQ(d.live, 0);
    CHECK_EQ(d.next_id, 1);
}

static void test_qdlx_scan(void)
{
    wr_qdlx_t d;
    wr_qdlx_init(&d);
    for (uint32_t i = 1; i <= 4; i++) {
        wr_qent_t e = ent(i, 1);
        wr_qdlx_add(&d, &e, WR_QR_EXPIRED);
    }
    /* Publish all: each comes once. */
    for (uint64_t id = 1; id <= 4; id++) {
        wr_qdlx_ent_t *x = wr_qdlx_next_ready(&d);
        CHECK(x != NULL);
        CHECK_EQ(x->id, id);
        x->state = id == 2 ? WR_QDLX_RETRY : WR_QDLX_SENT;
    }
    CHECK(wr_qdlx_next_ready(&d) == NULL);
    /* A failed confirm puts one back: the scan returns to it. */
    wr_qdlx_unsend(&d, wr_qdlx_find(&d, 3));
    wr_qdlx_ent_t *x = wr_qdlx_next_ready(&d);
    CHECK(x != NULL && x->id == 3);
    x->state = WR_QDLX_SENT;
    CHECK(wr_qdlx_next_ready(&d) == NULL);
    /* The retry: only the RETRY one is ready again. */
    wr_qdlx_reset(&d, 1);
    x = wr_qdlx_next_ready(&d);
    CHECK(x != NULL && x->id == 2);
    x->state = WR_QDLX_SENT;
    CHECK(wr_qdlx_next_ready(&d) == NULL);
    /* A new leader: all of them. */
    wr_qdlx_reset(&d, 0);
    for (uint64_t id = 1; id <= 4; id++) {
        x = wr_qdlx_next_ready(&d);
        CHECK(x != NULL && x->id == id);
        x->state = WR_QDLX_SENT;
    }
    /* Emptied, then reused from index 0: the scan must see new entries. */
    wr_qent_t out;
    for (uint64_t id = 1; id <= 4; id++)
        CHECK_EQ(wr_qdlx_remove(&d, id, &out), 1);
    wr_qent_t e = ent(5, 1);
    CHECK_EQ(wr_qdlx_add(&d, &e, WR_QR_EXPIRED), 5);
    x = wr_qdlx_next_ready(&d);
    CHECK(x != NULL && x->id == 5);
    wr_qdlx_free(&d, NULL);
}

/* The model: by id, live or not, the entry's size and state. */
#define MAXID 4000
typedef struct {
    uint8_t live, state;
    uint32_t size;
} model_t;

static int check_against(wr_qdlx_t *d, const model_t *m, uint64_t next_id)
{
    size_t live = 0;
    uint64_t bytes = 0;
    for (uint64_t id = 1; id < next_id; id++) {
        wr_qdlx_ent_t *x = wr_qdlx_find(d, id);
        if (m[id].live != (x != NULL))
            return 0;
        if (x && (x->e.msg != MSG(id) || x->e.size != m[id].size || x->state != m[id].state))
            return 0;
        live += m[id].live;
        bytes += m[id].live ? m[id].size : 0;
    }
    return d->live == live && d->bytes == bytes && d->next_id == next_id;
}

static void test_qdlx_model(void)
{
    static model_t m[MAXID + 1];
    for (unsigned seed = 1; seed <= 20; seed++) {
        memset(m, 0, sizeof m);
        srand(seed);
        wr_qdlx_t d;
        wr_qdlx_init(&d);
        uint64_t next = 1;
        for (int step = 0; step < 3000 && next < MAXID; step++) {
            int op = rand() % 10;
            if (op < 4) {
                uint32_t size = (uint32_t)(rand() % 100);
                wr_qent_t e = ent((uint32_t)next, size);
                CHECK_EQ(wr_qdlx_add(&d, &e, rand() % 4), next);
                m[next] = (model_t){1, WR_QDLX_READY, size};
                next++;
            } else if (op < 7) {
                /* Settle a random id (live or not: settles can repeat). */
                uint64_t id = 1 + (uint64_t)rand() % next;
                wr_qent_t out;
                int was = id < next && m[id].live;
                CHECK_EQ(wr_qdlx_remove(&d, id, &out), was);
                if (was) {
                    CHECK(out.msg == MSG(id));
                    m[id].live = 0;
                }
            } else if (op < 9) {
                /* The leader publishes the next ready one: the lowest
                 * live READY id. */
                uint64_t want = 0;
                for (uint64_t id = 1; id < next && !want; id++)
                    if (m[id].live && m[id].state == WR_QDLX_READY)
                        want = id;
                wr_qdlx_ent_t *x = wr_qdlx_next_ready(&d);
                CHECK_EQ(x ? x->id : 0, want);
                if (x) {
                    x->state = (uint8_t)(rand() % 3 ? WR_QDLX_SENT : WR_QDLX_RETRY);
                    m[want].state = x->state;
                }
            } else if (rand() % 2) {
                /* A failed confirm of a random sent one. */
                uint64_t id = 1 + (uint64_t)rand() % next;
                wr_qdlx_ent_t *x = id < next ? wr_qdlx_find(&d, id) : NULL;
                if (x && x->state == WR_QDLX_SENT) {
                    wr_qdlx_unsend(&d, x);
                    m[id].state = WR_QDLX_READY;
                }
            } else {
                int only_retry = rand() % 2;
                wr_qdlx_reset(&d, only_retry);
                for (uint64_t id = 1; id < next; id++)
                    if (!only_retry || m[id].state == WR_QDLX_RETRY)
                        m[id].state = WR_QDLX_READY;
            }
            CHECK(check_against(&d, m, next));
        }
        /* A snapshot copy: the live entries restored in order. */
        wr_qdlx_t c;
        wr_qdlx_init(&c);
        for (size_t i = d.head; i < d.n; i++)
            if (d.v[i].live)
                wr_qdlx_restore(&c, d.v[i].id, &d.v[i].e, d.v[i].reason);
        c.next_id = d.next_id;
        for (uint64_t id = 1; id < next; id++)
            m[id].state = WR_QDLX_READY;
        CHECK(check_against(&c, m, next));
        wr_qdlx_free(&c, NULL);
        wr_qdlx_free(&d, NULL);
    }
}

WR_SUITE(qdlx)
{
    RUN(test_qdlx_ids_and_remove);
    RUN(test_qdlx_scan);
    RUN(test_qdlx_model);
}
