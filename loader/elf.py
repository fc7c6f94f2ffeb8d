"""Parse an x86-64 or i386 ELF executable into an Image: the pages to map, the entry point, the auxv inputs.

Pure: reads the file once, maps nothing.  Like xv6's exec() and Linux's
load_elf_binary(), it looks only at the ELF header and the program headers;
sections are irrelevant to loading.  Every malformed input raises LoadError.

The header and program headers are decoded by pyelftools (ELFFile over the
file's bytes).  Only what pyelftools cannot express is checked by hand before
it runs: the e_ident bytes (so each gets its own message) and the bounds of
the program header table.  Program headers are decoded with pyelftools' own
Elf_Phdr struct rather than ELFFile.get_segment()/iter_segments(): for a
PT_DYNAMIC (every static-PIE has one) those scan the whole section header
table, which is slow and fails on section headers that Linux never reads.
Sections are never touched.

Both ELF classes go through the same code: ELFCLASS64 files must be EM_X86_64,
ELFCLASS32 files EM_386 (x32, ELFCLASS32 with EM_X86_64, is refused).  What
differs by class is in `ElfClass`: the header and program header sizes, where
user space ends (the canonical lower half for x86-64; Linux's PAGE_OFFSET,
0xc0000000, for i386 in the 3G/1G split) and the default base of a static PIE.
"""
from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE, ENUM_P_TYPE_BASE
from elftools.elf.segments import Segment as ElfSegment

PAGE_SIZE = 4096
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
DEFAULT_PIE_BASE = 0x555555554000  # where ET_DYN (static-PIE) images load; deterministic (Linux's ELF_ET_DYN_BASE with randomisation off)
DEFAULT_PIE_BASE_32 = 0x56555000   # the same for i386 static-PIE (where Linux puts an i386 PIE with ASLR off)

USER_END = 0x0000_8000_0000_0000   # first address above the canonical lower half: user space ends here
USER_END_32 = 0xC000_0000          # i386: Linux's PAGE_OFFSET in the 3G/1G split; the kernel lies above
MMAP_MIN_ADDR = 0x10000            # Linux's default vm.mmap_min_addr: nothing may be mapped below it

# e_ident
ELF_MAGIC = b"\x7fELF"
EI_CLASS, EI_DATA, EI_VERSION, EI_OSABI = 4, 5, 6, 7
EI_NIDENT = 16
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EV_CURRENT = 1
ELFOSABI_SYSV, ELFOSABI_GNU = 0, 3

# e_type, e_machine
ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
ET_EXEC, ET_DYN = 2, 3
EM_386, EM_X86_64 = 3, 62

# program headers
PT_LOAD, PT_INTERP, PT_PHDR, PT_TLS = 1, 3, 6, 7
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
PN_XNUM = 0xFFFF
MAX_PHDRS_SIZE = 65536             # Linux refuses program header tables larger than this

EHDR_SIZE = 64                     # sizeof(Elf64_Ehdr)
PHDR_SIZE = 56                     # sizeof(Elf64_Phdr)
EHDR_SIZE_32 = 52                  # sizeof(Elf32_Ehdr)
PHDR_SIZE_32 = 32                  # sizeof(Elf32_Phdr)

# What pyelftools raises on input it cannot decode (struct_parse wraps construct's errors in ELFParseError,
# but not every path goes through it).
ELFTOOLS_ERRORS = (ELFError, ConstructError, struct.error, ValueError, EOFError, IndexError, KeyError)


@dataclass(frozen=True)
class ElfClass:
    """What depends on the ELF class: sizes of the headers, the machine, where user space ends, the PIE base."""
    bits: int            # 64 or 32
    machine: int         # the e_machine it must have
    machine_name: str    # Image.machine
    ehdr_size: int
    phdr_size: int
    user_end: int        # segments must end at or below this
    pie_base: int        # where a static PIE loads unless told otherwise


CLASS_64 = ElfClass(64, EM_X86_64, "x86_64", EHDR_SIZE, PHDR_SIZE, USER_END, DEFAULT_PIE_BASE)
CLASS_32 = ElfClass(32, EM_386, "i386", EHDR_SIZE_32, PHDR_SIZE_32, USER_END_32, DEFAULT_PIE_BASE_32)
ELF_CLASSES = {ELFCLASS64: CLASS_64, ELFCLASS32: CLASS_32}


class LoadError(Exception):
    """The file cannot be loaded; str(e) is a one-line reason such as 'not an ELF file' or 'truncated program headers'."""


def page_down(addr: int) -> int:
    """Round addr down to a page boundary."""
    return addr & ~(PAGE_SIZE - 1)


def page_up(addr: int) -> int:
    """Round addr up to a page boundary."""
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD, widened to whole pages, load bias already applied."""
    start: int        # page-aligned vaddr of the first page
    end: int          # page-aligned vaddr past the last page (covers p_memsz)
    prot: int         # PROT_* from p_flags
    offset: int       # file offset that corresponds to `start`
    file_start: int   # p_vaddr + bias: first byte the program header puts in the segment
    file_end: int     # p_vaddr + p_filesz + bias; [file_end, end) is zero (bss, including the partial page)
    kind: str         # 'text' if exec, 'data' if writable, else 'rodata'

    def page_source(self, vaddr: int) -> tuple[int, int, int]:
        """For page vaddr (aligned) in this segment: (file offset, number of file bytes to copy, offset within the page where they go). Bytes not covered are zero.

        As Linux, which mmaps whole file pages, file bytes run from `start`
        (not `file_start`) up to `file_end`; so the copy always lands at
        offset 0 of the page and only the tail after file_end is zero.
        """
        if vaddr % PAGE_SIZE or not self.start <= vaddr < self.end:
            raise ValueError(f"{vaddr:#x} is not a page of segment {self.start:#x}-{self.end:#x}")
        count = max(0, min(PAGE_SIZE, self.file_end - vaddr))
        return self.offset + (vaddr - self.start), count, 0

    def contains(self, vaddr: int) -> bool:
        """True if vaddr lies in one of this segment's pages."""
        return self.start <= vaddr < self.end


@dataclass(frozen=True)
class Tls:
    """The PT_TLS template: filesz initialised bytes at vaddr, then zeros up to memsz."""
    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass
class Image:
    """An executable ready to map: what to put where, and what the auxv must say about it."""
    path: str
    elf_type: str              # 'ET_EXEC' or 'ET_DYN'
    machine: str               # 'x86_64' or 'i386'
    load_bias: int             # 0 for ET_EXEC, base - first page for ET_DYN
    entry: int                 # biased entry point
    phdr: int                  # vaddr of the program headers in memory (0 if they are not mapped)
    phent: int
    phnum: int
    segments: list[Segment]    # sorted by start
    tls: Tls | None
    stack_exec: bool           # PT_GNU_STACK has PF_X
    interp: str | None         # PT_INTERP path, if any
    brk_start: int             # page-aligned end of the highest segment: where the heap begins
    bits: int = 64             # 64 (ELFCLASS64, x86-64) or 32 (ELFCLASS32, i386)
    data: bytes = field(default=b"", repr=False)  # the whole file

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of the file (short at EOF)."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        return self.data[offset:offset + size]


@dataclass(frozen=True)
class Phdr:
    """One Elf64_Phdr or Elf32_Phdr as read from the file."""
    index: int
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


def load_image(path: str, base: int | None = None) -> Image:
    """Parse an x86-64 or i386 ELF executable into an Image; raise LoadError with a one-line reason for anything malformed.

    `base` is where a static PIE (ET_DYN) loads; by default DEFAULT_PIE_BASE for a 64-bit file,
    DEFAULT_PIE_BASE_32 for a 32-bit one.  ET_EXEC files load at their link addresses.
    """
    if base is not None and base % PAGE_SIZE:
        raise ValueError(f"load base {base:#x} is not page-aligned")
    data = read_file(path)
    try:
        return parse_image(path, data, base)
    except LoadError:
        raise
    except Exception as e:  # a bug in this module; still honour the contract, keep the cause chained
        raise LoadError(f"malformed ELF file ({type(e).__name__})") from e


MAX_FILE_SIZE = 1 << 30    # a larger "executable" is refused rather than read into memory


def read_file(path: str) -> bytes:
    """The whole file, or LoadError if it is not a regular file of sane size or cannot be read.

    The type is checked on the open descriptor (O_NONBLOCK, so a FIFO does not block the open):
    a FIFO, device or directory is refused before anything is read from it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise LoadError(f"cannot read file: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise LoadError("is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise LoadError("not a regular file")
        if st.st_size > MAX_FILE_SIZE:
            raise LoadError(f"file too large ({st.st_size >> 20} MiB)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise LoadError(f"cannot read file: {e.strerror or e}") from e
    finally:
        os.close(fd)


def parse_image(path: str, data: bytes, base: int | None = None) -> Image:
    """The Image described by the ELF bytes `data` (a static PIE at `base`, or its class's default base)."""
    elf = open_elf(data)
    cls = ELF_CLASSES[data[EI_CLASS]]
    e_type = check_header(elf, cls)
    if base is None:
        base = cls.pie_base
    e_phoff, e_phentsize, e_phnum = elf["e_phoff"], elf["e_phentsize"], elf["e_phnum"]
    phdrs = parse_phdrs(elf, len(data), cls)
    loads = [p for p in phdrs if p.type == PT_LOAD]
    if not loads:
        raise LoadError("no loadable segments")
    for p in loads:
        check_load(p, len(data))
    loads = [p for p in loads if p.memsz > 0]  # Linux maps nothing for an empty PT_LOAD
    if not loads:
        raise LoadError("no loadable segments")
    bias = 0 if e_type == ET_EXEC else base - page_down(min(p.vaddr for p in loads))
    placed = sorted(((make_segment(p, bias), p.index) for p in loads), key=lambda si: si[0].start)
    check_layout(placed, cls)
    segments = [s for s, _ in placed]
    entry = elf["e_entry"] + bias
    if not any(s.prot & PROT_EXEC and s.file_start <= entry < s.end for s in segments):
        raise LoadError(f"entry point {entry:#x} is not in an executable segment")
    return Image(
        path=path,
        elf_type=ET_NAMES[e_type],
        machine=cls.machine_name,
        load_bias=bias,
        entry=entry,
        phdr=find_phdr(phdrs, e_phoff, bias),
        phent=e_phentsize,
        phnum=e_phnum,
        segments=segments,
        tls=find_tls(phdrs, bias),
        stack_exec=any(p.type == PT_GNU_STACK and p.flags & PF_X for p in phdrs),
        interp=find_interp(phdrs, data),
        brk_start=page_up(max(s.end for s in segments)),
        bits=cls.bits,
        data=data,
    )


def check_ident(data: bytes) -> None:
    """Raise LoadError unless `data` starts with a full ELF header whose e_ident is 64- or 32-bit little-endian Linux.

    Done on the raw bytes, before pyelftools sees them: it accepts any class,
    byte order, version and OS ABI, and cannot parse a short header.
    """
    if data[:4] != ELF_MAGIC:
        raise LoadError("not an ELF file")
    if len(data) < EI_NIDENT:
        raise LoadError("truncated ELF header")
    if data[EI_CLASS] not in ELF_CLASSES:
        raise LoadError(f"not a 64-bit ELF file (EI_CLASS {data[EI_CLASS]})")
    if data[EI_DATA] != ELFDATA2LSB:
        raise LoadError("not a little-endian ELF file")
    if data[EI_VERSION] != EV_CURRENT:
        raise LoadError(f"unsupported ELF version {data[EI_VERSION]}")
    if data[EI_OSABI] not in (ELFOSABI_SYSV, ELFOSABI_GNU):
        raise LoadError(f"unsupported OS ABI {data[EI_OSABI]}")
    if len(data) < ELF_CLASSES[data[EI_CLASS]].ehdr_size:
        raise LoadError("truncated ELF header")


def open_elf(data: bytes) -> ELFFile:
    """A pyelftools ELFFile over `data` (header parsed, nothing else read), after check_ident."""
    check_ident(data)
    try:
        elf = ELFFile(io.BytesIO(data))
    except ELFTOOLS_ERRORS as e:
        raise LoadError(f"bad ELF header: {one_line(e)}") from e
    if elf.elfclass != ELF_CLASSES[data[EI_CLASS]].bits or not elf.little_endian:  # check_ident made sure; keep pyelftools honest
        raise LoadError("not a 64-bit or 32-bit little-endian ELF file")
    return elf


def check_header(elf: ELFFile, cls: ElfClass = CLASS_64) -> int:
    """e_type (ET_EXEC or ET_DYN) after checking the header describes an x86-64 (ELFCLASS64) or i386 (ELFCLASS32) executable."""
    e_type = enum_value(elf["e_type"], ENUM_E_TYPE)
    e_machine = enum_value(elf["e_machine"], ENUM_E_MACHINE)
    if e_type not in (ET_EXEC, ET_DYN):
        raise LoadError(f"not an executable ({ET_NAMES.get(e_type, f'e_type {e_type:#x}')})")
    if e_machine != cls.machine:
        if cls.bits == 32:      # x32 (EM_X86_64) and every other 32-bit machine
            raise LoadError(f"not a 64-bit ELF file, nor an i386 one (ELFCLASS32, e_machine {e_machine})")
        raise LoadError(f"not an x86-64 executable (e_machine {e_machine})")
    return e_type


def enum_value(value: int | str, enum: dict) -> int:
    """The number behind a field pyelftools decoded through `enum` (it gives a name when it knows one, else the int)."""
    return value if isinstance(value, int) else enum[value]


def one_line(e: BaseException) -> str:
    """A short single-line description of a pyelftools exception."""
    text = " ".join(str(e).split())
    return text[:120] if text else type(e).__name__


def parse_phdrs(elf: ELFFile, file_size: int, cls: ElfClass = CLASS_64) -> list[Phdr]:
    """The program header table at e_phoff, checked to lie inside the file."""
    phoff, phentsize, phnum = elf["e_phoff"], elf["e_phentsize"], elf["e_phnum"]
    if phnum == 0:
        raise LoadError("no program headers")
    if phentsize != cls.phdr_size:
        raise LoadError(f"bad program header size {phentsize}")
    if phnum == PN_XNUM or phnum * phentsize > MAX_PHDRS_SIZE:
        raise LoadError("too many program headers")
    if phoff + phnum * phentsize > file_size:
        raise LoadError("truncated program headers")
    return [read_phdr(elf, phoff + i * phentsize, i) for i in range(phnum)]


def read_phdr(elf: ELFFile, offset: int, index: int) -> Phdr:
    """The Elf64_Phdr or Elf32_Phdr at `offset`, decoded by pyelftools (p_paddr is ignored, as by Linux)."""
    try:
        seg = ElfSegment(struct_parse(elf.structs.Elf_Phdr, elf.stream, stream_pos=offset), elf.stream)
        p_type = enum_value(seg["p_type"], ENUM_P_TYPE_BASE)
    except ELFTOOLS_ERRORS as e:
        raise LoadError(f"bad program header {index}: {one_line(e)}") from e
    return Phdr(index, p_type, seg["p_flags"], seg["p_offset"], seg["p_vaddr"],
                seg["p_filesz"], seg["p_memsz"], seg["p_align"])


def check_load(p: Phdr, file_size: int) -> None:
    """Raise LoadError unless PT_LOAD p is self-consistent and inside the file."""
    n = p.index
    if p.align > 1 and p.align & (p.align - 1):
        raise LoadError(f"p_align not a power of two in segment {n}")
    if p.vaddr % PAGE_SIZE != p.offset % PAGE_SIZE:
        raise LoadError(f"p_vaddr and p_offset not congruent modulo the page size in segment {n}")
    if p.filesz > p.memsz:
        raise LoadError(f"p_filesz larger than p_memsz in segment {n}")
    if p.filesz and p.offset + p.filesz > file_size:    # bss-only segments read nothing, as in Linux
        raise LoadError(f"segment {n} extends past the end of the file")


def make_segment(p: Phdr, bias: int) -> Segment:
    """The page-granular Segment for PT_LOAD p loaded at bias (not yet checked to fit in user space)."""
    vaddr = p.vaddr + bias
    start = page_down(vaddr)
    prot = ((PROT_READ if p.flags & PF_R else 0) | (PROT_WRITE if p.flags & PF_W else 0)
            | (PROT_EXEC if p.flags & PF_X else 0))
    kind = "text" if prot & PROT_EXEC else "data" if prot & PROT_WRITE else "rodata"
    return Segment(start=start, end=page_up(vaddr + p.memsz), prot=prot,
                   offset=p.offset - (vaddr - start), file_start=vaddr,
                   file_end=vaddr + p.filesz, kind=kind)


def check_layout(placed: list[tuple[Segment, int]], cls: ElfClass = CLASS_64) -> None:
    """Raise LoadError if a segment (paired with its program header index, sorted by start) leaves user space or shares a page with another.

    User space ends at the top of the canonical lower half for x86-64, and at
    0xc0000000 (PAGE_OFFSET, where the kernel's quarter begins) for i386.

    gcc -static, gcc -static-pie and musl-gcc -static (with or without
    -z separate-code / -z norelro) never put two PT_LOADs in one page, so no
    sharing is allowed: each page has exactly one owner and one protection.
    """
    for s, n in placed:
        if s.start < MMAP_MIN_ADDR:
            raise LoadError(f"segment {n} maps below {MMAP_MIN_ADDR:#x}")
        if s.end > cls.user_end:
            if cls.bits == 32:
                raise LoadError(f"segment reaches the kernel (above {USER_END_32:#x}) in program header {n}")
            raise LoadError(f"segment {n} extends past the end of user space")
    for (a, m), (b, n) in zip(placed, placed[1:]):
        if a.end > b.start:
            raise LoadError(f"segments {min(m, n)} and {max(m, n)} overlap")


def find_phdr(phdrs: list[Phdr], phoff: int, bias: int) -> int:
    """Where the program headers are in memory: PT_PHDR, else the PT_LOAD whose file bytes hold e_phoff, else 0 (as Linux)."""
    for p in phdrs:
        if p.type == PT_PHDR:
            return p.vaddr + bias
    for p in phdrs:
        if p.type == PT_LOAD and p.offset <= phoff < p.offset + p.filesz:
            return p.vaddr + (phoff - p.offset) + bias
    return 0


def find_tls(phdrs: list[Phdr], bias: int) -> Tls | None:
    """The first PT_TLS as a Tls, or None."""
    for p in phdrs:
        if p.type == PT_TLS:
            if p.filesz > p.memsz:
                raise LoadError(f"p_filesz larger than p_memsz in segment {p.index}")
            if p.align > 1 and p.align & (p.align - 1):
                raise LoadError(f"p_align not a power of two in segment {p.index}")
            return Tls(vaddr=p.vaddr + bias, filesz=p.filesz, memsz=p.memsz, align=max(p.align, 1))
    return None


def find_interp(phdrs: list[Phdr], data: bytes) -> str | None:
    """The PT_INTERP path, or None; LoadError if it is not a NUL-terminated string inside the file."""
    for p in phdrs:
        if p.type == PT_INTERP:
            raw = data[p.offset:p.offset + p.filesz]
            if len(raw) != p.filesz or p.filesz < 2 or raw[-1] != 0 or 0 in raw[:-1]:
                raise LoadError("bad PT_INTERP")
            return raw[:-1].decode("utf-8", "surrogateescape")
    return None
