"""Every endpoint through the hub with pytest-httpx: the request sent, the normal answer, the
unknown subject (a cached negative), and the error bodies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.config import ServiceConfig, sandbox_config, single_base_url
from services.errors import BadCredential, BadIdentity, NotConfigured
from tests.services.conftest import CRUMB, SEC_UA, SECRET, fast_configs, payload


def only_request(httpx_mock: HTTPXMock) -> httpx.Request:
    requests = httpx_mock.get_requests()
    assert len(requests) == 1
    return requests[0]


async def test_yahoo_chart_and_unknown_symbol(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(json=payload("yahoo_finance__chart_ACME.json"))
    httpx_mock.add_response(
        status_code=404, json=payload("yahoo_finance__chart_error_unknown.json")
    )
    async with make_hub() as hub:
        ok = await hub.fetch(yahoo_finance.chart_request("ACME"))
        assert (ok.status, ok.origin) == ("ok", "network")
        assert yahoo_finance.parse_chart(ok.payload).bars[-1].close == 101.25
        sent = httpx_mock.get_requests()[0]
        assert sent.url.host == "query1.finance.yahoo.com"
        assert sent.url.path == "/v8/finance/chart/ACME"
        assert dict(sent.url.params) == {"range": "1y", "interval": "1d", "crumb": CRUMB}
        assert sent.headers["cookie"] == "A3=d=cookie"

        unknown = yahoo_finance.chart_request("ZZUNKNOWN")
        neg = await hub.fetch(unknown)
        assert (neg.status, neg.origin) == ("negative", "network")
        assert neg.expires_at - neg.fetched_at == timedelta(hours=6)
        again = await hub.fetch(unknown)  # the negative is cached: no second request
        assert (again.status, again.origin) == ("negative", "cache")
        assert len(httpx_mock.get_requests()) == 2
        assert hub.usage()["yahoo_finance"]["negative"] == 1


async def test_fmp_profile_key_in_query_and_empty_list(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("fmp__profile_ACME.json"))
    httpx_mock.add_response(json=[])
    async with make_hub() as hub:
        ok = await hub.fetch(fmp.profile_request("ACME"))
        profile = fmp.parse_profile(ok.payload)
        assert profile is not None and profile.sector == "Industrials"
        sent = httpx_mock.get_requests()[0]
        assert sent.url.path == "/stable/profile"
        assert dict(sent.url.params) == {"symbol": "ACME", "apikey": SECRET}
        assert ok.expires_at - ok.fetched_at == timedelta(days=7)
        neg = await hub.fetch(fmp.profile_request("ZZNOPE"))
        assert neg.status == "negative"


async def test_fmp_bad_key_is_not_retried(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(status_code=401, json={"Error Message": "Invalid API KEY."})
    async with make_hub() as hub:
        with pytest.raises(BadCredential, match="HTTP 401"):
            await hub.fetch(fmp.profile_request("ACME"))
        assert len(httpx_mock.get_requests()) == 1
        assert hub.usage()["fmp"]["retries"] == 0


async def test_alpha_vantage_overview_and_empty_object(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("alpha_vantage__overview_ACME.json"))
    httpx_mock.add_response(json={})
    async with make_hub() as hub:
        ok = await hub.fetch(alpha_vantage.overview_request("ACME"))
        assert alpha_vantage.parse_overview(ok.payload) is not None
        sent = httpx_mock.get_requests()[0]
        assert dict(sent.url.params) == {"function": "OVERVIEW", "symbol": "ACME", "apikey": SECRET}
        neg = await hub.fetch(alpha_vantage.overview_request("ZZNOPE"))
        assert neg.status == "negative"


async def test_sec_user_agent_both_hosts_and_unknown_cik(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("sec__company_tickers.json"))
    httpx_mock.add_response(json=payload("sec__submissions_CIK0000999999.json"))
    httpx_mock.add_response(status_code=404, text="<html>Not Found</html>")
    async with make_hub() as hub:
        cik_map = await hub.fetch(sec_edgar.company_tickers_request())
        cik = sec_edgar.parse_company_tickers(cik_map.payload)["ACME"]
        subs = await hub.fetch(sec_edgar.submissions_request(cik))
        assert {f.form for f in sec_edgar.parse_submissions(subs.payload)} == {
            "10-K",
            "10-Q",
            "8-K",
        }
        first, second = httpx_mock.get_requests()[:2]
        assert (first.url.host, first.url.path) == ("www.sec.gov", "/files/company_tickers.json")
        assert (second.url.host, second.url.path) == (
            "data.sec.gov",
            "/submissions/CIK0000999999.json",
        )
        assert first.headers["User-Agent"] == SEC_UA == second.headers["User-Agent"]
        assert cik_map.expires_at - cik_map.fetched_at == timedelta(days=7)
        assert subs.expires_at - subs.fetched_at == timedelta(days=1)
        neg = await hub.fetch(sec_edgar.submissions_request("0000000001"))
        assert neg.status == "negative"


async def test_sec_one_base_url_replaces_both_hosts(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(json=payload("sec__company_tickers.json"))
    httpx_mock.add_response(json=payload("sec__submissions_CIK0000999999.json"))
    base = "http://127.0.0.1:8765/sec_edgar"
    configs = fast_configs(sec_edgar={"base_urls": single_base_url(base)})
    async with make_hub(configs) as hub:
        await hub.fetch(sec_edgar.company_tickers_request())
        await hub.fetch(sec_edgar.submissions_request("999999"))
    urls = [str(r.url) for r in httpx_mock.get_requests()]
    assert urls == [
        f"{base}/files/company_tickers.json",
        f"{base}/submissions/CIK0000999999.json",
    ]


async def test_sec_without_user_agent_is_not_configured(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    configs = fast_configs(sec_edgar={"credential": None})
    async with make_hub(configs) as hub:
        status = hub.status("sec_edgar")
        assert not status.configured
        assert status.reason == "SEC_EDGAR_USER_AGENT not set"
        with pytest.raises(NotConfigured, match="SEC_EDGAR_USER_AGENT not set"):
            await hub.fetch(sec_edgar.company_tickers_request())
    assert httpx_mock.get_requests() == []


async def test_sec_403_undeclared_is_bad_identity(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(status_code=403, text="Undeclared Automated Tool")
    async with make_hub() as hub:
        with pytest.raises(BadIdentity, match="403"):
            await hub.fetch(sec_edgar.company_tickers_request())
    assert len(httpx_mock.get_requests()) == 1


async def test_fred_observations_unknown_series_and_bad_key(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("fred__observations_DGS10.json"))
    httpx_mock.add_response(status_code=400, json=payload("fred__error_unknown_series.json"))
    httpx_mock.add_response(status_code=400, json=payload("fred__error_bad_key.json"))
    async with make_hub() as hub:
        ok = await hub.fetch(fred.observations_request("DGS10"))
        assert fred.parse_observations(ok.payload)[1].value is None
        sent = httpx_mock.get_requests()[0]
        assert dict(sent.url.params) == {
            "series_id": "DGS10",
            "file_type": "json",
            "api_key": SECRET,
        }
        neg = await hub.fetch(fred.observations_request("ZZNOSERIES"))
        assert neg.status == "negative"
        with pytest.raises(BadCredential, match="api_key is not registered") as info:
            await hub.fetch(fred.observations_request("UNRATE"))
        assert SECRET not in str(info.value)
    assert len(httpx_mock.get_requests()) == 3  # the 400s were not retried


async def test_coingecko_key_in_header_batched_and_global(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("coingecko__simple_price.json"))
    httpx_mock.add_response(json=payload("coingecko__global.json"))
    httpx_mock.add_response(json={})
    async with make_hub() as hub:
        ids = [coingecko.coin_id(t) for t in ("ETH-USD", "BTC-USD")]
        quotes = await hub.fetch(coingecko.simple_price_request([i for i in ids if i]))
        assert set(coingecko.parse_simple_price(quotes.payload)) == {"bitcoin", "ethereum"}
        sent = httpx_mock.get_requests()[0]
        assert sent.headers["x-cg-demo-api-key"] == SECRET
        assert SECRET not in str(sent.url)
        assert sent.url.params["ids"] == "bitcoin,ethereum"
        assert quotes.expires_at - quotes.fetched_at == timedelta(minutes=15)
        market = await hub.fetch(coingecko.global_request())
        assert coingecko.parse_global(market.payload).btc_dominance == 57.4
        neg = await hub.fetch(coingecko.simple_price_request(["zz-not-a-coin"]))
        assert neg.status == "negative"


async def test_coingecko_keyless_sends_no_key_header(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(json=payload("coingecko__global.json"))
    async with make_hub(fast_configs(coingecko={"credential": None})) as hub:
        assert hub.status("coingecko").configured
        await hub.fetch(coingecko.global_request())
    assert "x-cg-demo-api-key" not in only_request(httpx_mock).headers


async def test_imf_batched_and_empty(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(json=payload("imf__datamapper_NGDP_RPCH.json"))
    httpx_mock.add_response(json=payload("imf__datamapper_empty.json"))
    async with make_hub() as hub:
        ok = await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA", "AUS"]))
        assert ok.status == "ok"
        assert httpx_mock.get_requests()[0].url.path == (
            "/external/datamapper/api/v1/NGDP_RPCH/AUS/USA"
        )
        neg = await hub.fetch(imf.growth_request("NGDP_RPCH", ["ZZZ"]))
        assert neg.status == "negative"


async def test_synthetic_header_and_sandbox_keys(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(
        json=payload("fmp__profile_ACME.json"), headers={"X-Tradescout-Synthetic": "true"}
    )
    httpx_mock.add_response(
        json=payload("fmp__profile_ACME.json"), headers={"X-Tradescout-Synthetic": "true"}
    )
    request = fmp.profile_request("ACME")
    async with make_hub() as hub:  # live mode pointed (say) at the simulator: still labelled
        live = await hub.fetch(request)
        assert live.synthetic
        cached = await hub.fetch(request)
        assert cached.origin == "cache" and cached.synthetic
    sandbox = {"fmp": sandbox_config("fmp", "http://127.0.0.1:9999", rate_per_second=1000.0)}
    async with make_hub(sandbox) as hub:
        result = await hub.fetch(request)  # sandbox keys are separate: a network call again
        assert result.origin == "network" and result.synthetic
        assert hub.peek(request).envelope is not None
        sent = httpx_mock.get_requests()[-1]
        assert str(sent.url).startswith("http://127.0.0.1:9999/fmp/stable/profile")
        assert sent.url.params["apikey"] == "sandbox-key"
    assert request.cache_key("sandbox").startswith("sandbox|")


def test_config_repr_hides_credential() -> None:
    config = ServiceConfig(name="fmp", credential=SECRET)
    assert SECRET not in repr(config)
