"""signalfd and signalfd4: reading blocked signals as struct signalfd_siginfo records (sent by raise, kill,
sigqueue, a child's kill after a delay and a child's exit), non-blocking and blocking reads, poll, select
and epoll readiness, a new mask for an existing descriptor, the errors, and fork (the child reads its own
signals); run natively and under run-elf, x86-64 and i386.
"""
from __future__ import annotations

import pytest

from conftest import compile_static, same_as_native

SIGNALFD = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct signalfd_siginfo si[4];
static sigset_t chld;

static volatile int terms;

static void on_term(int sig) {
    terms += sig == SIGTERM;
}

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, 0);
}

static void show(const char *what, const struct signalfd_siginfo *s, pid_t from) {
    printf("%s: signo %u errno %d code %d from %s uid %s status %d int %d ptr %llx fd %d tid %u addr %llx\n",
           what, s->ssi_signo, s->ssi_errno, s->ssi_code, (pid_t)s->ssi_pid == from ? "the expected pid" : "elsewhere",
           s->ssi_uid == getuid() ? "ours" : "other", s->ssi_status, s->ssi_int, (unsigned long long)s->ssi_ptr,
           s->ssi_fd, s->ssi_tid, (unsigned long long)s->ssi_addr);
}

static void take(const char *what, int fd, size_t size, pid_t from) {
    memset(si, 0xAB, sizeof si);
    ssize_t n = read(fd, si, size);
    if (n < 0) {
        printf("%s: read %zd %s\n", what, n, strerrorname_np(errno));
        return;
    }
    printf("%s: read %zd bytes\n", what, n);
    for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++)
        show(what, &si[i], from);
}

static void reap(pid_t child) {
    struct timespec zero = {0, 0};
    waitpid(child, 0, 0);
    sigtimedwait(&chld, 0, &zero);          /* its SIGCHLD, unless a signalfd took it */
}

int main(void) {
    sigset_t blocked, usr1, usr2, both, pending;
    pid_t self = getpid(), child;
    char link[64], path[64];
    struct stat st;

    sigemptyset(&chld); sigaddset(&chld, SIGCHLD);
    sigemptyset(&usr1); sigaddset(&usr1, SIGUSR1);
    sigemptyset(&usr2); sigaddset(&usr2, SIGUSR2);
    sigemptyset(&both); sigaddset(&both, SIGUSR1); sigaddset(&both, SIGUSR2);
    sigemptyset(&blocked); sigaddset(&blocked, SIGUSR1); sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, SIGCHLD); sigaddset(&blocked, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &blocked, 0);

    int fd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
    fstat(fd, &st);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, link, sizeof link - 1);
    link[len > 0 ? len : 0] = 0;
    printf("signalfd %d: mode %o link %s flags %o cloexec %d\n", fd > 2, st.st_mode, link,
           fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), fcntl(fd, F_GETFD));

    take("nothing pending", fd, sizeof si, self);
    raise(SIGUSR1);
    take("raise", fd, sizeof si, self);
    kill(self, SIGUSR1);
    take("kill", fd, sizeof si, self);
    sigqueue(self, SIGUSR1, (union sigval){.sival_int = -42});
    take("sigqueue", fd, sizeof si, self);

    raise(SIGUSR2);
    take("not in the mask", fd, sizeof si, self);
    printf("replaced mask: %d\n", signalfd(fd, &both, 0) == fd);
    raise(SIGUSR1);
    take("short buffer", fd, sizeof si[0] - 1, self);
    take("zero buffer", fd, 0, self);
    take("two at once", fd, sizeof si, self);
    signalfd(fd, &usr2, 0);
    raise(SIGUSR1);
    take("USR1 with a USR2 mask", fd, sizeof si, self);
    sigpending(&pending);
    printf("USR1 still pending: %d\n", sigismember(&pending, SIGUSR1));
    signalfd(fd, &usr1, 0);
    printf("mask back, F_GETFL still non-blocking: %d\n", !!(fcntl(fd, F_GETFL) & O_NONBLOCK));

    struct pollfd pfd = {fd, POLLIN | POLLOUT, 0};
    int n;
    n = poll(&pfd, 1, 0);
    printf("poll with USR1 pending: %d revents %x\n", n, pfd.revents);
    take("drained", fd, sizeof si, self);
    n = poll(&pfd, 1, 0);
    printf("poll with nothing: %d revents %x\n", n, pfd.revents);
    fd_set rd;
    struct timeval tv = {0, 0};
    FD_ZERO(&rd); FD_SET(fd, &rd);
    printf("select with nothing: %d\n", select(fd + 1, &rd, 0, 0, &tv));
    raise(SIGUSR1);
    FD_ZERO(&rd); FD_SET(fd, &rd);
    n = select(fd + 1, &rd, 0, 0, &tv);
    printf("select with USR1: %d %d\n", n, FD_ISSET(fd, &rd));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    n = epoll_wait(ep, out, 2, 0);
    printf("epoll with USR1: %d events %x data %u\n", n, n > 0 ? out[0].events : 0, n > 0 ? out[0].data.u32 : 0);
    take("drained", fd, sizeof si, self);
    printf("epoll with nothing: %d\n", epoll_wait(ep, out, 2, 0));

    /* Blocking waits, ended by a child's kill after a delay (after a USR2 outside the mask). */
    int bfd = signalfd(-1, &usr1, 0);
    fflush(stdout);
    if ((child = fork()) == 0) {
        nap(50);
        kill(self, SIGUSR2);
        nap(20);
        kill(self, SIGUSR1);
        _exit(0);
    }
    take("blocking read", bfd, sizeof si, child);
    reap(child);
    fflush(stdout);
    if ((child = fork()) == 0) {
        nap(50);
        kill(self, SIGUSR1);
        _exit(0);
    }
    pfd.fd = bfd;
    n = poll(&pfd, 1, -1);
    printf("blocking poll: %d revents %x\n", n, pfd.revents);
    take("after poll", bfd, sizeof si, child);
    reap(child);
    epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev);
    fflush(stdout);
    if ((child = fork()) == 0) {
        nap(50);
        kill(self, SIGUSR1);
        _exit(0);
    }
    n = epoll_wait(ep, out, 2, 5000);
    printf("blocking epoll_wait: %d events %x\n", n, n > 0 ? out[0].events : 0);
    take("after epoll", bfd, sizeof si, child);
    reap(child);
    sigtimedwait(&usr2, 0, &(struct timespec){0, 0});

    /* SIGCHLD from a child's exit and from a child killed by a signal. */
    int cfd = signalfd(-1, &chld, 0);
    fflush(stdout);
    if ((child = fork()) == 0)
        _exit(7);
    take("child exited", cfd, sizeof si, child);
    waitpid(child, 0, 0);
    fflush(stdout);
    if ((child = fork()) == 0) {
        kill(getpid(), SIGTERM);
        pause();
    }
    take("child killed", cfd, sizeof si, child);
    waitpid(child, 0, 0);

    /* After fork the child reads its own signals through the same descriptor. */
    raise(SIGUSR1);
    fflush(stdout);
    if ((child = fork()) == 0) {
        take("child, parent's USR1 pending", fd, sizeof si, getppid());
        pfd.fd = fd;
        printf("child poll: %d\n", poll(&pfd, 1, 0));
        raise(SIGUSR1);
        printf("child poll after raise: %d\n", poll(&pfd, 1, 0));
        take("child's own", fd, sizeof si, getpid());
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, 0, 0);
    take("parent's", fd, sizeof si, self);

    /* A POSIX timer's signal (SI_TIMER: its id, overruns and value), ITIMER_REAL's (SIGALRM, SI_KERNEL), and a handled
       signal interrupting a blocking read. */
    sigset_t timers;
    sigemptyset(&timers); sigaddset(&timers, SIGRTMIN); sigaddset(&timers, SIGALRM);
    sigprocmask(SIG_BLOCK, &timers, 0);
    int tfd = signalfd(-1, &timers, 0);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN, .sigev_value.sival_int = 9};
    timer_t timer;
    timer_create(CLOCK_MONOTONIC, &sev, &timer);
    struct itimerspec its = {{0, 0}, {0, 10000000}};
    timer_settime(timer, 0, &its, 0);
    take("timer", tfd, sizeof si, 0);
    printf("timer id matches: %d\n", si[0].ssi_tid == (unsigned)(long)timer);
    struct itimerval real = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &real, 0);
    take("ITIMER_REAL", tfd, sizeof si, 0);
    struct sigaction sa = {.sa_handler = on_term};        /* no SA_RESTART */
    sigaction(SIGTERM, &sa, 0);
    fflush(stdout);
    if ((child = fork()) == 0) {
        nap(50);
        kill(self, SIGTERM);
        _exit(0);
    }
    take("interrupted", tfd, sizeof si, 0);
    printf("handler ran: %d\n", terms);
    reap(child);

    /* Errors. */
    int pipes[2];
    pipe(pipes);
    long r = syscall(SYS_signalfd4, pipes[0], &usr1, 8, 0);
    printf("pipe descriptor: %ld %s\n", r, strerrorname_np(errno));
    r = syscall(SYS_signalfd4, 99, &usr1, 8, 0);
    printf("closed descriptor: %ld %s\n", r, strerrorname_np(errno));
    r = syscall(SYS_signalfd4, -1, &usr1, 4, 0);
    printf("sizemask 4: %ld %s\n", r, strerrorname_np(errno));
    r = syscall(SYS_signalfd4, -1, &usr1, 8, 1);
    printf("bad flags: %ld %s\n", r, strerrorname_np(errno));
    r = syscall(SYS_signalfd4, -1, (void *)8, 8, 0);
    printf("bad mask pointer: %ld %s\n", r, strerrorname_np(errno));
    r = syscall(SYS_signalfd, -1, &usr1, 8);
    printf("signalfd: %d\n", r > 2);
    len = write(fd, si, sizeof si[0]);
    printf("write: %zd %s\n", len, strerrorname_np(errno));
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("signalfd")
    built = compile_static({"signalfd": SIGNALFD}, out)
    built.update(compile_static({"signalfd-i386": SIGNALFD}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["signalfd", "signalfd-i386"])
def test_signalfd_matches_native(programs, name):
    same_as_native([programs[name]], timeout=60)
