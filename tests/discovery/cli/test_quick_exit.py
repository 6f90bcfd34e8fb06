"""The console script ends its process itself once only the interpreter's teardown is left, and
leaves the exit to the interpreter whenever more than that is left to do. Each case is a real
subprocess: what it prints through a pipe, its exit code, and what ran on its way out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

# A child that registers an `atexit` function, sets up what its mode names, then runs the
# console script with the arguments after the mode.
CHILD = """
import atexit, sys, threading, time
from pathlib import Path
out = Path(sys.argv[1])
mode = sys.argv[2]
atexit.register(lambda: (out / "atexit").write_text("ran"))
if mode == "thread":  # a worker still running when the command is done
    def work():
        time.sleep(0.3)
        (out / "thread").write_text("done")
    threading.Thread(target=work).start()
if mode == "message":
    import discovery.cli.wiring as wiring
    wiring.run = lambda args, importing: sys.exit("a message, not a number")
if mode == "lines":  # more than any pipe buffer holds, through a buffered stdout
    import discovery.cli.wiring as wiring
    def many(args, importing):
        for i in range(100_000):
            print(f"line {i}")
        sys.exit(0)
    wiring.run = many
sys.argv = ["tradescout", *sys.argv[3:]]
from discovery.cli import console
console()
"""


def _child(tmp_path: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env({})
    env.pop("PYTHONUNBUFFERED")  # stdout buffered, as a user's shell has it
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), mode, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_finished_command_runs_atexit_and_prints_all_its_output(
    tmp_path: Path,
) -> None:
    done = _child(tmp_path, "plain", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: tradescout") and "discover" in done.stdout
    assert (tmp_path / "atexit").read_text() == "ran"


def test_buffered_output_is_flushed_whole_before_the_exit(tmp_path: Path) -> None:
    done = _child(tmp_path, "lines")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 100_000 and lines[-1] == "line 99999"


def test_the_exit_code_of_a_refused_command_is_kept(tmp_path: Path) -> None:
    refused = _child(tmp_path, "plain", "discover", "demo", "--no-such-flag")
    assert refused.returncode == 2
    assert "No such option" in refused.stderr
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_running_thread_leaves_the_exit_to_the_interpreter(tmp_path: Path) -> None:
    done = _child(tmp_path, "thread", "--help")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "done"  # joined, as the interpreter does
    assert (tmp_path / "atexit").read_text() == "ran"


def test_an_exit_with_a_message_is_left_to_the_interpreter(tmp_path: Path) -> None:
    done = _child(tmp_path, "message", "--help")
    assert done.returncode == 1
    assert "a message, not a number" in done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
