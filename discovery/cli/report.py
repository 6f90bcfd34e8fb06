"""`tradescout report`: read what `discover` wrote, a part at a time (read-only).

Text output is bounded (`--max-chars`, default 6,000): a larger section or ticker slice is cut
at entry boundaries with a note saying how many entries were left out; `--json` prints the
whole part, unbounded, for programs.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from discovery.cli.common import (
    ConfigOption,
    DataRootOption,
    JsonOption,
    PortfolioArg,
    guarded,
    print_json,
    settings_from,
    stdout,
)
from discovery.reading.bounded import DEFAULT_LIMIT, bound
from discovery.reading.history import latest_report, list_history, load_report
from discovery.reading.slices import overview, section, section_for_ticker, ticker_slice

SectionOption = Annotated[
    str | None, typer.Option("--section", help="Print one top-level section (e.g. gaps).")
]
TickerOption = Annotated[
    str | None,
    typer.Option("--ticker", help="One ticker's slice (with --section: that section's entry)."),
]
ListOption = Annotated[bool, typer.Option("--list", help="List the report history, newest first.")]
MaxCharsOption = Annotated[
    int, typer.Option("--max-chars", min=500, help="Bound on text output (not on --json).")
]


def report_command(
    portfolio: PortfolioArg,
    section_name: SectionOption = None,
    ticker: TickerOption = None,
    list_: ListOption = False,
    max_chars: MaxCharsOption = DEFAULT_LIMIT,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """The latest report of PORTFOLIO: an overview, one --section, one --ticker, or --list."""
    layout = settings_from(data_root, config).layout
    if list_:
        source, rows = guarded(lambda: list_history(layout, portfolio))
        _print_history(portfolio, source, rows, json_out)
        return
    ref = guarded(lambda: latest_report(layout, portfolio))
    report = guarded(lambda: load_report(ref))
    part: Any
    if section_name is not None and ticker is not None:
        part = guarded(lambda: section_for_ticker(report, section_name, ticker))
    elif section_name is not None:
        part = guarded(lambda: section(report, section_name))
    elif ticker is not None:
        part = guarded(lambda: ticker_slice(report, ticker))
    else:
        _print_overview(report, str(ref.path), json_out)
        return
    if json_out:
        print_json(part)
        return
    hint = "--json prints all of it" + ("" if ticker else ", --ticker T one ticker's entry")
    text, cut = bound(part, max_chars, indent=2, hint=hint)
    stdout.print(text, markup=False, highlight=False)
    if cut:
        stdout.print(f"(cut to {max_chars} characters: {hint})", markup=False)


def _print_overview(report: dict[str, Any], path: str, json_out: bool) -> None:
    from discovery.report.summary import render_summary

    info = overview(report)
    try:
        summary = render_summary(report, path)
    except (KeyError, TypeError, ValueError, AttributeError):
        summary = None  # a report from another tool version: the overview still holds
    if json_out:
        print_json({"report_path": path, **info, "summary": summary})
        return
    if summary:
        stdout.print(summary, markup=False)
    else:
        stdout.print(f"Report: {path}", markup=False)
    sizes = ", ".join(f"{name} {s['chars']:,}" for name, s in info["sections"].items())
    stdout.print(f"Sections (characters): {sizes}", markup=False)
    stdout.print(
        f"Read one: tradescout report {info['portfolio']} --section NAME | --ticker SYMBOL",
        markup=False,
    )


def _print_history(portfolio: str, source: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json({"portfolio": portfolio, "source": source, "reports": rows})
        return
    if not rows:
        stdout.print(f"No reports for {portfolio!r} yet.", markup=False)
        return
    table = Table(title=f"Reports · {portfolio} ({source}, newest first)")
    for col in ("date", "run", "upstream", "confidence", "gaps", "path"):
        table.add_column(col)
    for r in rows:
        conf = r["confidence_score"]
        table.add_row(
            r["date"] or "",
            r["run_id"] or "",
            r["upstream"] or ("unreadable" if not r["readable"] else ""),
            "" if conf is None else f"{conf:.2f}",
            "" if r["gaps"] is None else str(r["gaps"]),
            r["path"],
        )
    stdout.print(table)
