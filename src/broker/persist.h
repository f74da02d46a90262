/*
 * persist.h - the glue between the broker and the message store: opens the
 * store and rebuilds the vhost from what it recovered, writes metadata
 * changes of durable entities, and runs the disk alarm.
 *
 * The store (src/store) knows records, not queues; the broker knows queues,
 * not files.  This module is the only one that speaks both.
 */
#ifndef WR_PERSIST_H
#define WR_PERSIST_H

#include "broker/vhost.h"

/* Opens the store in data_dir and recovers durable exchanges, queues,
 * bindings and messages into vh; sets vh->store.  Returns 0 or an error
 * with err filled. */
int wr_persist_open(wr_vhost_t *vh, const char *data_dir, uint64_t segment_size, char *err,
                    size_t errlen);
/* Flushes, syncs and closes the store (clean shutdown); vh->store = NULL. */
void wr_persist_close(wr_vhost_t *vh);
/* Once a second, for every vhost's store: compaction, free space against
 * disk_free_limit, recovery of a failed store; then the disk alarm (on
 * while any store is short of space or failing). */
void wr_persist_tick(uint64_t disk_free_limit);

/* Metadata hooks, called by the broker when durable entities change; no-ops
 * without a store or during recovery. */
void wr_persist_queue_declared(wr_queue_t *q);
void wr_persist_queue_deleted(wr_queue_t *q);
void wr_persist_exchange_declared(wr_exchange_t *x);
void wr_persist_exchange_deleted(wr_exchange_t *x);
void wr_persist_binding(wr_binding_t *b, int add);

#endif
