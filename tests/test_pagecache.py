"""The page cache: one frame per (file, page) shared by every mapping, fault-around, write-back, and shared
anonymous memory, which lives in it as Linux's lives in shmem."""

from __future__ import annotations

import io
import os
import shutil

import pytest

from conftest import ROOT, compile_static, same_as_native
from osmodel.kernel import Config, Kernel

SELF_EXEC = r"""
    #include <stdio.h>
    #include <sys/wait.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        if (argc > 1) { printf("child\n"); return 0; }
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) { execl("/proc/self/exe", "again", "x", (char *)0); _exit(99); }
        int st; waitpid(c, &st, 0);
        printf("parent %d\n", WEXITSTATUS(st));
        return 0;
    }
"""

SHARED_WRITE = r"""
    #include <fcntl.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/mman.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        int fd = open(argv[1], O_RDWR);
        char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        memcpy(p + 4096 + 10, "written through the mapping", 27);
        munmap(p, 8192);
        printf("done\n");
        return 0;
    }
"""

# MAP_SHARED|MAP_ANONYMOUS memory is one object for the creator and its children, whichever touched a
# page first (Linux backs it with shmem; /proc/PID/maps names it /dev/zero (deleted)).
SHARED_ANON = r"""
    #include <stdio.h>
    #include <string.h>
    #include <sys/mman.h>
    #include <sys/wait.h>
    #include <unistd.h>
    int main(void) {
        int *q = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        q[0] = 42;                                    /* touched before the fork */
        if (fork() == 0) {
            q[1024] = 43;                             /* pages nobody touched yet */
            q[0] = 44;
            q[2048 + 5] = 45;
            _exit(0);
        }
        wait(0);
        printf("parent sees %d %d %d\n", q[0], q[1024], q[2048 + 5]);
        int *fresh = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (fork() == 0) {
            fresh[3] = 7;
            _exit(0);
        }
        wait(0);
        printf("untouched before the fork: %d\n", fresh[3]);
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[256];
        int named = 0;
        while (fgets(line, sizeof line, maps))
            named += strstr(line, " /dev/zero (deleted)") != 0;
        printf("named /dev/zero (deleted): %d\n", named);
        return 0;
    }
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("cache")
    return compile_static({"selfexec": SELF_EXEC, "sharedwrite": SHARED_WRITE, "sharedanon": SHARED_ANON}, out)


@pytest.fixture(scope="module")
def programs32(tmp_path_factory) -> dict[str, str]:
    return compile_static({"sharedanon": SHARED_ANON}, tmp_path_factory.mktemp("cache32"), flags=("-m32",))


def test_shared_anonymous_memory_is_shared_with_children_as_natively(programs):
    same_as_native([programs["sharedanon"]])


def test_shared_anonymous_memory_i386(programs32):
    same_as_native([programs32["sharedanon"]])


def test_python_multiprocessing_shared_values_as_natively():
    python = shutil.which("python3")
    if python is None:
        pytest.skip("python3 is not installed")
    code = ("import multiprocessing as mp, mmap, os\n"
            "def work(v, a):\n    v.value += 5\n    a[2] = 9\n"
            "ctx = mp.get_context('fork'); v = ctx.Value('i', 1); a = ctx.Array('i', 4)\n"
            "p = ctx.Process(target=work, args=(v, a)); p.start(); p.join()\n"
            "m = mmap.mmap(-1, 8192)\n"
            "if os.fork() == 0:\n    m[4096:4101] = b'hello'\n    os._exit(0)\n"
            "os.wait(); print(v.value, list(a), m[4096:4101])\n")
    same_as_native([python, "-c", code], timeout=120)


def run(path: str, argv: list[str], **config) -> tuple[Kernel, int, list]:
    """Run in-process, recording (pid, fault, resolution) of every resolved fault."""
    kernel = Kernel(Config(stderr=io.StringIO(), **config))
    seen = []
    kernel.fault_observers.append(lambda proc, fault, res, err: seen.append((proc.pid, fault, res)) if res else None)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        kernel.spawn(path, [a.encode() for a in argv], [], stdio=(0, null, 2))
        status = kernel.run()
    finally:
        os.close(null)
    return kernel, status, seen


def text_frames(seen, pid: int) -> dict[int, tuple[int, bool]]:
    """page -> (frame, major) of pid's file-load faults in its text."""
    return {f.vaddr & ~0xFFF: (r.pfn, r.major) for p, f, r in seen
            if p == pid and r.outcome == "file-load" and r.region.kind == "text"}


def test_processes_running_the_same_file_share_its_text_frames(programs):
    kernel, status, seen = run(programs["selfexec"], ["selfexec"])
    assert status == 0
    parent, child = text_frames(seen, 1), text_frames(seen, 2)
    common = parent.keys() & child.keys()
    assert common, "both processes ran code from the same text pages"
    for page in common:
        assert child[page][0] == parent[page][0], f"page {page:#x}: one frame per (file, page)"
        # The file was read at most once for it: whoever came second found the page cached.
        assert not (child[page][1] and parent[page][1]), f"page {page:#x}: read from the file twice"


def test_fault_around_maps_the_neighbours_and_says_so():
    hello = str(ROOT / "samples/bin/hello")
    _, status0, plain = run(hello, ["hello"])
    _, status16, around = run(hello, ["hello"], fault_around=16)
    assert status0 == status16 == 0
    file_plain = [r for _p, _f, r in plain if r.outcome == "file-load"]
    file_around = [r for _p, _f, r in around if r.outcome == "file-load"]
    assert len(file_around) < len(file_plain)
    assert sum(r.around for r in file_around) > 0
    assert all(r.around == 0 for r in file_plain)
    # Every page fault-around mapped is one fault fewer, page for page.
    assert len(file_around) + sum(r.around for r in file_around) >= len(file_plain)


def test_a_shared_mapping_writes_back_to_the_file_at_munmap(programs, tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"." * 8192)
    kernel, status, _ = run(programs["sharedwrite"], ["sharedwrite", str(target)])
    assert status == 0
    data = target.read_bytes()
    assert data[4096 + 10:4096 + 37] == b"written through the mapping"
    assert data[:4096] == b"." * 4096 and len(data) == 8192
    assert kernel.cache.writebacks >= 1


def test_the_cache_gives_every_frame_back_at_shutdown(programs):
    probe = Kernel(Config(stderr=io.StringIO()))
    boot = probe.ram.used_frames
    kernel, status, _ = run(programs["selfexec"], ["selfexec"])
    assert status == 0
    assert kernel.ram.used_frames == boot
    assert not kernel.cache.pages
