"""The sandbox: a loopback simulator of the seven upstream services (DESIGN.md §11).

It stands apart from the product — nothing here imports `discovery`, `cache` or another
`services` module, and only the CLI imports it. Start it embedded with `SandboxServer` (tests,
`--sandbox`) or in the foreground with `serve_forever` (`tradescout sandbox`); point the product
at `{url}/{service}`.
"""

from __future__ import annotations

from services.sandbox.app import create_app
from services.sandbox.faults import MODES, FaultSpec, FaultSpecError, parse_fault_spec
from services.sandbox.server import SandboxServer, faults_from_env, serve_forever
from services.sandbox.universe import coin_ids, crypto_pairs, equity_symbols
from services.sandbox.upstreams import SERVICE_NAMES

__all__ = [
    "MODES",
    "SERVICE_NAMES",
    "FaultSpec",
    "FaultSpecError",
    "SandboxServer",
    "coin_ids",
    "create_app",
    "crypto_pairs",
    "equity_symbols",
    "faults_from_env",
    "parse_fault_spec",
    "serve_forever",
]
