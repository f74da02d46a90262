/*
 * quorum.c - quorum queues on a Raft group (see quorum.h for the commands
 * and who carries out which effect).
 *
 * Proposals and tickets.  Commands are proposed to the queue's group; a
 * member that is not the ready leader (a group still electing itself at
 * start, or later a leader change) keeps them in order in `backlog` and
 * proposes them once it leads.  So that a confirm can wait before the
 * group's own ticket exists, the queue has its own durability domain
 * (qq->durable) with its own tickets: each proposal gets one at once, and
 * the pair (own ticket, group ticket) is remembered until the group's
 * domain says that group ticket is durable or lost, which moves ours.
 *
 *   propose --(no leader)--> backlog --(leader ready)--> group ticket
 *      '-----(leader)--------------------------------------^   |
 *                                       group domain synced/failed
 *                                                  v
 *                                 qq->durable synced/failed (confirms)
 *
 * Payloads: every member keeps each message in memory (entry.msg, one
 * reference held by the state machine); a channel that is handed a
 * delivery gets its own reference (or a copy with x-delivery-count).
 */
#include "broker/quorum.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "admin/info.h"
#include "broker/cluster.h"
#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/qdlx.h"
#include "broker/qfifo.h"
#include "broker/stats.h"
#include "broker/vhost.h"
#include "cluster/rgroup.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

enum {
    CMD_ENQUEUE = 1,
    CMD_ATTACH,
    CMD_DETACH,
    CMD_SETTLE,
    CMD_RETURN,
    CMD_DISCARD,
    CMD_GET,
    CMD_TICK,
    CMD_PURGE,
    CMD_LIMITS,
    CMD_RETURN_ALL,
    CMD_DLX_SETTLE
};

/* The most commands kept while there is no leader. */
#define BACKLOG_MAX 100000

/* RabbitMQ 4's default x-delivery-limit for quorum queues. */
#define DEFAULT_DELIVERY_LIMIT 20

typedef struct ticket_pair {
    uint64_t own, group;
    uint8_t forwarded; /* sent to another member, the leader */
    int8_t remote;     /* its answer: 0 pending, 1 committed, -1 failed */
} ticket_pair_t;

/* A command another member forwarded to this one, the leader. */
typedef struct forwarded {
    uint64_t from, req, group;
} forwarded_t;

/* A command forwarded to this node before it could take it: its queue not
 * declared here yet (the metadata group is still applying), or this
 * member elected but not ready.  Kept in arrival order for a while. */
typedef struct early {
    struct early *next;
    uint64_t gid, from, req;
    int64_t deadline;
    size_t n;
    uint8_t p[];
} early_t;

#define EARLY_MS 5000

typedef struct pending_get {
    uint64_t gid;
    wr_channel_t *ch;
    wr_queue_t *q;
    uint64_t own; /* the GET command's own ticket: if it fails, get-empty */
    uint8_t no_ack;
} pending_get_t;

struct dlx_pub;

typedef struct wr_quorum {
    wr_queue_t *q;
    wr_rgroup_t *g;
    wr_qfifo_t fifo;
    char *dir;
    uint8_t leader; /* the ready leader */
    uint8_t closing;
    uint8_t remove_data;
    uint8_t reaped; /* stale holders of earlier runs released */
    /* Dead-lettering done here up to this log index (kept in a file in
     * the group's directory, written without fsync: after a crash an
     * entry's dead-lettering may happen twice, never zero times). */
    uint64_t fx_done, applying;
    int fx_fd;
    /* As leader: enqueues proposed and not applied yet (reject-publish). */
    size_t infl_n;
    uint64_t infl_bytes;
    uint64_t leader_id;

    /* Own tickets (see above). */
    wr_durable_t durable;
    wr_durable_waiter_t on_group; /* waits on the group's domain */
    uint64_t next_ticket;
    ticket_pair_t *pairs; /* proposed, unresolved, in order */
    size_t pairs_head, pairs_n, pairs_cap;
    forwarded_t *fw; /* forwarded to us, unresolved, in order */
    size_t fw_head, fw_n, fw_cap;
    uint64_t gid;
    struct wr_quorum *next_open; /* all open quorum queues (by group id) */
    wr_buf_t backlog;            /* [u64 own ticket][u32 len][command] ... */
    size_t backlog_n;

    uv_timer_t *timer; /* the leader's TICK timer */
    /* Declared here by a client, and this member should lead (queue_
     * leader_locator): its first election timeout is short, so that it
     * is the first candidate; set until a leader is known. */
    uint64_t place_at;
    unsigned election_ms; /* the group's usual election timeout */

    /* At-least-once dead-lettering (qdlx.h).  Replicated: alo, the
     * strategy as the log last set it, and the kept messages.  The
     * leader's alone: its publishes awaiting the targets' confirms, the
     * ids confirmed and not yet proposed settled, its timer. */
    wr_qdlx_t dlx;
    uint8_t alo;
    uint8_t dlx_warned;
    struct dlx_pub *pubs;
    size_t n_pubs;
    uint64_t *dlx_done;
    size_t n_done, cap_done;
    uv_timer_t *dlx_timer;
    int64_t dlx_retry_at;
} wr_quorum_t;

static struct {
    early_t *early, *early_tail; /* see early_t, all queues, in order */
    uv_timer_t *early_timer;
    wr_quorum_t *open_list; /* every open quorum queue */
    size_t open, closing;
    uint64_t next_cid;
    uint16_t epoch; /* this run of the process (random) */
    pending_get_t *gets;
    size_t n_gets, cap_gets;
    struct admin_req *admins; /* membership changes asked for here */
    uint64_t next_admin;
    uv_timer_t *admin_timer;
} node;

void wr_quorum_shutdown(void)
{
    if (node.open == 0 && node.closing == 0)
        wr_cluster_stop();
}

size_t wr_quorum_closing(void)
{
    return node.closing;
}

/* ---- commands: encoding ---- */

static void put_u64(wr_buf_t *b, uint64_t v)
{
    uint8_t x[8];
    wr_set_u64(x, v);
    wr_buf_put(b, x, 8);
}

static void put_u32(wr_buf_t *b, uint32_t v)
{
    uint8_t x[4];
    wr_set_u32(x, v);
    wr_buf_put(b, x, 4);
}

static void cmd_begin(wr_buf_t *b, int op)
{
    wr_buf_init(b);
    wr_buf_put_u8(b, (uint8_t)op);
    put_u64(b, (uint64_t)wr_now_ms());
}

/* A reader over a command or snapshot; any short read sets bad. */
typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
} rd_t;

static const uint8_t *take(rd_t *r, size_t k)
{
    if (r->bad || k > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += k;
    return p;
}

static uint64_t get_u64(rd_t *r)
{
    const uint8_t *p = take(r, 8);
    return p ? wr_get_u64(p) : 0;
}

static uint32_t get_u32(rd_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? wr_get_u32(p) : 0;
}

static uint8_t get_u8(rd_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

/* A message as ENQUEUE and snapshots carry it. */
static void put_msg(wr_buf_t *b, const wr_msg_t *m)
{
    wr_bytes_t x = wr_msg_exchange(m), rk = wr_msg_routing_key(m), pr = wr_msg_props(m);
    wr_buf_put_u8(b, m->persistent);
    wr_buf_put_u8(b, m->priority);
    put_u64(b, (uint64_t)m->ttl);
    wr_buf_put_u8(b, (uint8_t)x.n);
    wr_buf_put(b, x.p, x.n);
    wr_buf_put_u8(b, (uint8_t)rk.n);
    wr_buf_put(b, rk.p, rk.n);
    put_u32(b, (uint32_t)pr.n);
    wr_buf_put(b, pr.p, pr.n);
    put_u64(b, m->body_len);
    wr_buf_put(b, m->body, m->body_len);
}

static wr_msg_t *get_msg(rd_t *r)
{
    uint8_t persistent = get_u8(r), priority = get_u8(r);
    int64_t ttl = (int64_t)get_u64(r);
    uint8_t xn = get_u8(r);
    const uint8_t *x = take(r, xn);
    uint8_t rkn = get_u8(r);
    const uint8_t *rk = take(r, rkn);
    uint32_t pn = get_u32(r);
    const uint8_t *pr = take(r, pn);
    uint64_t bn = get_u64(r);
    const uint8_t *body = take(r, bn);
    if (r->bad)
        return NULL;
    wr_msg_t *m = wr_msg_new((wr_bytes_t){x, xn}, (wr_bytes_t){rk, rkn}, (wr_bytes_t){pr, pn}, bn);
    wr_msg_append_body(m, body, bn);
    m->persistent = persistent;
    m->priority = priority;
    m->ttl = ttl;
    return m;
}

/* The body size an ENQUEUE command carries, or -1 if p is not one. */
static int64_t enqueue_size(const uint8_t *p, size_t n)
{
    rd_t r = {p, n, 0, 0};
    if (get_u8(&r) != CMD_ENQUEUE)
        return -1;
    get_u64(&r); /* time */
    take(&r, 1 + 1 + 8);
    take(&r, get_u8(&r));
    take(&r, get_u8(&r));
    take(&r, get_u32(&r));
    uint64_t bn = get_u64(&r);
    return r.bad ? -1 : (int64_t)bn;
}

/* x-overflow reject-publish, decided by the leader when it proposes: the
 * queue as its replica has it plus the enqueues proposed and not yet
 * applied would be over a limit (RabbitMQ's leader rejects the same way). */
static int leader_refuses(wr_quorum_t *qq, int64_t size)
{
    if (qq->q == NULL)
        return 0;
    const wr_queue_args_t *a = &qq->q->args;
    if (size < 0 || a->overflow != WR_OVERFLOW_REJECT_PUBLISH)
        return 0;
    /* Over the limit already (RabbitMQ lets the message that reaches it
     * in: max-length 2 takes a third publish, refuses the fourth). */
    /* Dead letters kept for at-least-once count too (as in rabbit_fifo). */
    size_t n = wr_qfifo_ready(&qq->fifo) + qq->infl_n + qq->dlx.live;
    uint64_t bytes = qq->fifo.sm.ready_bytes + qq->infl_bytes + qq->dlx.bytes;
    return (a->max_length >= 0 && (int64_t)n > a->max_length) ||
           (a->max_length_bytes >= 0 && (int64_t)bytes > a->max_length_bytes);
}

static void inflight_add(wr_quorum_t *qq, int64_t size)
{
    if (size >= 0) {
        qq->infl_n++;
        qq->infl_bytes += (uint64_t)size;
    }
}

/* ---- tickets ---- */

/* What an own ticket waits for: a ticket of the group (proposed here, the
 * leader), or the answer of the leader it was forwarded to (remote: 0
 * pending, 1 committed, -1 failed). */
static void pairs_push(wr_quorum_t *qq, uint64_t own, uint64_t group, int forwarded)
{
    if (qq->pairs_n == qq->pairs_cap) {
        size_t cap = qq->pairs_cap ? qq->pairs_cap * 2 : 64;
        ticket_pair_t *v = wr_xmalloc(cap * sizeof *v);
        for (size_t i = 0; i < qq->pairs_n; i++)
            v[i] = qq->pairs[(qq->pairs_head + i) % qq->pairs_cap];
        free(qq->pairs);
        qq->pairs = v;
        qq->pairs_cap = cap;
        qq->pairs_head = 0;
    }
    qq->pairs[(qq->pairs_head + qq->pairs_n++) % qq->pairs_cap] =
        (ticket_pair_t){own, group, (uint8_t)(forwarded != 0), 0};
}

static int pair_state(wr_quorum_t *qq, const ticket_pair_t *p)
{
    return p->forwarded ? p->remote : wr_durable_state(wr_rgroup_durable(qq->g), p->group);
}

static void fail_lost_gets(wr_quorum_t *qq);

/* Moves our domain over every pair at the front that is decided, in
 * order; a run of the same outcome is one update (updates must come in
 * ticket order). */
static void resolve_pairs(wr_quorum_t *qq)
{
    int run = 0;
    uint64_t run_end = 0;
    while (qq->pairs_n) {
        ticket_pair_t *p = &qq->pairs[qq->pairs_head];
        int st = pair_state(qq, p);
        if (st == 0)
            break;
        if (run && st != run) {
            if (run > 0)
                wr_durable_update(&qq->durable, run_end, qq->durable.failed);
            else
                wr_durable_update(&qq->durable, qq->durable.synced, run_end);
        }
        run = st;
        run_end = p->own;
        qq->pairs_head = (qq->pairs_head + 1) % qq->pairs_cap;
        qq->pairs_n--;
    }
    if (run > 0)
        wr_durable_update(&qq->durable, run_end, qq->durable.failed);
    else if (run < 0)
        wr_durable_update(&qq->durable, qq->durable.synced, run_end);
    if (run < 0 && node.n_gets && qq->q)
        fail_lost_gets(qq);
}

static void answer_forwarded(wr_quorum_t *qq);

/* Gets whose command was lost (a leader change, a dropped link) will never
 * be answered by the log: they are answered empty now. */
static void fail_lost_gets(wr_quorum_t *qq)
{
    for (size_t i = 0; i < node.n_gets;) {
        pending_get_t *g = &node.gets[i];
        if (g->q == qq->q && wr_durable_state(&qq->durable, g->own) < 0) {
            pending_get_t x = *g;
            node.gets[i] = node.gets[--node.n_gets];
            wr_channel_get_answer(x.ch, x.q, NULL, x.no_ack);
            wr_queue_unref(x.q);
            continue;
        }
        i++;
    }
}

/* The group's domain advanced: resolve what waited for it, here and for
 * the members that forwarded commands to us. */
static int group_advanced(wr_durable_waiter_t *w)
{
    wr_quorum_t *qq = (wr_quorum_t *)((char *)w - offsetof(wr_quorum_t, on_group));
    resolve_pairs(qq);
    answer_forwarded(qq);
    int waiting = qq->fw_n > 0;
    for (size_t i = 0; i < qq->pairs_n && !waiting; i++)
        waiting = !qq->pairs[(qq->pairs_head + i) % qq->pairs_cap].forwarded;
    if (!waiting)
        wr_durable_unwait(w);
    return 0;
}

/* Hands one command to the group; returns the group's ticket, or 0 if
 * this member is not the ready leader. */
static uint64_t group_propose(wr_quorum_t *qq, const uint8_t *p, size_t n)
{
    uint64_t t = wr_rgroup_propose(qq->g, p, n);
    if (t)
        wr_durable_wait(wr_rgroup_durable(qq->g), &qq->on_group);
    return t;
}

/* Sends one command to the leader we know of; 0 if it cannot be sent. */
static int forward(wr_quorum_t *qq, uint64_t own, const uint8_t *p, size_t n)
{
    if (qq->leader_id == 0 || qq->leader_id == wr_cluster_self_id())
        return 0;
    wr_buf_t m;
    wr_buf_init(&m);
    put_u64(&m, qq->gid);
    put_u64(&m, own);
    wr_buf_put(&m, p, n);
    int r = wr_cluster_send(qq->leader_id, WR_CLUSTER_QQ_PROPOSE, m.p, m.len);
    wr_buf_free(&m);
    return r == 0;
}

/* Gets one command with its own ticket to the leader: proposed here when
 * this member leads, forwarded when another does.  0 if neither. */
static int propose_now(wr_quorum_t *qq, uint64_t own, const uint8_t *p, size_t n)
{
    if (qq->leader) {
        int64_t size = enqueue_size(p, n);
        if (leader_refuses(qq, size)) {
            /* Refused: its ticket fails (the publisher gets a nack). */
            pairs_push(qq, own, 0, 1);
            qq->pairs[(qq->pairs_head + qq->pairs_n - 1) % qq->pairs_cap].remote = -1;
            resolve_pairs(qq);
            return 1;
        }
        uint64_t t = group_propose(qq, p, n);
        if (t) {
            inflight_add(qq, size);
            pairs_push(qq, own, t, 0);
            return 1;
        }
        qq->leader = 0;
        return 0;
    }
    if (forward(qq, own, p, n)) {
        pairs_push(qq, own, 0, 1);
        return 1;
    }
    return 0;
}

/* Proposes a command (b is consumed); returns its own ticket, or 0 if it
 * could not even be kept. */
static uint64_t propose(wr_quorum_t *qq, wr_buf_t *b)
{
    uint64_t own = 0;
    if (qq->closing)
        goto out;
    if (qq->backlog_n == 0) {
        own = ++qq->next_ticket;
        if (propose_now(qq, own, b->p, b->len))
            goto out;
        goto keep; /* no leader reachable now: keep it for the next one */
    }
    if (qq->backlog_n >= BACKLOG_MAX)
        goto out;
    own = ++qq->next_ticket;
keep:
    put_u64(&qq->backlog, own);
    put_u32(&qq->backlog, (uint32_t)b->len);
    wr_buf_put(&qq->backlog, b->p, b->len);
    qq->backlog_n++;
out:
    wr_buf_free(b);
    return own;
}

static void flush_backlog(wr_quorum_t *qq)
{
    size_t off = 0;
    while (qq->backlog_n) {
        uint64_t own = wr_get_u64(qq->backlog.p + off);
        uint32_t n = wr_get_u32(qq->backlog.p + off + 8);
        if (!propose_now(qq, own, qq->backlog.p + off + 12, n))
            break;
        off += 12 + n;
        qq->backlog_n--;
    }
    wr_buf_consume(&qq->backlog, off);
}

/* Commands forwarded to us, as leader: answered once the group decides
 * their ticket. */
static void fw_push(wr_quorum_t *qq, uint64_t from, uint64_t req, uint64_t group)
{
    if (qq->fw_n == qq->fw_cap) {
        size_t cap = qq->fw_cap ? qq->fw_cap * 2 : 64;
        forwarded_t *v = wr_xmalloc(cap * sizeof *v);
        for (size_t i = 0; i < qq->fw_n; i++)
            v[i] = qq->fw[(qq->fw_head + i) % qq->fw_cap];
        free(qq->fw);
        qq->fw = v;
        qq->fw_cap = cap;
        qq->fw_head = 0;
    }
    qq->fw[(qq->fw_head + qq->fw_n++) % qq->fw_cap] = (forwarded_t){from, req, group};
}

static void send_result(wr_quorum_t *qq, uint64_t to, uint64_t req, int ok)
{
    uint8_t m[17];
    wr_set_u64(m, qq->gid);
    wr_set_u64(m + 8, req);
    m[16] = (uint8_t)(ok > 0);
    (void)wr_cluster_send(to, WR_CLUSTER_QQ_RESULT, m, sizeof m);
}

static void answer_forwarded(wr_quorum_t *qq)
{
    wr_durable_t *gd = wr_rgroup_durable(qq->g);
    while (qq->fw_n) {
        forwarded_t *f = &qq->fw[qq->fw_head];
        int st = wr_durable_state(gd, f->group);
        if (st == 0)
            break;
        send_result(qq, f->from, f->req, st);
        qq->fw_head = (qq->fw_head + 1) % qq->fw_cap;
        qq->fw_n--;
    }
}

/* Forwarded commands whose answer will not come (the leader changed, or
 * the link to it dropped) are failed: a publisher's confirm is a nack. */
static void fail_forwarded(wr_quorum_t *qq)
{
    for (size_t i = 0; i < qq->pairs_n; i++) {
        ticket_pair_t *p = &qq->pairs[(qq->pairs_head + i) % qq->pairs_cap];
        if (p->forwarded && p->remote == 0)
            p->remote = -1;
    }
    resolve_pairs(qq);
}

/* ---- consumers' and getters' ids ---- */

/* A consumer's (or getter's) id in the replicated state: the node, this
 * run of it, and a counter, so that ids of a run that ended (a crash, a
 * restart) are never reused and can be recognised as stale:
 *
 *   consumer  0 | node:15 | epoch:16 | counter:32
 *   getter    1 | node:15 | epoch:16 | counter:32
 */
static uint64_t holder_id(int getter)
{
    if (node.epoch == 0) {
        uint8_t r[2] = {0, 0};
        RAND_bytes(r, sizeof r);
        node.epoch = (uint16_t)(((r[0] << 8) | r[1]) | 1);
    }
    return ((uint64_t)(getter != 0) << 63) | ((wr_cluster_self_id() & 0x7fff) << 48) |
           ((uint64_t)node.epoch << 32) | (++node.next_cid & 0xffffffff);
}

/* Is holder an id of this run of this node? */
static int here_now(uint64_t holder)
{
    return ((holder >> 48) & 0x7fff) == (wr_cluster_self_id() & 0x7fff) &&
           ((holder >> 32) & 0xffff) == node.epoch;
}

/* Is holder an id of this node from an earlier run? */
static int stale_here(uint64_t holder)
{
    return ((holder >> 48) & 0x7fff) == (wr_cluster_self_id() & 0x7fff) &&
           ((holder >> 32) & 0xffff) != node.epoch;
}

/* Proposes a command with one u64 argument (DETACH), in order. */
static void propose_u64(wr_quorum_t *qq, int op, uint64_t v)
{
    wr_buf_t b;
    cmd_begin(&b, op);
    put_u64(&b, v);
    propose(qq, &b);
}

/* Proposes a release (DETACH or RETURN_ALL of a holder that is gone)
 * ahead of the backlog: commands kept while there was no leader (a
 * reconnected client's ATTACH and publishes) would otherwise be applied
 * first, and the publishes dispatched to the consumer that is gone, held
 * by it for good.  Nobody waits for a release, so it takes no ticket (a
 * forwarded one is sent with request 0, whose answer matches nothing). */
static void propose_release(wr_quorum_t *qq, int op, uint64_t v)
{
    wr_buf_t b;
    cmd_begin(&b, op);
    put_u64(&b, v);
    if (!qq->closing && ((qq->leader && group_propose(qq, b.p, b.len)) ||
                         (!qq->leader && forward(qq, 0, b.p, b.len)))) {
        wr_buf_free(&b);
        return;
    }
    propose(qq, &b); /* no leader reachable: in order with the rest */
}

/* Detaches the consumers and returns what the holders (consumers and
 * getters) hold whose id match() accepts. */
static void release_holders(wr_quorum_t *qq, int (*match)(uint64_t holder, uint64_t arg),
                            uint64_t arg)
{
    wr_qfifo_t *f = &qq->fifo;
    for (size_t i = 0; i < f->n_cons; i++)
        if (match(f->cons[i].cid, arg))
            propose_release(qq, CMD_DETACH, f->cons[i].cid);
    /* Holders of checked-out entries, each once (the table is small
     * compared to the queue: at most the sum of prefetches). */
    uint64_t *seen = NULL;
    size_t n_seen = 0;
    for (size_t i = 0; i < f->out_cap; i++) {
        if (!f->used[i] || !match(f->out[i].cid, arg))
            continue;
        uint64_t h = f->out[i].cid;
        int dup = 0;
        for (size_t k = 0; k < n_seen && !dup; k++)
            dup = seen[k] == h;
        if (dup)
            continue;
        seen = wr_xrealloc(seen, (n_seen + 1) * sizeof *seen);
        seen[n_seen++] = h;
        propose_release(qq, CMD_RETURN_ALL, h);
    }
    free(seen);
}

static int stale_match(uint64_t holder, uint64_t arg)
{
    (void)arg;
    return stale_here(holder);
}

/* After a restart (a crash included) the replicated state still has this
 * node's consumers and gets of the previous run, holding messages nobody
 * will settle: detach them and return what they hold, as RabbitMQ does
 * when a consumer's channel goes down. */
static void reap_stale(wr_quorum_t *qq)
{
    release_holders(qq, stale_match, 0);
}

static int node_match(uint64_t holder, uint64_t prefix)
{
    return ((holder >> 48) & 0x7fff) == prefix;
}

/* The leader releases what the consumers and gets of a node that went
 * down hold, as RabbitMQ returns a consumer's messages when its node goes:
 * otherwise they stay checked out until that node comes back (or forever). */
static void release_node(wr_quorum_t *qq, uint64_t node_id)
{
    release_holders(qq, node_match, node_id & 0x7fff);
}

/* Proposes ATTACH for local consumer c (its prefetch is its credit). */
static void propose_attach(wr_quorum_t *qq, const wr_consumer_t *c)
{
    wr_buf_t b;
    cmd_begin(&b, CMD_ATTACH);
    put_u64(&b, c->cid);
    put_u32(&b, c->no_ack ? 0 : c->prefetch);
    put_u32(&b, (uint32_t)c->priority);
    wr_buf_put_u8(&b, c->no_ack);
    propose(qq, &b);
}

/* ---- dead-lettering done ---- */

static void fx_done_set(wr_quorum_t *qq, uint64_t index)
{
    qq->fx_done = index;
    if (qq->fx_fd >= 0) {
        uint8_t b[8];
        wr_set_u64(b, index);
        if (pwrite(qq->fx_fd, b, 8, 0) != 8)
            wr_warn("quorum queue: cannot record dead-lettering progress: %s", strerror(errno));
    }
}

static void fx_done_open(wr_quorum_t *qq)
{
    char path[4200];
    /* Inside the group's directory, whose files raft_uv names its own way
     * (it ignores others). */
    snprintf(path, sizeof path, "%s/warren-effects", qq->dir);
    qq->fx_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    uint8_t b[8];
    if (qq->fx_fd >= 0 && pread(qq->fx_fd, b, 8, 0) == 8)
        qq->fx_done = wr_get_u64(b);
}

/* ---- at-least-once dead-lettering: the leader's worker ----
 *
 * With x-dead-letter-strategy at-least-once (and a dead-letter exchange,
 * and x-overflow reject-publish, as RabbitMQ requires; otherwise it is
 * at-most-once), a dead-lettered message stays in the queue's state
 * (qq->dlx, on every member) until the leader has published it through
 * the dead-letter exchange and every target queue confirmed it; then a
 * DLX_SETTLE command removes it everywhere.  At most
 * dead_letter_worker_consumer_prefetch messages are awaiting confirms at
 * a time.  A message that routes nowhere (no such exchange, no binding)
 * or that a target refuses is tried again after
 * dead_letter_worker_publisher_confirm_timeout (RabbitMQ's settings and
 * defaults, 32 and 3 min); one whose confirm fails (a target's leader
 * changed) after a second.  A new leader publishes every kept message
 * again: a target may get one twice, never none. */

typedef struct dlx_pub {
    wr_durable_waiter_t w; /* first: the waiter is the publish */
    struct dlx_pub *next;
    wr_quorum_t *qq;
    uint64_t id;
    wr_waits_t waits;
} dlx_pub_t;

static wr_lost_range_t dlx_lost_range = {0, UINT64_MAX};
/* Where a wait on a domain that went without deciding it moves. */
static wr_durable_t dlx_lost = {0, UINT64_MAX, &dlx_lost_range, 1, 1, NULL};

static void dlx_timer_cb(uv_timer_t *t);
static void release(wr_qent_t *e);

/* The strategy a queue's arguments (and policies) ask for. */
static int alo_of(const wr_queue_args_t *a)
{
    return a->dl_at_least_once && a->dlx != NULL && a->overflow == WR_OVERFLOW_REJECT_PUBLISH;
}

static void dlx_arm(wr_quorum_t *qq, uint64_t after_ms)
{
    if (!qq->leader || qq->closing)
        return;
    if (qq->dlx_timer == NULL) {
        qq->dlx_timer = wr_xmalloc(sizeof *qq->dlx_timer);
        uv_timer_init(wr_loop, qq->dlx_timer);
        qq->dlx_timer->data = qq;
    }
    uv_timer_start(qq->dlx_timer, dlx_timer_cb, after_ms, 0);
}

/* Runs the worker on the next loop pass (never inside an apply or a
 * domain's walk of its waiters). */
static void dlx_kick(wr_quorum_t *qq)
{
    if (qq->alo && qq->leader)
        dlx_arm(qq, 0);
}

static void dlx_retry_in(wr_quorum_t *qq, int64_t ms)
{
    int64_t at = wr_now_ms() + ms;
    if (qq->dlx_retry_at == 0 || at < qq->dlx_retry_at)
        qq->dlx_retry_at = at;
}

static void dlx_done_add(wr_quorum_t *qq, uint64_t id)
{
    if (qq->n_done == qq->cap_done) {
        qq->cap_done = qq->cap_done ? qq->cap_done * 2 : 16;
        qq->dlx_done = wr_xrealloc(qq->dlx_done, qq->cap_done * sizeof *qq->dlx_done);
    }
    qq->dlx_done[qq->n_done++] = id;
}

static void dlx_pub_unlink(wr_quorum_t *qq, dlx_pub_t *p)
{
    for (dlx_pub_t **pp = &qq->pubs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            qq->n_pubs--;
            break;
        }
    }
    wr_durable_unwait(&p->w);
    wr_waits_free(&p->waits);
    free(p);
}

/* 1 if every target confirmed, -1 if one failed, 0 while one is pending
 * (then p waits on that one's domain). */
static int dlx_pub_state(dlx_pub_t *p)
{
    for (size_t i = 0; i < p->waits.n; i++) {
        wr_wait_t *w = &p->waits.v[i];
        if (w->d == NULL)
            continue;
        int st = wr_durable_state(w->d, w->ticket);
        if (st < 0)
            return -1;
        if (st == 0) {
            wr_durable_wait(w->d, &p->w);
            return 0;
        }
    }
    return 1;
}

static int dlx_pub_wake(wr_durable_waiter_t *w)
{
    dlx_pub_t *p = (dlx_pub_t *)w;
    wr_quorum_t *qq = p->qq;
    int st = dlx_pub_state(p);
    if (st == 0)
        return 0;
    if (st > 0) {
        dlx_done_add(qq, p->id);
    } else {
        wr_qdlx_ent_t *x = wr_qdlx_find(&qq->dlx, p->id);
        if (x)
            x->state = WR_QDLX_RETRY;
        dlx_retry_in(qq, 1000);
    }
    dlx_pub_unlink(qq, p);
    dlx_kick(qq);
    return 0;
}

/* The leader stops (it lost leadership, the strategy changed, the queue
 * closes): what it published and did not settle is published again by
 * the next leader. */
static void dlx_stop(wr_quorum_t *qq)
{
    while (qq->pubs)
        dlx_pub_unlink(qq, qq->pubs);
    qq->n_done = 0;
    qq->dlx_retry_at = 0;
    if (qq->dlx_timer)
        uv_timer_stop(qq->dlx_timer);
    wr_qdlx_reset(&qq->dlx, 0);
}

/* Domain d goes away (a target quorum queue closes): publishes that wait
 * on it are decided now. */
static void dlx_forget_domain(wr_durable_t *d)
{
    for (wr_quorum_t *qq = node.open_list; qq; qq = qq->next_open) {
        for (dlx_pub_t *p = qq->pubs, *next; p; p = next) {
            next = p->next;
            int touched = 0;
            for (size_t i = 0; i < p->waits.n; i++) {
                if (p->waits.v[i].d != d)
                    continue;
                p->waits.v[i].d = wr_durable_state(d, p->waits.v[i].ticket) == 1 ? NULL : &dlx_lost;
                touched = 1;
            }
            if (p->w.on == d)
                wr_durable_unwait(&p->w);
            if (touched)
                dlx_pub_wake(&p->w);
        }
    }
}

static void dlx_flush(wr_quorum_t *qq)
{
    if (qq->n_done == 0)
        return;
    wr_buf_t b;
    cmd_begin(&b, CMD_DLX_SETTLE);
    put_u32(&b, (uint32_t)qq->n_done);
    for (size_t i = 0; i < qq->n_done; i++)
        put_u64(&b, qq->dlx_done[i]);
    qq->n_done = 0;
    propose(qq, &b);
}

static size_t dlx_prefetch(void)
{
    return wr_broker.cfg && wr_broker.cfg->dlx_prefetch ? wr_broker.cfg->dlx_prefetch : 32;
}

static int64_t dlx_retry_ms(void)
{
    return wr_broker.cfg && wr_broker.cfg->dlx_retry_ms ? (int64_t)wr_broker.cfg->dlx_retry_ms
                                                        : 180000;
}

/* Publishes kept messages while fewer than the prefetch await confirms. */
static void dlx_pump(wr_quorum_t *qq)
{
    wr_queue_t *q = qq->q;
    while (qq->n_pubs < dlx_prefetch()) {
        wr_qdlx_ent_t *x = wr_qdlx_next_ready(&qq->dlx);
        if (x == NULL)
            break;
        uint64_t id = x->id;
        const char *reason = wr_qsm_reason_name(x->reason);
        x->state = WR_QDLX_SENT;
        dlx_pub_t *p = wr_xcalloc(1, sizeof *p);
        p->qq = qq;
        p->id = id;
        p->w.wake = dlx_pub_wake;
        wr_waits_init(&p->waits);
        wr_msg_ref(x->e.msg);
        /* Pushing proposes to target groups (this one's too, for a
         * rejected message routed back to it): x may move, find it again. */
        int res = wr_queue_dead_letter_confirmed(q, x->e.msg, reason, &p->waits);
        x = wr_qdlx_find(&qq->dlx, id);
        if (res != WR_DLR_DONE) {
            if (res == WR_DLR_NO_ROUTE && !qq->dlx_warned) {
                qq->dlx_warned = 1;
                wr_warn("quorum queue '%s' in vhost '%s': cannot forward dead-lettered messages "
                        "through dead-letter exchange '%s' (no such exchange, or no queue bound "
                        "for the routing key); they are kept and retried every %lld ms",
                        q->name, q->vhost->name, q->args.dlx ? q->args.dlx : "",
                        (long long)dlx_retry_ms());
            }
            if (x)
                x->state = WR_QDLX_RETRY;
            dlx_retry_in(qq, dlx_retry_ms());
            wr_waits_free(&p->waits);
            free(p);
            continue;
        }
        p->next = qq->pubs;
        qq->pubs = p;
        qq->n_pubs++;
        if (dlx_pub_state(p) != 0) {
            /* Nothing to wait for (transient targets): settled now. */
            dlx_done_add(qq, id);
            dlx_pub_unlink(qq, p);
        }
    }
    dlx_flush(qq);
}

static void dlx_timer_cb(uv_timer_t *t)
{
    wr_quorum_t *qq = t->data;
    if (!qq->leader || qq->closing || !qq->alo || qq->q == NULL)
        return;
    int64_t now = wr_now_ms();
    if (qq->dlx_retry_at && now >= qq->dlx_retry_at) {
        qq->dlx_retry_at = 0;
        wr_qdlx_reset(&qq->dlx, 1);
    }
    dlx_pump(qq);
    if (qq->dlx_retry_at)
        dlx_arm(qq, (uint64_t)(qq->dlx_retry_at > now ? qq->dlx_retry_at - now : 0));
}

/* The strategy as the log sets it (at open, CMD_LIMITS): leaving
 * at-least-once drops what is kept, as RabbitMQ does. */
static void dlx_set_mode(wr_quorum_t *qq, int alo)
{
    if (qq->alo == alo)
        return;
    qq->alo = (uint8_t)alo;
    if (!alo) {
        dlx_stop(qq);
        wr_qdlx_free(&qq->dlx, release);
    }
}

/* ---- effects ---- */

static wr_consumer_t *local_consumer(wr_queue_t *q, uint64_t cid)
{
    for (wr_consumer_t *c = q->consumers; c; c = c->qnext)
        if (c->cid == cid)
            return c;
    return NULL;
}

/* A channel's own reference to an entry's message: x-delivery-count once
 * it was delivered before (RabbitMQ adds it from the first redelivery; a
 * basic.get always carries it). */
static wr_qent_t channel_copy(const wr_qent_t *e, int always_count)
{
    wr_qent_t d = *e;
    wr_msg_ref(d.msg);
    if (d.deliveries > 0 || always_count) {
        wr_field_t c = wr_field_long(d.deliveries);
        d.msg = wr_msg_set_header(d.msg, "x-delivery-count", &c);
    }
    return d;
}

static void release(wr_qent_t *e)
{
    if (e->msg)
        wr_msg_unref(e->msg);
    e->msg = NULL;
}

static void tick_cb(uv_timer_t *t);

static void set_timer(wr_quorum_t *qq, int64_t at)
{
    if (at == 0 || !qq->leader || qq->closing) {
        if (qq->timer)
            uv_timer_stop(qq->timer);
        return;
    }
    if (qq->timer == NULL) {
        qq->timer = wr_xmalloc(sizeof *qq->timer);
        uv_timer_init(wr_loop, qq->timer);
        qq->timer->data = qq;
    }
    int64_t wait = at - wr_now_ms();
    uv_timer_start(qq->timer, tick_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void answer_get(wr_quorum_t *qq, const wr_qfx_item_t *it)
{
    pending_get_t *pg = NULL;
    size_t i;
    for (i = 0; i < node.n_gets; i++) {
        if (node.gets[i].gid == it->to) {
            pg = &node.gets[i];
            break;
        }
    }
    wr_qent_t e = it->e;
    if (pg == NULL) {
        /* The getter's channel went: what it got goes back.  Only the
         * getter's own node (this run of it) knows that; on the other
         * members a getter is never pending (a leader that returned what a
         * follower's getter got made every basic.get through a follower
         * come back at once: a reject did not dead-letter, an ack was
         * lost and the message delivered again). */
        if (it->reason == 0 && here_now(it->to)) {
            wr_buf_t b;
            cmd_begin(&b, CMD_RETURN);
            put_u64(&b, it->to);
            put_u64(&b, e.seq);
            wr_buf_put_u8(&b, 0);
            propose(qq, &b);
        }
        if (it->reason == 2)
            release(&e);
        return;
    }
    pending_get_t g = *pg;
    node.gets[i] = node.gets[--node.n_gets];
    if (it->reason == 1) {
        wr_channel_get_answer(g.ch, g.q, NULL, g.no_ack);
    } else {
        wr_qent_t d = channel_copy(&e, 1);
        if (it->reason == 2)
            release(&e);
        wr_channel_get_answer(g.ch, g.q, &d, g.no_ack);
    }
    wr_queue_unref(g.q); /* the pending get's */
}

/* Carries out what applying a command decided (see quorum.h). */
static void run_fx(wr_quorum_t *qq, wr_qfx_t *fx)
{
    wr_queue_t *q = qq->q;
    q->refs++;
    for (size_t i = 0; i < fx->n; i++) {
        wr_qfx_item_t *it = &fx->v[i];
        switch (it->kind) {
        case WR_QFX_DELIVER: {
            wr_consumer_t *c = q->deleted ? NULL : local_consumer(q, it->to);
            if (c) {
                wr_qent_t d = channel_copy(&it->e, 0);
                if (!c->no_ack)
                    wr_queue_out(q, &d);
                c->ops->deliver(c, &d);
            }
            if (it->reason == 1) /* no-ack: it left the queue */
                release(&it->e);
            break;
        }
        case WR_QFX_GET:
            answer_get(qq, it);
            break;
        case WR_QFX_DEAD:
            /* Once per log entry on this node, even across restarts (the
             * entries a restarted node applies again are not dead-lettered
             * again): the leader routes to every target; another member
             * only to its own classic queues, which live on it alone (a
             * classic dead-letter queue declared on a follower's node gets
             * its copies from that node). */
            if (!q->deleted && qq->applying > qq->fx_done) {
                if (qq->leader)
                    wr_stats_dead_lettered(wr_qsm_reason_name(it->reason), q->args.dlx != NULL);
                /* At least once: the leader's worker publishes it. */
                if (q->args.dlx && !(qq->alo && qq->leader)) {
                    wr_msg_ref(it->e.msg);
                    wr_queue_dead_letter(q, it->e.msg, wr_qsm_reason_name(it->reason),
                                         qq->leader ? WR_DL_ALL : WR_DL_CLASSIC_ONLY);
                }
                fx_done_set(qq, qq->applying);
            }
            if (qq->alo && !q->deleted && it->e.msg) {
                /* Kept by every member, each time the entry is applied
                 * (it is state, rebuilt from the log after a restart). */
                wr_qdlx_add(&qq->dlx, &it->e, it->reason);
                it->e.msg = NULL;
                dlx_kick(qq);
                break;
            }
            release(&it->e);
            break;
        case WR_QFX_GONE:
            release(&it->e);
            break;
        case WR_QFX_TIMER:
            set_timer(qq, it->at);
            break;
        }
    }
    wr_qfx_free(fx);
    wr_queue_unref(q);
}

static void tick_cb(uv_timer_t *t)
{
    wr_quorum_t *qq = t->data;
    wr_buf_t b;
    cmd_begin(&b, CMD_TICK);
    propose(qq, &b);
}

/* ---- the state machine behind the group ---- */

/* The state machine's limits for a quorum queue.  With x-overflow
 * reject-publish the state machine itself takes every enqueue that
 * reaches the log (it has no limit); the leader refuses publishes while
 * the queue is over the limit (leader_refuses), so that a message one
 * leader accepted is never dropped on apply, as in rabbit_fifo. */
static wr_qsm_limits_t limits_of(const wr_queue_args_t *a)
{
    int reject = a->overflow == WR_OVERFLOW_REJECT_PUBLISH;
    wr_qsm_limits_t l = {a->message_ttl, reject ? -1 : a->max_length,
                         reject ? -1 : a->max_length_bytes,
                         /* negative: none; a policy's or the argument's
                          * value; an explicit 0; else RabbitMQ 4's 20 */
                         a->delivery_limit_none  ? -1
                         : a->delivery_limit > 0 ? a->delivery_limit
                         : a->delivery_limit_set ? 0
                                                 : DEFAULT_DELIVERY_LIMIT,
                         WR_OVERFLOW_DROP_HEAD, 0};
    return l;
}

static void apply_cb(void *ud, uint64_t index, const void *p, size_t n)
{
    wr_quorum_t *qq = ud;
    qq->applying = index;
    /* Closing: the queue is gone (deleted, or the broker is stopping) and
     * may not be touched; the log keeps the entry for the next start. */
    if (qq->closing)
        return;
    wr_qfifo_t *f = &qq->fifo;
    rd_t r = {p, n, 0, 0};
    int op = get_u8(&r);
    int64_t now = (int64_t)get_u64(&r);
    wr_debug("quorum queue '%s': apply %llu op %d (%zu bytes)%s", qq->q->name,
             (unsigned long long)index, op, n, qq->leader ? " as leader" : "");
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    switch (op) {
    case CMD_ENQUEUE: {
        wr_msg_t *m = get_msg(&r);
        if (m == NULL)
            break;
        wr_qent_t e = {m, 0, 0, {0, 0}, 0, (uint32_t)wr_msg_size(m)};
        if (qq->infl_n) {
            qq->infl_n--;
            qq->infl_bytes -= qq->infl_bytes < e.size ? qq->infl_bytes : e.size;
        }
        int res = wr_qfifo_enqueue(f, &e, m->ttl, m->priority, now, &fx);
        if (res == WR_QSM_REFUSED)
            wr_msg_unref(m);
        else
            qq->q->st.n[WR_ST_PUBLISH]++;
        break;
    }
    case CMD_ATTACH: {
        uint64_t cid = get_u64(&r);
        uint32_t prefetch = get_u32(&r);
        int32_t prio = (int32_t)get_u32(&r);
        int no_ack = get_u8(&r);
        if (!r.bad)
            wr_qfifo_attach(f, cid, prefetch, prio, no_ack, now, &fx);
        break;
    }
    case CMD_DETACH: {
        uint64_t cid = get_u64(&r);
        if (r.bad)
            break;
        wr_qfifo_detach(f, cid, now, &fx);
        /* Detached by the leader (its node was unreachable) while its
         * channel here still consumes: a consumer this node cancelled is
         * no longer listed, so this one attaches again. */
        wr_consumer_t *c = qq->q->deleted ? NULL : local_consumer(qq->q, cid);
        if (c && !qq->closing)
            propose_attach(qq, c);
        break;
    }
    case CMD_SETTLE:
    case CMD_RETURN:
    case CMD_DISCARD: {
        uint64_t cid = get_u64(&r), seq = get_u64(&r);
        int back = get_u8(&r);
        if (r.bad)
            break;
        if (op == CMD_SETTLE)
            wr_qfifo_settle(f, cid, seq, now, &fx);
        else if (op == CMD_RETURN)
            wr_qfifo_return(f, cid, seq, back, now, &fx);
        else
            wr_qfifo_discard(f, cid, seq, now, &fx);
        break;
    }
    case CMD_RETURN_ALL: {
        uint64_t cid = get_u64(&r);
        if (!r.bad)
            wr_qfifo_return_all(f, cid, now, &fx);
        break;
    }
    case CMD_GET: {
        uint64_t gid = get_u64(&r);
        int no_ack = get_u8(&r);
        if (!r.bad)
            wr_qfifo_get(f, gid, no_ack, now, &fx);
        break;
    }
    case CMD_TICK:
        wr_qfifo_tick(f, now, &fx);
        break;
    case CMD_PURGE:
        wr_qfifo_purge(f, now, &fx);
        break;
    case CMD_LIMITS: {
        wr_qsm_limits_t l;
        l.message_ttl = (int64_t)get_u64(&r);
        l.max_length = (int64_t)get_u64(&r);
        l.max_length_bytes = (int64_t)get_u64(&r);
        l.delivery_limit = (int64_t)get_u64(&r);
        l.overflow = get_u8(&r);
        l.max_priority = 0;
        if (r.bad)
            break;
        /* The dead-letter strategy (absent in entries of older builds). */
        int alo = r.off < r.n ? get_u8(&r) : qq->alo;
        wr_qsm_set_limits(&f->sm, &l);
        while (wr_qsm_enforce_limits(&f->sm, SIZE_MAX, &fx))
            ;
        dlx_set_mode(qq, alo);
        dlx_kick(qq);
        break;
    }
    case CMD_DLX_SETTLE: {
        uint32_t k = get_u32(&r);
        for (uint32_t i = 0; i < k && !r.bad; i++) {
            uint64_t id = get_u64(&r);
            wr_qent_t e;
            if (!r.bad && wr_qdlx_remove(&qq->dlx, id, &e)) {
                release(&e);
                if (qq->leader)
                    wr_stats_count(WR_NS_DL_CONFIRMED);
            }
        }
        break;
    }
    default:
        wr_error("quorum queue '%s': unknown command %d in the log, skipped", qq->q->name, op);
        break;
    }
    if (r.bad)
        wr_error("quorum queue '%s': truncated command %d in the log, skipped", qq->q->name, op);
    if (fx.n)
        run_fx(qq, &fx);
    else
        wr_qfx_free(&fx);
    qq->applying = 0;
}

/* Snapshot: version, next_seq, out, rr, the consumers, then every entry
 * (ready ones with holder 0, then held ones with their holder). */
typedef struct snap_ctx {
    wr_buf_t *out;
    size_t n;
} snap_ctx_t;

static void put_entry(wr_buf_t *b, uint64_t holder, const wr_qent_t *e)
{
    put_u64(b, holder);
    put_u64(b, e->seq);
    put_u64(b, (uint64_t)e->expires_at);
    put_u32(b, e->deliveries);
    put_msg(b, e->msg);
}

static void snap_ready(void *ctx, wr_qent_t *e)
{
    snap_ctx_t *s = ctx;
    put_entry(s->out, 0, e);
    s->n++;
}

static int snapshot_cb(void *ud, wr_buf_t *out)
{
    wr_quorum_t *qq = ud;
    wr_qfifo_t *f = &qq->fifo;
    wr_buf_put_u8(out, 2);
    put_u64(out, f->sm.next_seq);
    put_u64(out, f->rr);
    put_u32(out, (uint32_t)f->n_cons);
    for (size_t i = 0; i < f->n_cons; i++) {
        put_u64(out, f->cons[i].cid);
        put_u32(out, f->cons[i].prefetch);
        put_u32(out, (uint32_t)f->cons[i].priority);
        wr_buf_put_u8(out, f->cons[i].no_ack);
    }
    size_t count_at = out->len;
    put_u64(out, 0);
    snap_ctx_t s = {out, 0};
    wr_qsm_foreach(&f->sm, snap_ready, &s);
    for (size_t i = 0; i < f->out_cap; i++) {
        if (f->used[i]) {
            put_entry(out, f->out[i].cid ? f->out[i].cid : UINT64_MAX, &f->out[i].e);
            s.n++;
        }
    }
    wr_set_u64(out->p + count_at, s.n);
    /* Version 2: the dead-letter strategy and the kept messages. */
    wr_buf_put_u8(out, qq->alo);
    put_u64(out, qq->dlx.next_id);
    put_u64(out, qq->dlx.live);
    for (size_t i = qq->dlx.head; i < qq->dlx.n; i++) {
        const wr_qdlx_ent_t *x = &qq->dlx.v[i];
        if (!x->live)
            continue;
        put_u64(out, x->id);
        wr_buf_put_u8(out, x->reason);
        put_entry(out, 0, &x->e);
    }
    return 0;
}

static int restore_cb(void *ud, const void *p, size_t n)
{
    wr_quorum_t *qq = ud;
    wr_qfifo_t *f = &qq->fifo;
    rd_t r = {p, n, 0, 0};
    int version = get_u8(&r);
    if (version != 1 && version != 2)
        return WR_ECORRUPT;
    /* Drop the current state, releasing its messages. */
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    wr_qfifo_purge(f, 0, &fx);
    for (size_t i = 0; i < fx.n; i++)
        release(&fx.v[i].e);
    wr_qfx_reset(&fx);
    for (size_t i = 0; i < f->out_cap; i++)
        if (f->used[i])
            release(&f->out[i].e);
    wr_qsm_limits_t lim = f->sm.lim;
    int sac = f->single_active;
    wr_qfifo_free(f);
    wr_qfifo_init(f, &lim, sac);
    dlx_stop(qq);
    wr_qdlx_free(&qq->dlx, release);

    uint64_t next_seq = get_u64(&r);
    f->rr = (size_t)get_u64(&r);
    uint32_t nc = get_u32(&r);
    for (uint32_t i = 0; i < nc && !r.bad; i++) {
        uint64_t cid = get_u64(&r);
        uint32_t prefetch = get_u32(&r);
        int32_t prio = (int32_t)get_u32(&r);
        int no_ack = get_u8(&r);
        wr_qfifo_attach(f, cid, prefetch, prio, no_ack, 0, &fx);
    }
    uint64_t ne = get_u64(&r);
    for (uint64_t i = 0; i < ne && !r.bad; i++) {
        uint64_t holder = get_u64(&r);
        wr_qent_t e = {NULL, get_u64(&r), (int64_t)get_u64(&r), {0, 0}, get_u32(&r), 0};
        e.msg = get_msg(&r);
        if (e.msg == NULL)
            break;
        e.size = (uint32_t)wr_msg_size(e.msg);
        if (holder == 0) {
            wr_qsm_restore(&f->sm, &e, &fx);
        } else {
            wr_qfifo_hold(f, holder == UINT64_MAX ? 0 : holder, &e);
        }
    }
    f->sm.next_seq = next_seq;
    if (version >= 2 && !r.bad) {
        qq->alo = get_u8(&r);
        uint64_t next_id = get_u64(&r), nd = get_u64(&r);
        for (uint64_t i = 0; i < nd && !r.bad; i++) {
            uint64_t id = get_u64(&r);
            int reason = get_u8(&r);
            get_u64(&r); /* holder: none */
            wr_qent_t e = {NULL, get_u64(&r), (int64_t)get_u64(&r), {0, 0}, get_u32(&r), 0};
            e.msg = get_msg(&r);
            if (e.msg == NULL)
                break;
            e.size = (uint32_t)wr_msg_size(e.msg);
            wr_qdlx_restore(&qq->dlx, id, &e, reason);
        }
        qq->dlx.next_id = next_id;
    }
    if (qq->leader)
        dlx_kick(qq);
    /* Restoring emits nothing to carry out but timers. */
    for (size_t i = 0; i < fx.n; i++)
        if (fx.v[i].kind == WR_QFX_TIMER)
            set_timer(qq, fx.v[i].at);
    wr_qfx_free(&fx);
    return r.bad ? WR_ECORRUPT : 0;
}

static void early_run(int all);
static void forget_done(void *ud, int status)
{
    (void)ud;
    if (status != 0 && status != WR_ECLOSED)
        wr_warn("quorum queue: cannot remove a forgotten node's member: %s", wr_strerror(status));
}

/* A leader removes forgotten nodes' members (replicas) from its group. */
static void remove_forgotten(wr_quorum_t *qq)
{
    uint64_t ids[64];
    size_t n = wr_cluster_forgotten(ids, 64);
    for (size_t i = 0; i < n; i++)
        if (wr_rgroup_role(qq->g, ids[i]) >= 0 &&
            wr_rgroup_remove(qq->g, ids[i], forget_done, NULL) != 0)
            wr_debug("quorum queue: the removal of a forgotten member waits");
}

void wr_quorum_forget(void)
{
    for (wr_quorum_t *qq = node.open_list; qq; qq = qq->next_open)
        if (qq->leader && !qq->closing)
            remove_forgotten(qq);
}

static void leader_cb(void *ud, int is_leader, uint64_t leader_id)
{
    wr_quorum_t *qq = ud;
    if (qq->closing)
        return;
    uint64_t before = qq->leader_id;
    qq->leader = (uint8_t)(is_leader != 0);
    qq->leader_id = leader_id;
    /* Commands forwarded to a leader that is no longer one get no answer. */
    if (before != leader_id)
        fail_forwarded(qq);
    if (qq->leader && wr_cluster_enabled()) {
        /* A new leader releases what consumers of nodes that are down
         * hold (the old leader may have died before doing it), first:
         * before the commands forwarded to it while it was being elected
         * (early_run) and its own backlog, or their publishes would be
         * dispatched to those consumers too, and held by them for good. */
        const wr_rgroup_member_t *m;
        size_t nm = wr_cluster_members(&m);
        for (size_t i = 0; i < nm; i++)
            if (m[i].id != wr_cluster_self_id() && !wr_cluster_node_up(m[i].id))
                release_node(qq, m[i].id);
        remove_forgotten(qq);
    }
    if (leader_id && !qq->reaped) {
        /* The replica has caught up with a leader's log: what an earlier
         * run of this node left behind can be seen, and released. */
        qq->reaped = 1;
        reap_stale(qq);
    }
    if (leader_id && !qq->leader)
        flush_backlog(qq); /* to the leader we now know */
    if (leader_id && qq->place_at) {
        /* The first election is over: the usual timeout from now on. */
        qq->place_at = 0;
        wr_rgroup_set_election_timeout(qq->g, qq->election_ms);
    }
    if (qq->leader || leader_id) {
        /* Forwarded commands that waited for this queue: taken now if this
         * member leads, refused if another does. */
        if (node.early)
            early_run(0);
    }
    if (qq->leader) {
        flush_backlog(qq);
        /* A new leader publishes every kept dead letter again. */
        dlx_stop(qq);
        dlx_kick(qq);
        /* A new leader owns the timer. */
        wr_qfx_t fx;
        wr_qfx_init(&fx);
        qq->fifo.sm.timer_at = -1;
        wr_qsm_arm(&qq->fifo.sm, &fx);
        run_fx(qq, &fx);
    } else {
        if (qq->timer)
            uv_timer_stop(qq->timer);
        dlx_stop(qq);
    }
}

/* ---- open / close ---- */

/* A queue's group id: the same on every node for the same vhost and name. */
static uint64_t group_id_of(const wr_queue_t *q)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put(&b, q->vhost->name, strlen(q->vhost->name) + 1);
    wr_buf_put(&b, q->name, q->name_len);
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned hn = 0;
    EVP_Digest(b.p, b.len, h, &hn, EVP_sha256(), NULL);
    wr_buf_free(&b);
    uint64_t id = wr_get_u64(h);
    return id > 1 ? id : 2; /* 1 is the cluster's metadata group */
}

/* splitmix64's finaliser: a well-mixed 64-bit hash of x. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A new group's configuration, the same on every node: every configured
 * node gets a replica; the first `size` nodes in the queue's own order
 * (rendezvous hashing of the group id with each node id, so queues spread
 * evenly) vote, the others are standbys (they replicate and apply the log,
 * so that consumers on every node are served from a local replica, but
 * neither vote nor count towards a majority).  size: x-quorum-initial-
 * group-size, else quorum_cluster_size, at most the number of nodes.
 * *preferred: where the leader should go: the declaring node if it votes
 * (client-local), else the first voter (balanced). */
static size_t initial_members(const wr_queue_t *q, uint64_t gid, wr_rgroup_member_t **out,
                              uint64_t *preferred)
{
    const wr_rgroup_member_t *all;
    size_t n = wr_cluster_members(&all);
    wr_rgroup_member_t *m = wr_xcalloc(n ? n : 1, sizeof *m);
    memcpy(m, all, n * sizeof *m);
    /* Insertion sort by descending score (n is a handful). */
    for (size_t i = 1; i < n; i++) {
        wr_rgroup_member_t t = m[i];
        uint64_t ts = mix64(gid ^ mix64(t.id));
        size_t k = i;
        while (k > 0 && mix64(gid ^ mix64(m[k - 1].id)) < ts) {
            m[k] = m[k - 1];
            k--;
        }
        m[k] = t;
    }
    uint64_t size = q->args.initial_group_size > 0 ? (uint64_t)q->args.initial_group_size
                    : wr_broker.cfg                ? wr_broker.cfg->quorum_cluster_size
                                                   : 3;
    if (size == 0 || size > n)
        size = n;
    uint64_t self = wr_cluster_self_id();
    int self_votes = 0;
    for (size_t i = 0; i < n; i++) {
        m[i].standby = i >= size;
        self_votes |= m[i].id == self && !m[i].standby;
    }
    int balanced = q->args.leader_locator ? q->args.leader_locator == 2
                   : wr_broker.cfg        ? wr_broker.cfg->queue_leader_balanced
                                          : 0;
    *preferred = !balanced && self_votes ? self : n ? m[0].id : self;
    *out = m;
    return n;
}

int wr_quorum_open(wr_queue_t *q, char *err, size_t errlen)
{
    if (q->vhost->dir == NULL) {
        snprintf(err, errlen, "the vhost has no data directory");
        return WR_EINVAL;
    }
    wr_rnet_t *net;
    int r = wr_cluster_net(&net, err, errlen);
    if (r != 0)
        return r;
    uint64_t gid = group_id_of(q);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/quorum", q->vhost->dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return WR_EIO;
    }
    snprintf(dir, sizeof dir, "%s/quorum/%016" PRIx64, q->vhost->dir, gid);
    wr_quorum_t *qq = wr_xcalloc(1, sizeof *qq);
    qq->q = q;
    qq->gid = gid;
    qq->dir = wr_xstrndup(dir, strlen(dir));
    qq->on_group.wake = group_advanced;
    qq->fx_fd = -1;
    wr_buf_init(&qq->backlog);
    wr_qsm_limits_t lim = limits_of(&q->args);
    wr_qfifo_init(&qq->fifo, &lim, q->args.single_active);
    wr_qdlx_init(&qq->dlx);
    qq->alo = (uint8_t)alo_of(&q->args);
    q->qq = qq;
    struct stat st;
    int pristine = stat(dir, &st) != 0;
    wr_rgroup_member_t *members;
    uint64_t preferred;
    size_t n_members = initial_members(q, gid, &members, &preferred);
    if (pristine && !wr_cmeta_applying() && n_members > 1 && preferred == wr_cluster_self_id())
        qq->place_at = preferred;
    wr_rgroup_cbs_t cbs = {apply_cb, snapshot_cb, restore_cb, leader_cb};
    wr_rgroup_opts_t opts;
    wr_rgroup_opts_default(&opts);
    if (n_members == 1) {
        /* One member: elect quickly. */
        opts.election_timeout_ms = 150;
        opts.heartbeat_timeout_ms = 50;
    }
    /* Snapshots copy the whole queue and segment changes fsync on the
     * thread pool, and both stall the log: measured on one node (16 B /
     * 1 KB, confirms <= 1,000): every 4,096 entries with 1 MiB segments
     * 90k / 13k msg/s; every 65,536 with 4 MiB segments 291k / 49k.  The
     * cost: up to 65,536 entries kept in libraft's memory between
     * snapshots, and about 3 preallocated segments (12 MiB) on disk per
     * queue. */
    qq->election_ms = opts.election_timeout_ms;
    if (qq->place_at) {
        /* The other members open the group when the declaration reaches
         * them through the metadata group, and elect after 0.5 to 1 s:
         * this member asks for their votes first. */
        opts.election_timeout_ms = 100;
    }
    opts.snapshot_threshold = 65536;
    opts.snapshot_trailing = 4096;
    opts.segment_size = 4u << 20;
    r = wr_rgroup_open(&qq->g, net, gid, dir, wr_cluster_self_id(), NULL, members, n_members, &cbs,
                       qq, &opts, err, errlen);
    free(members);
    if (r != 0) {
        q->qq = NULL;
        wr_qfifo_free(&qq->fifo);
        wr_buf_free(&qq->backlog);
        free(qq->dir);
        free(qq);
        return r;
    }
    fx_done_open(qq);
    node.open++;
    qq->next_open = node.open_list;
    node.open_list = qq;
    return 0;
}

void wr_quorum_early_free(void)
{
    early_run(1);
    if (node.early_timer) {
        uv_close((uv_handle_t *)node.early_timer, (uv_close_cb)free);
        node.early_timer = NULL;
    }
}

static int remove_tree(const char *path);

static void group_closed(void *ud)
{
    wr_quorum_t *qq = ud;
    if (qq->fx_fd >= 0)
        close(qq->fx_fd);
    if (qq->remove_data)
        remove_tree(qq->dir);
    /* Whatever the state machine still holds goes with it. */
    wr_qfx_t fx;
    wr_qfx_init(&fx);
    wr_qfifo_purge(&qq->fifo, 0, &fx);
    for (size_t i = 0; i < fx.n; i++)
        release(&fx.v[i].e);
    wr_qfx_free(&fx);
    for (size_t i = 0; i < qq->fifo.out_cap; i++)
        if (qq->fifo.used[i])
            release(&qq->fifo.out[i].e);
    wr_qfifo_free(&qq->fifo);
    wr_qdlx_free(&qq->dlx, release);
    free(qq->dlx_done);
    wr_buf_free(&qq->backlog);
    wr_durable_free(&qq->durable);
    free(qq->pairs);
    free(qq->fw);
    free(qq->dir);
    free(qq);
    node.closing--;
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void wr_quorum_close(wr_queue_t *q, int remove_data)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL || qq->closing)
        return;
    qq->closing = 1;
    qq->q = NULL; /* the queue may go now: nothing here touches it again */
    qq->remove_data = (uint8_t)(remove_data != 0);
    qq->leader = 0;
    if (qq->timer) {
        uv_close((uv_handle_t *)qq->timer, timer_closed);
        qq->timer = NULL;
    }
    dlx_stop(qq);
    if (qq->dlx_timer) {
        uv_close((uv_handle_t *)qq->dlx_timer, timer_closed);
        qq->dlx_timer = NULL;
    }
    /* Nothing will be confirmed any more: what waits fails, and nothing
     * may point at the domain once it is freed. */
    wr_durable_unwait(&qq->on_group);
    group_advanced(&qq->on_group); /* what the group already decided */
    wr_durable_update(&qq->durable, qq->durable.synced, qq->next_ticket);
    wr_channel_forget_domain(&qq->durable);
    dlx_forget_domain(&qq->durable);
    q->qq = NULL;
    for (wr_quorum_t **pp = &node.open_list; *pp; pp = &(*pp)->next_open) {
        if (*pp == qq) {
            *pp = qq->next_open;
            break;
        }
    }
    node.open--;
    node.closing++;
    wr_rgroup_close(qq->g, group_closed, qq);
}

/* ---- messages from other members ---- */

static wr_quorum_t *by_gid(uint64_t gid)
{
    for (wr_quorum_t *qq = node.open_list; qq; qq = qq->next_open)
        if (qq->gid == gid)
            return qq;
    return NULL;
}

static void reply_result(uint64_t to, uint64_t gid, uint64_t req, int ok)
{
    uint8_t m[17];
    wr_set_u64(m, gid);
    wr_set_u64(m + 8, req);
    m[16] = (uint8_t)(ok > 0);
    (void)wr_cluster_send(to, WR_CLUSTER_QQ_RESULT, m, sizeof m);
}

static int take_forwarded(wr_quorum_t *qq, uint64_t from, uint64_t req, const uint8_t *p, size_t n);

/* Gives each early command whose queue can now take it to it, in order;
 * fails those that waited too long (or all, with all). */
static void early_run(int all)
{
    int64_t now = wr_now_ms();
    early_t **pp = &node.early;
    node.early_tail = NULL;
    while (*pp) {
        early_t *e = *pp;
        wr_quorum_t *qq = by_gid(e->gid);
        int done = 0;
        if (qq && qq->leader && !qq->closing) {
            done = take_forwarded(qq, e->from, e->req, e->p, e->n);
        } else if (all || e->deadline <= now ||
                   (qq && qq->leader_id && !qq->leader && qq->leader_id != wr_cluster_self_id())) {
            /* Too late, or another member leads: the sender fails it. */
            reply_result(e->from, e->gid, e->req, 0);
            done = 1;
        }
        if (done) {
            *pp = e->next;
            free(e);
        } else {
            node.early_tail = e;
            pp = &e->next;
        }
    }
    if (node.early == NULL && node.early_timer)
        uv_timer_stop(node.early_timer);
}

static void early_timer_cb(uv_timer_t *t)
{
    (void)t;
    early_run(0);
}

static void early_keep(uint64_t gid, uint64_t from, uint64_t req, const uint8_t *p, size_t n)
{
    early_t *e = wr_xmalloc(sizeof *e + n);
    e->next = NULL;
    e->gid = gid;
    e->from = from;
    e->req = req;
    e->deadline = wr_now_ms() + EARLY_MS;
    e->n = n;
    memcpy(e->p, p, n);
    if (node.early_tail)
        node.early_tail->next = e;
    else
        node.early = e;
    node.early_tail = e;
    if (node.early_timer == NULL) {
        node.early_timer = wr_xmalloc(sizeof *node.early_timer);
        uv_timer_init(wr_loop, node.early_timer);
    }
    if (!uv_is_active((uv_handle_t *)node.early_timer))
        uv_timer_start(node.early_timer, early_timer_cb, 200, 200);
}

/* Proposes a command forwarded to this node, the ready leader; 1 if it was
 * handled (proposed or refused), 0 if it must wait. */
static int take_forwarded(wr_quorum_t *qq, uint64_t from, uint64_t req, const uint8_t *p, size_t n)
{
    int64_t size = enqueue_size(p, n);
    uint64_t t = !leader_refuses(qq, size) ? group_propose(qq, p, n) : 0;
    if (t == 0) {
        reply_result(from, qq->gid, req, 0);
        return 1;
    }
    inflight_add(qq, size);
    fw_push(qq, from, req, t);
    return 1;
}

/* ---- membership (warrenctl add_member, delete_member, grow, shrink) ---- */

/* A change asked for on this node; it runs at the queue's leader, which may
 * be another node (WR_CLUSTER_QQ_ADMIN, answered by QQ_ADMIN_RESULT).  A
 * leader that is busy with another change, steps down or is unreachable
 * makes it wait and try again, until ADMIN_MS after it was asked for. */
#define ADMIN_MS 15000

typedef struct admin_req {
    struct admin_req *next;
    uint64_t id, gid, target;
    int op;
    int64_t deadline;
    uint64_t sent_to; /* the leader it is with, 0: not sent */
    wr_quorum_admin_cb cb;
    void *ud;
} admin_req_t;

typedef struct admin_remote {
    uint64_t from, gid, req;
} admin_remote_t;

static void admin_send_result(uint64_t to, uint64_t gid, uint64_t req, int status)
{
    uint8_t m[20];
    wr_set_u64(m, gid);
    wr_set_u64(m + 8, req);
    wr_set_u32(m + 16, (uint32_t)status);
    (void)wr_cluster_send(to, WR_CLUSTER_QQ_ADMIN_RESULT, m, sizeof m);
}

static void admin_remote_done(void *ud, int status)
{
    admin_remote_t *r = ud;
    if (r->req)
        admin_send_result(r->from, r->gid, r->req, status);
    free(r);
}

static void admin_moved(void *ud, int status)
{
    (void)status;
    /* Leadership moved away (or did not): the asker tries again at
     * whichever member leads now. */
    admin_remote_done(ud, WR_EAGAIN);
}

/* Runs op at this member, the ready leader; 0 if cb(ud, status) will run
 * later (moved(ud, ...) instead when this leader had to hand over first),
 * else the failure (neither runs). */
static int admin_local(wr_quorum_t *qq, int op, uint64_t target, wr_rgroup_done_cb cb,
                       wr_rgroup_done_cb moved, void *ud)
{
    int role = wr_rgroup_role(qq->g, target);
    uint64_t voters[64];
    size_t nv = wr_rgroup_voters(qq->g, voters, 64);
    switch (op) {
    case WR_QQ_MAKE_VOTER:
        if (role == WR_RGROUP_VOTER)
            return WR_EEXISTS;
        if (role < 0) {
            const char *addr = wr_cluster_node_addr(target);
            return addr ? wr_rgroup_add(qq->g, target, addr, cb, ud) : WR_ENOTFOUND;
        }
        return wr_rgroup_assign(qq->g, target, 1, cb, ud);
    case WR_QQ_MAKE_STANDBY:
        if (role != WR_RGROUP_VOTER)
            return WR_ENOTFOUND;
        if (nv <= 1)
            return WR_EINVAL;
        if (target == wr_cluster_self_id()) {
            /* A leader does not demote itself: it hands over first, to a
             * voter that is up. */
            for (size_t i = 0; i < nv && i < 64; i++)
                if (voters[i] != target && wr_cluster_node_up(voters[i]))
                    return wr_rgroup_transfer(qq->g, voters[i], moved, ud);
            return WR_EAGAIN;
        }
        return wr_rgroup_assign(qq->g, target, 0, cb, ud);
    case WR_QQ_LEAD:
        if (target == wr_cluster_self_id())
            return WR_EEXISTS;
        if (role != WR_RGROUP_VOTER)
            return WR_ENOTFOUND;
        return wr_rgroup_transfer(qq->g, target, cb, ud);
    default:
        return WR_EINVAL;
    }
}

static void admin_finish(admin_req_t *a, int status)
{
    for (admin_req_t **pp = &node.admins; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    a->cb(a->ud, status);
    free(a);
    if (node.admins == NULL && node.admin_timer)
        uv_timer_stop(node.admin_timer);
}

static admin_req_t *admin_find(uint64_t id)
{
    for (admin_req_t *a = node.admins; a; a = a->next)
        if (a->id == id)
            return a;
    return NULL;
}

static void admin_local_done(void *ud, int status)
{
    admin_req_t *a = admin_find((uint64_t)(uintptr_t)ud);
    if (a == NULL)
        return;
    if (status == WR_EAGAIN)
        a->sent_to = 0; /* again on the next tick */
    else
        admin_finish(a, status);
}

static void admin_local_moved(void *ud, int status)
{
    (void)status;
    admin_local_done(ud, WR_EAGAIN); /* again, at the new leader */
}

static void admin_send(uint64_t to, uint64_t gid, uint64_t req, int op, uint64_t target)
{
    uint8_t m[25];
    wr_set_u64(m, gid);
    wr_set_u64(m + 8, req);
    m[16] = (uint8_t)op;
    wr_set_u64(m + 17, target);
    (void)wr_cluster_send(to, WR_CLUSTER_QQ_ADMIN, m, sizeof m);
}

/* One attempt: at this member if it leads, else sent to the leader it
 * knows of; nothing while there is none. */
static void admin_try(admin_req_t *a)
{
    wr_quorum_t *qq = by_gid(a->gid);
    if (qq == NULL)
        return; /* not open yet (or gone: the deadline ends it) */
    if (qq->closing) {
        admin_finish(a, WR_ECLOSED);
        return;
    }
    if (qq->leader) {
        a->sent_to = wr_cluster_self_id();
        int r = admin_local(qq, a->op, a->target, admin_local_done, admin_local_moved,
                            (void *)(uintptr_t)a->id);
        if (r == WR_EAGAIN)
            a->sent_to = 0;
        else if (r != 0)
            admin_finish(a, r);
    } else if (qq->leader_id && wr_cluster_node_up(qq->leader_id)) {
        a->sent_to = qq->leader_id;
        admin_send(qq->leader_id, a->gid, a->id, a->op, a->target);
    }
}

static void admin_tick(uv_timer_t *t)
{
    (void)t;
    int64_t now = wr_now_ms();
    admin_req_t *a = node.admins;
    while (a) {
        admin_req_t *next = a->next;
        if (a->deadline <= now)
            admin_finish(a, WR_EAGAIN);
        else if (a->sent_to == 0)
            admin_try(a);
        a = next;
    }
}

static void admin_start(uint64_t gid, int op, uint64_t target, wr_quorum_admin_cb cb, void *ud)
{
    admin_req_t *a = wr_xcalloc(1, sizeof *a);
    a->id = ++node.next_admin;
    a->gid = gid;
    a->op = op;
    a->target = target;
    a->deadline = wr_now_ms() + ADMIN_MS;
    a->cb = cb;
    a->ud = ud;
    a->next = node.admins;
    node.admins = a;
    if (node.admin_timer == NULL) {
        node.admin_timer = wr_xmalloc(sizeof *node.admin_timer);
        uv_timer_init(wr_loop, node.admin_timer);
    }
    if (!uv_is_active((uv_handle_t *)node.admin_timer))
        uv_timer_start(node.admin_timer, admin_tick, 200, 200);
    admin_try(a);
}

int wr_quorum_admin(wr_queue_t *q, int op, uint64_t target, wr_quorum_admin_cb cb, void *ud)
{
    if (q->qq == NULL || q->qq->closing)
        return WR_ECLOSED;
    if (target == 0 || (wr_cluster_enabled() && wr_cluster_node_name(target) == NULL))
        return WR_ENOTFOUND;
    admin_start(q->qq->gid, op, target, cb, ud);
    return 0;
}

/* From another node: a change to run here as leader, or how one ended. */
static void admin_on_msg(uint64_t from, uint8_t kind, const uint8_t *p, size_t n)
{
    uint64_t gid = wr_get_u64(p), req = wr_get_u64(p + 8);
    if (kind == WR_CLUSTER_QQ_ADMIN_RESULT) {
        admin_req_t *a = n >= 20 ? admin_find(req) : NULL;
        if (a == NULL || a->sent_to != from)
            return;
        int status = (int)wr_get_u32(p + 16);
        if (status == WR_EAGAIN)
            a->sent_to = 0;
        else
            admin_finish(a, status);
        return;
    }
    if (n < 25)
        return;
    wr_quorum_t *qq = by_gid(gid);
    if (qq == NULL || !qq->leader || qq->closing) {
        if (req)
            admin_send_result(from, gid, req, WR_EAGAIN);
        return;
    }
    admin_remote_t *r = wr_xmalloc(sizeof *r);
    *r = (admin_remote_t){from, gid, req};
    int rc = admin_local(qq, p[16], wr_get_u64(p + 17), admin_remote_done, admin_moved, r);
    if (rc != 0) {
        if (req)
            admin_send_result(from, gid, req, rc);
        free(r);
    }
}

size_t wr_quorum_members(const wr_queue_t *q, uint64_t *ids, size_t max)
{
    return q->qq ? wr_rgroup_voters(q->qq->g, ids, max) : 0;
}

void wr_quorum_admin_free(void)
{
    while (node.admins)
        admin_finish(node.admins, WR_ECLOSED);
    if (node.admin_timer) {
        uv_close((uv_handle_t *)node.admin_timer, (uv_close_cb)free);
        node.admin_timer = NULL;
    }
}

void wr_quorum_on_msg(uint64_t from, uint8_t kind, const uint8_t *p, size_t n)
{
    if (kind == WR_CLUSTER_QQ_ADMIN || kind == WR_CLUSTER_QQ_ADMIN_RESULT) {
        if (n >= 16)
            admin_on_msg(from, kind, p, n);
        return;
    }
    if (n < 16)
        return;
    wr_quorum_t *qq = by_gid(wr_get_u64(p));
    uint64_t req = wr_get_u64(p + 8);
    if (kind == WR_CLUSTER_QQ_PROPOSE) {
        /* Behind earlier early ones, or not takeable yet: keep it in order.
         * (A queue declared elsewhere reaches this node through the
         * metadata group; an elected member is ready after its barrier.) */
        if (node.early || qq == NULL || !qq->leader) {
            int other_leads =
                qq && qq->leader_id && qq->leader_id != wr_cluster_self_id() && !node.early;
            if (other_leads) {
                reply_result(from, wr_get_u64(p), req, 0);
                return;
            }
            early_keep(wr_get_u64(p), from, req, p + 16, n - 16);
            early_run(0);
            return;
        }
        take_forwarded(qq, from, req, p + 16, n - 16);
        return;
    }
    if (kind == WR_CLUSTER_QQ_RESULT && n >= 17 && qq) {
        /* Answers come in the order the commands were sent. */
        for (size_t i = 0; i < qq->pairs_n; i++) {
            ticket_pair_t *pr = &qq->pairs[(qq->pairs_head + i) % qq->pairs_cap];
            if (pr->forwarded && pr->own == req) {
                pr->remote = p[16] ? 1 : -1;
                break;
            }
        }
        resolve_pairs(qq);
    }
}

void wr_quorum_peer_up(uint64_t node_id)
{
    /* Commands kept because the leader's link was down go now. */
    for (wr_quorum_t *qq = node.open_list; qq; qq = qq->next_open)
        if (qq->backlog_n && !qq->closing && qq->leader_id == node_id)
            flush_backlog(qq);
}

void wr_quorum_peer_down(uint64_t node_id)
{
    for (admin_req_t *a = node.admins; a; a = a->next)
        if (a->sent_to == node_id)
            a->sent_to = 0;
    for (wr_quorum_t *qq = node.open_list; qq; qq = qq->next_open) {
        if (qq->leader_id == node_id)
            fail_forwarded(qq);
        if (qq->leader && !qq->closing)
            release_node(qq, node_id);
    }
}

/* ---- the queue's operations ---- */

int wr_quorum_push(wr_queue_t *q, wr_msg_t *m, wr_waits_t *w)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL)
        return WR_ECLOSED;
    wr_buf_t b;
    cmd_begin(&b, CMD_ENQUEUE);
    put_msg(&b, m);
    uint64_t t = propose(qq, &b);
    if (t == 0)
        return WR_EAGAIN;
    if (w)
        wr_waits_add(w, &qq->durable, t);
    return 0;
}

void wr_quorum_add_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    wr_quorum_t *qq = q->qq;
    c->cid = holder_id(0);
    if (qq)
        propose_attach(qq, c);
}

void wr_quorum_remove_consumer(wr_queue_t *q, wr_consumer_t *c)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL)
        return;
    propose_u64(qq, CMD_DETACH, c->cid);
}

void wr_quorum_settle(wr_queue_t *q, wr_qent_t *e, int how)
{
    wr_quorum_t *qq = q->qq;
    if (qq) {
        const wr_qfifo_out_t *o = wr_qfifo_held(&qq->fifo, e->seq);
        if (o) {
            static const int ops[] = {CMD_SETTLE, CMD_RETURN, CMD_DISCARD, CMD_RETURN};
            wr_buf_t b;
            cmd_begin(&b, ops[how]);
            put_u64(&b, o->cid);
            put_u64(&b, e->seq);
            wr_buf_put_u8(&b, how == 1); /* a reject or nack goes to the back */
            propose(qq, &b);
        }
    }
    release(e);
}

int wr_quorum_get(wr_queue_t *q, wr_channel_t *ch, int no_ack)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL)
        return WR_ECLOSED;
    uint64_t gid = holder_id(1);
    wr_buf_t b;
    cmd_begin(&b, CMD_GET);
    put_u64(&b, gid);
    wr_buf_put_u8(&b, (uint8_t)(no_ack != 0));
    uint64_t own = propose(qq, &b);
    if (own == 0)
        return WR_EAGAIN;
    if (node.n_gets == node.cap_gets) {
        node.cap_gets = node.cap_gets ? node.cap_gets * 2 : 8;
        node.gets = wr_xrealloc(node.gets, node.cap_gets * sizeof *node.gets);
    }
    node.gets[node.n_gets++] = (pending_get_t){gid, ch, q, own, (uint8_t)(no_ack != 0)};
    q->refs++; /* until answered or forgotten */
    return 0;
}

void wr_quorum_channel_gone(wr_channel_t *ch)
{
    for (size_t i = 0; i < node.n_gets;) {
        if (node.gets[i].ch == ch) {
            wr_queue_unref(node.gets[i].q);
            node.gets[i] = node.gets[--node.n_gets];
        } else {
            i++;
        }
    }
}

uint32_t wr_quorum_purge(wr_queue_t *q)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL)
        return 0;
    uint32_t n = (uint32_t)wr_qfifo_ready(&qq->fifo);
    wr_buf_t b;
    cmd_begin(&b, CMD_PURGE);
    propose(qq, &b);
    return n;
}

void wr_quorum_limits_changed(wr_queue_t *q)
{
    wr_quorum_t *qq = q->qq;
    if (qq == NULL)
        return;
    wr_qsm_limits_t l = limits_of(&q->args), cur = qq->fifo.sm.lim;
    if (l.message_ttl == cur.message_ttl && l.max_length == cur.max_length &&
        l.max_length_bytes == cur.max_length_bytes && l.delivery_limit == cur.delivery_limit &&
        l.overflow == cur.overflow && alo_of(&q->args) == qq->alo)
        return; /* as the state machine has them (a declare applies policies) */
    wr_buf_t b;
    cmd_begin(&b, CMD_LIMITS);
    put_u64(&b, (uint64_t)l.message_ttl);
    put_u64(&b, (uint64_t)l.max_length);
    put_u64(&b, (uint64_t)l.max_length_bytes);
    put_u64(&b, (uint64_t)l.delivery_limit);
    wr_buf_put_u8(&b, (uint8_t)l.overflow);
    wr_buf_put_u8(&b, (uint8_t)alo_of(&q->args));
    propose(qq, &b);
}

int wr_quorum_status(const wr_queue_t *q, wr_quorum_status_t *out)
{
    memset(out, 0, sizeof *out);
    if (q->qq == NULL)
        return WR_ECLOSED;
    wr_rgroup_info_t i;
    wr_rgroup_info(q->qq->g, &i);
    out->is_leader = i.is_leader;
    out->leader_id = i.leader_id;
    out->term = i.term;
    out->commit_index = i.commit_index;
    out->last_applied = i.last_applied;
    out->last_index = i.last_index;
    return 0;
}

size_t wr_quorum_ready(const wr_queue_t *q)
{
    return q->qq ? wr_qfifo_ready(&q->qq->fifo) : 0;
}

size_t wr_quorum_unacked(const wr_queue_t *q)
{
    return q->qq ? wr_qfifo_unacked(&q->qq->fifo) : 0;
}

size_t wr_quorum_dlx(const wr_queue_t *q, uint64_t *bytes)
{
    *bytes = q->qq ? q->qq->dlx.bytes : 0;
    return q->qq ? q->qq->dlx.live : 0;
}

uint64_t wr_quorum_ready_bytes(const wr_queue_t *q)
{
    return q->qq ? q->qq->fifo.sm.ready_bytes : 0;
}

const char *wr_quorum_leader(const wr_queue_t *q)
{
    if (q->qq == NULL || q->qq->leader_id == 0)
        return "";
    if (q->qq->leader_id == wr_cluster_self_id())
        return wr_info_node();
    const char *n = wr_cluster_node_name(q->qq->leader_id);
    return n ? n : "";
}

int wr_quorum_is_leader(const wr_queue_t *q)
{
    return q->qq && q->qq->leader;
}

/* ---- files ---- */

static int remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return unlink(path);
    struct dirent *de;
    char sub[4096];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        remove_tree(sub);
    }
    closedir(d);
    return rmdir(path);
}

/* ---- the quorum queue type (broker/queue.h) ---- */

static int qtype_push(wr_queue_t *q, wr_msg_t *m, wr_loc_t loc, wr_waits_t *w)
{
    (void)loc; /* its log makes it durable, whatever the delivery mode */
    return wr_quorum_push(q, m, w) != 0;
}

static void qtype_get(wr_queue_t *q, wr_channel_t *ch, int no_ack)
{
    /* Answered once the GET is applied from the log. */
    if (wr_quorum_get(q, ch, no_ack) != 0)
        wr_channel_get_answer(ch, q, NULL, no_ack);
}

static void qtype_settle(wr_queue_t *q, wr_qent_t *e, int how)
{
    q->unacked--;
    wr_quorum_settle(q, e, how);
    wr_queue_unref(q);
}

static void qtype_taken(wr_queue_t *q, wr_qent_t *e)
{
    (void)q;
    /* The log settled it already; this is the channel's copy. */
    if (e->msg)
        wr_msg_unref(e->msg);
    e->msg = NULL;
}

const wr_qtype_t wr_qtype_quorum = {
    .name = "quorum",
    .id = WR_QTYPE_QUORUM,
    .replicated = 1,
    .open = wr_quorum_open,
    .close = wr_quorum_close,
    .push = qtype_push,
    .get = qtype_get,
    .settle = qtype_settle,
    .taken = qtype_taken,
    .consumer_added = wr_quorum_add_consumer,
    .consumer_removed = wr_quorum_remove_consumer,
    .purge = wr_quorum_purge,
    .limits_changed = wr_quorum_limits_changed,
    .ready = wr_quorum_ready,
    .ready_bytes = wr_quorum_ready_bytes,
};
