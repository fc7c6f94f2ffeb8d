"""Timers that fire: alarm, setitimer/getitimer (ITIMER_REAL), POSIX timers and timerfds, for x86-64 and
i386 programs, run natively and under run-elf (stdout and exit status must match).

Timers are short (10-200 ms) and the programs print only facts that do not depend on the machine's speed
("fired: yes", "ticks >= 2: yes", "left in (0, 1 s]: yes"), never absolute times. The -m32 builds reach
the 64-bit-time entry points (timer_settime64, timerfd_settime64) through glibc and the old 32-bit
ones (struct old_itimerspec32) through syscall(2).
"""
from __future__ import annotations


import pytest

from conftest import compile_static, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define YES(cond) ((cond) ? "yes" : "no")
#define ERR(call) ((call) == -1 ? strerrorname_np(errno) : "ok")
static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L }; nanosleep(&ts, 0); }
static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn; sa.sa_flags = SA_SIGINFO | flags; sigaction(sig, &sa, 0);
}
static void arm(long value_ms, long interval_ms) {
    struct itimerval it = { { interval_ms / 1000, interval_ms % 1000 * 1000 }, { value_ms / 1000, value_ms % 1000 * 1000 } };
    setitimer(ITIMER_REAL, &it, 0);
}
"""

# alarm(1) and pause(): the default action of SIGALRM ends the process (status 142).
ALARM_DIES_C = COMMON + r"""
int main(void) {
    printf("alarm: %u\n", alarm(1));
    fflush(stdout);
    pause();
    printf("not reached\n");
    return 0;
}
"""

# alarm's return value (the previous alarm's seconds left, rounded as Linux does), a handler woken out of
# pause (EINTR) with si_code SI_KERNEL, and an alarm cancelled by alarm(0) that never fires.
ALARM_HANDLER_C = COMMON + r"""
static volatile int hits, code;
static void handler(int sig, siginfo_t *si, void *uc) { hits++; code = si->si_code; }
static unsigned left_after(long ms) { arm(ms, 0); return alarm(0); }
int main(void) {
    on(SIGALRM, handler, 0);
    printf("first: %u\n", alarm(5));
    printf("second: %u\n", alarm(3));
    printf("cancel: %u\n", alarm(0));
    printf("again: %u\n", alarm(0));
    printf("rounding: 300ms %u, 700ms %u, 1200ms %u, 2400ms %u, 2600ms %u\n", left_after(300), left_after(700),
           left_after(1200), left_after(2400), left_after(2600));
    arm(30, 0);
    int r = pause();
    printf("pause: %d %s, hits %d, code SI_KERNEL %s\n", r, strerrorname_np(errno), hits, YES(code == SI_KERNEL));
    alarm(1);
    alarm(0);
    nap(60);
    printf("cancelled alarm fired: %s\n", YES(hits != 1));
    return 0;
}
"""

# An interval timer: N ticks counted in a handler while pausing, then stopped; getitimer's view of it.
ITIMER_C = COMMON + r"""
static volatile int ticks;
static void tick(int sig, siginfo_t *si, void *uc) { ticks++; }
int main(void) {
    on(SIGALRM, tick, 0);
    arm(15, 15);
    while (ticks < 5)
        pause();
    struct itimerval it, old;
    getitimer(ITIMER_REAL, &it);
    printf("running: interval %ld.%06ld, left <= 15 ms %s\n", (long)it.it_interval.tv_sec,
           (long)it.it_interval.tv_usec, YES(it.it_value.tv_sec == 0 && it.it_value.tv_usec <= 15000));
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, &old);
    printf("old interval %ld us\n", (long)old.it_interval.tv_usec);
    int seen = ticks;
    nap(60);
    printf("ticks >= 5: %s, more after stop: %s\n", YES(seen >= 5), YES(ticks != seen));
    getitimer(ITIMER_REAL, &it);
    printf("stopped: %ld %ld %ld %ld\n", (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec,
           (long)it.it_value.tv_sec, (long)it.it_value.tv_usec);
    struct itimerval set = { { 0, 500000 }, { 1, 0 } };
    setitimer(ITIMER_REAL, &set, 0);
    getitimer(ITIMER_REAL, &it);
    printf("set 1 s every 0.5 s: interval %ld.%06ld, left in (0.5 s, 1 s] %s\n", (long)it.it_interval.tv_sec,
           (long)it.it_interval.tv_usec, YES((it.it_value.tv_sec == 1 && it.it_value.tv_usec == 0)
                                            || (it.it_value.tv_sec == 0 && it.it_value.tv_usec > 500000)));
    printf("alarm sees it: %u\n", alarm(0));
    struct itimerval bad = { { 0, 0 }, { 0, 1000000 } };
    printf("usec 1000000: %s\n", ERR(setitimer(ITIMER_REAL, &bad, 0)));
    bad.it_value.tv_usec = -1;
    printf("usec -1: %s\n", ERR(setitimer(ITIMER_REAL, &bad, 0)));
    printf("which 7: %s %s\n", ERR(setitimer(7, &set, 0)), ERR(getitimer(7, &it)));
    return 0;
}
"""

# A busy loop is interrupted: by a handler that ends it, then by SIGALRM's default action (status 142).
BUSY_C = COMMON + r"""
static volatile int stop;
static void handler(int sig, siginfo_t *si, void *uc) { stop = 1; }
int main(void) {
    on(SIGALRM, handler, 0);
    arm(40, 0);
    unsigned long spins = 0;
    while (!stop)
        spins++;
    printf("handler ended the loop: %s\n", YES(spins > 0));
    signal(SIGALRM, SIG_DFL);
    fflush(stdout);
    arm(40, 0);
    for (volatile unsigned long i = 0;; i++)
        ;
}
"""

# A blocking read of an empty pipe and sigsuspend are woken by the timer's signal.
WAKE_C = COMMON + r"""
static volatile int hits;
static void handler(int sig, siginfo_t *si, void *uc) { hits++; }
int main(void) {
    int fds[2]; pipe(fds);
    char c;
    on(SIGALRM, handler, 0);
    arm(30, 0);
    ssize_t r = read(fds[0], &c, 1);
    printf("read: %zd %s, hits %d\n", r, strerrorname_np(errno), hits);
    sigset_t block, none; sigemptyset(&block); sigaddset(&block, SIGALRM); sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &block, 0);
    arm(30, 0);
    r = sigsuspend(&none);
    printf("sigsuspend: %zd %s, hits %d\n", r, strerrorname_np(errno), hits);
    on(SIGALRM, handler, SA_RESTART);
    sigprocmask(SIG_UNBLOCK, &block, 0);
    arm(30, 0);
    if (fork() == 0) { nap(100); write(fds[1], "x", 1); _exit(0); }
    r = read(fds[0], &c, 1);
    printf("restarted read: %zd '%c', hits %d\n", r, c, hits);
    wait(0);
    return 0;
}
"""

# POSIX timers: SIGEV_SIGNAL with si_value and SI_TIMER, the NULL sigevent (SIGALRM, value = id),
# TIMER_ABSTIME, overruns while the signal is blocked, timer_gettime, SIGEV_NONE, errors, deletion.
POSIX_C = COMMON + r"""
static volatile int hits, code, value, overrun, sig;
static volatile int timerid, bursts, burst_getoverrun = -1;
static timer_t burst_timer;
static struct itimerspec burst_old;
static void handler(int s, siginfo_t *si, void *uc) {
    hits++; sig = s; code = si->si_code; value = si->si_value.sival_int; overrun = si->si_overrun;
    timerid = si->si_timerid;
    if (burst_getoverrun == -2 && si->si_overrun >= 3) {   /* the signal standing for the expiries while blocked */
        bursts++;
        burst_getoverrun = timer_getoverrun(burst_timer);
        struct itimerspec stop = { { 0, 0 }, { 0, 0 } };
        timer_settime(burst_timer, 0, &stop, &burst_old);
    }
}
static struct itimerspec spec(long value_ms, long interval_ms) {
    struct itimerspec its = { { interval_ms / 1000, interval_ms % 1000 * 1000000L },
                              { value_ms / 1000, value_ms % 1000 * 1000000L } };
    return its;
}
int main(void) {
    on(SIGUSR1, handler, 0);
    on(SIGALRM, handler, 0);
    struct sigevent sev; memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL; sev.sigev_signo = SIGUSR1; sev.sigev_value.sival_int = 1234;
    timer_t t1, t3;
    printf("create: %s\n", ERR(timer_create(CLOCK_MONOTONIC, &sev, &t1)));
    struct itimerspec its = spec(30, 0), cur;
    timer_settime(t1, 0, &its, 0);
    timer_gettime(t1, &cur);
    printf("armed: left in (0, 30 ms] %s\n", YES(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0
                                                  && cur.it_value.tv_nsec <= 30000000));
    pause();
    printf("fired: hits %d sig %d code SI_TIMER %s value %d overrun %d timerid matches %s\n", hits, sig,
           YES(code == SI_TIMER), value, overrun, YES(timerid == (int)(intptr_t)t1));
    timer_gettime(t1, &cur);
    printf("after: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    int kid = -1;                             /* glibc passes a sigevent of its own: NULL only through syscall */
    printf("create NULL: %s\n", ERR(syscall(SYS_timer_create, CLOCK_REALTIME, 0, &kid)));
    struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
    its = spec(0, 0);
    its.it_value.tv_sec = now.tv_sec; its.it_value.tv_nsec = now.tv_nsec + 30000000;
    if (its.it_value.tv_nsec >= 1000000000) { its.it_value.tv_sec++; its.it_value.tv_nsec -= 1000000000; }
    printf("abstime: %s\n", ERR(syscall(SYS_timer_settime, kid, TIMER_ABSTIME, &its, 0)));
    pause();
    printf("NULL sigevent: hits %d sig %d code SI_TIMER %s value is id %s\n", hits, sig, YES(code == SI_TIMER),
           YES(value == kid && timerid == kid));
    printf("delete: %s\n", ERR(syscall(SYS_timer_delete, kid)));

    sigset_t block; sigemptyset(&block); sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, 0);
    its = spec(10, 10);
    burst_timer = t1;
    burst_getoverrun = -2;
    timer_settime(t1, 0, &its, 0);
    nap(120);
    sigprocmask(SIG_UNBLOCK, &block, 0);      /* the pending signal is delivered on the way out */
    printf("periodic while blocked: signals with overrun >= 3: %d, getoverrun >= 3 %s, old interval %ld ns\n",
           bursts, YES(burst_getoverrun >= 3), burst_old.it_interval.tv_nsec);
    int seen = hits;
    nap(40);
    printf("disarmed: more hits %s\n", YES(hits != seen));

    sev.sigev_notify = SIGEV_NONE;
    timer_create(CLOCK_MONOTONIC, &sev, &t3);
    its = spec(20, 0);
    timer_settime(t3, 0, &its, 0);
    nap(50);
    timer_gettime(t3, &cur);
    printf("SIGEV_NONE expired: %ld %ld, hits %s\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec,
           YES(hits == seen));
    its = spec(1000, 250);
    timer_settime(t3, 0, &its, 0);
    timer_gettime(t3, &cur);
    printf("SIGEV_NONE armed: interval %ld ns, left in (0.9 s, 1 s] %s\n", cur.it_interval.tv_nsec,
           YES((cur.it_value.tv_sec == 1 && !cur.it_value.tv_nsec) || (cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 900000000)));

    printf("delete: %s", ERR(timer_delete(t3)));
    printf(", again: %s\n", ERR(timer_delete(t3)));
    printf("gettime deleted: %s\n", ERR(timer_gettime(t3, &cur)));
    its.it_value.tv_nsec = 1000000000;
    printf("nsec 1e9: %s\n", ERR(timer_settime(t1, 0, &its, 0)));
    printf("clock 99: %s\n", ERR(timer_create(99, 0, &t3)));
    printf("CLOCK_MONOTONIC_RAW: %s\n", ERR(timer_create(CLOCK_MONOTONIC_RAW, 0, &t3)));
    sev.sigev_notify = SIGEV_SIGNAL; sev.sigev_signo = 65;
    printf("signo 65: %s\n", ERR(timer_create(CLOCK_MONOTONIC, &sev, &t3)));
    sev.sigev_notify = 3; sev.sigev_signo = SIGUSR1;
    printf("notify 3: %s\n", ERR(timer_create(CLOCK_MONOTONIC, &sev, &t3)));
    sev.sigev_notify = SIGEV_THREAD_ID; sev._sigev_un._tid = gettid(); sev.sigev_value.sival_int = 77;
    printf("thread id: %s\n", ERR(timer_create(CLOCK_MONOTONIC, &sev, &t3)));
    its = spec(20, 0);
    timer_settime(t3, 0, &its, 0);
    pause();
    printf("to my thread: value %d code SI_TIMER %s\n", value, YES(code == SI_TIMER));
    sev._sigev_un._tid = 999999;
    printf("thread id 999999: %s\n", ERR(timer_create(CLOCK_MONOTONIC, &sev, &t3)));
    return 0;
}
"""

# timerfd: a blocking read counting expirations, several expirations counted while away, TFD_NONBLOCK and
# EAGAIN, timerfd_gettime, TFD_TIMER_ABSTIME, poll readiness, close-on-exec, errors.
TIMERFD_C = COMMON + r"""
#include <poll.h>
static struct itimerspec spec(long value_ms, long interval_ms) {
    struct itimerspec its = { { interval_ms / 1000, interval_ms % 1000 * 1000000L },
                              { value_ms / 1000, value_ms % 1000 * 1000000L } };
    return its;
}
int main(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    printf("create: %s cloexec %d\n", YES(fd >= 0), fcntl(fd, F_GETFD));
    uint64_t n = 0;
    struct itimerspec its = spec(20, 20), cur;
    timerfd_settime(fd, 0, &its, 0);
    ssize_t r = read(fd, &n, sizeof n);
    printf("blocking read: %zd ticks >= 1 %s\n", r, YES(n >= 1));
    nap(100);
    r = read(fd, &n, sizeof n);
    printf("after 100 ms: %zd ticks >= 3 %s\n", r, YES(n >= 3));
    timerfd_gettime(fd, &cur);
    printf("gettime: interval %ld ns, left in (0, 20 ms] %s\n", cur.it_interval.tv_nsec,
           YES(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000));
    struct itimerspec old; its = spec(0, 0);
    timerfd_settime(fd, 0, &its, &old);
    printf("old interval %ld ns\n", old.it_interval.tv_nsec);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    printf("disarmed nonblocking read: %s\n", ERR(read(fd, &n, sizeof n)));
    char small[4];
    printf("4-byte read: %s\n", ERR(read(fd, small, sizeof small)));

    int nb = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    printf("TFD_NONBLOCK|TFD_CLOEXEC: cloexec %d nonblock %s\n", fcntl(nb, F_GETFD),
           YES(fcntl(nb, F_GETFL) & O_NONBLOCK));
    printf("unarmed read: %s\n", ERR(read(nb, &n, sizeof n)));
    struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
    its = spec(0, 0); its.it_value.tv_sec = now.tv_sec + 1; its.it_value.tv_nsec = now.tv_nsec;
    its.it_value.tv_sec -= 1; its.it_value.tv_nsec += 30000000;
    if (its.it_value.tv_nsec >= 1000000000) { its.it_value.tv_sec++; its.it_value.tv_nsec -= 1000000000; }
    printf("abstime: %s\n", ERR(timerfd_settime(nb, TFD_TIMER_ABSTIME, &its, 0)));
    printf("read before: %s\n", ERR(read(nb, &n, sizeof n)));
    struct pollfd pfd = { nb, POLLIN, 0 };
    printf("poll now: %d\n", poll(&pfd, 1, 0));
    nap(60);
    int ready = poll(&pfd, 1, 0);
    printf("poll later: %d revents %#x\n", ready, pfd.revents);
    r = read(nb, &n, sizeof n);
    printf("abstime read: %zd ticks %llu\n", r, (unsigned long long)n);

    its = spec(20, 0);
    timerfd_settime(fd, 0, &its, 0);
    pfd.fd = fd; pfd.revents = 0;
    ready = poll(&pfd, 1, 1000);
    printf("poll waits: %d revents %#x\n", ready, pfd.revents);

    printf("bad clock: %s\n", ERR(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0)));
    printf("bad flags: %s\n", ERR(timerfd_create(CLOCK_MONOTONIC, 1)));
    printf("settime flags 4: %s\n", ERR(timerfd_settime(fd, 4, &its, 0)));
    its.it_value.tv_nsec = -1;
    printf("settime nsec -1: %s\n", ERR(timerfd_settime(fd, 0, &its, 0)));
    its.it_value.tv_nsec = 0;
    int pfds[2]; pipe(pfds);
    printf("settime on a pipe: %s\n", ERR(timerfd_settime(pfds[0], 0, &its, 0)));
    printf("settime on fd 99: %s\n", ERR(timerfd_settime(99, 0, &its, 0)));
    printf("gettime on a pipe: %s\n", ERR(timerfd_gettime(pfds[0], &cur)));
    return 0;
}
"""

# fork: the child has no alarm and no POSIX timers (its parent's fire in the parent only); execve keeps the
# interval timer (the new image dies of its SIGALRM) and deletes the POSIX timers.
FORK_C = COMMON + r"""
static volatile int hits;
static void handler(int sig, siginfo_t *si, void *uc) { hits++; }
int main(int argc, char **argv) {
    if (argc > 1) {
        struct itimerval it; getitimer(ITIMER_REAL, &it);
        timer_t t = (timer_t)(intptr_t)atoi(argv[1]);
        struct itimerspec cur;
        printf("after exec: itimer kept %s, POSIX timer: %s\n", YES(it.it_value.tv_sec || it.it_value.tv_usec),
               ERR(timer_gettime(t, &cur)));
        fflush(stdout);
        pause();
        return 0;
    }
    on(SIGALRM, handler, SA_RESTART);
    timer_t t;
    timer_create(CLOCK_MONOTONIC, 0, &t);
    struct itimerspec its = { { 0, 0 }, { 1, 0 } };     /* fires after the exec, if execve keeps it */
    timer_settime(t, 0, &its, 0);
    arm(60, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct itimerval it; getitimer(ITIMER_REAL, &it);
        printf("child: itimer %ld %ld", (long)it.it_value.tv_sec, (long)it.it_value.tv_usec);
        printf(" alarm %u", alarm(0));
        printf(" POSIX timer: %s\n", ERR(timer_gettime(t, &its)));
        nap(150);
        printf("child: hits %d\n", hits);
        return 7;
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent: child exited %d, hits %d\n", WEXITSTATUS(status), hits);
    arm(200, 0);
    char id[16]; snprintf(id, sizeof id, "%d", (int)(intptr_t)t);
    fflush(stdout);
    execl("/proc/self/exe", argv[0], id, (char *)0);
    printf("exec failed\n");
    return 1;
}
"""

# i386 only: the old 32-bit entry points (struct old_itimerspec32), which glibc no longer calls.
OLD32_C = COMMON + r"""
struct its32 { int32_t interval_s, interval_ns, value_s, value_ns; uint32_t canary; };
static volatile int hits;
static void handler(int sig, siginfo_t *si, void *uc) { hits++; }
int main(void) {
    on(SIGUSR2, handler, 0);
    struct sigevent sev; memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL; sev.sigev_signo = SIGUSR2;
    int id = -1;
    printf("timer_create: %ld\n", syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id));
    struct its32 its = { 0, 20000000, 0, 20000000, 0x5a5a5a5a }, cur = { 0, 0, 0, 0, 0x5a5a5a5a };
    printf("timer_settime: %ld\n", syscall(SYS_timer_settime, id, 0, &its, 0));
    printf("timer_gettime: %ld", syscall(SYS_timer_gettime, id, &cur));
    printf(" interval %d left in (0, 20 ms] %s canary %s\n", cur.interval_ns,
           YES(cur.value_s == 0 && cur.value_ns > 0 && cur.value_ns <= 20000000), YES(cur.canary == 0x5a5a5a5a));
    while (hits < 3)
        pause();
    its.value_ns = 0;
    struct its32 old = { 0, 0, 0, 0, 0x5a5a5a5a };
    printf("disarm: %ld", syscall(SYS_timer_settime, id, 0, &its, &old));
    printf(" old interval %d canary %s\n", old.interval_ns, YES(old.canary == 0x5a5a5a5a));
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    its.value_ns = 20000000; its.interval_ns = 0;
    printf("timerfd_settime: %ld\n", syscall(SYS_timerfd_settime, fd, 0, &its, 0));
    printf("timerfd_gettime: %ld", syscall(SYS_timerfd_gettime, fd, &cur));
    printf(" left in (0, 20 ms] %s\n", YES(cur.value_s == 0 && cur.value_ns > 0 && cur.value_ns <= 20000000));
    uint64_t n = 0;
    printf("read: %zd", read(fd, &n, sizeof n));
    printf(" ticks %llu\n", (unsigned long long)n);
    struct { int32_t is, ius, vs, vus; } itv = { 0, 0, 0, 30000 }, oitv;
    printf("setitimer: %ld\n", syscall(SYS_setitimer, ITIMER_REAL, &itv, 0));
    printf("getitimer: %ld", syscall(SYS_getitimer, ITIMER_REAL, &oitv));
    printf(" left <= 30 ms %s\n", YES(oitv.vs == 0 && oitv.vus > 0 && oitv.vus <= 30000));
    on(SIGALRM, handler, 0);
    int before = hits;
    pause();
    printf("SIGALRM handled: %s\n", YES(hits == before + 1));
    return 0;
}
"""

SOURCES = {"alarm_dies": ALARM_DIES_C, "alarm_handler": ALARM_HANDLER_C, "itimer": ITIMER_C, "busy": BUSY_C,
           "wake": WAKE_C, "posix": (POSIX_C, ("-lrt",)), "timerfd": TIMERFD_C, "fork": (FORK_C, ("-lrt",))}
PROGRAMS = sorted(SOURCES)
DIES_BY_SIGALRM = {"alarm_dies": 142, "busy": 142, "fork": 142}    # the others exit 0


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name -> path of each program, built with gcc -static."""
    return compile_static(SOURCES, tmp_path_factory.mktemp("timers"))


@pytest.fixture(scope="module")
def programs32(tmp_path_factory):
    """name -> path of each program (and the old-call one), built with gcc -m32 -static; skipped without
    a 32-bit toolchain or a host that runs i386 programs."""
    return compile_static({**SOURCES, "old32": (OLD32_C, ("-lrt",))}, tmp_path_factory.mktemp("timers32"),
                          flags=("-m32",))


@pytest.mark.parametrize("name", PROGRAMS)
def test_timers(name, programs):
    native, emulated = same_as_native([programs[name]])
    assert native.status == DIES_BY_SIGALRM.get(name, 0)
    assert b"deadlock" not in emulated.stderr          # nothing runs on after pid 1's death



@pytest.mark.parametrize("name", PROGRAMS + ["old32"])
def test_timers_i386(name, programs32):
    native, emulated = same_as_native([programs32[name]])
    assert native.status == DIES_BY_SIGALRM.get(name, 0)
    assert b"deadlock" not in emulated.stderr

