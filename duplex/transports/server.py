"""``duplex serve``: the WebSocket endpoint and the web page, on one port.

- ``GET /`` (and its assets): the browser client (``duplex/transports/web/``);
- ``/ws``: the native protocol (``duplex.transports.native``);
- ``/v1/realtime``: the OpenAI Realtime subset (``duplex.transports.openai_realtime``);
- ``GET /healthz``: liveness and the number of sessions.

Every connection gets its own session on the runtime's one engine.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import mimetypes
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from duplex.runtime.runtime import Runtime
from duplex.transports.native import NativeConnection
from duplex.transports.openai_realtime import RealtimeConnection

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body)


class DuplexServer:
    """Serves one runtime to many WebSocket clients."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._server: Server | None = None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if path in ("/ws", "/v1/realtime"):
                return None
            return _response(http.HTTPStatus.NOT_FOUND, b"no WebSocket endpoint here; use /ws or /v1/realtime\n", "text/plain")
        if path == "/healthz":
            body = json.dumps({"ok": True, "sessions": len(self.runtime.sessions)}).encode()
            return _response(http.HTTPStatus.OK, body, "application/json")
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        file = (WEB_DIR / name).resolve()
        if WEB_DIR.resolve() not in file.parents or not file.is_file():
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".js":
            ctype = "text/javascript"
        return _response(http.HTTPStatus.OK, file.read_bytes(), ctype)

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = dict(parse_qsl(parts.query))
        try:
            if parts.path == "/v1/realtime":
                beta = "realtime=v1" in ws.request.headers.get("OpenAI-Beta", "")
                await RealtimeConnection(ws, self.runtime, query, beta).run()
            else:
                await NativeConnection(ws, self.runtime, query).run()
        except RuntimeError as exc:  # e.g. the engine is full
            await ws.send(json.dumps({"type": "error", "code": "unavailable", "message": str(exc)}))
            await ws.close(1013, "try again later")

    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=2**22,
            ping_interval=20,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("serving on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        await self._server.serve_forever()


class BackgroundServer:
    """A ``DuplexServer`` on an event loop of its own thread, for synchronous code
    (benchmarks, tests, apps that are not asyncio). Use as a context manager."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = DuplexServer(runtime, host, port)
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
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_server(runtime: Runtime, host: str, port: int) -> None:
    """Block serving until interrupted."""
    server = DuplexServer(runtime, host, port)
    asyncio.run(server.serve_forever())
