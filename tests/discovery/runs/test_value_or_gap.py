"""Property: whatever each upstream answers — a real payload, "not found", a refusal with the
service's real error body, a 5xx, a timeout, a malformed or an empty body — every report slot
ends as a value or a gap, never both or neither, and the exit code follows the gaps' kinds."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.report.schema import validate_report
from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from tests.conftest import (
    STANDIN_OUTCOMES,
    T0,
    assert_every_slot_is_a_value_or_a_gap,
    portfolio_rows,
    standin_answer,
    standin_env,
    write_fast_config,
)

BASE = "http://standin.invalid"
TICKERS = ("AAPL", "META", "MQG.AX", "BTC-USD")
UNDRAWN = ("/", "/v1/test/getcrumb")  # Yahoo's session set-up: always answered


def transport(data: st.DataObject) -> httpx.MockTransport:
    """Each distinct request gets one outcome (every retry of it sees the same), chosen from one
    seed drawn up front: concurrent requests arrive in no fixed order, and drawing per request
    in arrival order made hypothesis see a different draw sequence on each replay."""
    seed = data.draw(st.integers(min_value=0, max_value=2**32 - 1), label="seed")

    def outcome_for(ident: tuple[str, str, tuple[tuple[str, str], ...]]) -> str:
        digest = hashlib.sha256(repr((seed, ident)).encode()).digest()
        return STANDIN_OUTCOMES[int.from_bytes(digest[:4], "big") % len(STANDIN_OUTCOMES)]

    def handle(request: httpx.Request) -> httpx.Response:
        service, _, rest = request.url.path.lstrip("/").partition("/")
        path = "/" + rest
        params = {k: v for k, v in request.url.params.items() if k not in ("apikey", "api_key")}
        ident = (service, path, tuple(sorted(params.items())))
        outcome = "ok" if path in UNDRAWN else outcome_for(ident)
        answer = standin_answer(service, path, params, outcome, T0.date())
        if answer is None:
            raise httpx.ReadTimeout("no answer from the stand-in", request=request)
        status, headers, body = answer
        return httpx.Response(status, headers=headers, content=body)

    return httpx.MockTransport(handle)


async def no_wait(_seconds: float) -> None:
    return None


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in standin_env(BASE).items():
        monkeypatch.setenv(name, value)


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_slot_is_a_value_or_a_gap_whatever_the_upstreams_answer(
    live_env: None, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        csv = root / "raw" / "trade_history" / "mix.csv"
        csv.parent.mkdir(parents=True)
        csv.write_text(portfolio_rows(TICKERS), encoding="utf-8")
        config = write_fast_config(Path(tmp) / "tradescout.toml", rate=1000.0)
        settings_ = load_settings(config, data_root=root)
        options = DiscoverOptions("mix", target=Target("live"))
        outcome = asyncio.run(
            discover_async(
                settings_, options, clock=lambda: T0, transport=transport(data), sleep=no_wait
            )
        )
    report: Any = outcome.report
    assert report is not None
    validate_report(report)
    assert set(report["ticker_data"]) == set(TICKERS)
    assert_every_slot_is_a_value_or_a_gap(report)
    fault = any(g.is_fault for g in outcome.gaps)
    assert outcome.exit_code == (3 if fault or report["discovery_metadata"]["stopped_early"] else 0)
