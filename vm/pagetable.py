"""x86-64 four-level page tables, stored in frames of emulated RAM in the hardware format.

A virtual address splits 9/9/9/9/12: PML4, PDPT, PD and PT index, then the page
offset. Each table is one frame of 512 eight-byte entries with the bits below.
"""

from __future__ import annotations

from typing import Iterator

from vm.ram import PAGE_SHIFT, Owner, PhysicalMemory

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
    """One address space's page-table tree rooted at the PML4 in frame `root`."""

    def __init__(self, ram: PhysicalMemory, root: int | None = None, kernel_root: int | None = None):
        self.ram = ram
        self.words = ram.words
        if root is None:
            root = ram.alloc(Owner.PAGE_TABLE)
            if kernel_root is not None:
                # Share the kernel half: the same PDPT pages under every PML4.
                k = kernel_root << 9
                r = root << 9
                self.words[r + 256:r + 512] = self.words[k + 256:k + 512]
        self.root = root
        self.table_pages = 1
        self._last_area = -1       # 2 MiB area (vaddr >> 21) whose leaf table is _last_pt (word index)
        self._last_pt = 0

    def slot(self, vaddr: int, alloc: bool = False) -> int:
        """Word index of the leaf entry for vaddr, allocating missing tables when `alloc`; -1 if absent."""
        area = vaddr >> 21
        if area == self._last_area:
            return self._last_pt | ((vaddr >> 12) & 0x1FF)
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
            # Remember the last leaf table: faults come in runs within one 2 MiB area.
            self._last_area, self._last_pt = area, table << 9
        return (table << 9) | ((vaddr >> 12) & 0x1FF)

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

    def leaves(self, start: int = 0, end: int = USER_TOP) -> Iterator[tuple[int, int, int]]:
        """Present leaf entries in [start, end) as (vaddr, word index, entry), in address order."""
        words = self.words

        def visit(table: int, level: int, base: int):
            span = 1 << (39 - 9 * level)
            first = max(0, (start - base) // span) if start > base else 0
            for idx in range(first, ENTRIES):
                va = base + idx * span
                if va >= end:
                    return
                if va + span <= start:
                    continue
                e = words[(table << 9) | idx]
                if not e & PTE_PRESENT:
                    continue
                if level == LEVELS - 1:
                    yield va, (table << 9) | idx, e
                else:
                    yield from visit((e & PTE_FRAME) >> PAGE_SHIFT, level + 1, va)

        yield from visit(self.root, 0, 0)

    def tables(self, end: int = USER_TOP) -> Iterator[tuple[int, int, int, int]]:
        """Every table below the root in the user half, as (level, vaddr base, frame, parent word index), leaves first."""
        words = self.words

        def visit(table: int, level: int, base: int):
            span = 1 << (39 - 9 * level)
            for idx in range(ENTRIES):
                va = base + idx * span
                if va >= end:
                    return
                i = (table << 9) | idx
                e = words[i]
                if level < LEVELS - 1 and e & PTE_PRESENT:
                    child = (e & PTE_FRAME) >> PAGE_SHIFT
                    yield from visit(child, level + 1, va)
                    yield level + 1, va, child, i

        yield from visit(self.root, 0, 0)

    def free_user_tables(self) -> None:
        """Release every user-half table frame and the root (leaf frames are the caller's business)."""
        self._last_area = -1
        for _level, _va, frame, parent in list(self.tables()):
            self.words[parent] = 0
            self.ram.put(frame)
        self.ram.put(self.root)
        self.table_pages = 0

    def dump(self, user_only: bool = True) -> list[str]:
        """The tree in xv6 vmprint style: one line per present entry, indented by level."""
        words = self.words
        lines = [f"page table {self.root << PAGE_SHIFT:#x}"]

        def visit(table: int, level: int, base: int):
            span = 1 << (39 - 9 * level)
            for idx in range(ENTRIES):
                va = base + idx * span
                if level == 0 and idx >= 256:
                    va |= 0xFFFF_0000_0000_0000
                    if user_only:
                        return
                e = words[(table << 9) | idx]
                if not e & PTE_PRESENT:
                    continue
                frame = pte_frame(e)
                lines.append(f"{' ..' * (level + 1)}{LEVEL_NAMES[level]}[{idx}] va {va:#x} pte {e:#018x} "
                             f"[{describe_pte(e)}] frame {frame:#x}")
                if level < LEVELS - 1:
                    visit(frame, level + 1, va)

        visit(self.root, 0, 0)
        return lines
