"""`tradescout`: the command line. Thin: parse flags, call the pipeline, print.

Each command lives in its own module; this one wires them into one typer app.
"""

from __future__ import annotations

import sys

import typer

from discovery.cli.cache import cache_app
from discovery.cli.common import stderr
from discovery.cli.discover import discover
from discovery.cli.inventory import inventory
from discovery.cli.refresh import refresh
from discovery.cli.sandbox import sandbox_command
from discovery.cli.schedule import schedule_command
from discovery.cli.services import services
from discovery.errors import InputError, StorageError

app = typer.Typer(
    name="tradescout",
    help="Local-first discovery for a trader's trade history: what is known locally, what is "
    "missing, fetched once from public data services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command()(discover)
app.command()(inventory)
app.add_typer(cache_app, name="cache", help="Cache report, optimizer and integrity check.")
app.command()(refresh)
app.command("schedule", help="Print or install the nightly `refresh` schedule (cron/systemd).")(
    schedule_command
)
app.command("sandbox", help="Serve the simulated upstream services on loopback (foreground).")(
    sandbox_command
)
app.command()(services)


def main() -> None:
    """Console-script entry point: the exit codes of the README, no traceback for user errors."""
    try:
        app()
    except InputError as exc:
        stderr.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except StorageError as exc:
        stderr.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
