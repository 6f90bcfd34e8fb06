"""Discover, end to end: the imperative shell around the pure stages.

0 inventory → 1 ingest → 2 plan → 3 fetch → 4 assemble. Only stage 3 does network I/O (the
fetch engine, through the hub, which reads and writes the cache); the report and the ledger
row are written through `discovery.runs.record` at the end.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from cache.atomic import atomic_streamer
from cache.backend import CacheBackend
from cache.envelope import utcnow
from discovery import __version__
from discovery.currencies import currency_code, major
from discovery.errors import InputError, storage_sentence
from discovery.fetch.access import availability_lookup, coverage_lookup, open_hub
from discovery.fetch.ceilings import MemoryCeiling, peak_rss_mb
from discovery.fetch.engine import FetchEngine, PhaseTwo, ProgressHook
from discovery.ingest.closed_trades import RECORD_CHUNK_ROWS, iter_closed_chunks
from discovery.ingest.drawdown import realized_drawdowns
from discovery.ingest.portfolios import resolve_portfolio
from discovery.ingest.trades import TradeBook, ingest
from discovery.local.inventory import Inventory, build_inventory
from discovery.plan.needs import (
    CIK_MAP,
    TIMEFRAMES,
    Need,
    TickerFacts,
    fx_needs,
    report_needs,
)
from discovery.plan.parsed import PARSE_ERRORS, ParsedAnswers
from discovery.plan.planner import FetchPlan, plan_needs
from discovery.report.assemble import (
    AssembleInputs,
    assemble_report,
    fill_slots,
    foreign_currencies,
)
from discovery.report.closed import (
    INLINE_LIMIT,
    closed_trade_lines,
    closed_trade_records,
    records_inputs,
)
from discovery.report.facts import Closes
from discovery.report.gaps import Gap
from discovery.report.schema import validate_report
from discovery.report.summary import gap_lines, plural, render_summary
from discovery.runs import closed_files
from discovery.runs.record import check_writable, record_run
from discovery.settings import Settings
from discovery.upstream import Target
from services import yahoo_finance
from services.hub import ServiceHub
from services.recordclass import record
from services.spec import FetchResult

Clock = Callable[[], datetime]


@record
class DiscoverOptions:
    portfolio: str
    target: Target = field(default_factory=Target)
    dry_run: bool = False
    benchmark: str = "SPY"
    timeframe: str = "all"
    max_concurrency: int | None = None
    memory_limit_mb: int | None = None
    worker: str | None = None  # the Dask worker running it (the report's metadata says so)


@record(frozen=False, repr=False)
class Outcome:
    """What a discover run hands back. Its repr is kept short on purpose: `asyncio.run` (3.11)
    formats its main task — result included — twice while it restores the SIGINT handler,
    and the repr of a 500-ticker report took a tenth of a second."""

    exit_code: int
    report: dict[str, Any] | None = None
    report_path: Path | None = None  # this run's own file (in the history folder)
    latest_path: Path | None = None  # the daily file, the latest report of the day
    summary: str = ""
    plan: FetchPlan | None = None
    gaps: list[Gap] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Outcome(exit_code={self.exit_code}, report_path={self.report_path!r})"


class StageTimer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:  # a stage entered twice (assembly, around the FX fetch) adds up
            spent = (time.perf_counter() - start) * 1000.0
            self.timings[name] = round(self.timings.get(name, 0.0) + spent, 1)


def load_local(
    settings: Settings,
    portfolio: str,
    today: date,
    scratch: Path | None = None,
    *,
    keep_records: bool = False,
) -> tuple[Path, TradeBook, Inventory, StageTimer]:
    """Stages 1 and 0: the trade book and what is known locally (no network). `scratch`: where
    a very large file's sorted exit runs and kept closed trades may spill (inside the data
    root; the system's temporary folder when None). `keep_records`: keep the closed trades'
    record columns for the report (`ingest`). Close the book once done with it."""
    timer = StageTimer()
    layout = settings.layout
    with timer.stage("ingest"):
        csv_path = resolve_portfolio(layout, portfolio)
        book = ingest(
            csv_path,
            chunk_rows=settings.csv_chunk_rows,
            as_of=today,
            scratch_dir=scratch,
            keep_records=keep_records,
        )
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


def cached_currencies(hub: ServiceHub, needs: Sequence[Need]) -> list[str]:
    """The major currencies of the tickers whose chart is in the cache (the refresh plans their
    exchange rates with everything else, so a discover after it sends nothing)."""
    found: set[str] = set()
    for need in needs:
        if need.kind != "chart" or not need.sources:
            continue
        env = hub.peek(need.sources[0].request).envelope
        if env is None or env.status != "ok":
            continue
        try:
            history = yahoo_finance.parse_closes(env.payload, since=date.max)  # meta only
        except PARSE_ERRORS:
            continue
        code = currency_code(history.currency)
        if code is not None:
            found.add(major(code)[0])
    return sorted(found)


def payload_from_cache(hub: ServiceHub, result: FetchResult) -> Any:
    """The payload of a result fetched (or read) this run, read back from the cache."""
    env = hub.peek(result.request).envelope
    return env.payload if env is not None else None


def dry_run_plan(
    settings: Settings, options: DiscoverOptions, book: TradeBook, inventory: Inventory, today: date
) -> FetchPlan:
    """The plan as `discover` would build it, from a read-only hub: no file or directory is
    created, nothing is sent. When the SEC CIK map is already cached, the filings it unlocks
    are planned too (as the run would, the moment the map is read), so the listing is exact."""
    needs = book_needs(
        book, inventory, today, benchmark=options.benchmark, timeframe=options.timeframe
    )
    with open_hub(settings, options.target, read_only=True) as hub:
        planner = planner_for(hub)
        plan = planner(needs)
        trigger = next((n for n in plan.needs if n.id == CIK_MAP), None)
        covered = {c.request.cache_key() for c in plan.covered if c.request is not None}
        if trigger is None or not plan.deferred or trigger.sources[0].key not in covered:
            return plan
        env = hub.peek(trigger.sources[0].request).envelope
        try:
            value = trigger.sources[0].parse(env.payload) if env is not None else None
        except PARSE_ERRORS:
            value = None
        if value is None:
            return plan
        second = planner([n.resolved(value) for n in plan.deferred])
        return merged(plan, second)


def merged(first: FetchPlan, second: FetchPlan) -> FetchPlan:
    """One plan listing both phases (the deferred needs in their concrete form)."""
    concrete = {n.id: n for n in second.needs}
    return FetchPlan(
        needs=tuple(concrete.get(n.id, n) for n in first.needs),
        fetches=(*first.fetches, *second.fetches),
        covered=(*first.covered, *second.covered),
        gaps=(*first.gaps, *second.gaps),
        blocked={**first.blocked, **second.blocked},
        notes=(*first.notes, *second.notes),
    )


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
    layout = settings.layout
    if options.dry_run:  # nothing is written: a huge file spills only into an existing state/
        scratch = layout.scratch_dir if layout.state_dir.is_dir() else None
        csv_path, book, inventory, timer = load_local(settings, options.portfolio, today, scratch)
        try:
            with timer.stage("plan"):
                plan = dry_run_plan(settings, options, book, inventory, today)
        finally:
            book.close()
        return Outcome(0, plan=plan, summary=render_plan(plan, settings.base_currency))
    csv_path, book, inventory, timer = load_local(
        settings, options.portfolio, today, layout.scratch_dir, keep_records=True
    )
    report_path = layout.report_path(options.portfolio, today)
    history_path = layout.history_report_path(options.portfolio, run_id)
    try:
        check_writable(report_path)  # a root that cannot take the report: refused before fetching
        check_writable(history_path)
        return await _run(
            settings,
            options,
            book=book,
            inventory=inventory,
            timer=timer,
            csv_path=csv_path,
            run_id=run_id,
            started=started,
            paths=(report_path, history_path),
            clock=clock,
            progress=progress,
            transport=transport,
            sleep=sleep,
        )
    finally:
        book.close()


async def _run(
    settings: Settings,
    options: DiscoverOptions,
    *,
    book: TradeBook,
    inventory: Inventory,
    timer: StageTimer,
    csv_path: Path,
    run_id: str,
    started: datetime,
    paths: tuple[Path, Path],
    clock: Clock,
    progress: ProgressHook | None,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Callable[[float], Awaitable[None]] | None,
) -> Outcome:
    layout = settings.layout
    target = options.target
    today = started.date()
    report_path, history_path = paths
    base = settings.base_currency
    with open_hub(
        settings,
        target,
        clock=clock,
        max_concurrency=options.max_concurrency,
        transport=transport,
        sleep=sleep,
    ) as hub:
        ceiling = MemoryCeiling(options.memory_limit_mb or settings.memory_limit_mb)
        load = lambda res: payload_from_cache(hub, res)  # noqa: E731
        parsed = ParsedAnswers()  # every answer parsed as the engine gets it (one decode)
        plan_against_hub = planner_for(hub)

        def planner(needs: Sequence[Need]) -> FetchPlan:
            parsed.expect(needs)
            return plan_against_hub(needs)

        def engine() -> FetchEngine:
            return FetchEngine(hub, ceiling=ceiling, progress=progress, on_answer=parsed.take)

        inputs = AssembleInputs(
            portfolio=options.portfolio,
            run_id=run_id,
            started_at=started,
            tool_version=__version__,
            upstream=target.label,
            cache_upstream=target.upstream,
            data_source=relative_to_root(csv_path, layout.root),
            book=book,
            inventory=inventory,
            needs=(),
            outcomes={},
            load_payload=load,
            parsed=parsed,
            usage={},
            cache_inventory={},
            today=today,
            timeframe=options.timeframe,
            report_path=relative_to_root(history_path, layout.root),
            base_currency=base,
        )
        async with hub:  # entered first: planning sees the shared holds and counts
            with timer.stage("plan"):
                plan = planner(
                    book_needs(
                        book,
                        inventory,
                        today,
                        benchmark=options.benchmark,
                        timeframe=options.timeframe,
                    )
                )
            with timer.stage("fetch"):
                value = lambda answer: parsed.parsed(answer, load)  # noqa: E731
                fetched = await engine().run(plan, PhaseTwo.of(plan, planner, value))
            outcomes = dict(fetched.outcomes)
            with timer.stage("assemble"):
                inputs = replace(
                    inputs,
                    needs=fetched.needs(plan),
                    outcomes=outcomes,
                    stopped_early=fetched.stopped_early,
                )
                filled = fill_slots(inputs)
            # One exchange rate per foreign currency, now that the currencies are known.
            fx = fx_needs(
                foreign_currencies(filled, book.ticker_symbols, base), base=base, today=today
            )
            if fx and fetched.stopped_early is None:
                with timer.stage("fx"):
                    fx_plan = planner(fx)
                    fx_fetched = await engine().run(fx_plan)
                    outcomes.update(fx_fetched.outcomes)
                    fill_slots(replace(inputs, outcomes=outcomes), fx, into=filled)
            usage = hub.usage()
            sharing = hub.sharing()
        currency_of = filled.learned.currencies(book.ticker_symbols)
        # The realized drawdown merges the book's exit runs meanwhile: the records' encoding and
        # their write leave the GIL free for much of the stage (a 1M-trade file: ~0.2 s saved).
        with timer.stage("closed_trades"), ThreadPoolExecutor(1, "drawdown") as side:
            drawdowns = side.submit(realized_drawdowns, book, currency_of)
            closed = closed_trades_section(
                book,
                filled.learned.benchmark,
                currency_of,
                layout.closed_trades_path(options.portfolio, run_id),
                min(settings.csv_chunk_rows, RECORD_CHUNK_ROWS),
                options.portfolio,
            )
            max_drawdown = drawdowns.result()
        with timer.stage("assemble"):
            inputs = replace(
                inputs,
                usage=usage,
                cache_inventory=cache_inventory(hub.cache),
                run_gaps=cache_fault_gaps(hub),
                closed_trades=closed,
                max_drawdown=max_drawdown,
            )
            report, gaps = assemble_report(inputs, filled)
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
            history=(history_path, as_written_in(report, history_path, report_path)),
        )
        for name in hub.cache.existing_namespaces():
            hub.cache.namespace(name).record_last_run(run_id)
    return Outcome(
        code,
        report=report,
        report_path=history_path,
        latest_path=report_path,
        summary=render_summary(report, str(history_path), latest=str(report_path)),
        plan=plan,
        gaps=gaps,
    )


def closed_trades_section(
    book: TradeBook,
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
    spill: Path,
    chunk_rows: int,
    portfolio: str,
) -> list[dict[str, Any]] | dict[str, Any]:
    """The closed-trade records (a second streaming pass over the CSV): inline up to
    INLINE_LIMIT, else written as JSON lines to `spill` and referred to by `{path, count}`
    (relative to the daily report's folder: `history/…`) — or an earlier run's file linked,
    when its records were made of the same inputs (`discovery.runs.closed_files`)."""
    chunks = iter_closed_chunks(book, chunk_rows=chunk_rows)
    if book.summary.closed_trades <= INLINE_LIMIT:
        return list(closed_trade_records(chunks, benchmark, currency_of))
    reference = {"path": f"{spill.parent.name}/{spill.name}"}
    last_exit = book.summary.last_exit_date
    inputs = records_inputs(book.sha256, last_exit, benchmark, currency_of, __version__)
    reused = closed_files.reuse(spill, portfolio, inputs)
    if reused is not None:  # the same inputs as an earlier run: its file, linked
        return {**reference, "count": reused}
    count = 0
    try:
        # One block written on a worker thread (the write releases the GIL) while the next one
        # is encoded: the kernel's copy of half a gigabyte overlaps the encoding.
        with atomic_streamer(spill) as handle, ThreadPoolExecutor(1, "closed-write") as writer:
            written: Future[int] | None = None
            for block, records in closed_trade_lines(chunks, benchmark, currency_of):
                if written is not None:
                    written.result()
                written = writer.submit(handle.write, block)
                count += records
            if written is not None:
                written.result()
    except OSError as exc:
        raise storage_sentence(spill, exc, "the closed trades") or exc from None
    closed_files.write_note(spill, inputs, count)
    return {**reference, "count": count}


def as_written_in(report: dict[str, Any], history: Path, daily: Path) -> dict[str, Any]:
    """The report as its history copy holds it: a closed-trades file is referred to relative
    to the history folder (it sits there) rather than to the daily report's."""
    closed = report.get("closed_trades")
    if not isinstance(closed, dict) or history.parent == daily.parent:
        return report
    return {**report, "closed_trades": {**closed, "path": Path(closed["path"]).name}}


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


def render_plan(plan: FetchPlan, base_currency: str = "USD") -> str:
    """The dry-run listing: one line per planned request (service, dataset, what for, reason,
    cache key — printed verbatim), then the totals, what waits on another answer (SEC filings
    on the CIK map, exchange rates on the tickers' currencies) and the gaps already known."""
    lines = [
        f"{'service':<14} {'dataset':<13} {'subject':<16} {'reason':<58} key"
        if plan.fetches
        else "nothing to fetch: every slot is covered locally, by the cache, or a known gap"
    ]
    for item in plan.fetches:
        lines.append(
            f"{item.service:<14} {item.request.dataset:<13} {item.label[:16]:<16} "
            f"{item.reason:<58} {item.key}"
        )
    totals = plan.planned_by_service()
    lines.append("")
    lines.append(
        f"planned {plural(len(plan.fetches), 'request')}: "
        + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none")
    )
    lines.append(f"covered locally or by cache: {len(plan.covered):,}")
    pending = plan.filings_pending
    if pending:
        cik = next((g for g in plan.gaps if g.slot == "cik_map"), None)
        if cik is not None:
            lines.append(
                f"SEC filings: none planned for {plural(len(pending), 'ticker')} "
                f"(sec_edgar {cik.reason}: {cik.detail or cik.fix})"
            )
        else:
            lines.append(
                f"+ up to {plural(len(pending), 'SEC filings request')} once the CIK map is read"
            )
    lines.append(
        f"+ one exchange-rate chart per currency other than {base_currency} among the tickers, "
        "once their currencies are known"
    )
    lines.extend(line.replace("Gaps:", "gaps already known:", 1) for line in gap_lines(
        [g.to_json() for g in plan.gaps if g.slot != "cik_map" or not pending]
    ))  # fmt: skip
    return "\n".join(lines)
