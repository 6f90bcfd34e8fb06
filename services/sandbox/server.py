"""Running the sandbox: embedded on a free loopback port (`SandboxServer`) or in the foreground
(`serve_forever`, for `tradescout sandbox`).

Embedded: uvicorn runs in a daemon thread with its own event loop; `start()` returns once the
socket accepts connections, `stop()` wakes any request held by a `timeout` fault and shuts down
within about a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

import uvicorn

from services.sandbox.app import Clock, SandboxApp, create_app
from services.sandbox.defences import defences_from_env
from services.sandbox.faults import ENV_VAR, FaultSpec, parse_fault_list
from services.sandbox.hostile import HostileConfig
from services.sandbox.limits import Window
from services.sandbox.upstreams import SERVICE_NAMES

LOOPBACK = "127.0.0.1"


def faults_from_env(environ: Mapping[str, str] | None = None) -> list[FaultSpec]:
    """Faults named in `TRADESCOUT_SANDBOX_FAULTS` (raises FaultSpecError when malformed)."""
    env = os.environ if environ is None else environ
    return parse_fault_list(env.get(ENV_VAR, ""), SERVICE_NAMES)


def _config(app: SandboxApp, host: str, port: int | None = None, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port or 0,
        http="auto",  # httptools when installed (about twice h11's speed), else h11
        loop="auto",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        **extra,  # type: ignore[arg-type]
    )


class SandboxServer:
    """The sandbox on 127.0.0.1:free-port in a background thread; use as a context manager.

    `faults=None` reads `TRADESCOUT_SANDBOX_FAULTS`; pass `()` for none. `defences=None` reads
    `TRADESCOUT_SANDBOX_DEFENCES` (on unless "off").
    """

    def __init__(
        self,
        *,
        latency_ms: float = 0,
        faults: Iterable[FaultSpec] | None = None,
        clock: Clock | None = None,
        enforce_limits: bool = True,
        rate_limits: Mapping[str, Window] | None = None,
        daily_quotas: Mapping[str, int] | None = None,
        timeout_s: float = 30.0,
        slow_ms: float = 2000.0,
        monotonic: Callable[[], float] = time.monotonic,
        host: str = LOOPBACK,
        defences: bool | None = None,
        sec_block_seconds: float = 600.0,
        hostile: HostileConfig | None = None,
    ) -> None:
        self.app = create_app(
            clock=clock,
            latency_ms=latency_ms,
            faults=faults_from_env() if faults is None else faults,
            enforce_limits=enforce_limits,
            rate_limits=rate_limits,
            daily_quotas=daily_quotas,
            timeout_s=timeout_s,
            slow_ms=slow_ms,
            monotonic=monotonic,
            defences=defences_from_env() if defences is None else defences,
            sec_block_seconds=sec_block_seconds,
            hostile_config=hostile,
        )
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the sandbox is not running")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0, sock: socket.socket | None = None) -> SandboxServer:
        """Serve on a free loopback port, or on `sock` (bound and listening already: the lazy
        embedded sandbox's, whose first connection is waiting in its backlog)."""
        if sock is None:
            # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets (else +40 ms
            # per request).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app, self.host, self.port))
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # surfaced by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="tradescout-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the sandbox did not start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.app.sandbox.release_hangs()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.port = 0

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    host: str = LOOPBACK,
    port: int = 8765,
    latency_ms: float = 0,
    faults: Iterable[FaultSpec] = (),
    clock: Clock | None = None,
    enforce_limits: bool = True,
    defences: bool | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then return normally.

    uvicorn catches the signal, shuts down gracefully and then re-raises it to the handler that
    was installed before it started; a quiet handler here makes that a clean return (exit 0)
    instead of a KeyboardInterrupt or a death by SIGTERM.
    """
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    app = create_app(
        clock=clock,
        latency_ms=latency_ms,
        faults=faults,
        enforce_limits=enforce_limits,
        defences=defences_from_env() if defences is None else defences,
    )
    server = uvicorn.Server(_config(app, host, port))
    if threading.current_thread() is not threading.main_thread():
        asyncio.run(server.serve())
        return
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(server.serve())
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
