"""Backchannels: the user's short acknowledgements, and the agent's own "mhm"."""

from __future__ import annotations

from duplex.config import BargeInConfig, TurnConfig
from duplex.policy.backchannel import AgentBackchannels, is_backchannel


def test_held_hums_as_the_recognizer_writes_them_are_backchannels():
    vocab = BargeInConfig().backchannel_words
    for text in ["mm-m-m-m-m-", "Mmmm.", "uh-huh", "Mhm, yeah.", "i c", "K.", "I see", "Okay, I see."]:
        assert is_backchannel(text, vocab), text
    # A laugh, and a short "uh-huh" as Whisper sometimes writes it ("B", "ha"), are not words.
    for text in ["Ha!", "haha", "Aha.", "hehe", "B"]:
        assert is_backchannel(text, vocab), text
    for text in ["wait", "stop it", "mm wait a second", "hey", "no", "hang on", "B, stop"]:
        assert not is_backchannel(text, vocab), text


def test_the_agent_acknowledges_a_long_turn_once_at_a_pause_that_does_not_sound_final():
    cfg = TurnConfig(agent_backchannels=True)
    bc = AgentBackchannels(cfg, 32.0)
    pause = float(cfg.backchannel_pause_ms)
    long_turn = cfg.backchannel_after_ms + 500.0
    assert not bc.due(5000.0, cfg.backchannel_after_ms - 100.0, pause, None)  # too early in the turn
    assert not bc.due(5000.0, long_turn, pause - 32.0, None)  # the pause is too short yet
    assert not bc.due(5000.0, long_turn, pause, 0.8)  # it sounds finished: a turn, not a "mhm"
    assert bc.due(5000.0, long_turn, pause, 0.2)
    assert not bc.due(5000.0 + 32.0, long_turn, pause + 32.0, 0.2)  # one a pause
    assert not bc.due(5000.0 + cfg.backchannel_cooldown_ms - 32.0, long_turn, pause, None)  # cool-down
    assert bc.due(5000.0 + cfg.backchannel_cooldown_ms, long_turn, pause, None)
    assert not AgentBackchannels(TurnConfig(), 32.0).due(5000.0, long_turn, pause, None)  # off by default


def test_a_story_sentence_that_sounds_finished_still_gets_a_mhm_while_the_agent_waits():
    # A finished sentence the context says may go on (a statement in a long turn): the
    # agent holds its answer, so "mhm" is what a listener says there.
    cfg = TurnConfig(agent_backchannels=True)
    pause = float(cfg.backchannel_pause_ms)
    long_turn = cfg.backchannel_after_ms + 500.0
    assert not AgentBackchannels(cfg, 32.0).due(5000.0, long_turn, pause, 0.9, may_go_on=False)
    assert AgentBackchannels(cfg, 32.0).due(5000.0, long_turn, pause, 0.9, may_go_on=True)
