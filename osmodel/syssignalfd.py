"""signalfd: signalfd and signalfd4 (x86-64 and i386), a descriptor to read signals from.

A signalfd holds a signal mask. A read takes pending signals of the mask (normally blocked, so that
no handler runs for them) from the process that reads, lowest first (the synchronous ones before
the others), and returns one 128-byte struct signalfd_siginfo per signal, as many as fit (the same
layout on both ABIs, filled from the stored siginfo_t by its layout, as Linux's signalfd_copyinfo).
With none pending it sleeps (EAGAIN if non-blocking) until Kernel.signal makes one pending.

Like Linux, a signalfd reads `current`'s signals: the process that calls read, poll, select or
epoll_wait, not the one that created it (after fork, the child reads its own). poll, select and
epoll call File.poll and File.channel within the system call of the process that waits, so both use
the kernel's current process; they fall back to the creator outside any call. A read takes the
thread's own pending signals (tgkill's, faults') first, then its thread group's shared ones (kill's,
timers', SIGCHLD), as Linux's dequeue_signal.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from osmodel.files import O_CLOEXEC, POLLIN, AnyOf, Block, File, SysError
from osmodel.sigframe import (SIGINFO_HEAD, SIGINFO_UNION, SIGSET_SIZE, UNBLOCKABLE, UNION_64, dequeue,
                              siginfo_layout)
from osmodel.signals import SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP
from osmodel.syscall import signed32, syscall, syscall32
from osmodel.syspoll import anon_stat

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

SFD_CLOEXEC = O_CLOEXEC
SFD_NONBLOCK = os.O_NONBLOCK
SIGSYS = 31
SYNCHRONOUS_MASK = sum(1 << (s - 1) for s in (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS))
# struct signalfd_siginfo: signo errno code pid uid fd tid band overrun trapno status int, ptr utime stime
# addr, addr_lsb __pad2 syscall, call_addr, arch, __pad[28]
SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")
MASK32 = 0xFFFF_FFFF


class SignalWait:
    """What a process sleeps on while it waits for signals through a signalfd (a read, or poll, select
    or epoll watching one): made by that process's wait, woken by wake_readers."""
    __slots__ = ()


def wake_readers(k: Kernel, proc: Process) -> None:
    """A signal became pending for proc (Kernel.signal): if proc sleeps waiting on a signalfd, wake it
    (its call restarts and looks again; a signal outside the mask sends it back to sleep)."""
    waits = proc.channel
    for channel in (waits if type(waits) is AnyOf else (waits,)):
        if type(channel) is SignalWait:
            k.wakeup(channel)
            return


class SignalFd(File):
    """A signalfd: the signals it reads (`mask`, never SIGKILL or SIGSTOP), from the process current
    when it is read or polled (`owner`, its creator, outside a system call)."""

    def __init__(self, k: Kernel, owner: Process, mask: int, flags: int):
        super().__init__("anon_inode:[signalfd]", os.O_RDWR | (flags & SFD_NONBLOCK))
        self.k = k
        self.owner = owner
        self.mask = mask & ~UNBLOCKABLE

    def reader(self) -> Process:
        """The process whose signals it reads now."""
        return self.k.current or self.owner

    def read(self, size: int) -> bytes:
        """A struct signalfd_siginfo per pending signal of the mask, as many as fit in size bytes
        (EINVAL if not one); with none pending, EAGAIN if non-blocking, else sleep until one comes."""
        count = size // SIGNALFD_SIGINFO.size
        if not count:
            raise SysError(errno.EINVAL)
        p = self.reader()
        records = []
        while len(records) < count:
            sig = self.next_signal(p)
            if not sig:
                break
            records.append(signalfd_siginfo(dequeue(p, sig)))
        if records:
            return b"".join(records)
        if self.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        raise Block(SignalWait())

    def next_signal(self, p: Process) -> int:
        """The signal of the mask p would read next, or 0: from its own pending set, else its group's
        shared one, in each the synchronous ones first (Linux's next_signal)."""
        ready = p.pending & self.mask or (p.leader or p).shared_pending & self.mask
        if ready & SYNCHRONOUS_MASK:
            ready &= SYNCHRONOUS_MASK
        return (ready & -ready).bit_length()

    def poll(self, events: int) -> int:
        return POLLIN & events if self.next_signal(self.reader()) else 0

    def channel(self) -> object:
        return SignalWait()

    def stat(self) -> os.stat_result:
        return anon_stat(id(self) & 0xFFFFFFF)


def signalfd_siginfo(info: bytes) -> bytes:
    """The struct signalfd_siginfo of a siginfo_t: the fields its union's layout has (Linux's
    signalfd_copyinfo; the pointers and longs as the 64-bit kernel holds them, the rest zero)."""
    sig, err, code = SIGINFO_HEAD.unpack_from(info)
    layout = siginfo_layout(sig, code)
    values = SIGINFO_UNION[layout][0].unpack_from(info, UNION_64)
    f = dict.fromkeys(("pid", "uid", "fd", "tid", "band", "overrun", "status", "int", "ptr", "utime", "stime",
                       "addr", "syscall", "call_addr", "arch"), 0)
    if layout in ("kill", "rt", "chld"):
        f["pid"], f["uid"] = values[0], values[1]
    if layout == "timer":
        f["tid"], f["overrun"], f["ptr"] = values
    elif layout == "rt":
        f["ptr"] = values[2]
    elif layout == "chld":
        f["status"], f["utime"], f["stime"] = values[2:]
    elif layout == "fault":
        f["addr"] = values[0]
    elif layout == "poll":
        f["band"], f["fd"] = values
    elif layout == "sys":
        f["call_addr"], f["syscall"], f["arch"] = values
    if layout in ("timer", "rt"):
        f["int"] = signed32(f["ptr"])
    return SIGNALFD_SIGINFO.pack(
        sig & MASK32, err, code, f["pid"] & MASK32, f["uid"], f["fd"], f["tid"] & MASK32, f["band"] & MASK32,
        f["overrun"] & MASK32, 0, f["status"], f["int"], f["ptr"], f["utime"] & (1 << 64) - 1,
        f["stime"] & (1 << 64) - 1, f["addr"], 0, 0, f["syscall"], f["call_addr"], f["arch"])


@syscall("signalfd4", "dpux")
@syscall32("signalfd4", "dpux")
def sys_signalfd4(k: Kernel, p: Process, fd: int, umask: int, sizemask: int, flags: int) -> int:
    """A new signalfd reading the signals of *umask (fd -1), or a new mask for the signalfd fd; checked
    in Linux's order: the size, the mask, the flags, the descriptor (EBADF, or EINVAL if not a signalfd)."""
    if sizemask != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    (mask,) = struct.unpack("<Q", k.copyin(p, umask, SIGSET_SIZE))
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        raise SysError(errno.EINVAL)
    fd = signed32(fd)
    if fd == -1:
        return p.files.install(SignalFd(k, p, mask, flags), bool(flags & SFD_CLOEXEC))
    file = p.files.get_kind(fd, SignalFd)
    file.mask = mask & ~UNBLOCKABLE
    for thread in k.threads(p):            # its other threads' waits look again with the new mask
        wake_readers(k, thread)
    return fd


@syscall("signalfd", "dpu")
@syscall32("signalfd", "dpu")
def sys_signalfd(k: Kernel, p: Process, fd: int, umask: int, sizemask: int) -> int:
    """signalfd4 without flags."""
    return sys_signalfd4(k, p, fd, umask, sizemask, 0)
