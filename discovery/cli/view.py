"""`tradescout view`: the latest report as one self-contained HTML page (no network at view
time), written atomically beside the report unless `--output` says where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discovery.cli.common import (
    ConfigOption,
    DataRootOption,
    JsonOption,
    PortfolioArg,
    guarded,
    print_json,
    settings_from,
    stderr,
    stdout,
)


def write_page(path: Path, html: str) -> int:
    """Write atomically; the page's size in bytes."""
    from cache.atomic import atomic_write_bytes

    data = html.encode("utf-8")
    atomic_write_bytes(path, data)
    return len(data)


def view_command(
    portfolio: PortfolioArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the page (default: beside the report)."
        ),
    ] = None,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write PORTFOLIO's latest report as an HTML page: coverage, positions, equity, usage."""
    from discovery.reading.closed_trades import closed_trades
    from discovery.reading.history import latest_report, load_report
    from discovery.reading.ledger_trend import hit_ratio_trend
    from discovery.view.page import report_page

    layout = settings_from(data_root, config).layout
    ref = guarded(lambda: latest_report(layout, portfolio))
    report = guarded(lambda: load_report(ref))
    trades, source = closed_trades(report, ref.path)
    trend, warning = hit_ratio_trend(layout.state_dir)
    if warning:
        stderr.print(f"warning: {warning}", markup=False)
    html = report_page(report, trades=trades, trades_source=source, trend=trend)
    path = output or ref.path.with_suffix(".html")
    size = guarded(lambda: _write(path, html))
    if json_out:
        print_json({"path": str(path), "bytes": size})
    else:
        stdout.print(f"wrote {path} ({size / 1000:.1f} kB; open it in any browser)", markup=False)


def _write(path: Path, html: str) -> int:
    from discovery.errors import InputError

    try:
        return write_page(path, html)
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror}).", path=path) from None
