"""Waiting for descriptors: poll, ppoll, select, pselect6 and epoll, and the eventfd counter (the i386
select entry points are in sys32).

Every one of these waits through wait_ready: it scans the files watched, and while none is ready the
caller sleeps on the channels of the guest files (AnyOf them: a change to any wakes it and the call
restarts, its deadline kept in p.wake_at), or, when it watches only host files (terminals, host pipes)
and nothing else in the guest can happen meanwhile, waits for them with the host's poll.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import struct
import time
from typing import TYPE_CHECKING, Callable, TypeVar

from osmodel.files import (O_CLOEXEC, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, AnyOf, Block,
                           File, HostFile, PipeEnd, SysError)
from osmodel.hostwait import HOST_POLL_TICK, guest_idle, wait_host
from osmodel.sigframe import set_user_sigmask
from osmodel.syscall import signed32, syscall, syscall32
from osmodel.sysfile import TIMESPEC

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process


POLLFD = struct.Struct("<ihh")
TIMEVAL = struct.Struct("<qq")                # struct timeval (x86-64): tv_sec, tv_usec
SIGSET_ARGPACK = struct.Struct("<QQ")         # pselect6's last argument: sigset pointer and size
SIGSET_SIZE = 8                               # sizeof(sigset_t) in the kernel
T = TypeVar("T")
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
POLL_BITS = 0xFFFF                            # the events a file's poll can report


# -- readiness and the one wait -------------------------------------------------------------------

def readiness(file: File, events: int) -> int:
    """What poll reports for `file` asked for `events`: its POLLIN and POLLOUT also as POLLRDNORM and
    POLLWRNORM (as Linux's pipes and eventfd say), masked to what was asked plus POLLERR and POLLHUP."""
    mask = file.poll((events & POLL_BITS) | POLLIN | POLLOUT)
    if mask & POLLIN:
        mask |= POLLRDNORM
    if mask & POLLOUT:
        mask |= POLLWRNORM
    return mask & (events | POLLERR | POLLHUP)


def leaves(watched: list[tuple[File, int]]) -> tuple[list[object], list[tuple[int, int]]]:
    """The channels to sleep on and the (host descriptor, events) to wait for, for the watched (file, events):
    an epoll instance stands for itself (epoll_ctl wakes it) and for everything it watches, nested ones too."""
    channels: list[object] = []
    host: list[tuple[int, int]] = []
    seen: set[int] = set()
    todo = list(watched)
    while todo:
        file, events = todo.pop()
        if id(file) in seen:
            continue
        seen.add(id(file))
        if isinstance(file, EpollFile):
            todo.extend(file.watched())
        if getattr(file, "hostfd", None) is not None:       # a host file, or a guest file around one (inotify)
            host.append((file.hostfd, events & POLL_BITS))
            continue
        channel = file.channel()
        if type(channel) is AnyOf:
            channels.extend(channel)
        elif channel is not None:
            channels.append(channel)
    return channels, host


def wait_ready(k: Kernel, p: Process, scan: Callable[[], tuple[int, object, list[tuple[File, int]]]],
               timeout: float | None) -> tuple[int, object, float | None]:
    """The one wait of poll, select and epoll_wait: scan() -> (ready count, result, the (file, events) it
    watches) runs until it counts something ready or `timeout` seconds (None: no limit; 0: scan once) have
    passed; (count, result, seconds of the timeout left). Meanwhile the caller sleeps (Block; the call
    restarts with its deadline kept in p.wake_at, which is cleared once the call ends)."""
    try:
        while True:
            count, result, watched = scan()
            now = time.monotonic()
            if count or timeout == 0 or (p.wake_at and now >= p.wake_at):
                break
            sleep_on(k, p, watched, timeout, now)
    except Block:
        raise
    except BaseException:
        p.wake_at = 0.0
        raise
    left = max(p.wake_at - now, 0.0) if p.wake_at else timeout
    p.wake_at = 0.0
    return count, result, left


def sleep_on(k: Kernel, p: Process, watched: list[tuple[File, int]], timeout: float | None, now: float) -> None:
    """Nothing watched is ready: sleep on the guest files' channels until one changes or the timeout ends
    (raises Block), re-polling host files every HOST_POLL_TICK; with host files alone and nothing else to
    run in the guest, wait for them on the host (returns to scan again)."""
    if timeout is not None and not p.wake_at:
        p.wake_at = now + timeout
    channels, host = leaves(watched)
    if host and not channels and guest_idle(k, p):
        wait_host(k, p, host, now)
        return
    if host:
        tick = ("host poll", p.pid)
        k.add_timer(now + HOST_POLL_TICK, lambda _now: k.wakeup(tick))
        channels.append(tick)
    if not channels:
        # Only a timeout (the scheduler wakes it) or a signal can end this sleep.
        channels.append(("timer", p.pid) if timeout is not None else ("pause", p.pid))
    raise Block(*channels)


# -- poll -----------------------------------------------------------------------------------------

@syscall("poll", "pud")
def sys_poll(k: Kernel, p: Process, fds: int, nfds: int, timeout: int) -> int:
    ms = signed32(timeout)
    count, _left = poll_files(k, p, fds, nfds, ms / 1000 if ms >= 0 else None)
    return count


@syscall("ppoll", "puppu")
def sys_ppoll(k: Kernel, p: Process, fds: int, nfds: int, tsp: int, sigmask: int, sigsetsize: int,
              timespec: struct.Struct = TIMESPEC) -> int:
    """ppoll: a timespec timeout, updated to the time left (not a zero one); the signal mask is the
    process's while it waits."""
    timeout = pselect_timeout(*timespec.unpack(k.copyin(p, tsp, timespec.size))) if tsp else None
    count, left = with_sigmask(k, p, sigmask, sigsetsize, lambda: poll_files(k, p, fds, nfds, timeout))
    if tsp and timeout:
        k.copyout(p, tsp, timespec.pack(*split_time(left, 10**9)))
    return count


def poll_files(k: Kernel, p: Process, fds: int, nfds: int, timeout: float | None) -> tuple[int, float | None]:
    """poll: (the ready count, with revents written back; seconds of the timeout left)."""
    if nfds > p.files.limit:                      # Linux's check against RLIMIT_NOFILE
        raise SysError(errno.EINVAL)
    raw = k.copyin(p, fds, POLLFD.size * nfds)

    def scan():
        out = bytearray(raw)
        ready = 0
        watched = []
        for i in range(nfds):
            fd, events, _ = POLLFD.unpack_from(raw, i * POLLFD.size)
            revents = 0
            if fd >= 0:
                try:
                    file = p.files.get(fd)
                except SysError:
                    revents = POLLNVAL
                else:
                    revents = readiness(file, events & 0xFFFF)
                    watched.append((file, events & 0xFFFF))
            POLLFD.pack_into(out, i * POLLFD.size, fd, events, revents - (0x10000 if revents & 0x8000 else 0))
            ready += bool(revents)
        return ready, out, watched

    count, out, left = wait_ready(k, p, scan, timeout)
    k.copyout(p, fds, bytes(out))
    return count, left


def with_sigmask(k: Kernel, p: Process, sigmask: int, sigsetsize: int, wait: Callable[[], T]) -> T:
    """wait() with the call's signal mask argument (if any) as the process's mask, as Linux's
    set_user_sigmask: EINVAL unless its size is sigset_t's; EINTR at once if a signal it unblocks is
    pending (its handler then runs, and sigreturn puts the old mask back, as when such a signal ends the
    wait); the old mask is back when the call returns any other way."""
    if sigmask:
        if sigsetsize != SIGSET_SIZE:
            raise SysError(errno.EINVAL)
        set_user_sigmask(p, struct.unpack("<Q", k.copyin(p, sigmask, SIGSET_SIZE))[0])
    try:
        result = wait()
    except Block:
        raise
    except BaseException:
        restore_sigmask(p, sigmask)
        raise
    restore_sigmask(p, sigmask)
    return result


def restore_sigmask(p: Process, sigmask: int) -> None:
    """Put back the mask a call's own signal mask replaced (none if it had none)."""
    if sigmask and p.saved_sigmask is not None:
        p.sigmask = p.saved_sigmask
        p.saved_sigmask = None


# -- select ---

POLLIN_SET = POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR   # readable, writable, exceptional
POLLOUT_SET = POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR
POLLEX_SET = POLLPRI


@syscall("select", "dpppp")
def sys_select(k: Kernel, p: Process, nfds: int, inp: int, outp: int, exp: int, tvp: int) -> int:
    return do_select(k, p, nfds, (inp, outp, exp), tvp, TIMEVAL, 8)


@syscall("pselect6", "dppppp")
def sys_pselect6(k: Kernel, p: Process, nfds: int, inp: int, outp: int, exp: int, tsp: int, sig: int) -> int:
    return do_pselect(k, p, nfds, (inp, outp, exp), tsp, sig, TIMESPEC, SIGSET_ARGPACK, 8)


def do_select(k: Kernel, p: Process, nfds: int, sets: tuple[int, int, int], tvp: int, timeval: struct.Struct,
              word: int) -> int:
    """select with a struct timeval timeout (updated to the time left, not a zero one) and fd_sets of
    `word`-byte longs."""
    timeout = select_timeout(*timeval.unpack(k.copyin(p, tvp, timeval.size))) if tvp else None
    count, left = select_files(k, p, nfds, sets, timeout, word)
    if tvp and timeout:
        k.copyout(p, tvp, timeval.pack(*split_time(left, 10**6)))
    return count


def do_pselect(k: Kernel, p: Process, nfds: int, sets: tuple[int, int, int], tsp: int, sig: int,
               timespec: struct.Struct, argpack: struct.Struct, word: int) -> int:
    """pselect6: a timespec timeout (updated to the time left) and a {sigset pointer, size} pack (`argpack`)
    giving the signal mask while it waits (as ppoll)."""
    timeout = pselect_timeout(*timespec.unpack(k.copyin(p, tsp, timespec.size))) if tsp else None
    sigmask, sigsetsize = argpack.unpack(k.copyin(p, sig, argpack.size)) if sig else (0, 0)
    count, left = with_sigmask(k, p, sigmask, sigsetsize, lambda: select_files(k, p, nfds, sets, timeout, word))
    if tsp and timeout:
        k.copyout(p, tsp, timespec.pack(*split_time(left, 10**9)))
    return count


def ready_sets(files: dict, wanted: list[int]) -> list[int]:
    """The readable, writable and exceptional bits among the descriptors each set asks about."""
    ready = [0, 0, 0]
    for fd, f in files.items():
        events = (POLLIN_SET if wanted[0] >> fd & 1 else 0) | (POLLOUT_SET if wanted[1] >> fd & 1 else 0) \
            | (POLLEX_SET if wanted[2] >> fd & 1 else 0)
        mask = readiness(f, events)
        for i, want in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if wanted[i] >> fd & 1 and mask & want:
                ready[i] |= 1 << fd
    return ready


def select_files(k: Kernel, p: Process, nfds: int, sets: tuple[int, int, int],
                 timeout: float | None, word: int = 8) -> tuple[int, float | None]:
    """select with fd_sets of `word`-byte longs: (ready bits, seconds of the timeout left), the sets rewritten
    to the ready descriptors. Waits (wait_ready) until something is ready or `timeout` seconds (None: no
    limit) have passed."""
    nfds = signed32(nfds)
    if nfds < 0:
        raise SysError(errno.EINVAL)
    nfds = min(nfds, p.files.limit)
    size = (nfds + 8 * word - 1) // (8 * word) * word     # whole fd_set words (long)
    wanted = [int.from_bytes(k.copyin(p, addr, size), "little") if addr and size else 0 for addr in sets]

    def scan():
        files = {fd: p.files.get(fd) for fd in range(nfds) if (wanted[0] | wanted[1] | wanted[2]) >> fd & 1}
        ready = ready_sets(files, wanted)
        events = [(f, (POLLIN_SET if wanted[0] >> fd & 1 else 0) | (POLLOUT_SET if wanted[1] >> fd & 1 else 0)
                   | (POLLEX_SET if wanted[2] >> fd & 1 else 0)) for fd, f in files.items()]
        return sum(bin(r).count("1") for r in ready), ready, events

    count, ready, left = wait_ready(k, p, scan, timeout)
    for addr, bits in zip(sets, ready):
        if addr and size:
            k.copyout(p, addr, bits.to_bytes(size, "little"))
    return count, left


def select_timeout(sec: int, usec: int) -> float:
    """select's struct timeval as seconds: EINVAL if negative; microseconds past a second carry over."""
    if sec < 0 or usec < 0:
        raise SysError(errno.EINVAL)
    return sec + usec / 10**6


def pselect_timeout(sec: int, nsec: int) -> float:
    """pselect's struct timespec as seconds (EINVAL unless 0 <= nsec < 10**9 and sec >= 0)."""
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    return sec + nsec / 10**9


def split_time(seconds: float, per_second: int) -> tuple[int, int]:
    """Seconds as (whole seconds, fraction in units of 1/per_second)."""
    units = round(seconds * per_second)
    return units // per_second, units % per_second


# -- anonymous-inode files -----------------------------------------------------------------------

def anon_stat(ino: int) -> os.stat_result:
    """What fstat says of an anonymous-inode file (epoll, eventfd): mode 0600 and no file type."""
    return os.stat_result((statmod.S_IRUSR | statmod.S_IWUSR, ino, 0x0E, 1, os.getuid(), os.getgid(), 0, 0, 0, 0))


# -- eventfd ----------------------------------------------------------------------------------------

EFD_SEMAPHORE = 1
EFD_NONBLOCK = os.O_NONBLOCK
EFD_CLOEXEC = O_CLOEXEC
COUNTER_MAX = (1 << 64) - 2               # the largest value an eventfd counter holds (ULLONG_MAX - 1)


class EventFd(File):
    """An eventfd: a 64-bit counter that writes add to and reads take (all of it, or one in semaphore mode).
    Sleepers wait on the EventFd itself."""

    def __init__(self, count: int, flags: int, wakeup):
        super().__init__("anon_inode:[eventfd]", os.O_RDWR | (flags & EFD_NONBLOCK))
        self.count = count
        self.semaphore = bool(flags & EFD_SEMAPHORE)
        self.wakeup = wakeup
        self.reads = self.writes = 0       # how many reads and writes changed the counter (epoll's edges)

    def channel(self) -> object:
        return self

    def read(self, size: int) -> bytes:
        if size < 8:
            raise SysError(errno.EINVAL)
        if self.count == 0:
            if self.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            raise Block(self)
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.reads += 1
        self.wakeup(self)
        return value.to_bytes(8, "little")

    def write(self, data: bytes) -> int:
        if len(data) < 8:
            raise SysError(errno.EINVAL)
        value = int.from_bytes(data[:8], "little")
        if value == (1 << 64) - 1:
            raise SysError(errno.EINVAL)
        if value > COUNTER_MAX - self.count:
            if self.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            raise Block(self)
        if value:
            self.count += value
            self.writes += 1
            self.wakeup(self)
        return 8

    def stat(self) -> os.stat_result:
        return anon_stat(id(self) & 0xFFFFFFF)

    def poll(self, events: int) -> int:
        ready = (POLLIN if self.count else 0) | (POLLOUT if self.count < COUNTER_MAX else 0)
        return ready & events

    def activity(self, events: int) -> int:
        """A count that grows with every change an edge-triggered watcher of `events` is told about."""
        return (self.writes if events & POLLIN else 0) + (self.reads if events & POLLOUT else 0)


@syscall32("eventfd", "u")
@syscall("eventfd", "u")
def sys_eventfd(k: Kernel, p: Process, count: int) -> int:
    return sys_eventfd2(k, p, count, 0)


@syscall32("eventfd2", "ux")
@syscall("eventfd2", "ux")
def sys_eventfd2(k: Kernel, p: Process, count: int, flags: int) -> int:
    if flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC):
        raise SysError(errno.EINVAL)
    return p.files.install(EventFd(count & 0xFFFF_FFFF, flags, k.wakeup), bool(flags & EFD_CLOEXEC))


# -- epoll ------------------------------------------------------------------------------------------

EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLRDHUP = 0x2000
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
EPOLL_EVENT = struct.Struct("<IQ")            # struct epoll_event, packed (x86-64 and i386): events, data
EP_MAX_EVENTS = 0x7FFF_FFFF // EPOLL_EVENT.size
EP_MAX_NESTS = 4                              # how deep epoll instances may watch one another


class Interest:
    """One entry of an epoll interest list (Linux's epitem): a watched (file, fd), its events and data,
    and for edge-triggered entries what was last seen of it."""
    __slots__ = ("file", "fd", "events", "data", "seen", "activity")

    def __init__(self, file: File, fd: int, events: int, data: int):
        self.file, self.fd, self.data = file, fd, data
        self.set_events(events)

    def set_events(self, events: int) -> None:
        """New events (ADD, MOD): POLLERR and POLLHUP are always watched; an edge-triggered one starts anew."""
        self.events = events | POLLERR | POLLHUP
        self.seen = 0
        self.activity = None


class EpollFile(File):
    """An epoll instance: an interest list keyed by (open file description, fd), and a ready list in the
    order entries became ready (as far as scans see it). An entry whose file's last descriptor closed is
    gone (Linux's eventpoll_release)."""

    def __init__(self, wakeup):
        super().__init__("anon_inode:[eventpoll]", os.O_RDWR)
        self.items: dict[tuple[File, int], Interest] = {}
        self.rdlist: dict[tuple[File, int], None] = {}     # keys of the entries to report, first first
        self.wakeup = wakeup

    def channel(self) -> object:
        return self                       # epoll_ctl wakes it; leaves() adds what it watches

    def live(self) -> list[Interest]:
        """The entries whose file is still open (the others are dropped)."""
        for key in [key for key, item in self.items.items() if item.file.refs == 0]:
            del self.items[key]
            self.rdlist.pop(key, None)
        return list(self.items.values())

    def watched(self) -> list[tuple[File, int]]:
        """The (file, events) of every live entry."""
        return [(item.file, item.events & POLL_BITS) for item in self.live()]

    def queue(self, item: Interest) -> None:
        """An entry was added or changed: onto the ready list's tail if it has something to report."""
        if pending(item)[0]:
            self.rdlist.setdefault((item.file, item.fd), None)

    def scan(self, limit: int) -> list[tuple[Interest, int]]:
        """The first `limit` entries of the ready list, with their events: newly ready entries join its
        tail, entries with nothing to report leave it; edge-triggered entries note what they saw."""
        found = {}
        for item in self.live():
            mask, ready, activity = pending(item)
            if item.events & EPOLLET:
                item.seen &= ready        # what was seen falls with the file's readiness
                item.activity = activity
            key = (item.file, item.fd)
            if mask:
                found[key] = mask
                self.rdlist.setdefault(key, None)
            else:
                self.rdlist.pop(key, None)
        return [(self.items[key], found[key]) for key in list(self.rdlist)[:limit]]

    def report(self, reported: list[tuple[Interest, int]]) -> None:
        """The entries were returned by epoll_wait: one-shot ones are disabled, edge-triggered ones remember
        what they reported; level-triggered ones go back to the ready list's tail, the others leave it."""
        for item, mask in reported:
            key = (item.file, item.fd)
            del self.rdlist[key]
            if item.events & EPOLLONESHOT:
                item.events &= EP_PRIVATE_BITS
            if item.events & EPOLLET:
                item.seen |= mask
            elif item.events & ~EP_PRIVATE_BITS:
                self.rdlist[key] = None

    def poll(self, events: int) -> int:
        return POLLIN & events if any(pending(item)[0] for item in self.live()) else 0

    def stat(self) -> os.stat_result:
        return anon_stat(id(self) & 0xFFFFFFF)

    def release(self) -> None:
        self.items.clear()
        self.rdlist.clear()

    def reaches(self, target: EpollFile, depth: int = 0) -> int:
        """How deep the epoll instances below this one go (-1 if `target` is among them)."""
        deepest = depth
        for item in self.live():
            if isinstance(item.file, EpollFile):
                if item.file is target:
                    return -1
                below = item.file.reaches(target, depth + 1)
                if below < 0:
                    return -1
                deepest = max(deepest, below)
        return deepest


def pending(item: Interest) -> tuple[int, int, int | None]:
    """The events an entry would report now, those its file has ready, and the file's activity count. A one-shot entry that fired
    reports nothing until EPOLL_CTL_MOD; an edge-triggered one only an event it has not reported yet, or any
    after new activity of its file."""
    if not item.events & ~EP_PRIVATE_BITS:
        return 0, 0, None
    ready = readiness(item.file, item.events & POLL_BITS) & item.events
    if not item.events & EPOLLET:
        return ready, ready, None
    activity = file_activity(item.file, item.events)
    grew = activity is not None and item.activity is not None and activity > item.activity
    return (ready if ready & ~item.seen or grew else 0), ready, activity


def file_activity(file: File, events: int) -> int | None:
    """A count that grows with the changes an edge-triggered watcher of `events` on `file` is told about
    (None: only the file's readiness is known)."""
    if isinstance(file, EventFd):
        return file.activity(events)
    if isinstance(file, PipeEnd):
        # Writes grow what a reader sees, reads grow the writer's room.
        return len(file.pipe.buffer) if file.reads else -len(file.pipe.buffer)
    return None


@syscall32("epoll_create", "d")
@syscall("epoll_create", "d")
def sys_epoll_create(k: Kernel, p: Process, size: int) -> int:
    if signed32(size) <= 0:
        raise SysError(errno.EINVAL)
    return sys_epoll_create1(k, p, 0)


@syscall32("epoll_create1", "x")
@syscall("epoll_create1", "x")
def sys_epoll_create1(k: Kernel, p: Process, flags: int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SysError(errno.EINVAL)
    return p.files.install(EpollFile(k.wakeup), bool(flags & EPOLL_CLOEXEC))


@syscall32("epoll_ctl", "dddp")
@syscall("epoll_ctl", "dddp")
def sys_epoll_ctl(k: Kernel, p: Process, epfd: int, op: int, fd: int, event: int) -> int:
    """Add, change or remove an entry of epfd's interest list, checked in Linux's order."""
    op, fd = signed32(op), signed32(fd)
    events = data = 0
    if op in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        events, data = EPOLL_EVENT.unpack(k.copyin(p, event, EPOLL_EVENT.size))
    ep = p.files.get(signed32(epfd))
    target = p.files.get(fd)
    if not pollable(target):
        raise SysError(errno.EPERM)
    if ep is target or not isinstance(ep, EpollFile):
        raise SysError(errno.EINVAL)
    if events & EPOLLEXCLUSIVE and (op == EPOLL_CTL_MOD or isinstance(target, EpollFile)
                                    or events & ~EPOLLEXCLUSIVE_OK_BITS):
        raise SysError(errno.EINVAL)
    key = (target, fd)
    ep.live()
    item = ep.items.get(key)
    if op == EPOLL_CTL_ADD:
        if item is not None:
            raise SysError(errno.EEXIST)
        if isinstance(target, EpollFile):
            depth = target.reaches(ep)
            if depth < 0 or depth >= EP_MAX_NESTS:
                raise SysError(errno.ELOOP)
        ep.items[key] = item = Interest(target, fd, events, data)
        ep.queue(item)
    elif op == EPOLL_CTL_DEL:
        if item is None:
            raise SysError(errno.ENOENT)
        del ep.items[key]
        ep.rdlist.pop(key, None)
    elif op == EPOLL_CTL_MOD:
        if item is None:
            raise SysError(errno.ENOENT)
        if item.events & EPOLLEXCLUSIVE:
            raise SysError(errno.EINVAL)
        item.set_events(events)
        item.data = data
        ep.queue(item)
    else:
        raise SysError(errno.EINVAL)
    k.wakeup(ep)
    return 0


MEM_MAJOR, RANDOM_MINOR = 1, 8               # /dev/null, zero, full, urandom...: only /dev/random polls


def pollable(file: File) -> bool:
    """Whether epoll may watch the file (Linux: it has a poll method; regular files, directories and the
    memory devices but /dev/random have none)."""
    if isinstance(file, HostFile):
        st = file.stat()
        if statmod.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == MEM_MAJOR:
            return os.minor(st.st_rdev) == RANDOM_MINOR
        return not (statmod.S_ISREG(st.st_mode) or statmod.S_ISDIR(st.st_mode))
    return True


@syscall32("epoll_wait", "dpdd")
@syscall("epoll_wait", "dpdd")
def sys_epoll_wait(k: Kernel, p: Process, epfd: int, events: int, maxevents: int, timeout: int) -> int:
    ms = signed32(timeout)
    return epoll_wait(k, p, epfd, events, maxevents, ms / 1000 if ms >= 0 else None)


@syscall32("epoll_pwait", "dpddpu")
@syscall("epoll_pwait", "dpddpu")
def sys_epoll_pwait(k: Kernel, p: Process, epfd: int, events: int, maxevents: int, timeout: int,
                    sigmask: int, sigsetsize: int) -> int:
    """epoll_wait with a signal mask for the wait (as ppoll)."""
    ms = signed32(timeout)
    return with_sigmask(k, p, sigmask, sigsetsize,
                        lambda: epoll_wait(k, p, epfd, events, maxevents, ms / 1000 if ms >= 0 else None))


@syscall32("epoll_pwait2", "dpdppu")
@syscall("epoll_pwait2", "dpdppu")
def sys_epoll_pwait2(k: Kernel, p: Process, epfd: int, events: int, maxevents: int, tsp: int,
                     sigmask: int, sigsetsize: int) -> int:
    """epoll_pwait with a struct __kernel_timespec timeout (NULL: none), on both ABIs."""
    timeout = pselect_timeout(*TIMESPEC.unpack(k.copyin(p, tsp, TIMESPEC.size))) if tsp else None
    return with_sigmask(k, p, sigmask, sigsetsize, lambda: epoll_wait(k, p, epfd, events, maxevents, timeout))


def epoll_wait(k: Kernel, p: Process, epfd: int, events: int, maxevents: int, timeout: float | None) -> int:
    """Wait until epfd has entries to report or the timeout passes; up to maxevents struct epoll_event
    written to `events`; how many."""
    maxevents = signed32(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS:
        raise SysError(errno.EINVAL)
    ep = p.files.get_kind(signed32(epfd), EpollFile)

    def scan():
        ready = ep.scan(maxevents)
        return len(ready), ready, [(ep, POLLIN)]

    count, ready, _left = wait_ready(k, p, scan, timeout)
    if ready:
        k.copyout(p, events, b"".join(EPOLL_EVENT.pack(mask, item.data) for item, mask in ready))
        ep.report(ready)
    return count
