"""LiveKit Agents' OpenAI Realtime model on a local duplex server: one spoken question in,
the agent's answer out (text on stdout, audio in a WAV file), plus a function call.

In a LiveKit app the same model goes into ``AgentSession(llm=RealtimeModel(...))``; here
its session is driven directly, so no LiveKit room is needed. Run it in an environment with
``livekit-agents`` and ``livekit-plugins-openai`` (``make frameworks-venv`` makes one):

    duplex serve &                                    # http://127.0.0.1:8765
    .venv-frameworks/bin/python demos/livekit_realtime.py question.wav answer.wav

``question.wav``: mono 16-bit PCM at 24 kHz (``sox in.wav -r 24000 -c 1 -b 16 question.wav``).
"""

from __future__ import annotations

import argparse
import asyncio
import wave

import numpy as np
from livekit import rtc
from livekit.agents import llm
from livekit.plugins.openai.realtime import RealtimeModel

RATE = 24000


@llm.function_tool
async def get_time(city: str) -> str:
    """The local time in a city."""
    return "ten past nine"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("question", help="mono PCM16 WAV at 24 kHz")
    ap.add_argument("answer", help="where to write the agent's spoken answer")
    ap.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    args = ap.parse_args()
    with wave.open(args.question) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{args.question}: need mono 16-bit PCM at {RATE} Hz")
        question = np.frombuffer(w.readframes(w.getnframes()), np.int16)

    model = RealtimeModel(base_url=args.base_url, api_key="unused", model="duplex")
    session = model.session()
    answers: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
    session.on("generation_created", answers.put_nowait)
    session.on("input_audio_transcription_completed", lambda ev: ev.is_final and print("user:", ev.transcript))
    await session.update_instructions("You are a friendly voice assistant. Answer in one short sentence.")
    await session.update_tools([get_time])
    try:
        # The microphone's part: the question, in 20 ms frames, in real time.
        for i in range(0, len(question) + RATE, RATE // 50):
            part = question[i : i + RATE // 50]
            if len(part) < RATE // 50:
                part = np.zeros(RATE // 50, np.int16)  # then a second of silence
            session.push_audio(rtc.AudioFrame(part.tobytes(), RATE, 1, len(part)))
            await asyncio.sleep(0.02)
        gen = await asyncio.wait_for(answers.get(), 30)
        pcm = bytearray()
        async for message in gen.message_stream:
            async for frame in message.audio_stream:
                pcm += frame.data.tobytes()
        async for call in gen.function_stream:
            print("function call:", call.name, call.arguments)
        print("agent:", session.chat_ctx.items[-1].text_content if session.chat_ctx.items else "")
        with wave.open(args.answer, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(bytes(pcm))
        print(f"wrote {len(pcm) / 2 / RATE:.1f} s of answer to {args.answer}")
    finally:
        await session.aclose()
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
