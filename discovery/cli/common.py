"""What every `tradescout` command shares: options, settings loading, output, exit codes.

Exit codes: 0 complete · 3 written with gaps · 2 bad input or usage · 1 unexpected.
An `InputError` is printed as its one sentence on stderr (no traceback) and exits 2; under
`--json` the same sentence also goes to stdout as `{"error": …, "exit_code": …}`, so a program
reading stdout always gets JSON.

When stdout is not a terminal (a pipe, an assistant's shell tool) tables are printed at their
full width: rich would otherwise assume 80 columns and cut cells to `output…`.

The data root is checked before a command does anything: it must exist and be a directory
(no command creates one: a mistyped `--data-root` is an error naming the path, never a new
tree).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from discovery.errors import InputError, StorageError, echo
from discovery.settings import Settings, load_settings
from discovery.upstream import Target

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_GAPS = 3

DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Data root (default ./data, or $TRADESCOUT_DATA_ROOT).",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="tradescout.toml to read (default ./tradescout.toml if present)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON on stdout (no progress, no colour).")
]

# Wide enough for any table we print; rich measures tables to their content, so this is the
# natural width, not padding.
PIPE_WIDTH = 10_000


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    # No emoji codes: data (cache keys, symbols, paths) is printed verbatim — rich would turn
    # a key's `:chart:` into an emoji.
    return Console(
        stderr=stderr,
        highlight=False,
        emoji=False,
        soft_wrap=True,
        width=None if tty else PIPE_WIDTH,
    )


class _LazyConsole:
    """A rich Console built on first use: a `--json` run never prints through rich, and rich
    costs ~20 ms to import (a warm run is ~0.5 s)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = _console(stderr=self._stderr)
        return getattr(self._console, name)


stderr: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]
stdout: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
_json_errors = False


def wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON output (`--json` before any `--`)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def set_json_errors(enabled: bool) -> None:
    """Set once by `main()` from the command line: errors are then JSON on stdout as well."""
    global _json_errors
    _json_errors = enabled


def report_error(message: str, code: int) -> None:
    """The error sentence on stderr; under `--json` also `{"error", "exit_code"}` on stdout."""
    from rich.markup import escape

    stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if _json_errors:
        print_json({"error": message, "exit_code": code})


T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one sentence on stderr (and as JSON under `--json`) and exit (no traceback)."""
    report_error(message, code)
    raise typer.Exit(code)


FLAG_NAMES: dict[str, str] = {
    "data_root": "--data-root",
    "max_concurrency": "--max-concurrency",
    "memory_limit_mb": "--memory-limit-mb",
    "benchmark": "--benchmark",
}


def settings_from(
    data_root: Path | None,
    config: Path | None = None,
    *,
    must_exist: bool = True,
    **flags: Any,
) -> Settings:
    """Settings for a command (flags validated like every other source, one sentence each),
    then the up-front data-root check. Whether the data root takes writes is the run's own
    check (`runs.record.check_writable`: a read-only data root is exit 3, nothing fetched)."""
    try:
        settings = load_settings(config, flag_names=FLAG_NAMES, data_root=data_root, **flags)
        if must_exist:
            check_data_root(settings, data_root)
    except InputError as exc:
        fail(str(exc))
    return settings


def _root_source(flag: Path | None) -> str:
    if flag is not None:
        return "from --data-root"
    if os.environ.get("TRADESCOUT_DATA_ROOT"):
        return "from TRADESCOUT_DATA_ROOT"
    return "the default, ./data"


def check_data_root(settings: Settings, flag: Path | None = None) -> None:
    """The data root exists and is a directory: no command creates one, so a mistyped
    `--data-root` is a sentence naming the path, never a new tree."""
    root = settings.data_root
    how = "point at yours with --data-root PATH or TRADESCOUT_DATA_ROOT"
    try:
        root.stat()
    except FileNotFoundError:
        raise InputError(
            f"Data root {root} ({_root_source(flag)}) does not exist; {how}.", path=root
        ) from None
    except OSError as exc:
        raise InputError(
            f"Data root {root} cannot be used ({exc.strerror or exc}); {how}.", path=root
        ) from None
    if not root.is_dir():
        raise InputError(
            f"Data root {root} ({_root_source(flag)}) is a file, not a folder; {how}.", path=root
        )


def check_number(flag: str, value: float | None, low: float, high: float) -> None:
    """A numeric option in range and finite, else one sentence (not click's usage block)."""
    if value is None:
        return
    if not math.isfinite(value) or not low <= value <= high:
        fail(f"{flag} {echo(value)} is out of range: use a number from {low:g} to {high:g}.")


def check_names(names: list[str]) -> None:
    """Portfolio names given on the command line, validated before any lock or file is taken."""
    from discovery.layout import check_portfolio_name

    for name in names:
        try:
            check_portfolio_name(name)
        except InputError as exc:
            fail(str(exc))


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body: bad input → exit 2 with its sentence, a data root that refuses
    writes → exit 3 with its sentence; anything else propagates."""
    try:
        return fn()
    except InputError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(str(exc), EXIT_GAPS)


def print_json(obj: Any) -> None:
    """JSON on stdout, nothing else (for `--json`)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run each portfolio as a task on the Dask cluster at tcp://HOST:PORT (workers read "
        "API keys and TRADESCOUT_REDIS_URL from their own environment).",
        show_default=False,
    ),
]
ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Start a Dask cluster of N process workers on 127.0.0.1 for this command: local:N.",
        show_default=False,
    ),
]
PortfolioArg = Annotated[
    str,
    typer.Argument(
        metavar="PORTFOLIO",
        help="Portfolio name: raw/trade_history/NAME.csv or NAME_YYYYMMDD.csv",
    ),
]
SandboxOption = Annotated[
    bool,
    typer.Option(
        "--sandbox", help="Start the embedded simulator on loopback and point every service at it."
    ),
]
OfflineOption = Annotated[
    bool, typer.Option("--offline", help="No network at all: local files and the cache only.")
]


def today() -> datetime:
    """Now, in UTC (the run's clock for commands that only need a date)."""
    return datetime.now(UTC)


@contextlib.contextmanager
def upstream_for(
    settings: Settings, sandbox: bool, offline: bool, *, start: bool = True
) -> Iterator[Target]:
    """Decide live / sandbox / offline; start the embedded sandbox when asked (and needed:
    a dry run plans against the sandbox's cache keys but sends nothing). `--sandbox
    --offline` works offline over the sandbox's cache; plain `--offline` over live's."""
    if offline:
        yield (
            Target("sandbox", "http://127.0.0.1:0", offline=True)
            if sandbox
            else Target("live", offline=True)
        )
        return
    if sandbox and not start:
        yield Target("sandbox", "http://127.0.0.1:0")
        return
    if sandbox:  # started on the first request: a warm run never pays for the simulator
        from services.sandbox.lazy import LazySandbox

        with LazySandbox() as server:
            yield Target("sandbox", server.url)
        return
    if settings.sandbox_url:
        yield Target("sandbox", settings.sandbox_url)
        return
    yield Target("live")
