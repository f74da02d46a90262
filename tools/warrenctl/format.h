/*
 * format.h - how warrenctl prints the JSON values of a listing.
 *
 * The broker sends each cell as plain JSON; rabbitmqctl 3.10 prints the
 * same data in shapes that come from Erlang, and scripts parse those
 * shapes, so warrenctl reproduces them:
 *
 *   JSON value          table formatter                json formatter
 *   "text"              text (raw, no quoting)         "text"
 *   12, 0.4, 1e6        12, 0.4, 1.0e6 (Erlang)        12, 0.4, 1.0e6
 *   true / false        true / false                   true / false
 *   null                (empty)                        null
 *   ["a", "b"] (tags)   [a, b]                         ["a","b"]
 *   {"k": "v", "n": 1}  [{"k","v"},{"n",1}]            [["k","longstr","v"],
 *   (argument tables)                                   ["n","long",1]]
 *
 * Inside an argument table values are printed as Erlang terms (strings
 * quoted, the empty string as [], null as undefined), and in JSON each
 * entry carries the AMQP field type that RabbitMQ would report, inferred
 * from the JSON type: longstr, long, double, bool, void, table, array.
 */
#ifndef WR_CTL_FORMAT_H
#define WR_CTL_FORMAT_H

#include <stdio.h>

#include <jansson.h>

/* Writes d as Erlang's ~p writes a float: the shortest digits that read
 * back as d, in plain or exponent notation, whichever is shorter ("0.4",
 * "100.0", "1.0e3", "1.0e-10").  out should hold at least 32 bytes. */
void wr_ctl_format_float(double d, char *out, size_t outlen);

/* Writes one table cell for v to f (no tab, no newline). */
void wr_ctl_format_cell(FILE *f, const json_t *v);

/* Writes v to f as compact JSON in rabbitmqctl's shapes (objects as
 * argument tables of [key, type, value] triples). */
void wr_ctl_format_json(FILE *f, const json_t *v);

/* Writes v to f as compact JSON, objects as objects and numbers as
 * wr_ctl_format_float writes them (for "json" replies such as status). */
void wr_ctl_format_json_plain(FILE *f, const json_t *v);

#endif
