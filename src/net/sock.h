/*
 * sock.h - the TCP transport: listeners, per-connection buffers, batched
 * writes and read back-pressure, on a libuv loop.
 *
 * The protocol layer never writes to a socket directly.  It appends bytes
 * to wr_sock_out(s), which marks the socket dirty; wr_sock_flush_all(),
 * called once per loop pass (before the loop sleeps, in the manner of
 * Redis's beforeSleep), writes every dirty socket with one try-write and,
 * for what the kernel did not take, one uv_write.  So a burst of thousands
 * of deliveries costs one system call, not one each.
 *
 * Ownership: a wr_sock_t is owned by the net layer; the protocol layer
 * keeps a pointer from on_accept until its on_close callback returns, after
 * which the socket's memory is released.  wr_sock_close() may be called at
 * any time; output already queued is still written (best effort) before the
 * descriptor closes.
 *
 * Input buffering: bytes read are appended to s->in; the handler consumes a
 * prefix with wr_sock_consume().  The buffer grows to hold a whole frame
 * (the protocol bounds frames by frame_max).
 */
#ifndef WR_SOCK_H
#define WR_SOCK_H

#include <uv.h>

#include "core/buf.h"

typedef struct wr_sock wr_sock_t;

typedef struct wr_sock_handler {
    /* New bytes are in s->in. */
    void (*on_read)(wr_sock_t *s);
    /* Queued output fell below the low watermark after having been above
     * the high one: consumers on this socket may be served again. */
    void (*on_drain)(wr_sock_t *s);
    /* The connection is gone (peer closed, error, or wr_sock_close).
     * Called once; the socket is freed right after it returns. */
    void (*on_close)(wr_sock_t *s);
} wr_sock_handler_t;

struct wr_sock {
    uv_tcp_t tcp;
    const wr_sock_handler_t *h;
    void *ud; /* the protocol layer's connection */
    wr_buf_t in;
    wr_buf_t out;      /* queued, not yet handed to the kernel */
    size_t out_off;    /* bytes of out already written */
    wr_buf_t inflight; /* owned by libuv while writing != 0 */
    size_t inflight_off;
    uv_write_t wreq;
    uint8_t writing;
    uint8_t dirty;
    uint8_t closing;
    uint8_t read_paused; /* by back-pressure */
    uint8_t read_held;   /* by the protocol layer (wr_sock_hold_read) */
    uint8_t congested;   /* queued output above the high watermark */
    uint8_t is_loopback;
    uint8_t detached; /* no descriptor: tests and fuzzing */
    char peer[64];    /* "host:port" of the peer */
    char local[64];
    wr_sock_t *dirty_next;
};

typedef void (*wr_accept_cb)(wr_sock_t *s);

/* Sets the handler used for accepted sockets and starts listening.
 * Returns 0 or a negative libuv error. */
int wr_listen(uv_loop_t *loop, const char *host, int port, const wr_sock_handler_t *h,
              wr_accept_cb on_accept, uv_tcp_t *server);

/* Output: the returned buffer may be appended to until control returns to
 * the loop; the socket is scheduled for flushing. */
wr_buf_t *wr_sock_out(wr_sock_t *s);
/* Bytes queued and not yet acknowledged by the kernel. */
size_t wr_sock_queued(const wr_sock_t *s);
/* Above the delivery watermark: stop sending deliveries to this socket. */
static inline int wr_sock_congested(const wr_sock_t *s)
{
    return s->congested;
}

void wr_sock_consume(wr_sock_t *s, size_t n);
/* Stops/starts reading for the protocol layer's own reasons (a blocked
 * publisher); independent from back-pressure pauses. */
void wr_sock_hold_read(wr_sock_t *s, int hold);
/* Flushes queued output, then closes. */
void wr_sock_close(wr_sock_t *s);
/* Writes every dirty socket; called once per loop pass. */
void wr_sock_flush_all(void);

/*
 * Detached sockets have no descriptor: bytes are fed with wr_sock_feed and
 * output accumulates in s->out for the caller to inspect (or discard with
 * wr_sock_detached_drain).  They let unit tests and the connection fuzzer
 * drive the real protocol code without a network.  wr_sock_detached_free
 * runs on_close (if the connection has not been closed) and frees.
 */
wr_sock_t *wr_sock_new_detached(const wr_sock_handler_t *h, int loopback);
void wr_sock_feed(wr_sock_t *s, const uint8_t *p, size_t n);
void wr_sock_detached_drain(wr_sock_t *s);
void wr_sock_detached_free(wr_sock_t *s);

/* Delivery watermark (bytes queued) above which a socket is congested and
 * below half of which it drains; and the hard limit above which reading
 * from it stops until it drains. */
#define WR_SOCK_HIGH_WATER (1u << 20)
#define WR_SOCK_READ_STOP  (8u << 20)

#endif
