"""The kernel: boots the machine, creates processes, takes their traps, and runs them.

Boot maps the kernel half once (a `sysretq` entry page where Linux keeps its text, and
task records in a direct map of kernel frames), shared by every address space through
the same PDPT pages under each PML4, with supervisor-only global entries. Processes run
at CPL 3; their page faults come to `page_fault` from the CPU's TLB fill, their system
calls to `osmodel.syscall.dispatch`, and anything fatal ends in `kill` with a report.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import sys
from dataclasses import dataclass, field
from typing import Callable, TextIO

from loader.elf import Image, LoadError, load_image
from loader.stack import Credentials, build_stack
from loader.symbols import Symbols
from osmodel import report
from osmodel.addrspace import (PROT_EXEC, PROT_READ, PROT_WRITE, STACK_INITIAL, STACK_TOP, AddressSpace, Region,
                               page_down, page_up)
from osmodel.fault import OOM, SEGV, FaultHandler, Resolution, Segv
from osmodel.files import FdTable, File
from osmodel.process import ZOMBIE, Process
from osmodel.signals import SIGKILL, SIGSEGV, signal_for_interrupt
from vm.cpu import SYSRETQ, Cpu, Trap
from vm.mmu import ACCESS_READ, ACCESS_WRITE, PF_PRESENT, PF_WRITE, PageFault
from vm.pagetable import PTE_FRAME, PTE_GLOBAL, PTE_NX, PTE_PRESENT, PTE_WRITABLE, PageTable
from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, OutOfMemory, PhysicalMemory
from vm.tlb import Tlb

KERNEL_TEXT = 0xFFFF_FFFF_8100_0000   # where Linux keeps kernel text; our syscall-return page
DIRECT_MAP = 0xFFFF_8880_0000_0000    # kernel frames (task records) mapped at DIRECT_MAP + paddr
HWCAP = 0x178BFBFF                    # CPUID.1:EDX of the emulated core, as Linux reports it
TASK_RECORD = struct.Struct("<QQQQ16s")  # pid, ppid, cr3, state, comm


@dataclass
class Config:
    """What a run is set up with (the CLI's options)."""
    phys_mem: int = 1 << 30
    stack_limit: int = 8 << 20
    seed: int = 0
    tlb_entries: int = 1536
    tlb_ways: int = 12
    tlb_policy: str = "lru"
    strace: TextIO | None = None
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


class InternalError(Exception):
    """run-elf itself failed while handling a guest event (exit status 70)."""


class Kernel:
    """One machine: physical memory, a CPU, the kernel half, and the processes."""

    def __init__(self, config: Config | None = None):
        self.config = config or Config()
        cfg = self.config
        self.ram = PhysicalMemory(cfg.phys_mem)
        self.tlb = Tlb(cfg.tlb_entries, cfg.tlb_ways, cfg.tlb_policy, seed=cfg.seed)
        self.cpu = Cpu(self.ram, self.tlb)
        self.cpu.faults = self
        self.cpu.on_syscall = self.syscall
        self.faults = FaultHandler(self.ram, self.invalidate)
        self.kernel_pt = PageTable(self.ram)
        self.processes: dict[int, Process] = {}
        self.current: Process | None = None
        self.next_pid = 1
        self.fault_observers: list[Callable[[Process, PageFault, Resolution | None, object], None]] = []
        self.random = random.Random(self.config.seed)   # getrandom's bytes: repeatable per --seed
        self.doing = ""                                   # what the kernel is handling, for error reports
        self._map_kernel_half()

    # -- boot ---------------------------------------------------------------------------------

    def _map_kernel_half(self) -> None:
        """Map the kernel text page and make the PML4 slots of the kernel half exist for sharing."""
        text = self.ram.alloc(Owner.KERNEL)
        self.ram.write(text << PAGE_SHIFT, SYSRETQ)
        self.kernel_pt.map(KERNEL_TEXT, text, PTE_PRESENT | PTE_GLOBAL)
        self.kernel_pt.slot(DIRECT_MAP, alloc=True)

    def _map_task_record(self, proc: Process) -> None:
        """Give the process a task record: a kernel frame, mapped supervisor-only in the direct map."""
        pfn = self.ram.alloc(Owner.KERNEL)
        proc.task_pfn = pfn
        self.kernel_pt.map(DIRECT_MAP + (pfn << PAGE_SHIFT), pfn, PTE_PRESENT | PTE_WRITABLE | PTE_GLOBAL | PTE_NX)
        self._write_task_record(proc)

    def _write_task_record(self, proc: Process) -> None:
        """Store the process's identity and state in its task record."""
        state = 0 if proc.alive else 1
        comm = proc.name.encode()[:15]
        self.ram.write(proc.task_pfn << PAGE_SHIFT,
                       TASK_RECORD.pack(proc.pid, proc.ppid, proc.aspace.pagetable.root << PAGE_SHIFT, state, comm))

    def _unmap_task_record(self, proc: Process) -> None:
        """Free the task record of a process that is gone."""
        if proc.task_pfn:
            va = DIRECT_MAP + (proc.task_pfn << PAGE_SHIFT)
            self.kernel_pt.unmap(va)
            self.cpu.invalidate_page(va, None, "exit")
            self.ram.put(proc.task_pfn)
            proc.task_pfn = 0

    # -- processes -----------------------------------------------------------------------------

    def spawn(self, path: str, argv: list[bytes], envp: list[bytes], stdio: tuple[int, int, int] = (0, 1, 2)) -> Process:
        """Create pid 1 running `path` with the given standard descriptors; LoadError if it cannot load."""
        image = load_image(path)
        pid = self.next_pid
        self.next_pid += 1
        files = FdTable()
        for fd, host in enumerate(stdio):
            try:
                files.place(fd, File(os.dup(host), f"<fd {host}>", os.O_RDWR))
            except OSError:
                pass
        proc = Process(pid=pid, ppid=0, aspace=self._new_aspace(pid), files=files, cwd=os.getcwd())
        self.processes[pid] = proc
        self.exec_image(proc, image, argv, envp)
        self._map_task_record(proc)
        self.current = proc
        self.cpu.switch_to(proc.aspace.pagetable.root, proc.aspace.asid)
        self.cpu.enter_user(KERNEL_TEXT, proc.resume_rip, self.cpu.reg("rsp"))
        proc.resume_rip = None
        return proc

    def _new_aspace(self, pid: int) -> AddressSpace:
        """An empty address space sharing the kernel half, tagged with the pid as its address-space id."""
        aspace = AddressSpace(self.ram, self.kernel_pt.root, asid=pid & 0xFFF)
        aspace.stack_limit = self.config.stack_limit
        return aspace

    def exec_image(self, proc: Process, image: Image, argv: list[bytes], envp: list[bytes]) -> None:
        """Replace proc's memory with `image`: regions for each segment, bss, stack; the initial stack written."""
        old = proc.aspace
        aspace = self._new_aspace(proc.pid) if old.regions else old
        for seg in image.segments:
            file_top = page_up(seg.file_end) if seg.file_end > seg.start else seg.start
            file_top = min(file_top, seg.end)
            if file_top > seg.start:
                aspace.add(Region(seg.start, file_top, seg.prot, seg.kind, backing=image, offset=seg.offset,
                                  file_start=seg.start, file_end=seg.file_end, name=os.path.abspath(image.path)))
            if seg.end > file_top:
                aspace.add(Region(file_top, seg.end, seg.prot, "bss"))
        aspace.brk_start = aspace.brk = image.brk_start
        stack_prot = PROT_READ | PROT_WRITE | (PROT_EXEC if image.stack_exec else 0)
        aspace.add(Region(STACK_TOP - STACK_INITIAL, STACK_TOP, stack_prot, "stack"))
        proc.exec_count += 1
        seed = f"{self.config.seed}:{proc.pid}:{proc.exec_count}".encode()
        creds = Credentials(os.getuid(), os.geteuid(), os.getgid(), os.getegid())
        execfn = image.path.encode()
        stack = build_stack(image, STACK_TOP, argv, envp, hashlib.sha256(seed).digest()[:16], creds, execfn, HWCAP)
        if aspace is not old:
            self.release_aspace(old, "exec")
        proc.aspace = aspace
        proc.exe = os.path.abspath(image.path)
        proc.name = os.path.basename(argv[0].decode(errors="replace")) if argv else os.path.basename(image.path)
        proc.symbols = Symbols(image.path, image.load_bias)
        self.copyout(proc, stack.sp, stack.data)
        cpu = self.cpu
        for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
                     "r14", "r15", "fs_base", "gs_base"):
            cpu.set_reg(name, 0)
        cpu.set_reg("rsp", stack.sp)
        proc.resume_rip = image.entry

    def exit(self, proc: Process, code: int | None = None, signal: int | None = None) -> None:
        """End a process: release its memory and descriptors, keep it as a zombie with its status."""
        if not proc.alive:
            return
        proc.exit_code = code
        proc.killed_by = signal
        proc.state = ZOMBIE
        proc.peak_resident = max(proc.peak_resident, proc.aspace.peak_resident)
        proc.table_pages = proc.aspace.pagetable.table_pages
        proc.files.close_all()
        self.release_aspace(proc.aspace, "exit")
        self._unmap_task_record(proc)
        if proc is self.current:
            self.cpu.stop()

    def release_aspace(self, aspace: AddressSpace, reason: str) -> None:
        """Free an address space's frames and tables, and every cached translation of it."""
        self.cpu.mmu.forget(aspace.pagetable.root)
        aspace.release()
        self.cpu.flush_tlb(aspace.asid, reason)

    def kill(self, proc: Process, signal: int, message: str = "") -> None:
        """Kill a process with a signal's default action, reporting it on stderr like a kernel log line."""
        if message:
            print(f"run-elf: pid {proc.pid} killed by {report.signal_name(signal)}: {message}",
                  file=self.config.stderr, flush=True)
        self.exit(proc, signal=signal)

    # -- user memory (copyin/copyout) ------------------------------------------------------------

    def user_page(self, proc: Process, vaddr: int, write: bool) -> int:
        """Physical address of vaddr for a kernel access on proc's behalf, faulting the page in; Segv if it can't be."""
        pt = proc.aspace.pagetable
        pte = pt.lookup(vaddr)
        if not pte & PTE_PRESENT or (write and not pte & PTE_WRITABLE) or vaddr >= (1 << 47):
            code = (PF_PRESENT if pte & PTE_PRESENT else 0) | (PF_WRITE if write else 0)
            fault = PageFault(vaddr, code, ACCESS_WRITE if write else ACCESS_READ)
            self.resolve(proc, fault, kernel_mode=True)
            pte = pt.lookup(vaddr)
        return (pte & PTE_FRAME) | (vaddr & (PAGE_SIZE - 1))

    def copyin(self, proc: Process, vaddr: int, size: int) -> bytes:
        """Read size bytes of proc's memory at vaddr (Segv on a bad address)."""
        out = bytearray()
        view = self.ram.view
        while size > 0:
            n = min(size, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            pa = self.user_page(proc, vaddr, False)
            out += view[pa:pa + n]
            vaddr += n
            size -= n
        return bytes(out)

    def copyout(self, proc: Process, vaddr: int, data: bytes) -> None:
        """Write data into proc's memory at vaddr (Segv on a bad address)."""
        view = self.ram.view
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            pa = self.user_page(proc, vaddr, True)
            view[pa:pa + n] = data[pos:pos + n]
            vaddr += n
            pos += n

    def copyinstr(self, proc: Process, vaddr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string of proc's memory at vaddr, without the NUL (Segv on a bad address)."""
        out = bytearray()
        view = self.ram.view
        while len(out) < limit:
            n = PAGE_SIZE - (vaddr & (PAGE_SIZE - 1))
            pa = self.user_page(proc, vaddr, False)
            chunk = view[pa:pa + n]
            end = bytes(chunk).find(b"\0")
            if end >= 0:
                out += chunk[:end]
                return bytes(out)
            out += chunk
            vaddr += n
        raise Segv("string too long", 0)

    def peek(self, proc: Process, vaddr: int, size: int) -> bytes:
        """Up to size bytes at vaddr that are already mapped, without faulting anything in (for reports)."""
        out = bytearray()
        pt = proc.aspace.pagetable
        while size > 0 and vaddr < (1 << 47):
            pte = pt.lookup(vaddr)
            if not pte & PTE_PRESENT:
                break
            n = min(size, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            pa = (pte & PTE_FRAME) | (vaddr & (PAGE_SIZE - 1))
            out += self.ram.view[pa:pa + n]
            vaddr += n
            size -= n
        return bytes(out)

    # -- traps ---------------------------------------------------------------------------------

    def page_fault(self, fault: PageFault) -> bool:
        """The CPU's fault sink: resolve a user fault of the current process; False leaves it refused."""
        proc = self.current
        try:
            self.resolve(proc, fault)
            return True
        except (Segv, OutOfMemory):
            return False

    def resolve(self, proc: Process, fault: PageFault, kernel_mode: bool = False) -> Resolution:
        """Run the fault handler for proc, count and report the outcome; re-raise Segv/OutOfMemory."""
        try:
            res = self.faults.resolve(proc.aspace, fault)
        except Segv as segv:
            proc.fault_counts[SEGV] += 1
            if not kernel_mode:
                proc.fault_error = segv
            self._observe(proc, fault, None, segv)
            raise
        except OutOfMemory as oom:
            proc.fault_counts[OOM] += 1
            proc.fault_error = oom
            self._observe(proc, fault, None, oom)
            raise
        proc.fault_counts[res.outcome] += 1
        self._observe(proc, fault, res, None)
        return res

    def _observe(self, proc: Process, fault: PageFault, res: Resolution | None, error: object) -> None:
        for observer in self.fault_observers:
            observer(proc, fault, res, error)

    def invalidate(self, aspace: AddressSpace, vaddr: int, reason: str) -> None:
        """Drop a page of aspace from the TLBs after its entry changed."""
        self.cpu.invalidate_page(vaddr, aspace.asid, reason)

    def syscall(self) -> None:
        """The CPU executed `syscall` in the current process."""
        from osmodel.syscall import dispatch
        dispatch(self, self.current)

    def handle_trap(self, proc: Process, trap: Trap) -> None:
        """Turn a stopped run into what the kernel does: a signal to the process, or an internal error."""
        if trap.kind == "host-error":
            raise InternalError(report.internal_error(self, proc, trap))
        if trap.kind == "page-fault":
            error = proc.fault_error
            if isinstance(error, OutOfMemory):
                print(f"run-elf: out of memory: killed pid {proc.pid} ({proc.name}): {error}",
                      file=self.config.stderr, flush=True)
                self.kill(proc, SIGKILL)
                return
            self.kill(proc, SIGSEGV, report.describe_fault(self, proc, trap.fault, error, trap.rip))
            return
        if trap.kind == "interrupt":
            sig = signal_for_interrupt(trap.intno)
            self.kill(proc, sig, report.describe_exception(self, proc, trap.intno, trap.rip))
            return
        if trap.kind == "invalid-opcode":
            self.kill(proc, 4, report.describe_exception(self, proc, 6, trap.rip))
            return
        raise InternalError(f"unknown trap {trap.kind}")

    # -- running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until pid 1 ends; its status as a shell reports it."""
        init = self.processes[1]
        cpu = self.cpu
        while init.alive:
            proc = self.current
            if proc.resume_rip is not None:
                cpu.set_reg("rip", proc.resume_rip)
                proc.resume_rip = None
            trap = cpu.run()
            if not proc.alive:
                continue
            if proc.resume_rip is not None:
                continue
            if trap is None:
                continue
            self.handle_trap(proc, trap)
        return init.shell_status()
