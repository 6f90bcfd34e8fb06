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
