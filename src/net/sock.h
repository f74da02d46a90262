/*
 * sock.h - the TCP transport: listeners, per-connection buffers, batched
 * writes, read back-pressure, a per-socket timer and graceful close, on a
 * libuv loop.
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
 *
 * Closing is graceful: wr_sock_close() writes what is queued, then shuts
 * down the sending side (the peer reads EOF) and keeps reading, discarding
 * what the peer still sends, until the peer closes too or WR_SOCK_LINGER_MS
 * pass.  Closing a socket with unread input would make the kernel answer
 * with a reset, and the peer could lose the last frames we sent (a
 * close-ok) to it.  wr_sock_abort_all() (teardown) closes at once.
 *
 * TLS (a listener with a TLS context) changes none of this: ciphertext
 * read is decrypted into s->in before on_read, and at flush time the
 * queued plaintext is encrypted into ciphertext in one pass, which is
 * then written as plain output would be (net/tls.h).  The protocol layer
 * sees the same socket either way.
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

typedef void (*wr_sock_timer_cb)(wr_sock_t *s);

/*
 * A transport: what lies between the descriptor and the protocol's
 * buffers (as Redis's connection types).  TCP and Unix sockets have
 * nothing there: bytes are read straight into s->in and s->out is written
 * as it is (both hooks NULL, so plain sockets pay one pointer test).  TLS
 * decrypts what is read and encrypts what is queued (net/tls.h).
 */
typedef struct wr_transport {
    const char *name; /* "tcp", "unix", "tls" */
    /* Bytes read from the descriptor: give the protocol's bytes to s->in
     * (and anything to send back to s->wire).  0, or -1 with *why: the
     * session is over (what is in s->wire still goes out). */
    int (*input)(wr_sock_t *s, const uint8_t *p, size_t n, const char **why);
    /* Before a write: turn the queued s->out into the bytes to write, in
     * s->out (closing: with the transport's goodbye). */
    void (*prepare)(wr_sock_t *s);
    void (*destroy)(wr_sock_t *s);
} wr_transport_t;

extern const wr_transport_t wr_transport_tcp, wr_transport_unix, wr_transport_tls;

struct wr_sock {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io; /* the descriptor's handle, by transport (TLS runs over TCP) */
    const wr_transport_t *tr;
    uv_timer_t timer; /* the protocol's timer, then the linger timeout */
    uv_shutdown_t shut;
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
    uint8_t detached;  /* no descriptor: tests and fuzzing */
    uint8_t lingering; /* shut down, reading until the peer closes */
    uint8_t handles;   /* libuv handles not yet closed (tcp, timer) */
    uint8_t timer_init;
    struct wr_tls *tls; /* TLS session (net/tls.h), or NULL for plain TCP */
    wr_buf_t wire;      /* TLS: ciphertext produced, not yet written */
    uint64_t bytes_in;  /* read from the kernel */
    uint64_t bytes_out; /* handed to the kernel */
    wr_sock_timer_cb timer_cb;
    uint64_t timer_ms; /* the protocol timer's period, 0 = stopped */
    char peer[64];     /* "host:port" of the peer */
    char local[64];
    wr_sock_t *dirty_next;
    uint8_t reread;         /* queued to read its buffered input again */
    wr_sock_t *reread_next; /* in that queue */
    wr_sock_t *all_next, *all_prev;
};

typedef void (*wr_accept_cb)(wr_sock_t *s);

/* A listening socket; sockets it accepts get its handler. */
typedef struct wr_listener {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    const wr_sock_handler_t *h;
    struct wr_tls_ctx *tls; /* set before wr_listen: accepted sockets speak TLS */
    uint8_t is_unix;        /* a Unix-domain listener (wr_listen_unix) */
    wr_accept_cb on_accept;
    void *ud;      /* the protocol's data for this listener: an accepted
                    * socket's s->ud holds it when on_accept is called
                    * (HTTP: the application it serves) */
    char addr[72]; /* "IP:PORT" or "[IPv6]:PORT" as bound */
    int port;      /* the port bound (the kernel's choice for 0) */
} wr_listener_t;

/* Binds host (a numeric IPv4 or IPv6 address; an IPv6 listener takes only
 * IPv6 connections) and port and starts listening; accepted sockets get
 * handler h, then on_accept is called.  Returns 0 or a negative libuv error
 * (the handle is then closed by the caller's loop walk, never used). */
int wr_listen(uv_loop_t *loop, wr_listener_t *l, const char *host, int port,
              const wr_sock_handler_t *h, wr_accept_cb on_accept);
/* Listens on a Unix-domain socket at path (a stale socket file there is
 * replaced; mode 0660).  Accepted sockets count as loopback. */
int wr_listen_unix(uv_loop_t *loop, wr_listener_t *l, const char *path, const wr_sock_handler_t *h,
                   wr_accept_cb on_accept);
void wr_listener_close(wr_listener_t *l);

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
 * publisher, an answer waiting for the cluster); independent from
 * back-pressure pauses.  Releasing a hold with input already buffered
 * calls on_read for it on the next loop pass (never from inside this
 * call: the caller may be deep in another module's callback). */
void wr_sock_hold_read(wr_sock_t *s, int hold);
/* Flushes queued output, then closes gracefully (see above).  The
 * protocol timer stops; on_read is not called again. */
void wr_sock_close(wr_sock_t *s);
/* Aborts every socket (final teardown). */
void wr_sock_abort_all(void);
/* Writes every dirty socket; called once per loop pass. */
void wr_sock_flush_all(void);

/* Calls cb every interval_ms until stopped (interval_ms 0), replacing any
 * earlier timer, until the socket closes.  One timer a socket: the
 * protocol layer uses it for heartbeats. */
void wr_sock_set_timer(wr_sock_t *s, uint64_t interval_ms, wr_sock_timer_cb cb);

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
/* Runs a detached socket's timer callback as if its period had passed;
 * returns 0 if no timer is set. */
int wr_sock_detached_fire_timer(wr_sock_t *s);

/* Delivery watermark (bytes queued) above which a socket is congested and
 * below half of which it drains; and the hard limit above which reading
 * from it stops until it drains. */
#define WR_SOCK_HIGH_WATER (1u << 20)
#define WR_SOCK_READ_STOP  (8u << 20)
/* How long a closed socket waits for the peer to close its side. */
#define WR_SOCK_LINGER_MS 2000

#endif
