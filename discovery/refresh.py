"""Nightly refresh (issue 7): keep the cache warm so the morning's `discover` is instant.

For the tickers of the chosen portfolios and the market context, re-fetch what `discover` would
plan and that is missing or expires within the horizon — market context and open positions
first, then the most recently traded tickers — never spending more than the per-service nightly
budget (default: half of each daily quota, so the day keeps the rest).

Resumable: the cycle's start time is kept in `state/refresh_cycle.json` until the cycle
finishes; a restarted refresh treats every entry fetched since that start as done.
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
from discovery.inventory import build_inventory
from discovery.pipeline import (
    availability_lookup,
    cached_cik_map,
    new_run_id,
    open_tickers,
)
from discovery.plan import (
    Availability,
    Coverage,
    FetchPlan,
    PlannedFetch,
    build_filings_plan,
    build_plan,
)
from discovery.portfolios import list_portfolios, resolve_portfolio
from discovery.settings import Settings
from discovery.trades import TradeBook, ingest
from discovery.upstream import Upstream, service_configs
from services.errors import ServiceError
from services.hub import ServiceHub
from services.registry import SPECS
from services.spec import ServiceRequest

Clock = Callable[[], datetime]
CYCLE_FILE = "refresh_cycle.json"


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
    failed: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, int | None] = field(default_factory=dict)
    budget_used: dict[str, int] = field(default_factory=dict)
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
            "failed": len(self.failed),
            "budget": self.budget,
            "budget_used": self.budget_used,
            "duration_ms": round(self.duration_ms, 1),
            "resumed_from": self.resumed_from,
            "details": {
                "refreshed": self.refreshed,
                "skipped_budget": self.skipped_budget,
                "failed": self.failed,
            },
            "service_usage": self.usage,
        }


def horizon_coverage(
    hub: ServiceHub, now: datetime, horizon: timedelta, cycle_start: datetime
) -> Callable[[ServiceRequest], Coverage]:
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


def _priority(book: TradeBook) -> list[str]:
    """Open positions first, then tickers by their most recent trade (newest first)."""
    open_set = set(open_tickers(book))

    def recent(t: str) -> int:
        stats = book.tickers[t]
        days = [d.toordinal() for d in (stats.first_entry, stats.last_exit) if d is not None]
        return max(days, default=0)

    return sorted(book.ticker_symbols, key=lambda t: (t not in open_set, -recent(t)))


class BudgetedAvailability:
    """Availability that also refuses a service once its nightly budget is planned out."""

    def __init__(self, base: Callable[[str], Availability], budgets: Mapping[str, int | None]):
        self.base = base
        self.budgets = budgets
        self.planned: dict[str, int] = {}

    def __call__(self, service: str) -> Availability:
        avail = self.base(service)
        if not avail.usable:
            return avail
        budget = self.budgets.get(service)
        if budget is not None and self.planned.get(service, 0) >= budget:
            return Availability(False, "budget_exhausted")
        return avail


def load_books(settings: Settings, portfolios: Sequence[str]) -> list[tuple[str, TradeBook]]:
    layout = settings.layout
    names = list(portfolios) or list_portfolios(layout)
    return [
        (n, ingest(resolve_portfolio(layout, n), chunk_rows=settings.csv_chunk_rows)) for n in names
    ]


async def refresh_async(
    settings: Settings,
    portfolios: Sequence[str],
    *,
    upstream: Upstream,
    sandbox_url: str | None,
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
    cycle_start, resumed = _cycle_start(cycle_path, started)
    configs = service_configs(settings, upstream, sandbox_url)
    quotas = {
        name: (cfg.daily_quota if cfg.daily_quota is not None else SPECS[name].daily_quota)
        for name, cfg in configs.items()
    }
    budget = dict(default_budgets(quotas))
    budget.update(budgets or {})
    result = RefreshResult(new_run_id(started), [n for n, _ in books], budget=budget)
    result.resumed_from = resumed
    cache = CacheRoot(layout.cache_dir, size_limit_bytes=settings.cache_size_limit_mb << 20)
    hub = ServiceHub(
        configs, cache, layout.state_dir, max_concurrency=settings.max_concurrency, clock=clock
    )
    try:
        if upstream != "offline":
            atomic_write_json(cycle_path, {"started_at": cycle_start.isoformat()})
        coverage = horizon_coverage(hub, started, horizon, cycle_start)
        avail = BudgetedAvailability(availability_lookup(hub), budget)
        today = started.date()
        plans: list[FetchPlan] = []
        for _name, book in books:
            inv = build_inventory(
                layout, book.ticker_symbols, today=today, max_age_days=settings.max_local_age_days
            )
            plan = build_plan(
                tickers=_priority(book),
                open_tickers=open_tickers(book),
                first_entry=book.summary.first_entry_date,
                today=today,
                locally_covered=inv.fresh_files(),
                cik_map=cached_cik_map(hub),
                coverage=coverage,
                availability=avail,
                benchmark=benchmark,
            )
            plans.append(plan)
            for item in plan.fetches:
                avail.planned[item.service] = avail.planned.get(item.service, 0) + 1
        async with hub:
            await _run_plans(hub, plans, result, coverage, avail)
            result.usage = hub.usage()
        for plan in plans:
            result.skipped_fresh += sum(1 for c in plan.covered if c.by == "cache")
            result.skipped_budget.extend(
                {"ticker": g.ticker, "service": g.service, "dataset": g.dataset}
                for g in plan.gaps
                if g.reason == "budget_exhausted"
            )
        if not result.failed and upstream != "offline":
            cycle_path.unlink(missing_ok=True)
    finally:
        cache.close()
    result.duration_ms = (time.perf_counter() - t0) * 1000.0
    return result


async def _run_plans(
    hub: ServiceHub,
    plans: list[FetchPlan],
    result: RefreshResult,
    coverage: Callable[[ServiceRequest], Coverage],
    avail: BudgetedAvailability,
) -> None:
    seen: set[str] = set()
    queue: list[PlannedFetch] = []
    for plan in plans:
        for item in plan.fetches:
            if item.key not in seen:
                seen.add(item.key)
                queue.append(item)
    await _fetch_all(hub, queue, result)
    pending = sorted({t for plan in plans for t in plan.filings_pending})
    if pending:
        cik_map = cached_cik_map(hub)
        if cik_map is not None:
            phase2 = build_filings_plan(pending, cik_map, coverage=coverage, availability=avail)
            await _fetch_all(hub, [i for i in phase2.fetches if i.key not in seen], result)


async def _fetch_all(hub: ServiceHub, items: list[PlannedFetch], result: RefreshResult) -> None:
    async def one(item: PlannedFetch) -> None:
        req = item.request
        label = {"service": req.service, "dataset": req.dataset, "subjects": list(req.subjects)}
        try:
            res = await hub.fetch_fresh(req)
        except ServiceError as exc:
            result.failed.append({**label, "reason": exc.reason})
            return
        result.budget_used[req.service] = result.budget_used.get(req.service, 0) + 1
        result.refreshed.append({**label, "status": res.status})

    sem = asyncio.Semaphore(max(1, hub.max_concurrency * 2))

    async def guarded(item: PlannedFetch) -> None:
        async with sem:
            await one(item)

    await asyncio.gather(*(guarded(i) for i in items))


def _cycle_start(path: Path, now: datetime) -> tuple[datetime, str | None]:
    """Resume an unfinished cycle (its start), or begin a new one now."""
    try:
        data = json.loads(path.read_text("utf-8"))
        start = datetime.fromisoformat(data["started_at"])
        if start.tzinfo is not None and now - start < timedelta(hours=24):
            return start, start.isoformat()
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return now, None


def refresh_report_path(root: Path, started: date, run_id: str) -> Path:
    return root / f"refresh_{started:%Y%m%d}_{run_id.split('-')[-1]}.json"
