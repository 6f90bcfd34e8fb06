"""`[shared]` and `TRADESCOUT_REDIS_URL`: validated in one sentence that never shows a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.errors import ConfigError
from discovery.settings import load_settings


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRADESCOUT_REDIS_URL", "TRADESCOUT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_shares_through_the_data_root(tmp_path: Path) -> None:
    shared = load_settings(data_root=tmp_path).shared_settings()
    assert (shared.redis_url, shared.machines, shared.pacing) == (None, 1, "machine")


def test_toml_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tradescout.toml"
    config.write_text(
        '[shared]\nredis_url = "redis://:${PW}@10.0.0.9:6379/2"\nmachines = 3\n', "utf-8"
    )
    monkeypatch.setenv("PW", "hunter2")
    settings = load_settings(config)
    shared = settings.shared_settings()
    assert shared.redis_url == "redis://:hunter2@10.0.0.9:6379/2" and shared.machines == 3
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(shared)
    monkeypatch.setenv("TRADESCOUT_REDIS_URL", "redis://127.0.0.1:6380/0")
    again = load_settings(config).shared_settings()
    assert again.redis_url == "redis://127.0.0.1:6380/0" and again.machines == 3


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://:pw-secret@host:6379", "scheme"),
        ("redis://:pw-secret@host:99999/0", "parseable"),
        ("redis://:pw-secret@:6379/0", "no host"),
    ],
)
def test_a_bad_url_is_one_sentence_without_its_password(
    url: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADESCOUT_REDIS_URL", url)
    with pytest.raises(ConfigError, match=says) as info:
        load_settings()
    assert "pw-secret" not in str(info.value) and "TRADESCOUT_REDIS_URL" in str(info.value)


def test_machines_is_in_range(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[shared]\nmachines = 0\n", "utf-8")
    with pytest.raises(ConfigError, match=r"shared\.machines"):
        load_settings(config)


def test_a_bad_url_in_the_file_is_named_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[shared]\nredis_url = "http://:pw-secret@host:6379"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"shared\.redis_url") as info:
        load_settings(config)
    assert "pw-secret" not in str(info.value)
