"""Per-run service configuration: what the settings say, resolved against a service's defaults.

`ServiceConfig` is what the pipeline hands the hub (plain values: the credential is a plain
string here, but it never appears in a repr, a log line, a cache key or an error message).
`Effective` is the merged view the client runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field, replace
from typing import Any, Protocol

from services.recordclass import record
from services.registry import Upstream, sandbox_credential
from services.spec import Credential, ServiceSpec


@record
class ServiceConfig:
    """One service's settings for a run; every None means "the service module's default".

    `base_urls` maps host roles to URLs; a `"default"` entry stands in for every role the
    mapping does not name (so one URL replaces both of SEC's hosts).
    """

    name: str
    enabled: bool = True
    base_urls: Mapping[str, str] | None = None
    credential: str | None = field(default=None, repr=False)
    credential_env: str | None = None  # which declared credential it is (None: the basic kind)
    rate_per_second: float | None = None
    daily_quota: int | None = None
    max_connections: int | None = None
    timeout_seconds: float | None = None
    blocked_cooldown_seconds: float | None = None
    upstream: Upstream = "live"


def single_base_url(url: str) -> dict[str, str]:
    """`base_urls` for "this one URL serves every host role" (TRADESCOUT_{SERVICE}_BASE_URL)."""
    return {"default": url.rstrip("/")}


def sandbox_config(name: str, sandbox_url: str, **overrides: Any) -> ServiceConfig:
    """A service pointed at the simulator: `{sandbox_url}/{name}`, the sandbox credential,
    upstream "sandbox" (so its cache keys and quota never mix with live ones). `overrides`
    are `ServiceConfig` fields (tests raise rates this way)."""
    config = ServiceConfig(
        name=name,
        base_urls=single_base_url(f"{sandbox_url.rstrip('/')}/{name}"),
        credential=sandbox_credential(name),
        upstream="sandbox",
    )
    return replace(config, **overrides)


@record
class Effective:
    """A spec with a config's overrides applied: the numbers the client actually uses."""

    spec: ServiceSpec
    config: ServiceConfig
    base_urls: Mapping[str, str]
    rate_per_second: float
    daily_quota: int | None
    max_connections: int
    timeout_seconds: float  # the whole request's deadline: connect + headers + body
    blocked_cooldown_seconds: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def upstream(self) -> Upstream:
        return self.config.upstream

    @property
    def credential(self) -> str | None:
        value = self.config.credential
        return value if value and value.strip() else None

    @property
    def credential_spec(self) -> Credential | None:
        """Where the credential goes (None: the service takes none, or none is set)."""
        if self.credential is None:
            return None
        return self.spec.credential(self.config.credential_env)

    @property
    def unconfigured_reason(self) -> str | None:
        """Why this service must not be called, or None when it may be."""
        if not self.config.enabled:
            return "disabled in the configuration"
        if self.spec.credential_required and self.credential is None:
            basic = self.spec.credential(None)
            return f"{basic.env if basic else 'credential'} not set"
        return None

    def base_url(self, role: str) -> str:
        return self.base_urls[role]


def resolve(spec: ServiceSpec, config: ServiceConfig | None) -> Effective:
    """Merge a config into its spec's defaults (pure)."""
    cfg = config or ServiceConfig(name=spec.name)
    if cfg.name != spec.name:
        raise ValueError(f"config for {cfg.name!r} given for service {spec.name!r}")
    given = dict(cfg.base_urls or {})
    # A key that belongs to its own host (CoinGecko pro) moves every role there, unless the
    # configuration names a base URL (then the override is the host).
    cred = spec.credential(cfg.credential_env) if cfg.credential else None
    host = cred.host if cred is not None else None
    urls = {
        role: (given.get(role) or given.get("default") or host or default).rstrip("/")
        for role, default in spec.default_base_urls.items()
    }
    rate = cfg.rate_per_second if cfg.rate_per_second is not None else spec.rate_per_second
    if rate <= 0:
        raise ValueError(f"{spec.name}: rate_per_second must be positive")
    conns = cfg.max_connections if cfg.max_connections is not None else spec.max_connections
    timeout = cfg.timeout_seconds if cfg.timeout_seconds is not None else spec.timeout_seconds
    cooldown = cfg.blocked_cooldown_seconds
    return Effective(
        spec=spec,
        config=cfg,
        base_urls=urls,
        rate_per_second=rate,
        daily_quota=cfg.daily_quota if cfg.daily_quota is not None else spec.daily_quota,
        max_connections=max(1, conns),
        timeout_seconds=timeout,
        blocked_cooldown_seconds=spec.blocked_cooldown_seconds if cooldown is None else cooldown,
    )


# --- building configs from the product's settings (duck-typed: services never import discovery)


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class _Overrides(Protocol):
    enabled: bool
    base_url: str | None
    rate_per_second: float | None
    daily_quota: int | None
    max_connections: int | None
    timeout_seconds: float | None
    blocked_cooldown_seconds: float | None


class SettingsLike(Protocol):
    sandbox_url: str | None

    def credential_source(self, service: str) -> tuple[str, _Secret] | None: ...

    def overrides(self, service: str) -> _Overrides: ...


def configs_from_settings(
    settings: SettingsLike, services: Iterable[str], *, sandbox_url: str | None = None
) -> dict[str, ServiceConfig]:
    """One `ServiceConfig` per service from `discovery.settings.Settings`.

    With a sandbox URL (the argument, else `settings.sandbox_url`) every service points at the
    simulator with the sandbox credentials — real keys are never sent there. Otherwise each
    service is live, with its real credential and its `TRADESCOUT_{SERVICE}_BASE_URL` / TOML
    `base_url` override (which, for SEC, replaces both hosts).
    """
    sandbox = sandbox_url or settings.sandbox_url
    configs: dict[str, ServiceConfig] = {}
    for name in services:
        o = settings.overrides(name)
        if sandbox:
            base = sandbox_config(name, sandbox)
        else:
            source = settings.credential_source(name)
            base = ServiceConfig(
                name=name,
                base_urls=single_base_url(o.base_url) if o.base_url else None,
                credential=source[1].get_secret_value() if source is not None else None,
                credential_env=source[0] if source is not None else None,
                upstream="live",
            )
        configs[name] = replace(
            base,
            enabled=o.enabled,
            rate_per_second=o.rate_per_second,
            daily_quota=o.daily_quota,
            max_connections=o.max_connections,
            timeout_seconds=o.timeout_seconds,
            blocked_cooldown_seconds=o.blocked_cooldown_seconds,
        )
    return configs
