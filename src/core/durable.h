/*
 * durable.h - durability domains: what publisher confirms and tx.commit-ok
 * wait for.
 *
 * A domain is anything that makes writes durable in order: it hands out
 * tickets that increase with every write it takes, and later reports that
 * every ticket up to some value is durable (synced) or lost (failed).  A
 * vhost's message store is one domain (ticket: the store generation that
 * holds the record; synced when the fdatasync covering it returns); a
 * replicated queue's log is another (ticket: the log index of the entry;
 * synced when a majority has it).  A publish that reached queues of
 * several domains waits for one ticket in each (wr_waits_t), and the
 * confirm goes out when all are synced, or is a nack if any failed.
 *
 * Waiters: a channel waits in publish order, so it only ever waits for its
 * oldest pending confirm, on one domain at a time: it links its waiter
 * into that domain's list, and each time the domain advances the waiter's
 * wake function runs (which relinks it to the next domain it needs, or
 * unlinks it).
 *
 * Ownership: a domain is embedded in its owner (the vhost for the store)
 * and must outlive the waiters linked to it (its owner unlinks them, or
 * they unlink themselves, before it goes).  Waiters are embedded in theirs.
 */
#ifndef WR_DURABLE_H
#define WR_DURABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wr_durable wr_durable_t;
typedef struct wr_durable_waiter wr_durable_waiter_t;

struct wr_durable_waiter {
    wr_durable_waiter_t *next;
    wr_durable_t *on; /* the domain it is linked to, or NULL */
    /* The domain advanced.  May relink or unlink w.  Returns -1 if it freed
     * other waiters of the same domain (a failed transaction closes its
     * connection and all its channels): the walk then starts over, which is
     * safe because waking a waiter that has nothing new to do is a no-op. */
    int (*wake)(wr_durable_waiter_t *w);
};

/* Tickets are resolved in order, each durable or lost; lost ones form
 * ranges (lo, hi], kept so that a ticket's fate reads the same however
 * late it is asked (a Raft group can lose a batch to a leader change and
 * then commit later ones). */
typedef struct wr_lost_range {
    uint64_t lo, hi;
} wr_lost_range_t;

struct wr_durable {
    uint64_t synced; /* every ticket <= synced not in a lost range is durable */
    uint64_t failed; /* the highest lost ticket */
    wr_lost_range_t *lost;
    size_t n_lost, cap_lost;
    wr_durable_waiter_t *waiting;
};

/* One ticket to wait for. */
typedef struct wr_wait {
    wr_durable_t *d;
    uint64_t ticket;
} wr_wait_t;

/* The tickets one publish (or one transaction) waits for: at most one per
 * domain, the highest.  Usually none or one, kept inline. */
typedef struct wr_waits {
    size_t n, cap;
    wr_wait_t *v;
    wr_wait_t inline_v[2];
} wr_waits_t;

static inline void wr_waits_init(wr_waits_t *w)
{
    w->n = 0;
    w->cap = 2;
    w->v = w->inline_v;
}
void wr_waits__free(wr_waits_t *w);
void wr_waits__add(wr_waits_t *w, wr_durable_t *d, uint64_t ticket);

static inline void wr_waits_free(wr_waits_t *w)
{
    if (w->v != w->inline_v)
        wr_waits__free(w);
}

/* Adds ticket of d (keeping the highest if d is already there). */
static inline void wr_waits_add(wr_waits_t *w, wr_durable_t *d, uint64_t ticket)
{
    if (w->n == 0) {
        w->v[0].d = d;
        w->v[0].ticket = ticket;
        w->n = 1;
    } else {
        wr_waits__add(w, d, ticket);
    }
}
/* The ticket w holds for d, or 0. */
uint64_t wr_waits_ticket(const wr_waits_t *w, const wr_durable_t *d);

int wr_durable__lost(const wr_durable_t *d, uint64_t ticket);

/* 1 if ticket is durable, -1 if it was lost, 0 if still pending. */
static inline int wr_durable_state(const wr_durable_t *d, uint64_t ticket)
{
    if (ticket > d->synced && ticket > d->failed)
        return 0;
    if (d->n_lost && ticket <= d->failed && wr_durable__lost(d, ticket))
        return -1;
    return ticket <= d->synced ? 1 : 0;
}

/* Links w to d (unlinking it from where it was); no-op if already there. */
void wr_durable_wait(wr_durable_t *d, wr_durable_waiter_t *w);
void wr_durable_unwait(wr_durable_waiter_t *w);
/* The domain's owner reports progress, in ticket order: the tickets
 * resolved before and up to failed are lost (if failed grew), then every
 * further ticket up to synced is durable (either may be unchanged).
 * Wakes every waiter. */
void wr_durable_update(wr_durable_t *d, uint64_t synced, uint64_t failed);
/* The domain starts over (its store was reopened: tickets count afresh). */
void wr_durable_reset(wr_durable_t *d);
/* Frees what the domain holds (its lost ranges). */
void wr_durable_free(wr_durable_t *d);

#endif
