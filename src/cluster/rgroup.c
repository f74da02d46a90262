/*
 * rgroup.c - one Raft group on warren's loop (see rgroup.h for the API and
 * the rules it promises).
 *
 * Deferred work.  Anything that would otherwise run inside one of raft's
 * callbacks and call back into raft (the next step of a membership change,
 * reporting a change's result to its caller, closing) or that must wait for
 * the end of the loop pass (the proposal batch) is left on the group and run
 * by its uv_prepare hook, which is active only while there is such work.  A
 * prepare hook runs just before the loop polls for I/O, so the batch of a
 * pass is flushed before the loop could block.
 *
 * In-flight batches form a FIFO in ticket order.  A batch is durable when
 * its last entry has been applied here while this member still leads in the
 * term it proposed the batch (batch_applied): raft_apply's own callback
 * fires after the FIRST entry of a call, so it only reports failures.  A
 * batch refused synchronously, one still open when the member stops
 * leading, and the unflushed remainder at close all fail through the same
 * FIFO, so the durability domain only ever advances in ticket order.
 *
 * Commands are framed to a multiple of 8 bytes in the log (see framed_len)
 * because libraft 0.15 garbles other lengths on their way to followers.
 *
 * Invariants: pend_first is the ticket of pend[0]; the tickets of the FIFO
 * and then of pend are consecutive and end at next_ticket - 1; durable.synced
 * and durable.failed never exceed the last ticket resolved.
 */
#include "cluster/rgroup.h"

#include <assert.h>
#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"

enum { G_OPEN, G_CLOSE_REQUESTED, G_CLOSING };

enum { OP_ADD, OP_REMOVE, OP_TRANSFER, OP_ASSIGN };

typedef struct batch {
    struct raft_apply req;
    struct batch *next;
    wr_rgroup_t *g;
    uint64_t last;     /* the batch's last ticket */
    uint64_t last_idx; /* its last entry's log index, once raft took it */
    uint64_t term;     /* the term it was proposed in */
    int done;          /* resolved: ok or failed */
    int ok;
    int cb_pending; /* raft still holds req */
    int detached;   /* resolved while cb_pending: on_applied frees it */
} batch_t;

typedef struct op {
    struct raft_change chg;
    struct raft_transfer xfer;
    struct op *next; /* on g->deferred */
    wr_rgroup_t *g;
    int kind;
    int stage;    /* OP_ADD: 0 add, 1 standby, 2 voter */
    int finished; /* deferred to report status, not to take a step */
    int status;   /* WR_E* once finished */
    uint64_t id;
    wr_rgroup_done_cb cb;
    void *ud;
} op_t;

struct wr_rgroup {
    wr_rnet_t *net;
    uv_loop_t *loop;
    uint64_t gid;
    uint64_t self_id;
    int state;
    size_t n_raft_held;      /* batches whose raft_apply callback is due */
    uint64_t close_deadline; /* closing waits for them until then */
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport t;
    struct raft_fsm fsm;
    /* raft_uv's own start method and the callbacks raft gave it. */
    int (*io_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    raft_io_tick_cb raft_tick;
    raft_io_recv_cb raft_recv;
    wr_rgroup_cbs_t cbs;
    void *ud;
    wr_rgroup_opts_t opts;
    uv_prepare_t prep;
    /* Proposals made by I/O callbacks come after this pass's prepare: the
     * check hook (right after I/O) hands them over in the same pass, or
     * they would wait until the loop next wakes. */
    uv_check_t chk;
    /* Proposals of this pass, raft_malloc'd, not yet given to raft. */
    struct raft_buffer *pend;
    size_t n_pend, cap_pend;
    uint64_t pend_first;
    uint64_t next_ticket;
    batch_t *head, *tail;
    wr_durable_t durable;
    /* Leadership as last reported, and the barrier that makes it ready. */
    struct raft_barrier barrier;
    int barrier_pending;
    /* The commit notice: followers learn that an entry is committed from
     * the leader's next AppendEntries, which without more proposals is
     * the next heartbeat (up to heartbeat_timeout later, and a forwarded
     * command's answer or a delivery from a follower's replica waits for
     * that).  When the last batch in flight is applied here and nothing
     * else is proposed, the leader appends a barrier: its AppendEntries
     * carries the new commit index at once. */
    struct raft_apply nudge;
    int nudge_pending, need_nudge;
    int handles_closed; /* prep and chk, at close */
    int ready;
    int need_poll;
    int rep_leader;
    uint64_t rep_leader_id;
    op_t *deferred;
    void (*close_done)(void *);
    void *close_ud;
    uint64_t n_batches, n_applied, n_snapshots, n_restores;
};

static void poll_leader(wr_rgroup_t *g);
static void on_raft_closed(struct raft *r);
static void fail_unresolved(wr_rgroup_t *g);
static void batch_applied(wr_rgroup_t *g, uint64_t index);

static int map_raft_err(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return WR_ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
    case RAFT_NOCONNECTION:
        return WR_EAGAIN;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_INVALID:
    case RAFT_NAMETOOLONG:
        return WR_EINVAL;
    case RAFT_NOTFOUND:
        return WR_ENOTFOUND;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return WR_ECLOSED;
    case RAFT_CORRUPT:
    case RAFT_MALFORMED:
        return WR_ECORRUPT;
    case RAFT_NOSPACE:
        return WR_ENOSPC;
    case RAFT_TOOBIG:
        return WR_ETOOBIG;
    default:
        return WR_EIO;
    }
}

static wr_rgroup_t *group_of_io(struct raft_io *io)
{
    return (wr_rgroup_t *)(void *)((char *)io - offsetof(wr_rgroup_t, io));
}

static int has_work(const wr_rgroup_t *g)
{
    return g->n_pend > 0 || g->deferred != NULL || g->need_poll || g->need_nudge ||
           g->state == G_CLOSE_REQUESTED;
}

static void kick(wr_rgroup_t *g);

/* ------------------------------------------------------------------- FSM */

/* Entry framing.  libraft 0.15 sends an AppendEntries payload as the
 * entries back to back but its receiver expects each one padded to a
 * multiple of 8 bytes (uvEncodeMessage vs uvDecodeEntriesBatch), so any
 * other length arrives garbled on followers.  Every command is therefore
 * stored as its bytes, zero padding, and one trailer byte giving the number
 * of bytes after the command (1..8), for a total that is a multiple of 8. */
static size_t framed_len(size_t n)
{
    return (n + 1 + 7) & ~(size_t)7;
}

static int unframe(const struct raft_buffer *buf, size_t *n)
{
    const uint8_t *p = buf->base;
    if (buf->len == 0 || buf->len % 8 != 0)
        return WR_ECORRUPT;
    size_t t = p[buf->len - 1];
    if (t < 1 || t > 8)
        return WR_ECORRUPT;
    *n = buf->len - t;
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    wr_rgroup_t *g = fsm->data;
    /* raft advances last_applied entry by entry, so the entry being applied
     * is the one after it. */
    uint64_t index = raft_last_applied(&g->raft) + 1;
    size_t n;
    *result = NULL;
    if (unframe(buf, &n) != 0) {
        /* Every member sees the same bytes, so skipping keeps them equal. */
        wr_error("rgroup %016llx: entry %llu is not framed, skipped", (unsigned long long)g->gid,
                 (unsigned long long)index);
        batch_applied(g, index);
        return 0;
    }
    if (n == 0) /* the leader's commit notice: no command, in no batch */
        return 0;
    g->n_applied++;
    g->cbs.apply(g->ud, index, buf->base, n);
    batch_applied(g, index);
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    wr_rgroup_t *g = fsm->data;
    wr_buf_t b;
    wr_buf_init(&b);
    int rc = g->cbs.snapshot(g->ud, &b);
    if (rc != 0) {
        wr_buf_free(&b);
        wr_warn("rgroup %016llx: snapshot failed: %s", (unsigned long long)g->gid, wr_strerror(rc));
        return RAFT_IOERR;
    }
    /* raft frees what it is given with raft_free (fsm version 1), so the
     * state is copied out of the wr_buf. */
    struct raft_buffer *v = raft_malloc(sizeof *v);
    void *p = raft_malloc(b.len > 0 ? b.len : 1);
    if (v == NULL || p == NULL) {
        raft_free(v);
        raft_free(p);
        wr_buf_free(&b);
        return RAFT_NOMEM;
    }
    if (b.len > 0)
        memcpy(p, b.p, b.len);
    v->base = p;
    v->len = b.len;
    wr_buf_free(&b);
    *bufs = v;
    *n_bufs = 1;
    g->n_snapshots++;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    wr_rgroup_t *g = fsm->data;
    int rc = g->cbs.restore(g->ud, buf->base, buf->len);
    if (rc != 0) {
        wr_error("rgroup %016llx: restore failed: %s", (unsigned long long)g->gid, wr_strerror(rc));
        return RAFT_MALFORMED;
    }
    /* On success the buffer is the state machine's to free. */
    raft_free(buf->base);
    g->n_restores++;
    return 0;
}

/* ------------------------------------------------ leadership, via raft_io */

static void tick_hook(struct raft_io *io)
{
    wr_rgroup_t *g = group_of_io(io);
    g->raft_tick(io);
    poll_leader(g);
}

static void recv_hook(struct raft_io *io, struct raft_message *m)
{
    wr_rgroup_t *g = group_of_io(io);
    g->raft_recv(io, m);
    poll_leader(g);
}

static int io_start_hook(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                         raft_io_recv_cb recv)
{
    wr_rgroup_t *g = group_of_io(io);
    g->raft_tick = tick;
    g->raft_recv = recv;
    return g->io_start(io, msecs, tick_hook, recv_hook);
}

static void on_barrier(struct raft_barrier *req, int status)
{
    wr_rgroup_t *g = req->data;
    g->barrier_pending = 0;
    if (status == 0 && raft_state(&g->raft) == RAFT_LEADER)
        g->ready = 1;
    /* Report from the prepare hook, outside raft's callback. */
    g->need_poll = 1;
    kick(g);
}

static void poll_leader(wr_rgroup_t *g)
{
    if (g->state != G_OPEN)
        return;
    int leading = raft_state(&g->raft) == RAFT_LEADER;
    if (!leading) {
        g->ready = 0;
        fail_unresolved(g);
    } else if (!g->ready && !g->barrier_pending) {
        g->barrier.data = g;
        if (raft_barrier(&g->raft, &g->barrier, on_barrier) == 0)
            g->barrier_pending = 1;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&g->raft, &lid, &laddr);
    int is = leading && g->ready;
    if (leading && !g->ready)
        lid = 0;
    if (is == g->rep_leader && lid == g->rep_leader_id)
        return;
    g->rep_leader = is;
    g->rep_leader_id = lid;
    wr_debug("rgroup %016llx: node %llu: leader %llu%s", (unsigned long long)g->gid,
             (unsigned long long)g->self_id, (unsigned long long)lid, is ? " (this node)" : "");
    if (g->cbs.leader_changed != NULL)
        g->cbs.leader_changed(g->ud, is, lid);
}

/* ------------------------------------------------------------- proposals */

static void resolve(wr_rgroup_t *g)
{
    batch_t *b;
    while ((b = g->head) != NULL && b->done) {
        g->head = b->next;
        if (g->head == NULL)
            g->tail = NULL;
        uint64_t last = b->last;
        int ok = b->ok;
        if (b->cb_pending)
            b->detached = 1;
        else
            free(b);
        /* Waiters run here and may propose or close: both only queue. */
        if (ok)
            wr_durable_update(&g->durable, last, g->durable.failed);
        else
            wr_durable_update(&g->durable, g->durable.synced, last);
    }
}

/* Fails every batch raft accepted that is not resolved yet: after this
 * member stopped leading, an entry at a batch's index may be another
 * leader's, so applying it proves nothing about ours. */
static void fail_unresolved(wr_rgroup_t *g)
{
    int any = 0;
    for (batch_t *b = g->head; b != NULL; b = b->next) {
        if (!b->done) {
            b->done = 1;
            b->ok = 0;
            any = 1;
        }
    }
    if (any)
        resolve(g);
}

/* Called after each command is applied here: a batch is durable once its
 * last entry is applied on the leader that proposed it, in the term it
 * proposed it (then the entry at that index is the one it appended). */
static void batch_applied(wr_rgroup_t *g, uint64_t index)
{
    batch_t *b = g->head;
    if (b == NULL || b->done || b->last_idx == 0 || index < b->last_idx)
        return;
    if (raft_state(&g->raft) != RAFT_LEADER || g->raft.current_term != b->term)
        return;
    for (; b != NULL && !b->done && b->last_idx != 0 && b->last_idx <= index; b = b->next) {
        b->done = 1;
        b->ok = 1;
    }
    if (b == NULL && g->raft.configuration.n > 1) {
        g->need_nudge = 1;
        kick(g);
    }
    resolve(g);
}

static void on_nudge(struct raft_apply *req, int status, void *result)
{
    wr_rgroup_t *g = req->data;
    (void)status;
    (void)result;
    g->nudge_pending = 0;
    g->n_raft_held--;
}

static batch_t *batch_push(wr_rgroup_t *g, uint64_t last)
{
    batch_t *b = wr_xcalloc(1, sizeof *b);
    b->g = g;
    b->last = last;
    b->req.data = b;
    if (g->tail != NULL)
        g->tail->next = b;
    else
        g->head = b;
    g->tail = b;
    return b;
}

/* raft_apply's callback runs once per call, right after the batch's FIRST
 * entry is applied (it finds the request by that entry's index), not after
 * the last: success here says little, batch_applied decides.  A failure
 * (leadership lost, shutdown) fails the batch. */
static void on_applied(struct raft_apply *req, int status, void *result)
{
    batch_t *b = req->data;
    (void)result;
    b->cb_pending = 0;
    b->g->n_raft_held--;
    if (b->detached) {
        free(b);
        return;
    }
    if (status != 0) {
        b->done = 1;
        b->ok = 0;
        resolve(b->g);
    }
}

static void flush(wr_rgroup_t *g)
{
    size_t n = g->n_pend, off = 0;
    uint64_t first = g->pend_first;
    int failed = 0;
    /* Proposals made by waiters woken below start a new batch. */
    g->n_pend = 0;
    g->pend_first += n;
    while (off < n) {
        size_t k = n - off;
        if (k > g->opts.max_batch)
            k = g->opts.max_batch;
        batch_t *b = batch_push(g, first + off + k - 1);
        int rv = raft_apply(&g->raft, &b->req, g->pend + off, (unsigned)k, on_applied);
        if (rv != 0) {
            /* Still ours on failure. */
            for (size_t i = off; i < off + k; i++)
                raft_free(g->pend[i].base);
            b->done = 1;
            failed = 1;
        } else {
            /* raft_apply set req.index to the first entry's index. */
            b->cb_pending = 1;
            g->n_raft_held++;
            b->term = g->raft.current_term;
            b->last_idx = b->req.index + k - 1;
            g->n_batches++;
        }
        off += k;
    }
    if (failed)
        resolve(g);
}

/* Fails the proposals not yet given to raft (at close). */
static void fail_pending(wr_rgroup_t *g)
{
    if (g->n_pend == 0)
        return;
    for (size_t i = 0; i < g->n_pend; i++)
        raft_free(g->pend[i].base);
    batch_t *b = batch_push(g, g->pend_first + g->n_pend - 1);
    b->done = 1;
    g->pend_first += g->n_pend;
    g->n_pend = 0;
    resolve(g);
}

uint64_t wr_rgroup_propose(wr_rgroup_t *g, const void *p, size_t n)
{
    assert(n > 0);
    if (g->state != G_OPEN || !wr_rgroup_is_leader(g))
        return 0;
    size_t len = framed_len(n);
    uint8_t *copy = raft_malloc(len);
    if (copy == NULL)
        return 0;
    memcpy(copy, p, n);
    memset(copy + n, 0, len - n - 1);
    copy[len - 1] = (uint8_t)(len - n);
    if (g->n_pend == g->cap_pend) {
        g->cap_pend = g->cap_pend ? g->cap_pend * 2 : 64;
        g->pend = wr_xrealloc(g->pend, g->cap_pend * sizeof *g->pend);
    }
    if (g->n_pend == 0)
        g->pend_first = g->next_ticket;
    g->pend[g->n_pend].base = copy;
    g->pend[g->n_pend].len = len;
    g->n_pend++;
    kick(g);
    return g->next_ticket++;
}

/* ------------------------------------------------------------ membership */

static void op_defer(op_t *op)
{
    wr_rgroup_t *g = op->g;
    op->next = g->deferred;
    g->deferred = op;
    kick(g);
}

static void op_finish(op_t *op, int status)
{
    op->finished = 1;
    op->status = status;
    op_defer(op);
}

static void on_change(struct raft_change *req, int status)
{
    op_t *op = req->data;
    if (status != 0)
        op_finish(op, map_raft_err(status));
    else if (op->kind == OP_ADD && op->stage < 2 && op->g->state == G_OPEN) {
        op->stage++;
        op_defer(op);
    } else
        op_finish(op, op->kind == OP_ADD && op->stage < 2 ? WR_ECLOSED : 0);
}

static void on_transfer(struct raft_transfer *req)
{
    op_t *op = req->data;
    wr_rgroup_t *g = op->g;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&g->raft, &lid, &laddr);
    int ok = op->id != 0 ? lid == op->id : lid != 0 && lid != g->self_id;
    op_finish(op, ok ? 0 : WR_EAGAIN);
}

/* Takes the next step of an add; returns a raft code. */
static int op_step(op_t *op)
{
    wr_rgroup_t *g = op->g;
    int role = op->stage == 1 ? RAFT_STANDBY : RAFT_VOTER;
    return raft_assign(&g->raft, &op->chg, op->id, role, on_change);
}

static void run_deferred(wr_rgroup_t *g)
{
    /* Oldest first would be nicer but order between independent changes
     * does not matter; take the list so callbacks may queue more. */
    op_t *list = g->deferred;
    g->deferred = NULL;
    while (list != NULL) {
        op_t *op = list;
        list = op->next;
        if (!op->finished) {
            int rv = g->state == G_OPEN ? op_step(op) : RAFT_SHUTDOWN;
            if (rv == 0)
                continue;
            op->status = map_raft_err(rv);
        }
        op->cb(op->ud, op->status);
        free(op);
    }
}

static op_t *op_new(wr_rgroup_t *g, int kind, uint64_t id, wr_rgroup_done_cb cb, void *ud)
{
    op_t *op = wr_xcalloc(1, sizeof *op);
    op->g = g;
    op->kind = kind;
    op->id = id;
    op->cb = cb;
    op->ud = ud;
    op->chg.data = op;
    op->xfer.data = op;
    return op;
}

int wr_rgroup_add(wr_rgroup_t *g, uint64_t id, const char *addr, wr_rgroup_done_cb cb, void *ud)
{
    if (g->state != G_OPEN)
        return WR_ECLOSED;
    op_t *op = op_new(g, OP_ADD, id, cb, ud);
    /* As a spare it receives nothing; standby then catches it up without
     * counting towards quorum; only then does it vote. */
    int rv = raft_add(&g->raft, &op->chg, id, addr, on_change);
    if (rv != 0) {
        free(op);
        return map_raft_err(rv);
    }
    return 0;
}

int wr_rgroup_remove(wr_rgroup_t *g, uint64_t id, wr_rgroup_done_cb cb, void *ud)
{
    if (g->state != G_OPEN)
        return WR_ECLOSED;
    op_t *op = op_new(g, OP_REMOVE, id, cb, ud);
    int rv = raft_remove(&g->raft, &op->chg, id, on_change);
    if (rv != 0) {
        free(op);
        return map_raft_err(rv);
    }
    return 0;
}

int wr_rgroup_assign(wr_rgroup_t *g, uint64_t id, int voter, wr_rgroup_done_cb cb, void *ud)
{
    if (g->state != G_OPEN)
        return WR_ECLOSED;
    op_t *op = op_new(g, OP_ASSIGN, id, cb, ud);
    int rv = raft_assign(&g->raft, &op->chg, id, voter ? RAFT_VOTER : RAFT_STANDBY, on_change);
    if (rv != 0) {
        free(op);
        return map_raft_err(rv);
    }
    return 0;
}

void wr_rgroup_set_election_timeout(wr_rgroup_t *g, unsigned ms)
{
    if (g->state == G_OPEN && ms != g->opts.election_timeout_ms) {
        g->opts.election_timeout_ms = ms;
        raft_set_election_timeout(&g->raft, ms);
    }
}

int wr_rgroup_role(wr_rgroup_t *g, uint64_t id)
{
    if (g->state != G_OPEN)
        return -1;
    for (unsigned i = 0; i < g->raft.configuration.n; i++)
        if (g->raft.configuration.servers[i].id == id)
            return g->raft.configuration.servers[i].role == RAFT_VOTER     ? WR_RGROUP_VOTER
                   : g->raft.configuration.servers[i].role == RAFT_STANDBY ? WR_RGROUP_STANDBY
                                                                           : WR_RGROUP_SPARE;
    return -1;
}

size_t wr_rgroup_voters(wr_rgroup_t *g, uint64_t *ids, size_t max)
{
    size_t n = 0;
    if (g->state != G_OPEN)
        return 0;
    for (unsigned i = 0; i < g->raft.configuration.n; i++)
        if (g->raft.configuration.servers[i].role == RAFT_VOTER) {
            if (n < max)
                ids[n] = g->raft.configuration.servers[i].id;
            n++;
        }
    return n;
}

int wr_rgroup_transfer(wr_rgroup_t *g, uint64_t id, wr_rgroup_done_cb cb, void *ud)
{
    if (g->state != G_OPEN)
        return WR_ECLOSED;
    op_t *op = op_new(g, OP_TRANSFER, id, cb, ud);
    int rv = raft_transfer(&g->raft, &op->xfer, id, on_transfer);
    if (rv != 0) {
        free(op);
        return map_raft_err(rv);
    }
    return 0;
}

/* ------------------------------------------------------- the prepare hook */

static void do_close(wr_rgroup_t *g)
{
    g->state = G_CLOSING;
    fail_pending(g);
    run_deferred(g); /* steps now fail with WR_ECLOSED */
    /* raft fails in-flight batches and changes, then closes raft_uv, which
     * closes our transport; on_raft_closed runs after all of that. */
    raft_close(&g->raft, on_raft_closed);
}

static void on_prepare(uv_prepare_t *h)
{
    wr_rgroup_t *g = h->data;
    /* Work done here can queue more (a waiter proposing after a refused
     * batch); a few rounds keep it from waiting behind a blocking poll. */
    for (int round = 0; round < 4 && has_work(g); round++) {
        if (g->state == G_CLOSE_REQUESTED) {
            /* libraft 0.15 crashes (a NULL read inside raft_close) when it
             * is closed with apply requests in flight: let them finish
             * first, for a while at most. */
            if (g->n_raft_held > 0 && uv_now(h->loop) < g->close_deadline)
                return;
            uv_prepare_stop(h);
            do_close(g);
            return;
        }
        if (g->state != G_OPEN)
            break;
        if (g->need_poll) {
            g->need_poll = 0;
            poll_leader(g);
        }
        if (g->deferred != NULL)
            run_deferred(g);
        if (g->n_pend > 0)
            flush(g);
        if (g->need_nudge) {
            /* Only when idle: any proposal carries the commit index too. */
            g->need_nudge = 0;
            if (g->head == NULL && !g->nudge_pending && raft_state(&g->raft) == RAFT_LEADER) {
                struct raft_buffer nb = {raft_malloc(8), 8};
                if (nb.base != NULL) {
                    memset(nb.base, 0, 8);
                    ((uint8_t *)nb.base)[7] = 8; /* framed, length 0 */
                    g->nudge.data = g;
                    if (raft_apply(&g->raft, &g->nudge, &nb, 1, on_nudge) == 0) {
                        g->nudge_pending = 1;
                        g->n_raft_held++;
                    } else {
                        raft_free(nb.base);
                    }
                }
            }
        }
    }
    if (!has_work(g) || g->state != G_OPEN)
        uv_prepare_stop(h);
}

static void on_check(uv_check_t *h)
{
    wr_rgroup_t *g = h->data;
    uv_check_stop(h);
    if (uv_is_active((uv_handle_t *)&g->prep))
        on_prepare(&g->prep);
}

static void kick(wr_rgroup_t *g)
{
    if (g->state != G_CLOSING) {
        uv_prepare_start(&g->prep, on_prepare);
        uv_check_start(&g->chk, on_check);
    }
}

/* ----------------------------------------------------------- open, close */

void wr_rgroup_opts_default(wr_rgroup_opts_t *o)
{
    o->segment_size = 1u << 20;
    o->election_timeout_ms = 500;
    o->heartbeat_timeout_ms = 100;
    o->snapshot_threshold = 4096;
    o->snapshot_trailing = 512;
    o->connect_retry_ms = 500;
    o->max_batch = 4096;
    o->install_snapshot_timeout_ms = 30000;
    o->pre_vote = 1;
}

static void free_group(wr_rgroup_t *g)
{
    wr_durable_free(&g->durable);
    free(g->pend);
    free(g);
}

/* Both of the group's own handles (prep, chk) close with this callback;
 * the group goes with the second.  (libuv finishes closes in the reverse
 * order of the uv_close calls: freeing the group from the first callback
 * left the other handle's close to read freed memory, which crashed nodes
 * that deleted a busy quorum queue.) */
static void on_prep_closed(uv_handle_t *h)
{
    wr_rgroup_t *g = h->data;
    if (++g->handles_closed < 2)
        return;
    void (*done)(void *) = g->close_done;
    void *ud = g->close_ud;
    assert(g->head == NULL && g->n_pend == 0);
    free_group(g);
    if (done != NULL)
        done(ud);
}

static void on_raft_closed(struct raft *r)
{
    wr_rgroup_t *g = r->data;
    /* raft_uv has closed its handles and our transport by now. */
    raft_uv_close(&g->io);
    run_deferred(g); /* changes that raft failed while closing */
    fail_unresolved(g);
    uv_close((uv_handle_t *)&g->chk, on_prep_closed);
    uv_close((uv_handle_t *)&g->prep, on_prep_closed);
}

void wr_rgroup_close(wr_rgroup_t *g, void (*done)(void *), void *ud)
{
    assert(g->state == G_OPEN);
    g->close_done = done;
    g->close_ud = ud;
    g->state = G_CLOSE_REQUESTED;
    g->close_deadline = uv_now(g->loop) + 2000;
    kick(g);
}

static int fail_open(wr_rgroup_t *g, int rv, char *err, size_t errlen, const char *what)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "group %016llx: %s: %s (%s)", (unsigned long long)g->gid, what,
                 raft_strerror(rv), raft_errmsg(&g->raft));
    /* raft is initialised: close it like any group, nobody to tell. */
    g->state = G_CLOSING;
    raft_close(&g->raft, on_raft_closed);
    return rv == RAFT_NOMEM ? WR_ENOMEM : WR_EIO;
}

int wr_rgroup_open(wr_rgroup_t **out, wr_rnet_t *net, uint64_t group_id, const char *dir,
                   uint64_t self_id, const char *self_addr, const wr_rgroup_member_t *members,
                   size_t n_members, const wr_rgroup_cbs_t *cbs, void *ud,
                   const wr_rgroup_opts_t *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (self_id == 0 || cbs->apply == NULL || cbs->snapshot == NULL || cbs->restore == NULL) {
        snprintf(err, errlen, "invalid arguments");
        return WR_EINVAL;
    }
    wr_rgroup_t *g = wr_xcalloc(1, sizeof *g);
    g->net = net;
    g->loop = wr_rnet_loop(net);
    g->gid = group_id;
    g->self_id = self_id;
    g->cbs = *cbs;
    g->ud = ud;
    g->next_ticket = 1;
    g->pend_first = 1;
    if (opts != NULL)
        g->opts = *opts;
    else
        wr_rgroup_opts_default(&g->opts);
    if (g->opts.max_batch == 0)
        g->opts.max_batch = 1;
    if (self_addr == NULL)
        self_addr = wr_rnet_addr(net);
    int rv = wr_rnet_transport_init(net, &g->t, group_id);
    if (rv != 0) {
        snprintf(err, errlen, "group %016llx: %s", (unsigned long long)group_id,
                 rv == WR_EEXISTS ? "already open" : wr_strerror(rv));
        free_group(g);
        return rv;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
        wr_rnet_transport_abandon(&g->t);
        free_group(g);
        return WR_EIO;
    }
    uv_prepare_init(g->loop, &g->prep);
    g->prep.data = g;
    uv_check_init(g->loop, &g->chk);
    g->chk.data = g;
    g->fsm.version = 1;
    g->fsm.data = g;
    g->fsm.apply = fsm_apply;
    g->fsm.snapshot = fsm_snapshot;
    g->fsm.restore = fsm_restore;

    rv = raft_uv_init(&g->io, g->loop, dir, &g->t);
    if (rv != 0) {
        snprintf(err, errlen, "group %016llx: raft_uv_init %s: %s (%s)",
                 (unsigned long long)group_id, dir, raft_strerror(rv), g->io.errmsg);
        goto err_after_transport;
    }
    raft_uv_set_segment_size(&g->io, g->opts.segment_size);
    raft_uv_set_connect_retry_delay(&g->io, g->opts.connect_retry_ms);
    g->io_start = g->io.start;
    g->io.start = io_start_hook;
    rv = raft_init(&g->raft, &g->io, &g->fsm, self_id, self_addr);
    if (rv != 0) {
        snprintf(err, errlen, "group %016llx: raft_init: %s (%s)", (unsigned long long)group_id,
                 raft_strerror(rv), raft_errmsg(&g->raft));
        raft_uv_close(&g->io);
        goto err_after_transport;
    }
    g->raft.data = g;
    raft_set_election_timeout(&g->raft, g->opts.election_timeout_ms);
    raft_set_heartbeat_timeout(&g->raft, g->opts.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&g->raft, g->opts.snapshot_threshold);
    raft_set_snapshot_trailing(&g->raft, g->opts.snapshot_trailing);
    raft_set_install_snapshot_timeout(&g->raft, g->opts.install_snapshot_timeout_ms);
    raft_set_pre_vote(&g->raft, g->opts.pre_vote != 0);

    if (n_members > 0) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (size_t i = 0; i < n_members && rv == 0; i++)
            rv = raft_configuration_add(&conf, members[i].id, members[i].addr,
                                        members[i].standby ? RAFT_STANDBY : RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&g->raft, &conf);
        raft_configuration_close(&conf);
        /* A dir that holds a group already is a restart: its log has the
         * configuration. */
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
            return fail_open(g, rv, err, errlen, "bootstrap");
    }
    rv = raft_start(&g->raft);
    if (rv != 0)
        return fail_open(g, rv, err, errlen, "start");
    g->state = G_OPEN;
    *out = g;
    poll_leader(g);
    return 0;

err_after_transport:
    wr_rnet_transport_abandon(&g->t);
    g->state = G_CLOSING;
    uv_close((uv_handle_t *)&g->chk, on_prep_closed);
    uv_close((uv_handle_t *)&g->prep, on_prep_closed);
    return rv == RAFT_NOMEM ? WR_ENOMEM : WR_EIO;
}

/* ---------------------------------------------------------------- queries */

wr_durable_t *wr_rgroup_durable(wr_rgroup_t *g)
{
    return &g->durable;
}

int wr_rgroup_is_leader(wr_rgroup_t *g)
{
    return g->state == G_OPEN && g->ready && raft_state(&g->raft) == RAFT_LEADER;
}

uint64_t wr_rgroup_leader_id(wr_rgroup_t *g)
{
    if (g->state != G_OPEN)
        return 0;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&g->raft, &lid, &laddr);
    if (lid == g->self_id && !wr_rgroup_is_leader(g))
        return 0;
    return lid;
}

void wr_rgroup_info(wr_rgroup_t *g, wr_rgroup_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->is_leader = wr_rgroup_is_leader(g);
    out->leader_id = wr_rgroup_leader_id(g);
    out->proposals = g->next_ticket - 1;
    out->batches = g->n_batches;
    out->applied = g->n_applied;
    out->snapshots = g->n_snapshots;
    out->restores = g->n_restores;
    if (g->state != G_OPEN)
        return;
    out->raft_state = raft_state(&g->raft);
    out->term = g->raft.current_term;
    out->commit_index = g->raft.commit_index;
    out->last_applied = raft_last_applied(&g->raft);
    out->last_index = raft_last_index(&g->raft);
    for (unsigned i = 0; i < g->raft.configuration.n; i++) {
        switch (g->raft.configuration.servers[i].role) {
        case RAFT_VOTER:
            out->voters++;
            break;
        case RAFT_STANDBY:
            out->standbys++;
            break;
        default:
            out->spares++;
            break;
        }
    }
}
