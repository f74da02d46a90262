/*
 * topic.c - the binding trie of a topic exchange (see topic.h).
 *
 * Design.  Each node stands for one pattern prefix; the root is the empty
 * prefix.  A node holds the destinations bound with exactly its prefix,
 * its "*" and "#" children in two pointers, and its literal children in an
 * open-addressing hash table keyed by the child's word.  Destinations are
 * kept in a pointer hash set, so adding or removing one of many queues
 * bound with the same pattern is O(1).  Both tables use linear probing at
 * most half full with backward-shift deletion (no tombstones), and are
 * freed when they become empty.
 *
 * Invariants:
 *   - every node but the root has at least one binding or one child (nodes
 *     are pruned bottom-up on removal);
 *   - literal tables never hold the words "*" and "#": those always live in
 *     the star and hash pointers;
 *   - t->count is the number of (node, dest) pairs.
 *
 * Matching walks states (node, i) meaning "node's prefix matches the first
 * i words of the key", with an explicit stack rather than recursion, so
 * stack use does not depend on the pattern length.  From (n, i) with i
 * words left to consume it goes to the literal child for word i and the
 * "*" child at i + 1, and enters the "#" child at i, which then stands for
 * (hash, j) for every j >= i.  Without care the same state is reached many
 * times ("#.#.#" against a long key is exponential in RabbitMQ's own
 * recursive walk), so for each "#" node the walk remembers the lowest
 * position it has been entered at and expands only positions not yet
 * covered.  Every other node has a unique "#"-free path back to its
 * nearest "#" ancestor (or the root), so each state is then visited once,
 * and each binding is reported at most once per match.
 */
#include "broker/topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"

enum { KIND_ROOT, KIND_WORD, KIND_STAR, KIND_HASH };

/* An open-addressing set of non-NULL pointers; cap is 0 or a power of two. */
typedef struct pset {
    void **slot;
    uint32_t cap;
    uint32_t n;
} pset_t;

typedef struct node node_t;
struct node {
    node_t *parent;
    node_t *star;
    node_t *hash;
    pset_t kids;  /* node_t *, keyed by word */
    pset_t dests; /* borrowed dest pointers */
    uint64_t h;   /* hash of word (KIND_WORD only) */
    size_t wlen;
    uint8_t kind;
    uint8_t word[]; /* wlen bytes, KIND_WORD only */
};

struct wr_topic {
    node_t *root;
    size_t count; /* bindings */
    size_t nodes; /* trie nodes, root included */
    uint64_t seed;
};

/* ---- hashing ----------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Seeded per trie so that which words collide is not predictable from
 * outside; this is a cheap mixer, not a cryptographic hash. */
static uint64_t hash_word(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n > 0)
        memcpy(&w, p, n);
    return mix64(h ^ w);
}

static uint64_t ptr_hash(const void *p)
{
    return mix64((uint64_t)(uintptr_t)p);
}

static uint64_t node_hash(const void *p)
{
    return ((const node_t *)p)->h;
}

/* ---- pointer sets ------------------------------------------------------ */

static void pset_insert_raw(pset_t *s, void *e, uint64_t h)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (s->slot[i] != NULL)
        i = (i + 1) & mask;
    s->slot[i] = e;
    s->n++;
}

static void pset_add(pset_t *s, void *e, uint64_t h, uint64_t (*hf)(const void *))
{
    if ((s->n + 1) * 2 > s->cap) {
        pset_t bigger = {NULL, s->cap ? s->cap * 2 : 4, 0};
        bigger.slot = wr_xcalloc(bigger.cap, sizeof *bigger.slot);
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->slot[i] != NULL)
                pset_insert_raw(&bigger, s->slot[i], hf(s->slot[i]));
        free(s->slot);
        *s = bigger;
    }
    pset_insert_raw(s, e, h);
}

/* Index of the slot holding exactly e, or -1. */
static int64_t pset_find(const pset_t *s, const void *e, uint64_t h)
{
    if (s->cap == 0)
        return -1;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        if (s->slot[i] == NULL)
            return -1;
        if (s->slot[i] == e)
            return i;
    }
}

/* Empties slot i, then shifts later members of the probe run back so that
 * every remaining entry stays reachable from its home slot. */
static void pset_del_at(pset_t *s, uint32_t i, uint64_t (*hf)(const void *))
{
    uint32_t mask = s->cap - 1;
    s->slot[i] = NULL;
    s->n--;
    for (uint32_t j = (i + 1) & mask; s->slot[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)hf(s->slot[j]) & mask;
        /* The entry at j may move to the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->slot[i] = s->slot[j];
            s->slot[j] = NULL;
            i = j;
        }
    }
    if (s->n == 0) {
        free(s->slot);
        s->slot = NULL;
        s->cap = 0;
    }
}

static node_t *kids_get(const node_t *parent, uint64_t h, const uint8_t *w, size_t n)
{
    const pset_t *s = &parent->kids;
    if (s->cap == 0)
        return NULL;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        node_t *c = s->slot[i];
        if (c == NULL)
            return NULL;
        if (c->h == h && c->wlen == n && (n == 0 || memcmp(c->word, w, n) == 0))
            return c;
    }
}

/* ---- words ------------------------------------------------------------- */

/* Splits at '.', as RabbitMQ's split_topic_key: "" is no words at all,
 * otherwise k dots give k + 1 words, some possibly empty. */
typedef struct wordit {
    const uint8_t *p;
    const uint8_t *end;
    int done;
} wordit_t;

static void wordit_init(wordit_t *it, wr_bytes_t s)
{
    it->p = s.p;
    it->end = s.n ? s.p + s.n : s.p;
    it->done = s.n == 0;
}

static int wordit_next(wordit_t *it, const uint8_t **w, size_t *n)
{
    if (it->done)
        return 0;
    size_t left = (size_t)(it->end - it->p);
    const uint8_t *dot = left ? memchr(it->p, '.', left) : NULL;
    *w = it->p;
    if (dot != NULL) {
        *n = (size_t)(dot - it->p);
        it->p = dot + 1;
    } else {
        *n = left;
        it->done = 1;
    }
    return 1;
}

static int word_kind(const uint8_t *w, size_t n)
{
    if (n == 1 && w[0] == '*')
        return KIND_STAR;
    if (n == 1 && w[0] == '#')
        return KIND_HASH;
    return KIND_WORD;
}

/* ---- trie -------------------------------------------------------------- */

static node_t *node_new(node_t *parent, int kind, const uint8_t *w, size_t n, uint64_t h)
{
    size_t wlen = kind == KIND_WORD ? n : 0;
    node_t *x = wr_xcalloc(1, sizeof *x + wlen);
    x->parent = parent;
    x->kind = (uint8_t)kind;
    x->wlen = wlen;
    x->h = h;
    if (wlen)
        memcpy(x->word, w, wlen);
    return x;
}

wr_topic_t *wr_topic_new(void)
{
    static uint64_t counter;
    struct timespec ts;
    wr_topic_t *t = wr_xcalloc(1, sizeof *t);
    t->root = node_new(NULL, KIND_ROOT, NULL, 0, 0);
    t->nodes = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t->seed = mix64((uint64_t)(uintptr_t)t ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                    ++counter);
    return t;
}

void wr_topic_free(wr_topic_t *t)
{
    if (t == NULL)
        return;
    /* Iterative, so freeing a trie of very long patterns needs no deep
     * recursion. */
    size_t n = 0, cap = 16;
    node_t **stack = wr_xmalloc(cap * sizeof *stack);
    stack[n++] = t->root;
    while (n > 0) {
        node_t *x = stack[--n];
        size_t need = n + 2 + x->kids.n;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            stack = wr_xrealloc(stack, cap * sizeof *stack);
        }
        if (x->star)
            stack[n++] = x->star;
        if (x->hash)
            stack[n++] = x->hash;
        for (uint32_t i = 0; i < x->kids.cap; i++)
            if (x->kids.slot[i] != NULL)
                stack[n++] = x->kids.slot[i];
        free(x->kids.slot);
        free(x->dests.slot);
        free(x);
    }
    free(stack);
    free(t);
}

/* Follows pattern from the root; with create, adds missing nodes.  Returns
 * the pattern's node, or NULL if it does not exist and create is 0. */
static node_t *walk(wr_topic_t *t, wr_bytes_t pattern, int create)
{
    node_t *x = t->root;
    wordit_t it;
    const uint8_t *w;
    size_t n;
    wordit_init(&it, pattern);
    while (wordit_next(&it, &w, &n)) {
        int kind = word_kind(w, n);
        node_t *next;
        if (kind == KIND_STAR) {
            if (x->star == NULL && create) {
                x->star = node_new(x, KIND_STAR, NULL, 0, 0);
                t->nodes++;
            }
            next = x->star;
        } else if (kind == KIND_HASH) {
            if (x->hash == NULL && create) {
                x->hash = node_new(x, KIND_HASH, NULL, 0, 0);
                t->nodes++;
            }
            next = x->hash;
        } else {
            uint64_t h = hash_word(t->seed, w, n);
            next = kids_get(x, h, w, n);
            if (next == NULL && create) {
                next = node_new(x, KIND_WORD, w, n, h);
                pset_add(&x->kids, next, h, node_hash);
                t->nodes++;
            }
        }
        if (next == NULL)
            return NULL;
        x = next;
    }
    return x;
}

int wr_topic_add(wr_topic_t *t, wr_bytes_t pattern, void *dest)
{
    if (dest == NULL)
        return WR_EINVAL;
    node_t *x = walk(t, pattern, 1);
    uint64_t h = ptr_hash(dest);
    if (pset_find(&x->dests, dest, h) >= 0)
        return WR_EEXISTS;
    pset_add(&x->dests, dest, h, ptr_hash);
    t->count++;
    return 0;
}

int wr_topic_remove(wr_topic_t *t, wr_bytes_t pattern, void *dest)
{
    node_t *x = walk(t, pattern, 0);
    if (x == NULL)
        return WR_ENOTFOUND;
    int64_t i = pset_find(&x->dests, dest, ptr_hash(dest));
    if (i < 0)
        return WR_ENOTFOUND;
    pset_del_at(&x->dests, (uint32_t)i, ptr_hash);
    t->count--;

    while (x != t->root && x->dests.n == 0 && x->kids.n == 0 && x->star == NULL &&
           x->hash == NULL) {
        node_t *parent = x->parent;
        if (x->kind == KIND_STAR) {
            parent->star = NULL;
        } else if (x->kind == KIND_HASH) {
            parent->hash = NULL;
        } else {
            int64_t k = pset_find(&parent->kids, x, x->h);
            pset_del_at(&parent->kids, (uint32_t)k, node_hash);
        }
        free(x);
        t->nodes--;
        x = parent;
    }
    return 0;
}

size_t wr_topic_count(const wr_topic_t *t)
{
    return t->count;
}

size_t wr_topic_nodes(const wr_topic_t *t)
{
    return t->nodes;
}

/* ---- matching ---------------------------------------------------------- */

typedef struct mword {
    const uint8_t *p;
    size_t n;
    uint64_t h;
} mword_t;

typedef struct state {
    const node_t *node;
    size_t i;
    int enter_hash; /* node is a '#' node being entered at position i */
} state_t;

/* Lowest position each '#' node has been entered at, in this match. */
typedef struct low_ent {
    const node_t *node; /* NULL = empty */
    size_t low;
} low_ent_t;

typedef struct match_ctx {
    mword_t *words;
    size_t nwords;
    state_t *stack;
    size_t sp, scap;
    low_ent_t *low;
    size_t lcap, ln;
    state_t stack_buf[128];
    low_ent_t low_buf[64];
    mword_t word_buf[64];
} match_ctx_t;

static void push(match_ctx_t *m, const node_t *node, size_t i, int enter_hash)
{
    if (m->sp == m->scap) {
        size_t cap = m->scap * 2;
        state_t *s = wr_xmalloc(cap * sizeof *s);
        memcpy(s, m->stack, m->sp * sizeof *s);
        if (m->stack != m->stack_buf)
            free(m->stack);
        m->stack = s;
        m->scap = cap;
    }
    m->stack[m->sp++] = (state_t){node, i, enter_hash};
}

/* Finds or inserts node's entry (initially low = nwords + 1: no position
 * expanded yet). */
static low_ent_t *low_get(match_ctx_t *m, const node_t *node)
{
    if ((m->ln + 1) * 2 > m->lcap) {
        size_t cap = m->lcap * 2;
        low_ent_t *l = wr_xcalloc(cap, sizeof *l);
        for (size_t i = 0; i < m->lcap; i++) {
            if (m->low[i].node == NULL)
                continue;
            size_t j = (size_t)ptr_hash(m->low[i].node) & (cap - 1);
            while (l[j].node != NULL)
                j = (j + 1) & (cap - 1);
            l[j] = m->low[i];
        }
        if (m->low != m->low_buf)
            free(m->low);
        m->low = l;
        m->lcap = cap;
    }
    size_t mask = m->lcap - 1;
    size_t j = (size_t)ptr_hash(node) & mask;
    while (m->low[j].node != NULL && m->low[j].node != node)
        j = (j + 1) & mask;
    if (m->low[j].node == NULL) {
        m->low[j].node = node;
        m->low[j].low = m->nwords + 1;
        m->ln++;
    }
    return &m->low[j];
}

void wr_topic_match(const wr_topic_t *t, wr_bytes_t routing_key, void (*cb)(void *dest, void *ctx),
                    void *ctx)
{
    match_ctx_t m;
    wordit_t it;
    const uint8_t *w;
    size_t n;

    /* Count, then split the key once; each word's hash is needed at most
     * once per literal lookup but computing it up front keeps the loop
     * simple and costs one pass over at most 255 bytes in practice. */
    size_t nwords = 0;
    wordit_init(&it, routing_key);
    while (wordit_next(&it, &w, &n))
        nwords++;
    m.words = nwords <= 64 ? m.word_buf : wr_xmalloc(nwords * sizeof *m.words);
    m.nwords = nwords;
    wordit_init(&it, routing_key);
    for (size_t k = 0; wordit_next(&it, &w, &n); k++)
        m.words[k] = (mword_t){w, n, hash_word(t->seed, w, n)};

    m.stack = m.stack_buf;
    m.sp = 0;
    m.scap = sizeof m.stack_buf / sizeof m.stack_buf[0];
    m.low = m.low_buf;
    m.lcap = sizeof m.low_buf / sizeof m.low_buf[0];
    m.ln = 0;
    memset(m.low_buf, 0, sizeof m.low_buf);

    push(&m, t->root, 0, 0);
    while (m.sp > 0) {
        state_t s = m.stack[--m.sp];
        const node_t *x = s.node;

        if (s.enter_hash) {
            low_ent_t *e = low_get(&m, x);
            size_t hi = e->low;
            if (s.i >= hi)
                continue; /* every position from s.i on is already covered */
            e->low = s.i;
            for (size_t j = s.i; j < hi; j++)
                push(&m, x, j, 0);
            continue;
        }

        if (s.i == nwords) {
            for (uint32_t k = 0; k < x->dests.cap; k++)
                if (x->dests.slot[k] != NULL)
                    cb(x->dests.slot[k], ctx);
            if (x->hash)
                push(&m, x->hash, s.i, 1);
            continue;
        }
        const mword_t *mw = &m.words[s.i];
        const node_t *c = kids_get(x, mw->h, mw->p, mw->n);
        if (c)
            push(&m, c, s.i + 1, 0);
        if (x->star)
            push(&m, x->star, s.i + 1, 0);
        if (x->hash)
            push(&m, x->hash, s.i, 1);
    }

    if (m.words != m.word_buf)
        free(m.words);
    if (m.stack != m.stack_buf)
        free(m.stack);
    if (m.low != m.low_buf)
        free(m.low);
}
