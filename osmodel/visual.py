"""A visual report of a run: one self-contained HTML file drawn from fault and TLB traces.

    run-elf --trace-faults run.jsonl --trace-tlb run.jsonl PROGRAM ...
    python -m osmodel.visual run.jsonl -o report.html

`write_report(trace_paths, out_path)` reads JSON-lines traces (the format of `osmodel.trace`, see
its SCHEMA; CSV traces written with a header row are read too) and writes a single HTML file
that opens offline: the charts are SVG drawn by matplotlib and inlined, the styles are inline,
there is no script, no image file and no network reference. It holds

- faults over time, stacked by outcome (demand-zero, zero-page, file-load, cow-copy, ...);
- an address-space map: each fault at its address against time, on an axis cut into bands
  around the parts of the address space that faulted (text/data/bss/heap, mmap, stack,
  kernel), coloured by outcome;
- faults by region and outcome;
- TLB activity over time: misses, fills, evictions and page walks, and the invalidations,
  flushes and context switches with their reasons;
- statistics computed from the trace: faults by process and outcome, by region, TLB events by
  kind and process, page-walk depth, the instructions that faulted most, and any `limit` record
  (a trace cut short by --trace-limit).

The reader is tolerant: it needs only a "type" on each record ("fault", "tlb", "limit", ...);
time is "instructions" (or "insns"), else the record's "seq"; addresses may be hex strings or
integers; records of other types are counted and shown; a line that is not JSON is skipped
and counted. matplotlib is an optional dependency (`pip install 'run-elf[report]'`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

__all__ = ["write_report", "render_report", "read_traces", "check_dependencies", "TraceData", "MissingDependency",
           "INSTALL_HINT", "main"]

INSTALL_HINT = "pip install 'run-elf[report]'"

# Fault outcomes in the order a reader meets them (osmodel.fault.OUTCOMES), each with a fixed colour.
OUTCOME_COLORS = {
    "demand-zero": "#4C78A8",
    "zero-page": "#9ECAE9",
    "file-load": "#F58518",
    "stack-grow": "#54A24B",
    "cow-copy": "#B279A2",
    "cow-reuse": "#D6A5C9",
    "segv": "#E45756",
    "oom": "#000000",
}
_EXTRA_COLORS = ["#72B7B2", "#EECA3B", "#FF9DA6", "#9D755D", "#BAB0AC", "#88D27A", "#2F4B7C"]
REGION_ORDER = ("text", "rodata", "data", "bss", "heap", "mmap", "stack", "kernel", "none")
TLB_LINE_EVENTS = (("miss", "misses", "#E45756"), ("fill", "fills", "#4C78A8"), ("evict", "evictions", "#F58518"),
                   ("walk", "page walks", "#54A24B"))
TLB_MARK_EVENTS = ("invalidate", "flush", "switch")
ACCESS_MARKERS = {"read": "o", "write": "^", "fetch": "s"}
_SEGMENT_GAP = 1 << 20          # faults further apart than this go in different bands of the address map
_RASTERIZE_ABOVE = 6000         # scatter points beyond which the scatter is embedded as an inline PNG
_MAX_BINS = 120


class MissingDependency(ImportError):
    """The report needs matplotlib, which is an optional dependency."""


# -- reading traces ------------------------------------------------------------------------------


@dataclass
class Fault:
    t: int
    pid: int | None
    address: int | None
    outcome: str
    region: str
    access: str
    mode: str
    symbol: str


@dataclass
class TlbEvent:
    t: int
    event: str
    pid: int | None
    reason: str | None
    levels: int | None
    result: str | None


@dataclass
class TraceData:
    """What the report is drawn from: every trace file's records, merged."""
    faults: list[Fault] = field(default_factory=list)
    tlb: list[TlbEvent] = field(default_factory=list)
    limits: list[dict] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)
    other: Counter = field(default_factory=Counter)         # records of other types, by type
    files: list[dict] = field(default_factory=list)          # per file: path, records, skipped
    time_label: str = "instructions retired"

    @property
    def pids(self) -> list[int]:
        return sorted({f.pid for f in self.faults if f.pid is not None} | {e.pid for e in self.tlb if e.pid is not None})


def _int(value, default: int | None = None) -> int | None:
    """An integer from an int, a decimal or 0x-hex string, or a float; default if none."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    if not text:
        return default
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return default


def _text(value, default: str = "") -> str:
    return default if value is None or value == "" else str(value)


def _csv_records(stream: Iterable[str]) -> Iterator[dict]:
    for row in csv.DictReader(stream):
        rec = {}
        for key, value in row.items():
            if key is None:
                continue
            if value == "":
                rec[key] = None
            elif value in ("true", "false"):
                rec[key] = value == "true"
            else:
                rec[key] = value
        yield rec


def _file_records(path: str, info: dict) -> Iterator[dict]:
    """The records of one trace file (JSON lines, or CSV with a header row)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        head = f.read(4096)
        f.seek(0)
        first = head.lstrip()[:1]
        if path.lower().endswith(".csv") or (first and first != "{" and "," in head.split("\n", 1)[0]):
            for rec in _csv_records(f):
                info["records"] += 1
                yield rec
            return
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                info["skipped"] += 1
                continue
            if not isinstance(rec, dict):
                info["skipped"] += 1
                continue
            info["records"] += 1
            yield rec


def read_traces(trace_paths: list[str]) -> TraceData:
    """Read and merge trace files; OSError if one cannot be read."""
    data = TraceData()
    any_instructions = False
    raw_faults: list[tuple[dict, int]] = []
    raw_tlb: list[tuple[dict, int]] = []
    order = 0
    for path in trace_paths:
        info = {"path": path, "records": 0, "skipped": 0}
        data.files.append(info)
        for rec in _file_records(path, info):
            order += 1
            kind = rec.get("type")
            if kind is None:            # a CSV of one kind without a type column: guess from the columns
                kind = "fault" if "outcome" in rec else "tlb" if "event" in rec else "unknown"
            if kind in ("fault", "tlb"):
                t = rec.get("instructions", rec.get("insns"))
                if _int(t):
                    any_instructions = True
                (raw_faults if kind == "fault" else raw_tlb).append((rec, order))
            elif kind == "limit":
                data.limits.append(dict(rec, file=path))
            elif kind == "stats":
                data.stats.append(rec)
            else:
                data.other[str(kind)] += 1
    if not any_instructions:
        data.time_label = "event number (the trace has no instruction counts)"

    def when(rec: dict, order: int) -> int:
        if any_instructions:
            return _int(rec.get("instructions", rec.get("insns")), 0)
        return _int(rec.get("seq"), order) if len(trace_paths) == 1 else order

    for rec, o in raw_faults:
        addr = _int(rec.get("address"))
        if addr is None:
            addr = _int(rec.get("page"))
        data.faults.append(Fault(t=when(rec, o), pid=_int(rec.get("pid")), address=addr,
                                 outcome=_text(rec.get("outcome"), "unknown"), region=_text(rec.get("region"), "none"),
                                 access=_text(rec.get("access"), "read"), mode=_text(rec.get("mode"), "user"),
                                 symbol=_text(rec.get("symbol"))))
    for rec, o in raw_tlb:
        data.tlb.append(TlbEvent(t=when(rec, o), event=_text(rec.get("event"), "unknown"), pid=_int(rec.get("pid")),
                                 reason=rec.get("reason") or None, levels=_int(rec.get("levels")),
                                 result=rec.get("result") or None))
    data.faults.sort(key=lambda f: f.t)
    data.tlb.sort(key=lambda e: e.t)
    return data


# -- charts ----------------------------------------------------------------------------------------


def _matplotlib():
    """matplotlib's pieces, or MissingDependency with the install hint."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
        import numpy
    except ImportError as err:
        raise MissingDependency(f"the visual report draws its charts with matplotlib, which is not installed: "
                                f"{INSTALL_HINT}") from err
    return matplotlib, Figure, numpy


def check_dependencies() -> None:
    """Raise MissingDependency (with the pip hint) if the report cannot be drawn here: a CLI can call
    this before running the program rather than failing after it."""
    _matplotlib()


def _outcome_colors(outcomes: Iterable[str]) -> dict[str, str]:
    colors = dict(OUTCOME_COLORS)
    extra = iter(_EXTRA_COLORS * 4)
    for o in outcomes:
        if o not in colors:
            colors[o] = next(extra, "#777777")
    return colors


def _ordered_outcomes(faults: list[Fault]) -> list[str]:
    seen = Counter(f.outcome for f in faults)
    known = [o for o in OUTCOME_COLORS if o in seen]
    return known + sorted(o for o in seen if o not in OUTCOME_COLORS)


def _fmt_count(x: float, _pos=None) -> str:
    """Tick labels and sizes, to 3 significant digits: 1.2M, 350k, 12, 2.5."""
    ax = abs(x)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if ax >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _bins(np, times: list[int], lo: int | None = None, hi: int | None = None):
    """Common histogram bin edges over [lo, hi] (whole numbers when the span is small)."""
    lo = min(times) if lo is None else lo
    hi = max(times) if hi is None else hi
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    span = hi - lo
    n = max(1, min(_MAX_BINS, span + 1))
    return np.linspace(lo, hi + span * 1e-9 + (1 if span < _MAX_BINS else 0), n + 1)


def _style_axes(ax, fmt) -> None:
    ax.grid(True, which="major", axis="both", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.xaxis.set_major_formatter(fmt)


class _Charts:
    """Draws the report's figures as SVG strings."""

    def __init__(self, data: TraceData):
        self.mpl, self.Figure, self.np = _matplotlib()
        from matplotlib.ticker import FuncFormatter
        self.fmt = FuncFormatter(_fmt_count)
        self.data = data
        self.outcomes = _ordered_outcomes(data.faults)
        self.colors = _outcome_colors(self.outcomes)
        self.count = 0
        self.rc = {"svg.fonttype": "none", "font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold",
                   "axes.labelsize": 10, "legend.fontsize": 9, "legend.frameon": False,
                   "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],      # bundled with matplotlib
                   "axes.edgecolor": "#888888", "xtick.color": "#444444", "ytick.color": "#444444",
                   "svg.hashsalt": "run-elf"}

    def _svg(self, fig, label: str) -> str:
        """The figure as an inline <svg> element with ids unique in the page and no namespace URLs."""
        self.count += 1
        buf = io.StringIO()
        with self.mpl.rc_context(self.rc):
            fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
        text = buf.getvalue()
        text = text[text.index("<svg"):]
        prefix = f"c{self.count}-"
        text = re.sub(r'\sid="([^"]+)"', lambda m: f' id="{prefix}{m.group(1)}"', text)
        text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m.group(1)})", text)
        text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}{m.group(1)}"', text)
        text = re.sub(r'\sxmlns(:xlink)?="[^"]*"', "", text)
        text = text.replace("*{stroke-linejoin", f"#{prefix}figure_1 *{{stroke-linejoin")
        m = re.match(r"<svg([^>]*)>", text)
        attrs = m.group(1)
        view = re.search(r'viewBox="([^"]+)"', attrs).group(1)
        width = float(view.split()[2])
        text = (f'<svg viewBox="{view}" version="1.1" role="img" aria-label="{html.escape(label)}" '
                f'style="width:100%;max-width:{width * 4 / 3:.0f}px;height:auto">' + text[m.end():])
        return text

    def _unit(self) -> str:
        return "instructions" if self.data.time_label.startswith("instr") else "events"

    def _figure(self, w: float, h: float):
        with self.mpl.rc_context(self.rc):
            return self.Figure(figsize=(w, h), layout="constrained")

    # faults over time, stacked by outcome
    def faults_over_time(self) -> str:
        np = self.np
        faults = self.data.faults
        with self.mpl.rc_context(self.rc):
            fig = self._figure(11, 4.2)
            ax = fig.add_subplot()
            times = [f.t for f in faults]
            bins = _bins(np, times)
            series = [[f.t for f in faults if f.outcome == o] for o in self.outcomes]
            ax.hist(series, bins=bins, stacked=True, histtype="stepfilled", linewidth=0.6, edgecolor="white",
                    color=[self.colors[o] for o in self.outcomes],
                    label=[f"{o} ({len(s)})" for o, s in zip(self.outcomes, series)])
            width = bins[1] - bins[0]
            ax.set_title("Page faults over time, by outcome")
            ax.set_xlabel(self.data.time_label)
            counts = np.histogram(times, bins=bins)[0]
            nonzero = counts[counts > 0]
            log = len(nonzero) > 3 and nonzero.max() > 20 * np.median(nonzero)
            if log:
                ax.set_yscale("log")
                ax.set_ylim(0.7, nonzero.max() * 2)
            ax.set_ylabel(f"faults per {_fmt_count(width)} {self._unit()}" + (" (log scale)" if log else ""))
            _style_axes(ax, self.fmt)
            ax.yaxis.set_major_formatter(self.fmt)
            twin = ax.twinx()
            cum = np.arange(1, len(times) + 1)
            twin.step(times, cum, where="post", color="#333333", linewidth=1.2, label=f"cumulative ({len(times)})")
            pids = sorted({f.pid for f in faults if f.pid is not None})
            if len(pids) > 1:
                styles = [(0, (4, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (2, 3))]
                for i, pid in enumerate(pids[:8]):
                    ts = [f.t for f in faults if f.pid == pid]
                    twin.step(ts, np.arange(1, len(ts) + 1), where="post", color="#555555", linewidth=1.1,
                              linestyle=styles[i % len(styles)], label=f"pid {pid} cumulative ({len(ts)})")
            twin.set_ylabel("cumulative faults")
            twin.set_ylim(0, len(times) * 1.05)
            twin.yaxis.set_major_formatter(self.fmt)
            twin.spines["top"].set_visible(False)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = twin.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.08, 1.0), title="outcome")
            return self._svg(fig, "Page faults over time, by outcome")

    # the address-space map
    def _segments(self) -> list[dict]:
        """Bands of the address map: runs of faulting pages no more than _SEGMENT_GAP apart; the kernel's part
        is a band of its own (a 32-bit stack ends right at the 3G/1G split)."""
        pts = sorted((f.address, f.region) for f in self.data.faults if f.address is not None)
        segs: list[dict] = []
        for addr, region in pts:
            kernel = region == "kernel"
            if segs and addr - segs[-1]["hi"] <= _SEGMENT_GAP and segs[-1]["kernel"] == kernel:
                seg = segs[-1]
                seg["hi"] = addr
            else:
                seg = {"lo": addr, "hi": addr, "regions": Counter(), "kernel": kernel}
                segs.append(seg)
            seg["regions"][region] += 1
        for seg in segs:
            seg["lo"] &= ~0xFFF
            seg["hi"] = (seg["hi"] | 0xFFF) + 1
            names = sorted(seg["regions"], key=lambda r: (REGION_ORDER.index(r) if r in REGION_ORDER else 99, r))
            seg["label"] = " · ".join(names)
        return segs

    def address_map(self) -> str:
        np = self.np
        faults = [f for f in self.data.faults if f.address is not None]
        segs = self._segments()
        band, gap = 1.0, 0.35
        # Larger bands for segments with more distinct pages, within limits, so dense areas get room.
        pages = [max(1, (s["hi"] - s["lo"]) >> 12) for s in segs]
        heights = [band * min(3.0, max(1.0, np.log10(p + 1) / 2)) for p in pages]
        bases = []
        y = 0.0
        for hgt in heights:
            bases.append(y)
            y += hgt + gap
        top = y - gap

        def ypos(addr: int) -> float:
            lo_i = 0
            for i, s in enumerate(segs):
                if s["lo"] <= addr < s["hi"]:
                    lo_i = i
                    break
            s = segs[lo_i]
            return bases[lo_i] + heights[lo_i] * (addr - s["lo"]) / max(1, s["hi"] - s["lo"])

        with self.mpl.rc_context(self.rc):
            fig = self._figure(11, max(4.2, 1.2 + 1.1 * top))
            ax = fig.add_subplot()
            t_all = [f.t for f in faults]
            t_lo, t_hi = (min(t_all), max(t_all)) if t_all else (0, 1)
            pad = max(1, (t_hi - t_lo) * 0.01)
            for i, s in enumerate(segs):
                ax.axhspan(bases[i], bases[i] + heights[i], color="#f3f5f8" if i % 2 else "#eaeef4", zorder=0,
                           linewidth=0)
                ax.text(1.005, bases[i] + heights[i] / 2, s["label"], transform=ax.get_yaxis_transform(),
                        va="center", ha="left", fontsize=9, color="#333333", fontweight="bold")
                if i:
                    mid = bases[i] - gap / 2
                    ax.axhline(mid, color="#bbbbbb", linestyle=(0, (4, 3)), linewidth=0.8, zorder=0)
            raster = len(faults) > _RASTERIZE_ABOVE
            for o in self.outcomes:
                for access, marker in ACCESS_MARKERS.items():
                    sel = [f for f in faults if f.outcome == o and (f.access == access or
                                                                     (access == "read" and f.access not in ACCESS_MARKERS))]
                    if not sel:
                        continue
                    ax.scatter([f.t for f in sel], [ypos(f.address) for f in sel], s=14 if len(faults) < 2000 else 6,
                               marker=marker, color=self.colors[o], alpha=0.85, linewidths=0, zorder=3,
                               rasterized=raster)
            ticks, labels = [], []
            for i, s in enumerate(segs):
                ticks += [bases[i], bases[i] + heights[i]]
                labels += [f"{s['lo']:#x}", f"{s['hi']:#x}"]
            ax.set_yticks(ticks)
            ax.set_yticklabels(labels, fontsize=8, family="DejaVu Sans Mono")
            ax.set_ylim(-gap / 2, top + gap / 2)
            ax.set_xlim(t_lo - pad, t_hi + pad)
            ax.set_title("Where faults landed: address against time (axis cut into bands; gaps are unmapped)")
            ax.set_xlabel(self.data.time_label)
            ax.set_ylabel("virtual address (each band is linear)")
            _style_axes(ax, self.fmt)
            ax.grid(False, axis="y")
            from matplotlib.lines import Line2D
            handles = [Line2D([], [], linestyle="", marker="o", markersize=7, color=self.colors[o], label=o)
                       for o in self.outcomes]
            handles += [Line2D([], [], linestyle="", marker=m, markersize=7, color="#666666", label=a)
                        for a, m in ACCESS_MARKERS.items() if any(f.access == a for f in faults)]
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(handles),
                      borderaxespad=0, handletextpad=0.3, columnspacing=1.4)
            return self._svg(fig, "Address-space map of page faults")

    def faults_by_region(self) -> str:
        np = self.np
        faults = self.data.faults
        counts = Counter((f.region, f.outcome) for f in faults)
        regions = sorted({f.region for f in faults}, key=lambda r: (REGION_ORDER.index(r) if r in REGION_ORDER else 99, r))
        with self.mpl.rc_context(self.rc):
            fig = self._figure(11, 1.0 + 0.42 * len(regions))
            ax = fig.add_subplot()
            left = np.zeros(len(regions))
            for o in self.outcomes:
                vals = np.array([counts[(r, o)] for r in regions], dtype=float)
                if not vals.any():
                    continue
                ax.barh(regions, vals, left=left, color=self.colors[o], label=o, height=0.65, edgecolor="white",
                        linewidth=0.5)
                left += vals
            for i, total in enumerate(left):
                ax.text(total, i, f"  {int(total)}", va="center", fontsize=9, color="#333333")
            ax.invert_yaxis()
            ax.set_xlim(0, max(left) * 1.12 if len(left) else 1)
            ax.set_title("Page faults by region and outcome")
            ax.set_xlabel("faults")
            _style_axes(ax, self.fmt)
            ax.grid(False, axis="y")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="outcome")
            return self._svg(fig, "Page faults by region and outcome")

    def tlb_over_time(self) -> str:
        np = self.np
        events = self.data.tlb
        times = [e.t for e in events]
        bins = _bins(np, times)
        width = bins[1] - bins[0]
        marks = [e for e in events if e.event in TLB_MARK_EVENTS]
        with self.mpl.rc_context(self.rc):
            fig = self._figure(11, 6.2 if marks else 4.2)
            if marks:
                gs = fig.add_gridspec(2, 1, height_ratios=[2.2, 1])
                ax = fig.add_subplot(gs[0])
                ax2 = fig.add_subplot(gs[1], sharex=ax)
            else:
                ax = fig.add_subplot()
                ax2 = None
            centers = (bins[:-1] + bins[1:]) / 2
            for event, label, color in TLB_LINE_EVENTS:
                ts = [e.t for e in events if e.event == event]
                if not ts:
                    continue
                hist, _ = np.histogram(ts, bins=bins)
                ax.stairs(hist, bins, color=color, linewidth=1.6, label=f"{label} ({len(ts)})",
                          fill=event == "miss", alpha=0.9 if event != "miss" else 0.25)
                if event == "miss":
                    ax.stairs(hist, bins, color=color, linewidth=1.6)
            del centers
            ax.set_title("TLB activity over time")
            counts = np.histogram(times, bins=bins)[0]
            nonzero = counts[counts > 0]
            if len(nonzero) > 3 and nonzero.max() > 20 * np.median(nonzero):
                ax.set_yscale("log")
                ax.set_ylim(0.7, nonzero.max() * 2)
                ax.set_ylabel(f"events per {_fmt_count(width)} {self._unit()} (log scale)")
            else:
                ax.set_ylabel(f"events per {_fmt_count(width)} {self._unit()}")
            _style_axes(ax, self.fmt)
            ax.yaxis.set_major_formatter(self.fmt)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="TLB events")
            if ax2 is None:
                ax.set_xlabel(self.data.time_label)
            else:
                reasons = sorted({(e.event, e.reason or "") for e in marks},
                                 key=lambda k: (TLB_MARK_EVENTS.index(k[0]), k[1]))
                palette = _EXTRA_COLORS + list(OUTCOME_COLORS.values())
                rows = {k: i for i, k in enumerate(reasons)}
                for k, i in rows.items():
                    ts = [e.t for e in marks if (e.event, e.reason or "") == k]
                    label = f"{k[0]}: {k[1]}" if k[1] else k[0]
                    ax2.eventplot([ts], lineoffsets=i, linelengths=0.7, colors=palette[i % len(palette)],
                                  linewidths=1.2 if len(ts) < 500 else 0.5, rasterized=len(marks) > _RASTERIZE_ABOVE)
                    ax2.text(1.005, i, f"{label} ({len(ts)})", transform=ax2.get_yaxis_transform(), va="center",
                             ha="left", fontsize=9, color="#333333")
                ax2.set_yticks([])
                ax2.set_ylim(-0.6, len(rows) - 0.4)
                ax2.invert_yaxis()
                ax2.set_title("Invalidations, flushes and context switches (by reason)", fontsize=10)
                ax2.set_xlabel(self.data.time_label)
                _style_axes(ax2, self.fmt)
                ax2.grid(False, axis="y")
            return self._svg(fig, "TLB activity over time")


# -- HTML ------------------------------------------------------------------------------------------

_CSS = """
:root { --ink:#1d2733; --muted:#5b6775; --line:#d9dee5; --bg:#f6f7f9; --accent:#2b5d8a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 "DejaVu Sans","Liberation Sans",Arial,sans-serif; color:var(--ink); background:var(--bg); }
header { background:#1f3347; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#c9d6e3; font-size:13px; }
header dl { display:flex; flex-wrap:wrap; gap:6px 28px; margin:14px 0 0; }
header dt { color:#9fb3c8; font-size:11px; text-transform:uppercase; letter-spacing:.06em; }
header dd { margin:0; font-size:15px; font-weight:600; }
main { max-width:1180px; margin:0 auto; padding:18px 24px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
section h2 { margin:0 0 4px; font-size:16px; color:var(--accent); }
section p.note { margin:0 0 10px; color:var(--muted); font-size:12.5px; }
.warn { background:#fff4e5; border:1px solid #f3c27a; border-radius:6px; padding:8px 12px; margin:8px 0; }
table { border-collapse:collapse; margin:8px 0 14px; font-size:13px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#eef2f6; font-weight:600; }
td.l, th.l { text-align:left; }
tr.total td { font-weight:700; border-top:2px solid #b9c2cc; }
.grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap:4px 24px; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:baseline; }
code { font-family:"DejaVu Sans Mono",monospace; font-size:12px; }
footer { color:var(--muted); font-size:12px; text-align:center; margin:10px 0 30px; }
"""


def _table(headers: list[str], rows: list[list], total: list | None = None, left: int = 1) -> str:
    def cell(i: int, v, tag: str = "td") -> str:
        cls = ' class="l"' if i < left else ""
        if isinstance(v, int):
            v = f"{v:,}"
        elif v is None:
            v = ""
        return f"<{tag}{cls}>{v}</{tag}>"
    out = ["<table>", "<tr>" + "".join(cell(i, h, "th") for i, h in enumerate(headers)) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>")
    if total is not None:
        out.append('<tr class="total">' + "".join(cell(i, v) for i, v in enumerate(total)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _esc(text) -> str:
    return html.escape(str(text))


def _stats_html(data: TraceData, colors: dict[str, str], outcomes: list[str]) -> str:
    parts = []
    faults = data.faults
    if faults:
        by_pid = defaultdict(Counter)
        for f in faults:
            by_pid[f.pid][f.outcome] += 1
        heads = ["pid"] + [f'<span class="swatch" style="background:{colors[o]}"></span>{_esc(o)}' for o in outcomes] \
            + ["total", "minor", "major"]
        rows = []
        for pid in sorted(by_pid, key=lambda p: (p is None, p or 0)):
            c = by_pid[pid]
            tot = sum(c.values())
            major = c["file-load"]
            minor = tot - major - c["segv"] - c["oom"]
            rows.append([pid if pid is not None else "?"] + [c[o] for o in outcomes] + [tot, minor, major])
        allc = Counter(f.outcome for f in faults)
        total = ["all"] + [allc[o] for o in outcomes] + [len(faults), len(faults) - allc["file-load"] - allc["segv"]
                                                          - allc["oom"], allc["file-load"]]
        parts.append("<h3>Page faults by process and outcome</h3>")
        parts.append('<p class="note">major = file-load (the page was read from the file); minor = the rest, '
                     'except segv/oom, which were refused.</p>')
        parts.append(_table(heads, rows, total if len(rows) > 1 else None))
        reg = defaultdict(Counter)
        for f in faults:
            reg[f.region][f.access] += 1
        regions = sorted(reg, key=lambda r: (REGION_ORDER.index(r) if r in REGION_ORDER else 99, r))
        accesses = [a for a in ("read", "write", "fetch") if any(reg[r][a] for r in regions)]
        accesses += sorted({a for r in regions for a in reg[r]} - set(accesses))
        modes = Counter(f.mode for f in faults)
        grid = ['<div class="grid"><div>', "<h3>Faults by region and access</h3>",
                _table(["region"] + accesses + ["total"],
                       [[r] + [reg[r][a] for a in accesses] + [sum(reg[r].values())] for r in regions]),
                "</div><div>", "<h3>Most faulting code</h3>"]
        syms = Counter(f.symbol or "(kernel access / unknown)" for f in faults)
        grid.append(_table(["instruction at", "faults"],
                           [[f"<code>{_esc(s)}</code>", n] for s, n in syms.most_common(10)]))
        grid.append("<h3>Mode</h3>")
        grid.append(_table(["mode", "faults"], [[m, n] for m, n in modes.most_common()]))
        grid.append("</div></div>")
        parts += grid
    if data.tlb:
        kinds = [k for k in ("miss", "fill", "evict", "walk", "invalidate", "flush", "switch")
                 if any(e.event == k for e in data.tlb)]
        kinds += sorted({e.event for e in data.tlb} - set(kinds))
        by_pid = defaultdict(Counter)
        for e in data.tlb:
            by_pid[e.pid][e.event] += 1
        rows = [[pid if pid is not None else "—"] + [by_pid[pid][k] for k in kinds]
                for pid in sorted(by_pid, key=lambda p: (p is None, p or 0))]
        allc = Counter(e.event for e in data.tlb)
        parts.append("<h3>TLB events by process and kind</h3>")
        parts.append('<p class="note">On the fast path run-elf sees every miss of its TLB but not the hits '
                     '(Unicorn\'s own TLB absorbs them), so there is no hit column here.</p>')
        parts.append(_table(["pid"] + kinds, rows, ["all"] + [allc[k] for k in kinds] if len(rows) > 1 else None))
        walks = [e for e in data.tlb if e.event == "walk"]
        side = ['<div class="grid">']
        if walks:
            levels = Counter(e.levels for e in walks if e.levels is not None)
            results = Counter(e.result or "?" for e in walks)
            read = sum(k * v for k, v in levels.items())
            mean = read / sum(levels.values()) if levels else 0
            side.append("<div><h3>Page walks</h3>")
            side.append(_table(["walks", "translated", "faulted", "entries read", "mean per walk"],
                               [[len(walks), results.get("ok", 0), results.get("fault", 0), read, f"{mean:.2f}"]],
                               left=0))
            side.append(_table(["entries read in a walk", "walks"],
                               [[k, levels[k]] for k in sorted(levels)]))
            side.append('<p class="note">1 entry: the paging-structure cache held the upper levels; '
                        'a full walk reads 4 (x86-64), 3 (i386 PAE) or 2 (i386).</p></div>')
        reasons = Counter((e.event, e.reason or "") for e in data.tlb if e.event in TLB_MARK_EVENTS)
        if reasons:
            side.append("<div><h3>Invalidations, flushes and switches by reason</h3>")
            side.append(_table(["event", "reason", "count"],
                               [[ev, _esc(r) or "—", n] for (ev, r), n in sorted(reasons.items())], left=2))
            side.append("</div>")
        side.append("</div>")
        parts += side
    if data.stats:
        parts.append("<h3>Statistics recorded in the trace</h3>")
        for rec in data.stats:
            rows = [[_esc(k), f"<code>{_esc(json.dumps(v) if isinstance(v, (dict, list)) else v)}</code>"]
                    for k, v in rec.items() if k != "type"]
            parts.append(_table(["name", "value"], rows, left=2))
    files = [[f"<code>{_esc(f['path'])}</code>", f["records"], f["skipped"]] for f in data.files]
    parts.append("<h3>Trace files</h3>")
    parts.append(_table(["file", "records", "lines skipped"], files))
    if data.other:
        parts.append(_table(["other record type", "records"], [[_esc(k), n] for k, n in sorted(data.other.items())]))
    return "\n".join(parts)


def render_report(data: TraceData, title: str | None = None, program: str | None = None) -> str:
    """The report's HTML for already-read traces."""
    charts = _Charts(data)
    outcomes = charts.outcomes
    colors = charts.colors
    names = ", ".join(os.path.basename(f["path"]) for f in data.files)
    program = program or _guess_program(data)
    title = title or (f"run-elf memory report — {program}" if program else "run-elf memory report")
    t_max = max([f.t for f in data.faults] + [e.t for e in data.tlb] + [0])
    pids = data.pids
    head = [("program", program or "—"), ("processes", ", ".join(f"pid {p}" for p in pids) or "—"),
            ("page faults", f"{len(data.faults):,}"), ("TLB records", f"{len(data.tlb):,}"),
            ("instructions" if data.time_label.startswith("instr") else "events", _fmt_count(t_max))]
    body = []
    for limit in data.limits:
        body.append(f'<div class="warn"><b>Trace cut short</b> ({_esc(os.path.basename(limit["file"]))}): '
                    f'{_esc(limit.get("reason") or "")} — the charts show the recorded events only.</div>')
    if data.faults:
        body.append('<section><h2>Page faults over time</h2><p class="note">Each bar stacks the faults of one '
                    'time bin by what the handler did; the line is the running total.</p>'
                    + charts.faults_over_time() + "</section>")
        body.append('<section><h2>Address-space map</h2><p class="note">Every fault at its address (the exact '
                    'CR2) against time. The address axis is cut into bands around the parts of the address space '
                    'that faulted, labelled with their regions; each band is linear, the gaps between them are '
                    'large unmapped ranges. Marker shape is the access (read, write, fetch).</p>'
                    + charts.address_map() + "</section>")
        body.append('<section><h2>Faults by region</h2>' + charts.faults_by_region() + "</section>")
    else:
        body.append('<section><h2>Page faults</h2><p class="note">No fault records in the trace '
                    '(run with <code>--trace-faults FILE.jsonl</code>).</p></section>')
    if data.tlb:
        body.append('<section><h2>TLB activity</h2><p class="note">Misses of the modelled TLB, fills, evictions '
                    'and page walks per time bin; below, each invalidation, flush and context switch as a tick, '
                    'one row per reason.</p>' + charts.tlb_over_time() + "</section>")
    else:
        body.append('<section><h2>TLB activity</h2><p class="note">No TLB records in the trace '
                    '(run with <code>--trace-tlb FILE.jsonl</code>).</p></section>')
    body.append('<section><h2>Statistics</h2><p class="note">Computed from the trace records.</p>'
                + _stats_html(data, colors, outcomes) + "</section>")
    dl = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in head)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f'<header><h1>{_esc(title)}</h1><div class="sub">from {_esc(names)}</div><dl>{dl}</dl></header>\n'
            f"<main>\n" + "\n".join(body) + "\n</main>\n"
            f"<footer>Generated by run-elf (osmodel.visual) from {len(data.files)} trace file(s).</footer>\n"
            f"</body>\n</html>\n")


def _guess_program(data: TraceData) -> str | None:
    """A program name for the header: the trace file's name without its extensions (bss.faults.jsonl -> bss)."""
    if not data.files:
        return None
    stems = {os.path.basename(f["path"]).split(".")[0] for f in data.files}
    return ", ".join(sorted(stems)) or None


def write_report(trace_paths: list[str], out_path: str, *, title: str | None = None,
                 program: str | None = None) -> None:
    """Read the traces and write the report as one self-contained HTML file at out_path.

    Raises MissingDependency (an ImportError) if matplotlib is not installed, OSError if a trace
    cannot be read or the report written, ValueError if no trace is given.
    """
    if isinstance(trace_paths, (str, os.PathLike)):
        trace_paths = [trace_paths]
    trace_paths = [os.fspath(p) for p in trace_paths]
    if not trace_paths:
        raise ValueError("write_report needs at least one trace file")
    _matplotlib()                                  # fail early, before reading large traces
    data = read_traces(trace_paths)
    text = render_report(data, title=title, program=program)
    tmp = f"{out_path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)


def main(argv: list[str] | None = None) -> int:
    """python -m osmodel.visual TRACE... -o REPORT.html"""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m osmodel.visual",
                                     description="Draw a self-contained HTML report from run-elf traces.")
    parser.add_argument("traces", nargs="+", help="JSON-lines (or CSV) traces from --trace-faults/--trace-tlb")
    parser.add_argument("-o", "--output", default="run-elf-report.html", help="the HTML file to write")
    parser.add_argument("--title", help="the report's title")
    parser.add_argument("--program", help="the program name for the header")
    args = parser.parse_args(argv)
    try:
        write_report(args.traces, args.output, title=args.title, program=args.program)
    except MissingDependency as err:
        print(f"run-elf: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"run-elf: cannot write the report: {err}", file=sys.stderr)
        return 1
    print(f"run-elf: report written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
