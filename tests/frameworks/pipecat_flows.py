"""pipecat's ``OpenAIRealtimeLLMService`` in a pipecat pipeline, against a duplex server.

Run in the frameworks' own environment (``.venv-frameworks``) by
``tests/transports/test_frameworks.py``; prints one JSON object with what it saw. The
pipeline is pipecat's own (context aggregators, the realtime service, a pipeline task and
runner); frames go in where a transport would put them (user audio, typed messages) and
a recorder at the end keeps what comes out. The server's events are observed (not changed)
by wrapping pipecat's ``parse_server_event``.

    python pipecat_flows.py BASE_URL QUESTION.wav [--flows all|spoken]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import wave
from typing import Any

from pipecat.adapters.schemas.function_schema import FunctionSchema
from pipecat.adapters.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

RATE = 24000
SERVER_EVENTS: list[dict[str, Any]] = []
_parse = events.parse_server_event


def _observed_parse(message: str) -> Any:
    SERVER_EVENTS.append(json.loads(message))
    return _parse(message)


events.parse_server_event = _observed_parse


def read_wav(path: str) -> bytes:
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes())


class Injector(FrameProcessor):
    """Where an app's own processor sits (after the user aggregator): typed messages go
    to the realtime service from here, as ``LLMMessagesAppendFrame``."""

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Recorder(FrameProcessor):
    """Keeps the frames a pipeline's output would play or show."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_bytes = 0
        self.texts: list[str] = []
        self.transcripts: list[str] = []
        self.errors: list[str] = []
        self.turns = 0  # TTSStartedFrame: an answer began to play
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.audio_bytes += len(frame.audio)
        elif isinstance(frame, TTSStartedFrame):
            self.turns += 1
        elif isinstance(frame, TTSTextFrame):
            self.texts.append(frame.text)
        elif isinstance(frame, TranscriptionFrame):
            self.transcripts.append(frame.text)
        elif isinstance(frame, ErrorFrame):
            self.errors.append(str(frame.error))
        self.changed.set()
        await self.push_frame(frame, direction)


def server_events(kind: str, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in SERVER_EVENTS[since:] if e["type"] == kind]


async def until(cond: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


async def push_audio(task: PipelineTask, pcm: bytes, chunk_s: float = 0.02) -> None:
    step = int(RATE * chunk_s) * 2
    for i in range(0, len(pcm), step):
        await task.queue_frame(InputAudioRawFrame(audio=pcm[i : i + step], sample_rate=RATE, num_channels=1))
        await asyncio.sleep(chunk_s)


def answers_done(since: int) -> int:
    return len(server_events("response.done", since))


def last_answer_text(since: int) -> str:
    done = server_events("response.done", since)
    for item in done[-1]["response"]["output"] if done else []:
        if item["type"] == "message" and item.get("content"):
            return item["content"][0].get("transcript") or item["content"][0].get("text") or ""
    return ""


async def all_flows(llm: OpenAIRealtimeLLMService, task: PipelineTask, rec: Recorder, context: LLMContext, question: bytes, app: Injector, idle: float = 0.5) -> dict[str, Any]:
    report: dict[str, Any] = {}
    silence = bytes(RATE // 2 * 2)
    # 1. The greeting: the context's "Say hello." and a response on LLMRunFrame.
    await task.queue_frame(LLMRunFrame())
    await until(lambda: answers_done(0) >= 1)
    report["greeting"] = {"text": last_answer_text(0), "audio_s": rec.audio_bytes / 2 / RATE}
    # 2. A spoken question with server VAD.
    mark, audio0 = len(SERVER_EVENTS), rec.audio_bytes
    await push_audio(task, silence + question + silence * 2)
    await until(lambda: answers_done(mark) >= 1)
    report["spoken"] = {"text": last_answer_text(mark), "audio_s": (rec.audio_bytes - audio0) / 2 / RATE}
    # 3. A typed message (pipecat puts it in as an item and asks for a response).
    mark, audio0 = len(SERVER_EVENTS), rec.audio_bytes
    await app.push_frame(LLMMessagesAppendFrame(messages=[{"role": "user", "content": "What's up?"}], run_llm=True))
    await until(lambda: answers_done(mark) >= 1)
    report["typed"] = {"text": last_answer_text(mark), "audio_s": (rec.audio_bytes - audio0) / 2 / RATE}
    await asyncio.sleep(0.3)
    report["context_after_typed"] = [m.get("content") if isinstance(m, dict) else str(m) for m in context.get_messages()]
    # 4. History: an assistant message appended, then read back from the server.
    mark = len(SERVER_EVENTS)
    await app.push_frame(LLMMessagesAppendFrame(messages=[{"role": "assistant", "content": "I noted that."}], run_llm=False))
    await until(lambda: bool(server_events("conversation.item.added", mark)))
    added = server_events("conversation.item.added", mark)[0]["item"]
    item = await asyncio.wait_for(llm.retrieve_conversation_item(added["id"]), 10)
    report["retrieved"] = {"role": item.role, "text": item.content[0].text if item.content else None}
    # 5. A barge-in: talk over the answer; pipecat truncates on speech_started.
    mark = len(SERVER_EVENTS)
    await push_audio(task, question + silence * 2)
    await until(lambda: bool(server_events("response.output_audio.delta", mark)))
    await asyncio.sleep(0.8)
    await push_audio(task, question + silence)
    await until(lambda: answers_done(mark) >= 1 and bool(server_events("conversation.item.truncated", mark)))
    cut = server_events("response.done", mark)[0]["response"]
    played = sum(len(base64.b64decode(e["delta"])) for e in server_events("response.output_audio.delta", mark) if e["response_id"] == cut["id"])
    report["barged"] = {"status": cut["status"], "audio_s": played / 2 / RATE}
    # The words spoken over the answer are the user's next turn: its answer comes too.
    await until(lambda: answers_done(mark) >= 2)
    # 6. A function call answered through its output.
    mark, audio0 = len(SERVER_EVENTS), rec.audio_bytes
    await app.push_frame(LLMMessagesAppendFrame(messages=[{"role": "user", "content": "Weather in Paris?"}], run_llm=True))
    await until(lambda: answers_done(mark) >= 2, timeout=30)
    calls = server_events("response.function_call_arguments.done", mark)
    report["tool_call"] = [{"call_id": c["call_id"], "name": c["name"], "arguments": c["arguments"]} for c in calls]
    report["tool_answer"] = {"text": last_answer_text(mark), "audio_s": (rec.audio_bytes - audio0) / 2 / RATE}
    await asyncio.sleep(0.5)
    return report


async def spoken_only(llm: OpenAIRealtimeLLMService, task: PipelineTask, rec: Recorder, context: LLMContext, question: bytes, app: Injector, idle: float = 0.5) -> dict[str, Any]:
    await asyncio.sleep(idle)
    t0 = time.monotonic()
    await push_audio(task, bytes(RATE) + question + bytes(RATE * 2))
    await until(lambda: answers_done(0) >= 1, timeout=60)
    return {"spoken": {"text": last_answer_text(0), "audio_s": rec.audio_bytes / 2 / RATE}, "seconds": time.monotonic() - t0}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("question")
    ap.add_argument("--flows", choices=["all", "spoken"], default="all")
    ap.add_argument("--idle", type=float, default=0.5, help="seconds without audio before the spoken question")
    args = ap.parse_args()
    ws_url = args.base_url.replace("http://", "ws://").rstrip("/") + "/realtime"
    llm = OpenAIRealtimeLLMService(api_key="unused", base_url=ws_url, settings=OpenAIRealtimeLLMService.Settings(model="duplex"))
    calls_run: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls_run.append(dict(params.arguments))
        await params.result_callback("sunny")

    llm.register_function("get_weather", get_weather)
    weather = FunctionSchema(name="get_weather", description="The weather in a city now.", properties={"city": {"type": "string"}}, required=["city"])
    if args.flows == "all":
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
        context = LLMContext(messages, tools=ToolsSchema(standard_tools=[weather]))
    else:
        context = LLMContext([{"role": "system", "content": "Be brief."}])
    pair = LLMContextAggregatorPair(context)
    rec, app = Recorder(), Injector()
    task = PipelineTask(Pipeline([pair.user(), app, llm, rec, pair.assistant()]), params=PipelineParams(), enable_rtvi=False)
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.create_task(runner.run(task))
    try:
        await until(lambda: bool(server_events("session.updated")), timeout=20)
        flows = all_flows if args.flows == "all" else spoken_only
        report = await flows(llm, task, rec, context, read_wav(args.question), app, args.idle)
    except BaseException:
        import sys

        print("server events:", [e["type"] for e in SERVER_EVENTS if e["type"] != "response.output_audio.delta"], file=sys.stderr)
        raise
    finally:
        await task.cancel()
        await asyncio.wait_for(running, 10)
    report.update(
        errors=[e for e in SERVER_EVENTS if e["type"] == "error"] + [{"frame": t} for t in rec.errors],
        transcripts=[(t, True) for t in rec.transcripts],
        heard=[e["transcript"] for e in server_events("conversation.item.input_audio_transcription.completed")],
        truncated=server_events("conversation.item.truncated"),
        responses=[e["response"]["status"] for e in server_events("response.done")],
        calls_run=calls_run,
        server_event_types=sorted({e["type"] for e in SERVER_EVENTS}),
    )
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
