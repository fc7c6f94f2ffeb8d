"""Sockets. The machine has no network: socket() is refused with EACCES, the errno Linux gives when a
security policy (seccomp, SELinux, a network namespace's rules) forbids creating a socket; every other
socket call can therefore only be given a descriptor that is not a socket (ENOTSOCK) or none (EBADF).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from osmodel.files import SysError
from osmodel.syscall import signed32, syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process


# -- the network (refused) ------------------------------------------------------------------------

@syscall("socket", "ddd")
def sys_socket(k: Kernel, p: Process, domain: int, kind: int, protocol: int) -> int:
    """Refused with EACCES, as under a policy that forbids sockets: there is no network. glibc's NSS
    (nscd) and syslog clients see the error and fall back, as they do natively without those daemons."""
    raise SysError(errno.EACCES)


@syscall("socketpair", "dddp")
def sys_socketpair(k: Kernel, p: Process, domain: int, kind: int, protocol: int, sv: int) -> int:
    """Refused like socket (EACCES)."""
    raise SysError(errno.EACCES)


def not_a_socket(k: Kernel, p: Process, fd: int, *_args: int) -> int:
    """No descriptor can be a socket: EBADF if fd is not open, else ENOTSOCK."""
    p.files.get(signed32(fd))
    raise SysError(errno.ENOTSOCK)


for _name, _kinds in (("connect", "dpu"), ("accept", "dpp"), ("accept4", "dppx"), ("sendto", "dbuxpu"),
                      ("recvfrom", "dpuxpp"), ("sendmsg", "dpx"), ("recvmsg", "dpx"), ("shutdown", "dd"),
                      ("bind", "dpu"), ("listen", "dd"), ("getsockname", "dpp"), ("getpeername", "dpp"),
                      ("setsockopt", "dddpu"), ("getsockopt", "dddpp"), ("sendmmsg", "dpux"),
                      ("recvmmsg", "dpuxp")):
    syscall(_name, _kinds)(not_a_socket)
