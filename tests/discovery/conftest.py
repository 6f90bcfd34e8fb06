"""Fixtures for the readers of written reports (report, view, mcp): a demo data root with one
offline report in it (no network; 97 gaps, the same facts every time)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from tests.conftest import demo_root


@pytest.fixture(scope="session")
def offline_report_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only for the tests: copy it (`reported_root`) before writing into it."""
    root = demo_root(tmp_path_factory.mktemp("offline"))
    settings = load_settings(None, data_root=root)
    outcome = asyncio.run(discover_async(settings, DiscoverOptions("demo", upstream="offline")))
    assert outcome.exit_code == 3 and outcome.report_path is not None
    return root


@pytest.fixture
def reported_root(offline_report_root: Path, tmp_path: Path) -> Path:
    """A private copy of `offline_report_root` that a test may change."""
    root = tmp_path / "data"
    shutil.copytree(offline_report_root, root)
    return root
