"""The WebSocket server on a real 127.0.0.1 socket, with the scripted model:
protocol behaviour (native and OpenAI Realtime) independent of model speed."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
import websockets

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import resample
from duplex.config import config_from_dict
from duplex.models.scripted import scripted_model
from duplex.runtime.runtime import Runtime
from duplex.transports.server import DuplexServer

from conftest import silence, tone


@pytest.fixture
def server():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    runtime = Runtime(cfg, model=scripted_model(cfg, script=["What time is it?"]), clock="realtime")
    srv = DuplexServer(runtime, "127.0.0.1", 0)
    yield srv
    runtime.close()


async def _send_realtime(ws, audio: np.ndarray, chunk: int = 512) -> None:
    for i in range(0, len(audio), chunk):
        await ws.send(float_to_pcm16(audio[i : i + chunk]))
        await asyncio.sleep(chunk / 16000)


async def _collect_until(ws, kind: str, timeout: float) -> tuple[list[dict], bytes]:
    events, audio = [], b""
    async with asyncio.timeout(timeout):
        async for msg in ws:
            if isinstance(msg, bytes):
                audio += msg
                continue
            e = json.loads(msg)
            events.append(e)
            if e["type"] == kind:
                return events, audio
    return events, audio


def test_native_client_completes_a_spoken_turn(server):
    async def main():
        await server.start()
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws?input_sample_rate=16000") as ws:
                hello = json.loads(await ws.recv())
                assert hello["type"] == "session.created" and hello["protocol"] == "duplex.v1"
                send = asyncio.create_task(_send_realtime(ws, np.concatenate([silence(0.3), tone(1.0), silence(4.0)])))
                events, audio = await _collect_until(ws, "agent.audio.done", 12)
                send.cancel()
        finally:
            await server.stop()
        types = [e["type"] for e in events]
        assert "turn.taken" in types and "agent.audio.started" in types
        assert len(audio) > 24000 * 2  # more than a second of agent PCM16 at 24 kHz
        final = next(e for e in events if e["type"] == "user.transcript.final")
        assert final["text"] == "What time is it?"

    asyncio.run(main())


async def _next_reply(ws) -> dict:
    """The next JSON message that answers the client (errors, pongs), skipping engine events."""
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(msg, str):
            e = json.loads(msg)
            if e["type"] in ("error", "pong"):
                return e


def test_native_bad_input_gets_clear_errors_and_the_session_goes_on(server):
    async def main():
        await server.start()
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.recv()
                await ws.send("{not json")
                e1 = await _next_reply(ws)
                await ws.send(json.dumps({"type": "nope"}))
                e2 = await _next_reply(ws)
                await ws.send(b"\x00\x01\x02")  # odd byte count
                e3 = await _next_reply(ws)
                await ws.send(json.dumps({"type": "ping"}))
                e4 = await _next_reply(ws)
        finally:
            await server.stop()
        assert (e1["type"], e1["code"]) == ("error", "bad_message")
        assert (e2["type"], e2["code"]) == ("error", "unknown_type")
        assert (e3["type"], e3["code"]) == ("error", "bad_audio")
        assert e4["type"] == "pong"

    asyncio.run(main())


def test_client_disconnect_mid_turn_closes_its_session(server):
    async def main():
        await server.start()
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.recv()
                await ws.send(float_to_pcm16(tone(0.5)))
                await asyncio.sleep(0.3)
                assert len(server.runtime.sessions) == 1
            for _ in range(50):
                if not server.runtime.sessions:
                    break
                await asyncio.sleep(0.05)
            assert not server.runtime.sessions
        finally:
            await server.stop()

    asyncio.run(main())


def test_openai_sdk_completes_a_spoken_turn(server):
    from openai import AsyncOpenAI

    async def main():
        await server.start()
        try:
            client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{server.port}/v1")
            audio24 = resample(np.concatenate([silence(0.3), tone(1.0), silence(3.0)]), 16000, 24000)
            got: list[str] = []
            pcm = bytearray()
            transcript = ""
            async with client.realtime.connect(model="duplex") as conn:
                await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})

                async def feed():
                    for i in range(0, len(audio24), 2400):
                        await conn.input_audio_buffer.append(audio=base64.b64encode(float_to_pcm16(audio24[i : i + 2400])).decode())
                        await asyncio.sleep(0.1)

                feeder = asyncio.create_task(feed())
                async with asyncio.timeout(15):
                    async for event in conn:
                        got.append(event.type)
                        if event.type == "response.output_audio.delta":
                            pcm += base64.b64decode(event.delta)
                        if event.type == "conversation.item.input_audio_transcription.completed":
                            transcript = event.transcript
                        if event.type == "response.done":
                            break
                feeder.cancel()
        finally:
            await server.stop()
        for kind in ["session.created", "session.updated", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "response.created", "response.output_audio.delta", "response.done"]:
            assert kind in got, kind
        assert transcript == "What time is it?"
        assert len(pcm) > 24000 * 2

    asyncio.run(main())


def test_the_agents_mhm_is_played_on_the_native_endpoint_and_off_on_the_realtime_one():
    """The OpenAI Realtime protocol has no audio outside a response, so a "mhm" there
    could not be played (and the echo guard would wait for its echo): its sessions run
    without the agent's backchannels; native sessions keep the profile's setting."""
    cfg = config_from_dict({"models": {"kind": "scripted"}, "turn": {"agent_backchannels": True}})
    runtime = Runtime(cfg, model=scripted_model(cfg, script=["Go on."]), clock="realtime")
    srv = DuplexServer(runtime, "127.0.0.1", 0)

    async def enabled_on(path: str) -> bool:
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}{path}") as ws:
            await ws.recv()  # session.created: the session is open and configured
            (session,) = runtime.sessions.values()
            return session.turn_taker.backchannels.enabled

    async def main():
        await srv.start()
        try:
            native = await enabled_on("/ws")
            for _ in range(50):  # the first session closes before the second opens
                if not runtime.sessions:
                    break
                await asyncio.sleep(0.05)
            realtime = await enabled_on("/v1/realtime")
        finally:
            await srv.stop()
        assert native and not realtime

    try:
        asyncio.run(main())
    finally:
        runtime.close()
