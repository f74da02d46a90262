/*
 * http.h - an HTTP/1.1 server on the broker's loop, for the management
 * API (issue 11).
 *
 * It runs on the same sockets as AMQP (net/sock.h): batched writes,
 * back-pressure, graceful close, and TLS through the same transport when
 * the listener has a TLS context.  Requests are parsed with Debian's
 * libhttp-parser (the parser Node.js used for years: small, no
 * allocation, resumable across reads).  Keep-alive and pipelining are
 * supported; limits: 8 KiB of request line and headers, 16 MiB of body
 * (413), 30 s without a complete request closes the connection.
 *
 * Each listener serves one application (a wr_http_app_t set as the
 * listener's ud): the management API on management.tcp/ssl.port, the
 * Prometheus exporter on prometheus.tcp.port.
 */
#ifndef WR_HTTP_H
#define WR_HTTP_H

#include "core/buf.h"
#include "net/sock.h"

#define WR_HTTP_MAX_HEADER (8u << 10)
#define WR_HTTP_MAX_BODY   (16u << 20)
#define WR_HTTP_IDLE_MS    30000

typedef struct wr_http_req {
    const char *method; /* "GET", "PUT", ... */
    wr_buf_t url;       /* raw request target, NUL-terminated */
    wr_buf_t body;
    char authorization[512];
    char reason[256]; /* X-Reason */
    char accept[256]; /* Accept (truncated) */
} wr_http_req_t;

typedef struct wr_http_resp {
    int status;
    wr_buf_t body;
    const char *content_type; /* NULL: application/json (none if no body) */
    int www_authenticate;     /* add WWW-Authenticate: Basic */
    char headers[640];        /* more header lines, each ending in CRLF */
    /* Not 0: send the response only once the app's wait for this ticket
     * ends (the cluster's metadata log, broker/cmeta.h); the connection
     * reads no further request meanwhile. */
    uint64_t wait;
} wr_http_resp_t;

/* The application: fills resp for req (called once per request). */
typedef void (*wr_http_handler_t)(const wr_http_req_t *req, wr_http_resp_t *resp);

/* What one listener serves.  Owned by the caller, and must outlive every
 * socket the listener accepts (static storage in practice). */
typedef struct wr_http_app {
    const char *name; /* for the log: "management API", "Prometheus" */
    wr_http_handler_t handle;
    /* For responses with a wait ticket: calls done(ctx, 1) when it ends
     * (done(ctx, 0) if cancelled); cancel(owner) cancels owner's waits.
     * NULL: responses are sent at once. */
    void (*wait)(uint64_t ticket, void *owner, void (*done)(void *ctx, int ok), void *ctx);
    void (*cancel)(void *owner);
} wr_http_app_t;

/* The socket handler for HTTP listeners and the accept callback: listen
 * with wr_listen(..., &wr_http_sock_handler, wr_http_accept) after setting
 * the listener's ud to its wr_http_app_t (wr_http_accept finds it in
 * s->ud).  A socket with no application answers 404 to everything. */
extern const wr_sock_handler_t wr_http_sock_handler;
void wr_http_accept(wr_sock_t *s);
/* The same for a socket made some other way (detached sockets in tests
 * and fuzzing): serve app on s. */
void wr_http_attach(wr_sock_t *s, const wr_http_app_t *app);

const char *wr_http_status_text(int status);

#endif
