"""Statistics of a run: faults by kind per process, TLB counters per process and machine-wide, page walks,
physical memory.

Per-process TLB figures come from a `StatsCollector` attached to the kernel before the run: it
charges the differences of the machine's counters over each `Cpu.run` (one process runs) to that
process, and wraps the CPU's invalidate/flush and the kernel's context switch and address-space
release on the instance; nothing runs per memory access, so --stats costs no measurable time.
Processes that are gone (`kernel.reaped`) are reported as well as live ones.

The output (stderr) keeps two lines that tools parse: the first line's "time: X s" and, per
process, "  demand-zero faults: N".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Callable, TextIO

from osmodel.fault import DEMAND_ZERO, OOM, OUTCOMES, SEGV
from osmodel.signals import signal_name
from vm.tlb import GLOBAL_ASID

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process
    from vm.icount import InstructionCounter

__all__ = ["StatsCollector", "owner_pid", "add_tlb_listener", "all_processes", "print_stats",
           "MISS_RATE_NA"]

# A major fault had to read the backing file (a page-cache miss, as Linux counts them; Process.major_faults);
# the rest are minor.
MISS_RATE_NA = "n/a (hits are absorbed by Unicorn's TLB; use --tlb-exact)"


def owner_pid(kernel: Kernel, asid: int) -> int | None:
    """The process an address-space id belongs to now: the current process if it runs in it, else the
    process whose address space has it (the one whose pid gave it, when a vfork child shares it), else
    the process about to be created with it (a fresh address space is flushed before its process
    exists); for global entries (GLOBAL_ASID) the current process. None if nobody."""
    cur = kernel.current
    if asid == GLOBAL_ASID:
        return cur.pid if cur is not None else None
    if cur is not None and cur.aspace.asid == asid:
        return cur.pid
    found = None
    for p in kernel.processes.values():
        if p.aspace.asid == asid:
            if p.pid & 0xFFF == asid:
                return p.pid
            found = found or p.pid
    if found is not None:
        return found
    for pid in (kernel.next_pid, kernel.next_pid - 1):    # fork makes the space first; spawn takes the pid first
        if pid >= 1 and pid & 0xFFF == asid and pid not in kernel.processes:
            return pid
    return None


def add_tlb_listener(tlb, listener: Callable[[str, int, int, int, str], None]) -> None:
    """Make `listener` hear the TLB's events, after any listener already there."""
    previous = tlb.listener
    if previous is None:
        tlb.listener = listener
        return

    def both(event: str, vpn: int, asid: int, pte: int, reason: str) -> None:
        previous(event, vpn, asid, pte, reason)
        listener(event, vpn, asid, pte, reason)

    tlb.listener = both


def all_processes(kernel: Kernel) -> list[Process]:
    """Every process of the run, reaped or not, in pid order."""
    procs = {p.pid: p for p in kernel.reaped}
    procs.update(kernel.processes)
    return [procs[pid] for pid in sorted(procs)]


class StatsCollector:
    """Per-process counters gathered during a run, keyed by pid:

    miss, fill, evict, walk, levels (table entries read by walks), instructions (with a counter):
    charged to the running process, whose accesses caused them (an eviction's victim may belong to
    another address space); they are the differences of the machine's counters over each
    `Cpu.run`, which runs one process, so nothing is hooked per access or per TLB event.
    invalidate, flush: charged to the owner of the address-space id (`owner_pid`), by wrapping the
    CPU's invalidate_page / flush_tlb; switch: context switches to the process.
    It also keeps each process's peak resident pages and page-table pages over all its address
    spaces (exec replaces one), read just before each is released.
    """

    def __init__(self, kernel: Kernel, counter: InstructionCounter | None = None):
        self.kernel = kernel
        self.counter = counter
        self.counts: dict[int | None, Counter] = defaultdict(Counter)
        self.peak_resident: dict[int, int] = {}
        self.table_pages: dict[int, int] = {}
        self.attached = False

    def _snapshot(self) -> tuple[int, ...]:
        k = self.kernel
        s = k.tlb.stats
        mmu = k.cpu.mmu
        return (s.misses, s.fills, s.evictions, mmu.walks, mmu.levels_read,
                self.counter.count if self.counter is not None else 0)

    def attach(self) -> StatsCollector:
        """Start collecting (before `kernel.spawn`, to see everything)."""
        if self.attached:
            return self
        self.attached = True
        k = self.kernel
        cpu = k.cpu
        counts = self.counts
        names = ("miss", "fill", "evict", "walk", "levels", "instructions")
        run = cpu.run

        def attributed_run(*args, **kwargs):
            before = self._snapshot()
            cur = k.current
            try:
                return run(*args, **kwargs)
            finally:
                c = counts[cur.pid if cur is not None else None]
                for name, a, b in zip(names, before, self._snapshot()):
                    if b != a:
                        c[name] += b - a

        attributed_run.__doc__ = run.__doc__
        cpu.run = attributed_run

        invalidate_page = cpu.invalidate_page

        def counted_invalidate_page(vaddr: int, asid: int | None = None, *args, **kwargs) -> None:
            invalidate_page(vaddr, asid, *args, **kwargs)
            counts[owner_pid(k, GLOBAL_ASID if asid is None else asid)]["invalidate"] += 1

        counted_invalidate_page.__doc__ = invalidate_page.__doc__
        cpu.invalidate_page = counted_invalidate_page
        flush_tlb = cpu.flush_tlb

        def counted_flush_tlb(asid: int | None = None, *args, **kwargs) -> None:
            flush_tlb(asid, *args, **kwargs)
            counts[owner_pid(k, GLOBAL_ASID if asid is None else asid)]["flush"] += 1

        counted_flush_tlb.__doc__ = flush_tlb.__doc__
        cpu.flush_tlb = counted_flush_tlb

        switch = k.switch

        def counted_switch(proc: Process, *args, **kwargs) -> None:
            changed = proc is not k.current
            switch(proc, *args, **kwargs)
            if changed:
                counts[proc.pid]["switch"] += 1

        counted_switch.__doc__ = switch.__doc__
        k.switch = counted_switch

        release = k.release_aspace

        def noted_release(aspace, *args, **kwargs) -> None:
            for p in list(k.processes.values()):
                if p.aspace is aspace:
                    self.peak_resident[p.pid] = max(self.peak_resident.get(p.pid, 0), aspace.peak_resident)
                    self.table_pages[p.pid] = max(self.table_pages.get(p.pid, 0), aspace.pagetable.table_pages)
            release(aspace, *args, **kwargs)

        noted_release.__doc__ = release.__doc__
        k.release_aspace = noted_release
        return self

    def of(self, pid: int | None) -> Counter:
        """The counters of one process (empty if it had none)."""
        return self.counts.get(pid, Counter())


def _status(proc: Process) -> str:
    if proc.alive:
        return "still running"
    if proc.killed_by is not None:
        return f"killed by {signal_name(proc.killed_by)}"
    return f"exited with status {(proc.exit_code or 0) & 0xFF}"


def _exact_model(kernel: Kernel):
    """The exact TLB model attached to the CPU (--tlb-exact), if any."""
    return getattr(kernel.cpu, "exact_tlb", None)


def print_stats(kernel: Kernel, seconds: float, out: TextIO, collector: StatsCollector | None = None) -> None:
    """Write the statistics of a finished run: per process, then the machine."""
    w = lambda line="": print(line, file=out)  # noqa: E731
    w(f"run-elf statistics (time: {seconds:.3f} s)")
    exact = _exact_model(kernel)
    counter = collector.counter if collector is not None else None
    for proc in all_processes(kernel):
        counts = proc.fault_counts
        total = sum(counts.values())
        major = proc.major_faults
        failed = counts[SEGV] + counts[OOM]
        peak = max(proc.peak_resident, proc.aspace.peak_resident if proc.alive else 0)
        tables = proc.table_pages if not proc.alive else proc.aspace.pagetable.table_pages
        if collector is not None:
            peak = max(peak, collector.peak_resident.get(proc.pid, 0))
            tables = max(tables, collector.table_pages.get(proc.pid, 0))
        w(f"pid {proc.pid} ({proc.name}): {_status(proc)}")
        if proc.bits == 32:
            fmt = proc.aspace.fmt
            w(f"  32-bit (i386) process: {fmt.name} paging ({', '.join(fmt.level_names)}), "
              f"user space below {proc.aspace.user_top:#x}")
        w(f"  page faults: {total} ({total - major - failed} minor, {major} major"
          + (f", {failed} refused" if failed else "") + ")")
        for kind in OUTCOMES:
            if counts[kind] or kind == DEMAND_ZERO:
                w(f"  {kind} faults: {counts[kind]}")
        w(f"  peak resident: {peak} pages; page-table pages: {tables}")
        if collector is not None:
            c = collector.of(proc.pid)
            w(f"  TLB: {c['miss']} misses, {c['fill']} fills, {c['evict']} evictions, "
              f"{c['invalidate']} invalidations, {c['flush']} flushes")
            w(f"  TLB miss rate: {'n/a (per-process hits are not counted; machine-wide below)' if exact else MISS_RATE_NA}")
            w(f"  page walks: {c['walk']} ({c['levels']} table reads); context switches to it: {c['switch']}")
            if counter is not None:
                w(f"  instructions retired: {c['instructions']}")
    tlb = kernel.tlb
    s = tlb.stats
    w(f"TLB ({tlb.entries} entries, {tlb.ways}-way, {tlb.policy}): {s.misses} misses, {s.fills} fills, "
      f"{s.evictions} evictions, {s.invalidations} invalidations, {s.flushes} flushes")
    w(f"  lookups on Unicorn TLB misses: {s.lookups} ({s.hits} hit our TLB); hits absorbed by Unicorn's TLB are not seen")
    if exact is not None:
        for line in exact.format_stats():
            w(line)
    else:
        w(f"  TLB miss rate: {MISS_RATE_NA}")
    cpu = kernel.cpu
    w(f"page walks: {cpu.mmu.walks} ({cpu.mmu.levels_read} table reads); Unicorn TLB fills {cpu.fills}, "
      f"flushes {cpu.uc_flushes}; context switches {kernel.context_switches}")
    if counter is not None:
        w(f"instructions retired: {counter.count} ({counter.blocks} blocks run, {counter.decoded} decoded)")
    ram = kernel.ram
    w(f"physical memory: {ram.nframes} frames, peak {ram.peak_used} used, {ram.used_frames} in use at exit")

