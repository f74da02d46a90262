/*
 * ops.h - the operations layer: every change to a vhost's topology.
 *
 * Declaring, deleting, binding and purging exchanges and queues happen
 * here and nowhere else, whoever asks: the AMQP channel (broker/channel.c),
 * the control socket behind warrenctl (admin/ctl.c) and the HTTP API.
 * Each operation checks the actor's permission, applies RabbitMQ's rules
 * (reserved names, equivalence of a redeclaration, exclusivity, if-unused
 * and if-empty), changes the vhost, and writes durable changes to its
 * store (broker/persist.h).  It answers with a wr_reply_t: code 0, or an
 * AMQP reply code and RabbitMQ's reply text (without the "NAME - "
 * prefix, which each front end adds as its protocol shows errors).  A
 * front end maps the code: the channel closes itself (soft codes) or the
 * connection (hard ones), warrenctl prints the text and exits non-zero,
 * HTTP answers a status and a JSON error.
 */
#ifndef WR_OPS_H
#define WR_OPS_H

#include "broker/vhost.h"

typedef struct wr_conn wr_conn_t;
typedef struct wr_user wr_user_t;

typedef struct wr_reply {
    uint16_t code; /* 0 = done; else an AMQP reply code (WR_AMQP_*) */
    char text[256];
    /* Clustered: the change was handed to the cluster's metadata log
     * under this ticket; a front end that answers only once it is on a
     * majority waits for it (broker/cmeta.h).  0: nothing to wait for. */
    uint64_t wait;
} wr_reply_t;

/* Who asks.  A NULL user is the broker's operator (warrenctl): every
 * permission.  conn is the AMQP connection, which owns the exclusive
 * queues it declares; NULL elsewhere (such a caller cannot touch an
 * exclusive queue, as in RabbitMQ's management API). */
typedef struct wr_actor {
    const wr_user_t *user;
    wr_conn_t *conn;
} wr_actor_t;

/* What a permission is checked for (RabbitMQ's configure, write, read). */
typedef enum wr_perm {
    WR_PERM_CONFIGURE,
    WR_PERM_WRITE,
    WR_PERM_READ,
} wr_perm_t;

/* 0 if the actor may perm the queue (is_queue) or exchange called name in
 * vh; else -1 with 403 ACCESS_REFUSED in r. */
int wr_op_allowed(const wr_actor_t *who, wr_vhost_t *vh, wr_perm_t perm, int is_queue,
                  wr_bytes_t name, wr_reply_t *r);

/* Lookups as an operation sees them: NOT_FOUND, or RESOURCE_LOCKED for
 * an exclusive queue of another connection. */
wr_queue_t *wr_op_find_queue(wr_vhost_t *vh, wr_bytes_t name, const wr_actor_t *who, wr_reply_t *r);
wr_exchange_t *wr_op_find_exchange(wr_vhost_t *vh, wr_bytes_t name, wr_reply_t *r);

typedef struct wr_exchange_spec {
    wr_bytes_t name;
    wr_bytes_t type; /* "direct", ..., or "x-delayed-message" */
    uint8_t passive, durable, auto_delete, internal;
    wr_bytes_t args; /* arguments table content */
} wr_exchange_spec_t;

int wr_op_exchange_declare(wr_vhost_t *vh, const wr_exchange_spec_t *s, const wr_actor_t *who,
                           wr_reply_t *r);
int wr_op_exchange_delete(wr_vhost_t *vh, wr_bytes_t name, int if_unused, const wr_actor_t *who,
                          wr_reply_t *r);

typedef struct wr_queue_spec {
    wr_bytes_t name; /* empty (not passive): the broker names it amq.gen-... */
    uint8_t passive, durable, exclusive, auto_delete;
    wr_bytes_t args;
    /* Definitions import: a name with the reserved amq. prefix (a
     * server-named queue exported by RabbitMQ) is accepted, as there. */
    uint8_t allow_reserved;
} wr_queue_spec_t;

/* Declares (or checks, passive) a queue; *out is the queue on success. */
int wr_op_queue_declare(wr_vhost_t *vh, const wr_queue_spec_t *s, const wr_actor_t *who,
                        wr_queue_t **out, wr_reply_t *r);

/* Deletes a queue (a missing one is no error, as in RabbitMQ 3.x).  Once
 * the checks passed, ok(ctx, ready messages) runs before the queue goes,
 * so that delete-ok precedes the basic.cancel its consumers get. */
int wr_op_queue_delete(wr_vhost_t *vh, wr_bytes_t name, int if_unused, int if_empty,
                       const wr_actor_t *who, void (*ok)(void *ctx, uint32_t count), void *ctx,
                       wr_reply_t *r);

/* Purges a queue; *count is the number of messages removed. */
int wr_op_queue_purge(wr_vhost_t *vh, wr_bytes_t name, const wr_actor_t *who, uint32_t *count,
                      wr_reply_t *r);

/* Binds or unbinds (bind = 0) the queue or exchange (dest_is_queue)
 * called dest to source.  Unbinding a binding, queue or exchange that
 * does not exist succeeds, as in RabbitMQ 3.x. */
int wr_op_bind(wr_vhost_t *vh, int bind, wr_bytes_t source, int dest_is_queue, wr_bytes_t dest,
               wr_bytes_t key, wr_bytes_t args, const wr_actor_t *who, wr_reply_t *r);

/* A message published without a channel: the HTTP API's publish, and
 * the replay and move of messages.  props is the encoded property list
 * (from the flags word; may be empty). */
typedef struct wr_publish_spec {
    wr_bytes_t exchange, routing_key, props, body;
    wr_queue_t *to_queue; /* not NULL: into this queue only, not routed */
} wr_publish_spec_t;

/* Checks write permission (and topic permission) on the exchange as
 * basic.publish does, routes and enqueues the message, writing it to the
 * store when persistent and bound for durable queues.  *routed is the
 * number of queues it reached, *gen the store generation holding it
 * (0 if none: wait for it before relying on it). */
int wr_op_publish(wr_vhost_t *vh, const wr_publish_spec_t *s, const wr_actor_t *who, size_t *routed,
                  uint64_t *gen, wr_reply_t *r);

#endif
