"""File system calls: descriptors, reads and writes, opening, stat, readlink, ioctl."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat as statmod
import struct
import termios
from typing import TYPE_CHECKING, Callable

from osmodel.files import (FD_CLOEXEC, host_umask_zero, O_ACCMODE, O_CLOEXEC, O_PATH, Block, File, HostFile,
                           POLLIN, POLLOUT, Pipe, PipeEnd, SysError, pack_stat)
from osmodel import procfs
from osmodel.hostwait import before_io
from osmodel.signals import SIGXFSZ
from osmodel.sysproc import RLIMIT_FSIZE
from osmodel.syslock import LOCK_COMMANDS, fcntl_lock
from osmodel.syscall import AT_FDCWD, signed, signed32, syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

MAX_IO = 1 << 20                     # the most one read/write moves at a time (a short count is allowed)
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH, TIOCSCTTY, TIOCOUTQ, TIOCSWINSZ = 0x5409, 0x540A, 0x540B, 0x540E, 0x5411, 0x5414
TIOCGPGRP, TIOCSPGRP, TIOCNOTTY, TIOCGPTPEER = 0x540F, 0x5410, 0x5422, 0x5441
TIOCGPTN, TIOCSPTLCK, TIOCGPTLCK = 0x80045430, 0x40045431, 0x80045439     # a pty master's number and lock
KERNEL_TERMIOS_SIZE = 36      # the kernel's struct termios: 4 flag words, c_line, c_cc[19] (libc's is larger)
WINSIZE_SIZE = 8              # struct winsize: 4 shorts
TIOCGWINSZ = 0x5413
FIONREAD = 0x541B
FIONBIO = 0x5421
IOVEC = {64: struct.Struct("<QQ"), 32: struct.Struct("<II")}   # struct iovec by ABI: iov_base, iov_len
UIO_MAXIOV = 1024                    # the most buffers one call takes
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND, RWF_NOAPPEND = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
RWF_SUPPORTED = 0x3F                 # the preadv2/pwritev2 flags a guest file (a pipe, a socket) takes
TIMESPEC = struct.Struct("<qq")      # struct timespec (x86-64)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def absolute_path(k: Kernel, p: Process, dirfd: int, text: str, follow: bool) -> str:
    """A guest path made absolute against dirfd (AT_FDCWD: the working directory), with /dev/fd/N and
    /dev/std* taken as the /proc/self/fd links they are. A relative path needs dirfd to be a directory."""
    if text.startswith("/"):
        absolute = text
    elif signed32(dirfd) == AT_FDCWD:
        absolute = os.path.join(p.cwd, text)
    else:
        f = p.files.get(signed32(dirfd))
        if not isinstance(f, HostFile) or not f.is_directory():
            raise SysError(errno.ENOTDIR)
        absolute = os.path.join(f.path, text)
    return procfs.dev_alias(k, absolute, follow) if absolute.startswith("/dev/") else absolute


def namei(k: Kernel, p: Process, dirfd: int, path: bytes, follow: bool = True) -> tuple[str, str]:
    """(guest path, host path) of a guest path relative to dirfd (AT_FDCWD: the working directory).

    Resolution, and confinement under --root, is the FileSystem's; /proc/PID paths are the guest's
    own (osmodel.procfs): one naming a guest pipe or socket raises procfs.GuestFileError.
    """
    text = os.fsdecode(path)
    if not text:
        raise SysError(errno.ENOENT)
    absolute = absolute_path(k, p, dirfd, text, follow)
    if absolute.startswith("/proc/"):
        entry = procfs.lookup(k, p, absolute)
        if entry is not None:
            if entry.redirect is not None:
                return k.fs.resolve(entry.redirect, "/", follow)
            if entry.content is not None:
                return absolute, procfs.content_file(k, entry.content)
            if entry.file is not None:
                raise procfs.GuestFileError(entry.file)
            if entry.host is None:
                raise SysError(errno.ENXIO)
            return (entry.link or absolute), entry.host
    return k.fs.resolve(absolute, "/", follow)


def host_path(k: Kernel, p: Process, dirfd: int, path: bytes, follow: bool = True) -> str:
    """The host path namei finds."""
    return namei(k, p, dirfd, path, follow)[1]


@syscall("read", "dBu")
def sys_read(k: Kernel, p: Process, fd: int, buf: int, count: int) -> int:
    f = p.files.get(signed32(fd))
    before_io(k, p, f, POLLIN)
    data = f.read(min(count, MAX_IO))
    k.copyout(p, buf, data)
    return len(data)


def write_file(k: Kernel, f, data: bytes, offset: int | None = None, flags: int = 0) -> int:
    """Write to an open file (at offset for pwrite; with pwritev2's RWF_* flags, which a host file's host
    call takes); the page cache's copy of a regular file follows."""
    host = isinstance(f, HostFile)
    if offset is None:
        before_io(k, k.current, f, POLLOUT)
    if host and RLIMIT_FSIZE in k.current.rlimits:
        data = within_file_size_limit(k, f, data, offset)
    cached = host and k.cache.files and f.key() in k.cache.files
    at = offset if offset is not None else f.lseek(0, os.SEEK_CUR) if cached else 0
    if host and flags:
        n = os.pwritev(f.hostfd, [data], -1 if offset is None else offset, flags)
    elif host and offset is not None:
        n = os.pwrite(f.hostfd, data, offset)
    else:
        n = f.write(data)
    if cached and n > 0:
        if flags & RWF_APPEND or (f.flags & os.O_APPEND and not flags & RWF_NOAPPEND):
            # Linux appends even at an offset (pwrite's documented bug with O_APPEND)
            at = (f.lseek(0, os.SEEK_CUR) if offset is None else f.stat().st_size) - n
        k.cache.file_written(f.key(), at, data[:n])
    return n


def within_file_size_limit(k: Kernel, f: HostFile, data: bytes, offset: int | None) -> bytes:
    """The part of data a write to regular file f may store under the writer's RLIMIT_FSIZE: none past the
    limit, and a write that starts there fails with EFBIG after SIGXFSZ (Linux's generic_write_check_limits)."""
    st = f.stat()
    if not statmod.S_ISREG(st.st_mode):
        return data
    limit = k.current.rlimits[RLIMIT_FSIZE][0]
    pos = offset if offset is not None else st.st_size if f.flags & os.O_APPEND else f.lseek(0, os.SEEK_CUR)
    if pos >= limit:
        k.signal(k.current, SIGXFSZ)
        raise SysError(errno.EFBIG)
    return data[:limit - pos]


@syscall("write", "dbu")
def sys_write(k: Kernel, p: Process, fd: int, buf: int, count: int) -> int:
    f = p.files.get(signed32(fd))
    return write_file(k, f, k.copyin(p, buf, min(count, MAX_IO)))


@syscall("pwrite64", "dbud")
def sys_pwrite64(k: Kernel, p: Process, fd: int, buf: int, count: int, offset: int) -> int:
    f = p.files.get(signed32(fd))
    if signed(offset) < 0:
        raise SysError(errno.EINVAL)
    if not isinstance(f, HostFile):
        raise SysError(errno.ESPIPE)
    return write_file(k, f, k.copyin(p, buf, min(count, MAX_IO)), signed(offset))


@syscall("pread64", "dBud")
def sys_pread64(k: Kernel, p: Process, fd: int, buf: int, count: int, offset: int) -> int:
    data = p.files.get(signed32(fd)).pread(min(count, MAX_IO), signed(offset))
    k.copyout(p, buf, data)
    return len(data)


def iovecs(k: Kernel, p: Process, iov: int, iovcnt: int, bits: int = 64) -> list[tuple[int, int]]:
    """The (base, length) pairs of a user iovec array of the `bits`-bit ABI: EINVAL for more than UIO_MAXIOV
    of them, or a length negative as that ABI's ssize_t."""
    if signed32(iovcnt) < 0 or iovcnt > UIO_MAXIOV:
        raise SysError(errno.EINVAL)
    layout = IOVEC[bits]
    raw = k.copyin(p, iov, layout.size * iovcnt) if iovcnt else b""
    vectors = [layout.unpack_from(raw, i * layout.size) for i in range(iovcnt)]
    if any(length >> (bits - 1) for _, length in vectors):
        raise SysError(errno.EINVAL)
    return vectors


def read_vectors(k: Kernel, p: Process, f, vectors: list[tuple[int, int]]) -> int:
    """readv: one read of the buffers' total size, scattered over them in turn; the bytes read. (One read,
    as Linux's: a second could block after the first consumed data, or take a pipe's or socket's next
    message.)"""
    total = min(sum(length for _, length in vectors), MAX_IO)
    if not total:
        return 0
    before_io(k, p, f, POLLIN)
    return scatter(k, p, vectors, f.read(total))


def scatter(k: Kernel, p: Process, vectors: list[tuple[int, int]], data: bytes) -> int:
    """Copy data out over the buffers in turn; its length."""
    at = 0
    for base, length in vectors:
        if at >= len(data):
            break
        k.copyout(p, base, data[at:at + length])
        at += length
    return len(data)


def gather(k: Kernel, p: Process, vectors: list[tuple[int, int]]) -> bytes:
    """writev's data: the buffers' bytes, concatenated."""
    return b"".join(k.copyin(p, base, min(length, MAX_IO)) for base, length in vectors)


def positioned_file(p: Process, fd: int, offset: int | None, mode: int) -> File:
    """The file preadv/pwritev and their *2 variants act on (offset None: the file position, as readv and
    writev), in Linux's order: EINVAL for a negative offset, EBADF for a descriptor not open or not open
    for `mode` (O_RDONLY: reading, O_WRONLY: writing), ESPIPE for a pipe or socket at an offset."""
    if offset is not None and offset < 0:
        raise SysError(errno.EINVAL)
    f = p.files.get(signed32(fd))
    if offset is not None and not isinstance(f, HostFile):
        raise SysError(errno.ESPIPE)
    if f.flags & O_ACCMODE == (os.O_WRONLY if mode == os.O_RDONLY else os.O_RDONLY):
        raise SysError(errno.EBADF)
    return f


def current_or(offset: int) -> int | None:
    """preadv2's and pwritev2's offset: -1 means the file position (None)."""
    return None if offset == -1 else offset


def guest_flags(f: File, flags: int, io: Callable[[], int]) -> int:
    """Run io() on a guest file (a pipe, a socket) under preadv2/pwritev2 flags: EOPNOTSUPP for unknown
    ones, EAGAIN instead of waiting with RWF_NOWAIT (the rest are hints)."""
    if flags & ~RWF_SUPPORTED:
        raise SysError(errno.EOPNOTSUPP)
    try:
        return io()
    except Block:
        if flags & RWF_NOWAIT:
            raise SysError(errno.EAGAIN) from None
        raise


def preadv_file(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int | None, flags: int = 0,
                bits: int = 64) -> int:
    """preadv, preadv2: read into the buffers of the iovec array (of the `bits`-bit ABI's layout) in
    turn, at offset (None: the file position, as readv), with RWF_* flags; the bytes read."""
    f = positioned_file(p, fd, offset, os.O_RDONLY)
    vectors = iovecs(k, p, iov, iovcnt, bits)
    if not isinstance(f, HostFile):
        return guest_flags(f, flags, lambda: read_vectors(k, p, f, vectors))
    if offset is None and not flags:
        return read_vectors(k, p, f, vectors)
    left, buffers = MAX_IO, []
    for _, length in vectors:
        buffers.append(bytearray(min(length, left)))
        left -= len(buffers[-1])
    if left == MAX_IO:
        return 0
    n = os.preadv(f.hostfd, [b for b in buffers if b], -1 if offset is None else offset, flags)
    return scatter(k, p, vectors, b"".join(buffers)[:n])


def pwritev_file(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int | None, flags: int = 0,
                 bits: int = 64) -> int:
    """pwritev, pwritev2: write the buffers of the iovec array (of the `bits`-bit ABI) at offset (None: the
    file position, as writev), with RWF_* flags; the bytes written."""
    f = positioned_file(p, fd, offset, os.O_WRONLY)
    data = gather(k, p, iovecs(k, p, iov, iovcnt, bits))
    if not data:
        return 0
    if not isinstance(f, HostFile):
        return guest_flags(f, flags, lambda: write_file(k, f, data))
    return write_file(k, f, data, offset, flags)


@syscall("preadv", "dpuu")
def sys_preadv(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int) -> int:
    return preadv_file(k, p, fd, iov, iovcnt, signed(offset))


@syscall("pwritev", "dpuu")
def sys_pwritev(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int) -> int:
    return pwritev_file(k, p, fd, iov, iovcnt, signed(offset))


# (x86-64's preadv2 and pwritev2 take the offset whole in pos_l; pos_h is for 32-bit ABIs.)
@syscall("preadv2", "dpuuux")
def sys_preadv2(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int, _high: int, flags: int) -> int:
    return preadv_file(k, p, fd, iov, iovcnt, current_or(signed(offset)), flags & 0xFFFF_FFFF)


@syscall("pwritev2", "dpuuux")
def sys_pwritev2(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int, offset: int, _high: int, flags: int) -> int:
    return pwritev_file(k, p, fd, iov, iovcnt, current_or(signed(offset)), flags & 0xFFFF_FFFF)


@syscall("readv", "dpd")
def sys_readv(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    return read_vectors(k, p, f, iovecs(k, p, iov, iovcnt))


@syscall("writev", "dpd")
def sys_writev(k: Kernel, p: Process, fd: int, iov: int, iovcnt: int) -> int:
    f = p.files.get(signed32(fd))
    data = gather(k, p, iovecs(k, p, iov, iovcnt))
    return write_file(k, f, data) if data else 0


def open_file(k: Kernel, p: Process, dirfd: int, path: int, flags: int, mode: int) -> int:
    """openat: open a host file for the guest and give it the lowest free descriptor."""
    cloexec = bool(flags & O_CLOEXEC)
    try:
        guest, host = namei(k, p, dirfd, k.copyinstr(p, path), follow=not flags & os.O_NOFOLLOW)
    except procfs.GuestFileError as err:                 # /proc/self/fd/N of a pipe opens the pipe again
        if not isinstance(err.file, PipeEnd):
            raise
        end = err.file
        return p.files.install(k.fifos.open(p, end.pipe, flags, end.path, end.st, named=end.st is not None), cloexec)
    if flags & WRITE_FLAGS:
        k.fs.check_write()
    fifo = fifo_stat(host, flags)
    if fifo is not None:
        if not os.access(host, {os.O_RDONLY: os.R_OK, os.O_WRONLY: os.W_OK}.get(flags & 3, os.R_OK | os.W_OK)):
            raise SysError(errno.EACCES)
        return p.files.install(k.fifos.open(p, k.fifos.pipe(fifo), flags, guest, fifo), cloexec)
    with host_umask_zero():
        hostfd = os.open(host, (flags & ~O_CLOEXEC) | os.O_CLOEXEC, mode & ~p.umask & 0o7777)
    return p.files.install(HostFile(hostfd, guest, flags, host), cloexec=cloexec)


def fifo_stat(host: str, flags: int) -> os.stat_result | None:
    """The stat of the named pipe an open would open (a guest pipe, osmodel.fifo), None if it is not one
    (a host pipe reached through /proc/self/fd/N is opened on the host)."""
    if host.startswith("/proc/self/fd/"):
        return None
    try:
        st = os.stat(host, follow_symlinks=not flags & os.O_NOFOLLOW)
    except OSError:
        return None
    return st if statmod.S_ISFIFO(st.st_mode) and not flags & O_PATH else None


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
            return os.stat(k.fs.host_path(p.cwd))
        return p.files.get(signed32(dirfd)).stat()
    follow = not flags & AT_SYMLINK_NOFOLLOW
    try:
        return os.stat(host_path(k, p, dirfd, name, follow), follow_symlinks=follow)
    except procfs.GuestFileError as err:                 # /proc/self/fd/N of a pipe or socket
        return err.file.stat() if follow else procfs.link_stat(err.file)


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
    name = k.copyinstr(p, path)
    absolute = absolute_path(k, p, dirfd, os.fsdecode(name), follow=False) if name else ""
    entry = procfs.lookup(k, p, absolute) if absolute.startswith("/proc/") else None
    if entry is not None:
        if entry.link is None:
            raise SysError(errno.EINVAL)
        target = os.fsencode(entry.link)
    else:
        target = os.fsencode(os.readlink(host_path(k, p, dirfd, name, follow=False)))
    target = target[:size]
    k.copyout(p, buf, target)
    return len(target)


@syscall("readlink", "sBu")
def sys_readlink(k: Kernel, p: Process, path: int, buf: int, size: int) -> int:
    return read_link(k, p, AT_FDCWD, path, buf, size)


@syscall("readlinkat", "FsBu")
def sys_readlinkat(k: Kernel, p: Process, dirfd: int, path: int, buf: int, size: int) -> int:
    return read_link(k, p, dirfd, path, buf, size)


# Terminal requests served by the host terminal or pty behind a descriptor: request -> (bytes copied in,
# bytes copied out); neither: the argument is passed as a number.
TTY_PASSTHROUGH = {
    TCGETS: (0, KERNEL_TERMIOS_SIZE), TCSETS: (KERNEL_TERMIOS_SIZE, 0), TCSETSW: (KERNEL_TERMIOS_SIZE, 0),
    TCSETSF: (KERNEL_TERMIOS_SIZE, 0), TIOCGWINSZ: (0, WINSIZE_SIZE), TIOCSWINSZ: (WINSIZE_SIZE, 0),
    TIOCOUTQ: (0, 4), TIOCGPTN: (0, 4), TIOCGPTLCK: (0, 4), TIOCSPTLCK: (4, 0),
    TCSBRK: (0, 0), TCXONC: (0, 0), TCFLSH: (0, 0),
}
TTY_REQUESTS = set(TTY_PASSTHROUGH) | {TIOCSCTTY, TIOCNOTTY, TIOCGPTPEER, TIOCGPGRP, TIOCSPGRP}


def terminal_ioctl(k: Kernel, p: Process, f: HostFile, request: int, arg: int) -> int:
    """A terminal request on a host terminal or pty: passed to the host, except the controlling-terminal
    ones, which belong to the guest's sessions (TIOCSCTTY only for a session leader, as Linux)."""
    if request == TIOCSCTTY:
        if p.sid != p.pid:
            raise SysError(errno.EPERM)
        k.tty_pgrp[f.stat().st_rdev] = p.pgid
        return 0
    if request == TIOCNOTTY:
        return 0
    if request in (TIOCGPGRP, TIOCSPGRP):
        return foreground_group(k, p, f.stat().st_rdev, request, arg)
    if request == TIOCGPTPEER:               # the pty's other side, opened without a path
        hostfd = fcntl.ioctl(f.hostfd, TIOCGPTPEER, (arg & (O_ACCMODE | os.O_NOCTTY | os.O_NONBLOCK)) | O_CLOEXEC)
        peer = HostFile(hostfd, os.readlink(f"/proc/self/fd/{hostfd}"), arg & ~O_CLOEXEC)
        return p.files.install(peer, cloexec=bool(arg & O_CLOEXEC))
    size_in, size_out = TTY_PASSTHROUGH[request]
    if size_in:
        fcntl.ioctl(f.hostfd, request, k.copyin(p, arg, size_in))
    elif size_out:
        k.copyout(p, arg, fcntl.ioctl(f.hostfd, request, bytes(size_out)))
    else:
        fcntl.ioctl(f.hostfd, request, arg & 0xFFFF_FFFF)
    return 0


def foreground_group(k: Kernel, p: Process, tty: int, request: int, arg: int) -> int:
    """tcgetpgrp/tcsetpgrp on run-elf's terminal or a pty a guest session took: the guest's own foreground
    process group (kernel.tty_pgrp), which decides where run-elf sends a Ctrl-C (osmodel.hostsig)."""
    if tty != k.terminal and tty not in k.tty_pgrp:
        raise SysError(errno.ENOTTY)                  # no guest session's controlling terminal
    if request == TIOCGPGRP:
        k.copyout(p, arg, struct.pack("<i", k.tty_pgrp.get(tty, 0)))
        return 0
    pgrp = struct.unpack("<i", k.copyin(p, arg, 4))[0]
    if pgrp < 0:
        raise SysError(errno.EINVAL)
    members = [t for t in k.processes.values() if t.pgid == pgrp and t.alive]
    if not members:
        raise SysError(errno.ESRCH)
    if all(t.sid != p.sid for t in members):
        raise SysError(errno.EPERM)
    k.tty_pgrp[tty] = pgrp
    return 0


@syscall("ioctl", "dxp")
def sys_ioctl(k: Kernel, p: Process, fd: int, request: int, arg: int) -> int:
    f = p.files.get(signed32(fd))
    request &= 0xFFFF_FFFF
    if request in TTY_REQUESTS:
        if not f.isatty():
            raise SysError(errno.ENOTTY)
        return terminal_ioctl(k, p, f, request, arg)
    if request == FIONBIO:
        nonblock = int.from_bytes(k.copyin(p, arg, 4), "little") != 0
        f.flags = f.flags | os.O_NONBLOCK if nonblock else f.flags & ~os.O_NONBLOCK
        if isinstance(f, HostFile):
            host = fcntl.fcntl(f.hostfd, fcntl.F_GETFL)
            fcntl.fcntl(f.hostfd, fcntl.F_SETFL, host | os.O_NONBLOCK if nonblock else host & ~os.O_NONBLOCK)
        return 0
    if request == FIONREAD and not isinstance(f, HostFile):
        if isinstance(f, PipeEnd):
            count = len(f.pipe.buffer)
        elif hasattr(f, "unread"):
            count = f.unread()         # a socket's queued bytes
        else:
            raise SysError(errno.ENOTTY)
        k.copyout(p, arg, count.to_bytes(4, "little"))
        return 0
    if request == FIONREAD:
        data = fcntl.ioctl(f.hostfd, termios.FIONREAD, bytes(4))
        k.copyout(p, arg, data)
        return 0
    raise SysError(errno.ENOTTY)


def check_access(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    """access/faccessat: 0 if the real ids may access the path with mode (R_OK, W_OK, X_OK), as the host says."""
    try:
        host = host_path(k, p, dirfd, k.copyinstr(p, path))
    except procfs.GuestFileError:
        return 0                                  # a pipe or socket the process has open
    if not os.access(host, mode & 7):
        raise SysError(errno.ENOENT if not os.path.lexists(host) else errno.EACCES)
    return 0


@syscall("access", "so")
def sys_access(k: Kernel, p: Process, path: int, mode: int) -> int:
    return check_access(k, p, AT_FDCWD, path, mode)


@syscall("faccessat", "Fso")
def sys_faccessat(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    return check_access(k, p, dirfd, path, mode)


@syscall("getcwd", "Bu")
def sys_getcwd(k: Kernel, p: Process, buf: int, size: int) -> int:
    cwd = os.fsencode(p.cwd) + b"\0"
    if len(cwd) > size:
        raise SysError(errno.ERANGE)
    k.copyout(p, buf, cwd)
    return len(cwd)


# -- descriptors and pipes ----------------------------------------------------------------------

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_DUPFD_CLOEXEC = 1030
SETFL_MASK = os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_ASYNC", 0o20000) | getattr(os, "O_DIRECT", 0o40000) \
    | getattr(os, "O_NOATIME", 0o1000000)


def make_pipe(k: Kernel, p: Process, fds: int, flags: int) -> int:
    """pipe2: two descriptors on a new pipe, written to fds as int[2]."""
    if flags & ~(O_CLOEXEC | os.O_NONBLOCK | os.O_DIRECT):
        raise SysError(errno.EINVAL)
    pipe = Pipe(k.wakeup)
    nonblock = flags & os.O_NONBLOCK
    return install_pair(k, p, PipeEnd(pipe, os.O_RDONLY, nonblock), PipeEnd(pipe, os.O_WRONLY, nonblock),
                        bool(flags & O_CLOEXEC), fds)


def install_pair(k: Kernel, p: Process, first: File, second: File, cloexec: bool, out: int) -> int:
    """Give two new files descriptors and write them to `out` as int[2] (pipe, socketpair); 0, or
    the error, with neither descriptor left open."""
    fd0 = p.files.install(first, cloexec)
    try:
        fd1 = p.files.install(second, cloexec)
    except SysError:
        p.files.close(fd0)
        raise
    try:
        k.copyout(p, out, struct.pack("<ii", fd0, fd1))
    except Exception:
        p.files.close(fd0)
        p.files.close(fd1)
        raise
    return 0


@syscall("pipe", "p")
def sys_pipe(k: Kernel, p: Process, fds: int) -> int:
    return make_pipe(k, p, fds, 0)


@syscall("pipe2", "px")
def sys_pipe2(k: Kernel, p: Process, fds: int, flags: int) -> int:
    return make_pipe(k, p, fds, flags)


@syscall("dup", "d")
def sys_dup(k: Kernel, p: Process, fd: int) -> int:
    return p.files.install(p.files.get(signed32(fd)))


def dup_to(p: Process, old: int, new: int, flags: int) -> int:
    """dup3: make `new` refer to old's file."""
    old, new = signed32(old), signed32(new)
    file = p.files.get(old)
    if not 0 <= new < p.files.limit:
        raise SysError(errno.EBADF)
    if old != new:
        p.files.place(new, file, bool(flags & O_CLOEXEC))
    return new


@syscall("dup2", "dd")
def sys_dup2(k: Kernel, p: Process, old: int, new: int) -> int:
    if signed32(old) == signed32(new):
        p.files.get(signed32(old))
        return signed32(new)
    return dup_to(p, old, new, 0)


@syscall("dup3", "ddx")
def sys_dup3(k: Kernel, p: Process, old: int, new: int, flags: int) -> int:
    if signed32(old) == signed32(new) or flags & ~O_CLOEXEC:
        raise SysError(errno.EINVAL)
    return dup_to(p, old, new, flags)


@syscall("fcntl", "ddx")
def sys_fcntl(k: Kernel, p: Process, fd: int, cmd: int, arg: int) -> int:
    fd = signed32(fd)
    file = p.files.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if signed32(arg) < 0 or arg >= p.files.limit:
            raise SysError(errno.EINVAL)
        return p.files.install(file, cmd == F_DUPFD_CLOEXEC, lowest=arg)
    if cmd == F_GETFD:
        return FD_CLOEXEC if p.files.cloexec(fd) else 0
    if cmd == F_SETFD:
        p.files.set_cloexec(fd, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return file.flags
    if cmd == F_SETFL:
        file.flags = (file.flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        if isinstance(file, HostFile):
            host = fcntl.fcntl(file.hostfd, fcntl.F_GETFL)
            fcntl.fcntl(file.hostfd, fcntl.F_SETFL, (host & ~SETFL_MASK) | (arg & SETFL_MASK))
        return 0
    if cmd in LOCK_COMMANDS:
        return fcntl_lock(k, p, file, cmd, arg)
    raise SysError(errno.EINVAL)


@syscall("umask", "o")
def sys_umask(k: Kernel, p: Process, mask: int) -> int:
    old = p.umask
    p.umask = mask & 0o777
    return old


@syscall("chdir", "s")
def sys_chdir(k: Kernel, p: Process, path: int) -> int:
    guest, host = namei(k, p, AT_FDCWD, k.copyinstr(p, path))
    if not os.path.isdir(host):
        raise SysError(errno.ENOTDIR if os.path.exists(host) else errno.ENOENT)
    if not os.access(host, os.X_OK):
        raise SysError(errno.EACCES)
    p.cwd = k.fs.guest_of_host(os.path.realpath(host))     # as getcwd names it: links resolved
    return 0


@syscall("fchdir", "d")
def sys_fchdir(k: Kernel, p: Process, fd: int) -> int:
    file = p.files.get(signed32(fd))
    if not file.is_directory():
        raise SysError(errno.ENOTDIR)
    p.cwd = k.fs.guest_of_host(file.resolved_host_path())
    return 0


SYS_GETDENTS64 = 217
LIBC = ctypes.CDLL(None, use_errno=True)     # the host C library, for calls Python's os module lacks
LIBC.syscall.restype = ctypes.c_long


@syscall("getdents64", "dpu")
def sys_getdents64(k: Kernel, p: Process, fd: int, dirp: int, count: int) -> int:
    """The host's entries of a directory, in its own order, through the directory's host descriptor
    (the record format is the same linux_dirent64 the guest expects)."""
    data = dirents64(k, p, fd, count)
    k.copyout(p, dirp, data)
    return len(data)


def dirents64(k: Kernel, p: Process, fd: int, count: int) -> bytes:
    """Up to count bytes of the directory's next linux_dirent64 records (the guest's own for /proc)."""
    file = p.files.get(signed32(fd))
    if not isinstance(file, HostFile) or not file.is_directory():
        raise SysError(errno.ENOTDIR)
    size = min(count, MAX_IO)
    entries = procfs.listing(k, file.path) if file.path.startswith("/proc/") else None
    if entries is not None:
        return procfs.list_entries(file, entries, size)
    buf = ctypes.create_string_buffer(size)
    n = LIBC.syscall(SYS_GETDENTS64, file.hostfd, buf, size)
    if n < 0:
        raise SysError(ctypes.get_errno() or errno.EIO)
    data = buf.raw[:n]
    if os.path.normpath(file.host_path) == "/proc" and k.fs.root is None:
        data = procfs.list_proc(k, file, data, size)
    return data