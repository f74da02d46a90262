/*
 * defs.h - definitions: the whole topology in RabbitMQ's JSON format.
 *
 * Export writes what `rabbitmqctl export_definitions` writes (users with
 * their password hashes, vhosts, permissions, topic_permissions,
 * policies, parameters for vhost limits and operator policies, queues,
 * exchanges, bindings), so the file imports into RabbitMQ or warren.
 * Import reads a RabbitMQ export unchanged.  It runs in two passes: the
 * first checks everything (JSON shape, names, password hashes, regular
 * expressions, policy definitions, queue arguments, exchange types, that
 * what bindings and permissions name exists or is in the file, and that
 * a queue or exchange that exists already is equivalent), so a bad file
 * is refused whole with a message naming the object and nothing is
 * applied; the second applies it through the same operations as AMQP and
 * warrenctl (broker/ops.h, broker/access.h, broker/policy.h, meta.h).
 */
#ifndef WR_DEFS_H
#define WR_DEFS_H

#include <jansson.h>
#include <stddef.h>

/* The definitions of the whole broker, or of one vhost (then without
 * users, vhosts and permissions, as RabbitMQ's per-vhost export). */
json_t *wr_defs_export(const char *vhost);

/* Imports definitions (a JSON text).  With vhost non-NULL, every object
 * goes to that vhost and users, vhosts and permissions are ignored.
 * Returns 0, or -1 with err filled and nothing changed. */
int wr_defs_import(const char *text, size_t len, const char *vhost, char *err, size_t errlen);

/* load_definitions at boot: imports the file. */
int wr_defs_load_file(const char *path, char *err, size_t errlen);

#endif
