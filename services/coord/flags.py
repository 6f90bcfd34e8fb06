"""Shared "open until" flags: no request to a scope until a time, and why.

Four users, one shape: an open circuit breaker (`circuit_open`), SEC's "Request Rate Threshold
Exceeded" (`rate_blocked`, no SEC request for 10 minutes), Yahoo taking us for a bot (`blocked`)
and a daily limit the service itself declared spent (`quota_exhausted`, until UTC midnight). A
flag raised by one process holds every process sharing the backend; these flags are the one
place "open until" state lives (the client's refusal holds are flags too). The kinds are the gap
reasons the flags produce. `claim` (raise only if none is up) lets exactly one process send the
half-open breaker probe (kind `probe`). `active` reads several kinds of one scope at once: the
client asks it once per request, so it costs one round trip (one SQLite statement, one script).

Durations, not instants, cross the interface: the Redis backend counts them on the server's clock
(`PX` expiry), so machines whose clocks disagree still agree on when a block ends. The local
backends use the wall clock (`time.time`), the one clock all processes of a machine share across
restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from services.coord.keys import Scope, flag_key
from services.recordclass import record

if TYPE_CHECKING:
    import sqlite3

    from redis.asyncio import Redis

    from services.coord.statedb import StateDB

CIRCUIT_OPEN: Final = "circuit_open"
RATE_BLOCKED: Final = "rate_blocked"
BLOCKED: Final = "blocked"
QUOTA_EXHAUSTED: Final = "quota_exhausted"
PROBE: Final = "probe"
HOLDS: Final = (RATE_BLOCKED, BLOCKED, QUOTA_EXHAUSTED)
"""The kinds a refusal raises (`services.errors.ServiceError.hold`): each keeps a service away."""
_MAX_REASON = 200


@record
class Flag:
    kind: str
    reason: str
    remaining: float  # seconds until it drops


class Flags(Protocol):
    async def raise_for(self, scope: Scope, kind: str, seconds: float, reason: str) -> Flag:
        """Hold `scope` for at least `seconds` more (a longer flag already up is kept)."""

    async def claim(self, scope: Scope, kind: str, seconds: float, reason: str) -> bool:
        """Raise the flag only if none is up; True when this caller raised it."""

    async def get(self, scope: Scope, kind: str) -> Flag | None: ...

    async def active(self, scope: Scope, kinds: Sequence[str]) -> dict[str, Flag]:
        """The flags of `kinds` that are up for `scope` now, by kind."""

    async def clear(self, scope: Scope, kind: str) -> None: ...


def _checked(seconds: float, reason: str) -> tuple[float, str]:
    if not (0 < seconds < float("inf")):
        raise ValueError("a flag's duration must be a positive finite number of seconds")
    return seconds, reason[:_MAX_REASON]


class MemoryFlags:
    """This process only."""

    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._flags: dict[tuple[Scope, str], tuple[float, str]] = {}

    def _active(self, scope: Scope, kind: str) -> tuple[float, str] | None:
        held = self._flags.get((scope, kind))
        return held if held is not None and held[0] > self._wall() else None

    async def raise_for(self, scope: Scope, kind: str, seconds: float, reason: str) -> Flag:
        seconds, reason = _checked(seconds, reason)
        now, held = self._wall(), self._active(scope, kind)
        if held is None or held[0] < now + seconds:
            held = (now + seconds, reason)
            self._flags[(scope, kind)] = held
        return Flag(kind, held[1], held[0] - now)

    async def claim(self, scope: Scope, kind: str, seconds: float, reason: str) -> bool:
        seconds, reason = _checked(seconds, reason)
        if self._active(scope, kind) is not None:
            return False
        self._flags[(scope, kind)] = (self._wall() + seconds, reason)
        return True

    async def get(self, scope: Scope, kind: str) -> Flag | None:
        held = self._active(scope, kind)
        return None if held is None else Flag(kind, held[1], held[0] - self._wall())

    async def active(self, scope: Scope, kinds: Sequence[str]) -> dict[str, Flag]:
        found = {kind: await self.get(scope, kind) for kind in kinds}
        return {kind: flag for kind, flag in found.items() if flag is not None}

    async def clear(self, scope: Scope, kind: str) -> None:
        self._flags.pop((scope, kind), None)


class MachineFlags:
    """Shared by the processes of one data root through `state/coord.sqlite`."""

    def __init__(self, db: StateDB, *, wall: Callable[[], float] = time.time) -> None:
        self._db = db
        self._wall = wall

    @staticmethod
    def _read(db: sqlite3.Connection, scope: Scope, kind: str) -> tuple[float, str] | None:
        row = db.execute(
            "SELECT until, reason FROM flags WHERE upstream=? AND service=? AND kind=?",
            (scope.upstream, scope.service, kind),
        ).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    @staticmethod
    def _write(db: sqlite3.Connection, scope: Scope, kind: str, until: float, why: str) -> None:
        db.execute(
            "INSERT INTO flags (upstream, service, kind, until, reason) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (upstream, service, kind) DO UPDATE "
            "SET until = excluded.until, reason = excluded.reason",
            (scope.upstream, scope.service, kind, until, why),
        )

    async def raise_for(self, scope: Scope, kind: str, seconds: float, reason: str) -> Flag:
        seconds, reason = _checked(seconds, reason)

        def work(db: sqlite3.Connection) -> Flag:
            now, held = self._wall(), self._read(db, scope, kind)
            if held is None or held[0] < now + seconds:
                held = (now + seconds, reason)
                self._write(db, scope, kind, *held)
            return Flag(kind, held[1], held[0] - now)

        return await self._db.transact(work)

    async def claim(self, scope: Scope, kind: str, seconds: float, reason: str) -> bool:
        seconds, reason = _checked(seconds, reason)

        def work(db: sqlite3.Connection) -> bool:
            now, held = self._wall(), self._read(db, scope, kind)
            if held is not None and held[0] > now:
                return False
            self._write(db, scope, kind, now + seconds, reason)
            return True

        return await self._db.transact(work)

    async def get(self, scope: Scope, kind: str) -> Flag | None:
        def work(db: sqlite3.Connection) -> Flag | None:
            now, held = self._wall(), self._read(db, scope, kind)
            return None if held is None or held[0] <= now else Flag(kind, held[1], held[0] - now)

        return await self._db.transact(work)

    async def active(self, scope: Scope, kinds: Sequence[str]) -> dict[str, Flag]:
        wanted = set(kinds)

        def work(db: sqlite3.Connection) -> dict[str, Flag]:
            now = self._wall()
            rows = db.execute(
                "SELECT kind, until, reason FROM flags WHERE upstream=? AND service=? AND until>?",
                (scope.upstream, scope.service, now),
            ).fetchall()
            return {
                str(k): Flag(str(k), str(why), float(until) - now)
                for k, until, why in rows
                if k in wanted
            }

        return await self._db.transact(work)

    async def clear(self, scope: Scope, kind: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM flags WHERE upstream=? AND service=? AND kind=?",
                (scope.upstream, scope.service, kind),
            )

        await self._db.transact(work)


# ARGV: milliseconds, reason. Keeps a longer flag; returns {reason, remaining ms}.
RAISE_LUA = """
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if left < ms then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
  return {ARGV[2], ms}
end
return {redis.call('GET', KEYS[1]), left}
"""
GET_LUA = """
local left = redis.call('PTTL', KEYS[1])
if left <= 0 then return false end
return {redis.call('GET', KEYS[1]), left}
"""
# One entry per key: {reason, remaining ms}, or {"", 0} for a flag that is down.
ACTIVE_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left > 0 then out[i] = {redis.call('GET', key), left} else out[i] = {'', 0} end
end
return out
"""


class RedisFlags:
    """Shared by every process that uses this Redis; a flag is a key that expires when it drops."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._raise = redis.register_script(RAISE_LUA)
        self._get = redis.register_script(GET_LUA)
        self._active = redis.register_script(ACTIVE_LUA)

    async def raise_for(self, scope: Scope, kind: str, seconds: float, reason: str) -> Flag:
        seconds, reason = _checked(seconds, reason)
        ms = max(1, round(seconds * 1000))
        why, left = await self._raise(keys=[flag_key(scope, kind)], args=[ms, reason])
        return Flag(kind, _text(why), int(left) / 1000)

    async def claim(self, scope: Scope, kind: str, seconds: float, reason: str) -> bool:
        seconds, reason = _checked(seconds, reason)
        ms = max(1, round(seconds * 1000))
        return bool(await self._redis.set(flag_key(scope, kind), reason, nx=True, px=ms))

    async def get(self, scope: Scope, kind: str) -> Flag | None:
        held = await self._get(keys=[flag_key(scope, kind)])
        if not held:
            return None
        why, left = held
        return Flag(kind, _text(why), int(left) / 1000)

    async def active(self, scope: Scope, kinds: Sequence[str]) -> dict[str, Flag]:
        if not kinds:
            return {}
        rows = await self._active(keys=[flag_key(scope, kind) for kind in kinds])
        return {
            kind: Flag(kind, _text(why), int(left) / 1000)
            for kind, (why, left) in zip(kinds, rows, strict=True)
            if int(left) > 0
        }

    async def clear(self, scope: Scope, kind: str) -> None:
        await self._redis.delete(flag_key(scope, kind))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
