"""pipecat's ``OpenAIRealtimeLLMService`` on a local duplex server: one spoken question in,
the agent's answer out (text on stdout, audio in a WAV file), with a function it may call.

A pipecat app puts a transport (``LocalAudioTransport``, Daily, a WebSocket) around the
same pipeline; here a WAV file stands in for the microphone and another for the speaker.
Run it in an environment with ``pipecat-ai[openai]`` (``make frameworks-venv`` makes one):

    duplex serve &                                    # ws://127.0.0.1:8765/v1/realtime
    .venv-frameworks/bin/python demos/pipecat_realtime.py question.wav answer.wav

``question.wav``: mono 16-bit PCM at 24 kHz (``sox in.wav -r 24000 -c 1 -b 16 question.wav``).
"""

from __future__ import annotations

import argparse
import asyncio
import wave
from typing import Any

from pipecat.adapters.schemas.function_schema import FunctionSchema
from pipecat.adapters.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

RATE = 24000


class Speaker(FrameProcessor):
    """Stands in for the output transport: keeps the answer's audio and words."""

    def __init__(self) -> None:
        super().__init__()
        self.pcm = bytearray()
        self.words: list[str] = []
        self.done = asyncio.Event()

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.pcm += frame.audio
        elif isinstance(frame, TTSTextFrame):
            self.words.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame) and self.pcm:
            self.done.set()
        await self.push_frame(frame, direction)


async def get_time(params: FunctionCallParams) -> None:
    print("function call: get_time", params.arguments)
    await params.result_callback({"time": "ten past nine"})


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("question", help="mono PCM16 WAV at 24 kHz")
    ap.add_argument("answer", help="where to write the agent's spoken answer")
    ap.add_argument("--url", default="ws://127.0.0.1:8765/v1/realtime")
    args = ap.parse_args()
    with wave.open(args.question) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{args.question}: need mono 16-bit PCM at {RATE} Hz")
        question = w.readframes(w.getnframes())

    llm = OpenAIRealtimeLLMService(
        api_key="unused",
        base_url=args.url,
        settings=OpenAIRealtimeLLMService.Settings(model="duplex", system_instruction="You are a friendly voice assistant. Answer in one short sentence."),
    )
    llm.register_function("get_time", get_time)
    tools = ToolsSchema(standard_tools=[FunctionSchema(name="get_time", description="The local time in a city.", properties={"city": {"type": "string"}}, required=["city"])])
    context = LLMContext([], tools=tools)
    pair = LLMContextAggregatorPair(context)
    speaker = Speaker()
    task = PipelineTask(Pipeline([pair.user(), llm, speaker, pair.assistant()]), params=PipelineParams(), enable_rtvi=False)
    running = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    try:
        await asyncio.sleep(1.0)  # connected, session configured
        chunk = RATE // 50 * 2  # the microphone's part: 20 ms frames in real time
        for i in range(0, len(question) + 2 * RATE, chunk):
            audio = question[i : i + chunk] or bytes(chunk)
            await task.queue_frame(InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1))
            await asyncio.sleep(0.02)
        await asyncio.wait_for(speaker.done.wait(), 30)
    finally:
        await task.cancel()
        await asyncio.wait_for(running, 10)
    print("agent:", "".join(speaker.words).strip())
    with wave.open(args.answer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(speaker.pcm))
    print(f"wrote {len(speaker.pcm) / 2 / RATE:.1f} s of answer to {args.answer}")


if __name__ == "__main__":
    asyncio.run(main())
