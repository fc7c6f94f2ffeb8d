"""Runaway guests and faults inside run-elf.

- `--timeout SECONDS` and `--max-insns N` stop the guest with a one-line message and exit status 124;
- running out of physical memory kills the process that faulted (SIGKILL, 137 for pid 1) with an
  out-of-memory line, and run-elf itself carries on;
- `--max-procs N` makes fork fail with EAGAIN (as RLIMIT_NPROC), so a fork bomb ends;
- a guest writing hundreds of MiB to a pipe or a terminal is not buffered in run-elf's memory;
- an exception in one of run-elf's own hooks is reported on one line with the guest pid, the
  instruction pointer and what was being handled, and run-elf exits with 70 (EX_SOFTWARE).

Each CLI test has a twin through the Python API (Kernel(Config(...))) where Config has the knob.
The guest programs are small C files compiled here with gcc -static (skipped without gcc).
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import tty

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT, USING_RUN_ELF, compile_static, run_elf
from osmodel.kernel import Config, Kernel

SAMPLES_BIN = ROOT / "samples" / "bin"
MIB = 1 << 20
EXIT_STOPPED = 124
EXIT_INTERNAL = 70
SIGKILL_STATUS = 128 + 9

pytestmark = pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own limits and errors")

PROGRAMS = {
    "loop": r"""
        int main(void) { for (;;) ; }
    """,
    "loopfork": r"""
        /* Two processes spinning: the limit must stop both (the scheduler is round robin). */
        #include <unistd.h>
        int main(void) { fork(); for (;;) ; }
    """,
    "sleeper": r"""
        #include <unistd.h>
        int main(void) { sleep(20); return 0; }
    """,
    "reader": r"""
        /* Blocks reading standard input. */
        #include <unistd.h>
        int main(void) { char c; return read(0, &c, 1) == 1 ? 0 : 1; }
    """,
    "forkbomb": r"""
        /* Every process forks until fork fails; then (if it is not the first) it sleeps for ever reading
         * a pipe nobody writes to. The first reports why its fork failed and exits, which, as init's
         * exit, ends every other process. */
        #include <errno.h>
        #include <stdio.h>
        #include <string.h>
        #include <unistd.h>

        int main(void)
        {
            int p[2];
            char c;
            if (pipe(p))
                return 2;
            pid_t first = getpid();
            long made = 0;
            for (;;) {
                pid_t pid = fork();
                if (pid > 0 && getpid() == first)
                    made++;
                if (pid >= 0)
                    continue;                       /* parent and child both go on forking */
                int e = errno;
                if (getpid() != first) {
                    read(p[0], &c, 1);              /* blocks for ever: the write end stays open */
                    _exit(3);
                }
                printf("fork failed after %ld children: %s (%s)\n", made,
                       e == EAGAIN ? "EAGAIN" : "not EAGAIN", strerror(e));
                return e == EAGAIN ? 0 : 1;
            }
        }
    """,
    "writer": r"""
        /* Writes argv[1] MiB of 'x' to standard output, 1 MiB per write; the total on stderr. */
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>

        int main(int argc, char **argv)
        {
            long mib = argc > 1 ? atol(argv[1]) : 1;
            static char buf[1 << 20];
            memset(buf, 'x', sizeof buf);
            long long total = 0;
            for (long i = 0; i < mib; i++)
                for (size_t off = 0; off < sizeof buf;) {
                    ssize_t n = write(1, buf + off, sizeof buf - off);
                    if (n <= 0)
                        return 1;
                    off += n;
                    total += n;
                }
            fprintf(stderr, "wrote %lld bytes\n", total);
            return 0;
        }
    """,
    "pipebig": r"""
        /* A child writes argv[1] MiB into a pipe in 1 MiB writes; the parent reads and discards it. */
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/wait.h>
        #include <unistd.h>

        int main(int argc, char **argv)
        {
            long mib = argc > 1 ? atol(argv[1]) : 1;
            static char buf[1 << 20];
            int p[2];
            if (pipe(p))
                return 2;
            pid_t pid = fork();
            if (pid == 0) {
                close(p[0]);
                memset(buf, 'y', sizeof buf);
                for (long i = 0; i < mib; i++)
                    for (size_t off = 0; off < sizeof buf;) {
                        ssize_t n = write(p[1], buf + off, sizeof buf - off);
                        if (n <= 0)
                            _exit(1);
                        off += n;
                    }
                _exit(0);
            }
            close(p[1]);
            long long total = 0;
            ssize_t n;
            while ((n = read(p[0], buf, sizeof buf)) > 0)
                total += n;
            int status;
            waitpid(pid, &status, 0);
            printf("read %lld bytes, writer status %d\n", total, WEXITSTATUS(status));
            return 0;
        }
    """,
    "oomchild": r"""
        /* A child touches argv[1] MiB; the parent reports how it ended, then touches 1 MiB itself. */
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/mman.h>
        #include <sys/wait.h>
        #include <unistd.h>

        static void touch(size_t mib)
        {
            size_t len = mib << 20;
            volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                _exit(2);
            for (size_t off = 0; off < len; off += 4096)
                p[off] = 1;
            munmap((void *)p, len);
        }

        int main(int argc, char **argv)
        {
            size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
            pid_t pid = fork();
            if (pid == 0) {
                touch(mib);
                printf("child survived\n");
                _exit(0);
            }
            int status;
            if (waitpid(pid, &status, 0) != pid)
                return 3;
            if (WIFSIGNALED(status))
                printf("child killed by signal %d\n", WTERMSIG(status));
            else
                printf("child exited %d\n", WEXITSTATUS(status));
            touch(1);
            printf("parent still fine\n");
            return 0;
        }
    """,
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, str]:
    """name -> path of each PROGRAMS entry compiled with gcc -static."""
    return compile_static(PROGRAMS, tmp_path_factory.mktemp("limits-programs"))


def api_run(path: str, args=(), stdin: int | None = None, **config):
    """Run path through Kernel(Config(**config)); (kernel, status, stdout, stderr, frames at boot)."""
    err = io.StringIO()
    kernel = Kernel(Config(stderr=err, **config))
    boot = kernel.ram.used_frames
    with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
        kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [b"LC_ALL=C"],
                     stdio=(null.fileno() if stdin is None else stdin, out.fileno(), 2))
        status = kernel.run()
        out.seek(0)
        stdout = out.read()
    return kernel, status, stdout, err.getvalue(), boot


def one_line(stderr: bytes | str) -> str:
    """The single line of stderr (and no traceback)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("run-elf: "), lines[0]
    return lines[0]


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


# -- --timeout ---------------------------------------------------------------------------------------------

def test_timeout_stops_an_endless_loop(programs):
    r, elapsed = timed(run_elf, [programs["loop"]], "--timeout", "2", timeout=30)
    assert r.status == EXIT_STOPPED, r
    line = one_line(r.stderr)
    assert "time limit" in line, line
    assert 1.5 <= elapsed <= 2 + 8, elapsed


def test_timeout_through_the_api(programs):
    (kernel, status, stdout, err, boot), elapsed = timed(api_run, programs["loop"], timeout=1, phys_mem=64 * MIB)
    assert status == EXIT_STOPPED
    line = one_line(err)
    assert re.fullmatch(r"run-elf: time limit of 1 s reached: stopped pid 1 at 0x[0-9a-f]+ <main\+0x[0-9a-f]+>: .*",
                        line), line
    assert 0.9 <= elapsed <= 5
    assert kernel.processes == {} and kernel.ram.used_frames == boot


def test_timeout_stops_every_process(programs):
    (kernel, status, _out, err, boot), elapsed = timed(api_run, programs["loopfork"], timeout=1, phys_mem=64 * MIB)
    assert status == EXIT_STOPPED
    assert "time limit" in one_line(err)
    assert elapsed <= 5
    assert kernel.next_pid == 3                     # both ran, both were stopped
    assert kernel.processes == {} and kernel.ram.used_frames == boot


def run_api_in_subprocess(program: str, config: str, stdin=subprocess.DEVNULL, limit: float = 5.0):
    """Kernel(Config(<config>)) running program, in a child Python killed after `limit` s (a hang fails)."""
    script = textwrap.dedent(f"""
        import sys
        from osmodel.kernel import Config, Kernel
        k = Kernel(Config({config}))
        k.spawn({program!r}, [b"prog"], [], stdio=(0, 1, 2))
        sys.exit(k.run())
    """)
    try:
        return subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), env={"PYTHONPATH": str(ROOT)},
                              stdin=stdin, capture_output=True, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the guest was not stopped: still running after {limit} s")


def test_timeout_stops_a_sleeping_guest(programs):
    proc = run_api_in_subprocess(programs["sleeper"], "timeout=1, phys_mem=64 << 20")
    assert proc.returncode == EXIT_STOPPED
    assert "time limit" in one_line(proc.stderr)


def test_timeout_stops_a_guest_blocked_on_input(programs):
    rfd, wfd = os.pipe()                   # nobody writes, the write end stays open: read blocks for ever
    try:
        proc = run_api_in_subprocess(programs["reader"], "timeout=1, phys_mem=64 << 20", stdin=rfd)
    finally:
        os.close(rfd)
        os.close(wfd)
    assert proc.returncode == EXIT_STOPPED
    assert "time limit" in one_line(proc.stderr)


# -- --max-insns --------------------------------------------------------------------------------------------

def test_max_insns_stops_an_endless_loop(programs):
    r, elapsed = timed(run_elf, [programs["loop"]], "--max-insns", "200000", timeout=30)
    assert r.status == EXIT_STOPPED, r
    line = one_line(r.stderr)
    assert "instruction" in line.lower(), line
    assert elapsed <= 10


def test_max_insns_stops_every_process(programs):
    r = run_elf([programs["loopfork"]], "--max-insns", "3000000", timeout=30)
    assert r.status == EXIT_STOPPED, r
    assert "instruction" in one_line(r.stderr).lower()


def test_max_insns_above_what_the_program_needs_changes_nothing():
    r = run_elf([SAMPLES_BIN / "hello"], "--max-insns", "100000000")
    assert (r.stdout, r.status, r.stderr) == (b"hello, world\n", 0, b"")


def test_max_insns_through_the_api(programs):
    kernel, status, _out, err, boot = api_run(programs["loop"], max_insns=200_000, phys_mem=64 * MIB)
    assert status == EXIT_STOPPED
    assert "instruction" in one_line(err).lower()
    assert kernel.processes == {} and kernel.ram.used_frames == boot


# -- out of memory -----------------------------------------------------------------------------------------

def test_out_of_memory_kills_pid_1_with_sigkill():
    r = run_elf([SAMPLES_BIN / "touch", "64"], "--phys-mem", "4M")
    assert r.status == SIGKILL_STATUS, r
    line = one_line(r.stderr)
    assert "out of memory" in line and "pid 1" in line, line
    assert r.stdout == b""


def test_out_of_memory_kills_only_the_process_that_faulted(programs):
    r = run_elf([programs["oomchild"], "64"], "--phys-mem", "8M")
    assert (r.stdout, r.status) == (b"child killed by signal 9\nparent still fine\n", 0), r
    line = one_line(r.stderr)
    assert "out of memory" in line and "pid 2" in line, line


def test_out_of_memory_through_the_api(programs):
    kernel, status, stdout, err, boot = api_run(programs["oomchild"], ("64",), phys_mem=8 * MIB)
    assert (stdout, status) == (b"child killed by signal 9\nparent still fine\n", 0)
    assert "out of memory" in one_line(err)
    assert kernel.processes == {} and kernel.ram.used_frames == boot


# -- --max-procs -------------------------------------------------------------------------------------------

def test_max_procs_ends_a_fork_bomb(programs):
    r, elapsed = timed(run_elf, [programs["forkbomb"]], "--max-procs", "20", timeout=60)
    assert r.status == 0, r
    assert re.fullmatch(rb"fork failed after \d+ children: EAGAIN \(Resource temporarily unavailable\)\n", r.stdout), r
    assert r.stderr == b""
    assert elapsed < 20


def test_max_procs_through_the_api(programs):
    kernel, status, stdout, err, boot = api_run(programs["forkbomb"], max_procs=20, phys_mem=256 * MIB)
    assert status == 0, err
    assert b"EAGAIN" in stdout
    assert kernel.next_pid - 1 == 20               # exactly the limit was created, never more
    assert kernel.processes == {} and kernel.ram.used_frames == boot


# -- output is not buffered in run-elf -------------------------------------------------------------------------

def run_and_drain(argv, stdout_fd=None, read_fd=None) -> tuple[int, int, str, int]:
    """Run `python -m osmodel argv`, reading and discarding its output as it comes.

    With stdout_fd/read_fd (a terminal) the child writes to stdout_fd and we read read_fd; otherwise a pipe.
    Returns (exit status, bytes read, stderr, peak RSS of the run-elf process in KiB).
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "osmodel", *map(str, argv)], cwd=str(ROOT),
                                stdin=subprocess.DEVNULL, stdout=stdout_fd if stdout_fd is not None else subprocess.PIPE,
                                stderr=err)
        total = 0
        deadline = time.monotonic() + 120
        if stdout_fd is not None:
            os.close(stdout_fd)
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(read_fd, 1 << 16)
                except OSError:                 # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                total += len(chunk)
        else:
            while time.monotonic() < deadline:
                chunk = proc.stdout.read1(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            proc.stdout.close()
        _pid, wstatus, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        err.seek(0)
        return proc.returncode, total, err.read().decode(errors="replace"), usage.ru_maxrss


@pytest.fixture(scope="module")
def baseline_rss() -> int:
    """Peak RSS (KiB) of run-elf running hello: what the interpreter and the machine cost by themselves."""
    status, total, _err, rss = run_and_drain([SAMPLES_BIN / "hello"])
    assert (status, total) == (0, 13)
    return rss


def test_output_to_a_pipe_is_not_buffered(programs, baseline_rss):
    mib = 256
    status, total, err, rss = run_and_drain([programs["writer"], mib])
    assert (status, total, err) == (0, mib * MIB, f"wrote {mib * MIB} bytes\n")
    assert rss - baseline_rss < 100 * 1024, f"peak RSS {rss} KiB vs {baseline_rss} KiB for hello"


def test_output_to_a_terminal_is_not_buffered(programs, baseline_rss):
    mib = 48
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        status, total, err, rss = run_and_drain([programs["writer"], mib], stdout_fd=slave, read_fd=master)
    finally:
        os.close(master)
    assert (status, total, err) == (0, mib * MIB, f"wrote {mib * MIB} bytes\n")
    assert rss - baseline_rss < 40 * 1024, f"peak RSS {rss} KiB vs {baseline_rss} KiB for hello"


def test_a_guest_pipe_is_bounded(programs, baseline_rss):
    mib = 128
    status, total, err, rss = run_and_drain([programs["pipebig"], mib])
    assert (status, err) == (0, "")
    assert total == len(f"read {mib * MIB} bytes, writer status 0\n")
    assert rss - baseline_rss < 60 * 1024, f"peak RSS {rss} KiB vs {baseline_rss} KiB for hello"


# -- faults inside run-elf (exit status 70) -----------------------------------------------------------------------

def inject(setup: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the CLI (osmodel.cli.main) in a child Python after `setup` has broken part of run-elf."""
    script = textwrap.dedent("""
        import dataclasses, sys
        import osmodel.cli, osmodel.fault, osmodel.kernel, osmodel.report, osmodel.syscall
        def boom(*args, **kwargs):
            raise RuntimeError("injected failure")
    """) + textwrap.dedent(setup) + textwrap.dedent(f"""
        sys.argv = ["run-elf"] + {[str(a) for a in argv]!r}
        osmodel.cli.main()
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), env={"PYTHONPATH": str(ROOT), "LC_ALL": "C"},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def text_range(path) -> tuple[int, int]:
    """[start, end) of the executable PT_LOAD of an ELF file."""
    with open(path, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1:
                return seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"]
    raise AssertionError("no text")


def internal_error_line(proc: subprocess.CompletedProcess, pid: int, program) -> str:
    """Exit 70 and one `run-elf: ... internal error ...` line naming the pid and an rip inside the program's text."""
    assert proc.returncode == EXIT_INTERNAL, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines()]
    assert "Traceback" not in proc.stderr.decode(errors="replace")
    ours = [ln for ln in lines if ln.startswith("run-elf: ")]
    assert len(ours) == 1 and len(lines) == 1, lines
    line = ours[0]
    assert "internal error" in line, line
    assert re.search(rf"\bpid {pid}\b", line), line
    m = re.search(r"\brip[ =](0x[0-9a-f]+)", line)
    assert m, line
    start, end = text_range(program)
    assert start <= int(m.group(1), 16) < end, line
    assert "injected failure" in line, line
    return line


SYSCALL_SETUP = """
    table = osmodel.syscall.TABLE
    nr = osmodel.syscall.NUMBERS[{name!r}]
    entry = table[nr]
    def handler(k, p, *args):
        if p.pid == {pid}:
            boom()
        return entry.handler(k, p, *args)
    table[nr] = dataclasses.replace(entry, handler=handler)
"""


def test_exception_in_a_system_call_is_exit_70():
    program = SAMPLES_BIN / "hello"
    proc = inject(SYSCALL_SETUP.format(name="write", pid=1), [program])
    line = internal_error_line(proc, 1, program)
    assert re.search(r"\bsystem call write\b", line), line
    assert proc.stdout == b""


def test_exception_in_a_child_s_system_call_names_the_child():
    program = SAMPLES_BIN / "forkcow"
    proc = inject(SYSCALL_SETUP.format(name="exit_group", pid=2), [program])
    line = internal_error_line(proc, 2, program)
    assert re.search(r"\bsystem call exit_group\b", line), line


def test_exception_in_the_page_fault_handler_is_exit_70():
    program = SAMPLES_BIN / "hello"
    setup = """
        run = osmodel.kernel.Kernel.run
        def broken_run(self):
            osmodel.fault.FaultHandler.do_anonymous_page = boom    # break the fault path once the guest runs
            return run(self)
        osmodel.kernel.Kernel.run = broken_run
    """
    proc = inject(setup, [program])
    line = internal_error_line(proc, 1, program)
    assert "page fault" in line, line


def test_exception_while_handling_an_interrupt_is_exit_70():
    program = SAMPLES_BIN / "privileged"
    setup = """
        osmodel.kernel.signal_for_interrupt = boom
    """
    proc = inject(setup, [program])
    line = internal_error_line(proc, 1, program)
    assert re.search(r"interrupt|exception|general protection", line), line


def test_exception_while_loading_is_exit_70():
    setup = """
        osmodel.fault.FaultHandler.do_anonymous_page = boom
    """
    proc = inject(setup, [SAMPLES_BIN / "hello"])
    assert proc.returncode == EXIT_INTERNAL, proc.stderr
    line = one_line(proc.stderr)
    assert "internal error" in line and "pid 1" in line, line
