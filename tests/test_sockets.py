"""Local sockets between guest processes: socketpair's AF_UNIX stream, datagram and seqpacket sockets.

C programs (static glibc, 64-bit and -m32) use them as programs do (fork and talk, message boundaries,
MSG_PEEK, nonblocking EAGAIN, shutdown, a peer that closes, options, descriptors passed with
SCM_RIGHTS, poll) and print what they see; stdout and exit status must be the native ones. They print
facts that do not depend on the host's kernel version (errno names, counts of whole pages), never pids
or inode numbers.
"""
from __future__ import annotations

import os

import pytest

from conftest import USING_RUN_ELF, compile_static, run_elf, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Print a call's result: its value, or -1 and the errno name. */
#define SHOW(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", r_ == -1 ? strerrorname_np(errno) : ""); \
    fflush(stdout); } while (0)
#define YES(cond) ((cond) ? "yes" : "no")

static int revents(int fd, int events) {
    struct pollfd p = {fd, events, 0};
    poll(&p, 1, 0);
    return p.revents;
}
"""

STREAM_C = COMMON + r"""
/* Ping-pong between a parent and its child, readv/writev, a transfer larger than the buffer, EOF. */
int main(void) {
    int sv[2];
    SHOW("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        char buf[64];
        for (int i = 0; i < 5; i++) {
            ssize_t n = read(sv[1], buf, sizeof buf - 1);
            buf[n] = 0;
            printf("child got %s\n", buf);
            fflush(stdout);
            buf[0] = 'P'; buf[1] = 'O';
            write(sv[1], buf, n);
        }
        char a[3], b[5];
        struct iovec iov[2] = {{a, 3}, {b, 5}};
        ssize_t n = readv(sv[1], iov, 2);
        printf("child readv %zd: %.3s|%.*s\n", n, a, (int)(n - 3), b);
        fflush(stdout);
        /* a megabyte, in writes that may each be cut short */
        static char big[1 << 20];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
        size_t done = 0;
        while (done < sizeof big) {
            ssize_t w = write(sv[1], big + done, sizeof big - done);
            if (w <= 0) { perror("write"); return 1; }
            done += w;
        }
        return 0;
    }
    close(sv[1]);
    char buf[64];
    for (int i = 0; i < 5; i++) {
        char msg[16];
        int len = sprintf(msg, "PI%d", i);
        write(sv[0], msg, len);
        ssize_t n = read(sv[0], buf, sizeof buf - 1);
        buf[n] = 0;
        printf("parent got %s\n", buf);
        fflush(stdout);
    }
    struct iovec out[3] = {{"abc", 3}, {"de", 2}, {"fgh", 3}};
    ssize_t written = writev(sv[0], out, 3);      /* printed later: the child is printing now */
    unsigned long sum = 0, total = 0;
    static char in[70000];
    ssize_t n;
    while ((n = read(sv[0], in, sizeof in)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)in[i];
        total += n;
    }
    printf("writev %zd; received %lu bytes, checksum %lx, then %zd\n", written, total, sum, n);
    int status;
    wait(&status);
    printf("child exited %d\n", WEXITSTATUS(status));
    SHOW("read after EOF", read(sv[0], buf, 10));
    return 0;
}
"""

MESSAGES_C = COMMON + r"""
/* Datagram and seqpacket sockets keep message boundaries; a short read truncates; MSG_PEEK, MSG_TRUNC. */
static void messages(int type, const char *name) {
    int sv[2];
    char buf[64];
    printf("== %s\n", name);
    SHOW("socketpair", socketpair(AF_UNIX, type, 0, sv));
    send(sv[0], "first", 5, 0);
    send(sv[0], "second message", 14, 0);
    send(sv[0], "", 0, 0);
    send(sv[0], "fourth", 6, 0);
    write(sv[0], "fifth", 5);
    SHOW("peek 3", recv(sv[1], buf, 3, MSG_PEEK));
    SHOW("recv 64", recv(sv[1], buf, sizeof buf, 0));
    printf("  data %.5s\n", buf);
    struct iovec iov = {buf, 6};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SHOW("recvmsg 6", recvmsg(sv[1], &m, 0));
    printf("  data %.6s MSG_TRUNC %s\n", buf, YES(m.msg_flags & MSG_TRUNC));
    SHOW("empty message", recv(sv[1], buf, sizeof buf, 0));
    SHOW("recv 2 with MSG_TRUNC", recv(sv[1], buf, 2, MSG_TRUNC));
    SHOW("read 0", read(sv[1], buf, 0));
    SHOW("read 3", read(sv[1], buf, 3));
    SHOW("nothing left", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("too big", send(sv[0], malloc(300000), 300000, 0));
    struct sockaddr_un addr = {AF_UNIX, "/nonexistent/socket"};
    SHOW("sendto a missing name", sendto(sv[0], "x", 1, 0, (struct sockaddr *)&addr, sizeof addr));
    SHOW("connect", connect(sv[0], (struct sockaddr *)&addr, sizeof addr));
    SHOW("listen", listen(sv[0], 1));
    SHOW("accept", accept(sv[0], NULL, NULL));
    send(sv[1], "left over", 9, 0);
    close(sv[1]);
    printf("revents after the peer closed %#x\n", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("recv after the peer closed", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("again", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("send after the peer closed", send(sv[0], "x", 1, MSG_NOSIGNAL));
    SHOW("send again", send(sv[0], "x", 1, MSG_NOSIGNAL));
    close(sv[0]);
}

int main(void) {
    messages(SOCK_DGRAM, "dgram");
    messages(SOCK_SEQPACKET, "seqpacket");
    return 0;
}
"""

NONBLOCK_C = COMMON + r"""
/* A full send buffer: EAGAIN, POLLOUT off, and room again once the peer reads. */
static void fill(int type, const char *name, size_t size) {
    int sv[2];
    static char buf[65536];
    socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv);
    long count = 0, bytes = 0;
    ssize_t n;
    while ((n = send(sv[0], buf, size, 0)) > 0) {
        count++;
        bytes += n;
    }
    printf("%s, %zu-byte sends: ", name, size);
    if (size >= 4096)
        printf("%ld sends, %ld bytes", count, bytes);
    else
        printf("more than 50: %s, fewer than %zu: %s", YES(count > 50), 212992 / size, YES(count < 212992 / size));
    printf(", then %s; POLLOUT %s\n", strerrorname_np(errno), YES(revents(sv[0], POLLOUT) & POLLOUT));
    SHOW("  peer reads", recv(sv[1], buf, size, 0) == (ssize_t)size);
    SHOW("  drained", ({ long d = 0; while (recv(sv[1], buf, sizeof buf, 0) > 0) d++; d > 0; }));
    printf("  POLLOUT %s\n", YES(revents(sv[0], POLLOUT) & POLLOUT));
    SHOW("  empty: recv", recv(sv[1], buf, 10, 0));
    SHOW("  MSG_DONTWAIT on a blocking socket", ({ int b[2]; socketpair(AF_UNIX, type, 0, b);
         recv(b[0], buf, 10, MSG_DONTWAIT); }));
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    fill(SOCK_STREAM, "stream", 1);
    fill(SOCK_STREAM, "stream", 1000);
    fill(SOCK_STREAM, "stream", 65536);
    fill(SOCK_DGRAM, "dgram", 1);
    fill(SOCK_DGRAM, "dgram", 65536);
    fill(SOCK_SEQPACKET, "seqpacket", 65536);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    SHOW("F_GETFL", fcntl(sv[0], F_GETFL));
    int on = 1;
    SHOW("FIONBIO", ioctl(sv[0], FIONBIO, &on));
    SHOW("F_GETFL", fcntl(sv[0], F_GETFL));
    char c;
    SHOW("recv", recv(sv[0], &c, 1, 0));
    send(sv[1], "12345", 5, 0);
    send(sv[1], "678", 3, 0);
    int queued = -1;
    SHOW("FIONREAD", ioctl(sv[0], FIONREAD, &queued));
    printf("  %d bytes\n", queued);
    int p[2];
    pipe(p);
    write(p[1], "abc", 3);
    SHOW("FIONREAD of a pipe", ioctl(p[0], FIONREAD, &queued));
    printf("  %d bytes\n", queued);
    return 0;
}
"""

SHUTDOWN_C = COMMON + r"""
/* shutdown's halves, a peer that closes (with and without unread data), EPIPE and SIGPIPE. */
static void halves(int type, const char *name) {
    int sv[2];
    char buf[16];
    printf("== %s\n", name);
    socketpair(AF_UNIX, type, 0, sv);
    SHOW("shutdown 7", shutdown(sv[0], 7));
    SHOW("SHUT_WR", shutdown(sv[0], SHUT_WR));
    SHOW("send after SHUT_WR", send(sv[0], "x", 1, MSG_NOSIGNAL));
    SHOW("peer sends", send(sv[1], "y", 1, 0));
    SHOW("own recv", recv(sv[0], buf, sizeof buf, 0));
    printf("revents %#x, peer %#x\n", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP),
           revents(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("peer recv", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("SHUT_RD", shutdown(sv[0], SHUT_RD));
    printf("revents %#x, peer %#x\n", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP),
           revents(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("peer sends", send(sv[1], "y", 1, MSG_NOSIGNAL));
    close(sv[0]);
    close(sv[1]);
    socketpair(AF_UNIX, type, 0, sv);
    send(sv[0], "unread", 6, 0);
    close(sv[1]);
    printf("closed with data unread: revents %#x\n", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("recv", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("recv", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    SHOW("write", write(sv[0], "x", 1));
    close(sv[0]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    halves(SOCK_STREAM, "stream");
    halves(SOCK_DGRAM, "dgram");
    halves(SOCK_SEQPACKET, "seqpacket");
    signal(SIGPIPE, SIG_DFL);
    /* A child that writes to a socket whose peer is gone dies of SIGPIPE; MSG_NOSIGNAL spares it. */
    for (int quiet = 0; quiet < 2; quiet++) {
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(sv[0]);
            char c;
            read(sv[1], &c, 1);              /* EOF: the parent closed its end */
            SHOW("child send", send(sv[1], "x", 1, quiet ? MSG_NOSIGNAL : 0));
            _exit(3);
        }
        close(sv[1]);
        close(sv[0]);
        int status;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status))
            printf("child killed by signal %d\n", WTERMSIG(status));
        else
            printf("child exited %d\n", WEXITSTATUS(status));
    }
    /* The blocked reader is woken by its peer's shutdown. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (fork() == 0) {
        char c;
        SHOW("child's blocking read", read(sv[1], &c, 1));
        _exit(0);
    }
    usleep(10000);
    shutdown(sv[0], SHUT_WR);
    wait(NULL);
    /* Now this process itself: its exit status says SIGPIPE. */
    close(sv[1]);
    write(sv[0], "x", 1);
    puts("not reached");
    return 0;
}
"""

OPTIONS_C = COMMON + r"""
/* Socket options, names, fstat and the errors of other domains and types. */
int main(void) {
    int sv[2], v;
    socklen_t len;
    const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW};
    for (int i = 0; i < 4; i++) {
        socketpair(AF_UNIX, types[i], 0, sv);
        len = sizeof v;
        getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len);
        printf("type %d: SO_TYPE %d (len %u)", types[i], v, len);
        len = sizeof v;
        getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &v, &len);
        printf(", SO_DOMAIN %d", v);
        len = sizeof v;
        getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &len);
        printf(", SO_ERROR %d\n", v);
        close(sv[0]);
        close(sv[1]);
    }
    SHOW("socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
    printf("cloexec %d, flags %#x\n", fcntl(sv[0], F_GETFD), fcntl(sv[1], F_GETFL));
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len);
    printf("SO_SNDBUF at least 4608: %s\n", YES(v >= 4608));
    v = 1000;
    SHOW("set SO_SNDBUF 1000", setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len);
    printf("SO_SNDBUF %d\n", v);
    v = 5000;
    SHOW("set SO_RCVBUF 5000", setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, &len);
    printf("SO_RCVBUF %d\n", v);
    v = 1;
    SHOW("set SO_KEEPALIVE", setsockopt(sv[0], SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v));
    len = sizeof v;
    SHOW("get SO_KEEPALIVE", getsockopt(sv[0], SOL_SOCKET, SO_KEEPALIVE, &v, &len));
    printf("  %d\n", v);
    SHOW("short optlen", setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, 2));
    SHOW("level IPPROTO_TCP", setsockopt(sv[0], 6, 1, &v, sizeof v));
    SHOW("unknown option", getsockopt(sv[0], SOL_SOCKET, 9999, &v, &len));
    len = (socklen_t)-1;
    SHOW("negative optlen", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len));
    len = 2;
    v = 0;
    getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len);
    printf("SO_TYPE in 2 bytes: %d, len %u\n", v, len);
    struct ucred cred;
    len = sizeof cred;
    SHOW("SO_PEERCRED", getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cred, &len));
    printf("  len %u, pid mine %s, uid %s, gid %s\n", len, YES(cred.pid == getpid()), YES(cred.uid == geteuid()),
           YES(cred.gid == getegid()));
    if (fork() == 0) {
        len = sizeof cred;
        getsockopt(sv[1], SOL_SOCKET, SO_PEERCRED, &cred, &len);
        printf("child sees the creator's pid: %s\n", YES(cred.pid == getppid()));
        _exit(0);
    }
    wait(NULL);
    struct sockaddr_un addr;
    memset(&addr, 0x55, sizeof addr);
    len = sizeof addr;
    SHOW("getsockname", getsockname(sv[0], (struct sockaddr *)&addr, &len));
    printf("  family %d, len %u, path byte %#x\n", addr.sun_family, len, (unsigned char)addr.sun_path[0]);
    len = sizeof addr;
    SHOW("getpeername", getpeername(sv[0], (struct sockaddr *)&addr, &len));
    printf("  family %d, len %u\n", addr.sun_family, len);
    len = 1;
    SHOW("getsockname in 1 byte", getsockname(sv[0], (struct sockaddr *)&addr, &len));
    printf("  len %u\n", len);
    char c;
    send(sv[1], "z", 1, 0);
    len = sizeof addr;
    SHOW("recvfrom", recvfrom(sv[0], &c, 1, 0, (struct sockaddr *)&addr, &len));
    printf("  addrlen %u\n", len);
    struct sockaddr_un to = {AF_UNIX, "/"};
    SHOW("stream sendto with an address", sendto(sv[1], "z", 1, 0, (struct sockaddr *)&to, sizeof to));
    struct stat st;
    fstat(sv[0], &st);
    printf("fstat: socket %s, mode %o, size %ld\n", YES(S_ISSOCK(st.st_mode)), st.st_mode & 07777, (long)st.st_size);
    int fd = open("/dev/null", O_RDONLY);
    SHOW("shutdown a file", shutdown(fd, SHUT_RD));
    SHOW("getsockopt a closed fd", getsockopt(99, SOL_SOCKET, SO_TYPE, &v, &len));
    SHOW("AF_INET pair", socketpair(AF_INET, SOCK_STREAM, 0, sv));
    SHOW("family 99", socketpair(99, SOCK_STREAM, 0, sv));
    SHOW("protocol 7", socketpair(AF_UNIX, SOCK_STREAM, 7, sv));
    SHOW("type 4 (RDM)", socketpair(AF_UNIX, 4, 0, sv));
    SHOW("type 20", socketpair(AF_UNIX, 20, 0, sv));
    SHOW("bad flags", socketpair(AF_UNIX, SOCK_STREAM | 0x100, 0, sv));
    SHOW("bad sv", socketpair(AF_UNIX, SOCK_STREAM, 0, (int *)8));
    return 0;
}
"""

RIGHTS_C = COMMON + r"""
/* SCM_RIGHTS: a parent hands a pipe's read end and a socket to a child it forked before making them. */
static int send_fds(int sock, const int *fds, int n, const char *data) {
    char control[CMSG_SPACE(4 * 4)];
    memset(control, 0, sizeof control);
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = CMSG_SPACE(4 * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(4 * n);
    memcpy(CMSG_DATA(c), fds, 4 * n);
    return sendmsg(sock, &m, 0);
}

static int recv_fds(int sock, int *fds, int max, size_t room, int flags) {
    char control[256], data[32];
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = room;
    ssize_t n = recvmsg(sock, &m, flags);
    if (n < 0) { printf("recvmsg: %s\n", strerrorname_np(errno)); return -1; }
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / 4 && got < max; i++)
                memcpy(&fds[got++], CMSG_DATA(c) + 4 * i, 4);
    printf("received %zd bytes \"%.*s\", %d descriptors, controllen %s, MSG_CTRUNC %s\n", n, (int)n, data, got,
           m.msg_controllen == (got ? CMSG_SPACE(4 * got) : 0) ? "as CMSG_SPACE" : "other",
           YES(m.msg_flags & MSG_CTRUNC));
    fflush(stdout);
    return got;
}

static int open_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 64; fd++) n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* The parent logs here and prints after its child is done, so the output's order is fixed. */
static char log_[1024];
#define LOG(what, call) do { errno = 0; long r_ = (long)(call); \
    snprintf(log_ + strlen(log_), sizeof log_ - strlen(log_), "%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", \
             r_ == -1 ? strerrorname_np(errno) : ""); } while (0)

int main(int argc, char **argv) {
    int sv[2];
    socketpair(AF_UNIX, argc > 1 ? SOCK_DGRAM : SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        int fds[4];
        if (recv_fds(sv[1], fds, 4, 256, MSG_CMSG_CLOEXEC) != 2) return 1;
        printf("child: cloexec %d\n", fcntl(fds[0], F_GETFD));
        char buf[32];
        ssize_t n = read(fds[0], buf, sizeof buf);
        printf("child read from the passed pipe: %.*s\n", (int)n, buf);
        send(fds[1], "via passed socket", 17, 0);
        close(fds[1]);
        close(fds[0]);
        int before = open_fds();
        recv_fds(sv[1], fds, 4, CMSG_LEN(4), 0);
        printf("child: %d more descriptors open\n", open_fds() - before);
        recv_fds(sv[1], fds, 4, 0, 0);
        printf("child: %d more descriptors open\n", open_fds() - before);
        return 0;
    }
    close(sv[1]);
    int p[2], q[2];
    pipe(p);
    socketpair(AF_UNIX, SOCK_STREAM, 0, q);
    int pass[2] = {p[0], q[1]};
    LOG("sendmsg", send_fds(sv[0], pass, 2, "two fds"));
    close(p[0]);
    close(q[1]);
    write(p[1], "through the pipe", 16);
    char buf[32];
    LOG("parent reads", read(q[0], buf, sizeof buf));
    LOG("parent: EOF once the child closed it", read(q[0], buf, sizeof buf));
    int three[3] = {0, 1, 2};
    LOG("sendmsg 3 into room for 1", send_fds(sv[0], three, 3, "three"));
    LOG("sendmsg to no room", send_fds(sv[0], three, 1, "none"));
    int bad = 77;
    LOG("sendmsg a closed fd", send_fds(sv[0], &bad, 1, "bad"));
    int status;
    waitpid(pid, &status, 0);
    printf("%schild exited %d\n", log_, WEXITSTATUS(status));
    return 0;
}
"""

POLL_C = COMMON + r"""
/* poll sleeps on a socket until the child writes, then until it hangs up. */
int main(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (fork() == 0) {
        usleep(20000);
        write(sv[1], "ready", 5);
        usleep(20000);
        _exit(0);
    }
    close(sv[1]);
    struct pollfd p = {sv[0], POLLIN, 0};
    SHOW("poll", poll(&p, 1, 5000));
    printf("revents %#x\n", p.revents);
    char buf[8];
    SHOW("read", read(sv[0], buf, sizeof buf));
    p.events = POLLIN | POLLRDHUP;
    SHOW("poll", poll(&p, 1, 5000));
    printf("revents %#x\n", p.revents);
    wait(NULL);
    return 0;
}
"""

SOURCES = {"stream": STREAM_C, "messages": MESSAGES_C, "nonblock": NONBLOCK_C, "shutdown": SHUTDOWN_C,
           "options": OPTIONS_C, "rights": RIGHTS_C, "poll": POLL_C}


@pytest.fixture(scope="module", params=[64, 32], ids=["x86-64", "i386"])
def programs(request, tmp_path_factory):
    flags = ("-m32",) if request.param == 32 else ()
    return compile_static(SOURCES, tmp_path_factory.mktemp(f"sockets{request.param}"), flags)


def test_stream_ping_pong_between_parent_and_child(programs):
    same_as_native([programs["stream"]])


def test_datagram_and_seqpacket_boundaries(programs):
    same_as_native([programs["messages"]])


def test_full_buffers_and_nonblocking_eagain(programs):
    same_as_native([programs["nonblock"]])


def test_shutdown_peer_close_epipe_and_sigpipe(programs):
    native, _ = same_as_native([programs["shutdown"]])
    assert native.status == 128 + 13


def test_options_names_and_errors(programs):
    same_as_native([programs["options"]])


@pytest.mark.parametrize("kind", ["stream", "dgram"])
def test_scm_rights_passes_descriptors(programs, kind):
    same_as_native([programs["rights"]] + (["dgram"] if kind == "dgram" else []))


def test_poll_sleeps_on_a_socket(programs):
    same_as_native([programs["poll"]])


@pytest.mark.skipif(not USING_RUN_ELF, reason="socket() is refused by run-elf only")
def test_socket_is_refused(tmp_path):
    paths = compile_static({"socket": COMMON + r"""
        int main(void) {
            SHOW("socket AF_UNIX", socket(AF_UNIX, SOCK_STREAM, 0));
            SHOW("socket AF_INET", socket(AF_INET, SOCK_DGRAM, 0));
            return 0;
        }
        """}, tmp_path)
    out, status = run_elf([paths["socket"]])
    assert (out, status) == (b"socket AF_UNIX: -1 EACCES\nsocket AF_INET: -1 EACCES\n", 0)


PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not os.path.exists(PYTHON), reason="no /usr/bin/python3")
def test_python_socketpair():
    same_as_native([PYTHON, "-c", "import socket; a, b = socket.socketpair(); a.send(b'x'); print(b.recv(1))"],
                   timeout=300)
