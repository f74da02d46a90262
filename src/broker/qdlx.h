/*
 * qdlx.h - a quorum queue's dead-lettered messages kept until their
 * dead-letter targets have confirmed them (x-dead-letter-strategy
 * at-least-once, as RabbitMQ's quorum queues keep them).
 *
 * Part of the queue's replicated state: every member adds an entry when
 * applying a command that dead-letters a message, in log order, so ids
 * (assigned from next_id) are the same on every member; a DLX_SETTLE
 * command removes entries by id once the leader has the targets'
 * confirms.  The list is in id order; entries removed out of order stay
 * as holes (live 0) until the head passes them, so that a removal is a
 * binary search and the list compacts in amortised O(1).
 *
 * `state` is the leader's alone and not replicated (nor in snapshots): a
 * new leader starts with every entry ready to be published again.
 */
#ifndef WR_QDLX_H
#define WR_QDLX_H

#include <stddef.h>
#include <stdint.h>

#include "broker/qsm.h"

enum wr_qdlx_state {
    WR_QDLX_READY, /* to publish */
    WR_QDLX_SENT,  /* published: confirms awaited, or DLX_SETTLE proposed */
    WR_QDLX_RETRY  /* no route, or a target refused it: wait for the retry */
};

typedef struct wr_qdlx_ent {
    uint64_t id;
    wr_qent_t e;    /* the message (one reference), its seq and deliveries */
    uint8_t reason; /* enum wr_qsm_reason */
    uint8_t live;
    uint8_t state; /* enum wr_qdlx_state: the leader's */
} wr_qdlx_ent_t;

typedef struct wr_qdlx {
    wr_qdlx_ent_t *v;
    size_t head, n, cap; /* entries v[head..n), holes included */
    size_t live;
    uint64_t bytes; /* body bytes of the live entries */
    uint64_t next_id;
    size_t scan; /* the leader's: no READY entry before v[scan] */
} wr_qdlx_t;

void wr_qdlx_init(wr_qdlx_t *d);
/* Frees the list; each live entry's payload is passed to release first
 * (may be NULL). */
void wr_qdlx_free(wr_qdlx_t *d, void (*release)(wr_qent_t *e));
/* Keeps *e (taking its reference), dead-lettered for reason.  Returns its
 * id. */
uint64_t wr_qdlx_add(wr_qdlx_t *d, const wr_qent_t *e, int reason);
/* Keeps *e under a given id (a snapshot being restored: ids come in
 * increasing order and next_id is set by the caller afterwards). */
void wr_qdlx_restore(wr_qdlx_t *d, uint64_t id, const wr_qent_t *e, int reason);
/* The live entry with this id, or NULL. */
wr_qdlx_ent_t *wr_qdlx_find(wr_qdlx_t *d, uint64_t id);
/* Removes the live entry with this id, moving its payload to *out.
 * Returns 1, or 0 if there is none (settled already). */
int wr_qdlx_remove(wr_qdlx_t *d, uint64_t id, wr_qent_t *out);
/* Every live entry READY again (a new leader; a retry). */
void wr_qdlx_reset(wr_qdlx_t *d, int only_retry);
/* The next live READY entry at or after the scan position, or NULL; the
 * scan position moves past entries that are not READY. */
wr_qdlx_ent_t *wr_qdlx_next_ready(wr_qdlx_t *d);
/* Marks an entry READY again (its publish failed): the scan goes back. */
void wr_qdlx_unsend(wr_qdlx_t *d, wr_qdlx_ent_t *x);

#endif
