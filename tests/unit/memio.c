/*
 * memio.c - the in-memory wr_io_t with crash and fault injection (see
 * memio.h for the model).
 *
 * Files are nodes (inodes) with a current and a synced content; a path
 * names a node through two maps, the current and the synced directory
 * view.  A node is freed when no view entry and no handle refers to it, so
 * a file unlinked while open, or renamed before its directory was synced,
 * keeps its data exactly as long as a real file system would.
 *
 * A crash computes, per node, the contents the disk is left with from the
 * two versions (see crash_file), then, per path, whether the synced or the
 * current directory entry survives, drops entries whose parent directory
 * did not survive, and installs the result as both views.
 */
#include "memio.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"

#define SECTOR 512

typedef struct mnode {
    int is_dir;
    int refs;   /* view entries (current and synced) plus open handles */
    int forced; /* crash mode forced by memio_crash_override, or 0 */
    wr_buf_t cur;
    wr_buf_t syn;
    struct mnode *next;
} mnode_t;

typedef struct mhandle {
    mnode_t *node; /* NULL when free or stale */
    int used;
} mhandle_t;

struct memio {
    wr_io_t io; /* first, so that a wr_io_t * is a memio_t * */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wr_map_t cur;  /* path -> mnode_t *: what the running system sees */
    wr_map_t syn;  /* path -> mnode_t *: the durable directory entries */
    wr_map_t over; /* path -> crash mode + 1, for the next crash */
    mnode_t *nodes;
    mhandle_t *h;
    size_t nh;

    unsigned fail_pwrite_n, fail_fsync_n;
    int fail_pwrite_err, fail_fsync_err;
    int64_t capacity, free_space;
    int hold;

    unsigned crash_n;
    uint64_t crash_seed;
    int crash_mode;
    int down;
    memio_stats_t stats;
};

/* ---- helpers (called with the mutex held) ---- */

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64: tiny, seedable, good enough to pick crash outcomes. */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static wr_bytes_t key(const char *path)
{
    return wr_bytes_of(path);
}

static mnode_t *node_new(memio_t *m, int is_dir)
{
    mnode_t *n = wr_xcalloc(1, sizeof *n);
    n->is_dir = is_dir;
    wr_buf_init(&n->cur);
    wr_buf_init(&n->syn);
    n->next = m->nodes;
    m->nodes = n;
    return n;
}

/* Frees every node nothing refers to any more. */
static void gc(memio_t *m)
{
    mnode_t **pp = &m->nodes;
    while (*pp) {
        mnode_t *n = *pp;
        if (n->refs > 0) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        wr_buf_free(&n->cur);
        wr_buf_free(&n->syn);
        free(n);
    }
}

/* Points path at n (or removes it, n == NULL) in a view, keeping counts. */
static void view_set(wr_map_t *v, const char *path, mnode_t *n)
{
    mnode_t *old = n ? wr_map_put(v, key(path), n) : wr_map_del(v, key(path));
    if (n)
        n->refs++;
    if (old)
        old->refs--;
}

static mnode_t *view_get(const wr_map_t *v, const char *path)
{
    return wr_map_get(v, key(path));
}

/* The length of path's parent directory name: path[0..len).  A path with
 * no slash, or only a leading one, lives in the root, which always exists
 * (len 0). */
static size_t parent_len(const char *path)
{
    const char *s = strrchr(path, '/');
    return s == NULL || s == path ? 0 : (size_t)(s - path);
}

static int parent_exists(const wr_map_t *v, const char *path)
{
    size_t n = parent_len(path);
    if (n == 0)
        return 1;
    mnode_t *d = wr_map_get(v, (wr_bytes_t){(const uint8_t *)path, n});
    return d != NULL && d->is_dir;
}

/* Is path an entry of directory dir ("/", "." or a path)? */
static int in_dir(const char *path, const char *dir)
{
    size_t n = parent_len(path);
    if (n == 0)
        return strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0 || dir[0] == '\0';
    return strlen(dir) == n && memcmp(path, dir, n) == 0;
}

static int dir_exists(const wr_map_t *v, const char *dir)
{
    if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0 || dir[0] == '\0')
        return 1;
    mnode_t *d = view_get(v, dir);
    return d != NULL && d->is_dir;
}

static uint64_t used_bytes(const memio_t *m)
{
    uint64_t u = 0;
    for (const mnode_t *n = m->nodes; n; n = n->next)
        u += n->cur.len;
    return u;
}

static void set_len(wr_buf_t *b, size_t len)
{
    if (len > b->len) {
        uint8_t *p = wr_buf_reserve(b, len - b->len);
        memset(p, 0, len - b->len);
    }
    b->len = len;
}

static void put_at(wr_buf_t *b, const void *p, size_t n, uint64_t off)
{
    if (off + n > b->len)
        set_len(b, (size_t)(off + n));
    if (n)
        memcpy(b->p + off, p, n);
}

static mnode_t *handle_node(memio_t *m, int h, int *err)
{
    if (h < 0 || (size_t)h >= m->nh || !m->h[h].used) {
        *err = -EBADF;
        return NULL;
    }
    if (m->h[h].node == NULL || m->down) {
        *err = -EIO;
        return NULL;
    }
    return m->h[h].node;
}

/* ---- the crash ---- */

/* Byte i of a version: its content, or zero past its end (what a disk
 * shows where the size was extended but the data never landed). */
static uint8_t at(const wr_buf_t *b, size_t i)
{
    return i < b->len ? b->p[i] : 0;
}

/* Computes what the disk holds for one file after a crash, into out. */
static void crash_file(const mnode_t *n, int mode, uint64_t *rs, wr_buf_t *out)
{
    const wr_buf_t *c = &n->cur, *s = &n->syn;
    out->len = 0;
    if (c->len == s->len && (c->len == 0 || memcmp(c->p, s->p, c->len) == 0)) {
        wr_buf_put(out, c->p, c->len);
        return;
    }
    if (mode == MEMIO_CRASH_DROP) {
        wr_buf_put(out, s->p, s->len);
        return;
    }
    if (mode == MEMIO_CRASH_KEEP) {
        wr_buf_put(out, c->p, c->len);
        return;
    }
    if (mode == MEMIO_CRASH_TORN && c->len >= s->len &&
        (s->len == 0 || memcmp(c->p, s->p, s->len) == 0)) {
        /* Pure appends: the disk got some prefix of them, cut at any byte. */
        size_t len = s->len + (size_t)(rnd(rs) % (c->len - s->len + 1));
        wr_buf_put(out, c->p, len);
        return;
    }
    /* GARBLE keeps the current length most of the time; SECTORS (and TORN
     * over anything but appends) may end anywhere between the two. */
    size_t lo = c->len < s->len ? c->len : s->len;
    size_t hi = c->len < s->len ? s->len : c->len;
    size_t len = c->len;
    if (mode != MEMIO_CRASH_GARBLE || rnd(rs) % 4 == 0)
        len = lo + (size_t)(rnd(rs) % (hi - lo + 1));
    set_len(out, len);
    enum { NEW, OLD, GARBAGE } pick;
    for (size_t a = 0; a < len; a += SECTOR) {
        size_t b = a + SECTOR < len ? a + SECTOR : len;
        if (b <= lo && memcmp(c->p + a, s->p + a, b - a) == 0) {
            pick = NEW; /* unchanged since the last sync */
        } else if (mode == MEMIO_CRASH_GARBLE) {
            pick = GARBAGE;
        } else {
            uint64_t x = rnd(rs) % 20;
            pick = x < 9 ? NEW : x < 18 ? OLD : GARBAGE;
        }
        for (size_t i = a; i < b; i++) {
            /* Writes are powersafe (as SQLite assumes of modern disks):
             * garbage lands only on bytes changed since the last sync,
             * never on synced bytes that share a sector with them. */
            int changed = i >= lo || c->p[i] != s->p[i];
            out->p[i] = pick == NEW               ? at(c, i)
                        : pick == OLD || !changed ? at(s, i)
                                                  : (uint8_t)rnd(rs);
        }
    }
}

static int by_len(const void *a, const void *b)
{
    size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
    return x < y ? -1 : x > y;
}

static void do_crash(memio_t *m, uint64_t seed, int mode)
{
    uint64_t rs = seed ^ 0x5DEECE66Dull;
    /* Overrides name paths; the contents belong to the nodes behind them. */
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&m->over, &i, &sl)) {
        mnode_t *n = view_get(&m->cur, sl->key);
        if (n == NULL)
            n = view_get(&m->syn, sl->key);
        if (n)
            n->forced = (int)(intptr_t)sl->value - 1;
    }
    wr_buf_t img;
    wr_buf_init(&img);
    for (mnode_t *n = m->nodes; n; n = n->next) {
        if (n->is_dir)
            continue;
        int fm = n->forced                   ? n->forced
                 : mode == MEMIO_CRASH_MIXED ? 1 + (int)(rnd(&rs) % (MEMIO_CRASH_NMODES - 1))
                                             : mode;
        n->forced = 0;
        crash_file(n, fm, &rs, &img);
        n->cur.len = 0;
        wr_buf_put(&n->cur, img.p, img.len);
        n->syn.len = 0;
        wr_buf_put(&n->syn, img.p, img.len);
    }
    wr_buf_free(&img);

    /* Directory entries: each path that differs between the views keeps
     * its synced or its current entry. */
    size_t cap = m->cur.count + m->syn.count + 1, np = 0;
    char **paths = wr_xmalloc(cap * sizeof *paths);
    mnode_t **pick = wr_xmalloc(cap * sizeof *pick);
    wr_map_t *views[2] = {&m->syn, &m->cur};
    for (int v = 0; v < 2; v++) {
        i = 0;
        while (wr_map_next(views[v], &i, &sl)) {
            if (v == 1 && wr_map_get(&m->syn, key(sl->key)) != NULL)
                continue; /* already taken from the synced view */
            paths[np++] = sl->key;
        }
    }
    qsort(paths, np, sizeof *paths, by_len);
    wr_map_t nv;
    wr_map_init(&nv);
    for (size_t k = 0; k < np; k++) {
        mnode_t *c = view_get(&m->cur, paths[k]), *s = view_get(&m->syn, paths[k]);
        mnode_t *n = c;
        if (c != s) {
            if (mode == MEMIO_CRASH_DROP)
                n = s;
            else if (mode != MEMIO_CRASH_KEEP && rnd(&rs) % 2)
                n = s;
        }
        /* Shorter paths come first, so a parent is decided before its
         * children: an entry in a directory that did not survive is gone. */
        if (n && !parent_exists(&nv, paths[k]))
            n = NULL;
        pick[k] = n;
        if (n)
            wr_map_put(&nv, key(paths[k]), n);
    }
    /* Install the result as both views; paths[] point into the old maps'
     * keys, so copy what is needed before freeing them. */
    for (size_t k = 0; k < np; k++)
        if (pick[k])
            pick[k]->refs += 2;
    wr_map_t old_cur = m->cur, old_syn = m->syn;
    wr_map_init(&m->cur);
    wr_map_init(&m->syn);
    for (size_t k = 0; k < np; k++) {
        if (pick[k]) {
            wr_map_put(&m->cur, key(paths[k]), pick[k]);
            wr_map_put(&m->syn, key(paths[k]), pick[k]);
        }
    }
    for (int v = 0; v < 2; v++) {
        wr_map_t *old = v ? &old_cur : &old_syn;
        i = 0;
        while (wr_map_next(old, &i, &sl))
            ((mnode_t *)sl->value)->refs--;
        wr_map_free(old);
    }
    wr_map_free(&nv);
    free(paths);
    free(pick);
    /* The process died with the power: its handles go stale. */
    for (size_t k = 0; k < m->nh; k++) {
        if (m->h[k].used && m->h[k].node) {
            m->h[k].node->refs--;
            m->h[k].node = NULL;
        }
    }
    gc(m);
    wr_map_free(&m->over);
    wr_map_init(&m->over);
    m->crash_n = 0;
    m->down = 1;
    m->stats.crashes++;
}

/* Called at the start of every mutating operation: fails when down, and
 * fires an armed crash.  Returns 0 to go on or -EIO. */
static int tick(memio_t *m)
{
    if (m->down)
        return -EIO;
    if (m->crash_n && --m->crash_n == 0) {
        do_crash(m, m->crash_seed, m->crash_mode);
        return -EIO;
    }
    return 0;
}

/* ---- wr_io_t ---- */

#define M(io) ((memio_t *)(io))

static int m_open(wr_io_t *io, const char *path, int create)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = 0;
    mnode_t *n = NULL;
    if (m->down) {
        r = -EIO;
        goto out;
    }
    n = view_get(&m->cur, path);
    if (n && n->is_dir) {
        r = -EISDIR;
        goto out;
    }
    if (n == NULL) {
        if (!create || !parent_exists(&m->cur, path)) {
            r = -ENOENT;
            goto out;
        }
        if ((r = tick(m)) < 0)
            goto out;
        n = node_new(m, 0);
        view_set(&m->cur, path, n);
    }
    size_t k = 0;
    while (k < m->nh && m->h[k].used)
        k++;
    if (k == m->nh) {
        m->h = wr_xrealloc(m->h, (m->nh + 1) * sizeof *m->h);
        m->nh++;
    }
    m->h[k].used = 1;
    m->h[k].node = n;
    n->refs++;
    r = (int)k;
out:
    pthread_mutex_unlock(&m->mu);
    return r;
}

static void m_close(wr_io_t *io, int h)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    if (h >= 0 && (size_t)h < m->nh && m->h[h].used) {
        if (m->h[h].node)
            m->h[h].node->refs--;
        m->h[h].node = NULL;
        m->h[h].used = 0;
        gc(m);
    }
    pthread_mutex_unlock(&m->mu);
}

static ssize_t m_pwrite(wr_io_t *io, int h, const void *p, size_t n, uint64_t off)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int err = 0;
    ssize_t r;
    mnode_t *f = handle_node(m, h, &err);
    if (f == NULL) {
        r = err;
        goto out;
    }
    if (m->crash_n == 1) {
        /* The power goes while this write is copied into the page cache:
         * some prefix of it is there for the crash to keep or lose. */
        uint64_t rs = m->crash_seed;
        size_t part = (size_t)(rnd(&rs) % (n + 1));
        put_at(&f->cur, p, part, off);
    }
    if ((r = tick(m)) < 0)
        goto out;
    m->stats.pwrites++;
    if (m->fail_pwrite_n && --m->fail_pwrite_n == 0) {
        r = m->fail_pwrite_err;
        goto out;
    }
    size_t fit = n;
    if (m->capacity >= 0) {
        uint64_t used = used_bytes(m);
        uint64_t room = (uint64_t)m->capacity > used ? (uint64_t)m->capacity - used : 0;
        uint64_t end_max = f->cur.len + room;
        if (off + n > end_max)
            fit = off >= end_max ? 0 : (size_t)(end_max - off);
    }
    put_at(&f->cur, p, fit, off);
    r = fit < n ? -ENOSPC : (ssize_t)n;
out:
    pthread_mutex_unlock(&m->mu);
    return r;
}

static ssize_t m_pread(wr_io_t *io, int h, void *p, size_t n, uint64_t off)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int err = 0;
    ssize_t r;
    mnode_t *f = handle_node(m, h, &err);
    if (f == NULL) {
        r = err;
    } else if (off >= f->cur.len) {
        r = 0;
    } else {
        size_t k = f->cur.len - off < n ? (size_t)(f->cur.len - off) : n;
        memcpy(p, f->cur.p + off, k);
        r = (ssize_t)k;
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

/* The common part of fsync and sync_dir: hold, crash, injected failure. */
static int sync_gate(memio_t *m)
{
    while (m->hold && !m->down)
        pthread_cond_wait(&m->cv, &m->mu);
    int r = tick(m);
    if (r < 0)
        return r;
    if (m->fail_fsync_n && --m->fail_fsync_n == 0)
        return m->fail_fsync_err;
    return 0;
}

static int m_fsync(wr_io_t *io, int h)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = 0;
    mnode_t *f = handle_node(m, h, &r);
    if (f != NULL && (r = sync_gate(m)) == 0) {
        /* The node may have gone stale while we waited for the hold. */
        if (m->h[h].node == f) {
            m->stats.fsyncs++;
            f->syn.len = 0;
            wr_buf_put(&f->syn, f->cur.p, f->cur.len);
        } else {
            r = -EIO;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int m_truncate(wr_io_t *io, int h, uint64_t size)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = 0;
    mnode_t *f = handle_node(m, h, &r);
    if (f != NULL && (r = tick(m)) == 0)
        set_len(&f->cur, (size_t)size);
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int64_t m_size(wr_io_t *io, int h)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int err = 0;
    mnode_t *f = handle_node(m, h, &err);
    int64_t r = f ? (int64_t)f->cur.len : err;
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int m_unlink(wr_io_t *io, const char *path)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = m->down ? -EIO : 0;
    mnode_t *n = r ? NULL : view_get(&m->cur, path);
    /* Like io_posix: unlinking what is not there succeeds. */
    if (n && n->is_dir)
        r = -EISDIR;
    else if (n && (r = tick(m)) == 0) {
        view_set(&m->cur, path, NULL);
        gc(m);
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int m_rename(wr_io_t *io, const char *from, const char *to)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = m->down ? -EIO : 0;
    mnode_t *n = r ? NULL : view_get(&m->cur, from);
    if (r == 0 && (n == NULL || !parent_exists(&m->cur, to)))
        r = -ENOENT;
    if (r == 0 && (r = tick(m)) == 0 && strcmp(from, to) != 0) {
        n->refs++; /* keep it alive between the two updates */
        view_set(&m->cur, from, NULL);
        view_set(&m->cur, to, n);
        n->refs--;
        gc(m);
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int m_mkdir(wr_io_t *io, const char *path)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = m->down ? -EIO : 0;
    /* Like io_posix: an existing entry is success. */
    if (r == 0 && view_get(&m->cur, path) == NULL) {
        if (!parent_exists(&m->cur, path))
            r = -ENOENT;
        else if ((r = tick(m)) == 0)
            view_set(&m->cur, path, node_new(m, 1));
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int m_sync_dir(wr_io_t *io, const char *dir)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = m->down ? -EIO : dir_exists(&m->cur, dir) ? 0 : -ENOENT;
    if (r == 0)
        r = sync_gate(m);
    if (r == 0) {
        m->stats.dir_syncs++;
        /* Copy this directory's entries from the current view to the
         * synced one: additions and replacements, then removals. */
        size_t cap = m->cur.count + m->syn.count + 1, n = 0, i = 0;
        char **paths = wr_xmalloc(cap * sizeof *paths);
        wr_map_slot_t *sl;
        while (wr_map_next(&m->cur, &i, &sl))
            if (in_dir(sl->key, dir))
                paths[n++] = wr_xstrndup(sl->key, sl->key_len);
        i = 0;
        while (wr_map_next(&m->syn, &i, &sl))
            if (in_dir(sl->key, dir) && view_get(&m->cur, sl->key) == NULL)
                paths[n++] = wr_xstrndup(sl->key, sl->key_len);
        for (size_t k = 0; k < n; k++) {
            view_set(&m->syn, paths[k], view_get(&m->cur, paths[k]));
            free(paths[k]);
        }
        free(paths);
        gc(m);
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int m_list(wr_io_t *io, const char *dir, void (*fn)(void *ctx, const char *name), void *ctx)
{
    memio_t *m = M(io);
    pthread_mutex_lock(&m->mu);
    int r = m->down ? -EIO : dir_exists(&m->cur, dir) ? 0 : -ENOENT;
    char **names = NULL;
    size_t n = 0;
    if (r == 0) {
        names = wr_xmalloc((m->cur.count + 1) * sizeof *names);
        size_t i = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&m->cur, &i, &sl)) {
            if (!in_dir(sl->key, dir))
                continue;
            size_t pl = parent_len(sl->key);
            const char *base = sl->key + pl + (sl->key[pl] == '/');
            names[n++] = wr_xstrndup(base, strlen(base));
        }
    }
    pthread_mutex_unlock(&m->mu);
    /* Sorted, so that runs are reproducible; fn runs unlocked. */
    if (n)
        qsort(names, n, sizeof *names, by_str);
    for (size_t k = 0; k < n; k++) {
        fn(ctx, names[k]);
        free(names[k]);
    }
    free(names);
    return r;
}

static int64_t m_free_space(wr_io_t *io, const char *path)
{
    memio_t *m = M(io);
    (void)path;
    pthread_mutex_lock(&m->mu);
    int64_t r;
    if (m->down)
        r = -EIO;
    else if (m->free_space >= 0)
        r = m->free_space;
    else if (m->capacity >= 0)
        r = m->capacity - (int64_t)used_bytes(m);
    else
        r = (int64_t)1 << 40;
    pthread_mutex_unlock(&m->mu);
    return r < 0 && r != -EIO ? 0 : r;
}

/* ---- public ---- */

memio_t *memio_new(void)
{
    memio_t *m = wr_xcalloc(1, sizeof *m);
    m->io = (wr_io_t){m_open,   m_close,  m_pwrite, m_pread,    m_fsync, m_truncate,  m_size,
                      m_unlink, m_rename, m_mkdir,  m_sync_dir, m_list,  m_free_space};
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    wr_map_init(&m->cur);
    wr_map_init(&m->syn);
    wr_map_init(&m->over);
    m->capacity = -1;
    m->free_space = -1;
    return m;
}

void memio_free(memio_t *m)
{
    if (m == NULL)
        return;
    mnode_t *n = m->nodes;
    while (n) {
        mnode_t *next = n->next;
        wr_buf_free(&n->cur);
        wr_buf_free(&n->syn);
        free(n);
        n = next;
    }
    wr_map_free(&m->cur);
    wr_map_free(&m->syn);
    wr_map_free(&m->over);
    free(m->h);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

wr_io_t *memio_io(memio_t *m)
{
    return &m->io;
}

void memio_fail_pwrite(memio_t *m, unsigned nth, int err)
{
    pthread_mutex_lock(&m->mu);
    m->fail_pwrite_n = nth;
    m->fail_pwrite_err = err;
    pthread_mutex_unlock(&m->mu);
}

void memio_fail_fsync(memio_t *m, unsigned nth, int err)
{
    pthread_mutex_lock(&m->mu);
    m->fail_fsync_n = nth;
    m->fail_fsync_err = err;
    pthread_mutex_unlock(&m->mu);
}

void memio_set_capacity(memio_t *m, int64_t bytes)
{
    pthread_mutex_lock(&m->mu);
    m->capacity = bytes;
    pthread_mutex_unlock(&m->mu);
}

void memio_set_free_space(memio_t *m, int64_t bytes)
{
    pthread_mutex_lock(&m->mu);
    m->free_space = bytes;
    pthread_mutex_unlock(&m->mu);
}

void memio_hold_fsync(memio_t *m, int hold)
{
    pthread_mutex_lock(&m->mu);
    m->hold = hold;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void memio_crash(memio_t *m, uint64_t seed, int mode)
{
    pthread_mutex_lock(&m->mu);
    do_crash(m, seed, mode);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void memio_crash_after(memio_t *m, unsigned nth, uint64_t seed, int mode)
{
    pthread_mutex_lock(&m->mu);
    m->crash_n = nth;
    m->crash_seed = seed;
    m->crash_mode = mode;
    pthread_mutex_unlock(&m->mu);
}

void memio_crash_override(memio_t *m, const char *path, int mode)
{
    pthread_mutex_lock(&m->mu);
    wr_map_put(&m->over, key(path), (void *)(intptr_t)(mode + 1));
    pthread_mutex_unlock(&m->mu);
}

int memio_is_down(memio_t *m)
{
    pthread_mutex_lock(&m->mu);
    int r = m->down;
    pthread_mutex_unlock(&m->mu);
    return r;
}

void memio_restart(memio_t *m)
{
    pthread_mutex_lock(&m->mu);
    m->down = 0;
    pthread_mutex_unlock(&m->mu);
}

int64_t memio_size(memio_t *m, const char *path)
{
    pthread_mutex_lock(&m->mu);
    mnode_t *n = view_get(&m->cur, path);
    int64_t r = n && !n->is_dir ? (int64_t)n->cur.len : -1;
    pthread_mutex_unlock(&m->mu);
    return r;
}

int64_t memio_synced_size(memio_t *m, const char *path)
{
    pthread_mutex_lock(&m->mu);
    mnode_t *n = view_get(&m->syn, path);
    int64_t r = n && !n->is_dir ? (int64_t)n->syn.len : -1;
    pthread_mutex_unlock(&m->mu);
    return r;
}

int memio_read(memio_t *m, const char *path, wr_buf_t *out)
{
    pthread_mutex_lock(&m->mu);
    mnode_t *n = view_get(&m->cur, path);
    int r = n && !n->is_dir ? 0 : -ENOENT;
    if (r == 0) {
        out->len = 0;
        wr_buf_put(out, n->cur.p, n->cur.len);
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int put_durable(memio_t *m, const char *path, int is_dir, const void *p, size_t len)
{
    if (!parent_exists(&m->syn, path) || !parent_exists(&m->cur, path))
        return -ENOENT;
    mnode_t *n = node_new(m, is_dir);
    wr_buf_put(&n->cur, p, len);
    wr_buf_put(&n->syn, p, len);
    view_set(&m->cur, path, n);
    view_set(&m->syn, path, n);
    gc(m);
    return 0;
}

int memio_write_durable(memio_t *m, const char *path, const void *p, size_t n)
{
    pthread_mutex_lock(&m->mu);
    int r = put_durable(m, path, 0, p, n);
    pthread_mutex_unlock(&m->mu);
    return r;
}

int memio_mkdir_durable(memio_t *m, const char *path)
{
    pthread_mutex_lock(&m->mu);
    int r = put_durable(m, path, 1, NULL, 0);
    pthread_mutex_unlock(&m->mu);
    return r;
}

int memio_count(memio_t *m, const char *dir, const char *suffix)
{
    pthread_mutex_lock(&m->mu);
    int c = 0;
    size_t i = 0, sn = strlen(suffix);
    wr_map_slot_t *sl;
    while (wr_map_next(&m->cur, &i, &sl))
        if (in_dir(sl->key, dir) && sl->key_len >= sn &&
            memcmp(sl->key + sl->key_len - sn, suffix, sn) == 0)
            c++;
    pthread_mutex_unlock(&m->mu);
    return c;
}

uint64_t memio_used(memio_t *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t u = used_bytes(m);
    pthread_mutex_unlock(&m->mu);
    return u;
}

void memio_get_stats(memio_t *m, memio_stats_t *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
