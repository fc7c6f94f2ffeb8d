"""Exact TLB mode: a two-level TLB hierarchy fed every instruction fetch, load and store.

On the default (fast) path Unicorn's own TLB absorbs hits, so run-elf sees each miss of its
TLB but not the hits, and LRU order is the order of fills. `ExactTlb` is a simulator that runs
*beside* that path (translation still goes through vm/cpu.py's TLB, MMU and fault handler): `attach`
routes every access of the emulated CPU through it with Unicorn hooks, so its hit, miss and
replacement figures are exact, comparable to DynamoRIO drcachesim's TLB simulator.

Organisation (as on Intel cores since Skylake):

    fetch --> iTLB --\
                      +--> STLB (shared second level) --> page walk (counted in `walks`)
    load/store -> dTLB

- An access looks up its L1 (iTLB for fetches, dTLB for loads and stores). On an L1 miss it looks
  up the STLB; on an STLB miss it is a page walk. A walk fills the STLB and the L1; an STLB hit
  fills the L1.
- The hierarchy is *non-inclusive* (fill both, no back-invalidation): an STLB eviction does not
  remove the page from the L1s, as in drcachesim (its TLBs are not inclusive) and on Intel cores,
  whose STLB is not strictly inclusive either. Invalidations and flushes reach every level.
- Entries are tagged with an address-space id (PCID); global entries (the kernel half,
  vaddr >= 0xffff800000000000) match every asid and survive per-asid and full non-global flushes.
- Each level is a `vm.tlb.Tlb` (set = vpn mod sets; LRU, FIFO or random within a set).

Default geometry (4 KiB pages), that of an Intel Skylake-class core:

    iTLB  64 entries,   8-way, LRU
    dTLB  64 entries,   4-way, LRU
    STLB  1536 entries, 12-way, LRU (the geometry of the fast path's TLB, `--tlb-entries/--tlb-ways`)

drcachesim's defaults are different (-TLB_L1I_entries 32 -TLB_L1I_assoc 32, -TLB_L1D_entries 32
-TLB_L1D_assoc 32, -TLB_L2_entries 1024 -TLB_L2_assoc 4, -TLB_replace_policy LFU); to compare with
it use `ExactTlb(TlbLevelConfig(32, 32), TlbLevelConfig(32, 32), TlbLevelConfig(1024, 4))` and
the same geometry there with `-TLB_replace_policy LRU` (we have no LFU).

Counting: an access that spans two pages (a load, store or instruction fetch crossing a page
boundary) is one access to each page. Consecutive accesses to the same page of the same L1 are
counted as hits without touching the model (exact: the page is already that L1's most recent
entry, and a hit changes nothing for FIFO or random); the counters are folded into the levels'
stats when `stats` is read (call `sync()` before reading a level's `Tlb.stats` directly).
A fetch is counted each time Unicorn's code hook reports the instruction: a REP string instruction
is reported once per iteration (QEMU re-executes it), so iTLB lookups and hits can exceed the
instructions retired by that much (0.015% on samples/bin/forkcow); misses are unaffected. The
kernel-half entry trampoline (`sysretq`, CPL 0) is fetched like any code, through a global entry.

Cost: every fetch and data access is a Python call (raw ctypes hooks; the same-page case is one
compare). `samples/bin/compute 1000000` (~12 M instructions): run phase 0.012 s on the fast path,
2.7 s attached (~0.22 us per instruction, ~220x; a do-nothing ctypes code hook alone costs 1.8 s);
a whole run, Python start-up included, goes from ~0.4 s to ~4.5 s.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UcError
from unicorn import unicorn_const as ucc
from unicorn.unicorn_py3 import unicorn as ucbinding

from vm.pagetable import X86_64, PagingFormat
from vm.tlb import Tlb

if TYPE_CHECKING:
    from vm.cpu import Cpu

__all__ = ["TlbLevelConfig", "ExactTlb", "attach", "detach", "KERNEL_HALF", "LEVELS"]

KERNEL_HALF = 0xFFFF_8000_0000_0000       # at and above: global (kernel) translations
PAGE_SHIFT = 12
LEVELS = ("itlb", "dtlb", "stlb")
_NAMES = {"itlb": "iTLB", "dtlb": "dTLB", "stlb": "STLB"}
_PRESENT = 1                               # what the levels cache: the model needs no real entry
_PAGE_MASK = ~0xFFF
NO_PAGE = -1 << 80                         # "no last page": no address is within a page of it

# void (*uc_cb_hookcode_t)(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
_CODE_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
# void (*uc_cb_hookmem_t)(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value, void *data)
_MEM_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64,
                              ctypes.c_void_p)


@dataclass
class TlbLevelConfig:
    """Geometry of one TLB level: `entries` in sets of `ways` (entries == ways: fully associative)."""
    entries: int
    ways: int
    policy: str = "lru"        # lru | fifo | random


DEFAULT_ITLB = TlbLevelConfig(64, 8, "lru")
DEFAULT_DTLB = TlbLevelConfig(64, 4, "lru")
DEFAULT_STLB = TlbLevelConfig(1536, 12, "lru")


class ExactTlb:
    """Split instruction and data TLBs in front of a shared second-level TLB, fed every access."""

    def __init__(self, itlb: TlbLevelConfig | None = None, dtlb: TlbLevelConfig | None = None,
                 stlb: TlbLevelConfig | None = None, seed: int = 0):
        itlb = itlb or DEFAULT_ITLB
        dtlb = dtlb or DEFAULT_DTLB
        stlb = stlb or DEFAULT_STLB
        self.config = {"itlb": itlb, "dtlb": dtlb, "stlb": stlb}
        # Distinct seeds per level so random replacement in one level is not correlated with another.
        self.itlb = Tlb(itlb.entries, itlb.ways, itlb.policy, seed=seed * 3 + 0, name="itlb")
        self.dtlb = Tlb(dtlb.entries, dtlb.ways, dtlb.policy, seed=seed * 3 + 1, name="dtlb")
        self.stlb = Tlb(stlb.entries, stlb.ways, stlb.policy, seed=seed * 3 + 2, name="stlb")
        self.walks = 0
        self.kernel_base = KERNEL_HALF   # at and above: global translations (the current format's kernel part)
        self.accesses = 0          # page accesses fed in (an access spanning two pages counts twice)
        # Fast path. The last page key ((vpn << 16) | asid) looked up in each L1: a repeat is a hit that
        # changes nothing. The hooks keep the same fact as the page's base address under the CPU's
        # current asid (`_ipage`/`_dpage`, NO_PAGE when unknown). Hits not yet folded into the stats.
        self._ilast = self._dlast = -1
        self._ipage = self._dpage = NO_PAGE
        self._ipending = self._dpending = 0

    # -- the model ---------------------------------------------------------------------------

    def access(self, vpn: int, asid: int, fetch: bool, global_: bool = False) -> None:
        """One access to page `vpn` of address space `asid`: an instruction fetch, or a load/store."""
        key = (vpn << 16) | asid
        if fetch:
            if key == self._ilast:
                self._ipending += 1
                return
            self._ilast = key
            self._ipage = NO_PAGE
            l1 = self.itlb
        else:
            if key == self._dlast:
                self._dpending += 1
                return
            self._dlast = key
            self._dpage = NO_PAGE
            l1 = self.dtlb
        self.accesses += 1
        if l1.lookup(vpn, asid):
            return
        stlb = self.stlb
        if not stlb.lookup(vpn, asid):
            self.walks += 1
            stlb.insert(vpn, asid, _PRESENT, global_)
        l1.insert(vpn, asid, _PRESENT, global_)

    def access_range(self, vaddr: int, size: int, asid: int, fetch: bool) -> None:
        """An access of `size` bytes at `vaddr`: one access to each page it touches, in address order."""
        vpn = vaddr >> PAGE_SHIFT
        last = (vaddr + max(size, 1) - 1) >> PAGE_SHIFT
        while True:
            self.access(vpn, asid, fetch, (vpn << PAGE_SHIFT) >= self.kernel_base)
            if vpn >= last:
                return
            vpn += 1

    def invalidate_page(self, vpn: int, asid: int | None = None, reason: str = "") -> None:
        """INVLPG: drop page `vpn` (of one asid, or of every asid) from every level."""
        self.forget_last()
        for level in (self.itlb, self.dtlb, self.stlb):
            level.invalidate_page(vpn, asid, reason)

    def flush(self, asid: int | None = None, include_global: bool = False, reason: str = "") -> None:
        """Drop every non-global translation (of one asid, or all; globals too if asked) from every level."""
        self.forget_last()
        for level in (self.itlb, self.dtlb, self.stlb):
            level.flush(asid, include_global, reason)

    def forget_last(self) -> None:
        """Drop the fast path's memory of the last page (the next access of each L1 does a real lookup)."""
        self._ilast = self._dlast = -1
        self._ipage = self._dpage = NO_PAGE

    # -- counters ----------------------------------------------------------------------------

    def sync(self) -> None:
        """Fold the fast path's pending L1 hits into the levels' `Tlb.stats`."""
        self.accesses += self._ipending + self._dpending
        if self._ipending:
            s = self.itlb.stats
            s.lookups += self._ipending
            s.hits += self._ipending
            self._ipending = 0
        if self._dpending:
            s = self.dtlb.stats
            s.lookups += self._dpending
            s.hits += self._dpending
            self._dpending = 0

    @property
    def stats(self) -> dict:
        """{'itlb': {...}, 'dtlb': {...}, 'stlb': {...}, 'walks': n, 'accesses': n}; each level's dict has
        lookups, hits, misses, fills, evictions, invalidations, flushes."""
        self.sync()
        out: dict = {name: getattr(self, name).stats.as_dict() for name in LEVELS}
        out["walks"] = self.walks
        out["accesses"] = self.accesses
        return out

    def describe(self) -> str:
        """The geometry, e.g. 'iTLB 64x8-way lru, dTLB 64x4-way lru, STLB 1536x12-way lru'."""
        return ", ".join(f"{_NAMES[name]} {c.entries} entries {c.ways}-way {c.policy}"
                         for name, c in self.config.items())

    def format_stats(self) -> list[str]:
        """Lines for the statistics printed at exit (osmodel.stats prints them when `cpu.exact_tlb` is set)."""
        st = self.stats
        lines = [f"exact TLB model ({self.describe()}): {st['accesses']} page accesses, {st['walks']} page walks"]
        for name in LEVELS:
            s = st[name]
            rate = 100.0 * s["misses"] / s["lookups"] if s["lookups"] else 0.0
            lines.append(f"  {name}: {s['lookups']} lookups, {s['hits']} hits, {s['misses']} misses ({rate:.3f}%), "
                         f"{s['fills']} fills, {s['evictions']} evictions, {s['invalidations']} invalidations, "
                         f"{s['flushes']} flushes")
        return lines


# -- wiring to the CPU ---------------------------------------------------------------------------


class _Attachment:
    """The hooks, wrappers and ctypes callbacks of one attach (kept alive while attached)."""

    def __init__(self, cpu: Cpu, exact: ExactTlb):
        self.cpu = cpu
        self.exact = exact
        self.handles: list[ucbinding.uc_hook_h] = []
        self.callbacks: list[object] = []

    def hooks(self):
        """The two hook functions; written for speed (they run on every instruction and data access):
        the common case, the same page as the previous access of the same L1, is one compare."""
        cpu, ex, fail = self.cpu, self.exact, self._fail

        def on_fetch(_uch, address: int, size: int, _data) -> None:
            """UC_HOOK_CODE: the CPU is about to run the instruction of `size` bytes at `address`."""
            try:
                if 0 <= address - ex._ipage <= 0x1000 - size:      # within the last page fetched from
                    ex._ipending += 1
                else:
                    ex.access_range(address, size, cpu.asid, True)
                    ex._ipage = (address + size - 1) & _PAGE_MASK
            except BaseException as exc:  # noqa: BLE001 - must not escape into C
                fail(exc)

        def on_data(_uch, _type: int, address: int, size: int, _value: int, _data) -> None:
            """UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE: a load or store of `size` bytes at `address`."""
            try:
                if 0 <= address - ex._dpage <= 0x1000 - size:      # within the last page accessed
                    ex._dpending += 1
                else:
                    ex.access_range(address, size, cpu.asid, False)
                    ex._dpage = (address + size - 1) & _PAGE_MASK
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        return on_fetch, on_data

    def _fail(self, exc: BaseException) -> None:
        from vm.cpu import Trap
        cpu = self.cpu
        if cpu.trap is None:
            cpu.trap = Trap("host-error", cpu._rip_safe(), error=exc)
        cpu.uc.emu_stop()

    def add_hook(self, kind: int, cfunc, function) -> None:
        cb = cfunc(function)
        handle = ucbinding.uc_hook_h()
        status = ucbinding.uclib.uc_hook_add(self.cpu._uch, ctypes.byref(handle), kind, cb, None,
                                             ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        self.callbacks.append(cb)
        self.handles.append(handle)


def attach(cpu: Cpu, exact: ExactTlb) -> None:
    """Route every load, store and instruction fetch of `cpu` through `exact`.

    Registers UC_HOOK_CODE (fetches) and UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE (data) through raw
    ctypes `uc_hook_add`, uses `cpu.asid` as the address-space id and treats the kernel half (at and above the 3G/1G split for 32-bit) as
    global, and wraps `cpu.invalidate_page` / `cpu.flush_tlb` on the instance so the kernel's page
    and asid invalidations reach the exact model too (and `cpu.switch_to`, so the hooks' same-page
    shortcut never carries over from one address space to another). Translation itself is unchanged. Attach before
    `Kernel.run` (already translated code is dropped here, so attaching later works too).
    """
    if getattr(cpu, "exact_tlb", None) is not None:
        raise ValueError("an exact TLB is already attached to this CPU")
    att = _Attachment(cpu, exact)
    on_fetch, on_data = att.hooks()
    att.add_hook(UC_HOOK_CODE, _CODE_CFUNC, on_fetch)
    att.add_hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, _MEM_CFUNC, on_data)

    invalidate_page = cpu.invalidate_page
    flush_tlb = cpu.flush_tlb
    switch_to = cpu.switch_to

    def invalidate_page_exact(vaddr: int, asid: int | None = None, reason: str = "") -> None:
        invalidate_page(vaddr, asid, reason)
        exact.invalidate_page(vaddr >> PAGE_SHIFT, asid, reason)

    def flush_tlb_exact(asid: int | None = None, reason: str = "") -> None:
        flush_tlb(asid, reason)
        exact.flush(asid, reason=reason)

    def switch_to_exact(root: int, asid: int, fmt: PagingFormat = X86_64) -> None:
        switch_to(root, asid, fmt)
        exact.kernel_base = fmt.kernel_base   # global (kernel) pages: the kernel half, or above the 3G/1G split
        exact.forget_last()          # the hooks' last pages were pages of the previous asid

    invalidate_page_exact.__doc__ = invalidate_page.__doc__
    flush_tlb_exact.__doc__ = flush_tlb.__doc__
    switch_to_exact.__doc__ = switch_to.__doc__
    cpu.invalidate_page = invalidate_page_exact
    cpu.flush_tlb = flush_tlb_exact
    cpu.switch_to = switch_to_exact
    cpu.exact_tlb = exact
    cpu._exact_attachment = att
    # Code translated before the hooks existed would not call them (nor take the slow memory path).
    cpu.forget_code()
    cpu.flush_unicorn_tlb()


def detach(cpu: Cpu) -> ExactTlb | None:
    """Undo `attach`: remove the hooks and the wrappers; the model that was attached, or None."""
    att: _Attachment | None = getattr(cpu, "_exact_attachment", None)
    if att is None:
        return None
    for handle in att.handles:
        ucbinding.uclib.uc_hook_del(cpu._uch, handle)
    del cpu.invalidate_page, cpu.flush_tlb, cpu.switch_to     # back to the class's methods
    cpu.exact_tlb = None
    cpu._exact_attachment = None
    cpu.forget_code()
    att.exact.sync()
    return att.exact
