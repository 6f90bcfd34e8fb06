"""The shared cache: the disk's envelopes in Redis behind the local level, expiring a stale window
after their freshness, falling back to the local level when Redis goes away (fakeredis for the
logic, a real redis-server for the kill)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest

from cache import open_cache
from cache.backend import ReadState
from cache.disk.store import DiskCache
from cache.envelope import Envelope
from cache.keys import derive_key
from cache.redis import MAX_VALUE_BYTES, SharedCache, expiry_ms, redis_key, upstream_of
from tests.cache.test_store import T0, FakeClock, key_for
from tests.conftest import RedisServer

WINDOW = timedelta(days=7)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def machine(
    tmp: Path, server: fakeredis.FakeServer, name: str, clock: FakeClock | None = None
) -> SharedCache:
    """One machine's cache: its own data root's disk level, the shared (fake) Redis behind it."""
    return SharedCache(
        tmp / name / "cache",
        "redis://:pw@127.0.0.1:6379/0",
        clock=clock or FakeClock(T0),
        stale_window=WINDOW,
        client=fakeredis.FakeRedis(server=server),
    )


def test_keys_name_their_upstream_and_service() -> None:
    live = key_for("ACME")
    sandbox = derive_key("fmp", "profile", {"symbol": "ACME"}, upstream="sandbox")
    assert upstream_of(live) == "live" and upstream_of(sandbox) == "sandbox"
    assert redis_key("fmp", live) == f"tradescout:cache:live:fmp:{live}"
    assert redis_key("fmp", sandbox).startswith("tradescout:cache:sandbox:fmp:sandbox|")


def test_the_shared_entry_is_the_disk_envelope_and_lives_a_stale_window_past_expiry(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    clock = FakeClock(T0)
    with machine(tmp_path, server, "a", clock) as cache:
        key = key_for("ACME")
        env = cache.namespace("fmp").put(key, {"p": 1}, dataset="profile", ttl=timedelta(hours=2))
    raw = fakeredis.FakeRedis(server=server)
    stored = raw.get(redis_key("fmp", key))
    assert isinstance(stored, bytes)
    assert Envelope.from_bytes(stored).sha256 == env.sha256  # the same bytes, the same hash
    with DiskCache(tmp_path / "a" / "cache", clock=clock) as disk:  # and the local level has it
        assert disk.namespace("fmp").peek(key).envelope == Envelope.from_bytes(stored)
    pttl = raw.pttl(redis_key("fmp", key))
    assert expiry_ms(env, T0, WINDOW) - 5_000 < pttl <= expiry_ms(env, T0, WINDOW)
    assert pttl > (WINDOW + timedelta(hours=1)).total_seconds() * 1000


def test_another_machine_reads_it_fresh_and_keeps_a_copy(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    key = key_for("ACME")
    with machine(tmp_path, server, "a") as first:
        first.namespace("fmp").put(key, {"p": 1}, dataset="profile", ttl=timedelta(hours=2))
    with SharedCache(
        tmp_path / "b" / "cache",
        "redis://127.0.0.1:6379/0",
        clock=FakeClock(T0),
        client=fakeredis.FakeRedis(server=server),
        read_only=True,
    ) as dry:  # a dry run's cache reads the shared level and copies nothing
        assert dry.namespace("fmp").peek(key).fresh
        assert dry.namespace("fmp").stats().entries == 0
    with machine(tmp_path, server, "b") as second:
        ns = second.namespace("fmp")
        read = ns.get(key)
        assert read.fresh and read.envelope is not None and read.envelope.payload == {"p": 1}
        assert ns.stats().entries == 1 and ns.run_counters["hits"] == 1
    with machine(tmp_path, server, "c") as third:  # a peek (planning) copies it down too
        assert third.namespace("fmp").peek(key).fresh
        assert third.namespace("fmp").stats().entries == 1
    fakeredis.FakeRedis(server=server).flushall()  # Redis lost it: the copy still answers
    with machine(tmp_path, server, "b") as second:
        assert second.namespace("fmp").get(key).fresh


def test_a_first_level_hit_is_never_fresher_than_the_shared_entry_was(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    """Machine b copied an entry; it expires on b exactly when it did in Redis. Once stale there,
    b asks Redis, where machine a has meanwhile stored a newer answer: that one is served."""
    clock = FakeClock(T0)
    key = key_for("ACME")
    with machine(tmp_path, server, "a", clock) as a, machine(tmp_path, server, "b", clock) as b:
        a.namespace("fmp").put(key, {"v": 1}, dataset="profile", ttl=timedelta(hours=1))
        copied = b.namespace("fmp").get(key).envelope
        assert copied is not None and copied.expires_at == T0 + timedelta(hours=1)
        clock.advance(timedelta(hours=2))
        assert b.namespace("fmp").peek(key).state is ReadState.STALE  # stale everywhere
        a.namespace("fmp").put(key, {"v": 2}, dataset="profile", ttl=timedelta(hours=1))
        newer = b.namespace("fmp").get(key)
        assert newer.fresh and newer.envelope is not None and newer.envelope.payload == {"v": 2}


def test_past_expiry_it_is_still_there_to_be_served_stale(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    clock = FakeClock(T0)
    key = key_for("ACME")
    with machine(tmp_path, server, "a", clock) as a:
        a.namespace("fmp").put(key, {"v": 1}, dataset="profile", ttl=timedelta(minutes=5))
    clock.advance(timedelta(days=3))
    with machine(tmp_path, server, "b", clock) as b:
        read = b.namespace("fmp").get(key)
        assert read.state is ReadState.STALE and read.envelope is not None


def test_planted_values_are_misses_and_bad_envelopes_are_removed(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    raw = fakeredis.FakeRedis(server=server)
    garbage, hashed, huge = key_for("GARB"), key_for("HASH"), key_for("HUGE")
    raw.set(redis_key("fmp", garbage), b'{"v":2,"sha256":"00"}')
    raw.hset(redis_key("fmp", hashed), "a", "b")
    raw.setrange(redis_key("fmp", huge), MAX_VALUE_BYTES, b"x")  # one byte past the cap
    with machine(tmp_path, server, "a") as cache:
        ns = cache.namespace("fmp")
        for key in (garbage, hashed, huge):
            assert ns.get(key).state is ReadState.MISS
        assert cache.sharing() == {"cache": "redis", "note": None}  # a bad value is not a fault
    assert raw.get(redis_key("fmp", garbage)) is None
    assert raw.type(redis_key("fmp", hashed)) == b"hash"  # not ours to remove


def test_redis_gone_mid_run_leaves_the_local_level_working(tmp_path: Path) -> None:
    server = fakeredis.FakeServer()
    key, other = key_for("ACME"), key_for("OTHER")
    with machine(tmp_path, server, "a") as cache:
        ns = cache.namespace("fmp")
        ns.put(key, {"v": 1}, dataset="profile", ttl=timedelta(hours=1))
        server.connected = False
        assert ns.get(key).fresh  # the local copy
        ns.put(other, {"v": 2}, dataset="profile", ttl=timedelta(hours=1))  # no error
        assert ns.get(other).fresh
        sharing = cache.sharing()
        assert sharing["cache"] == "local" and "ConnectionError" in sharing["note"]
        assert "pw" not in sharing["note"] and "127.0.0.1:6379" in sharing["note"]


def test_open_cache_chooses_the_shared_backend_only_with_a_url(tmp_path: Path) -> None:
    with open_cache(tmp_path / "c") as plain:
        assert isinstance(plain, DiskCache)
    unreachable = "redis://127.0.0.1:1/0"
    with open_cache(tmp_path / "c", redis_url=unreachable) as shared:
        assert isinstance(shared, SharedCache)
        assert shared.sharing()["cache"] == "local"  # unreachable at start: local only
        shared.namespace("fred").put(
            key_for("S", "fred", "series"), [1], dataset="series", ttl=timedelta(hours=1)
        )


@pytest.mark.slow
def test_a_real_redis_killed_mid_run(tmp_path: Path, redis_server: RedisServer) -> None:
    clock = FakeClock(T0)
    key, later = key_for("ACME"), key_for("LATER")
    with SharedCache(tmp_path / "a", redis_server.url, clock=clock) as a:
        a.namespace("fmp").put(key, {"v": 1}, dataset="profile", ttl=timedelta(hours=1))
    with SharedCache(tmp_path / "b", redis_server.url, clock=clock) as b:
        ns = b.namespace("fmp")
        assert ns.get(key).fresh and b.sharing()["cache"] == "redis"
        redis_server.kill()
        ns.put(later, {"v": 2}, dataset="profile", ttl=timedelta(hours=1))
        assert ns.get(later).fresh and ns.get(key).fresh
        assert b.sharing()["cache"] == "local"
