/* persist.c - broker <-> store glue: recovery, metadata, disk alarm (see persist.h). */
#include "broker/persist.h"
#include "broker/replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/conn.h"
#include "broker/policy.h"
#include "broker/quorum.h"
#include "core/err.h"
#include "core/log.h"

/* Recovery context: queues by store id, and those to delete afterwards. */
typedef struct recovery {
    wr_vhost_t *vh;
    wr_map_t by_id;
    wr_queue_t **exclusive;
    size_t n_exclusive;
    uint64_t messages;
} recovery_t;

static void rec_exchange(void *ctx, wr_bytes_t name, uint8_t type, uint8_t flags, wr_bytes_t args)
{
    recovery_t *r = ctx;
    /* Bit 7 of the stored type marks an x-delayed-message exchange. */
    int delayed = (type & 0x80) != 0;
    type &= 0x7f;
    if (type > WR_EX_LAST || wr_vhost_exchange(r->vh, name))
        return;
    wr_exchange_t *x = wr_exchange_declare(
        r->vh, name, (wr_extype_t)type, (flags & WR_STORE_XF_DURABLE) != 0,
        (flags & WR_STORE_XF_AUTO_DELETE) != 0, (flags & WR_STORE_XF_INTERNAL) != 0, args);
    x->delayed = (uint8_t)delayed;
}

static void rec_queue(void *ctx, uint32_t id, wr_bytes_t name, uint8_t flags, wr_bytes_t args)
{
    recovery_t *r = ctx;
    if (wr_vhost_queue(r->vh, name))
        return;
    wr_queue_args_t qa;
    char err[512];
    if (wr_queue_args_parse(args, name, r->vh->name, &qa, err, sizeof err) != 0) {
        wr_error("recovery: queue '%.*s' has invalid arguments (%s); using none", (int)name.n,
                 (const char *)name.p, err);
        wr_queue_args_parse((wr_bytes_t){NULL, 0}, name, r->vh->name, &qa, err, sizeof err);
    }
    int exclusive = (flags & WR_STORE_QF_EXCLUSIVE) != 0;
    wr_queue_t *q = wr_queue_new(r->vh, name, 1, exclusive, (flags & WR_STORE_QF_AUTO_DELETE) != 0,
                                 NULL, args, &qa);
    q->store_id = id;
    uint32_t k = id;
    wr_map_put(&r->by_id, (wr_bytes_t){(const uint8_t *)&k, 4}, q);
    if (exclusive) {
        /* Its connection is gone: RabbitMQ deletes it at startup. */
        r->exclusive = wr_xrealloc(r->exclusive, (r->n_exclusive + 1) * sizeof *r->exclusive);
        r->exclusive[r->n_exclusive++] = q;
    }
}

static void rec_binding(void *ctx, wr_bytes_t source, uint8_t kind, wr_bytes_t dest, wr_bytes_t key,
                        wr_bytes_t args)
{
    recovery_t *r = ctx;
    wr_exchange_t *src = wr_vhost_exchange(r->vh, source);
    if (src == NULL)
        return;
    if (kind == 0) {
        wr_queue_t *q = wr_vhost_queue(r->vh, dest);
        if (q)
            wr_bind(src, q, NULL, key, args);
    } else {
        wr_exchange_t *dx = wr_vhost_exchange(r->vh, dest);
        if (dx)
            wr_bind(src, NULL, dx, key, args);
    }
}

static void rec_message(void *ctx, uint32_t queue_id, wr_loc_t loc, uint64_t order, uint32_t size,
                        int redelivered)
{
    recovery_t *r = ctx;
    uint32_t k = queue_id;
    wr_queue_t *q = wr_map_get(&r->by_id, (wr_bytes_t){(const uint8_t *)&k, 4});
    if (q == NULL)
        return;
    wr_queue_push_recovered(q, loc, order, size, redelivered);
    r->messages++;
}

static void on_synced(void *ctx, uint64_t gen, int err)
{
    wr_vhost_t *vh = ctx;
    /* Generations up to the store's synced one are on disk; on a failure,
     * every one up to gen is lost. */
    wr_durable_update(&vh->durable, vh->store ? wr_store_synced_gen(vh->store) : gen,
                      err ? gen : 0);
    wr_replay_store_synced(ctx, gen, err);
    if (err)
        wr_conn_set_alarm(WR_ALARM_DISK, 1);
}

int wr_persist_open(wr_vhost_t *vh, const char *data_dir, uint64_t segment_size, char *err,
                    size_t errlen)
{
    recovery_t r = {vh, {0}, NULL, 0, 0};
    wr_map_init(&r.by_id);
    wr_store_recovery_t rec = {&r, rec_exchange, rec_queue, rec_binding, rec_message};
    vh->recovering = 1;
    wr_store_t *st;
    int rc = wr_store_open(&st, data_dir, wr_io_posix(), wr_loop, &rec, on_synced, vh, err, errlen);
    vh->recovering = 0;
    wr_map_free(&r.by_id);
    if (rc != 0) {
        free(r.exclusive);
        return rc;
    }
    vh->store = st;
    free(vh->dir);
    vh->dir = wr_xstrndup(data_dir, strlen(data_dir));
    wr_durable_reset(&vh->durable); /* generations count afresh in a new store */
    if (segment_size)
        wr_store_set_segment_size(st, segment_size);
    for (size_t i = 0; i < r.n_exclusive; i++)
        wr_queue_delete(r.exclusive[i]);
    /* Quorum queues recover from their own logs. */
    size_t qi0 = 0;
    wr_map_slot_t *qs;
    while (wr_map_next(&vh->queues, &qi0, &qs)) {
        wr_queue_t *q = qs->value;
        char qerr[512];
        if (q->type->open && q->qq == NULL && q->type->open(q, qerr, sizeof qerr) != 0)
            wr_error("cannot start %s queue '%s' in vhost '%s': %s", q->type->name, q->name,
                     vh->name, qerr);
    }
    /* Delay queues find their exchange again. */
    size_t qi = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->exchanges, &qi, &sl)) {
        wr_exchange_t *x = sl->value;
        wr_queue_t *dq = x->delayed ? wr_delay_queue(x) : NULL;
        if (dq) {
            dq->delay = 1;
            free(dq->args.dlx);
            dq->args.dlx = wr_xstrndup(x->name, x->name_len);
        }
    }
    qi = 0;
    while (wr_map_next(&vh->queues, &qi, &sl))
        wr_queue_recovery_done(sl->value);
    wr_policy_apply_all(vh); /* the vhost's policies were loaded first */
    free(r.exclusive);
    wr_store_stats_t s;
    wr_store_get_stats(st, &s);
    wr_info("recovered %zu queues, %zu exchanges and %" PRIu64 " messages from %s in %.1f ms",
            vh->queues.count, vh->exchanges.count, r.messages, data_dir, s.recovery_ms);
    return 0;
}

void wr_persist_close(wr_vhost_t *vh)
{
    if (vh->store == NULL)
        return;
    wr_store_close(vh->store, 1);
    vh->store = NULL;
}

static void relocate(void *ctx, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    wr_vhost_t *vh = ctx;
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        wr_queue_t *q = sl->value;
        if (q->store_id)
            wr_queue_relocate(q, seg, tab, n);
    }
    wr_conn_relocate(vh, seg, tab, n);
}

/* One vhost's store: compaction, recovery from failed writes; returns
 * whether it is short of space or failing (with the free space seen). */
static int tick_store(wr_vhost_t *vh, uint64_t disk_free_limit, int64_t *free_b)
{
    wr_store_t *st = vh->store;
    /* Reclaim space pinned by a few long-lived messages: one sparse old
     * segment per second at most. */
    if (!wr_store_failed(st))
        wr_store_compact(st, relocate, vh);
    *free_b = wr_store_free_space(st);
    int low = *free_b >= 0 && (uint64_t)*free_b < disk_free_limit;
    if (wr_store_failed(st) && !low && wr_store_recover_io(st, disk_free_limit) != 0)
        low = 1;
    return low || wr_store_failed(st);
}

void wr_persist_tick(uint64_t disk_free_limit)
{
    int low = 0, failed = 0;
    int64_t free_b = -1;
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        if (vh->store == NULL)
            continue;
        int64_t f;
        if (tick_store(vh, disk_free_limit, &f))
            low = 1;
        failed |= wr_store_failed(vh->store);
        if (f >= 0 && (free_b < 0 || f < free_b))
            free_b = f;
    }
    if (low != ((wr_broker.alarms & WR_ALARM_DISK) != 0)) {
        if (low)
            wr_warn("disk: %" PRId64 " bytes free, limit %" PRIu64 "%s", free_b, disk_free_limit,
                    failed ? " (a store has failed writes)" : "");
        wr_conn_set_alarm(WR_ALARM_DISK, low);
    }
}

/* ---- metadata hooks ---- */

static wr_store_t *writable(const wr_vhost_t *vh)
{
    return vh->recovering ? NULL : vh->store;
}

void wr_persist_queue_declared(wr_queue_t *q)
{
    wr_store_t *st = writable(q->vhost);
    if (st == NULL || !q->durable)
        return;
    uint8_t flags = WR_STORE_QF_DURABLE | (q->exclusive ? WR_STORE_QF_EXCLUSIVE : 0) |
                    (q->auto_delete ? WR_STORE_QF_AUTO_DELETE : 0);
    q->store_id = wr_store_queue_add(st, (wr_bytes_t){(uint8_t *)q->name, q->name_len}, flags,
                                     (wr_bytes_t){q->args_raw.p, q->args_raw.len});
}

void wr_persist_queue_deleted(wr_queue_t *q)
{
    wr_store_t *st = writable(q->vhost);
    if (st && q->store_id)
        wr_store_queue_delete(st, q->store_id);
}

void wr_persist_exchange_declared(wr_exchange_t *x)
{
    wr_store_t *st = writable(x->vhost);
    if (st == NULL || !x->durable || x->builtin)
        return;
    uint8_t flags = WR_STORE_XF_DURABLE | (x->auto_delete ? WR_STORE_XF_AUTO_DELETE : 0) |
                    (x->internal ? WR_STORE_XF_INTERNAL : 0);
    wr_store_exchange_add(st, (wr_bytes_t){(uint8_t *)x->name, x->name_len},
                          (uint8_t)(x->type | (x->delayed ? 0x80 : 0)), flags,
                          (wr_bytes_t){x->args_raw.p, x->args_raw.len});
}

void wr_persist_exchange_deleted(wr_exchange_t *x)
{
    wr_store_t *st = writable(x->vhost);
    if (st && x->durable && !x->builtin)
        wr_store_exchange_delete(st, (wr_bytes_t){(uint8_t *)x->name, x->name_len});
}

void wr_persist_binding(wr_binding_t *b, int add)
{
    wr_store_t *st = writable(b->source->vhost);
    if (st == NULL || !b->source->durable)
        return;
    /* As RabbitMQ: a binding is durable when both its ends are. */
    if (b->dq ? !b->dq->durable : !b->dx->durable)
        return;
    wr_bytes_t dest = b->dq ? (wr_bytes_t){(uint8_t *)b->dq->name, b->dq->name_len}
                            : (wr_bytes_t){(uint8_t *)b->dx->name, b->dx->name_len};
    wr_store_bind(st, add, (wr_bytes_t){(uint8_t *)b->source->name, b->source->name_len},
                  b->dq ? 0 : 1, dest, (wr_bytes_t){(uint8_t *)b->key, b->key_len},
                  (wr_bytes_t){b->args.p, b->args.len});
}
