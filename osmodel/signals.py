"""Signal numbers and the signal each CPU exception raises, as Linux's trap handlers send them."""

from __future__ import annotations

import signal as _host

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP = 17, 18, 19, 20

SIGTTIN, SIGTTOU, SIGURG, SIGXFSZ, SIGWINCH = 21, 22, 23, 25, 28
IGNORED_BY_DEFAULT = frozenset({SIGCHLD, SIGCONT, SIGURG, SIGWINCH})
STOP_SIGNALS = frozenset({SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU})     # their default action stops the process

# x86 exception vector -> signal (arch/x86/kernel/traps.c).
_EXCEPTION_SIGNALS = {
    0: SIGFPE,    # #DE divide error
    1: SIGTRAP,   # #DB debug
    3: SIGTRAP,   # #BP int3
    4: SIGSEGV,   # #OF into
    5: SIGSEGV,   # #BR bound
    6: SIGILL,    # #UD invalid opcode
    7: SIGSEGV,   # #NM
    13: SIGSEGV,  # #GP general protection (privileged instructions, non-canonical addresses)
    16: SIGFPE,   # #MF x87 floating point
    17: SIGBUS,   # #AC alignment check
    19: SIGFPE,   # #XM SIMD floating point
}

EXCEPTION_NAMES = {
    0: "divide error", 1: "debug trap", 3: "breakpoint", 4: "overflow", 5: "bound range exceeded",
    6: "invalid opcode", 7: "device not available", 13: "general protection fault", 16: "x87 floating-point error",
    17: "alignment check", 19: "SIMD floating-point error",
}


def signal_for_interrupt(intno: int) -> int:
    """The signal Linux sends for a CPU exception (or a stray software interrupt: SIGSEGV)."""
    return _EXCEPTION_SIGNALS.get(intno, SIGSEGV)


def signal_name(sig: int) -> str:
    """'SIGSEGV' for 11."""
    try:
        return _host.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
