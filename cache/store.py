"""The namespaced store: one diskcache directory per service under `data/cache/{service}/`.

Reads answer fresh / stale / miss. Stale entries stay until `cache optimize` removes them so a
run can serve them when the service is down (stale-if-error), flagged as stale. Counters are kept
in memory for the run and added to the namespace's persistent counters (atomic `incr`) on flush,
so a read never costs an extra write. Two processes may share a namespace: diskcache is SQLite in
WAL mode, and every write is one transaction.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE

from cache.envelope import CorruptEntry, Envelope, Status, payload_sha256, utcnow
from cache.keys import redact

Clock = Callable[[], datetime]

STAT_PREFIX = "__tradescout_stat__:"
LAST_RUN_KEY = STAT_PREFIX + "last_run"
COUNTER_NAMES = ("hits", "misses", "stale", "writes", "corrupt")
QUARANTINE_DIR = "_quarantine"
_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_SIZE_LIMIT = 512 * 1024 * 1024
SQLITE_TIMEOUT_S = 60.0


class UnsafeCacheEntry(CorruptEntry):
    """A row stored by something other than tradescout (e.g. a pickle): never deserialized."""


class SafeDisk(diskcache.Disk):
    """A diskcache Disk that only stores str keys and bytes values and refuses to unpickle."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, str):
            raise TypeError("cache keys are str")
        return super().put(key)  # type: ignore[no-any-return]

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
        if mode == MODE_PICKLE:
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


def check_namespace(service: str) -> str:
    if not _NAMESPACE_RE.fullmatch(service):
        raise ValueError(f"invalid cache namespace {service!r}")
    return service


def open_diskcache(directory: Path, size_limit: int = DEFAULT_SIZE_LIMIT) -> diskcache.Cache:
    """Open one namespace with the settings every tradescout process uses."""
    return diskcache.Cache(
        str(directory),
        timeout=SQLITE_TIMEOUT_S,
        disk=SafeDisk,
        size_limit=size_limit,
        eviction_policy="least-recently-used",
        tag_index=True,
        disk_min_file_size=1 << 20,
    )


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

    # -- reads ---------------------------------------------------------------------------------
    def _load(self, key: str, *, touch: bool) -> Envelope | None:
        try:
            raw = self._cache.get(key, default=None, retry=True) if touch else self._peek_raw(key)
        except UnsafeCacheEntry:
            self._quarantine(key, b"", "unsafe (pickled) entry")
            return None
        if raw is None:
            return None
        try:
            env = Envelope.from_bytes(raw)
        except CorruptEntry as exc:
            self._quarantine(key, raw, str(exc))
            return None
        if env.key != key:
            self._quarantine(key, raw, "envelope key does not match its cache key")
            return None
        return env

    def _peek_raw(self, key: str) -> bytes | None:
        """Read a row without updating its access time (diskcache's `get` touches it under LRU,
        which would make a planner's look-ahead count as a read)."""
        rows = self._cache._sql(  # diskcache has no public non-touching read
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
        ).fetchall()
        if not rows:
            return None
        mode, filename, value = rows[0]
        try:
            data = self._cache.disk.fetch(mode, filename, value, False)
        except OSError:  # the value file vanished (another process culled it)
            return None
        return data if isinstance(data, bytes) else None

    def classify(self, env: Envelope | None) -> CacheRead:
        if env is None:
            return CacheRead(ReadState.MISS)
        if env.is_fresh(self._clock()):
            return CacheRead(ReadState.FRESH, env)
        return CacheRead(ReadState.STALE, env)

    def get(self, key: str) -> CacheRead:
        """Read and count: fresh → hits, stale → stale, absent → misses."""
        result = self.classify(self._load(key, touch=True))
        name = {ReadState.FRESH: "hits", ReadState.STALE: "stale", ReadState.MISS: "misses"}
        self._count(name[result.state])
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
        """Write an envelope; `expires_at` is fixed now, from the dataset's TTL."""
        now = self._clock()
        env = Envelope(
            key=key,
            service=self.service,
            dataset=dataset,
            status=status,
            payload=payload,
            fetched_at=now,
            expires_at=now + ttl,
            sha256=payload_sha256(payload),
            request=redact(dict(request or {})),
            upstream=upstream,
        )
        self._cache.set(key, env.to_bytes(), tag=int(env.expires_at.timestamp()), retry=True)
        self._count("writes")
        return env

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key, retry=True))

    # -- counters --------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.run_counters[name] += n
        self._unflushed[name] += n
        if sum(self._unflushed.values()) >= 256:
            self.flush_counters()

    def flush_counters(self) -> None:
        """Add this process's unflushed counts to the persistent ones (atomic per counter)."""
        for name, n in list(self._unflushed.items()):
            if n:
                self._cache.incr(STAT_PREFIX + name, n, default=0, retry=True)
        self._unflushed.clear()

    def lifetime_counters(self) -> dict[str, int]:
        return {
            name: int(self._cache.get(STAT_PREFIX + name, default=0, retry=True) or 0)
            for name in COUNTER_NAMES
        }

    def record_last_run(self, run_id: str) -> None:
        """Save this run's counters so `cache report` can show the last run's hit ratio."""
        snapshot = {"run_id": run_id, "at": self._clock().isoformat(), **dict(self.run_counters)}
        self._cache.set(LAST_RUN_KEY, json.dumps(snapshot).encode(), retry=True)

    def last_run(self) -> dict[str, Any] | None:
        raw = self._cache.get(LAST_RUN_KEY, default=None, retry=True)
        if not isinstance(raw, bytes):
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- maintenance -----------------------------------------------------------------------------
    def iter_keys(self) -> Iterator[str]:
        """Entry keys (not counters)."""
        for key in self._cache.iterkeys():
            if isinstance(key, str) and not key.startswith(STAT_PREFIX):
                yield key

    def _quarantine(self, key: str, raw: bytes, reason: str) -> None:
        """Move a bad entry aside (never served again) and count it."""
        qdir = self.directory.parent / QUARANTINE_DIR / self.service
        qdir.mkdir(parents=True, exist_ok=True)
        stamp = self._clock().strftime("%Y%m%dT%H%M%S%f")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:120]
        (qdir / f"{stamp}_{safe}.bin").write_bytes(raw)
        (qdir / f"{stamp}_{safe}.why").write_text(f"{key}\n{reason}\n", encoding="utf-8")
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
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAMESPACE_RE.fullmatch(p.name) and (p / "cache.db").is_file()
        )

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()

    def __enter__(self) -> CacheRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
