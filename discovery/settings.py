"""Settings: defaults < `tradescout.toml` < `TRADESCOUT_*` environment < command-line flags.

`tradescout.toml` is optional (`--config`, `$TRADESCOUT_CONFIG`, or `./tradescout.toml`).
String values may reference environment variables as `${VAR}` (spaces inside the braces are
allowed) or `${VAR:-default}` (the default when VAR is unset or empty, as in a shell). Every
`${…}` is a reference: an unset variable without a default, or a form that is not one of these,
is a `ConfigError` — never a literal `${VAR}` sent to a service. Every value is validated (finite,
in range, a URL that parses) and a bad one is one sentence naming the setting and where it came
from (the file, the variable or the flag). API keys are read from their conventional variables
(`FMP_API_KEY`, ...: the services declare them, see `CREDENTIAL_ENV`) and held as `SecretStr` so
they never print. `[shared]` says how far limits, quotas and the cache reach:
`redis_url` (or `$TRADESCOUT_REDIS_URL`, which wins) switches on the Redis backends for a team;
`machines` is how many hosts share them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from discovery.errors import ConfigError, echo
from discovery.ingest import CHUNK_ROWS
from discovery.layout import DataLayout
from discovery.tickers import is_valid_ticker, normalize_ticker
from services.registry import CREDENTIAL_ENV, SERVICE_NAMES

if TYPE_CHECKING:
    from services.coord.backends import SharedSettings

_REF_RE = re.compile(r"\$\{([^}]*)\}")
_REF_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::-(.*))?$", re.DOTALL)

# Ranges of the numeric settings (one declaration: the fields and the messages read them).
RANGES: dict[str, tuple[float, float]] = {
    "max_local_age_days": (0, 36_500),
    "max_concurrency": (1, 256),
    "memory_limit_mb": (16, 1_048_576),
    "csv_chunk_rows": (100, 1_000_000),
    "cache_size_limit_mb": (1, 1_048_576),
    "rate_per_second": (0.001, 1_000),
    "daily_quota": (0, 10_000_000),
    "max_connections": (1, 100),
    "timeout_seconds": (0.1, 600),
    "blocked_cooldown_seconds": (0, 86_400),
}


def _range(name: str) -> Any:
    lo, hi = RANGES[name]
    return Field(default=None, ge=lo, le=hi, allow_inf_nan=False)


def check_url(value: str) -> str:
    """An http(s) URL that parses: a host, a port in range, no spaces or control characters."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValueError("a URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    del port
    return value


class ServiceOverrides(BaseModel):
    """Per-service knobs; `None` means "the service module's declared default"."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built below

    enabled: bool = True
    base_url: str | None = None
    rate_per_second: float | None = _range("rate_per_second")
    daily_quota: int | None = _range("daily_quota")
    max_connections: int | None = _range("max_connections")
    timeout_seconds: float | None = _range("timeout_seconds")
    blocked_cooldown_seconds: float | None = _range("blocked_cooldown_seconds")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)


def _expand(text: str, where: str, env: Mapping[str, str]) -> str:
    if "${" in text and _REF_RE.sub("", text).count("${"):
        raise ConfigError(f"{where}: a '${{' reference is never closed with '}}'.")

    def sub(match: re.Match[str]) -> str:
        form = _REF_FORM.match(match.group(1))
        if form is None:
            raise ConfigError(
                f"{where}: {echo(match.group(0))} is not a reference tradescout understands; "
                "write ${NAME} or ${NAME:-default}."
            )
        name, default = form.group(1), form.group(2)
        value = env.get(name)
        if value is None or (default is not None and value == ""):
            if default is None:
                raise ConfigError(
                    f"{where}: environment variable ${{{name}}} is not set "
                    "(set it, give a default as ${NAME:-default}, or remove the reference)."
                )
            return default
        return value

    return _REF_RE.sub(sub, text)


REDIS_URL_ENV = "TRADESCOUT_REDIS_URL"
REDIS_SCHEMES = ("redis", "rediss", "unix")


class SharedOptions(BaseModel):
    """`[shared]`: what a run shares beyond this machine (see services/coord and cache/redis)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built below

    redis_url: SecretStr | None = None  # may carry a password: never printed
    machines: int = Field(default=1, ge=1, le=10_000)
    pacing: Literal["machine", "process"] = "machine"
    stale_window_days: float = Field(default=7.0, gt=0, le=365, allow_inf_nan=False)

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
    """Replace `${VAR}` / `${VAR:-default}` in every string of a TOML tree (see the module)."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _expand(value, where, env)
    if isinstance(value, dict):
        return {k: expand_env_refs(v, f"{where}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env_refs(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    return value


def load_toml(path: Path) -> dict[str, Any]:
    """Read and expand a tradescout.toml; unreadable or invalid TOML is a ConfigError."""
    import tomllib  # only when there is a file to read (1.5 ms of a run without one)

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
    expanded = expand_env_refs(raw, str(path))
    assert isinstance(expanded, dict)
    return expanded


ENV_PREFIX = "TRADESCOUT_"


def _layered(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """`high` over `low`; where both hold a table, the two tables are layered key by key."""
    out = dict(low)
    for key, value in high.items():
        below = out.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            out[key] = _layered(below, value)
        else:
            out[key] = value
    return out


def _environment(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `TRADESCOUT_{FIELD}` variables give (names matched in any case, as
    pydantic-settings did before). A table-valued setting (`services`, `shared`) is JSON; a
    `shared` table's keys are matched to its fields in any case too. Nothing is validated here."""
    env = {name.lower(): value for name, value in os.environ.items()}
    found: dict[str, Any] = {}
    for name, field in fields.items():
        raw = env.get(f"{ENV_PREFIX}{name}".lower())
        if raw is None:
            continue
        kind = field.annotation
        if kind is SharedOptions or getattr(kind, "__origin__", None) is dict:
            try:
                value = json.loads(raw)
            except ValueError:
                raise ConfigError(
                    f"environment variable {ENV_PREFIX}{name.upper()} is not valid JSON "
                    '(e.g. {"fmp": {"enabled": false}}).'
                ) from None
            if value is None:  # JSON `null`: as if unset
                continue
            if kind is SharedOptions and isinstance(value, dict):
                known = {f.lower(): f for f in SharedOptions.model_fields}
                value = {known.get(k.lower(), k): v for k, v in value.items()}
            found[name] = value
        else:
            found[name] = raw
    return found


class Settings(BaseModel):
    """Everything configurable. Build with `load_settings()`, not directly.

    Built from keyword arguments over the `TRADESCOUT_*` environment over the TOML of the load
    in progress (each layer's tables layered key by key over the next). Read by hand rather than
    through pydantic-settings, which cost a warm run ~10 ms of imports."""

    # Defaults are validated too (the benchmark's default is normalised like a given one).
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)

    data_root: Path = Path("data")
    max_local_age_days: int = Field(default=30, ge=0, le=RANGES["max_local_age_days"][1])
    max_concurrency: int = Field(default=16, ge=1, le=RANGES["max_concurrency"][1])
    memory_limit_mb: int = Field(default=1024, ge=16, le=RANGES["memory_limit_mb"][1])
    csv_chunk_rows: int = Field(default=CHUNK_ROWS, ge=100, le=RANGES["csv_chunk_rows"][1])
    cache_size_limit_mb: int = Field(default=512, ge=1, le=RANGES["cache_size_limit_mb"][1])

    benchmark: str = "SPY"
    # The currency money totals are also converted into (where an exchange rate can be had).
    base_currency: str = "USD"
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
                msg = str(first["msg"]).removeprefix("Value error, ")
                raise ConfigError(
                    f"environment variable {REDIS_URL_ENV} is invalid: {msg}."
                ) from None
        for names in CREDENTIAL_ENV.values():
            for name in names:
                value = os.environ.get(name, "")
                if value.strip():
                    self._credentials[name] = SecretStr(value)

    @field_validator("sandbox_url")
    @classmethod
    def _sandbox_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("benchmark")
    @classmethod
    def _benchmark(cls, value: str) -> str:
        symbol = normalize_ticker(value)
        if not is_valid_ticker(symbol):
            raise ValueError("not a plausible ticker symbol")
        return symbol

    @field_validator("base_currency")
    @classmethod
    def _base_currency(cls, value: str) -> str:
        code = value.strip().upper()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ValueError("not a three-letter currency code (USD, EUR, AUD, …)")
        return code

    @field_validator("data_root")
    @classmethod
    def _data_root(cls, value: Path) -> Path:
        if "\x00" in str(value) or not str(value).strip():
            raise ValueError("not a usable path")
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: dict[str, ServiceOverrides]) -> dict[str, ServiceOverrides]:
        unknown = sorted(set(value) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}"
            )
        return value

    def __init__(self, **values: Any) -> None:
        layers = _layered(_layered(_PENDING_TOML, _environment(type(self).model_fields)), values)
        super().__init__(**layers)

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


# The TOML of the load in progress (the lowest layer of `Settings(...)`).
_PENDING_TOML: dict[str, Any] = {}


# The models are built here with pydantic's plugin lookup off, as typer builds its own: the
# lookup reads the metadata of every installed package (3-7 ms of each run) for plugins that
# could only watch these settings being read.
_NO_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


@contextlib.contextmanager
def _pydantic_plugins_off() -> Iterator[None]:
    previous = os.environ.get(_NO_PLUGINS)
    os.environ[_NO_PLUGINS] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[_NO_PLUGINS]
        else:
            os.environ[_NO_PLUGINS] = previous


with _pydantic_plugins_off():
    for _model in (ServiceOverrides, SharedOptions, Settings):
        _model.model_rebuild(force=True)


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


def load_settings(
    config: Path | None = None, *, flag_names: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build settings from defaults, TOML, environment and explicit overrides (flags).

    Overrides whose value is None are ignored, so CLI options can pass through unset.
    Invalid values become one `ConfigError` sentence naming the setting and its source:
    `flag_names` maps a setting to the flag it came from (`--memory-limit-mb`).
    """
    global _PENDING_TOML
    path = _config_path(config)
    _PENDING_TOML = load_toml(path) if path else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise _sentence(exc, path, given, flag_names or {}) from None
    finally:
        _PENDING_TOML = {}
    for service in SERVICE_NAMES:
        variable = f"TRADESCOUT_{service.upper()}_BASE_URL"
        url = os.environ.get(variable)
        if url:
            try:
                check_url(url)
            except ValueError as exc:
                raise ConfigError(
                    f"environment variable {variable} is invalid: {exc} (got {echo(url)})."
                ) from None
    return settings


_FRACTIONAL = frozenset({"rate_per_second", "timeout_seconds", "blocked_cooldown_seconds"})


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _sentence(
    exc: ValidationError, path: Path | None, given: Mapping[str, Any], flags: Mapping[str, str]
) -> ConfigError:
    """The first validation error as one sentence: which setting, from where, what is allowed."""
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    name = ".".join(loc) or "settings"
    leaf = loc[-1] if loc else ""
    value = first.get("input")
    secret = leaf == "redis_url"  # may carry a password: never echoed
    shown = "" if isinstance(value, dict) or secret else f" (got {echo(value)})"
    msg = str(first["msg"])
    if leaf in RANGES:
        lo, hi = RANGES[leaf]
        whole = leaf not in _FRACTIONAL
        msg = f"use a {'whole ' if whole else 'finite '}number from {_num(lo)} to {_num(hi)}"
    msg = msg.removeprefix("Value error, ")
    top = loc[0] if loc else ""
    if top in given and top in flags:
        return ConfigError(f"{flags[top]} is invalid: {msg}{shown}.")
    if top in given:
        return ConfigError(f"setting {name!r} is invalid: {msg}{shown}.")
    variable = f"TRADESCOUT_{top.upper()}"
    if top.upper() in (name for names in CREDENTIAL_ENV.values() for name in names):
        return ConfigError(f"environment variable {top.upper()} is invalid: {msg}.")
    if variable in os.environ:
        return ConfigError(f"environment variable {variable} is invalid: {msg}{shown}.")
    where = str(path) if path else "configuration"
    return ConfigError(f"{where}: setting {name!r} is invalid: {msg}{shown}.")
