"""A warm run (everything cached, zero requests) imports only what it uses.

Issue 13 item 7: the warm run's wall time is mostly imports, so what it must not load is pinned
here: the browser TLS stack, the simulator, the team backends, the pacers, the MCP SDK, the
retry machinery, the pure-Python schema validator (only a failing report is re-checked with it),
psutil (RSS is read from /proc on Linux), pydantic-settings, the cluster runner and the other
commands' CLI modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.sandbox.server import SandboxServer
from tests.conftest import (
    clean_env,
    fast_config,
    make_root,
    plain_tickers,
    requests_by_service,
    reset,
    run_cli,
)

NEVER_ON_A_WARM_RUN = (
    "curl_cffi",
    "httpx_curl_cffi",
    "services.sandbox",  # but for the two modules below
    "uvicorn",
    "starlette",
    "redis",
    "cache.redis",  # and the coordination's Redis and failover pieces
    "services.coord.failover",
    "services.coord.redis_conn",
    "aiolimiter",  # the pacers: made when the first request is paced
    "services.coord.limiter",
    "distributed",
    "dask",
    "mcp",
    "tenacity",
    "services.retry",
    "cache.disk.quarantine",  # a damaged namespace or entry only
    "jsonschema",
    "psutil",
    "pydantic_settings",  # the settings read their variables themselves
    "dotenv",
    "discovery.runs.cluster",  # one portfolio without --scheduler/--cluster runs right here
    "discovery.cli.cache",
    "discovery.cli.mcp",
    "discovery.cli.sandbox",
    "discovery.mcp",
    "discovery.view",
)

# The console script's entry point, then the names of every module the process ended up with.
PROBE = """
import json, os, sys
from discovery.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(os.environ["WARM_PROBE_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


# The embedded sandbox's starter (standard library + the fault-spec parser): it imports the
# simulator when the first connection comes in, which a warm run never makes.
SANDBOX_STARTER = ("services.sandbox", "services.sandbox.lazy", "services.sandbox.faults")


def _loaded(found: list[str], name: str) -> list[str]:
    return [
        m for m in found if (m == name or m.startswith(name + ".")) and m not in SANDBOX_STARTER
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="psutil is the RSS reader there")
def test_a_warm_sandbox_run_loads_none_of_the_cold_path(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    config = fast_config(tmp_path)
    env = {"TRADESCOUT_SANDBOX_URL": fast_sandbox.url, "TRADESCOUT_CONFIG": str(config)}
    cold = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
    assert cold.returncode == 0, cold.stderr
    assert sum(requests_by_service(fast_sandbox.url).values()) > 0
    reset(fast_sandbox.url)

    # Warm through `--sandbox` (the embedded simulator, started by a first request only): the
    # same sandbox cache keys, so every answer is a cache hit.
    out = tmp_path / "modules.json"
    warm = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "discover",
            "small",
            "--sandbox",
            "--json",
            "--data-root",
            str(root),
        ],
        cwd=tmp_path,
        env=clean_env({"TRADESCOUT_CONFIG": str(config), "WARM_PROBE_OUT": str(out)}),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert requests_by_service(fast_sandbox.url) == {}
    assert warm.returncode == 0, warm.stderr
    probe = json.loads(out.read_text("utf-8"))
    assert probe["code"] == 0, warm.stdout[-2000:]
    body = json.loads(warm.stdout)
    assert body["exit_code"] == 0 and "0 network" in body["summary"]
    modules: list[str] = probe["modules"]
    assert "discovery.cli.discover" in modules  # the probe saw the real run
    loaded = {name: _loaded(modules, name) for name in NEVER_ON_A_WARM_RUN}
    assert {name: found for name, found in loaded.items() if found} == {}
