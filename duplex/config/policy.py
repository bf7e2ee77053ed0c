"""The policy layer's sections: ``[turn]``, ``[barge_in]`` and ``[echo]`` (frozen: the
turn-taker and the echo guard keep them for the session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class TurnConfig:
    """Turn-taking thresholds (the policy layer). Times in ms of stream time."""

    vad_threshold: float = 0.5
    vad_release: float = 0.35
    speech_onset_ms: int = 96
    end_silence_ms: int = 600
    min_end_silence_ms: int = 250
    max_end_silence_ms: int = 2500
    # The pause needed falls from max to min as the end-of-turn score crosses this
    # midpoint, over about +-2 widths (a logistic curve): fragments ("I need some
    # ideas for") score below ~0.3, finished questions above ~0.5.
    eot_midpoint: float = 0.48
    eot_width: float = 0.08
    preempt_silence_ms: int = 160
    # Where the user may go on (a statement rather than a question or request, a story
    # under way, a number read in groups) a finished sentence still waits this long:
    # people pause up to ~1.2 s between sentences of a story or groups of digits. 0: off
    # (the default profile sets 1400; the scripted and codec-LM profiles keep it off).
    hold_pause_ms: int = 0
    min_turn_ms: int = 200
    background_margin_db: float = 12.0  # speech this far below the user's level is background (0: off)
    agent_backchannels: bool = False  # the agent says "mhm" in long user turns
    backchannel_after_ms: int = 4000  # user speech before the first agent backchannel
    backchannel_pause_ms: int = 240  # a pause this long (and not a turn end) invites one
    backchannel_window_ms: int = 200  # ... for this long: once the pause's words are in, not before
    backchannel_cooldown_ms: int = 6000
    backchannel_text: str = "Mhm."


@dataclass(frozen=True)
class BargeInConfig:
    """When user speech during agent output pauses, stops, or is let pass."""

    enabled: bool = True
    pause_onset_ms: int = 64
    confirm_speech_ms: int = 1000
    confirm_words: int = 3
    resume_after_ms: int = 400
    decide_gap_ms: int = 200  # silence that ends a burst before it is judged
    min_backchannel_ms: int = 120  # shorter bursts are noise, whatever the ASR says
    # A burst's transcript confirms an interruption only when the recognizer is this
    # sure of it (average token log-probability; -1.0 is Whisper's own "decode failed"
    # line): a hum it hears as "Amen" is not an interruption.
    min_confidence: float = -1.0
    backchannel_words: list[str] = field(
        default_factory=lambda: [
            "mhm", "mm", "hmm", "uh-huh", "uh huh", "yeah", "yes", "yep", "right",
            "okay", "ok", "sure", "i see", "got it", "cool", "nice", "wow", "oh", "ah",
        ]
    )


@dataclass(frozen=True)
class EchoConfig:
    """Echo cancellation of the agent's own voice (the policy layer)."""

    engine: Literal["webrtc", "speex", "none"] = "speex"
    guard: bool = True  # ignore input energy explained by the agent's own output
    guard_margin_db: float = 10.0
    double_talk_corr: float = 0.7  # envelope correlation with the played audio below which the user talks over it; 0: off
    # The microphone passes untouched once the agent has been silent this long (past the
    # echo tail and the gaps inside an answer), from a quiet frame on: the canceller's
    # 16 ms delay makes every end of speech later. 0: never (the default profile: 1500;
    # models/aec.md).
    idle_bypass_ms: float = 0.0

