/*
 * test_durable.c - durability domains: ticket states, lost ranges, and
 * waiters woken (and relinked) as a domain advances.
 */
#include <stddef.h>

#include "core/durable.h"
#include "test.h"

static void test_durable_states(void)
{
    wr_durable_t d = {0};
    CHECK_EQ(wr_durable_state(&d, 1), 0);
    wr_durable_update(&d, 3, 0);
    CHECK_EQ(wr_durable_state(&d, 1), 1);
    CHECK_EQ(wr_durable_state(&d, 3), 1);
    CHECK_EQ(wr_durable_state(&d, 4), 0);
    /* A batch (3, 6] is lost (a leader change), later ones commit: each
     * ticket keeps its fate however late it is asked. */
    wr_durable_update(&d, d.synced, 6);
    wr_durable_update(&d, 9, d.failed);
    CHECK_EQ(wr_durable_state(&d, 2), 1);
    CHECK_EQ(wr_durable_state(&d, 4), -1);
    CHECK_EQ(wr_durable_state(&d, 6), -1);
    CHECK_EQ(wr_durable_state(&d, 7), 1);
    CHECK_EQ(wr_durable_state(&d, 9), 1);
    CHECK_EQ(wr_durable_state(&d, 10), 0);
    /* Two losses in a row make one range; another after a success a new
     * one. */
    wr_durable_update(&d, d.synced, 11);
    wr_durable_update(&d, d.synced, 12);
    CHECK_EQ(d.n_lost, 2);
    wr_durable_update(&d, 13, d.failed);
    wr_durable_update(&d, d.synced, 15);
    CHECK_EQ(d.n_lost, 3);
    CHECK_EQ(wr_durable_state(&d, 10), -1);
    CHECK_EQ(wr_durable_state(&d, 12), -1);
    CHECK_EQ(wr_durable_state(&d, 13), 1);
    CHECK_EQ(wr_durable_state(&d, 14), -1);
    CHECK_EQ(wr_durable_state(&d, 16), 0);
    wr_durable_reset(&d);
    CHECK_EQ(wr_durable_state(&d, 4), 0);
    wr_durable_free(&d);
}

typedef struct test_waiter {
    wr_durable_waiter_t w;
    wr_durable_t *next_domain; /* where to move once woken, or NULL */
    int woken;
} test_waiter_t;

static int wake(wr_durable_waiter_t *w)
{
    test_waiter_t *t = (test_waiter_t *)((char *)w - offsetof(test_waiter_t, w));
    t->woken++;
    if (t->next_domain)
        wr_durable_wait(t->next_domain, w);
    else
        wr_durable_unwait(w);
    return 0;
}

static void test_durable_waiters(void)
{
    wr_durable_t a = {0}, b = {0};
    test_waiter_t x = {{NULL, NULL, wake}, &b, 0}, y = {{NULL, NULL, wake}, NULL, 0};
    wr_durable_wait(&a, &x.w);
    wr_durable_wait(&a, &y.w);
    wr_durable_wait(&a, &y.w); /* already there: no-op */
    wr_durable_update(&a, 1, 0);
    CHECK_EQ(x.woken, 1);
    CHECK_EQ(y.woken, 1);
    CHECK(x.w.on == &b);
    CHECK(y.w.on == NULL);
    CHECK(a.waiting == NULL);
    x.next_domain = NULL;
    wr_durable_update(&a, 2, 0);
    CHECK_EQ(x.woken, 1); /* no longer on a */
    wr_durable_update(&b, 1, 0);
    CHECK_EQ(x.woken, 2);
    CHECK(b.waiting == NULL);
}

static void test_waits_merge(void)
{
    wr_durable_t a = {0}, b = {0}, c = {0};
    wr_waits_t w;
    wr_waits_init(&w);
    wr_waits_add(&w, &a, 5);
    wr_waits_add(&w, &a, 3); /* the highest ticket of a domain stays */
    wr_waits_add(&w, &b, 7);
    wr_waits_add(&w, &c, 1); /* past the inline room */
    CHECK_EQ(w.n, 3);
    CHECK_EQ(wr_waits_ticket(&w, &a), 5);
    CHECK_EQ(wr_waits_ticket(&w, &b), 7);
    CHECK_EQ(wr_waits_ticket(&w, &c), 1);
    wr_waits_free(&w);
    CHECK_EQ(w.n, 0);
}

WR_SUITE(durable)
{
    RUN(test_durable_states);
    RUN(test_durable_waiters);
    RUN(test_waits_merge);
}
