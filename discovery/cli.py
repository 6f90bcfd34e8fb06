"""`tradescout`: the command line (DESIGN.md §4). Thin: parse flags, call the pipeline, print."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from discovery.cli_cache import cache_app
from discovery.cli_common import (
    EXIT_OK,
    ConfigOption,
    DataRootOption,
    JsonOption,
    fail,
    guarded,
    print_json,
    settings_from,
    stderr,
    stdout,
)
from discovery.cli_sandbox import sandbox_command
from discovery.cli_schedule import schedule_command
from discovery.errors import InputError
from discovery.plan import TIMEFRAMES
from discovery.settings import Settings

app = typer.Typer(
    name="tradescout",
    help="Local-first discovery for a trader's trade history: what is known locally, what is "
    "missing, fetched once from public data services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache", help="Cache report, optimizer and integrity check.")
app.command("sandbox", help="Serve the simulated upstream services on loopback (foreground).")(
    sandbox_command
)
app.command("schedule", help="Print or install the nightly `refresh` schedule (cron/systemd).")(
    schedule_command
)

PortfolioArg = Annotated[
    str,
    typer.Argument(
        metavar="PORTFOLIO",
        help="Portfolio name: raw/trade_history/NAME.csv or NAME_YYYYMMDD.csv",
    ),
]
SandboxOption = Annotated[
    bool,
    typer.Option(
        "--sandbox", help="Start the embedded simulator on loopback and point every service at it."
    ),
]
OfflineOption = Annotated[
    bool, typer.Option("--offline", help="No network at all: local files and the cache only.")
]


def _today() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def upstream_for(
    settings: Settings, sandbox: bool, offline: bool, *, start: bool = True
) -> Iterator[tuple[str, str | None]]:
    """Decide live / sandbox / offline; start the embedded sandbox when asked (and needed:
    a dry run plans against the sandbox's cache keys but sends nothing)."""
    if sandbox and offline:
        fail("--sandbox and --offline exclude each other: choose one.")
    if offline:
        yield "offline", None
        return
    if sandbox and not start:
        yield "sandbox", "http://127.0.0.1:0"
        return
    if sandbox:
        from services.sandbox.server import SandboxServer

        with SandboxServer() as server:
            yield "sandbox", server.url
        return
    if settings.sandbox_url:
        yield "sandbox", settings.sandbox_url
        return
    yield "live", None


class ProgressView:
    """Per-service progress on a TTY (stderr); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, dict[str, int]] = {}

    def __enter__(self) -> ProgressView:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                console=stderr,
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def hook(self, service: str, event: str) -> None:
        if self._progress is None:
            return
        counts = self._counts.setdefault(service, {"planned": 0, "hit": 0, "error": 0})
        if service not in self._tasks:
            self._tasks[service] = self._progress.add_task(service, total=0, extra="")
        task = self._tasks[service]
        if event == "planned":
            counts["planned"] += 1
            self._progress.update(task, total=counts["planned"])
            return
        if event in counts:
            counts[event] += 1
        extra = f"hits {counts['hit']}" + (f" errors {counts['error']}" if counts["error"] else "")
        self._progress.update(task, advance=1, extra=extra)


@app.command()
def discover(
    portfolio: PortfolioArg,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
    sandbox: SandboxOption = False,
    offline: OfflineOption = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the fetch plan and stop: no network, no files.")
    ] = False,
    benchmark: Annotated[str, typer.Option(help="Benchmark symbol for market context.")] = "SPY",
    timeframe: Annotated[
        str, typer.Option(help=f"Analysis window: {'|'.join(TIMEFRAMES)} (all = portfolio period).")
    ] = "all",
    max_concurrency: Annotated[
        int | None, typer.Option(min=1, max=256, help="Global ceiling on requests in flight.")
    ] = None,
    memory_limit_mb: Annotated[
        int | None, typer.Option(min=16, help="RSS ceiling; soft at 80%, hard stops scheduling.")
    ] = None,
) -> None:
    """Run the whole pipeline: inventory, ingest, plan, fetch, assemble; write the report."""
    from discovery.pipeline import DiscoverOptions, discover_async
    from discovery.tickers import is_valid_ticker, normalize_ticker

    settings = settings_from(data_root, config)
    bench = normalize_ticker(benchmark)
    if not is_valid_ticker(bench):
        fail(f"--benchmark {benchmark!r} is not a plausible symbol.")
    if timeframe not in TIMEFRAMES:
        fail(f"--timeframe {timeframe!r} is not valid; use one of {', '.join(TIMEFRAMES)}.")
    with upstream_for(settings, sandbox, offline, start=not dry_run) as (upstream, url):
        options = DiscoverOptions(
            portfolio=portfolio,
            upstream=upstream,  # type: ignore[arg-type]
            sandbox_url=url,
            dry_run=dry_run,
            benchmark=bench,
            timeframe=timeframe,
            max_concurrency=max_concurrency,
            memory_limit_mb=memory_limit_mb,
        )
        show_progress = not json_out and sys.stderr.isatty() and not dry_run
        with ProgressView(show_progress) as view:
            outcome = guarded(
                lambda: asyncio.run(discover_async(settings, options, progress=view.hook))
            )
    if dry_run:
        if json_out:
            assert outcome.plan is not None
            print_json(outcome.plan.to_json())
        else:
            stdout.print(outcome.summary, markup=False)
        raise typer.Exit(EXIT_OK)
    if json_out:
        print_json(
            {
                "exit_code": outcome.exit_code,
                "report_path": str(outcome.report_path),
                "summary": outcome.summary,
                "gaps": len(outcome.gaps),
            }
        )
    else:
        stdout.print(outcome.summary, markup=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def inventory(
    portfolio: PortfolioArg,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Stages 0–1 only: local coverage per ticker and what is missing (no network)."""
    from discovery.pipeline import load_local

    settings = settings_from(data_root, config)
    _, book, inv, _ = guarded(lambda: load_local(settings, portfolio, _today().date()))
    rows = inventory_rows(book, inv)
    section = inv.to_report_section()["fundamental_analysis"]
    coverage = section.get("coverage", {})
    if json_out:
        print_json({"portfolio": portfolio, "coverage": coverage, "tickers": rows})
        return
    table = Table(title=f"Local inventory · {portfolio}", show_lines=False)
    for col in ("ticker", "trades", "open", "local file", "date", "age", "stale", "rec", "sector"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["ticker"],
            str(r["trades"]),
            str(r["open"]),
            r["file"] or "—",
            r["date"] or "",
            "" if r["age_days"] is None else str(r["age_days"]),
            "yes" if r["stale"] else "",
            r["recommendation"] or "",
            r["sector"] or "",
        )
    stdout.print(table)
    ratio = coverage.get("ratio")
    stdout.print(
        f"Coverage: {coverage.get('with_analysis', 0)}/{coverage.get('total', 0)} tickers"
        + (f" ({ratio * 100:.1f}%)" if ratio is not None else ""),
        markup=False,
    )


def inventory_rows(book: object, inv: object) -> list[dict[str, Any]]:
    from discovery.inventory import Inventory
    from discovery.trades import TradeBook

    assert isinstance(book, TradeBook) and isinstance(inv, Inventory)
    perf = book.to_report_sections()["ticker_performance"]
    entries = inv.entries()
    rows: list[dict[str, Any]] = []
    for ticker in book.ticker_symbols:
        e = entries.get(ticker)
        p = perf.get(ticker, {})
        rows.append(
            {
                "ticker": ticker,
                "trades": p.get("total_trades", 0),
                "open": p.get("active_trades", 0),
                "file": e.file if e else None,
                "date": e.date.isoformat() if e else None,
                "age_days": e.age_days if e else None,
                "stale": e.stale if e else None,
                "recommendation": e.recommendation if e else None,
                "sector": e.sector if e else None,
            }
        )
    return rows


def parse_budgets(values: list[str]) -> dict[str, int]:
    """`--budget service=N` (repeatable) → {service: N}; a bad value is a usage error."""
    from discovery.settings import SERVICE_NAMES

    out: dict[str, int] = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or name not in SERVICE_NAMES or not number.isdigit():
            fail(
                f"--budget {value!r} is not valid: use SERVICE=N with SERVICE one of "
                f"{', '.join(SERVICE_NAMES)} and N a whole number."
            )
        out[name] = int(number)
    return out


@app.command()
def refresh(
    portfolios: Annotated[
        list[str] | None,
        typer.Argument(
            help="Portfolios to refresh (default: every portfolio in raw/trade_history)."
        ),
    ] = None,
    all_portfolios: Annotated[
        bool,
        typer.Option("--all", help="Refresh every portfolio (the default when none is named)."),
    ] = False,
    horizon_hours: Annotated[
        float, typer.Option(min=0, help="Re-fetch entries that expire within this many hours.")
    ] = 12.0,
    budget: Annotated[
        list[str] | None,
        typer.Option(help="Nightly budget SERVICE=N (repeatable; default half the daily quota)."),
    ] = None,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
    sandbox: SandboxOption = False,
    offline: OfflineOption = False,
) -> None:
    """Keep the cache warm: re-fetch what discover would plan and what expires soon, in budget."""
    from datetime import timedelta

    from cache.atomic import atomic_write_json
    from discovery.ceilings import peak_rss_mb
    from discovery.ledger import RunRecord
    from discovery.pipeline import record_in_ledger
    from discovery.refresh import refresh_async, refresh_report_path
    from discovery.runlock import RunLock

    settings = settings_from(data_root, config)
    budgets = parse_budgets(budget or [])
    names = [] if all_portfolios else list(portfolios or [])
    layout = settings.layout
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock.for_refresh(layout.state_dir)
    if not lock.acquire():
        message = f"refresh already running (pid {lock.holder_pid()})"
        if json_out:
            print_json({"status": "already_running", "message": message})
        else:
            stdout.print(message, markup=False)
        raise typer.Exit(EXIT_OK)
    try:
        with upstream_for(settings, sandbox, offline) as (upstream, url):
            result = guarded(
                lambda: asyncio.run(
                    refresh_async(
                        settings,
                        names,
                        upstream=upstream,  # type: ignore[arg-type]
                        sandbox_url=url,
                        horizon=timedelta(hours=horizon_hours),
                        budgets=budgets,
                    )
                )
            )
    finally:
        lock.release()
    started = _today()
    path = refresh_report_path(layout.refresh_reports_dir, started.date(), result.run_id)
    body = result.to_json()
    atomic_write_json(path, body)
    code = 3 if result.failed else 0
    record_in_ledger(
        layout.state_dir,
        RunRecord(
            run_id=result.run_id,
            kind="refresh",
            portfolio=",".join(result.portfolios)[:200] or None,
            started_at=started,
            duration_ms=int(result.duration_ms),
            network_requests=sum(int(u.get("network_requests", 0)) for u in result.usage.values()),
            cache_hits=sum(int(u.get("cache_hits", 0)) for u in result.usage.values()),
            gaps=len(result.failed) + len(result.skipped_budget),
            peak_rss_mb=round(peak_rss_mb(), 1),
            exit_code=code,
            upstream=upstream,
            per_service={k: dict(v) for k, v in result.usage.items()},
        ),
    )
    if json_out:
        print_json({**{k: v for k, v in body.items() if k != "details"}, "report_path": str(path)})
    else:
        stdout.print(
            f"refreshed {body['refreshed']}, already fresh {body['skipped_fresh']}, "
            f"over budget {body['skipped_budget']}, failed {body['failed']} "
            f"in {body['duration_ms'] / 1000:.1f} s",
            markup=False,
        )
        used = ", ".join(
            f"{k} {v}/{body['budget'].get(k) if body['budget'].get(k) is not None else '∞'}"
            for k, v in sorted(body["budget_used"].items())
        )
        if used:
            stdout.print(f"budget used: {used}", markup=False)
        stdout.print(f"report: {path}", markup=False)
    raise typer.Exit(code)


@app.command()
def services(
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Configured services: key present (never shown), limits, quota left, last breaker state."""
    from cache.store import CacheRoot
    from discovery.ledger import Ledger, LedgerError
    from discovery.upstream import service_configs
    from services.hub import ServiceHub

    settings = settings_from(data_root, config)
    layout = settings.layout
    upstream = "sandbox" if settings.sandbox_url else "live"
    configs = service_configs(settings, upstream, settings.sandbox_url)  # type: ignore[arg-type]
    last_breaker: dict[str, str] = {}
    ledger_path = layout.state_dir / "ledger.sqlite"
    if ledger_path.is_file():
        try:
            with Ledger(ledger_path) as ledger:
                for run in reversed(ledger.recent_runs(20)):
                    for name, fig in run.per_service.items():
                        last_breaker[name] = str(fig.get("breaker_state") or "")
        except LedgerError:
            pass
    hub = ServiceHub(configs, CacheRoot(layout.cache_dir), layout.state_dir)
    rows: list[dict[str, Any]] = []
    for name in configs:
        st = hub.status(name)
        rows.append(
            {
                "service": name,
                "enabled": st.enabled,
                "configured": st.configured,
                "reason": st.reason,
                "key_present": st.has_credential,
                "upstream": st.upstream,
                "base_urls": dict(st.base_urls or {}),
                "rate_per_second": st.rate_per_second,
                "daily_quota": st.daily_quota,
                "quota_used_today": st.quota_used_today,
                "quota_left": st.quota_left,
                "max_connections": st.max_connections,
                "last_breaker_state": last_breaker.get(name),
            }
        )
    if json_out:
        print_json({"services": rows})
        return
    table = Table(title="Services")
    for col in ("service", "ready", "key", "rate/s", "quota/day", "used", "left", "breaker"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["service"],
            "yes" if r["configured"] and r["enabled"] else f"no ({r['reason'] or 'disabled'})",
            "present" if r["key_present"] else "—",
            f"{r['rate_per_second']:.2f}",
            "—" if r["daily_quota"] is None else str(r["daily_quota"]),
            str(r["quota_used_today"]),
            "—" if r["quota_left"] is None else str(r["quota_left"]),
            r["last_breaker_state"] or "—",
        )
    stdout.print(table)


def main() -> None:
    """Console-script entry point: exit codes per DESIGN.md §4, no traceback for user errors."""
    try:
        app()
    except InputError as exc:
        stderr.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
