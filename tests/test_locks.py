"""File locks (flock, fcntl record locks, OFD locks) and positional vectored I/O (preadv, pwritev, preadv2,
pwritev2), checked against native runs.

The C programs are built for x86-64, for i386 (-m32: glibc's fcntl then passes a struct flock with 32-bit
offsets to fcntl64) and for i386 with -D_FILE_OFFSET_BITS=64 (struct flock64, F_SETLK64). Processes that
wait for each other order their output through pipes, and a waiter is given time to fall asleep before the
holder releases, so the order of events printed is the same on every run. Pids are printed only as
comparisons ("l_pid is the child: yes").
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import compile_static, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* A call's result: its value, or -1 and the errno name. */
#define SHOW(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", r_ == -1 ? strerrorname_np(errno) : ""); } while (0)
#define YES(cond) ((cond) ? "yes" : "no")

static const char *path;

static int reopen(int flags) { return open(path, flags); }

/* A child that runs fn and exits; the parent goes on. */
static pid_t spawn(void (*fn)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { fn(); fflush(stdout); _exit(0); }
    return c;
}

static void reap(pid_t c) { int st; waitpid(c, &st, 0); }
static void nap(void) { usleep(150000); }
"""

FLOCK_C = COMMON + r"""
static int sync_pipe[2];

static void contender(void) {
    int fd = reopen(O_RDWR);
    SHOW("child: LOCK_EX|LOCK_NB on its own open", flock(fd, LOCK_EX | LOCK_NB));
    SHOW("child: LOCK_SH|LOCK_NB on its own open", flock(fd, LOCK_SH | LOCK_NB));
    fflush(stdout);
    write(sync_pipe[1], "r", 1);
    SHOW("child: LOCK_EX (waits)", flock(fd, LOCK_EX));
}

static int shared_fd;
static void sharer(void) {
    SHOW("child: LOCK_EX|LOCK_NB on the inherited description", flock(shared_fd, LOCK_EX | LOCK_NB));
    SHOW("child: LOCK_UN on it", flock(shared_fd, LOCK_UN));
}

int main(int argc, char **argv) {
    path = argv[1];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    pipe(sync_pipe);
    SHOW("LOCK_EX", flock(fd, LOCK_EX));
    SHOW("LOCK_EX again", flock(fd, LOCK_EX));
    pid_t c = spawn(contender);
    char b;
    read(sync_pipe[0], &b, 1);
    nap();
    printf("parent: releasing\n");
    fflush(stdout);
    SHOW("LOCK_UN", flock(fd, LOCK_UN));
    reap(c);

    /* dup and fork share the open file description, and its lock. */
    int fd2 = dup(fd);
    SHOW("LOCK_EX", flock(fd, LOCK_EX));
    SHOW("LOCK_EX|LOCK_NB on a dup", flock(fd2, LOCK_EX | LOCK_NB));
    int other = reopen(O_RDONLY);
    SHOW("LOCK_SH|LOCK_NB on another open", flock(other, LOCK_SH | LOCK_NB));
    shared_fd = fd;
    reap(spawn(sharer));
    SHOW("LOCK_SH|LOCK_NB on another open after the child's LOCK_UN", flock(other, LOCK_SH | LOCK_NB));
    SHOW("LOCK_EX|LOCK_NB (shared held elsewhere)", flock(fd, LOCK_EX | LOCK_NB));
    SHOW("LOCK_SH on it", flock(fd, LOCK_SH));
    int third = reopen(O_RDONLY);
    SHOW("LOCK_SH|LOCK_NB on a third open", flock(third, LOCK_SH | LOCK_NB));
    SHOW("LOCK_EX|LOCK_NB on the third", flock(third, LOCK_EX | LOCK_NB));
    close(other);
    close(fd);
    SHOW("LOCK_EX|LOCK_NB on the third, the dup still open", flock(third, LOCK_EX | LOCK_NB));
    close(fd2);
    SHOW("LOCK_EX|LOCK_NB on the third, all closed", flock(third, LOCK_EX | LOCK_NB));
    SHOW("LOCK_SH|LOCK_EX", flock(third, LOCK_SH | LOCK_EX));
    SHOW("no operation", flock(third, 0));
    SHOW("LOCK_NB alone", flock(third, LOCK_NB));
    SHOW("bad descriptor", flock(99, LOCK_SH));
    SHOW("bad descriptor and operation", flock(99, LOCK_SH | LOCK_EX));
    SHOW("LOCK_MAND", flock(third, 32 | 64));
    int p[2];
    pipe(p);
    SHOW("LOCK_EX on a pipe", flock(p[0], LOCK_EX));
    SHOW("LOCK_SH|LOCK_NB on its other end", flock(p[1], LOCK_SH | LOCK_NB));
    return 0;
}
"""

POSIX_C = COMMON + r"""
static int fd, to_parent[2], to_child[2];
static pid_t parent_pid;

static void probe(int fd, const char *what, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len, .l_pid = 4242};
    errno = 0;
    int r = fcntl(fd, F_GETLK, &fl);
    if (r)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else if (fl.l_type == F_UNLCK)
        printf("%s: unlocked (start %ld len %ld pid kept %s)\n", what, (long)fl.l_start, (long)fl.l_len,
               YES(fl.l_pid == 4242));
    else
        printf("%s: %s start %ld len %ld whence %d, l_pid is the parent %s\n", what,
               fl.l_type == F_WRLCK ? "F_WRLCK" : "F_RDLCK", (long)fl.l_start, (long)fl.l_len, fl.l_whence,
               YES(fl.l_pid == parent_pid));
}

static int lock(int fd, int cmd, short type, short whence, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = whence, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void step(void) { char b; write(to_parent[1], "s", 1); read(to_child[0], &b, 1); }
static void go(void) { char b; read(to_parent[0], &b, 1); }
static void resume(void) { fflush(stdout); write(to_child[1], "g", 1); }

/* The child looks at the parent's locks, one step at a time. */
static void prober(void) {
    int own = reopen(O_RDWR);
    probe(own, "whole file for writing", F_WRLCK, 0, 0);
    probe(fd, "the same through the inherited fd (locks are not inherited)", F_WRLCK, 0, 0);
    probe(own, "30..35 for reading", F_RDLCK, 30, 6);
    probe(own, "30..35 for writing", F_WRLCK, 30, 6);
    SHOW("child: F_SETLK write 15", lock(own, F_SETLK, F_WRLCK, SEEK_SET, 15, 1));
    SHOW("child: F_SETLK read 35..", lock(own, F_SETLK, F_RDLCK, SEEK_SET, 35, 0));
    SHOW("child: F_SETLK unlock 35..", lock(own, F_SETLK, F_UNLCK, SEEK_SET, 35, 0));
    step();
    probe(own, "after the split: 12..13", F_WRLCK, 12, 2);
    probe(own, "after the split: from 0", F_WRLCK, 0, 0);
    probe(own, "after the split: from 12", F_WRLCK, 12, 0);
    step();
    probe(own, "after the type change: 14..19 for reading", F_RDLCK, 14, 6);
    probe(own, "after the type change: 16..19 for reading", F_RDLCK, 16, 4);
    probe(own, "after the type change: 16.. for writing", F_WRLCK, 16, 0);
    step();
    probe(own, "after the merge: 22..", F_WRLCK, 22, 0);
    probe(own, "after the negative length: 50..", F_WRLCK, 50, 0);
    probe(own, "SEEK_CUR/SEEK_END locks: 60..", F_WRLCK, 60, 0);
    step();
    probe(own, "after the parent closed another fd", F_WRLCK, 0, 0);
    step();
    lock(own, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
    printf("child: locked 0\n");
    fflush(stdout);
    write(to_parent[1], "s", 1);
    SHOW("child: F_SETLKW on the parent's 200 (waits)", lock(own, F_SETLKW, F_WRLCK, SEEK_SET, 200, 1));
    fflush(stdout);
    nap();
    printf("child: unlocking 0\n");
    fflush(stdout);
    lock(own, F_SETLK, F_UNLCK, SEEK_SET, 0, 1);
    step();
}

static void holder(void) {
    int own = reopen(O_RDWR);
    lock(own, F_SETLK, F_RDLCK, SEEK_SET, 7, 3);
    fflush(stdout);
    write(to_parent[1], "s", 1);
    char b;
    read(to_child[0], &b, 1);
    _exit(0);             /* exit releases it */
}

int main(int argc, char **argv) {
    path = argv[1];
    parent_pid = getpid();
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    pipe(to_parent);
    pipe(to_child);
    SHOW("write 10..19", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 10, 10));
    SHOW("read 30..39", lock(fd, F_SETLK, F_RDLCK, SEEK_SET, 30, 10));
    probe(fd, "own locks do not conflict", F_WRLCK, 0, 0);
    pid_t c = spawn(prober);
    go();
    SHOW("unlock 12..13", lock(fd, F_SETLK, F_UNLCK, SEEK_SET, 12, 2));
    resume(); go();
    SHOW("read 16..17", lock(fd, F_SETLK, F_RDLCK, SEEK_SET, 16, 2));
    resume(); go();
    SHOW("write 16..17 again", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 16, 2));
    SHOW("write 20..29 (touches 19)", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 20, 10));
    SHOW("write 55 length -5", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 55, -5));
    lseek(fd, 70, SEEK_SET);
    SHOW("write SEEK_CUR -8 length 2", lock(fd, F_SETLK, F_WRLCK, SEEK_CUR, -8, 2));
    write(fd, "x", 1);    /* the file is now 71 bytes */
    SHOW("write SEEK_END -1 length 1", lock(fd, F_SETLK, F_WRLCK, SEEK_END, -1, 1));
    resume(); go();
    int ro = reopen(O_RDONLY);
    close(ro);
    printf("parent: closed another descriptor of the file\n");
    resume(); go();
    SHOW("F_SETLK on 200", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 200, 1));
    resume();
    go();                 /* the child holds 0 and is about to wait for 200 */
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    fcntl(fd, F_GETLK, &fl);
    printf("child's lock: type %d start %ld len %ld, l_pid is the child %s\n", fl.l_type, (long)fl.l_start,
           (long)fl.l_len, YES(fl.l_pid == c));
    SHOW("F_SETLK on the child's 0", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    nap();
    SHOW("F_SETLKW on the child's 0 while it waits for 200", lock(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1));
    printf("parent: unlocking 200\n");
    fflush(stdout);
    lock(fd, F_SETLK, F_UNLCK, SEEK_SET, 200, 1);
    SHOW("F_SETLKW on the child's 0 (waits)", lock(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1));
    fflush(stdout);
    go();
    resume();
    reap(c);

    c = spawn(holder);
    go();
    struct flock h = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    fcntl(fd, F_GETLK, &h);
    printf("holder's lock: type %d start %ld len %ld, l_pid is the child %s\n", h.l_type, (long)h.l_start,
           (long)h.l_len, YES(h.l_pid == c));
    resume();
    reap(c);
    probe(fd, "after the holder exited", F_WRLCK, 0, 0);

    int rd = reopen(O_RDONLY), wr = reopen(O_WRONLY);
    SHOW("write lock on an O_RDONLY fd", lock(rd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    SHOW("read lock on an O_WRONLY fd", lock(wr, F_SETLK, F_RDLCK, SEEK_SET, 0, 1));
    SHOW("unlock on an O_RDONLY fd", lock(rd, F_SETLK, F_UNLCK, SEEK_SET, 0, 1));
    SHOW("bad whence", lock(fd, F_SETLK, F_WRLCK, 7, 0, 1));
    SHOW("bad type", lock(fd, F_SETLK, 9, SEEK_SET, 0, 1));
    SHOW("start before 0", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, -1, 1));
    SHOW("length reaching before 0", lock(fd, F_SETLK, F_WRLCK, SEEK_SET, 2, -3));
    SHOW("F_GETLK of F_UNLCK", lock(fd, F_GETLK, F_UNLCK, SEEK_SET, 0, 1));
    SHOW("bad descriptor", lock(99, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    return 0;
}
"""

OFD_C = COMMON + r"""
static void ofd_probe(int fd, const char *what) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    errno = 0;
    int r = fcntl(fd, F_OFD_GETLK, &fl);
    if (r)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else if (fl.l_type == F_UNLCK)
        printf("%s: unlocked\n", what);
    else
        printf("%s: type %d start %ld len %ld pid %s\n", what, fl.l_type, (long)fl.l_start, (long)fl.l_len,
               fl.l_pid == -1 ? "-1" : fl.l_pid == getpid() ? "mine" : "another");
}

static int ofd(int fd, int cmd, short type, off_t start, off_t len, pid_t pid) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len, .l_pid = pid};
    return fcntl(fd, cmd, &fl);
}

static int sync_pipe[2], a;
static void waiter(void) {
    close(a);             /* the parent's close must be the description's last */
    int own = reopen(O_RDWR);
    write(sync_pipe[1], "r", 1);
    SHOW("child: F_OFD_SETLKW (waits)", ofd(own, F_OFD_SETLKW, F_WRLCK, 0, 1, 0));
}

int main(int argc, char **argv) {
    path = argv[1];
    a = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int b = reopen(O_RDWR);
    pipe(sync_pipe);
    SHOW("OFD write 0..9 on a", ofd(a, F_OFD_SETLK, F_WRLCK, 0, 10, 0));
    SHOW("OFD write 5 on b (another description)", ofd(b, F_OFD_SETLK, F_WRLCK, 5, 1, 0));
    SHOW("POSIX write 5 on b", ofd(b, F_SETLK, F_WRLCK, 5, 1, 0));
    SHOW("POSIX write 20 on b", ofd(b, F_SETLK, F_WRLCK, 20, 1, 0));
    SHOW("OFD write 20 on a (the process's POSIX lock)", ofd(a, F_OFD_SETLK, F_WRLCK, 20, 1, 0));
    ofd_probe(b, "F_OFD_GETLK through b");
    ofd_probe(a, "F_OFD_GETLK through a");
    SHOW("l_pid not 0", ofd(a, F_OFD_SETLK, F_WRLCK, 0, 1, 1));
    SHOW("F_OFD_GETLK l_pid not 0", ofd(a, F_OFD_GETLK, F_WRLCK, 0, 1, 1));
    close(b);
    ofd_probe(reopen(O_RDONLY), "after closing b (a's lock stays)");
    int d = dup(a);
    close(d);
    ofd_probe(reopen(O_RDONLY), "after closing a dup of a");
    pid_t c = spawn(waiter);
    char x;
    read(sync_pipe[0], &x, 1);
    nap();
    printf("parent: closing a\n");
    fflush(stdout);
    close(a);
    reap(c);
    ofd_probe(reopen(O_RDONLY), "after the child exited");
    return 0;
}
"""

VEC_C = COMMON + r"""
static void show_buffers(const char *what, long n, char *a, char *b) {
    printf("%s: %ld [%.4s] [%.6s]\n", what, n, a, b);
    memset(a, '.', 4);
    memset(b, '.', 6);
}

int main(int argc, char **argv) {
    path = argv[1];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "0123456789abcdefghij", 20);
    char a[4] = "....", b[6] = "......";
    struct iovec v[2] = {{a, 4}, {b, 6}};
    lseek(fd, 3, SEEK_SET);
    errno = 0;
    show_buffers("preadv at 2", preadv(fd, v, 2, 2), a, b);
    show_buffers("preadv at 15", preadv(fd, v, 2, 15), a, b);
    show_buffers("preadv at 20", preadv(fd, v, 2, 20), a, b);
    printf("position still %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    show_buffers("preadv2 at -1", preadv2(fd, v, 2, -1, 0), a, b);
    printf("position now %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    show_buffers("preadv2 at 1, RWF_HIPRI", preadv2(fd, v, 2, 1, RWF_HIPRI), a, b);
    show_buffers("preadv2 at -1, RWF_HIPRI", preadv2(fd, v, 2, -1, RWF_HIPRI), a, b);
    printf("position now %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    SHOW("preadv2 at -2", preadv2(fd, v, 2, -2, 0));
    SHOW("preadv at -1", preadv(fd, v, 2, -1));
    SHOW("preadv2 unknown flag", preadv2(fd, v, 2, 0, 0x40000000));
    SHOW("preadv2 unknown flag, nothing to read", preadv2(fd, v, 0, 0, 0x40000000));
    SHOW("preadv2 bad descriptor", preadv2(99, v, 2, -1, 0));
    struct iovec w[3] = {{"AB", 2}, {"", 0}, {"CDE", 3}};
    SHOW("pwritev at 4", pwritev(fd, w, 3, 4));
    SHOW("pwritev2 at -1, RWF_DSYNC", pwritev2(fd, w, 3, -1, RWF_DSYNC));
    printf("position now %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    SHOW("pwritev2 at 30, RWF_SYNC", pwritev2(fd, w, 1, 30, RWF_SYNC));
    SHOW("pwritev2 at -1, no flags", pwritev2(fd, w, 3, -1, 0));
    char all[40] = {0};
    SHOW("pread all", pread(fd, all, sizeof all, 0));
    for (int i = 0; i < 32; i++) putchar(all[i] ? all[i] : '_');
    putchar('\n');
    int ro = reopen(O_RDONLY);
    SHOW("pwritev on O_RDONLY", pwritev(ro, w, 3, 0));
    int wo = reopen(O_WRONLY);
    SHOW("preadv on O_WRONLY", preadv(wo, v, 2, 0));
    int p[2];
    pipe(p);
    SHOW("pwritev on a pipe", pwritev(p[1], w, 3, 0));
    SHOW("pwritev2 at -1 on a pipe", pwritev2(p[1], w, 3, -1, 0));
    show_buffers("preadv2 at -1 on a pipe", preadv2(p[0], v, 2, -1, 0), a, b);
    SHOW("preadv2 at -1, RWF_NOWAIT, empty pipe", preadv2(p[0], v, 2, -1, RWF_NOWAIT));
    SHOW("preadv at 0 on a pipe", preadv(p[0], v, 2, 0));
    SHOW("preadv2 at 0 on a pipe", preadv2(p[0], v, 2, 0, 0));
    SHOW("preadv negative count", preadv(fd, v, -1, 0));
    return 0;
}
"""

EXEC_C = COMMON + r"""
/* Record locks stay across execve, but closing a close-on-exec descriptor of the file drops them. */
int main(int argc, char **argv) {
    if (argc == 2) {
        int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 3, .l_len = 4};
        fcntl(fd, F_SETLK, &fl);
        open(argv[1], O_RDONLY | O_CLOEXEC);   /* closed by exec: drops the locks */
        execl(argv[0], argv[0], argv[1], "again", (char *)0);
    }
    if (argc == 3) {
        int fd = open(argv[1], O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 1};
        fcntl(fd, F_SETLK, &fl);
        execl(argv[0], argv[0], argv[1], "x", "probe", (char *)0);
    }
    pid_t me = getpid();     /* the third image: the lock of the second is still there */
    if (fork() == 0) {
        int fd = open(argv[1], O_RDWR);
        struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        fcntl(fd, F_GETLK, &g);
        printf("type %d start %ld len %ld parent %d\n", g.l_type, (long)g.l_start, (long)g.l_len, g.l_pid == me);
        fflush(stdout); _exit(0);
    }
    wait(0);
    return 0;
}
"""

PROGRAMS = {"flock": FLOCK_C, "posix": POSIX_C, "ofd": OFD_C, "vec": VEC_C, "exec": EXEC_C}
BUILDS = {"x86-64": (), "i386": ("-m32",), "i386-lfs": ("-m32", "-D_FILE_OFFSET_BITS=64")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """build -> program name -> path, built on first use."""
    cache: dict[str, dict[str, str]] = {}

    def get(build: str) -> dict[str, str]:
        if build not in cache:
            cache[build] = compile_static(PROGRAMS, tmp_path_factory.mktemp(build), BUILDS[build])
        return cache[build]
    return get


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_matches_native(built, tmp_path, name, build):
    same_as_native([built(build)[name], str(tmp_path / "file")])


def test_i386_fcntl_layouts(built, tmp_path):
    """The i386 fcntl and fcntl64 (one entry point on an x86-64 kernel) take struct flock with 32-bit offsets
    for F_GETLK..F_SETLKW, struct flock64 for the *64 and OFD commands."""
    source = COMMON + r"""
    struct flock32 { short type, whence; int start, len, pid; };
    struct flock64k { short type, whence; long long start, len; int pid; } __attribute__((packed));
    int main(int argc, char **argv) {
        path = argv[1];
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        struct flock32 l = {F_WRLCK, SEEK_SET, 5, 10, 0};
        SHOW("fcntl F_SETLK", syscall(SYS_fcntl, fd, 6, &l));
        struct flock64k q = {F_WRLCK, SEEK_SET, 0, 0, 0};
        SHOW("fcntl F_SETLK64", syscall(SYS_fcntl, fd, 13, &q));
        SHOW("fcntl F_OFD_SETLK", syscall(SYS_fcntl, fd, 37, &q));
        SHOW("fcntl64 F_OFD_SETLK", syscall(SYS_fcntl64, fd, 37, &q));
        SHOW("fcntl64 F_OFD_GETLK", syscall(SYS_fcntl64, fd, 36, &q));
        printf("type %d start %lld len %lld pid is mine %s\n", q.type, q.start, q.len, YES(q.pid == getpid()));
        struct flock64k big = {F_WRLCK, SEEK_SET, 0x100000000ll, 1, 0};
        SHOW("fcntl64 F_SETLK64 past 4 GiB", syscall(SYS_fcntl64, fd, 13, &big));
        fflush(stdout);
        if (fork() == 0) {
            struct flock32 g = {F_WRLCK, SEEK_SET, 0, 0, 0};
            SHOW("child fcntl F_GETLK", syscall(SYS_fcntl, fd, 5, &g));
            printf("type %d start %d len %d\n", g.type, g.start, g.len);
            struct flock64k h = {F_WRLCK, SEEK_SET, 0x100000000ll - 10, 0, 0};
            SHOW("child fcntl64 F_GETLK64 near 4 GiB", syscall(SYS_fcntl64, fd, 12, &h));
            printf("type %d start %lld len %lld\n", h.type, h.start, h.len);
            struct flock32 k = {F_WRLCK, SEEK_SET, 0x7ffffff0, 0, 0};
            SHOW("child fcntl F_GETLK near 2 GiB", syscall(SYS_fcntl, fd, 5, &k));
            _exit(0);
        }
        wait(0);
        return 0;
    }
    """
    exe = compile_static({"layouts": source}, tmp_path, ("-m32",))["layouts"]
    same_as_native([exe, str(tmp_path / "file")])


def test_flock_command(tmp_path):
    if not shutil.which("flock"):
        pytest.skip("no flock(1)")
    target = tmp_path / "lockfile"
    target.write_text("")
    same_as_native(["/usr/bin/flock", str(target), "echo", "ok"])
    same_as_native(["/usr/bin/flock", "-n", "-s", str(target), "echo", "shared"])


PYTHON = "/usr/bin/python3"


def python_or_skip() -> str:
    if not shutil.which(PYTHON):
        pytest.skip("no /usr/bin/python3")
    return PYTHON


def test_python_lockf_and_preadv(tmp_path):
    python = python_or_skip()
    script = f"""
import fcntl, os
fd = os.open({str(tmp_path / 'data')!r}, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"hello, vectored world")
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 2)
fcntl.flock(fd, fcntl.LOCK_SH)
a, b = bytearray(5), bytearray(8)
print(os.preadv(fd, [a, b], 7), a, b, flush=True)
print(os.pwritev(fd, [b"V", b"ECTORED"], 7), flush=True)
print(os.pread(fd, 40, 0), flush=True)
pid = os.fork()
if pid == 0:
    other = os.open({str(tmp_path / 'data')!r}, os.O_RDWR)
    for what, call in (("lockf", lambda: fcntl.lockf(other, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 5)),
                       ("flock", lambda: fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB))):
        try:
            call()
            print(what, "granted", flush=True)
        except OSError as e:
            print(what, "refused", e.errno, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
fcntl.lockf(fd, fcntl.LOCK_UN, 5, 2)
print("done")
"""
    same_as_native([python, "-c", script])


def test_sqlite_two_processes(tmp_path):
    """Two processes write one sqlite database in turn (sqlite locks it with fcntl record locks)."""
    python = python_or_skip()
    db = tmp_path / "db.sqlite"
    script = f"""
import os, sqlite3
path = {str(db)!r}
if os.path.exists(path):
    os.unlink(path)
con = sqlite3.connect(path)
con.execute("create table t (who text, n integer)")
con.commit()
for turn in range(3):
    pid = os.fork()
    if pid == 0:
        c = sqlite3.connect(path, timeout=10)
        c.execute("insert into t values ('child', ?)", (turn,))
        c.commit()
        c.close()
        os._exit(0)
    os.waitpid(pid, 0)
    con.execute("insert into t values ('parent', ?)", (turn,))
    con.commit()
print("rows so far:", con.execute("select count(*) from t").fetchone()[0], flush=True)
cur = con.execute("begin immediate")
pid = os.fork()
if pid == 0:
    c = sqlite3.connect(path, timeout=0)
    try:
        c.execute("insert into t values ('intruder', 9)")
        c.commit()
        print("child wrote while the parent held the write lock", flush=True)
    except sqlite3.OperationalError as e:
        print("child refused:", e, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
con.commit()
print(con.execute("select who, n from t order by rowid").fetchall())
"""
    if subprocess.run([python, "-c", "import sqlite3"], capture_output=True).returncode:
        pytest.skip("no sqlite3 module in /usr/bin/python3")
    same_as_native([python, "-c", script])


def held_by_host(path, argv_run) -> tuple[bytes, int]:
    """Run a flock(1) command (argv_run) while this test process holds an exclusive flock on path, released
    after 0.5 s: its output and status."""
    import fcntl
    import os
    import threading
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Timer(0.5, lambda: os.close(fd))
    release.start()
    try:
        return argv_run()
    finally:
        release.join()


def test_flock_sees_host_holders(tmp_path):
    """A guest's flock meets the locks of host processes: refused with -n, granted once the host lets go."""
    if not shutil.which("flock"):
        pytest.skip("no flock(1)")
    from conftest import run_elf, run_native
    target = str(tmp_path / "lockfile")
    for argv in (["/usr/bin/flock", "-n", target, "echo", "got it"], ["/usr/bin/flock", target, "echo", "waited"]):
        native = held_by_host(target, lambda: run_native(argv))
        emulated = held_by_host(target, lambda: run_elf(argv))
        assert (emulated.stdout, emulated.status) == (native.stdout, native.status), emulated.stderr


def test_host_sees_guest_flock(built, tmp_path):
    """A guest's flock is taken on the host too: a host process is refused while the guest holds it."""
    import fcntl
    import os
    import subprocess as sp
    import sys
    from conftest import ROOT
    source = COMMON + r"""
    int main(int argc, char **argv) {
        int fd = open(argv[1], O_RDWR | O_CREAT, 0600);
        flock(fd, LOCK_EX);
        printf("locked\n");
        fflush(stdout);
        char b;
        read(0, &b, 1);          /* until the test has looked */
        return 0;
    }
    """
    exe = compile_static({"holdlock": source}, tmp_path)["holdlock"]
    target = str(tmp_path / "lockfile")
    seen = []
    for cmd in ([exe, target], [sys.executable, "-m", "osmodel", exe, target]):
        guest = sp.Popen(cmd, cwd=ROOT, stdin=sp.PIPE, stdout=sp.PIPE)
        assert guest.stdout.readline() == b"locked\n"
        fd = os.open(target, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append("free")
        except BlockingIOError:
            seen.append("held")
        os.close(fd)
        guest.communicate(b"x", timeout=60)
    assert seen == ["held", "held"]
