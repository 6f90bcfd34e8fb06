"""`tradescout doctor`'s probes: one cheap request per service, and the verdict it earns, as data.

Each service declares its probe (`ServiceSpec.probe`). `probe_services` asks every service once
through the hub's real client path — refusals and holds remembered in state/, the daily quota,
Yahoo's session set-up, limiter, breaker, retries — and turns the outcome into one of `VERDICTS`
with the one-sentence fix of services/reasons.py. No request is sent to a service that is
disabled or lacks its key (`disabled`, `not_configured`), that is held (a Yahoo block or an SEC
rate block still running, a daily limit the service declared spent: reported from the hold, since
knocking again extends a block) or whose quota is spent today (`quota_exhausted`). Probe answers
are never cached (see `ServiceHub.probe`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, get_args

from cache.envelope import utcnow
from services.client import describe
from services.errors import ServiceError
from services.hub import ServiceHub
from services.reasons import fix_for
from services.recordclass import record
from services.registry import SPECS
from services.spec import ServiceRequest

Verdict = Literal[
    "ok",
    "blocked",
    "rate_blocked",
    "bad_identity",
    "bad_credential",
    "plan_limited",
    "quota_exhausted",
    "consent_required",
    "unreachable",
    "not_configured",
    "disabled",
]
SKIPPED: frozenset[str] = frozenset({"not_configured", "disabled"})
"""Verdicts of a service doctor does not ask (and that do not count against the exit code)."""

# A refusal keeps its own name as the verdict; every other failure (5xx, timeouts, a breaker, an
# answer tradescout cannot use) means the service could not be reached usefully.
_REFUSALS: frozenset[str] = frozenset(get_args(Verdict)) - {"ok", "unreachable", "disabled"}
_MAX_DETAIL = 240


def verdict_for(reason: str) -> Verdict:
    """The verdict a gap reason earns (pure)."""
    return reason if reason in _REFUSALS else "unreachable"  # type: ignore[return-value]


@record
class ProbeResult:
    """One service's verdict. `requests` counts what the probe sent (session set-up included):
    0 for a service reported from its configuration, a hold or a spent quota."""

    service: str
    verdict: Verdict
    reason: str | None  # the gap reason behind a verdict other than ok
    detail: str  # one line: what the service answered, or why it was not asked
    fix: str | None  # from services/reasons.py; None when ok
    probe: str  # the request, described without any credential
    latency_ms: float | None  # the probe's wall time (session set-up and retries included)
    requests: int
    key_present: bool
    credential_env: str | None  # the variable the key came from (never its value)
    upstream: str
    checked_at: datetime
    session: str | None = None  # Yahoo: "set_up" or "reused"
    held_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def healthy(results: Iterable[ProbeResult]) -> bool:
    """Every service doctor asked is ok (skipped services do not count)."""
    return all(r.ok for r in results if r.verdict not in SKIPPED)


def verdict_rows(results: Iterable[ProbeResult]) -> list[dict[str, Any]]:
    """The verdicts as JSON-ready data (`doctor --json`, the MCP server's `services()`)."""
    return [
        {
            "service": r.service,
            "verdict": r.verdict,
            "ok": r.ok,
            "reason": r.reason,
            "latency_ms": r.latency_ms,
            "fix": r.fix,
            "detail": r.detail,
            "probe": r.probe,
            "requests": r.requests,
            "key_present": r.key_present,
            "credential_env": r.credential_env,
            "upstream": r.upstream,
            "session": r.session,
            "held_until": r.held_until.isoformat() if r.held_until else None,
            "checked_at": r.checked_at.isoformat(),
        }
        for r in results
    ]


def _one_line(text: str | None) -> str:
    """Single-line and printable: an upstream's words may carry terminal escape sequences."""
    printable = "".join(ch if ch.isprintable() else " " for ch in (text or "")[: 4 * _MAX_DETAIL])
    return " ".join(printable.split())[:_MAX_DETAIL]


def _session_requests(hub: ServiceHub, service: str) -> int:
    return int(hub.usage()[service].get("session_requests", 0))


def _sent(hub: ServiceHub, service: str) -> int:
    return int(hub.usage()[service]["network_requests"]) + _session_requests(hub, service)


async def probe_service(
    hub: ServiceHub,
    service: str,
    *,
    request: ServiceRequest | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ProbeResult:
    """Probe one service (its declared probe, or `request`) inside an open hub."""
    spec = SPECS[service]
    if request is None:
        if spec.probe is None:
            raise ValueError(f"{service} declares no probe")
        request = spec.probe()
    status = hub.status(service)

    def result(
        verdict: Verdict,
        reason: str | None,
        detail: str,
        *,
        latency_ms: float | None = None,
        requests: int = 0,
        session: str | None = None,
        held_until: datetime | None = None,
    ) -> ProbeResult:
        return ProbeResult(
            service=service,
            verdict=verdict,
            reason=reason,
            detail=_one_line(detail),
            fix=fix_for(reason) if reason is not None else None,
            probe=describe(request),
            key_present=status.has_credential,
            credential_env=status.credential_env,
            upstream=status.upstream,
            checked_at=clock(),
            latency_ms=latency_ms,
            requests=requests,
            session=session,
            held_until=held_until,
        )

    if not status.enabled:
        return result("disabled", "not_configured", "disabled in the configuration: not asked")
    if status.reason is not None:
        return result("not_configured", "not_configured", f"{status.reason}: not asked")
    if status.held is not None:
        until = status.held_until
        when = f" until {until:%Y-%m-%d %H:%M} UTC" if until is not None else ""
        return result(
            verdict_for(status.held),
            status.held,
            f"held{when}, not asked (knocking again would extend it): {status.held_detail}",
            held_until=until,
        )
    if status.quota_left is not None and status.quota_left <= 0:
        return result(
            "quota_exhausted",
            "quota_exhausted",
            f"today's quota of {status.daily_quota} calls is used up: not asked",
        )

    before = _sent(hub, service)
    session_before = _session_requests(hub, service)
    started = time.perf_counter()
    failure: ServiceError | None = None
    answer_verdict = "ok"
    try:
        answer_verdict = (await hub.probe(request)).verdict
    except ServiceError as exc:
        failure = exc
    latency = round((time.perf_counter() - started) * 1000.0, 1)
    sent = _sent(hub, service) - before
    session = None
    if spec.session is not None:  # Yahoo: did this probe set a session up, or reuse state/'s?
        session = "set_up" if _session_requests(hub, service) > session_before else "reused"
    if failure is not None:
        return result(
            verdict_for(failure.reason),
            failure.reason,
            failure.detail,
            latency_ms=latency,
            requests=sent,
            session=session,
        )
    detail = "answered"
    if answer_verdict == "negative":
        detail = "answered, though it does not know the probe's subject"
    if session is not None:
        detail += "; session set up" if session == "set_up" else "; stored session reused"
    return result("ok", None, detail, latency_ms=latency, requests=sent, session=session)


async def probe_services(
    hub: ServiceHub,
    services: Sequence[str],
    *,
    requests: Mapping[str, ServiceRequest] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[ProbeResult]:
    """Probe every named service at once (each on its own client); results in `services` order."""
    chosen = requests or {}
    return list(
        await asyncio.gather(
            *(probe_service(hub, s, request=chosen.get(s), clock=clock) for s in services)
        )
    )
