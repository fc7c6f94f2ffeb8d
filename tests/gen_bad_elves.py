#!/usr/bin/env python3
"""Write the corpus of malformed ELF files in tests/bad_elves/, one file per case, and its MANIFEST.txt.

    python tests/gen_bad_elves.py            # regenerate tests/bad_elves/
    python tests/gen_bad_elves.py OUTDIR     # write the corpus somewhere else

Every file must make run-elf answer `run-elf: cannot load PROGRAM: <reason>` with exit status
126, mapping and running nothing. MANIFEST.txt has one line per file, `filename: reason`, where
reason is a substring of the message run-elf must print (the loader's own wording).

Most cases are one mutation of `minimal()`, a valid ELF64 executable built here with struct
(one R+X PT_LOAD at 0x400000 that calls exit(42)); tests/test_bad_elves.py checks that it runs.
The `musl_*` cases are mutations of the committed sample samples/bin/hello-musl (a real
static executable), either whole (22 KB) or cut down to the header and program headers, so
the corpus stays well under 200 KB. The output is deterministic: regenerating it changes nothing.
"""

from __future__ import annotations

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT_DIR = os.path.join(HERE, "bad_elves")
SAMPLE = os.path.join(REPO, "samples", "bin", "hello-musl")

PAGE = 0x1000
BASE = 0x400000
USER_END = 1 << 47
KERNEL_TEXT = 0xFFFF_FFFF_8100_0000
DIRECT_MAP = 0xFFFF_8880_0000_0000
HUGE_BSS = 64 << 30                    # 64 GiB: more than any physical memory run-elf is given
MISSING_INTERP = b"/nonexistent/lib64/ld-linux-x86-64.so.2"

PT_NULL, PT_LOAD, PT_INTERP, PT_NOTE = 0, 1, 3, 4
PF_X, PF_W, PF_R = 1, 2, 4
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")     # Elf64_Ehdr
PHDR = struct.Struct("<IIQQQQQQ")             # Elf64_Phdr
WHOLE = -1                                    # in a phdr spec: the size of the whole file
EXIT_42 = b"\xbf\x2a\x00\x00\x00\xb8\x3c\x00\x00\x00\x0f\x05"   # mov edi,42; mov eax,60; syscall

# Offsets of Elf64_Ehdr fields.
E_MACHINE, E_ENTRY, E_PHOFF, E_PHNUM = 18, 24, 32, 56


def load(flags=PF_R | PF_X, offset=0, vaddr=BASE, filesz=WHOLE, memsz=WHOLE, align=PAGE, ptype=PT_LOAD):
    """A program header spec (type, flags, offset, vaddr, filesz, memsz, align)."""
    return (ptype, flags, offset, vaddr, filesz, memsz, align)


def make_elf(phdrs=None, *, cls=2, data=1, version=1, osabi=0, e_type=2, machine=62, entry=None,
             phoff=64, phentsize=56, phnum=None, body=EXIT_42, tail=b"") -> bytes:
    """An ELF64 executable: header, program headers, `body` (where the entry points by default), `tail`.

    The default is `minimal()`: one R+X PT_LOAD mapping the whole file at BASE.
    """
    if phdrs is None:
        phdrs = [load()]
    table = 56 * len(phdrs)
    size = 64 + table + len(body) + len(tail)
    if entry is None:
        entry = BASE + 64 + table
    ident = b"\x7fELF" + bytes([cls, data, version, osabi]) + bytes(8)
    header = EHDR.pack(ident, e_type, machine, 1, entry, phoff, 0, 0, 64, phentsize,
                       len(phdrs) if phnum is None else phnum, 64, 0, 0)
    out = header
    for ptype, flags, offset, vaddr, filesz, memsz, align in phdrs:
        out += PHDR.pack(ptype, flags, offset, vaddr, vaddr, size if filesz == WHOLE else filesz,
                         size if memsz == WHOLE else memsz, align)
    return out + body + tail


def minimal() -> bytes:
    """A valid static ELF64 executable (228 bytes) that exits with status 42."""
    return make_elf()


def interp_elf(path: bytes) -> bytes:
    """minimal() plus a PT_INTERP naming `path` (NUL-terminated, inside the file)."""
    string = path + b"\0"
    off = 64 + 2 * 56 + len(EXIT_42)
    return make_elf([load(ptype=PT_INTERP, flags=PF_R, offset=off, vaddr=BASE + off, filesz=len(string),
                          memsz=len(string), align=1), load()], tail=string)


# -- mutations of the real sample --------------------------------------------------------------------------

def sample_bytes() -> bytearray:
    """The sample cut after the file bytes of its last PT_LOAD (section headers and symbols are never loaded).

    Unmutated, this still runs and prints "hello, world" (tests/test_bad_elves.py checks it).
    """
    with open(SAMPLE, "rb") as f:
        data = bytearray(f.read())
    end = max(p[2] + p[4] for p in sample_phdrs(data) if p[0] == PT_LOAD)
    return data[:end]


def sample_phdrs(data: bytes) -> list[list[int]]:
    """The sample's program headers as mutable lists of the PHDR fields."""
    phoff, = struct.unpack_from("<Q", data, E_PHOFF)
    phnum, = struct.unpack_from("<H", data, E_PHNUM)
    return [list(PHDR.unpack_from(data, phoff + i * 56)) for i in range(phnum)]


def put_phdr(data: bytearray, index: int, fields: list[int]) -> None:
    phoff, = struct.unpack_from("<Q", data, E_PHOFF)
    PHDR.pack_into(data, phoff + index * 56, *fields)


def find_phdr(data: bytes, want) -> int:
    """Index of the first program header for which want(fields) is true."""
    for i, p in enumerate(sample_phdrs(data)):
        if want(p):
            return i
    raise LookupError("no such program header in the sample")


def loads_of(data: bytes) -> list[int]:
    return [i for i, p in enumerate(sample_phdrs(data)) if p[0] == PT_LOAD]


def musl_header_only() -> bytes:
    """The sample's ELF header and program header table alone: its text lies past the end of the file."""
    data = sample_bytes()
    phoff, = struct.unpack_from("<Q", data, E_PHOFF)
    phnum, = struct.unpack_from("<H", data, E_PHNUM)
    return bytes(data[:phoff + 56 * phnum])


def musl_truncated_phdrs() -> bytes:
    data = sample_bytes()
    phoff, = struct.unpack_from("<Q", data, E_PHOFF)
    return bytes(data[:phoff + 56 * 2 + 20])


def musl_machine_aarch64() -> bytes:
    """The sample's header and program headers with e_machine EM_AARCH64 (checked before any segment)."""
    data = bytearray(musl_header_only())
    struct.pack_into("<H", data, E_MACHINE, 183)
    return bytes(data)


def musl_entry_in_data() -> bytes:
    """e_entry moved into the writable data segment."""
    data = sample_bytes()
    rw = find_phdr(data, lambda p: p[0] == PT_LOAD and p[1] & PF_W)
    struct.pack_into("<Q", data, E_ENTRY, sample_phdrs(data)[rw][3])
    return bytes(data)


def musl_bss_huge() -> bytes:
    """The data segment's p_memsz grown to 64 GiB of bss."""
    data = sample_bytes()
    rw = find_phdr(data, lambda p: p[0] == PT_LOAD and p[1] & PF_W)
    fields = sample_phdrs(data)[rw]
    fields[6] = HUGE_BSS
    put_phdr(data, rw, fields)
    return bytes(data)


def musl_data_in_direct_map() -> bytes:
    """The data segment moved into the kernel's direct map (same page offset, so still congruent)."""
    data = sample_bytes()
    rw = find_phdr(data, lambda p: p[0] == PT_LOAD and p[1] & PF_W)
    fields = sample_phdrs(data)[rw]
    fields[3] = fields[4] = DIRECT_MAP + (fields[3] & (PAGE - 1))
    put_phdr(data, rw, fields)
    return bytes(data)


def musl_rodata_over_text() -> bytes:
    """A read-only segment moved onto the text segment's pages."""
    data = sample_bytes()
    phdrs = sample_phdrs(data)
    text = find_phdr(data, lambda p: p[0] == PT_LOAD and p[1] & PF_X)
    other = next(i for i in loads_of(data) if i > text and not phdrs[i][1] & PF_W)
    fields = phdrs[other]
    fields[3] = fields[4] = phdrs[text][3] + (fields[2] & (PAGE - 1)) - (phdrs[text][3] & (PAGE - 1))
    put_phdr(data, other, fields)
    return bytes(data)


def musl_interp_missing() -> bytes:
    """A program header that Linux ignores (PT_GNU_STACK) turned into a PT_INTERP naming a missing file."""
    data = sample_bytes()
    gnu_stack = find_phdr(data, lambda p: p[0] == 0x6474E551)
    string = MISSING_INTERP + b"\0"
    off = len(data)
    data += string
    put_phdr(data, gnu_stack, [PT_INTERP, PF_R, off, 0, 0, len(string), len(string), 1])
    return bytes(data)


def musl_filesz_gt_memsz() -> bytes:
    data = sample_bytes()
    rw = find_phdr(data, lambda p: p[0] == PT_LOAD and p[1] & PF_W)
    fields = sample_phdrs(data)[rw]
    fields[6] = fields[5] - 1
    put_phdr(data, rw, fields)
    return bytes(data)


# -- the cases ----------------------------------------------------------------------------------------------

def cases() -> dict[str, tuple[bytes, str]]:
    """file name -> (contents, substring of the reason run-elf must give)."""
    text = load()
    beyond = "extends past the end of user space"
    return {
        # not an ELF file at all, or cut short
        "not_elf_text.elf": (b"This is a text file, not a program.\n", "not an ELF file"),
        "not_elf_zeros.elf": (bytes(512), "not an ELF file"),
        "truncated_ident.elf": (b"\x7fELF\x02\x01", "truncated ELF header"),
        "truncated_header.elf": (minimal()[:40], "truncated ELF header"),
        "truncated_header_63_bytes.elf": (minimal()[:63], "truncated ELF header"),
        "truncated_phdrs.elf": (minimal()[:64 + 30], "truncated program headers"),
        "phoff_past_eof.elf": (make_elf(phoff=1 << 40), "truncated program headers"),
        "phoff_wraps.elf": (make_elf(phoff=(1 << 64) - 8), "truncated program headers"),
        "musl_truncated_phdrs.elf": (musl_truncated_phdrs(), "truncated program headers"),
        # wrong kind of ELF
        "wrong_class_elf32.elf": (make_elf(cls=1), "not a 64-bit ELF file"),
        "wrong_class_none.elf": (make_elf(cls=0), "not a 64-bit ELF file"),
        "wrong_endianness_msb.elf": (make_elf(data=2), "not a little-endian ELF file"),
        "wrong_ident_version.elf": (make_elf(version=0), "unsupported ELF version 0"),
        "wrong_osabi_freebsd.elf": (make_elf(osabi=9), "unsupported OS ABI 9"),
        "wrong_osabi_arm.elf": (make_elf(osabi=97), "unsupported OS ABI 97"),
        "wrong_machine_i386.elf": (make_elf(machine=3), "not an x86-64 executable (e_machine 3)"),
        "wrong_machine_aarch64.elf": (make_elf(machine=183), "not an x86-64 executable (e_machine 183)"),
        "musl_wrong_machine_aarch64.elf": (musl_machine_aarch64(), "not an x86-64 executable (e_machine 183)"),
        "wrong_type_rel.elf": (make_elf(e_type=1), "not an executable (ET_REL)"),
        "wrong_type_core.elf": (make_elf(e_type=4), "not an executable (ET_CORE)"),
        # program header table
        "no_phdrs.elf": (make_elf(phnum=0), "no program headers"),
        "bad_phentsize.elf": (make_elf(phentsize=32), "bad program header size 32"),
        "too_many_phdrs.elf": (make_elf(phnum=0xFFFF), "too many program headers"),
        "no_pt_load.elf": (make_elf([load(ptype=PT_NOTE, flags=PF_R, filesz=4, memsz=4, align=4)]),
                           "no loadable segments"),
        "only_empty_pt_load.elf": (make_elf([load(filesz=0, memsz=0)]), "no loadable segments"),
        # one segment inconsistent with the file or itself
        "segment_past_eof.elf": (make_elf([load(filesz=0x10000, memsz=0x10000)]),
                                 "segment 0 extends past the end of the file"),
        "segment_offset_past_eof.elf": (make_elf([text, load(flags=PF_R | PF_W, offset=0x5000, vaddr=BASE + 0x5000,
                                                             filesz=0x10, memsz=0x10)]),
                                        "segment 1 extends past the end of the file"),
        "segment_offset_wraps.elf": (make_elf([text, load(flags=PF_R, offset=(1 << 64) - PAGE, vaddr=BASE + 0x10000,
                                                          filesz=2 * PAGE, memsz=2 * PAGE)]),
                                     "segment 1 extends past the end of the file"),
        "musl_header_only.elf": (musl_header_only(), "extends past the end of the file"),
        "filesz_gt_memsz.elf": (make_elf([load(filesz=0x100, memsz=0x80)]),
                                "p_filesz larger than p_memsz in segment 0"),
        "musl_filesz_gt_memsz.elf": (musl_filesz_gt_memsz(), "p_filesz larger than p_memsz"),
        "align_not_power_of_two.elf": (make_elf([load(align=0x3000)]), "p_align not a power of two in segment 0"),
        "vaddr_offset_incongruent.elf": (make_elf([load(vaddr=BASE + 0x10)], entry=BASE + 0x10 + 120),
                                         "not congruent modulo the page size"),
        # where the segments go
        "segments_overlap.elf": (make_elf([text, load(flags=PF_R | PF_W, offset=0, vaddr=BASE, filesz=0, memsz=0x2000)]),
                                 "segments 0 and 1 overlap"),
        "segments_share_a_page.elf": (make_elf([text, load(flags=PF_R | PF_W, offset=0xF00, vaddr=BASE + 0xF00,
                                                           filesz=0, memsz=0x10)]),
                                      "segments 0 and 1 overlap"),
        "musl_segments_overlap.elf": (musl_rodata_over_text(), "overlap"),
        "segment_vaddr_wraps.elf": (make_elf([text, load(flags=PF_R, vaddr=(1 << 64) - PAGE, filesz=0,
                                                         memsz=2 * PAGE)]), "segment 1 " + beyond),
        "segment_memsz_wraps.elf": (make_elf([text, load(flags=PF_R | PF_W, vaddr=BASE + 0x10000, filesz=0,
                                                         memsz=(1 << 64) - 0x8000)]), "segment 1 " + beyond),
        "segment_noncanonical.elf": (make_elf([text, load(flags=PF_R, vaddr=0x1234_0000_0000_0000, filesz=0,
                                                          memsz=PAGE)]), "segment 1 " + beyond),
        "segment_at_user_end.elf": (make_elf([text, load(flags=PF_R, vaddr=USER_END, filesz=0, memsz=PAGE)]),
                                    "segment 1 " + beyond),
        "segment_crosses_user_end.elf": (make_elf([text, load(flags=PF_R, vaddr=USER_END - PAGE, filesz=0,
                                                              memsz=2 * PAGE)]), "segment 1 " + beyond),
        "segment_in_kernel_text.elf": (make_elf([load(vaddr=KERNEL_TEXT)], entry=KERNEL_TEXT + 120),
                                       "segment 0 " + beyond),
        "segment_in_direct_map.elf": (make_elf([text, load(flags=PF_R | PF_W, vaddr=DIRECT_MAP, filesz=0,
                                                           memsz=PAGE)]), "segment 1 " + beyond),
        "musl_data_in_direct_map.elf": (musl_data_in_direct_map(), beyond),
        "segment_at_page_zero.elf": (make_elf([load(vaddr=0)], entry=120), "segment 0 maps below 0x10000"),
        "memsz_exceeds_phys_mem.elf": (make_elf([text, load(flags=PF_R | PF_W, vaddr=BASE + 0x10000, filesz=0,
                                                            memsz=HUGE_BSS)]), "of physical memory"),
        "musl_bss_exceeds_phys_mem.elf": (musl_bss_huge(), "of physical memory"),
        # the entry point
        "entry_outside_segments.elf": (make_elf(entry=BASE + 0x5000), "entry point 0x405000 is not in an executable segment"),
        "entry_zero.elf": (make_elf(entry=0), "entry point 0x0 is not in an executable segment"),
        "entry_in_data_segment.elf": (make_elf([load(flags=PF_R | PF_W)]), "is not in an executable segment"),
        "entry_in_kernel_half.elf": (make_elf(entry=KERNEL_TEXT), "is not in an executable segment"),
        "musl_entry_in_data.elf": (musl_entry_in_data(), "is not in an executable segment"),
        # interpreters
        "interp_missing.elf": (interp_elf(MISSING_INTERP),
                               "interpreter " + MISSING_INTERP.decode() + " not found"),
        "musl_interp_missing.elf": (musl_interp_missing(), "interpreter " + MISSING_INTERP.decode() + " not found"),
        "interp_not_terminated.elf": (make_elf([text, load(ptype=PT_INTERP, flags=PF_R, offset=64, vaddr=0,
                                                           filesz=5, memsz=5, align=1)]), "bad PT_INTERP"),
        "interp_past_eof.elf": (make_elf([text, load(ptype=PT_INTERP, flags=PF_R, offset=1 << 30, vaddr=0,
                                                     filesz=5, memsz=5, align=1)]), "bad PT_INTERP"),
    }


def write_corpus(out_dir: str = OUT_DIR) -> dict[str, str]:
    """(Re)write every case and MANIFEST.txt into out_dir, removing stale *.elf files; name -> reason."""
    os.makedirs(out_dir, exist_ok=True)
    all_cases = cases()
    for name in os.listdir(out_dir):
        if name.endswith(".elf") and name not in all_cases:
            os.remove(os.path.join(out_dir, name))
    manifest = []
    for name, (data, reason) in sorted(all_cases.items()):
        assert ":" not in name and "\n" not in reason
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        manifest.append(f"{name}: {reason}\n")
    with open(os.path.join(out_dir, "MANIFEST.txt"), "w") as f:
        f.write("# file: substring of the reason in `run-elf: cannot load FILE: REASON` (exit status 126)\n")
        f.write("# generated by tests/gen_bad_elves.py; do not edit\n")
        f.writelines(manifest)
    return {name: reason for name, (_data, reason) in all_cases.items()}


def read_manifest(path: str = os.path.join(OUT_DIR, "MANIFEST.txt")) -> dict[str, str]:
    """MANIFEST.txt as file name -> reason substring."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.rstrip("\n").partition(": ")
                out[name] = reason
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else OUT_DIR
    written = write_corpus(target)
    total = sum(os.path.getsize(os.path.join(target, n)) for n in written)
    print(f"wrote {len(written)} files ({total} bytes) and MANIFEST.txt to {target}")
