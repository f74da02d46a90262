/* http.c - HTTP/1.1 on warren's sockets (see http.h). */
#include "mgmt/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

typedef struct hconn {
    wr_sock_t *sock;
    http_parser parser;
    wr_http_req_t req;
    char field[64]; /* the header being read, lowercased prefix */
    size_t field_len;
    int header_value; /* 1 while in a value of "field" */
    size_t header_bytes;
    int failed; /* an error response was queued: close after it */
    const wr_http_app_t *app;
    /* A response waiting for the app (wr_http_resp_t.wait), and how to
     * send it; the parser is paused meanwhile. */
    int waiting;
    wr_http_resp_t held;
    int held_keep, held_head;
} hconn_t;

const char *wr_http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return status >= 500 ? "Internal Server Error" : "Unknown";
    }
}

static void send_response(hconn_t *h, const wr_http_resp_t *r, int keep_alive, int head_only)
{
    wr_buf_t *out = wr_sock_out(h->sock);
    char head[1400];
    char ctype[120] = "";
    /* An empty reply has no type (RabbitMQ's writes answer 201/204 so). */
    if (r->content_type || r->body.len)
        snprintf(ctype, sizeof ctype, "Content-Type: %s\r\n",
                 r->content_type ? r->content_type : "application/json");
    int n = snprintf(
        head, sizeof head,
        "HTTP/1.1 %d %s\r\nServer: warren\r\n%s"
        "Content-Length: %zu\r\nCache-Control: no-cache\r\n%s%s%s\r\n",
        r->status, wr_http_status_text(r->status), ctype, r->body.len,
        r->www_authenticate ? "WWW-Authenticate: Basic realm=\"RabbitMQ Management\"\r\n" : "",
        r->headers, keep_alive ? "" : "Connection: close\r\n");
    wr_buf_put(out, head, (size_t)(n < (int)sizeof head ? n : (int)sizeof head - 1));
    if (!head_only)
        wr_buf_put(out, r->body.p, r->body.len);
}

static void send_error(hconn_t *h, int status, const char *error, const char *reason)
{
    wr_http_resp_t r = {status, {0}, NULL, 0, "", 0};
    wr_buf_init(&r.body);
    char text[600];
    int n = snprintf(text, sizeof text, "{\"error\":\"%s\",\"reason\":\"%s\"}", error, reason);
    wr_buf_put(&r.body, text, (size_t)n);
    send_response(h, &r, 0, 0);
    wr_buf_free(&r.body);
    h->failed = 1;
}

static void req_reset(wr_http_req_t *q)
{
    wr_buf_free(&q->url);
    wr_buf_free(&q->body);
    q->method = NULL;
    q->authorization[0] = q->reason[0] = q->accept[0] = '\0';
}

static int on_message_begin(http_parser *p)
{
    hconn_t *h = p->data;
    req_reset(&h->req);
    h->header_bytes = 0;
    h->field_len = 0;
    h->header_value = 0;
    return 0;
}

static int count_header(hconn_t *h, size_t n)
{
    h->header_bytes += n;
    if (h->header_bytes > WR_HTTP_MAX_HEADER) {
        send_error(h, 431, "bad_request", "request headers too large");
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    hconn_t *h = p->data;
    if (count_header(h, n) != 0)
        return -1;
    wr_buf_put(&h->req.url, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    hconn_t *h = p->data;
    if (count_header(h, n) != 0)
        return -1;
    if (h->header_value) {
        h->field_len = 0;
        h->header_value = 0;
    }
    size_t k = n < sizeof h->field - 1 - h->field_len ? n : sizeof h->field - 1 - h->field_len;
    memcpy(h->field + h->field_len, at, k);
    h->field_len += k;
    h->field[h->field_len] = '\0';
    return 0;
}

static void append_value(char *dst, size_t cap, const char *at, size_t n)
{
    size_t have = strlen(dst);
    size_t k = n < cap - 1 - have ? n : cap - 1 - have;
    memcpy(dst + have, at, k);
    dst[have + k] = '\0';
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    hconn_t *h = p->data;
    if (count_header(h, n) != 0)
        return -1;
    if (!h->header_value)
        h->header_value = 1;
    if (strcasecmp(h->field, "authorization") == 0)
        append_value(h->req.authorization, sizeof h->req.authorization, at, n);
    else if (strcasecmp(h->field, "x-reason") == 0)
        append_value(h->req.reason, sizeof h->req.reason, at, n);
    else if (strcasecmp(h->field, "accept") == 0)
        append_value(h->req.accept, sizeof h->req.accept, at, n);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    hconn_t *h = p->data;
    if (h->req.body.len + n > WR_HTTP_MAX_BODY) {
        send_error(h, 413, "bad_request", "request body too large");
        return -1;
    }
    wr_buf_put(&h->req.body, at, n);
    return 0;
}

static void idle_cb(wr_sock_t *s);

/* The held response may go: send it; what came meanwhile is parsed on the
 * next loop pass (wr_sock_hold_read), not from inside the app's callback. */
static void held_done(void *ctx, int ok)
{
    hconn_t *h = ctx;
    h->waiting = 0;
    if (!ok) { /* the connection is going */
        wr_buf_free(&h->held.body);
        return;
    }
    send_response(h, &h->held, h->held_keep, h->held_head);
    wr_buf_free(&h->held.body);
    http_parser_pause(&h->parser, 0);
    if (!h->held_keep) {
        h->failed = 1;
        wr_sock_close(h->sock);
        return;
    }
    wr_sock_set_timer(h->sock, WR_HTTP_IDLE_MS, idle_cb);
    wr_sock_hold_read(h->sock, 0);
}

static int on_message_complete(http_parser *p)
{
    hconn_t *h = p->data;
    h->req.method = http_method_str((enum http_method)p->method);
    wr_buf_put_u8(&h->req.url, 0);
    h->req.url.len--;
    wr_buf_put_u8(&h->req.body, 0);
    h->req.body.len--;
    wr_http_resp_t r = {404, {0}, NULL, 0, "", 0};
    wr_buf_init(&r.body);
    if (h->app && h->app->handle)
        h->app->handle(&h->req, &r);
    int keep = http_should_keep_alive(p);
    if (r.wait && h->app->wait) {
        h->waiting = 1;
        h->held = r;
        h->held_keep = keep;
        h->held_head = p->method == HTTP_HEAD;
        http_parser_pause(p, 1);
        wr_sock_hold_read(h->sock, 1);
        h->app->wait(r.wait, h, held_done, h);
        return 0;
    }
    send_response(h, &r, keep, p->method == HTTP_HEAD);
    wr_buf_free(&r.body);
    if (!keep)
        h->failed = 1;
    /* A complete request restarts the idle deadline. */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void idle_cb(wr_sock_t *s)
{
    wr_debug("http %s: idle for %d ms, closing", s->peer, WR_HTTP_IDLE_MS);
    wr_sock_close(s);
}

static void on_read(wr_sock_t *s)
{
    hconn_t *h = s->ud;
    if (h->failed) {
        wr_sock_consume(s, s->in.len);
        return;
    }
    if (h->waiting)
        return; /* parsed once the held response went */
    size_t n = http_parser_execute(&h->parser, &settings, (const char *)s->in.p, s->in.len);
    if (h->waiting) {
        wr_sock_consume(s, n); /* the rest is the next request */
        return;
    }
    wr_sock_consume(s, s->in.len);
    if (!h->failed && h->parser.http_errno != HPE_OK) {
        send_error(h, 400, "bad_request", http_errno_description(HTTP_PARSER_ERRNO(&h->parser)));
    }
    (void)n;
    if (h->failed) {
        wr_sock_close(s);
        return;
    }
    wr_sock_set_timer(s, WR_HTTP_IDLE_MS, idle_cb);
}

static void on_close(wr_sock_t *s)
{
    hconn_t *h = s->ud;
    if (h->waiting && h->app->cancel)
        h->app->cancel(h); /* held_done(h, 0) frees the response */
    req_reset(&h->req);
    free(h);
}

const wr_sock_handler_t wr_http_sock_handler = {on_read, NULL, on_close};

void wr_http_accept(wr_sock_t *s)
{
    wr_http_attach(s, s->ud);
}

void wr_http_attach(wr_sock_t *s, const wr_http_app_t *app)
{
    hconn_t *h = wr_xcalloc(1, sizeof *h);
    h->app = app;
    h->sock = s;
    s->ud = h;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    wr_buf_init(&h->req.url);
    wr_buf_init(&h->req.body);
    wr_sock_set_timer(s, WR_HTTP_IDLE_MS, idle_cb);
}
