"""Scheduling the nightly `refresh`: a crontab line or systemd user units, and their install.

The job runs `{python} -m discovery.cli refresh --data-root {absolute data root}` with the very
interpreter that ran `tradescout schedule` (so the same virtualenv, found without PATH), from the
directory that holds the `discovery` package (so it imports even from a source checkout), and
appends stdout and stderr to `{data_root}/state/refresh.log`. Cron and systemd start jobs with an
almost empty environment, so:

- the config file in effect when scheduling (`--config`, `$TRADESCOUT_CONFIG` or
  `./tradescout.toml`) is passed on as an absolute `TRADESCOUT_CONFIG`;
- API keys are never written into a crontab or a unit. They are read at run time from an optional
  env file, `~/.config/tradescout/env` (`NAME=value` lines, mode 600), if it exists.

Rendering and crontab editing are pure functions on strings; installation is the thin I/O shell
around the `crontab` and `systemctl --user` commands.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cache.atomic import atomic_write_text
from discovery.errors import InputError
from services.recordclass import record

CRON_MARKER = "# tradescout:refresh"
UNIT_NAME = "tradescout-refresh"
SERVICE_FILE = f"{UNIT_NAME}.service"
TIMER_FILE = f"{UNIT_NAME}.timer"
DEFAULT_AT = "02:30"
COMMAND_TIMEOUT_S = 30.0

_AT_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(Exception):
    """The scheduler itself failed (crontab refused the table, ...): one sentence, exit 1."""


@record
class TimeOfDay:
    hour: int
    minute: int

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


def parse_at(text: str) -> TimeOfDay:
    """`HH:MM` on a 24-hour clock (`2:30` is accepted); anything else is an InputError."""
    match = _AT_RE.match(text.strip())
    if not match:
        raise InputError(
            f"--at {text!r} is not a time of day: use HH:MM on a 24-hour clock, e.g. 02:30."
        )
    return TimeOfDay(int(match.group(1)), int(match.group(2)))


@record
class RefreshJob:
    """What the scheduled job runs, with every path absolute."""

    python: Path
    workdir: Path
    data_root: Path
    log_file: Path
    config: Path | None = None
    env_file: Path | None = None

    @property
    def argv(self) -> tuple[str, ...]:
        return (
            str(self.python),
            "-m",
            "discovery.cli",
            "refresh",
            "--data-root",
            str(self.data_root),
        )


def package_parent() -> Path:
    """The directory holding the `discovery` package (a checkout's root, or site-packages)."""
    return Path(__file__).resolve().parent.parent


def default_env_file(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".config" / "tradescout" / "env"


def build_job(data_root: Path, config: Path | None = None, home: Path | None = None) -> RefreshJob:
    """The job for this interpreter and data root. `sys.executable` is kept as is (not resolved:
    a virtualenv's python is a symlink whose path is what selects the environment)."""
    root = Path(os.path.abspath(data_root))
    return RefreshJob(
        python=Path(os.path.abspath(sys.executable)),
        workdir=package_parent(),
        data_root=root,
        log_file=root / "state" / "refresh.log",
        config=Path(os.path.abspath(config)) if config is not None else None,
        env_file=default_env_file(home),
    )


# -- cron ---------------------------------------------------------------------------------------


def _cron_quote(value: str) -> str:
    # cron turns an unescaped % into a newline (and unescapes \\) before the shell runs it.
    return shlex.quote(value).replace("\\", "\\\\").replace("%", "\\%")


def render_crontab_line(job: RefreshJob, at: TimeOfDay) -> str:
    """One crontab line (no trailing newline) ending with the marker that identifies it."""
    q = _cron_quote
    steps = [f"cd {q(str(job.workdir))}"]
    if job.env_file is not None:
        env = q(str(job.env_file))
        steps.append(f"{{ [ ! -r {env} ] || {{ set -a; . {env}; set +a; }}; }}")
    prefix = f"TRADESCOUT_CONFIG={q(str(job.config))} " if job.config is not None else ""
    steps.append(prefix + " ".join(q(a) for a in job.argv))
    command = " && ".join(steps)
    return (
        f"{at.minute} {at.hour} * * * {{ {command}; }} >> {q(str(job.log_file))} 2>&1 {CRON_MARKER}"
    )


def is_tradescout_line(line: str) -> bool:
    return line.rstrip().endswith(CRON_MARKER)


def _lines(text: str) -> list[str]:
    return text.splitlines()


def merge_crontab(existing: str, line: str) -> str:
    """`existing` with tradescout's entry replaced by `line` (in place) or appended; other lines
    untouched. Installing twice therefore leaves exactly one entry."""
    out: list[str] = []
    placed = False
    for current in _lines(existing):
        if is_tradescout_line(current):
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(current)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


def remove_from_crontab(existing: str) -> str:
    """`existing` without tradescout's entries; everything else kept as it was."""
    kept = [line for line in _lines(existing) if not is_tradescout_line(line)]
    return "\n".join(kept) + "\n" if kept else ""


# -- systemd ------------------------------------------------------------------------------------


def _unit_path(value: str) -> str:
    return value.replace("%", "%%")


def _unit_arg(value: str) -> str:
    """Quote one ExecStart argument: systemd's double quotes, `%` specifiers escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if escaped and not re.search(r"[\s\"'\\;$]", value):
        return escaped
    return f'"{escaped}"'


def render_systemd_units(job: RefreshJob, at: TimeOfDay) -> dict[str, str]:
    """`{file name: content}` for the user service (oneshot) and its daily timer."""
    env_lines = []
    if job.config is not None:
        env_lines.append(f"Environment={_unit_arg('TRADESCOUT_CONFIG=' + str(job.config))}")
    if job.env_file is not None:
        # The leading '-' makes the file optional.
        env_lines.append(f"EnvironmentFile=-{_unit_path(str(job.env_file))}")
    log = _unit_path(str(job.log_file))
    service = "\n".join(
        [
            "[Unit]",
            "Description=tradescout nightly cache refresh",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={_unit_path(str(job.workdir))}",
            *env_lines,
            f"ExecStart={' '.join(_unit_arg(a) for a in job.argv)}",
            f"StandardOutput=append:{log}",
            f"StandardError=append:{log}",
            "Nice=10",
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            f"Description=Run tradescout refresh daily at {at}",
            "",
            "[Timer]",
            f"OnCalendar=*-*-* {at.hour:02d}:{at.minute:02d}:00",
            "Persistent=true",
            f"Unit={SERVICE_FILE}",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {SERVICE_FILE: service, TIMER_FILE: timer}


def systemd_user_dir(home: Path | None = None) -> Path:
    """`$XDG_CONFIG_HOME/systemd/user`, i.e. `~/.config/systemd/user` by default."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and home is None else (home or Path.home()) / ".config"
    return base / "systemd" / "user"


# -- the I/O shell ------------------------------------------------------------------------------


@record
class Outcome:
    """What an install/uninstall did, as sentences for the user; `notes` are warnings."""

    done: list[str]
    notes: list[str]


def _run(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def read_crontab(crontab: str) -> str:
    """The user's crontab; empty when they have none (`crontab -l` says "no crontab for ...")."""
    try:
        proc = _run([crontab, "-l"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScheduleError(f"`crontab -l` could not run ({exc}).") from None
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise ScheduleError(f"`crontab -l` failed: {_first_line(proc.stderr)}.")
    return proc.stdout


def write_crontab(crontab: str, table: str) -> None:
    try:
        proc = _run([crontab, "-"], stdin=table)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScheduleError(f"`crontab -` could not run ({exc}).") from None
    if proc.returncode != 0:
        raise ScheduleError(f"`crontab -` refused the new table: {_first_line(proc.stderr)}.")


def crontab_command() -> str | None:
    return shutil.which("crontab")


def install_cron(job: RefreshJob, at: TimeOfDay) -> Outcome:
    crontab = crontab_command()
    if crontab is None:
        raise InputError(
            "The crontab command is not available here; use --install systemd, or --print and "
            "add the line yourself."
        )
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    line = render_crontab_line(job, at)
    existing = read_crontab(crontab)
    merged = merge_crontab(existing, line)
    if merged == existing:
        return Outcome([f"crontab entry already installed (daily at {at})."], [])
    write_crontab(crontab, merged)
    return Outcome([f"Installed the crontab entry (daily at {at}), logging to {job.log_file}."], [])


def _systemctl(*args: str) -> str | None:
    """Run `systemctl --user ARGS`; None on success, else a short reason."""
    exe = shutil.which("systemctl")
    if exe is None:
        return "systemctl is not available"
    try:
        proc = _run([exe, "--user", *args])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemctl --user {' '.join(args)} could not run ({exc})"
    if proc.returncode != 0:
        reason = _first_line(proc.stderr or proc.stdout)
        return f"systemctl --user {' '.join(args)} failed: {reason}"
    return None


def install_systemd(job: RefreshJob, at: TimeOfDay, home: Path | None = None) -> Outcome:
    """Write both units atomically, then try to enable the timer.

    Without a user systemd session (containers, ssh without lingering) systemctl fails; the units
    are still written and the note says the two commands to run later. That is not an error.
    """
    unit_dir = systemd_user_dir(home)
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    for name, content in render_systemd_units(job, at).items():
        path = unit_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            atomic_write_text(path, content)
    done = [f"Wrote {unit_dir / SERVICE_FILE} and {unit_dir / TIMER_FILE} (daily at {at})."]
    notes: list[str] = []
    failure = _systemctl("daemon-reload") or _systemctl("enable", "--now", TIMER_FILE)
    if failure is None:
        done.append(f"Enabled and started {TIMER_FILE}.")
    else:
        notes.append(
            f"The timer is not enabled yet ({failure}); in a user session run: "
            f"systemctl --user daemon-reload && systemctl --user enable --now {TIMER_FILE}"
        )
    return Outcome(done, notes)


def uninstall(home: Path | None = None) -> Outcome:
    """Remove tradescout's crontab entry and systemd units, whichever exist."""
    done: list[str] = []
    notes: list[str] = []
    crontab = crontab_command()
    if crontab is not None:
        existing = read_crontab(crontab)
        remaining = remove_from_crontab(existing)
        if remaining != existing and any(is_tradescout_line(ln) for ln in _lines(existing)):
            write_crontab(crontab, remaining)
            done.append("Removed the crontab entry.")
    unit_dir = systemd_user_dir(home)
    paths = [unit_dir / SERVICE_FILE, unit_dir / TIMER_FILE]
    if any(p.exists() for p in paths):
        failure = _systemctl("disable", "--now", TIMER_FILE)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        done.append(f"Removed {paths[0]} and {paths[1]}.")
        failure = failure or _systemctl("daemon-reload")
        if failure is not None:
            notes.append(f"systemd was not told ({failure}); the unit files are gone anyway.")
    if not done:
        done.append("Nothing to remove: no tradescout schedule is installed.")
    return Outcome(done, notes)
