"""Shared fixtures for the services tests: a fake clock, a recording sleep, a hub factory.

Two autouse fixtures make pytest-httpx see every request: the browser-impersonating transport
(curl, which pytest-httpx cannot mock) is replaced by httpx's own, and a valid Yahoo session
(cookie + crumb) is on disk, so Yahoo's data requests go out without the set-up requests (tests
of the set-up itself remove the file)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cache.disk.store import DiskCache
from services.config import ServiceConfig
from services.hub import ServiceHub
from services.registry import SPECS
from tests.conftest import FIXTURES

PAYLOADS = FIXTURES / "payloads"
SECRET = "SEKRET123"
SEC_UA = "Test Runner test@example.invalid"
CRUMB = "TestCrumb.42"
YAHOO_SESSION = "yahoo_session.live.json"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


class FakeClock:
    """A settable UTC clock shared by the hub, its breaker/quota and the cache."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SleepRecorder:
    """An injected `sleep` that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 15, 0, 0, tzinfo=UTC))  # a Friday, 10:00 New York


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def fast_configs(**overrides: dict[str, Any]) -> dict[str, ServiceConfig]:
    """Every service configured (key = SECRET), with limiter rates high enough for tests."""
    configs = {}
    for name, spec in SPECS.items():
        values: dict[str, Any] = {"name": name, "rate_per_second": 1000.0}
        if spec.credentials:
            values["credential"] = SEC_UA if name == "sec_edgar" else SECRET
        values.update(overrides.get(name, {}))
        configs[name] = ServiceConfig(**values)
    return configs


HubFactory = Callable[..., Any]


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def plain_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest-httpx only: tests against the sandbox keep the real browser transport."""
    if "httpx_mock" in request.fixturenames:
        monkeypatch.setattr(
            "services.client.browser_transport", lambda *_a, **_k: httpx.AsyncHTTPTransport()
        )


def write_yahoo_session(state_dir: Path, created: datetime, crumb: str = CRUMB) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / YAHOO_SESSION
    session = {
        "origin": "https://query1.finance.yahoo.com",
        "cookies": {"A3": "d=cookie"},
        "crumb": crumb,
        "created_at": created.isoformat(),
    }
    path.write_bytes(orjson.dumps(session))
    return path


@pytest.fixture(autouse=True)
def yahoo_session(data_root: Path, clock: FakeClock) -> Path:
    return write_yahoo_session(data_root / "state", clock.now)


@pytest.fixture
def make_hub(
    data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> Iterator[Callable[..., Any]]:
    """`async with make_hub(configs=..., offline=...) as hub:` on one data root per test."""
    roots: list[DiskCache] = []

    @asynccontextmanager
    async def factory(
        configs: dict[str, ServiceConfig] | None = None, **kwargs: Any
    ) -> AsyncIterator[ServiceHub]:
        cache = DiskCache(data_root / "cache", clock=clock)
        roots.append(cache)
        hub = ServiceHub(
            configs if configs is not None else fast_configs(),
            cache,
            data_root / "state",
            clock=clock,
            sleep=sleeps,
            **kwargs,
        )
        async with hub:
            yield hub
        cache.close()

    yield factory
    for root in roots:
        root.close()
