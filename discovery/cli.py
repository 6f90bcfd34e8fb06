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
    typer.Argument(help="Portfolio name: raw/trade_history/{NAME}.csv or {NAME}_{YYYYMMDD}.csv"),
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
    settings: Settings, sandbox: bool, offline: bool
) -> Iterator[tuple[str, str | None]]:
    """Decide live / sandbox / offline; start the embedded sandbox when asked."""
    if sandbox and offline:
        fail("--sandbox and --offline exclude each other: choose one.")
    if offline:
        yield "offline", None
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
        counts = self._counts.setdefault(service, {"hit": 0, "error": 0})
        if service not in self._tasks:
            self._tasks[service] = self._progress.add_task(service, total=None, extra="")
        if event in counts:
            counts[event] += 1
        extra = f"hits {counts['hit']}" + (f" errors {counts['error']}" if counts["error"] else "")
        self._progress.update(self._tasks[service], advance=1, extra=extra)


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
    with upstream_for(settings, sandbox, offline) as (upstream, url):
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
