"""Signal delivery: the rt_sigframe a handler runs on, and rt_sigreturn that comes back from it.

As Linux's arch/x86/kernel/signal.c: below the interrupted stack pointer (past the 128-byte red
zone) go the siginfo, a ucontext whose sigcontext holds the interrupted registers and signal mask,
and the return address `sa_restorer` (which calls rt_sigreturn). The handler starts with RDI = the
signal, RSI = &siginfo, RDX = &ucontext. rt_sigreturn reloads the registers from that sigcontext, so
a handler may change them. The FPU/SSE state is kept by the kernel instead of in the frame (fpstate
is NULL): each delivery saves the CPU context, and rt_sigreturn restores it under the frame's values.

A process asleep in a system call when a handled signal arrives is woken; its call then returns
EINTR, or is restarted after the handler when the action has SA_RESTART (never for sigsuspend).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from osmodel.files import Block, SysError
from osmodel.process import SIG_DFL, SIG_IGN
from osmodel.signals import IGNORED_BY_DEFAULT, SIGKILL, SIGSTOP
from osmodel.syscall import syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

SA_SIGINFO = 0x00000004
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
SI_USER = 0
SI_KERNEL = 0x80
RED_ZONE = 128
SIGINFO_SIZE = 128
SIGACTION = struct.Struct("<QQQQ")                    # handler, flags, restorer, mask
GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
         "rcx", "rsp", "rip", "rflags")
SIGCONTEXT = struct.Struct("<18QHHHHQQQQQ8Q")          # gregs, cs gs fs ss, err trapno oldmask cr2 fpstate, reserved
UCONTEXT_HEAD = struct.Struct("<QQQi4xQ")              # uc_flags, uc_link, stack_t (ss_sp, ss_flags, ss_size)
UCONTEXT_SIZE = UCONTEXT_HEAD.size + SIGCONTEXT.size + 8   # + uc_sigmask
FRAME_SIZE = 8 + UCONTEXT_SIZE + SIGINFO_SIZE
USER_FLAGS = 0x0CD5                                    # CF PF AF ZF SF TF DF OF: what sigreturn may change
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
MAX_NESTED = 64
INTERRUPTED_ONLY = ("rt_sigsuspend", "pause", "nanosleep", "clock_nanosleep")   # never restarted (Linux
                                                       # restarts sleeps with the time left; we return EINTR)


def bit(sig: int) -> int:
    """The mask bit of a signal."""
    return 1 << (sig - 1)


def next_signal(proc: Process) -> int:
    """The lowest-numbered pending signal that is not blocked, or 0."""
    ready = proc.pending & ~proc.sigmask
    if not ready:
        return 0
    return (ready & -ready).bit_length()


def siginfo(sig: int, code: int = SI_USER, pid: int = 0, uid: int = 0, addr: int | None = None,
            status: int | None = None) -> bytes:
    """A siginfo_t: kill-style (pid, uid), fault-style (addr) or SIGCHLD-style (pid, uid, status)."""
    head = struct.pack("<iii4x", sig, 0, code)
    if addr is not None:
        body = struct.pack("<Q", addr)
    elif status is not None:
        body = struct.pack("<iIi4xqq", pid, uid, status, 0, 0)
    else:
        body = struct.pack("<iI", pid, uid)
    return (head + body).ljust(SIGINFO_SIZE, b"\0")


def deliver(k: Kernel, proc: Process) -> None:
    """Run the handler of proc's next deliverable signal (the current process, outside any hook):
    build its frame on the user stack and point the registers at the handler. Default actions and
    ignored signals are taken here too. A frame that cannot be written kills with SIGSEGV."""
    while True:
        sig = next_signal(proc)
        if not sig:
            return
        proc.pending &= ~bit(sig)
        info = proc.siginfo.pop(sig, None) or siginfo(sig)
        handler, flags, restorer, mask = SIGACTION.unpack(proc.sigactions.get(sig, bytes(SIGACTION.size)))
        if handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT):
            continue
        if handler == SIG_DFL:
            k.terminate(proc, sig)
            return
        if push_frame(k, proc, sig, handler, flags, restorer, info):
            proc.sigmask |= (mask & ~UNBLOCKABLE) | (0 if flags & SA_NODEFER else bit(sig))
            if flags & SA_RESETHAND:
                proc.sigactions.pop(sig, None)
        return


def push_frame(k: Kernel, proc: Process, sig: int, handler: int, flags: int, restorer: int, info: bytes) -> bool:
    """Write the rt_sigframe and enter the handler; False (and the process killed) if it cannot."""
    cpu = k.cpu
    regs = {name: cpu.reg(name) for name in GREGS}
    if proc.interrupted_call:
        # Asleep in a system call (RIP at the syscall, RAX still its number): restart it after the
        # handler, or return EINTR from it.
        if not (flags & SA_RESTART) or proc.interrupted_call in INTERRUPTED_ONLY:
            regs["rax"] = -errno.EINTR & 0xFFFF_FFFF_FFFF_FFFF
            regs["rip"] += 2
            proc.wake_at = 0.0                # an interrupted nanosleep starts afresh next time
        proc.interrupted_call = ""
    old_mask = proc.saved_sigmask if proc.saved_sigmask is not None else proc.sigmask
    proc.saved_sigmask = None
    frame = ((regs["rsp"] - RED_ZONE - FRAME_SIZE) & ~0xF) - 8
    uc_addr = frame + 8
    info_addr = uc_addr + UCONTEXT_SIZE
    sigcontext = SIGCONTEXT.pack(*(regs[n] for n in GREGS), 0x33, 0, 0, 0x2B, 0, 0, old_mask, 0, 0,
                                 *([0] * 8))
    ucontext = UCONTEXT_HEAD.pack(0, 0, 0, 2, 0) + sigcontext + struct.pack("<Q", old_mask)
    if not flags & SA_RESTORER or len(proc.signal_contexts) >= MAX_NESTED:
        k.terminate(proc, 11)
        return False
    try:
        k.copyout(proc, frame, struct.pack("<Q", restorer) + ucontext + info)
    except Exception:                       # no room for the frame: Linux forces SIGSEGV
        k.terminate(proc, 11)
        return False
    proc.signal_contexts.append((frame, cpu.uc.context_save()))
    cpu.set_reg("rsp", frame)
    cpu.set_reg("rip", handler)
    cpu.set_reg("rdi", sig)
    cpu.set_reg("rsi", info_addr)
    cpu.set_reg("rdx", uc_addr)
    cpu.set_reg("rax", 0)
    cpu.set_reg("rflags", regs["rflags"] & ~0x100 & ~0x400)   # TF and DF cleared for the handler
    k.signals_delivered += 1
    return True


@syscall("rt_sigreturn")
def sys_rt_sigreturn(k: Kernel, p: Process) -> int:
    """Back from a handler: registers and signal mask from the frame's ucontext, FPU state as saved."""
    cpu = k.cpu
    frame = cpu.reg("rsp") - 8               # the handler's `ret` popped the return address
    raw = k.copyin(p, frame + 8, UCONTEXT_SIZE)
    values = SIGCONTEXT.unpack_from(raw, UCONTEXT_HEAD.size)
    (mask,) = struct.unpack_from("<Q", raw, UCONTEXT_HEAD.size + SIGCONTEXT.size)
    while p.signal_contexts and p.signal_contexts[-1][0] < frame:
        p.signal_contexts.pop()              # frames abandoned by a longjmp out of a handler
    if p.signal_contexts and p.signal_contexts[-1][0] == frame:
        cpu.load_context(p.signal_contexts.pop()[1])
    regs = dict(zip(GREGS, values[:len(GREGS)]))
    flags = (cpu.reg("rflags") & ~USER_FLAGS) | (regs.pop("rflags") & USER_FLAGS)
    rip = regs.pop("rip")
    for name, value in regs.items():
        cpu.set_reg(name, value)
    cpu.set_reg("rflags", flags)
    p.sigmask = mask & ~UNBLOCKABLE
    p.resume_rip = rip
    cpu.stop()
    return 0


def suspend(k: Kernel, p: Process, mask: int) -> int:
    """Sleep with `mask` as the signal mask until a handled signal is delivered, then EINTR (the
    handler's frame carries the mask from before, which rt_sigreturn puts back)."""
    if p.saved_sigmask is None:
        p.saved_sigmask = p.sigmask
    p.sigmask = mask & ~UNBLOCKABLE
    if next_signal(p):
        raise SysError(errno.EINTR)
    raise Block(("signal", p.pid))


@syscall("pause")
def sys_pause(k: Kernel, p: Process) -> int:
    """Sleep until a signal is delivered."""
    return suspend(k, p, p.sigmask)


@syscall("rt_sigsuspend", "pu")
def sys_rt_sigsuspend(k: Kernel, p: Process, mask: int, size: int) -> int:
    """Sleep with *mask as the signal mask until a signal is delivered."""
    if size != 8:
        raise SysError(errno.EINVAL)
    return suspend(k, p, struct.unpack("<Q", k.copyin(p, mask, 8))[0])


__all__ = ["deliver", "next_signal", "siginfo", "bit"]
