"""Processes: the fork/exec/wait/pipe samples natively and under run-elf, and what the
memory system did for them, seen through the Python API.

test_process_sample_matches_native runs each sample (glibc and musl builds) natively and
under run-elf and requires the same stdout and exit status.

The memory tests drive osmodel.kernel.Kernel directly (spawn, run, fault_observers,
proc.fault_counts, ram.used_frames).  Each runs in a child Python process, so a guest
that hangs is killed by the timeout instead of hanging pytest; the child prints one JSON
object with what it observed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import DEFAULT_TIMEOUT, ROOT, USING_RUN_ELF, run_native, same_as_native, sample_env

PROCESS_SAMPLES = ["forkcow", "children", "pipe", "forkexec", "spawn", "waitstatus", "pipeline"]
BUILDS = ["glibc", "musl"]

PAGE = 4096
BIG = 4 << 20                 # forkcow's buffer the parent fills before fork
BIG_PAGES = BIG // PAGE       # the parent rewrites all of them after the child is gone
CHILD_BIG_PAGES = BIG_PAGES // 2   # the child writes every second page
CHILD_HEAP_PAGES = 6          # and memsets the 6-page malloc buffer


def binary(name: str, build: str) -> str:
    return f"samples/bin/{name}" + ("-musl" if build == "musl" else "")


# Exit status and lines every run must contain (checked natively, so a sample that stops
# testing what it claims is caught even without run-elf).
EXPECTED_LINES = {
    "forkcow": [b"parent: child exited: yes, status 7",
                b"child: global_init=54321 bss_var=99",
                b"parent: global_init=12345 bss_var=7",
                b"parent: big buffer unchanged: yes",
                b"child: wrote 512 pages of the big buffer, sum now differs: yes"],
    "children": [b"statuses: 0 3 6 9 12 15 18 21 24 27 30 33 36 39 42 45 48 51 54 57",
                 b"reaped: 20", b"waitpid after the last: ECHILD", b"waitpid again: -1 ECHILD"],
    "pipe": [b"bytes: 204800", b"writer exited: yes, checksum matches writer: yes",
             b"EPIPE: yes", b"second child exited: yes, status 0"],
    "forkexec": [b"hello, world", b"parent: child exited: yes, status 0",
                 b"execve missing: returned -1, ENOENT", b"execve directory: returned -1, EACCES"],
    "spawn": [b"hello, world", b"posix_spawn: 0", b"child exited: yes, status 0",
              b"posix_spawn missing: ENOENT", b"waitpid afterwards: ECHILD"],
    "waitstatus": [b"WNOHANG while it blocks: 0",
                   b"killed child: WIFEXITED 0 WIFSIGNALED 1 WTERMSIG 15 (SIGTERM)",
                   b"WNOHANG before it exits: 0",
                   b"released child: WIFEXITED 1 WEXITSTATUS 42 WIFSIGNALED 0",
                   b"ppid ok: yes", b"no more children: ECHILD"],
    "pipeline": [b"HELLO, WORLD", b"[1 line]", b"writer: exited, status 0",
                 b"reader: exited, status 0"],
}


def cases():
    for name in PROCESS_SAMPLES:
        for build in BUILDS:
            yield pytest.param(name, build, id=f"{name}-{build}")


def test_every_sample_listed():
    for name in PROCESS_SAMPLES:
        assert (ROOT / "samples" / "src" / f"{name}.c").is_file()
    assert set(EXPECTED_LINES) == set(PROCESS_SAMPLES)


@pytest.mark.parametrize("name,build", list(cases()))
def test_native(name, build):
    """The sample does what it says on this host (independent of run-elf)."""
    path = ROOT / binary(name, build)
    assert path.is_file(), f"{path} missing: run `make -C samples` and commit it"
    out, status = run_native([binary(name, build)], env=sample_env())
    assert status == 0, out
    lines = out.splitlines()
    for want in EXPECTED_LINES[name]:
        assert any(line.startswith(want) for line in lines), (want, out)
    # Deterministic: a second run prints the same.
    assert run_native([binary(name, build)], env=sample_env()) == (out, status)


@pytest.mark.parametrize("name,build", list(cases()))
def test_process_sample_matches_native(name, build):
    same_as_native([binary(name, build)], env=sample_env())


# -- the memory system, through the Python API ------------------------------------------------

# Runs one program on a fresh Kernel and prints, as JSON: the frames in use after
# construction, after spawn and after run; the guest's stdout and status; every fault
# (in order) as [pid, vaddr, is_write, outcome, region start, region end, region kind];
# each process's fault_counts; and how many page-table pages the kernel half grew by.
DRIVER = r"""
import json, os, sys, tempfile
from osmodel.kernel import Config, Kernel
from vm.mmu import ACCESS_WRITE

path, args = sys.argv[1], sys.argv[2:]
kernel = Kernel(Config(phys_mem=256 << 20))
frames_boot = kernel.ram.used_frames
owners_boot = kernel.ram.frames_by_owner()
kernel_tables_boot = kernel.kernel_pt.table_pages
events, procs = [], {}

def observe(proc, fault, res, error):
    procs[proc.pid] = proc
    region = res.region if res is not None else None
    events.append([proc.pid, fault.vaddr, fault.access == ACCESS_WRITE,
                   res.outcome if res is not None else type(error).__name__,
                   region.start if region is not None else None,
                   region.end if region is not None else None,
                   region.kind if region is not None else None])

kernel.fault_observers.append(observe)
stdin = os.open(os.devnull, os.O_RDONLY)
with tempfile.TemporaryFile() as out:
    proc = kernel.spawn(path, [p.encode() for p in [path, *args]],
                        [b"PATH=/usr/local/bin:/usr/bin:/bin", b"LC_ALL=C"],
                        stdio=(stdin, out.fileno(), 2))
    procs[proc.pid] = proc
    frames_spawned = kernel.ram.used_frames
    status = kernel.run()
    out.seek(0)
    stdout = out.read().decode(errors="replace")
os.close(stdin)
json.dump({
    "frames_boot": frames_boot,
    "frames_spawned": frames_spawned,
    "frames_end": kernel.ram.used_frames,
    "owners_boot": owners_boot,
    "owners_end": kernel.ram.frames_by_owner(),
    "kernel_tables_grown": kernel.kernel_pt.table_pages - kernel_tables_boot,
    "status": status,
    "stdout": stdout,
    "init_pid": proc.pid,
    "events": events,
    "fault_counts": {str(pid): dict(p.fault_counts) for pid, p in procs.items()},
}, sys.stdout)
"""


def drive(path: str, *args: str) -> dict:
    """Run path on a Kernel in a child Python process; what DRIVER printed."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, path, *args], cwd=str(ROOT),
                          env={**sample_env(), "PYTHONPATH": str(ROOT)},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=DEFAULT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


def frames(got: dict) -> str:
    """The frame counts of a drive() result and which owners kept more than at boot, for messages."""
    kept = {owner: n - got["owners_boot"].get(owner, 0) for owner, n in got["owners_end"].items()
            if owner != "free" and n != got["owners_boot"].get(owner, 0)}
    return (f"frames at boot {got['frames_boot']}, after spawn {got['frames_spawned']}, "
            f"after run {got['frames_end']}; more than at boot: {kept}; "
            f"kernel-half page-table pages added: {got['kernel_tables_grown']}")


def assert_frames_returned(got: dict) -> None:
    """Every frame the processes used is free again: the allocator is back to its count at boot
    (the kernel's direct-map tables exist from boot, so nothing grows there either)."""
    assert got["kernel_tables_grown"] == 0, frames(got)
    assert got["frames_end"] == got["frames_boot"], frames(got)


needs_run_elf = pytest.mark.skipif(not USING_RUN_ELF, reason="drives run-elf's kernel API")


def in_big_region(event: list) -> bool:
    """Whether a fault is in forkcow's 4 MiB buffer: the one region of 4 MiB to 5 MiB, not the stack."""
    start, end, kind = event[4:7]
    return start is not None and kind != "stack" and BIG <= end - start < BIG + (1 << 20)


@needs_run_elf
@pytest.mark.parametrize("build", BUILDS)
def test_forkcow_copy_on_write(build):
    path = binary("forkcow", build)
    native = run_native([path], env=sample_env())
    got = drive(path)
    assert got["status"] == native.status == 0
    assert got["stdout"].encode() == native.stdout

    events = got["events"]
    init = got["init_pid"]
    child_pids = sorted({e[0] for e in events} - {init})
    assert child_pids == [init + 1], "one child, the next pid (pid 2)"
    child = child_pids[0]
    fork_at = next(i for i, e in enumerate(events) if e[0] == child)

    # The child writes every second page of the buffer the parent filled before fork and
    # has not touched since (it is waiting): each of those pages is still shared, so the
    # child's first write to it copies it.
    writes = [e for e in events if e[0] == child and e[2] and in_big_region(e)]
    first_write = {}
    for e in writes:
        first_write.setdefault(e[1] // PAGE, e[3])
    assert len(first_write) == CHILD_BIG_PAGES, sorted(first_write)[:10]
    assert set(first_write.values()) == {"cow-copy"}, first_write
    # ... and counted in its fault_counts, with the 6-page malloc buffer it memsets.
    child_counts = got["fault_counts"][str(child)]
    assert child_counts.get("cow-copy", 0) >= CHILD_BIG_PAGES + CHILD_HEAP_PAGES, child_counts

    # After the child has exited the parent is the only owner of every page of the buffer:
    # its writes reuse the frames in place (for the pages the child did not copy as well).
    parent_big_after = [e for i, e in enumerate(events)
                        if i > fork_at and e[0] == init and e[2] and in_big_region(e)]
    pages = {e[1] // PAGE for e in parent_big_after}
    assert len(pages) == BIG_PAGES, len(pages)
    assert {e[3] for e in parent_big_after} == {"cow-reuse"}, \
        sorted({e[3] for e in parent_big_after})
    assert got["fault_counts"][str(init)].get("cow-reuse", 0) >= BIG_PAGES

    # Every frame comes back: the copies, the parent's pages, page tables, task records.
    assert_frames_returned(got)
    assert got["frames_spawned"] > got["frames_boot"]


@needs_run_elf
def test_hello_frames_return():
    """The baseline: a run without fork gives back every frame it took."""
    got = drive("samples/bin/hello")
    assert got["stdout"] == "hello, world\n" and got["status"] == 0
    assert_frames_returned(got)


@needs_run_elf
@pytest.mark.parametrize("name,build", list(cases()))
def test_no_frame_leaked(name, build):
    """Forked, exec'd, piped and killed processes all give back every frame."""
    path = binary(name, build)
    native = run_native([path], env=sample_env())
    got = drive(path)
    assert (got["stdout"].encode(), got["status"]) == tuple(native)
    assert_frames_returned(got)


def test_a_script_as_program_runs_through_its_interpreter(tmp_path):
    """PROGRAM may be a #! script, run as execve runs one: the interpreter with its one argument, then the
    script's path and arguments; a script may name another script as its interpreter."""
    inner = tmp_path / "inner.sh"
    inner.write_text('#!/bin/sh -e\necho "inner: $0 $*"\nexit 7\n')
    outer = tmp_path / "outer"
    outer.write_text(f"#!{inner} from-outer\n")
    for script in (inner, outer):
        script.chmod(0o755)
    for argv in ([str(inner), "a", "b c"], [str(outer), "x"]):
        native, _ = same_as_native(argv)
        assert native.status == 7 and native.stdout.startswith(b"inner: ")
