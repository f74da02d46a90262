/*
 * qdlx.c - dead-lettered messages kept until confirmed (see qdlx.h).
 */
#include "broker/qdlx.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

void wr_qdlx_init(wr_qdlx_t *d)
{
    memset(d, 0, sizeof *d);
    d->next_id = 1;
}

void wr_qdlx_free(wr_qdlx_t *d, void (*release)(wr_qent_t *e))
{
    for (size_t i = d->head; i < d->n; i++)
        if (d->v[i].live && release)
            release(&d->v[i].e);
    free(d->v);
    wr_qdlx_init(d);
}

static void append(wr_qdlx_t *d, uint64_t id, const wr_qent_t *e, int reason)
{
    if (d->n == d->cap) {
        if (d->head > 0) {
            /* Reclaim the removed head first. */
            memmove(d->v, d->v + d->head, (d->n - d->head) * sizeof *d->v);
            d->n -= d->head;
            d->scan = d->scan > d->head ? d->scan - d->head : 0;
            d->head = 0;
        }
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 16;
            d->v = wr_xrealloc(d->v, d->cap * sizeof *d->v);
        }
    }
    wr_qdlx_ent_t *x = &d->v[d->n++];
    x->id = id;
    x->e = *e;
    x->reason = (uint8_t)reason;
    x->live = 1;
    x->state = WR_QDLX_READY;
    d->live++;
    d->bytes += e->size;
}

uint64_t wr_qdlx_add(wr_qdlx_t *d, const wr_qent_t *e, int reason)
{
    uint64_t id = d->next_id++;
    append(d, id, e, reason);
    return id;
}

void wr_qdlx_restore(wr_qdlx_t *d, uint64_t id, const wr_qent_t *e, int reason)
{
    append(d, id, e, reason);
    if (id >= d->next_id)
        d->next_id = id + 1;
}

static size_t index_of(const wr_qdlx_t *d, uint64_t id)
{
    size_t lo = d->head, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

wr_qdlx_ent_t *wr_qdlx_find(wr_qdlx_t *d, uint64_t id)
{
    size_t i = index_of(d, id);
    return i < d->n && d->v[i].id == id && d->v[i].live ? &d->v[i] : NULL;
}

int wr_qdlx_remove(wr_qdlx_t *d, uint64_t id, wr_qent_t *out)
{
    wr_qdlx_ent_t *x = wr_qdlx_find(d, id);
    if (x == NULL)
        return 0;
    *out = x->e;
    x->live = 0;
    x->e.msg = NULL;
    d->live--;
    d->bytes -= x->e.size <= d->bytes ? x->e.size : d->bytes;
    while (d->head < d->n && !d->v[d->head].live)
        d->head++;
    if (d->head == d->n)
        d->head = d->n = d->scan = 0;
    if (d->scan < d->head)
        d->scan = d->head;
    return 1;
}

void wr_qdlx_reset(wr_qdlx_t *d, int only_retry)
{
    for (size_t i = d->head; i < d->n; i++)
        if (!only_retry || d->v[i].state == WR_QDLX_RETRY)
            d->v[i].state = WR_QDLX_READY;
    d->scan = d->head;
}

wr_qdlx_ent_t *wr_qdlx_next_ready(wr_qdlx_t *d)
{
    if (d->scan < d->head)
        d->scan = d->head;
    while (d->scan < d->n) {
        wr_qdlx_ent_t *x = &d->v[d->scan];
        if (x->live && x->state == WR_QDLX_READY)
            return x;
        d->scan++;
    }
    return NULL;
}

void wr_qdlx_unsend(wr_qdlx_t *d, wr_qdlx_ent_t *x)
{
    x->state = WR_QDLX_READY;
    size_t i = (size_t)(x - d->v);
    if (i < d->scan)
        d->scan = i;
}
