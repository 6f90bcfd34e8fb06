"""Discover, end to end: the imperative shell around the pure stages.

0 inventory → 1 ingest → 2 plan → 3 fetch → 4 assemble. Only stage 3 does network I/O (the
fetch engine, through the hub, which reads and writes the cache); the report and the ledger
row are written through `discovery.runs.record` at the end.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from cache.backend import CacheBackend
from cache.envelope import utcnow
from discovery import __version__
from discovery.errors import InputError
from discovery.fetch.access import availability_lookup, coverage_lookup, open_hub
from discovery.fetch.ceilings import MemoryCeiling, peak_rss_mb
from discovery.fetch.engine import FetchEngine, PhaseTwo, ProgressHook
from discovery.ingest.portfolios import resolve_portfolio
from discovery.ingest.trades import TradeBook, ingest
from discovery.local.inventory import Inventory, build_inventory
from discovery.plan.needs import TIMEFRAMES, Need, TickerFacts, report_needs
from discovery.plan.planner import FetchPlan, plan_needs
from discovery.report.assemble import AssembleInputs, assemble_report
from discovery.report.gaps import Gap
from discovery.report.schema import validate_report
from discovery.report.summary import render_summary
from discovery.runs.record import check_writable, record_run
from discovery.settings import Settings
from discovery.upstream import Target
from services.hub import ServiceHub
from services.spec import FetchResult

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DiscoverOptions:
    portfolio: str
    target: Target = field(default_factory=Target)
    dry_run: bool = False
    benchmark: str = "SPY"
    timeframe: str = "all"
    max_concurrency: int | None = None
    memory_limit_mb: int | None = None
    worker: str | None = None  # the Dask worker running it (the report's metadata says so)


@dataclass
class Outcome:
    exit_code: int
    report: dict[str, Any] | None = None
    report_path: Path | None = None
    summary: str = ""
    plan: FetchPlan | None = None
    gaps: list[Gap] = field(default_factory=list)


class StageTimer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round((time.perf_counter() - start) * 1000.0, 1)


def load_local(
    settings: Settings, portfolio: str, today: date
) -> tuple[Path, TradeBook, Inventory, StageTimer]:
    """Stages 1 and 0: the trade book and what is known locally (no network, nothing written)."""
    timer = StageTimer()
    layout = settings.layout
    with timer.stage("ingest"):
        csv_path = resolve_portfolio(layout, portfolio)
        book = ingest(csv_path, chunk_rows=settings.csv_chunk_rows, as_of=today)
    with timer.stage("inventory"):
        inventory = build_inventory(
            layout, book.ticker_symbols, today=today, max_age_days=settings.max_local_age_days
        )
    return csv_path, book, inventory, timer


def open_tickers(book: TradeBook) -> list[str]:
    """Tickers with at least one open position."""
    return [t for t, stats in book.tickers.items() if stats.active_trades > 0]


def ticker_facts(book: TradeBook, order: Sequence[str] | None = None) -> list[TickerFacts]:
    """What each ticker's needs depend on, in `order` (default: the book's)."""
    facts = []
    for t in order if order is not None else book.ticker_symbols:
        stats = book.tickers[t]
        facts.append(TickerFacts(t, stats.active_trades > 0, stats.first_entry, stats.last_exit))
    return facts


def book_needs(
    book: TradeBook,
    inventory: Inventory,
    today: date,
    *,
    benchmark: str = "SPY",
    timeframe: str = "all",
    order: Sequence[str] | None = None,
) -> tuple[Need, ...]:
    return report_needs(
        ticker_facts(book, order),
        first_entry=book.summary.first_entry_date,
        today=today,
        locally_covered=inventory.fresh_files(),
        benchmark=benchmark,
        timeframe=timeframe,
    )


def planner_for(hub: ServiceHub) -> Callable[[Sequence[Need]], FetchPlan]:
    """Plan needs against what this hub's cache holds and its services allow."""
    coverage, availability = coverage_lookup(hub), availability_lookup(hub)
    return lambda needs: plan_needs(needs, coverage=coverage, availability=availability)


def payload_from_cache(hub: ServiceHub, result: FetchResult) -> Any:
    """The payload of a result fetched (or read) this run, read back from the cache."""
    env = hub.peek(result.request).envelope
    return env.payload if env is not None else None


def dry_run_plan(
    settings: Settings, options: DiscoverOptions, book: TradeBook, inventory: Inventory, today: date
) -> FetchPlan:
    """The plan as `discover` would build it, from a read-only hub: no file or directory is
    created, nothing is sent."""
    needs = book_needs(
        book, inventory, today, benchmark=options.benchmark, timeframe=options.timeframe
    )
    with open_hub(settings, options.target, read_only=True) as hub:
        return planner_for(hub)(needs)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def relative_to_root(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


async def discover_async(
    settings: Settings,
    options: DiscoverOptions,
    *,
    clock: Clock = utcnow,
    progress: ProgressHook | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Outcome:
    """One discover run. `transport` and `sleep` stand in for the network and the backoff
    waits (tests); the product leaves them unset."""
    if options.timeframe not in TIMEFRAMES:
        raise InputError(
            f"--timeframe {options.timeframe!r} is not valid; use one of {', '.join(TIMEFRAMES)}."
        )
    started = clock()
    today = started.date()
    run_id = new_run_id(started)
    csv_path, book, inventory, timer = load_local(settings, options.portfolio, today)
    if options.dry_run:
        with timer.stage("plan"):
            plan = dry_run_plan(settings, options, book, inventory, today)
        return Outcome(0, plan=plan, summary=render_plan(plan))
    layout = settings.layout
    target = options.target
    report_path = layout.report_path(options.portfolio, today)
    check_writable(report_path)  # a root that cannot take the report: refused before fetching
    with open_hub(
        settings,
        target,
        clock=clock,
        max_concurrency=options.max_concurrency,
        transport=transport,
        sleep=sleep,
    ) as hub:
        load = lambda res: payload_from_cache(hub, res)  # noqa: E731
        async with hub:  # entered first: planning sees the shared holds and counts
            with timer.stage("plan"):
                planner = planner_for(hub)
                plan = planner(
                    book_needs(
                        book,
                        inventory,
                        today,
                        benchmark=options.benchmark,
                        timeframe=options.timeframe,
                    )
                )
            ceiling = MemoryCeiling(options.memory_limit_mb or settings.memory_limit_mb)
            engine = FetchEngine(hub, ceiling=ceiling, progress=progress)
            with timer.stage("fetch"):
                fetched = await engine.run(plan, PhaseTwo.of(plan, planner, load))
            usage = hub.usage()
            sharing = hub.sharing()
        with timer.stage("assemble"):
            report, gaps = assemble_report(
                AssembleInputs(
                    portfolio=options.portfolio,
                    run_id=run_id,
                    started_at=started,
                    tool_version=__version__,
                    upstream=target.label,
                    data_source=relative_to_root(csv_path, layout.root),
                    book=book,
                    inventory=inventory,
                    needs=fetched.needs(plan),
                    outcomes=fetched.outcomes,
                    load_payload=load,
                    usage=usage,
                    cache_inventory=cache_inventory(hub.cache),
                    today=today,
                    timeframe=options.timeframe,
                    report_path=relative_to_root(report_path, layout.root),
                    stopped_early=fetched.stopped_early,
                    run_gaps=cache_fault_gaps(hub),
                )
            )
        timings = dict(timer.timings)
        meta = report["discovery_metadata"]
        meta["stage_timings_ms"] = timings
        meta["peak_rss_mb"] = round(max(peak_rss_mb(), ceiling.peak_mb), 1)
        meta["worker"] = options.worker
        meta["shared"] = sharing
        validate_report(report)
        code = 3 if any(g.is_fault for g in gaps) or fetched.stopped_early else 0
        record_run(
            layout.state_dir,
            report_path,
            report,
            run_id=run_id,
            kind="discover",
            portfolio=options.portfolio,
            started_at=started,
            duration_ms=sum(timings.values()),
            usage=usage,
            gaps=len(gaps),
            peak_rss_mb=meta["peak_rss_mb"],
            exit_code=code,
            upstream=target.label,
        )
        for name in hub.cache.existing_namespaces():
            hub.cache.namespace(name).record_last_run(run_id)
    return Outcome(
        code,
        report=report,
        report_path=report_path,
        summary=render_summary(report, str(report_path)),
        plan=plan,
        gaps=gaps,
    )


def cache_fault_gaps(hub: ServiceHub) -> list[Gap]:
    """One `disk_full` gap per service whose answers the cache refused to store this run (they
    are in the report all the same: the hub kept them in memory)."""
    return [
        Gap(None, service, "cache", fault.reason, f"answers not cached: {fault.detail}", service)
        for service, fault in sorted(hub.cache_faults().items())
    ]


def cache_inventory(cache: CacheBackend) -> dict[str, Any]:
    """Per namespace: entries present (a cheap count; `cache report` has the full figures),
    this run's counters, and why it was rebuilt when it was (its entries were fetched again)."""
    return {name: stats.to_json() for name, stats in cache.stats().items()}


def render_plan(plan: FetchPlan) -> str:
    """The dry-run listing: one line per planned request (service, dataset, what for, reason,
    cache key), then the totals."""
    lines = [f"{'service':<14} {'dataset':<13} {'subject':<16} {'reason':<58} key"]
    for item in plan.fetches:
        lines.append(
            f"{item.service:<14} {item.request.dataset:<13} {item.label[:16]:<16} "
            f"{item.reason:<58} {item.key}"
        )
    totals = plan.planned_by_service()
    lines.append("")
    lines.append(
        f"planned {len(plan.fetches)} request(s): "
        + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none")
    )
    lines.append(f"covered locally or by cache: {len(plan.covered)}; gaps: {len(plan.gaps)}")
    if plan.filings_pending:
        lines.append(
            f"+ up to {len(plan.filings_pending)} SEC filings requests once the CIK map is fetched"
        )
    return "\n".join(lines)
