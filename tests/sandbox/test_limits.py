"""The sandbox enforces the real services' limits: sliding windows (429 + Retry-After), Alpha
Vantage's Note/Information bodies, and stats/reset that count all of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from services.sandbox import SandboxServer
from services.sandbox.limits import Limits, Window
from tests.conftest import YahooBrowser

pytestmark = pytest.mark.integration
UA = {"User-Agent": "tradescout-sandbox sandbox@example.invalid"}
AV = "/alpha_vantage/query?function=OVERVIEW&symbol=AAPL&apikey=k"


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def client(mono: FakeMonotonic) -> Iterator[httpx.Client]:
    clock = lambda: datetime(2026, 11, 20, 15, tzinfo=UTC)  # noqa: E731
    with (
        SandboxServer(faults=(), clock=clock, monotonic=mono) as server,
        httpx.Client(auth=YahooBrowser(), base_url=server.url, headers=UA) as c,
    ):
        yield c


def stats(client: httpx.Client) -> dict[str, dict[str, int]]:
    return client.get("/_sandbox/stats").json()["services"]  # type: ignore[no-any-return]


def test_sliding_window_unit() -> None:
    now = [0.0]
    limits = Limits({"x": Window(2, 1.0)}, {}, lambda: now[0])
    day = date(2026, 1, 1)
    assert limits.admit("x", day).verdict == "ok"
    now[0] = 0.4
    assert limits.admit("x", day).verdict == "ok"
    now[0] = 0.5
    blocked = limits.admit("x", day)
    assert blocked.verdict == "rate_limited" and blocked.retry_after == 1
    now[0] = 1.01  # the first hit has left the window
    assert limits.admit("x", day).verdict == "ok"
    assert limits.admit("x", day).verdict == "rate_limited"
    assert limits.admit("unlimited", day).verdict == "ok"


def test_paced_client_never_sees_429(client: httpx.Client, mono: FakeMonotonic) -> None:
    """2 req/s against Yahoo's 5 req/s window: 20 requests, zero 429s."""
    for _ in range(20):
        assert client.get("/yahoo_finance/v8/finance/chart/AAPL?range=5d").status_code == 200
        mono.t += 0.5
    assert stats(client)["yahoo_finance"]["rate_limited"] == 0


@pytest.mark.parametrize(
    ("service", "path", "limit"),
    [
        ("yahoo_finance", "/yahoo_finance/v8/finance/chart/AAPL?range=5d", 5),
        ("fmp", "/fmp/stable/profile?symbol=AAPL&apikey=k", 5),
        ("fred", "/fred/fred/series/observations?series_id=UNRATE&api_key=k&file_type=json", 2),
        ("coingecko", "/coingecko/api/v3/global", 30),
        ("imf", "/imf/external/datamapper/api/v1/NGDP_RPCH/USA", 5),
    ],
)
def test_burst_gets_429_with_retry_after(
    client: httpx.Client, mono: FakeMonotonic, service: str, path: str, limit: int
) -> None:
    codes = [client.get(path).status_code for _ in range(limit)]
    assert all(c in {200} for c in codes)
    r = client.get(path)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-tradescout-synthetic"] == "true"
    s = stats(client)[service]
    assert s == {
        "requests": limit + 1,
        "session": 2 if service == "yahoo_finance" else 0,  # the browser's cookie and crumb
        "served": limit,
        "rate_limited": 1,
        "throttled": 0,
        "faulted": 0,
        "refused": 0,
    }
    mono.t += 61.0  # every window has passed
    assert client.get(path).status_code == 200


def test_fred_429_body_is_fred_shaped(client: httpx.Client) -> None:
    path = "/fred/fred/series/observations?series_id=UNRATE&api_key=k&file_type=json"
    responses = [client.get(path) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[-1].json()["error_code"] == 429


def test_alpha_vantage_note_then_information(client: httpx.Client, mono: FakeMonotonic) -> None:
    bodies = [client.get(AV) for _ in range(6)]
    assert all(r.status_code == 200 for r in bodies)
    assert all("Symbol" in r.json() for r in bodies[:5])
    assert "Note" in bodies[5].json()
    served = 5
    while served < 25:  # a minute later the window is free again, until the daily quota
        mono.t += 61.0
        for _ in range(5):
            body = client.get(AV).json()
            assert "Symbol" in body, body
            served += 1
    mono.t += 61.0
    r = client.get(AV)
    assert r.status_code == 200 and "Information" in r.json()
    s = stats(client)["alpha_vantage"]
    assert s["served"] == 25 and s["throttled"] == 2 and s["rate_limited"] == 0
    assert s["requests"] == 27


def test_reset_clears_windows_quotas_and_counters(client: httpx.Client) -> None:
    for _ in range(6):
        client.get(AV)
    assert stats(client)["alpha_vantage"]["throttled"] == 1
    assert client.post("/_sandbox/reset").json() == {"reset": True}
    assert stats(client)["alpha_vantage"] == {
        "requests": 0,
        "session": 0,
        "served": 0,
        "rate_limited": 0,
        "throttled": 0,
        "faulted": 0,
        "refused": 0,
    }
    assert "Symbol" in client.get(AV).json()


def test_limits_can_be_disabled() -> None:
    with (
        SandboxServer(faults=(), enforce_limits=False) as server,
        httpx.Client(auth=YahooBrowser(), base_url=server.url) as c,
    ):
        codes = {c.get("/imf/external/datamapper/api/v1/LUR/USA").status_code for _ in range(30)}
        assert codes == {200}
