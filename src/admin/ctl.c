/* ctl.c - the control socket and its commands (see ctl.h). */
#include "admin/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "admin/defs.h"
#include "admin/info.h"
#include "admin/json.h"
#include "admin/meta.h"
#include "broker/access.h"
#include "broker/cluster.h"
#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/quorum.h"
#include "broker/ops.h"
#include "broker/policy.h"
#include "broker/replay.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/version.h"
#include "net/tls.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

/* rabbitmqctl's exit statuses (sysexits.h). */
enum { EX_USAGE_ = 64, EX_DATAERR_ = 65, EX_NOUSER_ = 67, EX_UNAVAILABLE_ = 69, EX_SOFTWARE_ = 70 };

/* ---- replies ---- */

/* The info line of the command running ("Adding user ..."): rabbitmqctl
 * prints it on stdout first, whether the command then fails or not. */
static char cur_info[600];

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_info, sizeof cur_info, fmt, ap);
    va_end(ap);
}

static json_t *refuse(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A refusal: the text is what rabbitmqctl prints on stderr. */
static json_t *refuse(int exit_code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *r = json_pack("{s:b, s:s, s:i}", "ok", 0, "error", text, "exit", exit_code);
    if (cur_info[0])
        json_object_set_new(r, "info", json_string(cur_info));
    return r;
}

static json_t *action(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A successful action with its info line. */
static json_t *action(const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 1, "info", text);
}

/* ---- replies that come later ---- */

/* A command that must wait for other nodes (a quorum queue's membership
 * change runs at its leader) takes a `later` and returns NULL; the socket
 * client then gets the reply when later_end runs, and its further requests
 * wait behind it, so that replies stay in order.  Only the socket can wait:
 * elsewhere (the HTTP API) later_begin returns NULL. */
typedef struct later {
    struct client *c; /* NULL once the client has gone */
    char info[600];   /* the info line of the command, as it began */
    size_t pending;   /* parts still running (grow, shrink: one per queue) */
    json_t *rows;     /* their results, for a listing */
    json_t *reply;    /* a reply made, waiting for the metadata log */
} later_t;

static struct client *cur_client; /* the socket client whose request runs */
static later_t *later_begin(void);
static void later_end(later_t *l, json_t *reply);
static void later_cancel(later_t *l); /* a command that took one fails now */

/* ---- requests ---- */

typedef struct req {
    const char *command;
    const char *vhost;
    json_t *args;    /* array of strings */
    json_t *options; /* object */
} req_t;

static size_t nargs(const req_t *r)
{
    return json_array_size(r->args);
}

static const char *arg(const req_t *r, size_t i)
{
    return json_string_value(json_array_get(r->args, i));
}

static const char *opt(const req_t *r, const char *name)
{
    return json_string_value(json_object_get(r->options, name));
}

static int opt_true(const req_t *r, const char *name)
{
    json_t *v = json_object_get(r->options, name);
    return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

static wr_vhost_t *vhost_of(const req_t *r)
{
    return wr_broker_vhost(wr_bytes_of(r->vhost));
}

static json_t *no_vhost(const req_t *r)
{
    return refuse(EX_DATAERR_, "Virtual host '%s' does not exist", r->vhost);
}

/* For the commands that change a vhost's settings (set_permissions...). */
static json_t *no_vhost_69(const req_t *r)
{
    return refuse(EX_UNAVAILABLE_, "Error:\nVirtual host %s does not exist", r->vhost);
}

/* ---- values ---- */

static json_t *str_n(const void *p, size_t n)
{
    return json_stringn((const char *)p, n);
}

/* ---- listings ---- */

/* Projects the full info objects of a listing onto the requested columns
 * (or defaults), as rabbitmqctl does; an unknown column is refused. */
typedef json_t *(*info_fn)(void *obj, void *ctx);

typedef struct listing {
    const char *const *columns; /* every column, NULL-terminated */
    const char *const *defaults;
    json_t *rows;    /* built */
    json_t *picked;  /* column names */
    json_t *objects; /* info objects, in order */
} listing_t;

static int col_known(const char *const *cols, const char *name)
{
    for (; *cols; cols++)
        if (strcmp(*cols, name) == 0)
            return 1;
    return 0;
}

static json_t *listing_begin(listing_t *l, const req_t *r)
{
    l->picked = json_array();
    l->objects = json_array();
    if (nargs(r) == 0) {
        for (const char *const *c = l->defaults; *c; c++)
            json_array_append_new(l->picked, json_string(*c));
        return NULL;
    }
    for (size_t i = 0; i < nargs(r); i++) {
        const char *c = arg(r, i);
        if (c == NULL || !col_known(l->columns, c)) {
            wr_buf_t b;
            wr_buf_init(&b);
            for (const char *const *k = l->columns; *k; k++) {
                if (b.len)
                    wr_buf_put(&b, ", ", 2);
                wr_buf_put(&b, *k, strlen(*k));
            }
            json_t *e = refuse(EX_USAGE_, "Info key(s) %s are not supported. Valid keys are: %.*s",
                               c ? c : "?", (int)b.len, (const char *)b.p);
            wr_buf_free(&b);
            json_decref(l->picked);
            json_decref(l->objects);
            return e;
        }
        json_array_append_new(l->picked, json_string(c));
    }
    return NULL;
}

static json_t *listing_end(listing_t *l, const char *info)
{
    json_t *rows = json_array();
    size_t i, j;
    json_t *o, *c;
    json_array_foreach(l->objects, i, o)
    {
        json_t *row = json_array();
        json_array_foreach(l->picked, j, c)
        {
            json_t *v = json_object_get(o, json_string_value(c));
            json_array_append(row, v ? v : json_null());
        }
        json_array_append_new(rows, row);
    }
    json_decref(l->objects);
    json_t *reply = json_pack("{s:b, s:o, s:o}", "ok", 1, "columns", l->picked, "rows", rows);
    if (info)
        json_object_set_new(reply, "info", json_string(info));
    return reply;
}

static const char *const queue_cols[] = {"name",
                                         "durable",
                                         "auto_delete",
                                         "arguments",
                                         "policy",
                                         "operator_policy",
                                         "effective_policy_definition",
                                         "pid",
                                         "owner_pid",
                                         "exclusive",
                                         "exclusive_consumer_pid",
                                         "exclusive_consumer_tag",
                                         "messages_ready",
                                         "messages_unacknowledged",
                                         "messages",
                                         "message_bytes",
                                         "message_bytes_ready",
                                         "message_bytes_unacknowledged",
                                         "consumers",
                                         "memory",
                                         "state",
                                         "type",
                                         "leader",
                                         "members",
                                         "online",
                                         "messages_dlx",
                                         "message_bytes_dlx",
                                         NULL};
static const char *const queue_defaults[] = {"name", "messages", NULL};

static json_t *cmd_list_queues(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {queue_cols, queue_defaults, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    wr_map_t ub;
    wr_map_init(&ub);
    wr_info_unacked_bytes(&ub);
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        const wr_queue_t *q = sl->value;
        if (q->delay)
            continue; /* x-delayed-message's hidden queues */
        json_array_append_new(l.objects, wr_info_queue(q, &ub, 0));
    }
    wr_map_free(&ub);
    char info[300];
    snprintf(info, sizeof info, "Listing queues for vhost %s ...", vh->name);
    return listing_end(&l, info);
}

static const char *const exchange_cols[] = {"name",     "type",      "durable", "auto_delete",
                                            "internal", "arguments", "policy",  NULL};
static const char *const exchange_defaults[] = {"name", "type", NULL};

static json_t *cmd_list_exchanges(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {exchange_cols, exchange_defaults, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->exchanges, &i, &sl)) {
        json_array_append_new(l.objects, wr_info_exchange(sl->value, 0));
    }
    char info[300];
    snprintf(info, sizeof info, "Listing exchanges for vhost %s ...", vh->name);
    return listing_end(&l, info);
}

static const char *const binding_cols[] = {
    "source_name", "source_kind", "destination_name", "destination_kind", "routing_key",
    "arguments",   NULL};

static void binding_row(listing_t *l, const char *src, size_t src_n, const char *dst, size_t dst_n,
                        const char *kind, const char *key, size_t key_n, wr_bytes_t args)
{
    json_t *o = json_object();
    json_object_set_new(o, "source_name", str_n(src, src_n));
    json_object_set_new(o, "source_kind", json_string("exchange"));
    json_object_set_new(o, "destination_name", str_n(dst, dst_n));
    json_object_set_new(o, "destination_kind", json_string(kind));
    json_object_set_new(o, "routing_key", str_n(key, key_n));
    json_object_set_new(o, "arguments", wr_json_table(args));
    json_array_append_new(l->objects, o);
}

static json_t *cmd_list_bindings(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {binding_cols, binding_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    /* As RabbitMQ: the default exchange's implicit binding of each queue
     * first, then the real ones. */
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        const wr_queue_t *q = sl->value;
        if (!q->delay)
            binding_row(&l, "", 0, q->name, q->name_len, "queue", q->name, q->name_len,
                        (wr_bytes_t){NULL, 0});
    }
    i = 0;
    while (wr_map_next(&vh->exchanges, &i, &sl)) {
        const wr_exchange_t *x = sl->value;
        for (const wr_binding_t *b = x->bindings; b; b = b->src_next)
            binding_row(&l, x->name, x->name_len, b->dq ? b->dq->name : b->dx->name,
                        b->dq ? b->dq->name_len : b->dx->name_len, b->dq ? "queue" : "exchange",
                        b->key, b->key_len, (wr_bytes_t){b->args.p, b->args.len});
    }
    char info[300];
    snprintf(info, sizeof info, "Listing bindings for vhost %s...", vh->name);
    return listing_end(&l, info);
}

static const char *const conn_cols[] = {
    "pid",      "name",         "port",      "host",        "peer_port",         "peer_host",
    "ssl",      "state",        "channels",  "protocol",    "auth_mechanism",    "user",
    "vhost",    "timeout",      "frame_max", "channel_max", "client_properties", "recv_oct",
    "send_oct", "connected_at", NULL};
static const char *const conn_defaults[] = {"user", "peer_host", "peer_port", "state", NULL};

static json_t *cmd_list_connections(const req_t *r)
{
    listing_t l = {conn_cols, conn_defaults, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next)
        if (c->state >= WR_CONN_START_OK && c->state <= WR_CONN_OPEN)
            json_array_append_new(l.objects, wr_info_conn(c, 0));
    return listing_end(&l, "Listing connections ...");
}

static const char *const chan_cols[] = {"pid",
                                        "connection",
                                        "name",
                                        "number",
                                        "user",
                                        "vhost",
                                        "transactional",
                                        "confirm",
                                        "consumer_count",
                                        "messages_unacknowledged",
                                        "messages_uncommitted",
                                        "acks_uncommitted",
                                        "messages_unconfirmed",
                                        "prefetch_count",
                                        "global_prefetch_count",
                                        NULL};
static const char *const chan_defaults[] = {"pid", "user", "consumer_count",
                                            "messages_unacknowledged", NULL};

static json_t *cmd_list_channels(const req_t *r)
{
    listing_t l = {chan_cols, chan_defaults, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        if (c->state != WR_CONN_OPEN)
            continue;
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next)
            json_array_append_new(l.objects, wr_info_channel(ch, 0));
    }
    return listing_end(&l, "Listing channels ...");
}

static const char *const consumer_cols[] = {"queue_name",      "channel_pid",    "consumer_tag",
                                            "ack_required",    "prefetch_count", "active",
                                            "activity_status", "arguments",      NULL};

static json_t *cmd_list_consumers(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {consumer_cols, consumer_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        const wr_queue_t *q = sl->value;
        for (const wr_consumer_t *c = q->consumers; c; c = c->qnext)
            json_array_append_new(l.objects, wr_info_consumer(q, c));
    }
    char info[300];
    snprintf(info, sizeof info, "Listing consumers in vhost %s ...", vh->name);
    return listing_end(&l, info);
}

static const char *const user_cols[] = {"user", "tags", NULL};

static json_t *cmd_list_users(const req_t *r)
{
    listing_t l = {user_cols, user_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));)
        json_array_append_new(
            l.objects, json_pack("{s:s, s:o}", "user", u->name, "tags", wr_json_tags(u->tags)));
    return listing_end(&l, "Listing users ...");
}

static const char *const vhost_cols[] = {"name", "description", "tags", "tracing", NULL};
static const char *const vhost_defaults[] = {"name", NULL};

static json_t *cmd_list_vhosts(const req_t *r)
{
    listing_t l = {vhost_cols, vhost_defaults, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
        json_array_append_new(l.objects, json_pack("{s:s, s:s, s:o, s:b}", "name", vh->name,
                                                   "description", vh->description, "tags",
                                                   wr_json_tags(vh->tags), "tracing", 0));
    return listing_end(&l, "Listing vhosts ...");
}

static const char *const perm_cols[] = {"user", "configure", "write", "read", NULL};

static json_t *cmd_list_permissions(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {perm_cols, perm_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));) {
        const wr_perms_t *p = wr_access_perms(u, vh->name);
        if (p)
            json_array_append_new(l.objects, json_pack("{s:s, s:s, s:s, s:s}", "user", u->name,
                                                       "configure", p->p[0].src, "write",
                                                       p->p[1].src, "read", p->p[2].src));
    }
    char info[300];
    snprintf(info, sizeof info, "Listing permissions for vhost \"%s\" ...", vh->name);
    return listing_end(&l, info);
}

static wr_user_t *user_arg(const req_t *r, size_t i)
{
    const char *name = arg(r, i);
    return name ? wr_access_user(wr_bytes_of(name)) : NULL;
}

static json_t *no_user(const req_t *r, size_t i)
{
    return refuse(EX_NOUSER_, "Error:\nUser \"%s\" does not exist", arg(r, i) ? arg(r, i) : "");
}

/* set_permissions and its kind name the user without quotes. */
static json_t *no_user_bare(const req_t *r, size_t i)
{
    return refuse(EX_NOUSER_, "Error:\nUser %s does not exist", arg(r, i) ? arg(r, i) : "");
}

static json_t *usage(const char *cmd)
{
    return refuse(EX_USAGE_, "wrong number of arguments for %s (see warrenctl help %s)", cmd, cmd);
}

static const char *const uperm_cols[] = {"vhost", "configure", "write", "read", NULL};

static json_t *cmd_list_user_permissions(const req_t *r)
{
    if (nargs(r) != 1)
        return usage(r->command);
    info("Listing permissions for user \"%s\" ...", arg(r, 0) ? arg(r, 0) : "");
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return refuse(EX_UNAVAILABLE_, "Error:\n{:no_such_user, \"%s\"}",
                      arg(r, 0) ? arg(r, 0) : "");
    listing_t l = {uperm_cols, uperm_cols, NULL, NULL, NULL};
    req_t none = *r;
    none.args = NULL;
    listing_begin(&l, &none);
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&u->perms, &i, &sl)) {
        const wr_perms_t *p = sl->value;
        json_array_append_new(l.objects,
                              json_pack("{s:s, s:s, s:s, s:s}", "vhost", sl->key, "configure",
                                        p->p[0].src, "write", p->p[1].src, "read", p->p[2].src));
    }
    char info[300];
    snprintf(info, sizeof info, "Listing permissions for user \"%s\" ...", u->name);
    return listing_end(&l, info);
}

static const char *const tperm_cols[] = {"user", "exchange", "write", "read", NULL};

static json_t *cmd_list_topic_permissions(const req_t *r)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {tperm_cols, tperm_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));)
        for (const wr_topic_perm_t *t = wr_access_topic_list(u, vh->name); t; t = t->next)
            json_array_append_new(l.objects, json_pack("{s:s, s:s, s:s, s:s}", "user", u->name,
                                                       "exchange", t->exchange, "write",
                                                       t->write_src, "read", t->read_src));
    char info[300];
    snprintf(info, sizeof info, "Listing topic permissions for vhost \"%s\" ...", vh->name);
    return listing_end(&l, info);
}

/* ---- users ---- */

static json_t *saved(json_t *ok)
{
    char err[512];
    if (wr_meta_save(err, sizeof err) != 0) {
        json_decref(ok);
        return refuse(EX_SOFTWARE_, "%s", err);
    }
    return ok;
}

/* Tags are the arguments after the user: "a b" or "a,b". */
static char *tags_from_args(const req_t *r, size_t from)
{
    wr_buf_t b;
    wr_buf_init(&b);
    for (size_t i = from; i < nargs(r); i++) {
        const char *t = arg(r, i);
        for (const char *p = t ? t : ""; *p;) {
            size_t n = strcspn(p, ", ");
            if (n) {
                if (b.len)
                    wr_buf_put(&b, ",", 1);
                wr_buf_put(&b, p, n);
            }
            p += n;
            while (*p == ',' || *p == ' ')
                p++;
        }
    }
    char *s = wr_xstrndup((const char *)b.p, b.len);
    wr_buf_free(&b);
    return s;
}

static json_t *cmd_add_user(const req_t *r)
{
    if (nargs(r) != 2 || arg(r, 0) == NULL || arg(r, 1) == NULL)
        return usage(r->command);
    const char *name = arg(r, 0);
    info("Adding user \"%s\" ...", name);
    if (*name == '\0')
        return refuse(EX_USAGE_, "Error:\nuser cannot be an empty string");
    if (wr_access_user(wr_bytes_of(name)))
        return refuse(EX_SOFTWARE_, "Error:\nUser \"%s\" already exists", name);
    const char *tags = opt(r, "tags");
    wr_access_user_add(name, arg(r, 1), tags ? tags : "");
    json_t *ok = saved(action("Adding user \"%s\" ...", name));
    if (json_is_true(json_object_get(ok, "ok")))
        json_object_set_new(ok, "message",
                            json_string("Done. Don't forget to grant the user permissions to some "
                                        "virtual hosts! See 'warrenctl help set_permissions' to "
                                        "learn more."));
    return ok;
}

static json_t *cmd_delete_user(const req_t *r)
{
    if (nargs(r) != 1)
        return usage(r->command);
    info("Deleting user \"%s\" ...", arg(r, 0) ? arg(r, 0) : "");
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user(r, 0);
    char text[300];
    snprintf(text, sizeof text, "user '%s' is deleted", u->name);
    wr_conn_close_user(u, WR_AMQP_CONNECTION_FORCED, text);
    json_t *ok = action("Deleting user \"%s\" ...", u->name);
    wr_access_user_delete(u);
    return saved(ok);
}

static json_t *cmd_change_password(const req_t *r)
{
    if (nargs(r) != 2 || arg(r, 0) == NULL || arg(r, 1) == NULL)
        return usage(r->command);
    info("Changing password for user \"%s\" ...", arg(r, 0));
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user(r, 0);
    wr_access_set_password(u, arg(r, 1));
    return saved(action("Changing password for user \"%s\" ...", u->name));
}

static json_t *cmd_clear_password(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Clearing password for user \"%s\" ...", arg(r, 0));
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user(r, 0);
    wr_access_set_password(u, NULL);
    return saved(action("Clearing password for user \"%s\" ...", u->name));
}

static json_t *cmd_authenticate_user(const req_t *r)
{
    if (nargs(r) != 2 || arg(r, 1) == NULL)
        return usage(r->command);
    const char *name = arg(r, 0) ? arg(r, 0) : "";
    info("Authenticating user \"%s\" ...", name);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL || !wr_access_check_password(u, wr_bytes_of(arg(r, 1))))
        return refuse(EX_DATAERR_,
                      "Error:\nError: failed to authenticate user \"%s\"\nuser '%s' - %s", name,
                      name, u ? "invalid credentials" : "No such user");
    json_t *ok = action("Authenticating user \"%s\" ...", name);
    json_object_set_new(ok, "message", json_string("Success"));
    return ok;
}

static json_t *cmd_set_user_tags(const req_t *r)
{
    if (nargs(r) < 1 || arg(r, 0) == NULL)
        return usage(r->command);
    char *tags = tags_from_args(r, 1);
    wr_buf_t shown;
    wr_buf_init(&shown);
    for (const char *p = tags; *p; p++) {
        if (*p == ',')
            wr_buf_put(&shown, ", ", 2);
        else
            wr_buf_put(&shown, p, 1);
    }
    info("Setting tags for user \"%s\" to [%.*s] ...", arg(r, 0), (int)shown.len,
         (const char *)shown.p);
    wr_buf_free(&shown);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL) {
        free(tags);
        return no_user(r, 0);
    }
    wr_access_set_tags(u, tags);
    json_t *ok = action("%s", cur_info);
    free(tags);
    return saved(ok);
}

/* ---- vhosts ---- */

static json_t *cmd_add_vhost(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    const char *name = arg(r, 0);
    info("Adding vhost \"%s\" ...", name);
    if (*name == '\0')
        return refuse(EX_USAGE_, "Error:\nvhost cannot be an empty string");
    if (wr_broker_vhost(wr_bytes_of(name)))
        return action("%s", cur_info); /* as RabbitMQ: already there is fine */
    const char *desc = opt(r, "description");
    const char *tags = opt(r, "tags");
    char err[512];
    if (wr_meta_vhost_create(name, desc ? desc : "", tags ? tags : "", err, sizeof err) == NULL)
        return refuse(EX_SOFTWARE_, "%s", err);
    return action("Adding vhost \"%s\" ...", name);
}

static json_t *cmd_delete_vhost(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Deleting vhost \"%s\" ...", arg(r, 0));
    wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(arg(r, 0)));
    if (vh == NULL)
        return refuse(EX_DATAERR_, "Virtual host '%s' does not exist", arg(r, 0));
    json_t *ok = action("Deleting vhost \"%s\" ...", vh->name);
    char err[512];
    if (wr_meta_vhost_delete(vh, err, sizeof err) != 0) {
        json_decref(ok);
        return refuse(EX_SOFTWARE_, "%s", err);
    }
    return ok;
}

/* ---- permissions ---- */

static json_t *cmd_set_permissions(const req_t *r)
{
    if (nargs(r) != 4 || !arg(r, 0) || !arg(r, 1) || !arg(r, 2) || !arg(r, 3))
        return usage(r->command);
    info("Setting permissions for user \"%s\" in vhost \"%s\" ...", arg(r, 0), r->vhost);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user_bare(r, 0);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    char err[300];
    if (wr_access_set_perms(u, vh->name, arg(r, 1), arg(r, 2), arg(r, 3), err, sizeof err) != 0)
        return refuse(EX_UNAVAILABLE_, "Error:\n%s", err);
    return saved(
        action("Setting permissions for user \"%s\" in vhost \"%s\" ...", u->name, vh->name));
}

static json_t *cmd_clear_permissions(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Clearing permissions for user \"%s\" in vhost \"%s\" ...", arg(r, 0), r->vhost);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user_bare(r, 0);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    wr_access_set_perms(u, vh->name, NULL, NULL, NULL, NULL, 0);
    return saved(
        action("Clearing permissions for user \"%s\" in vhost \"%s\" ...", u->name, vh->name));
}

static json_t *cmd_set_topic_permissions(const req_t *r)
{
    if (nargs(r) != 4 || !arg(r, 0) || !arg(r, 1) || !arg(r, 2) || !arg(r, 3))
        return usage(r->command);
    info("Setting topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...", arg(r, 1),
         arg(r, 0), r->vhost);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user_bare(r, 0);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    char err[300];
    if (wr_access_set_topic(u, vh->name, arg(r, 1), arg(r, 2), arg(r, 3), err, sizeof err) != 0)
        return refuse(EX_UNAVAILABLE_, "Error:\n%s", err);
    return saved(action("Setting topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...",
                        arg(r, 1), u->name, vh->name));
}

static json_t *cmd_clear_topic_permissions(const req_t *r)
{
    if (nargs(r) != 1 && nargs(r) != 2)
        return usage(r->command);
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user_bare(r, 0);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    wr_access_clear_topic(u, vh->name, nargs(r) == 2 ? arg(r, 1) : NULL);
    return saved(action("Clearing topic permissions for user \"%s\" in vhost \"%s\" ...", u->name,
                        vh->name));
}

/* ---- queues and connections ---- */

static json_t *op_refused(const wr_reply_t *rp)
{
    return refuse(EX_SOFTWARE_, "Error:\n%s - %s", wr_amqp_reply_name(rp->code), rp->text);
}

/* ---- dead letters (warren) ---- */

static void group_cb(void *ctx, wr_bytes_t queue, wr_bytes_t reason, wr_bytes_t exchange)
{
    json_t *groups = ctx;
    if (queue.n == 0 && reason.n == 0)
        return;
    char key[800];
    snprintf(key, sizeof key, "%.*s\n%.*s\n%.*s", (int)queue.n, (const char *)queue.p,
             (int)reason.n, (const char *)reason.p, (int)exchange.n, (const char *)exchange.p);
    json_t *g = json_object_get(groups, key);
    if (g == NULL) {
        g = json_pack("{s:s%, s:s%, s:s%, s:i}", "queue", (const char *)queue.p, queue.n, "reason",
                      (const char *)reason.p, reason.n, "exchange", (const char *)exchange.p,
                      exchange.n, "count", 0);
        json_object_set_new(groups, key, g);
    }
    json_object_set_new(g, "count",
                        json_integer(json_integer_value(json_object_get(g, "count")) + 1));
}

static const char *const dl_cols[] = {"queue", "reason", "exchange", "count", NULL};

static json_t *cmd_list_dead_letters(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    wr_queue_t *q = wr_vhost_queue(vh, wr_bytes_of(arg(r, 0)));
    if (q == NULL)
        return refuse(EX_USAGE_, "Error:\nQueue not found");
    listing_t l = {dl_cols, dl_cols, NULL, NULL, NULL};
    req_t none = *r;
    none.args = NULL;
    listing_begin(&l, &none);
    json_t *groups = json_object();
    wr_replay_scan(q, 100000, group_cb, groups);
    const char *k;
    json_t *v;
    json_object_foreach(groups, k, v) json_array_append(l.objects, v);
    json_decref(groups);
    char info[400];
    snprintf(info, sizeof info, "Listing dead letters in queue '%s' in vhost '%s' ...", q->name,
             vh->name);
    return listing_end(&l, info);
}

static json_t *replay_common(const req_t *r, int move)
{
    if (nargs(r) != (size_t)(move ? 2 : 1) || arg(r, 0) == NULL || (move && arg(r, 1) == NULL))
        return usage(r->command);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    wr_queue_t *q = wr_vhost_queue(vh, wr_bytes_of(arg(r, 0)));
    if (q == NULL)
        return refuse(EX_USAGE_, "Error:\nQueue not found");
    wr_replay_t s = {0};
    const char *cnt = opt(r, "count");
    if (cnt) {
        char *end;
        long long n = strtoll(cnt, &end, 10);
        if (*cnt == '\0' || *end != '\0' || n < 0)
            return refuse(EX_USAGE_, "Error:\n--count must be a non-negative integer");
        s.max = (size_t)n;
    }
    char hname[256] = "";
    if (move) {
        s.move = 1;
        s.to_queue = wr_vhost_queue(vh, wr_bytes_of(arg(r, 1)));
        if (s.to_queue == NULL)
            return refuse(EX_USAGE_, "Error:\nDestination queue not found");
    } else {
        s.reason = opt(r, "reason");
        s.from_queue = opt(r, "from-queue");
        const char *h = opt(r, "header");
        if (h) {
            const char *eq = strchr(h, '=');
            snprintf(hname, sizeof hname, "%.*s", (int)(eq ? eq - h : (long)strlen(h)), h);
            s.header = hname;
            s.header_value = eq ? eq + 1 : NULL;
        }
        if (opt(r, "to-queue") &&
            (s.to_queue = wr_vhost_queue(vh, wr_bytes_of(opt(r, "to-queue")))) == NULL)
            return refuse(EX_USAGE_, "Error:\nTarget queue not found");
        s.to_exchange = opt(r, "to-exchange");
        s.routing_key = opt(r, "routing-key");
        if (s.to_exchange && wr_vhost_exchange(vh, wr_bytes_of(s.to_exchange)) == NULL)
            return refuse(EX_USAGE_, "Error:\nTarget exchange not found");
    }
    wr_actor_t who = {NULL, NULL};
    wr_reply_t rp;
    size_t done = 0;
    if (wr_replay_run(vh, q, &s, &who, &done, &rp) != 0)
        return op_refused(&rp);
    json_t *ok = move ? action("Moving messages from queue '%s' to '%s' in vhost '%s' ...",
                               arg(r, 0), arg(r, 1), vh->name)
                      : action("Replaying dead letters from queue '%s' in vhost '%s' ...",
                               arg(r, 0), vh->name);
    char msg[100];
    snprintf(msg, sizeof msg, "%s %zu messages", move ? "Moved" : "Replayed", done);
    json_object_set_new(ok, "message", json_string(msg));
    return ok;
}

static json_t *cmd_replay_dead_letters(const req_t *r)
{
    return replay_common(r, 0);
}

static json_t *cmd_move_messages(const req_t *r)
{
    return replay_common(r, 1);
}

static json_t *cmd_purge_queue(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Purging queue '%s' in vhost '%s' ...", arg(r, 0), r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    wr_actor_t who = {NULL, NULL};
    wr_reply_t rp;
    uint32_t n;
    if (wr_op_queue_purge(vh, wr_bytes_of(arg(r, 0)), &who, &n, &rp) != 0)
        return rp.code == WR_AMQP_NOT_FOUND ? refuse(EX_UNAVAILABLE_, "Error:\nnot_found")
                                            : op_refused(&rp);
    return action("Purging queue '%s' in vhost '%s' ...", arg(r, 0), vh->name);
}

static void count_cb(void *ctx, uint32_t count)
{
    *(uint32_t *)ctx = count;
}

static json_t *cmd_delete_queue(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    info("Deleting queue '%s' on vhost '%s' ...", arg(r, 0), vh->name);
    wr_bytes_t name = wr_bytes_of(arg(r, 0));
    if (wr_vhost_queue(vh, name) == NULL)
        return refuse(EX_USAGE_, "Error:\nQueue not found");
    wr_actor_t who = {NULL, NULL};
    wr_reply_t rp;
    uint32_t n = 0;
    /* The operator may delete an exclusive queue too. */
    wr_queue_t *q = wr_vhost_queue(vh, name);
    if (q->exclusive)
        who.conn = q->owner;
    if (wr_op_queue_delete(vh, name, opt_true(r, "if-unused"), opt_true(r, "if-empty"), &who,
                           count_cb, &n, &rp) != 0)
        return op_refused(&rp);
    json_t *ok = action("Deleting queue '%s' on vhost '%s' ...", arg(r, 0), vh->name);
    char msg[100];
    snprintf(msg, sizeof msg, "Queue was successfully deleted with %" PRIu32 " ready messages", n);
    json_object_set_new(ok, "message", json_string(msg));
    return ok;
}

static json_t *cmd_close_connection(const req_t *r)
{
    if (nargs(r) != 2 || !arg(r, 0) || !arg(r, 1))
        return usage(r->command);
    json_t *ok = action("Closing connection %s, reason: %s...", arg(r, 0), arg(r, 1));
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        char name[160];
        wr_info_conn_name(c, name, sizeof name);
        if (strcmp(name, arg(r, 0)) == 0 && c->state == WR_CONN_OPEN) {
            char text[300];
            snprintf(text, sizeof text, "Closed via management plugin: %s", arg(r, 1));
            wr_conn_error(c, WR_AMQP_CONNECTION_FORCED, 0, "%s", arg(r, 1));
            break;
        }
    }
    return ok;
}

static json_t *cmd_close_all_connections(const req_t *r)
{
    if (nargs(r) != 1 || !arg(r, 0))
        return usage(r->command);
    const char *only = json_object_get(r->options, "vhost") ? r->vhost : NULL;
    size_t n = 0;
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        if (c->state != WR_CONN_OPEN || (only && strcmp(c->vhost->name, only) != 0))
            continue;
        wr_conn_error(c, WR_AMQP_CONNECTION_FORCED, 0, "%s", arg(r, 0));
        n++;
    }
    return action("Closing all connections%s%s, reason: %s ... (%zu closed)",
                  only ? " in vhost " : "", only ? only : "", arg(r, 0), n);
}

/* ---- policies ---- */

static json_t *set_policy(const req_t *r, int op)
{
    if (nargs(r) != 3 || !arg(r, 0) || !arg(r, 1) || !arg(r, 2))
        return usage(r->command);
    const char *prio = opt(r, "priority");
    const char *apply = opt(r, "apply-to");
    info("Setting %s \"%s\" for pattern \"%s\" to \"%s\" with priority \"%s\" for vhost "
         "\"%s\" ...",
         op ? "operator policy override" : "policy", arg(r, 0), arg(r, 1), arg(r, 2),
         prio ? prio : "0", r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    char *end = NULL;
    long long pr = prio ? strtoll(prio, &end, 10) : 0;
    if (prio && (*prio == '\0' || *end != '\0'))
        return refuse(EX_UNAVAILABLE_,
                      "Error:\nValidation failed\n\n<<\"%s\">> is not a valid "
                      "priority\n",
                      prio);
    char err[700];
    if (wr_policy_set(vh, op, arg(r, 0), arg(r, 1), arg(r, 2), pr, apply ? apply : "all", err,
                      sizeof err) != 0)
        return refuse(EX_UNAVAILABLE_, "Error:\n%s", err);
    return saved(action("%s", cur_info));
}

static json_t *clear_policy(const req_t *r, int op)
{
    if (nargs(r) != 1 || !arg(r, 0))
        return usage(r->command);
    info("Clearing %s \"%s\" on vhost \"%s\" ...", op ? "operator policy" : "policy", arg(r, 0),
         r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    if (wr_policy_clear(vh, op, arg(r, 0)) != 0)
        return refuse(EX_UNAVAILABLE_, "Error:\nParameter does not exist");
    return saved(action("%s", cur_info));
}

static const char *const policy_cols[] = {"vhost",      "name",     "pattern", "apply-to",
                                          "definition", "priority", NULL};

static json_t *list_policies(const req_t *r, int op)
{
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    listing_t l = {policy_cols, policy_cols, NULL, NULL, NULL};
    json_t *e = listing_begin(&l, r);
    if (e)
        return e;
    for (const wr_policy_t *p = wr_policy_list(vh, op); p; p = p->next)
        json_array_append_new(l.objects,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "vhost", vh->name, "name",
                                        p->name, "pattern", p->pattern.src, "apply-to",
                                        wr_policy_apply_to_name(p->apply_to), "definition",
                                        p->definition, "priority", (json_int_t)p->priority));
    char text[300];
    snprintf(text, sizeof text, "Listing %s for vhost \"%s\" ...",
             op ? "operator policy overrides" : "policies", vh->name);
    return listing_end(&l, text);
}

static json_t *cmd_set_policy(const req_t *r)
{
    return set_policy(r, 0);
}

static json_t *cmd_set_operator_policy(const req_t *r)
{
    return set_policy(r, 1);
}

static json_t *cmd_clear_policy(const req_t *r)
{
    return clear_policy(r, 0);
}

static json_t *cmd_clear_operator_policy(const req_t *r)
{
    return clear_policy(r, 1);
}

static json_t *cmd_list_policies(const req_t *r)
{
    return list_policies(r, 0);
}

static json_t *cmd_list_operator_policies(const req_t *r)
{
    return list_policies(r, 1);
}

/* ---- limits ---- */

/* Parses a limits object with keys among allowed (NULL-terminated) and
 * integer values; NULL with the refusal in *refusal. */
static json_t *parse_limits(const char *text, const char *const *allowed, json_t **refusal)
{
    json_t *o = json_loads(text, JSON_DECODE_ANY, NULL);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        *refusal = refuse(EX_UNAVAILABLE_, "Error:\nJSON decoding error. Reason: badarg");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = json_is_integer(v);
        for (const char *const *a = allowed; ok && *a; a++)
            if (strcmp(*a, k) == 0)
                ok = 2;
        if (ok != 2) {
            char *term = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            *refusal = refuse(EX_UNAVAILABLE_,
                              "Error:\nValidation failed\n\nUnrecognised terms [{<<\"%s\">>,%s}] "
                              "in limits\n",
                              k, term ? term : "?");
            free(term);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static int64_t limit_of(const json_t *o, const char *key, int64_t old)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return old;
    json_int_t n = json_integer_value(v);
    return n < 0 ? -1 : (int64_t)n;
}

static json_t *limits_json(int64_t a, const char *an, int64_t b, const char *bn)
{
    json_t *o = json_object();
    if (a >= 0)
        json_object_set_new(o, an, json_integer(a));
    if (b >= 0)
        json_object_set_new(o, bn, json_integer(b));
    return o;
}

static const char *const vhost_limit_keys[] = {"max-connections", "max-queues", NULL};
static const char *const user_limit_keys[] = {"max-connections", "max-channels", NULL};

static json_t *cmd_set_vhost_limits(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Setting vhost limits to \"%s\" for vhost \"%s\" ...", arg(r, 0), r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    json_t *bad = NULL;
    json_t *o = parse_limits(arg(r, 0), vhost_limit_keys, &bad);
    if (o == NULL)
        return bad;
    /* The definition replaces the vhost's limits, as RabbitMQ's one
     * "limits" parameter. */
    vh->max_connections = limit_of(o, "max-connections", -1);
    vh->max_queues = limit_of(o, "max-queues", -1);
    json_decref(o);
    return saved(action("%s", cur_info));
}

static json_t *cmd_clear_vhost_limits(const req_t *r)
{
    info("Clearing vhost \"%s\" limits ...", r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    vh->max_connections = vh->max_queues = -1;
    return saved(action("%s", cur_info));
}

static json_t *message_json(json_t *ok, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_object_set_new(ok, "message", json_string(text));
    json_object_set_new(ok, "json", value);
    free(text);
    return ok;
}

static json_t *cmd_list_vhost_limits(const req_t *r)
{
    if (opt_true(r, "global")) {
        json_t *all = json_array();
        size_t i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
            if (vh->max_connections >= 0 || vh->max_queues >= 0)
                json_array_append_new(all,
                                      json_pack("{s:s, s:o}", "vhost", vh->name, "limits",
                                                limits_json(vh->max_connections, "max-connections",
                                                            vh->max_queues, "max-queues")));
        return message_json(action("Listing limits for all vhosts ..."), all);
    }
    info("Listing limits for vhost \"%s\" ...", r->vhost);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost_69(r);
    return message_json(action("%s", cur_info), limits_json(vh->max_connections, "max-connections",
                                                            vh->max_queues, "max-queues"));
}

static json_t *cmd_set_user_limits(const req_t *r)
{
    if (nargs(r) != 2 || arg(r, 0) == NULL || arg(r, 1) == NULL)
        return usage(r->command);
    info("Setting user limits to \"%s\" for user \"%s\" ...", arg(r, 1), arg(r, 0));
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user(r, 0);
    json_t *bad = NULL;
    json_t *o = parse_limits(arg(r, 1), user_limit_keys, &bad);
    if (o == NULL)
        return bad;
    /* Merged into the user's limits; a negative value removes one. */
    u->max_connections = limit_of(o, "max-connections", u->max_connections);
    u->max_channels = limit_of(o, "max-channels", u->max_channels);
    json_decref(o);
    return saved(action("%s", cur_info));
}

static json_t *cmd_clear_user_limits(const req_t *r)
{
    if (nargs(r) != 2 || arg(r, 0) == NULL || arg(r, 1) == NULL)
        return usage(r->command);
    const char *which = arg(r, 1);
    if (strcmp(which, "all") == 0)
        info("Clearing all limits for user \"%s\" ...", arg(r, 0));
    else
        info("Clearing \"%s\" limit for user \"%s\" ...", which, arg(r, 0));
    wr_user_t *u = user_arg(r, 0);
    if (u == NULL)
        return no_user(r, 0);
    int all = strcmp(which, "all") == 0;
    if (all || strcmp(which, "max-connections") == 0)
        u->max_connections = -1;
    if (all || strcmp(which, "max-channels") == 0)
        u->max_channels = -1;
    return saved(action("%s", cur_info));
}

static json_t *cmd_list_user_limits(const req_t *r)
{
    const char *name = opt(r, "user");
    if (name == NULL && nargs(r) == 1)
        name = arg(r, 0);
    if (name) {
        info("Listing limits for user \"%s\" ...", name);
        wr_user_t *u = wr_access_user(wr_bytes_of(name));
        if (u == NULL)
            return refuse(EX_NOUSER_, "Error:\nUser \"%s\" does not exist", name);
        return message_json(
            action("%s", cur_info),
            limits_json(u->max_connections, "max-connections", u->max_channels, "max-channels"));
    }
    json_t *all = json_array();
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));)
        if (u->max_connections >= 0 || u->max_channels >= 0)
            json_array_append_new(all, json_pack("{s:s, s:o}", "user", u->name, "limits",
                                                 limits_json(u->max_connections, "max-connections",
                                                             u->max_channels, "max-channels")));
    return message_json(action("Listing limits for all users ..."), all);
}

/* ---- definitions ---- */

static json_t *cmd_export_definitions(const req_t *r)
{
    json_t *ok = action("Exporting definitions ...");
    json_object_set_new(ok, "definitions",
                        wr_defs_export(json_object_get(r->options, "vhost") ? r->vhost : NULL));
    return ok;
}

static json_t *cmd_import_definitions(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Importing definitions ...");
    char err[1024];
    const char *text = arg(r, 0);
    if (wr_defs_import(text, strlen(text), NULL, err, sizeof err) != 0)
        return refuse(EX_DATAERR_, "Error:\n%s", err);
    return action("%s", cur_info);
}

/* ---- node ---- */

static json_t *cmd_ping(const req_t *r)
{
    (void)r;
    json_t *ok = action("Will ping the broker. This only checks that it runs and answers.");
    json_object_set_new(ok, "message", json_string("Ping succeeded"));
    return ok;
}

static json_t *cmd_status(const req_t *r)
{
    (void)r;
    size_t rss = 0;
    uv_resident_set_memory(&rss);
    double up = 0;
    uv_uptime(&up);
    wr_buf_t b;
    wr_buf_init(&b);
    char line[512];
    int n = snprintf(line, sizeof line,
                     "Runtime\n\nOS PID: %d\nOS: Linux\nProduct name: %s\nWarren version: %s\n"
                     "Data directory: %s\n\nConnections: %zu\nVirtual hosts: %zu\n"
                     "Users: %zu\n\nMemory\n\nResident set size: %zu bytes\n",
                     (int)getpid(),
                     wr_broker.cfg && wr_broker.cfg->product ? wr_broker.cfg->product : "warren",
                     WARREN_VERSION, wr_meta_data_dir() ? wr_meta_data_dir() : "", wr_conn_count(),
                     wr_broker.vhosts.count, wr_access_user_count(), rss);
    wr_buf_put(&b, line, (size_t)n);
    n = snprintf(line, sizeof line, "\nAlarms\n\n%s\n",
                 wr_broker.alarms == 0 ? "(none)"
                 : wr_broker.alarms == (WR_ALARM_MEMORY | WR_ALARM_DISK)
                     ? "Memory alarm\nFree disk space alarm"
                 : (wr_broker.alarms & WR_ALARM_DISK) ? "Free disk space alarm"
                                                      : "Memory alarm");
    wr_buf_put(&b, line, (size_t)n);
    json_t *ok = action("Status of the broker ...");
    json_object_set_new(ok, "message", str_n(b.p, b.len));
    wr_buf_free(&b);
    return ok;
}

/* rabbitmqctl cluster_status: the configured nodes (all disc nodes) and
 * those whose link is up (running), in RabbitMQ's text and JSON shapes. */
static json_t *cmd_cluster_status(const req_t *r)
{
    (void)r;
    const char *self = wr_info_node();
    json_t *disk = json_array(), *running = json_array();
    const wr_rgroup_member_t *m;
    size_t n = wr_cluster_enabled() ? wr_cluster_members(&m) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = wr_cluster_node_name(m[i].id);
        json_array_append_new(disk, json_string(name));
        if (wr_cluster_node_up(m[i].id))
            json_array_append_new(running, json_string(name));
    }
    if (n == 0) {
        json_array_append_new(disk, json_string(self));
        json_array_append_new(running, json_string(self));
    }
    wr_buf_t b;
    wr_buf_init(&b);
    const char *cname =
        wr_broker.cfg && wr_broker.cfg->cluster_name ? wr_broker.cfg->cluster_name : self;
    char line[600];
    int k = snprintf(line, sizeof line, "Basics\n\nCluster name: %s\n\nDisk Nodes\n\n", cname);
    wr_buf_put(&b, line, (size_t)k);
    size_t i;
    json_t *v;
    json_array_foreach(disk, i, v)
    {
        wr_buf_put(&b, json_string_value(v), strlen(json_string_value(v)));
        wr_buf_put(&b, "\n", 1);
    }
    static const char running_hdr[] = "\nRunning Nodes\n\n";
    wr_buf_put(&b, running_hdr, sizeof running_hdr - 1);
    json_array_foreach(running, i, v)
    {
        wr_buf_put(&b, json_string_value(v), strlen(json_string_value(v)));
        wr_buf_put(&b, "\n", 1);
    }
    k = snprintf(line, sizeof line,
                 "\nVersions\n\n%s: warren %s\n\nAlarms\n\n%s\n\nNetwork Partitions\n\n(none)\n",
                 self, WARREN_VERSION, wr_broker.alarms ? "(see warrenctl status)" : "(none)");
    wr_buf_put(&b, line, (size_t)k);
    json_t *ok = action("Cluster status of node %s ...", self);
    json_object_set_new(ok, "message", str_n(b.p, b.len));
    json_object_set_new(ok, "json",
                        json_pack("{s:[], s:s, s:o, s:{}, s:[], s:o}", "alarms", "cluster_name",
                                  cname, "disk_nodes", disk, "partitions", "ram_nodes",
                                  "running_nodes", running));
    wr_buf_free(&b);
    return ok;
}

/* rabbitmqctl forget_cluster_node NODE: the node (stopped) leaves the
 * cluster; answered once the metadata log has it (wr_ctl_execute). */
static json_t *cmd_forget_cluster_node(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    info("Removing node %s from the cluster", arg(r, 0));
    uint64_t id = wr_cluster_enabled() ? wr_cluster_node_id(arg(r, 0)) : 0;
    uint64_t gone[64];
    size_t ng = wr_cluster_forgotten(gone, 64);
    for (size_t i = 0; i < ng; i++)
        if (gone[i] == id)
            id = 0;
    if (id == 0)
        return refuse(EX_SOFTWARE_, "Error:\n{:not_a_cluster_node, '%s'}", arg(r, 0));
    if (id == wr_cluster_self_id())
        return refuse(EX_SOFTWARE_,
                      "Error:\n{:failed_to_remove_node, :\"%s\", "
                      "{:active, \"a node cannot forget itself: run this on another node\"}}",
                      arg(r, 0));
    if (wr_cluster_node_up(id))
        return refuse(EX_SOFTWARE_,
                      "Error:\n{:failed_to_remove_node, :\"%s\", {:active, \"the node is "
                      "running: stop it first\"}}",
                      arg(r, 0));
    if (wr_cmeta_forget_node(id) == 0)
        return refuse(EX_SOFTWARE_, "Error:\nthe cluster's metadata log is not open");
    return action("Removing node %s from the cluster", arg(r, 0));
}

/* ---- quorum queue membership (rabbitmq-queues add_member, delete_member,
 * grow, shrink) ---- */

/* A node argument: a cluster member's name (this node's name when it runs
 * alone); 0 if there is none such. */
static uint64_t node_arg(const char *name)
{
    if (name == NULL)
        return 0;
    if (wr_cluster_enabled())
        return wr_cluster_node_id(name);
    return strcmp(name, wr_info_node()) == 0 ? wr_cluster_self_id() : 0;
}

static const char *member_error(int status)
{
    switch (status) {
    case WR_EEXISTS:
        return "already_a_member";
    case WR_ENOTFOUND:
        return "not_a_member";
    case WR_EINVAL:
        return "last_member";
    case WR_EAGAIN:
        return "timeout";
    case WR_ECLOSED:
        return "queue_closed";
    default:
        return "error";
    }
}

static void member_done(void *ud, int status)
{
    later_t *l = ud;
    memcpy(cur_info, l->info, sizeof cur_info);
    json_t *reply = status == 0
                        ? action("%s", l->info)
                        : refuse(EX_SOFTWARE_, "Error:\n{:error, :%s}", member_error(status));
    cur_info[0] = '\0';
    later_end(l, reply);
}

static json_t *queue_member(const req_t *r, int op)
{
    if (nargs(r) != 2 || arg(r, 0) == NULL || arg(r, 1) == NULL)
        return usage(r->command);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    info("%s a replica for queue %s on node %s...", op == WR_QQ_MAKE_VOTER ? "Adding" : "Removing",
         arg(r, 0), arg(r, 1));
    wr_queue_t *q = wr_vhost_queue(vh, wr_bytes_of(arg(r, 0)));
    if (q == NULL)
        return refuse(EX_UNAVAILABLE_, "Error:\n{:not_found, {:resource, \"%s\", :queue, \"%s\"}}",
                      vh->name, arg(r, 0));
    if (!wr_queue_is_quorum(q))
        return refuse(EX_SOFTWARE_, "Error:\n{:error, :classic_queue_not_supported}");
    uint64_t id = node_arg(arg(r, 1));
    if (id == 0)
        return refuse(EX_SOFTWARE_, "Error:\n{:error, :node_not_running}");
    later_t *l = later_begin();
    if (l == NULL)
        return refuse(EX_SOFTWARE_, "Error:\nonly the control socket (warrenctl) can wait for a "
                                    "membership change");
    int rc = wr_quorum_admin(q, op, id, member_done, l);
    if (rc != 0) {
        later_cancel(l);
        return refuse(EX_SOFTWARE_, "Error:\n{:error, :%s}", member_error(rc));
    }
    return NULL;
}

static json_t *cmd_add_member(const req_t *r)
{
    return queue_member(r, WR_QQ_MAKE_VOTER);
}

static json_t *cmd_delete_member(const req_t *r)
{
    return queue_member(r, WR_QQ_MAKE_STANDBY);
}

/* grow and shrink: one change per queue, all at once; the reply lists each
 * queue with its result once every change has ended. */
typedef struct member_part {
    later_t *l;
    char *vhost, *name;
    size_t size; /* voters before the change */
    int grow;
    int errors_only;
} member_part_t;

static void part_done(void *ud, int status)
{
    member_part_t *p = ud;
    later_t *l = p->l;
    if (status != 0 || !p->errors_only) {
        size_t size = status != 0 ? p->size : p->grow ? p->size + 1 : p->size - 1;
        char result[64];
        snprintf(result, sizeof result, status == 0 ? "ok" : "error: %s", member_error(status));
        json_array_append_new(
            l->rows, json_pack("[s, s, I, s]", p->vhost, p->name, (json_int_t)size, result));
    }
    free(p->vhost);
    free(p->name);
    free(p);
    if (--l->pending == 0) {
        json_t *reply = json_pack("{s:b, s:s, s:[s, s, s, s], s:O}", "ok", 1, "info", l->info,
                                  "columns", "vhost", "name", "size", "result", "rows", l->rows);
        later_end(l, reply);
    }
}

static json_t *grow_or_shrink(const req_t *r, int grow)
{
    if (nargs(r) != (grow ? 2u : 1u) || arg(r, 0) == NULL)
        return usage(r->command);
    const char *which = grow ? arg(r, 1) : "all";
    if (which == NULL || (strcmp(which, "all") != 0 && strcmp(which, "even") != 0))
        return refuse(EX_USAGE_, "strategy <%s> is not recognised (all or even)",
                      which ? which : "");
    const char *vpat = opt(r, "vhost-pattern"), *qpat = opt(r, "queue-pattern");
    regex_t vre, qre;
    int have_v = 0, have_q = 0;
    if (vpat && regcomp(&vre, vpat, REG_EXTENDED | REG_NOSUB) != 0)
        return refuse(EX_USAGE_, "invalid --vhost-pattern %s", vpat);
    have_v = vpat != NULL;
    if (qpat && regcomp(&qre, qpat, REG_EXTENDED | REG_NOSUB) != 0) {
        if (have_v)
            regfree(&vre);
        return refuse(EX_USAGE_, "invalid --queue-pattern %s", qpat);
    }
    have_q = qpat != NULL;
    if (grow)
        info("Growing quorum queues matching %s in vhosts matching %s to %s...", qpat ? qpat : ".*",
             vpat ? vpat : ".*", arg(r, 0));
    else
        info("Shrinking quorum queues on %s...", arg(r, 0));
    uint64_t id = node_arg(arg(r, 0));
    json_t *err = NULL;
    later_t *l = NULL;
    if (id == 0)
        err = refuse(EX_SOFTWARE_, "Error:\n{:error, :node_not_running}");
    else if ((l = later_begin()) == NULL)
        err = refuse(EX_SOFTWARE_, "Error:\nonly the control socket (warrenctl) can wait for a "
                                   "membership change");
    if (err) {
        if (have_v)
            regfree(&vre);
        if (have_q)
            regfree(&qre);
        return err;
    }
    l->rows = json_array();
    l->pending = 1; /* held until every part has started */
    size_t vi = 0;
    wr_vhost_t *vh;
    while ((vh = wr_broker_vhost_next(&vi)) != NULL) {
        if (have_v && regexec(&vre, vh->name, 0, NULL, 0) != 0)
            continue;
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->queues, &k, &sl)) {
            wr_queue_t *q = sl->value;
            if (!wr_queue_is_quorum(q) || (have_q && regexec(&qre, q->name, 0, NULL, 0) != 0))
                continue;
            uint64_t ids[64];
            size_t nv = wr_quorum_members(q, ids, 64), in = 0;
            for (size_t i = 0; i < nv && i < 64; i++)
                in |= ids[i] == id;
            if (grow ? in || (strcmp(which, "even") == 0 && nv % 2 != 0) : !in)
                continue;
            member_part_t *p = wr_xcalloc(1, sizeof *p);
            p->l = l;
            p->vhost = wr_xstrndup(vh->name, strlen(vh->name));
            p->name = wr_xstrndup(q->name, q->name_len);
            p->size = nv;
            p->grow = grow;
            p->errors_only = opt_true(r, "errors-only");
            l->pending++;
            int rc =
                wr_quorum_admin(q, grow ? WR_QQ_MAKE_VOTER : WR_QQ_MAKE_STANDBY, id, part_done, p);
            if (rc != 0)
                part_done(p, rc);
        }
    }
    if (have_v)
        regfree(&vre);
    if (have_q)
        regfree(&qre);
    if (--l->pending == 0) {
        json_t *reply = json_pack("{s:b, s:s, s:[s, s, s, s], s:O}", "ok", 1, "info", l->info,
                                  "columns", "vhost", "name", "size", "result", "rows", l->rows);
        later_end(l, reply);
    }
    return NULL;
}

static json_t *cmd_grow(const req_t *r)
{
    return grow_or_shrink(r, 1);
}

static json_t *cmd_shrink(const req_t *r)
{
    return grow_or_shrink(r, 0);
}

/* rabbitmq-queues quorum_status QUEUE: each member's Raft state.  This
 * node reports its own figures; other members are shown as this node
 * sees them (leader or follower by who leads, noproc when unreachable),
 * without their indexes. */
static json_t *cmd_quorum_status(const req_t *r)
{
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    wr_vhost_t *vh = vhost_of(r);
    if (vh == NULL)
        return no_vhost(r);
    info("Status of quorum queue %s on node %s ...", arg(r, 0), wr_info_node());
    wr_queue_t *q = wr_vhost_queue(vh, wr_bytes_of(arg(r, 0)));
    if (q == NULL)
        return refuse(EX_UNAVAILABLE_, "Error:\n{:not_found, {:resource, \"%s\", :queue, \"%s\"}}",
                      vh->name, arg(r, 0));
    wr_quorum_status_t st;
    if (!wr_queue_is_quorum(q) || wr_quorum_status(q, &st) != 0)
        return refuse(EX_SOFTWARE_, "Error:\n{:error, :not_quorum_queue}");
    static const char *const cols[] = {
        "Node Name",      "Raft State", "Log Index",       "Commit Index",
        "Snapshot Index", "Term",       "Machine Version", NULL};
    json_t *columns = json_array(), *rows = json_array();
    for (size_t c = 0; cols[c]; c++)
        json_array_append_new(columns, json_string(cols[c]));
    uint64_t m[64];
    size_t n = wr_cluster_enabled() ? wr_quorum_members(q, m, 64) : 0;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < (n ? n : 1); i++) {
        uint64_t id = n ? m[i] : wr_cluster_self_id();
        const char *name = n ? wr_cluster_node_name(id) : wr_info_node();
        int self = id == wr_cluster_self_id();
        const char *state = self                      ? (st.is_leader ? "leader" : "follower")
                            : !wr_cluster_node_up(id) ? "noproc"
                            : st.leader_id == id      ? "leader"
                                                      : "follower";
        json_t *row = json_array();
        json_array_append_new(row, json_string(name));
        json_array_append_new(row, json_string(state));
        if (self) {
            json_array_append_new(row, json_integer((json_int_t)st.last_index));
            json_array_append_new(row, json_integer((json_int_t)st.commit_index));
        } else {
            json_array_append_new(row, json_string(""));
            json_array_append_new(row, json_string(""));
        }
        json_array_append_new(row, json_string("undefined"));
        json_array_append_new(row, self ? json_integer((json_int_t)st.term) : json_string(""));
        json_array_append_new(row, json_integer(1));
        json_array_append_new(rows, row);
    }
    return json_pack("{s:b, s:s, s:o, s:o}", "ok", 1, "info", cur_info, "columns", columns, "rows",
                     rows);
}

static json_t *cmd_set_vm_memory_high_watermark(const req_t *r)
{
    if (nargs(r) == 2 && arg(r, 0) && strcmp(arg(r, 0), "absolute") == 0 && arg(r, 1)) {
        char err[300];
        if (wr_config_set(wr_broker.cfg, "vm_memory_high_watermark.absolute", arg(r, 1), err,
                          sizeof err) != 0)
            return refuse(EX_DATAERR_, "%s", err);
        return action("Setting memory threshold on the broker to %s bytes ...", arg(r, 1));
    }
    if (nargs(r) != 1 || arg(r, 0) == NULL)
        return usage(r->command);
    char err[300];
    if (wr_config_set(wr_broker.cfg, "vm_memory_high_watermark.relative", arg(r, 0), err,
                      sizeof err) != 0)
        return refuse(EX_DATAERR_, "%s", err);
    wr_broker.cfg->mem_high_watermark_bytes = 0;
    return action("Setting memory threshold on the broker to %s ...", arg(r, 0));
}

/* ---- dispatch ---- */

typedef struct command {
    const char *name;
    json_t *(*run)(const req_t *r);
} command_t;

static const command_t commands[] = {
    {"add_member", cmd_add_member},
    {"add_user", cmd_add_user},
    {"add_vhost", cmd_add_vhost},
    {"authenticate_user", cmd_authenticate_user},
    {"await_startup", cmd_ping},
    {"change_password", cmd_change_password},
    {"clear_password", cmd_clear_password},
    {"clear_operator_policy", cmd_clear_operator_policy},
    {"clear_permissions", cmd_clear_permissions},
    {"clear_policy", cmd_clear_policy},
    {"clear_topic_permissions", cmd_clear_topic_permissions},
    {"clear_user_limits", cmd_clear_user_limits},
    {"clear_vhost_limits", cmd_clear_vhost_limits},
    {"close_all_connections", cmd_close_all_connections},
    {"close_connection", cmd_close_connection},
    {"delete_member", cmd_delete_member},
    {"delete_queue", cmd_delete_queue},
    {"export_definitions", cmd_export_definitions},
    {"import_definitions", cmd_import_definitions},
    {"delete_user", cmd_delete_user},
    {"delete_vhost", cmd_delete_vhost},
    {"list_bindings", cmd_list_bindings},
    {"list_channels", cmd_list_channels},
    {"list_connections", cmd_list_connections},
    {"list_consumers", cmd_list_consumers},
    {"list_dead_letters", cmd_list_dead_letters},
    {"list_exchanges", cmd_list_exchanges},
    {"list_operator_policies", cmd_list_operator_policies},
    {"list_permissions", cmd_list_permissions},
    {"list_policies", cmd_list_policies},
    {"list_queues", cmd_list_queues},
    {"list_topic_permissions", cmd_list_topic_permissions},
    {"list_user_permissions", cmd_list_user_permissions},
    {"list_user_limits", cmd_list_user_limits},
    {"list_users", cmd_list_users},
    {"list_vhost_limits", cmd_list_vhost_limits},
    {"list_vhosts", cmd_list_vhosts},
    {"move_messages", cmd_move_messages},
    {"ping", cmd_ping},
    {"purge_queue", cmd_purge_queue},
    {"replay_dead_letters", cmd_replay_dead_letters},
    {"set_operator_policy", cmd_set_operator_policy},
    {"set_permissions", cmd_set_permissions},
    {"set_policy", cmd_set_policy},
    {"set_topic_permissions", cmd_set_topic_permissions},
    {"set_user_limits", cmd_set_user_limits},
    {"set_user_tags", cmd_set_user_tags},
    {"set_vhost_limits", cmd_set_vhost_limits},
    {"set_vm_memory_high_watermark", cmd_set_vm_memory_high_watermark},
    {"status", cmd_status},
    {"cluster_status", cmd_cluster_status},
    {"forget_cluster_node", cmd_forget_cluster_node},
    {"grow", cmd_grow},
    {"quorum_status", cmd_quorum_status},
    {"shrink", cmd_shrink},
};

static int args_ok(const json_t *a)
{
    if (a == NULL)
        return 1;
    if (!json_is_array(a))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!json_is_string(v)) return 0;
    return 1;
}

json_t *wr_ctl_call(json_t *in)
{
    req_t r = {0};
    cur_info[0] = '\0';
    if (!json_is_object(in))
        return refuse(EX_USAGE_, "bad request: not an object");
    r.command = json_string_value(json_object_get(in, "command"));
    r.vhost = json_string_value(json_object_get(in, "vhost"));
    r.args = json_object_get(in, "args");
    r.options = json_object_get(in, "options");
    if (r.vhost == NULL)
        r.vhost = "/";
    if (r.command == NULL || !args_ok(r.args) || (r.options && !json_is_object(r.options)))
        return refuse(EX_USAGE_, "bad request: it needs a \"command\" string, \"args\" "
                                 "strings and an \"options\" object");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, r.command) == 0)
            return commands[i].run(&r);
    return refuse(EX_USAGE_, "Command '%s' not found", r.command);
}

static void committed(void *ctx, int applied)
{
    (void)applied;
    later_t *l = ctx;
    later_end(l, l->reply);
}

char *wr_ctl_execute(const char *request, size_t len)
{
    json_error_t je;
    json_t *in = json_loadb(request, len, JSON_REJECT_DUPLICATES, &je);
    uint64_t before = wr_cmeta_next_ticket();
    json_t *out = in ? wr_ctl_call(in) : refuse(EX_USAGE_, "bad request: %s", je.text);
    if (out == NULL) { /* the reply comes later (later_begin) */
        json_decref(in);
        return NULL;
    }
    /* In a cluster, a command that changed what the nodes share answers
     * once the metadata log has the change (its last ticket) applied
     * here: the next command, on any node, sees it. */
    uint64_t after = wr_cmeta_next_ticket();
    later_t *l;
    if (after != before && (l = later_begin()) != NULL) {
        l->reply = out;
        wr_cmeta_wait(after - 1, NULL, committed, l);
        json_decref(in);
        return NULL;
    }
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(in);
    return text;
}

/* ---- the socket ---- */

typedef struct client {
    uv_pipe_t pipe;
    wr_buf_t in;
    struct client *next;
    later_t *waiting; /* a reply to come; later requests wait behind it */
    uint8_t closing;
    uint8_t processing; /* inside process() */
} client_t;

static uv_pipe_t server;
static int serving;
static char *sock_path;
static client_t *clients;

static void client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    for (client_t **pp = &clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->waiting)
        c->waiting->c = NULL;
    wr_buf_free(&c->in);
    free(c);
}

static void client_close(client_t *c)
{
    if (!c->closing) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->pipe, client_closed);
    }
}

typedef struct write_req {
    uv_write_t w;
    char *text;
} write_req_t;

static void written(uv_write_t *w, int status)
{
    (void)status;
    write_req_t *wr = (write_req_t *)w;
    free(wr->text);
    free(wr);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    (void)suggested;
    buf->base = (char *)wr_buf_reserve(&c->in, 65536);
    buf->len = 65536;
}

static int send_reply(client_t *c, char *reply)
{
    size_t rn = strlen(reply);
    reply = wr_xrealloc(reply, rn + 2);
    reply[rn++] = '\n';
    write_req_t *wr = wr_xmalloc(sizeof *wr);
    wr->text = reply;
    uv_buf_t b = uv_buf_init(reply, (unsigned)rn);
    if (c->closing || uv_write(&wr->w, (uv_stream_t *)&c->pipe, &b, 1, written) != 0) {
        free(reply);
        free(wr);
        client_close(c);
        return -1;
    }
    return 0;
}

/* Answers the complete requests in c's buffer, in order, until one must
 * wait for its reply. */
static void process(client_t *c)
{
    if (c->processing)
        return; /* a reply that came at once, inside the loop below */
    c->processing = 1;
    while (!c->waiting && !c->closing) {
        uint8_t *nl = memchr(c->in.p, '\n', c->in.len);
        if (nl == NULL)
            break;
        size_t line = (size_t)(nl - c->in.p);
        char *req = wr_xmalloc(line + 1);
        memcpy(req, c->in.p, line);
        wr_buf_consume(&c->in, line + 1);
        cur_client = c;
        char *reply = wr_ctl_execute(req, line);
        cur_client = NULL;
        free(req);
        if (reply != NULL && send_reply(c, reply) != 0)
            break;
    }
    c->processing = 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client_t *c = s->data;
    (void)buf;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->in.len += (size_t)n;
    process(c);
    if (c->in.len > WR_CTL_MAX_LINE) {
        wr_warn("control socket: request longer than %u bytes; closing", WR_CTL_MAX_LINE);
        client_close(c);
    }
}

static later_t *later_begin(void)
{
    if (cur_client == NULL || cur_client->waiting)
        return NULL;
    later_t *l = wr_xcalloc(1, sizeof *l);
    l->c = cur_client;
    memcpy(l->info, cur_info, sizeof l->info);
    cur_client->waiting = l;
    return l;
}

static void later_end(later_t *l, json_t *reply)
{
    client_t *c = l->c;
    if (c != NULL) {
        c->waiting = NULL;
        char *text = json_dumps(reply, JSON_COMPACT);
        if (send_reply(c, text) == 0)
            process(c);
    }
    json_decref(reply);
    json_decref(l->rows);
    free(l);
}

static void later_cancel(later_t *l)
{
    if (l->c)
        l->c->waiting = NULL;
    json_decref(l->rows);
    free(l);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status != 0)
        return;
    client_t *c = wr_xcalloc(1, sizeof *c);
    wr_buf_init(&c->in);
    uv_pipe_init(wr_loop, &c->pipe, 0);
    c->pipe.data = c;
    c->next = clients;
    clients = c;
    if (uv_accept(srv, (uv_stream_t *)&c->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
        client_close(c);
}

int wr_ctl_start(const char *data_dir, char *err, size_t errlen)
{
    size_t n = strlen(data_dir) + sizeof WR_CTL_SOCKET + 2;
    sock_path = wr_xmalloc(n);
    snprintf(sock_path, n, "%s/%s", data_dir, WR_CTL_SOCKET);
    /* Only one broker uses a data directory (the store would not survive
     * two), so a socket file left here is stale. */
    unlink(sock_path);
    uv_pipe_init(wr_loop, &server, 0);
    mode_t old = umask(0177);
    int r = uv_pipe_bind(&server, sock_path);
    umask(old);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 16, on_connection);
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", sock_path, uv_strerror(r));
        uv_close((uv_handle_t *)&server, NULL);
        return -1;
    }
    chmod(sock_path, 0600);
    serving = 1;
    return 0;
}

void wr_ctl_stop(void)
{
    if (!serving)
        return;
    serving = 0;
    uv_close((uv_handle_t *)&server, NULL);
    for (client_t *c = clients; c; c = c->next)
        client_close(c);
    unlink(sock_path);
    free(sock_path);
    sock_path = NULL;
}
