"""The run-elf command line: run a program on the emulated machine and exit with its status."""

from __future__ import annotations

import gc

gc.disable()        # the imports below only build long-lived objects: collecting while they load is wasted start-up
import os
import re
import shutil
import sys
import time

import click

from loader.elf import LoadError
from osmodel.hostsig import HostSignals
from osmodel.kernel import Config, InternalError, Kernel

gc.enable()
gc.freeze()         # and no later collection needs to scan them

MIN_PHYS_MEM = 1 << 20       # room for the kernel's tables and a small program
MAX_PHYS_MEM = 64 << 30      # frame bookkeeping is host memory too: 64 GiB needs ~150 MiB of it
EXIT_INTERNAL = 70      # EX_SOFTWARE: run-elf itself failed
EXIT_CANNOT_EXEC = 126  # as a shell, for a file it cannot execute
EXIT_NOT_FOUND = 127    # as a shell, for a command it cannot find

_SIZE = re.compile(r"^(\d+)\s*([kmgt]?)(i?b)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'1G', '512M', '65536' -> bytes (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a size such as 512M or 1G")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


class Size(click.ParamType):
    """A byte count with an optional K/M/G/T suffix."""
    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except click.BadParameter as err:
            self.fail(err.message, param, ctx)


def find_program(name: str) -> str | None:
    """The file to run: the path as given if it contains a slash or exists, else a search of PATH."""
    if "/" in name or os.path.exists(name):
        return name if os.path.exists(name) else None
    return shutil.which(name, mode=os.F_OK)


class NoInstruments:
    """Stands in for osmodel.trace.Instruments when no trace, statistics or dump was asked for."""

    def close(self) -> list[str]:
        return []

    def finish(self, seconds: float) -> None:
        pass


def find_in_root(root: str, program: str) -> str | None:
    """PROGRAM as a path inside the root directory (relative paths start at its /), if it exists there."""
    from osmodel.files import SysError
    from osmodel.vfs import FileSystem
    guest = program if program.startswith("/") else "/" + program
    try:
        _guest, host = FileSystem(root).resolve(guest, "/")
    except SysError:
        return None
    return guest if os.path.exists(host) else None


class TlbGeometry(click.ParamType):
    """ENTRIES,WAYS[,POLICY] of one TLB level."""
    name = "GEOMETRY"

    def convert(self, value, param, ctx):
        from vm.exact import TlbLevelConfig
        if isinstance(value, TlbLevelConfig):
            return value
        parts = value.split(",")
        try:
            entries, ways = int(parts[0]), int(parts[1])
            policy = parts[2] if len(parts) > 2 else "lru"
            if len(parts) > 3 or entries <= 0 or ways <= 0 or entries % ways or policy not in ("lru", "fifo", "random"):
                raise ValueError
        except (ValueError, IndexError):
            self.fail(f"{value!r} is not ENTRIES,WAYS[,POLICY] with WAYS dividing ENTRIES and POLICY lru, fifo "
                      "or random", param, ctx)
        return TlbLevelConfig(entries, ways, policy)


def guest_environment(clear: bool, unset: tuple[str, ...], settings: tuple[str, ...]) -> list[bytes]:
    """The guest's environment: the host's (unless cleared), less --unset names, plus --env settings."""
    env = {} if clear else dict(os.environb)
    for name in unset:
        env.pop(os.fsencode(name), None)
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{setting!r} is not NAME=VALUE", param_hint="--env")
        env[os.fsencode(name)] = os.fsencode(value)
    return [k + b"=" + v for k, v in env.items()]


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                 "help_option_names": ["-h", "--help"]})
@click.option("--phys-mem", type=Size(), default="1G", show_default=True,
              help="Physical memory of the emulated machine (frames are 4 KiB; host memory is used on demand).")
@click.option("--stack-limit", type=Size(), default="8M", show_default=True,
              help="How far the stack may grow down (RLIMIT_STACK); a fault beyond it is SIGSEGV.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for AT_RANDOM and getrandom: a run is repeatable for a given seed.")
@click.option("--strace", is_flag=True, help="Print each system call, its arguments and result to stderr.")
@click.option("-e", "--env", "env_set", multiple=True, metavar="NAME=VALUE",
              help="Set a variable in the guest's environment (repeatable).")
@click.option("-u", "--unset", multiple=True, metavar="NAME", help="Remove a variable from the guest's environment.")
@click.option("-i", "--ignore-environment", is_flag=True, help="Start the guest with an empty environment.")
@click.option("--tlb-entries", type=click.IntRange(1), default=1536, show_default=True,
              help="Entries in the modelled TLB (like a modern core's second-level TLB).")
@click.option("--tlb-ways", type=click.IntRange(1), default=12, show_default=True, help="Associativity of the TLB.")
@click.option("--tlb-policy", type=click.Choice(["lru", "fifo", "random"]), default="lru", show_default=True,
              help="TLB replacement policy (on the fast path recency is seen only at fills).")
@click.option("--stats", is_flag=True, help="Print fault, TLB and memory statistics (per process) to stderr at exit.")
@click.option("--trace-faults", metavar="FILE",
              help="Write one record per page fault to FILE ('-': stderr). The extension picks the format: "
                   ".jsonl JSON lines, .csv CSV, anything else an aligned table. Implies statistics at exit.")
@click.option("--trace-tlb", metavar="FILE",
              help="Write one record per TLB miss, fill, eviction, invalidation, flush, page walk and context "
                   "switch to FILE (formats as --trace-faults).")
@click.option("--trace-limit", type=click.IntRange(0), metavar="N",
              help="Record at most N events per trace file, then count the rest (a final record says how many).")
@click.option("--dump-maps", is_flag=True,
              help="Print each process's regions in /proc/PID/maps format to stderr as it exits (or is killed).")
@click.option("--dump-pagetable", is_flag=True,
              help="Print each process's page-table tree (PML4/PDPT/PD/PT entries, bits, frames) to stderr as it exits.")
@click.option("--dump-frames", is_flag=True,
              help="Print physical memory by owner (page table, anon, file, stack, kernel, zero, free) to stderr "
                   "when pid 1 exits and after the run.")
@click.option("--tlb-exact", is_flag=True,
              help="Also route every load, store and instruction fetch through a simulated split iTLB/dTLB and "
                   "second-level TLB with exact hits and misses (much slower; see --itlb/--dtlb/--stlb).")
@click.option("--itlb", type=TlbGeometry(), default=None, metavar="ENTRIES,WAYS[,POLICY]",
              help="Instruction TLB of --tlb-exact (default 64,8,lru).")
@click.option("--dtlb", type=TlbGeometry(), default=None, metavar="ENTRIES,WAYS[,POLICY]",
              help="Data TLB of --tlb-exact (default 64,4,lru).")
@click.option("--stlb", type=TlbGeometry(), default=None, metavar="ENTRIES,WAYS[,POLICY]",
              help="Second-level TLB of --tlb-exact (default 1536,12,lru).")
@click.option("--fault-around", type=click.IntRange(0, 512), default=0, show_default=True, metavar="PAGES",
              help="On a read fault of a file page, also map the cached pages around it in an aligned window "
                   "of PAGES (Linux's default is 16; 0 is off).")
@click.option("--paging", type=click.Choice(["2level", "pae"]), default="2level", show_default=True,
              help="Page tables of 32-bit (i386) programs: classic two-level (no NX: readable pages are executable), "
                   "or PAE's three levels with NX. 64-bit programs always use x86-64's four levels.")
@click.option("--aslr", is_flag=True, help="Randomise the stack, mmap and PIE bases (from --seed) as Linux's ASLR.")
@click.option("--quantum", type=click.IntRange(1), default=1_000_000, show_default=True, metavar="N",
              help="Instructions a process runs before the next runnable one gets the CPU.")
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Make DIR the guest's / : every path resolves inside it (PROGRAM too).")
@click.option("--read-only", is_flag=True, help="Refuse every change to the file system with EROFS.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop the guest after this much wall time (exit status 124).")
@click.option("--max-insns", type=click.IntRange(1), default=None, metavar="N",
              help="Stop the guest after N instructions (exit status 124; counting slows it several times).")
@click.option("--max-procs", type=click.IntRange(1), default=None, metavar="N",
              help="At most N live processes: beyond that fork fails with EAGAIN, as RLIMIT_NPROC.")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(program, args, phys_mem, stack_limit, seed, strace, env_set, unset, ignore_environment,
        tlb_entries, tlb_ways, tlb_policy, stats, trace_faults, trace_tlb, trace_limit, dump_maps, dump_pagetable,
        dump_frames, tlb_exact, itlb, dtlb, stlb, fault_around, paging, aslr, quantum, root, read_only, timeout, max_insns,
        max_procs):
    """Run the Linux x86-64 or i386 ELF PROGRAM (or #! script) with ARGS on an emulated machine whose every
    memory access goes through run-elf's own page tables, TLB and page-fault handler.

    The guest gets this process's standard input, output and error and (unless changed with -e/-u/-i)
    its environment. run-elf exits with the guest's exit status, or 128+N when a signal N killed it,
    after a one-line report on stderr. Other exit statuses: 126 the program cannot be loaded, 127 it
    does not exist, 124 a --timeout or --max-insns limit stopped it, 70 run-elf itself failed.

    `run-elf report TRACE.jsonl -o report.html` turns traces into an HTML report (see `run-elf report --help`).
    """
    path = find_program(program) if root is None else find_in_root(root, program)
    if path is None:
        click.echo(f"run-elf: {program}: No such file or directory", err=True)
        sys.exit(EXIT_NOT_FOUND)
    envp = guest_environment(ignore_environment, unset, env_set)
    argv = [os.fsencode(program)] + [os.fsencode(a) for a in args]
    if tlb_entries % tlb_ways:
        raise click.BadParameter(f"{tlb_entries} entries cannot be split into {tlb_ways} ways",
                                 param_hint="--tlb-entries")
    if phys_mem % 4096 or not MIN_PHYS_MEM <= phys_mem <= MAX_PHYS_MEM:
        raise click.BadParameter(f"{phys_mem} bytes: physical memory must be a multiple of 4 KiB from 1M to 64G",
                                 param_hint="--phys-mem")
    if fault_around & (fault_around - 1):
        raise click.BadParameter(f"{fault_around} is not a power of two (the window is aligned)",
                                 param_hint="--fault-around")
    if not tlb_exact and (itlb or dtlb or stlb):
        raise click.BadParameter("only used with --tlb-exact", param_hint="--itlb/--dtlb/--stlb")
    config = Config(phys_mem=phys_mem, stack_limit=stack_limit, seed=seed, strace=sys.stderr if strace else None,
                    tlb_entries=tlb_entries, tlb_ways=tlb_ways, tlb_policy=tlb_policy, fault_around=fault_around,
                    aslr=aslr, quantum=quantum, root=root, read_only=read_only, timeout=timeout or 0.0,
                    max_insns=max_insns or 0, max_procs=max_procs or 0, paging=paging)
    try:
        kernel = Kernel(config)
    except (ValueError, OSError) as err:
        click.echo(f"run-elf: cannot set up the machine: {err}", err=True)
        sys.exit(EXIT_INTERNAL)
    try:
        instruments = NoInstruments()
        if stats or trace_faults or trace_tlb or dump_maps or dump_pagetable or dump_frames:
            from osmodel.trace import Instruments   # only then: tracing pulls in capstone and the counters
            instruments = Instruments(kernel, trace_faults=trace_faults, trace_tlb=trace_tlb,
                                      trace_limit=trace_limit, stats=stats, dump_maps=dump_maps,
                                      dump_pagetable=dump_pagetable, dump_frames=dump_frames, out=sys.stderr)
    except OSError as err:
        raise click.BadParameter(f"cannot create {err.filename}: {err.strerror}",
                                 param_hint="--trace-faults/--trace-tlb") from None
    if tlb_exact:
        from vm.exact import ExactTlb, attach
        attach(kernel.cpu, ExactTlb(itlb=itlb, dtlb=dtlb, stlb=stlb, seed=seed))
    started = time.perf_counter()
    try:
        kernel.spawn(path, argv, envp)
    except LoadError as err:
        instruments.close()
        click.echo(f"run-elf: cannot load {program}: {err}", err=True)
        sys.exit(EXIT_CANNOT_EXEC)
    except Exception as err:                      # run-elf failed while building the first process
        instruments.close()
        click.echo(f"run-elf: internal error in pid 1 while loading {program}: {type(err).__name__}: {err}", err=True)
        sys.exit(EXIT_INTERNAL)
    host_signals = HostSignals(kernel)
    host_signals.install()           # Ctrl-C, kill and the like now go to the guest
    try:
        status = kernel.run()
    except InternalError as err:
        instruments.close()
        click.echo(f"run-elf: {err}", err=True)
        sys.exit(EXIT_INTERNAL)
    except BaseException:
        instruments.close()          # keep what the traces have so far (an interrupted long run)
        raise
    finally:
        host_signals.uninstall()
    instruments.finish(time.perf_counter() - started)
    sys.exit(status)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("traces", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="report.html", show_default=True, metavar="FILE",
              help="The HTML file to write.")
@click.option("--title", default=None, help="A title for the report (default: from the traces).")
def report(traces, output, title):
    """Write one self-contained HTML report (charts and statistics) from TRACES, the .jsonl or .csv files
    that --trace-faults/--trace-tlb wrote. Needs matplotlib (pip install 'run-elf[report]')."""
    from osmodel.visual import MissingDependency, write_report
    try:
        write_report(list(traces), output, title=title)
    except MissingDependency as err:
        click.echo(f"run-elf report: {err}", err=True)
        sys.exit(1)
    except (OSError, ValueError) as err:
        click.echo(f"run-elf report: {err}", err=True)
        sys.exit(1)
    click.echo(f"run-elf report: wrote {output}", err=True)


def main() -> None:
    """Entry point of the run-elf console script: `run-elf report ...`, else `run-elf PROGRAM ...`."""
    if sys.argv[1:2] == ["report"]:
        report(args=sys.argv[2:], prog_name="run-elf report")
    run(prog_name="run-elf")
