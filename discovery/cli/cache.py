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
    fail,
    print_json,
    settings_from,
    stderr,
    stdout,
)
from discovery.errors import storage_sentence

if TYPE_CHECKING:  # the cache package's report/optimize/verify load only for these commands
    from rich.console import RenderableType

    from cache.disk.optimize import OptimizeResult
    from cache.disk.verify import VerifyResult

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
    from cache.report import build_cache_report

    report = build_cache_report(cache_dir, now=_now(), trend=_ledger_trend(cache_dir.parent))
    try:
        atomic_write_json(report_path, report)
    except OSError as exc:
        error = storage_sentence(report_path, exc, "the cache report")
        if error is None:
            raise
        fail(str(error), EXIT_GAPS)
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
    from cache.disk.optimize import optimize

    result = optimize(cache_dir, now=_now(), dry_run=dry_run)
    if as_json:
        print_json(result.to_json())
    else:
        _print_optimize(result)


def _print_verify(result: VerifyResult) -> None:
    for ns in result.namespaces:
        legacy = f", {ns.legacy} legacy" if ns.legacy else ""
        stdout.print(
            f"{ns.service}: {ns.entries} entries, {ns.sound} sound, "
            f"{ns.quarantined} quarantined{legacy}",
            markup=False,
        )
    for q in result.quarantined:
        where = q.path or "not kept (the quarantine is not a directory inside the cache root)"
        stdout.print(f"quarantined {q.service} {q.key}: {q.reason} → {where}", markup=False)
    for note in result.notes:
        stdout.print(note, markup=False)
    if result.legacy:
        stdout.print(
            f"{result.legacy} entries of an older envelope version: never served, fetched again "
            "when needed; `cache optimize` removes them",
            markup=False,
        )
    if result.sound:
        stdout.print("all entries are sound", markup=False)
    elif result.quarantined:
        stdout.print(
            f"{len(result.quarantined)} entries quarantined (never served again)", markup=False
        )


@cache_app.command("verify")
def verify_command(
    data_root: DataRootOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Re-hash every entry; quarantine corrupted ones. Exit 0 all sound, 3 any quarantined."""
    cache_dir, _ = _cache_dir(data_root, config)
    from cache.disk.verify import verify

    result = verify(cache_dir, now=_now())
    if as_json:
        print_json(result.to_json())
    else:
        _print_verify(result)
    raise typer.Exit(EXIT_OK if result.sound else EXIT_GAPS)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def render_cache_report(report: dict[str, Any]) -> RenderableType:
    """The human table for a TTY (the report itself is the dict `cache.report` builds)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cache.report import human_bytes

    table = Table(title=f"Cache report — {report['cache_root']}", title_justify="left")
    for column, justify in (
        ("namespace", "left"),
        ("entries", "right"),
        ("on disk", "right"),
        ("fresh", "right"),
        ("expired", "right"),
        ("never read", "right"),
        ("hit ratio (life / last run)", "right"),
        ("oldest → newest", "left"),
        ("corrupt", "right"),
        ("reclaimable", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, ns in report["namespaces"].items():
        last = ns["last_run"] or {}
        oldest = (ns["oldest_fetched_at"] or "—")[:10]
        newest = (ns["newest_fetched_at"] or "—")[:10]
        table.add_row(
            name,
            str(ns["entries"]),
            human_bytes(ns["disk_bytes"]),
            str(ns["fresh"]),
            str(ns["expired"]),
            str(ns["never_read"]),
            f"{_pct(ns['hit_ratio_lifetime'])} / {_pct(last.get('hit_ratio'))}",
            f"{oldest} → {newest}",
            str(ns["integrity_failures"]),
            human_bytes(ns["reclaimable"]["bytes"]),
        )
    t = report["totals"]
    table.add_section()
    table.add_row(
        "total",
        str(t["entries"]),
        human_bytes(t["disk_bytes"]),
        str(t["fresh"]),
        str(t["expired"]),
        str(t["never_read"]),
        _pct(t["hit_ratio_lifetime"]),
        "",
        str(t["integrity_failures"]),
        human_bytes(t["reclaimable_bytes"]),
    )
    lines = [Text("Recommendations:", style="bold")]
    lines += [Text(f"  • {line}") for line in report["recommendations"]]
    if report["strays"]:
        lines.append(Text("Strays:", style="bold"))
        lines += [
            Text(f"  • {s['path']} ({s['kind']}, {human_bytes(s['bytes'])}): {s['why']}")
            for s in report["strays"]
        ]
    trend = report.get("trend") or []
    if trend:
        lines.append(Text("Hit ratio of discover runs by day (run ledger):", style="bold"))
        for day in trend[-14:]:
            ratio = day.get("hit_ratio")
            shown = "n/a" if ratio is None else f"{ratio * 100:.0f}%"
            lines.append(
                Text(
                    f"  {day.get('day')}: {shown} ({day.get('runs')} runs, "
                    f"{day.get('cache_hits')} hits, {day.get('network_requests')} requests)"
                )
            )
    return Group(table, *lines)
