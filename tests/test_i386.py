"""Groundwork for 32-bit programs: i386 ELF files in the loader, the 32-bit initial stack, and i386
page tables (two levels of 4-byte entries; PAE's three levels of 8-byte entries) in PageTable and
the MMU walk.

Real i386 executables are built with `gcc -m32 -static` and `gcc -m32 -static-pie` (Debian's
gcc-multilib) and run natively (an x86-64 Linux host runs i386 programs), so that what the loader
and build_stack compute is checked against what Linux did. Without a 32-bit toolchain those tests
are skipped. Malformed ELF32 files are hand-built with struct.pack.

Page-table expectations come from the Intel SDM vol. 3A, 4.3 (32-bit paging) and 4.4 (PAE
paging), computed here by hand, never by calling the helper being tested.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass

import pytest
from conftest import decode_stack, run_elf, run_native, sample_env, stack_cstring

from loader.elf import (DEFAULT_PIE_BASE, DEFAULT_PIE_BASE_32, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE,
                        Image, LoadError, load_image)
from loader.stack import (AT_BASE, AT_EGID, AT_ENTRY, AT_EUID, AT_EXECFN, AT_GID, AT_HWCAP, AT_HWCAP2,
                          AT_MINSIGSTKSZ, AT_NULL, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM,
                          AT_RANDOM, AT_UID, Credentials, build_stack)
from loader.symbols import Symbols
from osmodel.kernel import Config, Kernel
from vm import pagetable as ptm
from vm.mmu import (ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, PF_INSTR, PF_PRESENT, PF_USER, PF_WRITE, Mmu,
                    PageFault, is_kernel_address)
from vm.pagetable import FORMATS, I386, I386_PAE, X86_64, PageTable, PagingFormat
from vm.ram import Owner, PhysicalMemory

KERNEL_32 = 0xC000_0000          # PAGE_OFFSET of the 3G/1G split
AT_SYSINFO, AT_SYSINFO_EHDR = 32, 33

# --- compiling i386 programs ----------------------------------------------------------------

LAYOUT_C = r"""
#include <stdio.h>
#include <sys/auxv.h>
int init[1000] = {1, 2, 3};          /* 4000 bytes of .data: the file ends mid-page */
char zero[1 << 20];                   /* a big .bss after it */
int main(void) {
    zero[5] = (char)init[1];
    printf("%lx %lx %lx %lx %lx %lx %lx\n", getauxval(AT_PHDR), getauxval(AT_PHNUM), getauxval(AT_ENTRY),
           (unsigned long)init, (unsigned long)zero, (unsigned long)main, getauxval(AT_PHENT));
    return 0;
}
"""

# The 32-bit initial stack as the program finds it: sp, the auxv types, and the string area
# [argv[0], top), where top is just above the execfn string and the 8-byte end marker.
STACK_C = r"""
#include <stdio.h>
#include <string.h>
#include <elf.h>
int main(int argc, char **argv, char **envp) {
    char **e = envp;
    while (*e) e++;
    Elf32_auxv_t *aux = (Elf32_auxv_t *)(e + 1), *a;
    unsigned long execfn = 0, platform = 0, rnd = 0;
    printf("sp %lx\n", (unsigned long)(argv - 1));
    printf("ptrsize %u\n", (unsigned)sizeof(char *));
    printf("types");
    for (a = aux; a->a_type != AT_NULL; a++) {
        printf(" %lu", (unsigned long)a->a_type);
        if (a->a_type == AT_EXECFN) execfn = a->a_un.a_val;
        if (a->a_type == AT_PLATFORM) platform = a->a_un.a_val;
        if (a->a_type == AT_RANDOM) rnd = a->a_un.a_val;
    }
    printf("\nplatform %lx\nrandom %lx\n", platform, rnd);
    printf("platform_string %s\n", (char *)platform);
    unsigned long top = execfn + strlen((char *)execfn) + 1 + 8;
    printf("argv0 %lx\ntop %lx\nbytes ", (unsigned long)argv[0], top);
    for (unsigned char *p = (unsigned char *)argv[0]; p < (unsigned char *)top; p++) printf("%02x", *p);
    printf("\n");
    return 0;
}
"""


@pytest.fixture(scope="session")
def gcc32(tmp_path_factory):
    """gcc32(flags, source) -> path of an i386 executable built by `gcc -m32 FLAGS` (cached; skips if impossible)."""
    out_dir = tmp_path_factory.mktemp("bin32")
    cache: dict[tuple, str] = {}

    def build(flags: tuple[str, ...], source: str) -> str:
        key = (flags, source)
        if key in cache:
            return cache[key]
        if shutil.which("gcc") is None:
            pytest.skip("gcc is not installed")
        n = len(cache)
        src, exe = out_dir / f"p{n}.c", out_dir / f"p{n}"
        src.write_text(source)
        r = subprocess.run(["gcc", "-m32", *flags, "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"`gcc -m32 {' '.join(flags)}` cannot build an i386 program (install gcc-multilib): "
                        f"{r.stderr.strip()[:200]}")
        cache[key] = str(exe)
        return str(exe)

    return build


STATIC = ("-static",)
STATIC_PIE = ("-static-pie",)
BOTH = [STATIC, STATIC_PIE]


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """stdout of running argv natively (which must succeed; an i386 program needs IA32 emulation in the host kernel)."""
    try:
        r = subprocess.run(argv, env=env if env is not None else {}, capture_output=True, text=True, timeout=20)
    except OSError as e:
        pytest.skip(f"this host cannot run i386 programs natively: {e}")
    assert r.returncode == 0, r.stderr
    return r.stdout


def segment_of(image: Image, addr: int):
    """The segment containing addr (fails the test if none)."""
    hits = [s for s in image.segments if s.start <= addr < s.end]
    assert len(hits) == 1, f"{addr:#x} in {len(hits)} segments"
    return hits[0]


# --- loading real i386 executables ------------------------------------------------------------

@pytest.mark.parametrize("flags", BOTH, ids=" ".join)
def test_i386_segments(gcc32, flags):
    image = load_image(gcc32(flags, LAYOUT_C))
    assert (image.bits, image.machine, image.phent) == (32, "i386", 32)
    assert image.elf_type == ("ET_EXEC" if flags == STATIC else "ET_DYN")
    assert image.segments == sorted(image.segments, key=lambda s: s.start)
    kinds = {"text": 0, "rodata": 0, "data": 0}
    for s in image.segments:
        assert s.start % PAGE_SIZE == 0 and s.end % PAGE_SIZE == 0 and s.start < s.end
        assert s.offset % PAGE_SIZE == 0 and s.start <= s.file_start <= s.file_end <= s.end
        assert 0x10000 <= s.start and s.end <= KERNEL_32
        assert s.prot & PROT_READ
        kind = "text" if s.prot & PROT_EXEC else "data" if s.prot & PROT_WRITE else "rodata"
        assert s.kind == kind
        kinds[kind] += 1
    assert kinds["text"] >= 1 and kinds["data"] == 1
    assert image.brk_start == max(s.end for s in image.segments)
    assert image.interp is None and image.stack_exec is False
    assert segment_of(image, image.entry).kind == "text"
    assert image.tls is not None and segment_of(image, image.tls.vaddr).kind == "data"


def test_i386_exec_matches_what_linux_did(gcc32):
    path = gcc32(STATIC, LAYOUT_C)
    image = load_image(path)
    assert image.load_bias == 0
    phdr, phnum, entry, init, zero, main, phent = (int(x, 16) for x in run([path]).split())
    assert (image.phdr, image.phnum, image.entry, image.phent) == (phdr, phnum, entry, phent)
    assert 0x0804_8000 <= image.segments[0].start            # the traditional i386 link address
    data = segment_of(image, init)
    assert data.kind == "data" and data.file_start <= init and init + 4000 <= data.file_end
    assert segment_of(image, zero) is data and zero + (1 << 20) <= data.end
    assert image.read(data.offset + (init - data.start), 12) == struct.pack("<3i", 1, 2, 3)
    assert Symbols(path).address_of("main") == main


def test_i386_static_pie_loads_at_the_i386_base(gcc32):
    path = gcc32(STATIC_PIE, LAYOUT_C)
    image = load_image(path)
    assert DEFAULT_PIE_BASE_32 == 0x5655_5000
    assert image.load_bias == DEFAULT_PIE_BASE_32 == image.segments[0].start   # gcc links static-PIE at 0
    phdr, phnum, entry, init, zero, main, phent = (int(x, 16) for x in run([path]).split())
    native_base = phdr - (image.phdr - image.load_bias)      # where Linux put it
    assert native_base % PAGE_SIZE == 0
    assert (image.phnum, image.phent) == (phnum, phent)
    assert image.entry - image.load_bias == entry - native_base
    assert segment_of(image, init - native_base + image.load_bias).kind == "data"
    assert Symbols(path, image.load_bias).address_of("main") - image.load_bias == main - native_base
    # An explicit base still wins; the 64-bit default is not used for a 32-bit file.
    other = load_image(path, base=0x1000_0000)
    assert other.load_bias == 0x1000_0000 and other.entry == image.entry - DEFAULT_PIE_BASE_32 + 0x1000_0000
    assert load_image(path, base=None).load_bias == DEFAULT_PIE_BASE_32 != DEFAULT_PIE_BASE
    with pytest.raises(LoadError, match=r"reaches the kernel \(above 0xc0000000\)"):
        load_image(path, base=0xBFF0_0000)
    with pytest.raises(LoadError, match=r"reaches the kernel"):
        load_image(path, base=DEFAULT_PIE_BASE)               # the 64-bit base is far beyond 4 GiB


# --- the 32-bit initial stack --------------------------------------------------------------------

TOP = 0xBFFF_F000
RANDOM = bytes(range(0xa0, 0xb0))
CREDS = Credentials(uid=1000, euid=1001, gid=100, egid=101)


@pytest.fixture
def image32(tmp_path) -> Image:
    """A hand-made i386 ET_EXEC (so these tests need no 32-bit toolchain; the native comparison below does)."""
    path = tmp_path / "image32"
    path.write_bytes(make_elf32())
    image = load_image(str(path))
    assert image.bits == 32
    return image


def build32(image, argv=(b"prog", b"-x", b"hello world"), envp=(b"HOME=/root", b"A="), top=TOP, **kw):
    kw.setdefault("execfn", b"/usr/bin/prog")
    return build_stack(image, top, list(argv), list(envp), RANDOM, CREDS, hwcap=0x178bfbff, **kw)


def test_32bit_stack_decodes_as_4_byte_words(image32):
    st = build32(image32)
    argc, argv, envp, auxv, table_end = decode_stack(st, 4)
    assert (argc, argv, envp) == (3, [b"prog", b"-x", b"hello world"], [b"HOME=/root", b"A="])
    assert auxv == st.auxv
    assert table_end == st.sp + 4 * (1 + 4 + 3 + 2 * len(auxv))
    assert st.sp % 16 == 0 and st.top == TOP and st.data[-8:] == bytes(8)
    aux = dict(auxv)
    assert aux[AT_PHDR] == image32.phdr and aux[AT_PHNUM] == image32.phnum and aux[AT_PHENT] == 32
    assert aux[AT_ENTRY] == image32.entry and aux[AT_BASE] == 0 and aux[AT_PAGESZ] == 4096
    assert (aux[AT_UID], aux[AT_EUID], aux[AT_GID], aux[AT_EGID]) == (1000, 1001, 100, 101)
    assert aux[AT_HWCAP] == 0x178bfbff and aux[AT_HWCAP2] == 0
    assert AT_SYSINFO not in aux and AT_SYSINFO_EHDR not in aux      # no vDSO: glibc uses int 0x80
    rnd = aux[AT_RANDOM]
    assert st.sp < rnd and rnd + 16 <= st.top
    assert st.data[rnd - st.sp:rnd - st.sp + 16] == RANDOM
    assert stack_cstring(st, aux[AT_PLATFORM]) == b"i686"
    assert stack_cstring(st, aux[AT_EXECFN]) == b"/usr/bin/prog"
    assert [stack_cstring(st, a) for a in st.argv_addrs] == argv
    # The same auxv entries in the same order as a 64-bit image gets.
    assert [t for t, _ in auxv] == [16, 6, 17, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 23, 25, 26, 31, 15, 0]


def test_32bit_stack_layout_from_the_top(image32):
    st = build32(image32)
    execfn = dict(st.auxv)[AT_EXECFN]
    assert execfn + len(b"/usr/bin/prog") + 1 == TOP - 8          # the 8-byte end marker, as on a 64-bit kernel
    assert st.envp_addrs[-1] + len(b"A=") + 1 == execfn
    assert st.argv_addrs[-1] + len(b"hello world") + 1 == st.envp_addrs[0]
    platform = dict(st.auxv)[AT_PLATFORM]
    assert platform + 5 == st.argv_addrs[0] & ~15                 # arch_align_stack, then "i686\0"
    assert dict(st.auxv)[AT_RANDOM] == platform - 16
    table_end = st.sp + 4 * (1 + 4 + 3 + 2 * len(st.auxv))
    assert table_end <= platform - 16 < table_end + 16            # STACK_ROUND with 4-byte items


@pytest.mark.parametrize("nargs", range(6))
@pytest.mark.parametrize("nenv", range(3))
def test_32bit_sp_is_aligned_for_any_count(image32, nargs, nenv):
    argv = [b"a" * (i + 1) for i in range(nargs)]
    st = build32(image32, argv=argv, envp=[b"E%d=1" % i for i in range(nenv)], minsigstksz=0x6c0)
    argc, got_argv, got_envp, auxv, _ = decode_stack(st, 4)
    assert st.sp % 16 == 0
    assert (argc, got_argv) == ((nargs, argv) if nargs else (1, [b""]))
    assert len(got_envp) == nenv
    assert auxv[0] == (AT_MINSIGSTKSZ, 0x6c0)


def test_32bit_stack_platform_and_limits(image32):
    st = build32(image32, platform=b"")
    assert AT_PLATFORM not in dict(st.auxv)
    st = build32(image32, platform=b"i386")
    assert stack_cstring(st, dict(st.auxv)[AT_PLATFORM]) == b"i386"
    with pytest.raises(LoadError, match="above 4 GiB"):
        build32(image32, top=0x7fff_ffff_f000)                  # a 32-bit stack must lie below 4 GiB
    build32(image32, top=1 << 32)                               # just fits: the top byte is 0xffffffff
    with pytest.raises(LoadError, match="argument list too long"):
        build32(image32, argv=[b"x" * 100_000] * 25)


def test_32bit_stack_strings_match_linux_byte_for_byte(gcc32):
    """Run an i386 program natively and compare the string area, sp alignment and auxv order with build_stack."""
    path = gcc32(STATIC, STACK_C)
    argv = [path, "one", "", "three four"]
    env = {"A": "1", "LONGER_NAME": "value with spaces"}
    # Without address randomisation (setarch -R) arch_align_stack does not move the stack either.
    norandom = subprocess.run(["setarch", "-R", "true"], capture_output=True).returncode == 0 \
        if shutil.which("setarch") else False
    out = dict(line.split(" ", 1) for line in run((["setarch", "-R"] if norandom else []) + argv, env).splitlines())
    assert out["ptrsize"] == "4"
    top = int(out["top"], 16)
    platform, rnd = int(out["platform"], 16), int(out["random"], 16)
    assert top % PAGE_SIZE == 0                                  # so the end marker was 8 bytes
    assert int(out["sp"], 16) % 16 == 0
    assert out["platform_string"] == "i686"
    assert (platform + 5) % 16 == 0 and rnd == platform - 16

    image = load_image(path)
    st = build_stack(image, top, [a.encode() for a in argv], [f"{k}={v}".encode() for k, v in env.items()],
                     RANDOM, CREDS, execfn=path.encode(), hwcap=0)
    assert st.argv_addrs[0] == int(out["argv0"], 16)
    assert st.data[st.argv_addrs[0] - st.sp:] == bytes.fromhex(out["bytes"])
    if norandom:
        assert dict(st.auxv)[AT_PLATFORM] == platform and dict(st.auxv)[AT_RANDOM] == rnd
    ours = [t for t, _ in st.auxv if t != AT_NULL]
    native = [int(t) for t in out["types"].split()]
    assert [t for t in native if t in ours] == ours


def test_64bit_stack_is_still_64bit():
    hello = load_image("samples/bin/hello")
    assert hello.bits == 64 and hello.machine == "x86_64"
    st = build_stack(hello, 0x7ffffffff000, [b"a"], [], RANDOM, CREDS, b"a", 0)
    assert struct.unpack_from("<QQQ", st.data) == (1, st.argv_addrs[0], 0)
    assert b"x86_64\0" in st.data and b"i686" not in st.data


# --- hand-built ELF32 files ------------------------------------------------------------------------

PT_LOAD, PT_NOTE, PT_INTERP, PT_PHDR, PT_TLS = 1, 4, 3, 6, 7
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
WHOLE = -1
BASE = 0x0804_8000
CODE = b"\x31\xdb\xb8\x01\x00\x00\x00\xcd\x80"     # xor ebx,ebx; mov eax,1; int 0x80


def make_elf32(phdrs=None, *, cls=1, endian=1, e_type=2, machine=3, entry=None, phoff=52, phentsize=32,
               phnum=None, ehsize=52, body=CODE) -> bytes:
    """A minimal ELF32 executable: header, program headers, then `body` (entry points at it).

    phdrs are (type, flags, offset, vaddr, filesz, memsz, align); WHOLE means the file size.
    """
    if phdrs is None:
        phdrs = [(PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000)]
    size = 52 + 32 * len(phdrs) + len(body)
    if entry is None:
        entry = BASE + 52 + 32 * len(phdrs)
    ident = b"\x7fELF" + bytes([cls, endian, 1, 0]) + bytes(8)
    header = struct.pack("<16sHHIIIIIHHHHHH", ident, e_type, machine, 1, entry, phoff, 0, 0,
                         ehsize, phentsize, len(phdrs) if phnum is None else phnum, 40, 0, 0)
    table = b"".join(
        struct.pack("<IIIIIIII", t, o, v, v, size if fs == WHOLE else fs, size if ms == WHOLE else ms, f, a)
        for t, f, o, v, fs, ms, a in phdrs)
    return header + table + body


def load32(**overrides):
    fields = dict(type=PT_LOAD, flags=PF_R | PF_X, offset=0, vaddr=BASE, filesz=WHOLE, memsz=WHOLE, align=0x1000)
    fields.update(overrides)
    return tuple(fields.values())


@pytest.fixture
def elf_file(tmp_path):
    counter = iter(range(10**6))

    def write(data: bytes) -> str:
        path = tmp_path / f"f{next(counter)}"
        path.write_bytes(data)
        return str(path)

    return write


def test_minimal_elf32_loads(elf_file):
    data = make_elf32()
    image = load_image(elf_file(data))
    assert (image.bits, image.machine, image.elf_type, image.phent, image.phnum) == (32, "i386", "ET_EXEC", 32, 1)
    assert image.entry == BASE + 52 + 32 and image.phdr == BASE + 52
    (seg,) = image.segments
    assert (seg.start, seg.end, seg.offset, seg.prot) == (BASE, BASE + PAGE_SIZE, 0, PROT_READ | PROT_EXEC)
    assert seg.page_source(BASE) == (0, len(data), 0)


def test_elf32_interp_tls_phdr_exec_stack(elf_file):
    interp = b"/lib/ld-linux.so.2\0"
    off = 52 + 5 * 32 + len(CODE)
    data = make_elf32([
        (PT_PHDR, PF_R, 52, BASE + 52, 5 * 32, 5 * 32, 4),
        (PT_INTERP, PF_R, off, BASE + off, len(interp), len(interp), 1),
        (PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000),
        (PT_TLS, PF_R, 0, BASE, 4, 64, 4),
        (PT_GNU_STACK, PF_R | PF_W | PF_X, 0, 0, 0, 0, 16),
    ], body=CODE + interp)
    image = load_image(elf_file(data))
    assert image.interp == "/lib/ld-linux.so.2"
    assert image.phdr == BASE + 52 and image.phnum == 5
    assert (image.tls.vaddr, image.tls.filesz, image.tls.memsz, image.tls.align) == (BASE, 4, 64, 4)
    assert image.stack_exec is True


def test_elf32_static_pie_default_base(elf_file):
    data = make_elf32([load32(vaddr=0)], e_type=3, entry=52 + 32)
    image = load_image(elf_file(data))
    assert image.elf_type == "ET_DYN" and image.load_bias == DEFAULT_PIE_BASE_32
    assert image.entry == DEFAULT_PIE_BASE_32 + 52 + 32


def test_elf32_segment_may_end_exactly_at_the_kernel(elf_file):
    top = KERNEL_32 - PAGE_SIZE
    data = make_elf32([load32(vaddr=top)], entry=top + 52 + 32)
    assert load_image(elf_file(data)).segments[0].end == KERNEL_32


TEXT = load32()
KERNEL_MSG = "segment reaches the kernel (above 0xc0000000)"
MALFORMED32 = {
    "at the kernel": (make_elf32([TEXT, load32(flags=PF_R, vaddr=KERNEL_32, filesz=0, memsz=1)]), KERNEL_MSG),
    "across the kernel": (make_elf32([TEXT, load32(flags=PF_R, vaddr=KERNEL_32 - PAGE_SIZE, filesz=0,
                                                   memsz=PAGE_SIZE + 1)]), KERNEL_MSG),
    "top page": (make_elf32([TEXT, load32(flags=PF_R, vaddr=0xFFFF_F000, filesz=0, memsz=0x1000)]), KERNEL_MSG),
    "wraps 4 GiB": (make_elf32([TEXT, load32(flags=PF_R, vaddr=0xFFFF_F000, filesz=0, memsz=0x2000)]), KERNEL_MSG),
    "text in the kernel": (make_elf32([load32(vaddr=0xC010_0000)], entry=0xC010_0054), KERNEL_MSG),
    "phentsize 56": (make_elf32(phentsize=56), "bad program header size 56"),
    "phentsize 0": (make_elf32(phentsize=0), "bad program header size 0"),
    "x32": (make_elf32(machine=62), "not a 64-bit ELF file, nor an i386 one (ELFCLASS32, e_machine 62)"),
    "arm": (make_elf32(machine=40), "not a 64-bit ELF file, nor an i386 one (ELFCLASS32, e_machine 40)"),
    "big endian": (make_elf32(endian=2), "not a little-endian ELF file"),
    "header cut short": (make_elf32()[:51], "truncated ELF header"),
    "relocatable": (make_elf32(e_type=1), "not an executable (ET_REL)"),
    "no phdrs": (make_elf32(phnum=0), "no program headers"),
    "phdrs cut short": (make_elf32()[:52 + 20], "truncated program headers"),
    "page zero": (make_elf32([load32(vaddr=0)], entry=0x54), "segment 0 maps below 0x10000"),
    "entry outside": (make_elf32(entry=BASE + 0x5000), "entry point 0x804d000 is not in an executable segment"),
    "overlap": (make_elf32([TEXT, TEXT]), "segments 0 and 1 overlap"),
    "filesz > memsz": (make_elf32([load32(filesz=0x100, memsz=0x80)]), "p_filesz larger than p_memsz in segment 0"),
    "past eof": (make_elf32([load32(filesz=0x10000, memsz=0x10000)]), "segment 0 extends past the end of the file"),
    "bad class": (make_elf32(cls=3), "not a 64-bit ELF file"),
    # A static PIE at DEFAULT_PIE_BASE_32 whose second segment lands 0x6a000000 higher: 0xc0555000.
    "pie into the kernel": (make_elf32([load32(vaddr=0), load32(flags=PF_R, vaddr=0x6A00_0000, filesz=0, memsz=1)],
                                       e_type=3, entry=52 + 64), KERNEL_MSG),
}


@pytest.mark.parametrize("name", list(MALFORMED32))
def test_malformed_elf32_raises_load_error(elf_file, name):
    data, message = MALFORMED32[name]
    with pytest.raises(LoadError) as info:
        load_image(elf_file(data))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_elf64_with_em_386_is_still_refused(elf_file):
    """ELFCLASS64 + EM_386 is no i386 program: the 64-bit message, unchanged."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, 3, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", PT_LOAD, PF_R | PF_X, 0, 0x400000, 0x400000, 0x100, 0x100, 0x1000)
    with pytest.raises(LoadError) as info:
        load_image(elf_file((header + phdr).ljust(0x100, b"\0")))
    assert str(info.value) == "not an x86-64 executable (e_machine 3)"


def test_fuzzed_elf32_headers_raise_only_load_error(elf_file, gcc32):
    """Random damage to ELF32 headers: LoadError or a consistent 32-bit Image below the kernel, nothing else."""
    rng = random.Random(4321)
    seeds = [make_elf32(), open(gcc32(STATIC, LAYOUT_C), "rb").read()]
    for _ in range(1000):
        data = bytearray(rng.choice(seeds))
        head = min(len(data), 52 + 32 * 10)
        if rng.random() < 0.2:
            data = data[:rng.randrange(head)]
        else:
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(head)
                if rng.random() < 0.5:
                    data[pos] = rng.randrange(256)
                else:
                    data[pos] ^= 1 << rng.randrange(8)
        try:
            image = load_image(elf_file(bytes(data)))
        except LoadError as e:
            assert str(e) and "\n" not in str(e)
            assert "malformed ELF file" not in str(e), "an internal error was converted"
            continue
        limit = KERNEL_32 if image.bits == 32 else 1 << 47
        for s in image.segments:
            assert 0x10000 <= s.start < s.end <= limit and s.offset >= 0


# --- the paging formats -----------------------------------------------------------------------------

P, W, U, A, D, PS, G = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 7, 1 << 8
NX = 1 << 63
FRAME32 = 0xFFFF_F000                       # bits 31:12 of a 32-bit paging entry (SDM table 4-6)


def test_format_constants():
    assert X86_64.shifts == (39, 30, 21, 12) and X86_64.widths == (9, 9, 9, 9)
    assert X86_64.entry_size == 8 and X86_64.nx == NX and X86_64.frame_mask == ptm.PTE_FRAME
    assert X86_64.level_names == ("PML4", "PDPT", "PD", "PT") and X86_64.kernel_base == ptm.KERNEL_HALF
    assert X86_64.user_top == ptm.USER_TOP and X86_64.kernel_index == 256 and X86_64.canonical_bits == 48
    assert I386.shifts == (22, 12) and I386.widths == (10, 10)
    assert I386.entry_size == 4 and I386.nx == 0 and I386.frame_mask == FRAME32
    assert I386.level_names == ("PD", "PT") and I386.kernel_base == I386.user_top == KERNEL_32
    assert I386.kernel_index == 768 and I386.canonical_bits == 0 and I386.address_bits == 32
    assert I386_PAE.shifts == (30, 21, 12) and I386_PAE.widths == (2, 9, 9)
    assert I386_PAE.entry_size == 8 and I386_PAE.nx == NX and I386_PAE.kernel_index == 3
    assert I386_PAE.level_names == ("PDPT", "PD", "PT")
    assert FORMATS == (X86_64, I386, I386_PAE)
    for fmt in FORMATS:
        assert isinstance(fmt, PagingFormat)
        assert sum(fmt.widths) + 12 == (48 if fmt is X86_64 else 32)   # every address bit is translated once
    # The i386 bits are the low bits of the x86-64 layout.
    assert (ptm.PTE_PRESENT, ptm.PTE_WRITABLE, ptm.PTE_USER, ptm.PTE_ACCESSED, ptm.PTE_DIRTY, ptm.PTE_HUGE,
            ptm.PTE_GLOBAL) == (P, W, U, A, D, PS, G)
    assert is_kernel_address(KERNEL_32, I386) and not is_kernel_address(KERNEL_32 - 1, I386)
    assert not is_kernel_address(KERNEL_32) and is_kernel_address(0xFFFF_8000_0000_0000)


@pytest.fixture
def ram():
    return PhysicalMemory(8 << 20)


def u32(ram, paddr: int) -> int:
    """The 4-byte little-endian word at a physical address."""
    return struct.unpack_from("<I", ram.view, paddr)[0]


def u64(ram, paddr: int) -> int:
    return struct.unpack_from("<Q", ram.view, paddr)[0]


@pytest.mark.parametrize("vaddr, pd, pt", [
    (0x0804_8000, 0x20, 0x48),          # 0x08048000 = 32 * 4 MiB + 0x48 * 4 KiB
    (0x5655_5000, 0x159, 0x155),        # the i386 PIE base: 0x56555000 >> 22 = 345, (>> 12) & 1023 = 341
    (0xBFFF_F000, 767, 1023),           # the last user page
    (0xC000_0000, 768, 0),              # PAGE_OFFSET: the first kernel PDE
    (0xFFFF_F000, 1023, 1023),
    (0x0040_0000, 1, 0),
])
def test_i386_map_writes_4_byte_entries_where_10_10_12_says(ram, vaddr, pd, pt):
    assert ((vaddr >> 22), (vaddr >> 12) & 1023) == (pd, pt)       # the hand computation agrees with the literal
    assert I386.indexes(vaddr) == (pd, pt)
    table = PageTable(ram, fmt=I386)
    pfn = ram.alloc(Owner.ANON)
    flags = P | W | U if vaddr < KERNEL_32 else P | W | G
    table.map(vaddr, pfn, flags)
    root = table.root << 12
    pde = u32(ram, root + 4 * pd)                               # PDE at CR3 + 4 * PD index
    assert pde & P and ram.owner[pde >> 12] == Owner.PAGE_TABLE
    assert pde & 0xFFF == (P | W | U if vaddr < KERNEL_32 else P | W)
    pt_base = pde & FRAME32
    assert u32(ram, pt_base + 4 * pt) == (pfn << 12) | flags   # PTE at PDE frame + 4 * PT index
    # Nothing else in either table: every other 4-byte word is zero.
    assert sum(1 for i in range(1024) if u32(ram, root + 4 * i)) == 1
    assert sum(1 for i in range(1024) if u32(ram, pt_base + 4 * i)) == 1
    # The slot is an index into RAM as 4-byte words.
    slot = table.slot(vaddr)
    assert slot * 4 == pt_base + 4 * pt
    assert table.words.itemsize == 4 and table.words[slot] == (pfn << 12) | flags
    assert table.lookup(vaddr) == (pfn << 12) | flags
    assert table.table_pages == 2


def test_i386_tables_allocation_unmap_and_leaves(ram):
    table = PageTable(ram, fmt=I386)
    pfns = {}
    for va in (0xBFFF_E000, 0x0804_9000, 0x0804_8000, 0x0840_0000, 0x5655_5000):
        pfns[va] = ram.alloc(Owner.ANON)
        table.map(va, pfns[va], P | U)
    assert table.table_pages == 1 + 4                           # 0x08048000 and 0x08049000 share a PT
    assert [va for va, _s, _e in table.leaves()] == sorted(pfns)
    for va, slot, e in table.leaves():
        assert e == (pfns[va] << 12) | P | U and table.words[slot] == e
    assert [va for va, _s, _e in table.leaves(0x0804_9000, 0x5655_5000)] == [0x0804_9000, 0x0840_0000]
    assert table.slot(0x0900_0000) == -1 and table.lookup(0x0900_0000) == 0
    assert table.unmap(0x0804_8000) == (pfns[0x0804_8000] << 12) | P | U
    assert table.unmap(0x0804_8000) == 0 and table.lookup(0x0804_8000) == 0
    assert sorted(level for level, *_ in table.tables()) == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        table.slot(1 << 32)                                     # no such address in 32-bit mode
    # No NX in non-PAE i386: the bit is dropped, as Linux's _PAGE_NX is 0 there.
    table.map(0x0900_0000, pfns[0x0804_8000], P | U | NX)
    assert table.lookup(0x0900_0000) == (pfns[0x0804_8000] << 12) | P | U
    with pytest.raises(ValueError):
        table.map(0x0900_1000, 1 << 20, P | U)                  # a frame above 4 GiB does not fit 32 bits
    before = sum(1 for o in ram.owner if o == Owner.PAGE_TABLE)
    table.free_user_tables()
    assert sum(1 for o in ram.owner if o == Owner.PAGE_TABLE) == before - 6


@pytest.fixture
def kernel32(ram):
    """An i386 kernel page table with a supervisor page at 0xc0100000 (PDE 768) and two address spaces sharing it."""
    kernel = PageTable(ram, fmt=I386)
    ktext = ram.alloc(Owner.KERNEL)
    kernel.map(0xC010_0000, ktext, P | G)
    a = PageTable(ram, kernel_root=kernel.root, fmt=I386)
    b = PageTable(ram, kernel_root=kernel.root, fmt=I386)
    return kernel, a, b, ktext


def test_i386_kernel_quarter_is_shared_and_supervisor_only(ram, kernel32):
    kernel, a, b, ktext = kernel32
    k = kernel.root << 12
    for pt in (a, b):
        r = pt.root << 12
        assert [u32(ram, r + 4 * i) for i in range(768, 1024)] == [u32(ram, k + 4 * i) for i in range(768, 1024)]
        assert not any(u32(ram, r + 4 * i) for i in range(768))     # the user PDEs are not copied
    pde = u32(ram, k + 4 * 768)
    assert pde & P and not pde & U                               # kernel tables are supervisor-only
    # A page added later under the shared PT is seen by both; a user page stays private.
    extra = ram.alloc(Owner.KERNEL)
    kernel.map(0xC010_1000, extra, P | W | G)
    assert a.lookup(0xC010_1000) == b.lookup(0xC010_1000) == (extra << 12) | P | W | G
    a.map(0x0804_8000, ram.alloc(Owner.ANON), P | U)
    assert b.lookup(0x0804_8000) == 0 and kernel.lookup(0x0804_8000) == 0
    # Freeing an address space leaves the kernel's tables alone.
    a.free_user_tables()
    assert b.lookup(0xC010_0000) == (ktext << 12) | P | G
    assert ram.owner[pde >> 12] == Owner.PAGE_TABLE


def test_i386_user_access_to_the_kernel_faults(ram, kernel32):
    kernel, a, b, ktext = kernel32
    mmu = Mmu(ram)
    for pt in (a, b):
        for access, code in ((ACCESS_READ, 0), (ACCESS_WRITE, PF_WRITE), (ACCESS_FETCH, PF_INSTR)):
            with pytest.raises(PageFault) as info:                   # mapped, but supervisor-only: protection
                mmu.walk(pt.root, 0xC010_0123, access, True, fmt=I386)
            assert info.value.error_code == PF_PRESENT | PF_USER | code and not info.value.noncanonical
        _slot, pte = mmu.walk(pt.root, 0xC010_0123, ACCESS_READ, False, fmt=I386)   # the kernel reads it
        assert pte >> 12 == ktext and not pte & U
        for va in (0xC010_5000, 0xD000_0000, 0xFFFF_F000):           # PT entry absent; PDE absent
            for user in (True, False):
                with pytest.raises(PageFault) as info:
                    mmu.walk(pt.root, va, ACCESS_READ, user, fmt=I386)
                assert info.value.error_code == (PF_USER if user else 0)   # not present
    with pytest.raises(PageFault) as info:                           # supervisor write to a read-only page (CR0.WP)
        mmu.walk(a.root, 0xC010_0000, ACCESS_WRITE, False, fmt=I386)
    assert info.value.error_code == PF_PRESENT | PF_WRITE


def test_i386_walk_sets_accessed_and_dirty_bits(ram):
    table = PageTable(ram, fmt=I386)
    pfn = ram.alloc(Owner.ANON)
    table.map(0x0804_8000, pfn, P | W | U)
    pde_addr = (table.root << 12) + 4 * 0x20
    pte_addr = (u32(ram, pde_addr) & FRAME32) + 4 * 0x48
    assert not u32(ram, pde_addr) & A and not u32(ram, pte_addr) & A
    mmu = Mmu(ram)
    slot, pte = mmu.walk(table.root, 0x0804_8123, ACCESS_READ, True, fmt=I386)
    assert slot * 4 == pte_addr and pte == (pfn << 12) | P | W | U | A
    assert u32(ram, pde_addr) & A and u32(ram, pte_addr) & A
    assert not u32(ram, pde_addr) & D and not u32(ram, pte_addr) & D
    mmu.walk(table.root, 0x0804_8000, ACCESS_FETCH, True, fmt=I386)
    assert not u32(ram, pte_addr) & D                                # a fetch is no write
    _slot, pte = mmu.walk(table.root, 0x0804_8000, ACCESS_WRITE, True, fmt=I386)
    assert u32(ram, pte_addr) & D and pte & D and not u32(ram, pde_addr) & D   # D on the leaf only
    assert u32(ram, pte_addr + 4) == 0 and u32(ram, pde_addr + 4) == 0          # 4-byte writes, neighbours intact


ACCESS_BITS = {ACCESS_READ: 0, ACCESS_WRITE: PF_WRITE, ACCESS_FETCH: PF_INSTR}


@pytest.mark.parametrize("access", list(ACCESS_BITS))
@pytest.mark.parametrize("user", [True, False])
@pytest.mark.parametrize("vaddr, levels", [(0x0840_0000, 1), (0x0804_9000, 2)])   # PDE absent; PTE absent
def test_i386_not_present_error_codes(ram, vaddr, levels, access, user):
    table = PageTable(ram, fmt=I386)
    table.map(0x0804_8000, ram.alloc(Owner.ANON), P | W | U)
    mmu = Mmu(ram)
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, vaddr, access, user, fmt=I386)
    f = info.value
    assert (f.vaddr, f.access, f.levels, f.noncanonical) == (vaddr, access, levels, False)
    assert f.error_code == (PF_USER if user else 0) | ACCESS_BITS[access]


def test_i386_protection_rules(ram):
    table = PageTable(ram, fmt=I386)
    table.map(0x0804_8000, ram.alloc(Owner.FILE), P | U)             # read-only user text
    table.map(0x0804_9000, ram.alloc(Owner.KERNEL), P | W)           # a supervisor page in the user range
    table.map(0x0810_0000, ram.alloc(Owner.ANON), P | W | U | NX)    # NX asked for: dropped, so executable
    mmu = Mmu(ram)
    mmu.walk(table.root, 0x0804_8000, ACCESS_FETCH, True, fmt=I386)
    mmu.walk(table.root, 0x0810_0000, ACCESS_FETCH, True, fmt=I386)   # no NX on non-PAE i386
    for user, code in ((True, PF_PRESENT | PF_WRITE | PF_USER), (False, PF_PRESENT | PF_WRITE)):
        with pytest.raises(PageFault) as info:
            mmu.walk(table.root, 0x0804_8000, ACCESS_WRITE, user, fmt=I386)
        assert info.value.error_code == code
    assert not table.lookup(0x0804_8000) & D                         # a failed write sets no D
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, 0x0804_9000, ACCESS_READ, True, fmt=I386)
    assert info.value.error_code == PF_PRESENT | PF_USER


def test_i386_w_and_u_are_anded_across_levels(ram):
    table = PageTable(ram, fmt=I386)
    table.map(0x0804_8000, ram.alloc(Owner.ANON), P | W | U)
    pde_addr = (table.root << 12) + 4 * 0x20
    pde = u32(ram, pde_addr)
    struct.pack_into("<I", ram.view, pde_addr, pde & ~U)
    with pytest.raises(PageFault) as info:
        Mmu(ram).walk(table.root, 0x0804_8000, ACCESS_READ, True, fmt=I386)
    assert info.value.error_code == PF_PRESENT | PF_USER
    _slot, pte = Mmu(ram).walk(table.root, 0x0804_8000, ACCESS_READ, False, fmt=I386)
    assert not pte & U                                                # the effective entry carries the AND
    struct.pack_into("<I", ram.view, pde_addr, pde & ~W)
    mmu = Mmu(ram)
    _slot, pte = mmu.walk(table.root, 0x0804_8000, ACCESS_READ, True, fmt=I386)
    assert pte & U and not pte & W
    for user in (True, False):
        with pytest.raises(PageFault) as info:
            mmu.walk(table.root, 0x0804_8000, ACCESS_WRITE, user, fmt=I386)
        assert info.value.error_code == PF_PRESENT | PF_WRITE | (PF_USER if user else 0)


def test_i386_paging_structure_cache_is_per_4mib_area_and_per_format(ram):
    table = PageTable(ram, fmt=I386)
    for va in (0x0804_8000, 0x0804_9000, 0x083F_F000, 0x0840_0000):
        table.map(va, ram.alloc(Owner.ANON), P | W | U)
    mmu = Mmu(ram)

    def levels(va, access=ACCESS_READ):
        before = mmu.levels_read
        mmu.walk(table.root, va, access, True, fmt=I386)
        return mmu.levels_read - before

    assert levels(0x0804_8000) == 2
    assert levels(0x0804_9000) == 1                 # same 4 MiB area (one PT): only the PTE is read
    assert levels(0x083F_F000, ACCESS_WRITE) == 1    # the last page under PDE 32 (0x08000000-0x083fffff)
    assert levels(0x0840_0000) == 2                  # PDE 33: the next 4 MiB
    assert levels(0x0840_0000) == 1
    assert mmu.pde_cache == {}                       # the x86-64 cache is untouched...
    assert len(mmu.format_caches[I386]) == 2         # ...the i386 one has the two PDE areas
    before = mmu.levels_read
    with pytest.raises(PageFault):
        mmu.walk(table.root, 0x0804_A000, ACCESS_READ, True, fmt=I386)
    assert mmu.levels_read - before == 1
    mmu.forget(table.root)
    assert mmu.format_caches[I386] == {}
    assert levels(0x0804_9000) == 2
    # The same root frame walked as an x86-64 PML4 finds nothing the i386 walk cached.
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, 0x0804_9000, ACCESS_READ, True)
    assert not info.value.error_code & PF_PRESENT and info.value.levels <= 4


def test_i386_addresses_above_4gib_are_not_walked(ram):
    table = PageTable(ram, fmt=I386)
    with pytest.raises(ValueError):
        Mmu(ram).walk(table.root, 1 << 32, ACCESS_READ, True, fmt=I386)


def test_mmu_bound_to_i386(ram):
    table = PageTable(ram, fmt=I386)
    pfn = ram.alloc(Owner.ANON)
    table.map(0x0804_8000, pfn, P | U)
    mmu = Mmu(ram, fmt=I386)
    assert mmu.fmt is I386
    slot, pte = mmu.walk(table.root, 0x0804_8000, ACCESS_READ, True)   # no fmt: the Mmu's
    assert slot == table.slot(0x0804_8000) and pte >> 12 == pfn
    x = PageTable(ram)
    x.map(0x401000, pfn, P | U)
    assert mmu.walk(x.root, 0x401000, ACCESS_READ, True, fmt=X86_64)[1] >> 12 == pfn


def test_i386_dump(ram, kernel32):
    kernel, a, b, ktext = kernel32
    pfn = ram.alloc(Owner.ANON)
    a.map(0x0804_8000, pfn, P | W | U | A | D)
    lines = a.dump()
    assert lines[0] == f"page table {a.root << 12:#x}"
    assert len(lines) == 1 + 2
    pde = u32(ram, (a.root << 12) + 4 * 0x20)
    assert lines[1] == f" ..PD[32] va 0x8000000 pte {pde:#010x} [P W U] frame {pde >> 12:#x}"
    pte = (pfn << 12) | P | W | U | A | D
    assert lines[2] == f" .. ..PT[72] va 0x8048000 pte {pte:#010x} [P W U A D] frame {pfn:#x}"
    full = a.dump(user_only=False)
    assert len(full) == 1 + 2 + 2
    assert full[3].startswith(" ..PD[768] va 0xc0000000 pte 0x") and "[P W]" in full[3]
    assert full[4] == f" .. ..PT[256] va 0xc0100000 pte {(ktext << 12) | P | G:#010x} [P G] frame {ktext:#x}"


# --- PAE ---------------------------------------------------------------------------------------------

def test_pae_entries_and_walk(ram):
    kernel = PageTable(ram, fmt=I386_PAE)
    ktext = ram.alloc(Owner.KERNEL)
    kernel.map(0xC010_0000, ktext, P | G)
    table = PageTable(ram, kernel_root=kernel.root, fmt=I386_PAE)
    assert u64(ram, (table.root << 12) + 8 * 3) == u64(ram, (kernel.root << 12) + 8 * 3) != 0   # PDPT[3] shared
    va = 0x5655_5000                                  # PDPT 1, PD 0xb2, PT 0x155
    assert (va >> 30, (va >> 21) & 511, (va >> 12) & 511) == (1, 0xB2, 0x155) == I386_PAE.indexes(va)
    pfn = ram.alloc(Owner.ANON)
    table.map(va, pfn, P | W | U | NX)
    pdpte = u64(ram, (table.root << 12) + 8 * 1)
    assert pdpte & 0xFFF == P                         # a PDPTE holds P only: W/U/A are reserved there
    pde = u64(ram, (pdpte & ptm.PTE_FRAME) + 8 * 0xB2)
    assert pde & 0xFFF == P | W | U
    pte_addr = (pde & ptm.PTE_FRAME) + 8 * 0x155
    assert u64(ram, pte_addr) == (pfn << 12) | P | W | U | NX
    mmu = Mmu(ram)
    slot, pte = mmu.walk(table.root, va, ACCESS_WRITE, True, fmt=I386_PAE)
    assert slot * 8 == pte_addr and pte & NX and pte & D
    assert u64(ram, (table.root << 12) + 8 * 1) == pdpte           # no accessed bit in a PDPTE
    assert u64(ram, (pdpte & ptm.PTE_FRAME) + 8 * 0xB2) & A
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, va, ACCESS_FETCH, True, fmt=I386_PAE)
    assert info.value.error_code == PF_PRESENT | PF_INSTR | PF_USER
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, 0xC010_0000, ACCESS_READ, True, fmt=I386_PAE)
    assert info.value.error_code == PF_PRESENT | PF_USER
    assert mmu.walk(table.root, 0xC010_0000, ACCESS_READ, False, fmt=I386_PAE)[1] >> 12 == ktext
    before = mmu.levels_read
    mmu.walk(table.root, va, ACCESS_READ, True, fmt=I386_PAE)
    assert mmu.levels_read - before == 1
    with pytest.raises(PageFault) as info:
        mmu.walk(table.root, 0x8000_0000, ACCESS_READ, True, fmt=I386_PAE)   # PDPT[2] absent
    assert info.value.levels == 1 and info.value.error_code == PF_USER
    assert [v for v, _s, _e in table.leaves()] == [va]
    lines = table.dump(user_only=False)
    assert [line.split(" va ")[0] for line in lines[1:]] == [" ..PDPT[1]", " .. ..PD[178]", " .. .. ..PT[341]",
                                                              " ..PDPT[3]", " .. ..PD[0]", " .. .. ..PT[256]"]
    assert f"pte {(pfn << 12) | P | W | U | A | D | NX:#018x} [P W U A D NX]" in lines[3]
    table.free_user_tables()
    assert kernel.lookup(0xC010_0000) == (ktext << 12) | P | A | G    # A from the supervisor read above


# --- the generic code agrees with the x86-64 fast path ----------------------------------------------

X86_ADDRS = [0x401000, 0x402000, 0x5FF000, 0x600000, 0x4000_0000, 0x7FFF_FFFF_E000, 0xFFFF_FFFF_8100_0000,
             0x403000, 0x80_0000_0000, 0x8000_0000_0000]


def build_x86(ram):
    kernel = PageTable(ram)
    kernel.map(0xFFFF_FFFF_8100_0000, 1, P | G)
    pt = PageTable(ram, kernel_root=kernel.root)
    for va, flags in ((0x401000, P | U), (0x402000, P | W | U), (0x5FF000, P | W | U | NX), (0x600000, P | W),
                      (0x4000_0000, P | W | U), (0x7FFF_FFFF_E000, P | W | U | NX)):
        pt.map(va, 2, flags)
    return pt


def test_generic_walk_agrees_with_the_x86_64_walk():
    results = []
    for generic in (False, True):
        ram = PhysicalMemory(4 << 20)
        pt = build_x86(ram)
        mmu = Mmu(ram)
        walk = (lambda *a: mmu.walk_fmt(*a, X86_64)) if generic else mmu.walk
        out = []
        for va in X86_ADDRS:
            for access in (ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH):
                for user in (True, False):
                    before = mmu.levels_read
                    try:
                        out.append(("ok", walk(pt.root, va | 0x123, access, user)))
                    except PageFault as f:
                        out.append(("fault", f.vaddr, f.error_code, f.levels, f.noncanonical))
                    out.append(mmu.levels_read - before)
        out.append(bytes(ram.view))                               # every A and D bit the walks set
        results.append(out)
    assert results[0] == results[1]


def test_generic_slot_agrees_with_the_x86_64_slot(ram):
    pt = build_x86(ram)
    for va in X86_ADDRS[:-1]:
        assert pt._slot_fmt(va) == pt.slot(va)
    with pytest.raises(ValueError):
        pt._slot_fmt(0x8000_0000_0000)                            # non-canonical


# --- real i386 programs: what the memory system did -------------------------------------------------
#
# The committed 32-bit samples (samples/bin/NAME-i386) and a few programs built here run on a Kernel
# through its Python API. A fault observer records every fault; Kernel.exit is wrapped (as
# osmodel.dumps.Dumper does) so each process's page tables are read straight from RAM, decoded by hand
# per the SDM, just before they are freed. Where a native run can say what should happen (exit
# status, output), it is the oracle.

SAMPLES_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "bin")
STACK_TOP_32 = 0xC000_0000              # i386's stack ends where the kernel's quarter begins
STACK_INITIAL = 128 * 1024              # the stack Linux sets up at exec
STACK_GUARD_GAP = 256 * PAGE_SIZE       # Linux's stack_guard_gap
MMAP_BASE_32 = STACK_TOP_32 - (128 << 20)   # top of the mmap area below the stack (no ASLR)
LOWMEM = 896 << 20                      # i386 low memory: what the kernel's quarter maps directly
MIB = 1 << 20
PAGINGS = {"2level": I386, "pae": I386_PAE}

# How the two 32-bit formats lay out their tables (SDM vol. 3A 4.3, 4.4), for decoding RAM by hand:
# the root's user entries, the entry's word format, index widths and shifts, and the frame bits.
LAYOUT = {
    "2level": dict(word="<I", widths=(10, 10), shifts=(22, 12), frame=0xFFFF_F000, user_roots=range(768)),
    "pae": dict(word="<Q", widths=(2, 9, 9), shifts=(30, 21, 12), frame=0x000F_FFFF_FFFF_F000, user_roots=range(3)),
}

# A user read of the address in argv[1] (a kernel address: SIGSEGV).
READ_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    volatile unsigned char *p = (volatile unsigned char *)strtoul(argv[1], 0, 0);
    printf("reading %s\n", argv[1]);
    fflush(stdout);
    return *p;
}
"""

# A call into a `ret` in .data (read-write, not executable).
EXECDATA_C = r"""
#include <stdio.h>
static unsigned char code[64] = {0xc3};
int main(void) {
    printf("calling code in .data\n");
    fflush(stdout);
    ((void (*)(void))(void *)code)();
    printf("survived\n");
    return 1;
}
"""

# A one-page mapping 4 MiB below the initial stack, then unbounded recursion.
GUARDGAP_C = r"""
#include <stdio.h>
#include <sys/mman.h>
static volatile int sink;
__attribute__((noinline)) static int recurse(int n) {
    volatile unsigned char f[512];
    f[0] = n;
    f[511] = n;
    return recurse(n + 1) + f[0] + f[511];
}
int main(void) {
    unsigned long want = 0xc0000000UL - 128 * 1024 - 4 * 1024 * 1024;
    void *p = mmap((void *)want, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("%lx\n", (unsigned long)p);
    fflush(stdout);
    sink = recurse(0);
    return 1;
}
"""

# execve(argv[1], argv + 1) without a fork: the same process changes width.
EXEC_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("exec %s\n", argv[1]);
    fflush(stdout);
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
"""


def sample32(name: str) -> str:
    return os.path.join(SAMPLES_BIN, name + "-i386")


def native(argv: list[str]) -> tuple[bytes, int]:
    """(stdout, shell status) of a native run; skips when the host cannot run i386 programs."""
    try:
        r = run_native(argv, env=sample_env())
    except OSError as e:
        pytest.skip(f"this host cannot run i386 programs natively: {e}")
    return r.stdout, r.status


@dataclass
class Fault32:
    """One fault as the observer saw it (the region's bounds copied at the time)."""
    pid: int
    fmt: PagingFormat
    vaddr: int
    access: int
    code: int
    outcome: str                 # the resolution's outcome, or 'segv' / 'oom'
    kind: str | None
    start: int = 0
    end: int = 0
    pfn: int = 0
    frame: bytes = b""           # the frame's bytes right after a file-load

    @property
    def page(self) -> int:
        return self.vaddr & ~(PAGE_SIZE - 1)


@dataclass
class Tables:
    """A process's page tables as it exited: decoded by hand from RAM, and as PageTable.leaves() says."""
    fmt: PagingFormat
    root: int
    root_words: list[int]        # the root table's entries (PAE: the four PDPTEs)
    kernel_words: list[int]      # the same entries of the kernel's table for this format
    tables: list[tuple[int, int, list[int]]]   # (level, frame, entries) of every user table below the root
    leaves: dict[int, int]       # vaddr -> leaf entry, by hand
    api_leaves: dict[int, int]   # vaddr -> leaf entry, from PageTable.leaves()
    table_pages: int
    owners: dict[int, Owner]     # the owner tag of the root and of every table frame, at the time


@dataclass
class Run32:
    kernel: Kernel
    status: int
    stdout: bytes
    stderr: str
    faults: list[Fault32]
    base_frames: int             # frames in use once the kernel's 32-bit direct map exists, before spawn
    base_owners: dict
    tables: dict[int, Tables]    # by pid, as each exited
    zero_pfn: int

    def by(self, outcome: str, pid: int | None = None) -> list[Fault32]:
        return [f for f in self.faults if f.outcome == outcome and (pid is None or f.pid == pid)]


def decode_tables(ram: PhysicalMemory, paging: str, root: int) -> tuple[list[int], list, dict[int, int]]:
    """Read a 32-bit address space's user tables from RAM by hand: (root entries, tables, leaves)."""
    lay = LAYOUT[paging]
    word = struct.Struct(lay["word"])
    nroot = 1 << lay["widths"][0]

    def entries(frame: int, n: int) -> list[int]:
        return [word.unpack_from(ram.view, (frame << 12) + word.size * i)[0] for i in range(n)]

    root_words = entries(root, nroot)
    tables, leaves = [], {}

    def visit(frame: int, level: int, base: int) -> None:
        n = 1 << lay["widths"][level]
        words = entries(frame, n)
        tables.append((level, frame, words))
        for i, e in enumerate(words):
            if not e & P:
                continue
            va = base | (i << lay["shifts"][level])
            if level == len(lay["widths"]) - 1:
                leaves[va] = e
            else:
                visit((e & lay["frame"]) >> 12, level + 1, va)

    for i in lay["user_roots"]:
        if root_words[i] & P:
            visit((root_words[i] & lay["frame"]) >> 12, 1, i << lay["shifts"][0])
    return root_words, tables, leaves


def run32(path: str, args: tuple[str, ...] = (), paging: str = "2level", **config) -> Run32:
    """Run path on a fresh Kernel with 32-bit `paging`; record faults and each process's tables at exit."""
    err = io.StringIO()
    kernel = Kernel(Config(stderr=err, paging=paging, timeout=60, **config))
    for fmt in (I386, I386_PAE):
        kernel.kernel_table(fmt)          # the direct maps: built on first use, then kept for the run
    base, base_owners = kernel.ram.used_frames, kernel.ram.frames_by_owner()
    faults: list[Fault32] = []
    tables: dict[int, Tables] = {}

    def observe(proc, fault, res, error):
        fmt = proc.aspace.fmt
        if res is not None:
            region = res.region
            rec = Fault32(proc.pid, fmt, fault.vaddr, fault.access, fault.error_code, res.outcome,
                          region.kind if region else None, region.start if region else 0,
                          region.end if region else 0, res.pfn)
            if res.outcome == "file-load":
                rec.frame = bytes(kernel.ram.frame(res.pfn))
        else:
            rec = Fault32(proc.pid, fmt, fault.vaddr, fault.access, fault.error_code,
                          "oom" if type(error).__name__ == "OutOfMemory" else "segv", None)
        faults.append(rec)

    exit_ = kernel.exit

    def exit_and_record(proc, code=None, signal=None, *a, **kw):
        pt = proc.aspace.pagetable
        if proc.alive and pt.fmt is not X86_64:
            name = "2level" if pt.fmt is I386 else "pae"
            root_words, tabs, leaves = decode_tables(kernel.ram, name, pt.root)
            kernel_root = kernel.kernel_table(pt.fmt).root
            owners = {frame: kernel.ram.owner[frame] for frame in [pt.root] + [f for _l, f, _w in tabs]}
            tables[proc.pid] = Tables(pt.fmt, pt.root, root_words, decode_tables(kernel.ram, name, kernel_root)[0],
                                      tabs, leaves, {va: e for va, _s, e in pt.leaves()}, pt.table_pages, owners)
        exit_(proc, code, signal, *a, **kw)

    kernel.exit = exit_and_record
    kernel.fault_observers.append(observe)
    with tempfile.TemporaryFile() as out:
        kernel.spawn(path, [path.encode()] + [a.encode() for a in args], [b"LC_ALL=C"], stdio=(0, out.fileno(), 2))
        status = kernel.run()
        out.seek(0)
        stdout = out.read()
    return Run32(kernel, status, stdout, err.getvalue(), faults, base, base_owners, tables, kernel.faults.zero_pfn)


_RUNS: dict[tuple, Run32] = {}


def cached_run32(path: str, args: tuple[str, ...] = (), paging: str = "2level") -> Run32:
    """run32, once per (path, args, paging) in this test session (several tests look at the same run)."""
    key = (path, args, paging)
    if key not in _RUNS:
        _RUNS[key] = run32(path, args, paging)
    return _RUNS[key]


def assert_frames_returned(r: Run32) -> None:
    """Every frame the processes took is free again (the direct maps were built before the base count)."""
    ram = r.kernel.ram
    assert ram.used_frames == r.base_frames, (ram.frames_by_owner(), r.base_owners)
    assert ram.frames_by_owner() == r.base_owners
    assert ram.refcount[r.zero_pfn] == 1
    assert ram.peak_used > r.base_frames


# -- the kernel's quarter ------------------------------------------------------------------------------

@pytest.mark.parametrize("paging", list(PAGINGS))
def test_direct_map_is_built_on_first_use_and_kept(paging):
    """The kernel's quarter maps low memory (896 MiB of the default 1 GiB) with 4 KiB pages: one PD and
    224 PTs in 2-level paging; a PDPT, one PD and 448 PTs with PAE. Built once, shared, never freed."""
    kernel = Kernel(Config(stderr=io.StringIO(), paging=paging))
    fmt = PAGINGS[paging]
    before = kernel.ram.frames_by_owner()
    pt = kernel.kernel_table(fmt)
    after = kernel.ram.frames_by_owner()
    per_table = (4 if paging == "2level" else 2) * MIB
    expected = 1 + (paging == "pae") + LOWMEM // per_table
    assert after["page_table"] - before["page_table"] == expected
    assert after["free"] == before["free"] - expected
    assert kernel.kernel_table(fmt) is pt and kernel.ram.frames_by_owner() == after     # built once
    # The direct map is supervisor-only: PAGE_OFFSET + paddr for every low frame, and nothing above.
    for paddr in (0, 16 * MIB, LOWMEM - PAGE_SIZE):
        e = pt.lookup(KERNEL_32 + paddr)
        assert e & P and not e & U and (e & ptm.PTE_FRAME) == paddr
    assert pt.lookup(KERNEL_32 + LOWMEM) == 0
    # A run leaves it in place: frames are back to the count taken after it was built.
    with tempfile.TemporaryFile() as out:
        kernel.spawn(sample32("hello"), [b"hello"], [], stdio=(0, out.fileno(), 2))
        assert kernel.run() == 0
        out.seek(0)
        assert out.read() == b"hello, world\n"
    assert kernel.ram.frames_by_owner() == after


@pytest.mark.parametrize("paging", list(PAGINGS))
@pytest.mark.parametrize("addr", [0xC000_0000, 0xC100_0000])
def test_user_read_of_the_kernel_quarter_is_a_protection_fault(gcc32, paging, addr):
    """A user read at PAGE_OFFSET or 16 MiB above it finds a present, supervisor-only page: SIGSEGV (139),
    as the host kills the same program (which, on a 64-bit kernel, finds nothing mapped there)."""
    if addr == 0xC100_0000:
        path, args = sample32("kernelread"), ()          # the sample's i386 build reads 0xc1000000
    else:
        path, args = gcc32(STATIC, READ_C), (hex(addr),)
    out, status = native([path, *args])
    r = run32(path, args, paging)
    assert (r.stdout, r.status) == (out, status) == (f"reading {addr:#x}\n".encode(), 139), r.stderr
    last = r.faults[-1]
    assert (last.outcome, last.vaddr, last.access) == ("segv", addr, ACCESS_READ)
    assert last.code == PF_PRESENT | PF_USER                         # present: a protection fault
    line = r.stderr.strip()
    assert line.startswith(f"run-elf: pid 1 killed by SIGSEGV: user read to {addr:#x} "
                           "(present, supervisor-only, kernel"), line
    assert r.kernel.kernel_table(PAGINGS[paging]).lookup(addr) & P
    assert_frames_returned(r)


# -- the tables are in the i386 formats --------------------------------------------------------------

def test_i386_page_tables_are_a_directory_and_tables_of_1024_4_byte_entries():
    r = cached_run32(sample32("bss"), ("8",))
    assert r.status == 0 and b"pages touched: 8\n" in r.stdout, r.stderr
    t = r.tables[1]
    assert t.fmt is I386 and {f.fmt for f in r.faults} == {I386}
    assert t.owners[t.root] == Owner.PAGE_TABLE
    assert len(t.root_words) == 1024 and all(e < 1 << 32 for e in t.root_words)
    # PDEs 768..1023 are copies of the kernel's (the shared quarter's page tables, supervisor-only; a
    # walk sets the accessed bit in this directory's copy); the user's lie below.
    assert [e & ~A for e in t.root_words[768:]] == [e & ~A for e in t.kernel_words[768:]]
    kernel_pdes = [e for e in t.root_words[768:] if e & P]
    assert len(kernel_pdes) == LOWMEM // (4 * MIB) and not any(e & U for e in kernel_pdes)
    user_pdes = [e for e in t.root_words[:768] if e & P]
    assert user_pdes and all(e & 0xFFF & (P | W | U) == P | W | U for e in user_pdes)
    # Each user PDE points at a page table: one frame of 1024 four-byte PTEs.
    assert [level for level, _f, _w in t.tables] == [1] * len(user_pdes)
    for _level, frame, words in t.tables:
        assert t.owners[frame] == Owner.PAGE_TABLE and len(words) == 1024
    assert t.table_pages == 1 + len(user_pdes)
    # The hand decoding (10/10/12) finds exactly the leaves PageTable reports.
    assert t.leaves == t.api_leaves and t.leaves
    assert all(va < STACK_TOP_32 for va in t.leaves)
    # What the faults mapped is what the entries say: text read-only from its file-load frame; the
    # pages bss.c wrote with frames of their own, writable and dirty; the ones it only read, the zero page.
    text = [f for f in r.faults if f.kind == "text"]
    assert text and {f.outcome for f in text} == {"file-load"}
    for f in text:
        e = t.leaves[f.page]
        assert e >> 12 == f.pfn and e & (P | U | W) == P | U
    written = {f.page for f in r.by("demand-zero") if f.kind == "bss"}
    read_only = {f.page for f in r.by("zero-page") if f.kind == "bss"} - written
    assert len(written) >= 7 and len(read_only) >= 200
    for page in written:
        assert t.leaves[page] & (W | D) == W | D and t.leaves[page] >> 12 != r.zero_pfn
    for page in read_only:
        assert t.leaves[page] >> 12 == r.zero_pfn and not t.leaves[page] & W


def test_pae_page_tables_are_three_levels_of_8_byte_entries_with_nx():
    r = cached_run32(sample32("bss"), ("8",), "pae")
    assert r.status == 0 and b"pages touched: 8\n" in r.stdout, r.stderr
    t = r.tables[1]
    assert t.fmt is I386_PAE and {f.fmt for f in r.faults} == {I386_PAE}
    # The root is a PDPT of four entries holding only P (W, U, A and NX are reserved there);
    # PDPT[3] is the kernel's quarter, shared.
    assert len(t.root_words) == 4 and t.root_words[3] == t.kernel_words[3]
    assert all(e & 0xFFF == P and not e & NX for e in t.root_words if e)
    levels = [level for level, _f, _w in t.tables]
    assert set(levels) == {1, 2} and levels.count(1) == sum(1 for e in t.root_words[:3] if e & P)
    assert t.owners[t.root] == Owner.PAGE_TABLE
    for _level, frame, words in t.tables:
        assert t.owners[frame] == Owner.PAGE_TABLE and len(words) == 512
    assert t.leaves == t.api_leaves and t.leaves
    # NX on every leaf but the executable ones: text and nothing else.
    text = {f.page for f in r.faults if f.kind == "text"}
    assert text
    for va, e in t.leaves.items():
        assert bool(e & NX) == (va not in text), hex(va)


# -- demand paging, file pages, stack growth ---------------------------------------------------------

@pytest.mark.parametrize("paging", list(PAGINGS))
def test_i386_bss_pages_are_demand_zero(paging):
    path = sample32("bss")
    image = load_image(path)
    data = [s for s in image.segments if s.kind == "data"][0]
    bss_start, bss_end = (data.file_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), data.end
    big = Symbols(path).address_of("big")
    n = 8
    r = cached_run32(path, (str(n),), paging)
    assert r.status == 0, r.stderr
    # bss.c reads every page of big, then writes big[p * PAGE + (p * 17) % PAGE] for p < n.
    written = {(big + p * PAGE_SIZE + (p * 17) % PAGE_SIZE) & ~(PAGE_SIZE - 1) for p in range(n)}
    written_bss = {pg for pg in written if pg >= bss_start}
    assert len(written_bss) >= n - 1
    for pg in written_bss:
        seq = [f for f in r.faults if f.page == pg]
        assert [f.outcome for f in seq] == ["zero-page", "demand-zero"], (hex(pg), seq)
        assert seq[0].pfn == r.zero_pfn and seq[0].code == PF_USER and seq[0].access == ACCESS_READ
        assert seq[1].pfn != r.zero_pfn and seq[1].code == PF_PRESENT | PF_WRITE | PF_USER
        assert all((f.kind, f.start, f.end) == ("bss", bss_start, bss_end) for f in seq)
    # The pages bss.c only reads (its checksum loop) never get a frame of their own.
    page = ~(PAGE_SIZE - 1)
    only_read = range((big + (n + 1) * PAGE_SIZE) & page, (big + 256 * PAGE_SIZE) & page, PAGE_SIZE)
    assert len(only_read) >= 200
    for pg in only_read:
        assert [(f.outcome, f.pfn) for f in r.faults if f.page == pg] == [("zero-page", r.zero_pfn)]
    assert_frames_returned(r)


def test_i386_heap_pages_are_demand_zero():
    """heap.c's brk heap and its large (mmap2-backed) mallocs get their pages on first touch, zero-filled."""
    path = sample32("heap")
    out, status = native([path])
    r = cached_run32(path)
    assert (r.stdout, r.status) == (out, status) == (out, 0), r.stderr
    brk = load_image(path).brk_start
    heap = [f for f in r.faults if f.kind == "heap"]
    mmap = [f for f in r.faults if f.kind == "mmap"]
    assert len(heap) >= 100 and len(mmap) >= 1000               # 20000 small mallocs; 1+2+3+4 MiB + calloc 3 MiB
    assert all(f.start == brk and brk <= f.vaddr < f.end < MMAP_BASE_32 for f in heap)
    # Below the mmap base (mremap may grow a mapping above it, into the free space under the stack's limit).
    assert all(MMAP_BASE_32 - 256 * MIB < f.start < MMAP_BASE_32 and f.end <= STACK_TOP_32 - 8 * MIB for f in mmap)
    for faults in (heap, mmap):
        first = {}
        for f in faults:
            first.setdefault(f.page, f)
        assert {f.outcome for f in first.values()} <= {"demand-zero", "zero-page"}
        assert "demand-zero" in {f.outcome for f in first.values()}
        assert not [f for f in faults if f.outcome == "file-load"]
    assert_frames_returned(r)


def test_i386_text_arrives_by_file_load_on_first_touch():
    path = sample32("hello")
    image = load_image(path)
    text_seg = [s for s in image.segments if s.kind == "text"][0]
    raw = open(path, "rb").read()
    r = cached_run32(path)
    assert (r.stdout, r.status) == (b"hello, world\n", 0), r.stderr
    text = [f for f in r.faults if f.kind == "text"]
    assert text and {f.outcome for f in text} == {"file-load"}
    assert len({f.page for f in text}) == len(text)                  # each page loaded once
    first = text[0]
    assert first.page == image.entry & ~(PAGE_SIZE - 1)              # the first instruction fetched
    assert first.access == ACCESS_FETCH and first.code == PF_USER | PF_INSTR
    for f in text:
        lo, hi = max(f.page, text_seg.file_start), min(f.page + PAGE_SIZE, text_seg.file_end)
        off = text_seg.offset + (lo - text_seg.start)
        assert f.frame[lo - f.page:hi - f.page] == raw[off:off + hi - lo]
    npages = (text_seg.end - text_seg.start) // PAGE_SIZE
    assert npages > 16 and len(text) < npages                         # nothing loaded eagerly
    assert_frames_returned(r)


def test_i386_stack_grows_down_from_the_kernel_quarter():
    path = sample32("recursion")
    r = cached_run32(path)
    assert r.status == 0 and b"depth reached: 3000\n" in r.stdout, r.stderr
    grow = r.by("stack-grow")
    assert len(grow) >= (3000 * 1024 - STACK_INITIAL) // PAGE_SIZE
    pages = [f.page for f in grow]
    assert all(STACK_TOP_32 - 8 * MIB <= pg < STACK_TOP_32 - STACK_INITIAL for pg in pages)
    assert all(a > b for a, b in zip(pages, pages[1:])), "stack growth is not strictly downwards"
    assert all((f.kind, f.start, f.end) == ("stack", f.page, STACK_TOP_32) for f in grow)
    assert_frames_returned(r)


@pytest.mark.parametrize("limit", [8 * MIB, 2 * MIB])
def test_i386_stack_overflow_stops_at_the_limit(limit):
    path = sample32("stackoverflow")
    r = run32(path, stack_limit=limit)
    if limit == 8 * MIB:
        assert (r.stdout, r.status) == native([path])
    assert (r.stdout, r.status) == (b"recursing without bound\n", 139)
    last = r.faults[-1]
    assert last.outcome == "segv" and last.page == STACK_TOP_32 - limit - PAGE_SIZE
    assert last.code & (PF_PRESENT | PF_USER) == PF_USER
    grow = r.by("stack-grow")
    assert len(grow) == (limit - STACK_INITIAL) // PAGE_SIZE
    assert min(f.page for f in grow) == STACK_TOP_32 - limit
    assert f"past its limit of {limit >> 20} MiB" in r.stderr
    assert_frames_returned(r)


def test_i386_stack_growth_stops_at_the_guard_gap(gcc32):
    r = run32(gcc32(STATIC, GUARDGAP_C))
    assert r.status == 139, r.stderr
    below = int(r.stdout.split()[0], 16)
    assert below == STACK_TOP_32 - STACK_INITIAL - 4 * MIB
    last = r.faults[-1]
    assert last.outcome == "segv" and last.page == below + PAGE_SIZE + STACK_GUARD_GAP - PAGE_SIZE
    grow = r.by("stack-grow")
    assert min(f.page for f in grow) == below + PAGE_SIZE + STACK_GUARD_GAP
    assert "guard gap" in r.stderr
    assert_frames_returned(r)


# -- NX: PAE has it, two-level paging has not ------------------------------------------------------------
#
# A 64-bit kernel runs i386 programs with NX, so natively a call into the stack or .data is SIGSEGV.
# With --paging pae run-elf agrees: the leaf entry has bit 63 and the fetch is a protection fault.
# Two-level i386 entries are 4 bytes wide and have no NX bit (Linux's _PAGE_NX is 0 there): a readable
# page is executable, so the same program runs the `ret` and carries on, as on a real non-PAE i386.

NX_PROGRAMS = {"stack": ("execstack", "calling code on the stack\n"), "data": ("execdata", "calling code in .data\n")}


def nx_program(gcc32, which: str) -> str:
    name = NX_PROGRAMS[which][0]
    return sample32(name) if name == "execstack" else gcc32(STATIC, EXECDATA_C)


@pytest.mark.parametrize("which", list(NX_PROGRAMS))
def test_pae_nx_stops_a_jump_into_data(gcc32, which):
    path = nx_program(gcc32, which)
    r = run32(path, paging="pae")
    assert (r.stdout, r.status) == native([path]) == (NX_PROGRAMS[which][1].encode(), 139), r.stderr
    last = r.faults[-1]
    assert (last.outcome, last.access) == ("segv", ACCESS_FETCH)
    assert last.code == PF_PRESENT | PF_INSTR | PF_USER                # present, but no-execute
    assert f"(present, no-execute, {which})" in r.stderr
    assert r.tables[1].leaves[last.page] & NX
    assert_frames_returned(r)


@pytest.mark.parametrize("which", list(NX_PROGRAMS))
def test_2level_has_no_nx_so_data_executes(gcc32, which):
    path = nx_program(gcc32, which)
    r = run32(path, paging="2level")
    assert (r.stdout, r.status) == ((NX_PROGRAMS[which][1] + "survived\n").encode(), 1), r.stderr
    assert not r.by("segv")
    # The fetch needed no fault: the page the `ret` ran from was mapped when it was written (data) or
    # grew (stack), and its writable, present, user 4-byte entry lets a fetch through.
    assert not [f for f in r.faults if f.access == ACCESS_FETCH and f.kind == which]
    leaves = r.tables[1].leaves
    if which == "data":
        pages = {Symbols(path).address_of("code") & ~(PAGE_SIZE - 1)}
    else:
        pages = {va for va in leaves if STACK_TOP_32 - STACK_INITIAL <= va < STACK_TOP_32}
    assert pages and all(leaves[pg] & (P | W | U) == P | W | U and leaves[pg] < 1 << 32 for pg in pages)
    assert_frames_returned(r)


# -- exec across widths ----------------------------------------------------------------------------------

def formats_in_order(faults: list[Fault32], pid: int) -> list[PagingFormat]:
    """The paging formats of pid's faults, consecutive repeats collapsed."""
    seq: list[PagingFormat] = []
    for f in faults:
        if f.pid == pid and (not seq or seq[-1] is not f.fmt):
            seq.append(f.fmt)
    return seq


@pytest.mark.parametrize("paging", list(PAGINGS))
def test_i386_program_execs_a_64bit_one(gcc32, paging):
    """A 32-bit process execs busybox (64-bit): its faults change from the i386 format to x86-64's, and
    the i386 tables and frames are all given back."""
    path = gcc32(STATIC, EXEC_C)
    args = ("/bin/busybox", "echo", "from busybox")
    if not os.path.exists(args[0]):
        pytest.skip("/bin/busybox is not installed (busybox-static)")
    r = run32(path, args, paging)
    assert (r.stdout, r.status) == native([path, *args]), r.stderr
    assert r.stdout == b"exec /bin/busybox\nfrom busybox\n"
    assert formats_in_order(r.faults, 1) == [PAGINGS[paging], X86_64]
    assert 1 not in r.tables                 # it exited as a 64-bit process
    assert_frames_returned(r)


@pytest.mark.parametrize("paging", list(PAGINGS))
def test_64bit_program_execs_an_i386_one(paging):
    """The 64-bit forkexec's child execs hello-i386: the child's faults change from x86-64 to i386."""
    path = os.path.join(SAMPLES_BIN, "forkexec")
    args = (sample32("hello"),)
    r = run32(path, args, paging)
    assert (r.stdout, r.status) == native([path, *args]), r.stderr
    assert b"hello, world\n" in r.stdout
    assert formats_in_order(r.faults, 1) == [X86_64]
    assert formats_in_order(r.faults, 2) == [X86_64, PAGINGS[paging]]
    assert r.tables[2].fmt is PAGINGS[paging] and r.tables[2].leaves == r.tables[2].api_leaves
    assert_frames_returned(r)


# -- fork: copy-on-write, and every frame back -----------------------------------------------------------

FORKCOW_BIG = 4 << 20          # forkcow.c's buffer, filled before fork (a malloc that glibc serves by mmap)
FORKCOW_PAGES = FORKCOW_BIG // PAGE_SIZE


def in_forkcow_big(f: Fault32) -> bool:
    """Whether a fault is in forkcow's 4 MiB buffer: the one mmap region of 4 MiB to 5 MiB."""
    return f.kind == "mmap" and FORKCOW_BIG <= f.end - f.start < FORKCOW_BIG + MIB


@pytest.mark.parametrize("paging", list(PAGINGS))
def test_i386_fork_copy_on_write(paging):
    """forkcow-i386: the child's first write to each page the parent filled before fork copies it (the
    page is shared); once the child is gone the parent's writes reuse its own frames without a copy."""
    path = sample32("forkcow")
    out, status = native([path])
    r = run32(path, paging=paging)
    assert (r.stdout, r.status) == (out, status), r.stderr
    assert status == 0 and b"child: wrote 512 pages of the big buffer" in out
    assert sorted({f.pid for f in r.faults}) == [1, 2]
    fork_at = next(i for i, f in enumerate(r.faults) if f.pid == 2)
    before = {}                                   # page -> the parent's frame, as it filled the buffer
    for f in r.faults[:fork_at]:
        if in_forkcow_big(f) and f.access == ACCESS_WRITE:
            before[f.page] = f.pfn
    assert len(before) >= FORKCOW_PAGES
    # The child writes every second page: each first write is a copy-on-write fault making a new frame.
    first_write = {}
    for f in r.faults[fork_at:]:
        if f.pid == 2 and in_forkcow_big(f) and f.access == ACCESS_WRITE:
            first_write.setdefault(f.page, f)
    assert len(first_write) == FORKCOW_PAGES // 2
    assert {f.outcome for f in first_write.values()} == {"cow-copy"}
    assert all(f.code == PF_PRESENT | PF_WRITE | PF_USER and f.pfn != before[f.page] for f in first_write.values())
    # Then the parent rewrites every page: it is the last owner of each, so the frame is reused.
    parent_after = {}
    for f in r.faults[fork_at:]:
        if f.pid == 1 and in_forkcow_big(f) and f.access == ACCESS_WRITE:
            parent_after.setdefault(f.page, f)
    assert len(parent_after) == FORKCOW_PAGES
    assert {f.outcome for f in parent_after.values()} == {"cow-reuse"}
    assert all(f.pfn == before[f.page] for f in parent_after.values())
    assert r.tables[2].fmt is r.tables[1].fmt is PAGINGS[paging]
    assert_frames_returned(r)


LEAK_CASES = [pytest.param(name, args, id=name)
              for name, args in [("args", ("a", "b c")), ("touch", ("4",)), ("children", ()), ("pipe", ()),
                                 ("waitstatus", ()), ("forkexec", ())]]


@pytest.mark.parametrize("name, args", LEAK_CASES)
def test_i386_no_frame_leaked(name, args):
    """Exited, forked, piped, killed and exec'd (to 64-bit hello) processes give back every frame."""
    path = sample32(name)
    r = run32(path, args)
    assert (r.stdout, r.status) == native([path, *args]), r.stderr
    assert_frames_returned(r)


# --- position-independent and dynamically linked i386 programs ---------------------------------

# Relocations everywhere: a table of function pointers and pointers to strings in .data (a static PIE
# relocates them itself at start-up; a dynamic one leaves that to ld.so), and a TLS variable.
RELOC_C = r"""
#include <stdio.h>
#include <string.h>
static int twice(int x) { return 2 * x; }
static int square(int x) { return x * x; }
static int (*ops[])(int) = {twice, square};
static const char *names[] = {"twice", "square"};
static __thread int calls = 40;
int main(int argc, char **argv) {
    for (int i = 0; i < 2; i++) { calls++; printf("%s(7) = %d\n", names[i], ops[i](7)); }
    printf("calls %d, argv[0] ends in %s\n", calls, strrchr(argv[0], '/') + 1);
    return calls;
}
"""
PIE_CASES = [pytest.param(("-static-pie",), id="static-pie"), pytest.param(("-pie",), id="dynamic-pie"),
             pytest.param(("-no-pie",), id="dynamic")]


@pytest.mark.parametrize("flags", PIE_CASES)
@pytest.mark.parametrize("paging", ["2level", "pae"])
def test_i386_pie_and_dynamic_programs_run_as_natively(gcc32, flags, paging):
    """A static PIE at 0x56555000, and dynamic programs with ld-linux.so.2 from the host, under both formats."""
    if flags != ("-static-pie",) and not os.path.exists("/lib/ld-linux.so.2"):
        pytest.skip("no i386 dynamic loader (/lib/ld-linux.so.2: libc6-i386) on this host")
    path = gcc32(flags, RELOC_C)
    want = native([path])
    r = run_elf([path], "--paging", paging)
    assert (r.stdout, r.status) == want, r.stderr
