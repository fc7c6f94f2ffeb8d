"""Processes: what the kernel keeps per guest program."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from osmodel.addrspace import AddressSpace
from osmodel.files import FdTable
from loader.symbols import Symbols

RUNNABLE = "runnable"
ZOMBIE = "zombie"


@dataclass
class Process:
    """One guest process: identity, address space, descriptors, and how it ended."""
    pid: int
    ppid: int
    aspace: AddressSpace
    files: FdTable
    cwd: str
    exe: str = ""                         # absolute path of the running program
    name: str = ""                        # argv[0]'s basename, as comm
    symbols: Symbols | None = None
    state: str = RUNNABLE
    exit_code: int | None = None          # the exit() argument, when it exited
    killed_by: int | None = None          # the signal that killed it
    fault_counts: Counter = field(default_factory=Counter)
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

    @property
    def alive(self) -> bool:
        """Whether it can still run."""
        return self.state == RUNNABLE

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
