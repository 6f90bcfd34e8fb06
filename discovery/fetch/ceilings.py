"""The memory ceiling of the fetch stage.

The old system grew to 3 GB because nothing watched memory. Here a `MemoryCeiling` reads the
process RSS (psutil): over the soft limit (default 80%) the fetch loop halves its concurrency and
collects garbage; over the hard limit it stops scheduling new requests (what was fetched is
already in the cache) and the run ends with gaps. The policy is pure (`classify`,
`next_concurrency`); the RSS reader is injected so tests need no real memory pressure. The
concurrency it steers is the hub's resizable global ceiling (`set_concurrency`).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

_MB = 1024 * 1024
_PAGE = resource.getpagesize()


class Level(StrEnum):
    OK = "ok"
    SOFT = "soft"
    HARD = "hard"


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB.

    On Linux one read of /proc/self/statm (what psutil reads too, without its ~15 ms import,
    a third of a warm run's own work); psutil elsewhere.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE / _MB
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    return float(psutil.Process().memory_info().rss) / _MB


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MiB (for the report's `peak_rss_mb`).

    `ru_maxrss` is in KiB on Linux and in bytes on macOS.
    """
    maxrss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return maxrss / _MB if sys.platform == "darwin" else maxrss / 1024


def classify(rss_mb: float, limit_mb: float, soft_ratio: float) -> Level:
    """Pure: where an RSS reading sits against the soft and hard limits."""
    if rss_mb >= limit_mb:
        return Level.HARD
    if rss_mb >= limit_mb * soft_ratio:
        return Level.SOFT
    return Level.OK


def next_concurrency(current: int, level: Level, floor: int = 1) -> int:
    """Pure: halve on SOFT, drop to the floor on HARD, keep otherwise; never below `floor`."""
    floor = max(1, floor)
    if level is Level.HARD:
        return floor
    if level is Level.SOFT:
        return max(floor, current // 2)
    return max(floor, current)


class ConcurrencyTarget(Protocol):
    """What the watcher steers: the global in-flight ceiling (e.g. `services.hub.ServiceHub`)."""

    @property
    def concurrency(self) -> int: ...

    def set_concurrency(self, n: int) -> None: ...


class MemoryCeiling:
    """Watches RSS against `limit_mb`; remembers the peak and whether scheduling must stop.

    `stop_scheduling` is sticky: once the hard limit is crossed the run winds down even if a
    later reading is lower (the garbage that pushed it over is likely to come back).
    """

    def __init__(
        self,
        limit_mb: int,
        soft_ratio: float = 0.8,
        rss_reader: Callable[[], float] = current_rss_mb,
        collect: Callable[[], object] = gc.collect,
    ) -> None:
        if limit_mb <= 0:
            raise ValueError("limit_mb must be positive")
        if not 0 < soft_ratio <= 1:
            raise ValueError("soft_ratio must be in (0, 1]")
        self.limit_mb = limit_mb
        self.soft_ratio = soft_ratio
        self._read = rss_reader
        self._collect = collect
        self.peak_mb = 0.0
        self.last_mb = 0.0
        self.level = Level.OK
        self.stop_scheduling = False
        self.soft_events = 0
        self._collected_at: float | None = None
        self._checked_at: float | None = None
        self.fresh_s = 0.05

    @property
    def soft_mb(self) -> float:
        return self.limit_mb * self.soft_ratio

    @property
    def hard_reached(self) -> bool:
        """The fetch loop's question: stop scheduling new requests?

        Reads RSS itself when the last reading is older than `fresh_s`, so the answer is right
        even before the watcher task has had its first turn (a tiny limit stops at once).
        """
        if not self.stop_scheduling and (
            self._checked_at is None or time.monotonic() - self._checked_at > self.fresh_s
        ):
            self.check()
        return self.stop_scheduling

    async def watch(
        self,
        target: ConcurrencyTarget,
        interval_s: float = 0.2,
        *,
        on_hard: Callable[[], None] | None = None,
        floor: int = 1,
    ) -> None:
        """Run `watch_loop` against `target` until cancelled (start it as a task)."""
        await watch_loop(
            self,
            lambda: target.concurrency,
            target.set_concurrency,
            interval_s=interval_s,
            on_hard=on_hard,
            floor=floor,
        )

    def check(self) -> Level:
        """Read RSS once, update peak and flags; collect garbage when over the soft limit and
        still climbing (or newly over it)."""
        rss = float(self._read())
        self._checked_at = time.monotonic()
        self.last_mb = rss
        self.peak_mb = max(self.peak_mb, rss)
        self.level = classify(rss, self.limit_mb, self.soft_ratio)
        if self.level is Level.HARD:
            self.stop_scheduling = True
        elif self.level is Level.SOFT:
            self.soft_events += 1
            # A full collection costs real time on a big heap: once per climb, not every tick.
            if self._collected_at is None or rss > self._collected_at:
                self._collect()
                self._collected_at = rss
        else:
            self._collected_at = None
        return self.level


async def watch_loop(
    ceiling: MemoryCeiling,
    get_concurrency: Callable[[], int],
    set_concurrency: Callable[[int], None],
    *,
    interval_s: float = 0.2,
    on_hard: Callable[[], None] | None = None,
    floor: int = 1,
) -> None:
    """Check the ceiling every `interval_s` until cancelled, steering the fetch loop.

    Concurrency is halved on SOFT only while RSS is still growing past the level of the last
    shrink, so a plateau just over the soft limit does not collapse concurrency to 1 at once.
    `on_hard` is called once, the first time the hard limit is crossed.
    """
    shrunk_at: float | None = None
    hard_signalled = False
    while True:
        level = ceiling.check()
        if level is Level.HARD:
            set_concurrency(next_concurrency(get_concurrency(), level, floor))
            if not hard_signalled:
                hard_signalled = True
                if on_hard is not None:
                    on_hard()
        elif level is Level.SOFT and (shrunk_at is None or ceiling.last_mb > shrunk_at):
            set_concurrency(next_concurrency(get_concurrency(), level, floor))
            shrunk_at = ceiling.last_mb
        await asyncio.sleep(interval_s)
