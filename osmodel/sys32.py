"""The i386 system-call ABI (`int 0x80`): its table, and the calls whose structures differ from x86-64.

A 32-bit program asks with the i386 numbers, arguments in EBX, ECX, EDX, ESI, EDI and EBP,
and 32-bit structure layouts. Where a call means the same and its structures have the same
layout on both ABIs (read, openat, uname, getdents64, statx, the *_time64 calls...), the
x86-64 handler serves it: osmodel.syscall.widen32 sign-extends its signed arguments first.
The rest are here, registered with @syscall32, as Linux's compat_sys_* functions: the thread
area (set_thread_area and its GDT entries), mmap2's page offsets, 32-bit time and stat layouts.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from osmodel.files import SysError
from osmodel.syscall import TABLE, TABLE_32, Syscall, syscall32
from osmodel.sysnames import NUMBERS, NUMBERS_32
from osmodel.sysmem import sys_mmap
from osmodel.sysproc import CLONE_SETTLS, fork_child
from vm import gdt

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

PAGE_SHIFT = 12

# i386 name -> the x86-64 handler that serves it unchanged (same meaning, same structure layouts).
SHARED = {name: name for name in (
    "access", "brk", "chdir", "chmod", "close", "close_range", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "execve", "exit", "exit_group", "faccessat", "faccessat2", "fchdir", "fchmod", "fchmodat", "fchownat",
    "fdatasync", "fgetxattr", "flistxattr", "fork", "fremovexattr", "fsetxattr", "fsync", "getcpu", "getcwd",
    "getdents64", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getsid", "gettid",
    "getxattr", "ioctl", "kill", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "lremovexattr",
    "lsetxattr", "madvise", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mprotect",
    "mremap", "msync", "munmap", "open", "openat", "pause", "personality", "pipe", "pipe2", "poll", "prctl",
    "prlimit64", "read", "readlink", "readlinkat", "removexattr", "rename", "renameat", "renameat2", "rmdir",
    "rseq", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_setaffinity",
    "sched_yield", "set_tid_address", "setpgid", "setpriority", "setsid", "setxattr", "socket", "socketpair",
    "statx", "symlink", "symlinkat", "sync", "syncfs", "tgkill", "tkill", "umask", "uname", "unlink",
    "unlinkat", "vfork", "write")}
SHARED.update({
    # 32-bit uid/gid calls: the x86-64 ones already take 32-bit ids.
    "chown32": "chown", "lchown32": "lchown", "fchown32": "fchown", "getuid32": "getuid", "getgid32": "getgid",
    "geteuid32": "geteuid", "getegid32": "getegid", "setuid32": "setuid", "setgid32": "setgid",
    "setreuid32": "setreuid", "setregid32": "setregid", "setresuid32": "setresuid", "setresgid32": "setresgid",
    "getresuid32": "getresuid", "getresgid32": "getresgid", "getgroups32": "getgroups", "setgroups32": "setgroups",
    "setfsuid32": "setfsuid", "setfsgid32": "setfsgid",
    # fcntl64 is fcntl with 64-bit file locks: the same as x86-64's.
    "fcntl64": "fcntl",
    # The 64-bit-time calls take the x86-64 structures (glibc and musl try them first).
    "clock_gettime64": "clock_gettime", "clock_getres_time64": "clock_getres",
    "clock_nanosleep_time64": "clock_nanosleep", "futex_time64": "futex", "utimensat_time64": "utimensat",
    "ppoll_time64": "ppoll",
})


def share_handlers() -> None:
    """Fill the i386 table with the x86-64 handlers of SHARED (never over one registered here)."""
    for name32, name64 in SHARED.items():
        nr32 = NUMBERS_32[name32]
        entry = TABLE.get(NUMBERS[name64])
        if entry is not None and nr32 not in TABLE_32:
            TABLE_32[nr32] = Syscall(nr32, name32, entry.handler, entry.args)


# -- the thread area -------------------------------------------------------------------------------

USER_DESC = struct.Struct("<iIII")       # entry_number, base_addr, limit, flags (bit fields)
UD_SEG_32BIT, UD_CONTENTS, UD_READ_EXEC_ONLY, UD_LIMIT_IN_PAGES, UD_NOT_PRESENT, UD_USEABLE = 1, 6, 8, 16, 32, 64


def tls_descriptor(base: int, limit: int, flags: int) -> int:
    """The GDT descriptor a struct user_desc asks for (Linux's fill_ldt), or 0 for an empty one."""
    contents = (flags >> 1) & 3
    if flags & UD_NOT_PRESENT and flags & UD_READ_EXEC_ONLY and not base and not limit and not contents \
            and not flags & (UD_SEG_32BIT | UD_LIMIT_IN_PAGES | UD_USEABLE):
        return 0
    access = gdt.DESC_S | gdt.DESC_DPL3 | gdt.DESC_ACCESSED | (contents << 2)
    if not flags & UD_READ_EXEC_ONLY:
        access |= gdt.DESC_RW
    if not flags & UD_NOT_PRESENT:
        access |= gdt.DESC_PRESENT
    dflags = (gdt.FLAG_DB if flags & UD_SEG_32BIT else 0) | (gdt.FLAG_GRANULARITY if flags & UD_LIMIT_IN_PAGES else 0) \
        | (1 if flags & UD_USEABLE else 0)
    return gdt.descriptor(base, limit, access, dflags)


def user_desc_of(entry: int, desc: int) -> bytes:
    """The struct user_desc that describes GDT entry `entry` holding `desc` (get_thread_area)."""
    if not desc:
        flags = UD_READ_EXEC_ONLY | UD_NOT_PRESENT
        return USER_DESC.pack(entry, 0, 0, flags)
    access, dflags = gdt.access_of(desc), gdt.flags_of(desc)
    flags = (UD_SEG_32BIT if dflags & gdt.FLAG_DB else 0) | (((access >> 2) & 3) << 1) \
        | (0 if access & gdt.DESC_RW else UD_READ_EXEC_ONLY) | (UD_LIMIT_IN_PAGES if dflags & gdt.FLAG_GRANULARITY else 0) \
        | (0 if access & gdt.DESC_PRESENT else UD_NOT_PRESENT) | (UD_USEABLE if dflags & 1 else 0)
    return USER_DESC.pack(entry, gdt.base_of(desc), gdt.limit_of(desc), flags)


def set_tls(k: Kernel, p: Process, u_info: int) -> int:
    """Install the user_desc at u_info in one of the process's TLS entries (entry -1: the first free one,
    written back); the GDT entry index used."""
    entry, base, limit, flags = USER_DESC.unpack(k.copyin(p, u_info, USER_DESC.size))
    first, count = gdt.GDT_ENTRY_TLS_MIN, gdt.GDT_ENTRY_TLS_ENTRIES
    if entry == -1:
        free = [i for i in range(count) if not p.tls[i]]
        if not free:
            raise SysError(errno.ESRCH)
        entry = first + free[0]
        k.copyout(p, u_info, struct.pack("<i", entry))
    if not first <= entry < first + count:
        raise SysError(errno.EINVAL)
    p.tls[entry - first] = tls_descriptor(base, limit, flags)
    return entry


@syscall32("set_thread_area", "p")
def sys_set_thread_area(k: Kernel, p: Process, u_info: int) -> int:
    """A TLS segment for %gs: its descriptor goes in the process's GDT entries, loaded at each switch."""
    set_tls(k, p, u_info)
    if p is k.current:
        k.load_tls(p)
    return 0


@syscall32("get_thread_area", "p")
def sys_get_thread_area(k: Kernel, p: Process, u_info: int) -> int:
    entry = struct.unpack("<i", k.copyin(p, u_info, 4))[0]
    first = gdt.GDT_ENTRY_TLS_MIN
    if not first <= entry < first + gdt.GDT_ENTRY_TLS_ENTRIES:
        raise SysError(errno.EINVAL)
    k.copyout(p, u_info, user_desc_of(entry, p.tls[entry - first]))
    return 0


# -- memory ------------------------------------------------------------------------------------------

@syscall32("mmap2", "pupxdx")
def sys_mmap2(k: Kernel, p: Process, addr: int, length: int, prot: int, flags: int, fd: int, pgoff: int) -> int:
    """mmap with the file offset in pages (so 32 bits reach 16 TiB of file)."""
    return sys_mmap(k, p, addr, length, prot, flags, fd, pgoff << PAGE_SHIFT)


# -- processes ---------------------------------------------------------------------------------------

@syscall32("clone", "xpppp")
def sys_clone(k: Kernel, p: Process, flags: int, stack: int, ptid: int, tls: int, ctid: int) -> int:
    """clone with i386's argument order (flags, stack, parent_tid, tls, child_tid); tls is a struct user_desc."""
    if flags & CLONE_SETTLS:
        raise SysError(errno.ENOSYS)          # a new thread's TLS descriptor: not yet
    return fork_child(k, p, flags, stack, ptid, ctid, 0)


share_handlers()
