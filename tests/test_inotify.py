"""inotify: inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch, and reading, polling and
fstat of an instance. Static glibc programs (x86-64, and the same sources with -m32) run natively and
under run-elf; stdout and exit status must be the same.

The programs watch a fresh temporary directory and print each event's watch descriptor, mask (by name) and
name in the order read (one directory's events come in order), and errno names; never times, only whether
a wait lasted as long as it had to. Waits are ended by a forked child that acts after a delay, or, for a
guest with nothing else to run, by the test itself changing the directory from outside.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, USING_RUN_ELF, compile_static, run_elf, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A call's result: its value, or -1 and the errno name. */
#define SHOW(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", r_ == -1 ? strerrorname_np(errno) : ""); } while (0)
#define YES(cond) ((cond) ? "yes" : "no")

static const char *NAMES[] = {"ACCESS", "MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE_NOWRITE", "OPEN",
    "MOVED_FROM", "MOVED_TO", "CREATE", "DELETE", "DELETE_SELF", "MOVE_SELF", "?", "UNMOUNT",
    "Q_OVERFLOW", "IGNORED"};

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static void pause_ms(int ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, 0);
}

static char dir[64];

/* A fresh directory to watch (removed at exit by cleanup). */
static void make_dir(void) {
    strcpy(dir, "/tmp/inotifyXXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)type; (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static char *at(const char *name) {
    static char path[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof path[i], "%s/%s", dir, name);
    return path[i];
}

/* One event as "wd=W MASK|MASK name"; moves show whether their cookie pairs with the last one's. */
static void show_event(const struct inotify_event *e) {
    static unsigned last_cookie;
    printf("  wd=%d ", e->wd);
    for (int b = 0; b < 16; b++)
        if (e->mask & (1u << b))
            printf("%s ", NAMES[b]);
    if (e->mask & IN_ISDIR)
        printf("ISDIR ");
    if (e->cookie) {
        printf("cookie %s ", e->cookie == last_cookie ? "same" : "new");
        last_cookie = e->cookie;
    }
    printf("%s len=%u\n", e->len ? e->name : "-", e->len);
}

/* Print the events in buf[0:n]. */
static void show_events(const char *buf, long n) {
    for (long off = 0; off < n; ) {
        const struct inotify_event *e = (const void *)(buf + off);
        show_event(e);
        off += sizeof *e + e->len;
    }
}

/* Read and print everything queued on a non-blocking instance. */
static void drain(int fd, const char *label) {
    char buf[4096] __attribute__((aligned(8)));
    printf("%s:\n", label);
    long n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        show_events(buf, n);
    printf("  end: %s\n", n == -1 ? strerrorname_np(errno) : "eof");
}
"""

EVENTS_C = COMMON + r"""
/* Changes to a watched directory and a watched file, by this process and by a forked child. */
int main(void) {
    make_dir();
    int fd = inotify_init1(IN_NONBLOCK);
    int wd = inotify_add_watch(fd, dir, IN_ALL_EVENTS);
    printf("wd %d\n", wd);
    drain(fd, "nothing yet");

    int f = open(at("a"), O_CREAT | O_WRONLY, 0644);
    write(f, "hello\n", 6);
    write(f, "again\n", 6);
    close(f);
    rename(at("a"), at("b"));
    mkdir(at("sub"), 0755);
    rmdir(at("sub"));
    drain(fd, "this process");

    int wdf = inotify_add_watch(fd, at("b"), IN_ALL_EVENTS);
    printf("file wd %d\n", wdf);
    pid_t c = fork();
    if (c == 0) {
        char buf[16];
        int g = open(at("b"), O_RDONLY);
        read(g, buf, sizeof buf);
        close(g);
        chmod(at("b"), 0600);
        g = open(at("c"), O_CREAT | O_RDWR | O_TRUNC, 0644);
        write(g, "x", 1);
        close(g);
        symlink("b", at("l"));
        link(at("c"), at("d"));
        truncate(at("d"), 0);
        _exit(0);
    }
    waitpid(c, 0, 0);
    drain(fd, "forked child");

    unlink(at("b"));
    unlink(at("c"));
    unlink(at("d"));
    unlink(at("l"));
    char moved[80];
    snprintf(moved, sizeof moved, "%s-moved", dir);
    rename(dir, moved);
    rename(moved, dir);
    drain(fd, "unlinks");
    cleanup();
    drain(fd, "removed");
    return 0;
}
"""

CALLS_C = COMMON + r"""
/* Flags, errors, watch descriptors, rm_watch, short reads, fstat and /proc of an instance. */
int main(void) {
    make_dir();
    SHOW("init1 bad flag", inotify_init1(4));
    SHOW("inotify_init", syscall(SYS_inotify_init) >= 0);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int fl = fcntl(fd, F_GETFL);
    printf("getfl nonblock %s accmode %d cloexec %s\n", YES(fl & O_NONBLOCK), fl & O_ACCMODE,
           YES(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    char buf[256] __attribute__((aligned(8)));
    SHOW("read empty nonblocking", read(fd, buf, sizeof buf));
    SHOW("write", write(fd, "x", 1));
    SHOW("lseek", lseek(fd, 0, SEEK_SET));

    struct stat st;
    fstat(fd, &st);
    printf("fstat type %o perms %o\n", st.st_mode & S_IFMT, st.st_mode & 07777);
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    long n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("proc link %s\n", link);

    int file = open(at("file"), O_CREAT | O_WRONLY, 0644);
    close(file);
    symlink("file", at("link"));
    mkdir(at("sub"), 0755);
    SHOW("mask 0", inotify_add_watch(fd, dir, 0));
    SHOW("mask add and create", inotify_add_watch(fd, dir, IN_CREATE | IN_MASK_ADD | IN_MASK_CREATE));
    SHOW("bad fd", inotify_add_watch(99, dir, IN_CREATE));
    SHOW("bad fd and mask 0", inotify_add_watch(99, dir, 0));
    SHOW("not an inotify fd", inotify_add_watch(1, dir, IN_CREATE));
    SHOW("missing", inotify_add_watch(fd, at("missing"), IN_CREATE));
    SHOW("under a file", inotify_add_watch(fd, at("file/x"), IN_CREATE));
    SHOW("empty path", inotify_add_watch(fd, "", IN_CREATE));
    SHOW("bad path pointer", inotify_add_watch(fd, (char *)8, IN_CREATE));
    SHOW("onlydir on a file", inotify_add_watch(fd, at("file"), IN_CREATE | IN_ONLYDIR));
    SHOW("onlydir through a link to a file", inotify_add_watch(fd, at("link"), IN_ATTRIB | IN_ONLYDIR));
    SHOW("dir", inotify_add_watch(fd, dir, IN_CREATE | IN_DELETE));
    SHOW("dir again", inotify_add_watch(fd, dir, IN_DELETE));
    SHOW("dir mask_create", inotify_add_watch(fd, dir, IN_CREATE | IN_MASK_CREATE));
    SHOW("dir mask_add", inotify_add_watch(fd, dir, IN_CREATE | IN_MASK_ADD));
    SHOW("onlydir on a dir", inotify_add_watch(fd, at("sub"), IN_CREATE | IN_ONLYDIR));
    SHOW("file", inotify_add_watch(fd, at("file"), IN_ATTRIB));
    SHOW("link followed", inotify_add_watch(fd, at("link"), IN_ATTRIB));
    SHOW("link itself", inotify_add_watch(fd, at("link"), IN_ATTRIB | IN_DONT_FOLLOW));
    chdir(dir);
    SHOW("relative sub", inotify_add_watch(fd, "sub", IN_CREATE));
    SHOW("relative dot", inotify_add_watch(fd, ".", IN_CREATE));
    SHOW("relative dotdot", inotify_add_watch(fd, "sub/..", IN_CREATE));
    chdir("/");

    close(open(at("new"), O_CREAT | O_WRONLY, 0644));
    int avail = -1;
    SHOW("fionread", ioctl(fd, FIONREAD, &avail));
    printf("fionread bytes %d\n", avail);
    SHOW("read 0 bytes", read(fd, buf, 0));
    SHOW("read one header", read(fd, buf, sizeof(struct inotify_event)));
    SHOW("read one event", read(fd, buf, sizeof(struct inotify_event) + 16));
    show_events(buf, sizeof(struct inotify_event) + 16);
    SHOW("read empty again", read(fd, buf, sizeof buf));

    chmod(at("file"), 0600);
    unlink(at("new"));
    close(open(at("new2"), O_CREAT | O_WRONLY, 0644));
    SHOW("read 20 bytes", read(fd, buf, 20));
    SHOW("read two fitting", read(fd, buf, 2 * sizeof(struct inotify_event) + 16));
    drain(fd, "rest");

    SHOW("rm_watch sub", inotify_rm_watch(fd, 2));
    SHOW("rm_watch sub again", inotify_rm_watch(fd, 2));
    SHOW("rm_watch 999", inotify_rm_watch(fd, 999));
    SHOW("rm_watch -1", inotify_rm_watch(fd, -1));
    SHOW("rm_watch bad fd", inotify_rm_watch(99, 1));
    SHOW("rm_watch not inotify", inotify_rm_watch(0, 1));
    drain(fd, "after rm_watch");
    SHOW("rm_watch dir", inotify_rm_watch(fd, 1));
    SHOW("rm_watch file", inotify_rm_watch(fd, 3));
    drain(fd, "after rm_watch dir");
    close(open(at("unwatched"), O_CREAT | O_WRONLY, 0644));
    drain(fd, "no watch left");
    SHOW("new watch numbered on", inotify_add_watch(fd, dir, IN_CREATE));

    int second = inotify_init();
    SHOW("second instance numbers from 1", inotify_add_watch(second, dir, IN_CREATE));
    SHOW("dup2 then close", dup2(second, 50) == 50 && close(second) == 0);
    SHOW("still watches", inotify_add_watch(50, at("sub"), IN_CREATE));
    cleanup();
    return 0;
}
"""

WAIT_C = COMMON + r"""
/* A child that creates NAME in the watched directory after `ms` milliseconds, then exits. */
static pid_t create_later(const char *name, int ms) {
    pid_t c = fork();
    if (c == 0) {
        pause_ms(ms);
        close(open(at(name), O_CREAT | O_WRONLY, 0644));
        _exit(0);
    }
    return c;
}

/* Blocking reads, and poll, select and epoll readiness of an instance, woken by a child's changes. */
int main(void) {
    make_dir();
    int fd = inotify_init();
    inotify_add_watch(fd, dir, IN_CREATE);
    char buf[512] __attribute__((aligned(8)));

    long long t0 = now_ms();
    pid_t c = create_later("late", 80);
    long n = read(fd, buf, sizeof buf);
    printf("blocking read woken after 70ms: %s\n", YES(now_ms() - t0 >= 70));
    show_events(buf, n);
    waitpid(c, 0, 0);

    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    SHOW("poll empty", poll(&p, 1, 0));
    t0 = now_ms();
    SHOW("poll timeout 30ms", poll(&p, 1, 30));
    printf("poll waited: %s\n", YES(now_ms() - t0 >= 25));
    c = create_later("polled", 50);
    t0 = now_ms();
    SHOW("poll until a child creates", poll(&p, 1, 5000));
    printf("revents %#x waited: %s\n", p.revents, YES(now_ms() - t0 >= 40));
    waitpid(c, 0, 0);
    int avail = 0;
    ioctl(fd, FIONREAD, &avail);
    printf("fionread %d\n", avail);
    n = read(fd, buf, sizeof buf);
    show_events(buf, n);

    fd_set rd;
    FD_ZERO(&rd); FD_SET(fd, &rd);
    struct timeval tv = {0, 0};
    SHOW("select empty", select(fd + 1, &rd, 0, 0, &tv));
    c = create_later("selected", 50);
    FD_ZERO(&rd); FD_SET(fd, &rd);
    SHOW("select until a child creates", select(fd + 1, &rd, 0, 0, 0));
    printf("select readable %s\n", YES(FD_ISSET(fd, &rd)));
    waitpid(c, 0, 0);
    n = read(fd, buf, sizeof buf);
    show_events(buf, n);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out[2];
    SHOW("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    SHOW("epoll empty", epoll_wait(ep, out, 2, 0));
    c = create_later("epolled", 50);
    SHOW("epoll until a child creates", epoll_wait(ep, out, 2, 5000));
    printf("epoll events %#x data %u\n", out[0].events, out[0].data.u32);
    waitpid(c, 0, 0);
    n = read(fd, buf, sizeof buf);
    show_events(buf, n);

    /* Two children, one reading with a shared instance while the other creates. */
    fflush(stdout);
    pid_t reader = fork();
    if (reader == 0) {
        long m = read(fd, buf, sizeof buf);
        printf("child read:\n");
        show_events(buf, m);
        fflush(stdout);
        _exit(0);
    }
    c = create_later("shared", 60);
    waitpid(reader, 0, 0);
    waitpid(c, 0, 0);
    cleanup();
    return 0;
}
"""

OUTSIDE_C = COMMON + r"""
/* Watch argv[1] and block in read until something outside the guest creates a file there. */
int main(int argc, char **argv) {
    int fd = inotify_init();
    SHOW("watch", inotify_add_watch(fd, argv[1], IN_CREATE));
    fflush(stdout);
    char buf[512] __attribute__((aligned(8)));
    long n = read(fd, buf, sizeof buf);
    show_events(buf, n);
    struct pollfd p = {fd, POLLIN, 0};
    SHOW("poll", poll(&p, 1, -1));
    n = read(fd, buf, sizeof buf);
    show_events(buf, n);
    return 0;
}
"""

SOURCES = {"events": EVENTS_C, "calls": CALLS_C, "wait": WAIT_C}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name -> path of each program above, built with gcc -static for x86-64."""
    return compile_static({**SOURCES, "outside": OUTSIDE_C}, tmp_path_factory.mktemp("inotify"))


@pytest.fixture(scope="module")
def programs32(tmp_path_factory):
    """The same programs built with gcc -m32 -static (skipped without a 32-bit toolchain or IA32 emulation)."""
    return compile_static({**SOURCES, "outside": OUTSIDE_C}, tmp_path_factory.mktemp("inotify32"),
                           flags=("-m32",))


def check(path: str) -> bytes:
    """Run path natively and under run-elf: same stdout and status, every wait as long as natively."""
    out = same_as_native([path], timeout=120)[0].stdout
    assert b": no" not in out, out.decode()
    return out


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_x86_64(programs, name):
    """inotify on x86-64: events of this process and its children, errors, blocking and polled waits."""
    check(programs[name])


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_i386(programs32, name):
    """The same through int 0x80 (inotify_init 291, add_watch 292, rm_watch 293, init1 332)."""
    check(programs32[name])


def test_events_are_reported(programs):
    """The programs see events at all (a native run that saw none would make the comparison empty)."""
    out = check(programs["events"])
    for event in (b"CREATE", b"MODIFY", b"CLOSE_WRITE", b"MOVED_FROM", b"MOVED_TO", b"cookie same", b"ACCESS",
                  b"ATTRIB", b"DELETE_SELF", b"IGNORED", b"MOVE_SELF", b"ISDIR"):
        assert event in out, out.decode()


def run_with_outside_change(argv: list[str], watched: Path) -> bytes:
    """Run argv (watching `watched`), and once it says it watches, create two files there 0.2 s apart
    from outside; its stdout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    first = proc.stdout.readline()
    for name in ("one", "two"):
        time.sleep(0.2)
        (watched / name).touch()
    out, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode == 0, err.decode()
    return first + out


@pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own wait on the host")
@pytest.mark.parametrize("bits", ["64", "32"])
def test_blocking_read_alone_waits_on_the_host(request, bits):
    """A guest with nothing else to run blocks in read and poll until a change from outside, as natively."""
    exe = request.getfixturevalue("programs" if bits == "64" else "programs32")["outside"]
    outputs = []
    for runner in ([], [sys.executable, "-m", "osmodel"]):
        with tempfile.TemporaryDirectory() as watched:
            outputs.append(run_with_outside_change([*runner, exe, watched], Path(watched)))
    assert outputs[0] == outputs[1]
    assert b"one" in outputs[0] and b"two" in outputs[0], outputs[0].decode()


@pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's --root")
@pytest.mark.parametrize("name", ["calls", "events"])
def test_under_root(programs, tmp_path, name):
    """Under --root, watched paths resolve inside the root (IN_DONT_FOLLOW watches a link itself there):
    the same output as a native run outside it."""
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    shutil.copy(programs[name], root / name)
    native = subprocess.run([programs[name]], capture_output=True, timeout=60)
    emulated = run_elf([f"/{name}"], "--root", str(root), timeout=120)
    assert b"Traceback" not in emulated.stderr, emulated.stderr.decode()
    assert (emulated.stdout, emulated.status) == (native.stdout, native.returncode), emulated.stderr.decode()
    assert not list((root / "tmp").iterdir())
