"""The pacing rule every shared limiter follows, declared once (the Lua script mirrors it).

Today's in-process limiter is aiolimiter in its no-burst form: one call per 1/rate s, measured
from the previous call's actual start, so no sliding window is ever exceeded. Across processes a
caller cannot wait its turn by polling (every waiter would wake at the same instant and race), so
it *reserves* the next free slot atomically (`slot = max(now, next_free)`,
`next_free = slot + interval`) and sleeps until it, holding no lock.

A reservation is a promise about the future, and sleeps wake late: if the caller before me wakes
5 ms late and I wake on time, we are 5 ms closer than 1/rate. So slots are spaced by
`(1 + tolerance) / rate` and a caller that wakes more than `tolerance` seconds after its slot does
not send: it reserves again. Then every call starts within [slot, slot + tolerance], and any
window of W >= 1 s holds at most W x rate calls (a window holding n calls spans (n-1) slot gaps
minus at most `tolerance`: (n-1)(1+tolerance)/rate - tolerance < W forces n <= W x rate). The
price is `tolerance` (2 % at the default) of the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.02


@dataclass(frozen=True)
class Pacing:
    """One scope's slot spacing."""

    rate_per_second: float
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not (self.rate_per_second > 0 and self.rate_per_second < float("inf")):
            raise ValueError("rate_per_second must be a positive finite number")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1) seconds")

    @property
    def interval(self) -> float:
        return (1.0 + self.tolerance) / self.rate_per_second

    @property
    def horizon(self) -> float:
        """A stored `next_free` further ahead than this comes from a clock that stepped back (or
        a damaged row): it is taken as free now rather than waited for."""
        return max(60.0, 1000.0 * self.interval)


def reserve(next_free: float | None, now: float, pacing: Pacing) -> tuple[float, float]:
    """`(slot, new_next_free)` for a caller arriving at `now` (pure; the backends store it)."""
    if next_free is None or next_free > now + pacing.horizon:
        next_free = now
    slot = max(now, next_free)
    return slot, slot + pacing.interval


Reserve = Callable[[], Awaitable[float]]
"""Books one slot atomically; returns the seconds from *its own start* until the slot."""


@dataclass
class PaceStats:
    acquired: int = 0
    rebooked: int = 0  # woke too late for the slot and reserved another


async def paced(
    book: Reserve,
    tolerance: float,
    stats: PaceStats,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Reserve, sleep until the slot, and go only if on time (else reserve again).

    The slot lies between `started + wait` and `returned + wait` (the reply took some time), so
    the sleep ends at the later bound (never early) and lateness is counted from the earlier one
    (a slow reservation counts as late)."""
    while True:
        started = monotonic()
        wait = max(0.0, await book())
        due = monotonic() + wait
        while (left := due - monotonic()) > 0:
            await sleep(left)
        if monotonic() - (started + wait) <= tolerance:
            stats.acquired += 1
            return
        stats.rebooked += 1
