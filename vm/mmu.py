"""The MMU: a hardware page walk that turns a virtual address into a physical one or a page fault.

The walk follows x86-64 rules: non-canonical addresses fault (as #GP), every level must
be present, the effective permission is the AND of W and U over the levels and the OR of
NX, CR0.WP is set (supervisor writes honour W), and the walk sets the accessed bit at
every level and the dirty bit on the leaf for a write.
"""

from __future__ import annotations

from dataclasses import dataclass

from vm.pagetable import (KERNEL_HALF, PTE_ACCESSED, PTE_DIRTY, PTE_FRAME, PTE_NX, PTE_PRESENT,
                          PTE_USER, PTE_WRITABLE)
from vm.ram import PAGE_SHIFT, PhysicalMemory

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

_WP_ACCESS = PTE_ACCESSED | PTE_DIRTY


def describe_error_code(code: int) -> str:
    """The error code in words, e.g. 'user write, present (protection)'."""
    who = "user" if code & PF_USER else "supervisor"
    what = "fetch" if code & PF_INSTR else ("write" if code & PF_WRITE else "read")
    why = "present" if code & PF_PRESENT else "not present"
    return f"{who} {what}, {why}"


@dataclass
class PageFault(Exception):
    """A failed translation: the address, the x86 error code, and whether it was a #GP."""
    vaddr: int
    error_code: int
    access: int
    noncanonical: bool = False
    levels: int = 0

    def __str__(self) -> str:
        if self.noncanonical:
            return f"general protection fault: non-canonical address {self.vaddr:#x}"
        return f"page fault at {self.vaddr:#x}: {describe_error_code(self.error_code)}"


class Mmu:
    """Walks page tables in a PhysicalMemory and counts the walks and the tables read."""

    def __init__(self, ram: PhysicalMemory):
        self.ram = ram
        self.words = ram.words
        self.walks = 0
        self.levels_read = 0

    def walk(self, root: int, vaddr: int, access: int, user: bool) -> tuple[int, int]:
        """Translate vaddr under the PML4 in frame `root`: (leaf word index, leaf entry) or raise PageFault."""
        self.walks += 1
        code = (PF_USER if user else 0) | (PF_WRITE if access == ACCESS_WRITE else 0) \
            | (PF_INSTR if access == ACCESS_FETCH else 0)
        top = vaddr >> 47
        if top != 0 and top != 0x1FFFF:
            raise PageFault(vaddr, code, access, noncanonical=True)
        words = self.words
        table = root
        allow = PTE_WRITABLE | PTE_USER
        nx = 0
        levels = 0
        for shift in (39, 30, 21, 12):
            i = (table << 9) | ((vaddr >> shift) & 0x1FF)
            e = words[i]
            levels += 1
            if not e & PTE_PRESENT:
                self.levels_read += levels
                raise PageFault(vaddr, code, access, levels=levels)
            allow &= e
            nx |= e & PTE_NX
            if shift != 12:
                if not e & PTE_ACCESSED:
                    words[i] = e | PTE_ACCESSED
                table = (e & PTE_FRAME) >> PAGE_SHIFT
        self.levels_read += levels
        if (user and not allow & PTE_USER) or (access == ACCESS_WRITE and not allow & PTE_WRITABLE) \
                or (access == ACCESS_FETCH and nx):
            raise PageFault(vaddr, code | PF_PRESENT, access, levels=levels)
        want = _WP_ACCESS if access == ACCESS_WRITE else PTE_ACCESSED
        if e & want != want:
            e |= want
            words[i] = e
        # The effective W/U of the walk, folded into the entry we hand back (NX likewise).
        return i, (e & ~(PTE_WRITABLE | PTE_USER)) | allow | nx


def is_kernel_address(vaddr: int) -> bool:
    """Whether vaddr lies in the kernel half."""
    return vaddr >= KERNEL_HALF
