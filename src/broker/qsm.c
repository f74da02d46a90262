/*
 * qsm.c - the queue state machine (see qsm.h for its design, effects and
 * invariants).  Nothing here reads a clock, touches a file or a socket, or
 * calls back into the broker: the only way out is the effect list.
 */
#include "broker/qsm.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

uint64_t wr_qsm_block_bytes;
uint64_t wr_qsm_mem_peak;

static const char *const reason_names[] = {"expired", "maxlen", "rejected", "delivery_limit"};

const char *wr_qsm_reason_name(int reason)
{
    return reason >= 0 && reason < 4 ? reason_names[reason] : "unknown";
}

/* ---- effects ---- */

void wr_qfx_free(wr_qfx_t *fx)
{
    if (fx->v != fx->inline_v)
        free(fx->v);
    wr_qfx_init(fx);
}

wr_qfx_item_t *wr_qfx_add(wr_qfx_t *fx, int kind)
{
    if (fx->n == fx->cap) {
        size_t cap = fx->cap * 2;
        wr_qfx_item_t *v = wr_xmalloc(cap * sizeof *v);
        memcpy(v, fx->v, fx->n * sizeof *v);
        if (fx->v != fx->inline_v)
            free(fx->v);
        fx->v = v;
        fx->cap = cap;
    }
    wr_qfx_item_t *it = &fx->v[fx->n++];
    it->kind = (uint8_t)kind;
    return it;
}

static void fx_dead(wr_qfx_t *fx, const wr_qent_t *e, int reason)
{
    wr_qfx_item_t *it = wr_qfx_add(fx, WR_QFX_DEAD);
    it->reason = (uint8_t)reason;
    it->e = *e;
}

static void fx_gone(wr_qfx_t *fx, const wr_qent_t *e)
{
    wr_qfx_add(fx, WR_QFX_GONE)->e = *e;
}

/* ---- ready storage: ring + heap ---- */

/* The ring is a chain of fixed blocks rather than one array that doubles:
 * a backlog of millions then costs its 40 bytes per entry and no more (no
 * half-empty doubled array, no copy on growth), and a drained queue gives
 * its blocks back. */

static wr_qblock_t *block_new(wr_qsm_t *sm)
{
    wr_qblock_t *b = sm->spare;
    if (b) {
        sm->spare = NULL;
    } else {
        b = wr_xmalloc(sizeof *b);
        wr_qsm_block_bytes += sizeof *b;
        if (wr_qsm_block_bytes + wr_msg_mem_bytes > wr_qsm_mem_peak)
            wr_qsm_mem_peak = wr_qsm_block_bytes + wr_msg_mem_bytes;
    }
    b->next = NULL;
    return b;
}

/* The array of block pointers lets an expiring entry in the middle of the
 * ring be found by binary search; it changes once per block, not per
 * message. */
static void blks_push(wr_qsm_t *sm, wr_qblock_t *b)
{
    if (sm->blk_n == sm->blk_cap) {
        size_t cap = sm->blk_cap ? sm->blk_cap * 2 : 8;
        wr_qblock_t **a = wr_xmalloc(cap * sizeof *a);
        for (size_t i = 0; i < sm->blk_n; i++)
            a[i] = sm->blks[(sm->blk_head + i) % sm->blk_cap];
        free(sm->blks);
        sm->blks = a;
        sm->blk_cap = cap;
        sm->blk_head = 0;
    }
    sm->blks[(sm->blk_head + sm->blk_n++) % sm->blk_cap] = b;
}

static void blks_pop(wr_qsm_t *sm)
{
    sm->blk_head = (sm->blk_head + 1) % sm->blk_cap;
    sm->blk_n--;
}

static wr_qblock_t *blk_at(const wr_qsm_t *sm, size_t i)
{
    return sm->blks[(sm->blk_head + i) % sm->blk_cap];
}

static void ring_push(wr_qsm_t *sm, const wr_qent_t *e)
{
    if (sm->tail_blk == NULL) {
        sm->head_blk = sm->tail_blk = block_new(sm);
        sm->head_i = sm->tail_i = 0;
        blks_push(sm, sm->tail_blk);
    } else if (sm->tail_i == WR_QBLOCK) {
        wr_qblock_t *b = block_new(sm);
        sm->tail_blk->next = b;
        sm->tail_blk = b;
        sm->tail_i = 0;
        blks_push(sm, b);
    }
    sm->tail_blk->e[sm->tail_i++] = *e;
    sm->ring_count++;
}

void wr_qsm__ring_push(wr_qsm_t *sm, const wr_qent_t *e)
{
    ring_push(sm, e);
}

static wr_qent_t *ring_front(wr_qsm_t *sm)
{
    return sm->ring_count ? &sm->head_blk->e[sm->head_i] : NULL;
}

static void ring_pop(wr_qsm_t *sm)
{
    sm->ring_count--;
    if (sm->ring_count == 0) {
        /* Empty: keep one block for the next message, free the rest. */
        while (sm->head_blk != sm->tail_blk) {
            wr_qblock_t *b = sm->head_blk;
            sm->head_blk = b->next;
            free(b);
            wr_qsm_block_bytes -= sizeof *b;
            blks_pop(sm);
        }
        sm->head_i = sm->tail_i = 0;
        return;
    }
    if (++sm->head_i == WR_QBLOCK) {
        wr_qblock_t *b = sm->head_blk;
        sm->head_blk = b->next;
        sm->head_i = 0;
        blks_pop(sm);
        if (sm->spare == NULL) {
            sm->spare = b;
        } else {
            free(b);
            wr_qsm_block_bytes -= sizeof *b;
        }
    }
}

void wr_qsm__ring_pop(wr_qsm_t *sm)
{
    ring_pop(sm);
}

static void ring_free(wr_qsm_t *sm)
{
    while (sm->head_blk) {
        wr_qblock_t *b = sm->head_blk;
        sm->head_blk = b->next;
        free(b);
        wr_qsm_block_bytes -= sizeof *b;
    }
    if (sm->spare)
        wr_qsm_block_bytes -= sizeof *sm->spare;
    free(sm->spare);
    sm->tail_blk = sm->spare = NULL;
    sm->blk_head = sm->blk_n = 0;
}

/* Finds the ready entry with key seq in the ring, or NULL. */
static wr_qent_t *ring_find(wr_qsm_t *sm, uint64_t seq)
{
    if (sm->ring_count == 0)
        return NULL;
    /* The last block whose first entry is <= seq (the head block's consumed
     * slots still hold their old, smaller keys, so the order holds). */
    size_t lo = 0, hi = sm->blk_n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (blk_at(sm, mid)->e[0].seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    wr_qblock_t *b = blk_at(sm, lo);
    size_t a = b == sm->head_blk ? sm->head_i : 0;
    size_t z = b == sm->tail_blk ? sm->tail_i : WR_QBLOCK;
    while (a < z) {
        size_t mid = a + (z - a) / 2;
        if (b->e[mid].seq < seq)
            a = mid + 1;
        else
            z = mid;
    }
    size_t end = b == sm->tail_blk ? sm->tail_i : WR_QBLOCK;
    return a < end && b->e[a].seq == seq ? &b->e[a] : NULL;
}

/* ---- heap positions of entries with a deadline ---- */

/* An open-addressing hash (linear probing, backward-shift deletion) from
 * heap key to heap index, for the entries that have a deadline only, so
 * that heaps of entries without one do no extra work.  UINT64_MAX is never
 * a key. */
#define HPOS_EMPTY UINT64_MAX

static size_t hpos_slot(const wr_qsm_t *sm, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (sm->hpos_cap - 1);
}

static void hpos_grow(wr_qsm_t *sm)
{
    uint64_t *ok = sm->hpos_key;
    uint32_t *ov = sm->hpos_val;
    size_t ocap = sm->hpos_cap;
    sm->hpos_cap = ocap ? ocap * 2 : 64;
    sm->hpos_key = wr_xmalloc(sm->hpos_cap * sizeof *sm->hpos_key);
    sm->hpos_val = wr_xmalloc(sm->hpos_cap * sizeof *sm->hpos_val);
    for (size_t i = 0; i < sm->hpos_cap; i++)
        sm->hpos_key[i] = HPOS_EMPTY;
    for (size_t i = 0; i < ocap; i++) {
        if (ok[i] == HPOS_EMPTY)
            continue;
        size_t s = hpos_slot(sm, ok[i]);
        while (sm->hpos_key[s] != HPOS_EMPTY)
            s = (s + 1) & (sm->hpos_cap - 1);
        sm->hpos_key[s] = ok[i];
        sm->hpos_val[s] = ov[i];
    }
    free(ok);
    free(ov);
}

static void hpos_put(wr_qsm_t *sm, uint64_t key, size_t idx)
{
    if ((sm->hpos_count + 1) * 2 > sm->hpos_cap)
        hpos_grow(sm);
    size_t s = hpos_slot(sm, key);
    while (sm->hpos_key[s] != HPOS_EMPTY && sm->hpos_key[s] != key)
        s = (s + 1) & (sm->hpos_cap - 1);
    if (sm->hpos_key[s] == HPOS_EMPTY)
        sm->hpos_count++;
    sm->hpos_key[s] = key;
    sm->hpos_val[s] = (uint32_t)idx;
}

/* The slot of key, or SIZE_MAX. */
static size_t hpos_find(const wr_qsm_t *sm, uint64_t key)
{
    if (sm->hpos_count == 0)
        return SIZE_MAX;
    size_t s = hpos_slot(sm, key);
    while (sm->hpos_key[s] != HPOS_EMPTY) {
        if (sm->hpos_key[s] == key)
            return s;
        s = (s + 1) & (sm->hpos_cap - 1);
    }
    return SIZE_MAX;
}

static void hpos_del(wr_qsm_t *sm, uint64_t key)
{
    size_t s = hpos_find(sm, key);
    if (s == SIZE_MAX)
        return;
    size_t mask = sm->hpos_cap - 1;
    sm->hpos_count--;
    /* Backward shift: move later entries of the probe run into the hole
     * unless their home slot lies cyclically after the hole. */
    for (size_t j = (s + 1) & mask;; j = (j + 1) & mask) {
        if (sm->hpos_key[j] == HPOS_EMPTY)
            break;
        size_t home = hpos_slot(sm, sm->hpos_key[j]);
        if (((j - home) & mask) >= ((j - s) & mask)) {
            sm->hpos_key[s] = sm->hpos_key[j];
            sm->hpos_val[s] = sm->hpos_val[j];
            s = j;
        }
    }
    sm->hpos_key[s] = HPOS_EMPTY;
}

/* Puts *e at heap index i, keeping its position known if it can expire. */
static inline void heap_set(wr_qsm_t *sm, size_t i, const wr_qent_t *e)
{
    sm->heap[i] = *e;
    if (e->expires_at)
        hpos_put(sm, e->seq, i);
}

static void heap_push(wr_qsm_t *sm, const wr_qent_t *e)
{
    if (sm->heap_count == sm->heap_cap) {
        sm->heap_cap = sm->heap_cap ? sm->heap_cap * 2 : 8;
        sm->heap = wr_xrealloc(sm->heap, sm->heap_cap * sizeof *sm->heap);
    }
    size_t i = sm->heap_count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (sm->heap[parent].seq <= e->seq)
            break;
        heap_set(sm, i, &sm->heap[parent]);
        i = parent;
    }
    heap_set(sm, i, e);
}

/* Removes the heap entry at index i (the top for a pop). */
static void heap_remove_at(wr_qsm_t *sm, size_t i)
{
    if (sm->heap[i].expires_at)
        hpos_del(sm, sm->heap[i].seq);
    wr_qent_t last = sm->heap[--sm->heap_count];
    size_t n = sm->heap_count;
    if (i == n)
        return;
    /* last goes into the hole: up if it is smaller than the hole's parent,
     * else down. */
    while (i > 0 && sm->heap[(i - 1) / 2].seq > last.seq) {
        heap_set(sm, i, &sm->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && sm->heap[c + 1].seq < sm->heap[c].seq)
            c++;
        if (last.seq <= sm->heap[c].seq)
            break;
        heap_set(sm, i, &sm->heap[c]);
        i = c;
    }
    heap_set(sm, i, &last);
}

static void heap_pop(wr_qsm_t *sm)
{
    heap_remove_at(sm, 0);
}

/* The expiry heap: a min-heap of (at, seq) over the entries with a
 * deadline.  Items are never removed when their entry leaves some other
 * way; exp_entry tells a live item from a stale one. */
static int exp_less(const wr_qexp_t *a, const wr_qexp_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void exp_push(wr_qsm_t *sm, int64_t at, uint64_t seq)
{
    if (sm->exp_count == sm->exp_cap) {
        sm->exp_cap = sm->exp_cap ? sm->exp_cap * 2 : 16;
        sm->exp = wr_xrealloc(sm->exp, sm->exp_cap * sizeof *sm->exp);
    }
    wr_qexp_t x = {at, seq};
    size_t i = sm->exp_count++;
    while (i > 0 && exp_less(&x, &sm->exp[(i - 1) / 2])) {
        sm->exp[i] = sm->exp[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sm->exp[i] = x;
}

static void exp_sift_down(wr_qsm_t *sm, size_t i)
{
    wr_qexp_t x = sm->exp[i];
    size_t n = sm->exp_count;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && exp_less(&sm->exp[c + 1], &sm->exp[c]))
            c++;
        if (!exp_less(&sm->exp[c], &x))
            break;
        sm->exp[i] = sm->exp[c];
        i = c;
    }
    sm->exp[i] = x;
}

static void exp_pop(wr_qsm_t *sm)
{
    sm->exp[0] = sm->exp[--sm->exp_count];
    if (sm->exp_count)
        exp_sift_down(sm, 0);
}

/* The ready entry item x stands for, or NULL if it is stale (the entry was
 * delivered, dropped or already expired).  *heap_i is its heap index, or
 * SIZE_MAX if it is in the ring. */
static wr_qent_t *exp_entry(wr_qsm_t *sm, const wr_qexp_t *x, size_t *heap_i)
{
    *heap_i = SIZE_MAX;
    wr_qent_t *e = sm->lim.max_priority ? NULL : ring_find(sm, x->seq);
    if (e == NULL) {
        size_t s = hpos_find(sm, x->seq);
        if (s == SIZE_MAX)
            return NULL;
        *heap_i = sm->hpos_val[s];
        e = &sm->heap[*heap_i];
    }
    return e->expires_at == x->at ? e : NULL;
}

/* Rebuilds the expiry heap without its stale items, once they outnumber
 * the live ones: each rebuild costs as much as the removals that made the
 * stale items, so the heap stays O(ready) at O(1) amortised per entry. */
static int exp_cmp(const void *a, const void *b)
{
    const wr_qexp_t *x = a, *y = b;
    return exp_less(x, y) ? -1 : exp_less(y, x) ? 1 : 0;
}

static void exp_compact(wr_qsm_t *sm)
{
    size_t k = 0, hi;
    for (size_t i = 0; i < sm->exp_count; i++)
        if (exp_entry(sm, &sm->exp[i], &hi))
            sm->exp[k++] = sm->exp[i];
    /* An entry returned while its item from before the checkout was still
     * there has two identical live items: keep one, or a message that is
     * requeued over and over grows the heap without bound.  A sorted array
     * is a valid min-heap. */
    if (k > 1)
        qsort(sm->exp, k, sizeof *sm->exp, exp_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || exp_cmp(&sm->exp[u - 1], &sm->exp[i]) != 0)
            sm->exp[u++] = sm->exp[i];
    sm->exp_count = u;
    if (sm->exp_cap > 64 && u < sm->exp_cap / 4) {
        sm->exp_cap = u > 16 ? u * 2 : 16;
        sm->exp = wr_xrealloc(sm->exp, sm->exp_cap * sizeof *sm->exp);
    }
}

/* ---- the timer ---- */

/* Tells the owner the earliest deadline if it changed (it may be a stale
 * item's; the wake-up then only drops it). */
static void arm(wr_qsm_t *sm, wr_qfx_t *fx)
{
    if (sm->exp_count > 1024 && sm->exp_count > 2 * sm->n_expiring)
        exp_compact(sm);
    /* Items of entries that left (checked out, dropped) say nothing about
     * when to wake up. */
    size_t hi;
    while (sm->exp_count && exp_entry(sm, &sm->exp[0], &hi) == NULL)
        exp_pop(sm);
    int64_t at = sm->exp_count ? sm->exp[0].at : 0;
    if (at == sm->timer_at)
        return;
    sm->timer_at = at;
    wr_qfx_add(fx, WR_QFX_TIMER)->at = at;
}

void wr_qsm_arm(wr_qsm_t *sm, wr_qfx_t *fx)
{
    if (sm->exp_count || sm->timer_at)
        arm(sm, fx);
}

/* A ready entry got deadline e->expires_at. */
static void exp_track(wr_qsm_t *sm, const wr_qent_t *e, wr_qfx_t *fx)
{
    sm->n_expiring++;
    exp_push(sm, e->expires_at, e->seq);
    if (sm->timer_at == 0 || e->expires_at < sm->timer_at)
        arm(sm, fx);
}

/* ---- the front of the queue ---- */

/* Drops tombstones from the ring's head, so that the head is a ready entry
 * (or the ring is empty). */
static void skip_tombs(wr_qsm_t *sm)
{
    wr_qent_t *r;
    while (sm->tombs && (r = ring_front(sm)) && r->expires_at == WR_QENT_TOMB) {
        ring_pop(sm);
        sm->tombs--;
    }
}

/* The next ready entry in queue order, without removing it. */
static wr_qent_t *peek(wr_qsm_t *sm, int *from_heap)
{
    if (sm->tombs)
        skip_tombs(sm);
    wr_qent_t *r = ring_front(sm);
    if (sm->heap_count && (r == NULL || sm->heap[0].seq < r->seq)) {
        *from_heap = 1;
        return &sm->heap[0];
    }
    *from_heap = 0;
    return r;
}

/* Removes the entry peek returned into *out; it leaves the ready state. */
static void take_front(wr_qsm_t *sm, int from_heap, wr_qent_t *out)
{
    wr_qent_t *e = from_heap ? &sm->heap[0] : ring_front(sm);
    *out = *e;
    if (e->expires_at)
        sm->n_expiring--;
    if (from_heap)
        heap_pop(sm);
    else
        ring_pop(sm);
    sm->ready_bytes -= out->size;
}

/* ---- life cycle ---- */

static void set_plain(wr_qsm_t *sm)
{
    sm->plain = sm->lim.message_ttl < 0 && sm->lim.max_length < 0 && sm->lim.max_length_bytes < 0 &&
                sm->lim.max_priority == 0;
}

void wr_qsm_init(wr_qsm_t *sm, const wr_qsm_limits_t *lim)
{
    memset(sm, 0, sizeof *sm);
    sm->lim = *lim;
    set_plain(sm);
}

void wr_qsm_free(wr_qsm_t *sm)
{
    ring_free(sm);
    free(sm->heap);
    free(sm->blks);
    free(sm->exp);
    free(sm->hpos_key);
    free(sm->hpos_val);
    sm->heap = NULL;
    sm->blks = NULL;
    sm->exp = NULL;
    sm->hpos_key = NULL;
    sm->hpos_val = NULL;
}

void wr_qsm_set_limits(wr_qsm_t *sm, const wr_qsm_limits_t *lim)
{
    /* A queue's priority is fixed at declaration (policies cannot set
     * it): its entries' keys depend on it. */
    uint8_t prio = sm->lim.max_priority;
    sm->lim = *lim;
    sm->lim.max_priority = prio;
    set_plain(sm);
}

/* ---- commands ---- */

#define SEQ_BITS 56

static uint64_t priority_key(const wr_qsm_t *sm, uint8_t priority, uint64_t seq)
{
    uint8_t p = priority < sm->lim.max_priority ? priority : sm->lim.max_priority;
    return (uint64_t)(255 - p) << SEQ_BITS | (seq & ((1ull << SEQ_BITS) - 1));
}

static void drop_head(wr_qsm_t *sm, wr_qfx_t *fx)
{
    int from_heap;
    wr_qent_t e;
    peek(sm, &from_heap);
    take_front(sm, from_heap, &e);
    fx_dead(fx, &e, WR_QR_MAXLEN);
}

int wr_qsm_enqueue(wr_qsm_t *sm, wr_qent_t *e, int64_t msg_ttl, uint8_t priority, int64_t now,
                   wr_qfx_t *fx)
{
    if (wr_qsm_enqueue_plain(sm, e, msg_ttl))
        return WR_QSM_QUEUED;
    if (wr_qsm_would_reject(sm, e->size))
        return WR_QSM_REFUSED;
    int64_t ttl = wr_qsm_ttl(sm, msg_ttl);
    e->seq = sm->next_seq++;
    e->expires_at = 0;
    if (sm->lim.max_priority)
        e->seq = priority_key(sm, priority, e->seq);
    if (ttl == 0) {
        /* TTL 0: delivered only if a consumer can take it right now, else
         * expired at once (RabbitMQ's stand-in for the immediate flag).  It
         * is due now: should it come back, it expires. */
        e->expires_at = now > 0 ? now : 1;
        sm->out++;
        return WR_QSM_IMMEDIATE;
    }
    if (ttl > 0)
        e->expires_at = now + ttl;
    if (sm->lim.max_priority) {
        /* A priority queue keeps its entries in the heap, ordered by
         * priority first and arrival second: higher first, FIFO within a
         * priority; requeued entries keep their key and so their place. */
        heap_push(sm, e);
    } else {
        ring_push(sm, e);
    }
    sm->ready_bytes += e->size;
    if (e->expires_at)
        exp_track(sm, e, fx);
    while (wr_qsm_over_limit(sm, 0, 0) && wr_qsm_ready(sm) > 0)
        drop_head(sm, fx);
    return WR_QSM_QUEUED;
}

void wr_qsm_recover(wr_qsm_t *sm, wr_qent_t *e, uint64_t order, int64_t now, wr_qfx_t *fx)
{
    e->seq = order;
    e->expires_at = sm->lim.message_ttl >= 0 ? now + sm->lim.message_ttl : 0;
    /* The ring must stay sorted by seq; an entry ranked before its tail
     * goes to the heap (the same merge that puts requeued messages back). */
    if (sm->ring_count && sm->tail_blk->e[sm->tail_i - 1].seq > order)
        heap_push(sm, e);
    else
        ring_push(sm, e);
    if (order >= sm->next_seq)
        sm->next_seq = order + 1;
    sm->ready_bytes += e->size;
    if (e->expires_at)
        exp_track(sm, e, fx);
}

int wr_qsm_checkout(wr_qsm_t *sm, int64_t now, wr_qent_t *e, wr_qfx_t *fx)
{
    if (wr_qsm_checkout_head(sm, e))
        return 1;
    for (;;) {
        int from_heap;
        if (peek(sm, &from_heap) == NULL)
            return 0;
        take_front(sm, from_heap, e);
        if (e->expires_at && e->expires_at <= now) {
            fx_dead(fx, e, WR_QR_EXPIRED);
            continue;
        }
        sm->out++;
        return 1;
    }
}

void wr_qsm_discard(wr_qsm_t *sm, wr_qent_t *e, int reason, wr_qfx_t *fx)
{
    sm->out--;
    fx_dead(fx, e, reason);
}

/* Puts an entry that was out back among the ready ones, at its key. */
static void back(wr_qsm_t *sm, wr_qent_t *e, wr_qfx_t *fx)
{
    sm->out--;
    heap_push(sm, e);
    sm->ready_bytes += e->size;
    /* It keeps its deadline; an item for it may still be in the expiry
     * heap (it then finds the entry again), or was dropped. */
    if (e->expires_at)
        exp_track(sm, e, fx);
}

int wr_qsm_return(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx)
{
    (void)now;
    e->deliveries++;
    if (sm->lim.delivery_limit >= 0 && e->deliveries > sm->lim.delivery_limit) {
        /* Returned more often than x-delivery-limit allows: dead-letter it
         * (reason delivery_limit) instead of delivering it again. */
        sm->out--;
        fx_dead(fx, e, WR_QR_DELIVERY_LIMIT);
        return 0;
    }
    back(sm, e, fx);
    return 1;
}

int wr_qsm_return_back(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx)
{
    (void)now;
    e->deliveries++;
    sm->out--;
    if (sm->lim.delivery_limit >= 0 && e->deliveries > sm->lim.delivery_limit) {
        fx_dead(fx, e, WR_QR_DELIVERY_LIMIT);
        return 0;
    }
    e->seq = sm->next_seq++;
    ring_push(sm, e);
    sm->ready_bytes += e->size;
    if (e->expires_at)
        exp_track(sm, e, fx);
    return 1;
}

void wr_qsm_restore(wr_qsm_t *sm, const wr_qent_t *e, wr_qfx_t *fx)
{
    if (sm->lim.max_priority || (sm->ring_count && sm->tail_blk->e[sm->tail_i - 1].seq > e->seq))
        heap_push(sm, e);
    else
        ring_push(sm, e);
    if (e->seq >= sm->next_seq && !sm->lim.max_priority)
        sm->next_seq = e->seq + 1;
    sm->ready_bytes += e->size;
    if (e->expires_at)
        exp_track(sm, e, fx);
}

void wr_qsm_putback(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx)
{
    (void)now;
    back(sm, e, fx);
}

void wr_qsm_expire(wr_qsm_t *sm, int64_t now, wr_qfx_t *fx)
{
    sm->timer_at = 0; /* the owner's timer fired, or is re-armed below */
    while (sm->exp_count && sm->exp[0].at <= now) {
        wr_qexp_t x = sm->exp[0];
        exp_pop(sm);
        size_t heap_i;
        wr_qent_t *p = exp_entry(sm, &x, &heap_i);
        if (p == NULL)
            continue;
        wr_qent_t e = *p;
        sm->ready_bytes -= e.size;
        sm->n_expiring--;
        if (heap_i != SIZE_MAX) {
            heap_remove_at(sm, heap_i);
        } else {
            /* Left in place as a tombstone: removing from the middle of
             * the ring would cost a shift of everything behind it. */
            *p = (wr_qent_t){NULL, e.seq, WR_QENT_TOMB, {0, 0}, 0, 0};
            sm->tombs++;
        }
        fx_dead(fx, &e, WR_QR_EXPIRED);
    }
    skip_tombs(sm);
    arm(sm, fx);
}

int wr_qsm_enforce_limits(wr_qsm_t *sm, size_t max, wr_qfx_t *fx)
{
    if (sm->lim.overflow != WR_OVERFLOW_DROP_HEAD)
        return 0;
    while (wr_qsm_ready(sm) && wr_qsm_over_limit(sm, 0, 0)) {
        if (max-- == 0)
            return 1;
        drop_head(sm, fx);
    }
    skip_tombs(sm);
    return 0;
}

size_t wr_qsm_purge(wr_qsm_t *sm, size_t max, wr_qfx_t *fx)
{
    size_t n = 0;
    int from_heap;
    wr_qent_t e;
    while (n < max && peek(sm, &from_heap)) {
        take_front(sm, from_heap, &e);
        fx_gone(fx, &e);
        n++;
    }
    if (wr_qsm_ready(sm) == 0) {
        /* Nothing is left to expire: every item is stale. */
        sm->ready_bytes = 0;
        sm->exp_count = 0;
        sm->n_expiring = 0;
        arm(sm, fx);
    }
    return n;
}

/* ---- bulk updates ---- */

void wr_qsm_foreach(wr_qsm_t *sm, void (*fn)(void *ctx, wr_qent_t *e), void *ctx)
{
    size_t left = sm->ring_count;
    uint32_t i = sm->head_i;
    for (wr_qblock_t *b = sm->head_blk; b && left; b = b->next, i = 0)
        for (; i < WR_QBLOCK && left; i++, left--)
            if (b->e[i].expires_at != WR_QENT_TOMB)
                fn(ctx, &b->e[i]);
    for (size_t k = 0; k < sm->heap_count; k++)
        fn(ctx, &sm->heap[k]);
}

void wr_qsm_reprioritise(wr_qsm_t *sm, uint8_t (*prio_of)(void *ctx, wr_qent_t *e), void *ctx,
                         wr_qfx_t *fx)
{
    if (!sm->lim.max_priority || wr_qsm_ready(sm) == 0)
        return;
    /* Recovery put entries in the ring, and those ranked before the ring's
     * tail (compaction copies) in the heap, all keyed by publish order:
     * every one of them is keyed anew, and the expiry items made anew. */
    size_t n = 0;
    wr_qent_t *all = wr_xmalloc((sm->ring_count + sm->heap_count) * sizeof *all);
    while (sm->ring_count) {
        wr_qent_t e = *ring_front(sm);
        ring_pop(sm);
        if (e.expires_at == WR_QENT_TOMB)
            sm->tombs--;
        else
            all[n++] = e;
    }
    for (size_t k = 0; k < sm->heap_count; k++)
        all[n++] = sm->heap[k];
    sm->heap_count = 0;
    for (size_t k = 0; k < sm->hpos_cap; k++)
        sm->hpos_key[k] = HPOS_EMPTY;
    sm->hpos_count = 0;
    sm->exp_count = 0;
    for (size_t k = 0; k < n; k++) {
        wr_qent_t e = all[k];
        e.seq = priority_key(sm, prio_of(ctx, &e), e.seq);
        heap_push(sm, &e);
        if (e.expires_at)
            exp_push(sm, e.expires_at, e.seq);
    }
    free(all);
    sm->timer_at = -1; /* whatever it was, tell the owner again */
    arm(sm, fx);
}

void wr_qsm_restamp(wr_qsm_t *sm, int64_t now, int64_t (*delay_of)(void *ctx, wr_qent_t *e),
                    void *ctx, wr_qfx_t *fx)
{
    size_t left = sm->ring_count;
    uint32_t i = sm->head_i;
    for (wr_qblock_t *b = sm->head_blk; b && left; b = b->next, i = 0) {
        for (; i < WR_QBLOCK && left; i++, left--) {
            wr_qent_t *e = &b->e[i];
            if (e->expires_at == WR_QENT_TOMB)
                continue;
            int64_t d = delay_of(ctx, e);
            if (d < 0)
                continue;
            if (e->expires_at)
                sm->n_expiring--; /* its old item goes stale */
            e->expires_at = now + d;
            exp_track(sm, e, fx);
        }
    }
    /* Entries recovery put in the heap (ranked before the ring's tail). */
    for (size_t k = 0; k < sm->heap_count; k++) {
        wr_qent_t *e = &sm->heap[k];
        int64_t d = delay_of(ctx, e);
        if (d < 0)
            continue;
        if (e->expires_at)
            sm->n_expiring--;
        e->expires_at = now + d;
        hpos_put(sm, e->seq, k);
        exp_track(sm, e, fx);
    }
}
