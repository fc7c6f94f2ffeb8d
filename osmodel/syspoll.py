"""Waiting for descriptors: poll, ppoll and select's machinery (its i386 entry points are in sys32).

A caller with nothing ready sleeps on the channels of the guest files it watches (AnyOf them), so a
change to any wakes it; host files are waited for on the host, as a read of one would wait.
"""

from __future__ import annotations

import errno
import select as hostselect
import struct
import time
from typing import TYPE_CHECKING

from osmodel.files import MAX_FDS, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, Block, HostFile, PipeEnd, SysError
from osmodel.syscall import signed32, syscall
from osmodel.sysfile import TIMESPEC

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process


POLLFD = struct.Struct("<ihh")


@syscall("poll", "pud")
def sys_poll(k: Kernel, p: Process, fds: int, nfds: int, timeout: int) -> int:
    return poll_files(k, p, fds, nfds, signed32(timeout))


@syscall("ppoll", "pupp")
def sys_ppoll(k: Kernel, p: Process, fds: int, nfds: int, tsp: int, sigmask: int,
              timespec: struct.Struct = TIMESPEC) -> int:
    timeout = -1
    if tsp:
        sec, nsec = timespec.unpack(k.copyin(p, tsp, timespec.size))
        timeout = sec * 1000 + nsec // 10**6
    return poll_files(k, p, fds, nfds, timeout)


def poll_files(k: Kernel, p: Process, fds: int, nfds: int, timeout: int) -> int:
    """poll: the ready count, with revents written back; sleeps on the guest pipes involved while none is ready."""
    if nfds > MAX_FDS:
        raise SysError(errno.EINVAL)
    raw = k.copyin(p, fds, POLLFD.size * nfds)
    out = bytearray(raw)
    ready = 0
    pipes = []
    for i in range(nfds):
        fd, events, _ = POLLFD.unpack_from(raw, i * POLLFD.size)
        revents = 0
        if fd >= 0:
            try:
                file = p.files.get(fd)
                revents = file.poll(events | POLLERR | POLLHUP)
                if isinstance(file, PipeEnd):
                    pipes.append(file.pipe)
            except SysError:
                revents = POLLNVAL
        POLLFD.pack_into(out, i * POLLFD.size, fd, events, revents)
        ready += bool(revents)
    if ready or timeout == 0:
        k.copyout(p, fds, bytes(out))
        return ready
    if pipes:
        # Sleep until something happens to the first pipe; other sources are re-polled on wakeup.
        raise Block(pipes[0])
    if timeout > 0:
        k.host_sleep(timeout / 1000)
        return 0
    raise SysError(errno.EINTR)


# -- select ---

POLLIN_SET = POLLIN | POLLHUP | POLLERR       # what makes a descriptor readable, writable or exceptional
POLLOUT_SET = POLLOUT | POLLERR
POLLEX_SET = POLLPRI


def ready_sets(files: dict, wanted: list[int]) -> list[int]:
    """The readable, writable and exceptional bits among the descriptors each set asks about."""
    ready = [0, 0, 0]
    for fd, f in files.items():
        events = (POLLIN if wanted[0] >> fd & 1 else 0) | (POLLOUT if wanted[1] >> fd & 1 else 0) \
            | (POLLPRI if wanted[2] >> fd & 1 else 0)
        mask = f.poll(events)
        for i, want in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if wanted[i] >> fd & 1 and mask & want:
                ready[i] |= 1 << fd
    return ready


def select_files(k: Kernel, p: Process, nfds: int, sets: tuple[int, int, int],
                 timeout: float | None, word: int = 8) -> tuple[int, float | None]:
    """select with fd_sets of `word`-byte longs: (ready bits, seconds of the timeout left), the sets rewritten
    to the ready descriptors. Until something is ready or `timeout` seconds (None: no limit) have passed,
    the caller sleeps (others run), its deadline kept in p.wake_at across the call's restarts."""
    try:
        return wait_select(k, p, nfds, sets, timeout, word)
    except Block:
        raise
    except BaseException:
        p.wake_at = 0.0
        raise


def wait_select(k: Kernel, p: Process, nfds: int, sets: tuple[int, int, int],
                timeout: float | None, word: int) -> tuple[int, float | None]:
    """select_files' work (the deadline in p.wake_at is the caller's to clear on an error)."""
    nfds = signed32(nfds)
    if nfds < 0:
        raise SysError(errno.EINVAL)
    nfds = min(nfds, MAX_FDS)
    size = (nfds + 8 * word - 1) // (8 * word) * word     # whole fd_set words (long)
    wanted = [int.from_bytes(k.copyin(p, addr, size), "little") if addr and size else 0 for addr in sets]
    files = {fd: p.files.get(fd) for fd in range(nfds) if (wanted[0] | wanted[1] | wanted[2]) >> fd & 1}
    while True:
        ready = ready_sets(files, wanted)
        count = sum(bin(r).count("1") for r in ready)
        now = time.monotonic()
        if count or timeout == 0 or (p.wake_at and now >= p.wake_at):
            break
        wait_for_files(k, p, files, timeout, now)
    left = max(p.wake_at - now, 0.0) if p.wake_at else timeout
    p.wake_at = 0.0
    for addr, bits in zip(sets, ready):
        if addr and size:
            k.copyout(p, addr, bits.to_bytes(size, "little"))
    return count, left


def wait_for_files(k: Kernel, p: Process, files: dict, timeout: float | None, now: float) -> None:
    """Nothing select watches is ready: sleep until a guest pipe changes or the timeout ends (raises
    Block), or wait on the host for host files, as a read of one would (returns to poll again)."""
    if timeout is not None and not p.wake_at:
        p.wake_at = now + timeout
    pipes = [f.pipe for f in files.values() if isinstance(f, PipeEnd)]
    if pipes:
        raise Block(pipes[0])
    hostfds = [f.hostfd for f in files.values() if isinstance(f, HostFile)]
    if not hostfds:
        raise Block(("timer", p.pid) if timeout is not None else ("select", p.pid))   # a signal ends the latter
    limits = ([p.wake_at - now] if timeout is not None else []) + ([k.deadline - now] if k.deadline else [])
    hostselect.select(hostfds, hostfds, hostfds, max(min(limits), 0.0) if limits else None)
    if k.deadline and time.monotonic() >= k.deadline:
        k.cpu.stop()
        raise SysError(errno.EINTR)


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
