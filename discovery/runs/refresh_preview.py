"""`refresh --dry-run`: what the nightly refresh would fetch now, creating and sending nothing.

The same choices as `refresh_async` (the plan `discover` would make, entries expiring within
the horizon, market context and open positions first, each service's nightly budget), built the
way `discover --dry-run` builds its plan: only cache namespaces already on disk are opened, the
quota ledger and the refresh cycle file are read read-only, no client exists. A fallback is
counted only as the primary it stands in for (whether it is needed shows only when the primary
answers).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cache.store import CacheRead, CacheRoot, ReadState, existing_namespaces
from discovery.local.inventory import build_inventory
from discovery.plan.planner import (
    Availability,
    Coverage,
    PlannedFetch,
    build_filings_plan,
    build_plan,
)
from discovery.runs.discover import availability_of, open_tickers
from discovery.runs.refresh import (
    CYCLE_FILE,
    RESUME_WINDOW,
    Budget,
    by_priority,
    default_budgets,
    item_rank,
    load_books,
    ticker_ranks,
)
from discovery.settings import Settings
from discovery.upstream import Upstream, service_configs
from services import sec_edgar
from services.config import resolve
from services.quota import read_usage
from services.registry import SPECS
from services.spec import ServiceRequest

FIRST_SHOWN = 12


def _cycle_start(path: Any, now: datetime) -> datetime | None:
    """Start of an unfinished recent refresh cycle (entries fetched since then count as done)."""
    try:
        start = datetime.fromisoformat(json.loads(path.read_text("utf-8"))["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if start.tzinfo is None or not timedelta(0) <= now - start < RESUME_WINDOW:
        return None
    return start


def _label(item: PlannedFetch) -> dict[str, Any]:
    req = item.request
    return {"service": req.service, "dataset": req.dataset, "subjects": list(req.subjects)}


def preview_refresh(
    settings: Settings,
    portfolios: Sequence[str],
    *,
    upstream: Upstream,
    sandbox_url: str | None,
    horizon: timedelta,
    budgets: Mapping[str, int | None] | None,
    now: datetime,
) -> dict[str, Any]:
    layout = settings.layout
    books = load_books(settings, portfolios)
    configs = service_configs(settings, upstream, sandbox_url)
    effective = {name: resolve(spec, configs.get(name)) for name, spec in SPECS.items()}
    budget: dict[str, int | None] = dict(
        default_budgets({n: e.daily_quota for n, e in effective.items()})
    )
    budget.update(budgets or {})
    used = read_usage(layout.state_dir, now.date())
    present = set(existing_namespaces(layout.cache_dir))
    cycle_start = _cycle_start(layout.state_dir / CYCLE_FILE, now)
    cache = CacheRoot(layout.cache_dir, size_limit_bytes=settings.cache_size_limit_mb << 20)

    def peek(request: ServiceRequest) -> CacheRead:
        if request.service not in present:
            return CacheRead(ReadState.MISS)
        key = request.cache_key(effective[request.service].upstream)
        return cache.namespace(request.service).peek(key)

    def coverage(request: ServiceRequest) -> Coverage:
        read = peek(request)
        env = read.envelope
        if read.state == ReadState.MISS or env is None:
            return "miss"
        recent = cycle_start is not None and env.fetched_at >= cycle_start
        if recent or env.expires_at > now + horizon:
            return "negative" if env.status == "negative" else "fresh"
        return "stale"

    def availability(service: str) -> Availability:
        eff = effective[service]
        left = None
        if eff.daily_quota is not None:
            left = max(0, eff.daily_quota - used.get((eff.upstream, service), 0))
        return availability_of(upstream == "offline", eff.unconfigured_reason, left)

    try:
        ranks = ticker_ranks([b for _, b in books])
        cik_read = peek(sec_edgar.company_tickers_request())
        env = cik_read.envelope
        fresh_map = cik_read.state == ReadState.FRESH and env is not None and env.status == "ok"
        cik_map = sec_edgar.parse_company_tickers(env.payload) if fresh_map and env else None
        queue: dict[str, PlannedFetch] = {}
        fresh: set[str] = set()
        not_planned: Counter[str] = Counter()
        pending: set[str] = set()
        for _name, book in books:
            inv = build_inventory(
                layout,
                book.ticker_symbols,
                today=now.date(),
                max_age_days=settings.max_local_age_days,
            )
            plan = build_plan(
                tickers=by_priority(book.ticker_symbols, ranks),
                open_tickers=open_tickers(book),
                first_entry=book.summary.first_entry_date,
                today=now.date(),
                locally_covered=inv.fresh_files(),
                cik_map=cik_map,
                coverage=coverage,
                availability=availability,
            )
            for item in plan.fetches:
                queue.setdefault(item.key, item)
            fresh |= {c.request.cache_key() for c in plan.covered if c.by == "cache" and c.request}
            not_planned.update(g.reason for g in plan.gaps)
            pending |= set(plan.filings_pending)
        if pending and cik_map is not None:
            second = build_filings_plan(
                by_priority(sorted(pending), ranks),
                cik_map,
                coverage=coverage,
                availability=availability,
            )
            for item in second.fetches:
                queue.setdefault(item.key, item)
            fresh |= {
                c.request.cache_key() for c in second.covered if c.by == "cache" and c.request
            }
            not_planned.update(g.reason for g in second.gaps)
            pending = set()
    finally:
        cache.close()
    cik_key = sec_edgar.company_tickers_request().cache_key()
    if pending and cik_key not in queue:  # no map in the cache and none coming: as refresh says
        not_planned["cik_map_unavailable"] += len(pending)
        pending = set()
    ordered = sorted(queue.values(), key=lambda i: (i.key != cik_key, item_rank(i, ranks)))
    wallet = Budget(budget)
    kept = [i for i in ordered if wallet.take(i.service)]
    kept_keys = {i.key for i in kept}
    over = [i for i in ordered if i.key not in kept_keys]
    return {
        "dry_run": True,
        "portfolios": [n for n, _ in books],
        "horizon_hours": horizon.total_seconds() / 3600,
        "would_refresh": len(kept),
        "by_service": dict(Counter(i.service for i in kept)),
        "over_budget": len(over),
        "over_budget_by_service": dict(Counter(i.service for i in over)),
        "already_fresh": len(fresh),
        "not_planned": sum(not_planned.values()),
        "not_planned_by_reason": dict(not_planned),
        "filings_after_cik_map": len(pending),
        "budget": budget,
        "resuming_cycle_from": cycle_start.isoformat() if cycle_start else None,
        "first": [_label(i) for i in kept[:FIRST_SHOWN]],
    }
