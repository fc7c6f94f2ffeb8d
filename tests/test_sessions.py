"""Process groups and sessions: the first process leads neither (its group and session are run-elf's, as a
program run from a script leads neither), so setsid succeeds in it as natively; leaders cannot setsid;
setpgid, kill(0) and waitpid(0) act on groups. Natively and under run-elf, x86-64 and i386, and
util-linux's setsid and ionice, which decide what to do from these calls.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import compile_static, same_as_native

SESSIONS = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int usr1;

static void on_usr1(int sig) {
    usr1 += sig == SIGUSR1;
}

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, 0);
}

static void report(const char *who) {
    printf("%s: leads its group %d, its session %d\n", who, getpgrp() == getpid(), getsid(0) == getpid());
}

static int status_of(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WEXITSTATUS(status);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    report("first process");

    /* A child joins its own group: no longer in ours for waitpid(0) and kill(0). */
    pid_t other = fork();
    if (other == 0) {
        setpgid(0, 0);
        report("child in its own group");
        pid_t again = setsid();
        int err = errno;
        printf("group leader's setsid: %d %s\n", again, strerrorname_np(err));
        nap(100);
        _exit(4);
    }
    nap(30);
    printf("parent sees the child's group: %d\n", getpgid(other) == other);
    pid_t none = waitpid(0, 0, WNOHANG);
    printf("waitpid(0) for our group: %d %s\n", none, strerrorname_np(errno));
    printf("waitpid(-group): %d\n", waitpid(-other, 0, 0) == other);

    /* kill(0) reaches every process of the sender's group: tried in a group of our own, so that natively
       it reaches no process outside this program. */
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        signal(SIGUSR1, on_usr1);
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        sigprocmask(SIG_BLOCK, &block, &old);
        pid_t same = fork();
        if (same == 0) {
            while (!usr1)
                sigsuspend(&old);
            printf("member of the group got SIGUSR1 from kill(0)\n");
            _exit(5);
        }
        kill(0, SIGUSR1);
        sigprocmask(SIG_SETMASK, &old, 0);
        printf("sender got it too: %d; member status %d\n", usr1, status_of(same));
        _exit(7);
    }
    printf("group leader status %d\n", status_of(leader));

    /* A child that leads nothing starts a session. */
    pid_t sess = fork();
    if (sess == 0) {
        pid_t sid = setsid();
        printf("child's setsid returns its pid: %d\n", sid == getpid());
        report("child in its new session");
        _exit(6);
    }
    printf("session child status %d\n", status_of(sess));

    pid_t sid = setsid();
    printf("first process's setsid: %d\n", sid == getpid());
    report("first process after setsid");
    sid = setsid();
    int err = errno;
    printf("second setsid: %d %s\n", sid, strerrorname_np(err));
    int r = setpgid(getpid(), 1);
    printf("setpgid of a session leader: %d %s\n", r, strerrorname_np(errno));
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("sessions")
    built = compile_static({"sessions": SESSIONS}, out)
    built.update(compile_static({"sessions-i386": SESSIONS}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["sessions", "sessions-i386"])
def test_groups_and_sessions_match_native(programs, name):
    same_as_native([programs[name]], timeout=60)


@pytest.mark.parametrize("command", [
    ["setsid", "/bin/echo", "in a new session"],
    ["ionice", "-c3", "/bin/echo", "idle"],
    ["bash", "-c", "ionice -c2 -n5 -p $$; ionice -p $$; ionice -c0 -n1 -p $$; echo $?; "
                   "(ionice -c2 -n3 -p $BASHPID; ionice -P 0; sleep 0.1 & ionice -P 0)"],
])
def test_util_linux_tools_match_native(command):
    found = shutil.which(command[0])
    if found is None:
        pytest.skip(f"{command[0]} is not installed")
    same_as_native([found, *command[1:]], timeout=60)
