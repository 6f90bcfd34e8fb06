"""Outbound hardening with pytest-httpx: redirects (same origin only, capped), decoded-size caps
(gzip bombs included), JSON depth, non-finite numbers, CoinGecko's two key kinds, and secrets in
every encoding kept out of logs, errors and files."""

from __future__ import annotations

import gzip
import logging
import re
import tracemalloc
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from pytest_httpx import HTTPXMock

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar
from services.body import (
    MAX_DEPTH,
    STEP,
    BodyMalformed,
    BodyTooLarge,
    Collector,
    Inflater,
    decode_json,
)
from services.config import ServiceConfig, configs_from_settings, resolve
from services.errors import ServiceError
from services.redact import forms, mask
from services.registry import SPECS
from tests.services.conftest import SECRET, fast_configs, payload

FMP = "https://financialmodelingprep.com"


async def test_same_origin_redirects_are_followed_with_the_key(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(
        url=re.compile(rf"{FMP}/stable/profile\?.*"),
        status_code=301,
        headers={"Location": "/stable/v2/profile?symbol=ACME&apikey=" + SECRET},
    )
    httpx_mock.add_response(json=payload("fmp__profile_ACME.json"))
    async with make_hub() as hub:
        assert (await hub.fetch(fmp.profile_request("ACME"))).status == "ok"
    first, second = httpx_mock.get_requests()
    assert second.url.path == "/stable/v2/profile" and second.url.host == first.url.host


async def test_a_redirect_to_another_origin_is_refused_before_anything_is_sent(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(
        url="https://api.coingecko.com/api/v3/global",
        status_code=302,
        headers={"Location": "https://collector.evil.test/steal?path=/api/v3/global"},
    )
    async with make_hub() as hub:
        with pytest.raises(ServiceError) as info:
            await hub.fetch(coingecko.global_request())
    assert info.value.reason == "bad_response" and "another origin" in info.value.detail
    assert "steal" not in info.value.detail  # the target's path is not echoed
    requests = httpx_mock.get_requests()
    assert len(requests) == 1 and requests[0].headers["x-cg-demo-api-key"] == SECRET
    assert all(r.url.host != "collector.evil.test" for r in requests)


async def test_a_redirect_loop_ends_at_the_cap(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(status_code=302, headers={"Location": "/loop"}, is_reusable=True)
    async with make_hub() as hub:
        with pytest.raises(ServiceError, match="more than 5 redirects") as info:
            await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
    assert info.value.reason == "bad_response"
    assert len(httpx_mock.get_requests()) == 6  # the request and 5 hops; never retried


async def test_a_body_over_the_cap_is_cut_while_it_streams(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    cap = SPECS["imf"].max_body_bytes
    httpx_mock.add_response(content=b'{"values":"' + b"a" * cap + b'"}')
    async with make_hub() as hub:
        with pytest.raises(ServiceError, match="too large") as info:
            await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
        assert hub.peek(imf.growth_request("NGDP_RPCH", ["USA"])).envelope is None
    assert info.value.reason == "bad_response"
    assert len(httpx_mock.get_requests()) == 1


def test_a_gzip_bomb_is_cut_without_inflating_it() -> None:
    """The decoder itself (pytest-httpx inflates mocked bodies whole before the client sees
    them; the same bomb through real sockets is in tests/hostile/test_upstream.py)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(packer.compress(b" " * (1 << 20)) for _ in range(64)) + packer.flush()
    assert len(bomb) < 100_000
    cap = 4 << 20
    tracemalloc.start()
    try:
        inflater, collector = Inflater("gzip"), Collector(cap)
        with pytest.raises(BodyTooLarge, match="too large"):
            for start in range(0, len(bomb), 16384):
                for chunk in inflater.feed(bomb[start : start + 16384]):
                    collector.add(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert collector.size <= cap + STEP
    assert peak < cap + (2 << 20)  # the cap and a step, never the 64 MB it inflates to


@pytest.mark.parametrize("coding", ["br", "gzip, gzip", "compress"])
def test_an_encoding_we_did_not_ask_for_is_refused(coding: str) -> None:
    with pytest.raises(BodyMalformed, match="unsupported content-encoding"):
        Inflater(coding)


def test_corrupt_gzip_is_malformed_and_raw_deflate_is_read() -> None:
    with pytest.raises(BodyMalformed):
        list(Inflater("gzip").feed(b"\x1f\x8bnot really gzip"))
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = raw.compress(b'{"a": 1}') + raw.flush()
    assert b"".join(Inflater("deflate").feed(data)) == b'{"a": 1}'
    assert b"".join(Inflater("deflate").feed(zlib.compress(b"[1]"))) == b"[1]"


async def test_gzip_bodies_are_decoded(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    body = gzip.compress(orjson.dumps(payload("imf__datamapper_NGDP_RPCH.json")))
    httpx_mock.add_response(content=body, headers={"Content-Encoding": "gzip"})
    async with make_hub() as hub:
        result = await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
    assert result.status == "ok" and "values" in result.payload


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
async def test_deep_json_is_too_deep_never_a_recursion_error(
    httpx_mock: HTTPXMock, make_hub: Any, depth: int
) -> None:
    httpx_mock.add_response(content=b"[" * depth + b"]" * depth)
    async with make_hub() as hub:
        with pytest.raises(ServiceError, match="too deep") as info:
            await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
    assert info.value.reason == "bad_response"
    assert len(httpx_mock.get_requests()) == 1


def test_nonfinite_numbers_decode_as_null_strings_untouched() -> None:
    body = b'{"a": NaN, "b": [Infinity, -Infinity, 1.5], "c": "NaN and Infinity", "d": "\\"NaN"}'
    assert decode_json(body) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": "NaN and Infinity",
        "d": '"NaN',
    }


async def test_sec_filings_with_nonfinite_numbers_keep_every_filing(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    raw = Path(__file__).parents[1] / "fixtures/payloads/sec__submissions_CIK0000999999.json"
    text = raw.read_text()
    doctored = re.sub(r'"size":\s*\[[^\]]*\]', lambda m: re.sub(r"\d+", "NaN", m.group(0)), text)
    assert "NaN" in doctored
    httpx_mock.add_response(content=doctored.encode())
    request = sec_edgar.submissions_request("999999")
    async with make_hub() as hub:
        result = await hub.fetch(request)
    assert result.status == "ok"
    want = sec_edgar.parse_submissions(orjson.loads(text))
    assert sec_edgar.parse_submissions(result.payload) == want and want


async def test_coingecko_pro_key_goes_to_the_pro_host_in_its_header(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    configs = fast_configs(
        coingecko={"credential": "PRO-KEY-1", "credential_env": "COINGECKO_PRO_API_KEY"}
    )
    httpx_mock.add_response(json=payload("coingecko__global.json"))
    async with make_hub(configs) as hub:
        await hub.fetch(coingecko.global_request())
        assert hub.status("coingecko").credential_env == "COINGECKO_PRO_API_KEY"
    [sent] = httpx_mock.get_requests()
    assert sent.url.host == "pro-api.coingecko.com"
    assert sent.headers["x-cg-pro-api-key"] == "PRO-KEY-1"
    assert "x-cg-demo-api-key" not in sent.headers


def test_coingecko_key_kinds_and_base_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from discovery.settings import Settings

    monkeypatch.delenv("TRADESCOUT_SANDBOX_URL", raising=False)
    monkeypatch.setenv("COINGECKO_API_KEY", "demo-1")

    def coingecko_now() -> Any:
        return resolve(
            SPECS["coingecko"], configs_from_settings(Settings(), ["coingecko"])["coingecko"]
        )

    demo = coingecko_now()
    assert demo.base_url("default") == "https://api.coingecko.com"
    assert demo.credential_spec is not None and demo.credential_spec.name == "x-cg-demo-api-key"
    monkeypatch.setenv("COINGECKO_PRO_API_KEY", "pro-1")  # the pro key wins
    pro = coingecko_now()
    assert pro.credential == "pro-1" and pro.base_url("default") == "https://pro-api.coingecko.com"
    monkeypatch.setenv("TRADESCOUT_COINGECKO_BASE_URL", "http://127.0.0.1:9/cg")
    moved = coingecko_now()
    assert moved.base_url("default") == "http://127.0.0.1:9/cg"  # the override is the host
    assert moved.credential_spec is not None and moved.credential_spec.name == "x-cg-pro-api-key"


NASTY = "k+e%y#1?a&b=c/d e"


def test_every_encoding_of_a_secret_is_masked() -> None:
    for spelled in (NASTY, quote(NASTY), quote(NASTY, safe=""), quote_plus(NASTY)):
        assert mask(f"GET /x?apikey={spelled}&z=1", [NASTY]) == "GET /x?apikey=***&z=1"
    assert mask(quote(NASTY, safe="").lower(), [NASTY]) == "***"
    assert mask(NASTY.replace("+", " "), [NASTY]) == "***"  # a server that decoded `+`
    assert all(len(f) >= 4 for f in forms(NASTY))


async def test_keys_with_url_special_characters_never_leak(
    httpx_mock: HTTPXMock,
    make_hub: Any,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = {
        "alpha_vantage": NASTY,
        "fred": "f%2Bk+ey/ #&",
        "fmp": "p?q=r&s t+",
        "coingecko": "c g+%/#key",
    }
    configs = fast_configs(**{name: {"credential": key} for name, key in keys.items()})
    echo = f"the parameter apikey is invalid or missing: {quote_plus(NASTY)} / {NASTY}"
    httpx_mock.add_response(
        url=re.compile(r"https://www\.alphavantage\.co/.*"), json={"Error Message": echo}
    )
    httpx_mock.add_response(
        url=re.compile(r"https://api\.stlouisfed\.org/.*"),
        status_code=400,
        json={"error_code": 400, "error_message": f"api_key {quote(keys['fred'])} not registered"},
    )
    httpx_mock.add_response(
        url=re.compile(rf"{FMP}/.*"),
        json=[{"symbol": "ACME", "companyName": f"echo {quote(keys['fmp'], safe='')}"}],
    )
    httpx_mock.add_response(
        url=re.compile(r"https://api\.coingecko\.com/.*"),
        status_code=401,
        text=f"bad key {keys['coingecko']}",
    )
    texts: list[str] = []
    async with make_hub(configs) as hub:
        for request in (
            alpha_vantage.overview_request("ACME"),
            fred.observations_request("DGS10"),
            fmp.profile_request("ACME"),
            coingecko.global_request(),
        ):
            try:
                await hub.fetch(request)
            except ServiceError as exc:
                texts += [str(exc), repr(exc), exc.detail]
        texts += [repr(hub.status(name)) for name in keys] + [repr(hub.usage())]
    sent = [str(r.url) + repr(r.headers) for r in httpx_mock.get_requests()]
    assert len(sent) == 4
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert any("HTTP Request" in t for t in texts)
    files = [p for p in data_root.rglob("*") if p.is_file()]
    assert files
    for key in keys.values():
        spellings = [key, quote(key), quote(key, safe=""), quote_plus(key), key.replace("+", " ")]
        for text in texts:
            for spelled in spellings:
                assert spelled not in text, (spelled, text)
        for path in files:
            blob = path.read_bytes()
            for spelled in spellings:
                assert spelled.encode() not in blob, (spelled, path)


def test_config_names_the_credential_kind_never_the_value() -> None:
    config = ServiceConfig(name="coingecko", credential="s3cret", credential_env="X")
    assert "s3cret" not in repr(config)
