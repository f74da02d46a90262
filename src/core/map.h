/*
 * map.h - a string-keyed hash map (open addressing, linear probing).
 *
 * Used for the broker's name tables: exchanges and queues per vhost,
 * consumers per channel, bindings by routing key.  Keys are copied into the
 * map and owned by it; values are borrowed pointers the map never frees.
 * Deletion uses backward-shift, so there are no tombstones and lookups stay
 * short under churn (queues come and go all the time).
 */
#ifndef WR_MAP_H
#define WR_MAP_H

#include "core/buf.h"

typedef struct wr_map_slot {
    char *key; /* owned copy, NUL-terminated; NULL = empty slot */
    uint32_t key_len;
    uint32_t hash;
    void *value; /* borrowed */
} wr_map_slot_t;

typedef struct wr_map {
    wr_map_slot_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} wr_map_t;

void wr_map_init(wr_map_t *m);
/* Frees the map's storage and its key copies; values are untouched. */
void wr_map_free(wr_map_t *m);
void *wr_map_get(const wr_map_t *m, wr_bytes_t key);
/* Inserts or replaces; returns the previous value or NULL. */
void *wr_map_put(wr_map_t *m, wr_bytes_t key, void *value);
/* Removes key; returns its value or NULL if it was absent. */
void *wr_map_del(wr_map_t *m, wr_bytes_t key);

/* Iteration: for (size_t i = 0; wr_map_next(m, &i, &slot);) ...  The map
 * must not be modified during iteration. */
int wr_map_next(const wr_map_t *m, size_t *i, wr_map_slot_t **slot);

uint32_t wr_hash_bytes(const uint8_t *p, size_t n);

#endif
