/*
 * vhost.h - a virtual host: its exchanges, queues and bindings, and
 * message routing.
 *
 * Exchanges route by type: the default exchange looks the queue up by
 * name; direct keeps bindings in a hash map by routing key; fanout walks
 * its bindings; topic uses a trie (broker/topic.h); headers evaluates each
 * binding's arguments against the message headers (broker/headers.h);
 * x-consistent-hash sends each message to exactly one binding, picked on a
 * hash ring (broker/chash.h) by the routing key, or by the header or
 * property its hash-header / hash-property argument names, with each
 * binding's key read as its weight.
 * Exchange-to-exchange bindings are followed recursively, each exchange at
 * most once per message, so cycles terminate; each queue receives a
 * message at most once however many bindings lead to it.  An exchange with
 * an alternate-exchange argument hands unroutable messages to it.
 *
 * Bindings are linked into both ends (source exchange, destination queue
 * or exchange) so that deleting either end removes them in time
 * proportional to its own bindings.
 */
#ifndef WR_VHOST_H
#define WR_VHOST_H

#include "broker/chash.h"
#include "core/durable.h"
#include "broker/queue.h"
#include "broker/topic.h"
#include "core/map.h"

typedef enum wr_extype {
    WR_EX_DIRECT,
    WR_EX_FANOUT,
    WR_EX_TOPIC,
    WR_EX_HEADERS,
    WR_EX_CONSISTENT_HASH,
} wr_extype_t;

/* The highest type code, for checking type codes read back from the
 * store (new types are only ever appended, as the codes are persisted). */
#define WR_EX_LAST WR_EX_CONSISTENT_HASH

/* What an x-consistent-hash exchange hashes (its hash-* argument). */
enum {
    WR_CH_ROUTING_KEY,
    WR_CH_HEADER,
    WR_CH_MESSAGE_ID,
    WR_CH_CORRELATION_ID,
    WR_CH_TIMESTAMP,
};

typedef struct wr_exchange wr_exchange_t;

struct wr_binding {
    wr_exchange_t *source;
    wr_queue_t *dq;    /* destination queue, or */
    wr_exchange_t *dx; /* destination exchange */
    char *key;
    size_t key_len;
    wr_buf_t args;                     /* arguments table content */
    wr_binding_t *src_next, *src_prev; /* in source->bindings */
    wr_binding_t *dst_next, *dst_prev; /* in dq->bindings or dx->dest_bindings */
    wr_binding_t *key_next;            /* direct: same-key chain */
};

struct wr_exchange {
    char *name;
    const struct wr_policy *policy; /* the policy applied, or NULL */
    size_t name_len;
    wr_vhost_t *vhost;
    wr_extype_t type;
    uint8_t durable;
    uint8_t auto_delete;
    uint8_t internal;
    uint8_t builtin;  /* predeclared amq.* or the default exchange */
    uint8_t deleting; /* being deleted: its bindings go without auto-delete */
    uint8_t delayed;  /* x-delayed-message: type is its x-delayed-type */
    wr_buf_t args_raw;
    char *alternate;             /* alternate-exchange argument, or NULL */
    wr_binding_t *bindings;      /* as source */
    wr_binding_t *dest_bindings; /* as destination */
    size_t n_bindings;
    wr_map_t by_key;   /* direct: key -> first binding of the chain */
    wr_topic_t *topic; /* topic: pattern trie, dest = binding */
    wr_chash_t *ring;  /* x-consistent-hash: points, dest = binding */
    char *hash_header; /* x-consistent-hash: header name (WR_CH_HEADER) */
    uint8_t hash_on;   /* x-consistent-hash: WR_CH_* */
    uint64_t route_mark;
    wr_counters_t st; /* publish_in, publish_out (broker/stats.h) */
    wr_rates_t rt;
};

struct wr_vhost {
    char *name;
    uint32_t id;       /* registry number: its store is data_dir/vhosts/ID */
    char *dir;         /* that directory, once its store is open, or NULL */
    wr_store_t *store; /* durable state, or NULL (no persistence) */
    char *description; /* never NULL */
    char *tags;        /* comma-separated, never NULL */
    /* Limits (set_vhost_limits): -1 = none. */
    int64_t max_connections, max_queues;
    uint32_t n_connections;                   /* open (counted from connection.open-ok) */
    struct wr_policy *policies, *op_policies; /* broker/policy.h, by name */
    /* The store as a durability domain (core/durable.h): its tickets
     * are store generations; confirms and commits wait on it. */
    wr_durable_t durable;
    uint8_t recovering; /* rebuilding from the store: write nothing back */
    wr_map_t exchanges;
    wr_map_t queues;
    uint64_t route_epoch;
    /* Bumped whenever an exchange or queue is added or removed: a pointer
     * a channel cached under an older value may be stale. */
    uint64_t names_gen;
    wr_stats_agg_t stats; /* its channels' message statistics */
};

wr_vhost_t *wr_vhost_new(const char *name);
void wr_vhost_free(wr_vhost_t *vh);

/* Parses an exchange type name; -1 if unknown. */
int wr_extype_parse(wr_bytes_t s);
const char *wr_extype_name(wr_extype_t t);

wr_exchange_t *wr_vhost_exchange(wr_vhost_t *vh, wr_bytes_t name);
wr_queue_t *wr_vhost_queue(wr_vhost_t *vh, wr_bytes_t name);

wr_exchange_t *wr_exchange_declare(wr_vhost_t *vh, wr_bytes_t name, wr_extype_t type, int durable,
                                   int auto_delete, int internal, wr_bytes_t args);
void wr_exchange_delete(wr_exchange_t *x);
/* Checks declare arguments that the exchange type gives a meaning to, as
 * RabbitMQ's exchange type validate/1 does.  0 if acceptable; otherwise
 * -1 with a message for a 406 PRECONDITION_FAILED in err. */
int wr_exchange_validate_args(int type, wr_bytes_t args, char *err, size_t errlen);
/* Checks a binding's key against the source exchange's type (an
 * x-consistent-hash key must be a weight, 1..WR_CHASH_MAX_WEIGHT).  0 if
 * acceptable; otherwise -1 with a message for a 406 in err. */
int wr_exchange_validate_binding(const wr_exchange_t *x, wr_bytes_t key, char *err, size_t errlen);
/* Does the exchange have bindings as source (for if-unused)? */
int wr_exchange_in_use(const wr_exchange_t *x);

/* Adds a binding; 0 if added or already present; WR_EINVAL or WR_ERANGE
 * (nothing added) if the key is not a valid x-consistent-hash weight. */
int wr_bind(wr_exchange_t *src, wr_queue_t *dq, wr_exchange_t *dx, wr_bytes_t key, wr_bytes_t args);
/* Removes a binding; 0 if removed, WR_ENOTFOUND if there was none. */
int wr_unbind(wr_exchange_t *src, wr_queue_t *dq, wr_exchange_t *dx, wr_bytes_t key,
              wr_bytes_t args);
/* Removes a binding already found (used when a queue or exchange goes). */
void wr_binding_remove(wr_binding_t *b);

/* Routing result: the queues a message goes to, de-duplicated. */
typedef struct wr_route {
    wr_queue_t **q;
    size_t n, cap;
} wr_route_t;

/* Routes through exchange x (NULL = the default exchange) with routing key
 * and the message headers; appends matching queues to r (which the caller
 * clears).  CC and BCC headers are honoured as RabbitMQ does.  props is
 * the encoded property list (from the flags word, as wr_msg_props gives
 * it; may be empty): it is decoded only by x-consistent-hash exchanges
 * that hash a property, or a header when headers is empty.  All views are
 * borrowed for the call only. */
void wr_route(wr_vhost_t *vh, wr_exchange_t *x, wr_bytes_t key, wr_bytes_t headers,
              wr_bytes_t props, wr_route_t *r);

/* x-delayed-message exchanges hold messages in a hidden queue named
 * "amq.delayed." + the exchange's name until their x-delay has passed
 * (clients cannot declare amq. names).  Writes that name into out. */
void wr_delay_queue_name(const wr_exchange_t *x, char *out, size_t outlen);
wr_queue_t *wr_delay_queue(wr_exchange_t *x);

/* Generates a server name like "amq.gen-XXXXXXXXXXXXXXXXXXXXXX". */
void wr_gen_name(const char *prefix, char *out, size_t outlen);

#endif
