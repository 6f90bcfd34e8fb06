"""The product's service parsers accept every sandbox payload (requests built by the product's
own request builders, sent through real sockets to the sandbox)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.errors import PlanLimited
from services.sandbox import SandboxServer
from services.spec import Reply, ServiceRequest
from tests.conftest import YahooBrowser

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 21, 15, tzinfo=UTC)
CREDENTIALS = {
    "fmp": {"apikey": "sandbox-key"},
    "alpha_vantage": {"apikey": "sandbox-key"},
    "fred": {"api_key": "sandbox-key"},
}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        SandboxServer(clock=lambda: NOW, faults=(), enforce_limits=False) as server,
        httpx.Client(
            auth=YahooBrowser(),
            base_url=server.url,
            headers={"User-Agent": "tradescout-sandbox sandbox@example.invalid"},
        ) as c,
    ):
        yield c


def fetch(client: httpx.Client, request: ServiceRequest) -> tuple[int, Any]:
    params = {**request.params, **CREDENTIALS.get(request.service, {})}
    r = client.get(f"/{request.service}{request.path}", params=params)
    return r.status_code, r.json()


@pytest.mark.parametrize("symbol", ["AAPL", "BRK-B", "MQG.AX", "BTC-USD", "^VIX", "SPY"])
def test_yahoo_chart(client: httpx.Client, symbol: str) -> None:
    request = yahoo_finance.chart_request(symbol)
    status, body = fetch(client, request)
    assert yahoo_finance.classify(request, status, body) == "ok"
    history = yahoo_finance.parse_chart(body)
    assert history.symbol == symbol and len(history.bars) > 200


def test_yahoo_unknown_is_negative(client: httpx.Client) -> None:
    request = yahoo_finance.chart_request("ZZZZ")
    status, body = fetch(client, request)
    assert yahoo_finance.classify(request, status, body) == "negative"


@pytest.mark.parametrize(
    ("symbol", "fmp_verdict", "av_verdict"),
    [
        ("AAPL", "ok", "ok"),
        ("MQG.AX", "plan_limited", "negative"),  # FMP's free plan: US-listed symbols only
        ("ZZQQ", "negative", "negative"),
    ],
)
def test_profiles(client: httpx.Client, symbol: str, fmp_verdict: str, av_verdict: str) -> None:
    request = fmp.profile_request(symbol)
    status, body = fetch(client, request)
    refusal = fmp.refusal(request, Reply(status, {}, body, ""))
    if fmp_verdict == "plan_limited":
        assert isinstance(refusal, PlanLimited) and status == 402
    else:
        assert refusal is None and fmp.classify(request, status, body) == fmp_verdict
    if fmp_verdict == "ok":
        profile = fmp.parse_profile(body)
        assert profile is not None and profile.sector
    request = alpha_vantage.overview_request(symbol)
    status, body = fetch(client, request)
    assert alpha_vantage.classify(request, status, body) == av_verdict
    if av_verdict == "ok":
        overview = alpha_vantage.parse_overview(body)
        assert overview is not None and overview.sector


def test_sec(client: httpx.Client) -> None:
    status, body = fetch(client, sec_edgar.company_tickers_request())
    ciks = sec_edgar.parse_company_tickers(body)
    assert status == 200 and "AAPL" in ciks
    status, body = fetch(client, sec_edgar.submissions_request(ciks["AAPL"]))
    filings = sec_edgar.parse_submissions(body)
    assert status == 200 and filings


@pytest.mark.parametrize("series", ["FEDFUNDS", "DGS10", "CPIAUCSL", "UNRATE", "VIXCLS", "GDPC1"])
def test_fred(client: httpx.Client, series: str) -> None:
    request = fred.observations_request(series, date(2025, 1, 1))
    status, body = fetch(client, request)
    assert fred.classify(request, status, body) == "ok"
    assert fred.parse_observations(body)


def test_coingecko(client: httpx.Client) -> None:
    ids = [coingecko.coin_id(t) for t in ("BTC-USD", "ETH-USD", "TON-USD")]
    request = coingecko.simple_price_request([i for i in ids if i])
    status, body = fetch(client, request)
    quotes = coingecko.parse_simple_price(body)
    assert status == 200 and set(quotes) == {"bitcoin", "ethereum", "the-open-network"}
    status, body = fetch(client, coingecko.global_request())
    assert status == 200 and coingecko.parse_global(body)


def test_every_coin_the_product_maps_is_known(client: httpx.Client) -> None:
    request = coingecko.simple_price_request(list(coingecko.COIN_IDS.values()))
    _, body = fetch(client, request)
    assert set(body) == set(coingecko.COIN_IDS.values())


def test_imf(client: httpx.Client) -> None:
    request = imf.growth_request("NGDP_RPCH", ["USA", "DEU"])
    status, body = fetch(client, request)
    parsed = imf.parse_datamapper(body, "NGDP_RPCH", current_year=NOW.year)
    assert status == 200 and set(parsed) == {"USA", "DEU"}
    assert any(v.projection for v in parsed["USA"])
