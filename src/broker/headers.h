/*
 * headers.h - binding matching for headers exchanges.
 *
 * Semantics are RabbitMQ 4.x's (rabbit_exchange_type_headers.erl together
 * with mc_amqpl:routing_headers/2), which differ in places from what the
 * AMQP spec or older RabbitMQ releases suggest:
 *
 *  - x-match is read from the binding arguments (first occurrence).  "all"
 *    (also the default, and what any other value or type falls back to)
 *    needs every considered binding argument to match; "any" needs one.
 *    "all-with-x" / "any-with-x" also consider arguments whose key starts
 *    with "x-"; plain "all" / "any" skip those.  The x-match argument
 *    itself is never considered.  "all" with nothing considered matches
 *    every message; "any" with nothing considered matches none.
 *  - A binding argument of type void ('V') matches when the message has a
 *    header of that name, whatever its value.
 *  - Any other binding argument matches when the message's header of that
 *    name has an equal value, compared as Erlang's =:= compares the decoded
 *    values: the wire type is mostly ignored.  Long strings 'S' and byte
 *    arrays 'x' are equal when their bytes are; integers of every width
 *    (b B s u I i l) are equal when their values are; floats 'f' and 'd'
 *    likewise among themselves; but an integer never equals a float (1 is
 *    not 1.0), and booleans, decimals, void, arrays and tables only equal
 *    their own kind (inside arrays and tables the element types count).
 *    An empty array equals an empty table (both are the empty list).
 *  - A message timestamp header ('T') is compared in milliseconds (its
 *    value times 1000) while the binding argument is taken as is, so a
 *    binding argument 'T' 5 does not match a header 'T' 5, but an integer
 *    binding argument 5000 does.  This is RabbitMQ 4.x behaviour.
 *  - If a message repeats a header name, the last occurrence counts.
 *
 * Both tables are wire-form table contents (see proto/table.h) that have
 * been validated; either may be empty.  Nothing is retained or allocated.
 */
#ifndef WR_HEADERS_H
#define WR_HEADERS_H

#include <stddef.h>

#include "core/buf.h"

/* 1 if a message with headers msg_headers is routed by a binding with
 * arguments binding_args, else 0 (also for malformed input). */
int wr_headers_match(wr_bytes_t binding_args, wr_bytes_t msg_headers);

/* Checks the x-match argument of a new binding as RabbitMQ's
 * validate_binding does.  Returns 0 if it is absent or one of the long
 * strings all, any, all-with-x, any-with-x; otherwise WR_EINVAL with
 * RabbitMQ's reply text in err (always NUL-terminated if errlen > 0; err
 * may be NULL), e.g.
 *   Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x
 *   Invalid x-match field type binary (value <<"any">>); expected longstr
 * The channel answers it with 406 PRECONDITION_FAILED, RabbitMQ's text
 * being "PRECONDITION_FAILED - " followed by this message. */
int wr_headers_validate_binding(wr_bytes_t binding_args, char *err, size_t errlen);

#endif
