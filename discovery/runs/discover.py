"""The staged discovery pipeline: the imperative shell around the pure stages.

0 inventory → 1 ingest → 2 plan → 3 fetch → 4 assemble. Only stage 3 does network I/O (through
the ServiceHub, which reads and writes the cache); the report is written atomically at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_json
from cache.envelope import utcnow
from cache.store import CacheRead, CacheRoot, ReadState, existing_namespaces
from discovery import __version__
from discovery.errors import InputError
from discovery.fetch.ceilings import MemoryCeiling, peak_rss_mb
from discovery.ingest.portfolios import resolve_portfolio
from discovery.ingest.trades import TradeBook, ingest
from discovery.local.inventory import Inventory, build_inventory
from discovery.plan.planner import (
    TIMEFRAMES,
    Availability,
    Coverage,
    FetchPlan,
    PlannedFetch,
    build_filings_plan,
    build_plan,
)
from discovery.report.assemble import AssembleInputs, assemble_report
from discovery.report.gaps import Gap
from discovery.report.schema import validate_report
from discovery.report.summary import render_summary
from discovery.runs.ledger import Ledger, LedgerError, RunRecord
from discovery.settings import Settings
from discovery.upstream import Upstream, service_configs
from services import sec_edgar
from services.config import ServiceConfig, resolve
from services.errors import ServiceError
from services.hub import ServiceHub
from services.quota import read_usage
from services.registry import SPECS
from services.spec import FetchResult, ServiceRequest

Clock = Callable[[], datetime]
log = logging.getLogger("tradescout")
ProgressHook = Callable[[str, str], None]  # (service, event) event: planned|done|hit|error


@dataclass(frozen=True)
class DiscoverOptions:
    portfolio: str
    upstream: Upstream = "live"
    sandbox_url: str | None = None
    dry_run: bool = False
    benchmark: str = "SPY"
    timeframe: str = "all"
    max_concurrency: int | None = None
    memory_limit_mb: int | None = None


@dataclass
class Outcome:
    exit_code: int
    report: dict[str, Any] | None = None
    report_path: Path | None = None
    summary: str = ""
    plan: FetchPlan | None = None
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class FetchOutcome:
    results: dict[str, FetchResult] = field(default_factory=dict)  # by live cache key
    gaps: list[Gap] = field(default_factory=list)
    stopped_early: str | None = None


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


def _coverage_of(read: CacheRead) -> Coverage:
    if read.state == ReadState.FRESH:
        negative = read.envelope is not None and read.envelope.status == "negative"
        return "negative" if negative else "fresh"
    return "stale" if read.state == ReadState.STALE else "miss"


def coverage_lookup(hub: ServiceHub) -> Callable[[ServiceRequest], Coverage]:
    def lookup(request: ServiceRequest) -> Coverage:
        return _coverage_of(hub.peek(request))

    return lookup


def availability_of(
    offline: bool,
    unconfigured_reason: str | None,
    quota_left: int | None,
    exhausted_for_run: bool = False,
    breaker_state: str = "closed",
    held: str | None = None,
) -> Availability:
    """Whether a service may be called this run (pure; the first reason that applies wins).
    `held`: a refusal that keeps the service away now (blocked, rate_blocked, bad_credential…)."""
    if offline:
        return Availability(False, "offline")
    if unconfigured_reason is not None:
        return Availability(False, "not_configured")
    if held is not None and held != "quota_exhausted":
        return Availability(False, held)
    if exhausted_for_run or (quota_left is not None and quota_left <= 0):
        return Availability(False, "quota_exhausted")
    if breaker_state == "open":
        return Availability(False, "circuit_open")
    return Availability(True, quota_left=quota_left)


def availability_lookup(hub: ServiceHub) -> Callable[[str], Availability]:
    def lookup(service: str) -> Availability:
        status = hub.status(service)
        return availability_of(
            hub.offline,
            status.reason,
            status.quota_left,
            status.quota_exhausted_for_run,
            status.breaker_state,
            status.held,
        )

    return lookup


def _cik_map_from(read: CacheRead) -> Mapping[str, str] | None:
    if read.state == ReadState.FRESH and read.envelope is not None and read.envelope.status == "ok":
        return sec_edgar.parse_company_tickers(read.envelope.payload)
    return None


def cached_cik_map(hub: ServiceHub) -> Mapping[str, str] | None:
    return _cik_map_from(hub.peek(sec_edgar.company_tickers_request()))


def build_plan_with(
    book: TradeBook,
    inventory: Inventory,
    options: DiscoverOptions,
    today: date,
    *,
    coverage: Callable[[ServiceRequest], Coverage],
    availability: Callable[[str], Availability],
    cik_map: Mapping[str, str] | None,
) -> FetchPlan:
    return build_plan(
        tickers=book.ticker_symbols,
        open_tickers=open_tickers(book),
        first_entry=book.summary.first_entry_date,
        today=today,
        locally_covered=inventory.fresh_files(),
        cik_map=cik_map,
        coverage=coverage,
        availability=availability,
        benchmark=options.benchmark,
        timeframe=options.timeframe,
    )


def plan_for(
    hub: ServiceHub, book: TradeBook, inventory: Inventory, options: DiscoverOptions, today: date
) -> FetchPlan:
    return build_plan_with(
        book,
        inventory,
        options,
        today,
        coverage=coverage_lookup(hub),
        availability=availability_lookup(hub),
        cik_map=cached_cik_map(hub),
    )


def dry_run_plan(
    settings: Settings,
    configs: Mapping[str, ServiceConfig],
    book: TradeBook,
    inventory: Inventory,
    options: DiscoverOptions,
    today: date,
) -> FetchPlan:
    """The plan as `discover` would build it, creating no file or directory: only namespaces
    already on disk are opened, the quota ledger is read read-only, no client is built."""
    layout = settings.layout
    effective = {name: resolve(spec, configs.get(name)) for name, spec in SPECS.items()}
    present = set(existing_namespaces(layout.cache_dir))
    used = read_usage(layout.state_dir, today)
    cache = CacheRoot(layout.cache_dir, size_limit_bytes=settings.cache_size_limit_mb << 20)

    def peek(request: ServiceRequest) -> CacheRead:
        if request.service not in present:
            return CacheRead(ReadState.MISS)
        key = request.cache_key(effective[request.service].upstream)
        return cache.namespace(request.service).peek(key)

    def availability(service: str) -> Availability:
        eff = effective[service]
        left = None
        if eff.daily_quota is not None:
            left = max(0, eff.daily_quota - used.get((eff.upstream, service), 0))
        return availability_of(options.upstream == "offline", eff.unconfigured_reason, left)

    try:
        return build_plan_with(
            book,
            inventory,
            options,
            today,
            coverage=lambda r: _coverage_of(peek(r)),
            availability=availability,
            cik_map=_cik_map_from(peek(sec_edgar.company_tickers_request())),
        )
    finally:
        cache.close()


async def _fetch_one(
    hub: ServiceHub, item: PlannedFetch, out: FetchOutcome, progress: ProgressHook | None
) -> None:
    """Fetch a planned request; on a not-found or an unusable primary, try its fallback.
    Progress counts the item once, against its primary service, by its final outcome."""
    candidates = [item.request] + ([item.fallback] if item.fallback is not None else [])
    last_error: ServiceError | None = None
    outcome = "error"
    for request in candidates:
        try:
            result = await hub.fetch(request)
        except ServiceError as exc:
            last_error = exc
            continue
        # Keep the provenance, not the payload: assembly reads payloads back from the cache one
        # at a time, so a 500-ticker run never holds every price history in memory at once.
        out.results[request.cache_key()] = dataclasses.replace(result, payload=None)
        outcome = "hit" if result.origin == "cache" else "done"
        if result.status == "ok":
            break
    if progress:
        progress(item.request.service, outcome)
    if last_error is not None and not any(c.cache_key() in out.results for c in candidates):
        out.gaps.append(
            Gap(
                item.ticker,
                last_error.service,
                item.request.dataset,
                last_error.reason,
                last_error.detail,
                item.label,
            )
        )


def _memory_gap(item: PlannedFetch) -> Gap:
    return Gap(
        item.ticker,
        item.service,
        item.request.dataset,
        "memory_ceiling",
        "memory limit reached: not scheduled",
        item.label,
    )


class _Scheduler:
    """One lane per service: every planned request becomes a task at once, but only as many as
    the service has connections may be inside the hub at a time, so a slow service (Alpha
    Vantage: one call per 13 s) never holds back the others, and the memory ceiling is checked
    right before each request is handed to the hub: past the hard limit nothing new is sent
    (what was fetched is already in the cache) and the rest become gaps."""

    def __init__(
        self,
        hub: ServiceHub,
        out: FetchOutcome,
        ceiling: MemoryCeiling | None,
        progress: ProgressHook | None,
    ) -> None:
        self.hub = hub
        self.out = out
        self.ceiling = ceiling
        self.progress = progress
        self.tasks: set[asyncio.Task[None]] = set()
        self.lanes: dict[str, asyncio.Semaphore] = {}

    def _lane(self, service: str) -> asyncio.Semaphore:
        lane = self.lanes.get(service)
        if lane is None:
            lane = asyncio.Semaphore(max(1, self.hub.status(service).max_connections))
            self.lanes[service] = lane
        return lane

    def spawn(self, items: Iterable[PlannedFetch], then: Callable[[], None] | None = None) -> None:
        for item in items:
            if self.progress:
                self.progress(item.service, "planned")
            self.tasks.add(asyncio.create_task(self._one(item, then)))

    async def _one(self, item: PlannedFetch, then: Callable[[], None] | None) -> None:
        async with self._lane(item.service):
            if self.ceiling is not None and self.ceiling.hard_reached:
                self.out.stopped_early = "memory_ceiling"
                self.out.gaps.append(_memory_gap(item))
                return
            await _fetch_one(self.hub, item, self.out, self.progress)
        if then is not None:
            then()

    async def drain(self) -> None:
        # Tasks spawned while waiting (the filings the CIK map unlocks) join `self.tasks`; so the
        # set is updated in place, never replaced by `asyncio.wait`'s snapshot of it.
        while self.tasks:
            done, _ = await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_COMPLETED)
            self.tasks -= done
            for task in done:
                task.result()


def _covered_fetches(plan: FetchPlan) -> list[PlannedFetch]:
    """Requests the cache covers: read back through the hub (a cache hit, no network)."""
    return [
        PlannedFetch(c.request, "covered by cache") for c in plan.covered if c.request is not None
    ]


async def fetch_stage(
    hub: ServiceHub,
    plan: FetchPlan,
    *,
    ceiling: MemoryCeiling | None,
    progress: ProgressHook | None,
) -> tuple[FetchOutcome, FetchPlan | None]:
    """Stage 3. The SEC CIK map goes first; the filings it unlocks (phase two) are planned and
    scheduled the moment it arrives, alongside whatever is still running."""
    out = FetchOutcome()
    scheduler = _Scheduler(hub, out, ceiling, progress)
    phase2: list[FetchPlan] = []
    map_key = sec_edgar.company_tickers_request().cache_key()

    def start_filings() -> None:
        if not plan.filings_pending or out.stopped_early is not None:
            return
        map_result = out.results.get(map_key)
        if map_result is None or map_result.status != "ok":
            return
        payload = _payload_from_cache(hub, map_result)
        if payload is None:
            return
        second = build_filings_plan(
            plan.filings_pending,
            sec_edgar.parse_company_tickers(payload),
            coverage=coverage_lookup(hub),
            availability=availability_lookup(hub),
        )
        phase2.append(second)
        for item in second.fetches:
            hub.add_planned(item.service, 1)
        out.gaps.extend(Gap.from_planned(g) for g in second.gaps)
        scheduler.spawn([*second.fetches, *_covered_fetches(second)])

    for item in plan.fetches:
        hub.add_planned(item.service, 1)
    items = [*plan.fetches, *_covered_fetches(plan)]
    map_items = [i for i in items if i.request.cache_key() == map_key]
    watcher = asyncio.create_task(ceiling.watch(hub)) if ceiling is not None else None
    try:
        scheduler.spawn(map_items, then=start_filings)
        scheduler.spawn(i for i in items if i.request.cache_key() != map_key)
        await scheduler.drain()
        if plan.filings_pending and not phase2 and out.stopped_early is None:
            reason, detail = cik_map_missing_reason(plan, out)
            for ticker in plan.filings_pending:
                out.gaps.append(Gap(ticker, "sec_edgar", "submissions", reason, detail, ticker))
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return out, (phase2[0] if phase2 else None)


def cik_map_missing_reason(plan: FetchPlan, out: FetchOutcome) -> tuple[str, str]:
    """Why the filings could not be planned: the CIK map's own gap reason (offline, not
    configured, service down…) when there is one."""
    for gap in [*(Gap.from_planned(g) for g in plan.gaps), *out.gaps]:
        if gap.service == "sec_edgar" and gap.dataset == "cik_map":
            return gap.reason, "the SEC CIK map is not available"
    return "cik_map_unavailable", "the SEC CIK map is not available"


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
) -> Outcome:
    if options.timeframe not in TIMEFRAMES:
        raise InputError(
            f"--timeframe {options.timeframe!r} is not valid; use one of {', '.join(TIMEFRAMES)}."
        )
    started = clock()
    today = started.date()
    run_id = new_run_id(started)
    csv_path, book, inventory, timer = load_local(settings, options.portfolio, today)
    layout = settings.layout
    upstream = options.upstream
    configs = service_configs(settings, upstream, options.sandbox_url)
    if options.dry_run:
        with timer.stage("plan"):
            plan = dry_run_plan(settings, configs, book, inventory, options, today)
        return Outcome(0, plan=plan, summary=render_plan(plan))
    cache = CacheRoot(
        layout.cache_dir, size_limit_bytes=settings.cache_size_limit_mb << 20, clock=clock
    )
    max_conc = options.max_concurrency or settings.max_concurrency
    hub = ServiceHub(
        configs,
        cache,
        layout.state_dir,
        max_concurrency=max_conc,
        offline=upstream == "offline",
        clock=clock,
    )
    try:
        with timer.stage("plan"):
            plan = plan_for(hub, book, inventory, options, today)
        limit = options.memory_limit_mb or settings.memory_limit_mb
        ceiling = MemoryCeiling(limit)
        async with hub:
            with timer.stage("fetch"):
                fetched, phase2 = await fetch_stage(hub, plan, ceiling=ceiling, progress=progress)
            usage = hub.usage()
        with timer.stage("assemble"):
            report_path = layout.report_path(options.portfolio, today)
            inputs = AssembleInputs(
                portfolio=options.portfolio,
                run_id=run_id,
                started_at=started,
                tool_version=__version__,
                upstream=upstream,
                data_source=relative_to_root(csv_path, layout.root),
                book=book,
                inventory=inventory,
                plan=plan,
                filings_plan=phase2,
                results=fetched.results,
                load_payload=lambda res: _payload_from_cache(hub, res),
                fetch_gaps=fetched.gaps,
                usage=usage,
                cache_inventory=cache_inventory(cache),
                today=today,
                timeframe=options.timeframe,
                benchmark=options.benchmark,
                report_path=relative_to_root(report_path, layout.root),
                stopped_early=fetched.stopped_early,
            )
            report, gaps = assemble_report(inputs)
        timings = dict(timer.timings)
        report["discovery_metadata"]["stage_timings_ms"] = timings
        report["discovery_metadata"]["peak_rss_mb"] = round(max(peak_rss_mb(), ceiling.peak_mb), 1)
        validate_report(report)
        atomic_write_json(report_path, report)
        for store_name in cache.existing_namespaces():
            cache.namespace(store_name).record_last_run(run_id)
        fault = any(g.is_fault for g in gaps)
        code = 3 if fault or fetched.stopped_early else 0
        record_in_ledger(
            layout.state_dir,
            RunRecord(
                run_id=run_id,
                kind="discover",
                portfolio=options.portfolio,
                started_at=started,
                duration_ms=int(sum(timings.values())),
                network_requests=sum(int(u.get("network_requests", 0)) for u in usage.values()),
                cache_hits=sum(int(u.get("cache_hits", 0)) for u in usage.values()),
                gaps=len(gaps),
                peak_rss_mb=report["discovery_metadata"]["peak_rss_mb"],
                exit_code=code,
                upstream=upstream,
                per_service={k: dict(v) for k, v in usage.items()},
            ),
        )
        return Outcome(
            code,
            report=report,
            report_path=report_path,
            summary=render_summary(report, str(report_path)),
            plan=plan,
            gaps=gaps,
        )
    finally:
        cache.close()


def _payload_from_cache(hub: ServiceHub, result: FetchResult) -> Any:
    """The payload of a result fetched (or read) this run, read back from the cache."""
    env = hub.peek(result.request).envelope
    return env.payload if env is not None else None


def record_in_ledger(state_dir: Path, row: RunRecord) -> None:
    """Append the run to the ledger; a broken ledger is a warning, never a failed run."""
    try:
        with Ledger.in_state_dir(state_dir) as ledger:
            ledger.record_run(row)
    except LedgerError as exc:
        log.warning("run ledger not updated: %s", exc)


def cache_inventory(cache: CacheRoot) -> dict[str, Any]:
    """Per namespace: entries present (a cheap count; `cache report` has the full figures)."""
    out: dict[str, Any] = {}
    for name in cache.existing_namespaces():
        store = cache.namespace(name)
        out[name] = {"entries": len(store.raw), **store.run_counters}
    return out


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
