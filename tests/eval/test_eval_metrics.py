"""Every eval metric on hand-built cases whose answers are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duplex.eval.metrics import (
    PlayedInsert,
    Trial,
    WordChunk,
    agent_chunks,
    aggregate,
    fdb_takes_turn,
    score_trial,
    stop_time_ms,
    voiced_frames,
)
from duplex.eval.scenarios import Expectation, Insert, Scenario, Segment

RATE = 16000
FRAME_MS = 32.0
N = 512


def track(duration_ms: float, voiced: list[tuple[float, float]]) -> np.ndarray:
    """An output track (16 kHz) with a tone in each [start, end) ms span."""
    x = np.zeros(int(duration_ms * RATE / 1000), np.float32)
    for a, b in voiced:
        i, j = int(a * RATE / 1000), int(b * RATE / 1000)
        x[i:j] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(j - i) / RATE)
    return x


def response(
    rid: str, start: float, done: float, text: str, interrupted: bool = False, latency: float = 0.0
) -> list[dict]:
    return [
        {
            "type": "agent.audio.started",
            "t_ms": start,
            "response_id": rid,
            "latency_ms": latency,
            "breakdown_ms": {"llm": 100.0},
        },
        {
            "type": "agent.audio.done",
            "t_ms": done,
            "response_id": rid,
            "interrupted": interrupted,
            "audio_end_ms": done - start,
            "text": text,
        },
    ]


def trial(
    scenario: Scenario,
    events: list[dict],
    agent: np.ndarray,
    inserts: list[PlayedInsert] | None = None,
) -> Trial:
    return Trial(
        scenario,
        events,
        agent,
        RATE,
        FRAME_MS,
        len(agent) * 1000 / RATE,
        len(agent) * 1000 / RATE,
        inserts or [],
    )


def scenario(
    category: str,
    *expect: Expectation,
    inserts: tuple[Insert, ...] = (),
    segments: tuple[Segment, ...] = (),
) -> Scenario:
    return Scenario("t", category, Path("t.wav"), segments, tuple(expect), inserts)


# ---------------------------------------------------------------- Full-Duplex-Bench's rule
def test_no_words_is_no_turn():
    assert fdb_takes_turn([]) is False


def test_three_words_under_a_second_is_not_a_turn():
    words = [WordChunk(w, 0.1 * i, 0.1 * i + 0.1) for i, w in enumerate(["yes", "I", "see"])]
    assert fdb_takes_turn(words) is False


def test_four_words_under_a_second_is_a_turn():
    words = [WordChunk(w, 0.1 * i, 0.1 * i + 0.1) for i, w in enumerate(["oh", "yes", "I", "see"])]
    assert fdb_takes_turn(words) is True


def test_one_word_lasting_a_second_is_a_turn():
    assert fdb_takes_turn([WordChunk("sooo", 2.0, 3.0)]) is True


def test_fdb_json_chunks_with_unknown_end_use_the_start():
    chunks = [{"text": "a", "timestamp": [0.0, 0.2]}, {"text": "b", "timestamp": [0.9, None]}]
    assert fdb_takes_turn(chunks) is False  # 0.9 s, 2 words


# ---------------------------------------------------------------- audio measures
def test_voiced_frames_follow_the_tone():
    v = voiced_frames(track(640, [(320, 640)]), RATE, FRAME_MS)
    assert v.tolist() == [False] * 10 + [True] * 10


def test_stop_time_is_the_start_of_the_first_long_silence_after_onset():
    # speech to 2000 ms with a 96 ms gap at 1200 ms; silent after 2080 ms
    v = voiced_frames(track(4000, [(0, 1216), (1312, 2080)]), RATE, FRAME_MS)
    assert stop_time_ms(v, FRAME_MS, onset_ms=1000.0, min_silence_ms=500) == 2080.0


def test_agent_words_lie_on_voiced_frames():
    events = response("r1", 1024.0, 2048.0, "one two three four")
    v = voiced_frames(track(3000, [(1024, 2048)]), RATE, FRAME_MS)
    chunks = agent_chunks(events, v, FRAME_MS, 3000.0)
    assert [c.text for c in chunks] == ["one", "two", "three", "four"]
    assert chunks[0].start_s == pytest.approx(1.024)
    assert chunks[-1].end_s == pytest.approx(2.048)


# ---------------------------------------------------------------- expectations
def test_smooth_turn_latency_is_user_end_to_first_agent_audio():
    sc = scenario("smooth_turn", Expectation("take_turn", end_ms=1000.0))
    events = response("r1", 1600.0, 3600.0, "Paris is the capital of France.", latency=600.0)
    r = score_trial(trial(sc, events, track(4000, [(1600, 3600)])))
    o = r["expectations"][0]
    assert o["status"] == "pass" and o["took_turn"] is True
    assert o["response_latency_ms"] == pytest.approx(600.0)
    assert o["response_latency_event_ms"] == pytest.approx(600.0)


def test_audible_latency_is_endpoint_lag_plus_event_latency_plus_lead_in():
    """The user stopped at 1000 ms, the VAD at 1090 ms; the first chunk went out at
    1600 ms and its sound began 60 ms into it."""
    sc = scenario("smooth_turn", Expectation("take_turn", end_ms=1000.0))
    events = response("r1", 1600.0, 3600.0, "Paris is the capital of France.", latency=510.0)
    r = score_trial(trial(sc, events, track(4000, [(1660, 3600)])))
    o = r["expectations"][0]
    assert o["response_latency_ms"] == pytest.approx(660.0)  # what a listener waits
    assert o["endpoint_lag_ms"] == pytest.approx(90.0)
    assert o["response_latency_event_ms"] == pytest.approx(510.0)
    assert o["lead_in_ms"] == pytest.approx(60.0)
    assert o["endpoint_lag_ms"] + o["response_latency_event_ms"] + o["lead_in_ms"] == pytest.approx(
        o["response_latency_ms"]
    )
    s = aggregate([r])
    assert s["endpoint_lag_ms"]["p50"] == pytest.approx(90.0)
    assert s["lead_in_ms"]["p50"] == pytest.approx(60.0)


def test_a_quiet_first_sound_counts_from_where_it_is_audible():
    """A tone at -50 dBFS (below the -40 dBFS rule) before the speech is not heard."""
    sc = scenario("smooth_turn", Expectation("take_turn", end_ms=1000.0))
    events = response("r1", 1600.0, 3600.0, "Paris is the capital of France.", latency=500.0)
    agent = track(4000, [(1700, 3600)])
    i, j = int(1.6 * RATE), int(1.7 * RATE)
    agent[i:j] = 10 ** (-50 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 220 * np.arange(j - i) / RATE)
    o = score_trial(trial(sc, events, agent))["expectations"][0]
    assert o["response_latency_ms"] == pytest.approx(700.0)
    assert o["lead_in_ms"] == pytest.approx(100.0)


def test_a_short_mumble_is_not_taking_the_turn():
    sc = scenario("smooth_turn", Expectation("take_turn", end_ms=1000.0))
    events = response("r1", 1600.0, 1920.0, "um yes")
    r = score_trial(trial(sc, events, track(4000, [(1600, 1920)])))
    assert r["expectations"][0]["status"] == "fail"
    assert r["expectations"][0]["took_turn"] is False


def test_speaking_in_a_pause_is_a_take_over():
    sc = scenario(
        "pause", Expectation("no_take", onset_ms=1000.0, end_ms=2500.0, window_ms=(1000.0, 3500.0))
    )
    events = response("r1", 2016.0, 3200.0, "I think you mean the moon")
    r = score_trial(trial(sc, events, track(4000, [(2016, 3200)])))
    assert r["expectations"][0]["took_turn"] is True and r["status"] == "fail"


def test_silence_in_a_pause_is_no_take_over():
    sc = scenario(
        "pause", Expectation("no_take", onset_ms=1000.0, end_ms=2500.0, window_ms=(1000.0, 3500.0))
    )
    r = score_trial(trial(sc, [], track(4000, [])))
    assert r["expectations"][0]["took_turn"] is False and r["status"] == "pass"


def _interruption(stop_at: float, events_extra: list[dict], reply: tuple[float, float, str] | None):
    sc = scenario(
        "interruption",
        Expectation("yield", insert=0),
        inserts=(Insert("i.wav", "agent_audio_start", 1, 1000.0, "wait stop", "interruption"),),
    )
    voiced = [(1000.0, stop_at)]
    events = (
        response("r1", 1000.0, stop_at + 400.0, "Paris is lovely in", interrupted=True)
        + events_extra
    )
    if reply:
        voiced.append(reply[:2])
        events += response("r2", reply[0], reply[1], reply[2])
    played = [PlayedInsert(0, 1984.0, 2016.0, 3008.0)]
    return score_trial(trial(sc, events, track(7000, voiced), played))


def test_stop_latency_from_audio_and_from_events():
    r = _interruption(
        2112.0,
        [{"type": "barge_in", "t_ms": 2080.0, "phase": "pause"}],
        (3648.0, 5600.0, "Sure, what would you like"),
    )
    o = r["expectations"][0]
    assert o["stopped"] is True
    assert o["stop_latency_ms"] == pytest.approx(96.0)  # 2112 - 2016
    assert o["stop_latency_event_ms"] == pytest.approx(64.0)  # 2080 - 2016
    assert o["took_turn"] is True and o["response_latency_ms"] == pytest.approx(
        640.0
    )  # 3648 - 3008
    assert r["status"] == "pass"


def test_talking_over_an_interruption_is_a_failure():
    r = _interruption(6000.0, [], None)
    o = r["expectations"][0]
    assert o["stopped"] is False and o["status"] == "fail"


def test_an_interruption_when_the_agent_is_silent_is_skipped():
    sc = scenario("interruption", Expectation("yield", insert=0), inserts=(Insert("i.wav"),))
    r = score_trial(trial(sc, [], track(4000, []), [PlayedInsert(0, 1000.0, 1000.0, 2000.0)]))
    assert r["expectations"][0]["status"] == "skipped"


def test_an_insert_that_never_played_is_skipped():
    sc = scenario(
        "backchannel",
        Expectation("ignore", insert=0),
        inserts=(Insert("b.wav", kind="backchannel"),),
    )
    r = score_trial(trial(sc, [], track(4000, [])))
    assert r["expectations"][0]["status"] == "skipped"


def _backchannel(extra: list[dict], cut: bool) -> dict:
    sc = scenario(
        "backchannel",
        Expectation("ignore", insert=0),
        inserts=(Insert("b.wav", kind="backchannel"),),
    )
    done = 2200.0 if cut else 5000.0
    events = response("r1", 1000.0, done, "the capital of France is Paris", interrupted=cut) + extra
    return score_trial(
        trial(sc, events, track(6000, [(1000, done)]), [PlayedInsert(0, 1980.0, 2000.0, 2300.0)])
    )


def test_backchannel_that_cuts_the_agent_is_a_false_interruption():
    r = _backchannel([{"type": "barge_in", "t_ms": 2200.0, "phase": "confirmed"}], cut=True)
    o = r["expectations"][0]
    assert o["false_interruption"] is True and o["took_turn"] is True and o["status"] == "fail"


def test_backchannel_that_only_pauses_the_agent_passes_but_counts_a_false_pause():
    r = _backchannel(
        [
            {"type": "barge_in", "t_ms": 2064.0, "phase": "pause"},
            {"type": "barge_in", "t_ms": 2500.0, "phase": "false_alarm"},
        ],
        cut=False,
    )
    o = r["expectations"][0]
    assert o["status"] == "pass" and o["false_interruption"] is False and o["false_pause"] is True


def test_echo_judges_the_whole_of_the_agents_speech():
    sc = scenario(
        "echo",
        Expectation("take_turn", end_ms=900.0, category="smooth_turn"),
        Expectation("ignore"),
    )
    events = [{"type": "turn.taken", "t_ms": 950.0}] + response(
        "r1", 1000.0, 4000.0, "a long and quiet answer about the sea"
    )
    r = score_trial(trial(sc, events, track(5000, [(1000, 4000)])))
    assert [o["status"] for o in r["expectations"]] == ["pass", "pass"]
    events += [{"type": "turn.taken", "t_ms": 4500.0}]  # the agent answered its own echo
    r = score_trial(trial(sc, events, track(5000, [(1000, 4000)])))
    assert r["expectations"][1]["status"] == "fail"


# ---------------------------------------------------------------- aggregate
def test_aggregate_rates_and_percentiles():
    def res(cat: str, exps: list[dict], status: str = "pass") -> dict:
        return {
            "id": cat,
            "category": cat,
            "status": status,
            "duration_ms": 60000.0,
            "expectations": exps,
            "stalls": 1,
            "stage_ms": {},
        }

    base = {
        "status": "pass",
        "reason": "",
        "response_latency_ms": None,
        "response_latency_event_ms": None,
        "stop_latency_ms": None,
        "stop_latency_event_ms": None,
        "stopped": None,
        "false_interruption": None,
        "false_pause": None,
    }
    results = [
        res(
            "smooth_turn",
            [
                {
                    **base,
                    "behaviour": "take_turn",
                    "category": "smooth_turn",
                    "took_turn": True,
                    "response_latency_ms": 500.0,
                }
            ],
        ),
        res(
            "smooth_turn",
            [
                {
                    **base,
                    "behaviour": "take_turn",
                    "category": "smooth_turn",
                    "took_turn": True,
                    "response_latency_ms": 700.0,
                }
            ],
        ),
        res(
            "pause",
            [{**base, "behaviour": "no_take", "category": "pause", "took_turn": True}],
            "fail",
        ),
        res("pause", [{**base, "behaviour": "no_take", "category": "pause", "took_turn": False}]),
        res("pause", [{**base, "behaviour": "no_take", "category": "pause", "took_turn": False}]),
        res("pause", [{**base, "behaviour": "no_take", "category": "pause", "took_turn": False}]),
        res(
            "interruption",
            [
                {
                    **base,
                    "behaviour": "yield",
                    "category": "interruption",
                    "took_turn": True,
                    "stopped": True,
                    "stop_latency_ms": 100.0,
                }
            ],
        ),
        res(
            "echo",
            [
                {
                    **base,
                    "behaviour": "ignore",
                    "category": "echo",
                    "took_turn": True,
                    "false_interruption": True,
                }
            ],
            "fail",
        ),
        res(
            "echo",
            [
                {
                    **base,
                    "behaviour": "ignore",
                    "category": "echo",
                    "took_turn": False,
                    "false_interruption": False,
                }
            ],
        ),
    ]
    s = aggregate(results, {"tick": [16.0, 32.0], "listen": [8.0, 8.0]}, 32.0)
    assert s["tor"]["smooth_turn"] == {"rate": 1.0, "n": 2}
    assert s["tor"]["pause"] == {"rate": 0.25, "n": 4}
    assert s["tor"]["interruption"] == {"rate": 1.0, "n": 1}
    assert s["response_latency_ms"]["p50"] == pytest.approx(600.0)
    assert s["stop_latency_ms"]["p50"] == pytest.approx(100.0)
    assert s["false_interruption_rate"]["echo"] == {"rate": 0.5, "n": 2}
    assert s["rtf"]["tick"]["p50"] == pytest.approx(0.75)
    assert s["rtf"]["stage"]["listen"]["p50"] == pytest.approx(0.25)
    assert s["stalls"] == 9 and s["stalls_per_min"] == pytest.approx(1.0)
    assert s["passed"] == 7 and s["failed"] == 2


def test_a_turn_taken_in_a_pause_is_recorded_even_when_no_audio_followed():
    sc = scenario(
        "pause", Expectation("no_take", onset_ms=1000.0, end_ms=2500.0, window_ms=(1000.0, 3500.0))
    )
    events = [{"type": "turn.taken", "t_ms": 1800.0}]
    r = score_trial(trial(sc, events, track(4000, [])))
    o = r["expectations"][0]
    assert o["status"] == "pass" and o["took_turn"] is False and o["turn_event"] is True
    s = aggregate([r])
    assert s["tor"]["pause"] == {"rate": 0.0, "n": 1}
    assert s["pause_turn_event_rate"] == {"rate": 1.0, "n": 1}
