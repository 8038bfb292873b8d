"""A FUSE file system that serves one disk image and fails it on demand (issue 14, the I/O-error
case without device-mapper): tests/test_disk_faults.py puts a loop device over the image, ext4
on that, and uses it as a log dir; switching this daemon to `error` fails the device as
device-mapper's `error` target does.

    python fuse_faulty.py BACKING_FILE MOUNTPOINT CONTROL_SOCKET FSNAME

serves BACKING_FILE (a real file, fixed size) as MOUNTPOINT/disk.img, with FUSE's direct_io so
the kernel keeps no page cache of it: every read and write of the loop device reaches this
daemon. Modes, switched through CONTROL_SOCKET (a Unix stream socket, one command a line, one
JSON line back):

    pass     reads, writes and fsyncs go to BACKING_FILE (fsync is a real fsync)
    error    every read, write, fsync and fallocate of the image fails with EIO
    fsync    reads and writes go to BACKING_FILE, every fsync fails with EIO (a device
             whose cache flushes fail)
    status   (no change) the mode and counters

Every answer is {"mode": ..., "reads": n, "writes": n, "fsyncs": n, "failed_reads": n,
"failed_writes": n, "failed_fsyncs": n}. The daemon dies with the process that started it
(PR_SET_PDEATHSIG), so a killed test leaves at most a dead mount (`umount -l` removes it).
Needs fusepy and libfuse2 (Debian: libfuse2); as root it mounts without fusermount.
"""

import ctypes
import errno
import json
import os
import signal
import socket
import stat
import sys
import threading
import time

import fuse  # fusepy

IMAGE = "disk.img"
MODES = ("pass", "error", "fsync")
PR_SET_PDEATHSIG = 1


class FaultyImage(fuse.Operations):
    def __init__(self, backing):
        self.fd = os.open(backing, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self._mutex = threading.Lock()
        self.mode = "pass"
        self.counts = {name: 0 for name in ("reads", "writes", "fsyncs", "failed_reads",
                                            "failed_writes", "failed_fsyncs")}
        self.started = time.time()

    def status(self):
        with self._mutex:
            return {"mode": self.mode, **self.counts}

    def set_mode(self, mode):
        with self._mutex:
            self.mode = mode

    def _count(self, kind):
        """Counts one `kind` operation; True when it must fail."""
        with self._mutex:
            self.counts[kind] += 1
            if self.mode == "error" or (self.mode == "fsync" and kind == "fsyncs"):
                self.counts["failed_" + kind] += 1
                return True
            return False

    # ----- the file system: / and /disk.img -----

    def getattr(self, path, fh=None):
        now = self.started
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_size": 0,
                    "st_atime": now, "st_mtime": now, "st_ctime": now}
        if path == "/" + IMAGE:
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": self.size,
                    "st_blocks": (self.size + 511) // 512, "st_atime": now,
                    "st_mtime": now, "st_ctime": now}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        if path != "/":
            raise fuse.FuseOSError(errno.ENOTDIR)
        return [".", "..", IMAGE]

    def open(self, path, flags):
        if path != "/" + IMAGE:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def truncate(self, path, length, fh=None):
        if length != self.size:
            raise fuse.FuseOSError(errno.EPERM)

    def read(self, path, size, offset, fh):
        if self._count("reads"):
            raise fuse.FuseOSError(errno.EIO)
        return os.pread(self.fd, size, offset)

    def write(self, path, data, offset, fh):
        if self._count("writes"):
            raise fuse.FuseOSError(errno.EIO)
        if offset + len(data) > self.size:
            raise fuse.FuseOSError(errno.ENOSPC)
        return os.pwrite(self.fd, data, offset)

    def fsync(self, path, datasync, fh):
        if self._count("fsyncs"):
            raise fuse.FuseOSError(errno.EIO)
        (os.fdatasync if datasync else os.fsync)(self.fd)
        return 0

    def fallocate(self, path, mode, offset, length, fh):
        # The loop device turns discards into fallocate(PUNCH_HOLE); not needed here.
        raise fuse.FuseOSError(errno.EIO if self.mode == "error" else errno.EOPNOTSUPP)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": self.size // 4096,
                "f_bfree": 0, "f_bavail": 0, "f_namemax": 255}


def serve_control(image, path):
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def handle(connection):
        with connection, connection.makefile("rw") as stream:
            for line in stream:
                command = line.strip()
                if command in MODES:
                    image.set_mode(command)
                elif command != "status":
                    stream.write(json.dumps({"error": f"unknown command {command!r}"}) + "\n")
                    stream.flush()
                    continue
                stream.write(json.dumps(image.status()) + "\n")
                stream.flush()

    def loop():
        while True:
            connection, _ = server.accept()
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def main():
    backing, mountpoint, control, fsname = sys.argv[1:5]
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit("fuse_faulty: the parent exited before the daemon started")
    image = FaultyImage(backing)
    serve_control(image, control)
    # foreground: no fork, so the control thread lives on; threads: the loop device may have
    # several requests in flight. direct_io: no page cache of the image in between.
    fuse.FUSE(image, mountpoint, foreground=True, nothreads=False, allow_other=True,
              direct_io=True, fsname=fsname, subtype="rtfaulty")


if __name__ == "__main__":
    main()
