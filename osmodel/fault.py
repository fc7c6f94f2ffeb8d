"""The page-fault handler: every fault the MMU raises comes to FaultHandler.resolve.

The dispatch follows Linux's mm/memory.c: a fault outside every region may be stack
growth; a fault the region forbids is a SIGSEGV; a not-present page is filled by
do_anonymous_page (zero-fill) or do_file_page (read from the backing file); a write to a
present read-only page of a writable region is do_wp_page (copy-on-write: copy, or reuse
when this is the last mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from osmodel.addrspace import PROT_EXEC, PROT_READ, PROT_WRITE, STACK_GUARD_GAP, AddressSpace, Region, page_down
from osmodel.pagecache import PageCache
from vm.mmu import ACCESS_WRITE, PF_PRESENT, PageFault
from vm.pagetable import PTE_FRAME, PTE_NX, PTE_PRESENT, PTE_USER, PTE_WRITABLE
from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, OutOfMemory, PhysicalMemory

SEGV_MAPERR = 1
SEGV_ACCERR = 2

# What the handler did, as the fault trace names it.
DEMAND_ZERO = "demand-zero"
ZERO_PAGE = "zero-page"
FILE_LOAD = "file-load"
STACK_GROW = "stack-grow"
COW_COPY = "cow-copy"
COW_REUSE = "cow-reuse"
SEGV = "segv"
OOM = "oom"
# For each access (read, write, fetch): the protection bits any one of which allows it (x86 cannot
# express write-only or exec-only pages, so any protection but PROT_NONE lets a read through).
_ALLOWING_PROT = (PROT_READ | PROT_WRITE | PROT_EXEC, PROT_WRITE, PROT_EXEC)
_PAGE_MASK = ~(PAGE_SIZE - 1)
_ANON, _STACK, _FILE = int(Owner.ANON), int(Owner.STACK), int(Owner.FILE)
OUTCOMES = (DEMAND_ZERO, ZERO_PAGE, FILE_LOAD, STACK_GROW, COW_COPY, COW_REUSE, SEGV, OOM)


class Segv(Exception):
    """The access is not allowed: the process gets SIGSEGV. str() says why; `code` is SEGV_MAPERR/ACCERR."""

    def __init__(self, reason: str, code: int, region: Region | None = None):
        super().__init__(reason)
        self.code = code
        self.region = region


@dataclass(slots=True)
class Resolution:
    """What resolve did: the outcome, the region, the frame now mapped (0 for none), whether the file
    had to be read (a major fault), and how many neighbouring pages fault-around mapped with it."""
    outcome: str
    region: Region | None
    pfn: int = 0
    major: bool = False
    around: int = 0


class FaultHandler:
    """Resolves page faults for address spaces over one physical memory."""

    def __init__(self, ram: PhysicalMemory, invalidate: Callable[[AddressSpace, int, str], None],
                 cache: PageCache, fault_around: int = 0):
        self.ram = ram
        self.invalidate = invalidate          # drop a page of an address space from the TLBs
        self.cache = cache
        self.fault_around_pages = fault_around  # 0: off; else the aligned window mapped on a read fault
        self.zero_pfn = ram.alloc(Owner.ZERO)
        self.zero_pfn_refs = 0

    def resolve(self, aspace: AddressSpace, fault: PageFault) -> Resolution:
        """Fix aspace's page table so the faulting access can be retried, or raise Segv / OutOfMemory."""
        vaddr = fault.vaddr
        if fault.noncanonical:
            raise Segv("non-canonical address", SEGV_MAPERR)
        if vaddr >= aspace.user_top:
            raise Segv("kernel", SEGV_ACCERR if fault.error_code & PF_PRESENT else SEGV_MAPERR)
        region = aspace.find(vaddr)
        grew = region is None
        if grew:
            region = self.grow_stack(aspace, vaddr)
        access = fault.access
        if not region.prot & _ALLOWING_PROT[access]:
            raise Segv(region.kind, SEGV_ACCERR, region)
        if fault.error_code & PF_PRESENT:
            return self.do_wp_page(aspace, region, vaddr, access)
        page = vaddr & _PAGE_MASK
        if region.backing is not None and page < region.file_end and page + PAGE_SIZE > region.file_start:
            return self.do_file_page(aspace, region, page, access)
        res = self.do_anonymous_page(aspace, region, page, access)
        if grew:
            res.outcome = STACK_GROW
        return res

    def grow_stack(self, aspace: AddressSpace, vaddr: int) -> Region:
        """Extend the stack region above vaddr down to cover it, within the limit and guard gap; or raise Segv."""
        stack = aspace.next_region(vaddr)
        if stack is None or stack.kind != "stack":
            raise Segv("none", SEGV_MAPERR)
        start = page_down(vaddr)
        if stack.end - start > aspace.stack_limit:
            raise Segv(f"none: below the stack, past its limit of {aspace.stack_limit >> 20} MiB", SEGV_MAPERR)
        below = aspace.prev_region(start)
        if below is not None and below.end + STACK_GUARD_GAP > start:
            raise Segv(f"none: stack growth into the guard gap above {below.kind}", SEGV_MAPERR)
        aspace.resize(stack, start, stack.end)
        return stack

    def do_anonymous_page(self, aspace: AddressSpace, region: Region, page: int, access: int) -> Resolution:
        """A first touch of a zero-filled page: the shared zero frame for a read, a new zeroed frame otherwise."""
        if access != ACCESS_WRITE and not region.prot & PROT_EXEC and not region.shared:
            self.ram.get(self.zero_pfn)
            aspace.map_page(page, self.zero_pfn, PTE_PRESENT | PTE_USER | PTE_NX)
            return Resolution(ZERO_PAGE, region, self.zero_pfn)
        pfn = self.ram.alloc(_STACK if region.kind == "stack" else _ANON)
        aspace.map_page(page, pfn, region.pte_flags())
        return Resolution(DEMAND_ZERO, region, pfn)

    def do_file_page(self, aspace: AddressSpace, region: Region, page: int, access: int) -> Resolution:
        """A first touch of a file-backed page: the page cache's frame, mapped read-only in a private
        mapping (a write copies it at once, as Linux's do_cow_fault); a page the file only partly
        covers (the one where bss begins) gets a private frame with the file's bytes and zeros."""
        offset, count, at = region.file_bytes(page)
        if count < PAGE_SIZE or offset % PAGE_SIZE:
            pfn = self.ram.alloc(Owner.FILE)
            if count:
                data = region.backing.read(offset, count)
                base = (pfn << PAGE_SHIFT) + at
                self.ram.view[base:base + len(data)] = data
            aspace.map_page(page, pfn, region.pte_flags())
            return Resolution(FILE_LOAD, region, pfn, major=True)
        cached, read = self.cache.get(region.backing, offset >> PAGE_SHIFT)
        if access == ACCESS_WRITE and not region.shared:
            pfn = self.ram.alloc(Owner.ANON, zero=False)
            self.ram.copy_frame(pfn, cached)
            aspace.map_page(page, pfn, region.pte_flags())
            return Resolution(FILE_LOAD, region, pfn, major=read)
        self.map_cached(aspace, region, page, cached)
        around = self.fault_around(aspace, region, page) if self.fault_around_pages > 1 else 0
        return Resolution(FILE_LOAD, region, cached, major=read and not region.backing.shmem, around=around)

    def map_cached(self, aspace: AddressSpace, region: Region, page: int, pfn: int) -> None:
        """Map a page-cache frame: writable only in a shared mapping; recorded in its reverse map."""
        flags = region.pte_flags()
        if not region.shared:
            flags &= ~PTE_WRITABLE
        self.ram.get(pfn)
        aspace.map_page(page, pfn, flags)
        self.cache.add_mapping(pfn, aspace, page)

    def fault_around(self, aspace: AddressSpace, region: Region, page: int) -> int:
        """Map the other pages of the aligned fault-around window that the file covers (read ahead into
        the cache as needed) and that are not mapped yet; how many were mapped."""
        span = self.fault_around_pages * PAGE_SIZE
        start = max(region.start, page & ~(span - 1))
        end = min(region.end, (page & ~(span - 1)) + span)
        mapped = 0
        for va in range(start, end, PAGE_SIZE):
            if va == page or aspace.pagetable.lookup(va) & PTE_PRESENT:
                continue
            offset, count, _ = region.file_bytes(va)
            if count < PAGE_SIZE or offset % PAGE_SIZE or offset >= region.backing.size():
                continue
            pfn, _ = self.cache.get(region.backing, offset >> PAGE_SHIFT)
            self.map_cached(aspace, region, va, pfn)
            mapped += 1
        return mapped

    def do_wp_page(self, aspace: AddressSpace, region: Region, vaddr: int, access: int) -> Resolution:
        """A write to a present read-only page of a writable region: reuse it if ours alone, else copy it."""
        page = vaddr & _PAGE_MASK
        pt = aspace.pagetable
        slot = pt.slot(page)
        words = pt.words
        pte = words[slot]
        old = (pte & PTE_FRAME) >> PAGE_SHIFT
        if access != ACCESS_WRITE:
            # The region allows the access but the entry did not (e.g. a fetch after mprotect): refresh it.
            words[slot] = (pte & ~PTE_NX) if region.prot & PROT_EXEC else pte
            self.invalidate(aspace, page, "mprotect")
            return Resolution(COW_REUSE, region, old)
        ram = self.ram
        if old == self.zero_pfn:
            pfn = ram.alloc(_STACK if region.kind == "stack" else _ANON)
            ram.put(old)
            outcome = DEMAND_ZERO
        elif ram.refcount[old] == 1:
            pfn = old
            outcome = COW_REUSE
        else:
            owner = ram.owner[old]
            cached = owner == _FILE and self.cache.is_cached(old)      # page-cache frames are FILE frames
            pfn = ram.alloc(_ANON if cached else owner, zero=False)
            ram.copy_frame(pfn, old)
            if cached:
                self.cache.remove_mapping(old, aspace, page)
            ram.put(old)
            outcome = COW_COPY
        words[slot] = ((pfn << PAGE_SHIFT) | region.pte_flags() | (pte & 0x60)) & pt.fmt.entry_mask  # keep A/D; no NX bit in i386 entries
        self.invalidate(aspace, page, "copy-on-write")
        return Resolution(outcome, region, pfn)


__all__ = ["FaultHandler", "Resolution", "Segv", "OutOfMemory", "OUTCOMES", "SEGV_MAPERR", "SEGV_ACCERR"]
