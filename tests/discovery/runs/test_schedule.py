"""`tradescout schedule`: pure renderers, and install/uninstall against a temporary HOME with a
fake `crontab` (and `systemctl`) on PATH."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from discovery.cli.schedule import schedule_command
from discovery.errors import InputError
from discovery.runs.schedule import (
    CRON_MARKER,
    SERVICE_FILE,
    TIMER_FILE,
    RefreshJob,
    TimeOfDay,
    build_job,
    merge_crontab,
    parse_at,
    remove_from_crontab,
    render_crontab_line,
    render_systemd_units,
)
from tests.conftest import REPO

FAKE_CRONTAB = """#!/bin/sh
# Stores the table in $FAKE_CRONTAB_FILE, like crontab(1) would for the current user.
case "$1" in
  -l) if [ -f "$FAKE_CRONTAB_FILE" ]; then /bin/cat "$FAKE_CRONTAB_FILE";
      else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) if [ -n "$FAKE_CRONTAB_REFUSE" ]; then echo "tester is not allowed to use cron" >&2; exit 1; fi
     /bin/cat > "$FAKE_CRONTAB_FILE" ;;
  *) echo "fake crontab: unsupported $*" >&2; exit 2 ;;
esac
"""

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMCTL_LOG"
if [ -n "$FAKE_SYSTEMCTL_FAIL" ]; then
  echo "Failed to connect to bus: No medium found" >&2; exit 1
fi
exit 0
"""


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def cron_unescape(command: str) -> str:
    r"""What cron hands to /bin/sh: `\%` → `%`, `\\` → `\` (an unescaped % would end it)."""
    out, escaped = [], False
    for ch in command:
        if escaped:
            out.append(ch if ch in "%\\" else "\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            assert ch != "%", "an unescaped % would become a newline in cron"
            out.append(ch)
    return "".join(out)


AT = TimeOfDay(2, 30)


def job_in(tmp: Path, **changes: Path | None) -> RefreshJob:
    base = dict(
        python=Path(sys.executable),
        workdir=REPO,
        data_root=tmp / "data",
        log_file=tmp / "data" / "state" / "refresh.log",
        config=None,
        env_file=None,
    )
    base.update(changes)
    return RefreshJob(**base)  # type: ignore[arg-type]


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hour", "minute"),
    [("02:30", 2, 30), ("2:30", 2, 30), ("23:59", 23, 59), ("0:00", 0, 0)],
)
def test_parse_at_accepts_24h_times(text: str, hour: int, minute: int) -> None:
    assert parse_at(text) == TimeOfDay(hour, minute)


@pytest.mark.parametrize("text", ["24:00", "2:60", "0230", "2:3", "noon", "", "12:30pm", "-1:30"])
def test_parse_at_rejects_anything_else_with_one_sentence(text: str) -> None:
    with pytest.raises(InputError, match=r"use HH:MM on a 24-hour clock") as info:
        parse_at(text)
    assert "\n" not in str(info.value)


# -- cron rendering -----------------------------------------------------------------------------


def test_crontab_line_schedules_refresh_with_this_interpreter_and_absolute_paths(
    tmp_path: Path,
) -> None:
    job = build_job(Path("relative/data"), home=tmp_path)
    line = render_crontab_line(job, TimeOfDay(3, 5))
    assert line.startswith("5 3 * * * ")
    assert line.endswith(CRON_MARKER)
    assert "\n" not in line
    assert job.data_root.is_absolute() and job.data_root == Path.cwd() / "relative" / "data"
    assert shlex.quote(str(job.python)) in line
    assert f"-m discovery.cli refresh --data-root {shlex.quote(str(job.data_root))}" in line
    assert f">> {shlex.quote(str(job.data_root / 'state' / 'refresh.log'))} 2>&1" in line
    assert job.python == Path(os.path.abspath(sys.executable))  # not resolved: venvs are symlinks


def test_crontab_command_really_runs_in_sh_with_env_file_config_and_log(tmp_path: Path) -> None:
    """Run the rendered command the way cron would (after its % handling) with a fake python."""
    weird = tmp_path / "my data 100%"
    fake_python = tmp_path / "bin dir" / "python"
    fake_python.parent.mkdir()
    write_script(
        fake_python,
        '#!/bin/sh\necho "cwd=$(pwd)"\necho "config=$TRADESCOUT_CONFIG"\n'
        'echo "key=$FMP_API_KEY"\nfor a in "$@"; do echo "arg=$a"; done\necho oops >&2\n',
    )
    env_file = tmp_path / "env"
    env_file.write_text("FMP_API_KEY=from-env-file\n")
    config = tmp_path / "conf $x.toml"
    workdir = tmp_path / "work"
    workdir.mkdir()
    log = weird / "state" / "refresh.log"
    log.parent.mkdir(parents=True)
    log.write_text("earlier run\n")
    job = job_in(
        tmp_path,
        python=fake_python,
        workdir=workdir,
        data_root=weird,
        log_file=log,
        config=config,
        env_file=env_file,
    )
    line = render_crontab_line(job, AT)
    command = cron_unescape(line.split(" ", 5)[5])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for _ in range(2):
        proc = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == b"" and proc.stderr == b""  # everything went to the log
    text = log.read_text()
    assert text.startswith("earlier run\n")  # appended, not truncated
    assert text.count(f"cwd={workdir}\n") == 2
    assert f"config={config}\n" in text
    assert "key=from-env-file\n" in text
    assert text.count("oops\n") == 2  # stderr too
    args = [ln[4:] for ln in text.splitlines() if ln.startswith("arg=")][:5]
    assert args == ["-m", "discovery.cli", "refresh", "--data-root", str(weird)]


def test_crontab_command_works_without_the_env_file(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    write_script(fake_python, '#!/bin/sh\necho "ran $3"\n')
    job = job_in(tmp_path, python=fake_python, env_file=tmp_path / "missing-env")
    job.log_file.parent.mkdir(parents=True)
    command = cron_unescape(render_crontab_line(job, AT).split(" ", 5)[5])
    proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=30)
    assert proc.returncode == 0
    assert job.log_file.read_text() == "ran refresh\n"


def test_merge_crontab_replaces_in_place_and_keeps_other_lines() -> None:
    line = f"30 2 * * * new {CRON_MARKER}"
    existing = (
        "MAILTO=me@example.invalid\n"
        "0 * * * * /usr/bin/backup\n"
        f"15 1 * * * old {CRON_MARKER}\n"
        "# a comment\n"
        f"15 1 * * * duplicate {CRON_MARKER}\n"
    )
    merged = merge_crontab(existing, line)
    assert merged == (
        f"MAILTO=me@example.invalid\n0 * * * * /usr/bin/backup\n{line}\n# a comment\n"
    )
    assert merge_crontab(merged, line) == merged  # idempotent
    assert merge_crontab("", line) == line + "\n"
    assert merge_crontab("0 * * * * x", line) == f"0 * * * * x\n{line}\n"  # no final newline


def test_remove_from_crontab_drops_only_tradescout_lines() -> None:
    existing = f"0 * * * * /usr/bin/backup\n30 2 * * * x {CRON_MARKER}\n# keep me\n"
    assert remove_from_crontab(existing) == "0 * * * * /usr/bin/backup\n# keep me\n"
    assert remove_from_crontab(f"30 2 * * * x {CRON_MARKER}\n") == ""
    assert remove_from_crontab("") == ""


# -- systemd rendering --------------------------------------------------------------------------


def test_systemd_units_run_refresh_daily_and_persistently(tmp_path: Path) -> None:
    job = job_in(
        tmp_path,
        data_root=tmp_path / "da ta",
        log_file=tmp_path / "da ta" / "state" / "refresh.log",
        config=tmp_path / "c%.toml",
        env_file=tmp_path / "env",
    )
    units = render_systemd_units(job, TimeOfDay(4, 7))
    assert set(units) == {SERVICE_FILE, TIMER_FILE}
    service, timer = units[SERVICE_FILE], units[TIMER_FILE]
    assert "Type=oneshot" in service
    assert f"WorkingDirectory={REPO}" in service
    assert (
        f'ExecStart={sys.executable} -m discovery.cli refresh --data-root "{tmp_path}/da ta"'
        in service
    )
    assert f"StandardOutput=append:{tmp_path}/da ta/state/refresh.log" in service
    assert f"StandardError=append:{tmp_path}/da ta/state/refresh.log" in service
    assert f"Environment=TRADESCOUT_CONFIG={tmp_path}/c%%.toml" in service
    assert f"EnvironmentFile=-{tmp_path}/env" in service
    assert "OnCalendar=*-*-* 04:07:00" in timer
    assert "Persistent=true" in timer
    assert f"Unit={SERVICE_FILE}" in timer
    assert re.search(r"\[Install\]\nWantedBy=timers.target", timer)
    for text in units.values():
        assert text.endswith("\n") and "[Unit]" in text


# -- the command, against a temporary HOME ------------------------------------------------------


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()

    @application.callback()
    def _root() -> None:
        """tradescout (test harness)"""

    application.command("schedule")(schedule_command)
    return application


@pytest.fixture
def sandbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "crontab", FAKE_CRONTAB)
    write_script(bin_dir / "systemctl", FAKE_SYSTEMCTL)
    data = tmp_path / "data"
    (data / "raw" / "trade_history").mkdir(parents=True)
    paths = {
        "home": home,
        "bin": bin_dir,
        "data": data,
        "crontab": tmp_path / "crontab.txt",
        "systemctl_log": tmp_path / "systemctl.log",
    }
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("TRADESCOUT_CONFIG", raising=False)
    monkeypatch.delenv("TRADESCOUT_DATA_ROOT", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(paths["crontab"]))
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(paths["systemctl_log"]))
    monkeypatch.chdir(tmp_path)
    return paths


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["schedule", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def tradescout_lines(table: Path) -> list[str]:
    return [ln for ln in table.read_text().splitlines() if ln.endswith(CRON_MARKER)]


def test_print_is_the_default_and_writes_nothing(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    code, out, _ = invoke(app, "--data-root", str(sandbox_home["data"]), "--at", "01:15")
    assert code == 0
    assert "15 1 * * * " in out and CRON_MARKER in out
    assert "OnCalendar=*-*-* 01:15:00" in out and "[Install]" in out
    assert not sandbox_home["crontab"].exists()
    assert not (sandbox_home["home"] / ".config").exists()
    assert not (sandbox_home["data"] / "state").exists()


def test_install_cron_twice_leaves_one_entry_and_keeps_other_lines(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    table = sandbox_home["crontab"]
    table.write_text("MAILTO=\n0 4 * * * /usr/bin/backup --all\n")
    data = str(sandbox_home["data"])

    code, out, err = invoke(app, "--install", "cron", "--data-root", data)
    assert code == 0, err
    assert "Installed the crontab entry" in out
    [entry] = tradescout_lines(table)
    assert entry.startswith("30 2 * * * ")
    assert (sandbox_home["data"] / "state").is_dir()  # the log's folder exists for the redirect

    env_file = sandbox_home["home"] / ".config" / "tradescout" / "env"
    assert f"NAME=value lines from {env_file}" in out  # it does not exist yet: say where
    env_file.parent.mkdir(parents=True)
    env_file.write_text("FMP_API_KEY=x\n")

    code, out, _ = invoke(app, "--install", "cron", "--data-root", data)
    assert code == 0 and "already installed" in out
    assert "NAME=value" not in out
    assert tradescout_lines(table) == [entry]

    code, _, _ = invoke(app, "--install", "cron", "--data-root", data, "--at", "05:45")
    assert code == 0
    [moved] = tradescout_lines(table)
    assert moved.startswith("45 5 * * * ")
    assert table.read_text().startswith("MAILTO=\n0 4 * * * /usr/bin/backup --all\n")

    code, out, _ = invoke(app, "--uninstall")
    assert code == 0 and "Removed the crontab entry" in out
    assert table.read_text() == "MAILTO=\n0 4 * * * /usr/bin/backup --all\n"

    code, out, _ = invoke(app, "--uninstall")
    assert code == 0 and "Nothing to remove" in out
    assert table.read_text() == "MAILTO=\n0 4 * * * /usr/bin/backup --all\n"


def test_install_cron_for_a_user_without_a_crontab(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    code, _, err = invoke(app, "--install", "cron", "--data-root", str(sandbox_home["data"]))
    assert code == 0, err
    assert len(tradescout_lines(sandbox_home["crontab"])) == 1
    assert sandbox_home["crontab"].read_text().count("\n") == 1


def test_config_in_effect_is_passed_on_absolute(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    (Path.cwd() / "tradescout.toml").write_text("max_concurrency = 4\n")
    code, _, err = invoke(app, "--install", "cron", "--data-root", str(sandbox_home["data"]))
    assert code == 0, err
    [entry] = tradescout_lines(sandbox_home["crontab"])
    assert f"TRADESCOUT_CONFIG={Path.cwd() / 'tradescout.toml'} " in entry


def test_crontab_refusing_the_table_is_one_sentence_exit_1(
    app: typer.Typer, sandbox_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CRONTAB_REFUSE", "1")
    code, _, err = invoke(app, "--install", "cron", "--data-root", str(sandbox_home["data"]))
    assert code == 1
    assert "not allowed to use cron" in err and "Traceback" not in err
    assert not sandbox_home["crontab"].exists()


def test_no_crontab_command_is_a_usage_error(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    (sandbox_home["bin"] / "crontab").unlink()
    code, _, err = invoke(app, "--install", "cron", "--data-root", str(sandbox_home["data"]))
    assert code == 2 and "crontab command is not available" in err


def test_install_systemd_writes_units_enables_timer_and_uninstall_removes(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    unit_dir = sandbox_home["home"] / ".config" / "systemd" / "user"
    data = str(sandbox_home["data"])
    for _ in range(2):
        code, out, err = invoke(app, "--install", "systemd", "--data-root", data, "--at", "3:00")
        assert code == 0, err
        assert "Enabled and started tradescout-refresh.timer" in out
        assert err == ""
    assert sorted(p.name for p in unit_dir.iterdir()) == [SERVICE_FILE, TIMER_FILE]
    assert "OnCalendar=*-*-* 03:00:00" in (unit_dir / TIMER_FILE).read_text()
    assert f"--data-root {data}" in (unit_dir / SERVICE_FILE).read_text()
    calls = sandbox_home["systemctl_log"].read_text().splitlines()
    assert calls == ["--user daemon-reload", f"--user enable --now {TIMER_FILE}"] * 2

    code, out, _ = invoke(app, "--uninstall")
    assert code == 0 and "Removed" in out
    assert list(unit_dir.iterdir()) == []
    calls = sandbox_home["systemctl_log"].read_text().splitlines()
    assert calls[-2:] == [f"--user disable --now {TIMER_FILE}", "--user daemon-reload"]
    assert not sandbox_home["crontab"].exists()  # nothing to do in cron: untouched


@pytest.mark.parametrize("how", ["fails", "absent"])
def test_install_systemd_without_a_user_session_keeps_units_and_exits_0(
    app: typer.Typer, sandbox_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "fails":
        monkeypatch.setenv("FAKE_SYSTEMCTL_FAIL", "1")
    else:
        (sandbox_home["bin"] / "systemctl").unlink()
    code, out, err = invoke(app, "--install", "systemd", "--data-root", str(sandbox_home["data"]))
    assert code == 0
    unit_dir = sandbox_home["home"] / ".config" / "systemd" / "user"
    assert (unit_dir / SERVICE_FILE).is_file() and (unit_dir / TIMER_FILE).is_file()
    assert "Wrote" in out
    assert "not enabled yet" in err
    reason = "No medium found" if how == "fails" else "systemctl is not available"
    assert reason in err
    assert f"systemctl --user enable --now {TIMER_FILE}" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "25:00"], "is not a time of day"),
        (["--at", "7pm", "--install", "cron"], "is not a time of day"),
        (["--print", "--install", "cron"], "Use only one of"),
        (["--install", "systemd", "--uninstall"], "Use only one of"),
    ],
)
def test_bad_usage_is_one_sentence_exit_2_and_writes_nothing(
    app: typer.Typer, sandbox_home: dict[str, Path], args: list[str], message: str
) -> None:
    code, out, err = invoke(app, *args, "--data-root", str(sandbox_home["data"]))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""
    assert not sandbox_home["crontab"].exists()
    assert not (sandbox_home["home"] / ".config").exists()


def test_install_refuses_a_missing_data_root(
    app: typer.Typer, sandbox_home: dict[str, Path]
) -> None:
    missing = sandbox_home["data"].parent / "nope"
    code, _, err = invoke(app, "--install", "cron", "--data-root", str(missing))
    assert code == 2 and "does not exist" in err
    assert not sandbox_home["crontab"].exists()
