"""Speech onsets: the user's soft first words belong to their turn; background talk far
below their level starts none."""

from __future__ import annotations

import pytest
from listen_signals import FRAME_MS

from duplex.config import BargeInConfig, TurnConfig
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.turn_taker import TurnTaker


def _speech_onsets(levels_db: list[float | None], user_level_db: float | None) -> list[float]:
    """Onsets (ms) the turn-taker reports for frames of speech at ``levels_db``
    (None: silence), for a user whose level it has learned as ``user_level_db``."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS)
    tt.levels.level_db = user_level_db
    onsets = []
    for i, level in enumerate(levels_db):
        signals = ListenSignals(
            vad_prob=0.0 if level is None else 0.9, energy_db=-70.0 if level is None else level
        )
        _, events = tt.update(i * FRAME_MS, signals, AgentStatus())
        onsets += [e.t_ms for e in events if e.type == "user.speech_started"]
    return onsets


def test_a_soft_start_belongs_to_the_users_turn():
    # The user speaks at -20 dBFS; "what is" comes 14 dB softer before the stressed word.
    soft_then_loud = [None] * 5 + [-34.0] * 10 + [-20.0] * 20 + [None] * 5
    assert _speech_onsets(soft_then_loud, user_level_db=-20.0) == [5 * FRAME_MS]
    # Not further back than a soft word or two: a long quiet run is someone else's.
    long_soft = [None] * 5 + [-34.0] * 40 + [-20.0] * 10 + [None] * 5
    [onset] = _speech_onsets(long_soft, user_level_db=-20.0)
    assert onset == pytest.approx(45 * FRAME_MS - 500.0, abs=FRAME_MS)


def test_a_one_frame_dip_of_the_vad_inside_a_soft_start_keeps_its_words():
    # On raw input Silero dipped under its threshold for one frame inside a soft "what
    # is": the run restarted after the dip and the words before it were lost.
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS)
    tt.levels.level_db = -20.0
    frames = [(0.0, -70.0)] * 5 + [(0.9, -34.0)] * 6 + [(0.3, -40.0)] + [(0.9, -34.0)] * 3
    frames += [(0.9, -20.0)] * 20 + [(0.0, -70.0)] * 5
    onsets = []
    for i, (prob, level) in enumerate(frames):
        _, events = tt.update(i * FRAME_MS, ListenSignals(vad_prob=prob, energy_db=level), AgentStatus())
        onsets += [e.t_ms for e in events if e.type == "user.speech_started"]
    assert onsets == [5 * FRAME_MS]


def test_talk_far_below_the_users_level_never_starts_a_turn():
    background = [None] * 5 + [-36.0] * 60 + [None] * 5
    assert _speech_onsets(background, user_level_db=-20.0) == []
    assert _speech_onsets(background, user_level_db=None) == [5 * FRAME_MS]  # no level learned yet
