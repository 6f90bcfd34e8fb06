"""The fan-out's pure parts and its in-process path: placements, worst exit code, budget shares,
results, and task arguments that never hold a credential (no cluster started here)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from discovery.errors import InputError
from discovery.runs.cluster import (
    Placement,
    RunResult,
    RunSpec,
    parse_placement,
    results_table,
    run_all,
    split_budgets,
    worst_exit,
)
from discovery.settings import load_settings
from discovery.upstream import Target


def test_placements() -> None:
    assert parse_placement(None, None) == Placement()
    assert parse_placement(None, "local:3") == Placement("local", workers=3)
    assert parse_placement("tcp://10.0.0.5:8786", None) == Placement(
        "scheduler", address="tcp://10.0.0.5:8786"
    )


@pytest.mark.parametrize(
    ("scheduler", "cluster", "says"),
    [
        ("tcp://h:1", "local:2", "exclude each other"),
        (None, "local:0", "from 1 to 64"),
        (None, "local:65", "from 1 to 64"),
        (None, "remote:2", "use local:N"),
        (None, "local:x" * 40, "use local:N"),
        ("http://h:8786", None, "tcp://HOST:PORT"),
        ("tcp://h", None, "tcp://HOST:PORT"),
        ("tcp://h:99999", None, "tcp://HOST:PORT"),
        ("tcp://[::1", None, "tcp://HOST:PORT"),
    ],
)
def test_a_bad_placement_is_one_sentence(
    scheduler: str | None, cluster: str | None, says: str
) -> None:
    with pytest.raises(InputError, match=says) as info:
        parse_placement(scheduler, cluster)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_the_worst_exit_code_wins() -> None:
    assert worst_exit([]) == 0
    assert worst_exit([0, 0]) == 0
    assert worst_exit([0, 3, 0]) == 3
    assert worst_exit([3, 2, 0]) == 2
    assert worst_exit([2, 1, 3]) == 1


def test_parallel_refreshes_share_each_budget(tmp_path: Path) -> None:
    settings = load_settings(data_root=tmp_path)
    shares = dict(split_budgets(settings, Target(), {}, 3))
    assert shares["fmp"] == 250 // 2 // 3 and shares["alpha_vantage"] == 25 // 2 // 3
    assert shares["yahoo_finance"] is None  # no quota, no budget
    assert dict(split_budgets(settings, Target(), {"fmp": 10}, 4))["fmp"] == 2


def test_task_arguments_hold_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "fmp-secret-value")
    monkeypatch.setenv("TRADESCOUT_REDIS_URL", "redis://:redis-pass@127.0.0.1:6379/0")
    spec = RunSpec("discover", "demo", str(tmp_path), upstream="live")
    dumped = pickle.dumps(spec) + repr(spec).encode()
    assert b"fmp-secret-value" not in dumped and b"redis-pass" not in dumped


def test_in_process_runs_go_one_after_another_and_a_bad_one_is_a_result(tmp_path: Path) -> None:
    specs = [RunSpec("discover", name, str(tmp_path / "data"), offline=True) for name in ("a", "b")]
    seen: list[str] = []
    results = run_all(specs, Placement(), on_result=lambda r: seen.append(r.portfolio))
    assert seen == ["a", "b"]
    assert [r.exit_code for r in results] == [2, 2]
    assert all(r.error and "a" in r.error for r in results[:1])
    assert all(r.worker is None for r in results)
    lines = results_table(results)
    assert len(lines) == 3 and lines[1].startswith("a") and "2" in lines[1]


def test_results_serialize_without_the_summary() -> None:
    body = RunResult("p", 0, "/r.json", "long summary", 0, "w tcp://127.0.0.1:1").to_json()
    assert "summary" not in body and body["worker"] == "w tcp://127.0.0.1:1"
