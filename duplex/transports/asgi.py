"""The plain server's request handling behind ASGI (Starlette / FastAPI, Ray Serve's ingress).

``duplex serve`` answers HTTP and WebSocket requests in ``DuplexServer``
(``_process_request`` for paths, the page, health and refusals; ``_handler`` for a
connection's protocol). These two functions call that same code for an ASGI
request, so an ASGI deployment is not a second implementation: ``handle_http``
for a GET, ``handle_websocket`` for a WebSocket (through ``AsgiSocket``).
``asgi_app`` wraps a server in a Starlette app (tests, any ASGI server).
"""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

from duplex.transports.access import offered_subprotocols
from duplex.transports.asgi_socket import AsgiSocket, request_of
from duplex.transports.server import DuplexServer, select_subprotocol


async def handle_websocket(server: DuplexServer, websocket: WebSocket) -> None:
    """One WebSocket, start to end: the server's checks (access: Host, Origin, token;
    per-address admission), its subprotocol choice, then its per-connection handler
    (capacity, protocols, the bounds of ``limits``)."""
    sock = AsgiSocket(websocket)
    conn = cast(ServerConnection, sock)  # the surface the server uses: asgi_socket.PeerSocket
    refusal = server._process_request(conn, sock.request)
    if refusal is not None:  # not an endpoint, or refused by the server's checks
        await sock.refuse(refusal.status_code, list(refusal.headers.raw_items()), bytes(refusal.body or b""))
        return
    # The server's choice: never the token subprotocol a browser authenticates with.
    await sock.accept(select_subprotocol(conn, [Subprotocol(p) for p in offered_subprotocols(sock.request.headers)]))
    try:
        await server._handler(conn)
    finally:
        await sock.close(1000, "")


async def handle_http(server: DuplexServer, request: Request) -> Response:
    """One HTTP GET (the page, its files, ``/healthz``) as the server answers it."""
    scope = request.scope
    req = request_of(scope.get("path", "/"), scope.get("query_string", b""), scope.get("headers", []))
    reply = server._process_request(cast(ServerConnection, None), req)
    if reply is None:  # an upgrade header on a plain GET: nothing to upgrade to here
        return Response(b"use a WebSocket client for /ws and /v1/realtime\n", status_code=426)
    headers = {k: v for k, v in reply.headers.raw_items() if k.lower() != "content-length"}
    return Response(content=bytes(reply.body or b""), status_code=reply.status_code, headers=headers)


def asgi_app(server: DuplexServer) -> Starlette:
    """``server``'s paths as an ASGI application (the server itself is never started)."""

    async def http(request: Request) -> Response:
        return await handle_http(server, request)

    async def websocket(ws: WebSocket) -> None:
        await handle_websocket(server, ws)

    return Starlette(routes=[WebSocketRoute("/{path:path}", websocket), Route("/{path:path}", http, methods=["GET"])])
