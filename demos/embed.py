"""Embedding duplex in an app: feed audio from anywhere, react to typed events.

Runs the embedded default on the real-time clock, streams a WAV file into a
session as if it came from a microphone, prints what happens and records the
conversation (user left, agent right, in stream time). Run: .venv/bin/python demos/embed.py demos/data/demo_conversation.wav
"""

from __future__ import annotations

import asyncio
import sys
import time

from duplex import Runtime
from duplex.audio import ConversationWriter
from duplex.audio.wav import read_wav
from duplex.events import AgentAudioDone, AgentAudioStarted, TurnTaken

SAVED = "out/embed_conversation.wav"


async def main(path: str) -> None:
    runtime = Runtime.from_config("default")  # real-time clock, models loaded once
    rates = runtime.config.audio
    recorder = ConversationWriter(SAVED, input_rate=rates.input_sample_rate, output_rate=rates.output_sample_rate)
    session = runtime.open_session(recorder=recorder)  # gets every tick's input and output
    audio, rate = read_wav(path)

    async def feed() -> None:
        frame = rate * 32 // 1000
        t0 = time.monotonic()
        for i in range(0, len(audio), frame):
            session.push_audio(audio[i : i + frame], sample_rate=rate)
            await asyncio.sleep(max(0.0, t0 + (i + frame) / rate - time.monotonic()))
        await asyncio.sleep(8.0)  # let the last answer finish
        runtime.close_session(session)  # closes the recorder too

    feeder = asyncio.create_task(feed())
    async for event in session.events():
        if isinstance(event, TurnTaken):
            print(f"{event.t_ms / 1000:6.2f}s  user: {event.text}")
        elif isinstance(event, AgentAudioStarted):
            print(f"{event.t_ms / 1000:6.2f}s  (answer after {event.latency_ms:.0f} ms)")
        elif isinstance(event, AgentAudioDone):
            print(f"{event.t_ms / 1000:6.2f}s  agent: {event.text}")
            recorder.sync()  # on disk up to here, should the app crash
    await feeder
    print(f"conversation saved to {SAVED} (user left, agent right)")
    runtime.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "demos/data/demo_conversation.wav"))
