"""Sockets: connected pairs of local (AF_UNIX) sockets between guest processes, made by socketpair.

The machine has no network and no named sockets: socket() is refused with EACCES, the errno Linux gives
when a security policy (seccomp, SELinux, a network namespace's rules) forbids creating a socket, and so
are bind (a name would be a socket file) and reaching a named socket (connect, sendto with an address).
glibc's NSS (nscd) and syslog clients see the error and fall back, as they do natively without those
daemons.

socketpair(AF_UNIX, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) gives two connected sockets, each with
its receive queue (what its peer sent). A stream queue holds a byte stream cut into the sender's
buffers (skbs); a datagram or seqpacket queue keeps message boundaries, and a read shorter than a
message truncates it (MSG_TRUNC). A sender is charged each buffer's size as Linux accounts it
(truesize) against its SO_SNDBUF until the receiver consumes it, so as many writes fit before EAGAIN
as natively. Descriptors travel with SCM_RIGHTS (the open files themselves, as on Linux); credentials
(SO_PASSCRED, SCM_CREDENTIALS) are not delivered. A blocking stream write that does not fit returns
the count that did, as a signal would leave it natively. Waiters sleep on the pair (Socket.channel).

The i386 entry points with structures of their own (msghdr, cmsghdr, mmsghdr) are registered here
with @syscall32; a handler also picks the layout by the caller's ABI, which serves socketcall.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import struct
from collections import deque
from typing import TYPE_CHECKING

from osmodel.files import POLLERR, POLLHUP, POLLIN, POLLOUT, Block, File, SysError
from osmodel.syscall import AT_FDCWD, signed32, syscall, syscall32
from osmodel.sysfile import MAX_IO, install_pair, namei
from osmodel.sysproc import sys_getegid, sys_geteuid

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, NPROTO = 0, 1, 2, 10, 16, 17, 46
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_MAX = 1, 2, 3, 5, 11
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK = os.O_NONBLOCK
SOCK_CLOEXEC = os.O_CLOEXEC
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x8, 0x20, 0x40
MSG_WAITALL, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC = 0x100, 0x4000, 0x40000000
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3
SOL_SOCKET = 1
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SCM_MAX_FD = 253
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE = 7, 8, 9, 10
SO_PEERCRED, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN = 17, 30, 38, 39
BOOL_OPTIONS = (SO_DEBUG, SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE)  # no effect on AF_UNIX
POLLRDHUP = 0x2000
UIO_MAXIOV = 1024
SUN_PATH_OFFSET = 2                       # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110
SOCKADDR_STORAGE_SIZE = 128
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
SKB_OVERHEAD = 256                        # SKB_DATA_ALIGN(sizeof(struct sk_buff))
SHINFO_SIZE = 320                         # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
PAGE = 4096
SKB_MAX_HEAD = PAGE - SHINFO_SIZE         # SKB_MAX_HEAD(0): the linear part that fits a page
UNIX_SKB_FRAGS_SZ = 32768                 # the paged part of one stream skb at most
SKB_MAX_ALLOC = 4 * PAGE - SHINFO_SIZE    # a datagram's linear part at most
MAX_SKB_FRAGS = 17
UCRED = struct.Struct("<iII")             # struct ucred: pid, uid, gid (both ABIs)

# struct msghdr, struct cmsghdr and struct mmsghdr of each ABI: (layout, alignment of a cmsg).
MSGHDR = {64: struct.Struct("<QI4xQQQQi4x"), 32: struct.Struct("<IIIIIIi")}
CMSGHDR = {64: struct.Struct("<Qii"), 32: struct.Struct("<Iii")}
IOVEC = {64: struct.Struct("<QQ"), 32: struct.Struct("<II")}
MMSG_SIZE = {64: 64, 32: 32}              # sizeof(struct mmsghdr): msghdr, msg_len, padding


def sysctl(name: str, default: int) -> int:
    """The host's net.core setting (the guest's buffers size as natively), or Linux's default."""
    try:
        with open(f"/proc/sys/net/core/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


WMEM_DEFAULT, RMEM_DEFAULT = sysctl("wmem_default", 212992), sysctl("rmem_default", 212992)
WMEM_MAX, RMEM_MAX = sysctl("wmem_max", 212992), sysctl("rmem_max", 212992)


def kmalloc_size(n: int) -> int:
    """What kmalloc really gives for n bytes: its size classes (powers of two, 96 and 192; whole pages
    beyond 8 KiB as a power of two)."""
    if n <= 96 and n > 64:
        return 96
    if 128 < n <= 192:
        return 192
    size = 8
    while size < n:
        size *= 2
    return size


def truesize(linear: int, paged: int) -> int:
    """An skb's truesize: its head (aligned, with the shared info, as kmalloc rounds it), the sk_buff
    itself, and its pages."""
    head = (linear + 63) // 64 * 64 + SHINFO_SIZE
    return kmalloc_size(head) + SKB_OVERHEAD + paged


def page_align(n: int) -> int:
    """n rounded up to whole pages."""
    return (n + PAGE - 1) // PAGE * PAGE


def dgram_truesize(size: int) -> int:
    """The truesize of a datagram of size bytes (unix_dgram_sendmsg's split into head and pages)."""
    paged = 0
    if size > SKB_MAX_ALLOC:
        paged = page_align(min(size - SKB_MAX_ALLOC, MAX_SKB_FRAGS * PAGE))
    return truesize(size - paged, paged)


# -- the sockets ----------------------------------------------------------------------------------

class Chunk:
    """One skb in a receive queue: its bytes, the files it carries (SCM_RIGHTS), its cost to the sender."""

    def __init__(self, data: bytes, files: list[File] | None, cost: int, sender: Socket):
        self.data = data
        self.files = files
        self.cost = cost
        self.sender = sender


class Pair:
    """Two connected sockets; what their waiters sleep on."""

    def __init__(self, wakeup):
        self.wakeup = wakeup

    def changed(self) -> None:
        """Wake everyone waiting on either socket."""
        self.wakeup(self)


def drop_files(files: list[File] | None) -> None:
    """Let go of in-flight files that nobody will receive."""
    for f in files or ():
        f.refs -= 1
        if f.refs == 0:
            f.release()


class Socket(File):
    """One AF_UNIX socket of a socketpair."""

    def __init__(self, pair: Pair, kind: int, protocol: int, flags: int, creds: tuple[int, int, int]):
        super().__init__("socket:", os.O_RDWR | (flags & os.O_NONBLOCK))
        self.pair = pair
        self.kind = kind
        self.protocol = protocol
        self.creds = creds                      # SO_PEERCRED: the creator's pid, euid, egid
        self.peer: Socket | None = None
        self.queue: deque[Chunk] = deque()      # what the peer sent, not yet read
        self.shutdown = 0                       # RCV_SHUTDOWN, SEND_SHUTDOWN
        self.error = 0                          # sk_err (ECONNRESET when the peer closed with data unread)
        self.wmem = 0                           # truesize of what it sent that is still queued
        self.sndbuf, self.rcvbuf = WMEM_DEFAULT, RMEM_DEFAULT
        self.options: dict[int, int] = {}
        self.closed = False
        self.ino = id(self) & 0xFFFFFFF
        self.path = f"socket:[{self.ino}]"

    def channel(self) -> object:
        return self.pair

    # -- sending --

    def send(self, data: bytes, files: list[File] | None, nonblock: bool) -> int:
        """Queue data (and files) for the peer; the bytes sent. May raise Block; EPIPE once shut down."""
        if self.shutdown & SEND_SHUTDOWN:
            raise SysError(errno.EPIPE)
        peer = self.peer
        if self.kind != SOCK_STREAM:
            return self.send_message(peer, data, files, nonblock)
        if peer is None or peer.closed or peer.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EPIPE)
        sent = 0
        while sent < len(data):
            size = min(len(data) - sent, self.sndbuf // 2 - 64, SKB_MAX_HEAD + UNIX_SKB_FRAGS_SZ)
            if self.wmem >= self.sndbuf:
                if sent:
                    break
                self.wait_for_room(nonblock)
            paged = min(size, page_align(max(0, size - SKB_MAX_HEAD)))
            self.deliver(peer, data[sent:sent + size], files if not sent else None, truesize(size - paged, paged))
            sent += size
        return sent

    def send_message(self, peer: Socket | None, data: bytes, files: list[File] | None, nonblock: bool) -> int:
        """Queue one datagram or seqpacket message for the peer."""
        if peer is None:
            raise SysError(errno.ENOTCONN)
        if peer.closed:
            if self.kind == SOCK_SEQPACKET:
                raise SysError(errno.EPIPE)
            self.peer = None                    # a datagram socket forgets its dead peer
            raise SysError(errno.ECONNREFUSED)
        if peer.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if len(data) > self.sndbuf - 32:
            raise SysError(errno.EMSGSIZE)
        if self.wmem >= self.sndbuf:
            self.wait_for_room(nonblock)
        self.deliver(peer, data, files, dgram_truesize(len(data)))
        return len(data)

    def wait_for_room(self, nonblock: bool) -> None:
        """The send buffer is full: EAGAIN, or sleep until the peer reads."""
        if nonblock:
            raise SysError(errno.EAGAIN)
        raise Block(self.pair)

    def deliver(self, peer: Socket, data: bytes, files: list[File] | None, cost: int) -> None:
        """Put one skb on the peer's queue, charged to this socket."""
        for f in files or ():
            f.refs += 1                         # in flight: the sender may close its descriptor
        peer.queue.append(Chunk(bytes(data), list(files) if files else None, cost, self))
        self.wmem += cost
        self.pair.changed()

    # -- receiving --

    def receive(self, size: int, flags: int, nonblock: bool) -> tuple[bytes, list[File], int, int]:
        """Read up to size bytes: (data, files received, the length recv returns, MSG_* flags for
        msg_flags). May raise Block; EOF is empty data. The files are the caller's to install."""
        if flags & MSG_OOB:
            raise SysError(errno.EINVAL if self.kind == SOCK_STREAM else errno.EOPNOTSUPP)
        if self.error and self.kind != SOCK_STREAM:
            self.nothing_queued(nonblock)       # a message read reports a pending error first
        if not self.queue:
            self.nothing_queued(nonblock)
            return b"", [], 0, 0                # the end of the stream
        if self.kind == SOCK_STREAM:
            if flags & MSG_WAITALL and not flags & MSG_PEEK:
                self.wait_all(size, nonblock)
            data, files = self.take_stream(size, flags & MSG_PEEK)
            return data, files, len(data), 0
        chunk = self.queue[0]
        files = self.take_files(chunk, flags & MSG_PEEK)
        if not flags & MSG_PEEK:
            self.consume(chunk)
        data = chunk.data[:size]
        truncated = len(chunk.data) > size
        length = len(chunk.data) if flags & MSG_TRUNC else len(data)
        return data, files, length, MSG_TRUNC if truncated else 0

    def nothing_queued(self, nonblock: bool) -> None:
        """Nothing to read: the pending error, EOF (returns), EAGAIN or sleep."""
        if self.error:
            code, self.error = self.error, 0
            raise SysError(code)
        if self.shutdown & RCV_SHUTDOWN:
            return
        if nonblock:
            raise SysError(errno.EAGAIN)
        raise Block(self.pair)

    def wait_all(self, size: int, nonblock: bool) -> None:
        """MSG_WAITALL: sleep until size bytes are queued, the stream ends, or the peer cannot send more."""
        queued = sum(len(c.data) for c in self.queue)
        peer = self.peer
        if queued >= size or nonblock or self.error or self.shutdown & RCV_SHUTDOWN or peer is None \
                or peer.wmem >= peer.sndbuf:
            return
        raise Block(self.pair)

    def take_stream(self, size: int, peek: bool) -> tuple[bytes, list[File]]:
        """Up to size bytes of the stream; a read stops after an skb that carried files."""
        out = bytearray()
        files: list[File] = []
        if size == 0:
            return b"", files
        for chunk in list(self.queue):
            if len(out) >= size and out:
                break
            piece = chunk.data[:size - len(out)]
            out += piece
            carried = chunk.files is not None
            files += self.take_files(chunk, peek)
            if not peek:
                if len(piece) < len(chunk.data):
                    chunk.data = chunk.data[len(piece):]
                    break
                self.consume(chunk)
            if carried:
                break
        return bytes(out), files

    def take_files(self, chunk: Chunk, peek: bool) -> list[File]:
        """The files an skb carries: detached from it, or (MSG_PEEK) shared with it."""
        files = chunk.files or []
        if not peek:
            chunk.files = None
        else:
            for f in files:
                f.refs += 1
        return list(files)

    def consume(self, chunk: Chunk) -> None:
        """Drop a read skb from the queue; its sender may write again."""
        self.queue.remove(chunk)
        chunk.sender.wmem -= chunk.cost
        drop_files(chunk.files)
        self.pair.changed()

    # -- the File interface --

    def read(self, size: int) -> bytes:
        if size == 0:
            return b""                          # read(2) of nothing consumes nothing, even a datagram
        data, files, _, _ = self.receive(size, 0, bool(self.flags & os.O_NONBLOCK))
        drop_files(files)
        return data

    def write(self, data: bytes) -> int:
        if not data and self.kind == SOCK_STREAM:
            if self.shutdown & SEND_SHUTDOWN:
                raise SysError(errno.EPIPE)
            return 0
        return self.send(data, None, bool(self.flags & os.O_NONBLOCK))

    def unread(self) -> int:
        """FIONREAD: the bytes queued (a stream), or the next message's size."""
        if self.kind == SOCK_STREAM:
            return sum(len(c.data) for c in self.queue)
        return len(self.queue[0].data) if self.queue else 0

    def stat(self) -> os.stat_result:
        mode = statmod.S_IFSOCK | 0o777
        return os.stat_result((mode, self.ino, sockfs_dev(), 1, self.creds[1], self.creds[2], 0, 0, 0, 0))

    def poll(self, events: int) -> int:
        mask = POLLERR if self.error else 0
        if self.shutdown == SHUTDOWN_MASK:
            mask |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            mask |= POLLRDHUP | POLLIN
        if self.queue:
            mask |= POLLIN
        if self.wmem * 4 <= self.sndbuf:
            mask |= POLLOUT
        return mask & (events | POLLERR | POLLHUP)

    def shut(self, mode: int) -> None:
        """shutdown: stop receiving and/or sending; a stream or seqpacket peer sees the other half."""
        self.shutdown |= mode
        peer = self.peer
        if peer is not None and self.kind != SOCK_DGRAM:
            peer.shutdown |= (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
        self.pair.changed()

    def release(self) -> None:
        self.closed = True
        unread = bool(self.queue)
        for chunk in list(self.queue):
            self.consume(chunk)
        peer = self.peer
        if peer is not None and self.kind != SOCK_DGRAM:
            peer.shutdown = SHUTDOWN_MASK
            if unread:
                peer.error = errno.ECONNRESET
        self.peer = None
        self.pair.changed()


_sockfs_dev: list[int] = []


def sockfs_dev() -> int:
    """The device number of the host's sockfs (what fstat of a socket reports natively)."""
    if not _sockfs_dev:
        import socket
        try:
            a, b = socket.socketpair()
            _sockfs_dev.append(os.fstat(a.fileno()).st_dev)
            a.close()
            b.close()
        except OSError:
            _sockfs_dev.append(0)
    return _sockfs_dev[0]


def get_socket(p: Process, fd: int) -> Socket:
    """The socket behind fd: EBADF if not open, ENOTSOCK if not a socket."""
    f = p.files.get(signed32(fd))
    if not isinstance(f, Socket):
        raise SysError(errno.ENOTSOCK)
    return f


def nonblocking(sock: Socket, flags: int) -> bool:
    """Whether a call with these MSG_* flags must not sleep."""
    return bool(sock.flags & os.O_NONBLOCK or flags & MSG_DONTWAIT)


def send_failed(err: SysError, flags: int) -> SysError:
    """The error a send returns: with MSG_NOSIGNAL an EPIPE raises no SIGPIPE."""
    if err.errno == errno.EPIPE and flags & MSG_NOSIGNAL:
        err.nosignal = True
    return err


# -- creating -------------------------------------------------------------------------------------

@syscall("socket", "ddd")
def sys_socket(k: Kernel, p: Process, domain: int, kind: int, protocol: int) -> int:
    """Refused with EACCES, as under a policy that forbids sockets: there is no network, and no named
    AF_UNIX socket (socketpair makes local ones)."""
    raise SysError(errno.EACCES)


def check_kind(domain: int, kind: int, protocol: int) -> int:
    """socketpair's socket type, or the errno Linux gives for the domain, type and protocol."""
    kind = signed32(kind)
    base = kind & SOCK_TYPE_MASK
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SysError(errno.EINVAL)
    domain = signed32(domain)
    if not 0 <= domain < NPROTO:
        raise SysError(errno.EAFNOSUPPORT)
    if base >= SOCK_MAX:
        raise SysError(errno.EINVAL)
    if domain != AF_UNIX:
        # Sockets of these families exist on Linux but none can make a pair; other families are not there.
        raise SysError(errno.EOPNOTSUPP if domain in (AF_INET, AF_INET6, AF_NETLINK, AF_PACKET)
                       else errno.EAFNOSUPPORT)
    if signed32(protocol) not in (0, AF_UNIX):
        raise SysError(errno.EPROTONOSUPPORT)
    if base == SOCK_RAW:
        base = SOCK_DGRAM                       # as unix_create
    if base not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        raise SysError(errno.ESOCKTNOSUPPORT)
    return base


@syscall("socketpair", "dddp")
def sys_socketpair(k: Kernel, p: Process, domain: int, kind: int, protocol: int, sv: int) -> int:
    """Two connected AF_UNIX sockets, their descriptors in sv[0] and sv[1]."""
    base = check_kind(domain, kind, protocol)
    pair = Pair(k.wakeup)
    creds = (p.tgid, sys_geteuid(k, p), sys_getegid(k, p))
    a = Socket(pair, base, signed32(protocol), kind, creds)
    b = Socket(pair, base, signed32(protocol), kind, creds)
    a.peer, b.peer = b, a
    return install_pair(k, p, a, b, bool(kind & SOCK_CLOEXEC), sv)


# -- names ----------------------------------------------------------------------------------------

def find_named(k: Kernel, p: Process, addr: int, addrlen: int) -> None:
    """Look up the named socket at a struct sockaddr_un: always an error, since none exists (EINVAL for
    a bad address; ENOENT or the like for a missing path; EACCES for a host socket, which the guest may
    not reach; ECONNREFUSED for anything else)."""
    addrlen = signed32(addrlen)
    if addrlen <= SUN_PATH_OFFSET or addrlen > SOCKADDR_UN_SIZE:
        raise SysError(errno.EINVAL)
    raw = k.copyin(p, addr, addrlen)
    if int.from_bytes(raw[:2], "little") != AF_UNIX:
        raise SysError(errno.EINVAL)
    path = raw[SUN_PATH_OFFSET:]
    if path[0] == 0:
        raise SysError(errno.ECONNREFUSED)     # an abstract name nobody bound
    host = namei(k, p, AT_FDCWD, path.split(b"\0")[0])[1]
    st = os.stat(host)
    if statmod.S_ISSOCK(st.st_mode) or not os.access(host, os.W_OK):
        raise SysError(errno.EACCES)
    raise SysError(errno.ECONNREFUSED)


def copy_addr_out(k: Kernel, p: Process, addr: int, addrlen: int, data: bytes) -> None:
    """move_addr_to_user: as much of a socket address as *addrlen allows, and its real length."""
    if not addr or not addrlen:
        return
    room = signed32(int.from_bytes(k.copyin(p, addrlen, 4), "little"))
    if room < 0:
        raise SysError(errno.EINVAL)
    if data and room:
        k.copyout(p, addr, data[:room])
    k.copyout(p, addrlen, struct.pack("<I", len(data)))


UNNAMED = struct.pack("<H", AF_UNIX)            # an unnamed AF_UNIX address: the family alone


@syscall32("getsockname", "dpp")
@syscall("getsockname", "dpp")
def sys_getsockname(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    get_socket(p, fd)
    copy_addr_out(k, p, addr, addrlen, UNNAMED)
    return 0


@syscall32("getpeername", "dpp")
@syscall("getpeername", "dpp")
def sys_getpeername(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    if get_socket(p, fd).peer is None:
        raise SysError(errno.ENOTCONN)
    copy_addr_out(k, p, addr, addrlen, UNNAMED)
    return 0


@syscall32("bind", "dpu")
@syscall("bind", "dpu")
def sys_bind(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    """Refused (EACCES): a name would be a socket file, and there are no named sockets."""
    get_socket(p, fd)
    raise SysError(errno.EACCES)


@syscall32("connect", "dpu")
@syscall("connect", "dpu")
def sys_connect(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    """A datagram socket disconnects with AF_UNSPEC; otherwise the named socket is looked up, in vain."""
    sock = get_socket(p, fd)
    if sock.kind == SOCK_DGRAM:
        if signed32(addrlen) < 2:
            raise SysError(errno.EINVAL)
        if int.from_bytes(k.copyin(p, addr, 2), "little") == AF_UNSPEC:
            sock.peer = None
            return 0
    find_named(k, p, addr, addrlen)
    return 0


@syscall32("listen", "dd")
@syscall("listen", "dd")
def sys_listen(k: Kernel, p: Process, fd: int, backlog: int) -> int:
    """A socketpair's socket is connected and unnamed: it cannot listen."""
    sock = get_socket(p, fd)
    raise SysError(errno.EOPNOTSUPP if sock.kind == SOCK_DGRAM else errno.EINVAL)


@syscall("accept", "dpp")
def sys_accept(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    return sys_accept4(k, p, fd, addr, addrlen, 0)


@syscall32("accept4", "dppx")
@syscall("accept4", "dppx")
def sys_accept4(k: Kernel, p: Process, fd: int, addr: int, addrlen: int, flags: int) -> int:
    """Nothing listens, so nothing is accepted."""
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SysError(errno.EINVAL)
    sock = get_socket(p, fd)
    raise SysError(errno.EOPNOTSUPP if sock.kind == SOCK_DGRAM else errno.EINVAL)


# -- sending and receiving ------------------------------------------------------------------------

def check_destination(k: Kernel, p: Process, sock: Socket, addr: int, addrlen: int) -> None:
    """A destination given to a connected socket: a stream refuses it (EISCONN), a seqpacket socket
    ignores it, a datagram socket would look the name up."""
    addrlen = signed32(addrlen)
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE_SIZE:
        raise SysError(errno.EINVAL)
    if not addr or not addrlen or sock.kind == SOCK_SEQPACKET:
        return
    if sock.kind == SOCK_STREAM:
        raise SysError(errno.EISCONN)
    find_named(k, p, addr, addrlen)


def send_data(sock: Socket, data: bytes, files: list[File] | None, flags: int) -> int:
    """Send with MSG_* flags: the count sent."""
    if flags & MSG_OOB:
        raise SysError(errno.EOPNOTSUPP)
    try:
        if not data and sock.kind == SOCK_STREAM:
            return sock.write(b"")
        return sock.send(data, files, nonblocking(sock, flags))
    except SysError as err:
        raise send_failed(err, flags) from None


@syscall32("sendto", "dbuxpu")
@syscall("sendto", "dbuxpu")
def sys_sendto(k: Kernel, p: Process, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    sock = get_socket(p, fd)
    if addr:
        check_destination(k, p, sock, addr, addrlen)
    return send_data(sock, k.copyin(p, buf, min(length, MAX_IO)), None, flags)


@syscall32("recvfrom", "dBuxpp")
@syscall("recvfrom", "dBuxpp")
def sys_recvfrom(k: Kernel, p: Process, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    """A recv; the sender's address is unnamed, so *addrlen becomes 0."""
    sock = get_socket(p, fd)
    data, files, result, _ = sock.receive(min(length, MAX_IO), flags, nonblocking(sock, flags))
    drop_files(files)
    k.copyout(p, buf, data)
    copy_addr_out(k, p, addr, addrlen, b"")
    return result


def read_iovecs(k: Kernel, p: Process, iov: int, count: int, bits: int) -> list[tuple[int, int]]:
    """A msghdr's iovec array (EMSGSIZE beyond UIO_MAXIOV, EINVAL for a negative length)."""
    if count > UIO_MAXIOV:
        raise SysError(errno.EMSGSIZE)
    layout = IOVEC[bits]
    raw = k.copyin(p, iov, layout.size * count) if count else b""
    vectors = [layout.unpack_from(raw, i * layout.size) for i in range(count)]
    if any(length >> (bits - 1) for _, length in vectors):
        raise SysError(errno.EINVAL)
    return vectors


def control_files(k: Kernel, p: Process, control: int, length: int, bits: int) -> list[File] | None:
    """The files of a sendmsg's SCM_RIGHTS messages (EBADF, EINVAL as __scm_send); None without any."""
    head = CMSGHDR[bits]
    align = bits // 8
    if length > 0x7FFF_FFFF:
        raise SysError(errno.ENOBUFS)
    raw = k.copyin(p, control, length) if length >= head.size else b""
    files: list[File] = []
    at = 0
    while at + head.size <= len(raw):
        cmsg_len, level, kind = head.unpack_from(raw, at)
        if cmsg_len < head.size or cmsg_len > len(raw) - at:
            raise SysError(errno.EINVAL)
        if level == SOL_SOCKET:
            body = raw[at + head.size:at + cmsg_len]
            if kind == SCM_RIGHTS:
                fds = struct.unpack(f"<{len(body) // 4}i", body[:len(body) // 4 * 4])
                if len(files) + len(fds) > SCM_MAX_FD:
                    raise SysError(errno.EINVAL)
                files += [p.files.get(fd) for fd in fds]
            elif kind != SCM_CREDENTIALS or len(body) != UCRED.size:
                raise SysError(errno.EINVAL)
        at += (cmsg_len + align - 1) // align * align
    return files or None


@syscall32("sendmsg", "dpx")
@syscall("sendmsg", "dpx")
def sys_sendmsg(k: Kernel, p: Process, fd: int, msg: int, flags: int) -> int:
    """sendmsg with the caller's struct msghdr (its ABI's layout): the iovecs' bytes and any SCM_RIGHTS."""
    sock = get_socket(p, fd)
    return send_msghdr(k, p, sock, msg, flags)


def send_msghdr(k: Kernel, p: Process, sock: Socket, msg: int, flags: int) -> int:
    """Send what one struct msghdr describes."""
    layout = MSGHDR[p.bits]
    name, namelen, iov, iovlen, control, controllen, _ = layout.unpack(k.copyin(p, msg, layout.size))
    vectors = read_iovecs(k, p, iov, iovlen, p.bits)
    files = control_files(k, p, control, controllen, p.bits) if controllen else None
    if name:
        check_destination(k, p, sock, name, namelen)
    data = b"".join(k.copyin(p, base, min(length, MAX_IO)) for base, length in vectors)
    return send_data(sock, data[:MAX_IO], files, flags)


def install_files(k: Kernel, p: Process, files: list[File], control: int, room: int, cloexec: bool) -> tuple[int, bool]:
    """Give received files descriptors and write their SCM_RIGHTS message into the control buffer:
    (bytes of control used, whether some did not fit (MSG_CTRUNC); those are closed)."""
    head = CMSGHDR[p.bits]
    fit = max(0, (room - head.size) // 4) if room > head.size else 0
    fds = []
    for i, f in enumerate(files):
        if i < fit:
            try:
                fds.append(p.files.install(f, cloexec))
            except SysError:
                fit = i
        f.refs -= 1                             # no longer in flight (a descriptor holds it, or none)
        if f.refs == 0:
            f.release()
    if not fds:
        return 0, bool(files)
    length = head.size + 4 * len(fds)
    k.copyout(p, control, head.pack(length, SOL_SOCKET, SCM_RIGHTS) + struct.pack(f"<{len(fds)}i", *fds))
    align = p.bits // 8
    return min(room, (length + align - 1) // align * align), len(fds) < len(files)


@syscall32("recvmsg", "dpx")
@syscall("recvmsg", "dpx")
def sys_recvmsg(k: Kernel, p: Process, fd: int, msg: int, flags: int) -> int:
    """recvmsg with the caller's struct msghdr: data scattered over the iovecs, files as SCM_RIGHTS, and
    msg_namelen, msg_controllen and msg_flags (MSG_TRUNC, MSG_CTRUNC) written back."""
    sock = get_socket(p, fd)
    return receive_msghdr(k, p, sock, msg, flags, nonblocking(sock, flags))


def receive_msghdr(k: Kernel, p: Process, sock: Socket, msg: int, flags: int, nonblock: bool) -> int:
    """Receive into what one struct msghdr describes."""
    layout = MSGHDR[p.bits]
    name, namelen, iov, iovlen, control, controllen, _ = layout.unpack(k.copyin(p, msg, layout.size))
    vectors = read_iovecs(k, p, iov, iovlen, p.bits)
    total = min(sum(length for _, length in vectors), MAX_IO)
    data, files, result, msg_flags = sock.receive(total, flags, nonblock)
    at = 0
    for base, length in vectors:
        if at >= len(data):
            break
        k.copyout(p, base, data[at:at + length])
        at += length
    used, ctrunc = install_files(k, p, files, control, controllen, bool(flags & MSG_CMSG_CLOEXEC)) \
        if files else (0, False)
    if ctrunc:
        msg_flags |= MSG_CTRUNC
    out = bytearray(k.copyin(p, msg, layout.size))
    fields = list(layout.unpack(out))
    if name:
        fields[1] = 0                           # the sender is unnamed
    fields[5] = used
    fields[6] = msg_flags
    k.copyout(p, msg, layout.pack(*fields))
    return result


@syscall32("sendmmsg", "dpux")
@syscall("sendmmsg", "dpux")
def sys_sendmmsg(k: Kernel, p: Process, fd: int, msgvec: int, vlen: int, flags: int) -> int:
    """Several sendmsg: the count sent; an error after the first message ends the run quietly."""
    sock = get_socket(p, fd)
    size = MMSG_SIZE[p.bits]
    sent = 0
    for i in range(min(vlen, UIO_MAXIOV)):
        try:
            n = send_msghdr(k, p, sock, msgvec + i * size, flags)
        except (SysError, Block):
            if sent:
                return sent
            raise
        k.copyout(p, msgvec + i * size + MSGHDR[p.bits].size, struct.pack("<I", n))
        sent += 1
    return sent


@syscall32("recvmmsg_time64", "dpuxp")
@syscall32("recvmmsg", "dpuxp")
@syscall("recvmmsg", "dpuxp")
def sys_recvmmsg(k: Kernel, p: Process, fd: int, msgvec: int, vlen: int, flags: int, timeout: int) -> int:
    """Several recvmsg: waits for the first message only (as with MSG_WAITFORONE), then takes what is
    queued. A timeout is not supported (EINVAL)."""
    if timeout:
        raise SysError(errno.EINVAL)
    sock = get_socket(p, fd)
    size = MMSG_SIZE[p.bits]
    got = 0
    for i in range(min(vlen, UIO_MAXIOV)):
        try:
            n = receive_msghdr(k, p, sock, msgvec + i * size, flags, got > 0 or nonblocking(sock, flags))
        except (SysError, Block):
            if got:
                return got
            raise
        k.copyout(p, msgvec + i * size + MSGHDR[p.bits].size, struct.pack("<I", n))
        got += 1
        if n == 0 and sock.kind == SOCK_STREAM:
            break
    return got


@syscall32("shutdown", "dd")
@syscall("shutdown", "dd")
def sys_shutdown(k: Kernel, p: Process, fd: int, how: int) -> int:
    sock = get_socket(p, fd)
    how = signed32(how)
    if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
        raise SysError(errno.EINVAL)
    sock.shut(how + 1)
    return 0


# -- options --------------------------------------------------------------------------------------

def option_value(sock: Socket, name: int) -> bytes:
    """A SOL_SOCKET option's value as getsockopt returns it (ENOPROTOOPT for one not kept)."""
    if name == SO_PEERCRED:
        return UCRED.pack(*sock.creds)
    if name == SO_ERROR:
        code, sock.error = sock.error, 0
        value = code
    elif name in BOOL_OPTIONS:
        value = sock.options.get(name, 0)
    else:
        values = {SO_TYPE: sock.kind, SO_DOMAIN: AF_UNIX, SO_PROTOCOL: sock.protocol, SO_ACCEPTCONN: 0,
                  SO_SNDBUF: sock.sndbuf, SO_RCVBUF: sock.rcvbuf}
        if name not in values:
            raise SysError(errno.ENOPROTOOPT)
        value = values[name]
    return struct.pack("<i", value)


@syscall32("getsockopt", "dddpp")
@syscall("getsockopt", "dddpp")
def sys_getsockopt(k: Kernel, p: Process, fd: int, level: int, name: int, optval: int, optlen: int) -> int:
    sock = get_socket(p, fd)
    if signed32(level) != SOL_SOCKET:
        raise SysError(errno.EOPNOTSUPP)
    room = signed32(int.from_bytes(k.copyin(p, optlen, 4), "little"))
    if room < 0:
        raise SysError(errno.EINVAL)
    value = option_value(sock, signed32(name))[:room]
    k.copyout(p, optval, value)
    k.copyout(p, optlen, struct.pack("<I", len(value)))
    return 0


@syscall32("setsockopt", "dddpu")
@syscall("setsockopt", "dddpu")
def sys_setsockopt(k: Kernel, p: Process, fd: int, level: int, name: int, optval: int, optlen: int) -> int:
    """SO_SNDBUF and SO_RCVBUF (doubled, capped by the host's net.core maxima, as Linux) and the options
    that mean nothing to an AF_UNIX socket; others are ENOPROTOOPT."""
    sock = get_socket(p, fd)
    if signed32(level) != SOL_SOCKET:
        raise SysError(errno.EOPNOTSUPP)
    if signed32(optlen) < 4:
        raise SysError(errno.EINVAL)
    value = int.from_bytes(k.copyin(p, optval, 4), "little")
    name = signed32(name)
    if name == SO_SNDBUF:
        sock.sndbuf = max(min(value, WMEM_MAX, 0x3FFF_FFFF) * 2, SOCK_MIN_SNDBUF)
        sock.pair.changed()
    elif name == SO_RCVBUF:
        sock.rcvbuf = max(min(value, RMEM_MAX, 0x3FFF_FFFF) * 2, SOCK_MIN_RCVBUF)
    elif name in BOOL_OPTIONS:
        sock.options[name] = int(value != 0)
    else:
        raise SysError(errno.ENOPROTOOPT)
    return 0

