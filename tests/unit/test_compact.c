/*
 * test_compact.c - segment compaction: a few long-lived messages no longer
 * pin mostly-dead segments.  Checks that the copies carry the message
 * byte-exact, that the entries are relocated, that the old segment is
 * deleted, and that recovery afterwards (clean or after a power cut at any
 * point of the compaction) finds every live message exactly once.
 */
#include <stdlib.h>

#include "core/log.h"
#include "memio.h"
#include "store/store.h"
#include "test.h"

typedef struct got {
    uint32_t qid[64];
    wr_loc_t loc[64];
    int redelivered[64];
    int n;
} got_t;

static void on_msg(void *ctx, uint32_t qid, wr_loc_t loc, uint64_t order, uint32_t size,
                   int redelivered)
{
    (void)order;
    (void)size;
    got_t *g = ctx;
    if (g->n < 64) {
        g->qid[g->n] = qid;
        g->loc[g->n] = loc;
        g->redelivered[g->n] = redelivered;
        g->n++;
    }
}

typedef struct relocs {
    uint32_t seg;
    wr_reloc_t tab[64];
    size_t n;
} relocs_t;

static void on_reloc(void *ctx, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    relocs_t *r = ctx;
    r->seg = seg;
    r->n = n < 64 ? n : 64;
    memcpy(r->tab, tab, r->n * sizeof *tab);
}

static wr_store_t *open_store(memio_t *m, got_t *g)
{
    wr_store_recovery_t rec = {g, NULL, NULL, NULL, on_msg};
    wr_store_t *st = NULL;
    char err[256];
    memset(g, 0, sizeof *g);
    if (wr_store_open(&st, "/data", memio_io(m), NULL, &rec, NULL, NULL, err, sizeof err) != 0)
        return NULL;
    wr_store_set_segment_size(st, 4096);
    return st;
}

/* One message kept in queue A, many in queue B acked: the first segment is
 * pinned by A's message until compaction moves it. */
static void fill(wr_store_t *st, uint32_t a, uint32_t b, wr_loc_t *keep)
{
    static const char body[300] = "payload";
    wr_store_append(st, &a, 1, 1, WR_BYTES_LIT("ex"), WR_BYTES_LIT("keep-me"),
                    WR_BYTES_LIT("\x80\x00\x0atext/plain"), WR_BYTES_LIT("the kept body"), keep);
    wr_store_delivered(st, a, *keep);
    wr_loc_t locs[100];
    for (int i = 0; i < 100; i++) {
        wr_store_append(st, &b, 1, 1, WR_BYTES_LIT(""), WR_BYTES_LIT("b"), WR_BYTES_LIT(""),
                        (wr_bytes_t){(const uint8_t *)body, sizeof body}, &locs[i]);
        if (i % 10 == 9)
            wr_store_flush(st);
    }
    for (int i = 0; i < 100; i++)
        wr_store_ack(st, b, locs[i]);
    wr_store_flush(st);
}

static void test_compact_moves_pinned_message(void)
{
    wr_log_set_level(WR_LOG_NONE);
    memio_t *m = memio_new();
    got_t g;
    wr_store_t *st = open_store(m, &g);
    CHECK(st != NULL);
    uint32_t a =
        wr_store_queue_add(st, WR_BYTES_LIT("A"), WR_STORE_QF_DURABLE, (wr_bytes_t){NULL, 0});
    uint32_t b =
        wr_store_queue_add(st, WR_BYTES_LIT("B"), WR_STORE_QF_DURABLE, (wr_bytes_t){NULL, 0});
    wr_loc_t keep;
    fill(st, a, b, &keep);
    int before = memio_count(m, "/data/msgs", ".seg");
    CHECK(before >= 2);
    relocs_t r = {0};
    CHECK_EQ(wr_store_compact(st, on_reloc, &r), 1);
    CHECK_EQ(r.seg, keep.seg);
    CHECK_EQ(r.n, 1);
    CHECK_EQ(r.tab[0].old_off, keep.off);
    wr_loc_t moved = r.tab[0].new_loc;
    CHECK(moved.seg > keep.seg);
    /* Nothing else needs it: a second call finds no victim. */
    CHECK_EQ(wr_store_compact(st, on_reloc, &r), 0);
    wr_buf_t scratch;
    wr_buf_init(&scratch);
    wr_store_msg_t sm;
    CHECK_EQ(wr_store_read(st, moved, &scratch, &sm), 0);
    CHECK(wr_bytes_eq_str(sm.body, "the kept body"));
    CHECK(wr_bytes_eq_str(sm.routing_key, "keep-me"));
    CHECK(wr_bytes_eq_str(sm.exchange, "ex"));
    CHECK(wr_store_read(st, keep, &scratch, &sm) != 0); /* the old segment is gone */
    wr_buf_free(&scratch);
    CHECK(memio_count(m, "/data/msgs", ".seg") < before);
    wr_store_close(st, 1);

    /* After a clean restart: the message once, at its new place, still
     * marked delivered. */
    st = open_store(m, &g);
    CHECK(st != NULL);
    CHECK_EQ(g.n, 1);
    CHECK_EQ(g.qid[0], a);
    CHECK_EQ(g.loc[0].seg, moved.seg);
    CHECK_EQ(g.loc[0].off, moved.off);
    CHECK_EQ(g.redelivered[0], 1);
    /* Acking the moved message frees everything. */
    wr_store_ack(st, a, g.loc[0]);
    wr_store_flush(st);
    wr_store_close(st, 1);
    st = open_store(m, &g);
    CHECK_EQ(g.n, 0);
    wr_store_close(st, 1);
    memio_free(m);
}

/* A power cut at every mutating step of a compaction: afterwards the kept
 * message is recovered exactly once (from the original or the copy). */
static void test_compact_power_cut_anywhere(void)
{
    wr_log_set_level(WR_LOG_NONE);
    for (unsigned nth = 1; nth <= 12; nth++) {
        for (int mode = 0; mode < 3; mode++) {
            memio_t *m = memio_new();
            got_t g;
            wr_store_t *st = open_store(m, &g);
            CHECK(st != NULL);
            uint32_t a = wr_store_queue_add(st, WR_BYTES_LIT("A"), WR_STORE_QF_DURABLE,
                                            (wr_bytes_t){NULL, 0});
            uint32_t b = wr_store_queue_add(st, WR_BYTES_LIT("B"), WR_STORE_QF_DURABLE,
                                            (wr_bytes_t){NULL, 0});
            wr_loc_t keep;
            fill(st, a, b, &keep);
            wr_store_close(st, 1); /* everything durable */
            st = open_store(m, &g);
            CHECK(st != NULL);
            CHECK_EQ(g.n, 1);
            memio_crash_after(m, nth, 1000 + nth, mode);
            relocs_t r = {0};
            wr_store_compact(st, on_reloc, &r);
            if (!memio_is_down(m))
                memio_crash(m, 2000 + nth, mode);
            wr_store_close(st, 0);
            memio_restart(m);
            st = open_store(m, &g);
            CHECK(st != NULL);
            if (g.n != 1)
                printf("  power cut at step %u (mode %d): %d copies recovered\n", nth, mode, g.n);
            CHECK_EQ(g.n, 1);
            CHECK_EQ(g.qid[0], a);
            wr_buf_t scratch;
            wr_buf_init(&scratch);
            wr_store_msg_t sm;
            CHECK_EQ(wr_store_read(st, g.loc[0], &scratch, &sm), 0);
            CHECK(wr_bytes_eq_str(sm.body, "the kept body"));
            wr_buf_free(&scratch);
            wr_store_close(st, 1);
            memio_free(m);
        }
    }
}

WR_SUITE(compact)
{
    RUN(test_compact_moves_pinned_message);
    RUN(test_compact_power_cut_anywhere);
}
