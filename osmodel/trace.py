"""Fault and TLB traces: one record per page fault or TLB event, streamed to a file as it happens.

    run-elf --trace-faults faults.jsonl --trace-tlb tlb.csv --trace-limit 100000 PROGRAM

The file name picks the format: `.jsonl` one JSON object per line (validated by `SCHEMA`), `.csv`
comma-separated values with a header row, anything else (and `-`, stderr) an aligned text table.
Records are written as they happen (no list of events is kept), so memory stays bounded however
many there are; `--trace-limit N` records the first N of each file and ends it with a `limit`
record saying how many were dropped (and a note on stderr).

Every trace attaches a `vm.icount.InstructionCounter`, so records carry the number of
instructions retired so far (exact: the instructions after the faulting one in its block are
not counted), and ends with the run's statistics (`osmodel.stats`).

`Instruments` wires traces, statistics and dumps to a kernel, for the CLI and for
`osmodel.dumps.run_program`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import TYPE_CHECKING, Iterator, TextIO

from osmodel import report
from osmodel.fault import OOM, OUTCOMES, SEGV
from osmodel.stats import StatsCollector, add_tlb_listener, owner_pid, print_stats
from vm.icount import InstructionCounter
from vm.mmu import ACCESS_FETCH, ACCESS_NAMES, PF_USER, PageFault, describe_error_code
from vm.pagetable import PTE_FRAME, PTE_NX, PTE_USER, PTE_WRITABLE, describe_pte
from vm.ram import OutOfMemory
from vm.tlb import GLOBAL_ASID

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process
    from osmodel.fault import Resolution

__all__ = ["SCHEMA", "FAULT_SCHEMA", "TLB_SCHEMA", "LIMIT_SCHEMA", "FAULT_COLUMNS", "TLB_COLUMNS", "REGIONS",
           "TLB_EVENTS", "TraceWriter", "open_trace", "trace_format", "FaultTracer", "TlbTracer", "Instruments",
           "validate", "read_jsonl", "perms"]

INT80_SIZE = 2          # bytes of `int 0x80`: the i386 system-call hook sees EIP past it
REGIONS = ("text", "rodata", "data", "bss", "heap", "stack", "mmap", "kernel", "none")
TLB_EVENTS = ("miss", "fill", "evict", "invalidate", "flush", "walk", "switch")
FORMATS = ("jsonl", "csv", "table")

# -- the JSON Schema of a .jsonl trace ---------------------------------------------------------------

_HEX = {"type": "string", "pattern": "^0x[0-9a-f]+$"}
_HEX_OR_NULL = {"type": ["string", "null"], "pattern": "^0x[0-9a-f]+$"}
_COUNT = {"type": "integer", "minimum": 0}
_COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_TEXT_OR_NULL = {"type": ["string", "null"]}

FAULT_SCHEMA = {
    "type": "object",
    "description": "One page fault, in the order they happened.",
    "properties": {
        "type": {"const": "fault"},
        "seq": {"type": "integer", "minimum": 1, "description": "record number in this trace, from 1"},
        "instructions": {**_COUNT_OR_NULL, "description": "instructions retired before the faulting one "
                                                          "(machine-wide); null if not counted"},
        "pid": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["user", "kernel"],
                 "description": "user: the CPU faulted; kernel: copyin/copyout in a system call (no PF_USER)"},
        "rip": {**_HEX_OR_NULL, "description": "the faulting instruction (kernel mode: the syscall); null "
                                              "for a kernel access outside any system call (exec's stack)"},
        "symbol": {"type": "string", "description": "rip as symbol+offset, '' if unknown"},
        "address": {**_HEX, "description": "the exact faulting address (CR2)"},
        "page": {**_HEX, "description": "its page, as the MMU reported it"},
        "access": {"enum": list(ACCESS_NAMES)},
        "error_code": {"type": "integer", "minimum": 0, "description": "the x86 page-fault error code"},
        "error": {"type": "string", "description": "the error code in words"},
        "region": {"enum": list(REGIONS)},
        "outcome": {"enum": list(OUTCOMES), "description": "what the handler did; segv/oom: it refused"},
        "pfn": {**_COUNT_OR_NULL, "description": "the frame now mapped, null if none"},
        "major": {"type": "boolean", "description": "the file had to be read (a page-cache miss)"},
        "around": {"type": "integer", "minimum": 0,
                   "description": "neighbouring file pages fault-around mapped with this one (--fault-around)"},
        "instruction": {"type": "string", "description": "the instruction at rip (capstone), '' if unknown"},
        "reason": {**_TEXT_OR_NULL, "description": "why it was refused (segv/oom), else null"},
    },
    "required": ["type", "seq", "instructions", "pid", "mode", "rip", "symbol", "address", "page", "access",
                 "error_code", "error", "region", "outcome", "pfn", "major", "around", "instruction", "reason"],
    "additionalProperties": False,
}

TLB_SCHEMA = {
    "type": "object",
    "description": "One event of the modelled TLB, a page walk, or a context switch, in order.",
    "properties": {
        "type": {"const": "tlb"},
        "seq": {"type": "integer", "minimum": 1},
        "instructions": {**_COUNT_OR_NULL, "description": "instructions retired so far; null if not counted"},
        "event": {"enum": list(TLB_EVENTS)},
        "pid": {"type": ["integer", "null"], "minimum": 1,
                "description": "the process charged: the running one for miss/fill/evict/walk, the owner of "
                               "the address space for invalidate/flush"},
        "asid": {**_COUNT_OR_NULL, "description": "address-space id (PCID); null: a global entry, or every "
                                                  "address space for invalidate/flush"},
        "global": {"type": ["boolean", "null"], "description": "fill/evict: whether the entry is global"},
        "page": {**_HEX_OR_NULL, "description": "the virtual page (null for flush and switch)"},
        "pfn": _COUNT_OR_NULL,
        "perms": {"type": ["string", "null"], "pattern": "^r[w-][x-][us]$",
                  "description": "r, w or -, x or -, u (user) or s (supervisor only)"},
        "flags": {**_TEXT_OR_NULL, "description": "the entry's bits, e.g. 'P W U A D NX'"},
        "access": {"enum": list(ACCESS_NAMES) + [None], "description": "walk: the access walked for"},
        "levels": {**_COUNT_OR_NULL, "description": "walk: page-table entries read (1 with a paging-structure "
                                                    "cache hit, up to 4)"},
        "result": {"enum": ["ok", "fault", None], "description": "walk: translated, or a page fault"},
        "reason": {**_TEXT_OR_NULL, "description": "invalidate/flush/switch: why (munmap, mprotect, "
                                                  "copy-on-write, exec, exit, new address space, context switch)"},
    },
    "required": ["type", "seq", "instructions", "event", "pid", "asid", "global", "page", "pfn", "perms", "flags",
                 "access", "levels", "result", "reason"],
    "additionalProperties": False,
}

LIMIT_SCHEMA = {
    "type": "object",
    "description": "The last record of a trace cut short by --trace-limit.",
    "properties": {
        "type": {"const": "limit"},
        "limit": _COUNT,
        "dropped": {"type": "integer", "minimum": 1, "description": "events that happened but were not recorded"},
        "reason": {"type": "string"},
    },
    "required": ["type", "limit", "dropped", "reason"],
    "additionalProperties": False,
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "run-elf trace record (one JSON object per line of a .jsonl trace)",
    "oneOf": [FAULT_SCHEMA, TLB_SCHEMA, LIMIT_SCHEMA],
}

FAULT_COLUMNS = tuple(FAULT_SCHEMA["required"])
TLB_COLUMNS = tuple(TLB_SCHEMA["required"])

# Widths of the table format (at least the column name's); text longer than its width is cut with '~'.
# `reason` is always the last column, and unbounded.
_WIDTHS = {"type": 5, "seq": 9, "instructions": 12, "pid": 5, "mode": 6, "rip": 14, "symbol": 28, "address": 18,
           "page": 18, "access": 6, "error_code": 10, "error": 29, "region": 6, "outcome": 11, "pfn": 8, "major": 5,
           "around": 6,
           "instruction": 44, "event": 10, "asid": 5, "global": 6, "perms": 5, "flags": 14, "levels": 6,
           "result": 6}
_RIGHT = {"seq", "instructions", "pid", "error_code", "pfn", "asid", "levels"}

# -- a validator for the part of JSON Schema that SCHEMA uses -----------------------------------------

_TYPES = {"object": dict, "string": str, "boolean": bool, "null": type(None), "array": list}


def _is_type(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(instance, schema: dict = SCHEMA, path: str = "$") -> list[str]:
    """Errors of `instance` against `schema` ([] if valid), for the keywords SCHEMA uses: type, const, enum,
    pattern, minimum, properties, required, additionalProperties, oneOf."""
    errors: list[str] = []
    if "oneOf" in schema:
        matches = [sub for sub in schema["oneOf"] if not validate(instance, sub, path)]
        if len(matches) != 1:
            hint = ""
            if isinstance(instance, dict):
                for sub in schema["oneOf"]:
                    const = sub.get("properties", {}).get("type", {}).get("const")
                    if const is not None and instance.get("type") == const:
                        hint = "; " + "; ".join(validate(instance, sub, path))
            errors.append(f"{path}: matches {len(matches)} of the oneOf schemas, not 1{hint}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, n) for n in names):
            return errors + [f"{path}: {instance!r} is not of type {' or '.join(names)}"]
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} is not {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if "pattern" in schema and isinstance(instance, str) and not re.search(schema["pattern"], instance):
        errors.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    if "minimum" in schema and _is_type(instance, "number") and instance < schema["minimum"]:
        errors.append(f"{path}: {instance!r} is less than {schema['minimum']}")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in instance:
                errors.append(f"{path}: '{key}' is required")
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}: unexpected property '{key}'")
    return errors


def read_jsonl(path: str) -> Iterator[dict]:
    """The records of a .jsonl trace, one by one."""
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# -- writers ---------------------------------------------------------------------------------------


def trace_format(path: str) -> str:
    """'jsonl', 'csv' or 'table', from the file name ('-' is stderr, a table)."""
    lower = path.lower()
    if lower.endswith(".jsonl"):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    return "table"


class TraceWriter:
    """Streams records with `columns` to a text stream in one format, numbering them and honouring a limit.

    Callers check `full` before building a record (then call `drop()`), so a trace past its limit
    costs almost nothing.
    """

    def __init__(self, stream: TextIO, fmt: str, columns: tuple[str, ...], limit: int | None = None,
                 name: str = "", close_stream: bool = True):
        if fmt not in FORMATS:
            raise ValueError(f"trace format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.columns = tuple(c for c in columns if c != "reason") + (("reason",) if "reason" in columns else ())
        self.limit = limit
        self.name = name or getattr(stream, "name", "trace")
        self.close_stream = close_stream
        self.written = 0
        self.dropped = 0
        self.full = limit is not None and limit <= 0
        self.closed = False
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if fmt == "csv":
            self._csv.writerow(self.columns)
        elif fmt == "table":
            stream.write(self._table_line({c: c for c in self.columns}, header=True))

    def emit(self, record: dict) -> None:
        """Write one record (its 'seq' is set here), or count it as dropped past the limit."""
        if self.full:
            self.dropped += 1
            return
        self.written += 1
        record["seq"] = self.written
        if self.limit is not None and self.written >= self.limit:
            self.full = True
        self._write(record)

    def drop(self) -> None:
        """One event not recorded (the trace is full)."""
        self.dropped += 1

    def _write(self, record: dict) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        elif self.fmt == "csv":
            self._csv.writerow([_csv_value(record.get(c)) for c in self.columns])
        else:
            self.stream.write(self._table_line(record))

    def _table_line(self, record: dict, header: bool = False) -> str:
        parts = []
        last = len(self.columns) - 1
        for i, col in enumerate(self.columns):
            value = record.get(col)
            text = str(value) if header else _table_value(value)
            if i == last and col == "reason":
                parts.append(text if value is not None or header else "")
                continue
            width = max(_WIDTHS.get(col, 12), len(col))
            if len(text) > width and not (col in _RIGHT and not header):
                text = text[:width - 1] + "~"
            parts.append(text.rjust(width) if col in _RIGHT else text.ljust(width))
        return "  ".join(parts).rstrip() + "\n"

    def limit_record(self) -> dict | None:
        """The closing record of a trace cut short, or None."""
        if not self.dropped:
            return None
        return {"type": "limit", "limit": self.limit, "dropped": self.dropped,
                "reason": f"trace limit of {self.limit} events reached: {self.dropped} more events not recorded"}

    def close(self) -> str | None:
        """Finish the trace: the limit record if events were dropped; a note for stderr then, else None."""
        if self.closed:
            return None
        self.closed = True
        rec = self.limit_record()
        if rec is not None:
            if self.fmt == "jsonl":
                self.stream.write(json.dumps(rec, separators=(",", ":")) + "\n")
            elif self.fmt == "csv":
                self._csv.writerow([_csv_value(rec.get(c)) for c in self.columns])
            else:
                self.stream.write(f"# {rec['reason']}\n")
        if self.close_stream:
            self.stream.close()
        else:
            self.stream.flush()
        if rec is None:
            return None
        return f"run-elf: {self.name}: {rec['reason']} (--trace-limit {self.limit})"


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_value(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def open_trace(path: str, columns: tuple[str, ...], limit: int | None, stderr: TextIO) -> TraceWriter:
    """A writer for the trace file `path` ('-': `stderr`, as a table); OSError if it cannot be created."""
    if path == "-":
        return TraceWriter(stderr, "table", columns, limit, name="stderr", close_stream=False)
    fmt = trace_format(path)
    stream = open(path, "w", newline="" if fmt == "csv" else None, buffering=1 << 16, encoding="utf-8")
    return TraceWriter(stream, fmt, columns, limit, name=path)


def perms(pte: int) -> str:
    """An entry's permissions: r, w or -, x or -, then u (user) or s (supervisor only)."""
    return ("r" + ("w" if pte & PTE_WRITABLE else "-") + ("-" if pte & PTE_NX else "x")
            + ("u" if pte & PTE_USER else "s"))


# -- tracers ---------------------------------------------------------------------------------------


class FaultTracer:
    """Writes one record per page fault, from `kernel.fault_observers`."""

    def __init__(self, kernel: Kernel, writer: TraceWriter, counter: InstructionCounter | None):
        self.kernel = kernel
        self.writer = writer
        self.counter = counter
        self._syscall: tuple[Process, int, object, str] | None = None   # (process, rip, symbols, instruction)

    def attach(self) -> FaultTracer:
        k = self.kernel
        k.fault_observers.append(self.observe)
        cpu = k.cpu
        cpu.on_syscall = self._noted(cpu.on_syscall, "syscall", 0)
        if getattr(cpu, "on_int80", None) is not None:
            cpu.on_int80 = self._noted(cpu.on_int80, "int 0x80", INT80_SIZE)
        return self

    def _noted(self, handler, insn: str, past: int):
        """`handler` (a system-call entry of the CPU) wrapped to remember, while it runs, the process, the
        system-call instruction `insn` (`past` bytes before RIP in the hook) and its symbols."""
        k = self.kernel
        cpu = k.cpu

        def noted_syscall(*args, **kwargs) -> None:
            proc = k.current
            self._syscall = (proc, cpu.reg("rip") - past, proc.symbols if proc is not None else None, insn)
            try:
                handler(*args, **kwargs)
            finally:
                self._syscall = None

        noted_syscall.__doc__ = handler.__doc__
        return noted_syscall

    def observe(self, proc: Process, fault: PageFault, res: Resolution | None, error: object) -> None:
        if self.writer.full:
            self.writer.drop()
            return
        self.writer.emit(self.record(proc, fault, res, error))

    def record(self, proc: Process, fault: PageFault, res: Resolution | None, error: object) -> dict:
        """The trace record of one fault."""
        k = self.kernel
        counter = self.counter
        code = fault.error_code
        symbols = proc.symbols
        if code & PF_USER:
            mode = "user"
            rip = k.cpu.reg("rip")
            address = fault.vaddr if fault.noncanonical else report.fault_address(k, proc, rip, fault)
            insn = report.disassemble(k, proc, rip)
            retired = counter.retired_at(rip, fault.access == ACCESS_FETCH) if counter else None
        else:
            mode = "kernel"
            address = fault.vaddr          # copyin/copyout know the exact address
            sc = self._syscall
            if sc is not None and sc[0] is proc:
                rip, symbols, insn = sc[1], sc[2], sc[3]
                retired = counter.retired_at(rip) if counter else None
            else:
                rip, insn = None, ""
                retired = counter.count if counter else None
        region = res.region if res is not None else getattr(error, "region", None)
        if region is not None:
            kind = region.kind
        elif fault.noncanonical:
            kind = "none"
        elif address >= proc.aspace.user_top:
            kind = "kernel"
        else:
            found = proc.aspace.find(address)
            kind = found.kind if found is not None else "none"
        if res is not None:
            outcome = res.outcome
        else:
            outcome = OOM if isinstance(error, OutOfMemory) else SEGV
        meaning = describe_error_code(code)
        if fault.noncanonical:
            meaning += ", non-canonical address (#GP)"
        return {
            "type": "fault", "seq": 0, "instructions": retired, "pid": proc.pid, "mode": mode,
            "rip": f"{rip:#x}" if rip is not None else None,
            "symbol": symbols.format(rip) if rip is not None and symbols is not None else "",
            "address": f"{address:#x}", "page": f"{fault.vaddr & ~0xFFF:#x}",
            "access": ACCESS_NAMES[fault.access], "error_code": code, "error": meaning, "region": kind,
            "outcome": outcome, "pfn": res.pfn if res is not None and res.pfn else None,
            "major": bool(res is not None and res.major), "around": res.around if res is not None else 0,
            "instruction": insn,
            "reason": report.region_words(proc, fault, error) if error is not None else None,
        }


class TlbTracer:
    """Writes one record per event of the modelled TLB (miss, fill, evict, invalidate, flush), per page
    walk (with the levels it read) and per context switch."""

    def __init__(self, kernel: Kernel, writer: TraceWriter, counter: InstructionCounter | None):
        self.kernel = kernel
        self.writer = writer
        self.counter = counter

    def attach(self) -> TlbTracer:
        k = self.kernel
        add_tlb_listener(k.tlb, self.on_event)
        mmu = k.cpu.mmu
        walk = mmu.walk
        writer = self.writer

        def traced_walk(root: int, vaddr: int, access: int, *args, **kwargs):
            if writer.full:
                writer.drop()
                return walk(root, vaddr, access, *args, **kwargs)
            before = mmu.levels_read
            try:
                slot_pte = walk(root, vaddr, access, *args, **kwargs)
            except PageFault:
                self._walk(vaddr, access, mmu.levels_read - before, 0)
                raise
            self._walk(vaddr, access, mmu.levels_read - before, slot_pte[1])
            return slot_pte

        traced_walk.__doc__ = walk.__doc__
        mmu.walk = traced_walk
        switch = k.switch

        def traced_switch(proc: Process, *args, **kwargs) -> None:
            changed = proc is not k.current
            switch(proc, *args, **kwargs)
            if changed:
                if writer.full:
                    writer.drop()
                    return
                writer.emit(self._record("switch", proc.pid, proc.aspace.asid, None, None, 0, "context switch"))

        traced_switch.__doc__ = switch.__doc__
        k.switch = traced_switch
        return self

    def _retired(self) -> int | None:
        counter = self.counter
        if counter is None:
            return None
        return counter.retired_at(self.kernel.cpu._rip_safe())

    def _record(self, event: str, pid: int | None, asid: int | None, glob: bool | None, page: int | None,
                pte: int, reason: str | None) -> dict:
        return {"type": "tlb", "seq": 0, "instructions": self._retired(), "event": event, "pid": pid,
                "asid": asid, "global": glob, "page": f"{page:#x}" if page is not None else None,
                "pfn": (pte & PTE_FRAME) >> 12 if pte else None, "perms": perms(pte) if pte else None,
                "flags": describe_pte(pte) if pte else None, "access": None, "levels": None, "result": None,
                "reason": reason or None}

    def on_event(self, event: str, vpn: int, asid: int, pte: int, reason: str) -> None:
        """The TLB's listener."""
        writer = self.writer
        if writer.full:
            writer.drop()
            return
        k = self.kernel
        is_global = asid == GLOBAL_ASID
        if event in ("invalidate", "flush"):
            pid = owner_pid(k, asid) if not is_global else (k.current.pid if k.current is not None else None)
            glob = None
        else:
            pid = k.current.pid if k.current is not None else None
            glob = is_global if event in ("fill", "evict") else None
        page = None if event == "flush" else vpn << 12
        writer.emit(self._record(event, pid, None if is_global else asid, glob, page, pte, reason))

    def _walk(self, vaddr: int, access: int, levels: int, pte: int) -> None:
        k = self.kernel
        rec = self._record("walk", k.current.pid if k.current is not None else None, k.cpu.asid, None,
                           vaddr & ~0xFFF if 0 <= vaddr < (1 << 64) else None, pte, None)
        rec["access"] = ACCESS_NAMES[access]
        rec["levels"] = levels
        rec["result"] = "ok" if pte else "fault"
        self.writer.emit(rec)


# -- wiring ------------------------------------------------------------------------------------------


class Instruments:
    """Traces, statistics and dumps attached to one kernel (before `spawn`), finished after the run.

    trace_faults / trace_tlb: file paths ('-' for `out`); the same path for both gives one file with
    both kinds of record. Any trace prints statistics at the end and attaches an instruction counter,
    unless count_instructions is False (records then have "instructions": null; much faster on
    long loops); count_instructions=True counts without a trace.
    """

    def __init__(self, kernel: Kernel, *, trace_faults: str | None = None, trace_tlb: str | None = None,
                 trace_limit: int | None = None, stats: bool = False, dump_maps: bool = False,
                 dump_pagetable: bool = False, dump_frames: bool = False, count_instructions: bool | None = None,
                 out: TextIO | None = None):
        from osmodel.dumps import Dumper
        self.kernel = kernel
        self.out = out if out is not None else kernel.config.stderr
        self.traced = bool(trace_faults or trace_tlb)
        self.show_stats = stats or self.traced
        self.writers: list[TraceWriter] = []
        self.counter: InstructionCounter | None = None
        self.collector: StatsCollector | None = None
        self.dumper = None
        self.fault_tracer: FaultTracer | None = None
        self.tlb_tracer: TlbTracer | None = None
        fault_writer = tlb_writer = None
        try:
            if trace_faults and trace_tlb and _same_file(trace_faults, trace_tlb):
                columns = FAULT_COLUMNS + tuple(c for c in TLB_COLUMNS if c not in FAULT_COLUMNS)
                fault_writer = tlb_writer = open_trace(trace_faults, columns, trace_limit, self.out)
                self.writers.append(fault_writer)
            else:
                if trace_faults:
                    fault_writer = open_trace(trace_faults, FAULT_COLUMNS, trace_limit, self.out)
                    self.writers.append(fault_writer)
                if trace_tlb:
                    tlb_writer = open_trace(trace_tlb, TLB_COLUMNS, trace_limit, self.out)
                    self.writers.append(tlb_writer)
        except BaseException:
            self.close()
            raise
        if count_instructions or (count_instructions is None and self.traced):
            self.counter = kernel.count_instructions()
        if self.show_stats:
            self.collector = StatsCollector(kernel, self.counter).attach()
        if fault_writer is not None:
            self.fault_tracer = FaultTracer(kernel, fault_writer, self.counter).attach()
        if tlb_writer is not None:
            self.tlb_tracer = TlbTracer(kernel, tlb_writer, self.counter).attach()
        if dump_maps or dump_pagetable or dump_frames:
            self.dumper = Dumper(kernel, self.out, maps=dump_maps, pagetable=dump_pagetable,
                                 frames=dump_frames).attach()

    def close(self) -> list[str]:
        """Close the traces (writing their limit records); the notes about dropped events."""
        notes = []
        for w in self.writers:
            note = w.close()
            if note:
                notes.append(note)
        return notes

    def finish(self, seconds: float) -> None:
        """The run is over: final dumps, trace notes and (if asked or traced) statistics, on `out`."""
        if self.dumper is not None:
            self.dumper.finish()
        for note in self.close():
            print(note, file=self.out)
        if self.show_stats:
            print_stats(self.kernel, seconds, self.out, self.collector)
        self.out.flush()


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)

