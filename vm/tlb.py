"""A set-associative TLB model: entries tagged with an address-space id, global entries, counters.

The default geometry is a modern core's second-level TLB (1536 entries, 12-way), so that
a miss here means a page walk as on real hardware. The set is chosen by the low bits of
the virtual page number; within a set the policy picks the victim (LRU, FIFO or random).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

GLOBAL_ASID = 0xFFFF
POLICIES = ("lru", "fifo", "random")


@dataclass
class TlbStats:
    """Event counters of one TLB."""
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    fills: int = 0
    evictions: int = 0
    invalidations: int = 0
    flushes: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return dict(self.__dict__)


class Tlb:
    """Translations (vpn, asid) -> leaf entry, `ways` per set, `entries // ways` sets."""

    def __init__(self, entries: int = 1536, ways: int = 12, policy: str = "lru", seed: int = 0,
                 name: str = "tlb"):
        if entries <= 0 or ways <= 0 or entries % ways:
            raise ValueError(f"TLB entries ({entries}) must be a positive multiple of ways ({ways})")
        if policy not in POLICIES:
            raise ValueError(f"TLB policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.name = name
        self.entries = entries
        self.ways = ways
        self.nsets = entries // ways
        self.policy = policy
        self._lru = policy == "lru"
        self._random = random.Random(seed) if policy == "random" else None
        self.sets: list[dict[int, int]] = [{} for _ in range(self.nsets)]
        self.stats = TlbStats()
        # Called as listener(event, vpn, asid, pte, reason) for every event; None when nobody listens.
        self.listener: Callable[[str, int, int, int, str], None] | None = None

    def lookup(self, vpn: int, asid: int) -> int:
        """The cached leaf entry for (vpn, asid) or a global entry for vpn; 0 on a miss."""
        s = self.sets[vpn % self.nsets]
        stats = self.stats
        stats.lookups += 1
        tag = vpn << 16
        key = tag | asid
        pte = s.get(key)
        if pte is None:
            key = tag | GLOBAL_ASID
            pte = s.get(key)
            if pte is None:
                stats.misses += 1
                if self.listener:
                    self.listener("miss", vpn, asid, 0, "")
                return 0
        stats.hits += 1
        if self._lru:
            del s[key]
            s[key] = pte
        return pte

    def insert(self, vpn: int, asid: int, pte: int, global_: bool = False) -> int | None:
        """Cache a translation; return the evicted victim's vpn, or None if nothing was evicted."""
        s = self.sets[vpn % self.nsets]
        if global_:
            asid = GLOBAL_ASID
        key = (vpn << 16) | asid
        victim = None
        if key in s:
            del s[key]
        elif len(s) >= self.ways:
            if self._random:
                vkey = self._random.choice(list(s))
            else:
                for vkey in s:          # the oldest: first in insertion (LRU: use) order
                    break
            vpte = s.pop(vkey)
            victim = vkey >> 16
            self.stats.evictions += 1
            if self.listener:
                self.listener("evict", victim, vkey & 0xFFFF, vpte, "")
        s[key] = pte
        self.stats.fills += 1
        if self.listener:
            self.listener("fill", vpn, asid, pte, "")
        return victim

    def update(self, vpn: int, asid: int, pte: int) -> None:
        """Refresh the entry already cached for (vpn, asid) (after the walk set its dirty bit)."""
        s = self.sets[vpn % self.nsets]
        key = (vpn << 16) | asid
        if key not in s:
            key = (vpn << 16) | GLOBAL_ASID
        if key in s:
            s[key] = pte

    def invalidate_page(self, vpn: int, asid: int | None = None, reason: str = "") -> bool:
        """Drop the translations of one page (of one asid, or every asid); True if any was cached."""
        s = self.sets[vpn % self.nsets]
        if asid is None:
            keys = [k for k in s if k >> 16 == vpn]
            for key in keys:
                del s[key]
            dropped = bool(keys)
        else:
            tag = vpn << 16
            dropped = s.pop(tag | asid, None) is not None
            if s.pop(tag | GLOBAL_ASID, None) is not None:
                dropped = True
        self.stats.invalidations += 1
        if self.listener:
            self.listener("invalidate", vpn, GLOBAL_ASID if asid is None else asid, 0, reason)
        return dropped

    def flush(self, asid: int | None = None, include_global: bool = False, reason: str = "") -> None:
        """Drop every non-global translation (of one asid, or all); globals too when asked."""
        for s in self.sets:
            for key in [k for k in s if (include_global or k & 0xFFFF != GLOBAL_ASID)
                        and (asid is None or k & 0xFFFF == asid)]:
                del s[key]
        self.stats.flushes += 1
        if self.listener:
            self.listener("flush", 0, GLOBAL_ASID if asid is None else asid, 0, reason)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sets)

    def __contains__(self, item: tuple[int, int]) -> bool:
        vpn, asid = item
        s = self.sets[vpn % self.nsets]
        return ((vpn << 16) | asid) in s or ((vpn << 16) | GLOBAL_ASID) in s
