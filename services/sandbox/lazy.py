"""The embedded sandbox, started only when a request actually arrives.

A warm `discover --sandbox` sends nothing: importing the simulator (uvicorn, starlette, the
3,000-symbol universe) and running it would be most of that run's time. So the CLI binds the
loopback port at once (the URL is known up front, connections queue in the listen backlog) and a
waiter thread blocked in `select` starts the real server on that socket when the first
connection comes in. Only the standard library and the fault-spec parser are imported here:
a malformed `TRADESCOUT_SANDBOX_FAULTS` is still refused up front, not on the first request.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from types import TracebackType
from typing import Any

from services.registry import SERVICE_NAMES
from services.sandbox.faults import ENV_VAR, parse_fault_list

LOOPBACK = "127.0.0.1"


class LazySandbox:
    """`with LazySandbox() as sandbox:` — `sandbox.url` at once, the server on first use.
    `options` are passed to `SandboxServer`."""

    def __init__(self, **options: Any) -> None:
        if options.get("faults") is None:  # FaultSpecError now, like the eager server
            options["faults"] = parse_fault_list(os.environ.get(ENV_VAR, ""), SERVICE_NAMES)
        self.options = options
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def started(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LazySandbox:
        # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets (else +40 ms/request).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._wait, name="sandbox-waiter", daemon=True)
        self._thread.start()
        return self

    def _wait(self) -> None:
        assert self._sock is not None
        readable, _, _ = select.select([self._sock, self._wake_r], [], [])
        if self._wake_r in readable:
            return
        with self._lock:
            try:
                from services.sandbox.server import SandboxServer

                self._server = SandboxServer(**self.options).start(sock=self._sock)
            except BaseException as exc:  # refuse the waiting request: it fails as unavailable
                self.error = exc
                self._sock.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=15)
        with self._lock:
            if self._server is not None:
                self._server.stop()  # closes the socket it was given
            elif self._sock is not None:
                self._sock.close()
        self._wake_r.close()
        self._wake_w.close()
