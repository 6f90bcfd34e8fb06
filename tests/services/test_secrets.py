"""The key never leaves the outgoing request: not in cache files, state files, logs, error
messages, statuses or usage — through success, 4xx, 5xx, timeouts and malformed JSON."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from services import coingecko, fmp, fred
from services.errors import ServiceError
from tests.services.conftest import SECRET, payload


async def test_secret_never_written_logged_or_raised(
    httpx_mock: HTTPXMock,
    make_hub: Any,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky_url = f"https://api.stlouisfed.org/fred/series/observations?api_key={SECRET}"

    def fmp_url(symbol: str) -> re.Pattern[str]:
        return re.compile(rf"https://financialmodelingprep\.com/stable/profile\?symbol={symbol}&.*")

    def fred_url(series: str) -> re.Pattern[str]:
        return re.compile(rf"https://api\.stlouisfed\.org/.*series_id={series}.*")

    httpx_mock.add_response(url=fmp_url("ACME"), json=payload("fmp__profile_ACME.json"))
    httpx_mock.add_response(
        url=fmp_url("BADKEY"), status_code=401, json={"Error Message": f"Invalid API KEY {SECRET}"}
    )
    httpx_mock.add_response(
        url=fmp_url("MALFORMED"), content=f"{{not json {SECRET}".encode(), is_reusable=True
    )
    httpx_mock.add_response(url=fmp_url("FIVEXX"), status_code=500, text=f"broke for {SECRET}")
    for code in (502, 503, 504):
        httpx_mock.add_response(url=fmp_url("FIVEXX"), status_code=code)
    for _ in range(4):
        httpx_mock.add_exception(
            httpx.ReadTimeout(f"timed out: {leaky_url}"), url=fred_url("DGS10")
        )
    httpx_mock.add_response(
        url=fred_url("UNRATE"), status_code=400, json=payload("fred__error_bad_key.json")
    )
    httpx_mock.add_response(
        url="https://api.coingecko.com/api/v3/global", json=payload("coingecko__global.json")
    )
    httpx_mock.add_response(  # simple/price with the header key: negative
        url=re.compile(r"https://api\.coingecko\.com/api/v3/simple/price\?.*"), json={}
    )

    errors: list[ServiceError] = []
    async with make_hub() as hub:
        await hub.fetch(fmp.profile_request("ACME"))
        requests = [  # the refused key last: every later FMP request would fail fast
            fmp.profile_request("MALFORMED"),
            fmp.profile_request("FIVEXX"),
            fmp.profile_request("BADKEY"),
            fred.observations_request("DGS10"),
            fred.observations_request("UNRATE"),
        ]
        for request in requests:
            try:
                await hub.fetch(request)
            except ServiceError as exc:
                errors.append(exc)
        await hub.fetch(coingecko.global_request())
        await hub.fetch(coingecko.simple_price_request(["zz-nothing"]))
        texts = [repr(hub.usage()), repr(hub.status("fmp")), repr(hub.status("coingecko"))]

    assert len(errors) == 5
    assert len(httpx_mock.get_requests()) == 15  # a malformed body is asked for twice at most
    assert sorted(type(e).__name__ for e in errors) == [
        "BadCredential",
        "BadCredential",
        "MalformedBody",
        "TransientFailure",
        "TransientFailure",
    ]
    assert any(SECRET in str(r.url) for r in httpx_mock.get_requests())  # it *was* sent
    for exc in errors:
        texts += [str(exc), repr(exc), exc.detail, repr(exc.__cause__), repr(exc.__context__)]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert any("HTTP Request" in t for t in texts)  # httpx's own request lines were captured
    for text in texts:
        assert SECRET not in text

    files = [p for p in data_root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any("quota" in p.name for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
