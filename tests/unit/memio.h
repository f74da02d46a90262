/*
 * memio.h - an in-memory file system behind wr_io_t, for testing the
 * message store against power cuts and disk errors.
 *
 * It models durability the way SQLite's test6.c does.  Every file has two
 * contents: "current" (what reads return: the page cache) and "synced"
 * (what the disk is known to hold); fsync copies current to synced for
 * that one file.  Directories likewise have a current and a synced view of
 * their entries: creating, unlinking or renaming a file changes only the
 * current view, and sync_dir of the parent makes the changes to that
 * directory's entries durable.  mkdir is an entry like any other.
 *
 * memio_crash() is the power cut: it computes the state the disk is left
 * in, in which every write and directory change since the last sync may
 * have been lost, kept, torn or garbled (chosen by a seeded PRNG and a
 * mode; only bytes changed since the last sync are ever garbled: writes
 * are "powersafe", as SQLite assumes of modern disks), makes that the new
 * current and synced state, and takes the file
 * system "down": every operation but close fails with -EIO until
 * memio_restart(), so the crashed store instance can be freed without
 * touching the new state.  memio_crash_after() arms the same crash to
 * happen on the Nth mutating operation from now, which lets a test cut the
 * power in the middle of a flush or a recovery; a pwrite interrupted that
 * way lands a random prefix of its bytes in the page cache first.
 *
 * Faults: the Nth pwrite or fsync fails with a given error, a capacity
 * past which pwrite fails with -ENOSPC (after writing what fits, as
 * write(2) does), a free-space figure to report, and a switch that makes
 * fsync block until released, so that a test can hold a sync in flight on
 * libuv's worker thread.
 *
 * Thread safety: one mutex serialises every operation, so the store's
 * worker thread may fsync while the loop thread writes.  Handles are small
 * integers; a handle open at a crash goes stale: operations on it fail
 * with -EIO and close frees it.
 */
#ifndef WR_MEMIO_H
#define WR_MEMIO_H

#include <stdint.h>

#include "core/buf.h"
#include "store/io.h"

typedef struct memio memio_t;

/* How a crash treats what was not synced.  In MIXED, the default, each
 * file picks one of the file modes below and each unsynced directory entry
 * is kept or undone by a coin toss; DROP and KEEP apply to directory
 * entries too, the others toss a coin per entry. */
enum {
    MEMIO_CRASH_MIXED = 0,
    MEMIO_CRASH_DROP = 1,    /* every unsynced change is lost */
    MEMIO_CRASH_KEEP = 2,    /* every change reached the disk (kill -9) */
    MEMIO_CRASH_TORN = 3,    /* a random byte-prefix of unsynced appends */
    MEMIO_CRASH_GARBLE = 4,  /* unsynced sectors become random bytes */
    MEMIO_CRASH_SECTORS = 5, /* each unsynced sector old, new or garbage; any length between */
    MEMIO_CRASH_NMODES = 6,
};

typedef struct memio_stats {
    uint64_t pwrites;
    uint64_t fsyncs; /* file fsyncs */
    uint64_t dir_syncs;
    uint64_t crashes;
} memio_stats_t;

/* An empty file system whose root ("/" or ".") always exists.  The
 * returned object owns everything; memio_free releases it (handles left
 * open included). */
memio_t *memio_new(void);
void memio_free(memio_t *m);
/* The wr_io_t to hand to the store; valid until memio_free. */
wr_io_t *memio_io(memio_t *m);

/* ---- faults (all counters count from the call) ---- */

/* The nth pwrite from now (1 = the next one) fails with err and writes
 * nothing; nth 0 disarms. */
void memio_fail_pwrite(memio_t *m, unsigned nth, int err);
/* The nth fsync or sync_dir from now fails with err and syncs nothing;
 * nth 0 disarms. */
void memio_fail_fsync(memio_t *m, unsigned nth, int err);
/* Total bytes the files may hold; -1 (the default) is unlimited. */
void memio_set_capacity(memio_t *m, int64_t bytes);
/* What free_space reports; -1 (the default) means capacity minus use, or
 * 1 TiB without a capacity. */
void memio_set_free_space(memio_t *m, int64_t bytes);
/* While hold is nonzero, fsync and sync_dir block (on whatever thread
 * calls them) until it is set back to zero. */
void memio_hold_fsync(memio_t *m, int hold);

/* ---- crashes ---- */

/* Cuts the power now; see the file comment. */
void memio_crash(memio_t *m, uint64_t seed, int mode);
/* Cuts the power when the nth mutating operation from now (pwrite, fsync,
 * sync_dir, truncate, unlink, rename, mkdir, creating open) starts; that
 * operation then fails with -EIO.  nth 0 disarms. */
void memio_crash_after(memio_t *m, unsigned nth, uint64_t seed, int mode);
/* For the next crash only, the file at path uses mode (not MIXED) for its
 * contents, whatever the crash's own mode. */
void memio_crash_override(memio_t *m, const char *path, int mode);
int memio_is_down(memio_t *m);
/* Brings a crashed file system back up; every handle must be closed. */
void memio_restart(memio_t *m);

/* ---- inspection and set-up (the test's view, not the store's) ---- */

/* Current size of the file at path, or -1 if it does not exist. */
int64_t memio_size(memio_t *m, const char *path);
/* Size of the file's synced contents, or -1 unless its entry is durable
 * (exists in the synced view of its directory). */
int64_t memio_synced_size(memio_t *m, const char *path);
/* Copies the current contents into out (replacing them); 0 or -ENOENT. */
int memio_read(memio_t *m, const char *path, wr_buf_t *out);
/* Creates or replaces the file with durable contents and entry (its parent
 * must exist durably).  0 or -errno. */
int memio_write_durable(memio_t *m, const char *path, const void *p, size_t n);
/* Creates a directory, durably (its parent must exist).  0 or -errno. */
int memio_mkdir_durable(memio_t *m, const char *path);
/* Number of files directly in dir whose name ends with suffix. */
int memio_count(memio_t *m, const char *dir, const char *suffix);
/* Bytes held by all files (current contents). */
uint64_t memio_used(memio_t *m);
void memio_get_stats(memio_t *m, memio_stats_t *out);

#endif
