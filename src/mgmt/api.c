/* api.c - the management HTTP API's first endpoints (see api.h). */
#include "mgmt/api.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "admin/json.h"
#include "broker/access.h"
#include "broker/conn.h"
#include "core/version.h"
#include "mgmt/www.h"

static void json_body(wr_http_resp_t *r, int status, json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT);
    r->status = status;
    r->body.len = 0;
    wr_buf_put(&r->body, t, strlen(t));
    free(t);
    json_decref(v);
}

static void error(wr_http_resp_t *r, int status, const char *err, const char *reason)
{
    json_body(r, status, json_pack("{s:s, s:s}", "error", err, "reason", reason));
}

/* The user of a request's Basic credentials, or NULL. */
static wr_user_t *authenticate(const wr_http_req_t *q)
{
    const char *a = q->authorization;
    if (strncasecmp(a, "Basic ", 6) != 0)
        return NULL;
    a += 6;
    size_t n = strlen(a);
    if (n == 0 || n % 4 || n > 400)
        return NULL;
    unsigned char dec[304];
    int m = EVP_DecodeBlock(dec, (const unsigned char *)a, (int)n);
    if (m < 0)
        return NULL;
    for (size_t i = n; i > 0 && a[i - 1] == '='; i--)
        m--;
    dec[m] = '\0';
    unsigned char *colon = memchr(dec, ':', (size_t)m);
    if (colon == NULL)
        return NULL;
    wr_user_t *u = wr_access_user((wr_bytes_t){dec, (size_t)(colon - dec)});
    wr_bytes_t pw = {colon + 1, (size_t)(dec + m - colon - 1)};
    return u && wr_access_check_password(u, pw) ? u : NULL;
}

/* Percent-decodes one path segment into out. */
static void decode_segment(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0' && end == hex + 2) {
                out[o++] = (char)v;
                i += 2;
                continue;
            }
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
}

/* Splits the path (before '?') into at most 6 decoded segments. */
static int segments(const char *url, char seg[][256], int max)
{
    size_t len = strcspn(url, "?");
    int n = 0;
    const char *p = url;
    const char *end = url + len;
    while (p < end && n < max) {
        if (*p == '/') {
            p++;
            continue;
        }
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (e == NULL)
            e = end;
        decode_segment(p, (size_t)(e - p), seg[n++], 256);
        p = e;
    }
    return n;
}

/* A listing through the control plane's command (the same code as
 * warrenctl), as an array of objects keyed by column. */
static json_t *listing(const char *command, const char *vhost, const char *const *cols)
{
    json_t *req = json_pack("{s:s, s:s, s:[]}", "command", command, "vhost", vhost, "args");
    for (const char *const *c = cols; *c; c++)
        json_array_append_new(json_object_get(req, "args"), json_string(*c));
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *reply = wr_ctl_execute(text, strlen(text));
    free(text);
    json_t *r = json_loads(reply, 0, NULL);
    free(reply);
    json_t *out = json_array();
    json_t *rows = json_object_get(r, "rows"), *colv = json_object_get(r, "columns");
    size_t i, j;
    json_t *row, *c;
    json_array_foreach(rows, i, row)
    {
        json_t *o = json_object();
        json_array_foreach(colv, j, c)
            json_object_set(o, json_string_value(c), json_array_get(row, j));
        json_object_set_new(o, "vhost", json_string(vhost));
        json_array_append_new(out, o);
    }
    json_decref(r);
    return out;
}

static const char *const queue_cols[] = {"name",
                                         "durable",
                                         "auto_delete",
                                         "exclusive",
                                         "arguments",
                                         "policy",
                                         "operator_policy",
                                         "effective_policy_definition",
                                         "messages",
                                         "messages_ready",
                                         "messages_unacknowledged",
                                         "message_bytes",
                                         "message_bytes_ready",
                                         "message_bytes_unacknowledged",
                                         "consumers",
                                         "state",
                                         "type",
                                         NULL};

/* Whether u may see vhost: administrators and monitoring users see all,
 * others the vhosts they have permissions on. */
static int sees(const wr_user_t *u, const wr_vhost_t *vh)
{
    return (u->flags & (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING)) || wr_access_vhost(u, vh);
}

static const char *const exchange_cols[] = {"name",     "type",      "durable", "auto_delete",
                                            "internal", "arguments", "policy",  NULL};
static const char *const binding_cols[] = {"source_name", "destination_name", "destination_kind",
                                           "routing_key", "arguments",        NULL};

/* A per-vhost listing over every vhost u sees (or only one). */
static void per_vhost(const wr_user_t *u, const char *only, const char *command,
                      const char *const *cols, wr_http_resp_t *r)
{
    json_t *all = json_array();
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        if ((only && strcmp(only, vh->name) != 0) || !sees(u, vh))
            continue;
        json_t *l = listing(command, vh->name, cols);
        if (strcmp(command, "list_bindings") == 0) {
            /* RabbitMQ's field names for bindings. */
            size_t k;
            json_t *o;
            json_array_foreach(l, k, o)
            {
                json_object_set(o, "source", json_object_get(o, "source_name"));
                json_object_set(o, "destination", json_object_get(o, "destination_name"));
                json_object_set(o, "destination_type", json_object_get(o, "destination_kind"));
                json_object_del(o, "source_name");
                json_object_del(o, "destination_name");
                json_object_del(o, "destination_kind");
            }
        }
        json_array_extend(all, l);
        json_decref(l);
    }
    json_body(r, 200, all);
}

static void queues(const wr_user_t *u, const char *only, wr_http_resp_t *r)
{
    per_vhost(u, only, "list_queues", queue_cols, r);
}

static void overview(const wr_user_t *u, wr_http_resp_t *r)
{
    size_t nq = 0, nx = 0, ready = 0, unacked = 0, consumers = 0, i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        if (!sees(u, vh))
            continue;
        nq += vh->queues.count;
        nx += vh->exchanges.count;
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->queues, &k, &sl)) {
            const wr_queue_t *q = sl->value;
            ready += wr_queue_ready(q);
            unacked += q->unacked;
            consumers += q->n_consumers;
        }
    }
    size_t conns = 0, chans = 0;
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next)
        if (c->state == WR_CONN_OPEN && c->vhost && sees(u, c->vhost)) {
            conns++;
            chans += c->n_channels;
        }
    const wr_config_t *cfg = wr_broker.cfg;
    json_body(r, 200,
              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}, "
                        "s:{s:I, s:I, s:I}}",
                        "management_version", WARREN_VERSION, "rabbitmq_version", "3.10.8",
                        "product_name", "warren", "product_version", WARREN_VERSION, "cluster_name",
                        cfg && cfg->cluster_name ? cfg->cluster_name : "warren@localhost", "node",
                        "warren@localhost", "object_totals", "connections", (json_int_t)conns,
                        "channels", (json_int_t)chans, "exchanges", (json_int_t)nx, "queues",
                        (json_int_t)nq, "consumers", (json_int_t)consumers, "queue_totals",
                        "messages", (json_int_t)(ready + unacked), "messages_ready",
                        (json_int_t)ready, "messages_unacknowledged", (json_int_t)unacked));
}

void wr_api_handle(const wr_http_req_t *q, wr_http_resp_t *r)
{
    char seg[6][256];
    int n = segments((const char *)q->url.p, seg, 6);
    if (n == 0 || strcmp(seg[0], "api") != 0) {
        if (wr_www_serve(q, r)) /* the web UI's files */
            return;
        error(r, 404, "Object Not Found", "Not Found");
        return;
    }
    wr_user_t *u = authenticate(q);
    if (u == NULL) {
        r->www_authenticate = 1;
        error(r, 401, "not_authorized", "Login failed");
        return;
    }
    if (!(u->flags &
          (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING | WR_TAG_POLICYMAKER | WR_TAG_MANAGEMENT))) {
        r->www_authenticate = 1;
        error(r, 401, "not_authorized", "Not management user");
        return;
    }
    if (strcmp(q->method, "GET") != 0) {
        error(r, 405, "Method Not Allowed", "only GET is served so far");
        return;
    }
    if (n == 2 && strcmp(seg[1], "whoami") == 0) {
        json_body(r, 200, json_pack("{s:s, s:o}", "name", u->name, "tags", wr_json_tags(u->tags)));
    } else if (n == 2 && strcmp(seg[1], "overview") == 0) {
        overview(u, r);
    } else if (n == 2 && strcmp(seg[1], "vhosts") == 0) {
        json_t *a = json_array();
        size_t i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
            if (sees(u, vh))
                json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:b}", "name", vh->name,
                                                   "description", vh->description, "tags",
                                                   wr_json_tags(vh->tags), "tracing", 0));
        json_body(r, 200, a);
    } else if ((n == 2 || n == 3) && strcmp(seg[1], "queues") == 0) {
        if (n == 3 && wr_broker_vhost(wr_bytes_of(seg[2])) == NULL) {
            error(r, 404, "Object Not Found", "Not Found");
            return;
        }
        queues(u, n == 3 ? seg[2] : NULL, r);
    } else if ((n == 2 || n == 3) &&
               (strcmp(seg[1], "exchanges") == 0 || strcmp(seg[1], "bindings") == 0)) {
        if (n == 3 && wr_broker_vhost(wr_bytes_of(seg[2])) == NULL) {
            error(r, 404, "Object Not Found", "Not Found");
            return;
        }
        int x = strcmp(seg[1], "exchanges") == 0;
        per_vhost(u, n == 3 ? seg[2] : NULL, x ? "list_exchanges" : "list_bindings",
                  x ? exchange_cols : binding_cols, r);
    } else if (n == 2 && strcmp(seg[1], "users") == 0) {
        if (!(u->flags & WR_TAG_ADMINISTRATOR)) {
            error(r, 401, "not_authorized", "Not administrator user");
            return;
        }
        json_t *a = json_array();
        size_t i = 0;
        for (wr_user_t *v; (v = wr_access_user_next(&i));)
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o}", "name", v->name,
                                               "password_hash", v->hash ? v->hash : "",
                                               "hashing_algorithm", wr_access_algo_name(v->algo),
                                               "tags", wr_json_tags(v->tags)));
        json_body(r, 200, a);
    } else {
        error(r, 404, "Object Not Found", "Not Found");
    }
}
