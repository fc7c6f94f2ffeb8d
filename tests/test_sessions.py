"""Process groups, sessions and job control: the first process leads neither (its group and session are run-elf's, as a
program run from a script leads neither), so setsid succeeds in it as natively; leaders cannot setsid;
setpgid, kill(0) and waitpid(0) act on groups; prctl's parent-death signal and child subreaper decide what
an orphan gets and who adopts it; SIGSTOP, SIGTSTP and SIGCONT stop and continue a process,
which its parent sees through SIGCHLD's si_code and wait's WUNTRACED, WSTOPPED and WCONTINUED. Natively
and under run-elf, x86-64 and i386, and util-linux's setsid and ionice and bash's kill and wait.
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

JOB_CONTROL = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile int chld_codes[8], nchld;
static void on_chld(int sig, siginfo_t *si, void *u) { if (nchld < 8) chld_codes[nchld++] = si->si_code; }
static void nap(long ms) { struct timespec ts = {0, ms * 1000000}; nanosleep(&ts, 0); }
static void show(const char *what, int st) {
    if (WIFSTOPPED(st)) printf("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st)) printf("%s: continued\n", what);
    else if (WIFSIGNALED(st)) printf("%s: killed by %d\n", what, WTERMSIG(st));
    else printf("%s: exited %d\n", what, WEXITSTATUS(st));
}
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld; sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    int p[2]; pipe(p);
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < 3; i++) { nap(300); write(p[1], "x", 1); }
        _exit(3);
    }
    nap(30);
    kill(c, SIGSTOP);
    int st;
    pid_t r = waitpid(c, &st, WUNTRACED);
    show("WUNTRACED", st);
    printf("again with WNOHANG|WUNTRACED: %d\n", waitpid(c, &st, WNOHANG | WUNTRACED));
    printf("wait pid %d\n", r == c);
    nap(200);                                  /* stopped, the child writes nothing meanwhile */
    char buf[8];
    int ready = 0;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (read(p[0], buf, 1) == 1)
        ready++;
    printf("written while stopped: %d\n", ready);
    kill(c, SIGCONT);
    waitpid(c, &st, WCONTINUED);
    show("WCONTINUED", st);
    waitpid(c, &st, 0);
    show("end", st);
    printf("SIGCHLD codes:");
    for (int i = 0; i < nchld; i++) printf(" %d", chld_codes[i]);
    printf("\n");

    /* A stop signal the child sends itself; waitid with WSTOPPED; SIGTERM to a stopped child */
    c = fork();
    if (c == 0) {
        setpgid(0, 0);          /* a group whose parent is outside it: not orphaned, so SIGTSTP stops it */
        raise(SIGTSTP);
        printf("child continued after SIGTSTP\n");
        _exit(4);
    }
    siginfo_t si = {0};
    waitid(P_PID, c, &si, WSTOPPED);
    printf("waitid: code %d status %d\n", si.si_code, si.si_status);
    kill(c, SIGCONT);
    waitid(P_PID, c, &si, WEXITED);
    printf("waitid: code %d status %d\n", si.si_code, si.si_status);
    c = fork();
    if (c == 0) { pause(); _exit(0); }
    kill(c, SIGSTOP); waitpid(c, &st, WUNTRACED);
    kill(c, SIGTERM);
    nap(50);
    printf("TERM while stopped: waitpid WNOHANG %d\n", waitpid(c, &st, WNOHANG) == c);
    kill(c, SIGCONT);
    waitpid(c, &st, 0);
    show("after CONT", st);
    return 0;
}
"""


PRCTL = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int got;

static void on_signal(int sig) {
    got = sig;
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    printf("dumpable: %d\n", prctl(PR_GET_DUMPABLE));
    int r = prctl(PR_SET_DUMPABLE, 0);
    printf("set dumpable 0: %d, now %d\n", r, prctl(PR_GET_DUMPABLE));
    r = prctl(PR_SET_DUMPABLE, 2);
    printf("set dumpable 2: %d %s\n", r, strerrorname_np(errno));
    prctl(PR_SET_DUMPABLE, 1);
    r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    printf("set no_new_privs: %d, now %d\n", r, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    r = prctl(PR_SET_CHILD_SUBREAPER, 1);
    int value = -1;
    prctl(PR_GET_CHILD_SUBREAPER, &value);
    printf("set subreaper: %d, now %d\n", r, value);

    /* The grandchild is orphaned: it comes to us, the subreaper, and gets the signal it asked for. */
    pid_t me = getpid();
    int p[2];
    pipe(p);
    pid_t middle = fork();
    if (middle == 0) {
        if (fork() == 0) {
            signal(SIGUSR1, on_signal);
            prctl(PR_SET_PDEATHSIG, SIGUSR1);
            int asked = 0;
            prctl(PR_GET_PDEATHSIG, &asked);
            write(p[1], "r", 1);
            while (!got)
                pause();
            printf("orphan: asked for %d, got %d, adopted by the subreaper %d\n", asked, got, getppid() == me);
            _exit(6);
        }
        char c;
        read(p[0], &c, 1);
        _exit(5);
    }
    int st, middle_st;
    waitpid(middle, &middle_st, 0);
    pid_t orphan = wait(&st);                     /* after the orphan has printed, so the order is fixed */
    printf("middle process: %d\n", WEXITSTATUS(middle_st));
    printf("reaped the orphan: %d, status %d\n", orphan > 0 && orphan != middle, WEXITSTATUS(st));
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("sessions")
    sources = {"sessions": SESSIONS, "jobcontrol": JOB_CONTROL, "prctl": PRCTL}
    built = compile_static(sources, out)
    built.update(compile_static({f"{name}-i386": text for name, text in sources.items()}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["sessions", "sessions-i386", "jobcontrol", "jobcontrol-i386", "prctl", "prctl-i386"])
def test_groups_sessions_and_job_control_match_native(programs, name):
    same_as_native([programs[name]], timeout=60)


@pytest.mark.parametrize("command", [
    ["setsid", "/bin/echo", "in a new session"],
    ["ionice", "-c3", "/bin/echo", "idle"],
    ["bash", "-c", "ionice -c2 -n5 -p $$; ionice -p $$; ionice -c0 -n1 -p $$; echo $?; "
                   "(ionice -c2 -n3 -p $BASHPID; ionice -P 0; sleep 0.1 & ionice -P 0)"],
    ["bash", "-c", "sleep 2 & p=$!; sleep .2; kill -STOP $p; cut -d' ' -f3 /proc/$p/stat; kill -CONT $p; "
                   "kill -TERM $p; wait $p; echo $?; sh -c 'kill -STOP $$; echo continued' & sleep .3; "
                   "kill -CONT $!; wait"],
])
def test_util_linux_tools_match_native(command):
    found = shutil.which(command[0])
    if found is None:
        pytest.skip(f"{command[0]} is not installed")
    same_as_native([found, *command[1:]], timeout=60)
