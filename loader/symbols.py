"""Addresses to names and back, from an ELF's symbol table, for traces and crash reports.

Best effort by design: a stripped, truncated or odd file simply has no symbols.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from elftools.elf.elffile import ELFFile

NEAR_LIMIT = 4096          # how far past a size-0 FUNC symbol an address still counts as inside it
KINDS = {"STT_FUNC": 3, "STT_GNU_IFUNC": 3, "STT_OBJECT": 2, "STT_NOTYPE": 1}   # kinds kept, ranked
CODE_KINDS = {"STT_FUNC", "STT_GNU_IFUNC", "STT_NOTYPE"}   # NOTYPE is kept only in code: assembly labels like musl's _start
SHF_EXECINSTR = 0x4
BINDINGS = {"STB_GLOBAL": 2, "STB_WEAK": 1, "STB_LOCAL": 0}


@dataclass(frozen=True)
class Symbol:
    """One named range of the loaded image (bias applied)."""
    name: str
    addr: int
    size: int
    is_func: bool
    rank: tuple              # larger is the better name among aliases at one address

    def covers(self, addr: int) -> bool:
        """True if addr is inside this symbol, or (size 0 FUNC) within NEAR_LIMIT after it."""
        if self.size:
            return self.addr <= addr < self.addr + self.size
        return self.is_func and self.addr <= addr < self.addr + NEAR_LIMIT


class Symbols:
    """Function/object symbols of an ELF (.symtab, else .dynsym), sorted, loaded lazily on first use."""

    def __init__(self, path: str, bias: int = 0):
        self.path = path
        self.bias = bias
        self._sorted: list[Symbol] | None = None
        self._starts: list[int] = []
        self._by_name: dict[str, Symbol] = {}

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the symbol containing addr (or the nearest preceding FUNC symbol within its size; if size 0, nearest preceding within 4 KiB)."""
        symbols = self._load()
        i = bisect.bisect_right(self._starts, addr)
        if i == 0:
            return None
        nearest = self._starts[i - 1]
        for sym in reversed(symbols[:i]):      # aliases at `nearest` come best-ranked last
            if sym.addr != nearest:
                break
            if sym.covers(addr):
                return sym.name, addr - sym.addr
        return None

    def format(self, addr: int) -> str:
        """'name+0x1a' or '' when unknown."""
        hit = self.lookup(addr)
        return f"{hit[0]}+{hit[1]:#x}" if hit else ""

    def address_of(self, name: str) -> int | None:
        """The (biased) address of the best symbol called name, or None."""
        self._load()
        sym = self._by_name.get(name)
        return sym.addr if sym else None

    def __len__(self) -> int:
        """How many symbols were found."""
        return len(self._load())

    def _load(self) -> list[Symbol]:
        """The symbols sorted by (address, rank), read on first call; [] if the file has none or cannot be read."""
        if self._sorted is None:
            try:
                found = read_symbols(self.path, self.bias)
            except Exception:                  # stripped/odd/corrupt file: just no names
                found = []
            self._sorted = sorted(found, key=lambda s: (s.addr, s.rank))
            self._starts = [s.addr for s in self._sorted]
            for s in self._sorted:
                best = self._by_name.get(s.name)
                if best is None or s.rank > best.rank:
                    self._by_name[s.name] = s
        return self._sorted


def read_symbols(path: str, bias: int) -> list[Symbol]:
    """The defined FUNC/IFUNC/OBJECT symbols of .symtab (else .dynsym) in the ELF at path, biased."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        if table is None or not hasattr(table, "iter_symbols"):
            return []
        code = {i for i, sec in enumerate(elf.iter_sections()) if sec["sh_flags"] & SHF_EXECINSTR}
        return [s for s in (make_symbol(sym, bias, code) for sym in table.iter_symbols()) if s]


def make_symbol(sym, bias: int, code_sections: set[int]) -> Symbol | None:
    """A Symbol for pyelftools symbol `sym`, or None if it names no address in the image."""
    kind = sym["st_info"]["type"]
    shndx = sym["st_shndx"]
    if kind not in KINDS or not sym.name or sym["st_value"] == 0 or not isinstance(shndx, int):
        return None                            # SHN_UNDEF, SHN_ABS, SHN_COMMON... name no address
    if kind == "STT_NOTYPE" and shndx not in code_sections:
        return None
    binding = BINDINGS.get(sym["st_info"]["bind"], 0)
    underscores = len(sym.name) - len(sym.name.lstrip("_"))
    rank = (sym["st_size"] > 0, KINDS[kind], binding, -underscores, -len(sym.name), sym.name)
    return Symbol(name=sym.name, addr=sym["st_value"] + bias, size=sym["st_size"],
                  is_func=kind in CODE_KINDS, rank=rank)
