"""End to end in live mode against a loopback stand-in that answers with the real services'
payload shapes (tests/fixtures/real/), not the sandbox's: the issue's scenario — SPY and ^VIX
answer 404, every FRED series 400 "The series does not exist.", IMF its empty `{"api": …}`,
SEC 404 for one CIK — and each of them is in `gaps` with its subject and reason."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from discovery.plan.needs import MACRO_SERIES
from discovery.report.schema import validate_report
from tests.conftest import (
    assert_every_slot_is_a_value_or_a_gap,
    demo_root,
    report_files,
    run_cli,
    standin_answer,
    standin_env,
    write_fast_config,
)

pytestmark = pytest.mark.integration

Chooser = Callable[[str, str, dict[str, str]], str]
APPLE_CIK = "0000320193"


def scenario(service: str, path: str, params: dict[str, str]) -> str:
    symbol = path.rsplit("/", 1)[-1]
    if service == "yahoo_finance" and (symbol in ("SPY", "^VIX") or symbol.startswith("ZZ")):
        return "not_found"
    if service in ("fred", "imf"):
        return "not_found"
    if service == "sec_edgar" and path.endswith(f"CIK{APPLE_CIK}.json"):
        return "not_found"
    return "ok"


class StandIn:
    """The real shapes on 127.0.0.1, every service under `{url}/{service}`; counts requests."""

    def __init__(self, choose: Chooser) -> None:
        self.requests: list[str] = []
        today = datetime.now(UTC).date()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                service, _, rest = unquote(url.path).lstrip("/").partition("/")
                path = "/" + rest
                params = dict(parse_qsl(url.query))
                stand_in.requests.append(f"{service}{path}")
                answer = standin_answer(service, path, params, choose(service, path, params), today)
                status, headers, body = answer or (504, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(scenario) as server:
        yield server


def discover(root: Path, config: Path, url: str, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(
        ["discover", "demo", "--data-root", str(root), "--config", str(config), *args],
        cwd=root.parent,
        env=standin_env(url),
    )
    assert proc.returncode in (0, 3), proc.stderr
    report: dict[str, Any] = json.loads(report_files(root)[0].read_text("utf-8"))
    validate_report(report)
    return proc.returncode, report


def gap(report: dict[str, Any], slot: str, subject: str) -> dict[str, Any]:
    found = [g for g in report["gaps"] if g["slot"] == slot and g["subject"] == subject]
    assert len(found) == 1, (slot, subject, report["gaps"])
    return found[0]


def test_real_refusals_each_end_as_a_gap_with_subject_and_reason(
    tmp_path: Path, standin: StandIn
) -> None:
    root = demo_root(tmp_path)
    config = write_fast_config(tmp_path / "tradescout.toml")
    code, report = discover(root, config, standin.url)

    assert gap(report, "benchmark", "SPY")["reason"] == "not_found"
    vix = gap(report, "vix", "^VIX")
    assert (vix["reason"], vix["detail"]) == ("not_found", "No data found, symbol may be delisted")
    for series in MACRO_SERIES:
        fred = gap(report, "indicator", series)
        assert fred["reason"] == "not_found" and "The series does not exist." in fred["detail"]
    growth = next(g for g in report["gaps"] if g["slot"] == "growth")
    assert growth["reason"] == "no_data" and growth["subject"] == "CHN,DEU,GBR,IND,JPN,USA"
    apple = gap(report, "filings", "AAPL")
    assert (apple["ticker"], apple["service"], apple["reason"]) == (
        "AAPL",
        "sec_edgar",
        "not_found",
    )
    assert all(g["fix"] for g in report["gaps"])
    market = report["market_context"]
    assert market["benchmarks"] == {} and market["volatility"] == {}
    assert market["economic_indicators"] == {} and market["global_growth"] == {}
    # the rest came through the real shapes: charts with meta.currency, profiles, a CIK map
    assert report["ticker_data"]["MSFT"]["filings"]
    assert report["ticker_data"]["MQG.AX"]["price_history"]["currency"] == "AUD"
    assert report["ticker_data"]["NVDA"]["profile"]["sector"]
    assert "prices" in market["crypto"] and "market" in market["crypto"]
    assert_every_slot_is_a_value_or_a_gap(report)
    # facts about the data only: the report is complete
    assert code == 0
    assert report["next_phase_inputs"]["complete"] is True


def test_unknown_benchmark_on_a_cold_run_is_a_gap(tmp_path: Path, standin: StandIn) -> None:
    root = demo_root(tmp_path)
    config = write_fast_config(tmp_path / "tradescout.toml")
    _, report = discover(root, config, standin.url, "--benchmark", "ZZNEW")
    bench = gap(report, "benchmark", "ZZNEW")
    assert (bench["service"], bench["reason"]) == ("yahoo_finance", "not_found")
    assert report["market_context"]["benchmarks"] == {}
    assert_every_slot_is_a_value_or_a_gap(report, benchmark="ZZNEW")
