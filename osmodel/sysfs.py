"""File-system calls that change the tree or read and change metadata: statx, faccessat2, the xattr
family, unlink/rmdir/rename/mkdir/link/symlink/mknod, chmod/chown/utimensat, truncate, fsync,
statfs, sendfile/copy_file_range, fadvise64.

Paths are resolved through sysfile.namei (so --root confinement holds); calls that name the last
component of a path as the object they remove, rename or create never follow a symbolic link there.
Every call that changes the file system calls k.fs.check_write() first (EROFS under --read-only),
except on a memfd, which is not part of the guest's file system. Most calls are forwarded to the
host's libc (through ctypes where Python's os module loses information, e.g. statx, utimensat with
UTIME_OMIT, renameat2), so the answers, errno values included, are the host kernel's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as statmod
import struct
from typing import TYPE_CHECKING

from osmodel.files import O_PATH, File, HostFile, PipeEnd, SysError, host_umask_zero
from osmodel.syscall import AT_FDCWD, signed, signed32, syscall
from osmodel import procfs
from osmodel.sysfile import LIBC, AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, MAX_IO, namei, open_file, write_file
from vm.ram import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

AT_EACCESS = 0x200
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_STATX_SYNC_TYPE = 0x6000
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536
XATTR_CREATE, XATTR_REPLACE = 1, 2
ST_RDONLY = 1
PIPEFS_MAGIC = 0x50495045

# struct statx (x86-64, 256 bytes): mask, blksize, attributes, nlink, uid, gid, mode, ino, size, blocks,
# attributes_mask, atime, btime, ctime, mtime (sec, nsec, pad), rdev major/minor, dev major/minor, mnt_id,
# dio_mem_align, dio_offset_align, spare.
STATX = struct.Struct("<IIQIIIH2xQQQQ" + "qIi" * 4 + "IIIIQII96x")
STATX_TYPE, STATX_MODE, STATX_NLINK, STATX_UID, STATX_GID = 0x1, 0x2, 0x4, 0x8, 0x10
STATX_BASIC_STATS = 0x7FF
STATX__RESERVED = 0x80000000
# struct statfs (x86-64, 120 bytes): type, bsize, blocks, bfree, bavail, files, ffree, fsid[2], namelen,
# frsize, flags, spare[4].
STATFS = struct.Struct("<qqQQQQQiiqqq32x")
STATFS_FLAGS_OFFSET = 80


def _libc(ret: int) -> int:
    """A libc call's result, or SysError with its errno."""
    if ret < 0:
        raise SysError(ctypes.get_errno() or errno.EIO)
    return ret


def is_memfd(f: File) -> bool:
    """Whether f is an anonymous memory file (memfd_create), outside the guest's file system."""
    return bool(getattr(f, "memfd", False))


def check_write_fd(k: Kernel, f: File) -> None:
    """check_write for a change made through a descriptor: a memfd or pipe is not on the guest's file system."""
    if isinstance(f, HostFile) and not is_memfd(f):
        k.fs.check_write()


def host_file(p: Process, fd: int, path_ok: bool = False) -> HostFile:
    """The HostFile behind fd (EBADF if not open, or if opened O_PATH and the call needs real access)."""
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        raise SysError(errno.EINVAL)
    if f.flags & O_PATH and not path_ok:
        raise SysError(errno.EBADF)
    return f


def guest_path(k: Kernel, p: Process, path: int) -> bytes:
    """A path argument (EFAULT for NULL, ENOENT for empty is namei's)."""
    if not path:
        raise SysError(errno.EFAULT)
    return k.copyinstr(p, path)


def lookup(k: Kernel, p: Process, dirfd: int, raw: bytes, follow: bool = True) -> str:
    """The host path of a path naming an existing object (follow: whether a final symbolic link is followed)."""
    return namei(k, p, dirfd, raw, follow)[1]


def last_kind(raw: bytes) -> str:
    """What the last component of a path is: 'norm', 'dot', 'dotdot' or 'root' (as Linux's LAST_* types)."""
    stripped = raw.rstrip(b"/")
    if not stripped:
        return "root" if raw else "norm"
    return {b".": "dot", b"..": "dotdot"}.get(stripped.rsplit(b"/", 1)[-1], "norm")


def entry(k: Kernel, p: Process, dirfd: int, raw: bytes, errors: dict[str, int] | int) -> str:
    """The host path of a directory entry a call removes, renames or creates: the last component is never
    followed, and a last component of '.', '..' or '/' fails with the errno Linux gives for that call."""
    kind = last_kind(raw)
    if kind != "norm":
        raise SysError(errors if isinstance(errors, int) else errors[kind])
    host = namei(k, p, dirfd, raw, follow=False)[1]
    if k.fs.root is not None and raw.endswith(b"/"):
        # Resolution inside the root drops the trailing slash: it still demands a directory.
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return host
        if not statmod.S_ISDIR(st.st_mode):
            raise SysError(errno.ENOTDIR)
    return host


def fs_path(raw_host: str) -> bytes:
    return os.fsencode(raw_host)


# -- statx ----------------------------------------------------------------------------------------

LIBC.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]


def statx_of_stat(st: os.stat_result) -> bytes:
    """A struct statx built from a stat result (for pipes, or a host without statx): the basic stats."""
    def ts(ns_total: int | None, seconds: float) -> tuple[int, int, int]:
        ns_total = ns_total if ns_total is not None else int(seconds * 10**9)
        return ns_total // 10**9, ns_total % 10**9, 0
    rdev = getattr(st, "st_rdev", 0) or 0
    times = (*ts(getattr(st, "st_atime_ns", None), st.st_atime), 0, 0, 0,
             *ts(getattr(st, "st_ctime_ns", None), st.st_ctime), *ts(getattr(st, "st_mtime_ns", None), st.st_mtime))
    return STATX.pack(STATX_BASIC_STATS, getattr(st, "st_blksize", 4096) or 4096, 0, st.st_nlink, st.st_uid,
                      st.st_gid, st.st_mode, st.st_ino, st.st_size, getattr(st, "st_blocks", 0) or 0, 0, *times,
                      os.major(rdev), os.minor(rdev), os.major(st.st_dev), os.minor(st.st_dev), 0, 0, 0)


def host_statx(dirfd: int, path: bytes, flags: int, mask: int, fallback) -> bytes:
    """The host's struct statx, or one built from os.stat if the host has no statx."""
    buf = ctypes.create_string_buffer(STATX.size)
    if LIBC.statx(dirfd, path, flags, mask, buf) < 0:
        code = ctypes.get_errno()
        if code != errno.ENOSYS:
            raise SysError(code)
        return statx_of_stat(fallback())
    return buf.raw


@syscall("statx", "Fsxxp")
def sys_statx(k: Kernel, p: Process, dirfd: int, path: int, flags: int, mask: int, buf: int) -> int:
    """statx as the host's kernel answers it for the resolved path (or descriptor): the same stx_mask,
    attributes, birth time and mount id as natively; for a pipe the basic stats of its fstat."""
    flags &= 0xFFFF_FFFF
    mask &= 0xFFFF_FFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE) \
            or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & STATX__RESERVED:
        raise SysError(errno.EINVAL)
    name = guest_path(k, p, path)
    host_flags = flags & (AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)
    if not name and flags & AT_EMPTY_PATH:
        if signed32(dirfd) == AT_FDCWD:
            host = k.fs.host_path(p.cwd)
            data = host_statx(AT_FDCWD, fs_path(host), host_flags, mask, lambda: os.stat(host))
        else:
            f = p.files.get(signed32(dirfd))
            if isinstance(f, HostFile):
                data = host_statx(f.hostfd, b"", host_flags | AT_EMPTY_PATH, mask, f.stat)
            else:
                data = statx_of_stat(f.stat())
    else:
        follow = not flags & AT_SYMLINK_NOFOLLOW
        try:
            host = lookup(k, p, dirfd, name, follow)
        except procfs.GuestFileError as err:         # /proc/self/fd/N of a pipe or socket
            data = statx_of_stat(err.file.stat() if follow else procfs.link_stat(err.file))
        else:
            data = host_statx(AT_FDCWD, fs_path(host), host_flags, mask,
                              lambda: os.stat(host, follow_symlinks=follow))
    k.copyout(p, buf, data)
    return 0


# -- access ---------------------------------------------------------------------------------------

LIBC.faccessat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]


@syscall("faccessat2", "Fsox")
def sys_faccessat2(k: Kernel, p: Process, dirfd: int, path: int, mode: int, flags: int) -> int:
    """access with flags (AT_EACCESS, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH), answered by the host; a
    write check on a regular file, directory or link fails with EROFS under --read-only, as on a
    read-only mount."""
    flags &= 0xFFFF_FFFF
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    name = guest_path(k, p, path)
    host_flags = flags & (AT_EACCESS | AT_SYMLINK_NOFOLLOW)
    if not name and flags & AT_EMPTY_PATH:
        if signed32(dirfd) == AT_FDCWD:
            target, where = fs_path(k.fs.host_path(p.cwd)), AT_FDCWD
        else:
            f = p.files.get(signed32(dirfd))
            if not isinstance(f, HostFile):
                return 0
            target, where, host_flags = b"", f.hostfd, host_flags | AT_EMPTY_PATH
    else:
        try:
            target, where = fs_path(lookup(k, p, dirfd, name, not flags & AT_SYMLINK_NOFOLLOW)), AT_FDCWD
        except procfs.GuestFileError:
            return 0                              # a pipe or socket the process has open
    _libc(LIBC.faccessat(where, target, mode, host_flags))
    if mode & os.W_OK and k.fs.read_only:
        if where == AT_FDCWD:
            st = os.stat(target, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)
        elif is_memfd(p.files.get(signed32(dirfd))):
            return 0
        else:
            st = os.fstat(where)
        if statmod.S_ISREG(st.st_mode) or statmod.S_ISDIR(st.st_mode) or statmod.S_ISLNK(st.st_mode):
            raise SysError(errno.EROFS)
    return 0


# -- extended attributes --------------------------------------------------------------------------

def xattr_name(k: Kernel, p: Process, addr: int) -> str:
    """An attribute name: ERANGE if empty or longer than XATTR_NAME_MAX, as Linux."""
    name = k.copyinstr(p, addr, XATTR_NAME_MAX + 2)
    if not name or len(name) > XATTR_NAME_MAX:
        raise SysError(errno.ERANGE)
    return os.fsdecode(name)


def xattr_target(k: Kernel, p: Process, where: int, follow: bool | None):
    """What os.*xattr acts on: a host path (follow given) or a host descriptor (follow None: an fd call)."""
    if follow is None:
        f = p.files.get(signed32(where))
        if not isinstance(f, HostFile) or f.flags & O_PATH:
            raise SysError(errno.EBADF if isinstance(f, HostFile) else errno.EOPNOTSUPP)
        return f.hostfd, f
    try:
        return lookup(k, p, AT_FDCWD, guest_path(k, p, where), follow), None
    except procfs.GuestFileError:
        raise SysError(errno.EOPNOTSUPP) from None      # a pipe or socket through /proc/PID/fd/N


def get_xattr(k: Kernel, p: Process, where: int, name: int, value: int, size: int, follow: bool | None) -> int:
    """getxattr: the value's length; the value itself if size is not 0 (ERANGE if it does not fit)."""
    target, _ = xattr_target(k, p, where, follow)
    attr = xattr_name(k, p, name)
    data = os.getxattr(target, attr, follow_symlinks=follow is not False) if follow is not None \
        else os.getxattr(target, attr)
    if size:
        if len(data) > min(size, XATTR_SIZE_MAX):
            raise SysError(errno.ERANGE)
        k.copyout(p, value, data)
    return len(data)


@syscall("getxattr", "sspu")
def sys_getxattr(k: Kernel, p: Process, path: int, name: int, value: int, size: int) -> int:
    """Forwarded to the host: ENODATA for an attribute the file has not, EOPNOTSUPP where the file
    system has none, as natively."""
    return get_xattr(k, p, path, name, value, size, True)


@syscall("lgetxattr", "sspu")
def sys_lgetxattr(k: Kernel, p: Process, path: int, name: int, value: int, size: int) -> int:
    return get_xattr(k, p, path, name, value, size, False)


@syscall("fgetxattr", "dspu")
def sys_fgetxattr(k: Kernel, p: Process, fd: int, name: int, value: int, size: int) -> int:
    return get_xattr(k, p, fd, name, value, size, None)


def list_xattr(k: Kernel, p: Process, where: int, buf: int, size: int, follow: bool | None) -> int:
    """listxattr: the NUL-separated names' total length; the names too if size is not 0."""
    target, _ = xattr_target(k, p, where, follow)
    names = os.listxattr(target, follow_symlinks=follow is not False) if follow is not None \
        else os.listxattr(target)
    data = b"".join(os.fsencode(n) + b"\0" for n in names)
    if len(data) > XATTR_LIST_MAX:
        raise SysError(errno.E2BIG)
    if size:
        if len(data) > size:
            raise SysError(errno.ERANGE)
        k.copyout(p, buf, data)
    return len(data)


@syscall("listxattr", "spu")
def sys_listxattr(k: Kernel, p: Process, path: int, buf: int, size: int) -> int:
    return list_xattr(k, p, path, buf, size, True)


@syscall("llistxattr", "spu")
def sys_llistxattr(k: Kernel, p: Process, path: int, buf: int, size: int) -> int:
    return list_xattr(k, p, path, buf, size, False)


@syscall("flistxattr", "dpu")
def sys_flistxattr(k: Kernel, p: Process, fd: int, buf: int, size: int) -> int:
    return list_xattr(k, p, fd, buf, size, None)


def set_xattr(k: Kernel, p: Process, where: int, name: int, value: int, size: int, flags: int,
              follow: bool | None) -> int:
    """setxattr: create or replace (XATTR_CREATE / XATTR_REPLACE) an attribute on the host file."""
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise SysError(errno.EINVAL)
    target, f = xattr_target(k, p, where, follow)
    attr = xattr_name(k, p, name)
    if size > XATTR_SIZE_MAX:
        raise SysError(errno.E2BIG)
    data = k.copyin(p, value, size) if size else b""
    if f is not None:
        check_write_fd(k, f)
        os.setxattr(target, attr, data, flags)
    else:
        k.fs.check_write()
        os.setxattr(target, attr, data, flags, follow_symlinks=follow)
    return 0


@syscall("setxattr", "sspux")
def sys_setxattr(k: Kernel, p: Process, path: int, name: int, value: int, size: int, flags: int) -> int:
    return set_xattr(k, p, path, name, value, size, flags, True)


@syscall("lsetxattr", "sspux")
def sys_lsetxattr(k: Kernel, p: Process, path: int, name: int, value: int, size: int, flags: int) -> int:
    return set_xattr(k, p, path, name, value, size, flags, False)


@syscall("fsetxattr", "dspux")
def sys_fsetxattr(k: Kernel, p: Process, fd: int, name: int, value: int, size: int, flags: int) -> int:
    return set_xattr(k, p, fd, name, value, size, flags, None)


def remove_xattr(k: Kernel, p: Process, where: int, name: int, follow: bool | None) -> int:
    target, f = xattr_target(k, p, where, follow)
    attr = xattr_name(k, p, name)
    if f is not None:
        check_write_fd(k, f)
        os.removexattr(target, attr)
    else:
        k.fs.check_write()
        os.removexattr(target, attr, follow_symlinks=follow)
    return 0


@syscall("removexattr", "ss")
def sys_removexattr(k: Kernel, p: Process, path: int, name: int) -> int:
    return remove_xattr(k, p, path, name, True)


@syscall("lremovexattr", "ss")
def sys_lremovexattr(k: Kernel, p: Process, path: int, name: int) -> int:
    return remove_xattr(k, p, path, name, False)


@syscall("fremovexattr", "ds")
def sys_fremovexattr(k: Kernel, p: Process, fd: int, name: int) -> int:
    return remove_xattr(k, p, fd, name, None)


# -- removing, renaming, creating entries ---------------------------------------------------------

def unlink_entry(k: Kernel, p: Process, dirfd: int, path: int) -> int:
    k.fs.check_write()
    os.unlink(entry(k, p, dirfd, guest_path(k, p, path), errno.EISDIR))
    return 0


def rmdir_entry(k: Kernel, p: Process, dirfd: int, path: int) -> int:
    k.fs.check_write()
    raw = guest_path(k, p, path)
    host = entry(k, p, dirfd, raw, {"dot": errno.EINVAL, "dotdot": errno.ENOTEMPTY, "root": errno.EBUSY})
    if k.fs.root is not None and host == k.fs.root:
        raise SysError(errno.EBUSY)
    os.rmdir(host)
    return 0


@syscall("unlink", "s")
def sys_unlink(k: Kernel, p: Process, path: int) -> int:
    return unlink_entry(k, p, AT_FDCWD, path)


@syscall("rmdir", "s")
def sys_rmdir(k: Kernel, p: Process, path: int) -> int:
    return rmdir_entry(k, p, AT_FDCWD, path)


@syscall("unlinkat", "Fsx")
def sys_unlinkat(k: Kernel, p: Process, dirfd: int, path: int, flags: int) -> int:
    """unlink, or rmdir with AT_REMOVEDIR."""
    if flags & ~AT_REMOVEDIR:
        raise SysError(errno.EINVAL)
    return rmdir_entry(k, p, dirfd, path) if flags & AT_REMOVEDIR else unlink_entry(k, p, dirfd, path)


LIBC.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def rename_entry(k: Kernel, p: Process, olddirfd: int, old: int, newdirfd: int, new: int, flags: int) -> int:
    """renameat2 with flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE (RENAME_WHITEOUT is the host's answer)."""
    flags &= 0xFFFF_FFFF
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) \
            or (flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
        raise SysError(errno.EINVAL)
    k.fs.check_write()
    src = entry(k, p, olddirfd, guest_path(k, p, old), errno.EBUSY)
    dst = entry(k, p, newdirfd, guest_path(k, p, new), errno.EBUSY)
    if flags:
        _libc(LIBC.renameat2(AT_FDCWD, fs_path(src), AT_FDCWD, fs_path(dst), flags))
    else:
        os.rename(src, dst)
    return 0


@syscall("rename", "ss")
def sys_rename(k: Kernel, p: Process, old: int, new: int) -> int:
    return rename_entry(k, p, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("renameat", "FsFs")
def sys_renameat(k: Kernel, p: Process, olddirfd: int, old: int, newdirfd: int, new: int) -> int:
    return rename_entry(k, p, olddirfd, old, newdirfd, new, 0)


@syscall("renameat2", "FsFsx")
def sys_renameat2(k: Kernel, p: Process, olddirfd: int, old: int, newdirfd: int, new: int, flags: int) -> int:
    return rename_entry(k, p, olddirfd, old, newdirfd, new, flags)


def make_dir(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    """mkdir with mode & ~umask (the process's umask, not run-elf's)."""
    k.fs.check_write()
    host = entry(k, p, dirfd, guest_path(k, p, path), errno.EEXIST)
    with host_umask_zero():
        os.mkdir(host, mode & 0o1777 & ~p.umask)
    return 0


@syscall("mkdir", "so")
def sys_mkdir(k: Kernel, p: Process, path: int, mode: int) -> int:
    return make_dir(k, p, AT_FDCWD, path, mode)


@syscall("mkdirat", "Fso")
def sys_mkdirat(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    return make_dir(k, p, dirfd, path, mode)


def make_node(k: Kernel, p: Process, dirfd: int, path: int, mode: int, dev: int) -> int:
    """mknod: regular files and FIFOs (device nodes as the host allows them); permissions & ~umask."""
    kind = statmod.S_IFMT(mode) or statmod.S_IFREG
    if kind == statmod.S_IFDIR:
        raise SysError(errno.EPERM)
    if kind not in (statmod.S_IFREG, statmod.S_IFIFO, statmod.S_IFCHR, statmod.S_IFBLK, statmod.S_IFSOCK):
        raise SysError(errno.EINVAL)
    k.fs.check_write()
    host = entry(k, p, dirfd, guest_path(k, p, path), errno.EEXIST)
    with host_umask_zero():
        os.mknod(host, kind | (mode & 0o7777 & ~p.umask), dev & 0xFFFF_FFFF)
    return 0


@syscall("mknod", "sox")
def sys_mknod(k: Kernel, p: Process, path: int, mode: int, dev: int) -> int:
    return make_node(k, p, AT_FDCWD, path, mode, dev)


@syscall("mknodat", "Fsox")
def sys_mknodat(k: Kernel, p: Process, dirfd: int, path: int, mode: int, dev: int) -> int:
    return make_node(k, p, dirfd, path, mode, dev)


@syscall("creat", "so")
def sys_creat(k: Kernel, p: Process, path: int, mode: int) -> int:
    return open_file(k, p, AT_FDCWD, path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)


def make_symlink(k: Kernel, p: Process, target: int, dirfd: int, path: int) -> int:
    """symlink: the target is stored as given (under --root it is resolved inside the root when followed)."""
    text = guest_path(k, p, target)
    if not text:
        raise SysError(errno.ENOENT)
    k.fs.check_write()
    os.symlink(text, entry(k, p, dirfd, guest_path(k, p, path), errno.EEXIST))
    return 0


@syscall("symlink", "ss")
def sys_symlink(k: Kernel, p: Process, target: int, path: int) -> int:
    return make_symlink(k, p, target, AT_FDCWD, path)


@syscall("symlinkat", "sFs")
def sys_symlinkat(k: Kernel, p: Process, target: int, dirfd: int, path: int) -> int:
    return make_symlink(k, p, target, dirfd, path)


LIBC.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


def make_link(k: Kernel, p: Process, olddirfd: int, old: int, newdirfd: int, new: int, flags: int) -> int:
    """linkat: a hard link; the old path's final link is followed only with AT_SYMLINK_FOLLOW."""
    flags &= 0xFFFF_FFFF
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    k.fs.check_write()
    raw = guest_path(k, p, old)
    dst = fs_path(entry(k, p, newdirfd, guest_path(k, p, new), errno.EEXIST))
    if not raw and flags & AT_EMPTY_PATH:
        f = host_file(p, olddirfd, path_ok=True)
        _libc(LIBC.linkat(f.hostfd, b"", AT_FDCWD, dst, AT_EMPTY_PATH))
        return 0
    src = fs_path(lookup(k, p, olddirfd, raw, follow=bool(flags & AT_SYMLINK_FOLLOW)))
    _libc(LIBC.linkat(AT_FDCWD, src, AT_FDCWD, dst, 0))
    return 0


@syscall("link", "ss")
def sys_link(k: Kernel, p: Process, old: int, new: int) -> int:
    return make_link(k, p, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("linkat", "FsFsx")
def sys_linkat(k: Kernel, p: Process, olddirfd: int, old: int, newdirfd: int, new: int, flags: int) -> int:
    return make_link(k, p, olddirfd, old, newdirfd, new, flags)


# -- permissions, owners, times -------------------------------------------------------------------

@syscall("chmod", "so")
def sys_chmod(k: Kernel, p: Process, path: int, mode: int) -> int:
    k.fs.check_write()
    os.chmod(lookup(k, p, AT_FDCWD, guest_path(k, p, path)), mode & 0o7777)
    return 0


@syscall("fchmodat", "Fso")
def sys_fchmodat(k: Kernel, p: Process, dirfd: int, path: int, mode: int) -> int:
    k.fs.check_write()
    os.chmod(lookup(k, p, dirfd, guest_path(k, p, path)), mode & 0o7777)
    return 0


@syscall("fchmod", "do")
def sys_fchmod(k: Kernel, p: Process, fd: int, mode: int) -> int:
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        return 0                      # a pipe's inode takes the mode and nobody can see it
    if f.flags & O_PATH:
        raise SysError(errno.EBADF)
    check_write_fd(k, f)
    os.fchmod(f.hostfd, mode & 0o7777)
    return 0


def owner_id(value: int) -> int:
    """A uid_t/gid_t argument: -1 (unchanged) or the id."""
    value &= 0xFFFF_FFFF
    return -1 if value == 0xFFFF_FFFF else value


def change_owner(k: Kernel, p: Process, dirfd: int, path: int, uid: int, gid: int, flags: int) -> int:
    flags &= 0xFFFF_FFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    raw = guest_path(k, p, path)
    if not raw and flags & AT_EMPTY_PATH:
        if signed32(dirfd) != AT_FDCWD:
            return sys_fchown(k, p, dirfd, uid, gid)
        k.fs.check_write()
        os.chown(k.fs.host_path(p.cwd), owner_id(uid), owner_id(gid))
        return 0
    k.fs.check_write()
    follow = not flags & AT_SYMLINK_NOFOLLOW
    os.chown(lookup(k, p, dirfd, raw, follow), owner_id(uid), owner_id(gid), follow_symlinks=follow)
    return 0


@syscall("chown", "sdd")
def sys_chown(k: Kernel, p: Process, path: int, uid: int, gid: int) -> int:
    return change_owner(k, p, AT_FDCWD, path, uid, gid, 0)


@syscall("lchown", "sdd")
def sys_lchown(k: Kernel, p: Process, path: int, uid: int, gid: int) -> int:
    return change_owner(k, p, AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall("fchownat", "Fsddx")
def sys_fchownat(k: Kernel, p: Process, dirfd: int, path: int, uid: int, gid: int, flags: int) -> int:
    return change_owner(k, p, dirfd, path, uid, gid, flags)


@syscall("fchown", "ddd")
def sys_fchown(k: Kernel, p: Process, fd: int, uid: int, gid: int) -> int:
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        return 0
    if f.flags & O_PATH:
        raise SysError(errno.EBADF)
    check_write_fd(k, f)
    os.fchown(f.hostfd, owner_id(uid), owner_id(gid))
    return 0


TIMESPEC2 = struct.Struct("<qqqq")      # struct timespec[2] (x86-64): atime, mtime
TIMEVAL2 = struct.Struct("<qqqq")       # struct timeval[2] (x86-64)
UTIMBUF = struct.Struct("<qq")          # struct utimbuf (x86-64): actime, modtime
LOFF_T = struct.Struct("<q")            # loff_t, as sendfile's offset
LIBC.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
LIBC.futimens.argtypes = [ctypes.c_int, ctypes.c_char_p]


def set_times(k: Kernel, p: Process, dirfd: int, path: bytes | None, times: bytes | None, flags: int) -> int:
    """utimensat with validated struct timespec[2] bytes (None: both now) on a path or, with path None, dirfd."""
    flags &= 0xFFFF_FFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    if times is not None:
        asec, ansec, msec, mnsec = TIMESPEC2.unpack(times)
        for nsec in (ansec, mnsec):
            if nsec not in (UTIME_NOW, UTIME_OMIT) and not 0 <= nsec < 10**9:
                raise SysError(errno.EINVAL)
        if ansec == UTIME_OMIT and mnsec == UTIME_OMIT:
            return 0                  # nothing to do: Linux does not even look the path up
    if path is None or (not path and flags & AT_EMPTY_PATH):
        if signed32(dirfd) == AT_FDCWD:
            if path is None:
                raise SysError(errno.EFAULT)
            k.fs.check_write()
            _libc(LIBC.utimensat(AT_FDCWD, fs_path(k.fs.host_path(p.cwd)), times, 0))
            return 0
        if path is None and flags:
            raise SysError(errno.EINVAL)
        f = p.files.get(signed32(dirfd))
        if not isinstance(f, HostFile):
            return 0
        check_write_fd(k, f)
        _libc(LIBC.futimens(f.hostfd, times))
        return 0
    k.fs.check_write()
    follow = not flags & AT_SYMLINK_NOFOLLOW
    host = lookup(k, p, dirfd, path, follow)
    _libc(LIBC.utimensat(AT_FDCWD, fs_path(host), times, 0 if follow else AT_SYMLINK_NOFOLLOW))
    return 0


@syscall("utimensat", "Fspx")
def sys_utimensat(k: Kernel, p: Process, dirfd: int, path: int, times: int, flags: int,
                  layout: struct.Struct = TIMESPEC2) -> int:
    """Set access and modification times (UTIME_NOW, UTIME_OMIT; NULL times: now; NULL path: dirfd itself)."""
    raw = k.copyinstr(p, path) if path else None
    return set_times(k, p, dirfd, raw, TIMESPEC2.pack(*layout.unpack(k.copyin(p, times, layout.size))) if times
                     else None, flags)


def timevals(k: Kernel, p: Process, tvp: int, layout: struct.Struct = TIMEVAL2) -> bytes | None:
    """The ABI's struct timeval[2] as struct timespec[2] bytes (EINVAL for microseconds out of range)."""
    if not tvp:
        return None
    asec, ausec, msec, musec = layout.unpack(k.copyin(p, tvp, layout.size))
    if not 0 <= ausec < 10**6 or not 0 <= musec < 10**6:
        raise SysError(errno.EINVAL)
    return TIMESPEC2.pack(asec, ausec * 1000, msec, musec * 1000)


@syscall("utimes", "sp")
def sys_utimes(k: Kernel, p: Process, path: int, tvp: int, layout: struct.Struct = TIMEVAL2) -> int:
    return set_times(k, p, AT_FDCWD, guest_path(k, p, path), timevals(k, p, tvp, layout), 0)


@syscall("futimesat", "Fsp")
def sys_futimesat(k: Kernel, p: Process, dirfd: int, path: int, tvp: int, layout: struct.Struct = TIMEVAL2) -> int:
    raw = k.copyinstr(p, path) if path else None
    return set_times(k, p, dirfd, raw, timevals(k, p, tvp, layout), 0)


@syscall("utime", "sp")
def sys_utime(k: Kernel, p: Process, path: int, buf: int, layout: struct.Struct = UTIMBUF) -> int:
    times = None
    if buf:
        atime, mtime = layout.unpack(k.copyin(p, buf, layout.size))
        times = TIMESPEC2.pack(atime, 0, mtime, 0)
    return set_times(k, p, AT_FDCWD, guest_path(k, p, path), times, 0)


# -- sizes and data -------------------------------------------------------------------------------

def cache_truncated(k: Kernel, key: tuple[int, int], size: int) -> None:
    """A file shrank: zero the cached bytes past its new end, so mappings and a later growth read zeros
    (Linux drops those pages and zeroes the tail of the last one)."""
    if key not in k.cache.files:
        return
    for (fkey, index), pfn in list(k.cache.pages.items()):
        if fkey != key:
            continue
        start = index << PAGE_SHIFT
        if start + PAGE_SIZE <= size:
            continue
        cut = max(size - start, 0)
        base = pfn << PAGE_SHIFT
        k.ram.view[base + cut:base + PAGE_SIZE] = bytes(PAGE_SIZE - cut)


@syscall("truncate", "sd")
def sys_truncate(k: Kernel, p: Process, path: int, length: int) -> int:
    if signed(length) < 0:
        raise SysError(errno.EINVAL)
    k.fs.check_write()
    host = lookup(k, p, AT_FDCWD, guest_path(k, p, path))
    os.truncate(host, length)
    st = os.stat(host)
    cache_truncated(k, (st.st_dev, st.st_ino), length)
    return 0


@syscall("ftruncate", "dd")
def sys_ftruncate(k: Kernel, p: Process, fd: int, length: int) -> int:
    f = p.files.get(signed32(fd))
    if signed(length) < 0 or not isinstance(f, HostFile):
        raise SysError(errno.EINVAL)
    check_write_fd(k, f)              # first, as every changing call (Linux checks the open mode first: EINVAL)
    if f.flags & O_PATH:
        raise SysError(errno.EBADF)
    if f.flags & 3 == os.O_RDONLY:
        raise SysError(errno.EINVAL)
    os.ftruncate(f.hostfd, length)
    cache_truncated(k, f.key(), length)
    return 0


LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE = 1, 2, 8
FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE = 0x10, 0x20


@syscall("fallocate", "dxdd")
def sys_fallocate(k: Kernel, p: Process, fd: int, mode: int, offset: int, length: int) -> int:
    """Forwarded to the host; ranges that punch or zero also zero the page cache's copy. Collapsing or
    inserting a range of a file the page cache holds is refused (EOPNOTSUPP)."""
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        raise SysError(errno.ESPIPE if isinstance(f, PipeEnd) else errno.ENODEV)
    offset, length = signed(offset), signed(length)
    if offset < 0 or length <= 0:
        raise SysError(errno.EINVAL)
    check_write_fd(k, f)
    cached = f.key() in k.cache.files
    if cached and mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
        raise SysError(errno.EOPNOTSUPP)
    _libc(LIBC.fallocate(f.hostfd, signed32(mode), offset, length))
    if cached and mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
        k.cache.file_written(f.key(), offset, bytes(min(length, max(f.stat().st_size - offset, 0))))
    return 0


def writeback_file(k: Kernel, f: HostFile) -> None:
    """Write the page cache's dirty pages of f (stores through MAP_SHARED mappings) to the host file."""
    key = f.key()
    if key not in k.cache.files:
        return
    invalidate = lambda aspace, va: k.cpu.invalidate_page(va, aspace.asid, "fsync")  # noqa: E731
    for pfn, (fkey, _index) in list(k.cache.index.items()):
        if fkey == key:
            k.cache.writeback(pfn, invalidate)


@syscall("fsync", "d")
def sys_fsync(k: Kernel, p: Process, fd: int) -> int:
    """Write back the file's pages dirtied through shared mappings, then fsync the host file."""
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        raise SysError(errno.EINVAL)
    writeback_file(k, f)
    os.fsync(f.hostfd)
    return 0


@syscall("fdatasync", "d")
def sys_fdatasync(k: Kernel, p: Process, fd: int) -> int:
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile):
        raise SysError(errno.EINVAL)
    writeback_file(k, f)
    os.fdatasync(f.hostfd)
    return 0


def writeback_all(k: Kernel) -> None:
    """Write every dirty page-cache page to its file."""
    invalidate = lambda aspace, va: k.cpu.invalidate_page(va, aspace.asid, "sync")  # noqa: E731
    for pfn in list(k.cache.index):
        k.cache.writeback(pfn, invalidate)


@syscall("sync")
def sys_sync(k: Kernel, p: Process) -> int:
    """Write back the page cache's dirty pages (the host's own caches are left to the host)."""
    writeback_all(k)
    return 0


@syscall("syncfs", "d")
def sys_syncfs(k: Kernel, p: Process, fd: int) -> int:
    p.files.get(signed32(fd))
    writeback_all(k)
    return 0


POSIX_FADV_MAX = 5


@syscall("fadvise64", "dddd")
def sys_fadvise64(k: Kernel, p: Process, fd: int, offset: int, length: int, advice: int) -> int:
    """Advice only guides read-ahead, which is not modelled: checked and accepted."""
    f = p.files.get(signed32(fd))
    if isinstance(f, PipeEnd):
        raise SysError(errno.ESPIPE)
    if not 0 <= signed32(advice) <= POSIX_FADV_MAX or signed(length) < 0:
        raise SysError(errno.EINVAL)
    return 0


@syscall("readahead", "ddu")
def sys_readahead(k: Kernel, p: Process, fd: int, offset: int, count: int) -> int:
    f = p.files.get(signed32(fd))
    if not isinstance(f, HostFile) or not statmod.S_ISREG(f.stat().st_mode):
        raise SysError(errno.EINVAL)
    return 0


# -- copying between descriptors ------------------------------------------------------------------

def readable(f: File) -> bool:
    return f.flags & 3 in (os.O_RDONLY, os.O_RDWR) and not f.flags & O_PATH


def writable(f: File) -> bool:
    return f.flags & 3 in (os.O_WRONLY, os.O_RDWR) and not f.flags & O_PATH


@syscall("sendfile", "ddpu")
def sys_sendfile(k: Kernel, p: Process, out_fd: int, in_fd: int, offset: int, count: int,
                 off_t: struct.Struct = LOFF_T) -> int:
    """Copy from a regular file to any descriptor through the kernel's own read and write: the data is
    read where the input stands (or at *offset), written, and only what was written is consumed, so a
    write that has to wait (a full pipe) consumes nothing. An input that is not a regular file is EINVAL,
    as on Linux for the file types it cannot splice from, and callers fall back to read/write."""
    src = p.files.get(signed32(in_fd))
    dst = p.files.get(signed32(out_fd))
    if not readable(src) or not writable(dst):
        raise SysError(errno.EBADF)
    if not isinstance(src, HostFile) or not statmod.S_ISREG(src.stat().st_mode):
        raise SysError(errno.EINVAL)
    if dst.flags & os.O_APPEND and isinstance(dst, HostFile) and statmod.S_ISREG(dst.stat().st_mode):
        raise SysError(errno.EINVAL)
    if offset:
        pos = off_t.unpack(k.copyin(p, offset, off_t.size))[0]
        if pos < 0:
            raise SysError(errno.EINVAL)
    else:
        pos = src.lseek(0, os.SEEK_CUR)
    data = src.pread(min(count, MAX_IO), pos)
    n = write_file(k, dst, data) if data else 0
    if offset:
        k.copyout(p, offset, off_t.pack(pos + n))
    else:
        src.lseek(pos + n, os.SEEK_SET)
    return n


@syscall("copy_file_range", "dpdpux")
def sys_copy_file_range(k: Kernel, p: Process, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int,
                        flags: int) -> int:
    """Copy between two regular files (at the descriptors' positions or the given offsets), by a read
    and a write through the kernel, so the page cache sees the new bytes."""
    if flags:
        raise SysError(errno.EINVAL)
    src = p.files.get(signed32(fd_in))
    dst = p.files.get(signed32(fd_out))
    if not readable(src) or not writable(dst) or dst.flags & os.O_APPEND:
        raise SysError(errno.EBADF)
    if not isinstance(src, HostFile) or not isinstance(dst, HostFile):
        raise SysError(errno.EINVAL)
    smode, dmode = src.stat().st_mode, dst.stat().st_mode
    if statmod.S_ISDIR(smode) or statmod.S_ISDIR(dmode):
        raise SysError(errno.EISDIR)
    if not statmod.S_ISREG(smode) or not statmod.S_ISREG(dmode):
        raise SysError(errno.EINVAL)
    check_write_fd(k, dst)
    rpos = signed(struct.unpack("<q", k.copyin(p, off_in, 8))[0]) if off_in else src.lseek(0, os.SEEK_CUR)
    wpos = signed(struct.unpack("<q", k.copyin(p, off_out, 8))[0]) if off_out else dst.lseek(0, os.SEEK_CUR)
    if rpos < 0 or wpos < 0:
        raise SysError(errno.EINVAL)
    length = min(length, MAX_IO)
    if src.key() == dst.key() and rpos < wpos + length and wpos < rpos + length:
        raise SysError(errno.EINVAL)
    data = src.pread(length, rpos)
    n = write_file(k, dst, data, wpos) if data else 0
    if off_in:
        k.copyout(p, off_in, struct.pack("<q", rpos + n))
    else:
        src.lseek(rpos + n, os.SEEK_SET)
    if off_out:
        k.copyout(p, off_out, struct.pack("<q", wpos + n))
    else:
        dst.lseek(wpos + n, os.SEEK_SET)
    return n


# -- file-system statistics -----------------------------------------------------------------------

LIBC.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
LIBC.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]


def guest_statfs(k: Kernel, raw: bytes, on_guest_fs: bool) -> bytes:
    """The host's struct statfs, marked read-only (ST_RDONLY) under --read-only for the guest's file system."""
    data = bytearray(raw)
    if on_guest_fs and k.fs.read_only:
        flags = struct.unpack_from("<q", data, STATFS_FLAGS_OFFSET)[0]
        struct.pack_into("<q", data, STATFS_FLAGS_OFFSET, flags | ST_RDONLY)
    return bytes(data)


def statfs_path(k: Kernel, p: Process, path: int) -> bytes:
    """The x86-64 struct statfs of the file system holding a guest path."""
    host = lookup(k, p, AT_FDCWD, guest_path(k, p, path))
    out = ctypes.create_string_buffer(STATFS.size)
    _libc(LIBC.statfs(fs_path(host), out))
    return guest_statfs(k, out.raw, True)


def statfs_fd(k: Kernel, p: Process, fd: int) -> bytes:
    """The x86-64 struct statfs of the file system holding an open file (pipefs for a pipe)."""
    f = p.files.get(signed32(fd))
    if isinstance(f, HostFile):
        out = ctypes.create_string_buffer(STATFS.size)
        _libc(LIBC.fstatfs(f.hostfd, out))
        return guest_statfs(k, out.raw, not is_memfd(f))
    # pipefs, as Linux reports it for a pipe
    return STATFS.pack(PIPEFS_MAGIC, 4096, 0, 0, 0, 0, 0, 0, 0, 255, 4096, 0x20)


@syscall("statfs", "sp")
def sys_statfs(k: Kernel, p: Process, path: int, buf: int) -> int:
    k.copyout(p, buf, statfs_path(k, p, path))
    return 0


@syscall("fstatfs", "dp")
def sys_fstatfs(k: Kernel, p: Process, fd: int, buf: int) -> int:
    k.copyout(p, buf, statfs_fd(k, p, fd))
    return 0
