/*
 * test_rgroup.c - Raft groups over rnet with the real libraft: three (for
 * membership, four) nodes inside this process, each with its own rnet on an
 * ephemeral 127.0.0.1 port and its own directory under /tmp, all on one
 * loop.  Every wait is bounded by a deadline on the loop's clock.
 *
 * The state machine is a counter with an order-sensitive hash of every
 * command applied, so equal (count, hash) on two members means they applied
 * the same commands in the same order; it also checks that apply indexes
 * only grow.
 */
#define _GNU_SOURCE /* nftw */
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cluster/rgroup.h"
#include "cluster/rnet.h"
#include "core/err.h"
#include "core/log.h"
#include "test.h"

#define NMAX 4
#define GID  0x5157ull

typedef struct node {
    uint64_t id;
    wr_rnet_t *net;
    wr_rgroup_t *g;
    char dir[256];
    /* state machine */
    uint64_t count, hash, last_index, bad_index, restores;
    /* leader_changed */
    int is_leader;
    uint64_t leader_id;
    int closed;
} node_t;

static uv_loop_t loop;
static uv_timer_t waker;
static node_t nodes[NMAX];
static char root[64];
static int nets_stopped;
static wr_rgroup_opts_t opts;
static const uint8_t secret[] = "warren-test-cluster-secret-0123456789";
static const uint8_t wrong_secret[] = "not-the-cluster-secret";
static uint64_t seq; /* payload counter, unique across a test */

/* ------------------------------------------------------------ state machine */

static void sm_apply(void *ud, uint64_t index, const void *p, size_t n)
{
    node_t *nd = ud;
    const uint8_t *b = p;
    if (index <= nd->last_index)
        nd->bad_index++;
    nd->last_index = index;
    nd->count++;
    uint64_t h = nd->hash ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    nd->hash = h;
}

static int sm_snapshot(void *ud, wr_buf_t *out)
{
    node_t *nd = ud;
    wr_buf_put_u64(out, nd->count);
    wr_buf_put_u64(out, nd->hash);
    wr_buf_put_u64(out, nd->last_index);
    /* A length that is not a multiple of 8, on purpose (see rgroup.c's
     * entry framing: snapshots travel differently and need none). */
    wr_buf_put_u8(out, 0x5a);
    return 0;
}

static int sm_restore(void *ud, const void *p, size_t n)
{
    node_t *nd = ud;
    if (n != 25 || ((const uint8_t *)p)[24] != 0x5a)
        return WR_ECORRUPT;
    nd->count = wr_get_u64(p);
    nd->hash = wr_get_u64((const uint8_t *)p + 8);
    nd->last_index = wr_get_u64((const uint8_t *)p + 16);
    nd->restores++;
    return 0;
}

static void sm_leader(void *ud, int is_leader, uint64_t leader_id)
{
    node_t *nd = ud;
    nd->is_leader = is_leader;
    nd->leader_id = leader_id;
}

static const wr_rgroup_cbs_t cbs = {sm_apply, sm_snapshot, sm_restore, sm_leader};

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

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Rejections are expected here; keep the output to the results. */
    wr_log_set_level(WR_LOG_NONE);
    memset(nodes, 0, sizeof nodes);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &waker);
    snprintf(root, sizeof root, "/tmp/wr_rgroup.XXXXXX");
    if (mkdtemp(root) == NULL)
        root[0] = '\0';
    wr_rgroup_opts_default(&opts);
    /* Shorter than production so the suite stays fast (see the doc). */
    opts.election_timeout_ms = 300;
    opts.heartbeat_timeout_ms = 50;
    opts.connect_retry_ms = 100;
    seq = 0;
    nets_stopped = 0;
    for (int i = 0; i < NMAX; i++)
        nodes[i].id = (uint64_t)i + 1;
}

static int start_net(int i, const uint8_t *key, size_t keylen)
{
    char err[256];
    return wr_rnet_start(&nodes[i].net, &loop, "127.0.0.1:0", key, keylen, err, sizeof err);
}

/* Opens group gid on node i with the nodes in idx[0..nm) as members (nm 0:
 * join). */
static int open_group(int i, uint64_t gid, const int *idx, size_t nm)
{
    wr_rgroup_member_t m[NMAX];
    char err[256];
    for (size_t k = 0; k < nm; k++) {
        m[k].id = nodes[idx[k]].id;
        m[k].addr = wr_rnet_addr(nodes[idx[k]].net);
        m[k].standby = 0;
    }
    snprintf(nodes[i].dir, sizeof nodes[i].dir, "%s/n%llu-g%llx", root,
             (unsigned long long)nodes[i].id, (unsigned long long)gid);
    nodes[i].is_leader = 0;
    nodes[i].leader_id = 0;
    int rv = wr_rgroup_open(&nodes[i].g, nodes[i].net, gid, nodes[i].dir, nodes[i].id, NULL, m, nm,
                            &cbs, &nodes[i], &opts, err, sizeof err);
    if (rv != 0)
        printf("  open: %s\n", err);
    return rv;
}

static void on_group_closed(void *ud)
{
    ((node_t *)ud)->closed = 1;
}

static int closing_done;
static int closed_pred(void)
{
    return nodes[closing_done].closed;
}

static int close_group(int i)
{
    if (nodes[i].g == NULL)
        return 1;
    nodes[i].closed = 0;
    wr_rgroup_close(nodes[i].g, on_group_closed, &nodes[i]);
    closing_done = i;
    int ok = wait_for(closed_pred, 5000);
    nodes[i].g = NULL;
    nodes[i].is_leader = 0;
    nodes[i].leader_id = 0;
    return ok;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void on_net_stopped(void *ud)
{
    (void)ud;
    nets_stopped++;
}

static int want_nets;
static int nets_pred(void)
{
    return nets_stopped == want_nets;
}

/* Closes whatever is still open, checks the loop ends empty, removes the
 * files.  Runs even after a failed CHECK. */
static void teardown(void)
{
    int ok = 1;
    for (int i = 0; i < NMAX; i++)
        ok &= close_group(i);
    want_nets = 0;
    for (int i = 0; i < NMAX; i++) {
        if (nodes[i].net != NULL) {
            wr_rnet_stop(nodes[i].net, on_net_stopped, NULL);
            nodes[i].net = NULL;
            want_nets++;
        }
    }
    ok &= wait_for(nets_pred, 5000);
    uv_close((uv_handle_t *)&waker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&loop);
    if (root[0] != '\0')
        nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    wr_log_set_level(WR_LOG_INFO);
    if (!ok || lc != 0) {
        printf("  teardown: groups/nets closed %d, uv_loop_close %d\n", ok, lc);
        wr_test_failed_flag = 1;
    }
}

/* The index of the one ready leader that every other open member follows,
 * or -1. */
static int agreed_leader(void)
{
    int l = -1;
    for (int i = 0; i < NMAX; i++) {
        if (nodes[i].g != NULL && wr_rgroup_is_leader(nodes[i].g)) {
            if (l >= 0)
                return -1;
            l = i;
        }
    }
    if (l < 0)
        return -1;
    for (int i = 0; i < NMAX; i++)
        if (nodes[i].g != NULL && i != l && nodes[i].leader_id != nodes[l].id)
            return -1;
    return nodes[l].is_leader ? l : -1;
}

static int have_leader(void)
{
    return agreed_leader() >= 0;
}

/* Every open member has applied what the leader has, identically. */
static int converged(void)
{
    int l = agreed_leader();
    if (l < 0)
        return 0;
    for (int i = 0; i < NMAX; i++) {
        if (nodes[i].g == NULL)
            continue;
        if (nodes[i].count != nodes[l].count || nodes[i].hash != nodes[l].hash ||
            nodes[i].last_index != nodes[l].last_index)
            return 0;
    }
    return 1;
}

static void dump(void)
{
    for (int i = 0; i < NMAX; i++) {
        if (nodes[i].g == NULL)
            continue;
        wr_rgroup_info_t in;
        wr_rgroup_info(nodes[i].g, &in);
        printf("  node %d: count %llu last_index %llu leader %d/%llu raft state %d term %llu "
               "commit %llu applied %llu last %llu\n",
               i, (unsigned long long)nodes[i].count, (unsigned long long)nodes[i].last_index,
               nodes[i].is_leader, (unsigned long long)nodes[i].leader_id, in.raft_state,
               (unsigned long long)in.term, (unsigned long long)in.commit_index,
               (unsigned long long)in.last_applied, (unsigned long long)in.last_index);
    }
}

#define CHECK_CONVERGED(ms)                                                                        \
    do {                                                                                           \
        if (!wait_for(converged, (ms)))                                                            \
            dump();                                                                                \
        CHECK(converged());                                                                        \
    } while (0)

static uint64_t propose_n(int l, int n)
{
    uint64_t t = 0;
    char p[32];
    for (int k = 0; k < n; k++) {
        int len = snprintf(p, sizeof p, "cmd-%llu", (unsigned long long)++seq);
        t = wr_rgroup_propose(nodes[l].g, p, (size_t)len);
        if (t == 0)
            return 0;
    }
    return t;
}

static uint64_t wait_ticket;
static wr_rgroup_t *wait_group;
static int ticket_resolved(void)
{
    return wr_durable_state(wr_rgroup_durable(wait_group), wait_ticket) != 0;
}

/* Proposes n on the leader and waits for them to be durable. */
static int propose_sync(int l, int n)
{
    wait_ticket = propose_n(l, n);
    wait_group = nodes[l].g;
    if (wait_ticket == 0 || !wait_for(ticket_resolved, 5000))
        return 0;
    return wr_durable_state(wr_rgroup_durable(wait_group), wait_ticket) == 1;
}

static int start_cluster3(void)
{
    static const int all[] = {0, 1, 2};
    for (int i = 0; i < 3; i++)
        if (start_net(i, secret, sizeof secret) != 0)
            return 0;
    for (int i = 0; i < 3; i++)
        if (open_group(i, GID, all, 3) != 0)
            return 0;
    return wait_for(have_leader, 8000);
}

/* Forgets the state machine, as a restarted process would. */
static void reset_sm(int i)
{
    nodes[i].count = nodes[i].hash = nodes[i].last_index = 0;
    nodes[i].bad_index = nodes[i].restores = 0;
}

static int no_bad_index(void)
{
    for (int i = 0; i < NMAX; i++)
        if (nodes[i].bad_index != 0)
            return 0;
    return 1;
}

/* -------------------------------------------------------------- the tests */

static int auth_pred(void)
{
    wr_rnet_stats_t st;
    wr_rnet_stats(nodes[0].net, &st);
    return st.rejected_auth > 0 && st.rejected_group > 0;
}

static int pair_leader(void)
{
    int l = agreed_leader();
    return l == 0 || l == 1;
}

/* A node with the wrong secret is refused; a group not open on the peer is
 * refused until it opens, then the peer's retries get through. */
static void body_rnet_auth(void)
{
    static const int a_c[] = {0, 2}, a_b[] = {0, 1};
    CHECK_EQ(start_net(0, secret, sizeof secret), 0);
    CHECK_EQ(start_net(1, secret, sizeof secret), 0);
    CHECK_EQ(start_net(2, wrong_secret, sizeof wrong_secret), 0);
    wr_rnet_t *bad;
    char err[128];
    CHECK_EQ(wr_rnet_start(&bad, &loop, "127.0.0.1:0", secret, 0, err, sizeof err), WR_EINVAL);
    CHECK_EQ(wr_rnet_start(&bad, &loop, "localhost", secret, 4, err, sizeof err), WR_EINVAL);
    CHECK(strncmp(wr_rnet_addr(nodes[0].net), "127.0.0.1:", 10) == 0);
    CHECK(strcmp(wr_rnet_addr(nodes[0].net), "127.0.0.1:0") != 0);

    /* C (wrong secret) campaigns in group 7 towards A; B campaigns in group
     * 8 towards A, which does not have group 8 yet. */
    CHECK_EQ(open_group(2, 7, a_c, 2), 0);
    CHECK_EQ(open_group(1, 8, a_b, 2), 0);
    CHECK(wait_for(auth_pred, 5000));
    wr_rnet_stats_t st;
    wr_rnet_stats(nodes[0].net, &st);
    CHECK_EQ(st.accepted, 0);
    /* The same group id twice on one rnet is refused. */
    wr_rgroup_t *dup;
    wr_rgroup_member_t m = {2, wr_rnet_addr(nodes[1].net), 0};
    char dir[300];
    snprintf(dir, sizeof dir, "%s/dup", root);
    CHECK_EQ(wr_rgroup_open(&dup, nodes[1].net, 8, dir, 2, NULL, &m, 1, &cbs, &nodes[3], &opts, err,
                            sizeof err),
             WR_EEXISTS);
    CHECK(close_group(2));

    /* Once A opens group 8, B's retries reach it and they elect a leader. */
    CHECK_EQ(open_group(0, 8, a_b, 2), 0);
    CHECK(wait_for(pair_leader, 8000));
    wr_rnet_stats(nodes[0].net, &st);
    CHECK(st.accepted > 0);
    int l = agreed_leader();
    CHECK(propose_sync(l, 10));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[0].count, 10);
}

static void test_rnet_auth_and_unknown_group(void)
{
    setup();
    body_rnet_auth();
    teardown();
}

static int dw_seen;
static uint64_t dw_ticket, dw_leader_count;
static int dw_leader;
static int dw_wake(wr_durable_waiter_t *w)
{
    int st = wr_durable_state(w->on, dw_ticket);
    if (st != 0 && !dw_seen) {
        dw_seen = st;
        dw_leader_count = nodes[dw_leader].count;
        wr_durable_unwait(w);
    }
    return 0;
}

static int dw_pred(void)
{
    return dw_seen != 0;
}

/* Election, order on all members, durability after commit, batching. */
static void body_replicate(void)
{
    uint64_t t0 = uv_hrtime();
    CHECK(start_cluster3());
    printf("  rgroup: first leader after %.0f ms\n", (double)(uv_hrtime() - t0) / 1e6);
    int l = agreed_leader();
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(nodes[i].restores, 0);
        if (i != l)
            CHECK_EQ(wr_rgroup_propose(nodes[i].g, "x", 1), 0);
    }

    /* 1000 proposals in one loop pass: consecutive tickets, nothing durable
     * before the loop runs, one raft_apply. */
    wr_rgroup_info_t before, after;
    wr_rgroup_info(nodes[l].g, &before);
    wr_durable_t *d = wr_rgroup_durable(nodes[l].g);
    uint64_t first = before.proposals + 1;
    uint64_t last = propose_n(l, 1000);
    CHECK_EQ(last, first + 999);
    CHECK(d->synced < first);
    CHECK_EQ(wr_durable_state(d, last), 0);
    uint64_t base = nodes[l].count;
    wr_durable_waiter_t w = {NULL, NULL, dw_wake};
    dw_seen = 0;
    dw_ticket = last;
    dw_leader = l;
    wr_durable_wait(d, &w);
    int ok = wait_for(dw_pred, 5000);
    wr_durable_unwait(&w);
    CHECK(ok);
    CHECK_EQ(dw_seen, 1);
    /* When the ticket became durable the batch was committed and applied
     * on the leader. */
    CHECK_EQ(dw_leader_count, base + 1000);
    wr_rgroup_info(nodes[l].g, &after);
    CHECK_EQ(after.batches, before.batches + 1);
    CHECK_CONVERGED(5000);

    /* 40 passes of 25: one batch per pass. */
    wr_rgroup_info(nodes[l].g, &before);
    for (int pass = 0; pass < 40; pass++) {
        CHECK(propose_n(l, 25) != 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    wait_ticket = before.proposals + 1000;
    wait_group = nodes[l].g;
    CHECK(wait_for(ticket_resolved, 5000));
    CHECK_EQ(wr_durable_state(d, wait_ticket), 1);
    wr_rgroup_info(nodes[l].g, &after);
    CHECK(after.batches - before.batches >= 2 && after.batches - before.batches <= 40);
    CHECK_CONVERGED(5000);

    /* Throughput with 1000-entry batches, 20 passes in flight. */
    uint64_t start = uv_hrtime();
    for (int pass = 0; pass < 20; pass++) {
        CHECK(propose_n(l, 1000) != 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    wr_rgroup_info(nodes[l].g, &after);
    wait_ticket = after.proposals;
    CHECK(wait_for(ticket_resolved, 10000));
    double secs = (double)(uv_hrtime() - start) / 1e9;
    printf("  rgroup: 20000 entries committed in %.3f s (%.0f entries/s)\n", secs, 20000.0 / secs);
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[l].count, 1000 + 1000 + 20000);
    CHECK(no_bad_index());
}

static void test_rgroup_replicate_in_order(void)
{
    setup();
    body_replicate();
    teardown();
}

/* Without a majority nothing becomes durable, and the tickets fail once
 * the leader steps down. */
static void body_no_quorum(void)
{
    static const int all[] = {0, 1, 2};
    CHECK(start_cluster3());
    int l = agreed_leader();
    CHECK(propose_sync(l, 10));
    for (int i = 0; i < 3; i++)
        if (i != l)
            CHECK(close_group(i));
    wr_durable_t *d = wr_rgroup_durable(nodes[l].g);
    uint64_t t = propose_n(l, 10);
    CHECK(t != 0);
    run_for(100);
    CHECK_EQ(wr_durable_state(d, t), 0);
    wait_ticket = t;
    wait_group = nodes[l].g;
    CHECK(wait_for(ticket_resolved, 5000));
    CHECK_EQ(wr_durable_state(d, t), -1);
    CHECK(!wr_rgroup_is_leader(nodes[l].g));
    CHECK_EQ(wr_rgroup_propose(nodes[l].g, "x", 1), 0);

    /* The others come back: a leader again, and proposals go through. */
    for (int i = 0; i < 3; i++)
        if (i != l) {
            reset_sm(i); /* as a restarted process: the log is applied again */
            CHECK_EQ(open_group(i, GID, all, 3), 0);
        }
    CHECK(wait_for(have_leader, 8000));
    CHECK(propose_sync(agreed_leader(), 10));
    CHECK_CONVERGED(5000);
    CHECK(no_bad_index());
}

static void test_rgroup_no_quorum_fails_tickets(void)
{
    setup();
    body_no_quorum();
    teardown();
}

static int failover_from;
static int new_leader(void)
{
    int l = agreed_leader();
    return l >= 0 && l != failover_from;
}

/* The leader goes; another is elected, proposals continue, and the old one
 * catches up when it comes back. */
static void body_failover(void)
{
    static const int all[] = {0, 1, 2};
    CHECK(start_cluster3());
    int l = agreed_leader();
    CHECK(propose_sync(l, 100));
    CHECK_CONVERGED(5000);
    uint64_t t0 = uv_hrtime();
    CHECK(close_group(l));
    failover_from = l;
    CHECK(wait_for(new_leader, 8000));
    printf("  rgroup: new leader %.0f ms after the old one closed\n",
           (double)(uv_hrtime() - t0) / 1e6);
    int l2 = agreed_leader();
    CHECK(propose_sync(l2, 100));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[l2].count, 200);

    reset_sm(l);
    CHECK_EQ(open_group(l, GID, all, 3), 0);
    CHECK_CONVERGED(8000);
    CHECK_EQ(nodes[l].count, 200);
    CHECK(no_bad_index());
}

static void test_rgroup_leader_failover(void)
{
    setup();
    body_failover();
    teardown();
}

static int count_snapshots(const char *dir)
{
    DIR *dh = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (dh == NULL)
        return -1;
    while ((e = readdir(dh)) != NULL)
        if (strncmp(e->d_name, "snapshot-", 9) == 0 && strstr(e->d_name, ".meta") == NULL)
            n++;
    closedir(dh);
    return n;
}

/* Every member stops and starts again from its directory: the state comes
 * back from the snapshot plus the log after it. */
static void body_restart(void)
{
    static const int all[] = {0, 1, 2};
    opts.snapshot_threshold = 64;
    opts.snapshot_trailing = 16;
    CHECK(start_cluster3());
    int l = agreed_leader();
    for (int k = 0; k < 5; k++)
        CHECK(propose_sync(l, 100));
    CHECK(propose_sync(l, 7)); /* a tail after the last snapshot */
    CHECK_CONVERGED(5000);
    uint64_t count = nodes[l].count, hash = nodes[l].hash;
    CHECK_EQ(count, 507);
    for (int i = 0; i < 3; i++) {
        wr_rgroup_info_t info;
        wr_rgroup_info(nodes[i].g, &info);
        CHECK(info.snapshots > 0);
    }
    for (int i = 0; i < 3; i++)
        CHECK(close_group(i));
    for (int i = 0; i < 3; i++) {
        CHECK(count_snapshots(nodes[i].dir) > 0);
        reset_sm(i);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(open_group(i, GID, all, 3), 0);
        /* raft_start restored the snapshot inside open. */
        CHECK_EQ(nodes[i].restores, 1);
        CHECK(nodes[i].count > 0 && nodes[i].count <= count);
    }
    CHECK(wait_for(have_leader, 8000));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[agreed_leader()].count, count);
    CHECK_EQ(nodes[agreed_leader()].hash, hash);
    CHECK(propose_sync(agreed_leader(), 10));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[0].count, count + 10);
    CHECK(no_bad_index());
}

static void test_rgroup_restart_restores(void)
{
    setup();
    body_restart();
    teardown();
}

static int op_done, op_status;
static void on_op(void *ud, int status)
{
    (void)ud;
    op_done = 1;
    op_status = status;
}
static int op_pred(void)
{
    return op_done;
}

static int leader_is_4(void)
{
    return agreed_leader() == 3;
}

/* A fourth node joins (spare -> standby -> voter), takes leadership by
 * transfer, and a member is removed. */
static void body_membership(void)
{
    /* Small enough that the new member must be sent a snapshot. */
    opts.snapshot_threshold = 32;
    opts.snapshot_trailing = 8;
    CHECK(start_cluster3());
    int l = agreed_leader();
    CHECK(propose_sync(l, 50));
    CHECK_EQ(start_net(3, secret, sizeof secret), 0);
    CHECK_EQ(open_group(3, GID, NULL, 0), 0);
    CHECK_EQ(wr_rgroup_add(nodes[(l + 1) % 3].g, 4, wr_rnet_addr(nodes[3].net), on_op, NULL),
             WR_EAGAIN); /* not the leader */
    op_done = 0;
    CHECK_EQ(wr_rgroup_add(nodes[l].g, 4, wr_rnet_addr(nodes[3].net), on_op, NULL), 0);
    CHECK(wait_for(op_pred, 10000));
    CHECK_EQ(op_status, 0);
    wr_rgroup_info_t info;
    wr_rgroup_info(nodes[l].g, &info);
    CHECK_EQ(info.voters, 4);
    CHECK(propose_sync(l, 10));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[3].count, 60);
    CHECK(nodes[3].restores > 0); /* caught up by InstallSnapshot */

    op_done = 0;
    CHECK_EQ(wr_rgroup_transfer(nodes[l].g, 4, on_op, NULL), 0);
    CHECK(wait_for(op_pred, 5000));
    CHECK_EQ(op_status, 0);
    CHECK(wait_for(leader_is_4, 5000));

    /* Remove node 1 (index 0) through the new leader; it is not told, so
     * its group is closed here, as its owner would. */
    op_done = 0;
    CHECK_EQ(wr_rgroup_remove(nodes[3].g, 1, on_op, NULL), 0);
    CHECK(wait_for(op_pred, 5000));
    CHECK_EQ(op_status, 0);
    wr_rgroup_info(nodes[3].g, &info);
    CHECK_EQ(info.voters, 3);
    CHECK(close_group(0));
    CHECK(propose_sync(3, 10));
    CHECK_CONVERGED(5000);
    CHECK_EQ(nodes[1].count, 70);
    CHECK_EQ(nodes[3].count, 70);
    CHECK(no_bad_index());
}

static void test_rgroup_membership(void)
{
    setup();
    body_membership();
    teardown();
}

WR_SUITE(rgroup)
{
    RUN(test_rnet_auth_and_unknown_group);
    RUN(test_rgroup_replicate_in_order);
    RUN(test_rgroup_no_quorum_fails_tickets);
    RUN(test_rgroup_leader_failover);
    RUN(test_rgroup_restart_restores);
    RUN(test_rgroup_membership);
}
