"""Cross-cutting hostile cases through the real CLI (issue 12): random SIGKILLs of discover and
refresh, a secret with URL-special characters, and non-finite upstream numbers.

Each case runs `tradescout` in a subprocess against the loopback sandbox and asserts what the
user sees and what is left on disk: whole reports, a cache that verifies, a readable ledger,
nothing refetched that was cached, no secret in any form in any file or message, and every
number in every report finite.
"""

from __future__ import annotations

import json
import math
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from cache.disk.store import DiskCache, existing_namespaces
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer
from tests.conftest import (
    FAST_LIMITS,
    SERVICES,
    TRADESCOUT,
    clean_env,
    fast_config,
    gaps_of,
    make_root,
    plain_tickers,
    report_files,
    requests_by_service,
    reset,
    run_cli,
    stats,
)

FAULT_REASONS = {"not_found", "no_data", "not_applicable"}


def sandbox_env(url: str, config: Path | None = None) -> dict[str, str]:
    """The sandbox as the upstream (its own credentials; reports marked synthetic)."""
    env = {"TRADESCOUT_SANDBOX_URL": url}
    return env | ({"TRADESCOUT_CONFIG": str(config)} if config else {})


def live_env(url: str, config: Path) -> dict[str, str]:
    """The sandbox behind the live base URLs: the credentials are the ones the test sets."""
    env = {f"TRADESCOUT_{s.upper()}_BASE_URL": f"{url}/{s}" for s in SERVICES}
    return env | {"TRADESCOUT_CONFIG": str(config), "SEC_EDGAR_USER_AGENT": "T P t@example.org"}


def cache_entries(root: Path) -> dict[str, int]:
    with DiskCache(root / "cache") as cache:
        return {
            name: sum(1 for _ in cache.namespace(name).iter_keys())
            for name in existing_namespaces(root / "cache")
        }


def finite_json(path: Path) -> Any:
    """The report, refusing the NaN/Infinity literals `json` accepts by default."""

    def refuse(literal: str) -> float:
        raise AssertionError(f"{literal} in {path.name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def numbers(node: Any, where: str = "$") -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numbers(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{where}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield where, float(node)


def assert_every_number_finite(path: Path) -> int:
    found = list(numbers(finite_json(path)))
    bad = [(where, n) for where, n in found if not math.isfinite(n)]
    assert bad == [], f"non-finite numbers in {path.name}: {bad[:5]}"
    return len(found)


def ledger_is_whole(root: Path) -> None:
    ledger = root / "state" / "ledger.sqlite"
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
def test_random_sigkills_of_discover_and_refresh_then_a_rerun(tmp_path: Path) -> None:
    """107-style: a handful of kills at random points, each followed by the checks."""
    pick = random.Random(107)
    root = make_root(tmp_path, plain_tickers(6))
    config = fast_config(tmp_path)
    with SandboxServer(faults=(), rate_limits=FAST_LIMITS, latency_ms=120) as server:
        for round_ in range(4):
            command = ["discover", "small"] if round_ % 2 == 0 else ["refresh", "small"]
            reset(server.url)
            at = pick.randint(1, 6)  # served answers before the kill
            proc = subprocess.Popen(
                [str(TRADESCOUT), *command, "--data-root", str(root)],
                cwd=tmp_path,
                env=clean_env(sandbox_env(server.url)),  # default client rates: seconds
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 30
            while proc.poll() is None and sum(s["served"] for s in stats(server.url).values()) < at:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(pick.uniform(0.0, 0.3))  # anywhere: mid-request, mid-write, mid-report
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            for path in report_files(root):  # absent, or whole and finite
                assert_every_number_finite(path)
            ledger_is_whole(root)
            verify = run_cli(["cache", "verify", "--data-root", str(root)], cwd=tmp_path)
            assert verify.returncode == 0, verify.stdout + verify.stderr
            assert re.search(r"\b[1-9]\d* quarantined", verify.stdout) is None, verify.stdout

        cached = cache_entries(root)
        reset(server.url)
        rerun = run_cli(
            ["discover", "small", "--data-root", str(root)],
            cwd=tmp_path,
            env=sandbox_env(server.url, config),
        )
        assert rerun.returncode == 0, rerun.stderr
        spent = requests_by_service(server.url)
    final = cache_entries(root)
    # nothing that was cached before the rerun was fetched again
    assert spent == {k: final[k] - cached.get(k, 0) for k in final if final[k] > cached.get(k, 0)}
    newest = report_files(root)[-1]
    assert gaps_of(finite_json(newest)) == []
    assert assert_every_number_finite(newest) > 0


NASTY = {
    "FMP_API_KEY": "Fk+e%y#1?a&b=c/d e",
    "ALPHA_VANTAGE_API_KEY": "Ak%2B+y#?=&/ z",
    "FRED_API_KEY": "Rk#y?%+&= /x",
    "COINGECKO_API_KEY": "Ck?%#+ &=/key",
}


def spellings(secret: str) -> set[str]:
    """Every form a secret can take in a URL, header or body."""
    percent = quote(secret, safe="")
    return {secret, quote(secret), percent, percent.lower(), quote_plus(secret)} | {
        secret.replace("+", " ")
    }


def test_a_secret_with_url_special_characters_is_nowhere_under_the_root(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(2))
    env = live_env(fast_sandbox.url, fast_config(tmp_path)) | NASTY
    runs = [
        run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env),
        run_cli(["discover", "small", "--json", "--data-root", str(root)], cwd=tmp_path, env=env),
        run_cli(["services", "--data-root", str(root)], cwd=tmp_path, env=env),
        run_cli(["doctor", "--data-root", str(root)], cwd=tmp_path, env=env),
    ]
    assert runs[0].returncode == 0, runs[0].stderr  # every key was used, and worked
    report = finite_json(report_files(root)[0])
    assert report["discovery_metadata"]["upstream"] == "live" and gaps_of(report) == []
    needles = {form for secret in NASTY.values() for form in spellings(secret)}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "tradescout.toml"]
    assert any(p.name == "cache.db" for p in files)
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in blob, f"{needle!r} found in {path}"
    for proc in runs:
        for text in (proc.stdout, proc.stderr):
            for needle in needles:
                assert needle not in text, f"{needle!r} in the output of {proc.args[1:3]}"


def test_every_number_in_the_report_is_finite_when_upstreams_send_nonfinite(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    faults = [FaultSpec(name, "nonfinite") for name in SERVICES]
    with SandboxServer(faults=faults, rate_limits=FAST_LIMITS) as server:
        done = run_cli(
            ["discover", "small", "--data-root", str(root)],
            cwd=tmp_path,
            env=sandbox_env(server.url, fast_config(tmp_path)),
        )
        faulted = {name: s["faulted"] for name, s in stats(server.url).items()}
    assert done.returncode in (0, 3), done.stderr
    assert "Traceback" not in done.stderr
    assert faulted["yahoo_finance"] > 0 and faulted["sec_edgar"] > 0 and faulted["fmp"] > 0
    (path,) = report_files(root)
    assert assert_every_number_finite(path) > 0
    words = (done.stdout + done.stderr).lower().replace(",", " ").split()
    assert not {"nan", "inf", "-inf", "infinity"} & set(words)
