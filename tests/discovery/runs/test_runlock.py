"""The refresh lock, exercised with real processes (flock is per process, so threads won't do)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.runs.runlock import LockHeld, RunLock
from tests.conftest import REPO

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from discovery.runs.runlock import RunLock

    lock = RunLock(Path(sys.argv[1]))
    ok = lock.acquire()
    print("locked" if ok else f"busy {lock.holder_pid()}", flush=True)
    if ok:
        sys.stdin.read()  # hold until the parent closes stdin (or kills us)
        lock.release()
        print("released", flush=True)
    """
)


def spawn_holder(lock_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert first == "locked", first
    return proc


def try_in_other_process(lock_path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        cwd=REPO,
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.splitlines()[0]


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "refresh.lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = spawn_holder(lock_path)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_second_process_is_refused_and_told_the_holders_pid(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = RunLock(lock_path)
    assert lock.acquire() is False
    assert lock.holder_pid() == holder.pid
    assert not lock.held
    # And another real process sees the same.
    assert try_in_other_process(lock_path) == f"busy {holder.pid}"
    with pytest.raises(LockHeld) as info, RunLock(lock_path):
        pass
    assert info.value.pid == holder.pid
    assert str(info.value) == f"refresh already running (pid {holder.pid})"


def test_lock_is_free_again_after_a_clean_release(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.close()
    assert holder.stdout.readline().strip() == "released"
    holder.wait(timeout=10)
    lock = RunLock(lock_path)
    assert lock.holder_pid() is None
    assert lock.acquire() is True
    assert lock.took_over_from is None  # released cleanly: the file was emptied
    assert lock.holder_pid() == os.getpid()
    assert lock_path.read_text().strip() == str(os.getpid())
    lock.release()
    assert lock_path.exists() and lock_path.read_text() == ""


def test_sigkilled_holder_leaves_a_stale_lock_that_is_taken_over(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    dead_pid = holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    # The file still names the dead holder...
    assert lock_path.read_text().strip() == str(dead_pid)
    lock = RunLock(lock_path)
    assert lock.holder_pid() is None  # ...but no one holds the OS lock.
    assert lock.acquire() is True
    assert lock.took_over_from == dead_pid
    assert lock_path.read_text().strip() == str(os.getpid())
    # Now we are the holder for everyone else.
    assert try_in_other_process(lock_path) == f"busy {os.getpid()}"
    lock.release()
    assert try_in_other_process(lock_path) == "locked"


def test_pid_file_without_os_lock_is_stale_even_if_that_pid_lives(lock_path: Path) -> None:
    # A file written by hand (or by a holder that died) carries a pid but no flock: stale.
    lock_path.parent.mkdir(parents=True)
    for pid in (os.getppid(), 999_999_999):
        lock_path.write_text(f"{pid}\n")
        lock = RunLock(lock_path)
        assert lock.holder_pid() is None
        assert lock.acquire() is True
        assert lock.took_over_from == pid
        lock.release()


def test_garbage_in_the_lock_file_does_not_break_acquire(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_bytes(b"\xff\xfe not a pid")
    with RunLock(lock_path) as lock:
        assert lock.held and lock.took_over_from is None
        assert try_in_other_process(lock_path) == f"busy {os.getpid()}"
    assert try_in_other_process(lock_path) == "locked"


def test_refresh_lock_lives_in_the_state_dir(tmp_path: Path) -> None:
    lock = RunLock.for_refresh(tmp_path / "state")
    assert lock.path == tmp_path / "state" / "refresh.lock"
    with lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_two_lock_objects_in_one_process_exclude_each_other(lock_path: Path) -> None:
    first, second = RunLock(lock_path), RunLock(lock_path)
    assert first.acquire() and first.acquire()  # re-entrant on the same object
    assert second.acquire() is False
    assert second.holder_pid() == os.getpid()
    first.release()
    first.release()  # idempotent
    assert second.acquire() is True
    second.release()
