"""``duplex serve --replicas``: the runtime on Ray Serve, on 127.0.0.1, with the scripted
profile (no weights) and one session per replica, so capacity is reached with 2 clients.

One Ray cluster (2 CPUs, no dashboard) and one 2-replica application, which requires a
token as ``duplex serve --token-file`` does, serve the whole module; the test that kills a replica runs last and waits for Serve to bring it back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import ray
import websockets

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import resample
from duplex.audio.wav import write_wav
from duplex.transports import ray_serve

from browser_page import page_turn
from conftest import silence, tone

TOKEN = "ray-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = np.concatenate([silence(0.3), tone(1.0), silence(4.0)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_app():
    port = _free_port()
    config = ray_serve.replica_config("scripted", [], sessions_per_replica=1)
    options = ray_serve.RayServeOptions(replicas=2, cpus_per_replica=0.5, port=port, num_cpus=2)
    ray_serve.start(config, options, wait_s=180, token=TOKEN)
    yield f"127.0.0.1:{port}"
    ray_serve.stop()
    ray.shutdown()


async def _feed(ws, audio: np.ndarray, chunk: int = 512) -> None:
    for i in range(0, len(audio), chunk):
        await ws.send(float_to_pcm16(audio[i : i + chunk]))
        await asyncio.sleep(chunk / 16000)


async def _spoken_turn(ws, timeout_s: float = 20.0) -> dict[str, object]:
    """Speak one question on an open native connection; the events up to the answer's end."""
    feeder = asyncio.create_task(_feed(ws, QUESTION))
    types, audio_bytes, final = [], 0, ""
    try:
        async with asyncio.timeout(timeout_s):
            async for msg in ws:
                if isinstance(msg, bytes):
                    audio_bytes += len(msg)
                    continue
                e = json.loads(msg)
                types.append(e["type"])
                if e["type"] == "user.transcript.final":
                    final = e["text"]
                if e["type"] == "agent.audio.done":
                    break
    finally:
        feeder.cancel()
    return {"types": types, "audio_bytes": audio_bytes, "final": final}


def _connect(addr: str):
    return websockets.connect(f"ws://{addr}/ws?input_sample_rate=16000", additional_headers=BEARER, max_size=2**22, open_timeout=30)


def test_page_and_health_are_served_through_ray(ray_app):
    page = urllib.request.urlopen(f"http://{ray_app}/", timeout=30).read()
    assert b"<html" in page.lower()
    health = json.loads(urllib.request.urlopen(f"http://{ray_app}/healthz", timeout=30).read())
    assert health["ok"] is True
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{ray_app}/no-such-file.js", timeout=30)
    assert err.value.code == 404


def test_a_websocket_to_no_endpoint_gets_the_plain_servers_http_refusal(ray_app):
    async def main():
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(f"ws://{ray_app}/nope", open_timeout=30)
        assert err.value.response.status_code == 404
        assert b"/ws or /v1/realtime" in err.value.response.body

    asyncio.run(main())


def test_the_token_and_origin_checks_hold_through_ray(ray_app):
    """The replica's server refuses as ``duplex serve`` does: no token or a wrong one 401,
    a foreign page's Origin 403, before any session; the Bearer token is let in (the
    other tests' connections; the page's ?token= in the browser test)."""

    async def refused(**kwargs) -> int:
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(f"ws://{ray_app}/ws", open_timeout=30, **kwargs)
        return err.value.response.status_code

    async def main():
        assert await refused() == 401
        assert await refused(additional_headers={"Authorization": "Bearer wrong"}) == 401
        assert await refused(additional_headers={**BEARER, "Origin": "http://evil.example"}) == 403

    asyncio.run(main())
    health = json.loads(urllib.request.urlopen(f"http://{ray_app}/healthz", timeout=30).read())
    assert health["auth"] is True and "sessions" not in health  # counts only for the token's holder


def test_two_replicas_serve_twice_what_one_admits_and_the_next_client_is_busy(ray_app):
    async def main():
        async with _connect(ray_app) as a, _connect(ray_app) as b:
            hellos = [json.loads(await a.recv()), json.loads(await b.recv())]
            assert [h["type"] for h in hellos] == ["session.created", "session.created"]
            # Both replicas now hold their one session: a third client is told "busy".
            async with _connect(ray_app) as c:
                refusal = json.loads(await asyncio.wait_for(c.recv(), 30))
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(c.recv(), 30)
            # The plain server's refusal, word for word: it is the same code, in the replica.
            assert refusal["type"] == "error" and refusal["code"] == "unavailable" and "full" in refusal["message"]
            assert c.close_code == 1013
            # Every admitted client gets its answer, at the same time.
            turns = await asyncio.gather(_spoken_turn(a), _spoken_turn(b))
        for turn in turns:
            assert "turn.taken" in turn["types"] and "agent.audio.done" in turn["types"]
            assert turn["final"].startswith("speech of")
            assert turn["audio_bytes"] > 24000 * 2  # over a second of agent PCM16 at 24 kHz

    asyncio.run(main())


def test_openai_sdk_completes_a_spoken_turn_through_ray(ray_app):
    from openai import AsyncOpenAI

    async def main():
        client = AsyncOpenAI(api_key=TOKEN, base_url=f"http://{ray_app}/v1")
        audio24 = resample(np.concatenate([silence(0.3), tone(1.0), silence(3.0)]), 16000, 24000)
        got: list[str] = []
        pcm = bytearray()
        async with client.realtime.connect(model="duplex") as conn:
            await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})

            async def feed():
                for i in range(0, len(audio24), 2400):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(float_to_pcm16(audio24[i : i + 2400])).decode())
                    await asyncio.sleep(0.1)

            feeder = asyncio.create_task(feed())
            async with asyncio.timeout(30):
                async for event in conn:
                    got.append(event.type)
                    if event.type == "response.output_audio.delta":
                        pcm += base64.b64decode(event.delta)
                    if event.type == "response.done":
                        break
            feeder.cancel()
        for kind in ["session.created", "input_audio_buffer.speech_started", "input_audio_buffer.committed", "response.created", "response.done"]:
            assert kind in got, kind
        assert len(pcm) > 24000 * 2

    asyncio.run(main())


@pytest.mark.slow
def test_browser_page_completes_a_spoken_turn_through_ray(ray_app, tmp_path):
    mic = tmp_path / "mic.wav"
    write_wav(mic, np.concatenate([silence(2.0), tone(1.2), silence(20.0)]), 16000)
    stats, errors = page_turn(f"http://{ray_app}/?autostart=1&processing=off&token={TOKEN}", mic, "browser-ray.png")
    assert not errors, errors
    assert any(t.startswith("speech of") for t in stats["userFinals"]), stats["userFinals"]
    assert stats["agentTexts"][0].strip()
    assert stats["audioBytes"] > 16000 and stats["playedSamples"] > 8000


def test_a_killed_replica_ends_only_its_own_sessions_and_comes_back(ray_app):
    async def main():
        async with _connect(ray_app) as a, _connect(ray_app) as b:
            for ws in (a, b):
                assert json.loads(await ws.recv())["type"] == "session.created"
            replicas = [r for r in ray.util.list_named_actors(all_namespaces=True) if r["name"].startswith("SERVE_REPLICA::duplex")]
            assert len(replicas) == 2
            ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)

            async def outcome(ws) -> int | None:
                """The close code if the connection ends within 10 s, else None."""
                try:
                    async with asyncio.timeout(10):
                        async for _ in ws:
                            pass
                except TimeoutError:
                    return None
                except websockets.ConnectionClosed:
                    pass
                return ws.close_code

            codes = await asyncio.gather(outcome(a), outcome(b))
            assert sorted(codes, key=str) == [1012, None], codes  # one ended "reconnect", one untouched
            survivor = a if codes[0] is None else b
            lost = b if survivor is a else a
            assert "reconnect" in (lost.close_reason or "")
            turn = await _spoken_turn(survivor)
            assert "agent.audio.done" in turn["types"]

            # Serve starts a new replica: a reconnecting client gets a session there while
            # the survivor still holds the other replica's one session.
            for _ in range(90):
                async with _connect(ray_app) as again:
                    hello = json.loads(await asyncio.wait_for(again.recv(), 30))
                    if hello["type"] == "session.created":
                        turn = await _spoken_turn(again)
                        assert "agent.audio.done" in turn["types"]
                        return
                    assert hello["code"] == "unavailable"
                await asyncio.sleep(1.0)
            raise AssertionError("no replica came back within 90 tries")

    asyncio.run(main())
