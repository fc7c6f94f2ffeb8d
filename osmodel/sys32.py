"""The i386 system-call ABI (`int 0x80`): its table, and the calls whose structures differ from x86-64.

A 32-bit program asks with the i386 numbers, arguments in EBX, ECX, EDX, ESI, EDI and EBP,
and 32-bit structure layouts. Where a call means the same and its structures have the same
layout on both ABIs (read, write, uname, statx, the *32 uid calls, the *_time64 calls...), the
x86-64 handler serves it (SHARED): osmodel.syscall.widen32 sign-extends its signed arguments first.
The rest are here, registered with @syscall32, as Linux's compat_sys_* and ia32_* functions,
most of them reusing the x86-64 handler's logic with the i386 structure layout: the thread area
(set_thread_area, and clone's CLONE_SETTLS), mmap2's page offsets and the old mmap's argument
block; 32-bit time_t, timespec, timeval, rusage, rlimit, sysinfo, stat, stat64, statfs and
dirent layouts; 64-bit file offsets split across two registers (low word first); 8-byte iovecs;
select's 32-bit fd_set words; socketcall's multiplexed socket calls; the old 16-bit uid calls;
open without a forced O_LARGEFILE; and directory positions that fit a 32-bit off_t.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as statmod
import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as x86

from osmodel.files import HostFile, SysError
from osmodel.syscall import AT_FDCWD, TABLE, TABLE_32, Syscall, signed, signed32, syscall32, widen32
from osmodel.sysfile import (AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, LIBC, current_or, dirents64, gather, host_path,
                             iovecs, preadv_file, pwritev_file, read_vectors, stat_path, sys_open, sys_openat,
                             sys_pread64, sys_pwrite64, write_file)
from osmodel.sysfs import (AT_NO_AUTOMOUNT, O_PATH, STATFS, statfs_fd, statfs_path, sys_creat, sys_fadvise64,
                           sys_fallocate, sys_ftruncate, sys_futimesat, sys_readahead, sys_sendfile, sys_truncate,
                           sys_utime, sys_utimensat, sys_utimes, writeback_file)
from osmodel.sysmem import sys_mmap
from osmodel.syspoll import do_pselect, do_select, sys_ppoll
from osmodel.sysmisc import sys_sched_getaffinity, sys_times, sysinfo_values
from osmodel.sysnames import NUMBERS, NUMBERS_32
from osmodel.sysproc import (CLONE_SETTLS, RLIM_INFINITY, fork_child, get_rlimit, set_rlimit, sys_clock_getres,
                             sys_clock_gettime, sys_clock_nanosleep, sys_futex, sys_getrusage, sys_gettimeofday,
                             sys_nanosleep, sys_set_robust_list, sys_time, sys_wait4, utsname_fields)
from vm import gdt
from vm.ram import PAGE_SIZE

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

PAGE_SHIFT = 12


class Compat32(struct.Struct):
    """`count` 32-bit signed C fields (struct old_timespec32 and the like): unpacked as signed values,
    packed keeping the low 32 bits of each value, as the kernel's assignments to such fields do."""

    def __init__(self, count: int):
        super().__init__(f"<{count}i")

    def pack(self, *values: int) -> bytes:
        return super().pack(*(signed32(v) for v in values))


TIME32 = Compat32(1)                     # old_time32_t
TIMESPEC32 = Compat32(2)                 # struct old_timespec32: tv_sec, tv_nsec
TIMEVAL32 = Compat32(2)                  # struct old_timeval32: tv_sec, tv_usec
TIMESPEC32_PAIR = Compat32(4)            # struct old_timespec32[2] (utimensat)
TIMEVAL32_PAIR = Compat32(4)             # struct old_timeval32[2] (utimes, futimesat)
UTIMBUF32 = Compat32(2)                  # struct old_utimbuf32: actime, modtime
OFF32 = Compat32(1)                      # compat_off_t (sendfile's offset)
RUSAGE32 = Compat32(18)                  # struct compat_rusage: ru_utime, ru_stime, then 14 compat_longs
RLIMIT32 = struct.Struct("<II")          # struct compat_rlimit: rlim_cur, rlim_max
COMPAT_RLIM_INFINITY = 0xFFFF_FFFF
OLD_RLIM_MAX = 0x7FFF_FFFF               # what the old getrlimit (nr 76) reports for anything larger
TMS32 = Compat32(4)                      # struct compat_tms: four compat_clock_t
ROBUST_LIST_HEAD32 = 12                  # sizeof(struct compat_robust_list_head)
COMPAT_LONG = 4                          # sizeof(compat_long_t): fd_set words, cpumask words
MAX_NON_LFS = 0x7FFF_FFFF                # the largest offset or size a call without large-file support reports
O_LARGEFILE = 0o100000                   # i386's: a file opened without it may not be larger than MAX_NON_LFS
# struct compat_sysinfo (64 bytes): uptime, loads[3], totalram, freeram, sharedram, bufferram, totalswap,
# freeswap, procs, pad, totalhigh, freehigh, mem_unit, padding.
SYSINFO32 = struct.Struct("<i3I6IHH3I8x")
SYSINFO_MEMORY = (4, 5, 6, 7, 8, 9, 12, 13)   # sysinfo_values() indices of the memory sizes
SYSINFO_MEM_UNIT = 14
# struct stat64 (i386, packed, 96 bytes): st_dev, pad, __st_ino, st_mode, st_nlink, st_uid, st_gid, st_rdev,
# pad, st_size, st_blksize, st_blocks, atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec, st_ino.
STAT64 = struct.Struct("<Q4xIIIIIQ4xqIQIIIIIIQ")
# struct compat_stat (i386's struct stat, 64 bytes): st_dev, st_ino, st_mode, st_nlink, st_uid, st_gid
# (16-bit), st_rdev, st_size, st_blksize, st_blocks, atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec.
STAT32 = struct.Struct("<IIHHHHIIIIIIIIII8x")
OVERFLOW_ID = 65534                      # overflowuid/overflowgid: a 16-bit field's stand-in for a larger id
NGROUPS_MAX = 65536
# struct compat_statfs (64 bytes): f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid[2],
# f_namelen, f_frsize, f_flags, f_spare[4].
STATFS32 = struct.Struct("<7I2I3I16x")
# struct compat_statfs64 (packed, 84 bytes): f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree,
# f_fsid[2], f_namelen, f_frsize, f_flags, f_spare[4].
STATFS64_32 = struct.Struct("<II5Q2I3I16x")
DIRENT64_HEAD = struct.Struct("<QqHB")   # struct linux_dirent64: d_ino, d_off, d_reclen, d_type; then d_name
DIRENT32_HEAD = struct.Struct("<IIH")    # struct compat_linux_dirent: d_ino, d_off, d_reclen; d_name; d_type last
MMAP_ARGS32 = struct.Struct("<6I")       # struct mmap_arg_struct32: addr, len, prot, flags, fd, offset
SEL_ARGS32 = struct.Struct("<5I")        # struct compat_sel_arg_struct: n, inp, outp, exp, tvp
SIGSET_ARGPACK32 = struct.Struct("<II")  # pselect6's last argument: compat sigset pointer and size
OLD_UTS_LEN = 8                          # struct oldold_utsname's fields: 8 characters and a NUL
UTS_LEN = 65                             # struct old_utsname's fields
SYNC_FILE_RANGE_FLAGS = 7                # WAIT_BEFORE | WRITE | WAIT_AFTER
ARCH_GET_CPUID = 0x1011
MASK64 = (1 << 64) - 1


def offset64(low: int, high: int) -> int:
    """A 64-bit file offset passed in two 32-bit registers, low word first (as the 64-bit handlers take it)."""
    return ((high & 0xFFFF_FFFF) << 32 | (low & 0xFFFF_FFFF)) & MASK64


# i386 name -> the x86-64 handler that serves it unchanged (same meaning, same structure layouts).
SHARED = {name: name for name in (
    "access", "alarm", "brk", "chdir", "chmod", "close", "close_range", "copy_file_range", "dup", "dup2", "dup3",
    "execve", "exit", "exit_group", "faccessat", "faccessat2", "fchdir", "fchmod", "fchmodat", "fchownat",
    "fdatasync", "fgetxattr", "flistxattr", "fork", "fremovexattr", "fsetxattr", "fsync", "ftruncate", "getcpu",
    "getcwd", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getsid", "gettid",
    "getxattr", "ioctl", "ioprio_get", "ioprio_set", "kill", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "lremovexattr",
    "lsetxattr", "madvise", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mprotect",
    "mremap", "msync", "munmap", "pause", "personality", "pipe", "pipe2", "poll", "prctl", "prlimit64", "read",
    "readlink", "readlinkat", "removexattr", "rename", "renameat", "renameat2", "rmdir", "rseq", "rt_sigpending",
    "rt_sigprocmask", "rt_sigsuspend", "sched_get_priority_max", "sched_get_priority_min", "sched_getparam",
    "sched_getscheduler", "sched_setaffinity", "sched_yield", "set_tid_address", "setpgid", "setpriority",
    "setsid", "setxattr", "socket", "socketpair", "statx", "symlink", "symlinkat", "sync", "syncfs", "tgkill",
    "tkill", "truncate", "umask", "uname", "unlink", "unlinkat", "vfork", "write")}
# (The other socket calls are registered for i386 in osmodel.syssock, with their 32-bit msghdr layouts.)
SHARED.update({
    # 32-bit uid/gid calls: the x86-64 ones already take 32-bit ids.
    "chown32": "chown", "lchown32": "lchown", "fchown32": "fchown", "getuid32": "getuid", "getgid32": "getgid",
    "geteuid32": "geteuid", "getegid32": "getegid", "setuid32": "setuid", "setgid32": "setgid",
    "setreuid32": "setreuid", "setregid32": "setregid", "setresuid32": "setresuid", "setresgid32": "setresgid",
    "getresuid32": "getresuid", "getresgid32": "getresgid", "getgroups32": "getgroups", "setgroups32": "setgroups",
    "setfsuid32": "setfsuid", "setfsgid32": "setfsgid",
    # (fcntl and fcntl64, whose file locks have 32-bit layouts, are registered in osmodel.syslock.)
    # sendfile64's offset is a loff_t, as x86-64 sendfile's.
    "sendfile64": "sendfile",
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
UD_FIELDS = UD_SEG_32BIT | UD_CONTENTS | UD_READ_EXEC_ONLY | UD_LIMIT_IN_PAGES | UD_NOT_PRESENT | UD_USEABLE


def tls_descriptor(base: int, limit: int, flags: int) -> int:
    """The GDT descriptor a struct user_desc asks for (Linux's fill_ldt), or 0 for an empty one."""
    contents = (flags >> 1) & 3
    if not base and not limit and (flags & UD_FIELDS in (0, UD_NOT_PRESENT | UD_READ_EXEC_ONLY)):
        return 0                  # LDT_zero or LDT_empty: no segment
    access = gdt.DESC_S | gdt.DESC_DPL3 | gdt.DESC_ACCESSED | (contents << 2)
    if not flags & UD_READ_EXEC_ONLY:
        access |= gdt.DESC_RW
    if not flags & UD_NOT_PRESENT:
        access |= gdt.DESC_PRESENT
    dflags = (gdt.FLAG_DB if flags & UD_SEG_32BIT else 0) | (gdt.FLAG_GRANULARITY if flags & UD_LIMIT_IN_PAGES else 0) \
        | (1 if flags & UD_USEABLE else 0)
    return gdt.descriptor(base, limit, access, dflags)


def tls_acceptable(base: int, limit: int, flags: int) -> bool:
    """Linux's tls_desc_okay: an empty entry, or a present 32-bit data segment."""
    if not base and not limit and not flags & UD_FIELDS:
        return True
    return bool(flags & UD_SEG_32BIT) and (flags >> 1) & 3 <= 1 and not flags & UD_NOT_PRESENT


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


def read_tls(k: Kernel, p: Process, u_info: int, allocate: bool) -> tuple[int, int]:
    """(GDT entry, descriptor) the user_desc at u_info asks for (Linux's do_set_thread_area). Entry -1
    picks the first free TLS entry and writes its number back when `allocate` (set_thread_area), and is
    EINVAL otherwise (clone's CLONE_SETTLS)."""
    entry, base, limit, flags = USER_DESC.unpack(k.copyin(p, u_info, USER_DESC.size))
    if not tls_acceptable(base, limit, flags):
        raise SysError(errno.EINVAL)
    first, count = gdt.GDT_ENTRY_TLS_MIN, gdt.GDT_ENTRY_TLS_ENTRIES
    if entry == -1 and allocate:
        free = [i for i in range(count) if not p.tls[i]]
        if not free:
            raise SysError(errno.ESRCH)
        entry = first + free[0]
        k.copyout(p, u_info, struct.pack("<i", entry))
    if not first <= entry < first + count:
        raise SysError(errno.EINVAL)
    return entry, tls_descriptor(base, limit, flags)


def set_tls(k: Kernel, p: Process, u_info: int) -> int:
    """Install the user_desc at u_info in one of the process's TLS entries (entry -1: the first free one,
    written back); the GDT entry index used."""
    entry, desc = read_tls(k, p, u_info, allocate=True)
    p.tls[entry - gdt.GDT_ENTRY_TLS_MIN] = desc
    return entry


@syscall32("set_thread_area", "p")
def sys_set_thread_area(k: Kernel, p: Process, u_info: int) -> int:
    """A TLS segment for %gs: its descriptor goes in the process's GDT entries, loaded at each switch.
    If %gs already selects that entry, its base follows at once (Linux reloads the selector)."""
    entry = set_tls(k, p, u_info)
    if p is k.current:
        k.load_tls(p)
        if k.cpu.reg("gs") == gdt.selector(entry):
            k.cpu.set_reg("gs_base", gdt.base_of(p.tls[entry - gdt.GDT_ENTRY_TLS_MIN]))
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


@syscall32("mmap", "p")
def sys_old_mmap(k: Kernel, p: Process, args: int) -> int:
    """The old i386 mmap: one pointer to its six arguments; the offset must be page-aligned."""
    addr, length, prot, flags, fd, offset = MMAP_ARGS32.unpack(k.copyin(p, args, MMAP_ARGS32.size))
    if offset % PAGE_SIZE:
        raise SysError(errno.EINVAL)
    return sys_mmap(k, p, addr, length, prot, flags, fd, offset)


# -- processes ---------------------------------------------------------------------------------------

@syscall32("clone", "xpppp")
def sys_clone(k: Kernel, p: Process, flags: int, stack: int, ptid: int, tls: int, ctid: int) -> int:
    """clone with i386's argument order (flags, stack, parent_tid, tls, child_tid). With CLONE_SETTLS, tls
    points to a struct user_desc for one of the child's TLS entries (checked before the child exists); the
    child's %gs base follows when %gs selects that entry, as Linux's reload of %gs at its first switch."""
    if not flags & CLONE_SETTLS:
        return fork_child(k, p, flags, stack, ptid, ctid, 0)
    entry, desc = read_tls(k, p, tls, allocate=False)
    pid = fork_child(k, p, flags & ~CLONE_SETTLS, stack, ptid, ctid, 0)
    child = k.processes[pid]
    child.tls[entry - gdt.GDT_ENTRY_TLS_MIN] = desc
    if child.context.reg_read(x86.UC_X86_REG_GS) == gdt.selector(entry):
        child.context.reg_write(x86.UC_X86_REG_GS_BASE, gdt.base_of(desc))
    return pid


@syscall32("waitpid", "dpx")
def sys_waitpid(k: Kernel, p: Process, pid: int, status: int, options: int) -> int:
    """wait4 without a rusage."""
    return sys_wait4(k, p, pid, status, options, 0, RUSAGE32)


@syscall32("wait4", "dpxp")
def sys_wait4_32(k: Kernel, p: Process, pid: int, status: int, options: int, rusage: int) -> int:
    return sys_wait4(k, p, pid, status, options, rusage, RUSAGE32)


@syscall32("getrusage", "dp")
def sys_getrusage32(k: Kernel, p: Process, who: int, usage: int) -> int:
    return sys_getrusage(k, p, who, usage, RUSAGE32)


@syscall32("times", "p")
def sys_times32(k: Kernel, p: Process, buf: int) -> int:
    """times with a struct compat_tms; the clock in ticks, as a 32-bit clock_t."""
    return sys_times(k, p, buf, TMS32) & 0xFFFF_FFFF


@syscall32("set_robust_list", "pu")
def sys_set_robust_list32(k: Kernel, p: Process, head: int, length: int) -> int:
    return sys_set_robust_list(k, p, head, length, ROBUST_LIST_HEAD32)


@syscall32("get_robust_list", "dpp")
def sys_get_robust_list(k: Kernel, p: Process, pid: int, head_ptr: int, len_ptr: int) -> int:
    """The robust-list head a thread (0: the caller) registered, and the size of a compat list head."""
    target = p if not signed32(pid) else k.processes.get(signed32(pid))
    if target is None:
        raise SysError(errno.ESRCH)
    k.copyout(p, len_ptr, struct.pack("<I", ROBUST_LIST_HEAD32))
    k.copyout(p, head_ptr, struct.pack("<I", target.robust_list[0] & 0xFFFF_FFFF))
    return 0


@syscall32("ugetrlimit", "dp")
def sys_ugetrlimit(k: Kernel, p: Process, resource_id: int, rlim: int) -> int:
    """getrlimit with RLIM_INFINITY (and anything larger than 32 bits) as 0xffffffff."""
    soft, hard = get_rlimit(p, resource_id)
    k.copyout(p, rlim, RLIMIT32.pack(min(soft, COMPAT_RLIM_INFINITY), min(hard, COMPAT_RLIM_INFINITY)))
    return 0


@syscall32("getrlimit", "dp")
def sys_old_getrlimit(k: Kernel, p: Process, resource_id: int, rlim: int) -> int:
    """The old getrlimit (nr 76): limits above 0x7fffffff, infinity included, read as 0x7fffffff."""
    soft, hard = get_rlimit(p, resource_id)
    k.copyout(p, rlim, RLIMIT32.pack(min(soft, OLD_RLIM_MAX), min(hard, OLD_RLIM_MAX)))
    return 0


@syscall32("setrlimit", "dp")
def sys_setrlimit(k: Kernel, p: Process, resource_id: int, rlim: int) -> int:
    """setrlimit with 0xffffffff meaning RLIM_INFINITY."""
    soft, hard = RLIMIT32.unpack(k.copyin(p, rlim, RLIMIT32.size))
    widen = lambda v: RLIM_INFINITY if v == COMPAT_RLIM_INFINITY else v  # noqa: E731
    set_rlimit(k, p, resource_id, widen(soft), widen(hard))
    return 0


@syscall32("sysinfo", "p")
def sys_sysinfo32(k: Kernel, p: Process, info: int) -> int:
    """struct compat_sysinfo: when a memory size does not fit 32 bits, mem_unit grows (up to a page) and
    the sizes shrink with it, as Linux's compat_sys_sysinfo scales them."""
    values = list(sysinfo_values(k))
    if values[4] >> 32 or values[8] >> 32:          # totalram, totalswap
        shift = 0
        while values[SYSINFO_MEM_UNIT] < PAGE_SIZE:
            values[SYSINFO_MEM_UNIT] <<= 1
            shift += 1
        for i in SYSINFO_MEMORY:
            values[i] >>= shift
    values = [signed32(values[0])] + [v & 0xFFFF_FFFF for v in values[1:]]
    k.copyout(p, info, SYSINFO32.pack(*values))
    return 0


@syscall32("sched_getaffinity", "dup")
def sys_sched_getaffinity32(k: Kernel, p: Process, pid: int, size: int, mask: int) -> int:
    """The mask's size must be a whole number of compat longs (4 bytes, not 8)."""
    return sys_sched_getaffinity(k, p, pid, size, mask, COMPAT_LONG)


@syscall32("arch_prctl", "xp")
def sys_arch_prctl32(k: Kernel, p: Process, code: int, addr: int) -> int:
    """A 32-bit process has no FS/GS base to set: of the common options, ARCH_GET_CPUID says 1 (cpuid works)."""
    if code & 0xFFFF_FFFF == ARCH_GET_CPUID:
        return 1
    raise SysError(errno.EINVAL)


def uname_fields(count: int, width: int) -> bytes:
    """The first `count` uname fields, each in `width` bytes (at most width - 1 characters, NUL-padded)."""
    return b"".join(os.fsencode(f)[:width - 1].ljust(width, b"\0") for f in utsname_fields()[:count])


@syscall32("olduname", "p")
def sys_olduname(k: Kernel, p: Process, buf: int) -> int:
    """struct old_utsname: uname without the domain name."""
    k.copyout(p, buf, uname_fields(5, UTS_LEN))
    return 0


@syscall32("oldolduname", "p")
def sys_oldolduname(k: Kernel, p: Process, buf: int) -> int:
    """struct oldold_utsname: five fields of 8 characters and a NUL."""
    if not buf:
        raise SysError(errno.EFAULT)
    k.copyout(p, buf, uname_fields(5, OLD_UTS_LEN + 1))
    return 0


# -- identity: the old 16-bit uid and gid calls -------------------------------------------------------

def handler64(name: str):
    """The x86-64 handler of the system call `name`."""
    return TABLE[NUMBERS[name]].handler


def low_id(value: int) -> int:
    """A uid or gid in a 16-bit field: overflowuid (65534) if it does not fit (high2lowuid)."""
    return value if value <= 0xFFFF else OVERFLOW_ID


def high_id(value: int) -> int:
    """A 16-bit uid or gid argument as a 32-bit one: 0xffff, "leave unchanged", stays -1 (low2highuid)."""
    value &= 0xFFFF
    return 0xFFFF_FFFF if value == 0xFFFF else value


@syscall32("getuid")
def sys_getuid16(k: Kernel, p: Process) -> int:
    return low_id(handler64("getuid")(k, p))


@syscall32("geteuid")
def sys_geteuid16(k: Kernel, p: Process) -> int:
    return low_id(handler64("geteuid")(k, p))


@syscall32("getgid")
def sys_getgid16(k: Kernel, p: Process) -> int:
    return low_id(handler64("getgid")(k, p))


@syscall32("getegid")
def sys_getegid16(k: Kernel, p: Process) -> int:
    return low_id(handler64("getegid")(k, p))


@syscall32("setuid", "u")
def sys_setuid16(k: Kernel, p: Process, uid: int) -> int:
    return handler64("setuid")(k, p, high_id(uid))


@syscall32("setgid", "u")
def sys_setgid16(k: Kernel, p: Process, gid: int) -> int:
    return handler64("setgid")(k, p, high_id(gid))


@syscall32("setreuid", "uu")
def sys_setreuid16(k: Kernel, p: Process, ruid: int, euid: int) -> int:
    return handler64("setreuid")(k, p, high_id(ruid), high_id(euid))


@syscall32("setregid", "uu")
def sys_setregid16(k: Kernel, p: Process, rgid: int, egid: int) -> int:
    return handler64("setregid")(k, p, high_id(rgid), high_id(egid))


@syscall32("setresuid", "uuu")
def sys_setresuid16(k: Kernel, p: Process, ruid: int, euid: int, suid: int) -> int:
    return handler64("setresuid")(k, p, high_id(ruid), high_id(euid), high_id(suid))


@syscall32("setresgid", "uuu")
def sys_setresgid16(k: Kernel, p: Process, rgid: int, egid: int, sgid: int) -> int:
    return handler64("setresgid")(k, p, high_id(rgid), high_id(egid), high_id(sgid))


def put_ids16(k: Kernel, p: Process, addrs: tuple[int, int, int], ids: tuple[int, int, int]) -> int:
    """getresuid16/getresgid16: each id as an old_uid_t (65534 if it does not fit)."""
    for addr, value in zip(addrs, ids):
        k.copyout(p, addr, struct.pack("<H", low_id(value)))
    return 0


@syscall32("getresuid", "ppp")
def sys_getresuid16(k: Kernel, p: Process, ruid: int, euid: int, suid: int) -> int:
    return put_ids16(k, p, (ruid, euid, suid), os.getresuid())


@syscall32("getresgid", "ppp")
def sys_getresgid16(k: Kernel, p: Process, rgid: int, egid: int, sgid: int) -> int:
    return put_ids16(k, p, (rgid, egid, sgid), os.getresgid())


@syscall32("getgroups", "dp")
def sys_getgroups16(k: Kernel, p: Process, size: int, groups: int) -> int:
    """The supplementary groups as old_gid_t: their number; EINVAL if size is negative or too small."""
    ids, size = os.getgroups(), signed32(size)
    if size < 0 or 0 < size < len(ids):
        raise SysError(errno.EINVAL)
    if size:
        k.copyout(p, groups, struct.pack(f"<{len(ids)}H", *(low_id(g) for g in ids)))
    return len(ids)


@syscall32("setgroups", "dp")
def sys_setgroups16(k: Kernel, p: Process, size: int, groups: int) -> int:
    """As setgroups: allowed only when it leaves the group list as it is (EPERM otherwise)."""
    size = signed32(size)
    if not 0 <= size <= NGROUPS_MAX:
        raise SysError(errno.EINVAL)
    ids = struct.unpack(f"<{size}H", k.copyin(p, groups, 2 * size)) if size else ()
    if sorted({high_id(g) for g in ids}) != sorted(set(os.getgroups())):
        raise SysError(errno.EPERM)
    return 0


@syscall32("setfsuid", "u")
def sys_setfsuid16(k: Kernel, p: Process, uid: int) -> int:
    return low_id(handler64("setfsuid")(k, p, high_id(uid)))


@syscall32("setfsgid", "u")
def sys_setfsgid16(k: Kernel, p: Process, gid: int) -> int:
    return low_id(handler64("setfsgid")(k, p, high_id(gid)))


@syscall32("chown", "suu")
def sys_chown16(k: Kernel, p: Process, path: int, uid: int, gid: int) -> int:
    return handler64("chown")(k, p, path, high_id(uid), high_id(gid))


@syscall32("lchown", "suu")
def sys_lchown16(k: Kernel, p: Process, path: int, uid: int, gid: int) -> int:
    return handler64("lchown")(k, p, path, high_id(uid), high_id(gid))


@syscall32("fchown", "duu")
def sys_fchown16(k: Kernel, p: Process, fd: int, uid: int, gid: int) -> int:
    return handler64("fchown")(k, p, fd, high_id(uid), high_id(gid))


# -- time ---------------------------------------------------------------------------------------------

@syscall32("time", "p")
def sys_time32(k: Kernel, p: Process, tloc: int) -> int:
    return sys_time(k, p, tloc, TIME32) & 0xFFFF_FFFF


@syscall32("gettimeofday", "pp")
def sys_gettimeofday32(k: Kernel, p: Process, tv: int, tz: int) -> int:
    return sys_gettimeofday(k, p, tv, tz, TIMEVAL32)


@syscall32("settimeofday", "pp")
def sys_settimeofday(k: Kernel, p: Process, tv: int, tz: int) -> int:
    """Setting the clock needs CAP_SYS_TIME, which the guest never has: EPERM, after Linux's checks of
    the arguments (EFAULT, EINVAL for a negative time or microseconds out of range)."""
    if tv:
        sec, usec = TIMEVAL32.unpack(k.copyin(p, tv, TIMEVAL32.size))
        if sec < 0 or not 0 <= usec < 10**6:
            raise SysError(errno.EINVAL)
    if tz:
        k.copyin(p, tz, 8)
    raise SysError(errno.EPERM)


@syscall32("clock_gettime", "dp")
def sys_clock_gettime32(k: Kernel, p: Process, clock: int, tp: int) -> int:
    return sys_clock_gettime(k, p, clock, tp, TIMESPEC32)


@syscall32("clock_getres", "dp")
def sys_clock_getres32(k: Kernel, p: Process, clock: int, tp: int) -> int:
    return sys_clock_getres(k, p, clock, tp, TIMESPEC32)


@syscall32("clock_nanosleep", "dxpp")
def sys_clock_nanosleep32(k: Kernel, p: Process, clock: int, flags: int, req: int, rem: int) -> int:
    return sys_clock_nanosleep(k, p, clock, flags, req, rem, TIMESPEC32)


@syscall32("nanosleep", "pp")
def sys_nanosleep32(k: Kernel, p: Process, req: int, rem: int) -> int:
    return sys_nanosleep(k, p, req, rem, TIMESPEC32)


@syscall32("futex", "pxdppd")
def sys_futex32(k: Kernel, p: Process, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int) -> int:
    """futex with a struct old_timespec32 timeout."""
    return sys_futex(k, p, uaddr, op, val, timeout, uaddr2, val3, TIMESPEC32)


@syscall32("utime", "sp")
def sys_utime32(k: Kernel, p: Process, path: int, buf: int) -> int:
    return sys_utime(k, p, path, buf, UTIMBUF32)


@syscall32("utimes", "sp")
def sys_utimes32(k: Kernel, p: Process, path: int, tvp: int) -> int:
    return sys_utimes(k, p, path, tvp, TIMEVAL32_PAIR)


@syscall32("futimesat", "Fsp")
def sys_futimesat32(k: Kernel, p: Process, dirfd: int, path: int, tvp: int) -> int:
    return sys_futimesat(k, p, dirfd, path, tvp, TIMEVAL32_PAIR)


@syscall32("utimensat", "Fspx")
def sys_utimensat32(k: Kernel, p: Process, dirfd: int, path: int, times: int, flags: int) -> int:
    return sys_utimensat(k, p, dirfd, path, times, flags, TIMESPEC32_PAIR)


@syscall32("ppoll", "puppu")
def sys_ppoll32(k: Kernel, p: Process, fds: int, nfds: int, tsp: int, sigmask: int, sigsetsize: int) -> int:
    return sys_ppoll(k, p, fds, nfds, tsp, sigmask, sigsetsize, TIMESPEC32)


# -- select ---------------------------------------------------------------------------------------------

TIMESPEC64 = struct.Struct("<qq")             # struct __kernel_timespec (pselect6_time64)


@syscall32("_newselect", "dpppp")
def sys_newselect(k: Kernel, p: Process, nfds: int, inp: int, outp: int, exp: int, tvp: int) -> int:
    return do_select(k, p, nfds, (inp, outp, exp), tvp, TIMEVAL32, COMPAT_LONG)


@syscall32("select", "p")
def sys_old_select(k: Kernel, p: Process, args: int) -> int:
    """The old i386 select: one pointer to its five arguments."""
    nfds, inp, outp, exp, tvp = SEL_ARGS32.unpack(k.copyin(p, args, SEL_ARGS32.size))
    return do_select(k, p, nfds, (inp, outp, exp), tvp, TIMEVAL32, COMPAT_LONG)


@syscall32("pselect6", "dppppp")
def sys_pselect6(k: Kernel, p: Process, nfds: int, inp: int, outp: int, exp: int, tsp: int, sig: int) -> int:
    return do_pselect(k, p, nfds, (inp, outp, exp), tsp, sig, TIMESPEC32, SIGSET_ARGPACK32, COMPAT_LONG)


@syscall32("pselect6_time64", "dppppp")
def sys_pselect6_time64(k: Kernel, p: Process, nfds: int, inp: int, outp: int, exp: int, tsp: int, sig: int) -> int:
    return do_pselect(k, p, nfds, (inp, outp, exp), tsp, sig, TIMESPEC64, SIGSET_ARGPACK32, COMPAT_LONG)


# -- files: opening ------------------------------------------------------------------------------------

def refuse_large_file(k: Kernel, p: Process, dirfd: int, path: int, flags: int) -> None:
    """An i386 open is not forced to O_LARGEFILE: without it, opening an existing regular file larger than
    MAX_NON_LFS is EOVERFLOW (Linux's generic_file_open), before anything (O_TRUNC) is done to it."""
    if flags & (O_LARGEFILE | O_PATH):
        return
    try:
        host = host_path(k, p, dirfd, k.copyinstr(p, path), follow=not flags & os.O_NOFOLLOW)
        st = os.stat(host, follow_symlinks=not flags & os.O_NOFOLLOW)
    except (SysError, OSError):
        return                    # the open itself reports what is wrong with the path
    if statmod.S_ISREG(st.st_mode) and st.st_size > MAX_NON_LFS:
        raise SysError(errno.EOVERFLOW)


@syscall32("open", "sfo")
def sys_open32(k: Kernel, p: Process, path: int, flags: int, mode: int) -> int:
    refuse_large_file(k, p, AT_FDCWD, path, flags)
    return sys_open(k, p, path, flags, mode)


@syscall32("openat", "Fsfo")
def sys_openat32(k: Kernel, p: Process, dirfd: int, path: int, flags: int, mode: int) -> int:
    refuse_large_file(k, p, dirfd, path, flags)
    return sys_openat(k, p, dirfd, path, flags, mode)


@syscall32("creat", "so")
def sys_creat32(k: Kernel, p: Process, path: int, mode: int) -> int:
    refuse_large_file(k, p, AT_FDCWD, path, 0)
    return sys_creat(k, p, path, mode)


# -- files: stat ----------------------------------------------------------------------------------------

def encode_dev(dev: int) -> int:
    """A device number in Linux's new_encode_dev format (what stat64 and compat stat report)."""
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def stat_time(st: os.stat_result, which: str) -> tuple[int, int]:
    """(seconds, nanoseconds) of st's atime, mtime or ctime (a synthetic stat_result has whole seconds)."""
    ns = getattr(st, f"st_{which}_ns", None)
    if ns is None:
        ns = int(getattr(st, f"st_{which}")) * 10**9
    return ns // 10**9, ns % 10**9


def stat_times(st: os.stat_result) -> list[int]:
    """atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec, the seconds cut to 32 bits as the kernel does."""
    out = []
    for which in ("atime", "mtime", "ctime"):
        sec, nsec = stat_time(st, which)
        out += [sec & 0xFFFF_FFFF, nsec]
    return out


def pack_stat64(st: os.stat_result) -> bytes:
    """struct stat64 (i386) for a stat result (Linux's cp_stat64)."""
    return STAT64.pack(encode_dev(st.st_dev), st.st_ino & 0xFFFF_FFFF, st.st_mode, st.st_nlink & 0xFFFF_FFFF,
                       st.st_uid, st.st_gid, encode_dev(getattr(st, "st_rdev", 0) or 0), st.st_size,
                       getattr(st, "st_blksize", 4096) or 4096, getattr(st, "st_blocks", 0) or 0,
                       *stat_times(st), st.st_ino)


def pack_stat32(st: os.stat_result) -> bytes:
    """struct compat_stat (i386's struct stat): EOVERFLOW for an inode number, link count or size that does
    not fit (Linux's cp_compat_stat)."""
    if st.st_ino > 0xFFFF_FFFF or st.st_nlink > 0xFFFF or st.st_size > MAX_NON_LFS:
        raise SysError(errno.EOVERFLOW)
    return STAT32.pack(encode_dev(st.st_dev) & 0xFFFF_FFFF, st.st_ino, st.st_mode & 0xFFFF, st.st_nlink,
                       low_id(st.st_uid), low_id(st.st_gid), encode_dev(getattr(st, "st_rdev", 0) or 0) & 0xFFFF_FFFF,
                       st.st_size, getattr(st, "st_blksize", 4096) or 4096,
                       (getattr(st, "st_blocks", 0) or 0) & 0xFFFF_FFFF, *stat_times(st))


def path_stat(k: Kernel, p: Process, dirfd: int, path: int, flags: int) -> os.stat_result:
    """stat of a path for the stat64 family (EINVAL for flags other than Linux's vfs_fstatat accepts)."""
    if flags & 0xFFFF_FFFF & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    return stat_path(k, p, dirfd, path, flags)


@syscall32("stat64", "sp")
def sys_stat64(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat64(path_stat(k, p, AT_FDCWD, path, 0)))
    return 0


@syscall32("lstat64", "sp")
def sys_lstat64(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat64(path_stat(k, p, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)))
    return 0


@syscall32("fstat64", "dp")
def sys_fstat64(k: Kernel, p: Process, fd: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat64(p.files.get(signed32(fd)).stat()))
    return 0


@syscall32("fstatat64", "Fspx")
def sys_fstatat64(k: Kernel, p: Process, dirfd: int, path: int, buf: int, flags: int) -> int:
    k.copyout(p, buf, pack_stat64(path_stat(k, p, dirfd, path, flags)))
    return 0


@syscall32("stat", "sp")
def sys_stat32(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat32(path_stat(k, p, AT_FDCWD, path, 0)))
    return 0


@syscall32("lstat", "sp")
def sys_lstat32(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat32(path_stat(k, p, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)))
    return 0


@syscall32("fstat", "dp")
def sys_fstat32(k: Kernel, p: Process, fd: int, buf: int) -> int:
    k.copyout(p, buf, pack_stat32(p.files.get(signed32(fd)).stat()))
    return 0


# -- files: statfs ---------------------------------------------------------------------------------------

def pack_statfs32(raw: bytes) -> bytes:
    """struct compat_statfs from the x86-64 struct statfs: EOVERFLOW for sizes or counts that do not fit
    32 bits (file counts of -1, "unknown", pass as 0xffffffff), as Linux's put_compat_statfs."""
    ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize, flags = STATFS.unpack(raw)
    if (blocks | bfree | bavail | bsize | frsize) >> 32 or any(n != MASK64 and n >> 32 for n in (files, ffree)):
        raise SysError(errno.EOVERFLOW)
    fields = (ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize, flags)
    return STATFS32.pack(*(v & 0xFFFF_FFFF for v in fields))


def pack_statfs64_32(raw: bytes) -> bytes:
    """struct compat_statfs64 from the x86-64 struct statfs (EOVERFLOW for a block size beyond 32 bits)."""
    ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize, flags = STATFS.unpack(raw)
    if (bsize | frsize) >> 32:
        raise SysError(errno.EOVERFLOW)
    return STATFS64_32.pack(ftype & 0xFFFF_FFFF, bsize, blocks, bfree, bavail, files, ffree, fsid0 & 0xFFFF_FFFF,
                            fsid1 & 0xFFFF_FFFF, namelen & 0xFFFF_FFFF, frsize, flags & 0xFFFF_FFFF)


def statfs64_size(size: int) -> None:
    """statfs64's size argument must be sizeof(struct compat_statfs64)."""
    if size != STATFS64_32.size:
        raise SysError(errno.EINVAL)


@syscall32("statfs", "sp")
def sys_statfs32(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, pack_statfs32(statfs_path(k, p, path)))
    return 0


@syscall32("fstatfs", "dp")
def sys_fstatfs32(k: Kernel, p: Process, fd: int, buf: int) -> int:
    k.copyout(p, buf, pack_statfs32(statfs_fd(k, p, fd)))
    return 0


@syscall32("statfs64", "sup")
def sys_statfs64(k: Kernel, p: Process, path: int, size: int, buf: int) -> int:
    statfs64_size(size)
    k.copyout(p, buf, pack_statfs64_32(statfs_path(k, p, path)))
    return 0


@syscall32("fstatfs64", "dup")
def sys_fstatfs64(k: Kernel, p: Process, fd: int, size: int, buf: int) -> int:
    statfs64_size(size)
    k.copyout(p, buf, pack_statfs64_32(statfs_fd(k, p, fd)))
    return 0


# -- files: 64-bit offsets in two registers --------------------------------------------------------------

@syscall32("_llseek", "duupd")
def sys_llseek(k: Kernel, p: Process, fd: int, high: int, low: int, result: int, whence: int) -> int:
    """lseek to a 64-bit offset given high word first; the new position is stored as a loff_t at result."""
    pos = seek(p.files.get(signed32(fd)), signed(offset64(low, high)), whence & 0xFFFF_FFFF)
    k.copyout(p, result, struct.pack("<q", pos))
    return 0


@syscall32("lseek", "ddd")
def sys_lseek32(k: Kernel, p: Process, fd: int, offset: int, whence: int) -> int:
    """lseek with a 32-bit signed offset (the result is not checked against 32 bits, as Linux's compat lseek)."""
    return seek(p.files.get(signed32(fd)), signed(offset), whence & 0xFFFF_FFFF)


@syscall32("pread64", "dBuxx")
def sys_pread64_32(k: Kernel, p: Process, fd: int, buf: int, count: int, low: int, high: int) -> int:
    return sys_pread64(k, p, fd, buf, count, offset64(low, high))


@syscall32("pwrite64", "dbuxx")
def sys_pwrite64_32(k: Kernel, p: Process, fd: int, buf: int, count: int, low: int, high: int) -> int:
    return sys_pwrite64(k, p, fd, buf, count, offset64(low, high))


@syscall32("truncate64", "sxx")
def sys_truncate64(k: Kernel, p: Process, path: int, low: int, high: int) -> int:
    return sys_truncate(k, p, path, offset64(low, high))


@syscall32("ftruncate64", "dxx")
def sys_ftruncate64(k: Kernel, p: Process, fd: int, low: int, high: int) -> int:
    return sys_ftruncate(k, p, fd, offset64(low, high))


@syscall32("fallocate", "dxxxxx")
def sys_fallocate32(k: Kernel, p: Process, fd: int, mode: int, off_low: int, off_high: int, len_low: int,
                    len_high: int) -> int:
    return sys_fallocate(k, p, fd, mode, offset64(off_low, off_high), offset64(len_low, len_high))


@syscall32("fadvise64", "dxxud")
def sys_fadvise64_32(k: Kernel, p: Process, fd: int, low: int, high: int, length: int, advice: int) -> int:
    """fadvise64 with a 32-bit length."""
    return sys_fadvise64(k, p, fd, offset64(low, high), length, advice)


@syscall32("fadvise64_64", "dxxxxd")
def sys_fadvise64_64(k: Kernel, p: Process, fd: int, off_low: int, off_high: int, len_low: int, len_high: int,
                     advice: int) -> int:
    return sys_fadvise64(k, p, fd, offset64(off_low, off_high), offset64(len_low, len_high), advice)


@syscall32("readahead", "dxxu")
def sys_readahead32(k: Kernel, p: Process, fd: int, low: int, high: int, count: int) -> int:
    return sys_readahead(k, p, fd, offset64(low, high), count)


LIBC.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


@syscall32("sync_file_range", "dxxxxx")
def sys_sync_file_range(k: Kernel, p: Process, fd: int, off_low: int, off_high: int, n_low: int, n_high: int,
                        flags: int) -> int:
    """Write back the file's pages dirtied through shared mappings, then ask the host the same of the range;
    EINVAL for bad flags or a negative or wrapping range, ESPIPE for a pipe (as Linux, in that order)."""
    offset, nbytes = signed(offset64(off_low, off_high)), signed(offset64(n_low, n_high))
    if flags & ~SYNC_FILE_RANGE_FLAGS or offset < 0 or nbytes < 0 or offset + nbytes >= 1 << 63:
        raise SysError(errno.EINVAL)
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        raise SysError(errno.ESPIPE)
    writeback_file(k, f)
    if LIBC.sync_file_range(f.hostfd, offset, nbytes, flags) < 0:
        raise SysError(ctypes.get_errno() or errno.EIO)
    return 0


# -- files: vectors, directories, sendfile ----------------------------------------------------------------

@syscall32("readv", "dpd")
def sys_readv32(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    return read_vectors(k, p, f, iovecs(k, p, iov, iovcnt, 32))


@syscall32("writev", "dpd")
def sys_writev32(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    data = gather(k, p, iovecs(k, p, iov, iovcnt, 32))
    return write_file(k, f, data) if data else 0


@syscall32("preadv", "dpdxx")
def sys_preadv(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, low: int, high: int) -> int:
    """readv at an offset, leaving the file position alone."""
    return preadv_file(k, p, fd, iov, iovcnt, signed(offset64(low, high)), 0, 32)


@syscall32("pwritev", "dpdxx")
def sys_pwritev(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, low: int, high: int) -> int:
    """writev at an offset, leaving the file position alone."""
    return pwritev_file(k, p, fd, iov, iovcnt, signed(offset64(low, high)), 0, 32)


@syscall32("preadv2", "dpdxxx")
def sys_preadv2_32(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, low: int, high: int, flags: int) -> int:
    return preadv_file(k, p, fd, iov, iovcnt, current_or(signed(offset64(low, high))), flags, 32)


@syscall32("pwritev2", "dpdxxx")
def sys_pwritev2_32(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, low: int, high: int, flags: int) -> int:
    return pwritev_file(k, p, fd, iov, iovcnt, current_or(signed(offset64(low, high))), flags, 32)


# Directory positions. Linux gives a 32-bit process 31-bit hash positions in a directory (ext4's
# is_32bit_api), but run-elf reads the host's directories as a 64-bit process and gets 64-bit ones, which
# glibc's readdir on i386 cannot store in its 32-bit d_off (EOVERFLOW). So an i386 process sees each host
# position as a small cookie (its index in the directory's list), and its lseek maps a cookie back.

def dir_cookie(f, position: int) -> int:
    """The cookie an i386 process sees for a directory's host position (0, the start, is itself)."""
    cookies = f.__dict__.setdefault("dir_cookies", {0: 0})
    if position not in cookies:
        cookies[position] = len(cookies)
        f.__dict__.setdefault("dir_positions", [0]).append(position)
    return cookies[position]


def seek(f, offset: int, whence: int) -> int:
    """lseek for an i386 process: in a directory it has read, a position is a cookie (see dir_cookie)."""
    positions = f.__dict__.get("dir_positions")
    if positions is None:
        return f.lseek(offset, whence)
    if whence == os.SEEK_SET and 0 < offset < len(positions):
        offset = positions[offset]
    return dir_cookie(f, f.lseek(offset, whence))


def dirents(k: Kernel, p: Process, fd: int, count: int) -> tuple[object, bytes]:
    """(the file, up to count bytes of its linux_dirent64 records) with each d_off a cookie (see dir_cookie)."""
    f = p.files.get(signed32(fd))
    data = bytearray(dirents64(k, p, fd, count))
    pos = 0
    while pos < len(data):
        _ino, off, reclen, _dtype = DIRENT64_HEAD.unpack_from(data, pos)
        struct.pack_into("<q", data, pos + 8, dir_cookie(f, off))
        pos += reclen
    return f, bytes(data)


@syscall32("getdents64", "dpu")
def sys_getdents64_32(k: Kernel, p: Process, fd: int, dirp: int, count: int) -> int:
    """The host's linux_dirent64 records, positions as cookies that fit a 32-bit off_t."""
    _f, data = dirents(k, p, fd, count)
    k.copyout(p, dirp, data)
    return len(data)


@syscall32("getdents", "dpu")
def sys_getdents(k: Kernel, p: Process, fd: int, dirp: int, count: int) -> int:
    """The directory's entries as struct compat_linux_dirent records (d_type in each record's last byte),
    converted from linux_dirent64 ones. An inode number beyond 32 bits ends the batch, or is EOVERFLOW
    if it comes first; entries not returned are left for the next call."""
    f = p.files.get(signed32(fd))
    start = seek(f, 0, os.SEEK_CUR) if isinstance(f, HostFile) else 0
    f, data = dirents(k, p, fd, count)
    out = bytearray()
    pos, resume = 0, start
    while pos < len(data):
        ino, off, reclen, dtype = DIRENT64_HEAD.unpack_from(data, pos)
        name = data[pos + DIRENT64_HEAD.size:pos + reclen].split(b"\0", 1)[0]
        size = (DIRENT32_HEAD.size + len(name) + 2 + COMPAT_LONG - 1) & ~(COMPAT_LONG - 1)
        if ino >> 32 or len(out) + size > count:
            if not out:
                seek(f, start, os.SEEK_SET)
                raise SysError(errno.EOVERFLOW if ino >> 32 else errno.EINVAL)
            break
        record = DIRENT32_HEAD.pack(ino, off, size) + name
        out += record.ljust(size - 1, b"\0") + bytes([dtype])
        pos += reclen
        resume = off
    if pos < len(data):
        seek(f, resume, os.SEEK_SET)
    k.copyout(p, dirp, bytes(out))
    return len(out)


@syscall32("sendfile", "ddpu")
def sys_sendfile32(k: Kernel, p: Process, out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """sendfile with a compat_off_t offset: a copy from an offset may not reach past 2 GiB (EOVERFLOW at it)."""
    if offset:
        pos = OFF32.unpack(k.copyin(p, offset, OFF32.size))[0]
        if pos >= 0 and pos + count > MAX_NON_LFS:
            if pos >= MAX_NON_LFS:
                raise SysError(errno.EOVERFLOW)
            count = MAX_NON_LFS - pos
    return sys_sendfile(k, p, out_fd, in_fd, offset, count, OFF32)


# -- sockets ---------------------------------------------------------------------------------------------

# socketcall's sub-calls: number -> (the x86-64 call that serves it, how many arguments it reads).
SOCKETCALLS = {1: ("socket", 3), 2: ("bind", 3), 3: ("connect", 3), 4: ("listen", 2), 5: ("accept", 3),
               6: ("getsockname", 3), 7: ("getpeername", 3), 8: ("socketpair", 4), 9: ("send", 4),
               10: ("recv", 4), 11: ("sendto", 6), 12: ("recvfrom", 6), 13: ("shutdown", 2),
               14: ("setsockopt", 5), 15: ("getsockopt", 5), 16: ("sendmsg", 3), 17: ("recvmsg", 3),
               18: ("accept4", 4), 19: ("recvmmsg", 5), 20: ("sendmmsg", 4)}


@syscall32("socketcall", "dp")
def sys_socketcall(k: Kernel, p: Process, call: int, args: int) -> int:
    """i386's one entry to the socket calls: the sub-call's arguments are 32-bit words at args, and it is
    served as the x86-64 call of that name (send and recv as sendto and recvfrom without an address)."""
    name, count = SOCKETCALLS.get(signed32(call), (None, 0))
    if name is None:
        raise SysError(errno.EINVAL)
    values = list(struct.unpack(f"<{count}I", k.copyin(p, args, 4 * count)))
    if name in ("send", "recv"):
        name, values = ("sendto" if name == "send" else "recvfrom"), values + [0, 0]
    entry = TABLE[NUMBERS[name]]
    return entry.handler(k, p, *widen32(values, entry.args))


share_handlers()
