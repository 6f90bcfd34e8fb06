"""The command table, the root command and the exit path of `tradescout`.

Each command lives in its own module; this one wires them into one typer app and owns the exit
path: usage errors, `InputError`s and (under `--json`) their JSON twin on stdout. The entry
point itself (`discovery.cli.main`) imports this module only once the collector is off.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from contextlib import AbstractContextManager
from functools import cache
from typing import Annotated, NamedTuple

import typer

from discovery import __version__
from discovery.cli.common import (
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    print_json,
    report_error,
    set_json_errors,
    wants_json,
)
from discovery.errors import InputError, StorageError


class _Command(NamedTuple):
    module: str  # discovery.cli.<module>
    attr: str  # the command function, or a typer app for a group
    help: str | None = None  # None: the function's docstring
    group: bool = False


# Every command, in `--help` order. A run imports and builds only the command it names (typer
# reads every signature to build a command; all of them cost ~45 ms of a ~0.5 s warm run).
COMMANDS: dict[str, _Command] = {
    "discover": _Command("discover", "discover"),
    "inventory": _Command("inventory", "inventory"),
    "report": _Command(
        "report",
        "report_command",
        "Read the latest report: overview, one section, one ticker, history.",
    ),
    "view": _Command(
        "view", "view_command", "Write the report as one self-contained HTML page (no network)."
    ),
    "cache": _Command(
        "cache", "cache_app", "Cache report, optimizer and integrity check.", group=True
    ),
    "refresh": _Command("refresh", "refresh"),
    "schedule": _Command(
        "schedule",
        "schedule_command",
        "Print or install the nightly `refresh` schedule (cron/systemd).",
    ),
    "sandbox": _Command(
        "sandbox",
        "sandbox_command",
        "Serve the simulated upstream services on loopback (foreground).",
    ),
    "services": _Command("services", "services"),
    "doctor": _Command(
        "doctor",
        "doctor",
        "Probe every service once: verdict, latency and fix per line (the live canary).",
    ),
    "mcp": _Command(
        "mcp", "mcp_command", "Serve tradescout's tools to an AI assistant (MCP over stdio)."
    ),
}


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"tradescout {__version__}\n")
        raise typer.Exit(0)


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


def build_app(names: tuple[str, ...] = tuple(COMMANDS)) -> typer.Typer:
    """The typer app with the named commands (all of them by default), in table order."""
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
    app.callback()(root)
    for name, command in COMMANDS.items():
        if name not in names:
            continue
        target = getattr(importlib.import_module(f"discovery.cli.{command.module}"), command.attr)
        if command.group:
            app.add_typer(target, name=name, help=command.help)
        else:
            app.command(name, help=command.help)(target)
    return app


@cache
def full_app() -> typer.Typer:
    return build_app()


def _app_for(args: list[str]) -> typer.Typer:
    """Only the command the line names when it starts with one; the full app otherwise (root
    `--help`, `--version`, an unknown command: typer's own messages list every command)."""
    if args and args[0] in COMMANDS:
        return build_app((args[0],))
    return full_app()


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


def run(args: list[str], importing: AbstractContextManager[object] | None = None) -> None:
    """Run the command line `args`, exiting with the README's codes (`SystemExit`); `importing`
    is entered around building the app, which imports the command's module."""
    set_json_errors(wants_json(args))
    try:
        with importing or contextlib.nullcontext():
            app = _app_for(args)
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
