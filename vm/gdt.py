"""The global descriptor table: segment descriptors in the hardware's 8-byte format, and the GDT Linux loads.

32-bit programs run in compatibility mode, as on an x86-64 Linux kernel: their code segment
is the 32-bit user selector 0x23, and their thread pointer is %gs, loaded with a selector
whose descriptor (set by set_thread_area) gives the base. Loading a segment register makes
the CPU read the descriptor from the GDT, an implicit supervisor access; see Cpu.load_gdt
for where the table lives and why a 32-bit program cannot read it itself.
"""

from __future__ import annotations

import struct

GDT_ENTRIES = 16                  # Linux x86-64's GDT_ENTRIES (one per-cpu table)
GDT_ENTRY_KERNEL32_CS = 1
GDT_ENTRY_KERNEL_CS = 2           # __KERNEL_CS 0x10
GDT_ENTRY_KERNEL_DS = 3           # __KERNEL_DS 0x18
GDT_ENTRY_USER32_CS = 4           # __USER32_CS 0x23: 32-bit user code (compatibility mode)
GDT_ENTRY_USER_DS = 5             # __USER_DS 0x2b
GDT_ENTRY_USER_CS = 6             # __USER_CS 0x33: 64-bit user code
GDT_ENTRY_TLS_MIN = 12            # set_thread_area's three entries, 12..14 (selectors 0x63, 0x6b, 0x73)
GDT_ENTRY_TLS_ENTRIES = 3

# Access byte and flag nibble of a descriptor.
DESC_ACCESSED = 1 << 0            # set already, so a load never writes the descriptor back
DESC_RW = 1 << 1                  # data: writable; code: readable
DESC_CODE = 1 << 3
DESC_S = 1 << 4                   # a code or data segment (not a system one)
DESC_DPL3 = 3 << 5
DESC_PRESENT = 1 << 7
FLAG_LONG = 1 << 1                # L: 64-bit code
FLAG_DB = 1 << 2                  # D/B: 32-bit segment
FLAG_GRANULARITY = 1 << 3         # limit in pages

_DESC = struct.Struct("<Q")


def descriptor(base: int, limit: int, access: int, flags: int) -> int:
    """An 8-byte segment descriptor: 32-bit base, 20-bit limit, access byte, flag nibble."""
    return ((limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | (access & 0xFF) << 40 | ((limit >> 16) & 0xF) << 48
            | (flags & 0xF) << 52 | ((base >> 24) & 0xFF) << 56)


def base_of(desc: int) -> int:
    """The base address a descriptor gives its segment."""
    return (desc >> 16) & 0xFFFFFF | ((desc >> 56) & 0xFF) << 24


def limit_of(desc: int) -> int:
    """The descriptor's 20-bit limit field (in pages when its G flag is set)."""
    return (desc & 0xFFFF) | ((desc >> 48) & 0xF) << 16


def flags_of(desc: int) -> int:
    """The descriptor's flag nibble (G, D/B, L, AVL)."""
    return (desc >> 52) & 0xF


def access_of(desc: int) -> int:
    """The descriptor's access byte (P, DPL, S, type)."""
    return (desc >> 40) & 0xFF


def boot_gdt() -> bytes:
    """The GDT Linux x86-64 boots with: flat kernel and user code/data segments, TLS entries empty."""
    table = [0] * GDT_ENTRIES
    flat = 0xFFFFF
    code, data = DESC_PRESENT | DESC_S | DESC_CODE | DESC_RW | DESC_ACCESSED, DESC_PRESENT | DESC_S | DESC_RW | DESC_ACCESSED
    table[GDT_ENTRY_KERNEL32_CS] = descriptor(0, flat, code, FLAG_GRANULARITY | FLAG_DB)
    table[GDT_ENTRY_KERNEL_CS] = descriptor(0, flat, code, FLAG_GRANULARITY | FLAG_LONG)
    table[GDT_ENTRY_KERNEL_DS] = descriptor(0, flat, data, FLAG_GRANULARITY | FLAG_DB)
    table[GDT_ENTRY_USER32_CS] = descriptor(0, flat, code | DESC_DPL3, FLAG_GRANULARITY | FLAG_DB)
    table[GDT_ENTRY_USER_DS] = descriptor(0, flat, data | DESC_DPL3, FLAG_GRANULARITY | FLAG_DB)
    table[GDT_ENTRY_USER_CS] = descriptor(0, flat, code | DESC_DPL3, FLAG_GRANULARITY | FLAG_LONG)
    return b"".join(_DESC.pack(d) for d in table)


def selector(entry: int, rpl: int = 3) -> int:
    """The selector of GDT entry `entry` at requested privilege `rpl` (entry 12 at RPL 3: 0x63)."""
    return entry << 3 | rpl
