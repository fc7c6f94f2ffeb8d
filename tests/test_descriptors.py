"""The descriptor table and what /proc says of it: RLIMIT_NOFILE bounds descriptors as on Linux (open, dup2,
F_DUPFD, poll), the paths of open directories and files are the kernel's canonical names (fchdir, getcwd,
/proc/self/fd links), /proc lists only the guest's processes, and /proc/self/limits and environ are the
process's own. Natively and under run-elf, x86-64 and i386.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import compile_static, run_elf, run_native, same_as_native, sample_env

DESCRIPTORS = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_until_full(void) {
    int count = 0;
    while (open("/dev/null", O_RDONLY) >= 0)
        count++;
    printf("  stopped by %s\n", strerrorname_np(errno));
    return count;
}

static void show_link(const char *what, int fd) {
    char name[64], target[4096];
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(name, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    printf("%s: %s\n", what, target);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct rlimit lim = {4096, 4096};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        printf("cannot set a limit of 4096\n");
        return 1;
    }
    printf("F_DUPFD 1500: %d\n", fcntl(0, F_DUPFD, 1500));
    printf("dup2 to 4095: %d\n", dup2(0, 4095));
    int r = dup2(0, 4096);
    printf("dup2 to 4096: %d %s\n", r, strerrorname_np(errno));
    r = fcntl(0, F_DUPFD, 4096);
    printf("F_DUPFD 4096: %d %s\n", r, strerrorname_np(errno));
    struct pollfd pfd[1] = {{0, POLLIN, 0}};
    r = poll(pfd, 4097, 0);
    printf("poll with nfds past the limit: %d %s\n", r, strerrorname_np(errno));
    close(1500);
    close(4095);
    printf("open until full: %d\n", open_until_full() + 3);
    for (int fd = 3; fd < 4096; fd++)
        close(fd);
    lim.rlim_cur = 50;
    setrlimit(RLIMIT_NOFILE, &lim);
    printf("with a limit of 50: %d\n", open_until_full() + 3);
    for (int fd = 3; fd < 50; fd++)
        close(fd);
    lim.rlim_cur = lim.rlim_max = 1 << 21;
    r = setrlimit(RLIMIT_NOFILE, &lim);
    printf("a limit past nr_open: %d %s\n", r, strerrorname_np(errno));

    /* Names: as the kernel has them, whatever path opened the file. */
    chdir(argv[1]);
    mkdir("sub", 0755);
    mkdir("sub/deep", 0755);
    symlink("sub/deep", "link");
    int dot = open("./.", O_RDONLY);
    show_link("./.", dot);
    int up = open("sub/deep/../.", O_RDONLY);
    show_link("sub/deep/../.", up);
    fchdir(up);
    char cwd[4096];
    printf("getcwd after fchdir: %s\n", getcwd(cwd, sizeof cwd));
    chdir("../link");
    printf("getcwd after chdir through a link: %s\n", getcwd(cwd, sizeof cwd));
    int rel = openat(dot, "link/..", O_RDONLY);
    show_link("link/.. from a directory descriptor", rel);
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("descriptors")
    built = compile_static({"descriptors": DESCRIPTORS}, out)
    built.update(compile_static({"descriptors-i386": DESCRIPTORS}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["descriptors", "descriptors-i386"])
def test_descriptor_limits_and_names_match_native(programs, name, tmp_path):
    native_dir, emulated_dir = tmp_path / "native", tmp_path / "run-elf"
    native_dir.mkdir()
    emulated_dir.mkdir()
    # The same program in two directories: the names differ only there.
    native = run_native([programs[name], str(native_dir)], timeout=60)
    emulated = run_elf([programs[name], str(emulated_dir)], timeout=60)
    assert b"Traceback" not in emulated.stderr
    assert native.stdout.replace(str(native_dir).encode(), b"DIR") == \
        emulated.stdout.replace(str(emulated_dir).encode(), b"DIR"), emulated.stderr
    assert emulated.status == native.status
    assert b"DIR/sub" in native.stdout.replace(str(native_dir).encode(), b"DIR")


def test_proc_self_limits_matches_native():
    """Both with the limits pytest runs under (the harness's usual stack limit would change only the native
    hard limit)."""
    native = run_native(["/bin/cat", "/proc/self/limits"], stack_limit=None)
    emulated = run_elf(["/bin/cat", "/proc/self/limits"])
    assert (emulated.stdout, emulated.status) == (native.stdout, native.status), emulated.stderr
    assert b"Max open files" in native.stdout


def test_proc_self_environ_is_the_program_s_environment():
    env = sample_env(GREETING="hello world")
    same_as_native(["/bin/cat", "/proc/self/environ"], env=env)


def test_proc_lists_only_the_guest_s_processes():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    r = run_elf([bash, "-c", "ls -d /proc/[0-9]* /proc/[0-9]*/fd | sort -V"])
    assert (r.status, r.stderr) == (0, b""), r
    assert r.stdout == b"/proc/1\n/proc/2\n/proc/1/fd\n/proc/2/fd\n" or \
        r.stdout == b"/proc/1\n/proc/1/fd\n/proc/2\n/proc/2/fd\n", r.stdout
