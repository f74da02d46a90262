/*
 * chash.h - the hash ring behind the x-consistent-hash exchange type.
 *
 * RabbitMQ's rabbitmq_consistent_hash_exchange plugin routes each message
 * to exactly one destination, chosen by hashing the routing key (or a
 * nominated header or property); the binding key is a weight, and a
 * destination bound with weight w receives about w/sum(weights) of the
 * keys.  This module is the ring only: each binding contributes
 * w * WR_CHASH_POINTS_PER_WEIGHT points, a key maps to the first point at
 * or after its hash (wrapping around), and that point's destination wins.
 *
 * Point positions are derived from a caller-supplied seed (the binding's
 * identity: destination and key), never from randomness or insertion
 * order, so the same set of bindings gives the same ring after a restart
 * or in any binding order.  Adding a binding therefore moves only the keys
 * that fall on its new arcs (about w/sum of them) and leaves every other
 * key where it was; removing one moves only the keys it held.
 *
 * Invariants: pts[0..n) is sorted by (hash, tie); a lookup allocates
 * nothing and takes O(log n).  Dest pointers are borrowed; the caller
 * removes a dest before freeing it.
 */
#ifndef WR_CHASH_H
#define WR_CHASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Virtual points per unit of weight.  A ring share's relative spread is
 * about 1/sqrt(points), so 160 keeps a weight-1 binding within ~8% of its
 * fair share while a weight-10000 binding still costs only ~25 MB. */
#define WR_CHASH_POINTS_PER_WEIGHT 160u
/* Largest accepted weight; bounds the memory one binding can claim. */
#define WR_CHASH_MAX_WEIGHT 10000u

typedef struct wr_chash_point {
    uint64_t hash; /* position on the ring */
    uint64_t tie;  /* orders equal positions deterministically */
    void *dest;    /* borrowed */
} wr_chash_point_t;

typedef struct wr_chash {
    wr_chash_point_t *pts; /* owned; sorted */
    size_t n, cap;
} wr_chash_t;

void wr_chash_init(wr_chash_t *r);
void wr_chash_free(wr_chash_t *r);

/* Adds weight * WR_CHASH_POINTS_PER_WEIGHT points for dest, placed by
 * seed.  weight must be 1..WR_CHASH_MAX_WEIGHT (else WR_ERANGE). */
int wr_chash_add(wr_chash_t *r, void *dest, uint64_t seed, uint32_t weight);
/* Removes every point of dest (no-op if it has none). */
void wr_chash_remove(wr_chash_t *r, void *dest);
/* The destination owning hash h, or NULL if the ring is empty. */
void *wr_chash_lookup(const wr_chash_t *r, uint64_t h);

/* The 64-bit hash used for keys and seeds: FNV-1a over the bytes, then a
 * murmur3 finaliser so that short keys differing in one byte land far
 * apart (plain FNV leaves the high bits, which the ring orders by, weak). */
uint64_t wr_chash_hash(const uint8_t *p, size_t n);
/* Hashes more bytes on top of h (a previous result), to combine fields. */
uint64_t wr_chash_hash_more(uint64_t h, const uint8_t *p, size_t n);

/* Parses a binding key as the plugin does: a decimal integer (optional
 * sign, digits only).  Returns 0 with *out set if it is 1..MAX_WEIGHT;
 * WR_EINVAL if it is not an integer; WR_ERANGE if < 1 or too large. */
int wr_chash_parse_weight(wr_bytes_t key, uint32_t *out);

#endif
