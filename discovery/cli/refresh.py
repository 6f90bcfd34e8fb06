"""`tradescout refresh`: the nightly refresh under its lock, its report and ledger row; with
--scheduler or --cluster, one task per portfolio on a Dask cluster, each with an equal share of
the nightly budgets, the lock held here for all of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, NoReturn

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
    check_names,
    check_number,
    fail,
    guarded,
    print_json,
    settings_from,
    stdout,
    upstream_for,
)
from discovery.errors import storage_sentence
from discovery.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from discovery.runs.cluster import Placement
    from discovery.runs.runlock import RunLock


def parse_budgets(values: list[str]) -> dict[str, int]:
    """`--budget service=N` (repeatable) → {service: N}; a bad value is a usage error."""
    from services.registry import SERVICE_NAMES

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


def _acquire(lock: RunLock) -> bool:
    try:
        return lock.acquire()
    except OSError as exc:
        raise storage_sentence(lock.path, exc, "the refresh lock") or exc from None


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
        float, typer.Option(help="Re-fetch entries that expire within this many hours (0-720).")
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be refreshed; fetch nothing.")
    ] = False,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Keep the cache warm: re-fetch what discover would plan and what expires soon, in budget.

    With --scheduler or --cluster each portfolio is a task on a Dask cluster (an equal share of
    every budget each); otherwise one refresh covers them all in this process."""
    from datetime import timedelta

    with imports_uncollected():  # the pipeline: pandas, numpy, ~60 of ours (see discovery.cli)
        from discovery.ingest.portfolios import resolve_portfolio
        from discovery.runs.cluster import parse_placement
        from discovery.runs.refresh import refresh_async
        from discovery.runs.runlock import RunLock

    settings = settings_from(data_root, config)
    check_number("--horizon-hours", horizon_hours, 0, 720)
    budgets = parse_budgets(budget or [])
    names = [] if all_portfolios else list(portfolios or [])
    check_names(names)  # before the lock: a refused name leaves nothing behind
    placement = guarded(lambda: parse_placement(scheduler, cluster))
    if dry_run and placement.kind != "process":
        fail("--dry-run previews the refresh in this process: leave out --scheduler/--cluster.")
    if dry_run:
        _print_preview(settings, names, horizon_hours, budgets, sandbox, offline, json_out)
        return
    layout = settings.layout
    for name in names:  # every argument is checked before the lock (or any file) is taken
        guarded(partial(resolve_portfolio, layout, name))
    lock = RunLock.for_refresh(layout.state_dir)
    if not guarded(partial(_acquire, lock)):
        message = f"refresh already running (pid {lock.holder_pid()})"
        if json_out:
            print_json({"status": "already_running", "message": message})
        else:
            stdout.print(message, markup=False)
        raise typer.Exit(EXIT_OK)
    if placement.kind != "process":
        try:
            _refresh_on_cluster(
                settings,
                names,
                placement,
                config,
                sandbox,
                offline,
                json_out,
                horizon_hours,
                budgets,
            )
        finally:
            lock.release()
    try:
        with upstream_for(settings, sandbox, offline) as target:
            result = guarded(
                lambda: asyncio.run(
                    refresh_async(
                        settings,
                        names,
                        target=target,
                        horizon=timedelta(hours=horizon_hours),
                        budgets=budgets,
                    )
                )
            )
    finally:
        lock.release()
    body = result.to_json()
    path = result.report_path
    code = result.exit_code
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


def _print_preview(
    settings: Settings,
    names: list[str],
    horizon_hours: float,
    budgets: dict[str, int],
    sandbox: bool,
    offline: bool,
    json_out: bool,
) -> None:
    """`--dry-run`: the refresh's plan, nothing fetched, locked or written."""
    from datetime import timedelta

    from discovery.runs.refresh import preview_refresh

    with upstream_for(settings, sandbox, offline, start=False) as target:
        body = guarded(
            lambda: preview_refresh(
                settings,
                names,
                target=target,
                horizon=timedelta(hours=horizon_hours),
                budgets=budgets,
                now=datetime.now(UTC),
            )
        )
    if json_out:
        print_json(body)
        return
    per = ", ".join(f"{k} {v}" for k, v in sorted(body["by_service"].items())) or "nothing"
    stdout.print(f"would refresh {body['would_refresh']}: {per}", markup=False)
    stdout.print(
        f"already fresh {body['already_fresh']}, over budget {body['over_budget']}, "
        f"not plannable {body['not_planned']}"
        + (f" ({body['not_planned_by_reason']})" if body["not_planned"] else ""),
        markup=False,
    )
    if body["filings_after_cik_map"]:
        stdout.print(
            f"+ up to {body['filings_after_cik_map']} SEC filings once the CIK map is fetched",
            markup=False,
        )


def _refresh_on_cluster(
    settings: Settings,
    names: list[str],
    placement: Placement,
    config: Path | None,
    sandbox: bool,
    offline: bool,
    json_out: bool,
    horizon_hours: float,
    budgets: dict[str, int],
) -> NoReturn:
    """One refresh task per portfolio (every portfolio when none is named), run on the cluster
    while this process holds the refresh lock; the exit code is the worst of them."""
    from discovery.ingest.portfolios import list_portfolios
    from discovery.runs.cluster import RunSpec, results_table, run_all, split_budgets, worst_exit
    from discovery.settings import config_file

    layout = settings.layout
    chosen = names or list_portfolios(layout)
    if not chosen:
        fail(f"no portfolio to refresh under {layout.root}/raw/trade_history.")
    config_path = guarded(lambda: config_file(config))
    with upstream_for(settings, sandbox, offline) as target:
        shares = split_budgets(settings, target, budgets, len(chosen))
        specs = RunSpec.each(
            "refresh",
            chosen,
            layout.root,
            config_path,
            target,
            horizon_hours=horizon_hours,
            budgets=shares,
        )
        results = guarded(lambda: run_all(specs, placement))
    code = worst_exit([r.exit_code for r in results])
    if json_out:
        print_json({"exit_code": code, "runs": [r.to_json() for r in results]})
    else:
        stdout.print("\n".join(results_table(results)), markup=False)
    raise typer.Exit(code)
