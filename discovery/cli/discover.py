"""`tradescout discover`: the whole pipeline, with per-service progress on a TTY; several
portfolios one after another, or each as a task on a Dask cluster (`discovery/runs/cluster.py`)."""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from discovery.cli import imports_uncollected
from discovery.cli.common import (
    EXIT_OK,
    ClusterOption,
    ConfigOption,
    DataRootOption,
    JsonOption,
    OfflineOption,
    SandboxOption,
    SchedulerOption,
    fail,
    guarded,
    print_json,
    settings_from,
    stderr,
    stdout,
    upstream_for,
)
from discovery.plan.needs import TIMEFRAMES
from discovery.settings import Settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from discovery.runs.cluster import Placement


class ProgressView:
    """Per-service progress on a TTY (stderr); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, dict[str, int]] = {}

    def __enter__(self) -> ProgressView:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

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


PortfoliosArg = Annotated[
    list[str],
    typer.Argument(
        metavar="PORTFOLIO...",
        help="Portfolio names (raw/trade_history/NAME.csv or NAME_YYYYMMDD.csv). Several run one "
        "after another in this process, unless --scheduler or --cluster sends each to a Dask "
        "worker.",
    ),
]


def discover(
    portfolios: PortfoliosArg,
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
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Run the whole pipeline: inventory, ingest, plan, fetch, assemble; write the report.

    Several portfolios run one after another in this process; with --scheduler or --cluster
    each is a task on a Dask cluster. The exit code is then the worst of the runs."""
    with imports_uncollected():  # the pipeline: pandas, numpy, ~60 of ours (see discovery.cli)
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
    if len(portfolios) > 1 or scheduler is not None or cluster is not None:
        # Only here is the cluster module needed (one portfolio, no flag: this process).
        from discovery.runs.cluster import parse_placement

        placement = guarded(lambda: parse_placement(scheduler, cluster))
        if dry_run:
            fail("--dry-run plans one portfolio in this process: name one, without --scheduler.")
        _discover_many(
            settings,
            portfolios,
            placement,
            config,
            sandbox,
            offline,
            json_out,
            {
                "benchmark": bench,
                "timeframe": timeframe,
                "max_concurrency": max_concurrency,
                "memory_limit_mb": memory_limit_mb,
            },
        )
    (portfolio,) = portfolios
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


def _discover_many(
    settings: Settings,
    portfolios: list[str],
    placement: Placement,
    config: Path | None,
    sandbox: bool,
    offline: bool,
    json_out: bool,
    options: dict[str, Any],
) -> NoReturn:
    """Several portfolios (or one on a cluster): a run each, every summary, one table."""
    from discovery.ingest.portfolios import resolve_portfolio
    from discovery.runs.cluster import RunSpec, results_table, run_all, worst_exit
    from discovery.settings import config_file

    layout = settings.layout
    for name in portfolios:  # every argument checked before anything starts
        guarded(partial(resolve_portfolio, layout, name))
    config_path = guarded(lambda: config_file(config))
    with upstream_for(settings, sandbox, offline) as target:
        specs = RunSpec.each("discover", portfolios, layout.root, config_path, target, **options)
        show = not json_out and placement.kind == "process" and sys.stderr.isatty()
        with ProgressView(show) as view:
            results = guarded(lambda: run_all(specs, placement, progress=view.hook))
    code = worst_exit([r.exit_code for r in results])
    if json_out:
        print_json({"exit_code": code, "runs": [r.to_json() for r in results]})
        raise typer.Exit(code)
    for r in results:
        stdout.print(f"== {r.portfolio} ==", markup=False)
        stdout.print(r.summary or f"error: {r.error}", markup=False)
        stdout.print("", markup=False)
    stdout.print("\n".join(results_table(results)), markup=False)
    raise typer.Exit(code)
