"""Physical RAM: one flat region of host memory, handed out in 4 KiB frames.

Each frame has an owner tag (what it holds) and a reference count (how many
mappings or kernel objects use it). Running out of frames raises OutOfMemory,
which the OS model turns into an out-of-memory kill; it is never a crash.
"""

from __future__ import annotations

import ctypes
import enum
import mmap
import signal
import threading
import weakref
from array import array

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ZERO_BYTES = bytes(PAGE_SIZE)
MADV_POPULATE_WRITE = 23          # Linux 5.14: fault a range of a mapping in, writable, in one call
POPULATE_START = 2048             # never-used frames handed out before the host memory is populated ahead
POPULATE_CHUNK = 512              # frames (2 MiB) per populate call
POPULATE_AHEAD = 8192             # how far (32 MiB) beyond the next never-used frame to keep populated


class Owner(enum.IntEnum):
    """What a frame holds."""
    FREE = 0
    PAGE_TABLE = 1
    ANON = 2
    FILE = 3
    STACK = 4
    KERNEL = 5
    ZERO = 6


_FREE = int(Owner.FREE)


class OutOfMemory(Exception):
    """No free frame is left."""


class PhysicalMemory:
    """Frames of emulated RAM with owner tags and reference counts.

    `view` is a memoryview of the bytes and `words` the same memory as 64-bit
    words (a page-table entry at physical address p is `words[p >> 3]`).
    Frame 0 is never handed out, so a zero physical address always means "none".
    """

    def __init__(self, size: int):
        if size < 16 * PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"physical memory must be a multiple of 4 KiB and at least 64 KiB, not {size}")
        self.size = size
        self.nframes = size >> PAGE_SHIFT
        self.mmap = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0))
        self.view = memoryview(self.mmap)
        self.words = self.view.cast("Q")
        self.owner = bytearray(self.nframes)
        self.refcount = array("I", bytes(4 * self.nframes))
        # Frames are handed out freed-first (the last freed is the first reused), else the lowest never used:
        # `_free` stacks the freed ones, `_fresh` is the next never-used frame (still zero from the host).
        self._free: list[int] = []
        self._fresh = 1
        self.owner[0] = Owner.KERNEL
        self.code = bytearray(self.nframes)   # 1 if the CPU may have translated code from the frame
        self.code_freed = False               # a code frame was freed: translated code must be dropped
        self._populator: Populator | None = None
        self._populate_at = POPULATE_START    # the never-used frame at which to ask for more host memory

    @property
    def free_frames(self) -> int:
        """How many frames are free."""
        return len(self._free) + self.nframes - self._fresh

    @property
    def used_frames(self) -> int:
        """How many frames are allocated (frame 0 excluded)."""
        return self._fresh - 1 - len(self._free)

    @property
    def peak_used(self) -> int:
        """The most frames ever allocated at once (frame 0 excluded): a never-used frame is taken only
        when no freed one is left, that is with every frame below it in use."""
        return self._fresh - 1

    def alloc(self, owner: Owner, zero: bool = True) -> int:
        """Take a free frame for `owner` with reference count 1; zero it unless told not to."""
        free = self._free
        if free:
            pfn = free.pop()
            if zero:
                base = pfn << PAGE_SHIFT
                self.view[base:base + PAGE_SIZE] = ZERO_BYTES
        else:
            pfn = self._fresh
            if pfn >= self.nframes:
                raise OutOfMemory(f"out of physical memory ({self.nframes} frames)")
            self._fresh = pfn + 1
            if pfn >= self._populate_at:
                self._populate_ahead(pfn)
        self.owner[pfn] = owner
        self.refcount[pfn] = 1
        return pfn

    def _populate_ahead(self, pfn: int) -> None:
        """A program is using many new frames: have the host's memory behind the next ones faulted in by a
        background thread (the host kernel's page faults on first touch are a large part of a demand-zero
        fault's cost), so the emulated CPU finds them ready. Guest-visible behaviour does not change."""
        self._populate_at = pfn + POPULATE_CHUNK
        if self._populator is None:
            self._populator = Populator(self.mmap)
            weakref.finalize(self, self._populator.stop)
        self._populator.request(min(pfn + POPULATE_AHEAD, self.nframes))

    def get(self, pfn: int) -> None:
        """Take one more reference to an allocated frame."""
        self.refcount[pfn] += 1

    def put(self, pfn: int) -> bool:
        """Drop one reference; free the frame when none is left. True if it was freed."""
        count = self.refcount[pfn] - 1
        if count > 0:
            self.refcount[pfn] = count
            return False
        if count < 0:
            raise AssertionError(f"frame {pfn:#x} freed twice")
        self.refcount[pfn] = 0
        self.owner[pfn] = _FREE
        self._free.append(pfn)
        if self.code[pfn]:
            self.code[pfn] = 0
            self.code_freed = True
        return True

    def get_many(self, pfns: list[int]) -> None:
        """get() each frame of `pfns` in turn."""
        refcount = self.refcount
        for pfn in pfns:
            refcount[pfn] += 1

    def put_many(self, pfns: list[int]) -> None:
        """put() each frame of `pfns` in turn."""
        refcount, owner, free, code = self.refcount, self.owner, self._free, self.code
        for pfn in pfns:
            count = refcount[pfn] - 1
            if count > 0:
                refcount[pfn] = count
                continue
            if count < 0:
                raise AssertionError(f"frame {pfn:#x} freed twice")
            refcount[pfn] = 0
            owner[pfn] = _FREE
            free.append(pfn)
            if code[pfn]:
                code[pfn] = 0
                self.code_freed = True

    def frame(self, pfn: int) -> memoryview:
        """The 4 KiB of frame `pfn`, writable."""
        base = pfn << PAGE_SHIFT
        return self.view[base:base + PAGE_SIZE]

    def copy_frame(self, dst: int, src: int) -> None:
        """Copy frame `src` into frame `dst`."""
        d, s = dst << PAGE_SHIFT, src << PAGE_SHIFT
        self.view[d:d + PAGE_SIZE] = self.view[s:s + PAGE_SIZE]

    def read(self, paddr: int, size: int) -> bytes:
        """Bytes at a physical address."""
        return bytes(self.view[paddr:paddr + size])

    def write(self, paddr: int, data: bytes) -> None:
        """Store bytes at a physical address."""
        self.view[paddr:paddr + len(data)] = data

    def frames_by_owner(self) -> dict[str, int]:
        """How many frames each owner holds (free included)."""
        counts = {o.name.lower(): 0 for o in Owner}
        for o in Owner:
            counts[o.name.lower()] = self.owner.count(o)
        counts["free"] = self.free_frames
        return counts


class Populator:
    """A daemon thread that faults host memory of RAM in, writable, up to the frame it is asked for
    (MADV_POPULATE_WRITE, in chunks, with the GIL released). It stops for good if the host refuses."""

    def __init__(self, ram: mmap.mmap):
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(ram))
        self._madvise = ctypes.CDLL(None, use_errno=True).madvise
        self._madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        self._done = 0                  # frames below this are populated
        self._want = 0
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="ram-populate", daemon=True).start()

    def request(self, upto: int) -> None:
        """Populate the frames below `upto` soon."""
        with self._wake:
            if upto > self._want:
                self._want = upto
                self._wake.notify()

    def stop(self) -> None:
        """End the thread (the RAM is going away)."""
        with self._wake:
            self._want = -1
            self._wake.notify()

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())   # signals to run-elf are not this thread's
        while True:
            with self._wake:
                while 0 <= self._want <= self._done:
                    self._wake.wait()
                if self._want < 0:
                    return
                start = max(self._done, self._want - POPULATE_AHEAD)
                end = min(start + POPULATE_CHUNK, self._want)
            if self._madvise(self._base + (start << PAGE_SHIFT), (end - start) << PAGE_SHIFT, MADV_POPULATE_WRITE):
                return                  # not supported by this host kernel (or out of host memory): stop
            self._done = end
