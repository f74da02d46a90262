/*
 * args.h - RabbitMQ's equivalence check for redeclared queues and
 * exchanges.
 *
 * A redeclaration must match the arguments the entity was created with,
 * for the keys RabbitMQ checks (others are ignored).  Values compare by
 * "type class" and value: integers of any width are one class, so
 * 'I' 5 equals 'l' 5, as in rabbit_misc:assert_args_equivalence.
 */
#ifndef WR_ARGS_H
#define WR_ARGS_H

#include "core/buf.h"

/* Checks each key of the NULL-terminated list keys.  Returns 1 if current
 * and received are equivalent; else 0 with err set to RabbitMQ's text
 * (without the "PRECONDITION_FAILED - " prefix), where what names the
 * entity, e.g. "queue 'q' in vhost '/'". */
int wr_args_equivalent(wr_bytes_t current, wr_bytes_t received, const char *const *keys,
                       const char *what, char *err, size_t errlen);

/* The argument keys RabbitMQ compares on queue and exchange redeclaration. */
extern const char *const wr_queue_equiv_keys[];
extern const char *const wr_exchange_equiv_keys[];

#endif
