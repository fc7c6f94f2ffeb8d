"""Dumps of a process's memory: its regions as /proc/PID/maps, its page-table tree, physical memory by owner.

The CLI prints them with --dump-maps, --dump-pagetable (for each process as it exits, killed or
not, before its address space is released) and --dump-frames (when pid 1 exits and after the
run). The same is a Python API for tests and notebooks:

    from osmodel.dumps import run_program, maps, pagetable, frames
    r = run_program("samples/bin/bss", ["bss", "8"], trace_faults="faults.jsonl")
    r.status, r.stdout, r.kernel.reaped[0].fault_counts
    r.maps[1]                # pid 1's maps as it exited
    frames(r.kernel)         # {'free': ..., 'page_table': ..., ...}

`maps` and `pagetable` read a live process; for one that is gone, use what `run_program` (or a
`Dumper`) captured just before it went (`RunResult.maps`, `RunResult.pagetables`).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from osmodel.signals import signal_name
from osmodel.stats import all_processes

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process
    from osmodel.trace import Instruments

__all__ = ["maps", "pagetable", "table_title", "frames", "format_frames", "Dumper", "RunResult", "run_program"]


def maps(proc: Process) -> list[str]:
    """proc's regions, one /proc/PID/maps line each (with [heap], [stack] and file names)."""
    return proc.aspace.maps()


def pagetable(proc: Process, user_only: bool = True) -> list[str]:
    """proc's page-table tree in xv6 vmprint style: one line per present entry, indented by level and named
    by its paging format's levels (x86-64: PML4, PDPT, PD, PT; i386: PD, PT; i386 PAE: PDPT, PD, PT), with
    its index, the virtual address it maps, the entry (as many hex digits as the entry has bytes: 8 for
    i386's 4-byte entries), its bits and frame. The kernel part (above `aspace.user_top`, shared by every
    process) only when `user_only` is False."""
    return proc.aspace.pagetable.dump(user_only)


def table_title(proc: Process) -> str:
    """'page table', or for a 32-bit process 'i386 page table (PD, PT)' naming its format and levels."""
    if proc.bits == 64:
        return "page table"
    fmt = proc.aspace.fmt
    return f"{fmt.name} page table ({', '.join(fmt.level_names)})"


def frames(kernel: Kernel) -> dict[str, int]:
    """Physical memory by owner tag: {'free': n, 'page_table': n, 'anon': n, ...}; sums to the frame count."""
    return kernel.ram.frames_by_owner()


def format_frames(kernel: Kernel, when: str) -> list[str]:
    """The frames table, titled with `when`."""
    counts = frames(kernel)
    total = sum(counts.values())
    width = max(len(k) for k in counts)
    lines = [f"run-elf: physical memory {when}: {kernel.ram.nframes} frames of 4 KiB"]
    for owner, n in counts.items():
        lines.append(f"  {owner:<{width}}  {n:>10}  {100.0 * n / total:6.2f}%")
    lines.append(f"  {'total':<{width}}  {total:>10}")
    return lines


def _ending(code: int | None, signal: int | None) -> str:
    if signal is not None:
        return f"killed by {signal_name(signal)}"
    return f"exit status {(code or 0) & 0xFF}"


class Dumper:
    """Prints (and keeps) each process's maps and page table as it exits, before its memory is released
    (`Kernel.exit` is wrapped on the instance: exit, exit_group, fatal faults, signals and the final
    shutdown all go through it), and physical memory by owner when pid 1 exits and after the run."""

    def __init__(self, kernel: Kernel, out: TextIO | None, maps: bool = False, pagetable: bool = False,
                 frames: bool = False, keep: bool = False):
        self.kernel = kernel
        self.out = out
        self.show_maps = maps
        self.show_pagetable = pagetable
        self.show_frames = frames
        self.keep = keep                      # remember every process's maps/page table (run_program)
        self.maps: dict[int, list[str]] = {}
        self.pagetables: dict[int, list[str]] = {}
        self.frames_at_exit: dict[str, int] | None = None

    def attach(self) -> Dumper:
        k = self.kernel
        exit_ = k.exit

        def dumped_exit(proc: Process, code: int | None = None, signal: int | None = None, *args, **kwargs) -> None:
            if proc.alive:
                self.dump(proc, code, signal)
            exit_(proc, code, signal, *args, **kwargs)

        dumped_exit.__doc__ = exit_.__doc__
        k.exit = dumped_exit
        return self

    def _print(self, lines: list[str]) -> None:
        if self.out is not None:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()

    def dump(self, proc: Process, code: int | None, signal: int | None) -> None:
        """Everything asked for about proc, which is about to exit with code or signal."""
        why = _ending(code, signal)
        if self.show_maps or self.keep:
            lines = maps(proc)
            self.maps[proc.pid] = lines
            if self.show_maps:
                self._print([f"run-elf: maps of pid {proc.pid} ({proc.name}) at exit ({why}):"] + lines)
        if self.show_pagetable or self.keep:
            lines = pagetable(proc)
            self.pagetables[proc.pid] = lines
            if self.show_pagetable:
                self._print([f"run-elf: {table_title(proc)} of pid {proc.pid} ({proc.name}) at exit ({why}):"]
                            + lines)
        if proc.pid == 1 and (self.show_frames or self.keep):
            self.frames_at_exit = frames(self.kernel)
            if self.show_frames:
                self._print(format_frames(self.kernel, f"as pid 1 ({proc.name}) exits ({why})"))

    def finish(self) -> None:
        """The run is over (every process reaped)."""
        if self.show_frames:
            self._print(format_frames(self.kernel, "after the run (every process gone)"))


@dataclass
class RunResult:
    """What `run_program` gives back."""
    kernel: Kernel
    status: int                     # pid 1's status as a shell reports it (128+N after signal N)
    stdout: bytes                   # the guest's standard output
    stderr: bytes                   # the guest's standard error
    messages: str                   # run-elf's own: crash reports, dumps, trace notes, statistics
    seconds: float
    instruments: Instruments
    maps: dict[int, list[str]] = field(default_factory=dict)        # by pid, as each exited
    pagetables: dict[int, list[str]] = field(default_factory=dict)  # by pid, as each exited
    frames_at_exit: dict[str, int] | None = None                    # physical memory as pid 1 exited

    @property
    def processes(self) -> list[Process]:
        """Every process of the run (all reaped by now), in pid order."""
        return all_processes(self.kernel)

    def process(self, pid: int) -> Process:
        """The process with this pid."""
        for p in self.processes:
            if p.pid == pid:
                return p
        raise KeyError(pid)


def run_program(path: str, argv: list[str | bytes] | None = None, *, env: dict[str, str] | list[str] | None = None,
                stdin: bytes = b"", trace_faults: str | None = None, trace_tlb: str | None = None,
                trace_limit: int | None = None, stats: bool = False, dump_maps: bool = False,
                dump_pagetable: bool = False, dump_frames: bool = False, count_instructions: bool | None = None,
                **config) -> RunResult:
    """Run the program at `path` in this process on a fresh machine and return what happened.

    argv defaults to [path]; env (a dict or NAME=VALUE list) to LC_ALL=C only; stdin is fed from
    bytes. The guest's stdout and stderr are captured; run-elf's messages (and '-' traces) go to
    `messages` unless a `stderr` stream is passed. The trace and dump options are the CLI's;
    other keywords go to `osmodel.kernel.Config` (phys_mem, stack_limit, seed, tlb_entries, ...).
    LoadError propagates (the program cannot be loaded), as does InternalError.
    """
    from osmodel.kernel import Config, Kernel
    from osmodel.trace import Instruments

    messages = io.StringIO()
    config.setdefault("stderr", messages)
    kernel = Kernel(Config(**config))
    inst = Instruments(kernel, trace_faults=trace_faults, trace_tlb=trace_tlb, trace_limit=trace_limit,
                       stats=stats, count_instructions=count_instructions, out=config["stderr"])
    dumper = Dumper(kernel, config["stderr"], maps=dump_maps, pagetable=dump_pagetable, frames=dump_frames,
                    keep=True).attach()
    inst.dumper = dumper
    args = [os.fsencode(a) for a in (argv if argv is not None else [path])]
    if env is None:
        envp = [b"LC_ALL=C"]
    elif isinstance(env, dict):
        envp = [os.fsencode(f"{k}={v}") for k, v in env.items()]
    else:
        envp = [os.fsencode(e) for e in env]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        fin.write(stdin)
        fin.seek(0)
        try:
            kernel.spawn(path, args, envp, stdio=(fin.fileno(), fout.fileno(), ferr.fileno()))
            status = kernel.run()
        except BaseException:
            inst.close()
            raise
        seconds = time.perf_counter() - started
        inst.finish(seconds)
        fout.seek(0)
        ferr.seek(0)
        stdout, stderr = fout.read(), ferr.read()
    text = messages.getvalue() if config["stderr"] is messages else ""
    return RunResult(kernel, status, stdout, stderr, text, seconds, inst, dumper.maps, dumper.pagetables,
                     dumper.frames_at_exit)
