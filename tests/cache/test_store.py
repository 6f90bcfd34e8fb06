"""The namespaced store: fresh / stale / miss, TTLs on an injected clock, counters, LRU, safety."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import diskcache
import pytest

from cache.backend import ReadState
from cache.disk.scan import scan_namespace
from cache.disk.store import DiskCache, DiskNamespace
from cache.envelope import Envelope
from cache.keys import derive_key

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """An injected clock: tests move time, nothing sleeps."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def key_for(symbol: str, service: str = "fmp", dataset: str = "profile") -> str:
    return derive_key(service, dataset, {"symbol": symbol})


def cache_rows(directory: Path) -> dict[str, tuple[float, float]]:
    """key -> (store_time, access_time), read with a plain SQLite connection."""
    con = sqlite3.connect(directory / "cache.db")
    try:
        rows = con.execute("SELECT key, store_time, access_time FROM Cache").fetchall()
    finally:
        con.close()
    return {k: (s, a) for k, s, a in rows}


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def store(tmp_path: Path, clock: FakeClock) -> DiskNamespace:
    s = DiskNamespace(tmp_path / "fmp", "fmp", clock=clock)
    yield s  # type: ignore[misc]
    s.close()


def test_put_then_get_is_a_fresh_hit(store: DiskNamespace) -> None:
    key = key_for("AAPL")
    written = store.put(
        key, [{"symbol": "AAPL", "sector": "Technology"}], dataset="profile", ttl=timedelta(days=7)
    )
    read = store.get(key)
    assert read.state is ReadState.FRESH and read.fresh and read.usable
    assert read.envelope == written
    assert read.envelope.payload == [{"symbol": "AAPL", "sector": "Technology"}]
    assert store.run_counters == {"writes": 1, "hits": 1}


def test_absent_key_is_a_miss(store: DiskNamespace) -> None:
    read = store.get(key_for("MSFT"))
    assert read.state is ReadState.MISS and not read.usable and read.envelope is None
    assert store.run_counters["misses"] == 1


def test_ttl_expiry_with_injected_clock(store: DiskNamespace, clock: FakeClock) -> None:
    key = key_for("AAPL")
    env = store.put(key, {"p": 1}, dataset="profile", ttl=timedelta(minutes=15))
    assert env.fetched_at == T0 and env.expires_at == T0 + timedelta(minutes=15)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert store.get(key).state is ReadState.FRESH
    clock.advance(timedelta(seconds=1))  # exactly at expires_at: no longer fresh
    assert store.get(key).state is ReadState.STALE
    assert store.run_counters["hits"] == 1 and store.run_counters["stale"] == 1


def test_expires_at_is_fixed_at_write_time(store: DiskNamespace, clock: FakeClock) -> None:
    key = key_for("AAPL")
    store.put(key, {"p": 1}, dataset="profile", ttl=timedelta(hours=1))
    clock.advance(timedelta(minutes=30))
    assert store.get(key).envelope.expires_at == T0 + timedelta(hours=1)  # type: ignore[union-attr]


def test_stale_if_error_returns_the_envelope_flagged_stale(
    store: DiskNamespace, clock: FakeClock
) -> None:
    key = key_for("NVDA")
    store.put(key, {"price": 100}, dataset="profile", ttl=timedelta(days=1))
    clock.advance(timedelta(days=3))
    read = store.get(key)
    assert read.stale and not read.fresh and read.usable
    assert read.envelope is not None and read.envelope.payload == {"price": 100}
    assert not read.envelope.is_fresh(clock())
    # Stale entries stay (only `cache optimize` removes them), so they can be served again.
    assert store.peek(key).stale


def test_negative_results_get_the_short_ttl(store: DiskNamespace, clock: FakeClock) -> None:
    unknown, known = key_for("ZZZZ"), key_for("AAPL")
    neg = store.put(unknown, [], dataset="profile", ttl=timedelta(hours=6), status="negative")
    store.put(known, [{"symbol": "AAPL"}], dataset="profile", ttl=timedelta(days=7))
    assert neg.status == "negative" and neg.expires_at == T0 + timedelta(hours=6)
    clock.advance(timedelta(hours=5))
    read = store.get(unknown)
    assert read.fresh and read.envelope is not None and read.envelope.status == "negative"
    clock.advance(timedelta(hours=1))
    assert store.get(unknown).stale
    assert store.get(known).fresh


def test_negative_ttl_is_refused(store: DiskNamespace) -> None:
    with pytest.raises(ValueError):
        store.put(key_for("A"), {}, dataset="profile", ttl=timedelta(seconds=-1))


def test_peek_neither_counts_nor_touches(store: DiskNamespace, tmp_path: Path) -> None:
    key = key_for("AAPL")
    store.put(key, {"p": 1}, dataset="profile", ttl=timedelta(days=1))
    before = cache_rows(tmp_path / "fmp")[key]
    assert store.peek(key).fresh
    assert store.peek(key_for("NOPE")).state is ReadState.MISS
    assert cache_rows(tmp_path / "fmp")[key] == before
    assert store.run_counters == {"writes": 1}
    store.get(key)
    store.flush_counters()  # counted reads move the LRU clock with the next flush or write
    store_time, access_time = cache_rows(tmp_path / "fmp")[key]
    assert access_time > store_time


def test_counters_persist_per_namespace_across_processes_and_runs(
    tmp_path: Path, clock: FakeClock
) -> None:
    directory = tmp_path / "fmp"
    first = DiskNamespace(directory, "fmp", clock=clock)
    first.put(key_for("A"), 1, dataset="profile", ttl=timedelta(days=1))
    first.get(key_for("A"))
    first.get(key_for("B"))
    first.record_last_run("run-1")
    first.close()

    second = DiskNamespace(directory, "fmp", clock=clock)
    assert second.lifetime_counters() == {
        "hits": 1,
        "misses": 1,
        "stale": 0,
        "writes": 1,
        "corrupt": 0,
    }
    assert second.last_run() == {
        "run_id": "run-1",
        "at": T0.isoformat(),
        "hits": 1,
        "misses": 1,
        "stale": 0,
        "writes": 1,
        "corrupt": 0,
    }
    second.get(key_for("A"))
    second.get(key_for("A"))
    second.record_last_run("run-2")
    assert second.lifetime_counters()["hits"] == 3
    last = second.last_run()
    assert last is not None and last["run_id"] == "run-2" and last["hits"] == 2
    assert [r["run_id"] for r in second.run_history()] == ["run-1", "run-2"]
    other = DiskNamespace(tmp_path / "yahoo_finance", "yahoo_finance", clock=clock)
    assert other.lifetime_counters()["hits"] == 0  # per namespace
    other.close()
    second.close()


def test_unflushed_counters_are_flushed_on_close(tmp_path: Path) -> None:
    s = DiskNamespace(tmp_path / "fmp", "fmp")
    for _ in range(3):
        s.get(key_for("X"))
    s.close()
    reopened = DiskNamespace(tmp_path / "fmp", "fmp")
    assert reopened.lifetime_counters()["misses"] == 3
    reopened.close()


def test_size_limit_culls_least_recently_used(tmp_path: Path, clock: FakeClock) -> None:
    limit = 256 * 1024
    s = DiskNamespace(tmp_path / "fmp", "fmp", size_limit_bytes=limit, clock=clock)
    blob = "x" * 2000
    hot = key_for("HOT")
    s.put(hot, {"blob": blob}, dataset="profile", ttl=timedelta(days=1))
    for i in range(600):  # ~1.2 MB written into a 256 kB namespace
        s.put(
            key_for(f"T{i:04d}"), {"blob": blob, "i": i}, dataset="profile", ttl=timedelta(days=1)
        )
        if i % 20 == 0:
            assert s.get(hot).fresh  # reading keeps it recently used
    s.flush_counters()
    volume = scan_namespace(tmp_path / "fmp", decode=False).volume
    assert volume <= limit + 64 * 1024, volume
    keys = set(s.iter_keys())
    assert hot in keys
    assert key_for("T0000") not in keys  # the oldest unread entries went first
    assert key_for("T0599") in keys
    assert 50 < len(keys) < 300
    # counters are not cache rows: culling never removes them
    s.flush_counters()
    assert s.lifetime_counters()["writes"] == 601
    s.close()


def test_entries_are_json_envelopes_without_secrets(store: DiskNamespace, tmp_path: Path) -> None:
    key = derive_key("fmp", "profile", {"symbol": "AAPL", "apikey": "TOPSECRET42"})
    store.put(
        key,
        [{"symbol": "AAPL"}],
        dataset="profile",
        ttl=timedelta(days=7),
        request={
            "path": "/stable/profile",
            "symbol": "AAPL",
            "apikey": "TOPSECRET42",
            "url": "https://x.test/stable/profile?symbol=AAPL&apikey=TOPSECRET42",
        },
    )
    store.close()
    for path in (tmp_path / "fmp").rglob("*"):
        if path.is_file():
            assert b"TOPSECRET42" not in path.read_bytes(), path
    raw = diskcache.Cache(str(tmp_path / "fmp"))
    try:
        data = raw.get(key)
    finally:
        raw.close()
    env = Envelope.from_bytes(data)
    assert env.request["apikey"] == "***"
    assert data.startswith(b"{")  # JSON, not pickle


def test_corrupt_bytes_are_quarantined_on_read(store: DiskNamespace, tmp_path: Path) -> None:
    key = key_for("AAPL")
    store.put(key, {"p": 1}, dataset="profile", ttl=timedelta(days=1))
    con = sqlite3.connect(tmp_path / "fmp" / "cache.db")
    con.execute("UPDATE Cache SET value = ? WHERE key = ?", (b"{not json", key))
    con.commit()
    con.close()
    assert store.get(key).state is ReadState.MISS
    assert store.run_counters["corrupt"] == 1
    assert key not in set(store.iter_keys())  # never served again
    qdir = tmp_path / "_quarantine" / "fmp"
    bins = list(qdir.glob("*.bin"))
    assert len(bins) == 1 and bins[0].read_bytes() == b"{not json"
    assert "not a tradescout envelope" in next(qdir.glob("*.why")).read_text()


def test_hash_mismatch_is_quarantined_on_peek(store: DiskNamespace, tmp_path: Path) -> None:
    key = key_for("AAPL")
    store.put(key, {"price": 1}, dataset="profile", ttl=timedelta(days=1))
    con = sqlite3.connect(tmp_path / "fmp" / "cache.db")
    (value,) = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchone()
    tampered = bytes(value).replace(b'"price":1', b'"price":9')
    con.execute("UPDATE Cache SET value = ? WHERE key = ?", (tampered, key))
    con.commit()
    con.close()
    assert store.peek(key).state is ReadState.MISS
    assert (
        "envelope sha256 mismatch"
        in next((tmp_path / "_quarantine" / "fmp").glob("*.why")).read_text()
    )


def test_envelope_under_the_wrong_key_is_not_served(store: DiskNamespace, tmp_path: Path) -> None:
    a, b = key_for("AAPL"), key_for("MSFT")
    store.put(a, {"who": "AAPL"}, dataset="profile", ttl=timedelta(days=1))
    con = sqlite3.connect(tmp_path / "fmp" / "cache.db")
    (value,) = con.execute("SELECT value FROM Cache WHERE key = ?", (a,)).fetchone()
    other = diskcache.Cache(str(tmp_path / "fmp"))  # AAPL's envelope stored under MSFT's key
    other.set(b, bytes(value))
    other.close()
    con.close()
    assert store.get(b).state is ReadState.MISS
    assert store.get(a).fresh


def test_cache_root_opens_namespaces_lazily(tmp_path: Path, clock: FakeClock) -> None:
    with DiskCache(tmp_path / "cache", clock=clock) as root:
        assert root.existing_namespaces() == []
        fmp = root.namespace("fmp")
        assert root.namespace("fmp") is fmp
        fmp.put(key_for("A"), 1, dataset="profile", ttl=timedelta(days=1))
        root.namespace("fred")
        (tmp_path / "cache" / "notes.txt").write_text("x")
        assert root.existing_namespaces() == ["fmp", "fred"]
        with pytest.raises(ValueError):
            root.namespace("../etc")


def test_head_reads_the_tag_not_the_entry(
    store: DiskNamespace, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning's head: fresh or stale and ok or negative from the row's tag alone."""
    ok, nothing = key_for("AAPL"), key_for("ZZZZ")
    store.put(ok, {"p": 1}, dataset="profile", ttl=timedelta(hours=2))
    store.put(nothing, [], dataset="profile", ttl=timedelta(hours=1), status="negative")

    def no_read(key: str, *, touch: bool) -> bytes | None:
        raise AssertionError("head read the entry")

    monkeypatch.setattr(store, "_read", no_read)
    first, second = store.head(ok), store.head(nothing)
    assert (first.state, first.status, first.envelope) == (ReadState.FRESH, "ok", None)
    assert (second.state, second.status) == (ReadState.FRESH, "negative")
    assert store.head(key_for("NOPE")).state is ReadState.MISS
    clock.advance(timedelta(minutes=90))
    assert store.head(nothing).state is ReadState.STALE
    assert store.head(ok).state is ReadState.FRESH
    clock.advance(timedelta(minutes=30))  # the moment it expires: stale (never late)
    assert store.head(ok).state is ReadState.STALE
    assert store.run_counters == {"writes": 2}  # a head counts nothing


def test_head_of_a_row_written_before_tags_named_the_status(
    store: DiskNamespace, tmp_path: Path, clock: FakeClock
) -> None:
    """A whole-number tag (an older row) names no status: the header is read instead."""
    key = key_for("MSFT")
    store.put(key, [], dataset="profile", ttl=timedelta(hours=1), status="negative")
    store.close()
    con = sqlite3.connect(tmp_path / "fmp" / "cache.db")
    with con:
        con.execute("UPDATE Cache SET tag = CAST(tag AS INTEGER) WHERE key = ?", (key,))
    con.close()
    again = DiskNamespace(tmp_path / "fmp", "fmp", clock=clock)
    try:
        read = again.head(key)
    finally:
        again.close()
    assert (read.state, read.status) == (ReadState.FRESH, "negative")
    assert read.envelope is not None  # from the header


def test_get_fresh_counts_only_the_hit_it_returns(store: DiskNamespace, clock: FakeClock) -> None:
    """The engine's task-free cache read: a fresh `ok` entry is read and counted as a hit;
    a negative, a stale or a missing one is None and counted nothing (`get` counts it)."""
    ok, nothing = key_for("AAPL"), key_for("ZZZZ")
    store.put(ok, {"p": 1}, dataset="profile", ttl=timedelta(hours=1))
    store.put(nothing, [], dataset="profile", ttl=timedelta(hours=2), status="negative")
    env = store.get_fresh(ok)
    assert env is not None and env.payload == {"p": 1}
    assert store.get_fresh(nothing) is None and store.get_fresh(key_for("NOPE")) is None
    clock.advance(timedelta(minutes=61))
    assert store.get_fresh(ok) is None
    assert store.run_counters == {"writes": 2, "hits": 1}
    assert store.get(ok).stale and store.run_counters["stale"] == 1
