"""File system calls: descriptors, reads and writes, opening, stat, readlink, ioctl."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
from typing import TYPE_CHECKING

from osmodel.files import O_CLOEXEC, File, SysError, pack_stat
from osmodel.syscall import AT_FDCWD, signed, signed32, syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

MAX_IO = 1 << 20                     # the most one read/write moves at a time (a short count is allowed)
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
FIONREAD = 0x541B
IOV = struct.Struct("<QQ")


def guest_path(kernel: Kernel, proc: Process, dirfd: int, path: bytes) -> str:
    """The host path for a guest path relative to dirfd (AT_FDCWD: the process's working directory)."""
    if not path:
        raise SysError(errno.ENOENT)
    text = os.fsdecode(path)
    if text.startswith("/"):
        return text
    if text == "/proc/self/exe":
        return proc.exe
    base = proc.cwd if signed32(dirfd) == AT_FDCWD else proc.files.get(signed32(dirfd)).path
    return os.path.join(base, text)


def special_path(proc: Process, path: str) -> str:
    """Map the /proc/self names the guest may use onto what they mean for the guest."""
    if path in ("/proc/self/exe", f"/proc/{proc.pid}/exe"):
        return proc.exe
    return path


@syscall("read", "dBu")
def sys_read(k: Kernel, p: Process, fd: int, buf: int, count: int) -> int:
    f = p.files.get(signed32(fd))
    data = f.read(min(count, MAX_IO))
    k.copyout(p, buf, data)
    return len(data)


@syscall("write", "dbu")
def sys_write(k: Kernel, p: Process, fd: int, buf: int, count: int) -> int:
    f = p.files.get(signed32(fd))
    return f.write(k.copyin(p, buf, min(count, MAX_IO)))


@syscall("pread64", "dBud")
def sys_pread64(k: Kernel, p: Process, fd: int, buf: int, count: int, offset: int) -> int:
    data = p.files.get(signed32(fd)).pread(min(count, MAX_IO), signed(offset))
    k.copyout(p, buf, data)
    return len(data)


def iovecs(k: Kernel, p: Process, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """The (base, length) pairs of a user iovec array."""
    if signed32(iovcnt) < 0 or iovcnt > 1024:
        raise SysError(errno.EINVAL)
    raw = k.copyin(p, iov, IOV.size * iovcnt)
    return [IOV.unpack_from(raw, i * IOV.size) for i in range(iovcnt)]


@syscall("readv", "dpd")
def sys_readv(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    total = 0
    for base, length in iovecs(k, p, iov, iovcnt):
        if not length:
            continue
        data = f.read(min(length, MAX_IO))
        k.copyout(p, base, data)
        total += len(data)
        if len(data) < length:
            break
    return total


@syscall("writev", "dpd")
def sys_writev(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    data = b"".join(k.copyin(p, base, min(length, MAX_IO)) for base, length in iovecs(k, p, iov, iovcnt))
    return f.write(data) if data else 0


def open_file(k: Kernel, p: Process, dirfd: int, path: int, flags: int, mode: int) -> int:
    """openat: open a host file for the guest and give it the lowest free descriptor."""
    host = special_path(p, guest_path(k, p, dirfd, k.copyinstr(p, path)))
    hostfd = os.open(host, (flags & ~O_CLOEXEC) | os.O_CLOEXEC, mode & ~p.umask & 0o7777)
    return p.files.install(File(hostfd, host, flags), cloexec=bool(flags & O_CLOEXEC))


@syscall("open", "sfo")
def sys_open(k: Kernel, p: Process, path: int, flags: int, mode: int) -> int:
    return open_file(k, p, AT_FDCWD, path, flags, mode)


@syscall("openat", "Fsfo")
def sys_openat(k: Kernel, p: Process, dirfd: int, path: int, flags: int, mode: int) -> int:
    return open_file(k, p, dirfd, path, flags, mode)


@syscall("close", "d")
def sys_close(k: Kernel, p: Process, fd: int) -> int:
    p.files.close(signed32(fd))
    return 0


@syscall("lseek", "ddd")
def sys_lseek(k: Kernel, p: Process, fd: int, offset: int, whence: int) -> int:
    return p.files.get(signed32(fd)).lseek(signed(offset), whence)


@syscall("fstat", "dp")
def sys_fstat(k: Kernel, p: Process, fd: int, statbuf: int) -> int:
    k.copyout(p, statbuf, pack_stat(p.files.get(signed32(fd)).stat()))
    return 0


def stat_path(k: Kernel, p: Process, dirfd: int, path: int, flags: int) -> os.stat_result:
    """stat of a guest path (or of dirfd itself with AT_EMPTY_PATH and an empty path)."""
    name = k.copyinstr(p, path)
    if not name and flags & AT_EMPTY_PATH:
        if signed32(dirfd) == AT_FDCWD:
            return os.stat(p.cwd)
        return p.files.get(signed32(dirfd)).stat()
    host = special_path(p, guest_path(k, p, dirfd, name))
    return os.stat(host, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)


@syscall("newfstatat", "Fspx")
def sys_newfstatat(k: Kernel, p: Process, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    k.copyout(p, statbuf, pack_stat(stat_path(k, p, dirfd, path, flags)))
    return 0


@syscall("stat", "sp")
def sys_stat(k: Kernel, p: Process, path: int, statbuf: int) -> int:
    k.copyout(p, statbuf, pack_stat(stat_path(k, p, AT_FDCWD, path, 0)))
    return 0


@syscall("lstat", "sp")
def sys_lstat(k: Kernel, p: Process, path: int, statbuf: int) -> int:
    k.copyout(p, statbuf, pack_stat(stat_path(k, p, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)))
    return 0


def read_link(k: Kernel, p: Process, dirfd: int, path: int, buf: int, size: int) -> int:
    """readlinkat: the link's target, cut to size, not NUL-terminated; /proc/self/exe is the program."""
    if signed32(size) <= 0:
        raise SysError(errno.EINVAL)
    name = os.fsdecode(k.copyinstr(p, path))
    if name in ("/proc/self/exe", f"/proc/{p.pid}/exe"):
        target = os.fsencode(p.exe)
    else:
        target = os.fsencode(os.readlink(guest_path(k, p, dirfd, os.fsencode(name))))
    target = target[:size]
    k.copyout(p, buf, target)
    return len(target)


@syscall("readlink", "sBu")
def sys_readlink(k: Kernel, p: Process, path: int, buf: int, size: int) -> int:
    return read_link(k, p, AT_FDCWD, path, buf, size)


@syscall("readlinkat", "FsBu")
def sys_readlinkat(k: Kernel, p: Process, dirfd: int, path: int, buf: int, size: int) -> int:
    return read_link(k, p, dirfd, path, buf, size)


@syscall("ioctl", "dxp")
def sys_ioctl(k: Kernel, p: Process, fd: int, request: int, arg: int) -> int:
    f = p.files.get(signed32(fd))
    request &= 0xFFFF_FFFF
    if request in (TCGETS, TIOCGWINSZ):
        if not f.isatty():
            raise SysError(errno.ENOTTY)
        size = 60 if request == TCGETS else 8
        data = fcntl.ioctl(f.hostfd, termios.TCGETS if request == TCGETS else termios.TIOCGWINSZ, bytes(size))
        k.copyout(p, arg, data)
        return 0
    if request == FIONREAD:
        data = fcntl.ioctl(f.hostfd, termios.FIONREAD, bytes(4))
        k.copyout(p, arg, data)
        return 0
    raise SysError(errno.ENOTTY)


@syscall("access", "so")
def sys_access(k: Kernel, p: Process, path: int, mode: int) -> int:
    host = special_path(p, guest_path(k, p, AT_FDCWD, k.copyinstr(p, path)))
    if not os.access(host, mode & 7):
        raise SysError(errno.ENOENT if not os.path.lexists(host) else errno.EACCES)
    return 0


@syscall("faccessat", "Fso")
def sys_faccessat(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    host = special_path(p, guest_path(k, p, dirfd, k.copyinstr(p, path)))
    if not os.access(host, mode & 7):
        raise SysError(errno.ENOENT if not os.path.lexists(host) else errno.EACCES)
    return 0


@syscall("getcwd", "Bu")
def sys_getcwd(k: Kernel, p: Process, buf: int, size: int) -> int:
    cwd = os.fsencode(p.cwd) + b"\0"
    if len(cwd) > size:
        raise SysError(errno.ERANGE)
    k.copyout(p, buf, cwd)
    return len(cwd)
