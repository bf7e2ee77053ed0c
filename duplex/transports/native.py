"""The native WebSocket protocol (``/ws``), version ``duplex.v1``.

Binary messages carry PCM16 little-endian mono audio both ways: user audio at the
declared input rate from the client, agent audio at the declared output rate
from the server, one engine frame (32 ms by default) per message, paced in
real time. Text messages are JSON objects with a ``type``. See docs/protocol.md.

Client → server:
    binary                       user audio (PCM16 at ``input_sample_rate``)
    {"type": "session.update", "input_sample_rate": 16000, "output_sample_rate": 24000,
     "instructions": "...", "turn_detection": true}
    {"type": "input.commit"}     end the user's turn now (manual turn detection)
    {"type": "input.clear"}      drop the user's turn in progress
    {"type": "text", "text": "..."}  a typed user message, answered at once
    {"type": "response.cancel"}  stop the agent now
    {"type": "ping"}

Server → client:
    binary                       agent audio (PCM16 at ``output_sample_rate``)
    {"type": "session.created", "protocol": "duplex.v1", ...}
    every engine event as JSON (``duplex.events``: t_ms in stream time), e.g.
    user.speech_started, user.transcript.final, turn.taken, agent.text.delta,
    agent.audio.started, agent.audio.done, barge_in, user.backchannel,
    agent.backchannel (the agent's "mhm": its audio comes as binary frames too, outside
    any response), state, stall
    {"type": "output.flush"}     drop any agent audio not yet played (an interruption)
    {"type": "error", "code": "...", "message": "..."}   bad input; the session goes on
    {"type": "input.dropped", "dropped_ms": ..., "reason": "too_fast" | "backlog"}
    {"type": "pong"}
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import StreamResampler
from duplex.config import ServerConfig
from duplex.errors import DuplexError
from duplex.events import AgentAudio, AgentAudioDone, BargeIn, Event, InputDropped, SessionStarted
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session
from duplex.transports.limits import InputRate
from duplex.transports.native_schema import (
    RATES,
    BadMessage,
    InputClear,
    InputCommit,
    Ping,
    Query,
    ResponseCancel,
    SessionUpdate,
    Text,
    parse_message,
)

log = logging.getLogger(__name__)

PROTOCOL = "duplex.v1"
__all__ = ["PROTOCOL", "RATES", "NativeConnection"]


class NativeConnection:
    """One client on the native protocol.

    The server validates the URL (``query``), admits the client and opens its session
    before ``run``; the connection owns the session's traffic, not its life.
    """

    def __init__(self, ws: ServerConnection, runtime: Runtime, query: Query, limits: ServerConfig | None = None) -> None:
        self.ws = ws
        self.runtime = runtime
        limits = limits or ServerConfig()
        self.input_rate: int = query.input_sample_rate or query.rate or runtime.config.audio.input_sample_rate
        self.output_rate: int = query.output_sample_rate or runtime.config.audio.output_sample_rate
        self.session: Session | None = None
        self._out = StreamResampler(runtime.config.audio.output_sample_rate, self.output_rate)
        self._input = InputRate(limits.input_burst_ms)

    async def error(self, code: str, message: str) -> None:
        await self.ws.send(json.dumps({"type": "error", "code": code, "message": message}))

    @staticmethod
    def notifier(ws: ServerConnection) -> Callable[[str, str], Awaitable[None]]:
        """How the server tells a native client about a refusal or a limit."""

        async def notify(code: str, message: str) -> None:
            await ws.send(json.dumps({"type": "error", "code": code, "message": message}))

        return notify

    async def run(self, session: Session) -> None:
        """Serve ``session`` until the client leaves or the session ends."""
        self.session = session
        await self.ws.send(
            json.dumps(
                {
                    "type": "session.created",
                    "protocol": PROTOCOL,
                    "session_id": session.id,
                    "input_sample_rate": self.input_rate,
                    "output_sample_rate": self.output_rate,
                    "frame_ms": self.runtime.config.audio.frame_ms,
                }
            )
        )
        sender = asyncio.create_task(self._send_events(session))
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    await self._on_audio(session, message)
                else:
                    await self._on_text(session, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()

    async def _on_audio(self, session: Session, pcm: bytes) -> None:
        duration_ms = 1000.0 * (len(pcm) // 2) / self.input_rate
        fits_ms = self._input.admit(duration_ms)
        if fits_ms < duration_ms:
            pcm = pcm[: 2 * int(fits_ms * self.input_rate / 1000)] if len(pcm) % 2 == 0 else pcm
        dropped = self._input.report()
        if dropped:
            await self.ws.send(json.dumps(InputDropped(session.t_ms, dropped, "too_fast").to_dict()))
        if not pcm:
            return
        try:
            session.push_audio(pcm, sample_rate=self.input_rate)
        except DuplexError as exc:
            await self.error("bad_audio", str(exc))

    async def _on_text(self, session: Session, message: str) -> None:
        msg = parse_message(message)
        match msg:
            case BadMessage(code=code, message=text):
                await self.error(code, text)
            case SessionUpdate():
                self.input_rate = msg.input_sample_rate or self.input_rate
                out_rate = msg.output_sample_rate or self.output_rate
                if out_rate != self.output_rate:
                    self.output_rate = out_rate
                    self._out = StreamResampler(self.runtime.config.audio.output_sample_rate, out_rate)
                if msg.instructions is not None:
                    session.set_instructions(msg.instructions)
                if msg.turn_detection is not None:
                    session.set_auto_turns(msg.turn_detection)
                await self.ws.send(json.dumps({"type": "session.updated", "input_sample_rate": self.input_rate, "output_sample_rate": self.output_rate}))
            case InputCommit():
                session.commit()
            case InputClear():
                session.clear_input()
            case Text():
                session.send_text(msg.text)
            case ResponseCancel():
                session.cancel_response()
            case Ping():
                await self.ws.send(json.dumps({"type": "pong"}))

    async def _send_events(self, session: Session) -> None:
        try:
            async for event in session.events():
                await self._send(event)
        except ConnectionClosed:
            pass

    async def _send(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            return  # the client already has session.created
        if isinstance(event, AgentAudio):
            await self.ws.send(float_to_pcm16(self._out.process(event.samples)))
            return
        if (isinstance(event, BargeIn) and event.phase == "confirmed") or (
            isinstance(event, AgentAudioDone) and event.interrupted
        ):
            await self.ws.send(json.dumps({"type": "output.flush", "t_ms": event.t_ms}))
        await self.ws.send(json.dumps(event.to_dict()))
