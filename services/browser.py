"""The browser-impersonating transport for services that refuse non-browser clients (Yahoo).

httpx stays the client (pool, timeouts, streaming, our redirect and size rules); only the wire is
curl_cffi's, through httpx's transport seam (`httpx-curl-cffi`): Chrome's TLS fingerprint
(JA3/ALPN), HTTP/2 settings and default headers (browser User-Agent, `sec-ch-ua` client hints,
Accept-Language). Checked against httpx-curl-cffi 0.1.5: responses stream (curl hands over
already-decoded bytes in its small write chunks), connect/read timeouts map to curl's, redirects
and cookies are left to the caller (its jar is a no-op) — which is what the shared client wants,
as it follows redirects itself and keeps Yahoo's cookie in its own session file.

Imported lazily: a run that never calls Yahoo never loads libcurl.
"""

from __future__ import annotations

import httpx

CURLE_FILESIZE_EXCEEDED = 63  # curl stopped a transfer at MAXFILESIZE


def is_transport_error(exc: BaseException) -> bool:
    """curl_cffi's own exceptions, which the transport maps only while a request starts (a
    connection cut mid-body surfaces as curl's IncompleteRead while the body streams)."""
    return type(exc).__module__.startswith("curl_cffi")


def browser_transport(
    impersonate: str, max_connections: int, max_bytes: int
) -> httpx.AsyncBaseTransport:
    """A curl_cffi transport that looks like `impersonate` (e.g. "chrome") on the wire.

    curl decodes compressed bodies itself and queues what it decoded without back-pressure, so
    two options bound it: `MAXFILESIZE` stops a transfer past `max_bytes` on the wire, and a
    small receive buffer keeps what one network read can inflate to ~1000 × 2 KB (a gzip bomb
    becomes a few MB per event-loop turn, which the client counts and cuts at its cap)."""
    from httpx_curl_cffi import AsyncCurlTransport, CurlHttpVersion, CurlOpt

    return AsyncCurlTransport(
        impersonate=impersonate,  # type: ignore[arg-type]
        default_headers=True,  # the browser's own headers, not httpx's
        # HTTP/2 over TLS, HTTP/1.1 over plain http — as Chrome does (no `Upgrade: h2c`)
        http_version=CurlHttpVersion.V2TLS,
        max_connections=max_connections,
        curl_options={CurlOpt.MAXFILESIZE_LARGE: max_bytes, CurlOpt.BUFFERSIZE: 2048},
    )
