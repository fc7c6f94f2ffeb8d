"""Timers: alarm and the interval timers (setitimer), POSIX timers (timer_create) and timerfds.

Every armed timer is a Countdown on the kernel's timer queue, due at a time.monotonic_ns() instant:
the scheduler fires it between runs (a run is bounded by the next due time, and a machine whose
processes all sleep sleeps on the host until then). An expiry sends its signal (SIGALRM for
ITIMER_REAL and alarm; the sigevent's for a POSIX timer, with an SI_TIMER siginfo) or counts in its
timerfd and wakes the readers. A periodic timer re-arms from its previous due time and counts the
periods it missed, as Linux's hrtimer_forward: those become a POSIX timer's overrun or a timerfd's ticks.

Timers belong to the thread group (kept in its leader's Process): a fork child starts with none;
execve keeps alarm and the interval timers and deletes the POSIX timers; exit deletes them all. A
timerfd is a file: inherited and closed like one, and disarmed when its last descriptor goes.
Clock times are taken from the host's clocks; an absolute time on CLOCK_REALTIME is converted to a
monotonic due time when the timer is set (a later change of the host's clock does not move it).

CPU-time clocks count the kernel's accounting of each thread (Kernel.account: user time is host time
spent emulating it, system time host time in its system calls and page faults): CLOCK_PROCESS_CPUTIME_ID,
CLOCK_THREAD_CPUTIME_ID and the clock ids of clock_getcpuclockid/pthread_getcpuclockid (Linux's
encoding: ~pid << 3, CPUCLOCK_PERTHREAD_MASK for a thread's, and PROF, VIRT or SCHED). Timers on them (ITIMER_VIRTUAL,
ITIMER_PROF, POSIX timers) are CpuCountdowns kept on the Process whose clock they count: the kernel
checks them when it charges time (at each system call's end and each run's end) and bounds a run of the
process so that it stops no later than the nearest one is due. timerfds on CPU clocks are EINVAL, as Linux.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING, Callable

from osmodel.files import POLLIN, Block, File, SysError
from osmodel.signals import SIGALRM
from osmodel.syscall import signed32, syscall, syscall32

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_USEC = 1000

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, CLOCK_TAI = 8, 9, 11
HOST_CLOCKS = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
               CLOCK_BOOTTIME: time.CLOCK_BOOTTIME, CLOCK_TAI: getattr(time, "CLOCK_TAI", time.CLOCK_REALTIME),
               CLOCK_REALTIME_ALARM: time.CLOCK_REALTIME, CLOCK_BOOTTIME_ALARM: time.CLOCK_BOOTTIME}
ALARM_CLOCKS = (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM)    # need CAP_WAKE_ALARM
NO_TIMERS = (CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE)   # clocks without timer_create

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
SIGVTALRM, SIGPROF = 26, 27
CPUCLOCK_PROF, CPUCLOCK_VIRT, CPUCLOCK_SCHED = 0, 1, 2   # what a CPU clock counts: user+system, user, user+system
CPUCLOCK_CLOCK_MASK = 3
CPUCLOCK_PERTHREAD_MASK = 4
CPUCLOCK_MAX = 3
CLOCKFD = CPUCLOCK_MAX                      # a negative id ending in 3 names a dynamic (fd) clock instead
CLOCKFD_MASK = CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_CLOCK_MASK
CPU_CLOCKS = (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID)
TICK_NSEC = round(time.clock_getres(CLOCK_REALTIME_COARSE) * NSEC_PER_SEC)   # the host kernel's tick (1/HZ)
ITIMER_CLOCKS = {ITIMER_VIRTUAL: (CPUCLOCK_VIRT, SIGVTALRM), ITIMER_PROF: (CPUCLOCK_PROF, SIGPROF)}
TIMER_ABSTIME = 1
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SIGRTMAX = 64
SI_KERNEL = 0x80
SI_TIMER = -2
INT_MAX = 0x7FFF_FFFF
DELAYTIMER_MAX = INT_MAX

TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TFD_SETTIME_FLAGS = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
TFD_CLOEXEC, TFD_NONBLOCK = 0o2000000, os.O_NONBLOCK
TICKS = struct.Struct("<Q")                 # what a timerfd read returns: the expirations since the last read

ITIMERVAL = struct.Struct("<4q")            # struct __kernel_old_itimerval: it_interval, it_value (tv_sec, tv_usec)
ITIMERSPEC = struct.Struct("<4q")           # struct __kernel_itimerspec: it_interval, it_value (tv_sec, tv_nsec)
ITIMERVAL32 = struct.Struct("<4i")          # struct old_itimerval32
ITIMERSPEC32 = struct.Struct("<4i")         # struct old_itimerspec32
COMPAT_TIMES = (ITIMERVAL32, ITIMERSPEC32)  # 32-bit fields: a value is stored truncated, as the kernel's assignments do
SIGEVENT = struct.Struct("<Qiii")           # struct sigevent: sigev_value, sigev_signo, sigev_notify, _tid
SIGEVENT32 = struct.Struct("<Iiii")         # struct compat_sigevent: the same with a 32-bit sigev_value
SIGEVENT_SIZE = 64                          # both, with their padding
SIGINFO_TIMER = struct.Struct("<iii4xiiQ")  # siginfo_t head (signo, errno, code) and _timer (tid, overrun, sigval)
SIGINFO_SIZE = 128


def owner(p: Process) -> Process:
    """The Process that keeps a thread group's timers: its leader."""
    return p.leader or p


# -- countdowns on the kernel's timer queue ------------------------------------------------------

class Countdown:
    """A one-shot or periodic expiry: `due` and `interval` in time.monotonic_ns() nanoseconds (due 0:
    disarmed). expire(count) runs at each due time with the number of periods that have passed."""

    def __init__(self, k: Kernel, expire: Callable[[int], None]):
        self.k = k
        self.expire = expire
        self.due = 0
        self.interval = 0
        self.queued = None                  # its KernelTimer, while armed

    def set(self, due: int, interval: int) -> None:
        """Arm it to expire at `due` and every `interval` after (0: once), or disarm it (due 0)."""
        self.cancel()
        self.interval = interval
        self.due = due
        if due:
            self.queued = self.k.add_timer(due / NSEC_PER_SEC, self.fire)

    def cancel(self) -> None:
        """Disarm it (the interval is kept, as Linux keeps it_real_incr)."""
        if self.queued is not None:
            self.queued.cancel()
            self.queued = None
        self.due = 0

    def left(self, now: int) -> int:
        """Nanoseconds until it expires (0 or less when due but not fired yet); 0 when disarmed."""
        return self.due - now if self.due else 0

    def now(self) -> int:
        """The time its `due` is counted in: time.monotonic_ns()."""
        return time.monotonic_ns()

    def deadline(self, clock: int, value: int, absolute: bool) -> int:
        """Its due time for a timer value on `clock` (see due_time)."""
        return due_time(clock, value, absolute)

    def advance(self, now: int) -> int:
        """It is due at `now`: move `due` to the first period after now (0 for a one-shot timer), as
        Linux's hrtimer_forward; how many periods have passed."""
        count = 1
        if self.interval:
            missed = (now - self.due) // self.interval
            count += missed
            self.due += (missed + 1) * self.interval
        else:
            self.due = 0
        return count

    def fire(self, _now: float) -> None:
        """The kernel's timer queue reached it: re-arm a periodic one past now, then expire."""
        count = self.advance(max(time.monotonic_ns(), self.due))
        self.queued = self.k.add_timer(self.due / NSEC_PER_SEC, self.fire) if self.due else None
        self.expire(count)


class CpuCountdown(Countdown):
    """A Countdown on a CPU clock (the user or user+system time of a thread or a thread group): `due`
    and `interval` in nanoseconds of that clock. Armed, it is on the `cpu_timers` of the Process whose
    clock it counts; the kernel fires it from its accounting points (expire_cpu_timers)."""

    def __init__(self, k: Kernel, expire: Callable[[int], None], clock: tuple[Process, bool, int]):
        super().__init__(k, expire)
        self.target, self.thread, self.which = clock

    def now(self) -> int:
        return cpu_sample(self.target, self.thread, self.which)

    def deadline(self, clock: int, value: int, absolute: bool) -> int:
        if not value:
            return 0
        return max(value if absolute else self.now() + value, 1)

    def set(self, due: int, interval: int) -> None:
        """Arm it (on its clock's Process) or disarm it; a run under way is re-planned with its bound."""
        self.cancel()
        self.interval = interval
        self.due = due
        if due:
            self.target.cpu_timers.append(self)
            self.k.cpu.stop()

    def cancel(self) -> None:
        if self.due and self in self.target.cpu_timers:
            self.target.cpu_timers.remove(self)
        self.due = 0

    def fire(self, _now: float = 0.0) -> None:
        """Its clock reached `due`: re-arm a periodic one past the clock's time, then expire."""
        count = self.advance(self.now())
        if not self.due and self in self.target.cpu_timers:
            self.target.cpu_timers.remove(self)
        self.expire(count)


def due_time(clock: int, value: int, absolute: bool) -> int:
    """The time.monotonic_ns() instant of a timer value on `clock`: `value` ns from now, or the
    instant the clock reads `value` (absolute). 0 stays 0 (disarm); never 0 for an armed timer."""
    if not value:
        return 0
    now = time.monotonic_ns()
    if absolute:
        value -= time.clock_gettime_ns(HOST_CLOCKS[clock])
    return max(now + value, 1)


def cpu_sample(target: Process, thread: bool, which: int) -> int:
    """The time of a CPU clock in ns: a thread's own (thread) or its group's (target is the leader),
    user time for CPUCLOCK_VIRT, user + system time otherwise."""
    if thread:
        user, system = target.utime, target.stime
    else:
        user, system = target.group_utime, target.group_stime
    return user if which == CPUCLOCK_VIRT else user + system


def is_cpu_clock(clock: int) -> bool:
    """Whether a clock id names a CPU-time clock (CLOCK_*_CPUTIME_ID or an encoded pid/tid clock)."""
    return clock in CPU_CLOCKS or (clock < 0 and clock & CLOCKFD_MASK != CLOCKFD)


def cpu_clock(k: Kernel, p: Process, clock: int, gettime: bool = False) -> tuple[Process, bool, int]:
    """The CPU clock a clock id names for p: (the thread, or the group leader, whose time it counts,
    whether per thread, PROF/VIRT/SCHED), as Linux's pid_for_clock; EINVAL if it names none (pid 0:
    the caller; a thread clock only of the caller's group; a process clock of a group's leader, or,
    for clock_gettime, of the caller itself)."""
    if clock == CLOCK_PROCESS_CPUTIME_ID:
        return owner(p), False, CPUCLOCK_SCHED
    if clock == CLOCK_THREAD_CPUTIME_ID:
        return p, True, CPUCLOCK_SCHED
    which = clock & CPUCLOCK_CLOCK_MASK
    thread = bool(clock & CPUCLOCK_PERTHREAD_MASK)
    pid = ~(clock >> 3)
    if clock >= 0 or which >= CPUCLOCK_MAX:
        raise SysError(errno.EINVAL)
    if pid == 0:
        return (p if thread else owner(p)), thread, which
    target = k.processes.get(pid)
    if target is None:
        raise SysError(errno.EINVAL)
    if thread:
        if target.tgid != p.tgid:
            raise SysError(errno.EINVAL)
        return target, True, which
    if gettime and target is p:
        return owner(p), False, which
    if target.leader is not None:
        raise SysError(errno.EINVAL)
    return target, False, which


def cpu_clock_time(k: Kernel, p: Process, clock: int) -> int:
    """clock_gettime of a CPU clock, in ns."""
    return cpu_sample(*cpu_clock(k, p, clock, gettime=True))


def cpu_clock_res(k: Kernel, p: Process, clock: int) -> int:
    """clock_getres of a CPU clock, in ns: 1 for the scheduler's clock (CPUCLOCK_SCHED: what
    CLOCK_*_CPUTIME_ID are), a tick for the user and user+system ones, as Linux."""
    _, _, which = cpu_clock(k, p, clock)
    return 1 if which == CPUCLOCK_SCHED else TICK_NSEC


def timers_on(p: Process) -> list:
    """The armed CPU-clock timers that count while p runs: on its own clock, and on its group's."""
    leader = p.leader
    if leader is None:
        return p.cpu_timers
    return p.cpu_timers + [t for t in leader.cpu_timers if not t.thread]


def expire_cpu_timers(k: Kernel, p: Process) -> None:
    """p was just charged CPU time: fire the timers on its clocks that are due."""
    for timer in list(timers_on(p)):          # a copy: a one-shot timer leaves the list as it fires
        if timer.due and timer.now() >= timer.due:
            timer.fire()


def cpu_timer_left(p: Process) -> int:
    """CPU nanoseconds (at least 1) until the first timer on p's clocks is due; 0 if none is armed. A
    CPU clock advances no faster than the host's clock, so a run this long cannot overshoot it."""
    timers = timers_on(p)
    if not timers:
        return 0
    return max(1, min(t.due - t.now() for t in timers))


def timer_clock(clock: int, posix: bool) -> int:
    """A clock a timer may count on (EINVAL for an unknown or CPU-time one, EOPNOTSUPP for a clock
    Linux has no timers on, EPERM for an alarm clock without CAP_WAKE_ALARM)."""
    if posix and clock in NO_TIMERS:
        raise SysError(errno.EOPNOTSUPP)
    if clock not in HOST_CLOCKS or (not posix and clock == CLOCK_TAI):
        raise SysError(errno.EINVAL)
    if clock in ALARM_CLOCKS and os.geteuid() != 0:
        raise SysError(errno.EPERM)
    return clock


def timespecs(layout: struct.Struct, raw: bytes, unit: int) -> tuple[int, int]:
    """(interval, value) in ns of an itimerspec (unit 1) or itimerval (unit 1000) read from the user;
    EINVAL if a field is negative or its fraction is not below a second."""
    isec, ifrac, vsec, vfrac = layout.unpack(raw)
    limit = NSEC_PER_SEC // unit
    if isec < 0 or vsec < 0 or not 0 <= ifrac < limit or not 0 <= vfrac < limit:
        raise SysError(errno.EINVAL)
    return isec * NSEC_PER_SEC + ifrac * unit, vsec * NSEC_PER_SEC + vfrac * unit


def pack_times(layout: struct.Struct, interval: int, value: int, unit: int) -> bytes:
    """An itimerspec (unit 1) or itimerval (unit 1000, truncating) of (interval, value) in ns."""
    fields = (interval // NSEC_PER_SEC, interval % NSEC_PER_SEC // unit,
              value // NSEC_PER_SEC, value % NSEC_PER_SEC // unit)
    return layout.pack(*(signed32(f) for f in fields)) if layout in COMPAT_TIMES else layout.pack(*fields)


# -- alarm and the interval timers ---------------------------------------------------------------

def real_timer(k: Kernel, p: Process) -> Countdown:
    """The thread group's ITIMER_REAL (alarm's timer too), created disarmed on first use."""
    leader = owner(p)
    timer = leader.itimers.get(ITIMER_REAL)
    if timer is None:
        timer = leader.itimers[ITIMER_REAL] = Countdown(k, lambda count: alarm_expired(k, leader))
    return timer


def alarm_expired(k: Kernel, leader: Process) -> None:
    """ITIMER_REAL expired: SIGALRM to the process, from the kernel (SEND_SIG_PRIV: si_code SI_KERNEL)."""
    k.signal(leader, SIGALRM, info=struct.pack("<iii", SIGALRM, 0, SI_KERNEL).ljust(SIGINFO_SIZE, b"\0"), group=True)


def cpu_itimer(k: Kernel, p: Process, which: int) -> CpuCountdown:
    """The thread group's ITIMER_VIRTUAL (its user time; SIGVTALRM) or ITIMER_PROF (user + system
    time; SIGPROF), created disarmed on first use."""
    leader = owner(p)
    timer = leader.itimers.get(which)
    if timer is None:
        kind, sig = ITIMER_CLOCKS[which]
        timer = leader.itimers[which] = CpuCountdown(k, lambda count: itimer_expired(k, leader, sig),
                                                     (leader, False, kind))
    return timer


def itimer_expired(k: Kernel, leader: Process, sig: int) -> None:
    """An interval timer expired: its signal to the process, from the kernel (si_code SI_KERNEL)."""
    k.signal(leader, sig, info=struct.pack("<iii", sig, 0, SI_KERNEL).ljust(SIGINFO_SIZE, b"\0"), group=True)


def interval_timer(k: Kernel, p: Process, which: int) -> Countdown:
    """An interval timer by ITIMER_* (EINVAL for another value)."""
    if which == ITIMER_REAL:
        return real_timer(k, p)
    if which in ITIMER_CLOCKS:
        return cpu_itimer(k, p, which)
    raise SysError(errno.EINVAL)


def get_itimer(k: Kernel, p: Process, which: int) -> tuple[int, int]:
    """(interval, value left) in ns of an interval timer; an expired one not yet fired shows 1 us
    (ITIMER_REAL) or a tick (the CPU-time ones), as Linux."""
    timer = interval_timer(k, p, which)
    if not timer.due:
        return timer.interval, 0
    left = timer.left(timer.now())
    if which == ITIMER_REAL:
        return timer.interval, max(left, NSEC_PER_USEC)
    return timer.interval, left if left > 0 else TICK_NSEC


def set_itimer(k: Kernel, p: Process, which: int, interval: int, value: int) -> tuple[int, int]:
    """Arm (or with value 0 disarm) an interval timer `value` ns from now, reloading with `interval`;
    its setting before, as get_itimer. A CPU-time one is set a tick later, as Linux's set_cpu_itimer."""
    old = get_itimer(k, p, which)
    timer = interval_timer(k, p, which)
    if which != ITIMER_REAL and value:
        value += TICK_NSEC
    timer.set(timer.deadline(CLOCK_MONOTONIC, value, False), interval)
    return old


@syscall("alarm", "u")
def sys_alarm(k: Kernel, p: Process, seconds: int) -> int:
    """SIGALRM in `seconds` (0: cancel); the previous alarm's seconds left, rounded as Linux's
    alarm_setitimer (half a second and more up, and never 0 while one was pending)."""
    _, left = set_itimer(k, p, ITIMER_REAL, 0, (seconds & 0xFFFF_FFFF) * NSEC_PER_SEC)
    secs, frac = divmod(left, NSEC_PER_SEC)
    if (not secs and frac) or frac >= NSEC_PER_SEC // 2:
        secs += 1
    return secs


@syscall("getitimer", "dp")
def sys_getitimer(k: Kernel, p: Process, which: int, value: int, layout: struct.Struct = ITIMERVAL) -> int:
    """An interval timer's reload value and time left, as a struct itimerval."""
    interval, left = get_itimer(k, p, signed32(which))
    k.copyout(p, value, pack_times(layout, interval, left, NSEC_PER_USEC))
    return 0


@syscall("setitimer", "dpp")
def sys_setitimer(k: Kernel, p: Process, which: int, new: int, old: int, layout: struct.Struct = ITIMERVAL) -> int:
    """Set an interval timer from a struct itimerval (NULL: disarm, as Linux still allows); the old one to *old."""
    interval, value = timespecs(layout, k.copyin(p, new, layout.size), NSEC_PER_USEC) if new else (0, 0)
    before = set_itimer(k, p, signed32(which), interval, value)
    if old:
        k.copyout(p, old, pack_times(layout, *before, NSEC_PER_USEC))
    return 0


@syscall32("getitimer", "dp")
def sys_getitimer32(k: Kernel, p: Process, which: int, value: int) -> int:
    return sys_getitimer(k, p, which, value, ITIMERVAL32)


@syscall32("setitimer", "dpp")
def sys_setitimer32(k: Kernel, p: Process, which: int, new: int, old: int) -> int:
    return sys_setitimer(k, p, which, new, old, ITIMERVAL32)


# -- POSIX timers ----------------------------------------------------------------------------------

class PosixTimer:
    """A timer_create timer: its clock, what its expiry does (a signal with si_value to the process or
    one of its threads, or nothing), and the overruns of its pending signal."""

    def __init__(self, k: Kernel, tid: int, clock: int, notify: int, signo: int, value: int, target: Process,
                 cpu: tuple[Process, bool, int] | None = None):
        self.k = k
        self.tid = tid
        self.clock = clock
        self.notify = notify
        self.signo = signo
        self.value = value
        self.target = target
        self.overrun = 0                      # periods missed since its signal was queued
        self.overrun_last = 0                 # the overrun its last delivered signal carried
        self.countdown = CpuCountdown(k, self.expire, cpu) if cpu else Countdown(k, self.expire)

    def info(self) -> bytes:
        """The siginfo of its signal: SI_TIMER with the timer id, the overrun and the sigevent's value."""
        overrun = min(self.overrun, DELAYTIMER_MAX)
        return SIGINFO_TIMER.pack(self.signo, 0, SI_TIMER, self.tid, overrun, self.value).ljust(SIGINFO_SIZE, b"\0")

    def to_thread(self) -> bool:
        """Whether its signal goes to its target thread alone (SIGEV_THREAD_ID), not to the process."""
        return self.notify == SIGEV_SIGNAL | SIGEV_THREAD_ID

    def queue(self) -> tuple[int, dict[int, list[bytes]]]:
        """The pending set its signal is queued on and that set's siginfo queues: the thread's own, or the
        process's shared one."""
        if self.to_thread():
            return self.target.pending, self.target.siginfo
        return self.target.shared_pending, self.target.shared_siginfo

    def queued(self) -> int | None:
        """Where its last signal's instance is still queued (an index in its signal's queue), or None."""
        pending, infos = self.queue()
        if not pending & (1 << (self.signo - 1)):
            return None
        for i, info in enumerate(infos.get(self.signo, ())):
            _, _, code, tid, _, _ = SIGINFO_TIMER.unpack_from(info)
            if code == SI_TIMER and tid == self.tid:
                return i
        return None

    def signal_pending(self) -> bool:
        """Whether its last signal is still queued (not yet delivered)."""
        return self.queued() is not None

    def expire(self, count: int) -> None:
        """It expired `count` times: queue its signal, or count overruns while the last one is pending."""
        if self.notify == SIGEV_NONE:
            return
        index = self.queued()
        if index is not None:
            self.overrun += count
            self.queue()[1][self.signo][index] = self.info()
            return
        self.overrun_last = self.overrun
        self.overrun = count - 1
        self.k.signal(self.target, self.signo, info=self.info(), group=not self.to_thread())

    def getoverrun(self) -> int:
        """timer_getoverrun: the overrun count of its last delivered signal."""
        return min(self.overrun_last if self.signal_pending() else self.overrun, DELAYTIMER_MAX)

    def get(self) -> tuple[int, int]:
        """(interval, value left) in ns; an expired timer whose signal is still to come shows 1 ns."""
        cd = self.countdown
        if not cd.due:
            return cd.interval, 0
        left = cd.left(cd.now())
        return cd.interval, left if left > 0 else (0 if self.notify == SIGEV_NONE else 1)


def read_sigevent(k: Kernel, p: Process, sevp: int, tid: int) -> tuple[int, int, int, Process]:
    """(notify, signo, value, target) of a struct sigevent (compat_sigevent for i386); NULL means
    SIGALRM to the process with the timer id as the value. EINVAL for what Linux's good_sigevent refuses."""
    leader = owner(p)
    if not sevp:
        return SIGEV_SIGNAL, SIGALRM, tid, leader
    layout = SIGEVENT32 if p.bits == 32 else SIGEVENT
    value, signo, notify, thread = layout.unpack_from(k.copyin(p, sevp, SIGEVENT_SIZE))
    target = leader
    if notify == SIGEV_SIGNAL | SIGEV_THREAD_ID:
        target = k.processes.get(thread)
        if target is None or not target.alive or target.tgid != p.tgid:
            raise SysError(errno.EINVAL)
    elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_NONE):
        raise SysError(errno.EINVAL)
    if notify != SIGEV_NONE and not 1 <= signo <= SIGRTMAX:
        raise SysError(errno.EINVAL)
    return notify, signo, value, target


def posix_timer(p: Process, tid: int) -> PosixTimer:
    """The process's POSIX timer with id `tid` (EINVAL if none)."""
    timer = owner(p).posix_timers.get(signed32(tid))
    if timer is None:
        raise SysError(errno.EINVAL)
    return timer


@syscall("timer_create", "dpp")
@syscall32("timer_create", "dpp")
def sys_timer_create(k: Kernel, p: Process, clock: int, sevp: int, timerid: int) -> int:
    """Create a disarmed POSIX timer on `clock` (a CPU-time clock too); its id (the process's next,
    from 0) to *timerid. EOPNOTSUPP for a dynamic (fd) clock, which has no timers."""
    leader = owner(p)
    tid = leader.next_timer_id
    clock, cpu = signed32(clock), None
    if clock < 0 and clock & CLOCKFD_MASK == CLOCKFD:
        raise SysError(errno.EOPNOTSUPP)
    if is_cpu_clock(clock):
        cpu = cpu_clock(k, p, clock)
    else:
        clock = timer_clock(clock, posix=True)
    notify, signo, value, target = read_sigevent(k, p, sevp, tid)
    k.copyout(p, timerid, struct.pack("<i", tid))
    leader.next_timer_id = (tid + 1) & INT_MAX
    leader.posix_timers[tid] = PosixTimer(k, tid, clock, notify, signo, value, target, cpu)
    return 0


@syscall("timer_settime", "ddpp")
@syscall32("timer_settime64", "ddpp")
def sys_timer_settime(k: Kernel, p: Process, tid: int, flags: int, new: int, old: int,
                      layout: struct.Struct = ITIMERSPEC) -> int:
    """Arm a POSIX timer (relative, or at an absolute time of its clock with TIMER_ABSTIME) with a
    reload interval, or disarm it (value 0); its setting before to *old."""
    if not new:
        raise SysError(errno.EINVAL)
    interval, value = timespecs(layout, k.copyin(p, new, layout.size), 1)
    timer = posix_timer(p, tid)
    before = timer.get()
    timer.countdown.set(timer.countdown.deadline(timer.clock, value, bool(flags & TIMER_ABSTIME)), interval)
    timer.overrun = timer.overrun_last = 0
    if old:
        k.copyout(p, old, pack_times(layout, *before, 1))
    return 0


@syscall("timer_gettime", "dp")
@syscall32("timer_gettime64", "dp")
def sys_timer_gettime(k: Kernel, p: Process, tid: int, cur: int, layout: struct.Struct = ITIMERSPEC) -> int:
    """A POSIX timer's interval and time left, as a struct itimerspec."""
    k.copyout(p, cur, pack_times(layout, *posix_timer(p, tid).get(), 1))
    return 0


@syscall("timer_getoverrun", "d")
@syscall32("timer_getoverrun", "d")
def sys_timer_getoverrun(k: Kernel, p: Process, tid: int) -> int:
    """How many expirations the last signal of a POSIX timer stood for beyond the first."""
    return posix_timer(p, tid).getoverrun()


@syscall("timer_delete", "d")
@syscall32("timer_delete", "d")
def sys_timer_delete(k: Kernel, p: Process, tid: int) -> int:
    """Disarm and forget a POSIX timer."""
    posix_timer(p, tid).countdown.cancel()
    del owner(p).posix_timers[signed32(tid)]
    return 0


@syscall32("timer_settime", "ddpp")
def sys_timer_settime32(k: Kernel, p: Process, tid: int, flags: int, new: int, old: int) -> int:
    return sys_timer_settime(k, p, tid, flags, new, old, ITIMERSPEC32)


@syscall32("timer_gettime", "dp")
def sys_timer_gettime32(k: Kernel, p: Process, tid: int, cur: int) -> int:
    return sys_timer_gettime(k, p, tid, cur, ITIMERSPEC32)


# -- timerfd ---------------------------------------------------------------------------------------

class TimerFd(File):
    """A timerfd: its expirations count up, and a read returns and clears the count (waiting while
    it is 0). Readers, pollers and selectors sleep on the file itself."""

    def __init__(self, k: Kernel, clock: int, flags: int):
        super().__init__("anon_inode:[timerfd]", os.O_RDWR | flags)
        self.k = k
        self.clock = clock
        self.ticks = 0
        self.countdown = Countdown(k, self.expire)
        self.ino = id(self) & 0xFFFFFFF

    def expire(self, count: int) -> None:
        """It expired `count` times: count them and wake whoever waits."""
        self.ticks += count
        self.k.wakeup(self)

    def channel(self) -> object:
        return self

    def read(self, size: int) -> bytes:
        if size < TICKS.size:
            raise SysError(errno.EINVAL)
        if not self.ticks:
            if self.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            raise Block(self)
        ticks, self.ticks = self.ticks, 0
        return TICKS.pack(ticks)

    def poll(self, events: int) -> int:
        return events & POLLIN if self.ticks else 0

    def stat(self) -> os.stat_result:
        mode = 0o600                          # an anonymous inode: no file type bits
        return os.stat_result((mode, self.ino, 0x0D, 1, os.getuid(), os.getgid(), 0, 0, 0, 0))

    def get(self) -> tuple[int, int]:
        """(interval, value left) in ns; 0 left once due."""
        cd = self.countdown
        return cd.interval, max(cd.left(time.monotonic_ns()), 0)

    def release(self) -> None:
        self.countdown.cancel()


@syscall("timerfd_create", "dx")
@syscall32("timerfd_create", "dx")
def sys_timerfd_create(k: Kernel, p: Process, clock: int, flags: int) -> int:
    """A disarmed timerfd on `clock` (TFD_CLOEXEC, TFD_NONBLOCK); its descriptor."""
    if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK):
        raise SysError(errno.EINVAL)
    clock = timer_clock(signed32(clock), posix=False)
    return p.files.install(TimerFd(k, clock, flags & TFD_NONBLOCK), cloexec=bool(flags & TFD_CLOEXEC))


@syscall("timerfd_settime", "dxpp")
@syscall32("timerfd_settime64", "dxpp")
def sys_timerfd_settime(k: Kernel, p: Process, fd: int, flags: int, new: int, old: int,
                        layout: struct.Struct = ITIMERSPEC) -> int:
    """Arm a timerfd (relative, or absolute with TFD_TIMER_ABSTIME) with a reload interval, or
    disarm it; its count of expirations starts again from 0. Its setting before to *old."""
    interval, value = timespecs(layout, k.copyin(p, new, layout.size), 1)
    if flags & ~TFD_SETTIME_FLAGS:
        raise SysError(errno.EINVAL)
    f = p.files.get_kind(signed32(fd), TimerFd)
    before = f.get()
    f.ticks = 0
    f.countdown.set(due_time(f.clock, value, bool(flags & TFD_TIMER_ABSTIME)), interval)
    if old:
        k.copyout(p, old, pack_times(layout, *before, 1))
    return 0


@syscall("timerfd_gettime", "dp")
@syscall32("timerfd_gettime64", "dp")
def sys_timerfd_gettime(k: Kernel, p: Process, fd: int, cur: int, layout: struct.Struct = ITIMERSPEC) -> int:
    """A timerfd's interval and time left, as a struct itimerspec."""
    k.copyout(p, cur, pack_times(layout, *p.files.get_kind(signed32(fd), TimerFd).get(), 1))
    return 0


@syscall32("timerfd_settime", "dxpp")
def sys_timerfd_settime32(k: Kernel, p: Process, fd: int, flags: int, new: int, old: int) -> int:
    return sys_timerfd_settime(k, p, fd, flags, new, old, ITIMERSPEC32)


@syscall32("timerfd_gettime", "dp")
def sys_timerfd_gettime32(k: Kernel, p: Process, fd: int, cur: int) -> int:
    return sys_timerfd_gettime(k, p, fd, cur, ITIMERSPEC32)


# -- a process's timers at execve and exit ---------------------------------------------------------

def exec_timers(p: Process) -> None:
    """execve: the POSIX timers are deleted (alarm and the interval timers stay)."""
    leader = owner(p)
    for timer in leader.posix_timers.values():
        timer.countdown.cancel()
    leader.posix_timers.clear()


def exit_timers(p: Process) -> None:
    """exit: every timer of the process is deleted."""
    exec_timers(p)
    for timer in owner(p).itimers.values():
        timer.cancel()
