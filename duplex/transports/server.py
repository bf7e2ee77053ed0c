"""``duplex serve``: the WebSocket endpoint and the web page, on one port.

- ``GET /`` (and its assets): the browser client (``duplex/transports/web/``);
- ``/ws``: the native protocol (``duplex.transports.native``);
- ``/v1/realtime``: the OpenAI Realtime subset (``duplex.transports.openai_realtime``);
- ``GET /healthz``: liveness (and, to an authorized caller, the number of sessions).

Every connection gets its own session on the runtime's one engine. Before any
model work a WebSocket passes the access checks (Host, Origin, token:
``duplex.transports.access``), the per-address limits
(``duplex.transports.admission``) and the engine's capacity; sessions are opened
and closed on worker threads, never on the event loop. Each connection is held
to the bounds of ``duplex.transports.limits``. ``shutdown`` drains: it stops
accepting, lets answers in flight finish, then closes every client with 1001.
See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from duplex.config import ServerConfig
from duplex.errors import ConfigError, EngineFull
from duplex.runtime.recording import SessionRecording
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session
from duplex.transports.access import AccessPolicy, Refusal, offered_subprotocols
from duplex.transports.admission import Admission
from duplex.transports.limits import GuardedConnection, GuardedSocket, Notify, close_for, watch
from duplex.transports.native import NativeConnection
from duplex.transports.native_schema import BadMessage, parse_query
from duplex.transports.openai_realtime import RealtimeConnection

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
# The page's files, by URL name: nothing a client sends ever becomes a filesystem path.
WEB_FILES = {p.name: p for p in WEB_DIR.iterdir() if p.is_file()}
ENDPOINTS = ("/ws", "/v1/realtime")
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "microphone=(self), camera=(), geolocation=()"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
)
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013


def _response(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", extra: Sequence[tuple[str, str]] = ()) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"), *SECURITY_HEADERS, *extra])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _refuse(refusal: Refusal) -> Response:
    extra = [("Retry-After", "60")] if refusal.status == 429 else []
    if refusal.status == 401:
        extra.append(("WWW-Authenticate", 'Bearer realm="duplex"'))
    return _response(refusal.status, refusal.message.encode(), extra=extra)


def select_subprotocol(connection: ServerConnection | None, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The subprotocol to answer (also the ASGI ingress's): never the token one
    (``openai-insecure-api-key.<token>``), the protocol name a browser offered with it."""
    for name in ("realtime", "duplex.v1"):
        if name in offered:
            return Subprotocol(name)
    return None


class DuplexServer:
    """Serves one runtime to many WebSocket clients.

    Args:
        runtime: the loaded runtime (real-time clock).
        host: address to listen on; anything but loopback needs a token.
        port: 0 picks a free port (see ``port`` after ``start``).
        token: the shared secret clients must present; "" for none (loopback only).
        tls_cert: PEM certificate chain; with ``tls_key``, the server speaks TLS.
        tls_key: PEM private key.
        config: the bounds; the runtime profile's ``[server]`` section by default.

    Raises:
        ConfigError: a non-loopback address without a token, or half a TLS pair.
    """

    def __init__(
        self,
        runtime: Runtime,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: str = "",
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self.config = config or runtime.config.server
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        self._ssl: ssl.SSLContext | None = None
        if tls_cert is not None and tls_key is not None:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(str(tls_cert), str(tls_key))
        self.policy = AccessPolicy(
            token=token,
            bind_host=host,
            allowed_origins=tuple(self.config.allowed_origins),
            allowed_hosts=tuple(h.lower() for h in self.config.allowed_hosts),
            tls=self._ssl is not None,
        )
        self.admission = Admission(self.config)
        # Opening a session builds model state; closing joins its worker: both run here.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="duplex-sessions")
        self._server: Server | None = None
        self._draining = False

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    # ------------------------------------------------------------ HTTP
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            parts = urlsplit(request.path)
        except ValueError:
            return _response(400, b"bad request path\n")
        refusal = self.policy.check_http(request.headers)
        if refusal is not None:
            return _refuse(refusal)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if parts.path not in ENDPOINTS:
                return _response(404, b"no WebSocket endpoint here; use /ws or /v1/realtime\n")
            if self._draining:
                return _response(503, b"the server is shutting down\n")
            # The address's rate first: token guesses count against it too.
            refusal = self.admission.check(self._ip(connection)) or self.policy.check_websocket(request.headers, parts.query)
            if refusal is not None:
                return _refuse(refusal)
            return None
        if parts.path == "/healthz":
            health: dict[str, object] = {"ok": not self._draining, "auth": bool(self.policy.token)}
            if self.policy.authorized(request.headers, parts.query):
                health["sessions"] = len(self.runtime.sessions)
            return _response(200, json.dumps(health).encode(), "application/json")
        file = WEB_FILES.get("index.html" if parts.path in ("/", "") else parts.path.lstrip("/"))
        if file is None:
            return _response(404, b"not found\n")
        ctype = {".js": "text/javascript", ".css": "text/css", ".html": "text/html; charset=utf-8"}.get(file.suffix, "application/octet-stream")
        return _response(200, file.read_bytes(), ctype)

    @staticmethod
    def _ip(connection: ServerConnection) -> str:
        address = connection.remote_address
        return str(address[0]) if address else "?"

    # ------------------------------------------------------------ WebSocket
    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None and isinstance(ws, GuardedSocket)  # GuardedConnection, asgi_socket.AsgiSocket
        ip = self._ip(ws)
        if not self.admission.enter(ip):
            await close_for(ws, None, "too_many_connections", "too many connections from your address")
            return
        try:
            await self._serve_connection(ws)
        finally:
            self.admission.leave(ip)

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None and isinstance(ws, GuardedSocket)
        parts = urlsplit(ws.request.path)
        params = dict(parse_qsl(parts.query))
        if parts.path == "/v1/realtime":
            beta = "realtime=v1" in ws.request.headers.get("OpenAI-Beta", "") or "openai-beta.realtime-v1" in offered_subprotocols(ws.request.headers)
            realtime = RealtimeConnection(ws, self.runtime, params, beta, self.config)
            notify: Notify = realtime._error
            run = realtime.run
        else:
            query = parse_query(params)
            notify = NativeConnection.notifier(ws)
            if isinstance(query, BadMessage):  # before any session exists
                await close_for(ws, notify, query.code, query.message)
                return
            run = NativeConnection(ws, self.runtime, query, self.config).run
        session = await self._open(ws, notify)
        if session is None:
            return
        watchdog = asyncio.create_task(watch(ws, self.config, notify))
        try:
            await run(session)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            await asyncio.get_running_loop().run_in_executor(self._pool, self.runtime.close_session, session, "client disconnected")

    async def _open(self, ws: GuardedSocket, notify: Notify) -> Session | None:
        """A session for ``ws``, or None after telling the client why not (code 1013)."""
        if self.runtime.engine.free_slots() <= 0:  # refuse before any work or thread hop
            await close_for(ws, notify, "unavailable", "the server is full; try again later", TRY_AGAIN_LATER)
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._open_session)
        except EngineFull as exc:
            await close_for(ws, notify, "unavailable", str(exc), TRY_AGAIN_LATER)
            return None

    def _open_session(self) -> Session:
        """Blocking: build a session (and its recording when ``server.record_dir`` is set)."""
        if not self.config.record_dir:
            return self.runtime.open_session()
        sid = f"s{uuid.uuid4().hex[:12]}"
        audio = self.runtime.config.audio
        rec = SessionRecording(Path(self.config.record_dir) / sid, audio.input_sample_rate, audio.output_sample_rate)
        return self.runtime.open_session(sid, recorder=rec, event_log=rec.log_event)

    # ------------------------------------------------------------ life
    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            select_subprotocol=select_subprotocol,
            create_connection=GuardedConnection,
            server_header="duplex",
            max_size=self.config.max_message_bytes,
            write_limit=self.config.send_buffer_bytes,
            ping_interval=20,
            close_timeout=2,
            ssl=self._ssl,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("serving on %s://%s:%d", self.scheme, self.host, self.port)

    async def shutdown(self, drain_timeout_s: float | None = None) -> None:
        """Stop accepting, let answers in flight finish (up to the drain timeout), then
        close every client with 1001 and wait for their sessions to close."""
        if self._server is None:
            return
        drain = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        self._draining = True
        server, self._server = self._server, None
        server.close(close_connections=False)  # stop listening; open clients stay
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and not all(s.idle() for s in list(self.runtime.sessions.values())):
            await asyncio.sleep(0.05)
        connections = [c for c in server.connections if isinstance(c, GuardedConnection)]
        if connections:
            await asyncio.gather(*(close_for(c, None, "shutdown", "server shutting down", GOING_AWAY) for c in connections))
        try:
            async with asyncio.timeout(10):
                await server.wait_closed()
        except TimeoutError:
            log.warning("some connection handlers did not finish within 10 s of shutdown")
        self._pool.shutdown(wait=False)

    async def stop(self) -> None:
        """Close at once (no drain)."""
        await self.shutdown(drain_timeout_s=0.0)

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        await self.start()
        await stop.wait()
        log.info("shutting down: draining for up to %g s", self.config.drain_timeout_s)
        await self.shutdown()


class BackgroundServer:
    """A ``DuplexServer`` on an event loop of its own thread, for synchronous code
    (benchmarks, tests, apps that are not asyncio). Use as a context manager."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0, **kwargs: object) -> None:
        self.server = DuplexServer(runtime, host, port, **kwargs)  # type: ignore[arg-type]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    @property
    def port(self) -> int:
        return self.server.port

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.server.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        threading.Thread(target=self._serve, name="duplex-server", daemon=True).start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("the server did not start in time")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_server(
    runtime: Runtime,
    host: str,
    port: int,
    *,
    token: str = "",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and close clients with 1001."""
    server = DuplexServer(runtime, host, port, token=token, tls_cert=tls_cert, tls_key=tls_key)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.serve_until(stop)

    asyncio.run(main())
