/*
 * queue.c - queues: ready messages, dispatch to consumers, requeue at the
 * original position, expiry, length limits and dead-lettering (see
 * queue.h for the data structure).
 *
 * Entry life cycle:
 *
 *   push --> ready (ring or heap) --pop--> out (unacked, in a channel)
 *              ^   |                         |  settle  -> gone
 *              |   | expire / drop-head      |  discard -> dead-lettered or gone
 *              |   v                         |  requeue -> back to ready (heap)
 *              |  dead-lettered or gone      |
 *              '-----------------------------'
 */
#include "broker/queue.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "broker/persist.h"
#include "broker/vhost.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

static wr_queue_t *pending_head;

/* ---- arguments ---- */

/* Reports an invalid argument in RabbitMQ's words: "invalid arg 'K' for
 * queue 'Q' in vhost 'V': DETAIL", DETAIL being an Erlang term as RabbitMQ
 * prints it. */
static int bad_arg(char *err, size_t errlen, wr_bytes_t k, wr_bytes_t qname, const char *vhost,
                   const char *detail)
{
    snprintf(err, errlen, "invalid arg '%.*s' for queue '%.*s' in vhost '%s': %s", (int)k.n,
             (const char *)k.p, (int)qname.n, (const char *)qname.p, vhost, detail);
    return WR_EINVAL;
}

/* Integer argument check as RabbitMQ's check_int_arg and friends. */
static int int_arg(const wr_field_t *f, int64_t *v, char *why, size_t n)
{
    if (!wr_field_int(f, v)) {
        snprintf(why, n, "\"expected integer, got %s\"", wr_field_type_name(f->type));
        return -1;
    }
    if (*v < 0) {
        snprintf(why, n, "{value_negative,%" PRId64 "}", *v);
        return -1;
    }
    return 0;
}

#define MAX_EXPIRY 4294967295LL /* RabbitMQ's largest TTL / expiry */

int wr_queue_args_parse(wr_bytes_t table, wr_bytes_t qname, const char *vhost, wr_queue_args_t *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->message_ttl = out->expires = out->max_length = out->max_length_bytes = -1;
    out->overflow = WR_OVERFLOW_DROP_HEAD;
    wr_table_iter_t it;
    wr_table_iter_init(&it, table);
    wr_bytes_t k;
    wr_field_t f;
    char why[128];
    int has_dlrk = 0;
    while (wr_table_next(&it, &k, &f) == 1) {
        int64_t v = 0;
        why[0] = '\0';
        if (wr_bytes_eq_str(k, "x-message-ttl") || wr_bytes_eq_str(k, "x-expires")) {
            int expires = k.n == 9;
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (expires && v == 0)
                    snprintf(why, sizeof why, "{value_zero,0}");
                else if (v > MAX_EXPIRY)
                    snprintf(why, sizeof why, "{value_too_large,%" PRId64 "}", v);
                else if (expires)
                    out->expires = v;
                else
                    out->message_ttl = v;
            }
        } else if (wr_bytes_eq_str(k, "x-max-length") || wr_bytes_eq_str(k, "x-max-length-bytes")) {
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (k.n == 12)
                    out->max_length = v;
                else
                    out->max_length_bytes = v;
            }
        } else if (wr_bytes_eq_str(k, "x-max-priority")) {
            if (int_arg(&f, &v, why, sizeof why) == 0) {
                if (v > 255)
                    snprintf(why, sizeof why, "{max_value_exceeded,%" PRId64 "}", v);
                else
                    out->max_priority = (uint8_t)v;
            }
        } else if (wr_bytes_eq_str(k, "x-delivery-limit")) {
            if (int_arg(&f, &v, why, sizeof why) == 0)
                out->delivery_limit = v;
        } else if (wr_bytes_eq_str(k, "x-dead-letter-exchange") ||
                   wr_bytes_eq_str(k, "x-dead-letter-routing-key")) {
            if (f.type != 'S') {
                snprintf(err, errlen,
                         "invalid type '%s' for arg '%.*s' in queue '%.*s' in vhost '%s'",
                         wr_field_type_name(f.type), (int)k.n, (const char *)k.p, (int)qname.n,
                         (const char *)qname.p, vhost);
                wr_queue_args_free(out);
                return WR_EINVAL;
            }
            char *str = wr_xstrndup((const char *)f.v.bytes.p, f.v.bytes.n);
            if (k.n == strlen("x-dead-letter-exchange")) {
                free(out->dlx);
                out->dlx = str;
            } else {
                free(out->dlrk);
                out->dlrk = str;
                has_dlrk = 1;
            }
        } else if (wr_bytes_eq_str(k, "x-overflow")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (wr_bytes_eq_str(f.v.bytes, "drop-head"))
                out->overflow = WR_OVERFLOW_DROP_HEAD;
            else if (wr_bytes_eq_str(f.v.bytes, "reject-publish"))
                out->overflow = WR_OVERFLOW_REJECT_PUBLISH;
            else if (wr_bytes_eq_str(f.v.bytes, "reject-publish-dlx"))
                out->overflow = WR_OVERFLOW_REJECT_PUBLISH_DLX;
            else
                snprintf(why, sizeof why, "invalid_overflow");
        } else if (wr_bytes_eq_str(k, "x-single-active-consumer")) {
            if (f.type != 't')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else
                out->single_active = (uint8_t)f.v.i;
        } else if (wr_bytes_eq_str(k, "x-queue-type")) {
            if (f.type != 'S')
                snprintf(why, sizeof why, "{unacceptable_type,%s}", wr_field_type_name(f.type));
            else if (!wr_bytes_eq_str(f.v.bytes, "classic"))
                snprintf(why, sizeof why, "\"unsupported queue type '%.*s'\"",
                         (int)(f.v.bytes.n > 64 ? 64 : f.v.bytes.n), (const char *)f.v.bytes.p);
        }
        if (why[0]) {
            wr_queue_args_free(out);
            return bad_arg(err, errlen, k, qname, vhost, why);
        }
    }
    if (has_dlrk && !out->dlx) {
        wr_queue_args_free(out);
        return bad_arg(err, errlen, WR_BYTES_LIT("x-dead-letter-routing-key"), qname, vhost,
                       "routing_key_but_no_dlx_defined");
    }
    return 0;
}

void wr_queue_args_free(wr_queue_args_t *a)
{
    free(a->dlx);
    free(a->dlrk);
    a->dlx = a->dlrk = NULL;
}

/* ---- life cycle ---- */

wr_queue_t *wr_queue_new(wr_vhost_t *vh, wr_bytes_t name, int durable, int exclusive,
                         int auto_delete, void *owner, wr_bytes_t args_raw,
                         const wr_queue_args_t *args)
{
    wr_queue_t *q = wr_xcalloc(1, sizeof *q);
    q->name = wr_xstrndup((const char *)name.p, name.n);
    q->name_len = name.n;
    q->vhost = vh;
    q->refs = 1;
    q->durable = (uint8_t)durable;
    q->exclusive = (uint8_t)exclusive;
    q->auto_delete = (uint8_t)auto_delete;
    q->owner = owner;
    wr_buf_init(&q->args_raw);
    wr_buf_put(&q->args_raw, args_raw.p, args_raw.n);
    q->args = *args;
    q->last_used = wr_now_ms();
    wr_map_put(&vh->queues, name, q);
    vh->names_gen++;
    return q;
}

static void ring_free(wr_queue_t *q);

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void wr_queue_unref(wr_queue_t *q)
{
    if (--q->refs > 0)
        return;
    ring_free(q);
    free(q->heap);
    free(q->blks);
    free(q->exp);
    free(q->hpos_key);
    free(q->hpos_val);
    wr_buf_free(&q->args_raw);
    wr_queue_args_free(&q->args);
    free(q->name);
    free(q);
}

/* ---- ready storage: ring + heap ---- */

/* The ring is a chain of fixed blocks rather than one array that doubles:
 * a backlog of millions then costs its 40 bytes per entry and no more (no
 * half-empty doubled array, no copy on growth), and a drained queue gives
 * its blocks back. */
uint64_t wr_queue_block_bytes;
static uint64_t mem_peak; /* for wr_queue_trim_memory */

static wr_qblock_t *block_new(wr_queue_t *q)
{
    wr_qblock_t *b = q->spare;
    if (b) {
        q->spare = NULL;
    } else {
        b = wr_xmalloc(sizeof *b);
        wr_queue_block_bytes += sizeof *b;
        if (wr_queue_block_bytes + wr_msg_mem_bytes > mem_peak)
            mem_peak = wr_queue_block_bytes + wr_msg_mem_bytes;
    }
    b->next = NULL;
    return b;
}

/* The array of block pointers lets an expiring entry in the middle of the
 * ring be found by binary search; it changes once per block, not per
 * message. */
static void blks_push(wr_queue_t *q, wr_qblock_t *b)
{
    if (q->blk_n == q->blk_cap) {
        size_t cap = q->blk_cap ? q->blk_cap * 2 : 8;
        wr_qblock_t **a = wr_xmalloc(cap * sizeof *a);
        for (size_t i = 0; i < q->blk_n; i++)
            a[i] = q->blks[(q->blk_head + i) % q->blk_cap];
        free(q->blks);
        q->blks = a;
        q->blk_cap = cap;
        q->blk_head = 0;
    }
    q->blks[(q->blk_head + q->blk_n++) % q->blk_cap] = b;
}

static void blks_pop(wr_queue_t *q)
{
    q->blk_head = (q->blk_head + 1) % q->blk_cap;
    q->blk_n--;
}

static wr_qblock_t *blk_at(const wr_queue_t *q, size_t i)
{
    return q->blks[(q->blk_head + i) % q->blk_cap];
}

static void ring_push(wr_queue_t *q, const wr_qent_t *e)
{
    if (q->tail_blk == NULL) {
        q->head_blk = q->tail_blk = block_new(q);
        q->head_i = q->tail_i = 0;
        blks_push(q, q->tail_blk);
    } else if (q->tail_i == WR_QBLOCK) {
        wr_qblock_t *b = block_new(q);
        q->tail_blk->next = b;
        q->tail_blk = b;
        q->tail_i = 0;
        blks_push(q, b);
    }
    q->tail_blk->e[q->tail_i++] = *e;
    q->ring_count++;
}

static wr_qent_t *ring_front(wr_queue_t *q)
{
    return q->ring_count ? &q->head_blk->e[q->head_i] : NULL;
}

static void ring_pop(wr_queue_t *q)
{
    q->ring_count--;
    if (q->ring_count == 0) {
        /* Empty: keep one block for the next message, free the rest. */
        while (q->head_blk != q->tail_blk) {
            wr_qblock_t *b = q->head_blk;
            q->head_blk = b->next;
            free(b);
            wr_queue_block_bytes -= sizeof *b;
            blks_pop(q);
        }
        q->head_i = q->tail_i = 0;
        return;
    }
    if (++q->head_i == WR_QBLOCK) {
        wr_qblock_t *b = q->head_blk;
        q->head_blk = b->next;
        q->head_i = 0;
        blks_pop(q);
        if (q->spare == NULL) {
            q->spare = b;
        } else {
            free(b);
            wr_queue_block_bytes -= sizeof *b;
        }
    }
}

static void ring_free(wr_queue_t *q)
{
    while (q->head_blk) {
        wr_qblock_t *b = q->head_blk;
        q->head_blk = b->next;
        free(b);
        wr_queue_block_bytes -= sizeof *b;
    }
    if (q->spare)
        wr_queue_block_bytes -= sizeof *q->spare;
    free(q->spare);
    q->tail_blk = q->spare = NULL;
    q->blk_head = q->blk_n = 0;
}

/* Finds the ready entry with key seq in the ring, or NULL. */
static wr_qent_t *ring_find(wr_queue_t *q, uint64_t seq)
{
    if (q->ring_count == 0)
        return NULL;
    /* The last block whose first entry is <= seq (the head block's consumed
     * slots still hold their old, smaller keys, so the order holds). */
    size_t lo = 0, hi = q->blk_n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (blk_at(q, mid)->e[0].seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    wr_qblock_t *b = blk_at(q, lo);
    size_t a = b == q->head_blk ? q->head_i : 0;
    size_t z = b == q->tail_blk ? q->tail_i : WR_QBLOCK;
    while (a < z) {
        size_t mid = a + (z - a) / 2;
        if (b->e[mid].seq < seq)
            a = mid + 1;
        else
            z = mid;
    }
    size_t end = b == q->tail_blk ? q->tail_i : WR_QBLOCK;
    return a < end && b->e[a].seq == seq ? &b->e[a] : NULL;
}

/* ---- heap positions of entries with a deadline ---- */

/* An open-addressing hash (linear probing, backward-shift deletion) from
 * heap key to heap index, for the entries that have a deadline only, so
 * that heaps of entries without one do no extra work.  UINT64_MAX is never
 * a key. */
#define HPOS_EMPTY UINT64_MAX

static size_t hpos_slot(const wr_queue_t *q, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (q->hpos_cap - 1);
}

static void hpos_grow(wr_queue_t *q)
{
    uint64_t *ok = q->hpos_key;
    uint32_t *ov = q->hpos_val;
    size_t ocap = q->hpos_cap;
    q->hpos_cap = ocap ? ocap * 2 : 64;
    q->hpos_key = wr_xmalloc(q->hpos_cap * sizeof *q->hpos_key);
    q->hpos_val = wr_xmalloc(q->hpos_cap * sizeof *q->hpos_val);
    for (size_t i = 0; i < q->hpos_cap; i++)
        q->hpos_key[i] = HPOS_EMPTY;
    for (size_t i = 0; i < ocap; i++) {
        if (ok[i] == HPOS_EMPTY)
            continue;
        size_t s = hpos_slot(q, ok[i]);
        while (q->hpos_key[s] != HPOS_EMPTY)
            s = (s + 1) & (q->hpos_cap - 1);
        q->hpos_key[s] = ok[i];
        q->hpos_val[s] = ov[i];
    }
    free(ok);
    free(ov);
}

static void hpos_put(wr_queue_t *q, uint64_t key, size_t idx)
{
    if ((q->hpos_count + 1) * 2 > q->hpos_cap)
        hpos_grow(q);
    size_t s = hpos_slot(q, key);
    while (q->hpos_key[s] != HPOS_EMPTY && q->hpos_key[s] != key)
        s = (s + 1) & (q->hpos_cap - 1);
    if (q->hpos_key[s] == HPOS_EMPTY)
        q->hpos_count++;
    q->hpos_key[s] = key;
    q->hpos_val[s] = (uint32_t)idx;
}

/* The slot of key, or SIZE_MAX. */
static size_t hpos_find(const wr_queue_t *q, uint64_t key)
{
    if (q->hpos_count == 0)
        return SIZE_MAX;
    size_t s = hpos_slot(q, key);
    while (q->hpos_key[s] != HPOS_EMPTY) {
        if (q->hpos_key[s] == key)
            return s;
        s = (s + 1) & (q->hpos_cap - 1);
    }
    return SIZE_MAX;
}

static void hpos_del(wr_queue_t *q, uint64_t key)
{
    size_t s = hpos_find(q, key);
    if (s == SIZE_MAX)
        return;
    size_t mask = q->hpos_cap - 1;
    q->hpos_count--;
    /* Backward shift: move later entries of the probe run into the hole
     * unless their home slot lies cyclically after the hole. */
    for (size_t j = (s + 1) & mask;; j = (j + 1) & mask) {
        if (q->hpos_key[j] == HPOS_EMPTY)
            break;
        size_t home = hpos_slot(q, q->hpos_key[j]);
        if (((j - home) & mask) >= ((j - s) & mask)) {
            q->hpos_key[s] = q->hpos_key[j];
            q->hpos_val[s] = q->hpos_val[j];
            s = j;
        }
    }
    q->hpos_key[s] = HPOS_EMPTY;
}

/* Puts *e at heap index i, keeping its position known if it can expire. */
static inline void heap_set(wr_queue_t *q, size_t i, const wr_qent_t *e)
{
    q->heap[i] = *e;
    if (e->expires_at)
        hpos_put(q, e->seq, i);
}

static void heap_push(wr_queue_t *q, const wr_qent_t *e)
{
    if (q->heap_count == q->heap_cap) {
        q->heap_cap = q->heap_cap ? q->heap_cap * 2 : 8;
        q->heap = wr_xrealloc(q->heap, q->heap_cap * sizeof *q->heap);
    }
    size_t i = q->heap_count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent].seq <= e->seq)
            break;
        heap_set(q, i, &q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, e);
}

/* Removes the heap entry at index i (the top for a pop). */
static void heap_remove_at(wr_queue_t *q, size_t i)
{
    if (q->heap[i].expires_at)
        hpos_del(q, q->heap[i].seq);
    wr_qent_t last = q->heap[--q->heap_count];
    size_t n = q->heap_count;
    if (i == n)
        return;
    /* last goes into the hole: up if it is smaller than the hole's parent,
     * else down. */
    while (i > 0 && q->heap[(i - 1) / 2].seq > last.seq) {
        heap_set(q, i, &q->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && q->heap[c + 1].seq < q->heap[c].seq)
            c++;
        if (last.seq <= q->heap[c].seq)
            break;
        heap_set(q, i, &q->heap[c]);
        i = c;
    }
    heap_set(q, i, &last);
}

static void heap_pop(wr_queue_t *q)
{
    heap_remove_at(q, 0);
}

/* Drops tombstones from the ring's head, so that the head is a ready entry
 * (or the ring is empty). */
static void skip_tombs(wr_queue_t *q)
{
    wr_qent_t *r;
    while (q->tombs && (r = ring_front(q)) && r->expires_at == WR_QENT_TOMB) {
        ring_pop(q);
        q->tombs--;
    }
}

/* The next ready entry in queue order, without removing it. */
static wr_qent_t *peek(wr_queue_t *q, int *from_heap)
{
    if (q->tombs)
        skip_tombs(q);
    wr_qent_t *r = ring_front(q);
    if (q->heap_count && (r == NULL || q->heap[0].seq < r->seq)) {
        *from_heap = 1;
        return &q->heap[0];
    }
    *from_heap = 0;
    return r;
}

/* Removes the entry peek returned; it leaves the ready state. */
static void remove_front(wr_queue_t *q, int from_heap)
{
    wr_qent_t *e = from_heap ? &q->heap[0] : ring_front(q);
    if (e->expires_at)
        q->n_expiring--;
    if (from_heap)
        heap_pop(q);
    else
        ring_pop(q);
}

/* ---- dead-lettering ---- */

/* A table being built in RabbitMQ's key order: entries are collected as
 * (key, encoded value) and written sorted by key, as RabbitMQ's table
 * updates leave them. */
typedef struct kv {
    wr_bytes_t key;
    size_t off, len; /* encoded value (type octet + value) in the scratch */
} kv_t;

typedef struct kvs {
    kv_t *v;
    size_t n, cap;
    wr_buf_t scratch;
} kvs_t;

static void kvs_add(kvs_t *t, wr_bytes_t key, const wr_field_t *f)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = wr_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    size_t off = t->scratch.len;
    wr_field_put(&t->scratch, f);
    t->v[t->n++] = (kv_t){key, off, t->scratch.len - off};
}

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    size_t n = x->key.n < y->key.n ? x->key.n : y->key.n;
    int c = n ? memcmp(x->key.p, y->key.p, n) : 0;
    return c ? c : (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

static void kvs_write_sorted(kvs_t *t, wr_buf_t *out)
{
    if (t->n > 1)
        qsort(t->v, t->n, sizeof *t->v, kv_cmp);
    size_t top = wr_table_begin(out);
    for (size_t i = 0; i < t->n; i++) {
        wr_table_put_key(out, t->v[i].key);
        wr_buf_put(out, t->scratch.p + t->v[i].off, t->v[i].len);
    }
    wr_table_end(out, top);
}

static void kvs_free(kvs_t *t)
{
    free(t->v);
    wr_buf_free(&t->scratch);
}

static int entry_is(wr_bytes_t entry, wr_bytes_t qname, wr_bytes_t rsn)
{
    wr_field_t fq, fr;
    return wr_table_get(entry, "queue", &fq) && fq.type == 'S' && wr_bytes_eq(fq.v.bytes, qname) &&
           wr_table_get(entry, "reason", &fr) && fr.type == 'S' && wr_bytes_eq(fr.v.bytes, rsn);
}

/* Builds the headers of a dead-lettered copy exactly as RabbitMQ 3.10
 * lays them out (plus x-last-death-*, which RabbitMQ 3.13+ adds):
 * - the top-level table sorted by key;
 * - x-death newest first, one entry per (queue, reason): an existing one
 *   gets count + 1 and moves to the front; an entry RabbitMQ writes into a
 *   message that already had x-death, or updates, has its keys sorted,
 *   while the very first entry has them in the order count, reason, queue,
 *   time, exchange, routing-keys, original-expiration; older untouched
 *   entries are kept byte for byte;
 * - x-first-death-* set once; CC dropped when x-dead-letter-routing-key
 *   replaces the routing key (its values stay in routing-keys). */
static void build_dl_headers(wr_buf_t *out, wr_queue_t *q, const wr_msg_t *m,
                             const wr_basic_props_t *pr, const char *reason)
{
    wr_bytes_t qname = {(const uint8_t *)q->name, q->name_len};
    wr_bytes_t rsn = wr_bytes_of(reason);
    int have_first = 0;
    wr_bytes_t old_xdeath = {NULL, 0};
    wr_bytes_t cc = {NULL, 0};
    kvs_t top = {0};
    wr_table_iter_t it;
    wr_bytes_t k;
    wr_field_t f;
    if (pr->flags & WR_PROP_HEADERS) {
        wr_table_iter_init(&it, pr->headers);
        while (wr_table_next(&it, &k, &f) == 1) {
            if (wr_bytes_eq_str(k, "x-death")) {
                if (f.type == 'A')
                    old_xdeath = f.v.bytes;
                continue;
            }
            if (k.n > 13 && memcmp(k.p, "x-last-death-", 13) == 0)
                continue;
            if (wr_bytes_eq_str(k, "CC") && f.type == 'A') {
                cc = f.v.bytes;
                if (q->args.dlrk)
                    continue;
            }
            if (k.n > 14 && memcmp(k.p, "x-first-death-", 14) == 0)
                have_first = 1;
            kvs_add(&top, k, &f);
        }
    }
    wr_field_t fx = wr_field_longstr(wr_msg_exchange(m));
    wr_field_t fq = wr_field_longstr(qname);
    wr_field_t fr = wr_field_longstr(rsn);
    if (!have_first) {
        kvs_add(&top, WR_BYTES_LIT("x-first-death-exchange"), &fx);
        kvs_add(&top, WR_BYTES_LIT("x-first-death-queue"), &fq);
        kvs_add(&top, WR_BYTES_LIT("x-first-death-reason"), &fr);
    }
    kvs_add(&top, WR_BYTES_LIT("x-last-death-exchange"), &fx);
    kvs_add(&top, WR_BYTES_LIT("x-last-death-queue"), &fq);
    kvs_add(&top, WR_BYTES_LIT("x-last-death-reason"), &fr);

    /* The entry for (queue, reason): updated if present, else new. */
    wr_table_iter_t ai;
    wr_field_t e;
    wr_bytes_t existing = {NULL, 0};
    if (old_xdeath.n) {
        wr_table_iter_init(&ai, old_xdeath);
        while (wr_array_next(&ai, &e) == 1)
            if (e.type == 'F' && existing.p == NULL && entry_is(e.v.bytes, qname, rsn))
                existing = e.v.bytes;
    }
    wr_buf_t xd;
    wr_buf_init(&xd);
    size_t arr = wr_table_begin(&xd);
    wr_buf_put_u8(&xd, 'F');
    if (existing.p) {
        kvs_t ent = {0};
        wr_table_iter_init(&it, existing);
        while (wr_table_next(&it, &k, &f) == 1) {
            if (wr_bytes_eq_str(k, "count")) {
                int64_t c = 0;
                wr_field_int(&f, &c);
                wr_field_t nc = wr_field_long(c + 1);
                kvs_add(&ent, k, &nc);
            } else {
                kvs_add(&ent, k, &f);
            }
        }
        kvs_write_sorted(&ent, &xd);
        kvs_free(&ent);
    } else {
        kvs_t ent = {0};
        wr_field_t fc = wr_field_long(1);
        wr_field_t ft = wr_field_timestamp((uint64_t)time(NULL));
        wr_buf_t rks;
        wr_buf_init(&rks);
        size_t rk = wr_table_begin(&rks);
        wr_field_t fk = wr_field_longstr(wr_msg_routing_key(m));
        wr_field_put(&rks, &fk);
        if (cc.n) {
            wr_table_iter_init(&ai, cc);
            while (wr_array_next(&ai, &e) == 1)
                if (e.type == 'S')
                    wr_field_put(&rks, &e);
        }
        wr_table_end(&rks, rk);
        wr_field_t fa;
        fa.type = 'A';
        fa.v.bytes = (wr_bytes_t){rks.p + 4, rks.len - 4};
        wr_field_t fo = wr_field_longstr(pr->expiration);
        kvs_add(&ent, WR_BYTES_LIT("count"), &fc);
        kvs_add(&ent, WR_BYTES_LIT("reason"), &fr);
        kvs_add(&ent, WR_BYTES_LIT("queue"), &fq);
        kvs_add(&ent, WR_BYTES_LIT("time"), &ft);
        kvs_add(&ent, WR_BYTES_LIT("exchange"), &fx);
        kvs_add(&ent, WR_BYTES_LIT("routing-keys"), &fa);
        if (pr->flags & WR_PROP_EXPIRATION)
            kvs_add(&ent, WR_BYTES_LIT("original-expiration"), &fo);
        if (old_xdeath.n) {
            kvs_write_sorted(&ent, &xd);
        } else {
            size_t t0 = wr_table_begin(&xd);
            for (size_t i = 0; i < ent.n; i++) {
                wr_table_put_key(&xd, ent.v[i].key);
                wr_buf_put(&xd, ent.scratch.p + ent.v[i].off, ent.v[i].len);
            }
            wr_table_end(&xd, t0);
        }
        kvs_free(&ent);
        wr_buf_free(&rks);
    }
    if (old_xdeath.n) {
        wr_table_iter_init(&ai, old_xdeath);
        while (wr_array_next(&ai, &e) == 1) {
            if (e.type == 'F' && e.v.bytes.p == existing.p)
                continue;
            wr_field_put(&xd, &e);
        }
    }
    wr_table_end(&xd, arr);
    wr_field_t fd;
    fd.type = 'A';
    fd.v.bytes = (wr_bytes_t){xd.p + 4, xd.len - 4};
    kvs_add(&top, WR_BYTES_LIT("x-death"), &fd);
    kvs_write_sorted(&top, out);
    kvs_free(&top);
    wr_buf_free(&xd);
}

/* Would dead-lettering into target close a cycle that RabbitMQ drops?  A
 * message that went around without ever being rejected by a client would
 * circulate forever (TTL or max-length on every queue of the loop). */
static int is_cycle(wr_queue_t *target, wr_bytes_t xdeath, const char *reason)
{
    if (strcmp(reason, "rejected") == 0)
        return 0;
    wr_table_iter_t ai;
    wr_field_t e;
    int seen = 0;
    wr_table_iter_init(&ai, xdeath);
    while (wr_array_next(&ai, &e) == 1) {
        wr_field_t fq, fr;
        if (e.type != 'F')
            continue;
        if (wr_table_get(e.v.bytes, "reason", &fr) && fr.type == 'S' &&
            wr_bytes_eq_str(fr.v.bytes, "rejected"))
            return 0;
        if (wr_table_get(e.v.bytes, "queue", &fq) && fq.type == 'S' &&
            wr_bytes_eq(fq.v.bytes, (wr_bytes_t){(const uint8_t *)target->name, target->name_len}))
            seen = 1;
    }
    return seen;
}

/* A delayed message's time has come: route it through its exchange (named
 * by q->args.dlx) with the exchange's own type, as if published now.
 * Consumes the caller's reference. */
static void delay_fire(wr_queue_t *q, wr_msg_t *m)
{
    wr_exchange_t *x = wr_vhost_exchange(q->vhost, wr_bytes_of(q->args.dlx));
    if (x == NULL) {
        wr_msg_unref(m);
        return;
    }
    /* In the delay queue the x-delay served as the message's TTL; from now
     * on its own expiration applies again. */
    wr_basic_props_t pr;
    wr_bytes_t headers = {NULL, 0};
    m->ttl = -1;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) == 0) {
        char why[64];
        int64_t ttl;
        if ((pr.flags & WR_PROP_EXPIRATION) &&
            wr_msg_parse_expiration(pr.expiration, &ttl, why, sizeof why) == 0)
            m->ttl = ttl;
        if (pr.flags & WR_PROP_HEADERS)
            headers = pr.headers;
    }
    wr_route_t r = {NULL, 0, 0};
    wr_route(q->vhost, x, wr_msg_routing_key(m), headers, wr_msg_props(m), &r);
    uint64_t gen;
    int rejected;
    wr_queues_push(q->vhost, r.q, r.n, m, &gen, &rejected);
    free(r.q);
    wr_msg_unref(m);
}

/* Dead-letters m from q (consuming the caller's reference) or drops it. */
static void dead_letter(wr_queue_t *q, wr_msg_t *m, const char *reason)
{
    if (q->delay) {
        delay_fire(q, m);
        return;
    }
    wr_exchange_t *x = NULL;
    if (q->args.dlx)
        x = wr_vhost_exchange(q->vhost, wr_bytes_of(q->args.dlx));
    if (x == NULL) {
        wr_msg_unref(m);
        return;
    }
    wr_basic_props_t pr;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) != 0)
        memset(&pr, 0, sizeof pr);
    wr_buf_t hdr, props;
    wr_buf_init(&hdr);
    wr_buf_init(&props);
    build_dl_headers(&hdr, q, m, &pr, reason);
    wr_basic_props_t np = pr;
    np.flags = (uint16_t)((np.flags | WR_PROP_HEADERS) & ~WR_PROP_EXPIRATION);
    np.headers = (wr_bytes_t){hdr.p + 4, hdr.len - 4};
    np.expiration = (wr_bytes_t){NULL, 0};
    wr_props_encode(&props, &np);
    wr_bytes_t rk = q->args.dlrk ? wr_bytes_of(q->args.dlrk) : wr_msg_routing_key(m);
    wr_msg_t *d =
        wr_msg_new(wr_bytes_of(q->args.dlx), rk, (wr_bytes_t){props.p, props.len}, m->body_len);
    wr_msg_append_body(d, m->body, m->body_len);
    d->persistent = m->persistent;
    d->priority = m->priority;
    rk = wr_msg_routing_key(d); /* m may go now */
    wr_msg_unref(m);

    wr_field_t xd;
    wr_table_get(np.headers, "x-death", &xd);
    wr_route_t r = {NULL, 0, 0}; /* local: pushing may dead-letter again */
    /* Routing uses the dead-letter key only; CC of the original is not
     * applied again (the new headers keep it, so route with none). */
    wr_route(q->vhost, x, rk, (wr_bytes_t){NULL, 0}, (wr_bytes_t){props.p, props.len}, &r);
    size_t k = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (is_cycle(r.q[i], xd.v.bytes, reason))
            wr_debug("dead-letter cycle: dropping message for queue '%s'", r.q[i]->name);
        else
            r.q[k++] = r.q[i];
    }
    uint64_t gen;
    int rejected;
    wr_queues_push(q->vhost, r.q, k, d, &gen, &rejected);
    free(r.q);
    wr_msg_unref(d);
    wr_buf_free(&hdr);
    wr_buf_free(&props);
}

/* ---- expiry ---- */

static void ttl_timer_cb(uv_timer_t *t)
{
    wr_queue_t *q = t->data;
    wr_queue_expire(q);
}

/* The expiry heap: a min-heap of (at, seq) over the entries with a
 * deadline.  Items are never removed when their entry leaves some other
 * way; exp_valid tells a live item from a stale one. */
static int exp_less(const wr_qexp_t *a, const wr_qexp_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void exp_push(wr_queue_t *q, int64_t at, uint64_t seq)
{
    if (q->exp_count == q->exp_cap) {
        q->exp_cap = q->exp_cap ? q->exp_cap * 2 : 16;
        q->exp = wr_xrealloc(q->exp, q->exp_cap * sizeof *q->exp);
    }
    wr_qexp_t x = {at, seq};
    size_t i = q->exp_count++;
    while (i > 0 && exp_less(&x, &q->exp[(i - 1) / 2])) {
        q->exp[i] = q->exp[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->exp[i] = x;
}

static void exp_sift_down(wr_queue_t *q, size_t i)
{
    wr_qexp_t x = q->exp[i];
    size_t n = q->exp_count;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && exp_less(&q->exp[c + 1], &q->exp[c]))
            c++;
        if (!exp_less(&q->exp[c], &x))
            break;
        q->exp[i] = q->exp[c];
        i = c;
    }
    q->exp[i] = x;
}

static void exp_pop(wr_queue_t *q)
{
    q->exp[0] = q->exp[--q->exp_count];
    if (q->exp_count)
        exp_sift_down(q, 0);
}

/* The ready entry item x stands for, or NULL if it is stale (the entry was
 * delivered, dropped or already expired).  *heap_i is its heap index, or
 * SIZE_MAX if it is in the ring. */
static wr_qent_t *exp_entry(wr_queue_t *q, const wr_qexp_t *x, size_t *heap_i)
{
    *heap_i = SIZE_MAX;
    wr_qent_t *e = q->args.max_priority ? NULL : ring_find(q, x->seq);
    if (e == NULL) {
        size_t s = hpos_find(q, x->seq);
        if (s == SIZE_MAX)
            return NULL;
        *heap_i = q->hpos_val[s];
        e = &q->heap[*heap_i];
    }
    return e->expires_at == x->at ? e : NULL;
}

/* Rebuilds the expiry heap without its stale items, once they outnumber
 * the live ones: each rebuild costs as much as the removals that made the
 * stale items, so the heap stays O(ready) at O(1) amortised per entry. */
static void exp_compact(wr_queue_t *q)
{
    size_t k = 0, hi;
    for (size_t i = 0; i < q->exp_count; i++)
        if (exp_entry(q, &q->exp[i], &hi))
            q->exp[k++] = q->exp[i];
    q->exp_count = k;
    for (size_t i = k / 2; i-- > 0;)
        exp_sift_down(q, i);
    if (q->exp_cap > 64 && k < q->exp_cap / 4) {
        q->exp_cap = k > 16 ? k * 2 : 16;
        q->exp = wr_xrealloc(q->exp, q->exp_cap * sizeof *q->exp);
    }
}

/* Arms the timer for the earliest deadline (it may be a stale item's; the
 * wake-up then only drops it). */
static void arm_ttl(wr_queue_t *q)
{
    if (q->exp_count == 0 || q->deleted) {
        if (q->ttl_timer)
            uv_timer_stop(q->ttl_timer);
        return;
    }
    if (q->exp_count > 1024 && q->exp_count > 2 * q->n_expiring)
        exp_compact(q);
    if (q->exp_count == 0) {
        uv_timer_stop(q->ttl_timer);
        return;
    }
    int64_t at = q->exp[0].at;
    if (q->ttl_timer == NULL) {
        q->ttl_timer = wr_xmalloc(sizeof *q->ttl_timer);
        uv_timer_init(wr_loop, q->ttl_timer);
        q->ttl_timer->data = q;
    } else if (q->ttl_armed_at == at && uv_is_active((uv_handle_t *)q->ttl_timer)) {
        return;
    }
    q->ttl_armed_at = at;
    int64_t wait = at - wr_now_ms();
    uv_timer_start(q->ttl_timer, ttl_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* A ready entry got deadline e->expires_at. */
static void exp_track(wr_queue_t *q, const wr_qent_t *e)
{
    q->n_expiring++;
    exp_push(q, e->expires_at, e->seq);
    if (q->ttl_timer == NULL || !uv_is_active((uv_handle_t *)q->ttl_timer) ||
        e->expires_at < q->ttl_armed_at)
        arm_ttl(q);
}

/* ---- leaving the queue ---- */

/* Queues keep this many ready entries of a stored message in memory; past
 * that, entries keep only the message's location, so memory does not grow
 * with the backlog (the body is in the page cache or on disk). */
#define PAGE_AFTER 1024

static wr_store_t *store_of(const wr_queue_t *q)
{
    return q->vhost->store;
}

/* The entry left the queue for good: tell the store (an ack record, or
 * just a dropped reference once the queue itself is deleted) and drop the
 * entry's message reference. */
static void entry_gone(wr_queue_t *q, wr_qent_t *e)
{
    if (e->loc.seg && store_of(q)) {
        if (q->deleted || q->store_id == 0)
            wr_store_release(store_of(q), e->loc);
        else
            wr_store_ack(store_of(q), q->store_id, e->loc);
    }
    if (e->msg)
        wr_msg_unref(e->msg);
    e->msg = NULL;
}

int wr_queue_load(wr_queue_t *q, wr_qent_t *e)
{
    if (e->msg)
        return 0;
    wr_store_t *st = store_of(q);
    if (st == NULL || e->loc.seg == 0)
        return WR_ENOTFOUND;
    static wr_buf_t scratch;
    wr_store_msg_t sm;
    int r = wr_store_read(st, e->loc, &scratch, &sm);
    if (r != 0)
        return r;
    wr_msg_t *m = wr_msg_new(sm.exchange, sm.routing_key, sm.props, sm.body.n);
    wr_msg_append_body(m, sm.body.p, sm.body.n);
    m->persistent = sm.flags & 1;
    wr_basic_props_t pr;
    if (wr_props_decode(sm.props.p, sm.props.n, &pr) == 0) {
        if (pr.flags & WR_PROP_PRIORITY)
            m->priority = pr.priority;
    }
    e->msg = m;
    if (scratch.cap > (1u << 20))
        wr_buf_free(&scratch);
    return 0;
}

/* Queues with x-delivery-limit tell consumers how often a message was
 * returned before, in the x-delivery-count header (as quorum queues do):
 * the delivered copy gets the header, the stored message stays as it was. */
static void with_delivery_count(wr_qent_t *e)
{
    wr_field_t c = wr_field_long(e->deliveries);
    e->msg = wr_msg_set_header(e->msg, "x-delivery-count", &c);
}

/* The entry leaves by dead-lettering (or is dropped if there is no DLX). */
static void entry_dead(wr_queue_t *q, wr_qent_t *e, const char *reason)
{
    if (!q->delay) /* a delayed message leaving its hidden queue is no death */
        wr_stats_dead_lettered(reason, q->args.dlx != NULL);
    if (q->args.dlx && wr_queue_load(q, e) == 0) {
        wr_msg_ref(e->msg);
        dead_letter(q, e->msg, reason);
    }
    entry_gone(q, e);
}

void wr_queue_expire(wr_queue_t *q)
{
    int64_t now = wr_now_ms();
    q->refs++; /* dead-lettering may route back here and delete q */
    while (q->exp_count && q->exp[0].at <= now && !q->deleted) {
        wr_qexp_t x = q->exp[0];
        exp_pop(q);
        size_t heap_i;
        wr_qent_t *p = exp_entry(q, &x, &heap_i);
        if (p == NULL)
            continue;
        wr_qent_t e = *p;
        q->ready_bytes -= e.size;
        q->n_expiring--;
        if (heap_i != SIZE_MAX) {
            heap_remove_at(q, heap_i);
        } else {
            /* Left in place as a tombstone: removing from the middle of
             * the ring would cost a shift of everything behind it. */
            *p = (wr_qent_t){NULL, e.seq, WR_QENT_TOMB, {0, 0}, 0, 0};
            q->tombs++;
        }
        entry_dead(q, &e, "expired");
    }
    skip_tombs(q);
    arm_ttl(q);
    wr_queue_unref(q);
}

/* ---- push / pop ---- */

static void drop_head(wr_queue_t *q)
{
    int from_heap;
    wr_qent_t e = *peek(q, &from_heap);
    q->ready_bytes -= e.size;
    remove_front(q, from_heap);
    entry_dead(q, &e, "maxlen");
}

static int over_limit(const wr_queue_t *q, size_t extra_n, uint64_t extra_bytes)
{
    return (q->args.max_length >= 0 &&
            (int64_t)(wr_queue_ready(q) + extra_n) > q->args.max_length) ||
           (q->args.max_length_bytes >= 0 &&
            (int64_t)(q->ready_bytes + extra_bytes) > q->args.max_length_bytes);
}

void wr_queue_enforce_limits(wr_queue_t *q)
{
    if (q->args.overflow != WR_OVERFLOW_DROP_HEAD)
        return;
    q->refs++; /* dead-lettering may route back here and delete q */
    while (!q->deleted && wr_queue_ready(q) && over_limit(q, 0, 0))
        drop_head(q);
    if (!q->deleted)
        skip_tombs(q);
    wr_queue_unref(q);
}

static wr_consumer_t *pick(wr_queue_t *q);
static void deliver_to(wr_queue_t *q, wr_consumer_t *c, wr_qent_t *e);

#define SEQ_BITS 56

static uint64_t priority_key(const wr_queue_t *q, uint8_t priority, uint64_t seq)
{
    uint8_t p = priority < q->args.max_priority ? priority : q->args.max_priority;
    return (uint64_t)(255 - p) << SEQ_BITS | (seq & ((1ull << SEQ_BITS) - 1));
}

/* The x-delay of a delayed message, in ms (0 if none). */
static int64_t x_delay_of(const wr_msg_t *m)
{
    wr_basic_props_t pr;
    wr_field_t f;
    int64_t v = 0;
    if (wr_props_decode(wr_msg_props(m).p, wr_msg_props(m).n, &pr) == 0 &&
        (pr.flags & WR_PROP_HEADERS) && wr_table_get(pr.headers, "x-delay", &f) &&
        wr_field_int(&f, &v) && v > 0)
        return v;
    return 0;
}

int64_t wr_msg_x_delay(const wr_msg_t *m)
{
    return x_delay_of(m);
}

void wr_queue_recovery_done(wr_queue_t *q)
{
    if (q->delay && q->ring_count) {
        /* Only the relative x-delay is stored: after a restart the wait
         * starts again (a delayed message is late, never lost). */
        int64_t now = wr_now_ms();
        size_t left = q->ring_count;
        uint32_t i = q->head_i;
        for (wr_qblock_t *b = q->head_blk; b && left; b = b->next, i = 0) {
            for (; i < WR_QBLOCK && left; i++, left--) {
                wr_qent_t *e = &b->e[i];
                if (wr_queue_load(q, e) != 0)
                    continue;
                e->expires_at = now + x_delay_of(e->msg);
                wr_msg_unref(e->msg);
                e->msg = NULL;
                exp_track(q, e);
            }
        }
        return;
    }
    if (!q->args.max_priority || q->ring_count == 0)
        return;
    /* Recovery appended in publish order; a priority queue needs each
     * message's priority, which only the message itself knows. */
    wr_qent_t e;
    /* Keys change, so the expiry items are made anew. */
    q->exp_count = 0;
    while (q->ring_count) {
        e = *ring_front(q);
        ring_pop(q);
        uint8_t prio = 0;
        if (wr_queue_load(q, &e) == 0) {
            prio = e.msg->priority;
            wr_msg_unref(e.msg);
            e.msg = NULL;
        }
        e.seq = priority_key(q, prio, e.seq);
        heap_push(q, &e);
        if (e.expires_at)
            exp_push(q, e.expires_at, e.seq);
    }
    arm_ttl(q);
}

int wr_queue_would_reject(const wr_queue_t *q, const wr_msg_t *m)
{
    return q->args.overflow != WR_OVERFLOW_DROP_HEAD && over_limit(q, 1, wr_msg_size(m));
}

int wr_queues_push(wr_vhost_t *vh, wr_queue_t **qs, size_t n, wr_msg_t *m, uint64_t *gen,
                   int *rejected)
{
    *gen = 0;
    *rejected = 0;
    wr_loc_t loc0 = {0, 0};
    wr_loc_t *locs = NULL;
    if (vh->store && m->persistent) {
        /* Written once for all durable queues (records of up to 255). */
        uint32_t ids[255];
        size_t idx[255];
        uint8_t k = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && qs[i]->store_id && !wr_queue_would_reject(qs[i], m)) {
                ids[k] = qs[i]->store_id;
                idx[k++] = i;
            }
            if (k == 255 || (i == n && k > 0)) {
                wr_loc_t loc;
                int err =
                    wr_store_append(vh->store, ids, k, 1, wr_msg_exchange(m), wr_msg_routing_key(m),
                                    wr_msg_props(m), (wr_bytes_t){m->body, m->body_len}, &loc);
                if (err) {
                    free(locs);
                    return err;
                }
                if (n == 1) {
                    loc0 = loc;
                } else {
                    if (locs == NULL)
                        locs = wr_xcalloc(n, sizeof *locs);
                    for (uint8_t j = 0; j < k; j++)
                        locs[idx[j]] = loc;
                }
                k = 0;
                *gen = wr_store_gen(vh->store);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        wr_loc_t loc = n == 1 ? loc0 : locs ? locs[i] : (wr_loc_t){0, 0};
        if (wr_queue_push(qs[i], m, loc) == WR_ERANGE)
            *rejected = 1;
    }
    free(locs);
    return 0;
}

int wr_queue_push(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc)
{
    if (q->deleted) {
        if (loc.seg && store_of(q))
            wr_store_release(store_of(q), loc);
        return 0;
    }
    int64_t ttl = q->args.message_ttl;
    if (m->ttl >= 0 && (ttl < 0 || m->ttl < ttl))
        ttl = m->ttl;
    if (wr_queue_would_reject(q, m)) {
        if (q->args.overflow == WR_OVERFLOW_REJECT_PUBLISH_DLX) {
            wr_stats_dead_lettered("maxlen", q->args.dlx != NULL);
            wr_msg_ref(m);
            dead_letter(q, m, "maxlen");
        }
        if (loc.seg && store_of(q))
            wr_store_ack(store_of(q), q->store_id, loc);
        return WR_ERANGE;
    }
    wr_qent_t e = {m, q->next_seq++, 0, loc, 0, (uint32_t)wr_msg_size(m)};
    wr_msg_ref(m);
    q->st.n[WR_ST_PUBLISH]++;
    if (ttl == 0) {
        /* TTL 0: delivered only if a consumer can take it right now, else
         * expired at once (RabbitMQ's stand-in for the immediate flag). */
        wr_consumer_t *c = wr_queue_ready(q) == 0 ? pick(q) : NULL;
        if (c)
            deliver_to(q, c, &e);
        else
            entry_dead(q, &e, "expired");
        return 0;
    }
    if (ttl > 0)
        e.expires_at = wr_now_ms() + ttl;
    if (loc.seg && wr_queue_ready(q) >= PAGE_AFTER) {
        wr_msg_unref(m);
        e.msg = NULL;
    }
    if (q->args.max_priority) {
        /* A priority queue keeps its entries in the heap, ordered by
         * priority first and arrival second: higher first, FIFO within a
         * priority; requeued entries keep their key and so their place. */
        e.seq = priority_key(q, m->priority, e.seq);
        heap_push(q, &e);
    } else {
        ring_push(q, &e);
    }
    q->ready_bytes += e.size;
    if (e.expires_at)
        exp_track(q, &e);
    while (over_limit(q, 0, 0) && wr_queue_ready(q) > 0)
        drop_head(q);
    if (q->n_consumers)
        wr_queue_kick(q);
    return 0;
}

void wr_queue_push_recovered(wr_queue_t *q, wr_loc_t loc, uint64_t order, uint32_t size,
                             int redelivered)
{
    wr_qent_t e = {NULL, order, 0, loc, redelivered ? 1u : 0u, size};
    if (q->args.message_ttl >= 0)
        e.expires_at = wr_now_ms() + q->args.message_ttl;
    /* The ring must stay sorted by seq; an entry ranked before its tail
     * goes to the heap (the same merge that puts requeued messages back). */
    if (q->ring_count && q->tail_blk->e[q->tail_i - 1].seq > order)
        heap_push(q, &e);
    else
        ring_push(q, &e);
    if (order >= q->next_seq)
        q->next_seq = order + 1;
    q->ready_bytes += size;
    if (e.expires_at)
        exp_track(q, &e);
}

int wr_queue_pop(wr_queue_t *q, wr_qent_t *out)
{
    int64_t now = 0;
    for (;;) {
        int from_heap;
        wr_qent_t *e = peek(q, &from_heap);
        if (e == NULL)
            return 0;
        *out = *e;
        remove_front(q, from_heap);
        q->ready_bytes -= out->size;
        if (out->expires_at) {
            if (now == 0)
                now = wr_now_ms();
            if (out->expires_at <= now) {
                entry_dead(q, out, "expired");
                continue;
            }
        }
        int r = wr_queue_load(q, out);
        if (r == 0 && q->args.delivery_limit > 0 && out->deliveries > 0)
            with_delivery_count(out);
        if (r != 0) {
            wr_error("queue '%s': message at %u:%u cannot be read (%s), dropped", q->name,
                     out->loc.seg, out->loc.off, wr_strerror(r));
            entry_gone(q, out);
            continue;
        }
        return 1;
    }
}

void wr_queue_out(wr_queue_t *q, const wr_qent_t *e)
{
    q->unacked++;
    q->refs++;
    if (e->loc.seg && e->deliveries == 0 && q->store_id && store_of(q))
        wr_store_delivered(store_of(q), q->store_id, e->loc);
}

void wr_queue_taken(wr_queue_t *q, wr_qent_t *e)
{
    entry_gone(q, e);
}

void wr_queue_settle(wr_queue_t *q, wr_qent_t *e)
{
    q->unacked--;
    entry_gone(q, e);
    wr_queue_unref(q);
}

void wr_queue_requeue(wr_queue_t *q, wr_qent_t *e)
{
    q->unacked--;
    if (q->deleted) {
        entry_gone(q, e);
    } else if (q->args.delivery_limit > 0 && e->deliveries + 1 > q->args.delivery_limit) {
        /* Returned more often than x-delivery-limit allows: dead-letter it
         * (reason delivery_limit) instead of delivering it again. */
        e->deliveries++;
        entry_dead(q, e, "delivery_limit");
    } else {
        e->deliveries++;
        heap_push(q, e);
        q->ready_bytes += e->size;
        /* It keeps its deadline; an item for it may still be in the
         * expiry heap (it then finds the entry again), or was dropped. */
        if (e->expires_at)
            exp_track(q, e);
        if (q->n_consumers)
            wr_queue_kick(q);
    }
    wr_queue_unref(q);
}

void wr_queue_putback(wr_queue_t *q, wr_qent_t *e)
{
    if (q->deleted) {
        entry_gone(q, e);
        return;
    }
    heap_push(q, e);
    q->ready_bytes += e->size;
    if (e->expires_at)
        exp_track(q, e);
    if (q->n_consumers)
        wr_queue_kick(q);
}

void wr_queue_discard(wr_queue_t *q, wr_qent_t *e)
{
    q->unacked--;
    if (q->deleted)
        entry_gone(q, e);
    else
        entry_dead(q, e, "rejected");
    wr_queue_unref(q);
}

/* ---- memory ---- */

void wr_queue_trim_memory(void)
{
    /* Queue blocks and small messages come from malloc's heap, which only
     * shrinks from its top: after a large backlog drains, give the free
     * pages back (once the memory in use fell well below its peak). */
    uint64_t now = wr_queue_block_bytes + wr_msg_mem_bytes;
    if (now > mem_peak)
        mem_peak = now;
    if (mem_peak - now > (16u << 20) && now < mem_peak / 2) {
        wr_debug("returning freed memory (in use %" PRIu64 " bytes, peak %" PRIu64 ")", now,
                 mem_peak);
        wr_msg_cache_release();
        malloc_trim(0);
        mem_peak = now;
    }
}

/* ---- compaction ---- */

const wr_reloc_t *wr_reloc_find(const wr_reloc_t *tab, size_t n, uint32_t off)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tab[mid].old_off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && tab[lo].old_off == off ? &tab[lo] : NULL;
}

static void relocate_entry(wr_qent_t *e, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    if (e->loc.seg != seg)
        return;
    const wr_reloc_t *r = wr_reloc_find(tab, n, e->loc.off);
    if (r)
        e->loc = r->new_loc;
}

void wr_queue_relocate(wr_queue_t *q, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    size_t left = q->ring_count;
    uint32_t i = q->head_i;
    for (wr_qblock_t *b = q->head_blk; b && left; b = b->next, i = 0)
        for (; i < WR_QBLOCK && left; i++, left--)
            relocate_entry(&b->e[i], seg, tab, n);
    for (size_t k = 0; k < q->heap_count; k++)
        relocate_entry(&q->heap[k], seg, tab, n);
}

/* ---- dispatch ---- */

/* The consumer to serve next: among those that can take a message, the
 * highest priority, round-robin from q->rr within it. */
static wr_consumer_t *pick(wr_queue_t *q)
{
    if (q->consumers == NULL)
        return NULL;
    if (q->args.single_active)
        return q->consumers->ops->can_take(q->consumers) ? q->consumers : NULL;
    wr_consumer_t *start = q->rr ? q->rr : q->consumers;
    wr_consumer_t *best = NULL;
    wr_consumer_t *c = start;
    do {
        if ((best == NULL || c->priority > best->priority) && c->ops->can_take(c))
            best = c;
        c = c->qnext ? c->qnext : q->consumers;
    } while (c != start);
    return best;
}

static void deliver_to(wr_queue_t *q, wr_consumer_t *c, wr_qent_t *e)
{
    q->rr = c->qnext;
    if (!c->no_ack)
        wr_queue_out(q, e);
    c->ops->deliver(c, e);
}

static void dispatch(wr_queue_t *q)
{
    if (q->dispatching || q->deleted)
        return;
    q->dispatching = 1;
    while (wr_queue_ready(q) > 0) {
        wr_consumer_t *c = pick(q);
        if (c == NULL)
            break;
        wr_qent_t e;
        if (!wr_queue_pop(q, &e))
            break;
        deliver_to(q, c, &e);
    }
    q->dispatching = 0;
    if (q->ttl_timer)
        arm_ttl(q);
}

void wr_queue_kick(wr_queue_t *q)
{
    if (q->pending || q->deleted)
        return;
    q->pending = 1;
    q->refs++;
    q->pending_next = pending_head;
    pending_head = q;
}

void wr_queue_run_pending(void)
{
    while (pending_head) {
        wr_queue_t *q = pending_head;
        pending_head = q->pending_next;
        q->pending = 0;
        dispatch(q);
        wr_queue_unref(q);
    }
}

void wr_queue_add_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    c->queue = q;
    /* Insert after every consumer of the same or higher priority. */
    wr_consumer_t *prev = NULL, *cur = q->consumers;
    while (cur && cur->priority >= c->priority) {
        prev = cur;
        cur = cur->qnext;
    }
    c->qprev = prev;
    c->qnext = cur;
    if (prev)
        prev->qnext = c;
    else
        q->consumers = c;
    if (cur)
        cur->qprev = c;
    q->n_consumers++;
    q->had_consumer = 1;
    q->last_used = wr_now_ms();
    wr_queue_kick(q);
}

static void unlink_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    if (c->qprev)
        c->qprev->qnext = c->qnext;
    else
        q->consumers = c->qnext;
    if (c->qnext)
        c->qnext->qprev = c->qprev;
    if (q->rr == c)
        q->rr = c->qnext;
    c->qnext = c->qprev = NULL;
    c->queue = NULL;
    q->n_consumers--;
}

int wr_queue_remove_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    unlink_consumer(q, c);
    q->last_used = wr_now_ms();
    if (q->n_consumers == 0 && q->auto_delete && q->had_consumer && !q->deleted) {
        wr_queue_delete(q);
        return 1;
    }
    /* With single active consumer, the next one may now be active. */
    if (q->n_consumers)
        wr_queue_kick(q);
    return 0;
}

uint32_t wr_queue_purge(wr_queue_t *q)
{
    uint32_t n = 0;
    int from_heap;
    wr_qent_t *p;
    while ((p = peek(q, &from_heap))) {
        wr_qent_t e = *p;
        remove_front(q, from_heap);
        entry_gone(q, &e);
        n++;
    }
    q->ready_bytes = 0;
    q->exp_count = 0; /* nothing is left to expire */
    arm_ttl(q);
    return n;
}

uint32_t wr_queue_delete(wr_queue_t *q)
{
    if (q->deleted)
        return 0;
    wr_persist_queue_deleted(q);
    q->deleted = 1;
    if (!q->delay)
        wr_stats_count(WR_NS_QUEUES_DELETED);
    while (q->consumers) {
        wr_consumer_t *c = q->consumers;
        unlink_consumer(q, c);
        c->ops->cancelled(c);
    }
    while (q->bindings)
        wr_binding_remove(q->bindings);
    uint32_t n = wr_queue_purge(q);
    wr_map_del(&q->vhost->queues, (wr_bytes_t){(uint8_t *)q->name, q->name_len});
    q->vhost->names_gen++;
    if (q->ttl_timer) {
        uv_close((uv_handle_t *)q->ttl_timer, timer_closed);
        q->ttl_timer = NULL;
    }
    wr_queue_unref(q);
    return n;
}
