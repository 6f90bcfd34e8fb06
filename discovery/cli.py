"""`tradescout`: the command line (DESIGN.md §4). Thin: parse flags, call the pipeline, print."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="tradescout",
    help="Local-first discovery for a trader's trade history.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
