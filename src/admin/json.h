/*
 * json.h - the JSON shapes the control plane shares: an AMQP field table
 * as an object (as RabbitMQ shows arguments), and a comma-separated tag
 * list as an array.  Used by warrenctl's replies (ctl.c), definitions
 * (defs.c), broker.json (meta.c) and the HTTP API (mgmt/api.c).
 */
#ifndef WR_JSON_H
#define WR_JSON_H

#include <jansson.h>

#include "proto/table.h"

/* A table's content as an object: strings, integers, reals, booleans,
 * null, nested tables and arrays (nesting below 32 levels becomes null). */
json_t *wr_json_table(wr_bytes_t table);
json_t *wr_json_field(const wr_field_t *f);
/* "a,b" -> ["a", "b"] (empty entries left out). */
json_t *wr_json_tags(const char *csv);

/* Writes a JSON object as the content of an AMQP table (without the
 * length), as RabbitMQ converts definitions' arguments and the HTTP API's
 * arguments and headers: strings are long strings, integers longs, reals
 * doubles, objects tables, arrays arrays. */
void wr_json_put_table(wr_buf_t *b, const json_t *o);

#endif
