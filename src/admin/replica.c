/* replica.c - the admin state through the cluster's metadata log (see
 * replica.h). */
#include "admin/replica.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/meta.h"
#include "broker/access.h"
#include "broker/cluster.h"
#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/policy.h"
#include "core/log.h"

/* The kinds, in the order their puts apply (a permission names a user and
 * a vhost); deletions go in the reverse order. */
static const char *const kinds[] = {
    "vhosts", "users", "permissions", "topic_permissions", "policies", "operator_policies"};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static json_t *last; /* the shared state after the last change seen */
static int applying;

static const char *str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* The fields that identify an object of each kind. */
static const char *const key_fields[][3] = {
    {"name", NULL, NULL},          {"name", NULL, NULL},    {"user", "vhost", NULL},
    {"user", "vhost", "exchange"}, {"vhost", "name", NULL}, {"vhost", "name", NULL},
};

static int same_key(size_t kind, const json_t *a, const json_t *b)
{
    for (size_t f = 0; f < 3 && key_fields[kind][f]; f++)
        if (strcmp(str_of(a, key_fields[kind][f]), str_of(b, key_fields[kind][f])) != 0)
            return 0;
    return 1;
}

static const json_t *find(const json_t *arr, size_t kind, const json_t *like)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (same_key(kind, o, like))
            return o;
    }
    return NULL;
}

/* Calls fn(kind, "put" or "del", object) for every object that differs
 * between from and to: puts in kind order, then deletions in reverse. */
static void diff(const json_t *from, const json_t *to,
                 void (*fn)(size_t kind, const char *op, const json_t *o, void *ud), void *ud)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        const json_t *a = json_object_get(from, kinds[k]), *b = json_object_get(to, kinds[k]);
        size_t i;
        json_t *o;
        json_array_foreach(b, i, o)
        {
            const json_t *old = find(a, k, o);
            if (old == NULL || !json_equal((json_t *)old, o))
                fn(k, "put", o, ud);
        }
    }
    for (size_t k = N_KINDS; k-- > 0;) {
        const json_t *a = json_object_get(from, kinds[k]), *b = json_object_get(to, kinds[k]);
        size_t i;
        json_t *o;
        json_array_foreach(a, i, o)
        {
            if (find(b, k, o) == NULL)
                fn(k, "del", o, ud);
        }
    }
}

/* ---- applying one object ---- */

static int64_t limit_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(json_object_get(o, "limits"), key);
    return v ? json_integer_value(v) : -1;
}

static char *tags_of(const json_t *o)
{
    const json_t *t = json_object_get(o, "tags");
    wr_buf_t b;
    wr_buf_init(&b);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (b.len)
            wr_buf_put(&b, ",", 1);
        const char *name = json_string_value(v);
        if (name)
            wr_buf_put(&b, name, strlen(name));
    }
    char *s = wr_xstrndup((const char *)b.p, b.len);
    wr_buf_free(&b);
    return s;
}

static void apply_one(size_t kind, const char *op, const json_t *o, void *ud)
{
    (void)ud;
    int del = strcmp(op, "del") == 0;
    char err[400] = "";
    int rc = 0;
    switch (kind) {
    case 0: { /* vhosts */
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(str_of(o, "name")));
        if (del) {
            if (vh)
                rc = wr_meta_vhost_delete(vh, err, sizeof err);
            break;
        }
        char *tags = tags_of(o);
        if (vh == NULL) {
            vh = wr_meta_vhost_create(str_of(o, "name"), str_of(o, "description"), tags, err,
                                      sizeof err);
            rc = vh ? 0 : -1;
        } else {
            free(vh->description);
            vh->description =
                wr_xstrndup(str_of(o, "description"), strlen(str_of(o, "description")));
            free(vh->tags);
            vh->tags = tags;
            tags = NULL;
        }
        free(tags);
        if (vh) {
            vh->max_connections = limit_of(o, "max-connections");
            vh->max_queues = limit_of(o, "max-queues");
        }
        break;
    }
    case 1: { /* users */
        wr_user_t *u = wr_access_user(wr_bytes_of(str_of(o, "name")));
        if (del) {
            if (u) {
                char text[300];
                snprintf(text, sizeof text, "user '%s' is deleted", u->name);
                wr_conn_close_user(u, WR_AMQP_CONNECTION_FORCED, text);
                wr_access_user_delete(u);
            }
            break;
        }
        char *tags = tags_of(o);
        const char *algo = json_string_value(json_object_get(o, "hashing_algorithm"));
        if (u == NULL) {
            u = wr_access_user_add_hashed(str_of(o, "name"), str_of(o, "password_hash"), algo, tags,
                                          err, sizeof err);
            rc = u ? 0 : -1;
        } else {
            rc = wr_access_set_hash(u, str_of(o, "password_hash"), algo, err, sizeof err);
            wr_access_set_tags(u, tags);
        }
        free(tags);
        if (u) {
            u->max_connections = limit_of(o, "max-connections");
            u->max_channels = limit_of(o, "max-channels");
        }
        break;
    }
    case 2:   /* permissions */
    case 3: { /* topic permissions */
        wr_user_t *u = wr_access_user(wr_bytes_of(str_of(o, "user")));
        if (u == NULL)
            break; /* deleted by a later command, or never here */
        if (kind == 2 && del)
            wr_access_set_perms(u, str_of(o, "vhost"), NULL, NULL, NULL, NULL, 0);
        else if (kind == 2)
            rc = wr_access_set_perms(u, str_of(o, "vhost"), str_of(o, "configure"),
                                     str_of(o, "write"), str_of(o, "read"), err, sizeof err);
        else if (del)
            wr_access_clear_topic(u, str_of(o, "vhost"), str_of(o, "exchange"));
        else
            rc = wr_access_set_topic(u, str_of(o, "vhost"), str_of(o, "exchange"),
                                     str_of(o, "write"), str_of(o, "read"), err, sizeof err);
        break;
    }
    default: { /* policies, operator policies */
        int opol = kind == 5;
        wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(str_of(o, "vhost")));
        if (vh == NULL)
            break;
        if (del) {
            wr_policy_clear(vh, opol, str_of(o, "name"));
            break;
        }
        char *def = json_dumps(json_object_get(o, "definition"), JSON_COMPACT);
        rc = wr_policy_set(vh, opol, str_of(o, "name"), str_of(o, "pattern"), def ? def : "{}",
                           json_integer_value(json_object_get(o, "priority")),
                           str_of(o, "apply-to"), err, sizeof err);
        free(def);
        break;
    }
    }
    if (rc != 0)
        wr_warn("cluster: cannot apply the %s of %s '%s%s': %s", op, kinds[kind], str_of(o, "name"),
                str_of(o, "user"), err);
}

/* Saves broker.json after applying; the state seen is now this one. */
static void applied(void)
{
    char err[300];
    if (wr_meta_save(err, sizeof err) != 0)
        wr_error("cluster: cannot save the admin state: %s", err);
    json_decref(last);
    last = wr_meta_state(0);
}

static void on_apply(const uint8_t *p, size_t n)
{
    json_error_t je;
    json_t *c = json_loadb((const char *)p, n, 0, &je);
    const char *op = str_of(c, "op"), *kind = str_of(c, "kind");
    json_t *o = json_object_get(c, "obj");
    size_t k = 0;
    while (k < N_KINDS && strcmp(kinds[k], kind) != 0)
        k++;
    if (c == NULL || k == N_KINDS || !json_is_object(o) ||
        (strcmp(op, "put") != 0 && strcmp(op, "del") != 0)) {
        wr_warn("cluster: skipping a malformed admin command");
        json_decref(c);
        return;
    }
    applying = 1;
    apply_one(k, op, o, NULL);
    applied();
    applying = 0;
    json_decref(c);
}

static void on_snapshot(wr_buf_t *out)
{
    json_t *st = wr_meta_state(0);
    char *text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(st);
    wr_buf_put(out, text, strlen(text));
    free(text);
}

static void on_restore(const uint8_t *p, size_t n)
{
    json_error_t je;
    json_t *target = json_loadb((const char *)p, n, 0, &je);
    if (target == NULL) {
        wr_warn("cluster: the metadata snapshot's admin state is malformed: %s", je.text);
        return;
    }
    json_t *now = wr_meta_state(0);
    applying = 1;
    diff(now, target, apply_one, NULL);
    applied();
    applying = 0;
    json_decref(now);
    json_decref(target);
}

/* ---- proposing ---- */

static void propose_one(size_t kind, const char *op, const json_t *o, void *ud)
{
    (void)ud;
    json_t *c = json_pack("{s:s, s:s, s:O}", "op", op, "kind", kinds[kind], "obj", (json_t *)o);
    char *text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(c);
    wr_cmeta_admin(text, strlen(text));
    free(text);
}

void wr_replica_changed(void)
{
    if (!wr_cluster_enabled() || applying || last == NULL)
        return;
    json_t *now = wr_meta_state(0);
    if (wr_cmeta_replicating())
        diff(last, now, propose_one, NULL);
    json_decref(last);
    last = now;
}

void wr_replica_start(void)
{
    if (!wr_cluster_enabled())
        return;
    last = wr_meta_state(0);
    wr_cmeta_admin_t a = {on_apply, on_snapshot, on_restore};
    wr_cmeta_set_admin(&a);
}

void wr_replica_stop(void)
{
    json_decref(last);
    last = NULL;
}
