"""The sandbox as an ASGI app: `create_app()` → a Starlette app serving `/{service}/…` and
`/_sandbox/…` (stats, reset, faults).

Per request to a simulated service, in this order: count it, add the configured latency, inject
a fault if one is due, apply the service's defences (defences.py: Yahoo's session and bot check,
SEC's identity and rate block, plan and key refusals), enforce the service's limits, then answer
from the pure endpoint (encoded replies are cached: the same call in the same hour is the same
bytes). Every response carries `X-Tradescout-Synthetic: true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.sandbox import hostile
from services.sandbox.defences import Defences
from services.sandbox.faults import FaultBook, FaultSpec, FaultSpecError, Mode, parse_fault_spec
from services.sandbox.hostile import HostileConfig
from services.sandbox.limits import Limits, Window
from services.sandbox.reply import SYNTHETIC_HEADER, Call, Reply, encode, json_reply, text_reply
from services.sandbox.upstreams import SERVICE_NAMES, UPSTREAMS
from services.sandbox.upstreams.alpha_vantage import INFORMATION, NOTE

Clock = Callable[[], datetime]
RAW_SEND = "tradescout.raw_send"


def system_clock() -> datetime:
    return datetime.now(UTC)


SESSION_PATHS = frozenset({"", "v1/test/getcrumb"})  # Yahoo's cookie and crumb endpoints


@dataclass
class ServiceStats:
    requests: int = 0  # every data request received for the service
    session: int = 0  # Yahoo's session requests (cookie, crumb): not data, counted apart
    served: int = 0  # answered by the simulated service (any status but 429/faults)
    rate_limited: int = 0  # 429s
    throttled: int = 0  # Alpha Vantage Note/Information bodies
    faulted: int = 0  # injected faults
    refused: int = 0  # answered by a defence (bot, identity, rate block, plan, key)


class ReplyCache:
    """A small LRU of encoded replies, bounded by total bytes."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._items: OrderedDict[tuple[Any, ...], Reply] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes

    def get(self, key: tuple[Any, ...]) -> Reply | None:
        reply = self._items.get(key)
        if reply is not None:
            self._items.move_to_end(key)
        return reply

    def put(self, key: tuple[Any, ...], reply: Reply) -> None:
        if len(reply.body) > self._max // 4:
            return
        self._items[key] = reply
        self._bytes += len(reply.body)
        while self._bytes > self._max:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old.body)


class SandboxState:
    """Everything mutable about one sandbox: counters, windows, quotas, faults."""

    def __init__(
        self,
        *,
        clock: Clock,
        latency_ms: float,
        faults: Iterable[FaultSpec],
        enforce_limits: bool,
        limits: Limits,
        timeout_s: float,
        slow_ms: float,
        defences: Defences | None = None,
        hostile: HostileConfig | None = None,
    ) -> None:
        self.clock = clock
        self.defences = defences or Defences()
        self.hostile = hostile or HostileConfig()
        self.latency_ms = latency_ms
        self.enforce_limits = enforce_limits
        self.limits = limits
        self.timeout_s = timeout_s
        self.slow_ms = slow_ms
        self.faults = FaultBook(faults)
        self.stats = {name: ServiceStats() for name in SERVICE_NAMES}
        self.cache = ReplyCache()
        self.jitter = random.Random(0)
        self.released = asyncio.Event()  # set to end every hanging `timeout` fault at once
        self.loop: asyncio.AbstractEventLoop | None = None

    def reset(self) -> None:
        self.stats = {name: ServiceStats() for name in SERVICE_NAMES}
        self.limits.reset()
        self.faults.clear()
        self.defences.reset()

    def release_hangs(self) -> None:
        """Thread-safe: wake every request held by a `timeout` fault (used on shutdown)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.released.set)

    def stats_payload(self) -> dict[str, Any]:
        return {
            "services": {name: asdict(s) for name, s in self.stats.items()},
            "faults": [asdict(f) for f in self.faults.active()],
        }


async def send_reply(send: Send, reply: Reply, *, head: bool = False) -> None:
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers}
    )
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


DOWN = text_reply("Service Unavailable (tradescout sandbox: service down)", 503)
SERVER_ERROR = text_reply("Internal Server Error (tradescout sandbox: injected fault)", 500)
GATEWAY_TIMEOUT = text_reply("Gateway Timeout (tradescout sandbox: injected hang)", 504)


class UpstreamEndpoint:
    """ASGI endpoint for `/{service}/{rest}`: the per-request pipeline described above."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        params = scope["path_params"]
        service = params["service"]
        upstream = UPSTREAMS.get(service)
        if upstream is None:
            if service == "_sandbox":
                message = f"no admin route for {scope['method']} {scope['path']}"
            else:
                message = f"unknown sandbox service {service!r}; known: {', '.join(SERVICE_NAMES)}"
            await send_reply(send, json_reply({"error": message}, 404))
            return
        stats = state.stats[service]
        if service == "yahoo_finance" and params.get("rest", "") in SESSION_PATHS:
            stats.session += 1
        else:
            stats.requests += 1
        head = scope["method"] == "HEAD"
        if state.latency_ms > 0:
            await asyncio.sleep(state.latency_ms * (1 + 0.1 * state.jitter.random()) / 1000)
        now = state.clock()
        call = Call(
            path="/" + params.get("rest", ""),
            params=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            now=now,
        )
        mode = state.faults.decide(service)
        if mode is not None:
            stats.faulted += 1
            if mode == "slow":
                await asyncio.sleep(state.slow_ms / 1000)
            else:
                await self._fault(mode, call, scope, receive, send)
                return
        if scope["method"] not in {"GET", "HEAD"}:
            stats.served += 1
            reply = text_reply("Method Not Allowed", 405)
            await send_reply(send, Reply(405, reply.body, reply.content_type, (("allow", "GET"),)))
            return
        defended = state.defences.refuse(service, call)
        if defended is not None:
            session = service == "yahoo_finance" and params.get("rest", "") in SESSION_PATHS
            if not (session and defended.status in (200, 404)):  # not a cookie or a crumb
                stats.refused += 1
            await send_reply(send, defended, head=head)
            return
        if state.enforce_limits:
            admission = state.limits.admit(service, now.date())
            sec_block = service == "sec_edgar" and state.defences.enabled
            if admission.verdict == "rate_limited" and sec_block:  # SEC blocks instead of 429
                stats.refused += 1
                await send_reply(send, state.defences.sec_over_threshold(), head=head)
                return
            if admission.verdict == "rate_limited":
                stats.rate_limited += 1
                base = upstream.too_many_requests(admission.retry_after)
                headers = (*base.headers, ("retry-after", str(admission.retry_after)))
                await send_reply(send, Reply(429, base.body, base.content_type, headers), head=head)
                return
            if admission.verdict in {"note", "information"}:
                stats.throttled += 1
                await send_reply(send, NOTE if admission.verdict == "note" else INFORMATION)
                return
        stats.served += 1
        await send_reply(send, self.answer(service, call), head=head)

    def answer(self, service: str, call: Call) -> Reply:
        """The simulated service's own answer to `call` (cached per UTC hour)."""
        key = (
            service,
            call.path,
            tuple(sorted(call.params.items())),
            call.headers.get("user-agent", ""),
            call.now.timetuple()[:4],  # the UTC hour: every market's local date is fixed in it
        )
        cached = self.state.cache.get(key)
        if cached is not None:
            return cached
        upstream = UPSTREAMS[service]
        resolved = upstream.resolve(call.path)
        if resolved is None:
            reply = upstream.no_route
        else:
            handler, match = resolved
            reply = handler(Call(call.path, call.params, call.headers, call.now, match))
        self.state.cache.put(key, reply)
        return reply

    async def _fault(
        self, mode: Mode, call: Call, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if mode == "down":
            await send_reply(send, DOWN)
        elif mode == "error":
            await send_reply(send, SERVER_ERROR)
        elif mode == "timeout":
            outcome = await self._hang(receive)
            if outcome == "elapsed":
                await send_reply(send, GATEWAY_TIMEOUT)
            elif outcome == "released":  # the sandbox is stopping: hang up, no answer
                await self._cut(scope)
        elif mode == "malformed":
            body = self.answer(scope["path_params"]["service"], call).body
            await send_reply(send, Reply(200, body[: max(1, len(body) // 2)]))
        elif mode == "drop":
            reply = self.answer(scope["path_params"]["service"], call)
            await self._drop(reply, scope, send)
        else:
            await self._hostile(mode, call, scope, receive, send)

    async def _hostile(
        self, mode: Mode, call: Call, scope: Scope, receive: Receive, send: Send
    ) -> None:
        config = self.state.hostile
        service = scope["path_params"]["service"]
        if mode == "consent":
            await hostile.redirect(send, hostile.CONSENT_URL)
        elif mode == "redirect_loop":
            raw_hop = call.params.get("hop", "")
            hop = int(raw_hop) + 1 if raw_hop.isdigit() and len(raw_hop) < 9 else 1
            await hostile.redirect(send, f"{scope['path']}?hop={hop}")
        elif mode == "redirect_offsite":
            query = scope["query_string"].decode("latin-1")
            target = f"{config.offsite_url.rstrip('/')}{scope['path']}"
            await hostile.redirect(send, f"{target}?{query}" if query else target)
        elif mode == "huge":
            await hostile.huge(send, config.huge_bytes)
        elif mode == "bomb":
            await hostile.bomb(send, config.bomb_bytes)
        elif mode == "trickle":
            await hostile.trickle(
                send, receive, config.trickle_interval_s, config.trickle_max_s, self.state.released
            )
        elif mode == "deep":
            await hostile.deep(send)
        elif mode == "nonfinite":  # the normal answer (a Yahoo cookie or crumb too), numbers spoilt
            normal = self.state.defences.refuse(service, call) or self.answer(service, call)
            await send_reply(send, hostile.nonfinite(normal))

    async def _hang(self, receive: Receive) -> str:
        """Hold the request for `timeout_s`: "elapsed", "client_left" or "released" (stopping)."""

        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiters = {
            asyncio.ensure_future(asyncio.sleep(self.state.timeout_s)): "elapsed",
            asyncio.ensure_future(client_left()): "client_left",
            asyncio.ensure_future(self.state.released.wait()): "released",
        }
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return min(waiters[w] for w in done)

    async def _drop(self, reply: Reply, scope: Scope, send: Send) -> None:
        """Send the headers and half the body, then cut the connection."""
        await send({"type": "http.response.start", "status": 200, "headers": reply.raw_headers})
        half = reply.body[: len(reply.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        await self._cut(scope)

    @staticmethod
    async def _cut(scope: Scope) -> None:
        """Close the client's connection now (whatever was sent so far is all it gets)."""
        cycle = getattr(scope.get(RAW_SEND), "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # not uvicorn's h11 cycle: let the server close it
            raise ConnectionAbortedError("sandbox: injected dropped connection")
        transport.close()
        for _ in range(100):  # let uvicorn notice, so it does not log an incomplete response
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0.005)


def _admin_json(payload: Any, status: int = 200) -> Response:
    return Response(
        encode(payload),
        status,
        headers=dict([SYNTHETIC_HEADER]),
        media_type="application/json",
    )


def _admin_routes(state: SandboxState) -> list[Route]:
    async def stats(request: Request) -> Response:
        return _admin_json(state.stats_payload())

    async def reset(request: Request) -> Response:
        state.reset()
        return _admin_json({"reset": True})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            service = request.query_params.get("service")
            state.faults.clear(service)
        elif request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise FaultSpecError("the body must be a JSON object.")
                text = f"{body.get('service', '')}={body.get('mode', '')}"
                if body.get("rate") is not None:
                    text += f":{body['rate']}"
                spec = parse_fault_spec(text, SERVICE_NAMES)
            except (FaultSpecError, ValueError) as exc:
                return _admin_json({"error": str(exc)}, 400)
            state.faults.set(spec)
        return _admin_json({"faults": [asdict(f) for f in state.faults.active()]})

    async def health(request: Request) -> Response:
        return _admin_json({"ok": True, "services": list(SERVICE_NAMES)})

    return [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/health", health, methods=["GET"]),
    ]


class SandboxApp(Starlette):
    """Starlette for the admin routes; simulated-service requests skip its routing and middleware
    (a third of the per-request cost) and go straight to the endpoint, with the server's raw
    `send` kept in the scope (to cut connections for `drop`)."""

    sandbox: SandboxState
    upstream_endpoint: UpstreamEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
            service, slash, rest = scope["path"][1:].partition("/")
            if slash and service in UPSTREAMS:
                scope["path_params"] = {"service": service, "rest": rest}
                await self.upstream_endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    *,
    clock: Clock | None = None,
    latency_ms: float = 0,
    faults: Iterable[FaultSpec] = (),
    enforce_limits: bool = True,
    rate_limits: Mapping[str, Window] | None = None,
    daily_quotas: Mapping[str, int] | None = None,
    timeout_s: float = 30.0,
    slow_ms: float = 2000.0,
    monotonic: Callable[[], float] = time.monotonic,
    defences: bool = True,
    sec_block_seconds: float = 600.0,
    hostile_config: HostileConfig | None = None,
) -> SandboxApp:
    """The sandbox app. `clock` (aware UTC datetimes) decides "today"; `enforce_limits=False`
    turns off every rate window and quota (benchmarks); `rate_limits`/`daily_quotas` replace the
    real services' figures (tests); `defences=False` drops every defence but Yahoo's session
    endpoints (experiments); `sec_block_seconds` is how long SEC's rate block lasts."""
    state = SandboxState(
        clock=clock or system_clock,
        latency_ms=latency_ms,
        faults=faults,
        enforce_limits=enforce_limits,
        limits=Limits(rate_limits, daily_quotas, monotonic),
        timeout_s=timeout_s,
        slow_ms=slow_ms,
        defences=Defences(
            enabled=defences, sec_block_seconds=sec_block_seconds, monotonic=monotonic
        ),
        hostile=hostile_config,
    )
    endpoint = UpstreamEndpoint(state)

    async def fallback(request: Request) -> Response:
        return _admin_json({"error": f"no sandbox route for {request.url.path}"}, 404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        state.released = asyncio.Event()
        yield
        state.released.set()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _admin_json({"error": str(getattr(exc, "detail", "error"))}, status)

    app = SandboxApp(
        exception_handlers={HTTPException: http_error},
        routes=[
            *_admin_routes(state),
            Route("/{service}/{rest:path}", endpoint),
            Route("/{rest:path}", fallback, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.sandbox = state
    app.upstream_endpoint = endpoint
    return app
