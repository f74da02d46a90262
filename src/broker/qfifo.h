/*
 * qfifo.h - the replicated queue's state machine: a qsm (the ready
 * messages and their rules) plus the consumers, their credit and the
 * messages each has checked out, so that every member of a quorum queue's
 * Raft group, applying the same log, decides the same deliveries.
 *
 * This is the state a quorum queue replicates, in the spirit of RabbitMQ's
 * rabbit_fifo: consumers are part of the state (attached and detached by
 * commands), a delivery is decided when a command is applied (the message
 * goes to the next consumer with credit, round-robin within the highest
 * priority), and checked-out messages are remembered by sequence number
 * until they are settled, returned or discarded.  Nothing here reads a
 * clock, does I/O or knows about channels: each command carries its time
 * (the leader's clock when it proposed it, stored in the log entry) and
 * appends effects to a wr_qfx_t, including
 *
 *   DELIVER  entry e goes to consumer cid (its seq is the handle for the
 *            settle); the member that hosts cid sends it, others only
 *            note it
 *   GET      the answer to a get (e, or none when the queue was empty)
 *
 * besides qsm's DEAD, GONE and TIMER.
 *
 * Credit: a consumer with prefetch p > 0 holds at most p unsettled
 * messages; p == 0 is unlimited.  A no-ack consumer settles on delivery.
 * With single active consumer, only the first attached consumer receives
 * messages until it detaches.
 *
 * Invariant (model-tested): every entry enqueued is ready (in the qsm),
 * out (in exactly one consumer's or getter's checkout), or left through
 * exactly one DEAD or GONE effect; a consumer never holds more than its
 * prefetch.
 *
 * Ownership: entry payloads (msg, loc) belong to the caller, as in qsm;
 * they travel with the entry through the effects.
 */
#ifndef WR_QFIFO_H
#define WR_QFIFO_H

#include "broker/qsm.h"

/* Effect kinds beyond qsm's. */
enum { WR_QFX_DELIVER = 16, WR_QFX_GET };

typedef struct wr_qfifo_consumer {
    uint64_t cid;      /* chosen by the member that attached it, unique */
    uint32_t prefetch; /* 0 = unlimited */
    uint32_t n_out;    /* checked out, unsettled */
    int32_t priority;
    uint8_t no_ack;
} wr_qfifo_consumer_t;

/* A checked-out entry: which consumer (or getter) holds it. */
typedef struct wr_qfifo_out {
    uint64_t cid; /* the consumer, or the getter's id */
    wr_qent_t e;
} wr_qfifo_out_t;

typedef struct wr_qfifo {
    wr_qsm_t sm;
    wr_qfifo_consumer_t *cons; /* in attach order */
    size_t n_cons, cap_cons;
    size_t rr; /* round-robin position in cons */
    uint8_t single_active;
    /* Checked-out entries: open addressing on seq. */
    wr_qfifo_out_t *out;
    uint8_t *used;
    size_t out_count, out_cap;
} wr_qfifo_t;

/* DELIVER and GET name their consumer or getter in the item's `to`; a GET
 * whose entry has size 0, msg NULL and seq 0 means the queue was empty
 * (reason is 1 then). */

void wr_qfifo_init(wr_qfifo_t *f, const wr_qsm_limits_t *lim, int single_active);
/* Frees the state; entries still held are dropped without effects. */
void wr_qfifo_free(wr_qfifo_t *f);

/* The commands.  Each applies at time now and appends its effects. */
int wr_qfifo_enqueue(wr_qfifo_t *f, wr_qent_t *e, int64_t msg_ttl, uint8_t priority, int64_t now,
                     wr_qfx_t *fx);
void wr_qfifo_attach(wr_qfifo_t *f, uint64_t cid, uint32_t prefetch, int32_t priority, int no_ack,
                     int64_t now, wr_qfx_t *fx);
/* The consumer stops receiving (basic.cancel, or its channel closes);
 * what it holds stays held until settled or returned (a channel that
 * closes returns it, wr_qfifo_return_all). */
void wr_qfifo_detach(wr_qfifo_t *f, uint64_t cid, int64_t now, wr_qfx_t *fx);
/* Settles, returns (requeue) or discards (reject) the entry seq held by
 * cid; unknown seqs (already settled, or held by someone else) are
 * ignored.  Returns 1 if it was held. */
int wr_qfifo_settle(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int64_t now, wr_qfx_t *fx);
/* to_back: the entry goes to the back of the queue (reject or nack with
 * requeue); otherwise to its original position (a channel closed). */
int wr_qfifo_return(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int to_back, int64_t now,
                    wr_qfx_t *fx);
int wr_qfifo_discard(wr_qfifo_t *f, uint64_t cid, uint64_t seq, int64_t now, wr_qfx_t *fx);
/* A basic.get by getter gid: GET effect with the entry (held by gid unless
 * no_ack) or empty. */
void wr_qfifo_get(wr_qfifo_t *f, uint64_t gid, int no_ack, int64_t now, wr_qfx_t *fx);
/* Time passed: expire what is due. */
void wr_qfifo_tick(wr_qfifo_t *f, int64_t now, wr_qfx_t *fx);
/* Removes every ready entry; returns how many. */
size_t wr_qfifo_purge(wr_qfifo_t *f, int64_t now, wr_qfx_t *fx);
/* Every entry held by holder cid comes back (a getter's channel closed). */
void wr_qfifo_return_all(wr_qfifo_t *f, uint64_t cid, int64_t now, wr_qfx_t *fx);

/* Puts e among the entries held by cid exactly as a snapshot recorded it
 * (a replica rebuilding its state). */
void wr_qfifo_hold(wr_qfifo_t *f, uint64_t cid, const wr_qent_t *e);

const wr_qfifo_consumer_t *wr_qfifo_consumer(const wr_qfifo_t *f, uint64_t cid);
/* The entry seq held out, or NULL. */
const wr_qfifo_out_t *wr_qfifo_held(const wr_qfifo_t *f, uint64_t seq);
static inline size_t wr_qfifo_ready(const wr_qfifo_t *f)
{
    return wr_qsm_ready(&f->sm);
}
static inline size_t wr_qfifo_unacked(const wr_qfifo_t *f)
{
    return f->out_count;
}

#endif
