"""Per-process CPU time and what depends on it: getrusage, times, wait4's rusage, the CPU-time clocks
(CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, clock_getcpuclockid, pthread_getcpuclockid),
ITIMER_VIRTUAL/ITIMER_PROF and POSIX timers on CPU clocks, for x86-64 and i386 programs, run natively
and under run-elf (stdout and exit status must match).

Busy loops spin for a span of the monotonic clock (~100 ms), so they take the same time at any speed of
the machine or the emulator, and the programs print only coarse facts ("user > 10 ms: yes"), never times.
"""
from __future__ import annotations

import pytest

from conftest import compile_static, same_as_native

CPUTIME_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/wait.h>

#define YES(cond) ((cond) ? "yes" : "no")
#define ERR(call) ((call) == -1 ? strerrorname_np(errno) : "ok")
#define MS 1000000LL
static volatile unsigned long sink;
static volatile int ticks;

static long long ns(clockid_t clock) {
    struct timespec ts;
    if (clock_gettime(clock, &ts)) return -1;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/* Spin for `ms` of the monotonic clock, or until `*stop` reaches `until` (if stop is given). */
static void busy(long ms, volatile int *stop, int until) {
    long long end = ns(CLOCK_MONOTONIC) + ms * MS;
    while ((!stop || *stop < until) && ns(CLOCK_MONOTONIC) < end)
        for (int i = 0; i < 20000; i++) sink += i;
}
static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * MS }; nanosleep(&ts, 0); }
static long long tv(struct timeval t) { return t.tv_sec * 1000000000LL + t.tv_usec * 1000LL; }
static long long usage(int who, long long *sys) {
    struct rusage ru;
    getrusage(who, &ru);
    if (sys) *sys = tv(ru.ru_stime);
    return tv(ru.ru_utime);
}
static void count(int sig) { ticks++; }
static void on(int sig) { struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = count; sigaction(sig, &sa, 0); }
static void arm(int which, long value_ms, long interval_ms) {
    struct itimerval it = { { 0, interval_ms * 1000 }, { 0, value_ms * 1000 } };
    setitimer(which, &it, 0);
}

static void *spin(void *arg) { busy(100, 0, 0); *(long long *)arg = usage(RUSAGE_THREAD, 0); return 0; }

int main(void) {
    /* A busy process: user time, both CPU clocks and its clock_getcpuclockid clock advance. */
    long long p0 = ns(CLOCK_PROCESS_CPUTIME_ID), t0 = ns(CLOCK_THREAD_CPUTIME_ID), u0 = usage(RUSAGE_SELF, 0);
    clockid_t mine;
    printf("getcpuclockid self: %d\n", clock_getcpuclockid(0, &mine));
    long long m0 = ns(mine);
    busy(100, 0, 0);
    long long p1 = ns(CLOCK_PROCESS_CPUTIME_ID), t1 = ns(CLOCK_THREAD_CPUTIME_ID), u1 = usage(RUSAGE_SELF, 0);
    printf("busy: user > 10 ms %s, process clock > 10 ms %s, thread clock > 10 ms %s, own clock %s\n",
           YES(u1 - u0 > 10 * MS), YES(p1 - p0 > 10 * MS), YES(t1 - t0 > 10 * MS), YES(ns(mine) - m0 > 10 * MS));
    printf("busy: user < 10 s %s, process clock < 10 s %s\n", YES(u1 < 10000 * MS), YES(p1 < 10000 * MS));
    struct timespec res;
    const char *r = ERR(clock_getres(CLOCK_PROCESS_CPUTIME_ID, &res));
    printf("getres process: %s %ld ns\n", r, (long)res.tv_nsec);
    r = ERR(clock_getres(CLOCK_THREAD_CPUTIME_ID, &res));
    printf("getres thread: %s %ld ns\n", r, (long)res.tv_nsec);
    r = ERR(clock_getres(mine, &res));
    printf("getres getcpuclockid: %s %ld ns\n", r, (long)res.tv_nsec);
    r = ERR(clock_getres(((~(clockid_t)0) << 3) | 0, &res));      /* CPUCLOCK_PROF, VIRT: a tick */
    printf("getres prof clock: %s %s\n", r, YES(res.tv_nsec >= 1000000));
    r = ERR(clock_getres(((~(clockid_t)0) << 3) | 1, &res));
    printf("getres virt clock: %s %s\n", r, YES(res.tv_nsec >= 1000000));

    /* times() agrees with getrusage (clock ticks of 10 ms). */
    struct tms tm;
    long long sys, user = usage(RUSAGE_SELF, &sys);
    times(&tm);
    long long tick = 1000000000LL / sysconf(_SC_CLK_TCK);
    printf("times: utime ticks %s, stime ticks %s, no children %s\n",
           YES(llabs(tm.tms_utime * tick - user) <= 3 * tick), YES(llabs(tm.tms_stime * tick - sys) <= 3 * tick),
           YES(tm.tms_cutime == 0 && tm.tms_cstime == 0));

    /* A sleeping process uses (almost) no CPU. */
    p0 = ns(CLOCK_PROCESS_CPUTIME_ID);
    nap(100);
    printf("sleep 100 ms: cpu < 20 ms %s\n", YES(ns(CLOCK_PROCESS_CPUTIME_ID) - p0 < 20 * MS));

    /* A busy child: its clock from the parent, wait4's rusage, RUSAGE_CHILDREN, not in RUSAGE_SELF. */
    pid_t c = fork();
    if (c == 0) { busy(100, 0, 0); _exit(0); }
    clockid_t child;
    printf("getcpuclockid child: %d\n", clock_getcpuclockid(c, &child));
    long long self0 = usage(RUSAGE_SELF, 0);
    siginfo_t si;
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    printf("zombie child's clock > 10 ms: %s\n", YES(ns(child) > 10 * MS));
    struct rusage ru;
    int st;
    pid_t w = wait4(c, &st, 0, &ru);
    printf("wait4: %s, child user > 10 ms %s\n", YES(w == c), YES(tv(ru.ru_utime) > 10 * MS));
    long long kids = usage(RUSAGE_CHILDREN, 0), self1 = usage(RUSAGE_SELF, 0);
    printf("children user > 10 ms %s, self grew by less than half of it %s\n", YES(kids > 10 * MS),
           YES(self1 - self0 < kids / 2));
    times(&tm);
    printf("times: children's ticks %s\n", YES(tm.tms_cutime > 0));
    printf("reaped child's clock: %s\n", ERR(clock_gettime(child, &res)));
    printf("getcpuclockid of nobody: %s\n", strerrorname_np(clock_getcpuclockid(999999, &child)));

    /* A thread: RUSAGE_THREAD is its own time, RUSAGE_SELF the group's. */
    pthread_t th;
    long long spun = 0, main0 = usage(RUSAGE_THREAD, 0);
    pthread_create(&th, 0, spin, &spun);
    clockid_t thclock;
    printf("pthread_getcpuclockid: %d\n", pthread_getcpuclockid(th, &thclock));
    pthread_join(th, 0);
    long long main1 = usage(RUSAGE_THREAD, 0), all = usage(RUSAGE_SELF, 0);
    printf("thread user > 10 ms %s, main thread grew less %s, self includes it %s\n", YES(spun > 10 * MS),
           YES(main1 - main0 < spun / 2), YES(all >= spun));
    pthread_getcpuclockid(pthread_self(), &thclock);
    printf("own thread clock: %s\n", YES(ns(thclock) > 0));

    /* ITIMER_VIRTUAL and ITIMER_PROF fire on a busy loop and not while the process sleeps. */
    struct itimerval it;
    int which[] = { ITIMER_VIRTUAL, ITIMER_PROF }, sigs[] = { SIGVTALRM, SIGPROF };
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "ITIMER_PROF" : "ITIMER_VIRTUAL";
        on(sigs[i]);
        ticks = 0;
        arm(which[i], 10, 10);
        getitimer(which[i], &it);
        printf("%s: armed %s, left <= 1 s %s\n", name, YES(it.it_value.tv_usec > 0 || it.it_value.tv_sec > 0),
               YES(it.it_value.tv_sec == 0));
        busy(3000, &ticks, 3);
        arm(which[i], 0, 0);
        printf("%s: ticks >= 2 %s\n", name, YES(ticks >= 2));
        ticks = 0;
        arm(which[i], 30, 0);
        nap(100);
        getitimer(which[i], &it);
        printf("%s: fired while asleep %s, still armed %s\n", name, YES(ticks > 0),
               YES(it.it_value.tv_usec > 0 || it.it_value.tv_sec > 0));
        arm(which[i], 0, 0);
    }

    /* One-shot ITIMER_VIRTUAL and ITIMER_PROF armed together both fire, once. */
    ticks = 0;
    arm(ITIMER_VIRTUAL, 20, 0);
    arm(ITIMER_PROF, 20, 0);
    busy(3000, &ticks, 2);
    busy(50, 0, 0);
    getitimer(ITIMER_PROF, &it);
    printf("one-shot pair: ticks %d, disarmed %s\n", ticks, YES(!it.it_value.tv_sec && !it.it_value.tv_usec));

    /* POSIX timers on CPU clocks. */
    clockid_t clocks[] = { CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, mine };
    const char *names[] = { "process", "thread", "getcpuclockid" };
    on(SIGUSR1);
    for (int i = 0; i < 3; i++) {
        struct sigevent ev;
        memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGUSR1;
        timer_t t;
        printf("timer_create %s: %s\n", names[i], ERR(timer_create(clocks[i], &ev, &t)));
        struct itimerspec its = { { 0, 10 * MS }, { 0, 20 * MS } }, cur;
        ticks = 0;
        timer_settime(t, 0, &its, 0);
        timer_gettime(t, &cur);
        printf("timer %s: armed %s\n", names[i], YES(cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20 * MS));
        busy(3000, &ticks, 3);
        printf("timer %s: ticks >= 2 %s\n", names[i], YES(ticks >= 2));
        timer_delete(t);
    }

    /* Bad clock ids. */
    clockid_t nobody = ((~(clockid_t)999999) << 3) | 2, bad_type = ((~(clockid_t)0) << 3) | 7;
    printf("clock_gettime nobody: %s, bad type: %s, 100: %s\n", ERR(clock_gettime(nobody, &res)),
           ERR(clock_gettime(bad_type, &res)), ERR(clock_gettime(100, &res)));
    printf("clock_getres nobody: %s\n", ERR(clock_getres(nobody, &res)));
    timer_t t;
    printf("timer_create nobody: %s\n", ERR(timer_create(nobody, 0, &t)));
    struct timespec ten = { 0, 10 * MS };
    printf("clock_nanosleep thread clock: %d\n", clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ten, 0));
    printf("raw clock_nanosleep thread clock: %s\n", ERR(syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &ten, 0)));
    printf("raw clock_nanosleep own thread clock: %s\n", ERR(syscall(SYS_clock_nanosleep, -2, 0, &ten, 0)));
    return 0;
}
"""

SOURCES = {"cputime": (CPUTIME_C, ("-pthread",))}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    return compile_static(SOURCES, tmp_path_factory.mktemp("cputime"))


@pytest.fixture(scope="module")
def programs32(tmp_path_factory):
    return compile_static(SOURCES, tmp_path_factory.mktemp("cputime32"), ("-m32",))


def test_cputime(programs):
    native, emulated = same_as_native([programs["cputime"]])
    assert b"busy: user > 10 ms yes" in native.stdout


def test_cputime_i386(programs32):
    native, emulated = same_as_native([programs32["cputime"]])
    assert b"busy: user > 10 ms yes" in native.stdout
