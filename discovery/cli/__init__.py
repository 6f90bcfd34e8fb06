"""`tradescout`: the command line. Thin: parse flags, call the pipeline, print.

Each command lives in its own module; this one wires them into one typer app and owns the exit
path: usage errors, `InputError`s and (under `--json`) their JSON twin on stdout.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from discovery import __version__
from discovery.cli.cache import cache_app
from discovery.cli.common import (
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    print_json,
    report_error,
    set_json_errors,
    wants_json,
)
from discovery.cli.discover import discover
from discovery.cli.doctor import doctor
from discovery.cli.inventory import inventory
from discovery.cli.mcp import mcp_command
from discovery.cli.refresh import refresh
from discovery.cli.report import report_command
from discovery.cli.sandbox import sandbox_command
from discovery.cli.schedule import schedule_command
from discovery.cli.services import services
from discovery.cli.view import view_command
from discovery.errors import InputError, StorageError

app = typer.Typer(
    name="tradescout",
    help="Local-first discovery for a trader's trade history: what is known locally, what is "
    "missing, fetched once from public data services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"tradescout {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            is_eager=True,
            callback=_show_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Local-first discovery for a trader's trade history."""


app.command()(discover)
app.command()(inventory)
app.command("report", help="Read the latest report: overview, one section, one ticker, history.")(
    report_command
)
app.command("view", help="Write the report as one self-contained HTML page (no network).")(
    view_command
)
app.add_typer(cache_app, name="cache", help="Cache report, optimizer and integrity check.")
app.command()(refresh)
app.command("schedule", help="Print or install the nightly `refresh` schedule (cron/systemd).")(
    schedule_command
)
app.command("sandbox", help="Serve the simulated upstream services on loopback (foreground).")(
    sandbox_command
)
app.command()(services)
app.command(help="Probe every service once: verdict, latency and fix per line (the live canary).")(
    doctor
)
app.command("mcp", help="Serve tradescout's tools to an AI assistant (MCP over stdio).")(
    mcp_command
)


def _usage_error(exc: typer.TyperException) -> int:
    """The parser's own usage errors (unknown option, missing argument, bad value): its message
    and usage line on stderr as usual, and under `--json` the message as JSON on stdout."""
    code = int(getattr(exc, "exit_code", EXIT_USAGE))
    if type(exc).__name__ != "NoArgsIsHelpError" and wants_json(sys.argv[1:]):
        message = getattr(exc, "format_message", lambda: str(exc))()
        print_json({"error": message, "exit_code": code})
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        sys.stderr.write(f"error: {exc}\n")
    return code


def main() -> None:
    """Console-script entry point: the exit codes of the README, no traceback for user errors."""
    args = sys.argv[1:]
    set_json_errors(wants_json(args))
    try:
        code = app(args=args, standalone_mode=False)
    except typer.TyperException as exc:
        sys.exit(_usage_error(exc))
    except InputError as exc:
        report_error(str(exc), EXIT_USAGE)
        sys.exit(EXIT_USAGE)
    except StorageError as exc:
        report_error(str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:
        if wants_json(args):
            print_json({"error": f"unexpected {type(exc).__name__}", "exit_code": EXIT_UNEXPECTED})
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
