"""The in-memory backend: the same envelope rules as the disk, bounded, counted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cache.backend import ReadState
from cache.errors import CacheWriteFailed
from cache.memory import MemoryCache
from tests.cache.test_store import T0, FakeClock, key_for


def test_fresh_stale_miss_and_counters_on_the_injected_clock() -> None:
    clock = FakeClock(T0)
    with MemoryCache(clock=clock) as cache:
        ns = cache.namespace("fmp")
        ns.put(key_for("A"), {"a": 1}, dataset="profile", ttl=timedelta(hours=1))
        assert ns.get(key_for("A")).fresh
        clock.advance(timedelta(hours=1))
        assert ns.get(key_for("A")).stale
        assert ns.get(key_for("B")).state is ReadState.MISS
        ns.record_last_run("run-1")
        assert ns.lifetime_counters() == {
            "hits": 1,
            "misses": 1,
            "stale": 1,
            "writes": 1,
            "corrupt": 0,
        }
        last = ns.last_run()
        assert last is not None and last["run_id"] == "run-1"
        assert [r["run_id"] for r in ns.run_history()] == ["run-1"]
        assert cache.stats()["fmp"].to_json() == {
            "entries": 1,
            "writes": 1,
            "hits": 1,
            "stale": 1,
            "misses": 1,
        }


def test_a_namespace_drops_its_least_recently_used_entries_beyond_its_bound() -> None:
    with MemoryCache(max_bytes=20_000) as cache:
        ns = cache.namespace("fred")
        for i in range(30):
            ns.put(key_for(f"S{i}"), {"v": "x" * 1000}, dataset="series", ttl=timedelta(days=1))
            assert ns.get(key_for("S0")).fresh  # read: kept as recently used
        keys = set(ns.iter_keys())
        assert key_for("S0") in keys and key_for("S29") in keys
        assert key_for("S1") not in keys and len(keys) < 30
        with pytest.raises(CacheWriteFailed):
            ns.put(key_for("HUGE"), {"v": "x" * 30_000}, dataset="series", ttl=timedelta(days=1))


def test_a_foreign_or_edited_entry_is_discarded_never_served() -> None:
    with MemoryCache() as cache:
        ns = cache.namespace("fmp")
        env = ns.put(key_for("A"), {"a": 1}, dataset="profile", ttl=timedelta(days=1))
        ns.store_raw(key_for("B"), env.to_bytes())  # A's envelope under B's key
        ns.store_raw(key_for("C"), b"\x80\x04pickle")
        assert ns.peek(key_for("B")).state is ReadState.MISS
        assert ns.get(key_for("C")).state is ReadState.MISS
        assert [reason for _, reason in ns.discarded] == [
            "envelope key does not match its cache key",
            "not a tradescout envelope",
        ]
        assert sorted(ns.iter_keys()) == [key_for("A")]
