"""The MMU: a hardware page walk that turns a virtual address into a physical one or a page fault.

The walk follows x86-64 rules: non-canonical addresses fault (as #GP), every level must
be present, the effective permission is the AND of W and U over the levels and the OR of
NX, CR0.WP is set (supervisor writes honour W), and the walk sets the accessed bit at
every level and the dirty bit on the leaf for a write.

The same rules walk the other paging formats of vm.pagetable (`fmt=I386`: two levels of
4-byte entries, no NX, no canonical check; `fmt=I386_PAE`: three levels, whose PDPTEs carry
no permission and get no accessed bit). `walk` keeps a dedicated path for X86_64, the
format every walk used before the others existed, and hands any other to `walk_fmt`.
"""

from __future__ import annotations

from vm.pagetable import (PTE_ACCESSED, PTE_DIRTY, PTE_FRAME, PTE_NX, PTE_PRESENT,
                          PTE_USER, PTE_WRITABLE, X86_64, PagingFormat, entry_words)
from vm.ram import PhysicalMemory

ACCESS_READ = 0
ACCESS_WRITE = 1
ACCESS_FETCH = 2
ACCESS_NAMES = ("read", "write", "fetch")

# The x86 page-fault error code.
PF_PRESENT = 1 << 0   # 0: page not present; 1: protection violation
PF_WRITE = 1 << 1     # the access was a write
PF_USER = 1 << 2      # the access came from user mode (CPL 3)
PF_RSVD = 1 << 3      # a reserved bit was set in an entry
PF_INSTR = 1 << 4     # the access was an instruction fetch

_UPPER_LEVELS = ((1, 39), (2, 30), (3, 21))
_WRITE_BITS = PTE_ACCESSED | PTE_DIRTY
_PD_SPAN_MASK = (1 << 27) - 1          # bits 47..21 of an address: which 2 MiB area
_ACCESS_CODE = (0, PF_WRITE, PF_INSTR)
_KEEP = ~(PTE_WRITABLE | PTE_USER | PTE_NX)
# By access (read, write, fetch) and privilege (supervisor, user): the W/U bits the walk must allow; the A/D bits it sets.
_NEED = ((0, PTE_USER), (PTE_WRITABLE, PTE_WRITABLE | PTE_USER), (0, PTE_USER))
_WANT = (PTE_ACCESSED, _WRITE_BITS, PTE_ACCESSED)
_ERROR_CODE = tuple((_ACCESS_CODE[access], _ACCESS_CODE[access] | PF_USER) for access in range(3))   # not-present faults
NO_TRANSLATION = (-1, 0)               # what walk(..., raise_fault=False) returns for a fault


def describe_error_code(code: int) -> str:
    """The error code in words, e.g. 'user write, present (protection)'."""
    who = "user" if code & PF_USER else "supervisor"
    what = "fetch" if code & PF_INSTR else ("write" if code & PF_WRITE else "read")
    why = "present" if code & PF_PRESENT else "not present"
    return f"{who} {what}, {why}"


class PageFault(Exception):
    """A failed translation: the address, the x86 error code, the access, whether it was a #GP, levels read."""

    __slots__ = ("vaddr", "error_code", "access", "noncanonical", "levels")   # one is built per fault

    def __init__(self, vaddr: int, error_code: int, access: int, noncanonical: bool = False, levels: int = 0):
        self.vaddr = vaddr
        self.error_code = error_code
        self.access = access
        self.noncanonical = noncanonical
        self.levels = levels

    def __str__(self) -> str:
        if self.noncanonical:
            return f"general protection fault: non-canonical address {self.vaddr:#x}"
        return f"page fault at {self.vaddr:#x}: {describe_error_code(self.error_code)}"


class Mmu:
    """Walks page tables in a PhysicalMemory and counts the walks and the tables read.

    `fmt` is the format walked when a walk names none (X86_64 unless given); a walk may name
    its own (`walk(..., fmt=I386)`), so one Mmu serves address spaces of several formats.
    """

    def __init__(self, ram: PhysicalMemory, fmt: PagingFormat = X86_64):
        self.ram = ram
        self.words = ram.words
        self.fmt = fmt
        self.walks = 0
        self._upper_reads = 0       # entries read above the leaf level
        self._short_walks = 0       # walks that ended before reading a leaf entry
        # Paging-structure cache: (root, 2 MiB area of the 48-bit space) -> (PT word base, W|U allowed above, NX above).
        # Upper-level entries only change when a whole tree is freed (see forget).
        self.pde_cache: dict[int, tuple[int, int, int]] = {}
        # The same for every other format, one dict per format (keyed (root, area) as above, area by the format's
        # leaf-table span): a frame freed as one format's root and reused as another's never meets its old entries.
        self.format_caches: dict[PagingFormat, dict[int, tuple[int, int, int]]] = {}
        self._format_words: dict[PagingFormat, memoryview] = {}   # RAM as each format's entries
        self.fault: PageFault | None = None     # the last fault of a walk(..., raise_fault=False)
        if fmt is not X86_64:
            self.walk = self._walk_default

    @property
    def levels_read(self) -> int:
        """Page-table entries read by all walks: one leaf per walk that reached it, plus the upper levels read."""
        return self.walks - self._short_walks + self._upper_reads

    def _walk_default(self, root: int, vaddr: int, access: int, user: bool, fmt: PagingFormat | None = None,
                      raise_fault: bool = True):
        """walk() of an Mmu whose default format is not X86_64 (bound to the instance)."""
        return self.walk_fmt(root, vaddr, access, user, fmt or self.fmt, raise_fault)

    def walk(self, root: int, vaddr: int, access: int, user: bool, fmt: PagingFormat | None = None,
             raise_fault: bool = True) -> tuple[int, int]:
        """Translate vaddr under the top-level table in frame `root`: (leaf word index, leaf entry) or raise PageFault.

        The entry handed back carries the walk's effective permission: W and U only if every
        level grants them, NX if any level sets it. A hit in the paging-structure cache skips
        the upper levels, as on real cores. The tables are in format `fmt` (None: the Mmu's,
        X86_64 by default); the word index is into that format's view of RAM (`entry_words`).
        With raise_fault=False a fault is not raised but left in `self.fault`, and the walk
        returns NO_TRANSLATION, (-1, 0): the CPU's fill path handles faults without unwinding.
        """
        if fmt is not X86_64 and fmt is not None:
            return self.walk_fmt(root, vaddr, access, user, fmt, raise_fault)
        self.walks += 1
        top = vaddr >> 47
        if top and top != 0x1FFFF:
            self._short_walks += 1
            return self._failed(self._fault(vaddr, access, user, 0, 0, noncanonical=True), raise_fault)
        key = (root << 27) | ((vaddr >> 21) & _PD_SPAN_MASK)
        cached = self.pde_cache.get(key)
        if cached is None:
            try:
                cached = self._walk_upper(root, vaddr, access, user, key)
            except PageFault as fault:
                self._short_walks += 1
                return self._failed(fault, raise_fault)
        base, allow, nx = cached
        i = base | ((vaddr >> 12) & 0x1FF)
        words = self.words
        e = words[i]                             # a leaf read: counted in levels_read
        if not e & PTE_PRESENT:
            return self._failed(PageFault(vaddr, _ERROR_CODE[access][user], access, False, 4), raise_fault)
        allow &= e
        nx |= e & PTE_NX
        need = _NEED[access][user]
        if allow & need != need or (nx and access == ACCESS_FETCH):
            return self._failed(PageFault(vaddr, _ERROR_CODE[access][user] | PF_PRESENT, access, False, 4), raise_fault)
        want = _WANT[access]
        if e & want != want:
            e |= want
            words[i] = e
        return i, (e & _KEEP) | allow | nx

    def _failed(self, fault: PageFault, raise_fault: bool) -> tuple[int, int]:
        """A walk's fault: raised, or kept in `self.fault` with NO_TRANSLATION returned."""
        if raise_fault:
            raise fault
        self.fault = fault
        return NO_TRANSLATION

    def _walk_upper(self, root: int, vaddr: int, access: int, user: bool, key: int) -> tuple[int, int, int]:
        """Walk PML4, PDPT and PD for vaddr, setting accessed bits; cache and return (PT word base, W|U allowed, NX)."""
        words = self.words
        base = root << 9
        allow = PTE_WRITABLE | PTE_USER
        nx = 0
        for level, shift in _UPPER_LEVELS:
            i = base | ((vaddr >> shift) & 0x1FF)
            e = words[i]
            self._upper_reads += 1
            if not e & PTE_PRESENT:
                raise self._fault(vaddr, access, user, 0, level)
            if not e & PTE_ACCESSED:
                e |= PTE_ACCESSED
                words[i] = e
            allow &= e
            nx |= e & PTE_NX
            base = (e & PTE_FRAME) >> 3          # the next table's first word index
        cached = (base, allow, nx)
        self.pde_cache[key] = cached
        return cached

    def walk_fmt(self, root: int, vaddr: int, access: int, user: bool, fmt: PagingFormat = X86_64,
                 raise_fault: bool = True) -> tuple[int, int]:
        """walk() for any format: the same rules, with the format's levels, entry size, NX and address checks.

        For X86_64 it gives what walk() gives (the tests check it), through its own cache.
        An address the format cannot express (above 4 GiB for i386) is a ValueError: no CPU in
        that mode produces one. raise_fault as for walk().
        """
        self.walks += 1
        if fmt.canonical_bits:
            if not fmt.canonical(vaddr):
                self._short_walks += 1
                return self._failed(self._fault(vaddr, access, user, 0, 0, noncanonical=True), raise_fault)
        elif vaddr >> fmt.address_bits or vaddr < 0:
            self._short_walks += 1
            raise ValueError(f"{vaddr:#x} is not a {fmt.name} address")
        cache = self.format_caches.get(fmt)
        if cache is None:
            cache = self.format_caches[fmt] = {}
            self._format_words[fmt] = entry_words(self.ram, fmt)
        words = self._format_words[fmt]
        key = (root << fmt.area_bits) | ((vaddr >> fmt.area_shift) & fmt.area_mask)
        cached = cache.get(key)
        if cached is None:
            try:
                cached = self._walk_upper_fmt(words, root, vaddr, access, user, fmt)
            except PageFault as fault:
                self._short_walks += 1
                return self._failed(fault, raise_fault)
            cache[key] = cached
        base, allow, nx = cached
        i = base | ((vaddr >> 12) & fmt.leaf_mask)
        e = words[i]                             # a leaf read: counted in levels_read
        if not e & PTE_PRESENT:
            return self._failed(self._fault(vaddr, access, user, 0, fmt.levels), raise_fault)
        allow &= e
        nx |= e & fmt.nx
        if (user and not allow & PTE_USER) or (access == ACCESS_WRITE and not allow & PTE_WRITABLE) \
                or (access == ACCESS_FETCH and nx):
            return self._failed(self._fault(vaddr, access, user, PF_PRESENT, fmt.levels), raise_fault)
        want = _WRITE_BITS if access == ACCESS_WRITE else PTE_ACCESSED
        if e & want != want:
            e |= want
            words[i] = e
        return i, (e & _KEEP) | allow | nx

    def _walk_upper_fmt(self, words, root: int, vaddr: int, access: int, user: bool,
                        fmt: PagingFormat) -> tuple[int, int, int]:
        """Walk every level above the leaf table, setting accessed bits: (leaf table word base, W|U allowed, NX)."""
        base = root << fmt.table_shift
        allow = PTE_WRITABLE | PTE_USER
        nx = 0
        for level in range(fmt.levels - 1):
            i = base | ((vaddr >> fmt.shifts[level]) & fmt.masks[level])
            e = words[i]
            self._upper_reads += 1
            if not e & PTE_PRESENT:
                raise self._fault(vaddr, access, user, 0, level + 1)
            if not (level == 0 and fmt.pdpte_root):   # a PAE PDPTE: P only, no A, W, U or NX
                if not e & PTE_ACCESSED:
                    e |= PTE_ACCESSED
                    words[i] = e
                allow &= e
                nx |= e & fmt.nx
            base = (e & fmt.frame_mask) >> fmt.entry_shift      # the next table's first word index
        return base, allow, nx

    def forget(self, root: int) -> None:
        """Drop the paging-structure cache entries of the tree at `root` (its tables are being freed)."""
        for key in [k for k in self.pde_cache if k >> 27 == root]:
            del self.pde_cache[key]
        for fmt, cache in self.format_caches.items():
            for key in [k for k in cache if k >> fmt.area_bits == root]:
                del cache[key]

    @staticmethod
    def _fault(vaddr: int, access: int, user: bool, present: int, levels: int, noncanonical: bool = False) -> PageFault:
        """The PageFault for a failed walk, with its x86 error code."""
        return PageFault(vaddr, _ERROR_CODE[access][bool(user)] | present, access, noncanonical, levels)


def is_kernel_address(vaddr: int, fmt: PagingFormat = X86_64) -> bool:
    """Whether vaddr lies in the kernel half (of format `fmt`: 0xc0000000 and up for i386)."""
    return vaddr >= fmt.kernel_base
