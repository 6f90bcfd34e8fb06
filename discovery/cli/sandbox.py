"""`tradescout sandbox`: serve the simulated upstream services on loopback, in the foreground.

The lead registers it with `app.command("sandbox")(sandbox_command)`. Faults come from
`TRADESCOUT_SANDBOX_FAULTS` and `--fault` (a flag wins over the variable for the same service).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated

import typer

from discovery.cli.common import fail, stdout
from services.sandbox.faults import MODES, FaultSpec, FaultSpecError, parse_fault_spec


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _faults(flags: list[str]) -> list[FaultSpec]:
    from services.sandbox.server import faults_from_env
    from services.sandbox.upstreams import SERVICE_NAMES

    try:
        by_service = {f.service: f for f in faults_from_env()}
    except FaultSpecError as exc:
        fail(f"TRADESCOUT_SANDBOX_FAULTS: {exc}")
    for text in flags:
        try:
            spec = parse_fault_spec(text, SERVICE_NAMES)
        except FaultSpecError as exc:
            fail(f"--fault: {exc}")
        by_service[spec.service] = spec
    return list(by_service.values())


def sandbox_command(
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (loopback unless --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8765,
    latency_ms: Annotated[
        int, typer.Option("--latency-ms", min=0, help="Added to every answer (plus ≤10% jitter).")
    ] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help=f"SERVICE=MODE[:RATE], repeatable; MODE one of {', '.join(MODES)}; "
            "RATE the fraction of requests hit (default 1).",
            show_default=False,
        ),
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host.")
    ] = False,
    defences: Annotated[
        str | None,
        typer.Option(
            "--defences",
            help="on (default, or TRADESCOUT_SANDBOX_DEFENCES) or off: the services' own "
            "refusals (Yahoo's bot check and session, SEC's identity and rate block, plans, keys).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve synthetic Yahoo, FMP, Alpha Vantage, SEC, FRED, CoinGecko and IMF on loopback."""
    from services.sandbox.server import serve_forever
    from services.sandbox.upstreams import SERVICE_NAMES

    if not _is_loopback(host) and not allow_remote:
        fail(f"--host {host} is not a loopback address; add --allow-remote to serve on it.")
    if defences not in (None, "on", "off"):
        fail(f"--defences {defences[:20]!r} is neither on nor off.")
    specs = _faults(list(fault or []))
    if not _port_free(host, port):
        fail(f"port {port} on {host} is already in use; choose another with --port.")
    url = f"http://{host}:{port}"
    stdout.print(f"tradescout sandbox: synthetic upstream services on {url} (Ctrl-C to stop)")
    stdout.print(f"  services: {', '.join(f'{url}/{name}' for name in SERVICE_NAMES)}")
    if latency_ms:
        stdout.print(f"  latency: {latency_ms} ms")
    for spec in specs:
        stdout.print(f"  fault: {spec}")
    if defences == "off":
        stdout.print("  defences: off")
    stdout.print(f"export TRADESCOUT_SANDBOX_URL={url}")
    stdout.file.flush()
    serve_forever(
        host, port, latency_ms, specs, defences=None if defences is None else defences == "on"
    )
    stdout.print("tradescout sandbox stopped")


if __name__ == "__main__":  # python -m discovery.cli.sandbox (before the lead registers it)
    typer.run(sandbox_command)
