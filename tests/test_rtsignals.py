"""Realtime signals queue one instance per send, each with its own siginfo, and are taken oldest first;
standard ones pend once. Compared with native runs, x86-64 and i386."""

import pytest

from conftest import compile_static, same_as_native

RTSIG = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static sigset_t set;
static volatile int got[64], values[16], nvalues;

static void queue_all(void)
{
    for (int v = 1; v <= 3; v++)
        if (sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = v}))
            perror("sigqueue");
    sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 10});
    sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 20});
    sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 21});
}

static void show(int sig, const siginfo_t *si)
{
    printf("sig %s code %d value %d pid-ok %d\n", sig == SIGUSR1 ? "USR1" : sig == SIGRTMIN ? "RTMIN" : "RTMIN+1",
           si->si_code, si->si_value.sival_int, si->si_pid == getpid());
}

static void drain(void)
{
    siginfo_t si;
    struct timespec zero = {0, 0};
    for (int i = 0; i < 5; i++) {
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) { perror("sigwaitinfo"); return; }
        show(sig, &si);
    }
    int sig = sigtimedwait(&set, &si, &zero);
    printf("last %d %s\n", sig, sig < 0 ? strerror(errno) : "");
}

static void handler(int sig, siginfo_t *si, void *uc)
{
    got[sig]++;
    if (nvalues < 16)
        values[nvalues++] = sig * 100 + si->si_value.sival_int;
}

static void *waiter(void *arg)
{
    drain();
    return NULL;
}

int main(int argc, char **argv)
{
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (!strcmp(argv[1], "wait")) {
        queue_all();
        drain();
    } else if (!strcmp(argv[1], "handler")) {
        struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO};
        sigaction(SIGRTMIN, &sa, NULL);
        sigaction(SIGRTMIN + 1, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        queue_all();
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        printf("usr1 %d rtmin %d rtmin+1 %d\n", got[SIGUSR1], got[SIGRTMIN], got[SIGRTMIN + 1]);
        int sigs[] = {SIGUSR1, SIGRTMIN, SIGRTMIN + 1};
        for (int s = 0; s < 3; s++)             /* each signal's values in order (the order among signals */
            for (int i = 0; i < nvalues; i++)   /* depends on how handler frames nest) */
                if (values[i] / 100 == sigs[s])
                    printf("%d %d\n", s, values[i] % 100);
    } else if (!strcmp(argv[1], "signalfd")) {
        struct signalfd_siginfo records[8];
        int fd = signalfd(-1, &set, SFD_NONBLOCK);
        queue_all();
        ssize_t n = read(fd, records, sizeof records);
        printf("read %zd records\n", n / (ssize_t)sizeof records[0]);
        for (int i = 0; i < n / (ssize_t)sizeof records[0]; i++)
            printf("sig %d code %d value %d\n", records[i].ssi_signo - SIGRTMIN, records[i].ssi_code,
                   records[i].ssi_int);
        n = read(fd, records, sizeof records);
        printf("again %zd %s\n", n, n < 0 ? strerror(errno) : "");
    } else if (!strcmp(argv[1], "thread")) {
        pthread_t t;
        queue_all();                            /* process-directed: the new thread takes them */
        pthread_create(&t, NULL, waiter, NULL);
        pthread_join(t, NULL);
    } else if (!strcmp(argv[1], "limit")) {
        siginfo_t si;
        struct timespec zero = {0, 0};
        struct rlimit none = {0, 0};
        if (setrlimit(RLIMIT_SIGPENDING, &none))
            perror("setrlimit");
        int r = sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = 7});
        printf("sigqueue %d %s\n", r, r < 0 ? strerror(errno) : "");
        printf("kill %d\n", kill(getpid(), SIGRTMIN));
        int sig = sigtimedwait(&set, &si, &zero);
        printf("took %d code %d pid %d\n", sig - SIGRTMIN, si.si_code, si.si_pid);
        sig = sigtimedwait(&set, &si, &zero);
        printf("then %d %s\n", sig, sig < 0 ? strerror(errno) : "");
    }
    return 0;
}
"""


@pytest.fixture(scope="module", params=["64", "32"])
def rtsig(request, tmp_path_factory):
    flags = ("-m32",) if request.param == "32" else ()
    out = tmp_path_factory.mktemp(f"rtsig{request.param}")
    return compile_static({"rtsig": (RTSIG, ("-pthread",))}, out, flags)["rtsig"]


@pytest.mark.parametrize("mode", ["wait", "handler", "signalfd", "thread", "limit"])
def test_realtime_signals_queue(rtsig, mode):
    """Each sigqueue of a realtime signal is one instance, taken oldest first after the lower signals;
    a second SIGUSR1 is lost; beyond RLIMIT_SIGPENDING sigqueue fails and kill loses the siginfo."""
    native, _ = same_as_native([rtsig, mode])
    assert native.stdout
