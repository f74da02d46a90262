/* io_posix.c - wr_io_t on POSIX files (see io.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/io.h"

static int p_open(wr_io_t *io, const char *path, int create)
{
    (void)io;
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
    return fd < 0 ? -errno : fd;
}

static void p_close(wr_io_t *io, int h)
{
    (void)io;
    close(h);
}

static ssize_t p_pwrite(wr_io_t *io, int h, const void *p, size_t n, uint64_t off)
{
    (void)io;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(h, (const char *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static ssize_t p_pread(wr_io_t *io, int h, void *p, size_t n, uint64_t off)
{
    (void)io;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(h, (char *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int p_fsync(wr_io_t *io, int h)
{
    (void)io;
    return fdatasync(h) < 0 ? -errno : 0;
}

static int p_truncate(wr_io_t *io, int h, uint64_t size)
{
    (void)io;
    return ftruncate(h, (off_t)size) < 0 ? -errno : 0;
}

static int64_t p_size(wr_io_t *io, int h)
{
    (void)io;
    struct stat st;
    return fstat(h, &st) < 0 ? -errno : (int64_t)st.st_size;
}

static int p_unlink(wr_io_t *io, const char *path)
{
    (void)io;
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int p_rename(wr_io_t *io, const char *from, const char *to)
{
    (void)io;
    return rename(from, to) < 0 ? -errno : 0;
}

static int p_mkdir(wr_io_t *io, const char *path)
{
    (void)io;
    return mkdir(path, 0750) < 0 && errno != EEXIST ? -errno : 0;
}

static int p_sync_dir(wr_io_t *io, const char *path)
{
    (void)io;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int p_list(wr_io_t *io, const char *dir, void (*fn)(void *ctx, const char *name), void *ctx)
{
    (void)io;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            fn(ctx, e->d_name);
    closedir(d);
    return 0;
}

static int64_t p_free_space(wr_io_t *io, const char *path)
{
    (void)io;
    struct statvfs st;
    if (statvfs(path, &st) < 0)
        return -errno;
    return (int64_t)st.f_bavail * (int64_t)st.f_frsize;
}

static wr_io_t posix_io = {p_open,   p_close,  p_pwrite, p_pread,    p_fsync, p_truncate,  p_size,
                           p_unlink, p_rename, p_mkdir,  p_sync_dir, p_list,  p_free_space};

wr_io_t *wr_io_posix(void)
{
    return &posix_io;
}
