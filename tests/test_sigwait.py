"""Taking signals synchronously: sigwait, sigwaitinfo and sigtimedwait (rt_sigtimedwait) on pending, later
and never-coming signals, fed by raise, sigqueue from a child (rt_sigqueueinfo, with its si_value),
pthread_sigqueue (rt_tgsigqueueinfo) and alarm; run natively and under run-elf, x86-64 and i386.
"""
from __future__ import annotations

import pytest

from conftest import compile_static, same_as_native

SIGWAIT = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t set;

static void *waiter(void *arg) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    printf("thread took %d value %d code %d\n", sig, si.si_value.sival_int, si.si_code);
    return arg;
}

int main(void) {
    siginfo_t si;
    int sig, r;
    struct timespec ts = {0, 50000000};
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1); sigaddset(&set, SIGUSR2); sigaddset(&set, SIGALRM); sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, 0);

    raise(SIGUSR2);
    raise(SIGUSR1);
    sigwait(&set, &sig);
    printf("lowest pending first: %d\n", sig);
    sigwait(&set, &sig);
    printf("then: %d\n", sig);
    r = sigtimedwait(&set, &si, &ts);
    printf("timed out: %d %s\n", r, strerrorname_np(errno));
    ts.tv_nsec = 0;
    r = sigtimedwait(&set, &si, &ts);
    printf("zero timeout polls: %d %s\n", r, strerrorname_np(errno));
    ts.tv_nsec = 1000000000;
    r = sigtimedwait(&set, &si, &ts);
    printf("bad timeout: %d %s\n", r, strerrorname_np(errno));

    pid_t parent = getpid(), child = fork();
    if (child == 0) {
        struct timespec nap = {0, 50000000};
        nanosleep(&nap, 0);
        sigqueue(parent, SIGUSR1, (union sigval){.sival_int = 77});
        _exit(0);
    }
    sig = sigwaitinfo(&set, &si);
    printf("queued: %d code %d value %d from the child: %s\n", sig, si.si_code, si.si_value.sival_int,
           si.si_pid == child ? "yes" : "no");
    waitpid(child, 0, 0);

    alarm(1);
    sig = sigwaitinfo(&set, &si);
    printf("alarm: %d code %d\n", sig, si.si_code);

    pthread_t t;
    pthread_create(&t, 0, waiter, 0);
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, 0);
    pthread_sigqueue(t, SIGRTMIN, (union sigval){.sival_int = 5});
    pthread_join(t, 0);

    pid_t idle = fork();
    if (idle == 0) {
        pause();
        _exit(0);
    }
    siginfo_t forged = {.si_signo = SIGUSR1, .si_code = SI_USER};
    long q = syscall(SYS_rt_sigqueueinfo, idle, SIGUSR1, &forged);
    printf("kernel code forged for another process: %ld %s\n", q, strerrorname_np(errno));
    forged.si_code = SI_QUEUE;
    q = syscall(SYS_rt_sigqueueinfo, idle, SIGTERM, &forged);
    int status;
    waitpid(idle, &status, 0);
    printf("SI_QUEUE allowed: %ld, child killed by %d\n", q, WTERMSIG(status));
    return 0;
}
"""


IGNORED_PENDING = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_usr2(int sig) { handled = sig; }

/* A SIGCHLD that pended while blocked, its action being the default (ignore), must not end a
   sigsuspend that unblocks it: only the handled SIGUSR2 sent later does. */
int main(void) {
    sigset_t blocked, none;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigprocmask(SIG_BLOCK, &blocked, 0);
    signal(SIGUSR2, on_usr2);
    if (fork() == 0)
        _exit(0);
    usleep(200000);
    pid_t parent = getpid();
    if (fork() == 0) {
        usleep(200000);
        kill(parent, SIGUSR2);
        _exit(0);
    }
    sigemptyset(&none);
    int r = sigsuspend(&none);
    printf("sigsuspend %d %s, after the handler of %d\n", r, strerror(errno), handled);
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("sigwait")
    built = compile_static({"sigwait": (SIGWAIT, ("-pthread",)), "ignored": IGNORED_PENDING}, out)
    built.update(compile_static({"sigwait-i386": (SIGWAIT, ("-pthread",))}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["sigwait", "sigwait-i386"])
def test_sigwait_family_matches_native(programs, name):
    same_as_native([programs[name]], timeout=60)


def test_an_ignored_signal_pending_while_blocked_does_not_end_sigsuspend(programs):
    same_as_native([programs["ignored"]], timeout=60)
