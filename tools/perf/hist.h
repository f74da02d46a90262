/*
 * hist.h - a log-linear latency histogram for warren-perf.
 *
 * Latencies span five orders of magnitude (a few microseconds on an idle
 * broker, seconds when a backlog builds up), so a fixed-width histogram is
 * either too coarse at the bottom or too large.  Like HdrHistogram, this one
 * keeps 128 exact buckets for values below 128 and then, for each power of
 * two above that, 64 equal sub-buckets: every recorded value is known to
 * within 1/64 (1.6 %) of itself, the whole uint64_t range fits in 3,776
 * counters (30 KB), and recording is a count-leading-zeros and an increment.
 *
 * A histogram belongs to one thread while it records; merging and reading
 * happen after that thread has been joined.
 */
#ifndef WR_PERF_HIST_H
#define WR_PERF_HIST_H

#include <stdint.h>
#include <stdlib.h>

#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_HALF     (HIST_SUB / 2)
#define HIST_BUCKETS  (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)

typedef struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t bucket[HIST_BUCKETS];
} hist_t;

static inline unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    /* Shift so that the value keeps HIST_SUB_BITS significant bits; its top
     * bit is then always set, leaving HIST_HALF distinct sub-buckets. */
    unsigned e = msb - (HIST_SUB_BITS - 1);
    return HIST_SUB + (e - 1) * HIST_HALF + (unsigned)((v >> e) - HIST_HALF);
}

/* The middle of bucket i, the best single guess for the values it holds. */
static inline uint64_t hist_bucket_mid(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned k = i - HIST_SUB;
    unsigned e = k / HIST_HALF + 1;
    uint64_t lo = (uint64_t)(k % HIST_HALF + HIST_HALF) << e;
    return lo + ((uint64_t)1 << e) / 2;
}

static inline void hist_add(hist_t *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static inline void hist_merge(hist_t *into, const hist_t *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
}

/* The value at quantile q (0 < q <= 1): the smallest bucket whose
 * cumulative count reaches ceil(q * count).  0 for an empty histogram. */
static inline uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        if (cum >= rank) {
            uint64_t mid = hist_bucket_mid(i);
            /* A bucket's middle can lie above the largest value seen. */
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}

#endif
