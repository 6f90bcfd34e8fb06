"""The generated page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
with every request that is not a `file:` URL blocked: no console error, no failed request, the
coverage matrix complete, and a screenshot kept under the test's tmp dir."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import report_files, run_cli
from tests.discovery.view.test_page import expected_gap_marks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def with_closed_trades(root: Path) -> dict[str, Any]:
    """Give the report the closed trades of its own CSV (the shape the analysis sections use),
    so the equity curve and the monthly bars are drawn too."""
    path = report_files(root)[-1]
    report = json.loads(path.read_text())
    with (root / "raw" / "trade_history" / "demo.csv").open(newline="") as fh:
        report["closed_trades"] = [
            {"ticker": r["Ticker"], "exit_date": r["Exit_Timestamp"][:10], "pnl": float(r["PnL"])}
            for r in csv.DictReader(fh)
            if r["Status"] == "Closed"
        ]
    path.write_text(json.dumps(report))
    return report


@pytest.mark.integration
def test_page_in_headless_chromium(reported_root: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)")
    report = with_closed_trades(reported_root)
    page_path = tmp_path / "demo.html"
    proc = run_cli(
        ["view", "demo", "--data-root", str(reported_root), "--output", str(page_path), "--json"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bytes"] == page_path.stat().st_size < 200_000
    blocked: list[str] = []
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=FLAGS,
            ignore_default_args=["--enable-automation"],
        )
        try:
            page = browser.new_page(viewport={"width": 1150, "height": 900})

            def route(r: Any) -> None:
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto(page_path.as_uri())
            cells = page.locator("td.cell").count()
            marks = page.locator("td.cell.gap .gap-mark").count()
            first_gap_title = page.locator("td.cell.gap").first.get_attribute("title") or ""
            charts = page.locator("svg").count()
            shot = tmp_path / "view.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {shot}")
    assert blocked == [] and problems == []
    assert cells == 32 * 4
    assert marks == expected_gap_marks(report) > 60
    assert "offline" in first_gap_title
    assert charts >= 3  # equity, drawdown, monthly bars
    assert shot.stat().st_size > 10_000
