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
    agent.audio.started, agent.audio.done, barge_in, user.backchannel, state, stall
    {"type": "output.flush"}     drop any agent audio not yet played (an interruption)
    {"type": "error", "code": "...", "message": "..."}   bad input; the session goes on
    {"type": "pong"}
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from duplex.audio.frame import float_to_pcm16
from duplex.audio.resample import StreamResampler
from duplex.errors import DuplexError
from duplex.events import AgentAudio, AgentAudioDone, BargeIn, Event, SessionStarted
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session

log = logging.getLogger(__name__)

PROTOCOL = "duplex.v1"
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class NativeConnection:
    """One client on the native protocol."""

    def __init__(self, ws: ServerConnection, runtime: Runtime, query: dict[str, str]) -> None:
        self.ws = ws
        self.runtime = runtime
        self.input_rate = int(query.get("input_sample_rate", query.get("rate", runtime.config.audio.input_sample_rate)))
        self.output_rate = int(query.get("output_sample_rate", runtime.config.audio.output_sample_rate))
        self.session: Session | None = None
        self._out: StreamResampler | None = None

    async def error(self, code: str, message: str) -> None:
        await self.ws.send(json.dumps({"type": "error", "code": code, "message": message}))

    async def run(self) -> None:
        if self.input_rate not in RATES or self.output_rate not in RATES:
            await self.error("bad_rate", f"sample rates must be one of {RATES}")
            await self.ws.close(1008, "bad sample rate")
            return
        session = self.runtime.open_session()
        self.session = session
        self._out = StreamResampler(self.runtime.config.audio.output_sample_rate, self.output_rate)
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
                    try:
                        session.push_audio(message, sample_rate=self.input_rate)
                    except DuplexError as exc:
                        await self.error("bad_audio", str(exc))
                else:
                    await self._on_text(session, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            self.runtime.close_session(session, "client disconnected")

    async def _on_text(self, session: Session, message: str) -> None:
        try:
            msg: Any = json.loads(message)
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ValueError("a message must be a JSON object with a string 'type'")
        except ValueError as exc:
            await self.error("bad_message", f"malformed message: {exc}")
            return
        kind = msg["type"]
        if kind == "session.update":
            rate = msg.get("input_sample_rate", self.input_rate)
            out_rate = msg.get("output_sample_rate", self.output_rate)
            if rate not in RATES or out_rate not in RATES:
                await self.error("bad_rate", f"sample rates must be one of {RATES}")
                return
            self.input_rate = rate
            if out_rate != self.output_rate:
                self.output_rate = out_rate
                self._out = StreamResampler(self.runtime.config.audio.output_sample_rate, out_rate)
            if isinstance(msg.get("instructions"), str):
                session.set_instructions(msg["instructions"])
            if isinstance(msg.get("turn_detection"), bool):
                session.set_auto_turns(msg["turn_detection"])
            await self.ws.send(json.dumps({"type": "session.updated", "input_sample_rate": self.input_rate, "output_sample_rate": self.output_rate}))
        elif kind == "input.commit":
            session.commit()
        elif kind == "input.clear":
            session.clear_input()
        elif kind == "text":
            if not isinstance(msg.get("text"), str) or not msg["text"].strip():
                await self.error("bad_message", "text message needs a non-empty 'text'")
                return
            session.send_text(msg["text"])
        elif kind == "response.cancel":
            session.cancel_response()
        elif kind == "ping":
            await self.ws.send(json.dumps({"type": "pong"}))
        else:
            await self.error("unknown_type", f"unknown message type {kind!r}")

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
            assert self._out is not None
            await self.ws.send(float_to_pcm16(self._out.process(event.samples)))
            return
        if (isinstance(event, BargeIn) and event.phase == "confirmed") or (
            isinstance(event, AgentAudioDone) and event.interrupted
        ):
            await self.ws.send(json.dumps({"type": "output.flush", "t_ms": event.t_ms}))
        await self.ws.send(json.dumps(event.to_dict()))
