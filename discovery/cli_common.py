"""What every `tradescout` command shares: options, settings loading, output, exit codes.

Exit codes (DESIGN.md §4): 0 complete · 3 written with gaps · 2 bad input or usage · 1 unexpected.
An `InputError` is printed as its one sentence on stderr (no traceback) and exits 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from discovery.errors import InputError
from discovery.settings import Settings, load_settings

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

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one sentence on stderr and exit (no traceback)."""
    stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def settings_from(data_root: Path | None, config: Path | None = None, **extra: Any) -> Settings:
    try:
        return load_settings(config, data_root=data_root, **extra)
    except InputError as exc:
        fail(str(exc))


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body: bad input → exit 2 with its sentence; anything else propagates."""
    try:
        return fn()
    except InputError as exc:
        fail(str(exc))


def print_json(obj: Any) -> None:
    """JSON on stdout, nothing else (for `--json`)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
