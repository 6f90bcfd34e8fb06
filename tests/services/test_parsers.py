"""Pure request builders and parsers, on payloads shaped like the real ones."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.errors import BadResponse
from services.registry import SPECS
from tests.services.conftest import payload

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"

# -- yahoo ---------------------------------------------------------------------------------------


def test_chart_request_escapes_symbol_and_keeps_params() -> None:
    req = yahoo_finance.chart_request("^vix", range_="6mo")
    assert req.path == "/v8/finance/chart/%5EVIX"
    assert dict(req.params) == {"range": "6mo", "interval": "1d"}
    assert req.subjects == ("^VIX",)
    assert yahoo_finance.chart_request("BRK-B").path.endswith("/BRK-B")


def test_parse_chart_keeps_nulls_and_exchange_dates() -> None:
    history = yahoo_finance.parse_chart(payload("yahoo_finance__chart_ACME.json"))
    assert (history.symbol, history.currency, history.exchange) == ("ACME", "USD", "NMS")
    assert history.instrument_type == "EQUITY"
    assert history.regular_market_price == 101.25
    assert [b.date for b in history.bars] == [
        date(2025, 11, 12),
        date(2025, 11, 13),
        date(2025, 11, 14),
        date(2025, 11, 17),
        date(2025, 11, 18),
    ]
    halted = history.bars[2]
    assert (halted.open, halted.close, halted.adjclose, halted.volume) == (None, None, None, None)
    assert history.bars[0].adjclose == 98.85 and history.bars[0].volume == 51200300


def test_parse_chart_rejects_error_body() -> None:
    with pytest.raises(BadResponse):
        yahoo_finance.parse_chart(payload("yahoo_finance__chart_error_unknown.json"))


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (date(2026, 11, 1), "1mo"),
        (date(2026, 10, 21), "1mo"),
        (date(2026, 10, 20), "3mo"),
        (date(2026, 2, 3), "1y"),
        (date(2025, 11, 21), "1y"),
        (date(2025, 11, 20), "2y"),
        (date(2019, 1, 1), "10y"),
        (date(1990, 1, 1), "max"),
    ],
)
def test_range_covering(start: date, expected: str) -> None:
    assert yahoo_finance.range_covering(start, date(2026, 11, 21)) == expected


@pytest.mark.parametrize(
    ("now", "close"),
    [
        (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), datetime(2026, 11, 20, 21, 0, tzinfo=UTC)),
        (datetime(2026, 11, 20, 21, 30, tzinfo=UTC), datetime(2026, 11, 23, 21, 0, tzinfo=UTC)),
        (datetime(2026, 11, 21, 12, 0, tzinfo=UTC), datetime(2026, 11, 23, 21, 0, tzinfo=UTC)),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), datetime(2026, 7, 1, 20, 0, tzinfo=UTC)),
    ],
)
def test_next_market_close(now: datetime, close: datetime) -> None:
    assert yahoo_finance.next_market_close(now) == close
    assert SPECS["yahoo_finance"].datasets["chart"].ttl_at(now) == close - now


# -- fmp / alpha vantage -------------------------------------------------------------------------


def test_fmp_profile() -> None:
    req = fmp.profile_request("acme")
    assert (req.path, dict(req.params)) == ("/stable/profile", {"symbol": "ACME"})
    profile = fmp.parse_profile(payload("fmp__profile_ACME.json"))
    assert profile is not None
    assert (profile.name, profile.sector, profile.industry) == (
        "Acme Widgets Corporation",
        "Industrials",
        "Industrial Machinery",
    )
    assert (profile.market_cap, profile.beta, profile.exchange, profile.source) == (
        152000000000.0,
        1.12,
        "NASDAQ",
        "fmp",
    )
    assert fmp.parse_profile([]) is None
    with pytest.raises(BadResponse):
        fmp.parse_profile({"Error Message": "nope"})


def test_alpha_vantage_overview() -> None:
    req = alpha_vantage.overview_request("acme")
    assert dict(req.params) == {"function": "OVERVIEW", "symbol": "ACME"}
    profile = alpha_vantage.parse_overview(payload("alpha_vantage__overview_ACME.json"))
    assert profile is not None
    assert (profile.symbol, profile.sector, profile.market_cap, profile.beta) == (
        "ACME",
        "MANUFACTURING",
        152000000000.0,
        1.12,
    )
    assert profile.source == "alpha_vantage" and profile.country == "USA"
    assert alpha_vantage.parse_overview({}) is None


# -- sec -----------------------------------------------------------------------------------------


def test_sec_cik_map_uses_cik_str_zero_padded() -> None:
    mapping = sec_edgar.parse_company_tickers(payload("sec__company_tickers.json"))
    assert mapping["ACME"] == "0000999999"
    assert mapping["BRK-B"] == "0001234567"
    assert mapping["TINY"] == "0000000042"
    assert sec_edgar.company_tickers_request().host == "www"


def test_sec_submissions_latest_per_form() -> None:
    req = sec_edgar.submissions_request("999999")
    assert (req.path, req.host) == ("/submissions/CIK0000999999.json", "data")
    filings = sec_edgar.parse_submissions(payload("sec__submissions_CIK0000999999.json"))
    by_form = {f.form: f for f in filings}
    assert set(by_form) == {"10-K", "10-Q", "8-K"}
    assert by_form["10-Q"].filing_date == date(2025, 10, 30)
    assert by_form["10-Q"].report_date == date(2025, 9, 30)
    assert by_form["10-K"].accession_number == "0000999999-25-000012"  # not the 10-K/A
    assert by_form["8-K"].primary_document == "acme-20251101.htm"
    assert [f.form for f in filings] == ["8-K", "10-Q", "10-K"]  # newest first
    with pytest.raises(ValueError):
        sec_edgar.submissions_request("12345678901")


# -- fred ----------------------------------------------------------------------------------------


def test_fred_observations() -> None:
    req = fred.observations_request("dgs10", date(2025, 11, 10))
    assert dict(req.params) == {
        "series_id": "DGS10",
        "file_type": "json",
        "observation_start": "2025-11-10",
    }
    obs = fred.parse_observations(payload("fred__observations_DGS10.json"))
    assert [(o.date.isoformat(), o.value) for o in obs] == [
        ("2025-11-10", 4.11),
        ("2025-11-11", None),
        ("2025-11-12", 4.08),
        ("2025-11-13", 4.12),
    ]


def test_fred_latest_is_the_last_valued_observation_of_the_real_payload() -> None:
    (latest,) = fred.parse_latest(payload("fred__observations_DGS10.json"))
    assert (latest.date.isoformat(), latest.value) == ("2025-11-13", 4.12)
    recorded = json.loads((REAL / "fred_observations.json").read_text(encoding="utf-8"))
    valued = [o for o in fred.parse_observations(recorded) if o.value is not None]
    assert valued and fred.parse_latest(recorded) == valued[-1:]  # FRED's own answer
    assert fred.parse_latest({"observations": [{"date": "2025-11-11", "value": "."}]}) == []
    with pytest.raises(BadResponse):
        fred.parse_latest({"error_message": "Bad Request."})


_CELLS = st.one_of(
    st.none(), st.just("."), st.just(""), st.just("4.25"), st.just("-0.5"), st.just("nan"),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=4),
)  # fmt: skip
_DATES = st.one_of(
    st.none(), st.just("not a date"), st.dates().map(date.isoformat), st.integers(0, 9)
)


@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"date": _DATES, "value": _CELLS}),
            st.just("not a row"),
            st.fixed_dictionaries({"value": _CELLS}),
        ),
        max_size=12,
    )
)
def test_fred_latest_agrees_with_the_full_parse(rows: list[Any]) -> None:
    full = fred.parse_observations({"observations": rows})
    valued = [o for o in full if o.value is not None]
    assert fred.parse_latest({"observations": rows}) == valued[-1:]


# -- coingecko -----------------------------------------------------------------------------------


def test_coin_ids() -> None:
    assert coingecko.coin_id("BTC-USD") == "bitcoin"
    assert coingecko.coin_id("eth-usd") == "ethereum"
    assert coingecko.coin_id("SOL-USD") == "solana"
    assert coingecko.coin_id("AAPL") is None
    assert coingecko.coin_id("BTC-EUR") is None
    assert len(coingecko.COIN_IDS) >= 20


def test_simple_price_is_one_sorted_batch() -> None:
    a = coingecko.simple_price_request(["solana", "bitcoin", "ethereum", "bitcoin"])
    b = coingecko.simple_price_request(["ethereum", "solana", "bitcoin"])
    assert a.params["ids"] == "bitcoin,ethereum,solana"
    assert a.cache_key() == b.cache_key()
    quotes = coingecko.parse_simple_price(payload("coingecko__simple_price.json"))
    btc = quotes["bitcoin"]
    assert (btc.usd, btc.change_24h) == (91234.5, -1.25)
    assert btc.last_updated == datetime.fromtimestamp(1763600000, tz=UTC)


def test_parse_global() -> None:
    market = coingecko.parse_global(payload("coingecko__global.json"))
    assert market.total_market_cap_usd == 3150000000000.5
    assert (market.btc_dominance, market.eth_dominance) == (57.4, 11.7)
    assert market.market_cap_change_24h_pct == -0.85


# -- imf -----------------------------------------------------------------------------------------


def test_imf_batched_request_and_projection_labels() -> None:
    req = imf.growth_request("ngdp_rpch", ["usa", "AUS", "USA"])
    assert req.path == "/external/datamapper/api/v1/NGDP_RPCH/AUS/USA"
    data = imf.parse_datamapper(
        payload("imf__datamapper_NGDP_RPCH.json"), "NGDP_RPCH", current_year=2026
    )
    usa = data["USA"]
    assert [v.year for v in usa] == [2023, 2024, 2025, 2026, 2027]
    assert [v.projection for v in usa] == [False, False, False, True, True]
    assert usa[0].value == 2.9
    assert (
        imf.parse_datamapper(payload("imf__datamapper_empty.json"), "NGDP_RPCH", current_year=2026)
        == {}
    )
    with pytest.raises(ValueError):
        imf.growth_request("NGDP_RPCH", ["US"])


def test_specs_defaults() -> None:
    assert set(SPECS) == {
        "yahoo_finance",
        "fmp",
        "alpha_vantage",
        "sec_edgar",
        "fred",
        "coingecko",
        "imf",
    }
    assert SPECS["alpha_vantage"].daily_quota == 25 and SPECS["fmp"].daily_quota == 250
    assert SPECS["alpha_vantage"].rate_per_second * 60 <= 5
    assert all(spec.rate_burst == 1 for spec in SPECS.values())
    assert SPECS["sec_edgar"].datasets["cik_map"].ttl == timedelta(days=7)
    assert {c.placement for c in SPECS["coingecko"].credentials} == {"header"}


def test_configs_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from discovery.settings import Settings
    from services.config import configs_from_settings, resolve

    for var in ("FMP_API_KEY", "SEC_EDGAR_USER_AGENT", "TRADESCOUT_SANDBOX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FMP_API_KEY", "k-123")
    monkeypatch.setenv("TRADESCOUT_SEC_EDGAR_BASE_URL", "http://mirror.example/sec")
    settings = Settings()
    live = configs_from_settings(settings, SPECS)
    assert live["fmp"].credential == "k-123" and live["fmp"].upstream == "live"
    sec = resolve(SPECS["sec_edgar"], live["sec_edgar"])
    assert dict(sec.base_urls) == {
        "www": "http://mirror.example/sec",
        "data": "http://mirror.example/sec",
    }
    assert sec.unconfigured_reason == "SEC_EDGAR_USER_AGENT not set"
    boxed = configs_from_settings(settings, SPECS, sandbox_url="http://127.0.0.1:7000")
    assert boxed["fmp"].credential == "sandbox-key"  # never the real key
    assert boxed["sec_edgar"].upstream == "sandbox"
    assert resolve(SPECS["imf"], boxed["imf"]).base_url("default") == "http://127.0.0.1:7000/imf"
