/*
 * qsm.h - the queue state machine: the ready messages of one queue and the
 * rules that decide their fate (FIFO order, requeue to the original
 * position, priorities, TTL, length limits and overflow, the delivery
 * limit), with no I/O, no clock and no knowledge of stores, exchanges,
 * consumers or timers.
 *
 * Commands change the state.  Each takes the time it happens at (now, in
 * ms, given by the caller: the loop's clock for a classic queue, the time
 * recorded in the log entry for a replicated one), so that the same
 * commands applied to the same state give the same state and the same
 * effects on every node and in every test.  What a command decides the
 * outside world must do is appended to an effect list (wr_qfx_t) that the
 * caller carries out after the command returns, never during it:
 *
 *   DEAD  the entry leaves by dead-lettering (or is dropped when the queue
 *         has no dead-letter exchange): reason expired, maxlen, rejected
 *         or delivery_limit
 *   GONE  the entry leaves for good (settled, purged): its store record
 *         can be acknowledged and its message reference dropped
 *   TIMER the earliest deadline changed: wake the queue at `at` (0: no
 *         deadline left) and run wr_qsm_expire then
 *
 * Since effects run after the command, a dead-lettered message routed
 * back into the same queue is a new command, never a re-entry.
 *
 * Storage.  Ready entries live in a ring of 1024-entry blocks in sequence
 * order; entries that come back (requeue, put back) go to a min-heap on
 * their sequence number, and the next entry is the smaller of the heap's
 * top and the ring's head, so a requeued message takes back exactly its
 * original position at O(log n).  A priority queue keeps every entry in
 * the heap, keyed by priority first and sequence second.
 *
 * Expiry goes beyond RabbitMQ, which expires a per-message TTL only at the
 * head: entries with a deadline also have an item (deadline, key) in a
 * second min-heap, so the earliest deadline anywhere in the queue is known
 * at once.  An entry that expires in the middle of the ring is found by
 * binary search (over an array of the ring's blocks, then within the
 * block) and turned into a tombstone in place; tombstones are not ready
 * and are dropped when they reach the head.  An entry in the seq heap is
 * found through a small hash from key to heap index, kept only for entries
 * that have a deadline.  Items of entries that left otherwise stay behind
 * and are ignored when they come up (lazy deletion); the item heap is
 * rebuilt when stale items outnumber live ones.
 *
 * Entry life cycle (the counts in brackets are what the state tracks):
 *
 *   enqueue --> ready [ready, ready_bytes] --checkout--> out [out]
 *     |          ^  |                                    |  settle  -> gone (no effect)
 *     |          |  | expire / overflow drop-head        |  discard -> DEAD
 *     |          |  v                                    |  return  -> ready, or DEAD
 *     |          |  DEAD                                 |            (delivery limit)
 *     |          '---------------------------------------'  putback -> ready
 *     '--> refused (overflow reject-publish): no entry
 *
 * Invariant (checked by the model tests): every entry ever enqueued is
 * ready, out, or has left through exactly one DEAD or GONE effect.
 *
 * Ownership: the entry's msg and loc are the caller's payload; the state
 * machine stores and moves them but never looks inside.  An entry holds
 * whatever reference the caller gave it, and passes it on with the entry
 * (to the caller on checkout, to the effect list when it leaves).
 */
#ifndef WR_QSM_H
#define WR_QSM_H

#include <stddef.h>
#include <stdint.h>

#include "broker/message.h"
#include "store/store.h"

/* A queue entry: 40 bytes per queued message.  msg is NULL while the
 * message is paged out (only on disk, at loc).  A tombstone (an entry of
 * the ring that expired while others were ahead of it) has expires_at
 * WR_QENT_TOMB, msg NULL, loc and size zero. */
typedef struct wr_qent {
    wr_msg_t *msg;       /* the caller's payload: one reference, or NULL */
    uint64_t seq;        /* position in the queue */
    int64_t expires_at;  /* ms, or 0 for never */
    wr_loc_t loc;        /* the caller's payload: where it is stored */
    uint32_t deliveries; /* times delivered before: redelivered if > 0 */
    uint32_t size;       /* body size, for x-max-length-bytes */
} wr_qent_t;

#define WR_QENT_TOMB (-1)

/* An item of the expiry heap: the entry with key seq is due at. */
typedef struct wr_qexp {
    int64_t at;
    uint64_t seq;
} wr_qexp_t;

#define WR_QBLOCK 1024
typedef struct wr_qblock {
    struct wr_qblock *next;
    wr_qent_t e[WR_QBLOCK];
} wr_qblock_t;

enum wr_overflow {
    WR_OVERFLOW_DROP_HEAD,
    WR_OVERFLOW_REJECT_PUBLISH,
    WR_OVERFLOW_REJECT_PUBLISH_DLX
};

/* The rules a queue's arguments (and policies) set. */
typedef struct wr_qsm_limits {
    int64_t message_ttl;      /* -1 if unset */
    int64_t max_length;       /* -1 if unset */
    int64_t max_length_bytes; /* -1 if unset */
    int64_t delivery_limit;   /* returns allowed; -1: no limit (0: none allowed) */
    int overflow;             /* enum wr_overflow */
    uint8_t max_priority;     /* 0: not a priority queue */
} wr_qsm_limits_t;

/* Why an entry is dead-lettered; names as RabbitMQ's x-death reasons. */
enum wr_qsm_reason { WR_QR_EXPIRED, WR_QR_MAXLEN, WR_QR_REJECTED, WR_QR_DELIVERY_LIMIT };
const char *wr_qsm_reason_name(int reason);

enum wr_qfx_kind { WR_QFX_DEAD, WR_QFX_GONE, WR_QFX_TIMER };

typedef struct wr_qfx_item {
    uint8_t kind;   /* enum wr_qfx_kind (and broker/qfifo.h's) */
    uint8_t reason; /* DEAD: enum wr_qsm_reason */
    int64_t at;     /* TIMER: deadline, 0 for none */
    uint64_t to;    /* qfifo's DELIVER, GET: the consumer or getter */
    wr_qent_t e;    /* DEAD, GONE, DELIVER, GET: the entry, with its reference */
} wr_qfx_item_t;

/* An effect list.  Owned by the caller, who initialises it, runs its
 * items after the command and resets it (wr_qfx_reset).  Commands that
 * can emit without bound (purge, a lowered limit) do their work in
 * batches and say when more is left. */
typedef struct wr_qfx {
    wr_qfx_item_t *v;
    size_t n, cap;
    wr_qfx_item_t inline_v[4];
} wr_qfx_t;

static inline void wr_qfx_init(wr_qfx_t *fx)
{
    fx->v = fx->inline_v;
    fx->n = 0;
    fx->cap = sizeof fx->inline_v / sizeof fx->inline_v[0];
}
static inline void wr_qfx_reset(wr_qfx_t *fx)
{
    fx->n = 0;
}
void wr_qfx_free(wr_qfx_t *fx);
/* Appends an item of kind to fx and returns it (for state machines built
 * on this one, such as qfifo). */
wr_qfx_item_t *wr_qfx_add(wr_qfx_t *fx, int kind);

typedef struct wr_qsm {
    wr_qsm_limits_t lim;

    /* Ready entries: ring (fresh) + heap (returned), see above. */
    wr_qblock_t *head_blk, *tail_blk, *spare;
    uint32_t head_i, tail_i;
    size_t ring_count;
    wr_qent_t *heap;
    size_t heap_count, heap_cap;
    uint64_t next_seq;
    uint64_t ready_bytes;
    size_t tombs; /* tombstones in the ring, not ready */
    uint64_t out; /* checked out, not yet settled, returned or discarded */

    /* Expiry; all empty for queues whose entries never expire. */
    wr_qblock_t **blks; /* the ring's blocks in order, circular */
    size_t blk_head, blk_n, blk_cap;
    wr_qexp_t *exp; /* min-heap on at, possibly stale items */
    size_t exp_count, exp_cap;
    size_t n_expiring;  /* ready entries with a deadline */
    uint64_t *hpos_key; /* open addressing: heap key -> index */
    uint32_t *hpos_val;
    size_t hpos_count, hpos_cap;
    int64_t timer_at; /* the deadline the owner was last told, 0 for none */
    uint8_t plain;    /* no TTL, length limit or priority: the fast path */
} wr_qsm_t;

/* Bytes held by all state machines' ready-entry blocks. */
extern uint64_t wr_qsm_block_bytes;
/* Highest wr_qsm_block_bytes + wr_msg_mem_bytes seen (for trimming). */
extern uint64_t wr_qsm_mem_peak;

void wr_qsm_init(wr_qsm_t *sm, const wr_qsm_limits_t *lim);
/* Frees the state's memory.  Entries still ready are dropped without an
 * effect: the caller purges first if their payload matters. */
void wr_qsm_free(wr_qsm_t *sm);
/* New limits (a policy changed).  Does not drop anything: a lowered
 * limit is applied by wr_qsm_enforce_limits. */
void wr_qsm_set_limits(wr_qsm_t *sm, const wr_qsm_limits_t *lim);

static inline size_t wr_qsm_ready(const wr_qsm_t *sm)
{
    return sm->ring_count + sm->heap_count - sm->tombs;
}

/* The TTL a message with its own TTL msg_ttl (-1: none) gets here. */
static inline int64_t wr_qsm_ttl(const wr_qsm_t *sm, int64_t msg_ttl)
{
    int64_t ttl = sm->lim.message_ttl;
    if (msg_ttl >= 0 && (ttl < 0 || msg_ttl < ttl))
        ttl = msg_ttl;
    return ttl;
}

static inline int wr_qsm_over_limit(const wr_qsm_t *sm, size_t extra_n, uint64_t extra_bytes)
{
    return (sm->lim.max_length >= 0 &&
            (int64_t)(wr_qsm_ready(sm) + extra_n) > sm->lim.max_length) ||
           (sm->lim.max_length_bytes >= 0 &&
            (int64_t)(sm->ready_bytes + extra_bytes) > sm->lim.max_length_bytes);
}

/* Would the queue refuse a message of this size (x-overflow
 * reject-publish or reject-publish-dlx with the limit reached)? */
static inline int wr_qsm_would_reject(const wr_qsm_t *sm, uint64_t size)
{
    return sm->lim.overflow != WR_OVERFLOW_DROP_HEAD && wr_qsm_over_limit(sm, 1, size);
}

enum wr_qsm_enqueue_result {
    WR_QSM_QUEUED,    /* ready (or already dropped by drop-head: see fx) */
    WR_QSM_REFUSED,   /* overflow reject-publish(-dlx): not taken */
    WR_QSM_IMMEDIATE, /* TTL 0: *e is checked out at once; the caller
                       * delivers it now, or discards it as expired */
};

/* Enqueues *e (msg, loc, size and deliveries set by the caller; seq and
 * expires_at are set here).  msg_ttl is the message's own TTL (-1: none),
 * priority its priority (used by priority queues only). */
int wr_qsm_enqueue(wr_qsm_t *sm, wr_qent_t *e, int64_t msg_ttl, uint8_t priority, int64_t now,
                   wr_qfx_t *fx);
/* Internal: the ring's tail and head (for the inline fast paths). */
void wr_qsm__ring_push(wr_qsm_t *sm, const wr_qent_t *e);
void wr_qsm__ring_pop(wr_qsm_t *sm);

/* wr_qsm_enqueue when there is nothing to decide (no TTL, length limit or
 * priority): the entry is queued, no effect, no time needed.  Returns 0
 * (nothing done) when wr_qsm_enqueue must decide. */
static inline int wr_qsm_enqueue_plain(wr_qsm_t *sm, wr_qent_t *e, int64_t msg_ttl)
{
    if (!sm->plain || msg_ttl >= 0)
        return 0;
    e->seq = sm->next_seq++;
    e->expires_at = 0;
    wr_qsm__ring_push(sm, e);
    sm->ready_bytes += e->size;
    return 1;
}

/* Adds an entry found by recovery, ranked order in publish order; it
 * keeps its deliveries and gets the queue's TTL from now. */
void wr_qsm_recover(wr_qsm_t *sm, wr_qent_t *e, uint64_t order, int64_t now, wr_qfx_t *fx);

/* Takes the next ready entry in queue order into *e and counts it out;
 * entries found expired on the way leave as DEAD.  Returns 1, or 0 if
 * nothing is ready. */
int wr_qsm_checkout(wr_qsm_t *sm, int64_t now, wr_qent_t *e, wr_qfx_t *fx);
/* wr_qsm_checkout when the next entry is the ring's head and has no
 * deadline, so that neither time nor effects are involved.  Returns 0
 * (nothing done) when wr_qsm_checkout must decide. */
static inline int wr_qsm_checkout_head(wr_qsm_t *sm, wr_qent_t *e)
{
    if (sm->heap_count || sm->tombs || sm->ring_count == 0 ||
        sm->head_blk->e[sm->head_i].expires_at != 0)
        return 0;
    *e = sm->head_blk->e[sm->head_i];
    wr_qsm__ring_pop(sm);
    sm->ready_bytes -= e->size;
    sm->out++;
    return 1;
}

/* An entry that is out was acknowledged (or taken without ack): it leaves
 * for good.  There is nothing to decide, so no effect is emitted: the
 * caller disposes of the entry as it would of a GONE one (this is the
 * hot path of every delivery). */
static inline void wr_qsm_settle(wr_qsm_t *sm)
{
    sm->out--;
}
/* An entry that is out leaves by dead-lettering for reason (a reject
 * without requeue; an immediate delivery nobody could take). */
void wr_qsm_discard(wr_qsm_t *sm, wr_qent_t *e, int reason, wr_qfx_t *fx);
/* An entry that is out comes back to its original position, counted as
 * a delivery; past x-delivery-limit it is dead-lettered instead.
 * Returns 1 if it is ready again. */
int wr_qsm_return(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx);
/* As wr_qsm_return, but the entry goes to the back of the queue with a new
 * sequence number (a quorum queue's reject or nack with requeue, as
 * RabbitMQ's rabbit_fifo does).  Not for priority queues. */
int wr_qsm_return_back(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx);
/* Puts back an entry exactly as a snapshot recorded it (its seq, deadline
 * and deliveries kept): a replica rebuilding its state. */
void wr_qsm_restore(wr_qsm_t *sm, const wr_qent_t *e, wr_qfx_t *fx);
/* An entry that is out goes back unchanged, not counted as a delivery
 * (inspection, replay). */
void wr_qsm_putback(wr_qsm_t *sm, wr_qent_t *e, int64_t now, wr_qfx_t *fx);

/* Expires every ready entry whose deadline is <= now, wherever it is in
 * the queue (DEAD expired each, O(log n)), and emits TIMER for the next
 * deadline.  The owner calls it when the TIMER deadline is reached. */
void wr_qsm_expire(wr_qsm_t *sm, int64_t now, wr_qfx_t *fx);
/* Emits TIMER if the earliest live deadline is not what the owner was
 * told (after checkouts left stale items behind). */
void wr_qsm_arm(wr_qsm_t *sm, wr_qfx_t *fx);
/* Drops entries from the head while over a length limit with overflow
 * drop-head (DEAD maxlen), at most max of them.  Returns 1 if more are
 * left to drop. */
int wr_qsm_enforce_limits(wr_qsm_t *sm, size_t max, wr_qfx_t *fx);
/* Removes up to max ready entries (GONE each).  Returns how many. */
size_t wr_qsm_purge(wr_qsm_t *sm, size_t max, wr_qfx_t *fx);

/* Gives fn every ready entry (tombstones excluded) to update its payload
 * (msg, loc) in place; fn must not change seq, expires_at or size. */
void wr_qsm_foreach(wr_qsm_t *sm, void (*fn)(void *ctx, wr_qent_t *e), void *ctx);
/* After recovery of a priority queue: re-keys every entry by the priority
 * prio_of reads from its payload. */
void wr_qsm_reprioritise(wr_qsm_t *sm, uint8_t (*prio_of)(void *ctx, wr_qent_t *e), void *ctx,
                         wr_qfx_t *fx);
/* After recovery of a delay queue: every ring entry is due delay_of(e) ms
 * after now (delay_of < 0: left without a deadline). */
void wr_qsm_restamp(wr_qsm_t *sm, int64_t now, int64_t (*delay_of)(void *ctx, wr_qent_t *e),
                    void *ctx, wr_qfx_t *fx);

#endif
