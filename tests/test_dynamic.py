"""Dynamically linked host programs (glibc's ld.so, coreutils, dash, tar, CPython) natively and under
run-elf: the same standard output and exit status, and, for the ones that change files, the same
resulting file-system state.

The programs are the host's own Debian binaries; a test is skipped only when its program is not
installed. Everything runs with LC_ALL=C and TZ=UTC on a tree whose timestamps are fixed with
os.utime, so listings are the same from run to run. Directory order is never compared unsorted:
programs whose output follows readdir order are run through `sort` or with --sort=name.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, USING_RUN_ELF, run_elf, run_native, sample_env

MTIME = 1614834367                  # 2021-03-04 05:06:07 UTC: more than six months ago, so ls shows the year
TOUCHED = "2020-01-02 03:04:05"     # what `touch -d` sets in the changing tests
ENV = sample_env(TZ="UTC")


def host(path: str) -> str:
    """A host program's path, or skip the test because it is not installed."""
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed on this host")
    return path


@pytest.fixture(autouse=True)
def fixed_umask():
    """Native runs inherit the test's umask; the guest starts with 022 (as a login shell gives): the same
    value for both, so created files get the same modes."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small directory of files, a subdirectory and a symbolic link, every timestamp fixed."""
    t = tmp_path / "tree"
    t.mkdir()
    (t / "fruits").write_text("pear\napple\nfig\nbanana\ncherry\napple\n")
    (t / "nums").write_text("".join(f"{i}\n" for i in range(1, 3001)))
    (t / "sub").mkdir()
    (t / "sub" / "deep.txt").write_text("deep\n")
    (t / "sub" / "empty").write_bytes(b"")
    (t / "link").symlink_to("fruits")
    for path in [t / "sub" / "deep.txt", t / "sub" / "empty", t / "fruits", t / "nums", t / "sub", t]:
        os.utime(path, ns=(MTIME * 10**9, MTIME * 10**9))
    os.utime(t / "link", ns=(MTIME * 10**9, MTIME * 10**9), follow_symlinks=False)
    return t


def same(argv: list[str], cwd: Path, stdin=None):
    """Run argv natively and under run-elf in cwd; assert equal stdout and status; return the run-elf result."""
    if stdin is not None:
        with open(stdin, "rb") as f:
            native = run_native(argv, env=ENV, cwd=cwd, stdin=f)
        with open(stdin, "rb") as f:
            emulated = run_elf(argv, env=ENV, cwd=cwd, stdin=f)
    else:
        native = run_native(argv, env=ENV, cwd=cwd)
        emulated = run_elf(argv, env=ENV, cwd=cwd)
    assert (emulated.stdout, emulated.status) == (native.stdout, native.status), \
        f"{argv}\nnative stderr: {native.stderr!r}\nrun-elf stderr: {emulated.stderr!r}"
    return emulated


READING = {
    "ls -l": ["/bin/ls", "-l"],
    "ls -la sub": ["/bin/ls", "-la", "sub"],
    "ls -lL": ["/bin/ls", "-lL", "link", "nums"],
    "cat": ["/bin/cat", "fruits", "link", "sub/deep.txt"],
    "sort": ["/usr/bin/sort", "fruits"],
    "sort -rn": ["/usr/bin/sort", "-rn", "nums"],
    "sha256sum": ["/usr/bin/sha256sum", "fruits", "nums", "sub/empty"],
    "md5sum": ["/usr/bin/md5sum", "nums"],
    "wc": ["/usr/bin/wc", "fruits", "nums"],
    "head": ["/usr/bin/head", "-n", "3", "nums"],
    "tail": ["/usr/bin/tail", "-n", "2", "nums"],
    "grep": ["/bin/grep", "-n", "an", "fruits"],
    "sed": ["/bin/sed", "s/a/A/g", "fruits"],
    "awk": ["/usr/bin/awk", "{ s += $1 } END { print s, NR }", "nums"],
    "stat": ["/usr/bin/stat", "-c", "%n %s %a %F %h %Y", "fruits", "sub", "link"],
    "stat -L": ["/usr/bin/stat", "-L", "-c", "%n %s %F", "link"],
    "du": ["/usr/bin/du", "-s", "--apparent-size", "-b", "sub"],
    "missing file": ["/bin/cat", "no-such-file"],
}


@pytest.mark.parametrize("name", list(READING))
def test_reading_programs_match_native(tree, name):
    argv = READING[name]
    host(argv[0])
    result = same(argv, tree)
    if name != "missing file":
        assert result.status == 0 and result.stdout, result
    else:
        assert result.status == 1


def test_cat_from_standard_input(tree):
    result = same([host("/bin/cat")], tree, stdin=tree / "nums")
    assert result.stdout == (tree / "nums").read_bytes()


def test_ls_long_listing_shows_the_fixed_times(tree):
    out = same([host("/bin/ls"), "-l"], tree).stdout.decode()
    assert "lrwxrwxrwx" in out and "link -> fruits" in out
    assert out.count("Mar  4  2021") == 4, out


def test_dash_pipeline(tree):
    dash = host("/bin/dash")
    result = same([dash, "-c", "ls | sort -r | head -n 3; echo status $?"], tree)
    assert result.stdout == b"sub\nnums\nlink\nstatus 0\n"
    result = same([dash, "-c", "find . -name '*.txt' | sort"], tree)
    assert result.stdout == b"./sub/deep.txt\n"


def test_dash_pipeline_after_a_three_stage_pipeline(tree):
    # A regression test: the first run without Unicorn's instruction count after one with it used to
    # leave state that made the next fork's stop fail (see Cpu._drop_count_hook).
    dash = host("/bin/dash")
    result = same([dash, "-c", "ls | sort -r | head -n 3; find . -name '*.txt' | sort"], tree)
    assert result.stdout == b"sub\nnums\nlink\n./sub/deep.txt\n"


def test_dash_exit_status_and_redirection(tree):
    dash = host("/bin/dash")
    result = same([dash, "-c", "grep -q kiwi fruits; echo $?; sort < fruits | uniq -c | sort -rn | head -n 1; exit 7"],
                  tree)
    assert result.status == 7
    assert result.stdout.split(b"\n")[:2] == [b"1", b"      2 apple"]


def test_python_computes(tree):
    python = host("/usr/bin/python3")
    result = same([python, "-S", "-c", "import sys; print(sum(range(10**5))); sys.exit(3)"], tree)
    assert (result.stdout, result.status) == (b"4999950000\n", 3)


def snapshot(top: Path, with_times: set[str] = frozenset()) -> dict[str, tuple]:
    """What a tree holds: per path its type, permission bits, size, link count, link target or contents
    (and modification time for the paths named in with_times)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                what = ("file", Path(path).read_bytes(), st.st_nlink)
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir",)
            else:
                what = (stat.S_IFMT(st.st_mode),)
            entry = what + (stat.S_IMODE(st.st_mode),)
            if rel in with_times:
                entry += (st.st_mtime_ns,)
            out[rel] = entry
    return out


CHANGES = """
set -e
mkdir -p a/b/c
touch a/f
echo hello > a/g
ln -s g a/l
ln a/g a/hard
mv a/f a/moved
cp a/g a/copy
cp -p fruits a/fruits.p
chmod 640 a/copy
touch -d '{touched}' a/moved
mkdir gone && rmdir gone
rm a/l
ln -s ../fruits a/up
mv -T a/b/c a/b/d
rm -r a/b/d
echo one > x && echo two > y && mv -f y x
ls -l a
cat a/up x
"""


def test_file_changing_programs_leave_the_same_tree(tree, tmp_path):
    dash = host("/bin/dash")
    for prog in ("/bin/mkdir", "/usr/bin/touch", "/bin/ln", "/bin/mv", "/bin/cp", "/bin/chmod", "/bin/rm",
                 "/bin/rmdir", "/bin/ls", "/bin/cat"):
        host(prog)
    script = CHANGES.format(touched=TOUCHED)
    results, states = [], []
    for runner, name in ((run_native, "native"), (run_elf, "emulated")):
        work = tmp_path / name
        work.mkdir()
        (work / "fruits").write_bytes((tree / "fruits").read_bytes())
        os.utime(work / "fruits", ns=(MTIME * 10**9, MTIME * 10**9))
        results.append(runner([dash, "-c", script], env=ENV, cwd=work))
        states.append(snapshot(work, with_times={"a/moved", "a/fruits.p"}))
    native, emulated = results
    assert (emulated.stdout, emulated.status) == (native.stdout, native.status), emulated.stderr
    assert emulated.status == 0, emulated.stderr
    assert states[1] == states[0]
    state = states[1]
    assert state["a/b"] == ("dir", 0o755)
    assert "a/b/c" not in state and "a/b/d" not in state and "gone" not in state and "a/l" not in state
    assert state["a/up"] == ("link", "../fruits", 0o777)
    assert state["a/g"] == ("file", b"hello\n", 2, 0o644) and state["a/hard"] == state["a/g"]
    assert state["a/copy"] == ("file", b"hello\n", 1, 0o640)
    assert state["a/moved"][-1] == int(subprocess.run(
        ["date", "-u", "-d", TOUCHED, "+%s"], capture_output=True, text=True).stdout) * 10**9
    assert state["a/fruits.p"][-1] == MTIME * 10**9
    assert state["x"] == ("file", b"two\n", 1, 0o644) and "y" not in state


def test_tar_creates_the_same_archive(tree, tmp_path):
    tar = host("/bin/tar")
    native = run_native([tar, "--sort=name", "-cf", str(tmp_path / "native.tar"), "."], env=ENV, cwd=tree)
    emulated = run_elf([tar, "--sort=name", "-cf", str(tmp_path / "emulated.tar"), "."], env=ENV, cwd=tree)
    assert (emulated.status, emulated.stderr) == (native.status, b"") == (0, b"")
    assert (tmp_path / "emulated.tar").read_bytes() == (tmp_path / "native.tar").read_bytes()
    with tarfile.open(tmp_path / "emulated.tar") as archive:
        names = archive.getnames()
        assert archive.extractfile("./sub/deep.txt").read() == b"deep\n"
        assert archive.getmember("./link").linkname == "fruits"
    assert names == [".", "./fruits", "./link", "./nums", "./sub", "./sub/deep.txt", "./sub/empty"]
    listing = same([tar, "-tvf", str(tmp_path / "emulated.tar")], tree)
    assert b"2021-03-04 05:06 ./sub/deep.txt" in listing.stdout


def test_tar_extracts_the_same_tree(tree, tmp_path):
    tar = host("/bin/tar")
    archive = tmp_path / "tree.tar"
    subprocess.run([tar, "--sort=name", "-cf", str(archive), "."], cwd=tree, check=True)
    states = []
    for runner, name in ((run_native, "native"), (run_elf, "emulated")):
        out = tmp_path / name
        out.mkdir()
        result = runner([tar, "-xf", str(archive)], env=ENV, cwd=out)
        assert (result.status, result.stderr) == (0, b""), name
        states.append(snapshot(out, with_times={"fruits", "sub", "link", "sub/deep.txt"}))
    assert states[1] == states[0]
    assert states[1]["sub"] == ("dir", 0o755, MTIME * 10**9)


READ_ONLY_DRIVER = """
import sys
from osmodel.kernel import Config, Kernel
kernel = Kernel(Config(read_only=True))
kernel.spawn(sys.argv[1], [a.encode() for a in sys.argv[1:]], [b"LC_ALL=C", b"PATH=/usr/bin:/bin"])
sys.exit(kernel.run())
"""


@pytest.mark.skipif(not USING_RUN_ELF, reason="a run-elf option")
@pytest.mark.parametrize("argv", [["/usr/bin/touch", "newfile"], ["/bin/mkdir", "newdir"],
                                  ["/bin/rm", "-f", "fruits"], ["/bin/mv", "fruits", "moved"],
                                  ["/bin/ln", "-s", "fruits", "newlink"], ["/bin/chmod", "600", "fruits"]],
                         ids=lambda argv: os.path.basename(argv[0]))
def test_read_only_refuses_changes(tree, argv):
    """With the guest's file system read-only (Config.read_only, --read-only) each change fails with
    EROFS, which the program reports, and the tree is left as it was."""
    host(argv[0])
    before = snapshot(tree, with_times=set(os.listdir(tree)))
    proc = subprocess.run([sys.executable, "-c", READ_ONLY_DRIVER, *argv], cwd=tree, capture_output=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0, proc
    assert b"Read-only file system" in proc.stderr, proc.stderr
    assert snapshot(tree, with_times=set(os.listdir(tree))) == before


@pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's --strace")
def test_strace_shows_the_new_calls(tree):
    result = run_elf([host("/bin/ls"), "-l", "fruits"], "--strace", env=ENV, cwd=tree)
    assert result.status == 0
    trace = result.stderr.decode()
    assert re.search(r'^statx\(AT_FDCWD, "fruits", 0x[0-9a-f]+, 0x[0-9a-f]+, 0x[0-9a-f]+\) = 0$', trace, re.M), trace
    assert "ENOSYS" not in trace, trace
    # glibc asks nscd over an AF_UNIX socket (when configured to): no guest process serves it, so the
    # connection fails, and it falls back to /etc/passwd.
    for line in re.findall(r"^connect\(.*$", trace, re.M):
        assert re.search(r"= -1 (ENOENT|ECONNREFUSED) ", line), line
