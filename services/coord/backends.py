"""Choosing the backends: one `Coordination` bundle per process, whatever stands behind it.

    open_in_process(clock)                         this process only, nothing on disk (tests,
                                                   dry runs)
    open_machine(state_dir, clock)                 every process of one data root (no server)
    await open_redis(url, state_dir, machines=N)   every process on every machine using the
                                                   Redis, falling back to open_machine's
                                                   backends with limits divided by N

The machine-wide state lives in the data root's `state/` (nothing outside the data root is
touched), so processes share it when they share a data root; processes with separate data roots
share limits only through Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from services.coord.failover import (
    Failover,
    FailoverFlags,
    FailoverFlight,
    FailoverLimiter,
    FailoverQuota,
    SharedStatus,
)
from services.coord.flags import Flags, MachineFlags, MemoryFlags, RedisFlags
from services.coord.keys import Scope
from services.coord.limiter import LocalLimiter, MachineLimiter, RateLimiter, RedisLimiter
from services.coord.quota import DailyQuota, MachineQuota, MemoryQuota, RedisQuota
from services.coord.redis_conn import connect, down_errors, where
from services.coord.singleflight import MachineFlight, MemoryFlight, RedisFlight, SingleFlight
from services.coord.statedb import StateDB
from services.quota import QuotaLedger

LimiterFactory = Callable[[Scope, float], RateLimiter]


@dataclass
class Coordination:
    """What a run shares with other runs: pacing, quotas, "open until" flags, single-flight.

    `limiter(scope, rate)` returns the same limiter for the same scope (rates are per scope and
    fixed for a run). `status` is None unless Redis was asked for."""

    make_limiter: LimiterFactory
    quota: DailyQuota
    flags: Flags
    flight: SingleFlight
    status: SharedStatus | None = None
    closers: list[Callable[[], object]] = field(default_factory=list)
    _limiters: dict[Scope, RateLimiter] = field(default_factory=dict)

    def limiter(self, scope: Scope, rate_per_second: float) -> RateLimiter:
        if scope not in self._limiters:
            self._limiters[scope] = self.make_limiter(scope, rate_per_second)
        return self._limiters[scope]

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            result = close()
            if hasattr(result, "__await__"):
                try:
                    await result
                except down_errors():  # closing a dead connection
                    pass
        self.closers.clear()


def open_in_process(*, clock: Callable[[], datetime]) -> Coordination:
    return Coordination(
        make_limiter=LocalLimiter,
        quota=MemoryQuota(clock=clock),
        flags=MemoryFlags(),
        flight=MemoryFlight(),
    )


def open_machine(
    state_dir: Path,
    *,
    clock: Callable[[], datetime],
    ledger: QuotaLedger | None = None,
    wall: Callable[[], float] = time.time,
) -> Coordination:
    """Machine-wide backends in `state_dir` (the quota ledger's own file, and coord.sqlite)."""
    db = StateDB(state_dir)
    owned = ledger is None
    ledger = ledger or QuotaLedger(state_dir, clock=clock)
    coordination = Coordination(
        make_limiter=lambda scope, rate: MachineLimiter(scope, rate, db, wall=wall),
        quota=MachineQuota(ledger),
        flags=MachineFlags(db, wall=wall),
        flight=MachineFlight(db, wall=wall),
    )
    coordination.closers.append(db.close)
    if owned:
        coordination.closers.append(ledger.close)
    return coordination


async def open_redis(
    url: str,
    state_dir: Path,
    *,
    machines: int,
    clock: Callable[[], datetime],
    ledger: QuotaLedger | None = None,
) -> Coordination:
    """Redis-backed sharing with the machine-wide backends behind it (see `failover`)."""
    local = open_machine(state_dir, clock=clock, ledger=ledger)
    status = SharedStatus(where=where(url), machines=machines)
    failover = Failover(status, clock=clock)
    unusable: tuple[type[BaseException], ...] = (ValueError, *down_errors())
    try:
        redis = connect(url)
    except unusable as exc:  # a URL redis-py cannot use
        failover.degrade(exc, at_start=True)
        local.status = status
        return local
    try:
        await redis.ping()
    except down_errors() as exc:
        failover.degrade(exc, at_start=True)

    def limiter(scope: Scope, rate: float) -> RateLimiter:
        return FailoverLimiter(
            failover,
            RedisLimiter(scope, rate, redis),
            local.limiter(scope, failover.share_rate(rate)),
        )

    coordination = Coordination(
        make_limiter=limiter,
        quota=FailoverQuota(failover, RedisQuota(redis, clock=clock), local.quota),
        flags=FailoverFlags(failover, RedisFlags(redis), local.flags),
        flight=FailoverFlight(failover, RedisFlight(redis), local.flight),
        status=status,
        closers=[*local.closers, redis.aclose],
    )
    return coordination
