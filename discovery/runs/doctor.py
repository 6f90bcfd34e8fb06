"""`doctor` end to end: settings → the hub of the chosen upstream → every probe → the verdicts.

The verdicts are also kept, per upstream, in `state/doctor.{upstream}.json` (atomic, merged per
service), so a reader such as the MCP server's `services()` can show the latest ones without
probing again (`last_verdicts`). Nothing else is written but what the client itself keeps in
state/: the quota count of each probe, a hold a refusal earns, Yahoo's session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from cache.atomic import atomic_write_bytes
from cache.envelope import utcnow
from discovery.fetch.access import open_hub
from discovery.settings import Settings
from discovery.upstream import Target
from services.probe import ProbeResult, probe_services, verdict_rows
from services.registry import SERVICE_NAMES
from services.spec import ServiceRequest

MAX_FILE_BYTES = 256 * 1024


def verdicts_path(state_dir: Path, upstream: str) -> Path:
    return state_dir / f"doctor.{upstream}.json"


async def run_doctor(
    settings: Settings,
    target: Target,
    *,
    services: Sequence[str] = SERVICE_NAMES,
    requests: Mapping[str, ServiceRequest] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[ProbeResult]:
    """Probe `services` on the target's upstream and keep the verdicts in state/."""
    if target.offline:
        raise ValueError("doctor probes the network: it has no offline mode")
    # The hub's cache is never opened: probes bypass it.
    with open_hub(settings, target, clock=clock, transport=transport) as hub:
        async with hub:
            results = await probe_services(hub, services, requests=requests, clock=clock)
    save_verdicts(settings.layout.state_dir, target.upstream, results)
    return results


def save_verdicts(state_dir: Path, upstream: str, results: Sequence[ProbeResult]) -> None:
    """Merge this run's verdicts into the upstream's file (services not probed keep theirs)."""
    rows = {row["service"]: row for row in last_verdicts(state_dir, upstream) or []}
    rows.update({row["service"]: row for row in verdict_rows(results)})
    ordered = [rows[name] for name in SERVICE_NAMES if name in rows]
    body = orjson.dumps({"upstream": upstream, "services": ordered}, option=orjson.OPT_INDENT_2)
    # A read-only state/ costs the remembered verdicts, not the verdicts shown.
    with contextlib.suppress(OSError):
        atomic_write_bytes(verdicts_path(state_dir, upstream), body + b"\n")


def last_verdicts(state_dir: Path, upstream: str = "live") -> list[dict[str, Any]] | None:
    """The latest verdict of every service doctor has probed on `upstream` (the rows of
    `services.probe.verdict_rows`, each with its `checked_at`), or None when doctor has not run
    there (or its file is unreadable). Reads one small file; no network, nothing written."""
    path = verdicts_path(state_dir, upstream)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, list):
        return None
    return [
        row
        for row in services
        if isinstance(row, dict) and row.get("service") in SERVICE_NAMES and "verdict" in row
    ]


_SHOWN = ("verdict", "reason", "fix", "latency_ms", "detail", "checked_at")


def with_verdicts(
    rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Each `services` row with its service's latest doctor verdict under `doctor` (None where
    doctor has not probed it). Pure."""
    latest = {v["service"]: v for v in verdicts or ()}
    merged = []
    for row in rows:
        verdict = latest.get(str(row.get("service")))
        shown = {k: verdict.get(k) for k in _SHOWN} if verdict is not None else None
        merged.append({**row, "doctor": shown})
    return merged
