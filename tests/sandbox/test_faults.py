"""Fault injection through real sockets: every mode, rates, the admin endpoint, env and specs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from services.sandbox import SERVICE_NAMES, FaultSpec, FaultSpecError, SandboxServer
from services.sandbox.faults import FaultBook, parse_fault_list, parse_fault_spec
from services.sandbox.server import faults_from_env
from tests.conftest import REPO, YahooBrowser

pytestmark = pytest.mark.integration
PROFILE = "/fmp/stable/profile?symbol=AAPL&apikey=k"
CHART = "/yahoo_finance/v8/finance/chart/AAPL?range=1mo&interval=1d"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(faults=(), enforce_limits=False, slow_ms=300) as s:
        yield s


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(auth=YahooBrowser(), base_url=server.url, timeout=5) as c:
        c.post("/_sandbox/reset")
        yield c


def set_fault(client: httpx.Client, service: str, mode: str, rate: float | None = None) -> None:
    body: dict[str, object] = {"service": service, "mode": mode}
    if rate is not None:
        body["rate"] = rate
    r = client.post("/_sandbox/faults", json=body)
    assert r.status_code == 200, r.text


def faulted(client: httpx.Client, service: str) -> int:
    return int(client.get("/_sandbox/stats").json()["services"][service]["faulted"])


def test_down_answers_503_for_every_request(client: httpx.Client) -> None:
    assert client.get(CHART).status_code == 200  # the session is set up before the fault
    set_fault(client, "yahoo_finance", "down")
    assert [client.get(CHART).status_code for _ in range(3)] == [503, 503, 503]
    assert client.get(PROFILE).status_code == 200  # other services unaffected
    assert faulted(client, "yahoo_finance") == 3


def test_error_rate_is_exact_and_stable(client: httpx.Client) -> None:
    set_fault(client, "fmp", "error", 0.3)
    codes = [client.get(PROFILE).status_code for _ in range(10)]
    assert codes.count(500) == 3 and codes.count(200) == 7
    set_fault(client, "fmp", "error", 0.3)  # re-arming restarts the same sequence
    assert [client.get(PROFILE).status_code for _ in range(10)] == codes
    stats = client.get("/_sandbox/stats").json()["services"]["fmp"]
    assert stats["faulted"] == 6 and stats["served"] == 14 and stats["requests"] == 20


def test_timeout_hangs_past_the_client_timeout(server: SandboxServer) -> None:
    with httpx.Client(auth=YahooBrowser(), base_url=server.url, timeout=0.3) as c:
        set_fault(c, "imf", "timeout")
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get("/imf/external/datamapper/api/v1/NGDP_RPCH/USA")
        assert time.monotonic() - started < 2
        c.delete("/_sandbox/faults")
        assert c.get("/imf/external/datamapper/api/v1/NGDP_RPCH/USA").status_code == 200


def test_timeout_ends_in_504_when_the_client_waits() -> None:
    with (
        SandboxServer(faults=[FaultSpec("imf", "timeout")], timeout_s=0.2) as s,
        httpx.Client(auth=YahooBrowser(), base_url=s.url, timeout=5) as c,
    ):
        assert c.get("/imf/external/datamapper/api/v1/LUR/USA").status_code == 504


def test_stop_releases_hanging_requests_quickly() -> None:
    server = SandboxServer(faults=[FaultSpec("fred", "timeout")]).start()
    import threading

    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(server.url + "/fred/fred/series/observations", timeout=20))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    t.join(5)
    assert outcome and not isinstance(outcome[0], httpx.Response)


def test_malformed_is_200_with_broken_json(client: httpx.Client) -> None:
    set_fault(client, "fmp", "malformed")
    r = client.get(PROFILE)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert r.headers["x-tradescout-synthetic"] == "true"


def test_drop_cuts_the_connection_mid_response(client: httpx.Client) -> None:
    assert client.get(CHART).status_code == 200  # the session is set up before the fault
    set_fault(client, "yahoo_finance", "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(CHART)
    client.delete("/_sandbox/faults", params={"service": "yahoo_finance"})
    assert client.get(CHART).status_code == 200


def test_slow_adds_latency_then_answers(client: httpx.Client) -> None:
    set_fault(client, "coingecko", "slow")
    started = time.monotonic()
    r = client.get("/coingecko/api/v3/global")
    assert r.status_code == 200 and "data" in r.json()
    assert time.monotonic() - started >= 0.3
    assert faulted(client, "coingecko") == 1


def test_latency_option() -> None:
    with (
        SandboxServer(faults=(), latency_ms=150) as s,
        httpx.Client(auth=YahooBrowser(), base_url=s.url) as c,
    ):
        started = time.monotonic()
        assert c.get("/imf/external/datamapper/api/v1/LUR/USA").status_code == 200
        assert 0.15 <= time.monotonic() - started < 1.5


def test_admin_endpoint_validates_and_lists(client: httpx.Client) -> None:
    r = client.post("/_sandbox/faults", json={"service": "nasdaq", "mode": "down"})
    assert r.status_code == 400 and "unknown service" in r.json()["error"]
    r = client.post("/_sandbox/faults", json={"service": "fmp", "mode": "explode"})
    assert r.status_code == 400 and "unknown mode" in r.json()["error"]
    r = client.post("/_sandbox/faults", json={"service": "fmp", "mode": "error", "rate": 2})
    assert r.status_code == 400
    set_fault(client, "sec_edgar", "down", 0.5)
    listed = client.get("/_sandbox/faults").json()["faults"]
    assert listed == [{"service": "sec_edgar", "mode": "down", "rate": 0.5}]
    assert client.delete("/_sandbox/faults").json() == {"faults": []}
    client.post("/_sandbox/faults", json={"service": "fmp", "mode": "down"})
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/faults").json() == {"faults": []}


def test_faults_from_constructor_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESCOUT_SANDBOX_FAULTS", "yahoo_finance=down,fmp=error:0.5")
    assert faults_from_env() == [
        FaultSpec("yahoo_finance", "down", 1.0),
        FaultSpec("fmp", "error", 0.5),
    ]
    with (
        SandboxServer() as s,
        httpx.Client(auth=YahooBrowser(), base_url=s.url) as c,
    ):  # faults=None → env
        assert c.get(CHART).status_code == 503
        assert [c.get(PROFILE).status_code for _ in range(4)] == [200, 500, 200, 500]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("fmp", "SERVICE=MODE"),
        ("nasdaq=down", "unknown service"),
        ("fmp=explode", "unknown mode"),
        ("fmp=error:abc", "a rate is a fraction"),
        ("fmp=error:0", "a rate is a fraction"),
        ("fmp=error:1.5", "a rate is a fraction"),
    ],
)
def test_bad_specs_are_one_sentence(text: str, needle: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_fault_spec(text, SERVICE_NAMES)
    message = str(info.value)
    assert needle in message and message.endswith(".") and "\n" not in message


def test_fault_book_sequence() -> None:
    book = FaultBook(parse_fault_list("imf=error:0.25", SERVICE_NAMES))
    hits = [book.decide("imf") for _ in range(8)]
    assert hits == [None, None, None, "error"] * 2
    assert book.decide("fmp") is None


def test_sandbox_stands_apart_from_the_product() -> None:
    """Nothing under services/sandbox imports discovery, cache or another services module but
    the registry (the one list of services, which the sandbox simulates)."""
    import ast

    root = REPO / "services" / "sandbox"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"discovery", "cache"}, f"{path.name} imports {name}"
                if top == "services":
                    allowed = name.startswith("services.sandbox") or name == "services.registry"
                    assert allowed, f"{path.name} imports {name}"
