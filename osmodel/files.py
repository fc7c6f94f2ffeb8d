"""Open files and descriptor tables.

A guest descriptor is an index into the process's FdTable, never a host descriptor: each
File holds its own host descriptor (dup'ed for the standard streams), so a guest can only
reach what it opened through its own system calls or was given at start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat as statmod
import struct
from dataclasses import dataclass, field
from typing import Callable, ClassVar, TypeVar

O_ACCMODE = 0o3
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
FD_CLOEXEC = 1
MAX_FDS = 1 << 20          # Linux's nr_open: no descriptor table grows beyond it


class SysError(Exception):
    """A system call fails with this errno."""

    def __init__(self, code: int):
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


@contextlib.contextmanager
def host_umask_zero():
    """Create files with exactly the mode the guest computed (its own umask already applied): run-elf's
    umask must not mask it a second time."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def host_umask() -> int:
    """run-elf's own umask (what the first guest process inherits)."""
    old = os.umask(0)
    os.umask(old)
    return old


def pack_stat(st: os.stat_result) -> bytes:
    """A struct stat in the x86-64 Linux layout (144 bytes)."""
    ns = lambda v: (v or 0) % 10**9  # noqa: E731 - a synthetic stat_result has no nanoseconds
    return struct.pack("<QQQIIIiQqqqQQQQQQ24x",
                       st.st_dev, st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, 0,
                       getattr(st, "st_rdev", 0) or 0, st.st_size, getattr(st, "st_blksize", 4096) or 4096,
                       getattr(st, "st_blocks", 0) or 0,
                       int(st.st_atime), ns(st.st_atime_ns), int(st.st_mtime), ns(st.st_mtime_ns),
                       int(st.st_ctime), ns(st.st_ctime_ns))


class AnyOf(tuple):
    """Several channels one sleeper waits on (poll, select, epoll): a wakeup of any of them wakes it."""


class Block(Exception):
    """The call has to wait: the process sleeps on `channels` (one, or any of several: AnyOf) and the
    call restarts when it is woken."""

    def __init__(self, *channels: object):
        channel = channels[0] if len(channels) == 1 else AnyOf(channels)
        super().__init__(channel)
        self.channel = channel


POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20


# Flags that act at open time only: Linux's do_dentry_open drops them from the file's f_flags (F_GETFL).
OPEN_ONLY_FLAGS = O_CLOEXEC | os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC


class File:
    """An open file description, shared by dup'ed and inherited descriptors. Subclasses say what it is."""

    def __init__(self, path: str, flags: int):
        self.path = path
        self.flags = flags & ~OPEN_ONLY_FLAGS
        self.refs = 0

    def read(self, size: int) -> bytes:
        """Up to size bytes from the current position (may raise Block)."""
        raise SysError(errno.EINVAL)

    def write(self, data: bytes) -> int:
        """Write data; the number of bytes written (may raise Block)."""
        raise SysError(errno.EINVAL)

    def pread(self, size: int, offset: int) -> bytes:
        """Up to size bytes at offset."""
        raise SysError(errno.ESPIPE)

    def lseek(self, offset: int, whence: int) -> int:
        """Move the position; the new position."""
        raise SysError(errno.ESPIPE)

    def stat(self) -> os.stat_result:
        """What fstat reports."""
        raise SysError(errno.EINVAL)

    def isatty(self) -> bool:
        """Whether this is a terminal."""
        return False

    def is_directory(self) -> bool:
        """Whether this is a directory."""
        return False

    def channel(self) -> object:
        """What a process waiting for this file to become ready sleeps on (None: never waits in the guest)."""
        return None

    def poll(self, events: int) -> int:
        """Which of `events` (POLL*) are ready now, plus POLLERR/POLLHUP."""
        return events & (POLLIN | POLLOUT)

    def release(self) -> None:
        """The last descriptor went away."""


class HostFile(File):
    """A file of the host, through a host descriptor that belongs to this File alone."""

    def __init__(self, hostfd: int, path: str, flags: int, host_path: str | None = None):
        super().__init__(path, flags)
        self.hostfd = hostfd
        self.host_path = host_path or path     # `path` is what the guest called it
        self._key: tuple[int, int] | None = None
        self.proc_listed = False               # /proc's guest pids were listed (getdents64)
        self.dir_pos = 0                       # the next entry of a generated directory (/proc/PID/fd)
        self.slow: bool | None = None          # I/O may wait (hostwait.may_block), once known

    def key(self) -> tuple[int, int]:
        """The file's identity (device, inode), as the page cache knows it."""
        if self._key is None:
            st = os.fstat(self.hostfd)
            self._key = (st.st_dev, st.st_ino)
        return self._key

    def resolved_host_path(self) -> str:
        """The host path of the file itself, as the host kernel names it: links resolved, no '.' or '..'."""
        try:
            return os.readlink(f"/proc/self/fd/{self.hostfd}")
        except OSError:
            return self.host_path

    def read(self, size: int) -> bytes:
        return os.read(self.hostfd, size)

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.hostfd, size, offset)

    def write(self, data: bytes) -> int:
        return os.write(self.hostfd, data)

    def lseek(self, offset: int, whence: int) -> int:
        if offset == 0 and whence == os.SEEK_SET:
            self.proc_listed, self.dir_pos = False, 0     # rewinddir lists generated entries again
        return os.lseek(self.hostfd, offset, whence)

    def stat(self) -> os.stat_result:
        return os.fstat(self.hostfd)

    def isatty(self) -> bool:
        return os.isatty(self.hostfd)

    def is_directory(self) -> bool:
        return statmod.S_ISDIR(self.stat().st_mode)

    def poll(self, events: int) -> int:
        p = select.poll()
        p.register(self.hostfd, events)
        ready = p.poll(0)
        return ready[0][1] if ready else 0

    def release(self) -> None:
        try:
            os.close(self.hostfd)
        except OSError:
            pass


PIPE_CAPACITY = 65536   # Linux's default pipe buffer
PIPE_BUF = 4096         # writes up to this size are atomic


class Pipe:
    """A pipe's buffer and how many read and write ends are open (a named pipe's too). Sleepers wait
    on the Pipe itself. The counters of opens ever made let a FIFO opener blocked until the other
    side comes tell that it came, even if it has left again (Linux's r_counter/w_counter)."""

    def __init__(self, wakeup):
        self.buffer = bytearray()
        self.readers = 0
        self.writers = 0
        self.reads_opened = 0
        self.writes_opened = 0
        self.wakeup = wakeup      # wakes every process sleeping on a channel


class PipeEnd(File):
    """A pipe opened for reading, writing or (a named pipe only) both: `access` is O_RDONLY, O_WRONLY
    or O_RDWR. `path` is what /proc/PID/fd/N links to: pipe:[N], or a named pipe's guest path."""

    def __init__(self, pipe: Pipe, access: int, flags: int, path: str | None = None,
                 st: os.stat_result | None = None):
        super().__init__("pipe:", (flags & ~O_ACCMODE) | access)
        self.pipe = pipe
        self.reads = access != os.O_WRONLY
        self.writes = access != os.O_RDONLY
        if self.reads:
            pipe.readers += 1
            pipe.reads_opened += 1
        if self.writes:
            pipe.writers += 1
            pipe.writes_opened += 1
        # A non-blocking reader opened with no writer reports no hang-up until a writer has come (Linux's f_version).
        self.quiet_until = pipe.writes_opened if self.reads and not pipe.writers and flags & os.O_NONBLOCK else -1
        self.ino = id(pipe) & 0xFFFFFFF
        self.path = path or f"pipe:[{self.ino}]"
        self.st = st                            # a named pipe's inode, as fstat shows it
        if path is not None:
            pipe.wakeup(pipe)                   # an opener of the other side may be waiting for this one

    def channel(self) -> object:
        return self.pipe

    def read(self, size: int) -> bytes:
        pipe = self.pipe
        if not self.reads:
            raise SysError(errno.EBADF)
        if pipe.buffer:
            data = bytes(pipe.buffer[:size])
            del pipe.buffer[:size]
            pipe.wakeup(pipe)
            return data
        if pipe.writers == 0:
            return b""
        if self.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        raise Block(pipe)

    def write(self, data: bytes) -> int:
        pipe = self.pipe
        if not self.writes:
            raise SysError(errno.EBADF)
        if pipe.readers == 0:
            raise SysError(errno.EPIPE)
        room = PIPE_CAPACITY - len(pipe.buffer)
        if room == 0 or (len(data) <= PIPE_BUF and room < len(data)):
            if self.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            raise Block(pipe)
        chunk = data[:room]
        pipe.buffer += chunk
        pipe.wakeup(pipe)
        return len(chunk)

    def stat(self) -> os.stat_result:
        if self.st is not None:
            return self.st
        mode = statmod.S_IFIFO | 0o600
        return os.stat_result((mode, self.ino, 0x0C, 1, os.getuid(), os.getgid(), 0, 0, 0, 0))

    def poll(self, events: int) -> int:
        pipe = self.pipe
        ready = 0
        if self.reads:
            ready |= events & POLLIN if pipe.buffer else 0
            ready |= POLLHUP if pipe.writers == 0 and pipe.writes_opened != self.quiet_until else 0
        if self.writes:
            ready |= events & POLLOUT if len(pipe.buffer) < PIPE_CAPACITY else 0
            ready |= POLLERR if pipe.readers == 0 else 0      # Linux reports room even without readers
        return ready

    def release(self) -> None:
        if self.reads:
            self.pipe.readers -= 1
        if self.writes:
            self.pipe.writers -= 1
        self.pipe.wakeup(self.pipe)


FileT = TypeVar("FileT", bound=File)


@dataclass
class FdTable:
    """A process's descriptors: fd -> (File, close-on-exec). Threads share one table (`users`)."""
    slots: dict[int, tuple[File, bool]] = field(default_factory=dict)
    users: int = 1
    limit: int = 1024            # descriptors are below this: the RLIMIT_NOFILE soft limit of the process
    # Called as hook(table, file) after each close of a descriptor, before the file's release when that was
    # its last (file.refs == 0): the file locks (osmodel.syslock) go then.
    close_hooks: ClassVar[list[Callable[[FdTable, File], None]]] = []

    def get(self, fd: int) -> File:
        """The File behind fd, or EBADF."""
        try:
            return self.slots[fd][0]
        except KeyError:
            raise SysError(errno.EBADF) from None

    def get_kind(self, fd: int, kind: type[FileT]) -> FileT:
        """The File behind fd if it is a `kind` (epoll, timerfd...): EBADF if fd is not open, else EINVAL."""
        file = self.get(fd)
        if not isinstance(file, kind):
            raise SysError(errno.EINVAL)
        return file

    def install(self, file: File, cloexec: bool = False, lowest: int = 0) -> int:
        """Give file the lowest free descriptor >= lowest."""
        fd = lowest
        while fd in self.slots:
            fd += 1
        if fd >= self.limit:
            raise SysError(errno.EMFILE)
        self.place(fd, file, cloexec)
        return fd

    def place(self, fd: int, file: File, cloexec: bool = False) -> None:
        """Put file at descriptor fd, closing what was there."""
        if fd in self.slots:
            self.close(fd)
        file.refs += 1
        self.slots[fd] = (file, cloexec)

    def close(self, fd: int) -> None:
        """Close descriptor fd (EBADF if not open)."""
        try:
            file, _ = self.slots.pop(fd)
        except KeyError:
            raise SysError(errno.EBADF) from None
        file.refs -= 1
        for hook in self.close_hooks:
            hook(self, file)
        if file.refs == 0:
            file.release()

    def close_all(self) -> None:
        """Close every descriptor."""
        for fd in list(self.slots):
            self.close(fd)

    def close_on_exec(self) -> None:
        """Close the descriptors marked close-on-exec (execve)."""
        for fd, (_file, cloexec) in list(self.slots.items()):
            if cloexec:
                self.close(fd)

    def copy(self) -> FdTable:
        """A table with the same open files (fork): each File gains a reference."""
        table = FdTable(limit=self.limit)
        for fd, (file, cloexec) in self.slots.items():
            file.refs += 1
            table.slots[fd] = (file, cloexec)
        return table

    def set_cloexec(self, fd: int, cloexec: bool) -> None:
        """Set or clear FD_CLOEXEC on fd."""
        self.slots[fd] = (self.get(fd), cloexec)

    def cloexec(self, fd: int) -> bool:
        """Whether fd is close-on-exec."""
        self.get(fd)
        return self.slots[fd][1]
