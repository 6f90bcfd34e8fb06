from __future__ import annotations

from pathlib import Path

import pytest

from discovery.errors import ConfigError
from discovery.settings import expand_env_refs, load_settings


def test_env_refs_expand_and_unset_is_an_error() -> None:
    env = {"HOME_DIR": "/h"}
    assert expand_env_refs({"a": "${HOME_DIR}/x", "b": ["${HOME_DIR}"]}, "cfg", env) == {
        "a": "/h/x",
        "b": ["/h"],
    }
    with pytest.raises(ConfigError, match=r"MISSING_ONE"):
        expand_env_refs({"services": {"fmp": {"base_url": "${MISSING_ONE}"}}}, "cfg", env)


def test_toml_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tradescout.toml"
    cfg.write_text(
        "max_concurrency = 3\nmemory_limit_mb = 500\n[services.fmp]\ndaily_quota = 100\n"
    )
    monkeypatch.setenv("TRADESCOUT_MEMORY_LIMIT_MB", "600")
    s = load_settings(cfg, max_local_age_days=7)
    assert s.max_concurrency == 3  # from TOML
    assert s.memory_limit_mb == 600  # env beats TOML
    assert s.max_local_age_days == 7  # flag beats both
    assert s.overrides("fmp").daily_quota == 100


def test_per_service_base_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESCOUT_FMP_BASE_URL", "http://127.0.0.1:9/fmp")
    assert load_settings().overrides("fmp").base_url == "http://127.0.0.1:9/fmp"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("max_concurrency = 0\n", "max_concurrency"),
        ("[services.nosuch]\nenabled = true\n", "nosuch"),
        ("this is = not toml [\n", "TOML"),
    ],
)
def test_bad_config_is_one_sentence(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "tradescout.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(cfg)


def test_keys_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "SEKRETsettings")
    s = load_settings()
    assert "SEKRETsettings" not in repr(s) and "SEKRETsettings" not in str(s.model_dump())
    cred = s.credential("fmp")
    assert cred is not None and cred.get_secret_value() == "SEKRETsettings"
    monkeypatch.setenv("FMP_API_KEY", "  ")
    assert load_settings().credential("fmp") is None


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${ HOME_DIR }/x", {"HOME_DIR": "/h"}, "/h/x"),  # spaces inside the braces
        ("${MISSING:-/d}", {}, "/d"),  # unset: the default
        ("${EMPTY:-/d}", {"EMPTY": ""}, "/d"),  # empty: the default too, as in a shell
        ("${SET:-/d}", {"SET": "/s"}, "/s"),
        ("$HOME_DIR stays", {"HOME_DIR": "/h"}, "$HOME_DIR stays"),  # no braces: not a reference
    ],
)
def test_reference_forms(value: str, env: dict[str, str], expected: str) -> None:
    assert expand_env_refs(value, "cfg", env) == expected


@pytest.mark.parametrize("value", ["${}", "${1BAD}", "${X:?msg}", "${X", "a ${X:-b"])
def test_every_other_dollar_brace_form_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError):
        expand_env_refs(value, "cfg", {"X": "x"})


def test_a_flag_is_named_in_its_sentence() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(memory_limit_mb=0, flag_names={"memory_limit_mb": "--memory-limit-mb"})
    assert str(caught.value) == (
        "--memory-limit-mb is invalid: use a whole number from 16 to 1,048,576 (got 0)."
    )


def test_an_environment_variable_is_named_in_its_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESCOUT_MAX_CONCURRENCY", "inf")
    with pytest.raises(ConfigError, match=r"^environment variable TRADESCOUT_MAX_CONCURRENCY"):
        load_settings()


def test_a_per_service_base_url_variable_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESCOUT_FMP_BASE_URL", "http://[::1")
    with pytest.raises(ConfigError, match=r"TRADESCOUT_FMP_BASE_URL is invalid"):
        load_settings()


def test_a_table_from_the_environment_is_layered_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "tradescout.toml"
    cfg.write_text("[services.fmp]\ndaily_quota = 100\nrate_per_second = 2.0\n")
    monkeypatch.setenv(
        "TRADESCOUT_SERVICES", '{"fmp": {"daily_quota": 5}, "fred": {"enabled": false}}'
    )
    s = load_settings(cfg)
    assert (s.overrides("fmp").daily_quota, s.overrides("fmp").rate_per_second) == (5, 2.0)
    assert s.overrides("fred").enabled is False
    flagged = load_settings(cfg, services={"fmp": {"daily_quota": 7}})
    assert (flagged.overrides("fmp").daily_quota, flagged.overrides("fred").enabled) == (7, False)


def test_variable_names_and_shared_keys_match_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADESCOUT_MAX_CONCURRENCY", raising=False)
    monkeypatch.setenv("tradescout_max_concurrency", "5")
    monkeypatch.setenv("TRADESCOUT_SHARED", '{"Machines": 4}')
    s = load_settings()
    assert (s.max_concurrency, s.shared.machines) == (5, 4)


@pytest.mark.parametrize("name", ["TRADESCOUT_SERVICES", "TRADESCOUT_SHARED"])
def test_a_table_variable_that_is_not_json_is_one_sentence(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, '{"fmp": ')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f'environment variable {name} is not valid JSON (e.g. {{"fmp": {{"enabled": false}}}}).'
    )
