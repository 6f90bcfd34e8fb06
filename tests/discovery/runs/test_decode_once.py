"""A warm run decodes each cached payload once: the planner reads only headers (no hash over
the payload), the engine's cache read decodes it and hands it to the slot's parser at once,
and assembly never reads the cache again (issue 13, warm speed)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import cache.envelope
from discovery.runs.discover import DiscoverOptions, Outcome, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from tests.conftest import T0, portfolio_rows, standin_answer, standin_env, write_fast_config

BASE = "http://standin.invalid"
TICKERS = ("AAPL", "META", "MQG.AX", "BTC-USD")


def answering(sent: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        service, _, rest = request.url.path.lstrip("/").partition("/")
        params = {k: v for k, v in request.url.params.items() if k not in ("apikey", "api_key")}
        answer = standin_answer(service, "/" + rest, params, "ok", T0.date())
        assert answer is not None
        sent.append(service)
        status, headers, body = answer
        return httpx.Response(status, headers=headers, content=body)

    return httpx.MockTransport(handle)


async def no_wait(_seconds: float) -> None:
    return None


def run(root: Path, config: Path, sent: list[str]) -> Outcome:
    settings = load_settings(config, data_root=root)
    options = DiscoverOptions("mix", target=Target("live"))
    return asyncio.run(
        discover_async(
            settings, options, clock=lambda: T0, transport=answering(sent), sleep=no_wait
        )
    )


def test_a_warm_run_decodes_each_payload_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in standin_env(BASE).items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "data"
    csv = root / "raw" / "trade_history" / "mix.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(portfolio_rows(TICKERS), encoding="utf-8")
    config = write_fast_config(tmp_path / "tradescout.toml", rate=1000.0)
    cold_sent: list[str] = []
    cold = run(root, config, cold_sent)
    assert cold.report is not None and cold_sent

    decoded: Counter[bytes] = Counter()
    real = cache.envelope._decode_payload

    def counting(raw: bytes) -> Any:
        decoded[bytes(raw)] += 1
        return real(raw)

    monkeypatch.setattr(cache.envelope, "_decode_payload", counting)
    warm_sent: list[str] = []
    warm = run(root, config, warm_sent)
    assert warm.report is not None and warm_sent == []
    hits = sum(u["cache_hits"] for u in warm.report["service_usage"].values())
    assert hits >= len(TICKERS) * 2  # charts and profiles at least, all from the cache
    # One decode per cache hit (the engine's read), none before it (planning reads headers)
    # or after it (phase two and assembly take the parsed records).
    assert sum(decoded.values()) == hits, decoded
    # The same report either way: values, not re-reads, fill the slots.
    assert warm.report["ticker_data"].keys() == cold.report["ticker_data"].keys()
    for ticker, slots in cold.report["ticker_data"].items():
        for field in ("price_history", "profile", "filings"):
            assert warm.report["ticker_data"][ticker][field] == slots[field], (ticker, field)
    assert warm.report["market_context"] == cold.report["market_context"]


def test_a_run_result_has_a_short_repr() -> None:
    """asyncio.run formats its main task, result included, while it restores the SIGINT
    handler: a result that printed its whole report cost a 500-ticker run ~0.06 s."""
    from discovery.runs.refresh import RefreshResult

    report = {"ticker_data": {f"T{i}": {"price_history": list(range(100))} for i in range(2000)}}
    outcome = Outcome(0, report=report, summary="x" * 10_000)
    assert len(repr(outcome)) < 200 and "exit_code=0" in repr(outcome)
    result = RefreshResult("r1", ["demo"], refreshed=[{"k": "v" * 1000}] * 1000)
    assert len(repr(result)) < 200 and "r1" in repr(result)
