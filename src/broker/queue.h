/*
 * queue.h - a classic queue: its state machine (broker/qsm.h: the ready
 * messages and the rules for them), the consumers it delivers to, and
 * what the state machine's effects mean here: the message store, the
 * dead-letter exchange, a timer on the loop.
 *
 * The state machine decides, this module carries out: every command
 * (push, pop, settle, requeue, discard, expire, purge) is a call into
 * qsm with the loop's time, followed by running the effects it returned
 * (run_fx in queue.c).  Dead-lettering routes and pushes into other queues
 * (or this one) only after the command that caused it has finished.
 *
 * Consumers are served round-robin among those of the highest priority
 * that can take a message now (credit from basic.qos, a connection that
 * is not congested).  The queue knows consumers only through
 * wr_consumer_ops_t, so it does not depend on channels or connections.
 *
 * Lifetime: a queue is referenced by its vhost while it exists, and by each
 * delivery that is out.  wr_queue_delete removes it from the vhost (the
 * deleted flag is set, its ready messages dropped, consumers cancelled);
 * the memory goes when the last outstanding delivery is settled.
 */
#ifndef WR_QUEUE_H
#define WR_QUEUE_H

#include <uv.h>

#include "core/durable.h"
#include "broker/message.h"
#include "broker/qsm.h"
#include "broker/stats.h"
#include "core/buf.h"
#include "core/loop.h"
#include "store/store.h"

typedef struct wr_vhost wr_vhost_t;
typedef struct wr_queue wr_queue_t;
typedef struct wr_consumer wr_consumer_t;
typedef struct wr_binding wr_binding_t;

typedef struct wr_consumer_ops {
    /* May the consumer take one more message now? */
    int (*can_take)(wr_consumer_t *c);
    /* Deliver e; the callee takes over the entry (and its message ref). */
    void (*deliver)(wr_consumer_t *c, wr_qent_t *e);
    /* The queue is going away: the consumer is removed from it (server-side
     * basic.cancel).  The queue's pointer in c is cleared after this. */
    void (*cancelled)(wr_consumer_t *c);
} wr_consumer_ops_t;

struct wr_consumer {
    const wr_consumer_ops_t *ops;
    wr_queue_t *queue;
    uint64_t cid;      /* a quorum queue's id for it (broker/quorum.h) */
    uint32_t prefetch; /* basic.qos of its channel (0: unlimited), for quorum queues */
    int32_t priority;
    uint8_t exclusive;
    uint8_t no_ack;
    wr_consumer_t *qnext; /* in the queue's consumer list, priority order */
    wr_consumer_t *qprev;
};

typedef struct wr_queue_args {
    int64_t message_ttl;      /* x-message-ttl, -1 if unset */
    int64_t expires;          /* x-expires, -1 if unset */
    int64_t max_length;       /* x-max-length, -1 if unset */
    int64_t max_length_bytes; /* x-max-length-bytes, -1 if unset */
    int overflow;
    char *dlx;                   /* x-dead-letter-exchange, or NULL */
    char *dlrk;                  /* x-dead-letter-routing-key, or NULL */
    uint8_t single_active;       /* x-single-active-consumer */
    uint8_t max_priority;        /* x-max-priority, 0 = not a priority queue */
    int64_t delivery_limit;      /* x-delivery-limit, 0 if unset */
    uint8_t delivery_limit_set;  /* x-delivery-limit given (0 included) */
    uint8_t delivery_limit_none; /* ... negative: no limit */
    uint8_t type;                /* x-queue-type: WR_QTYPE_CLASSIC or WR_QTYPE_QUORUM */
    uint8_t dl_at_least_once;    /* x-dead-letter-strategy at-least-once */
    int64_t initial_group_size;  /* x-quorum-initial-group-size, 0 if unset */
    uint8_t leader_locator;      /* x-queue-leader-locator: 0 unset, 1 client-local, 2 balanced */
} wr_queue_args_t;

/* Queue types (x-queue-type). */
enum { WR_QTYPE_CLASSIC, WR_QTYPE_QUORUM };

struct wr_channel;
struct wr_waits;

/* How a delivery a channel held ends (wr_qtype_t.settle). */
enum {
    WR_SETTLE_ACK,     /* acked */
    WR_SETTLE_RETURN,  /* nacked or rejected with requeue (a quorum queue: to its back) */
    WR_SETTLE_DISCARD, /* rejected without requeue: dead-lettered or dropped */
    WR_SETTLE_REQUEUE, /* back to its place (channel closed, recover) */
};

/* A queue type: what classic and quorum queues (and streams, later) do
 * differently, behind one table.  The generic queue layer (bindings,
 * routing, the consumer list, listings, deletion) is queue.c's and calls
 * through q->type; the classic type is also in queue.c (its ready state is
 * q->sm, its messages in the vhost store), the quorum type in quorum.c
 * (its state is the replicated q->qq).  NULL entries do nothing. */
typedef struct wr_qtype {
    const char *name; /* as x-queue-type and the listings name it */
    uint8_t id;       /* WR_QTYPE_* */
    /* Durable through its own log: publishes are not written to the vhost
     * store, and deliveries are decided by the replicated state (no
     * dispatch pass, no pop). */
    uint8_t replicated;
    /* After wr_queue_new (declare, recovery): start its state. */
    int (*open)(wr_queue_t *q, char *err, size_t errlen);
    /* At delete: stop; remove_data drops its own files. */
    void (*close)(wr_queue_t *q, int remove_data);
    /* A routed message (the queue takes its own reference): loc is its
     * place in the vhost store (classic), w what the publisher's confirm
     * waits on.  0, or non-zero if the queue refused it (x-overflow
     * reject-publish). */
    int (*push)(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc, struct wr_waits *w);
    /* basic.get: the answer goes through wr_channel_get_answer, now or
     * later. */
    void (*get)(wr_queue_t *q, struct wr_channel *ch, int no_ack);
    /* A delivery a channel held ends (WR_SETTLE_*); consumes e's message
     * reference and the queue reference wr_queue_out took. */
    void (*settle)(wr_queue_t *q, wr_qent_t *e, int how);
    /* A delivery without ack took e: it is gone from the queue. */
    void (*taken)(wr_queue_t *q, wr_qent_t *e);
    void (*consumer_added)(wr_queue_t *q, wr_consumer_t *c);
    void (*consumer_removed)(wr_queue_t *q, wr_consumer_t *c);
    /* queue.purge: removes (or will remove) the ready messages; returns
     * how many. */
    uint32_t (*purge)(wr_queue_t *q);
    /* Its arguments changed (a policy): apply the limits. */
    void (*limits_changed)(wr_queue_t *q);
    size_t (*ready)(const wr_queue_t *q);
    uint64_t (*ready_bytes)(const wr_queue_t *q);
} wr_qtype_t;

extern const wr_qtype_t wr_qtype_classic; /* queue.c */
extern const wr_qtype_t wr_qtype_quorum;  /* quorum.c */

struct wr_queue {
    char *name;
    /* The policy and operator policy its effective args came from
     * (broker/policy.h), or NULL. */
    const struct wr_policy *policy, *op_policy;
    size_t name_len;
    wr_vhost_t *vhost;
    uint32_t refs;
    uint8_t durable;
    uint8_t exclusive;
    uint8_t auto_delete;
    uint8_t deleted;
    const wr_qtype_t *type; /* x-queue-type: classic or quorum */
    uint8_t had_consumer;   /* auto-delete only after a first consumer */
    uint8_t pending;        /* on the broker's list of queues to dispatch */
    uint8_t dispatching;
    uint32_t store_id;    /* durable queues: the store's id, else 0 */
    uint8_t delay;        /* the hidden queue of an x-delayed-message exchange */
    struct wr_quorum *qq; /* a quorum queue's replicated state (broker/quorum.h) */
    void *owner;          /* exclusive: the owning connection */
    wr_buf_t args_raw;    /* arguments table content, as declared */
    wr_queue_args_t args;

    wr_qsm_t sm; /* ready messages and their rules (broker/qsm.h) */

    wr_consumer_t *consumers; /* sorted by priority, highest first */
    wr_consumer_t *rr;        /* where the next round-robin scan starts */
    uint32_t n_consumers;
    uint32_t unacked;

    wr_binding_t *bindings; /* bindings whose destination is this queue */
    uint64_t route_mark;    /* routing de-duplication stamp */
    int64_t last_used;      /* for x-expires */
    uv_timer_t *ttl_timer;  /* armed for the state machine's next deadline */
    wr_queue_t *pending_next;

    wr_counters_t st; /* message statistics (broker/stats.h) */
    wr_rates_t rt;
};

/* Parses and validates declare arguments into *out.  On failure returns
 * WR_EINVAL with an AMQP-style reply text in err (for a 406). */
int wr_queue_args_parse(wr_bytes_t table, wr_bytes_t qname, const char *vhost, wr_queue_args_t *out,
                        char *err, size_t errlen);
void wr_queue_args_free(wr_queue_args_t *a);

wr_queue_t *wr_queue_new(wr_vhost_t *vh, wr_bytes_t name, int durable, int exclusive,
                         int auto_delete, void *owner, wr_bytes_t args_raw,
                         const wr_queue_args_t *args);

/* Replaces the queue's effective arguments (a policy changed); takes
 * over a's strings.  A lowered limit is applied by
 * wr_queue_enforce_limits. */
void wr_queue_set_args(wr_queue_t *q, const wr_queue_args_t *a);

/* Drops one reference; frees the queue when none remain. */
void wr_queue_unref(wr_queue_t *q);

/* After its length limits were lowered (a policy): drops the excess from
 * the head, dead-lettering it, when its overflow is drop-head. */
void wr_queue_enforce_limits(wr_queue_t *q);

/* Returns an entry taken with wr_queue_pop to its place, unchanged: not
 * a delivery (dead-letter inspection and replay look at entries so). */
void wr_queue_putback(wr_queue_t *q, wr_qent_t *e);

/* Ready message count and bytes. */
static inline size_t wr_queue_ready(const wr_queue_t *q)
{
    return q->type->ready(q);
}
static inline uint64_t wr_queue_ready_bytes(const wr_queue_t *q)
{
    return q->type->ready_bytes(q);
}
/* A quorum queue (its replicated state is q->qq while open). */
static inline int wr_queue_is_quorum(const wr_queue_t *q)
{
    return q->type->id == WR_QTYPE_QUORUM;
}

/* Would the queue refuse one more message of this size (x-overflow
 * reject-publish(-dlx) with the limit reached)? */
int wr_queue_would_reject(const wr_queue_t *q, const wr_msg_t *m);
/* Enqueues a message (takes a new reference) stored at loc (seg 0 if not
 * stored for this queue).  Returns 0, or WR_ERANGE if the queue refused it
 * because of x-overflow reject-publish(-dlx). */
int wr_queue_push(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc);
/* Pushes m to the n routed queues: if m is persistent, it is first written
 * to the store once for all durable ones.  What the publisher's confirm
 * must wait for is added to *w (a ticket of each durability domain that
 * took it: core/durable.h); w may be NULL when nobody waits.  *rejected
 * is set if a queue refused it (x-overflow).  Returns 0, or the store's
 * error (then nothing was enqueued). */
int wr_queues_push(wr_vhost_t *vh, wr_queue_t **qs, size_t n, wr_msg_t *m, wr_waits_t *w,
                   int *rejected);
/* Adds a recovered message (on disk only).  order is its rank in publish
 * order: messages come mostly in order, and those that do not (compaction
 * copies) go to the heap, which merges them back into place. */
void wr_queue_push_recovered(wr_queue_t *q, wr_loc_t loc, uint64_t order, uint32_t size,
                             int redelivered);
/* The message's x-delay header in ms, or 0 if absent or not positive. */
int64_t wr_msg_x_delay(const wr_msg_t *m);
/* Called once recovery has added every message of q (priority queues
 * order them by priority). */
void wr_queue_recovery_done(wr_queue_t *q);
/* Makes sure e->msg is in memory (reading it from the store if it was
 * paged out).  Returns 0, or an error if the store cannot produce it (the
 * entry is then dropped by the caller). */
int wr_queue_load(wr_queue_t *q, wr_qent_t *e);

/* Pops the next ready message (skipping expired ones) into *e; 1 if one
 * was taken, 0 if the queue has none.  The entry's reference passes to the
 * caller, who must settle or requeue it with the functions below (they
 * account for q->unacked), or call wr_queue_taken_noack. */
int wr_queue_pop(wr_queue_t *q, wr_qent_t *e);
/* The popped entry is out unacknowledged: q->unacked++, q->refs++. */
void wr_queue_out(wr_queue_t *q, const wr_qent_t *e);
/* A delivery without ack (no-ack consumer, basic.get no-ack) took the
 * popped entry: it is gone from the queue for good. */
void wr_queue_taken(wr_queue_t *q, wr_qent_t *e);
/* An outstanding delivery was acked. Consumes e's message reference. */
void wr_queue_settle(wr_queue_t *q, wr_qent_t *e);
/* An outstanding delivery comes back to its original position. */
void wr_queue_requeue(wr_queue_t *q, wr_qent_t *e);
/* A client requeued an outstanding delivery (nack or reject): as
 * wr_queue_requeue, but a quorum queue puts it at its back (to_back). */
void wr_queue_return(wr_queue_t *q, wr_qent_t *e, int to_back);
/* An outstanding delivery was rejected without requeue: dead-lettered with
 * reason "rejected" if the queue has a DLX, else dropped. */
void wr_queue_discard(wr_queue_t *q, wr_qent_t *e);

/* Schedules a dispatch pass (cheap; coalesced until wr_queue_run_pending). */
void wr_queue_kick(wr_queue_t *q);
/* Runs dispatch for every kicked queue. */
void wr_queue_run_pending(void);

void wr_queue_add_consumer(wr_queue_t *q, wr_consumer_t *c);
/* Removes c; may delete an auto-delete queue (returns 1 then). */
int wr_queue_remove_consumer(wr_queue_t *q, wr_consumer_t *c);

/* Dead-letters m (consuming the caller's reference) from q for reason
 * through q's dead-letter exchange, or drops it; scope limits the target
 * queues to quorum ones, or to classic ones (this node's), or none. */
enum { WR_DL_ALL, WR_DL_QUORUM_ONLY, WR_DL_CLASSIC_ONLY };
void wr_queue_dead_letter(wr_queue_t *q, wr_msg_t *m, const char *reason, int scope);
/* As wr_queue_dead_letter to every target, for a publisher that waits for
 * the targets' confirms (at-least-once dead-lettering): what to wait for
 * is added to *w.  Returns WR_DLR_DONE (taken by every target, or by
 * none because each would close a cycle), WR_DLR_NO_ROUTE (no such
 * exchange, or it routed to no queue) or WR_DLR_REFUSED (a target refused
 * it: x-overflow reject-publish, or its store failed). */
enum { WR_DLR_DONE, WR_DLR_NO_ROUTE, WR_DLR_REFUSED };
int wr_queue_dead_letter_confirmed(wr_queue_t *q, wr_msg_t *m, const char *reason, wr_waits_t *w);

/* Removes every ready message; returns how many. */
uint32_t wr_queue_purge(wr_queue_t *q);
/* Deletes the queue: unbinds it, cancels consumers, drops ready messages,
 * removes it from the vhost, and drops the vhost's reference.  Returns the
 * number of ready messages it held. */
uint32_t wr_queue_delete(wr_queue_t *q);

/* Points ready entries stored in segment seg at their new locations after
 * compaction (tab sorted by old offset; see wr_store_compact). */
void wr_queue_relocate(wr_queue_t *q, uint32_t seg, const wr_reloc_t *tab, size_t n);
/* Finds the new location of old offset off in tab, or NULL. */
const wr_reloc_t *wr_reloc_find(const wr_reloc_t *tab, size_t n, uint32_t off);

/* Returns freed heap memory to the system after a large backlog drained;
 * called once a second. */
void wr_queue_trim_memory(void);

/* Expires the ready messages whose deadline has passed, wherever they are
 * in the queue (called from the queue's timer): each is dead-lettered with
 * reason "expired" or dropped, in O(log n). */
void wr_queue_expire(wr_queue_t *q);

#endif
