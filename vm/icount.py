"""Instructions retired: counted per translation block with a Unicorn block hook, exact at every stop.

The fast path has no per-instruction hook, so nothing counts instructions. `InstructionCounter`
adds one UC_HOOK_BLOCK hook: each translation block (TB) is decoded once with capstone (its bytes
read through a callable that reads guest *virtual* memory, e.g. `kernel.peek`), the addresses of
its instructions are cached, and every execution of the block adds their number. That costs one
Python call per block executed (a few times slower than the fast path), which is why a counter is
attached only when a trace asks for it.

Exactness:
- The hook runs when a block *starts*, so between hooks `count` includes the whole current block.
  `retired_at(rip)` gives the count before the instruction at `rip` of the current block (the
  faulting instruction of a page fault, the `syscall` of a system call): the instructions of the
  block after it are subtracted. A fetch fault happens while the next block is translated, before
  its hook: everything counted so far has retired.
- When a run stops in the middle of a block (a fatal fault, the scheduler's quantum, `emu_stop`),
  `Cpu.run` is wrapped on the instance to correct `count` from the stopping RIP.
- QEMU runs a REP-prefixed string instruction one iteration per block execution (the block jumps
  to itself); those continuations are not counted again: a `rep movsb` is one instruction, as
  hardware counts it.
- Only user code is counted: the kernel-half entry trampoline reads as nothing and counts zero.
- The cache is keyed by the page-table root (CR3), the block's address and its size; it is dropped
  for a root whose tables are freed (`Mmu.forget`) and entirely when translated code is dropped
  (`Cpu.forget_code`), so a program replaced by exec or code rewritten in place is re-decoded.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Callable

import capstone
from unicorn import UC_HOOK_BLOCK, UcError
from unicorn import unicorn_const as ucc
from unicorn.unicorn_py3 import unicorn as ucbinding

if TYPE_CHECKING:
    from vm.cpu import Cpu

__all__ = ["InstructionCounter"]

# void (*uc_cb_hookcode_t)(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
_BLOCK_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
_REP_PREFIXES = (capstone.x86.X86_PREFIX_REP, capstone.x86.X86_PREFIX_REPNE)
_STRING_OPS = ("movs", "stos", "lods", "scas", "cmps", "ins", "outs")
_EMPTY: tuple[int, ...] = ()


def _is_rep_string(insn) -> bool:
    """Whether a decoded instruction is a REP/REPE/REPNE string instruction (one block per iteration)."""
    return any(p in _REP_PREFIXES for p in insn.prefix) and insn.mnemonic.split()[-1].startswith(_STRING_OPS)


class InstructionCounter:
    """Counts the instructions `cpu` retires, one block hook per executed translation block.

    `read(vaddr, size)` returns the bytes of guest virtual memory at vaddr (as many as are mapped).
    `count` is the number retired so far (between stops it includes the whole current block; see
    `retired_at`). The hook keeps its state in closure cells, which is what makes it cheap.
    """

    def __init__(self, cpu: Cpu, read: Callable[[int, int], bytes]):
        self.cpu = cpu
        self.read = read
        self.decoded = 0                # blocks decoded (cache misses)
        self._caches: dict[int, dict[int, tuple[tuple[int, ...], int, int]]] = {}
        self._cs64 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)   # 32-bit code (compatibility mode)
        self._cs64.detail = self._cs32.detail = True
        self._handle: ucbinding.uc_hook_h | None = None
        self._wrapped: dict[str, object] = {}
        self.error: BaseException | None = None
        self._build()

    def _build(self) -> None:
        """The block hook and its state: count, the count before the current block, the current block's
        instruction addresses, the REP string instruction that ended the last block, blocks run, the cache."""
        count = base = blocks = 0
        block: tuple[int, ...] = _EMPTY
        last_rep = -1
        cache = self._caches.setdefault(self.cpu.root, {})
        decode = self._decode
        fail = self._fail

        def on_block(_uch, address: int, size: int, _data) -> None:
            """UC_HOOK_BLOCK: the block of `size` bytes at `address` is about to run."""
            nonlocal count, base, block, last_rep, blocks
            try:
                entry = cache.get((address << 16) | size)
                if entry is None:
                    entry = decode(cache, address, size)
                addrs, n, rep = entry
                blocks += 1
                if rep == address and last_rep == address and n == 1:
                    base = count - 1        # another iteration of the same REP string instruction: still one
                else:
                    base = count
                    count += n
                block = addrs
                last_rep = rep
            except BaseException as exc:  # noqa: BLE001 - must not escape into C
                fail(exc)

        def get() -> tuple[int, int, tuple[int, ...], int]:
            return count, base, block, blocks

        def put(new_count: int, new_block: tuple[int, ...] = _EMPTY) -> None:
            nonlocal count, block, last_rep
            count, block, last_rep = new_count, new_block, -1

        def use_cache(root: int) -> None:
            nonlocal cache, block, last_rep
            cache = self._caches.setdefault(root, {})
            block, last_rep = _EMPTY, -1

        self._on_block, self._get, self._put, self._use_cache = on_block, get, put, use_cache
        self._callback = _BLOCK_CFUNC(on_block)

    @property
    def count(self) -> int:
        """Instructions retired so far (the current block counted whole until the run stops)."""
        return self._get()[0]

    @property
    def blocks(self) -> int:
        """Block executions seen."""
        return self._get()[3]

    # -- attaching ---------------------------------------------------------------------------

    def attach(self) -> InstructionCounter:
        """Register the block hook and the wrappers on the CPU instance; translated code is dropped so
        blocks translated before the hook existed call it too."""
        if self._handle is not None:
            return self
        cpu = self.cpu
        handle = ucbinding.uc_hook_h()
        status = ucbinding.uclib.uc_hook_add(cpu._uch, ctypes.byref(handle), UC_HOOK_BLOCK, self._callback, None,
                                             ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        self._handle = handle
        self._wrap("run", self._wrap_run)
        self._wrap("switch_to", self._wrap_switch_to)
        self._wrap("forget_code", self._wrap_forget_code)
        forget = cpu.mmu.forget

        def mmu_forget(root: int, *args, **kwargs) -> None:
            forget(root, *args, **kwargs)
            self._caches.pop(root, None)
            if root == cpu.root:
                self._use_cache(root)

        self._wrapped["mmu.forget"] = forget
        cpu.mmu.forget = mmu_forget
        self._use_cache(cpu.root)
        cpu.forget_code()
        return self

    def detach(self) -> None:
        """Remove the hook and the wrappers."""
        if self._handle is None:
            return
        cpu = self.cpu
        ucbinding.uclib.uc_hook_del(cpu._uch, self._handle)
        self._handle = None
        for name in ("run", "switch_to", "forget_code"):
            if name in self._wrapped:
                setattr(cpu, name, self._wrapped.pop(name))
        if "mmu.forget" in self._wrapped:
            cpu.mmu.forget = self._wrapped.pop("mmu.forget")
        self.settle()

    def _wrap(self, name: str, make) -> None:
        original = getattr(self.cpu, name)
        self._wrapped[name] = original
        setattr(self.cpu, name, make(original))

    def _wrap_run(self, run):
        def counted_run(*args, **kwargs):
            try:
                return run(*args, **kwargs)
            finally:
                self.settle()
        counted_run.__doc__ = run.__doc__
        return counted_run

    def _wrap_switch_to(self, switch_to):
        def counted_switch_to(root: int, asid: int, *args, **kwargs) -> None:
            switch_to(root, asid, *args, **kwargs)
            self._use_cache(root)
        counted_switch_to.__doc__ = switch_to.__doc__
        return counted_switch_to

    def _wrap_forget_code(self, forget_code):
        def counted_forget_code(*args, **kwargs) -> None:
            forget_code(*args, **kwargs)
            self._caches.clear()
            self._use_cache(self.cpu.root)
        counted_forget_code.__doc__ = forget_code.__doc__
        return counted_forget_code

    def _fail(self, exc: BaseException) -> None:
        """The hook failed: stop the run as a host error (as the CPU's own hooks do)."""
        self.error = exc
        from vm.cpu import Trap
        if self.cpu.trap is None:
            self.cpu.trap = Trap("host-error", self.cpu._rip_safe(), error=exc)
        self.cpu.uc.emu_stop()

    # -- counting ----------------------------------------------------------------------------

    def _decode(self, cache: dict, address: int, size: int) -> tuple[tuple[int, ...], int, int]:
        """Decode a block once: (its instruction addresses, how many, the address of a final REP string
        instruction or -1), cached."""
        code = self.read(address, size) if size else b""
        addrs: list[int] = []
        rep = -1
        end = address + size
        last = None
        cs = self._cs32 if self.cpu.compat else self._cs64
        for insn in cs.disasm(code, address):
            if insn.address >= end:
                break
            addrs.append(insn.address)
            last = insn
        if last is not None and _is_rep_string(last):
            rep = last.address
        if last is not None and last.address + last.size < address + len(code):
            addrs.append(last.address + last.size)     # capstone stopped early: count the rest as one instruction
        entry = (tuple(addrs), len(addrs), rep)
        cache[(address << 16) | size] = entry
        self.decoded += 1
        return entry

    def retired_at(self, rip: int, fetch: bool = False) -> int:
        """Instructions retired before the instruction at rip, when a fault or system call happens there.

        For a data access (or a system call) rip is an instruction of the current block: the
        count before it. For an instruction fetch (a fault while translating the next block) or
        a rip outside the current block: everything counted so far.
        """
        count, base, block, _ = self._get()
        if not fetch and block and block[0] <= rip <= block[-1]:
            try:
                return base + block.index(rip)
            except ValueError:
                pass
        return count

    def settle(self) -> None:
        """A run stopped: if it stopped inside the current block, drop the instructions that did not run."""
        count, base, block, _ = self._get()
        if block:
            rip = self.cpu._rip_safe()
            if block[0] <= rip <= block[-1]:
                try:
                    count = base + block.index(rip)
                except ValueError:
                    pass
        self._put(count)
