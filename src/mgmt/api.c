/* api.c - the management HTTP API: routing, authentication, listings and
 * every read (see api.h; writes are in api_write.c). */
#include "mgmt/api.h"

#include <malloc.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "admin/ctl.h"
#include "admin/defs.h"
#include "admin/info.h"
#include "admin/json.h"
#include "broker/cmeta.h"
#include "broker/policy.h"
#include "broker/stats.h"
#include "core/loop.h"
#include "core/version.h"
#include "mgmt/api_int.h"
#include "mgmt/www.h"

/* ---- replies ---- */

void wr_api_json(wr_api_ctx_t *c, int status, json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    c->r->status = status;
    c->r->body.len = 0;
    size_t n = strlen(t);
    wr_buf_put(&c->r->body, t, n);
    free(t);
    json_decref(v);
    /* A large listing leaves many small freed blocks in malloc's arenas:
     * give the pages back rather than keep the peak. */
    if (n > (1u << 20))
        malloc_trim(0);
}

void wr_api_error(wr_api_ctx_t *c, int status, const char *err, const char *reason)
{
    wr_api_json(c, status, json_pack("{s:s, s:s}", "error", err, "reason", reason));
}

void wr_api_empty(wr_api_ctx_t *c, int status)
{
    c->r->status = status;
    c->r->body.len = 0;
}

void wr_api_not_found(wr_api_ctx_t *c)
{
    wr_api_error(c, 404, "Object Not Found", "Not Found");
}

void wr_api_bad(wr_api_ctx_t *c, const char *reason)
{
    wr_api_error(c, 400, "bad_request", reason);
}

void wr_api_refused(wr_api_ctx_t *c, const char *reason)
{
    wr_api_error(c, 401, "not_authorised", reason);
}

void wr_api_op_failed(wr_api_ctx_t *c, const wr_reply_t *rp)
{
    switch (rp->code) {
    case WR_AMQP_ACCESS_REFUSED:
        wr_api_refused(c, "Access refused.");
        break;
    case WR_AMQP_NOT_FOUND:
        wr_api_not_found(c);
        break;
    default:
        wr_api_bad(c, rp->text);
        break;
    }
}

/* ---- the request ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out; plus: '+' is a space (queries). */
static void decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
            (l = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
}

/* Splits the path into segments; returns their count (-1: too many). */
static int split(const char *url, char seg[][256], char raw[][256], int max)
{
    size_t len = strcspn(url, "?");
    int n = 0;
    const char *p = url, *end = url + len;
    while (p < end) {
        if (*p == '/') {
            p++;
            continue;
        }
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (e == NULL)
            e = end;
        if (n == max)
            return -1;
        size_t k = (size_t)(e - p) < 255 ? (size_t)(e - p) : 255;
        memcpy(raw[n], p, k);
        raw[n][k] = '\0';
        decode(p, (size_t)(e - p), seg[n++], 256, 0);
        p = e;
    }
    return n;
}

const char *wr_api_param(const wr_api_ctx_t *c, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = c->query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kl = eq ? (size_t)(eq - p) : n;
        char key[64];
        decode(p, kl, key, sizeof key, 1);
        if (strlen(key) == nl && memcmp(key, name, nl) == 0) {
            if (eq)
                decode(eq + 1, n - kl - 1, out, cap, 1);
            else
                out[0] = '\0';
            return out;
        }
        p += n + (amp != NULL);
    }
    return NULL;
}

int wr_api_param_true(const wr_api_ctx_t *c, const char *name)
{
    char v[16];
    return wr_api_param(c, name, v, sizeof v) && strcmp(v, "true") == 0;
}

json_t *wr_api_body(wr_api_ctx_t *c)
{
    const wr_buf_t *b = &c->q->body;
    size_t i = 0;
    while (i < b->len && (b->p[i] == ' ' || b->p[i] == '\n' || b->p[i] == '\r' || b->p[i] == '\t'))
        i++;
    if (i == b->len)
        return json_object();
    json_t *v = json_loadb((const char *)b->p, b->len, 0, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        wr_api_bad(c, "not_json");
        return NULL;
    }
    return v;
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

/* ---- access ---- */

int wr_api_sees(const wr_user_t *u, const wr_vhost_t *vh)
{
    return (u->flags & (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING)) || wr_access_vhost(u, vh);
}

int wr_api_need(wr_api_ctx_t *c, unsigned tags, const char *reason)
{
    if (c->u->flags & tags)
        return 0;
    wr_api_refused(c, reason);
    return -1;
}

wr_vhost_t *wr_api_vhost(wr_api_ctx_t *c, const char *name)
{
    wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(name));
    if (vh == NULL) {
        wr_api_not_found(c);
        return NULL;
    }
    if (!wr_api_sees(c->u, vh)) {
        wr_api_refused(c, "User not authorised to access virtual host");
        return NULL;
    }
    return vh;
}

wr_actor_t wr_api_actor(const wr_api_ctx_t *c)
{
    return (wr_actor_t){c->u, NULL};
}

json_t *wr_api_ctl(const char *command, const char *vhost, json_t *args, json_t *options)
{
    json_t *req =
        json_pack("{s:s, s:s, s:o, s:o}", "command", command, "vhost", vhost ? vhost : "/", "args",
                  args ? args : json_array(), "options", options ? options : json_object());
    json_t *reply = wr_ctl_call(req);
    json_decref(req);
    if (json_is_true(json_object_get(reply, "ok"))) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

void wr_api_ctl_failed(wr_api_ctx_t *c, json_t *reply)
{
    const char *text = json_string_value(json_object_get(reply, "error"));
    if (text == NULL)
        text = "failed";
    /* rabbitmqctl's texts begin with "Error:\n"; the API's do not. */
    if (strncmp(text, "Error:\n", 7) == 0)
        text += 7;
    wr_api_bad(c, text);
    json_decref(reply);
}

/* ---- listings: RabbitMQ's sort, pagination, filter and columns ---- */

/* The value at a dotted path ("message_stats.publish_details.rate"). */
static json_t *at_path(json_t *o, const char *path)
{
    char part[128];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        o = json_object_get(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

static const char *sort_key;
static int sort_reverse;

static int cmp_values(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b));
    /* Missing values sort first. */
    return (a != NULL) - (b != NULL);
}

static int cmp_items(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int r;
    if (sort_key) {
        r = cmp_values(at_path(a, sort_key), at_path(b, sort_key));
    } else {
        r = cmp_values(json_object_get(a, "vhost"), json_object_get(b, "vhost"));
        if (r == 0)
            r = cmp_values(json_object_get(a, "name"), json_object_get(b, "name"));
        if (r == 0)
            r = cmp_values(json_object_get(a, "user"), json_object_get(b, "user"));
    }
    return sort_reverse ? -r : r;
}

/* Keeps only the columns asked for (dotted paths keep nested parts). */
static json_t *project(json_t *o, const char *columns)
{
    json_t *out = json_object();
    for (const char *p = columns; *p;) {
        size_t n = strcspn(p, ",");
        char col[200];
        if (n > 0 && n < sizeof col) {
            memcpy(col, p, n);
            col[n] = '\0';
            json_t *v = at_path(o, col);
            if (v) {
                /* Rebuild the nesting down to the value. */
                json_t *dst = out;
                char *s = col, *dot;
                while ((dot = strchr(s, '.')) != NULL) {
                    *dot = '\0';
                    json_t *next = json_object_get(dst, s);
                    if (!json_is_object(next)) {
                        next = json_object();
                        json_object_set_new(dst, s, next);
                    }
                    dst = next;
                    s = dot + 1;
                }
                json_object_set(dst, s, v);
            }
        }
        p += n + (p[n] == ',');
    }
    json_decref(o);
    return out;
}

/* Replies with a list of objects (taken) as RabbitMQ's lists do: sorted
 * (by vhost and name unless ?sort=), paginated with ?page= (then also
 * filtered by ?name=, a substring or with use_regex a regular
 * expression), and projected onto ?columns=. */
static void list_reply(wr_api_ctx_t *c, json_t *items)
{
    char sort[200], rev[16], page_s[32], size_s[32], name[256], cols[1024];
    sort_key = wr_api_param(c, "sort", sort, sizeof sort);
    if (sort_key && !sort_key[0])
        sort_key = NULL;
    sort_reverse = wr_api_param(c, "sort_reverse", rev, sizeof rev) && strcmp(rev, "true") == 0;
    size_t n = json_array_size(items);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(items, i));
    json_decref(items);
    qsort(v, n, sizeof *v, cmp_items);
    const char *cl = wr_api_param(c, "columns", cols, sizeof cols);
    const char *ps = wr_api_param(c, "page", page_s, sizeof page_s);
    json_t *out = json_array();
    if (ps == NULL) {
        for (size_t i = 0; i < n; i++)
            json_array_append_new(out, cl ? project(v[i], cl) : v[i]);
        free(v);
        wr_api_json(c, 200, out);
        return;
    }
    char *end;
    long page = strtol(ps, &end, 10);
    long size = 100;
    int bad = *ps == '\0' || *end != '\0';
    if (wr_api_param(c, "page_size", size_s, sizeof size_s)) {
        size = strtol(size_s, &end, 10);
        bad |= *size_s == '\0' || *end != '\0';
    }
    const char *nf = wr_api_param(c, "name", name, sizeof name);
    regex_t re;
    int use_re = nf && *nf && wr_api_param_true(c, "use_regex");
    if (use_re && regcomp(&re, nf, REG_EXTENDED | REG_NOSUB) != 0)
        bad = 1, use_re = 0;
    if (bad || page < 1 || size < 1 || size > 500) {
        for (size_t i = 0; i < n; i++)
            json_decref(v[i]);
        free(v);
        json_decref(out);
        if (use_re)
            regfree(&re);
        if (bad) {
            wr_api_bad(c, "Pagination parameters are invalid");
        } else {
            char why[200];
            snprintf(why, sizeof why,
                     "Invalid pagination parameters: page number %ld, page size %ld", page, size);
            wr_api_error(c, 400, "invalid_pagination_parameters", why);
        }
        return;
    }
    size_t filtered = 0;
    size_t from = (size_t)(page - 1) * (size_t)size;
    for (size_t i = 0; i < n; i++) {
        const char *nm = json_string_value(json_object_get(v[i], "name"));
        int keep = nf == NULL || *nf == '\0' ||
                   (nm && (use_re ? regexec(&re, nm, 0, NULL, 0) == 0 : strstr(nm, nf) != NULL));
        if (keep && filtered >= from && filtered < from + (size_t)size)
            json_array_append_new(out, cl ? project(json_incref(v[i]), cl) : json_incref(v[i]));
        filtered += keep;
        json_decref(v[i]);
    }
    free(v);
    if (use_re)
        regfree(&re);
    size_t pages = (filtered + (size_t)size - 1) / (size_t)size;
    wr_api_json(c, 200,
                json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I}", "filtered_count",
                          (json_int_t)filtered, "item_count", (json_int_t)json_array_size(out),
                          "items", out, "page", (json_int_t)page, "page_count",
                          (json_int_t)(pages ? pages : 1), "page_size", (json_int_t)size,
                          "total_count", (json_int_t)n));
}

/* ---- objects as the API shows them ---- */

static void null_if_empty(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s && *s == '\0')
        json_object_set_new(o, key, json_null());
}

static int any_counted(const wr_counters_t *ct)
{
    for (int i = 0; i < WR_ST_N; i++)
        if (ct->n[i])
            return 1;
    return 0;
}

static json_t *api_queue(const wr_api_ctx_t *c, const wr_queue_t *q, wr_map_t *ub, int detail)
{
    if (wr_api_param_true(c, "disable_stats")) {
        json_t *o = json_pack(
            "{s:o, s:b, s:b, s:b, s:s%, s:s, s:s, s:s, s:s}", "arguments",
            wr_json_table((wr_bytes_t){q->args_raw.p, q->args_raw.len}), "auto_delete",
            q->auto_delete, "durable", q->durable, "exclusive", q->exclusive, "name", q->name,
            q->name_len, "node", wr_info_node(), "state", "live", "type",
            q->args.type == WR_QTYPE_QUORUM ? "quorum" : "classic", "vhost", q->vhost->name);
        if (wr_api_param_true(c, "enable_queue_totals")) {
            size_t ready = wr_queue_ready(q);
            json_object_set_new(o, "messages", json_integer((json_int_t)(ready + q->unacked)));
            json_object_set_new(o, "messages_ready", json_integer((json_int_t)ready));
            json_object_set_new(o, "messages_unacknowledged", json_integer(q->unacked));
            json_object_set_new(o, "state", json_string("running"));
        }
        return o;
    }
    json_t *o = wr_info_queue(q, ub, 1);
    json_object_del(o, "pid");
    json_object_del(o, "owner_pid");
    json_object_del(o, "exclusive_consumer_pid");
    null_if_empty(o, "policy");
    null_if_empty(o, "operator_policy");
    null_if_empty(o, "exclusive_consumer_tag");
    if (!any_counted(&q->st))
        json_object_del(o, "message_stats");
    json_object_set_new(o, "head_message_timestamp", json_null());
    json_object_set_new(o, "recoverable_slaves", json_null());
    if (!json_object_get(o, "single_active_consumer_tag"))
        json_object_set_new(o, "single_active_consumer_tag", json_null());
    if (q->exclusive && q->owner) {
        const wr_conn_t *oc = q->owner;
        json_t *ci = wr_info_conn(oc, 0);
        json_object_set_new(o, "owner_pid_details",
                            json_pack("{s:O, s:O, s:O}", "name", json_object_get(ci, "name"),
                                      "peer_host", json_object_get(ci, "peer_host"), "peer_port",
                                      json_object_get(ci, "peer_port")));
        json_decref(ci);
    }
    if (detail) {
        json_t *cons = json_array();
        for (const wr_consumer_t *k = q->consumers; k; k = k->qnext)
            json_array_append_new(cons, wr_info_consumer(q, k));
        json_object_set_new(o, "consumer_details", cons);
        json_object_set_new(o, "deliveries", json_array());
        json_object_set_new(o, "incoming", json_array());
    }
    return o;
}

static json_t *api_exchange(const wr_exchange_t *x)
{
    json_t *o = wr_info_exchange(x, 1);
    null_if_empty(o, "policy");
    if (json_is_null(json_object_get(o, "policy")))
        json_object_del(o, "policy");
    if (!any_counted(&x->st))
        json_object_del(o, "message_stats");
    return o;
}

static json_t *api_conn(const wr_conn_t *k)
{
    json_t *o = wr_info_conn(k, 1);
    json_object_del(o, "pid");
    if (!k->sock->tls) {
        json_object_set_new(o, "ssl_protocol", json_string(""));
        json_object_set_new(o, "ssl_cipher", json_string(""));
    }
    json_object_set_new(o, "ssl_hash", json_string(""));
    json_object_set_new(o, "ssl_key_exchange", json_string(""));
    json_object_set_new(o, "peer_cert_issuer", json_string(""));
    json_object_set_new(o, "peer_cert_subject", json_string(""));
    json_object_set_new(o, "peer_cert_validity", json_string(""));
    json_t *cn = json_object_get(json_object_get(o, "client_properties"), "connection_name");
    if (json_is_string(cn))
        json_object_set(o, "user_provided_name", cn);
    return o;
}

static json_t *api_channel(const wr_channel_t *ch, int detail)
{
    json_t *o = wr_info_channel(ch, 1);
    json_object_del(o, "pid");
    json_object_del(o, "connection");
    json_object_set_new(o, "user_who_performed_action",
                        json_string(ch->conn->user ? ch->conn->user : ""));
    /* RabbitMQ shows the publishing side, the consuming side or both:
     * what the channel did. */
    json_t *ms = json_object_get(o, "message_stats");
    const wr_counters_t *ct = &ch->st;
    int pub = ct->n[WR_ST_PUBLISH] || ct->n[WR_ST_CONFIRM];
    int con = wr_stats_deliver_get(ct) || ct->n[WR_ST_ACK] || ct->n[WR_ST_GET_EMPTY];
    static const char *const pub_keys[] = {"publish", "confirm", "return_unroutable",
                                           "drop_unroutable"};
    static const char *const con_keys[] = {"deliver",   "deliver_no_ack", "get", "get_no_ack",
                                           "get_empty", "redeliver",      "ack", "deliver_get"};
    char k[64];
    for (size_t i = 0; i < 4 && !pub; i++) {
        json_object_del(ms, pub_keys[i]);
        snprintf(k, sizeof k, "%s_details", pub_keys[i]);
        json_object_del(ms, k);
    }
    for (size_t i = 0; i < 8 && !con; i++) {
        json_object_del(ms, con_keys[i]);
        snprintf(k, sizeof k, "%s_details", con_keys[i]);
        json_object_del(ms, k);
    }
    if (!pub && !con)
        json_object_del(o, "message_stats");
    if (ch->n_unacked == 0 && ch->consumers.count == 0 && !pub && !con)
        json_object_set_new(o, "idle_since", wr_info_idle_since(wr_now_ms()));
    if (detail) {
        json_t *cons = json_array();
        size_t i = 0;
        wr_map_slot_t *sl;
        while (wr_map_next((wr_map_t *)&ch->consumers, &i, &sl)) {
            const wr_chconsumer_t *cc = sl->value;
            if (cc->base.queue)
                json_array_append_new(cons, wr_info_consumer(cc->base.queue, &cc->base));
        }
        json_object_set_new(o, "consumer_details", cons);
        json_object_set_new(o, "deliveries", json_array());
        json_object_set_new(o, "publishes", json_array());
    }
    return o;
}

static json_t *str_n(const void *p, size_t n)
{
    return json_stringn((const char *)p, n);
}

void wr_api_props_key(wr_bytes_t key, wr_bytes_t args, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < key.n && o + 4 < cap; i++) {
        unsigned char ch = key.p[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.')
            out[o++] = (char)ch;
        else if (ch == ' ')
            out[o++] = '+';
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
    }
    out[o] = '\0';
    if (args.n == 0) {
        if (key.n == 0)
            snprintf(out, cap, "~");
        return;
    }
    /* A hash of the arguments: FNV-1a, in base64url without padding. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < args.n; i++)
        h = (h ^ args.p[i]) * 16777619u;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char hs[8];
    for (int i = 0; i < 6; i++)
        hs[i] = b64[(h >> (i * 5 + 2)) & 63];
    hs[6] = '\0';
    snprintf(out + o, cap - o, "~%s", hs);
}

static json_t *binding_obj(const wr_vhost_t *vh, const char *src, size_t src_n, const char *dst,
                           size_t dst_n, int to_queue, wr_bytes_t key, wr_bytes_t args)
{
    char pk[800];
    wr_api_props_key(key, args, pk, sizeof pk);
    return json_pack("{s:o, s:s, s:o, s:s, s:o, s:o, s:s}", "source", str_n(src, src_n), "vhost",
                     vh->name, "destination", str_n(dst, dst_n), "destination_type",
                     to_queue ? "queue" : "exchange", "routing_key", str_n(key.p, key.n),
                     "arguments", wr_json_table(args), "properties_key", pk);
}

static json_t *binding_of(const wr_vhost_t *vh, const wr_exchange_t *x, const wr_binding_t *b)
{
    return binding_obj(vh, x->name, x->name_len, b->dq ? b->dq->name : b->dx->name,
                       b->dq ? b->dq->name_len : b->dx->name_len, b->dq != NULL,
                       (wr_bytes_t){(const uint8_t *)b->key, b->key_len},
                       (wr_bytes_t){b->args.p, b->args.len});
}

static json_t *default_binding(const wr_vhost_t *vh, const char *q, size_t n)
{
    return binding_obj(vh, "", 0, q, n, 1, (wr_bytes_t){(const uint8_t *)q, n},
                       (wr_bytes_t){NULL, 0});
}

/* Every binding of vh (the default exchange's implicit ones first), or
 * only those with source src / destination dst (kind 'q' or 'e'). */
static void bindings_of(const wr_vhost_t *vh, const char *src, const char *dst, int dst_queue,
                        json_t *out)
{
    size_t i = 0;
    wr_map_slot_t *sl;
    if (src == NULL || *src == '\0') {
        while (wr_map_next((wr_map_t *)&vh->queues, &i, &sl)) {
            const wr_queue_t *q = sl->value;
            if (q->delay ||
                (dst &&
                 (!dst_queue ||
                  !wr_bytes_eq_str((wr_bytes_t){(const uint8_t *)q->name, q->name_len}, dst))))
                continue;
            json_array_append_new(out, default_binding(vh, q->name, q->name_len));
        }
    }
    i = 0;
    while (wr_map_next((wr_map_t *)&vh->exchanges, &i, &sl)) {
        const wr_exchange_t *x = sl->value;
        if (src && !wr_bytes_eq_str((wr_bytes_t){(const uint8_t *)x->name, x->name_len}, src))
            continue;
        for (const wr_binding_t *b = x->bindings; b; b = b->src_next) {
            if (dst) {
                if ((b->dq != NULL) != dst_queue)
                    continue;
                const char *dn = b->dq ? b->dq->name : b->dx->name;
                size_t dl = b->dq ? b->dq->name_len : b->dx->name_len;
                if (!wr_bytes_eq_str((wr_bytes_t){(const uint8_t *)dn, dl}, dst))
                    continue;
            }
            json_array_append_new(out, binding_of(vh, x, b));
        }
    }
}

/* ---- reads ---- */

/* RabbitMQ's churn counters: created/closed connections and channels,
 * declared/created/deleted queues, each with its rate. */
static void add_churn(json_t *o)
{
    static const struct {
        const char *key;
        wr_node_stat_t k;
    } churn[] = {
        {"channel_closed", WR_NS_CHANNELS_CLOSED},
        {"channel_created", WR_NS_CHANNELS_OPENED},
        {"connection_closed", WR_NS_CONNECTIONS_CLOSED},
        {"connection_created", WR_NS_CONNECTIONS_OPENED},
        {"queue_created", WR_NS_QUEUES_CREATED},
        {"queue_declared", WR_NS_QUEUES_DECLARED},
        {"queue_deleted", WR_NS_QUEUES_DELETED},
    };
    char d[64];
    for (size_t i = 0; i < sizeof churn / sizeof churn[0]; i++) {
        json_object_set_new(o, churn[i].key, json_integer((json_int_t)wr_stats_events[churn[i].k]));
        snprintf(d, sizeof d, "%s_details", churn[i].key);
        json_object_set_new(o, d, wr_info_rate(wr_stats_event_rates[churn[i].k]));
    }
}

static json_t *totals_rates(const wr_stats_agg_t *a)
{
    return json_pack(
        "{s:I, s:o, s:I, s:o, s:I, s:o}", "messages", (json_int_t)(a->len.ready + a->len.unacked),
        "messages_details", wr_info_rate(a->rates.len_rate[0] + a->rates.len_rate[1]),
        "messages_ready", (json_int_t)a->len.ready, "messages_ready_details",
        wr_info_rate(a->rates.len_rate[0]), "messages_unacknowledged", (json_int_t)a->len.unacked,
        "messages_unacknowledged_details", wr_info_rate(a->rates.len_rate[1]));
}

/* With ?msg_rates_age=&msg_rates_incr= (and lengths_*), RabbitMQ adds
 * the samples of the window to each *_details: newest first. */
static void add_samples(const wr_api_ctx_t *c, const wr_stats_agg_t *a, json_t *ms, json_t *qt)
{
    char age_s[32], incr_s[32];
    for (int lengths = 0; lengths < 2; lengths++) {
        json_t *into = lengths ? qt : ms;
        if (!into ||
            !wr_api_param(c, lengths ? "lengths_age" : "msg_rates_age", age_s, sizeof age_s))
            continue;
        int64_t age = strtoll(age_s, NULL, 10) * 1000;
        int64_t incr =
            wr_api_param(c, lengths ? "lengths_incr" : "msg_rates_incr", incr_s, sizeof incr_s)
                ? strtoll(incr_s, NULL, 10) * 1000
                : 0;
        if (age <= 0)
            continue;
        if (incr <= 0)
            incr = wr_stats_interval();
        const wr_samples_t *s = a->ring;
        uint32_t first;
        int64_t newest = s && s->count ? s->at[(s->head + s->count - 1) % WR_STATS_SAMPLES] : 0;
        size_t n = wr_stats_window(s, newest, age, &first);
        const char *key;
        json_t *v;
        json_object_foreach(into, key, v)
        {
            size_t kl = strlen(key);
            if (kl < 9 || strcmp(key + kl - 8, "_details") != 0)
                continue;
            char base[64];
            snprintf(base, sizeof base, "%.*s", (int)(kl - 8), key);
            json_t *samples = json_array();
            double first_v = 0, last_v = 0;
            int64_t first_t = 0, last_t = 0, prev_t = INT64_MAX;
            for (size_t k = n; k-- > 0;) {
                uint32_t idx = (first + (uint32_t)k) % WR_STATS_SAMPLES;
                if (prev_t != INT64_MAX && prev_t - s->at[idx] < incr - 500)
                    continue;
                prev_t = s->at[idx];
                double val;
                if (strcmp(base, "messages") == 0)
                    val = (double)(s->len[idx].ready + s->len[idx].unacked);
                else if (strcmp(base, "messages_ready") == 0)
                    val = (double)s->len[idx].ready;
                else if (strcmp(base, "messages_unacknowledged") == 0)
                    val = (double)s->len[idx].unacked;
                else if (strcmp(base, "deliver_get") == 0)
                    val = (double)wr_stats_deliver_get(&s->c[idx]);
                else {
                    int st = -1;
                    for (int j = 0; j < WR_ST_N; j++)
                        if (strcmp(wr_stats_name((wr_stat_t)j), base) == 0)
                            st = j;
                    if (st < 0)
                        continue;
                    val = (double)s->c[idx].n[st];
                }
                if (json_array_size(samples) == 0)
                    last_v = val, last_t = s->at[idx];
                first_v = val, first_t = s->at[idx];
                json_array_append_new(samples, json_pack("{s:f, s:I}", "sample", val, "timestamp",
                                                         (json_int_t)s->at[idx]));
            }
            size_t ns = json_array_size(samples);
            double avg = 0;
            for (size_t k = 0; k < ns; k++)
                avg += json_number_value(json_object_get(json_array_get(samples, k), "sample"));
            avg = ns ? avg / (double)ns : 0;
            double avg_rate =
                last_t > first_t ? (last_v - first_v) * 1000.0 / (double)(last_t - first_t) : 0;
            json_object_set_new(v, "samples", samples);
            json_object_set_new(v, "avg", json_real(avg));
            json_object_set_new(v, "avg_rate", json_real(avg_rate));
        }
    }
}

static void get_overview(wr_api_ctx_t *c)
{
    size_t nq = 0, nx = 0, consumers = 0, i = 0;
    wr_stats_agg_t seen = {0};
    int all = (c->u->flags & (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING)) != 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        if (!wr_api_sees(c->u, vh))
            continue;
        nq += vh->queues.count;
        nx += vh->exchanges.count;
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->queues, &k, &sl))
            consumers += ((const wr_queue_t *)sl->value)->n_consumers;
        wr_stats_add(&seen.total, &vh->stats.total);
        seen.len.ready += vh->stats.len.ready;
        seen.len.unacked += vh->stats.len.unacked;
        for (int j = 0; j < WR_ST_N; j++)
            seen.rates.rate[j] += vh->stats.rates.rate[j];
        seen.rates.len_rate[0] += vh->stats.rates.len_rate[0];
        seen.rates.len_rate[1] += vh->stats.rates.len_rate[1];
    }
    const wr_stats_agg_t *node = wr_stats_node();
    const wr_stats_agg_t *a = all ? node : &seen;
    size_t conns = 0, chans = 0;
    for (wr_conn_t *k = wr_conn_first(); k; k = k->next)
        if (k->state == WR_CONN_OPEN && k->vhost && wr_api_sees(c->u, k->vhost)) {
            conns++;
            chans += k->n_channels;
        }
    const wr_config_t *cfg = wr_broker.cfg;
    /* Seconds of samples kept (RabbitMQ lists several retention tiers). */
    int retention = (int)(WR_STATS_SAMPLES - 1) * (int)(wr_stats_interval() / 1000);
    json_t *ms = wr_info_message_stats(&a->total, &a->rates, wr_info_vhost_stats, 1);
    json_t *qt = totals_rates(a);
    add_samples(c, a, ms, qt);
    json_t *listeners = json_array();
    for (size_t k = 0; cfg && k < cfg->n_listeners; k++)
        json_array_append_new(
            listeners,
            json_pack("{s:s, s:s, s:s, s:i}", "node", wr_info_node(), "protocol", "amqp",
                      "ip_address", cfg->listeners[k].host ? cfg->listeners[k].host : "::", "port",
                      cfg->listeners[k].port));
    for (size_t k = 0; cfg && k < cfg->n_ssl_listeners; k++)
        json_array_append_new(
            listeners,
            json_pack("{s:s, s:s, s:s, s:i}", "node", wr_info_node(), "protocol", "amqp/ssl",
                      "ip_address", cfg->ssl_listeners[k].host ? cfg->ssl_listeners[k].host : "::",
                      "port", cfg->ssl_listeners[k].port));
    if (cfg && cfg->management_port)
        json_array_append_new(listeners,
                              json_pack("{s:s, s:s, s:s, s:i}", "node", wr_info_node(), "protocol",
                                        "http", "ip_address",
                                        cfg->management_ip ? cfg->management_ip : "127.0.0.1",
                                        "port", cfg->management_port));
    json_t *types = json_array();
    static const char *const xt[][2] = {
        {"direct", "AMQP direct exchange, as per the AMQP specification"},
        {"fanout", "AMQP fanout exchange, as per the AMQP specification"},
        {"headers", "AMQP headers exchange, as per the AMQP specification"},
        {"topic", "AMQP topic exchange, as per the AMQP specification"},
        {"x-consistent-hash", "Consistent Hashing Exchange"},
        {"x-delayed-message", "Delayed Message Exchange"},
    };
    for (size_t k = 0; k < sizeof xt / sizeof xt[0]; k++)
        json_array_append_new(types, json_pack("{s:s, s:s, s:b}", "name", xt[k][0], "description",
                                               xt[k][1], "enabled", 1));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:o, s:o, "
        "s:{s:I, s:I, s:I, s:I, s:I}, s:{s:[i], s:[i], s:[i]}}",
        "management_version", WARREN_VERSION, "rabbitmq_version", "3.10.8", "product_name",
        "warren", "product_version", WARREN_VERSION, "cluster_name",
        cfg && cfg->cluster_name ? cfg->cluster_name : "warren@localhost", "node", wr_info_node(),
        "rates_mode", "basic", "erlang_version", "none (C)", "disable_stats", 0,
        "enable_queue_totals", 0, "message_stats", ms, "queue_totals", qt, "listeners", listeners,
        "exchange_types", types, "contexts", json_array(), "object_totals", "connections",
        (json_int_t)conns, "channels", (json_int_t)chans, "exchanges", (json_int_t)nx, "queues",
        (json_int_t)nq, "consumers", (json_int_t)consumers, "sample_retention_policies", "global",
        retention, "basic", retention, "detailed", retention);
    json_t *churn = json_object();
    add_churn(churn);
    json_object_set_new(o, "churn_rates", churn);
    char cols[1024];
    if (wr_api_param(c, "columns", cols, sizeof cols))
        o = project(o, cols);
    wr_api_json(c, 200, o);
}

static int64_t fds_used(void)
{
    int64_t n = 0;
    for (int fd = 0; fd < 65536; fd++) {
        if (fd > 4096 && n == 0)
            break;
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        if (access(p, F_OK) == 0)
            n++;
        else if (fd > 1024 && fd > n * 4)
            break;
    }
    return n;
}

static int64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

static json_t *node_obj(void)
{
    const wr_config_t *cfg = wr_broker.cfg;
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    struct statvfs vfs = {0};
    uint64_t disk_free = 0;
    if (cfg && statvfs(cfg->data_dir, &vfs) == 0)
        disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    double load[1] = {0};
    if (getloadavg(load, 1) < 1)
        load[0] = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    size_t socks = wr_conn_count();
    int64_t mem_limit = 0;
    long pages = sysconf(_SC_PHYS_PAGES);
    if (cfg && cfg->mem_high_watermark_bytes)
        mem_limit = (int64_t)cfg->mem_high_watermark_bytes;
    else if (pages > 0)
        mem_limit = (int64_t)((double)pages * (double)sysconf(_SC_PAGESIZE) *
                              (cfg ? cfg->mem_high_watermark_relative : 0.4));
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:s, s:I, s:b, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:i, "
        "s:s, s:[], s:[], s:s, s:s}",
        "name", wr_info_node(), "type", "disc", "running", 1, "os_pid", pid, "mem_used",
        (json_int_t)rss_bytes(), "mem_alarm", (wr_broker.alarms & WR_ALARM_MEMORY) != 0,
        "mem_limit", (json_int_t)mem_limit, "disk_free", (json_int_t)disk_free, "disk_free_alarm",
        (wr_broker.alarms & WR_ALARM_DISK) != 0, "disk_free_limit",
        (json_int_t)(cfg ? cfg->disk_free_limit : 0), "fd_used", (json_int_t)fds_used(), "fd_total",
        (json_int_t)rl.rlim_cur, "sockets_used", (json_int_t)socks, "sockets_total",
        (json_int_t)rl.rlim_cur, "uptime", (json_int_t)wr_now_ms(), "processors",
        (int)sysconf(_SC_NPROCESSORS_ONLN), "rates_mode", "basic", "partitions", "cluster_links",
        "db_dir", cfg ? cfg->data_dir : "", "mem_calculation_strategy", "rss");
    json_object_set_new(o, "run_queue", json_real(load[0]));
    json_object_set_new(o, "mem_used_details", wr_info_rate(0));
    json_object_set_new(o, "fd_used_details", wr_info_rate(0));
    json_object_set_new(o, "sockets_used_details", wr_info_rate(0));
    json_object_set_new(o, "disk_free_details", wr_info_rate(0));
    /* Where the memory goes, measured (not guessed): messages' bodies and
     * headers, queue index blocks, and the rest of the process. */
    int64_t msgs = (int64_t)wr_msg_mem_bytes, qidx = (int64_t)wr_qsm_block_bytes;
    int64_t rss = json_integer_value(json_object_get(o, "mem_used"));
    json_object_set_new(o, "memory_breakdown",
                        json_pack("{s:I, s:I, s:I, s:I}", "messages", (json_int_t)msgs,
                                  "queue_index", (json_int_t)qidx, "other",
                                  (json_int_t)(rss > msgs + qidx ? rss - msgs - qidx : 0), "total",
                                  (json_int_t)rss));
    json_object_set_new(o, "stats_tick_us", json_real(wr_stats_last_tick_us()));
    add_churn(o);
    return o;
}

static void get_vhost_obj(wr_api_ctx_t *c, wr_vhost_t *vh, json_t *out)
{
    uint64_t in = 0, outb = 0;
    for (wr_conn_t *k = wr_conn_first(); k; k = k->next)
        if (k->vhost == vh) {
            in += k->sock->bytes_in;
            outb += k->sock->bytes_out;
        }
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:b, s:s, s:{s:s, s:o}, s:{s:s}}", "name", vh->name,
                  "description", vh->description, "tags", wr_json_tags(vh->tags), "tracing", 0,
                  "default_queue_type", "undefined", "metadata", "description", vh->description,
                  "tags", wr_json_tags(vh->tags), "cluster_state", wr_info_node(), "running");
    if (!wr_api_param_true(c, "disable_stats")) {
        json_t *t = totals_rates(&vh->stats);
        json_object_update(o, t);
        json_decref(t);
        json_object_set_new(o, "recv_oct", json_integer((json_int_t)in));
        json_object_set_new(o, "send_oct", json_integer((json_int_t)outb));
        json_object_set_new(o, "recv_oct_details", wr_info_rate(0));
        json_object_set_new(o, "send_oct_details", wr_info_rate(0));
        if (any_counted(&vh->stats.total))
            json_object_set_new(
                o, "message_stats",
                wr_info_message_stats(&vh->stats.total, &vh->stats.rates, wr_info_vhost_stats, 1));
    }
    json_array_append_new(out, o);
}

static json_t *user_obj(const wr_user_t *v)
{
    json_t *lim = json_object();
    if (v->max_connections >= 0)
        json_object_set_new(lim, "max-connections", json_integer(v->max_connections));
    if (v->max_channels >= 0)
        json_object_set_new(lim, "max-channels", json_integer(v->max_channels));
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", v->name, "password_hash",
                     v->hash ? v->hash : "", "hashing_algorithm", wr_access_algo_name(v->algo),
                     "tags", wr_json_tags(v->tags), "limits", lim);
}

static json_t *perm_obj(const wr_user_t *u, const char *vhost, const wr_perms_t *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name, "vhost", vhost, "configure",
                     p->p[0].src, "write", p->p[1].src, "read", p->p[2].src);
}

static json_t *tperm_obj(const wr_user_t *u, const char *vhost, const wr_topic_perm_t *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name, "vhost", vhost, "exchange",
                     t->exchange, "write", t->write_src, "read", t->read_src);
}

static json_t *policy_obj(const wr_vhost_t *vh, const wr_policy_t *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "vhost", vh->name, "name", p->name,
                     "pattern", p->pattern.src, "apply-to", wr_policy_apply_to_name(p->apply_to),
                     "definition", json_loads(p->definition, 0, NULL), "priority",
                     (json_int_t)p->priority);
}

/* Connections a user may see: its own, or all for monitoring users. */
static int sees_conn(const wr_user_t *u, const wr_conn_t *k)
{
    if (k->state < WR_CONN_START_OK || k->state > WR_CONN_OPEN)
        return 0;
    if (u->flags & (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING))
        return 1;
    return k->user && strcmp(k->user, u->name) == 0;
}

static wr_conn_t *conn_named(const char *name)
{
    for (wr_conn_t *k = wr_conn_first(); k; k = k->next) {
        char n[200];
        wr_info_conn_name(k, n, sizeof n);
        if (strcmp(n, name) == 0 && k->state >= WR_CONN_START_OK && k->state <= WR_CONN_OPEN)
            return k;
    }
    return NULL;
}

static int health_listener(wr_api_ctx_t *c, long port)
{
    const wr_config_t *cfg = wr_broker.cfg;
    json_t *ports = json_array();
    int found = 0;
    for (size_t k = 0; cfg && k < cfg->n_listeners; k++) {
        json_array_append_new(ports, json_integer(cfg->listeners[k].port));
        found |= cfg->listeners[k].port == port;
    }
    for (size_t k = 0; cfg && k < cfg->n_ssl_listeners; k++) {
        json_array_append_new(ports, json_integer(cfg->ssl_listeners[k].port));
        found |= cfg->ssl_listeners[k].port == port;
    }
    if (cfg && cfg->management_port) {
        json_array_append_new(ports, json_integer(cfg->management_port));
        found |= cfg->management_port == port;
    }
    if (found) {
        json_decref(ports);
        wr_api_json(c, 200, json_pack("{s:s, s:i}", "status", "ok", "port", (int)port));
    } else {
        wr_api_json(c, 503,
                    json_pack("{s:s, s:s, s:i, s:o}", "status", "failed", "reason",
                              "No active listener", "missing", (int)port, "ports", ports));
    }
    return 0;
}

typedef struct qref {
    const char *vhost;
    const char *name;
    wr_queue_t *q;
} qref_t;

static int cmp_qref(const void *pa, const void *pb)
{
    const qref_t *a = pa, *b = pb;
    int r = strcmp(a->vhost, b->vhost);
    if (r == 0)
        r = strcmp(a->name, b->name);
    return sort_reverse ? -r : r;
}

/* One page of queues sorted by name (what the web UI asks for): sorted
 * and filtered on the names alone, objects built for the page only, so
 * it costs little more with 10,000 queues than with 100.  Returns 0 when
 * the request needs the general path (another sort key, columns). */
static int queue_page(wr_api_ctx_t *c, wr_vhost_t *only)
{
    char page_s[32], size_s[32], sort[64], rev[16], name[256], cols[16];
    if (!wr_api_param(c, "page", page_s, sizeof page_s) ||
        wr_api_param(c, "columns", cols, sizeof cols))
        return 0;
    const char *sk = wr_api_param(c, "sort", sort, sizeof sort);
    if (sk && *sk && strcmp(sk, "name") != 0)
        return 0;
    char *end;
    long page = strtol(page_s, &end, 10), size = 100;
    int bad = *page_s == '\0' || *end != '\0';
    if (wr_api_param(c, "page_size", size_s, sizeof size_s)) {
        size = strtol(size_s, &end, 10);
        bad |= *size_s == '\0' || *end != '\0';
    }
    if (bad || page < 1 || size < 1 || size > 500)
        return 0; /* the general path words the error */
    const char *nf = wr_api_param(c, "name", name, sizeof name);
    regex_t re;
    int use_re = nf && *nf && wr_api_param_true(c, "use_regex");
    if (use_re && regcomp(&re, nf, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    sort_reverse = wr_api_param(c, "sort_reverse", rev, sizeof rev) && strcmp(rev, "true") == 0;
    size_t total = 0, n = 0, cap = 0;
    qref_t *v = NULL;
    size_t i = 0;
    wr_map_slot_t *sl;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        if ((only && vh != only) || !wr_api_sees(c->u, vh))
            continue;
        size_t k = 0;
        while (wr_map_next(&vh->queues, &k, &sl)) {
            wr_queue_t *q = sl->value;
            if (q->delay)
                continue;
            total++;
            if (nf && *nf &&
                !(use_re ? regexec(&re, q->name, 0, NULL, 0) == 0 : strstr(q->name, nf) != NULL))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                v = realloc(v, cap * sizeof *v);
            }
            v[n++] = (qref_t){vh->name, q->name, q};
        }
    }
    if (use_re)
        regfree(&re);
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_qref);
    wr_map_t ub;
    wr_map_init(&ub);
    wr_info_unacked_bytes(&ub);
    json_t *items = json_array();
    size_t from = (size_t)(page - 1) * (size_t)size;
    for (size_t k = from; k < n && k < from + (size_t)size; k++)
        json_array_append_new(items, api_queue(c, v[k].q, &ub, 0));
    wr_map_free(&ub);
    free(v);
    size_t pages = (n + (size_t)size - 1) / (size_t)size;
    wr_api_json(c, 200,
                json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I}", "filtered_count", (json_int_t)n,
                          "item_count", (json_int_t)json_array_size(items), "items", items, "page",
                          (json_int_t)page, "page_count", (json_int_t)(pages ? pages : 1),
                          "page_size", (json_int_t)size, "total_count", (json_int_t)total));
    return 1;
}

/* GET and HEAD. */
static void read_route(wr_api_ctx_t *c)
{
    int n = c->n;
    json_t *a = json_array();
    size_t i = 0;
    wr_map_slot_t *sl;
#define SEG(k, str) (n > (k) && strcmp(c->seg[k], (str)) == 0)
    if (SEG(0, "overview")) {
        json_decref(a);
        get_overview(c);
        return;
    }
    if (SEG(0, "whoami")) {
        json_decref(a);
        wr_api_json(c, 200,
                    json_pack("{s:s, s:o}", "name", c->u->name, "tags", wr_json_tags(c->u->tags)));
        return;
    }
    if (SEG(0, "cluster-name")) {
        json_decref(a);
        const wr_config_t *cfg = wr_broker.cfg;
        wr_api_json(c, 200,
                    json_pack("{s:s}", "name",
                              cfg && cfg->cluster_name ? cfg->cluster_name : "warren@localhost"));
        return;
    }
    if (SEG(0, "extensions")) {
        wr_api_json(c, 200, a);
        return;
    }
    if (SEG(0, "nodes")) {
        if (WR_API_MONITOR(c) != 0) {
            json_decref(a);
            return;
        }
        if (n == 2) {
            json_decref(a);
            if (strcmp(c->seg[1], wr_info_node()) != 0)
                wr_api_not_found(c);
            else
                wr_api_json(c, 200, node_obj());
            return;
        }
        json_array_append_new(a, node_obj());
        list_reply(c, a);
        return;
    }
    if (SEG(0, "connections")) {
        if (n == 1) {
            for (wr_conn_t *k = wr_conn_first(); k; k = k->next)
                if (sees_conn(c->u, k))
                    json_array_append_new(a, api_conn(k));
            list_reply(c, a);
            return;
        }
        wr_conn_t *k = conn_named(c->seg[1]);
        if (k == NULL || !sees_conn(c->u, k)) {
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        if (n == 2) {
            json_decref(a);
            wr_api_json(c, 200, api_conn(k));
            return;
        }
        for (wr_channel_t *ch = k->channel_list; ch; ch = ch->next)
            json_array_append_new(a, api_channel(ch, 0));
        list_reply(c, a);
        return;
    }
    if (SEG(0, "channels")) {
        for (wr_conn_t *k = wr_conn_first(); k; k = k->next) {
            if (k->state != WR_CONN_OPEN || !sees_conn(c->u, k))
                continue;
            for (wr_channel_t *ch = k->channel_list; ch; ch = ch->next) {
                if (n == 2) {
                    char nm[220];
                    wr_info_chan_name(ch, nm, sizeof nm);
                    if (strcmp(nm, c->seg[1]) == 0) {
                        json_decref(a);
                        wr_api_json(c, 200, api_channel(ch, 1));
                        return;
                    }
                    continue;
                }
                json_array_append_new(a, api_channel(ch, 0));
            }
        }
        if (n == 2) {
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        list_reply(c, a);
        return;
    }
    if (SEG(0, "vhosts") && n == 3 &&
        (strcmp(c->seg[2], "connections") == 0 || strcmp(c->seg[2], "channels") == 0)) {
        wr_vhost_t *vh = wr_api_vhost(c, c->seg[1]);
        if (vh == NULL) {
            json_decref(a);
            return;
        }
        int chans = strcmp(c->seg[2], "channels") == 0;
        for (wr_conn_t *k = wr_conn_first(); k; k = k->next) {
            if (k->vhost != vh || !sees_conn(c->u, k))
                continue;
            if (!chans)
                json_array_append_new(a, api_conn(k));
            else
                for (wr_channel_t *ch = k->channel_list; ch; ch = ch->next)
                    json_array_append_new(a, api_channel(ch, 0));
        }
        list_reply(c, a);
        return;
    }
    /* The per-vhost object lists. */
    if (SEG(0, "consumers") || SEG(0, "exchanges") || SEG(0, "queues") || SEG(0, "bindings")) {
        wr_vhost_t *only = NULL;
        if (n >= 2 && (only = wr_api_vhost(c, c->seg[1])) == NULL) {
            json_decref(a);
            return;
        }
        if (SEG(0, "queues") && n >= 3) {
            json_decref(a);
            wr_queue_t *q = wr_vhost_queue(only, wr_bytes_of(c->seg[2]));
            if (n == 4 && strcmp(c->seg[3], "dead-letters") == 0) {
                wr_api_dead_letters(c);
                return;
            }
            if (n == 4) { /* bindings: even of a missing queue, as RabbitMQ */
                json_t *b = json_array();
                if (q == NULL)
                    json_array_append_new(b, default_binding(only, c->seg[2], strlen(c->seg[2])));
                else
                    bindings_of(only, NULL, c->seg[2], 1, b);
                wr_api_json(c, 200, b);
                return;
            }
            if (q == NULL || q->delay) {
                wr_api_not_found(c);
                return;
            }
            wr_map_t ub;
            wr_map_init(&ub);
            wr_info_unacked_bytes(&ub);
            json_t *o = api_queue(c, q, &ub, 1);
            wr_map_free(&ub);
            wr_api_json(c, 200, o);
            return;
        }
        if (SEG(0, "exchanges") && n >= 3) {
            const char *xn = strcmp(c->seg[2], "amq.default") == 0 ? "" : c->seg[2];
            wr_exchange_t *x = wr_vhost_exchange(only, wr_bytes_of(xn));
            if (x == NULL) {
                json_decref(a);
                wr_api_not_found(c);
                return;
            }
            if (n == 3) {
                json_decref(a);
                json_t *o = api_exchange(x);
                json_object_set_new(o, "incoming", json_array());
                json_object_set_new(o, "outgoing", json_array());
                wr_api_json(c, 200, o);
                return;
            }
            if (strcmp(c->seg[4], "source") == 0)
                bindings_of(only, xn, NULL, 0, a);
            else {
                /* As destination: bindings from every exchange to it. */
                bindings_of(only, NULL, xn, 0, a);
            }
            wr_api_json(c, 200, a);
            return;
        }
        if (SEG(0, "bindings") && n >= 5) {
            int to_q = strcmp(c->seg[4], "q") == 0;
            const char *src = strcmp(c->seg[3], "amq.default") == 0 ? "" : c->seg[3];
            if (wr_vhost_exchange(only, wr_bytes_of(src)) == NULL ||
                (to_q ? (void *)wr_vhost_queue(only, wr_bytes_of(c->seg[5]))
                      : (void *)wr_vhost_exchange(only, wr_bytes_of(c->seg[5]))) == NULL) {
                json_decref(a);
                wr_api_not_found(c);
                return;
            }
            json_t *all = json_array();
            bindings_of(only, src, c->seg[5], to_q, all);
            if (n == 6) {
                json_decref(a);
                wr_api_json(c, 200, all);
                return;
            }
            json_t *b;
            json_array_foreach(all, i, b)
            {
                if (strcmp(json_string_value(json_object_get(b, "properties_key")), c->seg[6]) ==
                    0) {
                    json_decref(a);
                    wr_api_json(c, 200, json_incref(b));
                    json_decref(all);
                    return;
                }
            }
            json_decref(all);
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        wr_map_t ub;
        int queues = SEG(0, "queues");
        if (queues && queue_page(c, only)) {
            json_decref(a);
            return;
        }
        if (queues) {
            wr_map_init(&ub);
            wr_info_unacked_bytes(&ub);
        }
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
            if ((only && vh != only) || !wr_api_sees(c->u, vh))
                continue;
            size_t k = 0;
            if (queues) {
                while (wr_map_next(&vh->queues, &k, &sl))
                    if (!((wr_queue_t *)sl->value)->delay)
                        json_array_append_new(a, api_queue(c, sl->value, &ub, 0));
            } else if (SEG(0, "exchanges")) {
                while (wr_map_next(&vh->exchanges, &k, &sl))
                    json_array_append_new(a, api_exchange(sl->value));
            } else if (SEG(0, "bindings")) {
                bindings_of(vh, NULL, NULL, 0, a);
            } else {
                while (wr_map_next(&vh->queues, &k, &sl)) {
                    const wr_queue_t *q = sl->value;
                    for (const wr_consumer_t *cs = q->consumers; cs; cs = cs->qnext)
                        json_array_append_new(a, wr_info_consumer(q, cs));
                }
            }
        }
        if (queues)
            wr_map_free(&ub);
        if (SEG(0, "bindings") || SEG(0, "consumers"))
            wr_api_json(c, 200, a); /* in their own order */
        else
            list_reply(c, a);
        return;
    }
    if (SEG(0, "vhosts")) {
        if (n == 1) {
            for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
                if (wr_api_sees(c->u, vh))
                    get_vhost_obj(c, vh, a);
            list_reply(c, a);
            return;
        }
        wr_vhost_t *vh = wr_api_vhost(c, c->seg[1]);
        if (vh == NULL) {
            json_decref(a);
            return;
        }
        if (n == 2) {
            get_vhost_obj(c, vh, a);
            wr_api_json(c, 200, json_incref(json_array_get(a, 0)));
            json_decref(a);
            return;
        }
        if (WR_API_ADMIN(c) != 0) {
            json_decref(a);
            return;
        }
        int topic = strcmp(c->seg[2], "topic-permissions") == 0;
        for (wr_user_t *u; (u = wr_access_user_next(&i));) {
            const wr_perms_t *p = wr_access_perms(u, vh->name);
            if (!topic && p)
                json_array_append_new(a, perm_obj(u, vh->name, p));
            for (const wr_topic_perm_t *t = topic ? wr_access_topic_list(u, vh->name) : NULL; t;
                 t = t->next)
                json_array_append_new(a, tperm_obj(u, vh->name, t));
        }
        wr_api_json(c, 200, a);
        return;
    }
    if (SEG(0, "users")) {
        if (WR_API_ADMIN(c) != 0) {
            json_decref(a);
            return;
        }
        if (n == 1 || SEG(1, "without-permissions")) {
            for (wr_user_t *v; (v = wr_access_user_next(&i));)
                if (n == 1 || v->perms.count == 0)
                    json_array_append_new(a, user_obj(v));
            list_reply(c, a);
            return;
        }
        wr_user_t *v = wr_access_user(wr_bytes_of(c->seg[1]));
        if (v == NULL) {
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        if (n == 2) {
            json_decref(a);
            wr_api_json(c, 200, user_obj(v));
            return;
        }
        int topic = strcmp(c->seg[2], "topic-permissions") == 0;
        i = 0;
        while (wr_map_next(&v->perms, &i, &sl))
            if (!topic)
                json_array_append_new(a, perm_obj(v, sl->key, sl->value));
        i = 0;
        while (topic && wr_map_next(&v->topic, &i, &sl))
            for (const wr_topic_perm_t *t = sl->value; t; t = t->next)
                json_array_append_new(a, tperm_obj(v, sl->key, t));
        wr_api_json(c, 200, a);
        return;
    }
    if (SEG(0, "permissions") || SEG(0, "topic-permissions")) {
        if (WR_API_ADMIN(c) != 0) {
            json_decref(a);
            return;
        }
        int topic = SEG(0, "topic-permissions");
        wr_vhost_t *vh = NULL;
        wr_user_t *only = NULL;
        if (n == 3 && ((vh = wr_broker_vhost(wr_bytes_of(c->seg[1]))) == NULL ||
                       (only = wr_access_user(wr_bytes_of(c->seg[2]))) == NULL)) {
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        for (wr_user_t *u; (u = wr_access_user_next(&i));) {
            if (only && u != only)
                continue;
            size_t k = 0;
            while (!topic && wr_map_next(&u->perms, &k, &sl))
                if (!vh || strcmp(sl->key, vh->name) == 0)
                    json_array_append_new(a, perm_obj(u, sl->key, sl->value));
            k = 0;
            while (topic && wr_map_next(&u->topic, &k, &sl))
                if (!vh || strcmp(sl->key, vh->name) == 0)
                    for (const wr_topic_perm_t *t = sl->value; t; t = t->next)
                        json_array_append_new(a, tperm_obj(u, sl->key, t));
        }
        if (n == 3) {
            if (json_array_size(a) == 0) {
                json_decref(a);
                wr_api_not_found(c);
                return;
            }
            /* One permission; topic permissions are a list per exchange. */
            wr_api_json(c, 200, topic ? a : json_incref(json_array_get(a, 0)));
            if (!topic)
                json_decref(a);
            return;
        }
        list_reply(c, a);
        return;
    }
    if (SEG(0, "policies") || SEG(0, "operator-policies")) {
        int op = SEG(0, "operator-policies");
        wr_vhost_t *only = NULL;
        if (n >= 2 && (only = wr_api_vhost(c, c->seg[1])) == NULL) {
            json_decref(a);
            return;
        }
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
            if ((only && vh != only) || !wr_api_sees(c->u, vh))
                continue;
            for (const wr_policy_t *p = wr_policy_list(vh, op); p; p = p->next)
                if (n < 3 || strcmp(p->name, c->seg[2]) == 0)
                    json_array_append_new(a, policy_obj(vh, p));
        }
        if (n == 3) {
            if (json_array_size(a) == 0)
                wr_api_not_found(c);
            else
                wr_api_json(c, 200, json_incref(json_array_get(a, 0)));
            json_decref(a);
            return;
        }
        list_reply(c, a);
        return;
    }
    if (SEG(0, "vhost-limits")) {
        wr_vhost_t *only = NULL;
        if (n >= 2 && (only = wr_api_vhost(c, c->seg[1])) == NULL) {
            json_decref(a);
            return;
        }
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
            if ((only && vh != only) || !wr_api_sees(c->u, vh))
                continue;
            json_t *v = json_object();
            if (vh->max_connections >= 0)
                json_object_set_new(v, "max-connections", json_integer(vh->max_connections));
            if (vh->max_queues >= 0)
                json_object_set_new(v, "max-queues", json_integer(vh->max_queues));
            if (json_object_size(v))
                json_array_append_new(a, json_pack("{s:s, s:o}", "vhost", vh->name, "value", v));
            else
                json_decref(v);
        }
        wr_api_json(c, 200, a);
        return;
    }
    if (SEG(0, "user-limits")) {
        wr_user_t *only = NULL;
        if (n >= 2 && (only = wr_access_user(wr_bytes_of(c->seg[1]))) == NULL) {
            json_decref(a);
            wr_api_not_found(c);
            return;
        }
        for (wr_user_t *v; (v = wr_access_user_next(&i));) {
            if ((only && v != only) ||
                (!(c->u->flags & WR_TAG_ADMINISTRATOR) && v != c->u && !only))
                continue;
            json_t *lim = json_object();
            if (v->max_connections >= 0)
                json_object_set_new(lim, "max-connections", json_integer(v->max_connections));
            if (v->max_channels >= 0)
                json_object_set_new(lim, "max-channels", json_integer(v->max_channels));
            if (json_object_size(lim))
                json_array_append_new(a, json_pack("{s:s, s:o}", "user", v->name, "value", lim));
            else
                json_decref(lim);
        }
        wr_api_json(c, 200, a);
        return;
    }
    if (SEG(0, "definitions")) {
        json_decref(a);
        if (WR_API_ADMIN(c) != 0)
            return;
        if (n == 2 && wr_broker_vhost(wr_bytes_of(c->seg[1])) == NULL) {
            wr_api_bad(c, "vhost_not_found");
            return;
        }
        json_t *d = wr_defs_export(n == 2 ? c->seg[1] : NULL);
        if (n == 2) {
            /* A vhost's definitions name no vhost in their objects. */
            static const char *const secs[] = {"queues", "exchanges", "bindings"};
            for (size_t k = 0; k < 3; k++) {
                json_t *o;
                size_t j;
                json_array_foreach(json_object_get(d, secs[k]), j, o) json_object_del(o, "vhost");
            }
            static const char *const gone[] = {"users", "vhosts", "permissions",
                                               "topic_permissions", "global_parameters"};
            for (size_t k = 0; k < 5; k++)
                json_object_del(d, gone[k]);
        }
        wr_api_json(c, 200, d);
        return;
    }
    if (SEG(0, "aliveness-test")) {
        json_decref(a);
        wr_vhost_t *vh = wr_api_vhost(c, c->seg[1]);
        if (vh == NULL)
            return;
        /* As RabbitMQ: declare aliveness-test, publish to it, get it back. */
        wr_actor_t who = {NULL, NULL};
        wr_reply_t rp;
        wr_queue_spec_t qs = {WR_BYTES_LIT("aliveness-test"), 0, 0, 0, 0, {NULL, 0}, 0};
        wr_queue_t *q;
        if (wr_op_queue_declare(vh, &qs, &who, &q, &rp) != 0) {
            wr_api_json(c, 503, json_pack("{s:s, s:s}", "status", "failed", "reason", rp.text));
            return;
        }
        size_t routed;
        uint64_t gen;
        static const uint8_t no_props[2] = {0, 0};
        wr_publish_spec_t ps = {WR_BYTES_LIT(""),
                                WR_BYTES_LIT("aliveness-test"),
                                {no_props, 2},
                                WR_BYTES_LIT("test_message"),
                                NULL};
        wr_qent_t e;
        if (wr_op_publish(vh, &ps, &who, &routed, &gen, &rp) != 0 || !wr_queue_pop(q, &e)) {
            wr_api_json(c, 503,
                        json_pack("{s:s, s:s}", "status", "failed", "reason",
                                  rp.code ? rp.text : "the message did not arrive"));
            return;
        }
        wr_queue_taken(q, &e);
        wr_api_json(c, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (SEG(0, "health") && SEG(1, "checks") && n >= 3) {
        json_decref(a);
        const char *what = c->seg[2];
        if (strcmp(what, "alarms") == 0 || strcmp(what, "local-alarms") == 0) {
            if (wr_broker.alarms == 0) {
                wr_api_json(c, 200, json_pack("{s:s}", "status", "ok"));
                return;
            }
            json_t *al = json_array();
            if (wr_broker.alarms & WR_ALARM_MEMORY)
                json_array_append_new(
                    al, json_pack("{s:s, s:s}", "node", wr_info_node(), "resource", "memory"));
            if (wr_broker.alarms & WR_ALARM_DISK)
                json_array_append_new(
                    al, json_pack("{s:s, s:s}", "node", wr_info_node(), "resource", "disk"));
            wr_api_json(c, 503,
                        json_pack("{s:s, s:s, s:o}", "status", "failed", "reason",
                                  "resource alarm(s) in effect", "alarms", al));
        } else if (strcmp(what, "virtual-hosts") == 0 ||
                   strcmp(what, "node-is-quorum-critical") == 0 ||
                   strcmp(what, "node-is-mirror-sync-critical") == 0 ||
                   strcmp(what, "certificate-expiration") == 0) {
            wr_api_json(c, 200, json_pack("{s:s}", "status", "ok"));
        } else if (strcmp(what, "port-listener") == 0 && n == 4) {
            health_listener(c, strtol(c->seg[3], NULL, 10));
        } else if (strcmp(what, "protocol-listener") == 0 && n == 4) {
            const wr_config_t *cfg = wr_broker.cfg;
            int has = (strcmp(c->seg[3], "amqp") == 0 && cfg->n_listeners) ||
                      (strcmp(c->seg[3], "amqp/ssl") == 0 && cfg->n_ssl_listeners) ||
                      strcmp(c->seg[3], "http") == 0;
            if (has)
                wr_api_json(c, 200, json_pack("{s:s, s:s}", "status", "ok", "protocol", c->seg[3]));
            else
                wr_api_json(c, 503,
                            json_pack("{s:s, s:s, s:s}", "status", "failed", "reason",
                                      "No active listener", "missing", c->seg[3]));
        } else {
            wr_api_not_found(c);
        }
        return;
    }
#undef SEG
    json_decref(a);
    wr_api_not_found(c);
}

/* ---- routing ---- */

#define GET      "HEAD, GET, OPTIONS"
#define GET_PUT  "HEAD, GET, PUT, DELETE, OPTIONS"
#define GET_POST "HEAD, GET, POST, OPTIONS"
#define POST     "POST, OPTIONS"
#define DEL      "DELETE, OPTIONS"
#define PUT_DEL  "PUT, DELETE, OPTIONS"
#define GET_DEL  "HEAD, GET, DELETE, OPTIONS"

/* Patterns: '*' matches one segment. */
static const struct route {
    const char *pattern;
    const char *allow;
} routes[] = {
    {"overview", GET},
    {"cluster-name", GET},
    {"nodes", GET},
    {"nodes/*", GET},
    {"extensions", GET},
    {"whoami", GET},
    {"connections", GET},
    {"connections/*", GET_DEL},
    {"connections/*/channels", GET},
    {"channels", GET},
    {"channels/*", GET},
    {"consumers", GET},
    {"consumers/*", GET},
    {"exchanges", GET},
    {"exchanges/*", GET},
    {"exchanges/*/*", GET_PUT},
    {"exchanges/*/*/bindings/source", GET},
    {"exchanges/*/*/bindings/destination", GET},
    {"exchanges/*/*/publish", POST},
    {"queues", GET},
    {"queues/*", GET},
    {"queues/*/*", GET_PUT},
    {"queues/*/*/bindings", GET},
    {"queues/*/*/contents", DEL},
    {"queues/*/*/get", POST},
    {"queues/*/*/replay", POST},
    {"queues/*/*/move", POST},
    {"queues/*/*/dead-letters", GET},
    {"bindings", GET},
    {"bindings/*", GET},
    {"bindings/*/e/*/q/*", GET_POST},
    {"bindings/*/e/*/e/*", GET_POST},
    {"bindings/*/e/*/q/*/*", GET_DEL},
    {"bindings/*/e/*/e/*/*", GET_DEL},
    {"vhosts", GET},
    {"vhosts/*", GET_PUT},
    {"vhosts/*/permissions", GET},
    {"vhosts/*/topic-permissions", GET},
    {"vhosts/*/connections", GET},
    {"vhosts/*/channels", GET},
    {"users", GET},
    {"users/without-permissions", GET},
    {"users/bulk-delete", POST},
    {"users/*", GET_PUT},
    {"users/*/permissions", GET},
    {"users/*/topic-permissions", GET},
    {"permissions", GET},
    {"permissions/*/*", GET_PUT},
    {"topic-permissions", GET},
    {"topic-permissions/*/*", GET_PUT},
    {"policies", GET},
    {"policies/*", GET},
    {"policies/*/*", GET_PUT},
    {"operator-policies", GET},
    {"operator-policies/*", GET},
    {"operator-policies/*/*", GET_PUT},
    {"vhost-limits", GET},
    {"vhost-limits/*", GET},
    {"vhost-limits/*/*", PUT_DEL},
    {"user-limits", GET},
    {"user-limits/*", GET},
    {"user-limits/*/*", PUT_DEL},
    {"definitions", GET_POST},
    {"definitions/*", GET_POST},
    {"aliveness-test/*", GET},
    {"health/checks/alarms", GET},
    {"health/checks/local-alarms", GET},
    {"health/checks/virtual-hosts", GET},
    {"health/checks/node-is-quorum-critical", GET},
    {"health/checks/node-is-mirror-sync-critical", GET},
    {"health/checks/certificate-expiration/*/*", GET},
    {"health/checks/port-listener/*", GET},
    {"health/checks/protocol-listener/*", GET},
};

static const struct route *match(const wr_api_ctx_t *c)
{
    for (size_t k = 0; k < sizeof routes / sizeof routes[0]; k++) {
        const char *p = routes[k].pattern;
        int i = 0;
        for (; *p && i < c->n; i++) {
            size_t len = strcspn(p, "/");
            if (!(len == 1 && *p == '*') &&
                (strlen(c->seg[i]) != len || memcmp(c->seg[i], p, len) != 0))
                break;
            p += len + (p[len] == '/');
        }
        if (*p == '\0' && i == c->n)
            return &routes[k];
    }
    return NULL;
}

static int allows(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

void wr_api_handle(const wr_http_req_t *q, wr_http_resp_t *r)
{
    static wr_api_ctx_t c; /* large; the loop runs one request at a time */
    memset(&c, 0, sizeof c);
    c.q = q;
    c.r = r;
    c.method = q->method;
    const char *url = (const char *)q->url.p;
    const char *qm = strchr(url, '?');
    c.query = qm ? qm + 1 : "";
    char segs[WR_API_SEGS + 1][256], raws[WR_API_SEGS + 1][256];
    int n = split(url, segs, raws, WR_API_SEGS + 1);
    if (n < 1 || strcmp(segs[0], "api") != 0) {
        if (wr_www_serve(q, r)) /* the web UI's files */
            return;
        wr_api_not_found(&c);
        return;
    }
    c.n = n - 1;
    for (int i = 0; i < c.n; i++) {
        memcpy(c.seg[i], segs[i + 1], 256);
        memcpy(c.raw[i], raws[i + 1], 256);
    }
    const struct route *rt = c.n > 0 ? match(&c) : NULL;
    if (rt == NULL) {
        wr_api_not_found(&c);
        return;
    }
    if (!allows(rt->allow, c.method)) {
        snprintf(r->headers, sizeof r->headers, "Allow: %s\r\n", rt->allow);
        wr_api_empty(&c, 405);
        return;
    }
    if (strcmp(c.method, "OPTIONS") == 0) {
        snprintf(r->headers, sizeof r->headers, "Allow: %s\r\n", rt->allow);
        wr_api_empty(&c, 200);
        return;
    }
    if (q->authorization[0] == '\0') {
        r->www_authenticate = 1;
        wr_api_empty(&c, 401);
        return;
    }
    c.u = authenticate(q);
    wr_stats_count(c.u ? WR_NS_AUTH_HTTP_OK : WR_NS_AUTH_HTTP_FAILED);
    if (c.u == NULL) {
        r->www_authenticate = 1;
        wr_api_error(&c, 401, "not_authorized", "Login failed");
        return;
    }
    if (!(c.u->flags &
          (WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING | WR_TAG_POLICYMAKER | WR_TAG_MANAGEMENT))) {
        wr_api_refused(&c, "Not management user");
        return;
    }
    if (strcmp(c.method, "GET") == 0 || strcmp(c.method, "HEAD") == 0) {
        read_route(&c);
        return;
    }
    uint64_t before = wr_cmeta_next_ticket();
    if (!wr_api_write(&c))
        wr_api_not_found(&c);
    /* In a cluster, a write that changed what the nodes share is answered
     * once the metadata log has it applied here (its last ticket). */
    uint64_t after = wr_cmeta_next_ticket();
    if (after != before && r->status < 300)
        r->wait = after - 1;
}
