/*
 * rnet.h - the node's inter-node network for Raft groups.
 *
 * A node runs one TCP listener (e.g. 127.0.0.1:25672) for every Raft group
 * it hosts, in the way RabbitMQ runs one distribution port per node.  Each
 * group gets a `struct raft_uv_transport` from wr_rnet_transport_init; its
 * raft_uv instance asks it to connect to a peer, and the transport dials the
 * peer's single listener and names the group in a handshake before handing
 * the stream to raft_uv, which then speaks its own protocol on it.
 *
 * Handshake (all integers big-endian), see docs/clustering-raft.md:
 *
 *   listener -> dialer   u32 'WRCL' | u8[16] challenge
 *   dialer -> listener   u32 'WRCL' | u8 version (1) | u8 type | u16 A |
 *                        u64 group id | u64 sender node id | u8[16] nonce |
 *                        u8[A] sender address |
 *                        u8[32] HMAC-SHA256(secret, challenge || all before)
 *
 * The shared secret plays the part of RabbitMQ's Erlang cookie: a header
 * whose MAC does not verify is logged and the connection closed.  Because the
 * MAC covers the listener's fresh challenge, a recorded header cannot be
 * replayed on a new connection.  A header naming a group that is not open
 * here (yet) is closed quietly: the peer's raft_uv retries after its
 * connect-retry delay, so a group that opens later is reached then.  Each
 * side reads exactly its handshake bytes (the read buffer offered is never
 * larger than what is missing), so raft_uv's first byte is never consumed.
 *
 * The type byte says what the stream is for:
 *
 *   WR_RNET_RAFT (1)   one group's raft_uv stream (group id != 0 names it);
 *   WR_RNET_PEER (2)   a node-to-node message link (cluster/peer.h); the
 *                      group id is 0 and the authenticated stream goes to
 *                      the peer handler registered with
 *                      wr_rnet_set_peer_handler (none: closed quietly, as
 *                      for a group that is not open).
 *
 * Other values are rejected.
 *
 * Only the dialer proves it knows the secret; the listener does not prove
 * itself and the stream after the handshake is neither encrypted nor
 * authenticated (that needs TLS, not done).
 *
 * Lifetimes.  wr_rnet_start binds synchronously.  wr_rnet_stop closes the
 * listener and every handshake in progress at once; its done callback runs
 * once every group transport has also been closed (by raft_close of its
 * group), so groups may be closed before or concurrently with the stop.
 *
 * Everything runs on the loop given to wr_rnet_start; nothing is locked.
 */
#ifndef WR_RNET_H
#define WR_RNET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct raft_uv_transport;

typedef struct wr_rnet wr_rnet_t;

/* Handshake message types (the header's type byte). */
enum {
    WR_RNET_RAFT = 1, /* a raft_uv stream of one group */
    WR_RNET_PEER = 2, /* a node-to-node message link (group id 0) */
};

/* Longest "host:port" handled, including the NUL (the wire allows 255). */
#define WR_RNET_ADDR_MAX 256

/* Cumulative counters, for tests and the management API. */
typedef struct wr_rnet_stats {
    uint64_t accepted;       /* inbound streams handed to a group */
    uint64_t rejected_auth;  /* bad magic, version, type or MAC */
    uint64_t rejected_group; /* group not open here */
    uint64_t connected;      /* outbound streams handed to a group */
    uint64_t connect_failed; /* outbound attempts that failed or were canceled */
    uint64_t timed_out;      /* handshakes closed for taking too long */
    uint64_t peer_accepted;  /* inbound peer streams handed to the handler */
    uint64_t peer_rejected;  /* inbound peer streams with no handler here */
    uint64_t peer_connected; /* outbound peer streams handed to the dialer */
} wr_rnet_stats_t;

/* Binds and listens on listen_addr ("host:port", IPv4 or "[v6]:port"; port 0
 * picks a free port, see wr_rnet_addr).  The secret is copied; it must not
 * be empty (32 random bytes are recommended).  On failure returns a WR_E*
 * code with a message in err. */
int wr_rnet_start(wr_rnet_t **out, uv_loop_t *loop, const char *listen_addr, const uint8_t *secret,
                  size_t secret_len, char *err, size_t errlen);

/* Stops listening, closes handshakes in progress, cancels peer dials (their
 * callbacks run with WR_ECLOSED), and calls done(ud) once every group
 * transport has been closed and every peer dial has finished; n is freed
 * before done runs.  A peer handler must have been unregistered (the peer
 * module stopped) before.  Call once. */
void wr_rnet_stop(wr_rnet_t *n, void (*done)(void *ud), void *ud);

/* The bound address as "host:port" (with the real port when 0 was asked
 * for).  Owned by n, valid until it is stopped. */
const char *wr_rnet_addr(const wr_rnet_t *n);
uv_loop_t *wr_rnet_loop(const wr_rnet_t *n);
void wr_rnet_stats(const wr_rnet_t *n, wr_rnet_stats_t *out);

/* For rgroup.  Fills t's methods so that it carries group_id's streams, and
 * registers the group so that inbound handshakes naming it reach it once
 * raft_uv listens.  t is the caller's, must stay valid until its close
 * callback has run, and must be passed to raft_uv_init after this call
 * (raft_uv_init sets t->data; this module uses only t->impl).  Returns
 * WR_EEXISTS if the group is already registered, WR_ECLOSED while stopping.
 */
int wr_rnet_transport_init(wr_rnet_t *n, struct raft_uv_transport *t, uint64_t group_id);

/* Unregisters a transport that raft never started (raft_uv_init or
 * raft_init failed), which therefore will never be closed by raft_uv. */
void wr_rnet_transport_abandon(struct raft_uv_transport *t);

/* ---- Peer links (for cluster/peer.c) ---------------------------------- */

/* An inbound peer stream, authenticated as coming from node from_node
 * (which claims from_addr, borrowed for the call).  s is a connected TCP
 * stream that is not reading; it is the handler's from here: it must
 * uv_close it and call wr_rnet_stream_free on it from the close callback. */
typedef void (*wr_rnet_peer_cb)(void *ud, uint64_t from_node, const char *from_addr,
                                uv_stream_t *s);

/* Registers the node's one peer handler and the node id it dials as
 * (self_id != 0; the sender address sent is wr_rnet_addr).  on_stream NULL
 * unregisters.  Returns WR_EEXISTS if another handler is registered,
 * WR_EINVAL for id 0, WR_ECLOSED while stopping (for a registration). */
int wr_rnet_set_peer_handler(wr_rnet_t *n, uint64_t self_id, wr_rnet_peer_cb on_stream, void *ud);

typedef struct conn_out wr_rnet_dial_t;

/* The end of a peer dial: status 0 and s the stream (owned by the caller
 * from here, with the same rules as wr_rnet_peer_cb's), or status WR_EIO
 * (could not connect, not a warren listener, timed out) or WR_ECLOSED
 * (canceled, or the rnet is stopping) and s NULL. */
typedef void (*wr_rnet_dial_cb)(void *ud, uv_stream_t *s, int status);

/* Connects to the rnet listening at addr ("host:port") and does the
 * dialer's side of a WR_RNET_PEER handshake as the registered self id.
 * On 0, cb runs exactly once, on a later loop pass, and *out (if not NULL)
 * names the attempt until then.  Returns WR_EINVAL (bad address, or no
 * peer handler registered), WR_ECLOSED while stopping, or WR_EIO; cb then
 * never runs.  The listener does not prove who it is: the peer module
 * checks the node id in its first frame. */
int wr_rnet_dial_peer(wr_rnet_t *n, const char *addr, wr_rnet_dial_cb cb, void *ud,
                      wr_rnet_dial_t **out);

/* Cancels a dial whose callback has not run yet; the callback then runs
 * later with WR_ECLOSED. */
void wr_rnet_dial_cancel(wr_rnet_dial_t *d);

/* Frees a stream handed over by the peer paths, from its close callback. */
void wr_rnet_stream_free(uv_handle_t *h);

#endif
