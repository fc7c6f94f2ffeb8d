"""The visual report (osmodel/visual.py): one self-contained HTML file with inline SVG charts.

The traces are a synthetic JSONL written here following osmodel.trace's SCHEMA (validated
against it when osmodel/trace.py exists), and, when the CLI can trace, a real one from
samples/bin/bss. The report is rendered in headless Chromium when /usr/bin/chromium exists.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the visual report needs matplotlib (pip install 'run-elf[report]')")

from osmodel import visual  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHARTS = ("Page faults over time, by outcome", "Address-space map of page faults",
          "Page faults by region and outcome", "TLB activity over time")

try:
    from osmodel import trace as trace_module
except ImportError:       # the trace writer is not there yet
    trace_module = None


# -- a synthetic trace following osmodel.trace.SCHEMA ---------------------------------------------


def _fault(seq, insns, pid, address, access, outcome, region, mode="user", code=None, reason=None):
    acc_bit = {"read": 0, "write": 2, "fetch": 16}[access]
    present = 1 if outcome in ("cow-copy", "cow-reuse") else 0
    error_code = code if code is not None else present | acc_bit | (4 if mode == "user" else 0)
    return {"type": "fault", "seq": seq, "instructions": insns, "pid": pid, "mode": mode,
            "rip": "0x401780" if mode == "user" else None, "symbol": "main+0x10" if mode == "user" else "",
            "address": f"{address:#x}", "page": f"{address & ~0xFFF:#x}", "access": access,
            "error_code": error_code, "error": "user read, not present", "region": region, "outcome": outcome,
            "pfn": None if outcome in ("segv", "oom") else 500 + seq, "major": outcome == "file-load",
            "around": 0, "instruction": "mov eax, dword ptr [rdi]", "reason": reason}


def _tlb(seq, insns, event, pid=1, page=None, levels=None, result=None, reason=None, asid=1):
    walk = event == "walk"
    return {"type": "tlb", "seq": seq, "instructions": insns, "event": event, "pid": pid, "asid": asid,
            "global": False if event in ("fill", "evict") else None,
            "page": f"{page:#x}" if page is not None else None,
            "pfn": 7 if event in ("fill", "evict") or (walk and result == "ok") else None,
            "perms": "rw-u" if event in ("fill", "evict") else None,
            "flags": "P W U A D NX" if event in ("fill", "evict") else None,
            "access": "read" if walk else None, "levels": levels if walk else None,
            "result": result if walk else None, "reason": reason}


def synthetic_records() -> list[dict]:
    """Two processes: text file-loads, a bss sweep (zero-page then demand-zero), stack growth,
    heap and mmap, a fork with copy-on-write, a segv at a kernel address; TLB events of every kind."""
    recs: list[dict] = []
    seq = 0

    def add(rec):
        nonlocal seq
        seq += 1
        rec["seq"] = seq
        recs.append(rec)

    t = 0
    for i in range(20):                                   # text, read from the file
        t += 50
        add(_fault(0, t, 1, 0x401000 + i * 0x1000 + 0x80, "fetch", "file-load", "text"))
    for i in range(120):                                  # bss: read (zero page), later written
        t += 400
        add(_fault(0, t, 1, 0x4C8000 + i * 0x1000 + 0x10, "read", "zero-page", "bss"))
    for i in range(120):
        t += 300
        add(_fault(0, t, 1, 0x4C8000 + i * 0x1000 + 0x20, "write", "demand-zero", "bss"))
    for i in range(6):                                    # the stack grows
        t += 900
        add(_fault(0, t, 1, 0x7FFFFFFDE000 - i * 0x1000 + 0xF00, "write", "stack-grow", "stack"))
    for i in range(30):                                   # heap and an mmap area
        t += 200
        add(_fault(0, t, 1, 0x4F0000 + i * 0x1000, "write", "demand-zero", "heap"))
        add(_fault(0, t + 100, 1, 0x7FFFF7F00000 + i * 0x1000, "write", "demand-zero", "mmap"))
    add(_tlb(0, t, "flush", reason="copy-on-write"))
    for i in range(40):                                   # after fork: copies in the child, reuse in the parent
        t += 700
        add(_fault(0, t, 2, 0x4C8000 + i * 0x1000 + 0x30, "write", "cow-copy", "bss"))
        add(_tlb(0, t, "invalidate", pid=2, page=0x4C8000 + i * 0x1000, reason="copy-on-write", asid=2))
        add(_fault(0, t + 300, 1, 0x4C8000 + i * 0x1000 + 0x30, "write", "cow-reuse", "bss"))
    add(_fault(0, t + 50, 2, 0x7FFFFFFDD000, "read", "demand-zero", "stack", mode="kernel"))
    add(_fault(0, t + 90, 2, 0xFFFF888000001000, "read", "segv", "kernel", code=5, reason="kernel"))
    for i in range(600):                                  # TLB activity across the run
        ti = i * (t // 600)
        page = 0x4C8000 + (i % 150) * 0x1000
        add(_tlb(0, ti, "miss", page=page))
        add(_tlb(0, ti, "walk", page=page, levels=1 if i % 9 else 4, result="ok" if i % 13 else "fault"))
        add(_tlb(0, ti, "fill", page=page))
        if i > 128:
            add(_tlb(0, ti, "evict", page=page - 0x80000))
        if i % 150 == 0:
            add(_tlb(0, ti, "switch", pid=1 + (i // 150) % 2, reason="context switch"))
    add(_tlb(0, t, "flush", pid=2, reason="exit", asid=2))
    recs.sort(key=lambda r: r["instructions"])
    for i, r in enumerate(recs, 1):
        r["seq"] = i
    recs.append({"type": "limit", "limit": len(recs), "dropped": 17,
                 "reason": f"trace limit of {len(recs)} events reached: 17 more events not recorded"})
    return recs


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("visual") / "synthetic.jsonl"
    recs = synthetic_records()
    if trace_module is not None and hasattr(trace_module, "validate"):
        for rec in recs:
            assert trace_module.validate(rec) == [], rec
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture(scope="module")
def report(synthetic) -> tuple[Path, str]:
    out = synthetic.parent / "report.html"
    visual.write_report([str(synthetic)], str(out))
    return out, out.read_text()


# -- the HTML --------------------------------------------------------------------------------------


def test_one_self_contained_file(report):
    out, text = report
    assert [p.name for p in out.parent.iterdir() if p.name.startswith("report")] == ["report.html"]
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == len(CHARTS)
    for label in CHARTS:
        assert f'aria-label="{label}"' in text
    # Nothing outside the file: no URLs, no src=, no stylesheet or script links.
    assert "http:" not in text and "https:" not in text
    assert not re.search(r"\ssrc\s*=", text)
    assert "<link" not in text and "<script" not in text and "@import" not in text
    for ref in re.findall(r'(?:xlink:)?href="([^"]*)"', text):
        assert ref.startswith("#") or ref.startswith("data:image/png;base64,"), ref
    # Element ids are unique across the inlined charts, and every reference resolves.
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', text):
        assert (ref[0] or ref[1]) in ids


def test_statistics_from_the_trace(report):
    _, text = report
    recs = synthetic_records()
    faults = [r for r in recs if r["type"] == "fault"]
    assert "pid 1, pid 2" in text
    assert f">{len(faults):,}<" in text
    # The per-process table: pid 2 has 40 cow-copy, 1 demand-zero (kernel copyout), 1 segv.
    row = re.search(r"<tr><td class=\"l\">2</td>(.*?)</tr>", text).group(1)
    cells = [int(c.replace(",", "")) for c in re.findall(r"<td>([\d,]+)</td>", row)]
    assert sum(cells[:-3]) == 42 and cells[-3] == 42            # outcomes, then total, minor, major
    for word in ("cow-copy", "cow-reuse", "stack-grow", "zero-page", "segv", "context switch", "copy-on-write"):
        assert word in text
    assert "Trace cut short" in text and "17 more events not recorded" in text
    misses = sum(1 for r in recs if r["type"] == "tlb" and r["event"] == "miss")
    assert f"misses ({misses})" in text


def test_tolerant_reader(tmp_path):
    """Minimal records, 'insns' for time, integer addresses, other record types, junk lines, CSV."""
    lines = [
        {"type": "fault", "insns": 10, "pid": 3, "address": 0x401000, "access": "fetch", "outcome": "file-load",
         "region": "text"},
        {"type": "fault", "insns": 20, "pid": 3, "address": "0x7ffffffde010", "outcome": "stack-grow"},
        {"type": "tlb", "insns": 15, "event": "miss", "vpn": 0x401, "asid": 3},
        {"type": "tlb", "insns": 16, "event": "flush", "reason": "exec"},
        {"type": "stats", "faults": 2, "walks": {"total": 9}},
        {"type": "histogram", "x": 1},
    ]
    path = tmp_path / "min.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\nnot json\n[1, 2]\n\n")
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("type,seq,instructions,event,pid,asid,page,reason\n"
                        "tlb,1,30,walk,3,3,0x401000,\ntlb,2,40,invalidate,3,3,0x402000,munmap\n")
    data = visual.read_traces([str(path), str(csv_path)])
    assert len(data.faults) == 2 and len(data.tlb) == 4
    assert data.faults[1].address == 0x7FFFFFFDE010 and data.faults[0].t == 10
    assert [e.event for e in data.tlb] == ["miss", "flush", "walk", "invalidate"]
    assert data.files[0]["skipped"] == 2 and data.other == {"histogram": 1} and len(data.stats) == 1
    out = tmp_path / "min.html"
    visual.write_report([str(path), str(csv_path)], str(out), program="demo")
    text = out.read_text()
    assert text.count("<svg") == len(CHARTS) and "demo" in text and "Statistics recorded in the trace" in text

    # Only faults, no instruction counts: the record order is the time axis, TLB charts say why they are absent.
    only = tmp_path / "faults.jsonl"
    only.write_text(json.dumps({"type": "fault", "seq": 1, "address": "0x1000", "outcome": "segv"}) + "\n")
    visual.write_report([str(only)], str(tmp_path / "only.html"))
    text = (tmp_path / "only.html").read_text()
    assert text.count("<svg") == 3 and "No TLB records" in text and "event number" in text


def test_missing_matplotlib(monkeypatch, tmp_path, synthetic):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(visual.MissingDependency, match=re.escape("pip install 'run-elf[report]'")):
        visual.write_report([str(synthetic)], str(tmp_path / "r.html"))
    with pytest.raises(ImportError, match=re.escape("run-elf[report]")):
        visual.check_dependencies()
    assert not (tmp_path / "r.html").exists()


def test_command_line(tmp_path, synthetic):
    out = tmp_path / "cli.html"
    proc = subprocess.run([sys.executable, "-m", "osmodel.visual", str(synthetic), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("<svg") == len(CHARTS)


# -- a real trace ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory) -> list[str]:
    """Fault and TLB traces of samples/bin/bss, written by run-elf's own tracer."""
    if trace_module is None:
        pytest.skip("osmodel/trace.py is not there: no real trace to read")
    d = tmp_path_factory.mktemp("real")
    faults, tlb = d / "bss.faults.jsonl", d / "bss.tlb.jsonl"
    proc = subprocess.run([sys.executable, "-m", "osmodel", "--trace-faults", str(faults), "--trace-tlb", str(tlb),
                           "samples/bin/bss"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode == 2 and "no such option" in proc.stderr.lower():
        pytest.skip("the CLI has no --trace-faults/--trace-tlb yet")
    assert proc.returncode == 0, proc.stderr
    return [str(faults), str(tlb)]


def test_real_trace(real_trace, tmp_path):
    out = tmp_path / "bss.html"
    visual.write_report(real_trace, str(out))
    text = out.read_text()
    assert text.count("<svg") == len(CHARTS)
    assert "run-elf memory report — bss" in text
    data = visual.read_traces(real_trace)
    n_faults = sum(1 for line in open(real_trace[0]) if '"type":"fault"' in line)
    assert len(data.faults) == n_faults > 64
    regions = {f.region for f in data.faults}
    assert {"text", "bss", "stack"} <= regions
    assert {"zero-page", "demand-zero", "file-load"} <= {f.outcome for f in data.faults}
    assert data.time_label == "instructions retired"
    render_and_check(out, tmp_path)


# -- rendering in a real browser -------------------------------------------------------------------


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB triples of an 8-bit RGB or RGBA PNG, decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        i = y * (stride + 1)
        ftype = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        if ftype == 1:                                   # Sub
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 0xFF
        elif ftype == 2:                                 # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:                                 # Average
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 0xFF
        elif ftype == 4:                                 # Paeth
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
        if bpp == 4:
            line = bytearray(v for x, v in enumerate(line) if x % 4 != 3)
        rows.append(bytes(line))
    return width, height, rows


def has_color(rows: list[bytes], rgb: bytes) -> bool:
    """Whether any pixel of the RGB rows is exactly rgb."""
    for row in rows:
        i = row.find(rgb)
        while i != -1:
            if i % 3 == 0:
                return True
            i = row.find(rgb, i + 1)
    return False


def render_and_check(report_path: Path, tmp: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): cannot render the report")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}"]
    shot = tmp / "shot.png"
    url = report_path.resolve().as_uri()
    proc = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2000", url],
                          capture_output=True, text=True, timeout=180)
    assert shot.exists(), proc.stderr[-2000:]
    assert shot.stat().st_size > 30_000                # a blank 1200x2000 page compresses to a few KB
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1200, 2000)
    colors = set()
    painted = 0
    for row in rows[::4]:
        for x in range(0, len(row), 12):
            px = row[x:x + 3]
            colors.add(px)
            painted += px not in (b"\xff\xff\xff", b"\xf6\xf7\xf9")     # page and card backgrounds
    assert len(colors) > 50, "the screenshot is nearly uniform"
    assert painted > 0.10 * (len(rows[::4]) * (len(rows[0]) // 12))
    # The charts' fill colours are on screen: demand-zero bars and file-load bars.
    for hexcolor in (visual.OUTCOME_COLORS["demand-zero"], visual.OUTCOME_COLORS["file-load"]):
        assert has_color(rows, bytes.fromhex(hexcolor[1:])), f"no {hexcolor} pixel: the charts did not render"
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    assert dom.count("<svg") == len(CHARTS)
    assert "Page faults over time" in dom and "</html>" in dom


def test_renders_in_chromium(report, tmp_path):
    out, _ = report
    render_and_check(out, tmp_path)
