/* ops.c - the operations layer (see ops.h). */
#include "broker/ops.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/access.h"
#include "broker/conn.h"
#include "core/err.h"
#include "core/log.h"
#include "broker/args.h"
#include "broker/cluster.h"
#include "broker/cmeta.h"
#include "broker/headers.h"
#include "broker/persist.h"
#include "broker/quorum.h"
#include "broker/policy.h"
#include "core/loop.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

#define BYTES_FMT(b) (int)(b).n, (const char *)(b).p

static int fail(wr_reply_t *r, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(wr_reply_t *r, uint16_t code, const char *fmt, ...)
{
    r->code = code;
    r->wait = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    return -1;
}

static int done(wr_reply_t *r)
{
    r->code = 0;
    r->text[0] = '\0';
    r->wait = 0;
    return 0;
}

/* Done, once the cluster's metadata log has the change of ticket. */
static int done_wait(wr_reply_t *r, uint64_t ticket)
{
    done(r);
    r->wait = ticket;
    return 0;
}

static const char *tf(int v)
{
    return v ? "true" : "false";
}

static int reserved_name(wr_bytes_t name)
{
    return name.n >= 4 && memcmp(name.p, "amq.", 4) == 0;
}

int wr_op_allowed(const wr_actor_t *who, wr_vhost_t *vh, wr_perm_t perm, int is_queue,
                  wr_bytes_t name, wr_reply_t *r)
{
    if (who->user == NULL)
        return 0;
    /* The default exchange's name in permissions is amq.default. */
    wr_bytes_t res = !is_queue && name.n == 0 ? WR_BYTES_LIT("amq.default") : name;
    if (wr_access_resource(who->user, vh, perm, res))
        return 0;
    return fail(
        r, WR_AMQP_ACCESS_REFUSED, "access to %s '%.*s' in vhost '%s' refused for user '%s'",
        is_queue ? "queue" : "exchange", BYTES_FMT(res), vh->name, wr_access_user_name(who->user));
}

wr_queue_t *wr_op_find_queue(wr_vhost_t *vh, wr_bytes_t name, const wr_actor_t *who, wr_reply_t *r)
{
    wr_queue_t *q = wr_vhost_queue(vh, name);
    if (q == NULL) {
        if (name.n == 0)
            fail(r, WR_AMQP_NOT_FOUND, "no previously declared queue");
        else
            fail(r, WR_AMQP_NOT_FOUND, "no queue '%.*s' in vhost '%s'", BYTES_FMT(name), vh->name);
        return NULL;
    }
    if (q->exclusive && q->owner != who->conn) {
        fail(r, WR_AMQP_RESOURCE_LOCKED,
             "cannot obtain exclusive access to locked queue '%.*s' in vhost '%s'. It could be "
             "originally declared on another connection or the exclusive property value does "
             "not match that of the original declaration.",
             BYTES_FMT(name), vh->name);
        return NULL;
    }
    return q;
}

wr_exchange_t *wr_op_find_exchange(wr_vhost_t *vh, wr_bytes_t name, wr_reply_t *r)
{
    wr_exchange_t *x = wr_vhost_exchange(vh, name);
    if (x == NULL)
        fail(r, WR_AMQP_NOT_FOUND, "no exchange '%.*s' in vhost '%s'", BYTES_FMT(name), vh->name);
    return x;
}

/* ---- exchanges ---- */

static void delay_queue_create(wr_exchange_t *x)
{
    char name[300];
    wr_delay_queue_name(x, name, sizeof name);
    wr_queue_args_t qa;
    char err[64];
    wr_queue_args_parse((wr_bytes_t){NULL, 0}, wr_bytes_of(name), x->vhost->name, &qa, err,
                        sizeof err);
    qa.dlx = wr_xstrndup(x->name, x->name_len);
    wr_queue_t *q = wr_queue_new(x->vhost, wr_bytes_of(name), x->durable, 0, 0, NULL,
                                 (wr_bytes_t){NULL, 0}, &qa);
    q->delay = 1;
    wr_persist_queue_declared(q);
}

static int exchange_equivalent(wr_vhost_t *vh, const wr_exchange_t *x, const wr_exchange_spec_t *s,
                               int type, int delayed, wr_reply_t *r)
{
    const char *what = NULL;
    char got[64], cur[64];
    if ((int)x->type != type || x->delayed != delayed) {
        what = "type";
        snprintf(got, sizeof got, "%.*s", BYTES_FMT(s->type));
        snprintf(cur, sizeof cur, "%s", wr_extype_name(x->type));
    } else if (x->durable != s->durable) {
        what = "durable";
        snprintf(got, sizeof got, "%s", tf(s->durable));
        snprintf(cur, sizeof cur, "%s", tf(x->durable));
    } else if (x->auto_delete != s->auto_delete) {
        what = "auto_delete";
        snprintf(got, sizeof got, "%s", tf(s->auto_delete));
        snprintf(cur, sizeof cur, "%s", tf(x->auto_delete));
    } else if (x->internal != s->internal) {
        what = "internal";
        snprintf(got, sizeof got, "%s", tf(s->internal));
        snprintf(cur, sizeof cur, "%s", tf(x->internal));
    }
    if (what)
        return fail(r, WR_AMQP_PRECONDITION_FAILED,
                    "inequivalent arg '%s' for exchange '%.*s' in vhost '%s': received '%s' but "
                    "current is '%s'",
                    what, BYTES_FMT(s->name), vh->name, got, cur);
    char ent[400], err[800];
    snprintf(ent, sizeof ent, "exchange '%.*s' in vhost '%s'", BYTES_FMT(s->name), vh->name);
    if (!wr_args_equivalent((wr_bytes_t){x->args_raw.p, x->args_raw.len}, s->args,
                            wr_exchange_equiv_keys, ent, err, sizeof err))
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    return 0;
}

int wr_op_exchange_declare(wr_vhost_t *vh, const wr_exchange_spec_t *s, const wr_actor_t *who,
                           wr_reply_t *r)
{
    if (s->name.n == 0)
        return fail(r, WR_AMQP_ACCESS_REFUSED, "operation not permitted on the default exchange");
    wr_exchange_t *x = wr_vhost_exchange(vh, s->name);
    if (s->passive) {
        if (x == NULL) {
            wr_op_find_exchange(vh, s->name, r);
            return -1;
        }
        return done(r);
    }
    int type = wr_extype_parse(s->type);
    int delayed = 0;
    if (type < 0 && wr_bytes_eq_str(s->type, "x-delayed-message")) {
        /* The community plugin's interface: routing by x-delayed-type
         * once each message's x-delay has passed. */
        wr_field_t dt;
        delayed = 1;
        if (!(s->args.n && wr_table_get(s->args, "x-delayed-type", &dt) && dt.type == 'S' &&
              (type = wr_extype_parse(dt.v.bytes)) >= 0))
            return fail(r, WR_AMQP_PRECONDITION_FAILED,
                        "Invalid argument, 'x-delayed-type' must be an existing exchange type");
    }
    if (type < 0)
        return fail(r, WR_AMQP_COMMAND_INVALID, "unknown exchange type '%.*s'", BYTES_FMT(s->type));
    if (x == NULL && reserved_name(s->name))
        return fail(r, WR_AMQP_ACCESS_REFUSED,
                    "exchange name '%.*s' contains reserved prefix 'amq.*'", BYTES_FMT(s->name));
    if (wr_op_allowed(who, vh, WR_PERM_CONFIGURE, 0, s->name, r) != 0)
        return -1;
    if (x)
        return exchange_equivalent(vh, x, s, type, delayed, r) == 0 ? done(r) : -1;
    char err[256];
    if (wr_exchange_validate_args(type, s->args, err, sizeof err) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    /* An alternate exchange: read on this one, write on it. */
    wr_field_t ae;
    if (who->user && s->args.n && wr_table_get(s->args, "alternate-exchange", &ae) &&
        ae.type == 'S' &&
        (wr_op_allowed(who, vh, WR_PERM_READ, 0, s->name, r) != 0 ||
         wr_op_allowed(who, vh, WR_PERM_WRITE, 0, ae.v.bytes, r) != 0))
        return -1;
    wr_exchange_t *nx = wr_exchange_declare(vh, s->name, (wr_extype_t)type, s->durable,
                                            s->auto_delete, s->internal, s->args);
    nx->delayed = (uint8_t)delayed;
    wr_policy_apply_exchange(nx);
    wr_persist_exchange_declared(nx);
    if (delayed)
        delay_queue_create(nx);
    return done_wait(r, wr_cmeta_exchange_declared(nx));
}

int wr_op_exchange_delete(wr_vhost_t *vh, wr_bytes_t name, int if_unused, const wr_actor_t *who,
                          wr_reply_t *r)
{
    if (name.n == 0)
        return fail(r, WR_AMQP_ACCESS_REFUSED, "operation not permitted on the default exchange");
    if (reserved_name(name))
        return fail(r, WR_AMQP_ACCESS_REFUSED,
                    "deletion of system exchange '%.*s' in vhost '%s' not allowed", BYTES_FMT(name),
                    vh->name);
    if (wr_op_allowed(who, vh, WR_PERM_CONFIGURE, 0, name, r) != 0)
        return -1;
    wr_exchange_t *x = wr_vhost_exchange(vh, name);
    if (x) {
        if (if_unused && wr_exchange_in_use(x))
            return fail(r, WR_AMQP_PRECONDITION_FAILED, "exchange '%.*s' in vhost '%s' in use",
                        BYTES_FMT(name), vh->name);
        wr_exchange_delete(x);
        return done_wait(r, wr_cmeta_exchange_deleted(vh->name, name));
    }
    return done(r);
}

/* ---- queues ---- */

static int queue_equivalent(wr_vhost_t *vh, const wr_queue_t *q, const wr_queue_spec_t *s,
                            wr_bytes_t name, wr_reply_t *r)
{
    const char *what = NULL;
    int got = 0, cur = 0;
    if (q->durable != s->durable) {
        what = "durable";
        got = s->durable;
        cur = q->durable;
    } else if (q->auto_delete != s->auto_delete) {
        what = "auto_delete";
        got = s->auto_delete;
        cur = q->auto_delete;
    }
    if (what)
        return fail(r, WR_AMQP_PRECONDITION_FAILED,
                    "inequivalent arg '%s' for queue '%.*s' in vhost '%s': received '%s' but "
                    "current is '%s'",
                    what, BYTES_FMT(name), vh->name, tf(got), tf(cur));
    char ent[400], err[600];
    snprintf(ent, sizeof ent, "queue '%.*s' in vhost '%s'", BYTES_FMT(name), vh->name);
    /* A missing x-queue-type means classic: it is compared (in RabbitMQ's
     * words) only when the types differ. */
    wr_field_t t;
    int quorum = s->args.n && wr_table_get(s->args, "x-queue-type", &t) && t.type == 'S' &&
                 wr_bytes_eq_str(t.v.bytes, "quorum");
    static const char *const type_key[] = {"x-queue-type", NULL};
    if (quorum != (q->args.type == WR_QTYPE_QUORUM) &&
        !wr_args_equivalent((wr_bytes_t){q->args_raw.p, q->args_raw.len}, s->args, type_key, ent,
                            err, sizeof err))
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    if (!wr_args_equivalent((wr_bytes_t){q->args_raw.p, q->args_raw.len}, s->args,
                            wr_queue_equiv_keys, ent, err, sizeof err))
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    return 0;
}

/* RabbitMQ's rules for a new quorum queue: arguments first (those its
 * queue type does not take), then the properties it cannot have. */
static int quorum_check(wr_vhost_t *vh, const wr_queue_spec_t *s, wr_bytes_t name,
                        const wr_queue_args_t *a, wr_reply_t *r)
{
    static const char *const refused[] = {"x-max-priority",
                                          "x-queue-mode",
                                          "x-queue-master-locator",
                                          "x-queue-version",
                                          "x-max-age",
                                          "x-stream-max-segment-size-bytes",
                                          "x-initial-cluster-size",
                                          NULL};
    (void)a;
    wr_field_t f;
    for (size_t i = 0; refused[i]; i++)
        if (wr_table_get(s->args, refused[i], &f))
            return fail(r, WR_AMQP_PRECONDITION_FAILED,
                        "invalid arg '%s' for queue '%.*s' in vhost '%s' of queue type "
                        "rabbit_quorum_queue",
                        refused[i], BYTES_FMT(name), vh->name);
    /* In RabbitMQ's order of checks (auto-delete is reported first). */
    const char *prop = s->auto_delete ? "auto-delete"
                       : s->exclusive ? "exclusive-owner"
                       : !s->durable  ? "non-durable"
                                      : NULL;
    if (prop)
        return fail(r, WR_AMQP_PRECONDITION_FAILED,
                    "invalid property '%s' for queue '%.*s' in vhost '%s'", prop, BYTES_FMT(name),
                    vh->name);
    return 0;
}

int wr_op_queue_declare(wr_vhost_t *vh, const wr_queue_spec_t *s, const wr_actor_t *who,
                        wr_queue_t **out, wr_reply_t *r)
{
    char gen[64];
    wr_bytes_t name = s->name;
    int generated = 0;
    uint64_t ticket = 0;
    *out = NULL;
    wr_field_t qt;
    int quorum = s->args.n && wr_table_get(s->args, "x-queue-type", &qt) && qt.type == 'S' &&
                 wr_bytes_eq_str(qt.v.bytes, "quorum");
    if (name.n == 0 && !s->passive && quorum)
        return fail(r, WR_AMQP_PRECONDITION_FAILED,
                    "Cannot declare a server-named queue for type rabbit_quorum_queue");
    if (name.n == 0 && !s->passive) {
        generated = 1;
        wr_gen_name("amq.gen-", gen, sizeof gen);
        name = wr_bytes_of(gen);
    }
    if (s->passive) {
        wr_queue_t *q = wr_op_find_queue(vh, name, who, r);
        if (q == NULL)
            return -1;
        q->last_used = wr_now_ms(); /* RabbitMQ counts any declare as use */
        *out = q;
        return done(r);
    }
    /* RabbitMQ checks the prefix before looking the queue up, so even an
     * existing amq.gen- queue can only be redeclared passively. */
    if (!generated && !s->allow_reserved && reserved_name(name))
        return fail(r, WR_AMQP_ACCESS_REFUSED, "queue name '%.*s' contains reserved prefix 'amq.*'",
                    BYTES_FMT(name));
    if (wr_op_allowed(who, vh, WR_PERM_CONFIGURE, 1, name, r) != 0)
        return -1;
    wr_queue_t *q = wr_vhost_queue(vh, name);
    if (q && (q->exclusive != s->exclusive || (q->exclusive && q->owner != who->conn)))
        return fail(r, WR_AMQP_RESOURCE_LOCKED,
                    "cannot obtain exclusive access to locked queue '%.*s' in vhost '%s'. It "
                    "could be originally declared on another connection or the exclusive "
                    "property value does not match that of the original declaration.",
                    BYTES_FMT(name), vh->name);
    wr_queue_args_t args;
    char err[600];
    if (wr_queue_args_parse(s->args, name, vh->name, &args, err, sizeof err) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    if (q) {
        wr_queue_args_free(&args);
        if (queue_equivalent(vh, q, s, name, r) != 0)
            return -1;
    } else {
        /* The vhost's queue limit counts new queues only. */
        if (vh->max_queues >= 0 && (int64_t)vh->queues.count >= vh->max_queues) {
            wr_queue_args_free(&args);
            return fail(r, WR_AMQP_PRECONDITION_FAILED,
                        "cannot declare queue '%.*s': queue limit in vhost '%s' (%" PRId64
                        ") is reached",
                        BYTES_FMT(name), vh->name, vh->max_queues);
        }
        if (args.type == WR_QTYPE_QUORUM && quorum_check(vh, s, name, &args, r) != 0) {
            wr_queue_args_free(&args);
            return -1;
        }
        /* A dead-letter exchange: read on the queue, write on it. */
        if (args.dlx && (wr_op_allowed(who, vh, WR_PERM_READ, 1, name, r) != 0 ||
                         wr_op_allowed(who, vh, WR_PERM_WRITE, 0, wr_bytes_of(args.dlx), r) != 0)) {
            wr_queue_args_free(&args);
            return -1;
        }
        q = wr_queue_new(vh, name, s->durable, s->exclusive, s->auto_delete,
                         s->exclusive ? who->conn : NULL, s->args, &args);
        if (q->type->open && q->type->open(q, err, sizeof err) != 0) {
            wr_error("cannot start %s queue '%.*s' in vhost '%s': %s", q->type->name,
                     BYTES_FMT(name), vh->name, err);
            const char *tname = q->type->name;
            wr_queue_delete(q);
            return fail(r, WR_AMQP_INTERNAL_ERROR, "cannot start %s queue '%.*s' in vhost '%s': %s",
                        tname, BYTES_FMT(name), vh->name, err);
        }
        wr_policy_apply_queue(q);
        wr_persist_queue_declared(q);
        if (wr_queue_is_quorum(q))
            ticket = wr_cmeta_queue_declared(q); /* every node gets it */
        wr_stats_count(WR_NS_QUEUES_CREATED);
    }
    wr_stats_count(WR_NS_QUEUES_DECLARED);
    q->last_used = wr_now_ms();
    *out = q;
    return done_wait(r, ticket);
}

int wr_op_queue_delete(wr_vhost_t *vh, wr_bytes_t name, int if_unused, int if_empty,
                       const wr_actor_t *who, void (*ok)(void *ctx, uint32_t count), void *ctx,
                       wr_reply_t *r)
{
    uint32_t n = 0;
    if (wr_op_allowed(who, vh, WR_PERM_CONFIGURE, 1, name, r) != 0)
        return -1;
    wr_queue_t *q = wr_vhost_queue(vh, name);
    if (q) {
        if (wr_op_find_queue(vh, name, who, r) == NULL)
            return -1;
        if (q->args.type == WR_QTYPE_QUORUM && (if_unused || if_empty))
            return fail(r, WR_AMQP_NOT_IMPLEMENTED,
                        "cannot delete queue '%.*s' in vhost '%s'. queue.delete operations with "
                        "%s flag set are not supported by quorum queues",
                        BYTES_FMT(name), vh->name, if_empty ? "if-empty" : "if-unused");
        if (if_unused && q->n_consumers)
            return fail(r, WR_AMQP_PRECONDITION_FAILED, "queue '%.*s' in vhost '%s' in use",
                        BYTES_FMT(name), vh->name);
        if (if_empty && wr_queue_ready(q))
            return fail(r, WR_AMQP_PRECONDITION_FAILED, "queue '%.*s' in vhost '%s' not empty",
                        BYTES_FMT(name), vh->name);
        n = (uint32_t)wr_queue_ready(q);
    }
    if (ok)
        ok(ctx, n);
    if (q) {
        if (wr_queue_is_quorum(q))
            wr_cmeta_queue_deleted(vh->name, name);
        wr_queue_delete(q);
    }
    return done(r);
}

int wr_op_queue_purge(wr_vhost_t *vh, wr_bytes_t name, const wr_actor_t *who, uint32_t *count,
                      wr_reply_t *r)
{
    if (wr_op_allowed(who, vh, WR_PERM_READ, 1, name, r) != 0)
        return -1;
    wr_queue_t *q = wr_op_find_queue(vh, name, who, r);
    if (q == NULL)
        return -1;
    *count = wr_queue_purge(q);
    return done(r);
}

/* ---- bindings ---- */

static int check_binding_args(wr_exchange_t *x, wr_bytes_t key, wr_bytes_t args, wr_reply_t *r)
{
    char err[256];
    if (wr_exchange_validate_binding(x, key, err, sizeof err) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    if (x->type == WR_EX_HEADERS && wr_headers_validate_binding(args, err, sizeof err) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "%s", err);
    return 0;
}

int wr_op_bind(wr_vhost_t *vh, int bind, wr_bytes_t source, int dest_is_queue, wr_bytes_t dest,
               wr_bytes_t key, wr_bytes_t args, const wr_actor_t *who, wr_reply_t *r)
{
    /* RabbitMQ's order: write on the destination, the default exchange,
     * read on the source, then the topic permission on the key. */
    if (wr_op_allowed(who, vh, WR_PERM_WRITE, dest_is_queue, dest, r) != 0)
        return -1;
    if (source.n == 0 || (!dest_is_queue && dest.n == 0))
        return fail(r, WR_AMQP_ACCESS_REFUSED, "operation not permitted on the default exchange");
    if (wr_op_allowed(who, vh, WR_PERM_READ, 0, source, r) != 0)
        return -1;
    wr_exchange_t *sx = wr_vhost_exchange(vh, source);
    const wr_topic_perm_t *tp = sx && who->user ? wr_access_topic_for(who->user, sx) : NULL;
    if (tp && !wr_pattern_match(&tp->read, key))
        return fail(r, WR_AMQP_ACCESS_REFUSED,
                    "access to topic '%.*s' in exchange '%.*s' in vhost '%s' refused for user "
                    "'%s'",
                    BYTES_FMT(key), BYTES_FMT(source), vh->name, wr_access_user_name(who->user));
    wr_queue_t *q = NULL;
    wr_exchange_t *dx = NULL, *x;
    if (dest_is_queue) {
        /* RabbitMQ 3.x: unbinding from a missing queue or exchange is ok. */
        if (!bind && (wr_vhost_queue(vh, dest) == NULL || wr_vhost_exchange(vh, source) == NULL))
            return done(r);
        if ((q = wr_op_find_queue(vh, dest, who, r)) == NULL)
            return -1;
        if ((x = wr_op_find_exchange(vh, source, r)) == NULL)
            return -1;
    } else {
        if ((dx = wr_op_find_exchange(vh, dest, r)) == NULL)
            return -1;
        if ((x = wr_op_find_exchange(vh, source, r)) == NULL)
            return -1;
    }
    if (bind) {
        if (check_binding_args(x, key, args, r) != 0)
            return -1;
        wr_bind(x, q, dx, key, args);
    } else {
        wr_unbind(x, q, dx, key, args);
    }
    /* Bindings to exchanges and quorum queues are the cluster's; those to
     * a classic queue live with it on its node. */
    if (dx || wr_queue_is_quorum(q))
        return done_wait(r, wr_cmeta_bound(bind, vh->name, source, dest_is_queue, dest, key, args));
    return done(r);
}

int wr_op_publish(wr_vhost_t *vh, const wr_publish_spec_t *s, const wr_actor_t *who, size_t *routed,
                  uint64_t *gen, wr_reply_t *r)
{
    *routed = 0;
    *gen = 0;
    if (wr_op_allowed(who, vh, WR_PERM_WRITE, 0, s->exchange, r) != 0)
        return -1;
    wr_exchange_t *x = wr_op_find_exchange(vh, s->exchange, r);
    if (x == NULL)
        return -1;
    if (x->internal)
        return fail(r, WR_AMQP_ACCESS_REFUSED,
                    "cannot publish to internal exchange '%.*s' in vhost '%s'",
                    BYTES_FMT(s->exchange), vh->name);
    const wr_topic_perm_t *tp = who->user ? wr_access_topic_for(who->user, x) : NULL;
    if (tp && !wr_pattern_match(&tp->write, s->routing_key))
        return fail(r, WR_AMQP_ACCESS_REFUSED,
                    "access to topic '%.*s' in exchange '%.*s' in vhost '%s' refused for user "
                    "'%s'",
                    BYTES_FMT(s->routing_key), BYTES_FMT(s->exchange), vh->name, who->user->name);
    if (s->body.n > wr_broker.cfg->max_message_size)
        return fail(r, WR_AMQP_PRECONDITION_FAILED,
                    "message size %zu is larger than configured max size %" PRIu64, s->body.n,
                    wr_broker.cfg->max_message_size);
    wr_basic_props_t pr = {0};
    if (s->props.n >= 2 && wr_props_decode(s->props.p, s->props.n, &pr) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "invalid message properties");
    int64_t ttl = -1;
    char why[96];
    if ((pr.flags & WR_PROP_EXPIRATION) &&
        wr_msg_parse_expiration(pr.expiration, &ttl, why, sizeof why) != 0)
        return fail(r, WR_AMQP_PRECONDITION_FAILED, "invalid expiration '%.*s': %s",
                    BYTES_FMT(pr.expiration), why);
    wr_msg_t *m = wr_msg_new(s->exchange, s->routing_key, s->props, s->body.n);
    if (s->body.n)
        wr_msg_append_body(m, s->body.p, s->body.n);
    m->persistent = (pr.flags & WR_PROP_DELIVERY_MODE) && pr.delivery_mode == 2;
    m->priority = (pr.flags & WR_PROP_PRIORITY) ? pr.priority : 0;
    m->ttl = ttl;
    x->st.n[WR_ST_PUBLISH_IN]++;
    wr_route_t rt = {NULL, 0, 0};
    wr_queue_t *one = NULL;
    wr_queue_t **qs = &one;
    size_t n = 0;
    if (s->to_queue) {
        /* Straight into one queue (replay and move), as if through the
         * default exchange but keeping the message's own exchange. */
        one = s->to_queue;
        n = 1;
    } else {
        wr_route(vh, x, s->routing_key, (pr.flags & WR_PROP_HEADERS) ? pr.headers : (wr_bytes_t){0},
                 s->props, &rt);
        qs = rt.q;
        n = rt.n;
        wr_field_t bcc;
        if ((pr.flags & WR_PROP_HEADERS) && wr_table_get(pr.headers, "BCC", &bcc))
            m = wr_msg_set_header(m, "BCC", NULL);
    }
    int rejected = 0;
    wr_waits_t w;
    wr_waits_init(&w);
    int err = wr_queues_push(vh, qs, n, m, &w, &rejected);
    /* Replay and the HTTP API wait for the vhost's store only: classic
     * queues are the only durable ones they publish to. */
    *gen = wr_waits_ticket(&w, &vh->durable);
    wr_waits_free(&w);
    free(rt.q);
    wr_msg_unref(m);
    if (err != 0)
        return fail(r, WR_AMQP_INTERNAL_ERROR, "the message store takes no writes (%s)",
                    wr_strerror(err));
    x->st.n[WR_ST_PUBLISH_OUT] += n;
    *routed = n;
    return done(r);
}
