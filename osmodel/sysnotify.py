"""inotify: inotify_init, inotify_init1, inotify_add_watch and inotify_rm_watch (x86-64 and i386).

A guest inotify instance is a File around an inotify descriptor of the host. Guest processes change
the host's file system through run-elf, so the host's events are the guest's: watch descriptors are
the host's (numbered as Linux numbers them, per instance) and a read returns the host's struct
inotify_event records unchanged (the same layout on both ABIs; a name is relative to the watched
directory). Paths are resolved as the guest's other path calls resolve them (its working directory,
--root). A read with nothing queued sleeps the guest process (others run) and looks again every
HOST_POLL_TICK, or waits on the host when nothing else can happen in the guest.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select as hostselect
import termios
from typing import TYPE_CHECKING

from osmodel.files import O_CLOEXEC, POLLIN, File, SysError
from osmodel.syscall import AT_FDCWD, signed32, syscall, syscall32
from osmodel.sysfile import namei
from osmodel.hostwait import wait_for
from osmodel.syspoll import anon_stat

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = O_CLOEXEC
IN_ALL_EVENTS = 0xFFF                          # IN_ACCESS ... IN_MOVE_SELF
IN_UNMOUNT, IN_Q_OVERFLOW, IN_IGNORED = 0x2000, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK = 0x0100_0000, 0x0200_0000, 0x0400_0000
IN_MASK_CREATE, IN_MASK_ADD, IN_ISDIR, IN_ONESHOT = 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x8000_0000
ALL_INOTIFY_BITS = (IN_ALL_EVENTS | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ONLYDIR | IN_DONT_FOLLOW
                    | IN_EXCL_UNLINK | IN_MASK_CREATE | IN_MASK_ADD | IN_ISDIR | IN_ONESHOT)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.inotify_init1.argtypes = [ctypes.c_int]
LIBC.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
LIBC.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def host_call(result: int) -> int:
    """A libc call's result, or SysError with the host's errno if it failed."""
    if result < 0:
        raise SysError(ctypes.get_errno())
    return result


class InotifyFile(File):
    """An inotify instance: the host's inotify descriptor `hostfd` (non-blocking on the host whatever the
    guest's O_NONBLOCK says). poll/select/epoll wait for it as for a host file."""

    def __init__(self, k: Kernel, flags: int):
        super().__init__("anon_inode:inotify", os.O_RDONLY | (flags & IN_NONBLOCK))
        self.k = k
        self.hostfd = host_call(LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))

    def read(self, size: int) -> bytes:
        """Whole queued events that fit in size bytes (EINVAL if the first does not); with none queued,
        EAGAIN if non-blocking, else the caller sleeps until there are some."""
        while True:
            try:
                return os.read(self.hostfd, size)
            except BlockingIOError:
                pass
            if self.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            self.wait(self.k.current)

    def wait(self, p: Process) -> None:
        """Nothing is queued: wait for the host descriptor (hostwait.wait_for: returns, or raises Block and
        the read restarts)."""
        wait_for(self.k, p, self.hostfd, POLLIN, "inotify")

    def write(self, data: bytes) -> int:
        raise SysError(errno.EBADF)            # opened read-only

    def lseek(self, offset: int, whence: int) -> int:
        return 0                               # Linux's noop_llseek: the position stays 0

    def poll(self, events: int) -> int:
        readable, _, _ = hostselect.select([self.hostfd], [], [], 0)
        return POLLIN & events if readable else 0

    def unread(self) -> int:
        """FIONREAD: the bytes of the queued events."""
        return int.from_bytes(fcntl.ioctl(self.hostfd, termios.FIONREAD, bytes(4)), "little")

    def stat(self) -> os.stat_result:
        return anon_stat(id(self) & 0xFFFFFFF)

    def release(self) -> None:
        os.close(self.hostfd)


@syscall32("inotify_init", "")
@syscall("inotify_init", "")
def sys_inotify_init(k: Kernel, p: Process) -> int:
    return sys_inotify_init1(k, p, 0)


@syscall32("inotify_init1", "x")
@syscall("inotify_init1", "x")
def sys_inotify_init1(k: Kernel, p: Process, flags: int) -> int:
    if flags & ~(IN_NONBLOCK | IN_CLOEXEC):
        raise SysError(errno.EINVAL)
    file = InotifyFile(k, flags)
    try:
        return p.files.install(file, bool(flags & IN_CLOEXEC))
    except SysError:
        file.release()
        raise


@syscall32("inotify_add_watch", "dsx")
@syscall("inotify_add_watch", "dsx")
def sys_inotify_add_watch(k: Kernel, p: Process, fd: int, path: int, mask: int) -> int:
    """Watch the guest path for `mask`'s events (a new watch, or the path's existing one changed); its
    watch descriptor. Checked in Linux's order: the mask, the descriptor, then the path."""
    mask &= 0xFFFF_FFFF
    if not mask & ALL_INOTIFY_BITS or (mask & IN_MASK_ADD and mask & IN_MASK_CREATE):
        raise SysError(errno.EINVAL)
    file = p.files.get_kind(signed32(fd), InotifyFile)
    _guest, host = namei(k, p, AT_FDCWD, k.copyinstr(p, path), follow=not mask & IN_DONT_FOLLOW)
    return host_call(LIBC.inotify_add_watch(file.hostfd, os.fsencode(host), mask))


@syscall32("inotify_rm_watch", "dd")
@syscall("inotify_rm_watch", "dd")
def sys_inotify_rm_watch(k: Kernel, p: Process, fd: int, wd: int) -> int:
    """Remove a watch: its IN_IGNORED event is queued (EINVAL if wd is not one of the instance's)."""
    file = p.files.get_kind(signed32(fd), InotifyFile)
    return host_call(LIBC.inotify_rm_watch(file.hostfd, signed32(wd)))
