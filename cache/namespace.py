"""What every backend's namespace does the same way: envelopes in and out, fresh / stale / miss,
counters kept in memory and flushed in batches.

A backend subclasses `EnvelopeNamespace` and supplies byte storage (the `_read`, `_write`, …
hooks); the decoding, the checks, the classification and the counting are declared here once.
Counters are added to the backend's persistent ones on flush, so a read never costs a write.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from cache.backend import COUNTER_NAMES, CacheRead, Clock, NamespaceStats, ReadState, classify
from cache.envelope import Envelope, Status, loads
from cache.errors import CacheWriteFailed, CorruptEntry, LegacyEntry
from cache.keys import redact

log = logging.getLogger("tradescout.cache")

FLUSH_EVERY = 256
LAST_RUN_KEY = "last_run"
RUN_HISTORY_KEY = "runs"
RUN_HISTORY_LENGTH = 30
_STATE_COUNTER = {ReadState.FRESH: "hits", ReadState.STALE: "stale", ReadState.MISS: "misses"}


def parse_last_run(value: Any) -> dict[str, Any] | None:
    """A stored run snapshot, or None for anything that is not one (never raises)."""
    data = _parse_json(value)
    return data if isinstance(data, dict) else None


def parse_run_history(value: Any) -> list[dict[str, Any]]:
    data = _parse_json(value)
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _parse_json(value: Any) -> Any:
    if not isinstance(value, (str, bytes)):
        return None
    try:
        return loads(value)  # refuses planted deep nesting instead of recursing into it
    except (ValueError, UnicodeDecodeError):
        return None


def append_history(history: list[dict[str, Any]], snapshot: dict[str, Any]) -> str:
    """The run history with `snapshot` appended, as stored (the last few runs only)."""
    return json.dumps([*history, snapshot][-RUN_HISTORY_LENGTH:])


class EnvelopeNamespace(ABC):
    """One service's namespace on top of a backend's byte storage (see the module docstring)."""

    def __init__(self, service: str, *, clock: Clock) -> None:
        self._service = service
        self._clock = clock
        self.run_counters: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        self._pending = 0

    @property
    def service(self) -> str:
        return self._service

    # -- the backend's storage ------------------------------------------------------------------
    @abstractmethod
    def _read(self, key: str, *, touch: bool) -> bytes | None:
        """The stored bytes of `key` (None when absent or unreadable); `touch` marks it used."""

    @abstractmethod
    def _write(self, key: str, data: bytes, env: Envelope) -> None:
        """Store `data` (the encoded `env`); `CacheWriteFailed` when storage refuses."""

    @abstractmethod
    def _discard(self, key: str, data: bytes, reason: str) -> None:
        """Remove a bad entry so it is never served again (keeping its bytes where possible)."""

    @abstractmethod
    def _remove(self, key: str) -> bool: ...

    @abstractmethod
    def _keys(self) -> Iterator[str]: ...

    @abstractmethod
    def _count_entries(self) -> int: ...

    @abstractmethod
    def _persist_counters(self, pending: Mapping[str, int]) -> None:
        """Add `pending` to the persistent counters (and write any deferred bookkeeping)."""

    @abstractmethod
    def _stat_values(self) -> Mapping[str, Any]:
        """The persistent statistics by name (counters, last run, history)."""

    @abstractmethod
    def _save_run(self, snapshot: dict[str, Any]) -> None:
        """Store `snapshot` as the last run and append it to the history, atomically."""

    @property
    def rebuilt(self) -> str | None:
        """Why this namespace was started afresh this run (None when it was not)."""
        return None

    # -- reads ----------------------------------------------------------------------------------
    def _load(self, key: str, *, touch: bool, decode: bool, verify: bool = True) -> Envelope | None:
        data = self._read(key, touch=touch)
        if data is None:
            return None
        try:
            env = Envelope.from_bytes(data, decode=decode, verify=verify)
        except LegacyEntry:
            return None  # unprotected header: refetched, and the new entry overwrites it
        except CorruptEntry as exc:
            self._discard(key, data, str(exc))
            self._count("corrupt")
            return None
        if env.key != key or env.service != self._service:
            self._discard(key, data, "envelope key does not match its cache key")
            self._count("corrupt")
            return None
        return env

    def get(self, key: str) -> CacheRead:
        """Read and count: fresh → hits, stale → stale, absent → misses. The payload is decoded
        (and a payload that does not decode is quarantined here, not where it is used)."""
        result = classify(self._load(key, touch=True, decode=True), self._clock())
        self._count(_STATE_COUNTER[result.state])
        return result

    def get_fresh(self, key: str) -> Envelope | None:
        """`get` for a fresh `ok` entry only: read, counted as a hit and returned; anything else
        is None and counted nothing (the caller's `get` will count it)."""
        env = self._load(key, touch=True, decode=True)
        if env is None or env.status != "ok" or not env.is_fresh(self._clock()):
            return None
        self._count("hits")
        return env

    def peek(self, key: str) -> CacheRead:
        """Read without counting or touching: hash checked, header decoded, payload on use."""
        return classify(self._load(key, touch=False, decode=False), self._clock())

    def head(self, key: str) -> CacheRead:
        """`peek` without the hash check, for planning: whether an entry is there and until
        when, at no cost per payload byte. Its payload is not to be used (the read that uses
        it, `get` or `peek`, checks the hash)."""
        return classify(self._load(key, touch=False, decode=False, verify=False), self._clock())

    # -- writes ---------------------------------------------------------------------------------
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
            service=self._service,
            dataset=dataset,
            status=status,
            payload=payload,
            fetched_at=now,
            expires_at=now + ttl,
            request=redact(dict(request or {})),
            upstream=upstream,
        )
        self._write(key, data, env)
        self._count("writes")
        return env

    def delete(self, key: str) -> bool:
        return self._remove(key)

    def iter_keys(self) -> Iterator[str]:
        return self._keys()

    # -- counters -------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.run_counters[name] += n
        self._unflushed[name] += n
        self._pending += n
        if self._pending >= FLUSH_EVERY:
            self.flush_counters()

    def flush_counters(self) -> None:
        """Add this process's unflushed counts to the persistent ones. Statistics are best
        effort: a disk that refuses the write loses these counts, never a read or a run."""
        pending = {name: n for name, n in self._unflushed.items() if n}
        try:
            self._persist_counters(pending)
        except CacheWriteFailed as exc:
            log.warning("%s: cache counters not saved (%s)", self._service, exc.detail)
        self._unflushed.clear()
        self._pending = 0

    def lifetime_counters(self) -> dict[str, int]:
        """Persistent counters (flushed by every process that used this namespace)."""
        rows = self._stat_values()
        return {name: as_counter(rows.get(name)) for name in COUNTER_NAMES}

    def record_last_run(self, run_id: str) -> None:
        """Save this run's counters so `cache report` can show the last run's hit ratio
        (and keep the last few runs for a trend). Best effort, like every statistic."""
        self.flush_counters()
        snapshot: dict[str, Any] = {"run_id": run_id, "at": self._clock().isoformat()}
        snapshot.update({name: int(self.run_counters.get(name, 0)) for name in COUNTER_NAMES})
        try:
            self._save_run(snapshot)
        except CacheWriteFailed as exc:
            log.warning("%s: last run not recorded in the cache (%s)", self._service, exc.detail)

    def last_run(self) -> dict[str, Any] | None:
        return parse_last_run(self._stat_values().get(LAST_RUN_KEY))

    def run_history(self) -> list[dict[str, Any]]:
        return parse_run_history(self._stat_values().get(RUN_HISTORY_KEY))

    def stats(self) -> NamespaceStats:
        return NamespaceStats(self._count_entries(), dict(self.run_counters), self.rebuilt)


def as_counter(value: Any) -> int:
    """A stored counter as an int; anything planted that is not a number counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return 0
