"""`cache report`: figures against a cache built with known contents; read-only; the CLI."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cache.disk.store import DiskNamespace
from cache.report import build_cache_report, hit_ratio, human_bytes
from discovery.cli.cache import cache_app, render_cache_report
from tests.cache.test_store import T0, FakeClock, key_for

NOW = T0 + timedelta(hours=2)


def db_snapshot(directory: Path) -> tuple[list[Any], list[Any]]:
    con = sqlite3.connect(directory / "cache.db")
    try:
        rows = con.execute("SELECT * FROM Cache ORDER BY rowid").fetchall()
        stats = con.execute("SELECT * FROM TradescoutStats ORDER BY name").fetchall()
    finally:
        con.close()
    return rows, stats


def stored_bytes(directory: Path, keys: list[str]) -> int:
    con = sqlite3.connect(directory / "cache.db")
    try:
        return sum(
            len(con.execute("SELECT value FROM Cache WHERE key = ?", (k,)).fetchone()[0])
            for k in keys
        )
    finally:
        con.close()


@pytest.fixture()
def known_cache(tmp_path: Path) -> Path:
    """fmp: 10 entries (4 expired at NOW, 1 negative), 3 read; yahoo: 3 entries, 1 corrupt;
    two strays; one quarantined file for fmp."""
    root = tmp_path / "data" / "cache"
    clock = FakeClock(T0)
    fmp = DiskNamespace(root / "fmp", "fmp", clock=clock)
    for i in range(4):
        fmp.put(
            key_for(f"A{i}"), {"i": i, "pad": "p" * 100}, dataset="profile", ttl=timedelta(hours=1)
        )
    clock.advance(timedelta(minutes=30))
    for i in range(4, 8):
        fmp.put(key_for(f"A{i}"), {"i": i}, dataset="profile", ttl=timedelta(days=7))
    fmp.put(key_for("ZZZZ"), [], dataset="profile", ttl=timedelta(hours=6), status="negative")
    clock.advance(timedelta(minutes=30))
    fmp.put(key_for("A8"), {"i": 8}, dataset="profile", ttl=timedelta(days=7))
    fmp.get(key_for("A4"))
    fmp.get(key_for("A5"))
    fmp.get(key_for("MISSING"))
    clock.now = NOW
    fmp.get(key_for("A0"))  # stale
    fmp.record_last_run("run-1")
    fmp.close()

    yahoo = DiskNamespace(root / "yahoo_finance", "yahoo_finance", clock=FakeClock(T0))
    for sym in ("AAPL", "MSFT", "NVDA"):
        yahoo.put(
            key_for(sym, "yahoo_finance", "chart"),
            {"close": [1, 2]},
            dataset="chart",
            ttl=timedelta(days=1),
        )
    yahoo.close()
    con = sqlite3.connect(root / "yahoo_finance" / "cache.db")
    con.execute(
        "UPDATE Cache SET value = ? WHERE key = ?",
        (b"garbage", key_for("MSFT", "yahoo_finance", "chart")),
    )
    con.commit()
    con.close()

    (root / "old_cache.pkl").write_bytes(b"x" * 1234)
    (root / "Legacy-Layout").mkdir()
    (root / "Legacy-Layout" / "entry.json").write_bytes(b"y" * 100)
    (root / "_quarantine" / "fmp").mkdir(parents=True)
    (root / "_quarantine" / "fmp" / "20261101T000000_x.bin").write_bytes(b"z")
    return root


def test_report_figures_match_known_contents(known_cache: Path) -> None:
    report = build_cache_report(known_cache, now=NOW, trend=[{"run_id": "r", "hit_ratio": 0.5}])
    fmp = report["namespaces"]["fmp"]
    assert fmp["entries"] == 10
    assert (fmp["fresh"], fmp["expired"], fmp["negative"]) == (6, 4, 1)
    assert fmp["never_read"] == 7  # A0, A4, A5 were read
    assert fmp["oldest_fetched_at"] == T0.isoformat()
    assert fmp["newest_fetched_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert fmp["integrity_failures"] == 0
    assert fmp["quarantined_files"] == 1
    assert fmp["counters_lifetime"] == {
        "hits": 2,
        "misses": 1,
        "stale": 1,
        "writes": 10,
        "corrupt": 0,
    }
    assert fmp["hit_ratio_lifetime"] == 0.5
    assert fmp["last_run"]["run_id"] == "run-1" and fmp["last_run"]["hit_ratio"] == 0.5
    expired_keys = [key_for(f"A{i}") for i in range(4)]
    expected_bytes = stored_bytes(known_cache / "fmp", expired_keys)
    assert fmp["reclaimable"]["expired_entries"] == 4
    assert fmp["reclaimable"]["expired_bytes"] == expected_bytes
    assert fmp["entry_bytes"] == stored_bytes(
        known_cache / "fmp", [key_for(f"A{i}") for i in range(9)] + [key_for("ZZZZ")]
    )
    on_disk = sum(
        p.stat().st_size
        for p in (known_cache / "fmp").rglob("*")
        if p.is_file() and not p.name.endswith("-shm")
    )
    assert fmp["disk_bytes"] == on_disk

    yahoo = report["namespaces"]["yahoo_finance"]
    assert (yahoo["entries"], yahoo["fresh"], yahoo["expired"]) == (3, 2, 0)
    assert yahoo["integrity_failures"] == 1
    assert yahoo["integrity_failure_examples"][0]["key"] == key_for(
        "MSFT", "yahoo_finance", "chart"
    )
    assert yahoo["hit_ratio_lifetime"] is None and yahoo["last_run"] is None

    strays = {s["path"]: s for s in report["strays"]}
    assert set(strays) == {"old_cache.pkl", "Legacy-Layout"}  # _quarantine is ours
    assert strays["old_cache.pkl"]["bytes"] == 1234
    assert strays["Legacy-Layout"]["bytes"] == 100

    totals = report["totals"]
    assert totals["entries"] == 13 and totals["namespaces"] == 2
    assert totals["integrity_failures"] == 1 and totals["strays"] == 2
    assert totals["reclaimable_bytes"] == expected_bytes + 1234 + 100
    assert report["trend"] == [{"run_id": "r", "hit_ratio": 0.5}]

    recs = "\n".join(report["recommendations"])
    assert (
        f"fmp: 40% expired (4 of 10), `cache optimize` reclaims {human_bytes(expected_bytes)}"
        in recs
    )
    assert "yahoo_finance: 1 entries fail their integrity check" in recs
    assert "2 strays" in recs and "old_cache.pkl" in recs
    json.dumps(report, allow_nan=False)  # serializable as is


def test_report_is_read_only(known_cache: Path) -> None:
    before = {ns: db_snapshot(known_cache / ns) for ns in ("fmp", "yahoo_finance")}
    files_before = sorted(
        p.relative_to(known_cache) for p in known_cache.rglob("*") if "cache.db" not in p.name
    )
    build_cache_report(known_cache, now=NOW)
    build_cache_report(known_cache, now=NOW)
    after = {ns: db_snapshot(known_cache / ns) for ns in ("fmp", "yahoo_finance")}
    files_after = sorted(
        p.relative_to(known_cache) for p in known_cache.rglob("*") if "cache.db" not in p.name
    )
    assert before == after  # no counter moved, no access time touched, nothing deleted
    assert files_before == files_after  # nothing quarantined, nothing removed


def test_report_on_missing_or_empty_root(tmp_path: Path) -> None:
    report = build_cache_report(tmp_path / "nope", now=NOW)
    assert report["namespaces"] == {} and report["totals"]["entries"] == 0
    assert report["recommendations"][0].startswith("No action needed")


def test_hit_ratio_counts_stale_as_not_a_hit() -> None:
    assert hit_ratio({"hits": 3, "misses": 0, "stale": 1}) == 0.75
    assert hit_ratio({}) is None


def test_over_limit_namespace_is_recommended_for_culling(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    store = DiskNamespace(root / "fred", "fred", clock=FakeClock(T0))
    for i in range(40):
        store.put(
            key_for(f"S{i}", "fred", "series"),
            {"v": "x" * 3000},
            dataset="series",
            ttl=timedelta(days=1),
        )
    store.close()
    con = sqlite3.connect(root / "fred" / "cache.db")  # the configured limit was lowered since
    con.execute("UPDATE Settings SET value = 65536 WHERE key = 'size_limit'")
    con.commit()
    con.close()
    report = build_cache_report(root, now=NOW)
    fred = report["namespaces"]["fred"]
    assert fred["size_limit_bytes"] == 65536 and fred["volume_bytes"] > 65536
    assert fred["reclaimable"]["culled_entries"] > 0
    assert any("over its size limit" in r for r in report["recommendations"])


def test_render_shows_every_namespace_and_the_advice(known_cache: Path) -> None:
    report = build_cache_report(known_cache, now=NOW)
    console = Console(record=True, width=200)
    console.print(render_cache_report(report))
    text = console.export_text()
    assert "fmp" in text and "yahoo_finance" in text and "total" in text
    assert "40% expired" in text
    assert "old_cache.pkl" in text


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(cache_app, name="cache")
    return app


def test_cli_report_json_and_saved_file(
    known_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data_root = known_cache.parent
    result = CliRunner().invoke(cli(), ["cache", "report", "--json", "--data-root", str(data_root)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["namespaces"]["fmp"]["entries"] == 10
    saved = list((data_root / "outputs" / "cache_reports").glob("cache_report_*.json"))
    assert [p.name for p in saved] == [f"cache_report_{datetime.now(UTC):%Y%m%d}.json"]
    assert json.loads(saved[0].read_text()) == printed


def test_cli_report_table_still_saves_json(
    known_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data_root = known_cache.parent
    result = CliRunner().invoke(cli(), ["cache", "report", "--data-root", str(data_root)])
    assert result.exit_code == 0, result.output
    assert "yahoo_finance" in result.stdout and "Recommendations" in result.stdout
    assert list((data_root / "outputs" / "cache_reports").glob("cache_report_*.json"))
