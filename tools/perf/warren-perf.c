/*
 * warren-perf.c - a load generator for AMQP 0-9-1 brokers, in the spirit of
 * RabbitMQ's PerfTest.
 *
 * It speaks AMQP itself over plain sockets with warren's own frame and
 * method codec, so that a benchmark measures the broker and not a client
 * library.  Every producer and every consumer has its own connection and
 * its own thread.  A producer encodes its message once, into a template of
 * ready-made frames (basic.publish, content header, body), and then copies
 * that template many times into one large output buffer that leaves in a
 * single write(); a consumer reads up to a megabyte at a time and walks
 * every complete frame in it before reading again, with a short path for
 * basic.deliver.  Sockets are non-blocking and a thread calls poll() only
 * when the kernel has told it to wait, so at full speed the tool makes a
 * few system calls per thousand messages.
 *
 * The main thread starts the consumers and waits until each has its
 * basic.consume-ok, then starts the producers (which connect and declare
 * their queues before being released together), prints one progress line a
 * second on stderr, stops the producers after --duration, lets the
 * consumers drain for up to two seconds, and prints one summary line of
 * key=value pairs on stdout.  A connection.close or channel.close from the
 * broker is printed and makes the run fail with exit status 1.
 *
 * With --latency each body starts with the CLOCK_MONOTONIC time at which
 * the producer encoded it; producers and consumers share one process and
 * so one clock, and consumers record receive time minus that stamp in a
 * histogram (hist.h).
 *
 * With --queues N a producer publishes round-robin to N queues, QUEUE.0 to
 * QUEUE.(N-1) with the number zero-padded so that every name, and so every
 * message, has the same length: the template then holds one message per
 * queue, back to back, and the producer cycles through them.  Consumer i
 * consumes, on its one channel, every queue q with q % consumers == i (or
 * queue i % N, shared, when there are more consumers than queues).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/err.h"
#include "proto/frame.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

#include "hist.h"

#define PERF_VERSION "0.1.0"
#define NS_PER_SEC   1000000000LL
/* A producer encodes about this many bytes of messages per write(): large
 * enough that system calls vanish from the profile, small enough that the
 * latency stamps of one batch are close together. */
#define BATCH_BYTES (256 * 1024)
/* A consumer asks for this much per read(). */
#define READ_BYTES (1024 * 1024)
/* How long consumers may drain, and producers wait for confirms, at the end. */
#define DRAIN_NS (2 * NS_PER_SEC)
/* A paced producer (--rate) sleeps at least this long between writes and
 * then sends every message that fell due meanwhile: at 100,000 msg/s that
 * is 10 messages per write instead of one, which keeps the tool's own CPU
 * use (and so its disturbance of the broker on a small machine) low.  Each
 * message is still stamped when it is encoded, right before the write. */
#define PACE_NS 100000LL
/* With --pmessages a producer waits for all its confirms and a run waits
 * for its consumers as long as they make progress; this much silence ends
 * the wait. */
#define CONFIRM_STALL_NS (60 * NS_PER_SEC)
/* How long a producer waits for connection.close-ok at the end. */
#define PRODUCER_CLOSE_NS (10 * NS_PER_SEC)
/* --await-messages polls the queue this often. */
#define AWAIT_POLL_NS (10 * 1000000LL)
/* Setup sends at most this many queue.declare at once before reading the
 * replies: pipelined, because one round trip per queue would make setting
 * up thousands of queues slow, and bounded, so that replies we do not read
 * yet cannot fill the socket buffers and stall both sides. */
#define DECLARE_WINDOW 64
/* Room for a queue name (at most 255 bytes) and a suffix. */
#define QNAME_CAP 300
/* Threads wake at least this often to notice the stop flags. */
#define IDLE_POLL_MS 100
#define CHANNEL      1

/* ---- options ------------------------------------------------------------ */

typedef struct options {
    const char *user, *pass, *host, *port, *vhost;
    int tls; /* amqps:// (the server's certificate is not verified: a benchmark) */
    int producers, consumers;
    const char *queue;
    int durable, persistent, latency, auto_ack;
    size_t size;
    uint32_t confirm;   /* max unconfirmed per producer; 0 = no confirms */
    uint32_t multi_ack; /* ack every N deliveries; 1 = each, not multiple */
    uint16_t prefetch;  /* basic.qos prefetch_count; 0 = unlimited */
    double rate;        /* messages per second over all producers; 0 = no limit */
    double duration;    /* seconds; 0 = until SIGINT (or until the message counts) */
    uint64_t pmessages; /* each producer publishes this many, then stops; 0 = no limit */
    uint64_t cmessages; /* each consumer receives this many, then stops; 0 = no limit */
    int predeclared;    /* use the queue as it is: passive declare only */
    int fanout;         /* publish to a fanout exchange, one queue per consumer */
    int queues;         /* --queues: producers publish round-robin to this many */
    int queue_width;    /* digits of the queue number in QUEUE.N (with queues > 1) */
    int await;          /* --await-messages given: poll the queue, no load */
    uint64_t await_n;   /* ... until it holds at least this many messages */
} options_t;

static options_t opt;

/* ---- state shared between threads --------------------------------------- */

static atomic_int fatal_error;    /* some connection failed: stop and exit 1 */
static atomic_int stop_producers; /* main: stop publishing, flush, close */
static atomic_int stop_consumers; /* main: drain over, close */
static atomic_int go;             /* main: connected producers may publish */
static atomic_int ready_count;    /* workers that finished their setup */
static volatile sig_atomic_t interrupted;

/* One producer or consumer.  The counters are written by the worker's own
 * thread (relaxed stores of its local totals, once per batch) and read by
 * the main thread for progress lines; hist is read only after the join. */
typedef struct worker {
    pthread_t thread;
    int index;
    int is_producer;
    _Atomic uint64_t count;       /* messages written, or messages received */
    _Atomic uint64_t confirmed;   /* producer: basic.ack'ed by the broker */
    _Atomic uint64_t nacked;      /* producer: basic.nack'ed */
    _Atomic uint64_t returned;    /* producer: basic.return'ed */
    _Atomic uint64_t unconfirmed; /* producer: published, not yet confirmed */
    _Atomic uint64_t lat_sum_ns;  /* consumer: for the progress lines' mean */
    _Atomic uint64_t lat_count;
    _Atomic int64_t last_ns;         /* time of the last message sent or received */
    _Atomic int64_t last_confirm_ns; /* producer: time of the last confirm */
    _Atomic int finished;            /* reached --pmessages / --cmessages (and its confirms) */
    double cpu_s;                    /* CPU time the thread used, set as it exits */
    hist_t *hist;                    /* consumer with --latency; owned */
} worker_t;

/* CPU time (user and system) of the calling thread so far, in seconds. */
static double thread_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "warren-perf: %s\n", line);
}

/* ---- one AMQP connection ------------------------------------------------ */

/* A connection owns its socket and two buffers.  Input bytes [in_off,
 * in_len) have been read but not yet parsed; a frame returned by
 * conn_next_frame points into in and stays valid until the next
 * conn_read.  Output bytes [out_off, out.len) are encoded but not yet
 * written. */
typedef struct conn {
    int fd;
    SSL *ssl; /* amqps: the session over fd, else NULL */
    char name[32];
    uint32_t frame_max;
    uint8_t *in;
    size_t in_cap, in_len, in_off;
    wr_buf_t out;
    size_t out_off;
    int closing; /* we sent connection.close: the broker may hang up */
} conn_t;

static void put_method(wr_buf_t *b, uint16_t channel, const wr_method_t *m)
{
    size_t start = wr_frame_begin(b, WR_AMQP_FRAME_METHOD, channel);
    wr_method_encode(b, m);
    wr_frame_end(b, start);
}

/* --await-messages retries failed connections silently until its timeout. */
static int quiet;

static void fail(conn_t *c, const char *what)
{
    if (!quiet)
        say("%s: %s", c->name, what);
    atomic_store(&fatal_error, 1);
}

/* Waits until fd is ready for events or timeout_ns passes (-1: forever).
 * Returns the revents, 0 on timeout. */
static int wait_fd(int fd, short events, int64_t timeout_ns)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / NS_PER_SEC);
        ts.tv_nsec = (long)(timeout_ns % NS_PER_SEC);
        tsp = &ts;
    }
    int n = ppoll(&pfd, 1, tsp, NULL);
    return n > 0 ? pfd.revents : 0;
}

/* One write() of the pending output.  Returns the bytes written (0 if the
 * socket is full), or -1 after reporting a failure. */
static ssize_t conn_write_some(conn_t *c)
{
    size_t pending = c->out.len - c->out_off;
    if (pending == 0)
        return 0;
    ssize_t n;
    if (c->ssl) {
        int w =
            SSL_write(c->ssl, c->out.p + c->out_off, pending > INT_MAX ? INT_MAX : (int)pending);
        if (w <= 0) {
            int e = SSL_get_error(c->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                return 0;
            fail(c, "TLS write failed");
            return -1;
        }
        n = w;
    } else {
        n = send(c->fd, c->out.p + c->out_off, pending, MSG_NOSIGNAL);
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        char msg[128];
        snprintf(msg, sizeof msg, "write: %s", strerror(errno));
        fail(c, msg);
        return -1;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out.len)
        c->out.len = c->out_off = 0;
    return n;
}

/* Writes all pending output, waiting as needed; for the handshake and
 * other small control traffic.  Returns 0 or -1. */
static int conn_flush(conn_t *c)
{
    while (c->out.len > c->out_off) {
        if (conn_write_some(c) < 0)
            return -1;
        if (c->out.len > c->out_off)
            wait_fd(c->fd, POLLOUT, IDLE_POLL_MS * 1000000LL);
        if (atomic_load_explicit(&fatal_error, memory_order_relaxed))
            return -1;
    }
    return 0;
}

/* One read() into the input buffer, first moving any partial frame to its
 * front.  Returns the bytes read, 0 if none were available, or -1 after
 * reporting a failure (including the broker closing the socket). */
static ssize_t conn_read(conn_t *c)
{
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    /* A whole frame must fit, whatever frame_max was negotiated. */
    size_t need = (size_t)c->frame_max + READ_BYTES;
    if (c->in_cap < need) {
        c->in = wr_xrealloc(c->in, need);
        c->in_cap = need;
    }
    if (c->ssl) {
        /* Take every record OpenSSL has, so that a poll() after a short
         * read never waits while decrypted data sits in the session. */
        size_t got = 0;
        while (c->in_len < c->in_cap) {
            size_t room = c->in_cap - c->in_len;
            int r = SSL_read(c->ssl, c->in + c->in_len, room > INT_MAX ? INT_MAX : (int)room);
            if (r > 0) {
                c->in_len += (size_t)r;
                got += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            if (got)
                break;
            if (c->closing)
                return -1;
            fail(c, e == SSL_ERROR_ZERO_RETURN ? "connection lost: closed by peer"
                                               : "connection lost: TLS error");
            return -1;
        }
        return (ssize_t)got;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (c->closing)
        return -1;
    char msg[128];
    snprintf(msg, sizeof msg, "connection lost: %s", n == 0 ? "closed by peer" : strerror(errno));
    fail(c, msg);
    return -1;
}

/* Takes the next complete frame from the input buffer: 1 and *f filled, 0
 * if only part of one is there, -1 after reporting a framing error. */
static int conn_next_frame(conn_t *c, wr_frame_t *f)
{
    long n = wr_frame_parse(c->in + c->in_off, c->in_len - c->in_off, c->frame_max, f);
    if (n > 0) {
        c->in_off += (size_t)n;
        return 1;
    }
    if (n == 0)
        return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "bad frame from broker: %s", wr_strerror((int)n));
    fail(c, msg);
    return -1;
}

/* Called for a connection.close or channel.close from the broker: prints
 * the reply, answers it so that the broker can release the connection, and
 * marks the run as failed. */
static void on_broker_close(conn_t *c, const wr_method_t *m)
{
    const wr_connection_close_t *cc = &m->u.connection_close;
    uint16_t code = cc->reply_code, cls = cc->class_id, mth = cc->method_id;
    wr_bytes_t text = cc->reply_text;
    const char *what = "connection";
    wr_method_t ok = {.id = WR_M_CONNECTION_CLOSE_OK};
    uint16_t ch = 0;
    if (m->id == WR_M_CHANNEL_CLOSE) {
        const wr_channel_close_t *chc = &m->u.channel_close;
        code = chc->reply_code;
        cls = chc->class_id;
        mth = chc->method_id;
        text = chc->reply_text;
        what = "channel";
        ok.id = WR_M_CHANNEL_CLOSE_OK;
        ch = CHANNEL;
    }
    const char *name = wr_amqp_reply_name(code);
    const char *method = wr_method_name(WR_M_ID(cls, mth));
    char msg[512];
    snprintf(msg, sizeof msg, "%s closed by broker: %u %s \"%.*s\"%s%s", what, code,
             name ? name : "", (int)text.n, (const char *)text.p, method ? " in " : "",
             method ? method : "");
    fail(c, msg);
    put_method(&c->out, ch, &ok);
    /* Best effort: the run is over whatever happens to this write. */
    conn_write_some(c);
}

/* Decodes a method frame; -1 after reporting a malformed one. */
static int decode_method(conn_t *c, const wr_frame_t *f, wr_method_t *m)
{
    int rc = wr_method_decode(f->payload.p, f->payload.n, m);
    if (rc == 0)
        return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "cannot decode method 0x%08x: %s", m->id, wr_strerror(rc));
    fail(c, msg);
    return -1;
}

/* Reads frames until the method `want` arrives and decodes it into *m (its
 * strings point into the input buffer).  Other frames are skipped, which is
 * right during setup, when nothing else is expected.  Returns 0, or -1
 * after a close from the broker, an error or timeout. */
static int conn_wait_method(conn_t *c, uint32_t want, wr_method_t *m)
{
    int64_t deadline = now_ns() + 30 * NS_PER_SEC;
    for (;;) {
        wr_frame_t f;
        int rc;
        while ((rc = conn_next_frame(c, &f)) == 1) {
            if (f.type != WR_AMQP_FRAME_METHOD)
                continue;
            if (decode_method(c, &f, m) < 0)
                return -1;
            if (m->id == want)
                return 0;
            if (m->id == WR_M_CONNECTION_CLOSE || m->id == WR_M_CHANNEL_CLOSE) {
                on_broker_close(c, m);
                return -1;
            }
        }
        if (rc < 0 || atomic_load(&fatal_error))
            return -1;
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "timed out waiting for %s", wr_method_name(want));
            fail(c, msg);
            return -1;
        }
        if (wait_fd(c->fd, POLLIN, left < NS_PER_SEC / 10 ? left : NS_PER_SEC / 10) &&
            conn_read(c) < 0)
            return -1;
    }
}

/* Sends a synchronous method on the channel and waits for its reply. */
static int conn_rpc(conn_t *c, const wr_method_t *req, uint32_t reply, wr_method_t *out)
{
    put_method(&c->out, CHANNEL, req);
    if (conn_flush(c) < 0)
        return -1;
    return conn_wait_method(c, reply, out);
}

/* Our client properties, as a table's content: product and version, and
 * the capabilities without which RabbitMQ would not send basic.nack,
 * connection.blocked or a broker-side basic.cancel. */
static void client_properties(wr_buf_t *t)
{
    wr_buf_t caps;
    wr_buf_init(&caps);
    static const char *const cap_names[] = {"publisher_confirms", "basic.nack",
                                            "connection.blocked", "consumer_cancel_notify",
                                            "authentication_failure_close"};
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++) {
        wr_table_put_key(&caps, wr_bytes_of(cap_names[i]));
        wr_field_t yes = wr_field_bool(1);
        wr_field_put(&caps, &yes);
    }
    wr_field_t f;
    wr_table_put_key(t, WR_BYTES_LIT("product"));
    f = wr_field_longstr(WR_BYTES_LIT("warren-perf"));
    wr_field_put(t, &f);
    wr_table_put_key(t, WR_BYTES_LIT("version"));
    f = wr_field_longstr(WR_BYTES_LIT(PERF_VERSION));
    wr_field_put(t, &f);
    wr_table_put_key(t, WR_BYTES_LIT("platform"));
    f = wr_field_longstr(WR_BYTES_LIT("C"));
    wr_field_put(t, &f);
    wr_table_put_key(t, WR_BYTES_LIT("capabilities"));
    f.type = 'F';
    f.v.bytes = (wr_bytes_t){caps.p, caps.len};
    wr_field_put(t, &f);
    wr_buf_free(&caps);
}

static int conn_connect(conn_t *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "cannot resolve %s: %s", opt.host, gai_strerror(rc));
        fail(c, msg);
        return -1;
    }
    int err = 0;
    c->fd = -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "cannot connect to %s:%s: %s", opt.host, opt.port, strerror(err));
        fail(c, msg);
        return -1;
    }
    /* Publishes are already batched; Nagle would only delay the small
     * writes of rate-limited runs and acks. */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.tls) {
        /* The handshake on the blocking socket, then non-blocking I/O. */
        static SSL_CTX *ctx;
        static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&ctx_lock);
        if (ctx == NULL) {
            ctx = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
            SSL_CTX_set_mode(ctx,
                             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        }
        pthread_mutex_unlock(&ctx_lock);
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, opt.host);
        if (SSL_connect(c->ssl) != 1) {
            fail(c, "TLS handshake failed");
            return -1;
        }
    }
    int flags = fcntl(c->fd, F_GETFL, 0);
    if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        fail(c, "cannot make the socket non-blocking");
        return -1;
    }
    return 0;
}

/* Opens the connection and channel 1: protocol header, PLAIN login,
 * tune (heartbeats off: a load generator is never idle long enough to need
 * them), connection.open, channel.open. */
static int conn_open(conn_t *c)
{
    /* Until tune, accept any frame a broker would plausibly send. */
    c->frame_max = 131072;
    if (conn_connect(c) < 0)
        return -1;
    wr_buf_put(&c->out, "AMQP\0\0\x09\x01", 8);
    if (conn_flush(c) < 0)
        return -1;

    wr_method_t m;
    if (conn_wait_method(c, WR_M_CONNECTION_START, &m) < 0)
        return -1;
    wr_bytes_t mechs = m.u.connection_start.mechanisms;
    if (memmem(mechs.p, mechs.n, "PLAIN", 5) == NULL) {
        fail(c, "broker does not offer PLAIN authentication");
        return -1;
    }
    wr_buf_t props, resp;
    wr_buf_init(&props);
    wr_buf_init(&resp);
    client_properties(&props);
    wr_buf_put_u8(&resp, 0);
    wr_buf_put(&resp, opt.user, strlen(opt.user));
    wr_buf_put_u8(&resp, 0);
    wr_buf_put(&resp, opt.pass, strlen(opt.pass));
    wr_method_t so = {.id = WR_M_CONNECTION_START_OK};
    so.u.connection_start_ok.client_properties = (wr_bytes_t){props.p, props.len};
    so.u.connection_start_ok.mechanism = WR_BYTES_LIT("PLAIN");
    so.u.connection_start_ok.response = (wr_bytes_t){resp.p, resp.len};
    so.u.connection_start_ok.locale = WR_BYTES_LIT("en_US");
    put_method(&c->out, 0, &so);
    wr_buf_free(&props);
    wr_buf_free(&resp);
    if (conn_flush(c) < 0 || conn_wait_method(c, WR_M_CONNECTION_TUNE, &m) < 0)
        return -1;

    /* Take the largest frames the broker allows: big bodies then need
     * fewer frames.  0 means no limit, for which RabbitMQ's default will do. */
    uint32_t fm = m.u.connection_tune.frame_max ? m.u.connection_tune.frame_max : 131072;
    wr_method_t to = {.id = WR_M_CONNECTION_TUNE_OK};
    to.u.connection_tune_ok.channel_max = m.u.connection_tune.channel_max;
    to.u.connection_tune_ok.frame_max = fm;
    to.u.connection_tune_ok.heartbeat = 0;
    put_method(&c->out, 0, &to);
    c->frame_max = fm;

    wr_method_t op = {.id = WR_M_CONNECTION_OPEN};
    op.u.connection_open.virtual_host = wr_bytes_of(opt.vhost);
    op.u.connection_open.reserved_1 = WR_BYTES_LIT("");
    put_method(&c->out, 0, &op);
    if (conn_flush(c) < 0 || conn_wait_method(c, WR_M_CONNECTION_OPEN_OK, &m) < 0)
        return -1;

    wr_method_t ch = {.id = WR_M_CHANNEL_OPEN};
    ch.u.channel_open.reserved_1 = WR_BYTES_LIT("");
    return conn_rpc(c, &ch, WR_M_CHANNEL_OPEN_OK, &m);
}

/* Closes the connection politely when the run went well (connection.close,
 * then up to timeout_ns for close-ok while discarding deliveries still in
 * flight), and frees it in every case. */
static void conn_close(conn_t *c, int64_t timeout_ns)
{
    if (c->fd >= 0 && !atomic_load(&fatal_error)) {
        wr_method_t m = {.id = WR_M_CONNECTION_CLOSE};
        m.u.connection_close.reply_code = WR_AMQP_REPLY_SUCCESS;
        m.u.connection_close.reply_text = WR_BYTES_LIT("warren-perf done");
        put_method(&c->out, 0, &m);
        int64_t deadline = now_ns() + timeout_ns;
        int done = conn_flush(c) < 0;
        c->closing = 1;
        while (!done && now_ns() < deadline) {
            if (!wait_fd(c->fd, POLLIN, NS_PER_SEC / 20))
                continue;
            ssize_t n = conn_read(c);
            if (n < 0)
                break;
            wr_frame_t f;
            while (!done && conn_next_frame(c, &f) == 1)
                done = f.type == WR_AMQP_FRAME_METHOD && f.channel == 0 && f.payload.n >= 4 &&
                       wr_get_u32(f.payload.p) == WR_M_CONNECTION_CLOSE_OK;
        }
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    wr_buf_free(&c->out);
}

/* With --fanout: the exchange producers publish to ("QUEUE.fanout") and
 * consumer i's own queue bound to it ("QUEUE.i"). */
static char fanout_exchange[300];

static int declare_fanout(conn_t *c)
{
    wr_method_t m = {.id = WR_M_EXCHANGE_DECLARE}, r;
    m.u.exchange_declare.exchange = wr_bytes_of(fanout_exchange);
    m.u.exchange_declare.type = WR_BYTES_LIT("fanout");
    m.u.exchange_declare.durable = (uint8_t)(opt.durable != 0);
    m.u.exchange_declare.arguments = WR_BYTES_LIT("");
    return conn_rpc(c, &m, WR_M_EXCHANGE_DECLARE_OK, &r);
}

/* Queue q of the --queues (0 <= q < opt.queues) into name (QNAME_CAP
 * bytes): QUEUE itself when there is one, else QUEUE.q with q zero-padded
 * to the width of the largest number, so that all names have one length. */
static void queue_name(int q, char *name)
{
    if (opt.queues == 1)
        snprintf(name, QNAME_CAP, "%s", opt.queue);
    else
        snprintf(name, QNAME_CAP, "%s.%0*d", opt.queue, opt.queue_width, q);
}

/* The k-th queue (from 0) of worker w into name; 0 if w has fewer than
 * k + 1 queues.  A producer publishes to all of them.  Consumer i consumes
 * every queue q with q % consumers == i, or, when there are more consumers
 * than queues, queue i % queues, which it then shares with others.  With
 * --fanout consumer i has one queue of its own, QUEUE.i. */
static int worker_queue(const worker_t *w, int k, char *name)
{
    if (opt.fanout && !w->is_producer) {
        if (k > 0)
            return 0;
        snprintf(name, QNAME_CAP, "%s.%d", opt.queue, w->index);
        return 1;
    }
    int q = w->is_producer ? k : w->index % opt.queues + k * opt.consumers;
    if (q >= opt.queues)
        return 0;
    queue_name(q, name);
    return 1;
}

/* Declares every queue of worker w: non-durable auto-delete by default, so
 * that nothing outlives the run; --durable makes durable queues that stay.
 * With --predeclared the queue is only looked up (a passive declare, which
 * fails with 404 if it does not exist) and used as it is.  *count, if not
 * NULL, receives the first queue's message count (ready messages) from its
 * queue.declare-ok. */
static int declare_queues(conn_t *c, const worker_t *w, uint32_t *count)
{
    char name[QNAME_CAP];
    int k = 0, more = 1;
    while (more) {
        int n = 0;
        while (n < DECLARE_WINDOW && (more = worker_queue(w, k + n, name)) != 0) {
            wr_method_t m = {.id = WR_M_QUEUE_DECLARE};
            m.u.queue_declare.queue = wr_bytes_of(name);
            m.u.queue_declare.passive = (uint8_t)(opt.predeclared != 0);
            m.u.queue_declare.durable = (uint8_t)(opt.durable != 0);
            m.u.queue_declare.auto_delete = (uint8_t)(opt.durable == 0);
            m.u.queue_declare.arguments = WR_BYTES_LIT("");
            put_method(&c->out, CHANNEL, &m);
            n++;
        }
        if (conn_flush(c) < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            wr_method_t r;
            if (conn_wait_method(c, WR_M_QUEUE_DECLARE_OK, &r) < 0)
                return -1;
            if (count && k + i == 0)
                *count = r.u.queue_declare_ok.message_count;
        }
        k += n;
    }
    return 0;
}

/* ---- producer ----------------------------------------------------------- */

typedef struct producer {
    worker_t *w;
    conn_t c;
    /* ntpl messages' frames, ready to copy, one per queue and each tpl_len
     * bytes long, back to back; owned. */
    uint8_t *tpl;
    size_t tpl_len, ntpl;
    size_t ts_off;      /* offset of the first body byte in each message of tpl */
    uint64_t published; /* messages encoded so far; the next one gets tag published + 1 */
    uint64_t written;   /* bytes of messages handed to the kernel */
    double rate;        /* this producer's share of --rate */
    int64_t t0;
    int blocked; /* connection.blocked received, not yet unblocked */
    /* Publisher confirms: done[seq & mask] marks a tag confirmed ahead of
     * low, the lowest unconfirmed tag.  At most opt.confirm tags are
     * outstanding and the ring has at least that many slots, so two live
     * tags never share one. */
    uint8_t *done;
    uint64_t mask, low;
    uint64_t confirmed, nacked, returned;
} producer_t;

/* Appends one message's frames (basic.publish, content header, body) to
 * b, with the body's first byte at *ts_off from the message's start. */
static void put_message(producer_t *p, wr_buf_t *b, wr_bytes_t routing_key, size_t *ts_off)
{
    size_t msg_start = b->len;
    wr_method_t m = {.id = WR_M_BASIC_PUBLISH};
    m.u.basic_publish.exchange = opt.fanout ? wr_bytes_of(fanout_exchange) : WR_BYTES_LIT("");
    m.u.basic_publish.routing_key = routing_key;
    put_method(b, CHANNEL, &m);

    size_t start = wr_frame_begin(b, WR_AMQP_FRAME_HEADER, CHANNEL);
    wr_buf_put_u16(b, WR_CLASS_BASIC);
    wr_buf_put_u16(b, 0); /* weight */
    wr_buf_put_u64(b, opt.size);
    wr_basic_props_t pr;
    memset(&pr, 0, sizeof pr);
    if (opt.persistent) {
        pr.flags = WR_PROP_DELIVERY_MODE;
        pr.delivery_mode = 2;
    }
    wr_props_encode(b, &pr);
    wr_frame_end(b, start);

    size_t chunk = p->c.frame_max - WR_FRAME_OVERHEAD;
    *ts_off = 0;
    for (size_t done = 0; done < opt.size;) {
        size_t k = opt.size - done < chunk ? opt.size - done : chunk;
        start = wr_frame_begin(b, WR_AMQP_FRAME_BODY, CHANNEL);
        if (done == 0)
            *ts_off = b->len - msg_start;
        memset(wr_buf_reserve(b, k), 0, k);
        b->len += k;
        wr_frame_end(b, start);
        done += k;
    }
}

/* One message per queue: with --fanout one to the exchange, else one per
 * queue of the --queues, whose names all have the same length, so that
 * every message does too. */
static void build_template(producer_t *p)
{
    wr_buf_t b;
    wr_buf_init(&b);
    p->ntpl = opt.fanout ? 1 : (size_t)opt.queues;
    for (size_t q = 0; q < p->ntpl; q++) {
        char name[QNAME_CAP];
        queue_name((int)q, name);
        size_t ts_off;
        put_message(p, &b, opt.fanout ? WR_BYTES_LIT("") : wr_bytes_of(name), &ts_off);
        if (q == 0) {
            p->tpl_len = b.len;
            p->ts_off = ts_off;
        }
        assert(b.len == (q + 1) * p->tpl_len && ts_off == p->ts_off);
    }
    p->tpl = b.p;
}

static void on_confirm(producer_t *p, uint64_t tag, int multiple, int nack)
{
    uint64_t next = p->published + 1;
    if (p->done == NULL)
        return;
    if (multiple && tag == 0)
        tag = next - 1; /* the spec's "everything so far" */
    if (tag >= next)
        return; /* a tag we never used: nothing sensible to count */
    for (uint64_t s = multiple ? p->low : tag; s <= tag; s++) {
        if (s < p->low || p->done[s & p->mask])
            continue;
        p->done[s & p->mask] = 1;
        if (nack)
            p->nacked++;
        else
            p->confirmed++;
    }
    while (p->low < next && p->done[p->low & p->mask]) {
        p->done[p->low & p->mask] = 0;
        p->low++;
    }
}

/* Reads what the broker sent and reacts: confirms, returns, flow control,
 * closes.  The content frames of a basic.return are skipped. */
static int producer_input(producer_t *p)
{
    ssize_t n = conn_read(&p->c);
    if (n <= 0)
        return (int)n;
    uint64_t answered = p->confirmed + p->nacked;
    wr_frame_t f;
    int rc;
    while ((rc = conn_next_frame(&p->c, &f)) == 1) {
        if (f.type != WR_AMQP_FRAME_METHOD)
            continue;
        wr_method_t m;
        if (decode_method(&p->c, &f, &m) < 0)
            return -1;
        switch (m.id) {
        case WR_M_BASIC_ACK:
            on_confirm(p, m.u.basic_ack.delivery_tag, m.u.basic_ack.multiple, 0);
            break;
        case WR_M_BASIC_NACK:
            on_confirm(p, m.u.basic_nack.delivery_tag, m.u.basic_nack.multiple, 1);
            break;
        case WR_M_BASIC_RETURN:
            p->returned++;
            break;
        case WR_M_CONNECTION_BLOCKED:
            say("%s: blocked by the broker: %.*s", p->c.name, (int)m.u.connection_blocked.reason.n,
                (const char *)m.u.connection_blocked.reason.p);
            p->blocked = 1;
            break;
        case WR_M_CONNECTION_UNBLOCKED:
            say("%s: unblocked", p->c.name);
            p->blocked = 0;
            break;
        case WR_M_CONNECTION_CLOSE:
        case WR_M_CHANNEL_CLOSE:
            on_broker_close(&p->c, &m);
            return -1;
        default:
            break;
        }
    }
    worker_t *w = p->w;
    if (p->confirmed + p->nacked != answered)
        atomic_store_explicit(&w->last_confirm_ns, now_ns(), memory_order_relaxed);
    atomic_store_explicit(&w->confirmed, p->confirmed, memory_order_relaxed);
    atomic_store_explicit(&w->nacked, p->nacked, memory_order_relaxed);
    atomic_store_explicit(&w->returned, p->returned, memory_order_relaxed);
    atomic_store_explicit(&w->unconfirmed, p->published + 1 - p->low, memory_order_relaxed);
    return rc < 0 ? -1 : 0;
}

/* How many messages may be encoded now.  When none may, *wait_ns is how
 * long until the rate allows the next one (or the idle period when only a
 * confirm or an unblock can help). */
static uint64_t producer_budget(producer_t *p, int64_t now, int64_t *wait_ns)
{
    uint64_t n = BATCH_BYTES / p->tpl_len;
    if (n == 0)
        n = 1;
    *wait_ns = IDLE_POLL_MS * 1000000LL;
    if (p->blocked)
        return 0;
    if (p->rate > 0) {
        /* Message k (from 0) is due at t0 + k / rate: pacing follows the
         * clock, so a late wake-up sends the overdue messages at once and
         * the average rate stays exact. */
        uint64_t due = (uint64_t)((double)(now - p->t0) * p->rate / 1e9) + 1;
        uint64_t room = due > p->published ? due - p->published : 0;
        if (room == 0) {
            int64_t at = p->t0 + (int64_t)((double)p->published * 1e9 / p->rate);
            *wait_ns = at - now > PACE_NS ? at - now : PACE_NS;
        }
        if (room < n)
            n = room;
    }
    if (opt.confirm) {
        uint64_t outstanding = p->published + 1 - p->low;
        uint64_t room = outstanding < opt.confirm ? opt.confirm - outstanding : 0;
        if (room < n)
            n = room;
    }
    if (opt.pmessages && opt.pmessages - p->published < n)
        n = opt.pmessages - p->published;
    return n;
}

/* Appends the next n messages.  Message k goes to queue k % ntpl: t is
 * the template of message published + i, kept without a division. */
static void producer_fill(producer_t *p, uint64_t n)
{
    size_t bytes = (size_t)n * p->tpl_len;
    uint8_t *dst = wr_buf_reserve(&p->c.out, bytes);
    size_t t = (size_t)(p->published % p->ntpl);
    for (uint64_t i = 0; i < n; i++, dst += p->tpl_len) {
        memcpy(dst, p->tpl + t * p->tpl_len, p->tpl_len);
        if (++t == p->ntpl)
            t = 0;
        if (opt.latency)
            wr_set_u64(dst + p->ts_off, (uint64_t)now_ns());
    }
    p->c.out.len += bytes;
    p->published += n;
}

static void *producer_main(void *arg)
{
    worker_t *w = arg;
    producer_t p;
    memset(&p, 0, sizeof p);
    p.w = w;
    p.low = 1;
    p.rate = opt.rate / opt.producers;
    conn_t *c = &p.c;
    c->fd = -1;
    wr_buf_init(&c->out);
    snprintf(c->name, sizeof c->name, "producer %d", w->index);
    /* The default 50 us timer slack would make every paced sleep late. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

    wr_method_t r;
    if (conn_open(c) < 0 || (opt.fanout ? declare_fanout(c) : declare_queues(c, w, NULL)) < 0)
        goto done;
    if (opt.confirm) {
        wr_method_t cs = {.id = WR_M_CONFIRM_SELECT};
        if (conn_rpc(c, &cs, WR_M_CONFIRM_SELECT_OK, &r) < 0)
            goto done;
        uint64_t slots = 1;
        while (slots < opt.confirm)
            slots <<= 1;
        p.done = wr_xcalloc(slots, 1);
        p.mask = slots - 1;
    }
    build_template(&p);
    atomic_fetch_add(&ready_count, 1);
    while (!atomic_load(&go)) {
        if (atomic_load(&fatal_error) || atomic_load(&stop_producers))
            goto done;
        usleep(1000);
    }

    p.t0 = now_ns();
    int readable = 0;
    unsigned iter = 0;
    for (;;) {
        if (atomic_load_explicit(&fatal_error, memory_order_relaxed))
            goto done;
        /* Confirms matter only when the window is full, and then the
         * wait below reports them; otherwise a look every few batches
         * keeps the counters fresh without a read() per write(). */
        if ((readable || (++iter & 15) == 0) && producer_input(&p) < 0)
            goto done;
        readable = 0;
        int64_t wait_ns = IDLE_POLL_MS * 1000000LL;
        if (c->out.len == c->out_off) {
            if (atomic_load_explicit(&stop_producers, memory_order_relaxed) ||
                (opt.pmessages && p.published >= opt.pmessages))
                break;
            uint64_t n = producer_budget(&p, now_ns(), &wait_ns);
            if (n)
                producer_fill(&p, n);
        }
        int full = 0;
        if (c->out.len > c->out_off) {
            size_t want = c->out.len - c->out_off;
            ssize_t k = conn_write_some(c);
            if (k < 0)
                goto done;
            if (k > 0) {
                p.written += (uint64_t)k;
                atomic_store_explicit(&w->count, p.written / p.tpl_len, memory_order_relaxed);
                atomic_store_explicit(&w->last_ns, now_ns(), memory_order_relaxed);
            }
            if ((size_t)k == want)
                continue;
            full = 1;
        }
        int ev = wait_fd(c->fd, full ? POLLIN | POLLOUT : POLLIN, wait_ns);
        readable = (ev & (POLLIN | POLLHUP | POLLERR)) != 0;
    }

    /* Everything is written.  Give the outstanding confirms a moment; with
     * --pmessages wait for every one of them, for as long as the broker
     * keeps confirming (a broker that goes silent for CONFIRM_STALL_NS
     * fails the run). */
    int64_t deadline = now_ns() + (opt.pmessages ? CONFIRM_STALL_NS : DRAIN_NS);
    while (opt.confirm && p.low <= p.published && !atomic_load(&fatal_error) && !interrupted) {
        int64_t now = now_ns();
        if (now >= deadline) {
            if (opt.pmessages) {
                char msg[128];
                snprintf(msg, sizeof msg, "no confirm for %lld s; %llu still unconfirmed",
                         (long long)(CONFIRM_STALL_NS / NS_PER_SEC),
                         (unsigned long long)(p.published + 1 - p.low));
                fail(c, msg);
            }
            break;
        }
        uint64_t before = p.low;
        if (wait_fd(c->fd, POLLIN, NS_PER_SEC / 100) && producer_input(&p) < 0)
            break;
        if (opt.pmessages && p.low != before)
            deadline = now_ns() + CONFIRM_STALL_NS;
    }
    if (!atomic_load(&fatal_error))
        atomic_store(&w->finished, 1);
done:
    atomic_store(&w->count, p.tpl_len ? p.written / p.tpl_len : 0);
    /* The broker answers close-ok only after it has read every publish
     * before it, and a flow-controlled broker may have megabytes of them
     * still in the socket: closing sooner would drop messages counted as
     * sent. */
    conn_close(c, PRODUCER_CLOSE_NS);
    w->cpu_s = thread_cpu_s();
    free(p.tpl);
    free(p.done);
    return NULL;
}

/* ---- consumer ----------------------------------------------------------- */

enum { EXPECT_METHOD, EXPECT_HEADER, EXPECT_BODY };

typedef struct consumer {
    worker_t *w;
    conn_t c;
    int expect;   /* which frame of a delivery comes next */
    uint64_t tag; /* delivery tag of the message being received */
    uint64_t body_size, body_got;
    uint64_t stamp; /* --latency: the producer's timestamp */
    int have_stamp;
    uint64_t received, unacked;
    uint64_t lat_sum, lat_n;
    int consumes;    /* basic.consume sent, one per queue */
    int consume_oks; /* basic.consume-ok received */
} consumer_t;

/* Appends basic.ack; hand-encoded because with per-message acks it is
 * the one frame a consumer sends per delivery. */
static void put_ack(wr_buf_t *b, uint64_t tag, int multiple)
{
    uint8_t *p = wr_buf_reserve(b, 21);
    p[0] = WR_AMQP_FRAME_METHOD;
    wr_set_u16(p + 1, CHANNEL);
    wr_set_u32(p + 3, 13); /* method id, delivery tag, multiple */
    wr_set_u32(p + 7, WR_M_BASIC_ACK);
    wr_set_u64(p + 11, tag);
    p[19] = (uint8_t)(multiple != 0);
    p[20] = WR_FRAME_END_OCTET;
    b->len += 21;
}

static void consumer_done(consumer_t *q, int64_t now)
{
    q->received++;
    q->expect = EXPECT_METHOD;
    if (q->have_stamp && q->w->hist) {
        int64_t d = now - (int64_t)q->stamp;
        uint64_t ns = d > 0 ? (uint64_t)d : 0;
        hist_add(q->w->hist, ns);
        q->lat_sum += ns;
        q->lat_n++;
    }
    if (!opt.auto_ack && ++q->unacked >= opt.multi_ack) {
        put_ack(&q->c.out, q->tag, opt.multi_ack > 1);
        q->unacked = 0;
    }
    if (opt.cmessages && q->received >= opt.cmessages && q->unacked) {
        /* The last one: ack the remainder of a multi-ack batch too, so
         * that exactly --cmessages messages leave the queue. */
        put_ack(&q->c.out, q->tag, 1);
        q->unacked = 0;
    }
}

/* Any method but basic.deliver: only closes, cancels and consume-oks
 * matter. */
static int consumer_method(consumer_t *q, const wr_frame_t *f)
{
    wr_method_t m;
    if (decode_method(&q->c, f, &m) < 0)
        return -1;
    switch (m.id) {
    case WR_M_CONNECTION_CLOSE:
    case WR_M_CHANNEL_CLOSE:
        on_broker_close(&q->c, &m);
        return -1;
    case WR_M_BASIC_CANCEL:
        fail(&q->c, "consumer cancelled by the broker (queue deleted?)");
        return -1;
    case WR_M_BASIC_CONSUME_OK:
        q->consume_oks++;
        return 0;
    default:
        return 0;
    }
}

/* Walks every complete frame in the input buffer.  Deliveries take the
 * short path: the method id and delivery tag are read in place (the tag
 * follows the consumer tag), the header gives the body size, body frames
 * are only counted, except the first eight bytes under --latency. */
static int consumer_input(consumer_t *q, int64_t now)
{
    wr_frame_t f;
    int rc;
    while ((rc = conn_next_frame(&q->c, &f)) == 1) {
        const uint8_t *p = f.payload.p;
        size_t n = f.payload.n;
        switch (f.type) {
        case WR_AMQP_FRAME_METHOD:
            if (n >= 5 && wr_get_u32(p) == WR_M_BASIC_DELIVER) {
                /* Past --cmessages, prefetched deliveries are left
                 * unacked (the broker requeues them when we close) and
                 * their content frames are skipped below. */
                if (opt.cmessages && q->received >= opt.cmessages) {
                    q->expect = EXPECT_METHOD;
                    break;
                }
                size_t tag_len = p[4];
                if (tag_len + 8 > n - 5) {
                    fail(&q->c, "truncated basic.deliver");
                    return -1;
                }
                q->tag = wr_get_u64(p + 5 + tag_len);
                q->expect = EXPECT_HEADER;
            } else if (consumer_method(q, &f) < 0) {
                return -1;
            }
            break;
        case WR_AMQP_FRAME_HEADER:
            if (q->expect != EXPECT_HEADER)
                break;
            if (n < 14) {
                fail(&q->c, "truncated content header");
                return -1;
            }
            q->body_size = wr_get_u64(p + 4);
            q->body_got = 0;
            q->have_stamp = 0;
            if (q->body_size == 0)
                consumer_done(q, now);
            else
                q->expect = EXPECT_BODY;
            break;
        case WR_AMQP_FRAME_BODY:
            if (q->expect != EXPECT_BODY)
                break;
            if (q->body_got == 0 && n >= 8) {
                q->stamp = wr_get_u64(p);
                q->have_stamp = 1;
            }
            q->body_got += n;
            if (q->body_got >= q->body_size)
                consumer_done(q, now);
            break;
        default:
            break; /* heartbeats */
        }
    }
    return rc < 0 ? -1 : 0;
}

static void *consumer_main(void *arg)
{
    worker_t *w = arg;
    consumer_t q;
    memset(&q, 0, sizeof q);
    q.w = w;
    conn_t *c = &q.c;
    c->fd = -1;
    wr_buf_init(&c->out);
    snprintf(c->name, sizeof c->name, "consumer %d", w->index);

    wr_method_t r;
    uint32_t count = 0;
    char qname[QNAME_CAP];
    if (conn_open(c) < 0 || declare_queues(c, w, &count) < 0)
        goto done;
    if (opt.fanout) {
        worker_queue(w, 0, qname);
        wr_method_t qb = {.id = WR_M_QUEUE_BIND};
        qb.u.queue_bind.queue = wr_bytes_of(qname);
        qb.u.queue_bind.exchange = wr_bytes_of(fanout_exchange);
        qb.u.queue_bind.arguments = WR_BYTES_LIT("");
        if (declare_fanout(c) < 0 || conn_rpc(c, &qb, WR_M_QUEUE_BIND_OK, &r) < 0)
            goto done;
    }
    if (opt.predeclared && w->index == 0)
        say("queue %s holds %u messages", opt.queue, count);
    if (opt.prefetch) {
        wr_method_t qos = {.id = WR_M_BASIC_QOS};
        qos.u.basic_qos.prefetch_count = opt.prefetch;
        if (conn_rpc(c, &qos, WR_M_BASIC_QOS_OK, &r) < 0)
            goto done;
    }
    /* Without producers the queue may hold a backlog (--predeclared): then
     * the clock starts before basic.consume, not after it, so that the
     * run's time covers every delivery. */
    if (opt.producers == 0) {
        atomic_fetch_add(&ready_count, 1);
        while (!atomic_load(&go)) {
            if (atomic_load(&fatal_error) || atomic_load(&stop_consumers))
                goto done;
            usleep(100);
        }
    }
    /* One basic.consume per queue, all sent at once.  Their consume-oks are
     * awaited in the loop below and not with conn_rpc: once the first queue
     * delivers, deliveries and the remaining consume-oks interleave, and a
     * delivery must be counted and acked, not skipped.  Short consumer
     * tags, c<consumer> and then c<consumer>.<k> for its k-th queue: a tag
     * is repeated in every delivery. */
    for (int k = 0; worker_queue(w, k, qname); k++) {
        char tag[32];
        if (k == 0)
            snprintf(tag, sizeof tag, "c%d", w->index);
        else
            snprintf(tag, sizeof tag, "c%d.%d", w->index, k);
        wr_method_t bc = {.id = WR_M_BASIC_CONSUME};
        bc.u.basic_consume.queue = wr_bytes_of(qname);
        bc.u.basic_consume.consumer_tag = wr_bytes_of(tag);
        bc.u.basic_consume.no_ack = (uint8_t)(opt.auto_ack != 0);
        bc.u.basic_consume.arguments = WR_BYTES_LIT("");
        put_method(&c->out, CHANNEL, &bc);
        q.consumes++;
    }
    int subscribed = 0; /* every consume-ok is in */
    int64_t consume_deadline = now_ns() + 30 * NS_PER_SEC;

    while (!atomic_load_explicit(&fatal_error, memory_order_relaxed) &&
           !atomic_load_explicit(&stop_consumers, memory_order_relaxed)) {
        ssize_t n = conn_read(c);
        if (n < 0)
            goto done;
        if (n > 0) {
            uint64_t before = q.received;
            int64_t now = now_ns();
            if (consumer_input(&q, now) < 0)
                goto done;
            if (q.received != before) {
                atomic_store_explicit(&w->count, q.received, memory_order_relaxed);
                atomic_store_explicit(&w->last_ns, now, memory_order_relaxed);
                atomic_store_explicit(&w->lat_sum_ns, q.lat_sum, memory_order_relaxed);
                atomic_store_explicit(&w->lat_count, q.lat_n, memory_order_relaxed);
            }
            if (!subscribed && q.consume_oks == q.consumes) {
                subscribed = 1;
                if (opt.producers > 0)
                    atomic_fetch_add(&ready_count, 1);
            }
            /* Not before every consume-ok: the main thread may still be
             * waiting for this consumer to be ready. */
            if (subscribed && opt.cmessages && q.received >= opt.cmessages) {
                /* Done: conn_close sends the last acks before the close. */
                atomic_store(&w->finished, 1);
                break;
            }
        }
        if (!subscribed && now_ns() >= consume_deadline) {
            char msg[128];
            snprintf(msg, sizeof msg, "timed out waiting for %s",
                     wr_method_name(WR_M_BASIC_CONSUME_OK));
            fail(c, msg);
            goto done;
        }
        int pending = c->out.len > c->out_off;
        if (pending && conn_write_some(c) < 0)
            goto done;
        pending = c->out.len > c->out_off;
        if (n == 0)
            wait_fd(c->fd, pending ? POLLIN | POLLOUT : POLLIN, IDLE_POLL_MS * 1000000LL);
    }
done:
    conn_close(c, NS_PER_SEC);
    w->cpu_s = thread_cpu_s();
    return NULL;
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: warren-perf [options]\n"
            "  -h, --uri URI          amqp://user:pass@host:port/vhost "
            "(default amqp://guest:guest@127.0.0.1:5672/, vhost \"/\")\n"
            "  -x, --producers N      producer connections, one thread each (default 1)\n"
            "  -y, --consumers N      consumer connections, one thread each (default 1)\n"
            "  -u, --queue NAME       queue (default warren-perf-PID), non-durable auto-delete\n"
            "      --durable          declare the queue durable (and not auto-delete)\n"
            "      --queues N         N queues (1..10000, default 1): QUEUE.0 .. QUEUE.(N-1),\n"
            "                         the number zero-padded (QUEUE.00 .. QUEUE.99 for 100);\n"
            "                         each producer publishes round-robin to all of them;\n"
            "                         consumer i consumes every queue q with\n"
            "                         q %% consumers == i (with more consumers than queues,\n"
            "                         queue i %% N, shared); --cmessages stays per consumer\n"
            "  -s, --size BYTES       message body size (default 16)\n"
            "  -f, --persistent       publish with delivery_mode 2\n"
            "  -c, --confirm N        publisher confirms, at most N unconfirmed per producer\n"
            "  -q, --prefetch N       consumer basic.qos prefetch count (default 0, unlimited)\n"
            "  -a, --auto-ack         consume with no-ack\n"
            "  -A, --multi-ack N      ack every N deliveries with multiple=true (default: each)\n"
            "  -r, --rate N           publish N msg/s in total over all producers (0 = no limit)\n"
            "  -z, --duration SECS    run time (default 10; 0 = until SIGINT)\n"
            "  -l, --latency          timestamp bodies, report publish-to-deliver latency\n"
            "  -C, --pmessages N      each producer publishes N messages, waits for their\n"
            "                         confirms (with --confirm), then stops (default 0, no limit)\n"
            "  -D, --cmessages N      each consumer receives (and acks) N messages, then stops\n"
            "                         With -C/-D and no --duration there is no time limit: the\n"
            "                         run ends when every producer and consumer with a count is\n"
            "                         done (consumers without one drain while they receive).\n"
            "      --fanout           publish to fanout exchange QUEUE.fanout; each consumer\n"
            "                         binds its own queue QUEUE.N to it (fanout to N queues)\n"
            "      --predeclared      do not declare the queue: use it as it is (a passive\n"
            "                         declare checks it exists), e.g. to drain a filled queue\n"
            "      --await-messages N no load: poll the queue (passive declare every 10 ms,\n"
            "                         reconnecting while the broker is down) until it holds\n"
            "                         exactly N ready messages; --duration is the timeout\n"
            "                         (default 600 s); prints connect_s= and await_s=\n"
            "      --help             this text\n"
            "Prints progress every second on stderr and one summary line on stdout:\n"
            "  sent=N recv=N send_rate=X msg/s recv_rate=Y msg/s [p50_us= p99_us= p999_us= "
            "max_us=] ...\n");
}

static int decode_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A copy of s[0..n) with %XX escapes decoded, as URIs carry them. */
static char *uri_decode(const char *s, size_t n)
{
    char *d = wr_xmalloc(n + 1), *o = d;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && n - i > 2 && (hi = decode_hex(s[i + 1])) >= 0 &&
            (lo = decode_hex(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return d;
}

/* amqp://[user[:pass]@]host[:port][/vhost]; an empty or absent vhost
 * means "/", the default vhost (write %2f for it explicitly). */
static int parse_uri(const char *uri)
{
    static const char scheme[] = "amqp://", tls_scheme[] = "amqps://";
    const char *a;
    if (strncmp(uri, scheme, sizeof scheme - 1) == 0) {
        a = uri + sizeof scheme - 1;
    } else if (strncmp(uri, tls_scheme, sizeof tls_scheme - 1) == 0) {
        a = uri + sizeof tls_scheme - 1;
        opt.tls = 1;
        opt.port = "5671";
    } else {
        return -1;
    }
    const char *slash = strchr(a, '/');
    const char *end = slash ? slash : a + strlen(a);
    const char *at = memrchr(a, '@', (size_t)(end - a));
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        opt.user = uri_decode(a, (size_t)((colon ? colon : at) - a));
        opt.pass = colon ? uri_decode(colon + 1, (size_t)(at - colon - 1)) : strdup("guest");
        a = at + 1;
    }
    const char *port = NULL;
    if (*a == '[') {
        const char *close = memchr(a, ']', (size_t)(end - a));
        if (close == NULL)
            return -1;
        opt.host = wr_xstrndup(a + 1, (size_t)(close - a - 1));
        if (close + 1 < end && close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = memchr(a, ':', (size_t)(end - a));
        opt.host = wr_xstrndup(a, (size_t)((colon ? colon : end) - a));
        if (colon)
            port = colon + 1;
    }
    if (port)
        opt.port = wr_xstrndup(port, (size_t)(end - port));
    if (slash && slash[1])
        opt.vhost = uri_decode(slash + 1, strlen(slash + 1));
    return opt.host[0] ? 0 : -1;
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        say("bad value for --%s: %s (want %g..%g)", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv)
{
    enum { OPT_DURABLE = 256, OPT_HELP, OPT_PREDECLARED, OPT_AWAIT, OPT_FANOUT, OPT_QUEUES };
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, 'h'},
        {"producers", required_argument, NULL, 'x'},
        {"consumers", required_argument, NULL, 'y'},
        {"queue", required_argument, NULL, 'u'},
        {"durable", no_argument, NULL, OPT_DURABLE},
        {"queues", required_argument, NULL, OPT_QUEUES},
        {"size", required_argument, NULL, 's'},
        {"persistent", no_argument, NULL, 'f'},
        {"confirm", required_argument, NULL, 'c'},
        {"prefetch", required_argument, NULL, 'q'},
        {"auto-ack", no_argument, NULL, 'a'},
        {"multi-ack", required_argument, NULL, 'A'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'z'},
        {"latency", no_argument, NULL, 'l'},
        {"pmessages", required_argument, NULL, 'C'},
        {"cmessages", required_argument, NULL, 'D'},
        {"predeclared", no_argument, NULL, OPT_PREDECLARED},
        {"fanout", no_argument, NULL, OPT_FANOUT},
        {"await-messages", required_argument, NULL, OPT_AWAIT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *uri = "amqp://guest:guest@127.0.0.1:5672/";
    double v;
    int ch, multi_ack_given = 0, duration_given = 0, queues_given = 0;
    opt.producers = opt.consumers = opt.queues = 1;
    opt.size = 16;
    opt.multi_ack = 1;
    opt.duration = 10;
    while ((ch = getopt_long(argc, argv, "h:x:y:u:s:fc:q:aA:r:z:lC:D:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            uri = optarg;
            break;
        case 'x':
            if (parse_num("producers", optarg, 0, 1000, &v) < 0)
                return -1;
            opt.producers = (int)v;
            break;
        case 'y':
            if (parse_num("consumers", optarg, 0, 1000, &v) < 0)
                return -1;
            opt.consumers = (int)v;
            break;
        case 'u':
            opt.queue = optarg;
            break;
        case OPT_DURABLE:
            opt.durable = 1;
            break;
        case OPT_QUEUES:
            if (parse_num("queues", optarg, 1, 10000, &v) < 0)
                return -1;
            opt.queues = (int)v;
            queues_given = 1;
            break;
        case 's':
            if (parse_num("size", optarg, 0, 512.0 * 1024 * 1024, &v) < 0)
                return -1;
            opt.size = (size_t)v;
            break;
        case 'f':
            opt.persistent = 1;
            break;
        case 'c':
            if (parse_num("confirm", optarg, 0, 1 << 24, &v) < 0)
                return -1;
            opt.confirm = (uint32_t)v;
            break;
        case 'q':
            if (parse_num("prefetch", optarg, 0, 65535, &v) < 0)
                return -1;
            opt.prefetch = (uint16_t)v;
            break;
        case 'a':
            opt.auto_ack = 1;
            break;
        case 'A':
            if (parse_num("multi-ack", optarg, 1, 1e9, &v) < 0)
                return -1;
            opt.multi_ack = (uint32_t)v;
            multi_ack_given = 1;
            break;
        case 'r':
            if (parse_num("rate", optarg, 0, 1e10, &v) < 0)
                return -1;
            opt.rate = v;
            break;
        case 'z':
            if (parse_num("duration", optarg, 0, 1e7, &v) < 0)
                return -1;
            opt.duration = v;
            duration_given = 1;
            break;
        case 'C':
            if (parse_num("pmessages", optarg, 0, 1e15, &v) < 0)
                return -1;
            opt.pmessages = (uint64_t)v;
            break;
        case 'D':
            if (parse_num("cmessages", optarg, 0, 1e15, &v) < 0)
                return -1;
            opt.cmessages = (uint64_t)v;
            break;
        case OPT_FANOUT:
            opt.fanout = 1;
            break;
        case OPT_PREDECLARED:
            opt.predeclared = 1;
            break;
        case OPT_AWAIT:
            if (parse_num("await-messages", optarg, 0, 4294967295.0, &v) < 0)
                return -1;
            opt.await = 1;
            opt.await_n = (uint64_t)v;
            break;
        case 'l':
            opt.latency = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        say("unexpected argument: %s", argv[optind]);
        return -1;
    }
    opt.user = "guest";
    opt.pass = "guest";
    opt.port = "5672";
    opt.vhost = "/";
    if (parse_uri(uri) < 0) {
        say("bad --uri %s (want amqp://user:pass@host:port/vhost)", uri);
        return -1;
    }
    int queue_given = opt.queue != NULL;
    if (opt.queue == NULL) {
        static char name[64];
        snprintf(name, sizeof name, "warren-perf-%d", (int)getpid());
        opt.queue = name;
    }
    opt.queue_width = 1;
    for (int n = opt.queues - 1; n >= 10; n /= 10)
        opt.queue_width++;
    if (strlen(opt.queue) + (opt.queues > 1 ? 1 + (size_t)opt.queue_width : 0) > 255) {
        say("queue name longer than 255 bytes");
        return -1;
    }
    snprintf(fanout_exchange, sizeof fanout_exchange, "%.200s.fanout", opt.queue);
    /* These work on the one queue that --queue names. */
    if (queues_given && (opt.fanout || opt.predeclared || opt.await)) {
        const char *other = opt.fanout ? "--fanout" : "--predeclared";
        if (opt.await)
            other = "--await-messages";
        say("--queues and %s exclude each other", other);
        return -1;
    }
    /* Every producer holds one encoded message per queue. */
    if (opt.queues > 1 && (double)opt.size * opt.queues > 1024.0 * 1024 * 1024) {
        say("--queues %d with --size %zu: over 1 GiB of encoded messages per producer", opt.queues,
            opt.size);
        return -1;
    }
    if (opt.auto_ack && multi_ack_given) {
        say("--auto-ack and --multi-ack exclude each other");
        return -1;
    }
    if (opt.latency && opt.size < 8) {
        say("--latency needs 8 body bytes for the timestamp; using --size 8");
        opt.size = 8;
    }
    if (!opt.auto_ack && opt.prefetch && opt.multi_ack > opt.prefetch) {
        /* Otherwise the broker stops at prefetch unacked deliveries while we
         * wait for more before acking: a deadlock. */
        say("--multi-ack %u exceeds --prefetch %u; acking every %u", opt.multi_ack, opt.prefetch,
            opt.prefetch);
        opt.multi_ack = opt.prefetch;
    }
    /* A run bounded by message counts has no time limit unless given one;
     * --await-messages takes --duration as its timeout (default 600 s). */
    if (!duration_given && (opt.pmessages || opt.cmessages))
        opt.duration = 0;
    if (opt.await) {
        if (!duration_given)
            opt.duration = 600;
        if (!queue_given) {
            say("--await-messages needs --queue");
            return -1;
        }
        return 0;
    }
    if (opt.predeclared && !queue_given) {
        say("--predeclared needs --queue");
        return -1;
    }
    if (opt.producers == 0 && opt.consumers == 0) {
        say("nothing to do: no producers and no consumers");
        return -1;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

typedef struct totals {
    int64_t t;
    uint64_t sent, recv, confirmed, nacked, returned, unconfirmed, lat_sum, lat_n;
} totals_t;

static totals_t sum_workers(worker_t *ws, int n)
{
    totals_t s;
    memset(&s, 0, sizeof s);
    s.t = now_ns();
    for (int i = 0; i < n; i++) {
        worker_t *w = &ws[i];
        uint64_t count = atomic_load_explicit(&w->count, memory_order_relaxed);
        if (w->is_producer) {
            s.sent += count;
            s.confirmed += atomic_load_explicit(&w->confirmed, memory_order_relaxed);
            s.nacked += atomic_load_explicit(&w->nacked, memory_order_relaxed);
            s.returned += atomic_load_explicit(&w->returned, memory_order_relaxed);
            s.unconfirmed += atomic_load_explicit(&w->unconfirmed, memory_order_relaxed);
        } else {
            s.recv += count;
            s.lat_sum += atomic_load_explicit(&w->lat_sum_ns, memory_order_relaxed);
            s.lat_n += atomic_load_explicit(&w->lat_count, memory_order_relaxed);
        }
    }
    return s;
}

static void progress(worker_t *ws, int n, int64_t t_start, totals_t *prev)
{
    totals_t s = sum_workers(ws, n);
    double dt = (double)(s.t - prev->t) / 1e9;
    if (dt <= 0)
        return;
    char extra[160] = "";
    int len = 0;
    if (opt.confirm)
        len += snprintf(
            extra + len, sizeof extra - (size_t)len, " confirmed=%.0f msg/s unconfirmed=%llu",
            (double)(s.confirmed - prev->confirmed) / dt, (unsigned long long)s.unconfirmed);
    if (opt.latency && s.lat_n > prev->lat_n)
        snprintf(extra + len, sizeof extra - (size_t)len, " lat_mean_us=%.1f",
                 (double)(s.lat_sum - prev->lat_sum) / (double)(s.lat_n - prev->lat_n) / 1e3);
    fprintf(stderr, "time=%.1fs sent=%.0f msg/s recv=%.0f msg/s%s\n", (double)(s.t - t_start) / 1e9,
            (double)(s.sent - prev->sent) / dt, (double)(s.recv - prev->recv) / dt, extra);
    *prev = s;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Waits until `want` workers are ready; 0, or -1 if one failed first. */
static int wait_ready(int want)
{
    while (atomic_load(&ready_count) < want) {
        if (atomic_load(&fatal_error))
            return -1;
        usleep(1000);
    }
    return 0;
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / NS_PER_SEC), .tv_nsec = (long)(t % NS_PER_SEC)};
    /* EINTR (a signal) just returns early; the caller looks at the flags. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static int64_t max_last_ns(worker_t *ws, int from, int to, int confirms)
{
    int64_t m = 0;
    for (int i = from; i < to; i++) {
        int64_t t = atomic_load(confirms ? &ws[i].last_confirm_ns : &ws[i].last_ns);
        if (t > m)
            m = t;
    }
    return m;
}

/* Whether every worker in [from, to) has reached its message count. */
static int all_finished(worker_t *ws, int from, int to)
{
    for (int i = from; i < to; i++)
        if (!atomic_load(&ws[i].finished))
            return 0;
    return 1;
}

/* --await-messages: polls the queue with a passive queue.declare every
 * AWAIT_POLL_NS, reconnecting quietly while the broker is not up or the
 * queue not there yet, until its message count is exactly opt.await_n or
 * the timeout passes.  Prints one line: the seconds from this tool's start
 * to the first successful connection and to the count. */
static int await_messages(void)
{
    int64_t t0 = now_ns();
    int64_t deadline = t0 + (int64_t)((opt.duration > 0 ? opt.duration : 1e7) * 1e9);
    int64_t connected_ns = 0;
    uint32_t count = 0, consumers = 0;
    int seen = 0, ok = 0;
    quiet = 1;
    while (!ok && !interrupted && now_ns() < deadline) {
        conn_t c;
        memset(&c, 0, sizeof c);
        c.fd = -1;
        wr_buf_init(&c.out);
        snprintf(c.name, sizeof c.name, "await");
        atomic_store(&fatal_error, 0);
        if (conn_open(&c) == 0) {
            if (!connected_ns)
                connected_ns = now_ns();
            while (!interrupted && now_ns() < deadline) {
                wr_method_t m = {.id = WR_M_QUEUE_DECLARE}, r;
                m.u.queue_declare.queue = wr_bytes_of(opt.queue);
                m.u.queue_declare.passive = 1;
                m.u.queue_declare.arguments = WR_BYTES_LIT("");
                if (conn_rpc(&c, &m, WR_M_QUEUE_DECLARE_OK, &r) < 0)
                    break; /* 404 while the broker recovers: reconnect */
                count = r.u.queue_declare_ok.message_count;
                consumers = r.u.queue_declare_ok.consumer_count;
                seen = 1;
                if (count == opt.await_n) {
                    ok = 1;
                    break;
                }
                sleep_until(now_ns() + AWAIT_POLL_NS);
            }
        }
        atomic_store(&fatal_error, 0);
        conn_close(&c, NS_PER_SEC);
        if (!ok)
            sleep_until(now_ns() + AWAIT_POLL_NS);
    }
    quiet = 0;
    int64_t t1 = now_ns();
    printf("await=%s queue=%s message_count=%u consumer_count=%u want=%llu connect_s=%.3f "
           "await_s=%.3f\n",
           ok ? "ok" : "timeout", opt.queue, count, consumers, (unsigned long long)opt.await_n,
           connected_ns ? (double)(connected_ns - t0) / 1e9 : -1.0, (double)(t1 - t0) / 1e9);
    if (!ok)
        say("gave up after %.1f s: %s", (double)(t1 - t0) / 1e9,
            !connected_ns ? "could not connect"
            : seen        ? "the message count did not reach the target"
                          : "the queue did not appear");
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Workers inherit a mask without SIGINT/SIGTERM, so that the signal
     * reaches the main thread and interrupts its sleep. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    if (opt.await)
        return await_messages();

    int nc = opt.consumers, total = opt.producers + opt.consumers;
    /* With message counts the run ends when every side that has one is
     * done (or at --duration, if given). */
    int limited_p = opt.pmessages && opt.producers > 0;
    int limited_c = opt.cmessages && opt.consumers > 0;
    worker_t *ws = wr_xcalloc((size_t)total, sizeof *ws);
    int started = 0;
    int64_t t_start = 0;

    /* Consumers first, so that no message is published to a queue nobody
     * consumes from yet. */
    for (int i = 0; i < total; i++) {
        worker_t *w = &ws[i];
        w->is_producer = i >= nc;
        w->index = w->is_producer ? i - nc : i;
        if (!w->is_producer && opt.latency)
            w->hist = wr_xcalloc(1, sizeof *w->hist);
        if (i == nc && wait_ready(nc) < 0)
            break;
        if (pthread_create(&w->thread, NULL, w->is_producer ? producer_main : consumer_main, w)) {
            say("cannot start a thread");
            atomic_store(&fatal_error, 1);
            break;
        }
        char tname[16];
        snprintf(tname, sizeof tname, "%s-%d", w->is_producer ? "producer" : "consumer", w->index);
        pthread_setname_np(w->thread, tname);
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (started == total && wait_ready(total) == 0) {
        t_start = now_ns();
        atomic_store(&go, 1);
        totals_t prev = sum_workers(ws, total);
        prev.t = t_start;
        int64_t end = opt.duration > 0 ? t_start + (int64_t)(opt.duration * 1e9) : INT64_MAX;
        int64_t next = t_start + NS_PER_SEC;
        while (!atomic_load(&fatal_error) && !interrupted && now_ns() < end) {
            if ((limited_p || limited_c) && (!limited_p || all_finished(ws, nc, total)) &&
                (!limited_c || all_finished(ws, 0, nc)))
                break;
            int64_t until = next < end ? next : end;
            if (limited_p || limited_c) {
                /* Look at the counts often enough for a precise end. */
                int64_t soon = now_ns() + 10000000LL;
                if (soon < until)
                    until = soon;
            }
            sleep_until(until);
            if (now_ns() >= next) {
                progress(ws, total, t_start, &prev);
                next += NS_PER_SEC;
            }
        }
        atomic_store(&stop_producers, 1);
        for (int i = nc; i < total; i++)
            pthread_join(ws[i].thread, NULL);
        /* Let the consumers catch up with what was published: for up to
         * DRAIN_NS, or with --pmessages (and consumers without a count) as
         * long as they keep receiving. */
        int64_t stall = limited_p ? CONFIRM_STALL_NS : DRAIN_NS;
        int64_t drain_end = now_ns() + DRAIN_NS;
        uint64_t last_recv = sum_workers(ws, total).recv;
        while (nc > 0 && !limited_c && !atomic_load(&fatal_error) && !interrupted &&
               now_ns() < drain_end) {
            totals_t s = sum_workers(ws, total);
            if (s.recv >= s.sent)
                break;
            if (limited_p && s.recv != last_recv)
                drain_end = s.t + stall;
            last_recv = s.recv;
            if (s.t >= next) {
                progress(ws, total, t_start, &prev);
                next += NS_PER_SEC;
            }
            usleep(10000);
        }
    }
    atomic_store(&stop_producers, 1);
    atomic_store(&stop_consumers, 1);
    for (int i = 0; i < started; i++)
        if (!(ws[i].is_producer && t_start))
            pthread_join(ws[i].thread, NULL);

    if (t_start) {
        totals_t s = sum_workers(ws, total);
        int64_t send_end = max_last_ns(ws, nc, total, 0), recv_end = max_last_ns(ws, 0, nc, 0);
        int64_t confirm_end = max_last_ns(ws, nc, total, 1);
        double send_s = send_end > t_start ? (double)(send_end - t_start) / 1e9 : 0;
        double recv_s = recv_end > t_start ? (double)(recv_end - t_start) / 1e9 : 0;
        printf("sent=%llu recv=%llu send_rate=%.0f msg/s recv_rate=%.0f msg/s",
               (unsigned long long)s.sent, (unsigned long long)s.recv,
               send_s > 0 ? (double)s.sent / send_s : 0, recv_s > 0 ? (double)s.recv / recv_s : 0);
        if (opt.latency) {
            hist_t *h = wr_xcalloc(1, sizeof *h);
            for (int i = 0; i < nc; i++)
                hist_merge(h, ws[i].hist);
            printf(" p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f",
                   (double)hist_quantile(h, 0.5) / 1e3, (double)hist_quantile(h, 0.99) / 1e3,
                   (double)hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
                   h->count ? (double)h->sum / (double)h->count / 1e3 : 0);
            free(h);
        }
        if (opt.confirm)
            printf(" confirmed=%llu nacked=%llu confirm_rate=%.0f msg/s confirm_s=%.3f",
                   (unsigned long long)s.confirmed, (unsigned long long)s.nacked,
                   confirm_end > t_start
                       ? (double)s.confirmed * 1e9 / (double)(confirm_end - t_start)
                       : 0,
                   confirm_end > t_start ? (double)(confirm_end - t_start) / 1e9 : 0);
        if (opt.pmessages || opt.cmessages)
            printf(" send_s=%.3f recv_s=%.3f", send_s, recv_s);
        /* How busy the tool itself was, as a share of one core per
         * thread: a value near 100 means the tool may be the bottleneck. */
        double run_s = (double)(now_ns() - t_start) / 1e9, pcpu = 0, ccpu = 0;
        for (int i = 0; i < total; i++)
            *(ws[i].is_producer ? &pcpu : &ccpu) += ws[i].cpu_s;
        printf(" returned=%llu producers=%d consumers=%d", (unsigned long long)s.returned,
               opt.producers, opt.consumers);
        if (opt.queues > 1)
            printf(" queues=%d", opt.queues);
        printf(" size=%zu duration_s=%.2f producer_cpu_pct=%.0f consumer_cpu_pct=%.0f\n", opt.size,
               run_s, opt.producers ? 100 * pcpu / run_s / opt.producers : 0,
               opt.consumers ? 100 * ccpu / run_s / opt.consumers : 0);
        fflush(stdout);
    }
    for (int i = 0; i < total; i++)
        free(ws[i].hist);
    free(ws);
    return atomic_load(&fatal_error) ? 1 : 0;
}
