"""The kernel: boots the machine, creates processes and threads, takes their traps, and runs them.

Boot maps the kernel half once (a `sysretq` entry page where Linux keeps its text, and
task records in a direct map of kernel frames), shared by every address space through
the same PDPT pages under each PML4, with supervisor-only global entries. Processes run
at CPL 3; their page faults come to `page_fault` from the CPU's TLB fill, their system
calls to `osmodel.syscall.dispatch`, and anything fatal ends in `kill` with a report.
`run` is the scheduler: round robin over runnable processes, a context switch per change,
signals delivered on the way back to user mode (osmodel.sigframe), timers and sleepers.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import itertools
import os
import random
import resource
import select
import stat
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from loader.elf import DEFAULT_PIE_BASE, DEFAULT_PIE_BASE_32, Image, LoadError, load_image
from loader.stack import Credentials, build_stack
from loader.symbols import Symbols
from osmodel import hostsig, report
from osmodel.addrspace import (PROT_EXEC, PROT_READ, PROT_WRITE, STACK_INITIAL, AddressSpace,
                               Region, page_down, page_up)
from osmodel.fault import OOM, SEGV, FaultHandler, Resolution, Segv
from osmodel.fifo import FifoTable
from osmodel.files import MAX_FDS, AnyOf, Block, FdTable, HostFile, SysError, host_umask
from osmodel.process import RUNNABLE, SIG_DFL, SIG_IGN, SLEEPING, ZOMBIE, Process
from osmodel.pagecache import FileBacking, PageCache
from osmodel.syscall import ABI_32, ABI_64, dispatch   # before sigframe: it loads every handler module, then
                                                      # the i386 table, which shares their handlers
from osmodel.sigframe import (CLD_CONTINUED, CLD_STOPPED, NO_ALTSTACK, SA_NOCLDSTOP, SI_KERNEL, SIGRTMIN,
                              SIGWAIT_CALLS, action, add_pending, deliver, deliverable, discard, queued_signals,
                              siginfo, trap_siginfo, waits_for, wants_signal)
from osmodel.syssignalfd import wake_readers
from osmodel.systime import cpu_timer_left, exec_timers, exit_timers, expire_cpu_timers
from osmodel.vfs import FileSystem
from osmodel.signals import (IGNORED_BY_DEFAULT, SIGCHLD, SIGCONT, SIGKILL, SIGSEGV, STOP_SIGNALS,
                             signal_for_interrupt)
from vm import gdt
from vm.cpu import SYSRETL, SYSRETL_OFFSET, SYSRETQ, Cpu, Trap
from vm.mmu import ACCESS_READ, ACCESS_WRITE, PF_PRESENT, PF_WRITE, PageFault
from vm.pagetable import (I386, I386_PAE, PTE_FRAME, PTE_GLOBAL, PTE_NX, PTE_PRESENT, PTE_WRITABLE, X86_64, PageTable,
                          PagingFormat)
from vm.ram import PAGE_SHIFT, PAGE_SIZE, Owner, OutOfMemory, PhysicalMemory
from vm.tlb import Tlb
from unicorn import x86_const as x86

KERNEL_TEXT = 0xFFFF_FFFF_8100_0000   # where Linux keeps kernel text; our syscall-return page
DIRECT_MAP = 0xFFFF_8880_0000_0000    # kernel frames (task records) mapped at DIRECT_MAP + paddr
PAGE_OFFSET_32 = 0xC000_0000          # i386: low memory is mapped at PAGE_OFFSET + paddr (the 3G/1G split)
LOWMEM_32 = 896 << 20                 # i386: how much RAM the kernel's quarter maps (the rest is highmem)
PAGING_32 = {"2level": I386, "pae": I386_PAE}   # --paging: the format of a 32-bit program's tables
HWCAP = 0x178BFBFF                    # CPUID.1:EDX of the emulated core, as Linux reports it
TASK_RECORD = struct.Struct("<QQQQ16s")  # pid, ppid, cr3, state, comm
BINPRM_BUF_SIZE = 256                 # how much of a file execve reads to recognise it (#! line limit)
MAX_INTERP_DEPTH = 4                  # nested #! interpreters, as Linux
SYSCALL_INSN_SIZE = 2
QUIET_SIGNALS = frozenset({2, 13})    # SIGINT, SIGPIPE: shells report no message for these deaths
EXIT_STOPPED = 124                    # as timeout(1): a limit stopped the guest
LONG_CALL_NS = 500_000                # a system call this long may have waited on the host (see idle_since)


@dataclass
class Config:
    """What a run is set up with (the CLI's options)."""
    phys_mem: int = 1 << 30
    stack_limit: int = 8 << 20
    seed: int = 0
    tlb_entries: int = 1536
    tlb_ways: int = 12
    tlb_policy: str = "lru"
    root: str | None = None               # the guest's / (None: the host's file system)
    read_only: bool = False               # refuse every change to the file system (EROFS)
    max_procs: int = 0                    # fork fails with EAGAIN beyond this many processes (0: no limit)
    aslr: bool = False                    # randomise the PIE base, mmap base and stack top (from --seed)
    fault_around: int = 0                 # pages mapped around a read fault on a file page (Linux: 16; 0 off)
    max_insns: int = 0                    # stop the guest after this many instructions (0: never)
    timeout: float = 0.0                  # stop the guest after this many seconds of wall time (0: never)
    quantum: int = 1_000_000              # instructions a process runs before another runnable one gets the CPU
    paging: str = "2level"                # 32-bit programs' page tables: i386 two-level, or "pae" (with NX)
    strace: TextIO | None = None
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


def shebang(head: bytes, path: str, argv: list[bytes]) -> tuple[str, list[bytes]] | None:
    """For a file whose first bytes `head` are a #! line, as Linux's binfmt_script: (the interpreter's
    path, its argv: the interpreter, its one optional argument, the script's path, the script's
    arguments); None for any other file; SysError(ENOEXEC) for an empty #! line."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip()
    if not line:
        raise SysError(errno.ENOEXEC)
    interp, _, arg = line.replace(b"\t", b" ").partition(b" ")
    arg = arg.strip()
    return os.fsdecode(interp), [interp] + ([arg] if arg else []) + [os.fsencode(path)] + argv[1:]


def stdio_name(fd: int) -> str:
    """What run-elf's own descriptor fd is (a terminal, a file, pipe:[N]), as /proc/self/fd/N names it."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"<fd {fd}>"


@dataclass(order=True)
class KernelTimer:
    """A timer in the kernel's queue: fire(now) is called at `due` (time.monotonic()) unless cancelled."""
    due: float
    seq: int
    fire: Callable[[float], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Disarm it (it leaves the queue when it reaches the front)."""
        self.cancelled = True


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
        self.cpu.on_int80 = self.int80
        self.cache = PageCache(self.ram)
        self.faults = FaultHandler(self.ram, self.invalidate, self.cache, cfg.fault_around)
        self.kernel_pt = PageTable(self.ram)
        self.kernel_tables: dict[PagingFormat, PageTable] = {X86_64: self.kernel_pt}   # the kernel part, per format
        self.syscall_rip = 0        # the system-call instruction being handled (a new child returns after it)
        self.fs = FileSystem(cfg.root, cfg.read_only)
        self.processes: dict[int, Process] = {}
        self.current: Process | None = None
        self.next_pid = 1
        self.fault_observers: list[Callable[[Process, PageFault, Resolution | None, object], None]] = []
        self.random = random.Random(self.config.seed)   # getrandom's bytes: repeatable per --seed
        self.doing = ""                                   # what the kernel is handling, for error reports
        self.reaped: list[Process] = []                   # processes that are gone, for statistics
        self.context_switches = 0
        self.signals_delivered = 0
        self.deadlocked = False
        self.stopped = False        # a limit (--timeout, --max-insns) ended the run
        self.unbounded = False      # the current run has no instruction quantum (nobody else was runnable)
        self.insn_counter = None    # vm.icount.InstructionCounter, once something needs instructions counted
        self.proc_files: list[int] = []   # memory files serving generated /proc/PID files
        self.fifos = FifoTable(self)       # named pipes open in the guest
        self.host_signals: list[tuple[int, int]] = []  # (signal, si_code) run-elf caught, for the guest (hostsig)
        self.interrupt_fd = -1             # readable when one came: host waits end early (hostsig)
        self.terminal = -1                 # the device number of the terminal run-elf was started on, if any
        self.tty_pgrp: dict[int, int] = {} # the foreground process group of each terminal, by device number
        self.deadline = 0.0               # time.monotonic() at which --timeout stops the guest (0: never)
        self.timers: list[KernelTimer] = []   # a heap by due time: alarms, interval and POSIX timers, timerfds
        self._timer_seq = itertools.count()
        self.acct_mark = 0                # time.perf_counter_ns() at the last CPU-time accounting point
        self.fault_ns = 0                 # ns spent in page faults since then (system time within a run)
        self.run_began = (0, 0)           # perf_counter_ns() and thread_time_ns() when the current run began
        self.run_idle = 0                 # ns of the current run the host thread was off the CPU, left uncharged
        self._map_kernel_half()

    # -- boot ---------------------------------------------------------------------------------

    def _map_kernel_half(self) -> None:
        """Map the kernel text page and make the PML4 slots of the kernel half exist for sharing; load the GDT."""
        text = self.text_pfn = self.ram.alloc(Owner.KERNEL)
        self.ram.write(text << PAGE_SHIFT, SYSRETQ)
        self.ram.write((text << PAGE_SHIFT) + SYSRETL_OFFSET, SYSRETL)
        self.kernel_pt.map(KERNEL_TEXT, text, PTE_PRESENT | PTE_GLOBAL)
        self.gdt_pfn = self.ram.alloc(Owner.KERNEL)
        self.ram.write(self.gdt_pfn << PAGE_SHIFT, gdt.boot_gdt())
        self.cpu.load_gdt(self.gdt_pfn)
        # The direct map's tables exist from boot for all of RAM (as Linux builds it at boot), so that
        # mapping a task record never allocates a kernel page-table page that outlives its process.
        for pfn in range(0, self.ram.nframes, 512):
            self.kernel_pt.slot(DIRECT_MAP + (pfn << PAGE_SHIFT), alloc=True)

    def kernel_table(self, fmt: PagingFormat) -> PageTable:
        """The kernel's part of every address space of paging format `fmt`, shared by all of them. For the
        32-bit formats it is built on first use, as Linux i386 maps it: all low memory (up to 896 MiB)
        at PAGE_OFFSET + physical address, supervisor-only and global; the entry page is in it."""
        pt = self.kernel_tables.get(fmt)
        if pt is None:
            pt = PageTable(self.ram, fmt=fmt)
            lowmem = min(self.ram.nframes, LOWMEM_32 >> PAGE_SHIFT)
            pt.map_range(PAGE_OFFSET_32, 0, lowmem, PTE_PRESENT | PTE_WRITABLE | PTE_GLOBAL | PTE_NX)
            if self.text_pfn >= lowmem:
                raise InternalError("the kernel entry page is not in low memory")
            pt.map(PAGE_OFFSET_32 + (self.text_pfn << PAGE_SHIFT), self.text_pfn, PTE_PRESENT | PTE_GLOBAL)
            self.kernel_tables[fmt] = pt
        return pt

    def entry_page(self, fmt: PagingFormat) -> int:
        """Where the kernel's entry page (sysretq/sysretl) is in an address space of format fmt."""
        return KERNEL_TEXT if fmt is X86_64 else PAGE_OFFSET_32 + (self.text_pfn << PAGE_SHIFT)

    def load_tls(self, proc: Process) -> None:
        """Put a 32-bit process's set_thread_area descriptors in the GDT's TLS entries (Linux's load_TLS)."""
        base = (self.gdt_pfn << PAGE_SHIFT) + gdt.GDT_ENTRY_TLS_MIN * 8
        self.ram.write(base, struct.pack("<3Q", *proc.tls))

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
        """Create pid 1 running the guest path `path` with the given standard descriptors; LoadError if it cannot load."""
        cwd = os.getcwd() if self.fs.root is None else "/"
        program = path
        path, host, argv = self._follow_scripts(path, argv, cwd)
        try:
            image = load_image(host)
        except LoadError as err:
            if path == program:
                raise
            raise LoadError(f"its #! interpreter {path}: {err}") from None
        files = FdTable(limit=min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], MAX_FDS))   # run-elf's own, as inherited
        for fd, host in enumerate(stdio):
            try:
                files.place(fd, HostFile(os.dup(host), self.fs.guest_of_host(stdio_name(host)), os.O_RDWR))
                if self.terminal < 0 and os.isatty(host):
                    self.terminal = os.fstat(host).st_rdev
            except OSError:
                pass
        proc = self._new_process(ppid=0, aspace=None, files=files, cwd=cwd)
        # Its process group and session are run-elf's, outside the guest's pid namespace: 0 in it, as for
        # an init started by unshare --pid --fork; like a program run from a script, it leads neither.
        proc.pgid = proc.sid = 0
        proc.umask = host_umask()
        try:
            self.exec_image(proc, image, argv, envp, path)
        except BaseException:
            self._discard(proc)
            raise
        self.current = proc
        self.cpu.switch_to(proc.aspace.pagetable.root, proc.aspace.asid, proc.aspace.fmt)
        self.load_tls(proc)
        return proc

    def _follow_scripts(self, path: str, argv: list[bytes], cwd: str) -> tuple[str, str, list[bytes]]:
        """pid 1's program as execve would run it: #! lines followed to the file that runs; (its guest
        path, host path, argv). LoadError for an empty #! line or interpreters nested too deeply."""
        for _ in range(MAX_INTERP_DEPTH + 1):
            host = self.fs.resolve(path, cwd)[1]
            try:
                if not stat.S_ISREG(os.stat(host).st_mode):
                    return path, host, argv            # a FIFO or device is never opened: load_image refuses it
                with open(host, "rb") as f:
                    script = shebang(f.read(BINPRM_BUF_SIZE), path, argv)
            except OSError:
                return path, host, argv                # load_image says what is wrong with it
            except SysError:
                raise LoadError("empty #! line") from None
            if script is None:
                return path, host, argv
            path, argv = script
        raise LoadError(f"#! interpreters nested more than {MAX_INTERP_DEPTH} deep")

    def _discard(self, proc: Process) -> None:
        """Undo a process that never ran (its image could not be set up)."""
        proc.files.close_all()
        self.release_aspace(proc.aspace, "exit")
        self._unmap_task_record(proc)
        del self.processes[proc.pid]
        if self.current is proc:
            self.current = None

    def _new_process(self, ppid: int, aspace: AddressSpace | None, files: FdTable, cwd: str) -> Process:
        """A process with the next pid, its task record mapped in the kernel half."""
        pid = self.next_pid
        self.next_pid += 1
        proc = Process(pid=pid, ppid=ppid, aspace=aspace or self._new_aspace(pid), files=files, cwd=cwd)
        self.processes[pid] = proc
        self._map_task_record(proc)
        return proc

    def _new_aspace(self, pid: int, fmt: PagingFormat = X86_64) -> AddressSpace:
        """An empty address space of paging format fmt sharing the kernel's part, tagged with the pid as its address-space id."""
        aspace = AddressSpace(self.ram, self.kernel_table(fmt).root, asid=pid & 0xFFF, cache=self.cache, fmt=fmt)
        aspace.stack_limit = self.config.stack_limit
        self.cpu.flush_tlb(aspace.asid, "new address space")   # the asid may have been used before
        return aspace

    def exec_image(self, proc: Process, image: Image, argv: list[bytes], envp: list[bytes], execfn: str) -> None:
        """Replace proc's memory with `image` (and its PT_INTERP interpreter): regions for each segment,
        bss and stack; the initial stack written; execution starts at the interpreter's entry, or the image's.

        Raises LoadError (leaving proc untouched) if the interpreter is missing or the arguments do not fit.
        """
        exe = os.path.realpath(image.path)       # /proc/self/exe: the file itself, whatever link named it
        old = proc.aspace
        fmt = X86_64 if image.bits == 64 else PAGING_32[self.config.paging]
        if fmt.entry_size == 4 and self.ram.size > 1 << 32:
            raise LoadError("a 32-bit program with two-level paging reaches 4 GiB of physical memory: "
                            "use --paging pae or --phys-mem 4G or less")
        aspace = self._new_aspace(proc.pid, fmt) if old.regions or old.users > 1 or old.fmt is not fmt else old
        if self.config.aslr:
            image = self._randomise(aspace, image, proc)
        interp = self._load_interpreter(image, aspace.mmap_base) if image.interp else None
        size = sum(seg.end - seg.start for img in (image, interp) if img for seg in img.segments)
        if size > self.ram.size:
            raise LoadError(f"segments need {size >> 20} MiB, more than the {self.ram.size >> 20} MiB of physical memory")
        proc.exec_count += 1
        seed = f"{self.config.seed}:{proc.pid}:{proc.exec_count}".encode()
        creds = Credentials(os.getuid(), os.geteuid(), os.getgid(), os.getegid())
        stack = build_stack(image, aspace.stack_top, argv, envp, hashlib.sha256(seed).digest()[:16], creds,
                            os.fsencode(execfn), HWCAP, interp_base=interp.load_bias if interp else 0)
        self._map_image(aspace, image)
        if interp is not None:
            self._map_image(aspace, interp)
        aspace.brk_start = aspace.brk = image.brk_start
        aspace.stack_limit = old.stack_limit
        stack_prot = PROT_READ | PROT_WRITE | (PROT_EXEC if image.stack_exec else 0)
        aspace.add(Region(aspace.stack_top - STACK_INITIAL, aspace.stack_top, stack_prot, "stack"))
        if aspace is not old:
            self.release_aspace(old, "exec")
        proc.aspace = aspace
        proc.exe = exe
        proc.argv, proc.environ = list(argv), list(envp)
        proc.dumpable = 1
        proc.name = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else \
            os.path.basename(image.path)
        proc.symbols = Symbols(image.path, image.load_bias)
        self._write_task_record(proc)
        self.copyout(proc, stack.sp, stack.data)
        entry = interp.entry if interp is not None else image.entry
        proc.resume_rip = self.cpu.enter_user(self.entry_page(fmt), entry, stack.sp, image.bits)
        proc.tls = [0] * gdt.GDT_ENTRY_TLS_ENTRIES
        if proc is self.current:
            self.cpu.switch_to(aspace.pagetable.root, aspace.asid, fmt)
            self.load_tls(proc)

    def _randomise(self, aspace: AddressSpace, image: Image, proc: Process) -> Image:
        """--aslr: offsets for the stack top, the mmap base and a PIE's base, drawn from the seed
        (as Linux's 22, 28 and 28 bits of page-granular entropy on x86-64)."""
        rng = random.Random(f"aslr:{self.config.seed}:{proc.pid}:{proc.exec_count}")
        stack_bits, mmap_bits, pie_base = (22, 28, DEFAULT_PIE_BASE) if image.bits == 64 else (11, 8, DEFAULT_PIE_BASE_32)
        aspace.stack_top -= rng.getrandbits(stack_bits) << PAGE_SHIFT
        aspace.mmap_base = aspace.stack_top - aspace.stack_limit - (256 << 20) - (rng.getrandbits(mmap_bits) << PAGE_SHIFT)
        if image.elf_type == "ET_DYN":
            image = load_image(image.path, base=pie_base + (rng.getrandbits(mmap_bits) << PAGE_SHIFT))
        return image

    def _load_interpreter(self, image: Image, mmap_base: int) -> Image:
        """The program's interpreter (ld.so), placed just below the mmap area as Linux maps it."""
        host = self.fs.resolve(image.interp, "/")[1]
        if not os.path.exists(host):
            raise LoadError(f"interpreter {image.interp} not found")
        try:
            interp = load_image(host)
        except LoadError as err:
            raise LoadError(f"interpreter {image.interp}: {err}") from None
        if interp.interp:
            raise LoadError(f"interpreter {image.interp} itself needs an interpreter")
        if interp.elf_type == "ET_DYN":
            span = interp.segments[-1].end - interp.segments[0].start
            interp = load_image(host, base=page_down(mmap_base - span))
        return interp

    def _map_image(self, aspace: AddressSpace, image: Image) -> None:
        """Regions for an image's segments: file-backed pages, then the zero-filled rest as bss."""
        exe = os.path.realpath(image.path)
        backing = FileBacking(exe, self.fs.guest_of_host(exe))
        for seg in image.segments:
            file_top = min(page_up(seg.file_end) if seg.file_end > seg.start else seg.start, seg.end)
            # Linux maps whole file pages, so the last page of a read-only segment shows the file's bytes
            # past p_filesz (and comes from the page cache); only a writable one's tail is bss, zeroed.
            file_end = seg.file_end if seg.prot & PROT_WRITE else file_top
            if file_top > seg.start:
                aspace.add(Region(seg.start, file_top, seg.prot, seg.kind, backing=backing, offset=seg.offset,
                                  file_start=seg.start, file_end=file_end, name=backing.path))
            if seg.end > file_top:
                aspace.add(Region(file_top, seg.end, seg.prot, "bss"))

    def execve(self, proc: Process, path: str, argv: list[bytes], envp: list[bytes], depth: int = 0) -> None:
        """The execve system call: run the guest path `path` (an ELF or a #! script), or raise SysError leaving proc intact."""
        from osmodel.sysfile import AT_FDCWD, namei
        host = namei(self, proc, AT_FDCWD, os.fsencode(path))[1]
        if not os.path.exists(host):
            raise SysError(errno.ENOENT)
        if os.path.isdir(host) or not os.access(host, os.X_OK):
            raise SysError(errno.EACCES)
        with open(host, "rb") as f:
            script = shebang(f.read(BINPRM_BUF_SIZE), path, argv)
        if script is not None:
            if depth >= MAX_INTERP_DEPTH:
                raise SysError(errno.ELOOP)
            return self.execve(proc, *script, envp, depth + 1)
        for thread in self.threads(proc):       # de_thread: exec leaves the caller alone in its group
            if thread.leader is not None:
                self.exit_thread(thread)
        try:
            image = load_image(host)
            self.exec_image(proc, image, argv, envp, path)
        except LoadError as err:
            raise SysError(errno.E2BIG if "too long" in str(err) else errno.ENOEXEC) from None
        proc.files.close_on_exec()
        exec_timers(proc)
        proc.signal_contexts.clear()
        proc.altstack = NO_ALTSTACK
        for sig in list(proc.sigactions):
            if proc.handler(sig) != SIG_IGN:
                del proc.sigactions[sig]
        self.end_vfork(proc)
        self.cpu.stop()

    def fork(self, parent: Process, flags: int, stack: int, tls: int, share_vm: bool) -> Process:
        """A copy of parent (fork), or with share_vm a child on the parent's address space (vfork).

        A fork copies the page tables, not the pages: private writable pages become read-only
        in both, and their frames gain a reference; the first write to one is a COW fault.
        """
        self._check_process_limit()
        if share_vm:
            aspace = parent.aspace
            aspace.users += 1
        else:
            aspace = self._new_aspace(self.next_pid, parent.aspace.fmt)
            parent.aspace.copy_into(aspace)
            self.cpu.flush_tlb(parent.aspace.asid, "copy-on-write")
        child = self._new_process(parent.tgid, aspace, parent.files.copy(), parent.cwd)
        child.pgid, child.sid = parent.pgid, parent.sid
        child.umask, child.rlimits, child.ioprio = parent.umask, dict(parent.rlimits), parent.ioprio
        child.dumpable, child.no_new_privs = parent.dumpable, parent.no_new_privs
        child.exe, child.name, child.symbols = parent.exe, parent.name, parent.symbols
        child.sigactions, child.sigmask, child.altstack = dict(parent.sigactions), parent.sigmask, parent.altstack
        child.tls = list(parent.tls)
        child.context = self._child_context(stack, tls)
        self._write_task_record(child)
        self.preempt_unbounded()
        if share_vm:
            child.vfork_parent = parent
            self.sleep(parent, child, "vfork")
        return child

    def _check_process_limit(self) -> None:
        """EAGAIN, as RLIMIT_NPROC, when --max-procs tasks exist (threads and zombies count, as on Linux)."""
        if self.config.max_procs and len(self.processes) >= self.config.max_procs:
            raise SysError(errno.EAGAIN)

    def _child_context(self, stack: int, tls: int):
        """The registers of a new child or thread: the caller's, returning 0 from the system call,
        on `stack` and with FS base `tls` when they are given."""
        ctx = self.cpu.uc.context_save()
        ctx.reg_write(x86.UC_X86_REG_RAX, 0)
        ctx.reg_write(x86.UC_X86_REG_RIP, self.syscall_rip + SYSCALL_INSN_SIZE)
        if stack:
            ctx.reg_write(x86.UC_X86_REG_RSP, stack)
        if tls:
            ctx.reg_write(x86.UC_X86_REG_FS_BASE, tls)
        return ctx

    def clone_thread(self, parent: Process, stack: int, tls: int) -> Process:
        """A new thread in parent's group: the same address space, descriptor table and signal
        actions, its own registers (RSP = stack, FS base = tls when given) and tid."""
        self._check_process_limit()
        leader = parent.leader or parent
        parent.aspace.users += 1
        parent.files.users += 1
        thread = self._new_process(leader.ppid, parent.aspace, parent.files, parent.cwd)
        thread.leader = leader
        thread.pgid, thread.sid = leader.pgid, leader.sid
        thread.umask, thread.rlimits = parent.umask, parent.rlimits
        thread.exe, thread.name, thread.symbols, thread.argv = parent.exe, parent.name, parent.symbols, parent.argv
        thread.sigactions, thread.sigmask = parent.sigactions, parent.sigmask
        thread.tls = list(parent.tls)
        thread.context = self._child_context(stack, tls)
        self._write_task_record(thread)
        self.preempt_unbounded()
        return thread

    def threads(self, proc: Process) -> list[Process]:
        """The other live threads of proc's thread group."""
        leader = proc.leader or proc
        return [t for t in self.processes.values()
                if t is not proc and t.alive and (t is leader or t.leader is leader)]

    def exit_thread(self, thread: Process) -> None:
        """A thread ends (exit, or its group is ending): CLONE_CHILD_CLEARTID is honoured (0 written,
        one futex waiter woken, as pthread_join expects), its shares are dropped, and it is gone
        at once: threads are never zombies."""
        if not thread.alive:
            return
        if thread.clear_child_tid:
            try:
                self.copyout(thread, thread.clear_child_tid, b"\0\0\0\0")
                self.futex_wake(thread, thread.clear_child_tid, 1)
            except (Segv, OutOfMemory):
                pass
        thread.state = ZOMBIE
        thread.channel = None
        thread.files.users -= 1
        self.release_aspace(thread.aspace, "exit")
        self._unmap_task_record(thread)
        self.reaped.append(thread)
        del self.processes[thread.pid]
        if thread is self.current:
            self.cpu.stop()

    def futex_key(self, proc: Process, uaddr: int) -> tuple[str, int]:
        """A futex's identity: the physical address of its word (so threads and shared mappings meet)."""
        return ("futex", self.user_page(proc, uaddr, False))

    def futex_wake(self, proc: Process, uaddr: int, count: int) -> int:
        """Wake up to `count` processes waiting on the futex at uaddr; how many were woken."""
        key = self.futex_key(proc, uaddr)
        woken = 0
        for p in self.processes.values():
            if woken >= count:
                break
            if p.state == SLEEPING and p.channel == key:
                p.state = RUNNABLE
                p.channel = None
                p.futex_woken = True
                woken += 1
        if woken:
            self.preempt_unbounded()
        return woken

    def end_vfork(self, child: Process) -> None:
        """The vfork child execs or exits: its parent may run again."""
        if child.vfork_parent is not None:
            child.vfork_parent = None
            self.wakeup(child)

    def exit(self, proc: Process, code: int | None = None, signal: int | None = None) -> None:
        """End a process (its whole thread group): release its memory and descriptors, hand its
        children to init, leave a zombie (the group leader's record) for the parent."""
        if not proc.alive:
            return
        for thread in self.threads(proc):
            if thread.leader is not None:
                self.exit_thread(thread)
        if proc.leader is not None:                 # a thread ended the group: the leader carries the status
            leader = proc.leader
            self.exit_thread(proc)
            self.exit(leader, code, signal)
            return
        proc.exit_code = code
        proc.killed_by = signal
        exit_timers(proc)
        proc.state = ZOMBIE
        proc.channel = None
        proc.shared_pending = 0
        proc.shared_siginfo.clear()
        proc.peak_resident = max(proc.peak_resident, proc.aspace.peak_resident)
        proc.table_pages = proc.aspace.pagetable.table_pages
        proc.files.users -= 1
        if not proc.files.users:
            proc.files.close_all()
        self.release_aspace(proc.aspace, "exit")
        self.end_vfork(proc)
        self.reparent_children(proc)
        self._write_task_record(proc)
        parent = self.processes.get(proc.ppid)
        if parent is not None and parent.handler(SIGCHLD) == SIG_IGN:
            self.reap(proc)              # SIGCHLD ignored: no zombie (POSIX.1-2001)
        elif parent is not None:
            self.wakeup(parent)
            killed = signal is not None
            self.signal(parent, SIGCHLD, info=siginfo(SIGCHLD, code=2 if killed else 1, pid=proc.pid,
                                                      uid=os.getuid(), status=signal if killed else code or 0),
                        group=True)
        if proc is self.current:
            self.cpu.stop()

    def reparent_children(self, proc: Process) -> None:
        """proc is gone: its children go to the nearest living ancestor that is a child subreaper (prctl),
        else to pid 1, and each that asked for a parent-death signal gets it."""
        heir, seen = self.processes.get(proc.ppid), set()
        while heir is not None and heir.alive and not heir.child_subreaper and heir.pid not in seen:
            seen.add(heir.pid)
            heir = self.processes.get(heir.ppid)
        heir_pid = heir.pid if heir is not None and heir.alive and heir.child_subreaper else 1
        for child in list(self.processes.values()):
            if child.ppid == proc.pid and child.leader is None:
                child.ppid = heir_pid
                if child.pdeath_signal and child.alive:
                    self.signal(child, child.pdeath_signal, group=True)

    def reap(self, proc: Process) -> None:
        """Forget a zombie: its pid and task record go; its fault counts and CPU times (with its own
        children's) go to the parent's children totals."""
        parent = self.processes.get(proc.ppid)
        if parent is not None:
            parent.child_fault_counts.update(proc.fault_counts)
            parent.child_fault_counts.update(proc.child_fault_counts)
            parent.child_major_faults += proc.major_faults + proc.child_major_faults
            parent.child_utime += proc.group_utime + proc.child_utime
            parent.child_stime += proc.group_stime + proc.child_stime
        self._unmap_task_record(proc)
        self.reaped.append(proc)
        del self.processes[proc.pid]

    def release_aspace(self, aspace: AddressSpace, reason: str) -> None:
        """Drop one user of an address space; the last one frees its frames, tables and cached translations."""
        aspace.users -= 1
        if aspace.users > 0:
            return
        self.cpu.mmu.forget(aspace.pagetable.root)
        aspace.release()
        self.cpu.flush_tlb(aspace.asid, reason)

    def signal(self, proc: Process, sig: int, sender: Process | None = None, info: bytes | None = None,
               group: bool = False) -> None:
        """Send sig to thread proc (with `group`, to its whole thread group: see signal_group). An ignored
        signal is dropped unless blocked; an unblocked one whose action is the default terminates at once;
        otherwise it pends until delivered (osmodel.sigframe), and a process asleep in a system call is
        woken for a handled one (its call then returns EINTR or restarts), or for any if it waits on a
        signalfd (osmodel.syssignalfd)."""
        if sig == 0 or not proc.alive:
            return
        if sig == SIGCONT:
            self.continue_group(proc)           # whatever its action or mask (Linux's prepare_signal)
        elif sig in STOP_SIGNALS:
            discard(proc, SIGCONT)
        if group and sig != SIGKILL:
            self.signal_group(proc, sig, sender, info)
            return
        bit = 1 << (sig - 1)
        if sig != SIGKILL:
            handler = proc.handler(sig)
            blocked = proc.sigmask & bit        # never ignored: the action may change before it is unblocked
            if not blocked and (handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT)):
                return
            if blocked or handler != SIG_DFL or (proc.leader or proc).stopped:   # a stopped one acts on it later
                if info is None:
                    info = siginfo(sig, pid=sender.pid if sender else 0, uid=os.getuid() if sender else 0)
                add_pending(proc, sig, info, sig < SIGRTMIN or self.sigqueue_room(proc))
                wake_readers(self, proc)
                if proc.state == SLEEPING and ((not proc.sigmask & bit and proc.sleeping_in != "vfork")
                                               or (proc.sigwait & bit and proc.sleeping_in in SIGWAIT_CALLS)):
                    proc.state = RUNNABLE
                    proc.channel = None
                    self.preempt_unbounded()
                return
        self.terminate(proc, sig, sender)

    def signal_group(self, proc: Process, sig: int, sender: Process | None, info: bytes | None) -> None:
        """A process-directed signal (kill, sigqueue, timers, SIGCHLD) to proc's thread group: it pends in
        the group's shared set, which every thread that does not block it takes from, and one thread that
        wants it is woken: proc if it does, else another (Linux's complete_signal). A default action that
        kills ends the whole group at once, unless the thread found waits for it in rt_sigtimedwait."""
        bit = 1 << (sig - 1)
        leader = proc.leader or proc
        handler = leader.handler(sig)
        ignored = handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT)
        if ignored and not proc.sigmask & bit:
            return                          # Linux's sig_ignored: the target's mask decides
        target = next((t for t in [proc] + self.threads(proc) if wants_signal(t, bit)), None)
        if target is not None and handler == SIG_DFL and not ignored and not waits_for(target, bit) \
                and not leader.stopped:
            self.terminate(proc, sig, sender)
            return
        if info is None:
            info = siginfo(sig, pid=sender.pid if sender else 0, uid=os.getuid() if sender else 0)
        add_pending(leader, sig, info, sig < SIGRTMIN or self.sigqueue_room(leader), group=True)
        for thread in [proc] + self.threads(proc):
            wake_readers(self, thread)
        if target is not None and target.state == SLEEPING and (target.sleeping_in != "vfork"
                                                                or waits_for(target, bit)):
            target.state = RUNNABLE
            target.channel = None
            self.preempt_unbounded()

    def sigqueue_room(self, proc: Process) -> bool:
        """Whether one more signal may be queued with its siginfo for proc: fewer than its RLIMIT_SIGPENDING
        are queued (counted over all processes, which run as one user)."""
        from osmodel.sysproc import RLIMIT_SIGPENDING, get_rlimit
        return queued_signals(self.processes.values()) < get_rlimit(proc, RLIMIT_SIGPENDING)[0]

    def terminate(self, proc: Process, sig: int, sender: Process | None = None) -> None:
        """A signal's default action, other than ignoring it: a stop signal stops proc's thread group
        (stop_group); any other kills proc, and pid 1's end is reported, as a shell would (and, like a
        shell, not for SIGPIPE, the quiet end of a writer whose reader left, nor for SIGINT)."""
        if sig in STOP_SIGNALS:
            self.stop_group(proc, sig)
            return
        if proc.pid == 1 and sig not in QUIET_SIGNALS:
            by = f" (sent by pid {sender.pid})" if sender is not None and sender is not proc else ""
            print(f"run-elf: pid 1 killed by {report.signal_name(sig)}{by}", file=self.config.stderr, flush=True)
        self.exit(proc, signal=sig)

    def stop_group(self, proc: Process, sig: int) -> None:
        """Job control: proc's thread group stops (the scheduler passes it over, a call it sleeps in waits)
        until a SIGCONT; its parent is told by SIGCHLD (CLD_STOPPED) and by wait with WUNTRACED."""
        leader = proc.leader or proc
        if leader.stopped:
            return
        for thread in [leader] + self.threads(leader):
            thread.stopped = sig
        leader.wait_event = "stopped"
        self.notify_parent(leader, CLD_STOPPED, sig)
        if self.current is not None and (self.current.leader or self.current) is leader:
            self.cpu.stop()

    def continue_group(self, proc: Process) -> None:
        """SIGCONT: the stop signals pending for proc's thread group are dropped, and if it was stopped it
        runs again; its parent is told by SIGCHLD (CLD_CONTINUED) and by wait with WCONTINUED."""
        leader = proc.leader or proc
        group = [leader] + self.threads(leader)
        for thread in group:
            for stop in STOP_SIGNALS:
                discard(thread, stop)
        if not leader.stopped:
            return
        for thread in group:
            thread.stopped = 0
        leader.wait_event = "continued"
        self.notify_parent(leader, CLD_CONTINUED, SIGCONT)
        self.preempt_unbounded()

    def notify_parent(self, leader: Process, code: int, status: int) -> None:
        """A child stopped or continued: wake its parent's wait, and send it SIGCHLD with that si_code unless
        its SIGCHLD action has SA_NOCLDSTOP."""
        parent = self.processes.get(leader.ppid)
        if parent is None:
            return
        self.wakeup(parent)
        if not action(parent, SIGCHLD)[1] & SA_NOCLDSTOP:
            self.signal(parent, SIGCHLD, info=siginfo(SIGCHLD, code=code, pid=leader.pid, uid=os.getuid(),
                                                      status=status), group=True)

    def kill(self, proc: Process, signal: int, message: str = "") -> None:
        """Kill a process with a signal's default action, reporting it on stderr like a kernel log line."""
        if message:
            print(f"run-elf: pid {proc.pid} killed by {report.signal_name(signal)}: {message}",
                  file=self.config.stderr, flush=True)
        self.exit(proc, signal=signal)

    def children(self, proc: Process) -> list[Process]:
        """proc's children (processes, not threads), in pid order."""
        return [p for p in self.processes.values() if p.ppid == proc.tgid and p.leader is None]

    # -- scheduling ------------------------------------------------------------------------------

    def sleep(self, proc: Process, channel: object, what: str) -> None:
        """Put proc to sleep on channel until a wakeup(channel)."""
        proc.state = SLEEPING
        proc.channel = channel
        proc.sleeping_in = what
        if proc is self.current:
            self.cpu.stop()

    def wakeup(self, channel: object) -> None:
        """Make every process sleeping on channel (alone, or among the AnyOf it waits on) runnable."""
        for p in self.processes.values():
            if p.state == SLEEPING:
                waits = p.channel
                if waits is channel or (type(waits) is AnyOf and any(c is channel for c in waits)):
                    p.state = RUNNABLE
                    p.channel = None
                    self.preempt_unbounded()

    def preempt_unbounded(self) -> None:
        """Another process became runnable: a run started without a quantum must come back to the scheduler."""
        if self.unbounded:
            self.unbounded = False
            self.cpu.stop()

    def pick_next(self) -> Process | None:
        """Round robin: the next runnable process after the current one, in pid order."""
        procs = list(self.processes.values())
        start = 0
        if self.current is not None and self.current.pid in self.processes:
            start = procs.index(self.current) + 1
        for p in procs[start:] + procs[:start]:
            if p.runnable:
                return p
        return None

    def switch(self, proc: Process) -> None:
        """Context switch to proc: save the current registers, load proc's, load its CR3 and ASID."""
        cur = self.current
        if proc is cur:
            return
        uc = self.cpu.uc
        if cur is not None and cur.alive and cur.pid in self.processes:
            if cur.context is None:
                cur.context = uc.context_save()
            else:
                uc.context_update(cur.context)
        self.current = proc
        self.cpu.load_context(proc.context)
        self.cpu.switch_to(proc.aspace.pagetable.root, proc.aspace.asid, proc.aspace.fmt)
        if proc.aspace.fmt is not X86_64:
            self.load_tls(proc)
        self.context_switches += 1

    # -- user memory (copyin/copyout) ------------------------------------------------------------

    def user_page(self, proc: Process, vaddr: int, write: bool) -> int:
        """Physical address of vaddr for a kernel access on proc's behalf, faulting the page in; Segv if it can't be."""
        pt = proc.aspace.pagetable
        pte = pt.lookup(vaddr)
        if not pte & PTE_PRESENT or (write and not pte & PTE_WRITABLE) or vaddr >= proc.aspace.user_top:
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
        while size > 0 and vaddr < proc.aspace.user_top:
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
        """The CPU's fault sink: resolve a user fault of the current process; False leaves it refused.
        Its time is the process's system time, moved out of the run's user time at the next accounting
        point (a fault is on the fill path: one clock read each side and an add, no more)."""
        started = time.perf_counter_ns()
        self.doing = fault       # for an internal-error report: what was being handled (kept if it fails)
        try:
            self.resolve(self.current, fault)
        except (Segv, OutOfMemory):
            self.doing = ""
            return False
        finally:
            self.fault_ns += time.perf_counter_ns() - started
        self.doing = ""
        return True

    def resolve(self, proc: Process, fault: PageFault, kernel_mode: bool = False) -> Resolution:
        """Run the fault handler for proc, count and report the outcome; re-raise Segv/OutOfMemory."""
        try:
            try:
                res = self.faults.resolve(proc.aspace, fault)
            except OutOfMemory:
                if not self.cache.shrink():        # unmapped cached file pages are the first to go
                    raise
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
        if res.major:
            proc.major_faults += 1
        if self.fault_observers:
            self._observe(proc, fault, res, None)
        return res

    def _observe(self, proc: Process, fault: PageFault, res: Resolution | None, error: object) -> None:
        """Tell every fault observer (traces, tests) what a fault came to."""
        for observer in self.fault_observers:
            observer(proc, fault, res, error)

    def invalidate(self, aspace: AddressSpace, vaddr: int, reason: str) -> None:
        """Drop a page of aspace from the TLBs after its entry changed."""
        self.cpu.invalidate_page(vaddr, aspace.asid, reason)

    def syscall(self) -> None:
        """The CPU executed `syscall` in the current process: a call of the x86-64 ABI. In a 32-bit
        program it is an invalid opcode (#UD), as on Intel cores, where ia32 code enters by int 0x80."""
        if self.current.bits == 32:
            self.cpu.trap = Trap("invalid-opcode", self.cpu.reg("rip"))
            self.cpu.stop()
            return
        self.system_call(self.current, ABI_64)

    def int80(self) -> None:
        """The current process executed `int 0x80`: a call of the i386 ABI (from 64-bit code too, as on Linux)."""
        self.system_call(self.current, ABI_32)

    def system_call(self, proc: Process, abi) -> None:
        """Dispatch a system call of proc, its time charged as system time (the time before it as user
        time); a CPU timer's signal it brings due ends the run, to be delivered on the way back."""
        self.account(proc, False)
        start = self.acct_mark
        dispatch(self, proc, abi)
        idle = 0
        if time.perf_counter_ns() - start > LONG_CALL_NS:
            idle = self.idle_since(start)
        if self.account(proc, True, idle=idle) and proc.alive and deliverable(proc):
            self.cpu.stop()

    # -- CPU time --------------------------------------------------------------------------------

    def account(self, proc: Process, system: bool, check: bool = True, idle: int = 0) -> bool:
        """An accounting point: charge the host time since the last one (less `idle` ns) to proc and its
        thread group as system time (it was in the kernel) or user time (it was being emulated); with
        `check`, fire its CPU-clock timers that are now due. True if any is armed.

        The clock is time.perf_counter_ns (a vDSO read, cheap enough for every system call and fault):
        a busy guest's CPU time is its run time under run-elf. A guest asleep is charged nothing, as the
        scheduler waits for it outside any run; a system call that waited on the host (a read of a
        terminal, a poll of host files) is found by its length and its time off the host's CPU is
        left out (idle_since)."""
        now = time.perf_counter_ns()
        spent = now - self.acct_mark - idle
        self.acct_mark = now
        group = proc.leader or proc
        if not system:                  # a stretch of emulation: its page faults were system time
            faults, self.fault_ns = min(self.fault_ns, spent), 0
            proc.utime += spent - faults
            group.group_utime += spent - faults
            spent = faults
        proc.stime += spent
        group.group_stime += spent
        if proc.cpu_timers or group.cpu_timers:
            if check:
                expire_cpu_timers(self, proc)
            return True
        return False

    def idle_since(self, start: int) -> int:
        """Of the host time since `start` (a perf_counter_ns() of the current run), how much the host
        thread spent off the CPU (waiting on the host) that is not left out already."""
        now = time.perf_counter_ns()
        busy = time.thread_time_ns() - self.run_began[1]
        idle = min(max(now - self.run_began[0] - busy - self.run_idle, 0), now - start)
        self.run_idle += idle
        return idle

    def handled_synchronously(self, proc: Process, sig: int, info: bytes) -> bool:
        """A fault's signal goes to the process's handler when it has one and does not block it (the
        faulting instruction runs again when the handler returns); False: the default action applies."""
        if proc.handler(sig) in (SIG_DFL, SIG_IGN) or proc.sigmask & (1 << (sig - 1)):
            return False
        proc.pending |= 1 << (sig - 1)
        proc.siginfo[sig] = [info]
        return True

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
            address = report.fault_address(self, proc, trap.rip, trap.fault)
            code = getattr(error, "code", 1) or 1
            if self.handled_synchronously(proc, SIGSEGV, siginfo(SIGSEGV, code=code, addr=address)):
                return
            self.kill(proc, SIGSEGV, report.describe_fault(self, proc, trap.fault, error, trap.rip))
            return
        if trap.kind == "interrupt":
            sig = signal_for_interrupt(trap.intno)
            if self.handled_synchronously(proc, sig, trap_siginfo(trap.intno, sig, trap.rip)):
                return
            self.kill(proc, sig, report.describe_exception(self, proc, trap.intno, trap.rip))
            return
        if trap.kind == "invalid-opcode":
            if self.handled_synchronously(proc, 4, siginfo(4, code=2, addr=trap.rip)):
                return
            self.kill(proc, 4, report.describe_exception(self, proc, 6, trap.rip))
            return
        raise InternalError(f"unknown trap {trap.kind}")

    # -- running --------------------------------------------------------------------------------

    def timed_sleep(self, proc: Process, seconds: float) -> None:
        """nanosleep: the process sleeps (others run) until `seconds` have passed; raises Block until then.
        The call restarts when woken, and returns once its wake-up time is reached."""
        now = time.monotonic()
        if not proc.wake_at:
            if seconds <= 0:
                return
            proc.wake_at = now + seconds
        if now >= proc.wake_at:
            proc.wake_at = 0.0
            return
        raise Block(("timer", proc.pid))

    def add_timer(self, due: float, fire: Callable[[float], None]) -> KernelTimer:
        """Call fire(now) once time.monotonic() reaches `due` (from the scheduler, between runs)."""
        timer = KernelTimer(due, next(self._timer_seq), fire)
        heapq.heappush(self.timers, timer)
        if self.unbounded:
            self.cpu.stop()          # the current run was started without a time limit: re-plan it
        return timer

    def next_timer(self) -> float:
        """The due time of the earliest armed timer, 0.0 if none."""
        timers = self.timers
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
        return timers[0].due if timers else 0.0

    def fire_timers(self, now: float) -> bool:
        """Run every timer due by `now`; True if any fired."""
        fired = False
        while (due := self.next_timer()) and due <= now:
            timer = heapq.heappop(self.timers)
            timer.cancelled = True
            timer.fire(now)
            fired = True
        return fired

    def wake_timers(self, wait: bool) -> bool:
        """Fire due timers and wake processes whose sleep is over; with `wait`, first sleep on the host
        until the earliest is due (not past the --timeout deadline). True if anything fired or woke."""
        sleepers = [p for p in self.processes.values() if p.state == SLEEPING and p.wake_at]
        timer_due = self.next_timer()
        if not sleepers and not timer_due:
            return False
        if wait:
            due = min([p.wake_at for p in sleepers] + ([timer_due] if timer_due else []))
            if self.deadline:
                due = min(due, self.deadline)
            self.idle(max(0.0, due - time.monotonic()))
            if self.host_signals:
                return True                  # a signal run-elf caught ended the sleep: deliver it first
        now = time.monotonic()
        woke = self.fire_timers(now) if timer_due else False
        for p in sleepers:
            if now >= p.wake_at and p.state == SLEEPING:
                self.wakeup(p.channel)
                woke = True
        return woke

    def idle(self, seconds: float) -> None:
        """Nothing to run for `seconds`: sleep on the host, or less if run-elf catches a signal meanwhile."""
        if self.interrupt_fd >= 0:
            select.select([self.interrupt_fd], [], [], seconds)
        else:
            time.sleep(seconds)

    def foreground_pgrp(self) -> int:
        """The guest's foreground process group on run-elf's terminal: pid 1's group (0) until a shell with
        job control changes it (TIOCSPGRP)."""
        return self.tty_pgrp.get(self.terminal, 0)

    def take_host_signals(self) -> None:
        """Send the signals run-elf caught to the guest processes they are for (hostsig.targets)."""
        if self.interrupt_fd >= 0:
            try:
                os.read(self.interrupt_fd, 4096)
            except BlockingIOError:
                pass
        while self.host_signals:
            sig, code = self.host_signals.pop(0)
            for target in hostsig.targets(self, sig, code):
                self.signal(target, sig, info=siginfo(sig, code=SI_KERNEL), group=True)

    def count_instructions(self):
        """The machine's instruction counter (attached on first use: it slows execution several times)."""
        if self.insn_counter is None:
            from vm.icount import InstructionCounter

            def read(vaddr: int, size: int) -> bytes:
                return self.peek(self.current, vaddr, size) if self.current is not None else b""
            self.insn_counter = InstructionCounter(self.cpu, read).attach()
        return self.insn_counter

    def run(self) -> int:
        """Run until pid 1 ends (then every other process is killed, as when a PID namespace's init exits).

        Returns pid 1's status as a shell reports it. While more than one process is runnable each
        runs for at most `quantum` instructions (Unicorn counts them, at a cost); alone, a process
        runs until it traps, sleeps or exits.
        """
        init = self.processes[1]
        cpu = self.cpu
        self.deadline = deadline = time.monotonic() + self.config.timeout if self.config.timeout else 0.0
        limit = self.config.max_insns
        counter = self.count_instructions() if limit else None
        while init.alive:
            if self.host_signals:
                self.take_host_signals()
                continue
            timeout_us = 0
            if deadline:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop_guest(f"time limit of {self.config.timeout:g} s reached")
                    break
                timeout_us = max(1, int(left * 1e6))
            self.wake_timers(wait=False)
            if not init.alive:
                break                               # a timer's signal ended it
            # Stop the run when the next timer is due or a sleeper wakes (it then shares the CPU).
            wakes = [p.wake_at for p in self.processes.values() if p.wake_at and p.state == SLEEPING]
            if timer_due := self.next_timer():
                wakes.append(timer_due)
            if wakes:
                until = max(1, int((min(wakes) - time.monotonic()) * 1e6))
                timeout_us = min(timeout_us, until) if timeout_us else until
            proc = self.pick_next()
            if proc is None and self.wake_timers(wait=True):
                continue
            if proc is None:
                if deadline and time.monotonic() >= deadline:
                    continue
                self.report_deadlock()
                break
            self.switch(proc)
            if proc.resume_rip is not None:
                cpu.set_reg("rip", proc.resume_rip)
                proc.resume_rip = None
            if deliverable(proc):
                deliver(self, proc)
                if not proc.alive:
                    continue
            if self.ram.code_freed:
                cpu.forget_code()           # a frame that held translated code was freed and may be reused
                self.ram.code_freed = False
            others = any(p.runnable and p is not proc for p in self.processes.values())
            self.unbounded = not others
            count = self.config.quantum if others else 0
            if counter is not None:
                left = limit - counter.count
                if left <= 0:
                    self.stop_guest(f"instruction limit of {limit} reached")
                    break
                count = min(count, left) if count else left
                self.unbounded = False
            if cpu_left := cpu_timer_left(proc):   # stop by the time its first CPU timer may be due
                until = max(1, cpu_left // 1000)
                timeout_us = min(timeout_us, until) if timeout_us else until
            self.acct_mark = time.perf_counter_ns()
            self.run_began = (self.acct_mark, time.thread_time_ns())
            self.run_idle = 0
            trap = cpu.run(count, timeout_us)
            self.account(proc, False)
            self.unbounded = False
            if not proc.alive or proc.resume_rip is not None or trap is None:
                continue
            try:
                self.handle_trap(proc, trap)
            except InternalError:
                raise
            except Exception as exc:                 # a failure of run-elf while handling the trap
                raise InternalError(f"internal error in pid {proc.pid} at rip {trap.rip:#x} while handling a "
                                    f"{trap.kind} trap: {type(exc).__name__}: {exc}") from exc
        self.shutdown()
        if self.stopped:
            return EXIT_STOPPED
        return init.shell_status()

    def stop_guest(self, why: str) -> None:
        """A limit was reached: say where the guest was, and end every process (run-elf exits 124)."""
        proc = self.current
        where = report.instruction(self, proc, self.cpu.reg("rip")) if proc is not None and proc.alive else "exit"
        pid = proc.pid if proc is not None else 1
        print(f"run-elf: {why}: stopped pid {pid} at {where}", file=self.config.stderr, flush=True)
        self.stopped = True

    def report_deadlock(self) -> None:
        """Every process sleeps on something only another guest process could provide: say so and stop."""
        waits = ", ".join(f"pid {p.pid} " + (f"stopped by {report.signal_name(p.stopped)}" if p.stopped
                                              else f"in {p.sleeping_in}")
                          for p in self.processes.values() if p.alive)
        print(f"run-elf: deadlock: every process is blocked ({waits})", file=self.config.stderr, flush=True)
        self.deadlocked = True
        self.exit(self.processes[1], signal=SIGKILL)

    def shutdown(self) -> None:
        """pid 1 is gone: kill every remaining process and reap everything."""
        for proc in list(self.processes.values()):
            self.exit(proc, signal=SIGKILL)
        for proc in list(self.processes.values()):
            self.reap(proc)
        self.cache.clear()
