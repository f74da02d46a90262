/* test_chash.c - the x-consistent-hash ring: weights parse as the plugin
 * parses them, shares follow weights, keys are stable, and adding or
 * removing a binding moves only the keys it gains or loses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/chash.h"
#include "core/err.h"
#include "test.h"

#define NKEYS 10000

static int dests[8];
#define D(i) ((void *)&dests[(i)])

static uint64_t key_hash(int i)
{
    char k[32];
    int n = snprintf(k, sizeof k, "key-%d", i);
    return wr_chash_hash((const uint8_t *)k, (size_t)n);
}

static uint64_t seed_of(int i)
{
    char s[32];
    int n = snprintf(s, sizeof s, "q%d", i);
    return wr_chash_hash((const uint8_t *)s, (size_t)n);
}

static int dest_index(void *d)
{
    return (int)((int *)d - dests);
}

static void test_chash_parse_weight(void)
{
    uint32_t w = 0;
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("1"), &w), 0);
    CHECK_EQ(w, 1);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("+25"), &w), 0);
    CHECK_EQ(w, 25);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("10000"), &w), 0);
    CHECK_EQ(w, 10000);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("0"), &w), WR_ERANGE);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("-3"), &w), WR_ERANGE);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("10001"), &w), WR_ERANGE);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("99999999999999999999999"), &w), WR_ERANGE);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of(""), &w), WR_EINVAL);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("-"), &w), WR_EINVAL);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("abc"), &w), WR_EINVAL);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("1.5"), &w), WR_EINVAL);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of(" 1"), &w), WR_EINVAL);
    CHECK_EQ(wr_chash_parse_weight(wr_bytes_of("99999999999x"), &w), WR_EINVAL);
}

static void test_chash_empty_and_single(void)
{
    wr_chash_t r;
    wr_chash_init(&r);
    CHECK(wr_chash_lookup(&r, 12345) == NULL);
    CHECK_EQ(wr_chash_add(&r, D(0), seed_of(0), 0), WR_ERANGE);
    CHECK_EQ(wr_chash_add(&r, D(0), seed_of(0), 1), 0);
    for (int i = 0; i < 1000; i++)
        CHECK(wr_chash_lookup(&r, key_hash(i)) == D(0));
    CHECK(wr_chash_lookup(&r, 0) == D(0));
    CHECK(wr_chash_lookup(&r, UINT64_MAX) == D(0)); /* wraps around */
    wr_chash_remove(&r, D(0));
    CHECK(wr_chash_lookup(&r, 1) == NULL);
    wr_chash_free(&r);
}

/* Weights 1, 2, 3 and 4 over 10,000 keys: each share within 15% of its
 * fair value (the ring's spread at 160 points per weight is ~8%). */
static void test_chash_distribution(void)
{
    wr_chash_t r;
    wr_chash_init(&r);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wr_chash_add(&r, D(i), seed_of(i), (uint32_t)(i + 1)), 0);
    int count[4] = {0};
    for (int k = 0; k < NKEYS; k++)
        count[dest_index(wr_chash_lookup(&r, key_hash(k)))]++;
    for (int i = 0; i < 4; i++) {
        double want = NKEYS * (i + 1) / 10.0;
        printf("    weight %d: %d keys (fair %.0f)\n", i + 1, count[i], want);
        CHECK(count[i] > want * 0.85 && count[i] < want * 1.15);
    }
    wr_chash_free(&r);
}

/* The same bindings give the same ring whatever the order they came in,
 * and a key always maps to the same destination. */
static void test_chash_stable(void)
{
    wr_chash_t a, b;
    wr_chash_init(&a);
    wr_chash_init(&b);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(wr_chash_add(&a, D(i), seed_of(i), 2), 0);
    for (int i = 4; i >= 0; i--)
        CHECK_EQ(wr_chash_add(&b, D(i), seed_of(i), 2), 0);
    for (int k = 0; k < NKEYS; k++) {
        void *d = wr_chash_lookup(&a, key_hash(k));
        CHECK(d == wr_chash_lookup(&b, key_hash(k)));
        CHECK(d == wr_chash_lookup(&a, key_hash(k)));
    }
    wr_chash_free(&a);
    wr_chash_free(&b);
}

/* Adding a fifth equal binding moves about 1/5 of the keys, all of them to
 * the new binding; removing it again restores every key. */
static void test_chash_minimal_movement(void)
{
    wr_chash_t r;
    wr_chash_init(&r);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wr_chash_add(&r, D(i), seed_of(i), 1), 0);
    static void *before[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        before[k] = wr_chash_lookup(&r, key_hash(k));
    CHECK_EQ(wr_chash_add(&r, D(4), seed_of(4), 1), 0);
    int moved = 0;
    for (int k = 0; k < NKEYS; k++) {
        void *d = wr_chash_lookup(&r, key_hash(k));
        if (d != before[k]) {
            CHECK(d == D(4));
            moved++;
        }
    }
    printf("    moved %d of %d keys (fair %d)\n", moved, NKEYS, NKEYS / 5);
    CHECK(moved > NKEYS / 5 * 0.8 && moved < NKEYS / 5 * 1.2);
    wr_chash_remove(&r, D(4));
    for (int k = 0; k < NKEYS; k++)
        CHECK(wr_chash_lookup(&r, key_hash(k)) == before[k]);
    /* Removing one of the originals moves only the keys it held. */
    wr_chash_remove(&r, D(1));
    for (int k = 0; k < NKEYS; k++) {
        void *d = wr_chash_lookup(&r, key_hash(k));
        CHECK(d != D(1));
        if (before[k] != D(1))
            CHECK(d == before[k]);
    }
    wr_chash_free(&r);
}

WR_SUITE(chash)
{
    RUN(test_chash_parse_weight);
    RUN(test_chash_empty_and_single);
    RUN(test_chash_distribution);
    RUN(test_chash_stable);
    RUN(test_chash_minimal_movement);
}
