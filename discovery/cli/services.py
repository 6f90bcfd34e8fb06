"""`tradescout services`: configured services, keys present (never shown), limits, quota."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from discovery.cli.common import (
    ConfigOption,
    DataRootOption,
    JsonOption,
    print_json,
    settings_from,
    stdout,
)
from discovery.settings import Settings


def services(
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Configured services: key present (never shown), limits, quota left, last breaker state."""
    rows = service_rows(settings_from(data_root, config))
    if json_out:
        print_json({"services": rows})
        return
    table = Table(title="Services")
    for col in ("service", "ready", "key", "rate/s", "quota/day", "used", "left", "breaker"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["service"],
            "yes" if r["configured"] and r["enabled"] else f"no ({r['reason'] or 'disabled'})",
            "present" if r["key_present"] else "—",
            f"{r['rate_per_second']:.2f}",
            "—" if r["daily_quota"] is None else str(r["daily_quota"]),
            str(r["quota_used_today"]),
            "—" if r["quota_left"] is None else str(r["quota_left"]),
            r["last_breaker_state"] or "—",
        )
    stdout.print(table)


def service_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per service: configured, key present (never the key), limits, quota, breaker."""
    from cache import open_cache
    from discovery.runs.ledger import Ledger, LedgerError
    from discovery.upstream import Target, service_configs
    from services.hub import ServiceHub

    layout = settings.layout
    target = Target("sandbox", settings.sandbox_url) if settings.sandbox_url else Target()
    configs = service_configs(settings, target)
    last_breaker: dict[str, str] = {}
    ledger_path = layout.state_dir / "ledger.sqlite"
    if ledger_path.is_file():
        try:
            with Ledger(ledger_path) as ledger:
                for run in reversed(ledger.recent_runs(20)):
                    for name, fig in run.per_service.items():
                        last_breaker[name] = str(fig.get("breaker_state") or "")
        except LedgerError:
            pass
    hub = ServiceHub(configs, open_cache(layout.cache_dir), layout.state_dir)
    rows: list[dict[str, Any]] = []
    for name in configs:
        st = hub.status(name)
        rows.append(
            {
                "service": name,
                "enabled": st.enabled,
                "configured": st.configured,
                "reason": st.reason,
                "key_present": st.has_credential,
                "upstream": st.upstream,
                "base_urls": dict(st.base_urls or {}),
                "rate_per_second": st.rate_per_second,
                "daily_quota": st.daily_quota,
                "quota_used_today": st.quota_used_today,
                "quota_left": st.quota_left,
                "max_connections": st.max_connections,
                "last_breaker_state": last_breaker.get(name),
            }
        )
    return rows
