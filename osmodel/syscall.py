"""System-call entry: the tables, the dispatch from the CPU's `syscall` and `int 0x80` hooks, and --strace output.

Handlers live by subject in sysfile.py, sysmem.py and sysproc.py and register themselves
with @syscall(name, argument-kinds). A handler returns the result or raises SysError; a bad
user pointer (Segv while copying) becomes -EFAULT. A number nobody registered returns
-ENOSYS, visible with --strace.

There are two ABIs, as on an x86-64 Linux kernel: `syscall` with the x86-64 numbers and
RDI, RSI, RDX, R10, R8, R9, and `int 0x80` with the i386 numbers and EBX, ECX, EDX, ESI,
EDI, EBP (osmodel/sys32.py builds that table; a handler whose structures differ on i386
registers its own there with @syscall32).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable


from osmodel.fault import Segv
from osmodel.files import Block, SysError
from osmodel.signals import SIGPIPE
from osmodel.sysnames import NAMES, NAMES_32, NUMBERS, NUMBERS_32
from vm.ram import OutOfMemory

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

MASK64 = (1 << 64) - 1
AT_FDCWD = -100


@dataclass(frozen=True)
class Syscall:
    """One entry of the table: number, name, handler and how --strace shows its arguments.

    Argument kinds, one letter each: d signed, u unsigned, x hex, p pointer, s string,
    b buffer written by the caller (length in the next argument), B buffer filled by the
    call (length = result), F descriptor or AT_FDCWD, o octal, f open flags.
    """
    nr: int
    name: str
    handler: Callable[..., int]
    args: str


TABLE: dict[int, Syscall] = {}
TABLE_32: dict[int, Syscall] = {}


@dataclass(frozen=True)
class Abi:
    """A system-call convention: its table, its numbering, and how the CPU enters it."""
    name: str
    bits: int                     # the width of its registers and pointers
    table: dict[int, Syscall]
    names: dict[int, str]
    rip_past: int                 # how far RIP is past the system-call instruction when the hook runs
                                  # (0: Unicorn's syscall hook runs before it; 2: int 0x80 has completed)


def syscall(name: str, args: str = ""):
    """Register a handler for the system call `name`."""
    def register(fn: Callable[..., int]) -> Callable[..., int]:
        nr = NUMBERS[name]
        TABLE[nr] = Syscall(nr, name, fn, args)
        return fn
    return register


def syscall32(name: str, args: str = ""):
    """Register a handler for the i386 system call `name` (its own number; int 0x80)."""
    def register(fn: Callable[..., int]) -> Callable[..., int]:
        nr = NUMBERS_32[name]
        TABLE_32[nr] = Syscall(nr, name, fn, args)
        return fn
    return register


ABI_64 = Abi("x86-64", 64, TABLE, NAMES, 0)
ABI_32 = Abi("i386", 32, TABLE_32, NAMES_32, 2)


def widen32(args: list[int], kinds: str) -> list[int]:
    """i386 arguments as the 64-bit handlers expect them: signed ones ('d', 'F') sign-extended from 32
    bits, the rest (pointers, sizes, flags) zero-extended, as Linux's compat entry points widen them."""
    out = []
    for i, a in enumerate(args):
        if i < len(kinds) and kinds[i] in "dF" and a & 0x8000_0000:
            a |= 0xFFFF_FFFF_0000_0000
        out.append(a)
    return out


def signed(value: int) -> int:
    """A 64-bit register value as a signed integer."""
    return value - (1 << 64) if value & (1 << 63) else value


def signed32(value: int) -> int:
    """The low 32 bits of a register as a signed int (C int arguments)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & (1 << 31) else value


def dispatch(kernel: Kernel, proc: Process, abi: Abi = ABI_64) -> None:
    """Run the system call the current process asked for (of the given ABI) and put the result in RAX."""
    cpu = kernel.cpu
    rip = kernel.syscall_rip = cpu.reg("rip") - abi.rip_past      # the system-call instruction
    nr, *args = cpu.syscall_args(abi.bits)            # i386: 32-bit registers, read zero-extended
    entry = abi.table.get(nr)
    if abi.bits == 32:
        args = widen32(args, entry.args if entry else "")
    name = entry.name if entry else abi.names.get(nr, f"syscall_{nr:#x}")
    kernel.doing = f"handling system call {name}"
    proc.interrupted_call = ""
    strace = kernel.config.strace
    shown = format_args(kernel, proc, entry, args) if strace and entry else ""
    sigpipe = True                    # an EPIPE raises SIGPIPE, unless the call said not to (MSG_NOSIGNAL)
    if entry is None:
        ret = -errno.ENOSYS
    else:
        try:
            ret = entry.handler(kernel, proc, *args[:len(entry.args)])
        except Block as block:
            # Sleep, then run the same system call again from the start (RAX still holds its number).
            if strace:
                print(f"{prefix(kernel, proc)}{name}({shown}) <blocks>", file=strace, flush=True)
            kernel.doing = ""
            proc.resume_rip = rip
            proc.interrupted_call = name
            kernel.sleep(proc, block.channel, name)
            return
        except SysError as err:
            ret = -err.errno
            sigpipe = not getattr(err, "nosignal", False)
        except Segv:
            ret = -errno.EFAULT
        except OutOfMemory:
            ret = -errno.ENOMEM
        except OSError as err:
            ret = -(err.errno or errno.EIO)
    if ret == -errno.EPIPE and sigpipe:
        kernel.signal(proc, SIGPIPE)
    if strace:
        if entry is None:
            shown = ", ".join(f"{a:#x}" for a in args)
        print(f"{prefix(kernel, proc)}{name}({shown}) = {format_result(kernel, proc, entry, args, ret)}",
              file=strace, flush=True)
    kernel.doing = ""
    if not proc.alive or proc.resume_rip is not None:
        return
    kernel.cpu.set_reg("rax", ret)
    if not proc.runnable or sigframe.deliverable(proc):
        # The call completed but left the caller asleep (vfork's parent), or with a signal to deliver
        # on the way back to user mode: resume after it, through the scheduler.
        proc.resume_rip = rip + 2
        kernel.cpu.stop()


def prefix(kernel: Kernel, proc: Process) -> str:
    """'[pid N] ' once there is more than one process, as strace -f."""
    return f"[pid {proc.pid}] " if len(kernel.processes) > 1 else ""


def quote(data: bytes, limit: int = 32) -> str:
    """Bytes as strace shows a string: C escapes, cut at limit with '...'."""
    out = []
    for b in data[:limit]:
        c = chr(b)
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c in "\"\\":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:o}")
    return '"' + "".join(out) + '"' + ("..." if len(data) > limit else "")


OPEN_FLAGS = [(os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_CREAT, "O_CREAT"), (os.O_EXCL, "O_EXCL"),
              (os.O_NOCTTY, "O_NOCTTY"), (os.O_TRUNC, "O_TRUNC"), (os.O_APPEND, "O_APPEND"),
              (os.O_NONBLOCK, "O_NONBLOCK"), (os.O_DIRECTORY, "O_DIRECTORY"), (os.O_NOFOLLOW, "O_NOFOLLOW"),
              (os.O_CLOEXEC, "O_CLOEXEC"), (getattr(os, "O_PATH", 0o10000000), "O_PATH")]


def open_flags(flags: int) -> str:
    """Open flags as strace shows them: 'O_RDONLY|O_CLOEXEC'."""
    names = [n for bit, n in OPEN_FLAGS if bit and flags & bit and n not in ("O_WRONLY", "O_RDWR")]
    mode = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(flags & 3, "O_ACCMODE")
    return "|".join([mode] + names)


def format_args(kernel: Kernel, proc: Process, entry: Syscall, args: list[int]) -> str:
    """The arguments as strace shows them before the call (output buffers are shown after)."""
    shown = []
    for i, kind in enumerate(entry.args):
        a = args[i]
        if kind == "d":
            shown.append(str(signed(a)))
        elif kind == "F":
            fd = signed32(a)
            shown.append("AT_FDCWD" if fd == AT_FDCWD else str(fd))
        elif kind == "u":
            shown.append(str(a))
        elif kind == "o":
            shown.append(f"{a:#o}")
        elif kind == "f":
            shown.append(open_flags(a))
        elif kind == "s":
            try:
                shown.append(quote(kernel.copyinstr(proc, a, 4096), 64) if a else "NULL")
            except Segv:
                shown.append(f"{a:#x}")
        elif kind == "b":
            try:
                shown.append(quote(kernel.copyin(proc, a, min(args[i + 1], 32)) + (b" " if args[i + 1] > 32 else b""))
                             if args[i + 1] else '""')
            except Segv:
                shown.append(f"{a:#x}")
        elif kind in "pB":
            shown.append(f"{a:#x}" if a else "NULL")
        else:
            shown.append(f"{a:#x}")
    return ", ".join(shown)


def format_result(kernel: Kernel, proc: Process, entry: Syscall | None, args: list[int], ret: int) -> str:
    """The result as strace shows it: '13', '0x7f...' or '-1 ENOENT (No such file or directory)'."""
    if not proc.alive and entry is not None and entry.name in ("exit", "exit_group"):
        return "?"
    if -4096 < ret < 0:
        code = -ret
        return f"-1 {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
    if entry is not None and entry.name in ("mmap", "brk"):
        return f"{ret:#x}"
    return str(ret)


# The handlers register themselves on import.
from osmodel import sigframe, sysfile, sysfs, syslock, sysmem, sysmisc, sysnotify, syspoll, sysproc, syssignalfd, syssock, systime  # noqa: E402,F401
from osmodel import sys32  # noqa: E402,F401  (after the others: it shares their handlers)
