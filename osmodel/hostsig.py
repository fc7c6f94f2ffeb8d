"""Signals sent to run-elf itself, passed on to the guest.

run-elf is one host process standing for a whole PID namespace. Ctrl-C at the terminal sends SIGINT
to run-elf (the host's foreground process group), where natively it would reach the program's
foreground process group; `kill` and supervisors signal run-elf where they would signal the program.
So run-elf catches those signals and sends each to the guest as the kernel would have: the terminal's
(SIGINT, SIGQUIT, SIGWINCH) to every process of the guest's foreground process group, the others
(SIGTERM, SIGHUP, SIGUSR1, SIGUSR2) to pid 1. A guest without a handler then dies of it, and run-elf
exits with 128+N as natively.

The terminal's signals come with si_code SI_KERNEL; the same signal from kill(1) (SI_USER) goes to pid 1
alone, as natively `kill -INT PID` reaches one process.

A guest in a loop without system calls or faults keeps the CPU in Unicorn's C code, where no Python
signal handler runs. So the signals are blocked in run-elf's threads and taken by a watcher thread
(sigwaitinfo, which also gives si_code): it queues each for the kernel (Kernel.host_signals), stops
the emulation run in progress and wakes a host wait (Kernel.interrupt_fd); the scheduler delivers it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from osmodel.kernel import Kernel

TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH)
INIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
CAUGHT = set(TERMINAL_SIGNALS + INIT_SIGNALS)
SI_KERNEL = 0x80            # si_code of a signal the kernel sent (the terminal's), not a process
STOP_RETRY = 0.005          # how often the watcher stops the CPU again until the scheduler took the signals
STOP_TRIES = 400


class HostSignals:
    """While installed, the signals above go to the guest instead of acting on run-elf."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.kick_r, self.kick_w = os.pipe()
        os.set_blocking(self.kick_r, False)
        os.set_blocking(self.kick_w, False)
        self.running = False
        self.watcher: threading.Thread | None = None

    def install(self) -> None:
        """Block the signals in this thread (threads started later inherit that) and start the watcher."""
        self.kernel.interrupt_fd = self.kick_r
        signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT)
        self.running = True
        self.watcher = threading.Thread(target=self._watch, name="run-elf host signals", daemon=True)
        self.watcher.start()

    def uninstall(self) -> None:
        """Stop the watcher (a signal to it alone ends its wait at once) and let the signals act on run-elf again."""
        self.running = False
        if self.watcher is not None:
            signal.pthread_kill(self.watcher.ident, signal.SIGWINCH)
            self.watcher.join()
        self.kernel.interrupt_fd = -1
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT)
        os.close(self.kick_r)
        os.close(self.kick_w)

    def _watch(self) -> None:
        """Queue each signal with its si_code for the kernel, and stop the CPU until the scheduler has taken
        them (a run may start just after a stop, which Unicorn would then not see)."""
        kernel = self.kernel
        while True:
            info = signal.sigwaitinfo(CAUGHT)
            if not self.running:
                return
            kernel.host_signals.append((info.si_signo, info.si_code))
            try:
                os.write(self.kick_w, b"!")
            except BlockingIOError:
                pass
            for _ in range(STOP_TRIES):
                if not kernel.host_signals:
                    break
                kernel.cpu.stop()
                time.sleep(STOP_RETRY)


def targets(kernel: Kernel, sig: int, code: int) -> list:
    """The guest processes a signal run-elf caught goes to: for one from the terminal, the foreground process
    group (its thread-group leaders) if it has any left; otherwise pid 1."""
    init = kernel.processes.get(1)
    if sig in TERMINAL_SIGNALS and code == SI_KERNEL:
        group = kernel.foreground_pgrp()
        members = [t for t in kernel.processes.values() if t.pgid == group and t.leader is None and t.alive]
        if members:
            return members
    return [init] if init is not None and init.alive else []
