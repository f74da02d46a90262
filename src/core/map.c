/* map.c - string-keyed open-addressing hash map (see map.h). */
#include "core/map.h"

#include <stdlib.h>

uint32_t wr_hash_bytes(const uint8_t *p, size_t n)
{
    /* FNV-1a: short keys (queue names, routing keys) dominate, and it is
     * cheap and well distributed for them. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void wr_map_init(wr_map_t *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void wr_map_free(wr_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    wr_map_init(m);
}

static size_t find(const wr_map_t *m, wr_bytes_t key, uint32_t h, int *found)
{
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    for (;;) {
        wr_map_slot_t *s = &m->slots[i];
        if (s->key == NULL) {
            *found = 0;
            return i;
        }
        if (s->hash == h && s->key_len == key.n && memcmp(s->key, key.p, key.n) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void grow(wr_map_t *m)
{
    size_t oldcap = m->cap;
    wr_map_slot_t *old = m->slots;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->slots = wr_xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key == NULL)
            continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].key != NULL)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void *wr_map_get(const wr_map_t *m, wr_bytes_t key)
{
    if (m->count == 0)
        return NULL;
    int found;
    size_t i = find(m, key, wr_hash_bytes(key.p, key.n), &found);
    return found ? m->slots[i].value : NULL;
}

void *wr_map_put(wr_map_t *m, wr_bytes_t key, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    uint32_t h = wr_hash_bytes(key.p, key.n);
    int found;
    size_t i = find(m, key, h, &found);
    wr_map_slot_t *s = &m->slots[i];
    if (found) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    s->key = wr_xstrndup((const char *)key.p, key.n);
    s->key_len = (uint32_t)key.n;
    s->hash = h;
    s->value = value;
    m->count++;
    return NULL;
}

void *wr_map_del(wr_map_t *m, wr_bytes_t key)
{
    if (m->count == 0)
        return NULL;
    int found;
    size_t i = find(m, key, wr_hash_bytes(key.p, key.n), &found);
    if (!found)
        return NULL;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward-shift the following cluster so probes never stop early. */
    size_t mask = m->cap - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Move j into the hole if its home is not in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            hole = j;
        }
    }
    return value;
}

int wr_map_next(const wr_map_t *m, size_t *i, wr_map_slot_t **slot)
{
    while (*i < m->cap) {
        wr_map_slot_t *s = &m->slots[(*i)++];
        if (s->key != NULL) {
            *slot = s;
            return 1;
        }
    }
    return 0;
}
