"""The MCP server against the demo data root: the SDK's in-memory client for every tool and
resource, and one session with `tradescout mcp` as a real stdio subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from discovery.cli.common import upstream_for
from discovery.cli.mcp import refresh_runner, services_probe
from discovery.mcp.server import Hooks, build_server
from discovery.settings import load_settings
from services.sandbox.server import SandboxServer
from tests.conftest import TRADESCOUT, clean_env, listing, report_files, write_fast_config

TOOLS = {
    "inventory",
    "discover",
    "report_section",
    "ticker",
    "history",
    "cache_report",
    "services",
    "refresh",
}


def files(root: Path) -> dict[str, int]:
    """`listing` without SQLite's transient -wal/-shm files: a reader opening a database that
    another connection left them beside may fold them in on close (housekeeping, not a write)."""
    return {k: v for k, v in listing(root).items() if not k.endswith(("-wal", "-shm"))}


def server_for(root: Path, **settings: Any) -> Any:
    loaded = load_settings(settings.pop("config", None), data_root=root, **settings)
    return build_server(loaded, Hooks(upstream_for, services_probe, refresh_runner(None)))


async def call(root: Path, tool: str, **args: Any) -> tuple[bool, str]:
    async with Client(server_for(root)) as client:
        result = await client.call_tool(tool, args)
    text = result.content[0].text  # type: ignore[union-attr]
    return bool(result.is_error), text


async def test_tools_and_resources_are_listed(offline_report_root: Path) -> None:
    async with Client(server_for(offline_report_root)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates
        resources = (await client.list_resources()).resources
    assert set(tools) == TOOLS
    assert all(t.description for t in tools.values())
    assert tools["refresh"].input_schema["properties"]["dry_run"]["default"] is True
    assert [t.uri_template for t in templates] == ["tradescout://report/{portfolio}"]
    assert [str(r.uri) for r in resources] == ["tradescout://cache-report"]


async def test_inventory_is_small_and_complete(offline_report_root: Path) -> None:
    error, text = await call(offline_report_root, "inventory", portfolio="demo")
    assert not error and len(text) < 6000
    body = json.loads(text)
    assert body["coverage"] == {"with_analysis": 21, "total": 32, "ratio": 0.6562}
    assert len(body["tickers"]) == 32


async def test_report_section_is_bounded_unless_asked(
    offline_report_root: Path, offline_gaps: int
) -> None:
    error, text = await call(
        offline_report_root, "report_section", portfolio="demo", section="gaps"
    )
    assert not error and len(text) <= 6000
    cut = json.loads(text)
    assert f"of {offline_gaps} entries not shown" in cut[-1]
    _, text = await call(
        offline_report_root, "report_section", portfolio="demo", section="gaps", max_chars=60000
    )
    assert len(json.loads(text)) == offline_gaps
    _, text = await call(
        offline_report_root,
        "report_section",
        portfolio="demo",
        section="ticker_performance",
        ticker="msft",
    )
    assert list(json.loads(text)) == ["MSFT"]
    _, text = await call(offline_report_root, "report_section", portfolio="demo")
    assert json.loads(text)["sections"]["ticker_data"]["entries"] == 32


async def test_ticker_slice(offline_report_root: Path) -> None:
    error, text = await call(offline_report_root, "ticker", portfolio="demo", ticker="BRK-B")
    assert not error and len(text) < 6000
    body = json.loads(text)
    assert body["ticker"] == "BRK-B"
    assert body["local_analysis"]["file"].endswith("BRK-B_20261113.md")
    assert body["price_history"] is None
    assert {(g["service"], g["reason"]) for g in body["gaps"]} >= {("yahoo_finance", "offline")}


@pytest.mark.parametrize(
    ("tool", "args", "sentence"),
    [
        ("report_section", {"portfolio": "demo", "section": "nope"}, "No section 'nope'"),
        ("ticker", {"portfolio": "demo", "ticker": "ZZZZ"}, "is not in this report"),
        ("inventory", {"portfolio": "nope"}, "No portfolio 'nope'"),
        ("ticker", {"portfolio": "../x", "ticker": "A"}, "is not valid"),
        ("discover", {"portfolio": "demo", "timeframe": "2w"}, "timeframe '2w' is not valid"),
    ],
)
async def test_errors_are_tool_errors_with_one_sentence(
    offline_report_root: Path, tool: str, args: dict[str, Any], sentence: str
) -> None:
    before = files(offline_report_root)
    error, text = await call(offline_report_root, tool, **args)
    assert error and sentence in text
    assert "Traceback" not in text and "\n" not in text
    assert files(offline_report_root) == before


async def test_services_never_show_a_key(
    reported_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "SEKRETmcp42"
    monkeypatch.setenv("FMP_API_KEY", secret)
    error, text = await call(reported_root, "services")
    assert not error and secret not in text
    rows = {r["service"]: r for r in json.loads(text)["services"]}
    assert rows["fmp"]["key_present"] is True and rows["alpha_vantage"]["key_present"] is False


async def test_refresh_dry_run_fetches_and_writes_nothing(reported_root: Path) -> None:
    before = files(reported_root)
    error, text = await call(reported_root, "refresh")
    assert not error
    body = json.loads(text)
    # live, no keys: Yahoo (32 tickers + SPY + ^VIX), CoinGecko (price + global), IMF
    assert body["dry_run"] is True
    assert body["by_service"] == {"yahoo_finance": 34, "coingecko": 2, "imf": 1}
    assert body["not_planned_by_reason"]["not_configured"] > 0
    assert files(reported_root) == before


async def test_cache_report_and_resources(reported_root: Path) -> None:
    error, text = await call(reported_root, "cache_report")
    assert not error and len(text) < 6000
    saved = Path(json.loads(text)["saved"])
    assert saved.is_file() and saved.is_relative_to(reported_root)
    async with Client(server_for(reported_root)) as client:
        cache = await client.read_resource("tradescout://cache-report")
        latest = await client.read_resource("tradescout://report/demo")
    assert json.loads(cache.contents[0].text)["report_version"] == 1  # type: ignore[union-attr]
    report = json.loads(latest.contents[0].text)  # type: ignore[union-attr]
    assert report == json.loads(report_files(reported_root)[-1].read_text())


@pytest.mark.integration
async def test_discover_reports_progress_and_returns_the_outcome(
    reported_root: Path, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = write_fast_config(tmp_path / "fast.toml")
    server = server_for(reported_root, config=config, sandbox_url=fast_sandbox.url)
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with Client(server) as client:
        result = await client.call_tool(
            "discover", {"portfolio": "demo"}, progress_callback=progress
        )
    assert not result.is_error, result.content
    body = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert body["exit_code"] == 0 and len(result.content[0].text) < 6000  # type: ignore[union-attr]
    assert Path(body["report_path"]).is_file()
    reasons = {k.split(": ")[1] for k in body["gaps"]["by_service_reason"]}
    assert "sec_edgar: not_found" in body["gaps"]["by_service_reason"]  # MQG.AX has no CIK
    assert reasons <= {"not_found", "no_data", "not_applicable"}  # facts, not faults
    assert "upstream sandbox" in body["summary"]
    totals = [t for _, t, _ in seen if t]
    assert len(seen) >= 3 and totals
    assert seen[-1][0] == seen[-1][1] == totals[-1]
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


@pytest.mark.integration
async def test_stdio_subprocess_session(offline_report_root: Path) -> None:
    params = StdioServerParameters(
        command=str(TRADESCOUT),
        args=["mcp", "--data-root", str(offline_report_root)],
        env=clean_env(),
        cwd=str(offline_report_root.parent),
    )
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        answer = await client.call_tool("ticker", {"portfolio": "demo", "ticker": "NVDA"})
        bad = await client.call_tool("report_section", {"portfolio": "demo", "section": "x"})
    assert tools == TOOLS
    assert json.loads(answer.content[0].text)["performance"]["total_trades"] >= 1  # type: ignore[union-attr]
    assert bad.is_error and "sections: portfolio" in bad.content[0].text  # type: ignore[union-attr]
