"""`tradescout view`: the report as one self-contained HTML page."""

from __future__ import annotations


def view_command() -> None:
    """Placeholder (being built)."""
