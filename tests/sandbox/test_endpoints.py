"""The sandbox's simulated endpoints through real sockets: shapes, determinism, unknown symbols."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox import SandboxServer, coin_ids, crypto_pairs, equity_symbols
from tests.conftest import YahooBrowser

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # a Saturday
UA = {"User-Agent": "tradescout-sandbox sandbox@example.invalid"}
REFERENCE = Path("/work/shared/reference/payloads")


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=fixed_clock, faults=(), enforce_limits=False) as server:
        yield server


@pytest.fixture(scope="module")
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(auth=YahooBrowser(), base_url=sandbox.url, headers=UA, timeout=10) as c:
        yield c


def reference_keys(name: str) -> set[str] | None:
    path = REFERENCE / name
    if not path.exists():
        return None
    return set(json.loads(path.read_text()))


def get(client: httpx.Client, path: str, **params: Any) -> httpx.Response:
    r = client.get(path, params=params)
    assert r.headers["x-tradescout-synthetic"] == "true"
    return r


# --- Yahoo -------------------------------------------------------------------------------------


def test_yahoo_chart_shape_and_weekend(client: httpx.Client) -> None:
    r = get(client, "/yahoo_finance/v8/finance/chart/AAPL", range="1y", interval="1d")
    assert r.status_code == 200
    chart = r.json()["chart"]
    assert chart["error"] is None
    result = chart["result"][0]
    meta = result["meta"]
    for key in ("currency", "symbol", "exchangeName", "instrumentType", "regularMarketPrice"):
        assert key in meta
    assert meta["symbol"] == "AAPL" and meta["instrumentType"] == "EQUITY"
    assert meta["currency"] == "USD" and meta["range"] == "1y" and meta["dataGranularity"] == "1d"
    stamps = result["timestamp"]
    quote = result["indicators"]["quote"][0]
    adj = result["indicators"]["adjclose"][0]["adjclose"]
    assert 240 <= len(stamps) <= 262
    for column in ("open", "high", "low", "close", "volume"):
        assert len(quote[column]) == len(stamps)
    assert len(adj) == len(stamps)
    assert stamps == sorted(stamps)
    days = [datetime.fromtimestamp(t, UTC) for t in stamps]
    assert all(d.weekday() < 5 for d in days)
    # Bars are stamped at the 16:00 New York close (20:00 or 21:00 UTC).
    assert {d.hour for d in days} <= {20, 21}
    # Saturday: the latest bar is Friday's and it is the market price.
    assert days[-1].date() == date(2026, 11, 20)
    assert meta["regularMarketPrice"] == quote["close"][-1]
    for o, h, lo, c in zip(quote["open"], quote["high"], quote["low"], quote["close"], strict=True):
        assert lo <= min(o, c) and h >= max(o, c) and lo > 0


def test_yahoo_matches_recorded_shape(client: httpx.Client) -> None:
    path = REFERENCE / "yahoo_finance__chart_AAPL.json"
    if not path.exists():
        pytest.skip("reference payloads not available")
    real = json.loads(path.read_text())["chart"]["result"][0]
    ours = get(client, "/yahoo_finance/v8/finance/chart/MSFT", range="1mo").json()
    result = ours["chart"]["result"][0]
    assert set(real["meta"]) - {"currentTradingPeriod"} <= set(result["meta"])
    assert set(real["indicators"]) == set(result["indicators"])
    assert set(real["indicators"]["quote"][0]) == set(result["indicators"]["quote"][0])


def test_yahoo_period_agrees_with_range(client: httpx.Client) -> None:
    """A day's bar is the same whichever window asked for it."""
    by_range = get(client, "/yahoo_finance/v8/finance/chart/NVDA", range="6mo").json()
    result = by_range["chart"]["result"][0]
    stamps = result["timestamp"]
    closes = result["indicators"]["quote"][0]["close"]
    p1, p2 = stamps[10] - 3600, stamps[20] + 3600
    by_period = get(
        client, "/yahoo_finance/v8/finance/chart/NVDA", period1=p1, period2=p2, interval="1d"
    ).json()["chart"]["result"][0]
    assert by_period["meta"]["range"] == ""
    assert by_period["timestamp"] == stamps[10:21]
    assert by_period["indicators"]["quote"][0]["close"] == closes[10:21]


@pytest.mark.parametrize(
    ("symbol", "instrument", "currency", "hours"),
    [
        ("BTC-USD", "CRYPTOCURRENCY", "USD", {0}),
        ("^VIX", "INDEX", "USD", {20, 21}),
        ("SPY", "ETF", "USD", {20, 21}),
        ("MQG.AX", "EQUITY", "AUD", {5, 6}),
    ],
)
def test_yahoo_instrument_types(
    client: httpx.Client, symbol: str, instrument: str, currency: str, hours: set[int]
) -> None:
    r = get(client, f"/yahoo_finance/v8/finance/chart/{symbol}", range="1mo", interval="1d")
    assert r.status_code == 200
    result = r.json()["chart"]["result"][0]
    assert result["meta"]["instrumentType"] == instrument
    assert result["meta"]["currency"] == currency
    assert result["meta"]["symbol"] == symbol
    assert {datetime.fromtimestamp(t, UTC).hour for t in result["timestamp"]} <= hours
    if symbol == "BTC-USD":  # crypto trades every day, weekends included
        assert datetime.fromtimestamp(result["timestamp"][-1], UTC).date() == NOW.date()


def test_yahoo_unknown_symbol_is_404_with_error_body(client: httpx.Client) -> None:
    r = get(client, "/yahoo_finance/v8/finance/chart/ZZZZ", range="1y", interval="1d")
    assert r.status_code == 404
    body = r.json()
    assert body["chart"]["result"] is None
    assert body["chart"]["error"]["code"] == "Not Found"
    ref = REFERENCE / "yahoo_finance__chart_error_unknown_symbol.json"
    if ref.exists():
        assert set(json.loads(ref.read_text())["chart"]["error"]) == set(body["chart"]["error"])


def test_yahoo_bad_interval_and_range(client: httpx.Client) -> None:
    assert get(client, "/yahoo_finance/v8/finance/chart/AAPL", interval="7q").status_code == 400
    r = get(client, "/yahoo_finance/v8/finance/chart/AAPL", range="3w", interval="1d")
    assert r.status_code == 400 and r.json()["chart"]["error"]["code"] == "Bad Request"


def test_deterministic_across_servers(client: httpx.Client) -> None:
    """Same request, same day → same bytes, even from a fresh sandbox."""
    paths = [
        "/yahoo_finance/v8/finance/chart/AAPL?range=1y&interval=1d",
        "/fmp/stable/profile?symbol=JPM&apikey=k",
        "/alpha_vantage/query?function=OVERVIEW&symbol=KO&apikey=k",
        "/fred/fred/series/observations?series_id=DGS10&api_key=k&file_type=json",
        "/coingecko/api/v3/global",
        "/imf/external/datamapper/api/v1/NGDP_RPCH/USA",
    ]
    first = [client.get(p).content for p in paths]
    with (
        SandboxServer(clock=fixed_clock, faults=(), enforce_limits=False) as other,
        httpx.Client(auth=YahooBrowser(), base_url=other.url, headers=UA) as c2,
    ):
        second = [c2.get(p).content for p in paths]
    assert first == second


def test_prices_differ_by_symbol_and_day(client: httpx.Client) -> None:
    a = get(client, "/yahoo_finance/v8/finance/chart/AAPL", range="5d").json()
    m = get(client, "/yahoo_finance/v8/finance/chart/MSFT", range="5d").json()
    closes_a = a["chart"]["result"][0]["indicators"]["quote"][0]["close"]
    closes_m = m["chart"]["result"][0]["indicators"]["quote"][0]["close"]
    assert len(closes_a) == 5 and closes_a != closes_m and len(set(closes_a)) == 5


# --- FMP / Alpha Vantage -----------------------------------------------------------------------


def test_fmp_profile_shape(client: httpx.Client) -> None:
    r = get(client, "/fmp/stable/profile", symbol="AAPL", apikey="sandbox-key")
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    profile = body[0]
    ref = REFERENCE / "fmp__profile_AAPL.json"
    expected = set(json.loads(ref.read_text())[0]) if ref.exists() else None
    if expected is not None:
        assert set(profile) == expected
    assert profile["symbol"] == "AAPL" and profile["sector"] == "Technology"
    assert profile["industry"] and isinstance(profile["marketCap"], int)
    assert len(profile["cik"]) == 10
    yahoo = get(client, "/yahoo_finance/v8/finance/chart/AAPL", range="5d").json()
    assert profile["price"] == round(yahoo["chart"]["result"][0]["meta"]["regularMarketPrice"], 2)


def test_fmp_unknown_crypto_and_missing_key(client: httpx.Client) -> None:
    assert get(client, "/fmp/stable/profile", symbol="ZZTOP", apikey="k").json() == []
    assert get(client, "/fmp/stable/profile", symbol="BTC-USD", apikey="k").json() == []
    r = get(client, "/fmp/stable/profile", symbol="AAPL")
    assert r.status_code == 401 and "Error Message" in r.json()


def test_alpha_vantage_overview_strings(client: httpx.Client) -> None:
    r = get(
        client, "/alpha_vantage/query", function="OVERVIEW", symbol="MSFT", apikey="sandbox-key"
    )
    body = r.json()
    assert r.status_code == 200
    assert all(isinstance(v, str) for v in body.values())
    for key in ("Symbol", "Name", "Sector", "Industry", "MarketCapitalization", "PERatio", "CIK"):
        assert key in body
    assert body["Symbol"] == "MSFT"
    assert int(body["MarketCapitalization"]) > 0
    ref = reference_keys("alpha_vantage__overview_IBM.json")
    if ref is not None:  # the modern field set drops the short-interest fields
        assert {k for k in ref - set(body) if "Short" not in k} == set()


@pytest.mark.parametrize("symbol", ["ZZQQ", "BTC-USD", "MQG.AX", "SPY"])
def test_alpha_vantage_unknown_is_empty_object(client: httpx.Client, symbol: str) -> None:
    r = get(client, "/alpha_vantage/query", function="OVERVIEW", symbol=symbol, apikey="k")
    assert r.status_code == 200 and r.json() == {}


# --- SEC ---------------------------------------------------------------------------------------


def test_sec_ticker_map_and_submissions(client: httpx.Client) -> None:
    r = get(client, "/sec_edgar/files/company_tickers.json")
    assert r.status_code == 200
    tickers = r.json()
    assert list(tickers) == [str(i) for i in range(len(tickers))]
    rows = list(tickers.values())
    assert all(set(row) == {"cik_str", "ticker", "title"} for row in rows)
    by_ticker = {row["ticker"]: row for row in rows}
    us = equity_symbols(us_only=True)
    assert set(us) <= set(by_ticker)
    assert "BTC-USD" not in by_ticker and "MQG.AX" not in by_ticker
    assert not any(t.startswith("ZZ") for t in by_ticker)
    cik = by_ticker["AAPL"]["cik_str"]
    sub = get(client, f"/sec_edgar/submissions/CIK{cik:010d}.json")
    assert sub.status_code == 200
    body = sub.json()
    assert body["cik"] == f"{cik:010d}" and body["tickers"] == ["AAPL"]
    recent = body["filings"]["recent"]
    lengths = {len(column) for column in recent.values()}
    assert len(lengths) == 1 and lengths.pop() > 10
    assert {"10-K", "10-Q", "8-K", "4"} <= set(recent["form"])
    dates = recent["filingDate"]
    assert dates == sorted(dates, reverse=True) and max(dates) <= NOW.date().isoformat()
    ref = REFERENCE / "sec__submissions_CIK0000320193.json"
    if ref.exists():
        real = json.loads(ref.read_text())
        assert set(real) <= set(body)
        assert set(real["filings"]["recent"]) <= set(recent)


def test_sec_requires_user_agent_and_knows_ciks(
    client: httpx.Client, sandbox: SandboxServer
) -> None:
    bare = httpx.get(
        sandbox.url + "/sec_edgar/files/company_tickers.json", headers={"User-Agent": ""}
    )
    assert bare.status_code == 403
    library = httpx.get(sandbox.url + "/sec_edgar/files/company_tickers.json")  # python-httpx/x
    assert library.status_code == 403
    assert get(client, "/sec_edgar/submissions/CIK0000000007.json").status_code == 404


# --- FRED --------------------------------------------------------------------------------------


@pytest.mark.parametrize("series", ["FEDFUNDS", "DGS10", "CPIAUCSL", "UNRATE", "VIXCLS", "GDPC1"])
def test_fred_series(client: httpx.Client, series: str) -> None:
    r = get(
        client,
        "/fred/fred/series/observations",
        series_id=series,
        api_key="sandbox-key",
        file_type="json",
        observation_start="2024-01-01",
    )
    assert r.status_code == 200
    body = r.json()
    ref = reference_keys("fred__observations_GDPC1.json")
    if ref is not None:
        assert ref == set(body)
    obs = body["observations"]
    assert body["count"] == len(obs) > 0
    assert obs[0]["date"] >= "2024-01-01" and obs[-1]["date"] < NOW.date().isoformat()
    assert all(isinstance(o["value"], str) for o in obs)
    assert all(set(o) == {"realtime_start", "realtime_end", "date", "value"} for o in obs)
    numbers = [float(o["value"]) for o in obs if o["value"] != "."]
    assert numbers and all(v == v for v in numbers)


def test_fred_daily_has_missing_dots_and_start_is_honoured(client: httpx.Client) -> None:
    full = get(
        client, "/fred/fred/series/observations", series_id="DGS10", api_key="k", file_type="json"
    ).json()["observations"]
    assert full[0]["date"] == "1962-01-02"
    dots = [o for o in full if o["value"] == "."]
    assert dots and any(o["date"].endswith("-12-25") for o in dots)
    recent = get(
        client,
        "/fred/fred/series/observations",
        series_id="DGS10",
        api_key="k",
        file_type="json",
        observation_start="2026-01-01",
    ).json()["observations"]
    assert recent == [o for o in full if o["date"] >= "2026-01-01"]


def test_fred_errors(client: httpx.Client) -> None:
    r = get(
        client, "/fred/fred/series/observations", series_id="NOPE", api_key="k", file_type="json"
    )
    assert r.status_code == 400
    assert r.json() == {
        "error_code": 400,
        "error_message": "Bad Request.  The series does not exist.",
    }
    r = get(client, "/fred/fred/series/observations", series_id="DGS10", file_type="json")
    assert r.status_code == 400 and "api_key" in r.json()["error_message"]


def test_fred_xml_without_file_type(client: httpx.Client) -> None:
    r = get(client, "/fred/fred/series/observations", series_id="UNRATE", api_key="k")
    assert r.status_code == 200 and r.text.startswith("<?xml") and "<observation " in r.text


# --- CoinGecko / IMF ---------------------------------------------------------------------------


def test_coingecko_simple_price(client: httpx.Client) -> None:
    r = get(
        client,
        "/coingecko/api/v3/simple/price",
        ids="bitcoin,ethereum,not-a-coin",
        vs_currencies="usd",
        include_market_cap="true",
        include_24hr_vol="true",
        include_24hr_change="true",
        include_last_updated_at="true",
    )
    body = r.json()
    assert set(body) == {"bitcoin", "ethereum"}
    ref = REFERENCE / "coingecko__simple_price_bitcoin_ethereum.json"
    if ref.exists():
        assert set(json.loads(ref.read_text())["bitcoin"]) == set(body["bitcoin"])
    plain = get(client, "/coingecko/api/v3/simple/price", ids="solana", vs_currencies="usd").json()
    assert list(plain["solana"]) == ["usd"]
    yahoo = get(client, "/yahoo_finance/v8/finance/chart/BTC-USD", range="5d").json()
    assert body["bitcoin"]["usd"] == pytest.approx(
        yahoo["chart"]["result"][0]["meta"]["regularMarketPrice"], rel=1e-6
    )
    assert set(coin_ids()) >= {"bitcoin", "ethereum"} and "BTC-USD" in crypto_pairs()


def test_coingecko_global(client: httpx.Client) -> None:
    body = get(client, "/coingecko/api/v3/global").json()
    ref = REFERENCE / "coingecko__global.json"
    if ref.exists():
        assert set(json.loads(ref.read_text())["data"]) == set(body["data"])
    data = body["data"]
    assert data["total_market_cap"]["usd"] > 0
    assert 0 < sum(data["market_cap_percentage"].values()) < 100


def test_imf_datamapper(client: httpx.Client) -> None:
    body = get(client, "/imf/external/datamapper/api/v1/NGDP_RPCH/USA/DEU").json()
    assert body["api"] == {"version": "1", "output-method": "json"}
    usa = body["values"]["NGDP_RPCH"]["USA"]
    assert set(body["values"]["NGDP_RPCH"]) == {"USA", "DEU"}
    years = sorted(int(y) for y in usa)
    assert years[0] >= 1980 and years[-1] == NOW.year + 5
    assert all(isinstance(v, float) for v in usa.values())
    empty = {"api": {"version": "1", "output-method": "json"}}
    assert get(client, "/imf/external/datamapper/api/v1/NGDP_RPCH/XYZ").json() == empty
    assert get(client, "/imf/external/datamapper/api/v1/NOPE/USA").json() == empty


# --- the universe and the envelope -------------------------------------------------------------


def test_universe_symbols() -> None:
    symbols = equity_symbols()
    assert len(symbols) >= 3000 and len(set(symbols)) == len(symbols)
    assert symbols[:3] == ["AAPL", "MSFT", "NVDA"] and "BRK-B" in symbols
    assert not any(s.startswith("ZZ") for s in symbols)


def test_unknown_service_and_path_are_marked(client: httpx.Client) -> None:
    r = get(client, "/nasdaq/api/whatever")
    assert r.status_code == 404 and "unknown sandbox service" in r.json()["error"]
    assert get(client, "/fmp/api/v3/profile/AAPL").status_code == 404
