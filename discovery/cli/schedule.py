"""`tradescout schedule`: print, install or remove the nightly `refresh` (discovery.runs.schedule).

Exit codes: 0 done (also when the systemd units were written but systemctl could not enable the
timer: the note on stderr says what to run) · 2 bad `--at` or conflicting options · 1 when the
`crontab` command itself fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from discovery.cli.common import (
    EXIT_UNEXPECTED,
    ConfigOption,
    DataRootOption,
    fail,
    guarded,
    settings_from,
)
from discovery.runs.schedule import (
    DEFAULT_AT,
    Outcome,
    ScheduleError,
    build_job,
    install_cron,
    install_systemd,
    parse_at,
    render_crontab_line,
    render_systemd_units,
    systemd_user_dir,
    uninstall,
)


class InstallTarget(StrEnum):
    cron = "cron"
    systemd = "systemd"


def _config_in_effect(explicit: Path | None) -> Path | None:
    """The config file the settings loader would read now, made absolute for the job."""
    if explicit is not None:
        return explicit.resolve()
    env = os.environ.get("TRADESCOUT_CONFIG")
    if env:
        return Path(env).resolve()
    local = Path("tradescout.toml")
    return local.resolve() if local.is_file() else None


def _env_file_hint(env_file: Path) -> str:
    return (
        f"API keys: scheduled runs do not see your shell's environment; they read NAME=value "
        f"lines from {env_file} (create it, mode 600) if you use keyed services."
    )


def _print_outcome(outcome: Outcome) -> None:
    for line in outcome.done:
        sys.stdout.write(line + "\n")
    for note in outcome.notes:
        sys.stderr.write(f"note: {note}\n")


def schedule_command(
    at: Annotated[
        str, typer.Option("--at", help="Time of day for the refresh, HH:MM (24 h, local time).")
    ] = DEFAULT_AT,
    print_: Annotated[
        bool, typer.Option("--print", help="Print the crontab line and systemd units (default).")
    ] = False,
    install: Annotated[
        InstallTarget | None,
        typer.Option("--install", help="Install for the current user: cron or systemd."),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--uninstall", help="Remove the crontab entry and the systemd units.")
    ] = False,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
) -> None:
    """Schedule the nightly `tradescout refresh` (crontab line or systemd user timer)."""
    flags = (("--print", print_), ("--install", install is not None), ("--uninstall", remove))
    chosen = [name for name, on in flags if on]
    if len(chosen) > 1:
        fail(f"Use only one of --print, --install and --uninstall (got {' and '.join(chosen)}).")
    when = guarded(lambda: parse_at(at))
    if remove:
        _run_or_fail(uninstall)
        return
    settings = settings_from(data_root, config, must_exist=False)
    job = build_job(settings.data_root, _config_in_effect(config))
    if install is not None and not job.data_root.is_dir():
        fail(
            f"Data root {job.data_root} does not exist; pass --data-root with the folder that "
            "holds raw/trade_history."
        )
    if install is not None:
        target = install_cron if install is InstallTarget.cron else install_systemd
        _run_or_fail(lambda: target(job, when))
        if job.env_file is not None and not job.env_file.exists():
            sys.stdout.write(_env_file_hint(job.env_file) + "\n")
    else:
        units = render_systemd_units(job, when)
        out = [
            "# crontab line (add with `crontab -e`, or run: tradescout schedule --install cron)",
            render_crontab_line(job, when),
            "",
        ]
        unit_dir = systemd_user_dir()
        for name, content in units.items():
            out += [f"# {unit_dir / name}", content]
        out.append(
            "# then: systemctl --user daemon-reload && systemctl --user enable --now "
            "tradescout-refresh.timer  (or run: tradescout schedule --install systemd)"
        )
        if job.env_file is not None:
            out.append("# " + _env_file_hint(job.env_file))
        sys.stdout.write("\n".join(out) + "\n")


def _run_or_fail(action: Callable[[], Outcome]) -> None:
    try:
        outcome = guarded(action)
    except ScheduleError as exc:
        fail(str(exc), EXIT_UNEXPECTED)
    _print_outcome(outcome)
