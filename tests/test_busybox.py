"""busybox sh one-liners, natively and under run-elf: stdout and exit status must be equal.

/bin/busybox is Debian's busybox-static (CI installs it; the tests skip only when it is
missing).  It is a "standalone" shell: an applet named as a command (`tr`, or `busybox tr`)
is not looked up in PATH but run by forking and exec'ing /proc/self/exe with argv[0] set to
the applet's name.  A script therefore exercises fork, execve of /proc/self/exe, pipe2,
dup2, fcntl(F_DUPFD_CLOEXEC), wait4 (blocking, and WNOHANG until ECHILD), a SIGCHLD handler
that is entered and left with rt_sigreturn, and -- for `kill` -- death by a signal.

Every script uses only busybox applets (a bare `tr` would otherwise be /usr/bin/tr, a
dynamic binary), no background jobs and no files outside the repository.
"""

from __future__ import annotations

import os

import pytest

from conftest import run_native, same_as_native, sample_env

BUSYBOX = "/bin/busybox"

pytestmark = pytest.mark.skipif(not os.path.exists(BUSYBOX),
                                reason=f"{BUSYBOX} is missing (apt-get install busybox-static)")

# id -> (script, expected stdout, expected exit status).  The expectations are what
# busybox 1.35 prints natively; test_native checks them, so a different busybox that
# disagrees shows up there and not as a run-elf failure.
SCRIPTS = {
    "echo": ("echo hello world", b"hello world\n", 0),
    "pipe-busybox-applet": ("echo hello | busybox tr a-z A-Z", b"HELLO\n", 0),
    "pipe-standalone-applet": ("echo hello | tr a-z A-Z", b"HELLO\n", 0),
    "command-substitution": ('x=$(echo hi); echo "$x$x"', b"hihi\n", 0),
    "subshell-status": ("(exit 3); echo $?", b"3\n", 0),
    "or-list": ("false || echo no", b"no\n", 0),
    "loop-into-pipe": ("for i in 1 2 3; do echo $i; done | busybox wc -l", b"3\n", 0),
    "exit-status": ("exit 7", b"", 7),
    "nested-substitution": ('echo "$( (echo a; echo b) | busybox sort -r)"', b"b\na\n", 0),
    "heredoc": ("busybox cat <<EOF\nline one\nline $((6*7))\nEOF", b"line one\nline 42\n", 0),
    "seq-tail": ("busybox seq 1 1000 | busybox tail -1", b"1000\n", 0),
    "three-stage-pipeline": ("busybox seq 1 100 | busybox grep 7 | busybox wc -l", b"19\n", 0),
    # 168894 bytes through one pipe: more than its 64 KiB, so the writer blocks.
    "big-pipe": ("busybox seq 1 30000 | busybox md5sum",
                 b"0a61f0919f546ce04fc119b028b88a2e  -\n", 0),
    "read-builtin-from-pipe": ("echo a b c | { read x y z; echo $z$y$x; }", b"cba\n", 0),
    "function-return": ("f() { return 5; }; f; echo $?", b"5\n", 0),
    "and-list-status": ("busybox true && busybox false; echo $?", b"1\n", 0),
    "while-arithmetic": ("i=0; while [ $i -lt 5 ]; do i=$((i+1)); done; echo $i", b"5\n", 0),
    "exec-replaces-shell": ("exec busybox echo replaced; echo never", b"replaced\n", 0),
    "nested-shell": ('busybox sh -c "exit 4"; echo inner $?', b"inner 4\n", 0),
    "child-killed-by-signal": ('busybox sh -c "busybox kill -TERM \\$\\$"; echo $?', b"143\n", 0),
}

CASES = [pytest.param(script, out, status, id=name) for name, (script, out, status) in SCRIPTS.items()]


def argv(script: str) -> list[str]:
    return [BUSYBOX, "sh", "-c", script]


@pytest.mark.parametrize("script,expected_out,expected_status", CASES)
def test_native(script, expected_out, expected_status):
    """The script does what the table says on this host's busybox (independent of run-elf)."""
    out, status = run_native(argv(script), env=sample_env())
    assert (out, status) == (expected_out, expected_status)


@pytest.mark.parametrize("script,expected_out,expected_status", CASES)
def test_busybox_matches_native(script, expected_out, expected_status):
    same_as_native(argv(script), env=sample_env())
