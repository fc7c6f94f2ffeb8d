"""Timers: alarm."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from osmodel.syscall import syscall

if TYPE_CHECKING:
    from osmodel.kernel import Kernel
    from osmodel.process import Process


@syscall("alarm", "u")
def sys_alarm(k: Kernel, p: Process, seconds: int) -> int:
    """Records the alarm and returns the seconds left of the previous one, but SIGALRM is never
    delivered: there are no timers. A program that waits for it waits forever (a deadlock report)."""
    now = time.monotonic()
    deadline = getattr(p, "alarm_deadline", 0.0)
    left = max(0, round(deadline - now)) if deadline > now else 0
    if deadline > now and left == 0:
        left = 1
    p.alarm_deadline = now + (seconds & 0xFFFF_FFFF) if seconds & 0xFFFF_FFFF else 0.0
    return left
