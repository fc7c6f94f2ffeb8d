"""Local sockets between guest processes: socketpair's AF_UNIX stream, datagram and seqpacket sockets.

C programs (static glibc, 64-bit and -m32) use them as programs do (fork and talk, message boundaries,
MSG_PEEK, nonblocking EAGAIN, shutdown, a peer that closes, options, descriptors passed with
SCM_RIGHTS, poll) and print what they see; stdout and exit status must be the native ones. They print
facts that do not depend on the host's kernel version (errno names, counts of whole pages), never pids
or inode numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

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


@pytest.mark.skipif(not USING_RUN_ELF, reason="network sockets are refused by run-elf only")
def test_network_sockets_are_refused(tmp_path):
    paths = compile_static({"socket": COMMON + r"""
        #include <linux/netlink.h>
        int main(void) {
            SHOW("socket AF_INET", socket(AF_INET, SOCK_DGRAM, 0));
            SHOW("socket AF_INET6", socket(AF_INET6, SOCK_STREAM, 0));
            SHOW("socket AF_NETLINK", socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
            SHOW("socket AF_PACKET", socket(AF_PACKET, SOCK_DGRAM, 0));
            SHOW("socket family 99", socket(99, SOCK_STREAM, 0));
            SHOW("socket AF_UNIX", socket(AF_UNIX, SOCK_STREAM, 0) >= 0);
            return 0;
        }
        """}, tmp_path)
    out, status = run_elf([paths["socket"]])
    assert (out, status) == (b"socket AF_INET: -1 EACCES\nsocket AF_INET6: -1 EACCES\n"
                             b"socket AF_NETLINK: -1 EACCES\nsocket AF_PACKET: -1 EACCES\n"
                             b"socket family 99: -1 EAFNOSUPPORT\nsocket AF_UNIX: 1\n", 0)


PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not os.path.exists(PYTHON), reason="no /usr/bin/python3")
def test_python_socketpair():
    same_as_native([PYTHON, "-c", "import socket; a, b = socket.socketpair(); a.send(b'x'); print(b.recv(1))"],
                   timeout=300)


# -- named sockets: socket(), bind, listen, accept, connect -----------------------------------------

NAMED_COMMON = COMMON + r"""
#include <ctype.h>
#include <stddef.h>
#include <sys/epoll.h>

#define ADDR(a) ((struct sockaddr *)&(a))

/* A struct sockaddr_un for a path; *len is the length Linux reports for it. */
static struct sockaddr_un path_addr(const char *path, socklen_t *len) {
    struct sockaddr_un a = {AF_UNIX};
    strcpy(a.sun_path, path);
    if (len) *len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
    return a;
}

/* What getsockname or getpeername reports: the length, and whether the path is the one expected. */
static void show_name(const char *what, int (*get)(int, struct sockaddr *, socklen_t *), int fd,
                      const char *expect) {
    struct sockaddr_un a;
    memset(&a, 0x55, sizeof a);
    socklen_t len = sizeof a;
    errno = 0;
    int r = get(fd, ADDR(a), &len);
    if (r < 0) { printf("%s: -1 %s\n", what, strerrorname_np(errno)); fflush(stdout); return; }
    printf("%s: len %u, family %d, path %s\n", what, len, a.sun_family,
           len <= offsetof(struct sockaddr_un, sun_path) ? "none" : YES(expect && !strcmp(a.sun_path, expect)));
    fflush(stdout);
}

static void show_peercred(const char *what, int fd, pid_t expect) {
    struct ucred c;
    socklen_t len = sizeof c;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len);
    printf("%s: pid %s, uid %s\n", what, YES(c.pid == expect), YES(c.uid == geteuid()));
    fflush(stdout);
}
"""

PATHS_C = NAMED_COMMON + r"""
/* A server and a forked client over a socket file in the directory argv[1]. */
int main(int argc, char **argv) {
    alarm(20);
    char path[100], client_path[100], file[100];
    snprintf(path, sizeof path, "%s/server.sock", argv[1]);
    snprintf(client_path, sizeof client_path, "%s/client.sock", argv[1]);
    snprintf(file, sizeof file, "%s/plain", argv[1]);
    unlink(path);
    unlink(client_path);
    umask(027);
    socklen_t alen;
    struct sockaddr_un a = path_addr(path, &alen);
    int c0 = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("connect to a missing path", connect(c0, ADDR(a), sizeof a));
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    printf("socket: %s\n", YES(s >= 0));
    SHOW("listen unbound", listen(s, 5));
    SHOW("accept unbound", accept(s, NULL, NULL));
    show_name("getsockname unbound", getsockname, s, NULL);
    show_name("getpeername unbound", getpeername, s, NULL);
    SHOW("read unconnected", read(s, path + 99, 1));
    SHOW("write unconnected", write(s, "x", 1));
    printf("revents unconnected %#x\n", revents(s, POLLIN | POLLOUT));
    SHOW("bind", bind(s, ADDR(a), sizeof a));
    struct stat st;
    SHOW("stat", stat(path, &st));
    printf("  socket file %s, mode %o\n", YES(S_ISSOCK(st.st_mode)), st.st_mode & 07777);
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind a second socket", bind(s2, ADDR(a), alen));
    struct sockaddr_un other = path_addr(client_path, NULL);
    SHOW("bind a bound socket again", bind(s, ADDR(other), sizeof other));
    SHOW("  that file", access(client_path, F_OK));
    show_name("getsockname", getsockname, s, path);
    SHOW("connect before listen", connect(c0, ADDR(a), alen));
    SHOW("listen", listen(s, 4));
    SHOW("listen again", listen(s, 8));
    int v = -1;
    socklen_t vlen = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen);
    printf("SO_ACCEPTCONN %d\n", v);
    printf("revents listening %#x\n", revents(s, POLLIN | POLLOUT));
    SHOW("read a listener", read(s, path + 99, 1));
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    SHOW("dgram connect to a stream listener", connect(d, ADDR(a), alen));
    SHOW("dgram listen", listen(d, 1));
    SHOW("dgram accept", accept(d, NULL, NULL));
    int seq = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    SHOW("seqpacket connect to a stream listener", connect(seq, ADDR(a), alen));
    close(open(file, O_CREAT | O_WRONLY, 0600));
    struct sockaddr_un f = path_addr(file, NULL);
    SHOW("connect to a plain file", connect(c0, ADDR(f), sizeof f));
    SHOW("connect the listener to itself", connect(s, ADDR(a), alen));
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    SHOW("connect a connected socket", connect(sv[0], ADDR(a), alen));

    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        SHOW("child connect", connect(c, ADDR(a), alen));
        SHOW("child connect again", connect(c, ADDR(a), alen));
        show_name("child getpeername", getpeername, c, path);
        show_name("child getsockname", getsockname, c, NULL);
        show_peercred("child SO_PEERCRED", c, getppid());
        write(c, "hello", 5);
        char buf[16] = {0};
        struct sockaddr_un from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(c, buf, sizeof buf, 0, ADDR(from), &flen);
        printf("child got %zd %s, from len %u path %s\n", n, buf, flen, YES(!strcmp(from.sun_path, path)));
        fflush(stdout);
        /* a second connection from a named client */
        int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un me = path_addr(client_path, NULL);
        SHOW("child bind", bind(c2, ADDR(me), sizeof me));
        SHOW("child connect named", connect(c2, ADDR(a), alen));
        write(c2, "named", 5);
        _exit(0);
    }
    struct sockaddr_un peer;
    memset(&peer, 0x55, sizeof peer);
    socklen_t plen = sizeof peer;
    int conn = accept(s, ADDR(peer), &plen);
    char buf[16] = {0};
    ssize_t got = read(conn, buf, sizeof buf);     /* the child has printed what it saw */
    printf("accept: %s, peer len %u, family %d\n", YES(conn >= 0), plen, peer.sun_family);
    show_name("accepted getsockname", getsockname, conn, path);
    show_name("accepted getpeername", getpeername, conn, NULL);
    show_peercred("accepted SO_PEERCRED", conn, pid);
    printf("accepted FD_CLOEXEC %d, O_NONBLOCK %s\n", fcntl(conn, F_GETFD), YES(fcntl(conn, F_GETFL) & O_NONBLOCK));
    printf("read %zd: %s\n", got, buf);
    fflush(stdout);
    ssize_t wrote = write(conn, "world", 5);
    memset(&peer, 0x55, sizeof peer);
    plen = sizeof peer;
    int conn2 = accept4(s, ADDR(peer), &plen, SOCK_NONBLOCK);
    struct pollfd pf = {conn2, POLLIN, 0};
    poll(&pf, 1, 5000);                             /* the child is done printing */
    printf("write %zd\n", wrote);
    printf("accept4: %s, peer len %u, path %s\n", YES(conn2 >= 0), plen, YES(!strcmp(peer.sun_path, client_path)));
    printf("accept4 O_NONBLOCK %s\n", YES(fcntl(conn2, F_GETFL) & O_NONBLOCK));
    memset(buf, 0, sizeof buf);
    SHOW("read named", read(conn2, buf, sizeof buf));
    printf("  %s\n", buf);
    int status;
    waitpid(pid, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    SHOW("read after the client left", read(conn2, buf, sizeof buf));
    SHOW("unlink", unlink(path));
    SHOW("connect after unlink", connect(c0, ADDR(a), alen));
    SHOW("bind the path anew", bind(s2, ADDR(a), alen));
    SHOW("connect to the new, not listening", connect(c0, ADDR(a), alen));
    close(s2);
    SHOW("stat after close", stat(path, &st));
    printf("  socket file %s\n", YES(S_ISSOCK(st.st_mode)));
    SHOW("connect to a closed socket's file", connect(c0, ADDR(a), alen));
    unlink(path);
    unlink(client_path);
    unlink(file);
    return 0;
}
"""

ABSTRACT_C = NAMED_COMMON + r"""
/* The abstract namespace: exact-length names, EADDRINUSE, gone on close; autobind's names. */
static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path + 1, name, strlen(name));
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

static void show_autoname(const char *what, int fd) {
    struct sockaddr_un a;
    memset(&a, 0x55, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, ADDR(a), &len);
    int hex = a.sun_path[0] == 0;
    for (int i = 1; i < (int)len - 2; i++)
        hex = hex && isxdigit((unsigned char)a.sun_path[i]) && !isupper((unsigned char)a.sun_path[i]);
    printf("%s: len %u, abstract lowercase hex %s\n", what, len, YES(hex));
    fflush(stdout);
}

int main(void) {
    alarm(20);
    char name[32];
    snprintf(name, sizeof name, "run-elf-test-%08x", (unsigned)getpid());
    struct sockaddr_un a, b = {AF_UNIX};
    socklen_t alen = abstract_addr(&a, name);
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    int c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    SHOW("connect nobody", connect(c, ADDR(a), alen));
    SHOW("bind", bind(s, ADDR(a), alen));
    int s2 = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    SHOW("bind the same name", bind(s2, ADDR(a), alen));
    SHOW("bind a longer name", bind(s2, ADDR(a), alen + 1));
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    getsockname(s, ADDR(got), &glen);
    printf("getsockname len %u (bound %u), same %s\n", glen, alen, YES(glen == alen && !memcmp(&got, &a, alen)));
    SHOW("connect the longer name", connect(c, ADDR(a), alen + 1));
    SHOW("listen", listen(s, 2));
    SHOW("connect", connect(c, ADDR(a), alen));
    int conn = accept(s, NULL, NULL);
    SHOW("send", send(c, "one", 3, 0));
    SHOW("send", send(c, "two!", 4, 0));
    char buf[8];
    SHOW("recv 8", recv(conn, buf, sizeof buf, 0));
    SHOW("recv 2", recv(conn, buf, 2, 0));
    close(s);
    int c2 = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    SHOW("connect after close", connect(c2, ADDR(a), alen));
    SHOW("bind the freed name", bind(c2, ADDR(a), alen));
    close(c2);

    int x = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("autobind", bind(x, ADDR(b), sizeof(sa_family_t)));
    show_autoname("autobound", x);
    struct sockaddr_un first;
    socklen_t flen = sizeof first;
    getsockname(x, ADDR(first), &flen);
    SHOW("autobind again", bind(x, ADDR(b), sizeof(sa_family_t)));
    glen = sizeof got;
    getsockname(x, ADDR(got), &glen);
    printf("  same name %s\n", YES(glen == flen && !memcmp(&got, &first, flen)));
    SHOW("bind an autobound socket", bind(x, ADDR(a), alen));
    int y = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind its name", bind(y, ADDR(first), flen));
    SHOW("listen", listen(x, 1));
    SHOW("connect to it", connect(y, ADDR(first), flen));
    int z = accept(x, NULL, NULL);
    show_name("accepted getsockname", getsockname, z, NULL);
    show_autoname("  named as", z);
    b.sun_family = AF_INET;
    SHOW("bind the family AF_INET", bind(y, ADDR(b), sizeof(sa_family_t)));
    SHOW("bind length 1", bind(y, ADDR(b), 1));
    SHOW("bind length 111", bind(y, ADDR(b), 111));
    SHOW("bind length 200", bind(y, ADDR(b), 200));
    return 0;
}
"""

DGRAM_C = NAMED_COMMON + r"""
/* Datagrams between named sockets in the directory argv[1]: sendto, recvfrom's address, connect. */
static void show_from(const char *what, int fd, const char *expect) {
    char buf[32] = {0};
    struct sockaddr_un from;
    memset(&from, 0x55, sizeof from);
    socklen_t len = sizeof from;
    errno = 0;
    ssize_t n = recvfrom(fd, buf, sizeof buf - 1, MSG_DONTWAIT, ADDR(from), &len);
    if (n < 0) { printf("%s: -1 %s\n", what, strerrorname_np(errno)); fflush(stdout); return; }
    printf("%s: %zd %s, from len %u, path %s\n", what, n, buf, len,
           len > 2 && from.sun_path[0] ? YES(!strcmp(from.sun_path, expect)) : "none");
    fflush(stdout);
}

int main(int argc, char **argv) {
    alarm(20);
    char pa[100], pb[100];
    snprintf(pa, sizeof pa, "%s/a.sock", argv[1]);
    snprintf(pb, sizeof pb, "%s/b.sock", argv[1]);
    unlink(pa);
    unlink(pb);
    socklen_t alen, blen;
    struct sockaddr_un a = path_addr(pa, &alen), b = path_addr(pb, &blen);
    int sa = socket(AF_UNIX, SOCK_DGRAM, 0), sb = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
    SHOW("sendto nobody", sendto(anon, "x", 1, 0, ADDR(a), alen));
    SHOW("bind a", bind(sa, ADDR(a), alen));
    SHOW("bind b", bind(sb, ADDR(b), blen));
    SHOW("send unconnected", send(anon, "x", 1, 0));
    SHOW("recv nothing", recv(sb, pa + 99, 1, 0));
    SHOW("sendto b from a", sendto(sa, "from a", 6, 0, ADDR(b), blen));
    SHOW("sendto b from an unnamed socket", sendto(anon, "anon", 4, 0, ADDR(b), blen));
    show_from("b receives", sb, pa);
    show_from("b receives", sb, pa);
    SHOW("sendto a stream address", sendto(sa, "x", 1, 0, ADDR(b), 1));
    int st = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("sendto from a stream socket", sendto(st, "x", 1, 0, ADDR(b), blen));
    SHOW("connect a to b", connect(sa, ADDR(b), blen));
    show_name("a's peer", getpeername, sa, pb);
    SHOW("send a", send(sa, "connected", 9, 0));
    show_from("b receives", sb, pa);
    SHOW("anon sends to a, connected elsewhere", sendto(anon, "no", 2, 0, ADDR(a), alen));
    SHOW("b sends to a", sendto(sb, "reply", 5, 0, ADDR(a), alen));
    show_from("a receives", sa, pb);
    /* recvmsg fills msg_name */
    sendto(sa, "msg", 3, 0, NULL, 0);
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    struct sockaddr_un from;
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    SHOW("recvmsg", recvmsg(sb, &m, 0));
    printf("  namelen %u, path %s\n", m.msg_namelen, YES(!strcmp(from.sun_path, pa)));
    m.msg_namelen = 4;
    sendto(sa, "msg", 3, 0, NULL, 0);
    SHOW("recvmsg with a short name", recvmsg(sb, &m, 0));
    printf("  namelen %u\n", m.msg_namelen);
    /* the queue of a socket nobody connected to holds max_dgram_qlen messages past its first */
    int n = 0;
    while (sendto(anon, "q", 1, MSG_DONTWAIT, ADDR(b), blen) == 1) n++;
    printf("queued %d before %s\n", n, strerrorname_np(errno));
    printf("revents of a (peer b full) %#x\n", revents(sa, POLLOUT));
    SHOW("a sends to b, its peer", send(sa, "p", 1, MSG_DONTWAIT));
    while (recv(sb, buf, sizeof buf, 0) > 0) {}
    SHOW("disconnect a", connect(sa, ADDR(b), sizeof(sa_family_t) - 1));
    struct sockaddr unspec = {AF_UNSPEC};
    SHOW("disconnect a", connect(sa, &unspec, sizeof unspec));
    SHOW("getpeername", getpeername(sa, ADDR(from), &(socklen_t){sizeof from}));
    /* a blocked receiver is woken by a forked sender */
    if (fork() == 0) {
        usleep(20000);
        int c = socket(AF_UNIX, SOCK_DGRAM, 0);
        sendto(c, "from the child", 14, 0, ADDR(a), alen);
        _exit(0);
    }
    memset(buf, 0, sizeof buf);
    SHOW("a waits", recv(sa, buf, sizeof buf - 1, 0));
    printf("  %s\n", buf);
    wait(NULL);
    /* autobind a sender: the receiver sees its abstract name */
    int auto_ = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(auto_, ADDR(from), sizeof(sa_family_t));
    sendto(auto_, "auto", 4, 0, ADDR(b), blen);
    memset(&from, 0x55, sizeof from);
    socklen_t flen = sizeof from;
    SHOW("from an autobound socket", recvfrom(sb, buf, sizeof buf, 0, ADDR(from), &flen));
    printf("  len %u, abstract %s\n", flen, YES(from.sun_path[0] == 0));
    /* the peer closes */
    SHOW("connect a to b", connect(sa, ADDR(b), blen));
    close(sb);
    SHOW("send to the closed peer", send(sa, "x", 1, 0));
    SHOW("send again", send(sa, "x", 1, 0));
    SHOW("sendto its file", sendto(sa, "x", 1, 0, ADDR(b), blen));
    unlink(pa);
    unlink(pb);
    return 0;
}
"""

LISTEN_C = NAMED_COMMON + r"""
/* A nonblocking listener: EAGAIN, poll and epoll readiness, a full backlog, a listener closed with a
   connection not accepted. */
int main(int argc, char **argv) {
    alarm(20);
    char path[100];
    snprintf(path, sizeof path, "%s/listen.sock", argv[1]);
    unlink(path);
    socklen_t alen;
    struct sockaddr_un a = path_addr(path, &alen);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    bind(s, ADDR(a), alen);
    SHOW("listen", listen(s, 1));
    SHOW("accept", accept(s, NULL, NULL));
    printf("revents %#x\n", revents(s, POLLIN | POLLOUT));
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.fd = s}}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    SHOW("epoll_wait", epoll_wait(ep, &out, 1, 0));
    int c[4];
    int connected = 0;
    for (int i = 0; i < 4; i++) {
        c[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(c[i], ADDR(a), alen) == 0) connected++;
        else printf("connect %d: %s\n", i, strerrorname_np(errno));
    }
    printf("connected %d\n", connected);
    printf("revents %#x\n", revents(s, POLLIN | POLLOUT));
    SHOW("epoll_wait", epoll_wait(ep, &out, 1, 0));
    printf("  events %#x, fd %s\n", out.events, YES(out.data.fd == s));
    SHOW("write before accept", write(c[0], "early", 5));
    printf("client revents %#x\n", revents(c[0], POLLIN | POLLOUT));
    int conn = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    printf("accept4: %s, FD_CLOEXEC %d\n", YES(conn >= 0), fcntl(conn, F_GETFD));
    char buf[8] = {0};
    SHOW("read", read(conn, buf, sizeof buf));
    printf("  %s\n", buf);
    SHOW("accept4 bad flags", accept4(s, NULL, NULL, 0x1234));
    /* a blocking connect waits for room in the backlog */
    int blocking = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(30000);
        int k = accept(s, NULL, NULL);
        printf("child accepted %s\n", YES(k >= 0));
        fflush(stdout);
        _exit(0);
    }
    SHOW("blocking connect", connect(blocking, ADDR(a), alen));
    waitpid(pid, NULL, 0);
    /* the listener closes with a connection not accepted (the child took the oldest) */
    close(s);
    printf("client revents %#x\n", revents(c[1], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("read", read(c[1], buf, sizeof buf));
    SHOW("read", read(c[1], buf, sizeof buf));
    SHOW("write", send(c[1], "x", 1, MSG_NOSIGNAL));
    printf("not accepted: revents %#x\n", revents(blocking, POLLIN | POLLOUT | POLLRDHUP));
    SHOW("read", read(blocking, buf, sizeof buf));
    SHOW("read", read(blocking, buf, sizeof buf));
    unlink(path);
    return 0;
}
"""

SERVER_C = NAMED_COMMON + r"""
/* One server, two forked clients, served together with poll until both hang up. */
#define CLIENTS 2
#define ROUNDS 20

static void client(struct sockaddr_un *a, socklen_t alen, int id) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, ADDR(*a), alen) < 0) { perror("connect"); _exit(1); }
    long sum = 0;
    for (int i = 0; i < ROUNDS; i++) {
        char msg[16], reply[16];
        int len = sprintf(msg, "%d:%d;", id, i);
        write(c, msg, len);
        ssize_t n = read(c, reply, sizeof reply);
        if (n != len || memcmp(msg, reply, len)) _exit(2);
        sum += n;
        if (i % 5 == id) usleep(1000);
    }
    _exit(sum == 0);
}

int main(int argc, char **argv) {
    alarm(20);
    char path[100];
    snprintf(path, sizeof path, "%s/server.sock", argv[1]);
    unlink(path);
    socklen_t alen;
    struct sockaddr_un a = path_addr(path, &alen);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(s, ADDR(a), alen);
    listen(s, 8);
    for (int id = 0; id < CLIENTS; id++)
        if (fork() == 0) client(&a, alen, id);
    struct pollfd fds[1 + CLIENTS] = {{s, POLLIN, 0}};
    int open_ = 0, accepted = 0, closed = 0;
    long bytes[CLIENTS] = {0};
    int owner[1 + CLIENTS];
    while (closed < CLIENTS) {
        if (poll(fds, 1 + open_, 5000) <= 0) { printf("poll timed out\n"); return 1; }
        if (fds[0].revents & POLLIN) {
            fds[1 + open_] = (struct pollfd){accept(s, NULL, NULL), POLLIN, 0};
            owner[1 + open_] = -1;
            open_++;
            accepted++;
        }
        for (int i = 1; i <= open_; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[64];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) { close(fds[i].fd); fds[i].fd = -1; closed++; continue; }
            owner[i] = buf[0] - '0';
            bytes[owner[i]] += n;
            write(fds[i].fd, buf, n);
        }
    }
    printf("accepted %d, closed %d\n", accepted, closed);
    for (int id = 0; id < CLIENTS; id++) printf("client %d sent %ld bytes\n", id, bytes[id]);
    int status, ok = 0;
    while (wait(&status) > 0) ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("clients ok %d\n", ok);
    unlink(path);
    return 0;
}
"""

NAMED_SOURCES = {"paths": PATHS_C, "abstract": ABSTRACT_C, "dgram": DGRAM_C, "listen": LISTEN_C,
                 "server": SERVER_C}


@pytest.fixture(scope="module", params=[64, 32], ids=["x86-64", "i386"])
def named(request, tmp_path_factory):
    flags = ("-m32",) if request.param == 32 else ()
    return compile_static(NAMED_SOURCES, tmp_path_factory.mktemp(f"named{request.param}"), flags)


@pytest.fixture
def sockdir(tmp_path):
    """A short directory for socket files (a sun_path holds at most 107 bytes)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="re-sock") as path:
        yield path


def test_named_stream_server_and_client(named, sockdir):
    same_as_native([named["paths"], sockdir])


def test_abstract_names_and_autobind(named):
    same_as_native([named["abstract"]])


def test_datagrams_between_named_sockets(named, sockdir):
    same_as_native([named["dgram"], sockdir])


def test_nonblocking_listener_poll_and_backlog(named, sockdir):
    same_as_native([named["listen"], sockdir])


def test_server_polls_two_clients(named, sockdir):
    same_as_native([named["server"], sockdir])


def test_named_sockets_under_root(named, sockdir, tmp_path):
    """Under --root the socket files are made inside the root (their host paths, longer than sun_path
    holds, are reached through the directory); the guest sees the same paths as a native run."""
    import shutil
    root = tmp_path / ("r" * 60)
    for program in (named["paths"], named["dgram"]):
        (root / program.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(program, root / program.lstrip("/"))
    (root / sockdir.lstrip("/")).mkdir(parents=True)
    for program in (named["paths"], named["dgram"]):
        same_as_native([program, sockdir], "--root", str(root))
    assert not os.listdir(root / sockdir.lstrip("/"))     # the programs unlinked their files


@pytest.mark.skipif(not USING_RUN_ELF, reason="a host socket is refused by run-elf only")
def test_host_socket_is_not_reached(named, sockdir):
    """A socket file whose socket a host process holds is refused: there is no bridge to host sockets."""
    import socket
    path = os.path.join(sockdir, "host.sock")
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind(path)
    host.listen(1)
    paths = compile_static({"reach": NAMED_COMMON + r"""
        int main(int argc, char **argv) {
            socklen_t len;
            struct sockaddr_un a = path_addr(argv[1], &len);
            SHOW("connect", connect(socket(AF_UNIX, SOCK_STREAM, 0), ADDR(a), len));
            return 0;
        }
        """}, Path(sockdir))
    out, status = run_elf([paths["reach"], path])
    host.close()
    assert (out, status) == (b"connect: -1 ECONNREFUSED\n", 0)


@pytest.mark.skipif(not os.path.exists(PYTHON), reason="no /usr/bin/python3")
def test_python_multiprocessing_manager():
    """multiprocessing's Manager serves a forked server process over an AF_UNIX socket file."""
    same_as_native([PYTHON, "-c", "import multiprocessing as m; mgr = m.Manager(); d = mgr.dict(); d['a'] = 1; "
                    "print(dict(d)); mgr.shutdown()"], timeout=300)
