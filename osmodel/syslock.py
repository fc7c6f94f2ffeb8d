"""File locks: flock's whole-file locks, POSIX record locks (fcntl F_GETLK/F_SETLK/F_SETLKW) and open file
description locks (F_OFD_*), with Linux's semantics, decided by a guest-side table (as fs/locks.c).

Every guest process lives in the one run-elf process, so the host cannot tell guest lock owners apart:
the guest's locks are kept here, per file identity (a host file's device and inode), in an InodeLocks,
which is also the channel a waiting locker sleeps on (a release wakes it, and its call restarts).

- flock locks belong to the open file description (a File, shared by dup and fork) and go with its last
  descriptor. They are also taken on the host, non-blocking, on the File's own host descriptor, so host
  processes see them; when a host process holds a conflicting one, a blocking flock retries on a timer.
- POSIX record locks belong to the descriptor table (Linux's fl_owner is current->files: the threads of a
  process share it, fork makes a new one, execve keeps it) and report the locker's tgid as l_pid. Closing
  ANY descriptor of the file drops all of the table's locks on it (so does exit, which closes them all).
- OFD locks are the same byte ranges owned by the File, dropped with its last descriptor; l_pid is -1.
Record and OFD locks stay in the guest: the host does not see them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from osmodel.files import O_ACCMODE, Block, FdTable, File, HostFile, SysError
from osmodel.process import SLEEPING
from osmodel.syscall import signed32, syscall, syscall32

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN, LOCK_MAND = 1, 2, 4, 8, 32
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_GETLK64, F_SETLK64, F_SETLKW64 = 12, 13, 14          # i386's fcntl64: struct flock64
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
LOCK_COMMANDS = (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
OFFSET_MAX = (1 << 63) - 1
COMPAT_OFF_T_MAX = (1 << 31) - 1
MAX_DEADLK_ITERATIONS = 10
HOST_LOCK_TICK = 0.01             # how often a blocked flock asks the host again while a host process holds it
FLOCK = struct.Struct("<hh4xqqi4x")      # struct flock (x86-64): l_type, l_whence, l_start, l_len, l_pid
FLOCK64_32 = struct.Struct("<hhqqi")     # struct compat_flock64 (i386, packed)
FLOCK_32 = struct.Struct("<hhiii")       # struct compat_flock (i386, 32-bit offsets)


@dataclass
class Range:
    """One record lock: bytes start..end (inclusive; OFFSET_MAX: to any end) of `type`, held by `owner`
    (an FdTable for a POSIX lock, a File for an OFD lock); `pid` is what F_GETLK reports."""
    owner: object
    pid: int
    type: int
    start: int
    end: int


class InodeLocks:
    """The locks on one file, and the channel its waiting lockers sleep on."""

    def __init__(self, key: object, wakeup: Callable[[object], None]):
        self.key = key
        self.wakeup = wakeup
        self.flocks: dict[File, int] = {}      # open file description -> LOCK_SH or LOCK_EX
        self.ranges: list[Range] = []          # grouped by owner, each owner's in order of start

    def empty(self) -> bool:
        """Whether no lock is left."""
        return not self.flocks and not self.ranges


INODES: dict[object, InodeLocks] = {}
# id(POSIX owner) -> (owner, its sleeper, where, the lock it waits for): what the deadlock check follows.
WAITING: dict[int, tuple[object, Process, InodeLocks, Range]] = {}


def identity(file: File) -> object:
    """What a file's locks are keyed by: a host file's (device, inode); a pipe's buffer; else the file."""
    if isinstance(file, HostFile):
        return file.key()
    return id(getattr(file, "pipe", file))


def inode_of(k: Kernel, file: File) -> InodeLocks:
    """The lock state of file's inode (created empty)."""
    key = identity(file)
    inode = INODES.get(key)
    if inode is None:
        inode = INODES[key] = InodeLocks(key, k.wakeup)
    return inode


def settle(inode: InodeLocks) -> None:
    """Wake the inode's waiters (something was released) and forget it once it holds nothing."""
    inode.wakeup(inode)
    if inode.empty() and INODES.get(inode.key) is inode:
        del INODES[inode.key]


# -- flock -----------------------------------------------------------------------------------------

def host_flock(file: File, op: int) -> bool:
    """Take (non-blocking) or drop the lock on the host file too; False if a host process holds a conflicting one."""
    if not isinstance(file, HostFile):
        return True
    try:
        fcntl.flock(file.hostfd, op | (LOCK_NB if op != LOCK_UN else 0))
    except BlockingIOError:
        return False
    except OSError:
        pass                        # a file the host cannot lock: the guest's table still decides
    return True


def flock_conflict(inode: InodeLocks, file: File, kind: int) -> bool:
    """Whether another open file description holds a lock that excludes a `kind` lock."""
    return any(other is not file and (kind == LOCK_EX or held == LOCK_EX) for other, held in inode.flocks.items())


@syscall("flock", "dx")
def sys_flock(k: Kernel, p: Process, fd: int, operation: int) -> int:
    """Lock the whole file for this open file description: shared, exclusive or unlock, as Linux's
    flock_lock_inode (a conversion drops the old lock first, even if the new one must wait); a blocking
    request sleeps on the inode's InodeLocks, or retries on a timer while a host process holds the lock."""
    operation &= 0xFFFF_FFFF
    if operation & LOCK_MAND:
        return 0                     # never worked, ignored since Linux 5.15
    kind = operation & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise SysError(errno.EINVAL)
    file = p.files.get(signed32(fd))
    inode = inode_of(k, file)
    held = inode.flocks.get(file)
    WAITING.pop(id(p.files), None)
    if held == kind:
        return 0
    if held is not None:
        del inode.flocks[file]
        host_flock(file, LOCK_UN)
        inode.wakeup(inode)
    if kind == LOCK_UN:
        settle(inode)
        return 0
    if flock_conflict(inode, file, kind):
        if operation & LOCK_NB:
            raise SysError(errno.EWOULDBLOCK)
        raise Block(inode)
    if not host_flock(file, kind):           # a host process holds it
        settle(inode)
        if operation & LOCK_NB:
            raise SysError(errno.EWOULDBLOCK)
        k.add_timer(time.monotonic() + HOST_LOCK_TICK, lambda _now: inode.wakeup(inode))
        raise Block(inode)
    inode.flocks[file] = kind
    INODES[inode.key] = inode                # (settle may have let it go while it was empty)
    return 0


# -- record locks ----------------------------------------------------------------------------------

def lock_range(file: File, whence: int, start: int, length: int) -> tuple[int, int]:
    """(first, last) byte of a struct flock's range, as Linux's flock64_to_posix_lock: EINVAL for a bad
    whence or a range before 0, EOVERFLOW past the largest offset."""
    if whence == os.SEEK_SET:
        base = 0
    elif whence == os.SEEK_CUR:
        try:
            base = file.lseek(0, os.SEEK_CUR)
        except SysError:
            base = 0                 # a pipe's position
    elif whence == os.SEEK_END:
        base = file.stat().st_size
    else:
        raise SysError(errno.EINVAL)
    if start > OFFSET_MAX - base:
        raise SysError(errno.EOVERFLOW)
    first = base + start
    if first < 0:
        raise SysError(errno.EINVAL)
    if length > 0:
        if length - 1 > OFFSET_MAX - first:
            raise SysError(errno.EOVERFLOW)
        return first, first + length - 1
    if length < 0:
        if first + length < 0:
            raise SysError(errno.EINVAL)
        return first + length, first - 1
    return first, OFFSET_MAX


def conflicts(a: Range, owner: object, kind: int, first: int, last: int) -> bool:
    """Whether lock a stands in the way of owner's `kind` lock on first..last."""
    return (a.owner is not owner and (a.type == F_WRLCK or kind == F_WRLCK)
            and a.start <= last and first <= a.end)


def first_conflict(inode: InodeLocks, owner: object, kind: int, first: int, last: int) -> Range | None:
    """The first lock (in the inode's order) that conflicts, as F_GETLK reports it."""
    return next((a for a in inode.ranges if conflicts(a, owner, kind, first, last)), None)


def deadlocks(owner: object, blocker: Range) -> bool:
    """Whether waiting for blocker would close a cycle of POSIX owners waiting for each other's locks
    (Linux's posix_locks_deadlock, which follows at most MAX_DEADLK_ITERATIONS waits)."""
    for _ in range(MAX_DEADLK_ITERATIONS + 1):
        waiting = WAITING.get(id(blocker.owner))
        if waiting is None:
            return False
        waiter, proc, inode, next_blocker = waiting
        if waiter is not blocker.owner or proc.state != SLEEPING or proc.channel is not inode:
            return False                # gone, or no longer waiting
        blocker = next_blocker
        if blocker.owner is owner:
            return True
    return False


def place(inode: InodeLocks, owner: object, pid: int, kind: int, first: int, last: int) -> None:
    """Set owner's locks on first..last to `kind` (F_UNLCK: none): overlapped locks of another type are
    cut or split, ones of the same type that touch it merge with it (posix_lock_inode)."""
    mine = [a for a in inode.ranges if a.owner is owner]
    kept: list[Range] = []
    for a in mine:
        if kind != F_UNLCK and a.type == kind and a.start <= last + 1 and first <= a.end + 1:
            first, last = min(first, a.start), max(last, a.end)
        elif a.end < first or a.start > last:
            kept.append(a)
        else:
            if a.start < first:
                kept.append(Range(owner, a.pid, a.type, a.start, first - 1))
            if a.end > last:
                kept.append(Range(owner, a.pid, a.type, last + 1, a.end))
    if kind != F_UNLCK:
        kept.append(Range(owner, pid, kind, first, last))
    kept.sort(key=lambda a: a.start)
    at = next((i for i, a in enumerate(inode.ranges) if a.owner is owner), len(inode.ranges))
    others = [a for a in inode.ranges if a.owner is not owner]
    inode.ranges = others[:at] + kept + others[at:]


def check_mode(file: File, kind: int) -> None:
    """EBADF when the descriptor was not opened for reading (a read lock) or writing (a write lock)."""
    mode = file.flags & O_ACCMODE
    if (kind == F_RDLCK and mode == os.O_WRONLY) or (kind == F_WRLCK and mode == os.O_RDONLY):
        raise SysError(errno.EBADF)


def get_lock(k: Kernel, p: Process, file: File, cmd: int, request: tuple[int, int, int, int, int]) -> tuple:
    """F_GETLK, F_OFD_GETLK: the struct flock fields to write back (l_type F_UNLCK and the rest unchanged
    if nothing conflicts, else the first conflicting lock from SEEK_SET, l_len 0 meaning to the end)."""
    kind, whence, start, length, pid = request
    if kind not in (F_RDLCK, F_WRLCK):
        raise SysError(errno.EINVAL)
    first, last = lock_range(file, whence, start, length)
    if cmd == F_OFD_GETLK and pid != 0:
        raise SysError(errno.EINVAL)
    owner = file if cmd == F_OFD_GETLK else p.files
    inode = INODES.get(identity(file))
    found = first_conflict(inode, owner, kind, first, last) if inode is not None else None
    if found is None:
        return F_UNLCK, whence, start, length, pid
    size = 0 if found.end == OFFSET_MAX else found.end - found.start + 1
    return found.type, os.SEEK_SET, found.start, size, found.pid


def set_lock(k: Kernel, p: Process, file: File, cmd: int, request: tuple[int, int, int, int, int]) -> int:
    """F_SETLK(W), F_OFD_SETLK(W): place the lock, EAGAIN on a conflict, or sleep (SETLKW) until it can
    be placed; EDEADLK when a POSIX wait would close a cycle."""
    kind, whence, start, length, pid = request
    first, last = lock_range(file, whence, start, length)
    if kind not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise SysError(errno.EINVAL)
    check_mode(file, kind)
    ofd = cmd in (F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and pid != 0:
        raise SysError(errno.EINVAL)
    owner: object = file if ofd else p.files
    inode = inode_of(k, file)
    if kind != F_UNLCK:
        blocker = first_conflict(inode, owner, kind, first, last)
        if blocker is not None:
            if cmd in (F_SETLK, F_OFD_SETLK):
                raise SysError(errno.EAGAIN)
            if not ofd and deadlocks(owner, blocker):
                raise SysError(errno.EDEADLK)
            if not ofd:
                WAITING[id(owner)] = (owner, p, inode, blocker)
            raise Block(inode)
    WAITING.pop(id(owner), None)
    place(inode, owner, -1 if ofd else p.tgid, kind, first, last)
    settle(inode)
    return 0


def fcntl_lock(k: Kernel, p: Process, file: File, cmd: int, arg: int, layout: struct.Struct = FLOCK) -> int:
    """A lock command of fcntl with its struct flock at arg in `layout` (cmd: F_GETLK, F_SETLK(W) or an OFD one)."""
    request = layout.unpack(k.copyin(p, arg, layout.size))
    if cmd in (F_GETLK, F_OFD_GETLK):
        reply = get_lock(k, p, file, cmd, request)
        if layout is FLOCK_32:
            reply = compat_reply(reply)
        k.copyout(p, arg, layout.pack(*reply))
        return 0
    return set_lock(k, p, file, cmd, request)


def compat_reply(reply: tuple) -> tuple:
    """F_GETLK's answer in a 32-bit struct flock: EOVERFLOW for a start past 2 GiB, a length cut to fit."""
    kind, whence, start, length, pid = reply
    if start > COMPAT_OFF_T_MAX:
        raise SysError(errno.EOVERFLOW)
    return kind, whence, start, min(length, COMPAT_OFF_T_MAX), pid


# -- releasing on close ------------------------------------------------------------------------------

def release_on_close(table: FdTable, file: File) -> None:
    """A descriptor of file was closed in table: the table's record locks on the file go (whichever
    descriptor took them); with the file's last descriptor, its flock and OFD locks go too."""
    if not INODES:
        return
    try:
        inode = INODES.get(identity(file))
    except OSError:
        return
    if inode is None:
        return
    gone = file if file.refs == 0 else None
    inode.ranges = [a for a in inode.ranges if a.owner is not table and a.owner is not gone]
    if gone is not None:
        inode.flocks.pop(file, None)
    settle(inode)


FdTable.close_hooks.append(release_on_close)


# -- the i386 entry points -------------------------------------------------------------------------------

@syscall32("fcntl64", "ddx")
@syscall32("fcntl", "ddx")
def sys_fcntl64(k: Kernel, p: Process, fd: int, cmd: int, arg: int) -> int:
    """i386 fcntl and fcntl64 (one entry point on an x86-64 kernel, compat_sys_fcntl64): the lock commands
    with their 32-bit structures (struct compat_flock for F_GETLK..F_SETLKW, compat_flock64 for the *64 and
    OFD commands); the other commands are x86-64's."""
    from osmodel.sysfile import sys_fcntl     # (sysfile imports this module for its lock commands)
    cmd &= 0xFFFF_FFFF
    if cmd in (F_GETLK64, F_SETLK64, F_SETLKW64, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        plain = {F_GETLK64: F_GETLK, F_SETLK64: F_SETLK, F_SETLKW64: F_SETLKW}.get(cmd, cmd)
        return fcntl_lock(k, p, p.files.get(signed32(fd)), plain, arg, FLOCK64_32)
    if cmd in (F_GETLK, F_SETLK, F_SETLKW):
        return fcntl_lock(k, p, p.files.get(signed32(fd)), cmd, arg, FLOCK_32)
    return sys_fcntl(k, p, fd, cmd, arg)


syscall32("flock", "dx")(sys_flock)
