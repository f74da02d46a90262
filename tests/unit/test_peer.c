/*
 * test_peer.c - node-to-node message links (cluster/peer.h) over rnet:
 * three or four nodes inside this process, each with its own rnet on an
 * ephemeral 127.0.0.1 port and its own wr_peers, all on one loop.  Every
 * wait is bounded by a deadline on the loop's clock.
 *
 * Messages carry (sender's per-destination sequence number, length,
 * pattern), so the receiver checks order, loss and content.  A "raw" dialer
 * (an rnet with a peer handler of its own, speaking frames by hand) checks
 * how a node treats a peer that breaks the link protocol.
 */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cluster/peer.h"
#include "cluster/rgroup.h"
#include "cluster/rnet.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "test.h"

#define NMAX     4
#define KIND_SEQ 16 /* u64 seq | u32 len | pattern */
#define KIND_BIG 17
#define MIB      (1u << 20)
#define RAW_ID   99 /* the raw node of the protocol tests */

typedef struct node {
    uint64_t id;
    wr_rnet_t *net;
    wr_peers_t *ps;
    char addr[WR_RNET_ADDR_MAX];
    /* received, per sender index */
    uint64_t rx_seq[NMAX + 1];
    uint64_t rx_count[NMAX + 1];
    uint64_t rx_big[NMAX + 1];
    uint64_t rx_other; /* from a node id outside 1..NMAX */
    uint64_t rx_bad;   /* out of order or garbled */
    /* sent, per destination index */
    uint64_t tx_seq[NMAX + 1];
    /* on_change */
    int up[NMAX + 1];
    int up_raw; /* node RAW_ID */
    int changes;
    /* raft group (test_peer_with_raft) */
    wr_rgroup_t *g;
    uint64_t applied;
    int closed;
} node_t;

static uv_loop_t loop;
static uv_timer_t waker;
static node_t nodes[NMAX];
static int stopped;
static const uint8_t secret[] = "warren-test-cluster-secret-0123456789";
static const uint8_t wrong_secret[] = "not-the-cluster-secret";

typedef struct raw {
    uv_stream_t *s;
    int done, status, eof, closed;
    int auto_ack, acked; /* answer a hello as node RAW_ID */
    uint8_t in[64];
    size_t got;
} raw_t;

/* The raw node: its rnet, its link to node 1, node 1's link to it. */
static wr_rnet_t *raw_net;
static raw_t raw, raw_in;

/* ------------------------------------------------------------------ helpers */

static void on_waker(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred() holds or ms pass; returns pred(). */
static int wait_for(int (*pred)(void), unsigned ms)
{
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + ms;
    uv_timer_start(&waker, on_waker, 2, 2);
    int ok;
    while (!(ok = pred()) && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&waker);
    return ok;
}

static int never(void)
{
    return 0;
}

static void run_for(unsigned ms)
{
    wait_for(never, ms);
}

static int idx_of(uint64_t id)
{
    return id >= 1 && id <= NMAX ? (int)id - 1 : -1;
}

static uint8_t pattern(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 31 + i * 7 + (i >> 8));
}

static void on_msg(void *ud, uint64_t from, uint8_t kind, const uint8_t *p, size_t n)
{
    node_t *nd = ud;
    int f = idx_of(from);
    if (f < 0) {
        nd->rx_other++;
        return;
    }
    if (kind == KIND_SEQ || kind == KIND_BIG) {
        if (n < 12) {
            nd->rx_bad++;
            return;
        }
        uint64_t seq = wr_get_u64(p);
        size_t len = wr_get_u32(p + 8);
        if (seq != nd->rx_seq[f] + 1 || len != n)
            nd->rx_bad++;
        nd->rx_seq[f] = seq;
        for (size_t i = 12; i < n; i++) {
            if (p[i] != pattern(seq, i)) {
                nd->rx_bad++;
                break;
            }
        }
        nd->rx_count[f]++;
        if (kind == KIND_BIG)
            nd->rx_big[f]++;
        return;
    }
    nd->rx_other++;
}

static void on_change(void *ud, uint64_t node, int up)
{
    node_t *nd = ud;
    int i = idx_of(node);
    if (i >= 0)
        nd->up[i] = up;
    else if (node == RAW_ID)
        nd->up_raw = up;
    nd->changes++;
}

/* Sends one numbered message of n bytes (>= 12) from node a to node b. */
static int send_seq(int a, int b, uint8_t kind, size_t n)
{
    static uint8_t *buf;
    static size_t cap;
    if (n > cap) {
        free(buf);
        buf = wr_xmalloc(n);
        cap = n;
    }
    uint64_t seq = nodes[a].tx_seq[b] + 1;
    wr_set_u64(buf, seq);
    wr_set_u32(buf + 8, (uint32_t)n);
    for (size_t i = 12; i < n; i++)
        buf[i] = pattern(seq, i);
    int rv = wr_peers_send(nodes[a].ps, nodes[b].id, kind, buf, n);
    if (rv == 0)
        nodes[a].tx_seq[b] = seq;
    if (n > MIB) {
        free(buf);
        buf = NULL;
        cap = 0;
    }
    return rv;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Rejections and drops are expected here; keep the output to results. */
    wr_log_set_level(WR_LOG_NONE);
    memset(nodes, 0, sizeof nodes);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &waker);
    stopped = 0;
    memset(&raw, 0, sizeof raw);
    memset(&raw_in, 0, sizeof raw_in);
    raw_net = NULL;
    for (int i = 0; i < NMAX; i++)
        nodes[i].id = (uint64_t)i + 1;
}

static int start_node(int i, const char *addr, const uint8_t *key, size_t keylen)
{
    char err[256];
    node_t *nd = &nodes[i];
    int rv = wr_rnet_start(&nd->net, &loop, addr, key, keylen, err, sizeof err);
    if (rv != 0) {
        printf("  rnet: %s\n", err);
        return rv;
    }
    snprintf(nd->addr, sizeof nd->addr, "%s", wr_rnet_addr(nd->net));
    memset(nd->up, 0, sizeof nd->up);
    memset(nd->rx_seq, 0, sizeof nd->rx_seq);
    memset(nd->tx_seq, 0, sizeof nd->tx_seq);
    return wr_peers_start(&nd->ps, nd->net, nd->id, on_msg, on_change, nd);
}

/* Every node in idx[0..k) knows every other. */
static int mesh(const int *idx, int k)
{
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            if (a != b && wr_peers_add(nodes[idx[a]].ps, nodes[idx[b]].id, nodes[idx[b]].addr) != 0)
                return 0;
    return 1;
}

static const int *mesh_idx;
static int mesh_k;
static int mesh_up(void)
{
    for (int a = 0; a < mesh_k; a++) {
        node_t *na = &nodes[mesh_idx[a]];
        for (int b = 0; b < mesh_k; b++) {
            if (a == b)
                continue;
            if (!wr_peers_up(na->ps, nodes[mesh_idx[b]].id) || !na->up[mesh_idx[b]])
                return 0;
        }
    }
    return 1;
}

static const int three[] = {0, 1, 2};

static int start3(void)
{
    for (int i = 0; i < 3; i++)
        if (start_node(i, "127.0.0.1:0", secret, sizeof secret) != 0)
            return 0;
    if (!mesh(three, 3))
        return 0;
    mesh_idx = three;
    mesh_k = 3;
    return wait_for(mesh_up, 3000);
}

static void on_stopped(void *ud)
{
    (void)ud;
    stopped++;
}

static int want_stopped;
static int stopped_pred(void)
{
    return stopped >= want_stopped;
}

/* Stops node i's peers, then its rnet; returns 1 if both finished. */
static int stop_node(int i)
{
    node_t *nd = &nodes[i];
    int ok = 1;
    if (nd->ps != NULL) {
        want_stopped = stopped + 1;
        wr_peers_stop(nd->ps, on_stopped, NULL);
        nd->ps = NULL;
        ok &= wait_for(stopped_pred, 5000);
    }
    if (nd->net != NULL) {
        want_stopped = stopped + 1;
        wr_rnet_stop(nd->net, on_stopped, NULL);
        nd->net = NULL;
        ok &= wait_for(stopped_pred, 5000);
    }
    return ok;
}

static void close_raw(void);

static void on_group_closed(void *ud)
{
    ((node_t *)ud)->closed = 1;
}

static int closing_idx;
static int group_closed(void)
{
    return nodes[closing_idx].closed;
}

/* Closes whatever is still open and checks the loop ends empty.  Runs even
 * after a failed CHECK. */
static void teardown(void)
{
    int ok = 1;
    for (int i = 0; i < NMAX; i++) {
        if (nodes[i].g != NULL) {
            nodes[i].closed = 0;
            closing_idx = i;
            wr_rgroup_close(nodes[i].g, on_group_closed, &nodes[i]);
            ok &= wait_for(group_closed, 5000);
            nodes[i].g = NULL;
        }
    }
    close_raw();
    for (int i = 0; i < NMAX; i++)
        ok &= stop_node(i);
    uv_close((uv_handle_t *)&waker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&loop);
    wr_log_set_level(WR_LOG_INFO);
    if (!ok || lc != 0) {
        printf("  teardown: stopped %d, uv_loop_close %d\n", ok, lc);
        wr_test_failed_flag = 1;
    }
}

/* Node a has received everything node b sent it, for every pair in 0..2. */
static int all_received3(void)
{
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (a != b && nodes[b].rx_seq[a] != nodes[a].tx_seq[b])
                return 0;
    return 1;
}

/* ---------------------------------------------------------------- the tests */

/* Three nodes find each other; 1000 messages per ordered pair arrive, in
 * order, sent in bursts across loop passes. */
static void body_order(void)
{
    uint64_t t0 = uv_hrtime();
    CHECK(start3());
    printf("  peer: 3 nodes up after %.1f ms\n", (double)(uv_hrtime() - t0) / 1e6);
    for (int pass = 0; pass < 20; pass++) {
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                for (int k = 0; a != b && k < 50; k++)
                    CHECK_EQ(send_seq(a, b, KIND_SEQ, 12 + (size_t)(k * 13)), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    CHECK(wait_for(all_received3, 5000));
    for (int a = 0; a < 3; a++) {
        CHECK_EQ(nodes[a].rx_bad, 0);
        CHECK_EQ(nodes[a].rx_other, 0);
        for (int b = 0; b < 3; b++)
            if (a != b)
                CHECK_EQ(nodes[a].rx_count[b], 1000);
        wr_peers_stats_t st;
        wr_peers_stats(nodes[a].ps, &st);
        CHECK_EQ(st.sent, 2000);
        CHECK_EQ(st.received, 2000);
        CHECK_EQ(st.links_up, 2);
        CHECK_EQ(st.proto_errors, 0);
    }

    /* The API's refusals. */
    uint8_t x[4] = {0};
    CHECK_EQ(wr_peers_send(nodes[0].ps, 9, KIND_SEQ, x, 4), WR_ENOTFOUND);
    CHECK_EQ(wr_peers_send(nodes[0].ps, 2, 0, x, 4), WR_EINVAL);
    CHECK_EQ(wr_peers_send(nodes[0].ps, 2, WR_PEER_KIND_MIN - 1, x, 4), WR_EINVAL);
    CHECK_EQ(wr_peers_send(nodes[0].ps, 2, KIND_SEQ, x, (size_t)WR_PEER_FRAME_MAX + 1), WR_ETOOBIG);
    CHECK_EQ(wr_peers_add(nodes[0].ps, 1, nodes[1].addr), WR_EINVAL); /* itself */
    CHECK_EQ(wr_peers_add(nodes[0].ps, 0, nodes[1].addr), WR_EINVAL);
    CHECK_EQ(wr_peers_add(nodes[0].ps, 7, "not-an-address"), WR_EINVAL);
    CHECK_EQ(wr_peers_add(nodes[0].ps, 2, nodes[1].addr), 0); /* known: no-op */
    CHECK(wr_peers_up(nodes[0].ps, 2));
    wr_peers_t *dup;
    CHECK_EQ(wr_peers_start(&dup, nodes[0].net, 1, on_msg, NULL, NULL), WR_EEXISTS);
}

static void test_peer_order(void)
{
    setup();
    body_order();
    teardown();
}

static uint64_t want_other1;
static int other1_pred(void)
{
    return nodes[1].rx_other >= want_other1;
}

static int big_pred(void)
{
    return nodes[1].rx_big[0] == 8 && nodes[2].rx_big[0] == 8 && nodes[0].rx_big[1] == 8;
}

/* 1 MiB messages (and an empty one) arrive whole, interleaved with small
 * ones in order. */
static void body_large(void)
{
    CHECK(start3());
    for (int k = 0; k < 8; k++) {
        CHECK_EQ(send_seq(0, 1, KIND_BIG, MIB), 0);
        CHECK_EQ(send_seq(0, 1, KIND_SEQ, 20), 0);
        CHECK_EQ(send_seq(0, 2, KIND_BIG, MIB + (size_t)k), 0);
        CHECK_EQ(send_seq(1, 0, KIND_BIG, MIB - (size_t)k), 0);
        if (k % 3 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    CHECK(wait_for(big_pred, 8000));
    CHECK(wait_for(all_received3, 5000));
    CHECK_EQ(nodes[1].rx_count[0], 16);
    CHECK_EQ(nodes[0].rx_bad + nodes[1].rx_bad + nodes[2].rx_bad, 0);
    /* An empty payload is a message too. */
    CHECK_EQ(wr_peers_send(nodes[2].ps, 2, 200, NULL, 0), 0);
    want_other1 = nodes[1].rx_other + 1;
    CHECK(wait_for(other1_pred, 2000)); /* kind 200 from node 3, empty */
}

static void test_peer_large_messages(void)
{
    setup();
    body_large();
    teardown();
}

/* ------------------------------------------------------------- raw dialer */

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void raw_send(raw_t *r, uint8_t kind, uint32_t len_field, const void *p, size_t n);
static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* Node 1's outbound link to the raw node: answered once, then ignored. */
static void raw_on_stream(void *ud, uint64_t from, const char *addr, uv_stream_t *s)
{
    (void)ud;
    (void)from;
    (void)addr;
    if (raw_in.s != NULL) {
        uv_close((uv_handle_t *)s, wr_rnet_stream_free);
        return;
    }
    memset(&raw_in, 0, sizeof raw_in);
    raw_in.s = s;
    raw_in.auto_ack = 1;
    s->data = &raw_in;
    uv_read_start(s, raw_alloc, raw_read);
}

static void raw_dialed(void *ud, uv_stream_t *s, int status)
{
    raw_t *r = ud;
    r->done = 1;
    r->status = status;
    r->s = s;
    if (s != NULL)
        s->data = r;
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    raw_t *r = h->data;
    (void)hint;
    b->base = (char *)r->in + r->got;
    b->len = sizeof r->in - r->got;
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    raw_t *r = s->data;
    (void)b;
    if (nread < 0)
        r->eof = 1;
    else
        r->got += (size_t)nread;
    if (r->eof || r->got == sizeof r->in)
        uv_read_stop(s);
    if (r->auto_ack && !r->acked && r->got >= 13) {
        uint8_t ack[8];
        wr_set_u64(ack, RAW_ID);
        r->acked = 1;
        raw_send(r, 1, 8, ack, 8);
    }
}

static void raw_write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void raw_send(raw_t *r, uint8_t kind, uint32_t len_field, const void *p, size_t n)
{
    uv_write_t *w = wr_xmalloc(sizeof *w + 5 + n);
    uint8_t *d = (uint8_t *)(w + 1);
    wr_set_u32(d, len_field);
    d[4] = kind;
    if (n > 0)
        memcpy(d + 5, p, n);
    uv_buf_t b = uv_buf_init((char *)d, (unsigned)(5 + n));
    if (uv_write(w, r->s, &b, 1, raw_write_done) != 0)
        free(w);
}

static void raw_hello(raw_t *r, uint64_t to)
{
    uint8_t h[8];
    wr_set_u64(h, to);
    raw_send(r, 1, 8, h, 8);
}

static raw_t *cur_raw;
static int raw_done(void)
{
    return cur_raw->done;
}
static int raw_acked(void)
{
    return cur_raw->got >= 13 || cur_raw->eof;
}
static int raw_eof(void)
{
    return cur_raw->eof;
}
static int raw_closed(void)
{
    return cur_raw->closed;
}

static void raw_on_closed(uv_handle_t *h)
{
    raw_t *r = h->data;
    r->closed = 1;
    wr_rnet_stream_free(h);
}

/* Dials node 1 from the raw rnet (node 99) and starts reading. */
static int raw_open(raw_t *r, wr_rnet_t *rn)
{
    memset(r, 0, sizeof *r);
    cur_raw = r;
    if (wr_rnet_dial_peer(rn, nodes[0].addr, raw_dialed, r, NULL) != 0)
        return 0;
    if (!wait_for(raw_done, 3000) || r->status != 0)
        return 0;
    return uv_read_start(r->s, raw_alloc, raw_read) == 0;
}

static int raw_close(raw_t *r)
{
    cur_raw = r;
    uv_close((uv_handle_t *)r->s, raw_on_closed);
    r->s = NULL;
    return wait_for(raw_closed, 1000);
}

static int start_raw_net(void)
{
    char err[128];
    return wr_rnet_start(&raw_net, &loop, "127.0.0.1:0", secret, sizeof secret, err, sizeof err) ==
           0;
}

/* Closes the raw node's links and stops its rnet. */
static void close_raw(void)
{
    if (raw.s != NULL)
        uv_close((uv_handle_t *)raw.s, raw_on_closed);
    raw.s = NULL;
    if (raw_in.s != NULL)
        uv_close((uv_handle_t *)raw_in.s, raw_on_closed);
    raw_in.s = NULL;
    if (raw_net != NULL) {
        wr_rnet_set_peer_handler(raw_net, 0, NULL, NULL);
        want_stopped = stopped + 1;
        wr_rnet_stop(raw_net, on_stopped, NULL);
        raw_net = NULL;
        if (!wait_for(stopped_pred, 5000))
            wr_test_failed_flag = 1;
    }
}

static int raw_up(void)
{
    return wr_peers_up(nodes[0].ps, RAW_ID) && nodes[0].up_raw;
}

static int raw_down(void)
{
    return !wr_peers_up(nodes[0].ps, RAW_ID) && !nodes[0].up_raw;
}

/* Idle links stay up on heartbeats alone, well past the 3 s window; a
 * silent peer goes down; a node with the wrong secret never gets a link
 * up either way. */
static void body_heartbeats(void)
{
    static const int bad_pair[] = {0, 3};
    CHECK(start3());
    CHECK_EQ(start_node(3, "127.0.0.1:0", wrong_secret, sizeof wrong_secret), 0);
    CHECK(mesh(bad_pair, 2));

    /* Meanwhile a peer (the raw node) answers the hello and then says
     * nothing, without closing: up while its hello is fresh, down about
     * WR_PEER_UP_WINDOW_MS later. */
    CHECK(start_raw_net());
    CHECK_EQ(wr_rnet_set_peer_handler(raw_net, RAW_ID, raw_on_stream, NULL), 0);
    CHECK_EQ(wr_peers_add(nodes[0].ps, RAW_ID, wr_rnet_addr(raw_net)), 0);
    CHECK(raw_open(&raw, raw_net));
    raw_hello(&raw, 1);
    CHECK(wait_for(raw_up, 2000));
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    int changes[3];
    for (int i = 0; i < 3; i++)
        changes[i] = nodes[i].changes;
    CHECK(wait_for(raw_down, 4000));
    uv_update_time(&loop);
    uint64_t silent = uv_now(&loop) - t0;
    printf("  peer: silent peer seen down after %llu ms\n", (unsigned long long)silent);
    CHECK(silent >= 2500 && silent <= 3600);
    CHECK(raw.s != NULL && !raw.eof && raw_in.acked); /* no link was dropped */

    /* Idle past the window: heartbeats alone keep the mesh up. */
    run_for(4200 - (unsigned)silent);
    mesh_idx = three;
    mesh_k = 3;
    CHECK(mesh_up());
    CHECK_EQ(nodes[0].changes, changes[0] + 1); /* node 99 went down */
    for (int i = 1; i < 3; i++)
        CHECK_EQ(nodes[i].changes, changes[i]);

    CHECK(!wr_peers_up(nodes[0].ps, 4));
    CHECK(!wr_peers_up(nodes[3].ps, 1));
    CHECK_EQ(nodes[3].changes, 0);
    uint8_t x[12] = {0};
    CHECK_EQ(wr_peers_send(nodes[3].ps, 1, KIND_SEQ, x, sizeof x), WR_EAGAIN);
    CHECK_EQ(wr_peers_send(nodes[0].ps, 4, KIND_SEQ, x, sizeof x), WR_EAGAIN);
    wr_rnet_stats_t rs;
    wr_rnet_stats(nodes[0].net, &rs);
    CHECK(rs.rejected_auth >= 2); /* redialled with backoff, refused each time */
    CHECK_EQ(nodes[0].rx_count[3] + nodes[0].rx_other, 0);
    wr_rnet_stats(nodes[3].net, &rs);
    CHECK(rs.rejected_auth >= 2);
    CHECK_EQ(rs.peer_accepted, 0);
}

static void test_peer_heartbeats_and_wrong_secret(void)
{
    setup();
    body_heartbeats();
    teardown();
}

static int third_down(void)
{
    return !nodes[0].up[2] && !nodes[1].up[2] && !wr_peers_up(nodes[0].ps, 3) &&
           !wr_peers_up(nodes[1].ps, 3);
}

/* A node stops: the others see it down (well within 4 s) and refuse to
 * send to it; it starts again on the same address with fresh state and
 * everyone is up again, with messages flowing both ways. */
static void body_restart(void)
{
    CHECK(start3());
    for (int k = 0; k < 10; k++)
        CHECK_EQ(send_seq(0, 2, KIND_SEQ, 16), 0);
    CHECK(wait_for(all_received3, 3000));
    char addr[WR_RNET_ADDR_MAX];
    snprintf(addr, sizeof addr, "%s", nodes[2].addr);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    CHECK(stop_node(2));
    CHECK(wait_for(third_down, 4000));
    uv_update_time(&loop);
    printf("  peer: stopped node seen down after %llu ms\n",
           (unsigned long long)(uv_now(&loop) - t0));
    CHECK_EQ(send_seq(0, 2, KIND_SEQ, 16), WR_EAGAIN);
    run_for(1500); /* the others redial with backoff meanwhile */
    CHECK(third_down());

    uv_update_time(&loop);
    t0 = uv_now(&loop);
    CHECK_EQ(start_node(2, addr, secret, sizeof secret), 0);
    CHECK_STR(nodes[2].addr, addr);
    for (int b = 0; b < 2; b++)
        CHECK_EQ(wr_peers_add(nodes[2].ps, nodes[b].id, nodes[b].addr), 0);
    mesh_idx = three;
    mesh_k = 3;
    CHECK(wait_for(mesh_up, 3000));
    uv_update_time(&loop);
    printf("  peer: restarted node up again after %llu ms\n",
           (unsigned long long)(uv_now(&loop) - t0));
    /* The restarted node counts from 1 again. */
    nodes[0].tx_seq[2] = nodes[1].tx_seq[2] = 0;
    nodes[0].rx_seq[2] = nodes[1].rx_seq[2] = 0;
    for (int k = 0; k < 10; k++) {
        CHECK_EQ(send_seq(0, 2, KIND_SEQ, 16), 0);
        CHECK_EQ(send_seq(2, 0, KIND_SEQ, 16), 0);
        CHECK_EQ(send_seq(1, 2, KIND_SEQ, 16), 0);
    }
    CHECK(wait_for(all_received3, 3000));
    CHECK_EQ(nodes[0].rx_bad + nodes[1].rx_bad + nodes[2].rx_bad, 0);
}

static void test_peer_restart(void)
{
    setup();
    body_restart();
    teardown();
}

static int overflow_back(void)
{
    return wr_peers_up(nodes[0].ps, 2) && wr_peers_up(nodes[1].ps, 1) && nodes[0].up[1] &&
           nodes[1].up[0];
}

/* A link whose unsent output would pass the limit is dropped, nothing of
 * it arrives, and the link comes back. */
static void body_overflow(void)
{
    CHECK(start3());
    int k, rv = 0;
    for (k = 0; k < 80 && (rv = send_seq(0, 1, KIND_BIG, MIB)) == 0; k++)
        ;
    CHECK_EQ(rv, WR_EAGAIN);
    CHECK_EQ(k, 63); /* 63 * (1 MiB + 5) fit in 64 MiB, the 64th does not */
    wr_peers_stats_t st;
    wr_peers_stats(nodes[0].ps, &st);
    CHECK_EQ(st.overflows, 1);
    CHECK(!wr_peers_up(nodes[0].ps, 2));
    CHECK_EQ(wr_peers_send(nodes[0].ps, 2, KIND_SEQ, "0123456789ab", 12), WR_EAGAIN);
    CHECK(wait_for(overflow_back, 3000));
    CHECK_EQ(nodes[1].rx_count[0], 0);
    /* The receiver starts a new sequence: what was queued was lost. */
    nodes[0].tx_seq[1] = 0;
    CHECK_EQ(send_seq(0, 1, KIND_BIG, MIB), 0);
    CHECK(wait_for(all_received3, 3000));
    CHECK_EQ(nodes[1].rx_count[0], 1);
    CHECK_EQ(nodes[1].rx_bad, 0);
}

static void test_peer_overflow_drops_link(void)
{
    setup();
    body_overflow();
    teardown();
}

static uint64_t want_other;
static int other_pred(void)
{
    return nodes[0].rx_other >= want_other;
}

/* Frames over the maximum, a missing hello, a hello for another node:
 * each drops the link (the raw dialer sees EOF). */
static void body_raw(void)
{
    /* Node 1 alone, plus a raw rnet as node 99 with the right secret. */
    CHECK_EQ(start_node(0, "127.0.0.1:0", secret, sizeof secret), 0);
    CHECK(start_raw_net());
    wr_rnet_t *rn = raw_net;
    CHECK_EQ(wr_rnet_dial_peer(rn, nodes[0].addr, raw_dialed, &raw, NULL), WR_EINVAL); /* no id */
    CHECK_EQ(wr_rnet_set_peer_handler(rn, RAW_ID, raw_on_stream, NULL), 0);
    CHECK_EQ(wr_rnet_set_peer_handler(rn, RAW_ID, raw_on_stream, NULL), WR_EEXISTS);

    /* A good link: hello, answer with node 1's id, a message delivered. */
    CHECK(raw_open(&raw, rn));
    raw_hello(&raw, 1);
    CHECK(wait_for(raw_acked, 2000));
    CHECK(!raw.eof);
    CHECK_EQ(raw.got, 13);
    CHECK_EQ(wr_get_u32(raw.in), 8);
    CHECK_EQ(raw.in[4], 1);
    CHECK_EQ(wr_get_u64(raw.in + 5), 1);
    raw_send(&raw, 16, 2, "hi", 2); /* node 99 is not known to node 1: delivered anyway */
    want_other = 1;
    CHECK(wait_for(other_pred, 2000));
    wr_peers_stats_t st;
    wr_peers_stats(nodes[0].ps, &st);
    CHECK_EQ(st.proto_errors, 0);

    /* A frame one byte over the maximum: dropped before any payload. */
    raw_send(&raw, 16, WR_PEER_FRAME_MAX + 1, NULL, 0);
    CHECK(wait_for(raw_eof, 2000));
    wr_peers_stats(nodes[0].ps, &st);
    CHECK_EQ(st.proto_errors, 1);
    CHECK(raw_close(&raw));

    /* A frame of exactly the maximum's header is fine (the payload is not
     * sent; the link is closed by us). */
    CHECK(raw_open(&raw, rn));
    raw_hello(&raw, 1);
    CHECK(wait_for(raw_acked, 2000));
    raw_send(&raw, 16, WR_PEER_FRAME_MAX, NULL, 0);
    run_for(100);
    CHECK(!raw.eof);
    CHECK(raw_close(&raw));

    /* A message before the hello. */
    CHECK(raw_open(&raw, rn));
    raw_send(&raw, 16, 2, "hi", 2);
    CHECK(wait_for(raw_eof, 2000));
    CHECK_EQ(raw.got, 0);
    CHECK(raw_close(&raw));

    /* A big frame before the hello: refused on its header alone. */
    CHECK(raw_open(&raw, rn));
    raw_send(&raw, 16, MIB, NULL, 0);
    CHECK(wait_for(raw_eof, 2000));
    CHECK_EQ(raw.got, 0);
    CHECK(raw_close(&raw));

    /* A hello for a node that is not this one. */
    CHECK(raw_open(&raw, rn));
    raw_hello(&raw, 2);
    CHECK(wait_for(raw_eof, 2000));
    CHECK_EQ(raw.got, 0);
    CHECK(raw_close(&raw));

    wr_peers_stats(nodes[0].ps, &st);
    CHECK_EQ(st.proto_errors, 4); /* too big, no hello (twice), wrong node */
    CHECK_EQ(nodes[0].rx_other, 1);
    wr_rnet_stats_t rs;
    wr_rnet_stats(nodes[0].net, &rs);
    CHECK_EQ(rs.peer_accepted, 5);
    CHECK_EQ(rs.rejected_auth, 0);
}

static void test_peer_protocol_errors_drop_link(void)
{
    setup();
    body_raw();
    teardown();
}

/* ---------------------------------------------------- with a raft group */

static void sm_apply(void *ud, uint64_t index, const void *p, size_t n)
{
    (void)index;
    (void)p;
    (void)n;
    ((node_t *)ud)->applied++;
}
static int sm_snapshot(void *ud, wr_buf_t *out)
{
    wr_buf_put_u64(out, ((node_t *)ud)->applied);
    return 0;
}
static int sm_restore(void *ud, const void *p, size_t n)
{
    if (n != 8)
        return WR_ECORRUPT;
    ((node_t *)ud)->applied = wr_get_u64(p);
    return 0;
}
static const wr_rgroup_cbs_t cbs = {sm_apply, sm_snapshot, sm_restore, NULL};

static int leader_idx(void)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i].g != NULL && wr_rgroup_is_leader(nodes[i].g))
            return i;
    return -1;
}
static int have_leader(void)
{
    return leader_idx() >= 0;
}
static int all_applied(void)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i].applied < 20)
            return 0;
    return 1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Raft streams and peer links share each node's listener: a group elects
 * and commits while messages flow. */
static char root[64];

static void body_raft(void)
{
    int ok = start3();
    wr_rgroup_opts_t opts;
    wr_rgroup_opts_default(&opts);
    opts.election_timeout_ms = 300;
    opts.heartbeat_timeout_ms = 50;
    opts.connect_retry_ms = 100;
    wr_rgroup_member_t m[3];
    for (int i = 0; i < 3; i++) {
        m[i].id = nodes[i].id;
        m[i].addr = nodes[i].addr;
        m[i].standby = 0;
    }
    for (int i = 0; ok && i < 3; i++) {
        char dir[128], err[256];
        snprintf(dir, sizeof dir, "%s/n%d", root, i);
        if (wr_rgroup_open(&nodes[i].g, nodes[i].net, 0x77, dir, nodes[i].id, NULL, m, 3, &cbs,
                           &nodes[i], &opts, err, sizeof err) != 0) {
            printf("  open: %s\n", err);
            ok = 0;
        }
    }
    ok = ok && wait_for(have_leader, 8000);
    for (int k = 0; ok && k < 20; k++)
        ok = wr_rgroup_propose(nodes[leader_idx()].g, "command!", 8) != 0;
    for (int k = 0; ok && k < 100; k++)
        ok = send_seq(k % 3, (k + 1) % 3, KIND_SEQ, 64) == 0;
    ok = ok && wait_for(all_applied, 5000) && wait_for(all_received3, 3000);
    wr_rnet_stats_t rs;
    wr_rnet_stats(nodes[0].net, &rs);
    CHECK(ok);
    CHECK(rs.accepted > 0);
    CHECK(rs.peer_accepted > 0);
    CHECK_EQ(nodes[0].rx_bad + nodes[1].rx_bad + nodes[2].rx_bad, 0);
}

static void test_peer_with_raft(void)
{
    snprintf(root, sizeof root, "/tmp/wr_peer.XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    setup();
    body_raft();
    teardown();
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

WR_SUITE(peer)
{
    RUN(test_peer_order);
    RUN(test_peer_large_messages);
    RUN(test_peer_heartbeats_and_wrong_secret);
    RUN(test_peer_restart);
    RUN(test_peer_overflow_drops_link);
    RUN(test_peer_protocol_errors_drop_link);
    RUN(test_peer_with_raft);
}
