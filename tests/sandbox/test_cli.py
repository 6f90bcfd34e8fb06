"""`tradescout sandbox` as a real process: it serves, prints the URL, and stops on SIGTERM/SIGINT;
bad flags exit 2 with one sentence."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration
ROOT = REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "TRADESCOUT_SANDBOX_FAULTS"}
    full_env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "discovery.cli.sandbox", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sandbox exited early: {proc.communicate()}")
        try:
            if httpx.get(url + "/_sandbox/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("sandbox did not become ready")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    port = free_port()
    proc = run_cli("--port", str(port), "--fault", "fmp=error:0.5", "--latency-ms", "1")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        r = httpx.get(url + "/imf/external/datamapper/api/v1/NGDP_RPCH/USA")
        assert r.status_code == 200 and r.headers["x-tradescout-synthetic"] == "true"
        codes = [
            httpx.get(url + "/fmp/stable/profile?symbol=AAPL&apikey=k").status_code for _ in "ab"
        ]
        assert codes == [200, 500]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"export TRADESCOUT_SANDBOX_URL={url}" in out
    assert "fault: fmp=error:0.5" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fault", "fmp=explode"], "unknown mode"),
        (["--fault", "nasdaq=down"], "unknown service"),
        (["--fault", "fmp"], "SERVICE=MODE"),
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--defences", "maybe"], "neither on nor off"),
    ],
)
def test_bad_flags_exit_2_with_one_sentence(args: list[str], needle: str) -> None:
    proc = run_cli("--port", str(free_port()), *args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert needle in err and "Traceback" not in err
    assert "export" not in out


def test_bad_env_fault_exits_2() -> None:
    proc = run_cli(
        "--port", str(free_port()), env={"TRADESCOUT_SANDBOX_FAULTS": "yahoo_finance=melt"}
    )
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "TRADESCOUT_SANDBOX_FAULTS" in err


def test_port_in_use_exits_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = run_cli("--port", str(busy.getsockname()[1]))
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "already in use" in err


def test_defences_off_flag() -> None:
    port = free_port()
    proc = run_cli("--port", str(port), "--defences", "off")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        plain = {"User-Agent": "tradescout/0.1"}
        chart = httpx.get(url + "/yahoo_finance/v8/finance/chart/AAPL?range=5d", headers=plain)
        assert chart.status_code == 200  # no browser check, no session needed
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "defences: off" in out
