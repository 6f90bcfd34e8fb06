"""`cache verify` and the pickle guarantee: corrupted entries are quarantined, never served, and
a pickled row planted behind tradescout's back is never unpickled by anything."""

from __future__ import annotations

import json
import pickle
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cache.backend import ReadState
from cache.disk.optimize import optimize
from cache.disk.store import DiskNamespace
from cache.disk.verify import verify
from cache.report import build_cache_report
from discovery.cli.cache import cache_app
from tests.cache.test_store import T0, FakeClock, key_for

NOW = T0 + timedelta(minutes=5)


class Planted:
    """Unpickling this creates a file: proof that something ran code from the cache."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def plant_pickles(directory: Path, marker: Path) -> tuple[str, bytes]:
    """A row with a pickled value under a real-looking key, and a row with a pickled key."""
    evil = pickle.dumps(Planted(marker))
    key = key_for("EVIL")
    con = sqlite3.connect(directory / "cache.db")
    insert = (
        "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
        " size, mode, filename, value) VALUES (?, ?, 1.0, NULL, 1.0, 0, NULL, 0, ?, NULL, ?)"
    )
    con.execute(insert, (key, 1, 4, evil))  # mode 4 = MODE_PICKLE
    con.execute(insert, (evil, 0, 1, b"{}"))  # raw 0: diskcache would unpickle the key
    con.commit()
    con.close()
    return key, evil


def test_the_planted_pickle_is_live(tmp_path: Path) -> None:
    """The attack is real: unpickling the planted bytes does create the file."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Planted(marker)))
    assert marker.exists()


def test_pickled_rows_are_never_unpickled(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    marker = tmp_path / "PWNED"
    store = DiskNamespace(root / "fmp", "fmp", clock=FakeClock(T0))
    store.put(key_for("AAPL"), {"ok": True}, dataset="profile", ttl=timedelta(days=1))
    store.close()
    key, evil = plant_pickles(root / "fmp", marker)

    store = DiskNamespace(root / "fmp", "fmp", clock=FakeClock(NOW))
    assert store.peek(key).state is ReadState.MISS
    assert list(store.iter_keys()) == [key_for("AAPL")]  # the pickled key is skipped
    store.close()
    report = build_cache_report(root, now=NOW)
    assert report["namespaces"]["fmp"]["integrity_failures"] == 1  # peek quarantined one
    optimize(root, now=NOW, dry_run=True)
    result = verify(root, now=NOW)
    assert not marker.exists()
    assert result.exit_code == 3
    assert [q.reason for q in result.quarantined] == [
        "pickled key (written by something other than tradescout)"
    ]
    # The quarantined copies are the inert bytes, never decoded.
    copies = sorted((root / "_quarantine" / "fmp").glob("*.bin"))
    assert sorted(p.read_bytes() for p in copies) == sorted([evil, b"{}"])

    store = DiskNamespace(root / "fmp", "fmp", clock=FakeClock(NOW))
    assert store.get(key).state is ReadState.MISS
    assert store.get(key_for("AAPL")).fresh
    store.close()
    assert verify(root, now=NOW).exit_code == 0
    assert not marker.exists()


def test_get_on_a_pickled_value_quarantines_without_unpickling(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    marker = tmp_path / "PWNED"
    DiskNamespace(root / "fmp", "fmp").close()
    key, evil = plant_pickles(root / "fmp", marker)
    store = DiskNamespace(root / "fmp", "fmp")
    assert store.get(key).state is ReadState.MISS
    assert store.run_counters["corrupt"] == 1
    store.close()
    assert not marker.exists()
    (copy,) = (root / "_quarantine" / "fmp").glob("*.bin")
    assert copy.read_bytes() == evil


@pytest.fixture()
def damaged_cache(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "cache"
    store = DiskNamespace(root / "fmp", "fmp", clock=FakeClock(T0))
    for sym in ("AAPL", "MSFT", "NVDA", "AMZN", "META"):
        store.put(
            key_for(sym), {"symbol": sym, "price": 100}, dataset="profile", ttl=timedelta(days=1)
        )
    big = key_for("BIG")
    store.put(big, {"blob": "b" * (1 << 20)}, dataset="profile", ttl=timedelta(days=1))
    store.close()
    db = root / "fmp" / "cache.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE Cache SET value = ? WHERE key = ?", (b"\x00\xffnot json", key_for("MSFT")))
    (value,) = con.execute("SELECT value FROM Cache WHERE key = ?", (key_for("NVDA"),)).fetchone()
    con.execute(
        "UPDATE Cache SET value = ? WHERE key = ?",
        (bytes(value).replace(b'"price":100', b'"price":999'), key_for("NVDA")),
    )
    (filename,) = con.execute("SELECT filename FROM Cache WHERE key = ?", (big,)).fetchone()
    con.commit()
    con.close()
    (root / "fmp" / filename).unlink()  # the value file of a large entry is gone
    yahoo = DiskNamespace(root / "yahoo_finance", "yahoo_finance", clock=FakeClock(T0))
    yahoo.put(
        key_for("SPY", "yahoo_finance", "chart"), [1, 2, 3], dataset="chart", ttl=timedelta(days=1)
    )
    yahoo.close()
    return root


def test_verify_quarantines_every_damaged_entry(damaged_cache: Path) -> None:
    result = verify(damaged_cache, now=NOW)
    assert result.exit_code == 3
    reasons = {q.key: q.reason for q in result.quarantined}
    assert set(reasons) == {key_for("MSFT"), key_for("NVDA"), key_for("BIG")}
    assert reasons[key_for("MSFT")] == "not a tradescout envelope"
    assert reasons[key_for("NVDA")] == "envelope sha256 mismatch"
    assert reasons[key_for("BIG")] == "value file missing"
    by_ns = {n.service: n for n in result.namespaces}
    assert (by_ns["fmp"].entries, by_ns["fmp"].sound, by_ns["fmp"].quarantined) == (6, 3, 3)
    assert by_ns["yahoo_finance"].quarantined == 0
    for q in result.quarantined:
        assert (damaged_cache / q.path).is_file()
        assert q.path.startswith("_quarantine/fmp/")

    store = DiskNamespace(damaged_cache / "fmp", "fmp", clock=FakeClock(NOW))
    assert store.get(key_for("NVDA")).state is ReadState.MISS  # never served again
    assert store.get(key_for("AAPL")).fresh
    assert store.lifetime_counters()["corrupt"] == 3
    store.close()
    report = build_cache_report(damaged_cache, now=NOW)
    assert report["namespaces"]["fmp"]["integrity_failures"] == 0
    assert report["namespaces"]["fmp"]["quarantined_files"] == 3
    assert verify(damaged_cache, now=NOW).exit_code == 0


def test_cli_verify_exit_codes(
    damaged_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.add_typer(cache_app, name="cache")
    args = ["cache", "verify", "--data-root", str(damaged_cache.parent)]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 3, first.output
    payload = json.loads(first.stdout)
    assert payload["sound"] is False and len(payload["quarantined"]) == 3
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "all entries are sound" in second.stdout


def test_unreadable_namespace_is_reported_skipped_and_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    DiskNamespace(root / "fmp", "fmp").close()
    (root / "fred").mkdir(parents=True)
    (root / "fred" / "cache.db").write_bytes(b"this is not a database" * 100)
    report = build_cache_report(root, now=NOW)
    assert [u["namespace"] for u in report["unreadable"]] == ["fred"]
    assert "fmp" in report["namespaces"] and "fred" not in report["namespaces"]
    assert any(
        r.startswith("fred: the cache database cannot be read") for r in report["recommendations"]
    )
    assert any("fred" in n for n in optimize(root, now=NOW, dry_run=True).notes)
    result = verify(root, now=NOW)
    assert result.exit_code == 3 and result.quarantined[0].service == "fred"
    assert not (root / "fred").exists()
    assert (root / result.quarantined[0].path / "cache.db").is_file()
    assert verify(root, now=NOW).exit_code == 0
