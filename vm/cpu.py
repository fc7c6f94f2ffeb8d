"""The CPU: Unicorn in virtual-TLB mode, with our TLB, page walk and fault handler behind its TLB fills.

Unicorn's memory map is physical RAM. When Unicorn's own (QEMU) TLB misses, it calls
`Cpu._tlb_fill`, which plays the hardware: look the page up in our TLB, else walk our
page tables, else raise a page fault into the OS model, then hand Unicorn the physical
frame and permissions. Unicorn's TLB never holds a translation ours has dropped: we
remember which pages we handed it since its last flush and flush it when one of those
leaves our TLB. See shared PLATFORM.md for the measured Unicorn behaviour this relies on.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable, Protocol

from unicorn import (UC_ARCH_X86, UC_ERR_EXCEPTION, UC_HOOK_INSN, UC_HOOK_INSN_INVALID, UC_HOOK_INTR,
                     UC_HOOK_TLB_FILL, UC_MODE_64, UC_PROT_ALL, UC_TLB_VIRTUAL, Uc, UcError)
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3 import unicorn as ucbinding

from vm.mmu import ACCESS_FETCH, ACCESS_WRITE, Mmu, PageFault
from vm.pagetable import PTE_DIRTY, PTE_FRAME, PTE_GLOBAL, PTE_NX, PTE_USER, PTE_WRITABLE, X86_64, PagingFormat
from vm.ram import PhysicalMemory
from vm.tlb import Tlb

MSR_EFER = 0xC0000080
MSR_STAR = 0xC0000081
EFER_SCE = 1 << 0
SYSRETQ = bytes.fromhex("480f07")     # to 64-bit user code (CS 0x33)
SYSRETL = bytes.fromhex("0f07")       # to 32-bit user code in compatibility mode (CS 0x23)
SYSRETL_OFFSET = 8                    # where the entry page holds sysretl (sysretq is at 0)
GDT_BASE = 0xFFFF_FE00_0000_0000      # the GDT's linear address: Linux's cpu_entry_area, above 4 GiB
GDT_LIMIT = 16 * 8 - 1
INT80 = 0x80                          # the i386 system-call vector
USER_RFLAGS = 0x202
FPU_CONTROL_INIT = 0x37F
MXCSR_INIT = 0x1F80

UC_READ, UC_WRITE, UC_EXEC = ucc.UC_PROT_READ, ucc.UC_PROT_WRITE, ucc.UC_PROT_EXEC
_UC_READ_WRITE, _UC_READ_EXEC, _UC_ALL = UC_READ | UC_WRITE, UC_READ | UC_EXEC, UC_READ | UC_WRITE | UC_EXEC
_UC_MEM_READ = ucc.UC_MEM_READ             # the fill hook's access codes are UC_MEM_READ + ACCESS_*
_WRITE_OK = PTE_WRITABLE | PTE_DIRTY      # a cached entry serves a write only if both are set
_FAULT_RETRIES = 4                 # a walk still faulting after this many resolved faults is a kernel bug
_GROW_FIRST = 512                  # fills before the first growth flush of Unicorn's TLB
_GROW_MAX = 1 << 20                # the largest interval between growth flushes
_TLB_FLUSH_CODE = (ucc.UC_CTL_IO_WRITE << 30) | ucc.UC_CTL_TLB_FLUSH
_FILL_CFUNC = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int,
                               ctypes.POINTER(ucbinding.uc_tlb_entry), ctypes.c_void_p)

SYSCALL_REGS = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9")
SYSCALL_REGS_32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp")   # int 0x80: number, then six arguments
GENERAL_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
REG = {name: getattr(x86, f"UC_X86_REG_{name.upper()}")
       for name in GENERAL_REGS + ("fs_base", "gs_base") + SYSCALL_REGS_32 + ("esp", "eip", "gs", "cs")}


class FaultSink(Protocol):
    """What the CPU raises page faults into: the OS model's fault handler."""

    def page_fault(self, fault: PageFault) -> bool:
        """Resolve the fault by fixing the page tables (True), or refuse it (False: the access fails)."""


@dataclass
class Trap:
    """Why the last run stopped: a refused page fault, an interrupt/exception, or an invalid opcode."""
    kind: str                  # 'page-fault', 'interrupt', 'invalid-opcode', 'host-error'
    rip: int
    fault: PageFault | None = None
    intno: int = -1
    error: BaseException | None = None


class Cpu:
    """One emulated x86-64 core running user code at CPL 3 over `ram`: 64-bit code, or 32-bit code in
    compatibility mode (as an x86-64 Linux kernel runs i386 programs), each under its own paging format."""

    def __init__(self, ram: PhysicalMemory, tlb: Tlb | None = None):
        self.ram = ram
        self.tlb = tlb if tlb is not None else Tlb()
        self.mmu = Mmu(ram)
        self.root = 0               # CR3: the frame of the current top-level table
        self.asid = 0               # PCID of the current address space
        self.fmt = X86_64           # the paging format of the current address space
        self.compat = False         # the current process is 32-bit (compatibility mode, i386 paging)
        self._gdt_vpn = -1          # the GDT's page (GDT_BASE) and its frame, once load_gdt ran
        self._gdt_paddr = 0
        self.user = False           # CPL 3 once enter_user has run
        self.faults: FaultSink | None = None
        self.on_syscall: Callable[[], None] | None = None
        self.on_int80: Callable[[], None] | None = None
        self.trap: Trap | None = None
        self.refused: PageFault | None = None   # the last fault the OS refused
        self._counted = False                  # the last run used Unicorn's instruction count
        # Registers through Unicorn's C API directly: the binding's reg_read costs several microseconds.
        self._reg_value = ctypes.c_uint64()
        self._reg_ref = ctypes.byref(self._reg_value)
        self._syscall_vals = (ctypes.c_uint64 * len(SYSCALL_REGS))()
        self._syscall_ids = (ctypes.c_int * len(SYSCALL_REGS))(*(REG[n] for n in SYSCALL_REGS))
        self._syscall_ptrs = (ctypes.c_void_p * len(SYSCALL_REGS))(
            *(ctypes.addressof(self._syscall_vals) + 8 * i for i in range(len(SYSCALL_REGS))))
        self._syscall_ids_32 = (ctypes.c_int * len(SYSCALL_REGS_32))(*(REG[n] for n in SYSCALL_REGS_32))
        self.fills = 0
        self.uc_flushes = 0
        self._uc_holds: set[int] = set()   # pages handed to Unicorn's TLB since it was last flushed
        self._filling = -1                 # the page Unicorn is filling now (its stale entries get replaced)
        self._stale_filling = False        # that page was invalidated during the fill
        self._grew_at = 0                  # fills count at the last growth flush
        self._grow_at = _GROW_FIRST        # fills count at which to flush again so Unicorn's TLB grows
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc = uc
        self._uch = uc._uch
        uc.mem_map_ptr(0, ram.size, UC_PROT_ALL, ctypes.addressof(ctypes.c_char.from_buffer(ram.mmap)))
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.ctl_exits_enabled(True)      # no "until" address: Unicorn would invalidate (and fetch-probe) its page
        self._fill_cb = _FILL_CFUNC(self._tlb_fill)
        handle = ucbinding.uc_hook_h()
        status = ucbinding.uclib.uc_hook_add(self._uch, ctypes.byref(handle), UC_HOOK_TLB_FILL, self._fill_cb,
                                             None, ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        uc.hook_add(UC_HOOK_INSN, self._syscall, None, 1, 0, x86.UC_X86_INS_SYSCALL)
        uc.hook_add(UC_HOOK_INTR, self._interrupt)
        # Unicorn does not check the I/O privilege level: at CPL 3 with IOPL 0, in/out must raise #GP.
        uc.hook_add(UC_HOOK_INSN, self._port_in, None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._port_out, None, 1, 0, x86.UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._invalid)
        uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | EFER_SCE)
        uc.msr_write(MSR_STAR, 0x23 << 48)   # sysretq lands in CS 0x33, sysretl in CS 0x23; SS 0x2b; CPL 3
        self.reset_fpu()
        self._kernel_context = uc.context_save()   # CPL 0, 64-bit: where every entry to user mode starts

    # -- translation -----------------------------------------------------------------------

    def _tlb_fill(self, _uch, vaddr: int, access: int, entry, _data) -> bool:
        """Unicorn's TLB missed on vaddr: translate it through our TLB/MMU/fault handler."""
        vpn = vaddr >> 12
        if vpn == self._gdt_vpn and self.compat:
            return self._fill_descriptor_table(entry)
        self._filling = vpn
        self._stale_filling = False
        try:
            user = self.user
            if not user:
                # Only the entry trampoline runs at CPL 0; the first fill after its sysretq is at CPL 3.
                user = self.user = self.uc.reg_read(x86.UC_X86_REG_CS) & 3 == 3
            acc = access - _UC_MEM_READ
            tlb = self.tlb
            pte = tlb.lookup(vpn, self.asid)
            if not pte or (acc == ACCESS_WRITE and pte & _WRITE_OK != _WRITE_OK) \
                    or (acc == ACCESS_FETCH and pte & PTE_NX) or (user and not pte & PTE_USER):
                # Our TLB misses or its entry does not allow the access: walk (and fault) as the hardware does.
                slot, pte = self.mmu.walk(self.root, vaddr, acc, user, self.fmt, False)
                if slot < 0:
                    pte = self.fault_in(vaddr, acc)
                    if not pte:
                        return self._refuse_fill()
                victim = tlb.insert(vpn, self.asid, pte, pte & PTE_GLOBAL)
                if victim is not None and victim in self._uc_holds:
                    self.flush_unicorn_tlb()
            fills = self.fills = self.fills + 1
            if fills >= self._grow_at:
                self._grow_unicorn_tlb()
            e = entry[0]
            e.paddr = pte & PTE_FRAME
            if pte & PTE_NX:
                e.perms = _UC_READ_WRITE if pte & _WRITE_OK == _WRITE_OK else UC_READ
            else:
                e.perms = _UC_ALL if pte & _WRITE_OK == _WRITE_OK else _UC_READ_EXEC
                self.ram.code[pte >> 12 & 0xFFFFFFFFFF] = 1
            self._uc_holds.add(vpn)
            self.refused = None        # a refused probe before this fill is not what stops the run
            return True
        except BaseException as exc:  # noqa: BLE001 - must not escape into C
            self.trap = Trap("host-error", self._rip_safe(), error=exc)
            return self._refuse_fill()
        finally:
            self._filling = -1

    def _fill_descriptor_table(self, entry) -> bool:
        """A 32-bit program loaded a segment register and the CPU reads its descriptor: an implicit
        supervisor access (the fill hook cannot tell it from the program's own reads, but a 32-bit
        program cannot form an address above 4 GiB, where the GDT is). Read-only: the descriptors
        carry their accessed bit already, so the CPU never writes one back."""
        e = entry[0]
        e.paddr = self._gdt_paddr
        e.perms = UC_READ
        self.fills += 1
        return True

    def load_gdt(self, pfn: int) -> None:
        """LGDT: the descriptor table is frame `pfn`, at linear address GDT_BASE."""
        self._gdt_vpn = GDT_BASE >> 12
        self._gdt_paddr = pfn << 12
        self.uc.context_restore(self._kernel_context)
        self.uc.reg_write(x86.UC_X86_REG_GDTR, (0, GDT_BASE, GDT_LIMIT, 0))
        self._kernel_context = self.uc.context_save()

    def _grow_unicorn_tlb(self) -> None:
        """QEMU resizes its TLB only when it is flushed, by how full it was: flushing after 2x, 4x...
        more fills each time lets it grow to the working set instead of thrashing at 256 entries."""
        self._grow_at = self.fills + min(2 * (self._grow_at - self._grew_at), _GROW_MAX)
        self._grew_at = self.fills
        self.flush_unicorn_tlb()

    def _refuse_fill(self) -> bool:
        """The fill fails: Unicorn keeps what it had, so an invalidation skipped during it must flush now."""
        if self._stale_filling:
            self.flush_unicorn_tlb()
        return False

    def fault_in(self, vaddr: int, access: int) -> int:
        """The walk of vaddr faulted: raise the fault into the OS and walk again until it translates; the
        leaf entry, or 0 if the OS refused the fault (the access fails)."""
        mmu = self.mmu
        for _ in range(_FAULT_RETRIES):
            fault = mmu.fault
            if self.faults is None or not self.faults.page_fault(fault):
                # Unicorn also probes pages it may not run (and recovers); only a failed run uses this.
                self.refused = fault
                return 0
            slot, pte = mmu.walk(self.root, vaddr, access, self.user, self.fmt, False)
            if slot >= 0:
                return pte
        raise RuntimeError(f"page fault at {vaddr:#x} resolved but still faulting")

    def invalidate_page(self, vaddr: int, asid: int | None = None, reason: str = "") -> None:
        """INVLPG: drop one page from our TLB (one asid or all) and keep Unicorn's TLB coherent."""
        vpn = vaddr >> 12
        self.tlb.invalidate_page(vpn, asid, reason)
        if vpn in self._uc_holds:
            if vpn == self._filling:
                self._stale_filling = True     # a successful fill replaces every cached entry of the page
            else:
                self.flush_unicorn_tlb()

    def flush_tlb(self, asid: int | None = None, reason: str = "") -> None:
        """Drop all non-global translations (of one asid, or all) from our TLB and Unicorn's."""
        self.tlb.flush(asid, reason=reason)
        self.flush_unicorn_tlb()

    def flush_unicorn_tlb(self) -> None:
        """Empty Unicorn's own TLB (it has no per-page invalidate)."""
        ucbinding.uclib.uc_ctl(self._uch, _TLB_FLUSH_CODE)
        self._uc_holds.clear()
        self._stale_filling = False
        self.uc_flushes += 1

    def switch_to(self, root: int, asid: int, fmt: PagingFormat = X86_64) -> None:
        """Load CR3: a new page-table root (of paging format `fmt`) and address-space id; Unicorn's TLB is emptied."""
        self.root = root
        self.asid = asid
        self.fmt = fmt
        self.compat = fmt.address_bits == 32
        self.flush_unicorn_tlb()

    def load_context(self, context) -> None:
        """Restore a saved register state (a context switch); its privilege level is read again at the next fill."""
        self.uc.context_restore(context)
        self.user = False

    def forget_code(self, start: int = 0, end: int = 0) -> None:
        """Drop translated code (all of it, or of physical range [start, end)) after frames holding code change."""
        if end:
            self.uc.ctl_remove_cache(start, end)
        else:
            self.uc.ctl_flush_tb()

    # -- traps -------------------------------------------------------------------------------

    def _syscall(self, uc, _data) -> None:
        try:
            if self.on_syscall is not None:
                self.on_syscall()
        except BaseException as exc:  # noqa: BLE001
            self.trap = Trap("host-error", self._rip_safe(), error=exc)
            uc.emu_stop()

    def _interrupt(self, uc, intno: int, _data) -> None:
        if intno == INT80 and self.on_int80 is not None:
            # The i386 system call (EIP is already past the `int 0x80`).
            try:
                self.on_int80()
            except BaseException as exc:  # noqa: BLE001
                self.trap = Trap("host-error", self._rip_safe(), error=exc)
                uc.emu_stop()
            return
        if self.trap is None:
            self.trap = Trap("interrupt", self._rip_safe(), intno=intno)
        uc.emu_stop()

    def _port_in(self, uc, _port: int, _size: int, _data) -> int:
        self._general_protection(uc)
        return 0

    def _port_out(self, uc, _port: int, _size: int, _value: int, _data) -> None:
        self._general_protection(uc)

    def _general_protection(self, uc) -> None:
        """A privileged instruction at CPL 3: #GP (vector 13), which the kernel turns into SIGSEGV."""
        if self.trap is None:
            self.trap = Trap("interrupt", self._rip_safe(), intno=13)
        uc.emu_stop()

    def _invalid(self, uc, _data) -> bool:
        if self.trap is None:
            self.trap = Trap("invalid-opcode", self._rip_safe())
        uc.emu_stop()
        return False

    def _rip_safe(self) -> int:
        try:
            return self.uc.reg_read(x86.UC_X86_REG_RIP)
        except UcError:
            return 0

    # -- running ------------------------------------------------------------------------------

    def enter_user(self, entry_page: int, rip: int, rsp: int, bits: int = 64) -> int:
        """A fresh register file for a new program that starts at rip/rsp in 64-bit or 32-bit mode: the CPU
        goes back to CPL 0 and the next run drops to CPL 3 through the `sysretq` (or `sysretl`) on the
        kernel's entry page at `entry_page`. Returns the kernel address to resume at (RIP is the caller's
        to set: inside a system-call hook Unicorn would move it)."""
        uc = self.uc
        uc.context_restore(self._kernel_context)
        self.reset_user_state(rsp)
        uc.reg_write(x86.UC_X86_REG_RCX, rip)
        uc.reg_write(x86.UC_X86_REG_R11, USER_RFLAGS)
        self.user = False
        return entry_page + (SYSRETL_OFFSET if bits == 32 else 0)

    def reset_fpu(self) -> None:
        """The FPU and SSE state Linux gives a new program (fninit): x87 at 64-bit precision, round to
        nearest, exceptions masked (FCW 0x37f), MXCSR 0x1f80. Unicorn's reset leaves x87 at single precision."""
        self.uc.reg_write(x86.UC_X86_REG_FPCW, FPU_CONTROL_INIT)
        self.uc.reg_write(x86.UC_X86_REG_MXCSR, MXCSR_INIT)

    def reset_user_state(self, rsp: int) -> None:
        """A fresh register file for a new program (execve): all zero but RSP, flags, and SSE defaults."""
        uc = self.uc
        for name in GENERAL_REGS + ("fs_base", "gs_base"):
            uc.reg_write(REG[name], 0)
        for i in range(16):
            uc.reg_write(getattr(x86, f"UC_X86_REG_XMM{i}"), 0)
        self.reset_fpu()
        uc.reg_write(x86.UC_X86_REG_RFLAGS, USER_RFLAGS)
        uc.reg_write(x86.UC_X86_REG_RSP, rsp)

    def run(self, count: int = 0, timeout_us: int = 0) -> Trap | None:
        """Run user code from the current RIP until something stops it (a trap, a request, `count`
        instructions or `timeout_us` microseconds); the trap, or None when it stopped without one."""
        if not count and self._counted:
            self._drop_count_hook()
        self._counted = bool(count)
        self.trap = None
        self.refused = None
        uc = self.uc
        try:
            uc.emu_start(uc.reg_read(x86.UC_X86_REG_RIP), 0, timeout_us, count)
        except UcError as err:
            if self.trap is None:
                if err.errno == ucc.UC_ERR_INSN_INVALID:
                    self.trap = Trap("invalid-opcode", self._rip_safe())
                elif err.errno == UC_ERR_EXCEPTION and self.refused is not None:
                    self.trap = Trap("page-fault", self._rip_safe(), fault=self.refused)
                else:
                    self.trap = Trap("host-error", self._rip_safe(), error=err)
        except BaseException as exc:  # noqa: BLE001 - a hook's exception re-raised by the binding
            if self.trap is None:
                self.trap = Trap("host-error", self._rip_safe(), error=exc)
        return self.trap

    def _drop_count_hook(self) -> None:
        """Unicorn removes its instruction-counting hook on the first run without a count; if that run is
        a process's, a later stop from inside a hook can fail with a stale fetch of the previous process's
        code. So the hook is dropped on a run of its own that faults at once (at page 0, which nothing
        maps), with the fault handler out of the way; registers are put back afterwards."""
        uc = self.uc
        rip = uc.reg_read(x86.UC_X86_REG_RIP)
        faults, self.faults = self.faults, None
        try:
            uc.emu_start(0, 0, 0, 0)
        except UcError:
            pass
        finally:
            self.faults = faults
            uc.reg_write(x86.UC_X86_REG_RIP, rip)

    def stop(self) -> None:
        """Ask the current run to stop after this instruction or hook."""
        self.uc.emu_stop()

    def reg(self, name: str) -> int:
        """Read a register by name ('rax', 'eax', 'fs_base', ...)."""
        reg_id = REG.get(name)
        if reg_id is None:
            reg_id = getattr(x86, f"UC_X86_REG_{name.upper()}")
            if reg_id >= x86.UC_X86_REG_XMM0 and reg_id <= x86.UC_X86_REG_XMM31:
                return self.uc.reg_read(reg_id)
        self._reg_value.value = 0        # a 32- or 16-bit register fills only the low bytes
        ucbinding.uclib.uc_reg_read(self._uch, reg_id, self._reg_ref)
        return self._reg_value.value

    def set_reg(self, name: str, value: int) -> None:
        """Write a register by name."""
        self._reg_value.value = value & 0xFFFF_FFFF_FFFF_FFFF
        ucbinding.uclib.uc_reg_write(self._uch, REG[name], self._reg_ref)

    def syscall_args(self, bits: int = 64) -> tuple[int, int, int, int, int, int, int]:
        """The call number and the six argument registers of the 64-bit ABI (RAX; RDI, RSI, RDX, R10, R8,
        R9) or, for bits=32, the i386 one (EAX; EBX, ECX, EDX, ESI, EDI, EBP), in one Unicorn call."""
        if bits == 64:
            ucbinding.uclib.uc_reg_read_batch(self._uch, self._syscall_ids, self._syscall_ptrs, len(SYSCALL_REGS))
            return tuple(self._syscall_vals)
        ucbinding.uclib.uc_reg_read_batch(self._uch, self._syscall_ids_32, self._syscall_ptrs, len(SYSCALL_REGS))
        return tuple([v & 0xFFFF_FFFF for v in self._syscall_vals])     # 32-bit registers fill only the low half
