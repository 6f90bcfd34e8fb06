"""The fetch engine: every request it schedules is awaited, whenever it is scheduled."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer
from tests.conftest import FAST_LIMITS, fast_config, generated_root


@pytest.mark.integration
async def test_filings_scheduled_while_the_stage_drains_are_all_awaited(tmp_path: Path) -> None:
    """SEC slow (every SEC answer 0.3 s late) and 30 tickers: the filings are scheduled when
    the CIK map arrives, after everything else has been scheduled and while the other services
    finish — each of the 30 still ends as a value or a gap (before the engine, up to all of
    them vanished without a gap and the run said exit 0)."""
    root = generated_root(tmp_path, 30)
    faults = [FaultSpec("sec_edgar", "slow", 1.0)]
    with SandboxServer(faults=faults, rate_limits=FAST_LIMITS, slow_ms=300) as server:
        settings = load_settings(fast_config(tmp_path), data_root=root)
        options = DiscoverOptions("gen", target=Target("sandbox", server.url))
        outcome = await discover_async(settings, options)
    assert outcome.report is not None
    filings_gaps = {g.ticker for g in outcome.gaps if g.slot == "filings"}
    for ticker, data in outcome.report["ticker_data"].items():
        assert (data["filings"] is not None) != (ticker in filings_gaps), ticker
    assert sum(1 for d in outcome.report["ticker_data"].values() if d["filings"]) == 30
    assert outcome.exit_code == 0
