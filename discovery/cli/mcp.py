"""`tradescout mcp`: serve tradescout's tools to an AI assistant over stdio (MCP).

Thin: load the settings once (a broken config is the usual exit 2 before anything is served),
give the server the hooks only the CLI may provide, and run it until the client hangs up.
stdout belongs to the protocol from then on; diagnostics go to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from discovery.cli.common import ConfigOption, DataRootOption, settings_from, upstream_for
from discovery.errors import InputError
from discovery.settings import Settings

REFRESH_TIMEOUT_S = 6 * 3600


def services_probe(settings: Settings) -> dict[str, Any]:
    """The `services` rows, each with the latest `doctor` verdict kept in state/ (`doctor: null`
    before doctor has run there). No probe is sent from here."""
    from discovery.cli.doctor import doctor_verdicts

    body = doctor_verdicts(settings)
    probed = any(row.get("doctor") for row in body["services"])
    return {"source": "doctor" if probed else "services", **body}


def refresh_runner(config: Path | None) -> Any:
    """The real refresh, as `tradescout refresh --json` in a child process: the same lock,
    report file and ledger row as the command, and its stdout kept off the protocol's."""

    def run(settings: Settings, portfolios: list[str]) -> Any:
        args = [sys.executable, "-m", "discovery.cli", "refresh", "--json"]
        args += ["--data-root", str(settings.data_root)]
        if config is not None:
            args += ["--config", str(config)]
        proc = subprocess.run(
            [*args, *portfolios],
            capture_output=True,
            text=True,
            timeout=REFRESH_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        try:
            body = json.loads(proc.stdout)
        except ValueError:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"refresh failed (exit {proc.returncode}): {last[:200]}") from None
        if isinstance(body, dict) and "error" in body:
            raise InputError(str(body["error"]))
        return {"exit_code": proc.returncode, **body} if isinstance(body, dict) else body

    return run


def mcp_command(data_root: DataRootOption = None, config: ConfigOption = None) -> None:
    """Serve inventory, discover, report_section, ticker, history, cache_report, services and
    refresh as MCP tools over stdio (for Claude Code, Claude Desktop and other MCP clients)."""
    from discovery.mcp.server import Hooks, build_server

    settings = settings_from(data_root, config)
    hooks = Hooks(
        open_upstream=upstream_for,
        services=services_probe,
        run_refresh=refresh_runner(config),
    )
    build_server(settings, hooks).run("stdio")
