"""Hostile cache (issue 12, "Cache"): tampered rows, edited envelopes, damaged namespaces, a
planted stats table, a quarantine that points out of the root, a writer killed mid-write.

Each case asserts the outcome: what is served (never a tampered entry), what the commands exit
with, what is kept for a post-mortem, and that nothing outside the cache root is read, copied or
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.backend import ReadState
from cache.disk.optimize import optimize
from cache.disk.store import DiskCache, DiskNamespace
from cache.disk.verify import verify
from cache.keys import derive_key
from cache.report import build_cache_report
from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from services.sandbox.server import SandboxServer
from tests.conftest import REPO, fast_config, fast_sandbox, make_root, plain_tickers, run_cli

__all__ = ["fast_sandbox"]  # the fixture, imported for pytest

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
VICTIM = b"the owner's file outside the cache root\n"


def key_for(symbol: str) -> str:
    return derive_key("fmp", "profile", {"symbol": symbol})


def build(root: Path, symbols: tuple[str, ...] = ("AAPL", "MSFT"), *, big: bool = False) -> Path:
    """A `fmp` namespace under `root` with one entry per symbol (and one >1 MB file entry)."""
    with DiskNamespace(root / "fmp", "fmp", clock=lambda: T0) as ns:
        for sym in symbols:
            ns.put(
                key_for(sym),
                {"symbol": sym, "price": 100},
                dataset="profile",
                ttl=timedelta(days=1),
            )
        if big:
            blob = {"symbol": "BIG", "blob": "b" * (1 << 20)}
            ns.put(key_for("BIG"), blob, dataset="profile", ttl=timedelta(days=1))
    return root / "fmp"


def sql(directory: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    con = sqlite3.connect(directory / "cache.db")
    try:
        rows = con.execute(statement, args).fetchall()
        con.commit()
    finally:
        con.close()
    return rows


def stored(directory: Path, key: str) -> bytes:
    ((value,),) = sql(directory, "SELECT value FROM Cache WHERE key = ?", key)
    assert isinstance(value, bytes)
    return value


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the data root holding a file nothing may touch."""
    where = tmp_path / "outside"
    where.mkdir()
    (where / "victim.txt").write_bytes(VICTIM)
    return where


# -- value files that point out of the namespace -------------------------------------------------


@pytest.mark.parametrize("kind", ["relative", "absolute", "symlinked_dir"])
def test_value_file_outside_the_namespace_is_never_read_copied_or_deleted(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    root = tmp_path / "data" / "cache"
    fmp = build(root, big=True)
    ((filename,),) = sql(fmp, "SELECT filename FROM Cache WHERE key = ?", key_for("BIG"))
    assert isinstance(filename, str)
    if kind == "relative":
        planted = os.path.relpath(outside / "victim.txt", fmp)
    elif kind == "absolute":
        planted = str(outside / "victim.txt")
    else:  # a diskcache-shaped name whose first directory is a symlink out of the namespace
        (fmp / filename).unlink()
        (fmp / filename.split("/")[0]).rename(tmp_path / "moved")
        (fmp / filename.split("/")[0]).symlink_to(outside, target_is_directory=True)
        (outside / filename.split("/", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        (outside / filename.split("/", 1)[1]).write_bytes(VICTIM)
        planted = filename
    sql(fmp, "UPDATE Cache SET filename = ? WHERE key = ?", planted, key_for("BIG"))
    before = tree_digest(outside)

    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert ns.get(key_for("BIG")).state is ReadState.MISS  # what `discover` does
        assert ns.get(key_for("AAPL")).fresh
    assert tree_digest(outside) == before

    # The row is planted again for the maintenance commands (a new value file is never
    # written through the symlinked directory either).
    with DiskNamespace(fmp, "fmp", clock=lambda: T0) as ns:
        for i in range(20):
            blob = {"blob": "c" * (1 << 20), "i": i}
            ns.put(key_for(f"BIG{i}"), blob, dataset="profile", ttl=timedelta(0))
    assert tree_digest(outside) == before
    planted_key = key_for("BIG2")
    sql(fmp, "UPDATE Cache SET filename = ? WHERE key = ?", planted, planted_key)
    result = verify(root, now=NOW)
    assert [q.reason for q in result.quarantined] == ["value file path outside its namespace"]
    assert result.exit_code == 3
    optimize(root, now=NOW + timedelta(days=30), dry_run=False)
    assert tree_digest(outside) == before
    for copy in (root / "_quarantine").rglob("*.bin"):
        assert VICTIM not in copy.read_bytes()


# -- edited envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"expires_at":"2026-11-22', b'"expires_at":"2999-11-22'),  # served as fresh forever
        (b'"upstream":"sandbox"', b'"upstream":"live___"'),  # synthetic passed off as live
        (b'"price":100', b'"price":999'),  # the payload
    ],
    ids=["expires_at", "upstream", "payload"],
)
def test_an_edited_byte_anywhere_fails_verify_and_is_never_served(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    root = tmp_path / "cache"
    with DiskNamespace(root / "fmp", "fmp", clock=lambda: T0) as ns:
        ns.put(
            key_for("AAPL"),
            {"price": 100},
            dataset="profile",
            ttl=timedelta(days=1),
            upstream="sandbox",
        )
    value = stored(root / "fmp", key_for("AAPL"))
    assert old in value
    sql(root / "fmp", "UPDATE Cache SET value = ?", value.replace(old, new))
    result = verify(root, now=NOW)
    assert result.exit_code == 3
    assert [q.reason for q in result.quarantined] == ["envelope sha256 mismatch"]
    with DiskNamespace(root / "fmp", "fmp", clock=lambda: NOW) as ns:
        assert ns.peek(key_for("AAPL")).state is ReadState.MISS


def _last_quarantine_reason(root: Path) -> str:
    (why,) = (root / "_quarantine" / "fmp").glob("*.why")
    return why.read_text()


def test_a_peek_of_an_edited_header_is_a_miss_and_quarantined(tmp_path: Path) -> None:
    fmp = build(tmp_path / "cache")
    value = stored(fmp, key_for("AAPL"))
    sql(
        fmp,
        "UPDATE Cache SET value = ? WHERE key = ?",
        value.replace(b'"2026', b'"2999', 2),
        key_for("AAPL"),
    )
    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert ns.peek(key_for("AAPL")).state is ReadState.MISS
        assert ns.run_counters["corrupt"] == 1
        assert ns.peek(key_for("MSFT")).fresh
    assert "envelope sha256 mismatch" in _last_quarantine_reason(tmp_path / "cache")


# -- entries of the previous envelope version ----------------------------------------------------


def legacy_bytes(key: str) -> bytes:
    """A version-1 envelope: its hash covered the payload only."""
    payload = {"symbol": "OLD"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    header = {
        "v": 1,
        "key": key,
        "service": "fmp",
        "dataset": "profile",
        "status": "ok",
        "fetched_at": T0.isoformat(),
        "expires_at": "2999-01-01T00:00:00+00:00",
        "sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "request": {},
        "upstream": "live",
    }
    return (
        json.dumps(header, separators=(",", ":"))[:-1] + ',"payload":' + canonical + "}"
    ).encode()


def test_a_legacy_entry_is_a_miss_verify_counts_it_and_optimize_removes_it(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    fmp = build(root)
    sql(
        fmp,
        "UPDATE Cache SET value = ? WHERE key = ?",
        legacy_bytes(key_for("MSFT")),
        key_for("MSFT"),
    )
    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert ns.get(key_for("MSFT")).state is ReadState.MISS  # refetched, never served
        assert ns.run_counters["corrupt"] == 0
    assert not (root / "_quarantine").exists()  # old, not damaged
    result = verify(root, now=NOW)
    assert (result.exit_code, result.legacy, result.quarantined) == (0, 1, ())
    report = build_cache_report(root, now=NOW)
    assert report["namespaces"]["fmp"]["legacy"] == 1
    assert any("older envelope version" in r for r in report["recommendations"])
    dry = optimize(root, now=NOW, dry_run=True)
    assert dry.namespaces[0].legacy_entries == 1
    done = optimize(root, now=NOW, dry_run=False)
    assert done.figures() == dry.figures()
    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert sorted(ns.iter_keys()) == [key_for("AAPL")]


# -- damaged namespaces ---------------------------------------------------------------------------


def _corrupt(fmp: Path) -> None:
    data = bytearray((fmp / "cache.db").read_bytes())
    data[4096:12288] = os.urandom(8192)  # pages after the header
    (fmp / "cache.db").write_bytes(bytes(data))


def _truncated(fmp: Path) -> None:
    data = (fmp / "cache.db").read_bytes()
    (fmp / "cache.db").write_bytes(data[: len(data) // 3])


def _garbage(fmp: Path) -> None:
    (fmp / "cache.db").write_bytes(b"\x00garbage, not SQLite" * 500)


def _db_is_a_directory(fmp: Path) -> None:
    (fmp / "cache.db").unlink()
    (fmp / "cache.db").mkdir()


def _namespace_is_a_file(fmp: Path) -> None:
    for p in sorted(fmp.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    fmp.rmdir()
    fmp.write_bytes(b"a file where the namespace belongs")


def _symlink_out(fmp: Path) -> None:
    target = fmp.parent.parent.parent / "outside" / "fmp_elsewhere"
    fmp.rename(target)
    fmp.symlink_to(target, target_is_directory=True)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "corrupt": _corrupt,
    "truncated": _truncated,
    "garbage": _garbage,
    "db_is_a_directory": _db_is_a_directory,
    "namespace_is_a_file": _namespace_is_a_file,
    "namespace_symlink_out_of_the_root": _symlink_out,
}


def _checkpoint(fmp: Path) -> None:
    """Everything in cache.db itself (no -wal), as after a clean close."""
    sql(fmp, "PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("cache.db-wal", "cache.db-shm"):
        (fmp / side).unlink(missing_ok=True)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_namespace_is_moved_aside_and_rebuilt_on_the_fly(
    tmp_path: Path, outside: Path, damage: str
) -> None:
    root = tmp_path / "data" / "cache"
    fmp = build(root, tuple(f"S{i:03d}" for i in range(300)))
    _checkpoint(fmp)
    DAMAGE[damage](fmp)
    before_outside = tree_digest(outside)
    with DiskCache(root, clock=lambda: NOW) as cache:
        ns = cache.namespace("fmp")
        assert ns.get(key_for("S001")).state is ReadState.MISS
        ns.put(key_for("NEW"), {"ok": 1}, dataset="profile", ttl=timedelta(days=1))
        assert ns.get(key_for("NEW")).fresh  # the run goes on, caching again
        note = cache.rebuilt["fmp"]
        assert note.startswith("rebuilt:") and "fetched again" in note
        assert cache.stats()["fmp"].to_json()["rebuilt"] == note
    assert fmp.is_dir() and not fmp.is_symlink()
    kept = list((root / "_quarantine" / "fmp").glob("*_namespace"))
    assert len(kept) == 1  # the damaged namespace, kept whole for a post-mortem
    assert tree_digest(outside) == before_outside  # a symlinked namespace: its target untouched
    assert verify(root, now=NOW).exit_code == 0


def test_damage_found_mid_run_rebuilds_and_the_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    fmp = build(root, tuple(f"S{i:03d}" for i in range(300)))
    _checkpoint(fmp)
    with DiskCache(root, clock=lambda: NOW) as cache:
        ns = cache.namespace("fmp")
        assert ns.peek(key_for("S001")).fresh
        data = bytearray((fmp / "cache.db").read_bytes())  # every page after the first,
        data[4096:] = os.urandom(len(data) - 4096)  # under the open namespace
        (fmp / "cache.db").write_bytes(bytes(data))
        reads = [ns.get(key_for(f"S{i:03d}")).state for i in range(0, 300, 7)]
        assert ReadState.MISS in reads
        ns.put(key_for("NEW"), {"ok": 1}, dataset="profile", ttl=timedelta(days=1))
        assert ns.peek(key_for("NEW")).fresh
        assert "rebuilt" in cache.rebuilt["fmp"]


def test_a_namespace_that_cannot_be_written_answers_misses_and_refuses_writes(
    tmp_path: Path,
) -> None:
    """A cache root that is a file: nothing can be created, nothing crashes."""
    (tmp_path / "cache").write_bytes(b"not a directory")
    with DiskCache(tmp_path / "cache", clock=lambda: NOW) as cache:
        ns = cache.namespace("fmp")
        assert ns.get(key_for("A")).state is ReadState.MISS
        from cache.errors import CacheWriteFailed

        with pytest.raises(CacheWriteFailed):
            ns.put(key_for("A"), {}, dataset="profile", ttl=timedelta(days=1))
        assert cache.rebuilt["fmp"].startswith("not used this run")
    assert (tmp_path / "cache").read_bytes() == b"not a directory"


@pytest.mark.integration
async def test_discover_over_damaged_namespaces_rebuilds_them_and_says_so(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    (tmp_path / "outside").mkdir()
    settings = load_settings(config=fast_config(tmp_path), data_root=root)
    options = DiscoverOptions(portfolio="small", target=Target("sandbox", fast_sandbox.url))
    first = await discover_async(settings, options)
    assert first.exit_code == 0
    cache = root / "cache"
    damaged = ("fmp", "yahoo_finance", "sec_edgar", "fred", "coingecko", "imf")
    for name in damaged:
        _checkpoint(cache / name)
    _garbage(cache / "fmp")
    _truncated(cache / "yahoo_finance")
    _db_is_a_directory(cache / "sec_edgar")
    _namespace_is_a_file(cache / "fred")
    _corrupt(cache / "coingecko")
    _symlink_out(cache / "imf")
    again = await discover_async(settings, options)
    assert again.exit_code == 0 and again.report is not None
    inventory = again.report["local_data_integration"]["cache_inventory"]
    for name in damaged:
        assert inventory[name]["rebuilt"].startswith("rebuilt:"), name
        assert inventory[name]["writes"] > 0, name  # refetched and cached again
    assert again.report["gaps"] == []
    warm = await discover_async(settings, options)
    assert warm.report is not None
    assert all(
        "rebuilt" not in v
        for v in warm.report["local_data_integration"]["cache_inventory"].values()
    )
    requests = {k: u["network_requests"] for k, u in warm.report["service_usage"].items()}
    assert sum(requests.values()) == 0, (requests, warm.report["gaps"], inventory)


# -- a planted stats table -------------------------------------------------------------------------


def test_nested_json_in_the_stats_table_never_recurses(tmp_path: Path) -> None:
    root = tmp_path / "data" / "cache"
    fmp = build(root)
    deep = "[" * 100_000 + "]" * 100_000
    for name, value in (
        ("last_run", deep),
        ("runs", deep),
        ("hits", "not a number"),
        ("misses", 1e308),
    ):
        sql(fmp, "INSERT OR REPLACE INTO TradescoutStats(name, value) VALUES (?, ?)", name, value)
    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert ns.last_run() is None and ns.run_history() == []
        assert ns.lifetime_counters()["hits"] == 0
        ns.record_last_run("after")
        assert ns.last_run() is not None
    sql(fmp, "UPDATE TradescoutStats SET value = ? WHERE name = 'last_run'", deep)
    report = build_cache_report(root, now=NOW)
    assert report["namespaces"]["fmp"]["last_run"] is None
    done = run_cli(["cache", "report", "--json", "--data-root", str(root.parent)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and json.loads(done.stdout)["totals"]["entries"] == 2


# -- a quarantine that leads out of the root ------------------------------------------------


@pytest.mark.parametrize("level", ["_quarantine", "_quarantine/fmp"])
def test_a_symlinked_quarantine_is_never_written_through(
    tmp_path: Path, outside: Path, level: str
) -> None:
    root = tmp_path / "data" / "cache"
    fmp = build(root)
    link = root / level
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    before = tree_digest(outside)
    sql(fmp, "UPDATE Cache SET value = ? WHERE key = ?", b"{broken", key_for("AAPL"))
    with DiskNamespace(fmp, "fmp", clock=lambda: NOW) as ns:
        assert ns.get(key_for("AAPL")).state is ReadState.MISS  # removed all the same
    assert key_for("AAPL") not in [k for (k,) in sql(fmp, "SELECT key FROM Cache")]
    sql(fmp, "UPDATE Cache SET value = ? WHERE key = ?", b"{broken", key_for("MSFT"))
    result = verify(root, now=NOW)
    assert [(q.key, q.path) for q in result.quarantined] == [(key_for("MSFT"), None)]
    _checkpoint(fmp)
    _garbage(fmp)  # a whole namespace goes to a sibling inside the root instead
    whole = verify(root, now=NOW)
    assert whole.quarantined[0].path is not None
    assert whole.quarantined[0].path.startswith("fmp.damaged-")
    assert (root / whole.quarantined[0].path / "cache.db").is_file()
    assert tree_digest(outside) == before
    assert link.is_symlink()


# -- a writer killed mid-write -------------------------------------------------------------

WRITER = r"""
import sys
from datetime import timedelta
from pathlib import Path
from cache.disk.store import DiskNamespace
ns = DiskNamespace(Path(sys.argv[1]), "imf")
i = 0
while True:
    ns.put(f"imf:x:symbol={i}", {"a": "x" * 4000, "i": i}, dataset="x", ttl=timedelta(days=1))
    i += 1
    if i == 200:
        print("written", flush=True)
"""


def test_a_namespace_left_by_a_killed_writer_is_verified_and_served_not_quarantined(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root / "imf")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
    time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (root / "imf" / "cache.db-wal").exists()  # left mid-transaction, WAL and all
    result = verify(root, now=NOW)
    assert result.exit_code == 0 and result.quarantined == ()
    assert result.namespaces[0].entries >= 200
    assert (root / "imf").is_dir() and not (root / "_quarantine").exists()
    with DiskNamespace(root / "imf", "imf", clock=lambda: NOW) as ns:
        read = ns.get("imf:x:symbol=199")
        assert read.fresh and read.envelope is not None and read.envelope.payload["i"] == 199
        assert ns.rebuilt is None
