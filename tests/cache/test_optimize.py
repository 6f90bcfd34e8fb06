"""`cache optimize`: expired entries, size-limit culling (LRU), orphans and strays, vacuum —
and a dry run that reports exactly what the real run then reclaims."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cache.disk.optimize import optimize
from cache.disk.store import DiskNamespace
from cache.disk.verify import verify
from cache.report import build_cache_report
from discovery.cli.cache import cache_app
from tests.cache.test_store import T0, FakeClock, key_for

NOW = T0 + timedelta(hours=2)
LIMIT = 128 * 1024


def tree_state(root: Path) -> dict[str, str]:
    """Content hash of every file (SQLite's -wal/-shm side files aside) plus every table."""
    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            if path.name == "cache.db" and path.parent.name != "YahooFinance":
                con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
                rows = con.execute("SELECT * FROM Cache ORDER BY rowid").fetchall()
                stats = con.execute("SELECT * FROM TradescoutStats").fetchall()
                con.close()
                state[str(path.relative_to(root))] = repr((rows, stats))
            else:
                state[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture()
def messy_cache(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "cache"
    clock = FakeClock(T0)
    fmp = DiskNamespace(root / "fmp", "fmp", clock=clock)
    for i in range(4):
        fmp.put(key_for(f"OLD{i}"), {"i": i}, dataset="profile", ttl=timedelta(hours=1))
    for i in range(6):
        fmp.put(key_for(f"NEW{i}"), {"i": i}, dataset="profile", ttl=timedelta(days=7))
    fmp.close()
    orphan = root / "fmp" / "ab" / "cd" / "0123456789abcdef0123456789ab.val"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"o" * 500)
    old = time.time() - 2 * 86400
    os.utime(orphan, (old, old))

    fred = DiskNamespace(root / "fred", "fred", clock=clock)
    for i in range(40):
        fred.put(
            key_for(f"S{i:02d}", "fred", "series"),
            {"v": "x" * 3000},
            dataset="series",
            ttl=timedelta(days=1),
        )
    for i in range(30, 40):
        assert fred.get(key_for(f"S{i:02d}", "fred", "series")).fresh
    fred.close()
    con = sqlite3.connect(root / "fred" / "cache.db")  # the configured limit was lowered since
    con.execute("UPDATE Settings SET value = ? WHERE key = 'size_limit'", (LIMIT,))
    con.commit()
    con.close()

    (root / "stale_blob.pickle").write_bytes(b"s" * 300)
    (root / "YahooFinance").mkdir()
    (root / "YahooFinance" / "cache.db").write_bytes(b"legacy" * 10)
    (root / "_quarantine" / "fmp").mkdir(parents=True)
    (root / "_quarantine" / "fmp" / "keep.bin").write_bytes(b"q")
    return root


def test_dry_run_changes_nothing_and_equals_the_real_run(messy_cache: Path) -> None:
    before = tree_state(messy_cache)
    dry = optimize(messy_cache, now=NOW, dry_run=True)
    assert tree_state(messy_cache) == before
    assert dry.dry_run and dry.disk_bytes_after is None

    real = optimize(messy_cache, now=NOW, dry_run=False)
    assert real.figures() == dry.figures()

    figures = {n.service: n for n in dry.namespaces}
    assert figures["fmp"].expired_entries == 4 and figures["fmp"].culled_entries == 0
    assert (figures["fmp"].orphan_files, figures["fmp"].orphan_bytes) == (1, 500)
    assert figures["fred"].expired_entries == 0
    # 40 rows of ~4 kB pages in a 128 kB limit: about 20 go, no more than needed
    assert 15 <= figures["fred"].culled_entries <= 25
    assert sorted(s.path for s in dry.strays) == ["YahooFinance", "stale_blob.pickle"]
    assert dry.entries == 4 + figures["fred"].culled_entries
    assert real.disk_bytes_after is not None and real.disk_bytes_after < real.disk_bytes_before


def test_real_run_leaves_a_clean_cache(messy_cache: Path) -> None:
    expected = build_cache_report(messy_cache, now=NOW)["namespaces"]["fmp"]["reclaimable"]
    result = optimize(messy_cache, now=NOW, dry_run=False)
    fmp = next(n for n in result.namespaces if n.service == "fmp")
    assert fmp.to_json() == expected  # the report's "reclaims X" is what optimize reclaims

    report = build_cache_report(messy_cache, now=NOW)
    assert report["strays"] == []
    assert report["namespaces"]["fmp"]["expired"] == 0
    assert report["namespaces"]["fmp"]["entries"] == 6
    assert report["namespaces"]["fmp"]["orphan_files"] == 0
    fred = report["namespaces"]["fred"]
    assert fred["volume_bytes"] <= LIMIT
    assert fred["reclaimable"]["entries"] == 0
    assert (messy_cache / "_quarantine" / "fmp" / "keep.bin").exists()  # ours, not a stray
    # Fresh entries are still served; the recently read ones survived the cull.
    store = DiskNamespace(
        messy_cache / "fred", "fred", size_limit_bytes=LIMIT, clock=FakeClock(NOW)
    )
    keys = set(store.iter_keys())
    assert {key_for(f"S{i:02d}", "fred", "series") for i in range(30, 40)} <= keys
    assert key_for("S00", "fred", "series") not in keys
    assert store.peek(key_for("S35", "fred", "series")).fresh
    store.close()
    assert verify(messy_cache, now=NOW).sound
    # Idempotent: a second run finds nothing to do.
    again = optimize(messy_cache, now=NOW, dry_run=True)
    assert again.entries == 0 and again.strays == ()


def test_entry_rewritten_after_planning_is_kept(messy_cache: Path) -> None:
    """An entry refreshed by another process between plan and execution is not deleted."""
    import cache.disk.optimize as opt

    real_plan = opt.plan_namespace

    def plan_then_refresh(scan, now):  # type: ignore[no-untyped-def]
        plan = real_plan(scan, now)
        if scan.service == "fmp":
            store = DiskNamespace(messy_cache / "fmp", "fmp", clock=FakeClock(NOW))
            store.put(key_for("OLD0"), {"i": "new"}, dataset="profile", ttl=timedelta(days=1))
            store.close()
        return plan

    opt.plan_namespace = plan_then_refresh  # type: ignore[assignment]
    try:
        result = optimize(messy_cache, now=NOW, dry_run=False)
    finally:
        opt.plan_namespace = real_plan  # type: ignore[assignment]
    fmp = next(n for n in result.namespaces if n.service == "fmp")
    assert fmp.expired_entries == 3
    store = DiskNamespace(messy_cache / "fmp", "fmp", clock=FakeClock(NOW))
    read = store.peek(key_for("OLD0"))
    store.close()
    assert read.fresh and read.envelope is not None and read.envelope.payload == {"i": "new"}


def test_young_namespace_directory_is_not_a_stray(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / "imf").mkdir(parents=True)  # being created by another process right now
    assert optimize(root, now=NOW, dry_run=True).strays == ()
    old = time.time() - 3600
    os.utime(root / "imf", (old, old))
    assert [s.path for s in optimize(root, now=NOW, dry_run=True).strays] == ["imf"]


def test_cli_optimize_dry_run_json(
    messy_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("discovery.cli.cache._now", lambda: NOW)
    app = typer.Typer()
    app.add_typer(cache_app, name="cache")
    data_root = str(messy_cache.parent)
    before = tree_state(messy_cache)
    dry = CliRunner().invoke(
        app, ["cache", "optimize", "--dry-run", "--json", "--data-root", data_root]
    )
    assert dry.exit_code == 0, dry.output
    assert tree_state(messy_cache) == before
    dry_json = json.loads(dry.stdout)
    assert dry_json["dry_run"] is True and dry_json["entries"] > 0
    human = CliRunner().invoke(app, ["cache", "optimize", "--data-root", data_root])
    assert human.exit_code == 0, human.output
    assert "fmp: reclaimed 4 entries" in human.stdout
    assert "stray stale_blob.pickle" in human.stdout
