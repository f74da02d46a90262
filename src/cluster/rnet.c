/*
 * rnet.c - one listener per node, one raft_uv transport per group (see
 * rnet.h for the handshake and the rules).
 *
 * Connection states.  An outbound attempt (conn_out) belongs to a group's
 * endpoint (a raft dial) or to the node (a peer dial, ep NULL) until it is
 * handed over or fails:
 *
 *   CONNECTING --tcp up--> READ_CHALLENGE --20 bytes--> WRITE_HEADER --sent--> raft_uv / dialer
 *        \________________________|__________________________|
 *                 error, timeout, transport close or cancel: uv_close, then
 *                 the callback with RAFT_NOCONNECTION / RAFT_CANCELED (raft)
 *                 or WR_EIO / WR_ECLOSED (peer)
 *
 * An inbound connection (conn_in) belongs to the node until its header has
 * been verified and the challenge write has completed:
 *
 *   accepted --challenge written + header read + MAC ok--> group's accept_cb
 *       |                                               \-> peer handler (type 2)
 *       \--bad header/MAC, unknown group, no handler, EOF, timeout, stop--> uv_close
 *
 * Invariants: a connection is in exactly one list (n->ins or n->outs) until
 * its handle's close callback runs or it is handed over; `closing` is set
 * exactly when uv_close has been called, and the close callback is the only
 * place that finishes it.  Handles handed to raft_uv are raft_malloc'd
 * because raft_uv uv_close()s them and raft_free()s them.
 *
 * An endpoint (one per group) lives from wr_rnet_transport_init until its
 * close callback has run.  raft_uv calls transport->close and expects the
 * callback later, not re-entrantly, once pending connects are canceled: the
 * endpoint waits for its outbound attempts to finish closing, then the node's
 * `defer` timer runs the callback and frees the endpoint.  One timer serves
 * every endpoint, so a group costs no handle of its own here.
 */
#include "cluster/rnet.h"

#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/map.h"

#define MAGIC         0x5752434cu /* "WRCL" */
#define VERSION       1
#define NONCE_LEN     16
#define CHALLENGE_LEN (4 + NONCE_LEN)
#define FIXED_LEN     40 /* magic .. nonce */
#define ADDR_WIRE_MAX 255
#define MAC_LEN       32
#define HDR_MAX       (FIXED_LEN + ADDR_WIRE_MAX + MAC_LEN)
/* A handshake is two small messages; one that has not finished in this long
 * is a stuck or hostile peer, and it holds a descriptor. */
#define HANDSHAKE_MS 5000
#define SWEEP_MS     1000

typedef struct ep ep_t;
typedef struct conn_in conn_in_t;
typedef struct conn_out conn_out_t;

struct ep {
    wr_rnet_t *n;
    struct raft_uv_transport *t;
    uint64_t gid;
    uint64_t self_id;
    char self_addr[ADDR_WIRE_MAX + 1];
    char key[17]; /* gid in hex: the key in n->groups */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    size_t n_out; /* outbound attempts not yet finished */
    int closing;
    int queued; /* on n->closed_eps */
    ep_t *next_closed;
};

struct conn_out {
    conn_out_t *prev, *next;
    wr_rnet_t *n;
    ep_t *ep; /* NULL for a peer dial */
    wr_rnet_dial_cb pcb;
    void *pud;
    int canceled; /* a peer dial was canceled */
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb; /* raft_uv passes it here, not in req->cb */
    uv_tcp_t *tcp;         /* raft_malloc'd; raft_uv's once handed over */
    uv_connect_t creq;
    uv_write_t wreq;
    uint64_t started;
    int status; /* RAFT_* reported when it fails */
    int closing;
    size_t got;
    uint8_t chal[CHALLENGE_LEN];
    size_t hdr_len;
    uint8_t hdr[HDR_MAX];
};

struct conn_in {
    conn_in_t *prev, *next;
    wr_rnet_t *n;
    uv_tcp_t *tcp; /* raft_malloc'd; raft_uv's once handed over */
    uv_write_t wreq;
    uint64_t started;
    int closing;
    int wrote;    /* the challenge write completed */
    int complete; /* the header was read and verified */
    size_t need, got;
    char peer[64];
    uint8_t chal[CHALLENGE_LEN];
    uint8_t hdr[HDR_MAX];
};

struct wr_rnet {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep; /* closes stalled handshakes */
    uv_timer_t defer; /* runs transport close callbacks */
    char addr[WR_RNET_ADDR_MAX];
    uint8_t *secret;
    size_t secret_len;
    wr_map_t groups; /* key: ep->key, value: ep_t * */
    conn_in_t *ins;
    conn_out_t *outs;
    ep_t *closed_eps;
    size_t n_eps;
    wr_rnet_stats_t stats;
    size_t n_dials; /* peer dials not yet finished */
    wr_rnet_peer_cb peer_cb;
    void *peer_ud;
    uint64_t peer_self_id;
    int stopping;
    int finishing;
    int handles; /* open handles of our own: listener, sweep, defer */
    int timers;  /* sweep and defer were initialised */
    void (*stop_done)(void *);
    void *stop_ud;
};

static void maybe_finish(wr_rnet_t *n);

/* ---------------------------------------------------------------- helpers */

/* Parses "host:port" or "[v6]:port". */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(s, ':');
    char host[WR_RNET_ADDR_MAX];
    char *end;
    if (colon == NULL || colon == s)
        return WR_EINVAL;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return WR_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port > 65535)
        return WR_EINVAL;
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return WR_EINVAL;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char ip[64] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, outlen, "[%s]:%d", ip, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, outlen, "%s:%d", ip, port);
    }
}

/* HMAC-SHA256(secret, challenge nonce || hdr[0..len)). */
static int compute_mac(const wr_rnet_t *n, const uint8_t *nonce, const uint8_t *hdr, size_t len,
                       uint8_t *mac)
{
    uint8_t msg[NONCE_LEN + FIXED_LEN + ADDR_WIRE_MAX];
    unsigned mlen = 0;
    assert(len <= FIXED_LEN + ADDR_WIRE_MAX);
    memcpy(msg, nonce, NONCE_LEN);
    memcpy(msg + NONCE_LEN, hdr, len);
    if (HMAC(EVP_sha256(), n->secret, (int)n->secret_len, msg, NONCE_LEN + len, mac, &mlen) ==
            NULL ||
        mlen != MAC_LEN)
        return WR_EIO;
    return 0;
}

static void free_raft_handle(uv_handle_t *h)
{
    raft_free(h);
}

static void group_key(uint64_t gid, char key[17])
{
    snprintf(key, 17, "%016llx", (unsigned long long)gid);
}

/* --------------------------------------------------------------- endpoints */

static void on_defer(uv_timer_t *tm)
{
    wr_rnet_t *n = tm->data;
    while (n->closed_eps != NULL) {
        ep_t *ep = n->closed_eps;
        n->closed_eps = ep->next_closed;
        struct raft_uv_transport *t = ep->t;
        raft_uv_transport_close_cb cb = ep->close_cb;
        t->impl = NULL;
        n->n_eps--;
        free(ep);
        /* raft_uv may free t (with the whole group) from here on. */
        if (cb != NULL)
            cb(t);
    }
    maybe_finish(n);
}

static void ep_maybe_closed(ep_t *ep)
{
    if (!ep->closing || ep->n_out > 0 || ep->queued)
        return;
    ep->queued = 1;
    ep->next_closed = ep->n->closed_eps;
    ep->n->closed_eps = ep;
    uv_timer_start(&ep->n->defer, on_defer, 0, 0);
}

/* -------------------------------------------------------------- outbound */

static void out_unlink(wr_rnet_t *n, conn_out_t *o)
{
    if (o->prev != NULL)
        o->prev->next = o->next;
    else
        n->outs = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    o->prev = o->next = NULL;
}

static void peer_out_closed(conn_out_t *o)
{
    wr_rnet_t *n = o->n;
    int status = o->canceled || n->stopping ? WR_ECLOSED : WR_EIO;
    wr_rnet_dial_cb cb = o->pcb;
    void *ud = o->pud;
    out_unlink(n, o);
    raft_free(o->tcp);
    n->n_dials--;
    n->stats.connect_failed++;
    free(o);
    cb(ud, NULL, status);
    maybe_finish(n);
}

static void out_closed(uv_handle_t *h)
{
    conn_out_t *o = h->data;
    if (o->ep == NULL) {
        peer_out_closed(o);
        return;
    }
    ep_t *ep = o->ep;
    wr_rnet_t *n = ep->n;
    int status = ep->closing ? RAFT_CANCELED : o->status;
    out_unlink(n, o);
    raft_free(o->tcp);
    ep->n_out--;
    n->stats.connect_failed++;
    raft_uv_connect_cb cb = o->cb;
    struct raft_uv_connect *req = o->req;
    free(o);
    cb(req, NULL, status);
    ep_maybe_closed(ep);
}

static void out_fail(conn_out_t *o, int status)
{
    if (o->closing)
        return;
    o->closing = 1;
    o->status = status;
    uv_close((uv_handle_t *)o->tcp, out_closed);
}

static void out_written(uv_write_t *w, int status)
{
    conn_out_t *o = w->data;
    if (o->closing)
        return;
    if (status < 0) {
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    if (o->ep == NULL) {
        wr_rnet_t *n = o->n;
        wr_rnet_dial_cb cb = o->pcb;
        void *ud = o->pud;
        uv_stream_t *s = (uv_stream_t *)o->tcp;
        out_unlink(n, o);
        n->n_dials--;
        n->stats.peer_connected++;
        free(o);
        /* The stream is the dialer's from here (wr_rnet_stream_free). */
        cb(ud, s, 0);
        maybe_finish(n);
        return;
    }
    ep_t *ep = o->ep;
    out_unlink(ep->n, o);
    ep->n_out--;
    ep->n->stats.connected++;
    raft_uv_connect_cb cb = o->cb;
    struct raft_uv_connect *req = o->req;
    uv_stream_t *s = (uv_stream_t *)o->tcp;
    free(o);
    /* The stream and its raft_malloc'd memory are raft_uv's from here. */
    cb(req, s, 0);
}

static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn_out_t *o = h->data;
    (void)hint;
    /* Never more than the rest of the challenge: raft_uv reads after us. */
    b->base = (char *)o->chal + o->got;
    b->len = CHALLENGE_LEN - o->got;
}

static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_out_t *o = s->data;
    ep_t *ep = o->ep;
    wr_rnet_t *n = o->n;
    (void)b;
    if (nread == 0 || o->closing)
        return;
    if (nread < 0) {
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    o->got += (size_t)nread;
    if (o->got < CHALLENGE_LEN)
        return;
    uv_read_stop(s);
    if (wr_get_u32(o->chal) != MAGIC) {
        if (ep != NULL)
            wr_warn("rnet: group %016llx: peer is not a warren cluster listener",
                    (unsigned long long)ep->gid);
        else
            wr_warn("rnet: peer dial: not a warren cluster listener");
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    /* A peer dial names no group and sends the node's own address. */
    const char *self_addr = ep != NULL ? ep->self_addr : n->addr;
    size_t alen = strlen(self_addr);
    uint8_t *h = o->hdr;
    wr_set_u32(h, MAGIC);
    h[4] = VERSION;
    h[5] = ep != NULL ? WR_RNET_RAFT : WR_RNET_PEER;
    wr_set_u16(h + 6, (uint16_t)alen);
    wr_set_u64(h + 8, ep != NULL ? ep->gid : 0);
    wr_set_u64(h + 16, ep != NULL ? ep->self_id : n->peer_self_id);
    if (RAND_bytes(h + 24, NONCE_LEN) != 1) {
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    memcpy(h + FIXED_LEN, self_addr, alen);
    if (compute_mac(n, o->chal + 4, h, FIXED_LEN + alen, h + FIXED_LEN + alen) != 0) {
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    o->hdr_len = FIXED_LEN + alen + MAC_LEN;
    uv_buf_t buf = uv_buf_init((char *)o->hdr, (unsigned)o->hdr_len);
    o->wreq.data = o;
    if (uv_write(&o->wreq, s, &buf, 1, out_written) != 0)
        out_fail(o, RAFT_NOCONNECTION);
}

static void out_connected(uv_connect_t *c, int status)
{
    conn_out_t *o = c->data;
    if (o->closing)
        return;
    if (status < 0) {
        out_fail(o, RAFT_NOCONNECTION);
        return;
    }
    if (uv_read_start((uv_stream_t *)o->tcp, out_alloc, out_read) != 0)
        out_fail(o, RAFT_NOCONNECTION);
}

/* ------------------------------------------------- the transport methods */

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    ep_t *ep = t->impl;
    size_t alen = strlen(address);
    if (alen == 0 || alen > ADDR_WIRE_MAX) {
        snprintf(t->errmsg, sizeof t->errmsg, "address too long or empty");
        return RAFT_INVALID;
    }
    ep->self_id = id;
    memcpy(ep->self_addr, address, alen + 1);
    return 0;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    ep_t *ep = t->impl;
    /* The node's listener is already bound; from now on handshakes naming
     * this group reach raft_uv. */
    ep->accept_cb = cb;
    return 0;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
    ep_t *ep = t->impl;
    wr_rnet_t *n = ep->n;
    struct sockaddr_storage ss;
    (void)id;
    if (ep->closing)
        return RAFT_CANCELED;
    if (parse_addr(address, &ss) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "bad address %.200s", address);
        return RAFT_NOCONNECTION;
    }
    conn_out_t *o = wr_xcalloc(1, sizeof *o);
    o->n = n;
    o->ep = ep;
    o->req = req;
    o->cb = cb;
    o->started = uv_now(n->loop);
    o->tcp = raft_malloc(sizeof *o->tcp);
    if (o->tcp == NULL) {
        free(o);
        return RAFT_NOMEM;
    }
    uv_tcp_init(n->loop, o->tcp);
    o->tcp->data = o;
    o->creq.data = o;
    int rv = uv_tcp_connect(&o->creq, o->tcp, (const struct sockaddr *)&ss, out_connected);
    if (rv != 0) {
        uv_close((uv_handle_t *)o->tcp, free_raft_handle);
        free(o);
        snprintf(t->errmsg, sizeof t->errmsg, "connect: %s", uv_strerror(rv));
        return RAFT_NOCONNECTION;
    }
    uv_tcp_nodelay(o->tcp, 1);
    o->next = n->outs;
    if (n->outs != NULL)
        n->outs->prev = o;
    n->outs = o;
    ep->n_out++;
    return 0;
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    ep_t *ep = t->impl;
    wr_rnet_t *n = ep->n;
    ep->closing = 1;
    ep->close_cb = cb;
    ep->accept_cb = NULL;
    wr_map_del(&n->groups, wr_bytes_of(ep->key));
    /* out_fail only starts the close; the list changes in out_closed. */
    for (conn_out_t *o = n->outs; o != NULL; o = o->next)
        if (o->ep == ep)
            out_fail(o, RAFT_CANCELED);
    ep_maybe_closed(ep);
}

int wr_rnet_transport_init(wr_rnet_t *n, struct raft_uv_transport *t, uint64_t group_id)
{
    char key[17];
    if (n->stopping)
        return WR_ECLOSED;
    group_key(group_id, key);
    if (wr_map_get(&n->groups, wr_bytes_of(key)) != NULL)
        return WR_EEXISTS;
    ep_t *ep = wr_xcalloc(1, sizeof *ep);
    ep->n = n;
    ep->t = t;
    ep->gid = group_id;
    memcpy(ep->key, key, sizeof key);
    memset(t, 0, sizeof *t);
    t->impl = ep;
    t->init = t_init;
    t->listen = t_listen;
    t->connect = t_connect;
    t->close = t_close;
    wr_map_put(&n->groups, wr_bytes_of(ep->key), ep);
    n->n_eps++;
    return 0;
}

void wr_rnet_transport_abandon(struct raft_uv_transport *t)
{
    ep_t *ep = t->impl;
    if (ep == NULL)
        return;
    wr_rnet_t *n = ep->n;
    assert(ep->n_out == 0 && !ep->closing);
    wr_map_del(&n->groups, wr_bytes_of(ep->key));
    t->impl = NULL;
    n->n_eps--;
    free(ep);
    maybe_finish(n);
}

/* --------------------------------------------------------------- inbound */

static void in_unlink(conn_in_t *in);

static void in_closed(uv_handle_t *h)
{
    conn_in_t *in = h->data;
    wr_rnet_t *n = in->n;
    in_unlink(in);
    raft_free(in->tcp);
    free(in);
    maybe_finish(n);
}

static void in_drop(conn_in_t *in)
{
    if (in->closing)
        return;
    in->closing = 1;
    uv_close((uv_handle_t *)in->tcp, in_closed);
}

static void in_reject_auth(conn_in_t *in, const char *why)
{
    in->n->stats.rejected_auth++;
    wr_warn("rnet: closing connection from %s: %s", in->peer, why);
    in_drop(in);
}

static void in_unlink(conn_in_t *in)
{
    wr_rnet_t *n = in->n;
    if (in->prev != NULL)
        in->prev->next = in->next;
    else
        n->ins = in->next;
    if (in->next != NULL)
        in->next->prev = in->prev;
}

static void in_handoff_peer(conn_in_t *in, uint64_t from, const char *addr)
{
    wr_rnet_t *n = in->n;
    if (n->peer_cb == NULL || n->stopping) {
        /* The peer module is not running (yet): the dialer retries. */
        n->stats.peer_rejected++;
        wr_debug("rnet: node %llu (%s) opened a peer link, no peer handler here",
                 (unsigned long long)from, addr);
        in_drop(in);
        return;
    }
    in_unlink(in);
    uv_stream_t *s = (uv_stream_t *)in->tcp;
    free(in);
    n->stats.peer_accepted++;
    /* The stream is the handler's from here (wr_rnet_stream_free). */
    n->peer_cb(n->peer_ud, from, addr, s);
}

static void in_handoff(conn_in_t *in)
{
    wr_rnet_t *n = in->n;
    const uint8_t *h = in->hdr;
    size_t alen = wr_get_u16(h + 6);
    uint64_t gid = wr_get_u64(h + 8);
    uint64_t from = wr_get_u64(h + 16);
    char addr[ADDR_WIRE_MAX + 1];
    char key[17];
    memcpy(addr, h + FIXED_LEN, alen);
    addr[alen] = '\0';
    if (h[5] == WR_RNET_PEER) {
        in_handoff_peer(in, from, addr);
        return;
    }
    group_key(gid, key);
    ep_t *ep = wr_map_get(&n->groups, wr_bytes_of(key));
    if (ep == NULL || ep->closing || ep->accept_cb == NULL || n->stopping) {
        /* Usual while groups are being created across the cluster: the
         * peer retries, so this is not worth more than a debug line. */
        n->stats.rejected_group++;
        wr_debug("rnet: node %llu (%s) asked for group %016llx, not open here",
                 (unsigned long long)from, addr, (unsigned long long)gid);
        in_drop(in);
        return;
    }
    in_unlink(in);
    uv_stream_t *s = (uv_stream_t *)in->tcp;
    free(in);
    n->stats.accepted++;
    /* The stream and its raft_malloc'd memory are raft_uv's from here. */
    ep->accept_cb(ep->t, from, addr, s);
}

static void in_written(uv_write_t *w, int status)
{
    conn_in_t *in = w->data;
    if (in->closing)
        return;
    if (status < 0) {
        in_drop(in);
        return;
    }
    in->wrote = 1;
    if (in->complete)
        in_handoff(in);
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn_in_t *in = h->data;
    (void)hint;
    b->base = (char *)in->hdr + in->got;
    b->len = in->need - in->got;
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_in_t *in = s->data;
    (void)b;
    if (nread == 0 || in->closing)
        return;
    if (nread < 0) {
        in_drop(in);
        return;
    }
    in->got += (size_t)nread;
    if (in->got < in->need)
        return;
    const uint8_t *h = in->hdr;
    if (in->need == FIXED_LEN) {
        size_t alen = wr_get_u16(h + 6);
        if (wr_get_u32(h) != MAGIC || h[4] != VERSION) {
            in_reject_auth(in, "not a warren cluster handshake");
            return;
        }
        if (h[5] != WR_RNET_RAFT && h[5] != WR_RNET_PEER) {
            in_reject_auth(in, "unsupported message type");
            return;
        }
        if (h[5] == WR_RNET_PEER && wr_get_u64(h + 8) != 0) {
            in_reject_auth(in, "peer link names a group");
            return;
        }
        if (alen == 0 || alen > ADDR_WIRE_MAX) {
            in_reject_auth(in, "bad address length");
            return;
        }
        in->need = FIXED_LEN + alen + MAC_LEN;
        return;
    }
    uv_read_stop(s);
    size_t body = in->need - MAC_LEN;
    uint8_t mac[MAC_LEN];
    if (compute_mac(in->n, in->chal + 4, h, body, mac) != 0 ||
        CRYPTO_memcmp(mac, h + body, MAC_LEN) != 0) {
        in_reject_auth(in, "handshake MAC does not verify (wrong cluster secret?)");
        return;
    }
    in->complete = 1;
    if (in->wrote)
        in_handoff(in);
}

static void on_connection(uv_stream_t *srv, int status)
{
    wr_rnet_t *n = srv->data;
    if (status < 0) {
        wr_warn("rnet: accept: %s", uv_strerror(status));
        return;
    }
    conn_in_t *in = wr_xcalloc(1, sizeof *in);
    in->n = n;
    in->need = FIXED_LEN;
    in->started = uv_now(n->loop);
    snprintf(in->peer, sizeof in->peer, "?");
    in->tcp = raft_malloc(sizeof *in->tcp);
    if (in->tcp == NULL) {
        free(in);
        return;
    }
    uv_tcp_init(n->loop, in->tcp);
    in->tcp->data = in;
    in->next = n->ins;
    if (n->ins != NULL)
        n->ins->prev = in;
    n->ins = in;
    if (uv_accept(srv, (uv_stream_t *)in->tcp) != 0) {
        in_drop(in);
        return;
    }
    struct sockaddr_storage ss;
    int sl = (int)sizeof ss;
    if (uv_tcp_getpeername(in->tcp, (struct sockaddr *)&ss, &sl) == 0)
        format_addr(&ss, in->peer, sizeof in->peer);
    uv_tcp_nodelay(in->tcp, 1);
    wr_set_u32(in->chal, MAGIC);
    if (RAND_bytes(in->chal + 4, NONCE_LEN) != 1) {
        in_drop(in);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)in->chal, CHALLENGE_LEN);
    in->wreq.data = in;
    if (uv_write(&in->wreq, (uv_stream_t *)in->tcp, &buf, 1, in_written) != 0 ||
        uv_read_start((uv_stream_t *)in->tcp, in_alloc, in_read) != 0)
        in_drop(in);
}

/* ------------------------------------------------------------------ node */

static void on_sweep(uv_timer_t *tm)
{
    wr_rnet_t *n = tm->data;
    uint64_t now = uv_now(n->loop);
    for (conn_in_t *in = n->ins; in != NULL; in = in->next) {
        if (!in->closing && now - in->started > HANDSHAKE_MS) {
            n->stats.timed_out++;
            wr_debug("rnet: handshake from %s timed out", in->peer);
            in_drop(in);
        }
    }
    for (conn_out_t *o = n->outs; o != NULL; o = o->next) {
        if (!o->closing && now - o->started > HANDSHAKE_MS) {
            n->stats.timed_out++;
            out_fail(o, RAFT_NOCONNECTION);
        }
    }
}

int wr_rnet_start(wr_rnet_t **out, uv_loop_t *loop, const char *listen_addr, const uint8_t *secret,
                  size_t secret_len, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int rv;
    *out = NULL;
    if (secret == NULL || secret_len == 0 || secret_len > INT32_MAX) {
        snprintf(err, errlen, "cluster secret is empty");
        return WR_EINVAL;
    }
    if (parse_addr(listen_addr, &ss) != 0) {
        snprintf(err, errlen, "bad listen address '%s'", listen_addr);
        return WR_EINVAL;
    }
    wr_rnet_t *n = wr_xcalloc(1, sizeof *n);
    n->loop = loop;
    n->secret = wr_xmalloc(secret_len);
    memcpy(n->secret, secret, secret_len);
    n->secret_len = secret_len;
    wr_map_init(&n->groups);
    uv_tcp_init(loop, &n->listener);
    n->listener.data = n;
    n->handles = 1;
    if ((rv = uv_tcp_bind(&n->listener, (const struct sockaddr *)&ss, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&n->listener, 128, on_connection)) != 0) {
        snprintf(err, errlen, "listen on %s: %s", listen_addr, uv_strerror(rv));
        /* Nothing else is open yet: the stop path closes the listener and
         * frees n once the loop has run the close callback. */
        wr_rnet_stop(n, NULL, NULL);
        return WR_EIO;
    }
    int sl = (int)sizeof ss;
    uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &sl);
    format_addr(&ss, n->addr, sizeof n->addr);
    uv_timer_init(loop, &n->sweep);
    uv_timer_init(loop, &n->defer);
    n->sweep.data = n;
    n->defer.data = n;
    n->handles = 3;
    n->timers = 1;
    uv_timer_start(&n->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    /* The sweep alone must not keep a loop running. */
    uv_unref((uv_handle_t *)&n->sweep);
    *out = n;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    wr_rnet_t *n = h->data;
    if (--n->handles > 0)
        return;
    void (*done)(void *) = n->stop_done;
    void *ud = n->stop_ud;
    OPENSSL_cleanse(n->secret, n->secret_len);
    free(n->secret);
    wr_map_free(&n->groups);
    free(n);
    if (done != NULL)
        done(ud);
}

static void maybe_finish(wr_rnet_t *n)
{
    if (!n->stopping || n->finishing || n->ins != NULL || n->n_eps > 0 || n->closed_eps != NULL ||
        n->n_dials > 0)
        return;
    n->finishing = 1;
    if (n->timers) {
        uv_close((uv_handle_t *)&n->sweep, handle_closed);
        uv_close((uv_handle_t *)&n->defer, handle_closed);
    }
}

void wr_rnet_stop(wr_rnet_t *n, void (*done)(void *), void *ud)
{
    assert(!n->stopping);
    n->stopping = 1;
    n->stop_done = done;
    n->stop_ud = ud;
    assert(n->peer_cb == NULL);
    n->peer_cb = NULL;
    uv_close((uv_handle_t *)&n->listener, handle_closed);
    for (conn_in_t *in = n->ins; in != NULL; in = in->next)
        in_drop(in);
    /* Raft dials are their groups' to cancel; peer dials are the node's. */
    for (conn_out_t *o = n->outs; o != NULL; o = o->next)
        if (o->ep == NULL)
            wr_rnet_dial_cancel(o);
    maybe_finish(n);
}

const char *wr_rnet_addr(const wr_rnet_t *n)
{
    return n->addr;
}

uv_loop_t *wr_rnet_loop(const wr_rnet_t *n)
{
    return n->loop;
}

void wr_rnet_stats(const wr_rnet_t *n, wr_rnet_stats_t *out)
{
    *out = n->stats;
}

/* ------------------------------------------------------------ peer links */

int wr_rnet_set_peer_handler(wr_rnet_t *n, uint64_t self_id, wr_rnet_peer_cb on_stream, void *ud)
{
    if (on_stream == NULL) {
        n->peer_cb = NULL;
        n->peer_ud = NULL;
        return 0;
    }
    if (n->stopping)
        return WR_ECLOSED;
    if (self_id == 0)
        return WR_EINVAL;
    if (n->peer_cb != NULL)
        return WR_EEXISTS;
    n->peer_cb = on_stream;
    n->peer_ud = ud;
    n->peer_self_id = self_id;
    return 0;
}

int wr_rnet_dial_peer(wr_rnet_t *n, const char *addr, wr_rnet_dial_cb cb, void *ud,
                      wr_rnet_dial_t **out)
{
    struct sockaddr_storage ss;
    if (out != NULL)
        *out = NULL;
    if (n->stopping)
        return WR_ECLOSED;
    if (n->peer_cb == NULL || parse_addr(addr, &ss) != 0)
        return WR_EINVAL;
    conn_out_t *o = wr_xcalloc(1, sizeof *o);
    o->n = n;
    o->pcb = cb;
    o->pud = ud;
    o->started = uv_now(n->loop);
    /* raft_malloc'd like every stream here, so that one free function
     * serves whichever path handed it over. */
    o->tcp = raft_malloc(sizeof *o->tcp);
    if (o->tcp == NULL) {
        free(o);
        return WR_ENOMEM;
    }
    uv_tcp_init(n->loop, o->tcp);
    o->tcp->data = o;
    o->creq.data = o;
    int rv = uv_tcp_connect(&o->creq, o->tcp, (const struct sockaddr *)&ss, out_connected);
    if (rv != 0) {
        uv_close((uv_handle_t *)o->tcp, free_raft_handle);
        free(o);
        wr_debug("rnet: peer dial %s: %s", addr, uv_strerror(rv));
        return WR_EIO;
    }
    uv_tcp_nodelay(o->tcp, 1);
    o->next = n->outs;
    if (n->outs != NULL)
        n->outs->prev = o;
    n->outs = o;
    n->n_dials++;
    if (out != NULL)
        *out = o;
    return 0;
}

void wr_rnet_dial_cancel(wr_rnet_dial_t *d)
{
    assert(d->ep == NULL);
    d->canceled = 1;
    out_fail(d, RAFT_CANCELED);
}

void wr_rnet_stream_free(uv_handle_t *h)
{
    raft_free(h);
}
