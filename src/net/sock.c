/*
 * sock.c - TCP transport on libuv (see sock.h).
 *
 * State of a socket:
 *
 *   open --wr_sock_close--> closing --output written--> lingering
 *     |                        |        (shutdown(SHUT_WR) sent; reading
 *     |                        |         and discarding)
 *     |                        |              |
 *     |                        |              +--peer EOF / linger timeout--+
 *     +--peer EOF / error / abort all---------+-----------------------------+--> closed
 *
 * While closing, input is read and discarded (never given to on_read);
 * queued output is still flushed so that a connection.close-ok (or the
 * protocol header reply) reaches the peer, and the shutdown lets the peer
 * read EOF after it instead of a reset.  on_close runs exactly once, when
 * libuv has released both handles (the TCP handle and the timer).
 */
#include "net/sock.h"

#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/loop.h"
#include "net/tls.h"

static wr_sock_t *dirty_list;
static wr_sock_t *all_socks;   /* every socket with a descriptor */
static wr_sock_t *reread_list; /* held sockets released with input buffered */
static uv_idle_t reread_idle;
static int reread_idle_init;

#define READ_CHUNK (64 * 1024)

#define STREAM(s) ((uv_stream_t *)&(s)->io)
#define HANDLE(s) ((uv_handle_t *)&(s)->io)

static void do_close(wr_sock_t *s);
static void finish_close(wr_sock_t *s);
static void unlink_dirty(wr_sock_t *s);
static void unlink_reread(wr_sock_t *s);
static void update_read(wr_sock_t *s);

static void mark_dirty(wr_sock_t *s)
{
    if (!s->dirty) {
        s->dirty = 1;
        s->dirty_next = dirty_list;
        dirty_list = s;
    }
}

/* ---- transports ---- */

static int tls_input(wr_sock_t *s, const uint8_t *p, size_t n, const char **why)
{
    return wr_tls_feed(s->tls, p, n, &s->in, &s->wire, why);
}

/* Encrypts everything queued in one pass; the ciphertext (with any
 * handshake records before it) becomes the output to write. */
static void tls_prepare(wr_sock_t *s)
{
    if (wr_tls_ready(s->tls) && s->out.len > s->out_off) {
        if (wr_tls_encrypt(s->tls, s->out.p + s->out_off, s->out.len - s->out_off, &s->wire) != 0)
            s->closing = 1;
        s->out.len = s->out_off = 0;
    }
    if (s->closing && wr_tls_ready(s->tls))
        wr_tls_close_notify(s->tls, &s->wire);
    if (s->out.len == s->out_off && s->wire.len) {
        wr_buf_t t = s->out;
        s->out = s->wire;
        s->out_off = 0;
        s->wire = t;
        s->wire.len = 0;
    }
}

static void tls_destroy(wr_sock_t *s)
{
    wr_tls_free(s->tls);
    s->tls = NULL;
}

const wr_transport_t wr_transport_tcp = {"tcp", NULL, NULL, NULL};
const wr_transport_t wr_transport_unix = {"unix", NULL, NULL, NULL};
const wr_transport_t wr_transport_tls = {"tls", tls_input, tls_prepare, tls_destroy};

wr_buf_t *wr_sock_out(wr_sock_t *s)
{
    mark_dirty(s);
    return &s->out;
}

size_t wr_sock_queued(const wr_sock_t *s)
{
    return (s->out.len - s->out_off) + (s->writing ? s->inflight.len - s->inflight_off : 0);
}

static void update_congestion(wr_sock_t *s)
{
    size_t q = wr_sock_queued(s);
    if (!s->congested && q > WR_SOCK_HIGH_WATER) {
        s->congested = 1;
    } else if (s->congested && q <= WR_SOCK_HIGH_WATER / 2) {
        s->congested = 0;
        if (!s->closing && s->h->on_drain)
            s->h->on_drain(s);
    }
    update_read(s);
}

/* TLS sockets read ciphertext here, then decrypt into s->in (one loop
 * thread: the read callback consumes it before the next alloc). */
static uint8_t tls_scratch[READ_CHUNK];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    wr_sock_t *s = h->data;
    if (s->tr->input) {
        buf->base = (char *)tls_scratch;
        buf->len = sizeof tls_scratch;
        return;
    }
    uint8_t *p = wr_buf_reserve(&s->in, READ_CHUNK);
    buf->base = (char *)p;
    buf->len = s->in.cap - s->in.len;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    wr_sock_t *s = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            wr_debug("connection %s: read error: %s", s->peer, uv_strerror((int)nread));
        /* The peer is gone: whatever is queued cannot be delivered. */
        s->out.len = s->out_off = 0;
        do_close(s);
        return;
    }
    if (nread == 0)
        return;
    s->bytes_in += (uint64_t)nread;
    if (s->closing)
        return; /* discarded: the protocol is done with this peer */
    if (s->tr->input) {
        size_t before = s->in.len;
        const char *why = NULL;
        int r = s->tr->input(s, (const uint8_t *)buf->base, (size_t)nread, &why);
        if (s->wire.len)
            mark_dirty(s);
        if (r < 0) {
            wr_info("connection %s: %s: %s", s->peer, s->tr->name, why ? why : "error");
            s->in.len = before;
            /* Send the alert, then close; the protocol hears on_close. */
            s->closing = 1;
            s->timer_cb = NULL;
            if (s->timer_init)
                uv_timer_stop(&s->timer);
            mark_dirty(s);
            return;
        }
        if (s->in.len == before)
            return;
        uv_update_time(stream->loop);
        s->h->on_read(s);
        return;
    }
    s->in.len += (size_t)nread;
    /* libuv reads a busy socket many times in one loop pass; refresh the
     * loop's clock so deadlines computed from it (TTLs, delays) are not
     * stale by the time a large burst took to process. */
    uv_update_time(stream->loop);
    s->h->on_read(s);
}

static void update_read(wr_sock_t *s)
{
    if (s->closing || s->detached)
        return; /* a closing socket reads until the end (finish_close) */
    int want = !s->read_held && wr_sock_queued(s) < WR_SOCK_READ_STOP;
    if (want && s->read_paused) {
        s->read_paused = 0;
        uv_read_start(STREAM(s), alloc_cb, read_cb);
    } else if (!want && !s->read_paused) {
        s->read_paused = 1;
        uv_read_stop(STREAM(s));
    }
}

static void on_reread(uv_idle_t *h)
{
    uv_idle_stop(h);
    while (reread_list) {
        wr_sock_t *s = reread_list;
        reread_list = s->reread_next;
        s->reread = 0;
        if (!s->closing && !s->read_held && s->in.len)
            s->h->on_read(s); /* what arrived during the hold */
    }
}

void wr_sock_hold_read(wr_sock_t *s, int hold)
{
    int released = s->read_held && !hold;
    s->read_held = (uint8_t)(hold != 0);
    update_read(s);
    if (released && s->in.len && !s->closing && !s->reread) {
        s->reread = 1;
        s->reread_next = reread_list;
        reread_list = s;
        if (!reread_idle_init) {
            uv_idle_init(wr_loop, &reread_idle);
            reread_idle_init = 1;
        }
        uv_idle_start(&reread_idle, on_reread);
    }
}

static void unlink_reread(wr_sock_t *s)
{
    if (!s->reread)
        return;
    for (wr_sock_t **pp = &reread_list; *pp; pp = &(*pp)->reread_next)
        if (*pp == s) {
            *pp = s->reread_next;
            break;
        }
    s->reread = 0;
}

void wr_sock_consume(wr_sock_t *s, size_t n)
{
    wr_buf_consume(&s->in, n);
    /* A large frame grew the buffer; give the memory back once idle so a
     * thousand idle connections stay small. */
    if (s->in.len == 0 && s->in.cap > 4 * READ_CHUNK)
        wr_buf_free(&s->in);
}

static void closed_cb(uv_handle_t *h)
{
    wr_sock_t *s = h->data;
    if (--s->handles > 0)
        return;
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        all_socks = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    unlink_reread(s);
    s->h->on_close(s);
    wr_buf_free(&s->in);
    wr_buf_free(&s->out);
    wr_buf_free(&s->inflight);
    wr_buf_free(&s->wire);
    if (s->tr->destroy)
        s->tr->destroy(s);
    free(s);
}

static void do_close(wr_sock_t *s)
{
    if (s->detached) {
        s->closing = 1;
        return;
    }
    if (uv_is_closing(HANDLE(s)))
        return;
    s->closing = 1;
    /* The dirty list may still point at s: unlink before it is freed.  A
     * write in flight is cancelled (write_cb sees UV_ECANCELED). */
    unlink_dirty(s);
    uv_close(HANDLE(s), closed_cb);
    if (s->timer_init)
        uv_close((uv_handle_t *)&s->timer, closed_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    wr_sock_t *s = req->data;
    if (status < 0)
        do_close(s);
}

static void timer_cb(uv_timer_t *t)
{
    wr_sock_t *s = t->data;
    if (s->lingering)
        do_close(s); /* the peer did not close within the linger time */
    else if (s->timer_cb && !s->closing)
        s->timer_cb(s);
}

static void timer_start(wr_sock_t *s, uint64_t ms, uint64_t repeat)
{
    if (!s->timer_init) {
        uv_timer_init(s->io.tcp.loop, &s->timer);
        s->timer.data = s;
        s->timer_init = 1;
        s->handles++;
    }
    uv_timer_start(&s->timer, timer_cb, ms, repeat);
}

/* Everything queued is written: shut down our side, then read until the
 * peer closes its side (read_cb's EOF) or the linger time passes. */
static void finish_close(wr_sock_t *s)
{
    if (s->lingering || s->detached || uv_is_closing(HANDLE(s)))
        return;
    s->lingering = 1;
    unlink_dirty(s);
    s->shut.data = s;
    if (uv_shutdown(&s->shut, STREAM(s), shutdown_cb) != 0) {
        do_close(s);
        return;
    }
    timer_start(s, WR_SOCK_LINGER_MS, 0);
    wr_buf_free(&s->in);
    if (s->read_paused) {
        s->read_paused = 0;
        if (uv_read_start(STREAM(s), alloc_cb, read_cb) != 0)
            do_close(s);
    }
}

static void flush(wr_sock_t *s);

static void write_cb(uv_write_t *req, int status)
{
    wr_sock_t *s = req->data;
    s->writing = 0;
    if (status < 0) {
        s->inflight.len = 0;
        s->out.len = s->out_off = 0;
        do_close(s);
        return;
    }
    s->bytes_out += s->inflight.len - s->inflight_off;
    s->inflight.len = 0;
    if (s->out.len > s->out_off || s->wire.len) {
        flush(s);
        if (s->closing && !s->writing && !uv_is_closing(HANDLE(s))) {
            finish_close(s);
            return;
        }
    } else if (s->closing) {
        finish_close(s);
        return;
    }
    update_congestion(s);
}

static void flush(wr_sock_t *s)
{
    if (s->detached) {
        /* Output stays in s->out for the test to read; it counts as
         * written. */
        s->bytes_out += s->out.len - s->out_off;
        s->out_off = s->out.len;
        return;
    }
    if (s->writing || uv_is_closing(HANDLE(s)))
        return;
    if (s->tr->prepare)
        s->tr->prepare(s);
    size_t pending = s->out.len - s->out_off;
    if (pending == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)s->out.p + s->out_off, (unsigned)pending);
    int r = uv_try_write(STREAM(s), &b, 1);
    if (r == UV_EAGAIN)
        r = 0;
    if (r < 0) {
        s->out.len = s->out_off = 0;
        do_close(s);
        return;
    }
    s->bytes_out += (uint64_t)r;
    s->out_off += (size_t)r;
    if (s->out_off == s->out.len) {
        s->out.len = s->out_off = 0;
        return;
    }
    /* The kernel is full: hand the rest to libuv as it is (no copy) and
     * collect new output in the other buffer meanwhile. */
    wr_buf_t t = s->inflight;
    s->inflight = s->out;
    s->inflight_off = s->out_off;
    s->out = t;
    s->out.len = s->out_off = 0;
    b = uv_buf_init((char *)s->inflight.p + s->inflight_off,
                    (unsigned)(s->inflight.len - s->inflight_off));
    s->wreq.data = s;
    s->writing = 1;
    r = uv_write(&s->wreq, STREAM(s), &b, 1, write_cb);
    if (r < 0) {
        s->writing = 0;
        do_close(s);
    }
}

void wr_sock_flush_all(void)
{
    while (dirty_list) {
        wr_sock_t *s = dirty_list;
        dirty_list = s->dirty_next;
        s->dirty = 0;
        flush(s);
        if (s->detached || uv_is_closing(HANDLE(s)))
            continue;
        if (s->closing && !s->writing)
            finish_close(s);
        else
            update_congestion(s);
    }
}

void wr_sock_close(wr_sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->timer_cb = NULL;
    s->timer_ms = 0;
    if (s->detached)
        return;
    if (s->timer_init)
        uv_timer_stop(&s->timer);
    mark_dirty(s);
}

void wr_sock_abort_all(void)
{
    for (wr_sock_t *s = all_socks; s; s = s->all_next)
        if (!uv_is_closing(HANDLE(s)))
            do_close(s);
}

void wr_sock_set_timer(wr_sock_t *s, uint64_t interval_ms, wr_sock_timer_cb cb)
{
    if (s->closing)
        return;
    s->timer_cb = interval_ms ? cb : NULL;
    s->timer_ms = interval_ms;
    if (s->detached)
        return;
    if (interval_ms)
        timer_start(s, interval_ms, interval_ms);
    else if (s->timer_init)
        uv_timer_stop(&s->timer);
}

static void unlink_dirty(wr_sock_t *s)
{
    if (!s->dirty)
        return;
    for (wr_sock_t **pp = &dirty_list; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == s) {
            *pp = s->dirty_next;
            break;
        }
    }
    s->dirty = 0;
}

wr_sock_t *wr_sock_new_detached(const wr_sock_handler_t *h, int loopback)
{
    wr_sock_t *s = wr_xcalloc(1, sizeof *s);
    s->h = h;
    s->tr = &wr_transport_tcp;
    s->detached = 1;
    s->is_loopback = (uint8_t)(loopback != 0);
    snprintf(s->peer, sizeof s->peer, "%s", loopback ? "127.0.0.1:1" : "192.0.2.1:1");
    snprintf(s->local, sizeof s->local, "127.0.0.1:5672");
    return s;
}

void wr_sock_feed(wr_sock_t *s, const uint8_t *p, size_t n)
{
    if (s->closing)
        return;
    s->bytes_in += n;
    wr_buf_put(&s->in, p, n);
    s->h->on_read(s);
}

int wr_sock_detached_fire_timer(wr_sock_t *s)
{
    if (s->timer_cb == NULL || s->closing)
        return 0;
    s->timer_cb(s);
    return 1;
}

void wr_sock_detached_drain(wr_sock_t *s)
{
    s->out.len = s->out_off = 0;
}

void wr_sock_detached_free(wr_sock_t *s)
{
    unlink_dirty(s);
    unlink_reread(s);
    s->h->on_close(s);
    unlink_dirty(s);
    wr_buf_free(&s->in);
    wr_buf_free(&s->out);
    wr_buf_free(&s->inflight);
    free(s);
}

static void addr_string(const struct sockaddr_storage *ss, char *out, size_t n, int *loopback)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    *loopback = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, host, sizeof host);
        port = ntohs(a->sin_port);
        *loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        snprintf(out, n, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, host, sizeof host);
        port = ntohs(a->sin6_port);
        static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const uint8_t v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        const uint8_t *b = a->sin6_addr.s6_addr;
        *loopback = memcmp(b, lo6, 16) == 0 || (memcmp(b, v4map, 12) == 0 && b[12] == 127);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "?");
    }
}

static unsigned unix_peers; /* Unix peers have no address: a number names them */

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        wr_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    wr_listener_t *l = server->data;
    wr_sock_t *s = wr_xcalloc(1, sizeof *s);
    if (l->is_unix) {
        uv_pipe_init(server->loop, &s->io.pipe, 0);
        s->tr = &wr_transport_unix;
    } else {
        uv_tcp_init(server->loop, &s->io.tcp);
        s->tr = &wr_transport_tcp;
    }
    s->io.tcp.data = s;
    s->h = l->h;
    if (l->tls) {
        s->tls = wr_tls_new(l->tls);
        s->tr = &wr_transport_tls;
    }
    if (uv_accept(server, STREAM(s)) != 0) {
        if (s->tr->destroy)
            s->tr->destroy(s);
        uv_close(HANDLE(s), (uv_close_cb)free);
        return;
    }
    s->handles = 1;
    s->all_next = all_socks;
    if (all_socks)
        all_socks->all_prev = s;
    all_socks = s;
    if (l->is_unix) {
        /* A local peer, by definition. */
        s->is_loopback = 1;
        snprintf(s->peer, sizeof s->peer, "unix:%d", ++unix_peers);
        snprintf(s->local, sizeof s->local, "%.63s", l->addr);
    } else {
        uv_tcp_nodelay(&s->io.tcp, 1);
        struct sockaddr_storage ss;
        int len = sizeof ss;
        int lo = 0;
        if (uv_tcp_getpeername(&s->io.tcp, (struct sockaddr *)&ss, &len) == 0)
            addr_string(&ss, s->peer, sizeof s->peer, &lo);
        s->is_loopback = (uint8_t)lo;
        len = sizeof ss;
        if (uv_tcp_getsockname(&s->io.tcp, (struct sockaddr *)&ss, &len) == 0)
            addr_string(&ss, s->local, sizeof s->local, &lo);
    }
    s->read_paused = 1;
    s->ud = l->ud;
    l->on_accept(s);
    update_read(s);
}

int wr_listen(uv_loop_t *loop, wr_listener_t *l, const char *host, int port,
              const wr_sock_handler_t *h, wr_accept_cb on_accept)
{
    struct sockaddr_storage addr;
    int r, v6 = strchr(host, ':') != NULL;
    if (v6)
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    l->h = h;
    l->on_accept = on_accept;
    l->port = port;
    snprintf(l->addr, sizeof l->addr, v6 ? "[%s]:%d" : "%s:%d", host, port);
    uv_tcp_init(loop, &l->io.tcp);
    l->io.tcp.data = l;
    if (r < 0)
        return r;
    /* An IPv6 listener takes IPv6 only, so that "::" and "0.0.0.0" on
     * the same port can both be bound, as RabbitMQ binds them. */
    r = uv_tcp_bind(&l->io.tcp, (const struct sockaddr *)&addr, v6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->io, 1024, on_connection);
    if (r == 0) {
        int len = sizeof addr;
        int lo;
        if (uv_tcp_getsockname(&l->io.tcp, (struct sockaddr *)&addr, &len) == 0) {
            addr_string(&addr, l->addr, sizeof l->addr, &lo);
            l->port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
        }
    }
    return r;
}

int wr_listen_unix(uv_loop_t *loop, wr_listener_t *l, const char *path, const wr_sock_handler_t *h,
                   wr_accept_cb on_accept)
{
    l->h = h;
    l->on_accept = on_accept;
    l->is_unix = 1;
    l->port = 0;
    snprintf(l->addr, sizeof l->addr, "%s", path);
    uv_pipe_init(loop, &l->io.pipe, 0);
    l->io.pipe.data = l;
    unlink(path); /* a socket file left by an earlier run */
    mode_t old = umask(0117);
    int r = uv_pipe_bind(&l->io.pipe, path);
    umask(old);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->io, 1024, on_connection);
    return r;
}

void wr_listener_close(wr_listener_t *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->io))
        uv_close((uv_handle_t *)&l->io, NULL);
}
