/*
 * sock.c - TCP transport on libuv (see sock.h).
 *
 * State of a socket:
 *
 *   open --wr_sock_close--> closing --output written or failed--> closed
 *     \------peer EOF / error -----------------------------------^
 *
 * While closing, nothing more is read; queued output is still flushed so
 * that a connection.close (or the protocol header reply) reaches the peer.
 * on_close runs exactly once, when libuv has released the handle.
 */
#include "net/sock.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

static wr_sock_t *dirty_list;
static wr_accept_cb accept_cb;
static const wr_sock_handler_t *accept_handler;

#define READ_CHUNK (64 * 1024)

static void do_close(wr_sock_t *s);
static void unlink_dirty(wr_sock_t *s);
static void update_read(wr_sock_t *s);

static void mark_dirty(wr_sock_t *s)
{
    if (!s->dirty) {
        s->dirty = 1;
        s->dirty_next = dirty_list;
        dirty_list = s;
    }
}

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

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    wr_sock_t *s = h->data;
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
    if (nread == 0 || s->closing)
        return;
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
        return;
    int want = !s->read_held && wr_sock_queued(s) < WR_SOCK_READ_STOP;
    if (want && s->read_paused) {
        s->read_paused = 0;
        uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
    } else if (!want && !s->read_paused) {
        s->read_paused = 1;
        uv_read_stop((uv_stream_t *)&s->tcp);
    }
}

void wr_sock_hold_read(wr_sock_t *s, int hold)
{
    s->read_held = (uint8_t)(hold != 0);
    update_read(s);
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
    s->h->on_close(s);
    wr_buf_free(&s->in);
    wr_buf_free(&s->out);
    wr_buf_free(&s->inflight);
    free(s);
}

static void do_close(wr_sock_t *s)
{
    if (s->detached) {
        s->closing = 1;
        return;
    }
    if (uv_is_closing((uv_handle_t *)&s->tcp))
        return;
    s->closing = 1;
    if (s->writing)
        return; /* write_cb finishes the close */
    /* The dirty list may still point at s: unlink before it is freed. */
    unlink_dirty(s);
    uv_close((uv_handle_t *)&s->tcp, closed_cb);
}

static void flush(wr_sock_t *s);

static void write_cb(uv_write_t *req, int status)
{
    wr_sock_t *s = req->data;
    s->writing = 0;
    s->inflight.len = 0;
    if (status < 0) {
        s->out.len = s->out_off = 0;
        s->closing = 1;
        do_close(s);
        return;
    }
    if (s->out.len > s->out_off) {
        flush(s);
    } else if (s->closing) {
        do_close(s);
        return;
    }
    update_congestion(s);
}

static void flush(wr_sock_t *s)
{
    if (s->detached)
        return; /* output stays in s->out for the test to read */
    if (s->writing || uv_is_closing((uv_handle_t *)&s->tcp))
        return;
    size_t pending = s->out.len - s->out_off;
    if (pending == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)s->out.p + s->out_off, (unsigned)pending);
    int r = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (r == UV_EAGAIN)
        r = 0;
    if (r < 0) {
        s->out.len = s->out_off = 0;
        s->closing = 1;
        return;
    }
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
    r = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, write_cb);
    if (r < 0) {
        s->writing = 0;
        s->closing = 1;
    }
}

void wr_sock_flush_all(void)
{
    while (dirty_list) {
        wr_sock_t *s = dirty_list;
        dirty_list = s->dirty_next;
        s->dirty = 0;
        flush(s);
        if (s->closing && !s->writing)
            do_close(s);
        else
            update_congestion(s);
    }
}

void wr_sock_close(wr_sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    if (s->detached)
        return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    mark_dirty(s);
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
    wr_buf_put(&s->in, p, n);
    s->h->on_read(s);
}

void wr_sock_detached_drain(wr_sock_t *s)
{
    s->out.len = s->out_off = 0;
}

void wr_sock_detached_free(wr_sock_t *s)
{
    unlink_dirty(s);
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

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        wr_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    wr_sock_t *s = wr_xcalloc(1, sizeof *s);
    uv_tcp_init(server->loop, &s->tcp);
    s->tcp.data = s;
    s->h = accept_handler;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
        uv_close((uv_handle_t *)&s->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int lo = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
        addr_string(&ss, s->peer, sizeof s->peer, &lo);
    s->is_loopback = (uint8_t)lo;
    len = sizeof ss;
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
        addr_string(&ss, s->local, sizeof s->local, &lo);
    s->read_paused = 1;
    accept_cb(s);
    update_read(s);
}

int wr_listen(uv_loop_t *loop, const char *host, int port, const wr_sock_handler_t *h,
              wr_accept_cb on_accept, uv_tcp_t *server)
{
    struct sockaddr_storage addr;
    int r;
    if (strchr(host, ':'))
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (r < 0)
        return r;
    accept_handler = h;
    accept_cb = on_accept;
    uv_tcp_init(loop, server);
    r = uv_tcp_bind(server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)server, 1024, on_connection);
    return r;
}
