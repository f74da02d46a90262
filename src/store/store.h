/*
 * store.h - warren's message store: durable metadata and persistent
 * messages on disk, group-committed.  The format, write order and recovery
 * are specified in docs/store-format.md; read that first.
 *
 * The store knows nothing of queues or channels: it stores records and
 * reports what it recovered through callbacks (wr_store_recovery_t).  It
 * runs on the event-loop thread; only fdatasync runs on a worker (libuv's
 * thread pool), and its completion comes back to the loop through the
 * synced callback.  With loop == NULL syncs run inline (tests).
 *
 * Durability protocol: every append belongs to the current generation
 * (wr_store_gen).  wr_store_flush writes the buffered records and closes
 * the generation; the synced callback later reports that every generation
 * up to g is on disk (err == 0) or failed (err < 0, sticky for those
 * generations: they are never reported synced).
 */
#ifndef WR_STORE_H
#define WR_STORE_H

#include <uv.h>

#include "core/buf.h"
#include "store/io.h"

typedef struct wr_store wr_store_t;

/* Where a message record lives: segment number (0 = not stored) and byte
 * offset of the record in it. */
typedef struct wr_loc {
    uint32_t seg;
    uint32_t off;
} wr_loc_t;

/* Metadata kinds and flags as stored. */
#define WR_STORE_QF_DURABLE     1
#define WR_STORE_QF_EXCLUSIVE   2
#define WR_STORE_QF_AUTO_DELETE 4
#define WR_STORE_XF_DURABLE     1
#define WR_STORE_XF_AUTO_DELETE 2
#define WR_STORE_XF_INTERNAL    4

typedef struct wr_store_recovery {
    void *ctx;
    void (*exchange)(void *ctx, wr_bytes_t name, uint8_t type, uint8_t flags, wr_bytes_t args);
    void (*queue)(void *ctx, uint32_t id, wr_bytes_t name, uint8_t flags, wr_bytes_t args);
    /* kind 0: destination is a queue, 1: an exchange. */
    void (*binding)(void *ctx, wr_bytes_t source, uint8_t kind, wr_bytes_t dest, wr_bytes_t key,
                    wr_bytes_t args);
    /* A message of queue_id; redelivered if it may have been delivered
     * before. */
    /* order ranks the queue's messages in publish order (a compaction copy
     * keeps its original's rank): recovered messages of a queue come in
     * segment order, and copies must be put back where order says. */
    void (*message)(void *ctx, uint32_t queue_id, wr_loc_t loc, uint64_t order, uint32_t body_size,
                    int redelivered);
} wr_store_recovery_t;

typedef void (*wr_store_synced_cb)(void *ctx, uint64_t gen, int err);

/* A message read back: views into the caller's scratch buffer. */
typedef struct wr_store_msg {
    uint8_t flags; /* bit 0: persistent */
    wr_bytes_t exchange;
    wr_bytes_t routing_key;
    wr_bytes_t props;
    wr_bytes_t body;
} wr_store_msg_t;

typedef struct wr_store_stats {
    uint64_t segments;
    uint64_t bytes;
    uint64_t live_refs;
    uint64_t syncs;
    uint64_t corrupt_records;
    uint64_t recovered_messages;
    uint64_t compactions;
    double recovery_ms;
} wr_store_stats_t;

/* Opens (creating if needed) the store in dir and recovers it, calling rec
 * for everything found.  Returns 0 or a negative error (errno or WR_E*);
 * err describes it. */
int wr_store_open(wr_store_t **out, const char *dir, wr_io_t *io, uv_loop_t *loop,
                  const wr_store_recovery_t *rec, wr_store_synced_cb synced, void *synced_ctx,
                  char *err, size_t errlen);
/* Flushes and syncs everything; with clean != 0 marks the shutdown clean
 * so the next start trusts the delivered marks.  Frees the store. */
void wr_store_close(wr_store_t *st, int clean);

/* ---- metadata (all buffered until the next flush) ---- */
uint32_t wr_store_queue_add(wr_store_t *st, wr_bytes_t name, uint8_t flags, wr_bytes_t args);
void wr_store_queue_delete(wr_store_t *st, uint32_t id);
void wr_store_exchange_add(wr_store_t *st, wr_bytes_t name, uint8_t type, uint8_t flags,
                           wr_bytes_t args);
void wr_store_exchange_delete(wr_store_t *st, wr_bytes_t name);
void wr_store_bind(wr_store_t *st, int add, wr_bytes_t source, uint8_t kind, wr_bytes_t dest,
                   wr_bytes_t key, wr_bytes_t args);

/* ---- messages ---- */

/* Appends a message for the nq queues (ids) and returns its location with
 * one live reference per queue.  Returns 0, or a negative error when the
 * store has failed and takes no writes (the disk alarm is on). */
int wr_store_append(wr_store_t *st, const uint32_t *qids, uint8_t nq, uint8_t flags,
                    wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props, wr_bytes_t body,
                    wr_loc_t *loc);
/* The message left the queue for good (ack, reject, expiry, ...): writes
 * an ack record and drops one reference. */
void wr_store_ack(wr_store_t *st, uint32_t qid, wr_loc_t loc);
/* Drops one reference without a record (the queue was deleted or purged,
 * which the metadata already says). */
void wr_store_release(wr_store_t *st, wr_loc_t loc);
/* Records that the message was delivered (for the redelivered flag). */
void wr_store_delivered(wr_store_t *st, uint32_t qid, wr_loc_t loc);
/* Reads a message back into scratch.  Returns 0, or WR_ECORRUPT/-errno. */
int wr_store_read(wr_store_t *st, wr_loc_t loc, wr_buf_t *scratch, wr_store_msg_t *out);

/* ---- compaction ---- */

/* One relocated message: the record at old_off of the compacted segment
 * now lives at new_loc (for every queue that still held it). */
typedef struct wr_reloc {
    uint32_t old_off;
    wr_loc_t new_loc;
} wr_reloc_t;

/* The broker must point every entry (ready or unacknowledged) at segment
 * seg, offset tab[i].old_off, to tab[i].new_loc; tab is sorted by old_off. */
typedef void (*wr_store_reloc_cb)(void *ctx, uint32_t seg, const wr_reloc_t *tab, size_t n);

/* If an old segment is mostly dead (under a quarter of its references
 * live), copies its live messages to the current segment, makes the copies
 * durable, deletes the old segment, and calls cb to relocate the entries.
 * Runs synchronously (one fdatasync on the loop thread), at most one
 * segment per call.  Returns 1 if a segment was compacted, 0 if none
 * needed it, or a negative error. */
int wr_store_compact(wr_store_t *st, wr_store_reloc_cb cb, void *ctx);

/* ---- commit ---- */

/* The generation that what was appended so far will be synced in. */
uint64_t wr_store_gen(const wr_store_t *st);
/* The highest generation known to be on disk. */
uint64_t wr_store_synced_gen(const wr_store_t *st);
/* Writes buffered records and starts a sync if none is running. */
void wr_store_flush(wr_store_t *st);
/* Nonzero once a write or sync failed and until wr_store_recover_io
 * succeeds; appends fail meanwhile. */
int wr_store_failed(const wr_store_t *st);
/* Nonzero while a sync runs on a worker thread: wr_store_close would have
 * to wait for it (by running the loop). */
int wr_store_busy(const wr_store_t *st);
/* Probes the disk (write + sync of a scratch file, free space >= min_free)
 * and, if it works, starts a new segment and accepts writes again.
 * Returns 0 when the store is healthy. */
int wr_store_recover_io(wr_store_t *st, uint64_t min_free);
int64_t wr_store_free_space(wr_store_t *st);
void wr_store_get_stats(const wr_store_t *st, wr_store_stats_t *out);
/* For tests: seal the current segment once it reaches bytes (0 restores
 * the default, 64 MiB), so that a test rolls many segments with little
 * data.  Takes effect at the next flush. */
void wr_store_set_segment_size(wr_store_t *st, uint64_t bytes);

#endif
