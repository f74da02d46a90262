/*
 * rgroup.h - one Raft group on warren's loop: a replicated log whose
 * committed entries every member applies in the same order.
 *
 * A group is libraft 0.15's `struct raft` with raft_uv storage in its own
 * directory and an rnet transport (cluster/rnet.h), so every group of a node
 * shares the node's one listener.  The Raft server id of a member is its
 * node id, the same in every group; the group id travels in the handshake.
 *
 * The caller supplies a deterministic state machine as callbacks:
 *
 *   apply(ud, index, p, n)   each committed command, in log order, on every
 *                            member; p is borrowed for the call.  index is
 *                            the entry's log index (increasing; gaps are the
 *                            log's own configuration and barrier entries).
 *   snapshot(ud, out)        serialise the whole state into out (0 or WR_E*).
 *   restore(ud, p, n)        replace the whole state (at start, and when the
 *                            leader sends a snapshot); p is borrowed.
 *   leader_changed(ud, is_leader, leader_id)
 *                            this member became or stopped being the ready
 *                            leader, or learned of another leader (0: none
 *                            known).  "Ready" means a barrier of its own term
 *                            has been applied, so that its state holds every
 *                            entry of earlier terms; until then a fresh
 *                            leader reports (0, 0) and refuses proposals.
 *
 * libraft 0.15 has no state-change callback, so the group checks
 * raft_state/raft_leader after each tick (every heartbeat timeout) and each
 * message it receives, by wrapping raft_uv's start method.
 *
 * Proposals.  wr_rgroup_propose copies a command and returns a ticket: a
 * counter local to this group instance, increasing by one per proposal (0:
 * not the ready leader, nothing done).  Proposals made during one loop pass
 * are handed to raft together, in one raft_apply with many buffers, from a
 * uv_prepare hook that runs just before the loop would block (batches are
 * capped at opts.max_batch entries).  When the batch's last entry has been
 * applied here (so a majority has it) while this member still leads in the
 * term it proposed the batch, the group's durability domain (core/
 * durable.h) advances to the batch's last ticket; a batch that fails
 * (leadership lost, not leader, shutdown) marks its tickets failed.  These
 * tickets are not log indexes (a proposal has none until its batch is
 * flushed).  Batches
 * resolve strictly in ticket order.  A failed ticket means "not confirmed":
 * its entry may still be committed later by a new leader that has it (the
 * same uncertainty as a nack in RabbitMQ).  As durable.h's `failed` is a
 * prefix, a waiter must act on a ticket when it is woken, not later.
 *
 * Life cycle:
 *
 *   open --raft_start--> running --wr_rgroup_close--> close requested
 *     (bootstrap on a pristine dir    (next loop pass: unflushed proposals
 *      with the initial members;       fail, raft_close, raft_uv_close)
 *      none: join an existing group)         --> done(ud), g freed
 *
 * Membership (on the leader; one change at a time, others get WR_EAGAIN):
 * add walks a new member spare -> standby (catches up) -> voter; assign
 * moves a member between voter and standby (a standby replicates the log
 * and applies it, but neither votes nor counts towards a majority); remove
 * drops one (the removed member is not told: its owner must close its group
 * once the removal is done); transfer hands leadership over.  The callback
 * runs exactly once, on a later loop pass, with 0 or a WR_E* code; when the
 * call itself returns non-zero the callback never runs.
 *
 * Errors: raft's codes map to WR_E*: not leader, leadership lost and "a
 * change is in progress" -> WR_EAGAIN (retry, here or at the leader); bad
 * id/role/address -> WR_EINVAL; shutdown -> WR_ECLOSED; I/O -> WR_EIO.
 *
 * Start-up cost: raft_uv_init/raft_init/raft_start are synchronous and
 * fsync-bound (~30 ms per group in the prototype); restore runs inside
 * wr_rgroup_open.
 *
 * Ownership: the group owns copies of dir, addresses and proposals.  The
 * rnet must outlive its groups (wr_rnet_stop waits for them).  The durable
 * domain lives until the close callback; whoever links waiters to it must
 * unlink them by then.
 */
#ifndef WR_RGROUP_H
#define WR_RGROUP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/rnet.h"
#include "core/buf.h"
#include "core/durable.h"

typedef struct wr_rgroup wr_rgroup_t;

typedef struct wr_rgroup_member {
    uint64_t id;      /* node id, != 0 */
    const char *addr; /* the node's rnet address, "host:port" */
    int standby;      /* bootstrap as a standby (gets the log, does not vote) */
} wr_rgroup_member_t;

/* A member's role in the group's configuration (wr_rgroup_role). */
enum { WR_RGROUP_VOTER = 1, WR_RGROUP_STANDBY, WR_RGROUP_SPARE };

typedef struct wr_rgroup_cbs {
    void (*apply)(void *ud, uint64_t index, const void *p, size_t n);
    int (*snapshot)(void *ud, wr_buf_t *out);
    int (*restore)(void *ud, const void *p, size_t n);
    void (*leader_changed)(void *ud, int is_leader, uint64_t leader_id); /* may be NULL */
} wr_rgroup_cbs_t;

typedef struct wr_rgroup_opts {
    size_t segment_size;           /* bytes per log segment; default 1 MiB */
    unsigned election_timeout_ms;  /* default 500 */
    unsigned heartbeat_timeout_ms; /* default 100 */
    unsigned snapshot_threshold;   /* entries between snapshots; default 4096 */
    unsigned snapshot_trailing;    /* entries kept after a snapshot; default 512 */
    unsigned connect_retry_ms;     /* raft_uv's reconnect delay; default 500 */
    unsigned max_batch;            /* entries per raft_apply; default 4096 */
    /* A snapshot sent to a follower that has not answered after this long
     * is sent again; default 30000 (libraft's).  The metadata group uses
     * 2000 (its snapshots are small; 30 s left a follower whose first
     * InstallSnapshot was lost on a reconnecting link behind for 30 s).
     * A quorum queue's snapshot may take longer than a few seconds to
     * install, and resending it then restarts the transfer. */
    unsigned install_snapshot_timeout_ms;
    int pre_vote; /* default 1 */
} wr_rgroup_opts_t;

/* A snapshot of the group's state for tests and the management API. */
typedef struct wr_rgroup_info {
    int is_leader; /* the ready leader */
    int raft_state;
    uint64_t leader_id;
    uint64_t term, commit_index, last_applied, last_index;
    unsigned voters, standbys, spares;
    uint64_t proposals; /* tickets handed out */
    uint64_t batches;   /* raft_apply calls accepted */
    uint64_t applied;   /* commands applied here */
    uint64_t snapshots; /* snapshots taken here */
    uint64_t restores;  /* snapshots restored here */
} wr_rgroup_info_t;

typedef void (*wr_rgroup_done_cb)(void *ud, int status);

void wr_rgroup_opts_default(wr_rgroup_opts_t *o);

/* Opens group_id with its raft_uv files in dir (created if missing; its
 * parent must exist).  self_addr is this node's rnet address (NULL: the
 * rnet's).  members: the initial configuration, identical on every initial
 * member, all voters; used to bootstrap a pristine dir and ignored on
 * restart.  n_members == 0 joins an existing group as a new member, to be
 * added by the leader with wr_rgroup_add.  opts may be NULL (defaults).
 * Returns 0 or WR_E* (WR_EEXISTS if the group is open on this rnet) with a
 * message in err; on failure nothing is left to close (a started raft is
 * torn down in the background). */
int wr_rgroup_open(wr_rgroup_t **out, wr_rnet_t *net, uint64_t group_id, const char *dir,
                   uint64_t self_id, const char *self_addr, const wr_rgroup_member_t *members,
                   size_t n_members, const wr_rgroup_cbs_t *cbs, void *ud,
                   const wr_rgroup_opts_t *opts, char *err, size_t errlen);

/* Closes the group on the next loop pass; done(ud) runs once every handle
 * and file is closed, after which g is gone.  Pending tickets fail.  No
 * callback of cbs runs after done, and none but failures of pending work
 * after this call.  Call once. */
void wr_rgroup_close(wr_rgroup_t *g, void (*done)(void *ud), void *ud);

/* Copies p[0..n) (n > 0) for the next batch; returns its ticket, or 0 if
 * this member is not the ready leader or is closing. */
uint64_t wr_rgroup_propose(wr_rgroup_t *g, const void *p, size_t n);

wr_durable_t *wr_rgroup_durable(wr_rgroup_t *g);
int wr_rgroup_is_leader(wr_rgroup_t *g);
/* The leader this member knows of (itself only when ready), or 0. */
uint64_t wr_rgroup_leader_id(wr_rgroup_t *g);

int wr_rgroup_add(wr_rgroup_t *g, uint64_t id, const char *addr, wr_rgroup_done_cb cb, void *ud);
int wr_rgroup_remove(wr_rgroup_t *g, uint64_t id, wr_rgroup_done_cb cb, void *ud);
/* Makes the member id a voter (voter != 0) or a standby: one configuration
 * change, the callback as for add.  Promoting a standby that lags makes
 * raft catch it up first. */
int wr_rgroup_assign(wr_rgroup_t *g, uint64_t id, int voter, wr_rgroup_done_cb cb, void *ud);
/* Changes the election timeout (from the next timer on). */
void wr_rgroup_set_election_timeout(wr_rgroup_t *g, unsigned ms);
/* The role of id in the configuration this member knows (WR_RGROUP_*), or
 * -1 if id is not in it. */
int wr_rgroup_role(wr_rgroup_t *g, uint64_t id);
/* The voters' ids (up to max into ids); returns how many there are. */
size_t wr_rgroup_voters(wr_rgroup_t *g, uint64_t *ids, size_t max);
/* id 0: raft picks a voter.  status 0 if leadership moved to it (to
 * another voter for 0), WR_EAGAIN if it did not within the election
 * timeout. */
int wr_rgroup_transfer(wr_rgroup_t *g, uint64_t id, wr_rgroup_done_cb cb, void *ud);

void wr_rgroup_info(wr_rgroup_t *g, wr_rgroup_info_t *out);

#endif
