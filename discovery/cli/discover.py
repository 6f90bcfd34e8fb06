"""`tradescout discover`: the whole pipeline, with per-service progress on a TTY."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from discovery.cli.common import (
    EXIT_OK,
    ConfigOption,
    DataRootOption,
    JsonOption,
    OfflineOption,
    PortfolioArg,
    SandboxOption,
    fail,
    guarded,
    print_json,
    settings_from,
    stderr,
    stdout,
    upstream_for,
)
from discovery.plan.needs import TIMEFRAMES


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
        int | None, typer.Option(help="Global ceiling on requests in flight (1 to 256).")
    ] = None,
    memory_limit_mb: Annotated[
        int | None,
        typer.Option(help="RSS ceiling in MB; soft at 80%, hard stops scheduling (16 or more)."),
    ] = None,
) -> None:
    """Run the whole pipeline: inventory, ingest, plan, fetch, assemble; write the report."""
    from discovery.runs.discover import DiscoverOptions, discover_async
    from discovery.tickers import is_valid_ticker, normalize_ticker

    settings = settings_from(
        data_root,
        config,
        max_concurrency=max_concurrency,
        memory_limit_mb=memory_limit_mb,
    )
    bench = normalize_ticker(benchmark)
    if not is_valid_ticker(bench):
        fail(f"--benchmark {benchmark!r} is not a plausible symbol.")
    if timeframe not in TIMEFRAMES:
        fail(f"--timeframe {timeframe!r} is not valid; use one of {', '.join(TIMEFRAMES)}.")
    with upstream_for(settings, sandbox, offline, start=not dry_run) as target:
        options = DiscoverOptions(
            portfolio=portfolio,
            target=target,
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
                "report_path": str(outcome.report_path),  # this run's own file
                "latest_path": str(outcome.latest_path),  # the daily file (latest of the day)
                "summary": outcome.summary,
                "gaps": len(outcome.gaps),
            }
        )
    else:
        stdout.print(outcome.summary, markup=False)
    raise typer.Exit(outcome.exit_code)
