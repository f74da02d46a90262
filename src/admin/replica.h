/*
 * replica.h - the admin state (vhosts, users, permissions, topic
 * permissions, policies, operator policies, limits) replicated through the
 * cluster's metadata log (broker/cmeta.h).
 *
 * Every change to that state ends in wr_meta_save (admin/meta.h), whoever
 * makes it: warrenctl, the HTTP API, a definitions import.  There this
 * module compares the state with what it was after the last change
 * (wr_meta_state(0): what every node shares, without this node's vhost
 * ids) object by object, and proposes one command per object that changed:
 * {"op": "put" or "del", "kind": "vhosts" | "users" | "permissions" |
 * "topic_permissions" | "policies" | "operator_policies", "obj": {...}},
 * the object in broker.json's (and RabbitMQ definitions') shape.  Every
 * node applies the committed commands in log order, the origin included,
 * through the same calls warrenctl makes (creating a vhost opens its store
 * on each node), and saves its broker.json.  A snapshot carries the whole
 * state; restoring one puts what differs and deletes what is gone.
 *
 * The change is made on the node asked at once; the other nodes apply it
 * when it commits (milliseconds later).  warrenctl's answer and the HTTP
 * API's wait for the commit (admin/ctl.c, mgmt/api.c).  Without cluster keys
 * nothing here runs.
 */
#ifndef WR_REPLICA_H
#define WR_REPLICA_H

/* Registers with the metadata log; call after wr_meta_open and before
 * wr_cmeta_open (clustered only; a no-op otherwise). */
void wr_replica_start(void);
/* The admin state changed (called by wr_meta_save). */
void wr_replica_changed(void);
void wr_replica_stop(void);

#endif
