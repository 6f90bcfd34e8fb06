"""Hostile state and disk (issue 12, "State and disk"): a full disk, a read-only data root, a
damaged `state/`, locks taken before arguments are checked.

The disk fills for real: SQLite's `max_page_count` gives its own SQLITE_FULL, and a subprocess
with RLIMIT_FSIZE (SIGXFSZ ignored) gets real write errors from every file it grows. Read-only
runs are real too: the CLI runs as an unprivileged uid (root ignores file modes) on a tree it
does not own. Each case asserts the exit code, the one sentence, and what is (not) on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from cache.disk.store import DiskCache, DiskNamespace
from cache.disk.verify import verify
from cache.errors import CacheWriteFailed
from cache.keys import derive_key
from discovery.report.schema import validate_report
from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.runs.ledger import Ledger
from discovery.runs.runlock import RunLock
from discovery.settings import load_settings
from discovery.upstream import Target
from services import fmp
from services.hub import ServiceHub
from services.quota import QuotaLedger, read_usage
from services.sandbox.server import SandboxServer
from tests.conftest import (
    FIXTURES,
    TRADESCOUT,
    clean_env,
    fast_config,
    fast_sandbox,
    make_root,
    plain_tickers,
    report_files,
    run_cli,
)
from tests.services.conftest import fast_configs

__all__ = ["fast_sandbox"]  # the fixture, imported for pytest

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PROFILE = json.loads((FIXTURES / "payloads" / "fmp__profile_ACME.json").read_text())


def key_for(symbol: str) -> str:
    return derive_key("fmp", "profile", {"symbol": symbol})


def digest(root: Path) -> dict[str, str]:
    """Every path under `root` with a hash of its content (directories as "dir")."""
    return {
        str(p.relative_to(root)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def leftovers(root: Path) -> list[str]:
    """Half-written files an atomic write would have left (its temp files)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def limited_cli(
    args: Sequence[str], *, cwd: Path, env: dict[str, str], max_file_bytes: int
) -> subprocess.CompletedProcess[str]:
    """The CLI where no file can grow beyond `max_file_bytes` (a full disk, for real)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [str(TRADESCOUT), *args],
        cwd=cwd,
        env=clean_env({**env, "PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=limit,
    )


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def mounted(*cmd: str, at: Path) -> Iterator[Path]:
    """`mount … at` for the test, or a skip where mounting is not permitted (CI containers)."""
    at.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount") or not _run("mount", *cmd, str(at)):
        pytest.skip("mounting a file system is not permitted here")
    try:
        yield at
    finally:
        if not _run("umount", str(at)):
            _run("umount", "-l", str(at))


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Expose a directory read-only (a read-only bind mount: EROFS, which root gets too)."""
    stack = contextlib.ExitStack()

    def expose(source: Path) -> Path:
        view = stack.enter_context(mounted("--bind", str(source), at=tmp_path / "ro" / source.name))
        if not _run("mount", "-o", "remount,bind,ro", str(view)):
            pytest.skip("remounting read-only is not permitted here")
        return view

    with stack:
        yield expose


def sandbox_env(url: str, tmp: Path) -> dict[str, str]:
    return {"TRADESCOUT_SANDBOX_URL": url, "TRADESCOUT_CONFIG": str(fast_config(tmp))}


# -- a full disk ---------------------------------------------------------------------------------


def test_sqlite_full_is_a_typed_cache_error_and_nothing_is_half_written(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ns = DiskNamespace(root / "fmp", "fmp", clock=lambda: NOW)
    ns.put(key_for("KEEP"), {"keep": True}, dataset="profile", ttl=timedelta(days=1))
    ns._cache._sql("PRAGMA max_page_count = 12")  # type: ignore[union-attr]  # the real SQLITE_FULL
    with pytest.raises(CacheWriteFailed) as caught:
        for i in range(40):
            ns.put(key_for(f"T{i}"), {"pad": "x" * 3000}, dataset="profile", ttl=timedelta(days=1))
    assert caught.value.reason == "disk_full" and caught.value.detail == "disk full"
    for i in range(200):  # fill what room the pages still have, row by row
        with contextlib.suppress(CacheWriteFailed):
            ns.put(key_for(f"F{i}"), i, dataset="profile", ttl=timedelta(days=1))
    with pytest.raises(CacheWriteFailed):  # a value file is written, then the row is refused
        ns.put(key_for("BIG"), {"blob": "b" * (1 << 20)}, dataset="profile", ttl=timedelta(days=1))
    assert ns.get(key_for("KEEP")).fresh  # what was cached is kept and still served
    ns.close()
    assert list((root / "fmp").rglob("*.val")) == []  # the refused value file went too
    assert verify(root, now=NOW).sound


async def test_a_hub_over_a_full_disk_keeps_the_answers_and_reports_disk_full(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    answer = [{**PROFILE[0], "padding": "p" * 50_000}]  # needs pages the database cannot grow
    httpx_mock.add_response(json=answer)
    cache = DiskCache(tmp_path / "cache", clock=lambda: NOW)
    sql = cache.namespace("fmp")._cache._sql  # type: ignore[union-attr]
    ((pages,),) = sql("PRAGMA page_count").fetchall()
    sql(f"PRAGMA max_page_count = {pages}")
    request = fmp.profile_request("ACME")
    async with ServiceHub(fast_configs(), cache, tmp_path / "state", clock=lambda: NOW) as hub:
        result = await hub.fetch(request)
        assert result.origin == "network" and result.payload == answer
        held = hub.peek(request)
        assert held.fresh and held.envelope is not None and held.envelope.payload == answer
        assert (await hub.fetch(request)).origin == "cache"  # not fetched twice
        (fault,) = hub.cache_faults().values()
    assert fault.reason == "disk_full"
    assert len(httpx_mock.get_requests()) == 1
    cache.close()
    assert verify(tmp_path / "cache", now=NOW).sound


@pytest.mark.integration
def test_discover_on_a_full_disk_writes_its_report_with_disk_full_gaps(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    done = limited_cli(
        ["discover", "small", "--data-root", str(root)],
        cwd=tmp_path,
        env=sandbox_env(fast_sandbox.url, tmp_path),
        max_file_bytes=64 * 1024,  # the report (~20 kB) fits; the price histories do not
    )
    no_traceback(done)
    assert done.returncode == 3, done.stderr
    (path,) = report_files(root)
    report = json.loads(path.read_text())
    validate_report(report)
    full = [g for g in report["gaps"] if g["reason"] == "disk_full"]
    assert full and {g["dataset"] for g in full} == {"cache"}
    assert "yahoo_finance" in {g["service"] for g in full}
    # What was fetched is in the report although it could not be cached.
    assert all(t["price_history"] is not None for t in report["ticker_data"].values())
    assert leftovers(root) == []
    assert verify(root / "cache", now=datetime.now(UTC)).quarantined == ()


@pytest.mark.integration
def test_discover_whose_report_does_not_fit_says_so_in_one_sentence(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    done = limited_cli(
        ["discover", "small", "--data-root", str(root)],
        cwd=tmp_path,
        env=sandbox_env(fast_sandbox.url, tmp_path),
        max_file_bytes=16 * 1024,
    )
    no_traceback(done)
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not be written" in lines[0] and "disk full" in lines[0]
    assert report_files(root) == [] and leftovers(root) == []


# -- a read-only data root -----------------------------------------------------------------------


def _populated_root(tmp_path: Path) -> Path:
    root = make_root(tmp_path, plain_tickers(2))
    with DiskNamespace(root / "cache" / "fmp", "fmp") as ns:
        ns.put(key_for("AAPL"), {"a": 1}, dataset="profile", ttl=timedelta(days=1))
    with Ledger.in_state_dir(root / "state"):
        pass
    return root


@pytest.mark.integration
def test_a_read_only_data_root_is_one_sentence_exit_3_and_nothing_changes(
    tmp_path: Path, fast_sandbox: SandboxServer, read_only: Callable[[Path], Path]
) -> None:
    source = _populated_root(tmp_path)
    before = digest(source)
    root = read_only(source)
    done = run_cli(
        ["discover", "small", "--data-root", str(root)],
        cwd=tmp_path,
        env=sandbox_env(fast_sandbox.url, tmp_path),
    )
    no_traceback(done)
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "could not be written" in lines[0]
    assert digest(source) == before
    assert sum(s["requests"] for s in _stats(fast_sandbox.url).values()) == 0  # nothing fetched


def _stats(url: str) -> dict[str, dict[str, int]]:
    import httpx

    stats: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats").json()["services"]
    return stats


def test_cache_commands_on_a_read_only_root_change_nothing(
    tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    source = _populated_root(tmp_path)
    before = digest(source)
    root = read_only(source)
    report = run_cli(["cache", "report", "--data-root", str(root)], cwd=tmp_path)
    no_traceback(report)
    assert report.returncode == 3 and "could not be written" in report.stderr
    checked = run_cli(["cache", "verify", "--data-root", str(root)], cwd=tmp_path)
    no_traceback(checked)
    assert checked.returncode == 3 and "fmp: not checked" in checked.stdout  # never quarantined
    optimized = run_cli(["cache", "optimize", "--data-root", str(root)], cwd=tmp_path)
    no_traceback(optimized)
    assert digest(source) == before


def test_a_quota_ledger_that_cannot_be_written_leaves_quota_services_uncalled(
    tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    source = tmp_path / "data"
    (source / "state").mkdir(parents=True)
    state = read_only(source) / "state"
    ledger = QuotaLedger(state, clock=lambda: NOW)
    assert ledger.lost is not None and "cannot be saved" in ledger.lost
    assert not ledger.try_reserve("fmp", "live", 250)  # cannot be counted: not spent
    assert ledger.try_reserve("fred", "live", None)  # no quota to keep
    assert ledger.left_today("fmp", "live", 250) == 0
    ledger.close()
    assert list((source / "state").iterdir()) == []


@pytest.mark.integration
def test_discover_on_a_small_full_file_system_ends_in_a_sentence_or_gaps(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    """A real ENOSPC: the data root on a 1 MB tmpfs (the price histories do not fit)."""
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", at=tmp_path / "small") as disk:
        root = make_root(disk, plain_tickers(3))
        done = run_cli(
            ["discover", "small", "--data-root", str(root)],
            cwd=tmp_path,
            env=sandbox_env(fast_sandbox.url, tmp_path),
        )
        no_traceback(done)
        assert done.returncode == 3, done.stderr
        written = report_files(root)
        if written:  # the report fitted: the refused cache writes are its gaps
            report = json.loads(written[0].read_text())
            validate_report(report)
            assert "disk_full" in {g["reason"] for g in report["gaps"]}
        else:
            assert "could not be written" in done.stderr and "disk full" in done.stderr
        assert leftovers(root) == []
        shutil.copytree(root, tmp_path / "copy", symlinks=True)  # verified with room to spare
    verify = run_cli(["cache", "verify", "--data-root", str(tmp_path / "copy")], cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # no namespace left damaged
    assert not (tmp_path / "copy" / "cache" / "_quarantine").exists()


# -- a damaged state/ ------------------------------------------------------------------------------

DAY = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a database at all" * 300)


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("someone's file")


@pytest.mark.parametrize("damage", [_garbage, _directory], ids=["garbage", "directory"])
def test_a_damaged_quota_ledger_is_rebuilt_and_todays_quotas_count_as_spent(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damage(state / QuotaLedger.FILE_NAME)
    clock = [DAY]
    ledger = QuotaLedger(state, clock=lambda: clock[0])
    assert ledger.lost is not None and "taken as spent" in ledger.lost
    assert ledger.left_today("fmp", "live", 250) == 0
    assert not ledger.try_reserve("fmp", "live", 250)  # a lost count is spent, never zero
    assert ledger.try_reserve("yahoo_finance", "live", None)  # no quota: not held back
    assert read_usage(state, DAY.date()) is None  # the dry run sees it spent too
    ledger.close()
    again = QuotaLedger(state, clock=lambda: clock[0])  # a second run the same day
    assert not again.try_reserve("alpha_vantage", "live", 25)
    clock[0] = DAY + timedelta(days=1)  # the next UTC day counts afresh
    assert again.lost is None and again.try_reserve("alpha_vantage", "live", 25)
    again.close()
    (kept,) = state.glob(f"{QuotaLedger.FILE_NAME}.damaged-*")  # moved aside, not deleted
    assert kept.exists()


def test_a_state_path_that_is_a_file_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    ledger = QuotaLedger(tmp_path / "state", clock=lambda: DAY)
    assert ledger.lost is not None and not ledger.try_reserve("fmp", "live", 250)
    ledger.close()
    assert (tmp_path / "state").is_dir()
    (kept,) = tmp_path.glob("state.damaged-*")
    assert kept.read_text() == "not a directory"
    with Ledger.in_state_dir(tmp_path / "state") as runs:
        assert runs.recent_runs(1) == []


def test_a_lock_path_that_is_a_directory_is_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _directory(state / "refresh.lock")
    with RunLock.for_refresh(state) as lock:
        assert lock.held and (state / "refresh.lock").is_file()
    (kept,) = state.glob("refresh.lock.damaged-*")
    assert (kept / "inside.txt").read_text() == "someone's file"


@pytest.mark.integration
async def test_discover_over_a_damaged_state_goes_on_with_quotas_spent(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(2))
    state = root / "state"
    state.mkdir()
    _garbage(state / QuotaLedger.FILE_NAME)
    _garbage(state / "ledger.sqlite")
    settings = load_settings(config=fast_config(tmp_path), data_root=root)
    outcome = await discover_async(
        settings,
        DiscoverOptions(portfolio="small", target=Target("sandbox", fast_sandbox.url)),
    )
    assert outcome.exit_code == 3 and outcome.report is not None
    spent = {g["service"] for g in outcome.report["gaps"] if g["reason"] == "quota_exhausted"}
    assert "fmp" in spent <= {"fmp", "alpha_vantage"}  # the services with a daily quota
    asked = {k for k, v in _stats(fast_sandbox.url).items() if v["requests"]}
    assert not asked & {"fmp", "alpha_vantage"} and "yahoo_finance" in asked
    assert all(t["price_history"] is not None for t in outcome.report["ticker_data"].values())
    with Ledger.in_state_dir(state) as runs:  # the run ledger was rebuilt and has this run
        assert [r.run_id for r in runs.recent_runs(5)] == [
            outcome.report["discovery_metadata"]["run_id"]
        ]
    assert len(list(state.glob("*.damaged-*"))) == 2


# -- locks only after the arguments are valid ------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "no_such_portfolio"])
def test_refresh_with_a_bad_portfolio_takes_no_lock(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path, plain_tickers(1))
    before = digest(root)
    done = run_cli(["refresh", name, "--offline", "--data-root", str(root)], cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    assert not (root / "state").exists()
    assert digest(root) == before


def test_refresh_with_a_lock_path_that_is_a_directory_runs(tmp_path: Path) -> None:
    root = make_root(tmp_path, plain_tickers(1))
    (root / "state").mkdir()
    _directory(root / "state" / "refresh.lock")
    done = run_cli(["refresh", "--offline", "--data-root", str(root)], cwd=tmp_path)
    no_traceback(done)
    assert done.returncode in (0, 3), done.stderr
    assert "already running" not in done.stdout
    assert (root / "state" / "refresh.lock").is_file()
    assert len(list((root / "state").glob("refresh.lock.damaged-*"))) == 1
