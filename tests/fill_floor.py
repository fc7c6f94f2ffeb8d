#!/usr/bin/env python3
"""The floor under run-elf's demand paging: what the touch benchmark costs with no MMU model at all.

    python tests/fill_floor.py [--runs N]

Runs the touch loop (64 MiB: one write per page, then one read per page) on Unicorn in virtual-TLB
mode, with a TLB-fill hook registered as run-elf registers its own (raw ctypes) that does nothing but
map each page linearly: no TLB model, no page walk, no fault handler. Prints the median time, once
with fresh host memory and once with the host memory faulted in beforehand (MADV_POPULATE_WRITE).
The difference between this and `run-elf --stats samples/bin/touch 64` is what run-elf's MMU, TLB
model and fault handler cost.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import statistics
import time

from unicorn import UC_ARCH_X86, UC_HOOK_TLB_FILL, UC_MODE_64, UC_PROT_ALL, UC_TLB_VIRTUAL, Uc
from unicorn.unicorn_py3 import unicorn as ucbinding

RAM = 1 << 30
CODE_AT = 0x1000                  # the loop, mapped at its physical address
DATA_AT = 0x1000_0000             # the 64 MiB buffer's virtual address ...
DATA_PHYS = 0x10_0000             # ... and its physical address
PAGES = 16384
MADV_POPULATE_WRITE = 23
# mov rax, DATA_AT; mov rcx, PAGES; 1: mov byte [rax], 1; add rax, 4096; dec rcx; jnz 1b
# mov rax, DATA_AT; mov rcx, PAGES; xor edx, edx; 2: movzx ebx, byte [rax]; add rdx, rbx; add rax, 4096;
# dec rcx; jnz 2b; nop
TOUCH = bytes.fromhex("48C7C000000010" "48C7C100400000" "C60001" "480500100000" "48FFC9" "75F2"
                      "48C7C000000010" "48C7C100400000" "31D2"
                      "0FB618" "4801DA" "480500100000" "48FFC9" "75EF" "90")
FILL = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int,
                        ctypes.POINTER(ucbinding.uc_tlb_entry), ctypes.c_void_p)


def run_once(prefault: bool) -> tuple[float, int]:
    """Seconds to run the touch loop, and the number of fills."""
    ram = mmap.mmap(-1, RAM, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map_ptr(0, RAM, UC_PROT_ALL, ctypes.addressof(ctypes.c_char.from_buffer(ram)))
    uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
    ram[CODE_AT:CODE_AT + len(TOUCH)] = TOUCH
    if prefault:
        ram.madvise(MADV_POPULATE_WRITE, DATA_PHYS, PAGES << 12)
    fills = 0

    def fill(_uch, vaddr, _access, entry, _data):
        nonlocal fills
        e = entry[0]
        if vaddr < DATA_AT:
            e.paddr, e.perms = vaddr, 7
        else:
            e.paddr, e.perms = vaddr - DATA_AT + DATA_PHYS, 3
        fills += 1
        return True

    callback = FILL(fill)
    handle = ucbinding.uc_hook_h()
    ucbinding.uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_TLB_FILL, callback, None,
                                ctypes.c_uint64(1), ctypes.c_uint64(0))
    started = time.perf_counter()
    uc.emu_start(CODE_AT, CODE_AT + len(TOUCH))
    return time.perf_counter() - started, fills


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="runs per variant (default 7)")
    args = ap.parse_args()
    for prefault in (False, True):
        runs = [run_once(prefault) for _ in range(args.runs)]
        t = statistics.median(r[0] for r in runs)
        label = "host memory faulted in first" if prefault else "fresh host memory"
        print(f"touch 64 MiB, empty fill hook, {label}: {1e3 * t:.1f} ms, {runs[0][1]} fills, "
              f"{1e6 * t / PAGES:.2f} us per page (median of {args.runs})")


if __name__ == "__main__":
    main()
