"""Resource limits a program sets on itself and run-elf enforces as Linux does: RLIMIT_AS (mmap, brk,
mremap fail with ENOMEM past it) and RLIMIT_FSIZE (a write is cut at the limit; one that starts there
fails with EFBIG after SIGXFSZ, which kills by default). RLIMIT_NOFILE is in test_descriptors.py.
Natively and under run-elf, x86-64 and i386.
"""
from __future__ import annotations

import pytest

from conftest import compile_static, same_as_native

RLIMITS = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024L * 1024)

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct rlimit as = {256 * MIB, 256 * MIB};
    setrlimit(RLIMIT_AS, &as);
    void *big = mmap(0, 512 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 512 MiB: %s %s\n", big == MAP_FAILED ? "failed" : "mapped", strerrorname_np(errno));
    void *small = mmap(0, 16 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 16 MiB: %s\n", small == MAP_FAILED ? "failed" : "mapped");
    void *grown = mremap(small, 16 * MIB, 400 * MIB, MREMAP_MAYMOVE);
    printf("mremap to 400 MiB: %s %s\n", grown == MAP_FAILED ? "failed" : "moved", strerrorname_np(errno));
    errno = 0;
    void *brk = sbrk(400 * MIB);
    printf("sbrk 400 MiB: %s %s\n", brk == (void *)-1 ? "failed" : "grew", strerrorname_np(errno));
    printf("malloc 300 MiB: %s\n", malloc(300 * MIB) ? "got it" : "NULL");

    char path[4096], block[5000];
    memset(block, 'x', sizeof block);
    snprintf(path, sizeof path, "%s/big", argv[1]);
    struct rlimit fsize = {1024, 1024};
    setrlimit(RLIMIT_FSIZE, &fsize);
    signal(SIGXFSZ, SIG_IGN);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    printf("write 5000 under a 1024-byte limit: %zd\n", write(fd, block, sizeof block));
    ssize_t n = write(fd, block, 10);
    printf("write at the limit: %zd %s\n", n, strerrorname_np(errno));
    n = pwrite(fd, block, 10, 2000);
    printf("pwrite past the limit: %zd %s\n", n, strerrorname_np(errno));
    printf("pwrite below the limit: %zd\n", pwrite(fd, block, 100, 1000));
    struct stat st;
    fstat(fd, &st);
    printf("size: %ld\n", (long)st.st_size);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGXFSZ, SIG_DFL);
        write(fd, block, 10);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child with SIGXFSZ's default action: killed by %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    unlink(path);
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("rlimits")
    built = compile_static({"rlimits": RLIMITS}, out)
    built.update(compile_static({"rlimits-i386": RLIMITS}, out, flags=("-m32",)))
    return built


@pytest.mark.parametrize("name", ["rlimits", "rlimits-i386"])
def test_address_space_and_file_size_limits_match_native(programs, name, tmp_path):
    native, _ = same_as_native([programs[name], str(tmp_path)], timeout=60)
    assert b"mmap 512 MiB: failed ENOMEM" in native.stdout
