/* chash.c - the consistent-hash ring (see chash.h). */
#include "broker/chash.h"

#include <stdlib.h>

#include "core/buf.h"
#include "core/err.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL
#define GOLDEN     0x9e3779b97f4a7c15ULL

/* murmur3's 64-bit finaliser: every input bit affects every output bit. */
static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t wr_chash_hash(const uint8_t *p, size_t n)
{
    return fmix64(fnv1a(FNV_OFFSET, p, n) ^ (uint64_t)n);
}

uint64_t wr_chash_hash_more(uint64_t h, const uint8_t *p, size_t n)
{
    return fmix64(fnv1a(h, p, n) ^ (uint64_t)n);
}

void wr_chash_init(wr_chash_t *r)
{
    r->pts = NULL;
    r->n = r->cap = 0;
}

void wr_chash_free(wr_chash_t *r)
{
    free(r->pts);
    wr_chash_init(r);
}

static int point_cmp(const void *a, const void *b)
{
    const wr_chash_point_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->tie != y->tie)
        return x->tie < y->tie ? -1 : 1;
    return 0;
}

int wr_chash_add(wr_chash_t *r, void *dest, uint64_t seed, uint32_t weight)
{
    if (weight < 1 || weight > WR_CHASH_MAX_WEIGHT)
        return WR_ERANGE;
    size_t add = (size_t)weight * WR_CHASH_POINTS_PER_WEIGHT;
    if (r->n + add > r->cap) {
        size_t cap = r->cap ? r->cap : 64;
        while (cap < r->n + add)
            cap *= 2;
        r->pts = wr_xrealloc(r->pts, cap * sizeof *r->pts);
        r->cap = cap;
    }
    /* splitmix64 over the seed: independent, well-spread positions that
     * depend only on the binding's identity and the point's index. */
    for (size_t i = 0; i < add; i++) {
        uint64_t s = seed + (uint64_t)(i + 1) * GOLDEN;
        r->pts[r->n + i] = (wr_chash_point_t){fmix64(s), seed ^ i, dest};
    }
    r->n += add;
    /* Re-sorting the whole ring is O(n log n) per bind; binds are rare
     * next to routing, which must stay a plain binary search. */
    qsort(r->pts, r->n, sizeof *r->pts, point_cmp);
    return 0;
}

void wr_chash_remove(wr_chash_t *r, void *dest)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->pts[i].dest != dest)
            r->pts[k++] = r->pts[i];
    r->n = k; /* filtering keeps the order, so no re-sort */
}

void *wr_chash_lookup(const wr_chash_t *r, uint64_t h)
{
    if (r->n == 0)
        return NULL;
    /* First point with hash >= h; past the last point wraps to the first. */
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->pts[lo == r->n ? 0 : lo].dest;
}

int wr_chash_parse_weight(wr_bytes_t key, uint32_t *out)
{
    /* Erlang's list_to_integer accepts an optional sign then digits and
     * nothing else (no spaces, no empty string). */
    size_t i = 0;
    int neg = 0;
    if (key.n > 0 && (key.p[0] == '+' || key.p[0] == '-')) {
        neg = key.p[0] == '-';
        i = 1;
    }
    if (i == key.n)
        return WR_EINVAL;
    uint64_t v = 0;
    int big = 0;
    for (; i < key.n; i++) {
        if (key.p[i] < '0' || key.p[i] > '9')
            return WR_EINVAL;
        if (v <= WR_CHASH_MAX_WEIGHT)
            v = v * 10 + (uint64_t)(key.p[i] - '0');
        else
            big = 1; /* keep scanning: a later non-digit is still EINVAL */
    }
    if (neg || v < 1 || big || v > WR_CHASH_MAX_WEIGHT)
        return WR_ERANGE;
    *out = (uint32_t)v;
    return 0;
}
