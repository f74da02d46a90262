/* vhost.c - exchanges, bindings and routing within a virtual host (see vhost.h). */
#include "broker/vhost.h"

#include "broker/policy.h"

#include <stdio.h>
#include <stdlib.h>

#include "broker/headers.h"
#include "broker/persist.h"
#include "broker/policy.h"
#include "broker/replay.h"
#include "core/err.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

static const char *const extype_names[] = {"direct", "fanout", "topic", "headers",
                                           "x-consistent-hash"};

int wr_extype_parse(wr_bytes_t s)
{
    for (int i = 0; i <= WR_EX_LAST; i++)
        if (wr_bytes_eq_str(s, extype_names[i]))
            return i;
    return -1;
}

const char *wr_extype_name(wr_extype_t t)
{
    return extype_names[t];
}

wr_vhost_t *wr_vhost_new(const char *name)
{
    wr_vhost_t *vh = wr_xcalloc(1, sizeof *vh);
    vh->name = wr_xstrndup(name, strlen(name));
    vh->description = wr_xstrndup("", 0);
    vh->tags = wr_xstrndup("", 0);
    vh->max_connections = -1;
    vh->max_queues = -1;
    wr_map_init(&vh->exchanges);
    wr_map_init(&vh->queues);
    static const struct {
        const char *name;
        wr_extype_t type;
    } builtin[] = {
        {"", WR_EX_DIRECT},         {"amq.direct", WR_EX_DIRECT},   {"amq.fanout", WR_EX_FANOUT},
        {"amq.topic", WR_EX_TOPIC}, {"amq.headers", WR_EX_HEADERS}, {"amq.match", WR_EX_HEADERS},
    };
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        wr_exchange_t *x = wr_exchange_declare(vh, wr_bytes_of(builtin[i].name), builtin[i].type, 1,
                                               0, 0, (wr_bytes_t){NULL, 0});
        x->builtin = 1;
    }
    return vh;
}

void wr_vhost_free(wr_vhost_t *vh)
{
    wr_stats_vhost_gone(vh);
    wr_replay_store_synced(vh, UINT64_MAX, 0); /* nothing waits for it any more */
    /* Queues first: deleting them unbinds them from the exchanges. */
    wr_map_slot_t *s;
    while (vh->queues.count) {
        size_t i = 0;
        wr_map_next(&vh->queues, &i, &s);
        wr_queue_delete(s->value);
    }
    while (vh->exchanges.count) {
        size_t i = 0;
        wr_map_next(&vh->exchanges, &i, &s);
        wr_exchange_delete(s->value);
    }
    wr_policy_free_all(vh);
    wr_map_free(&vh->exchanges);
    wr_map_free(&vh->queues);
    wr_durable_free(&vh->durable);
    free(vh->name);
    free(vh->dir);
    free(vh->description);
    free(vh->tags);
    free(vh);
}

wr_exchange_t *wr_vhost_exchange(wr_vhost_t *vh, wr_bytes_t name)
{
    return wr_map_get(&vh->exchanges, name);
}

wr_queue_t *wr_vhost_queue(wr_vhost_t *vh, wr_bytes_t name)
{
    return wr_map_get(&vh->queues, name);
}

wr_exchange_t *wr_exchange_declare(wr_vhost_t *vh, wr_bytes_t name, wr_extype_t type, int durable,
                                   int auto_delete, int internal, wr_bytes_t args)
{
    wr_exchange_t *x = wr_xcalloc(1, sizeof *x);
    x->name = wr_xstrndup((const char *)name.p, name.n);
    x->name_len = name.n;
    x->vhost = vh;
    x->type = type;
    x->durable = (uint8_t)durable;
    x->auto_delete = (uint8_t)auto_delete;
    x->internal = (uint8_t)internal;
    wr_buf_init(&x->args_raw);
    wr_buf_put(&x->args_raw, args.p, args.n);
    wr_field_t f;
    if (args.n && wr_table_get(args, "alternate-exchange", &f) && f.type == 'S')
        x->alternate = wr_xstrndup((const char *)f.v.bytes.p, f.v.bytes.n);
    wr_map_init(&x->by_key);
    if (type == WR_EX_TOPIC)
        x->topic = wr_topic_new();
    if (type == WR_EX_CONSISTENT_HASH) {
        x->ring = wr_xmalloc(sizeof *x->ring);
        wr_chash_init(x->ring);
        /* Declare has validated the arguments; anything else here (a
         * recovered exchange from before validation) hashes the key. */
        if (args.n && wr_table_get(args, "hash-header", &f) && f.type == 'S') {
            x->hash_header = wr_xstrndup((const char *)f.v.bytes.p, f.v.bytes.n);
            x->hash_on = WR_CH_HEADER;
        } else if (args.n && wr_table_get(args, "hash-property", &f) && f.type == 'S') {
            if (wr_bytes_eq_str(f.v.bytes, "message_id"))
                x->hash_on = WR_CH_MESSAGE_ID;
            else if (wr_bytes_eq_str(f.v.bytes, "correlation_id"))
                x->hash_on = WR_CH_CORRELATION_ID;
            else if (wr_bytes_eq_str(f.v.bytes, "timestamp"))
                x->hash_on = WR_CH_TIMESTAMP;
        }
    }
    wr_map_put(&vh->exchanges, name, x);
    vh->names_gen++;
    return x;
}

void wr_delay_queue_name(const wr_exchange_t *x, char *out, size_t outlen)
{
    snprintf(out, outlen, "amq.delayed.%.*s", (int)(x->name_len > 243 ? 243 : x->name_len),
             x->name);
}

wr_queue_t *wr_delay_queue(wr_exchange_t *x)
{
    char name[300];
    wr_delay_queue_name(x, name, sizeof name);
    return wr_vhost_queue(x->vhost, wr_bytes_of(name));
}

void wr_exchange_delete(wr_exchange_t *x)
{
    x->deleting = 1;
    if (x->delayed) {
        /* Its delayed messages go with it, as with RabbitMQ's plugin. */
        wr_queue_t *dq = wr_delay_queue(x);
        if (dq)
            wr_queue_delete(dq);
    }
    wr_persist_exchange_deleted(x);
    while (x->bindings)
        wr_binding_remove(x->bindings);
    while (x->dest_bindings)
        wr_binding_remove(x->dest_bindings);
    wr_map_del(&x->vhost->exchanges, (wr_bytes_t){(uint8_t *)x->name, x->name_len});
    x->vhost->names_gen++;
    wr_map_free(&x->by_key);
    if (x->topic)
        wr_topic_free(x->topic);
    if (x->ring) {
        wr_chash_free(x->ring);
        free(x->ring);
    }
    free(x->hash_header);
    wr_buf_free(&x->args_raw);
    free(x->alternate);
    free(x->name);
    free(x);
}

int wr_exchange_validate_args(int type, wr_bytes_t args, char *err, size_t errlen)
{
    if (type != WR_EX_CONSISTENT_HASH || args.n == 0)
        return 0;
    wr_field_t h, p;
    int has_h = wr_table_get(args, "hash-header", &h);
    int has_p = wr_table_get(args, "hash-property", &p);
    /* The plugin only understands long strings here; anything else makes
     * it fail with an internal error, so refuse it up front instead. */
    if ((has_h && h.type != 'S') || (has_p && p.type != 'S')) {
        snprintf(err, errlen, "%s must be a string",
                 has_h && h.type != 'S' ? "hash-header" : "hash-property");
        return -1;
    }
    if (has_h && has_p) {
        snprintf(err, errlen, "hash-header and hash-property are mutually exclusive");
        return -1;
    }
    if (has_p && !wr_bytes_eq_str(p.v.bytes, "message_id") &&
        !wr_bytes_eq_str(p.v.bytes, "correlation_id") && !wr_bytes_eq_str(p.v.bytes, "timestamp")) {
        snprintf(err, errlen, "Unsupported property: %.*s", (int)p.v.bytes.n,
                 (const char *)p.v.bytes.p);
        return -1;
    }
    return 0;
}

int wr_exchange_validate_binding(const wr_exchange_t *x, wr_bytes_t key, char *err, size_t errlen)
{
    if (x->type != WR_EX_CONSISTENT_HASH)
        return 0;
    uint32_t w;
    int rc = wr_chash_parse_weight(key, &w);
    if (rc == 0)
        return 0;
    /* The first two texts are the plugin's own (its ~p shows the key as an
     * Erlang binary); the upper bound is ours, to cap the ring's memory. */
    if (rc == WR_EINVAL)
        /* Erlang prints an empty binary as <<>>, others as <<"...">>. */
        snprintf(err, errlen,
                 key.n ? "The binding key must be an integer: <<\"%.*s\">>"
                       : "The binding key must be an integer: <<>>%.*s",
                 (int)key.n, (const char *)key.p);
    else if (key.n && key.p[0] != '-' && !(key.n == 1 && key.p[0] == '0'))
        snprintf(err, errlen, "The binding key must be at most %u", WR_CHASH_MAX_WEIGHT);
    else
        snprintf(err, errlen, "The binding key must be greater than 0");
    return -1;
}

/* Where a binding's ring points go: a function of the destination and the
 * key only, so the ring is the same after a restart or in any bind order. */
static uint64_t ring_seed(const wr_binding_t *b)
{
    uint8_t kind = b->dq ? 'q' : 'x';
    uint64_t h = wr_chash_hash(&kind, 1);
    if (b->dq)
        h = wr_chash_hash_more(h, (const uint8_t *)b->dq->name, b->dq->name_len);
    else
        h = wr_chash_hash_more(h, (const uint8_t *)b->dx->name, b->dx->name_len);
    return wr_chash_hash_more(h, (const uint8_t *)b->key, b->key_len);
}

int wr_exchange_in_use(const wr_exchange_t *x)
{
    return x->bindings != NULL;
}

static wr_bytes_t bkey(const wr_binding_t *b)
{
    return (wr_bytes_t){(const uint8_t *)b->key, b->key_len};
}

static wr_binding_t *find_binding(wr_exchange_t *src, wr_queue_t *dq, wr_exchange_t *dx,
                                  wr_bytes_t key, wr_bytes_t args)
{
    /* Walk the destination's list: it is usually the shorter one. */
    wr_binding_t *b = dq ? dq->bindings : dx->dest_bindings;
    for (; b; b = b->dst_next) {
        if (b->source == src && b->dq == dq && b->dx == dx && wr_bytes_eq(bkey(b), key) &&
            wr_bytes_eq((wr_bytes_t){b->args.p, b->args.len}, args))
            return b;
    }
    return NULL;
}

int wr_bind(wr_exchange_t *src, wr_queue_t *dq, wr_exchange_t *dx, wr_bytes_t key, wr_bytes_t args)
{
    if (find_binding(src, dq, dx, key, args))
        return 0;
    uint32_t weight = 0;
    if (src->type == WR_EX_CONSISTENT_HASH) {
        int rc = wr_chash_parse_weight(key, &weight);
        if (rc != 0)
            return rc;
    }
    wr_binding_t *b = wr_xcalloc(1, sizeof *b);
    b->source = src;
    b->dq = dq;
    b->dx = dx;
    b->key = wr_xstrndup((const char *)key.p, key.n);
    b->key_len = key.n;
    wr_buf_init(&b->args);
    wr_buf_put(&b->args, args.p, args.n);
    b->src_next = src->bindings;
    if (src->bindings)
        src->bindings->src_prev = b;
    src->bindings = b;
    wr_binding_t **dhead = dq ? &dq->bindings : &dx->dest_bindings;
    b->dst_next = *dhead;
    if (*dhead)
        (*dhead)->dst_prev = b;
    *dhead = b;
    src->n_bindings++;
    if (src->type == WR_EX_DIRECT) {
        b->key_next = wr_map_get(&src->by_key, key);
        wr_map_put(&src->by_key, key, b);
    } else if (src->type == WR_EX_TOPIC) {
        wr_topic_add(src->topic, key, b);
    } else if (src->type == WR_EX_CONSISTENT_HASH) {
        wr_chash_add(src->ring, b, ring_seed(b), weight);
    }
    wr_persist_binding(b, 1);
    return 0;
}

void wr_binding_remove(wr_binding_t *b)
{
    wr_exchange_t *src = b->source;
    wr_persist_binding(b, 0);
    if (src->type == WR_EX_DIRECT) {
        wr_binding_t *head = wr_map_get(&src->by_key, bkey(b));
        if (head == b) {
            if (b->key_next)
                wr_map_put(&src->by_key, bkey(b), b->key_next);
            else
                wr_map_del(&src->by_key, bkey(b));
        } else {
            while (head && head->key_next != b)
                head = head->key_next;
            if (head)
                head->key_next = b->key_next;
        }
    } else if (src->type == WR_EX_TOPIC) {
        wr_topic_remove(src->topic, bkey(b), b);
    } else if (src->type == WR_EX_CONSISTENT_HASH) {
        wr_chash_remove(src->ring, b);
    }
    if (b->src_prev)
        b->src_prev->src_next = b->src_next;
    else
        src->bindings = b->src_next;
    if (b->src_next)
        b->src_next->src_prev = b->src_prev;
    wr_binding_t **dhead = b->dq ? &b->dq->bindings : &b->dx->dest_bindings;
    if (b->dst_prev)
        b->dst_prev->dst_next = b->dst_next;
    else
        *dhead = b->dst_next;
    if (b->dst_next)
        b->dst_next->dst_prev = b->dst_prev;
    src->n_bindings--;
    free(b->key);
    wr_buf_free(&b->args);
    free(b);
    /* An auto-delete exchange goes when its last binding as source goes. */
    if (src->auto_delete && src->bindings == NULL && !src->builtin && !src->deleting)
        wr_exchange_delete(src);
}

int wr_unbind(wr_exchange_t *src, wr_queue_t *dq, wr_exchange_t *dx, wr_bytes_t key,
              wr_bytes_t args)
{
    wr_binding_t *b = find_binding(src, dq, dx, key, args);
    if (b == NULL)
        return WR_ENOTFOUND;
    wr_binding_remove(b);
    return 0;
}

/* ---- routing ---- */

typedef struct route_ctx {
    wr_vhost_t *vh;
    wr_bytes_t key;
    wr_bytes_t key0; /* the publish routing key, not a CC or BCC one */
    wr_bytes_t headers;
    wr_bytes_t props; /* encoded property list, or empty */
    wr_route_t *r;
    int depth;
} route_ctx_t;

static void route_x(route_ctx_t *c, wr_exchange_t *x);

static void add_queue(wr_route_t *r, wr_queue_t *q, uint64_t epoch)
{
    if (q->route_mark == epoch)
        return;
    q->route_mark = epoch;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->q = wr_xrealloc(r->q, r->cap * sizeof *r->q);
    }
    r->q[r->n++] = q;
}

static void add_dest(route_ctx_t *c, wr_binding_t *b)
{
    if (b->dq)
        add_queue(c->r, b->dq, c->vh->route_epoch);
    else
        route_x(c, b->dx);
}

static void topic_cb(void *dest, void *ctx)
{
    add_dest(ctx, dest);
}

/* Hashes one header value.  Strings hash their bytes and integers their
 * decimal text, so 42 and "42" pick the same queue; other types hash their
 * type octet and value, which is stable for equal values. */
static uint64_t hash_field(const wr_field_t *f)
{
    char num[24];
    int64_t iv;
    if (f->type == 'S' || f->type == 'x' || f->type == 'A' || f->type == 'F')
        return wr_chash_hash(f->v.bytes.p, f->v.bytes.n);
    if (f->type != 't' && wr_field_int(f, &iv)) {
        int n = snprintf(num, sizeof num, "%lld", (long long)iv);
        return wr_chash_hash((const uint8_t *)num, (size_t)n);
    }
    uint8_t raw[1 + sizeof f->v];
    memset(raw, 0, sizeof raw);
    raw[0] = f->type;
    if (f->type == 'T')
        memcpy(raw + 1, &f->v.u, sizeof f->v.u);
    else if (f->type == 'f')
        memcpy(raw + 1, &f->v.f, sizeof f->v.f);
    else if (f->type == 'd')
        memcpy(raw + 1, &f->v.d, sizeof f->v.d);
    else if (f->type == 'D') {
        raw[1] = f->v.dec.scale;
        memcpy(raw + 2, &f->v.dec.value, sizeof f->v.dec.value);
    } else if (f->type == 't')
        raw[1] = (uint8_t)(f->v.i != 0);
    return wr_chash_hash(raw, sizeof raw);
}

/* The hash an x-consistent-hash exchange routes c's message by; 0 and *h
 * set, or -1 if the message has no value to route by (a missing hash
 * header).  Allocates nothing: the properties decode to views. */
static int chash_value(const route_ctx_t *c, const wr_exchange_t *x, uint64_t *h)
{
    if (x->hash_on == WR_CH_ROUTING_KEY) {
        /* The plugin hashes the first routing key only, so CC and BCC
         * keys go to the publish key's queue, not to queues of their own. */
        *h = wr_chash_hash(c->key0.p, c->key0.n);
        return 0;
    }
    wr_basic_props_t pr;
    memset(&pr, 0, sizeof pr);
    int need_props = x->hash_on != WR_CH_HEADER || c->headers.n == 0;
    if (need_props && c->props.n >= 2 && wr_props_decode(c->props.p, c->props.n, &pr) != 0)
        memset(&pr, 0, sizeof pr);
    if (x->hash_on == WR_CH_HEADER) {
        wr_bytes_t hd = c->headers.n ? c->headers : pr.headers;
        wr_field_t f;
        /* A missing header hashes as a fixed value, as the plugin of
         * RabbitMQ 3.10 does (it hashes 'undefined'): all such messages go
         * to one queue.  (3.13+ fails on them instead.) */
        if (hd.n == 0 || !wr_table_get(hd, x->hash_header, &f)) {
            *h = wr_chash_hash(NULL, 0);
            return 0;
        }
        *h = hash_field(&f);
        return 0;
    }
    /* A missing property hashes as a fixed value, like the plugin's
     * hash of 'undefined': all such messages go to one queue. */
    wr_bytes_t v = {NULL, 0};
    char ts[24];
    if (x->hash_on == WR_CH_MESSAGE_ID && (pr.flags & WR_PROP_MESSAGE_ID))
        v = pr.message_id;
    else if (x->hash_on == WR_CH_CORRELATION_ID && (pr.flags & WR_PROP_CORRELATION_ID))
        v = pr.correlation_id;
    else if (x->hash_on == WR_CH_TIMESTAMP && (pr.flags & WR_PROP_TIMESTAMP)) {
        /* The plugin hashes the timestamp's decimal text (in seconds). */
        int n = snprintf(ts, sizeof ts, "%llu", (unsigned long long)pr.timestamp);
        v = (wr_bytes_t){(const uint8_t *)ts, (size_t)n};
    }
    *h = wr_chash_hash(v.p, v.n);
    return 0;
}

static void route_x(route_ctx_t *c, wr_exchange_t *x)
{
    if (x->route_mark == c->vh->route_epoch)
        return;
    x->route_mark = c->vh->route_epoch;
    size_t before = c->r->n;
    if (x->name_len == 0) {
        wr_queue_t *q = wr_map_get(&c->vh->queues, c->key);
        if (q)
            add_queue(c->r, q, c->vh->route_epoch);
        return;
    }
    switch (x->type) {
    case WR_EX_DIRECT:
        for (wr_binding_t *b = wr_map_get(&x->by_key, c->key); b; b = b->key_next)
            add_dest(c, b);
        break;
    case WR_EX_FANOUT:
        for (wr_binding_t *b = x->bindings; b; b = b->src_next)
            add_dest(c, b);
        break;
    case WR_EX_TOPIC:
        wr_topic_match(x->topic, c->key, topic_cb, c);
        break;
    case WR_EX_HEADERS:
        for (wr_binding_t *b = x->bindings; b; b = b->src_next)
            if (wr_headers_match((wr_bytes_t){b->args.p, b->args.len}, c->headers))
                add_dest(c, b);
        break;
    case WR_EX_CONSISTENT_HASH: {
        uint64_t h;
        wr_binding_t *b;
        if (chash_value(c, x, &h) == 0 && (b = wr_chash_lookup(x->ring, h)) != NULL)
            add_dest(c, b);
        break;
    }
    }
    if (c->r->n == before && x->alternate) {
        wr_exchange_t *ae = wr_map_get(&c->vh->exchanges, wr_bytes_of(x->alternate));
        if (ae)
            route_x(c, ae);
    }
}

void wr_route(wr_vhost_t *vh, wr_exchange_t *x, wr_bytes_t key, wr_bytes_t headers,
              wr_bytes_t props, wr_route_t *r)
{
    vh->route_epoch++;
    route_ctx_t c = {vh, key, key, headers, props, r, 0};
    route_x(&c, x);
    /* CC and BCC headers name further routing keys on the same exchange. */
    if (headers.n == 0)
        return;
    static const char *const extra[] = {"CC", "BCC"};
    for (int i = 0; i < 2; i++) {
        wr_field_t f;
        if (!wr_table_get(headers, extra[i], &f) || f.type != 'A')
            continue;
        wr_table_iter_t it;
        wr_table_iter_init(&it, f.v.bytes);
        wr_field_t e;
        while (wr_array_next(&it, &e) == 1) {
            if (e.type != 'S')
                continue;
            /* Re-arm the exchange for this key; queue marks are kept, so
             * each queue still gets the message once. */
            c.key = e.v.bytes;
            x->route_mark = 0;
            route_x(&c, x);
        }
    }
}

void wr_gen_name(const char *prefix, char *out, size_t outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
    size_t n = (size_t)snprintf(out, outlen, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && n + 1 < outlen; i++)
        out[n++] = alphabet[rnd[i] & 63];
    out[n] = '\0';
}
