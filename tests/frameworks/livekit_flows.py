"""LiveKit Agents' OpenAI Realtime session (livekit-plugins-openai) against a duplex server.

Run in the frameworks' own environment (``.venv-frameworks``, ``make frameworks-venv``) by
``tests/transports/test_frameworks.py``; prints one JSON object with what it saw. It drives
``RealtimeModel(base_url=...).session()`` as ``AgentSession`` does (generate_reply,
update_chat_ctx, update_tools, push_audio, interrupt + truncate on the user's speech),
so LiveKit's own websocket client, event models and receive loop talk to the server.

    python livekit_flows.py BASE_URL QUESTION.wav [--flows all|spoken]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import wave
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import llm
from livekit.plugins.openai.realtime import RealtimeModel

RATE = 24000


def read_wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


class Run:
    def __init__(self, base_url: str) -> None:
        self.model = RealtimeModel(base_url=base_url, api_key="unused", model="duplex")
        self.session = self.model.session()
        self.server_events: list[dict[str, Any]] = []
        self.transcripts: list[tuple[str, bool]] = []
        self.speech_started = 0
        self.generations: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
        self.session.on("openai_server_event_received", self.server_events.append)
        self.session.on("input_audio_transcription_completed", lambda ev: self.transcripts.append((ev.transcript, ev.is_final)))
        self.session.on("input_speech_started", self._speech_started)
        self.session.on("generation_created", lambda ev: None if ev.user_initiated else self.generations.put_nowait(ev))
        self.playing: tuple[str, float] | None = None  # (message id, when its audio started)

    def _speech_started(self, _: Any) -> None:
        self.speech_started += 1
        # What AgentSession does when the user talks over the agent: stop and truncate.
        if self.playing is not None:
            message_id, since = self.playing
            self.session.interrupt()
            self.session.truncate(message_id=message_id, modalities=["audio"], audio_end_ms=int(1000 * (time.monotonic() - since)))

    async def read_generation(self, gen: llm.GenerationCreatedEvent, timeout: float = 30.0) -> dict[str, Any]:
        """Consume one generation as the agent would: its text, its audio, its calls."""
        out: dict[str, Any] = {"text": "", "audio_s": 0.0, "calls": []}

        async def messages() -> None:
            async for msg in gen.message_stream:
                self.playing = (msg.message_id, time.monotonic())
                out["message_id"] = msg.message_id

                async def text(m: llm.MessageGeneration) -> None:
                    async for t in m.text_stream:
                        out["text"] += t

                async def audio(m: llm.MessageGeneration) -> None:
                    async for frame in m.audio_stream:
                        out["audio_s"] += frame.samples_per_channel / frame.sample_rate

                await asyncio.gather(text(msg), audio(msg))

        async def calls() -> None:
            async for call in gen.function_stream:
                out["calls"].append({"call_id": call.call_id, "name": call.name, "arguments": call.arguments})

        await asyncio.wait_for(asyncio.gather(messages(), calls()), timeout)
        self.playing = None
        return out

    async def push(self, samples: np.ndarray, chunk_s: float = 0.02) -> None:
        step = int(RATE * chunk_s)
        for i in range(0, len(samples), step):
            part = samples[i : i + step]
            self.session.push_audio(rtc.AudioFrame(part.tobytes(), RATE, 1, len(part)))
            await asyncio.sleep(chunk_s)

    async def say(self, text: str) -> llm.GenerationCreatedEvent:
        """A typed message, as AgentSession.generate_reply(user_input=...) sends it."""
        ctx = self.session.chat_ctx.copy()
        ctx.add_message(role="user", content=text)
        await self.session.update_chat_ctx(ctx)
        return await self.session.generate_reply()

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.server_events if e["type"] == "error"]


async def all_flows(run: Run, question: np.ndarray, idle: float) -> dict[str, Any]:
    s, report = run.session, {}
    await asyncio.sleep(0.5)
    await s.update_instructions("Be brief.")
    # 1. The greeting: generate_reply(instructions=...) is matched to its response by metadata.
    gen = await asyncio.wait_for(s.generate_reply(instructions="Say hello."), 15)
    report["greeting"] = await run.read_generation(gen)
    report["greeting_user_initiated"] = gen.user_initiated
    # 2. A spoken question with server VAD.
    await run.push(np.concatenate([np.zeros(RATE // 4, np.int16), question, np.zeros(RATE, np.int16)]))
    gen = await asyncio.wait_for(run.generations.get(), 15)
    report["spoken"] = await run.read_generation(gen)
    report["transcripts"] = list(run.transcripts)
    # 3. A typed message.
    gen = await asyncio.wait_for(run.say("What's up?"), 15)
    report["typed"] = await run.read_generation(gen)
    report["history"] = [(i.type, getattr(i, "role", ""), getattr(i, "text_content", None) if i.type == "message" else None) for i in s.chat_ctx.items]
    # 4. A history edit: drop the greeting, add an earlier answer at the start.
    ctx = s.chat_ctx.copy()
    greeting_id = next(i.id for i in ctx.items if i.type == "message" and i.role == "assistant")
    ctx.items = [i for i in ctx.items if i.id != greeting_id]
    ctx.items.insert(0, llm.ChatMessage(role="assistant", content=["Earlier I said hi."]))
    await s.update_chat_ctx(ctx)
    report["edited_history"] = [(i.type, getattr(i, "role", ""), i.text_content if i.type == "message" else None) for i in s.chat_ctx.items]
    report["greeting_deleted"] = greeting_id not in {i.id for i in s.chat_ctx.items}
    # 5. A barge-in: talk over the answer; interrupt + truncate as AgentSession does.
    await run.push(np.concatenate([question, np.zeros(RATE, np.int16)]))
    gen = await asyncio.wait_for(run.generations.get(), 15)
    reading = asyncio.create_task(run.read_generation(gen))
    await asyncio.sleep(0.8)
    await run.push(np.concatenate([question, np.zeros(RATE // 2, np.int16)]))
    report["barged"] = await reading
    # 6. A function call answered through its output.
    @llm.function_tool
    async def get_weather(city: str) -> str:
        """The weather in a city now."""
        return "sunny"

    await s.update_tools([get_weather])
    gen = await asyncio.wait_for(run.say("Weather in Paris?"), 15)
    called = await run.read_generation(gen)
    report["tool_call"] = called["calls"]
    ctx = s.chat_ctx.copy()
    for c in called["calls"]:
        ctx.items.append(llm.FunctionCallOutput(call_id=c["call_id"], name=c["name"], output="sunny", is_error=False))
    await s.update_chat_ctx(ctx)
    gen = await asyncio.wait_for(s.generate_reply(), 15)
    report["tool_answer"] = await run.read_generation(gen)
    await asyncio.sleep(0.5)
    return report


async def spoken_only(run: Run, question: np.ndarray, idle: float) -> dict[str, Any]:
    await asyncio.sleep(idle)
    t0 = time.monotonic()
    await run.push(np.concatenate([np.zeros(RATE // 2, np.int16), question, np.zeros(RATE, np.int16)]))
    gen = await asyncio.wait_for(run.generations.get(), 60)
    answer = await run.read_generation(gen, timeout=60)
    return {"spoken": answer, "transcripts": list(run.transcripts), "seconds": time.monotonic() - t0}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("question")
    ap.add_argument("--flows", choices=["all", "spoken"], default="all")
    ap.add_argument("--idle", type=float, default=0.5, help="seconds without audio before the spoken question")
    args = ap.parse_args()
    run = Run(args.base_url)
    question = read_wav(args.question)
    try:
        flows = all_flows if args.flows == "all" else spoken_only
        report = await flows(run, question, args.idle)
    finally:
        await run.session.aclose()
        await run.model.aclose()
    kinds = [e["type"] for e in run.server_events]
    report.update(errors=run.errors(), heard=[e["transcript"] for e in run.server_events if e["type"] == "conversation.item.input_audio_transcription.completed"], speech_started=run.speech_started, server_event_types=sorted(set(kinds)),
                  truncated=[e for e in run.server_events if e["type"] == "conversation.item.truncated"],
                  responses=[e["response"]["status"] for e in run.server_events if e["type"] == "response.done"])
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
