/* api_write.c - the management API's changes: PUT, POST and DELETE (see
 * api.h).  Topology changes go through the operations layer
 * (broker/ops.h) with the HTTP user's permissions, users, permissions,
 * policies, limits and vhosts through the control plane's commands
 * (admin/ctl.c): the same rules and checks as AMQP clients and warrenctl. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "admin/defs.h"
#include "admin/info.h"
#include "admin/json.h"
#include "admin/meta.h"
#include "broker/policy.h"
#include "broker/replay.h"
#include "mgmt/api_int.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

static int is(const wr_api_ctx_t *c, const char *m)
{
    return strcmp(c->method, m) == 0;
}

static int flag(const json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_string(v))
        return strcmp(json_string_value(v), "true") == 0;
    return dflt;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* RabbitMQ's "[{key_missing,a},{key_missing,b}]" for absent keys. */
static int missing(wr_api_ctx_t *c, const json_t *o, const char *const *keys)
{
    char text[400] = "";
    size_t n = 0;
    for (; *keys; keys++)
        if (json_object_get(o, *keys) == NULL)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s{key_missing,%s}", n ? "," : "[",
                                  *keys);
    if (n == 0)
        return 0;
    snprintf(text + n, sizeof text - n, "]");
    wr_api_bad(c, text);
    return 1;
}

/* Converts a JSON object into an AMQP table's content (arguments,
 * headers), as definitions are converted. */
static void table_of(const json_t *o, wr_buf_t *out)
{
    wr_buf_init(out);
    if (json_is_object(o))
        wr_json_put_table(out, o);
}

/* ---- exchanges and queues ---- */

static void put_exchange(wr_api_ctx_t *c, wr_vhost_t *vh, const char *name)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    wr_buf_t args;
    table_of(json_object_get(b, "arguments"), &args);
    const char *type = str(b, "type");
    wr_exchange_spec_t s = {wr_bytes_of(name),
                            wr_bytes_of(type ? type : "direct"),
                            0,
                            (uint8_t)flag(b, "durable", 1),
                            (uint8_t)flag(b, "auto_delete", 0),
                            (uint8_t)flag(b, "internal", 0),
                            {args.p, args.len}};
    int existed = wr_vhost_exchange(vh, wr_bytes_of(name)) != NULL;
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    if (wr_op_exchange_declare(vh, &s, &who, &rp) != 0)
        wr_api_op_failed(c, &rp);
    else
        wr_api_empty(c, existed ? 204 : 201);
    wr_buf_free(&args);
    json_decref(b);
}

static void put_queue(wr_api_ctx_t *c, wr_vhost_t *vh, const char *name)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    wr_buf_t args;
    table_of(json_object_get(b, "arguments"), &args);
    wr_queue_spec_t s = {wr_bytes_of(name),
                         0,
                         (uint8_t)flag(b, "durable", 1),
                         0,
                         (uint8_t)flag(b, "auto_delete", 0),
                         {args.p, args.len},
                         0};
    int existed = wr_vhost_queue(vh, wr_bytes_of(name)) != NULL;
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    wr_queue_t *q;
    if (*name == '\0')
        wr_api_bad(c, "queue name must not be empty");
    else if (wr_op_queue_declare(vh, &s, &who, &q, &rp) != 0)
        wr_api_op_failed(c, &rp);
    else
        wr_api_empty(c, existed ? 204 : 201);
    wr_buf_free(&args);
    json_decref(b);
}

static void delete_queue(wr_api_ctx_t *c, wr_vhost_t *vh, const char *name)
{
    if (wr_vhost_queue(vh, wr_bytes_of(name)) == NULL) {
        wr_api_not_found(c);
        return;
    }
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    if (wr_op_queue_delete(vh, wr_bytes_of(name), wr_api_param_true(c, "if-unused"),
                           wr_api_param_true(c, "if-empty"), &who, NULL, NULL, &rp) != 0)
        wr_api_op_failed(c, &rp);
    else
        wr_api_empty(c, 204);
}

/* ---- messages ---- */

static int utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t k = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : 9;
        if (k == 9 || i + k >= n + (k == 0))
            return k == 0;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

static json_t *base64(const uint8_t *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int m = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    json_t *s = json_stringn(out, (size_t)m);
    free(out);
    return s;
}

/* The properties of a message as RabbitMQ's API shows them: set ones
 * only, [] when there are none. */
static json_t *props_json(wr_bytes_t props)
{
    wr_basic_props_t pr = {0};
    if (props.n < 2 || wr_props_decode(props.p, props.n, &pr) != 0 || pr.flags == 0)
        return json_array();
    json_t *o = json_object();
#define PSTR(flag_, f)                                                                             \
    if (pr.flags & (flag_))                                                                        \
        json_object_set_new(o, #f, json_stringn((const char *)pr.f.p, pr.f.n));
    PSTR(WR_PROP_CONTENT_TYPE, content_type)
    PSTR(WR_PROP_CONTENT_ENCODING, content_encoding)
    if (pr.flags & WR_PROP_HEADERS)
        json_object_set_new(o, "headers", wr_json_table(pr.headers));
    if (pr.flags & WR_PROP_DELIVERY_MODE)
        json_object_set_new(o, "delivery_mode", json_integer(pr.delivery_mode));
    if (pr.flags & WR_PROP_PRIORITY)
        json_object_set_new(o, "priority", json_integer(pr.priority));
    PSTR(WR_PROP_CORRELATION_ID, correlation_id)
    PSTR(WR_PROP_REPLY_TO, reply_to)
    PSTR(WR_PROP_EXPIRATION, expiration)
    PSTR(WR_PROP_MESSAGE_ID, message_id)
    if (pr.flags & WR_PROP_TIMESTAMP)
        json_object_set_new(o, "timestamp", json_integer((json_int_t)pr.timestamp));
    PSTR(WR_PROP_TYPE, type)
    PSTR(WR_PROP_USER_ID, user_id)
    PSTR(WR_PROP_APP_ID, app_id)
    PSTR(WR_PROP_CLUSTER_ID, cluster_id)
#undef PSTR
    return o;
}

/* The properties object of a publish request, encoded.  0, or -1 with
 * RabbitMQ's reason. */
static int props_of(const json_t *o, wr_buf_t *out, wr_buf_t *hdr, char *why, size_t whylen)
{
    wr_basic_props_t pr = {0};
    wr_buf_init(hdr);
#define PSTR(flag_, f)                                                                             \
    if (json_is_string(json_object_get(o, #f))) {                                                  \
        pr.flags |= (flag_);                                                                       \
        pr.f = (wr_bytes_t){(const uint8_t *)str(o, #f), strlen(str(o, #f))};                      \
        if (pr.f.n > 255) {                                                                        \
            snprintf(why, whylen, "property %s is longer than 255 bytes", #f);                     \
            return -1;                                                                             \
        }                                                                                          \
    }
    PSTR(WR_PROP_CONTENT_TYPE, content_type)
    PSTR(WR_PROP_CONTENT_ENCODING, content_encoding)
    PSTR(WR_PROP_CORRELATION_ID, correlation_id)
    PSTR(WR_PROP_REPLY_TO, reply_to)
    PSTR(WR_PROP_EXPIRATION, expiration)
    PSTR(WR_PROP_MESSAGE_ID, message_id)
    PSTR(WR_PROP_TYPE, type)
    PSTR(WR_PROP_USER_ID, user_id)
    PSTR(WR_PROP_APP_ID, app_id)
    PSTR(WR_PROP_CLUSTER_ID, cluster_id)
#undef PSTR
    static const char *const ints[] = {"delivery_mode", "priority", "timestamp"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(o, ints[i]);
        if (v == NULL)
            continue;
        json_int_t n;
        if (json_is_integer(v))
            n = json_integer_value(v);
        else if (json_is_string(v) && *json_string_value(v) &&
                 strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v)))
            n = strtoll(json_string_value(v), NULL, 10);
        else {
            snprintf(why, whylen, "[\"not_int\",\"%s\"]", ints[i]);
            return -1;
        }
        if (i == 0) {
            pr.flags |= WR_PROP_DELIVERY_MODE;
            pr.delivery_mode = (uint8_t)n;
        } else if (i == 1) {
            pr.flags |= WR_PROP_PRIORITY;
            pr.priority = (uint8_t)n;
        } else {
            pr.flags |= WR_PROP_TIMESTAMP;
            pr.timestamp = (uint64_t)n;
        }
    }
    json_t *h = json_object_get(o, "headers");
    if (json_is_object(h)) {
        wr_json_put_table(hdr, h);
        pr.flags |= WR_PROP_HEADERS;
        pr.headers = (wr_bytes_t){hdr->p, hdr->len};
    }
    wr_props_encode(out, &pr);
    return 0;
}

static int decode_payload(const char *payload, size_t n, const char *enc, wr_buf_t *out, char *why,
                          size_t whylen)
{
    wr_buf_init(out);
    if (strcmp(enc, "string") == 0) {
        wr_buf_put(out, payload, n);
        return 0;
    }
    if (strcmp(enc, "base64") != 0) {
        snprintf(why, whylen, "[\"unsupported_encoding\",\"%s\"]", enc);
        return -1;
    }
    unsigned char *dec = malloc(n / 4 * 3 + 4);
    int m = n % 4 == 0 ? EVP_DecodeBlock(dec, (const unsigned char *)payload, (int)n) : -1;
    if (m < 0) {
        free(dec);
        snprintf(why, whylen, "[\"not_base64\",\"%.100s\"]", payload);
        return -1;
    }
    for (size_t i = n; i > 0 && payload[i - 1] == '='; i--)
        m--;
    wr_buf_put(out, dec, (size_t)m);
    free(dec);
    return 0;
}

/* A reason that is JSON (an array, as RabbitMQ's Erlang terms come out)
 * or a plain string. */
static void bad_raw(wr_api_ctx_t *c, const char *why)
{
    json_t *v = why[0] == '[' ? json_loads(why, 0, NULL) : NULL;
    if (v)
        wr_api_json(c, 400, json_pack("{s:s, s:o}", "error", "bad_request", "reason", v));
    else
        wr_api_bad(c, why);
}

static void publish(wr_api_ctx_t *c, wr_vhost_t *vh, const char *xname)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    static const char *const need[] = {"properties", "routing_key", "payload", "payload_encoding",
                                       NULL};
    if (missing(c, b, need)) {
        json_decref(b);
        return;
    }
    wr_buf_t props, hdr, body;
    wr_buf_init(&props);
    char why[300];
    const char *payload = str(b, "payload") ? str(b, "payload") : "";
    const char *enc = str(b, "payload_encoding") ? str(b, "payload_encoding") : "string";
    const char *rk = str(b, "routing_key") ? str(b, "routing_key") : "";
    if (props_of(json_object_get(b, "properties"), &props, &hdr, why, sizeof why) != 0) {
        bad_raw(c, why);
    } else if (decode_payload(payload, strlen(payload), enc, &body, why, sizeof why) != 0) {
        bad_raw(c, why);
        wr_buf_free(&body);
    } else if (strlen(rk) > 255) {
        wr_api_bad(c, "routing_key is longer than 255 bytes");
        wr_buf_free(&body);
    } else {
        const char *x = strcmp(xname, "amq.default") == 0 ? "" : xname;
        wr_publish_spec_t s = {
            wr_bytes_of(x), wr_bytes_of(rk), {props.p, props.len}, {body.p, body.len}, NULL};
        wr_actor_t who = wr_api_actor(c);
        wr_reply_t rp;
        size_t routed;
        uint64_t gen;
        if (wr_op_publish(vh, &s, &who, &routed, &gen, &rp) != 0) {
            /* RabbitMQ answers 400 with the AMQP error as the reason. */
            char text[400];
            snprintf(text, sizeof text, "%u %s - %s", rp.code,
                     rp.code == WR_AMQP_NOT_FOUND        ? "NOT_FOUND"
                     : rp.code == WR_AMQP_ACCESS_REFUSED ? "ACCESS_REFUSED"
                                                         : "PRECONDITION_FAILED",
                     rp.text);
            wr_api_bad(c, text);
        } else {
            wr_api_json(c, 200, json_pack("{s:b}", "routed", routed > 0));
        }
        wr_buf_free(&body);
    }
    wr_buf_free(&props);
    wr_buf_free(&hdr);
    json_decref(b);
}

static json_t *message_json(const wr_qent_t *e, size_t left, int base64_only, long truncate)
{
    const wr_msg_t *m = e->msg;
    size_t n = m->body_len;
    size_t shown = truncate >= 0 && (size_t)truncate < n ? (size_t)truncate : n;
    int as_text = !base64_only && utf8_valid(m->body, shown);
    json_t *o = json_object();
    json_object_set_new(o, "payload_bytes", json_integer((json_int_t)n));
    json_object_set_new(o, "redelivered", json_boolean(e->deliveries > 0));
    wr_bytes_t x = wr_msg_exchange(m), rk = wr_msg_routing_key(m);
    json_object_set_new(o, "exchange", json_stringn((const char *)x.p, x.n));
    json_object_set_new(o, "routing_key", json_stringn((const char *)rk.p, rk.n));
    json_object_set_new(o, "message_count", json_integer((json_int_t)left));
    json_object_set_new(o, "properties", props_json(wr_msg_props(m)));
    json_object_set_new(o, "payload",
                        as_text ? json_stringn((const char *)m->body, shown)
                                : base64(m->body, shown));
    json_object_set_new(o, "payload_encoding", json_string(as_text ? "string" : "base64"));
    return o;
}

static void get_messages(wr_api_ctx_t *c, wr_vhost_t *vh, const char *qname)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    static const char *const need[] = {"ackmode", "count", "encoding", NULL};
    if (missing(c, b, need)) {
        json_decref(b);
        return;
    }
    const char *ackmode = str(b, "ackmode") ? str(b, "ackmode") : "";
    const char *enc = str(b, "encoding") ? str(b, "encoding") : "";
    json_t *tv = json_object_get(b, "truncate");
    long truncate = json_is_integer(tv) ? (long)json_integer_value(tv) : -1;
    if (json_is_string(tv))
        truncate = strtol(json_string_value(tv), NULL, 10);
    int how; /* 0 requeue, 1 ack (drop), 2 reject (dead-letter) */
    if (strcmp(ackmode, "ack_requeue_true") == 0 || strcmp(ackmode, "reject_requeue_true") == 0)
        how = 0;
    else if (strcmp(ackmode, "ack_requeue_false") == 0)
        how = 1;
    else if (strcmp(ackmode, "reject_requeue_false") == 0)
        how = 2;
    else
        how = -1;
    if (how < 0) {
        wr_api_bad(c, "Unsupported ackmode. Please use ack_requeue_true, ack_requeue_false, "
                      "reject_requeue_true or reject_requeue_false.");
        json_decref(b);
        return;
    }
    if (strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0) {
        wr_api_bad(c, "Unsupported encoding. Please use auto or base64.");
        json_decref(b);
        return;
    }
    /* A number, or a string of one (rabbitmqadmin sends "1"). */
    json_t *cv = json_object_get(b, "count");
    json_int_t count = json_integer_value(cv);
    if (json_is_string(cv)) {
        const char *t = json_string_value(cv);
        char *end;
        count = strtoll(t, &end, 10);
        if (*t == '\0' || *end != '\0') {
            wr_api_json(
                c, 400,
                json_pack("{s:s, s:[s, s]}", "error", "bad_request", "reason", "not_integer", t));
            json_decref(b);
            return;
        }
    }
    int b64 = strcmp(enc, "base64") == 0;
    json_decref(b); /* enc and ackmode pointed into it */
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    if (wr_op_allowed(&who, vh, WR_PERM_READ, 1, wr_bytes_of(qname), &rp) != 0) {
        wr_api_op_failed(c, &rp);
        return;
    }
    wr_queue_t *q = wr_op_find_queue(vh, wr_bytes_of(qname), &who, &rp);
    if (q == NULL) {
        char text[400];
        snprintf(text, sizeof text, "NOT_FOUND - %s", rp.text);
        if (rp.code == WR_AMQP_NOT_FOUND)
            wr_api_error(c, 404, "not_found", text);
        else
            wr_api_op_failed(c, &rp);
        return;
    }
    /* Take them all first, then settle: requeued ones go back to their
     * places, so each get returns count distinct messages. */
    json_t *out = json_array();
    size_t cap = count > 0 && count < 100000 ? (size_t)count : 0;
    wr_qent_t *taken = cap ? malloc(cap * sizeof *taken) : NULL;
    size_t k = 0;
    while (k < cap && wr_queue_pop(q, &taken[k])) {
        wr_queue_out(q, &taken[k]);
        q->st.n[how == 0 ? WR_ST_GET : WR_ST_GET_NO_ACK]++;
        json_array_append_new(out, message_json(&taken[k], wr_queue_ready(q), b64, truncate));
        k++;
    }
    if (k == 0)
        q->st.n[WR_ST_GET_EMPTY]++;
    for (size_t i = 0; i < k; i++) {
        if (how == 0)
            wr_queue_requeue(q, &taken[i]);
        else if (how == 1)
            wr_queue_settle(q, &taken[i]);
        else
            wr_queue_discard(q, &taken[i]);
    }
    free(taken);
    wr_api_json(c, 200, out);
}

/* ---- bindings ---- */

static void binding(wr_api_ctx_t *c, wr_vhost_t *vh)
{
    const char *src = strcmp(c->seg[3], "amq.default") == 0 ? "" : c->seg[3];
    int to_q = strcmp(c->seg[4], "q") == 0;
    const char *dst = c->seg[5];
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    if (is(c, "POST")) {
        json_t *b = wr_api_body(c);
        if (b == NULL)
            return;
        if (*src == '\0') {
            wr_api_refused(c, "Access refused.");
            json_decref(b);
            return;
        }
        const char *rk = str(b, "routing_key") ? str(b, "routing_key") : "";
        wr_buf_t args;
        table_of(json_object_get(b, "arguments"), &args);
        if (wr_vhost_exchange(vh, wr_bytes_of(src)) == NULL ||
            (to_q ? (void *)wr_vhost_queue(vh, wr_bytes_of(dst))
                  : (void *)wr_vhost_exchange(vh, wr_bytes_of(dst))) == NULL) {
            char text[600];
            if (wr_vhost_exchange(vh, wr_bytes_of(src)) == NULL)
                snprintf(text, sizeof text, "no exchange '%s' in vhost '%s'", src, vh->name);
            else
                snprintf(text, sizeof text, "no %s '%s' in vhost '%s'", to_q ? "queue" : "exchange",
                         dst, vh->name);
            wr_api_error(c, 404, "not_found", text);
        } else if (wr_op_bind(vh, 1, wr_bytes_of(src), to_q, wr_bytes_of(dst), wr_bytes_of(rk),
                              (wr_bytes_t){args.p, args.len}, &who, &rp) != 0) {
            wr_api_op_failed(c, &rp);
        } else {
            char pk[800], loc[300];
            wr_api_props_key(wr_bytes_of(rk), (wr_bytes_t){args.p, args.len}, pk, sizeof pk);
            /* The Location names the binding relative to the request, its
             * properties key URL-encoded once more. */
            size_t o = 0;
            for (const char *p = pk; *p && o + 4 < sizeof loc; p++)
                o += (size_t)(*p == '%' || *p == '+'
                                  ? snprintf(loc + o, sizeof loc - o, "%%%02X", (unsigned char)*p)
                                  : snprintf(loc + o, sizeof loc - o, "%c", *p));
            loc[o] = '\0';
            snprintf(c->r->headers, sizeof c->r->headers, "Location: %s/%s\r\n", c->raw[5], loc);
            wr_api_empty(c, 201);
        }
        wr_buf_free(&args);
        json_decref(b);
        return;
    }
    /* DELETE by properties key. */
    wr_exchange_t *x = wr_vhost_exchange(vh, wr_bytes_of(src));
    if (x == NULL) {
        wr_api_not_found(c);
        return;
    }
    for (const wr_binding_t *b = x->bindings; b; b = b->src_next) {
        if ((b->dq != NULL) != to_q)
            continue;
        const char *dn = b->dq ? b->dq->name : b->dx->name;
        size_t dl = b->dq ? b->dq->name_len : b->dx->name_len;
        if (!wr_bytes_eq_str((wr_bytes_t){(const uint8_t *)dn, dl}, dst))
            continue;
        char pk[800];
        wr_bytes_t key = {(const uint8_t *)b->key, b->key_len};
        wr_bytes_t args = {b->args.p, b->args.len};
        wr_api_props_key(key, args, pk, sizeof pk);
        if (strcmp(pk, c->seg[6]) != 0)
            continue;
        if (wr_op_bind(vh, 0, wr_bytes_of(src), to_q, wr_bytes_of(dst), key, args, &who, &rp) != 0)
            wr_api_op_failed(c, &rp);
        else
            wr_api_empty(c, 204);
        return;
    }
    wr_api_not_found(c);
}

/* ---- users, vhosts, permissions, policies, limits ---- */

static int ctl_ok(wr_api_ctx_t *c, json_t *reply)
{
    if (reply == NULL)
        return 1;
    wr_api_ctl_failed(c, reply);
    return 0;
}

static char *tags_text(const json_t *t)
{
    if (json_is_string(t))
        return strdup(json_string_value(t));
    wr_buf_t b;
    wr_buf_init(&b);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (!json_is_string(v))
            continue;
        if (b.len)
            wr_buf_put(&b, ",", 1);
        wr_buf_put(&b, json_string_value(v), json_string_length(v));
    }
    wr_buf_put_u8(&b, 0);
    return (char *)b.p;
}

static void put_user(wr_api_ctx_t *c, const char *name)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    json_t *tv = json_object_get(b, "tags");
    if (tv == NULL || !(json_is_string(tv) || json_is_array(tv))) {
        wr_api_bad(c, "tags_not_present");
        json_decref(b);
        return;
    }
    char *tags = tags_text(tv);
    int existed = wr_access_user(wr_bytes_of(name)) != NULL;
    const char *pw = str(b, "password");
    const char *hash = str(b, "password_hash");
    json_t *reply = NULL;
    if (hash) {
        /* A hash is what definitions carry: import this one user. */
        json_t *d = json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "users", "name", name, "password_hash",
                              hash, "hashing_algorithm",
                              str(b, "hashing_algorithm") ? str(b, "hashing_algorithm")
                                                          : "rabbit_password_hashing_sha256",
                              "tags", tags);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        reply = wr_api_ctl("import_definitions", NULL, json_pack("[s]", text), NULL);
        free(text);
    } else if (!existed) {
        /* Without a password: a random one nobody knows (RabbitMQ also
         * generates a hash). */
        char rnd[33];
        unsigned char raw[16];
        FILE *f = fopen("/dev/urandom", "rb");
        if (f == NULL || fread(raw, 1, sizeof raw, f) != sizeof raw)
            memset(raw, 0x5a, sizeof raw);
        if (f)
            fclose(f);
        for (int i = 0; i < 16; i++)
            snprintf(rnd + 2 * i, 3, "%02x", raw[i]);
        reply = wr_api_ctl("add_user", NULL, json_pack("[s, s]", name, pw ? pw : rnd),
                           json_pack("{s:s}", "tags", tags));
    } else {
        if (pw)
            reply = wr_api_ctl("change_password", NULL, json_pack("[s, s]", name, pw), NULL);
        if (reply == NULL)
            reply = wr_api_ctl("set_user_tags", NULL, json_pack("[s, s]", name, tags), NULL);
    }
    free(tags);
    json_decref(b);
    if (ctl_ok(c, reply))
        wr_api_empty(c, existed ? 204 : 201);
}

static void delete_user(wr_api_ctx_t *c, const char *name)
{
    if (wr_access_user(wr_bytes_of(name)) == NULL) {
        wr_api_not_found(c);
        return;
    }
    if (ctl_ok(c, wr_api_ctl("delete_user", NULL, json_pack("[s]", name), NULL)))
        wr_api_empty(c, 204);
}

static void bulk_delete(wr_api_ctx_t *c)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    static const char *const need[] = {"users", NULL};
    if (missing(c, b, need)) {
        json_decref(b);
        return;
    }
    /* As RabbitMQ: the users that exist go, then an unknown one fails. */
    const char *unknown = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(b, "users"), i, v)
    {
        const char *name = json_string_value(v);
        if (name == NULL)
            continue;
        if (wr_access_user(wr_bytes_of(name)) == NULL) {
            unknown = unknown ? unknown : name;
            continue;
        }
        json_decref(wr_api_ctl("delete_user", NULL, json_pack("[s]", name), NULL));
    }
    if (unknown)
        wr_api_json(c, 400,
                    json_pack("{s:s, s:[s, s]}", "error", "bad_request", "reason", "no_such_user",
                              unknown));
    else
        wr_api_empty(c, 204);
    json_decref(b);
}

static void put_vhost(wr_api_ctx_t *c, const char *name)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(name));
    const char *desc = str(b, "description");
    json_t *tv = json_object_get(b, "tags");
    char *tags = tv ? tags_text(tv) : NULL;
    if (vh) {
        if (desc) {
            free(vh->description);
            vh->description = strdup(desc);
        }
        if (tags) {
            free(vh->tags);
            vh->tags = strdup(tags);
        }
        char err[300];
        if (wr_meta_save(err, sizeof err) != 0)
            wr_api_error(c, 500, "internal_error", err);
        else
            wr_api_empty(c, 204);
    } else {
        json_t *opts = json_object();
        if (desc)
            json_object_set_new(opts, "description", json_string(desc));
        if (tags)
            json_object_set_new(opts, "tags", json_string(tags));
        json_t *reply = wr_api_ctl("add_vhost", NULL, json_pack("[s]", name), opts);
        /* As RabbitMQ: the creating user gets full permissions on it. */
        if (reply == NULL)
            reply = wr_api_ctl("set_permissions", name,
                               json_pack("[s, s, s, s]", c->u->name, ".*", ".*", ".*"), NULL);
        if (ctl_ok(c, reply))
            wr_api_empty(c, 201);
    }
    free(tags);
    json_decref(b);
}

static void permissions(wr_api_ctx_t *c, int topic)
{
    const char *vhost = c->seg[1], *user = c->seg[2];
    wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost));
    wr_user_t *u = wr_access_user(wr_bytes_of(user));
    if (is(c, "DELETE")) {
        int has = vh && u &&
                  (topic ? wr_access_topic_list(u, vh->name) != NULL
                         : wr_access_perms(u, vh->name) != NULL);
        if (!has) {
            wr_api_not_found(c);
            return;
        }
        if (ctl_ok(c, wr_api_ctl(topic ? "clear_topic_permissions" : "clear_permissions", vhost,
                                 json_pack("[s]", user), NULL)))
            wr_api_empty(c, 204);
        return;
    }
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    if (vh == NULL || u == NULL) {
        wr_api_bad(c, "vhost_or_user_not_found");
        json_decref(b);
        return;
    }
    static const char *const need[] = {"configure", "write", "read", NULL};
    static const char *const tneed[] = {"exchange", "write", "read", NULL};
    if (missing(c, b, topic ? tneed : need)) {
        json_decref(b);
        return;
    }
    int existed =
        topic ? wr_access_topic_list(u, vh->name) != NULL : wr_access_perms(u, vh->name) != NULL;
    json_t *args = topic ? json_pack("[s, s, s, s]", user, str(b, "exchange"),
                                     str(b, "write") ?: "", str(b, "read") ?: "")
                         : json_pack("[s, s, s, s]", user, str(b, "configure") ?: "",
                                     str(b, "write") ?: "", str(b, "read") ?: "");
    json_decref(b);
    if (ctl_ok(c,
               wr_api_ctl(topic ? "set_topic_permissions" : "set_permissions", vhost, args, NULL)))
        wr_api_empty(c, existed ? 204 : 201);
}

static void policy(wr_api_ctx_t *c, int op)
{
    wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(c->seg[1]));
    if (vh == NULL) {
        wr_api_not_found(c);
        return;
    }
    if (op ? WR_API_ADMIN(c) != 0
           : wr_api_need(c, WR_TAG_ADMINISTRATOR | WR_TAG_POLICYMAKER,
                         "User not authorised to access object") != 0)
        return;
    if (!(c->u->flags & WR_TAG_ADMINISTRATOR) && !wr_access_vhost(c->u, vh)) {
        wr_api_refused(c, "User not authorised to access object");
        return;
    }
    const char *name = c->seg[2];
    const wr_policy_t *p = wr_policy_list(vh, op);
    while (p && strcmp(p->name, name) != 0)
        p = p->next;
    if (is(c, "DELETE")) {
        if (p == NULL) {
            wr_api_not_found(c);
            return;
        }
        if (ctl_ok(c, wr_api_ctl(op ? "clear_operator_policy" : "clear_policy", vh->name,
                                 json_pack("[s]", name), NULL)))
            wr_api_empty(c, 204);
        return;
    }
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    static const char *const need[] = {"pattern", "definition", NULL};
    if (missing(c, b, need)) {
        json_decref(b);
        return;
    }
    char *def = json_dumps(json_object_get(b, "definition"), JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *opts = json_object();
    json_t *pr = json_object_get(b, "priority");
    if (json_is_integer(pr)) {
        char t[32];
        snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(pr));
        json_object_set_new(opts, "priority", json_string(t));
    } else if (json_is_string(pr)) {
        json_object_set(opts, "priority", pr);
    }
    if (str(b, "apply-to"))
        json_object_set_new(opts, "apply-to", json_string(str(b, "apply-to")));
    int existed = p != NULL;
    json_t *reply = wr_api_ctl(
        op ? "set_operator_policy" : "set_policy", vh->name,
        json_pack("[s, s, s]", name, str(b, "pattern") ? str(b, "pattern") : "", def), opts);
    free(def);
    json_decref(b);
    if (ctl_ok(c, reply))
        wr_api_empty(c, existed ? 204 : 201);
}

static void limits(wr_api_ctx_t *c, int user)
{
    if (WR_API_ADMIN(c) != 0)
        return;
    const char *owner = c->seg[1], *name = c->seg[2];
    json_t *cur = json_object();
    wr_vhost_t *vh = NULL;
    wr_user_t *u = NULL;
    if (user) {
        if ((u = wr_access_user(wr_bytes_of(owner))) == NULL) {
            json_decref(cur);
            wr_api_json(c, 400,
                        json_pack("{s:s, s:[s, s]}", "error", "bad_request", "reason",
                                  "no_such_user", owner));
            return;
        }
        if (u->max_connections >= 0)
            json_object_set_new(cur, "max-connections", json_integer(u->max_connections));
        if (u->max_channels >= 0)
            json_object_set_new(cur, "max-channels", json_integer(u->max_channels));
    } else {
        if ((vh = wr_broker_vhost(wr_bytes_of(owner))) == NULL) {
            json_decref(cur);
            wr_api_not_found(c);
            return;
        }
        if (vh->max_connections >= 0)
            json_object_set_new(cur, "max-connections", json_integer(vh->max_connections));
        if (vh->max_queues >= 0)
            json_object_set_new(cur, "max-queues", json_integer(vh->max_queues));
    }
    if (is(c, "DELETE")) {
        json_object_del(cur, name);
    } else {
        json_t *b = wr_api_body(c);
        if (b == NULL) {
            json_decref(cur);
            return;
        }
        static const char *const need[] = {"value", NULL};
        if (missing(c, b, need)) {
            json_decref(b);
            json_decref(cur);
            return;
        }
        json_object_set(cur, name, json_object_get(b, "value"));
        json_decref(b);
    }
    char *text = json_dumps(cur, JSON_COMPACT);
    json_decref(cur);
    json_t *reply;
    if (user)
        reply = wr_api_ctl("set_user_limits", NULL, json_pack("[s, s]", owner, text), NULL);
    else
        reply = wr_api_ctl("set_vhost_limits", owner, json_pack("[s]", text), NULL);
    free(text);
    if (ctl_ok(c, reply))
        wr_api_empty(c, 204);
}

static void import_defs(wr_api_ctx_t *c)
{
    if (WR_API_ADMIN(c) != 0)
        return;
    const char *only = c->n == 2 ? c->seg[1] : NULL;
    if (only && wr_broker_vhost(wr_bytes_of(only)) == NULL) {
        wr_api_error(c, 404, "not_found", "vhost_not_found");
        return;
    }
    json_t *probe = json_loadb((const char *)c->q->body.p, c->q->body.len, 0, NULL);
    if (!json_is_object(probe)) {
        json_decref(probe);
        wr_api_bad(c, "failed_to_parse_json");
        return;
    }
    json_decref(probe);
    char err[1024];
    if (wr_defs_import((const char *)c->q->body.p, c->q->body.len, only, err, sizeof err) != 0)
        wr_api_bad(c, err);
    else
        wr_api_empty(c, 204);
}

static void close_connection(wr_api_ctx_t *c)
{
    for (wr_conn_t *k = wr_conn_first(); k; k = k->next) {
        char n[200];
        wr_info_conn_name(k, n, sizeof n);
        if (strcmp(n, c->seg[1]) != 0 || k->state < WR_CONN_START_OK || k->state > WR_CONN_OPEN)
            continue;
        if (!(c->u->flags & WR_TAG_ADMINISTRATOR) &&
            !(k->user && strcmp(k->user, c->u->name) == 0)) {
            wr_api_refused(c, "User not authorised to access object");
            return;
        }
        const char *why = c->q->reason[0] ? c->q->reason : "Closed via management plugin";
        wr_conn_error(k, WR_AMQP_CONNECTION_FORCED, 0, "%s", why);
        wr_api_empty(c, 204);
        return;
    }
    wr_api_not_found(c);
}

/* ---- dead letters: inspection, replay, move ---- */

static int replay_body(wr_api_ctx_t *c, wr_vhost_t *vh, const json_t *b, wr_replay_t *rp)
{
    memset(rp, 0, sizeof *rp);
    json_t *cnt = json_object_get(b, "count");
    if (cnt && !json_is_integer(cnt)) {
        wr_api_bad(c, "count must be an integer");
        return -1;
    }
    rp->max = cnt ? (size_t)json_integer_value(cnt) : 0;
    rp->reason = str(b, "reason");
    rp->from_queue = str(b, "queue");
    json_t *h = json_object_get(b, "header");
    if (json_is_object(h) && json_object_size(h) == 1) {
        const char *k;
        json_t *v;
        json_object_foreach(h, k, v)
        {
            rp->header = k;
            rp->header_value = json_is_string(v) ? json_string_value(v) : NULL;
            if (json_is_integer(v) || json_is_boolean(v)) {
                static char text[32];
                snprintf(text, sizeof text, "%s",
                         json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : "");
                if (json_is_integer(v))
                    snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                rp->header_value = text;
            }
        }
    }
    json_t *t = json_object_get(b, "target");
    if (json_is_object(t)) {
        if (str(t, "queue")) {
            rp->to_queue = wr_vhost_queue(vh, wr_bytes_of(str(t, "queue")));
            if (rp->to_queue == NULL) {
                wr_api_error(c, 404, "not_found", "target queue not found");
                return -1;
            }
        } else if (str(t, "exchange")) {
            rp->to_exchange = str(t, "exchange");
            rp->routing_key = str(t, "routing_key");
            if (wr_vhost_exchange(vh, wr_bytes_of(rp->to_exchange)) == NULL) {
                wr_api_error(c, 404, "not_found", "target exchange not found");
                return -1;
            }
        }
    }
    return 0;
}

static void dead_letters(wr_api_ctx_t *c, wr_vhost_t *vh, const char *qname)
{
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    if (wr_op_allowed(&who, vh, WR_PERM_READ, 1, wr_bytes_of(qname), &rp) != 0) {
        wr_api_op_failed(c, &rp);
        return;
    }
    wr_queue_t *q = wr_op_find_queue(vh, wr_bytes_of(qname), &who, &rp);
    if (q == NULL) {
        wr_api_op_failed(c, &rp);
        return;
    }
    /* warrenctl's list_dead_letters does the grouping. */
    json_t *req = json_pack("{s:s, s:s, s:[s], s:{}}", "command", "list_dead_letters", "vhost",
                            vh->name, "args", qname, "options");
    json_t *reply = wr_ctl_call(req);
    json_decref(req);
    json_t *out = json_array();
    json_t *cols = json_object_get(reply, "columns"), *row, *col;
    size_t i, j;
    json_array_foreach(json_object_get(reply, "rows"), i, row)
    {
        json_t *o = json_object();
        json_array_foreach(cols, j, col)
            json_object_set(o, json_string_value(col), json_array_get(row, j));
        json_array_append_new(out, o);
    }
    json_decref(reply);
    wr_api_json(c, 200, out);
}

static void replay_or_move(wr_api_ctx_t *c, wr_vhost_t *vh, const char *qname, int move)
{
    json_t *b = wr_api_body(c);
    if (b == NULL)
        return;
    wr_actor_t who = wr_api_actor(c);
    wr_reply_t rp;
    wr_replay_t spec;
    if (replay_body(c, vh, b, &spec) != 0) {
        json_decref(b);
        return;
    }
    if (move) {
        const char *dst = str(b, "destination");
        spec.to_queue = dst ? wr_vhost_queue(vh, wr_bytes_of(dst)) : NULL;
        if (spec.to_queue == NULL) {
            wr_api_error(c, 404, "not_found", "destination queue not found");
            json_decref(b);
            return;
        }
        spec.move = 1;
    }
    wr_queue_t *q = NULL;
    if (wr_op_allowed(&who, vh, WR_PERM_READ, 1, wr_bytes_of(qname), &rp) == 0)
        q = wr_op_find_queue(vh, wr_bytes_of(qname), &who, &rp);
    size_t done = 0;
    if (q == NULL || wr_replay_run(vh, q, &spec, &who, &done, &rp) != 0)
        wr_api_op_failed(c, &rp);
    else
        wr_api_json(c, 200, json_pack("{s:I}", move ? "moved" : "replayed", (json_int_t)done));
    json_decref(b);
}

/* ---- routing ---- */

int wr_api_write(wr_api_ctx_t *c)
{
    const char *s0 = c->seg[0];
    int n = c->n;
    if (strcmp(s0, "exchanges") == 0 || strcmp(s0, "queues") == 0 || strcmp(s0, "bindings") == 0) {
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(c->seg[1]));
        if (vh == NULL) {
            if (is(c, "PUT"))
                wr_api_error(c, 404, "not_found", "vhost_not_found");
            else if (is(c, "POST"))
                wr_api_refused(c, "Access refused."); /* as RabbitMQ */
            else
                wr_api_not_found(c);
            return 1;
        }
        if (!wr_api_sees(c->u, vh) ||
            (!(c->u->flags & WR_TAG_ADMINISTRATOR) && !wr_access_vhost(c->u, vh))) {
            wr_api_refused(c, "User not authorised to access virtual host");
            return 1;
        }
        if (strcmp(s0, "bindings") == 0) {
            binding(c, vh);
            return 1;
        }
        const char *name = c->seg[2];
        if (strcmp(s0, "exchanges") == 0) {
            const char *xn = strcmp(name, "amq.default") == 0 ? "" : name;
            if (n == 4) {
                publish(c, vh, name);
            } else if (is(c, "PUT")) {
                put_exchange(c, vh, name);
            } else {
                wr_actor_t who = wr_api_actor(c);
                wr_reply_t rp;
                if (wr_vhost_exchange(vh, wr_bytes_of(xn)) == NULL)
                    wr_api_not_found(c);
                else if (wr_op_exchange_delete(vh, wr_bytes_of(xn),
                                               wr_api_param_true(c, "if-unused"), &who, &rp) != 0)
                    wr_api_op_failed(c, &rp);
                else
                    wr_api_empty(c, 204);
            }
            return 1;
        }
        if (n == 3) {
            if (is(c, "PUT"))
                put_queue(c, vh, name);
            else
                delete_queue(c, vh, name);
        } else if (strcmp(c->seg[3], "contents") == 0) {
            wr_actor_t who = wr_api_actor(c);
            wr_reply_t rp;
            uint32_t count;
            if (wr_vhost_queue(vh, wr_bytes_of(name)) == NULL)
                wr_api_not_found(c);
            else if (wr_op_queue_purge(vh, wr_bytes_of(name), &who, &count, &rp) != 0)
                wr_api_op_failed(c, &rp);
            else
                wr_api_empty(c, 204);
        } else if (strcmp(c->seg[3], "get") == 0) {
            get_messages(c, vh, name);
        } else if (strcmp(c->seg[3], "replay") == 0) {
            replay_or_move(c, vh, name, 0);
        } else if (strcmp(c->seg[3], "move") == 0) {
            replay_or_move(c, vh, name, 1);
        } else {
            return 0;
        }
        return 1;
    }
    if (strcmp(s0, "connections") == 0) {
        close_connection(c);
        return 1;
    }
    if (strcmp(s0, "policies") == 0 || strcmp(s0, "operator-policies") == 0) {
        policy(c, s0[0] == 'o');
        return 1;
    }
    if (strcmp(s0, "vhost-limits") == 0 || strcmp(s0, "user-limits") == 0) {
        limits(c, s0[0] == 'u');
        return 1;
    }
    if (strcmp(s0, "definitions") == 0) {
        import_defs(c);
        return 1;
    }
    /* The rest is for administrators only. */
    if (WR_API_ADMIN(c) != 0)
        return 1;
    if (strcmp(s0, "users") == 0) {
        if (strcmp(c->seg[1], "bulk-delete") == 0)
            bulk_delete(c);
        else if (is(c, "PUT"))
            put_user(c, c->seg[1]);
        else
            delete_user(c, c->seg[1]);
        return 1;
    }
    if (strcmp(s0, "vhosts") == 0) {
        if (is(c, "PUT")) {
            put_vhost(c, c->seg[1]);
        } else if (wr_broker_vhost(wr_bytes_of(c->seg[1])) == NULL) {
            wr_api_not_found(c);
        } else if (ctl_ok(c, wr_api_ctl("delete_vhost", NULL, json_pack("[s]", c->seg[1]), NULL))) {
            wr_api_empty(c, 204);
        }
        return 1;
    }
    if (strcmp(s0, "permissions") == 0 || strcmp(s0, "topic-permissions") == 0) {
        permissions(c, s0[0] == 't');
        return 1;
    }
    return 0;
}

/* GET /api/queues/V/Q/dead-letters (routed here from the reads). */
void wr_api_dead_letters(wr_api_ctx_t *c)
{
    wr_vhost_t *vh = wr_api_vhost(c, c->seg[1]);
    if (vh)
        dead_letters(c, vh, c->seg[2]);
}
