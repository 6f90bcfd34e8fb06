"""The cache interface: what the hub and the pipeline use, and nothing a backend keeps inside.

A backend is a root that hands out one namespace per service. A namespace stores envelopes
(cache/envelope.py) under keys from cache/keys.py and answers fresh / stale / miss. The diskcache
backend (cache/disk/) is the default; cache/memory.py holds everything in the process; a shared
backend (Redis, issue 16) implements the same two protocols — the same envelope bytes, the same
keys, TTLs carried by `expires_at` — and nothing above this module changes.

Reads never fail: a missing, corrupt, legacy or unreadable entry is a miss (a backend that
loses its storage mid-run rebuilds it, or answers misses, and says so in `rebuilt`). A write
the storage refuses raises `cache.errors.CacheWriteFailed`; the caller keeps what it fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from cache.envelope import Envelope, Status

Clock = Callable[[], datetime]
COUNTER_NAMES = ("hits", "misses", "stale", "writes", "corrupt")
DEFAULT_SIZE_LIMIT = 512 * 1024 * 1024  # per namespace


class ReadState(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISS = "miss"


@dataclass(frozen=True)
class CacheRead:
    state: ReadState
    envelope: Envelope | None = None
    status_only: Status | None = None  # a `head` that read no envelope: only its status

    @property
    def status(self) -> Status | None:
        """The entry's status (None: no entry)."""
        return self.envelope.status if self.envelope is not None else self.status_only

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


MISS = CacheRead(ReadState.MISS)


def classify(env: Envelope | None, now: datetime) -> CacheRead:
    if env is None:
        return MISS
    return CacheRead(ReadState.FRESH if env.is_fresh(now) else ReadState.STALE, env)


@dataclass(frozen=True)
class NamespaceStats:
    """One namespace for the report's cache inventory: entries held and this run's counters."""

    entries: int
    run_counters: Mapping[str, int] = field(default_factory=dict)
    rebuilt: str | None = None  # why the namespace was started afresh this run, if it was

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entries": self.entries, **self.run_counters}
        if self.rebuilt is not None:
            out["rebuilt"] = self.rebuilt
        return out


class CacheNamespace(Protocol):
    """One service's namespace."""

    @property
    def service(self) -> str: ...

    def peek(self, key: str) -> CacheRead:
        """Read without counting (planning). The hash is checked; the payload is decoded only
        when `envelope.payload` is used."""
        ...

    def head(self, key: str) -> CacheRead:
        """`peek` without the hash check (planning: is it there, until when). Its payload is
        not to be used."""
        ...

    def get(self, key: str) -> CacheRead:
        """Read and count: fresh → hits, stale → stale, absent → misses."""
        ...

    def get_fresh(self, key: str) -> Envelope | None:
        """A fresh `ok` entry, read and counted as a hit; None (nothing counted) otherwise."""
        ...

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
        """Store an envelope expiring `ttl` from now; `CacheWriteFailed` if storage refuses."""
        ...

    def delete(self, key: str) -> bool: ...

    def iter_keys(self) -> Iterator[str]: ...

    def stats(self) -> NamespaceStats: ...

    def lifetime_counters(self) -> dict[str, int]: ...

    def flush_counters(self) -> None: ...

    def record_last_run(self, run_id: str) -> None:
        """Keep this run's counters for `cache report` (best effort: never raises)."""
        ...

    def close(self) -> None: ...


class CacheBackend(Protocol):
    """A root of namespaces, opened lazily and closed together."""

    def namespace(self, service: str) -> CacheNamespace: ...

    def existing_namespaces(self) -> list[str]:
        """Namespaces that hold data (opened this run or found in storage)."""
        ...

    @property
    def rebuilt(self) -> Mapping[str, str]:
        """Namespace → why it was started afresh (or is running without storage) this run."""
        ...

    def stats(self) -> Mapping[str, NamespaceStats]:
        """Per namespace held or opened this run: entries, run counters, any rebuild note."""
        ...

    def flush_counters(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> CacheBackend: ...

    def __exit__(self, *exc: object) -> None: ...
