/*
 * table.h - AMQP field tables and field values (RabbitMQ's dialect).
 *
 * Tables are kept in their wire form: a wr_bytes_t view of the table's
 * content (without the 4-byte length prefix).  Nothing is decoded into a
 * tree; callers iterate, or look one key up.  This keeps message headers a
 * zero-copy pass-through on the hot path and lets a table be forwarded
 * byte-exact.  Every table that enters warren is validated once, with
 * wr_table_validate, when its frame is decoded; iteration over a validated
 * table cannot fail.
 *
 * Field value types, as RabbitMQ reads and writes them (the 0-9-1 errata):
 *   t bool, b int8, B uint8, s int16, u uint16, I int32, i uint32, l int64,
 *   f float, d double, D decimal (scale octet + uint32), S long string,
 *   x byte array (long), A array, T timestamp (uint64), F table, V void.
 */
#ifndef WR_TABLE_H
#define WR_TABLE_H

#include "core/buf.h"

/* Tables or arrays nested deeper than this are refused as malformed.
 * RabbitMQ accepts any depth that fits a frame (about 18,000 levels in a
 * 131072-octet frame); so does warren up to this bound, which keeps the
 * recursive validation's stack use (a few MB at most) safe even with
 * larger configured frame sizes. */
#define WR_TABLE_MAX_DEPTH 20000

typedef struct wr_field {
    uint8_t type; /* the wire type octet, e.g. 'S' */
    union {
        int64_t i;  /* t (0/1), b, s, I, l, and unsigned B, u, i widened */
        uint64_t u; /* T */
        float f;    /* f */
        double d;   /* d */
        struct {
            uint8_t scale;
            uint32_t value;
        } dec;            /* D */
        wr_bytes_t bytes; /* S, x; and the raw content of A and F */
    } v;
} wr_field_t;

typedef struct wr_table_iter {
    const uint8_t *p;
    const uint8_t *end;
} wr_table_iter_t;

/* Returns 0 if t is a well-formed table content (recursively), WR_EFRAME if
 * it is truncated, has an unknown type octet or trailing garbage, and
 * WR_EDEPTH if nested deeper than max_depth. */
int wr_table_validate(wr_bytes_t t, int max_depth);
int wr_array_validate(wr_bytes_t a, int max_depth);

/* Iteration over a validated table / array.  next returns 1 with the entry
 * filled, 0 at the end, WR_EFRAME if the data is malformed. */
void wr_table_iter_init(wr_table_iter_t *it, wr_bytes_t t);
int wr_table_next(wr_table_iter_t *it, wr_bytes_t *key, wr_field_t *val);
int wr_array_next(wr_table_iter_t *it, wr_field_t *val);

/* Looks key up in a validated table: 1 and *val filled if present, else 0.
 * When a key appears more than once, the first occurrence wins. */
int wr_table_get(wr_bytes_t t, const char *key, wr_field_t *val);

/* Integer value of any integer-typed field (b B s u I i l); 1 if it was
 * one, else 0. */
int wr_field_int(const wr_field_t *f, int64_t *out);

/* Compares two values as RabbitMQ's headers exchange does: same type and
 * same value (tables and arrays byte-for-byte). */
int wr_field_equal(const wr_field_t *a, const wr_field_t *b);

/* Encoding.  wr_field_put appends the type octet and the value.
 * wr_table_begin reserves the 4-byte length and returns its offset;
 * wr_table_end patches it.  Between them the caller appends entries with
 * wr_table_put_key followed by wr_field_put (or nested begin/end). */
void wr_field_put(wr_buf_t *b, const wr_field_t *f);
void wr_table_put_key(wr_buf_t *b, wr_bytes_t key);
size_t wr_table_begin(wr_buf_t *b);
void wr_table_end(wr_buf_t *b, size_t off);

/* Convenience constructors. */
static inline wr_field_t wr_field_longstr(wr_bytes_t s)
{
    wr_field_t f;
    f.type = 'S';
    f.v.bytes = s;
    return f;
}
static inline wr_field_t wr_field_long(int64_t v)
{
    wr_field_t f;
    f.type = 'l';
    f.v.i = v;
    return f;
}
static inline wr_field_t wr_field_bool(int v)
{
    wr_field_t f;
    f.type = 't';
    f.v.i = v ? 1 : 0;
    return f;
}
static inline wr_field_t wr_field_timestamp(uint64_t v)
{
    wr_field_t f;
    f.type = 'T';
    f.v.u = v;
    return f;
}

/* RabbitMQ's (Erlang) name of a field type octet, as its error texts print
 * it: "longstr", "signedint", "long", "bool", "double", ... */
const char *wr_field_type_name(uint8_t type);

/* Formats a field's value as Erlang's ~p/~ts would in RabbitMQ's texts:
 * strings as their text, integers in decimal, booleans true/false. */
void wr_field_format(const wr_field_t *f, char *out, size_t n);

#endif
