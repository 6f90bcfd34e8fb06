"""The Claude Code plugin as Claude Code reads it: the manifest, the marketplace entry, the MCP
config and every slash command's YAML frontmatter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMMANDS = sorted((REPO / "commands").glob("*.md"))
# The one subcommand each command needs (plus `tradescout report` where it reads a report).
ALLOWED = {
    "trade_history_discover.md": {"tradescout discover", "tradescout report"},
    "trade_history_report.md": {"tradescout report"},
    "trade_history_view.md": {"tradescout view"},
    "cache_report.md": {
        "tradescout cache report",
        "tradescout cache optimize --dry-run",
        "tradescout report",
    },
    "refresh.md": {"tradescout refresh", "tradescout report"},
}


def frontmatter(path: Path) -> tuple[str, dict[str, Any], str]:
    text = path.read_text("utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, f"{path.name}: no YAML frontmatter"
    meta = yaml.safe_load(match[1])
    assert isinstance(meta, dict)
    return match[1], meta, match[2]


def test_manifest_and_marketplace() -> None:
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", manifest["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["description"]
    assert (REPO / manifest["commands"]).resolve() == (REPO / "commands").resolve()
    assert (REPO / manifest["mcpServers"]).resolve() == (REPO / ".mcp.json").resolve()
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert market["name"] and market["owner"]["name"]
    assert [p["name"] for p in market["plugins"]] == [manifest["name"]]
    assert (REPO / market["plugins"][0]["source"] / ".claude-plugin" / "plugin.json").is_file()


def test_mcp_json_starts_tradescout_mcp() -> None:
    servers = json.loads((REPO / ".mcp.json").read_text())["mcpServers"]
    server = servers["tradescout"]
    assert server["command"] in ("tradescout", "${TRADESCOUT_BIN:-tradescout}")
    assert server["args"] == ["mcp"]
    assert all(isinstance(v, str) for v in server.get("env", {}).values())


def test_every_command_is_listed() -> None:
    assert {p.name for p in COMMANDS} == set(ALLOWED)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.name)
def test_command_frontmatter(path: Path) -> None:
    raw, meta, body = frontmatter(path)
    for key in ("description", "argument-hint", "allowed-tools"):
        assert isinstance(meta[key], str) and meta[key], f"{path.name}: {key}"
        assert re.search(rf'^{key}: ".*"$', raw, re.M), f"{path.name}: {key} is not quoted"
    patterns = [p.strip() for p in meta["allowed-tools"].split(",")]
    scoped = set()
    for pattern in patterns:
        match = re.fullmatch(r"Bash\((tradescout [^:*]+):\*\)", pattern)
        assert match, f"{path.name}: {pattern!r} is not one scoped tradescout subcommand"
        scoped.add(match[1])
    assert scoped == ALLOWED[path.name]
    assert "command not found" in body
    assert "$ARGUMENTS" in body
    if path.name == "refresh.md":
        assert meta["disable-model-invocation"] is True
    else:
        assert not meta.get("disable-model-invocation")
    if path.name in ("trade_history_discover.md", "refresh.md"):
        assert "timeout of 600000 ms" in " ".join(body.split())
