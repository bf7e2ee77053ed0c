"""The plain server's request handling behind ASGI (what the Ray Serve ingress runs), under
uvicorn on a real 127.0.0.1 socket with the scripted model: the same answers as ``duplex serve``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import uvicorn
import websockets
from websockets.typing import Subprotocol

from duplex.audio.frame import float_to_pcm16
from duplex.config import ServerConfig, config_from_dict
from duplex.models.scripted import scripted_model
from duplex.runtime.runtime import Runtime
from duplex.transports.asgi import asgi_app
from duplex.transports.server import DuplexServer

from conftest import silence, tone


@contextlib.contextmanager
def _uvicorn(server: DuplexServer):
    """``server``'s paths under uvicorn on 127.0.0.1; yields host:port."""
    app = uvicorn.Server(uvicorn.Config(asgi_app(server), host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=app.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not app.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{app.servers[0].sockets[0].getsockname()[1]}"
    finally:
        app.should_exit = True
        thread.join(10)


def _runtime() -> Runtime:
    cfg = config_from_dict({"models": {"kind": "scripted"}, "engine": {"max_sessions": 1}})
    return Runtime(cfg, model=scripted_model(cfg, script=["What time is it?"]), clock="realtime")


@pytest.fixture
def served():
    runtime = _runtime()
    with _uvicorn(DuplexServer(runtime)) as addr:
        yield addr, runtime
    runtime.close()


async def _feed(ws, audio: np.ndarray, chunk: int = 512) -> None:
    for i in range(0, len(audio), chunk):
        await ws.send(float_to_pcm16(audio[i : i + chunk]))
        await asyncio.sleep(chunk / 16000)


def test_a_spoken_turn_the_busy_answer_and_a_disconnect(served):
    addr, runtime = served

    async def main():
        async with websockets.connect(f"ws://{addr}/ws?input_sample_rate=16000") as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "session.created"
            async with websockets.connect(f"ws://{addr}/ws") as extra:  # the engine holds one session
                refusal = json.loads(await asyncio.wait_for(extra.recv(), 10))
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(extra.recv(), 10)
            assert refusal["type"] == "error" and refusal["code"] == "unavailable" and extra.close_code == 1013
            feeder = asyncio.create_task(_feed(ws, np.concatenate([silence(0.3), tone(1.0), silence(4.0)])))
            types, pcm, final = [], 0, ""
            async with asyncio.timeout(15):
                async for msg in ws:
                    if isinstance(msg, bytes):
                        pcm += len(msg)
                        continue
                    e = json.loads(msg)
                    types.append(e["type"])
                    final = e.get("text", final) if e["type"] == "user.transcript.final" else final
                    if e["type"] == "agent.audio.done":
                        break
            feeder.cancel()
            await ws.send(json.dumps({"type": "nonsense"}))  # bad input: a clear error, the session goes on
            while (e := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "error":
                pass
            assert e["code"] == "unknown_type"
        assert "turn.taken" in types and final == "What time is it?" and pcm > 24000 * 2
        for _ in range(50):  # the client left: its session is closed
            if hello["session_id"] not in runtime.sessions:
                break
            await asyncio.sleep(0.1)
        assert hello["session_id"] not in runtime.sessions

    asyncio.run(main())


def test_pages_health_and_refusals_are_the_plain_servers(served):
    addr, _ = served
    assert b"<html" in urllib.request.urlopen(f"http://{addr}/", timeout=10).read().lower()
    assert json.loads(urllib.request.urlopen(f"http://{addr}/healthz", timeout=10).read())["ok"] is True
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{addr}/../pyproject.toml", timeout=10)
    assert err.value.code == 404

    async def main():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://{addr}/elsewhere")
        assert refused.value.response.status_code == 404 and b"/ws or /v1/realtime" in refused.value.response.body

    asyncio.run(main())


def test_token_origin_admission_subprotocol_and_idle_bound_are_the_plain_servers():
    """The hardened server's checks hold through ASGI: the token (Bearer, ?token=, the
    OpenAI subprotocol, never echoed), Origin, per-address admission, the idle bound."""
    runtime = _runtime()
    server = DuplexServer(runtime, token="s3cret", config=ServerConfig(max_connections_per_ip=1, idle_timeout_s=1.0))
    bearer = {"Authorization": "Bearer s3cret"}

    async def refused(url: str, **kwargs) -> int:
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(url, open_timeout=10, **kwargs)
        return err.value.response.status_code

    async def released() -> None:
        for _ in range(100):
            if server.admission.open_connections() == 0 and not runtime.sessions:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the connection was not released")

    async def main(addr: str) -> None:
        assert await refused(f"ws://{addr}/ws") == 401
        assert await refused(f"ws://{addr}/ws?token=wrong") == 401
        assert await refused(f"ws://{addr}/ws", additional_headers={**bearer, "Origin": "http://evil.example"}) == 403
        async with websockets.connect(f"ws://{addr}/ws", additional_headers=bearer) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            # One connection per address here: the next is refused before any model work.
            assert await refused(f"ws://{addr}/ws", additional_headers=bearer) == 429
        await released()
        offered = [Subprotocol("realtime"), Subprotocol("openai-insecure-api-key.s3cret")]
        async with websockets.connect(f"ws://{addr}/v1/realtime", subprotocols=offered) as rt:
            assert rt.subprotocol == "realtime"  # the token is never echoed
            assert json.loads(await rt.recv())["type"] == "session.created"
        await released()
        async with websockets.connect(f"ws://{addr}/ws?token=s3cret") as idle:
            assert json.loads(await idle.recv())["type"] == "session.created"
            # Silent for longer than server.idle_timeout_s: the server's watchdog closes it.
            while (error := json.loads(await asyncio.wait_for(idle.recv(), 10)))["type"] != "error":
                pass
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(idle.recv(), 10)
        assert error["type"] == "error" and error["code"] == "idle_timeout" and idle.close_code == 1008

    try:
        with _uvicorn(server) as addr:
            asyncio.run(main(addr))
    finally:
        runtime.close()
