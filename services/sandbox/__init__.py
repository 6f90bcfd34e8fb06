"""The sandbox: a loopback simulator of the seven upstream services.

It stands apart from the product — nothing here imports `discovery` or `cache`, and of
`services` it takes only the registry's list of names (which services it must simulate) — and
only the CLI imports it. Start it embedded with `SandboxServer` (tests,
`--sandbox`) or in the foreground with `serve_forever` (`tradescout sandbox`); point the product
at `{url}/{service}`.

Names are resolved lazily (PEP 562): `tradescout --help` or a warm `discover` must not pay for
importing Starlette, uvicorn and numpy when no sandbox is started.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "create_app": "services.sandbox.app",
    "MODES": "services.sandbox.faults",
    "FaultSpec": "services.sandbox.faults",
    "FaultSpecError": "services.sandbox.faults",
    "parse_fault_spec": "services.sandbox.faults",
    "SandboxServer": "services.sandbox.server",
    "faults_from_env": "services.sandbox.server",
    "serve_forever": "services.sandbox.server",
    "coin_ids": "services.sandbox.universe",
    "crypto_pairs": "services.sandbox.universe",
    "equity_symbols": "services.sandbox.universe",
    "SERVICE_NAMES": "services.sandbox.upstreams",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'services.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
