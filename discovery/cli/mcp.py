"""`tradescout mcp`: the MCP server over stdio."""

from __future__ import annotations


def mcp_command() -> None:
    """Placeholder (being built)."""
