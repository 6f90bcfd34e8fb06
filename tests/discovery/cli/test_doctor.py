"""`tradescout doctor` as a user runs it: a real subprocess against the sandbox through real
sockets, with the fault or key that earns each verdict. "Live" runs point every service's base
URL at a loopback sandbox (so real-key paths are exercised without the internet)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from discovery.cli.mcp import services_probe
from discovery.runs.doctor import last_verdicts, run_doctor, save_verdicts
from discovery.settings import load_settings
from discovery.upstream import Target
from services import fmp
from services.probe import SKIPPED, ProbeResult, Verdict, healthy, verdict_for
from services.quota import read_usage
from services.reasons import REASONS, fix_for
from services.registry import SPECS
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer
from tests.conftest import SERVICES, requests_by_service, run_cli, sandbox_stats

pytestmark = pytest.mark.integration

AV_KEY = "doctor-av-key-Q7"
CG_KEY = "doctor-cg-key-Z9"
GOOD_UA = "Doctor Test doctor@example.invalid"
VERDICTS = set(Verdict.__args__)  # type: ignore[attr-defined]


def pointed_at(url: str, **keys: str) -> dict[str, str]:
    """A live-mode environment whose every service is the sandbox at `url`, with `keys`."""
    env = {f"TRADESCOUT_{name.upper()}_BASE_URL": f"{url}/{name}" for name in SERVICES}
    env.update(keys)
    return env


def doctor_json(
    root: Path, env: Mapping[str, str], *args: str
) -> tuple[int, dict[str, dict[str, Any]], str]:
    done = run_cli(["doctor", "--json", "--data-root", str(root), *args], cwd=root.parent, env=env)
    assert done.stderr == "" or "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    return done.returncode, {row["service"]: row for row in rows}, done.stdout + done.stderr


# -- one live run that earns a different refusal from every service ------------------------------


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Yahoo behind a consent wall, FMP and FRED with refused keys, Alpha Vantage past its daily
    limit (HTTP 200 `Information`), SEC with an identity that declares nobody, IMF down."""
    root = tmp_path_factory.mktemp("refusals") / "data"
    faults = [FaultSpec("yahoo_finance", "consent"), FaultSpec("imf", "down")]
    with SandboxServer(faults=faults, daily_quotas={"alpha_vantage": 0}) as server:
        env = pointed_at(
            server.url,
            FMP_API_KEY="invalid",
            ALPHA_VANTAGE_API_KEY=AV_KEY,
            FRED_API_KEY="invalid",
            SEC_EDGAR_USER_AGENT="tradescout",
            COINGECKO_API_KEY=CG_KEY,
        )
        code, rows, output = doctor_json(root, env)
        sent = sandbox_stats(server.url)
    yield {"code": code, "rows": rows, "output": output, "sent": sent, "root": root}


@pytest.mark.parametrize(
    ("service", "verdict", "reason"),
    [
        ("yahoo_finance", "consent_required", "consent_required"),
        ("fmp", "bad_credential", "bad_credential"),
        ("alpha_vantage", "quota_exhausted", "quota_exhausted"),
        ("sec_edgar", "bad_identity", "bad_identity"),
        ("fred", "bad_credential", "bad_credential"),
        ("coingecko", "ok", None),
        ("imf", "unreachable", "unavailable"),
    ],
)
def test_each_refusal_is_its_own_verdict_with_its_fix(
    refusals: dict[str, Any], service: str, verdict: str, reason: str | None
) -> None:
    row = refusals["rows"][service]
    assert (row["verdict"], row["reason"], row["upstream"]) == (verdict, reason, "live")
    assert row["fix"] == (fix_for(reason) if reason else None)
    assert isinstance(row["latency_ms"], float) and row["latency_ms"] >= 0
    assert row["key_present"] is (service not in ("yahoo_finance", "imf"))
    seen = refusals["sent"][service]
    if service == "imf":  # a 503 is retried (4 attempts), a refusal never is
        assert (seen["requests"], row["requests"]) == (4, 4)
    elif service == "yahoo_finance":  # the consent wall answers the session's first request
        assert (seen["session"], seen["requests"], row["requests"]) == (1, 0, 1)
    else:
        assert (seen["requests"], row["requests"]) == (1, 1)


def test_a_refused_service_makes_exit_3_and_no_key_is_ever_shown(
    refusals: dict[str, Any],
) -> None:
    assert refusals["code"] == 3
    assert refusals["rows"]["coingecko"]["credential_env"] == "COINGECKO_API_KEY"
    root: Path = refusals["root"]
    kept = "".join(p.read_text("utf-8", "replace") for p in (root / "state").glob("*.json"))
    for secret in (AV_KEY, CG_KEY, "Doctor Test"):
        assert secret not in refusals["output"] and secret not in kept
    assert not (root / "cache").exists()  # probes never touch the cache discover reads
    stored = last_verdicts(root / "state", "live")
    assert stored is not None and [r["service"] for r in stored] == list(SERVICES)
    assert {r["service"]: r["verdict"] for r in stored} == {
        s: r["verdict"] for s, r in refusals["rows"].items()
    }


# -- healthy runs ------------------------------------------------------------------------------


def test_embedded_sandbox_all_ok_one_line_per_service(tmp_path: Path) -> None:
    root = tmp_path / "data"
    done = run_cli(["doctor", "--sandbox", "--data-root", str(root)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        len(lines) == len(SERVICES) + 1 and lines[-1] == "7 of 7 configured services ok (sandbox)"
    )
    for name, line in zip(SERVICES, lines, strict=False):
        assert line.split()[:2] == [name, "ok"] and " ms " in line
    assert "answered; session set up" in lines[0]
    assert max(len(line) for line in lines) > 80  # piped: full width, never wrapped
    assert not (root / "cache").exists()
    used = read_usage(root / "state", datetime.now(UTC).date())
    assert {s: n for (u, s), n in used.items() if u == "sandbox"} == {s: 1 for s in SERVICES}


def test_unconfigured_and_disabled_are_skipped_and_do_not_fail(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = tmp_path / "tradescout.toml"
    config.write_text("[services.imf]\nenabled = false\n", encoding="utf-8")
    with SandboxServer(faults=()) as server:
        env = pointed_at(server.url)  # live, no key of any kind
        code, rows, _ = doctor_json(root, env, "--config", str(config))
        sent = requests_by_service(server.url)
    assert code == 0
    verdicts = {name: row["verdict"] for name, row in rows.items()}
    assert verdicts == {
        "yahoo_finance": "ok",
        "fmp": "not_configured",
        "alpha_vantage": "not_configured",
        "sec_edgar": "not_configured",  # never called with a made-up identity
        "fred": "not_configured",
        "coingecko": "ok",
        "imf": "disabled",
    }
    assert sent == {"yahoo_finance": 1, "coingecko": 1}
    assert rows["sec_edgar"]["detail"].startswith("SEC_EDGAR_USER_AGENT not set")
    assert rows["imf"]["fix"] == fix_for("not_configured")
    assert not any(row["key_present"] for row in rows.values())


# -- quota, holds ------------------------------------------------------------------------------


def test_probes_count_against_the_quota_and_a_spent_one_is_not_asked(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = tmp_path / "tradescout.toml"
    config.write_text("[services.fmp]\ndaily_quota = 1\n", encoding="utf-8")
    with SandboxServer(faults=()) as server:
        env = {"TRADESCOUT_SANDBOX_URL": server.url}
        args = ("--service", "fmp", "--config", str(config))
        first = doctor_json(root, env, *args)
        second = doctor_json(root, env, *args)
        sent = requests_by_service(server.url)
    assert (first[0], first[1]["fmp"]["verdict"], first[1]["fmp"]["requests"]) == (0, "ok", 1)
    row = second[1]["fmp"]
    assert (second[0], row["verdict"], row["requests"], row["latency_ms"]) == (
        3,
        "quota_exhausted",
        0,
        None,
    )
    assert "quota of 1 calls is used up" in row["detail"]
    assert sent == {"fmp": 1} and list(second[1]) == ["fmp"]


def test_sec_over_its_rate_is_rate_blocked_then_reported_from_the_hold(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with SandboxServer(faults=(), sec_block_seconds=60.0) as server:
        tickers = f"{server.url}/sec_edgar/files/company_tickers.json"
        with httpx.Client(headers={"User-Agent": GOOD_UA}) as other_tool:  # over 10/s
            answers = [other_tool.get(tickers).status_code for _ in range(12)]
        assert answers[-1] == 403
        env = {"TRADESCOUT_SANDBOX_URL": server.url}
        code, rows, _ = doctor_json(root, env, "--service", "sec_edgar")
        knocked = sandbox_stats(server.url)["sec_edgar"]["requests"]
        again = doctor_json(root, env, "--service", "sec_edgar")
        assert sandbox_stats(server.url)["sec_edgar"]["requests"] == knocked  # not knocked again
    assert (code, rows["sec_edgar"]["verdict"], rows["sec_edgar"]["requests"]) == (
        3,
        "rate_blocked",
        1,
    )
    held = again[1]["sec_edgar"]
    assert (again[0], held["verdict"], held["requests"]) == (3, "rate_blocked", 0)
    assert held["held_until"] and "not asked" in held["detail"]
    assert held["fix"] == fix_for("rate_blocked")


async def test_yahoo_blocked_then_reported_from_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client Yahoo takes for a bot (httpx's own TLS and User-Agent) is blocked after one knock;
    the next doctor (the real CLI, the browser client) reports the block and does not knock."""
    root = tmp_path / "data"
    for name in ("TRADESCOUT_SANDBOX_URL", "TRADESCOUT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    with SandboxServer(faults=()) as server:
        settings = load_settings(data_root=root)
        plain = httpx.AsyncHTTPTransport()
        [result] = await run_doctor(
            settings,
            Target("sandbox", server.url),
            services=["yahoo_finance"],
            transport=plain,
        )
        assert (result.verdict, result.requests, result.session) == ("blocked", 1, "set_up")
        before = sandbox_stats(server.url)["yahoo_finance"]
        code, rows, _ = doctor_json(root, {"TRADESCOUT_SANDBOX_URL": server.url})
        after = sandbox_stats(server.url)["yahoo_finance"]
    assert before["refused"] == 1 and after == before
    row = rows["yahoo_finance"]
    assert (code, row["verdict"], row["requests"], row["fix"]) == (
        3,
        "blocked",
        0,
        fix_for("blocked"),
    )
    assert all(rows[s]["verdict"] == "ok" for s in SERVICES if s != "yahoo_finance")


async def test_a_symbol_outside_the_plan_is_plan_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADESCOUT_CONFIG", raising=False)
    with SandboxServer(faults=()) as server:
        [result] = await run_doctor(
            load_settings(data_root=tmp_path / "data"),
            Target("sandbox", server.url),
            services=["fmp"],
            requests={"fmp": fmp.profile_request("MQG.AX")},
        )
        assert requests_by_service(server.url) == {"fmp": 1}
    assert (result.verdict, result.reason, result.fix) == (
        "plan_limited",
        "plan_limited",
        fix_for("plan_limited"),
    )
    assert result.probe == "GET /stable/profile?symbol=MQG.AX" and not healthy([result])
    assert not (tmp_path / "data" / "cache").exists()


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--service", "nope"], "--service 'nope' is not a service"),
        (["--config", "missing.toml"], "configuration file not found"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_nothing_written(
    tmp_path: Path, args: list[str], says: str
) -> None:
    root = tmp_path / "data"
    done = run_cli(["doctor", "--data-root", str(root), *args], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and not root.exists()


# -- the pure parts ----------------------------------------------------------------------------


def test_every_service_declares_a_probe_of_its_own_datasets() -> None:
    for name, spec in SPECS.items():
        assert spec.probe is not None, name
        request = spec.probe()
        assert request.service == name and request.dataset in spec.datasets


def test_every_reason_earns_a_verdict() -> None:
    refusals = {"blocked", "rate_blocked", "bad_identity", "bad_credential", "plan_limited"}
    refusals |= {"quota_exhausted", "consent_required", "not_configured"}
    for reason in REASONS:
        verdict = verdict_for(reason)
        assert verdict in VERDICTS
        assert verdict == (reason if reason in refusals else "unreachable")
    assert SKIPPED <= VERDICTS


def _result(service: str, verdict: Verdict) -> ProbeResult:
    return ProbeResult(
        service=service,
        verdict=verdict,
        reason=None if verdict == "ok" else verdict,
        detail="d",
        fix=None,
        probe="GET /",
        latency_ms=1.0,
        requests=1,
        key_present=False,
        credential_env=None,
        upstream="live",
        checked_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


def test_healthy_ignores_skipped_services_only() -> None:
    assert healthy([_result("fmp", "ok"), _result("fred", "not_configured")])
    assert healthy([_result("imf", "disabled")])
    assert not healthy([_result("fmp", "ok"), _result("fred", "unreachable")])


def test_kept_verdicts_merge_per_service_and_a_damaged_file_reads_as_none(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert last_verdicts(state) is None
    save_verdicts(state, "live", [_result("fmp", "ok"), _result("imf", "unreachable")])
    save_verdicts(state, "live", [_result("imf", "ok")])
    kept = last_verdicts(state, "live")
    assert kept is not None
    assert [(r["service"], r["verdict"]) for r in kept] == [("fmp", "ok"), ("imf", "ok")]
    assert last_verdicts(state, "sandbox") is None
    (state / "doctor.live.json").write_bytes(b"{not json")
    assert last_verdicts(state, "live") is None


def test_the_mcp_services_hook_shows_the_kept_verdicts_without_probing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TRADESCOUT_SANDBOX_URL", "TRADESCOUT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(data_root=tmp_path / "data")
    before = services_probe(settings)
    assert before["source"] == "services" and before["upstream"] == "live"
    assert all(row["doctor"] is None for row in before["services"])
    save_verdicts(settings.layout.state_dir, "live", [_result("fmp", "bad_credential")])
    body = services_probe(settings)
    rows = {row["service"]: row for row in body["services"]}
    assert body["source"] == "doctor" and list(rows) == list(SERVICES)
    assert rows["fmp"]["doctor"]["verdict"] == "bad_credential" and rows["imf"]["doctor"] is None
    assert "key_present" in rows["fmp"] and "quota_left" in rows["fmp"]
