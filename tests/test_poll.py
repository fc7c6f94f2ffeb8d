"""Descriptor readiness: select, pselect6, poll, ppoll, epoll and eventfd. Static glibc programs (x86-64,
and the same sources with -m32) run natively and under run-elf; stdout and exit status must be the same.

The programs print derived facts ("woke for the second pipe", "waited 30ms: yes", errno names), never
absolute times. Waits that another process ends are made by a child that writes after a short delay, so a
sleeper that watched only its first descriptor, or slept on the host, would print something else or hang.
"""
from __future__ import annotations

import os
import re

import pytest

from conftest import compile_static, run_elf, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A call's result: its value, or -1 and the errno name. */
#define SHOW(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", r_ == -1 ? strerrorname_np(errno) : ""); } while (0)
#define YES(cond) ((cond) ? "yes" : "no")

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static void pause_ms(int ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, 0);
}

/* A child that writes `what` to fd after `ms` milliseconds, then exits. */
static pid_t write_later(int fd, const void *what, size_t n, int ms) {
    pid_t c = fork();
    if (c == 0) {
        pause_ms(ms);
        write(fd, what, n);
        _exit(0);
    }
    return c;
}
"""

SELECT_C = COMMON + r"""
int main(void) {
    int a[2], b[2];
    pipe(a); pipe(b);
    int top = b[0] > a[0] ? b[0] : a[0];
    fd_set rd;
    struct timeval tv;
    char c;

    /* select: the child writes to the second pipe only. */
    pid_t w = write_later(b[1], "b", 1, 30);
    FD_ZERO(&rd); FD_SET(a[0], &rd); FD_SET(b[0], &rd);
    tv.tv_sec = 5; tv.tv_usec = 0;
    long long t0 = now_ms();
    SHOW("select two pipes", select(top + 1, &rd, 0, 0, &tv));
    printf("first %d second %d, left under 5s %s, waited for the writer %s\n", FD_ISSET(a[0], &rd),
           FD_ISSET(b[0], &rd), YES(tv.tv_sec < 5), YES(now_ms() - t0 >= 20));
    waitpid(w, 0, 0);
    read(b[0], &c, 1);

    /* select times out on quiet pipes, the time left updated to zero. */
    FD_ZERO(&rd); FD_SET(a[0], &rd); FD_SET(b[0], &rd);
    tv.tv_sec = 0; tv.tv_usec = 30000;
    t0 = now_ms();
    SHOW("select quiet pipes", select(top + 1, &rd, 0, 0, &tv));
    printf("waited 30ms %s, bits %d %d, left %ld.%06ld\n", YES(now_ms() - t0 >= 30), FD_ISSET(a[0], &rd),
           FD_ISSET(b[0], &rd), (long)tv.tv_sec, (long)tv.tv_usec);
    tv.tv_sec = 0; tv.tv_usec = 20000;
    t0 = now_ms();
    SHOW("select without descriptors", select(0, 0, 0, 0, &tv));
    printf("waited 20ms %s, left %ld.%06ld\n", YES(now_ms() - t0 >= 20), (long)tv.tv_sec, (long)tv.tv_usec);
    fd_set wr;
    FD_ZERO(&rd); FD_SET(a[0], &rd);
    FD_ZERO(&wr); FD_SET(a[1], &wr);
    tv.tv_sec = 7; tv.tv_usec = 0;
    SHOW("select writable", select(a[1] + 1, &rd, &wr, 0, &tv));
    printf("read bit %d write bit %d, left <= 7s %s\n", FD_ISSET(a[0], &rd), FD_ISSET(a[1], &wr), YES(tv.tv_sec <= 7));
    FD_ZERO(&rd); FD_SET(60, &rd);
    SHOW("select closed fd", select(61, &rd, 0, 0, 0));
    tv.tv_sec = -1;
    SHOW("select negative timeout", select(0, 0, 0, 0, &tv));

    /* pselect6, raw: {sigset pointer, size} words; its timespec updated to the time left. */
    sigset_t mask;
    sigemptyset(&mask);
    unsigned long pack[2] = {(unsigned long)&mask, 8};
    struct timespec ts = {5, 0};
    w = write_later(b[1], "b", 1, 30);
    FD_ZERO(&rd); FD_SET(a[0], &rd); FD_SET(b[0], &rd);
    SHOW("pselect6 two pipes", syscall(SYS_pselect6, top + 1, &rd, 0, 0, &ts, pack));
    printf("first %d second %d, left under 5s %s\n", FD_ISSET(a[0], &rd), FD_ISSET(b[0], &rd),
           YES(ts.tv_sec < 5 && ts.tv_nsec >= 0));
    waitpid(w, 0, 0);
    read(b[0], &c, 1);
    ts.tv_sec = 0; ts.tv_nsec = 25000000;
    FD_ZERO(&rd); FD_SET(a[0], &rd); FD_SET(b[0], &rd);
    t0 = now_ms();
    SHOW("pselect6 quiet", syscall(SYS_pselect6, top + 1, &rd, 0, 0, &ts, pack));
    printf("waited 25ms %s, left %ld.%09ld\n", YES(now_ms() - t0 >= 25), (long)ts.tv_sec, (long)ts.tv_nsec);
    pack[1] = 4;
    SHOW("pselect6 sigset size 4", syscall(SYS_pselect6, 0, 0, 0, 0, &ts, pack));
    pack[0] = 0;
    SHOW("pselect6 without a sigset, size 4", syscall(SYS_pselect6, 0, 0, 0, 0, &ts, pack));
    ts.tv_nsec = 1000000000;
    SHOW("pselect6 bad nsec", syscall(SYS_pselect6, 0, 0, 0, 0, &ts, 0));
    ts.tv_sec = 0; ts.tv_nsec = 0;
    FD_ZERO(&rd); FD_SET(a[0], &rd);
    SHOW("pselect glibc zero", pselect(a[0] + 1, &rd, 0, 0, &ts, &mask));
    return 0;
}
"""

POLL_C = COMMON + r"""
int main(void) {
    int a[2], b[2];
    pipe(a); pipe(b);
    char c;

    /* poll on two pipes: the child writes to the second. */
    pid_t w = write_later(b[1], "b", 1, 30);
    struct pollfd fds[2] = {{a[0], POLLIN, 0}, {b[0], POLLIN, 0}};
    long long t0 = now_ms();
    SHOW("poll two pipes", poll(fds, 2, 5000));
    printf("revents %#x %#x, waited for the writer %s\n", fds[0].revents, fds[1].revents, YES(now_ms() - t0 >= 20));
    waitpid(w, 0, 0);
    read(b[0], &c, 1);

    /* A timeout on quiet pipes ends the wait with 0. */
    t0 = now_ms();
    SHOW("poll quiet pipes", poll(fds, 2, 30));
    printf("waited 30ms %s, revents %#x %#x\n", YES(now_ms() - t0 >= 30), fds[0].revents, fds[1].revents);
    t0 = now_ms();
    SHOW("poll without descriptors", poll(0, 0, 20));
    printf("waited 20ms %s\n", YES(now_ms() - t0 >= 20));

    /* ppoll, raw: the timespec is updated to the time left. */
    struct timespec ts = {5, 0};
    w = write_later(a[1], "a", 1, 20);
    SHOW("ppoll two pipes", syscall(SYS_ppoll, fds, 2, &ts, 0, 8));
    printf("revents %#x %#x, left under 5s %s\n", fds[0].revents, fds[1].revents, YES(ts.tv_sec < 5));
    waitpid(w, 0, 0);
    read(a[0], &c, 1);
    ts.tv_sec = 0; ts.tv_nsec = 20000000;
    SHOW("ppoll quiet", syscall(SYS_ppoll, fds, 2, &ts, 0, 8));
    printf("left %ld.%09ld\n", (long)ts.tv_sec, (long)ts.tv_nsec);
    sigset_t mask;
    sigemptyset(&mask);
    SHOW("ppoll sigset size 4", syscall(SYS_ppoll, fds, 2, &ts, &mask, 4));
    ts.tv_nsec = -1;
    SHOW("ppoll bad timespec", syscall(SYS_ppoll, fds, 2, &ts, 0, 8));

    /* Events: what each end reports, normal data bits, hang-up, a closed descriptor. */
    write(a[1], "x", 1);
    struct pollfd ev[4] = {{a[0], POLLIN | POLLRDNORM | POLLOUT, 0}, {a[1], POLLOUT | POLLWRNORM | POLLIN, 0},
                           {b[0], POLLIN, 0}, {50, POLLIN, 0}};
    close(b[1]);
    SHOW("poll events", poll(ev, 4, 0));
    printf("revents %#x %#x %#x %#x\n", ev[0].revents, ev[1].revents, ev[2].revents, ev[3].revents);
    close(a[0]);
    struct pollfd wend = {a[1], POLLOUT, 0};
    SHOW("poll write end without readers", poll(&wend, 1, 0));
    printf("revents %#x\n", wend.revents);

    /* Sleepers without descriptors sleep in the guest: three children each waiting 150ms overlap. */
    t0 = now_ms();
    for (int i = 0; i < 3; i++)
        if (fork() == 0) {
            poll(0, 0, 150);
            _exit(0);
        }
    while (wait(0) > 0)
        ;
    printf("three 150ms polls overlap %s\n", YES(now_ms() - t0 < 400));
    return 0;
}
"""

EPOLL_C = COMMON + r"""
#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

static void show_events(const char *what, int n, struct epoll_event *ev) {
    printf("%s:", what);
    for (int i = 0; i < n; i++)
        printf(" [%llu %#x]", (unsigned long long)ev[i].data.u64, ev[i].events);
    printf("\n");
}

int main(void) {
    int a[2], b[2];
    pipe(a); pipe(b);
    struct epoll_event ev, out[8];
    char c;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("epoll_create1 cloexec: fd flag %d, status %#o\n", fcntl(ep, F_GETFD), fcntl(ep, F_GETFL));
    int ep2 = epoll_create(1);
    printf("epoll_create: fd flag %d\n", fcntl(ep2, F_GETFD));
    SHOW("epoll_create 0", epoll_create(0));
    SHOW("epoll_create1 bad flags", epoll_create1(1));
    printf("struct epoll_event is %d bytes\n", (int)sizeof(struct epoll_event));

    /* epoll_ctl's errors, in Linux's order. */
    int reg = open("/proc/self/exe", O_RDONLY);
    ev.events = EPOLLIN; ev.data.u64 = 1;
    SHOW("add a regular file", epoll_ctl(ep, EPOLL_CTL_ADD, reg, &ev));
    SHOW("add a directory", epoll_ctl(ep, EPOLL_CTL_ADD, open("/", O_RDONLY), &ev));
    SHOW("add /dev/null", epoll_ctl(ep, EPOLL_CTL_ADD, open("/dev/null", O_RDONLY), &ev));
    int rnd = open("/dev/random", O_RDONLY);
    SHOW("add /dev/random", epoll_ctl(ep2, EPOLL_CTL_ADD, rnd, &ev));
    SHOW("add itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    SHOW("add to a pipe", epoll_ctl(a[0], EPOLL_CTL_ADD, b[0], &ev));
    SHOW("add a closed fd", epoll_ctl(ep, EPOLL_CTL_ADD, 77, &ev));
    SHOW("closed epfd", epoll_ctl(77, EPOLL_CTL_ADD, a[0], &ev));
    SHOW("bad op", epoll_ctl(ep, 9, a[0], &ev));
    SHOW("mod absent", epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev));
    SHOW("del absent", epoll_ctl(ep, EPOLL_CTL_DEL, a[0], 0));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    SHOW("exclusive with oneshot", epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    SHOW("exclusive", epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev));
    SHOW("mod exclusive", epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev));
    ev.events = EPOLLIN;
    SHOW("mod an exclusive entry", epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev));
    SHOW("del", epoll_ctl(ep, EPOLL_CTL_DEL, a[0], 0));
    SHOW("wait maxevents 0", epoll_wait(ep, out, 0, 0));
    SHOW("wait on a pipe", epoll_wait(a[0], out, 1, 0));

    /* Level-triggered: reported while ready; two ready entries take turns with maxevents 1. */
    ev.events = EPOLLIN; ev.data.u64 = 10;
    SHOW("add first", epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev));
    SHOW("add first again", epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev));
    ev.data.u64 = 20;
    SHOW("add second", epoll_ctl(ep, EPOLL_CTL_ADD, b[0], &ev));
    long long t0 = now_ms();
    SHOW("wait quiet 30ms", epoll_wait(ep, out, 8, 30));
    printf("waited 30ms %s\n", YES(now_ms() - t0 >= 30));
    write(a[1], "a", 1); write(b[1], "b", 1);
    int n = epoll_wait(ep, out, 1, 0); show_events("one of two", n, out);
    n = epoll_wait(ep, out, 1, 0); show_events("the other", n, out);
    n = epoll_wait(ep, out, 8, 0); show_events("both still", n, out);
    read(a[0], &c, 1); read(b[0], &c, 1);

    /* The ready list keeps the order entries became ready in: /dev/random at once, the pipe later. */
    ev.data.u64 = 21;
    epoll_ctl(ep2, EPOLL_CTL_ADD, b[0], &ev);
    n = epoll_wait(ep2, out, 8, 0); show_events("random", n, out);
    write(b[1], "b", 1);
    n = epoll_wait(ep2, out, 1, 0); show_events("random first", n, out);
    n = epoll_wait(ep2, out, 8, 0); show_events("then both", n, out);
    read(b[0], &c, 1);
    epoll_ctl(ep2, EPOLL_CTL_DEL, b[0], 0);
    epoll_ctl(ep2, EPOLL_CTL_DEL, rnd, 0);

    /* A child writes to the second pipe: the wait wakes for it. */
    pid_t w = write_later(b[1], "b", 1, 30);
    t0 = now_ms();
    n = epoll_wait(ep, out, 8, 5000); show_events("woke", n, out);
    printf("waited for the writer %s\n", YES(now_ms() - t0 >= 20));
    waitpid(w, 0, 0);
    read(b[0], &c, 1);

    /* One-shot: once, then nothing until EPOLL_CTL_MOD. */
    ev.events = EPOLLIN | EPOLLONESHOT; ev.data.u64 = 10;
    epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev);
    write(a[1], "a", 1);
    n = epoll_wait(ep, out, 8, 0); show_events("oneshot", n, out);
    n = epoll_wait(ep, out, 8, 0); show_events("oneshot again", n, out);
    epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev);
    n = epoll_wait(ep, out, 8, 0); show_events("oneshot rearmed", n, out);

    /* Edge-triggered: once per new write. */
    ev.events = EPOLLIN | EPOLLET; ev.data.u64 = 10;
    epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev);
    n = epoll_wait(ep, out, 8, 0); show_events("edge", n, out);
    n = epoll_wait(ep, out, 8, 0); show_events("edge again", n, out);
    write(a[1], "a", 1);
    n = epoll_wait(ep, out, 8, 0); show_events("edge after a write", n, out);
    read(a[0], &c, 1); read(a[0], &c, 1);
    n = epoll_wait(ep, out, 8, 0); show_events("edge drained", n, out);

    /* eventfd across fork. */
    int efd = eventfd(0, 0);
    ev.events = EPOLLIN | EPOLLOUT; ev.data.u64 = 30;
    epoll_ctl(ep2, EPOLL_CTL_ADD, efd, &ev);
    n = epoll_wait(ep2, out, 8, 0); show_events("eventfd zero", n, out);
    ev.events = EPOLLIN;
    epoll_ctl(ep2, EPOLL_CTL_MOD, efd, &ev);
    uint64_t v = 5;
    w = write_later(efd, &v, 8, 30);
    n = epoll_wait(ep2, out, 8, -1); show_events("eventfd written", n, out);
    waitpid(w, 0, 0);
    read(efd, &v, 8);
    printf("eventfd read %llu\n", (unsigned long long)v);

    /* Closing the last descriptor of a watched file drops the entry; a dup keeps it. */
    int d[2];
    pipe(d);
    ev.events = EPOLLIN; ev.data.u64 = 40;
    epoll_ctl(ep2, EPOLL_CTL_ADD, d[0], &ev);
    write(d[1], "d", 1);
    int dup0 = dup(d[0]);
    close(d[0]);
    n = epoll_wait(ep2, out, 8, 0); show_events("closed but duplicated", n, out);
    SHOW("del through the dup", epoll_ctl(ep2, EPOLL_CTL_DEL, dup0, 0));
    close(dup0);
    n = epoll_wait(ep2, out, 8, 0); show_events("closed", n, out);
    int e[2];
    pipe(e);
    ev.data.u64 = 50;
    epoll_ctl(ep2, EPOLL_CTL_ADD, e[0], &ev);
    write(e[1], "e", 1);
    close(e[0]);
    n = epoll_wait(ep2, out, 8, 0); show_events("last descriptor closed", n, out);

    /* Nesting: an epoll watches another; poll and select see it readable; loops are refused. */
    int outer = epoll_create1(0);
    ev.events = EPOLLIN; ev.data.u64 = 60;
    SHOW("nest", epoll_ctl(outer, EPOLL_CTL_ADD, ep2, &ev));
    ev.data.u64 = 61;
    SHOW("loop", epoll_ctl(ep2, EPOLL_CTL_ADD, outer, &ev));
    n = epoll_wait(outer, out, 8, 0); show_events("outer quiet", n, out);
    w = write_later(efd, &v, 8, 20);
    n = epoll_wait(outer, out, 8, 5000); show_events("outer woke", n, out);
    waitpid(w, 0, 0);
    struct pollfd pfd = {ep2, POLLIN | POLLOUT, 0};
    SHOW("poll an epoll", poll(&pfd, 1, 0));
    printf("revents %#x\n", pfd.revents);
    read(efd, &v, 8);
    SHOW("poll a quiet epoll", poll(&pfd, 1, 10));

    /* epoll_pwait and epoll_pwait2. */
    sigset_t mask;
    sigemptyset(&mask);
    SHOW("epoll_pwait sigset size 4", syscall(SYS_epoll_pwait, ep, out, 8, 0, &mask, 4));
    SHOW("epoll_pwait", syscall(SYS_epoll_pwait, ep, out, 8, 10, &mask, 8));
    struct { int64_t sec, nsec; } ts = {0, 20000000};
    t0 = now_ms();
    SHOW("epoll_pwait2 20ms", syscall(SYS_epoll_pwait2, ep, out, 8, &ts, 0, 8));
    printf("waited 20ms %s\n", YES(now_ms() - t0 >= 20));
    ts.nsec = -5;
    SHOW("epoll_pwait2 bad timespec", syscall(SYS_epoll_pwait2, ep, out, 8, &ts, 0, 8));

    /* EPOLL_CLOEXEC closes it in exec. */
    pid_t x = fork();
    if (x == 0) {
        char fd[16];
        snprintf(fd, sizeof fd, "%d", ep);
        execl("/bin/sh", "sh", "-c", "if [ -e /proc/self/fd/$0 ]; then echo open in exec; else echo closed in exec; fi",
              fd, (char *)0);
        _exit(127);
    }
    waitpid(x, 0, 0);
    return 0;
}
"""

EVENTFD_C = COMMON + r"""
int main(void) {
    uint64_t v;
    int sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
    printf("status %#o fd flag %d\n", fcntl(sem, F_GETFL), fcntl(sem, F_GETFD));
    for (int i = 0; i < 4; i++) {
        v = 0;
        errno = 0;
        long r = read(sem, &v, 8);
        printf("semaphore read %ld value %llu %s\n", r, (unsigned long long)v, r < 0 ? strerrorname_np(errno) : "");
    }
    int efd = eventfd(0, EFD_NONBLOCK);
    SHOW("read empty", read(efd, &v, 8));
    v = 5; write(efd, &v, 8);
    v = 7; write(efd, &v, 8);
    SHOW("read 4 bytes", read(efd, &v, 4));
    SHOW("read", read(efd, &v, 8));
    printf("value %llu\n", (unsigned long long)v);
    v = ~0ULL;
    SHOW("write all ones", write(efd, &v, 8));
    SHOW("write 4 bytes", write(efd, &v, 4));
    v = ~0ULL - 1;
    SHOW("write the maximum", write(efd, &v, 8));
    struct pollfd p = {efd, POLLIN | POLLOUT, 0};
    poll(&p, 1, 0);
    printf("full: revents %#x\n", p.revents);
    v = 1;
    SHOW("write past the maximum", write(efd, &v, 8));
    SHOW("read the maximum", read(efd, &v, 8));
    poll(&p, 1, 0);
    printf("empty: revents %#x\n", p.revents);
    SHOW("eventfd2 bad flags", eventfd(0, 4));
    SHOW("eventfd raw", syscall(SYS_eventfd, 2));

    /* A blocking read waits for a child's write; a blocking write waits for room. */
    int blk = eventfd(0, 0);
    v = 42;
    pid_t w = write_later(blk, &v, 8, 30);
    long long t0 = now_ms();
    SHOW("blocking read", read(blk, &v, 8));
    printf("value %llu, waited %s\n", (unsigned long long)v, YES(now_ms() - t0 >= 20));
    waitpid(w, 0, 0);
    v = ~0ULL - 1;
    write(blk, &v, 8);
    pid_t r = fork();
    if (r == 0) {
        pause_ms(30);
        read(blk, &v, 8);
        _exit(0);
    }
    v = 9;
    SHOW("blocking write", write(blk, &v, 8));
    waitpid(r, 0, 0);
    read(blk, &v, 8);
    printf("then %llu\n", (unsigned long long)v);

    /* select sees the counter too. */
    fd_set rd;
    FD_ZERO(&rd); FD_SET(blk, &rd);
    struct timeval tv = {0, 10000};
    SHOW("select empty eventfd", select(blk + 1, &rd, 0, 0, &tv));
    v = 1; write(blk, &v, 8);
    FD_ZERO(&rd); FD_SET(blk, &rd);
    SHOW("select written eventfd", select(blk + 1, &rd, 0, 0, 0));
    return 0;
}
"""

SOURCES = {"select": SELECT_C, "poll": POLL_C, "epoll": EPOLL_C, "eventfd": EVENTFD_C}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name -> path of each program above, built with gcc -static for x86-64."""
    return compile_static(SOURCES, tmp_path_factory.mktemp("poll"))


@pytest.fixture(scope="module")
def programs32(tmp_path_factory):
    """The same programs built with gcc -m32 -static (skipped without a 32-bit toolchain or IA32 emulation)."""
    return compile_static(SOURCES, tmp_path_factory.mktemp("poll32"), flags=("-m32",))


def check(path: str) -> None:
    """Run path natively and under run-elf: same stdout and status, every timed wait as long as natively."""
    out = same_as_native([path])[0].stdout
    assert not re.search(rb" no\b", out), out.decode()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_x86_64(programs, name):
    """select/pselect6 (nr 23, 270), poll/ppoll, epoll and eventfd on pipes and children, as natively."""
    check(programs[name])


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_i386(programs32, name):
    """The same through int 0x80: _newselect and the 32-bit pselect6/ppoll layouts, shared epoll handlers."""
    check(programs32[name])


def test_poll_without_descriptors_lets_others_run(programs):
    """poll with only a timeout sleeps in the guest: the three children's waits overlap under run-elf too."""
    out = run_elf([programs["poll"]]).stdout
    assert b"three 150ms polls overlap yes" in out, out.decode()


PYTHON = "/usr/bin/python3"
PY_SELECT = """
import os, select
r, w = os.pipe()
print(select.select([r], [w], [], 0.02))
os.write(w, b"x")
print(select.select([r], [w], [], 1))
ep = select.epoll()
ep.register(r, select.EPOLLIN)
ep.register(w, select.EPOLLOUT)
print(sorted(ep.poll(1)))
os.read(r, 1)
print(ep.poll(0.02))
ep.modify(w, select.EPOLLIN)
print(ep.poll(0.02))
ep.close()
print(select.poll().poll(10))
"""


@pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs /usr/bin/python3")
def test_python_select_and_epoll():
    """CPython's select.select, select.epoll and select.poll on a pipe behave as natively."""
    native, _ = same_as_native([PYTHON, "-c", PY_SELECT], timeout=300)
    assert native.stdout.count(b"\n") == 6


FD_LINKS = r"""
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* What /proc/self/fd/N links to, with a pipe's or socket's inode number shown as N. */
static void show(int fd) {
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    char *ino = strchr(link, '[');
    if (ino && strncmp(link, "anon_inode:", 11))
        strcpy(ino, "[N]");
    printf("%s\n", link);
}

int main(void) {
    int p[2], s[2];
    pipe(p);
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    show(p[0]);
    show(s[0]);
    show(eventfd(0, 0));
    show(epoll_create1(0));
    show(timerfd_create(CLOCK_MONOTONIC, 0));
    return 0;
}
"""


def test_proc_fd_links_name_each_kind_of_file(tmp_path):
    """/proc/self/fd/N of a pipe, socket, eventfd, epoll and timerfd names it as Linux does."""
    built = compile_static({"fdlinks": FD_LINKS}, tmp_path)
    same_as_native([built["fdlinks"]])


SIGMASK_WAIT = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t reaped;
static void on_chld(int sig) { reaped++; }

/* The race-free wait for a child: SIGCHLD blocked, then a wait that unblocks it for its duration only.
   The child's exit must end the wait with EINTR after the handler ran, the mask outside the wait must
   be the blocked one again, and a SIGCHLD already pending ends the next wait at once. */
static void child_exits_soon(void) {
    if (fork() == 0) {
        usleep(100000);
        _exit(0);
    }
}

static void report(const char *name, int r) {
    sigset_t now;
    sigprocmask(SIG_SETMASK, 0, &now);
    printf("%s: %d %s, handler ran %d, SIGCHLD blocked after: %d\n", name, r, r < 0 ? strerrorname_np(errno) : "",
           reaped, sigismember(&now, SIGCHLD));
    while (waitpid(-1, 0, WNOHANG) > 0)
        ;
    reaped = 0;
}

int main(void) {
    int p[2];
    pipe(p);
    sigset_t blocked, open_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigprocmask(SIG_BLOCK, &blocked, &open_mask);
    struct sigaction sa = {.sa_handler = on_chld};
    sigaction(SIGCHLD, &sa, 0);

    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    child_exits_soon();
    report("ppoll", ppoll(&pfd, 1, 0, &open_mask));

    fd_set in;
    FD_ZERO(&in);
    FD_SET(p[0], &in);
    child_exits_soon();
    report("pselect", pselect(p[0] + 1, &in, 0, 0, 0, &open_mask));

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    child_exits_soon();
    report("epoll_pwait", epoll_pwait(ep, &ev, 1, -1, &open_mask));

    child_exits_soon();
    usleep(300000);                       /* SIGCHLD now pends, blocked */
    struct timespec never = {10, 0};
    report("ppoll with it pending", ppoll(&pfd, 1, &never, &open_mask));

    write(p[1], "x", 1);
    report("ppoll ready", ppoll(&pfd, 1, 0, &open_mask));
    return 0;
}
"""


@pytest.mark.parametrize("flags", [(), ("-m32",)], ids=["x86-64", "i386"])
def test_ppoll_pselect_epoll_pwait_apply_their_signal_mask(tmp_path, flags):
    """The signal mask of ppoll, pselect6 and epoll_pwait is the process's for the wait only."""
    built = compile_static({"sigmask": SIGMASK_WAIT}, tmp_path, flags=flags)
    same_as_native([built["sigmask"]], timeout=60)
