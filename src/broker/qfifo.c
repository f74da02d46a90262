/*
 * qfifo.c - the replicated queue's state machine (see qfifo.h).
 *
 * Everything here must give the same result on every member for the same
 * commands: no clock, no I/O, no pointer values or hash seeds that differ
 * between processes (the checkout table hashes seq with a fixed
 * multiplier, so its layout, and with it any walk over it, is the same on
 * every member).
 */
#include "broker/qfifo.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* ---- checked-out entries: open addressing on seq ---- */

static size_t out_slot(const wr_qfifo_t *f, uint64_t seq)
{
    return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 20) & (f->out_cap - 1);
}

static void out_put(wr_qfifo_t *f, uint64_t cid, const wr_qent_t *e);

static void out_grow(wr_qfifo_t *f)
{
    wr_qfifo_out_t *old = f->out;
    uint8_t *old_used = f->used;
    size_t old_cap = f->out_cap;
    f->out_cap = old_cap ? old_cap * 2 : 64;
    f->out = wr_xcalloc(f->out_cap, sizeof *f->out);
    f->used = wr_xcalloc(f->out_cap, 1);
    f->out_count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old_used[i])
            out_put(f, old[i].cid, &old[i].e);
    free(old);
    free(old_used);
}

static void out_put(wr_qfifo_t *f, uint64_t cid, const wr_qent_t *e)
{
    if ((f->out_count + 1) * 2 > f->out_cap)
        out_grow(f);
    size_t s = out_slot(f, e->seq);
    while (f->used[s])
        s = (s + 1) & (f->out_cap - 1);
    f->used[s] = 1;
    f->out[s].cid = cid;
    f->out[s].e = *e;
    f->out_count++;
}

static size_t out_find(const wr_qfifo_t *f, uint64_t seq)
{
    if (f->out_count == 0)
        return SIZE_MAX;
    size_t s = out_slot(f, seq);
    while (f->used[s]) {
        if (f->out[s].e.seq == seq)
            return s;
        s = (s + 1) & (f->out_cap - 1);
    }
    return SIZE_MAX;
}

/* Removes slot s (backward-shift deletion, so no tombstones). */
static void out_del(wr_qfifo_t *f, size_t s)
{
    size_t mask = f->out_cap - 1;
    f->out_count--;
    for (size_t j = (s + 1) & mask;; j = (j + 1) & mask) {
        if (!f->used[j])
            break;
        size_t home = out_slot(f, f->out[j].e.seq);
        if (((j - home) & mask) >= ((j - s) & mask)) {
            f->out[s] = f->out[j];
            s = j;
        }
    }
    f->used[s] = 0;
}

const wr_qfifo_out_t *wr_qfifo_held(const wr_qfifo_t *f, uint64_t seq)
{
    size_t s = out_find(f, seq);
    return s == SIZE_MAX ? NULL : &f->out[s];
}

/* ---- consumers ---- */

static size_t cons_index(const wr_qfifo_t *f, uint64_t cid)
{
    for (size_t i = 0; i < f->n_cons; i++)
        if (f->cons[i].cid == cid)
            return i;
    return SIZE_MAX;
}

const wr_qfifo_consumer_t *wr_qfifo_consumer(const wr_qfifo_t *f, uint64_t cid)
{
    size_t i = cons_index(f, cid);
    return i == SIZE_MAX ? NULL : &f->cons[i];
}

static int has_credit(const wr_qfifo_consumer_t *c)
{
    return c->prefetch == 0 || c->n_out < c->prefetch;
}

/* The consumer to serve next: with single active consumer the first one;
 * otherwise, among those with credit, the highest priority, round-robin
 * from rr.  Returns its index or SIZE_MAX. */
static size_t pick(wr_qfifo_t *f)
{
    if (f->n_cons == 0)
        return SIZE_MAX;
    if (f->single_active)
        return has_credit(&f->cons[0]) ? 0 : SIZE_MAX;
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < f->n_cons; k++) {
        size_t i = (f->rr + k) % f->n_cons;
        if (has_credit(&f->cons[i]) &&
            (best == SIZE_MAX || f->cons[i].priority > f->cons[best].priority))
            best = i;
    }
    return best;
}

/* Hands e to consumer i: a DELIVER effect, and the entry is held by it
 * (or settled at once for a no-ack consumer: reason 1). */
static void deliver(wr_qfifo_t *f, size_t i, const wr_qent_t *e, wr_qfx_t *fx)
{
    wr_qfifo_consumer_t *c = &f->cons[i];
    f->rr = (i + 1) % f->n_cons;
    wr_qfx_item_t *it = wr_qfx_add(fx, WR_QFX_DELIVER);
    it->to = c->cid;
    it->e = *e;
    if (c->no_ack) {
        it->reason = 1;
        wr_qsm_settle(&f->sm);
        return;
    }
    it->reason = 0;
    c->n_out++;
    out_put(f, c->cid, e);
}

static void dispatch(wr_qfifo_t *f, int64_t now, wr_qfx_t *fx)
{
    while (f->n_cons && wr_qsm_ready(&f->sm)) {
        size_t i = pick(f);
        if (i == SIZE_MAX)
            break;
        wr_qent_t e;
        if (!wr_qsm_checkout(&f->sm, now, &e, fx))
            break;
        deliver(f, i, &e, fx);
    }
}

/* ---- commands ---- */

void wr_qfifo_init(wr_qfifo_t *f, const wr_qsm_limits_t *lim, int single_active)
{
    memset(f, 0, sizeof *f);
    wr_qsm_init(&f->sm, lim);
    f->single_active = (uint8_t)(single_active != 0);
}

void wr_qfifo_free(wr_qfifo_t *f)
{
    wr_qsm_free(&f->sm);
    free(f->cons);
    free(f->out);
    free(f->used);
    memset(f, 0, sizeof *f);
}

int wr_qfifo_enqueue(wr_qfifo_t *f, wr_qent_t *e, int64_t msg_ttl, uint8_t priority, int64_t now,
                     wr_qfx_t *fx)
{
    int r = wr_qsm_enqueue(&f->sm, e, msg_ttl, priority, now, fx);
    if (r == WR_QSM_IMMEDIATE) {
        size_t i = wr_qsm_ready(&f->sm) == 0 ? pick(f) : SIZE_MAX;
        if (i != SIZE_MAX)
            deliver(f, i, e, fx);
        else
            wr_qsm_discard(&f->sm, e, WR_QR_EXPIRED, fx);
    } else if (r == WR_QSM_QUEUED) {
        dispatch(f, now, fx);
    }
    return r;
}

void wr_qfifo_attach(wr_qfifo_t *f, uint64_t cid, uint32_t prefetch, int32_t priority, int no_ack,
                     int64_t now, wr_qfx_t *fx)
{
    size_t i = cons_index(f, cid);
    if (i == SIZE_MAX) {
        if (f->n_cons == f->cap_cons) {
            f->cap_cons = f->cap_cons ? f->cap_cons * 2 : 4;
            f->cons = wr_xrealloc(f->cons, f->cap_cons * sizeof *f->cons);
        }
        i = f->n_cons++;
        f->cons[i].cid = cid;
        f->cons[i].n_out = 0;
    }
    f->cons[i].prefetch = prefetch;
    f->cons[i].priority = priority;
    f->cons[i].no_ack = (uint8_t)(no_ack != 0);
    dispatch(f, now, fx);
}

/* Removes the entry held at slot s for the holder, fixing its credit. */
static wr_qent_t take_held(wr_qfifo_t *f, size_t s)
{
    wr_qent_t e = f->out[s].e;
    size_t i = cons_index(f, f->out[s].cid);
    if (i != SIZE_MAX && f->cons[i].n_out)
        f->cons[i].n_out--;
    out_del(f, s);
    return e;
}

static int seq_cmp(const void *a, const void *b)
{
    const wr_qent_t *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

void wr_qfifo_return_all(wr_qfifo_t *f, uint64_t cid, int64_t now, wr_qfx_t *fx)
{
    /* Taken out first, then returned in sequence order: the table's layout
     * differs between a member that applied the whole history and one
     * restored from a snapshot, so a walk in slot order would make their
     * effects (delivery-limit dead-letterings) come in different orders.
     * Backward-shift deletion moves later slots into the one just emptied,
     * so the walk stays on a slot until it holds someone else's entry. */
    wr_qent_t *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t s = 0; s < f->out_cap;) {
        if (f->used[s] && f->out[s].cid == cid) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                v = wr_xrealloc(v, cap * sizeof *v);
            }
            v[n++] = take_held(f, s);
            continue;
        }
        s++;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, seq_cmp);
    for (size_t i = 0; i < n; i++)
        wr_qsm_return(&f->sm, &v[i], now, fx);
    free(v);
    dispatch(f, now, fx);
}

void wr_qfifo_detach(wr_qfifo_t *f, uint64_t cid, int64_t now, wr_qfx_t *fx)
{
    size_t i = cons_index(f, cid);
    if (i == SIZE_MAX)
        return;
    memmove(&f->cons[i], &f->cons[i + 1], (f->n_cons - i - 1) * sizeof *f->cons);
    f->n_cons--;
    if (f->rr > i)
        f->rr--;
    if (f->rr >= f->n_cons)
        f->rr = 0;
    dispatch(f, now, fx);
}

/* The slot of seq if cid holds it, else SIZE_MAX. */
static size_t held_by(const wr_qfifo_t *f, uint64_t cid, uint64_t seq)
{
    size_t s = out_find(f, seq);
    return s != SIZE_MAX && f->out[s].cid == cid ? s : SIZE_MAX;
}

int wr_qfifo_settle(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int64_t now, wr_qfx_t *fx)
{
    size_t s = held_by(f, cid, seq);
    if (s == SIZE_MAX)
        return 0;
    wr_qent_t e = take_held(f, s);
    wr_qsm_settle(&f->sm);
    wr_qfx_add(fx, WR_QFX_GONE)->e = e;
    dispatch(f, now, fx);
    return 1;
}

int wr_qfifo_return(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int to_back, int64_t now,
                    wr_qfx_t *fx)
{
    size_t s = held_by(f, cid, seq);
    if (s == SIZE_MAX)
        return 0;
    wr_qent_t e = take_held(f, s);
    if (to_back && !f->sm.lim.max_priority)
        wr_qsm_return_back(&f->sm, &e, now, fx);
    else
        wr_qsm_return(&f->sm, &e, now, fx);
    dispatch(f, now, fx);
    return 1;
}

int wr_qfifo_discard(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int64_t now, wr_qfx_t *fx)
{
    size_t s = held_by(f, cid, seq);
    if (s == SIZE_MAX)
        return 0;
    wr_qent_t e = take_held(f, s);
    wr_qsm_discard(&f->sm, &e, WR_QR_REJECTED, fx);
    dispatch(f, now, fx);
    return 1;
}

void wr_qfifo_get(wr_qfifo_t *f, uint64_t gid, int no_ack, int64_t now, wr_qfx_t *fx)
{
    wr_qent_t e;
    int got = wr_qsm_checkout(&f->sm, now, &e, fx);
    wr_qfx_item_t *it = wr_qfx_add(fx, WR_QFX_GET);
    it->to = gid;
    if (!got) {
        it->reason = 1;
        memset(&it->e, 0, sizeof it->e);
        return;
    }
    it->e = e;
    if (no_ack) {
        it->reason = 2;
        wr_qsm_settle(&f->sm);
    } else {
        it->reason = 0;
        out_put(f, gid, &e);
    }
}

void wr_qfifo_hold(wr_qfifo_t *f, uint64_t cid, const wr_qent_t *e)
{
    out_put(f, cid, e);
    f->sm.out++;
    size_t i = cons_index(f, cid);
    if (i != SIZE_MAX)
        f->cons[i].n_out++;
}

void wr_qfifo_tick(wr_qfifo_t *f, int64_t now, wr_qfx_t *fx)
{
    wr_qsm_expire(&f->sm, now, fx);
}

size_t wr_qfifo_purge(wr_qfifo_t *f, int64_t now, wr_qfx_t *fx)
{
    (void)now;
    size_t n = 0, k;
    while ((k = wr_qsm_purge(&f->sm, SIZE_MAX, fx)) > 0)
        n += k;
    return n;
}
