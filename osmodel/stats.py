"""Statistics of a run: faults by kind per process, TLB counters, page walks, physical memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from osmodel.fault import FILE_LOAD, OUTCOMES

if TYPE_CHECKING:
    from osmodel.kernel import Kernel

# A major fault needs the backing file read (Linux counts page-cache misses that do I/O); the rest are minor.
MAJOR = {FILE_LOAD}


def print_stats(kernel: Kernel, seconds: float, out: TextIO) -> None:
    """Write the statistics table of a finished run."""
    w = lambda line="": print(line, file=out)  # noqa: E731
    w(f"run-elf statistics (time: {seconds:.3f} s)")
    for proc in kernel.processes.values():
        counts = proc.fault_counts
        total = sum(counts.values())
        major = sum(counts[k] for k in MAJOR)
        w(f"pid {proc.pid} ({proc.name}): {total} page faults, {total - major - counts['segv'] - counts['oom']} minor, "
          f"{major} major; peak resident {proc.peak_resident} pages; page-table pages {proc.table_pages}")
        for kind in OUTCOMES:
            if counts[kind]:
                w(f"  {kind} faults: {counts[kind]}")
    tlb = kernel.tlb
    s = tlb.stats
    w(f"TLB ({tlb.entries} entries, {tlb.ways}-way, {tlb.policy}): {s.misses} misses, {s.fills} fills, "
      f"{s.evictions} evictions, {s.invalidations} invalidations, {s.flushes} flushes")
    w(f"  lookups on Unicorn TLB misses: {s.lookups} ({s.hits} hit our TLB); hits absorbed by Unicorn's TLB are not seen")
    cpu = kernel.cpu
    w(f"page walks: {cpu.mmu.walks} ({cpu.mmu.levels_read} table reads); Unicorn TLB fills {cpu.fills}, "
      f"flushes {cpu.uc_flushes}")
    ram = kernel.ram
    w(f"physical memory: {ram.nframes} frames, peak {ram.peak_used} used, {ram.used_frames} in use at exit")
