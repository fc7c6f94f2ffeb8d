"""Processes: what the kernel keeps per guest program."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from osmodel.addrspace import AddressSpace
from osmodel.files import FdTable
from loader.symbols import Symbols

RUNNABLE = "runnable"
SLEEPING = "sleeping"
ZOMBIE = "zombie"
SIG_DFL = 0
SIG_IGN = 1


@dataclass
class Process:
    """One guest process: identity, address space, descriptors, and how it ended."""
    pid: int
    ppid: int
    aspace: AddressSpace
    files: FdTable
    cwd: str
    exe: str = ""                         # absolute path of the running program
    argv: list[bytes] = field(default_factory=list)
    environ: list[bytes] = field(default_factory=list)   # the environment its last execve gave it
    name: str = ""                        # argv[0]'s basename, as comm
    symbols: Symbols | None = None
    state: str = RUNNABLE
    exit_code: int | None = None          # the exit() argument, when it exited
    killed_by: int | None = None          # the signal that killed it
    fault_counts: Counter = field(default_factory=Counter)
    child_fault_counts: Counter = field(default_factory=Counter)   # of reaped children (getrusage)
    major_faults: int = 0                 # faults that had to read a file (the rest are minor)
    child_major_faults: int = 0
    fault_error: object = None            # the Segv/OutOfMemory behind the last refused fault
    task_pfn: int = 0                     # frame of its task record in the kernel half
    clear_child_tid: int = 0
    robust_list: tuple[int, int] = (0, 0)
    rseq: int = 0
    resume_rip: int | None = None         # set when a system call moves RIP (exec)
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    umask: int = 0o022
    exec_count: int = 0
    peak_resident: int = 0                # pages mapped at most, kept when the address space is released
    table_pages: int = 0                  # page-table pages in use at exit

    pgid: int = 0
    ioprio: int = 0                       # ioprio_set's value (0: class none)
    stopped: int = 0                      # the signal that stopped it (job control), 0 while it may run
    pdeath_signal: int = 0                # prctl: sent to it when its parent exits (not inherited by fork)
    child_subreaper: bool = False         # prctl: its descendants' orphans are re-parented to it
    dumpable: int = 1                     # prctl: kept until the next execve
    no_new_privs: bool = False            # prctl: inherited and kept across execve
    wait_event: str = ""                  # "stopped" or "continued": what its parent's wait has yet to report
    sid: int = 0
    channel: object = None                # what it sleeps on, when SLEEPING
    sleeping_in: str = ""                 # the system call it sleeps in (for reports)
    context: object = None                # saved CPU state (a Unicorn context) while not on the CPU
    vfork_parent: Process | None = None   # the parent suspended until this child execs or exits
    sigactions: dict[int, bytes] = field(default_factory=dict)   # signal -> struct kernel_sigaction
    sigmask: int = 0
    pending: int = 0                      # signals sent but not yet delivered (blocked, or waiting for the CPU)
    siginfo: dict[int, list[bytes]] = field(default_factory=dict)  # the siginfo of each pending signal's instances
    signal_contexts: list = field(default_factory=list)          # (frame, CPU context) per running handler
    saved_sigmask: int | None = None      # the mask to restore after rt_sigsuspend's temporary one
    leader: Process | None = None         # the thread-group leader, for a thread (None: it leads)
    futex_woken: bool = False             # a FUTEX_WAKE picked it: its FUTEX_WAIT returns 0 when it runs
    wake_at: float = 0.0                  # time.monotonic() at which a nanosleep ends (0: not sleeping)
    interrupted_call: str = ""            # the system call it sleeps in, if a signal may interrupt it
    tls: list[int] = field(default_factory=lambda: [0, 0, 0])   # set_thread_area's GDT descriptors (32-bit)
    altstack: tuple[int, int, int] = (0, 0, 2)   # sigaltstack: ss_sp, ss_size, ss_flags (SS_DISABLE: none)
    itimers: dict = field(default_factory=dict)        # ITIMER_* -> systime.Countdown (a group leader's; not forked)
    posix_timers: dict = field(default_factory=dict)   # timer id -> systime.PosixTimer (the same; gone at execve)
    next_timer_id: int = 0                             # the id timer_create gives next
    sigwait: int = 0                      # the signals rt_sigtimedwait waits for (they wake it even if blocked)
    utime: int = 0                        # ns of host thread time spent emulating this thread (user time)
    stime: int = 0                        # ns spent in its system calls and page faults (system time)
    group_utime: int = 0                  # a leader's: the user time of its whole thread group, exited threads too
    group_stime: int = 0                  # a leader's: the same for system time
    child_utime: int = 0                  # a leader's: the user time of its reaped children (and of theirs)
    child_stime: int = 0                  # a leader's: the same for system time
    cpu_timers: list = field(default_factory=list)   # armed systime.CpuCountdowns on its thread clock, or
                                                     # (a leader's) on its group's clock
    shared_pending: int = 0               # a leader's: process-directed signals pending for its whole thread group
    shared_siginfo: dict[int, list[bytes]] = field(default_factory=dict)   # a leader's: the same of each of them

    @property
    def tgid(self) -> int:
        """The thread-group id: getpid()'s answer (the leader's pid)."""
        return self.leader.pid if self.leader is not None else self.pid

    @property
    def bits(self) -> int:
        """32 for an i386 program (compatibility mode, 32-bit pointers and structures), else 64."""
        return self.aspace.fmt.address_bits

    @property
    def alive(self) -> bool:
        """Whether it has not exited (it may be sleeping)."""
        return self.state != ZOMBIE

    @property
    def runnable(self) -> bool:
        """Whether the scheduler may run it (not asleep, not stopped by job control)."""
        return self.state == RUNNABLE and not self.stopped

    def handler(self, sig: int) -> int:
        """The sa_handler installed for sig (SIG_DFL, SIG_IGN or an address)."""
        act = self.sigactions.get(sig)
        return int.from_bytes(act[:8], "little") if act else SIG_DFL

    def wait_status(self) -> int:
        """Its status as wait4 encodes it."""
        if self.killed_by is not None:
            return self.killed_by & 0x7F
        return ((self.exit_code or 0) & 0xFF) << 8

    def shell_status(self) -> int:
        """Its status as a shell reports it: the exit code, or 128+N after signal N."""
        if self.killed_by is not None:
            return 128 + self.killed_by
        return (self.exit_code or 0) & 0xFF
