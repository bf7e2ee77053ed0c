"""The run summary's figures from a run's events."""

from __future__ import annotations

from duplex.report.summary import summarize


def test_a_stretch_read_again_keeps_its_last_reading_and_its_place():
    events = [
        {"type": "user.transcript.final", "t_ms": 1700.0, "text": "Do listen to it.", "start_ms": 600.0, "end_ms": 1600.0},
        {"type": "user.transcript.final", "t_ms": 1900.0, "text": "", "start_ms": 600.0, "end_ms": 1800.0},
        # A second look read the same span otherwise.
        {"type": "user.transcript.final", "t_ms": 1950.0, "text": "Did you listen to it?", "start_ms": 600.0, "end_ms": 1600.0},
        {"type": "user.transcript.final", "t_ms": 4500.0, "text": "The conference is now unlocked.", "start_ms": 2600.0, "end_ms": 4400.0},
    ]
    s = summarize(events, {}, 5.0)
    assert s["user_text"] == ["Did you listen to it?", "The conference is now unlocked."]
