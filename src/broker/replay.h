/*
 * replay.h - dead-letter inspection and replay, and moving messages from
 * one queue to another (what RabbitMQ users set up a shovel for).
 *
 * A dead-lettered message carries RabbitMQ's x-first-death-queue,
 * -reason and -exchange headers.  wr_replay_scan walks a queue's ready
 * messages (without consuming them) so the API can group them;
 * wr_replay_run takes the messages that match a filter, in queue order,
 * publishes a copy of each (properties and headers kept, plus the marker
 * header x-warren-replayed, a count) back to the queue it died in, or to
 * a queue or exchange given, and leaves the rest where they were.
 *
 * Crash safety, as a consumer's ack: the original stays in its queue,
 * held like an unacknowledged delivery, until the store generation that
 * holds the copy is on disk (wr_replay_store_synced); only then is it
 * acknowledged.  A crash before that leaves the original (and perhaps the
 * copy): a message may be duplicated, never lost — at-least-once.  A
 * failed sync puts the originals back.
 */
#ifndef WR_REPLAY_H
#define WR_REPLAY_H

#include "broker/ops.h"

typedef struct wr_replay {
    size_t max;               /* at most this many; 0: all that match */
    const char *reason;       /* x-first-death-reason must equal, or NULL */
    const char *from_queue;   /* x-first-death-queue must equal, or NULL */
    const char *header;       /* this header must be present ... */
    const char *header_value; /* ... with this value (text of it), or NULL */
    wr_queue_t *to_queue;     /* target queue, or NULL */
    const char *to_exchange;  /* target exchange, or NULL */
    const char *routing_key;  /* with to_exchange: NULL keeps the message's */
    int move;                 /* a move: every message, no marker, to to_queue */
} wr_replay_t;

/* Calls fn for each ready message of q (up to limit), in queue order,
 * with its x-first-death-queue, -reason and -exchange (empty if absent);
 * returns how many were seen. */
size_t wr_replay_scan(wr_queue_t *q, size_t limit,
                      void (*fn)(void *ctx, wr_bytes_t queue, wr_bytes_t reason,
                                 wr_bytes_t exchange),
                      void *ctx);

/* Replays (or moves) from q; *done is how many went.  0, or -1 with the
 * refusal in r (permissions are checked as for basic.get on q and
 * basic.publish on the target). */
int wr_replay_run(wr_vhost_t *vh, wr_queue_t *q, const wr_replay_t *s, const wr_actor_t *who,
                  size_t *done, wr_reply_t *r);

/* The store of vh synced every generation up to gen (err: failed). */
void wr_replay_store_synced(wr_vhost_t *vh, uint64_t gen, int err);

/* Originals still waiting for their copies' sync (tests). */
size_t wr_replay_pending(void);

#endif
