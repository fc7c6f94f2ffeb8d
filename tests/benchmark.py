#!/usr/bin/env python3
"""Benchmark run-elf against native execution and qemu-x86_64.

    python tests/benchmark.py [--runs N] [--timeout S] [--runners native,qemu,run-elf]
                              [--baseline DIR]

Each round runs every program under every runner, interleaved (native,
qemu, run-elf, native, qemu, run-elf, ...), so slow drifts in machine load
hit all runners alike.  Prints the median wall time per runner and the
ratios run-elf/qemu and run-elf/native.  A runner that is not available is
skipped with a message.  Then, if run-elf has a --stats option, runs the
touch sample with it (once per round, interleaved with the baseline's) and
reports demand-zero faults per second from the median run time.

--baseline DIR adds a runner "baseline": run-elf from another checkout of
this repository (e.g. `git worktree add /tmp/before HEAD~1`), run from DIR
with the same arguments, for before/after figures from one interleaved run.

To benchmark another program, add a (label, argv) entry to PROGRAMS; argv is
relative to the repository root.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAMS: list[tuple[str, list[str]]] = [
    ("compute", ["samples/bin/compute", "100000000"]),
    ("touch", ["samples/bin/touch", "64"]),
    ("forktouch", ["samples/bin/forktouch", "64"]),
    ("ls -l /usr/bin", ["/bin/ls", "-l", "/usr/bin"]),
    ("python3 -S -c pass", ["/usr/bin/python3", "-S", "-c", "pass"]),
]

# The program run with --stats to measure the demand-zero fault rate.
STATS_PROGRAM = ["samples/bin/touch", "64"]

RUN_ELF = [sys.executable, "-m", "osmodel"]
RUNNERS = ("native", "qemu", "run-elf", "baseline")


def runner_commands() -> dict[str, list[str]]:
    """Runner name -> command prefix."""
    return {
        "native": [],
        "qemu": ["qemu-x86_64"],
        "run-elf": list(RUN_ELF),
        "baseline": list(RUN_ELF),
    }


def run_elf_help(cwd: Path = ROOT) -> str | None:
    """The --help text of the run-elf in `cwd`, or None if it cannot be run yet."""
    try:
        p = subprocess.run([*RUN_ELF, "--help"], cwd=cwd, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout + p.stderr if p.returncode == 0 else None


def available(name: str, baseline: Path | None = None) -> tuple[bool, str]:
    if name == "native":
        return True, ""
    if name == "qemu":
        return (shutil.which("qemu-x86_64") is not None,
                "qemu-x86_64 not found on PATH")
    if name == "run-elf":
        return (run_elf_help() is not None,
                "`python -m osmodel --help` does not run (yet)")
    if name == "baseline":
        if baseline is None:
            return False, "no --baseline DIR given"
        return (run_elf_help(baseline) is not None,
                f"`python -m osmodel --help` does not run in {baseline}")
    return False, f"unknown runner {name}"


def timed_run(cmd: list[str], timeout: float, cwd: Path = ROOT) -> tuple[float | None, bytes, str]:
    """Wall time (None on failure), stdout, and a failure description."""
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, b"", f"timed out after {timeout:g}s"
    except OSError as e:
        return None, b"", str(e)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        tail = p.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return None, p.stdout, f"exit status {p.returncode} {' '.join(tail)}"
    return elapsed, p.stdout, ""


def fmt_time(t: float | None) -> str:
    if t is None:
        return "n/a"
    return f"{t * 1000:.1f}ms" if t < 1 else f"{t:.2f}s"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


# --- --stats parsing -------------------------------------------------------
# The stats format is run-elf's to choose; accept the obvious spellings:
#   "demand-zero faults: 16384", "16384 demand-zero faults", "zero-fill: 16,384"
#   "time: 1.23s", "elapsed 1234 ms", "run time: 1.2 seconds"

_NUM = r"(\d[\d,_]*(?:\.\d+)?)"
_DZ = r"(?:demand[-_ ]?zero|zero[-_ ]?fill)"
_FAULTS_AFTER = re.compile(_DZ + r"[^\d\n]*?" + _NUM, re.I)
_FAULTS_BEFORE = re.compile(_NUM + r"\s+" + _DZ, re.I)
_TIME = re.compile(r"(?:run[-_ ]?time|elapsed|wall|time|seconds)[^\d\n]*?"
                   + _NUM + r"\s*(ms|us|µs|s(?:ec(?:onds?)?)?)?\b", re.I)
_UNITS = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def _number(s: str) -> float:
    return float(s.replace(",", "").replace("_", ""))


def parse_stats(text: str) -> tuple[int | None, float | None]:
    """(demand-zero fault count, run time in seconds) found in stats text."""
    faults = None
    for line in text.splitlines():
        m = _FAULTS_AFTER.search(line) or _FAULTS_BEFORE.search(line)
        if m:
            faults = int(_number(m.group(1)))
            break
    seconds = None
    for line in text.splitlines():
        m = _TIME.search(line)
        if m:
            unit = (m.group(2) or "s").lower()
            seconds = _number(m.group(1)) * _UNITS.get(unit, 1.0)
            break
    return faults, seconds


def stats_run(cwd: Path, timeout: float) -> tuple[int | None, float | None, list[str], str]:
    """One `run-elf --stats` run of STATS_PROGRAM from `cwd`: (demand-zero faults, run time in
    seconds, the non-empty stderr lines, why the figures are missing or "")."""
    cmd = [*RUN_ELF, "--stats", *STATS_PROGRAM]
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, [], "timed out"
    wall = time.perf_counter() - start
    faults, seconds = parse_stats(p.stderr + "\n" + p.stdout)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    if faults is None:
        return None, None, lines, "no demand-zero fault count in the stats"
    if seconds is None or seconds <= 0:
        return faults, None, lines, (f"{faults} faults, but no run time in the stats; "
                                     f"wall time was {fmt_time(wall)}")
    return faults, seconds, lines, ""


def stats_report(runs: int, timeout: float, baseline: Path | None = None) -> None:
    """Demand-zero faults per second of STATS_PROGRAM: the median over `runs` --stats runs, interleaved
    with the baseline's when there is one."""
    print()
    label = " ".join(STATS_PROGRAM)
    sides = [("run-elf", ROOT)] + ([("baseline", baseline)] if baseline is not None else [])
    usable = []
    for name, cwd in sides:
        help_text = run_elf_help(cwd)
        if help_text is None or "--stats" not in help_text:
            why = "not runnable" if help_text is None else "no --stats option"
            print(f"{name} demand-zero faults/s ({label}): n/a ({why})")
        else:
            usable.append((name, cwd))
    seconds: dict[str, list[float]] = {name: [] for name, _ in usable}
    faults: dict[str, int] = {}
    failed: dict[str, str] = {}
    shown = False
    for _ in range(max(runs, 1)):
        for name, cwd in usable:
            if name in failed:
                continue
            n, t, lines, why = stats_run(cwd, timeout)
            if name == "run-elf" and not shown and lines:
                print(f"run-elf --stats {label} (stderr):")
                for line in lines[:40]:
                    print(f"    {line}")
                shown = True
            if t is None:
                failed[name] = why
                continue
            faults[name] = n
            seconds[name].append(t)
    for name, _ in usable:
        if name in failed:
            print(f"{name} demand-zero faults/s ({label}): n/a ({failed[name]})")
            continue
        t = statistics.median(seconds[name])
        print(f"{name} demand-zero faults/s ({label}): {faults[name] / t:,.0f} "
              f"({faults[name]} faults in {fmt_time(t)}, median of {len(seconds[name])})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds per single run (default 600)")
    ap.add_argument("--runners", default="native,qemu,run-elf",
                    help="comma-separated subset of " + ",".join(RUNNERS))
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="another checkout of this repository whose run-elf runs too, as 'baseline'")
    args = ap.parse_args()

    commands = runner_commands()
    wanted = [r.strip() for r in args.runners.split(",") if r.strip()]
    if args.baseline is not None and "baseline" not in wanted:
        wanted.append("baseline")
    runners = []
    for name in wanted:
        if name not in commands:
            print(f"unknown runner {name!r}; choose from {', '.join(commands)}")
            return 2
        ok, why = available(name, args.baseline)
        if ok:
            runners.append(name)
        else:
            print(f"skipping {name}: {why}")
    cwds = {name: (args.baseline if name == "baseline" else ROOT) for name in runners}

    programs = []
    for label, argv in PROGRAMS:
        if (ROOT / argv[0]).is_file():
            programs.append((label, argv))
        else:
            print(f"skipping {label}: {argv[0]} not found (make -C samples)")

    times: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str], str] = {}
    reference: dict[str, bytes] = {}
    for rnd in range(args.runs):
        print(f"round {rnd + 1}/{args.runs}", file=sys.stderr, flush=True)
        for label, argv in programs:
            for name in runners:
                key = (label, name)
                if key in failed:
                    continue
                t, out, why = timed_run([*commands[name], *argv], args.timeout, cwds[name])
                if t is None:
                    failed[key] = why
                    print(f"  {label} under {name} failed: {why}", file=sys.stderr)
                    continue
                ref = reference.setdefault(label, out)
                if out != ref:
                    print(f"  warning: {label} under {name}: stdout differs from "
                          f"the first run's", file=sys.stderr)
                times.setdefault(key, []).append(t)

    def median(label: str, name: str) -> float | None:
        ts = times.get((label, name))
        return statistics.median(ts) if ts else None

    shown = [r for r in RUNNERS if r != "baseline" or r in runners]
    header = ["program", *shown, "run-elf/qemu", "run-elf/native"]
    if "baseline" in runners:
        header.append("run-elf/baseline")
    rows = []
    for label, argv in programs:
        m = {r: median(label, r) for r in RUNNERS}
        row = [f"{label} ({' '.join(argv[1:])})", *[fmt_time(m[r]) for r in shown],
               fmt_ratio(m["run-elf"], m["qemu"]), fmt_ratio(m["run-elf"], m["native"])]
        if "baseline" in runners:
            row.append(fmt_ratio(m["run-elf"], m["baseline"]))
        rows.append(row)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    print()
    print(f"median wall time over {args.runs} round(s)")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    for (label, name), why in failed.items():
        print(f"{label} under {name}: failed ({why})")

    if "run-elf" in runners:
        stats_report(args.runs, args.timeout, args.baseline if "baseline" in runners else None)
    else:
        print(f"\ndemand-zero faults/s ({' '.join(STATS_PROGRAM)}): n/a (run-elf skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
