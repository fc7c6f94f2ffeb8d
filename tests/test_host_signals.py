"""Signals sent to run-elf reach the guest as they would reach the program natively: kill -INT/-TERM to pid 1
(its trap, KeyboardInterrupt, death by the signal as 128+N), even in a loop without system calls; and
Ctrl-C on a terminal to the guest's foreground process group, with an interactive bash's job control.
Each run waits for the program to say it is ready before signalling it.
"""
from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, USING_RUN_ELF, compile_static, normalise_status, sample_env

LOOP = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile unsigned long spins;

static void on_signal(int sig) {
    printf("caught %d after spinning\n", sig);
    fflush(stdout);
    _exit(9);
}

int main(void) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("ready\n");
    fflush(stdout);
    for (;;)           /* no system call, no page fault: only a stopped CPU lets the signal in */
        spins++;
}
"""


def emulated(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "osmodel", *argv] if USING_RUN_ELF else argv


def signalled(argv: list[str], sig: int) -> tuple[bytes, int]:
    """Run argv, send it sig once it has printed its first line ("ready"); (all stdout, exit status)."""
    p = subprocess.Popen(argv, cwd=ROOT, env=sample_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        time.sleep(0.2)                       # from "ready" to the wait or sleep that follows it
        p.send_signal(sig)
        rest, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert b"Traceback" not in err, err
    return first + rest, normalise_status(p.returncode)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    return compile_static({"loop": LOOP}, tmp_path_factory.mktemp("host-signals"))["loop"]


CASES = {
    "bash trap INT": (signal.SIGINT, ["bash", "-c", "sleep 20 & trap 'echo caught INT; kill $!; exit 5' INT; "
                                                    "echo ready; wait"]),
    "bash trap TERM": (signal.SIGTERM, ["bash", "-c", "sleep 20 & trap 'echo caught TERM; kill $!; exit 6' TERM; "
                                                      "echo ready; wait"]),
    "INT to pid 1 only": (signal.SIGINT, ["bash", "-c", "echo ready; sleep 1 | cat; echo after $?"]),
    "sleep dies of TERM": (signal.SIGTERM, ["bash", "-c", "echo ready; exec sleep 20"]),
    "KeyboardInterrupt": (signal.SIGINT, ["python3", "-c", "import time\nprint('ready', flush=True)\ntry:\n"
                                                           "    time.sleep(20)\nexcept KeyboardInterrupt:\n"
                                                           "    print('KeyboardInterrupt')"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kill_of_run_elf_reaches_pid_1_as_natively(name):
    sig, argv = CASES[name]
    found = shutil.which(argv[0])
    if found is None:
        pytest.skip(f"{argv[0]} is not installed")
    argv = [found, *argv[1:]]
    native = signalled(argv, sig)
    assert native[0].startswith(b"ready\n")
    assert signalled(emulated(argv), sig) == native


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_stops_a_guest_that_makes_no_system_call(loop, sig):
    native = signalled([loop], sig)
    assert native == (f"ready\ncaught {sig} after spinning\n".encode(), 9)
    assert signalled(emulated([loop]), sig) == native


def on_terminal(argv: list[str]) -> bytes:
    """An interactive shell on a pty: run a foreground job, Ctrl-C it, then ask the status; all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(argv[0], argv, {**sample_env(), "PS1": "$ ", "TERM": "dumb"})
    out = b""

    def until(marker: bytes, seconds: float = 60) -> None:
        """Read what the shell writes until it writes marker (from now on)."""
        nonlocal out
        start = len(out)
        end = time.monotonic() + seconds
        while marker not in out[start:] and time.monotonic() < end:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return
    try:
        until(b"$ ")
        os.write(fd, b"echo job; sleep 20; echo reached-$((6 * 7))\n")
        until(b"job\r\n")
        time.sleep(1.0)                           # the job's sleep has started
        os.write(fd, b"\x03")
        until(b"$ ", 30)
        os.write(fd, b"echo status $?; exit 4\n")
        until(b"exit\r\n", 30)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out + f"[exit {os.waitstatus_to_exitcode(status)}]".encode()


def test_ctrl_c_reaches_the_foreground_job_of_an_interactive_bash():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    argv = [bash, "--norc", "--noprofile", "-i"]
    native = on_terminal(argv)
    assert b"status 130" in native and b"reached-42" not in native, native
    assert on_terminal(emulated(argv)) == native
