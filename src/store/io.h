/*
 * io.h - the file operations the message store uses, behind a table of
 * function pointers.
 *
 * The store never calls the operating system directly: it goes through a
 * wr_io_t.  wr_io_posix() is the real one; tests plug in an in-memory
 * implementation that can lose, keep or garble unsynced writes at a chosen
 * fsync and fail with ENOSPC or EIO on demand (tests/unit/test_store.c),
 * in the manner of SQLite's test6.c and canonical/raft's test I/O.
 *
 * Handles are small non-negative integers; errors are negative errno
 * values.  fsync may be called from a worker thread while the loop thread
 * writes to the same handle; implementations must allow that.
 */
#ifndef WR_IO_H
#define WR_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct wr_io wr_io_t;

struct wr_io {
    /* Opens path for reading and writing, creating it if create != 0. */
    int (*open)(wr_io_t *io, const char *path, int create);
    void (*close)(wr_io_t *io, int h);
    ssize_t (*pwrite)(wr_io_t *io, int h, const void *p, size_t n, uint64_t off);
    ssize_t (*pread)(wr_io_t *io, int h, void *p, size_t n, uint64_t off);
    int (*fsync)(wr_io_t *io, int h);
    int (*truncate)(wr_io_t *io, int h, uint64_t size);
    int64_t (*size)(wr_io_t *io, int h);
    int (*unlink)(wr_io_t *io, const char *path);
    int (*rename)(wr_io_t *io, const char *from, const char *to);
    int (*mkdir)(wr_io_t *io, const char *path);
    /* Syncs a directory's entries (after create, rename, unlink). */
    int (*sync_dir)(wr_io_t *io, const char *path);
    /* Calls fn for each entry name in dir; returns 0 or -errno. */
    int (*list)(wr_io_t *io, const char *dir, void (*fn)(void *ctx, const char *name), void *ctx);
    /* Free bytes on the file system holding path, or -errno. */
    int64_t (*free_space)(wr_io_t *io, const char *path);
};

/* The real file system. */
wr_io_t *wr_io_posix(void);

#endif
