"""Nightly refresh (issue 7): keep the cache warm so the morning's `discover` is instant.

For the tickers of the chosen portfolios and the market context, re-fetch what `discover` would
plan and that is missing or expires within the horizon — market context and open positions
first, then the most recently traded tickers — never spending more than the per-service nightly
budget (default: half of each daily quota, so the day keeps the rest).

The fetching is the one fetch engine's (discovery/fetch/engine.py) in its `fresh` mode: the
same lanes per service, fallback chain and CIK phase two as `discover`. What is refresh's own:
the horizon coverage, the budgets, the priority order and the resumable cycle.

Resumable: the cycle's start time and each service's quota count at that moment are kept in
`state/refresh_cycle.json` until the cycle finishes. A refresh restarted within
`RESUME_WINDOW` treats every entry fetched since that start as done, and charges the requests
counted since then against its budget, so a killed and restarted refresh does only the
remainder and never spends the budget twice.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_json
from cache.backend import ReadState
from discovery.errors import storage_sentence
from discovery.fetch.access import availability_lookup, open_hub
from discovery.fetch.ceilings import peak_rss_mb
from discovery.fetch.engine import Fetched, FetchEngine, PhaseTwo
from discovery.ingest.portfolios import list_portfolios, resolve_portfolio
from discovery.ingest.trades import TradeBook, ingest
from discovery.local.inventory import build_inventory
from discovery.plan.needs import CIK_MAP, Need, fx_needs
from discovery.plan.outcomes import Failed, Got
from discovery.plan.parsed import parse_answer
from discovery.plan.planner import (
    Coverage,
    CoverageLookup,
    FetchPlan,
    PlannedFetch,
    plan_needs,
)
from discovery.runs.discover import (
    book_needs,
    cached_currencies,
    new_run_id,
    open_tickers,
    payload_from_cache,
)
from discovery.runs.record import check_writable, record_run
from discovery.settings import Settings
from discovery.upstream import Target
from services.hub import ServiceHub
from services.recordclass import record
from services.registry import SERVICE_NAMES
from services.spec import ServiceRequest

Clock = Callable[[], datetime]
CYCLE_FILE = "refresh_cycle.json"
# A restart later than this begins a new cycle: nightly runs are ~24 h apart, so yesterday's
# unfinished cycle must never make today's refresh skip entries fetched yesterday.
RESUME_WINDOW = timedelta(hours=12)
MARKET_RANK: tuple[int, int] = (-1, 0)


def default_budgets(quotas: Mapping[str, int | None]) -> dict[str, int | None]:
    """Half of each daily quota (rounded down); services without a quota have no budget."""
    return {name: (q // 2 if q is not None else None) for name, q in quotas.items()}


@record(frozen=False, repr=False)
class RefreshResult:
    """A refresh run's result; a short repr, as `Outcome`'s (asyncio.run formats it)."""

    run_id: str
    portfolios: list[str]
    refreshed: list[dict[str, Any]] = field(default_factory=list)
    skipped_fresh: int = 0
    skipped_budget: list[dict[str, Any]] = field(default_factory=list)
    not_planned: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, int | None] = field(default_factory=dict)
    budget_used: dict[str, int] = field(default_factory=dict)
    spent_before_resume: dict[str, int] = field(default_factory=dict)
    duration_ms: float = 0.0
    resumed_from: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # how limits and cache were shared
    worker: str | None = None  # the Dask worker that ran it, if one did

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0

    def __repr__(self) -> str:
        return f"RefreshResult(run_id={self.run_id!r}, exit_code={self.exit_code})"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "portfolios": self.portfolios,
            "refreshed": len(self.refreshed),
            "skipped_fresh": self.skipped_fresh,
            "skipped_budget": len(self.skipped_budget),
            "not_planned": len(self.not_planned),
            "failed": len(self.failed),
            "budget": self.budget,
            "budget_used": self.budget_used,
            "spent_before_resume": self.spent_before_resume,
            "duration_ms": round(self.duration_ms, 1),
            "resumed_from": self.resumed_from,
            "details": {
                "refreshed": self.refreshed,
                "skipped_budget": self.skipped_budget,
                "not_planned": self.not_planned,
                "failed": self.failed,
            },
            "service_usage": self.usage,
            "shared": self.shared,
            "worker": self.worker,
        }


def horizon_coverage(
    hub: ServiceHub, now: datetime, horizon: timedelta, cycle_start: datetime
) -> CoverageLookup:
    """`fresh` only if the entry outlives the horizon or was fetched during this cycle."""

    def lookup(request: ServiceRequest) -> Coverage:
        read = hub.peek(request)
        env = read.envelope
        if read.state == ReadState.MISS or env is None:
            return "miss"
        if env.fetched_at >= cycle_start or env.expires_at > now + horizon:
            return "negative" if env.status == "negative" else "fresh"
        return "stale"

    return lookup


def ticker_ranks(books: Sequence[TradeBook]) -> dict[str, tuple[int, int]]:
    """Per ticker over every book: (0 if an open position anywhere else 1, -most recent day)."""
    ranks: dict[str, tuple[int, int]] = {}
    for book in books:
        open_set = set(open_tickers(book))
        for t, stats in book.tickers.items():
            days = [d.toordinal() for d in (stats.first_entry, stats.last_exit) if d is not None]
            rank = (0 if t in open_set else 1, -max(days, default=0))
            ranks[t] = min(ranks.get(t, rank), rank)
    return ranks


def by_priority(tickers: Sequence[str], ranks: Mapping[str, tuple[int, int]]) -> list[str]:
    """Open positions first, then by most recent trade (newest first); stable otherwise."""
    return sorted(tickers, key=lambda t: ranks.get(t, (2, 0)))


def item_rank(item: PlannedFetch, ranks: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """Market context (anything not about a traded ticker) first, then by the ticker's rank."""
    if item.ticker is None or item.ticker not in ranks:
        return MARKET_RANK
    return ranks[item.ticker]


class Budget:
    """What each service may still spend this cycle (None = unlimited)."""

    def __init__(self, remaining: Mapping[str, int | None]) -> None:
        self.remaining = dict(remaining)

    def take(self, service: str) -> bool:
        left = self.remaining.get(service)
        if left is None:
            return True
        if left <= 0:
            return False
        self.remaining[service] = left - 1
        return True


def _label(req: ServiceRequest) -> dict[str, Any]:
    return {"service": req.service, "dataset": req.dataset, "subjects": list(req.subjects)}


def load_books(settings: Settings, portfolios: Sequence[str]) -> list[tuple[str, TradeBook]]:
    layout = settings.layout
    names = list(portfolios) or list_portfolios(layout)
    return [
        (n, ingest(resolve_portfolio(layout, n), chunk_rows=settings.csv_chunk_rows)) for n in names
    ]


@record
class Cycle:
    start: datetime
    resumed_from: str | None
    quota_at_start: dict[str, int]


def prioritised(plan: FetchPlan, ranks: Mapping[str, tuple[int, int]]) -> FetchPlan:
    """The plan's fetches in refresh order: the CIK map first (filings wait on it), then market
    context, then tickers by priority (the engine's lanes keep this order)."""
    cik_keys = {s.key for n in plan.needs if n.id == CIK_MAP for s in n.sources}
    order = sorted(plan.fetches, key=lambda i: (i.key not in cik_keys, item_rank(i, ranks)))
    return dataclasses.replace(plan, fetches=tuple(order))


class _Tally:
    """Refresh's own accounting around the engine: the budget it admits requests by, what the
    cache already covers, what was not planned and why."""

    def __init__(self, result: RefreshResult, budget: Budget, coverage: CoverageLookup) -> None:
        self.result = result
        self.budget = budget
        self.coverage = coverage
        self.fresh_keys: set[str] = set()
        self.not_planned: set[tuple[str | None, str | None, str, str]] = set()
        self.covered_items: set[str] = set()

    def plan(self, plan: FetchPlan) -> None:
        for c in plan.covered:
            if c.by == "cache":
                self.fresh_keys.add(c.request.cache_key() if c.request else c.subject)
        for g in plan.gaps:
            self.not_planned.add((g.ticker, g.service, g.dataset, g.reason))

    def admit(self, item: PlannedFetch, request: ServiceRequest, fallback: bool) -> bool:
        """Renew a fallback only when it is due (else it stands in as it is) and every request
        only while its service's budget lasts."""
        if fallback and self.coverage(request) in ("fresh", "negative"):
            self.result.skipped_fresh += 1
            self.covered_items.add(item.key)
            return False
        if self.budget.take(request.service):
            return True
        self.result.skipped_budget.append(_label(request))
        return False

    def finish(
        self,
        deferred_left: Sequence[Need],
        fetched: Fetched,
        uncached: Callable[[ServiceRequest], bool] = lambda _: False,
    ) -> None:
        """Tally the outcomes; an answer the disk refused to cache renewed nothing (`disk_full`)."""
        result = self.result
        result.skipped_fresh += len(self.fresh_keys)
        for need in deferred_left:
            self.not_planned.add((need.ticker, "sec_edgar", "filings", "cik_map_unavailable"))
        result.not_planned.extend(
            {"ticker": t, "service": s, "dataset": d, "reason": r}
            for t, s, d, r in sorted(self.not_planned, key=str)
        )
        for item in fetched.scheduled:
            keys = [r.cache_key() for r in item.chain]
            for req, key in zip(item.chain, keys, strict=True):
                outcome = fetched.outcomes.get(key)
                if isinstance(outcome, Got) and outcome.result.origin != "cache":
                    if uncached(req):
                        result.failed.append({**_label(req), "reason": "disk_full"})
                    else:
                        result.refreshed.append({**_label(req), "status": outcome.result.status})
            if item.key in self.covered_items:
                continue
            if any(isinstance(fetched.outcomes.get(k), Got) for k in keys):
                continue
            failure = next(
                (
                    (req, o)
                    for req, k in zip(item.chain, keys, strict=True)
                    if isinstance(o := fetched.outcomes.get(k), Failed)
                ),
                None,
            )
            if failure is not None:
                result.failed.append({**_label(failure[0]), "reason": failure[1].reason})


@record
class RefreshSetup:
    """What a refresh (or its dry run) decides before fetching: the budgets, the cycle it
    resumes or begins, and the plan in refresh order."""

    budget: dict[str, int | None]
    remaining: dict[str, int | None]
    cycle: Cycle
    used_now: dict[str, int]
    coverage: CoverageLookup
    planner: Callable[[Sequence[Need]], FetchPlan]
    ranks: dict[str, tuple[int, int]]
    plan: FetchPlan


def plan_refresh(
    hub: ServiceHub,
    settings: Settings,
    books: Sequence[tuple[str, TradeBook]],
    *,
    started: datetime,
    horizon: timedelta,
    budgets: Mapping[str, int | None] | None,
    benchmark: str,
) -> RefreshSetup:
    """The one refresh plan, for the run and for `refresh --dry-run` alike (pure but for the
    hub's peeks and the cycle file it reads)."""
    layout = settings.layout
    names = SERVICE_NAMES
    budget = dict(default_budgets({name: hub.status(name).daily_quota for name in names}))
    budget.update(budgets or {})
    used_now = {name: hub.status(name).quota_used_today for name in names}
    cycle = _load_cycle(layout.state_dir / CYCLE_FILE, started, used_now)
    spent = (
        {n: max(0, used_now[n] - cycle.quota_at_start.get(n, used_now[n])) for n in used_now}
        if cycle.resumed_from is not None
        else {}
    )
    remaining = {n: (None if b is None else max(0, b - spent.get(n, 0))) for n, b in budget.items()}
    coverage = horizon_coverage(hub, started, horizon, cycle.start)
    avail = availability_lookup(hub)

    def planner(needs: Sequence[Need]) -> FetchPlan:
        return plan_needs(needs, coverage=coverage, availability=avail)

    ranks = ticker_ranks([b for _, b in books])
    needs: list[Need] = []
    for _name, book in books:
        inv = build_inventory(
            layout,
            book.ticker_symbols,
            today=started.date(),
            max_age_days=settings.max_local_age_days,
        )
        order = by_priority(book.ticker_symbols, ranks)
        needs.extend(book_needs(book, inv, started.date(), benchmark=benchmark, order=order))
    base = settings.base_currency
    needs.extend(fx_needs(cached_currencies(hub, needs), base=base, today=started.date()))
    plan = prioritised(planner(needs), ranks)
    return RefreshSetup(budget, remaining, cycle, used_now, coverage, planner, ranks, plan)


async def refresh_async(
    settings: Settings,
    portfolios: Sequence[str],
    *,
    target: Target,
    horizon: timedelta,
    budgets: Mapping[str, int | None] | None = None,
    benchmark: str = "SPY",
    clock: Clock = lambda: datetime.now(UTC),
    worker: str | None = None,
) -> RefreshResult:
    """One refresh run over `portfolios` (`worker`: the Dask worker running it, if one is)."""
    started = clock()
    t0 = time.perf_counter()
    layout = settings.layout
    books = load_books(settings, portfolios)
    cycle_path = layout.state_dir / CYCLE_FILE
    offline = target.offline
    with open_hub(settings, target, clock=clock) as hub:
        async with hub:  # entered first: planning sees the shared holds and counts
            setup = plan_refresh(
                hub,
                settings,
                books,
                started=started,
                horizon=horizon,
                budgets=budgets,
                benchmark=benchmark,
            )
            cycle = setup.cycle
            result = RefreshResult(new_run_id(started), [n for n, _ in books], budget=setup.budget)
            result.worker = worker
            result.resumed_from = cycle.resumed_from
            if cycle.resumed_from is not None:
                result.spent_before_resume = {
                    n: max(0, setup.used_now[n] - cycle.quota_at_start.get(n, setup.used_now[n]))
                    for n in setup.used_now
                }
            if not offline:  # a refresh whose results could not be kept is not started
                check_writable(
                    refresh_report_path(layout.refresh_reports_dir, started.date(), result.run_id)
                )
                try:
                    atomic_write_json(
                        cycle_path,
                        {
                            "started_at": cycle.start.isoformat(),
                            "quota_at_start": cycle.quota_at_start,
                        },
                    )
                except OSError as exc:
                    raise storage_sentence(cycle_path, exc, "the refresh cycle") or exc from None
            plan, ranks = setup.plan, setup.ranks
            tally = _Tally(result, Budget(setup.remaining), setup.coverage)
            tally.plan(plan)

            def planner2(concrete: Sequence[Need]) -> FetchPlan:
                second = prioritised(setup.planner(concrete), ranks)
                tally.plan(second)
                return second

            engine = FetchEngine(hub, mode="fresh", admit=tally.admit)
            load = lambda res: payload_from_cache(hub, res)  # noqa: E731
            phase_two = PhaseTwo.of(plan, planner2, lambda answer: parse_answer(answer, load))
            fetched = await engine.run(plan, phase_two)
            # Exchange rates of the currencies this refresh just learned (charts fetched now).
            asked = {n.id for n in plan.needs}
            more = fx_needs(
                cached_currencies(hub, plan.needs),
                base=settings.base_currency,
                today=started.date(),
            )
            more = tuple(n for n in more if n.id not in asked)
            if more and not offline:
                fx = await FetchEngine(hub, mode="fresh", admit=tally.admit).run(planner2(more))
                fetched.outcomes.update(fx.outcomes)
                fetched.scheduled.extend(fx.scheduled)
            result.usage = hub.usage()
            result.shared = hub.sharing()
            left = [n for n in fetched.needs(plan) if n.deferred is not None]
            tally.finish(left, fetched, hub.uncached)
            result.budget_used = {
                n: int(u["network_requests"])
                for n, u in result.usage.items()
                if u["network_requests"]
            }
            if not result.failed and not offline:
                cycle_path.unlink(missing_ok=True)
    result.duration_ms = (time.perf_counter() - t0) * 1000.0
    path = refresh_report_path(layout.refresh_reports_dir, started.date(), result.run_id)
    result.report_path = path
    record_run(
        layout.state_dir,
        path,
        result.to_json(),
        run_id=result.run_id,
        kind="refresh",
        portfolio=",".join(result.portfolios)[:200] or None,
        started_at=started,
        duration_ms=result.duration_ms,
        usage=result.usage,
        gaps=len(result.failed) + len(result.skipped_budget),
        peak_rss_mb=peak_rss_mb(),
        exit_code=result.exit_code,
        upstream=target.label,
    )
    return result


PREVIEW_SHOWN = 12


def preview_refresh(
    settings: Settings,
    portfolios: Sequence[str],
    *,
    target: Target,
    horizon: timedelta,
    budgets: Mapping[str, int | None] | None = None,
    benchmark: str = "SPY",
    now: datetime,
) -> dict[str, Any]:
    """`refresh --dry-run`: the same plan on a read-only hub — no client, no lock, no file
    written, nothing sent. A fallback counts only as the primary it stands in for (whether it
    is needed shows only when the primary answers); SEC filings that wait on a CIK map still
    to be fetched are counted, not listed."""
    books = load_books(settings, portfolios)
    with open_hub(settings, target, read_only=True) as hub:
        setup = plan_refresh(
            hub,
            settings,
            books,
            started=now,
            horizon=horizon,
            budgets=budgets,
            benchmark=benchmark,
        )
    plan = setup.plan
    wallet = Budget(setup.remaining)
    kept = [i for i in plan.fetches if wallet.take(i.service)]
    kept_keys = {i.key for i in kept}
    over = [i for i in plan.fetches if i.key not in kept_keys]
    not_planned = Counter(g.reason for g in plan.gaps)
    cik_planned = any(
        i.key in {s.key for n in plan.needs if n.id == CIK_MAP for s in n.sources}
        for i in plan.fetches
    )
    waiting = len(plan.deferred)
    if waiting and not cik_planned and not any(c.dataset == "cik_map" for c in plan.covered):
        not_planned["cik_map_unavailable"] += waiting
        waiting = 0
    return {
        "dry_run": True,
        "portfolios": [n for n, _ in books],
        "horizon_hours": horizon.total_seconds() / 3600,
        "would_refresh": len(kept),
        "by_service": dict(Counter(i.service for i in kept)),
        "over_budget": len(over),
        "over_budget_by_service": dict(Counter(i.service for i in over)),
        "already_fresh": sum(1 for c in plan.covered if c.by == "cache"),
        "not_planned": sum(not_planned.values()),
        "not_planned_by_reason": dict(not_planned),
        "filings_after_cik_map": waiting,
        "budget": setup.budget,
        "resuming_cycle_from": setup.cycle.resumed_from,
        "first": [_label(i.request) for i in kept[:PREVIEW_SHOWN]],
    }


def _load_cycle(path: Path, now: datetime, used_now: Mapping[str, int]) -> Cycle:
    """Resume an unfinished recent cycle (its start and quota counts), or begin one now."""
    try:
        data = json.loads(path.read_text("utf-8"))
        start = datetime.fromisoformat(data["started_at"])
        quota = {str(k): int(v) for k, v in dict(data.get("quota_at_start") or {}).items()}
        if start.tzinfo is not None and timedelta(0) <= now - start < RESUME_WINDOW:
            return Cycle(start, start.isoformat(), quota)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return Cycle(now, None, dict(used_now))


def refresh_report_path(root: Path, started: date, run_id: str) -> Path:
    return root / f"refresh_{started:%Y%m%d}_{run_id.split('-')[-1]}.json"
