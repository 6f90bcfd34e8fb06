"""The sandbox's defences with a plain httpx client: what it refuses and what it lets through."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.sandbox import SandboxServer
from services.sandbox.defences import defences_from_env
from tests.conftest import BROWSER_HEADERS, YahooBrowser

pytestmark = pytest.mark.integration
CHART = "/yahoo_finance/v8/finance/chart/AAPL?range=5d&interval=1d"
SEC_UA = {"User-Agent": "Jane Doe jane@example.org"}
TICKERS = "/sec_edgar/files/company_tickers.json"


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(faults=(), enforce_limits=False) as s:
        yield s


def stats(url: str, service: str) -> dict[str, int]:
    answer: dict[str, int] = httpx.get(f"{url}/_sandbox/stats").json()["services"][service]
    return answer


def test_yahoo_refuses_a_non_browser_client_like_yahoo(server: SandboxServer) -> None:
    for path in ("/yahoo_finance/", "/yahoo_finance/v1/test/getcrumb", CHART):
        r = httpx.get(server.url + path, headers={"User-Agent": "tradescout/0.1"})
        assert r.status_code == 429 and r.text == "Too Many Requests"
        assert r.headers["content-type"].startswith("text/plain")
        assert "retry-after" not in r.headers


def test_yahoo_session_cookie_then_crumb_then_chart(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url, headers=BROWSER_HEADERS) as c:
        assert c.get(CHART).status_code == 401  # a browser, but no session
        cookie = c.get("/yahoo_finance/")
        a3 = cookie.headers["set-cookie"].split(";", 1)[0]
        assert a3.startswith("A3=d=")
        c.cookies.clear()
        no_cookie = c.get("/yahoo_finance/v1/test/getcrumb")
        assert no_cookie.status_code == 429 and no_cookie.text == "Edge: Too Many Requests"
        crumb = c.get("/yahoo_finance/v1/test/getcrumb", headers={"Cookie": a3}).text
        assert 4 <= len(crumb) <= 64
        bad = c.get(CHART + "&crumb=WRONGcrumb1", headers={"Cookie": a3})
        assert bad.status_code == 401
        assert bad.json()["finance"]["error"]["description"] == "Invalid Crumb"
        other = c.get("/yahoo_finance/").headers["set-cookie"].split(";", 1)[0]
        assert c.get(f"{CHART}&crumb={crumb}", headers={"Cookie": other}).status_code == 401
        ok = c.get(f"{CHART}&crumb={crumb}", headers={"Cookie": a3})
        assert ok.status_code == 200 and ok.json()["chart"]["result"]


def test_yahoo_browser_helper_sets_up_once(server: SandboxServer) -> None:
    auth = YahooBrowser()
    with httpx.Client(base_url=server.url, auth=auth) as c:
        assert [c.get(CHART).status_code for _ in range(3)] == [200, 200, 200]
    assert auth.setups == 1


def test_sec_refuses_an_undeclared_tool(server: SandboxServer) -> None:
    for agent in ("", "python-requests/2.32", "Mozilla/5.0 (X11) me@example.org", "nobody@x"):
        r = httpx.get(server.url + TICKERS, headers={"User-Agent": agent})
        assert r.status_code == 403 and "Undeclared Automated Tool" in r.text, agent
    assert httpx.get(server.url + TICKERS, headers=SEC_UA).status_code == 200


def test_sec_blocks_a_client_over_10_per_second_and_keeps_blocking() -> None:
    mono = FakeMonotonic()
    with (
        SandboxServer(faults=(), monotonic=mono, sec_block_seconds=5.0) as s,
        httpx.Client(base_url=s.url, headers=SEC_UA) as c,
    ):
        codes = [c.get(TICKERS).status_code for _ in range(11)]
        assert codes == [200] * 10 + [403]
        blocked = c.get(TICKERS)
        assert blocked.status_code == 403 and "Request Rate Threshold Exceeded" in blocked.text
        assert "<title>SEC.gov | Request Rate Threshold Exceeded</title>" in blocked.text
        mono.t += 4.0  # still inside the block, and the knock extends it
        assert c.get(TICKERS).status_code == 403
        mono.t += 4.0
        assert c.get(TICKERS).status_code == 403
        mono.t += 6.0  # quiet for longer than the block
        assert c.get(TICKERS).status_code == 200
        assert stats(s.url, "sec_edgar")["refused"] == 4


@pytest.mark.parametrize(
    ("path", "headers", "status", "phrase"),
    [
        ("/fmp/stable/profile?symbol=MQG.AX&apikey=k", {}, 402, "current subscription"),
        ("/fmp/stable/profile?symbol=AAPL&apikey=invalid", {}, 401, "Invalid API KEY"),
        (
            "/alpha_vantage/query?function=OVERVIEW&symbol=AAPL&apikey=invalid",
            {},
            200,
            "apikey is invalid or missing",
        ),
        (
            "/fred/fred/series/observations?series_id=DGS10&file_type=json&api_key=invalid",
            {},
            400,
            "api_key is not registered",
        ),
        ("/coingecko/api/v3/global", {"x-cg-pro-api-key": "invalid"}, 401, "Invalid API Key"),
    ],
)
def test_plan_and_key_refusals(
    server: SandboxServer, path: str, headers: dict[str, str], status: int, phrase: str
) -> None:
    r = httpx.get(server.url + path, headers=headers)
    assert r.status_code == status and phrase in r.text


def test_fmp_free_plan_covers_us_symbols(server: SandboxServer) -> None:
    for symbol in ("AAPL", "SPY"):
        r = httpx.get(f"{server.url}/fmp/stable/profile?symbol={symbol}&apikey=k")
        assert r.status_code == 200 and r.json()[0]["symbol"] == symbol


def test_defences_off_for_experiments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESCOUT_SANDBOX_DEFENCES", "off")
    assert defences_from_env() is False
    with SandboxServer(faults=()) as s:  # defences=None reads the variable
        plain = {"User-Agent": "tradescout/0.1"}
        assert httpx.get(s.url + CHART, headers=plain).status_code == 200
        assert httpx.get(s.url + TICKERS, headers=plain).status_code == 200
        mqg = httpx.get(f"{s.url}/fmp/stable/profile?symbol=MQG.AX&apikey=k")
        assert mqg.status_code == 200
        assert httpx.get(s.url + "/yahoo_finance/", headers=plain).status_code == 404  # served
    monkeypatch.delenv("TRADESCOUT_SANDBOX_DEFENCES")
    assert defences_from_env() is True
