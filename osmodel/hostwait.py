"""Waiting for host descriptors without stopping the guest.

A host terminal, pty, pipe or FIFO may make a read or write wait for a host process, or for a
guest process that can only run once the waiting call returns (a pty's two sides, a child
writing what its parent reads). A guest process waiting on one therefore sleeps in the guest
and re-polls it every HOST_POLL_TICK while other guest processes can run; when nothing else can
happen in the guest, it waits on the host (bounded by its own timeout and by --timeout).
"""

from __future__ import annotations

import errno
import os
import select as hostselect
import stat as statmod
import time
from typing import TYPE_CHECKING

from osmodel.files import POLLERR, POLLHUP, POLLIN, Block, File, HostFile, SysError

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

HOST_POLL_TICK = 0.01                         # how often a sleeper re-polls the host descriptors it waits on


def guest_idle(k: Kernel, p: Process) -> bool:
    """Whether nothing can happen in the guest while p waits: no other process runnable or in a timed
    sleep, no kernel timer armed."""
    return not k.next_timer() and not any(q is not p and q.alive and (q.runnable or q.wake_at) for q in k.processes.values())


def wait_host(k: Kernel, p: Process, host: list[tuple[int, int]], now: float) -> None:
    """Wait with the host's poll until a host descriptor has one of its events, p's deadline passes or the
    --timeout deadline comes (the run then stops). A signal run-elf catches meanwhile (osmodel.hostsig)
    ends the wait with the call asleep for a moment (raises Block), so the scheduler delivers it first."""
    limits = ([p.wake_at - now] if p.wake_at else []) + ([k.deadline - now] if k.deadline else [])
    poller = hostselect.poll()
    for fd, events in host:
        poller.register(fd, events)
    if k.interrupt_fd >= 0:
        poller.register(k.interrupt_fd, POLLIN)
    ready = poller.poll(max(int(min(limits) * 1000) + 1, 0) if limits else None)
    if k.deadline and time.monotonic() >= k.deadline:
        k.cpu.stop()
        raise SysError(errno.EINTR)
    if any(fd == k.interrupt_fd for fd, _ in ready):
        moment = ("host signal", p.pid)
        k.add_timer(time.monotonic(), lambda _now: k.wakeup(moment))
        raise Block(moment)


def wait_for(k: Kernel, p: Process, fd: int, events: int, what: str) -> None:
    """Host descriptor fd has none of `events`: wait on the host if nothing else can happen in the guest
    (returns), else sleep p until the next HOST_POLL_TICK (raises Block; the call restarts)."""
    now = time.monotonic()
    if guest_idle(k, p):
        wait_host(k, p, [(fd, events)], now)
        return
    tick = (what, p.pid)
    k.add_timer(now + HOST_POLL_TICK, lambda _now: k.wakeup(tick))
    raise Block(tick)


def may_block(f: HostFile) -> bool:
    """Whether I/O on a host file can wait (a terminal, pty, pipe, FIFO or socket; not a regular file)."""
    if f.slow is None:
        mode = f.stat().st_mode
        f.slow = statmod.S_ISCHR(mode) or statmod.S_ISFIFO(mode) or statmod.S_ISSOCK(mode)
    return f.slow


def before_io(k: Kernel, p: Process, f: File, events: int) -> None:
    """Before reading (POLLIN) or writing (POLLOUT) f: a host file that would wait is waited for as
    wait_for does, or is EAGAIN if the guest made its descriptor non-blocking."""
    if not isinstance(f, HostFile) or not may_block(f) or f.poll(events | POLLHUP | POLLERR):
        return
    if f.flags & os.O_NONBLOCK:
        raise SysError(errno.EAGAIN)
    wait_for(k, p, f.hostfd, events, "host " + ("read" if events & 1 else "write"))
