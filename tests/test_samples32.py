"""The 32-bit (i386) samples, natively and under run-elf: stdout and exit status must be identical.

samples/bin/NAME-i386 is samples/src/NAME.c built with `gcc -m32 -static` (`make -C samples i386`,
committed like the 64-bit builds; a missing one is a failure). An x86-64 host runs them natively
(IA32 emulation), which is the oracle; a host that cannot (a kernel without CONFIG_IA32_EMULATION,
or booted with ia32_emulation=0) skips these tests.

Every sample runs under both 32-bit paging formats, `--paging 2level` (the default) and
`--paging pae`, except `execstack` under 2level: two-level i386 page tables have no NX bit, so the
`ret` it copies onto its stack executes there, as on a real non-PAE i386, while the host (a 64-bit
kernel, NX) kills it. tests/test_i386.py checks that difference.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import ROOT, SAMPLES, USING_RUN_ELF, run_elf, run_native, same_as_native, sample_env

# The samples built for i386, as samples/Makefile lists them (I386_NAMES).
I386_SAMPLES = ["hello", "args", "bss", "heap", "recursion", "touch", "forkcow", "forkexec", "pipe", "children",
                "waitstatus", "nullptr", "kernelread", "stackoverflow", "execstack"]
FATAL = {"nullptr", "kernelread", "stackoverflow", "execstack"}   # killed by SIGSEGV after their first line
SIGSEGV_STATUS = 128 + 11
PAGINGS = ["2level", "pae"]
NO_NX = {"execstack"}                   # needs NX: not compared under 2-level paging

# Arguments per sample: one test per argument list.
ARGS = {
    "args": [["one", "two words", ""]],
    "bss": [["3"]],
    "touch": [["8"]],
    # A 32-bit program execs a 64-bit one (the default samples/bin/hello, and busybox).
    "forkexec": [[], ["/bin/busybox"]],
}
KILLED_LINE = "run-elf: pid 1 killed by SIGSEGV"


def binary(name: str) -> str:
    """Path of an i386 sample, relative to the repository root (tests run there)."""
    return f"samples/bin/{name}-i386"


@pytest.fixture(scope="module")
def host_runs_i386():
    """Skip the module when the host cannot run i386 programs natively (no IA32 emulation)."""
    path = ROOT / binary("hello")
    assert path.is_file(), f"{path} missing: run `make -C samples i386` and commit it"
    try:
        r = subprocess.run([str(path)], capture_output=True, timeout=30)
    except OSError as e:
        pytest.skip(f"this host cannot run i386 programs natively ({e}): no oracle for the 32-bit samples")
    if r.returncode != 0 or r.stdout != b"hello, world\n":
        pytest.skip(f"this host cannot run i386 programs natively (hello-i386 gave {r.returncode}, {r.stdout!r})")


def cases():
    for name in I386_SAMPLES:
        arglists = ARGS.get(name, [[]])
        for i, args in enumerate(arglists):
            for paging in PAGINGS:
                if paging == "2level" and name in NO_NX:
                    continue
                suffix = f"-{i}" if len(arglists) > 1 else ""
                yield pytest.param(name, args, paging, id=f"{name}{suffix}-{paging}")


def test_i386_samples_are_the_makefiles():
    """The list above is samples/Makefile's I386_NAMES, and each has its source."""
    text = (SAMPLES / "Makefile").read_text()
    m = re.search(r"^I386_NAMES\s*:=((?:.*\\\n)*.*)$", text, re.M)
    assert m, "I386_NAMES not found in samples/Makefile"
    assert m.group(1).replace("\\\n", " ").split() == I386_SAMPLES
    for name in I386_SAMPLES:
        assert (SAMPLES / "src" / f"{name}.c").is_file()
    assert FATAL <= set(I386_SAMPLES) and set(ARGS) <= set(I386_SAMPLES)


@pytest.mark.usefixtures("host_runs_i386")
@pytest.mark.parametrize("name", I386_SAMPLES)
def test_native(name):
    """Each binary is an i386 executable and behaves as described on this host (independent of run-elf)."""
    path = ROOT / binary(name)
    assert path.is_file(), f"{path} missing: run `make -C samples i386` and commit it"
    header = path.read_bytes()[:20]
    assert header[:5] == b"\x7fELF\x01" and header[18:20] == b"\x03\x00"    # ELFCLASS32, EM_386
    for args in ARGS.get(name, [[]]):
        out, status = run_native([binary(name), *args], env=sample_env(RUN_ELF_SAMPLE="set by test_samples32"))
        assert status == (SIGSEGV_STATUS if name in FATAL else 1 + len(args) if name == "args" else 0), out
        assert out.endswith(b"\n")


@pytest.mark.usefixtures("host_runs_i386")
@pytest.mark.parametrize("name,args,paging", list(cases()))
def test_sample_matches_native(name, args, paging):
    argv = [binary(name), *args]
    env = sample_env(RUN_ELF_SAMPLE="set by test_samples32")
    native, emulated = same_as_native(argv, "--paging", paging, env=env)
    stderr = emulated.stderr.decode(errors="replace")
    if name in FATAL and USING_RUN_ELF:
        assert native.status == SIGSEGV_STATUS
        assert len([line for line in stderr.splitlines() if line.startswith(KILLED_LINE)]) == 1, stderr


@pytest.mark.usefixtures("host_runs_i386")
@pytest.mark.parametrize("paging", PAGINGS)
def test_64bit_program_execs_a_32bit_one(paging):
    """The 64-bit forkexec's child execs hello-i386: the other direction of the width change."""
    argv = ["samples/bin/forkexec", binary("hello")]
    native = run_native(argv, env=sample_env())
    emulated = run_elf(argv, "--paging", paging, env=sample_env())
    assert b"hello, world\n" in native.stdout and native.status == 0
    assert (emulated.stdout, emulated.status) == (native.stdout, native.status), emulated.stderr
