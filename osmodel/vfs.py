"""Path resolution: how a guest path becomes a host path, optionally confined to a root directory.

Without a root the guest sees the host's file system with the user's own rights, as with
qemu-user: paths are only made absolute against the process's working directory. With
`--root DIR` the guest's `/` is DIR and resolution is done here, one component at a time,
as the kernel's namei does: `..` never climbs above the root, and every symbolic link is
read and resolved again inside the root (absolute targets start from the root), so no
path, link, `/proc/self/root` or directory descriptor leads out of it.
"""

from __future__ import annotations

import errno
import os
import posixpath

from osmodel.files import SysError

MAX_SYMLINKS = 40          # Linux's limit on links followed in one resolution (ELOOP)


class FileSystem:
    """The guest's file system: the host's, or the tree under `root`; writable unless `read_only`."""

    def __init__(self, root: str | None = None, read_only: bool = False):
        self.root = os.path.realpath(root) if root else None
        self.read_only = read_only

    def host_path(self, guest: str) -> str:
        """The host path of an absolute, already resolved guest path."""
        if self.root is None:
            return guest
        return self.root + guest if guest != "/" else self.root

    def resolve(self, guest: str, base: str, follow: bool = True) -> tuple[str, str]:
        """(guest path, host path) for `guest` taken relative to the guest directory `base`.

        `follow` says whether a symbolic link in the last component is followed (lstat,
        readlink and O_NOFOLLOW do not). Raises SysError(ELOOP) past MAX_SYMLINKS links.
        """
        if not guest:
            raise SysError(errno.ENOENT)
        path = guest if guest.startswith("/") else posixpath.join(base, guest)
        if self.root is None:
            return path, path
        resolved = self._walk(path, follow, 0)
        return resolved, self.host_path(resolved)

    def _walk(self, path: str, follow: bool, links: int) -> str:
        """Resolve an absolute guest path component by component inside the root."""
        parts = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        for i, part in enumerate(parts):
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join(done + [part])
            last = i == len(parts) - 1
            host = self.host_path(candidate)
            if (follow or not last) and os.path.islink(host):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SysError(errno.ELOOP)
                target = os.readlink(host)
                rest = "/".join(parts[i + 1:])
                start = target if target.startswith("/") else "/" + "/".join(done + [target])
                return self._walk(start + ("/" + rest if rest else ""), follow, links)
            done.append(part)
        return "/" + "/".join(done)

    def guest_of_host(self, host: str) -> str:
        """The guest path of a host path inside the root (for getcwd, /proc/self/exe)."""
        if self.root is None:
            return host
        if host == self.root:
            return "/"
        if host.startswith(self.root + "/"):
            return host[len(self.root):]
        return host

    def check_write(self) -> None:
        """Refuse a change to the file system with EROFS under --read-only."""
        if self.read_only:
            raise SysError(errno.EROFS)
