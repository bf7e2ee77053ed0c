"""Backchannels: the user's short acknowledgements, and the agent's own "mhm"."""

from __future__ import annotations

from duplex.config import BargeInConfig, TurnConfig
from duplex.policy.backchannel import AgentBackchannels, is_backchannel


def test_held_hums_as_the_recognizer_writes_them_are_backchannels():
    vocab = BargeInConfig().backchannel_words
    for text in ["mm-m-m-m-m-", "Mmmm.", "uh-huh", "Mhm, yeah.", "i c", "K.", "I see", "Okay, I see."]:
        assert is_backchannel(text, vocab), text
    # Said twice, and "I see" spelled out with hyphens (Whisper wrote "i-c, i-c," in a CI
    # run, and the agent stopped).
    for text in ["I see, I see.", "Yeah, yeah.", "Right, right.", "Got it, got it.", "i-c, i-c,", "i-c"]:
        assert is_backchannel(text, vocab), text
    for text in ["yeah wait a second", "i-c, i-c, stop", "okay okay okay okay okay"]:
        assert not is_backchannel(text, vocab), text
    # A laugh, and a short "uh-huh" as Whisper sometimes writes it ("B", "ha"), are not words.
    for text in ["Ha!", "haha", "Aha.", "hehe", "B"]:
        assert is_backchannel(text, vocab), text
    for text in ["wait", "stop it", "mm wait a second", "hey", "no", "hang on", "B, stop"]:
        assert not is_backchannel(text, vocab), text


def test_the_agent_acknowledges_a_long_turn_once_at_a_pause_that_does_not_sound_final():
    cfg = TurnConfig(agent_backchannels=True)
    bc = AgentBackchannels(cfg)
    pause = float(cfg.backchannel_pause_ms)
    long_turn = cfg.backchannel_after_ms + 500.0
    assert not bc.due(5000.0, cfg.backchannel_after_ms - 100.0, pause, None)  # too early in the turn
    assert not bc.due(5000.0, long_turn, pause - 32.0, None)  # the pause is too short yet
    assert not bc.due(5000.0, long_turn, pause, 0.8)  # it sounds finished: a turn, not a "mhm"
    assert bc.due(5000.0, long_turn, pause, 0.2)
    assert not bc.due(5000.0 + 32.0, long_turn, pause + 32.0, 0.2)  # one a pause
    assert not bc.due(5000.0 + cfg.backchannel_cooldown_ms - 32.0, long_turn, pause, None)  # cool-down
    assert bc.due(5000.0 + cfg.backchannel_cooldown_ms, long_turn, pause, 0.2)
    # Not before the pause's words are in (it may be the turn's end, answered at once);
    # once they are, a little later in the same pause.
    bc = AgentBackchannels(cfg)
    assert not bc.due(5000.0, long_turn, pause, None)
    assert bc.due(5096.0, long_turn, pause + 96.0, 0.2)
    assert not AgentBackchannels(cfg).due(5000.0, long_turn, pause + 320.0, 0.2)  # too late in the pause
    assert not AgentBackchannels(TurnConfig()).due(5000.0, long_turn, pause, None)  # off by default


def test_a_story_sentence_that_sounds_finished_still_gets_a_mhm_while_the_agent_waits():
    # A finished sentence the context says may go on (a statement in a long turn): the
    # agent holds its answer, so "mhm" is what a listener says there.
    cfg = TurnConfig(agent_backchannels=True)
    pause = float(cfg.backchannel_pause_ms)
    long_turn = cfg.backchannel_after_ms + 500.0
    assert not AgentBackchannels(cfg).due(5000.0, long_turn, pause, 0.9, may_go_on=False)
    assert AgentBackchannels(cfg).due(5000.0, long_turn, pause, 0.9, may_go_on=True)


def _turn_taken_ms(echo_of_mhm: bool) -> float | None:
    """A 5 s statement, held (may go on); 240 ms into the pause the agent's "mhm" plays
    for 600 ms and its echo (which the echo guard explains) voices the microphone."""
    from duplex.models.actions import Transcribe
    from duplex.models.base import AgentStatus, ListenSignals
    from duplex.policy.turn_taker import TurnTaker

    frame = 32.0
    tt = TurnTaker(TurnConfig(hold_pause_ms=1400, agent_backchannels=True), BargeInConfig(), frame)
    asked = None
    for i in range(260):
        t = i * frame
        user = 3 <= i < 160
        mhm = echo_of_mhm and 168 <= i < 187
        back = asked is not None and i == asked[1] + 3
        signals = ListenSignals(
            vad_prob=0.95 if user or mhm else 0.0,
            energy_db=-22.0 if user else (-40.0 if mhm else -90.0),
            echo_explained=mhm,
            final_text="I was at the market this morning." if back else None,
            final_end_ms=asked[0].end_ms if back and asked else 0.0,
            eot_score=0.9 if back else None,
        )
        actions, events = tt.update(t, signals, AgentStatus(aside=mhm))
        asked = next(((a, i) for a in actions if isinstance(a, Transcribe)), asked)
        if any(e.type == "turn.taken" for e in events):
            return t - 160 * frame
    return None


def test_the_echo_of_the_agents_own_mhm_is_not_the_user_going_on():
    # The echo of the agent's "mhm" once moved the user's last voice: the answer came
    # 0.8-1 s later, or the echo started a stretch of "speech" of its own.
    quiet = _turn_taken_ms(echo_of_mhm=False)
    assert quiet is not None
    assert _turn_taken_ms(echo_of_mhm=True) == quiet
