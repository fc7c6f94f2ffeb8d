"""Named pipes (FIFOs): guest pipes, one per FIFO inode.

Every guest process lives inside run-elf, so a host FIFO cannot carry data between two of
them: the host open() of one side would block run-elf itself until the other side opened,
which then never happens. A FIFO a guest opens is therefore a guest pipe (files.Pipe), one
per inode, opened with Linux's fifo_open rules: a reader waits until a writer has opened and
a writer until a reader has, unless O_NONBLOCK (a writer without readers then fails with
ENXIO); O_RDWR never waits; the pipe and what it holds go with its last descriptor. The same
rules reopen an unnamed pipe through /proc/PID/fd/N. A FIFO is not connected to processes
outside run-elf.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from osmodel.files import O_ACCMODE, Block, Pipe, PipeEnd, SysError

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

OPEN_CALLS = ("open", "openat", "openat2", "creat")


class FifoTable:
    """The pipes of the FIFOs guests have open, by (device, inode), and the openers waiting for a partner."""

    def __init__(self, kernel: Kernel):
        self.k = kernel
        self.pipes: dict[tuple[int, int], Pipe] = {}
        self.waiting: dict[int, tuple[Pipe, bool, int]] = {}   # pid -> (pipe, as reader, partner opens seen)

    def pipe(self, st: os.stat_result) -> Pipe:
        """The pipe of the FIFO whose stat is st: a new, empty one unless some process has it open or waits on it."""
        key = (st.st_dev, st.st_ino)
        pipe = self.pipes.get(key)
        if pipe is None or not (pipe.readers or pipe.writers or self.waiters(pipe, True) or self.waiters(pipe, False)):
            pipe = self.pipes[key] = Pipe(self.k.wakeup)
        return pipe

    def waiters(self, pipe: Pipe, reading: bool) -> int:
        """How many processes wait in an open of pipe's read (or write) side: they count as that side's ends."""
        return sum(1 for pid, (waited, as_reader, _) in self.waiting.items()
                   if waited is pipe and as_reader == reading and self.still_waiting(pid))

    def still_waiting(self, pid: int) -> bool:
        """Whether pid is still in the open call it waits in (not interrupted, not dead)."""
        proc = self.k.processes.get(pid)
        return proc is not None and proc.alive and proc.interrupted_call in OPEN_CALLS

    def open(self, p: Process, pipe: Pipe, flags: int, path: str, st: os.stat_result | None,
             named: bool = True) -> PipeEnd:
        """fifo_open: an end of pipe for the access in flags; of a named pipe, once the other side has an
        end (raises Block until then; ENXIO for a non-blocking writer without readers)."""
        access = flags & O_ACCMODE
        waited = self.waiting.pop(p.pid, None)
        if named and access != os.O_RDWR:
            reading = access == os.O_RDONLY
            partners = pipe.writers + self.waiters(pipe, False) if reading else pipe.readers + self.waiters(pipe, True)
            opens = pipe.writes_opened if reading else pipe.reads_opened
            seen = waited[2] if waited is not None and waited[0] is pipe and waited[1] == reading else opens
            if not partners and opens == seen:
                if flags & os.O_NONBLOCK:
                    if not reading:
                        raise SysError(errno.ENXIO)
                else:
                    self.waiting[p.pid] = (pipe, reading, seen)
                    raise Block(pipe)
        return PipeEnd(pipe, access, flags, path, st)
