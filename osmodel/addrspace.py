"""Address spaces: a process's regions (what may be mapped where) and its page table (what is).

A Region is a virtual memory area: start/end, protection, kind, and its backing (a file
offset or zero-fill). The page table holds only the pages touched so far; the fault
handler fills the rest on demand from the regions.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from vm.pagetable import (PTE_DIRTY, PTE_FRAME, PTE_NX, PTE_PRESENT, PTE_USER, PTE_WRITABLE, X86_64, PageTable,
                          PagingFormat)
from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, PhysicalMemory

if TYPE_CHECKING:
    from osmodel.pagecache import PageCache

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4

STACK_TOP = 0x7FFF_FFFF_F000          # Linux's STACK_TOP for 47-bit user space, unrandomised
STACK_INITIAL = 128 * 1024            # the stack area set up at exec (Linux expands to 128 KiB)
STACK_GUARD_GAP = 256 * PAGE_SIZE     # Linux's stack_guard_gap: nothing may sit this close below the stack
MMAP_BASE = 0x7FFF_F7FF_F000          # top of the mmap area (below the stack and its limit), unrandomised
MMAP_GAP = 128 << 20                  # Linux's minimum gap between the stack top and the mmap base
STACK_TOP_32 = 0xC000_0000            # i386: the stack ends at PAGE_OFFSET, where the kernel's quarter begins
MMAP_BASE_32 = STACK_TOP_32 - MMAP_GAP
MMAP_MIN_ADDR = 0x10000               # Linux's vm.mmap_min_addr
_FILE = int(Owner.FILE)
_PROT_RWX = PROT_READ | PROT_WRITE | PROT_EXEC
# Region.pte_flags by protection: present and user; W if writable; NX unless executable.
_PTE_FLAGS = tuple(PTE_PRESENT | PTE_USER | (PTE_WRITABLE if prot & PROT_WRITE else 0)
                   | (0 if prot & PROT_EXEC else PTE_NX) for prot in range(_PROT_RWX + 1))


class Backing(Protocol):
    """Where a file-backed region's bytes come from (osmodel.pagecache.FileBacking)."""
    path: str
    key: tuple[int, int]

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of the file at offset (short at end of file)."""


def _entries(words: memoryview, values: list[int]) -> array:
    """Page-table entries as a buffer that slices of `words` (8- or 4-byte entries) accept."""
    return array(words.format, values)


def page_down(addr: int) -> int:
    """addr rounded down to a page boundary."""
    return addr & ~(PAGE_SIZE - 1)


def page_up(addr: int) -> int:
    """addr rounded up to a page boundary."""
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def prot_string(prot: int, shared: bool = False) -> str:
    """Protection as /proc/PID/maps prints it, e.g. 'r-xp'."""
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") \
        + ("x" if prot & PROT_EXEC else "-") + ("s" if shared else "p")


@dataclass(eq=False)
class Region:
    """One virtual memory area. File bytes back [file_start, file_end); the rest reads as zero."""
    start: int
    end: int
    prot: int
    kind: str                        # text, rodata, data, bss, heap, stack, mmap
    backing: Backing | None = None
    offset: int = 0                  # file offset of `start`
    file_start: int = 0
    file_end: int = 0
    shared: bool = False
    name: str = ""

    def pte_flags(self) -> int:
        """Leaf-entry flags this region's pages get when mapped writable-if-allowed."""
        return _PTE_FLAGS[self.prot & _PROT_RWX]

    def file_bytes(self, vaddr: int) -> tuple[int, int, int]:
        """For the page at vaddr: (file offset, byte count, offset in page) of its file-backed part."""
        lo = max(vaddr, self.file_start)
        hi = min(vaddr + PAGE_SIZE, self.file_end)
        if self.backing is None or hi <= lo:
            return 0, 0, 0
        return self.offset + (lo - self.start), hi - lo, lo - vaddr

    def split(self, at: int) -> tuple[Region, Region]:
        """Two regions [start, at) and [at, end) with the same backing."""
        return replace(self, end=at), replace(self, start=at, offset=self.offset + (at - self.start))

    def maps_line(self) -> str:
        """This region as a /proc/PID/maps line."""
        name = self.name
        if not name:
            name = {"heap": "[heap]", "stack": "[stack]"}.get(self.kind, "")
        offset = self.offset if self.backing is not None else 0
        line = f"{self.start:08x}-{self.end:08x} {prot_string(self.prot, self.shared)} {offset:08x} 00:00 0"
        return f"{line:<73}{name}" if name else line


class AddressSpace:
    """Regions sorted by address, the page table, and the heap/stack/mmap bookkeeping of one process."""

    def __init__(self, ram: PhysicalMemory, kernel_root: int, asid: int, cache: PageCache | None = None,
                 fmt: PagingFormat = X86_64):
        self.ram = ram
        self.fmt = fmt                 # the paging format: X86_64, or I386/I386_PAE for a 32-bit program
        self.pagetable = PageTable(ram, kernel_root=kernel_root, fmt=fmt)
        self.user_top = fmt.user_top   # user space is [0, user_top); the kernel's part lies above
        self.asid = asid
        self.cache = cache             # the page cache whose frames this space may map
        self.regions: list[Region] = []
        self._found: Region | None = None   # the region find() returned last (dropped when a region is)
        self._starts: list[int] = []
        self.brk_start = 0
        self.brk = 0
        self.stack_limit = 8 << 20
        self.stack_top = STACK_TOP if fmt is X86_64 else STACK_TOP_32
        self.mmap_base = MMAP_BASE if fmt is X86_64 else MMAP_BASE_32
        self.resident = 0
        self.peak_resident = 0
        self.users = 1                 # processes running in it (a vfork child shares its parent's)

    # -- regions ---------------------------------------------------------------------------

    def find(self, vaddr: int) -> Region | None:
        """The region containing vaddr, or None."""
        r = self._found
        if r is not None and r.start <= vaddr < r.end:     # faults come in runs within one region
            return r
        i = bisect.bisect_right(self._starts, vaddr) - 1
        if i >= 0:
            r = self.regions[i]
            if vaddr < r.end:
                self._found = r
                return r
        return None

    def next_region(self, vaddr: int) -> Region | None:
        """The first region starting at or above vaddr."""
        i = bisect.bisect_left(self._starts, vaddr)
        return self.regions[i] if i < len(self.regions) else None

    def prev_region(self, vaddr: int) -> Region | None:
        """The last region ending at or below vaddr."""
        i = bisect.bisect_right(self._starts, vaddr) - 1
        while i >= 0 and self.regions[i].end > vaddr:
            i -= 1
        return self.regions[i] if i >= 0 else None

    def add(self, region: Region) -> Region:
        """Insert a region; it must not overlap another."""
        if region.start >= region.end or region.start % PAGE_SIZE or region.end % PAGE_SIZE:
            raise ValueError(f"bad region {region.start:#x}-{region.end:#x}")
        i = bisect.bisect_left(self._starts, region.start)
        if (i < len(self.regions) and self.regions[i].start < region.end) or \
                (i > 0 and self.regions[i - 1].end > region.start):
            raise ValueError(f"region {region.start:#x}-{region.end:#x} overlaps another")
        self.regions.insert(i, region)
        self._starts.insert(i, region.start)
        return region

    def carve(self, start: int, end: int) -> list[Region]:
        """Split regions at start and end; return the regions now lying wholly inside [start, end)."""
        for at in (start, end):
            r = self.find(at)
            if r is not None and r.start < at:
                i = self.regions.index(r)
                lo, hi = r.split(at)
                self._found = None
                self.regions[i:i + 1] = [lo, hi]
                self._starts[i:i + 1] = [lo.start, hi.start]
        return [r for r in self.regions if r.start >= start and r.end <= end]

    def remove(self, region: Region) -> None:
        """Forget a region (its pages must already be unmapped)."""
        self._found = None
        i = self.regions.index(region)
        del self.regions[i]
        del self._starts[i]

    def resize(self, region: Region, start: int, end: int) -> None:
        """Move a region's bounds (stack growth, brk) keeping the order."""
        i = self.regions.index(region)
        if start != region.start and region.backing is not None:
            region.offset -= region.start - start
        region.start, region.end = start, end
        self._starts[i] = start

    def find_free(self, length: int, hint: int = 0) -> int:
        """A free, page-aligned range of `length` bytes: at hint if it fits, else top-down below mmap_base; 0 if none."""
        if hint:
            hint = page_down(hint)
            if MMAP_MIN_ADDR <= hint and hint + length <= self.user_top and self.is_free(hint, hint + length):
                return hint
        top = self.mmap_base
        for r in reversed(self.regions):
            if r.start >= top:
                continue
            if r.end <= top - length:
                candidate = top - length
                if candidate >= max(r.end, MMAP_MIN_ADDR):
                    return candidate
            top = min(top, r.start)
        candidate = top - length
        return candidate if candidate >= MMAP_MIN_ADDR else 0

    def is_free(self, start: int, end: int) -> bool:
        """Whether no region overlaps [start, end)."""
        i = bisect.bisect_left(self._starts, end)
        return i == 0 or self.regions[i - 1].end <= start

    # -- pages -------------------------------------------------------------------------------

    def map_page(self, vaddr: int, pfn: int, flags: int) -> None:
        """Install a translation for a page that had none."""
        self.pagetable.map(vaddr, pfn, flags)
        resident = self.resident = self.resident + 1
        if resident > self.peak_resident:
            self.peak_resident = resident

    def unmap_pages(self, start: int, end: int) -> list[int]:
        """Remove every translation in [start, end), dropping the frames' references; the vaddrs unmapped.

        A page-cache frame leaves the cache's reverse map, and is first written back to its file
        if this (shared) mapping dirtied it.
        """
        gone = []
        frames = []
        pt = self.pagetable
        words = pt.words
        cache = self.cache
        owner = self.ram.owner
        for va, i, n in pt.leaf_runs(start, end):       # a leaf table at a time
            if n <= 0:
                continue
            for pte in words[i:i + n].tolist():
                if pte & PTE_PRESENT:
                    pfn = (pte & PTE_FRAME) >> PAGE_SHIFT
                    if owner[pfn] == _FILE and cache is not None and cache.is_cached(pfn):   # cached frames are FILE frames
                        if pte & PTE_DIRTY:
                            cache.write_page(pfn)
                        cache.remove_mapping(pfn, self, va)
                    frames.append(pfn)
                    gone.append(va)
                va += PAGE_SIZE
            words[i:i + n] = _entries(words, [0] * n)
        self.ram.put_many(frames)
        self.resident -= len(gone)
        return gone

    def protect_pages(self, start: int, end: int, region: Region) -> list[int]:
        """Rewrite the entries in [start, end) for the region's new protection; the vaddrs changed.

        Write permission is only ever taken away here: a private page that becomes writable
        regains W through a write fault, which decides between reusing and copying it.
        """
        changed = []
        words = self.pagetable.words
        nx = self.fmt.nx              # 0 for i386 without PAE: a page readable there is executable
        for vaddr, slot, pte in self.pagetable.leaves(start, end):
            new = pte
            if not region.prot & PROT_WRITE:
                new &= ~PTE_WRITABLE
            elif region.shared:
                new |= PTE_WRITABLE
            new = (new | nx) if not region.prot & PROT_EXEC else (new & ~PTE_NX)
            if new != pte:
                words[slot] = new
                changed.append(vaddr)
        return changed

    def copy_into(self, child: AddressSpace) -> None:
        """Fork: give child the same regions and a copy of the page tables, sharing every frame.

        Private writable pages lose W in both tables (copy-on-write); shared mappings keep it.
        Each shared frame gains a reference. The caller flushes this space's stale TLB entries.
        """
        child.regions = [replace(r) for r in self.regions]
        child._starts = list(self._starts)
        child._found = None
        child.brk_start, child.brk = self.brk_start, self.brk
        child.stack_limit, child.stack_top, child.mmap_base = self.stack_limit, self.stack_top, self.mmap_base
        words = self.pagetable.words
        child_pt = child.pagetable
        child_words = child_pt.words
        cache = self.cache
        owner = self.ram.owner
        frames = []
        for region in self.regions:
            cow = region.prot & PROT_WRITE and not region.shared
            for first, i, n in self.pagetable.leaf_runs(region.start, region.end):   # a leaf table at a time
                if n <= 0:
                    continue
                entries = words[i:i + n].tolist()
                if cow:
                    entries = [pte & ~PTE_WRITABLE for pte in entries]
                    words[i:i + n] = _entries(words, entries)
                shared = len(frames)
                va = first
                for pte in entries:
                    if pte & PTE_PRESENT:
                        pfn = (pte & PTE_FRAME) >> PAGE_SHIFT
                        frames.append(pfn)
                        if owner[pfn] == _FILE and cache is not None and cache.is_cached(pfn):   # cached frames are FILE frames
                            cache.add_mapping(pfn, child, va)
                    va += PAGE_SIZE
                if len(frames) > shared:            # the child gets a leaf table only where a page is mapped
                    c = child_pt.slot(first, alloc=True)
                    child_words[c:c + n] = _entries(child_words, entries)
        self.ram.get_many(frames)
        child.resident += len(frames)
        child.peak_resident = child.resident

    def release(self) -> None:
        """Unmap everything in the user half and free the page tables (the address space dies)."""
        self.unmap_pages(0, self.user_top)
        self.pagetable.free_user_tables()
        self.regions.clear()
        self._found = None
        self._starts.clear()

    def maps(self) -> list[str]:
        """The regions in /proc/PID/maps format."""
        return [r.maps_line() for r in self.regions]

    def dirty_pages(self) -> int:
        """How many mapped pages have their dirty bit set."""
        return sum(1 for _va, _slot, pte in self.pagetable.leaves() if pte & PTE_DIRTY)
