"""Page tables stored in frames of emulated RAM in the hardware format: x86-64 four-level tables, and
i386 two-level (and PAE three-level) tables for 32-bit programs.

x86-64: a virtual address splits 9/9/9/9/12: PML4, PDPT, PD and PT index, then the
page offset. Each table is one frame of 512 eight-byte entries with the bits below.

i386 (non-PAE): a 32-bit address splits 10/10/12: PD and PT index. Each table is one
frame of 1024 four-byte entries; the bits are the low bits of the x86-64 layout (P=0,
W=1, U=2, A=5, D=6, PS=7, G=8), the frame in bits 31..12, and there is no NX. The kernel
is the top quarter (0xc0000000 up, Linux's 3G/1G split: page-directory entries 768..1023).

i386 PAE: 2/9/9/12 with eight-byte entries (NX exists): a four-entry PDPT (kept in a frame
of its own), PD and PT. PDPT entries are PAE's PDPTE registers: only P is defined (W, U, A
and NX are reserved there), so they neither restrict the walk nor get an accessed bit.

A `PagingFormat` describes one of these; `PageTable(ram, fmt=...)` and `Mmu.walk(..., fmt=...)`
take it, X86_64 by default. A table's entries are read and written through `PageTable.words`:
RAM as 8-byte words (`ram.words`) for x86-64 and PAE, as 4-byte words for i386; a slot is an
index into that view.
"""

from __future__ import annotations

import array
import weakref
from dataclasses import dataclass, field
from typing import Iterator

from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, PhysicalMemory

PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_USER = 1 << 2
PTE_PWT = 1 << 3
PTE_PCD = 1 << 4
PTE_ACCESSED = 1 << 5
PTE_DIRTY = 1 << 6
PTE_HUGE = 1 << 7
PTE_GLOBAL = 1 << 8
PTE_NX = 1 << 63
PTE_FRAME = 0x000F_FFFF_FFFF_F000

LEVELS = 4
LEVEL_NAMES = ("PML4", "PDPT", "PD", "PT")
ENTRIES = 512
KERNEL_HALF = 0xFFFF_8000_0000_0000
USER_TOP = 0x0000_8000_0000_0000
# Intermediate entries grant everything; the leaf decides (Linux does the same for user tables).
TABLE_FLAGS_USER = PTE_PRESENT | PTE_WRITABLE | PTE_USER
TABLE_FLAGS_KERNEL = PTE_PRESENT | PTE_WRITABLE

_BIT_NAMES = ((PTE_PRESENT, "P"), (PTE_WRITABLE, "W"), (PTE_USER, "U"), (PTE_ACCESSED, "A"),
              (PTE_DIRTY, "D"), (PTE_GLOBAL, "G"), (PTE_NX, "NX"))


@dataclass(frozen=True, eq=False)
class PagingFormat:
    """How one kind of paging structure is laid out and checked: levels, entry size, frame bits, NX, the user/kernel split.

    Compared by identity: X86_64, I386 and I386_PAE are the formats.
    """
    name: str
    shifts: tuple[int, ...]        # the index's lowest address bit at each level, root first (x86-64: 39, 30, 21, 12)
    widths: tuple[int, ...]        # index bits at each level (x86-64: 9 each; i386: 10 each)
    entry_size: int                # bytes per entry: 8 or 4
    frame_mask: int                # the bits of an entry holding the frame's physical address
    nx: int                        # the execute-disable bit, or 0 if the format has none
    address_bits: int              # width of a virtual address: 64 or 32
    canonical_bits: int            # x86-64: 48 (bits 63..47 must be equal; else #GP); 0: no canonical check
    user_top: int                  # user space is [0, user_top)
    kernel_base: int               # the kernel half: [kernel_base, 2**address_bits), supervisor-only, shared
    level_names: tuple[str, ...]   # for dumps, root first
    pdpte_root: bool = False       # PAE: root entries are PDPTEs (only P; no W/U/A/NX there)
    # derived
    levels: int = field(init=False)
    entry_shift: int = field(init=False)     # log2(entry_size): word index = physical address >> entry_shift
    table_shift: int = field(init=False)     # word index of a table's first entry = frame number << table_shift
    masks: tuple[int, ...] = field(init=False)
    leaf_mask: int = field(init=False)       # index mask of the last level
    area_shift: int = field(init=False)      # an address's "area": the range one leaf table maps (2 MiB, 4 MiB)
    area_mask: int = field(init=False)       # area numbers within the (canonical) address space
    area_bits: int = field(init=False)
    kernel_index: int = field(init=False)    # first root entry of the kernel half
    entry_mask: int = field(init=False)      # every bit an entry can hold

    def __post_init__(self):
        put = object.__setattr__
        levels = len(self.shifts)
        if len(self.widths) != levels or len(self.level_names) != levels or self.shifts[-1] != 12:
            raise ValueError(f"{self.name}: inconsistent levels")
        put(self, "levels", levels)
        put(self, "entry_shift", self.entry_size.bit_length() - 1)
        put(self, "table_shift", PAGE_SHIFT - self.entry_shift)
        if any(w > self.table_shift for w in self.widths):
            raise ValueError(f"{self.name}: a table does not fit in a frame")
        put(self, "masks", tuple((1 << w) - 1 for w in self.widths))
        put(self, "leaf_mask", self.masks[-1])
        put(self, "area_shift", self.shifts[-2] if levels > 1 else PAGE_SHIFT)
        top_bit = self.shifts[0] + self.widths[0]          # address bits the walk translates (48 or 32)
        put(self, "area_bits", top_bit - self.area_shift)
        put(self, "area_mask", (1 << self.area_bits) - 1)
        put(self, "kernel_index", (self.kernel_base >> self.shifts[0]) & self.masks[0])
        put(self, "entry_mask", (1 << (8 * self.entry_size)) - 1)

    def __repr__(self) -> str:
        return f"<PagingFormat {self.name}>"

    def index(self, vaddr: int, level: int) -> int:
        """The index into the level-`level` table (0 = the root) for vaddr."""
        return (vaddr >> self.shifts[level]) & self.masks[level]

    def indexes(self, vaddr: int) -> tuple[int, ...]:
        """Every level's index for vaddr, root first."""
        return tuple((vaddr >> s) & m for s, m in zip(self.shifts, self.masks))

    def span(self, level: int) -> int:
        """Bytes of address space one entry of a level-`level` table maps."""
        return 1 << self.shifts[level]

    def canonical(self, vaddr: int) -> bool:
        """Whether vaddr is an address of this format (canonical for x86-64; below 2**32 for i386)."""
        if self.canonical_bits:
            top = vaddr >> (self.canonical_bits - 1)
            return top == 0 or top == (1 << (self.address_bits - self.canonical_bits + 1)) - 1
        return 0 <= vaddr < 1 << self.address_bits

    def is_kernel(self, vaddr: int) -> bool:
        """Whether vaddr lies in the kernel half (supervisor-only in every address space)."""
        return vaddr >= self.kernel_base

    def sign_extend(self, vaddr: int) -> int:
        """The canonical form of a (truncated) address: what a dump prints for the kernel half."""
        if self.canonical_bits and vaddr >> (self.canonical_bits - 1) & 1:
            return vaddr | (((1 << self.address_bits) - 1) ^ ((1 << self.canonical_bits) - 1))
        return vaddr


X86_64 = PagingFormat("x86-64", shifts=(39, 30, 21, 12), widths=(9, 9, 9, 9), entry_size=8,
                      frame_mask=0x000F_FFFF_FFFF_F000, nx=1 << 63, address_bits=64, canonical_bits=48,
                      user_top=0x0000_8000_0000_0000, kernel_base=0xFFFF_8000_0000_0000,
                      level_names=("PML4", "PDPT", "PD", "PT"))
I386 = PagingFormat("i386", shifts=(22, 12), widths=(10, 10), entry_size=4, frame_mask=0xFFFF_F000, nx=0,
                    address_bits=32, canonical_bits=0, user_top=0xC000_0000, kernel_base=0xC000_0000,
                    level_names=("PD", "PT"))
I386_PAE = PagingFormat("i386-pae", shifts=(30, 21, 12), widths=(2, 9, 9), entry_size=8,
                        frame_mask=0x000F_FFFF_FFFF_F000, nx=1 << 63, address_bits=32, canonical_bits=0,
                        user_top=0xC000_0000, kernel_base=0xC000_0000, level_names=("PDPT", "PD", "PT"),
                        pdpte_root=True)
FORMATS = (X86_64, I386, I386_PAE)

_entry_views: "weakref.WeakKeyDictionary[PhysicalMemory, memoryview]" = weakref.WeakKeyDictionary()


def entry_words(ram: PhysicalMemory, fmt: PagingFormat = None) -> memoryview:
    """RAM as an array of `fmt`'s entries: ram.words (8-byte) or one shared 4-byte view (ram.view.cast('I'))."""
    if fmt is None or fmt.entry_size == 8:
        return ram.words
    view = _entry_views.get(ram)
    if view is None:
        view = _entry_views[ram] = ram.view.cast("I")
    return view


def pte_frame(pte: int) -> int:
    """The frame number an entry points at."""
    return (pte & PTE_FRAME) >> PAGE_SHIFT


def make_pte(pfn: int, flags: int) -> int:
    """An entry pointing at frame `pfn` with `flags`."""
    return (pfn << PAGE_SHIFT) | flags


def describe_pte(pte: int) -> str:
    """Decoded bits of an entry, e.g. 'P W U A D NX'."""
    return " ".join(name for bit, name in _BIT_NAMES if pte & bit) or "-"


def canonical(vaddr: int) -> bool:
    """Whether a 64-bit address is canonical (bits 63..47 all equal)."""
    top = vaddr >> 47
    return top == 0 or top == 0x1FFFF


def table_index(vaddr: int, level: int) -> int:
    """The index into the level-`level` table (0 = PML4) for vaddr."""
    return (vaddr >> (39 - 9 * level)) & 0x1FF


class PageTable:
    """One address space's page-table tree rooted at the top-level table (PML4, or PD/PDPT for i386) in frame `root`.

    `fmt` is the paging format (X86_64 by default). `words` is RAM as an array of this
    format's entries, and slots index it. slot, map and set keep their x86-64 bodies (the
    hot path of every fault); for another format the generic `_slot_fmt`, `_map_fmt` and
    `_set_fmt` are bound to the instance instead, so x86-64 pays nothing for them. lookup
    and unmap go through slot; leaves, tables, free_user_tables and dump read the geometry
    from the format once per table visited.
    """

    def __init__(self, ram: PhysicalMemory, root: int | None = None, kernel_root: int | None = None,
                 fmt: PagingFormat = X86_64):
        self.ram = ram
        self.fmt = fmt
        self.words = entry_words(ram, fmt)
        if fmt is not X86_64:
            self.slot = self._slot_fmt
            self.map = self._map_fmt
            self.set = self._set_fmt
        if root is None:
            root = ram.alloc(Owner.PAGE_TABLE)
            if kernel_root is not None:
                # Share the kernel half: the same next-level tables (x86-64: PDPTs; i386: PTs) under every root.
                t = fmt.table_shift
                k = kernel_root << t
                r = root << t
                lo, hi = fmt.kernel_index, fmt.masks[0] + 1
                self.words[r + lo:r + hi] = self.words[k + lo:k + hi]
        self.root = root
        self.table_pages = 1
        # User area (vaddr >> fmt.area_shift: 2 MiB, 4 MiB for i386) -> word index of its leaf table. Tables
        # are only added until free_user_tables, so a leaf table once found stays where it is.
        self._leaf_rows: dict[int, int] = {}

    def slot(self, vaddr: int, alloc: bool = False) -> int:
        """Word index of the leaf entry for vaddr, allocating missing tables when `alloc`; -1 if absent."""
        row = self._leaf_rows.get(vaddr >> 21)
        if row is not None:
            return row | ((vaddr >> 12) & 0x1FF)
        words = self.words
        table = self.root
        flags = TABLE_FLAGS_USER if vaddr < KERNEL_HALF else TABLE_FLAGS_KERNEL
        for shift in (39, 30, 21):
            i = (table << 9) | ((vaddr >> shift) & 0x1FF)
            e = words[i]
            if not e & PTE_PRESENT:
                if not alloc:
                    return -1
                new = self.ram.alloc(Owner.PAGE_TABLE)
                self.table_pages += 1
                words[i] = (new << PAGE_SHIFT) | flags
                table = new
            else:
                table = (e & PTE_FRAME) >> PAGE_SHIFT
        if vaddr < KERNEL_HALF:
            self._leaf_rows[vaddr >> 21] = table << 9
        return (table << 9) | ((vaddr >> 12) & 0x1FF)

    def _slot_fmt(self, vaddr: int, alloc: bool = False) -> int:
        """slot() for any format (bound to the instance when the format is not X86_64)."""
        fmt = self.fmt
        row = self._leaf_rows.get(vaddr >> fmt.area_shift)
        if row is not None:
            return row | ((vaddr >> PAGE_SHIFT) & fmt.leaf_mask)
        if not fmt.canonical(vaddr):
            raise ValueError(f"{vaddr:#x} is not a {fmt.name} address")
        words = self.words
        table = self.root
        tshift = fmt.table_shift
        user = vaddr < fmt.kernel_base
        flags = TABLE_FLAGS_USER if user else TABLE_FLAGS_KERNEL
        for level in range(fmt.levels - 1):
            i = (table << tshift) | ((vaddr >> fmt.shifts[level]) & fmt.masks[level])
            e = words[i]
            if not e & PTE_PRESENT:
                if not alloc:
                    return -1
                new = self.ram.alloc(Owner.PAGE_TABLE)
                self.table_pages += 1
                # A PAE PDPTE holds only P: W and U are reserved bits there.
                words[i] = (new << PAGE_SHIFT) | (PTE_PRESENT if level == 0 and fmt.pdpte_root else flags)
                table = new
            else:
                table = (e & fmt.frame_mask) >> PAGE_SHIFT
        if user:
            self._leaf_rows[vaddr >> fmt.area_shift] = table << tshift
        return (table << tshift) | ((vaddr >> PAGE_SHIFT) & fmt.leaf_mask)

    def _entry_fmt(self, pte: int) -> int:
        """pte as this format stores it: NX dropped where the format has none (as Linux's _PAGE_NX is 0 on
        non-PAE i386); ValueError for a frame the entry cannot hold."""
        fmt = self.fmt
        if not fmt.nx:
            pte &= ~PTE_NX
        if pte & ~fmt.entry_mask or pte < 0:
            raise ValueError(f"entry {pte:#x} does not fit a {fmt.entry_size}-byte {fmt.name} entry")
        return pte

    def _map_fmt(self, vaddr: int, pfn: int, flags: int) -> None:
        """map() for any format."""
        self.words[self._slot_fmt(vaddr, alloc=True)] = self._entry_fmt((pfn << PAGE_SHIFT) | flags)

    def _set_fmt(self, vaddr: int, pte: int) -> None:
        """set() for any format."""
        self.words[self._slot_fmt(vaddr, alloc=True)] = self._entry_fmt(pte)

    def map_range(self, vaddr: int, pfn: int, npages: int, flags: int) -> None:
        """Map npages consecutive frames from pfn at vaddr, a leaf table at a time (a kernel direct map)."""
        fmt = self.fmt
        entry_code = "Q" if fmt.entry_size == 8 else "I"
        while npages > 0:
            slot = self.slot(vaddr, alloc=True)
            n = min(npages, fmt.leaf_mask + 1 - (slot & fmt.leaf_mask))
            first = (pfn << PAGE_SHIFT) | flags
            if not fmt.nx:
                first &= ~PTE_NX
            self.words[slot:slot + n] = array.array(entry_code, range(first, first + (n << PAGE_SHIFT), PAGE_SIZE))
            vaddr += n << PAGE_SHIFT
            pfn += n
            npages -= n

    def lookup(self, vaddr: int) -> int:
        """The leaf entry for vaddr, or 0."""
        i = self.slot(vaddr)
        return self.words[i] if i >= 0 else 0

    def map(self, vaddr: int, pfn: int, flags: int) -> None:
        """Install a leaf entry for the page at vaddr."""
        self.words[self.slot(vaddr, alloc=True)] = (pfn << PAGE_SHIFT) | flags

    def set(self, vaddr: int, pte: int) -> None:
        """Overwrite the leaf entry for vaddr (the tables must exist)."""
        self.words[self.slot(vaddr, alloc=True)] = pte

    def unmap(self, vaddr: int) -> int:
        """Clear the leaf entry for vaddr and return what it held (0 if nothing)."""
        i = self.slot(vaddr)
        if i < 0:
            return 0
        old = self.words[i]
        self.words[i] = 0
        return old

    def leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
        """Present leaf entries in [start, end) as (vaddr, word index, entry), in address order; `end` defaults to the top of user space."""
        words = self.words
        for va, i, n in self.leaf_runs(start, end):
            for e in words[i:i + n].tolist():
                if e & PTE_PRESENT:
                    yield va, i, e
                va += PAGE_SIZE
                i += 1

    def leaf_runs(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
        """The leaf slots for [start, end), present or not, as one run per existing leaf table, in address order:
        (vaddr of the run's first page, word index of its first entry, entry count). For bulk reads and writes."""
        fmt = self.fmt
        if end is None:
            end = fmt.user_top
        entries = fmt.leaf_mask + 1
        for base, row in self._leaf_tables(start, end):
            first = (start - base) >> PAGE_SHIFT if start > base else 0
            last = min(entries, (end - base + PAGE_SIZE - 1) >> PAGE_SHIFT)
            yield base + (first << PAGE_SHIFT), row + first, last - first

    def _leaf_tables(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """The present leaf tables mapping some of [start, end), in address order: (vaddr they begin at, word
        index of their first entry). A leaf table maps 1 << fmt.area_shift bytes (2 MiB; 4 MiB for i386)."""
        words = self.words
        fmt = self.fmt
        shifts, masks, tshift, last = fmt.shifts, fmt.masks, fmt.table_shift, fmt.levels - 1
        frame = fmt.frame_mask

        def visit(table: int, level: int, base: int):
            span = 1 << shifts[level]
            first = (start - base) // span if start > base else 0
            stop = min(masks[level] + 1, (end - base + span - 1) // span)     # the entries below `end`
            row = table << tshift
            for idx, e in enumerate(words[row + first:row + stop].tolist(), first):
                if e & PTE_PRESENT:
                    child = (e & frame) >> PAGE_SHIFT
                    if level + 1 == last:
                        yield base + idx * span, child << tshift
                    else:
                        yield from visit(child, level + 1, base + idx * span)

        yield from visit(self.root, 0, 0)

    def tables(self, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
        """Every table below the root in the user half (below `end`), as (level, vaddr base, frame, parent word index), leaves first."""
        words = self.words
        fmt = self.fmt
        if end is None:
            end = fmt.user_top
        shifts, tshift, last = fmt.shifts, fmt.table_shift, fmt.levels - 1
        frame = fmt.frame_mask

        def visit(table: int, level: int, base: int):
            span = 1 << shifts[level]
            row = table << tshift
            for idx in range(fmt.masks[level] + 1):
                va = base + idx * span
                if va >= end:
                    return
                i = row | idx
                e = words[i]
                if e & PTE_PRESENT:
                    child = (e & frame) >> PAGE_SHIFT
                    if level + 1 < last:
                        yield from visit(child, level + 1, va)
                    yield level + 1, va, child, i

        yield from visit(self.root, 0, 0)

    def free_user_tables(self) -> None:
        """Release every user-half table frame and the root (leaf frames are the caller's business)."""
        self._leaf_rows.clear()
        for _level, _va, frame, parent in list(self.tables()):
            self.words[parent] = 0
            self.ram.put(frame)
        self.ram.put(self.root)
        self.table_pages = 0

    def dump(self, user_only: bool = True) -> list[str]:
        """The tree in xv6 vmprint style: one line per present entry, indented by level, named by the format's levels."""
        words = self.words
        fmt = self.fmt
        names, shifts, tshift, last = fmt.level_names, fmt.shifts, fmt.table_shift, fmt.levels - 1
        digits = 2 + 2 * fmt.entry_size            # '0x' and two hex digits a byte
        lines = [f"page table {self.root << PAGE_SHIFT:#x}"]

        def visit(table: int, level: int, base: int):
            span = 1 << shifts[level]
            for idx in range(fmt.masks[level] + 1):
                va = base + idx * span
                if level == 0 and idx >= fmt.kernel_index:
                    va = fmt.sign_extend(va)
                    if user_only:
                        return
                e = words[(table << tshift) | idx]
                if not e & PTE_PRESENT:
                    continue
                frame = pte_frame(e)
                lines.append(f"{' ..' * (level + 1)}{names[level]}[{idx}] va {va:#x} pte {e:#0{digits}x} "
                             f"[{describe_pte(e)}] frame {frame:#x}")
                if level < last:
                    visit(frame, level + 1, va)

        visit(self.root, 0, 0)
        return lines
