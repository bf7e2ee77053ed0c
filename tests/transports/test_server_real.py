"""The server with the real default models: two clients at once both keep real time."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import websockets

from duplex.audio.frame import float_to_pcm16
from duplex.eval.generate import speak
from duplex.runtime.runtime import Runtime
from duplex.transports.server import BackgroundServer


@pytest.mark.slow
def test_two_clients_at_once_keep_real_time():
    runtime = Runtime.from_config("default", clock="realtime")
    server = BackgroundServer(runtime).start()
    # The espeak-ng command line: the same audio whatever the process synthesized before.
    questions = [
        speak("What is the capital of France?", "en-us+f3", 160),
        speak("How many legs does a spider have?", "en-us+m3", 170),
    ]

    async def client(q: np.ndarray, delay: float) -> dict:
        await asyncio.sleep(delay)
        got = {"answers": [], "heard": [], "stalls": 0, "arrivals": []}
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()
            # Room for a whole answer after the question: the LLM may write up to its 60
            # tokens, ~15 s spoken (9 s once cut one off before its agent.audio.done).
            audio = np.concatenate([np.zeros(8000, np.float32), q, np.zeros(16000 * 18, np.float32)])

            async def rx() -> None:
                async for m in ws:
                    if isinstance(m, bytes):
                        got["arrivals"].append(time.monotonic())
                        continue
                    e = json.loads(m)
                    if e["type"] == "user.transcript.final":
                        got["heard"].append(e["text"].lower())
                    elif e["type"] == "agent.audio.done":
                        got["answers"].append(e["text"])
                    elif e["type"] == "stall" and e["stage"] == "session":
                        got["stalls"] += 1

            task = asyncio.create_task(rx())
            t0 = time.monotonic()
            for i in range(0, len(audio), 512):
                await ws.send(float_to_pcm16(audio[i : i + 512]))
                await asyncio.sleep(max(0.0, t0 + (i + 512) / 16000 - time.monotonic()))
            task.cancel()
        return got

    async def main():
        return await asyncio.gather(client(questions[0], 0.0), client(questions[1], 0.5))

    try:
        a, b = asyncio.run(main())
    finally:
        server.stop()
        runtime.close()
    for got, key in ((a, "capital"), (b, "spider")):
        assert any(key in h for h in got["heard"]), got["heard"]  # each session heard its own user
        assert got["answers"], got
        assert got["stalls"] <= 2  # at most a passing lag (two sessions share 2 cores), never drift
        # Agent audio arrives paced in real time (one 32 ms frame per message), not in a burst.
        gaps = np.diff(got["arrivals"])
        span = got["arrivals"][-1] - got["arrivals"][0]
        assert span >= 0.8 * len(got["arrivals"]) * 0.032, (span, len(got["arrivals"]))
        assert np.percentile(gaps, 50) < 0.06
