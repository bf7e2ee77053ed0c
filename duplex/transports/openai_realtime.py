"""A compatible subset of the OpenAI Realtime API at ``/v1/realtime``.

Existing clients and the official ``openai`` SDK connect unchanged (pcm16 at
24 kHz; server VAD turn detection backed by our turn-taker). Supported:

client events: ``session.update``, ``input_audio_buffer.append`` / ``commit`` /
``clear``, ``conversation.item.create`` (user text), ``conversation.item.truncate``,
``response.create``, ``response.cancel``.

server events: ``session.created`` / ``updated``,
``input_audio_buffer.speech_started`` / ``speech_stopped`` / ``committed`` /
``cleared``, ``conversation.item.created`` (beta) / ``conversation.item.added``
(GA), ``conversation.item.input_audio_transcription.completed``,
``response.created``, ``response.output_item.added``,
``response.output_audio.delta`` / ``response.audio.delta`` (beta),
``response.output_audio_transcript.delta`` / ``response.audio_transcript.delta``,
the matching ``.done`` events, ``response.output_item.done``, ``response.done``,
``conversation.item.truncated``, ``error``.

GA event names are the default; a client that sends the ``OpenAI-Beta:
realtime=v1`` header gets the beta names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import uuid
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import StreamResampler
from duplex.errors import DuplexError
from duplex.events import (
    AgentAudio,
    AgentAudioDone,
    AgentAudioStarted,
    AgentTextDelta,
    BargeIn,
    ErrorEvent,
    Event,
    SpeechStarted,
    SpeechStopped,
    TurnTaken,
    UserTranscriptFinal,
)
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session

log = logging.getLogger(__name__)

RATE = 24000


class RealtimeConnection:
    """One client speaking the OpenAI Realtime protocol."""

    def __init__(self, ws: ServerConnection, runtime: Runtime, query: dict[str, str], beta: bool) -> None:
        self.ws = ws
        self.runtime = runtime
        self.model = query.get("model", "duplex")
        self.beta = beta
        self._ids = itertools.count(1)
        self._out = StreamResampler(runtime.config.audio.output_sample_rate, RATE)
        self.session: Session | None = None
        self._user_item: str | None = None
        self._prev_item: str | None = None
        self._resp: dict[str, Any] | None = None  # the response being streamed
        self._responses: dict[str, dict[str, Any]] = {}  # our response id → OpenAI ids
        self._turn_detection: dict[str, Any] | None = {"type": "server_vad"}
        self._instructions = runtime.config.models.llm.system_prompt

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:20]}"

    async def _emit(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, "event_id": self._id("event"), **fields}))

    async def _error(self, code: str, message: str, event_id: str | None = None) -> None:
        await self._emit(
            "error",
            error={"type": "invalid_request_error", "code": code, "message": message, "param": None, "event_id": event_id},
        )

    def _session_obj(self) -> dict[str, Any]:
        return {
            "id": self.session.id if self.session else "",
            "object": "realtime.session",
            "type": "realtime",
            "model": self.model,
            "modalities": ["audio", "text"],
            "output_modalities": ["audio"],
            "instructions": self._instructions,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": self._turn_detection,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE}, "turn_detection": self._turn_detection},
                "output": {"format": {"type": "audio/pcm", "rate": RATE}},
            },
        }

    async def run(self, session: Session) -> None:
        """Serve ``session`` (opened by the server after admission; the server closes it)."""
        self.session = session
        await self._emit("session.created", session=self._session_obj())
        sender = asyncio.create_task(self._pump(session))
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    await self._error("invalid_message", "binary messages are not part of this protocol; use input_audio_buffer.append")
                    continue
                await self._on_message(session, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()

    # ------------------------------------------------------------ client events
    async def _on_message(self, session: Session, message: str) -> None:
        try:
            msg = json.loads(message)
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ValueError("expected a JSON object with a string 'type'")
        except ValueError as exc:
            await self._error("invalid_json", f"malformed event: {exc}")
            return
        kind, eid = msg["type"], msg.get("event_id")
        if kind == "session.update":
            await self._session_update(session, msg.get("session") or {}, eid)
        elif kind == "input_audio_buffer.append":
            try:
                pcm = base64.b64decode(msg.get("audio", ""), validate=True)
                session.push_audio(pcm, sample_rate=RATE)
            except (binascii.Error, ValueError, DuplexError) as exc:
                await self._error("invalid_audio", f"input_audio_buffer.append: {exc}", eid)
        elif kind == "input_audio_buffer.commit":
            session.commit()
        elif kind == "input_audio_buffer.clear":
            session.clear_input()
            await self._emit("input_audio_buffer.cleared")
        elif kind == "conversation.item.create":
            await self._item_create(session, msg.get("item") or {}, eid)
        elif kind == "conversation.item.truncate":
            item_id = msg.get("item_id")
            ours = next((k for k, v in self._responses.items() if v["item_id"] == item_id), None)
            if ours is None:
                await self._error("item_not_found", f"no assistant item {item_id!r}", eid)
                return
            end_ms = float(msg.get("audio_end_ms", 0))
            session.truncate(ours, end_ms)
            await self._emit("conversation.item.truncated", item_id=item_id, content_index=msg.get("content_index", 0), audio_end_ms=int(end_ms))
        elif kind == "response.create":
            pending = self._pending_text
            if pending:
                self._pending_text = ""
                session.send_text(pending)
            else:
                session.commit()
        elif kind == "response.cancel":
            session.cancel_response()
        else:
            await self._error("unknown_event", f"unsupported client event {kind!r}", eid)

    _pending_text = ""

    async def _session_update(self, session: Session, s: dict[str, Any], eid: str | None) -> None:
        if "instructions" in s and isinstance(s["instructions"], str):
            self._instructions = s["instructions"]
            session.set_instructions(self._instructions)
        td_given = "turn_detection" in s
        td = s.get("turn_detection")
        audio_in = (s.get("audio") or {}).get("input") or {}
        if "turn_detection" in audio_in:
            td_given, td = True, audio_in["turn_detection"]
        if td_given:
            self._turn_detection = td
            session.set_auto_turns(td is not None)
        fmt = s.get("input_audio_format") or ((audio_in.get("format") or {}).get("type"))
        rate = (audio_in.get("format") or {}).get("rate", RATE)
        if fmt not in (None, "pcm16", "audio/pcm") or rate != RATE:
            await self._error("unsupported_format", "only pcm16 (audio/pcm) at 24000 Hz is supported", eid)
        await self._emit("session.updated", session=self._session_obj())

    async def _item_create(self, session: Session, item: dict[str, Any], eid: str | None) -> None:
        if item.get("type") != "message" or item.get("role") != "user":
            await self._error("unsupported_item", "only user message items are supported", eid)
            return
        texts = [c.get("text", "") for c in item.get("content", []) if c.get("type") in ("input_text", "text")]
        text = " ".join(t for t in texts if t).strip()
        if not text:
            await self._error("unsupported_item", "user items need input_text content", eid)
            return
        self._pending_text = f"{self._pending_text} {text}".strip()
        item_id = item.get("id") or self._id("item")
        await self._item_added(item_id, "user", [{"type": "input_text", "text": text}])

    async def _item_added(self, item_id: str, role: str, content: list[dict[str, Any]]) -> None:
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": role, "content": content}
        await self._emit("conversation.item.created" if self.beta else "conversation.item.added", previous_item_id=self._prev_item, item=item)
        self._prev_item = item_id

    # ------------------------------------------------------------ server events
    async def _pump(self, session: Session) -> None:
        try:
            async for event in session.events():
                await self._on_event(event)
        except ConnectionClosed:
            pass

    def _name(self, ga: str, beta: str) -> str:
        return beta if self.beta else ga

    async def _on_event(self, e: Event) -> None:
        if isinstance(e, SpeechStarted):
            self._user_item = self._id("item")
            await self._emit("input_audio_buffer.speech_started", audio_start_ms=int(e.t_ms), item_id=self._user_item)
        elif isinstance(e, SpeechStopped):
            await self._emit("input_audio_buffer.speech_stopped", audio_end_ms=int(e.t_ms), item_id=self._user_item or self._id("item"))
        elif isinstance(e, UserTranscriptFinal):
            self._last_transcript = e.text
        elif isinstance(e, TurnTaken):
            item_id = self._user_item or self._id("item")
            self._user_item = None
            await self._emit("input_audio_buffer.committed", previous_item_id=self._prev_item, item_id=item_id)
            await self._item_added(item_id, "user", [{"type": "input_audio", "transcript": e.text}])
            await self._emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=e.text)
        elif isinstance(e, AgentTextDelta):
            r = self._response_for(e.response_id)
            if r["new"]:
                await self._open_response(r)
            r["text"] += ("" if not r["text"] else " ") + e.text
            await self._emit(self._name("response.output_audio_transcript.delta", "response.audio_transcript.delta"), **self._ref(r), delta=e.text if not r["text_sent"] else " " + e.text)
            r["text_sent"] = True
        elif isinstance(e, AgentAudioStarted):
            r = self._response_for(e.response_id)
            if r["new"]:
                await self._open_response(r)
        elif isinstance(e, AgentAudio):
            r = self._response_for(e.response_id)
            if r["new"]:
                await self._open_response(r)
            pcm = float_to_pcm16(self._out.process(e.samples))
            await self._emit(self._name("response.output_audio.delta", "response.audio.delta"), **self._ref(r), delta=base64.b64encode(pcm).decode())
        elif isinstance(e, AgentAudioDone):
            r = self._response_for(e.response_id)
            if r["new"]:
                await self._open_response(r)
            await self._close_response(r, e)
        elif isinstance(e, BargeIn) and e.phase == "confirmed":
            await self._emit("output_audio_buffer.cleared", response_id=self._responses.get(e.response_id, {}).get("id", ""))
        elif isinstance(e, ErrorEvent):
            await self._emit("error", error={"type": "server_error", "code": e.code, "message": e.message, "param": None, "event_id": None})

    def _response_for(self, response_id: str) -> dict[str, Any]:
        if response_id not in self._responses:
            self._responses[response_id] = {"id": self._id("resp"), "item_id": self._id("item"), "new": True, "text": "", "text_sent": False}
        return self._responses[response_id]

    def _ref(self, r: dict[str, Any]) -> dict[str, Any]:
        return {"response_id": r["id"], "item_id": r["item_id"], "output_index": 0, "content_index": 0}

    def _response_obj(self, r: dict[str, Any], status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": r["id"], "object": "realtime.response", "status": status, "status_details": None, "output": output, "usage": None, "conversation_id": self.session.id if self.session else None}

    async def _open_response(self, r: dict[str, Any]) -> None:
        r["new"] = False
        await self._emit("response.created", response=self._response_obj(r, "in_progress", []))
        item = {"id": r["item_id"], "object": "realtime.item", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        await self._emit("response.output_item.added", response_id=r["id"], output_index=0, item=item)
        await self._item_added(r["item_id"], "assistant", [])
        await self._emit("response.content_part.added", **self._ref(r), part={"type": "audio", "transcript": ""})

    async def _close_response(self, r: dict[str, Any], e: AgentAudioDone) -> None:
        status = "cancelled" if e.interrupted else "completed"
        transcript = e.text
        await self._emit(self._name("response.output_audio.done", "response.audio.done"), **self._ref(r))
        await self._emit(self._name("response.output_audio_transcript.done", "response.audio_transcript.done"), **self._ref(r), transcript=transcript)
        part = {"type": "audio", "transcript": transcript}
        await self._emit("response.content_part.done", **self._ref(r), part=part)
        item = {"id": r["item_id"], "object": "realtime.item", "type": "message", "status": "completed" if not e.interrupted else "incomplete", "role": "assistant", "content": [part]}
        await self._emit("response.output_item.done", response_id=r["id"], output_index=0, item=item)
        await self._emit("response.done", response=self._response_obj(r, status, [item]))
