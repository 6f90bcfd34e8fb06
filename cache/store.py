"""The namespaced store: one diskcache directory per service under `data/cache/{service}/`.

Reads answer fresh / stale / miss. Stale entries stay until `cache optimize` removes them so a
run can serve them when the service is down (stale-if-error), flagged as stale. Counters are kept
in memory for the run and added to the namespace's persistent counters on flush (one atomic
`UPDATE ... SET value = value + n` per counter), so a read never costs an extra write.

Counters live in their own table (`TradescoutStats`) inside the namespace's `cache.db`, not as
cache rows: least-recently-used culling only ever removes entries, never the statistics.

Two processes may share a namespace: diskcache is SQLite in WAL mode, every write is one
`BEGIN IMMEDIATE` transaction with a 60 s busy timeout, and opening retries while another
process holds the write lock (diskcache opens its schema with a zero timeout).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from cache.atomic import atomic_write_bytes, atomic_write_text
from cache.envelope import CorruptEntry, Envelope, Status, expiry_tag, utcnow
from cache.keys import redact

Clock = Callable[[], datetime]

STAT_PREFIX = "__tradescout_stat__:"  # legacy: counters once were cache rows; still skipped
LAST_RUN_KEY = "last_run"
RUN_HISTORY_KEY = "runs"
RUN_HISTORY_LENGTH = 30
STATS_TABLE = "TradescoutStats"
COUNTER_NAMES = ("hits", "misses", "stale", "writes", "corrupt")
QUARANTINE_DIR = "_quarantine"
DB_NAME = "cache.db"
_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_SIZE_LIMIT = 512 * 1024 * 1024
SQLITE_TIMEOUT_S = 60.0
FLUSH_EVERY = 256

_CREATE_STATS = f"CREATE TABLE IF NOT EXISTS {STATS_TABLE} (name TEXT PRIMARY KEY, value)"
ADD_STAT_SQL = (
    f"INSERT INTO {STATS_TABLE}(name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)
_SET_STAT = f"INSERT OR REPLACE INTO {STATS_TABLE}(name, value) VALUES (?, ?)"


class UnsafeCacheEntry(CorruptEntry):
    """A row stored by something other than tradescout (e.g. a pickle): never deserialized."""


class SafeDisk(diskcache.Disk):
    """A diskcache Disk that only stores str keys and bytes values and refuses to unpickle."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, str):
            raise TypeError("cache keys are str")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeCacheEntry("pickled key refused")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        # bytes for envelopes, int for the atomic counters (`incr`); nothing that would pickle.
        if isinstance(value, bool) or not isinstance(value, (bytes, int)) or read:
            raise TypeError("cache values are bytes or int")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode not in (MODE_RAW, MODE_BINARY, MODE_TEXT):  # MODE_PICKLE above all
            raise UnsafeCacheEntry("pickled value refused")
        return super().fetch(mode, filename, value, read)


class ReadState(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISS = "miss"


@dataclass(frozen=True)
class CacheRead:
    state: ReadState
    envelope: Envelope | None = None

    @property
    def usable(self) -> bool:
        return self.envelope is not None

    @property
    def fresh(self) -> bool:
        return self.state is ReadState.FRESH

    @property
    def stale(self) -> bool:
        """Expired but present: only for stale-if-error, and the caller must say so."""
        return self.state is ReadState.STALE


def check_namespace(service: str) -> str:
    if not _NAMESPACE_RE.fullmatch(service):
        raise ValueError(f"invalid cache namespace {service!r}")
    return service


def is_namespace_name(name: str) -> bool:
    return _NAMESPACE_RE.fullmatch(name) is not None


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, diskcache.Timeout) or (
        isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    )


def open_diskcache(directory: Path, size_limit: int = DEFAULT_SIZE_LIMIT) -> diskcache.Cache:
    """Open one namespace with the settings every tradescout process uses.

    diskcache runs its schema statements with a zero busy timeout, so opening while another
    process is inside a write transaction can fail with "database is locked": retry for up to
    `SQLITE_TIMEOUT_S`, like every other statement.
    """
    deadline = time.monotonic() + SQLITE_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cache = diskcache.Cache(
                str(directory),
                timeout=SQLITE_TIMEOUT_S,
                disk=SafeDisk,
                size_limit=size_limit,
                eviction_policy="least-recently-used",
                tag_index=True,
                disk_min_file_size=1 << 20,
            )
            with cache.transact(retry=True):
                cache._sql(_CREATE_STATS)
            return cache
        except (sqlite3.OperationalError, diskcache.Timeout) as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def quarantine_path(cache_root: Path, service: str) -> Path:
    return cache_root / QUARANTINE_DIR / service


def write_quarantine(qdir: Path, label: str, raw: bytes, reason: str, now: datetime) -> Path:
    """Keep a bad entry's bytes (for a post-mortem) and why; returns the `.bin` path.

    The bytes are copied, never decoded: a pickle stays an inert file.
    """
    stamp = now.strftime("%Y%m%dT%H%M%S%f")
    digest = hashlib.sha256(label.encode("utf-8", "replace")).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", label)[:100]
    base = qdir / f"{stamp}_{safe}_{digest}"
    atomic_write_bytes(base.with_suffix(".bin"), raw)
    atomic_write_text(base.with_suffix(".why"), f"{label}\n{reason}\n")
    return base.with_suffix(".bin")


def raw_row_bytes(directory: Path, mode: int, filename: str | None, value: Any) -> bytes:
    """A row's stored bytes exactly as on disk (db blob or value file), without decoding."""
    if filename:
        with contextlib.suppress(OSError):
            return (directory / filename).read_bytes()
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return b"" if value is None else str(value).encode()


class NamespaceStore:
    """One service's cache namespace."""

    def __init__(
        self,
        directory: Path,
        service: str,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        clock: Clock = utcnow,
    ) -> None:
        self.service = check_namespace(service)
        self.directory = directory
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self._cache = open_diskcache(directory, size_limit_bytes)
        self.run_counters: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        self._touched: dict[int, tuple[str, float]] = {}
        self._pending = 0

    # -- reads ---------------------------------------------------------------------------------
    def _load(self, key: str, *, touch: bool) -> Envelope | None:
        row = self._row(key)
        if row is None:
            return None
        rowid, mode, filename, value = row
        try:
            raw = self._cache.disk.fetch(mode, filename, value, False)
        except UnsafeCacheEntry:
            self._quarantine(
                key, raw_row_bytes(self.directory, mode, filename, value), "unsafe (pickled) entry"
            )
            return None
        except OSError:  # the value file vanished (another process culled it)
            return None
        if not isinstance(raw, (bytes, str)):
            self._quarantine(key, str(raw).encode(), "not an envelope (a bare number)")
            return None
        data = raw.encode() if isinstance(raw, str) else raw
        try:
            env = Envelope.from_bytes(data)
        except CorruptEntry as exc:
            self._quarantine(key, data, str(exc))
            return None
        if env.key != key or env.service != self.service:
            self._quarantine(key, data, "envelope key does not match its cache key")
            return None
        if touch:
            self._touched[rowid] = (key, time.time())
        return env

    def _row(self, key: str) -> tuple[int, int, str | None, Any] | None:
        """The entry's row, read without a write lock and without moving its access time.

        diskcache's own `get` under least-recently-used takes the write lock on every read to
        move `access_time`; here counted reads remember the row and move its access time in the
        next counter flush (one transaction per `FLUSH_EVERY` operations), so LRU order is kept
        to within a flush and readers never queue behind writers.
        """
        rows = self._cache._sql(
            "SELECT rowid, mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
        ).fetchall()
        return rows[0] if rows else None

    def classify(self, env: Envelope | None) -> CacheRead:
        if env is None:
            return CacheRead(ReadState.MISS)
        if env.is_fresh(self._clock()):
            return CacheRead(ReadState.FRESH, env)
        return CacheRead(ReadState.STALE, env)

    def get(self, key: str) -> CacheRead:
        """Read and count: fresh → hits, stale → stale, absent → misses."""
        result = self.classify(self._load(key, touch=True))
        self._count(_STATE_COUNTER[result.state])
        return result

    def peek(self, key: str) -> CacheRead:
        """Read without counting (planning asks "is this covered?" before any fetch)."""
        return self.classify(self._load(key, touch=False))

    # -- writes --------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        payload: Any,
        *,
        dataset: str,
        ttl: timedelta,
        request: Mapping[str, Any] | None = None,
        status: Status = "ok",
        upstream: str = "live",
    ) -> Envelope:
        """Write an envelope; `expires_at` is fixed now, from the TTL the caller passes (the
        dataset's TTL, or its short negative TTL for a "not known here" answer)."""
        if ttl < timedelta(0):
            raise ValueError("a TTL cannot be negative")
        now = self._clock()
        env, data = Envelope.build(
            key=key,
            service=self.service,
            dataset=dataset,
            status=status,
            payload=payload,
            fetched_at=now,
            expires_at=now + ttl,
            request=redact(dict(request or {})),
            upstream=upstream,
        )
        tag = expiry_tag(env.expires_at)
        if self._touched:
            # Culling happens inside `set`: move this process's pending access times first,
            # in the same transaction, so its own reads always count for LRU.
            with self._cache.transact(retry=True):
                self._apply_touches()
                self._cache.set(key, data, tag=tag, retry=True)
        else:
            self._cache.set(key, data, tag=tag, retry=True)
        self._count("writes")
        return env

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key, retry=True))

    # -- counters --------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.run_counters[name] += n
        self._unflushed[name] += n
        self._pending += n
        if self._pending >= FLUSH_EVERY:
            self.flush_counters()

    def flush_counters(self) -> None:
        """Add this process's unflushed counts to the persistent ones and move the access time
        of the rows read since the last flush (one transaction)."""
        pending = [(name, n) for name, n in self._unflushed.items() if n]
        if pending or self._touched:
            with self._cache.transact(retry=True):
                for name, n in pending:
                    self._cache._sql(ADD_STAT_SQL, (name, n))
                self._apply_touches()
        self._unflushed.clear()
        self._pending = 0

    def _apply_touches(self) -> None:
        """Move the access time of rows read since the last write (inside a transaction)."""
        if self._touched:
            self._cache._con.executemany(
                "UPDATE Cache SET access_time = ? WHERE rowid = ? AND key = ? AND raw = 1",
                [(at, rowid, key) for rowid, (key, at) in self._touched.items()],
            )
            self._touched.clear()

    def _stat_rows(self) -> dict[str, Any]:
        return dict(self._cache._sql(f"SELECT name, value FROM {STATS_TABLE}").fetchall())

    def lifetime_counters(self) -> dict[str, int]:
        """Persistent counters (flushed by every process that used this namespace)."""
        rows = self._stat_rows()
        return {name: int(rows.get(name) or 0) for name in COUNTER_NAMES}

    def record_last_run(self, run_id: str) -> None:
        """Save this run's counters so `cache report` can show the last run's hit ratio
        (and keep the last few runs for a trend)."""
        self.flush_counters()
        snapshot: dict[str, Any] = {"run_id": run_id, "at": self._clock().isoformat()}
        snapshot.update({name: int(self.run_counters.get(name, 0)) for name in COUNTER_NAMES})
        with self._cache.transact(retry=True):
            history = self.run_history()
            history = [*history, snapshot][-RUN_HISTORY_LENGTH:]
            self._cache._sql(_SET_STAT, (LAST_RUN_KEY, json.dumps(snapshot)))
            self._cache._sql(_SET_STAT, (RUN_HISTORY_KEY, json.dumps(history)))

    def last_run(self) -> dict[str, Any] | None:
        return parse_last_run(self._stat_rows().get(LAST_RUN_KEY))

    def run_history(self) -> list[dict[str, Any]]:
        return parse_run_history(self._stat_rows().get(RUN_HISTORY_KEY))

    # -- maintenance -----------------------------------------------------------------------------
    def iter_keys(self) -> Iterator[str]:
        """Entry keys, straight from SQL: a pickled key is skipped, never unpickled."""
        rows = self._cache._sql("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid").fetchall()
        for (key,) in rows:
            if isinstance(key, str) and not key.startswith(STAT_PREFIX):
                yield key

    def _quarantine(self, key: str, raw: bytes, reason: str) -> None:
        """Move a bad entry aside (never served again) and count it."""
        write_quarantine(
            quarantine_path(self.directory.parent, self.service), key, raw, reason, self._clock()
        )
        with contextlib.suppress(Exception):
            self._cache.delete(key, retry=True)
        self._count("corrupt")

    @property
    def raw(self) -> diskcache.Cache:
        """The underlying diskcache (for the cache package's report/optimizer only)."""
        return self._cache

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.flush_counters()
        self._cache.close()

    def __enter__(self) -> NamespaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STATE_COUNTER = {ReadState.FRESH: "hits", ReadState.STALE: "stale", ReadState.MISS: "misses"}


def parse_last_run(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, (str, bytes)):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_run_history(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, (str, bytes)):
        return []
    try:
        data = json.loads(value)
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


class CacheRoot:
    """All namespaces under one `data/cache/` directory; opened lazily, closed together."""

    def __init__(
        self,
        root: Path,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        clock: Clock = utcnow,
    ) -> None:
        self.root = root
        self._size_limit = size_limit_bytes
        self._clock = clock
        self._open: dict[str, NamespaceStore] = {}

    def namespace(self, service: str) -> NamespaceStore:
        check_namespace(service)
        store = self._open.get(service)
        if store is None:
            store = NamespaceStore(
                self.root / service,
                service,
                size_limit_bytes=self._size_limit,
                clock=self._clock,
            )
            self._open[service] = store
        return store

    def existing_namespaces(self) -> list[str]:
        """Namespaces on disk (directories holding a diskcache database)."""
        return existing_namespaces(self.root)

    def flush_counters(self) -> None:
        for store in self._open.values():
            store.flush_counters()

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()

    def __enter__(self) -> CacheRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def existing_namespaces(root: Path) -> list[str]:
    """Directories under `root` that are namespaces: a valid name holding a `cache.db`."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and is_namespace_name(p.name) and (p / DB_NAME).is_file()
    )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
