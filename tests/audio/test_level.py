"""Where sound is audible: the one rule both ends of the listener's latency are read with."""

from __future__ import annotations

import numpy as np
import pytest

from duplex.audio.level import AUDIBLE_DB, AudibleOnsets, first_audible_ms, speech_span_ms

RATE = 24000


def tone(ms: float, level_db: float = -20.0) -> np.ndarray:
    n = int(ms * RATE / 1000)
    amp = np.sqrt(2) * 10 ** (level_db / 20)  # RMS at level_db
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)).astype(np.float32)


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(ms * RATE / 1000), np.float32)


def test_the_voiced_span_is_the_first_and_last_audible_block() -> None:
    x = np.concatenate([silence(120), tone(300), silence(50), tone(100), silence(200)])
    assert speech_span_ms(x, RATE) == (120.0, 570.0)


def test_sound_below_the_threshold_is_not_audible() -> None:
    x = np.concatenate([silence(100), tone(200, AUDIBLE_DB - 3), tone(100, AUDIBLE_DB + 3)])
    assert first_audible_ms(x, RATE) == pytest.approx(300.0)


def test_the_first_audible_block_is_found_inside_a_window_only() -> None:
    x = np.concatenate([tone(100), silence(400), tone(100), silence(100)])
    assert first_audible_ms(x, RATE) == 0.0
    assert first_audible_ms(x, RATE, start_ms=100.0) == 500.0
    assert first_audible_ms(x, RATE, start_ms=100.0, end_ms=500.0) is None


def test_played_frames_give_the_onset_the_whole_track_gives() -> None:
    """Frames of 32 ms laid in stream time, with a gap (a pause) before the sound."""
    frame = int(0.032 * RATE)
    track = np.concatenate([silence(1000), tone(37, -60.0), tone(500), silence(200)])
    onsets = AudibleOnsets(RATE)
    found = []
    for i in range(len(track) // frame):
        if 10 <= i < 20:
            continue  # not played: silence in stream time
        t_ms = i * 32.0
        got = onsets.feed("r1", t_ms, track[i * frame : (i + 1) * frame])
        if got is not None:
            found.append(got)
    assert found == [first_audible_ms(track, RATE)] == [1030.0]
    assert onsets.onsets_ms == {"r1": 1030.0}
    assert onsets.feed("r1", 2000.0, tone(32)) is None  # found once


def test_each_response_has_an_onset_of_its_own() -> None:
    onsets = AudibleOnsets(RATE)
    onsets.feed("a", 0.0, np.concatenate([silence(20), tone(12)]))
    onsets.feed("b", 3200.0, tone(32))
    assert onsets.onsets_ms == {"a": 20.0, "b": 3200.0}


def test_a_frame_outside_any_response_has_no_onset() -> None:
    """The agent's "mhm" plays aside (no response id): it answers nothing, and the
    answer after it is heard at its own first sound."""
    onsets = AudibleOnsets(RATE)
    assert onsets.feed("", 0.0, tone(32)) is None
    onsets.feed("a", 640.0, np.concatenate([silence(10), tone(22)]))
    assert onsets.onsets_ms == {"a": 650.0}


def test_a_response_is_never_heard_before_its_first_frame() -> None:
    """Blocks are laid from the frame the answer starts in, not from stream time 0."""
    onsets = AudibleOnsets(RATE)
    assert onsets.feed("r", 896.0, tone(32)) == pytest.approx(896.0)
    track = np.concatenate([silence(896), tone(100)])
    assert first_audible_ms(track, RATE, start_ms=896.0) == pytest.approx(896.0)
    assert first_audible_ms(track, RATE) == pytest.approx(890.0)  # a block straddling its start
