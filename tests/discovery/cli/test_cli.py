"""The CLI as a user runs it: a subprocess on a copy of the bundled demo data (no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from discovery.report.schema import validate_report
from tests.conftest import REPO

TRADESCOUT = [sys.executable, "-m", "discovery.cli"]


@pytest.fixture()
def demo_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(
        REPO / "data", root, ignore=shutil.ignore_patterns("cache", "state", "trade_history")
    )
    (root / "raw" / "trade_history").mkdir(parents=True, exist_ok=True)
    shutil.copy(
        REPO / "data" / "raw" / "trade_history" / "demo.csv", root / "raw" / "trade_history"
    )
    return root


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESCOUT_")}
    full_env.update(env or {})
    return subprocess.run(
        [*TRADESCOUT, *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=120,
    )


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_inventory_json_on_demo_data(demo_root: Path) -> None:
    proc = run("inventory", "demo", "--data-root", str(demo_root), "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    tickers = {row["ticker"]: row for row in body["tickers"]}
    assert len(tickers) == 32
    assert {"BTC-USD", "MQG.AX", "BRK-B"} <= set(tickers)
    # AAPL has two dated files: the latest by the date in the name wins.
    assert tickers["AAPL"]["file"].endswith(".md")
    assert body["coverage"]["with_analysis"] == sum(1 for r in tickers.values() if r["file"])
    assert body["coverage"]["total"] == 32


def test_inventory_table_on_demo_data(demo_root: Path) -> None:
    proc = run("inventory", "demo", "--data-root", str(demo_root))
    assert proc.returncode == 0, proc.stderr
    assert "Coverage:" in proc.stdout
    assert "MQG.AX" in proc.stdout


def test_unknown_portfolio_lists_the_existing_ones(demo_root: Path) -> None:
    before = tree(demo_root)
    proc = run("discover", "nope", "--data-root", str(demo_root), "--offline")
    assert proc.returncode == 2
    assert "demo" in proc.stderr and "nope" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(demo_root) == before


def test_bad_flag_is_a_usage_error(demo_root: Path) -> None:
    proc = run("discover", "demo", "--data-root", str(demo_root), "--timeframe", "2w")
    assert proc.returncode == 2
    assert "timeframe" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_broken_csv_names_file_row_and_column(demo_root: Path) -> None:
    csv = demo_root / "raw" / "trade_history" / "broken.csv"
    lines = (demo_root / "raw" / "trade_history" / "demo.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("Entry_Timestamp")] = "not-a-date"
    csv.write_text("\n".join([lines[0], lines[1], lines[2], ",".join(row)]) + "\n")
    before = tree(demo_root)
    proc = run("discover", "broken", "--data-root", str(demo_root), "--offline")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "broken.csv" in proc.stderr
    assert "Entry_Timestamp" in proc.stderr
    assert "4" in proc.stderr  # line 4 of the file (header is line 1)
    assert "Traceback" not in proc.stderr
    assert tree(demo_root) == before


def test_offline_discover_writes_a_valid_report_with_gaps(demo_root: Path) -> None:
    proc = run("discover", "demo", "--data-root", str(demo_root), "--offline", "--json")
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    report = json.loads(Path(out["report_path"]).read_text())
    validate_report(report)
    assert report["discovery_metadata"]["upstream"] == "offline"
    assert report["portfolio_summary"]["total_trades"] == 40
    assert any(g["reason"] == "offline" for g in report["gaps"])
    assert sum(u["network_requests"] for u in report["service_usage"].values()) == 0
    assert len(out["summary"]) < 6000


def test_unset_variable_in_config_is_an_error(demo_root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "tradescout.toml"
    cfg.write_text('[services.fmp]\nbase_url = "${TS_TEST_UNSET_VAR}"\n')
    proc = run("inventory", "demo", "--data-root", str(demo_root), "--config", str(cfg))
    assert proc.returncode == 2
    assert "TS_TEST_UNSET_VAR" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["discover", "--help"],
        ["inventory", "--help"],
        ["refresh", "--help"],
        ["schedule", "--help"],
        ["sandbox", "--help"],
        ["services", "--help"],
        ["cache", "report", "--help"],
    ],
)
def test_help_texts(command: list[str]) -> None:
    proc = run(*command)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_services_never_show_keys(demo_root: Path) -> None:
    secret = "SEKRETcli42"
    proc = run(
        "services",
        "--data-root",
        str(demo_root),
        "--json",
        env={"FMP_API_KEY": secret, "FRED_API_KEY": secret},
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    rows = {r["service"]: r for r in json.loads(proc.stdout)["services"]}
    assert rows["fmp"]["key_present"] is True and rows["fmp"]["configured"] is True
    assert rows["alpha_vantage"]["key_present"] is False
    assert rows["sec_edgar"]["configured"] is False
