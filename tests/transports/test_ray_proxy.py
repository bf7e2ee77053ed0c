"""The middleware Serve's proxy runs for duplex, on the ASGI messages the proxy exchanges
(the proxy's own behaviour, and the middleware inside a live proxy, are in test_ray_serve)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from duplex.transports.ray_proxy import ReconnectOnReplicaLoss


def _run(app, scope_type: str = "websocket", client_messages=None) -> list[dict]:
    sent: list[dict] = []
    inbox = list(client_messages or [{"type": "websocket.connect"}])

    async def receive():
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    async def main():
        # A replica's death reaches the proxy as an error; the middleware re-raises it.
        with contextlib.suppress(RuntimeError):
            await ReconnectOnReplicaLoss(app)({"type": scope_type, "path": "/ws"}, receive, send)

    asyncio.run(main())
    return sent


def test_a_refused_handshake_becomes_the_busy_error_event_and_1013():
    async def proxy_refuses(scope, receive, send):  # what Serve's proxy sends on back-pressure
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"Request dropped due to backpressure"})

    sent = _run(proxy_refuses)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    event = json.loads(sent[1]["text"])
    assert event["type"] == "error" and event["code"] == "unavailable" and "503" in event["message"]
    assert sent[2]["code"] == 1013


def test_an_accepted_socket_left_open_by_a_lost_replica_is_closed_1012():
    async def replica_dies(scope, receive, send):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "{}"})
        raise RuntimeError("the actor died unexpectedly")  # the proxy's stream from the replica ends

    sent = _run(replica_dies)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[-1]["code"] == 1012 and "reconnect" in sent[-1]["reason"]


def test_a_socket_the_application_closed_or_the_client_left_is_left_alone():
    async def closes(scope, receive, send):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000, "reason": ""})

    assert [m["type"] for m in _run(closes)] == ["websocket.accept", "websocket.close"]

    async def client_leaves(scope, receive, send):
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"

    sent = _run(client_leaves, client_messages=[{"type": "websocket.disconnect", "code": 1001}])
    assert [m["type"] for m in sent] == ["websocket.accept"]


def test_http_passes_through_untouched():
    async def page(scope, receive, send):
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    assert [m["type"] for m in _run(page, scope_type="http")] == ["http.response.start", "http.response.body"]
