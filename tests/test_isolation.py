"""Isolation: the guest reaches nothing it was not given.

Kernel/user: a guest cannot read, write or execute kernel-half addresses (the kernel text page,
its own task record in the direct map, unmapped kernel space), cannot run privileged instructions
(each is SIGSEGV, as natively), and no user-half page-table entry of any process ever maps a
page-table or kernel frame, or a frame another process may write.

File system: with `--root DIR` (Config.root) every way out of DIR — absolute paths, relative paths,
`..`, symbolic links (absolute, relative, chained, looping), /proc/self/root, openat and fchdir on
directory descriptors — resolves inside DIR; a file named like the outside one but with other
content sits at the top of DIR, so "resolved inside" and "escaped" are told apart. `--read-only`
(Config.read_only) refuses every change with EROFS and leaves the files as they were. Without
options the guest sees the host's files with the user's rights. A guest never gets a host
descriptor it did not open.

The guest programs are C files compiled here with gcc -static (skipped without gcc). Each CLI test
has a twin through the Python API.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, USING_RUN_ELF, compile_static, run_elf, same_as_native
from osmodel.kernel import DIRECT_MAP, KERNEL_TEXT, Config, Kernel
from vm.cpu import SYSRETQ
from vm.pagetable import PTE_FRAME, PTE_PRESENT, PTE_USER, PTE_WRITABLE
from vm.ram import PAGE_SHIFT, Owner

pytestmark = pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own isolation")

SAMPLES_BIN = ROOT / "samples" / "bin"
MIB = 1 << 20
SEGV = 128 + 11
KERNEL_UNMAPPED = 0xFFFF_8000_0000_0000      # the first kernel-half address: nothing is mapped there
NONCANONICAL = 0x0000_8000_0000_0000         # just above user space

PROGRAMS = {
    "kaccess": r"""
        /* kaccess r|w|x ADDRESS: read, write or call ADDRESS. */
        #include <stdio.h>
        #include <stdlib.h>

        int main(int argc, char **argv)
        {
            unsigned long addr = strtoul(argv[2], NULL, 0);
            printf("%s %#lx\n", argv[1], addr);
            fflush(stdout);
            if (argv[1][0] == 'r') {
                volatile unsigned char v = *(volatile unsigned char *)addr;
                printf("survived: read %u\n", v);
            } else if (argv[1][0] == 'w') {
                *(volatile unsigned char *)addr = 0x5a;
                printf("survived: wrote\n");
            } else {
                ((void (*)(void))addr)();
                printf("survived: called\n");
            }
            return 1;
        }
    """,
    "priv": r"""
        /* priv OP: execute one privileged instruction at CPL 3. */
        #include <stdio.h>
        #include <string.h>

        int main(int argc, char **argv)
        {
            const char *op = argv[1];
            unsigned long v = 0;
            unsigned int lo = 0, hi = 0;
            printf("%s\n", op);
            fflush(stdout);
            if (!strcmp(op, "hlt")) __asm__ volatile("hlt");
            else if (!strcmp(op, "cli")) __asm__ volatile("cli");
            else if (!strcmp(op, "sti")) __asm__ volatile("sti");
            else if (!strcmp(op, "read_cr3")) __asm__ volatile("mov %%cr3, %0" : "=r"(v));
            else if (!strcmp(op, "write_cr3")) __asm__ volatile("mov %0, %%cr3" :: "r"(v));
            else if (!strcmp(op, "read_cr0")) __asm__ volatile("mov %%cr0, %0" : "=r"(v));
            else if (!strcmp(op, "in")) __asm__ volatile("inb $0x80, %%al" : "=a"(lo));
            else if (!strcmp(op, "in_dx")) __asm__ volatile("inb %%dx, %%al" : "=a"(lo) : "d"(0x3f8));
            else if (!strcmp(op, "out")) __asm__ volatile("outb %%al, $0x80" :: "a"(0));
            else if (!strcmp(op, "rdmsr")) __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080));
            else if (!strcmp(op, "wrmsr")) __asm__ volatile("wrmsr" :: "a"(0), "d"(0), "c"(0xc0000080));
            else if (!strcmp(op, "lgdt")) { char d[10] = {0}; __asm__ volatile("lgdt %0" :: "m"(d)); }
            else if (!strcmp(op, "invlpg")) __asm__ volatile("invlpg (%0)" :: "r"(argv) : "memory");
            else if (!strcmp(op, "wbinvd")) __asm__ volatile("wbinvd");
            else if (!strcmp(op, "clts")) __asm__ volatile("clts");
            else if (!strcmp(op, "swapgs")) __asm__ volatile("swapgs");
            else if (!strcmp(op, "sysretq")) __asm__ volatile("sysretq");
            else { printf("unknown\n"); return 2; }
            printf("survived %lx %x %x\n", v, lo, hi);
            return 1;
        }
    """,
    "probe": r"""
        /* probe OP:ARG[:ARG2]...: try one file-system operation per argument and print one line each:
         * `SPEC -> data:<first line read>`, `-> link:<target>`, `-> ok`, or `-> <errno name>`. */
        #define _GNU_SOURCE
        #include <dirent.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/stat.h>
        #include <sys/syscall.h>
        #include <unistd.h>

        static const char *ename(int e)
        {
            switch (e) {
            case ENOENT: return "ENOENT";
            case EACCES: return "EACCES";
            case EROFS: return "EROFS";
            case EBADF: return "EBADF";
            case ELOOP: return "ELOOP";
            case ENOTDIR: return "ENOTDIR";
            case EISDIR: return "EISDIR";
            case EEXIST: return "EEXIST";
            case ENOSYS: return "ENOSYS";
            case EINVAL: return "EINVAL";
            case EPERM: return "EPERM";
            case EFAULT: return "EFAULT";
            case EIO: return "EIO";
            case ENXIO: return "ENXIO";
            case ENAMETOOLONG: return "ENAMETOOLONG";
            default: {
                static char buf[32];
                snprintf(buf, sizeof buf, "E%d", e);
                return buf;
            }
            }
        }

        static void show_fd(const char *what, int fd)
        {
            char buf[256];
            if (fd < 0) {
                printf("%s -> %s\n", what, ename(errno));
                return;
            }
            ssize_t n = read(fd, buf, sizeof buf - 1);
            if (n < 0) {
                printf("%s -> read %s\n", what, ename(errno));
            } else {
                buf[n] = 0;
                buf[strcspn(buf, "\n")] = 0;
                printf("%s -> data:%s\n", what, buf);
            }
            close(fd);
        }

        static int wflags(const char *f)
        {
            if (!strcmp(f, "w")) return O_WRONLY;
            if (!strcmp(f, "rw")) return O_RDWR;
            if (!strcmp(f, "creat")) return O_WRONLY | O_CREAT;
            if (!strcmp(f, "rdcreat")) return O_RDONLY | O_CREAT;
            if (!strcmp(f, "excl")) return O_WRONLY | O_CREAT | O_EXCL;
            if (!strcmp(f, "trunc")) return O_WRONLY | O_TRUNC;
            if (!strcmp(f, "append")) return O_WRONLY | O_APPEND;
            return -1;
        }

        int main(int argc, char **argv)
        {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (int i = 1; i < argc; i++) {
                char *spec = strdup(argv[i]);
                char *op = spec, *a = strchr(spec, ':'), *b = NULL;
                if (a) {
                    *a++ = 0;
                    b = strchr(a, ':');
                    if (b)
                        *b++ = 0;
                }
                if (!strcmp(op, "read")) {                      /* read:PATH */
                    show_fd(argv[i], open(a, O_RDONLY));
                } else if (!strcmp(op, "nofollow")) {           /* nofollow:PATH */
                    show_fd(argv[i], open(a, O_RDONLY | O_NOFOLLOW));
                } else if (!strcmp(op, "chdir")) {              /* chdir:DIR */
                    printf("%s -> %s\n", argv[i], chdir(a) ? ename(errno) : "ok");
                } else if (!strcmp(op, "updir")) {              /* updir:N  chdir("..") N times */
                    int n = atoi(a), bad = 0;
                    for (int k = 0; k < n; k++)
                        bad |= chdir("..");
                    printf("%s -> %s\n", argv[i], bad ? ename(errno) : "ok");
                } else if (!strcmp(op, "getcwd")) {
                    char buf[4096];
                    printf("%s -> %s\n", argv[i], getcwd(buf, sizeof buf) ? buf : ename(errno));
                } else if (!strcmp(op, "openat")) {             /* openat:DIR:PATH */
                    int dfd = open(a, O_RDONLY | O_DIRECTORY);
                    if (dfd < 0) {
                        printf("%s -> dir %s\n", argv[i], ename(errno));
                    } else {
                        show_fd(argv[i], openat(dfd, b, O_RDONLY));
                        close(dfd);
                    }
                } else if (!strcmp(op, "fchdir")) {             /* fchdir:DIR:PATH */
                    int dfd = open(a, O_RDONLY | O_DIRECTORY);
                    if (dfd < 0 || fchdir(dfd)) {
                        printf("%s -> dir %s\n", argv[i], ename(errno));
                    } else {
                        show_fd(argv[i], open(b, O_RDONLY));
                        close(dfd);
                    }
                } else if (!strcmp(op, "readlink")) {           /* readlink:PATH */
                    char buf[4096];
                    ssize_t n = readlink(a, buf, sizeof buf - 1);
                    if (n < 0)
                        printf("%s -> %s\n", argv[i], ename(errno));
                    else
                        printf("%s -> link:%.*s\n", argv[i], (int)n, buf);
                } else if (!strcmp(op, "stat")) {               /* stat:PATH */
                    struct stat st;
                    if (stat(a, &st))
                        printf("%s -> %s\n", argv[i], ename(errno));
                    else
                        printf("%s -> size:%lld\n", argv[i], (long long)st.st_size);
                } else if (!strcmp(op, "ls")) {                 /* ls:DIR */
                    DIR *d = opendir(a);
                    if (!d) {
                        printf("%s -> %s\n", argv[i], ename(errno));
                    } else {
                        struct dirent *e;
                        printf("%s ->", argv[i]);
                        while ((e = readdir(d)))
                            printf(" %s", e->d_name);
                        printf("\n");
                        closedir(d);
                    }
                } else if (!strcmp(op, "open")) {               /* open:FLAGS:PATH  (write access) */
                    int fd = open(b, wflags(a), 0644);
                    if (fd < 0) {
                        printf("%s -> %s\n", argv[i], ename(errno));
                    } else {
                        ssize_t n = write(fd, "GUEST-WAS-HERE\n", 15);
                        printf("%s -> fd %d, wrote %zd\n", argv[i], fd, n);
                        close(fd);
                    }
                } else if (!strcmp(op, "openfd")) {             /* openfd:PATH  the descriptor number */
                    int fd = open(a, O_RDONLY);
                    if (fd < 0)
                        printf("%s -> %s\n", argv[i], ename(errno));
                    else
                        printf("%s -> fd %d\n", argv[i], fd);
                } else if (!strcmp(op, "sys")) {                /* sys:NAME:PATH  a modifying call */
                    long r = -1;
                    char to[4096];
                    if (!strcmp(a, "mkdir")) r = syscall(SYS_mkdir, b, 0755);
                    else if (!strcmp(a, "rmdir")) r = syscall(SYS_rmdir, b);
                    else if (!strcmp(a, "unlink")) r = syscall(SYS_unlink, b);
                    else if (!strcmp(a, "rename")) { snprintf(to, sizeof to, "%s.renamed", b); r = syscall(SYS_rename, b, to); }
                    else if (!strcmp(a, "link")) { snprintf(to, sizeof to, "%s.link", b); r = syscall(SYS_link, b, to); }
                    else if (!strcmp(a, "symlink")) { snprintf(to, sizeof to, "%s.sym", b); r = syscall(SYS_symlink, "x", to); }
                    else if (!strcmp(a, "chmod")) r = syscall(SYS_chmod, b, 0777);
                    else if (!strcmp(a, "truncate")) r = syscall(SYS_truncate, b, 0L);
                    else if (!strcmp(a, "utimes")) r = syscall(SYS_utimensat, AT_FDCWD, b, NULL, 0);
                    else if (!strcmp(a, "mknod")) { snprintf(to, sizeof to, "%s.fifo", b); r = syscall(SYS_mknod, to, 010644, 0L); }
                    else if (!strcmp(a, "ftruncate")) { int fd = open(b, O_RDONLY); r = syscall(SYS_ftruncate, fd, 0L); if (fd >= 0) close(fd); }
                    else if (!strcmp(a, "fallocate")) { int fd = open(b, O_RDONLY); r = syscall(SYS_fallocate, fd, 0, 0L, 4096L); if (fd >= 0) close(fd); }
                    else if (!strcmp(a, "fchmod")) { int fd = open(b, O_RDONLY); r = syscall(SYS_fchmod, fd, 0777); if (fd >= 0) close(fd); }
                    else if (!strcmp(a, "fchown")) { int fd = open(b, O_RDONLY); r = syscall(SYS_fchown, fd, getuid(), getgid()); if (fd >= 0) close(fd); }
                    else if (!strcmp(a, "chown")) r = syscall(SYS_chown, b, getuid(), getgid());
                    else if (!strcmp(a, "creat")) { snprintf(to, sizeof to, "%s.creat", b); r = syscall(SYS_creat, to, 0644); }
                    else if (!strcmp(a, "unlinkat")) r = syscall(SYS_unlinkat, AT_FDCWD, b, 0);
                    else if (!strcmp(a, "mkdirat")) { snprintf(to, sizeof to, "%s.d", b); r = syscall(SYS_mkdirat, AT_FDCWD, to, 0755); }
                    else if (!strcmp(a, "renameat2")) { snprintf(to, sizeof to, "%s.renamed", b); r = syscall(SYS_renameat2, AT_FDCWD, b, AT_FDCWD, to, 0); }
                    else if (!strcmp(a, "linkat")) { snprintf(to, sizeof to, "%s.link", b); r = syscall(SYS_linkat, AT_FDCWD, b, AT_FDCWD, to, 0); }
                    else if (!strcmp(a, "symlinkat")) { snprintf(to, sizeof to, "%s.sym", b); r = syscall(SYS_symlinkat, "x", AT_FDCWD, to); }
                    else if (!strcmp(a, "setxattr")) r = syscall(SYS_setxattr, b, "user.guest", "x", 1L, 0);
                    else if (!strcmp(a, "utime")) r = syscall(SYS_utime, b, NULL);
                    else { printf("%s -> unknown\n", argv[i]); continue; }
                    printf("%s -> %s\n", argv[i], r == 0 ? "ok" : ename(errno));
                } else if (!strcmp(op, "symlink")) {            /* symlink:TARGET:PATH */
                    printf("%s -> %s\n", argv[i], symlink(a, b) ? ename(errno) : "ok");
                } else if (!strcmp(op, "hardlink")) {           /* hardlink:FROM:TO */
                    printf("%s -> %s\n", argv[i], link(a, b) ? ename(errno) : "ok");
                } else if (!strcmp(op, "rename")) {             /* rename:FROM:TO */
                    printf("%s -> %s\n", argv[i], rename(a, b) ? ename(errno) : "ok");
                } else if (!strcmp(op, "mkdir")) {              /* mkdir:PATH */
                    printf("%s -> %s\n", argv[i], mkdir(a, 0755) ? ename(errno) : "ok");
                } else if (!strcmp(op, "fds")) {                /* fds:LO:HI  use descriptors never opened */
                    int lo = atoi(a), hi = atoi(b);
                    for (int fd = lo; fd <= hi; fd++) {
                        char c;
                        struct stat st;
                        int d;
                        printf("fd %d ->", fd);
                        printf(" read:%s", read(fd, &c, 1) < 0 ? ename(errno) : "ok");
                        printf(" write:%s", write(fd, "", 0) < 0 ? ename(errno) : "ok");
                        printf(" fstat:%s", fstat(fd, &st) < 0 ? ename(errno) : "ok");
                        printf(" lseek:%s", lseek(fd, 0, SEEK_CUR) < 0 ? ename(errno) : "ok");
                        printf(" fcntl:%s", fcntl(fd, F_GETFD) < 0 ? ename(errno) : "ok");
                        printf(" dup:%s", (d = dup(fd)) < 0 ? ename(errno) : "ok");
                        printf(" close:%s\n", close(fd) < 0 ? ename(errno) : "ok");
                        if (d >= 0)
                            close(d);
                    }
                } else {
                    printf("%s -> unknown op\n", argv[i]);
                }
                free(spec);
            }
            return 0;
        }
    """,
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, str]:
    """name -> path of each PROGRAMS entry compiled with gcc -static."""
    return compile_static(PROGRAMS, tmp_path_factory.mktemp("isolation-programs"))


def api_run(path: str, args=(), *, kernel: Kernel | None = None, before_run=None, **config):
    """Run the guest path through the API; (kernel, status, stdout, stderr). before_run(kernel, proc) runs after spawn."""
    err = io.StringIO()
    kernel = kernel or Kernel(Config(stderr=err, **config))
    kernel.config.stderr = err
    with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
        proc = kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [b"LC_ALL=C"],
                            stdio=(null.fileno(), out.fileno(), 2))
        if before_run is not None:
            before_run(kernel, proc)
        status = kernel.run()
        out.seek(0)
        stdout = out.read()
    return kernel, status, stdout.decode(errors="replace"), err.getvalue()


def cli(args, *, pass_fds=(), timeout=60) -> subprocess.CompletedProcess:
    """`python -m osmodel ARGS` from the repository root, text output."""
    try:
        return subprocess.run([sys.executable, "-m", "osmodel", *map(str, args)], cwd=str(ROOT),
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONPATH": str(ROOT)},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              pass_fds=pass_fds)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"run-elf hung: {args}: {e.stderr!r}")


def segv_line(stderr: str) -> str:
    """The one-line SIGSEGV report of pid 1, without its prefix."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    prefix = "run-elf: pid 1 killed by SIGSEGV: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


# -- kernel/user -----------------------------------------------------------------------------------------------

def task_record_address(program: str) -> int:
    """Where pid 1's task record will be for a run of program with phys_mem=64M (allocation is deterministic)."""
    kernel = Kernel(Config(phys_mem=64 * MIB, stderr=io.StringIO()))
    kernel.spawn(program, [b"x", b"r", b"0"], [])
    return DIRECT_MAP + (kernel.processes[1].task_pfn << PAGE_SHIFT)


KERNEL_ADDRESSES = {
    "kernel text": (KERNEL_TEXT, "present, supervisor-only, kernel"),
    "own task record": (None, "present, supervisor-only, kernel"),
    "unmapped kernel space": (KERNEL_UNMAPPED, "not present, kernel"),
}
ACCESS = {"r": "read", "w": "write", "x": "fetch"}


@pytest.mark.parametrize("access", list(ACCESS))
@pytest.mark.parametrize("where", list(KERNEL_ADDRESSES))
def test_kernel_half_is_out_of_reach(programs, where, access):
    program = programs["kaccess"]
    address, why = KERNEL_ADDRESSES[where]
    if address is None:
        address = task_record_address(program)

    def check_address(kernel, proc):
        if where == "own task record":
            assert DIRECT_MAP + (proc.task_pfn << PAGE_SHIFT) == address

    kernel = Kernel(Config(phys_mem=64 * MIB))
    text_pfn = (kernel.kernel_pt.lookup(KERNEL_TEXT) & PTE_FRAME) >> PAGE_SHIFT
    record = []
    exit_ = kernel.exit

    def exit_and_look(proc, code=None, signal=None):
        if proc.alive:
            record.append(kernel.ram.read(proc.task_pfn << PAGE_SHIFT, 8))
        return exit_(proc, code, signal)

    kernel.exit = exit_and_look
    kernel, status, stdout, err = api_run(program, (access, hex(address)), kernel=kernel, before_run=check_address)
    assert status == SEGV, (stdout, err)
    assert "survived" not in stdout
    line = segv_line(err)
    assert line.startswith(f"user {ACCESS[access]} to {address:#x} ({why}) at "), line
    assert bytes(kernel.ram.frame(text_pfn)[:len(SYSRETQ)]) == SYSRETQ     # the kernel text is intact
    assert record == [(1).to_bytes(8, "little")]                           # the task record too (pid 1)


def test_own_task_record_is_where_the_test_looks(programs):
    """The address test_kernel_half_is_out_of_reach uses is the real, mapped, supervisor-only task record."""
    program = programs["kaccess"]
    address = task_record_address(program)
    kernel = Kernel(Config(phys_mem=64 * MIB, stderr=io.StringIO()))
    proc = kernel.spawn(program, [b"x", b"r", hex(address).encode()], [])
    assert DIRECT_MAP + (proc.task_pfn << PAGE_SHIFT) == address
    pte = kernel.kernel_pt.lookup(address)
    assert pte & PTE_PRESENT and not pte & PTE_USER
    assert kernel.ram.owner[proc.task_pfn] == Owner.KERNEL
    assert kernel.ram.read(proc.task_pfn << PAGE_SHIFT, 8) == (1).to_bytes(8, "little")   # pid 1


@pytest.mark.parametrize("access", list(ACCESS))
def test_noncanonical_addresses_are_general_protection_faults(programs, access):
    _k, status, stdout, err = api_run(programs["kaccess"], (access, hex(NONCANONICAL)), phys_mem=64 * MIB)
    assert status == SEGV
    line = segv_line(err)
    assert line.startswith(f"general protection fault: non-canonical address {NONCANONICAL:#x} at "), line


@pytest.mark.parametrize("access", list(ACCESS))
def test_kernel_text_through_the_cli_matches_native(programs, access):
    args = [programs["kaccess"], access, hex(KERNEL_TEXT)]
    native = subprocess.run(args, capture_output=True, timeout=30)
    r = cli(args)
    assert 128 - native.returncode == SEGV
    assert (r.returncode, r.stdout) == (SEGV, native.stdout.decode()), r
    assert segv_line(r.stderr).startswith(f"user {ACCESS[access]} to {KERNEL_TEXT:#x} (present, supervisor-only")


PRIVILEGED = ["hlt", "cli", "sti", "read_cr3", "write_cr3", "read_cr0", "in", "in_dx", "out", "rdmsr", "wrmsr",
              "lgdt", "invlpg", "wbinvd", "clts", "swapgs", "sysretq"]
@pytest.mark.parametrize("op", PRIVILEGED)
def test_privileged_instruction_is_sigsegv_as_natively(programs, op):
    program = programs["priv"]
    native = subprocess.run([program, op], capture_output=True, timeout=30)
    assert 128 - native.returncode == SEGV and native.stdout == f"{op}\n".encode()
    _k, status, stdout, err = api_run(program, (op,), phys_mem=64 * MIB)
    assert (status, stdout) == (SEGV, f"{op}\n"), err
    line = segv_line(err)
    assert re.fullmatch(r"general protection fault at 0x[0-9a-f]+ <main\+0x[0-9a-f]+>: \w+.*", line), line


def user_frames(pt) -> dict[int, int]:
    """pfn -> PTE of every present user-half leaf."""
    return {(pte & PTE_FRAME) >> PAGE_SHIFT: pte for _va, _slot, pte in pt.leaves()}


def check_tables(kernel: Kernel) -> None:
    """No process maps a page-table, kernel or free frame in its user half; the kernel half is supervisor-only."""
    owner = kernel.ram.owner
    forbidden = {Owner.PAGE_TABLE, Owner.KERNEL, Owner.FREE}
    kernel_root = kernel.kernel_pt.root
    for proc in kernel.processes.values():
        if not proc.alive:
            continue
        pt = proc.aspace.pagetable
        for va, _slot, pte in pt.leaves():
            pfn = (pte & PTE_FRAME) >> PAGE_SHIFT
            assert owner[pfn] not in forbidden, f"pid {proc.pid} maps {Owner(owner[pfn]).name} frame {pfn} at {va:#x}"
        words = kernel.ram.words
        for idx in range(256, 512):
            entry = words[(pt.root << 9) | idx]
            shared = words[(kernel_root << 9) | idx]
            assert entry & PTE_FRAME == shared & PTE_FRAME and entry & PTE_PRESENT == shared & PTE_PRESENT, \
                f"PML4 slot {idx} of pid {proc.pid} is not the shared kernel half"
            assert not entry & PTE_USER, f"PML4 slot {idx} of pid {proc.pid} is user-accessible"
    for va, _slot, pte in kernel.kernel_pt.leaves(1 << 47, 1 << 48):
        assert not pte & PTE_USER, f"kernel page {va:#x} is user-accessible"


@pytest.mark.parametrize("build", ["", "-musl"])
def test_no_process_can_reach_page_tables_or_another_process_s_frames(build):
    """forkcow under a fault observer: every fault's frame is a user frame, full walks every 64 faults, and when the
    child exits (after writing 512 pages of the shared buffer) no frame it may write is mapped by its parent."""
    kernel = Kernel(Config(phys_mem=256 * MIB, stderr=io.StringIO()))
    owner = kernel.ram.owner
    count = [0]
    checked_exit = []

    def observe(proc, fault, res, error):
        count[0] += 1
        if res is not None and res.pfn:
            assert owner[res.pfn] not in (Owner.PAGE_TABLE, Owner.KERNEL, Owner.FREE), res
        if count[0] % 64 == 0:
            check_tables(kernel)

    exit_ = kernel.exit

    def exit_and_check(proc, code=None, signal=None):
        if proc.pid == 2 and proc.alive:
            parent = kernel.processes[1]
            child_frames = user_frames(proc.aspace.pagetable)
            parent_frames = user_frames(parent.aspace.pagetable)
            child_private = {pfn for pfn, pte in child_frames.items() if pte & PTE_WRITABLE}
            assert len(child_private) >= 512                    # its copies of the pages it wrote
            assert not child_private & set(parent_frames), "the parent maps frames its child can write"
            for pfn in set(child_frames) & set(parent_frames):
                assert not child_frames[pfn] & PTE_WRITABLE and not parent_frames[pfn] & PTE_WRITABLE
            check_tables(kernel)
            checked_exit.append(len(child_private))
        return exit_(proc, code, signal)

    kernel.exit = exit_and_check
    kernel.fault_observers.append(observe)
    _k, status, stdout, err = api_run(str(SAMPLES_BIN / f"forkcow{build}"), kernel=kernel)
    assert status == 0, err
    assert "parent: big buffer unchanged: yes" in stdout
    assert checked_exit and count[0] > 1000


# -- file system: --root -------------------------------------------------------------------------------------------

OUTSIDE = "OUTSIDE-SECRET"
INSIDE = "inside-root-copy"


@pytest.fixture
def tree(tmp_path, programs):
    """tmp/outside.txt (the secret) and tmp/root/, the guest's /, with traps that lead out if followed on the host."""
    t = tmp_path
    (t / "outside.txt").write_text(OUTSIDE + "\n")
    root = t / "root"
    for d in ["bin", "etc", "a/b/c"]:
        (root / d).mkdir(parents=True)
    (root / "outside.txt").write_text(INSIDE + "\n")
    (root / "etc" / "secret").write_text("inside-etc\n")
    shutil.copy(programs["probe"], root / "bin" / "probe")
    links = {
        "link_abs": str(t / "outside.txt"),                      # the host path of the secret
        "link_up": "../../../../../../outside.txt",              # climbs past the root
        "a/b/up": "../../..",                                    # a directory link to above the root
        "a/esc": "../" * 12 + str(t / "outside.txt").lstrip("/"),
        "dirlink": str(t),                                       # a directory link to the host directory
        "a/dirlink_rel": "../..",
        "c1": "/c2", "c2": "a/../../c3", "c3": str(t),           # a chain that ends at the host directory
        "loop1": "loop2", "loop2": "loop1",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return t


def escape_attempts(t: Path) -> dict[str, set[str]]:
    """probe argument -> the results allowed (anything reading OUTSIDE is an escape)."""
    inside = {f"data:{INSIDE}"}
    gone = {"ENOENT"}
    return {
        "read:/../../outside.txt": inside,
        "read:../../../outside.txt": inside,
        "read:outside.txt": inside,
        f"read:{t}/outside.txt": gone,
        f"read:/../../..{t}/outside.txt": gone,
        "read:/bin/../../../outside.txt": inside,
        "read:/link_abs": gone,
        "read:/link_up": inside,
        "read:/a/b/up/outside.txt": inside,
        "read:/a/b/up/a/b/up/outside.txt": inside,
        "read:/a/esc": gone,
        "read:/c1/outside.txt": gone,
        "read:/loop1": {"ELOOP"},
        "nofollow:/link_up": {"ELOOP"},
        f"read:/proc/self/root{t}/outside.txt": gone,
        "read:/proc/self/root/outside.txt": gone | inside,
        "read:/proc/1/root/outside.txt": gone | inside,
        "read:/proc/self/cwd/../../outside.txt": gone | inside,
        "openat:/:../outside.txt": inside,
        "openat:/a:../../../outside.txt": inside,
        f"openat:/a:{t}/outside.txt": gone,
        "openat:/dirlink:outside.txt": {"dir ENOENT"},
        "openat:/a/dirlink_rel:../outside.txt": inside,
        "openat:/c1:outside.txt": {"dir ENOENT"},
        "fchdir:/a/b/c:../../../../../outside.txt": inside,
        "fchdir:/a/dirlink_rel:../outside.txt": inside,
        "chdir:/dirlink": gone,
        "chdir:/a/b/c": {"ok"},
        "updir:10": {"ok"},
        "getcwd": {"/"},
        "read:./outside.txt": inside,
        f"stat:{t}/outside.txt": gone,
        "stat:/outside.txt": {f"size:{len(INSIDE) + 1}"},
        "readlink:/proc/self/exe": {"link:/bin/probe"},
        "readlink:/link_abs": {f"link:{t}/outside.txt"},     # a link's text is not its target's content
        "read:/etc/secret": {"data:inside-etc"},
        "ls:/": {"a bin c1 c2 c3 dirlink etc link_abs link_up loop1 loop2 outside.txt"},
        "ls:/..": {"a bin c1 c2 c3 dirlink etc link_abs link_up loop1 loop2 outside.txt"},
    }


def probe_results(stdout: str) -> dict[str, str]:
    results = {}
    for line in stdout.splitlines():
        spec, sep, result = line.partition(" -> ")
        assert sep, line
        if spec.startswith("ls:"):
            result = " ".join(sorted(n for n in result.split() if n not in (".", "..")))
        results[spec] = result
    return results


def check_confined(stdout: str, attempts: dict[str, set[str]]) -> None:
    assert OUTSIDE not in stdout, stdout
    results = probe_results(stdout)
    assert list(results) == list(attempts), stdout
    wrong = {spec: got for spec, got in results.items() if got not in attempts[spec]}
    assert not wrong, wrong


def test_root_confines_every_path_through_the_api(tree):
    attempts = escape_attempts(tree)
    _k, status, stdout, err = api_run("/bin/probe", list(attempts), root=str(tree / "root"), phys_mem=64 * MIB)
    assert (status, err) == (0, "")
    check_confined(stdout, attempts)


def test_root_confines_every_path(tree):
    attempts = escape_attempts(tree)
    r = cli(["--root", tree / "root", "/bin/probe", *attempts])
    assert (r.returncode, r.stderr) == (0, ""), r
    check_confined(r.stdout, attempts)


def test_root_resolves_program_inside_the_root(tree):
    """PROGRAM is a guest path: a relative name in the root's / or a symlinked path that points out is refused."""
    r = cli(["--root", tree / "root", "/bin/../../bin/probe", "getcwd"])
    assert (r.returncode, r.stdout) == (0, "getcwd -> /\n"), r
    outside_probe = tree / "probe-outside"
    shutil.copy(tree / "root" / "bin" / "probe", outside_probe)
    r = cli(["--root", tree / "root", outside_probe, "getcwd"])
    assert r.returncode == 127 and r.stdout == "", r


def change_attempts(t: Path) -> dict[str, set[str]]:
    """Changes a guest may make under --root, aimed outside it: each lands inside the root or fails."""
    done = {"ok", "ENOSYS"}             # ENOSYS while the call is not implemented: nothing changes either
    return {
        f"symlink:{t}/outside.txt:/made_abs": done,
        "read:/made_abs": {"ENOENT"},
        "symlink:../../../../../outside.txt:/made_rel": done,
        "read:/made_rel": {f"data:{INSIDE}", "ENOENT"},
        f"hardlink:{t}/outside.txt:/hard": {"ENOENT", "ENOSYS"},
        "read:/hard": {"ENOENT"},
        "mkdir:/../../../made_dir": done,
        "rename:/etc/secret:/../../../moved_secret": done,
        "open:creat:/../../../created.txt": {"fd 3, wrote 15"},
        "read:/created.txt": {"data:GUEST-WAS-HERE"},
        "sys:unlink:/../../outside.txt": done,
    }


def outside_the_root(t: Path) -> dict[str, tuple]:
    return {k: v for k, v in snapshot(t).items() if k != "root" and not k.startswith("root/")}


def check_changes_stayed_inside(t: Path, stdout: str, attempts: dict[str, set[str]], before: dict) -> None:
    assert OUTSIDE not in stdout, stdout
    results = probe_results(stdout)
    assert list(results) == list(attempts), stdout
    assert {s: got for s, got in results.items() if got not in attempts[s]} == {}
    assert outside_the_root(t) == before
    root = t / "root"
    assert (root / "created.txt").read_text() == "GUEST-WAS-HERE\n"
    for spec, path in [("mkdir:/../../../made_dir", "made_dir"), ("rename:/etc/secret:/../../../moved_secret",
                                                                    "moved_secret")]:
        assert (root / path).exists() == (results[spec] == "ok"), spec


def test_root_confines_changes_through_the_api(tree):
    attempts = change_attempts(tree)
    before = outside_the_root(tree)
    _k, status, stdout, err = api_run("/bin/probe", list(attempts), root=str(tree / "root"), phys_mem=64 * MIB)
    assert (status, err) == (0, "")
    check_changes_stayed_inside(tree, stdout, attempts, before)


def test_root_confines_changes(tree):
    attempts = change_attempts(tree)
    before = outside_the_root(tree)
    r = cli(["--root", tree / "root", "/bin/probe", *attempts])
    assert (r.returncode, r.stderr) == (0, ""), r
    check_changes_stayed_inside(tree, r.stdout, attempts, before)


# -- file system: --read-only ----------------------------------------------------------------------------------

WRITE_OPENS = ["w", "rw", "creat", "rdcreat", "excl", "trunc", "append"]
MODIFYING_CALLS = ["mkdir", "rmdir", "unlink", "rename", "link", "symlink", "chmod", "truncate", "utimes", "mknod",
                   "chown", "creat", "unlinkat", "mkdirat", "renameat2", "linkat", "symlinkat", "setxattr", "utime",
                   "fchmod", "fchown"]
# Through a descriptor opened O_RDONLY: Linux checks the open mode first (EINVAL, EBADF), which refuses it as well.
FD_WRITE_CALLS = ["ftruncate", "fallocate"]


def read_only_attempts(t: Path) -> dict[str, set[str]]:
    target = f"{t}/outside.txt"
    attempts = {f"open:{flags}:{target}": {"EROFS"} for flags in WRITE_OPENS}
    attempts[f"open:creat:{t}/new.txt"] = {"EROFS"}
    attempts[f"open:excl:{t}/new.txt"] = {"EROFS"}
    attempts.update({f"sys:{call}:{target}": {"EROFS"} for call in MODIFYING_CALLS})
    attempts.update({f"sys:{call}:{target}": {"EROFS", "EINVAL", "EBADF"} for call in FD_WRITE_CALLS})
    attempts[f"read:{target}"] = {f"data:{OUTSIDE}"}             # reading still works
    return attempts


def snapshot(t: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(t):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            content = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else b""
            out[os.path.relpath(p, t)] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return out


def test_read_only_refuses_every_change_through_the_api(tree):
    attempts = read_only_attempts(tree)
    before = snapshot(tree)
    _k, status, stdout, err = api_run(str(tree / "root" / "bin" / "probe"), list(attempts), read_only=True,
                                      phys_mem=64 * MIB)
    assert (status, err) == (0, "")
    results = probe_results(stdout)
    assert {s: r for s, r in results.items() if r not in attempts[s]} == {}
    assert snapshot(tree) == before


def test_read_only_refuses_every_change(tree):
    attempts = read_only_attempts(tree)
    before = snapshot(tree)
    r = cli(["--read-only", tree / "root" / "bin" / "probe", *attempts])
    assert (r.returncode, r.stderr) == (0, ""), r
    results = probe_results(r.stdout)
    assert {s: got for s, got in results.items() if got not in attempts[s]} == {}
    assert snapshot(tree) == before


# -- file system: no options ------------------------------------------------------------------------------------

def test_without_options_the_guest_sees_the_host_files(tree):
    new = tree / "new.txt"
    ops = [f"read:{tree}/outside.txt", f"open:creat:{new}", f"read:{new}", "readlink:/proc/self/exe"]
    probe = tree / "root" / "bin" / "probe"
    r = cli([probe, *ops])
    assert (r.returncode, r.stderr) == (0, ""), r
    assert probe_results(r.stdout) == {
        ops[0]: f"data:{OUTSIDE}", ops[1]: "fd 3, wrote 15", ops[2]: "data:GUEST-WAS-HERE", ops[3]: f"link:{probe}"}
    assert new.read_text() == "GUEST-WAS-HERE\n"
    assert new.stat().st_uid == os.getuid()


def test_without_options_through_the_api(tree):
    probe = str(tree / "root" / "bin" / "probe")
    _k, status, stdout, err = api_run(probe, [f"read:{tree}/outside.txt"], phys_mem=64 * MIB)
    assert (status, stdout, err) == (0, f"read:{tree}/outside.txt -> data:{OUTSIDE}\n", "")


# -- host descriptors --------------------------------------------------------------------------------------------

@pytest.fixture
def host_fds(tmp_path):
    """Descriptors open in the test (and passed to run-elf): an unlinked secret file, a pipe, a directory."""
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-FD-SECRET\n")
    fds = [os.open(secret, os.O_RDONLY)]
    secret.unlink()                                     # reachable through the descriptor only
    fds += list(os.pipe())
    fds.append(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    yield fds
    for fd in fds:
        os.close(fd)


def check_no_host_descriptors(stdout: str, lo: int, hi: int) -> None:
    results = probe_results(stdout)
    for fd in range(lo, hi + 1):
        assert results[f"fd {fd}"] == "read:EBADF write:EBADF fstat:EBADF lseek:EBADF fcntl:EBADF dup:EBADF " \
                                      "close:EBADF", (fd, results[f"fd {fd}"])


def test_guest_gets_no_host_descriptor(tree, host_fds):
    probe = tree / "root" / "bin" / "probe"
    assert max(host_fds) < 50
    r = cli([probe, "fds:3:60", f"openfd:{tree}/outside.txt"], pass_fds=host_fds)
    assert (r.returncode, r.stderr) == (0, ""), r
    check_no_host_descriptors(r.stdout, 3, 60)
    assert probe_results(r.stdout)[f"openfd:{tree}/outside.txt"] == "fd 3"      # the guest's own numbering


def test_guest_gets_no_host_descriptor_through_the_api(tree, host_fds):
    probe = str(tree / "root" / "bin" / "probe")
    _k, status, stdout, err = api_run(probe, ["fds:3:100"], phys_mem=64 * MIB)
    assert (status, err) == (0, "")
    check_no_host_descriptors(stdout, 3, 100)


@pytest.mark.parametrize("directory", ["/proc/self/fd", "/dev/fd"])
def test_proc_self_fd_does_not_reach_host_descriptors(tree, host_fds, directory):
    probe = tree / "root" / "bin" / "probe"
    secret = host_fds[0]                                # only the file: reading a passed pipe would block
    r = cli([probe, f"read:{directory}/{secret}"], pass_fds=[secret], timeout=20)
    assert r.returncode == 0, r
    assert "HOST-FD-SECRET" not in r.stdout, r.stdout


def test_proc_self_is_not_the_host_process(tree):
    probe = tree / "root" / "bin" / "probe"
    r = cli([probe, "read:/proc/self/maps"])
    assert r.returncode == 0, r
    line = probe_results(r.stdout)["read:/proc/self/maps"]
    assert "python" not in line and "unicorn" not in line, line


@pytest.mark.parametrize("name", ["mounts", "mountinfo"])
def test_proc_self_mount_tables_are_the_shared_namespace_s(name):
    """Without --root the guest is in run-elf's mount namespace: /proc/self/mounts and mountinfo are its
    (df and findmnt read them); under --root they would describe another tree, so they are refused."""
    same_as_native(["/bin/cat", f"/proc/self/{name}"])
    confined = run_elf(["/bin/cat", f"/proc/self/{name}"], "--root", "/")
    assert confined.status == 1 and b"Permission denied" in confined.stderr
