"""Process system calls: exit, identity, thread-area setup, limits, time, randomness, uname."""

from __future__ import annotations

import errno
import os
import resource
import struct
import time
from typing import TYPE_CHECKING

from osmodel.files import SysError
from osmodel.syscall import signed32, syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

ARCH_SET_GS = 0x1001
ARCH_SET_FS = 0x1002
ARCH_GET_FS = 0x1003
ARCH_GET_GS = 0x1004
RLIMIT_STACK = 3
RLIMIT_NOFILE = 7
RLIM_INFINITY = (1 << 64) - 1
RSEQ_SIZE = 32
RSEQ_FLAG_UNREGISTER = 1
RLIMIT = struct.Struct("<QQ")
UTSNAME_FIELD = 65
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("exit", "d")
def sys_exit(k: Kernel, p: Process, code: int) -> int:
    k.exit(p, code=code & 0xFF)
    return 0


@syscall("exit_group", "d")
def sys_exit_group(k: Kernel, p: Process, code: int) -> int:
    k.exit(p, code=code & 0xFF)
    return 0


@syscall("arch_prctl", "xp")
def sys_arch_prctl(k: Kernel, p: Process, code: int, addr: int) -> int:
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= 1 << 47:
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
def sys_set_robust_list(k: Kernel, p: Process, head: int, length: int) -> int:
    if length != 24:
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


def get_rlimit(k: Kernel, p: Process, resource_id: int) -> tuple[int, int]:
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
    current = get_rlimit(k, p, resource_id)
    if old:
        k.copyout(p, old, RLIMIT.pack(*current))
    if new:
        soft, hard = RLIMIT.unpack(k.copyin(p, new, RLIMIT.size))
        if soft > hard or hard > current[1]:
            raise SysError(errno.EINVAL if soft > hard else errno.EPERM)
        p.rlimits[resource_id] = (soft, hard)
        if resource_id == RLIMIT_STACK:
            p.aspace.stack_limit = soft
    return 0


@syscall("getrlimit", "dp")
def sys_getrlimit(k: Kernel, p: Process, resource_id: int, rlim: int) -> int:
    k.copyout(p, rlim, RLIMIT.pack(*get_rlimit(k, p, resource_id)))
    return 0


@syscall("getrandom", "Bux")
def sys_getrandom(k: Kernel, p: Process, buf: int, count: int, flags: int) -> int:
    """Bytes from the run's seeded generator: a run is repeatable for a given --seed."""
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE):
        raise SysError(errno.EINVAL)
    count = min(count, 1 << 25)
    k.copyout(p, buf, k.random.randbytes(count))
    return count


@syscall("clock_gettime", "dp")
def sys_clock_gettime(k: Kernel, p: Process, clock: int, tp: int) -> int:
    try:
        ns = time.clock_gettime_ns(signed32(clock))
    except OSError:
        raise SysError(errno.EINVAL) from None
    k.copyout(p, tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


@syscall("clock_getres", "dp")
def sys_clock_getres(k: Kernel, p: Process, clock: int, tp: int) -> int:
    try:
        res = time.clock_getres(signed32(clock))
    except OSError:
        raise SysError(errno.EINVAL) from None
    if tp:
        ns = round(res * 10**9)
        k.copyout(p, tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


@syscall("gettimeofday", "pp")
def sys_gettimeofday(k: Kernel, p: Process, tv: int, tz: int) -> int:
    ns = time.time_ns()
    if tv:
        k.copyout(p, tv, struct.pack("<qq", ns // 10**9, (ns % 10**9) // 1000))
    if tz:
        k.copyout(p, tz, struct.pack("<ii", 0, 0))
    return 0


@syscall("time", "p")
def sys_time(k: Kernel, p: Process, tloc: int) -> int:
    now = int(time.time())
    if tloc:
        k.copyout(p, tloc, struct.pack("<q", now))
    return now


@syscall("uname", "p")
def sys_uname(k: Kernel, p: Process, buf: int) -> int:
    u = os.uname()
    fields = (u.sysname, u.nodename, u.release, u.version, "x86_64", "(none)")
    k.copyout(p, buf, b"".join(os.fsencode(f)[:UTSNAME_FIELD - 1].ljust(UTSNAME_FIELD, b"\0") for f in fields))
    return 0


@syscall("getpid")
def sys_getpid(k: Kernel, p: Process) -> int:
    return p.pid


@syscall("gettid")
def sys_gettid(k: Kernel, p: Process) -> int:
    return p.pid


@syscall("getppid")
def sys_getppid(k: Kernel, p: Process) -> int:
    return p.ppid


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
