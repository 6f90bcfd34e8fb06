"""tradescout's tools for an AI assistant, over the Model Context Protocol (official `mcp` SDK).

Few and coarse, as an assistant's context is small: each answer is compact JSON under
`max_chars` (6,000 unless the caller asks for more), cut at entry boundaries with a note when
larger (`discovery.reading.bounded`). A bad argument or a missing report is a tool error whose
text is the same one sentence the CLI prints; nothing reaches the client as a traceback.

The CLI injects what only it may do (`Hooks`): start the embedded sandbox (nothing else in the
product imports it), run the real refresh, and answer `services()` — with the `doctor` verdicts
once that command exists (the hook is the seam: `cli/mcp.py` picks the probe).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from discovery import __version__
from discovery.errors import InputError
from discovery.reading import slices
from discovery.reading.bounded import DEFAULT_LIMIT, bound
from discovery.reading.history import latest_report, list_history, load_json_file, load_report
from discovery.settings import Settings
from discovery.upstream import Target
from services.recordclass import record

log = logging.getLogger("tradescout.mcp")
P = ParamSpec("P")

UpstreamOpener = Callable[[Settings, bool, bool], AbstractContextManager[Target]]

INSTRUCTIONS = (
    "tradescout finds what is known about a portfolio's traded tickers (local analysis files, "
    "a disk cache, public data services) and writes a discovery report. Start with "
    "`report_section(portfolio, 'next_phase_inputs')` or `ticker(portfolio, T)` to read an "
    "existing report; call `discover` only when there is none or it is stale (a cold run over "
    "many tickers takes minutes). Answers are small; ask for max_chars to get more. A value "
    "the report lacks is listed as a gap: never fill it in."
)
PROGRESS_EVERY_S = 0.25
FIRST_GAPS = 10


@record
class Hooks:
    open_upstream: UpstreamOpener
    services: Callable[[Settings], Any]
    run_refresh: Callable[[Settings, list[str]], Any]


def _answer(value: Any, max_chars: int, hint: str) -> str:
    text, _ = bound(value, max(500, max_chars), hint=hint)
    return text


def _tool_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """Every failure becomes a tool error with one sentence (never a traceback)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except InputError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:
            log.warning("tool %s failed: %s: %s", fn.__name__, type(exc).__name__, exc)
            raise ToolError(
                f"unexpected {type(exc).__name__} in {fn.__name__}: {str(exc)[:200]}"
            ) from None

    return wrapper


class _Progress:
    """Counts the pipeline's request events; the pump turns them into MCP progress."""

    def __init__(self) -> None:
        self.planned = 0
        self.finished = 0
        self.changes = 0

    def hook(self, service: str, event: str) -> None:
        if event == "planned":
            self.planned += 1
        else:
            self.finished += 1
        self.changes += 1

    async def pump(self, ctx: Context, done: anyio.Event) -> None:
        seen = -1
        await ctx.report_progress(0, None, "reading the trade history and local files")
        while not done.is_set():
            if self.changes != seen:
                seen = self.changes
                await ctx.report_progress(
                    self.finished, self.planned or None, f"{self.finished}/{self.planned} requests"
                )
            with anyio.move_on_after(PROGRESS_EVERY_S):
                await done.wait()


def _gap_digest(gaps: list[dict[str, Any]]) -> dict[str, Any]:
    by_reason = Counter(f"{g.get('service') or '-'}: {g.get('reason')}" for g in gaps)
    return {
        "count": len(gaps),
        "by_service_reason": dict(by_reason.most_common()),
        "first": [{k: v for k, v in g.items() if v is not None} for g in gaps[:FIRST_GAPS]],
    }


class Tools:
    """The tool bodies, bound to one data root's settings and the CLI's hooks."""

    def __init__(self, settings: Settings, hooks: Hooks) -> None:
        self.settings = settings
        self.hooks = hooks

    @property
    def layout(self) -> Any:
        return self.settings.layout

    async def inventory(self, portfolio: str, max_chars: int = DEFAULT_LIMIT) -> str:
        """Local coverage per ticker of PORTFOLIO (analysis file, its age, recommendation,
        sector) and what is missing. Reads local files only: no network."""
        from discovery.cli.inventory import inventory_rows
        from discovery.runs.discover import load_local

        _, book, inv, _ = load_local(self.settings, portfolio, datetime.now(UTC).date())
        coverage = inv.to_report_section()["fundamental_analysis"].get("coverage", {})
        rows = [{k: v for k, v in r.items() if v is not None} for r in inventory_rows(book, inv)]
        body = {"portfolio": portfolio, "coverage": coverage, "tickers": rows}
        return _answer(body, max_chars, "raise max_chars for the rest")

    async def discover(
        self,
        ctx: Context,
        portfolio: str,
        timeframe: str = "all",
        offline: bool = False,
        sandbox: bool = False,
    ) -> str:
        """Run the whole discovery for PORTFOLIO and write its report (minutes when the cache is
        cold; progress is reported). Returns exit_code (0 complete, 3 written with gaps),
        report_path, the short summary and the gaps by service and reason. `sandbox` uses the
        bundled simulator (synthetic data), `offline` local files and the cache only (with
        `sandbox`: the sandbox's cache)."""
        from discovery.plan.needs import TIMEFRAMES
        from discovery.runs.discover import DiscoverOptions, discover_async

        if timeframe not in TIMEFRAMES:
            raise InputError(
                f"timeframe {timeframe!r} is not valid; use one of {', '.join(TIMEFRAMES)}."
            )
        progress = _Progress()
        done = anyio.Event()
        with self.hooks.open_upstream(self.settings, sandbox, offline) as target:
            options = DiscoverOptions(portfolio=portfolio, target=target, timeframe=timeframe)
            failure: Exception | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(progress.pump, ctx, done)
                try:
                    outcome = await discover_async(self.settings, options, progress=progress.hook)
                except Exception as exc:  # re-raised below, outside the task group
                    failure = exc
                finally:
                    done.set()
        if failure is not None:
            raise failure
        await ctx.report_progress(progress.finished, progress.planned or None, "report written")
        report = outcome.report or {}
        body = {
            "exit_code": outcome.exit_code,
            "report_path": str(outcome.report_path),
            "summary": outcome.summary,
            "gaps": _gap_digest(list(report.get("gaps") or [])),
        }
        return _answer(body, DEFAULT_LIMIT, "read the report's gaps section for all of them")

    async def report_section(
        self,
        portfolio: str,
        section: str | None = None,
        ticker: str | None = None,
        max_chars: int = DEFAULT_LIMIT,
    ) -> str:
        """One top-level section of PORTFOLIO's latest report (e.g. gaps, active_positions,
        next_phase_inputs, performance_metrics), narrowed to one ticker when given. Without a
        section: what the report holds (each section's size) and where it is."""
        ref = latest_report(self.layout, portfolio)
        report = load_report(ref)
        if section is None:
            value: Any = {"report_path": str(ref.path), **slices.overview(report)}
        elif ticker is not None:
            value = slices.section_for_ticker(report, section, ticker)
        else:
            value = slices.section(report, section)
        return _answer(value, max_chars, "raise max_chars, or pass a ticker")

    async def ticker(self, portfolio: str, ticker: str, max_chars: int = DEFAULT_LIMIT) -> str:
        """Everything PORTFOLIO's latest report says about one ticker: trades and performance,
        open positions, local analysis, profile, price summary, filings, provenance, gaps."""
        report = load_report(latest_report(self.layout, portfolio))
        return _answer(
            slices.ticker_slice(report, ticker), max_chars, "raise max_chars for the rest"
        )

    async def history(self, portfolio: str, max_chars: int = DEFAULT_LIMIT) -> str:
        """PORTFOLIO's reports, newest first: date, run, upstream, confidence, gaps, path."""
        source, rows = list_history(self.layout, portfolio)
        return _answer({"source": source, "reports": rows}, max_chars, "raise max_chars")

    async def cache_report(self, max_chars: int = DEFAULT_LIMIT) -> str:
        """Measure the disk cache (read-only scan): per service entries, size, fresh/expired,
        hit ratios, integrity, reclaimable space, advice, and the daily hit-ratio trend. Saves
        the full report under outputs/cache_reports/ like `tradescout cache report`."""
        from cache.atomic import atomic_write_json
        from cache.report import build_cache_report
        from discovery.reading.ledger_trend import hit_ratio_trend

        layout = self.layout
        if not layout.root.is_dir():
            raise InputError(f"Data root {layout.root} does not exist.", path=layout.root)
        now = datetime.now(UTC)
        trend, _ = hit_ratio_trend(layout.state_dir)
        report = build_cache_report(layout.cache_dir, now=now, trend=trend)
        path = layout.cache_report_path(now.date())
        atomic_write_json(path, report)
        keep = ("entries", "disk_bytes", "fresh", "expired", "negative", "integrity_failures")
        body = {
            "saved": str(path),
            "totals": report["totals"],
            "namespaces": {
                name: {
                    **{k: ns[k] for k in keep},
                    "hit_ratio_lifetime": ns["hit_ratio_lifetime"],
                    "hit_ratio_last_run": (ns.get("last_run") or {}).get("hit_ratio"),
                    "reclaimable_bytes": ns["reclaimable"]["bytes"],
                }
                for name, ns in report["namespaces"].items()
            },
            "recommendations": report["recommendations"],
            "trend": report["trend"][-14:],
        }
        return _answer(body, max_chars, "the saved file has every figure")

    async def services(self, max_chars: int = DEFAULT_LIMIT) -> str:
        """The services: configured or not (and why), key present (never the key), limits,
        quota used and left today, last breaker state."""
        return _answer(self.hooks.services(self.settings), max_chars, "raise max_chars")

    async def refresh(
        self,
        dry_run: bool = True,
        portfolios: list[str] | None = None,
        horizon_hours: float = 12.0,
        max_chars: int = DEFAULT_LIMIT,
    ) -> str:
        """The nightly cache refresh. With dry_run (the default): what it would fetch now within
        each service's nightly budget, fetching nothing. dry_run=false runs it (one at a time;
        minutes for a large portfolio)."""
        from discovery.runs.refresh import preview_refresh

        names = list(portfolios or [])
        if not dry_run:
            return _answer(self.hooks.run_refresh(self.settings, names), max_chars, "see report")
        body = preview_refresh(
            self.settings,
            names,
            target=Target("sandbox", self.settings.sandbox_url)
            if self.settings.sandbox_url
            else Target("live"),
            horizon=timedelta(hours=horizon_hours),
            budgets=None,
            now=datetime.now(UTC),
        )
        return _answer(body, max_chars, "raise max_chars")

    # -- resources ----------------------------------------------------------------------------

    def latest_report_resource(self, portfolio: str) -> str:
        try:
            ref = latest_report(self.layout, portfolio)
            return ref.path.read_text("utf-8")
        except (InputError, OSError) as exc:
            raise ResourceError(str(exc)) from None

    def cache_report_resource(self) -> str:
        """The newest saved cache report (run the cache_report tool to make a new one)."""
        from discovery.reading.bounded import dumps

        folder = self.layout.cache_reports_dir
        files = sorted(folder.glob("cache_report_*.json")) if folder.is_dir() else []
        if not files:
            raise ResourceError(
                f"No cache report in {folder}; call the cache_report tool to make one."
            )
        try:
            return dumps(load_json_file(files[-1], "cache report"))
        except InputError as exc:
            raise ResourceError(str(exc)) from None


def build_server(settings: Settings, hooks: Hooks) -> MCPServer:
    """The server with every tool and resource registered (transport-agnostic)."""
    server: MCPServer = MCPServer(
        "tradescout", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    tools = Tools(settings, hooks)
    for name in (
        "inventory",
        "discover",
        "report_section",
        "ticker",
        "history",
        "cache_report",
        "services",
        "refresh",
    ):
        fn = _tool_errors(getattr(tools, name))
        server.add_tool(fn, name=name, structured_output=False)
    resources = (
        (
            "tradescout://report/{portfolio}",
            "latest_report",
            "The latest discovery report of a portfolio (the whole JSON: large).",
            tools.latest_report_resource,
        ),
        (
            "tradescout://cache-report",
            "cache_report",
            "The newest saved cache report (JSON).",
            tools.cache_report_resource,
        ),
    )
    for uri, name, description, read in resources:
        server.resource(uri, name=name, description=description, mime_type="application/json")(read)
    return server
