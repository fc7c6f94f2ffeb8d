"""The initial process stack, byte for byte as Linux builds it (fs/exec.c, fs/binfmt_elf.c create_elf_tables).

From `top` downward, with stack randomisation off:

    top - 8        8-byte zero end marker
                   execfn string                      <- AT_EXECFN
                   envp strings, in order
                   argv strings, in order             <- argv[0]'s string is lowest
    (round down to 16: arch_align_stack)
                   platform string                    <- AT_PLATFORM
                   16 random bytes                    <- AT_RANDOM
    (gap: the table is placed so that sp is 16-byte aligned)
                   auxv pairs, ending with AT_NULL
                   NULL, envp pointers
                   NULL, argv pointers
    sp ->          argc

For a 32-bit (i386) image the same layout is built as Linux builds it for a
compat task (binfmt_elf.c compiled as compat_binfmt_elf.c): argc, the argv and
envp pointers and the auxv are 4-byte words, sp is still 16-byte aligned, the
platform string is "i686" (COMPAT_ELF_PLATFORM), and the end marker at the top
stays 8 bytes (fs/exec.c reserves sizeof(void *) of the 64-bit kernel).  There is
no vDSO, so AT_SYSINFO and AT_SYSINFO_EHDR are not given and glibc makes system
calls with int 0x80.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .elf import Image, LoadError

AT_NULL = 0
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_FLAGS = 8
AT_ENTRY = 9
AT_UID = 11
AT_EUID = 12
AT_GID = 13
AT_EGID = 14
AT_PLATFORM = 15
AT_HWCAP = 16
AT_CLKTCK = 17
AT_SECURE = 23
AT_RANDOM = 25
AT_HWCAP2 = 26
AT_EXECFN = 31
AT_MINSIGSTKSZ = 51

WORD = 8                            # bytes of an argc/argv/envp/auxv word, 64-bit
WORD_32 = 4                         # the same for a 32-bit image
END_MARKER = 8                      # the zero word at the top: the (64-bit) kernel's sizeof(void *), whatever the image
PLATFORM = b"x86_64"                # AT_PLATFORM (ELF_PLATFORM: the machine's uname)
PLATFORM_32 = b"i686"               # AT_PLATFORM of a 32-bit image (COMPAT_ELF_PLATFORM)
STACK_ALIGN = 16
PAGE_SIZE = 4096
RANDOM_BYTES = 16
STACK_RLIMIT = 8 * 1024 * 1024      # the default RLIMIT_STACK
ARG_LIMIT = STACK_RLIMIT // 4       # Linux: strings + pointers may use a quarter of the stack limit
MAX_ARG_STRLEN = 32 * PAGE_SIZE     # Linux: longest single argument or environment string, NUL included


@dataclass(frozen=True)
class Credentials:
    """The ids the auxv reports to the new process."""
    uid: int
    euid: int
    gid: int
    egid: int


@dataclass(frozen=True)
class InitialStack:
    """The bytes of the initial stack and where the interesting things are in it."""
    sp: int                         # the stack pointer at entry: points at argc, 16-byte aligned
    data: bytes                     # the bytes to write at [sp, top); the table at sp has image.bits/8-byte words
    auxv: list[tuple[int, int]]     # the auxv as written, AT_NULL included
    argv_addrs: list[int]
    envp_addrs: list[int]

    @property
    def top(self) -> int:
        """The address just past the stack."""
        return self.sp + len(self.data)


def build_stack(image: Image, top: int, argv: list[bytes], envp: list[bytes], random16: bytes,
                creds: Credentials, execfn: bytes, hwcap: int, platform: bytes | None = None,
                clktck: int = 100, minsigstksz: int | None = None, interp_base: int = 0) -> InitialStack:
    """The stack Linux would build at `top` (page-aligned) to start `image`; LoadError('argument list too long') past Linux's limits.

    An empty argv becomes [b""], as Linux >= 5.18 does.  AT_MINSIGSTKSZ is
    emitted (first, as Linux) only when minsigstksz is given.  The platform
    string defaults to "x86_64", or "i686" for a 32-bit image; b"" omits AT_PLATFORM.
    A 32-bit image gets 4-byte words (see the module's docstring); its `top`
    must lie within 4 GiB (else LoadError).
    """
    bits = image.bits
    if top % PAGE_SIZE:
        raise ValueError(f"stack top {top:#x} is not page-aligned")
    if bits == 32 and top > 1 << 32:
        # A LoadError, not a ValueError: an exec that cannot place a 32-bit program's stack refuses the program.
        raise LoadError(f"a 32-bit program's stack cannot start at {top:#x}, above 4 GiB")
    if len(random16) != RANDOM_BYTES:
        raise ValueError("random16 must be 16 bytes")
    if platform is None:
        platform = PLATFORM_32 if bits == 32 else PLATFORM
    argv = list(argv) or [b""]
    check_strings(argv, envp, execfn, platform)

    mem = StackWriter(top)
    mem.push(bytes(END_MARKER))                             # end marker
    execfn_addr = mem.push_string(execfn)
    envp_addrs = mem.push_strings(envp)
    argv_addrs = mem.push_strings(argv)
    mem.align(STACK_ALIGN)                                  # arch_align_stack, without randomisation
    platform_addr = mem.push_string(platform) if platform else 0
    random_addr = mem.push(random16)

    auxv = make_auxv(image, creds, hwcap, clktck, minsigstksz, random_addr, execfn_addr, platform_addr,
                     interp_base)
    table = [len(argv), *argv_addrs, 0, *envp_addrs, 0, *(x for pair in auxv for x in pair)]
    word, code = (WORD_32, "I") if bits == 32 else (WORD, "Q")
    if bits == 32 and any(x >> 32 for x in table):
        raise ValueError("an auxv value does not fit the 4-byte words of a 32-bit stack")
    sp = (mem.sp - word * len(table)) & ~(STACK_ALIGN - 1)  # STACK_ROUND
    mem.place(sp, struct.pack(f"<{len(table)}{code}", *table))
    return InitialStack(sp=sp, data=mem.bytes(), auxv=auxv, argv_addrs=argv_addrs, envp_addrs=envp_addrs)


def check_strings(argv: list[bytes], envp: list[bytes], execfn: bytes, platform: bytes) -> None:
    """Raise LoadError if the strings could not be passed by execve: embedded NULs or more than Linux allows.

    The limit counts 8-byte pointers for 32-bit images too: Linux's bprm_stack_limits uses the kernel's sizeof(void *).
    """
    strings = [execfn, *envp, *argv]
    for s in [*strings, platform]:
        if b"\0" in s:
            raise LoadError("argument contains a NUL byte")
    if any(len(s) + 1 > MAX_ARG_STRLEN for s in strings):
        raise LoadError("argument list too long")
    pointers = WORD * (len(argv) + len(envp))
    if sum(len(s) + 1 for s in strings) + pointers > ARG_LIMIT:
        raise LoadError("argument list too long")


def make_auxv(image: Image, creds: Credentials, hwcap: int, clktck: int, minsigstksz: int | None,
              random_addr: int, execfn_addr: int, platform_addr: int, interp_base: int = 0) -> list[tuple[int, int]]:
    """The auxv pairs in the order Linux x86-64 emits them (no vDSO, so no AT_SYSINFO_EHDR), AT_NULL last.

    A compat (i386) task gets the same entries in the same order (no vDSO: no AT_SYSINFO either).
    """
    auxv = [(AT_MINSIGSTKSZ, minsigstksz)] if minsigstksz is not None else []
    auxv += [
        (AT_HWCAP, hwcap),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, clktck),
        (AT_PHDR, image.phdr),
        (AT_PHENT, image.phent),
        (AT_PHNUM, image.phnum),
        (AT_BASE, interp_base),         # where the interpreter (PT_INTERP) was loaded; 0 if none
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, creds.uid),
        (AT_EUID, creds.euid),
        (AT_GID, creds.gid),
        (AT_EGID, creds.egid),
        (AT_SECURE, 0),
        (AT_RANDOM, random_addr),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn_addr),
    ]
    if platform_addr:
        auxv.append((AT_PLATFORM, platform_addr))
    auxv.append((AT_NULL, 0))
    return auxv


class StackWriter:
    """A downward-growing byte buffer that ends at `top`."""

    def __init__(self, top: int):
        self.top = top
        self.sp = top
        self.chunks: list[bytes] = []   # [sp, top) as pushed: highest first

    def push(self, data: bytes) -> int:
        """Put data just below sp; return its address."""
        self.sp -= len(data)
        self.chunks.append(data)
        return self.sp

    def push_string(self, s: bytes) -> int:
        """Push s NUL-terminated; return its address."""
        return self.push(s + b"\0")

    def push_strings(self, strings: list[bytes]) -> list[int]:
        """Push strings as one block, in order (the first lowest); return their addresses."""
        addrs = []
        for s in reversed(strings):
            addrs.append(self.push_string(s))
        return addrs[::-1]

    def align(self, n: int) -> None:
        """Lower sp to a multiple of n, zero-filling the gap."""
        self.push(bytes(self.sp - (self.sp & ~(n - 1))))

    def place(self, addr: int, data: bytes) -> None:
        """Write data at addr, below sp, zero-filling up to the current sp; sp becomes addr."""
        if addr + len(data) > self.sp:
            raise ValueError("place() would overwrite the stack")
        self.push(bytes(self.sp - (addr + len(data))))
        self.push(data)

    def bytes(self) -> bytes:
        """The bytes of [sp, top)."""
        return b"".join(reversed(self.chunks))
