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
import logging

from websockets.exceptions import ConnectionClosed

from duplex.errors import DuplexError
from duplex.models.actions import ResponseOptions
from duplex.runtime.session import Session
from duplex.transports import realtime_schema as rs
from duplex.transports.realtime_items import (
    AUDIO_PARTS,
    RATE,
    history,
    new_id,
    tool_choice_name,
    tools_from,
)
from duplex.transports.realtime_output import ClientResponse, RealtimeOutput

log = logging.getLogger(__name__)


class RealtimeConnection(RealtimeOutput):
    """One client speaking the OpenAI Realtime protocol: its events in, validated and
    applied to the session (what it is sent: ``RealtimeOutput``)."""

    # ------------------------------------------------------------ the connection
    async def run(self, session: Session) -> None:
        """Serve ``session`` (opened by the server after admission; the server closes it)."""
        self.session = session
        # The protocol has no audio outside a response: the agent's own "mhm" could not be
        # played, and the echo guard would still expect its echo.
        session.set_agent_backchannels(False)
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
            tools = tools_from([rs.FunctionTool.model_validate(t) for t in self._tools])
            choice = self._tool_choice if isinstance(self._tool_choice, str) else self._tool_choice["name"]
            session.set_tools(tools, choice)
        await self._emit("session.updated", session=self._session_obj())

    async def _item_create(self, session: Session, e: rs.ConversationItemCreate) -> None:
        item = e.item.model_dump(exclude_none=True)
        item["id"] = item.get("id") or new_id("item")
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
            skipped = [p.type for p in e.item.content if p.type == "input_image" or (p.type in AUDIO_PARTS and p.audio and not p.transcript)]
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

    async def _response_create(self, session: Session, e: rs.ResponseCreate) -> None:
        p = e.response or rs.ResponseParams()
        if self._active() is not None:
            raise rs.ClientEventError(
                "conversation_already_has_active_response",
                "a response is in progress; cancel it or wait for response.done",
            )
        if p.input:
            log.warning("response.create: 'input' items are not supported; the response answers the conversation")
        r = ClientResponse(new_id("resp"), metadata=p.metadata, out_of_band=p.conversation == "none")
        self._responses[r.id] = r
        options = ResponseOptions(
            response_id=r.id,
            instructions=p.instructions,
            tools=tools_from(p.tools) if p.tools is not None else None,
            tool_choice=tool_choice_name(p.tool_choice) if p.tool_choice is not None else None,
            record=p.conversation != "none",
        )
        await self._open(r)
        session.respond(options)
