/*
 * peer.h - node-to-node message links: how one node forwards work to
 * another (a quorum queue command to the queue's Raft leader, and the result
 * back) and knows which peer nodes are up.
 *
 * Each node keeps one outbound link to every peer it has been told about
 * (wr_peers_add) and sends only on those; it receives only on inbound links,
 * which peers open to it through the node's rnet listener (a WR_RNET_PEER
 * handshake, authenticated with the cluster secret, see cluster/rnet.h).
 * So between two nodes there are two TCP connections, one per direction.
 * An outbound link whose peer is unreachable is redialled with a backoff
 * from 100 ms doubling to 1 s.
 *
 * Messages are framed (see docs/clustering-raft.md, "Peer links"):
 *
 *   u32 n (payload length, <= WR_PEER_FRAME_MAX) | u8 kind | u8[n] payload
 *
 * Kinds below WR_PEER_KIND_MIN belong to the link (hello, heartbeat);
 * callers use WR_PEER_KIND_MIN..255.  A larger frame, or any other breach
 * of the link protocol, drops the link.
 *
 * Up and down.  A peer is up when its outbound link is established (the
 * peer answered our hello with its node id) AND something (a message, a
 * hello or a heartbeat) arrived from that node on an inbound link within
 * the last WR_PEER_UP_WINDOW_MS.  Idle outbound links carry a heartbeat
 * every WR_PEER_HEARTBEAT_MS.  on_change reports each change of a known
 * peer's state, from the loop (a prepare hook or the link timer), never
 * from inside a wr_peers_* call; wr_peers_up reads the current state, so it
 * can be ahead of the last on_change by up to one timer tick (100 ms).
 *
 * Delivery.  Messages to one peer are delivered in the order they were
 * sent while the outbound link stays up; a link that drops loses whatever
 * it had queued or in flight, without telling anyone which (the caller's
 * protocol copes: request ids and timeouts).  When a node redials, its new
 * inbound link supersedes the old one here, so nothing from an old link
 * is delivered after something from a new one.  Messages from nodes never
 * added (a node joining) are delivered too; up/down is tracked only for
 * added nodes.
 *
 * Output is batched: sends append to the link's buffer and one uv_write
 * per link goes out from a uv_prepare hook once per loop pass.  A send
 * that would take a link's unsent output (its buffer plus libuv's write
 * queue) past WR_PEER_OUT_MAX drops the link (it is redialled) rather than
 * grow it without bound; one message alone always fits on a link that has
 * caught up.
 *
 * Ownership and lifetimes.  The rnet must outlive the peers: stop them
 * first (wr_peers_stop unregisters the peer handler).  Payloads given to
 * wr_peers_send are copied; the payload given to on_msg is borrowed for
 * the call.  Callbacks may call any wr_peers_* function, including
 * wr_peers_stop; after wr_peers_stop no callback of the caller runs.
 * Everything runs on the rnet's loop; nothing is locked.
 */
#ifndef WR_PEER_H
#define WR_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/rnet.h"

typedef struct wr_peers wr_peers_t;

/* Largest payload of one message. */
#define WR_PEER_FRAME_MAX (64u << 20)
/* Unsent output per link beyond which the link is dropped. */
#define WR_PEER_OUT_MAX (64u << 20)
/* First kind available to callers; lower kinds are the link's own. */
#define WR_PEER_KIND_MIN     16
#define WR_PEER_HEARTBEAT_MS 1000
#define WR_PEER_UP_WINDOW_MS 3000

/* A message from node `from` (the id it authenticated as); p[0..n) is
 * borrowed for the call. */
typedef void (*wr_peers_msg_cb)(void *ud, uint64_t from, uint8_t kind, const uint8_t *p, size_t n);
/* A known peer went up (1) or down (0). */
typedef void (*wr_peers_change_cb)(void *ud, uint64_t node, int up);

/* Counters, for tests and the management API. */
typedef struct wr_peers_stats {
    uint64_t sent;          /* messages queued by wr_peers_send */
    uint64_t received;      /* messages delivered to on_msg */
    uint64_t links_up;      /* outbound links established */
    uint64_t links_dropped; /* links (either way) closed for any reason */
    uint64_t proto_errors;  /* links dropped for breaking the link protocol */
    uint64_t overflows;     /* links dropped for too much unsent output */
} wr_peers_stats_t;

/* Starts the peer links of node self_id (!= 0) on net's loop and registers
 * as net's peer handler.  on_change may be NULL.  Returns 0, WR_EINVAL,
 * WR_EEXISTS (net has a peer handler already) or WR_ECLOSED. */
int wr_peers_start(wr_peers_t **out, wr_rnet_t *net, uint64_t self_id, wr_peers_msg_cb on_msg,
                   wr_peers_change_cb on_change, void *ud);

/* Knows node (!= 0, != self) at addr ("host:port", its rnet address, copied)
 * and starts dialling it.  Adding a known node with a new address redials
 * there; with the same address does nothing.  Returns 0, WR_EINVAL or
 * WR_ECLOSED (stopping). */
int wr_peers_add(wr_peers_t *ps, uint64_t node, const char *addr);

/* Forgets node: closes its outbound link (what was queued is lost) and
 * stops dialling it.  No on_change follows for it.  Inbound links from it
 * stay until it closes them.  No-op for an unknown node. */
void wr_peers_remove(wr_peers_t *ps, uint64_t node);

/* Queues a copy of p[0..n) as one message of kind (>= WR_PEER_KIND_MIN) to
 * node.  Returns 0; WR_EAGAIN if node is not up (nothing queued; also when
 * this message overflowed the link, which is then dropped); WR_ETOOBIG if
 * n > WR_PEER_FRAME_MAX; WR_EINVAL for a reserved kind; WR_ENOTFOUND for a
 * node never added; WR_ECLOSED once stopping. */
int wr_peers_send(wr_peers_t *ps, uint64_t node, uint8_t kind, const void *p, size_t n);

/* 1 if node is up now (see above), else 0. */
int wr_peers_up(const wr_peers_t *ps, uint64_t node);

void wr_peers_stats(const wr_peers_t *ps, wr_peers_stats_t *out);

/* Unregisters from the rnet, closes every link and dial, and calls done(ud)
 * once all are closed; ps is freed before done runs.  Nothing queued is
 * flushed.  Call once. */
void wr_peers_stop(wr_peers_t *ps, void (*done)(void *ud), void *ud);

#endif
