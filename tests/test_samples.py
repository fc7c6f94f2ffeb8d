"""Every sample program, glibc and musl builds, natively and under run-elf:
stdout and exit status must be identical.

The binaries in samples/bin are committed (rebuild with `make -C samples`);
a missing one is a failure, not a skip.
"""

from __future__ import annotations

import pytest

from conftest import ROOT, SAMPLES, USING_RUN_ELF, run_native, same_as_native, sample_env

# Every sample with a source file is tested; a new src/NAME.c is picked up
# automatically (add it to FATAL or ARGS below if it needs that).
SAMPLE_NAMES = sorted(p.stem for p in (SAMPLES / "src").glob("*.c"))

# Samples that must die with SIGSEGV after printing their last line.
FATAL = {
    "nullptr", "writetext", "execstack", "kernelread",
    "stackoverflow", "mprotectwrite", "privileged",
}
SIGSEGV_STATUS = 128 + 11

# Arguments per sample: a list of argument lists (one test each).
# Small sizes keep the suite fast.
ARGS = {
    "args": [["one", "two words", ""], ["-v", "--help", "--", "x"]],
    "bss": [[], ["3"]],
    "recursion": [[]],
    "compute": [["1000000"]],
    "touch": [["8"]],
    "readfile": [[]],  # defaults to argv[0], its own binary
}

BUILDS = ["glibc", "musl"]

KILLED_LINE = "run-elf: pid 1 killed by SIGSEGV"


def binary(name: str, build: str) -> str:
    """Path of a sample, relative to the repository root (tests run there)."""
    return f"samples/bin/{name}" + ("-musl" if build == "musl" else "")


def cases():
    for name in SAMPLE_NAMES:
        for build in BUILDS:
            for i, args in enumerate(ARGS.get(name, [[]])):
                suffix = f"-{i}" if len(ARGS.get(name, [[]])) > 1 else ""
                yield pytest.param(name, build, args,
                                   id=f"{name}-{build}{suffix}")


def expected_status(name: str, args: list[str]) -> int:
    if name in FATAL:
        return SIGSEGV_STATUS
    if name == "args":
        return 1 + len(args)
    return 0


def test_samples_exist():
    assert SAMPLE_NAMES, "no sources in samples/src"
    assert FATAL <= set(SAMPLE_NAMES)
    assert set(ARGS) <= set(SAMPLE_NAMES)


@pytest.mark.parametrize("name,build,args", list(cases()))
def test_native(name, build, args):
    """The sample itself behaves as described (independent of run-elf)."""
    path = ROOT / binary(name, build)
    assert path.is_file(), f"{path} missing: run `make -C samples` and commit it"
    env = sample_env(RUN_ELF_SAMPLE="set by test_samples")
    out, status = run_native([binary(name, build), *args], env=env)
    assert status == expected_status(name, args), out
    assert out, "every sample prints something"
    assert out.endswith(b"\n")


@pytest.mark.parametrize("name,build,args", list(cases()))
def test_sample_matches_native(name, build, args):
    path = ROOT / binary(name, build)
    assert path.is_file(), f"{path} missing: run `make -C samples` and commit it"

    argv = [binary(name, build), *args]
    env = sample_env(RUN_ELF_SAMPLE="set by test_samples")

    native, emulated = same_as_native(argv, env=env)
    stderr = emulated.stderr.decode(errors="replace")

    if name in FATAL:
        assert native.status == SIGSEGV_STATUS
        if USING_RUN_ELF:
            killed = [line for line in stderr.splitlines()
                      if line.startswith(KILLED_LINE)]
            assert len(killed) == 1, stderr
