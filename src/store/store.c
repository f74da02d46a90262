/*
 * store.c - the message store (see store.h and docs/store-format.md).
 *
 * Segment life cycle:
 *
 *   current --full (64 MiB) or failure--> sealed --live == 0--> deleted
 *      (appends go here)                  (acks only)           (.seg + .ack unlinked)
 *
 * Commit life cycle of a generation g:
 *
 *   open (appends buffered) --flush: written--> written --fdatasync ok--> synced
 *                                                  \--write or sync fails--> failed
 *
 * Invariants:
 * - synced_gen <= written_gen < gen.
 * - A segment's live count is the number of queue entries (ready or
 *   unacknowledged) that point into it; only a sealed segment with live 0
 *   and no sync in flight on its files is deleted.
 * - Records are appended only at the end of a file, and a file's size
 *   (size, ack_size, meta_size) only grows except when recovery cuts a torn
 *   tail.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "core/log.h"
#include "core/map.h"

#define SEG_MAX       (64u << 20)
#define ROLL_EMPTY_AT (1u << 20)
#define REC_HDR       9
#define REC_MAX       (1u << 30)

enum {
    R_MSG = 1,
    R_ACKS = 2,
    R_DELIVERED = 3,
    R_DELIVERED_UPTO = 4,
    R_QUEUE = 10,
    R_QUEUE_DELETE = 11,
    R_QUEUE_PURGE = 12,
    R_EXCHANGE = 13,
    R_EXCHANGE_DELETE = 14,
    R_BIND = 15,
    R_UNBIND = 16,
};

typedef struct seg {
    uint32_t no;
    int fd;
    int ack_fd; /* -1 until the first ack */
    uint64_t size;
    uint64_t ack_size;
    uint64_t live;
    uint64_t total; /* references ever added: live / total is how full it is */
    uint8_t sealed;
    uint8_t in_sync;
    uint8_t dirty;     /* written since the last sync started */
    uint8_t ack_dirty; /* ack file written since the last sync started */
    uint8_t on_ack_list;
    /* Pending DELIVERED_UPTO: after a crash, every message before this
     * offset may have been delivered (0 = none pending). */
    uint32_t deliv_upto;
    wr_buf_t acks;  /* pending (qid, off) pairs */
    wr_buf_t deliv; /* pending (qid, off) pairs */
    /* Ack-file records written but not known synced: since the last sync
     * started (unsynced), and covered by the sync in flight (syncing).
     * When a sync or write fails they move to redo and are written again,
     * because after a failed fdatasync the kernel may have dropped them
     * (invariant 5) and no later sync would bring them back. */
    wr_buf_t unsynced;
    wr_buf_t syncing;
    wr_buf_t redo;
    struct seg *ack_next;
} seg_t;

/* A live queue as the metadata knows it. */
typedef struct mqueue {
    wr_buf_t rec;    /* QUEUE record body */
    wr_loc_t purged; /* messages before this are gone */
} mqueue_t;

struct wr_store {
    char *dir;
    char *msgdir;
    wr_io_t *io;
    uv_loop_t *loop;
    wr_store_synced_cb synced;
    void *synced_ctx;

    int meta_fd;
    uint64_t meta_size;
    wr_buf_t meta_buf;
    uint8_t meta_dirty;
    uint64_t meta_records;
    wr_map_t mqueues; /* 4-byte id -> mqueue_t */
    wr_map_t mexch;   /* name -> wr_buf_t record body */
    wr_map_t mbind;   /* record body -> wr_buf_t record body */
    uint32_t next_qid;

    seg_t **segs; /* segs[i]->no == base_no + i, or NULL once deleted */
    size_t nsegs;
    uint32_t base_no;
    uint64_t seg_max; /* SEG_MAX, or smaller in tests */
    seg_t *cur;
    wr_buf_t seg_buf; /* appended to cur, not yet written */
    seg_t *ack_list;
    uint8_t dir_dirty;

    uint64_t gen;
    uint64_t written_gen;
    uint64_t synced_gen;
    uint64_t failed_gen; /* every generation up to it was reported failed */
    uint64_t sync_target;
    int syncing;
    int sync_err;
    int sync_dir;
    uv_work_t work;
    int *sync_fds;
    size_t n_sync_fds, cap_sync_fds;
    /* Segments whose .seg was unlinked but whose .ack is kept until that
     * unlink is durable (see seg_free); the first dead_acks_synced of them
     * are covered by the directory sync in flight. */
    uint32_t *dead_acks;
    size_t n_dead_acks, cap_dead_acks, dead_acks_synced;
    int failed;

    wr_store_stats_t stats;
};

/* ---- small helpers ---- */

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = wr_xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *seg_path(const wr_store_t *st, uint32_t no, const char *ext)
{
    char name[32];
    snprintf(name, sizeof name, "%08" PRIu32 ".%s", no, ext);
    return path_join(st->msgdir, name);
}

static void put_rec_header(wr_buf_t *b, uint8_t type, size_t *mark)
{
    *mark = b->len;
    uint8_t *p = wr_buf_reserve(b, REC_HDR);
    memset(p, 0, REC_HDR);
    p[8] = type;
    b->len += REC_HDR;
}

static void end_rec(wr_buf_t *b, size_t mark)
{
    uint8_t *p = b->p + mark;
    uint32_t len = (uint32_t)(b->len - mark - REC_HDR);
    wr_set_u32(p, len);
    wr_set_u32(p + 4, wr_crc32c(0, p + 8, (size_t)len + 1));
}

/* Parses the record at buf[off..n): 1 and the type and body if valid, 0 if the
 * bytes end before it does (a torn tail), -1 if it is corrupt. */
static int parse_rec(const uint8_t *buf, size_t n, size_t off, uint8_t *type, wr_bytes_t *body)
{
    if (n - off < REC_HDR)
        return 0;
    uint32_t len = wr_get_u32(buf + off);
    if (len == 0 || len > REC_MAX)
        return -1;
    if (len > n - off - REC_HDR)
        return 0;
    if (wr_crc32c(0, buf + off + 8, (size_t)len + 1) != wr_get_u32(buf + off + 4))
        return -1;
    *type = buf[off + 8];
    body->p = buf + off + REC_HDR;
    body->n = len;
    return 1;
}

/* A cursor over a record body. */
typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd_t;

static uint8_t rd_u8(rd_t *r)
{
    if (r->end - r->p < 1) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint32_t rd_u32(rd_t *r)
{
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = wr_get_u32(r->p);
    r->p += 4;
    return v;
}

static wr_bytes_t rd_bytes(rd_t *r, size_t n)
{
    wr_bytes_t b = {r->p, 0};
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return b;
    }
    b.n = n;
    r->p += n;
    return b;
}

static wr_bytes_t rd_short(rd_t *r)
{
    return rd_bytes(r, rd_u8(r));
}

static wr_bytes_t rd_long(rd_t *r)
{
    return rd_bytes(r, rd_u32(r));
}

static int loc_before(wr_loc_t a, wr_loc_t b)
{
    return a.seg < b.seg || (a.seg == b.seg && a.off < b.off);
}

/* ---- u64 set for recovery (acked / delivered pairs) ---- */

typedef struct u64set {
    uint64_t *v; /* 0 = empty; keys are stored + 1 */
    size_t cap, n;
} u64set_t;

static void set_add(u64set_t *s, uint64_t k)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t oc = s->cap;
        uint64_t *ov = s->v;
        s->cap = oc ? oc * 2 : 1024;
        s->v = wr_xcalloc(s->cap, sizeof *s->v);
        s->n = 0;
        for (size_t i = 0; i < oc; i++)
            if (ov[i])
                set_add(s, ov[i] - 1);
        free(ov);
    }
    uint64_t h = (k + 1) * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (s->cap - 1);
    while (s->v[i] && s->v[i] != k + 1)
        i = (i + 1) & (s->cap - 1);
    if (!s->v[i]) {
        s->v[i] = k + 1;
        s->n++;
    }
}

static int set_has(const u64set_t *s, uint64_t k)
{
    if (s->cap == 0)
        return 0;
    uint64_t h = (k + 1) * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (s->cap - 1);
    while (s->v[i]) {
        if (s->v[i] == k + 1)
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    return 0;
}

/* ---- segments ---- */

static seg_t *seg_get(const wr_store_t *st, uint32_t no)
{
    if (no < st->base_no || no - st->base_no >= st->nsegs)
        return NULL;
    return st->segs[no - st->base_no];
}

static void seg_insert(wr_store_t *st, seg_t *s)
{
    if (st->nsegs == 0)
        st->base_no = s->no;
    size_t idx = s->no - st->base_no;
    if (idx >= st->nsegs) {
        st->segs = wr_xrealloc(st->segs, (idx + 1) * sizeof *st->segs);
        for (size_t i = st->nsegs; i <= idx; i++)
            st->segs[i] = NULL;
        st->nsegs = idx + 1;
    }
    st->segs[idx] = s;
}

static void seg_free(wr_store_t *st, seg_t *s, int unlink_files)
{
    if (s->fd >= 0)
        st->io->close(st->io, s->fd);
    if (s->ack_fd >= 0)
        st->io->close(st->io, s->ack_fd);
    if (unlink_files) {
        /* Only the .seg goes now.  Were both unlinked at once, a crash
         * could make the .ack's removal durable and not the .seg's, and
         * every acked message of the segment would come back; so the .ack
         * waits for a directory sync that covers the .seg's removal
         * (sync_done).  A .ack whose .seg is gone is harmless meanwhile,
         * and recovery removes any that a crash leaves behind. */
        char *p = seg_path(st, s->no, "seg");
        st->io->unlink(st->io, p);
        free(p);
        if (st->n_dead_acks == st->cap_dead_acks) {
            st->cap_dead_acks = st->cap_dead_acks ? st->cap_dead_acks * 2 : 8;
            st->dead_acks = wr_xrealloc(st->dead_acks, st->cap_dead_acks * sizeof *st->dead_acks);
        }
        st->dead_acks[st->n_dead_acks++] = s->no;
        st->dir_dirty = 1;
    }
    wr_buf_free(&s->acks);
    wr_buf_free(&s->deliv);
    wr_buf_free(&s->unsynced);
    wr_buf_free(&s->syncing);
    wr_buf_free(&s->redo);
    st->segs[s->no - st->base_no] = NULL;
    free(s);
    /* Trim leading holes so lookups stay an index. */
    size_t k = 0;
    while (k < st->nsegs && st->segs[k] == NULL)
        k++;
    if (k > 0 && k == st->nsegs) {
        st->nsegs = 0;
    } else if (k > 0) {
        memmove(st->segs, st->segs + k, (st->nsegs - k) * sizeof *st->segs);
        st->nsegs -= k;
        st->base_no += (uint32_t)k;
    }
}

/* Deletes s if nothing refers to it any more; returns 1 if it did (which
 * moves the other entries of st->segs). */
static int seg_maybe_delete(wr_store_t *st, seg_t *s)
{
    if (s->live || !s->sealed || s->in_sync || s->on_ack_list || s == st->cur)
        return 0;
    seg_free(st, s, 1);
    return 1;
}

static int seg_new(wr_store_t *st, uint32_t no)
{
    char *p = seg_path(st, no, "seg");
    int fd = st->io->open(st->io, p, 1);
    free(p);
    if (fd < 0)
        return fd;
    seg_t *s = wr_xcalloc(1, sizeof *s);
    s->no = no;
    s->fd = fd;
    s->ack_fd = -1;
    wr_buf_init(&s->acks);
    wr_buf_init(&s->deliv);
    seg_insert(st, s);
    if (st->cur) {
        st->cur->sealed = 1;
        seg_t *old = st->cur;
        st->cur = s;
        seg_maybe_delete(st, old);
    } else {
        st->cur = s;
    }
    st->dir_dirty = 1;
    return 0;
}

/* ---- failure ---- */

static void fail(wr_store_t *st, int err, const char *what)
{
    if (!st->failed)
        wr_error("message store: %s failed: %s; refusing persistent writes until the disk "
                 "recovers",
                 what, err <= -1000 ? wr_strerror(err) : strerror(-err));
    st->failed = err;
    /* Nothing buffered or written since the last good sync can be trusted:
     * report every such generation failed, and start over in a new
     * segment once the disk works again (wr_store_recover_io). */
    st->seg_buf.len = 0;
    if (st->cur)
        st->cur->sealed = 1;
    for (size_t i = 0; i < st->nsegs; i++) {
        seg_t *s = st->segs[i];
        if (s == NULL || s->syncing.len + s->unsynced.len == 0)
            continue;
        wr_buf_put(&s->redo, s->syncing.p, s->syncing.len);
        wr_buf_put(&s->redo, s->unsynced.p, s->unsynced.len);
        s->syncing.len = s->unsynced.len = 0;
        if (!s->on_ack_list) {
            s->on_ack_list = 1;
            s->ack_next = st->ack_list;
            st->ack_list = s;
        }
    }
    uint64_t upto = st->gen;
    st->gen++;
    st->written_gen = upto;
    st->failed_gen = upto;
    if (st->synced)
        st->synced(st->synced_ctx, upto, err);
}

/* ---- commit ---- */

static void add_sync_fd(wr_store_t *st, int fd)
{
    for (size_t i = 0; i < st->n_sync_fds; i++)
        if (st->sync_fds[i] == fd)
            return;
    if (st->n_sync_fds == st->cap_sync_fds) {
        st->cap_sync_fds = st->cap_sync_fds ? st->cap_sync_fds * 2 : 8;
        st->sync_fds = wr_xrealloc(st->sync_fds, st->cap_sync_fds * sizeof *st->sync_fds);
    }
    st->sync_fds[st->n_sync_fds++] = fd;
}

static void sync_work(uv_work_t *w)
{
    wr_store_t *st = w->data;
    for (size_t i = 0; i < st->n_sync_fds && st->sync_err == 0; i++)
        st->sync_err = st->io->fsync(st->io, st->sync_fds[i]);
    if (st->sync_err == 0 && st->sync_dir)
        st->sync_err = st->io->sync_dir(st->io, st->msgdir);
}

static void start_sync(wr_store_t *st);

static void sync_done(uv_work_t *w, int status)
{
    wr_store_t *st = w->data;
    (void)status;
    st->syncing = 0;
    st->stats.syncs++;
    for (size_t i = 0; i < st->nsegs; i++) {
        if (st->segs[i]) {
            st->segs[i]->in_sync = 0;
            if (st->sync_err == 0)
                st->segs[i]->syncing.len = 0;
        }
    }
    if (st->sync_err) {
        fail(st, st->sync_err, "fdatasync");
    } else if (st->sync_target > st->synced_gen && st->sync_target > st->failed_gen) {
        /* A write can fail while this sync runs; fail() then reported
         * every generation up to failed_gen as failed, and they stay so
         * even if their records did reach the disk. */
        st->synced_gen = st->sync_target;
        if (st->synced)
            st->synced(st->synced_ctx, st->synced_gen, 0);
    }
    if (st->sync_err == 0 && st->dead_acks_synced) {
        /* The .seg unlinks before this sync are durable: their .ack files
         * can go (see seg_free). */
        for (size_t i = 0; i < st->dead_acks_synced; i++) {
            char *p = seg_path(st, st->dead_acks[i], "ack");
            st->io->unlink(st->io, p);
            free(p);
        }
        st->n_dead_acks -= st->dead_acks_synced;
        memmove(st->dead_acks, st->dead_acks + st->dead_acks_synced,
                st->n_dead_acks * sizeof *st->dead_acks);
        st->dir_dirty = 1;
    }
    st->dead_acks_synced = 0;
    /* A deletion moves the entries of st->segs: start over after one. */
    for (size_t i = 0; i < st->nsegs; i++)
        if (st->segs[i] && seg_maybe_delete(st, st->segs[i]))
            i = (size_t)-1;
    start_sync(st);
}

static void start_sync(wr_store_t *st)
{
    if (st->syncing || st->written_gen <= st->synced_gen || st->failed)
        return;
    st->n_sync_fds = 0;
    st->sync_err = 0;
    if (st->meta_dirty)
        add_sync_fd(st, st->meta_fd);
    st->meta_dirty = 0;
    for (size_t i = 0; i < st->nsegs; i++) {
        seg_t *s = st->segs[i];
        if (s == NULL)
            continue;
        if (s->dirty)
            add_sync_fd(st, s->fd);
        if (s->ack_dirty) {
            add_sync_fd(st, s->ack_fd);
            wr_buf_put(&s->syncing, s->unsynced.p, s->unsynced.len);
            s->unsynced.len = 0;
        }
        if (s->dirty || s->ack_dirty)
            s->in_sync = 1;
        s->dirty = s->ack_dirty = 0;
    }
    st->sync_dir = st->dir_dirty;
    st->dir_dirty = 0;
    st->dead_acks_synced = st->sync_dir ? st->n_dead_acks : 0;
    st->sync_target = st->written_gen;
    st->syncing = 1;
    st->work.data = st;
    if (st->loop == NULL || uv_queue_work(st->loop, &st->work, sync_work, sync_done) != 0) {
        sync_work(&st->work);
        sync_done(&st->work, 0);
    }
}

static int write_acks(wr_store_t *st, seg_t *s, wr_buf_t *tmp)
{
    tmp->len = 0;
    wr_buf_put(tmp, s->redo.p, s->redo.len);
    size_t mark;
    static const struct {
        uint8_t type;
        size_t off;
    } kinds[2] = {{R_ACKS, offsetof(seg_t, acks)}, {R_DELIVERED, offsetof(seg_t, deliv)}};
    for (int k = 0; k < 2; k++) {
        wr_buf_t *pairs = (wr_buf_t *)((char *)s + kinds[k].off);
        if (pairs->len == 0)
            continue;
        put_rec_header(tmp, kinds[k].type, &mark);
        wr_buf_put_u32(tmp, (uint32_t)(pairs->len / 8));
        wr_buf_put(tmp, pairs->p, pairs->len);
        end_rec(tmp, mark);
    }
    if (s->deliv_upto) {
        put_rec_header(tmp, R_DELIVERED_UPTO, &mark);
        wr_buf_put_u32(tmp, s->deliv_upto);
        end_rec(tmp, mark);
    }
    if (tmp->len == 0)
        return 0;
    if (s->ack_fd < 0) {
        char *p = seg_path(st, s->no, "ack");
        s->ack_fd = st->io->open(st->io, p, 1);
        free(p);
        if (s->ack_fd < 0)
            return s->ack_fd;
        st->dir_dirty = 1;
    }
    ssize_t r = st->io->pwrite(st->io, s->ack_fd, tmp->p, tmp->len, s->ack_size);
    if (r < 0)
        return (int)r;
    /* Only now are the pairs written: after a failure they stay buffered,
     * to be written (over any partial write) once the disk recovers. */
    s->acks.len = 0;
    s->deliv.len = 0;
    s->deliv_upto = 0;
    s->redo.len = 0;
    wr_buf_put(&s->unsynced, tmp->p, tmp->len);
    s->ack_size += tmp->len;
    s->ack_dirty = 1;
    return 0;
}

static int compact_meta(wr_store_t *st);

void wr_store_flush(wr_store_t *st)
{
    int wrote = 0;
    if (st->failed) {
        /* Keep acks buffered; they are written after recovery. */
        return;
    }
    /* Compaction replaces meta_fd, which a sync in flight may be using on
     * the worker thread: only when none is. */
    if (!st->syncing && st->meta_records > 1000 &&
        st->meta_records > 2 * (st->mqueues.count + st->mexch.count + st->mbind.count)) {
        int r = compact_meta(st);
        if (r < 0) {
            fail(st, r, "metadata compaction");
            return;
        }
        wrote = 1;
    } else if (st->meta_buf.len) {
        ssize_t r =
            st->io->pwrite(st->io, st->meta_fd, st->meta_buf.p, st->meta_buf.len, st->meta_size);
        if (r < 0) {
            fail(st, (int)r, "write of meta.log");
            return;
        }
        st->meta_size += st->meta_buf.len;
        st->meta_buf.len = 0;
        st->meta_dirty = 1;
        wrote = 1;
    }
    if (st->seg_buf.len) {
        ssize_t r =
            st->io->pwrite(st->io, st->cur->fd, st->seg_buf.p, st->seg_buf.len, st->cur->size);
        if (r < 0) {
            fail(st, (int)r, "write of a message segment");
            return;
        }
        st->cur->size += st->seg_buf.len;
        st->stats.bytes += st->seg_buf.len;
        st->seg_buf.len = 0;
        st->cur->dirty = 1;
        wrote = 1;
    }
    wr_buf_t tmp;
    wr_buf_init(&tmp);
    while (st->ack_list) {
        seg_t *s = st->ack_list;
        st->ack_list = s->ack_next;
        s->on_ack_list = 0;
        int r = write_acks(st, s, &tmp);
        if (r < 0) {
            s->on_ack_list = 1;
            s->ack_next = st->ack_list;
            st->ack_list = s;
            wr_buf_free(&tmp);
            fail(st, r, "write of an ack file");
            return;
        }
        wrote = 1;
        seg_maybe_delete(st, s);
    }
    wr_buf_free(&tmp);
    if (wrote || st->dir_dirty) {
        st->written_gen = st->gen;
        st->gen++;
    }
    /* Roll to a new segment when the current one is full, or when nothing
     * in it is live any more and it is big enough to be worth giving back
     * (an idle broker should not keep a drained 64 MiB segment). */
    if (st->cur &&
        (st->cur->size >= st->seg_max || (st->cur->live == 0 && st->cur->size >= ROLL_EMPTY_AT))) {
        int r = seg_new(st, st->cur->no + 1);
        if (r < 0)
            fail(st, r, "creation of a message segment");
    }
    start_sync(st);
}

uint64_t wr_store_gen(const wr_store_t *st)
{
    return st->gen;
}

uint64_t wr_store_synced_gen(const wr_store_t *st)
{
    return st->synced_gen;
}

int wr_store_failed(const wr_store_t *st)
{
    return st->failed;
}

int wr_store_busy(const wr_store_t *st)
{
    return st->syncing;
}

/* ---- metadata ---- */

static void meta_append(wr_store_t *st, uint8_t type, const uint8_t *body, size_t n)
{
    size_t mark;
    put_rec_header(&st->meta_buf, type, &mark);
    wr_buf_put(&st->meta_buf, body, n);
    end_rec(&st->meta_buf, mark);
    st->meta_records++;
}

static wr_buf_t *buf_copy(wr_bytes_t b)
{
    wr_buf_t *c = wr_xmalloc(sizeof *c);
    wr_buf_init(c);
    wr_buf_put(c, b.p, b.n);
    return c;
}

static void buf_destroy(wr_buf_t *b)
{
    wr_buf_free(b);
    free(b);
}

static wr_bytes_t qkey(const uint32_t *idbuf)
{
    return (wr_bytes_t){(const uint8_t *)idbuf, 4};
}

static void mqueue_put(wr_store_t *st, uint32_t id, wr_bytes_t rec)
{
    mqueue_t *q = wr_xcalloc(1, sizeof *q);
    wr_buf_init(&q->rec);
    wr_buf_put(&q->rec, rec.p, rec.n);
    uint32_t k = id;
    mqueue_t *old = wr_map_put(&st->mqueues, qkey(&k), q);
    if (old) {
        wr_buf_free(&old->rec);
        free(old);
    }
    if (id >= st->next_qid)
        st->next_qid = id + 1;
}

static void mqueue_del(wr_store_t *st, uint32_t id)
{
    uint32_t k = id;
    mqueue_t *q = wr_map_del(&st->mqueues, qkey(&k));
    if (q) {
        wr_buf_free(&q->rec);
        free(q);
    }
}

static mqueue_t *mqueue_get(const wr_store_t *st, uint32_t id)
{
    uint32_t k = id;
    return wr_map_get(&st->mqueues, qkey(&k));
}

uint32_t wr_store_queue_add(wr_store_t *st, wr_bytes_t name, uint8_t flags, wr_bytes_t args)
{
    uint32_t id = st->next_qid++;
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put_u32(&b, id);
    wr_buf_put_shortstr(&b, name);
    wr_buf_put_u8(&b, flags);
    wr_buf_put_longstr(&b, args);
    meta_append(st, R_QUEUE, b.p, b.len);
    mqueue_put(st, id, (wr_bytes_t){b.p, b.len});
    wr_buf_free(&b);
    return id;
}

void wr_store_queue_delete(wr_store_t *st, uint32_t id)
{
    uint8_t b[4];
    wr_set_u32(b, id);
    meta_append(st, R_QUEUE_DELETE, b, 4);
    mqueue_del(st, id);
}

void wr_store_exchange_add(wr_store_t *st, wr_bytes_t name, uint8_t type, uint8_t flags,
                           wr_bytes_t args)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put_shortstr(&b, name);
    wr_buf_put_u8(&b, type);
    wr_buf_put_u8(&b, flags);
    wr_buf_put_longstr(&b, args);
    meta_append(st, R_EXCHANGE, b.p, b.len);
    wr_buf_t *old = wr_map_put(&st->mexch, name, buf_copy((wr_bytes_t){b.p, b.len}));
    if (old)
        buf_destroy(old);
    wr_buf_free(&b);
}

void wr_store_exchange_delete(wr_store_t *st, wr_bytes_t name)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put_shortstr(&b, name);
    meta_append(st, R_EXCHANGE_DELETE, b.p, b.len);
    wr_buf_free(&b);
    wr_buf_t *old = wr_map_del(&st->mexch, name);
    if (old)
        buf_destroy(old);
}

void wr_store_bind(wr_store_t *st, int add, wr_bytes_t source, uint8_t kind, wr_bytes_t dest,
                   wr_bytes_t key, wr_bytes_t args)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put_shortstr(&b, source);
    wr_buf_put_u8(&b, kind);
    wr_buf_put_shortstr(&b, dest);
    wr_buf_put_shortstr(&b, key);
    wr_buf_put_longstr(&b, args);
    wr_bytes_t body = {b.p, b.len};
    if (add) {
        if (wr_map_get(&st->mbind, body) == NULL) {
            meta_append(st, R_BIND, b.p, b.len);
            wr_map_put(&st->mbind, body, buf_copy(body));
        }
    } else {
        wr_buf_t *old = wr_map_del(&st->mbind, body);
        if (old) {
            meta_append(st, R_UNBIND, b.p, b.len);
            buf_destroy(old);
        }
    }
    wr_buf_free(&b);
}

/* Applies one meta record to the live maps (recovery). */
static int meta_apply(wr_store_t *st, uint8_t type, wr_bytes_t body)
{
    rd_t r = {body.p, body.p + body.n, 0};
    switch (type) {
    case R_QUEUE: {
        uint32_t id = rd_u32(&r);
        rd_short(&r);
        rd_u8(&r);
        rd_long(&r);
        if (r.bad || r.p != r.end)
            return -1;
        mqueue_put(st, id, body);
        return 0;
    }
    case R_QUEUE_DELETE: {
        uint32_t id = rd_u32(&r);
        if (r.bad)
            return -1;
        mqueue_del(st, id);
        if (id >= st->next_qid)
            st->next_qid = id + 1;
        return 0;
    }
    case R_QUEUE_PURGE: {
        uint32_t id = rd_u32(&r);
        wr_loc_t l = {rd_u32(&r), 0};
        l.off = rd_u32(&r);
        if (r.bad)
            return -1;
        mqueue_t *q = mqueue_get(st, id);
        if (q)
            q->purged = l;
        return 0;
    }
    case R_EXCHANGE: {
        wr_bytes_t name = rd_short(&r);
        rd_u8(&r);
        rd_u8(&r);
        rd_long(&r);
        if (r.bad || r.p != r.end)
            return -1;
        wr_buf_t *old = wr_map_put(&st->mexch, name, buf_copy(body));
        if (old)
            buf_destroy(old);
        return 0;
    }
    case R_EXCHANGE_DELETE: {
        wr_bytes_t name = rd_short(&r);
        if (r.bad)
            return -1;
        wr_buf_t *old = wr_map_del(&st->mexch, name);
        if (old)
            buf_destroy(old);
        return 0;
    }
    case R_BIND:
    case R_UNBIND: {
        rd_short(&r);
        rd_u8(&r);
        rd_short(&r);
        rd_short(&r);
        rd_long(&r);
        if (r.bad || r.p != r.end)
            return -1;
        if (type == R_BIND) {
            if (wr_map_get(&st->mbind, body) == NULL)
                wr_map_put(&st->mbind, body, buf_copy(body));
        } else {
            wr_buf_t *old = wr_map_del(&st->mbind, body);
            if (old)
                buf_destroy(old);
        }
        return 0;
    }
    default:
        return -1;
    }
}

/* Writes the live metadata to a new file and puts it in place of
 * meta.log: write, sync, rename, sync the directory. */
static int compact_meta(wr_store_t *st)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t mark, i = 0;
    wr_map_slot_t *sl;
    /* A queue id counter record keeps ids unique after compaction: the
     * delete of the highest id handed out.  It goes first, because that id
     * may be a live queue, which the QUEUE record below then recreates. */
    put_rec_header(&b, R_QUEUE_DELETE, &mark);
    wr_buf_put_u32(&b, st->next_qid ? st->next_qid - 1 : 0);
    end_rec(&b, mark);
    while (wr_map_next(&st->mexch, &i, &sl)) {
        wr_buf_t *rec = sl->value;
        put_rec_header(&b, R_EXCHANGE, &mark);
        wr_buf_put(&b, rec->p, rec->len);
        end_rec(&b, mark);
    }
    i = 0;
    while (wr_map_next(&st->mqueues, &i, &sl)) {
        mqueue_t *q = sl->value;
        put_rec_header(&b, R_QUEUE, &mark);
        wr_buf_put(&b, q->rec.p, q->rec.len);
        end_rec(&b, mark);
        if (q->purged.seg) {
            put_rec_header(&b, R_QUEUE_PURGE, &mark);
            wr_buf_put(&b, q->rec.p, 4);
            wr_buf_put_u32(&b, q->purged.seg);
            wr_buf_put_u32(&b, q->purged.off);
            end_rec(&b, mark);
        }
    }
    i = 0;
    while (wr_map_next(&st->mbind, &i, &sl)) {
        wr_buf_t *rec = sl->value;
        put_rec_header(&b, R_BIND, &mark);
        wr_buf_put(&b, rec->p, rec->len);
        end_rec(&b, mark);
    }
    char *tmp = path_join(st->dir, "meta.log.new");
    char *final = path_join(st->dir, "meta.log");
    int r = st->io->open(st->io, tmp, 1);
    int fd = r;
    if (r >= 0)
        r = st->io->truncate(st->io, fd, 0);
    if (r >= 0)
        r = (int)st->io->pwrite(st->io, fd, b.p, b.len, 0);
    if (r >= 0)
        r = st->io->fsync(st->io, fd);
    if (r >= 0)
        r = st->io->rename(st->io, tmp, final);
    if (r >= 0)
        r = st->io->sync_dir(st->io, st->dir);
    if (r >= 0) {
        st->io->close(st->io, st->meta_fd);
        st->meta_fd = fd;
        st->meta_size = b.len;
        st->meta_buf.len = 0;
        st->meta_records = st->mqueues.count + st->mexch.count + st->mbind.count + 1;
    } else if (fd >= 0) {
        st->io->close(st->io, fd);
    }
    free(tmp);
    free(final);
    wr_buf_free(&b);
    return r < 0 ? r : 0;
}

/* ---- messages ---- */

/* MSG flag bit 1: this record is a compaction copy of the record at
 * origin; recovery ignores it while the origin's segment still exists. */
#define MSG_COPY 2

static void append_rec(wr_store_t *st, const uint32_t *qids, uint8_t nq, uint8_t flags,
                       wr_loc_t origin, uint64_t order, wr_bytes_t exchange, wr_bytes_t routing_key,
                       wr_bytes_t props, wr_bytes_t body, wr_loc_t *loc)
{
    uint64_t off = st->cur->size + st->seg_buf.len;
    size_t mark;
    put_rec_header(&st->seg_buf, R_MSG, &mark);
    size_t need = 1 + 4u * nq + 1 + (flags & MSG_COPY ? 16u : 0u) + 1 + exchange.n + 1 +
                  routing_key.n + 4 + props.n + 4 + body.n;
    uint8_t *p = wr_buf_reserve(&st->seg_buf, need);
    *p++ = nq;
    for (uint8_t i = 0; i < nq; i++, p += 4)
        wr_set_u32(p, qids[i]);
    *p++ = flags;
    if (flags & MSG_COPY) {
        wr_set_u32(p, origin.seg);
        wr_set_u32(p + 4, origin.off);
        wr_set_u64(p + 8, order);
        p += 16;
    }
    /* Empty views may be (NULL, 0) (the default exchange, no properties),
     * and memcpy from NULL is undefined even for 0 bytes. */
    *p++ = (uint8_t)exchange.n;
    if (exchange.n)
        memcpy(p, exchange.p, exchange.n);
    p += exchange.n;
    *p++ = (uint8_t)routing_key.n;
    if (routing_key.n)
        memcpy(p, routing_key.p, routing_key.n);
    p += routing_key.n;
    wr_set_u32(p, (uint32_t)props.n);
    if (props.n)
        memcpy(p + 4, props.p, props.n);
    p += 4 + props.n;
    wr_set_u32(p, (uint32_t)body.n);
    if (body.n)
        memcpy(p + 4, body.p, body.n);
    st->seg_buf.len += need;
    end_rec(&st->seg_buf, mark);
    st->cur->live += nq;
    st->cur->total += nq;
    st->stats.live_refs += nq;
    loc->seg = st->cur->no;
    loc->off = (uint32_t)off;
}

int wr_store_append(wr_store_t *st, const uint32_t *qids, uint8_t nq, uint8_t flags,
                    wr_bytes_t exchange, wr_bytes_t routing_key, wr_bytes_t props, wr_bytes_t body,
                    wr_loc_t *loc)
{
    if (st->failed)
        return st->failed;
    append_rec(st, qids, nq, (uint8_t)(flags & ~MSG_COPY), (wr_loc_t){0, 0}, 0, exchange,
               routing_key, props, body, loc);
    return 0;
}

static void queue_pair(wr_store_t *st, seg_t *s, wr_buf_t *pairs, uint32_t qid, uint32_t off)
{
    uint8_t *p = wr_buf_reserve(pairs, 8);
    wr_set_u32(p, qid);
    wr_set_u32(p + 4, off);
    pairs->len += 8;
    if (!s->on_ack_list) {
        s->on_ack_list = 1;
        s->ack_next = st->ack_list;
        st->ack_list = s;
    }
}

void wr_store_release(wr_store_t *st, wr_loc_t loc)
{
    seg_t *s = seg_get(st, loc.seg);
    if (s == NULL || s->live == 0)
        return;
    s->live--;
    st->stats.live_refs--;
    seg_maybe_delete(st, s);
}

void wr_store_ack(wr_store_t *st, uint32_t qid, wr_loc_t loc)
{
    seg_t *s = seg_get(st, loc.seg);
    if (s == NULL)
        return;
    queue_pair(st, s, &s->acks, qid, loc.off);
    if (s->live) {
        s->live--;
        st->stats.live_refs--;
    }
}

void wr_store_delivered(wr_store_t *st, uint32_t qid, wr_loc_t loc)
{
    seg_t *s = seg_get(st, loc.seg);
    if (s)
        queue_pair(st, s, &s->deliv, qid, loc.off);
}

static int parse_msg(wr_bytes_t body, wr_store_msg_t *out, const uint32_t **qids, uint8_t *nq,
                     wr_loc_t *origin, uint64_t *order)
{
    rd_t r = {body.p, body.p + body.n, 0};
    *nq = rd_u8(&r);
    wr_bytes_t q = rd_bytes(&r, 4u * *nq);
    *qids = (const uint32_t *)q.p;
    out->flags = rd_u8(&r);
    origin->seg = origin->off = 0;
    *order = 0;
    if (out->flags & MSG_COPY) {
        origin->seg = rd_u32(&r);
        origin->off = rd_u32(&r);
        *order = (uint64_t)rd_u32(&r) << 32;
        *order |= rd_u32(&r);
    }
    out->exchange = rd_short(&r);
    out->routing_key = rd_short(&r);
    out->props = rd_long(&r);
    out->body = rd_long(&r);
    return r.bad || r.p != r.end ? -1 : 0;
}

int wr_store_read(wr_store_t *st, wr_loc_t loc, wr_buf_t *scratch, wr_store_msg_t *out)
{
    seg_t *s = seg_get(st, loc.seg);
    if (s == NULL)
        return WR_ENOTFOUND;
    const uint8_t *base;
    size_t avail;
    scratch->len = 0;
    if (s == st->cur && loc.off >= s->size) {
        /* Still in the write buffer (or lost with it after a failure). */
        if (loc.off - s->size >= st->seg_buf.len)
            return WR_ENOTFOUND;
        base = st->seg_buf.p + (loc.off - s->size);
        avail = st->seg_buf.len - (loc.off - s->size);
    } else {
        uint8_t *p = wr_buf_reserve(scratch, 4096);
        ssize_t n = st->io->pread(st->io, s->fd, p, 4096, loc.off);
        if (n < 0)
            return (int)n;
        if ((size_t)n >= REC_HDR) {
            uint32_t len = wr_get_u32(p);
            if (len <= REC_MAX && len + REC_HDR > (size_t)n && (size_t)n == 4096) {
                p = wr_buf_reserve(scratch, len + REC_HDR);
                ssize_t m = st->io->pread(st->io, s->fd, p + n, len + REC_HDR - (size_t)n,
                                          loc.off + (uint64_t)n);
                if (m < 0)
                    return (int)m;
                n += m;
            }
        }
        scratch->len = (size_t)n;
        base = scratch->p;
        avail = scratch->len;
    }
    uint8_t type;
    wr_bytes_t body;
    const uint32_t *qids;
    uint8_t nq;
    wr_loc_t origin;
    uint64_t order;
    if (parse_rec(base, avail, 0, &type, &body) != 1 || type != R_MSG ||
        parse_msg(body, out, &qids, &nq, &origin, &order) != 0) {
        wr_error("message store: corrupt record in msgs/%08" PRIu32 ".seg at offset %" PRIu32,
                 loc.seg, loc.off);
        st->stats.corrupt_records++;
        return WR_ECORRUPT;
    }
    return 0;
}

/* ---- recovery ---- */

typedef struct listing {
    uint32_t *nos; /* segment files */
    size_t n, cap;
    uint32_t *acks; /* ack files */
    size_t na, capa;
} listing_t;

static void list_add(uint32_t **v, size_t *n, size_t *cap, uint32_t no)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = wr_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = no;
}

static void list_cb(void *ctx, const char *name)
{
    listing_t *l = ctx;
    size_t len = strlen(name);
    int is_seg = len == 12 && strcmp(name + 8, ".seg") == 0;
    int is_ack = len == 12 && strcmp(name + 8, ".ack") == 0;
    if (!is_seg && !is_ack)
        return;
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (end != name + 8 || v == 0 || v > UINT32_MAX)
        return;
    if (is_seg)
        list_add(&l->nos, &l->n, &l->cap, (uint32_t)v);
    else
        list_add(&l->acks, &l->na, &l->capa, (uint32_t)v);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int read_all(wr_store_t *st, int fd, wr_buf_t *b)
{
    int64_t size = st->io->size(st->io, fd);
    if (size < 0)
        return (int)size;
    b->len = 0;
    uint8_t *p = wr_buf_reserve(b, (size_t)size + 1);
    ssize_t n = st->io->pread(st->io, fd, p, (size_t)size, 0);
    if (n < 0)
        return (int)n;
    b->len = (size_t)n;
    return 0;
}

/* Walks the records of a file's contents, calling fn for each valid one.
 * A torn tail is cut (the file truncated at its start); a corrupt record
 * followed by valid ones is reported and skipped.  Returns the number of
 * bytes of valid records up to the end, i.e. the new file size. */
static size_t
scan(wr_store_t *st, const char *what, const wr_buf_t *b,
     void (*fn)(wr_store_t *st, void *ctx, uint8_t type, wr_bytes_t body, uint32_t off), void *ctx)
{
    size_t off = 0;
    while (off < b->len) {
        uint8_t type;
        wr_bytes_t body;
        int r = parse_rec(b->p, b->len, off, &type, &body);
        if (r == 1) {
            fn(st, ctx, type, body, (uint32_t)off);
            off += REC_HDR + body.n;
            continue;
        }
        /* Is there a valid record further on?  Then this is corruption in
         * the middle, not a torn tail. */
        size_t next = off + 1;
        for (; next + REC_HDR <= b->len; next++) {
            uint8_t t2;
            wr_bytes_t b2;
            if (parse_rec(b->p, b->len, next, &t2, &b2) == 1)
                break;
        }
        if (next + REC_HDR > b->len) {
            if (r == 0)
                wr_warn("message store: %s: torn record at offset %zu (%zu bytes), cut off", what,
                        off, b->len - off);
            else
                wr_warn("message store: %s: corrupt tail at offset %zu (%zu bytes), cut off", what,
                        off, b->len - off);
            return off;
        }
        wr_error("message store: %s: corrupt record at offset %zu, skipped %zu bytes", what, off,
                 next - off);
        st->stats.corrupt_records++;
        off = next;
    }
    return off;
}

static void meta_cb(wr_store_t *st, void *ctx, uint8_t type, wr_bytes_t body, uint32_t off)
{
    (void)ctx;
    st->meta_records++;
    if (meta_apply(st, type, body) != 0) {
        wr_error("message store: meta.log: bad record of type %u at offset %" PRIu32, type, off);
        st->stats.corrupt_records++;
    }
}

typedef struct seg_scan {
    u64set_t acked;
    u64set_t delivered;
    uint32_t delivered_upto; /* messages before this offset: maybe delivered */
    int clean;
    seg_t *seg;
    const wr_store_recovery_t *rec;
    const uint32_t *present; /* segment numbers found on disk, sorted */
    size_t npresent;
} seg_scan_t;

static void ack_cb(wr_store_t *st, void *ctx, uint8_t type, wr_bytes_t body, uint32_t off)
{
    (void)st;
    (void)off;
    seg_scan_t *sc = ctx;
    rd_t r = {body.p, body.p + body.n, 0};
    if (type == R_DELIVERED_UPTO) {
        uint32_t upto = rd_u32(&r);
        if (!r.bad && upto > sc->delivered_upto)
            sc->delivered_upto = upto;
        return;
    }
    uint32_t n = rd_u32(&r);
    if (r.bad || (size_t)(r.end - r.p) / 8 < n)
        return;
    u64set_t *set = type == R_ACKS ? &sc->acked : type == R_DELIVERED ? &sc->delivered : NULL;
    if (set == NULL)
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t qid = wr_get_u32(r.p + 8 * i);
        uint64_t o = wr_get_u32(r.p + 8 * i + 4);
        set_add(set, qid << 32 | o);
    }
}

static void msg_cb(wr_store_t *st, void *ctx, uint8_t type, wr_bytes_t body, uint32_t off)
{
    seg_scan_t *sc = ctx;
    if (type != R_MSG)
        return;
    wr_store_msg_t m;
    const uint32_t *qids;
    uint8_t nq;
    wr_loc_t origin;
    uint64_t order;
    if (parse_msg(body, &m, &qids, &nq, &origin, &order) != 0) {
        st->stats.corrupt_records++;
        return;
    }
    sc->seg->total += nq;
    /* A compaction copy counts only once its origin segment is gone (the
     * compaction finished); until then the original is the message. */
    if ((m.flags & MSG_COPY) &&
        bsearch(&origin.seg, sc->present, sc->npresent, sizeof *sc->present, cmp_u32))
        return;
    wr_loc_t loc = {sc->seg->no, off};
    /* Queue order is publish order: a record's own place, or for a copy
     * the place of the message it was first copied from. */
    if (!(m.flags & MSG_COPY))
        order = (uint64_t)loc.seg << 32 | loc.off;
    for (uint8_t i = 0; i < nq; i++) {
        uint32_t qid = wr_get_u32((const uint8_t *)qids + 4 * i);
        /* The id counter must pass every id a record names, not only those
         * meta.log declares: a crash can keep a message whose queue's
         * declaration was lost, and a new queue given that id would
         * inherit it at the next recovery. */
        if (qid >= st->next_qid)
            st->next_qid = qid + 1;
        mqueue_t *q = mqueue_get(st, qid);
        if (q == NULL || loc_before(loc, q->purged))
            continue;
        uint64_t key = (uint64_t)qid << 32 | off;
        if (set_has(&sc->acked, key))
            continue;
        sc->seg->live++;
        st->stats.live_refs++;
        st->stats.recovered_messages++;
        if (sc->rec && sc->rec->message)
            sc->rec->message(sc->rec->ctx, qid, loc, order, (uint32_t)m.body.n,
                             !sc->clean || off < sc->delivered_upto ||
                                 set_has(&sc->delivered, key));
    }
}

static int recover_segments(wr_store_t *st, const wr_store_recovery_t *rec, int clean)
{
    listing_t l = {0};
    int r = st->io->list(st->io, st->msgdir, list_cb, &l);
    if (r < 0)
        return r;
    if (l.n)
        qsort(l.nos, l.n, sizeof *l.nos, cmp_u32);
    /* An ack file without its segment is left by a crash between the two
     * unlinks of a deleted segment (or after a lost creation).  It must go
     * before a new segment takes its number, or its acks would apply to
     * the new segment's messages. */
    for (size_t i = 0; i < l.na; i++) {
        if (l.n && bsearch(&l.acks[i], l.nos, l.n, sizeof *l.nos, cmp_u32))
            continue;
        char *p = seg_path(st, l.acks[i], "ack");
        r = st->io->unlink(st->io, p);
        free(p);
        if (r < 0)
            break;
        st->dir_dirty = 1;
    }
    wr_buf_t b;
    wr_buf_init(&b);
    uint32_t last = 0;
    for (size_t i = 0; i < l.n && r == 0; i++) {
        seg_t *s = wr_xcalloc(1, sizeof *s);
        s->no = l.nos[i];
        s->ack_fd = -1;
        s->sealed = 1;
        wr_buf_init(&s->acks);
        wr_buf_init(&s->deliv);
        last = s->no;
        char *p = seg_path(st, s->no, "seg");
        s->fd = st->io->open(st->io, p, 0);
        free(p);
        if (s->fd < 0) {
            r = s->fd;
            free(s);
            break;
        }
        seg_insert(st, s);
        seg_scan_t sc = {{0}, {0}, 0, clean, s, rec, l.nos, l.n};
        char what[64];
        p = seg_path(st, s->no, "ack");
        int afd = st->io->open(st->io, p, 0);
        free(p);
        if (afd >= 0) {
            s->ack_fd = afd;
            r = read_all(st, afd, &b);
            if (r == 0) {
                snprintf(what, sizeof what, "msgs/%08" PRIu32 ".ack", s->no);
                size_t good = scan(st, what, &b, ack_cb, &sc);
                if (good < b.len)
                    st->io->truncate(st->io, afd, good);
                s->ack_size = good;
            }
        }
        if (r == 0)
            r = read_all(st, s->fd, &b);
        if (r == 0) {
            snprintf(what, sizeof what, "msgs/%08" PRIu32 ".seg", s->no);
            size_t good = scan(st, what, &b, msg_cb, &sc);
            if (good < b.len)
                st->io->truncate(st->io, s->fd, good);
            s->size = good;
        }
        /* After a crash every recovered message may have been delivered:
         * say so on disk, or a later clean restart would forget it. */
        if (!clean && s->live && s->size > 0) {
            s->deliv_upto = (uint32_t)s->size;
            if (!s->on_ack_list) {
                s->on_ack_list = 1;
                s->ack_next = st->ack_list;
                st->ack_list = s;
            }
        }
        free(sc.acked.v);
        free(sc.delivered.v);
    }
    wr_buf_free(&b);
    free(l.nos);
    free(l.acks);
    if (r < 0)
        return r;
    /* Drop segments nobody needs; new messages go to a fresh segment. */
    for (size_t i = 0; i < st->nsegs; i++)
        if (st->segs[i] && st->segs[i]->live == 0)
            seg_free(st, st->segs[i], 1), i = (size_t)-1;
    /* What was recovered may have been read from the page cache only (a
     * crash of the process, or writes whose fdatasync failed): the sync at
     * the end of wr_store_open makes it durable. */
    for (size_t i = 0; i < st->nsegs; i++) {
        if (st->segs[i]) {
            st->segs[i]->dirty = 1;
            st->segs[i]->ack_dirty = st->segs[i]->ack_fd >= 0;
        }
    }
    return seg_new(st, last + 1);
}

static void replay_meta_cb(wr_store_t *st, const wr_store_recovery_t *rec)
{
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&st->mexch, &i, &sl)) {
        wr_buf_t *b = sl->value;
        rd_t r = {b->p, b->p + b->len, 0};
        wr_bytes_t name = rd_short(&r);
        uint8_t type = rd_u8(&r);
        uint8_t flags = rd_u8(&r);
        wr_bytes_t args = rd_long(&r);
        if (rec->exchange)
            rec->exchange(rec->ctx, name, type, flags, args);
    }
    /* Queues in id order, so recovery is deterministic. */
    uint32_t *ids = wr_xmalloc((st->mqueues.count + 1) * sizeof *ids);
    size_t n = 0;
    i = 0;
    while (wr_map_next(&st->mqueues, &i, &sl))
        ids[n++] = wr_get_u32(((mqueue_t *)sl->value)->rec.p);
    qsort(ids, n, sizeof *ids, cmp_u32);
    for (size_t k = 0; k < n; k++) {
        mqueue_t *q = mqueue_get(st, ids[k]);
        rd_t r = {q->rec.p, q->rec.p + q->rec.len, 0};
        uint32_t id = rd_u32(&r);
        wr_bytes_t name = rd_short(&r);
        uint8_t flags = rd_u8(&r);
        wr_bytes_t args = rd_long(&r);
        if (rec->queue)
            rec->queue(rec->ctx, id, name, flags, args);
    }
    free(ids);
    /* Callbacks may delete (exclusive queues): collect bindings first. */
    i = 0;
    size_t nb = st->mbind.count, k = 0;
    wr_buf_t **binds = wr_xmalloc((nb + 1) * sizeof *binds);
    while (wr_map_next(&st->mbind, &i, &sl))
        binds[k++] =
            buf_copy((wr_bytes_t){((wr_buf_t *)sl->value)->p, ((wr_buf_t *)sl->value)->len});
    for (k = 0; k < nb; k++) {
        rd_t r = {binds[k]->p, binds[k]->p + binds[k]->len, 0};
        wr_bytes_t src = rd_short(&r);
        uint8_t kind = rd_u8(&r);
        wr_bytes_t dst = rd_short(&r);
        wr_bytes_t key = rd_short(&r);
        wr_bytes_t args = rd_long(&r);
        if (rec->binding)
            rec->binding(rec->ctx, src, kind, dst, key, args);
        buf_destroy(binds[k]);
    }
    free(binds);
}

int wr_store_open(wr_store_t **out, const char *dir, wr_io_t *io, uv_loop_t *loop,
                  const wr_store_recovery_t *rec, wr_store_synced_cb synced, void *synced_ctx,
                  char *err, size_t errlen)
{
    uint64_t t0 = uv_hrtime();
    wr_store_t *st = wr_xcalloc(1, sizeof *st);
    st->dir = wr_xstrndup(dir, strlen(dir));
    st->msgdir = path_join(dir, "msgs");
    st->io = io;
    st->loop = loop;
    st->synced = synced;
    st->synced_ctx = synced_ctx;
    st->meta_fd = -1;
    st->next_qid = 1;
    st->gen = 1;
    st->seg_max = SEG_MAX;
    wr_buf_init(&st->meta_buf);
    wr_buf_init(&st->seg_buf);
    wr_map_init(&st->mqueues);
    wr_map_init(&st->mexch);
    wr_map_init(&st->mbind);

    int r = io->mkdir(io, dir);
    if (r == 0)
        r = io->mkdir(io, st->msgdir);
    if (r < 0) {
        snprintf(err, errlen, "cannot create %s: %s", st->msgdir, strerror(-r));
        goto fail;
    }
    /* dir may have just been created: its entry must be durable too, or a
     * crash could take the whole store with it.  Best effort, as the
     * parent is not ours (it may not even be readable). */
    {
        const char *slash = strrchr(dir, '/');
        char *parent = slash == NULL  ? wr_xstrndup(".", 1)
                       : slash == dir ? wr_xstrndup("/", 1)
                                      : wr_xstrndup(dir, (size_t)(slash - dir));
        io->sync_dir(io, parent);
        free(parent);
    }
    char *marker = path_join(dir, "clean-shutdown");
    int mfd = io->open(io, marker, 0);
    int clean = mfd >= 0;
    if (clean) {
        io->close(io, mfd);
        io->unlink(io, marker);
    }
    free(marker);

    char *meta = path_join(dir, "meta.log");
    st->meta_fd = io->open(io, meta, 1);
    free(meta);
    if (st->meta_fd < 0) {
        r = st->meta_fd;
        snprintf(err, errlen, "cannot open %s/meta.log: %s", dir, strerror(-r));
        goto fail;
    }
    /* The entries of msgs/ and meta.log (new on a first start) must be
     * durable before anything is confirmed: the syncs of the commit path
     * cover the files and msgs/ itself, never dir.  This also makes the
     * removal of clean-shutdown durable, so a crash from now on is seen as
     * one. */
    r = io->sync_dir(io, dir);
    if (r < 0) {
        snprintf(err, errlen, "cannot sync %s: %s", dir, strerror(-r));
        goto fail;
    }
    wr_buf_t b;
    wr_buf_init(&b);
    r = read_all(st, st->meta_fd, &b);
    if (r == 0) {
        size_t good = scan(st, "meta.log", &b, meta_cb, NULL);
        if (good < b.len)
            io->truncate(io, st->meta_fd, good);
        st->meta_size = good;
    }
    wr_buf_free(&b);
    if (r < 0) {
        snprintf(err, errlen, "cannot read %s/meta.log: %s", dir, strerror(-r));
        goto fail;
    }
    if (rec)
        replay_meta_cb(st, rec);
    r = recover_segments(st, rec, clean);
    if (r < 0) {
        snprintf(err, errlen, "cannot recover the message segments in %s: %s", st->msgdir,
                 r <= -1000 ? wr_strerror(r) : strerror(-r));
        goto fail;
    }
    /* Make the recovered state (what was read, the truncations, the new
     * segment) durable before open returns: a message handed to the
     * broker as recovered must not vanish in the next crash.  Inline, as
     * the reads were, and without a report: nobody waits for generation 1. */
    st->dir_dirty = 1;
    st->meta_dirty = 1;
    st->written_gen = st->gen++;
    wr_store_synced_cb synced_cb = st->synced;
    st->synced = NULL;
    st->loop = NULL;
    start_sync(st);
    st->loop = loop;
    st->synced = synced_cb;
    if (st->failed) {
        r = st->failed;
        snprintf(err, errlen, "cannot sync the recovered store in %s: %s", dir,
                 r <= -1000 ? wr_strerror(r) : strerror(-r));
        goto fail;
    }
    st->stats.recovery_ms = (double)(uv_hrtime() - t0) / 1e6;
    *out = st;
    return 0;
fail:
    wr_store_close(st, 0);
    return r;
}

static void close_all(wr_store_t *st)
{
    for (size_t i = 0; i < st->nsegs; i++)
        if (st->segs[i])
            seg_free(st, st->segs[i], 0), i = (size_t)-1;
}

void wr_store_close(wr_store_t *st, int clean)
{
    /* A sync in flight uses st and its files on the worker thread: let it
     * finish, failed store or not, then run the last one inline. */
    uv_loop_t *loop = st->loop;
    while (st->syncing && loop)
        uv_run(loop, UV_RUN_ONCE);
    st->loop = NULL;
    if (st->cur && !st->failed) {
        wr_store_flush(st);
        if (!st->failed && clean) {
            char *marker = path_join(st->dir, "clean-shutdown");
            int fd = st->io->open(st->io, marker, 1);
            if (fd >= 0) {
                st->io->fsync(st->io, fd);
                st->io->close(st->io, fd);
                st->io->sync_dir(st->io, st->dir);
            }
            free(marker);
        }
    }
    close_all(st);
    if (st->meta_fd >= 0)
        st->io->close(st->io, st->meta_fd);
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&st->mqueues, &i, &sl)) {
        mqueue_t *q = sl->value;
        wr_buf_free(&q->rec);
        free(q);
    }
    i = 0;
    while (wr_map_next(&st->mexch, &i, &sl))
        buf_destroy(sl->value);
    i = 0;
    while (wr_map_next(&st->mbind, &i, &sl))
        buf_destroy(sl->value);
    wr_map_free(&st->mqueues);
    wr_map_free(&st->mexch);
    wr_map_free(&st->mbind);
    wr_buf_free(&st->meta_buf);
    wr_buf_free(&st->seg_buf);
    free(st->segs);
    free(st->sync_fds);
    free(st->dead_acks);
    free(st->dir);
    free(st->msgdir);
    free(st);
}

int64_t wr_store_free_space(wr_store_t *st)
{
    return st->io->free_space(st->io, st->dir);
}

int wr_store_recover_io(wr_store_t *st, uint64_t min_free)
{
    if (!st->failed)
        return 0;
    /* The compaction below replaces meta_fd, which the sync in flight may
     * be using; that sync ends soon, and the caller retries. */
    if (st->syncing)
        return -EBUSY;
    int64_t free_b = wr_store_free_space(st);
    if (free_b >= 0 && (uint64_t)free_b < min_free)
        return WR_ENOSPC;
    /* Probe: a scratch write that must reach the disk. */
    char *probe = path_join(st->dir, "probe");
    int fd = st->io->open(st->io, probe, 1);
    int r = fd;
    if (fd >= 0) {
        static const char x[4096];
        ssize_t w = st->io->pwrite(st->io, fd, x, sizeof x, 0);
        r = w < 0 ? (int)w : st->io->fsync(st->io, fd);
        st->io->close(st->io, fd);
        st->io->unlink(st->io, probe);
    }
    free(probe);
    if (r < 0)
        return r;
    /* Rewrite the metadata from the live state (it may have lost
     * unsynced records), then continue in a new segment. */
    st->failed = 0;
    r = compact_meta(st);
    if (r == 0)
        r = seg_new(st, st->cur->no + 1);
    if (r < 0) {
        st->failed = r;
        return r;
    }
    wr_info("message store: disk usable again, writing to msgs/%08" PRIu32 ".seg", st->cur->no);
    return 0;
}

void wr_store_set_segment_size(wr_store_t *st, uint64_t bytes)
{
    st->seg_max = bytes ? bytes : SEG_MAX;
}

void wr_store_get_stats(const wr_store_t *st, wr_store_stats_t *out)
{
    *out = st->stats;
    out->segments = 0;
    for (size_t i = 0; i < st->nsegs; i++)
        if (st->segs[i])
            out->segments++;
}

/* ---- compaction ---- */

typedef struct compact_ctx {
    seg_scan_t marks; /* the victim's acks and delivered marks (ack_cb) */
    seg_t *victim;
    wr_reloc_t *tab;
    size_t n, cap;
    uint64_t moved_refs;
} compact_ctx_t;

static void compact_msg_cb(wr_store_t *st, void *ctx, uint8_t type, wr_bytes_t body, uint32_t off)
{
    compact_ctx_t *cc = ctx;
    if (type != R_MSG)
        return;
    wr_store_msg_t m;
    const uint32_t *qids;
    uint8_t nq;
    wr_loc_t origin;
    uint64_t order;
    if (parse_msg(body, &m, &qids, &nq, &origin, &order) != 0)
        return;
    if (!(m.flags & MSG_COPY))
        order = (uint64_t)cc->victim->no << 32 | off;
    uint32_t live[255];
    uint8_t k = 0;
    for (uint8_t i = 0; i < nq; i++) {
        uint32_t qid = wr_get_u32((const uint8_t *)qids + 4 * i);
        if (mqueue_get(st, qid) && !set_has(&cc->marks.acked, (uint64_t)qid << 32 | off))
            live[k++] = qid;
    }
    if (k == 0)
        return;
    wr_loc_t nl;
    append_rec(st, live, k, (uint8_t)(m.flags | MSG_COPY), (wr_loc_t){cc->victim->no, off}, order,
               m.exchange, m.routing_key, m.props, m.body, &nl);
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? cc->cap * 2 : 256;
        cc->tab = wr_xrealloc(cc->tab, cc->cap * sizeof *cc->tab);
    }
    /* Carry the delivered marks over, so the redelivered flag stays exact. */
    for (uint8_t i = 0; i < k; i++)
        if (off < cc->marks.delivered_upto ||
            set_has(&cc->marks.delivered, (uint64_t)live[i] << 32 | off))
            queue_pair(st, st->cur, &st->cur->deliv, live[i], nl.off);
    cc->tab[cc->n].old_off = off;
    cc->tab[cc->n].new_loc = nl;
    cc->n++;
    cc->moved_refs += k;
}

int wr_store_compact(wr_store_t *st, wr_store_reloc_cb cb, void *ctx)
{
    if (st->failed || st->syncing || st->cur == NULL)
        return 0;
    seg_t *v = NULL;
    for (size_t i = 0; i < st->nsegs && v == NULL; i++) {
        seg_t *s = st->segs[i];
        if (s && s != st->cur && s->sealed && !s->in_sync && s->live && s->total >= 4 &&
            s->live * 4 <= s->total && s->no + 2 <= st->cur->no && s->redo.len == 0)
            v = s;
    }
    if (v == NULL)
        return 0;
    /* Which references of the victim are still live: its ack file, plus
     * acks not written yet. */
    compact_ctx_t cc;
    memset(&cc, 0, sizeof cc);
    cc.victim = v;
    wr_buf_t b;
    wr_buf_init(&b);
    int r = 0;
    if (v->ack_fd >= 0 && (r = read_all(st, v->ack_fd, &b)) == 0)
        scan(st, "compaction", &b, ack_cb, &cc.marks);
    for (size_t i = 0; r == 0 && i + 8 <= v->acks.len; i += 8)
        set_add(&cc.marks.acked,
                (uint64_t)wr_get_u32(v->acks.p + i) << 32 | wr_get_u32(v->acks.p + i + 4));
    uint64_t cur_live_before = st->cur->live, cur_total_before = st->cur->total;
    size_t buf_before = st->seg_buf.len;
    if (r == 0)
        r = read_all(st, v->fd, &b);
    if (r == 0)
        scan(st, "compaction", &b, compact_msg_cb, &cc);
    wr_buf_free(&b);
    free(cc.marks.acked.v);
    free(cc.marks.delivered.v);
    /* Make the copies durable before the originals go: write the current
     * segment's buffer and sync it (and the directory, in case the
     * segment is new), synchronously. */
    if (r == 0 && st->seg_buf.len) {
        ssize_t w =
            st->io->pwrite(st->io, st->cur->fd, st->seg_buf.p, st->seg_buf.len, st->cur->size);
        if (w < 0) {
            r = (int)w;
        } else {
            st->cur->size += st->seg_buf.len;
            st->stats.bytes += st->seg_buf.len;
            st->seg_buf.len = 0;
            st->cur->dirty = 1;
        }
    }
    if (r == 0)
        r = st->io->fsync(st->io, st->cur->fd);
    if (r == 0)
        r = st->io->sync_dir(st->io, st->msgdir);
    if (r != 0) {
        /* The copies do not count: the originals stay authoritative. */
        st->cur->live = cur_live_before;
        st->cur->total = cur_total_before;
        if (st->seg_buf.len >= buf_before)
            st->seg_buf.len = buf_before;
        free(cc.tab);
        fail(st, r, "compaction");
        return r;
    }
    /* Unlinking the victim makes the copies the messages (recovery ignores
     * a copy while its origin exists); then point the entries at them. */
    uint32_t no = v->no;
    st->stats.live_refs -= v->live;
    v->live = 0;
    if (v->on_ack_list) {
        for (seg_t **pp = &st->ack_list; *pp; pp = &(*pp)->ack_next)
            if (*pp == v) {
                *pp = v->ack_next;
                break;
            }
        v->on_ack_list = 0;
    }
    seg_free(st, v, 1);
    st->io->sync_dir(st->io, st->msgdir);
    if (cb && cc.n)
        cb(ctx, no, cc.tab, cc.n);
    wr_info("message store: compacted msgs/%08" PRIu32 ".seg (%zu messages, %" PRIu64
            " references moved)",
            no, cc.n, cc.moved_refs);
    st->stats.compactions++;
    free(cc.tab);
    return 1;
}
