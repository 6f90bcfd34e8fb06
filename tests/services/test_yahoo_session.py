"""Yahoo's session: cookie then crumb before the first data request, once per run (also under
concurrency), kept in state/ (0600) for 24 h, renewed once when refused, consent and blocks."""

from __future__ import annotations

import asyncio
import logging
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from services import yahoo_finance
from services.config import ServiceConfig
from services.errors import ServiceError
from tests.services.conftest import (
    PAYLOADS,
    FakeClock,
    fast_configs,
    payload,
)

COOKIE_URL = "https://fc.yahoo.com/"
CRUMB_URL = "https://query1.finance.yahoo.com/v1/test/getcrumb"
CHART_URL = re.compile(r"https://query1\.finance\.yahoo\.com/v8/finance/chart/.*")
NEW_CRUMB = "Fresh.Crumb_7"


@pytest.fixture
def no_session(yahoo_session: Path) -> Path:
    yahoo_session.unlink()
    return yahoo_session


def session_answers(httpx_mock: HTTPXMock, crumb: str = NEW_CRUMB, base: str = "") -> None:
    cookie_url = f"{base}/" if base else COOKIE_URL
    crumb_url = f"{base}/v1/test/getcrumb" if base else CRUMB_URL
    httpx_mock.add_response(
        url=cookie_url, status_code=404, headers={"Set-Cookie": "A3=d=abc; Path=/; HttpOnly"}
    )
    httpx_mock.add_response(url=crumb_url, text=crumb)


async def test_set_up_once_then_every_chart_carries_cookie_and_crumb(
    httpx_mock: HTTPXMock,
    make_hub: Any,
    no_session: Path,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session_answers(httpx_mock)
    httpx_mock.add_response(url=CHART_URL, json=payload("yahoo_finance__chart_ACME.json"))
    httpx_mock.add_response(url=CHART_URL, json=payload("yahoo_finance__chart_ACME.json"))
    async with make_hub() as hub:
        symbols = ("AAA", "BBB")
        results = await asyncio.gather(
            *(hub.fetch(yahoo_finance.chart_request(s)) for s in symbols)
        )
        assert all(r.status == "ok" for r in results)
        usage = hub.usage()["yahoo_finance"]
        assert (usage["session_setups"], usage["session_requests"]) == (1, 2)
        assert usage["network_requests"] == 2
    cookie, crumb, *charts = httpx_mock.get_requests()
    assert str(cookie.url) == COOKIE_URL
    assert str(crumb.url) == CRUMB_URL and crumb.headers["cookie"] == "A3=d=abc"
    for chart in charts:
        assert chart.url.params["crumb"] == NEW_CRUMB and chart.headers["cookie"] == "A3=d=abc"
    assert stat.S_IMODE(no_session.stat().st_mode) == 0o600
    assert NEW_CRUMB in no_session.read_text()
    for path in data_root.rglob("*"):  # the crumb is in the session file only
        if path.is_file() and path != no_session:
            assert NEW_CRUMB.encode() not in path.read_bytes(), path
    assert NEW_CRUMB not in caplog.text


async def test_many_concurrent_requests_share_one_set_up(
    httpx_mock: HTTPXMock, make_hub: Any, no_session: Path
) -> None:
    session_answers(httpx_mock)
    httpx_mock.add_response(
        url=CHART_URL, json=payload("yahoo_finance__chart_ACME.json"), is_reusable=True
    )
    async with make_hub() as hub:
        await asyncio.gather(*(hub.fetch(yahoo_finance.chart_request(f"S{i}")) for i in range(8)))
        assert hub.usage()["yahoo_finance"]["session_setups"] == 1
    assert len(httpx_mock.get_requests()) == 2 + 8


async def test_session_is_reused_across_runs_for_24_hours(
    httpx_mock: HTTPXMock, make_hub: Any, no_session: Path, clock: FakeClock
) -> None:
    session_answers(httpx_mock)
    httpx_mock.add_response(
        url=CHART_URL, json=payload("yahoo_finance__chart_ACME.json"), is_reusable=True
    )
    async with make_hub() as hub:
        await hub.fetch(yahoo_finance.chart_request("AAA"))
    clock.advance(23 * 3600)
    async with make_hub() as hub:  # the next run: no set-up
        await hub.fetch(yahoo_finance.chart_request("BBB"))
        assert hub.usage()["yahoo_finance"]["session_setups"] == 0
    assert len(httpx_mock.get_requests()) == 4
    clock.advance(2 * 3600)  # 25 h old: set up again
    session_answers(httpx_mock, crumb="Next.Crumb_8")
    async with make_hub() as hub:
        await hub.fetch(yahoo_finance.chart_request("CCC"))
        assert hub.usage()["yahoo_finance"]["session_setups"] == 1
    assert httpx_mock.get_requests()[-1].url.params["crumb"] == "Next.Crumb_8"


async def test_invalid_crumb_renews_the_session_once(
    httpx_mock: HTTPXMock, make_hub: Any, yahoo_session: Path
) -> None:
    refused = payload("yahoo_finance__invalid_crumb.json")
    httpx_mock.add_response(url=CHART_URL, status_code=401, json=refused)
    session_answers(httpx_mock)
    httpx_mock.add_response(url=CHART_URL, json=payload("yahoo_finance__chart_ACME.json"))
    async with make_hub() as hub:
        assert (await hub.fetch(yahoo_finance.chart_request("ACME"))).status == "ok"
        assert hub.usage()["yahoo_finance"]["session_setups"] == 1
    last = httpx_mock.get_requests()[-1]
    assert last.url.params["crumb"] == NEW_CRUMB


async def test_refused_again_after_renewal_is_blocked(
    httpx_mock: HTTPXMock, make_hub: Any, yahoo_session: Path
) -> None:
    refused = payload("yahoo_finance__invalid_crumb.json")
    httpx_mock.add_response(url=CHART_URL, status_code=401, json=refused, is_reusable=True)
    session_answers(httpx_mock)
    async with make_hub() as hub:
        with pytest.raises(ServiceError) as info:
            await hub.fetch(yahoo_finance.chart_request("ACME"))
        assert info.value.reason == "blocked"
        with pytest.raises(ServiceError) as again:  # held: no further request
            await hub.fetch(yahoo_finance.chart_request("OTHER"))
        assert again.value.reason == "blocked"
    assert len(httpx_mock.get_requests()) == 4  # chart, cookie, crumb, chart


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, (PAYLOADS / "yahoo_finance__getcrumb_blocked.txt").read_text()),
        (200, "<html><body>Too Many Requests</body></html>"),
        (200, ""),
    ],
    ids=["edge-429", "html", "empty"],
)
async def test_a_crumb_answer_that_is_not_a_crumb_is_blocked(
    httpx_mock: HTTPXMock, make_hub: Any, no_session: Path, status: int, body: str
) -> None:
    httpx_mock.add_response(url=COOKIE_URL, headers={"Set-Cookie": "A3=d=abc"})
    httpx_mock.add_response(url=CRUMB_URL, status_code=status, text=body)
    async with make_hub() as hub:
        for symbol in ("AAA", "BBB"):
            with pytest.raises(ServiceError) as info:
                await hub.fetch(yahoo_finance.chart_request(symbol))
            assert info.value.reason == "blocked"
        assert hub.status("yahoo_finance").held == "blocked"
    assert len(httpx_mock.get_requests()) == 2  # no chart request, no second set-up
    assert not no_session.exists()


@pytest.mark.parametrize(
    "location",
    [
        "https://guce.yahoo.com/consent?brandType=eu&done=x",
        "https://consent.yahoo.com/v2/collectConsent?sessionId=1",
        "/consent?x=1",
    ],
)
async def test_consent_redirect_is_detected_never_followed(
    httpx_mock: HTTPXMock, make_hub: Any, no_session: Path, location: str
) -> None:
    httpx_mock.add_response(url=COOKIE_URL, status_code=302, headers={"Location": location})
    async with make_hub() as hub:
        for symbol in ("AAA", "BBB"):
            with pytest.raises(ServiceError) as info:
                await hub.fetch(yahoo_finance.chart_request(symbol))
            assert info.value.reason == "consent_required"
    assert [str(r.url) for r in httpx_mock.get_requests()] == [COOKIE_URL]


async def test_a_base_url_replaces_every_yahoo_host(
    httpx_mock: HTTPXMock, make_hub: Any, no_session: Path
) -> None:
    base = "http://mirror.test:8080/yf"
    configs = fast_configs()
    configs["yahoo_finance"] = ServiceConfig(
        name="yahoo_finance", base_urls={"default": base}, rate_per_second=1000.0
    )
    session_answers(httpx_mock, base=base)
    httpx_mock.add_response(
        url=f"{base}/v8/finance/chart/ACME?range=1y&interval=1d&crumb={NEW_CRUMB}",
        json=payload("yahoo_finance__chart_ACME.json"),
    )
    async with make_hub(configs) as hub:
        assert (await hub.fetch(yahoo_finance.chart_request("ACME"))).status == "ok"
    assert {r.url.host for r in httpx_mock.get_requests()} == {"mirror.test"}
