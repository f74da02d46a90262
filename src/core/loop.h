/*
 * loop.h - the process's one event loop and its cached clock.
 *
 * warren runs its broker logic on a single libuv loop (see
 * docs/ARCHITECTURE.md for why).  wr_loop is set once at startup, before
 * anything else runs, and never changes.  wr_now_ms is libuv's loop time:
 * monotonic milliseconds, updated once per loop pass, so reading it on the
 * hot path costs nothing.
 */
#ifndef WR_LOOP_H
#define WR_LOOP_H

#include <stdint.h>
#include <uv.h>

extern uv_loop_t *wr_loop;

static inline int64_t wr_now_ms(void)
{
    return (int64_t)uv_now(wr_loop);
}

#endif
