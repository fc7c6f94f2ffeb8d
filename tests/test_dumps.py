"""Dumps: --dump-maps (/proc/PID/maps), --dump-pagetable (the four-level tree), --dump-frames (physical
memory by owner), and the Python API behind them (osmodel.dumps: maps, pagetable, frames, run_program).

Expectations come from the ELF files (pyelftools: PT_LOAD segments and their flags), Linux's
layout (the stack ends at 0x7ffffffff000) and the x86-64 entry format.
"""

from __future__ import annotations

import io
import os
import re

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from conftest import ROOT, USING_RUN_ELF, run_elf
from osmodel import dumps

pytestmark = pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own options and Python API")

PAGE = 4096
STACK_TOP = 0x7FFF_FFFF_F000
MAPS_LINE = re.compile(r"^([0-9a-f]{8,})-([0-9a-f]{8,}) ([r-][w-][x-][ps]) ([0-9a-f]{8}) 00:00 0(?: +(\S.*))?$")
PT_LINE = re.compile(r"^((?: \.\.)+)(PML4|PDPT|PD|PT)\[(\d+)\] va (0x[0-9a-f]+) pte (0x[0-9a-f]{16}) \[([A-Z ]+|-)\] "
                     r"frame (0x[0-9a-f]+)$")
LEVELS = ("PML4", "PDPT", "PD", "PT")
BITS = {"P": 1, "W": 2, "U": 4, "A": 32, "D": 64, "G": 256, "NX": 1 << 63}


def sample(name: str) -> str:
    return os.path.join("samples", "bin", name)


def sections(text: str, what: str) -> dict[int, list[str]]:
    """The lines under each 'run-elf: <what> of pid N (...) at exit (...):' header, by pid."""
    out: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(rf"^run-elf: {what} of pid (\d+) \(.*\) at exit \(.*\):$", line)
        if m:
            current = out.setdefault(int(m.group(1)), [])
        elif line.startswith("run-elf: ") or current is None:
            current = None
        else:
            current.append(line)
    return out


def load_segments(path: str) -> list[tuple[int, int, str]]:
    """(page-aligned start, page-aligned end of the file-backed part, perms) of each PT_LOAD."""
    with open(os.path.join(ROOT, path), "rb") as f:
        segs = []
        for s in ELFFile(f).iter_segments():
            if s["p_type"] != "PT_LOAD":
                continue
            fl = s["p_flags"]
            perms = ("r" if fl & P_FLAGS.PF_R else "-") + ("w" if fl & P_FLAGS.PF_W else "-") + \
                    ("x" if fl & P_FLAGS.PF_X else "-") + "p"
            start = s["p_vaddr"] & ~(PAGE - 1)
            end = (s["p_vaddr"] + s["p_filesz"] + PAGE - 1) & ~(PAGE - 1)
            segs.append((start, end, perms))
        return segs


def test_dump_maps_at_exit():
    path = sample("hello")
    res = run_elf([path], "--dump-maps")
    assert res.status == 0 and res.stdout == b"hello, world\n"
    text = res.stderr.decode()
    assert "run-elf: maps of pid 1 (hello) at exit (exit status 0):" in text
    lines = sections(text, "maps")[1]
    parsed = [MAPS_LINE.match(line) for line in lines]
    assert all(parsed), lines
    exe = os.path.join(ROOT, path)
    # The file-backed pages of every PT_LOAD segment are lines naming the program; the text segment is one
    # r-xp line exactly (the writable one may be split: glibc makes its RELRO part read-only).
    named = [(int(m.group(1), 16), int(m.group(2), 16), m.group(3)) for m in parsed if m.group(5) == exe]
    for start, end, perms in load_segments(path):
        for page in range(start, end, PAGE):
            assert any(lo <= page < hi for lo, hi, _p in named), (hex(page), lines)
        if perms == "r-xp":
            assert (start, end, "r-xp") in named, (hex(start), hex(end), lines)
    stack = [m for m in parsed if m.group(5) == "[stack]"]
    assert len(stack) == 1 and int(stack[0].group(2), 16) == STACK_TOP and stack[0].group(3) == "rw-p"
    starts = [int(m.group(1), 16) for m in parsed]
    assert starts == sorted(starts)


def test_dump_maps_on_a_fatal_fault_and_for_every_process():
    res = run_elf([sample("nullptr")], "--dump-maps")
    assert res.status == 139
    text = res.stderr.decode()
    crash = text.index("run-elf: pid 1 killed by SIGSEGV")
    dump = text.index("run-elf: maps of pid 1 (nullptr) at exit (killed by SIGSEGV):")
    assert crash < dump
    assert any(line.endswith("[stack]") for line in sections(text, "maps")[1])

    res = run_elf([sample("forkcow")], "--dump-maps")
    assert res.status == 0
    by_pid = sections(res.stderr.decode(), "maps")
    assert set(by_pid) == {1, 2}
    # The child exits while the 4 MiB buffer is still mapped; the parent frees it before it exits.
    big = [m for m in (MAPS_LINE.match(x) for x in by_pid[2]) if int(m.group(2), 16) - int(m.group(1), 16) >= 4 << 20
           and m.group(5) is None]
    assert big


def test_dump_pagetable_has_the_four_levels():
    res = run_elf([sample("hello")], "--dump-pagetable")
    assert res.status == 0
    lines = sections(res.stderr.decode(), "page table")[1]
    assert re.match(r"^page table 0x[0-9a-f]+$", lines[0])
    entries = [PT_LINE.match(line) for line in lines[1:]]
    assert all(entries), [line for line, m in zip(lines[1:], entries) if not m]
    assert {m.group(2) for m in entries} == set(LEVELS)
    for m in entries:
        depth = m.group(1).count("..")
        assert LEVELS[depth - 1] == m.group(2)                     # indentation follows the level
        pte = int(m.group(5), 16)
        assert int(m.group(7), 16) == (pte & 0x000F_FFFF_FFFF_F000) >> 12
        bits = m.group(6).split() if m.group(6) != "-" else []
        assert bits == [b for b in BITS if pte & BITS[b]]
        assert 0 <= int(m.group(3)) < 512
        if m.group(2) != "PT":
            assert bits[:3] == ["P", "W", "U"]                     # tables grant everything; the leaf decides
    # Every leaf (PT) maps a page inside one of the process's regions.
    maps = dumps.run_program(sample("hello"), dump_maps=True).maps[1]
    regions = [(int(m.group(1), 16), int(m.group(2), 16)) for m in map(MAPS_LINE.match, maps)]
    leaves = [int(m.group(4), 16) for m in entries if m.group(2) == "PT"]
    assert leaves
    for va in leaves:
        assert any(lo <= va < hi for lo, hi in regions), hex(va)


def frame_tables(text: str) -> list[tuple[int, dict[str, int]]]:
    """(frames announced, {owner: count}) for each physical-memory dump in text."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^run-elf: physical memory .*: (\d+) frames of 4 KiB$", line)
        if not m:
            continue
        counts = {}
        for row in lines[i + 1:]:
            r = re.match(r"^  (\w+) +(\d+)(?: +[\d.]+%)?$", row)
            if not r:
                break
            counts[r.group(1)] = int(r.group(2))
        out.append((int(m.group(1)), counts))
    return out


def test_dump_frames_sums_to_the_frame_count():
    res = run_elf([sample("forkcow")], "--dump-frames", "--phys-mem", "64M")
    assert res.status == 0
    tables = frame_tables(res.stderr.decode())
    assert len(tables) == 2                                  # as pid 1 exits, and after the run
    nframes = (64 << 20) // PAGE
    for announced, counts in tables:
        total = counts.pop("total")
        assert announced == nframes == total == sum(counts.values())
        assert set(counts) == {"free", "page_table", "anon", "file", "stack", "kernel", "zero"}
    at_exit, after = tables[0][1], tables[1][1]
    assert at_exit["anon"] > 0 and at_exit["file"] > 0
    assert after["anon"] == after["file"] == after["stack"] == 0   # nothing leaked


def test_python_api_on_a_live_process():
    from osmodel.kernel import Config, Kernel
    kernel = Kernel(Config(stderr=io.StringIO(), phys_mem=64 << 20))
    path = os.path.join(ROOT, sample("hello"))
    proc = kernel.spawn(path, [path.encode()], [b"LC_ALL=C"])
    lines = dumps.maps(proc)
    assert lines == proc.aspace.maps() and lines[-1].endswith("[stack]")
    tree = dumps.pagetable(proc)
    # Nothing has run yet: the only user page mapped is the initial stack written by exec.
    leaves = [m for m in map(PT_LINE.match, tree[1:]) if m.group(2) == "PT"]
    assert leaves and all(STACK_TOP - (128 << 10) <= int(m.group(4), 16) < STACK_TOP for m in leaves)
    full = dumps.pagetable(proc, user_only=False)
    assert len(full) > len(tree) and any("G" in line.split("[")[-1] for line in full)
    counts = dumps.frames(kernel)
    assert sum(counts.values()) == kernel.ram.nframes
    assert counts["page_table"] >= 4 and counts["zero"] == 1


def test_run_program():
    r = dumps.run_program(sample("args"), ["args", "x"], env={"RUN_ELF_SAMPLE": "yes"}, dump_frames=True,
                          phys_mem=64 << 20)
    assert r.status == 2 and b"argv[1]: x\n" in r.stdout and b"RUN_ELF_SAMPLE: yes\n" in r.stdout
    assert r.stderr == b""
    assert [p.pid for p in r.processes] == [1] and r.process(1).exit_code == 2
    assert r.maps[1] and r.pagetables[1][0].startswith("page table ")
    assert sum(r.frames_at_exit.values()) == (64 << 20) // PAGE
    assert "physical memory after the run" in r.messages
    # The guest's stderr is captured apart from run-elf's own messages.
    r = dumps.run_program(sample("nullptr"))
    assert r.status == 139 and b"reading through a NULL pointer\n" in r.stdout
    assert "pid 1 killed by SIGSEGV" in r.messages and r.maps[1][-1].endswith("[stack]")
