"""The client and hub on the coordination layer: every process of a data root (here: several hubs
on one state/, each with its own connection, as separate processes would have) shares one pacing
queue, one daily count, one set of holds and open breakers, and fetches a key once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from cache.disk.store import DiskCache
from services import fmp, fred, sec_edgar
from services.coord.flags import CIRCUIT_OPEN, RATE_BLOCKED, MachineFlags
from services.coord.keys import Scope
from services.coord.statedb import StateDB
from services.errors import ServiceError
from services.hub import ServiceHub
from services.quota import QuotaLedger
from tests.services.conftest import PAYLOADS, FakeClock, SleepRecorder, fast_configs, payload


def text(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


def hub_on(root: Path, clock: FakeClock, sleeps: SleepRecorder, **configs: Any) -> ServiceHub:
    """A hub on `root` with its own cache handle and state connections (a "process")."""
    return ServiceHub(
        fast_configs(**configs),
        DiskCache(root / "cache", clock=clock),
        root / "state",
        clock=clock,
        sleep=sleeps,
    )


async def test_the_ceiling_slot_is_held_before_the_pacing_slot(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    """A request takes its place under the global ceiling first, then its pacing slot, and is
    sent right after it: it never waits in the ceiling queue with a slot already booked."""
    httpx_mock.add_response(json=payload("fred__observations_DGS10.json"), is_reusable=True)
    hub = hub_on(data_root, clock, sleeps, fred={"rate_per_second": 20.0})
    seen: list[int] = []
    async with hub:
        client = hub._clients["fred"]
        limiter = client._limiter_for_run()
        original = limiter.acquire

        async def watched() -> None:
            seen.append(hub._ceiling.in_flight)  # already counted under the ceiling
            await original()

        limiter.acquire = watched  # type: ignore[method-assign]
        await asyncio.gather(*(hub.fetch(fred.observations_request(f"S{i}")) for i in range(6)))
    assert len(seen) == 6 and all(in_flight >= 1 for in_flight in seen)


async def test_holds_are_flags_every_process_of_the_data_root_obeys(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=403, text=text("sec__403_rate_threshold.html"))
    first = hub_on(data_root, clock, sleeps)
    second = hub_on(data_root, clock, sleeps)
    async with first, second:  # two runs side by side on one data root
        with pytest.raises(ServiceError, match="Threshold"):
            await first.fetch(sec_edgar.company_tickers_request())
        with pytest.raises(ServiceError) as info:
            await second.fetch(sec_edgar.submissions_request("320193"))
        assert info.value.reason == "rate_blocked"
    assert len(httpx_mock.get_requests()) == 1  # the second never knocked
    db = StateDB(data_root / "state")
    try:
        flag = await MachineFlags(db, wall=lambda: clock().timestamp()).get(
            Scope("live", "sec_edgar"), RATE_BLOCKED
        )
        assert flag is not None and 590 < flag.remaining <= 600
    finally:
        db.close()
    assert not (data_root / "state" / "quotas.sqlite").read_bytes().count(b"service_holds")


async def test_a_hold_an_earlier_version_kept_in_the_ledger_still_holds(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    state = data_root / "state"
    QuotaLedger(state, clock=clock).close()
    db = sqlite3.connect(state / QuotaLedger.FILE_NAME)
    db.execute(
        "CREATE TABLE service_holds (upstream TEXT, service TEXT, reason TEXT, detail TEXT, "
        "until TEXT, PRIMARY KEY (upstream, service))"
    )
    until = clock().replace(hour=23).isoformat()
    db.execute(
        "INSERT INTO service_holds VALUES ('live', 'fmp', 'quota_exhausted', 'Limit Reach', ?)",
        (until,),
    )
    db.commit()
    db.close()
    async with hub_on(data_root, clock, sleeps) as hub:
        assert hub.status("fmp").held == "quota_exhausted"
        with pytest.raises(ServiceError) as info:
            await hub.fetch(fmp.profile_request("ACME"))
        assert info.value.reason == "quota_exhausted"
    assert httpx_mock.get_requests() == []
    async with hub_on(data_root, clock, sleeps) as hub:  # handed over once, kept as a flag
        assert hub.status("fmp").held == "quota_exhausted"


async def test_a_breaker_opened_in_one_process_fails_the_others_fast(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=503, is_reusable=True)
    first = hub_on(data_root, clock, sleeps)
    second = hub_on(data_root, clock, sleeps)
    async with first, second:
        for i in range(3):  # 4 attempts each: the breaker opens
            with pytest.raises(ServiceError):
                await first.fetch(fred.observations_request(f"S{i}"))
        assert first.status("fred").breaker_state == "open"
        asked = len(httpx_mock.get_requests())
        with pytest.raises(ServiceError) as info:
            await second.fetch(fred.observations_request("OTHER"))
        assert info.value.reason == "circuit_open" and "another tradescout process" in str(
            info.value
        )
        assert len(httpx_mock.get_requests()) == asked
        clock.advance(first._clients["fred"].breaker.reset_seconds + 1)
        flags = second._clients["fred"].coord.flags
        assert await flags.get(Scope("live", "fred"), CIRCUIT_OPEN) is None  # it dropped


async def test_two_processes_fetch_a_key_once(
    data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    """Two hubs on one data root ask for the same series at once: one request; the other waits
    on the lease and reads the answer from the shared disk cache."""
    calls: list[str] = []
    body = payload("fred__observations_DGS10.json")

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        await asyncio.sleep(0.3)
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(slow)
    hubs = [
        ServiceHub(
            fast_configs(),
            DiskCache(data_root / "cache", clock=clock),
            data_root / "state",
            clock=clock,
            sleep=sleeps,
            transport=transport,
        )
        for _ in range(2)
    ]
    async with hubs[0], hubs[1]:
        request = fred.observations_request("DGS10")
        results = await asyncio.gather(*(h.fetch(request) for h in hubs))
        usage = [h.usage()["fred"] for h in hubs]
    assert len(calls) == 1
    assert [r.payload for r in results] == [body, body]
    assert sorted(u["network_requests"] for u in usage) == [0, 1]
    assert sum(u["shared_inflight"] for u in usage) == 1


async def test_a_refresh_renews_only_what_was_not_stored_since_it_began(
    data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    """A forced fetch that finds the key's lease taken waits and takes what the owner stored;
    an entry older than its run it asks for anew."""
    calls: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        await asyncio.sleep(0.2)
        return httpx.Response(200, json=payload("fred__observations_DGS10.json"))

    transport = httpx.MockTransport(answer)
    request = fred.observations_request("DGS10")
    discover, refresh = (
        ServiceHub(
            fast_configs(),
            DiskCache(data_root / "cache", clock=clock),
            data_root / "state",
            clock=clock,
            sleep=sleeps,
            transport=transport,
        )
        for _ in range(2)
    )
    async with refresh:
        clock.advance(1)
        async with discover:
            await asyncio.gather(discover.fetch(request), refresh.fetch_fresh(request))
        assert len(calls) == 1  # the refresh took the discover's answer
        clock.advance(1)
    async with ServiceHub(
        fast_configs(),
        DiskCache(data_root / "cache", clock=clock),
        data_root / "state",
        clock=clock,
        sleep=sleeps,
        transport=transport,
    ) as later:
        await later.fetch_fresh(request)  # a later refresh renews it
    assert len(calls) == 2
