"""Crash reports, traces, dumps and statistics of 32-bit (i386) programs.

The programs are built here with `gcc -m32 -static` (once for the module) and run under run-elf
with the CLI's options; the x86-64 host runs them natively too, which is the oracle for their
output and exit status. Instructions named in reports and traces are checked against `objdump -d`
of the binary at the reported address; page-table dumps against the i386 address split (SDM vol.
3A 4.3: bits 31..22 index the page directory, 21..12 the page table; 4.4 for PAE: 31..30, 29..21,
20..12); addresses against the ELF file's segments and symbols (pyelftools).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from conftest import USING_RUN_ELF, compile_static, run_elf, run_native
from osmodel.trace import SCHEMA, read_jsonl, validate

pytestmark = pytest.mark.skipif(not USING_RUN_ELF, reason="run-elf's own options and reports")

PAGE = 4096
SPLIT = 0xC000_0000                   # PAGE_OFFSET of Linux's 3G/1G split: the i386 kernel's quarter
SIGSEGV_STATUS = 128 + 11
REPORT = re.compile(r"^run-elf: pid 1 killed by SIGSEGV: (?P<what>.*) at (?P<rip>0x[0-9a-f]+) <(?P<sym>[^>]+)>: "
                    r"(?P<insn>.+)$", re.M)
PT_LINE = re.compile(r"^(?P<indent>(?: \.\.)+)(?P<level>[A-Z0-9]+)\[(?P<idx>\d+)\] va (?P<va>0x[0-9a-f]+) "
                     r"pte (?P<pte>0x[0-9a-f]+) \[(?P<flags>[^\]]*)\] frame (?P<frame>0x[0-9a-f]+)$")

SOURCES = {
    # Reads (or with "write", writes) one byte at the address given: a null or kernel access.
    "poke": r"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        int main(int argc, char **argv) {
            volatile unsigned char *p = (volatile unsigned char *)strtoul(argv[1], 0, 0);
            puts("poking");
            fflush(stdout);
            if (argc > 2 && strcmp(argv[2], "write") == 0) {
                *p = 1;
                return 0;
            }
            return *p;
        }
    """,
    # A privileged instruction at CPL 3: #GP, which Linux turns into SIGSEGV.
    "priv": r"""
        #include <string.h>
        int main(int argc, char **argv) {
            if (strcmp(argv[1], "hlt") == 0)
                __asm__ volatile("hlt");
            if (strcmp(argv[1], "in") == 0)
                __asm__ volatile("inb %%dx, %%al" ::: "eax", "edx");
            return 0;
        }
    """,
    # bss pages written by the program, one page the kernel fills (uname's copy-out), a 2 MiB malloc.
    "touch": r"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/utsname.h>
        #define PAGES 40
        static char big[PAGES * 4096];
        static char pad[3 * 4096];
        int main(void) {
            for (int i = 0; i < PAGES; i++)
                big[i * 4096 + (i * 37) % 4096] = (char)i;
            struct utsname *u = (struct utsname *)(((unsigned long)pad + 4095) & ~4095UL);
            if (uname(u) != 0)
                return 1;
            char *m = malloc(2 << 20);
            memset(m, 7, 2 << 20);
            printf("uname %#lx %s %d\n", (unsigned long)u, u->sysname, m[12345] + big[5 * 4096 + 185]);
            return 0;
        }
    """,
    # A load through %gs, the i386 TLS segment: the fault's address is the segment base plus the offset.
    "gsload": r"""
        #include <stdio.h>
        int main(void) {
            unsigned long self, x;
            __asm__ volatile("movl %%gs:0, %0" : "=r"(self));     /* the TCB points to itself */
            printf("tcb %#lx\n", self);
            fflush(stdout);
            __asm__ volatile("movl %%gs:0x10000000, %0" : "=r"(x));
            return (int)x;
        }
    """,
    # A SIGSEGV handler prints si_addr: the exact address of a read 3 bytes past the pointer given.
    "siaddr": r"""
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        static void on_segv(int sig, siginfo_t *si, void *uc) {
            char buf[64];
            int n = snprintf(buf, sizeof buf, "si_addr %#lx\n", (unsigned long)si->si_addr);
            write(1, buf, n);
            _exit(3);
        }
        int main(int argc, char **argv) {
            struct sigaction sa = {0};
            sa.sa_sigaction = on_segv;
            sa.sa_flags = SA_SIGINFO;
            sigaction(SIGSEGV, &sa, 0);
            volatile unsigned char *p = (volatile unsigned char *)strtoul(argv[1], 0, 0);
            return p[3];
        }
    """,
    # Its own /proc/self/maps, as the guest reads it.
    "maps": r"""
        #include <fcntl.h>
        #include <unistd.h>
        int main(void) {
            char buf[16384];
            int fd = open("/proc/self/maps", O_RDONLY), n;
            while ((n = read(fd, buf, sizeof buf)) > 0)
                write(1, buf, n);
            return 0;
        }
    """,
}


@pytest.fixture(scope="module")
def progs(tmp_path_factory) -> dict[str, str]:
    """The programs of SOURCES built with gcc -m32 -static -O1 (the module is skipped without a 32-bit toolchain)."""
    return compile_static(SOURCES, tmp_path_factory.mktemp("i386"), flags=("-m32",))


def need_objdump() -> str:
    tool = shutil.which("objdump")
    if tool is None:
        pytest.skip("objdump (binutils) is needed to check the disassembly")
    return tool


def normalise(insn: str) -> str:
    """An Intel-syntax instruction in one spelling (objdump's and capstone's differ in details): lower case, no
    blanks, hex numbers as decimal, segment:offset as segment:[offset], no default ds: segment, no operand
    size (objdump omits it where a register implies it), no '*1' scale or '+0' displacement, string
    instructions without their size suffix."""
    text = re.sub(r"\b(movs|stos|lods|scas|cmps)[bwdq]\b", r"\1", insn.lower())
    text = re.sub(r"\b([c-gs]s):(0x[0-9a-f]+|\d+)\b", r"\1:[\2]", text)
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"0x[0-9a-f]+", lambda m: str(int(m.group(0), 16)), text)
    text = re.sub(r"(?:byte|dword|qword|xmmword|tbyte|word)ptr", "", text.replace("ds:", ""))
    text = re.sub(r"\*1(?=[]+-])", "", text)
    return text.replace("+0]", "]")


def objdump_insn(path: str, addr: int) -> str:
    """The instruction objdump decodes at addr in the i386 binary at path (Intel syntax)."""
    out = subprocess.run([need_objdump(), "-d", "-M", "intel", f"--start-address={addr:#x}",
                          f"--stop-address={addr + 16:#x}", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\t(?:[0-9a-f]{2} )+\s*\t(.+)$", line)
        if m and int(m.group(1), 16) == addr:
            insn = re.sub(r"\s*<[^>]*>", "", m.group(2).split("#")[0]).strip()
            return re.sub(r"^(j\w+|call|loop\w*)\s+([0-9a-f]+)$", r"\1 0x\2", insn)   # a branch target
    raise AssertionError(f"objdump shows no instruction at {addr:#x}")


def symbols(path: str) -> dict[str, int]:
    with open(path, "rb") as f:
        return {s.name: s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols() if s.name}


def segments(path: str) -> list[tuple[int, int, int]]:
    """(start, end, p_flags) of each PT_LOAD segment."""
    with open(path, "rb") as f:
        return [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"], s["p_flags"]) for s in ELFFile(f).iter_segments()
                if s["p_type"] == "PT_LOAD"]


def section(path: str, name: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return sec["sh_addr"], sec["sh_addr"] + sec["sh_size"]


def crash(path: str, *args: str) -> re.Match:
    """Run the program natively and under run-elf: same output and SIGSEGV status; run-elf's report line."""
    native = run_native([path, *args])
    ours = run_elf([path, *args])
    assert native.status == SIGSEGV_STATUS
    assert (ours.stdout, ours.status) == (native.stdout, native.status)
    m = REPORT.search(ours.stderr.decode())
    assert m, ours.stderr
    return m


def check_instruction(path: str, m: re.Match) -> int:
    """The report's instruction is objdump's at its rip, and rip is its symbol plus offset; rip."""
    rip = int(m["rip"], 16)
    name, _, offset = m["sym"].rpartition("+")
    assert symbols(path)[name] + int(offset, 16) == rip
    assert normalise(m["insn"]) == normalise(objdump_insn(path, rip))
    return rip


# -- crash reports ----------------------------------------------------------------------------------

def test_null_pointer_write_is_reported_with_the_32_bit_instruction(progs):
    m = crash(progs["poke"], "0", "write")
    assert m["what"] == "user write to 0x0 (not present, none)"
    check_instruction(progs["poke"], m)
    assert m["sym"].startswith("main+")
    assert re.fullmatch(r"mov byte ptr \[e[a-z]{2}\], 1", m["insn"]), "a byte store through a 32-bit register"


@pytest.mark.parametrize("address", [SPLIT, SPLIT + 0x1235])
def test_kernel_read_is_a_protection_fault_that_names_the_split(progs, address):
    m = crash(progs["poke"], hex(address))
    assert m["what"] == (f"user read to {address:#x} (present, supervisor-only, "
                         f"kernel: above the 3G/1G split at {SPLIT:#x})")
    check_instruction(progs["poke"], m)
    assert m["insn"].startswith("movzx e") and "[e" in m["insn"], "a 32-bit register addresses the byte"


def test_kernel_write_names_the_split_too(progs):
    m = crash(progs["poke"], hex(SPLIT + 8), "write")
    assert m["what"] == f"user write to {SPLIT + 8:#x} (present, supervisor-only, kernel: above the 3G/1G split at {SPLIT:#x})"
    check_instruction(progs["poke"], m)


def test_fault_through_the_tls_segment_adds_the_gs_base(progs):
    ours = run_elf([progs["gsload"]])
    assert ours.status == run_native([progs["gsload"]]).status == SIGSEGV_STATUS
    tcb = int(ours.stdout.split()[1], 16)
    m = REPORT.search(ours.stderr.decode())
    assert m, ours.stderr
    assert m["what"].startswith(f"user read to {tcb + 0x1000_0000:#x} (not present, none")
    assert re.fullmatch(r"mov e[a-z]{2}, dword ptr gs:\[0x10000000\]", m["insn"])
    check_instruction(progs["gsload"], m)


@pytest.mark.parametrize("address", [0x10, SPLIT + 0x10])
def test_si_addr_is_the_exact_address_as_natively(progs, address):
    native = run_native([progs["siaddr"], hex(address)])
    ours = run_elf([progs["siaddr"], hex(address)])
    assert native.stdout == f"si_addr {address + 3:#x}\n".encode() and native.status == 3
    assert (ours.stdout, ours.status) == (native.stdout, native.status)


@pytest.mark.parametrize("which, mnemonic", [("hlt", "hlt"), ("in", "in al, dx")])
def test_privileged_instruction_is_a_general_protection_fault(progs, which, mnemonic):
    native = run_native([progs["priv"], which])
    ours = run_elf([progs["priv"], which])
    assert native.status == ours.status == SIGSEGV_STATUS
    text = ours.stderr.decode()
    m = re.search(r"^run-elf: pid 1 killed by SIGSEGV: general protection fault at (?P<rip>0x[0-9a-f]+) "
                  r"<(?P<sym>[^>]+)>: (?P<insn>.+)$", text, re.M)
    assert m, text
    assert m["insn"] == mnemonic
    check_instruction(progs["priv"], m)


# -- traces -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def touch_run(progs, tmp_path_factory):
    """touch under --trace-faults and --trace-tlb (one file each) and --dump-pagetable, and natively."""
    out = tmp_path_factory.mktemp("touch")
    faults, tlb = out / "faults.jsonl", out / "tlb.jsonl"
    ours = run_elf([progs["touch"]], "--trace-faults", str(faults), "--trace-tlb", str(tlb), "--dump-pagetable",
                   "--stats")
    native = run_native([progs["touch"]])
    assert native.status == 0
    assert (ours.stdout, ours.status) == (native.stdout, native.status)
    return ours, list(read_jsonl(str(faults))), list(read_jsonl(str(tlb)))


def test_trace_records_are_valid_and_32_bit(touch_run):
    _, faults, tlb = touch_run
    assert faults and tlb
    for rec in faults + tlb:
        assert validate(rec, SCHEMA) == [], rec
    # What the process touched is 32-bit; only the 64-bit kernel's own pages (its task record in the
    # direct map, invalidated globally at exit) lie above 4 GiB.
    for rec in faults + [r for r in tlb if r["event"] in ("miss", "fill", "evict", "walk")]:
        for key in ("rip", "address", "page"):
            if rec.get(key) is not None:
                assert int(rec[key], 16) < 1 << 32, rec
    high = [r for r in tlb if r["page"] is not None and int(r["page"], 16) >= 1 << 32]
    assert all(r["event"] == "invalidate" and r["asid"] is None for r in high), high
    assert all(r["type"] == "fault" for r in faults) and all(r["type"] == "tlb" for r in tlb)


def test_user_faults_have_regions_and_instructions_of_the_i386_binary(progs, touch_run):
    path = progs["touch"]
    _, faults, _ = touch_run
    segs = segments(path)
    text = [(a, b) for a, b, fl in segs if fl & P_FLAGS.PF_X]
    bss = section(path, ".bss")
    user = [r for r in faults if r["mode"] == "user"]
    fetches = [r for r in user if r["access"] == "fetch"]
    assert fetches
    for r in fetches:
        addr = int(r["address"], 16)
        assert r["region"] == "text" and r["address"] == r["rip"]
        assert any(a <= addr < b for a, b in text)
    big = symbols(path)["big"]
    writes = [r for r in user if r["region"] == "bss" and big <= int(r["address"], 16) < big + 40 * PAGE]
    # touch.c writes big[i * 4096 + (i * 37) % 4096]: the exact address of each first write to a page.
    expected = {page: big + i * PAGE + (i * 37) % PAGE for i in range(40)
                for page in [(big + i * PAGE + (i * 37) % PAGE) & ~(PAGE - 1)]}
    for r in writes:
        addr = int(r["address"], 16)
        assert bss[0] <= addr < bss[1]
        if r["outcome"] == "demand-zero":
            assert addr == expected[addr & ~(PAGE - 1)]
    assert sum(r["outcome"] == "demand-zero" for r in writes) >= 38
    for r in user:
        if r["instruction"]:
            assert normalise(r["instruction"]) == normalise(objdump_insn(path, int(r["rip"], 16))), r
    stack = [r for r in user if r["region"] == "stack"]
    assert stack and all(SPLIT - (8 << 20) <= int(r["address"], 16) < SPLIT for r in stack)
    heap_or_mmap = {r["region"] for r in user if int(r["address"], 16) > bss[1]} - {"stack"}
    assert heap_or_mmap & {"heap", "mmap"}


def test_a_fault_inside_int_0x80_names_the_system_call_instruction(progs, touch_run):
    ours, faults, _ = touch_run
    uname_at = int(ours.stdout.split()[1], 16)          # the page touch.c gave uname() to fill
    kernel = [r for r in faults if r["mode"] == "kernel" and r["address"] == f"{uname_at:#x}"]
    assert len(kernel) == 1
    r = kernel[0]
    assert r["access"] == "write" and r["region"] == "bss" and r["outcome"] == "demand-zero"
    assert r["instruction"] == "int 0x80" and r["error"] == "supervisor write, not present"
    rip = int(r["rip"], 16)
    assert normalise(objdump_insn(progs["touch"], rip)) == "int128"
    assert r["symbol"]


def test_tlb_trace_has_32_bit_pages_and_a_supervisor_only_kernel_quarter(touch_run):
    _, faults, tlb = touch_run
    fills = [r for r in tlb if r["event"] == "fill"]
    assert fills
    for r in fills:
        page = int(r["page"], 16)
        assert page < 1 << 32 and page % PAGE == 0
        assert r["perms"].endswith("s") == (page >= SPLIT), r
        if page >= SPLIT:
            assert r["global"] is True
    walks = [r for r in tlb if r["event"] == "walk"]
    assert walks and max(r["levels"] for r in walks) <= 2, "i386 paging has two levels"
    assert "NX" not in {f for r in fills for f in r["flags"].split()}, "no NX bit without PAE"


def test_kernel_access_in_the_trace_is_a_segv_in_the_kernel_region(progs, tmp_path):
    trace = tmp_path / "faults.jsonl"
    address = SPLIT + 0x40
    ours = run_elf([progs["poke"], hex(address)], "--trace-faults", str(trace))
    assert ours.status == SIGSEGV_STATUS
    refused = [r for r in read_jsonl(str(trace)) if r["type"] == "fault" and r["outcome"] == "segv"]
    assert len(refused) == 1
    r = refused[0]
    assert (r["address"], r["page"], r["region"], r["mode"], r["access"]) == (f"{address:#x}", f"{SPLIT:#x}",
                                                                             "kernel", "user", "read")
    assert r["error_code"] == 0b101 and r["reason"] == f"kernel: above the 3G/1G split at {SPLIT:#x}"
    assert normalise(r["instruction"]) == normalise(objdump_insn(progs["poke"], int(r["rip"], 16)))


# -- dumps ------------------------------------------------------------------------------------------

def tree(text: str, title: str) -> list[dict]:
    """The entries of the page-table dump that follows the line containing `title`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    assert lines[start + 1].startswith("page table 0x")
    entries = []
    for line in lines[start + 2:]:
        m = PT_LINE.match(line)
        if not m:
            break
        entries.append({"depth": len(m["indent"]) // 3, "level": m["level"], "idx": int(m["idx"]),
                        "va": int(m["va"], 16), "pte": m["pte"], "flags": m["flags"].split(),
                        "frame": int(m["frame"], 16)})
    assert entries
    return entries


def test_pagetable_dump_is_a_two_level_tree_of_1024_entry_tables(progs, touch_run):
    ours, faults, _ = touch_run
    text = ours.stderr.decode()
    assert "run-elf: i386 page table (PD, PT) of pid 1 (touch) at exit (exit status 0):" in text
    entries = tree(text, "page table (PD, PT) of pid 1")
    parent = None
    for e in entries:
        assert len(e["pte"]) == 2 + 8, "4-byte entries: 8 hex digits"
        assert "NX" not in e["flags"]
        if e["level"] == "PD":
            assert e["depth"] == 1 and e["idx"] == e["va"] >> 22 and e["va"] % (4 << 20) == 0
            assert e["va"] < SPLIT, "the kernel quarter is not in a user dump"
            parent = e
        else:
            assert e["level"] == "PT" and e["depth"] == 2
            assert e["idx"] == (e["va"] >> 12) & 0x3FF and e["va"] >> 22 == parent["idx"]
            assert int(e["pte"], 16) & 0xFFFF_F000 == e["frame"] << 12
    assert max(e["idx"] for e in entries) > 511, "indexes beyond 511: 1024-entry tables"
    # Every page the program wrote in big is in the tree, mapped to the frame the trace says it got.
    mapped = {e["va"]: e for e in entries if e["level"] == "PT"}
    big = symbols(progs["touch"])["big"]
    dz = [r for r in faults if r["outcome"] == "demand-zero" and big <= int(r["address"], 16) < big + 40 * PAGE]
    assert len(dz) >= 38
    for r in dz:
        e = mapped[int(r["page"], 16)]
        assert e["frame"] == r["pfn"] and {"P", "W", "U", "D"} <= set(e["flags"])


def test_pae_dump_has_a_pdpt_above_512_entry_tables(progs):
    ours = run_elf([progs["touch"]], "--paging", "pae", "--dump-pagetable")
    native = run_native([progs["touch"]])
    assert (ours.stdout, ours.status) == (native.stdout, native.status)
    text = ours.stderr.decode()
    assert "run-elf: i386-pae page table (PDPT, PD, PT) of pid 1 (touch) at exit (exit status 0):" in text
    entries = tree(text, "page table (PDPT, PD, PT) of pid 1")
    shifts = {"PDPT": (30, 3), "PD": (21, 0x1FF), "PT": (12, 0x1FF)}
    depth = {"PDPT": 1, "PD": 2, "PT": 3}
    for e in entries:
        shift, mask = shifts[e["level"]]
        assert e["depth"] == depth[e["level"]] and e["idx"] == (e["va"] >> shift) & mask
        assert len(e["pte"]) == 2 + 16, "8-byte entries: 16 hex digits"
        if e["level"] == "PDPT":
            assert e["flags"] == ["P"], "a PDPTE has only P"
    assert {e["level"] for e in entries} == {"PDPT", "PD", "PT"}
    assert {e["idx"] for e in entries if e["level"] == "PDPT"} == {0, 2}, "text/data/heap below 1 GiB, stack below 3"
    text_segs = [(a, b) for a, b, fl in segments(progs["touch"]) if fl & P_FLAGS.PF_X]
    data_segs = [(a, b) for a, b, fl in segments(progs["touch"]) if fl & P_FLAGS.PF_W]
    pts = [e for e in entries if e["level"] == "PT"]
    for e in pts:
        if any(a <= e["va"] < b for a, b in text_segs):
            assert "NX" not in e["flags"]
        if any(a <= e["va"] and e["va"] + PAGE <= b for a, b in data_segs):
            assert "NX" in e["flags"]
    assert any("NX" in e["flags"] for e in pts) and any("NX" not in e["flags"] for e in pts)


def test_maps_of_a_32_bit_guest_are_linux_s(progs):
    """/proc/self/maps read by the guest and --dump-maps: Linux's lines for the executable's segments."""
    native = run_native([progs["maps"]])
    ours = run_elf([progs["maps"]], "--dump-maps")
    assert native.status == ours.status == 0

    def file_lines(text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            if line.endswith(progs["maps"]):
                addr, perms, offset, _dev, _inode, name = line.split()
                out.append(f"{addr} {perms} {offset} {name}")
        return out

    assert file_lines(ours.stdout.decode()) == file_lines(native.stdout.decode()) != []
    dump = ours.stderr.decode()
    assert "run-elf: maps of pid 1 (maps) at exit (exit status 0):" in dump
    lines = dump.split("at exit (exit status 0):\n", 1)[1].splitlines()
    assert file_lines("\n".join(lines)) == file_lines(native.stdout.decode())
    for line in lines:
        if not re.match(r"^[0-9a-f]+-", line):
            break
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{8} ", line) and end <= SPLIT
    assert any(line.endswith("[stack]") and line.startswith("bf") and "-c0000000 " in line for line in lines)


def test_stats_name_the_paging_format(progs, touch_run):
    ours, _, _ = touch_run
    assert "  32-bit (i386) process: i386 paging (PD, PT), user space below 0xc0000000\n" in ours.stderr.decode()
    pae = run_elf([progs["touch"]], "--paging", "pae", "--stats")
    assert "  32-bit (i386) process: i386-pae paging (PDPT, PD, PT), user space below 0xc0000000\n" in \
        pae.stderr.decode()


def test_html_report_of_a_32_bit_trace(progs, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is needed for the HTML report")
    trace = tmp_path / "poke.jsonl"
    ours = run_elf([progs["poke"], hex(SPLIT)], "--trace-faults", str(trace), "--trace-tlb", str(trace))
    assert ours.status == SIGSEGV_STATUS
    out = tmp_path / "report.html"
    made = run_elf(["report", str(trace), "-o", str(out)])
    assert made.status == 0, made.stderr
    page = out.read_text()
    assert "<td class=\"l\">kernel</td>" in page
    # The address map gives the kernel quarter a band of its own, starting at the split.
    assert re.search(r">kernel</text>", page) and f">{SPLIT:#x}</text>" in page
