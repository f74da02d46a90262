/*
 * cmeta.h - the cluster's replicated metadata: one Raft group, a member on
 * every node, whose log carries the topology that RabbitMQ 4 keeps in
 * Khepri and that every node must agree on.
 *
 * What it carries: exchanges (declare, delete), bindings whose destination
 * is an exchange or a quorum queue, and quorum queue declarations and
 * deletions.  Classic queues live on one node (as in RabbitMQ), so they and
 * the bindings to them stay out of the log.
 *
 * How a change travels.  The operations layer (broker/ops.c) checks and
 * applies a change on the node that is asked, as on a single node, then
 * hands the change here as a command, which gets a ticket (this node's id
 * and a number increasing across restarts).  The command goes to the
 * metadata leader (proposed here, or forwarded over the node link), and
 * every node, this one included, applies each committed command in log
 * order: declaring what is missing, replacing what differs, deleting what
 * is gone.  Applying a command in every node's log order is what makes the
 * nodes converge even when two of them change the same exchange at once
 * (the later command in the log wins).  A front end that must answer only
 * once the change is on a majority (AMQP's declare-ok, bind-ok, ...) waits
 * for its ticket with wr_cmeta_wait; the channel's connection reads no more
 * frames meanwhile, so later methods see the change applied.
 *
 * Commands a node could not hand to a leader (none elected, the link down,
 * a forward lost with a dying leader) stay pending and are sent again, in
 * order, when a leader appears and every few seconds; each node applies a
 * command at most once per ticket (it keeps the highest ticket it applied
 * from each origin, in its snapshots too).
 *
 * A snapshot is the replicated topology itself; restoring one declares
 * what is missing and removes the replicated objects the cluster no longer
 * has.  Without cluster keys nothing here runs and nothing costs.
 */
#ifndef WR_CMETA_H
#define WR_CMETA_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct wr_queue;
struct wr_exchange;
struct wr_vhost;

/* Opens the metadata group once the vhosts are open (clustered only). */
int wr_cmeta_open(const char *data_dir, char *err, size_t errlen);
/* Closes it (at shutdown); pending waits are cancelled. */
void wr_cmeta_close(void);
/* Handle still closing. */
size_t wr_cmeta_closing(void);
/* Whether a metadata command is being applied (a change made now comes
 * from the log: it is not proposed again). */
int wr_cmeta_applying(void);

/* A change made on this node, for every node: each returns its ticket, or
 * 0 when nothing is replicated (not clustered, or applying the log). */
uint64_t wr_cmeta_queue_declared(const struct wr_queue *q);
uint64_t wr_cmeta_queue_deleted(const char *vhost, wr_bytes_t name);
uint64_t wr_cmeta_exchange_declared(const struct wr_exchange *x);
uint64_t wr_cmeta_exchange_deleted(const char *vhost, wr_bytes_t name);
uint64_t wr_cmeta_bound(int bind, const char *vhost, wr_bytes_t source, int dest_is_queue,
                        wr_bytes_t dest, wr_bytes_t key, wr_bytes_t args);

/* forget_cluster_node: node id leaves the cluster on every node (its
 * members are removed from the metadata group and every quorum queue by
 * their leaders).  Returns the ticket, 0 if not replicating. */
uint64_t wr_cmeta_forget_node(uint64_t id);

/* The admin state (vhosts, users, permissions, policies, limits:
 * admin/replica.c) rides on this log as opaque commands: the admin module
 * proposes them, and applies, snapshots and restores its part. */
typedef struct wr_cmeta_admin {
    void (*apply)(const uint8_t *p, size_t n);
    void (*snapshot)(wr_buf_t *out);
    void (*restore)(const uint8_t *p, size_t n);
} wr_cmeta_admin_t;
void wr_cmeta_set_admin(const wr_cmeta_admin_t *a);
uint64_t wr_cmeta_admin(const void *p, size_t n);
/* Whether changes made now go to the log (clustered, not applying). */
int wr_cmeta_replicating(void);

/* Calls done(ctx, 1) once this node has applied the command of ticket
 * (committed on a majority; at once if the group is closed), or
 * done(ctx, 0) if the wait is cancelled (wr_cmeta_cancel with owner, or
 * shutdown). */
void wr_cmeta_wait(uint64_t ticket, void *owner, void (*done)(void *ctx, int applied), void *ctx);
/* Cancels every wait of owner (a connection going away). */
void wr_cmeta_cancel(void *owner);

/* From the node link: a command forwarded to this node as leader. */
void wr_cmeta_on_propose(uint64_t from, const uint8_t *p, size_t n);
/* The link to node came up: pending commands go if it leads. */
void wr_cmeta_peer_up(uint64_t node);
/* Once a second: pending commands older than a few seconds go again. */
void wr_cmeta_tick(void);

/* The ticket the next command will get: a front end compares it before
 * and after a request to learn whether it proposed anything, and waits for
 * the last one (tickets settle in order). */
uint64_t wr_cmeta_next_ticket(void);
/* For warrenctl and tests: commands not yet applied here. */
size_t wr_cmeta_pending(void);

#endif
