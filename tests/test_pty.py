"""Pseudo-terminals and other host descriptors that make I/O wait: a pty's two sides in two guest processes
(forkpty, Python's pty module, util-linux script), its terminal requests (raw mode, window size, the pty
number and lock, the controlling terminal), and a read of run-elf's own stdin that leaves the other guest
processes running. Natively and under run-elf.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from conftest import compile_static, run_elf, run_native, same_as_native

FORKPTY = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    printf("posix_openpt: %d grantpt %d unlockpt %d\n", master >= 0, grantpt(master), unlockpt(master));
    char *name = ptsname(master);
    printf("ptsname: %d\n", name != 0 && strncmp(name, "/dev/pts/", 9) == 0);
    int slave = open(name, O_RDWR | O_NOCTTY);
    struct winsize ws = {24, 80, 0, 0}, got;
    ioctl(master, TIOCSWINSZ, &ws);
    ioctl(slave, TIOCGWINSZ, &got);
    printf("window: %d x %d\n", got.ws_row, got.ws_col);
    write(slave, "cooked\n", 7);
    char buf[256];
    ssize_t n = read(master, buf, sizeof buf);
    printf("read %zd (a newline becomes CR LF)\n", n);
    struct termios t;
    tcgetattr(slave, &t);
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
    write(slave, "raw\n", 4);
    n = read(master, buf, sizeof buf);
    printf("raw read %zd\n", n);
    int r = ioctl(slave, TIOCSCTTY, 0);
    printf("TIOCSCTTY outside a session leader: %d %s\n", r, strerrorname_np(errno));
    close(slave);
    close(master);

    /* The child's output reaches the parent through the pty; the parent's read waits for the child. */
    int fd;
    pid_t pid = forkpty(&fd, 0, 0, 0);
    if (pid == 0) {
        printf("child: a tty %d, leads its session %d\n", isatty(1), getsid(0) == getpid());
        for (int i = 0; i < 3; i++) {
            usleep(20000);
            printf("line %d\n", i);
        }
        _exit(7);
    }
    size_t total = 0;
    char out[1024];
    for (;;) {
        n = read(fd, out + total, sizeof out - 1 - total);
        if (n <= 0)
            break;
        total += n;
    }
    out[total] = 0;
    printf("parent read until %s:\n%s", n == 0 ? "EOF" : strerrorname_np(errno), out);
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    return 0;
}
"""

PTY_MODULE = r"""
import os, pty, struct, termios, fcntl, tty, sys
m, s = pty.openpty()
print(os.ttyname(s).startswith("/dev/pts/"), os.isatty(m))
os.write(s, b"hi\n"); print(os.read(m, 10))
tty.setraw(s); os.write(s, b"raw\n"); print(os.read(m, 10))
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))
print(struct.unpack("HHHH", fcntl.ioctl(s, termios.TIOCGWINSZ, bytes(8)))[:2])
os.close(s); os.close(m)
pid, fd = pty.fork()
if pid == 0:
    print("child on a tty:", os.isatty(1), os.getsid(0) == os.getpid())
    sys.stdout.flush()
    os._exit(3)
out = b""
while True:
    try:
        chunk = os.read(fd, 100)
    except OSError as e:
        print("end: EIO", e.errno == 5)
        break
    if not chunk:
        break
    out += chunk
print(out, os.waitpid(pid, 0)[1] >> 8)
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("pty")
    built = compile_static({"forkpty": FORKPTY}, out)
    built.update(compile_static({"forkpty-i386": FORKPTY}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["forkpty", "forkpty-i386"])
def test_pty_between_two_guest_processes_matches_native(programs, name):
    same_as_native([programs[name]], timeout=60)


def test_python_pty_module_matches_native():
    python = shutil.which("python3")
    if python is None:
        pytest.skip("python3 is not installed")
    same_as_native([python, "-c", PTY_MODULE], timeout=120)


def test_script_runs_a_command_on_a_pty_as_natively():
    script = shutil.which("script")
    if script is None:
        pytest.skip("util-linux script is not installed")
    same_as_native([script, "-qc", "echo hi; tty >/dev/null && echo on a tty", "/dev/null"], timeout=120)


def test_a_read_of_run_elf_s_stdin_leaves_other_guest_processes_running():
    """bash reads a line that comes 1.5 s late while a background job prints after 0.3 s: the job's line
    comes first, natively and under run-elf (the read used to stop the whole guest)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    argv = [bash, "-c", "(sleep 0.3; echo background) & read x; echo got $x; wait"]

    def late_line(run):
        r, w = os.pipe()

        def feed():
            time.sleep(1.5)
            os.write(w, b"line\n")
            os.close(w)
        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            with os.fdopen(r, "rb") as stdin:
                return run(argv, stdin=stdin, timeout=60)
        finally:
            feeder.join()

    native = late_line(run_native)
    emulated = late_line(run_elf)
    assert native.stdout == b"background\ngot line\n"
    assert (emulated.stdout, emulated.status) == (native.stdout, native.status), emulated.stderr
