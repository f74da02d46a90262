/*
 * fuzz_store.c - libFuzzer target for the message store's recovery: the
 * input is a data directory's files, recovery must survive anything in
 * them, and what it recovers must behave.
 *
 * Input format (so that mutations keep the files apart):
 *
 *   u8  flags        bit 0: clean-shutdown exists
 *                    bit 1: fix the CRC of every record whose length fits
 *   u8  a            segment A is number a + 1
 *   u8  gap          segment B is number a + 2 + gap
 *   5 x (u32 length, bytes)   meta.log, A.seg, A.ack, B.seg, B.ack
 *
 * Lengths are big-endian and clamped to what is left; a part that is
 * missing or empty means no such file (meta.log is always created).  The
 * files go into memio (tests/unit/memio.c), durably, and the store is
 * opened on them with loop == NULL.  With bit 1 set, the harness walks
 * each file's records by their length fields and writes the right CRC32C
 * into each: libFuzzer could never forge a checksum, and without this
 * its mutations would only exercise the corrupt-record paths, not
 * well-formed records with strange contents.
 *
 * Then, beyond "no crash, no leak" (ASan/LSan/UBSan):
 * - every message recovery reports reads back (wr_store_read, in the
 *   callback and again after open) with the body size reported;
 * - a workload runs on the recovered store: half the messages acked, the
 *   others marked delivered, a queue declared and a message appended to
 *   it, a clean close; the second recovery must report exactly the first
 *   one's messages minus the acked ones plus the new one, with exact
 *   redelivered flags where they are known.
 * A violation aborts, so libFuzzer reports it as a crash.
 *
 * The seed corpus (tests/fuzz/corpus/store) is real store files from
 * small workloads, written by test_store_fuzz_seeds in
 * tests/unit/test_store.c when WARREN_STORE_CORPUS_DIR is set.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "core/log.h"
#include "memio.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SDIR "/d"
#define MDIR "/d/msgs"
#define MAXM 4096

typedef struct fmsg {
    uint32_t qid;
    wr_loc_t loc;
    uint32_t body_size;
    int redelivered;
} fmsg_t;

typedef struct fctx {
    fmsg_t m[MAXM];
    size_t n;
    int overflow;
    wr_buf_t scratch;
    uint32_t qids[64]; /* the first 64 recovered queues */
    size_t nq;
} fctx_t;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_store: %s\n", what);
    abort();
}

static void touch(wr_bytes_t b)
{
    /* Reading every byte of a view lets ASan check that it is in bounds. */
    volatile uint8_t x = 0;
    for (size_t i = 0; i < b.n; i++)
        x ^= b.p[i];
    (void)x;
}

static void on_exchange(void *ctx, wr_bytes_t name, uint8_t type, uint8_t flags, wr_bytes_t args)
{
    (void)ctx;
    (void)type;
    (void)flags;
    touch(name);
    touch(args);
}

static void on_queue(void *ctx, uint32_t id, wr_bytes_t name, uint8_t flags, wr_bytes_t args)
{
    fctx_t *c = ctx;
    (void)flags;
    touch(name);
    touch(args);
    if (c->nq < 64)
        c->qids[c->nq++] = id;
}

static void on_binding(void *ctx, wr_bytes_t src, uint8_t kind, wr_bytes_t dst, wr_bytes_t key,
                       wr_bytes_t args)
{
    (void)ctx;
    (void)kind;
    touch(src);
    touch(dst);
    touch(key);
    touch(args);
}

static void on_message(void *ctx, uint32_t qid, wr_loc_t loc, uint64_t order, uint32_t body_size,
                       int redelivered)
{
    (void)order;
    fctx_t *c = ctx;
    if (c->n == MAXM) {
        c->overflow = 1;
        return;
    }
    c->m[c->n++] = (fmsg_t){qid, loc, body_size, redelivered};
}

/* Splits off the next length-prefixed part. */
static wr_bytes_t part(const uint8_t **p, size_t *left)
{
    wr_bytes_t b = {NULL, 0};
    if (*left < 4) {
        *left = 0;
        return b;
    }
    size_t n = wr_get_u32(*p);
    *p += 4;
    *left -= 4;
    if (n > *left)
        n = *left;
    b.p = *p;
    b.n = n;
    *p += n;
    *left -= n;
    return b;
}

/* Writes the right CRC into every record of a file whose length fits. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 9) {
        uint32_t len = wr_get_u32(p + off);
        if (len == 0 || len > n - off - 9)
            break;
        wr_set_u32(p + off + 4, wr_crc32c(0, p + off + 8, (size_t)len + 1));
        off += 9 + (size_t)len;
    }
}

static void put(memio_t *m, const char *path, wr_bytes_t b, int fix)
{
    if (b.n == 0)
        return;
    uint8_t *copy = malloc(b.n);
    if (copy == NULL)
        die("out of memory");
    memcpy(copy, b.p, b.n);
    if (fix)
        fix_crcs(copy, b.n);
    if (memio_write_durable(m, path, copy, b.n) != 0)
        die("memio setup");
    free(copy);
}

static int open_store(memio_t *m, fctx_t *c, wr_store_t **st)
{
    char err[256];
    wr_store_recovery_t rec = {c, on_exchange, on_queue, on_binding, on_message};
    c->n = 0;
    c->nq = 0;
    c->overflow = 0;
    return wr_store_open(st, SDIR, memio_io(m), NULL, &rec, NULL, NULL, err, sizeof err);
}

/* Reads every recovered message back; the store vouched for them. */
static void read_all(wr_store_t *st, fctx_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        wr_store_msg_t msg;
        if (wr_store_read(st, c->m[i].loc, &c->scratch, &msg) != 0)
            die("a recovered message does not read back");
        if (msg.body.n != c->m[i].body_size)
            die("recovered body size differs from the record's");
        touch(msg.exchange);
        touch(msg.routing_key);
        touch(msg.props);
        touch(msg.body);
    }
}

static int same(const fmsg_t *a, const fmsg_t *b)
{
    return a->qid == b->qid && a->loc.seg == b->loc.seg && a->loc.off == b->loc.off;
}

static fctx_t c1, c2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wr_log_set_level(WR_LOG_NONE);
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    uint32_t a = (uint32_t)data[1] + 1, b = a + 1 + data[2];
    const uint8_t *p = data + 3;
    size_t left = size - 3;
    wr_bytes_t meta = part(&p, &left), seg_a = part(&p, &left), ack_a = part(&p, &left);
    wr_bytes_t seg_b = part(&p, &left), ack_b = part(&p, &left);

    memio_t *m = memio_new();
    int fix = (flags & 2) != 0;
    if (memio_mkdir_durable(m, SDIR) != 0 || memio_mkdir_durable(m, MDIR) != 0 ||
        memio_write_durable(m, SDIR "/meta.log", NULL, 0) != 0)
        die("memio setup");
    put(m, SDIR "/meta.log", meta, fix);
    if (flags & 1)
        put(m, SDIR "/clean-shutdown", (wr_bytes_t){(const uint8_t *)"", 1}, 0);
    char path[64];
    snprintf(path, sizeof path, MDIR "/%08u.seg", a);
    put(m, path, seg_a, fix);
    snprintf(path, sizeof path, MDIR "/%08u.ack", a);
    put(m, path, ack_a, fix);
    snprintf(path, sizeof path, MDIR "/%08u.seg", b);
    put(m, path, seg_b, fix);
    snprintf(path, sizeof path, MDIR "/%08u.ack", b);
    put(m, path, ack_b, fix);

    wr_buf_init(&c1.scratch);
    wr_buf_init(&c2.scratch);
    wr_store_t *st = NULL;
    if (open_store(m, &c1, &st) != 0)
        goto out;
    read_all(st, &c1);

    /* Duplicates (a record naming a queue twice) make the second recovery
     * a multiset question; compare only when there are none. */
    int exact = !c1.overflow;
    for (size_t i = 0; i < c1.n && exact; i++)
        for (size_t k = i + 1; k < c1.n && exact; k++)
            exact = !same(&c1.m[i], &c1.m[k]);

    /* The workload: ack the even ones, mark the odd ones delivered. */
    for (size_t i = 0; i < c1.n; i++) {
        if (i % 2 == 0)
            wr_store_ack(st, c1.m[i].qid, c1.m[i].loc);
        else
            wr_store_delivered(st, c1.m[i].qid, c1.m[i].loc);
    }
    uint32_t nq = wr_store_queue_add(st, WR_BYTES_LIT("fuzz-new"), WR_STORE_QF_DURABLE,
                                     (wr_bytes_t){NULL, 0});
    for (size_t i = 0; i < c1.nq; i++)
        if (c1.qids[i] == nq)
            exact = 0; /* the id counter wrapped (an id of 2^32-1 on disk) */
    wr_store_exchange_add(st, WR_BYTES_LIT("fuzz-x"), 1, 1, (wr_bytes_t){NULL, 0});
    wr_loc_t nloc;
    if (wr_store_append(st, &nq, 1, 1, WR_BYTES_LIT("fuzz-x"), WR_BYTES_LIT("k"),
                        (wr_bytes_t){NULL, 0}, WR_BYTES_LIT("new message"), &nloc) != 0)
        die("append to a healthy store failed");
    wr_store_flush(st);
    if (wr_store_failed(st))
        die("store failed on a healthy disk");
    wr_store_close(st, 1);
    st = NULL;

    if (open_store(m, &c2, &st) != 0)
        die("second recovery failed");
    read_all(st, &c2);
    if (exact && !c2.overflow) {
        size_t seen_new = 0;
        if (c2.n != c1.n - (c1.n + 1) / 2 + 1)
            die("second recovery: wrong number of messages");
        for (size_t k = 0; k < c2.n; k++) {
            fmsg_t *r = &c2.m[k];
            if (r->qid == nq && r->loc.seg == nloc.seg && r->loc.off == nloc.off) {
                seen_new++;
                if (r->redelivered)
                    die("new message redelivered");
                continue;
            }
            size_t i = 0;
            while (i < c1.n && !same(&c1.m[i], r))
                i++;
            if (i == c1.n)
                die("second recovery: a message from nowhere");
            if (i % 2 == 0)
                die("second recovery: an acked message came back");
            if (!r->redelivered)
                die("second recovery: a delivered mark was lost");
        }
        if (seen_new != 1)
            die("second recovery: the new message is missing");
    }
    wr_store_close(st, 0);
    st = NULL;
out:
    wr_buf_free(&c1.scratch);
    wr_buf_free(&c2.scratch);
    memio_free(m);
    return 0;
}
