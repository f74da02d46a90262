/*
 * topic.h - the binding trie of a topic exchange.
 *
 * Matching follows RabbitMQ (rabbit_db_topic_exchange.erl) exactly:
 * routing keys and binding patterns are split into words at every '.',
 * the empty string is zero words (so key "" matches only patterns "", "#",
 * "#.#", ...) and any other string of n dots is n + 1 words, empty words
 * included ("a..b" is "a", "", "b"; "a." is "a", "").  In a pattern the
 * word "*" matches exactly one word and "#" matches zero or more; every
 * other word, the empty word included, matches only an identical word.
 * In a routing key "*" and "#" are ordinary words.
 *
 * The trie has one node per distinct pattern prefix; a node finds its
 * literal children through a hash table and keeps its "*" and "#"
 * children aside, so a match looks at no binding that cannot match.  Runs
 * of '#' are handled without backtracking blowup: each (node, word
 * position) state is visited at most once per match.
 *
 * Ownership and lifetime: the trie copies patterns; dest pointers are
 * borrowed and only compared and handed back, never dereferenced.  The
 * trie is not synchronised; the callback of wr_topic_match must not modify
 * the trie.
 */
#ifndef WR_TOPIC_H
#define WR_TOPIC_H

#include <stddef.h>

#include "core/buf.h"

typedef struct wr_topic wr_topic_t;

wr_topic_t *wr_topic_new(void);
/* Frees the trie and its copies of the patterns; dests are untouched. */
void wr_topic_free(wr_topic_t *t);

/* Binds pattern to dest (which must not be NULL).  Returns 0, WR_EEXISTS if
 * that (pattern, dest) pair is already bound, or WR_EINVAL for a NULL
 * dest.  The pattern bytes are copied. */
int wr_topic_add(wr_topic_t *t, wr_bytes_t pattern, void *dest);

/* Unbinds (pattern, dest) and frees trie nodes left with no bindings and
 * no children.  Returns 0 or WR_ENOTFOUND. */
int wr_topic_remove(wr_topic_t *t, wr_bytes_t pattern, void *dest);

/* Calls cb(dest, ctx) for every binding whose pattern matches routing_key.
 * Each matching (pattern, dest) binding is reported once, so a dest bound
 * with several matching patterns is reported once per pattern; the caller
 * deduplicates.  The order is unspecified. */
void wr_topic_match(const wr_topic_t *t, wr_bytes_t routing_key, void (*cb)(void *dest, void *ctx),
                    void *ctx);

/* Number of (pattern, dest) bindings. */
size_t wr_topic_count(const wr_topic_t *t);

/* Number of trie nodes, the root included (1 when empty): for memory
 * statistics, and for tests that check removal prunes the trie. */
size_t wr_topic_nodes(const wr_topic_t *t);

#endif
