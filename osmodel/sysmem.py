"""Memory system calls: brk, mmap, munmap, mprotect. They edit regions; pages follow on demand."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from osmodel.addrspace import (PROT_EXEC, PROT_READ, PROT_WRITE, STACK_GUARD_GAP, AddressSpace, Region,
                               page_up)
from osmodel.files import HostFile, SysError
from osmodel.pagecache import FileBacking
from osmodel.syscall import signed32, syscall
from osmodel.sysproc import RLIM_INFINITY, RLIMIT_AS, get_rlimit
from vm.pagetable import PTE_FRAME
from vm.ram import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_FIXED_NOREPLACE = 0x100000
PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC
FLUSH_ALL_ABOVE = 32      # invalidate page by page up to this many pages, else flush the address space


def unmap_range(k: Kernel, aspace: AddressSpace, start: int, end: int, reason: str) -> None:
    """Remove the regions and pages in [start, end) and drop their translations."""
    for region in aspace.carve(start, end):
        aspace.remove(region)
    gone = aspace.unmap_pages(start, end)
    invalidate_pages(k, aspace, gone, reason)


def invalidate_pages(k: Kernel, aspace: AddressSpace, pages: list[int], reason: str) -> None:
    """Drop changed pages from the TLBs: one by one if few, else the whole address space."""
    if len(pages) > FLUSH_ALL_ABOVE:
        k.cpu.flush_tlb(aspace.asid, reason)
    else:
        for va in pages:
            k.cpu.invalidate_page(va, aspace.asid, reason)


def check_mapped(a: AddressSpace, start: int, end: int) -> None:
    """ENOMEM unless regions cover all of [start, end) without a hole (mprotect, msync)."""
    covered = start
    for r in a.regions:
        if r.end <= covered or r.start >= end:
            continue
        if r.start > covered:
            break
        covered = r.end
    if covered < end:
        raise SysError(errno.ENOMEM)


@syscall("brk", "p")
def sys_brk(k: Kernel, p: Process, addr: int) -> int:
    a = p.aspace
    if addr < a.brk_start:
        return a.brk
    old_top, new_top = page_up(a.brk), page_up(addr)
    if new_top > old_top:
        if new_top > a.user_top or not a.is_free(old_top, new_top):
            return a.brk
        try:
            check_address_space(p, new_top - old_top)
        except SysError:
            return a.brk
        above = a.next_region(new_top)
        if above is not None and above.kind == "stack" and new_top + STACK_GUARD_GAP > above.start:
            return a.brk
        heap = a.find(old_top - 1) if old_top > a.brk_start else None
        if heap is not None and heap.kind == "heap" and heap.end == old_top:
            a.resize(heap, heap.start, new_top)
        else:
            a.add(Region(old_top, new_top, PROT_READ | PROT_WRITE, "heap"))
    elif new_top < old_top:
        unmap_range(k, a, new_top, old_top, "munmap")
    a.brk = addr
    return addr


def check_address_space(p: Process, more: int) -> None:
    """ENOMEM if p's mappings may not grow by `more` bytes under its RLIMIT_AS (Linux's may_expand_vm)."""
    limit = get_rlimit(p, RLIMIT_AS)[0]
    if limit != RLIM_INFINITY and sum(r.end - r.start for r in p.aspace.regions) + more > limit:
        raise SysError(errno.ENOMEM)


def shared_zero(size: int) -> FileBacking:
    """The backing of a shared anonymous mapping: a zero-filled memory file of `size` bytes, as Linux backs
    one with shmem, so that processes forked from its creator find the same page-cache frame for each
    page, touched before the fork or not."""
    fd = os.memfd_create("dev-zero", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return FileBacking("", "/dev/zero (deleted)", fd=fd, shmem=True)
    finally:
        os.close(fd)


@syscall("mmap", "pupxdx")
def sys_mmap(k: Kernel, p: Process, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    a = p.aspace
    kind = flags & MAP_SHARED_VALIDATE
    if not length or offset % PAGE_SIZE or kind == 0 or prot & ~PROT_ALL:
        raise SysError(errno.EINVAL)
    size = page_up(length)
    if size > a.user_top or size < length:
        raise SysError(errno.ENOMEM)
    backing = None
    name = ""
    if flags & MAP_ANONYMOUS and kind != MAP_PRIVATE:
        backing, name, offset = shared_zero(size), "/dev/zero (deleted)", 0
    elif not flags & MAP_ANONYMOUS:
        f = p.files.get(signed32(fd))
        if not isinstance(f, HostFile) or f.is_directory():
            raise SysError(errno.ENODEV)
        if f.flags & 3 == 1:                      # O_WRONLY
            raise SysError(errno.EACCES)
        shared_write = kind != MAP_PRIVATE and prot & PROT_WRITE
        if shared_write and f.flags & 3 != 2:     # a shared writable mapping needs O_RDWR
            raise SysError(errno.EACCES)
        if shared_write:
            k.fs.check_write()
        backing = FileBacking(f.host_path, f.path, fd=f.hostfd)
        name = f.path
    check_address_space(p, size)
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr % PAGE_SIZE or addr + size > a.user_top or addr < 0x10000:
            raise SysError(errno.EINVAL if addr % PAGE_SIZE else errno.ENOMEM)
        if not a.is_free(addr, addr + size):
            if flags & MAP_FIXED_NOREPLACE:
                raise SysError(errno.EEXIST)
            unmap_range(k, a, addr, addr + size, "munmap")
        start = addr
    else:
        start = a.find_free(size, addr)
        if not start:
            raise SysError(errno.ENOMEM)
    region = Region(start, start + size, prot, "mmap", backing=backing, offset=offset,
                    file_start=start, file_end=start + size, shared=kind != MAP_PRIVATE, name=name)
    a.add(region)
    return start


@syscall("munmap", "pu")
def sys_munmap(k: Kernel, p: Process, addr: int, length: int) -> int:
    if addr % PAGE_SIZE or not length or addr + length > p.aspace.user_top:
        raise SysError(errno.EINVAL)
    unmap_range(k, p.aspace, addr, addr + page_up(length), "munmap")
    return 0


@syscall("mprotect", "pux")
def sys_mprotect(k: Kernel, p: Process, addr: int, length: int, prot: int) -> int:
    a = p.aspace
    if addr % PAGE_SIZE or prot & ~PROT_ALL & ~0x3000000:
        raise SysError(errno.EINVAL)
    end = addr + page_up(length)
    if end > a.user_top:
        raise SysError(errno.ENOMEM)
    if end == addr:
        return 0
    check_mapped(a, addr, end)
    changed = []
    for region in a.carve(addr, end):
        region.prot = prot & PROT_ALL
        changed += a.protect_pages(region.start, region.end, region)
    invalidate_pages(k, a, changed, "mprotect")
    return 0


MADV_DONTNEED = 4
MADV_HINTS = {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}   # advice that only guides the kernel


@syscall("madvise", "pud")
def sys_madvise(k: Kernel, p: Process, addr: int, length: int, advice: int) -> int:
    if addr % PAGE_SIZE:
        raise SysError(errno.EINVAL)
    if advice == MADV_DONTNEED:
        gone = p.aspace.unmap_pages(addr, addr + page_up(length))
        invalidate_pages(k, p.aspace, gone, "munmap")
        return 0
    if advice in MADV_HINTS:
        return 0
    raise SysError(errno.EINVAL)


MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4


@syscall("msync", "pux")
def sys_msync(k: Kernel, p: Process, addr: int, length: int, flags: int) -> int:
    """Write back the dirty page-cache pages of shared mappings in the range."""
    if addr % PAGE_SIZE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or (flags & MS_ASYNC and flags & MS_SYNC):
        raise SysError(errno.EINVAL)
    a = p.aspace
    end = addr + page_up(length)
    check_mapped(a, addr, end)
    invalidate = lambda aspace, va: k.cpu.invalidate_page(va, aspace.asid, "msync")  # noqa: E731
    for _va, _slot, pte in list(a.pagetable.leaves(addr, end)):
        pfn = (pte & PTE_FRAME) >> PAGE_SHIFT
        if k.cache.is_cached(pfn):
            k.cache.writeback(pfn, invalidate)
    return 0


MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2


@syscall("mremap", "puuxp")
def sys_mremap(k: Kernel, p: Process, old: int, old_size: int, new_size: int, flags: int, new_addr: int) -> int:
    """Shrink a mapping in place, grow it in place when the space above is free, else move it (MAYMOVE)."""
    a = p.aspace
    if old % PAGE_SIZE or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED) or not new_size \
            or (flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE):
        raise SysError(errno.EINVAL)
    old_size, new_size = page_up(old_size), page_up(new_size)
    region = a.find(old)
    if region is None or region.start > old or old + old_size > region.end:
        raise SysError(errno.EFAULT)
    if flags & MREMAP_FIXED:
        if new_addr % PAGE_SIZE:
            raise SysError(errno.EINVAL)
        unmap_range(k, a, new_addr, new_addr + new_size, "munmap")
        return move_pages(k, a, old, old_size, new_size, new_addr)
    if new_size <= old_size:
        if new_size < old_size:
            unmap_range(k, a, old + new_size, old + old_size, "munmap")
        return old
    check_address_space(p, new_size - old_size)
    if old + old_size == region.end and a.is_free(region.end, old + new_size) and old + new_size <= a.user_top:
        a.resize(region, region.start, old + new_size)
        if region.backing is not None:
            region.file_end = max(region.file_end, old + new_size)
        return old
    if not flags & MREMAP_MAYMOVE:
        raise SysError(errno.ENOMEM)
    target = a.find_free(new_size)
    if not target:
        raise SysError(errno.ENOMEM)
    return move_pages(k, a, old, old_size, new_size, target)


def move_pages(k: Kernel, a: AddressSpace, old: int, old_size: int, new_size: int, target: int) -> int:
    """Move the mapping at [old, old+old_size) to target, growing it to new_size: the page-table entries
    move with it, so the frames (and their contents) follow without a copy."""
    parts = a.carve(old, old + old_size)
    first = parts[0]
    words = a.pagetable.words
    moved = []
    for va, slot, pte in list(a.pagetable.leaves(old, old + old_size)):
        words[slot] = 0
        a.pagetable.set(target + (va - old), pte)
        pfn = (pte & PTE_FRAME) >> PAGE_SHIFT
        if k.cache.is_cached(pfn):
            k.cache.remove_mapping(pfn, a, va)
            k.cache.add_mapping(pfn, a, target + (va - old))
        moved.append(va)
    for r in parts:
        a.remove(r)
    delta = target - old
    region = Region(target, target + new_size, first.prot, first.kind, backing=first.backing, offset=first.offset,
                    file_start=first.file_start + delta, file_end=max(first.file_end + delta, target + new_size)
                    if first.backing is not None else 0, shared=first.shared, name=first.name)
    a.add(region)
    invalidate_pages(k, a, moved, "munmap")
    return target
