"""Each kind of page fault through the real fault handler: a Kernel runs committed samples
(samples/bin/*) or a tiny program built here, and a fault observer records what happened.

Expectations come from the ELF files themselves (segments, symbols), Linux's layout and
rules (stack top 0x7ffffffff000, a 128 KiB initial stack, RLIMIT_STACK, the shared zero
page, copy-on-write reuse) and the x86 page-fault error code.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from conftest import compile_static
from osmodel import addrspace
from osmodel.kernel import Config, Kernel
from vm.ram import Owner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "samples", "bin")

PAGE = 4096
STACK_TOP = 0x7FFF_FFFF_F000          # Linux's STACK_TOP (47-bit user space, no randomisation)
STACK_INITIAL = 128 * 1024            # the stack Linux sets up at exec
KERNEL_TEXT = 0xFFFF_FFFF_8100_0000
MIB = 1 << 20

# x86 page-fault error code bits.
PF_P, PF_W, PF_U, PF_I = 1, 2, 4, 16
ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH = 0, 1, 2


def page_down(a: int) -> int:
    return a & ~(PAGE - 1)


def page_up(a: int) -> int:
    return (a + PAGE - 1) & ~(PAGE - 1)


def sample(name: str, build: str = "glibc") -> str:
    return os.path.join(BIN, name + ("-musl" if build == "musl" else ""))


@dataclass
class Rec:
    """One fault as the observer saw it (region bounds copied at the time: regions change)."""
    vaddr: int
    access: int
    code: int
    outcome: str                 # the resolution's outcome, or 'segv' / 'oom'
    kind: str | None             # region kind
    start: int = 0
    end: int = 0
    pfn: int = 0
    error: str = ""
    frame: bytes = b""           # the frame's bytes right after a file-load

    @property
    def page(self) -> int:
        return page_down(self.vaddr)


@dataclass
class Run:
    kernel: Kernel
    status: int
    stdout: bytes
    stderr: str
    faults: list[Rec]
    boot_frames: int
    boot_owners: dict
    proc: object

    def by(self, outcome: str) -> list[Rec]:
        return [f for f in self.faults if f.outcome == outcome]


def run(path: str, args: tuple[str, ...] = (), **config) -> Run:
    err = io.StringIO()
    kernel = Kernel(Config(stderr=err, **config))
    boot_frames = kernel.ram.used_frames
    boot_owners = kernel.ram.frames_by_owner()
    faults: list[Rec] = []

    def observe(proc, fault, res, error):
        if res is not None:
            region = res.region
            rec = Rec(fault.vaddr, fault.access, fault.error_code, res.outcome,
                      region.kind if region else None, region.start if region else 0,
                      region.end if region else 0, res.pfn)
            if res.outcome == "file-load":
                rec.frame = bytes(kernel.ram.frame(res.pfn))
        else:
            region = getattr(error, "region", None)
            rec = Rec(fault.vaddr, fault.access, fault.error_code,
                      "oom" if type(error).__name__ == "OutOfMemory" else "segv",
                      region.kind if region else None, error=str(error))
        faults.append(rec)

    kernel.fault_observers.append(observe)
    with tempfile.TemporaryFile() as out:
        proc = kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [b"LC_ALL=C"],
                            stdio=(0, out.fileno(), 2))
        status = kernel.run()
        out.seek(0)
        stdout = out.read()
    return Run(kernel, status, stdout, err.getvalue(), faults, boot_frames, boot_owners, proc)


def elf_info(path: str):
    """(segments as (vaddr, memsz, filesz, offset, flags), symbol addresses by name, file bytes)."""
    with open(path, "rb") as f:
        data = f.read()
        f.seek(0)
        elf = ELFFile(f)
        segs = [(s["p_vaddr"], s["p_memsz"], s["p_filesz"], s["p_offset"], s["p_flags"])
                for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        syms = {}
        tab = elf.get_section_by_name(".symtab")
        for sym in tab.iter_symbols() if tab else ():
            syms.setdefault(sym.name, sym["st_value"])
    return segs, syms, data


def test_layout_constants_are_linux():
    assert addrspace.STACK_TOP == STACK_TOP
    assert addrspace.STACK_INITIAL == STACK_INITIAL
    assert Config().stack_limit == 8 * MIB


# -- demand-zero and the zero page -----------------------------------------------------------------

@pytest.mark.parametrize("build", ["glibc", "musl"])
def test_bss_pages_are_demand_zero(build):
    n = 8
    path = sample("bss", build)
    segs, syms, _data = elf_info(path)
    (vaddr, memsz, filesz, _off, _fl), = [s for s in segs if s[4] & P_FLAGS.PF_W]
    bss_start, bss_end = page_up(vaddr + filesz), page_up(vaddr + memsz)
    big = syms["big"]
    # bss.c writes big[p * PAGE + (p * 17) % PAGE] for p < n, after reading every page of big.
    written = {page_down(big + p * PAGE + (p * 17) % PAGE) for p in range(n)}
    written_bss = {pg for pg in written if pg >= bss_start}
    assert len(written_bss) >= n - 1            # at most the first lies in the file-backed page

    r = run(path, (str(n),))
    assert r.status == 0, r.stderr
    assert b"pages touched: 8\n" in r.stdout and b"bss zero: yes\n" in r.stdout

    dz = [f for f in r.by("demand-zero") if f.kind == "bss"]
    assert len(dz) >= n - 1
    for f in dz:
        assert (f.start, f.end) == (bss_start, bss_end)
        assert bss_start <= f.vaddr < bss_end
        assert f.pfn != r.kernel.faults.zero_pfn
    dz_pages = [f.page for f in dz]
    assert len(dz_pages) == len(set(dz_pages)), "a bss page got two fresh frames"
    assert written_bss <= set(dz_pages)

    # Read before write: the first touch of each written page maps the shared zero page,
    # the write then replaces it with a fresh frame (a write to a present read-only page).
    zero_pfn = r.kernel.faults.zero_pfn
    for pg in written_bss:
        seq = [f for f in r.faults if f.page == pg]
        assert [f.outcome for f in seq] == ["zero-page", "demand-zero"], (hex(pg), seq)
        assert seq[0].pfn == zero_pfn and seq[0].access == ACCESS_READ and seq[0].code == PF_U
        assert seq[1].pfn != zero_pfn and seq[1].code == PF_P | PF_W | PF_U
    # Pages of big that are only read (checksum loop) never get a frame of their own.
    only_read = set(range(page_up(big + n * PAGE + PAGE), page_down(big + 256 * PAGE), PAGE))
    assert only_read
    zp = {f.page for f in r.by("zero-page") if f.kind == "bss"}
    assert only_read <= zp
    assert not only_read & set(dz_pages)
    assert r.proc.fault_counts["demand-zero"] >= len(dz)
    assert r.proc.fault_counts["zero-page"] >= len(only_read)


PROGRAMS = {
    # Read an anonymous page, read a second one, then write the first.
    "zeropage": r"""
#include <stdio.h>
#include <sys/mman.h>
int main(void)
{
    volatile unsigned char *p = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    printf("%lx\n", (unsigned long)p);
    fflush(stdout);
    unsigned char a = p[0];        /* read first: the shared zero page */
    unsigned char b = p[4096];     /* another read: the same zero frame */
    p[0] = a + 1;                  /* the write: a fresh zeroed frame */
    return p[0] + b + p[4096];     /* 1 */
}
""",
    # A load from the first non-canonical address above the user half.
    "noncanonical": r"""
#include <stdio.h>
static volatile unsigned char *volatile ptr = (volatile unsigned char *)0x0000800000000000UL;
int main(void)
{
    printf("go\n");
    fflush(stdout);
    return *ptr;
}
""",
    # A one-page mapping 4 MiB below the initial stack, then unbounded recursion.
    "guardgap": r"""
#include <stdio.h>
#include <sys/mman.h>
static volatile int sink;
__attribute__((noinline)) static int recurse(int n)
{
    volatile unsigned char f[512];
    f[0] = n;
    f[511] = n;
    return recurse(n + 1) + f[0] + f[511];
}
int main(void)
{
    unsigned long want = 0x7ffffffff000UL - 128 * 1024 - 4 * 1024 * 1024;
    void *p = mmap((void *)want, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("%lx\n", (unsigned long)p);
    fflush(stdout);
    sink = recurse(0);
    return 1;
}
""",
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """The small programs above, built with gcc -static (skipped without gcc)."""
    return compile_static(PROGRAMS, tmp_path_factory.mktemp("progs"))


def test_read_maps_the_zero_page_and_write_replaces_it(programs):
    r = run(programs["zeropage"])
    assert r.status == 1, r.stderr
    p = int(r.stdout.split()[0], 16)
    zero_pfn = r.kernel.faults.zero_pfn
    first = [f for f in r.faults if f.page == p]
    second = [f for f in r.faults if f.page == p + PAGE]
    assert [f.outcome for f in first] == ["zero-page", "demand-zero"]
    assert first[0].pfn == zero_pfn and first[0].kind == "mmap" and first[0].code == PF_U
    # The zero page is mapped read-only, so the write is a protection fault on a present page.
    assert first[1].code == PF_P | PF_W | PF_U
    assert first[1].pfn not in (0, zero_pfn)
    assert [f.outcome for f in second] == ["zero-page"]
    assert second[0].pfn == zero_pfn
    assert r.kernel.ram.owner[zero_pfn] == Owner.ZERO
    assert r.kernel.ram.refcount[zero_pfn] == 1          # every mapping of it was dropped at exit


# -- stack growth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", ["glibc", "musl"])
def test_recursion_grows_the_stack_downwards(build):
    r = run(sample("recursion", build))
    assert r.status == 0, r.stderr
    assert b"depth reached: 3000\n" in r.stdout
    grow = r.by("stack-grow")
    # 3000 frames of at least 1 KiB each, beyond the 128 KiB set up at exec.
    assert len(grow) >= (3000 * 1024 - STACK_INITIAL) // PAGE
    pages = [f.page for f in grow]
    assert all(pg < STACK_TOP - STACK_INITIAL for pg in pages)
    assert all(pg >= STACK_TOP - 8 * MIB for pg in pages)
    assert all(a > b for a, b in zip(pages, pages[1:])), "stack growth is not strictly downwards"
    for f in grow:
        assert f.kind == "stack"
        assert (f.start, f.end) == (f.page, STACK_TOP)   # the stack region now starts at that page
    assert r.proc.fault_counts["stack-grow"] == len(grow)


def test_stack_overflow_stops_at_the_limit():
    limit = Config().stack_limit
    r = run(sample("stackoverflow"))
    assert r.status == 128 + 11
    assert r.stdout == b"recursing without bound\n"
    last = r.faults[-1]
    assert last.outcome == "segv"
    # The first page the stack may not grow to is the one just below STACK_TOP - limit:
    # the recursion touches every page on its way down.
    assert last.page == STACK_TOP - limit - PAGE
    assert not last.code & PF_P and last.code & PF_U
    grow = r.by("stack-grow")
    assert len(grow) == (limit - STACK_INITIAL) // PAGE
    assert min(f.page for f in grow) == STACK_TOP - limit
    m = re.search(r"user (read|write) to (0x[0-9a-f]+) \(not present, ", r.stderr)
    assert m, r.stderr
    assert page_down(int(m.group(2), 16)) == STACK_TOP - limit - PAGE


def test_stack_overflow_with_a_bigger_limit_goes_deeper():
    small = run(sample("stackoverflow"), stack_limit=8 * MIB)
    big = run(sample("stackoverflow"), stack_limit=16 * MIB)
    assert small.status == big.status == 139
    assert len(big.by("stack-grow")) == (16 * MIB - STACK_INITIAL) // PAGE
    assert len(big.by("stack-grow")) > len(small.by("stack-grow"))
    assert big.faults[-1].outcome == "segv"
    assert big.faults[-1].page == STACK_TOP - 16 * MIB - PAGE
    m = re.search(r"user (read|write) to (0x[0-9a-f]+) \(not present, ", big.stderr)
    assert m, big.stderr
    assert page_down(int(m.group(2), 16)) == STACK_TOP - 16 * MIB - PAGE


def test_stack_growth_stops_at_the_guard_gap(programs):
    r = run(programs["guardgap"])
    assert r.status == 139
    below = int(r.stdout.split()[0], 16)
    assert below == STACK_TOP - STACK_INITIAL - 4 * MIB
    gap = 256 * PAGE                          # Linux's stack_guard_gap
    last = r.faults[-1]
    assert last.outcome == "segv"
    # The stack may reach down to the mapping's end + the gap, not one page further.
    assert last.page == below + PAGE + gap - PAGE
    grow = r.by("stack-grow")
    assert min(f.page for f in grow) == below + PAGE + gap
    assert len(grow) == (STACK_TOP - STACK_INITIAL - (below + PAGE + gap)) // PAGE
    assert "guard gap" in r.stderr


def test_noncanonical_address(programs):
    r = run(programs["noncanonical"])
    assert r.status == 139
    assert r.stdout == b"go\n"
    line = report_line(r)
    assert "non-canonical address 0x800000000000" in line, line
    assert line.startswith("general protection fault"), line
    last = r.faults[-1]
    assert (last.outcome, last.vaddr) == ("segv", 0x8000_0000_0000)
    assert r.kernel.ram.used_frames == r.boot_frames


# -- file-backed pages ---------------------------------------------------------------------------------

@pytest.mark.parametrize("build", ["glibc", "musl"])
def test_text_arrives_by_file_load(build):
    path = sample("hello", build)
    segs, syms, data = elf_info(path)
    (tv, tmem, tfile, toff, _fl), = [s for s in segs if s[4] & P_FLAGS.PF_X]
    with open(path, "rb") as f:
        entry = ELFFile(f).header["e_entry"]
    r = run(path)
    assert (r.status, r.stdout) == (0, b"hello, world\n")
    text = [f for f in r.faults if f.kind == "text"]
    assert text
    assert {f.outcome for f in text} == {"file-load"}
    assert len({f.page for f in text}) == len(text)          # each page loaded once
    first = [f for f in text if f.page == page_down(entry)][0]
    assert first.access == ACCESS_FETCH and first.code == PF_U | PF_I
    # The frame holds the file's bytes for the part of the page the segment covers.
    for f in text:
        lo, hi = max(f.page, tv), min(f.page + PAGE, tv + tfile)
        assert f.frame[lo - f.page:hi - f.page] == data[toff + lo - tv:toff + hi - tv]
    # Nothing is loaded eagerly: only the pages hello runs arrive, not the whole segment.
    npages = (page_up(tv + tmem) - page_down(tv)) // PAGE
    assert len(text) <= npages
    if npages > 16:
        assert len(text) < npages


def test_write_after_mprotect_reuses_the_frame():
    r = run(sample("mmap"))
    assert r.status == 0, r.stderr
    reuse = [f for f in r.by("cow-reuse") if f.kind == "mmap"]
    assert len(reuse) >= 16                    # one per page of the 16-page mapping written again
    for f in reuse:
        assert f.code == PF_P | PF_W | PF_U
        before = [g for g in r.faults[:r.faults.index(f)] if g.page == f.page and g.pfn]
        assert before and before[-1].pfn == f.pfn, "cow-reuse must keep the page's own frame"


def test_out_of_memory_kills_with_sigkill():
    r = run(sample("touch"), ("8",), phys_mem=2 << 20)   # the program fits, its 8 MiB of data does not
    assert r.status == 128 + 9
    assert r.faults[-1].outcome == "oom"
    assert r.proc.fault_counts["oom"] == 1
    assert "out of memory" in r.stderr
    assert r.kernel.ram.used_frames == r.boot_frames


# -- fatal faults and their reports ----------------------------------------------------------------------

HEX = r"(0x[0-9a-f]+)"


def report_line(r: Run) -> str:
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    prefix = "run-elf: pid 1 killed by SIGSEGV: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


def symbol_at(syms: dict, name: str, text: str) -> None:
    """The 'ADDR <name+0xOFF>' in text is consistent with the ELF's symbol."""
    m = re.search(HEX + r" <" + re.escape(name) + r"\+(0x[0-9a-f]+)>", text)
    assert m, text
    assert int(m.group(1), 16) == syms[name] + int(m.group(2), 16)


BUILDS = ["glibc", "musl"]


@pytest.mark.parametrize("build", BUILDS)
def test_nullptr(build):
    path = sample("nullptr", build)
    r = run(path)
    assert r.status == 139
    line = report_line(r)
    assert line.startswith("user read to 0x0 (not present, none) at "), line
    symbol_at(elf_info(path)[1], "main", line)
    assert re.search(r": mov\w* \w+, dword ptr \[\w+\]$", line), line
    last = r.faults[-1]
    assert (last.outcome, last.page, last.code, last.access) == ("segv", 0, PF_U, ACCESS_READ)


@pytest.mark.parametrize("build", BUILDS)
def test_writetext(build):
    path = sample("writetext", build)
    _segs, syms, _data = elf_info(path)
    r = run(path)
    assert r.status == 139
    line = report_line(r)
    # poke() stores to the first byte of main.
    assert line.startswith(f"user write to {syms['main']:#x} (present, read-only, text) at "), line
    assert re.search(r": mov byte ptr \[.*\], 0xc3$", line), line
    last = r.faults[-1]
    assert (last.outcome, last.kind, last.code) == ("segv", "text", PF_P | PF_W | PF_U)
    assert last.page == page_down(syms["main"])


@pytest.mark.parametrize("build", BUILDS)
def test_execstack(build):
    r = run(sample("execstack", build))
    assert r.status == 139
    line = report_line(r)
    m = re.fullmatch(r"user fetch to " + HEX + r" \(present, no-execute, stack\) at " + HEX + r": ret", line)
    assert m, line
    addr, rip = int(m.group(1), 16), int(m.group(2), 16)
    assert addr == rip                                  # a fetch faults at the instruction itself
    assert STACK_TOP - STACK_INITIAL <= addr < STACK_TOP
    last = r.faults[-1]
    assert (last.outcome, last.kind, last.code, last.access) == ("segv", "stack", PF_P | PF_I | PF_U, ACCESS_FETCH)


@pytest.mark.parametrize("build", BUILDS)
def test_kernelread(build):
    path = sample("kernelread", build)
    r = run(path)
    assert r.status == 139
    line = report_line(r)
    assert line.startswith(f"user read to {KERNEL_TEXT:#x} (present, supervisor-only, kernel) at "), line
    symbol_at(elf_info(path)[1], "main", line)
    assert re.search(r"byte ptr \[\w+\]$", line), line
    last = r.faults[-1]
    assert (last.outcome, last.vaddr, last.code) == ("segv", KERNEL_TEXT, PF_P | PF_U)


@pytest.mark.parametrize("build", BUILDS)
def test_mprotectwrite(build):
    path = sample("mprotectwrite", build)
    r = run(path)
    assert r.status == 139
    line = report_line(r)
    m = re.match(r"user write to " + HEX + r" \(present, read-only, mmap\) at " + HEX, line)
    assert m, line
    addr = int(m.group(1), 16)
    assert addr % PAGE == 0                              # p[0] of a fresh mapping
    assert addr < addrspace.MMAP_BASE and addr >= addrspace.MMAP_BASE - 64 * MIB
    symbol_at(elf_info(path)[1], "main", line)
    last = r.faults[-1]
    assert (last.outcome, last.kind, last.page, last.code) == ("segv", "mmap", addr, PF_P | PF_W | PF_U)
    # The page was written before mprotect: it had its own frame, not the zero page.
    earlier = [f for f in r.faults[:-1] if f.page == addr]
    assert earlier and earlier[-1].outcome == "demand-zero"


@pytest.mark.parametrize("build", BUILDS)
def test_privileged(build):
    path = sample("privileged", build)
    r = run(path)
    assert r.status == 139
    line = report_line(r)
    m = re.fullmatch(r"general protection fault at " + HEX + r" <main\+0x[0-9a-f]+>: hlt", line)
    assert m, line
    symbol_at(elf_info(path)[1], "main", line)
    # #GP is not a page fault.
    assert not r.by("segv")
    assert r.proc.fault_counts["segv"] == 0


def test_stderr_of_a_clean_run_is_empty():
    r = run(sample("hello"))
    assert (r.status, r.stderr) == (0, "")


# -- no frame leaks -----------------------------------------------------------------------------------------

LEAK_CASES = [
    ("hello", ()), ("bss", ("16",)), ("recursion", ("500",)), ("mmap", ()), ("readfile", ()),
    ("nullptr", ()), ("writetext", ()), ("execstack", ()), ("kernelread", ()), ("mprotectwrite", ()),
    ("privileged", ()), ("stackoverflow", ()), ("touch", ("2",)),
]


@pytest.mark.parametrize("name, args", LEAK_CASES, ids=[c[0] for c in LEAK_CASES])
def test_every_frame_is_freed_at_exit(name, args):
    r = run(sample(name), args)
    ram = r.kernel.ram
    assert r.faults, "nothing was faulted in"
    assert ram.used_frames == r.boot_frames
    assert ram.frames_by_owner() == r.boot_owners
    assert ram.refcount[r.kernel.faults.zero_pfn] == 1
    assert ram.peak_used > r.boot_frames
    # Every fault the observer saw is counted once in the process's counters.
    assert sum(r.proc.fault_counts.values()) == len(r.faults)
