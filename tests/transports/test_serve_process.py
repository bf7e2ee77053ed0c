"""``duplex serve`` as a process: graceful shutdown on SIGTERM / SIGINT, and a
session recording that survives ``kill -9``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import websockets
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16

from conftest import silence, tone

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "duplex", "serve", "--config", "scripted", "--port", str(port)]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"duplex serve exited: {proc.communicate()}") from None
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("duplex serve did not start in 60 s")


async def _speak_turn(ws) -> None:
    audio = np.concatenate([silence(0.3), tone(1.0), silence(1.5)])
    for i in range(0, len(audio), 512):
        await ws.send(float_to_pcm16(audio[i : i + 512]))
        await asyncio.sleep(512 / 16000)


async def _until(ws, kind: str, timeout: float) -> list[str]:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.recv()
            if isinstance(msg, str):
                seen.append(json.loads(msg)["type"])
                if seen[-1] == kind:
                    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_answer_finish_closes_clients_with_1001_and_exits_0(sig):
    port = _free_port()
    proc = _serve(port)
    try:

        async def main():
            url = f"ws://127.0.0.1:{port}/ws"
            async with websockets.connect(url) as talking, websockets.connect(url) as quiet:
                await talking.recv()
                await quiet.recv()
                await talking.send(json.dumps({"type": "text", "text": "Tell me something."}))
                await _until(talking, "agent.audio.started", 10)
                proc.send_signal(sig)
                # The answer in flight finishes, then the close comes.
                seen = []
                with pytest.raises(ConnectionClosed) as talking_closed:
                    async with asyncio.timeout(20):
                        while True:
                            msg = await talking.recv()
                            if isinstance(msg, str):
                                seen.append(json.loads(msg)["type"])
                assert "agent.audio.done" in seen
                with pytest.raises(ConnectionClosed) as quiet_closed:
                    async with asyncio.timeout(5):
                        while True:
                            await quiet.recv()
                assert talking_closed.value.rcvd.code == quiet_closed.value.rcvd.code == 1001
                with pytest.raises(OSError):  # no longer accepting
                    await websockets.connect(url, open_timeout=2)

        asyncio.run(main())
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert "duplex: stopped" in out, err


def test_the_recording_holds_every_completed_turn_after_kill_9(tmp_path):
    port = _free_port()
    proc = _serve(port, f"server.record_dir='{tmp_path}'")
    try:

        async def main():
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                hello = json.loads(await ws.recv())
                sender = asyncio.create_task(_speak_turn(ws))
                await _until(ws, "agent.audio.done", 15)
                await sender
                await asyncio.sleep(0.3)
                return hello["session_id"]

        session_id = asyncio.run(main())
        proc.kill()  # SIGKILL: no chance to close anything
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    folder = tmp_path / session_id
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line.strip()]
    kinds = [e["type"] for e in events]
    assert "turn.taken" in kinds and "agent.audio.done" in kinds
    done_ms = next(e["t_ms"] for e in events if e["type"] == "agent.audio.done")
    audio, rate = sf.read(folder / "conversation.wav")
    assert audio.ndim == 2 and audio.shape[1] == 2  # user left, agent right, in stream time
    assert len(audio) / rate * 1000 >= done_ms + 32  # the whole turn, its last frame included
    user, agent = audio[:, 0], audio[:, 1]
    assert np.abs(user).max() > 0.1 and np.abs(agent).max() > 0.01
