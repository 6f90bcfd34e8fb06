"""Fixtures for the readers of written reports (report, view, mcp): a demo data root with one
offline report in it (no network: every market and ticker slot a gap, the same every time)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from tests.conftest import demo_root


@pytest.fixture(scope="session")
def offline_report_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only for the tests: copy it (`reported_root`) before writing into it."""
    root = demo_root(tmp_path_factory.mktemp("offline"))
    settings = load_settings(None, data_root=root)
    outcome = asyncio.run(
        discover_async(settings, DiscoverOptions("demo", target=Target(offline=True)))
    )
    assert outcome.exit_code == 3 and outcome.report_path is not None
    return root


@pytest.fixture
def reported_root(offline_report_root: Path, tmp_path: Path) -> Path:
    """A private copy of `offline_report_root` that a test may change."""
    root = tmp_path / "data"
    shutil.copytree(offline_report_root, root)
    return root


@pytest.fixture(scope="session")
def offline_gaps(offline_report_root: Path) -> int:
    """How many gaps the offline report lists (one per slot it could not fill), read from it."""
    [path] = (offline_report_root / "outputs" / "trade_history" / "discovery").glob("demo_*.json")
    count = len(json.loads(path.read_text("utf-8"))["gaps"])
    assert count > 32 * 2  # at least every ticker's chart and filings, and the market context
    return count
