"""One-line reports of what happened to a guest: fatal faults, CPU exceptions, internal errors."""

from __future__ import annotations

import functools
import traceback
from typing import TYPE_CHECKING

from osmodel.signals import EXCEPTION_NAMES, signal_name
from vm.mmu import ACCESS_FETCH, ACCESS_NAMES, PF_PRESENT, PF_USER, PageFault, describe_error_code

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process
    from vm.cpu import Trap

__all__ = ["signal_name", "describe_fault", "describe_exception", "internal_error", "instruction", "disassemble",
           "fault_address"]

# The 3G/1G split's wording: where a 32-bit program's kernel quarter starts.
SPLIT_NAME = "3G/1G split"
_STACK_SLOT = {64: 8, 32: 4}                        # bytes a push or call stores
_STRING_OPS = {"movs": ("si", "di"), "stos": ("di",), "lods": ("si",), "scas": ("di",), "cmps": ("si", "di")}
_WIDTH_MASK = {64: (1 << 64) - 1, 32: 0xFFFF_FFFF, 16: 0xFFFF}


@functools.cache
def disassembler(detail: bool = False, bits: int = 64):
    """A capstone disassembler for x86-64 code, or i386 code with bits=32 (imported on first use: most runs
    never report anything)."""
    import capstone
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64 if bits == 64 else capstone.CS_MODE_32)
    cs.detail = detail
    return cs


def register(kernel: Kernel, name: str, bits: int) -> int:
    """The value of general register `name` as capstone names it ('rax', 'eax', 'si', 'fs'...), at its
    width; for bits=32 a 32-bit name is read through its 64-bit register and cut to 32 bits."""
    reg = kernel.cpu.reg
    if bits == 64:
        return reg(name)
    if len(name) == 3 and name[0] == "e" and name != "eiz":
        return reg("r" + name[1:]) & _WIDTH_MASK[32]
    if name in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp"):
        return reg("r" + name) & _WIDTH_MASK[16]
    return reg(name)


def code_bits(proc: Process) -> int:
    """The width of proc's code: 32 for an i386 program (compatibility mode), else 64."""
    return 32 if proc.bits == 32 else 64


def fault_address(kernel: Kernel, proc: Process, rip: int, fault: PageFault) -> int:
    """The exact faulting address (CR2). Unicorn reports only the page, so decode the instruction at rip
    (in the process's mode, 64-bit or i386) and compute its memory operands' effective addresses from the
    registers; the one in the faulting page is the address. Falls back to the page address when nothing
    matches."""
    page = fault.vaddr
    if fault.access == ACCESS_FETCH:
        return rip if page <= rip < page + 4096 else page
    bits = code_bits(proc)
    prefix = "r" if bits == 64 else "e"
    sp = register(kernel, prefix + "sp", bits)
    code = kernel.peek(proc, rip, 16)
    import capstone
    for insn in disassembler(True, bits).disasm(code, rip, 1):
        candidates = []
        for op in insn.operands:
            if op.type != capstone.x86.X86_OP_MEM:
                continue
            m = op.mem
            addr = m.disp
            if m.base:
                name = insn.reg_name(m.base)
                addr += insn.address + insn.size if name == "rip" else register(kernel, name, bits)
            if m.index:
                addr += register(kernel, insn.reg_name(m.index), bits) * m.scale
            if m.segment and insn.reg_name(m.segment) in ("fs", "gs"):
                addr += kernel.cpu.reg(insn.reg_name(m.segment) + "_base")
            candidates.append(addr)
        for op_name, regs in _STRING_OPS.items():
            if insn.mnemonic.split()[-1].startswith(op_name):
                candidates += [register(kernel, prefix + r, bits) for r in regs]
        if insn.mnemonic.startswith("push") or insn.mnemonic.startswith("call"):
            candidates.append(sp - _STACK_SLOT[bits])
        if insn.mnemonic.startswith("pop") or insn.mnemonic.startswith("ret"):
            candidates.append(sp)
        for addr in candidates:
            addr &= _WIDTH_MASK[bits]
            if page <= addr < page + 4096:
                return addr
        # An access that starts in the page before and spills into this one.
        for addr in candidates:
            if page - 64 < addr < page:
                return page
    return page


def disassemble(kernel: Kernel, proc: Process, rip: int) -> str:
    """'mov byte ptr [rax], 0xc3': the instruction at rip in proc's mode, '' if it cannot be read."""
    code = kernel.peek(proc, rip, 16)
    for insn in disassembler(False, code_bits(proc)).disasm(code, rip, 1):
        return f"{insn.mnemonic} {insn.op_str}".rstrip()
    return ""


def instruction(kernel: Kernel, proc: Process, rip: int) -> str:
    """'0x401a2e <main+0x1e>: mov byte ptr [rax], 0xc3' (what can be known of it)."""
    where = f"{rip:#x}"
    sym = proc.symbols.format(rip) if proc.symbols else ""
    if sym:
        where += f" <{sym}>"
    insn = disassemble(kernel, proc, rip)
    return f"{where}: {insn}" if insn else where


def region_words(proc: Process, fault: PageFault, error: object) -> str:
    """The region a fault hit, as reports name it: 'text', 'none', or for an i386 program's kernel
    quarter 'kernel: above the 3G/1G split at 0xc0000000'."""
    region = str(error) if error is not None else "none"
    if code_bits(proc) == 32 and region == "kernel" and fault.vaddr >= proc.aspace.user_top:
        region += f": above the {SPLIT_NAME} at {proc.aspace.user_top:#x}"
    return region


def describe_fault(kernel: Kernel, proc: Process, fault: PageFault, error: object, rip: int) -> str:
    """'user write to 0x401136 (present, read-only, text) at 0x401a2e <main+0x1e>: mov ...'."""
    at = instruction(kernel, proc, rip)
    address = fault_address(kernel, proc, rip, fault)
    if fault.noncanonical:
        return f"general protection fault: non-canonical address {fault.vaddr:#x} at {at}"
    who = "user" if fault.error_code & PF_USER else "supervisor"
    if fault.error_code & PF_PRESENT:
        if fault.vaddr >= proc.aspace.user_top and fault.error_code & PF_USER:
            why = "present, supervisor-only"
        elif ACCESS_NAMES[fault.access] == "write":
            why = "present, read-only"
        elif ACCESS_NAMES[fault.access] == "fetch":
            why = "present, no-execute"
        else:
            why = "present, no access"
    else:
        why = "not present"
    region = region_words(proc, fault, error)
    return f"{who} {ACCESS_NAMES[fault.access]} to {address:#x} ({why}, {region}) at {at}"


def describe_exception(kernel: Kernel, proc: Process, intno: int, rip: int) -> str:
    """'general protection fault at 0x401a2e <main+0x10>: hlt'."""
    name = EXCEPTION_NAMES.get(intno, f"interrupt {intno:#x}")
    return f"{name} at {instruction(kernel, proc, rip)}"


def internal_error(kernel: Kernel, proc: Process, trap: Trap) -> str:
    """What run-elf was doing when one of its own hooks failed, with the exception's last frame."""
    exc = trap.error
    doing = kernel.doing or "running"
    if isinstance(doing, PageFault):
        doing = f"handling a page fault at {doing.vaddr:#x} ({describe_error_code(doing.error_code)})"
    tb = traceback.extract_tb(exc.__traceback__)[-1] if exc is not None and exc.__traceback__ else None
    where = f" ({tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})" if tb else ""
    return (f"internal error in pid {proc.pid} at rip {trap.rip:#x} while {doing}: "
            f"{type(exc).__name__}: {exc}{where}")
