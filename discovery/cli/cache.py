"""`tradescout cache report | optimize | verify`.

Thin: resolve the data root, call the cache package, print. `report` always saves its JSON to
`outputs/cache_reports/cache_report_{YYYYMMDD}.json` (atomically), whatever it prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cache.atomic import atomic_write_json
from discovery.cli.common import (
    EXIT_GAPS,
    EXIT_OK,
    ConfigOption,
    DataRootOption,
    JsonOption,
    print_json,
    settings_from,
    stderr,
    stdout,
)

if TYPE_CHECKING:  # the cache package's report/optimize/verify load only for these commands
    from cache.optimize import OptimizeResult
    from cache.verify import VerifyResult

cache_app = typer.Typer(
    help="The service-namespaced disk cache: report, optimize, verify.",
    no_args_is_help=True,
    add_completion=False,
)

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Change nothing; print what would be reclaimed.")
]


def _now() -> datetime:
    return datetime.now(UTC)


def _cache_dir(data_root: Path | None, config: Path | None = None) -> tuple[Path, Path]:
    """(cache directory, cache report path for today)."""
    layout = settings_from(data_root, config).layout
    return layout.cache_dir, layout.cache_report_path(_now().date())


def _ledger_trend(root: Path) -> list[dict[str, Any]] | None:
    """Daily hit ratio of `discover` runs from the run ledger (None when there is no ledger)."""
    from discovery.layout import DataLayout
    from discovery.reading.ledger_trend import hit_ratio_trend

    trend, warning = hit_ratio_trend(DataLayout(root).state_dir)
    if warning:
        stderr.print(f"warning: {warning}", markup=False)
    return trend


HtmlOption = Annotated[
    bool, typer.Option("--html", help="Also write the report as an HTML page beside the JSON.")
]


@cache_app.command("report")
def report_command(
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    html: HtmlOption = False,
) -> None:
    """Measure the cache (read-only): entries, bytes, freshness, hit ratios, strays, advice."""
    cache_dir, report_path = _cache_dir(data_root, config)
    from cache.report import build_cache_report, render_cache_report

    report = build_cache_report(cache_dir, now=_now(), trend=_ledger_trend(cache_dir.parent))
    atomic_write_json(report_path, report)
    if html:
        from discovery.cli.view import write_page
        from discovery.view.cache_page import cache_page

        page = report_path.with_suffix(".html")
        size = write_page(page, cache_page(report))
        # under --json stdout stays one JSON document: the page's path goes to stderr
        (stderr if as_json else stdout).print(f"wrote {page} ({size / 1000:.1f} kB)", markup=False)
    if as_json:
        print_json(report)
        return
    stdout.print(render_cache_report(report))
    stdout.print(f"saved {report_path}", markup=False)


def _print_optimize(result: OptimizeResult) -> None:
    from cache.report import human_bytes

    verb = "would reclaim" if result.dry_run else "reclaimed"
    for ns in result.namespaces:
        stdout.print(
            f"{ns.service}: {verb} {ns.entries} entries "
            f"({ns.expired_entries} expired, {ns.culled_entries} over the size limit), "
            f"{ns.orphan_files} orphaned files, {human_bytes(ns.bytes)}",
            markup=False,
        )
    for stray in result.strays:
        action = "would remove" if result.dry_run else "removed"
        stdout.print(
            f"stray {stray.path} ({stray.kind}, {human_bytes(stray.bytes)}): {action}; {stray.why}",
            markup=False,
        )
    stdout.print(
        f"total: {verb} {result.entries} entries, {len(result.strays)} strays, "
        f"{human_bytes(result.bytes)}",
        markup=False,
    )
    for note in result.notes:
        stdout.print(note, markup=False)
    if result.disk_bytes_after is not None:
        stdout.print(
            f"on disk: {human_bytes(result.disk_bytes_before)} → "
            f"{human_bytes(result.disk_bytes_after)} (after vacuum)",
            markup=False,
        )


@cache_app.command("optimize")
def optimize_command(
    dry_run: DryRunOption = False,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove expired entries, cull namespaces over their size limit, remove strays, vacuum."""
    cache_dir, _ = _cache_dir(data_root, config)
    from cache.optimize import optimize

    result = optimize(cache_dir, now=_now(), dry_run=dry_run)
    if as_json:
        print_json(result.to_json())
    else:
        _print_optimize(result)


def _print_verify(result: VerifyResult) -> None:
    for ns in result.namespaces:
        stdout.print(
            f"{ns.service}: {ns.entries} entries, {ns.sound} sound, {ns.quarantined} quarantined",
            markup=False,
        )
    for q in result.quarantined:
        stdout.print(f"quarantined {q.service} {q.key}: {q.reason} → {q.path}", markup=False)
    stdout.print(
        "all entries are sound"
        if result.sound
        else f"{len(result.quarantined)} entries quarantined (never served again)",
        markup=False,
    )


@cache_app.command("verify")
def verify_command(
    data_root: DataRootOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Re-hash every entry; quarantine corrupted ones. Exit 0 all sound, 3 any quarantined."""
    cache_dir, _ = _cache_dir(data_root, config)
    from cache.verify import verify

    result = verify(cache_dir, now=_now())
    if as_json:
        print_json(result.to_json())
    else:
        _print_verify(result)
    raise typer.Exit(EXIT_OK if result.sound else EXIT_GAPS)
