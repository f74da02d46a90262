/* defs.c - definitions export and import (see defs.h). */
#include "admin/defs.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/json.h"
#include "admin/meta.h"
#include "broker/access.h"
#include "broker/args.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/policy.h"
#include "core/version.h"
#include "proto/table.h"

/* ---- AMQP tables <-> JSON ---- */

static void args_of(const json_t *o, wr_buf_t *out)
{
    wr_buf_init(out);
    json_t *a = json_object_get(o, "arguments");
    if (json_is_object(a))
        wr_json_put_table(out, a);
}

/* ---- export ---- */

static void export_vhost(wr_vhost_t *vh, json_t *root)
{
    json_t *qs = json_object_get(root, "queues"), *xs = json_object_get(root, "exchanges"),
           *bs = json_object_get(root, "bindings"), *ps = json_object_get(root, "policies"),
           *params = json_object_get(root, "parameters");
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        const wr_queue_t *q = sl->value;
        if (q->exclusive || q->delay)
            continue;
        json_array_append_new(
            qs, json_pack("{s:s%, s:s, s:b, s:b, s:o, s:s}", "name", q->name, q->name_len, "vhost",
                          vh->name, "durable", q->durable, "auto_delete", q->auto_delete,
                          "arguments", wr_json_table((wr_bytes_t){q->args_raw.p, q->args_raw.len}),
                          "type", "classic"));
    }
    i = 0;
    while (wr_map_next(&vh->exchanges, &i, &sl)) {
        const wr_exchange_t *x = sl->value;
        if (!x->builtin) {
            /* RabbitMQ 3.10 writes "internal" only... never: keep its shape
             * and add the key only for an internal exchange. */
            json_t *xo = json_pack(
                "{s:s%, s:s, s:s, s:b, s:b, s:o}", "name", x->name, x->name_len, "vhost", vh->name,
                "type", x->delayed ? "x-delayed-message" : wr_extype_name(x->type), "durable",
                x->durable, "auto_delete", x->auto_delete, "arguments",
                wr_json_table((wr_bytes_t){x->args_raw.p, x->args_raw.len}));
            if (x->internal)
                json_object_set_new(xo, "internal", json_true());
            json_array_append_new(xs, xo);
        }
        for (const wr_binding_t *b = x->bindings; b; b = b->src_next) {
            if (b->dq && (b->dq->exclusive || b->dq->delay))
                continue;
            json_array_append_new(
                bs, json_pack("{s:s%, s:s, s:s%, s:s, s:s%, s:o}", "source", x->name, x->name_len,
                              "vhost", vh->name, "destination", b->dq ? b->dq->name : b->dx->name,
                              b->dq ? b->dq->name_len : b->dx->name_len, "destination_type",
                              b->dq ? "queue" : "exchange", "routing_key", b->key, b->key_len,
                              "arguments", wr_json_table((wr_bytes_t){b->args.p, b->args.len})));
        }
    }
    for (const wr_policy_t *p = wr_policy_list(vh, 0); p; p = p->next)
        json_array_append_new(ps, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "vhost", vh->name,
                                            "name", p->name, "pattern", p->pattern.src, "apply-to",
                                            wr_policy_apply_to_name(p->apply_to), "definition",
                                            json_loads(p->definition, 0, NULL), "priority",
                                            (json_int_t)p->priority));
    for (const wr_policy_t *p = wr_policy_list(vh, 1); p; p = p->next) {
        /* RabbitMQ keeps operator policies as parameters.  Its 3.10
         * export writes their definition as a list of pairs, which its
         * own import then refuses ("definition must be a dictionary"):
         * warren writes an object, and reads either. */
        json_t *pairs = json_loads(p->definition, 0, NULL);
        json_array_append_new(
            params, json_pack("{s:s, s:s, s:s, s:{s:s, s:o, s:s, s:I}}", "component",
                              "operator_policy", "name", p->name, "vhost", vh->name, "value",
                              "apply-to", wr_policy_apply_to_name(p->apply_to), "definition", pairs,
                              "pattern", p->pattern.src, "priority", (json_int_t)p->priority));
    }
    if (vh->max_connections >= 0 || vh->max_queues >= 0) {
        json_t *lim = json_object();
        if (vh->max_connections >= 0)
            json_object_set_new(lim, "max-connections", json_integer(vh->max_connections));
        if (vh->max_queues >= 0)
            json_object_set_new(lim, "max-queues", json_integer(vh->max_queues));
        json_array_append_new(params, json_pack("{s:s, s:s, s:s, s:o}", "component", "vhost-limits",
                                                "name", "limits", "vhost", vh->name, "value", lim));
    }
}

json_t *wr_defs_export(const char *only)
{
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:s, s:[], s:[], s:[], s:[], s:[], s:[]}", "rabbit_version", "3.10.8",
        "rabbitmq_version", "3.10.8", "product_name", "warren", "product_version", WARREN_VERSION,
        "queues", "exchanges", "bindings", "policies", "parameters", "global_parameters");
    if (only) {
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(only));
        if (vh)
            export_vhost(vh, root);
        return root;
    }
    json_t *users = json_array(), *vhosts = json_array(), *perms = json_array(),
           *topic = json_array();
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));) {
        json_t *lim = json_object();
        if (u->max_connections >= 0)
            json_object_set_new(lim, "max-connections", json_integer(u->max_connections));
        if (u->max_channels >= 0)
            json_object_set_new(lim, "max-channels", json_integer(u->max_channels));
        json_array_append_new(users, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", u->name,
                                               "password_hash", u->hash ? u->hash : "",
                                               "hashing_algorithm", wr_access_algo_name(u->algo),
                                               "tags", wr_json_tags(u->tags), "limits", lim));
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&u->perms, &k, &sl)) {
            const wr_perms_t *p = sl->value;
            json_array_append_new(perms, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name,
                                                   "vhost", sl->key, "configure", p->p[0].src,
                                                   "write", p->p[1].src, "read", p->p[2].src));
        }
        k = 0;
        while (wr_map_next(&u->topic, &k, &sl))
            for (const wr_topic_perm_t *t = sl->value; t; t = t->next)
                json_array_append_new(topic, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name,
                                                       "vhost", sl->key, "exchange", t->exchange,
                                                       "write", t->write_src, "read", t->read_src));
    }
    i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        json_t *lim = json_array();
        if (vh->max_connections >= 0)
            json_array_append_new(
                lim, json_pack("[s, I]", "max-connections", (json_int_t)vh->max_connections));
        if (vh->max_queues >= 0)
            json_array_append_new(lim,
                                  json_pack("[s, I]", "max-queues", (json_int_t)vh->max_queues));
        json_array_append_new(vhosts, json_pack("{s:s, s:o, s:{s:s, s:o}}", "name", vh->name,
                                                "limits", lim, "metadata", "description",
                                                vh->description, "tags", wr_json_tags(vh->tags)));
        export_vhost(vh, root);
    }
    json_object_set_new(root, "users", users);
    json_object_set_new(root, "vhosts", vhosts);
    json_object_set_new(root, "permissions", perms);
    json_object_set_new(root, "topic_permissions", topic);
    return root;
}

/* ---- import ---- */

typedef struct ctx {
    const char *only; /* per-vhost import */
    char *err;
    size_t errlen;
    json_t *vhost_names; /* object: vhosts in the file */
    json_t *user_names;
} ctx_t;

static int bad(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const char *vhost_of(const ctx_t *c, const json_t *o)
{
    return c->only ? c->only : str(o, "vhost");
}

static int vhost_known(const ctx_t *c, const char *name)
{
    return name && (wr_broker_vhost(wr_bytes_of(name)) ||
                    (!c->only && json_object_get(c->vhost_names, name)));
}

static int user_known(const ctx_t *c, const char *name)
{
    return name &&
           (wr_access_user(wr_bytes_of(name)) || json_object_get(c->user_names, name) != NULL);
}

static const json_t *section(const json_t *root, const char *name, ctx_t *c, int *rc)
{
    json_t *s = json_object_get(root, name);
    if (s && !json_is_array(s))
        *rc = bad(c, "\"%s\" must be a list", name);
    return s;
}

/* Does the file (or the broker) have exchange name in vhost? */
static int exchange_known(const json_t *root, const ctx_t *c, const char *vh, const char *name)
{
    wr_vhost_t *v = wr_broker_vhost(wr_bytes_of(vh));
    if (v && wr_vhost_exchange(v, wr_bytes_of(name)))
        return 1;
    if (!v && (strcmp(name, "") == 0 || strncmp(name, "amq.", 4) == 0))
        return 1; /* a new vhost gets the predeclared ones */
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(root, "exchanges"), i, o)
    {
        const char *ov = vhost_of(c, o), *on = str(o, "name");
        if (ov && on && strcmp(ov, vh) == 0 && strcmp(on, name) == 0)
            return 1;
    }
    return 0;
}

static int queue_known(const json_t *root, const ctx_t *c, const char *vh, const char *name)
{
    wr_vhost_t *v = wr_broker_vhost(wr_bytes_of(vh));
    if (v && wr_vhost_queue(v, wr_bytes_of(name)))
        return 1;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(root, "queues"), i, o)
    {
        const char *ov = vhost_of(c, o), *on = str(o, "name");
        if (ov && on && strcmp(ov, vh) == 0 && strcmp(on, name) == 0)
            return 1;
    }
    return 0;
}

/* Operator policy values may be objects or lists of pairs. */
static char *definition_text(const json_t *d)
{
    if (json_is_array(d)) {
        json_t *o = json_object();
        size_t i;
        json_t *pair;
        json_array_foreach(d, i, pair) if (json_is_array(pair) && json_array_size(pair) == 2 &&
                                           json_is_string(json_array_get(pair, 0)))
            json_object_set(o, json_string_value(json_array_get(pair, 0)), json_array_get(pair, 1));
        char *t = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return t;
    }
    return json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int check_policy(ctx_t *c, const json_t *o, int op, const char *name, const char *pattern,
                        const json_t *def, const json_t *prio, const char *apply)
{
    char *text = def ? definition_text(def) : NULL;
    wr_vhost_t *scratch = wr_vhost_new("definitions-check");
    char e[600];
    int rc =
        text == NULL
            ? bad(c, "%s '%s': no definition", op ? "operator policy" : "policy", name ? name : "")
            : wr_policy_set(scratch, op, name, pattern, text, json_integer_value(prio),
                            apply ? apply : "all", e, sizeof e);
    if (rc != 0 && text)
        bad(c, "%s '%s' in vhost '%s': %s", op ? "operator policy" : "policy", name ? name : "",
            vhost_of(c, o) ? vhost_of(c, o) : "", e);
    wr_vhost_free(scratch);
    free(text);
    return rc;
}

static int check(const json_t *root, ctx_t *c)
{
    int rc = 0;
    size_t i;
    json_t *o;
    const json_t *users = section(root, "users", c, &rc), *vhosts = section(root, "vhosts", c, &rc),
                 *perms = section(root, "permissions", c, &rc),
                 *topic = section(root, "topic_permissions", c, &rc),
                 *pols = section(root, "policies", c, &rc),
                 *params = section(root, "parameters", c, &rc),
                 *qs = section(root, "queues", c, &rc), *xs = section(root, "exchanges", c, &rc),
                 *bs = section(root, "bindings", c, &rc);
    if (rc)
        return rc;
    if (!c->only) {
        json_array_foreach(vhosts, i, o)
        {
            const char *n = str(o, "name");
            if (n == NULL || *n == '\0')
                return bad(c, "vhost %zu has no name", i);
            json_object_set_new(c->vhost_names, n, json_true());
        }
        json_array_foreach(users, i, o)
        {
            const char *n = str(o, "name");
            if (n == NULL || *n == '\0')
                return bad(c, "user %zu has no name", i);
            char e[300];
            wr_user_t *u =
                wr_access_user_add_hashed("\001definitions-check", str(o, "password_hash"),
                                          str(o, "hashing_algorithm"), "", e, sizeof e);
            if (u == NULL)
                return bad(c, "user '%s': %s", n, strchr(e, ':') ? strchr(e, ':') + 2 : e);
            wr_access_user_delete(u);
            json_object_set_new(c->user_names, n, json_true());
        }
        const json_t *lists[2] = {perms, topic};
        for (int t = 0; t < 2; t++) {
            json_array_foreach(lists[t], i, o)
            {
                const char *u = str(o, "user"), *v = str(o, "vhost");
                if (!user_known(c, u))
                    return bad(c, "%s %zu: user '%s' does not exist",
                               t ? "topic_permissions" : "permissions", i, u ? u : "");
                if (!vhost_known(c, v))
                    return bad(c, "%s %zu: vhost '%s' does not exist",
                               t ? "topic_permissions" : "permissions", i, v ? v : "");
                const char *keys3[3] = {"configure", "write", "read"};
                for (int k = t; k < 3; k++) {
                    const char *pat = str(o, keys3[k]);
                    wr_pattern_t p = {0};
                    char e[300];
                    if (pat == NULL || wr_access_pattern_set(&p, pat, e, sizeof e) != 0)
                        return bad(c, "%s for user '%s' in vhost '%s': %s",
                                   t ? "topic permissions" : "permissions", u, v,
                                   pat ? e : "a pattern is missing");
                    free(p.src);
                    if (p.compiled)
                        regfree(&p.re);
                }
            }
        }
    }
    json_array_foreach(pols, i, o)
    {
        if (!vhost_known(c, vhost_of(c, o)))
            return bad(c, "policy '%s': vhost '%s' does not exist",
                       str(o, "name") ? str(o, "name") : "", vhost_of(c, o) ? vhost_of(c, o) : "");
        if (check_policy(c, o, 0, str(o, "name"), str(o, "pattern"),
                         json_object_get(o, "definition"), json_object_get(o, "priority"),
                         str(o, "apply-to")) != 0)
            return -1;
    }
    json_array_foreach(params, i, o)
    {
        const char *comp = str(o, "component");
        json_t *v = json_object_get(o, "value");
        if (comp == NULL || !vhost_known(c, vhost_of(c, o)))
            return bad(c, "parameter %zu: no component or unknown vhost", i);
        if (strcmp(comp, "operator_policy") == 0) {
            if (check_policy(c, o, 1, str(o, "name"), str(v, "pattern"),
                             json_object_get(v, "definition"), json_object_get(v, "priority"),
                             str(v, "apply-to")) != 0)
                return -1;
        } else if (strcmp(comp, "vhost-limits") == 0) {
            const char *k;
            json_t *lv;
            json_object_foreach(
                v, k, lv) if ((strcmp(k, "max-connections") != 0 && strcmp(k, "max-queues") != 0) ||
                              !json_is_integer(lv)) return bad(c,
                                                               "vhost limits of "
                                                               "'%s': '%s' is not "
                                                               "a limit",
                                                               vhost_of(c, o), k);
        }
        /* Other components (federation, shovels) are not warren's: skipped. */
    }
    json_array_foreach(xs, i, o)
    {
        const char *n = str(o, "name"), *v = vhost_of(c, o), *type = str(o, "type");
        if (n == NULL || !vhost_known(c, v))
            return bad(c, "exchange %zu: no name or unknown vhost", i);
        if (*n == '\0' || strncmp(n, "amq.", 4) == 0)
            continue; /* predeclared: skipped as RabbitMQ does */
        int t = type ? wr_extype_parse(wr_bytes_of(type)) : -1;
        if (t < 0 && !(type && strcmp(type, "x-delayed-message") == 0))
            return bad(c, "exchange '%s' in vhost '%s': unknown type '%s'", n, v, type ? type : "");
        wr_buf_t args;
        args_of(o, &args);
        char e[300];
        int arc = 0;
        if (t < 0) {
            wr_field_t dt;
            if (!(args.len && wr_table_get((wr_bytes_t){args.p, args.len}, "x-delayed-type", &dt) &&
                  dt.type == 'S' && wr_extype_parse(dt.v.bytes) >= 0))
                arc = -1, snprintf(e, sizeof e, "x-delayed-type must be an existing exchange type");
        } else {
            arc = wr_exchange_validate_args(t, (wr_bytes_t){args.p, args.len}, e, sizeof e);
        }
        wr_buf_free(&args);
        if (arc != 0)
            return bad(c, "exchange '%s' in vhost '%s': %s", n, v, e);
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(v));
        wr_exchange_t *x = vh ? wr_vhost_exchange(vh, wr_bytes_of(n)) : NULL;
        if (x && ((int)x->type != t || x->durable != json_is_true(json_object_get(o, "durable"))))
            return bad(c, "exchange '%s' in vhost '%s' exists with other properties", n, v);
    }
    json_array_foreach(qs, i, o)
    {
        const char *n = str(o, "name"), *v = vhost_of(c, o);
        if (n == NULL || *n == '\0' || !vhost_known(c, v))
            return bad(c, "queue %zu: no name or unknown vhost", i);
        const char *type = str(o, "type");
        if (type && strcmp(type, "classic") != 0)
            return bad(c, "queue '%s' in vhost '%s': type '%s' is not supported yet", n, v, type);
        wr_buf_t args;
        args_of(o, &args);
        wr_queue_args_t qa;
        char e[600];
        int prc = wr_queue_args_parse((wr_bytes_t){args.p, args.len}, wr_bytes_of(n), v, &qa, e,
                                      sizeof e);
        if (prc == 0)
            wr_queue_args_free(&qa);
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(v));
        wr_queue_t *q = vh ? wr_vhost_queue(vh, wr_bytes_of(n)) : NULL;
        char ent[600], why[800];
        snprintf(ent, sizeof ent, "queue '%s' in vhost '%s'", n, v);
        if (prc == 0 && q &&
            (q->durable != json_is_true(json_object_get(o, "durable")) ||
             !wr_args_equivalent((wr_bytes_t){q->args_raw.p, q->args_raw.len},
                                 (wr_bytes_t){args.p, args.len}, wr_queue_equiv_keys, ent, why,
                                 sizeof why)))
            prc = -1, snprintf(e, sizeof e, "it exists with other properties");
        wr_buf_free(&args);
        if (prc != 0)
            return bad(c, "%s: %s", ent, e);
    }
    json_array_foreach(bs, i, o)
    {
        const char *src = str(o, "source"), *dst = str(o, "destination"),
                   *dt = str(o, "destination_type"), *v = vhost_of(c, o);
        if (!src || !dst || !dt || !vhost_known(c, v))
            return bad(c, "binding %zu: source, destination, destination_type or vhost missing", i);
        if (*src == '\0')
            continue; /* the default exchange's implicit bindings */
        int to_q = strcmp(dt, "queue") == 0;
        if (!to_q && strcmp(dt, "exchange") != 0)
            return bad(c, "binding %zu: destination_type '%s'", i, dt);
        if (!exchange_known(root, c, v, src))
            return bad(c, "binding of '%s' to '%s' in vhost '%s': no exchange '%s'", src, dst, v,
                       src);
        if (to_q ? !queue_known(root, c, v, dst) : !exchange_known(root, c, v, dst))
            return bad(c, "binding of '%s' to '%s' in vhost '%s': no %s '%s'", src, dst, v,
                       to_q ? "queue" : "exchange", dst);
    }
    return 0;
}

static char *tags_csv(const json_t *t)
{
    wr_buf_t b;
    wr_buf_init(&b);
    if (json_is_string(t)) {
        wr_buf_put(&b, json_string_value(t), json_string_length(t));
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(t, i, v) if (json_is_string(v))
        {
            if (b.len)
                wr_buf_put(&b, ",", 1);
            wr_buf_put(&b, json_string_value(v), json_string_length(v));
        }
    }
    char *s = wr_xstrndup((const char *)b.p, b.len);
    wr_buf_free(&b);
    return s;
}

static void apply_vhost_limits(wr_vhost_t *vh, const json_t *lim)
{
    json_t *v;
    if (json_is_array(lim)) {
        size_t i;
        json_t *pair;
        json_array_foreach(lim, i, pair)
        {
            const char *k = json_string_value(json_array_get(pair, 0));
            v = json_array_get(pair, 1);
            if (k && strcmp(k, "max-connections") == 0)
                vh->max_connections = json_integer_value(v);
            else if (k && strcmp(k, "max-queues") == 0)
                vh->max_queues = json_integer_value(v);
        }
    } else if (json_is_object(lim)) {
        if ((v = json_object_get(lim, "max-connections")))
            vh->max_connections = json_integer_value(v);
        if ((v = json_object_get(lim, "max-queues")))
            vh->max_queues = json_integer_value(v);
    }
}

static int apply(const json_t *root, ctx_t *c)
{
    size_t i;
    json_t *o;
    char e[600];
    if (!c->only) {
        json_array_foreach(json_object_get(root, "vhosts"), i, o)
        {
            const char *n = str(o, "name");
            json_t *md = json_object_get(o, "metadata");
            const char *desc =
                str(md, "description") ? str(md, "description") : str(o, "description");
            char *tags = tags_csv(json_object_get(md, "tags") ? json_object_get(md, "tags")
                                                              : json_object_get(o, "tags"));
            wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(n));
            if (vh == NULL)
                vh = wr_meta_vhost_create(n, desc ? desc : "", tags, e, sizeof e);
            free(tags);
            if (vh == NULL)
                return bad(c, "vhost '%s': %s", n, e);
            apply_vhost_limits(vh, json_object_get(o, "limits"));
        }
        json_array_foreach(json_object_get(root, "users"), i, o)
        {
            const char *n = str(o, "name");
            char *tags = tags_csv(json_object_get(o, "tags"));
            wr_user_t *old = wr_access_user(wr_bytes_of(n));
            if (old) {
                /* As RabbitMQ: the file's hash and tags replace the user's. */
                wr_user_t *u =
                    wr_access_user_add_hashed("\001definitions-new", str(o, "password_hash"),
                                              str(o, "hashing_algorithm"), tags, e, sizeof e);
                if (u) {
                    free(old->hash);
                    old->hash = u->hash;
                    old->algo = u->algo;
                    u->hash = NULL;
                    wr_access_user_delete(u);
                    wr_access_set_tags(old, tags);
                }
            } else {
                wr_access_user_add_hashed(n, str(o, "password_hash"), str(o, "hashing_algorithm"),
                                          tags, e, sizeof e);
            }
            free(tags);
            wr_user_t *u = wr_access_user(wr_bytes_of(n));
            json_t *lim = json_object_get(o, "limits"), *v;
            if (u && (v = json_object_get(lim, "max-connections")))
                u->max_connections = json_integer_value(v);
            if (u && (v = json_object_get(lim, "max-channels")))
                u->max_channels = json_integer_value(v);
        }
        json_array_foreach(json_object_get(root, "permissions"), i, o)
        {
            wr_user_t *u = wr_access_user(wr_bytes_of(str(o, "user")));
            if (u)
                wr_access_set_perms(u, str(o, "vhost"), str(o, "configure"), str(o, "write"),
                                    str(o, "read"), e, sizeof e);
        }
        json_array_foreach(json_object_get(root, "topic_permissions"), i, o)
        {
            wr_user_t *u = wr_access_user(wr_bytes_of(str(o, "user")));
            if (u)
                wr_access_set_topic(u, str(o, "vhost"), str(o, "exchange"), str(o, "write"),
                                    str(o, "read"), e, sizeof e);
        }
    }
    json_array_foreach(json_object_get(root, "parameters"), i, o)
    {
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost_of(c, o)));
        const char *comp = str(o, "component");
        json_t *v = json_object_get(o, "value");
        if (vh && strcmp(comp, "vhost-limits") == 0) {
            apply_vhost_limits(vh, v);
        } else if (vh && strcmp(comp, "operator_policy") == 0) {
            char *text = definition_text(json_object_get(v, "definition"));
            wr_policy_set(vh, 1, str(o, "name"), str(v, "pattern"), text,
                          json_integer_value(json_object_get(v, "priority")),
                          str(v, "apply-to") ? str(v, "apply-to") : "all", e, sizeof e);
            free(text);
        }
    }
    json_array_foreach(json_object_get(root, "policies"), i, o)
    {
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost_of(c, o)));
        char *text = definition_text(json_object_get(o, "definition"));
        if (vh)
            wr_policy_set(vh, 0, str(o, "name"), str(o, "pattern"), text,
                          json_integer_value(json_object_get(o, "priority")),
                          str(o, "apply-to") ? str(o, "apply-to") : "all", e, sizeof e);
        free(text);
    }
    wr_actor_t op = {NULL, NULL};
    wr_reply_t r;
    json_array_foreach(json_object_get(root, "exchanges"), i, o)
    {
        const char *n = str(o, "name");
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost_of(c, o)));
        if (vh == NULL || *n == '\0' || strncmp(n, "amq.", 4) == 0)
            continue;
        wr_buf_t args;
        args_of(o, &args);
        wr_exchange_spec_t s = {wr_bytes_of(n),
                                wr_bytes_of(str(o, "type")),
                                0,
                                (uint8_t)json_is_true(json_object_get(o, "durable")),
                                (uint8_t)json_is_true(json_object_get(o, "auto_delete")),
                                (uint8_t)json_is_true(json_object_get(o, "internal")),
                                {args.p, args.len}};
        int rc = wr_op_exchange_declare(vh, &s, &op, &r);
        wr_buf_free(&args);
        if (rc != 0)
            return bad(c, "exchange '%s' in vhost '%s': %s", n, vh->name, r.text);
    }
    json_array_foreach(json_object_get(root, "queues"), i, o)
    {
        const char *n = str(o, "name");
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost_of(c, o)));
        if (vh == NULL)
            continue;
        wr_buf_t args;
        args_of(o, &args);
        wr_queue_spec_t s = {wr_bytes_of(n),
                             0,
                             (uint8_t)json_is_true(json_object_get(o, "durable")),
                             0,
                             (uint8_t)json_is_true(json_object_get(o, "auto_delete")),
                             {args.p, args.len},
                             1};
        wr_queue_t *q;
        int rc = wr_op_queue_declare(vh, &s, &op, &q, &r);
        wr_buf_free(&args);
        if (rc != 0)
            return bad(c, "queue '%s' in vhost '%s': %s", n, vh->name, r.text);
    }
    json_array_foreach(json_object_get(root, "bindings"), i, o)
    {
        const char *src = str(o, "source");
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(vhost_of(c, o)));
        if (vh == NULL || *src == '\0')
            continue;
        wr_buf_t args;
        args_of(o, &args);
        int to_q = strcmp(str(o, "destination_type"), "queue") == 0;
        const char *key = str(o, "routing_key");
        int rc = wr_op_bind(vh, 1, wr_bytes_of(src), to_q, wr_bytes_of(str(o, "destination")),
                            wr_bytes_of(key ? key : ""), (wr_bytes_t){args.p, args.len}, &op, &r);
        wr_buf_free(&args);
        if (rc != 0)
            return bad(c, "binding of '%s' to '%s' in vhost '%s': %s", src, str(o, "destination"),
                       vh->name, r.text);
    }
    return 0;
}

int wr_defs_import(const char *text, size_t len, const char *vhost, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errlen, "not valid JSON: %s (line %d, column %d)", je.text, je.line,
                 je.column);
        return -1;
    }
    ctx_t c = {vhost, err, errlen, json_object(), json_object()};
    int rc = json_is_object(root) ? check(root, &c) : bad(&c, "definitions must be an object");
    if (rc == 0)
        rc = apply(root, &c);
    if (rc == 0 && wr_meta_data_dir())
        rc = wr_meta_save(err, errlen);
    json_decref(c.vhost_names);
    json_decref(c.user_names);
    json_decref(root);
    return rc;
}

int wr_defs_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read it", path);
        return -1;
    }
    wr_buf_t b;
    wr_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        wr_buf_put(&b, chunk, n);
    fclose(f);
    char e[700];
    int rc = wr_defs_import((const char *)b.p, b.len, NULL, e, sizeof e);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, e);
    wr_buf_free(&b);
    return rc;
}
