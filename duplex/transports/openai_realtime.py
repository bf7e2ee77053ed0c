"""The OpenAI Realtime API at ``/v1/realtime``, as the official ``openai`` SDK, pipecat and
LiveKit Agents use it (pcm16 at 24 kHz; server VAD backed by our turn-taker).

Client events (validated by ``realtime_schema``; a malformed one gets an ``error`` event
that names the field, and the session goes on): ``session.update`` (instructions,
turn detection on/off, tools, tool_choice, output modalities), ``input_audio_buffer.append``
/ ``commit`` / ``clear``, ``conversation.item.create`` (user, system, developer and
assistant messages, ``function_call``, ``function_call_output``; at any place with
``previous_item_id``), ``conversation.item.retrieve`` / ``delete`` / ``truncate``,
``response.create`` (answer now: ``instructions``, ``metadata``, ``tools``, ``tool_choice``,
``conversation: "none"``), ``response.cancel``, ``output_audio_buffer.clear``.

Server events, in OpenAI's GA order: ``session.created`` / ``updated``;
``input_audio_buffer.speech_started`` / ``speech_stopped`` (server VAD only) /
``committed`` / ``cleared``; ``conversation.item.added`` (the user's audio item with no
transcript yet) / ``conversation.item.done``;
``conversation.item.input_audio_transcription.delta`` (from the recognizer's partials) /
``completed`` (the transcript, once); ``conversation.item.retrieved`` / ``deleted`` /
``truncated``; ``response.created`` (with the request's ``metadata``),
``response.output_item.added``, ``response.content_part.added``,
``response.output_audio.delta``, ``response.output_audio_transcript.delta`` (or
``response.output_text.delta`` with text output), ``response.function_call_arguments.delta``
/ ``done``, the matching ``.done`` events, ``response.done``; ``error``.

A client that sends the ``OpenAI-Beta: realtime=v1`` header gets the beta names
(``conversation.item.created``, ``response.audio.delta`` ...).

Parts the agent cannot take (an ``input_image``, audio bytes inside an item) are accepted
and left out of what the agent reads, with a warning in the server log: an ``error`` would
end a pipecat session (its receive loop stops on any error but two codes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import StreamResampler
from duplex.config import ServerConfig
from duplex.errors import DuplexError
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
from duplex.models.actions import ResponseOptions
from duplex.models.stages import ChatMessage, Tool, ToolCall
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session
from duplex.transports import realtime_schema as rs
from duplex.transports.limits import InputRate

log = logging.getLogger(__name__)

RATE = 24000
_TEXT_PARTS = ("input_text", "text", "output_text")
_AUDIO_PARTS = ("input_audio", "audio", "output_audio")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _tools(tools: list[rs.FunctionTool]) -> tuple[Tool, ...]:
    return tuple(Tool(t.name, t.description, t.parameters) for t in tools)


def _tool_choice(choice: str | rs.ToolChoiceFunction) -> str:
    return choice if isinstance(choice, str) else choice.function_name


def item_text(item: dict[str, Any]) -> str:
    """What the agent reads of a message item: its text parts and audio transcripts."""
    texts = []
    for part in item.get("content") or []:
        if part.get("type") in _TEXT_PARTS and part.get("text"):
            texts.append(part["text"])
        elif part.get("type") in _AUDIO_PARTS and part.get("transcript"):
            texts.append(part["transcript"])
    return " ".join(t.strip() for t in texts if t.strip())


def history(items: list[dict[str, Any]]) -> list[ChatMessage]:
    """The conversation items as the dialogue history the agent answers from."""
    out: list[ChatMessage] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            text = item_text(item)
            if not text:
                continue
            role = {"developer": "system"}.get(item["role"], item["role"])
            out.append(ChatMessage(role, text))
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item.get("arguments") or "{}")
            if out and out[-1].role == "assistant":  # the words and the calls of one answer
                prev = out.pop()
                out.append(ChatMessage("assistant", prev.content, (*prev.tool_calls, call)))
            else:
                out.append(ChatMessage("assistant", "", (call,)))
        elif kind == "function_call_output":
            out.append(ChatMessage("tool", item["output"], tool_call_id=item["call_id"]))
    return out


@dataclass
class _Response:
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


class RealtimeConnection:
    """One client speaking the OpenAI Realtime protocol."""

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
        self._responses: dict[str, _Response] = {}  # the engine's response id → ours
        self._turn_detection: dict[str, Any] | None = {"type": "server_vad"}
        self._instructions = runtime.config.models.llm.system_prompt
        self._modalities: list[str] = ["audio"]
        self._tools: list[dict[str, Any]] = []
        self._tool_choice: str | dict[str, Any] = "auto"

    # ------------------------------------------------------------ sending
    async def _emit(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, "event_id": _new_id("event"), **fields}))

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

    # ------------------------------------------------------------ the connection
    async def run(self, session: Session) -> None:
        """Serve ``session`` (opened by the server after admission; the server closes it)."""
        self.session = session
        await self._emit("session.created", session=self._session_obj())
        sender = asyncio.create_task(self._pump(session))
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    await self._error("invalid_json", "binary messages are not part of this protocol; use input_audio_buffer.append")
                    continue
                await self.on_message(session, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()

    async def on_message(self, session: Session, message: str) -> None:
        """One client message: validated, then applied; a bad one is answered with ``error``."""
        try:
            event = rs.parse_client_event(message)
        except rs.ClientEventError as exc:
            await self._error(exc.code, exc.message, exc.param, exc.event_id)
            return
        try:
            await self._apply(session, event)
        except rs.ClientEventError as exc:
            await self._error(exc.code, exc.message, exc.param, exc.event_id or event.event_id)
        except ConnectionClosed:
            raise
        except Exception as exc:  # a bug here must not end the conversation (close 1011)
            log.exception("%s failed", event.type)
            await self._emit("error", error={"type": "server_error", "code": "internal_error", "message": f"{event.type} failed: {exc}", "param": None, "event_id": event.event_id})

    async def _append_audio(self, session: Session, pcm: bytes, event_id: str | None) -> None:
        """Audio at real time plus a burst (``server.input_burst_ms``); what a faster client
        sends past that is dropped and reported, at most once a second, as an ``error``
        with code ``input_audio_dropped`` and the dropped duration."""
        duration_ms = 1000.0 * (len(pcm) // 2) / RATE
        fits_ms = self._input.admit(duration_ms)
        if fits_ms < duration_ms and len(pcm) % 2 == 0:
            pcm = pcm[: 2 * int(fits_ms * RATE / 1000)]
        dropped = self._input.report()
        if dropped:
            await self._emit(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": "input_audio_dropped",
                    "message": f"audio sent faster than real time: {dropped:.0f} ms dropped",
                    "param": "audio",
                    "event_id": event_id,
                },
                dropped_ms=round(dropped),
            )
        if not pcm:
            return
        try:
            session.push_audio(pcm, sample_rate=RATE)
        except DuplexError as exc:
            raise rs.ClientEventError("invalid_value", f"input_audio_buffer.append: {exc}", "audio") from None

    async def _apply(self, session: Session, e: rs.ClientEvent) -> None:
        if isinstance(e, rs.SessionUpdate):
            await self._session_update(session, e)
        elif isinstance(e, rs.InputAudioBufferAppend):
            try:
                pcm = base64.b64decode(e.audio, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise rs.ClientEventError("invalid_value", f"input_audio_buffer.append: {exc}", "audio") from None
            await self._append_audio(session, pcm, e.event_id)
        elif isinstance(e, rs.InputAudioBufferCommit):
            # Recorded once transcribed; the answer comes on response.create (or, with
            # server VAD, when the turn ends by itself).
            session.commit(answer=False)
        elif isinstance(e, rs.InputAudioBufferClear):
            session.clear_input()
            self._user_item, self._partial = None, ""
            await self._emit("input_audio_buffer.cleared")
        elif isinstance(e, rs.OutputAudioBufferClear):
            session.cancel_response()
        elif isinstance(e, rs.ConversationItemCreate):
            await self._item_create(session, e)
        elif isinstance(e, rs.ConversationItemRetrieve):
            item = self._find(e.item_id)
            if item is None:
                raise rs.ClientEventError("item_retrieve_invalid_item_id", f"no item {e.item_id!r} in the conversation", "item_id")
            await self._emit("conversation.item.retrieved", item=item)
        elif isinstance(e, rs.ConversationItemDelete):
            await self._item_delete(session, e)
        elif isinstance(e, rs.ConversationItemTruncate):
            await self._item_truncate(session, e)
        elif isinstance(e, rs.ResponseCreate):
            await self._response_create(session, e)
        elif isinstance(e, rs.ResponseCancel):
            session.cancel_response()

    async def _session_update(self, session: Session, e: rs.SessionUpdate) -> None:
        s = e.session
        audio_in = s.audio.input if s.audio and s.audio.input else None
        fmt = audio_in.format if audio_in else None
        if (s.input_audio_format not in (None, "pcm16")) or (fmt is not None and (fmt.type != "audio/pcm" or fmt.rate not in (None, RATE))):
            raise rs.ClientEventError(
                "invalid_value", "only pcm16 (audio/pcm) at 24000 Hz is supported", "session.audio.input.format"
            )
        if s.instructions is not None:
            self._instructions = s.instructions
            session.set_instructions(s.instructions)
        td_given, td = "turn_detection" in s.model_fields_set, s.turn_detection
        if audio_in is not None and "turn_detection" in audio_in.model_fields_set:
            td_given, td = True, audio_in.turn_detection
        if td_given:
            self._turn_detection = td.model_dump(exclude_none=True) if td is not None else None
            session.set_auto_turns(td is not None)
        modalities = s.output_modalities or s.modalities
        if modalities:
            self._modalities = ["audio"] if "audio" in modalities else ["text"]
        if s.tools is not None or s.tool_choice is not None:
            if s.tools is not None:
                self._tools = [t.model_dump(exclude_none=True) for t in s.tools]
            if s.tool_choice is not None:
                self._tool_choice = s.tool_choice if isinstance(s.tool_choice, str) else {"type": "function", "name": s.tool_choice.function_name}
            tools = _tools([rs.FunctionTool.model_validate(t) for t in self._tools])
            choice = self._tool_choice if isinstance(self._tool_choice, str) else self._tool_choice["name"]
            session.set_tools(tools, choice)
        await self._emit("session.updated", session=self._session_obj())

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

    async def _item_create(self, session: Session, e: rs.ConversationItemCreate) -> None:
        item = e.item.model_dump(exclude_none=True)
        item["id"] = item.get("id") or _new_id("item")
        item["object"] = "realtime.item"
        item["status"] = "completed"
        if self._find(item["id"]) is not None:
            raise rs.ClientEventError("item_create_duplicate_id", f"the conversation already has an item {item['id']!r}", "item.id")
        prev = e.previous_item_id
        if prev not in (None, "root") and self._find(prev) is None:
            raise rs.ClientEventError("item_create_invalid_previous_item_id", f"no item {prev!r} to put this one after", "previous_item_id")
        if isinstance(e.item, rs.MessageItem):
            if e.item.role == "developer":
                item["role"] = "system"  # what OpenAI's GA conversation holds (and clients parse)
            skipped = [p.type for p in e.item.content if p.type == "input_image" or (p.type in _AUDIO_PARTS and p.audio and not p.transcript)]
            if skipped:
                log.warning("item %s: %s left out (the agent takes text and transcripts only)", item["id"], ", ".join(skipped))
        at_end = prev is None or bool(self._items and prev == self._items[-1]["id"]) or (prev == "root" and not self._items)
        announced_prev = self._insert(item, prev)
        if at_end:
            for message in history([item]):
                session.add_message(message)
        else:
            session.set_history(history(self._items))
        await self._announce(item, announced_prev)

    async def _item_delete(self, session: Session, e: rs.ConversationItemDelete) -> None:
        item = self._find(e.item_id)
        if item is None:
            raise rs.ClientEventError("item_delete_invalid_item_id", f"no item {e.item_id!r} in the conversation", "item_id")
        self._items.remove(item)
        session.set_history(history(self._items))
        await self._emit("conversation.item.deleted", item_id=e.item_id)

    async def _item_truncate(self, session: Session, e: rs.ConversationItemTruncate) -> None:
        item = self._find(e.item_id)
        if item is None or item.get("role") != "assistant":
            raise rs.ClientEventError("item_truncate_invalid_item_id", f"no assistant item {e.item_id!r} to truncate", "item_id")
        ours = next((k for k, r in self._responses.items() if r.message is not None and r.message["id"] == e.item_id), None)
        if ours is not None:
            session.truncate(ours, e.audio_end_ms)
        await self._emit("conversation.item.truncated", item_id=e.item_id, content_index=e.content_index, audio_end_ms=int(e.audio_end_ms))

    # ------------------------------------------------------------ responses
    def _active(self) -> _Response | None:
        return next((r for r in self._responses.values() if r.announced and not r.done), None)

    async def _response_create(self, session: Session, e: rs.ResponseCreate) -> None:
        p = e.response or rs.ResponseParams()
        if self._active() is not None:
            raise rs.ClientEventError(
                "conversation_already_has_active_response",
                "a response is in progress; cancel it or wait for response.done",
            )
        if p.input:
            log.warning("response.create: 'input' items are not supported; the response answers the conversation")
        r = _Response(_new_id("resp"), metadata=p.metadata, out_of_band=p.conversation == "none")
        self._responses[r.id] = r
        options = ResponseOptions(
            response_id=r.id,
            instructions=p.instructions,
            tools=_tools(p.tools) if p.tools is not None else None,
            tool_choice=_tool_choice(p.tool_choice) if p.tool_choice is not None else None,
            record=p.conversation != "none",
        )
        await self._open(r)
        session.respond(options)

    def _response_for(self, response_id: str) -> _Response:
        r = self._responses.get(response_id)
        if r is None:
            r = self._responses[response_id] = _Response(_new_id("resp"))
        return r

    def _response_obj(self, r: _Response, status: str) -> dict[str, Any]:
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

    async def _open(self, r: _Response) -> None:
        if not r.announced:
            r.announced = True
            await self._emit("response.created", response=self._response_obj(r, "in_progress"))

    def _ref(self, r: _Response) -> dict[str, Any]:
        assert r.message is not None
        return {"response_id": r.id, "item_id": r.message["id"], "output_index": r.output.index(r.message), "content_index": 0}

    def _text_mode(self) -> bool:
        return "audio" not in self._modalities

    async def _open_message(self, r: _Response) -> None:
        await self._open(r)
        if r.message is not None:
            return
        r.message = {"id": _new_id("item"), "object": "realtime.item", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        r.output.append(r.message)
        await self._emit("response.output_item.added", response_id=r.id, output_index=len(r.output) - 1, item=r.message)
        if not r.out_of_band:
            await self._announce(r.message, self._insert(r.message, None), done=False)
        part = {"type": "text", "text": ""} if self._text_mode() else {"type": self._name("output_audio", "audio"), "transcript": ""}
        await self._emit("response.content_part.added", **self._ref(r), part=part)

    async def _tool_call(self, r: _Response, e: AgentToolCall) -> None:
        await self._open(r)
        item = {"id": _new_id("item"), "object": "realtime.item", "type": "function_call", "status": "in_progress", "call_id": e.call_id, "name": e.name, "arguments": ""}
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

    async def _close(self, r: _Response, e: AgentAudioDone) -> None:
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
                self._user_item, self._partial = _new_id("item"), ""
                await self._emit("input_audio_buffer.speech_started", audio_start_ms=int(e.t_ms), item_id=self._user_item)
        elif isinstance(e, SpeechStopped):
            if vad:
                self._user_item = self._user_item or _new_id("item")
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
        elif isinstance(e, AgentAudio):
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
        self._user_item = self._user_item or _new_id("item")
        delta, self._partial = text[len(self._partial) :], text
        await self._emit("conversation.item.input_audio_transcription.delta", item_id=self._user_item, content_index=0, delta=delta)

    async def _user_turn(self, e: TurnTaken) -> None:
        """The user's spoken turn: committed, its item, its transcript (once), its item done."""
        item_id = self._user_item or _new_id("item")
        self._user_item, self._partial = None, ""
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        prev = self._insert(item, None)
        await self._emit("input_audio_buffer.committed", previous_item_id=prev, item_id=item_id)
        await self._announce(item, prev, done=False)
        item["content"] = [{"type": "input_audio", "transcript": e.text}]
        await self._emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=e.text)
        if not self.beta:
            await self._emit("conversation.item.done", previous_item_id=prev, item=item)
