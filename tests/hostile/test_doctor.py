"""`doctor` against hostile upstreams through real sockets: a probe that meets a huge, deep,
trickling or offsite-redirecting answer ends as `unreachable` with its detail, within its
deadline, after one request; an upstream's words never put a terminal escape or the key on the
user's screen."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from discovery.runs.doctor import run_doctor
from discovery.settings import load_settings
from discovery.upstream import Target
from services.sandbox.faults import FaultSpec
from services.sandbox.hostile import HostileConfig
from services.sandbox.server import SandboxServer
from tests.conftest import requests_by_service, run_cli

pytestmark = pytest.mark.integration
SECRET = "doctor-hostile-K3y"


class StandIn:
    """A loopback origin answering every request with `reply(path, query)` and recording it."""

    def __init__(self, status: int, body: Any) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(self.path)
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                data = json.dumps(body(query) if callable(body) else body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def offsite() -> Iterator[StandIn]:
    other = StandIn(200, {"stolen": True})
    yield other
    other.close()


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("huge", "too large"),
        ("deep", "too deep"),
        ("trickle", "too slow"),
        ("redirect_offsite", "another origin"),
    ],
)
async def test_a_hostile_answer_is_unreachable_after_one_request(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offsite: StandIn,
    mode: str,
    detail: str,
) -> None:
    config = tmp_path / "tradescout.toml"
    config.write_text("[services.fmp]\ntimeout_seconds = 0.5\n", encoding="utf-8")
    hostile = HostileConfig(huge_bytes=16 << 20, trickle_interval_s=0.1, offsite_url=offsite.url)
    with SandboxServer(faults=[FaultSpec("fmp", mode)], hostile=hostile) as server:  # type: ignore[arg-type]
        monkeypatch.setenv("FMP_API_KEY", SECRET)
        monkeypatch.setenv("TRADESCOUT_FMP_BASE_URL", f"{server.url}/fmp")
        settings = load_settings(config, data_root=tmp_path / "data")
        started = time.monotonic()
        [result] = await run_doctor(settings, Target(), services=["fmp"])
        elapsed = time.monotonic() - started
        assert requests_by_service(server.url) == {"fmp": 1}
    assert (result.verdict, result.reason, result.requests) == ("unreachable", "bad_response", 1)
    assert detail in result.detail and SECRET not in result.detail
    assert elapsed < 5.0
    assert offsite.seen == []  # nothing, least of all the key, went to the other origin


def test_an_upstreams_escape_sequences_and_echoed_key_never_reach_the_screen(
    tmp_path: Path,
) -> None:
    """FMP's 403 body with terminal escapes (clear screen, retitle, bell) and the key echoed."""

    def body(query: dict[str, str]) -> dict[str, str]:
        key = query.get("apikey", "")
        return {"Error Message": f"\x1b[2J\x1b]0;pwned\x07\x1b[31mkey {key} is legacy\x1b[0m"}

    stand_in = StandIn(403, body)
    try:
        env = {"FMP_API_KEY": SECRET, "TRADESCOUT_FMP_BASE_URL": stand_in.url}
        root = tmp_path / "data"
        done = run_cli(
            ["doctor", "--service", "fmp", "--data-root", str(root)], cwd=tmp_path, env=env
        )
    finally:
        stand_in.close()
    assert done.returncode == 3 and len(stand_in.seen) == 1  # a refusal: never retried
    [line, summary] = done.stdout.splitlines()
    assert line.split()[:2] == ["fmp", "unreachable"] and "is legacy" in line
    assert summary == "0 of 1 configured services ok (live)"
    for shown in (done.stdout, done.stderr):
        assert "\x1b" not in shown and "\x07" not in shown and SECRET not in shown
    kept = (root / "state" / "doctor.live.json").read_text(encoding="utf-8")
    assert SECRET not in kept and "\\u001b" not in kept
