"""Nightly refresh (issue 7): keep the cache warm so the morning's `discover` is instant.

For the tickers of the chosen portfolios and the market context, re-fetch what `discover` would
plan and that is missing or expires within the horizon — market context and open positions
first, then the most recently traded tickers — never spending more than the per-service nightly
budget (default: half of each daily quota, so the day keeps the rest).

Each service drains its own lane of work at its own pace (a slow service never holds back a fast
one), and SEC filings start as soon as the CIK map is in hand.

Resumable: the cycle's start time and each service's quota count at that moment are kept in
`state/refresh_cycle.json` until the cycle finishes. A refresh restarted within
`RESUME_WINDOW` treats every entry fetched since that start as done, and charges the requests
counted since then against its budget, so a killed and restarted refresh does only the
remainder and never spends the budget twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_json
from cache.store import CacheRoot, ReadState
from discovery.ingest.portfolios import list_portfolios, resolve_portfolio
from discovery.ingest.trades import TradeBook, ingest
from discovery.local.inventory import build_inventory
from discovery.plan.planner import (
    Coverage,
    FetchPlan,
    PlannedFetch,
    build_filings_plan,
    build_plan,
)
from discovery.runs.discover import (
    availability_lookup,
    cached_cik_map,
    new_run_id,
    open_tickers,
)
from discovery.settings import Settings
from discovery.upstream import Target, service_configs
from services import sec_edgar
from services.errors import ServiceError
from services.hub import ServiceHub
from services.registry import SPECS
from services.spec import ServiceRequest

Clock = Callable[[], datetime]
CoverageLookup = Callable[[ServiceRequest], Coverage]
CYCLE_FILE = "refresh_cycle.json"
# A restart later than this begins a new cycle: nightly runs are ~24 h apart, so yesterday's
# unfinished cycle must never make today's refresh skip entries fetched yesterday.
RESUME_WINDOW = timedelta(hours=12)
MARKET_RANK: tuple[int, int] = (-1, 0)


def default_budgets(quotas: Mapping[str, int | None]) -> dict[str, int | None]:
    """Half of each daily quota (rounded down); services without a quota have no budget."""
    return {name: (q // 2 if q is not None else None) for name, q in quotas.items()}


@dataclass
class RefreshResult:
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
    subject = item.request.subjects[0] if item.request.subjects else None
    if subject is None or subject not in ranks:
        return MARKET_RANK
    return ranks[subject]


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


def allot(
    items: Sequence[PlannedFetch], budget: Budget, result: RefreshResult
) -> list[PlannedFetch]:
    """Keep, in order, the items the budget pays for; list the rest as skipped."""
    kept: list[PlannedFetch] = []
    for item in items:
        if budget.take(item.service):
            kept.append(item)
        else:
            result.skipped_budget.append(_label(item.request))
    return kept


def _label(req: ServiceRequest) -> dict[str, Any]:
    return {"service": req.service, "dataset": req.dataset, "subjects": list(req.subjects)}


def load_books(settings: Settings, portfolios: Sequence[str]) -> list[tuple[str, TradeBook]]:
    layout = settings.layout
    names = list(portfolios) or list_portfolios(layout)
    return [
        (n, ingest(resolve_portfolio(layout, n), chunk_rows=settings.csv_chunk_rows)) for n in names
    ]


@dataclass(frozen=True)
class Cycle:
    start: datetime
    resumed_from: str | None
    quota_at_start: dict[str, int]


async def refresh_async(
    settings: Settings,
    portfolios: Sequence[str],
    *,
    target: Target,
    horizon: timedelta,
    budgets: Mapping[str, int | None] | None = None,
    benchmark: str = "SPY",
    clock: Clock = lambda: datetime.now(UTC),
) -> RefreshResult:
    started = clock()
    t0 = time.perf_counter()
    layout = settings.layout
    books = load_books(settings, portfolios)
    cycle_path = layout.state_dir / CYCLE_FILE
    configs = service_configs(settings, target)
    quotas = {
        name: (cfg.daily_quota if cfg.daily_quota is not None else SPECS[name].daily_quota)
        for name, cfg in configs.items()
    }
    budget = dict(default_budgets(quotas))
    budget.update(budgets or {})
    result = RefreshResult(new_run_id(started), [n for n, _ in books], budget=budget)
    cache = CacheRoot(
        layout.cache_dir, size_limit_bytes=settings.cache_size_limit_mb << 20, clock=clock
    )
    offline = target.offline
    hub = ServiceHub(
        configs,
        cache,
        layout.state_dir,
        max_concurrency=settings.max_concurrency,
        offline=offline,
        clock=clock,
    )
    try:
        used_now = {name: hub.status(name).quota_used_today for name in configs}
        cycle = _load_cycle(cycle_path, started, used_now)
        result.resumed_from = cycle.resumed_from
        if cycle.resumed_from is not None:
            result.spent_before_resume = {
                n: max(0, used_now[n] - cycle.quota_at_start.get(n, used_now[n])) for n in used_now
            }
        remaining = {
            n: (None if b is None else max(0, b - result.spent_before_resume.get(n, 0)))
            for n, b in budget.items()
        }
        if not offline:
            atomic_write_json(
                cycle_path,
                {"started_at": cycle.start.isoformat(), "quota_at_start": cycle.quota_at_start},
            )
        coverage = horizon_coverage(hub, started, horizon, cycle.start)
        avail = availability_lookup(hub)
        today = started.date()
        ranks = ticker_ranks([b for _, b in books])
        cik_map = cached_cik_map(hub)
        plans: list[FetchPlan] = []
        for _name, book in books:
            inv = build_inventory(
                layout, book.ticker_symbols, today=today, max_age_days=settings.max_local_age_days
            )
            plans.append(
                build_plan(
                    tickers=by_priority(book.ticker_symbols, ranks),
                    open_tickers=open_tickers(book),
                    first_entry=book.summary.first_entry_date,
                    today=today,
                    locally_covered=inv.fresh_files(),
                    cik_map=cik_map,
                    coverage=coverage,
                    availability=avail,
                    benchmark=benchmark,
                )
            )
        _tally_plans(plans, result)
        queue = _merged_queue(plans, ranks)
        pending = by_priority(sorted({t for p in plans for t in p.filings_pending}), ranks)
        runner = _Runner(hub, result, coverage, Budget(remaining))
        async with hub:
            await runner.execute(allot(queue, runner.budget, result), pending, ranks, avail)
            result.usage = hub.usage()
        result.budget_used = {
            n: int(u["network_requests"]) for n, u in result.usage.items() if u["network_requests"]
        }
        if not result.failed and not offline:
            cycle_path.unlink(missing_ok=True)
    finally:
        cache.close()
    result.duration_ms = (time.perf_counter() - t0) * 1000.0
    return result


def _tally_plans(plans: Sequence[FetchPlan], result: RefreshResult) -> None:
    """Count cache-covered entries once each; list what could not be planned and why."""
    fresh: set[str] = set()
    gaps: set[tuple[str | None, str | None, str, str]] = set()
    for plan in plans:
        for c in plan.covered:
            if c.by == "cache":
                fresh.add(c.request.cache_key() if c.request else f"{c.subject}/{c.dataset}")
        for g in plan.gaps:
            gaps.add((g.ticker, g.service, g.dataset, g.reason))
    result.skipped_fresh += len(fresh)
    result.not_planned.extend(
        {"ticker": t, "service": s, "dataset": d, "reason": r}
        for t, s, d, r in sorted(gaps, key=str)
    )


def _merged_queue(
    plans: Sequence[FetchPlan], ranks: Mapping[str, tuple[int, int]]
) -> list[PlannedFetch]:
    """Every plan's fetches once, market context first (the CIK map leading: filings wait on
    it), then tickers by priority."""
    seen: set[str] = set()
    queue: list[PlannedFetch] = []
    for plan in plans:
        for item in plan.fetches:
            if item.key not in seen:
                seen.add(item.key)
                queue.append(item)
    cik_key = sec_edgar.company_tickers_request().cache_key()
    return sorted(queue, key=lambda i: (i.key != cik_key, item_rank(i, ranks)))


class _Runner:
    """Drains one lane per service; feeds SEC filings once the CIK map is fetched."""

    def __init__(
        self, hub: ServiceHub, result: RefreshResult, coverage: CoverageLookup, budget: Budget
    ) -> None:
        self.hub = hub
        self.result = result
        self.coverage = coverage
        self.budget = budget
        self.cik_key = sec_edgar.company_tickers_request().cache_key()
        self.cik_done = asyncio.Event()

    async def execute(
        self,
        queue: Sequence[PlannedFetch],
        pending: Sequence[str],
        ranks: Mapping[str, tuple[int, int]],
        avail: Callable[[str], Any],
    ) -> None:
        lanes: dict[str, asyncio.Queue[PlannedFetch | None]] = {s: asyncio.Queue() for s in SPECS}
        for item in queue:
            self.hub.add_planned(item.service, 1)
            lanes[item.service].put_nowait(item)
        widths = {s: max(1, self.hub.status(s).max_connections) + 1 for s in SPECS}
        workers = [
            asyncio.create_task(self._worker(lanes[s])) for s in SPECS for _ in range(widths[s])
        ]
        feeder = "sec_edgar"
        for s in SPECS:
            if s != feeder:
                for _ in range(widths[s]):
                    lanes[s].put_nowait(None)
        try:
            if pending:
                if any(i.key == self.cik_key for i in queue):
                    await self.cik_done.wait()
                cik_map = cached_cik_map(self.hub)
                if cik_map is None:
                    self.result.not_planned.extend(
                        {
                            "ticker": t,
                            "service": feeder,
                            "dataset": "filings",
                            "reason": "cik_map_unavailable",
                        }
                        for t in pending
                    )
                else:
                    phase2 = build_filings_plan(
                        pending, cik_map, coverage=self.coverage, availability=avail
                    )
                    _tally_plans([phase2], self.result)
                    for item in allot(phase2.fetches, self.budget, self.result):
                        self.hub.add_planned(item.service, 1)
                        lanes[item.service].put_nowait(item)
        finally:
            for _ in range(widths[feeder]):
                lanes[feeder].put_nowait(None)
            await asyncio.gather(*workers)

    async def _worker(self, lane: asyncio.Queue[PlannedFetch | None]) -> None:
        while (item := await lane.get()) is not None:
            try:
                await self._one(item)
            finally:
                if item.key == self.cik_key:
                    self.cik_done.set()

    async def _one(self, item: PlannedFetch) -> None:
        """Renew the entry; when the primary says "unknown" or fails, renew its fallback too
        (exactly what discover would then read), if the fallback is due and the budget allows.
        A failure is reported only when nothing stood in for it."""
        failure: dict[str, Any] | None = None
        for req in (item.request, item.fallback):
            if req is None:
                break
            if req is item.fallback:
                if self.coverage(req) in ("fresh", "negative"):
                    self.result.skipped_fresh += 1
                    failure = None
                    break
                if not self.budget.take(req.service):
                    self.result.skipped_budget.append(_label(req))
                    break
                self.hub.add_planned(req.service, 1)
            try:
                res = await self.hub.fetch_fresh(req)
            except ServiceError as exc:
                failure = failure or {**_label(req), "reason": exc.reason}
                continue
            self.result.refreshed.append({**_label(req), "status": res.status})
            failure = None
            if res.status == "ok":
                break
        if failure is not None:
            self.result.failed.append(failure)


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
