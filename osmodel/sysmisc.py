"""The other system calls glibc programs, coreutils, shells and CPython use: sysinfo, CPU affinity,
identities (getgroups, the set*id family), priorities, times, mincore, memfd_create, close_range,
and calls answered ENOSYS on purpose so the C library falls back. The machine has one CPU (number 0).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

from osmodel.files import HostFile, SysError
from osmodel.syscall import signed, signed32, syscall
from vm.pagetable import PTE_PRESENT
from vm.ram import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

# struct sysinfo (x86-64, 112 bytes): uptime, loads[3], totalram, freeram, sharedram, bufferram, totalswap,
# freeswap, procs, pad, totalhigh, freehigh, mem_unit.
SYSINFO = struct.Struct("<qQQQQQQQQQHH4xQQI4x")
SI_LOAD_SHIFT = 16
CPUMASK_SIZE = 8          # the kernel's cpumask_size() for a machine of up to 64 CPUs
USER_HZ = 100             # clock_t ticks per second (times, sysconf(_SC_CLK_TCK))
NSEC_PER_SEC = 1_000_000_000
TMS = struct.Struct("<4q")  # struct tms (x86-64): tms_utime, tms_stime, tms_cutime, tms_cstime (clock_t)


def find_process(k: Kernel, p: Process, pid: int) -> Process:
    """The process a pid argument names (0: the caller); ESRCH if there is none."""
    pid = signed32(pid)
    if pid == 0:
        return p
    target = k.processes.get(pid)
    if target is None or pid < 0:
        raise SysError(errno.ESRCH)
    return target


# -- the machine ----------------------------------------------------------------------------------

def sysinfo_values(k: Kernel) -> tuple[int, ...]:
    """struct sysinfo's fields in order: uptime, loads[3], totalram, freeram, sharedram, bufferram,
    totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit."""
    try:
        uptime = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    except (AttributeError, OSError):
        uptime = int(time.monotonic())
    try:
        loads = [int(v * (1 << SI_LOAD_SHIFT)) for v in os.getloadavg()]
    except OSError:
        loads = [0, 0, 0]
    return (uptime, *loads, k.ram.size, k.ram.free_frames * PAGE_SIZE, 0, 0, 0, 0,
            min(len(k.processes), 0xFFFF), 0, 0, 0, 1)


@syscall("sysinfo", "p")
def sys_sysinfo(k: Kernel, p: Process, info: int) -> int:
    """Uptime and load averages are the host's; memory is the emulated machine's (its physical memory,
    its free frames; no swap); procs counts guest processes."""
    k.copyout(p, info, SYSINFO.pack(*sysinfo_values(k)))
    return 0


@syscall("sched_getaffinity", "dup")
def sys_sched_getaffinity(k: Kernel, p: Process, pid: int, size: int, mask: int, word: int = 8) -> int:
    """One CPU: the mask has bit 0 set; returns the bytes written, min(size, sizeof(cpumask)), as Linux.
    The size must be a whole number of the ABI's longs (`word` bytes)."""
    find_process(k, p, pid)
    if size * 8 < 1 or size & (word - 1):
        raise SysError(errno.EINVAL)
    n = min(size, CPUMASK_SIZE)
    k.copyout(p, mask, (1).to_bytes(n, "little"))
    return n


@syscall("sched_setaffinity", "dup")
def sys_sched_setaffinity(k: Kernel, p: Process, pid: int, size: int, mask: int) -> int:
    """Any mask that includes CPU 0 is accepted (the others do not exist); one without it is EINVAL."""
    find_process(k, p, pid)
    data = k.copyin(p, mask, min(size, CPUMASK_SIZE))
    if not data or not data[0] & 1:
        raise SysError(errno.EINVAL)
    return 0


@syscall("getcpu", "ppp")
def sys_getcpu(k: Kernel, p: Process, cpu: int, node: int, cache: int) -> int:
    if cpu:
        k.copyout(p, cpu, struct.pack("<I", 0))
    if node:
        k.copyout(p, node, struct.pack("<I", 0))
    return 0


SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE = 0, 1, 2, 3, 5


@syscall("sched_getscheduler", "d")
def sys_sched_getscheduler(k: Kernel, p: Process, pid: int) -> int:
    """Every process is scheduled round robin by run-elf's own scheduler; to the guest that is SCHED_OTHER."""
    find_process(k, p, pid)
    return SCHED_OTHER


@syscall("sched_getparam", "dp")
def sys_sched_getparam(k: Kernel, p: Process, pid: int, param: int) -> int:
    find_process(k, p, pid)
    k.copyout(p, param, struct.pack("<i", 0))
    return 0


@syscall("sched_get_priority_max", "d")
def sys_sched_get_priority_max(k: Kernel, p: Process, policy: int) -> int:
    policy = signed32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 99
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
        return 0
    raise SysError(errno.EINVAL)


@syscall("sched_get_priority_min", "d")
def sys_sched_get_priority_min(k: Kernel, p: Process, policy: int) -> int:
    policy = signed32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
        return 0
    raise SysError(errno.EINVAL)


PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2


def nice_of(p: Process) -> int:
    """A process's nice value: run-elf's own until the guest sets one (not inherited by fork)."""
    nice = getattr(p, "nice", None)
    return os.getpriority(os.PRIO_PROCESS, 0) if nice is None else nice


def priority_targets(k: Kernel, p: Process, which: int, who: int) -> list[Process]:
    which, who = signed32(which), signed32(who)
    if which == PRIO_PROCESS:
        return [find_process(k, p, who)]
    if which == PRIO_PGRP:
        pgid = who or p.pgid
        targets = [t for t in k.processes.values() if t.pgid == pgid and t.alive]
    elif which == PRIO_USER:
        targets = [t for t in k.processes.values() if t.alive] if who in (0, os.getuid()) else []
    else:
        raise SysError(errno.EINVAL)
    if not targets:
        raise SysError(errno.ESRCH)
    return targets


@syscall("getpriority", "dd")
def sys_getpriority(k: Kernel, p: Process, which: int, who: int) -> int:
    """As the raw system call: 20 - nice (1..40) of the highest-priority target, so no result is negative."""
    return max(20 - nice_of(t) for t in priority_targets(k, p, which, who))


@syscall("setpriority", "ddd")
def sys_setpriority(k: Kernel, p: Process, which: int, who: int, prio: int) -> int:
    """Recorded for getpriority; it does not change how run-elf schedules (round robin)."""
    nice = max(-20, min(19, signed32(prio)))
    for t in priority_targets(k, p, which, who):
        if nice < nice_of(t) and os.geteuid() != 0:
            raise SysError(errno.EACCES)
        t.nice = nice
    return 0


IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_CLASS_SHIFT = 13
IOPRIO_LEVEL_MASK = 7
IOPRIO_DEFAULT = IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 4     # best effort, level 4: what "none" counts as


def ioprio_targets(k: Kernel, p: Process, which: int, who: int) -> list[Process]:
    """The processes IOPRIO_WHO_PROCESS (1), _PGRP (2) or _USER (3) and who name: getpriority's, numbered from 1."""
    if signed32(which) not in (1, 2, 3):
        raise SysError(errno.EINVAL)
    return priority_targets(k, p, signed32(which) - 1, who)


@syscall("ioprio_set", "ddx")
def sys_ioprio_set(k: Kernel, p: Process, which: int, who: int, ioprio: int) -> int:
    """Recorded for ioprio_get and inherited by fork; run-elf's I/O is the host's, which it does not change."""
    ioprio &= 0xFFFF_FFFF
    cls, level = ioprio >> IOPRIO_CLASS_SHIFT & 7, ioprio & IOPRIO_LEVEL_MASK   # the bits between are hints
    if cls == IOPRIO_CLASS_RT and os.geteuid() != 0:
        raise SysError(errno.EPERM)
    if cls > IOPRIO_CLASS_IDLE or (cls == IOPRIO_CLASS_NONE and level):
        raise SysError(errno.EINVAL)
    for t in ioprio_targets(k, p, which, who):
        t.ioprio = ioprio
    return 0


@syscall("ioprio_get", "dd")
def sys_ioprio_get(k: Kernel, p: Process, which: int, who: int) -> int:
    """One process's I/O priority (0, class "none", until set); of several, the best (Linux's ioprio_best,
    where "none" counts as best effort level 4)."""
    prios = [t.ioprio for t in ioprio_targets(k, p, which, who)]
    if len(prios) == 1:
        return prios[0]
    return min(prio if prio >> IOPRIO_CLASS_SHIFT else IOPRIO_DEFAULT for prio in prios)


PER_LINUX = 0
PER_MASK = 0xFF


@syscall("personality", "x")
def sys_personality(k: Kernel, p: Process, persona: int) -> int:
    """Query (0xffffffff) or set the execution domain: only Linux's own (with any flags) exists."""
    persona &= 0xFFFF_FFFF
    old = getattr(p, "personality", PER_LINUX)
    if persona != 0xFFFF_FFFF:
        if persona & PER_MASK != PER_LINUX:
            raise SysError(errno.EINVAL)
        p.personality = persona
    return old


# -- identity -------------------------------------------------------------------------------------

@syscall("getgroups", "dp")
def sys_getgroups(k: Kernel, p: Process, size: int, groups: int) -> int:
    """The host's supplementary groups (the guest runs with run-elf's credentials)."""
    ids = os.getgroups()
    size = signed32(size)
    if size < 0:
        raise SysError(errno.EINVAL)
    if size == 0:
        return len(ids)
    if size < len(ids):
        raise SysError(errno.EINVAL)
    k.copyout(p, groups, struct.pack(f"<{len(ids)}I", *ids))
    return len(ids)


@syscall("setgroups", "dp")
def sys_setgroups(k: Kernel, p: Process, size: int, groups: int) -> int:
    """Allowed only when it leaves the group list as it is: credentials are run-elf's and cannot change."""
    size = signed32(size)
    if size < 0 or size > 65536:
        raise SysError(errno.EINVAL)
    ids = struct.unpack(f"<{size}I", k.copyin(p, groups, 4 * size)) if size else ()
    if sorted(set(ids)) != sorted(set(os.getgroups())):
        raise SysError(errno.EPERM)
    return 0


def same_ids(wanted: tuple[int, ...], current: tuple[int, ...]) -> None:
    """A set*id call succeeds only if every id it sets (not -1) is one the process already has: the
    guest's credentials are run-elf's, which cannot change (EPERM otherwise)."""
    for value in wanted:
        value &= 0xFFFF_FFFF
        if value != 0xFFFF_FFFF and value not in current:
            raise SysError(errno.EPERM)


@syscall("setuid", "d")
def sys_setuid(k: Kernel, p: Process, uid: int) -> int:
    same_ids((uid,), (os.getuid(),) if os.getuid() == os.geteuid() else ())
    return 0


@syscall("setgid", "d")
def sys_setgid(k: Kernel, p: Process, gid: int) -> int:
    same_ids((gid,), (os.getgid(),) if os.getgid() == os.getegid() else ())
    return 0


@syscall("setreuid", "dd")
def sys_setreuid(k: Kernel, p: Process, ruid: int, euid: int) -> int:
    r, e, _ = os.getresuid()
    same_ids((ruid,), (r,))
    same_ids((euid,), (e,))
    return 0


@syscall("setregid", "dd")
def sys_setregid(k: Kernel, p: Process, rgid: int, egid: int) -> int:
    r, e, _ = os.getresgid()
    same_ids((rgid,), (r,))
    same_ids((egid,), (e,))
    return 0


@syscall("setresuid", "ddd")
def sys_setresuid(k: Kernel, p: Process, ruid: int, euid: int, suid: int) -> int:
    for wanted, current in zip((ruid, euid, suid), os.getresuid()):
        same_ids((wanted,), (current,))
    return 0


@syscall("setresgid", "ddd")
def sys_setresgid(k: Kernel, p: Process, rgid: int, egid: int, sgid: int) -> int:
    for wanted, current in zip((rgid, egid, sgid), os.getresgid()):
        same_ids((wanted,), (current,))
    return 0


@syscall("getresuid", "ppp")
def sys_getresuid(k: Kernel, p: Process, ruid: int, euid: int, suid: int) -> int:
    for addr, value in zip((ruid, euid, suid), os.getresuid()):
        k.copyout(p, addr, struct.pack("<I", value))
    return 0


@syscall("getresgid", "ppp")
def sys_getresgid(k: Kernel, p: Process, rgid: int, egid: int, sgid: int) -> int:
    for addr, value in zip((rgid, egid, sgid), os.getresgid()):
        k.copyout(p, addr, struct.pack("<I", value))
    return 0


@syscall("setfsuid", "d")
def sys_setfsuid(k: Kernel, p: Process, uid: int) -> int:
    """Returns the current file-system uid (the effective uid) and never changes it; never fails, as Linux."""
    return os.geteuid()


@syscall("setfsgid", "d")
def sys_setfsgid(k: Kernel, p: Process, gid: int) -> int:
    return os.getegid()


# -- time -----------------------------------------------------------------------------------------

@syscall("times", "p")
def sys_times(k: Kernel, p: Process, buf: int, layout: struct.Struct = TMS) -> int:
    """The CPU times of the process (its thread group) and of its reaped children, as a struct tms
    (in `layout`) in ticks of USER_HZ; the result is the clock in those ticks since boot."""
    if buf:
        leader = p.leader or p
        times = (leader.group_utime, leader.group_stime, leader.child_utime, leader.child_stime)
        k.copyout(p, buf, layout.pack(*(ns // (NSEC_PER_SEC // USER_HZ) for ns in times)))
    return clock_ticks()


def clock_ticks() -> int:
    """The clock in ticks of USER_HZ since boot (times' result)."""
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * USER_HZ)


@syscall("rt_sigpending", "pu")
def sys_rt_sigpending(k: Kernel, p: Process, out: int, size: int) -> int:
    """The blocked signals that are pending (for the thread, or for its whole thread group)."""
    if size > 8:
        raise SysError(errno.EINVAL)
    k.copyout(p, out, struct.pack("<Q", (p.pending | (p.leader or p).shared_pending) & p.sigmask)[:size])
    return 0


# -- memory ---------------------------------------------------------------------------------------

@syscall("mincore", "pup")
def sys_mincore(k: Kernel, p: Process, addr: int, length: int, vec: int) -> int:
    """One byte per page: 1 if our page table maps it, or it is a file page the page cache holds."""
    if addr % PAGE_SIZE:
        raise SysError(errno.EINVAL)
    if signed(length) < 0:
        raise SysError(errno.EINVAL)
    end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end > p.aspace.user_top:
        raise SysError(errno.ENOMEM)
    a = p.aspace
    out = bytearray()
    va = addr
    while va < end:
        region = a.find(va)
        if region is None or region.start > va:
            raise SysError(errno.ENOMEM)
        top = min(region.end, end)
        while va < top:
            resident = bool(a.pagetable.lookup(va) & PTE_PRESENT)
            if not resident and region.backing is not None:
                offset, count, _ = region.file_bytes(va)
                resident = bool(count) and bool(k.cache.lookup(region.backing, offset >> PAGE_SHIFT))
            out.append(int(resident))
            va += PAGE_SIZE
    k.copyout(p, vec, bytes(out))
    return 0


MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB = 1, 2, 4
MFD_NOEXEC_SEAL, MFD_EXEC = 8, 0x10
MFD_NAME_MAX = 249


@syscall("memfd_create", "sx")
def sys_memfd_create(k: Kernel, p: Process, name: int, flags: int) -> int:
    """An anonymous file: a host memfd, readable, writable and mappable like any host file."""
    flags &= 0xFFFF_FFFF
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) or \
            (flags & MFD_NOEXEC_SEAL and flags & MFD_EXEC):
        raise SysError(errno.EINVAL)
    text = k.copyinstr(p, name, 4096)
    if len(text) > MFD_NAME_MAX:
        raise SysError(errno.EINVAL)
    hostfd = os.memfd_create(os.fsdecode(text) or "memfd",
                             os.MFD_CLOEXEC | (flags & MFD_ALLOW_SEALING))
    f = HostFile(hostfd, f"/memfd:{os.fsdecode(text)} (deleted)", os.O_RDWR, f"/proc/self/fd/{hostfd}")
    f.memfd = True
    return p.files.install(f, cloexec=bool(flags & MFD_CLOEXEC))


# -- descriptors ----------------------------------------------------------------------------------

CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


@syscall("close_range", "uux")
def sys_close_range(k: Kernel, p: Process, first: int, last: int, flags: int) -> int:
    """Close (or with CLOSE_RANGE_CLOEXEC mark close-on-exec) every open descriptor in [first, last]."""
    first, last = first & 0xFFFF_FFFF, last & 0xFFFF_FFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SysError(errno.EINVAL)
    for fd in sorted(p.files.slots):
        if first <= fd <= last:
            if flags & CLOSE_RANGE_CLOEXEC:
                p.files.set_cloexec(fd, True)
            else:
                p.files.close(fd)
    return 0


# -- not provided, on purpose ---------------------------------------------------------------------

@syscall("clone3", "pu")
def sys_clone3(k: Kernel, p: Process, args: int, size: int) -> int:
    """ENOSYS: glibc then falls back to clone, which run-elf implements."""
    raise SysError(errno.ENOSYS)
