"""Exact TLB mode (vm/exact.py): the model on its own, and fed every access of a real program.

The program below touches pages of a static array in known patterns. Each test runs it twice,
with R = 0 and R rounds, and compares the exact model's counters: what start-up, libc and
printf do is the same in both runs and cancels out, leaving what the loop did, which the
geometry predicts exactly (K pages round-robin through an E-entry fully associative dTLB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from osmodel.kernel import Config, Kernel
from vm.exact import KERNEL_HALF, ExactTlb, TlbLevelConfig, attach, detach
from vm.tlb import GLOBAL_ASID

PAGES_C = r"""
/* pages: touch pages of a static array in a known pattern, for the exact TLB model.
 * argv: MODE K R.  MODE 0: round-robin over K pages, R rounds.  MODE 1: the same, with a hot
 * page (page K) read before each of them.  MODE 2: a 4-byte read that spans pages p and p+1,
 * round-robin over p < K.  Every page used is written once first; prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#define PAGE 4096
static char buf[260 * PAGE] __attribute__((aligned(PAGE)));
int main(int argc, char **argv)
{
    int mode = argc > 1 ? atoi(argv[1]) : 0;
    long k = argc > 2 ? atol(argv[2]) : 16, r = argc > 3 ? atol(argv[3]) : 10;
    volatile char *b = buf;
    unsigned long sum = 0;
    if (k < 1 || k > 256) return 2;
    for (long p = 0; p < k + (mode != 0); p++)
        b[p * PAGE] = (char)(p + 1);
    for (long i = 0; i < r; i++)
        for (long p = 0; p < k; p++) {
            if (mode == 1)
                sum += b[k * PAGE];
            if (mode == 2)
                sum += *(volatile uint32_t *)(buf + p * PAGE + PAGE - 2);
            else
                sum += b[p * PAGE];
        }
    printf("mode %d pages %ld rounds %ld sum %lu\n", mode, k, r, sum);
    return 0;
}
"""

E = 16          # dTLB entries in these tests (fully associative: ways == entries)
R = 200         # rounds
SLACK = 8       # counts the loop does not explain (argument parsing and printf of longer numbers)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> str:
    """The pages program, built static with gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the test program")
    d = tmp_path_factory.mktemp("exact")
    src = d / "pages.c"
    src.write_text(PAGES_C)
    exe = d / "pages"
    proc = subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed (no static libc?): {proc.stderr.strip()[:300]}")
    return str(exe)


def run(path: str, args: list, exact: ExactTlb | None) -> tuple[bytes, int]:
    """Run path under the kernel as the CLI does, with `exact` attached if given: (stdout, status)."""
    kernel = Kernel(Config())
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            argv = [os.fsencode(path)] + [str(a).encode() for a in args]
            kernel.spawn(path, argv, [b"LC_ALL=C"], stdio=(null, out.fileno(), err.fileno()))
        finally:
            os.close(null)
        if exact is not None:
            attach(kernel.cpu, exact)
        status = kernel.run()
        out.seek(0)
        return out.read(), status


def loop_counts(path: str, mode: int, k: int, make: callable) -> tuple[dict, dict]:
    """Counters of the R-round run minus those of the 0-round run, and the 0-round run's counters."""
    base = make()
    run(path, [mode, k, 0], base)
    full = make()
    run(path, [mode, k, R], full)
    b, f = base.stats, full.stats
    diff = {level: {key: f[level][key] - b[level][key] for key in f[level]} for level in ("itlb", "dtlb", "stlb")}
    diff["walks"] = f["walks"] - b["walks"]
    return diff, b


def dtlb(policy: str = "lru", entries: int = E) -> callable:
    return lambda: ExactTlb(dtlb=TlbLevelConfig(entries, entries, policy), seed=1)


# -- the model alone ------------------------------------------------------------------------


def test_defaults_and_hierarchy():
    ex = ExactTlb()
    assert (ex.itlb.entries, ex.itlb.ways, ex.itlb.policy) == (64, 8, "lru")
    assert (ex.dtlb.entries, ex.dtlb.ways, ex.dtlb.policy) == (64, 4, "lru")
    assert (ex.stlb.entries, ex.stlb.ways, ex.stlb.policy) == (1536, 12, "lru")
    ex.access(5, 1, fetch=False)             # cold: dTLB miss, STLB miss, a walk
    ex.access(5, 1, fetch=False)             # dTLB hit
    ex.access(5, 1, fetch=True)              # iTLB miss, STLB hit: no walk
    ex.access(5, 2, fetch=True)              # another address space: a miss everywhere
    s = ex.stats
    assert s["walks"] == 2 and s["accesses"] == 4
    assert s["dtlb"] == dict(s["dtlb"], lookups=2, hits=1, misses=1, fills=1)
    assert s["itlb"] == dict(s["itlb"], lookups=2, hits=0, misses=2, fills=2)
    assert s["stlb"] == dict(s["stlb"], lookups=3, hits=1, misses=2, fills=2)


def test_fast_path_is_exact():
    """The same-page shortcut must give what plain lookups give, for every policy."""
    import random
    rng = random.Random(7)
    seq = [(rng.choice([1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), rng.random() < 0.3) for _ in range(5000)]
    for policy in ("lru", "fifo", "random"):
        cfg = TlbLevelConfig(4, 4, policy)
        ex = ExactTlb(cfg, cfg, TlbLevelConfig(6, 6, policy), seed=3)
        for vpn, fetch in seq:
            ex.access(vpn, 1, fetch)
        # Reference: the same levels driven without the shortcut.
        ref = ExactTlb(cfg, cfg, TlbLevelConfig(6, 6, policy), seed=3)
        for vpn, fetch in seq:
            ref.forget_last()
            ref.access(vpn, 1, fetch)
        assert ex.stats == ref.stats, policy


def test_invalidate_flush_and_global():
    ex = ExactTlb()
    ex.access(10, 1, False)
    ex.access(11, 2, False)
    ex.access(KERNEL_HALF >> 12, 1, False, global_=True)
    ex.invalidate_page(10, 1)
    ex.access(10, 1, False)                  # gone from every level: a walk again
    assert ex.stats["walks"] == 4
    ex.flush(2)                              # asid 2 only
    ex.access(11, 2, False)
    ex.access(10, 1, False)                  # asid 1 survived
    assert ex.stats["walks"] == 5
    ex.flush()                               # every non-global entry
    ex.access(KERNEL_HALF >> 12, 3, False)   # the global entry matches any asid and survives
    assert ex.stats["walks"] == 5
    assert (KERNEL_HALF >> 12, GLOBAL_ASID) in ex.stlb
    ex.flush(include_global=True)
    ex.access(KERNEL_HALF >> 12, 3, False)
    assert ex.stats["walks"] == 6


def test_spanning_access_touches_both_pages():
    ex = ExactTlb()
    ex.access_range(0x1FFE, 4, 1, fetch=True)     # an instruction across a page boundary
    ex.access_range(0x5000 - 8, 8, 1, fetch=False)
    ex.access_range(0x5000 - 8, 9, 1, fetch=False)
    s = ex.stats
    assert s["itlb"]["lookups"] == 2 and s["itlb"]["misses"] == 2
    assert s["dtlb"]["lookups"] == 3 and s["dtlb"]["misses"] == 2
    assert s["accesses"] == 5


def test_bad_geometry():
    with pytest.raises(ValueError):
        ExactTlb(dtlb=TlbLevelConfig(64, 5))
    with pytest.raises(ValueError):
        ExactTlb(stlb=TlbLevelConfig(64, 4, "lfu"))


# -- fed by a running program ----------------------------------------------------------------


def test_output_unchanged(pages):
    native = subprocess.run([pages, "1", "17", "50"], capture_output=True).stdout
    plain = run(pages, [1, 17, 50], None)
    exact = run(pages, [1, 17, 50], ExactTlb())
    assert plain == exact == (native, 0)
    assert native.startswith(b"mode 1 pages 17 rounds 50 sum ")


def test_every_access_is_seen(pages):
    """R rounds over K pages are K*R more data lookups (the loop's loads), all hits when K <= E."""
    diff, base = loop_counts(pages, 0, E, dtlb())
    assert E * R <= diff["dtlb"]["lookups"] <= E * R + 4 * SLACK
    assert 0 <= diff["dtlb"]["misses"] <= SLACK
    assert 0 <= diff["walks"] <= SLACK
    assert diff["itlb"]["lookups"] > 4 * E * R            # the loop's instructions are fetches too
    assert diff["itlb"]["misses"] <= SLACK
    assert base["dtlb"]["misses"] >= E


def test_first_touches(pages):
    """With a dTLB big enough for everything, the data misses are the K first touches plus a
    constant (stack, libc data, printf) that does not depend on K."""
    big = TlbLevelConfig(256, 256)
    misses = {}
    for k in (1, 40):
        ex = ExactTlb(dtlb=big)
        run(pages, [0, k, 10], ex)
        misses[k] = ex.stats["dtlb"]["misses"]
    assert misses[40] - misses[1] == 39


def test_lru_pathology(pages):
    """K = E+1 pages round-robin through E LRU entries: every access misses (the victim is always
    the next page needed), but the STLB holds them all, so there are no extra walks."""
    k = E + 1
    diff, _ = loop_counts(pages, 0, k, dtlb("lru"))
    assert abs(diff["dtlb"]["misses"] - k * R) <= SLACK
    assert abs(diff["dtlb"]["fills"] - k * R) <= SLACK
    assert abs(diff["dtlb"]["evictions"] - k * R) <= SLACK
    assert abs(diff["stlb"]["hits"] - k * R) <= SLACK
    assert 0 <= diff["walks"] <= SLACK


def test_stlb_too_small_means_walks(pages):
    """The same pattern with an STLB of E entries: it thrashes too, and every access is a walk."""
    k = E + 1

    def make():
        return ExactTlb(dtlb=TlbLevelConfig(8, 8), stlb=TlbLevelConfig(E, E))
    diff, _ = loop_counts(pages, 0, k, make)
    assert abs(diff["walks"] - k * R) <= SLACK
    assert abs(diff["stlb"]["misses"] - k * R) <= SLACK


def test_policies_cyclic(pages):
    """Round-robin over E+1 pages: LRU and FIFO both evict the next page needed (every access
    misses); random replacement keeps most of them (expected hit rate well above half)."""
    k = E + 1
    misses = {p: loop_counts(pages, 0, k, dtlb(p))[0]["dtlb"]["misses"] for p in ("lru", "fifo", "random")}
    assert abs(misses["lru"] - k * R) <= SLACK
    assert abs(misses["fifo"] - k * R) <= SLACK
    assert misses["random"] < 0.5 * k * R


def test_policies_hot_page(pages):
    """A hot page read before each of E round-robin pages (E+1 distinct pages, E entries).
    LRU: the hot page is always recent and never evicted, the E cycling pages share E-1 entries
    and all miss: E*R. FIFO ignores hits, so the hot page is evicted in turn like the others:
    every E misses one is the hot page, E*R*(E+1)/E in all. Random does far better than both."""
    misses = {p: loop_counts(pages, 1, E, dtlb(p))[0]["dtlb"]["misses"] for p in ("lru", "fifo", "random")}
    assert abs(misses["lru"] - E * R) <= SLACK
    assert abs(misses["fifo"] - E * R * (E + 1) / E) <= SLACK
    assert misses["fifo"] - misses["lru"] >= R - 2 * SLACK
    assert misses["random"] < 0.5 * E * R


def test_load_spanning_pages(pages):
    """A 4-byte load across the end of page p: two lookups (p and p+1) per access."""
    k = 8
    diff, _ = loop_counts(pages, 2, k, dtlb())
    assert 2 * k * R <= diff["dtlb"]["lookups"] <= 2 * k * R + 4 * SLACK
    assert diff["dtlb"]["misses"] <= SLACK


def test_invalidations_reach_the_model(pages):
    kernel = Kernel(Config())
    null = os.open(os.devnull, os.O_RDWR)
    try:
        kernel.spawn(pages, [b"pages", b"0", b"4", b"1"], [], stdio=(null, null, null))
    finally:
        os.close(null)
    ex = ExactTlb()
    attach(kernel.cpu, ex)
    with pytest.raises(ValueError):
        attach(kernel.cpu, ExactTlb())
    before = ex.stats["dtlb"]
    kernel.cpu.invalidate_page(0x400000, 1, "test")
    kernel.cpu.flush_tlb(1, "test")
    after = ex.stats["dtlb"]
    assert after["invalidations"] == before["invalidations"] + 1
    assert after["flushes"] == before["flushes"] + 1
    assert kernel.run() == 0
    assert ex.stats["accesses"] > 1000
    assert detach(kernel.cpu) is ex
    assert "invalidate_page" not in vars(kernel.cpu) and "flush_tlb" not in vars(kernel.cpu)
