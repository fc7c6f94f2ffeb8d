"""Helpers shared by the tests: run a program natively or under run-elf.

Both runners return a RunResult, which unpacks as ``(stdout, status)``:

    out, status = run_native(["samples/bin/hello"])
    out, status = run_elf(["samples/bin/hello"], "--some-option")
    result = run_elf([...]); result.stderr   # stderr is kept too

``status`` is normalised the way a shell reports it: a process killed by
signal N (subprocess returncode -N) has status 128+N, so a native SIGSEGV
death and an emulator that exits with 139 compare equal.

Both run from the repository root, so relative paths such as
``samples/bin/hello`` mean the same thing natively and under run-elf.

Environment variables:
  RUN_ELF_TEST_TIMEOUT  seconds before a run is killed (default 120)
  RUN_ELF_TEST_RUNNER   replace run-elf by "native" or "qemu" to check the
                        test harness itself (options passed to run_elf are
                        then not supported and the test is skipped)
"""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLES_BIN = SAMPLES / "bin"

# run-elf's default stack limit; native runs get the same RLIMIT_STACK.
STACK_LIMIT = 8 << 20

DEFAULT_TIMEOUT = float(os.environ.get("RUN_ELF_TEST_TIMEOUT", "120"))

# "" (the real run-elf), "native" or "qemu".
RUNNER = os.environ.get("RUN_ELF_TEST_RUNNER", "").strip().lower()
if RUNNER not in ("", "native", "qemu"):
    raise RuntimeError(f"RUN_ELF_TEST_RUNNER={RUNNER!r}: expected native or qemu")
USING_RUN_ELF = RUNNER == ""


class RunResult(tuple):
    """``(stdout, status)``, with ``.stdout``, ``.status`` and ``.stderr``."""

    def __new__(cls, stdout: bytes, status: int, stderr: bytes = b""):
        self = super().__new__(cls, (stdout, status))
        self.stderr = stderr
        return self

    @property
    def stdout(self) -> bytes:
        return self[0]

    @property
    def status(self) -> int:
        return self[1]

    def __repr__(self) -> str:
        return (f"RunResult(stdout={self.stdout!r}, status={self.status}, "
                f"stderr={self.stderr!r})")


def normalise_status(returncode: int) -> int:
    """Exit status as a shell shows it: death by signal N becomes 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def sample_env(**extra: str) -> dict[str, str]:
    """A small, fixed environment, identical for native and emulated runs."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
    env.update(extra)
    return env


def _set_stack_limit(limit: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_STACK, (limit, limit))
    return preexec


def _run(cmd, *, env=None, timeout=None, cwd=None, stdin=None,
         preexec_fn=None) -> RunResult:
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=str(cwd or ROOT),
            env=sample_env() if env is None else env,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"timed out after {timeout}s: {cmd}\n"
                    f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
    return RunResult(proc.stdout, normalise_status(proc.returncode), proc.stderr)


def run_native(argv, *, env=None, timeout=None, cwd=None, stdin=None,
               stack_limit: int | None = STACK_LIMIT) -> RunResult:
    """Run argv directly on the host (with RLIMIT_STACK = stack_limit)."""
    preexec = _set_stack_limit(stack_limit) if stack_limit is not None else None
    return _run(argv, env=env, timeout=timeout, cwd=cwd, stdin=stdin,
                preexec_fn=preexec)


def run_qemu(argv, *, env=None, timeout=None, cwd=None, stdin=None,
             stack_limit: int | None = STACK_LIMIT) -> RunResult:
    """Run argv under qemu-x86_64 (a reference emulator)."""
    preexec = _set_stack_limit(stack_limit) if stack_limit is not None else None
    return _run(["qemu-x86_64", *argv], env=env, timeout=timeout, cwd=cwd,
                stdin=stdin, preexec_fn=preexec)


def run_elf(argv, *options, env=None, timeout=None, cwd=None,
            stdin=None) -> RunResult:
    """Run ``python -m osmodel *options *argv`` from the repository root."""
    if not USING_RUN_ELF:
        if options:
            pytest.skip(f"run-elf options {options} with RUN_ELF_TEST_RUNNER={RUNNER}")
        runner = run_native if RUNNER == "native" else run_qemu
        return runner(argv, env=env, timeout=timeout, cwd=cwd, stdin=stdin)
    return _run([sys.executable, "-m", "osmodel", *options, *argv],
                env=env, timeout=timeout, cwd=cwd or ROOT, stdin=stdin)


def same_as_native(argv, *options, env=None, timeout=None) -> tuple[RunResult, RunResult]:
    """Run argv natively and under run-elf (with `options`): run-elf must not fail with a traceback, and
    stdout and exit status must be the native ones. (native, run-elf) results, for further checks."""
    native = run_native(argv, env=env, timeout=timeout)
    emulated = run_elf(argv, *options, env=env, timeout=timeout)
    stderr = emulated.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert emulated.stdout == native.stdout, stderr[-2000:]
    assert emulated.status == native.status, stderr[-2000:]
    return native, emulated


# The same helpers as fixtures, for tests that prefer them.

@pytest.fixture(name="run_native")
def _run_native_fixture():
    return run_native


@pytest.fixture(name="run_elf")
def _run_elf_fixture():
    return run_elf


def compile_static(sources: dict[str, str | tuple[str, tuple[str, ...]]], out: Path,
                   flags: tuple[str, ...] = ()) -> dict[str, str]:
    """Compile each C source (name -> text, or (text, extra flags); dedented) with gcc -static -O1 and
    `flags` (e.g. ("-m32",)) into out, in parallel; name -> path. Skips the calling test when gcc or the
    static libc for those flags is missing."""
    import shutil
    import textwrap
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the guest programs")
    jobs = {}
    for name, source in sources.items():
        text, extra = (source, ()) if isinstance(source, str) else source
        src, exe = out / f"{name}.c", out / name
        src.write_text(textwrap.dedent(text))
        jobs[name] = (str(exe), subprocess.Popen([gcc, *flags, "-static", "-O1", *extra, "-o", str(exe), str(src)],
                                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    paths = {}
    for name, (exe, job) in jobs.items():
        log, _ = job.communicate(timeout=300)
        if job.returncode:
            hint = " (gcc-multilib for -m32?)" if "-m32" in flags else " (no static libc?)"
            pytest.skip(f"gcc {' '.join(flags)} -static {name}.c failed{hint}: {log[-500:]}")
        paths[name] = exe
    if "-m32" in flags and not host_runs_i386(gcc):
        pytest.skip("this host does not run i386 programs natively (no IA32 emulation): no oracle")
    return paths


@functools.lru_cache(maxsize=None)
def host_runs_i386(gcc: str) -> bool:
    """Whether the host kernel runs a static i386 program (IA32 emulation), the oracle of the -m32 tests."""
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text("int main(void) { return 42; }\n")
        subprocess.run([gcc, "-m32", "-static", "-o", str(exe), str(src)], capture_output=True, timeout=300)
        return exe.exists() and subprocess.run([str(exe)], timeout=60).returncode == 42


def stack_word(stack, addr: int, size: int = 8) -> int:
    """The `size`-byte word (8, or 4 for a 32-bit stack) at addr in a loader.stack.Stack's bytes."""
    return int.from_bytes(stack.data[addr - stack.sp:addr - stack.sp + size], "little")


def stack_cstring(stack, addr: int) -> bytes:
    """The NUL-terminated string at addr in a loader.stack.Stack's bytes."""
    off = addr - stack.sp
    return stack.data[off:stack.data.index(b"\0", off)]


def decode_stack(stack, size: int = 8):
    """(argc, argv strings, envp strings, auxv pairs, address just past the auxv) read back from the
    initial stack's bytes alone, with `size`-byte words (8 for x86-64, 4 for i386)."""
    addr = stack.sp
    argc = stack_word(stack, addr, size)
    addr += size
    argv = []
    for _ in range(argc):
        argv.append(stack_cstring(stack, stack_word(stack, addr, size)))
        addr += size
    assert stack_word(stack, addr, size) == 0
    addr += size
    envp = []
    while stack_word(stack, addr, size):
        envp.append(stack_cstring(stack, stack_word(stack, addr, size)))
        addr += size
    addr += size
    auxv = []
    while True:
        pair = (stack_word(stack, addr, size), stack_word(stack, addr + size, size))
        auxv.append(pair)
        addr += 2 * size
        if pair[0] == 0:                     # AT_NULL
            return argc, argv, envp, auxv, addr
