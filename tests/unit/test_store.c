/*
 * test_store.c - the message store (src/store) against memio, an in-memory
 * disk that can lose, keep, tear or garble whatever was not synced and
 * fail writes and syncs on demand (tests/unit/memio.h).
 *
 * The first tests pin down one promise each: round trip, acks, multi-queue
 * messages, metadata, queue ids, delivered marks, segment deletion and
 * bounded space, metadata compaction, the synced callback, ENOSPC and EIO,
 * the worker-thread sync path, stale files a crash leaves behind.
 * test_store_crash follows SQLite's test6.c: hundreds of rounds of a
 * random workload (appends to 1-3 of several queues, acks, deliveries,
 * queue/exchange/binding changes, flushes, injected ENOSPC and EIO with
 * recovery) cut short by a power failure at a random point (between or
 * inside operations, including inside recovery) or by a clean close,
 * after which the recovered store is checked against a model of what was
 * promised (what was never confirmed may or may not come back; after a
 * clean close everything is exact):
 *
 * - every confirmed message (its generation reported synced) that was not
 *   acked is back, once, byte-exact, in publish order per queue;
 * - no message acked in a synced generation comes back, and nothing comes
 *   back in a queue it was not published to;
 * - every recovered location reads back (wr_store_read) and matches what
 *   was written;
 * - metadata whose last change was synced is exactly as it was;
 * - a durably declared queue id is never handed out again.
 *
 * WARREN_STORE_CRASH_ROUNDS sets the number of rounds (default 500),
 * WARREN_STORE_SEED the seed, WARREN_STORE_TRACE=1 prints every operation
 * (to debug a failing round).  WARREN_STORE_CORPUS_DIR, if set, makes
 * test_store_fuzz_seeds write the seed corpus of tests/fuzz/fuzz_store.c
 * there (the input format is described in that file).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/log.h"
#include "memio.h"
#include "store/store.h"
#include "test.h"

#define SDIR "/store"
#define MDIR "/store/msgs"

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A view of a buffer; NULL for an empty one, so that the store is also
 * exercised with the (NULL, 0) views real callers pass. */
static wr_bytes_t B(const wr_buf_t *b)
{
    return (wr_bytes_t){b->len ? b->p : NULL, b->len};
}

static int bytes_eq(wr_bytes_t a, wr_bytes_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ---- lists of byte strings ---- */

typedef struct blist {
    wr_buf_t *v;
    size_t n, cap;
} blist_t;

static void blist_add(blist_t *l, wr_bytes_t b)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = wr_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    wr_buf_init(&l->v[l->n]);
    wr_buf_put(&l->v[l->n], b.p, b.n);
    l->n++;
}

static long blist_find(const blist_t *l, wr_bytes_t b)
{
    for (size_t i = 0; i < l->n; i++)
        if (bytes_eq(B(&l->v[i]), b))
            return (long)i;
    return -1;
}

static void blist_clear(blist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        wr_buf_free(&l->v[i]);
    l->n = 0;
}

static void blist_free(blist_t *l)
{
    blist_clear(l);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

/* Metadata objects in the stores' own record layouts, so that what was
 * recovered compares with what was declared as bytes. */
static void enc_queue(wr_buf_t *b, uint32_t id, wr_bytes_t name, uint8_t flags, wr_bytes_t args)
{
    b->len = 0;
    wr_buf_put_u32(b, id);
    wr_buf_put_shortstr(b, name);
    wr_buf_put_u8(b, flags);
    wr_buf_put_longstr(b, args);
}

static void enc_exch(wr_buf_t *b, wr_bytes_t name, uint8_t type, uint8_t flags, wr_bytes_t args)
{
    b->len = 0;
    wr_buf_put_shortstr(b, name);
    wr_buf_put_u8(b, type);
    wr_buf_put_u8(b, flags);
    wr_buf_put_longstr(b, args);
}

static void enc_bind(wr_buf_t *b, wr_bytes_t src, uint8_t kind, wr_bytes_t dst, wr_bytes_t key,
                     wr_bytes_t args)
{
    b->len = 0;
    wr_buf_put_shortstr(b, src);
    wr_buf_put_u8(b, kind);
    wr_buf_put_shortstr(b, dst);
    wr_buf_put_shortstr(b, key);
    wr_buf_put_longstr(b, args);
}

/* ---- what recovery reported ---- */

typedef struct rmsg {
    uint32_t qid;
    wr_loc_t loc;
    uint32_t body_size;
    int redelivered;
} rmsg_t;

typedef struct rec {
    blist_t exch, queues, binds;
    rmsg_t *msgs;
    size_t nm, capm;
} rec_t;

static void on_exchange(void *ctx, wr_bytes_t name, uint8_t type, uint8_t flags, wr_bytes_t args)
{
    rec_t *r = ctx;
    wr_buf_t b;
    wr_buf_init(&b);
    enc_exch(&b, name, type, flags, args);
    blist_add(&r->exch, B(&b));
    wr_buf_free(&b);
}

static void on_queue(void *ctx, uint32_t id, wr_bytes_t name, uint8_t flags, wr_bytes_t args)
{
    rec_t *r = ctx;
    wr_buf_t b;
    wr_buf_init(&b);
    enc_queue(&b, id, name, flags, args);
    blist_add(&r->queues, B(&b));
    wr_buf_free(&b);
}

static void on_binding(void *ctx, wr_bytes_t src, uint8_t kind, wr_bytes_t dst, wr_bytes_t key,
                       wr_bytes_t args)
{
    rec_t *r = ctx;
    wr_buf_t b;
    wr_buf_init(&b);
    enc_bind(&b, src, kind, dst, key, args);
    blist_add(&r->binds, B(&b));
    wr_buf_free(&b);
}

static void on_message(void *ctx, uint32_t qid, wr_loc_t loc, uint64_t order, uint32_t body_size,
                       int redelivered)
{
    (void)order;
    rec_t *r = ctx;
    if (r->nm == r->capm) {
        r->capm = r->capm ? r->capm * 2 : 64;
        r->msgs = wr_xrealloc(r->msgs, r->capm * sizeof *r->msgs);
    }
    r->msgs[r->nm++] = (rmsg_t){qid, loc, body_size, redelivered};
}

static void rec_clear(rec_t *r)
{
    blist_clear(&r->exch);
    blist_clear(&r->queues);
    blist_clear(&r->binds);
    r->nm = 0;
}

static void rec_free(rec_t *r)
{
    blist_free(&r->exch);
    blist_free(&r->queues);
    blist_free(&r->binds);
    free(r->msgs);
    r->msgs = NULL;
    r->nm = r->capm = 0;
}

/* Recovered queue id of queues[i]. */
static uint32_t rec_qid(const rec_t *r, size_t i)
{
    return wr_get_u32(r->queues.v[i].p);
}

static int rec_has_queue(const rec_t *r, uint32_t id)
{
    for (size_t i = 0; i < r->queues.n; i++)
        if (rec_qid(r, i) == id)
            return 1;
    return 0;
}

/* The recovered messages of one queue, in order, as locations. */
static size_t rec_queue_msgs(const rec_t *r, uint32_t qid, wr_loc_t *out, int *redeliv, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nm; i++) {
        if (r->msgs[i].qid != qid)
            continue;
        if (n < max) {
            out[n] = r->msgs[i].loc;
            if (redeliv)
                redeliv[n] = r->msgs[i].redelivered;
        }
        n++;
    }
    return n;
}

/* ---- the synced callback ---- */

enum { G_UNKNOWN = 0, G_SYNCED = 1, G_FAILED = 2 };

typedef struct synctrack {
    uint64_t reported; /* highest generation reported, either way */
    uint8_t *status;   /* per generation */
    size_t cap;
    int events, bad_order, failures;
    int ignore; /* the disk is down: reports mean nothing */
    /* Optional check run on every report. */
    void (*hook)(struct synctrack *t, uint64_t gen, int err);
    void *hook_ctx;
} synctrack_t;

static int trace;

static void on_synced(void *ctx, uint64_t gen, int err)
{
    synctrack_t *t = ctx;
    if (trace)
        printf("    synced %" PRIu64 " err %d%s\n", gen, err, t->ignore ? " (ignored)" : "");
    if (t->ignore)
        return;
    t->events++;
    if (t->hook)
        t->hook(t, gen, err);
    if (gen <= t->reported) {
        /* Reported twice, or out of order: the test fails on it. */
        t->bad_order++;
        return;
    }
    if (gen >= t->cap) {
        size_t nc = t->cap ? t->cap : 64;
        while (nc <= gen)
            nc *= 2;
        t->status = wr_xrealloc(t->status, nc);
        memset(t->status + t->cap, 0, nc - t->cap);
        t->cap = nc;
    }
    for (uint64_t g = t->reported + 1; g <= gen; g++)
        t->status[g] = err ? G_FAILED : G_SYNCED;
    t->reported = gen;
    if (err)
        t->failures++;
}

static int gen_is(const synctrack_t *t, uint64_t g, int status)
{
    return g < t->cap && t->status[g] == status;
}

static void sync_reset(synctrack_t *t)
{
    free(t->status);
    memset(t, 0, sizeof *t);
}

/* ---- generated messages ---- */

typedef struct gmsg {
    uint8_t flags;
    wr_buf_t ex, rk, props, body;
} gmsg_t;

static void gmsg_init(gmsg_t *g)
{
    wr_buf_init(&g->ex);
    wr_buf_init(&g->rk);
    wr_buf_init(&g->props);
    wr_buf_init(&g->body);
}

static void gmsg_free(gmsg_t *g)
{
    wr_buf_free(&g->ex);
    wr_buf_free(&g->rk);
    wr_buf_free(&g->props);
    wr_buf_free(&g->body);
}

/* Message id -> its fields, deterministically; the body starts with the
 * id so that a recovered message says which one it is.  Sizes vary from
 * a few bytes to past the store's 4 KiB first read. */
static void gmsg_make(gmsg_t *g, uint64_t id)
{
    uint64_t s = id * 0x2545F4914F6CDD1Dull;
    g->ex.len = g->rk.len = g->props.len = g->body.len = 0;
    g->flags = (uint8_t)(id & 1);
    if (id % 4) {
        char x[16];
        int n = snprintf(x, sizeof x, "ex-%u", (unsigned)(id % 5));
        wr_buf_put(&g->ex, x, (size_t)n);
    }
    if (id % 7 == 0) {
        for (int i = 0; i < 255; i++)
            wr_buf_put_u8(&g->rk, (uint8_t)('a' + (id + (uint64_t)i) % 26));
    } else {
        char x[32];
        int n = snprintf(x, sizeof x, "rk.%" PRIu64, id);
        wr_buf_put(&g->rk, x, (size_t)n);
    }
    if (id % 3) {
        size_t n = 2 + rnd(&s) % 40;
        for (size_t i = 0; i < n; i++)
            wr_buf_put_u8(&g->props, (uint8_t)rnd(&s));
    }
    wr_buf_put_u64(&g->body, id);
    size_t n = rnd(&s) % 1500;
    if (id % 29 == 0)
        n = 5000 + rnd(&s) % 9000;
    uint8_t *p = wr_buf_reserve(&g->body, n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(&s);
    g->body.len += n;
}

/* Checks a message read back against the generator; returns its id, or 0
 * if it is not a message the generator could have made. */
static uint64_t gmsg_check(const wr_store_msg_t *m, gmsg_t *scratch)
{
    if (m->body.n < 8)
        return 0;
    uint64_t id = wr_get_u64(m->body.p);
    if (id == 0 || id > (1ull << 40))
        return 0;
    gmsg_make(scratch, id);
    if (m->flags != scratch->flags || !bytes_eq(m->exchange, B(&scratch->ex)) ||
        !bytes_eq(m->routing_key, B(&scratch->rk)) || !bytes_eq(m->props, B(&scratch->props)) ||
        !bytes_eq(m->body, B(&scratch->body)))
        return 0;
    return id;
}

static int append_id(wr_store_t *st, const uint32_t *qids, uint8_t nq, uint64_t id, wr_loc_t *loc)
{
    gmsg_t g;
    gmsg_init(&g);
    gmsg_make(&g, id);
    int r =
        wr_store_append(st, qids, nq, g.flags, B(&g.ex), B(&g.rk), B(&g.props), B(&g.body), loc);
    gmsg_free(&g);
    return r;
}

/* Reads loc back; returns the message id, or 0 if it does not read or
 * does not match. */
static uint64_t read_id(wr_store_t *st, wr_loc_t loc)
{
    wr_buf_t scratch;
    wr_buf_init(&scratch);
    wr_store_msg_t m;
    uint64_t id = 0;
    if (wr_store_read(st, loc, &scratch, &m) == 0) {
        gmsg_t g;
        gmsg_init(&g);
        id = gmsg_check(&m, &g);
        gmsg_free(&g);
    }
    wr_buf_free(&scratch);
    return id;
}

/* ---- fixture ---- */

typedef struct fx {
    memio_t *m;
    wr_store_t *st;
    rec_t rec;
    synctrack_t sync;
    uv_loop_t *loop;
    char err[256];
} fx_t;

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof *f);
    f->m = memio_new();
    /* The data directory is the administrator's and exists durably; the
     * store creates what is inside it. */
    memio_mkdir_durable(f->m, SDIR);
}

static int fx_open(fx_t *f)
{
    rec_clear(&f->rec);
    sync_reset(&f->sync);
    wr_store_recovery_t r = {&f->rec, on_exchange, on_queue, on_binding, on_message};
    f->st = NULL;
    int rc = wr_store_open(&f->st, SDIR, memio_io(f->m), f->loop, &r, on_synced, &f->sync, f->err,
                           sizeof f->err);
    if (rc != 0)
        f->st = NULL;
    return rc;
}

static void fx_close(fx_t *f, int clean)
{
    if (f->st)
        wr_store_close(f->st, clean);
    f->st = NULL;
}

/* Power cut: the store dies with the disk; its memory is freed without
 * reaching the new disk state. */
static void fx_crash(fx_t *f, uint64_t seed, int mode)
{
    memio_crash(f->m, seed, mode);
    f->sync.ignore = 1;
    fx_close(f, 0);
    memio_restart(f->m);
}

static void fx_free(fx_t *f)
{
    fx_close(f, 0);
    rec_free(&f->rec);
    sync_reset(&f->sync);
    memio_free(f->m);
}

/* Appends a generated message and flushes; returns the generation. */
static uint64_t put_flush(fx_t *f, const uint32_t *qids, uint8_t nq, uint64_t id, wr_loc_t *loc)
{
    uint64_t g = wr_store_gen(f->st);
    if (append_id(f->st, qids, nq, id, loc) != 0)
        return 0;
    wr_store_flush(f->st);
    return g;
}

static int quiet_saved = -1;

static void quiet(void)
{
    /* Recovery logs every torn tail it cuts; thousands of those would bury
     * the test output. */
    if (quiet_saved < 0)
        quiet_saved = wr_log_level();
    wr_log_set_level(WR_LOG_NONE);
}

static void unquiet(void)
{
    if (quiet_saved >= 0)
        wr_log_set_level(quiet_saved);
    quiet_saved = -1;
}

/* ---- tests ---- */

/* Appended messages come back in order, with their queues and every byte
 * of exchange, routing key, properties and body; also before the flush
 * (from the write buffer) and across the 4 KiB first read. */
static void test_store_roundtrip(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q1 =
        wr_store_queue_add(f.st, WR_BYTES_LIT("q1"), WR_STORE_QF_DURABLE, (wr_bytes_t){NULL, 0});
    uint32_t q2 =
        wr_store_queue_add(f.st, WR_BYTES_LIT("q2"), WR_STORE_QF_DURABLE, WR_BYTES_LIT("\x01x"));
    CHECK(q1 != q2);
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    uint8_t rk255[255];
    memset(rk255, 'r', sizeof rk255);
    struct {
        uint32_t q[2];
        uint8_t nq, flags;
        wr_bytes_t ex, rk, props, body;
    } m[4] = {
        {{q1}, 1, 1, {NULL, 0}, WR_BYTES_LIT("k"), {NULL, 0}, {NULL, 0}},
        {{q1, q2},
         2,
         0,
         WR_BYTES_LIT("amq.topic"),
         {rk255, 255},
         WR_BYTES_LIT("\x80\x00\x00"),
         WR_BYTES_LIT("hello")},
        {{q2}, 1, 1, WR_BYTES_LIT("x"), {NULL, 0}, WR_BYTES_LIT("\x00\x00"), {big, sizeof big}},
        {{q1}, 1, 1, WR_BYTES_LIT("x"), WR_BYTES_LIT("k4"), {NULL, 0}, {big, 4080}},
    };
    wr_loc_t loc[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wr_store_append(f.st, m[i].q, m[i].nq, m[i].flags, m[i].ex, m[i].rk, m[i].props,
                                 m[i].body, &loc[i]),
                 0);
    wr_buf_t scratch;
    wr_buf_init(&scratch);
    wr_store_msg_t out;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1) {
            uint64_t g = wr_store_gen(f.st);
            wr_store_flush(f.st);
            CHECK(wr_store_synced_gen(f.st) >= g);
            CHECK_EQ(f.sync.bad_order, 0);
            CHECK_EQ(f.sync.failures, 0);
        }
        if (pass == 2) {
            fx_close(&f, 1);
            CHECK_EQ(fx_open(&f), 0);
            wr_loc_t got[8];
            int red[8];
            CHECK_EQ(rec_queue_msgs(&f.rec, q1, got, red, 8), 3);
            CHECK(got[0].seg == loc[0].seg && got[0].off == loc[0].off);
            CHECK(got[1].seg == loc[1].seg && got[1].off == loc[1].off);
            CHECK(got[2].seg == loc[3].seg && got[2].off == loc[3].off);
            CHECK(!red[0] && !red[1] && !red[2]);
            CHECK_EQ(rec_queue_msgs(&f.rec, q2, got, red, 8), 2);
            CHECK(got[0].seg == loc[1].seg && got[0].off == loc[1].off);
            CHECK(got[1].seg == loc[2].seg && got[1].off == loc[2].off);
            CHECK_EQ(f.rec.queues.n, 2);
        }
        for (int i = 0; i < 4; i++) {
            CHECK_EQ(wr_store_read(f.st, loc[i], &scratch, &out), 0);
            CHECK_EQ(out.flags, m[i].flags);
            CHECK(bytes_eq(out.exchange, m[i].ex));
            CHECK(bytes_eq(out.routing_key, m[i].rk));
            CHECK(bytes_eq(out.props, m[i].props));
            CHECK(bytes_eq(out.body, m[i].body));
        }
    }
    wr_store_stats_t stats;
    wr_store_get_stats(f.st, &stats);
    CHECK_EQ(stats.recovered_messages, 5);
    CHECK_EQ(stats.corrupt_records, 0);
    wr_buf_free(&scratch);
    fx_free(&f);
}

/* An acked message never comes back: acked before its flush, after it,
 * before a clean close or before a crash after the ack was synced. */
static void test_store_acked_never_return(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t loc[10];
    for (uint64_t i = 0; i < 10; i++)
        CHECK_EQ(append_id(f.st, &q, 1, i + 1, &loc[i]), 0);
    wr_store_ack(f.st, q, loc[0]); /* before the message is even written */
    wr_store_flush(f.st);
    wr_store_ack(f.st, q, loc[3]);
    wr_store_ack(f.st, q, loc[9]);
    wr_store_flush(f.st);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    wr_loc_t got[16];
    CHECK_EQ(rec_queue_msgs(&f.rec, q, got, NULL, 16), 7);
    static const int want[7] = {1, 2, 4, 5, 6, 7, 8};
    for (int i = 0; i < 7; i++) {
        CHECK(got[i].seg == loc[want[i]].seg && got[i].off == loc[want[i]].off);
        CHECK_EQ(read_id(f.st, got[i]), want[i] + 1);
    }
    /* Now ack two more, sync, and cut the power losing everything
     * unsynced: the synced acks hold. */
    wr_store_ack(f.st, q, loc[1]);
    wr_store_ack(f.st, q, loc[8]);
    wr_store_flush(f.st);
    wr_store_ack(f.st, q, loc[2]); /* never flushed: may come back */
    fx_crash(&f, 1, MEMIO_CRASH_DROP);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(rec_queue_msgs(&f.rec, q, got, NULL, 16), 5);
    CHECK(got[0].off == loc[2].off);
    CHECK(got[4].off == loc[7].off);
    fx_free(&f);
}

/* One record for three queues; an ack in one queue leaves it in the other
 * two, and the segment goes only when all three are done. */
static void test_store_multi_queue_ack(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q[3];
    for (int i = 0; i < 3; i++)
        q[i] = wr_store_queue_add(f.st, i == 0 ? WR_BYTES_LIT("a") : WR_BYTES_LIT("b"), 1,
                                  (wr_bytes_t){NULL, 0});
    CHECK(q[0] != q[1] && q[1] != q[2]);
    wr_loc_t loc;
    CHECK(put_flush(&f, q, 3, 42, &loc) > 0);
    wr_store_stats_t s;
    wr_store_get_stats(f.st, &s);
    CHECK_EQ(s.live_refs, 3);
    wr_store_ack(f.st, q[1], loc);
    wr_store_flush(f.st);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 2);
    CHECK(f.rec.msgs[0].qid == q[0] && f.rec.msgs[1].qid == q[2]);
    CHECK(f.rec.msgs[0].loc.off == loc.off && f.rec.msgs[0].loc.seg == loc.seg);
    CHECK_EQ(read_id(f.st, loc), 42);
    wr_store_ack(f.st, q[0], loc);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 1);
    CHECK(f.rec.msgs[0].qid == q[2]);
    wr_store_ack(f.st, q[2], loc);
    wr_store_flush(f.st);
    /* The old segment had nothing live left: gone, with its ack file. */
    char path[64];
    snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".seg", loc.seg);
    CHECK_EQ(memio_size(f.m, path), -1);
    snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".ack", loc.seg);
    fx_close(&f, 1);
    CHECK_EQ(memio_size(f.m, path), -1);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 0);
    fx_free(&f);
}

/* Exchanges, queues with arguments, bindings of both kinds, redeclares
 * and deletes survive a reopen exactly. */
static void test_store_metadata(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    wr_store_t *st = f.st;
    wr_bytes_t none = {NULL, 0};
    wr_store_exchange_add(st, WR_BYTES_LIT("ex1"), 1, WR_STORE_XF_DURABLE, WR_BYTES_LIT("A"));
    wr_store_exchange_add(st, WR_BYTES_LIT("ex2"), 2, WR_STORE_XF_DURABLE | WR_STORE_XF_INTERNAL,
                          none);
    wr_store_exchange_add(st, WR_BYTES_LIT("gone"), 3, 1, none);
    /* A redeclare replaces the stored definition. */
    wr_store_exchange_add(st, WR_BYTES_LIT("ex1"), 4, WR_STORE_XF_AUTO_DELETE,
                          WR_BYTES_LIT("args\0with\0nul"));
    wr_store_exchange_delete(st, WR_BYTES_LIT("gone"));
    uint32_t qa = wr_store_queue_add(st, WR_BYTES_LIT("qa"), WR_STORE_QF_DURABLE,
                                     WR_BYTES_LIT("\x00\x00\x00\x05x-max"));
    uint32_t qb = wr_store_queue_add(st, WR_BYTES_LIT("qb"),
                                     WR_STORE_QF_DURABLE | WR_STORE_QF_AUTO_DELETE, none);
    uint32_t qc = wr_store_queue_add(st, WR_BYTES_LIT("qc"), 1, none);
    wr_store_queue_delete(st, qb);
    wr_store_bind(st, 1, WR_BYTES_LIT("ex1"), 0, WR_BYTES_LIT("qa"), WR_BYTES_LIT("k.#"), none);
    wr_store_bind(st, 1, WR_BYTES_LIT("ex1"), 1, WR_BYTES_LIT("ex2"), WR_BYTES_LIT(""),
                  WR_BYTES_LIT("hdr"));
    wr_store_bind(st, 1, WR_BYTES_LIT("ex2"), 0, WR_BYTES_LIT("qc"), WR_BYTES_LIT("x"), none);
    wr_store_bind(st, 1, WR_BYTES_LIT("ex2"), 0, WR_BYTES_LIT("qc"), WR_BYTES_LIT("x"), none);
    wr_store_bind(st, 0, WR_BYTES_LIT("ex2"), 0, WR_BYTES_LIT("qc"), WR_BYTES_LIT("x"), none);
    wr_store_bind(st, 1, WR_BYTES_LIT("ex2"), 0, WR_BYTES_LIT("qc"), WR_BYTES_LIT("y"), none);
    wr_store_flush(st);
    for (int round = 0; round < 2; round++) {
        /* Round 0: after a clean close; round 1: after a power cut that
         * loses everything unsynced (all of it was synced). */
        if (round == 0)
            fx_close(&f, 1);
        else
            fx_crash(&f, 7, MEMIO_CRASH_DROP);
        CHECK_EQ(fx_open(&f), 0);
        wr_buf_t b;
        wr_buf_init(&b);
        CHECK_EQ(f.rec.exch.n, 2);
        enc_exch(&b, WR_BYTES_LIT("ex1"), 4, WR_STORE_XF_AUTO_DELETE,
                 WR_BYTES_LIT("args\0with\0nul"));
        CHECK(blist_find(&f.rec.exch, B(&b)) >= 0);
        enc_exch(&b, WR_BYTES_LIT("ex2"), 2, WR_STORE_XF_DURABLE | WR_STORE_XF_INTERNAL, none);
        CHECK(blist_find(&f.rec.exch, B(&b)) >= 0);
        CHECK_EQ(f.rec.queues.n, 2);
        enc_queue(&b, qa, WR_BYTES_LIT("qa"), WR_STORE_QF_DURABLE,
                  WR_BYTES_LIT("\x00\x00\x00\x05x-max"));
        CHECK(bytes_eq(B(&f.rec.queues.v[0]), B(&b)));
        enc_queue(&b, qc, WR_BYTES_LIT("qc"), 1, none);
        CHECK(bytes_eq(B(&f.rec.queues.v[1]), B(&b)));
        CHECK_EQ(f.rec.binds.n, 3);
        enc_bind(&b, WR_BYTES_LIT("ex1"), 0, WR_BYTES_LIT("qa"), WR_BYTES_LIT("k.#"), none);
        CHECK(blist_find(&f.rec.binds, B(&b)) >= 0);
        enc_bind(&b, WR_BYTES_LIT("ex1"), 1, WR_BYTES_LIT("ex2"), WR_BYTES_LIT(""),
                 WR_BYTES_LIT("hdr"));
        CHECK(blist_find(&f.rec.binds, B(&b)) >= 0);
        enc_bind(&b, WR_BYTES_LIT("ex2"), 0, WR_BYTES_LIT("qc"), WR_BYTES_LIT("y"), none);
        CHECK(blist_find(&f.rec.binds, B(&b)) >= 0);
        wr_buf_free(&b);
    }
    fx_free(&f);
}

/* Queue ids are never reused: not after deletes and reopen, and not after
 * a crash that lost a queue's declaration but kept a message naming it
 * (which would otherwise turn up in the next queue given that id). */
static void test_store_queue_ids_unique(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t max = 0;
    for (int i = 0; i < 5; i++) {
        uint32_t id = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
        CHECK(id > max);
        max = id;
        if (i != 2)
            wr_store_queue_delete(f.st, id);
    }
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t id = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    CHECK(id > max);
    max = id;
    wr_loc_t keep, ghost;
    CHECK(put_flush(&f, &id, 1, 100, &keep) > 0);

    /* A queue whose declaration never reached meta.log, but whose message
     * reached its segment: the crash comes at the first fsync, after both
     * writes, and keeps the segment's unsynced tail but not meta.log's.
     * (An id whose declaration and messages were all lost may be handed
     * out again: nothing on disk names it.) */
    uint32_t lost = wr_store_queue_add(f.st, WR_BYTES_LIT("lost2"), 1, (wr_bytes_t){NULL, 0});
    CHECK(lost > max);
    max = lost;
    CHECK_EQ(append_id(f.st, &lost, 1, 102, &ghost), 0);
    memio_crash_after(f.m, 3, 5, MEMIO_CRASH_KEEP); /* meta pwrite, seg pwrite, then the fsync */
    memio_crash_override(f.m, SDIR "/meta.log", MEMIO_CRASH_DROP);
    wr_store_flush(f.st);
    CHECK(memio_is_down(f.m));
    f.sync.ignore = 1;
    fx_close(&f, 0);
    memio_restart(f.m);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.queues.n, 2); /* "lost2" is gone with its declaration */
    CHECK_EQ(f.rec.nm, 1);       /* and so is its message, for now */
    uint32_t fresh = wr_store_queue_add(f.st, WR_BYTES_LIT("fresh"), 1, (wr_bytes_t){NULL, 0});
    CHECK(fresh > max);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    /* The orphan message must not have joined the new queue. */
    for (size_t i = 0; i < f.rec.nm; i++)
        CHECK(f.rec.msgs[i].qid != fresh);
    fx_free(&f);
}

/* DELIVERED marks: after a clean close exactly the marked messages come
 * back redelivered; after a crash all of them do. */
static void test_store_redelivered(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q[2];
    q[0] = wr_store_queue_add(f.st, WR_BYTES_LIT("a"), 1, (wr_bytes_t){NULL, 0});
    q[1] = wr_store_queue_add(f.st, WR_BYTES_LIT("b"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t loc[6];
    for (int i = 0; i < 6; i++)
        CHECK_EQ(append_id(f.st, q, 2, (uint64_t)i + 1, &loc[i]), 0);
    wr_store_flush(f.st);
    wr_store_delivered(f.st, q[0], loc[1]);
    wr_store_delivered(f.st, q[1], loc[4]);
    wr_store_delivered(f.st, q[0], loc[5]);
    wr_store_ack(f.st, q[0], loc[5]);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 11);
    for (size_t i = 0; i < f.rec.nm; i++) {
        rmsg_t *r = &f.rec.msgs[i];
        int want = (r->qid == q[0] && r->loc.off == loc[1].off) ||
                   (r->qid == q[1] && r->loc.off == loc[4].off);
        CHECK_EQ(r->redelivered, want);
    }
    /* The marks persist over a second clean cycle. */
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    int marked = 0;
    for (size_t i = 0; i < f.rec.nm; i++)
        marked += f.rec.msgs[i].redelivered;
    CHECK_EQ(marked, 2);
    /* A crash (here the process dies with the page cache intact) and every
     * recovered message may have been delivered. */
    fx_crash(&f, 9, MEMIO_CRASH_KEEP);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 11);
    for (size_t i = 0; i < f.rec.nm; i++)
        CHECK_EQ(f.rec.msgs[i].redelivered, 1);
    fx_free(&f);
}

/* Segments whose messages are all acked are deleted, and a steady
 * append/ack load across many segments keeps the store's size bounded. */
static void test_store_segments_deleted(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    wr_store_set_segment_size(f.st, 64 * 1024);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    static uint8_t body[16 * 1024];
    memset(body, 'b', sizeof body);
    enum { BACKLOG = 12, N = 3000 };
    wr_loc_t ring[BACKLOG];
    uint64_t max_used = 0, max_segs = 0;
    uint32_t first_seg = 0, last_seg = 0;
    for (int i = 0; i < N; i++) {
        if (i >= BACKLOG)
            wr_store_ack(f.st, q, ring[i % BACKLOG]);
        CHECK_EQ(wr_store_append(f.st, &q, 1, 1, WR_BYTES_LIT("x"), WR_BYTES_LIT("k"),
                                 (wr_bytes_t){NULL, 0}, (wr_bytes_t){body, sizeof body},
                                 &ring[i % BACKLOG]),
                 0);
        if (i == 0)
            first_seg = ring[0].seg;
        last_seg = ring[i % BACKLOG].seg;
        wr_store_flush(f.st);
        wr_store_stats_t s;
        wr_store_get_stats(f.st, &s);
        if (s.segments > max_segs)
            max_segs = s.segments;
        uint64_t u = memio_used(f.m);
        if (u > max_used)
            max_used = u;
        CHECK_EQ(s.live_refs, i + 1 < BACKLOG ? i + 1 : BACKLOG);
    }
    /* 3000 x 16 KiB = 47 MiB went through ~750 segments of 64 KiB. */
    CHECK(last_seg - first_seg > 500);
    /* A backlog of 12 x 16 KiB spans at most 5 segments, plus the current. */
    CHECK(max_segs <= 6);
    CHECK(max_used < 1024 * 1024);
    CHECK(memio_count(f.m, MDIR, ".seg") <= 6);
    CHECK(memio_count(f.m, MDIR, ".ack") <= 6);
    /* Everything acked: only the current segment stays. */
    for (int i = N - BACKLOG; i < N; i++)
        wr_store_ack(f.st, q, ring[i % BACKLOG]);
    wr_store_flush(f.st);
    wr_store_stats_t s;
    wr_store_get_stats(f.st, &s);
    CHECK_EQ(s.live_refs, 0);
    CHECK(s.segments <= 2);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 0);
    CHECK_EQ(memio_count(f.m, MDIR, ".seg"), 1);
    /* Stale ack files are removed too, at the latest by recovery. */
    CHECK(memio_count(f.m, MDIR, ".ack") <= 1);
    fx_free(&f);
}

/* Many declare/delete cycles: meta.log is rewritten from the live state,
 * stays small, and the state (including the newest queue, whose id is the
 * counter's last value) survives. */
static void test_store_meta_compaction(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    wr_bytes_t none = {NULL, 0};
    uint32_t keep = wr_store_queue_add(f.st, WR_BYTES_LIT("keep"), 1, WR_BYTES_LIT("kargs"));
    wr_store_exchange_add(f.st, WR_BYTES_LIT("x"), 1, 1, none);
    wr_store_bind(f.st, 1, WR_BYTES_LIT("x"), 0, WR_BYTES_LIT("keep"), WR_BYTES_LIT("k"), none);
    wr_loc_t loc;
    CHECK(put_flush(&f, &keep, 1, 7, &loc) > 0);
    int64_t peak = 0, prev = 0;
    int shrank = 0;
    uint32_t maxid = keep;
    for (int i = 0; i < 3000; i++) {
        uint32_t t = wr_store_queue_add(f.st, WR_BYTES_LIT("temp-queue-with-a-long-name"), 1,
                                        WR_BYTES_LIT("some arguments"));
        CHECK(t > maxid);
        maxid = t;
        wr_store_exchange_add(f.st, WR_BYTES_LIT("tx"), 1, 1, none);
        wr_store_bind(f.st, 1, WR_BYTES_LIT("tx"), 0, WR_BYTES_LIT("temp"), WR_BYTES_LIT("k"),
                      none);
        wr_store_bind(f.st, 0, WR_BYTES_LIT("tx"), 0, WR_BYTES_LIT("temp"), WR_BYTES_LIT("k"),
                      none);
        wr_store_exchange_delete(f.st, WR_BYTES_LIT("tx"));
        wr_store_queue_delete(f.st, t);
        if (i % 10 == 0)
            wr_store_flush(f.st);
        int64_t sz = memio_size(f.m, SDIR "/meta.log");
        if (sz > peak)
            peak = sz;
        shrank += sz < prev;
        prev = sz;
    }
    /* The newest queue is alive when the log is compacted. */
    uint32_t last = wr_store_queue_add(f.st, WR_BYTES_LIT("last"), 1, none);
    CHECK(last > maxid);
    for (int i = 0; i < 1200; i++) {
        wr_store_exchange_add(f.st, WR_BYTES_LIT("churn"), 1, 1, none);
        wr_store_exchange_delete(f.st, WR_BYTES_LIT("churn"));
    }
    wr_store_flush(f.st);
    int64_t now = memio_size(f.m, SDIR "/meta.log");
    /* 15000 records of ~40 bytes would be ~600 KB without compaction. */
    CHECK(shrank >= 10); /* compacted again and again */
    CHECK(peak < 200 * 1024);
    CHECK(now < 100 * 1024);
    uint32_t want[4] = {keep, last};
    size_t nwant = 2;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            fx_close(&f, 1);
        else
            fx_crash(&f, 3, MEMIO_CRASH_DROP);
        CHECK_EQ(fx_open(&f), 0);
        CHECK_EQ(f.rec.queues.n, nwant);
        for (size_t i = 0; i < nwant; i++)
            CHECK_EQ(rec_qid(&f.rec, i), want[i]);
        CHECK_EQ(f.rec.exch.n, 1);
        CHECK_EQ(f.rec.binds.n, 1);
        CHECK_EQ(f.rec.nm, 1);
        CHECK_EQ(read_id(f.st, f.rec.msgs[0].loc), 7);
        uint32_t next = wr_store_queue_add(f.st, WR_BYTES_LIT("n"), 1, none);
        CHECK(next > want[nwant - 1]);
        want[nwant++] = next;
        wr_store_flush(f.st);
    }
    fx_free(&f);
}

/* The synced callback reports each generation once, in increasing order,
 * and only when what was written in it is in the disk's synced state. */
typedef struct pending {
    uint64_t gen;
    wr_loc_t loc;
    uint64_t end; /* offset just past the record */
} pending_t;

static pending_t pend[64];
static int npend, synced_bad;

static void check_synced_hook(synctrack_t *t, uint64_t gen, int err)
{
    memio_t *m = t->hook_ctx;
    if (err)
        return;
    for (int i = 0; i < npend; i++) {
        if (pend[i].gen > gen)
            continue;
        char path[64];
        snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".seg", pend[i].loc.seg);
        if (memio_synced_size(m, path) < (int64_t)pend[i].end)
            synced_bad++;
    }
}

static void test_store_synced_callback(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    f.sync.hook = check_synced_hook;
    f.sync.hook_ctx = f.m;
    npend = synced_bad = 0;
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    uint64_t last = 0;
    memio_stats_t ms0, ms1;
    for (int round = 0; round < 20; round++) {
        memio_get_stats(f.m, &ms0);
        int before = f.sync.events;
        for (int k = 0; k <= round % 3; k++) {
            wr_loc_t loc;
            uint64_t id = (uint64_t)round * 10 + (uint64_t)k + 1;
            uint64_t g = wr_store_gen(f.st);
            CHECK(g > last);
            CHECK_EQ(append_id(f.st, &q, 1, id, &loc), 0);
            gmsg_t gm;
            gmsg_init(&gm);
            gmsg_make(&gm, id);
            uint64_t len =
                9 + 1 + 4 + 1 + 1 + gm.ex.len + 1 + gm.rk.len + 4 + gm.props.len + 4 + gm.body.len;
            gmsg_free(&gm);
            if (npend < 64)
                pend[npend++] = (pending_t){g, loc, loc.off + len};
        }
        uint64_t g = wr_store_gen(f.st);
        wr_store_flush(f.st);
        memio_get_stats(f.m, &ms1);
        CHECK(ms1.fsyncs > ms0.fsyncs);
        CHECK_EQ(f.sync.events, before + 1);
        CHECK(f.sync.reported >= g);
        CHECK(wr_store_synced_gen(f.st) == f.sync.reported);
        last = g;
        /* A flush with nothing new reports nothing. */
        if (round % 4 == 0) {
            wr_store_flush(f.st);
            CHECK_EQ(f.sync.events, before + 1);
        }
    }
    CHECK_EQ(synced_bad, 0);
    CHECK_EQ(f.sync.bad_order, 0);
    CHECK_EQ(f.sync.failures, 0);
    fx_free(&f);
}

/* Disk full: the write fails, the generation is reported failed, the
 * store refuses appends until wr_store_recover_io finds space again, and
 * everything confirmed before is still there afterwards. */
static void test_store_enospc(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t a, b, c, d, e;
    uint64_t ga = put_flush(&f, &q, 1, 1, &a);
    CHECK(gen_is(&f.sync, ga, G_SYNCED));
    CHECK_EQ(append_id(f.st, &q, 1, 2, &b), 0);
    wr_store_flush(f.st);
    wr_store_ack(f.st, q, a);
    memio_set_capacity(f.m, (int64_t)memio_used(f.m) + 100);
    uint64_t gc = wr_store_gen(f.st);
    CHECK_EQ(append_id(f.st, &q, 1, 29, &c), 0); /* 5 KiB or more: does not fit */
    wr_store_flush(f.st);
    CHECK(gen_is(&f.sync, gc, G_FAILED));
    CHECK(wr_store_failed(f.st) != 0);
    CHECK(append_id(f.st, &q, 1, 4, &d) < 0);
    /* Still full: recovery refuses, by the free-space check or the probe. */
    CHECK(wr_store_recover_io(f.st, 1 << 20) != 0);
    CHECK(wr_store_recover_io(f.st, 0) != 0);
    CHECK(wr_store_failed(f.st) != 0);
    memio_set_capacity(f.m, -1);
    CHECK_EQ(wr_store_recover_io(f.st, 1 << 20), 0);
    CHECK_EQ(wr_store_failed(f.st), 0);
    wr_store_release(f.st, c); /* the broker drops what was nacked */
    uint64_t ge = put_flush(&f, &q, 1, 5, &e);
    CHECK(ge > gc);
    CHECK(gen_is(&f.sync, ge, G_SYNCED));
    CHECK_EQ(f.sync.bad_order, 0);
    CHECK_EQ(read_id(f.st, b), 2);
    CHECK_EQ(read_id(f.st, e), 5);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    wr_loc_t got[8];
    size_t n = rec_queue_msgs(&f.rec, q, got, NULL, 8);
    /* b and e, and c only if its torn record were whole (it is not). */
    CHECK_EQ(n, 2);
    CHECK(got[0].seg == b.seg && got[0].off == b.off);
    CHECK(got[1].seg == e.seg && got[1].off == e.off);
    CHECK_EQ(read_id(f.st, got[1]), 5);

    /* The full disk hits the ack file: the acks are kept, not lost.  (x
     * and y share a segment, which y keeps alive.) */
    wr_loc_t x, y;
    CHECK_EQ(append_id(f.st, &q, 1, 6, &x), 0);
    CHECK_EQ(append_id(f.st, &q, 1, 7, &y), 0);
    wr_store_flush(f.st);
    CHECK(x.seg == y.seg);
    wr_store_ack(f.st, q, got[0]);
    wr_store_ack(f.st, q, x);
    memio_fail_pwrite(f.m, 1, -ENOSPC);
    wr_store_flush(f.st);
    CHECK(wr_store_failed(f.st) != 0);
    CHECK_EQ(wr_store_recover_io(f.st, 0), 0);
    wr_store_flush(f.st);
    fx_close(&f, 1);
    CHECK_EQ(fx_open(&f), 0);
    n = rec_queue_msgs(&f.rec, q, got, NULL, 8);
    CHECK_EQ(n, 2);
    CHECK(got[0].off == e.off && got[0].seg == e.seg);
    CHECK(got[1].off == y.off && got[1].seg == y.seg);
    fx_free(&f);
}

/* A failed fsync is sticky: that generation is reported failed and never
 * synced, even though a later sync of the same files succeeds. */
static void test_store_eio_sticky(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t a, b, c;
    uint64_t ga = put_flush(&f, &q, 1, 1, &a);
    CHECK(gen_is(&f.sync, ga, G_SYNCED));
    memio_fail_fsync(f.m, 1, -EIO);
    uint64_t gb = put_flush(&f, &q, 1, 2, &b);
    CHECK(gen_is(&f.sync, gb, G_FAILED));
    CHECK(wr_store_failed(f.st) != 0);
    CHECK(wr_store_synced_gen(f.st) < gb);
    /* Flushing again does not make it synced. */
    wr_store_flush(f.st);
    CHECK(gen_is(&f.sync, gb, G_FAILED));
    CHECK(append_id(f.st, &q, 1, 3, &c) < 0);
    CHECK_EQ(wr_store_recover_io(f.st, 0), 0);
    wr_store_release(f.st, b);
    uint64_t gc = put_flush(&f, &q, 1, 3, &c);
    CHECK(gc > gb);
    CHECK(gen_is(&f.sync, gc, G_SYNCED));
    CHECK(gen_is(&f.sync, gb, G_FAILED));
    CHECK_EQ(f.sync.bad_order, 0);
    /* A failed sync of the metadata is the same. */
    memio_fail_fsync(f.m, 1, -EIO);
    uint64_t gd = wr_store_gen(f.st);
    uint32_t q2 = wr_store_queue_add(f.st, WR_BYTES_LIT("q2"), 1, (wr_bytes_t){NULL, 0});
    wr_store_flush(f.st);
    CHECK(gen_is(&f.sync, gd, G_FAILED));
    CHECK_EQ(wr_store_recover_io(f.st, 0), 0);
    wr_loc_t d;
    uint64_t ge = put_flush(&f, &q2, 1, 4, &d);
    CHECK(gen_is(&f.sync, ge, G_SYNCED));
    fx_crash(&f, 11, MEMIO_CRASH_DROP);
    CHECK_EQ(fx_open(&f), 0);
    wr_loc_t got[8];
    size_t n = rec_queue_msgs(&f.rec, q, got, NULL, 8);
    CHECK(n >= 2);
    CHECK(got[0].off == a.off && got[0].seg == a.seg);
    CHECK(got[n - 1].off == c.off && got[n - 1].seg == c.seg);
    CHECK_EQ(rec_queue_msgs(&f.rec, q2, got, NULL, 8), 1);
    CHECK_EQ(read_id(f.st, got[0]), 4);
    fx_free(&f);
}

/* A stale ack file, left by a segment of the same number whose deletion
 * or creation was lost in a crash, must not ack the new segment's
 * messages. */
static void test_store_stale_ack_file(void)
{
    fx_t f;
    fx_init(&f);
    memio_mkdir_durable(f.m, MDIR);
    /* An ACKS record for (queue 1, offset 0) in segment 1's ack file. */
    uint8_t rec[9 + 4 + 8];
    wr_set_u32(rec, 12);
    rec[8] = 2;
    wr_set_u32(rec + 9, 1);
    wr_set_u32(rec + 13, 1);
    wr_set_u32(rec + 17, 0);
    wr_set_u32(rec + 4, wr_crc32c(0, rec + 8, 13));
    CHECK_EQ(memio_write_durable(f.m, MDIR "/00000001.ack", rec, sizeof rec), 0);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    CHECK_EQ(q, 1);
    wr_loc_t a;
    uint64_t g = put_flush(&f, &q, 1, 1, &a);
    CHECK(gen_is(&f.sync, g, G_SYNCED));
    CHECK(a.seg == 1 && a.off == 0);
    fx_crash(&f, 1, MEMIO_CRASH_KEEP);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.nm, 1);
    fx_free(&f);
}

/* A fresh store: what the first sync confirms survives a crash that
 * loses every unsynced directory entry (meta.log's and msgs/'s included). */
static void test_store_fresh_dir_durable(void)
{
    fx_t f;
    fx_init(&f);
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t a;
    uint64_t g = put_flush(&f, &q, 1, 1, &a);
    CHECK(gen_is(&f.sync, g, G_SYNCED));
    fx_crash(&f, 1, MEMIO_CRASH_DROP);
    CHECK_EQ(fx_open(&f), 0);
    CHECK_EQ(f.rec.queues.n, 1);
    CHECK_EQ(f.rec.nm, 1);
    CHECK_EQ(read_id(f.st, f.rec.msgs[0].loc), 1);
    fx_free(&f);
}

/* The same when the store creates its data directory itself. */
static void test_store_created_dir_durable(void)
{
    memio_t *m = memio_new();
    memio_mkdir_durable(m, "/var");
    rec_t rec;
    memset(&rec, 0, sizeof rec);
    synctrack_t sync;
    memset(&sync, 0, sizeof sync);
    wr_store_recovery_t r = {&rec, on_exchange, on_queue, on_binding, on_message};
    wr_store_t *st;
    char err[256];
    CHECK_EQ(
        wr_store_open(&st, "/var/warren", memio_io(m), NULL, &r, on_synced, &sync, err, sizeof err),
        0);
    uint32_t q = wr_store_queue_add(st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t a;
    uint64_t g = wr_store_gen(st);
    CHECK_EQ(append_id(st, &q, 1, 1, &a), 0);
    wr_store_flush(st);
    CHECK(gen_is(&sync, g, G_SYNCED));
    memio_crash(m, 1, MEMIO_CRASH_DROP);
    wr_store_close(st, 0);
    memio_restart(m);
    CHECK_EQ(wr_store_open(&st, "/var/warren", memio_io(m), NULL, &r, NULL, NULL, err, sizeof err),
             0);
    CHECK_EQ(rec.queues.n, 1);
    CHECK_EQ(rec.nm, 1);
    wr_store_close(st, 0);
    rec_free(&rec);
    sync_reset(&sync);
    memio_free(m);
}

/* ---- the worker-thread sync path ---- */

static void *release_later(void *arg)
{
    usleep(50 * 1000);
    memio_hold_fsync(arg, 0);
    return NULL;
}

static void run_until_reported(fx_t *f, uint64_t g)
{
    for (int i = 0; i < 10000 && f->sync.reported < g; i++)
        uv_run(f->loop, UV_RUN_ONCE);
}

/* With a loop, fdatasync runs on libuv's thread pool.  A write failure
 * while a sync is in flight must not be followed by a success report for
 * a generation already reported failed; metadata compaction must not
 * close meta.log under the worker; closing a failed store must wait for
 * the sync in flight. */
static void test_store_async(void)
{
    fx_t f;
    fx_init(&f);
    uv_loop_t loop;
    uv_loop_init(&loop);
    f.loop = &loop;
    CHECK_EQ(fx_open(&f), 0);
    uint32_t q = wr_store_queue_add(f.st, WR_BYTES_LIT("q"), 1, (wr_bytes_t){NULL, 0});
    wr_loc_t a, b, c;
    uint64_t ga = put_flush(&f, &q, 1, 1, &a);
    run_until_reported(&f, ga);
    CHECK(gen_is(&f.sync, ga, G_SYNCED));

    /* Hold a sync in flight, then fail a write. */
    memio_hold_fsync(f.m, 1);
    uint64_t gb = put_flush(&f, &q, 1, 2, &b);
    CHECK(gb > ga);
    CHECK_EQ(append_id(f.st, &q, 1, 3, &c), 0);
    memio_fail_pwrite(f.m, 1, -ENOSPC);
    wr_store_flush(f.st);
    CHECK(wr_store_failed(f.st) != 0);
    uint64_t failed_upto = f.sync.reported;
    CHECK(failed_upto >= gb);
    /* No recovery while the sync runs: it would replace meta.log's handle
     * under the worker.  (The helper thread releases the sync in case it
     * blocks instead.) */
    pthread_t th;
    pthread_create(&th, NULL, release_later, f.m);
    CHECK_EQ(wr_store_recover_io(f.st, 0), -EBUSY);
    pthread_join(th, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(f.sync.bad_order, 0);
    CHECK(!gen_is(&f.sync, gb, G_SYNCED));
    /* With the sync done, recovery goes ahead. */
    CHECK_EQ(wr_store_recover_io(f.st, 0), 0);
    wr_store_release(f.st, b);
    wr_store_release(f.st, c);
    wr_loc_t d;
    uint64_t gd = put_flush(&f, &q, 1, 4, &d);
    run_until_reported(&f, gd);
    CHECK(gen_is(&f.sync, gd, G_SYNCED));

    /* Compaction while meta.log is being synced: hold a sync of meta.log
     * on the worker, then pile up enough records to compact.  (A helper
     * thread lets the syncs go, so that a store that compacts anyway
     * does not deadlock the test on its own inline fsync.) */
    memio_hold_fsync(f.m, 1);
    wr_store_exchange_add(f.st, WR_BYTES_LIT("c"), 1, 1, (wr_bytes_t){NULL, 0});
    wr_store_flush(f.st); /* meta.log written, its sync held */
    for (int i = 0; i < 1100; i++) {
        wr_store_exchange_add(f.st, WR_BYTES_LIT("c"), 1, 1, (wr_bytes_t){NULL, 0});
        wr_store_exchange_delete(f.st, WR_BYTES_LIT("c"));
    }
    pthread_create(&th, NULL, release_later, f.m);
    wr_store_flush(f.st); /* due for compaction */
    pthread_join(th, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(wr_store_failed(f.st), 0);
    CHECK_EQ(f.sync.failures, 1);
    CHECK_EQ(f.sync.bad_order, 0);
    wr_store_flush(f.st);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(wr_store_failed(f.st), 0);
    CHECK_EQ(f.sync.failures, 1);
    CHECK(memio_size(f.m, SDIR "/meta.log") < 4096);

    /* Close a failed store while its sync is still held on the worker. */
    memio_hold_fsync(f.m, 1);
    wr_loc_t e;
    put_flush(&f, &q, 1, 5, &e);
    CHECK_EQ(append_id(f.st, &q, 1, 6, &e), 0);
    memio_fail_pwrite(f.m, 1, -ENOSPC);
    wr_store_flush(f.st);
    CHECK(wr_store_failed(f.st) != 0);
    pthread_create(&th, NULL, release_later, f.m);
    fx_close(&f, 1);
    pthread_join(th, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(f.sync.bad_order, 0);

    f.loop = NULL;
    CHECK_EQ(fx_open(&f), 0);
    wr_loc_t got[8];
    size_t n = rec_queue_msgs(&f.rec, q, got, NULL, 8);
    CHECK(n >= 2);
    CHECK(got[0].off == a.off && got[0].seg == a.seg);
    fx_free(&f);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* ---- the crash test ---- */

enum { E_LIVE, E_ACKED, E_RELEASED };
enum { D_NO, D_YES };

typedef struct ent {
    uint64_t id;
    uint8_t state, deliv, seen;
    uint64_t ack_gen;
    uint64_t deliv_gen;
} ent_t;

typedef struct mq {
    int used;         /* the id was handed out */
    int exists;       /* declared and not deleted, as the broker sees it */
    int ever_durable; /* its declaration was durable at some point */
    int decl_durable;
    uint64_t decl_gen;
    int deleted;
    uint64_t del_gen;
    wr_buf_t rec; /* its record, as recovery reports it */
    ent_t *e;
    size_t n, cap;
} mq_t;

typedef struct mmsg {
    wr_loc_t loc;
    uint64_t gen;
    int durable;
} mmsg_t;

#define NEX   6
#define NBIND 10

typedef struct obj {
    int present;
    wr_buf_t cur;
    int stable; /* every change to it is known durable */
    uint64_t last_gen;
    blist_t hist; /* every value it ever had */
} obj_t;

typedef struct model {
    mq_t *q;
    size_t nq;
    mmsg_t *msg;
    size_t nmsg;
    obj_t ex[NEX];
    obj_t bind[NBIND];
    uint64_t next_msg;
    unsigned next_qname;
} model_t;

typedef struct cstats {
    unsigned rounds, crashes_mid_op, crashes_end, clean_closes, recovery_crashes, faults;
    unsigned failures_seen, verified_msgs, ghosts, corrupt_skipped;
} cstats_t;

/* WARREN_STORE_TRACE=1 prints the crash test's operations, to debug a
 * failing round. */
#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace)                                                                                 \
            printf("    " __VA_ARGS__);                                                            \
    } while (0)

static mq_t *mq_get(model_t *md, uint32_t id)
{
    if (id >= md->nq) {
        size_t nn = md->nq ? md->nq : 16;
        while (nn <= id)
            nn *= 2;
        md->q = wr_xrealloc(md->q, nn * sizeof *md->q);
        memset(md->q + md->nq, 0, (nn - md->nq) * sizeof *md->q);
        md->nq = nn;
    }
    return &md->q[id];
}

static void mq_push(mq_t *q, ent_t e)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->e = wr_xrealloc(q->e, q->cap * sizeof *q->e);
    }
    q->e[q->n++] = e;
}

static mmsg_t *msg_get(model_t *md, uint64_t id)
{
    if (id >= md->nmsg) {
        size_t nn = md->nmsg ? md->nmsg : 256;
        while (nn <= id)
            nn *= 2;
        md->msg = wr_xrealloc(md->msg, nn * sizeof *md->msg);
        memset(md->msg + md->nmsg, 0, (nn - md->nmsg) * sizeof *md->msg);
        md->nmsg = nn;
    }
    return &md->msg[id];
}

static void model_free(model_t *md)
{
    for (size_t i = 0; i < md->nq; i++) {
        wr_buf_free(&md->q[i].rec);
        free(md->q[i].e);
    }
    free(md->q);
    free(md->msg);
    for (int i = 0; i < NEX; i++) {
        wr_buf_free(&md->ex[i].cur);
        blist_free(&md->ex[i].hist);
    }
    for (int i = 0; i < NBIND; i++) {
        wr_buf_free(&md->bind[i].cur);
        blist_free(&md->bind[i].hist);
    }
}

static void ex_name(int i, char *out)
{
    snprintf(out, 8, "x%d", i);
}

static void bind_body(int i, wr_buf_t *b)
{
    char src[8], dst[8], key[8];
    snprintf(src, sizeof src, "x%d", i % 3);
    if (i % 2)
        snprintf(dst, sizeof dst, "x%d", (i + 1) % NEX);
    else
        snprintf(dst, sizeof dst, "q-%d", i);
    snprintf(key, sizeof key, "k%d", i);
    enc_bind(b, wr_bytes_of(src), (uint8_t)(i % 2), wr_bytes_of(dst), wr_bytes_of(key),
             i % 3 ? WR_BYTES_LIT("args") : (wr_bytes_t){NULL, 0});
}

/* Everything the crash test needs while a store instance runs. */
typedef struct crun {
    fx_t *f;
    model_t *md;
    cstats_t *cs;
    uint64_t rs;
    /* The synced reports of the instance that crashed or closed, which is
     * what verify and rebuild judge by. */
    synctrack_t prev;
} crun_t;

static int ok_gen(crun_t *c, uint64_t g)
{
    return gen_is(&c->prev, g, G_SYNCED);
}

static int msg_confirmed(crun_t *c, uint64_t id)
{
    mmsg_t *m = &c->md->msg[id];
    return m->durable || ok_gen(c, m->gen);
}

/* After a reported failure, the broker drops from its queues the
 * messages that were nacked (their generation failed). */
static void drop_failed(crun_t *c)
{
    if (c->f->sync.failures == 0 || memio_is_down(c->f->m))
        return;
    for (size_t i = 0; i < c->md->nq; i++) {
        mq_t *q = &c->md->q[i];
        if (!q->exists)
            continue;
        for (size_t k = 0; k < q->n; k++) {
            ent_t *e = &q->e[k];
            mmsg_t *m = &c->md->msg[e->id];
            if (e->state == E_LIVE && !m->durable && gen_is(&c->f->sync, m->gen, G_FAILED)) {
                wr_store_release(c->f->st, m->loc);
                e->state = E_RELEASED;
            }
        }
    }
}

/* Picks a random existing queue, or 0. */
static uint32_t pick_queue(crun_t *c)
{
    uint32_t ids[64];
    int n = 0;
    for (size_t i = 0; i < c->md->nq && n < 64; i++)
        if (c->md->q[i].exists)
            ids[n++] = (uint32_t)i;
    return n ? ids[rnd(&c->rs) % (uint64_t)n] : 0;
}

static int count_queues(crun_t *c)
{
    int n = 0;
    for (size_t i = 0; i < c->md->nq; i++)
        n += c->md->q[i].exists;
    return n;
}

/* A random live entry of a queue (older ones more likely), or NULL. */
static ent_t *pick_live(crun_t *c, mq_t *q)
{
    size_t live[512], n = 0;
    for (size_t k = 0; k < q->n && n < 512; k++)
        if (q->e[k].state == E_LIVE)
            live[n++] = k;
    if (n == 0)
        return NULL;
    size_t i = (size_t)(rnd(&c->rs) % n);
    if (rnd(&c->rs) % 2)
        i = i / 4;
    return &q->e[live[i]];
}

static size_t live_count(crun_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->md->nq; i++)
        if (c->md->q[i].exists)
            for (size_t k = 0; k < c->md->q[i].n; k++)
                n += c->md->q[i].e[k].state == E_LIVE;
    return n;
}

static void op_declare(crun_t *c)
{
    char name[32], args[32];
    unsigned qn = c->md->next_qname++;
    snprintf(name, sizeof name, "q-%u", qn);
    int an = snprintf(args, sizeof args, "args-%u", qn * 7);
    uint8_t flags = (uint8_t)(1 | (rnd(&c->rs) % 2 ? WR_STORE_QF_AUTO_DELETE : 0));
    wr_bytes_t a = qn % 3 ? (wr_bytes_t){(const uint8_t *)args, (size_t)an} : (wr_bytes_t){0};
    uint64_t g = wr_store_gen(c->f->st);
    uint32_t id = wr_store_queue_add(c->f->st, wr_bytes_of(name), flags, a);
    mq_t *q = mq_get(c->md, id);
    if (q->used) {
        /* A reused id is only harmless if the old queue never existed on
         * disk; the check on recovered messages catches the rest. */
        if (q->ever_durable) {
            printf("  queue id %u handed out again\n", id);
            wr_test_failed_flag = 1;
        }
        free(q->e);
        wr_buf_free(&q->rec);
        memset(q, 0, sizeof *q);
    }
    q->used = 1;
    q->exists = 1;
    q->decl_gen = g;
    wr_buf_init(&q->rec);
    enc_queue(&q->rec, id, wr_bytes_of(name), flags, a);
    TRACE("declare queue %u gen %" PRIu64 "\n", id, g);
}

static void op_delete_queue(crun_t *c)
{
    uint32_t id = pick_queue(c);
    if (id == 0)
        return;
    mq_t *q = &c->md->q[id];
    q->del_gen = wr_store_gen(c->f->st);
    wr_store_queue_delete(c->f->st, id);
    for (size_t k = 0; k < q->n; k++) {
        if (q->e[k].state == E_LIVE) {
            wr_store_release(c->f->st, c->md->msg[q->e[k].id].loc);
            q->e[k].state = E_RELEASED;
        }
    }
    q->exists = 0;
    q->deleted = 1;
    TRACE("delete queue %u gen %" PRIu64 "\n", id, q->del_gen);
}

static void op_append(crun_t *c)
{
    uint32_t qids[3];
    uint8_t nq = 0;
    int want = 1 + (int)(rnd(&c->rs) % 3);
    for (int t = 0; t < 6 && nq < want; t++) {
        uint32_t id = pick_queue(c);
        int dup = id == 0;
        for (uint8_t k = 0; k < nq; k++)
            dup |= qids[k] == id;
        if (!dup)
            qids[nq++] = id;
    }
    if (nq == 0)
        return;
    uint64_t id = c->md->next_msg++;
    wr_loc_t loc;
    uint64_t g = wr_store_gen(c->f->st);
    if (append_id(c->f->st, qids, nq, id, &loc) != 0)
        return; /* failed store: refused, not enqueued */
    mmsg_t *m = msg_get(c->md, id);
    m->loc = loc;
    m->gen = g;
    m->durable = 0;
    for (uint8_t k = 0; k < nq; k++)
        mq_push(&c->md->q[qids[k]], (ent_t){id, E_LIVE, D_NO, 0, 0, 0});
    TRACE("append %" PRIu64 " at %u:%u gen %" PRIu64 " to %u queues (first %u)\n", id, loc.seg,
          loc.off, g, nq, qids[0]);
}

static void op_ack(crun_t *c, int deliver_only)
{
    uint32_t id = pick_queue(c);
    if (id == 0)
        return;
    ent_t *e = pick_live(c, &c->md->q[id]);
    if (e == NULL)
        return;
    wr_loc_t loc = c->md->msg[e->id].loc;
    if (deliver_only) {
        wr_store_delivered(c->f->st, id, loc);
        e->deliv = D_YES;
        e->deliv_gen = wr_store_gen(c->f->st);
    } else {
        e->ack_gen = wr_store_gen(c->f->st);
        wr_store_ack(c->f->st, id, loc);
        e->state = E_ACKED;
    }
    TRACE("%s %" PRIu64 " in queue %u gen %" PRIu64 "\n", deliver_only ? "deliver" : "ack", e->id,
          id, wr_store_gen(c->f->st));
}

static void op_read(crun_t *c)
{
    uint32_t id = pick_queue(c);
    if (id == 0)
        return;
    ent_t *e = pick_live(c, &c->md->q[id]);
    if (e == NULL)
        return;
    uint64_t got = read_id(c->f->st, c->md->msg[e->id].loc);
    if (got != e->id && !memio_is_down(c->f->m)) {
        printf("  live message %" PRIu64 " reads back as %" PRIu64 "\n", e->id, got);
        wr_test_failed_flag = 1;
    }
}

static void op_exchange(crun_t *c)
{
    int i = (int)(rnd(&c->rs) % NEX);
    obj_t *o = &c->md->ex[i];
    char name[8];
    ex_name(i, name);
    o->last_gen = wr_store_gen(c->f->st);
    o->stable = 0;
    if (rnd(&c->rs) % 3 == 0) {
        wr_store_exchange_delete(c->f->st, wr_bytes_of(name));
        o->present = 0;
        return;
    }
    uint8_t type = (uint8_t)(rnd(&c->rs) % 4), flags = (uint8_t)(1 + rnd(&c->rs) % 4);
    wr_bytes_t args = rnd(&c->rs) % 2 ? WR_BYTES_LIT("a=1") : (wr_bytes_t){NULL, 0};
    wr_store_exchange_add(c->f->st, wr_bytes_of(name), type, flags, args);
    enc_exch(&o->cur, wr_bytes_of(name), type, flags, args);
    o->present = 1;
    if (blist_find(&o->hist, B(&o->cur)) < 0)
        blist_add(&o->hist, B(&o->cur));
}

static void op_bind(crun_t *c)
{
    int i = (int)(rnd(&c->rs) % NBIND);
    obj_t *o = &c->md->bind[i];
    bind_body(i, &o->cur);
    if (o->hist.n == 0)
        blist_add(&o->hist, B(&o->cur));
    /* Decode our own encoding back into the arguments of wr_store_bind. */
    const uint8_t *p = o->cur.p;
    wr_bytes_t src = {p + 1, p[0]};
    p += 1 + p[0];
    uint8_t kind = *p++;
    wr_bytes_t dst = {p + 1, p[0]};
    p += 1 + p[0];
    wr_bytes_t key = {p + 1, p[0]};
    p += 1 + p[0];
    wr_bytes_t args = {p + 4, wr_get_u32(p)};
    int add = !o->present;
    wr_store_bind(c->f->st, add, src, kind, dst, key, args);
    o->present = add;
    o->last_gen = wr_store_gen(c->f->st);
    o->stable = 0;
}

/* Arms a disk fault for this round. */
static void arm_fault(crun_t *c)
{
    c->cs->faults++;
    TRACE("fault armed\n");
    switch (rnd(&c->rs) % 3) {
    case 0:
        memio_set_capacity(c->f->m, (int64_t)(memio_used(c->f->m) + rnd(&c->rs) % 65536));
        break;
    case 1:
        memio_fail_fsync(c->f->m, 1 + (unsigned)(rnd(&c->rs) % 6), -EIO);
        break;
    default:
        memio_fail_pwrite(c->f->m, 1 + (unsigned)(rnd(&c->rs) % 10), -EIO);
        break;
    }
}

static void disarm_faults(crun_t *c)
{
    memio_set_capacity(c->f->m, -1);
    memio_fail_fsync(c->f->m, 0, 0);
    memio_fail_pwrite(c->f->m, 0, 0);
}

#define FAILV(...)                                                                                 \
    do {                                                                                           \
        printf("  " __VA_ARGS__);                                                                  \
        printf("\n");                                                                              \
        wr_test_failed_flag = 1;                                                                   \
        return;                                                                                    \
    } while (0)

/* Checks the recovered state against the model.  clean: the previous
 * instance was closed cleanly (everything it was told is durable);
 * redeliv: 2 = marks must be exact, 1 = all must be set, 0 = unknown. */
static void verify(crun_t *c, int clean, int redeliv)
{
    model_t *md = c->md;
    rec_t *r = &c->f->rec;
    wr_store_t *st = c->f->st;
    /* Queues. */
    for (size_t i = 0; i < r->queues.n; i++) {
        uint32_t id = rec_qid(r, i);
        if (id >= md->nq || !md->q[id].used)
            FAILV("unknown queue %u recovered", id);
        mq_t *q = &md->q[id];
        if (!bytes_eq(B(&r->queues.v[i]), B(&q->rec)))
            FAILV("queue %u recovered with another record", id);
        if (q->deleted && (clean || ok_gen(c, q->del_gen)))
            FAILV("queue %u deleted (durably) came back", id);
        if (!q->exists && !q->deleted)
            FAILV("queue %u, gone before, came back", id);
    }
    for (size_t id = 0; id < md->nq; id++) {
        mq_t *q = &md->q[id];
        if (!q->used)
            continue;
        if (q->decl_durable || ok_gen(c, q->decl_gen))
            q->ever_durable = 1;
        if (!q->exists)
            continue;
        int must = clean || q->decl_durable || ok_gen(c, q->decl_gen);
        for (size_t k = 0; k < q->n && !must; k++)
            must = msg_confirmed(c, q->e[k].id);
        if (must && !rec_has_queue(r, (uint32_t)id))
            FAILV("queue %zu (declared durably or with confirmed messages) lost", id);
        for (size_t k = 0; k < q->n; k++)
            q->e[k].seen = 0;
    }
    /* Messages. */
    size_t *last = wr_xcalloc(md->nq, sizeof *last); /* index + 1 of the last seen */
    for (size_t i = 0; i < r->nm; i++) {
        rmsg_t *rm = &r->msgs[i];
        if (!rec_has_queue(r, rm->qid)) {
            free(last);
            FAILV("message for unrecovered queue %u", rm->qid);
        }
        mq_t *q = &md->q[rm->qid];
        uint64_t id = read_id(st, rm->loc);
        if (id == 0) {
            free(last);
            FAILV("recovered message %u:%u in queue %u does not read back intact", rm->loc.seg,
                  rm->loc.off, rm->qid);
        }
        gmsg_t gm;
        gmsg_init(&gm);
        gmsg_make(&gm, id);
        size_t body_n = gm.body.len;
        gmsg_free(&gm);
        if (rm->body_size != body_n) {
            free(last);
            FAILV("message %" PRIu64 " recovered with body size %u, not %zu", id, rm->body_size,
                  body_n);
        }
        mmsg_t *m = id < md->nmsg && id < md->next_msg ? &md->msg[id] : NULL;
        if (m == NULL || m->loc.seg != rm->loc.seg || m->loc.off != rm->loc.off) {
            free(last);
            FAILV("message %" PRIu64 " recovered at the wrong place", id);
        }
        size_t k = 0;
        while (k < q->n && q->e[k].id != id)
            k++;
        if (k == q->n) {
            free(last);
            FAILV("message %" PRIu64 " recovered in queue %u it was never in", id, rm->qid);
        }
        if (k + 1 <= last[rm->qid]) {
            free(last);
            FAILV("message %" PRIu64 " in queue %u out of order or twice", id, rm->qid);
        }
        last[rm->qid] = k + 1;
        ent_t *e = &q->e[k];
        if (e->state == E_ACKED && (clean || ok_gen(c, e->ack_gen))) {
            free(last);
            FAILV("message %" PRIu64 " acked (durably) in queue %u came back", id, rm->qid);
        }
        if (e->state != E_LIVE)
            c->cs->ghosts++;
        if (redeliv == 1 && !rm->redelivered) {
            free(last);
            FAILV("message %" PRIu64 " not marked redelivered after a crash", id);
        }
        if (redeliv == 2 && e->state == E_LIVE && rm->redelivered != (e->deliv == D_YES)) {
            free(last);
            FAILV("message %" PRIu64 " redelivered=%d after a clean close, marked %d", id,
                  rm->redelivered, e->deliv);
        }
        e->seen = 1;
        c->cs->verified_msgs++;
    }
    free(last);
    for (size_t id = 0; id < md->nq; id++) {
        mq_t *q = &md->q[id];
        if (!q->exists || !rec_has_queue(r, (uint32_t)id))
            continue;
        for (size_t k = 0; k < q->n; k++) {
            ent_t *e = &q->e[k];
            if (e->state == E_LIVE && !e->seen && (clean || msg_confirmed(c, e->id)))
                FAILV("confirmed message %" PRIu64 " lost from queue %zu", e->id, id);
        }
    }
    /* Exchanges and bindings. */
    for (int pass = 0; pass < 2; pass++) {
        blist_t *got = pass ? &r->binds : &r->exch;
        obj_t *objs = pass ? md->bind : md->ex;
        int nobj = pass ? NBIND : NEX;
        for (size_t i = 0; i < got->n; i++) {
            int found = 0;
            for (int k = 0; k < nobj && !found; k++) {
                obj_t *o = &objs[k];
                if (blist_find(&o->hist, B(&got->v[i])) < 0)
                    continue;
                found = 1;
                int stable = clean || o->stable || ok_gen(c, o->last_gen);
                if (stable && (!o->present || !bytes_eq(B(&o->cur), B(&got->v[i]))))
                    FAILV("%s %d recovered with a stale value", pass ? "binding" : "exchange", k);
            }
            if (!found)
                FAILV("unknown %s recovered", pass ? "binding" : "exchange");
        }
        for (int k = 0; k < nobj; k++) {
            obj_t *o = &objs[k];
            int stable = clean || o->stable || ok_gen(c, o->last_gen);
            if (stable && o->present && blist_find(got, B(&o->cur)) < 0)
                FAILV("%s %d lost", pass ? "binding" : "exchange", k);
        }
    }
}

/* After verify: the recovered state is the model's new truth (all of it
 * is on disk now). */
static void rebuild(crun_t *c)
{
    model_t *md = c->md;
    rec_t *r = &c->f->rec;
    for (size_t id = 0; id < md->nq; id++) {
        mq_t *q = &md->q[id];
        if (!q->used)
            continue;
        int back = rec_has_queue(r, (uint32_t)id);
        size_t w = 0;
        for (size_t k = 0; k < q->n; k++) {
            ent_t e = q->e[k];
            if (!back || !e.seen)
                continue;
            e.state = E_LIVE;
            e.seen = 0;
            md->msg[e.id].durable = 1;
            q->e[w++] = e;
        }
        q->n = w;
        q->exists = back;
        q->deleted = 0;
        q->decl_durable = back;
        /* Generations restart with each store instance: none of the old
         * stamps may be judged by the next instance's reports. */
        q->decl_gen = q->del_gen = 0;
        if (back)
            q->ever_durable = 1;
    }
    /* Delivered marks: the recovered flag is the truth from now on.  After
     * a clean close and recovery it is exact; after a crash it is 1 for
     * every message, and recovery writes a DELIVERED_UPTO record that keeps
     * it so over a later clean restart (a crash before that record is
     * written makes the next recovery a crash too).  A recovery cut short
     * after a clean close may have seen the clean-shutdown marker or not:
     * either way the flags say which. */
    for (size_t i = 0; i < r->nm; i++) {
        mq_t *q = &md->q[r->msgs[i].qid];
        uint64_t id = read_id(c->f->st, r->msgs[i].loc);
        for (size_t k = 0; k < q->n; k++)
            if (q->e[k].id == id)
                q->e[k].deliv = r->msgs[i].redelivered ? D_YES : D_NO;
    }
    for (size_t id = 0; id < md->nq; id++)
        for (size_t k = 0; k < md->q[id].n; k++)
            md->q[id].e[k].ack_gen = md->q[id].e[k].deliv_gen = 0;
    for (size_t id = 0; id < md->nmsg; id++)
        md->msg[id].gen = 0;
    for (int pass = 0; pass < 2; pass++) {
        blist_t *got = pass ? &r->binds : &r->exch;
        obj_t *objs = pass ? md->bind : md->ex;
        int nobj = pass ? NBIND : NEX;
        for (int k = 0; k < nobj; k++) {
            obj_t *o = &objs[k];
            o->present = 0;
            o->stable = 1;
            o->last_gen = 0;
            for (size_t i = 0; i < got->n; i++) {
                if (blist_find(&o->hist, B(&got->v[i])) >= 0) {
                    o->present = 1;
                    o->cur.len = 0;
                    wr_buf_put(&o->cur, got->v[i].p, got->v[i].len);
                }
            }
        }
    }
}

/* Opens the store after a crash or close; sometimes the power fails again
 * during recovery.  Returns 0 when open, with redeliv set for verify. */
static int crash_open(crun_t *c, int clean_before, int *redeliv)
{
    int interrupted = 0;
    sync_reset(&c->prev);
    c->prev = c->f->sync;
    memset(&c->f->sync, 0, sizeof c->f->sync);
    for (int attempt = 0;; attempt++) {
        if (attempt < 3 && rnd(&c->rs) % 8 == 0)
            memio_crash_after(c->f->m, 1 + (unsigned)(rnd(&c->rs) % 12), rnd(&c->rs),
                              (int)(rnd(&c->rs) % MEMIO_CRASH_NMODES));
        int rc = fx_open(c->f);
        if (!memio_is_down(c->f->m)) {
            memio_crash_after(c->f->m, 0, 0, 0);
            if (rc != 0) {
                printf("  recovery failed: %s\n", c->f->err);
                return rc;
            }
            break;
        }
        /* Power cut during recovery: die and start over. */
        TRACE("power cut during recovery\n");
        c->cs->recovery_crashes++;
        interrupted = 1;
        c->f->sync.ignore = 1;
        fx_close(c->f, 0);
        memio_restart(c->f->m);
    }
    *redeliv = clean_before && !interrupted ? 2 : !clean_before ? 1 : 0;
    return 0;
}

static void crash_round(crun_t *c, int *clean_before)
{
    fx_t *f = c->f;
    int redeliv;
    if (crash_open(c, *clean_before, &redeliv) != 0) {
        wr_test_failed_flag = 1;
        return;
    }
    verify(c, *clean_before, redeliv);
    if (wr_test_failed_flag)
        return;
    rebuild(c);
    wr_store_stats_t s;
    wr_store_get_stats(f->st, &s);
    c->cs->corrupt_skipped += (unsigned)s.corrupt_records;
    static const uint64_t segsz[] = {8192, 32768, 200000};
    wr_store_set_segment_size(f->st, segsz[rnd(&c->rs) % 3]);

    unsigned plan = (unsigned)(rnd(&c->rs) % 10);
    unsigned nops = 10 + (unsigned)(rnd(&c->rs) % 250);
    if (plan >= 2 && plan < 6)
        memio_crash_after(f->m, 1 + (unsigned)(rnd(&c->rs) % (nops / 2 + 1)), rnd(&c->rs),
                          (int)(rnd(&c->rs) % MEMIO_CRASH_NMODES));
    unsigned fault_at = rnd(&c->rs) % 4 == 0 ? (unsigned)(rnd(&c->rs) % nops) : ~0u;
    for (unsigned i = 0; i < nops && !memio_is_down(f->m) && !wr_test_failed_flag; i++) {
        if (i == fault_at)
            arm_fault(c);
        int failures = f->sync.failures;
        size_t live = live_count(c);
        unsigned x = (unsigned)(rnd(&c->rs) % 100);
        if (count_queues(c) < 2 || (x < 3 && count_queues(c) < 8))
            op_declare(c);
        else if (x < 5)
            op_delete_queue(c);
        else if (x < 45)
            op_append(c);
        else if (x < 60 + (live > 60 ? 20 : 0))
            op_ack(c, 0);
        else if (x < 68)
            op_ack(c, 1);
        else if (x < 75)
            op_read(c);
        else if (x < 80)
            op_exchange(c);
        else if (x < 85)
            op_bind(c);
        else {
            wr_store_flush(f->st);
            TRACE("flush: gen now %" PRIu64 ", reported %" PRIu64 "%s\n", wr_store_gen(f->st),
                  f->sync.reported, memio_is_down(f->m) ? " (power cut)" : "");
        }
        if (f->sync.failures != failures)
            drop_failed(c);
        if (wr_store_failed(f->st) && !memio_is_down(f->m) && rnd(&c->rs) % 4 == 0) {
            if (rnd(&c->rs) % 2)
                disarm_faults(c);
            wr_store_recover_io(f->st, 0);
        }
    }
    if (wr_test_failed_flag)
        return;
    c->cs->failures_seen += (unsigned)f->sync.failures;
    TRACE("end of round: plan %u, %s\n", plan, memio_is_down(f->m) ? "power cut" : "up");
    if (memio_is_down(f->m)) {
        c->cs->crashes_mid_op++;
        f->sync.ignore = 1;
        fx_close(f, 0);
        memio_restart(f->m);
        disarm_faults(c);
        *clean_before = 0;
    } else if (plan < 2) {
        /* A clean stop: the broker drops what was nacked, the disk works
         * again, everything is flushed and synced. */
        memio_crash_after(f->m, 0, 0, 0);
        disarm_faults(c);
        if (wr_store_failed(f->st) && wr_store_recover_io(f->st, 0) != 0) {
            printf("  store did not recover from a lifted fault\n");
            wr_test_failed_flag = 1;
            return;
        }
        drop_failed(c);
        wr_store_close(f->st, 1);
        f->st = NULL;
        if (f->sync.bad_order)
            FAILV("synced callback out of order");
        c->cs->clean_closes++;
        *clean_before = 1;
        return;
    } else {
        memio_crash_after(f->m, 0, 0, 0);
        c->cs->crashes_end++;
        fx_crash(f, rnd(&c->rs), (int)(rnd(&c->rs) % MEMIO_CRASH_NMODES));
        disarm_faults(c);
        *clean_before = 0;
    }
    if (f->sync.bad_order)
        FAILV("synced callback out of order");
}

static void test_store_crash(void)
{
    unsigned rounds = 500;
    const char *e = getenv("WARREN_STORE_CRASH_ROUNDS");
    if (e && atoi(e) > 0)
        rounds = (unsigned)atoi(e);
    uint64_t seed = 20240601;
    e = getenv("WARREN_STORE_SEED");
    if (e)
        seed = strtoull(e, NULL, 0);
    fx_t f;
    fx_init(&f);
    model_t md;
    memset(&md, 0, sizeof md);
    md.next_msg = 1;
    cstats_t cs;
    memset(&cs, 0, sizeof cs);
    crun_t c;
    memset(&c, 0, sizeof c);
    c.f = &f;
    c.md = &md;
    c.cs = &cs;
    int clean_before = 0;
    unsigned r;
    trace = getenv("WARREN_STORE_TRACE") != NULL;
    for (r = 0; r < rounds && !wr_test_failed_flag; r++) {
        c.rs = seed * 1000003u + r;
        TRACE("-- round %u\n", r);
        crash_round(&c, &clean_before);
        cs.rounds++;
    }
    if (wr_test_failed_flag) {
        printf("  crash test failed in round %u (seed %" PRIu64 ")\n", r - 1, seed);
    } else {
        /* A final recovery checks the last round too. */
        int redeliv;
        if (crash_open(&c, clean_before, &redeliv) == 0)
            verify(&c, clean_before, redeliv);
        else
            wr_test_failed_flag = 1;
    }
    printf("store crash test: %u rounds (seed %" PRIu64 "): %u power cuts inside operations, "
           "%u after them, %u inside recovery, %u clean closes; %u disk faults injected, %u "
           "failed generations; %u messages verified (%u unconfirmed or released ones came "
           "back), %u corrupt records skipped\n",
           cs.rounds, seed, cs.crashes_mid_op, cs.crashes_end, cs.recovery_crashes, cs.clean_closes,
           cs.faults, cs.failures_seen, cs.verified_msgs, cs.ghosts, cs.corrupt_skipped);
    model_free(&md);
    sync_reset(&c.prev);
    fx_free(&f);
}

/* ---- the seed corpus of tests/fuzz/fuzz_store.c ---- */

static void put_part(wr_buf_t *out, memio_t *m, const char *path, int drop)
{
    wr_buf_t b;
    wr_buf_init(&b);
    if (!drop)
        memio_read(m, path, &b);
    wr_buf_put_u32(out, (uint32_t)b.len);
    wr_buf_put(out, b.p, b.len);
    wr_buf_free(&b);
}

/* Serialises the store in f as one fuzz input (the format is described in
 * tests/fuzz/fuzz_store.c): meta.log and the first two segments with
 * their ack files; drop_seg leaves out the first segment but not its ack
 * file. */
static void snapshot(fx_t *f, wr_buf_t *out, int clean, int drop_seg)
{
    uint32_t segs[2] = {1, 2};
    int n = 0;
    char path[64];
    for (uint32_t no = 1; no < 250 && n < 2; no++) {
        snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".seg", no);
        if (memio_size(f->m, path) >= 0)
            segs[n++] = no;
    }
    if (n < 2)
        segs[1] = segs[0] + 1;
    out->len = 0;
    wr_buf_put_u8(out, (uint8_t)(clean ? 1 : 0));
    wr_buf_put_u8(out, (uint8_t)(segs[0] - 1));
    wr_buf_put_u8(out, (uint8_t)(segs[1] - segs[0] - 1));
    put_part(out, f->m, SDIR "/meta.log", 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".seg", segs[i]);
        put_part(out, f->m, path, drop_seg && i == 0);
        snprintf(path, sizeof path, MDIR "/%08" PRIu32 ".ack", segs[i]);
        put_part(out, f->m, path, 0);
    }
}

static void write_seed(const char *dir, const char *name, const wr_buf_t *b)
{
    if (dir == NULL)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) {
        perror(path);
        wr_test_failed_flag = 1;
        return;
    }
    fwrite(b->p, 1, b->len, fp);
    fclose(fp);
}

/* A short message, so that seeds stay small for the fuzzer. */
static int append_small(wr_store_t *st, const uint32_t *qids, uint8_t nq, uint64_t id,
                        wr_loc_t *loc)
{
    char body[32], rk[16];
    int nb = snprintf(body, sizeof body, "body of message %" PRIu64, id);
    int nr = snprintf(rk, sizeof rk, "rk.%" PRIu64, id);
    return wr_store_append(st, qids, nq, (uint8_t)(id & 1),
                           id % 2 ? WR_BYTES_LIT("ex") : (wr_bytes_t){0},
                           (wr_bytes_t){(const uint8_t *)rk, (size_t)nr},
                           id % 3 ? WR_BYTES_LIT("\x90\x00\x02") : (wr_bytes_t){0},
                           (wr_bytes_t){(const uint8_t *)body, (size_t)nb}, loc);
}

/* Builds real store files with small workloads, each left in a different
 * state, and, when WARREN_STORE_CORPUS_DIR is set, writes them as the
 * fuzz target's seeds. */
static void test_store_fuzz_seeds(void)
{
    static const char *names[] = {"seed-clean",     "seed-crash-torn",  "seed-two-segments",
                                  "seed-corrupt",   "seed-compacted",   "seed-orphan-ack",
                                  "seed-deletions", "seed-crash-garble"};
    const char *dir = getenv("WARREN_STORE_CORPUS_DIR");
    wr_buf_t out;
    wr_buf_init(&out);
    for (int kind = 0; kind < 8; kind++) {
        fx_t f;
        fx_init(&f);
        CHECK_EQ(fx_open(&f), 0);
        if (kind == 2)
            wr_store_set_segment_size(f.st, 300);
        wr_bytes_t none = {NULL, 0};
        wr_store_exchange_add(f.st, WR_BYTES_LIT("ex"), 1, 1, WR_BYTES_LIT("\x00\x00\x00\x00"));
        uint32_t q[3];
        for (int i = 0; i < 3; i++)
            q[i] = wr_store_queue_add(f.st, i ? WR_BYTES_LIT("q") : WR_BYTES_LIT("first"),
                                      (uint8_t)(1 + i), i == 1 ? WR_BYTES_LIT("xyz") : none);
        wr_store_bind(f.st, 1, WR_BYTES_LIT("ex"), 0, WR_BYTES_LIT("q"), WR_BYTES_LIT("#"), none);
        wr_store_bind(f.st, 1, WR_BYTES_LIT("ex"), 1, WR_BYTES_LIT("ex2"), WR_BYTES_LIT("a"), none);
        if (kind == 4)
            for (int i = 0; i < 1100; i++)
                wr_store_queue_delete(f.st, wr_store_queue_add(f.st, WR_BYTES_LIT("t"), 1, none));
        /* Small messages, some for one queue and some for all three. */
        static const uint64_t ids[12] = {3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36};
        wr_loc_t loc[12];
        for (int i = 0; i < 12; i++) {
            uint8_t nq = i % 2 ? 3 : 1;
            CHECK_EQ(append_small(f.st, nq == 3 ? q : q + i % 3, nq, ids[i], &loc[i]), 0);
            if (i % 4 == 3)
                wr_store_flush(f.st);
        }
        wr_store_flush(f.st);
        for (int i = 0; i < 12; i += 3)
            wr_store_ack(f.st, i % 2 ? q[1] : q[i % 3], loc[i]);
        wr_store_delivered(f.st, q[1], loc[1]);
        wr_store_delivered(f.st, q[2], loc[5]);
        wr_store_flush(f.st);
        if (kind == 6) {
            wr_store_queue_delete(f.st, q[2]);
            for (int i = 0; i < 12; i++)
                if (i % 2 || i % 3 == 2)
                    wr_store_release(f.st, loc[i]);
            wr_store_bind(f.st, 0, WR_BYTES_LIT("ex"), 0, WR_BYTES_LIT("q"), WR_BYTES_LIT("#"),
                          none);
            wr_store_exchange_delete(f.st, WR_BYTES_LIT("ex"));
            wr_store_flush(f.st);
        }
        int clean = kind == 0 || kind == 2 || kind == 4 || kind == 6;
        if (kind == 1 || kind == 7) {
            /* Cut the power inside a flush: at the ack write (torn) or at
             * the first fsync (unsynced records garbled). */
            for (int i = 12; i < 15; i++)
                append_small(f.st, q, 1, ids[i - 12] + 100, &loc[0]);
            wr_store_ack(f.st, q[1], loc[1]);
            memio_crash_after(f.m, kind == 1 ? 2 : 3, 99,
                              kind == 1 ? MEMIO_CRASH_TORN : MEMIO_CRASH_GARBLE);
            wr_store_flush(f.st);
            CHECK(memio_is_down(f.m));
            f.sync.ignore = 1;
            fx_close(&f, 0);
            memio_restart(f.m);
        } else {
            fx_close(&f, clean);
        }
        snapshot(&f, &out, clean, kind == 5);
        if (kind == 3) {
            /* Flip a byte inside the first segment's second record. */
            size_t meta = wr_get_u32(out.p + 3);
            size_t at = 3 + 4 + meta + 4 + (size_t)loc[1].off + 12;
            CHECK(at < out.len);
            out.p[at] ^= 0x5a;
        }
        CHECK(out.len > 20);
        /* Half the seeds ask the harness to fix CRCs, so that mutations of
         * them stay well-formed records (see fuzz_store.c). */
        if (kind % 2 == 0)
            out.p[0] |= 2;
        write_seed(dir, names[kind], &out);
        fx_free(&f);
    }
    wr_buf_free(&out);
}

WR_SUITE(store)
{
    quiet();
    RUN(test_store_roundtrip);
    RUN(test_store_acked_never_return);
    RUN(test_store_multi_queue_ack);
    RUN(test_store_metadata);
    RUN(test_store_queue_ids_unique);
    RUN(test_store_redelivered);
    RUN(test_store_segments_deleted);
    RUN(test_store_meta_compaction);
    RUN(test_store_synced_callback);
    RUN(test_store_enospc);
    RUN(test_store_eio_sticky);
    RUN(test_store_stale_ack_file);
    RUN(test_store_fresh_dir_durable);
    RUN(test_store_created_dir_durable);
    RUN(test_store_async);
    RUN(test_store_crash);
    RUN(test_store_fuzz_seeds);
    unquiet();
}
