"""The cascade's responding: the draft's steps, its playout, and how its end is reported."""

from __future__ import annotations

import numpy as np

from duplex.models.actions import TakeTurn
from duplex.models.cascade import CascadeModel, CascadeStages
from duplex.models.cascade.results import Clause, Pending
from duplex.models.scripted import EnergyVad, ScriptedAsr, ScriptedLlm, ToneTts, scripted_model
from duplex.runtime.lanes import InlineLane


def _inline(name: str, background: bool = False) -> InlineLane:
    return InlineLane(name)


def test_a_draft_computes_one_token_a_step_so_a_cancel_stops_it_within_a_token(scripted_config):
    pulled: list[str] = []

    class CountingLlm(ScriptedLlm):
        def stream(self, messages, *, max_tokens):
            for piece in super().stream(messages, max_tokens=max_tokens):
                pulled.append(piece)
                yield piece

    llm = CountingLlm(
        "The capital of France is Paris, a city of art and light and long walks by the river."
    )
    stages = CascadeStages(
        vad=lambda: EnergyVad(),
        asr=lambda: ScriptedAsr(),
        llm=lambda: llm,
        tts=lambda: ToneTts(16000),
    )
    session = CascadeModel.from_config(scripted_config, stages).open_session("t", _inline)
    session.act([TakeTurn("Where is Paris?", 0.0)], 0.0)
    playing = session.responding.playback.playing
    assert playing is not None and playing.job is not None
    job = playing.job  # the answer's lane job, stepped here by hand
    kinds: list[type] = []
    while not kinds or kinds[-1] is not Clause:
        produced, item = job.step()
        assert produced
        kinds.append(type(item))
    # "The capital of" may not end a clause; "France" does once the next word begins.
    assert kinds == [Pending] * 4 + [Clause]
    assert pulled == ["The", " capital", " of", " France", " is"]
    session.close()


def test_the_end_of_a_response_travels_in_the_ticks_result_and_status_is_a_pure_read(
    scripted_config,
):
    session = scripted_model(scripted_config, reply="Sure thing.").open_session("t", _inline)
    frame_ms = scripted_config.audio.frame_ms
    quiet = np.zeros(scripted_config.frame_samples, np.float32)
    session.act([TakeTurn("Hello?", 0.0)], 0.0)
    ends: list[float] = []
    done_at: list[float] = []
    t = 0.0
    for _ in range(200):
        session.listen(quiet, t)
        session.act([], t)
        session.think(t)
        spoken = session.speak(t)
        # Reading the status, as often as a caller likes, changes nothing.
        first = session.status()
        assert all(session.status() == first for _ in range(3))
        assert not first.finished  # the session, not the model, hands it to the turn-taker
        if spoken.finished:
            ends.append(t)
        done_at += [t for e in spoken.events if e.type == "agent.audio.done"]
        t += frame_ms
        if ends and t > ends[0] + 10 * frame_ms:
            break
    # Reported once, in the tick the response ended in, and never again.
    assert ends and ends == done_at[:1] and len(done_at) == 1
    assert not session.status().responding
    session.close()


def test_an_answer_starting_drops_the_rest_of_a_mhm_and_its_echo_is_flagged(scripted_config):
    from duplex.models.actions import Backchannel

    session = scripted_model(scripted_config, reply="Sure thing.").open_session("t", _inline)
    frame_ms = scripted_config.audio.frame_ms
    quiet = np.zeros(scripted_config.frame_samples, np.float32)
    session.act([Backchannel()], 0.0)
    t, asides, answered, after_answer = 0.0, [], False, []
    for i in range(400):
        session.listen(quiet, t)
        if i == 2:
            session.act([TakeTurn("Hello?", t)], t)  # the turn is taken while "mhm" plays
        else:
            session.act([], t)
        session.think(t)
        asides.append(session.status().aside)
        spoken = session.speak(t)
        if i < 2:  # the "mhm" alone: its frames are events too, so a transport plays them
            (frame,) = [e for e in spoken.events if e.type == "agent.audio"]
            assert frame.aside and frame.response_id == "" and np.array_equal(frame.samples, spoken.samples)
        answered = answered or any(e.type == "agent.audio.started" for e in spoken.events)
        if spoken.finished:
            after_answer = [session.speak(t + k * frame_ms).samples for k in range(1, 20)]
            break
        t += frame_ms
    assert asides[1]  # the "mhm" plays: what the microphone hears may be its echo
    assert answered and after_answer
    # Nothing of the "mhm" is left to play after the answer (it once came after it).
    assert all(not np.any(s) for s in after_answer)
    session.close()
