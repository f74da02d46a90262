/* test_topic.c - the topic exchange trie against RabbitMQ's semantics and a
 * brute-force reference matcher. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "broker/topic.h"
#include "core/err.h"
#include "test.h"

#define NDEST 64
static int dest_pool[NDEST];
#define D(i) ((void *)&dest_pool[(i)])

/* Every report of one wr_topic_match call, as dest indexes. */
typedef struct hits {
    size_t n;
    size_t cap;
    int *idx;
} hits_t;

static void collect(void *dest, void *ctx)
{
    hits_t *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->idx = realloc(h->idx, h->cap * sizeof *h->idx);
    }
    h->idx[h->n++] = (int)((int *)dest - dest_pool);
}

static void match(const wr_topic_t *t, const char *key, hits_t *h)
{
    h->n = 0;
    wr_topic_match(t, wr_bytes_of(key), collect, h);
}

/* Reports for dest i in the last match. */
static size_t hits_of(const hits_t *h, int i)
{
    size_t c = 0;
    for (size_t k = 0; k < h->n; k++)
        c += h->idx[k] == i;
    return c;
}

static int add(wr_topic_t *t, const char *pattern, int dest)
{
    return wr_topic_add(t, wr_bytes_of(pattern), D(dest));
}

static int del(wr_topic_t *t, const char *pattern, int dest)
{
    return wr_topic_remove(t, wr_bytes_of(pattern), D(dest));
}

static void test_topic_tutorial(void)
{
    /* The bindings of RabbitMQ tutorial 5. */
    wr_topic_t *t = wr_topic_new();
    hits_t h = {0};
    CHECK_EQ(add(t, "*.orange.*", 1), 0);
    CHECK_EQ(add(t, "*.*.rabbit", 2), 0);
    CHECK_EQ(add(t, "lazy.#", 2), 0);
    CHECK_EQ(wr_topic_count(t), 3);

    match(t, "quick.orange.rabbit", &h);
    CHECK_EQ(hits_of(&h, 1), 1);
    CHECK_EQ(hits_of(&h, 2), 1);
    CHECK_EQ(h.n, 2);
    match(t, "lazy.orange.elephant", &h);
    CHECK_EQ(hits_of(&h, 1), 1);
    CHECK_EQ(hits_of(&h, 2), 1);
    match(t, "quick.orange.fox", &h);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(hits_of(&h, 1), 1);
    match(t, "lazy.brown.fox", &h);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(hits_of(&h, 2), 1);
    /* Two of Q2's patterns match: reported once per pattern. */
    match(t, "lazy.pink.rabbit", &h);
    CHECK_EQ(h.n, 2);
    CHECK_EQ(hits_of(&h, 2), 2);
    match(t, "quick.brown.fox", &h);
    CHECK_EQ(h.n, 0);
    match(t, "orange", &h);
    CHECK_EQ(h.n, 0);
    match(t, "quick.orange.new.rabbit", &h);
    CHECK_EQ(h.n, 0);
    match(t, "lazy.orange.new.rabbit", &h);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(hits_of(&h, 2), 1);
    free(h.idx);
    wr_topic_free(t);
}

/* One binding per case, so the expected answer is 0 or 1 report. */
static const struct {
    const char *pattern;
    const char *key;
    int match;
} edge_cases[] = {
    /* "" is zero words, not one empty word. */
    {"", "", 1},
    {"", "a", 0},
    {"", ".", 0},
    {"#", "", 1},
    {"#", "a", 1},
    {"#", "a.b.c", 1},
    {"#", ".", 1},
    {"#.#", "", 1},
    {"#.#", "a", 1},
    {"#.#", "a.b", 1},
    {"#.#.#", "a.b.c.d", 1},
    {"*", "", 0},
    {"*", "a", 1},
    {"*", "a.b", 0},
    {"*", ".", 0},
    {"*.*", ".", 1},
    {"*.*", "a.", 1},
    {"*.#", "", 0},
    {"*.#", "a", 1},
    {"*.#", "a.b.c", 1},
    {"#.*", "", 0},
    {"#.*", "a", 1},
    {"#.*", "a.b", 1},
    {"a.#", "a", 1},
    {"a.#", "a.b.c", 1},
    {"a.#", "b", 0},
    {"a.#", "ab", 0},
    {"#.a", "a", 1},
    {"#.a", "b.a", 1},
    {"#.a", "a.b", 0},
    {"a.#.b", "a.b", 1},
    {"a.#.b", "a..b", 1},
    {"a.#.b", "a.x.y.b", 1},
    {"a.#.b", "a.b.c", 0},
    /* Empty words are words. */
    {"a..b", "a..b", 1},
    {"a..b", "a.b", 0},
    {"a.*.b", "a..b", 1},
    {"a.", "a.", 1},
    {"a.", "a", 0},
    {"a.*", "a.", 1},
    {".a", ".a", 1},
    {"*.a", ".a", 1},
    {"a", "a.", 0},
    /* Only whole words are wildcards. */
    {"a*", "ab", 0},
    {"a*", "a*", 1},
    {"a#", "a", 0},
    {"#a", "#a", 1},
    /* In a key, "*" and "#" are ordinary words. */
    {"a", "*", 0},
    {"*", "*", 1},
    {"#", "#", 1},
    {"a.b", "a.#", 0},
    {"a.b", "*.b", 0},
    /* Case-sensitive, byte-exact. */
    {"A", "a", 0},
};

static void test_topic_edge_cases(void)
{
    hits_t h = {0};
    for (size_t i = 0; i < sizeof edge_cases / sizeof edge_cases[0]; i++) {
        wr_topic_t *t = wr_topic_new();
        CHECK_EQ(add(t, edge_cases[i].pattern, 0), 0);
        match(t, edge_cases[i].key, &h);
        if ((int)h.n != edge_cases[i].match)
            printf("  pattern '%s' key '%s': %zu reports, expected %d\n", edge_cases[i].pattern,
                   edge_cases[i].key, h.n, edge_cases[i].match);
        CHECK_EQ(h.n, edge_cases[i].match);
        wr_topic_free(t);
    }
    free(h.idx);
}

static void test_topic_duplicate_and_invalid(void)
{
    wr_topic_t *t = wr_topic_new();
    CHECK_EQ(add(t, "a.*", 1), 0);
    CHECK_EQ(add(t, "a.*", 1), WR_EEXISTS);
    CHECK_EQ(add(t, "a.*", 2), 0);
    CHECK_EQ(wr_topic_count(t), 2);
    CHECK_EQ(wr_topic_add(t, WR_BYTES_LIT("a"), NULL), WR_EINVAL);
    CHECK_EQ(wr_topic_count(t), 2);
    /* The same dest with another pattern is another binding. */
    CHECK_EQ(add(t, "a.#", 1), 0);
    CHECK_EQ(wr_topic_count(t), 3);
    wr_topic_free(t);
}

static void test_topic_remove_and_prune(void)
{
    wr_topic_t *t = wr_topic_new();
    hits_t h = {0};
    CHECK_EQ(wr_topic_nodes(t), 1);
    CHECK_EQ(add(t, "a.b.c", 1), 0);
    CHECK_EQ(wr_topic_nodes(t), 4);
    CHECK_EQ(add(t, "a.b", 2), 0);
    CHECK_EQ(add(t, "a.*.#", 3), 0);
    CHECK_EQ(add(t, "", 4), 0);
    CHECK_EQ(wr_topic_nodes(t), 6);
    CHECK_EQ(wr_topic_count(t), 4);

    CHECK_EQ(del(t, "a.b.c", 2), WR_ENOTFOUND); /* bound, but not to 2 */
    CHECK_EQ(del(t, "a.b.c.d", 1), WR_ENOTFOUND);
    CHECK_EQ(del(t, "a.x", 1), WR_ENOTFOUND);
    CHECK_EQ(del(t, "a", 1), WR_ENOTFOUND); /* a node, but no binding */
    CHECK_EQ(wr_topic_count(t), 4);

    match(t, "a.b.c", &h);
    CHECK_EQ(hits_of(&h, 1), 1);
    CHECK_EQ(hits_of(&h, 3), 1);
    CHECK_EQ(del(t, "a.b.c", 1), 0);
    CHECK_EQ(del(t, "a.b.c", 1), WR_ENOTFOUND);
    match(t, "a.b.c", &h);
    CHECK_EQ(hits_of(&h, 1), 0);
    CHECK_EQ(hits_of(&h, 3), 1);
    /* Only the "c" node went: "a.b" still has a binding. */
    CHECK_EQ(wr_topic_nodes(t), 5);

    CHECK_EQ(del(t, "a.b", 2), 0);
    CHECK_EQ(wr_topic_nodes(t), 4); /* root, a, a.*, a.*.# */
    CHECK_EQ(del(t, "a.*.#", 3), 0);
    CHECK_EQ(wr_topic_nodes(t), 1);
    CHECK_EQ(wr_topic_count(t), 1);
    match(t, "", &h);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(hits_of(&h, 4), 1);
    CHECK_EQ(del(t, "", 4), 0);
    CHECK_EQ(wr_topic_count(t), 0);
    CHECK_EQ(wr_topic_nodes(t), 1);
    match(t, "a.b.c", &h);
    CHECK_EQ(h.n, 0);

    /* The pruned trie is fully usable again. */
    CHECK_EQ(add(t, "a.b.c", 1), 0);
    match(t, "a.b.c", &h);
    CHECK_EQ(h.n, 1);
    free(h.idx);
    wr_topic_free(t);
}

static void test_topic_many_dests_one_pattern(void)
{
    /* Many queues on one pattern: adds and removes stay O(1) and every
     * queue is reported exactly once. */
    static int many[20000];
    wr_topic_t *t = wr_topic_new();
    for (int i = 0; i < 20000; i++)
        CHECK_EQ(wr_topic_add(t, WR_BYTES_LIT("x.#"), &many[i]), 0);
    CHECK_EQ(wr_topic_add(t, WR_BYTES_LIT("x.#"), &many[123]), WR_EEXISTS);
    for (int i = 0; i < 20000; i += 2)
        CHECK_EQ(wr_topic_remove(t, WR_BYTES_LIT("x.#"), &many[i]), 0);
    CHECK_EQ(wr_topic_count(t), 10000);
    hits_t h = {0};
    wr_topic_match(t, WR_BYTES_LIT("x.y"), collect, &h);
    CHECK_EQ(h.n, 10000);
    free(h.idx);
    wr_topic_free(t);
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_topic_10k_bindings(void)
{
    wr_topic_t *t = wr_topic_new();
    char pat[64], key[64];
    hits_t h = {0};
    /* 10,000 bindings: 10,000 siblings under one node (a wide hash table)
     * plus wildcard patterns that fan out. */
    for (int i = 0; i < 7000; i++) {
        snprintf(pat, sizeof pat, "stock.s%d.*", i);
        CHECK_EQ(add(t, pat, i % NDEST), 0);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(pat, sizeof pat, "*.s%d.#", i);
        CHECK_EQ(add(t, pat, i % NDEST), 0);
    }
    CHECK_EQ(wr_topic_count(t), 10000);

    match(t, "stock.s5000.nyse", &h);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(hits_of(&h, 5000 % NDEST), 1);
    match(t, "stock.s42.nyse.extra", &h);
    CHECK_EQ(h.n, 1); /* only *.s42.# */
    match(t, "stock.s42.nyse", &h);
    CHECK_EQ(h.n, 2);

    /* Sanity bound on match time: 200,000 matches against 10,000 bindings.
     * A trie walk costs a handful of lookups per match; scanning every
     * binding would take on the order of 10^9 operations, far beyond the
     * bound even in a sanitizer build. */
    size_t total = 0;
    double t0 = now_sec();
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof key, "stock.s%d.x", (i * 7919) % 12000);
        match(t, key, &h);
        total += h.n;
    }
    double elapsed = now_sec() - t0;
    if (elapsed > 3.0)
        printf("  200000 matches took %.3f s\n", elapsed);
    CHECK(elapsed < 3.0);
    CHECK(total > 0);

    /* Pathological '#' runs: RabbitMQ's recursive walk is exponential in
     * the number of '#' for keys like this; the state dedupe keeps it
     * linear, and the binding is still reported once. */
    wr_topic_t *p = wr_topic_new();
    CHECK_EQ(add(p, "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#", 1), 0);
    CHECK_EQ(add(p, "#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.a.#", 2), 0);
    char longkey[400];
    size_t o = 0;
    for (int i = 0; i < 120; i++) {
        longkey[o++] = 'a';
        longkey[o++] = '.';
    }
    longkey[o - 1] = '\0';
    t0 = now_sec();
    match(p, longkey, &h);
    elapsed = now_sec() - t0;
    CHECK_EQ(hits_of(&h, 1), 1);
    CHECK_EQ(hits_of(&h, 2), 1);
    CHECK(elapsed < 0.5);
    wr_topic_free(p);

    free(h.idx);
    wr_topic_free(t);
}

/* ---- randomized comparison with a reference matcher -------------------- */

#define MAXW 8

typedef struct words {
    int n;
    const char *w[MAXW];
} words_t;

static const char *const key_words[] = {"a", "b", "c", "", "*", "#", "ab"};
static const char *const pat_words[] = {"a", "b", "c", "", "*", "#", "ab"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    /* xorshift64*: reproducible across runs and platforms. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 33) % n;
}

/* Random words; n may be 0 (the empty string).  Key words are drawn
 * mostly from plain words, pattern words often from wildcards. */
static void random_words(words_t *w, int is_pattern)
{
    w->n = (int)rnd(6);
    for (int i = 0; i < w->n; i++) {
        if (is_pattern)
            w->w[i] = pat_words[rnd(7)];
        else
            w->w[i] = key_words[rnd(10) < 8 ? rnd(4) : rnd(7)];
    }
}

static void join(const words_t *w, char *out)
{
    out[0] = '\0';
    for (int i = 0; i < w->n; i++) {
        if (i)
            strcat(out, ".");
        strcat(out, w->w[i]);
    }
}

/* Splits like RabbitMQ: "" is no words. */
static void split(const char *s, words_t *w, char store[][16])
{
    w->n = 0;
    if (*s == '\0')
        return;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        memcpy(store[w->n], s, len);
        store[w->n][len] = '\0';
        w->w[w->n] = store[w->n];
        w->n++;
        if (!dot)
            return;
        s = dot + 1;
    }
}

/* The textbook definition, by plain recursion. */
static int ref_match(const words_t *p, int pi, const words_t *k, int ki)
{
    if (pi == p->n)
        return ki == k->n;
    if (strcmp(p->w[pi], "#") == 0) {
        for (int j = ki; j <= k->n; j++)
            if (ref_match(p, pi + 1, k, j))
                return 1;
        return 0;
    }
    if (ki == k->n)
        return 0;
    if (strcmp(p->w[pi], "*") != 0 && strcmp(p->w[pi], k->w[ki]) != 0)
        return 0;
    return ref_match(p, pi + 1, k, ki + 1);
}

typedef struct binding {
    char pattern[64];
    int dest;
    int live;
} binding_t;

static int compare_with_reference(const wr_topic_t *t, const binding_t *b, size_t nb, int nkeys)
{
    hits_t h = {0};
    char key[64], pstore[MAXW + 1][16], kstore[MAXW + 1][16];
    int ok = 1;
    for (int q = 0; q < nkeys && ok; q++) {
        words_t kw, pw, ks;
        random_words(&kw, 0);
        join(&kw, key);
        split(key, &ks, kstore);
        size_t expect[NDEST] = {0};
        for (size_t i = 0; i < nb; i++) {
            if (!b[i].live)
                continue;
            split(b[i].pattern, &pw, pstore);
            if (ref_match(&pw, 0, &ks, 0))
                expect[b[i].dest]++;
        }
        match(t, key, &h);
        for (int d = 0; d < NDEST; d++) {
            if (hits_of(&h, d) != expect[d]) {
                printf("  key '%s' dest %d: %zu reports, reference says %zu\n", key, d,
                       hits_of(&h, d), expect[d]);
                ok = 0;
                break;
            }
        }
    }
    free(h.idx);
    return ok;
}

static void test_topic_random_vs_reference(void)
{
    enum { NB = 3000 };
    static binding_t b[NB];
    wr_topic_t *t = wr_topic_new();
    size_t nb = 0, live = 0;
    for (int i = 0; i < NB; i++) {
        words_t pw;
        random_words(&pw, 1);
        join(&pw, b[nb].pattern);
        b[nb].dest = (int)rnd(NDEST);
        int rc = add(t, b[nb].pattern, b[nb].dest);
        if (rc == WR_EEXISTS)
            continue; /* the reference must not count it twice */
        CHECK_EQ(rc, 0);
        b[nb].live = 1;
        nb++;
        live++;
    }
    CHECK_EQ(wr_topic_count(t), live);
    CHECK(compare_with_reference(t, b, nb, 3000));

    /* Remove about half, then compare again: pruning must not lose
     * anything still bound. */
    for (size_t i = 0; i < nb; i++) {
        if (rnd(2)) {
            CHECK_EQ(del(t, b[i].pattern, b[i].dest), 0);
            b[i].live = 0;
            live--;
        }
    }
    CHECK_EQ(wr_topic_count(t), live);
    CHECK(compare_with_reference(t, b, nb, 3000));

    for (size_t i = 0; i < nb; i++)
        if (b[i].live)
            CHECK_EQ(del(t, b[i].pattern, b[i].dest), 0);
    CHECK_EQ(wr_topic_count(t), 0);
    CHECK_EQ(wr_topic_nodes(t), 1);
    wr_topic_free(t);
}

WR_SUITE(topic)
{
    RUN(test_topic_tutorial);
    RUN(test_topic_edge_cases);
    RUN(test_topic_duplicate_and_invalid);
    RUN(test_topic_remove_and_prune);
    RUN(test_topic_many_dests_one_pattern);
    RUN(test_topic_10k_bindings);
    RUN(test_topic_random_vs_reference);
}
