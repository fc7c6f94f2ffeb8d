"""The scheduler: round robin with an instruction-counted quantum, deterministic, and sleepers do not spin."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest

from conftest import same_as_native
from osmodel.kernel import Config, Kernel

SPIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static unsigned long spin(unsigned long n, unsigned long x) {
    while (n--) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
    return x;
}
int main(int argc, char **argv) {
    unsigned long n = strtoul(argv[1], 0, 0);
    fflush(stdout);
    pid_t child = fork();
    unsigned long r = spin(n, child ? 1 : 2);
    if (child == 0) _exit(r & 1);
    int st; waitpid(child, &st, 0);
    printf("parent %lx child status %d\n", r, WEXITSTATUS(st));
    return 0;
}
"""

SLEEPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    unsigned long n = strtoul(argv[1], 0, 0), x = 1;
    int fds[2]; pipe(fds);
    pid_t child = fork();
    if (child == 0) {                       /* computes, then writes one byte */
        while (n--) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
        write(fds[1], &x, 1);
        _exit(0);
    }
    char c; read(fds[0], &c, 1);            /* the parent sleeps in read, then in wait4 */
    int st; waitpid(child, &st, 0);
    printf("done %d\n", WEXITSTATUS(st));
    return 0;
}
"""

# The parent sleeps 0.1 s while its child spins without a system call; it must wake on time and kill it.
WAKES_BESIDE_A_SPINNER = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t child = fork();
    if (child == 0)
        for (;;)
            ;
    usleep(100000);
    kill(child, SIGKILL);
    int st;
    waitpid(child, &st, 0);
    printf("child killed by signal %d\n", WTERMSIG(st));
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the scheduling programs")
    d = tmp_path_factory.mktemp("sched")
    out = {}
    for name, src in (("spin", SPIN), ("sleeper", SLEEPER), ("beside-spinner", WAKES_BESIDE_A_SPINNER)):
        (d / f"{name}.c").write_text(src)
        subprocess.run(["gcc", "-static", "-O1", "-o", str(d / name), str(d / f"{name}.c")], check=True)
        out[name] = str(d / name)
    return out


def run(path: str, args: list[str], quantum: int) -> tuple[Kernel, int, bytes]:
    """Run a program in-process with the given quantum; (kernel, status, stdout)."""
    r, w = os.pipe()
    kernel = Kernel(Config(quantum=quantum, stderr=io.StringIO()))
    kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [], stdio=(0, w, 2))
    status = kernel.run()
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    return kernel, status, out


def test_runnable_processes_are_preempted_by_instruction_count(programs):
    native = subprocess.run([programs["spin"], "300000"], capture_output=True).stdout
    kernel, status, out = run(programs["spin"], ["300000"], quantum=200_000)
    assert (status, out) == (0, native)
    # Both processes run ~1.5M instructions each while the other is runnable, so the 200k quantum
    # must have switched between them several times (not just at fork, wait and exit).
    assert kernel.context_switches >= 10


def test_schedule_is_deterministic_and_follows_the_quantum(programs):
    k1, _, out1 = run(programs["spin"], ["200000"], quantum=100_000)
    k2, _, out2 = run(programs["spin"], ["200000"], quantum=100_000)
    k3, _, out3 = run(programs["spin"], ["200000"], quantum=400_000)
    assert out1 == out2 == out3
    assert k1.context_switches == k2.context_switches
    assert k3.context_switches < k1.context_switches


def test_a_sleeping_process_does_not_spin(programs):
    # The parent sleeps in read() while the child computes: with a tiny quantum a spinning parent
    # would be switched to thousands of times; a sleeping one is not runnable at all.
    kernel, status, out = run(programs["sleeper"], ["2000000"], quantum=10_000)
    assert (status, out) == (0, b"done 0\n")
    assert kernel.context_switches < 10


def test_a_sleeper_wakes_on_time_beside_a_process_that_never_yields(programs):
    """A run with nobody else runnable is bounded by the earliest sleeper's wake-up too, not only by timers:
    otherwise the spinning child keeps the CPU for ever."""
    same_as_native([programs["beside-spinner"]], timeout=60)
