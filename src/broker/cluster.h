/*
 * cluster.h - this node among the others: its name and id, the configured
 * members, and the inter-node network their Raft groups share.
 *
 * Formation is static, as RabbitMQ's classic_config peer discovery:
 *
 *   cluster.listener = 127.0.0.1:25672          this node's listener
 *   cluster.secret_file = /etc/warren/secret    the shared secret
 *   cluster_formation.peer_discovery_backend = classic_config
 *   cluster_formation.classic_config.nodes.1 = warren@127.0.0.1:25672
 *   cluster_formation.classic_config.nodes.2 = warren@127.0.0.1:25673
 *   ...
 *
 * A node's name is "warren@" followed by its listener; its id (the Raft
 * server id in every group) is a hash of the name, so every node computes
 * the same ids without talking.  A node finds itself in the list by its
 * listener.  Without cluster.listener the node runs alone (a single-member
 * cluster of itself, with an ephemeral loopback listener created when the
 * first quorum queue needs it) and nothing here costs anything.
 */
#ifndef WR_CLUSTER_H
#define WR_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/rgroup.h"
#include "cluster/rnet.h"
#include "core/config.h"

struct wr_queue;

/* Reads the cluster keys of cfg and, when clustered, starts the node's
 * listener.  Returns 0 or WR_E* with a message in err (a missing or
 * unreadable secret, a node list without this node, ...). */
int wr_cluster_start(const wr_config_t *cfg, char *err, size_t errlen);
/* Stops the listener once every group is closed. */
void wr_cluster_stop(void);

int wr_cluster_enabled(void);
/* This node's network, starting a loopback one for a node alone. */
int wr_cluster_net(wr_rnet_t **out, char *err, size_t errlen);
uint64_t wr_cluster_self_id(void);
/* This node's name: warren@HOST:PORT when clustered, else NULL. */
const char *wr_cluster_self_name(void);
/* The members a new quorum queue's group starts with: every configured
 * node not forgotten (this one alone when not clustered).  Owned here. */
size_t wr_cluster_members(const wr_rgroup_member_t **out);
/* forget_cluster_node, applied from the metadata log: node id is no
 * longer a member of anything new, nor listed (broker/cmeta.c). */
void wr_cluster_forget(uint64_t id);
/* The forgotten nodes' ids (at most max). */
size_t wr_cluster_forgotten(uint64_t *ids, size_t max);
/* The name of node id, or NULL if it is not a configured member. */
const char *wr_cluster_node_name(uint64_t id);
/* Its inter-node address (host:port), or NULL. */
const char *wr_cluster_node_addr(uint64_t id);
/* The id of the configured node called name (warren@host:port), or 0. */
uint64_t wr_cluster_node_id(const char *name);

/* Messages between nodes (their kinds; payloads are the sender's module's
 * business). */
enum {
    WR_CLUSTER_QQ_PROPOSE = 16, /* a quorum queue command for its leader */
    WR_CLUSTER_QQ_RESULT,       /* ... and whether the leader committed it */
    WR_CLUSTER_META_PROPOSE,    /* a metadata command for the metadata leader */
    WR_CLUSTER_QQ_ADMIN,        /* a quorum queue membership change for its leader */
    WR_CLUSTER_QQ_ADMIN_RESULT, /* ... and how it ended */
};
/* Sends a message to node (copied; in order per node while the link
 * stays up).  Returns 0, or WR_EAGAIN if the node is not reachable now. */
int wr_cluster_send(uint64_t node, uint8_t kind, const void *p, size_t n);
/* Whether node is up (this node always is; others: their link is). */
int wr_cluster_node_up(uint64_t node);

/* Handles still closing (the metadata group, broker/cmeta.h). */
size_t wr_cluster_closing(void);
/* wr_cluster_stop is still closing the links and the listener. */
int wr_cluster_stopping(void);
/* A leader's view for warrenctl cluster_status: running nodes. */
size_t wr_cluster_running(uint64_t *ids, size_t max);

#endif
