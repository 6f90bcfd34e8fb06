"""The shared cache: the same envelopes in one Redis for a team, behind the local disk cache.

In Redis an entry is one string, `tradescout:cache:{upstream}:{service}:{key}` → the envelope's
bytes: the very bytes the disk stores (the same sha256 over header and payload, the same key
from `cache.keys.derive_key`), so any machine checks what another wrote exactly as it checks its
own disk. Namespaces are per service and per upstream (sandbox answers never sit beside live
ones). An entry expires in Redis at its `expires_at` plus the stale window (`PX`), never at
`expires_at`: past its freshness it is still what a run serves, flagged stale, when the service
is down (stale-if-error), which Redis' own expiry must not take away.

Why the local disk cache stays as a first level:
* a warm run reads its entries from disk at the speed it always had (no round trip per read);
* when Redis goes away mid-run nothing is lost: answers go on being written to disk, entries
  this machine has seen are still served (fresh, or stale when a service is down);
* a Redis evicting under memory pressure costs a refetch only where no machine has a copy.
How a first-level hit stays honest: the first level holds the same envelope bytes, so an entry
read there carries the `fetched_at`/`expires_at` it was stored with — it is fresh only until the
moment the shared entry was; when it is stale or absent the shared level is asked, and the
fresher of the two is served and copied down — on a peek as on a read, so an entry a run planned
around or waited for is on its own disk should Redis go before the report is built (a read-only
cache, a dry run's, copies nothing). Nothing ever extends an entry's freshness.

Statistics (hits, misses, last runs) stay local: they describe this machine's runs, and `cache
report` / `verify` / `optimize` work on the local level only.

Redis failures never stop a run: the first error (unreachable, timeout, out of memory, read-only
replica) switches this process to the local level for the rest of the run, and `sharing()` says
since when and why. A planted value that is not a string or is larger than `MAX_VALUE_BYTES` is
a miss (never read whole); one that is not a valid envelope is a miss and is removed.

The connection policy is declared here for the coordination layer too (`services.coord`): cache
imports nothing of `services`, so the one declaration sits where both can import it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cache import DEFAULT_STALE_WINDOW
from cache.backend import DEFAULT_SIZE_LIMIT, Clock, NamespaceStats
from cache.disk.store import DiskCache, DiskNamespace
from cache.envelope import Envelope, utcnow
from cache.errors import CacheWriteFailed
from cache.namespace import EnvelopeNamespace

if TYPE_CHECKING:
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

log = logging.getLogger("tradescout.cache")

TIMEOUT_SECONDS = 1.0
PREFIX = "tradescout:cache"
MAX_VALUE_BYTES = 64 * 1024 * 1024  # above the largest dataset cap (32 MB) plus its header

# A string no larger than ARGV[1] bytes, or false (absent, planted as another type, too large).
_GET_CAPPED = """
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return false end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('GET', KEYS[1])
"""
# Delete only the bytes that were found bad (another machine may have rewritten the key since).
_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# -- the connection policy (shared with services.coord) -------------------------------------------
def down_errors() -> tuple[type[BaseException], ...]:
    """What "Redis is unreachable or unusable" looks like: any RedisError (connection, timeout,
    a server that is loading, read-only or out of memory) and the OS errors beneath them."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def _options() -> dict[str, Any]:
    """Short timeouts, no silent retries: the first failure switches the run to local backends,
    so a Redis that stops answering costs a run a second, not a stall."""
    from redis.backoff import NoBackoff

    return {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "retry_on_timeout": False,
        "health_check_interval": 0,
        "_backoff": NoBackoff(),
    }


def connect_sync(url: str) -> Redis:
    from redis import Redis
    from redis.retry import Retry

    options = _options()
    return Redis.from_url(url, retry=Retry(options.pop("_backoff"), 0), **options)


def connect_async(url: str) -> AsyncRedis:
    from redis.asyncio import Redis as AsyncRedis
    from redis.retry import Retry

    options = _options()
    return AsyncRedis.from_url(url, retry=Retry(options.pop("_backoff"), 0), **options)


def where(url: str) -> str:
    """`redis://host:port/db` without user or password (for messages and reports)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "redis (unparseable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or 'redis'}://{host}:{port}{parts.path or ''}"


# -- keys -----------------------------------------------------------------------------------------
def upstream_of(key: str) -> str:
    """The upstream a cache key belongs to (`derive_key` prefixes every non-live key `mode|`)."""
    mode, sep, _rest = key.partition("|")
    return mode if sep and ":" not in mode else "live"


def redis_key(service: str, key: str) -> str:
    return f"{PREFIX}:{upstream_of(key)}:{service}:{key}"


def expiry_ms(env: Envelope, now: datetime, stale_window: timedelta) -> int:
    """Milliseconds the shared entry lives: until `expires_at` plus the stale window (pure)."""
    return int(((env.expires_at + stale_window) - now).total_seconds() * 1000)


# -- the shared level -----------------------------------------------------------------------------
@dataclass
class Degradation:
    """Whether a process still uses Redis, and since when and why it stopped (for the report).
    Only the first fault counts: a run never flips back, so there are not two views of it."""

    where: str  # redis://host:port/db, never a password
    degraded_at: datetime | None = None
    cause: str | None = None

    @property
    def shared(self) -> bool:
        return self.degraded_at is None

    def degrade(self, exc: BaseException, now: datetime) -> bool:
        """Record the first fault (True when this was it). The cause is the exception's class,
        never str(exc): that may quote the URL."""
        if self.degraded_at is not None:
            return False
        self.degraded_at = now
        self.cause = exc.__class__.__name__
        return True

    def unreachable(self) -> str:
        """`unreachable from {when} ({cause})`: what each report note says of a fallback."""
        assert self.degraded_at is not None
        return f"unreachable from {self.degraded_at.isoformat(timespec='seconds')} ({self.cause})"


@dataclass
class CacheShare(Degradation):
    """Whether this run's cache was shared, and since when it was not (for the report)."""

    def note(self) -> str | None:
        if self.degraded_at is None:
            return None
        return (
            f"The shared cache at {self.where} was {self.unreachable()}: this run read and wrote "
            "the local cache only."
        )


class SharedStore:
    """The Redis connection of the cache, with the switch to "local only" on the first fault."""

    def __init__(
        self, url: str, *, clock: Clock, stale_window: timedelta, client: Redis | None = None
    ) -> None:
        self.share = CacheShare(where(url))
        self.stale_window = stale_window
        self._clock = clock
        self._down = down_errors()
        self._redis: Redis | None = None
        unusable: tuple[type[BaseException], ...] = (ValueError, *self._down)
        try:
            self._redis = client if client is not None else connect_sync(url)
            self._get = self._redis.register_script(_GET_CAPPED)
            self._delete_if_same = self._redis.register_script(_DELETE_IF_SAME)
        except unusable as exc:  # a URL redis-py cannot use
            self._degrade(exc)

    @property
    def active(self) -> bool:
        return self._redis is not None and self.share.shared

    def _degrade(self, exc: BaseException) -> None:
        if self.share.degrade(exc, self._clock()):
            log.warning(
                "shared cache at %s unusable (%s): local only", self.share.where, self.share.cause
            )

    def ping(self) -> None:
        if self._redis is not None and self.share.shared:
            try:
                self._redis.ping()
            except self._down as exc:
                self._degrade(exc)

    def get(self, rkey: str) -> bytes | None:
        if not self.active:
            return None
        try:
            data = self._get(keys=[rkey], args=[MAX_VALUE_BYTES])
        except self._down as exc:
            self._degrade(exc)
            return None
        return data if isinstance(data, bytes) else None

    def put(self, rkey: str, data: bytes, env: Envelope) -> bool:
        """Store the bytes until `expires_at` + the stale window; False when not stored."""
        if not self.active or self._redis is None:
            return False
        ms = expiry_ms(env, self._clock(), self.stale_window)
        if ms <= 0 or len(data) > MAX_VALUE_BYTES:
            return False
        try:
            self._redis.set(rkey, data, px=ms)
        except self._down as exc:
            self._degrade(exc)
            return False
        return True

    def delete(self, rkey: str, data: bytes | None = None) -> bool:
        if not self.active or self._redis is None:
            return False
        try:
            if data is None:
                return bool(self._redis.delete(rkey))
            return bool(self._delete_if_same(keys=[rkey], args=[data]))
        except self._down as exc:
            self._degrade(exc)
            return False

    def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(*self._down):
                self._redis.close()
            self._redis = None


class SharedNamespace(EnvelopeNamespace):
    """One service's namespace: the local disk namespace first, the shared store behind it.

    Reads, checks and counting are `EnvelopeNamespace`'s (counted once, here); the counters and
    run history are kept in the local namespace's statistics."""

    def __init__(
        self, local: DiskNamespace, store: SharedStore, *, clock: Clock, copy_down: bool = True
    ) -> None:
        super().__init__(local.service, clock=clock)
        self._local = local
        self._store = store
        self._copy_down = copy_down
        self._last: tuple[str, bytes] | None = None  # the shared bytes just read, for copying

    # -- reads: the fresher of the two levels -----------------------------------------------------
    def _load(self, key: str, *, touch: bool, decode: bool, verify: bool = True) -> Envelope | None:
        local = self._local._load(key, touch=touch, decode=decode, verify=verify)
        if local is not None and local.is_fresh(self._clock()):
            return local
        shared = super()._load(key, touch=touch, decode=decode, verify=verify)
        if shared is None or (local is not None and shared.expires_at <= local.expires_at):
            return local
        last = self._last
        if self._copy_down and verify and last is not None and last[0] == key:
            try:  # copied down, so the next read is local
                self._local._write(key, last[1], shared)
            except CacheWriteFailed as exc:
                log.debug("%s: shared entry not copied to the local cache (%s)", self.service, exc)
        self._last = None
        return shared

    def _read(self, key: str, *, touch: bool) -> bytes | None:
        data = self._store.get(redis_key(self.service, key))
        self._last = (key, data) if data is not None else None
        return data

    # -- writes: both levels ----------------------------------------------------------------------
    def _write(self, key: str, data: bytes, env: Envelope) -> None:
        shared = self._store.put(redis_key(self.service, key), data, env)
        try:
            self._local._write(key, data, env)
        except CacheWriteFailed:
            if not shared:
                raise  # stored nowhere: the hub keeps the answer in memory and says so

    def _discard(self, key: str, data: bytes, reason: str) -> None:
        log.warning("%s: shared entry %s removed (%s)", self.service, key[:80], reason)
        self._store.delete(redis_key(self.service, key), data)

    def _remove(self, key: str) -> bool:
        shared = self._store.delete(redis_key(self.service, key))
        return self._local._remove(key) or shared

    # -- what stays local -------------------------------------------------------------------------
    def _keys(self) -> Iterator[str]:
        return self._local._keys()

    def _count_entries(self) -> int:
        return self._local._count_entries()

    def _persist_counters(self, pending: Mapping[str, int]) -> None:
        self._local._persist_counters(pending)

    def _stat_values(self) -> Mapping[str, Any]:
        return self._local._stat_values()

    def _save_run(self, snapshot: dict[str, Any]) -> None:
        self._local._save_run(snapshot)

    @property
    def rebuilt(self) -> str | None:
        return self._local.rebuilt

    def close(self) -> None:
        self.flush_counters()
        self._local.close()


class SharedCache:
    """The disk cache of the data root in front of one Redis (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        url: str,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        clock: Clock = utcnow,
        stale_window: timedelta = DEFAULT_STALE_WINDOW,
        client: Redis | None = None,
        read_only: bool = False,
    ) -> None:
        self.local = DiskCache(directory, size_limit_bytes=size_limit_bytes, clock=clock)
        self._copy_down = not read_only
        self.store = SharedStore(url, clock=clock, stale_window=stale_window, client=client)
        self.store.ping()
        self._clock = clock
        self._open: dict[str, SharedNamespace] = {}

    def namespace(self, service: str) -> SharedNamespace:
        ns = self._open.get(service)
        if ns is None:
            ns = SharedNamespace(
                self.local.namespace(service),
                self.store,
                clock=self._clock,
                copy_down=self._copy_down,
            )
            self._open[service] = ns
        return ns

    def existing_namespaces(self) -> list[str]:
        return sorted({*self.local.existing_namespaces(), *self._open})

    @property
    def rebuilt(self) -> dict[str, str]:
        return self.local.rebuilt

    def stats(self) -> dict[str, NamespaceStats]:
        names = sorted({*self.local.existing_namespaces(), *self.local.rebuilt})
        return {name: self.namespace(name).stats() for name in names}

    def sharing(self) -> dict[str, Any]:
        """For the report: "redis" while shared, "local" once it fell back, and why."""
        share = self.store.share
        return {"cache": "redis" if share.shared else "local", "note": share.note()}

    def flush_counters(self) -> None:
        for ns in self._open.values():
            ns.flush_counters()

    def close(self) -> None:
        for ns in self._open.values():
            ns.close()
        self._open.clear()
        self.local.close()
        self.store.close()

    def __enter__(self) -> SharedCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
