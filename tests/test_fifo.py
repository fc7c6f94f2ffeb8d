"""Named pipes between guest processes, pipes reopened through /proc/self/fd/N, and /dev/fd, /dev/stdin,
/dev/stdout as the guest's own descriptors (bash's process substitution needs them); run natively and
under run-elf, x86-64 and i386, plus a bash script using them the way scripts do.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import compile_static, same_as_native

FIFO = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char path[4096];

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, 0);
}

static void show_read(const char *who, int fd) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        printf("%s: read %s\n", who, strerrorname_np(errno));
        return;
    }
    buf[n] = 0;
    printf("%s: read %zd \"%s\"\n", who, n, buf);
}

static void reap(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
}

/* One side opens first and waits in open() until the other side opens. */
static void rendezvous(int reader_first) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, reader_first ? O_RDONLY : O_WRONLY);
        if (reader_first) {
            show_read("child reader", fd);
            show_read("child reader at end", fd);
        } else {
            write(fd, "from the child", 14);
        }
        _exit(fd >= 0 ? 3 : 4);
    }
    nap(50);
    int fd = open(path, reader_first ? O_WRONLY : O_RDONLY);
    if (reader_first)
        write(fd, "from the parent", 15);
    else
        show_read("parent reader", fd);
    close(fd);
    reap(pid);
}

/* A writer that opens, writes and closes while the reader still waits in open: the reader gets the data. */
static void writer_gone_before_reader_runs(void) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDONLY);
        nap(30);
        show_read("late reader", fd);
        show_read("late reader at end", fd);
        _exit(5);
    }
    nap(50);
    int fd = open(path, O_WRONLY);
    write(fd, "left early", 10);
    close(fd);
    reap(pid);
}

static void nonblocking(void) {
    int w = open(path, O_WRONLY | O_NONBLOCK);
    printf("non-blocking writer, no reader: %d %s\n", w, strerrorname_np(errno));
    int r = open(path, O_RDONLY | O_NONBLOCK);
    printf("non-blocking reader: %d\n", r >= 0);
    struct pollfd pfd = {r, POLLIN, 0};
    int ready = poll(&pfd, 1, 0);
    printf("poll before any writer: %d revents %#x\n", ready, pfd.revents);
    show_read("no writer yet", r);
    w = open(path, O_WRONLY | O_NONBLOCK);
    printf("non-blocking writer, a reader: %d\n", w >= 0);
    write(w, "xyz", 3);
    ready = poll(&pfd, 1, 0);
    printf("poll with data: %d revents %#x\n", ready, pfd.revents);
    show_read("data", r);
    show_read("empty, writer open", r);
    close(w);
    ready = poll(&pfd, 1, 0);
    printf("poll after the writer left: %d revents %#x\n", ready, pfd.revents);
    show_read("writer gone", r);
    close(r);
}

static void read_write(void) {
    int fd = open(path, O_RDWR);
    write(fd, "both ways", 9);
    show_read("O_RDWR", fd);
    write(fd, "stale", 5);
    close(fd);
    fd = open(path, O_RDWR | O_NONBLOCK);
    show_read("reopened after the last close", fd);
    struct stat a, b;
    fstat(fd, &a);
    stat(path, &b);
    printf("fstat: fifo %d same inode %d mode %o\n", S_ISFIFO(a.st_mode), a.st_ino == b.st_ino, a.st_mode & 0777);
    close(fd);
}

static void proc_fd(void) {
    int p[2];
    char name[64], link[64];
    pipe(p);
    snprintf(name, sizeof name, "/proc/self/fd/%d", p[1]);
    int r = open(name, O_RDONLY);
    write(p[1], "through /proc", 13);
    show_read("pipe reopened for reading", r);
    snprintf(name, sizeof name, "/dev/fd/%d", p[0]);
    int w = open(name, O_WRONLY);
    write(w, "through /dev/fd", 15);
    show_read("pipe reopened for writing", p[0]);

    struct stat st, lst, pst;
    fstat(p[0], &pst);
    int found = stat(name, &st) == 0;
    printf("stat: fifo %d same inode %d\n", found && S_ISFIFO(st.st_mode), st.st_ino == pst.st_ino);
    lstat(name, &lst);
    printf("lstat read end: link %d mode %o\n", S_ISLNK(lst.st_mode), lst.st_mode & 0777);
    snprintf(name, sizeof name, "/dev/fd/%d", p[1]);
    lstat(name, &lst);
    printf("lstat write end: link %d mode %o\n", S_ISLNK(lst.st_mode), lst.st_mode & 0777);
    ssize_t n = readlink(name, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    char want[64];
    snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)pst.st_ino);
    printf("readlink is pipe:[inode] %d\n", strcmp(link, want) == 0);
    printf("access W_OK: %d\n", access(name, W_OK));

    int dup = fcntl(p[0], F_DUPFD, 40);
    DIR *d = opendir("/dev/fd");
    struct dirent *e;
    int seen[64] = {0}, dots = 0;
    while ((e = readdir(d)) != 0) {
        if (e->d_name[0] == '.')
            dots++;
        else if (atoi(e->d_name) < 64)
            seen[atoi(e->d_name)] = e->d_type == DT_LNK ? 1 : 2;
    }
    printf("/dev/fd lists: dots %d", dots);
    for (int i = 0; i < 64; i++)
        if (seen[i])
            printf(" %d%s", i, seen[i] == 2 ? "?" : "");
    printf("\n");
    closedir(d);
    int missing = open("/dev/fd/50", O_RDONLY);
    printf("/dev/fd/50 not open: %d %s\n", missing, strerrorname_np(errno));
    close(dup);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    snprintf(path, sizeof path, "%s/named-pipe", argv[1]);
    unlink(path);
    if (mkfifo(path, 0640) != 0) {
        perror("mkfifo");
        return 1;
    }
    rendezvous(1);
    rendezvous(0);
    writer_gone_before_reader_runs();
    nonblocking();
    read_write();
    proc_fd();
    unlink(path);
    return 0;
}
"""

SCRIPT = r"""
cd "$1"
rm -f f1 f2
mkfifo f1 f2
( echo to-f1 > f1 ) &
cat f1
cat f2 & sleep 0.1; echo late-writer > f2; wait
exec 3<>f1; echo rdwr >&3; read l <&3; echo "$l"; exec 3>&-
echo hi | tee >(tr a-z A-Z) > /dev/null; wait
diff <(printf 'a\nb\n') <(printf 'a\nc\n'); echo diff=$?
paste <(seq 3) <(seq 4 6)
while read x; do echo "line $x"; done < <(printf '1\n2\n')
echo via-stdout > /dev/stdout
x=$(cat /dev/stdin <<< here-string); echo "$x"
echo piped | cat /dev/fd/0
ls /dev/fd/ | sort -n | tr '\n' ' '; echo
rm f1 f2
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fifo")
    built = compile_static({"fifo": FIFO}, out)
    built.update(compile_static({"fifo-i386": FIFO}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["fifo", "fifo-i386"])
def test_named_pipes_and_proc_fd_match_native(programs, name, tmp_path):
    same_as_native([programs[name], str(tmp_path)], timeout=60)


def test_bash_fifos_and_process_substitution_match_native(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    same_as_native([bash, "-c", SCRIPT, "script", str(tmp_path)], timeout=120)


def test_proc_self_exe_is_the_file_not_the_link_that_named_it(tmp_path):
    """ld.so finds $ORIGIN libraries (java's libjli.so) through /proc/self/exe: it must be the resolved file."""
    target = shutil.which("readlink")
    if target is None:
        pytest.skip("readlink is not installed")
    link = tmp_path / "named-by-a-link"
    link.symlink_to(target)
    native, emulated = same_as_native([str(link), "/proc/self/exe"])
    assert native.stdout.strip() != str(link)
