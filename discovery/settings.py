"""Settings: defaults < `tradescout.toml` < `TRADESCOUT_*` environment < command-line flags.

`tradescout.toml` is optional (`--config`, `$TRADESCOUT_CONFIG`, or `./tradescout.toml`).
`[shared]` says how far limits, quotas and the cache reach: `redis_url` (or `$TRADESCOUT_REDIS_URL`,
which wins) switches on the Redis backends for a team; `machines` is how many hosts share them.
String values may reference environment variables as `${VAR}`; an unset variable is a
`ConfigError`, never a literal `${VAR}` sent to a service. API keys are read from their
conventional variables (`FMP_API_KEY`, ...: the services declare them, see `CREDENTIAL_ENV`) and
held as `SecretStr` so they never print.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from discovery.errors import ConfigError
from discovery.layout import DataLayout
from services.registry import CREDENTIAL_ENV, SERVICE_NAMES

if TYPE_CHECKING:
    from services.coord.backends import SharedSettings

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ServiceOverrides(BaseModel):
    """Per-service knobs; `None` means "the service module's declared default"."""

    model_config = {"extra": "forbid"}

    enabled: bool = True
    base_url: str | None = None
    rate_per_second: float | None = Field(default=None, gt=0)
    daily_quota: int | None = Field(default=None, ge=0)
    max_connections: int | None = Field(default=None, ge=1, le=100)
    timeout_seconds: float | None = Field(default=None, gt=0)
    blocked_cooldown_seconds: float | None = Field(default=None, ge=0)


REDIS_URL_ENV = "TRADESCOUT_REDIS_URL"
REDIS_SCHEMES = ("redis", "rediss", "unix")


class SharedOptions(BaseModel):
    """`[shared]`: what a run shares beyond this machine (see services/coord and cache/redis)."""

    model_config = {"extra": "forbid"}

    redis_url: SecretStr | None = None  # may carry a password: never printed
    machines: int = Field(default=1, ge=1, le=10_000)
    pacing: Literal["machine", "process"] = "machine"
    stale_window_days: float = Field(default=7.0, gt=0, le=365)

    @field_validator("redis_url")
    @classmethod
    def _usable_url(cls, value: SecretStr | None) -> SecretStr | None:
        """A URL redis-py can connect to; the message never quotes it (it may hold a password)."""
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parts = urlsplit(value.get_secret_value().strip())
            port = parts.port
        except ValueError:
            raise ValueError("not a parseable URL (its port or host is malformed)") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(f"the scheme must be one of {', '.join(REDIS_SCHEMES)}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("the URL names no host")
        if port == 0:
            raise ValueError("port 0 is not a port")
        return SecretStr(value.get_secret_value().strip())


def expand_env_refs(value: Any, where: str, environ: Mapping[str, str] | None = None) -> Any:
    """Replace `${VAR}` in every string of a TOML tree; an unset variable is an error."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{where}: environment variable ${{{name}}} is not set "
                    "(set it or remove the reference)."
                )
            return env[name]

        return _VAR_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env_refs(v, f"{where}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env_refs(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    return value


def load_toml(path: Path) -> dict[str, Any]:
    """Read and expand a tradescout.toml; unreadable or invalid TOML is a ConfigError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
    expanded = expand_env_refs(raw, str(path))
    assert isinstance(expanded, dict)
    return expanded


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything configurable. Build with `load_settings()`, not directly."""

    model_config = SettingsConfigDict(env_prefix="TRADESCOUT_", extra="forbid")

    data_root: Path = Path("data")
    max_local_age_days: int = Field(default=30, ge=0)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    memory_limit_mb: int = Field(default=1024, ge=16)
    csv_chunk_rows: int = Field(default=50_000, ge=100)
    cache_size_limit_mb: int = Field(default=512, ge=1)
    benchmark: str = "SPY"
    sandbox_url: str | None = None
    services: dict[str, ServiceOverrides] = Field(default_factory=dict)
    shared: SharedOptions = Field(default_factory=SharedOptions)

    # Credentials: read from their conventional variables (services.registry.CREDENTIAL_ENV,
    # no TRADESCOUT_ prefix) when the settings are built; never a field, so never in a dump.
    _credentials: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        url = os.environ.get(REDIS_URL_ENV, "")
        if url.strip():
            try:
                self.shared = SharedOptions(
                    **{**self.shared.model_dump(exclude={"redis_url"}), "redis_url": url}
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ConfigError(
                    f"environment: {REDIS_URL_ENV} is invalid: {first['msg']}."
                ) from None
        for names in CREDENTIAL_ENV.values():
            for name in names:
                value = os.environ.get(name, "")
                if value.strip():
                    self._credentials[name] = SecretStr(value)

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: dict[str, ServiceOverrides]) -> dict[str, ServiceOverrides]:
        unknown = sorted(set(value) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, _PENDING_TOML))

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_root)

    def shared_settings(self) -> SharedSettings:
        """The coordination's view of `[shared]` (the Redis URL handed over only here)."""
        from services.coord.backends import SharedSettings

        url = self.shared.redis_url
        return SharedSettings(
            redis_url=url.get_secret_value() if url is not None else None,
            machines=self.shared.machines,
            pacing=self.shared.pacing,
        )

    def credential_source(self, service: str) -> tuple[str, SecretStr] | None:
        """The variable and value of the service's credential that wins (the first set, in the
        service's order of precedence), or None when every one is unset or blank."""
        for name in CREDENTIAL_ENV.get(service, ()):
            value = self._credentials.get(name)
            if value is not None:
                return name, value
        return None

    def credential(self, service: str) -> SecretStr | None:
        """The service's key or identity, or None when unset or blank."""
        source = self.credential_source(service)
        return source[1] if source is not None else None

    def overrides(self, service: str) -> ServiceOverrides:
        """Overrides for one service, with `TRADESCOUT_{SERVICE}_BASE_URL` applied on top."""
        base = self.services.get(service, ServiceOverrides())
        env_url = os.environ.get(f"TRADESCOUT_{service.upper()}_BASE_URL")
        if env_url:
            base = base.model_copy(update={"base_url": env_url})
        return base


# The TOML of the load in progress (pydantic-settings builds sources from the class).
_PENDING_TOML: dict[str, Any] = {}


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: configuration file not found.")
        return explicit
    env = os.environ.get("TRADESCOUT_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file (from TRADESCOUT_CONFIG) not found.")
        return path
    local = Path("tradescout.toml")
    return local if local.is_file() else None


def config_file(explicit: Path | None = None) -> Path | None:
    """The configuration file a load would read (absolute), or None: what a Dask task is told
    to read, since a worker's working directory is not the caller's."""
    path = _config_path(explicit)
    return path.resolve() if path is not None else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, TOML, environment and explicit overrides (flags).

    Overrides whose value is None are ignored, so CLI options can pass through unset.
    Invalid values become one `ConfigError` sentence naming the setting.
    """
    global _PENDING_TOML
    path = _config_path(config)
    _PENDING_TOML = load_toml(path) if path else {}
    where = str(path) if path else "environment"
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"{where}: setting {loc!r} is invalid: {first['msg']}.") from None
    finally:
        _PENDING_TOML = {}
