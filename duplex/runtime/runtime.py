"""The Runtime: a loaded model, an engine and a clock, behind every transport."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from duplex.config import Config, load_config
from duplex.events import Event
from duplex.models.base import DuplexModel
from duplex.runtime.clock import Clock, OfflineClock, RealtimeClock
from duplex.runtime.engine import Engine
from duplex.runtime.offline import AudioFrames, TailRule, Tick, drive
from duplex.runtime.session import Recorder, Session

log = logging.getLogger(__name__)


class Runtime:
    """Loads a model once and opens sessions on an engine.

    Args:
        config: the profile.
        model: a loaded model; None builds the one the profile names.
        clock: ``"realtime"`` (microphone, WebSocket) or ``"offline"`` (files, eval).
    """

    def __init__(
        self,
        config: Config,
        model: DuplexModel | None = None,
        clock: Literal["realtime", "offline"] = "realtime",
    ) -> None:
        self.config = config
        if model is None:
            from duplex.models.registry import build_model

            model = build_model(config)
        self.model = model
        jobs = config.engine.parallel_jobs
        self.clock: Clock = RealtimeClock(jobs) if clock == "realtime" else OfflineClock(jobs)
        self.engine = Engine(config, self.clock)
        self._ids = itertools.count(1)
        self.sessions: dict[str, Session] = {}

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        overrides: list[str] | None = None,
        clock: Literal["realtime", "offline"] = "realtime",
    ) -> Runtime:
        """Load a profile (path or name in ``configs/``) and its model."""
        return cls(load_config(path, overrides), clock=clock)

    @property
    def realtime(self) -> bool:
        return self.clock.realtime

    def open_session(
        self,
        session_id: str | None = None,
        *,
        recorder: Recorder | None = None,
        event_log: Callable[[Event], None] | None = None,
    ) -> Session:
        """Open a conversation. In real time it starts ticking at once.

        A slot on the engine is taken before any model work, so a refusal costs
        nothing; if building the session fails, the slot and what was built are
        given back. Blocking (model state is built here): servers call it off their
        event loop.

        Args:
            session_id: its id; None makes one up.
            recorder: given every tick's input and output frame from the first tick on
                (see ``duplex.audio.conversation_writer``); closed with the session.
            event_log: called with every event the session emits, from the first on
                (``duplex.runtime.recording``), on the emitting thread.

        Raises:
            EngineFull: every slot is taken (real time only).
        """
        sid = session_id or f"s{next(self._ids)}-{uuid.uuid4().hex[:6]}"
        if self.realtime:
            self.engine.reserve(sid)
        model_session = None
        session: Session | None = None
        try:
            model_session = self.model.open_session(sid, self.clock.session_lanes(self.clock.now_ms))
            session = Session(sid, self.config, model_session, event_log=event_log)
            session.recorder = recorder
            if self.realtime:
                self.engine.add(session)
        except BaseException:
            if self.realtime:
                self.engine.release(sid)
            if session is not None:
                session.close("refused")  # its model session and recorder with it
            else:
                if model_session is not None:
                    model_session.close()
                if recorder is not None:
                    recorder.close()
            raise
        self.sessions[sid] = session
        return session

    def close_session(self, session: Session, reason: str = "closed") -> None:
        """End a conversation and free its slot. Blocking (joins its worker thread)."""
        if self.realtime:
            self.engine.remove(session)
        session.close(reason)
        self.sessions.pop(session.id, None)

    def run_offline(
        self,
        session: Session,
        audio: np.ndarray,
        *,
        tail_s: float = 15.0,
        on_tick: Callable[[Tick], None] | None = None,
    ) -> int:
        """Feed ``audio`` through ``session`` frame by frame on the offline clock, then
        keep ticking on silence until the agent has been idle for 500 ms (at most
        ``tail_s``). ``on_tick`` gets each tick's result (``duplex.runtime.offline``);
        without it the events stay queued in the session. Returns the ticks run."""
        if self.realtime:
            raise RuntimeError("run_offline needs a runtime opened with clock='offline'")
        source = AudioFrames(audio, session.frame_samples)
        return drive(session, source, TailRule(idle_ms=500.0, max_ms=1000.0 * tail_s), on_tick)

    def close(self) -> None:
        for s in list(self.sessions.values()):
            self.close_session(s)
        self.engine.stop()
        self.model.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
