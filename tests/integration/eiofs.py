#!/usr/bin/python3
"""A pass-through FUSE file system that can fail every write with EIO.

    /usr/bin/python3 eiofs.py BACKING_DIR MOUNT_POINT SWITCH_FILE

Mounts BACKING_DIR at MOUNT_POINT (foreground; unmount to stop).  While
SWITCH_FILE exists, every write, fsync, truncate, create and rename
under the mount fails with EIO, as a failing disk does; reads keep
working.  Used by tests/integration/test_cluster_disk.py (root only:
Debian's python3-fusepy and /dev/fuse).
"""
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class EioFS(Operations):
    def __init__(self, root, switch):
        self.root = root
        self.switch = switch

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _failing(self):
        if os.path.exists(self.switch):
            raise FuseOSError(errno.EIO)

    # -- metadata --

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode",
                                             "st_mtime", "st_nlink", "st_size", "st_uid")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                             "f_favail", "f_ffree", "f_files", "f_flag",
                                             "f_frsize", "f_namemax")}

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._p(path), times)

    def readlink(self, path):
        return os.readlink(self._p(path))

    # -- changes: fail while the switch is on --

    def mkdir(self, path, mode):
        self._failing()
        os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        self._failing()
        os.rmdir(self._p(path))

    def unlink(self, path):
        self._failing()
        os.unlink(self._p(path))

    def rename(self, old, new):
        self._failing()
        os.rename(self._p(old), self._p(new))

    def symlink(self, target, source):
        self._failing()
        os.symlink(source, self._p(target))

    def link(self, target, source):
        self._failing()
        os.link(self._p(source), self._p(target))

    def truncate(self, path, length, fh=None):
        self._failing()
        with open(self._p(path), "r+b") as f:
            f.truncate(length)

    # -- files --

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            self._failing()
        return os.open(self._p(path), flags & ~os.O_DIRECT)

    def create(self, path, mode, fi=None):
        self._failing()
        return os.open(self._p(path), os.O_WRONLY | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._failing()
        return os.pwrite(fh, data, offset)

    def fallocate(self, path, mode, offset, length, fh):
        self._failing()
        os.posix_fallocate(fh, offset, length)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._failing()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        self._failing()

    def release(self, path, fh):
        os.close(fh)


def main():
    backing, mount, switch = sys.argv[1:4]
    FUSE(EioFS(os.path.abspath(backing), os.path.abspath(switch)), mount, foreground=True,
         nothreads=False, allow_other=True)


if __name__ == "__main__":
    main()
