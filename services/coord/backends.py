"""Choosing the backends: one `Coordination` bundle per process, whatever stands behind it.

    open_in_process(clock)                         this process only, nothing on disk (tests,
                                                   dry runs)
    open_machine(state_dir, clock)                 every process of one data root (no server)
    open_local(state_dir, clock, ledger)           open_machine, or in-process backends when
                                                   state/ cannot hold them (said in `note`)
    await open_redis(url, state_dir, machines=N)   every process on every machine using the
                                                   Redis, falling back to open_machine's
                                                   backends with limits divided by N
    await open_coordination(shared, …)             the one place a run's choice is made, from
                                                   its `SharedSettings`

The machine-wide state lives in the data root's `state/` (nothing outside the data root is
touched), so processes share it when they share a data root; processes with separate data roots
share limits only through Redis.

Clocks: pacing and leases are about live processes and use the wall clock (`time.time`); flags
(holds until a moment) and quotas (per UTC day) use the run's clock, so a test or the refresh
scheduler that moves the clock moves them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from services.coord.flags import Flags, MachineFlags, MemoryFlags, RedisFlags
from services.coord.keys import Scope
from services.coord.quota import DailyQuota, MachineQuota, MemoryQuota, RedisQuota
from services.coord.singleflight import MachineFlight, MemoryFlight, RedisFlight, SingleFlight
from services.coord.statedb import StateDB, StateUnusable
from services.quota import QuotaLedger
from services.recordclass import record

# The pacers (aiolimiter) are imported when the first limiter is made, the Redis and failover
# pieces when Redis is asked for: a warm run (nothing sent) and a team-less one need neither.
if TYPE_CHECKING:
    from services.coord.failover import SharedStatus
    from services.coord.limiter import RateLimiter

log = logging.getLogger("tradescout.services")
LimiterFactory = Callable[[Scope, float], "RateLimiter"]
Pacing = Literal["machine", "process"]


@record
class SharedSettings:
    """How far a run's limits reach beyond this process (`[shared]`, `TRADESCOUT_REDIS_URL`).

    `redis_url` None: every process of the data root shares them through state/ (the default);
    set: every process using that Redis. `machines`: how many hosts share the limits, so each
    takes its part when Redis is gone. `pacing = "process"` paces each process alone (the old
    behaviour, kept as an experiment: two such processes together overrun a limit). The URL may
    hold a password, so it is never in a repr."""

    redis_url: str | None = field(default=None, repr=False)
    machines: int = 1
    pacing: Pacing = "machine"

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ValueError("machines must be at least 1")


@record(frozen=False)
class Coordination:
    """What a run shares with other runs: pacing, quotas, "open until" flags, single-flight.

    `limiter(scope, rate)` returns the same limiter for the same scope (rates are per scope and
    fixed for a run). `status` is None unless Redis was asked for; `note` says why the local
    backends are this process's only (state/ could not hold them)."""

    make_limiter: LimiterFactory
    quota: DailyQuota
    flags: Flags
    flight: SingleFlight
    status: SharedStatus | None = None
    note: str | None = None
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
                from services.coord.redis_conn import down_errors

                try:
                    await result
                except down_errors():  # closing a dead connection
                    pass
        self.closers.clear()


class _PacedOrLocal:
    """A machine-wide limiter that falls back to this process's pacing, for the rest of the run,
    when state/ stops taking writes (a disk that fills mid-run): a run is never stopped by its
    pacing store, and one process alone still keeps the rate."""

    def __init__(self, shared: RateLimiter, rate_per_second: float) -> None:
        from services.coord.limiter import LocalLimiter

        self.scope = shared.scope
        self._shared: RateLimiter | None = shared
        self._local = LocalLimiter(shared.scope, rate_per_second)

    async def acquire(self) -> None:
        if self._shared is not None:
            try:
                await self._shared.acquire()
                return
            except (sqlite3.Error, OSError) as exc:
                log.warning(
                    "%s: shared pacing unusable (%s); pacing in this process",
                    self.scope.label,
                    type(exc).__name__,
                )
                self._shared = None
        await self._local.acquire()


def open_in_process(*, clock: Callable[[], datetime]) -> Coordination:
    return Coordination(
        make_limiter=_local_limiter,
        quota=MemoryQuota(clock=clock),
        flags=MemoryFlags(wall=_epoch(clock)),
        flight=MemoryFlight(),
    )


def _local_limiter(scope: Scope, rate_per_second: float) -> RateLimiter:
    from services.coord.limiter import LocalLimiter

    return LocalLimiter(scope, rate_per_second)


def _machine_limiter(
    db: StateDB, wall: Callable[[], float]
) -> Callable[[Scope, float], RateLimiter]:
    def make(scope: Scope, rate: float) -> RateLimiter:
        from services.coord.limiter import MachineLimiter

        return _PacedOrLocal(MachineLimiter(scope, rate, db, wall=wall), rate)

    return make


def _epoch(clock: Callable[[], datetime]) -> Callable[[], float]:
    return lambda: clock().timestamp()


def open_machine(
    state_dir: Path,
    *,
    clock: Callable[[], datetime],
    ledger: QuotaLedger | None = None,
    wall: Callable[[], float] = time.time,
    pacing: Pacing = "machine",
) -> Coordination:
    """Machine-wide backends in `state_dir` (the quota ledger's own file, and coord.sqlite)."""
    db = StateDB(state_dir)
    owned = ledger is None
    ledger = ledger or QuotaLedger(state_dir, clock=clock)
    per_process = pacing == "process"
    coordination = Coordination(
        make_limiter=_local_limiter if per_process else _machine_limiter(db, wall),
        quota=MachineQuota(ledger),
        flags=MachineFlags(db, wall=_epoch(clock)),
        flight=MemoryFlight() if per_process else MachineFlight(db, wall=wall),
    )
    if db.rebuilt:
        coordination.note = f"{db.path.name} was damaged: moved aside and started afresh"
    coordination.closers.append(db.close)
    if owned:
        coordination.closers.append(ledger.close)
    return coordination


def open_local(
    state_dir: Path,
    *,
    clock: Callable[[], datetime],
    ledger: QuotaLedger,
    pacing: Pacing = "machine",
) -> Coordination:
    """`open_machine`, or — when state/ cannot hold coord.sqlite (a read-only or full data root,
    a path that is not a file) — this process's own limiter, flags and single-flight over the
    same quota ledger, with a `note` for the report. A run is never refused for it: the ledger
    already keeps quota-bound services uncalled when it cannot count."""
    try:
        return open_machine(state_dir, clock=clock, ledger=ledger, pacing=pacing)
    except (StateUnusable, OSError, sqlite3.Error) as exc:
        why = str(exc) if isinstance(exc, StateUnusable) else f"{type(exc).__name__}: {exc}"
        coordination = Coordination(
            make_limiter=_local_limiter,
            quota=MachineQuota(ledger),
            flags=MemoryFlags(wall=_epoch(clock)),
            flight=MemoryFlight(),
        )
        coordination.note = (
            f"{StateDB.FILE_NAME} unusable ({why[:160]}): limits and holds were kept by this "
            "process alone"
        )
        return coordination


async def open_redis(
    url: str,
    state_dir: Path,
    *,
    machines: int,
    clock: Callable[[], datetime],
    ledger: QuotaLedger | None = None,
    local: Coordination | None = None,
) -> Coordination:
    """Redis-backed sharing with the machine-wide backends (or `local`) behind it (see
    `failover`)."""
    from services.coord.failover import (
        Failover,
        FailoverFlags,
        FailoverFlight,
        FailoverLimiter,
        FailoverQuota,
        SharedStatus,
    )
    from services.coord.limiter import RedisLimiter
    from services.coord.redis_conn import connect, down_errors, where

    local = local or open_machine(state_dir, clock=clock, ledger=ledger)
    status = SharedStatus(where=where(url), machines=machines)
    failover = Failover(status, clock=clock)
    unusable: tuple[type[BaseException], ...] = (ValueError, *down_errors())
    try:
        redis = connect(url)
    except unusable as exc:  # a URL redis-py cannot use: local shares from the start
        failover.degrade(exc, at_start=True)
        return Coordination(
            make_limiter=lambda scope, rate: local.limiter(scope, failover.share_rate(rate)),
            quota=FailoverQuota(failover, local.quota, local.quota),
            flags=local.flags,
            flight=local.flight,
            status=status,
            note=local.note,
            closers=list(local.closers),
        )
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

    return Coordination(
        make_limiter=limiter,
        quota=FailoverQuota(failover, RedisQuota(redis, clock=clock), local.quota),
        flags=FailoverFlags(failover, RedisFlags(redis), local.flags),
        flight=FailoverFlight(failover, RedisFlight(redis), local.flight),
        status=status,
        note=local.note,
        closers=[*local.closers, redis.aclose],
    )


async def open_coordination(
    shared: SharedSettings,
    state_dir: Path,
    *,
    clock: Callable[[], datetime],
    ledger: QuotaLedger,
    local: Coordination | None = None,
) -> Coordination:
    """The run's coordination from its settings: Redis when a URL is set (over the local
    backends), else the local ones."""
    local = local or open_local(state_dir, clock=clock, ledger=ledger, pacing=shared.pacing)
    if shared.redis_url is None:
        return local
    return await open_redis(
        shared.redis_url,
        state_dir,
        machines=shared.machines,
        clock=clock,
        ledger=ledger,
        local=local,
    )
