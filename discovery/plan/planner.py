"""Stage 2: from the report's needs and what the cache and services can give, the FetchPlan.

Pure: the cache is asked through a `coverage` function and each service's availability through
an `availability` function, both passed in. For every need the planner walks its sources in
order: a fresh cache entry covers it (read back at fetch time), a cached "nothing known" or an
unusable service moves on to the next source, and the first usable source is planned with the
rest of the chain as its fallbacks. A need left with no source is a gap already. Every planned
request carries the reason it is needed; requests are keyed by cache key, so a request two
needs share (the batched CoinGecko quote) is planned once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from typing import Literal

from discovery.plan.needs import Need
from discovery.plan.outcomes import Failed, Note, settle
from discovery.report.gaps import Gap
from services.recordclass import record
from services.spec import ServiceRequest

Coverage = Literal["fresh", "negative", "stale", "miss"]


@record
class Refused:
    """A fresh cache entry that remembers a refusal (FMP's 402 "outside your plan"): the source
    is skipped with that reason until the entry expires."""

    reason: str
    detail: str | None = None


CoverageLookup = Callable[[ServiceRequest], "Coverage | Refused"]


@record
class Availability:
    """Whether a service may be called this run, and why not."""

    usable: bool
    reason: str | None = None  # a gap reason: offline | not_configured | quota_exhausted | …
    # Calls left in today's quota (None: no quota). The planner spends it as it plans, so a
    # plan never asks a service for more than its quota allows: the rest goes to the fallback
    # from the start (in parallel) instead of after the primary has run dry.
    quota_left: int | None = None
    detail: str | None = None


AvailabilityLookup = Callable[[str], Availability]


@record
class PlannedFetch:
    request: ServiceRequest
    reason: str
    fallbacks: tuple[ServiceRequest, ...] = ()  # tried in order when the answer is not `ok`
    ticker: str | None = None  # the portfolio ticker it serves (None: market context)
    subject: str | None = None

    @property
    def label(self) -> str:
        """What the fetch is about: the ticker, else the request's subjects."""
        return self.ticker or self.subject or subject_label(self.request)

    @property
    def service(self) -> str:
        return self.request.service

    @property
    def key(self) -> str:
        return self.request.cache_key()

    @property
    def chain(self) -> tuple[ServiceRequest, ...]:
        return (self.request, *self.fallbacks)


@record
class Covered:
    subject: str
    dataset: str
    by: Literal["local", "cache"]
    detail: str
    request: ServiceRequest | None = None  # the cached request (read back at fetch time)


def subject_label(request: ServiceRequest) -> str:
    """A short name for what a request is about (`FEDFUNDS`, `bitcoin,ethereum`, `market`)."""
    return ",".join(request.subjects) if request.subjects else "market"


@record
class FetchPlan:
    needs: tuple[Need, ...]
    fetches: tuple[PlannedFetch, ...]
    covered: tuple[Covered, ...]
    gaps: tuple[Gap, ...]  # needs already known to be gaps
    blocked: Mapping[str, Failed] = field(default_factory=dict)  # by cache key, at plan time
    notes: tuple[str, ...] = ()

    @property
    def deferred(self) -> tuple[Need, ...]:
        """Needs waiting for another need's value (SEC filings wait for the CIK map)."""
        return tuple(n for n in self.needs if n.deferred is not None)

    @property
    def filings_pending(self) -> tuple[str, ...]:
        return tuple(n.label for n in self.deferred)

    def planned_by_service(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.fetches:
            counts[item.service] = counts.get(item.service, 0) + 1
        return counts

    def reads(self) -> list[PlannedFetch]:
        """The covered requests, read back through the hub (cache hits, no network)."""
        return [
            PlannedFetch(c.request, "covered by cache", subject=c.subject)
            for c in self.covered
            if c.request is not None
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "totals": {
                "planned": len(self.fetches),
                "by_service": self.planned_by_service(),
                "covered": len(self.covered),
                "gaps": len(self.gaps),
                "filings_pending_cik_map": len(self.deferred),
            },
            "fetches": [
                {
                    "service": f.service,
                    "dataset": f.request.dataset,
                    "key": f.key,
                    "subjects": list(f.request.subjects),
                    "reason": f.reason,
                    "fallback": f.fallbacks[0].service if f.fallbacks else None,
                }
                for f in self.fetches
            ],
            "covered": [
                {"subject": c.subject, "dataset": c.dataset, "by": c.by, "detail": c.detail}
                for c in self.covered
            ],
            "gaps": [g.to_json() for g in self.gaps],
            "notes": list(self.notes),
        }


class _Planner:
    """Accumulates the plan; one instance per `plan_needs` call."""

    def __init__(self, coverage: CoverageLookup, availability: AvailabilityLookup) -> None:
        self.coverage = coverage
        self.availability = availability
        self.fetches: dict[str, PlannedFetch] = {}
        self.covered: dict[str, Covered] = {}
        self.blocked: dict[str, Failed] = {}
        self.gaps: list[Gap] = []
        self.spent: dict[str, int] = {}  # planned network requests per service

    def usable(self, service: str) -> Availability:
        """The service's availability, with its quota reduced by what is already planned."""
        avail = self.availability(service)
        spent = self.spent.get(service, 0)
        if avail.usable and avail.quota_left is not None and spent >= avail.quota_left:
            return Availability(False, "quota_exhausted", 0, "the daily quota is planned out")
        return avail

    def cover(self, label: str, request: ServiceRequest) -> None:
        key = request.cache_key()
        if key not in self.covered and key not in self.fetches:
            self.covered[key] = Covered(label, request.dataset, "cache", request.service, request)

    def want(self, need: Need) -> None:
        """Cover the need from the cache, or plan its first usable source, or record its gap."""
        if need.settled is not None:
            self.gaps.append(settle(need, ()))
            return
        if need.local is not None:
            self.covered[f"local:{need.id}"] = Covered(need.label, "profile", "local", need.local)
            return
        if need.deferred is not None:
            return
        notes: list[Note] = []
        for i, source in enumerate(need.sources):
            request = source.request
            state = self.coverage(request)
            if isinstance(state, Refused):  # read back at fetch time; the engine moves on
                self.cover(need.label, request)
                notes.append(Note(request.service, request.dataset, state.reason, state.detail))
                continue
            if state == "fresh":
                self.cover(need.label, request)
                return
            if state == "negative":  # this service already said "unknown": try the next one
                self.cover(need.label, request)
                notes.append(Note(request.service, request.dataset, source.negative, None, True))
                continue
            avail = self.usable(request.service)
            if not avail.usable:
                reason = avail.reason or "unavailable"
                detail = avail.detail
                if state == "stale":
                    detail = f"{detail or reason}; a stale entry is cached"
                self.blocked.setdefault(source.key, Failed(request.service, reason, detail))
                notes.append(Note(request.service, request.dataset, reason, detail))
                continue
            why = need.why if state == "miss" else f"{need.why} (cached entry expired)"
            if i > 0:
                why += f" (fallback from {need.sources[0].service})"
            if source.key not in self.fetches:
                self.covered.pop(source.key, None)
                self.fetches[source.key] = PlannedFetch(
                    request,
                    why,
                    tuple(s.request for s in need.sources[i + 1 :]),
                    ticker=need.ticker,
                    subject=need.subject,
                )
                self.spent[request.service] = self.spent.get(request.service, 0) + 1
            return
        self.gaps.append(settle(need, notes))


def plan_needs(
    needs: Iterable[Need],
    *,
    coverage: CoverageLookup,
    availability: AvailabilityLookup,
) -> FetchPlan:
    """Plan every request the needs call for (see the module docstring)."""
    planner = _Planner(coverage, availability)
    kept = tuple(needs)
    for need in kept:
        planner.want(need)
    return FetchPlan(
        needs=kept,
        fetches=tuple(planner.fetches.values()),
        covered=tuple(planner.covered.values()),
        gaps=tuple(planner.gaps),
        blocked=dict(planner.blocked),
    )
