"""The pacing rule every shared limiter follows, declared once (the Lua script mirrors it).

Today's in-process limiter is aiolimiter in its no-burst form: one call per 1/rate s, measured
from the previous call's actual start, so no sliding window is ever exceeded. Across processes a
caller cannot wait its turn by polling (every waiter would wake at the same instant and race), so
it *reserves* a slot atomically (`slot = max(now, last_slot + interval)`, `last_slot = slot`) and
sleeps until it, holding no lock.

A reservation is a promise about the future, and sleeps wake late: if the caller before me wakes
5 ms late and I wake on time, we are 5 ms closer than 1/rate. So slots are spaced by
`(1 + tolerance) / rate` and a caller that wakes more than `tolerance` seconds after its slot does
not send: it reserves again. Then every call starts within [slot, slot + tolerance], and any
window of W >= 1 s holds at most W x rate calls (a window holding n calls spans (n-1) slot gaps
minus at most `tolerance`: (n-1)(1+tolerance)/rate - tolerance < W forces n <= W x rate). The
price is `tolerance` (2 % at the default) of the rate.

Two more rules keep a dead or differently configured process from stalling the others:
* a slot is booked only when it is at most `lookahead` (1 s) away; a caller further back in the
  queue sleeps until it is that close and books then (booking stays atomic, so nothing overruns).
  A process killed while it waits has therefore booked at most one slot, at most a second ahead;
* the store keeps the *last slot booked*, and each caller adds its own interval: a process with a
  new rate (a changed config) is paced by that rate from its first call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from services.recordclass import record

DEFAULT_TOLERANCE = 0.02
DEFAULT_LOOKAHEAD = 1.0


@record
class Pacing:
    """One scope's slot spacing."""

    rate_per_second: float
    tolerance: float = DEFAULT_TOLERANCE
    lookahead: float = DEFAULT_LOOKAHEAD

    def __post_init__(self) -> None:
        if not (self.rate_per_second > 0 and self.rate_per_second < float("inf")):
            raise ValueError("rate_per_second must be a positive finite number")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1) seconds")
        if not self.lookahead > 0:
            raise ValueError("lookahead must be a positive number of seconds")

    @property
    def interval(self) -> float:
        return (1.0 + self.tolerance) / self.rate_per_second

    @property
    def horizon(self) -> float:
        """A stored last slot further ahead than this comes from a clock that stepped back (or
        a damaged row): it is taken as free now rather than waited for."""
        return max(60.0, 1000.0 * self.interval)


def reserve(last_slot: float | None, now: float, pacing: Pacing) -> tuple[float, bool]:
    """`(slot, booked)` for a caller arriving at `now` (pure; the backends store the slot when
    booked): the first slot one interval after the last one, booked only within `lookahead`."""
    if last_slot is None or last_slot > now + pacing.horizon:
        return now, True
    slot = max(now, last_slot + pacing.interval)
    return slot, slot - now <= pacing.lookahead


Reserve = Callable[[], Awaitable[tuple[float, bool]]]
"""Books one slot atomically if it is near; returns the seconds from *its own start* until the
slot, and whether it was booked."""


@record(frozen=False)
class PaceStats:
    acquired: int = 0
    rebooked: int = 0  # woke too late for the slot and reserved another
    deferred: int = 0  # the slot was more than `lookahead` away: slept, then asked again


async def paced(
    book: Reserve,
    pacing: Pacing,
    stats: PaceStats,
    *,
    exact: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Reserve, sleep until the slot, and go only if on time (else reserve again).

    On another clock (Redis') the slot lies between `started + wait` and `returned + wait` (the
    reply took some time), so the sleep ends at the later bound (never early) and lateness is
    counted from the earlier one (a slow reservation counts as late). With `exact` the backend
    measured `wait` on this machine's clock when it returned (the machine-wide backend), so
    lateness is counted from the slot itself: a reservation that queued behind others in the
    state database is not late for that. A slot too far ahead to book is slept towards (to half
    the lookahead before it) and asked for again."""
    while True:
        started = monotonic()
        wait, booked = await book()
        wait = max(0.0, wait)
        if not booked:
            stats.deferred += 1
            await sleep(max(0.001, wait - pacing.lookahead / 2))
            continue
        if exact:
            started = monotonic()
        due = monotonic() + wait
        while (left := due - monotonic()) > 0:
            await sleep(left)
        if monotonic() - (started + wait) <= pacing.tolerance:
            stats.acquired += 1
            return
        stats.rebooked += 1
