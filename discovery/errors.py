"""Errors the user caused (exit 2) versus ones we did not expect (exit 1).

An `InputError` carries one sentence naming the file, row and column; the CLI prints it as-is and
exits 2. Nothing is written before an `InputError` can be raised. `echo` is how any value taken
from the user's input appears in such a sentence: quoted and capped, so a 1 MB cell cannot turn
one sentence into a megabyte of terminal output.
"""

from __future__ import annotations

from pathlib import Path

ECHO_CHARS = 80
"""At most this many characters of an input value appear in a message or a report field."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`value` for a message: text quoted, cut to `limit` characters with its full length said;
    a number as written (`0`, `inf`).

    Control characters (NUL, newlines) are shown escaped, so the sentence stays one line.
    """
    if isinstance(value, bool | int | float):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters (with `…`): for free text copied into a report field."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class InputError(Exception):
    """Bad input or usage: one clear sentence, exit code 2, nothing written."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column


class ConfigError(InputError):
    """The configuration (tradescout.toml or TRADESCOUT_* variables) is unusable."""


class StorageError(Exception):
    """The data root refused a write (disk full, read-only): one sentence, exit code 3.

    Raised only where nothing half-written is left behind (writes are atomic); what the run
    fetched and could cache stays in the cache.
    """

    exit_code = 3


def storage_sentence(path: Path, exc: OSError, what: str) -> StorageError | None:
    """The one sentence for a write the file system refused, or None for other errors."""
    from cache.errors import storage_fault

    fault = storage_fault(exc)
    if fault is None:
        return None
    fix = "free some space" if fault == "disk full" else "make it writable"
    return StorageError(f"{what} could not be written to {path} ({fault}): {fix} and run again.")
