/*
 * peer.c - node-to-node message links over rnet (see peer.h for the rules
 * and docs/clustering-raft.md for the wire format).
 *
 * A link is one TCP stream that rnet has authenticated (a WR_RNET_PEER
 * handshake).  Data flows one way: the dialer sends messages and
 * heartbeats; the listener answers only the dialer's hello, with its own
 * node id, so that the dialer knows it reached the node it meant to.
 *
 * An outbound link (ours, to a known peer):
 *
 *   (no link) --tick, next_dial reached--> DIALING --rnet handshake done--> HELLO
 *       ^                                     |                               |
 *       |<-------- dial failed: backoff ------'     peer's hello (its id) --> UP
 *       |                                                                     |
 *       '--- EOF, error, protocol error, no answer in 5 s, overflow, ---------'
 *            address changed: uv_close; redial after the backoff
 *
 * The backoff starts at 100 ms, doubles per failure up to 1 s, and goes
 * back to 100 ms once a link reaches UP.  While UP, a link that has sent
 * nothing for WR_PEER_HEARTBEAT_MS sends a heartbeat.
 *
 * An inbound link (a peer's outbound link, handed over by rnet):
 *
 *   HELLO --hello naming this node: answer; older inbound links from the
 *           same node are dropped--> UP --messages, heartbeats--> on_msg
 *     \______________________________/
 *       EOF, error, protocol error, 5 s without a hello, 10 s of silence
 *       when UP, superseded, stop: uv_close
 *
 * A peer is up when its outbound link is UP and it was heard on an inbound
 * link within WR_PEER_UP_WINDOW_MS (`heard` is cleared when its last UP
 * inbound link drops).  p->up is what on_change last reported; eval()
 * brings it in line with the live state, from the prepare hook or the
 * tick, so that no callback runs inside a wr_peers_* call.
 *
 * Invariants: a link is on ps->links from link_new until its close
 * callback; `closing` is set exactly when uv_close has been called.  A
 * peer's `link` is its outbound link while that is open and not closing,
 * and l->peer points back; link_drop breaks both.  A peer with a dial in
 * progress is freed only from the dial's callback (a removed peer waits
 * there, off the list).  Output: `out` collects frames during a pass, and
 * the prepare hook moves it to `inflight` for one uv_write at a time.
 */
#include "cluster/peer.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#define HDR_LEN          5 /* u32 length, u8 kind */
#define KIND_HEARTBEAT   0
#define KIND_HELLO       1
#define HELLO_LEN        8 /* u64 node id */
#define TICK_MS          100
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   1000
#define HELLO_TIMEOUT_MS 5000
/* Heartbeats arrive every second on a live inbound link; one silent this
 * long belongs to a dialer that is gone without a FIN (a partition). */
#define IN_IDLE_MS 10000
#define READ_CHUNK (64u << 10)
/* Buffers larger than this are freed when they empty, so one burst of big
 * messages does not pin its memory for the life of the link. */
#define SHRINK_CAP (1u << 20)

enum { L_HELLO, L_UP };

typedef struct link link_t;
typedef struct peer peer_t;

struct link {
    link_t *prev, *next;
    wr_peers_t *ps;
    uv_tcp_t *tcp; /* from rnet; freed with wr_rnet_stream_free */
    peer_t *peer;  /* outbound: the peer it serves; NULL when detached */
    int outbound;
    int state; /* L_HELLO or L_UP */
    int closing;
    int writing;      /* a uv_write of `inflight` is in progress */
    uint64_t node;    /* the node at the other end */
    uint64_t since;   /* opened (loop time) */
    uint64_t last_rx; /* last frame received */
    uint64_t last_tx; /* last frame queued */
    wr_buf_t rbuf;    /* received, starting at a frame boundary */
    wr_buf_t out;     /* queued during this pass */
    wr_buf_t inflight;
    uv_write_t wreq;
    char addr[WR_RNET_ADDR_MAX]; /* for logs */
};

struct peer {
    peer_t *next;
    wr_peers_t *ps;
    uint64_t id;
    char addr[WR_RNET_ADDR_MAX];
    link_t *link;         /* outbound link, or NULL */
    wr_rnet_dial_t *dial; /* dial in progress, or NULL */
    uint64_t next_dial;   /* loop time of the next dial when neither */
    unsigned backoff;
    uint64_t last_rx; /* heard on an inbound link, valid when heard */
    int heard;
    int up; /* as last reported */
    int removed;
};

struct wr_peers {
    wr_rnet_t *net;
    uv_loop_t *loop;
    uint64_t self;
    wr_peers_msg_cb on_msg;
    wr_peers_change_cb on_change;
    void *ud;
    peer_t *peers;
    link_t *links;
    uv_timer_t tick;
    uv_prepare_t prep;
    int prep_active;
    int need_eval;
    int stopping;
    int handles;
    size_t n_links, n_dials;
    wr_peers_stats_t stats;
    void (*done)(void *);
    void *done_ud;
};

static void maybe_finish(wr_peers_t *ps);

/* ---------------------------------------------------------------- helpers */

static peer_t *find_peer(const wr_peers_t *ps, uint64_t id)
{
    for (peer_t *p = ps->peers; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static int live_up(const peer_t *p, uint64_t now)
{
    return p->link != NULL && p->link->state == L_UP && p->heard &&
           now - p->last_rx <= WR_PEER_UP_WINDOW_MS;
}

static void on_prepare(uv_prepare_t *h);

static void kick(wr_peers_t *ps)
{
    if (ps->stopping || ps->prep_active)
        return;
    ps->prep_active = 1;
    uv_prepare_start(&ps->prep, on_prepare);
}

static void want_eval(wr_peers_t *ps)
{
    ps->need_eval = 1;
    kick(ps);
}

static void grow_backoff(peer_t *p, uint64_t now)
{
    p->next_dial = now + p->backoff;
    p->backoff = p->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff * 2;
}

/* Reports every known peer whose state changed since it was last reported.
 * A callback may add, remove or stop anything, so the walk starts over
 * after each one; each peer is reported at most once per change. */
static void eval(wr_peers_t *ps)
{
    ps->need_eval = 0;
    uint64_t now = uv_now(ps->loop);
again:
    for (peer_t *p = ps->peers; p != NULL && !ps->stopping; p = p->next) {
        int up = live_up(p, now);
        if (up == p->up)
            continue;
        p->up = up;
        wr_info("peers: node %llu (%s) is %s", (unsigned long long)p->id, p->addr,
                up ? "up" : "down");
        if (ps->on_change != NULL) {
            ps->on_change(ps->ud, p->id, up);
            goto again;
        }
    }
}

/* ------------------------------------------------------------------ links */

static int has_inbound_up(const wr_peers_t *ps, uint64_t node)
{
    for (const link_t *l = ps->links; l != NULL; l = l->next)
        if (!l->outbound && !l->closing && l->state == L_UP && l->node == node)
            return 1;
    return 0;
}

static void link_closed(uv_handle_t *h)
{
    link_t *l = h->data;
    wr_peers_t *ps = l->ps;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        ps->links = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    ps->n_links--;
    wr_buf_free(&l->rbuf);
    wr_buf_free(&l->out);
    wr_buf_free(&l->inflight);
    wr_rnet_stream_free(h);
    free(l);
    maybe_finish(ps);
}

/* Closes l; what it had queued or in flight is lost.  An outbound link's
 * peer redials after its backoff. */
static void link_drop(link_t *l, const char *why)
{
    wr_peers_t *ps = l->ps;
    if (l->closing)
        return;
    l->closing = 1;
    ps->stats.links_dropped++;
    wr_debug("peers: %s link %s node %llu (%s) closed: %s", l->outbound ? "outbound" : "inbound",
             l->outbound ? "to" : "from", (unsigned long long)l->node, l->addr, why);
    if (l->outbound) {
        peer_t *p = l->peer;
        if (p != NULL) {
            p->link = NULL;
            l->peer = NULL;
            grow_backoff(p, uv_now(ps->loop));
        }
    } else if (l->state == L_UP) {
        peer_t *p = find_peer(ps, l->node);
        /* The node's outbound link is gone: it is down now, not in 3 s. */
        if (p != NULL && !has_inbound_up(ps, l->node))
            p->heard = 0;
    }
    want_eval(ps);
    uv_close((uv_handle_t *)l->tcp, link_closed);
}

static void proto_error(link_t *l, const char *why)
{
    l->ps->stats.proto_errors++;
    wr_warn("peers: node %llu (%s) broke the link protocol: %s", (unsigned long long)l->node,
            l->addr, why);
    link_drop(l, why);
}

static void link_append(link_t *l, uint8_t kind, const void *p, size_t n)
{
    assert(n <= WR_PEER_FRAME_MAX);
    uint8_t *d = wr_buf_reserve(&l->out, HDR_LEN + n);
    wr_set_u32(d, (uint32_t)n);
    d[4] = kind;
    if (n > 0)
        memcpy(d + HDR_LEN, p, n);
    l->out.len += HDR_LEN + n;
    l->last_tx = uv_now(l->ps->loop);
    kick(l->ps);
}

static size_t link_unsent(const link_t *l)
{
    return l->out.len + uv_stream_get_write_queue_size((const uv_stream_t *)l->tcp);
}

static void on_written(uv_write_t *w, int status)
{
    link_t *l = w->data;
    l->writing = 0;
    l->inflight.len = 0;
    if (l->inflight.cap > SHRINK_CAP)
        wr_buf_free(&l->inflight);
    if (l->closing)
        return;
    if (status < 0) {
        link_drop(l, uv_strerror(status));
        return;
    }
    if (l->out.len > 0)
        kick(l->ps);
}

/* One uv_write per link at a time, of everything queued since the last. */
static void link_flush(link_t *l)
{
    if (l->closing || l->writing || l->out.len == 0)
        return;
    wr_buf_t t = l->inflight;
    l->inflight = l->out;
    l->out = t;
    l->out.len = 0;
    uv_buf_t b;
    b.base = (char *)l->inflight.p;
    b.len = l->inflight.len;
    l->wreq.data = l;
    int rv = uv_write(&l->wreq, (uv_stream_t *)l->tcp, &b, 1, on_written);
    if (rv != 0) {
        l->inflight.len = 0;
        link_drop(l, uv_strerror(rv));
        return;
    }
    l->writing = 1;
}

/* Something arrived from node on an inbound link. */
static void note_rx(wr_peers_t *ps, uint64_t node, uint64_t now)
{
    peer_t *p = find_peer(ps, node);
    if (p == NULL)
        return;
    p->last_rx = now;
    p->heard = 1;
    if (live_up(p, now) != p->up)
        want_eval(ps);
}

static void inbound_frame(link_t *l, uint8_t kind, const uint8_t *p, size_t n)
{
    wr_peers_t *ps = l->ps;
    uint64_t now = uv_now(ps->loop);
    l->last_rx = now;
    if (l->state == L_HELLO) {
        if (kind != KIND_HELLO || n != HELLO_LEN) {
            proto_error(l, "first frame is not a hello");
            return;
        }
        uint64_t to = wr_get_u64(p);
        if (to != ps->self) {
            wr_warn("peers: node %llu (%s) dialed node %llu here, this is node %llu",
                    (unsigned long long)l->node, l->addr, (unsigned long long)to,
                    (unsigned long long)ps->self);
            ps->stats.proto_errors++;
            link_drop(l, "hello for another node");
            return;
        }
        l->state = L_UP;
        /* The node dials one link at a time, so an older one from it is
         * dead or dying; dropping it keeps its leftovers from arriving
         * after what comes on this one. */
        for (link_t *m = ps->links; m != NULL; m = m->next)
            if (m != l && !m->outbound && !m->closing && m->node == l->node)
                link_drop(m, "superseded by a new link");
        uint8_t ack[HELLO_LEN];
        wr_set_u64(ack, ps->self);
        link_append(l, KIND_HELLO, ack, sizeof ack);
        note_rx(ps, l->node, now);
        return;
    }
    if (kind == KIND_HELLO) {
        proto_error(l, "second hello");
        return;
    }
    note_rx(ps, l->node, now);
    if (kind < WR_PEER_KIND_MIN)
        return; /* heartbeat, or reserved for the link: nothing to deliver */
    ps->stats.received++;
    ps->on_msg(ps->ud, l->node, kind, p, n);
}

static void outbound_frame(link_t *l, uint8_t kind, const uint8_t *p, size_t n)
{
    wr_peers_t *ps = l->ps;
    if (l->state != L_HELLO || kind != KIND_HELLO || n != HELLO_LEN) {
        proto_error(l, "unexpected frame on an outbound link");
        return;
    }
    uint64_t id = wr_get_u64(p);
    if (id != l->node) {
        wr_warn("peers: %s is node %llu, not node %llu", l->addr, (unsigned long long)id,
                (unsigned long long)l->node);
        ps->stats.proto_errors++;
        link_drop(l, "wrong node at this address");
        return;
    }
    l->state = L_UP;
    ps->stats.links_up++;
    if (l->peer != NULL)
        l->peer->backoff = BACKOFF_MIN_MS;
    want_eval(ps);
}

/* The largest frame l may receive now: until the hello is through, and
 * on an outbound link at all, only a hello; this bounds what a peer can
 * make us allocate before it has said who it wants. */
static size_t frame_limit(const link_t *l)
{
    return l->outbound || l->state == L_HELLO ? HELLO_LEN : WR_PEER_FRAME_MAX;
}

/* Handles every whole frame in rbuf.  A callback may drop the link or stop
 * everything; the link's memory stays valid until its close callback. */
static void parse(link_t *l)
{
    wr_peers_t *ps = l->ps;
    wr_buf_t *b = &l->rbuf;
    size_t off = 0;
    while (!l->closing && !ps->stopping) {
        size_t avail = b->len - off;
        if (avail < HDR_LEN)
            break;
        const uint8_t *h = b->p + off;
        size_t n = wr_get_u32(h);
        if (n > frame_limit(l)) {
            char why[80];
            snprintf(why, sizeof why, "frame of %zu bytes, the maximum here is %zu", n,
                     frame_limit(l));
            proto_error(l, why);
            return;
        }
        if (n > avail - HDR_LEN)
            break;
        off += HDR_LEN + n;
        if (l->outbound)
            outbound_frame(l, h[4], h + HDR_LEN, n);
        else
            inbound_frame(l, h[4], h + HDR_LEN, n);
    }
    if (l->closing || off == 0)
        return;
    wr_buf_consume(b, off);
    if (b->len == 0 && b->cap > SHRINK_CAP)
        wr_buf_free(b);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    link_t *l = h->data;
    size_t want = READ_CHUNK;
    (void)hint;
    /* rbuf starts at a frame: once its header is in and valid, make room
     * for the rest of the frame in one go. */
    if (l->rbuf.len >= HDR_LEN) {
        size_t n = wr_get_u32(l->rbuf.p);
        if (n <= frame_limit(l) && HDR_LEN + n > l->rbuf.len && HDR_LEN + n - l->rbuf.len > want)
            want = HDR_LEN + n - l->rbuf.len;
    }
    buf->base = (char *)wr_buf_reserve(&l->rbuf, want);
    buf->len = l->rbuf.cap - l->rbuf.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    link_t *l = s->data;
    (void)buf;
    if (nread == 0 || l->closing)
        return;
    if (nread < 0) {
        link_drop(l, nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
        return;
    }
    l->rbuf.len += (size_t)nread;
    parse(l);
}

static link_t *link_new(wr_peers_t *ps, uv_stream_t *s, int outbound, uint64_t node,
                        const char *addr)
{
    link_t *l = wr_xcalloc(1, sizeof *l);
    l->ps = ps;
    l->tcp = (uv_tcp_t *)s;
    l->outbound = outbound;
    l->state = L_HELLO;
    l->node = node;
    l->since = l->last_rx = l->last_tx = uv_now(ps->loop);
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    s->data = l;
    l->next = ps->links;
    if (ps->links != NULL)
        ps->links->prev = l;
    ps->links = l;
    ps->n_links++;
    return l;
}

/* ---------------------------------------------------------------- dialing */

static void on_dialed(void *ud, uv_stream_t *s, int status)
{
    peer_t *p = ud;
    wr_peers_t *ps = p->ps;
    ps->n_dials--;
    p->dial = NULL;
    if (p->removed) {
        /* Removed or stopping: the dial was canceled, so s is NULL. */
        assert(s == NULL);
        free(p);
        maybe_finish(ps);
        return;
    }
    if (status != 0) {
        wr_debug("peers: dial node %llu (%s): %s", (unsigned long long)p->id, p->addr,
                 wr_strerror(status));
        grow_backoff(p, uv_now(ps->loop));
        return;
    }
    link_t *l = link_new(ps, s, 1, p->id, p->addr);
    l->peer = p;
    p->link = l;
    /* Only the hello's answer comes back; reading also notices EOF. */
    if (uv_read_start(s, on_alloc, on_read) != 0) {
        link_drop(l, "cannot read");
        return;
    }
    uint8_t hello[HELLO_LEN];
    wr_set_u64(hello, p->id);
    link_append(l, KIND_HELLO, hello, sizeof hello);
}

static int peer_dial(peer_t *p)
{
    wr_peers_t *ps = p->ps;
    int rv = wr_rnet_dial_peer(ps->net, p->addr, on_dialed, p, &p->dial);
    if (rv != 0) {
        p->dial = NULL;
        grow_backoff(p, uv_now(ps->loop));
        return rv;
    }
    ps->n_dials++;
    return 0;
}

/* ---------------------------------------------------------- loop hooks */

static void on_inbound(void *ud, uint64_t from, const char *from_addr, uv_stream_t *s)
{
    wr_peers_t *ps = ud;
    link_t *l = link_new(ps, s, 0, from, from_addr);
    if (uv_read_start(s, on_alloc, on_read) != 0)
        link_drop(l, "cannot read");
}

static void on_prepare(uv_prepare_t *h)
{
    wr_peers_t *ps = h->data;
    /* Callbacks first, so that what they send goes out in this pass. */
    if (ps->need_eval)
        eval(ps);
    if (ps->stopping)
        return;
    for (link_t *l = ps->links; l != NULL; l = l->next)
        link_flush(l);
    /* A link still holding output is writing; its write callback kicks. */
    if (!ps->need_eval) {
        uv_prepare_stop(h);
        ps->prep_active = 0;
    }
}

static void on_tick(uv_timer_t *t)
{
    wr_peers_t *ps = t->data;
    uint64_t now = uv_now(ps->loop);
    for (peer_t *p = ps->peers; p != NULL; p = p->next)
        if (p->link == NULL && p->dial == NULL && now >= p->next_dial)
            peer_dial(p);
    for (link_t *l = ps->links; l != NULL; l = l->next) {
        if (l->closing)
            continue;
        if (l->state == L_HELLO) {
            if (now - l->since > HELLO_TIMEOUT_MS)
                link_drop(l, "no hello in time");
        } else if (l->outbound) {
            if (now - l->last_tx >= WR_PEER_HEARTBEAT_MS)
                link_append(l, KIND_HEARTBEAT, NULL, 0);
        } else if (now - l->last_rx > IN_IDLE_MS) {
            link_drop(l, "silent");
        }
    }
    eval(ps);
}

/* -------------------------------------------------------------------- API */

int wr_peers_start(wr_peers_t **out, wr_rnet_t *net, uint64_t self_id, wr_peers_msg_cb on_msg,
                   wr_peers_change_cb on_change, void *ud)
{
    *out = NULL;
    if (self_id == 0 || on_msg == NULL)
        return WR_EINVAL;
    wr_peers_t *ps = wr_xcalloc(1, sizeof *ps);
    int rv = wr_rnet_set_peer_handler(net, self_id, on_inbound, ps);
    if (rv != 0) {
        free(ps);
        return rv;
    }
    ps->net = net;
    ps->loop = wr_rnet_loop(net);
    ps->self = self_id;
    ps->on_msg = on_msg;
    ps->on_change = on_change;
    ps->ud = ud;
    uv_timer_init(ps->loop, &ps->tick);
    uv_prepare_init(ps->loop, &ps->prep);
    ps->tick.data = ps;
    ps->prep.data = ps;
    ps->handles = 2;
    uv_timer_start(&ps->tick, on_tick, TICK_MS, TICK_MS);
    *out = ps;
    return 0;
}

int wr_peers_add(wr_peers_t *ps, uint64_t node, const char *addr)
{
    if (ps->stopping)
        return WR_ECLOSED;
    if (node == 0 || node == ps->self || addr == NULL || addr[0] == '\0' ||
        strlen(addr) >= WR_RNET_ADDR_MAX)
        return WR_EINVAL;
    peer_t *p = find_peer(ps, node);
    if (p != NULL) {
        if (strcmp(p->addr, addr) == 0)
            return 0;
        snprintf(p->addr, sizeof p->addr, "%s", addr);
        if (p->link != NULL)
            link_drop(p->link, "address changed");
        p->backoff = BACKOFF_MIN_MS;
        if (p->dial != NULL)
            wr_rnet_dial_cancel(p->dial); /* the tick redials after it ends */
        else
            p->next_dial = uv_now(ps->loop);
        return 0;
    }
    p = wr_xcalloc(1, sizeof *p);
    p->ps = ps;
    p->id = node;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->backoff = BACKOFF_MIN_MS;
    /* A node can dial us before we are told about it. */
    for (const link_t *l = ps->links; l != NULL; l = l->next) {
        if (!l->outbound && !l->closing && l->state == L_UP && l->node == node &&
            (!p->heard || l->last_rx > p->last_rx)) {
            p->heard = 1;
            p->last_rx = l->last_rx;
        }
    }
    if (peer_dial(p) == WR_EINVAL) {
        free(p);
        return WR_EINVAL;
    }
    p->next = ps->peers;
    ps->peers = p;
    return 0;
}

void wr_peers_remove(wr_peers_t *ps, uint64_t node)
{
    peer_t **pp = &ps->peers;
    while (*pp != NULL && (*pp)->id != node)
        pp = &(*pp)->next;
    peer_t *p = *pp;
    if (p == NULL)
        return;
    *pp = p->next;
    if (p->link != NULL)
        link_drop(p->link, "node removed");
    if (p->dial != NULL) {
        p->removed = 1; /* freed by on_dialed */
        wr_rnet_dial_cancel(p->dial);
    } else {
        free(p);
    }
}

int wr_peers_send(wr_peers_t *ps, uint64_t node, uint8_t kind, const void *p, size_t n)
{
    if (ps->stopping)
        return WR_ECLOSED;
    if (kind < WR_PEER_KIND_MIN || (n > 0 && p == NULL))
        return WR_EINVAL;
    if (n > WR_PEER_FRAME_MAX)
        return WR_ETOOBIG;
    peer_t *pr = find_peer(ps, node);
    if (pr == NULL)
        return WR_ENOTFOUND;
    if (!live_up(pr, uv_now(ps->loop)))
        return WR_EAGAIN;
    link_t *l = pr->link;
    size_t unsent = link_unsent(l);
    /* One message always fits on a link that has caught up. */
    if (unsent > 0 && unsent + HDR_LEN + n > WR_PEER_OUT_MAX) {
        ps->stats.overflows++;
        wr_warn("peers: node %llu (%s) is not reading: %zu bytes unsent, dropping the link",
                (unsigned long long)node, pr->addr, unsent);
        link_drop(l, "too much unsent output");
        return WR_EAGAIN;
    }
    link_append(l, kind, p, n);
    ps->stats.sent++;
    return 0;
}

int wr_peers_up(const wr_peers_t *ps, uint64_t node)
{
    const peer_t *p = find_peer(ps, node);
    return p != NULL && live_up(p, uv_now(ps->loop));
}

void wr_peers_stats(const wr_peers_t *ps, wr_peers_stats_t *out)
{
    *out = ps->stats;
}

static void handle_closed(uv_handle_t *h)
{
    wr_peers_t *ps = h->data;
    ps->handles--;
    maybe_finish(ps);
}

static void maybe_finish(wr_peers_t *ps)
{
    if (!ps->stopping || ps->handles > 0 || ps->n_links > 0 || ps->n_dials > 0)
        return;
    void (*done)(void *) = ps->done;
    void *ud = ps->done_ud;
    free(ps);
    if (done != NULL)
        done(ud);
}

void wr_peers_stop(wr_peers_t *ps, void (*done)(void *ud), void *ud)
{
    assert(!ps->stopping);
    ps->stopping = 1;
    ps->done = done;
    ps->done_ud = ud;
    wr_rnet_set_peer_handler(ps->net, 0, NULL, NULL);
    /* Links first: dropping one still looks at its peer. */
    for (link_t *l = ps->links; l != NULL; l = l->next)
        link_drop(l, "stopping");
    while (ps->peers != NULL) {
        peer_t *p = ps->peers;
        ps->peers = p->next;
        if (p->dial != NULL) {
            p->removed = 1; /* freed by on_dialed */
            wr_rnet_dial_cancel(p->dial);
        } else {
            free(p);
        }
    }
    uv_close((uv_handle_t *)&ps->tick, handle_closed);
    uv_close((uv_handle_t *)&ps->prep, handle_closed);
}
