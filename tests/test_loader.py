"""Tests of the pure loader: loader.elf, loader.stack, loader.symbols.

Real executables are compiled into a temporary directory (gcc -static,
gcc -static-pie, musl-gcc -static) and, where addresses are fixed, run
natively so that what the loader computes is checked against what Linux
actually did.  Malformed files are hand-built with struct.pack.
"""
from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess

import pytest
from conftest import decode_stack, stack_cstring

from loader.elf import (DEFAULT_PIE_BASE, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE,
                        USER_END, Image, LoadError, load_image)
from loader.stack import (AT_BASE, AT_CLKTCK, AT_EGID, AT_ENTRY, AT_EUID, AT_EXECFN, AT_FLAGS,
                          AT_GID, AT_HWCAP, AT_HWCAP2, AT_MINSIGSTKSZ, AT_NULL, AT_PAGESZ,
                          AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM, AT_RANDOM, AT_SECURE,
                          AT_UID, Credentials, build_stack)
from loader.symbols import Symbols

# --- compiling small C programs ---------------------------------------------------------

LAYOUT_C = r"""
#include <stdio.h>
#include <sys/auxv.h>
int init[1000] = {1, 2, 3};          /* 4000 bytes of .data: the file ends mid-page */
char zero[1 << 20];                   /* a big .bss after it */
int main(void) {
    zero[5] = (char)init[1];
    printf("%lx %lx %lx %lx %lx %lx\n", getauxval(AT_PHDR), getauxval(AT_PHNUM),
           getauxval(AT_ENTRY), (unsigned long)init, (unsigned long)zero, (unsigned long)main);
    return 0;
}
"""

# Dumps the string area [argv[0], top) and the auxv types, where top is just
# above the execfn string and the 8-byte end marker.
STACK_C = r"""
#include <stdio.h>
#include <string.h>
#include <elf.h>
int main(int argc, char **argv, char **envp) {
    char **e = envp;
    while (*e) e++;
    Elf64_auxv_t *aux = (Elf64_auxv_t *)(e + 1), *a;
    unsigned long execfn = 0, platform = 0, rnd = 0;
    printf("sp %lx\n", (unsigned long)(argv - 1));
    printf("types");
    for (a = aux; a->a_type != AT_NULL; a++) {
        printf(" %lu", (unsigned long)a->a_type);
        if (a->a_type == AT_EXECFN) execfn = a->a_un.a_val;
        if (a->a_type == AT_PLATFORM) platform = a->a_un.a_val;
        if (a->a_type == AT_RANDOM) rnd = a->a_un.a_val;
    }
    printf("\nplatform %lx\nrandom %lx\n", platform, rnd);
    unsigned long top = execfn + strlen((char *)execfn) + 1 + 8;
    printf("argv0 %lx\ntop %lx\nbytes ", (unsigned long)argv[0], top);
    for (unsigned char *p = (unsigned char *)argv[0]; p < (unsigned char *)top; p++) printf("%02x", *p);
    printf("\n");
    return 0;
}
"""


@pytest.fixture(scope="session")
def compile_c(tmp_path_factory):
    """compile_c(compiler, flags, source) -> path of the executable (cached; skips if impossible)."""
    out_dir = tmp_path_factory.mktemp("bin")
    cache: dict[tuple, str] = {}

    def compile_(compiler: str, flags: tuple[str, ...], source: str) -> str:
        key = (compiler, flags, source)
        if key in cache:
            return cache[key]
        if shutil.which(compiler) is None:
            pytest.skip(f"{compiler} is not installed")
        n = len(cache)
        src = out_dir / f"p{n}.c"
        exe = out_dir / f"p{n}"
        src.write_text(source)
        r = subprocess.run([compiler, *flags, "-O1", "-o", str(exe), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"{compiler} {' '.join(flags)} cannot build a test program: {r.stderr.strip()[:200]}")
        cache[key] = str(exe)
        return str(exe)

    return compile_


STATIC = [("gcc", ("-static",)), ("musl-gcc", ("-static",))]
ALL_STATIC = STATIC + [("gcc", ("-static-pie",))]


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """stdout of running argv natively (which must succeed)."""
    r = subprocess.run(argv, env=env if env is not None else {}, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def segment_of(image: Image, addr: int):
    """The segment containing addr (fails the test if none)."""
    hits = [s for s in image.segments if s.start <= addr < s.end]
    assert len(hits) == 1, f"{addr:#x} in {len(hits)} segments"
    return hits[0]


# --- real executables -------------------------------------------------------------------

@pytest.mark.parametrize("compiler,flags", ALL_STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_segments_are_page_aligned_with_consistent_prot(compile_c, compiler, flags):
    image = load_image(compile_c(compiler, flags, LAYOUT_C))
    assert image.machine == "x86_64"
    assert image.segments == sorted(image.segments, key=lambda s: s.start)
    kinds = {"text": 0, "rodata": 0, "data": 0}
    for s in image.segments:
        assert s.start % PAGE_SIZE == 0 and s.end % PAGE_SIZE == 0 and s.start < s.end
        assert s.offset % PAGE_SIZE == 0
        assert s.start <= s.file_start <= s.file_end <= s.end
        assert s.file_start - s.start < PAGE_SIZE
        assert s.prot & PROT_READ
        kind = "text" if s.prot & PROT_EXEC else "data" if s.prot & PROT_WRITE else "rodata"
        assert s.kind == kind
        kinds[kind] += 1
    assert kinds["text"] >= 1 and kinds["data"] == 1
    for a, b in zip(image.segments, image.segments[1:]):
        assert a.end <= b.start
    assert image.brk_start == max(s.end for s in image.segments)
    assert image.stack_exec is False
    assert image.interp is None
    assert image.phent == 56


@pytest.mark.parametrize("compiler,flags", ALL_STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_entry_is_inside_text(compile_c, compiler, flags):
    image = load_image(compile_c(compiler, flags, LAYOUT_C))
    seg = segment_of(image, image.entry)
    assert seg.kind == "text" and seg.prot & PROT_EXEC


@pytest.mark.parametrize("compiler,flags", STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_non_pie_matches_what_linux_did(compile_c, compiler, flags):
    path = compile_c(compiler, flags, LAYOUT_C)
    image = load_image(path)
    assert image.elf_type == "ET_EXEC" and image.load_bias == 0
    phdr, phnum, entry, init, zero, main = (int(x, 16) for x in run([path]).split())
    assert (image.phdr, image.phnum, image.entry) == (phdr, phnum, entry)
    data = segment_of(image, init)
    assert data.kind == "data" and data.file_start <= init and init + 4000 <= data.file_end
    assert segment_of(image, zero) is data and data.file_end <= zero and zero + (1 << 20) <= data.end
    assert image.brk_start >= zero + (1 << 20)
    assert Symbols(path).address_of("main") == main


@pytest.mark.parametrize("compiler,flags", STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_bss_partial_page(compile_c, compiler, flags):
    path = compile_c(compiler, flags, LAYOUT_C)
    image = load_image(path)
    data = next(s for s in image.segments if s.kind == "data")
    assert data.file_end % PAGE_SIZE != 0, "test program should end its .data mid-page"
    last = data.file_end & ~(PAGE_SIZE - 1)
    offset, count, at = data.page_source(last)
    assert count == data.file_end - last and at == 0
    assert offset == data.offset + (last - data.start)
    # what page_source copies is the file's bytes for those addresses
    with open(path, "rb") as f:
        f.seek(offset)
        assert image.read(offset, count) == f.read(count)
    # pages wholly past file_end are all zero
    assert data.page_source(last + PAGE_SIZE)[1] == 0
    assert data.page_source(data.end - PAGE_SIZE)[1] == 0
    # the initialised array is really in the file where page_source says
    init_addr = int(run([path]).split()[3], 16)
    page = init_addr & ~(PAGE_SIZE - 1)
    off, n, _ = data.page_source(page)
    assert image.read(off + (init_addr - page), 12) == struct.pack("<3i", 1, 2, 3)


def test_page_source_rejects_foreign_pages(compile_c):
    image = load_image(compile_c("gcc", ("-static",), LAYOUT_C))
    seg = image.segments[0]
    with pytest.raises(ValueError):
        seg.page_source(seg.end)
    with pytest.raises(ValueError):
        seg.page_source(seg.start + 1)


def test_text_pages_copy_whole_file_pages(compile_c):
    image = load_image(compile_c("gcc", ("-static",), LAYOUT_C))
    text = next(s for s in image.segments if s.kind == "text")
    assert text.page_source(text.start) == (text.offset, PAGE_SIZE, 0)


def test_static_pie_loads_at_default_base(compile_c):
    path = compile_c("gcc", ("-static-pie",), LAYOUT_C)
    image = load_image(path)
    assert image.elf_type == "ET_DYN"
    assert image.load_bias == DEFAULT_PIE_BASE        # gcc links static-PIE at vaddr 0
    assert image.segments[0].start == DEFAULT_PIE_BASE
    phdr, phnum, entry, init, zero, main = (int(x, 16) for x in run([path]).split())
    native_base = phdr - image.phdr + image.load_bias  # Linux put it somewhere random
    assert native_base % PAGE_SIZE == 0
    assert image.phnum == phnum
    assert image.entry - image.load_bias == entry - native_base
    assert Symbols(path, image.load_bias).address_of("main") - image.load_bias == main - native_base
    if image.tls is not None:
        assert segment_of(image, image.tls.vaddr).kind == "data"
    other = load_image(path, base=0x7f0000000000)
    assert other.load_bias == 0x7f0000000000 and other.entry == image.entry - DEFAULT_PIE_BASE + 0x7f0000000000


def test_tls_of_glibc_binary(compile_c):
    image = load_image(compile_c("gcc", ("-static",), LAYOUT_C))
    assert image.tls is not None
    assert image.tls.filesz <= image.tls.memsz and image.tls.align >= 1
    assert segment_of(image, image.tls.vaddr).kind == "data"


def test_image_read_is_short_at_eof(compile_c):
    path = compile_c("musl-gcc", ("-static",), LAYOUT_C)
    image = load_image(path)
    size = os.path.getsize(path)
    assert image.read(0, 4) == b"\x7fELF"
    assert image.read(size - 2, 10) == open(path, "rb").read()[-2:]
    assert image.read(size + 5, 10) == b""


# --- hand-built ELF files ---------------------------------------------------------------

PT_LOAD, PT_NOTE, PT_INTERP, PT_PHDR, PT_TLS = 1, 4, 3, 6, 7
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
WHOLE = -1      # in a phdr: the size of the whole file
BASE = 0x400000
CODE = b"\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05"     # xor edi,edi; mov eax,60; syscall


def make_elf(phdrs=None, *, cls=2, endian=1, version=1, osabi=0, e_type=2, machine=62,
             entry=None, phoff=64, phentsize=56, phnum=None, body=CODE) -> bytes:
    """A minimal ELF64 executable: header, program headers, then `body` (entry points at it).

    phdrs are (type, flags, offset, vaddr, filesz, memsz, align); WHOLE means the file size.
    The default is one R+X PT_LOAD mapping the whole file at BASE.
    """
    if phdrs is None:
        phdrs = [(PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000)]
    table_size = 56 * len(phdrs)
    size = 64 + table_size + len(body)
    if entry is None:
        entry = BASE + 64 + table_size
    ident = b"\x7fELF" + bytes([cls, endian, version, osabi]) + bytes(8)
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, e_type, machine, 1, entry, phoff, 0, 0,
                         64, phentsize, len(phdrs) if phnum is None else phnum, 64, 0, 0)
    table = b"".join(
        struct.pack("<IIQQQQQQ", t, f, o, v, v, size if fs == WHOLE else fs, size if ms == WHOLE else ms, a)
        for t, f, o, v, fs, ms, a in phdrs)
    return header + table + body


@pytest.fixture
def elf_file(tmp_path):
    """elf_file(bytes) -> path of a file holding them."""
    counter = iter(range(10**6))

    def write(data: bytes) -> str:
        path = tmp_path / f"f{next(counter)}"
        path.write_bytes(data)
        return str(path)

    return write


def test_minimal_handmade_elf_loads(elf_file):
    data = make_elf()
    image = load_image(elf_file(data))
    assert image.elf_type == "ET_EXEC"
    assert image.entry == BASE + 64 + 56
    assert image.phdr == BASE + 64 and image.phnum == 1
    (seg,) = image.segments
    assert (seg.start, seg.end, seg.offset, seg.prot, seg.kind) == (BASE, BASE + PAGE_SIZE, 0, PROT_READ | PROT_EXEC, "text")
    assert seg.file_end == BASE + len(data)
    assert seg.page_source(BASE) == (0, len(data), 0)
    assert image.tls is None and image.interp is None and image.stack_exec is False
    assert image.brk_start == BASE + PAGE_SIZE


def test_gnu_osabi_interp_tls_phdr_and_exec_stack(elf_file):
    interp = b"/lib/ld.so\0"
    body = CODE + interp
    interp_off = 64 + 5 * 56 + len(CODE)
    data = make_elf([
        (PT_PHDR, PF_R, 64, BASE + 64, 5 * 56, 5 * 56, 8),
        (PT_INTERP, PF_R, interp_off, BASE + interp_off, len(interp), len(interp), 1),
        (PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000),
        (PT_TLS, PF_R, 0, BASE, 4, 64, 16),
        (PT_GNU_STACK, PF_R | PF_W | PF_X, 0, 0, 0, 0, 16),
    ], osabi=3, body=body)
    image = load_image(elf_file(data))
    assert image.interp == "/lib/ld.so"
    assert image.phdr == BASE + 64 and image.phnum == 5
    assert (image.tls.vaddr, image.tls.filesz, image.tls.memsz, image.tls.align) == (BASE, 4, 64, 16)
    assert image.stack_exec is True


def test_bss_only_page_and_rwx_segment(elf_file):
    data = make_elf([
        (PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000),
        (PT_LOAD, PF_R | PF_W, 0x7000, BASE + 0x10000 + 0x7000, 0, 3 * PAGE_SIZE + 1, 0x1000),
    ])                                   # a bss-only segment may name an offset past EOF: nothing is read
    image = load_image(elf_file(data))
    bss = image.segments[1]
    assert (bss.start, bss.end) == (BASE + 0x17000, BASE + 0x1b000)
    assert bss.file_start == bss.file_end == BASE + 0x17000
    assert all(bss.page_source(p)[1] == 0 for p in range(bss.start, bss.end, PAGE_SIZE))
    assert image.brk_start == BASE + 0x1b000


def test_empty_pt_load_is_ignored(elf_file):
    data = make_elf([
        (PT_LOAD, PF_R | PF_X, 0, BASE, WHOLE, WHOLE, 0x1000),
        (PT_LOAD, PF_R, 0, 0, 0, 0, 0x1000),
    ])
    assert len(load_image(elf_file(data)).segments) == 1


def test_segment_may_end_exactly_at_top_of_user_space(elf_file):
    top = USER_END - PAGE_SIZE
    data = make_elf([(PT_LOAD, PF_R | PF_X, 0, top, WHOLE, WHOLE, 0x1000)], entry=top + 64 + 56)
    assert load_image(elf_file(data)).segments[0].end == USER_END


def ok_load(**overrides):
    """The default single-PT_LOAD phdr tuple with some fields replaced."""
    fields = dict(type=PT_LOAD, flags=PF_R | PF_X, offset=0, vaddr=BASE, filesz=WHOLE, memsz=WHOLE, align=0x1000)
    fields.update(overrides)
    return tuple(fields.values())


TEXT = ok_load()
MALFORMED = {
    "empty file": (b"", "not an ELF file"),
    "text file": (b"#!/bin/sh\necho hi\n", "not an ELF file"),
    "magic only": (b"\x7fELF", "truncated ELF header"),
    "header cut short": (make_elf()[:40], "truncated ELF header"),
    "elf32": (make_elf(cls=1), "not a 64-bit ELF file"),
    "bad class": (make_elf(cls=0), "not a 64-bit ELF file"),
    "big endian": (make_elf(endian=2), "not a little-endian ELF file"),
    "bad ident version": (make_elf(version=0), "unsupported ELF version"),
    "freebsd abi": (make_elf(osabi=9), "unsupported OS ABI 9"),
    "relocatable": (make_elf(e_type=1), "not an executable (ET_REL)"),
    "core": (make_elf(e_type=4), "not an executable (ET_CORE)"),
    "odd type": (make_elf(e_type=0xfe00), "not an executable"),
    "i386": (make_elf(machine=3), "not an x86-64 executable"),
    "aarch64": (make_elf(machine=183), "not an x86-64 executable"),
    "no phdrs": (make_elf(phnum=0), "no program headers"),
    "bad phentsize": (make_elf(phentsize=32), "bad program header size 32"),
    "too many phdrs": (make_elf(phnum=0xffff), "too many program headers"),
    "phoff past eof": (make_elf(phoff=1 << 40), "truncated program headers"),
    "phoff huge": (make_elf(phoff=(1 << 64) - 8), "truncated program headers"),
    "phdrs cut short": (make_elf()[:64 + 30], "truncated program headers"),
    "no pt_load": (make_elf([(PT_NOTE, PF_R, 0, BASE, 4, 4, 4)]), "no loadable segments"),
    "filesz > memsz": (make_elf([ok_load(filesz=0x100, memsz=0x80)]), "p_filesz larger than p_memsz in segment 0"),
    "past eof": (make_elf([ok_load(filesz=0x10000, memsz=0x10000)]), "segment 0 extends past the end of the file"),
    "offset huge": (make_elf([ok_load(offset=(1 << 64) - PAGE_SIZE, filesz=0x10, memsz=0x10)]), "extends past the end of the file"),
    "align not power of two": (make_elf([ok_load(align=0x3000)]), "p_align not a power of two in segment 0"),
    "vaddr/offset incongruent": (make_elf([ok_load(vaddr=BASE + 0x10)], entry=BASE + 0x100), "not congruent"),
    "overlap": (make_elf([TEXT, ok_load(flags=PF_R | PF_W, vaddr=BASE + 0x800, offset=0x800, filesz=0, memsz=0x1000)]),
                "segments 0 and 1 overlap"),
    "overlap unsorted": (make_elf([ok_load(flags=PF_R | PF_W, vaddr=BASE - 0x1000, filesz=0, memsz=0x1001), TEXT]),
                         "segments 0 and 1 overlap"),
    "share one page": (make_elf([TEXT, ok_load(flags=PF_R | PF_W, vaddr=BASE + 0xf00, offset=0xf00, filesz=0, memsz=0x10)]),
                       "segments 0 and 1 overlap"),
    "duplicate": (make_elf([TEXT, TEXT]), "segments 0 and 1 overlap"),
    "wraps around": (make_elf([TEXT, ok_load(flags=PF_R, vaddr=(1 << 64) - PAGE_SIZE, filesz=0, memsz=2 * PAGE_SIZE)]),
                     "segment 1 extends past the end of user space"),
    "non-canonical": (make_elf([TEXT, ok_load(flags=PF_R, vaddr=0xffff_8000_0000_0000, filesz=0, memsz=1)]),
                      "segment 1 extends past the end of user space"),
    "reaches 1<<47": (make_elf([TEXT, ok_load(flags=PF_R, vaddr=USER_END - PAGE_SIZE, filesz=0, memsz=PAGE_SIZE + 1)]),
                      "segment 1 extends past the end of user space"),
    "at 1<<47": (make_elf([TEXT, ok_load(flags=PF_R, vaddr=USER_END, filesz=0, memsz=1)]),
                 "segment 1 extends past the end of user space"),
    "page zero": (make_elf([ok_load(vaddr=0)], entry=0x78), "segment 0 maps below 0x10000"),
    "entry outside": (make_elf(entry=BASE + 0x5000), "entry point 0x405000 is not in an executable segment"),
    "entry before": (make_elf(entry=BASE - 1), "not in an executable segment"),
    "entry in data": (make_elf([ok_load(flags=PF_R | PF_W)]), "not in an executable segment"),
    "bad interp": (make_elf([TEXT, (PT_INTERP, PF_R, 64, 0, 5, 5, 1)]), "bad PT_INTERP"),
    "interp past eof": (make_elf([TEXT, (PT_INTERP, PF_R, 1 << 30, 0, 5, 5, 1)]), "bad PT_INTERP"),
    "bad tls": (make_elf([TEXT, (PT_TLS, PF_R, 0, BASE, 8, 4, 8)]), "p_filesz larger than p_memsz in segment 1"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_file_raises_load_error(elf_file, name):
    data, message = MALFORMED[name]
    with pytest.raises(LoadError) as info:
        load_image(elf_file(data))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_files_raise_load_error(tmp_path):
    with pytest.raises(LoadError, match="cannot read file"):
        load_image(str(tmp_path / "missing"))
    with pytest.raises(LoadError, match="is a directory"):
        load_image(str(tmp_path))
    with pytest.raises(LoadError, match="not a regular file"):
        load_image("/dev/null")


def test_fuzzed_headers_raise_only_load_error(elf_file, compile_c):
    """Random damage to the header and program headers: LoadError or a consistent Image, nothing else."""
    rng = random.Random(1234)
    seeds = [make_elf(), open(compile_c("musl-gcc", ("-static",), LAYOUT_C), "rb").read()]
    for i in range(1500):
        data = bytearray(rng.choice(seeds))
        head = min(len(data), 64 + 56 * 10)
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
        for s in image.segments:
            assert MIN_ADDR <= s.start < s.end <= USER_END and s.offset >= 0


MIN_ADDR = 0x10000


# --- parsing through pyelftools ---------------------------------------------------------

BIG_C = r"""
int table[300000] = {1};              /* 1.2 MB of .data: a static binary well over 1 MB */
int main(void) { return table[0] - 1; }
"""


def test_numeric_messages_survive_pyelftools_names(elf_file):
    """pyelftools decodes e_type/e_machine to names ('ET_LOPROC', 'EM_386'); the messages still give the numbers."""
    for data, message in [(make_elf(e_type=0xff00), "not an executable (e_type 0xff00)"),
                          (make_elf(e_type=0), "not an executable (ET_NONE)"),
                          (make_elf(machine=3), "not an x86-64 executable (e_machine 3)"),
                          (make_elf(machine=0x1234), "not an x86-64 executable (e_machine 4660)")]:
        with pytest.raises(LoadError) as info:
            load_image(elf_file(data))
        assert str(info.value) == message


@pytest.mark.parametrize("compiler,flags", ALL_STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_section_headers_are_never_read(compile_c, elf_file, monkeypatch, compiler, flags):
    """Like Linux, only the ELF and program headers matter: garbage section headers change nothing.

    (A static-PIE has a PT_DYNAMIC, for which ELFFile.get_segment() would scan every section header.)
    """
    import elftools.elf.elffile as elffile
    path = compile_c(compiler, flags, LAYOUT_C)
    good = load_image(path)
    data = bytearray(open(path, "rb").read())
    struct.pack_into("<Q", data, 0x28, 1 << 40)                     # e_shoff far past EOF
    struct.pack_into("<HHH", data, 0x3a, 3, 0x7777, 0x7000)          # e_shentsize, e_shnum, e_shstrndx
    damaged = load_image(elf_file(bytes(data)))
    assert (damaged.segments, damaged.entry, damaged.phdr, damaged.tls, damaged.load_bias) == \
        (good.segments, good.entry, good.phdr, good.tls, good.load_bias)

    def refuse(*args, **kwargs):
        raise AssertionError("the loader read a section header")

    for name in ("get_section", "iter_sections", "_get_section_header", "get_segment", "iter_segments"):
        monkeypatch.setattr(elffile.ELFFile, name, refuse)
    assert load_image(path).segments == good.segments


def test_pyelftools_errors_become_one_line_load_errors(elf_file, monkeypatch):
    import loader.elf as elf
    from elftools.common.exceptions import ELFParseError
    from elftools.construct import FieldError

    def broken(*args, **kwargs):
        raise ELFParseError("expected 56,\nfound 3")

    monkeypatch.setattr(elf, "struct_parse", broken)
    with pytest.raises(LoadError) as info:
        load_image(elf_file(make_elf()))
    assert str(info.value) == "bad program header 0: expected 56, found 3"
    monkeypatch.undo()

    class Broken:
        def __init__(self, stream):
            raise FieldError("bad\nfield")

    monkeypatch.setattr(elf, "ELFFile", Broken)
    with pytest.raises(LoadError) as info:
        load_image(elf_file(make_elf()))
    assert str(info.value) == "bad ELF header: bad field"


def test_load_image_of_a_1mb_static_binary_is_fast(compile_c):
    """pyelftools is lazy: only the header and program headers are decoded, whatever the file size."""
    import time
    path = compile_c("gcc", ("-static",), BIG_C)
    assert os.path.getsize(path) >= 1 << 20
    load_image(path)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        image = load_image(path)
        best = min(best, time.perf_counter() - start)
    assert best < 0.020, f"load_image took {best * 1000:.1f} ms"
    assert len(image.data) == os.path.getsize(path)


# --- the initial stack ------------------------------------------------------------------

TOP = 0x7ffffffff000
RANDOM = bytes(range(0xa0, 0xb0))
CREDS = Credentials(uid=1000, euid=1001, gid=100, egid=101)


@pytest.fixture(scope="module")
def gcc_image(compile_c) -> Image:
    return load_image(compile_c("gcc", ("-static",), LAYOUT_C))


def build(image, argv=(b"prog", b"-x", b"hello world"), envp=(b"HOME=/root", b"A="), **kw):
    kw.setdefault("execfn", b"/usr/bin/prog")
    return build_stack(image, TOP, list(argv), list(envp), RANDOM, CREDS, hwcap=0x178bfbff, **kw)


def test_stack_decodes(gcc_image):
    st = build(gcc_image)
    argc, argv, envp, auxv, _ = decode_stack(st)
    assert (argc, argv, envp) == (3, [b"prog", b"-x", b"hello world"], [b"HOME=/root", b"A="])
    assert auxv == st.auxv
    aux = dict(auxv)
    assert aux[AT_PHDR] == gcc_image.phdr and aux[AT_PHNUM] == gcc_image.phnum and aux[AT_PHENT] == 56
    assert aux[AT_ENTRY] == gcc_image.entry and aux[AT_BASE] == 0 and aux[AT_FLAGS] == 0
    assert (aux[AT_UID], aux[AT_EUID], aux[AT_GID], aux[AT_EGID]) == (1000, 1001, 100, 101)
    assert aux[AT_PAGESZ] == 4096 and aux[AT_CLKTCK] == 100 and aux[AT_SECURE] == 0
    assert aux[AT_HWCAP] == 0x178bfbff and aux[AT_HWCAP2] == 0
    assert st.data[aux[AT_RANDOM] - st.sp:][:16] == RANDOM
    assert stack_cstring(st, aux[AT_EXECFN]) == b"/usr/bin/prog"
    assert stack_cstring(st, aux[AT_PLATFORM]) == b"x86_64"
    assert [stack_cstring(st, a) for a in st.argv_addrs] == argv


def test_auxv_order_is_linux_order(gcc_image):
    order = [AT_HWCAP, AT_PAGESZ, AT_CLKTCK, AT_PHDR, AT_PHENT, AT_PHNUM, AT_BASE, AT_FLAGS, AT_ENTRY,
             AT_UID, AT_EUID, AT_GID, AT_EGID, AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_PLATFORM, AT_NULL]
    assert [t for t, _ in build(gcc_image).auxv] == order
    with_sigstk = build(gcc_image, minsigstksz=0xd30).auxv
    assert with_sigstk[0] == (AT_MINSIGSTKSZ, 0xd30) and [t for t, _ in with_sigstk[1:]] == order


def test_stack_layout_from_the_top(gcc_image):
    st = build(gcc_image)
    assert st.sp % 16 == 0 and st.sp + len(st.data) == TOP == st.top
    assert st.data[-8:] == bytes(8)                                   # end marker
    execfn = dict(st.auxv)[AT_EXECFN]
    assert execfn + len(b"/usr/bin/prog") + 1 == TOP - 8
    assert st.envp_addrs[-1] + len(b"A=") + 1 == execfn               # env strings just below execfn
    assert st.argv_addrs[-1] + len(b"hello world") + 1 == st.envp_addrs[0]
    assert st.argv_addrs == sorted(st.argv_addrs) and st.envp_addrs == sorted(st.envp_addrs)
    platform = dict(st.auxv)[AT_PLATFORM]
    assert platform + 7 == st.argv_addrs[0] & ~15                     # arch_align_stack, then the platform
    assert dict(st.auxv)[AT_RANDOM] == platform - 16
    table_end = st.sp + 8 * (1 + 4 + 3 + 2 * len(st.auxv))
    assert table_end <= platform - 16 < table_end + 16                # STACK_ROUND: the table sits just below


@pytest.mark.parametrize("nargs", range(6))
@pytest.mark.parametrize("nenv", range(3))
def test_sp_is_aligned_for_any_count(gcc_image, nargs, nenv):
    argv = [b"a" * (i + 1) for i in range(nargs)]
    st = build(gcc_image, argv=argv, envp=[b"E%d=1" % i for i in range(nenv)])
    argc, got_argv, got_envp, _, _ = decode_stack(st)
    assert st.sp % 16 == 0
    if nargs == 0:
        assert (argc, got_argv) == (1, [b""])                         # Linux >= 5.18
    else:
        assert (argc, got_argv) == (nargs, argv)
    assert len(got_envp) == nenv


def test_argument_list_too_long(gcc_image):
    with pytest.raises(LoadError, match="argument list too long"):
        build(gcc_image, argv=[b"x" * 100_000] * 25)
    with pytest.raises(LoadError, match="argument list too long"):
        build(gcc_image, argv=[b"x" * (32 * 4096)])                  # one string over MAX_ARG_STRLEN
    build(gcc_image, argv=[b"x" * 100_000] * 20)                       # 2 MB is fine


def test_stack_rejects_bad_inputs(gcc_image):
    with pytest.raises(ValueError):
        build_stack(gcc_image, TOP - 8, [b"a"], [], RANDOM, CREDS, b"a", 0)
    with pytest.raises(ValueError):
        build_stack(gcc_image, TOP, [b"a"], [], b"short", CREDS, b"a", 0)
    with pytest.raises(LoadError):
        build(gcc_image, argv=[b"a\0b"])


def test_stack_strings_match_linux_byte_for_byte(compile_c):
    """Run a program natively and compare the string area and auxv order with build_stack."""
    path = compile_c("gcc", ("-static",), STACK_C)
    argv = [path, "one", "", "three four"]
    env = {"A": "1", "LONGER_NAME": "value with spaces"}
    out = dict(line.split(" ", 1) for line in run(argv, env).splitlines())
    top = int(out["top"], 16)
    native_types = [int(t) for t in out["types"].split()]
    native_bytes = bytes.fromhex(out["bytes"])
    platform, rnd = int(out["platform"], 16), int(out["random"], 16)
    assert top % PAGE_SIZE == 0
    assert int(out["sp"], 16) % 16 == 0
    assert (platform + 7) % 16 == 0 and rnd == platform - 16          # the layout build_stack assumes

    image = load_image(path)
    st = build_stack(image, top, [a.encode() for a in argv], [f"{k}={v}".encode() for k, v in env.items()],
                     RANDOM, CREDS, execfn=path.encode(), hwcap=0)
    assert st.argv_addrs[0] == int(out["argv0"], 16)
    assert st.data[st.argv_addrs[0] - st.sp:] == native_bytes
    ours = [t for t, _ in st.auxv if t != AT_NULL]
    assert [t for t in native_types if t in ours] == ours


# --- symbols ----------------------------------------------------------------------------

@pytest.mark.parametrize("compiler,flags", STATIC, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_symbols_find_main(compile_c, compiler, flags):
    path = compile_c(compiler, flags, LAYOUT_C)
    syms = Symbols(path)
    main = syms.address_of("main")
    assert main is not None and segment_of(load_image(path), main).kind == "text"
    assert syms.lookup(main) == ("main", 0)
    assert syms.format(main + 0x1a) == "main+0x1a"
    assert syms.format(main) == "main+0x0"
    assert syms.lookup(0x1000) is None and syms.format(0x1000) == ""
    assert syms.address_of("no_such_symbol_here") is None
    zero = syms.address_of("zero")
    assert syms.lookup(zero + 1234) == ("zero", 1234)


def test_symbols_with_bias(compile_c):
    path = compile_c("gcc", ("-static-pie",), LAYOUT_C)
    plain, biased = Symbols(path), Symbols(path, bias=DEFAULT_PIE_BASE)
    assert biased.address_of("main") == plain.address_of("main") + DEFAULT_PIE_BASE
    assert biased.format(biased.address_of("main") + 4) == "main+0x4"


def test_symbols_never_raise(compile_c, tmp_path):
    stripped = tmp_path / "stripped"
    shutil.copy(compile_c("gcc", ("-static",), LAYOUT_C), stripped)
    if shutil.which("strip") is None:
        pytest.skip("strip is not installed")
    subprocess.run(["strip", str(stripped)], check=True)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF\x02\x01\x01" + b"\xff" * 200)
    for path in (stripped, junk, tmp_path / "missing", tmp_path):
        syms = Symbols(str(path))
        assert syms.lookup(0x401000) is None
        assert syms.format(0x401000) == ""
        assert syms.address_of("main") is None
