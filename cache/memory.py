"""A cache backend that lives in the process: the same envelopes, keys and counters as the
disk, nothing written anywhere. It is what a run uses when it must leave no trace, and the proof
that the hub and the pipeline depend on the interface (cache/backend.py), not on diskcache.

Bounded like the disk: each namespace holds at most `max_bytes` of envelopes and drops its least
recently used entries beyond that.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from cache.backend import Clock, NamespaceStats
from cache.envelope import Envelope, utcnow
from cache.errors import CacheWriteFailed
from cache.namespace import (
    LAST_RUN_KEY,
    RUN_HISTORY_KEY,
    EnvelopeNamespace,
    append_history,
    parse_run_history,
)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class MemoryNamespace(EnvelopeNamespace):
    """One service's namespace as an ordered dict of envelope bytes (LRU order)."""

    def __init__(
        self, service: str, *, clock: Clock = utcnow, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        super().__init__(service, clock=clock)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._stats: dict[str, Any] = {}
        self.discarded: list[tuple[str, str]] = []  # (key, reason) of bad entries removed

    def _read(self, key: str, *, touch: bool) -> bytes | None:
        data = self._entries.get(key)
        if data is not None and touch:
            self._entries.move_to_end(key)
        return data

    def _write(self, key: str, data: bytes, env: Envelope) -> None:
        if len(data) > self._max_bytes:
            raise CacheWriteFailed(self.service, "entry larger than the namespace")
        self._remove(key)
        self._entries[key] = data
        self._bytes += len(data)
        while self._bytes > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)

    def _discard(self, key: str, data: bytes, reason: str) -> None:
        self.discarded.append((key, reason))
        self._remove(key)

    def _remove(self, key: str) -> bool:
        data = self._entries.pop(key, None)
        if data is None:
            return False
        self._bytes -= len(data)
        return True

    def _keys(self) -> Iterator[str]:
        return iter(list(self._entries))

    def _count_entries(self) -> int:
        return len(self._entries)

    def _persist_counters(self, pending: Mapping[str, int]) -> None:
        for name, n in pending.items():
            self._stats[name] = int(self._stats.get(name) or 0) + n

    def _stat_values(self) -> Mapping[str, Any]:
        return self._stats

    def _save_run(self, snapshot: dict[str, Any]) -> None:
        history = parse_run_history(self._stats.get(RUN_HISTORY_KEY))
        self._stats[LAST_RUN_KEY] = json.dumps(snapshot)
        self._stats[RUN_HISTORY_KEY] = append_history(history, snapshot)

    def store_raw(self, key: str, data: bytes) -> None:
        """Put bytes as they are (for tests that plant a damaged or foreign entry)."""
        self._remove(key)
        self._entries[key] = data
        self._bytes += len(data)

    def close(self) -> None:
        """Flush the counters; the entries stay (they live as long as the `MemoryCache`)."""
        self.flush_counters()


class MemoryCache:
    """Namespaces in memory, one per service, for as long as this object lives."""

    def __init__(self, *, clock: Clock = utcnow, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._clock = clock
        self._max_bytes = max_bytes
        self._namespaces: dict[str, MemoryNamespace] = {}

    def namespace(self, service: str) -> MemoryNamespace:
        ns = self._namespaces.get(service)
        if ns is None:
            ns = MemoryNamespace(service, clock=self._clock, max_bytes=self._max_bytes)
            self._namespaces[service] = ns
        return ns

    def existing_namespaces(self) -> list[str]:
        return sorted(name for name, ns in self._namespaces.items() if ns._entries)

    @property
    def rebuilt(self) -> dict[str, str]:
        return {}

    def stats(self) -> dict[str, NamespaceStats]:
        return {name: self.namespace(name).stats() for name in self.existing_namespaces()}

    def flush_counters(self) -> None:
        for ns in self._namespaces.values():
            ns.flush_counters()

    def close(self) -> None:
        for ns in self._namespaces.values():
            ns.close()

    def __enter__(self) -> MemoryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
