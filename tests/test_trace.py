"""Fault and TLB traces (--trace-faults, --trace-tlb, --trace-limit), their formats and schema, the
instruction counter behind their "instructions" field, and the statistics printed with them.

Expectations come from the committed samples: the ELF files (pyelftools: sections, segments,
symbols), their C sources (which addresses they write), Linux's stack layout, and an independent
per-instruction count (a UC_HOOK_CODE hook) for the block-based instruction counter.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from conftest import ROOT, USING_RUN_ELF, run_elf
from osmodel.trace import FAULT_COLUMNS, SCHEMA, TLB_COLUMNS, read_jsonl, validate

pytestmark = pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own options and Python API")

PAGE = 4096
STACK_TOP = 0x7FFF_FFFF_F000
STACK_INITIAL = 128 * 1024
BIN = os.path.join(ROOT, "samples", "bin")
HEX = re.compile(r"^0x[0-9a-f]+$")


def sample(name: str, build: str = "glibc") -> str:
    return os.path.join("samples", "bin", name + ("-musl" if build == "musl" else ""))


def page_down(a: int) -> int:
    return a & ~(PAGE - 1)


def page_up(a: int) -> int:
    return (a + PAGE - 1) & ~(PAGE - 1)


def faults_of(path) -> list[dict]:
    return [r for r in read_jsonl(str(path)) if r["type"] == "fault"]


def elf_facts(path: str) -> dict:
    """The .bss section, the writable PT_LOAD segment and the symbols of a sample."""
    with open(os.path.join(ROOT, path), "rb") as f:
        elf = ELFFile(f)
        bss = elf.get_section_by_name(".bss")
        rw = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_flags"] & P_FLAGS.PF_W]
        syms = {s.name: (s["st_value"], s["st_size"]) for s in elf.get_section_by_name(".symtab").iter_symbols()}
        return {"bss": (bss["sh_addr"], bss["sh_addr"] + bss["sh_size"]),
                "file_end": rw[0]["p_vaddr"] + rw[0]["p_filesz"], "syms": syms}


# -- what the fault trace says ----------------------------------------------------------------------

@pytest.mark.parametrize("build", ["glibc", "musl"])
def test_bss_pages_give_one_demand_zero_fault_each_at_the_written_address(tmp_path, build):
    n = 8
    path = sample("bss", build)
    facts = elf_facts(path)
    bss_start, bss_end = facts["bss"]
    big, big_size = facts["syms"]["big"]
    assert bss_start <= big and big + big_size <= bss_end
    # bss.c: for p < pages: big[p * PAGE + (p * 17) % PAGE] = ...   (after reading every page first)
    written = [big + p * PAGE + (p * 17) % PAGE for p in range(n)]
    # A page that still holds file bytes of the data segment is loaded from the file, not zero-filled.
    pure_bss = [a for a in written if page_down(a) >= page_up(facts["file_end"])]
    assert len(pure_bss) >= n - 1 and len({page_down(a) for a in pure_bss}) == len(pure_bss)

    trace = tmp_path / "faults.jsonl"
    out, status = run_elf([path, str(n)], "--trace-faults", str(trace))
    assert status == 0 and b"pages touched: 8\n" in out
    recs = faults_of(trace)
    dz = [r for r in recs if r["outcome"] == "demand-zero" and big <= int(r["address"], 16) < big + big_size]
    assert [int(r["address"], 16) for r in dz] == pure_bss          # exact addresses (CR2), in order
    assert [int(r["page"], 16) for r in dz] == [page_down(a) for a in pure_bss]
    for r in dz:
        assert r["region"] == "bss" and r["access"] == "write" and r["mode"] == "user"
        assert r["symbol"].startswith("main+") and r["instruction"].startswith("mov byte ptr")
        # The page was read first (the zero page), so the write finds it present and read-only.
        assert r["error_code"] == 0b111 and r["error"] == "user write, present"
        assert r["pfn"] is not None
    # Each store is one iteration of the same loop: the instruction count advances by the same step.
    steps = {b["instructions"] - a["instructions"] for a, b in zip(dz, dz[1:])}
    assert len(steps) == 1 and 0 < steps.pop() < 40
    # Every page of big was read first: one zero-page fault each, before its write.
    zero = {int(r["page"], 16): r["seq"] for r in recs if r["outcome"] == "zero-page"}
    for r in dz:
        assert zero[int(r["page"], 16)] < r["seq"]
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(1, len(recs) + 1))
    counts = [r["instructions"] for r in recs]
    assert counts == sorted(counts), "instructions retired never goes back"


def test_deep_recursion_grows_the_stack_page_by_page(tmp_path):
    depth = 400                                  # 1 KiB frames: ~400 KiB, well past the 128 KiB initial stack
    trace = tmp_path / "faults.csv"
    out, status = run_elf([sample("recursion"), str(depth)], "--trace-faults", str(trace))
    assert status == 0 and f"depth reached: {depth}".encode() in out
    with open(trace, newline="") as f:
        rows = list(csv.DictReader(f))
    grow = [r for r in rows if r["outcome"] == "stack-grow"]
    assert grow
    pages = [int(r["page"], 16) for r in grow]
    assert pages == sorted(pages, reverse=True)
    assert all(b == a - PAGE for a, b in zip(pages, pages[1:])), "the stack grows one page at a time"
    assert pages[0] == STACK_TOP - STACK_INITIAL - PAGE           # the first page below the initial stack
    assert pages[-1] <= STACK_TOP - depth * 1024
    for r in grow:
        assert r["region"] == "stack" and r["mode"] == "user" and r["access"] == "write"
        assert r["symbol"].startswith(("descend", "main", "printf", "_IO")) or r["symbol"] == ""
        assert page_down(int(r["address"], 16)) == int(r["page"], 16)
        assert r["error"] == "user write, not present"
    assert sum(r["symbol"].startswith("descend") for r in grow) >= len(grow) - 2


def test_forkcow_copies_in_the_child_then_reuses_in_the_parent(tmp_path):
    from osmodel.dumps import run_program
    trace = tmp_path / "faults.jsonl"
    # Without the instruction counter: forkcow's checksum loops run ~160M instructions.
    r = run_program(sample("forkcow"), trace_faults=str(trace), count_instructions=False)
    assert r.status == 0, r.messages
    assert b"parent: big buffer unchanged: yes" in r.stdout
    recs = faults_of(trace)
    assert all(x["instructions"] is None for x in recs)
    child = [x for x in recs if x["pid"] == 2]
    assert sum(x["outcome"] == "cow-copy" for x in child) >= 512 + 6   # every second page of 4 MiB, the heap
    first_copy = next(x["seq"] for x in child if x["outcome"] == "cow-copy")
    child_done = child[-1]["seq"]
    parent_after = [x for x in recs if x["pid"] == 1 and x["seq"] > child_done]
    reuse = [x for x in parent_after if x["outcome"] == "cow-reuse"]
    assert len(reuse) >= 1024, "the parent, sole owner again, rewrites 1024 pages in place"
    assert all(x["seq"] > first_copy for x in reuse)
    for x in child + reuse:
        if x["outcome"] in ("cow-copy", "cow-reuse"):
            # A write to a present read-only page, by the program or by the kernel for it (read(2) into it).
            assert x["access"] == "write" and x["error"] == f"{'user' if x['mode'] == 'user' else 'supervisor'} " \
                "write, present", x
    # The stats saw the same processes (both reaped by now).
    assert [p.pid for p in r.processes] == [1, 2]
    assert r.process(2).fault_counts["cow-copy"] == sum(x["outcome"] == "cow-copy" for x in child)


def test_kernel_mode_faults_are_marked(tmp_path):
    trace = tmp_path / "faults.jsonl"
    _out, status = run_elf([sample("hello")], "--trace-faults", str(trace))
    assert status == 0
    kernel = [r for r in faults_of(trace) if r["mode"] == "kernel"]
    assert kernel
    for r in kernel:
        assert not r["error_code"] & 4 and r["error"].startswith("supervisor ")
        assert r["address"] == r["address"].lower()
    # The first is exec writing the initial stack (no instruction); later ones come from system calls.
    assert kernel[0]["seq"] == 1 and kernel[0]["rip"] is None and kernel[0]["region"] == "stack"
    in_syscalls = [r for r in kernel if r["rip"] is not None]
    assert in_syscalls and all(r["instruction"] == "syscall" for r in in_syscalls)


def test_fatal_fault_ends_the_trace_with_segv(tmp_path):
    trace = tmp_path / "faults.jsonl"
    res = run_elf([sample("nullptr")], "--trace-faults", str(trace))
    assert res.status == 139
    last = faults_of(trace)[-1]
    assert last["outcome"] == "segv" and last["region"] == "none" and last["pfn"] is None
    assert last["reason"] and last["symbol"].startswith("main+")
    report = res.stderr.decode()
    assert f"user read to {last['address']} (not present, none) at {last['rip']} <{last['symbol']}>: " \
           f"{last['instruction']}" in report


# -- formats --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bss_traces(tmp_path_factory):
    """The same run traced three times: JSON lines, CSV and table, faults and TLB events."""
    d = tmp_path_factory.mktemp("traces")
    runs = {}
    for ext in ("jsonl", "csv", "txt"):
        res = run_elf([sample("bss"), "4"], "--trace-faults", str(d / f"faults.{ext}"),
                      "--trace-tlb", str(d / f"tlb.{ext}"))
        assert res.status == 0, res.stderr
        runs[ext] = res
    return d, runs


def test_jsonl_records_validate_against_the_schema(bss_traces):
    d, _runs = bss_traces
    records = list(read_jsonl(str(d / "faults.jsonl"))) + list(read_jsonl(str(d / "tlb.jsonl")))
    assert records
    for rec in records:
        assert validate(rec) == [], rec
    assert {r["event"] for r in records if r["type"] == "tlb"} >= {"miss", "fill", "walk", "flush"}
    walks = [r for r in records if r["type"] == "tlb" and r["event"] == "walk"]
    assert {w["levels"] for w in walks} <= {1, 2, 3, 4} and 4 in {w["levels"] for w in walks}
    assert any(w["result"] == "fault" for w in walks) and any(w["result"] == "ok" for w in walks)
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed: the built-in validator "
                                                          "checked the records above")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for rec in records[:2000]:
        validator.validate(rec)


def test_validator_rejects_what_the_schema_forbids():
    good = {"type": "limit", "limit": 3, "dropped": 5, "reason": "x"}
    assert validate(good) == []
    assert validate({**good, "dropped": 0})
    assert validate({**good, "extra": 1})
    assert validate({k: v for k, v in good.items() if k != "reason"})
    fault = dict.fromkeys(FAULT_COLUMNS)
    fault.update(type="fault", seq=1, instructions=0, pid=1, mode="user", rip="0x401000", symbol="", address="0x401000",
                 page="0x401000", access="fetch", error_code=20, error="user fetch, not present", region="text",
                 outcome="file-load", pfn=5, major=True, around=0, instruction="", reason=None)
    assert validate(fault) == []
    assert validate({**fault, "address": "401000"})
    assert validate({**fault, "outcome": "teleported"})
    assert validate({**fault, "seq": True})


def test_csv_has_a_header_and_one_row_per_jsonl_record(bss_traces):
    d, _runs = bss_traces
    for kind, columns in (("faults", FAULT_COLUMNS), ("tlb", TLB_COLUMNS)):
        jsonl = list(read_jsonl(str(d / f"{kind}.jsonl")))
        with open(d / f"{kind}.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == columns
        assert len(rows) - 1 == len(jsonl)
        for rec, row in zip(jsonl, rows[1:]):
            for col, text in zip(columns, row):
                value = rec[col]
                expected = "" if value is None else ("true" if value is True else "false" if value is False
                                                     else str(value))
                assert text == expected, (col, rec, row)


def table_is_aligned(lines: list[str]) -> None:
    """Every column but the last starts (left-aligned) or ends (right-aligned) at the header's offsets."""
    def cells(line):
        return [(m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]
    header = cells(lines[0])
    rows = [cells(line) for line in lines[1:]]
    assert rows
    for row, line in zip(rows, lines[1:]):
        assert len(row) in (len(header), len(header) - 1), line
    for i in range(len(header) - 1):
        starts = {row[i][0] for row in rows}
        ends = {row[i][1] for row in rows}
        assert starts == {header[i][0]} or ends == {header[i][1]}, (lines[0][header[i][0]:header[i][1]], starts, ends)


def test_table_format_is_aligned(bss_traces):
    d, _runs = bss_traces
    for kind in ("faults", "tlb"):
        lines = (d / f"{kind}.txt").read_text().splitlines()
        jsonl = list(read_jsonl(str(d / f"{kind}.jsonl")))
        assert len(lines) == 1 + len(jsonl)
        assert lines[0].split()[:3] == ["type", "seq", "instructions"]
        table_is_aligned(lines)


def test_same_run_same_events_in_every_format(bss_traces):
    d, runs = bss_traces
    assert len({r.stdout for r in runs.values()}) == 1
    jsonl = faults_of(d / "faults.jsonl")
    rows = (d / "faults.txt").read_text().splitlines()[1:]
    assert [r.split()[1] for r in rows] == [str(x["seq"]) for x in jsonl]


def test_trace_limit_stops_recording_and_says_so(tmp_path):
    full = tmp_path / "full.jsonl"
    cut = tmp_path / "cut.jsonl"
    cut_csv = tmp_path / "cut.csv"
    res_full = run_elf([sample("hello")], "--trace-tlb", str(full))
    res = run_elf([sample("hello")], "--trace-tlb", str(cut), "--trace-limit", "25")
    res_csv = run_elf([sample("hello")], "--trace-tlb", str(cut_csv), "--trace-limit", "25")
    assert res_full.status == res.status == res_csv.status == 0
    total = len(list(read_jsonl(str(full))))
    recs = list(read_jsonl(str(cut)))
    assert len(recs) == 26 and [r["seq"] for r in recs[:25]] == list(range(1, 26))
    assert recs[:25] == list(read_jsonl(str(full)))[:25]
    assert recs[-1] == {"type": "limit", "limit": 25, "dropped": total - 25, "reason": recs[-1]["reason"]}
    assert validate(recs[-1]) == []
    assert f"{total - 25} more events not recorded" in recs[-1]["reason"]
    assert "--trace-limit 25" in res.stderr.decode() and str(cut) in res.stderr.decode()
    with open(cut_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 26 and rows[-1]["type"] == "limit" and str(total - 25) in rows[-1]["reason"]


def test_trace_to_stderr_and_one_file_for_both(tmp_path):
    res = run_elf([sample("hello")], "--trace-faults", "-")
    assert res.status == 0 and res.stdout == b"hello, world\n"
    err = res.stderr.decode().splitlines()
    header = next(i for i, line in enumerate(err) if line.startswith("type "))
    table = [line for line in err[header:] if line.startswith(("type ", "fault "))]
    table_is_aligned(table)
    both = tmp_path / "both.jsonl"
    res = run_elf([sample("hello")], "--trace-faults", str(both), "--trace-tlb", str(both))
    recs = list(read_jsonl(str(both)))
    assert {r["type"] for r in recs} == {"fault", "tlb"}
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(validate(r) == [] for r in recs)
    # A fault comes between the failed walk and the walk that succeeds after it.
    i = next(i for i, r in enumerate(recs) if r["type"] == "fault" and r["mode"] == "user")
    assert recs[i - 1]["event"] == "walk" and recs[i - 1]["result"] == "fault"
    assert recs[i + 1]["event"] == "walk" and recs[i + 1]["result"] == "ok"
    assert recs[i + 1]["page"] == recs[i]["page"] == recs[i - 1]["page"]


def test_unwritable_trace_file_is_a_usage_error(tmp_path):
    res = run_elf([sample("hello")], "--trace-faults", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert res.status == 2 and b"cannot create" in res.stderr


# -- statistics -----------------------------------------------------------------------------------

def test_stats_per_process_and_parseable(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from benchmark import parse_stats
    from osmodel.dumps import run_program
    res = run_elf([sample("forkcow")], "--stats")
    assert res.status == 0
    text = res.stderr.decode()
    assert re.search(r"^pid 1 \(forkcow\): exited with status 0$", text, re.M)
    assert re.search(r"^pid 2 \(forkcow\): exited with status 7$", text, re.M)
    faults, seconds = parse_stats(text)
    assert faults is not None and faults > 1000 and seconds is not None and seconds > 0
    assert "n/a (hits are absorbed by Unicorn's TLB; use --tlb-exact)" in text
    assert re.search(r"^  cow-copy faults: \d+$", text, re.M)

    r = run_program(sample("touch"), ["touch", "4"], stats=True, count_instructions=True)
    assert r.status == 0
    col = r.instruments.collector
    tlb = r.kernel.tlb.stats
    assert sum(c["miss"] for c in col.counts.values()) == tlb.misses
    assert sum(c["fill"] for c in col.counts.values()) == tlb.fills
    assert sum(c["flush"] for c in col.counts.values()) == tlb.flushes
    assert col.counts.keys() <= {1}, "every event belongs to pid 1"
    assert col.of(1)["instructions"] == r.instruments.counter.count > 0
    r2 = run_program(sample("forkcow"), stats=True)
    col2, tlb2 = r2.instruments.collector, r2.kernel.tlb.stats
    assert col2.counts.keys() == {1, 2}
    for event, total in (("miss", tlb2.misses), ("fill", tlb2.fills), ("evict", tlb2.evictions),
                         ("invalidate", tlb2.invalidations), ("flush", tlb2.flushes)):
        assert col2.of(1)[event] + col2.of(2)[event] == total, event
    assert col2.of(2)["switch"] >= 1 and col2.of(2)["walk"] > 0
    touched = int(re.search(r"^  demand-zero faults: (\d+)$", r.messages, re.M).group(1))
    assert 1024 <= touched < 1024 + 64                     # 4 MiB, one fault per page, and libc's few


# -- the instruction counter ----------------------------------------------------------------------

def test_instruction_counter_matches_a_per_instruction_count():
    """Block counting (plus the correction at faults) against UC_HOOK_CODE, which runs before every
    instruction: at a data fault the reference has already counted the faulting instruction."""
    import capstone
    from unicorn import UC_HOOK_CODE
    from osmodel.kernel import Config, Kernel
    from vm.icount import InstructionCounter, _is_rep_string

    kernel = Kernel(Config(stderr=io.StringIO()))
    counter = InstructionCounter(kernel.cpu, lambda a, n: kernel.peek(kernel.current, a, n)).attach()
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    ref = {"n": 0, "last": -1}
    rep: dict[int, bool] = {}

    def each(_uc, addr, size, _data):
        if addr >= 1 << 47:
            return
        if addr not in rep:
            insn = next(cs.disasm(kernel.peek(kernel.current, addr, size), addr, 1), None)
            rep[addr] = insn is not None and _is_rep_string(insn)
        if not (rep[addr] and ref["last"] == addr):      # a REP string instruction is one instruction
            ref["n"] += 1
        ref["last"] = addr

    kernel.cpu.uc.hook_add(UC_HOOK_CODE, each)
    seen = []

    def observe(proc, fault, res, error):
        if fault.error_code & 4:
            rip = kernel.cpu.reg("rip")
            seen.append((counter.retired_at(rip, fault.access == 2), ref["n"], fault.access))

    kernel.fault_observers.append(observe)
    path = os.path.join(ROOT, sample("hello"))
    with open(os.devnull, "wb") as null:
        kernel.spawn(path, [path.encode()], [], stdio=(0, null.fileno(), 2))
        assert kernel.run() == 0
    assert counter.count == ref["n"] > 5_000
    assert seen
    for ours, theirs, access in seen:
        assert ours == (theirs if access == 2 else theirs - 1), (ours, theirs, access)
