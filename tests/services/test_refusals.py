"""Every refusal of the real services (their status + their own message, body shapes in
tests/fixtures/payloads) ends as its own reason, is never retried, and — where it says so — is
remembered: for the rest of the run, or in state/ across runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from cache.backend import ReadState
from services import alpha_vantage, coingecko, fmp, fred, sec_edgar, yahoo_finance
from services.errors import ServiceError
from tests.services.conftest import PAYLOADS, FakeClock, SleepRecorder, payload

FMP_URL = re.compile(r"https://financialmodelingprep\.com/stable/profile\?.*")


def text(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


CASES: list[tuple[str, Any, dict[str, Any], str, str]] = [
    # (id, request, response kwargs, reason, phrase the detail keeps)
    (
        "sec-undeclared",
        sec_edgar.company_tickers_request(),
        {"status_code": 403, "text": text("sec__403_undeclared_tool.html")},
        "bad_identity",
        "undeclared automated tool",
    ),
    (
        "sec-rate-threshold",
        sec_edgar.submissions_request("320193"),
        {"status_code": 403, "text": text("sec__403_rate_threshold.html")},
        "rate_blocked",
        "Request Rate Threshold Exceeded",
    ),
    (
        "fmp-401",
        fmp.profile_request("ACME"),
        {"status_code": 401, "json": payload("fmp__error_401_invalid_key.json")},
        "bad_credential",
        "Invalid API KEY",
    ),
    (
        "fmp-402",
        fmp.profile_request("MQG.AX"),
        {"status_code": 402, "json": payload("fmp__error_402_plan.json")},
        "plan_limited",
        "not available under your current subscription",
    ),
    (
        "fmp-403-legacy",
        fmp.profile_request("ACME"),
        {"status_code": 403, "json": payload("fmp__error_403_legacy.json")},
        "bad_response",
        "Legacy Endpoint",
    ),
    (
        "fmp-429-limit-reach",
        fmp.profile_request("ACME"),
        {"status_code": 429, "json": payload("fmp__error_429_limit.json")},
        "quota_exhausted",
        "Limit Reach",
    ),
    (
        "av-bad-key",
        alpha_vantage.overview_request("ACME"),
        {"json": payload("alpha_vantage__error_bad_key.json")},
        "bad_credential",
        "apikey is invalid or missing",
    ),
    (
        "av-invalid-call",
        alpha_vantage.overview_request("ACME"),
        {"json": payload("alpha_vantage__error_invalid_call.json")},
        "bad_response",
        "Invalid API call",
    ),
    (
        "av-information",
        alpha_vantage.overview_request("ACME"),
        {"json": payload("alpha_vantage__throttle_information.json")},
        "quota_exhausted",
        "daily limit",
    ),
    (
        "av-note",
        alpha_vantage.overview_request("ACME"),
        {"json": payload("alpha_vantage__throttle_note.json")},
        "quota_exhausted",
        "per-minute",
    ),
    (
        "fred-bad-key",
        fred.observations_request("DGS10"),
        {"status_code": 400, "json": payload("fred__error_bad_key.json")},
        "bad_credential",
        "api_key is not registered",
    ),
    (
        "coingecko-401",
        coingecko.global_request(),
        {"status_code": 401, "json": payload("coingecko__error_401.json")},
        "bad_credential",
        "HTTP 401",
    ),
    (
        "yahoo-429-no-retry-after",
        yahoo_finance.chart_request("ACME"),
        {"status_code": 429, "text": text("yahoo_finance__blocked_429.txt")},
        "blocked",
        "without Retry-After",
    ),
]


@pytest.mark.parametrize(
    ("request_", "response", "reason", "phrase"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_refusal_is_its_own_reason_and_never_retried(
    httpx_mock: HTTPXMock,
    make_hub: Any,
    sleeps: SleepRecorder,
    request_: Any,
    response: dict[str, Any],
    reason: str,
    phrase: str,
) -> None:
    httpx_mock.add_response(**response)
    async with make_hub() as hub:
        with pytest.raises(ServiceError) as info:
            await hub.fetch(request_)
        assert info.value.reason == reason
        assert phrase.lower() in info.value.detail.lower()
        assert hub.usage()[request_.service]["retries"] == 0
    assert len(httpx_mock.get_requests()) == 1
    assert sleeps.calls == []


async def test_fred_unknown_series_is_a_cached_negative(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(status_code=400, json=payload("fred__error_unknown_series.json"))
    request = fred.observations_request("ZZNOSERIES")
    async with make_hub() as hub:
        assert (await hub.fetch(request)).status == "negative"
        assert (await hub.fetch(request)).origin == "cache"
    assert len(httpx_mock.get_requests()) == 1


async def test_yahoo_404_is_not_found(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(
        status_code=404, json=payload("yahoo_finance__chart_error_unknown.json")
    )
    async with make_hub() as hub:
        assert (await hub.fetch(yahoo_finance.chart_request("ZZNOPE"))).status == "negative"


async def test_a_refused_key_stops_the_service_for_the_run(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(status_code=401, json=payload("fmp__error_401_invalid_key.json"))
    async with make_hub() as hub:
        for symbol in ("AAA", "BBB", "CCC"):
            with pytest.raises(ServiceError) as info:
                await hub.fetch(fmp.profile_request(symbol))
            assert info.value.reason == "bad_credential"
        status = hub.status("fmp")
        assert status.held == "bad_credential" and "Invalid API KEY" in (status.held_detail or "")
    assert len(httpx_mock.get_requests()) == 1  # the other two failed fast
    async with make_hub() as hub:  # a new run asks again (the key may have been fixed)
        assert hub.status("fmp").held is None


async def test_sec_rate_block_is_remembered_across_runs_for_ten_minutes(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    httpx_mock.add_response(status_code=403, text=text("sec__403_rate_threshold.html"))
    async with make_hub() as hub:
        with pytest.raises(ServiceError, match="Threshold"):
            await hub.fetch(sec_edgar.company_tickers_request())
        assert hub.status("sec_edgar").breaker_state == "open"
    clock.advance(9 * 60)
    async with make_hub() as hub:  # e.g. the refresh right after a discover: no knock
        status = hub.status("sec_edgar")
        assert status.held == "rate_blocked" and status.held_until is not None
        with pytest.raises(ServiceError) as info:
            await hub.fetch(sec_edgar.submissions_request("320193"))
        assert info.value.reason == "rate_blocked"
    assert len(httpx_mock.get_requests()) == 1
    clock.advance(2 * 60)  # the block is over
    httpx_mock.add_response(json=payload("sec__company_tickers.json"))
    async with make_hub() as hub:
        assert hub.status("sec_edgar").held is None
        assert (await hub.fetch(sec_edgar.company_tickers_request())).status == "ok"


async def test_yahoo_block_holds_for_the_configured_cool_down(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    from tests.services.conftest import fast_configs

    configs = fast_configs(yahoo_finance={"blocked_cooldown_seconds": 60.0})
    httpx_mock.add_response(status_code=429, text=text("yahoo_finance__blocked_429.txt"))
    async with make_hub(configs) as hub:
        for symbol in ("AAA", "BBB", "CCC", "DDD"):
            with pytest.raises(ServiceError) as info:
                await hub.fetch(yahoo_finance.chart_request(symbol))
            assert info.value.reason == "blocked"
    assert len(httpx_mock.get_requests()) == 1  # no retry storm: one knock
    clock.advance(61)
    httpx_mock.add_response(json=payload("yahoo_finance__chart_ACME.json"))
    async with make_hub(configs) as hub:
        assert (await hub.fetch(yahoo_finance.chart_request("ACME"))).status == "ok"


async def test_daily_limits_are_remembered_until_utc_midnight(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    httpx_mock.add_response(url=FMP_URL, status_code=429, json=payload("fmp__error_429_limit.json"))
    httpx_mock.add_response(json=payload("alpha_vantage__throttle_information.json"))
    async with make_hub() as hub:
        for request in (fmp.profile_request("ACME"), alpha_vantage.overview_request("ACME")):
            with pytest.raises(ServiceError, match=r"(?i)limit"):
                await hub.fetch(request)
    clock.advance(3600)  # later the same UTC day: a new run does not call either
    async with make_hub() as hub:
        for name in ("fmp", "alpha_vantage"):
            status = hub.status(name)
            assert status.held == "quota_exhausted" and status.quota_exhausted_for_run
        with pytest.raises(ServiceError) as info:
            await hub.fetch(fmp.profile_request("OTHER"))
        assert info.value.reason == "quota_exhausted"
    assert len(httpx_mock.get_requests()) == 2
    clock.advance(9 * 3600)  # 15:00 + 10 h: past midnight UTC
    async with make_hub() as hub:
        assert hub.status("fmp").held is None


async def test_a_pacing_429_with_retry_after_is_retried_not_a_daily_limit(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    limit = payload("fmp__error_429_limit.json")
    httpx_mock.add_response(status_code=429, json=limit, headers={"Retry-After": "1"})
    httpx_mock.add_response(json=payload("fmp__profile_ACME.json"))
    async with make_hub() as hub:
        assert (await hub.fetch(fmp.profile_request("ACME"))).status == "ok"
        assert hub.status("fmp").held is None


async def test_plan_limited_is_remembered_so_the_next_plan_goes_to_the_fallback(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(status_code=402, json=payload("fmp__error_402_plan.json"))
    request = fmp.profile_request("MQG.AX")
    async with make_hub() as hub:
        with pytest.raises(ServiceError) as info:
            await hub.fetch(request)
        assert info.value.reason == "plan_limited"
        read = hub.peek(request)
        assert read.state is ReadState.FRESH and read.envelope is not None
        assert read.envelope.status == "negative"
        assert read.envelope.payload["refused"] == "plan_limited"
        assert hub.status("fmp").held is None  # other symbols are still asked


async def test_an_echoed_key_in_a_refusal_is_masked(
    httpx_mock: HTTPXMock, make_hub: Any, data_root: Path
) -> None:
    from tests.services.conftest import SECRET

    httpx_mock.add_response(status_code=401, json={"Error Message": f"Invalid API KEY {SECRET}"})
    async with make_hub() as hub:
        with pytest.raises(ServiceError) as info:
            await hub.fetch(fmp.profile_request("ACME"))
        assert SECRET not in str(info.value) and "***" in info.value.detail
        assert SECRET not in (hub.status("fmp").held_detail or "")
