"""The official ``openai`` SDK against ``/v1/realtime`` on a real 127.0.0.1 server: the
flows pipecat and LiveKit Agents use (greeting by ``response.create``, a spoken question,
a typed message, history edits, a barge-in with truncation, a function call answered by
its output), in OpenAI's event order and with no ``error`` event.

The runtime is the scripted cascade (tone speech, a scripted recognizer) with its LLM
behind ``llm_openai_http`` on a small local chat server (``fake_chat_server``), so the
test can see what the LLM was asked: instructions, history, tools.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fake_chat_server import scripted_server_over_chat

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import resample

from conftest import silence, tone

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def served():
    with scripted_server_over_chat() as served_and_chat:
        yield served_and_chat


def pcm24(audio16: np.ndarray) -> str:
    return base64.b64encode(float_to_pcm16(resample(audio16, 16000, 24000))).decode()


class Recorder:
    """Reads a connection's events into a list; ``wait`` for one that matches."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events: list[Any] = []
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.conn:
            self.events.append(event)
            self._new.set()

    async def wait(self, kind: str, where: Callable[[Any], bool] = lambda e: True, timeout: float = 15.0, after: int = 0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for e in self.events[after:]:
                    if e.type == kind and where(e):
                        return e
                self._new.clear()
                await self._new.wait()

    def types(self, after: int = 0) -> list[str]:
        return [e.type for e in self.events[after:]]

    def errors(self) -> list[Any]:
        return [e for e in self.events if e.type == "error"]

    async def feed(self, audio16: np.ndarray, chunk_s: float = 0.1) -> None:
        step = int(16000 * chunk_s)
        for i in range(0, len(audio16), step):
            await self.conn.input_audio_buffer.append(audio=pcm24(audio16[i : i + step]))
            await asyncio.sleep(chunk_s)


def run_client(served: Any, body: Callable[[Recorder], Any]) -> None:
    from openai import AsyncOpenAI

    server, _ = served

    async def main() -> None:
        client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{server.port}/v1")
        async with client.realtime.connect(model="duplex") as conn:
            rec = Recorder(conn)
            await rec.wait("session.created")
            try:
                await body(rec)
            finally:
                rec._task.cancel()
            assert not rec.errors(), [e.error for e in rec.errors()]

    asyncio.run(main())


def test_greeting_typed_message_and_history(served):
    _, chat = served

    async def body(rec: Recorder) -> None:
        conn = rec.conn
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief.", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
        await rec.wait("session.updated")
        # The greeting: nothing pending, instructions for this response only, metadata echoed.
        await conn.response.create(response={"instructions": "Say hello to the user.", "metadata": {"client_event_id": "greet-1"}})
        created = await rec.wait("response.created")
        assert created.response.metadata == {"client_event_id": "greet-1"}
        done = await rec.wait("response.done")
        assert done.response.status == "completed" and done.response.metadata == {"client_event_id": "greet-1"}
        greeting = done.response.output[0]
        assert greeting.content[0].transcript.startswith("Told say here")
        assert any(e.type == "response.output_audio.delta" for e in rec.events)

        # A typed message: text, answered once; no audio-buffer or transcription events.
        mark = len(rec.events)
        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What's up?"}]})
        added = await rec.wait("conversation.item.added", after=mark)
        await conn.response.create()
        done = await rec.wait("response.done", after=mark)
        assert done.response.output[0].content[0].transcript.startswith("Told be here")
        kinds = rec.types(mark)
        assert "input_audio_buffer.committed" not in kinds
        assert not [k for k in kinds if "transcription" in k]
        asked = chat.requests[-1]["messages"]
        assert [m["content"] for m in asked if m["role"] == "user"] == ["What's up?"]
        assert asked[0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in asked] == ["system", "assistant", "user"]  # the greeting is history

        # History: a system item, an assistant item put first ("root"), one deleted, one retrieved.
        mark = len(rec.events)
        await conn.conversation.item.create(item={"type": "message", "role": "system", "content": [{"type": "input_text", "text": "The user is called Ada."}]})
        await conn.conversation.item.create(
            previous_item_id="root",
            item={"id": "item_old_answer", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Earlier I said hi."}]},
        )
        first = await rec.wait("conversation.item.added", lambda e: e.item.id == "item_old_answer", after=mark)
        assert first.previous_item_id is None
        await conn.send({"type": "conversation.item.retrieve", "item_id": added.item.id})
        got = await rec.wait("conversation.item.retrieved", after=mark)
        assert got.item.content[0].text == "What's up?"
        await conn.conversation.item.delete(item_id=added.item.id)
        await rec.wait("conversation.item.deleted", lambda e: e.item_id == added.item.id, after=mark)
        await conn.response.create()
        await rec.wait("response.done", after=mark)
        asked = chat.requests[-1]["messages"]
        contents = [m["content"] for m in asked]
        assert "What's up?" not in contents
        assert contents[1] == "Earlier I said hi." and "The user is called Ada." in contents
        # Every item the client made is done; each assistant answer is one item.
        assert rec.types(mark).count("conversation.item.done") >= 3

    run_client(served, body)


def test_spoken_question_barge_in_and_truncate(served):
    async def body(rec: Recorder) -> None:
        conn = rec.conn
        await conn.session.update(session={"type": "realtime", "instructions": "Answer at length."})
        await rec.wait("session.updated")
        await rec.feed(np.concatenate([silence(0.3), tone(1.0), silence(1.5)]))
        done = await rec.wait("response.done")
        kinds = rec.types()
        order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
                 "conversation.item.added", "conversation.item.input_audio_transcription.completed", "response.created",
                 "response.output_audio.delta", "response.done"]
        positions = [kinds.index(k) for k in order]
        assert positions == sorted(positions), kinds
        # The transcript once: not inside the item, in its completed event.
        user_added = next(e for e in rec.events if e.type == "conversation.item.added" and e.item.role == "user")
        assert user_added.item.content[0].transcript is None
        completed = [e for e in rec.events if e.type == "conversation.item.input_audio_transcription.completed"]
        assert [e.transcript for e in completed] == ["What time is it?"]
        assert done.response.status == "completed"

        # Barge-in: speak over the next answer; it is cancelled and the client truncates it.
        mark = len(rec.events)
        await rec.feed(np.concatenate([tone(1.0), silence(1.5)]))
        first_audio = await rec.wait("response.output_audio.delta", after=mark)
        await asyncio.sleep(0.6)
        await rec.feed(np.concatenate([tone(1.2, freq=440.0), silence(0.3)]))
        cut = await rec.wait("response.done", lambda e: e.response.id == first_audio.response_id, after=mark)
        assert cut.response.status == "cancelled"
        await conn.conversation.item.truncate(item_id=first_audio.item_id, content_index=0, audio_end_ms=500)
        truncated = await rec.wait("conversation.item.truncated", after=mark)
        assert truncated.item_id == first_audio.item_id and truncated.audio_end_ms == 500

    run_client(served, body)


def test_function_call_answered_through_its_output(served):
    _, chat = served

    async def body(rec: Recorder) -> None:
        conn = rec.conn
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER_TOOL], "tool_choice": "auto"})
        await rec.wait("session.updated")
        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]})
        await conn.response.create()
        args = await rec.wait("response.function_call_arguments.done")
        assert args.name == "get_weather" and args.arguments == '{"city": "Paris"}'
        done = await rec.wait("response.done")
        call = [o for o in done.response.output if o.type == "function_call"]
        assert len(call) == 1 and call[0].call_id == args.call_id
        assert chat.requests[-1]["tools"][0]["function"]["name"] == "get_weather"
        assert any(e.type == "conversation.item.added" and e.item.type == "function_call" for e in rec.events)

        # While the function runs, the client asks for a word to the user, kept out of the history.
        mark = len(rec.events)
        await conn.response.create(response={"conversation": "none", "instructions": "Tell the user to wait a moment."})
        filler = await rec.wait("response.done", after=mark)
        assert filler.response.output[0].content[0].transcript.startswith("Told tell here")
        assert not [e for e in rec.events[mark:] if e.type == "conversation.item.added"]  # not in the conversation

        mark = len(rec.events)
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": args.call_id, "output": "sunny"})
        await conn.response.create()
        done = await rec.wait("response.done", after=mark)
        assert done.response.output[0].content[0].transcript == "It is sunny in Paris."
        asked = chat.requests[-1]["messages"]
        assert asked[-2]["tool_calls"][0]["id"] == args.call_id
        assert asked[-1] == {"role": "tool", "content": "sunny", "tool_call_id": args.call_id}
        assert not any("Told tell" in str(m["content"]) for m in asked)  # the filler is not history

    run_client(served, body)


def test_manual_turns_send_no_vad_events_and_answer_on_request(served):
    async def body(rec: Recorder) -> None:
        conn = rec.conn
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        updated = await rec.wait("session.updated")
        assert updated.session.audio.input.turn_detection is None
        await rec.feed(np.concatenate([silence(0.3), tone(1.0), silence(1.0)]))
        await conn.input_audio_buffer.commit()
        await conn.response.create(response={"metadata": {"n": "1"}})
        done = await rec.wait("response.done")
        assert done.response.metadata == {"n": "1"}
        kinds = rec.types()
        assert "input_audio_buffer.speech_started" not in kinds and "input_audio_buffer.speech_stopped" not in kinds
        completed = [e for e in rec.events if e.type == "conversation.item.input_audio_transcription.completed"]
        assert [e.transcript for e in completed] == ["What time is it?"]
        assert kinds.index("conversation.item.input_audio_transcription.completed") < kinds.index("response.output_audio.delta")
        assert kinds.count("response.created") == 1

    run_client(served, body)
