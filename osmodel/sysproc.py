"""Process system calls: exit, identity, thread-area setup, limits, time, randomness, uname."""

from __future__ import annotations

import errno
import os
import resource
import struct
import time
from typing import TYPE_CHECKING

from osmodel.files import MAX_FDS, Block, SysError
from osmodel import sigframe
from osmodel.signals import SIGCHLD, SIGCONT, SIGKILL, SIGSTOP
from osmodel.syscall import signed32, syscall, syscall32
from osmodel.systime import (CLOCKFD, CLOCKFD_MASK, CLOCK_THREAD_CPUTIME_ID, CPUCLOCK_PERTHREAD_MASK, HOST_CLOCKS,
                             NO_TIMERS, cpu_clock, cpu_clock_res, cpu_clock_time, is_cpu_clock, owner)

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

ARCH_SET_GS = 0x1001
ARCH_SET_FS = 0x1002
ARCH_GET_FS = 0x1003
ARCH_GET_GS = 0x1004
RLIMIT_FSIZE = 1
RLIMIT_STACK = 3
RLIMIT_NOFILE = 7
RLIMIT_AS = 9
RLIMIT_SIGPENDING = 11
RLIM_INFINITY = (1 << 64) - 1
RSEQ_SIZE = 32
RSEQ_FLAG_UNREGISTER = 1
RLIMIT = struct.Struct("<QQ")
TIMESPEC = struct.Struct("<qq")        # struct timespec (x86-64): tv_sec, tv_nsec
TIMEVAL = struct.Struct("<qq")         # struct timeval (x86-64): tv_sec, tv_usec
TIME_T = struct.Struct("<q")           # time_t (x86-64)
# struct rusage (x86-64): ru_utime, ru_stime (struct timeval), then 14 longs (maxrss ... nivcsw).
RUSAGE = struct.Struct("<qqqq14q")
ROBUST_LIST_HEAD = 24                  # sizeof(struct robust_list_head) (x86-64)
UTSNAME_FIELD = 65
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("exit", "d")
def sys_exit(k: Kernel, p: Process, code: int) -> int:
    """The calling thread ends; the last one (or the leader) ends the process."""
    if p.leader is not None:
        k.exit_thread(p)
    else:
        k.exit(p, code=code & 0xFF)
    return 0


@syscall("exit_group", "d")
def sys_exit_group(k: Kernel, p: Process, code: int) -> int:
    k.exit(p, code=code & 0xFF)
    return 0


@syscall("arch_prctl", "xp")
def sys_arch_prctl(k: Kernel, p: Process, code: int, addr: int) -> int:
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= p.aspace.user_top:
            raise SysError(errno.EPERM)
        k.cpu.set_reg("fs_base" if code == ARCH_SET_FS else "gs_base", addr)
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        value = k.cpu.reg("fs_base" if code == ARCH_GET_FS else "gs_base")
        k.copyout(p, addr, struct.pack("<Q", value))
        return 0
    raise SysError(errno.EINVAL)


@syscall("set_tid_address", "p")
def sys_set_tid_address(k: Kernel, p: Process, tidptr: int) -> int:
    p.clear_child_tid = tidptr
    return p.pid


@syscall("set_robust_list", "pu")
def sys_set_robust_list(k: Kernel, p: Process, head: int, length: int, head_size: int = ROBUST_LIST_HEAD) -> int:
    """Record the robust-futex list head (its size must be the ABI's struct robust_list_head)."""
    if length != head_size:
        raise SysError(errno.EINVAL)
    p.robust_list = (head, length)
    return 0


@syscall("rseq", "puxx")
def sys_rseq(k: Kernel, p: Process, rseq: int, length: int, flags: int, sig: int) -> int:
    """Register a restartable-sequence area: one CPU, so cpu_id_start and cpu_id are 0 and never change."""
    if flags & RSEQ_FLAG_UNREGISTER:
        if p.rseq != rseq:
            raise SysError(errno.EINVAL)
        p.rseq = 0
        return 0
    if p.rseq:
        raise SysError(errno.EBUSY if p.rseq == rseq else errno.EINVAL)
    if length < RSEQ_SIZE or rseq % 32 or flags:
        raise SysError(errno.EINVAL)
    k.copyout(p, rseq, struct.pack("<II", 0, 0))
    p.rseq = rseq
    return 0


def get_rlimit(p: Process, resource_id: int) -> tuple[int, int]:
    """A process's (soft, hard) limit: the stack limit is run-elf's, the rest the host's."""
    if resource_id in p.rlimits:
        return p.rlimits[resource_id]
    if resource_id == RLIMIT_STACK:
        return p.aspace.stack_limit, RLIM_INFINITY
    try:
        soft, hard = resource.getrlimit(resource_id)
    except (ValueError, OSError):
        raise SysError(errno.EINVAL) from None
    fix = lambda v: RLIM_INFINITY if v == resource.RLIM_INFINITY else v  # noqa: E731
    return fix(soft), fix(hard)


@syscall("prlimit64", "ddpp")
def sys_prlimit64(k: Kernel, p: Process, pid: int, resource_id: int, new: int, old: int) -> int:
    if pid and signed32(pid) != p.pid:
        raise SysError(errno.ESRCH)
    current = get_rlimit(p, resource_id)
    if old:
        k.copyout(p, old, RLIMIT.pack(*current))
    if new:
        set_rlimit(k, p, resource_id, *RLIMIT.unpack(k.copyin(p, new, RLIMIT.size)))
    return 0


def set_rlimit(k: Kernel, p: Process, resource_id: int, soft: int, hard: int) -> None:
    """Change a limit: EINVAL if soft > hard, EPERM when raising the hard limit (no CAP_SYS_RESOURCE)."""
    current = get_rlimit(p, resource_id)
    if soft > hard or hard > current[1]:
        raise SysError(errno.EINVAL if soft > hard else errno.EPERM)
    if resource_id == RLIMIT_NOFILE and hard > MAX_FDS:
        raise SysError(errno.EPERM)                  # beyond nr_open
    p.rlimits[resource_id] = (soft, hard)
    if resource_id == RLIMIT_STACK:
        p.aspace.stack_limit = soft
    elif resource_id == RLIMIT_NOFILE:
        p.files.limit = soft                         # new descriptors stay below it (open files above stay)


@syscall("getrlimit", "dp")
def sys_getrlimit(k: Kernel, p: Process, resource_id: int, rlim: int) -> int:
    k.copyout(p, rlim, RLIMIT.pack(*get_rlimit(p, resource_id)))
    return 0


@syscall("getrandom", "Bux")
def sys_getrandom(k: Kernel, p: Process, buf: int, count: int, flags: int) -> int:
    """Bytes from the run's seeded generator: a run is repeatable for a given --seed."""
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE):
        raise SysError(errno.EINVAL)
    count = min(count, 1 << 25)
    k.copyout(p, buf, k.random.randbytes(count))
    return count


def host_clock(clock: int) -> int:
    """A clock id the host's clock_gettime answers for (EINVAL for a dynamic (fd) clock id)."""
    if clock < 0:
        raise SysError(errno.EINVAL)
    return clock


@syscall("clock_gettime", "dp")
def sys_clock_gettime(k: Kernel, p: Process, clock: int, tp: int, timespec: struct.Struct = TIMESPEC) -> int:
    """A CPU-time clock of a guest thread or process, or else the host's clock, written as the ABI's
    struct timespec."""
    clock = signed32(clock)
    if is_cpu_clock(clock):
        ns = cpu_clock_time(k, p, clock)
    else:
        try:
            ns = time.clock_gettime_ns(host_clock(clock))
        except OSError:
            raise SysError(errno.EINVAL) from None
    k.copyout(p, tp, timespec.pack(ns // 10**9, ns % 10**9))
    return 0


@syscall("clock_getres", "dp")
def sys_clock_getres(k: Kernel, p: Process, clock: int, tp: int, timespec: struct.Struct = TIMESPEC) -> int:
    """The resolution of a clock (EINVAL for one that does not exist, a CPU clock of nobody too)."""
    clock = signed32(clock)
    if is_cpu_clock(clock):
        ns = cpu_clock_res(k, p, clock)
    else:
        try:
            ns = round(time.clock_getres(host_clock(clock)) * 10**9)
        except OSError:
            raise SysError(errno.EINVAL) from None
    if tp:
        k.copyout(p, tp, timespec.pack(ns // 10**9, ns % 10**9))
    return 0


@syscall("gettimeofday", "pp")
def sys_gettimeofday(k: Kernel, p: Process, tv: int, tz: int, timeval: struct.Struct = TIMEVAL) -> int:
    ns = time.time_ns()
    if tv:
        k.copyout(p, tv, timeval.pack(ns // 10**9, (ns % 10**9) // 1000))
    if tz:
        k.copyout(p, tz, struct.pack("<ii", 0, 0))
    return 0


@syscall("time", "p")
def sys_time(k: Kernel, p: Process, tloc: int, time_t: struct.Struct = TIME_T) -> int:
    now = int(time.time())
    if tloc:
        k.copyout(p, tloc, time_t.pack(now))
    return now


def utsname_fields() -> tuple[str, ...]:
    """sysname, nodename, release, version, machine and domainname, as uname reports them."""
    u = os.uname()
    return u.sysname, u.nodename, u.release, u.version, "x86_64", "(none)"


@syscall("uname", "p")
def sys_uname(k: Kernel, p: Process, buf: int) -> int:
    fields = utsname_fields()
    k.copyout(p, buf, b"".join(os.fsencode(f)[:UTSNAME_FIELD - 1].ljust(UTSNAME_FIELD, b"\0") for f in fields))
    return 0


@syscall("getpid")
def sys_getpid(k: Kernel, p: Process) -> int:
    return p.tgid


@syscall("gettid")
def sys_gettid(k: Kernel, p: Process) -> int:
    return p.pid


@syscall("getppid")
def sys_getppid(k: Kernel, p: Process) -> int:
    return (p.leader or p).ppid


@syscall("getuid")
def sys_getuid(k: Kernel, p: Process) -> int:
    return os.getuid()


@syscall("geteuid")
def sys_geteuid(k: Kernel, p: Process) -> int:
    return os.geteuid()


@syscall("getgid")
def sys_getgid(k: Kernel, p: Process) -> int:
    return os.getgid()


@syscall("getegid")
def sys_getegid(k: Kernel, p: Process) -> int:
    return os.getegid()


# -- processes ---------------------------------------------------------------------------------

CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_SIGHAND = 0x800
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_CHILD_SETTID = 0x1000000
WNOHANG = 1
WUNTRACED = WSTOPPED = 2
WEXITED = 4
WCONTINUED = 8
WNOWAIT = 0x01000000
P_ALL, P_PID, P_PGID = 0, 1, 2
MAX_ARGS = 1 << 17


def fork_child(k: Kernel, p: Process, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    """fork/vfork/clone: create the child; the parent gets its pid."""
    tls = tls if flags & CLONE_SETTLS else 0
    if flags & CLONE_THREAD:
        if flags & (CLONE_VM | CLONE_SIGHAND) != CLONE_VM | CLONE_SIGHAND or flags & CLONE_VFORK:
            raise SysError(errno.EINVAL)
        child = k.clone_thread(p, stack, tls)
    elif flags & CLONE_VM and not flags & CLONE_VFORK:
        raise SysError(errno.EINVAL)          # a separate process on shared memory: not supported
    else:
        child = k.fork(p, flags, stack, tls, share_vm=bool(flags & CLONE_VM))
    if flags & CLONE_PARENT_SETTID:
        k.copyout(p, ptid, struct.pack("<i", child.pid))
    if flags & CLONE_CHILD_SETTID:
        k.copyout(child, ctid, struct.pack("<i", child.pid))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    return child.pid


@syscall("fork")
def sys_fork(k: Kernel, p: Process) -> int:
    return fork_child(k, p, SIGCHLD, 0, 0, 0, 0)


@syscall("vfork")
def sys_vfork(k: Kernel, p: Process) -> int:
    return fork_child(k, p, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0)


@syscall("clone", "xpppp")
def sys_clone(k: Kernel, p: Process, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    return fork_child(k, p, flags, stack, ptid, ctid, tls)


def string_array(k: Kernel, p: Process, addr: int) -> list[bytes]:
    """A NULL-terminated array of string pointers (argv/envp) from user memory."""
    out = []
    word, code = (4, "<I") if p.bits == 32 else (8, "<Q")
    while addr:
        ptr = struct.unpack(code, k.copyin(p, addr + word * len(out), word))[0]
        if not ptr:
            break
        out.append(k.copyinstr(p, ptr, 128 * 1024))
        if len(out) > MAX_ARGS:
            raise SysError(errno.E2BIG)
    return out


@syscall("execve", "spp")
def sys_execve(k: Kernel, p: Process, path: int, argv: int, envp: int) -> int:
    name = os.fsdecode(k.copyinstr(p, path))
    k.execve(p, name, string_array(k, p, argv), string_array(k, p, envp))
    return 0


def find_waitable(k: Kernel, p: Process, match, options: int) -> tuple[Process, str] | None:
    """The first child matching with something for wait to report, and what: "exited" (a zombie, with
    WEXITED), "stopped" (WUNTRACED/WSTOPPED) or "continued" (WCONTINUED); None if nothing yet, SysError(ECHILD)
    if no child matches at all."""
    children = [c for c in k.children(p) if match(c)]
    if not children:
        raise SysError(errno.ECHILD)
    for c in children:
        if not c.alive:
            if options & WEXITED:
                return c, "exited"
        elif c.wait_event == "stopped" and c.stopped and options & WUNTRACED:
            return c, "stopped"
        elif c.wait_event == "continued" and options & WCONTINUED:
            return c, "continued"
    return None


def collect(k: Kernel, child: Process, event: str) -> None:
    """The parent has taken the event: a zombie is reaped, a stop or continue is reported only once."""
    if event == "exited":
        k.reap(child)
    else:
        child.wait_event = ""


def pid_matcher(p: Process, pid: int):
    """wait4's pid argument as a predicate on children."""
    if pid == -1:
        return lambda c: True
    if pid > 0:
        return lambda c: c.pid == pid
    pgid = p.pgid if pid == 0 else -pid
    return lambda c: c.pgid == pgid


@syscall("wait4", "dpxp")
def sys_wait4(k: Kernel, p: Process, pid: int, status: int, options: int, rusage: int,
              layout: struct.Struct = RUSAGE) -> int:
    """Reap a zombie child (sleeping until one exits unless WNOHANG); its status and rusage (in `layout`)."""
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | 0x40000000 | 0x80000000 | 0x20000000):
        raise SysError(errno.EINVAL)
    found = find_waitable(k, p, pid_matcher(p, signed32(pid)), options | WEXITED)
    if found is None:
        if options & WNOHANG:
            return 0
        raise Block(p)
    child, event = found
    if status:
        word = {"exited": child.wait_status(), "stopped": child.stopped << 8 | 0x7F, "continued": 0xFFFF}[event]
        k.copyout(p, status, struct.pack("<i", word))
    if rusage:
        k.copyout(p, rusage, child_rusage(child, layout))
    collect(k, child, event)
    return child.pid


def child_rusage(child: Process, layout: struct.Struct) -> bytes:
    """What wait4 and waitid report of a zombie child: its fault counts, and the CPU times of its
    thread group and of the children it reaped (Linux's RUSAGE_BOTH)."""
    return pack_rusage(child.fault_counts, child.major_faults, layout, child.group_utime + child.child_utime,
                       child.group_stime + child.child_stime)


def wait_id(k: Kernel, p: Process, idtype: int, ident: int, infop: int, options: int, compat: bool,
            rusage: int = 0, layout: struct.Struct = RUSAGE) -> int:
    """waitid: the child's siginfo goes to infop as siginfo_t, or with `compat` as i386's compat_siginfo_t;
    as on Linux, only si_signo, si_errno, si_code, si_pid, si_uid and si_status are written. Its rusage
    goes to *rusage (in `layout`) when a child was found."""
    if not options & (WEXITED | WSTOPPED | WCONTINUED) or idtype not in (P_ALL, P_PID, P_PGID):
        raise SysError(errno.EINVAL)
    ident = signed32(ident)
    match = {P_ALL: lambda c: True, P_PID: lambda c: c.pid == ident,
             P_PGID: lambda c: c.pgid == (ident or p.pgid)}[idtype]
    found = find_waitable(k, p, match, options)
    if found is None and not options & WNOHANG:
        raise Block(p)
    info = bytes(sigframe.SIGINFO_SIZE)         # WNOHANG and nothing to report: all zero
    if found is not None:
        child, event = found
        if event == "exited":
            killed = child.killed_by is not None
            code, value = ((sigframe.CLD_KILLED, child.killed_by) if killed
                           else (sigframe.CLD_EXITED, child.exit_code or 0))
        else:
            code, value = ((sigframe.CLD_STOPPED, child.stopped) if event == "stopped"
                           else (sigframe.CLD_CONTINUED, SIGCONT))
        info = sigframe.siginfo(SIGCHLD, code=code, pid=child.pid, uid=os.getuid(), status=value)
    if infop:
        info, union = (sigframe.siginfo32(info), 12) if compat else (info, 16)
        k.copyout(p, infop, info[:12])
        k.copyout(p, infop + union, info[union:union + 12])
    if rusage and found is not None:
        k.copyout(p, rusage, child_rusage(found[0], layout))
    if found is not None and not options & WNOWAIT:
        collect(k, *found)
    return 0


@syscall("waitid", "ddpxp")
def sys_waitid(k: Kernel, p: Process, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    return wait_id(k, p, idtype, ident, infop, options, False, rusage)


@syscall32("waitid", "ddpxp")
def sys_waitid32(k: Kernel, p: Process, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    """waitid with compat_siginfo_t and struct compat_rusage."""
    from osmodel.sys32 import RUSAGE32
    return wait_id(k, p, idtype, ident, infop, options, True, rusage, RUSAGE32)


@syscall("kill", "dd")
def sys_kill(k: Kernel, p: Process, pid: int, sig: int) -> int:
    return send_signal(k, p, pid, sig, sigframe.SI_USER)


def send_signal(k: Kernel, p: Process, pid: int, sig: int, code: int) -> int:
    """kill: send sig to a process (its thread group's shared pending set; a thread's id reaches its
    group, as on Linux), a process group or everyone (-1), with si_code `code`."""
    pid, sig = signed32(pid), signed32(sig)
    if not 0 <= sig <= 64:
        raise SysError(errno.EINVAL)
    if pid > 0:
        targets = [k.processes[pid]] if pid in k.processes and k.processes[pid].alive else []
    elif pid == -1:
        targets = [t for t in k.processes.values()
                   if t.pid != 1 and t.tgid != p.tgid and t.leader is None and t.alive] + [p]
    else:
        pgid = p.pgid if pid == 0 else -pid
        targets = [t for t in k.processes.values() if t.pgid == pgid and t.leader is None and t.alive]
    if not targets:
        raise SysError(errno.ESRCH)
    for t in targets:
        k.signal(t, sig, sender=p, info=sigframe.siginfo(sig, code=code, pid=p.tgid, uid=os.getuid()), group=True)
    return 0


def send_to_thread(k: Kernel, p: Process, tgid: int, tid: int, sig: int) -> int:
    """tkill/tgkill: send sig to thread tid alone (its own pending set), of group tgid unless that is -1."""
    tgid, tid, sig = signed32(tgid), signed32(tid), signed32(sig)
    if not 0 <= sig <= 64 or tid <= 0 or (tgid <= 0 and tgid != -1):
        raise SysError(errno.EINVAL)
    target = k.processes.get(tid)
    if target is None or not target.alive or tgid not in (-1, target.tgid):
        raise SysError(errno.ESRCH)
    k.signal(target, sig, sender=p, info=sigframe.siginfo(sig, code=sigframe.SI_TKILL, pid=p.tgid, uid=os.getuid()))
    return 0


@syscall("tkill", "dd")
def sys_tkill(k: Kernel, p: Process, tid: int, sig: int) -> int:
    return send_to_thread(k, p, -1, tid, sig)


@syscall("tgkill", "ddd")
def sys_tgkill(k: Kernel, p: Process, tgid: int, tid: int, sig: int) -> int:
    return send_to_thread(k, p, tgid, tid, sig)


@syscall("rt_sigqueueinfo", "ddp")
@syscall32("rt_sigqueueinfo", "ddp")
def sys_rt_sigqueueinfo(k: Kernel, p: Process, tgid: int, sig: int, uinfo: int) -> int:
    """sigqueue: send sig with the caller's siginfo (its si_value), to a process (its shared pending set)."""
    return queue_signal(k, p, tgid, tgid, sig, uinfo, group=True)


@syscall("rt_tgsigqueueinfo", "dddp")
@syscall32("rt_tgsigqueueinfo", "dddp")
def sys_rt_tgsigqueueinfo(k: Kernel, p: Process, tgid: int, tid: int, sig: int, uinfo: int) -> int:
    """pthread_sigqueue: the same, to one thread of a thread group."""
    return queue_signal(k, p, tgid, tid, sig, uinfo)


def queue_signal(k: Kernel, p: Process, tgid: int, tid: int, sig: int, uinfo: int, group: bool = False) -> int:
    """Send sig to thread tid of tgid (with `group`, to its whole thread group) with the siginfo at uinfo (its si_signo set to sig). As Linux, only
    a process signalling itself may claim a kernel-made code (si_code >= 0 or SI_TKILL): else EPERM."""
    tgid, tid, sig = signed32(tgid), signed32(tid), signed32(sig)
    if not 0 <= sig <= 64 or tgid <= 0 or tid <= 0:
        raise SysError(errno.EINVAL)
    raw = k.copyin(p, uinfo, sigframe.SIGINFO_SIZE)
    info = sigframe.siginfo64(raw) if p.bits == 32 else raw
    code = struct.unpack_from("<i", info, 8)[0]
    target = k.processes.get(tid)
    if target is None or not target.alive or target.tgid != tgid:
        raise SysError(errno.ESRCH)
    if (code >= 0 or code == sigframe.SI_TKILL) and target.tgid != p.tgid:
        raise SysError(errno.EPERM)
    if sig >= sigframe.SIGRTMIN and not k.sigqueue_room(target):
        raise SysError(errno.EAGAIN)              # the queue is full: Linux's TRACE_SIGNAL_OVERFLOW_FAIL
    k.signal(target, sig, sender=p, info=struct.pack("<i", sig) + info[4:], group=group)
    return 0


SIGSET_SIZE = 8


@syscall("rt_sigprocmask", "dppu")
def sys_rt_sigprocmask(k: Kernel, p: Process, how: int, nset: int, oset: int, size: int) -> int:
    if size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    old = p.sigmask
    if nset:
        value = struct.unpack("<Q", k.copyin(p, nset, 8))[0]
        value &= ~((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)))
        if how == 0:
            p.sigmask |= value
        elif how == 1:
            p.sigmask &= ~value
        elif how == 2:
            p.sigmask = value
        else:
            raise SysError(errno.EINVAL)
    if oset:
        k.copyout(p, oset, struct.pack("<Q", old))
    return 0                       # signals it unblocked are delivered on the way back to user mode


@syscall("setpgid", "dd")
def sys_setpgid(k: Kernel, p: Process, pid: int, pgid: int) -> int:
    """Move the caller or a child of it that has not exec'd yet (EACCES) into group pgid (0: its own pid),
    which must exist in the caller's session unless it is new (EPERM); a session leader cannot move."""
    pid, pgid = signed32(pid) or p.pid, signed32(pgid)
    if pgid < 0:
        raise SysError(errno.EINVAL)
    target = k.processes.get(pid)
    if target is None or not target.alive or (target is not p and target.ppid != p.pid):
        raise SysError(errno.ESRCH)
    if target is not p:
        if target.sid != p.sid:
            raise SysError(errno.EPERM)
        if target.exec_count:
            raise SysError(errno.EACCES)
    pgid = pgid or target.pid
    if target.sid == target.pid or (pgid != target.pid and not any(
            t.pgid == pgid and t.sid == p.sid and t.alive for t in k.processes.values())):
        raise SysError(errno.EPERM)
    target.pgid = pgid
    return 0


@syscall("getpgid", "d")
def sys_getpgid(k: Kernel, p: Process, pid: int) -> int:
    target = k.processes.get(signed32(pid) or p.pid)
    if target is None:
        raise SysError(errno.ESRCH)
    return target.pgid


@syscall("getpgrp")
def sys_getpgrp(k: Kernel, p: Process) -> int:
    return p.pgid


@syscall("setsid")
def sys_setsid(k: Kernel, p: Process) -> int:
    if any(t.pgid == p.pid for t in k.processes.values()):
        raise SysError(errno.EPERM)           # a process group leader cannot leave its group
    p.sid = p.pgid = p.pid
    return p.pid


@syscall("getsid", "d")
def sys_getsid(k: Kernel, p: Process, pid: int) -> int:
    target = k.processes.get(signed32(pid) or p.pid)
    if target is None:
        raise SysError(errno.ESRCH)
    return target.sid


RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1


def pack_rusage(counts, major: int, layout: struct.Struct = RUSAGE, utime: int = 0, stime: int = 0) -> bytes:
    """A struct rusage of user and system time (ns, written as timevals) and our fault counts as
    minor and major faults."""
    minor = sum(counts.values()) - major - counts["segv"] - counts["oom"]
    fields = [0] * 14
    fields[4], fields[5] = minor, major
    return layout.pack(utime // 10**9, utime % 10**9 // 1000, stime // 10**9, stime % 10**9 // 1000, *fields)


@syscall("getrusage", "dp")
def sys_getrusage(k: Kernel, p: Process, who: int, usage: int, layout: struct.Struct = RUSAGE) -> int:
    """Resource usage of the process (its whole thread group's CPU time), of the calling thread, or
    of the children it has reaped."""
    who = signed32(who)
    leader = owner(p)
    if who == RUSAGE_SELF:
        counts, major, utime, stime = p.fault_counts, p.major_faults, leader.group_utime, leader.group_stime
    elif who == RUSAGE_THREAD:
        counts, major, utime, stime = p.fault_counts, p.major_faults, p.utime, p.stime
    elif who == RUSAGE_CHILDREN:
        counts, major = p.child_fault_counts, p.child_major_faults
        utime, stime = leader.child_utime, leader.child_stime
    else:
        raise SysError(errno.EINVAL)
    k.copyout(p, usage, pack_rusage(counts, major, layout, utime, stime))
    return 0


@syscall("sched_yield")
def sys_sched_yield(k: Kernel, p: Process) -> int:
    k.cpu.stop()
    return 0


@syscall("nanosleep", "pp")
def sys_nanosleep(k: Kernel, p: Process, req: int, rem: int, timespec: struct.Struct = TIMESPEC) -> int:
    sec, nsec = timespec.unpack(k.copyin(p, req, timespec.size))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    k.timed_sleep(p, sec + nsec / 1e9)
    return 0


def sleep_clock(clock: int) -> int:
    """A clock clock_nanosleep can sleep on: EOPNOTSUPP for those without sleeps (CLOCK_THREAD_CPUTIME_ID,
    the raw and coarse clocks, dynamic (fd) clocks), EINVAL for an unknown one."""
    if clock == CLOCK_THREAD_CPUTIME_ID or clock in NO_TIMERS or (clock < 0 and clock & CLOCKFD_MASK == CLOCKFD):
        raise SysError(errno.EOPNOTSUPP)
    if not is_cpu_clock(clock) and clock not in HOST_CLOCKS:
        raise SysError(errno.EINVAL)
    return clock


def cpu_nanosleep(k: Kernel, p: Process, clock: int) -> None:
    """A sleep on a CPU clock: EINVAL for the caller's own thread clock, as Linux, and for a clock of
    nobody; sleeping until a process's or another thread's CPU time reaches a value is not modelled:
    EINVAL too."""
    if clock & CPUCLOCK_PERTHREAD_MASK and ~(clock >> 3) in (0, p.pid):
        raise SysError(errno.EINVAL)
    cpu_clock(k, p, clock)
    raise SysError(errno.EINVAL)


@syscall("clock_nanosleep", "dxpp")
def sys_clock_nanosleep(k: Kernel, p: Process, clock: int, flags: int, req: int, rem: int,
                        timespec: struct.Struct = TIMESPEC) -> int:
    """Sleep for a time, or until a time (TIMER_ABSTIME), of a clock."""
    clock = sleep_clock(signed32(clock))
    sec, nsec = timespec.unpack(k.copyin(p, req, timespec.size))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    if is_cpu_clock(clock):
        cpu_nanosleep(k, p, clock)
    delay = sec + nsec / 1e9
    if flags & 1 and not p.wake_at:            # TIMER_ABSTIME
        delay -= time.clock_gettime(HOST_CLOCKS[clock])
    k.timed_sleep(p, delay)
    return 0


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 36, 37, 38, 39
TASK_COMM_LEN = 16


@syscall("prctl", "dxxxx")
def sys_prctl(k: Kernel, p: Process, option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
    """The process name (comm), the parent-death signal (sent when the parent exits), the child subreaper
    flag (orphans of its descendants come to it, not to pid 1), dumpable and no_new_privs (recorded);
    other options fail with EINVAL, as an unknown option does."""
    option = signed32(option)
    if option == PR_SET_NAME:
        p.name = k.copyinstr(p, arg2, 4096)[:TASK_COMM_LEN - 1].decode(errors="replace")
        return 0
    if option == PR_GET_NAME:
        k.copyout(p, arg2, p.name.encode()[:TASK_COMM_LEN - 1].ljust(TASK_COMM_LEN, b"\0"))
        return 0
    if option == PR_SET_PDEATHSIG:
        if not 0 <= arg2 <= 64:
            raise SysError(errno.EINVAL)
        p.pdeath_signal = arg2
        return 0
    if option in (PR_GET_PDEATHSIG, PR_GET_CHILD_SUBREAPER):
        value = p.pdeath_signal if option == PR_GET_PDEATHSIG else int(p.child_subreaper)
        k.copyout(p, arg2, struct.pack("<i", value))
        return 0
    if option == PR_SET_CHILD_SUBREAPER:
        p.child_subreaper = bool(arg2)
        return 0
    if option == PR_GET_DUMPABLE:
        return p.dumpable
    if option == PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise SysError(errno.EINVAL)
        p.dumpable = arg2
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise SysError(errno.EINVAL)
        p.no_new_privs = True
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        if arg2 or arg3 or arg4 or arg5:
            raise SysError(errno.EINVAL)
        return int(p.no_new_privs)
    raise SysError(errno.EINVAL)


FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_CMD_MASK = 0x7F      # without FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256)


@syscall("futex", "pxdppd")
def sys_futex(k: Kernel, p: Process, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int,
              timespec: struct.Struct = TIMESPEC) -> int:
    """Futex wait and wake between threads (and processes sharing memory), keyed by the word's physical
    address. A wait whose word still holds `val` sleeps until a wake picks it (0), its timeout passes
    (ETIMEDOUT) or a signal interrupts it (EINTR)."""
    cmd = op & FUTEX_CMD_MASK
    if uaddr % 4:
        raise SysError(errno.EINVAL)
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if p.futex_woken:
            p.futex_woken = False
            p.wake_at = 0.0
            return 0
        now = time.monotonic()
        if p.wake_at and now >= p.wake_at:
            p.wake_at = 0.0
            raise SysError(errno.ETIMEDOUT)
        current = struct.unpack("<I", k.copyin(p, uaddr, 4))[0]
        if current != val & 0xFFFF_FFFF:
            p.wake_at = 0.0
            raise SysError(errno.EAGAIN)
        if timeout and not p.wake_at:
            sec, nsec = timespec.unpack(k.copyin(p, timeout, timespec.size))
            delay = sec + nsec / 1e9
            if cmd == FUTEX_WAIT_BITSET or op & 256:      # absolute timeout
                delay -= time.clock_gettime(time.CLOCK_REALTIME if op & 256 else time.CLOCK_MONOTONIC)
            if delay <= 0:
                raise SysError(errno.ETIMEDOUT)
            p.wake_at = now + delay
        raise Block(k.futex_key(p, uaddr))
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return k.futex_wake(p, uaddr, val & 0x7FFF_FFFF)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and struct.unpack("<I", k.copyin(p, uaddr, 4))[0] != val3 & 0xFFFF_FFFF:
            raise SysError(errno.EAGAIN)
        # Waking the ones that would be requeued as well is allowed: waiters re-check their condition.
        return k.futex_wake(p, uaddr, 0x7FFF_FFFF)
    if cmd == FUTEX_WAKE_OP:
        woken = k.futex_wake(p, uaddr, val & 0x7FFF_FFFF)
        return woken + k.futex_wake(p, uaddr2, timeout & 0x7FFF_FFFF)
    raise SysError(errno.ENOSYS)
