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

__all__ = ["signal_name", "describe_fault", "describe_exception", "internal_error", "instruction"]



@functools.cache
def disassembler(detail: bool = False):
    """A capstone x86-64 disassembler (imported on first use: most runs never report anything)."""
    import capstone
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = detail
    return cs
_STRING_OPS = {"movs": ("rsi", "rdi"), "stos": ("rdi",), "lods": ("rsi",), "scas": ("rdi",), "cmps": ("rsi", "rdi")}


def fault_address(kernel: Kernel, proc: Process, rip: int, fault: PageFault) -> int:
    """The exact faulting address (CR2). Unicorn reports only the page, so decode the instruction at rip
    and compute its memory operands' effective addresses from the registers; the one in the faulting
    page is the address. Falls back to the page address when nothing matches."""
    page = fault.vaddr
    if fault.access == ACCESS_FETCH:
        return rip if page <= rip < page + 4096 else page
    code = kernel.peek(proc, rip, 16)
    reg = kernel.cpu.reg
    import capstone
    for insn in disassembler(True).disasm(code, rip, 1):
        candidates = []
        for op in insn.operands:
            if op.type != capstone.x86.X86_OP_MEM:
                continue
            m = op.mem
            addr = m.disp
            if m.base:
                name = insn.reg_name(m.base)
                addr += insn.address + insn.size if name == "rip" else reg(name)
            if m.index:
                addr += reg(insn.reg_name(m.index)) * m.scale
            if m.segment and insn.reg_name(m.segment) in ("fs", "gs"):
                addr += reg(insn.reg_name(m.segment) + "_base")
            candidates.append(addr)
        for prefix, regs in _STRING_OPS.items():
            if insn.mnemonic.split()[-1].startswith(prefix):
                candidates += [reg(r) for r in regs]
        if insn.mnemonic.startswith("push") or insn.mnemonic.startswith("call"):
            candidates.append(reg("rsp") - 8)
        if insn.mnemonic.startswith("pop") or insn.mnemonic.startswith("ret"):
            candidates.append(reg("rsp"))
        for addr in candidates:
            addr &= (1 << 64) - 1
            if page <= addr < page + 4096:
                return addr
        # An access that starts in the page before and spills into this one.
        for addr in candidates:
            if page - 64 < addr < page:
                return page
    return page


def instruction(kernel: Kernel, proc: Process, rip: int) -> str:
    """'0x401a2e <main+0x1e>: mov byte ptr [rax], 0xc3' (what can be known of it)."""
    where = f"{rip:#x}"
    sym = proc.symbols.format(rip) if proc.symbols else ""
    if sym:
        where += f" <{sym}>"
    code = kernel.peek(proc, rip, 16)
    for insn in disassembler().disasm(code, rip, 1):
        return f"{where}: {insn.mnemonic} {insn.op_str}".rstrip()
    return where


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
    region = str(error) if error is not None else "none"
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
