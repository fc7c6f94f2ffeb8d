"""Signals in user space: the frame a handler runs on, the sigreturn that comes back from it, the
signal actions, the alternate signal stack and the old i386 mask calls, for both ABIs.

An x86-64 handler gets Linux's rt_sigframe (arch/x86/kernel/signal_64.c): below the interrupted
stack pointer (past the 128-byte red zone) the return address `sa_restorer` (which calls
rt_sigreturn), a ucontext whose sigcontext holds the interrupted registers and signal mask, and
the siginfo; it starts with RDI = the signal, RSI = &siginfo, RDX = &ucontext.

A 32-bit process's handler gets the frame an x86-64 kernel builds for ia32 tasks
(arch/x86/kernel/signal_32.c), aligned so that ((ESP + 4) & 15) == 0 at entry: a handler without
SA_SIGINFO a `sigframe_ia32` (return address, signal, sigcontext_32; it returns through sigreturn),
one with SA_SIGINFO an `rt_sigframe_ia32` (return address, signal, &info, &uc, a compat_siginfo_t
and a ucontext_ia32; rt_sigreturn). The arguments are on the stack, and in EAX, EDX and ECX for
-mregparm=3 handlers. The return address is sa_restorer, or without SA_RESTORER the frame's own
`retcode` (the sigreturn call), as Linux sets it for a process without a vDSO. Siginfo is kept
in the x86-64 layout and converted when it reaches a 32-bit process (copy_siginfo_to_user32).

sigreturn reloads the general registers from the frame, so a handler may change them. The FPU/SSE
state is kept by the kernel instead of in the frame (fpstate is NULL): each delivery saves the CPU
context, and sigreturn restores it under the frame's values.

With SA_ONSTACK and an alternate stack set by sigaltstack, the frame goes at the alternate stack's
top unless the process already runs on it; a frame that would leave it kills with SIGSEGV.

Pending signals are kept as Linux keeps them: each thread has its own set (tkill, tgkill and
rt_tgsigqueueinfo, SIGEV_THREAD_ID timers, faults) and its thread group a shared one on the leader's
record (kill, sigqueue, alarm and the other timers, SIGCHLD: see Kernel.signal_group). A thread takes
what it does not block from its own set first, then from the shared one; so do sigtimedwait and
signalfd reads, and sigpending reports both. A standard signal (1..31) pends once, a second send
while it pends being lost; a realtime one (SIGRTMIN..64) queues an instance with its own siginfo per
send, up to RLIMIT_SIGPENDING, and is taken oldest first (add_pending, dequeue).

A process asleep in a system call when a handled signal arrives is woken; its call then returns
EINTR, or is restarted after the handler when the action has SA_RESTART (never for the sleeps of
INTERRUPTED_ONLY). `syscall` and `int 0x80` are both 2 bytes long, so both restart alike.
"""

from __future__ import annotations

import errno
import struct
import time
from typing import TYPE_CHECKING, Iterable

from osmodel.fault import Segv
from osmodel.files import Block, SysError
from osmodel.process import SIG_DFL, SIG_IGN, SLEEPING
from osmodel.signals import IGNORED_BY_DEFAULT, SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGKILL, SIGSEGV, SIGSTOP, SIGTRAP
from osmodel.syscall import signed32, syscall, syscall32

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_EXPOSE_TAGBITS = 0x00000800
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
UAPI_SA_FLAGS = (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_EXPOSE_TAGBITS | SA_RESTORER | SA_ONSTACK
                 | SA_RESTART | SA_NODEFER | SA_RESETHAND)   # the flags an action keeps (others read back as 0)
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SI_USER = 0
SI_KERNEL = 0x80
CLD_EXITED, CLD_KILLED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 5, 6     # SIGCHLD's si_code
SI_TIMER = -2
SI_SIGIO = -5
SI_TKILL = -6
FPE_INTDIV = 1
BUS_ADRALN = 1
SIGSYS = 31
SIGPOLL = 29
NSIG = 64
SIGRTMIN = 32                                          # the first realtime signal: each send queues one
SIGSET_SIZE = 8
SIGINFO_SIZE = 128
RED_ZONE = 128
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
NO_ALTSTACK = (0, 0, SS_DISABLE)
USER_FLAGS = 0x0CD5                                    # CF PF AF ZF SF TF DF OF: what sigreturn may change
EFLAGS_TF, EFLAGS_DF = 0x100, 0x400
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
MAX_NESTED = 64                                        # saved CPU contexts kept per process
MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
# The calls a handled signal always ends with EINTR, even under SA_RESTART (Linux's ERESTARTNOHAND and
# ERESTART_RESTARTBLOCK: sigsuspend, pause, the sleeps, and the waits for descriptors).
INTERRUPTED_ONLY = frozenset({
    "rt_sigsuspend", "sigsuspend", "pause", "nanosleep", "clock_nanosleep", "clock_nanosleep_time64",
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "rt_sigtimedwait", "rt_sigtimedwait_time64"})

# -- x86-64 structures
SIGACTION = struct.Struct("<QQQQ")                     # struct sigaction (kernel's): handler, flags, restorer, mask
STACK_T = struct.Struct("<Qi4xQ")                      # stack_t: ss_sp, ss_flags, ss_size
GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
         "rcx", "rsp", "rip", "rflags")
SIGCONTEXT = struct.Struct("<18QHHHHQQQQQ8Q")          # struct sigcontext_64: gregs, cs gs fs ss, err trapno
                                                       # oldmask cr2 fpstate, reserved
UCONTEXT_HEAD = struct.Struct("<QQ" + STACK_T.format[1:])   # struct ucontext: uc_flags, uc_link, uc_stack
UCONTEXT_SIZE = UCONTEXT_HEAD.size + SIGCONTEXT.size + 8   # + uc_sigmask
FRAME_SIZE = 8 + UCONTEXT_SIZE + SIGINFO_SIZE          # struct rt_sigframe: pretcode, uc, info
USER_CS, USER_DS = 0x33, 0x2B

# -- i386 structures (compat)
SIGACTION_32 = struct.Struct("<IIIQ")                  # struct compat_sigaction: handler, flags, restorer, mask
OLD_SIGACTION_32 = struct.Struct("<IIII")              # struct compat_old_sigaction: handler, mask, flags, restorer
STACK_T_32 = struct.Struct("<IiI")                     # compat_stack_t: ss_sp, ss_flags, ss_size
GREGS_32 = ("rdi", "rsi", "rbp", "rsp", "rbx", "rdx", "rcx", "rax")
SEGMENTS_32 = ("gs", "fs", "es", "ds")
SIGCONTEXT_32 = struct.Struct("<4I8I3I4I3I")          # struct sigcontext_32: gs fs es ds, di si bp sp bx dx cx
                                                       # ax, trapno err ip, cs, flags, sp_at_signal, ss,
                                                       # fpstate oldmask cr2
FPSTATE_32_SIZE = 624                                  # struct _fpstate_32 (fpstate_unused in sigframe_ia32)
UCONTEXT_32_HEAD = struct.Struct("<II" + STACK_T_32.format[1:])   # struct ucontext_ia32: uc_flags, uc_link,
UCONTEXT_32_SIZE = UCONTEXT_32_HEAD.size + SIGCONTEXT_32.size + 8  # uc_stack, uc_mcontext, uc_sigmask
RETCODE = struct.Struct("<HIH")                        # popl %eax; movl $__NR_sigreturn, %eax; int $0x80
RT_RETCODE = struct.Struct("<BIHx")                    # movl $__NR_rt_sigreturn, %eax; int $0x80
RETCODE_SIZE = 8
# struct sigframe_ia32: pretcode, sig, sc, fpstate_unused, extramask, retcode
SC_OFFSET_32 = 8
EXTRAMASK_OFFSET_32 = SC_OFFSET_32 + SIGCONTEXT_32.size + FPSTATE_32_SIZE
RETCODE_OFFSET_32 = EXTRAMASK_OFFSET_32 + 4
SIGFRAME_32_SIZE = RETCODE_OFFSET_32 + RETCODE_SIZE
# struct rt_sigframe_ia32: pretcode, sig, pinfo, puc, info, uc, retcode
INFO_OFFSET_32 = 16
UC_OFFSET_32 = INFO_OFFSET_32 + SIGINFO_SIZE
RT_RETCODE_OFFSET_32 = UC_OFFSET_32 + UCONTEXT_32_SIZE
RT_SIGFRAME_32_SIZE = RT_RETCODE_OFFSET_32 + RETCODE_SIZE
NR_SIGRETURN_32, NR_RT_SIGRETURN_32 = 119, 173

# siginfo_t's union, by layout (Linux's siginfo_layout): the x86-64 format and its compat one.
# Both follow si_signo, si_errno, si_code: at offset 16 on x86-64 (aligned for its pointers), 12 on i386.
SIGINFO_HEAD = struct.Struct("<iii")
UNION_64 = 16
SIGINFO_UNION = {
    "kill": (struct.Struct("<iI"), struct.Struct("<iI")),                   # pid, uid
    "timer": (struct.Struct("<iiQ"), struct.Struct("<iiI")),                # tid, overrun, sigval
    "rt": (struct.Struct("<iIQ"), struct.Struct("<iII")),                   # pid, uid, sigval
    "chld": (struct.Struct("<iIi4xqq"), struct.Struct("<iIiii")),           # pid, uid, status, utime, stime
    "fault": (struct.Struct("<Q"), struct.Struct("<I")),                    # addr
    "poll": (struct.Struct("<qi"), struct.Struct("<ii")),                   # band, fd
    "sys": (struct.Struct("<QiI"), struct.Struct("<IiI")),                  # call_addr, syscall, arch
}
# The si_codes above zero each signal has, and the layout they use (Linux's sig_sicodes).
SICODES = {SIGILL: (11, "fault"), SIGFPE: (15, "fault"), SIGSEGV: (10, "fault"), SIGBUS: (5, "fault"),
           SIGTRAP: (6, "fault"), SIGCHLD: (6, "chld"), SIGPOLL: (6, "poll"), SIGSYS: (2, "sys")}
NSIGPOLL = 6


def bit(sig: int) -> int:
    """The mask bit of a signal."""
    return 1 << (sig - 1)


def shared(proc: Process) -> Process:
    """The record that holds proc's thread group's shared pending set (its leader's)."""
    return proc.leader or proc


def pending_signals(proc: Process) -> int:
    """The signals pending for thread proc: its own and its thread group's shared ones."""
    return proc.pending | shared(proc).shared_pending


def deliverable(proc: Process) -> int:
    """The pending signals proc does not block (nonzero: deliver on the way back to user mode)."""
    return (proc.pending | shared(proc).shared_pending) & ~proc.sigmask


def next_signal(proc: Process) -> int:
    """The signal proc delivers next: the lowest of its own pending ones it does not block, else the
    lowest of its group's shared ones (Linux's dequeue_signal order), or 0."""
    return first_of(proc, ~proc.sigmask)


def first_of(proc: Process, wanted: int) -> int:
    """The lowest signal of `wanted` in proc's own pending set, else in its group's shared one, or 0."""
    ready = proc.pending & wanted or shared(proc).shared_pending & wanted
    return (ready & -ready).bit_length()


def add_pending(proc: Process, sig: int, info: bytes, room: bool, group: bool = False) -> None:
    """Make sig pending for thread proc (with `group`, in its thread group's shared set) with its siginfo:
    a standard signal already pending stays one instance (this one is lost, Linux's legacy_queue); a
    realtime one queues one more instance, or without `room` (RLIMIT_SIGPENDING reached) only sets the
    bit, its siginfo lost (Linux's TRACE_SIGNAL_LOSE_INFO)."""
    holder = shared(proc) if group else proc
    infos = holder.shared_siginfo if group else holder.siginfo
    pending = holder.shared_pending if group else holder.pending
    if pending & bit(sig) and sig < SIGRTMIN:
        return
    if group:
        holder.shared_pending |= bit(sig)
    else:
        holder.pending |= bit(sig)
    if room or sig < SIGRTMIN:
        infos.setdefault(sig, []).append(info)


def dequeue(proc: Process, sig: int) -> bytes:
    """Take the oldest instance of pending sig from proc's own set if there, else from its group's shared
    one: its siginfo_t. The signal stays pending while instances remain (Linux's collect_signal)."""
    own = bool(proc.pending & bit(sig))
    holder = proc if own else shared(proc)
    infos = holder.siginfo if own else holder.shared_siginfo
    queue = infos.get(sig, [])
    info = queue.pop(0) if queue else siginfo(sig)
    if queue:
        return info
    infos.pop(sig, None)
    if own:
        proc.pending &= ~bit(sig)
    else:
        holder.shared_pending &= ~bit(sig)
    return info


def queued_signals(procs: Iterable[Process]) -> int:
    """How many signal instances with a siginfo the processes have queued (own and shared sets): what
    RLIMIT_SIGPENDING bounds (Linux's per-user sigpending count; all of run-elf's run as one user)."""
    return sum(len(queue) for p in procs for infos in (p.siginfo, p.shared_siginfo) for queue in infos.values())


def waits_for(proc: Process, mask: int) -> bool:
    """Whether proc sleeps in rt_sigtimedwait for a signal of mask (such a wait takes blocked ones too)."""
    return bool(proc.sigwait & mask) and proc.state == SLEEPING and proc.sleeping_in in SIGWAIT_CALLS


def wants_signal(proc: Process, mask: int) -> bool:
    """Whether thread proc would take a process-directed signal of mask now (Linux's wants_signal): it
    lives and does not block it, or waits for it in rt_sigtimedwait."""
    return proc.alive and (not proc.sigmask & mask or waits_for(proc, mask))


def discard(proc: Process, sig: int) -> None:
    """Drop pending sig from proc's own set and its group's shared one."""
    proc.pending &= ~bit(sig)
    proc.siginfo.pop(sig, None)
    group = shared(proc)
    group.shared_pending &= ~bit(sig)
    group.shared_siginfo.pop(sig, None)


# -- siginfo ---------------------------------------------------------------------------------

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


def trap_siginfo(intno: int, sig: int, rip: int) -> bytes:
    """The siginfo of a CPU exception's signal, as Linux's trap handlers fill it: a divide error is
    FPE_INTDIV at the faulting instruction, an alignment check BUS_ADRALN; the rest SI_KERNEL."""
    if intno == 0:
        return siginfo(sig, code=FPE_INTDIV, addr=rip)
    if intno == 17:
        return siginfo(sig, code=BUS_ADRALN, addr=0)
    return siginfo(sig, code=SI_KERNEL, addr=0)


def siginfo_layout(sig: int, code: int) -> str:
    """Which member of siginfo_t's union a (signal, si_code) pair fills (Linux's siginfo_layout)."""
    if SI_USER < code < SI_KERNEL:
        limit, layout = SICODES.get(sig, (0, ""))
        if code <= limit:
            return layout
        return "poll" if code <= NSIGPOLL else "kill"
    if code == SI_TIMER:
        return "timer"
    if code == SI_SIGIO:
        return "poll"
    return "rt" if code < 0 else "kill"


def siginfo32(info: bytes) -> bytes:
    """The compat_siginfo_t of an x86-64 siginfo_t: the union moves to offset 12 and its pointers,
    longs and clock_t shrink to 4 bytes (Linux's copy_siginfo_to_user32)."""
    sig, err, code = SIGINFO_HEAD.unpack_from(info)
    wide, narrow = SIGINFO_UNION[siginfo_layout(sig, code)]
    kinds = narrow.format[1:]
    fields = [truncate32(v, kind) for v, kind in zip(wide.unpack_from(info, UNION_64), kinds)]
    return (SIGINFO_HEAD.pack(sig, err, code) + narrow.pack(*fields)).ljust(SIGINFO_SIZE, b"\0")


def siginfo64(info32: bytes) -> bytes:
    """The siginfo_t of a compat_siginfo_t a 32-bit program passed in (copy_siginfo_from_user32): the
    union's fields widened back, sign-extended where signed."""
    sig, err, code = SIGINFO_HEAD.unpack_from(info32)
    wide, narrow = SIGINFO_UNION[siginfo_layout(sig, code)]
    fields = narrow.unpack_from(info32, SIGINFO_HEAD.size)
    return (SIGINFO_HEAD.pack(sig, err, code) + bytes(UNION_64 - SIGINFO_HEAD.size)
            + wide.pack(*fields)).ljust(SIGINFO_SIZE, b"\0")


def truncate32(value: int, kind: str) -> int:
    """A 64-bit field value as the 32-bit field of struct kind 'i' or 'I' holds it."""
    value &= MASK32
    if kind == "i" and value & 0x8000_0000:
        value -= 1 << 32
    return value


# -- signal actions --------------------------------------------------------------------------

def action(p: Process, sig: int) -> tuple[int, int, int, int]:
    """The action of sig: (handler, flags, restorer, mask)."""
    raw = p.sigactions.get(sig)
    return SIGACTION.unpack(raw) if raw else (SIG_DFL, 0, 0, 0)


def do_sigaction(p: Process, sig: int, new: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """Install `new` (handler, flags, restorer, mask) as sig's action if given; the action before it
    (Linux's do_sigaction: SIGKILL and SIGSTOP cannot be changed, unknown flags are dropped, and
    setting SIG_IGN discards the signal if pending)."""
    if not 1 <= sig <= NSIG or (new is not None and sig in (SIGKILL, SIGSTOP)):
        raise SysError(errno.EINVAL)
    handler, flags, restorer, mask = action(p, sig)
    old = (handler, flags & UAPI_SA_FLAGS, restorer, mask)
    if new is not None:
        handler, flags, restorer, mask = new
        p.sigactions[sig] = SIGACTION.pack(handler, flags & UAPI_SA_FLAGS, restorer, mask & ~UNBLOCKABLE)
        if handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT):
            discard(p, sig)
    return old


@syscall("rt_sigaction", "dppu")
def sys_rt_sigaction(k: Kernel, p: Process, sig: int, act: int, oldact: int, size: int) -> int:
    """Install or read a signal action (struct sigaction)."""
    if size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    new = SIGACTION.unpack(k.copyin(p, act, SIGACTION.size)) if act else None
    old = do_sigaction(p, signed32(sig), new)
    if oldact:
        k.copyout(p, oldact, SIGACTION.pack(*old))
    return 0


@syscall32("rt_sigaction", "dppu")
def sys_rt_sigaction32(k: Kernel, p: Process, sig: int, act: int, oldact: int, size: int) -> int:
    """rt_sigaction with struct compat_sigaction (32-bit handler, flags and restorer, 64-bit mask)."""
    if size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    new = SIGACTION_32.unpack(k.copyin(p, act, SIGACTION_32.size)) if act else None
    handler, flags, restorer, mask = do_sigaction(p, signed32(sig), new)
    if oldact:
        k.copyout(p, oldact, SIGACTION_32.pack(handler & MASK32, flags & MASK32, restorer & MASK32, mask))
    return 0


@syscall32("sigaction", "dpp")
def sys_sigaction32(k: Kernel, p: Process, sig: int, act: int, oldact: int) -> int:
    """The old sigaction: struct compat_old_sigaction, whose mask is the first 32 signals only."""
    new = None
    if act:
        handler, mask, flags, restorer = OLD_SIGACTION_32.unpack(k.copyin(p, act, OLD_SIGACTION_32.size))
        new = (handler, flags, restorer, mask)
    handler, flags, restorer, mask = do_sigaction(p, signed32(sig), new)
    if oldact:
        k.copyout(p, oldact, OLD_SIGACTION_32.pack(handler & MASK32, mask & MASK32, flags & MASK32,
                                                   restorer & MASK32))
    return 0


@syscall32("signal", "dx")
def sys_signal32(k: Kernel, p: Process, sig: int, handler: int) -> int:
    """The old signal(): a one-shot handler that does not block its signal; the old handler."""
    old = do_sigaction(p, signed32(sig), (handler, SA_RESETHAND | SA_NODEFER, 0, 0))
    return old[0] & MASK32


# -- the alternate signal stack -----------------------------------------------------------------

def on_altstack(p: Process, sp: int) -> bool:
    """Whether sp is within the alternate stack (Linux's __on_sig_stack)."""
    ss_sp, ss_size, _ = p.altstack
    return sp > ss_sp and sp - ss_sp <= ss_size


def altstack_state(p: Process, sp: int) -> int:
    """SS_DISABLE without an alternate stack, SS_ONSTACK when sp runs on it, else 0 (sas_ss_flags)."""
    ss_sp, ss_size, flags = p.altstack
    if not ss_size:
        return SS_DISABLE
    return SS_ONSTACK if not flags & SS_AUTODISARM and on_altstack(p, sp) else 0


def set_altstack(p: Process, sp: int, ss_sp: int, ss_flags: int, ss_size: int) -> None:
    """Set the alternate stack as sigaltstack does (EPERM while running on it, EINVAL for an unknown
    mode, ENOMEM below MINSIGSTKSZ)."""
    if altstack_state(p, sp) == SS_ONSTACK:
        raise SysError(errno.EPERM)
    mode = ss_flags & ~SS_AUTODISARM & MASK32
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        raise SysError(errno.EINVAL)
    if mode == SS_DISABLE:
        ss_sp = ss_size = 0
    elif ss_size < MINSIGSTKSZ:
        raise SysError(errno.ENOMEM)
    p.altstack = (ss_sp, ss_size, ss_flags & MASK32)


def current_altstack(p: Process, sp: int) -> tuple[int, int, int]:
    """The alternate stack as sigaltstack reports it: (ss_sp, ss_flags, ss_size)."""
    ss_sp, ss_size, flags = p.altstack
    return ss_sp, altstack_state(p, sp) | (flags & SS_AUTODISARM), ss_size


def altstack_call(k: Kernel, p: Process, ss: int, old: int, layout: struct.Struct) -> int:
    """sigaltstack with stack_t of the given layout: read the new one first, then report the old one."""
    sp = k.cpu.reg("rsp") & (MASK32 if layout is STACK_T_32 else MASK64)
    new = layout.unpack(k.copyin(p, ss, layout.size)) if ss else None
    before = current_altstack(p, sp)
    if new is not None:
        ss_sp, ss_flags, ss_size = new
        set_altstack(p, sp, ss_sp, ss_flags & MASK32, ss_size)
    if old:
        ss_sp, flags, ss_size = before
        k.copyout(p, old, layout.pack(ss_sp, signed32(flags), ss_size))
    return 0


@syscall("sigaltstack", "pp")
def sys_sigaltstack(k: Kernel, p: Process, ss: int, old: int) -> int:
    """Set or read the alternate signal stack (stack_t)."""
    return altstack_call(k, p, ss, old, STACK_T)


@syscall32("sigaltstack", "pp")
def sys_sigaltstack32(k: Kernel, p: Process, ss: int, old: int) -> int:
    """sigaltstack with compat_stack_t."""
    return altstack_call(k, p, ss, old, STACK_T_32)


def restore_altstack(p: Process, sp: int, ss_sp: int, ss_flags: int, ss_size: int) -> None:
    """sigreturn puts back the frame's uc_stack; like Linux it ignores all but a bad address."""
    try:
        set_altstack(p, sp, ss_sp, ss_flags, ss_size)
    except SysError:
        pass


# -- delivery --------------------------------------------------------------------------------

def deliver(k: Kernel, proc: Process) -> None:
    """Run the handler of proc's next deliverable signal (the current process, outside any hook):
    build its frame on the user stack and point the registers at the handler. Default actions and
    ignored signals are taken here too. A frame that cannot be written kills with SIGSEGV."""
    while True:
        sig = next_signal(proc)
        if not sig:
            return
        info = dequeue(proc, sig)
        handler, flags, restorer, mask = action(proc, sig)
        if handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT):
            continue
        if handler == SIG_DFL:
            k.terminate(proc, sig)
            return
        if push_frame(k, proc, sig, handler, flags, restorer, info):
            proc.sigmask |= (mask & ~UNBLOCKABLE) | (0 if flags & SA_NODEFER else bit(sig))
            if flags & SA_RESETHAND:
                proc.sigactions[sig] = SIGACTION.pack(SIG_DFL, flags, restorer, mask)
            if proc.altstack[2] & SS_AUTODISARM:
                proc.altstack = NO_ALTSTACK
        return


def push_frame(k: Kernel, proc: Process, sig: int, handler: int, flags: int, restorer: int, info: bytes) -> bool:
    """Write the signal frame of proc's ABI and enter the handler; False (and the process killed) if it cannot."""
    cpu = k.cpu
    ia32 = proc.bits == 32
    names = GREGS_32 + ("rip", "rflags") if ia32 else GREGS
    width = MASK32 if ia32 else MASK64
    regs = {name: cpu.reg(name) & width for name in names}
    if proc.interrupted_call:
        # Asleep in a system call (RIP at the syscall or int 0x80, RAX still its number): restart it
        # after the handler, or return EINTR from it.
        if not (flags & SA_RESTART) or proc.interrupted_call in INTERRUPTED_ONLY:
            regs["rax"] = -errno.EINTR & width
            regs["rip"] += 2
            proc.wake_at = 0.0                # an interrupted nanosleep starts afresh next time
        proc.interrupted_call = ""
    old_mask = proc.saved_sigmask if proc.saved_sigmask is not None else proc.sigmask
    proc.saved_sigmask = None
    top, confined = frame_top(proc, regs["rsp"], flags, ia32)
    if ia32:
        frame, data, entry = frame32(k, proc, sig, handler, flags, restorer, info, regs, old_mask, top)
    else:
        if not flags & SA_RESTORER:
            k.terminate(proc, SIGSEGV)        # x86-64 has no default restorer
            return False
        frame, data, entry = frame64(proc, sig, handler, restorer, info, regs, old_mask, top)
    if confined and not on_altstack(proc, frame):
        k.terminate(proc, SIGSEGV)            # it would overflow the alternate stack
        return False
    try:
        k.copyout(proc, frame, data)
    except Exception:                       # no room for the frame: Linux forces SIGSEGV
        k.terminate(proc, SIGSEGV)
        return False
    save_context(k, proc, frame, top)
    for name, value in entry.items():
        cpu.set_reg(name, value)
    cpu.set_reg("rsp", frame)
    cpu.set_reg("rip", handler & width)
    cpu.set_reg("rflags", regs["rflags"] & ~EFLAGS_TF & ~EFLAGS_DF)
    k.signals_delivered += 1
    return True


def frame_top(proc: Process, sp: int, flags: int, ia32: bool) -> tuple[int, bool]:
    """Where the frame goes below (past x86-64's red zone, or at the top of the alternate stack for
    SA_ONSTACK), and whether it must stay within the alternate stack (Linux's get_sigframe)."""
    nested = on_altstack(proc, sp) and not proc.altstack[2] & SS_AUTODISARM
    if not ia32:
        sp -= RED_ZONE
    if flags & SA_ONSTACK and altstack_state(proc, sp) == 0:
        ss_sp, ss_size, _ = proc.altstack
        return ss_sp + ss_size, True
    return sp, nested


def frame64(proc: Process, sig: int, handler: int, restorer: int, info: bytes, regs: dict[str, int], mask: int,
            top: int) -> tuple[int, bytes, dict[str, int]]:
    """An rt_sigframe below top: (its address, its bytes, the handler's argument registers)."""
    frame = ((top - FRAME_SIZE) & ~0xF) - 8
    uc_addr = frame + 8
    info_addr = uc_addr + UCONTEXT_SIZE
    ss_sp, ss_size, ss_flags = proc.altstack
    sigcontext = SIGCONTEXT.pack(*(regs[n] for n in GREGS), USER_CS, 0, 0, USER_DS, 0, 0, mask, 0, 0,
                                 *([0] * 8))
    ucontext = UCONTEXT_HEAD.pack(0, 0, ss_sp, signed32(ss_flags), ss_size) + sigcontext + struct.pack("<Q", mask)
    data = struct.pack("<Q", restorer) + ucontext + info
    return frame, data, {"rdi": sig, "rsi": info_addr, "rdx": uc_addr, "rax": 0}


def frame32(k: Kernel, proc: Process, sig: int, handler: int, flags: int, restorer: int, info: bytes,
            regs: dict[str, int], mask: int, top: int) -> tuple[int, bytes, dict[str, int]]:
    """A sigframe_ia32 (or with SA_SIGINFO an rt_sigframe_ia32) below top, aligned for the i386 ABI:
    (its address, its bytes, the handler's registers: EAX = sig, EDX = &info, ECX = &uc)."""
    cpu = k.cpu
    segments = [cpu.reg(name) & 0xFFFF for name in SEGMENTS_32]
    sigcontext = SIGCONTEXT_32.pack(*segments, *(regs[n] for n in GREGS_32), 0, 0, regs["rip"],
                                    cpu.reg("cs") & 0xFFFF, regs["rflags"], regs["rsp"], cpu.reg("ss") & 0xFFFF,
                                    0, mask & MASK32, 0)
    if not flags & SA_SIGINFO:
        frame = align32(top - SIGFRAME_32_SIZE)
        pretcode = restorer if flags & SA_RESTORER else frame + RETCODE_OFFSET_32
        data = (struct.pack("<Ii", pretcode & MASK32, sig) + sigcontext + bytes(FPSTATE_32_SIZE)
                + struct.pack("<I", mask >> 32) + RETCODE.pack(0xB858, NR_SIGRETURN_32, 0x80CD))
        return frame, data, {"rax": sig, "rdx": 0, "rcx": 0}
    frame = align32(top - RT_SIGFRAME_32_SIZE)
    info_addr, uc_addr = frame + INFO_OFFSET_32, frame + UC_OFFSET_32
    pretcode = restorer if flags & SA_RESTORER else frame + RT_RETCODE_OFFSET_32
    ss_sp, ss_size, ss_flags = proc.altstack
    ucontext = (UCONTEXT_32_HEAD.pack(0, 0, ss_sp & MASK32, signed32(ss_flags), ss_size & MASK32) + sigcontext
                + struct.pack("<Q", mask))
    data = (struct.pack("<IiII", pretcode & MASK32, sig, info_addr, uc_addr) + siginfo32(info) + ucontext
            + RT_RETCODE.pack(0xB8, NR_RT_SIGRETURN_32, 0x80CD))
    return frame, data, {"rax": sig, "rdx": info_addr, "rcx": uc_addr}


def align32(sp: int) -> int:
    """A 32-bit frame's address: ((sp + 4) & 15) == 0, as the i386 ABI wants at a function's entry."""
    return ((sp + 4) & ~0xF) - 4


def save_context(k: Kernel, proc: Process, frame: int, top: int) -> None:
    """Keep the CPU context (with the FPU/SSE state) for the sigreturn of this frame. Contexts of frames
    that the new one lies over (handlers left with longjmp) are dropped first."""
    here = on_altstack(proc, top - 1)
    proc.signal_contexts[:] = [(f, ctx) for f, ctx in proc.signal_contexts
                               if not (f < top and on_altstack(proc, f) == here)]
    if len(proc.signal_contexts) >= MAX_NESTED:
        del proc.signal_contexts[0]
    proc.signal_contexts.append((frame, k.cpu.uc.context_save()))


def restore_context(k: Kernel, p: Process, frame: int) -> None:
    """Load the CPU context saved when the frame at `frame` was built (if it is known), dropping those of
    frames built after it."""
    for i in range(len(p.signal_contexts) - 1, -1, -1):
        if p.signal_contexts[i][0] == frame:
            context = p.signal_contexts[i][1]
            del p.signal_contexts[i:]
            k.cpu.load_context(context)
            return


def bad_frame(k: Kernel, p: Process, frame: int, what: str) -> int:
    """A sigreturn whose frame cannot be read: the process dies of SIGSEGV, as Linux's signal_fault."""
    k.kill(p, SIGSEGV, f"bad frame in {what} at {frame:#x}")
    return 0


def resume(k: Kernel, p: Process, regs: dict[str, int], mask: int) -> None:
    """Return to user mode with the registers (and EFLAGS' user bits) and signal mask of a frame."""
    cpu = k.cpu
    flags = (cpu.reg("rflags") & ~USER_FLAGS) | (regs.pop("rflags") & USER_FLAGS)
    rip = regs.pop("rip")
    for name, value in regs.items():
        cpu.set_reg(name, value)
    cpu.set_reg("rflags", flags)
    p.sigmask = mask & ~UNBLOCKABLE
    p.resume_rip = rip
    cpu.stop()


@syscall("rt_sigreturn")
def sys_rt_sigreturn(k: Kernel, p: Process) -> int:
    """Back from a handler: registers, signal mask and alternate stack from the frame's ucontext, FPU
    state as saved."""
    frame = k.cpu.reg("rsp") - 8               # the handler's `ret` popped the return address
    try:
        raw = k.copyin(p, frame + 8, UCONTEXT_SIZE)
    except Segv:
        return bad_frame(k, p, frame, "rt_sigreturn")
    values = SIGCONTEXT.unpack_from(raw, UCONTEXT_HEAD.size)
    (mask,) = struct.unpack_from("<Q", raw, UCONTEXT_HEAD.size + SIGCONTEXT.size)
    _, _, ss_sp, ss_flags, ss_size = UCONTEXT_HEAD.unpack_from(raw)
    restore_context(k, p, frame)
    regs = dict(zip(GREGS, values[:len(GREGS)]))
    restore_altstack(p, regs["rsp"], ss_sp, ss_flags, ss_size)
    resume(k, p, regs, mask)
    return 0


def restore_sigcontext32(k: Kernel, p: Process, frame: int, sc: bytes, mask: int) -> dict[str, int]:
    """The registers of a sigcontext_32 (EAX..EDI, ESP, EIP, EFLAGS) over the context saved for the
    frame; segment registers stay as they were."""
    values = SIGCONTEXT_32.unpack(sc)
    restore_context(k, p, frame)
    regs = dict(zip(GREGS_32, values[4:12]))
    regs["rip"], regs["rflags"] = values[14], values[16]
    return regs


@syscall32("sigreturn")
def sys_sigreturn32(k: Kernel, p: Process) -> int:
    """Back from a handler with a sigframe_ia32: registers from its sigcontext, the mask from its
    oldmask and extramask."""
    frame = (k.cpu.reg("rsp") - 8) & MASK32   # the handler's `ret` and the restorer's `popl %eax`
    try:
        raw = k.copyin(p, frame, EXTRAMASK_OFFSET_32 + 4)
    except Segv:
        return bad_frame(k, p, frame, "sigreturn")
    sc = raw[SC_OFFSET_32:SC_OFFSET_32 + SIGCONTEXT_32.size]
    mask = SIGCONTEXT_32.unpack(sc)[20] | struct.unpack_from("<I", raw, EXTRAMASK_OFFSET_32)[0] << 32
    resume(k, p, restore_sigcontext32(k, p, frame, sc, mask), mask)
    return 0


@syscall32("rt_sigreturn")
def sys_rt_sigreturn32(k: Kernel, p: Process) -> int:
    """Back from a handler with an rt_sigframe_ia32: registers, mask and alternate stack from its ucontext."""
    frame = (k.cpu.reg("rsp") - 4) & MASK32   # the handler's `ret` popped the return address
    try:
        raw = k.copyin(p, frame + UC_OFFSET_32, UCONTEXT_32_SIZE)
    except Segv:
        return bad_frame(k, p, frame, "rt_sigreturn")
    sc = raw[UCONTEXT_32_HEAD.size:UCONTEXT_32_HEAD.size + SIGCONTEXT_32.size]
    (mask,) = struct.unpack_from("<Q", raw, UCONTEXT_32_HEAD.size + SIGCONTEXT_32.size)
    _, _, ss_sp, ss_flags, ss_size = UCONTEXT_32_HEAD.unpack_from(raw)
    regs = restore_sigcontext32(k, p, frame, sc, mask)
    restore_altstack(p, regs["rsp"], ss_sp, ss_flags, ss_size)
    resume(k, p, regs, mask)
    return 0


# -- waiting for signals, and the old 32-bit mask calls ------------------------------------------

def suspend(k: Kernel, p: Process, mask: int) -> int:
    """Sleep with `mask` as the signal mask until a handled signal is delivered, then EINTR (the
    handler's frame carries the mask from before, which sigreturn puts back)."""
    set_user_sigmask(p, mask)
    raise Block(("signal", p.pid))


def set_user_sigmask(p: Process, mask: int) -> None:
    """Make `mask` the process's signal mask for a call's wait, the mask from before kept for sigreturn
    or the call's return (p.saved_sigmask); EINTR at once if a signal it unblocks is pending."""
    if p.saved_sigmask is None:
        p.saved_sigmask = p.sigmask
    p.sigmask = mask & ~UNBLOCKABLE
    discard_ignored(p)
    if next_signal(p):
        raise SysError(errno.EINTR)


def discard_ignored(p: Process) -> None:
    """Drop the pending signals that are no longer blocked and whose action ignores them (they pended
    while blocked; delivery would drop them too, and they must not end a wait as Linux's do not)."""
    ready = deliverable(p)
    while ready:
        sig = (ready & -ready).bit_length()
        ready &= ready - 1
        handler = action(p, sig)[0]
        if handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT):
            discard(p, sig)


@syscall("pause")
@syscall32("pause")
def sys_pause(k: Kernel, p: Process) -> int:
    """Sleep until a signal is delivered."""
    return suspend(k, p, p.sigmask)


@syscall("rt_sigsuspend", "pu")
@syscall32("rt_sigsuspend", "pu")
def sys_rt_sigsuspend(k: Kernel, p: Process, mask: int, size: int) -> int:
    """Sleep with *mask as the signal mask until a signal is delivered."""
    if size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    return suspend(k, p, struct.unpack("<Q", k.copyin(p, mask, 8))[0])


@syscall32("sigsuspend", "ddx")
def sys_sigsuspend32(k: Kernel, p: Process, history0: int, history1: int, mask: int) -> int:
    """The old i386 sigsuspend(history0, history1, mask): the mask is the first 32 signals."""
    return suspend(k, p, mask & MASK32)


TIMESPEC64 = struct.Struct("<qq")      # struct __kernel_timespec
TIMESPEC32 = struct.Struct("<ii")      # struct old_timespec32
SIGWAIT_CALLS = frozenset({"rt_sigtimedwait", "rt_sigtimedwait_time64"})


@syscall("rt_sigtimedwait", "pppu")
def sys_rt_sigtimedwait(k: Kernel, p: Process, uset: int, uinfo: int, uts: int, size: int,
                        timespec: struct.Struct = TIMESPEC64) -> int:
    """sigwaitinfo/sigtimedwait: take a pending signal of *uset (blocked ones too) without running its
    handler, writing its siginfo to uinfo; wait for one until the timeout (EAGAIN once it passes)."""
    if size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    wanted = struct.unpack("<Q", k.copyin(p, uset, 8))[0] & ~UNBLOCKABLE
    timeout = None
    if uts:
        sec, nsec = timespec.unpack(k.copyin(p, uts, timespec.size))
        if sec < 0 or not 0 <= nsec < 10**9:
            raise SysError(errno.EINVAL)
        timeout = sec + nsec / 10**9
    return take_signal(k, p, wanted, uinfo, timeout)


@syscall32("rt_sigtimedwait", "pppu")
def sys_rt_sigtimedwait32(k: Kernel, p: Process, uset: int, uinfo: int, uts: int, size: int) -> int:
    return sys_rt_sigtimedwait(k, p, uset, uinfo, uts, size, TIMESPEC32)


@syscall32("rt_sigtimedwait_time64", "pppu")
def sys_rt_sigtimedwait_time64(k: Kernel, p: Process, uset: int, uinfo: int, uts: int, size: int) -> int:
    return sys_rt_sigtimedwait(k, p, uset, uinfo, uts, size, TIMESPEC64)


def take_signal(k: Kernel, p: Process, wanted: int, uinfo: int, timeout: float | None) -> int:
    """Dequeue the lowest pending signal of `wanted` (its number; the caller's own ones before its group's
    shared ones), or sleep until one is sent (a blocked
    one wakes the caller too, see Kernel.signal) or `timeout` seconds have passed (EAGAIN)."""
    sig = first_of(p, wanted)
    if sig:
        info = dequeue(p, sig)
        p.sigwait = 0
        p.wake_at = 0.0
        if uinfo:
            k.copyout(p, uinfo, siginfo32(info) if p.bits == 32 else info)
        return sig
    now = time.monotonic()
    if timeout is not None:
        if not p.wake_at:
            if timeout == 0:
                raise SysError(errno.EAGAIN)
            p.wake_at = now + timeout
        elif now >= p.wake_at:
            p.wake_at = 0.0
            p.sigwait = 0
            raise SysError(errno.EAGAIN)
    p.sigwait = wanted
    raise Block(("signal", p.pid))


@syscall32("sigprocmask", "dpp")
def sys_sigprocmask32(k: Kernel, p: Process, how: int, nset: int, oset: int) -> int:
    """The old sigprocmask on the first 32 signals (an old_sigset_t of 4 bytes)."""
    old = p.sigmask & MASK32
    if nset:
        value = struct.unpack("<I", k.copyin(p, nset, 4))[0]
        how = signed32(how)
        if how == SIG_BLOCK:
            p.sigmask |= value
        elif how == SIG_UNBLOCK:
            p.sigmask &= ~value
        elif how == SIG_SETMASK:
            p.sigmask = (p.sigmask & ~MASK32) | value
        else:
            raise SysError(errno.EINVAL)
        p.sigmask &= ~UNBLOCKABLE
    if oset:
        k.copyout(p, oset, struct.pack("<I", old))
    return 0                       # signals it unblocked are delivered on the way back to user mode


@syscall32("sigpending", "p")
def sys_sigpending32(k: Kernel, p: Process, out: int) -> int:
    """The blocked pending signals among the first 32."""
    k.copyout(p, out, struct.pack("<I", pending_signals(p) & p.sigmask & MASK32))
    return 0


@syscall32("sgetmask")
def sys_sgetmask32(k: Kernel, p: Process) -> int:
    """The first 32 signals of the mask."""
    return p.sigmask & MASK32


@syscall32("ssetmask", "x")
def sys_ssetmask32(k: Kernel, p: Process, mask: int) -> int:
    """Set the first 32 signals of the mask; the old ones."""
    old = p.sigmask & MASK32
    p.sigmask = ((p.sigmask & ~MASK32) | (mask & MASK32)) & ~UNBLOCKABLE
    return old


__all__ = ["deliver", "next_signal", "deliverable", "wants_signal", "waits_for", "dequeue", "add_pending", "queued_signals", "pending_signals", "siginfo", "siginfo32", "bit", "do_sigaction"]
