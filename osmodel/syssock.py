"""Sockets: local (AF_UNIX) sockets between guest processes, as socketpair and socket() make them.

socketpair(AF_UNIX, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) gives two connected sockets, each with
its receive queue (what its peer sent). A stream queue holds a byte stream cut into the sender's
buffers (skbs); a datagram or seqpacket queue keeps message boundaries, and a read shorter than a
message truncates it (MSG_TRUNC). A sender is charged each buffer's size as Linux accounts it
(truesize) against its SO_SNDBUF until the receiver consumes it, so as many writes fit before EAGAIN
as natively. Descriptors travel with SCM_RIGHTS (the open files themselves, as on Linux); credentials
(SO_PASSCRED, SCM_CREDENTIALS) are not delivered. A blocking stream write that does not fit returns
the count that did, as a signal would leave it natively. Waiters sleep on a socket's channel
(Socket.channel), which the two ends of a connection share.

socket(AF_UNIX, ...) makes an unconnected socket. bind names it with a path (a socket file appears in
the host file system: a host AF_UNIX socket bound there, kept open while the guest's is, pins its
inode, which is what the kernel-wide registry (Names) knows it by), in the abstract namespace
(sun_path[0] == 0), or automatically (5 hex digits, as Linux's autobind). A stream or seqpacket socket
listens; connect makes the server's end at once and queues it on the listener (its backlog, as
unix_stream_connect), and accept takes it from there. Datagram sockets send to a name or to the peer
connect chose, and a receiver learns the sender's name. A socket file whose socket belongs to a host
process is never reached (ECONNREFUSED): there is no bridge to host sockets. Other families (the
network) are refused with EACCES, the errno Linux gives when a security policy forbids creating a
socket; glibc's NSS and syslog clients fall back, as they do natively without those daemons.

The i386 entry points with structures of their own (msghdr, cmsghdr, mmsghdr) are registered here
with @syscall32; a handler also picks the layout by the caller's ABI, which serves socketcall.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import random
import socket as hostsocket
import struct
import weakref
from collections import deque
from typing import TYPE_CHECKING, Callable

from osmodel.files import POLLERR, POLLHUP, POLLIN, POLLOUT, Block, File, SysError
from osmodel.syscall import AT_FDCWD, signed32, syscall, syscall32
from osmodel.sysfile import MAX_IO, UIO_MAXIOV, install_pair, iovecs, namei, scatter
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
TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10     # a socket's sk_state
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SCM_MAX_FD = 253
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE = 7, 8, 9, 10
SO_PEERCRED, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN = 17, 30, 38, 39
BOOL_OPTIONS = (SO_DEBUG, SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE)  # no effect on AF_UNIX
POLLRDHUP = 0x2000
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
NO_CREDS = (0, 0xFFFF_FFFF, 0xFFFF_FFFF)  # SO_PEERCRED of a socket without a peer (cred_to_ucred)
AUTOBIND_NAMES = 0x100000                 # autobind's names: 5 hex digits

# struct msghdr, struct cmsghdr and struct mmsghdr of each ABI: (layout, alignment of a cmsg).
MSGHDR = {64: struct.Struct("<QI4xQQQQi4x"), 32: struct.Struct("<IIIIIIi")}
CMSGHDR = {64: struct.Struct("<Qii"), 32: struct.Struct("<Iii")}
MMSG_SIZE = {64: 64, 32: 32}              # sizeof(struct mmsghdr): msghdr, msg_len, padding


def sysctl(name: str, default: int) -> int:
    """The host's net.* setting (the guest's buffers and queues size as natively), or Linux's default."""
    try:
        with open(f"/proc/sys/net/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


WMEM_DEFAULT, RMEM_DEFAULT = sysctl("core/wmem_default", 212992), sysctl("core/rmem_default", 212992)
WMEM_MAX, RMEM_MAX = sysctl("core/wmem_max", 212992), sysctl("core/rmem_max", 212992)
SOMAXCONN = sysctl("core/somaxconn", 4096)
MAX_DGRAM_QLEN = sysctl("unix/max_dgram_qlen", 10)


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
    """What the waiters of a socket sleep on; the two ends of a connection share one."""

    def __init__(self, wakeup):
        self.wakeup = wakeup

    def changed(self) -> None:
        """Wake everyone waiting on the sockets that share it."""
        self.wakeup(self)


def notify(*socks: Socket | None) -> None:
    """Wake the waiters of these sockets (each channel once)."""
    woken: list[Pair] = []
    for sock in socks:
        if sock is not None and not any(sock.pair is pair for pair in woken):
            woken.append(sock.pair)
            sock.pair.changed()


def drop_files(files: list[File] | None) -> None:
    """Let go of in-flight files that nobody will receive."""
    for f in files or ():
        f.refs -= 1
        if f.refs == 0:
            f.release()


class Socket(File):
    """One AF_UNIX socket: unconnected, listening, or one end of a connection."""

    def __init__(self, pair: Pair, kind: int, protocol: int, flags: int, creds: tuple[int, int, int]):
        super().__init__("socket:", os.O_RDWR | (flags & os.O_NONBLOCK))
        self.pair = pair
        self.kind = kind
        self.protocol = protocol
        self.creds = creds                      # the creator's pid, euid, egid (fstat's owner)
        self.peercred = NO_CREDS                # SO_PEERCRED
        self.state = TCP_CLOSE
        self.peer: Socket | None = None
        self.queue: deque[Chunk] = deque()      # what the peer sent, not yet read
        self.backlog: deque[Socket] = deque()   # a listener's connections not yet accepted
        self.max_backlog = MAX_DGRAM_QLEN       # sk_max_ack_backlog: listen's, or the datagram queue's
        self.addr: bytes | None = None          # its name, a struct sockaddr_un of the bound length
        self.binding: Binding | None = None     # the registration of the name it bound (not inherited)
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

    def send(self, data: bytes, files: list[File] | None, nonblock: bool, to: Lookup | None = None) -> int:
        """Queue data (and files) for the peer, or a datagram for the socket `to` finds; the bytes sent.
        May raise Block; ENOTCONN without a peer, EPIPE once shut down."""
        if self.kind != SOCK_STREAM:
            return self.send_message(to, data, files, nonblock)
        peer = self.peer
        if peer is None:
            raise SysError(errno.ENOTCONN)
        if self.shutdown & SEND_SHUTDOWN or peer.closed or peer.shutdown & RCV_SHUTDOWN:
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

    def send_message(self, to: Lookup | None, data: bytes, files: list[File] | None, nonblock: bool) -> int:
        """Queue one datagram or seqpacket message for the peer or the named socket (unix_dgram_sendmsg)."""
        if self.kind == SOCK_SEQPACKET and self.state != TCP_ESTABLISHED or to is None and self.peer is None:
            raise SysError(errno.ENOTCONN)
        if len(data) > self.sndbuf - 32:
            raise SysError(errno.EMSGSIZE)
        if self.shutdown & SEND_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if self.wmem >= self.sndbuf:
            self.wait_for_room(nonblock)
        dest = to() if to is not None else self.peer
        assert dest is not None
        if dest.peer is not None and dest.peer is not self:
            raise SysError(errno.EPERM)         # it is connected to another socket
        if dest.closed:
            if self.kind == SOCK_SEQPACKET:
                raise SysError(errno.EPIPE)
            if self.peer is dest:               # a datagram socket forgets its dead peer
                self.peer, self.state = None, TCP_CLOSE
                self.disconnected(dest)
            raise SysError(errno.ECONNREFUSED)
        if dest.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if dest.queue_full(self):
            if nonblock:
                raise SysError(errno.EAGAIN)
            raise Block(dest.pair)
        self.deliver(dest, data, files, dgram_truesize(len(data)))
        return len(data)

    def queue_full(self, sender: Socket) -> bool:
        """Whether a datagram from sender must wait: the queue is past its length, and sender is neither
        this socket nor its peer (unix_recvq_full, which mutually connected sockets skip)."""
        return sender is not self and self.peer is not sender and len(self.queue) > self.max_backlog

    def wait_for_room(self, nonblock: bool) -> None:
        """The send buffer is full: EAGAIN, or sleep until the peer reads."""
        if nonblock:
            raise SysError(errno.EAGAIN)
        raise Block(self.pair)

    def deliver(self, dest: Socket, data: bytes, files: list[File] | None, cost: int) -> None:
        """Put one skb on dest's queue, charged to this socket."""
        for f in files or ():
            f.refs += 1                         # in flight: the sender may close its descriptor
        dest.queue.append(Chunk(bytes(data), list(files) if files else None, cost, self))
        self.wmem += cost
        notify(self, dest)

    def disconnected(self, old: Socket) -> None:
        """A datagram socket left its peer: what it queued is lost, and a peer connected back to it gets
        ECONNRESET (unix_dgram_disconnected)."""
        if not self.queue:
            return
        for chunk in list(self.queue):
            self.consume(chunk)
        if not old.closed and old.peer is self:
            old.error = errno.ECONNRESET
            notify(old)

    # -- receiving --

    def receive(self, size: int, flags: int, nonblock: bool) -> tuple[bytes, list[File], int, int, Socket | None]:
        """Read up to size bytes: (data, files received, the length recv returns, MSG_* flags for
        msg_flags, the socket that sent it). May raise Block; EOF is empty data. The files are the
        caller's to install."""
        if self.state != TCP_ESTABLISHED and self.kind != SOCK_DGRAM:
            raise SysError(errno.EINVAL if self.kind == SOCK_STREAM else errno.ENOTCONN)
        if flags & MSG_OOB:
            raise SysError(errno.EINVAL if self.kind == SOCK_STREAM else errno.EOPNOTSUPP)
        if self.error and self.kind != SOCK_STREAM:
            self.nothing_queued(nonblock)       # a message read reports a pending error first
        if not self.queue:
            self.nothing_queued(nonblock)
            return b"", [], 0, 0, None          # the end of the stream
        if self.kind == SOCK_STREAM:
            if flags & MSG_WAITALL and not flags & MSG_PEEK:
                self.wait_all(size, nonblock)
            sender = self.queue[0].sender
            data, files = self.take_stream(size, flags & MSG_PEEK)
            return data, files, len(data), 0, sender
        chunk = self.queue[0]
        files = self.take_files(chunk, flags & MSG_PEEK)
        if not flags & MSG_PEEK:
            self.consume(chunk)
        data = chunk.data[:size]
        truncated = len(chunk.data) > size
        length = len(chunk.data) if flags & MSG_TRUNC else len(data)
        return data, files, length, MSG_TRUNC if truncated else 0, chunk.sender

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
        notify(self, chunk.sender)

    # -- the File interface --

    def read(self, size: int) -> bytes:
        if size == 0:
            return b""                          # read(2) of nothing consumes nothing, even a datagram
        data, files, _, _, _ = self.receive(size, 0, bool(self.flags & os.O_NONBLOCK))
        drop_files(files)
        return data

    def write(self, data: bytes) -> int:
        if not data and self.kind == SOCK_STREAM:
            if self.peer is None:
                raise SysError(errno.ENOTCONN)
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
        """unix_poll, and unix_dgram_poll for datagram and seqpacket sockets."""
        mask = POLLERR if self.error else 0
        if self.shutdown == SHUTDOWN_MASK:
            mask |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            mask |= POLLRDHUP | POLLIN
        if self.queue or self.backlog:
            mask |= POLLIN
        if self.kind != SOCK_DGRAM and self.state == TCP_CLOSE:
            mask |= POLLHUP
        writable = self.state != TCP_LISTEN and self.wmem * 4 <= self.sndbuf
        if writable and self.kind != SOCK_STREAM and self.peer is not None and self.peer.queue_full(self):
            writable = False
        if writable:
            mask |= POLLOUT
        return mask & (events | POLLERR | POLLHUP)

    def shut(self, mode: int) -> None:
        """shutdown: stop receiving and/or sending; a stream or seqpacket peer sees the other half."""
        self.shutdown |= mode
        peer = self.peer
        if peer is not None and self.kind != SOCK_DGRAM:
            peer.shutdown |= (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
        notify(self, peer)

    def release(self) -> None:
        self.close_down(embryo=False)

    def close_down(self, embryo: bool) -> None:
        """unix_release_sock: the name is gone, what was queued is dropped, connections a listener had not
        accepted are closed, and a connected peer sees the end (ECONNRESET if data, or the connection
        itself, was never read)."""
        self.closed = True
        if self.binding is not None:
            self.binding.drop()
            self.binding = None
        unread = bool(self.queue)
        for chunk in list(self.queue):
            self.consume(chunk)
        while self.backlog:
            self.backlog.popleft().close_down(embryo=True)
        peer = self.peer
        if peer is not None and self.kind != SOCK_DGRAM:
            peer.shutdown = SHUTDOWN_MASK
            if unread or embryo:
                peer.error = errno.ECONNRESET
        self.peer = None
        notify(self, peer)


Lookup = Callable[[], Socket]           # finds the socket a datagram is sent to (unix_find_other)


class Binding:
    """A name a socket bound, in the kernel's registry (Names): an abstract name, or a socket file by
    its (device, inode), with the host socket that made the file and keeps its inode alive."""

    def __init__(self, table: dict, key: object, sock: Socket, host: hostsocket.socket | None = None):
        self.table, self.key, self.host = table, key, host
        table[key] = sock

    def drop(self) -> None:
        """Forget the name (a socket file stays on disk, as on Linux, until unlinked)."""
        self.table.pop(self.key, None)
        if self.host is not None:
            self.host.close()


class Names:
    """The kernel-wide AF_UNIX names: abstract ones by name, socket files by (device, inode)."""

    def __init__(self, seed: int):
        self.abstract: dict[bytes, Socket] = {}
        self.files: dict[tuple[int, int], Socket] = {}
        self.random = random.Random(f"unix:{seed}")     # autobind's first name, repeatable per --seed


_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def names_of(k: Kernel) -> Names:
    """The kernel's registry of AF_UNIX names."""
    names = _names.get(k)
    if names is None:
        names = _names[k] = Names(k.config.seed)
    return names


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

def creds_of(k: Kernel, p: Process) -> tuple[int, int, int]:
    """The calling process's pid, euid and egid (what SO_PEERCRED reports of it)."""
    return p.tgid, sys_geteuid(k, p), sys_getegid(k, p)


@syscall("socket", "ddd")
def sys_socket(k: Kernel, p: Process, domain: int, kind: int, protocol: int) -> int:
    """An unconnected AF_UNIX socket. Other families (the network) are refused with EACCES, as under a
    policy that forbids them."""
    base = check_kind(domain, kind, protocol, pair=False)
    sock = Socket(Pair(k.wakeup), base, signed32(protocol), kind, creds_of(k, p))
    return p.files.install(sock, bool(kind & SOCK_CLOEXEC))


def check_kind(domain: int, kind: int, protocol: int, pair: bool) -> int:
    """The AF_UNIX socket type socket or socketpair makes, or the errno Linux gives for the domain, type
    and protocol."""
    kind = signed32(kind)
    base = kind & SOCK_TYPE_MASK
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SysError(errno.EINVAL)
    domain = signed32(domain)
    if not 0 <= domain < NPROTO:
        raise SysError(errno.EAFNOSUPPORT)
    if base >= SOCK_MAX:
        raise SysError(errno.EINVAL)
    if domain != AF_UNIX and not pair:
        raise SysError(errno.EACCES)            # security_socket_create: the policy refuses the network
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
    base = check_kind(domain, kind, protocol, pair=True)
    pair = Pair(k.wakeup)
    creds = creds_of(k, p)
    a = Socket(pair, base, signed32(protocol), kind, creds)
    b = Socket(pair, base, signed32(protocol), kind, creds)
    a.peer, b.peer = b, a
    for sock in (a, b):
        sock.state, sock.peercred = TCP_ESTABLISHED, creds
    return install_pair(k, p, a, b, bool(kind & SOCK_CLOEXEC), sv)


# -- names ----------------------------------------------------------------------------------------

UNNAMED = struct.pack("<H", AF_UNIX)            # an unnamed AF_UNIX address: the family alone


def copy_addr_in(k: Kernel, p: Process, addr: int, addrlen: int) -> bytes:
    """move_addr_to_kernel: the addrlen bytes of a socket address (EINVAL beyond sockaddr_storage)."""
    addrlen = signed32(addrlen)
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE_SIZE:
        raise SysError(errno.EINVAL)
    return k.copyin(p, addr, addrlen) if addrlen else b""


def family(raw: bytes) -> int:
    """A socket address's sa_family (AF_UNSPEC if too short to hold one)."""
    return int.from_bytes(raw[:2], "little") if len(raw) >= 2 else AF_UNSPEC


def check_unix_addr(raw: bytes) -> None:
    """unix_validate_addr: a struct sockaddr_un with at least one byte of sun_path (EINVAL)."""
    if len(raw) <= SUN_PATH_OFFSET or len(raw) > SOCKADDR_UN_SIZE or family(raw) != AF_UNIX:
        raise SysError(errno.EINVAL)


def sun_path(raw: bytes) -> bytes:
    """The file name in a struct sockaddr_un: sun_path up to its first NUL."""
    return raw[SUN_PATH_OFFSET:].split(b"\0")[0]


def find_other(k: Kernel, p: Process, raw: bytes, kind: int) -> Socket:
    """unix_find_other: the guest socket a valid AF_UNIX address names. A path is looked up as a file
    (its errors; EACCES without write permission), then its socket by inode; nobody there, a host
    process's socket, or a name no socket holds is ECONNREFUSED, another socket type EPROTOTYPE."""
    names = names_of(k)
    name = raw[SUN_PATH_OFFSET:]
    if name[0]:
        host = namei(k, p, AT_FDCWD, sun_path(raw))[1]
        try:
            st = os.stat(host)
        except OSError as err:
            raise SysError(err.errno) from None
        if not os.access(host, os.W_OK):
            raise SysError(errno.EACCES)
        sock = names.files.get((st.st_dev, st.st_ino)) if statmod.S_ISSOCK(st.st_mode) else None
    else:
        sock = names.abstract.get(name)
    if sock is None:
        raise SysError(errno.ECONNREFUSED)
    if sock.kind != kind:
        raise SysError(errno.EPROTOTYPE)
    return sock


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


def name_of(sock: Socket | None) -> bytes:
    """A socket's address as getsockname gives it (the family alone if it has no name)."""
    return sock.addr if sock is not None and sock.addr is not None else UNNAMED


def sender_name(sock: Socket | None) -> bytes:
    """The address recvfrom reports for what sock sent: its name, or nothing (length 0) if unnamed."""
    return sock.addr if sock is not None and sock.addr is not None else b""


@syscall32("getsockname", "dpp")
@syscall("getsockname", "dpp")
def sys_getsockname(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    sock = get_socket(p, fd)
    copy_addr_out(k, p, addr, addrlen, name_of(sock))
    return 0


@syscall32("getpeername", "dpp")
@syscall("getpeername", "dpp")
def sys_getpeername(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    sock = get_socket(p, fd)
    if sock.peer is None:
        raise SysError(errno.ENOTCONN)
    copy_addr_out(k, p, addr, addrlen, name_of(sock.peer))
    return 0


def make_socket_file(host: str, umask: int) -> hostsocket.socket:
    """A socket file at the host path, made as Linux's bind makes it (mode 0777 less the guest's umask;
    the errors of mknod): a host socket bound there, for the caller to keep open. A path too long for
    sun_path is reached through its directory's /proc/self/fd link."""
    sock = hostsocket.socket(hostsocket.AF_UNIX, hostsocket.SOCK_STREAM)
    old = os.umask(umask & 0o777)
    dirfd = None
    try:
        target = host
        if len(os.fsencode(host)) >= SOCKADDR_UN_SIZE - SUN_PATH_OFFSET:
            dirfd = os.open(os.path.dirname(host) or ".", os.O_PATH | os.O_DIRECTORY)
            target = f"/proc/self/fd/{dirfd}/{os.path.basename(host)}"
        sock.bind(target)
    except OSError as err:
        sock.close()
        raise SysError(err.errno or errno.ENAMETOOLONG) from None
    finally:
        os.umask(old)
        if dirfd is not None:
            os.close(dirfd)
    return sock


def bind_path(k: Kernel, p: Process, sock: Socket, raw: bytes) -> None:
    """unix_bind_bsd: make the socket file (EADDRINUSE if the path exists), then take the name (EINVAL,
    and the file is removed again, if the socket already has one)."""
    path = sun_path(raw)
    host = namei(k, p, AT_FDCWD, path, follow=False)[1]
    if os.path.lexists(host):
        raise SysError(errno.EADDRINUSE)
    k.fs.check_write()
    made = make_socket_file(host, p.umask)
    if sock.addr is not None:
        os.unlink(host)
        made.close()
        raise SysError(errno.EINVAL)
    st = os.lstat(host)
    sock.addr = UNNAMED + path + b"\0"          # its length: offsetof(sun_path) + strlen + 1
    sock.binding = Binding(names_of(k).files, (st.st_dev, st.st_ino), sock, made)


def bind_abstract(k: Kernel, sock: Socket, raw: bytes) -> None:
    """unix_bind_abstract: the name is every byte of sun_path the address length covers."""
    names = names_of(k)
    if sock.addr is not None:
        raise SysError(errno.EINVAL)
    name = raw[SUN_PATH_OFFSET:]
    if name in names.abstract:
        raise SysError(errno.EADDRINUSE)
    sock.addr = raw
    sock.binding = Binding(names.abstract, name, sock)


def autobind(k: Kernel, sock: Socket) -> None:
    """unix_autobind: a free abstract name of 5 hex digits, tried in turn from a random one (nothing to
    do if the socket has a name)."""
    names = names_of(k)
    if sock.addr is not None:
        return
    number = names.random.randrange(AUTOBIND_NAMES)
    for _ in range(AUTOBIND_NAMES):
        name = b"\0" + b"%05x" % number
        if name not in names.abstract:
            sock.addr = UNNAMED + name
            sock.binding = Binding(names.abstract, name, sock)
            return
        number = (number + 1) % AUTOBIND_NAMES
    raise SysError(errno.ENOSPC)


@syscall32("bind", "dpu")
@syscall("bind", "dpu")
def sys_bind(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    """Name a socket: a path, an abstract name, or (the family alone) one chosen by autobind."""
    sock = get_socket(p, fd)
    raw = copy_addr_in(k, p, addr, addrlen)
    if len(raw) == SUN_PATH_OFFSET and family(raw) == AF_UNIX:
        autobind(k, sock)
        return 0
    check_unix_addr(raw)
    if raw[SUN_PATH_OFFSET]:
        bind_path(k, p, sock, raw)
    else:
        bind_abstract(k, sock, raw)
    return 0


@syscall32("connect", "dpu")
@syscall("connect", "dpu")
def sys_connect(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    """Connect a stream or seqpacket socket to a listener; set (or, with AF_UNSPEC, drop) a datagram
    socket's peer."""
    sock = get_socket(p, fd)
    raw = copy_addr_in(k, p, addr, addrlen)
    if sock.kind == SOCK_DGRAM:
        connect_dgram(k, p, sock, raw)
    else:
        connect_stream(k, p, sock, raw)
    return 0


def connect_dgram(k: Kernel, p: Process, sock: Socket, raw: bytes) -> None:
    """unix_dgram_connect: the socket sends to the named one by default and receives only from it."""
    if len(raw) < 2:
        raise SysError(errno.EINVAL)
    other = None
    if family(raw) != AF_UNSPEC:
        check_unix_addr(raw)
        other = find_other(k, p, raw, sock.kind)
        if other.peer is not None and other.peer is not sock:
            raise SysError(errno.EPERM)
        sock.state = TCP_ESTABLISHED
    old, sock.peer = sock.peer, other
    if old is not None:
        if other is None:
            sock.state = TCP_CLOSE
        if other is not old:
            sock.disconnected(old)
    notify(sock, old)


def connect_stream(k: Kernel, p: Process, sock: Socket, raw: bytes) -> None:
    """unix_stream_connect: the server's end of the connection is made now and waits on the listener's
    backlog for accept; the caller is connected to it at once. A full backlog makes a blocking caller
    wait (EAGAIN if nonblocking)."""
    check_unix_addr(raw)
    listener = find_other(k, p, raw, sock.kind)
    if listener.state != TCP_LISTEN or listener.shutdown & RCV_SHUTDOWN:
        raise SysError(errno.ECONNREFUSED)
    if len(listener.backlog) > listener.max_backlog:
        if sock.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        raise Block(listener.pair)
    if sock.state != TCP_CLOSE:
        raise SysError(errno.EISCONN if sock.state == TCP_ESTABLISHED else errno.EINVAL)
    server = Socket(sock.pair, sock.kind, 0, 0, listener.creds)
    server.state, server.peer, server.peercred, server.addr = TCP_ESTABLISHED, sock, creds_of(k, p), listener.addr
    sock.state, sock.peer, sock.peercred = TCP_ESTABLISHED, server, listener.peercred
    listener.backlog.append(server)
    notify(listener, sock)


@syscall32("listen", "dd")
@syscall("listen", "dd")
def sys_listen(k: Kernel, p: Process, fd: int, backlog: int) -> int:
    """unix_listen: a named stream or seqpacket socket, not connected, takes connections; the backlog is
    capped by net.core.somaxconn."""
    sock = get_socket(p, fd)
    if sock.kind == SOCK_DGRAM:
        raise SysError(errno.EOPNOTSUPP)
    if sock.addr is None or sock.state not in (TCP_CLOSE, TCP_LISTEN):
        raise SysError(errno.EINVAL)
    backlog = min(backlog & 0xFFFF_FFFF, SOMAXCONN)
    if backlog > sock.max_backlog:
        notify(sock)                            # connectors waiting for room
    sock.max_backlog, sock.state, sock.peercred = backlog, TCP_LISTEN, creds_of(k, p)
    return 0


@syscall("accept", "dpp")
def sys_accept(k: Kernel, p: Process, fd: int, addr: int, addrlen: int) -> int:
    return sys_accept4(k, p, fd, addr, addrlen, 0)


@syscall32("accept4", "dppx")
@syscall("accept4", "dppx")
def sys_accept4(k: Kernel, p: Process, fd: int, addr: int, addrlen: int, flags: int) -> int:
    """unix_accept: the oldest connection on a listener's backlog gets a descriptor (SOCK_NONBLOCK and
    SOCK_CLOEXEC as asked) and the connecting socket's address is written out. Sleeps while there is
    none (EAGAIN if the listener is nonblocking)."""
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SysError(errno.EINVAL)
    sock = get_socket(p, fd)
    if sock.kind == SOCK_DGRAM:
        raise SysError(errno.EOPNOTSUPP)
    if sock.state != TCP_LISTEN:
        raise SysError(errno.EINVAL)
    if not sock.backlog:
        if sock.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EINVAL)
        if sock.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        raise Block(sock.pair)
    conn = sock.backlog[0]
    conn.flags = os.O_RDWR | (flags & SOCK_NONBLOCK)
    conn.creds = creds_of(k, p)
    newfd = p.files.install(conn, bool(flags & SOCK_CLOEXEC))
    sock.backlog.popleft()
    notify(sock)                                # a connector waiting for room in the backlog
    try:
        copy_addr_out(k, p, addr, addrlen, name_of(conn.peer))
    except SysError:
        p.files.close(newfd)
        raise
    return newfd


# -- sending and receiving ------------------------------------------------------------------------

def destination(k: Kernel, p: Process, sock: Socket, addr: int, addrlen: int) -> Lookup | None:
    """The address a send names: a stream refuses one (EISCONN, or EOPNOTSUPP unconnected), a seqpacket
    socket ignores it, a datagram goes to the socket it names (looked up when sending)."""
    raw = copy_addr_in(k, p, addr, addrlen) if addr else b""
    if not raw or sock.kind == SOCK_SEQPACKET:
        return None
    if sock.kind == SOCK_STREAM:
        raise SysError(errno.EISCONN if sock.state == TCP_ESTABLISHED else errno.EOPNOTSUPP)
    check_unix_addr(raw)
    return lambda: find_other(k, p, raw, sock.kind)


def send_data(sock: Socket, data: bytes, files: list[File] | None, flags: int, to: Lookup | None = None) -> int:
    """Send with MSG_* flags (a datagram to the socket `to` finds): the count sent."""
    if flags & MSG_OOB:
        raise SysError(errno.EOPNOTSUPP)
    try:
        if not data and sock.kind == SOCK_STREAM:
            return sock.write(b"")
        return sock.send(data, files, nonblocking(sock, flags), to)
    except SysError as err:
        raise send_failed(err, flags) from None


@syscall32("sendto", "dbuxpu")
@syscall("sendto", "dbuxpu")
def sys_sendto(k: Kernel, p: Process, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    sock = get_socket(p, fd)
    to = destination(k, p, sock, addr, addrlen)
    return send_data(sock, k.copyin(p, buf, min(length, MAX_IO)), None, flags, to)


@syscall32("recvfrom", "dBuxpp")
@syscall("recvfrom", "dBuxpp")
def sys_recvfrom(k: Kernel, p: Process, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    """A recv; *addr gets the sender's name (a length of 0 if it has none)."""
    sock = get_socket(p, fd)
    data, files, result, _, sender = sock.receive(min(length, MAX_IO), flags, nonblocking(sock, flags))
    drop_files(files)
    k.copyout(p, buf, data)
    copy_addr_out(k, p, addr, addrlen, sender_name(sender))
    return result


def read_iovecs(k: Kernel, p: Process, iov: int, count: int, bits: int) -> list[tuple[int, int]]:
    """A msghdr's iovec array (EMSGSIZE beyond UIO_MAXIOV, EINVAL for a negative length)."""
    if count > UIO_MAXIOV:
        raise SysError(errno.EMSGSIZE)
    return iovecs(k, p, iov, count, bits)


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
    to = destination(k, p, sock, name, min(signed32(namelen), SOCKADDR_STORAGE_SIZE))
    data = b"".join(k.copyin(p, base, min(length, MAX_IO)) for base, length in vectors)
    return send_data(sock, data[:MAX_IO], files, flags, to)


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
    data, files, result, msg_flags, sender = sock.receive(total, flags, nonblock)
    scatter(k, p, vectors, data)
    used, ctrunc = install_files(k, p, files, control, controllen, bool(flags & MSG_CMSG_CLOEXEC)) \
        if files else (0, False)
    if ctrunc:
        msg_flags |= MSG_CTRUNC
    out = bytearray(k.copyin(p, msg, layout.size))
    fields = list(layout.unpack(out))
    if name:
        address = sender_name(sender)           # as much as msg_namelen allows; its real length
        if address and signed32(namelen) > 0:
            k.copyout(p, name, address[:signed32(namelen)])
        fields[1] = len(address)
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
        return UCRED.pack(*sock.peercred)
    if name == SO_ERROR:
        code, sock.error = sock.error, 0
        value = code
    elif name in BOOL_OPTIONS:
        value = sock.options.get(name, 0)
    else:
        values = {SO_TYPE: sock.kind, SO_DOMAIN: AF_UNIX, SO_PROTOCOL: sock.protocol, SO_ACCEPTCONN: int(sock.state == TCP_LISTEN),
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

