"""A fault proxy in front of the local Cosmos DB server: the real SDK meets 429s, 503s and dropped connections.

``tools.faults.store.FaultyStore`` injects failures at the store interface; this proxy injects them on the wire,
so the Cosmos Python SDK's own retry policies (``shared.store.cosmos.CLIENT_OPTIONS``: 3 throttling retries
honouring ``x-ms-retry-after-ms``) and error mapping run exactly as in Azure. The answers follow the Cosmos DB
REST reference ("HTTP Status Codes for Azure Cosmos DB"): 429 Too Many Requests with ``x-ms-retry-after-ms``
and ``x-ms-substatus: 3200``, 503 Service Unavailable; a "timeout" closes the connection without an answer
(the SDK sees ``ServiceResponseError``), after forwarding the request half the time — a write that took
effect whose answer was lost.

The proxy listens on plain HTTP on loopback and forwards over HTTPS to the server (self-signed certificate,
loopback only). Account reads name the server's own endpoint as the read/write location; the proxy rewrites
it to its own, so the SDK keeps talking through it. ``python -m tools.faults.cosmos_proxy --fraction 0.3``
runs a local Cosmos server behind a proxy until Ctrl-C and prints the settings.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

KINDS = ("429", "503", "timeout")
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class ProxyState:
    """What the proxy injects, and what it did."""

    upstream: str
    fraction: float = 0.0
    kinds: tuple[str, ...] = KINDS
    seed: int = 14
    outage: bool = False
    #: Outage windows on ``clock`` (a simulated world's): every request in one answers 503.
    outages: list[Any] = field(default_factory=list)
    clock: Any = None
    injected: dict[str, int] = field(default_factory=dict)
    forwarded: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible fault injection, not cryptography
        self._lock = threading.Lock()

    def draw(self) -> tuple[str | None, bool]:
        """(fault kind or None, forward anyway first)."""
        with self._lock:
            if self.outage or (self.clock is not None and any(o.covers(self.clock()) for o in self.outages)):
                kind = "503"
            elif self.fraction and self._rng.random() < self.fraction:
                kind = self._rng.choice(self.kinds)
            else:
                return None, True
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind, kind == "timeout" and self._rng.random() < 0.5


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def _serve(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind, forward = state.draw()
        if kind in ("429", "503"):
            self._fault(int(kind))
            return
        answer = self._forward(body) if forward else None
        if kind == "timeout":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)  # no answer at all: the client's read fails
            return
        assert answer is not None
        status, headers, payload = answer
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        state = self.server.state
        target = urlsplit(state.upstream)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the local server's self-signed certificate, loopback only
        connection = http.client.HTTPSConnection(target.hostname or "127.0.0.1", target.port, context=context,
                                                 timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            state.forwarded += 1
        finally:
            connection.close()
        # the account names its own endpoint as the location to use: keep the SDK on the proxy
        payload = payload.replace(state.upstream.rstrip("/").encode(), self.server.endpoint.rstrip("/").encode())
        return response.status, response.getheaders(), payload

    def _fault(self, status: int) -> None:
        body = (b'{"code":"TooManyRequests","message":"Request rate is large (injected)"}' if status == 429
                else b'{"code":"ServiceUnavailable","message":"Service is currently unavailable (injected)"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("x-ms-retry-after-ms", "10")
            self.send_header("x-ms-substatus", "3200")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: ProxyState
    endpoint: str


@contextlib.contextmanager
def fault_proxy(upstream: str, *, fraction: float = 0.0, kinds: tuple[str, ...] = KINDS,
                seed: int = 14) -> Iterator[tuple[str, ProxyState]]:
    """Run the proxy in front of ``upstream``; yields (the proxy's endpoint, its state)."""
    server = _ProxyServer(("127.0.0.1", 0), _Handler)
    server.state = ProxyState(upstream, fraction, kinds, seed)
    server.endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="cosmos-fault-proxy", daemon=True)
    thread.start()
    try:
        yield server.endpoint, server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Run a local Cosmos DB server behind the proxy until Ctrl-C."""
    from tools.harness.cosmos_server import start_cosmos_server

    parser = argparse.ArgumentParser(prog="python -m tools.faults.cosmos_proxy")
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    with start_cosmos_server() as cosmos, fault_proxy(cosmos.endpoint, fraction=args.fraction) as (endpoint, _):
        print({**cosmos.environment(), "COSMOS__accountEndpoint": endpoint}, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
