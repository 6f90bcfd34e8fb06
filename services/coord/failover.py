"""Redis first, the local backends when it goes away: nothing crashes, no count is lost.

One `Failover` per process is the switch. The first Redis failure (at start or mid-run) flips it
for the rest of the run (no flapping between two views of a window); from then on every limit is
the local one divided by the configured number of `machines`, so a team whose Redis is gone stays
within the upstream's limits as long as no more than `machines` hosts run. `SharedStatus` records
when and why, for the report.

What is never lost:
* quota — every call is also counted in the local ledger (this machine's spend), so after the
  switch the machine's earlier calls already weigh on its share; a reservation whose Redis reply
  was lost is counted locally (Redis may have counted it too: taken as spent, never as unspent);
* flags — every flag raised is also raised locally, so a block learnt before the switch holds;
* leases — a lease taken on Redis simply expires there; waiters stop waiting and read the cache.

A mid-run switch holds each limiter's first local call until one second after the switch: every
call paced by Redis happened before Redis died, so no one-second window mixes calls paced by
Redis with calls paced locally (whose sum could exceed either limit). Windows longer than a
second (Alpha Vantage's minute) are not covered by that pause; its daily quota is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import field
from datetime import datetime
from typing import TypeVar

from cache.redis import Degradation
from services.coord.flags import Flag, Flags
from services.coord.keys import Scope
from services.coord.limiter import RateLimiter
from services.coord.quota import DailyQuota
from services.coord.redis_conn import down_errors
from services.coord.singleflight import Lease, SingleFlight
from services.recordclass import record

T = TypeVar("T")
SETTLE_SECONDS = 1.0


@record(frozen=False)
class SharedStatus(Degradation):
    """Whether this run's limits were shared, and since when they were not (for the report)."""

    machines: int = field(kw_only=True)

    def note(self) -> str | None:
        """One sentence for the report when the run fell back, else None."""
        if self.degraded_at is None:
            return None
        share = (
            f"each limit divided by {self.machines} machines"
            if self.machines > 1
            else "with this machine's full limits"
        )
        return (
            f"Shared limits at {self.where} were {self.unreachable()}: this run used local "
            f"limits, quotas and flags, {share}."
        )


class Failover:
    """The per-process switch from Redis to the local backends."""

    def __init__(self, status: SharedStatus, *, clock: Callable[[], datetime]) -> None:
        if status.machines < 1:
            raise ValueError("machines must be at least 1")
        self.status = status
        self._clock = clock
        self._down = down_errors()
        self._switched: float | None = None  # monotonic time of a mid-run switch

    @property
    def active(self) -> bool:
        return self.status.shared

    def degrade(self, exc: BaseException, *, at_start: bool = False) -> None:
        if self.status.degrade(exc, self._clock()) and not at_start:
            self._switched = time.monotonic()

    async def settle(self) -> None:
        """After a mid-run switch, wait until SETTLE_SECONDS have passed since it."""
        if self._switched is not None:
            left = self._switched + SETTLE_SECONDS - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)

    async def run(self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self.active:
            try:
                return await shared()
            except self._down as exc:
                self.degrade(exc)
        return await local()

    def share(self, limit: int) -> int:
        return limit // self.status.machines

    def share_rate(self, rate: float) -> float:
        return rate / self.status.machines


class FailoverLimiter:
    def __init__(self, failover: Failover, shared: RateLimiter, local: RateLimiter) -> None:
        self.scope = shared.scope
        self._failover, self._shared, self._local = failover, shared, local

    async def acquire(self) -> None:
        await self._failover.run(self._shared.acquire, self._acquire_local)

    async def _acquire_local(self) -> None:
        await self._failover.settle()
        await self._local.acquire()


class FailoverQuota:
    def __init__(self, failover: Failover, shared: DailyQuota, local: DailyQuota) -> None:
        self._failover, self._shared, self._local = failover, shared, local

    async def try_reserve(self, scope: Scope, limit: int | None) -> bool:
        local_limit = None if limit is None else self._failover.share(limit)

        async def shared() -> bool:
            granted = await self._shared.try_reserve(scope, limit)
            if granted:  # this machine's spend, so a later fallback starts from it
                await self._local.try_reserve(scope, None)
            return granted

        return await self._failover.run(shared, lambda: self._local.try_reserve(scope, local_limit))

    async def used_today(self, scope: Scope) -> int:
        return await self._failover.run(
            lambda: self._shared.used_today(scope), lambda: self._local.used_today(scope)
        )


class FailoverFlags:
    def __init__(self, failover: Failover, shared: Flags, local: Flags) -> None:
        self._failover, self._shared, self._local = failover, shared, local

    async def raise_for(self, scope: Scope, kind: str, seconds: float, reason: str) -> Flag:
        mirrored = await self._local.raise_for(scope, kind, seconds, reason)
        return await self._failover.run(
            lambda: self._shared.raise_for(scope, kind, seconds, reason), _value(mirrored)
        )

    async def claim(self, scope: Scope, kind: str, seconds: float, reason: str) -> bool:
        async def shared() -> bool:
            won = await self._shared.claim(scope, kind, seconds, reason)
            if won:
                await self._local.raise_for(scope, kind, seconds, reason)
            return won

        return await self._failover.run(
            shared, lambda: self._local.claim(scope, kind, seconds, reason)
        )

    async def get(self, scope: Scope, kind: str) -> Flag | None:
        return await self._failover.run(
            lambda: self._shared.get(scope, kind), lambda: self._local.get(scope, kind)
        )

    async def active(self, scope: Scope, kinds: Sequence[str]) -> dict[str, Flag]:
        """Both backends' flags, the longer of each kind: a hold this machine learnt without
        Redis (an earlier run's SEC block) keeps it away as surely as a shared one."""
        local = await self._local.active(scope, kinds)
        shared = await self._failover.run(
            lambda: self._shared.active(scope, kinds), _value(dict[str, Flag]())
        )
        for kind, flag in shared.items():
            if kind not in local or local[kind].remaining < flag.remaining:
                local[kind] = flag
        return local

    async def clear(self, scope: Scope, kind: str) -> None:
        await self._local.clear(scope, kind)
        await self._failover.run(lambda: self._shared.clear(scope, kind), _value(None))


class FailoverFlight:
    def __init__(self, failover: Failover, shared: SingleFlight, local: SingleFlight) -> None:
        self._failover, self._shared, self._local = failover, shared, local
        self._local_tokens: set[str] = set()

    async def acquire(self, key: str, ttl: float) -> Lease | None:
        async def local() -> Lease | None:
            lease = await self._local.acquire(key, ttl)
            if lease is not None:
                self._local_tokens.add(lease.token)
            return lease

        return await self._failover.run(lambda: self._shared.acquire(key, ttl), local)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        if lease.token in self._local_tokens:
            return await self._local.renew(lease, ttl)
        return await self._failover.run(lambda: self._shared.renew(lease, ttl), _value(False))

    async def release(self, lease: Lease) -> bool:
        if lease.token in self._local_tokens:
            self._local_tokens.discard(lease.token)
            return await self._local.release(lease)
        return await self._failover.run(lambda: self._shared.release(lease), _value(False))

    async def held(self, key: str) -> bool:
        return await self._failover.run(
            lambda: self._shared.held(key), lambda: self._local.held(key)
        )

    async def wait(self, key: str, timeout: float) -> bool:
        return await self._failover.run(
            lambda: self._shared.wait(key, timeout), lambda: self._local.wait(key, timeout)
        )


def _value(value: T) -> Callable[[], Awaitable[T]]:
    async def constant() -> T:
        return value

    return constant
