/*
 * quorum.h - quorum queues: a queue whose state is replicated through a
 * Raft group (cluster/rgroup.h) and decided by qfifo (broker/qfifo.h).
 *
 * A quorum queue is a wr_queue_t like any other (bindings, routing,
 * statistics and listings are shared) whose q->qq points here; the classic
 * queue's ready state (q->sm) is unused.  Every change of its state is a
 * command in the group's log:
 *
 *   ENQUEUE  a published message (exchange, routing key, properties,
 *            body, TTL, priority), proposed by the publishing node; the
 *            publisher's confirm waits for the group's durability domain,
 *            i.e. for the command to be committed by a majority
 *   ATTACH / DETACH   a consumer (node-unique id, prefetch, priority,
 *            no-ack) starts or stops receiving
 *   SETTLE / RETURN / DISCARD   ack, requeue, reject of one checked-out
 *            message (by its sequence number)
 *   GET      a basic.get; TICK  time passed (expiry); PURGE; LIMITS (a
 *            policy changed the queue's limits)
 *
 * Each command carries the proposer's clock; applying it runs the qfifo
 * command with that time, on every member, and yields the same effects
 * everywhere.  Who carries out which effect:
 *
 *   DELIVER, GET   the member hosting the consumer or getter (here: this
 *                  node), straight from its own replica, so deliveries do
 *                  not wait for a hop through the leader
 *   DEAD           the leader only (dead-lettering publishes a copy once);
 *                  members that are not the ready leader, including a node
 *                  replaying its log at start, only release the message
 *   GONE           every member (releases its copy of the message)
 *   TIMER          the leader only: it arms a timer and proposes TICK
 *
 * Dead-lettering is at-most-once: a leader that dies between applying a
 * command and publishing its dead-lettered copy loses that copy.
 *
 * Today a node runs alone (node id 1): each quorum queue is a Raft group
 * of one member, committed on this node's disk, and the group lives in the
 * vhost's directory (quorum/<group id in hex>).  Clustering (issue 12)
 * adds members on other nodes without changing the commands.
 */
#ifndef WR_QUORUM_H
#define WR_QUORUM_H

#include "broker/queue.h"

struct wr_channel;

/* Opens (creating or recovering) the Raft group of quorum queue q, whose
 * vhost has its store open.  Returns 0 or WR_E* with a message in err. */
int wr_quorum_open(wr_queue_t *q, char *err, size_t errlen);
/* The queue is deleted (remove_data: its log goes too) or the broker
 * stops (its log stays): the group closes in the background. */
void wr_quorum_close(wr_queue_t *q, int remove_data);
/* Groups still closing; the broker runs its loop until this is 0 before
 * tearing the loop down. */
size_t wr_quorum_closing(void);
/* Stops the node's inter-node network once no group is left. */
void wr_quorum_shutdown(void);

/* Publishes m to quorum queue q: proposes ENQUEUE and adds its ticket to
 * w (may be NULL).  Returns 0, or WR_EAGAIN when q has no leader here. */
int wr_quorum_push(wr_queue_t *q, wr_msg_t *m, wr_waits_t *w);
void wr_quorum_add_consumer(wr_queue_t *q, wr_consumer_t *c);
void wr_quorum_remove_consumer(wr_queue_t *q, wr_consumer_t *c);
/* A delivery of q that a channel held ends (how: WR_SETTLE_*): proposes
 * SETTLE, RETURN (RETURN: to the back; REQUEUE: to its place) or DISCARD,
 * and drops the channel's copy. */
void wr_quorum_settle(wr_queue_t *q, wr_qent_t *e, int how);
/* basic.get: the answer comes later, through the channel's
 * wr_channel_get_answer; returns WR_EAGAIN when q has no leader. */
int wr_quorum_get(wr_queue_t *q, struct wr_channel *ch, int no_ack);
/* The channel goes: forget its pending gets. */
void wr_quorum_channel_gone(struct wr_channel *ch);
/* queue.purge: proposes PURGE; returns the ready count it will remove. */
uint32_t wr_quorum_purge(wr_queue_t *q);
/* The queue's limits changed (a policy). */
void wr_quorum_limits_changed(wr_queue_t *q);

/* A message from another node (broker/cluster.h's kinds QQ_PROPOSE and
 * QQ_RESULT): a command forwarded to this node as a queue's leader, or
 * the answer to one this node forwarded. */
void wr_quorum_on_msg(uint64_t from, uint8_t kind, const uint8_t *p, size_t n);
/* Fails the forwarded commands still waiting for their queue here (at
 * shutdown). */
void wr_quorum_early_free(void);
/* The link to node_id went down: what was forwarded to it fails. */
void wr_quorum_peer_down(uint64_t node_id);
/* The link to node_id came up: what waited for it as a leader goes. */
void wr_quorum_peer_up(uint64_t node_id);

/* Membership (warrenctl add_member, delete_member, grow, shrink): makes
 * node target a voting member of q's group (MAKE_VOTER), a standby
 * replica that does not vote (MAKE_STANDBY), or its leader (LEAD).  The
 * change runs at the queue's leader, wherever it is; cb(ud, status) runs
 * once, later: 0, WR_EEXISTS (already a member; already leads),
 * WR_ENOTFOUND (not a member; no such node), WR_EINVAL (the last member),
 * WR_EAGAIN (no leader took it within 15 s) or WR_ECLOSED.  Returns 0 (cb
 * will run) or an error (it will not). */
enum { WR_QQ_MAKE_VOTER = 1, WR_QQ_MAKE_STANDBY, WR_QQ_LEAD };
/* forget_cluster_node applied: every group this node leads removes the
 * forgotten nodes' members (and a group does so when this node comes to
 * lead it). */
void wr_quorum_forget(void);
typedef void (*wr_quorum_admin_cb)(void *ud, int status);
int wr_quorum_admin(wr_queue_t *q, int op, uint64_t target, wr_quorum_admin_cb cb, void *ud);
/* Fails membership changes still waiting (at shutdown). */
void wr_quorum_admin_free(void);
/* The voting members' node ids as this member knows them (up to max into
 * ids); returns how many there are. */
size_t wr_quorum_members(const wr_queue_t *q, uint64_t *ids, size_t max);

/* This member's view of q's group (warrenctl quorum_status). */
typedef struct wr_quorum_status {
    int is_leader;
    uint64_t leader_id;
    uint64_t term, commit_index, last_applied, last_index;
} wr_quorum_status_t;
int wr_quorum_status(const wr_queue_t *q, wr_quorum_status_t *out);

size_t wr_quorum_ready(const wr_queue_t *q);
size_t wr_quorum_unacked(const wr_queue_t *q);
/* Dead-lettered messages kept until confirmed (at-least-once), and their
 * body bytes. */
size_t wr_quorum_dlx(const wr_queue_t *q, uint64_t *bytes);
uint64_t wr_quorum_ready_bytes(const wr_queue_t *q);
/* The node name of the leader ("warren@host:port"-style, or "" if none). */
const char *wr_quorum_leader(const wr_queue_t *q);
int wr_quorum_is_leader(const wr_queue_t *q);

#endif
