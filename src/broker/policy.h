/*
 * policy.h - policies and operator policies, and the effective arguments
 * of queues and exchanges.
 *
 * A policy has a name, a pattern (a regular expression, as permissions'),
 * what it applies to (queues, exchanges or all), a priority and a
 * definition: keys warren implements (dead-letter-exchange,
 * dead-letter-routing-key, message-ttl, expires, max-length,
 * max-length-bytes, overflow, delivery-limit, queue-mode, and
 * alternate-exchange for exchanges).  A pattern matches anywhere in the
 * name unless anchored, as in RabbitMQ; of a vhost's policies that match
 * a queue or exchange, the one with the highest priority applies (equal
 * priorities: the first by name).  Operator policies are
 * chosen the same way among themselves, limited to the numeric keys.
 *
 * The effective value of a key, as RabbitMQ 3.10 computes it for classic
 * queues: for message-ttl, expires, max-length, max-length-bytes and
 * delivery-limit the smallest of the queue's x- argument, the policy's
 * value and the operator policy's (the stricter wins); for the others the
 * argument if the queue has one, else the policy's.
 *
 * Setting, changing or clearing a policy re-applies every policy of the
 * vhost at once: a lower max-length drops the excess from the head (when
 * overflow is drop-head), a new dead-letter-exchange takes effect for the
 * next dead letter, a new message-ttl for messages published after it.
 */
#ifndef WR_POLICY_H
#define WR_POLICY_H

#include "broker/access.h"
#include "broker/vhost.h"

enum { WR_APPLY_QUEUES = 1, WR_APPLY_EXCHANGES = 2, WR_APPLY_ALL = 3 };

typedef struct wr_policy {
    char *name;
    wr_pattern_t pattern;
    int apply_to; /* WR_APPLY_* */
    int64_t priority;
    char *definition; /* the definition as compact JSON, keys sorted */
    /* Parsed; -1 (numbers) or NULL (strings) when the key is absent. */
    int64_t message_ttl, expires, max_length, max_length_bytes, delivery_limit;
    int overflow;    /* WR_OVERFLOW_*, or -1 */
    int dl_strategy; /* dead-letter-strategy: 1 at-least-once, 0 at-most-once, -1 */
    char *dlx, *dlrk, *alternate, *queue_mode;
    struct wr_policy *next;
} wr_policy_t;

/* Sets (adds or replaces) a policy or, with op, an operator policy of
 * vh from RabbitMQ's arguments (definition: a JSON object text; apply_to
 * "queues", "exchanges" or "all"), and re-applies the vhost's policies.
 * 0, or -1 with RabbitMQ's validation message in err. */
int wr_policy_set(wr_vhost_t *vh, int op, const char *name, const char *pattern,
                  const char *definition, int64_t priority, const char *apply_to, char *err,
                  size_t errlen);
/* Removes one; 0, or -1 if there is none by that name. */
int wr_policy_clear(wr_vhost_t *vh, int op, const char *name);
/* The list of policies (op: operator policies) of vh, by name. */
const wr_policy_t *wr_policy_list(const wr_vhost_t *vh, int op);
void wr_policy_free_all(wr_vhost_t *vh);
const char *wr_policy_apply_to_name(int apply_to);

/* (Re)computes q's effective arguments from its declared ones and the
 * policies that match it now, and enforces a lower length limit. */
void wr_policy_apply_queue(wr_queue_t *q);
void wr_policy_apply_exchange(wr_exchange_t *x);
/* Every queue and exchange of vh. */
void wr_policy_apply_all(wr_vhost_t *vh);

/* The policy and operator policy applied to q (NULL if none). */
const wr_policy_t *wr_policy_of_queue(const wr_queue_t *q, int op);

#endif
