"""Daily quotas per (upstream, service, UTC day): an atomic increment-if-below, three backends.

The semantics are `services.quota.QuotaLedger`'s (which `MachineQuota` simply runs): every call
is counted, also without a limit, so usage can be reported; a call is refused once `used >=
limit`; the day is the UTC date of the injected clock. Counts are never lowered, and a count that
cannot be read is taken as spent (a garbage Redis value refuses the rest of the day, as a lost
SQLite ledger would be rebuilt as spent): overspending a key's quota can get it suspended,
underspending costs one day's calls at most.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from services.coord.keys import Scope, quota_key, seconds_until_day_after, utc_day

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from services.quota import QuotaLedger


class DailyQuota(Protocol):
    async def try_reserve(self, scope: Scope, limit: int | None) -> bool:
        """Count one call unless `limit` calls are already counted today (atomically)."""

    async def used_today(self, scope: Scope) -> int: ...


class MemoryQuota:
    """This process only (tests, dry runs)."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._used: dict[tuple[Scope, date], int] = {}

    async def try_reserve(self, scope: Scope, limit: int | None) -> bool:
        key = (scope, utc_day(self._clock()))
        used = self._used.get(key, 0)
        if limit is not None and used >= limit:
            return False
        self._used[key] = used + 1
        return True

    async def used_today(self, scope: Scope) -> int:
        return self._used.get((scope, utc_day(self._clock())), 0)


class MachineQuota:
    """The SQLite ledger in `state/quotas.sqlite`, shared by the processes of one data root.

    Called on the event loop like the client calls it today: each reservation is one short
    `BEGIN IMMEDIATE` (the ledger's connection belongs to the thread that opened it)."""

    def __init__(self, ledger: QuotaLedger) -> None:
        self.ledger = ledger

    async def try_reserve(self, scope: Scope, limit: int | None) -> bool:
        return self.ledger.try_reserve(scope.service, scope.upstream, limit)

    async def used_today(self, scope: Scope) -> int:
        return self.ledger.used_today(scope.service, scope.upstream)


# ARGV: limit (-1: none), expiry seconds. Returns the new count, or -1 when refused.
RESERVE_LUA = """
local limit = tonumber(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local used = 0
if raw then
  used = tonumber(raw)
  if used == nil or used ~= math.floor(used) then return -1 end
end
if limit >= 0 and used >= limit then return -1 end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return used
"""


class RedisQuota:
    """Shared by every process that uses this Redis; keys expire the day after their day."""

    def __init__(self, redis: Redis, *, clock: Callable[[], datetime]) -> None:
        self._redis = redis
        self._clock = clock
        self._script = redis.register_script(RESERVE_LUA)

    async def try_reserve(self, scope: Scope, limit: int | None) -> bool:
        now = self._clock()
        day = utc_day(now)
        args = [-1 if limit is None else max(0, int(limit)), seconds_until_day_after(day, now)]
        used = await self._script(keys=[quota_key(scope, day)], args=args)
        return int(used) >= 0

    async def used_today(self, scope: Scope) -> int:
        raw = await self._redis.get(quota_key(scope, utc_day(self._clock())))
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:  # unreadable: taken as spent
            return 2**31
