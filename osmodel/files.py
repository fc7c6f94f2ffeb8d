"""Open files and descriptor tables.

A guest descriptor is an index into the process's FdTable, never a host descriptor: each
File holds its own host descriptor (dup'ed for the standard streams), so a guest can only
reach what it opened through its own system calls or was given at start.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import struct
from dataclasses import dataclass, field

O_ACCMODE = 0o3
O_CLOEXEC = 0o2000000
FD_CLOEXEC = 1
MAX_FDS = 1024


class SysError(Exception):
    """A system call fails with this errno."""

    def __init__(self, code: int):
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


def pack_stat(st: os.stat_result) -> bytes:
    """A struct stat in the x86-64 Linux layout (144 bytes)."""
    return struct.pack("<QQQIIIiQqqqQQQQQQ24x",
                       st.st_dev, st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, 0,
                       getattr(st, "st_rdev", 0), st.st_size, st.st_blksize, st.st_blocks,
                       int(st.st_atime), st.st_atime_ns % 10**9,
                       int(st.st_mtime), st.st_mtime_ns % 10**9,
                       int(st.st_ctime), st.st_ctime_ns % 10**9)


class File:
    """An open file description backed by a host descriptor; shared by dup'ed and inherited descriptors."""

    def __init__(self, hostfd: int, path: str, flags: int):
        self.hostfd = hostfd
        self.path = path
        self.flags = flags & ~O_CLOEXEC
        self.refs = 0

    def read(self, size: int) -> bytes:
        """Up to size bytes from the current position."""
        return os.read(self.hostfd, size)

    def pread(self, size: int, offset: int) -> bytes:
        """Up to size bytes at offset."""
        return os.pread(self.hostfd, size, offset)

    def write(self, data: bytes) -> int:
        """Write data; the number of bytes written."""
        return os.write(self.hostfd, data)

    def lseek(self, offset: int, whence: int) -> int:
        """Move the position; the new position."""
        return os.lseek(self.hostfd, offset, whence)

    def stat(self) -> os.stat_result:
        """The host's fstat of this file."""
        return os.fstat(self.hostfd)

    def isatty(self) -> bool:
        """Whether this is a terminal."""
        return os.isatty(self.hostfd)

    def is_directory(self) -> bool:
        """Whether this is a directory."""
        return statmod.S_ISDIR(self.stat().st_mode)

    def release(self) -> None:
        """The last descriptor went away: close the host descriptor."""
        try:
            os.close(self.hostfd)
        except OSError:
            pass


class MappedFile:
    """The Backing of a file mapping: keeps its own host descriptor so it outlives the guest's close()."""

    def __init__(self, file: File):
        self.path = file.path
        self.hostfd = os.dup(file.hostfd)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes at offset (short at end of file)."""
        return os.pread(self.hostfd, size, offset)


@dataclass
class FdTable:
    """A process's descriptors: fd -> (File, close-on-exec)."""
    slots: dict[int, tuple[File, bool]] = field(default_factory=dict)

    def get(self, fd: int) -> File:
        """The File behind fd, or EBADF."""
        try:
            return self.slots[fd][0]
        except KeyError:
            raise SysError(errno.EBADF) from None

    def install(self, file: File, cloexec: bool = False, lowest: int = 0) -> int:
        """Give file the lowest free descriptor >= lowest."""
        fd = lowest
        while fd in self.slots:
            fd += 1
        if fd >= MAX_FDS:
            raise SysError(errno.EMFILE)
        self.place(fd, file, cloexec)
        return fd

    def place(self, fd: int, file: File, cloexec: bool = False) -> None:
        """Put file at descriptor fd, closing what was there."""
        if fd in self.slots:
            self.close(fd)
        file.refs += 1
        self.slots[fd] = (file, cloexec)

    def close(self, fd: int) -> None:
        """Close descriptor fd (EBADF if not open)."""
        try:
            file, _ = self.slots.pop(fd)
        except KeyError:
            raise SysError(errno.EBADF) from None
        file.refs -= 1
        if file.refs == 0:
            file.release()

    def close_all(self) -> None:
        """Close every descriptor."""
        for fd in list(self.slots):
            self.close(fd)
