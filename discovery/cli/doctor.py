"""`tradescout doctor`: one cheap probe per service, a verdict per line (the live canary)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from discovery.cli.common import (
    EXIT_GAPS,
    EXIT_OK,
    ConfigOption,
    DataRootOption,
    JsonOption,
    SandboxOption,
    fail,
    guarded,
    print_json,
    settings_from,
    stdout,
    upstream_for,
)

if TYPE_CHECKING:
    from discovery.settings import Settings

ServiceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--service", metavar="SERVICE", help="Probe only this service (repeatable; default all)."
    ),
]


def chosen_services(values: list[str]) -> list[str]:
    """`--service` names, checked, in the registry's order (none named: every service)."""
    from services.registry import SERVICE_NAMES

    unknown = [v for v in values if v not in SERVICE_NAMES]
    if unknown:
        fail(
            f"--service {unknown[0][:80]!r} is not a service: use one of "
            f"{', '.join(SERVICE_NAMES)}."
        )
    return [name for name in SERVICE_NAMES if not values or name in values]


def doctor(
    json_out: JsonOption = False,
    data_root: DataRootOption = None,
    sandbox: SandboxOption = False,
    config: ConfigOption = None,
    service: ServiceOption = None,
) -> None:
    """Probe every service once (key present — never shown —, verdict, latency, fix).

    Exit 0 when every configured service is ok, 3 otherwise, 2 on bad input.
    """
    from discovery.runs.doctor import run_doctor
    from services.probe import SKIPPED, healthy, verdict_rows

    # the first command a user runs: it may start a data root (its verdicts go to state/)
    settings = settings_from(data_root, config, must_exist=False)
    names = chosen_services(service or [])
    with upstream_for(settings, sandbox, offline=False) as target:
        results = guarded(lambda: asyncio.run(run_doctor(settings, target, services=names)))
    rows = verdict_rows(results)
    if json_out:
        print_json(rows)
    else:
        width = max(len(r["service"]) for r in rows)
        for r in rows:
            stdout.print(_line(r, width, skipped=r["verdict"] in SKIPPED))
        asked = [r for r in rows if r["verdict"] not in SKIPPED]
        ok = sum(1 for r in asked if r["ok"])
        stdout.print(
            f"{ok} of {len(asked)} configured services ok ({target.upstream})", markup=False
        )
    raise typer.Exit(EXIT_OK if healthy(results) else EXIT_GAPS)


def doctor_verdicts(settings: Settings) -> dict[str, Any]:
    """The MCP server's `services()`: every `services` row with the latest doctor verdict kept
    in state/ (`doctor: null` where doctor has not run). Reads files only: no probe is sent."""
    from discovery.cli.services import service_rows
    from discovery.runs.doctor import last_verdicts, with_verdicts

    upstream = "sandbox" if settings.sandbox_url else "live"
    kept = last_verdicts(settings.layout.state_dir, upstream)
    return {"upstream": upstream, "services": with_verdicts(service_rows(settings), kept)}


def _line(row: dict[str, object], width: int, *, skipped: bool) -> Text:
    """`service  verdict  latency  key  detail — fix`, on one line whatever the width."""
    verdict = str(row["verdict"])
    style = "green" if row["ok"] else ("dim" if skipped else "red")
    latency = row["latency_ms"]
    timing = f"{latency:>7.0f} ms" if isinstance(latency, float) else f"{'—':>10}"
    key = "key present" if row["key_present"] else "no key     "
    text = Text(no_wrap=True, overflow="ignore")
    text.append(f"{row['service']:<{width}}  ")
    text.append(f"{verdict:<16}", style=style)
    text.append(f" {timing}  {key}  {row['detail']}")
    if row["fix"]:
        text.append(f" — fix: {row['fix']}")
    return text
