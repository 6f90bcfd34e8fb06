"""`tradescout report`, `--version`, `-h`, JSON errors and piped tables, as a user's shell (or an
assistant's shell tool: no TTY, stdout a pipe) sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discovery import __version__
from tests.conftest import listing, run_cli


def report(root: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(["report", "demo", "--data-root", str(root), *args], cwd=root.parent)
    return proc.returncode, proc.stdout, proc.stderr


def test_overview_names_every_section_and_is_read_only(offline_report_root: Path) -> None:
    before = listing(offline_report_root)
    code, out, err = report(offline_report_root)
    assert code == 0, err
    assert "tradescout discover · demo · upstream offline" in out
    assert "ticker_data" in out and "Read one:" in out
    code, out, _ = report(offline_report_root, "--json")
    body = json.loads(out)
    written = json.loads(Path(body["report_path"]).read_text("utf-8"))
    assert body["gaps"] == len(written["gaps"]) > 32 and body["tickers"] == 32
    assert set(body["sections"]) >= {"gaps", "ticker_data", "active_positions"}
    assert body["report_path"].endswith(".json")
    assert listing(offline_report_root) == before


def test_large_section_is_cut_at_entries_with_a_pointer(
    offline_report_root: Path, offline_gaps: int
) -> None:
    code, out, _ = report(offline_report_root, "--section", "gaps")
    assert code == 0
    text, note = out.rstrip("\n").rsplit("\n", 1)
    assert len(text) <= 6000
    assert "entries not shown" in text and "--json" in note
    shown = json.loads(text)
    assert isinstance(shown[-1], str) and shown[-1].startswith(
        f"{offline_gaps - (len(shown) - 1)} of {offline_gaps}"
    )
    code, out, _ = report(offline_report_root, "--section", "gaps", "--json")
    assert len(json.loads(out)) == offline_gaps
    code, out, _ = report(offline_report_root, "--section", "gaps", "--max-chars", "100000")
    assert len(json.loads(out)) == offline_gaps


def test_ticker_slice_and_section_for_one_ticker(offline_report_root: Path) -> None:
    code, out, err = report(offline_report_root, "--ticker", "aapl", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["ticker"] == "AAPL" and body["performance"]["total_trades"] == 3
    assert body["local_analysis"]["file"].endswith("AAPL_20261112.md")
    assert body["gaps"] and {g["ticker"] for g in body["gaps"]} == {"AAPL"}
    assert [p["ticker"] for p in body["active_positions"]] == ["AAPL"]
    code, out, _ = report(offline_report_root, "--section", "active_positions", "--ticker", "NVDA")
    assert code == 0 and {p["ticker"] for p in json.loads(out)} == {"NVDA"}
    code, out, _ = report(offline_report_root, "--section", "ticker_performance", "--ticker", "V")
    assert list(json.loads(out)) == ["V"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--section", "nope"], "sections: portfolio, discovery_metadata"),
        (["--ticker", "ZZZZ"], "tickers: AAPL"),
        (["--section", "performance_metrics", "--ticker", "AAPL"], "not broken down by ticker"),
    ],
)
def test_bad_names_are_one_sentence_with_the_valid_ones(
    offline_report_root: Path, args: list[str], needle: str
) -> None:
    code, out, err = report(offline_report_root, *args, "--json")
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert json.loads(out) == {"error": json.loads(out)["error"], "exit_code": 2}
    assert needle in json.loads(out)["error"]


def test_list_and_missing_reports(
    offline_report_root: Path, offline_gaps: int, tmp_path: Path
) -> None:
    code, out, _ = report(offline_report_root, "--list", "--json")
    rows = json.loads(out)["reports"]
    assert code == 0 and len(rows) == 1 and rows[0]["upstream"] == "offline"
    assert rows[0]["gaps"] == offline_gaps
    missing = tmp_path / "nothing-here"
    proc = run_cli(["report", "demo", "--data-root", str(missing)], cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not missing.exists()


def test_history_folder_wins_over_daily_files(reported_root: Path) -> None:
    discovery = reported_root / "outputs" / "trade_history" / "discovery"
    daily = next(discovery.glob("demo_*.json"))
    history = discovery / "history"
    kept = sorted(history.glob("demo_*.json"))  # the discover run's own copy
    assert len(kept) == 1
    for run in ("20261101T010000Z-aaaa", "20261102T010000Z-bbbb"):
        (history / f"demo_{run}.json").write_bytes(daily.read_bytes())
    (history / "other_20261101T010000Z-cccc.json").write_text("{}")
    code, out, _ = report(reported_root, "--list", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["source"] == "history"
    own = json.loads(kept[0].read_text("utf-8"))["discovery_metadata"]["run_id"]
    assert body["reports"][0]["run_id"] == own
    assert [r["date"] for r in body["reports"]][1:] == ["2026-11-02", "2026-11-01"]


def test_version_and_short_help() -> None:
    proc = run_cli(["--version"], cwd=Path.cwd())
    assert proc.returncode == 0 and proc.stdout.strip() == f"tradescout {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["discover"],
        ["inventory"],
        ["report"],
        ["view"],
        ["refresh"],
        ["schedule"],
        ["sandbox"],
        ["services"],
        ["mcp"],
        ["cache"],
        ["cache", "report"],
        ["cache", "optimize"],
        ["cache", "verify"],
    ],
)
def test_dash_h_on_every_command(command: list[str]) -> None:
    proc = run_cli([*command, "-h"], cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "-h, --help" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["discover", "nope", "--offline"],
        ["discover", "demo", "--timeframe", "2w"],
        ["discover", "demo", "--no-such-flag"],
        ["inventory", "nope"],
        ["report", "nope"],
        ["view", "nope"],
        ["refresh", "--budget", "nope=1"],
        ["services", "--config", "missing.toml"],
        ["cache", "report", "--config", "missing.toml"],
    ],
)
def test_errors_under_json_are_json_on_stdout(offline_report_root: Path, args: list[str]) -> None:
    proc = run_cli([*args, "--data-root", str(offline_report_root), "--json"], cwd=Path.cwd())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    body = json.loads(proc.stdout)
    assert body["exit_code"] == 2 and body["error"]
    assert "error" in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_piped_tables_are_never_cut(offline_report_root: Path) -> None:
    narrow = {"COLUMNS": "40"}
    root = ["--data-root", str(offline_report_root)]
    inv = run_cli(["inventory", "demo", *root], cwd=Path.cwd(), env=narrow)
    assert inv.returncode == 0, inv.stderr
    assert "outputs/fundamental_analysis/MQG.AX_20261019.md" in inv.stdout
    assert "2026-10-19" in inv.stdout and "…" not in inv.stdout
    svc = run_cli(["services", *root], cwd=Path.cwd(), env=narrow)
    assert "yahoo_finance" in svc.stdout and "ALPHA_VANTAGE_API_KEY not set" in svc.stdout
    assert "…" not in svc.stdout
    cache = run_cli(["cache", "report", *root], cwd=Path.cwd(), env=narrow)
    assert cache.returncode == 0, cache.stderr
    assert "hit ratio (life / last run)" in cache.stdout and "…" not in cache.stdout
