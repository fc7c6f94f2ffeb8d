"""Process-directed signals in multi-threaded programs (Linux's shared pending set): kill, alarm, a POSIX
timer, sigqueue and a child's SIGCHLD reach whichever thread does not block them, waits for them in
sigwait or reads a signalfd; sigpending shows them in every thread, and pthread_kill stays with its
thread; run natively and under run-elf, x86-64 and i386.
"""
from __future__ import annotations

import pytest

from conftest import compile_static, same_as_native

THREADS = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_t worker;
static sigset_t waited;
static pthread_barrier_t barrier;
static volatile sig_atomic_t handled, on_worker, main_handled;

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, 0);
}

static void *sigwaiter(void *arg) {
    siginfo_t si;
    int sig = sigwaitinfo(&waited, &si);
    printf("  sigwait thread took %d, code %d\n", sig, si.si_code);
    return arg;
}

/* (1) every thread blocks SIGUSR1 and SIGTERM, one waits for them: kill reaches it, before and after
   it starts waiting; SIGTERM's default action must not kill while a thread waits for it. */
static void all_block_one_waits(void) {
    int sigs[] = {SIGUSR1, SIGTERM};
    printf("all threads block, a thread waits:\n");
    sigemptyset(&waited);
    sigaddset(&waited, SIGUSR1);
    sigaddset(&waited, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &waited, 0);
    for (int late = 0; late < 2; late++)
        for (int i = 0; i < 2; i++) {
            pthread_t t;
            pthread_create(&t, 0, sigwaiter, 0);
            if (late)
                nap(50);
            kill(getpid(), sigs[i]);
            pthread_join(t, 0);
        }
    pthread_sigmask(SIG_UNBLOCK, &waited, 0);
}

static void on_usr2(int sig) {
    on_worker = pthread_equal(pthread_self(), worker);
    handled = sig;
}

static void *napper(void *arg) {
    while (!handled)
        nap(5);
    return arg;
}

/* (2) the main thread blocks SIGUSR2, a worker does not: kill's SIGUSR2 runs its handler on the worker. */
static void handled_by_the_thread_that_does_not_block(void) {
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    signal(SIGUSR2, on_usr2);
    pthread_create(&worker, 0, napper, 0);
    pthread_sigmask(SIG_BLOCK, &usr2, 0);
    kill(getpid(), SIGUSR2);
    pthread_join(worker, 0);
    printf("SIGUSR2 handled: %d, on the worker: %d\n", handled, on_worker);
    pthread_sigmask(SIG_UNBLOCK, &usr2, 0);
}

static void print_pending(const char *who) {
    sigset_t s;
    sigpending(&s);
    printf("  %s: SIGUSR1 %d SIGHUP %d\n", who, sigismember(&s, SIGUSR1), sigismember(&s, SIGHUP));
}

static void *pending_reporter(void *arg) {
    pthread_barrier_wait(&barrier);
    print_pending("worker");
    pthread_barrier_wait(&barrier);
    return arg;
}

/* (3) a blocked process-directed signal shows in every thread's sigpending. */
static void pending_in_every_thread(void) {
    sigset_t s;
    int sig;
    printf("sigpending after kill:\n");
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, 0);
    pthread_barrier_init(&barrier, 0, 2);
    pthread_create(&worker, 0, pending_reporter, 0);
    kill(getpid(), SIGUSR1);
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    pthread_join(worker, 0);
    print_pending("main");
    sigwait(&s, &sig);
    print_pending("main after sigwait");
    pthread_sigmask(SIG_UNBLOCK, &s, 0);
    pthread_barrier_destroy(&barrier);
}

static void on_hup_main(int sig) { main_handled = sig; }

static void *hup_keeper(void *arg) {
    sigset_t hup;
    int sig;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    print_pending("target thread");
    sigwait(&hup, &sig);
    printf("  target thread took %d\n", sig);
    return arg;
}

/* (4) pthread_kill's signal stays with its thread, though the main thread would handle it. */
static void pthread_kill_stays(void) {
    sigset_t hup;
    printf("pthread_kill:\n");
    signal(SIGHUP, on_hup_main);
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_barrier_init(&barrier, 0, 2);
    pthread_sigmask(SIG_BLOCK, &hup, 0);
    pthread_create(&worker, 0, hup_keeper, 0);
    pthread_sigmask(SIG_UNBLOCK, &hup, 0);
    pthread_barrier_wait(&barrier);
    pthread_kill(worker, SIGHUP);
    print_pending("main");
    pthread_barrier_wait(&barrier);
    pthread_join(worker, 0);
    printf("  main handler ran: %d\n", main_handled);
    pthread_barrier_destroy(&barrier);
}

/* (5) alarm, a POSIX timer and a child's SIGCHLD, all blocked, are taken by a thread in sigwaitinfo. */
static void timers_and_children(void) {
    int sigs[] = {SIGALRM, SIGRTMIN, SIGCHLD};
    printf("timers and SIGCHLD:\n");
    for (int i = 0; i < 3; i++) {
        pthread_t t;
        sigemptyset(&waited);
        sigaddset(&waited, sigs[i]);
        pthread_sigmask(SIG_BLOCK, &waited, 0);
        pthread_create(&t, 0, sigwaiter, 0);
        if (sigs[i] == SIGALRM) {
            alarm(1);
        } else if (sigs[i] == SIGCHLD) {
            pid_t child = fork();
            if (child == 0)
                _exit(3);
        } else {
            timer_t id;
            struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN};
            struct itimerspec its = {.it_value = {0, 100000000}};
            timer_create(CLOCK_MONOTONIC, &ev, &id);
            timer_settime(id, 0, &its, 0);
        }
        pthread_join(t, 0);
        if (sigs[i] == SIGCHLD) {
            int status;
            wait(&status);
            printf("  child status %d\n", WEXITSTATUS(status));
        }
        pthread_sigmask(SIG_UNBLOCK, &waited, 0);
    }
}

static void *sfd_reader(void *arg) {
    struct signalfd_siginfo info;
    int fd = signalfd(-1, &waited, 0);
    ssize_t n = read(fd, &info, sizeof info);
    printf("  signalfd thread read %zd: signal %u, code %d, value %d\n", n, info.ssi_signo, info.ssi_code,
           info.ssi_int);
    close(fd);
    return arg;
}

/* (6) sigqueue's signal, blocked everywhere, reaches a thread reading a signalfd, with its value. */
static void sigqueue_to_a_signalfd_reader(void) {
    pthread_t t;
    printf("signalfd:\n");
    sigemptyset(&waited);
    sigaddset(&waited, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &waited, 0);
    pthread_create(&t, 0, sfd_reader, 0);
    nap(50);
    sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = 42});
    pthread_join(t, 0);
    pthread_sigmask(SIG_UNBLOCK, &waited, 0);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    all_block_one_waits();
    handled_by_the_thread_that_does_not_block();
    pending_in_every_thread();
    pthread_kill_stays();
    timers_and_children();
    sigqueue_to_a_signalfd_reader();
    return 0;
}
"""

FATAL = r"""
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static void *idler(void *arg) {
    for (;;)
        pause();
    return arg;
}

/* The main thread blocks SIGTERM, a thread does not and leaves it at its default: the process dies. */
int main(void) {
    sigset_t term;
    pthread_t t;
    setvbuf(stdout, 0, _IONBF, 0);
    pthread_create(&t, 0, idler, 0);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, 0);
    printf("sending\n");
    kill(getpid(), SIGTERM);
    pthread_join(t, 0);
    printf("not reached\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("thread-signals")
    sources = {"threads": (THREADS, ("-pthread",)), "fatal": (FATAL, ("-pthread",))}
    built = compile_static(sources, out)
    built.update(compile_static({f"{name}-i386": source for name, source in sources.items()}, out,
                                flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["threads", "threads-i386"])
def test_process_directed_signals_reach_a_willing_thread(programs, name):
    same_as_native([programs[name]], timeout=60)


@pytest.mark.parametrize("name", ["fatal", "fatal-i386"])
def test_a_fatal_signal_one_thread_takes_ends_the_process(programs, name):
    same_as_native([programs[name]], timeout=60)
