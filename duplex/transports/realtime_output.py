"""The server side of the OpenAI Realtime endpoint: what it sends. The session's
engine events become Realtime server events (the user's items and transcripts,
responses with their message and function-call items, audio at 24 kHz), and the
conversation items and responses the client sees are kept here
(``duplex.transports.openai_realtime`` takes the client's events)."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import StreamResampler
from duplex.config import ServerConfig
from duplex.events import (
    AgentAudio,
    AgentAudioDone,
    AgentAudioStarted,
    AgentTextDelta,
    AgentToolCall,
    ErrorEvent,
    Event,
    SpeechStarted,
    SpeechStopped,
    TurnTaken,
    UserTranscriptPartial,
)
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session
from duplex.transports.limits import InputRate
from duplex.transports.realtime_items import RATE, new_id

log = logging.getLogger(__name__)


@dataclass
class ClientResponse:
    """One response as the client sees it: its ids, what it has sent, what it holds."""

    id: str
    metadata: dict[str, Any] | None = None
    announced: bool = False  # response.created sent
    message: dict[str, Any] | None = None  # the assistant message item, once opened
    output: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    failed: str = ""
    done: bool = False
    out_of_band: bool = False  # conversation "none": its items stay out of the conversation


class RealtimeOutput:
    """What one Realtime client has been sent: its session settings, conversation items
    and responses, and the engine's events turned into server events."""

    def __init__(
        self, ws: ServerConnection, runtime: Runtime, query: dict[str, str], beta: bool, limits: ServerConfig | None = None
    ) -> None:
        self.ws = ws
        self._input = InputRate((limits or ServerConfig()).input_burst_ms)
        self.runtime = runtime
        self.model = query.get("model", "duplex")
        self.beta = beta
        self._out = StreamResampler(runtime.config.audio.output_sample_rate, RATE)
        self.session: Session | None = None
        self._items: list[dict[str, Any]] = []  # the conversation, in order
        self._user_item: str | None = None  # the user's audio item being spoken
        self._partial = ""  # the transcript deltas sent for it so far
        self._responses: dict[str, ClientResponse] = {}  # the engine's response id → ours
        self._turn_detection: dict[str, Any] | None = {"type": "server_vad"}
        self._instructions = runtime.config.models.llm.system_prompt
        self._modalities: list[str] = ["audio"]
        self._tools: list[dict[str, Any]] = []
        self._tool_choice: str | dict[str, Any] = "auto"

    # ------------------------------------------------------------ sending
    async def _emit(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, "event_id": new_id("event"), **fields}))

    async def _error(self, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message, "param": param, "event_id": event_id}
        await self._emit("error", error=error)

    def _name(self, ga: str, beta: str) -> str:
        return beta if self.beta else ga

    def _session_obj(self) -> dict[str, Any]:
        return {
            "id": self.session.id if self.session else "",
            "object": "realtime.session",
            "type": "realtime",
            "model": self.model,
            "modalities": ["audio", "text"] if "audio" in self._modalities else ["text"],
            "output_modalities": self._modalities,
            "instructions": self._instructions,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": self._turn_detection,
            "tools": self._tools,
            "tool_choice": self._tool_choice,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE}, "turn_detection": self._turn_detection},
                "output": {"format": {"type": "audio/pcm", "rate": RATE}},
            },
        }

    # ------------------------------------------------------------ conversation items
    def _find(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self._items if i["id"] == item_id), None)

    def _insert(self, item: dict[str, Any], previous_item_id: str | None) -> str | None:
        """Put ``item`` after ``previous_item_id`` ("root": first; None: last); returns the
        id it follows."""
        if previous_item_id is None:
            prev = self._items[-1]["id"] if self._items else None
            self._items.append(item)
            return prev
        if previous_item_id == "root":
            self._items.insert(0, item)
            return None
        at = next(i for i, it in enumerate(self._items) if it["id"] == previous_item_id)
        self._items.insert(at + 1, item)
        return previous_item_id

    async def _announce(self, item: dict[str, Any], previous_item_id: str | None, done: bool = True) -> None:
        await self._emit(self._name("conversation.item.added", "conversation.item.created"), previous_item_id=previous_item_id, item=item)
        if done and not self.beta:
            await self._emit("conversation.item.done", previous_item_id=previous_item_id, item=item)

    # ------------------------------------------------------------ responses
    def _active(self) -> ClientResponse | None:
        return next((r for r in self._responses.values() if r.announced and not r.done), None)

    def _response_for(self, response_id: str) -> ClientResponse:
        r = self._responses.get(response_id)
        if r is None:
            r = self._responses[response_id] = ClientResponse(new_id("resp"))
        return r

    def _response_obj(self, r: ClientResponse, status: str) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": "turn_detected"}
        elif status == "failed":
            details = {"type": "failed", "error": {"type": "server_error", "code": "response_failed", "message": r.failed}}
        return {
            "id": r.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": r.output if status != "in_progress" else [],
            "metadata": r.metadata,
            "usage": None,
            "conversation_id": self.session.id if self.session else None,
            "output_modalities": self._modalities,
        }

    async def _open(self, r: ClientResponse) -> None:
        if not r.announced:
            r.announced = True
            await self._emit("response.created", response=self._response_obj(r, "in_progress"))

    def _ref(self, r: ClientResponse) -> dict[str, Any]:
        assert r.message is not None
        return {"response_id": r.id, "item_id": r.message["id"], "output_index": r.output.index(r.message), "content_index": 0}

    def _text_mode(self) -> bool:
        return "audio" not in self._modalities

    async def _open_message(self, r: ClientResponse) -> None:
        await self._open(r)
        if r.message is not None:
            return
        r.message = {"id": new_id("item"), "object": "realtime.item", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        r.output.append(r.message)
        await self._emit("response.output_item.added", response_id=r.id, output_index=len(r.output) - 1, item=r.message)
        if not r.out_of_band:
            await self._announce(r.message, self._insert(r.message, None), done=False)
        part = {"type": "text", "text": ""} if self._text_mode() else {"type": self._name("output_audio", "audio"), "transcript": ""}
        await self._emit("response.content_part.added", **self._ref(r), part=part)

    async def _tool_call(self, r: ClientResponse, e: AgentToolCall) -> None:
        await self._open(r)
        item = {"id": new_id("item"), "object": "realtime.item", "type": "function_call", "status": "in_progress", "call_id": e.call_id, "name": e.name, "arguments": ""}
        r.output.append(item)
        index = len(r.output) - 1
        await self._emit("response.output_item.added", response_id=r.id, output_index=index, item=item)
        prev = None
        if not r.out_of_band:
            prev = self._insert(item, None)
            await self._announce(item, prev, done=False)
        ref = {"response_id": r.id, "item_id": item["id"], "output_index": index, "call_id": e.call_id}
        await self._emit("response.function_call_arguments.delta", **ref, delta=e.arguments)
        item.update(arguments=e.arguments, status="completed")
        await self._emit("response.function_call_arguments.done", **ref, name=e.name, arguments=e.arguments)
        if not self.beta and not r.out_of_band:
            await self._emit("conversation.item.done", previous_item_id=prev, item=item)
        await self._emit("response.output_item.done", response_id=r.id, output_index=index, item=item)

    async def _close(self, r: ClientResponse, e: AgentAudioDone) -> None:
        await self._open(r)
        if r.message is not None:
            ref = self._ref(r)
            heard = e.text if e.interrupted else (e.text or r.text)
            if self._text_mode():
                part = {"type": "text", "text": heard}
                await self._emit(self._name("response.output_text.done", "response.text.done"), **ref, text=heard)
            else:
                part = {"type": self._name("output_audio", "audio"), "transcript": heard}
                await self._emit(self._name("response.output_audio.done", "response.audio.done"), **ref)
                await self._emit(self._name("response.output_audio_transcript.done", "response.audio_transcript.done"), **ref, transcript=heard)
            await self._emit("response.content_part.done", **ref, part=part)
            r.message.update(status="incomplete" if e.interrupted else "completed", content=[part])
            if not self.beta and not r.out_of_band:
                await self._emit("conversation.item.done", item=r.message)
            await self._emit("response.output_item.done", response_id=r.id, output_index=ref["output_index"], item=r.message)
        r.done = True
        status = "failed" if r.failed else "cancelled" if e.interrupted else "completed"
        await self._emit("response.done", response=self._response_obj(r, status))

    # ------------------------------------------------------------ engine events
    async def _pump(self, session: Session) -> None:
        try:
            async for event in session.events():
                try:
                    await self._on_event(event)
                except ConnectionClosed:
                    raise
                except Exception:  # one event's bug must not stop every later event
                    log.exception("sending %s failed", event.type)
        except ConnectionClosed:
            pass

    async def _on_event(self, e: Event) -> None:
        vad = self._turn_detection is not None
        if isinstance(e, SpeechStarted):
            if vad:
                self._user_item, self._partial = new_id("item"), ""
                await self._emit("input_audio_buffer.speech_started", audio_start_ms=int(e.t_ms), item_id=self._user_item)
        elif isinstance(e, SpeechStopped):
            if vad:
                self._user_item = self._user_item or new_id("item")
                await self._emit("input_audio_buffer.speech_stopped", audio_end_ms=int(e.t_ms), item_id=self._user_item)
        elif isinstance(e, UserTranscriptPartial):
            await self._transcript_delta(e.text)
        elif isinstance(e, TurnTaken):
            await self._user_turn(e)
        elif isinstance(e, AgentTextDelta):
            r = self._response_for(e.response_id)
            await self._open_message(r)
            delta = e.text if not r.text else " " + e.text
            r.text += delta
            if self._text_mode():
                await self._emit(self._name("response.output_text.delta", "response.text.delta"), **self._ref(r), delta=delta)
            else:
                await self._emit(self._name("response.output_audio_transcript.delta", "response.audio_transcript.delta"), **self._ref(r), delta=delta)
        elif isinstance(e, AgentAudioStarted):
            await self._open_message(self._response_for(e.response_id))
        elif isinstance(e, AgentAudio) and not e.aside:
            r = self._response_for(e.response_id)
            await self._open_message(r)
            pcm = float_to_pcm16(self._out.process(e.samples))
            if not self._text_mode():
                await self._emit(self._name("response.output_audio.delta", "response.audio.delta"), **self._ref(r), delta=base64.b64encode(pcm).decode())
        elif isinstance(e, AgentToolCall):
            await self._tool_call(self._response_for(e.response_id), e)
        elif isinstance(e, AgentAudioDone):
            await self._close(self._response_for(e.response_id), e)
        elif isinstance(e, ErrorEvent):
            if e.code == "response_failed":  # reported in its response.done (status "failed")
                active = next((r for r in self._responses.values() if not r.done), None)
                if active is not None:
                    active.failed = e.message
                    return
            await self._emit("error", error={"type": "server_error", "code": e.code, "message": e.message, "param": None, "event_id": None})

    async def _transcript_delta(self, text: str) -> None:
        """A partial transcript as a delta of the user's item: only words added at its end
        (a partial that reads the start otherwise waits for the final)."""
        if not text.startswith(self._partial) or text == self._partial:
            return
        self._user_item = self._user_item or new_id("item")
        delta, self._partial = text[len(self._partial) :], text
        await self._emit("conversation.item.input_audio_transcription.delta", item_id=self._user_item, content_index=0, delta=delta)

    async def _user_turn(self, e: TurnTaken) -> None:
        """The user's spoken turn: committed, its item, its transcript (once), its item done."""
        item_id = self._user_item or new_id("item")
        self._user_item, self._partial = None, ""
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        prev = self._insert(item, None)
        await self._emit("input_audio_buffer.committed", previous_item_id=prev, item_id=item_id)
        await self._announce(item, prev, done=False)
        item["content"] = [{"type": "input_audio", "transcript": e.text}]
        await self._emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=e.text)
        if not self.beta:
            await self._emit("conversation.item.done", previous_item_id=prev, item=item)
