"""The page cache: one frame per (file, page), shared by every mapping of that page.

Private mappings map a cached frame read-only until they write it (then the write fault
copies it); MAP_SHARED mappings map it writable and their stores reach the file when the
page is written back (msync, munmap, exit). Each cached frame keeps a reverse map, the
(address space, virtual page) pairs whose page tables point at it, so that writing back
and invalidating can find every mapping.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from vm.pagetable import PTE_DIRTY, PTE_FRAME
from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, PhysicalMemory

if TYPE_CHECKING:
    from osmodel.addrspace import AddressSpace


class FileBacking:
    """A host file as mappings see it: identity (device, inode), reads, and writes for MAP_SHARED."""

    def __init__(self, host_path: str, name: str, writable: bool = False, fd: int | None = None,
                 shmem: bool = False):
        self.path = name
        self.shmem = shmem          # memory, not a file: a first touch of a page reads nothing (a minor fault)
        if fd is None:
            fd = os.open(host_path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        else:
            fd = os.dup(fd)
        self.fd = fd
        st = os.fstat(fd)
        self.key = (st.st_dev, st.st_ino)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of the file at offset (short at end of file)."""
        return os.pread(self.fd, size, offset)

    def write(self, offset: int, data: bytes) -> None:
        """Store bytes in the file at offset, never past its current end (as a shared mapping's write-back)."""
        size = os.fstat(self.fd).st_size
        if offset < size:
            os.pwrite(self.fd, data[:size - offset], offset)

    def size(self) -> int:
        """The file's current size."""
        return os.fstat(self.fd).st_size

    def __del__(self) -> None:
        """The last region and cached page using this backing are gone: drop the host descriptor."""
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass


class PageCache:
    """Cached file pages of one machine, with reverse maps."""

    def __init__(self, ram: PhysicalMemory):
        self.ram = ram
        self.pages: dict[tuple[tuple[int, int], int], int] = {}   # (file key, page index) -> frame
        self.index: dict[int, tuple[tuple[int, int], int]] = {}   # frame -> (file key, page index)
        self.backings: dict[int, FileBacking] = {}                # frame -> a backing to write it back
        self.rmap: dict[int, set[tuple[AddressSpace, int]]] = {}  # frame -> mappings
        self.files: dict[tuple[int, int], int] = {}               # file key -> cached pages of it
        self.hits = 0
        self.misses = 0
        self.writebacks = 0

    def lookup(self, backing: FileBacking, index: int) -> int:
        """The cached frame of page `index` of the file, or 0."""
        return self.pages.get((backing.key, index), 0)

    def get(self, backing: FileBacking, index: int) -> tuple[int, bool]:
        """The frame holding page `index` of the file, read in on a miss; (frame, whether it was read)."""
        key = (backing.key, index)
        pfn = self.pages.get(key)
        if pfn:
            self.hits += 1
            return pfn, False
        self.misses += 1
        pfn = self.ram.alloc(Owner.FILE)
        data = backing.read(index << PAGE_SHIFT, PAGE_SIZE)
        base = pfn << PAGE_SHIFT
        self.ram.view[base:base + len(data)] = data
        self.pages[key] = pfn
        self.files[backing.key] = self.files.get(backing.key, 0) + 1
        self.index[pfn] = key
        self.backings[pfn] = backing
        self.rmap[pfn] = set()
        return pfn, True

    def add_mapping(self, pfn: int, aspace: AddressSpace, vaddr: int) -> None:
        """Record that aspace maps the cached frame at vaddr (the mapping holds a frame reference)."""
        self.rmap[pfn].add((aspace, vaddr))

    def remove_mapping(self, pfn: int, aspace: AddressSpace, vaddr: int) -> None:
        """Forget one mapping of a cached frame."""
        mappings = self.rmap.get(pfn)
        if mappings is not None:
            mappings.discard((aspace, vaddr))

    def is_cached(self, pfn: int) -> bool:
        """Whether the frame belongs to the cache."""
        return pfn in self.index

    def write_page(self, pfn: int) -> None:
        """Write a cached frame's bytes to its file."""
        _key, index = self.index[pfn]
        self.backings[pfn].write(index << PAGE_SHIFT, self.ram.read(pfn << PAGE_SHIFT, PAGE_SIZE))
        self.writebacks += 1

    def writeback(self, pfn: int, invalidate: Callable[[AddressSpace, int], None]) -> bool:
        """Write a cached frame to its file if any mapping dirtied it, clearing the dirty bits; True if written."""
        dirty = False
        for aspace, vaddr in list(self.rmap.get(pfn, ())):
            slot = aspace.pagetable.slot(vaddr)
            if slot < 0:
                continue
            pte = aspace.pagetable.words[slot]
            if pte & PTE_DIRTY and (pte & PTE_FRAME) >> PAGE_SHIFT == pfn:
                aspace.pagetable.words[slot] = pte & ~PTE_DIRTY
                invalidate(aspace, vaddr)
                dirty = True
        if dirty:
            self.write_page(pfn)
        return dirty

    def file_written(self, key: tuple[int, int], offset: int, data: bytes) -> None:
        """A write() reached the file: bring cached pages up to date so mappings see it, as Linux's cache is the file."""
        pos = 0
        while pos < len(data):
            index, at = divmod(offset + pos, PAGE_SIZE)
            n = min(len(data) - pos, PAGE_SIZE - at)
            pfn = self.pages.get((key, index))
            if pfn:
                base = (pfn << PAGE_SHIFT) + at
                self.ram.view[base:base + n] = data[pos:pos + n]
            pos += n

    def shrink(self) -> int:
        """Free cached frames nobody maps (memory is short); how many were freed."""
        freed = 0
        for pfn in [pfn for pfn, maps in self.rmap.items() if not maps and self.ram.refcount[pfn] == 1]:
            self.drop(pfn)
            freed += 1
        return freed

    def drop(self, pfn: int) -> None:
        """Take a frame out of the cache and release the cache's reference."""
        key = self.index.pop(pfn)
        del self.pages[key]
        self.files[key[0]] -= 1
        if not self.files[key[0]]:
            del self.files[key[0]]
        del self.rmap[pfn]
        self.backings.pop(pfn, None)
        self.ram.put(pfn)

    def clear(self) -> None:
        """Drop every cached frame (the machine shuts down)."""
        for pfn in list(self.index):
            self.drop(pfn)
