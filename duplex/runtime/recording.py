"""A server-side session recording, crash-safe: both audio channels and the events,
appended as they happen and pushed to disk (fsync) at every turn end.

Files in ``<record_dir>/<session id>/``: ``conversation.wav`` (stereo, user left,
agent right, in stream time to the sample: ``duplex.audio.conversation_writer``)
and ``events.jsonl``. The WAV header is brought up to date at every sync, so after a
crash, even ``kill -9``, the file reads as valid WAV holding everything up to the
last turn end, and every event up to it is in the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from duplex.audio.conversation_writer import ConversationWriter
from duplex.events import AUDIO_EVENT_TYPES, AgentAudioDone, Event, TurnTaken

log = logging.getLogger(__name__)


class SessionRecording:
    """Records one session: its recorder (``write_tick``) and event log (``log_event``).

    Pass it to ``Runtime.open_session(recorder=rec, event_log=rec.log_event)``.
    A turn end (turn taken, answer done) is synced to disk ``SYNC_AFTER_TICKS``
    ticks later: the writer holds back what the user channel's resampler has not
    yet returned (tens of ms), and the turn's last frames must be in the file.
    """

    SYNC_AFTER_TICKS = 4

    def __init__(self, folder: Path, input_rate: int, output_rate: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.audio = ConversationWriter(folder / "conversation.wav", input_rate=input_rate, output_rate=output_rate)
        self._events = (folder / "events.jsonl").open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._sync_in: int | None = None  # ticks until a requested sync
        self.closed = False

    def log_event(self, event: Event) -> None:
        """Append one event (any thread); a turn end asks for a sync."""
        if event.type in AUDIO_EVENT_TYPES:
            return
        with self._lock:
            if self.closed:
                return
            self._events.write(json.dumps(event.to_dict()) + "\n")
            if isinstance(event, AgentAudioDone | TurnTaken) and self._sync_in is None:
                self._sync_in = self.SYNC_AFTER_TICKS

    def write_tick(self, user: np.ndarray, agent: np.ndarray) -> None:
        """One tick's frames (the session's thread); then the sync a turn end asked for."""
        self.audio.write_tick(user, agent)
        if self._sync_in is not None:
            self._sync_in -= 1
            if self._sync_in <= 0:
                self._sync_in = None
                self.sync()

    def sync(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._events.flush()
            os.fsync(self._events.fileno())
        self.audio.sync()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._events.flush()
            os.fsync(self._events.fileno())
            self._events.close()
        self.audio.close()
