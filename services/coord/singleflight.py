"""Single-flight across processes and machines: one of them fetches a key, the others wait.

A lease is a key held with a random token and a TTL: taken only if free (`SET NX PX` in Redis,
one `BEGIN IMMEDIATE` in `state/coord.sqlite`), renewed while the fetch runs and released only
by its owner (compare-and-delete). An owner that dies stops renewing, so the TTL frees the key
and a waiter takes over. On one machine a dead owner is seen at once: a machine-wide lease
names its process (pid and start time), and a lease whose process is gone (killed, or a zombie
not yet reaped) counts as free — a rerun after a SIGKILL does not wait out the TTL.
Waiters wait bounded: on Redis a release publishes on the key's channel
(a waiter wakes at once, and re-checks at least every half second in case the owner died); the
machine-wide backend, with no notifications in SQLite, re-checks with a backoff from 20 to
250 ms (a fetch takes hundreds of ms, so that costs little).

`once()` is the policy on top: lead or wait, then read the shared cache; if the owner left
nothing there (its fetch failed) try to lead; past the deadline fetch anyway, since a duplicate
request is better than a missing value (the shared limiter still paces it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from services.coord.keys import flight_key
from services.recordclass import record

if TYPE_CHECKING:
    import sqlite3

    from redis.asyncio import Redis

    from services.coord.statedb import StateDB

T = TypeVar("T")
_POLL_MIN, _POLL_MAX = 0.02, 0.25
_REDIS_RECHECK = 0.5


@record
class Lease:
    key: str
    token: str


class SingleFlight(Protocol):
    async def acquire(self, key: str, ttl: float) -> Lease | None:
        """Take the key's lease for `ttl` seconds, or None when another owner holds it."""

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend a lease still held by its owner; False when it was lost."""

    async def release(self, lease: Lease) -> bool:
        """Free the key if `lease` still owns it (never another owner's)."""

    async def held(self, key: str) -> bool: ...

    async def wait(self, key: str, timeout: float) -> bool:
        """Until the key is free (True) or `timeout` seconds have passed (False)."""


def _token() -> str:
    return secrets.token_hex(16)


def _this_process() -> str:
    """`pid:start time` of this process: who owns a machine-wide lease."""
    import psutil  # on the first lease, not on import: a warm run takes none

    try:
        return f"{os.getpid()}:{psutil.Process().create_time():.3f}"
    except psutil.Error:
        return f"{os.getpid()}:"


def owner_alive(owner: str) -> bool:
    """Whether the process a lease names still runs (the same pid *and* start time, not a
    zombie). Anything unreadable counts as alive: the TTL decides then."""
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not started or abs(proc.create_time() - float(started)) < 1.0
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, ValueError):
        return True


def _ttl_checked(ttl: float) -> float:
    if not (0 < ttl < float("inf")):
        raise ValueError("a lease's ttl must be a positive finite number of seconds")
    return ttl


class MemoryFlight:
    """This process only (the hub already single-flights in process; this is for tests)."""

    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, float]] = {}
        self._freed: dict[str, asyncio.Event] = {}

    async def acquire(self, key: str, ttl: float) -> Lease | None:
        now, held = time.monotonic(), self._owners.get(key)
        if held is not None and held[1] > now:
            return None
        lease = Lease(key, _token())
        self._owners[key] = (lease.token, now + _ttl_checked(ttl))
        self._freed[key] = asyncio.Event()
        return lease

    async def renew(self, lease: Lease, ttl: float) -> bool:
        held = self._owners.get(lease.key)
        if held is None or held[0] != lease.token or held[1] <= time.monotonic():
            return False
        self._owners[lease.key] = (lease.token, time.monotonic() + _ttl_checked(ttl))
        return True

    async def release(self, lease: Lease) -> bool:
        held = self._owners.get(lease.key)
        if held is None or held[0] != lease.token:
            return False
        del self._owners[lease.key]
        self._freed.pop(lease.key, asyncio.Event()).set()
        return True

    async def held(self, key: str) -> bool:
        held = self._owners.get(key)
        return held is not None and held[1] > time.monotonic()

    async def wait(self, key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while await self.held(key):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            expires = self._owners[key][1] - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed[key].wait(), max(0.0, min(left, expires)))
        return True


class MachineFlight:
    """Leases in `state/coord.sqlite`, shared by the processes of one data root."""

    def __init__(self, db: StateDB, *, wall: Callable[[], float] = time.time) -> None:
        self._db = db
        self._wall = wall
        self._owner = ""  # `pid:start time`, read on the first lease (psutil)

    def _set_owner(self) -> str:
        self._owner = _this_process()
        return self._owner

    def _live_row(self, db: sqlite3.Connection, key: str, now: float) -> bool:
        row = db.execute("SELECT expires, owner FROM leases WHERE key=?", (key,)).fetchone()
        return row is not None and float(row[0]) > now and owner_alive(str(row[1]))

    async def acquire(self, key: str, ttl: float) -> Lease | None:
        ttl = _ttl_checked(ttl)
        lease = Lease(key, _token())

        def work(db: sqlite3.Connection) -> Lease | None:
            now = self._wall()
            db.execute("DELETE FROM leases WHERE expires <= ?", (now,))  # dead owners' rows
            if self._live_row(db, key, now):
                return None
            db.execute(
                "INSERT INTO leases (key, token, expires, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET token = excluded.token, "
                "expires = excluded.expires, owner = excluded.owner",
                (key, lease.token, now + ttl, self._owner or self._set_owner()),
            )
            return lease

        return await self._db.transact(work)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        ttl = _ttl_checked(ttl)

        def work(db: sqlite3.Connection) -> bool:
            now = self._wall()
            changed = db.execute(
                "UPDATE leases SET expires=? WHERE key=? AND token=? AND expires>?",
                (now + ttl, lease.key, lease.token, now),
            ).rowcount
            return bool(changed)

        return await self._db.transact(work)

    async def release(self, lease: Lease) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            gone = db.execute(
                "DELETE FROM leases WHERE key=? AND token=?", (lease.key, lease.token)
            ).rowcount
            return bool(gone)

        return await self._db.transact(work)

    async def held(self, key: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            return self._live_row(db, key, self._wall())

        return await self._db.transact(work)

    async def wait(self, key: str, timeout: float) -> bool:
        deadline, pause = time.monotonic() + timeout, _POLL_MIN
        while await self.held(key):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(_POLL_MAX, pause * 1.5)
        return True


RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], 'released')
  return 1
end
return 0
"""


class RedisFlight:
    """Leases in Redis, shared by every process that uses it (the lease key is also the channel
    its release is published on)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._renew = redis.register_script(RENEW_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    async def acquire(self, key: str, ttl: float) -> Lease | None:
        lease = Lease(key, _token())
        ms = max(1, round(_ttl_checked(ttl) * 1000))
        taken = await self._redis.set(flight_key(key), lease.token, nx=True, px=ms)
        return lease if taken else None

    async def renew(self, lease: Lease, ttl: float) -> bool:
        ms = max(1, round(_ttl_checked(ttl) * 1000))
        return bool(await self._renew(keys=[flight_key(lease.key)], args=[lease.token, ms]))

    async def release(self, lease: Lease) -> bool:
        return bool(await self._release(keys=[flight_key(lease.key)], args=[lease.token]))

    async def held(self, key: str) -> bool:
        return bool(await self._redis.exists(flight_key(key)))

    async def wait(self, key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(flight_key(key))  # before the check: no release is missed
            while await self.held(key):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(left, _REDIS_RECHECK)
                )
            return True
        finally:
            await pubsub.aclose()


class TolerantFlight:
    """A single-flight whose store may fail mid-run (a state/ that fills up): a failed step acts
    as "no one else is fetching", so the caller fetches itself — a duplicate request at worst,
    never a lost answer and never a fetch repeated because its lease could not be released."""

    def __init__(
        self, flight: SingleFlight, faults: tuple[type[BaseException], ...] = (OSError,)
    ) -> None:
        self._flight = flight
        self._faults = faults

    async def acquire(self, key: str, ttl: float) -> Lease | None:
        try:
            return await self._flight.acquire(key, ttl)
        except self._faults:
            return Lease(key, "")  # an unstored lease: renew and release do nothing

    async def renew(self, lease: Lease, ttl: float) -> bool:
        if not lease.token:
            return True
        try:
            return await self._flight.renew(lease, ttl)
        except self._faults:
            return False

    async def release(self, lease: Lease) -> bool:
        if not lease.token:
            return True
        try:
            return await self._flight.release(lease)
        except self._faults:
            return False

    async def held(self, key: str) -> bool:
        try:
            return await self._flight.held(key)
        except self._faults:
            return False

    async def wait(self, key: str, timeout: float) -> bool:
        try:
            return await self._flight.wait(key, timeout)
        except self._faults:
            return True


@contextlib.asynccontextmanager
async def _kept(flight: SingleFlight, lease: Lease, ttl: float) -> AsyncIterator[None]:
    """Hold the lease while the body runs: renew every ttl/3, release at the end."""

    async def renew() -> None:
        while await flight.renew(lease, ttl):
            await asyncio.sleep(ttl / 3)

    async def first_renewal() -> None:
        await asyncio.sleep(ttl / 3)
        await renew()

    keeper = asyncio.create_task(first_renewal())
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keeper
        await flight.release(lease)


@record(frozen=False)
class FlightStats:
    led: int = 0
    followed: int = 0  # answered from what another owner fetched
    gave_up_waiting: int = 0


async def once(
    flight: SingleFlight,
    key: str,
    fetch: Callable[[], Awaitable[T]],
    read: Callable[[], Awaitable[T | None]],
    *,
    ttl: float,
    timeout: float,
    stats: FlightStats | None = None,
) -> T:
    """`fetch()` in at most one process at a time per key; the others wait and `read()`."""
    stats = stats if stats is not None else FlightStats()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        lease = await flight.acquire(key, ttl)
        if lease is not None:
            stats.led += 1
            async with _kept(flight, lease, ttl):
                return await fetch()
        if await flight.wait(key, left):
            value = await read()
            if value is not None:
                stats.followed += 1
                return value
    stats.gave_up_waiting += 1
    return await fetch()
