"""The guest's /proc/PID: its own processes, as in a PID namespace, never run-elf's.

run-elf is itself a host process, so the host's /proc/self would show the guest run-elf's
memory map, descriptors and even its memory (/proc/self/mem). Paths below /proc/self,
/proc/thread-self and /proc/N are therefore answered here, for guest pids only; a number
that is not a guest pid does not exist. Other /proc files (cpuinfo, meminfo, ...) are the
host's. Generated files (maps, cmdline, comm, status, stat, statm, environ, limits) are served
from an anonymous memory file, and the listings of /proc/PID and /proc/PID/fd are generated too;
links (exe, cwd, root, fd/N) resolve to what they mean for the guest.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import time
from typing import TYPE_CHECKING

from osmodel.files import File, HostFile, SysError

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

_PID_DIR = re.compile(r"^/proc/(self|thread-self|\d+)(/.*)?$")
_FD = re.compile(r"^/fd/(\d+)(/.*)?$")
_LISTED = re.compile(r"^/proc/(\d+)(/fd)?$")
DIRENT = struct.Struct("<QqHB")        # struct linux_dirent64 without its name
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
GENERATED = ("maps", "cmdline", "comm", "status", "stat", "statm", "environ", "limits")
HIDDEN = ("mem", "auxv", "pagemap", "syscall", "stack", "personality", "io", "smaps", "smaps_rollup",
          "mountinfo", "mounts", "attr", "map_files", "ns", "task", "fdinfo", "numa_maps", "oom_score")
SHARED_WITH_HOST = ("mounts", "mountinfo")   # the guest sees run-elf's mount namespace (unless under --root)


class ProcEntry:
    """What a /proc/PID path names: a link (target guest path, and the host path it leads to), a
    generated file (its bytes), a guest file with no host inode (a pipe, a socket: `file`), or a
    directory (its host stand-in, and the names it lists)."""

    def __init__(self, link: str | None = None, host: str | None = None, content: bytes | None = None,
                 redirect: str | None = None, file: File | None = None):
        self.link = link
        self.host = host
        self.content = content
        self.redirect = redirect      # a guest path to resolve instead (a path below cwd/ or root/)
        self.file = file


class GuestFileError(SysError):
    """The path names a guest file (pipe, socket...) through /proc/PID/fd/N: it has no host path
    (ENXIO to callers that need one); open and stat use `file` itself."""

    def __init__(self, file: File):
        super().__init__(errno.ENXIO)
        self.file = file


def dev_alias(k: Kernel, path: str, follow: bool) -> str:
    """An absolute path through /dev/fd, /dev/stdin, /dev/stdout or /dev/stderr, links into /proc/self/fd
    on every Linux system, as the /proc path it leads to (the guest's, not run-elf's); other paths, and
    (unless `follow`) a path ending at such a link, unchanged."""
    name, sep, rest = path[5:].partition("/")
    if not sep and not follow:
        return path
    try:
        target = os.readlink(k.fs.host_path("/dev/" + name))
    except OSError:
        return path
    if not target.startswith("/proc/"):
        return path
    return target + sep + rest


def lookup(k: Kernel, p: Process, path: str) -> ProcEntry | None:
    """The entry for an absolute guest path below /proc/PID, None if the path is not one; SysError if it
    names nothing (another host process, a file not provided)."""
    m = _PID_DIR.match(os.path.normpath(path))
    if m is None:
        return None
    who, rest = m.group(1), m.group(2) or ""
    proc = p if who in ("self", "thread-self") else k.processes.get(int(who))
    if proc is None or not proc.alive and rest not in ("", "/stat", "/status", "/cmdline", "/comm"):
        raise SysError(errno.ENOENT)
    if rest in ("", "/fd"):
        return ProcEntry(link=f"/proc/{proc.pid}{rest}", host=k.fs.host_path("/"))   # listed by `listing`
    name = rest[1:]
    top, _, below = name.partition("/")
    if below and top in ("cwd", "root"):
        return ProcEntry(redirect=os.path.join(proc.cwd if top == "cwd" else "/", below))
    if name == "exe":
        return ProcEntry(link=k.fs.guest_of_host(proc.exe), host=proc.exe)
    if name == "cwd":
        return ProcEntry(link=proc.cwd, host=k.fs.host_path(proc.cwd))
    if name == "root":
        return ProcEntry(link="/", host=k.fs.host_path("/"))
    fd = _FD.match(rest)
    if fd:
        try:
            f = proc.files.get(int(fd.group(1)))
        except SysError:
            raise SysError(errno.ENOENT) from None
        if fd.group(2):                                   # a path below a directory descriptor
            if not isinstance(f, HostFile) or not f.is_directory():
                raise SysError(errno.ENOTDIR)
            return ProcEntry(redirect=os.path.join(f.path, fd.group(2).lstrip("/")))
        if isinstance(f, HostFile):
            return ProcEntry(link=k.fs.guest_of_host(f.resolved_host_path()), host=f"/proc/self/fd/{f.hostfd}")
        return ProcEntry(link=f.path, file=f)   # guest files: pipe:[N], socket:[N], anon_inode:[eventfd]...
    if name in GENERATED:
        return ProcEntry(content=generate(k, proc, name))
    if name in SHARED_WITH_HOST and k.fs.root is None:
        return ProcEntry(host=f"/proc/self/{name}")
    raise SysError(errno.EACCES if name in HIDDEN else errno.ENOENT)


def listing(k: Kernel, path: str) -> list[tuple[str, int]] | None:
    """The (name, d_type) entries of a /proc/PID or /proc/PID/fd directory (`path` as lookup links it),
    or None if path is not one of them: what the guest may open there, its descriptors as links."""
    m = _LISTED.match(path)
    if m is None:
        return None
    proc = k.processes.get(int(m.group(1)))
    if proc is None:
        return []
    if m.group(2):
        return [(str(fd), DT_LNK) for fd in sorted(proc.files.slots)]
    names = [(n, DT_REG) for n in GENERATED] + [(n, DT_LNK) for n in ("cwd", "exe", "root")] + [("fd", DT_DIR)]
    if k.fs.root is None:
        names += [(n, DT_REG) for n in SHARED_WITH_HOST]
    return sorted(names)


def link_stat(f: File) -> os.stat_result:
    """lstat of /proc/PID/fd/N for a guest file: a link whose permissions are the descriptor's access."""
    access = f.flags & 3
    mode = stat.S_IFLNK | 0o500 if access == os.O_RDONLY else stat.S_IFLNK | (0o300 if access == os.O_WRONLY else 0o700)
    now = time.time()
    return os.stat_result((mode, 0x3000_0000 + (id(f) & 0xFFFFFF), 0x16, 1, os.getuid(), os.getgid(), 64,
                           now, now, now))


def list_entries(f: HostFile, entries: list[tuple[str, int]], size: int) -> bytes:
    """The next linux_dirent64 records of a generated directory ('.', '..', then `entries`) that fit in
    size bytes, from f's position in it (EINVAL if not even one fits)."""
    names = [(".", DT_DIR), ("..", DT_DIR)] + entries
    out = bytearray()
    while f.dir_pos < len(names):
        name, dtype = names[f.dir_pos]
        raw = name.encode()
        reclen = (DIRENT.size + len(raw) + 1 + 7) & ~7
        if len(out) + reclen > size:
            if not out:
                raise SysError(errno.EINVAL)
            break
        f.dir_pos += 1
        out += (DIRENT.pack(0x2000_0000 + f.dir_pos, f.dir_pos, reclen, dtype) + raw).ljust(reclen, b"\0")
    return bytes(out)


def list_proc(k: Kernel, f: HostFile, records: bytes, size: int) -> bytes:
    """Listing /proc: the host's entries without its numbered ones (host processes), then, once the
    host has no more, one directory per guest process, so that ps-like readers see the guest's pids."""
    out = bytearray()
    pos = 0
    while pos < len(records):
        _ino, _off, reclen, _type = DIRENT.unpack_from(records, pos)
        name = records[pos + DIRENT.size:pos + reclen].split(b"\0", 1)[0]
        if not name.isdigit():
            out += records[pos:pos + reclen]
        pos += reclen
    if not records and not f.proc_listed:
        f.proc_listed = True
        for pid in sorted(k.processes):
            name = str(pid).encode()
            reclen = (DIRENT.size + len(name) + 1 + 7) & ~7
            rec = DIRENT.pack(0x1000_0000 + pid, 0x7FFF_0000 + pid, reclen, DT_DIR) + name
            if len(out) + reclen > size:
                break
            out += rec.ljust(reclen, b"\0")
    return bytes(out)


def generate(k: Kernel, proc: Process, name: str) -> bytes:
    """The text of a generated /proc/PID file."""
    if name == "maps":
        lines = proc.aspace.maps() if proc.alive else []
        return "".join(line + "\n" for line in lines).encode()
    if name == "cmdline":
        return b"".join(a + b"\0" for a in proc.argv)
    if name == "environ":
        return b"".join(e + b"\0" for e in proc.environ)
    if name == "limits":
        return limits_text(k, proc)
    if name == "comm":
        return proc.name.encode()[:15] + b"\n"
    state = ("Z (zombie)" if not proc.alive else "T (stopped)" if proc.stopped else
             "R (running)" if proc.runnable else "S (sleeping)")
    if name == "status":
        return (f"Name:\t{proc.name[:15]}\nState:\t{state}\nTgid:\t{proc.pid}\nPid:\t{proc.pid}\n"
                f"PPid:\t{proc.ppid}\nUid:\t{os.getuid()}\t{os.geteuid()}\t{os.geteuid()}\t{os.geteuid()}\n"
                f"Gid:\t{os.getgid()}\t{os.getegid()}\t{os.getegid()}\t{os.getegid()}\n"
                f"VmRSS:\t{proc.aspace.resident * 4 if proc.alive else 0} kB\nThreads:\t1\n").encode()
    if name == "statm":
        size = sum(r.end - r.start for r in proc.aspace.regions) >> 12 if proc.alive else 0
        return f"{size} {proc.aspace.resident if proc.alive else 0} 0 0 0 0 0\n".encode()
    # stat: the fields a ps-like reader needs; times are not modelled.
    return (f"{proc.pid} ({proc.name[:15]}) {state[0]} {proc.ppid} {proc.pgid} {proc.sid} 0 -1 0 "
            f"{sum(proc.fault_counts.values()) - proc.major_faults} 0 {proc.major_faults} 0 0 0 0 0 20 0 1 0 0 "
            f"{sum(r.end - r.start for r in proc.aspace.regions) if proc.alive else 0} "
            f"{proc.aspace.resident if proc.alive else 0}\n").encode()


# /proc/PID/limits: each resource's name and unit, in RLIMIT_* order (Linux's lnames).
LIMIT_NAMES = (("Max cpu time", "seconds"), ("Max file size", "bytes"), ("Max data size", "bytes"),
               ("Max stack size", "bytes"), ("Max core file size", "bytes"), ("Max resident set", "bytes"),
               ("Max processes", "processes"), ("Max open files", "files"), ("Max locked memory", "bytes"),
               ("Max address space", "bytes"), ("Max file locks", "locks"), ("Max pending signals", "signals"),
               ("Max msgqueue size", "bytes"), ("Max nice priority", ""), ("Max realtime priority", ""),
               ("Max realtime timeout", "us"))


def limits_text(k: Kernel, proc: Process) -> bytes:
    """The text of /proc/PID/limits: the process's soft and hard limits, laid out as Linux's proc_pid_limits."""
    from osmodel.sysproc import RLIM_INFINITY, get_rlimit
    lines = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for resource_id, (name, unit) in enumerate(LIMIT_NAMES):
        soft, hard = get_rlimit(proc, resource_id)
        shown = ["unlimited" if v == RLIM_INFINITY else str(v) for v in (soft, hard)]
        lines.append(f"{name:<25} {shown[0]:<20} {shown[1]:<20} " + (f"{unit:<10}" if unit else "") + "\n")
    return "".join(lines).encode()


def content_file(k: Kernel, content: bytes) -> str:
    """A host path that opens as a fresh read-only view of `content` (an anonymous memory file)."""
    fd = os.memfd_create("run-elf-proc", os.MFD_CLOEXEC)
    os.write(fd, content)
    k.proc_files.append(fd)
    while len(k.proc_files) > 64:                # keep a few recent ones alive for reopening
        os.close(k.proc_files.pop(0))
    return f"/proc/self/fd/{fd}"
