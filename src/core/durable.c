/*
 * durable.c - durability domains and their waiters (see durable.h).
 */
#include "core/durable.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

void wr_waits__free(wr_waits_t *w)
{
    free(w->v);
    wr_waits_init(w);
}

void wr_waits__add(wr_waits_t *w, wr_durable_t *d, uint64_t ticket)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->v[i].d == d) {
            if (ticket > w->v[i].ticket)
                w->v[i].ticket = ticket;
            return;
        }
    }
    if (w->n == w->cap) {
        size_t cap = w->cap * 2;
        wr_wait_t *v = wr_xmalloc(cap * sizeof *v);
        memcpy(v, w->v, w->n * sizeof *v);
        if (w->v != w->inline_v)
            free(w->v);
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = (wr_wait_t){d, ticket};
}

uint64_t wr_waits_ticket(const wr_waits_t *w, const wr_durable_t *d)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].d == d)
            return w->v[i].ticket;
    return 0;
}

void wr_durable_unwait(wr_durable_waiter_t *w)
{
    if (w->on == NULL)
        return;
    for (wr_durable_waiter_t **pp = &w->on->waiting; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    w->on = NULL;
    w->next = NULL;
}

void wr_durable_wait(wr_durable_t *d, wr_durable_waiter_t *w)
{
    if (w->on == d)
        return;
    wr_durable_unwait(w);
    w->on = d;
    w->next = d->waiting;
    d->waiting = w;
}

int wr_durable__lost(const wr_durable_t *d, uint64_t ticket)
{
    size_t lo = 0, hi = d->n_lost;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->lost[mid].hi < ticket)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n_lost && ticket > d->lost[lo].lo;
}

void wr_durable_update(wr_durable_t *d, uint64_t synced, uint64_t failed)
{
    if (failed > d->failed) {
        /* Lost: everything after what was resolved so far, up to failed. */
        uint64_t from = d->synced > d->failed ? d->synced : d->failed;
        if (failed > from) {
            if (d->n_lost && d->lost[d->n_lost - 1].hi == from) {
                d->lost[d->n_lost - 1].hi = failed;
            } else {
                if (d->n_lost == d->cap_lost) {
                    d->cap_lost = d->cap_lost ? d->cap_lost * 2 : 4;
                    d->lost = wr_xrealloc(d->lost, d->cap_lost * sizeof *d->lost);
                }
                d->lost[d->n_lost++] = (wr_lost_range_t){from, failed};
            }
        }
        d->failed = failed;
    }
    if (synced > d->synced)
        d->synced = synced;
restart:
    for (wr_durable_waiter_t *w = d->waiting, *next; w; w = next) {
        next = w->next;
        if (w->wake(w) < 0)
            goto restart;
    }
}

void wr_durable_reset(wr_durable_t *d)
{
    d->synced = 0;
    d->failed = 0;
    d->n_lost = 0;
}

void wr_durable_free(wr_durable_t *d)
{
    free(d->lost);
    d->lost = NULL;
    d->n_lost = d->cap_lost = 0;
}
