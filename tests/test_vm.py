"""Unit tests of the emulated hardware in vm/: RAM frames, x86-64 page tables, the MMU walk,
the TLB model and the CPU glue to Unicorn.

Expected values come from the x86-64 architecture (Intel SDM vol. 3, chapter 4 "Paging")
and are computed here by hand, never by calling the helper being tested.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import tempfile

import pytest

from vm import pagetable as ptm
from vm.mmu import (ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, PF_INSTR, PF_PRESENT, PF_USER, PF_WRITE, Mmu,
                    PageFault)
from vm.pagetable import PageTable
from vm.ram import PAGE_SHIFT, PAGE_SIZE, OutOfMemory, Owner, PhysicalMemory
from vm.tlb import Tlb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BSS = os.path.join(ROOT, "samples", "bin", "bss")

# Architectural bit positions (Intel SDM vol. 3A, 4.5, tables 4-15..4-20).
P, W, U, A, D, G = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 8
NX = 1 << 63
FRAME_MASK = sum(1 << b for b in range(12, 52))   # bits 51:12 (MAXPHYADDR 52)


def idx(vaddr: int) -> tuple[int, int, int, int]:
    """PML4, PDPT, PD, PT indexes of a virtual address: bits 47:39, 38:30, 29:21, 20:12."""
    return ((vaddr >> 39) & 511, (vaddr >> 30) & 511, (vaddr >> 21) & 511, (vaddr >> 12) & 511)


def entries(ram: PhysicalMemory, root: int, vaddr: int) -> list[tuple[int, int]]:
    """(word index, entry) for each level present on the path to vaddr, read straight from RAM."""
    out = []
    table = root
    for i in idx(vaddr):
        word = table * 512 + i
        e = ram.words[word]
        out.append((word, e))
        if not e & P:
            break
        table = (e & FRAME_MASK) >> 12
    return out


def table_frames(ram: PhysicalMemory) -> int:
    return sum(1 for o in ram.owner if o == Owner.PAGE_TABLE)


@pytest.fixture
def ram():
    return PhysicalMemory(4 << 20)


# -- vm.pagetable ---------------------------------------------------------------------------------

def test_pte_bits_match_the_sdm():
    assert ptm.PTE_PRESENT == P
    assert ptm.PTE_WRITABLE == W
    assert ptm.PTE_USER == U
    assert ptm.PTE_ACCESSED == A
    assert ptm.PTE_DIRTY == D
    assert ptm.PTE_GLOBAL == G
    assert ptm.PTE_NX == NX
    assert ptm.PTE_FRAME == FRAME_MASK == 0x000F_FFFF_FFFF_F000
    # PWT, PCD and PS are bits 3, 4, 7.
    assert (ptm.PTE_PWT, ptm.PTE_PCD, ptm.PTE_HUGE) == (1 << 3, 1 << 4, 1 << 7)


def test_canonical_addresses():
    assert ptm.canonical(0)
    assert ptm.canonical(0x7FFF_FFFF_FFFF)
    assert not ptm.canonical(0x8000_0000_0000)
    assert not ptm.canonical(0xFFFF_7FFF_FFFF_FFFF)
    assert ptm.canonical(0xFFFF_8000_0000_0000)
    assert ptm.canonical(0xFFFF_FFFF_FFFF_FFFF)


@pytest.mark.parametrize("vaddr, expect", [
    # 0x401000 = 2 * 2 MiB + 1 * 4 KiB
    (0x0000_0000_0040_1000, (0, 0, 2, 1)),
    # the top user page: every index is 511 except PML4 (bit 47 is clear -> 255)
    (0x0000_7FFF_FFFF_F000, (255, 511, 511, 511)),
    # 0x555555554000: PML4 0xAA, PDPT 0x155, PD 0xAA, PT 0x154
    (0x0000_5555_5555_4000, (170, 341, 170, 340)),
    # Linux's kernel text: PML4 511, PDPT 510, PD 8, PT 0
    (0xFFFF_FFFF_8100_0000, (511, 510, 8, 0)),
])
def test_map_writes_the_leaf_where_the_9_9_9_9_12_split_says(ram, vaddr, expect):
    assert idx(vaddr) == expect            # the hand computation agrees with the literal
    pt = PageTable(ram)
    pfn = ram.alloc(Owner.ANON)
    flags = P | W | U | NX
    pt.map(vaddr, pfn, flags)
    # Walk the tree by hand from the root, with table_index/slot unused.
    table = pt.root
    for level, i in enumerate(expect):
        e = ram.words[table * 512 + i]
        if level == 3:
            assert e == (pfn << 12) | flags
            assert (e & FRAME_MASK) >> 12 == pfn
        else:
            assert e & P, f"level {level} entry not present"
            child = (e & FRAME_MASK) >> 12
            assert ram.owner[child] == Owner.PAGE_TABLE
            if vaddr < 1 << 47:
                # Linux's user intermediate entries grant W and U; the leaf decides.
                assert e & (W | U) == W | U
            table = child
    assert pt.lookup(vaddr) == (pfn << 12) | flags
    # Every other word of the leaf table is still empty.
    leaf_table = table
    assert sum(1 for i in range(512) if ram.words[leaf_table * 512 + i]) == 1


def test_slot_is_the_word_of_the_leaf(ram):
    pt = PageTable(ram)
    pt.map(0x401000, ram.alloc(Owner.ANON), P | U)
    (word, _e) = entries(ram, pt.root, 0x401000)[-1]
    assert pt.slot(0x401000) == word
    assert pt.slot(0x40000000) == -1          # PDPT entry 1 absent: nothing allocated
    assert pt.lookup(0x40000000) == 0


def test_intermediate_tables_are_allocated_on_demand(ram):
    before = table_frames(ram)
    pt = PageTable(ram)
    assert table_frames(ram) == before + 1                 # the PML4
    pt.map(0x401000, ram.alloc(Owner.ANON), P | U)
    assert table_frames(ram) == before + 4                 # + PDPT, PD, PT
    pt.map(0x402000, ram.alloc(Owner.ANON), P | U)         # same PT
    pt.map(0x5FF000, ram.alloc(Owner.ANON), P | U)         # same PT (last slot of the 2 MiB area)
    assert table_frames(ram) == before + 4
    pt.map(0x600000, ram.alloc(Owner.ANON), P | U)         # same PD, new PT
    assert table_frames(ram) == before + 5
    pt.map(0x4000_0000, ram.alloc(Owner.ANON), P | U)      # same PDPT, new PD + PT
    assert table_frames(ram) == before + 7
    pt.map(0x80_0000_0000, ram.alloc(Owner.ANON), P | U)   # PML4 slot 1: new PDPT + PD + PT
    assert table_frames(ram) == before + 10
    assert pt.table_pages == 10


def test_kernel_half_is_shared_between_address_spaces(ram):
    kernel = PageTable(ram)
    ktext = 0xFFFF_FFFF_8100_0000
    kernel.map(ktext, ram.alloc(Owner.KERNEL), P | G)
    a = PageTable(ram, kernel_root=kernel.root)
    b = PageTable(ram, kernel_root=kernel.root)
    kw = ram.words[kernel.root * 512 + 256: kernel.root * 512 + 512]
    for pt in (a, b):
        assert ram.words[pt.root * 512 + 256: pt.root * 512 + 512] == kw
        # The user half is not copied.
        assert not any(ram.words[pt.root * 512: pt.root * 512 + 256])
    # Kernel-half tables are supervisor-only (no U at any level).
    for _word, e in entries(ram, kernel.root, ktext)[:-1]:
        assert e & P and not e & U
    # Added after a and b exist, under the already-present PML4 slot 511: seen by both,
    # in the same PT page and under a new PD of the shared PDPT.
    same_pt = ktext + 0x1000
    new_pd = 0xFFFF_FFFF_0000_0000       # PML4 511, PDPT 508
    assert idx(new_pd)[:2] == (511, 508)
    f1, f2 = ram.alloc(Owner.KERNEL), ram.alloc(Owner.KERNEL)
    kernel.map(same_pt, f1, P | G)
    kernel.map(new_pd, f2, P | W | G | NX)
    for pt in (a, b):
        assert pt.lookup(same_pt) == (f1 << 12) | P | G
        assert pt.lookup(new_pd) == (f2 << 12) | P | W | G | NX
    # And a user mapping in a stays private to a.
    a.map(0x401000, ram.alloc(Owner.ANON), P | U)
    assert b.lookup(0x401000) == 0
    assert kernel.lookup(0x401000) == 0


def test_unmap_returns_the_old_entry_and_clears_it(ram):
    pt = PageTable(ram)
    pfn = ram.alloc(Owner.ANON)
    pt.map(0x7000, pfn, P | W | U)
    assert pt.unmap(0x7000) == (pfn << 12) | P | W | U
    assert pt.lookup(0x7000) == 0
    assert ram.words[entries(ram, pt.root, 0x7000)[-1][0]] == 0
    assert pt.unmap(0x7000) == 0                          # already gone
    assert pt.unmap(0x1234_5678_9000) == 0                # tables never existed
    assert pt.slot(0x1234_5678_9000) == -1


def test_leaves_in_address_order(ram):
    pt = PageTable(ram)
    vaddrs = [0x7FFF_FFFF_E000, 0x401000, 0x80_0000_0000, 0x400000, 0x5555_5555_4000, 0x600000, 0x4000_0000]
    pfns = {}
    for va in vaddrs:
        pfns[va] = ram.alloc(Owner.ANON)
        pt.map(va, pfns[va], P | U)
    got = list(pt.leaves())
    assert [va for va, _w, _e in got] == sorted(vaddrs)
    for va, word, e in got:
        assert e == (pfns[va] << 12) | P | U
        assert ram.words[word] == e
    # A window [start, end).
    assert [va for va, _w, _e in pt.leaves(0x401000, 0x4000_0000)] == [0x401000, 0x600000]
    assert [va for va, _w, _e in pt.leaves(0x402000, 0x8000_0000_0000)] == [0x600000, 0x4000_0000, 0x80_0000_0000,
                                                                           0x5555_5555_4000, 0x7FFF_FFFF_E000]
    # Not-present entries are skipped.
    pt.unmap(0x600000)
    assert 0x600000 not in [va for va, _w, _e in pt.leaves()]


def test_leaves_stop_at_the_user_half(ram):
    kernel = PageTable(ram)
    kernel.map(0xFFFF_FFFF_8100_0000, ram.alloc(Owner.KERNEL), P | G)
    pt = PageTable(ram, kernel_root=kernel.root)
    pt.map(0x401000, ram.alloc(Owner.ANON), P | U)
    assert [va for va, _w, _e in pt.leaves()] == [0x401000]


def test_dump_lines(ram):
    kernel = PageTable(ram)
    kernel.map(0xFFFF_FFFF_8100_0000, ram.alloc(Owner.KERNEL), P | G)
    pt = PageTable(ram, kernel_root=kernel.root)
    pfn = ram.alloc(Owner.ANON)
    pt.map(0x401000, pfn, P | W | U | A | D | NX)
    lines = pt.dump()
    assert lines[0] == f"page table {pt.root << 12:#x}"
    assert len(lines) == 1 + 4                      # one line per level on the single path
    for level, (line, name) in enumerate(zip(lines[1:], ("PML4[0]", "PDPT[0]", "PD[2]", "PT[1]"))):
        assert line.startswith(" .." * (level + 1) + name), line
    leaf = lines[4]
    assert "va 0x401000" in leaf
    assert f"frame {pfn:#x}" in leaf
    assert f"pte {(pfn << 12) | P | W | U | A | D | NX:#018x}" in leaf
    assert "[P W U A D NX]" in leaf
    # A second page under the same PT adds exactly one line.
    pt.map(0x402000, ram.alloc(Owner.ANON), P | U)
    assert len(pt.dump()) == 1 + 5
    # The kernel half only when asked, with sign-extended addresses.
    full = pt.dump(user_only=False)
    assert len(full) == 1 + 5 + 4
    assert any("PML4[511] va 0xffffff8000000000" in line for line in full)
    assert any("va 0xffffffff81000000" in line and "[P G]" in line for line in full)


# -- vm.mmu ---------------------------------------------------------------------------------------

@pytest.fixture
def mm(ram):
    """RAM, a page table, an Mmu and a few frames."""
    pt = PageTable(ram)
    return ram, pt, Mmu(ram)


def test_user_read_sets_accessed_on_all_levels_but_no_dirty(mm):
    ram, pt, mmu = mm
    pfn = ram.alloc(Owner.ANON)
    pt.map(0x401000, pfn, P | W | U)
    path = entries(ram, pt.root, 0x401000)
    assert all(not e & A for _w, e in path)
    word, pte = mmu.walk(pt.root, 0x401123, ACCESS_READ, True)
    assert word == path[-1][0]
    assert (pte & FRAME_MASK) >> 12 == pfn
    for w, _e in path:
        assert ram.words[w] & A
        assert not ram.words[w] & D


def test_write_sets_dirty_on_the_leaf_only(mm):
    ram, pt, mmu = mm
    pfn = ram.alloc(Owner.ANON)
    pt.map(0x401000, pfn, P | W | U)
    mmu.walk(pt.root, 0x401000, ACCESS_WRITE, True)
    path = entries(ram, pt.root, 0x401000)
    for w, _e in path:
        assert ram.words[w] & A
    assert ram.words[path[-1][0]] & D
    for w, _e in path[:-1]:
        assert not ram.words[w] & D


def test_fetch_does_not_set_dirty(mm):
    ram, pt, mmu = mm
    pt.map(0x401000, ram.alloc(Owner.FILE), P | U)
    mmu.walk(pt.root, 0x401000, ACCESS_FETCH, True)
    leaf = entries(ram, pt.root, 0x401000)[-1][0]
    assert ram.words[leaf] & A and not ram.words[leaf] & D


ACCESS_BITS = {ACCESS_READ: 0, ACCESS_WRITE: PF_WRITE, ACCESS_FETCH: PF_INSTR}


@pytest.mark.parametrize("access", [ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH])
@pytest.mark.parametrize("user", [True, False])
@pytest.mark.parametrize("vaddr, level", [
    (0x80_0000_0000, "PML4"),      # PML4 slot 1 empty
    (0x4000_0000, "PDPT"),         # PDPT slot 1 empty
    (0x600000, "PD"),              # PD slot 3 empty
    (0x403000, "PT"),              # PT slot 3 empty
])
def test_not_present_at_each_level(mm, vaddr, level, access, user):
    ram, pt, mmu = mm
    pt.map(0x401000, ram.alloc(Owner.ANON), P | W | U)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, vaddr, access, user)
    f = info.value
    assert f.vaddr == vaddr
    assert not f.noncanonical
    assert f.access == access
    # P clear (not present); W/I from the access; U from the privilege level.
    assert f.error_code == (PF_USER if user else 0) | ACCESS_BITS[access]
    assert not f.error_code & PF_PRESENT


def test_error_code_constants():
    assert (PF_PRESENT, PF_WRITE, PF_USER, PF_INSTR) == (1, 2, 4, 16)


def test_user_access_to_supervisor_page(mm):
    ram, pt, mmu = mm
    pt.map(0x401000, ram.alloc(Owner.KERNEL), P | W)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_READ, True)
    assert info.value.error_code == PF_PRESENT | PF_USER
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_WRITE, True)
    assert info.value.error_code == PF_PRESENT | PF_WRITE | PF_USER
    # The supervisor may (CR4.SMAP is not modelled... but this page is not a user page anyway).
    mmu.walk(pt.root, 0x401000, ACCESS_WRITE, False)


def test_write_to_read_only_page(mm):
    ram, pt, mmu = mm
    pt.map(0x401000, ram.alloc(Owner.FILE), P | U)
    mmu.walk(pt.root, 0x401000, ACCESS_READ, True)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_WRITE, True)
    assert info.value.error_code == PF_PRESENT | PF_WRITE | PF_USER
    # A failed write does not set D.
    assert not pt.lookup(0x401000) & D


def test_supervisor_write_to_read_only_page_faults_with_cr0_wp(mm):
    ram, pt, mmu = mm
    pt.map(0x401000, ram.alloc(Owner.FILE), P | U)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_WRITE, False)
    assert info.value.error_code == PF_PRESENT | PF_WRITE


def test_fetch_from_nx_page(mm):
    ram, pt, mmu = mm
    pt.map(0x7FFF_FFFF_E000, ram.alloc(Owner.STACK), P | W | U | NX)
    mmu.walk(pt.root, 0x7FFF_FFFF_E000, ACCESS_READ, True)
    mmu.walk(pt.root, 0x7FFF_FFFF_E000, ACCESS_WRITE, True)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x7FFF_FFFF_E010, ACCESS_FETCH, True)
    assert info.value.error_code == PF_PRESENT | PF_INSTR | PF_USER
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x7FFF_FFFF_E010, ACCESS_FETCH, False)
    assert info.value.error_code == PF_PRESENT | PF_INSTR


@pytest.mark.parametrize("vaddr", [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_F000, 0x1234_5678_9ABC_D000])
def test_noncanonical_address(mm, vaddr):
    ram, pt, mmu = mm
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, vaddr, ACCESS_READ, True)
    assert info.value.noncanonical
    assert info.value.vaddr == vaddr


def test_user_and_writable_are_anded_across_levels(ram):
    pt = PageTable(ram)
    pt.map(0x401000, ram.alloc(Owner.ANON), P | W | U)
    path = entries(ram, pt.root, 0x401000)
    pd_word = path[2][0]
    ram.words[pd_word] &= ~U
    mmu = Mmu(ram)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_READ, True)
    assert info.value.error_code == PF_PRESENT | PF_USER
    # The supervisor still reads it; the effective entry it gets has no U.
    _w, pte = Mmu(ram).walk(pt.root, 0x401000, ACCESS_READ, False)
    assert not pte & U
    # Restore U, take W away at the PDPT: writes fault for user and supervisor alike.
    ram.words[pd_word] |= U
    ram.words[path[1][0]] &= ~W
    mmu = Mmu(ram)
    _w, pte = mmu.walk(pt.root, 0x401000, ACCESS_READ, True)
    assert pte & U and not pte & W
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_WRITE, True)
    assert info.value.error_code == PF_PRESENT | PF_WRITE | PF_USER
    with pytest.raises(PageFault) as info:
        Mmu(ram).walk(pt.root, 0x401000, ACCESS_WRITE, False)
    assert info.value.error_code == PF_PRESENT | PF_WRITE


def test_nx_is_ored_across_levels(ram):
    pt = PageTable(ram)
    pt.map(0x401000, ram.alloc(Owner.FILE), P | U)       # executable leaf
    mmu = Mmu(ram)
    _w, pte = mmu.walk(pt.root, 0x401000, ACCESS_FETCH, True)
    assert not pte & NX
    ram.words[pt.root * 512 + 0] |= NX                   # NX on the PML4 entry
    mmu = Mmu(ram)
    with pytest.raises(PageFault) as info:
        mmu.walk(pt.root, 0x401000, ACCESS_FETCH, True)
    assert info.value.error_code == PF_PRESENT | PF_INSTR | PF_USER
    _w, pte = mmu.walk(pt.root, 0x401000, ACCESS_READ, True)
    assert pte & NX                                       # the effective entry carries it


def test_paging_structure_cache(ram):
    pt = PageTable(ram)
    for va in (0x401000, 0x402000, 0x5FF000, 0x600000):
        pt.map(va, ram.alloc(Owner.ANON), P | W | U)
    mmu = Mmu(ram)

    def levels(va, access=ACCESS_READ):
        before = mmu.levels_read
        mmu.walk(pt.root, va, access, True)
        return mmu.levels_read - before

    assert levels(0x401000) == 4
    assert levels(0x402000) == 1            # same 2 MiB area: only the PT is read
    assert levels(0x5FF000, ACCESS_WRITE) == 1
    assert levels(0x600000) == 4            # next 2 MiB area
    assert levels(0x600000) == 1
    # A fault in the PT still reads one level only.
    before = mmu.levels_read
    with pytest.raises(PageFault):
        mmu.walk(pt.root, 0x403000, ACCESS_READ, True)
    assert mmu.levels_read - before == 1
    mmu.forget(pt.root)
    assert levels(0x402000) == 4
    assert mmu.walks == 7


def test_paging_structure_cache_is_per_root(ram):
    a = PageTable(ram)
    b = PageTable(ram)
    a.map(0x401000, ram.alloc(Owner.ANON), P | U)
    mmu = Mmu(ram)
    mmu.walk(a.root, 0x401000, ACCESS_READ, True)
    with pytest.raises(PageFault) as info:
        mmu.walk(b.root, 0x401000, ACCESS_READ, True)
    assert not info.value.error_code & PF_PRESENT
    # forget(b) leaves a's cached path alone.
    mmu.forget(b.root)
    before = mmu.levels_read
    mmu.walk(a.root, 0x401000, ACCESS_READ, True)
    assert mmu.levels_read - before == 1


def test_paging_structure_cache_is_per_root_in_the_kernel_half(ram):
    a = PageTable(ram)
    b = PageTable(ram)          # no kernel half at all
    a.map(0xFFFF_FFFF_8100_0000, ram.alloc(Owner.KERNEL), P | G)
    mmu = Mmu(ram)
    mmu.walk(a.root, 0xFFFF_FFFF_8100_0000, ACCESS_READ, False)
    with pytest.raises(PageFault):
        mmu.walk(b.root, 0xFFFF_FFFF_8100_0000, ACCESS_READ, False)


def test_forget_drops_kernel_half_walks_too(ram):
    pt = PageTable(ram)
    pt.map(0xFFFF_FFFF_8100_0000, ram.alloc(Owner.KERNEL), P | G)
    mmu = Mmu(ram)
    mmu.walk(pt.root, 0xFFFF_FFFF_8100_0000, ACCESS_READ, False)
    mmu.forget(pt.root)
    before = mmu.levels_read
    mmu.walk(pt.root, 0xFFFF_FFFF_8100_0000, ACCESS_READ, False)
    assert mmu.levels_read - before == 4


# -- vm.ram ---------------------------------------------------------------------------------------

def test_ram_geometry_is_checked():
    with pytest.raises(ValueError):
        PhysicalMemory(32 * 1024)
    with pytest.raises(ValueError):
        PhysicalMemory(64 * 1024 + 100)
    r = PhysicalMemory(64 * 1024)
    assert r.nframes == 16


def test_alloc_get_put_refcounts(ram):
    free0, used0 = ram.free_frames, ram.used_frames
    pfn = ram.alloc(Owner.ANON)
    assert pfn != 0                               # frame 0 means "none"
    assert ram.refcount[pfn] == 1 and ram.owner[pfn] == Owner.ANON
    assert (ram.free_frames, ram.used_frames) == (free0 - 1, used0 + 1)
    ram.get(pfn)
    ram.get(pfn)
    assert ram.refcount[pfn] == 3
    assert ram.put(pfn) is False
    assert ram.put(pfn) is False
    assert ram.owner[pfn] == Owner.ANON and ram.used_frames == used0 + 1
    assert ram.put(pfn) is True                   # the last reference frees it
    assert ram.owner[pfn] == Owner.FREE
    assert (ram.free_frames, ram.used_frames) == (free0, used0)
    with pytest.raises(AssertionError):
        ram.put(pfn)


def test_reused_frames_are_zeroed(ram):
    pfn = ram.alloc(Owner.ANON)
    ram.write(pfn << 12, b"\xAA" * 4096)
    ram.words[(pfn << 9) + 7] = 0xDEADBEEF
    assert ram.read(pfn << 12, 4) == b"\xAA" * 4
    ram.put(pfn)
    held = []
    while True:
        q = ram.alloc(Owner.FILE)
        if q == pfn:
            break
        held.append(q)
        assert len(held) < ram.nframes
    assert bytes(ram.frame(pfn)) == bytes(4096)
    for q in held:
        ram.put(q)


def test_copy_frame(ram):
    a, b = ram.alloc(Owner.ANON), ram.alloc(Owner.ANON)
    ram.frame(a)[:] = bytes(range(256)) * 16
    ram.copy_frame(b, a)
    assert bytes(ram.frame(b)) == bytes(range(256)) * 16


def test_out_of_memory_when_exhausted():
    ram = PhysicalMemory(64 * 1024)                # 16 frames, frame 0 reserved
    got = [ram.alloc(Owner.ANON) for _ in range(15)]
    assert sorted(got) == list(range(1, 16))
    assert ram.free_frames == 0 and ram.used_frames == 15
    with pytest.raises(OutOfMemory):
        ram.alloc(Owner.ANON)
    ram.put(got[3])
    assert ram.alloc(Owner.STACK) == got[3]
    with pytest.raises(OutOfMemory):
        ram.alloc(Owner.PAGE_TABLE)
    assert ram.peak_used == 15


def test_frames_by_owner():
    ram = PhysicalMemory(64 * 1024)
    base = ram.frames_by_owner()
    assert base["free"] == 15
    for _ in range(3):
        ram.alloc(Owner.ANON)
    f = [ram.alloc(Owner.FILE) for _ in range(2)]
    ram.alloc(Owner.PAGE_TABLE)
    c = ram.frames_by_owner()
    assert c["anon"] == base["anon"] + 3
    assert c["file"] == base["file"] + 2
    assert c["page_table"] == base["page_table"] + 1
    assert c["free"] == 15 - 6
    assert sum(c.values()) == ram.nframes
    ram.put(f[0])
    c = ram.frames_by_owner()
    assert c["file"] == base["file"] + 1 and c["free"] == 10


# -- vm.tlb ---------------------------------------------------------------------------------------

def access(tlb: Tlb, vpn: int, asid: int = 1, global_: bool = False) -> bool:
    """Look vpn up; on a miss fill it (as the hardware does after a walk). True on a hit."""
    if tlb.lookup(vpn, asid):
        return True
    tlb.insert(vpn, asid, (vpn << 12) | P | U, global_)
    return False


def test_lru_two_way_pattern():
    tlb = Tlb(entries=4, ways=2, policy="lru")
    assert tlb.nsets == 2
    # Set 0 holds even vpns, set 1 odd ones.
    pattern = [0, 2, 1, 0, 4, 0, 2, 3, 5, 1]
    # 0 miss; 2 miss; 1 miss; 0 hit (0 MRU); 4 miss, evicts 2; 0 hit; 2 miss, evicts 4;
    # 3 miss (set 1: {1, 3}); 5 miss, evicts 1; 1 miss, evicts 3.
    hits = [access(tlb, v) for v in pattern]
    assert hits == [False, False, False, True, False, True, False, False, False, False]
    s = tlb.stats
    assert (s.lookups, s.hits, s.misses, s.fills, s.evictions) == (10, 2, 8, 8, 4)
    assert (0, 1) in tlb and (2, 1) in tlb and (4, 1) not in tlb
    assert (5, 1) in tlb and (1, 1) in tlb and (3, 1) not in tlb
    assert len(tlb) == 4


def test_insert_returns_the_victim():
    tlb = Tlb(entries=4, ways=2, policy="lru")
    assert tlb.insert(0, 1, 0x1001) is None
    assert tlb.insert(2, 1, 0x2001) is None
    assert tlb.lookup(0, 1) == 0x1001        # 2 is now least recently used
    assert tlb.insert(4, 1, 0x4001) == 2
    assert tlb.insert(4, 1, 0x4003) is None  # refreshing an entry evicts nothing
    assert tlb.lookup(4, 1) == 0x4003


def test_fifo_differs_from_lru_on_a_rereferenced_entry():
    pattern = [0, 2, 0, 4, 0]
    lru, fifo = Tlb(4, 2, "lru"), Tlb(4, 2, "fifo")
    # LRU: the hit on 0 protects it, 2 is evicted by 4, and 0 hits again.
    assert [access(lru, v) for v in pattern] == [False, False, True, False, True]
    # FIFO: 0 is the oldest entry despite the hit; 4 evicts it, then 0 evicts 2.
    assert [access(fifo, v) for v in pattern] == [False, False, True, False, False]
    assert (lru.stats.misses, lru.stats.evictions) == (3, 1)
    assert (fifo.stats.misses, fifo.stats.evictions) == (4, 2)
    assert (2, 1) not in fifo and (4, 1) in fifo and (0, 1) in fifo


def test_direct_mapped_conflicts():
    tlb = Tlb(entries=4, ways=1)
    # vpns 1, 5, 9 share set 1; 2 sits alone in set 2.
    hits = [access(tlb, v) for v in [1, 2, 5, 2, 1, 9, 2]]
    assert hits == [False, False, False, True, False, False, True]
    assert tlb.stats.evictions == 3


def test_random_policy_is_deterministic_for_a_seed():
    pattern = [(i * 7) % 23 * 4 for i in range(300)]      # all in set 0 of a 4-set TLB

    def run(seed):
        tlb = Tlb(entries=16, ways=4, policy="random", seed=seed)
        victims = []
        for v in pattern:
            if not tlb.lookup(v, 1):
                victims.append(tlb.insert(v, 1, (v << 12) | P))
            assert len(tlb.sets[0]) <= 4
        return victims, tlb.stats.as_dict()

    a, b = run(5), run(5)
    assert a == b
    assert a[1]["evictions"] > 0
    # The victim is random, not always the oldest: some seed's choices differ from FIFO's.
    assert len({tuple(run(s)[0]) for s in range(6)}) > 1


def test_asid_tagging_and_global_entries():
    tlb = Tlb(entries=8, ways=2)
    tlb.insert(5, 1, 0x5005)
    assert tlb.lookup(5, 1) == 0x5005
    assert tlb.lookup(5, 2) == 0                 # same vpn, another address space: miss
    tlb.insert(5, 2, 0x9005)
    assert tlb.lookup(5, 1) == 0x5005 and tlb.lookup(5, 2) == 0x9005
    tlb.insert(7, 1, 0x7105, global_=True)       # global: hits for every asid
    for asid in (1, 2, 3, 0xFFF):
        assert tlb.lookup(7, asid) == 0x7105
    tlb.flush(asid=1)
    assert tlb.lookup(5, 1) == 0                 # asid 1's entry gone
    assert tlb.lookup(5, 2) == 0x9005            # asid 2 untouched
    assert tlb.lookup(7, 3) == 0x7105            # global survives
    tlb.flush()
    assert tlb.lookup(5, 2) == 0
    assert tlb.lookup(7, 3) == 0x7105            # still survives a flush of all asids
    tlb.flush(include_global=True)
    assert tlb.lookup(7, 3) == 0
    assert len(tlb) == 0
    assert tlb.stats.flushes == 3


def test_invalidate_page():
    tlb = Tlb(entries=8, ways=2)
    tlb.insert(5, 1, 0x5001)
    tlb.insert(5, 2, 0x5002)
    tlb.insert(6, 1, 0x6001)
    assert tlb.invalidate_page(5, 1) is True
    assert (5, 1) not in tlb and tlb.lookup(5, 2) == 0x5002 and tlb.lookup(6, 1) == 0x6001
    assert tlb.invalidate_page(5, 1) is False           # nothing left to drop
    assert tlb.invalidate_page(5) is True               # every asid
    assert tlb.lookup(5, 2) == 0
    tlb.insert(9, 1, 0x9001, global_=True)
    assert tlb.invalidate_page(9, 3) is True            # INVLPG drops global entries too
    assert tlb.lookup(9, 1) == 0
    assert tlb.stats.invalidations == 4


def test_update_refreshes_a_cached_entry_only():
    tlb = Tlb(entries=8, ways=2)
    tlb.insert(3, 1, 0x3001)
    tlb.update(3, 1, 0x3061)
    assert tlb.lookup(3, 1) == 0x3061
    tlb.update(4, 1, 0x4061)                            # not cached: nothing appears
    assert tlb.lookup(4, 1) == 0


def test_listener_sees_events():
    tlb = Tlb(entries=2, ways=1)
    events = []
    tlb.listener = lambda ev, vpn, asid, pte, reason: events.append((ev, vpn, asid))
    access(tlb, 0)
    access(tlb, 2)          # same set: evicts 0
    assert events == [("miss", 0, 1), ("fill", 0, 1), ("miss", 2, 1), ("evict", 0, 1), ("fill", 2, 1)]


@pytest.mark.parametrize("entries, ways, policy", [
    (0, 1, "lru"), (4, 0, "lru"), (6, 4, "lru"), (-4, 2, "lru"), (4, 2, "mru"),
])
def test_bad_geometry_raises(entries, ways, policy):
    with pytest.raises(ValueError):
        Tlb(entries, ways, policy)


# -- vm.cpu ---------------------------------------------------------------------------------------

def mov_abs(opcode: int, modrm: int, addr: int) -> bytes:
    """A byte move with a [disp32] operand (ModRM mod=00 rm=100, SIB base=101 index=100)."""
    return bytes([opcode, modrm, 0x25]) + struct.pack("<I", addr)


MOV_AL_MEM = lambda a: mov_abs(0x8A, 0x04, a)     # mov al, [a]
MOV_BL_MEM = lambda a: mov_abs(0x8A, 0x1C, a)     # mov bl, [a]
MOV_CL_MEM = lambda a: mov_abs(0x8A, 0x0C, a)     # mov cl, [a]
MOV_MEM_CL = lambda a: mov_abs(0x88, 0x0C, a)     # mov [a], cl
MOV_MEM_AL = lambda a: mov_abs(0x88, 0x04, a)     # mov [a], al
SYSCALL = b"\x0f\x05"

CODE, PAGE_A, PAGE_R, PAGE_B = 0x400000, 0x601000, 0x602000, 0x605000


def machine(code: bytes, tlb: Tlb):
    """A Cpu over fresh RAM with the code page, data page A (frame holding 0x11), a result page,
    and page B; returns (cpu, pagetable, frame of A, another frame holding 0x22)."""
    from vm.cpu import Cpu
    ram = PhysicalMemory(1 << 20)
    cpu = Cpu(ram, tlb)
    pt = PageTable(ram)
    text = ram.alloc(Owner.FILE)
    ram.write(text << 12, code)
    pt.map(CODE, text, P | U)
    f1, f2 = ram.alloc(Owner.ANON), ram.alloc(Owner.ANON)
    ram.write(f1 << 12, b"\x11")
    ram.write(f2 << 12, b"\x22")
    pt.map(PAGE_A, f1, P | W | U | NX)
    pt.map(PAGE_R, ram.alloc(Owner.ANON), P | W | U | NX)
    pt.map(PAGE_B, ram.alloc(Owner.ANON), P | W | U | NX)
    cpu.switch_to(pt.root, 1)
    cpu.set_reg("rip", CODE)
    return cpu, pt, f1, f2


def result(cpu, pt) -> int:
    return cpu.ram.read(pt.lookup(PAGE_R) & FRAME_MASK, 1)[0]


def test_cpu_write_comes_back_to_set_dirty():
    code = MOV_AL_MEM(PAGE_A) + MOV_MEM_AL(PAGE_A) + MOV_AL_MEM(PAGE_B)
    cpu, pt, f1, _f2 = machine(code, Tlb(16, 4))
    assert cpu.run(count=3) is None
    a, b = pt.lookup(PAGE_A), pt.lookup(PAGE_B)
    # A was first read (handed to Unicorn read-only), then written: the store must have
    # come back to the MMU and set D, as the hardware's dirty-bit update does.
    assert a & A and a & D
    assert b & A and not b & D
    assert not pt.lookup(CODE) & D


def test_cpu_reload_after_our_tlb_evicts():
    """Our direct-mapped TLB drops A when B (same set) is filled; the kernel then remaps A without
    an INVLPG. The next read of A must walk again and see the new frame: if Unicorn's TLB still
    held A, the read would return the old frame's byte."""
    code = MOV_AL_MEM(PAGE_A) + MOV_BL_MEM(PAGE_B) + SYSCALL + MOV_CL_MEM(PAGE_A) + MOV_MEM_CL(PAGE_R)
    tlb = Tlb(4, 1)                          # 4 sets: vpn 0x601 and 0x605 both map to set 1
    cpu, pt, f1, f2 = machine(code, tlb)

    def remap():
        pt.map(PAGE_A, f2, P | W | U | NX)   # no invalidation: our TLB no longer holds A anyway

    cpu.on_syscall = remap
    assert cpu.run(count=5) is None
    assert tlb.stats.evictions >= 1
    assert (PAGE_A >> 12, 1) not in tlb or tlb.lookup(PAGE_A >> 12, 1) & FRAME_MASK == f2 << 12
    assert result(cpu, pt) == 0x22


def test_cpu_reload_check_is_sensitive(monkeypatch):
    """The same program with a Cpu that forgets to flush Unicorn reads the stale frame: the test
    above can fail."""
    code = MOV_AL_MEM(PAGE_A) + MOV_BL_MEM(PAGE_B) + SYSCALL + MOV_CL_MEM(PAGE_A) + MOV_MEM_CL(PAGE_R)
    cpu, pt, f1, f2 = machine(code, Tlb(4, 1))
    monkeypatch.setattr(cpu, "flush_unicorn_tlb", lambda: None)
    cpu.on_syscall = lambda: pt.map(PAGE_A, f2, P | W | U | NX)
    cpu.run(count=5)
    assert result(cpu, pt) == 0x11


def test_cpu_invalidate_page_reaches_unicorn():
    code = MOV_AL_MEM(PAGE_A) + SYSCALL + MOV_CL_MEM(PAGE_A) + MOV_MEM_CL(PAGE_R)
    cpu, pt, f1, f2 = machine(code, Tlb(16, 4))

    def remap():
        pt.map(PAGE_A, f2, P | W | U | NX)
        cpu.invalidate_page(PAGE_A, 1, "test")

    cpu.on_syscall = remap
    assert cpu.run(count=4) is None
    assert result(cpu, pt) == 0x22


def native_output(argv: list[str]) -> bytes:
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"LC_ALL": "C"},
                              timeout=30, cwd=ROOT)
    except OSError as err:
        pytest.skip(f"cannot run {argv[0]} natively: {err}")
    assert proc.returncode == 0
    return proc.stdout


def run_kernel(path: str, args: list[str], **config):
    from osmodel.kernel import Config, Kernel
    err = io.StringIO()
    kernel = Kernel(Config(stderr=err, **config))
    with tempfile.TemporaryFile() as out:
        kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [b"LC_ALL=C"],
                     stdio=(0, out.fileno(), 2))
        status = kernel.run()
        out.seek(0)
        return kernel, status, out.read(), err.getvalue()


@pytest.mark.parametrize("entries, ways", [(4, 1), (8, 8), (16, 4)])
def test_tiny_tlbs_keep_the_program_correct(entries, ways):
    args = ["12"]
    expected = native_output([BSS, *args])
    kernel, status, out, err = run_kernel(BSS, args, tlb_entries=entries, tlb_ways=ways)
    assert (status, out, err) == (0, expected, "")
    stats = kernel.tlb.stats
    assert stats.evictions > 0
    assert len(kernel.tlb) <= entries
    assert stats.misses >= stats.evictions
    # Evictions of pages Unicorn held forced flushes of Unicorn's TLB.
    assert kernel.cpu.uc_flushes > 1


def _resident(ram: PhysicalMemory, pfn: int) -> bool:
    """Whether the host has the page behind frame pfn in memory (mincore)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    vec = ctypes.create_string_buffer(1)
    base = ctypes.addressof(ctypes.c_char.from_buffer(ram.mmap))
    assert libc.mincore(base + (pfn << PAGE_SHIFT), PAGE_SIZE, vec) == 0
    return bool(vec.raw[0] & 1)


def test_host_memory_is_populated_ahead_of_a_growing_program():
    """Past POPULATE_START new frames, a background thread faults the host pages behind the next ones in
    (their content stays zero); before that, nothing is touched ahead of use."""
    import time
    from vm.ram import POPULATE_AHEAD, POPULATE_START
    ram = PhysicalMemory(256 << 20)
    ahead = POPULATE_START + POPULATE_AHEAD // 2
    for _ in range(POPULATE_START - 1):
        ram.alloc(Owner.ANON)
    time.sleep(0.05)
    assert not _resident(ram, ahead)
    ram.alloc(Owner.ANON)
    ram.alloc(Owner.ANON)
    deadline = time.monotonic() + 5
    while not _resident(ram, ahead) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _resident(ram, ahead)
    assert ram.read(ahead << PAGE_SHIFT, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert not _resident(ram, POPULATE_START + POPULATE_AHEAD + 1024)
