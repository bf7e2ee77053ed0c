"""The standard scenario set (``duplex eval make-scenarios DIR``), built reproducibly.

Speech comes from the espeak-ng command in several voices and speeds, room
effects from sox (``duplex.eval.synthesis``); what is said is in
``duplex.eval.phrases``. Every random choice draws from a generator seeded with
``(seed, scenario number)``, so a set is a pure function of the seed.

The set covers smooth turn-taking, mid-utterance pauses (1–2 s), user
backchannels while the agent talks, user interruptions, background noise and
background speech with no turn (while listening and while talking), the agent's
own echo leaking into the microphone, and multi-turn exchanges. Scenarios
tagged ``ci`` form the CI subset (``--subset ci``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from duplex.eval.phrases import (
    BACKCHANNELS,
    BACKGROUND_TALK,
    INTERRUPTIONS,
    PAUSED,
    QUESTIONS,
    SPEEDS,
    VOICES,
)
from duplex.eval.scenarios import (
    EchoPath,
    Expectation,
    Insert,
    Reverb,
    Scenario,
)
from duplex.eval.synthesis import SR, level, noise, require_sox, reverb, speak
from duplex.eval.synthesis import GenerateError as GenerateError  # still importable from here
from duplex.eval.synthesis import sox as sox
from duplex.eval.track import Built, ScenarioWriter, Track

GENERATOR_VERSION = 1


# ---------------------------------------------------------------- scenario builders
Rng = np.random.Generator


def _voice(rng: Rng) -> tuple[str, int]:
    return VOICES[int(rng.integers(len(VOICES)))], SPEEDS[int(rng.integers(len(SPEEDS)))]


def _question(rng: Rng, i: int) -> str:
    return QUESTIONS[(i * 7 + int(rng.integers(3))) % len(QUESTIONS)]


def _ask(
    track: Track, rng: Rng, i: int, voice: str, wpm: int, effect: str = "clean"
) -> tuple[str, float, float]:
    q = _question(rng, i)
    x = speak(q, voice, wpm)
    if effect == "quiet":
        x = level(x, -14.0)
    elif effect == "loud":
        x = level(x, 4.0)
    elif effect == "reverb":
        x = reverb(x, 50, 80)
    track.silence(0.6 + 0.4 * float(rng.random()))
    s, e = track.add(x, q)
    return q, s, e


def smooth_turn(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    effect = ["clean", "quiet", "loud", "reverb", "noisy", "clean", "clean"][i % 7]
    t = Track()
    q, _, end = _ask(t, rng, i, voice, wpm, effect if effect != "noisy" else "clean")
    base = t.render(1.0)
    if effect == "noisy":  # pink noise at about 20 dB below the speech
        base = np.clip(base + noise("pink", len(base) / SR + 0.05, -42.0)[: len(base)], -1, 1)
    sc = Scenario(
        sid,
        "smooth_turn",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (Expectation("take_turn", end_ms=end, text=q),),
        description=f"one question ({voice}, {wpm} wpm, {effect}); the agent should answer",
        meta={"voice": voice, "wpm": wpm, "effect": effect},
    )
    return Built(sc, {f"{sid}.wav": base})


def multi_turn(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    t = Track()
    q, _, end = _ask(t, rng, i, voice, wpm)
    q2 = _question(rng, i + 5)
    follow = speak(q2, voice, wpm)
    gap_ms = 600.0 + 400.0 * float(rng.random())
    sc = Scenario(
        sid,
        "smooth_turn",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (Expectation("take_turn", end_ms=end, text=q), Expectation("take_turn", insert=0, text=q2)),
        inserts=(Insert(f"{sid}.turn2.wav", "agent_audio_done", 1, round(gap_ms), q2, "turn"),),
        description=f"two questions; the second {gap_ms:.0f} ms after the agent's first answer ends",
        meta={"voice": voice, "wpm": wpm},
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0), f"{sid}.turn2.wav": follow})


def pause(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    first, second = PAUSED[i % len(PAUSED)]
    gap = round(1.0 + float(rng.random()), 2)  # 1–2 s
    t = Track()
    t.silence(0.7)
    _, p_start = t.add(speak(first, voice, wpm), first)
    t.silence(gap)
    resume, end = t.add(speak(second, voice, wpm), second)
    sc = Scenario(
        sid,
        "pause",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (
            Expectation(
                "no_take", onset_ms=p_start, end_ms=resume, window_ms=(p_start, end), text=first
            ),
            Expectation("take_turn", end_ms=end, text=f"{first} {second}", category="smooth_turn"),
        ),
        description=f"a {gap:.1f} s pause mid-sentence; the agent should wait, then answer",
        meta={"voice": voice, "wpm": wpm, "pause_s": gap},
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


def _during(
    sid: str,
    category: str,
    rng: Rng,
    i: int,
    insert: tuple[np.ndarray, str],
    behaviour: str,
    offset_ms: float,
    description: str,
    echo: EchoPath | None = None,
    meta: dict | None = None,
    speaker: tuple[str, int] | None = None,
) -> Built:
    """The user asks; ``insert`` (audio, text: its kind is ``category``) plays
    ``offset_ms`` into the agent's answer, which should ``behaviour``."""
    insert_audio, text = insert
    voice, wpm = speaker or _voice(rng)
    t = Track()
    q, _, end = _ask(t, rng, i, voice, wpm)
    exp = Expectation(behaviour, insert=0, text=text)  # type: ignore[arg-type]
    sc = Scenario(
        sid,
        category,
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (Expectation("take_turn", end_ms=end, text=q, category="smooth_turn"), exp),
        inserts=(
            Insert(f"{sid}.{category}.wav", "agent_audio_start", 1, round(offset_ms), text, category),
        ),
        echo=echo,
        description=description,
        meta={"voice": voice, "wpm": wpm, **(meta or {})},
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0), f"{sid}.{category}.wav": insert_audio})


def _alone(
    sid: str,
    category: str,
    piece: tuple[np.ndarray, str, str],
    description: str,
    meta: dict,
    expect_text: str = "",
) -> Built:
    """``piece`` (audio, label, speaker) while the agent is idle; it should stay quiet."""
    t = Track()
    t.silence(0.8)
    s, e = t.add(*piece)
    sc = Scenario(
        sid,
        category,
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (Expectation("no_take", onset_ms=s, end_ms=e, text=expect_text),),
        description=description,
        meta=meta,
    )
    return Built(sc, {f"{sid}.wav": t.render(1.5)})


def backchannel(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    word = BACKCHANNELS[i % len(BACKCHANNELS)]
    x = speak(word, voice, wpm, level_db=-8.0)
    off = 500 + 900 * float(rng.random())
    about = f"the user says {word!r} {off:.0f} ms into the agent's answer; the agent should go on"
    return _during(sid, "backchannel", rng, i, (x, word), "ignore", off, about, speaker=(voice, wpm))


def interruption(sid: str, rng: Rng, i: int, echo: EchoPath | None = None) -> Built:
    voice, wpm = _voice(rng)
    text = INTERRUPTIONS[i % len(INTERRUPTIONS)]
    x = speak(text, voice, wpm)
    off = 600 + 900 * float(rng.random())
    what = " with echo" if echo else ""
    about = f"the user interrupts {off:.0f} ms into the agent's answer{what}; the agent should stop and answer"
    return _during(
        sid, "interruption", rng, i, (x, text), "yield", off, about, echo=echo, speaker=(voice, wpm)
    )


def noise_idle(sid: str, rng: Rng, i: int) -> Built:
    kind = ["pink", "brown", "hum", "white", "hiss"][i % 5]
    dur = 2.0 + float(rng.random())
    lvl = -30.0 + 6.0 * float(rng.random())
    about = f"{dur:.1f} s of {kind} noise at {lvl:.0f} dBFS and no speech; the agent should stay quiet"
    meta = {"noise": kind, "level_db": lvl}
    return _alone(sid, "noise", (noise(kind, dur, lvl), f"[{kind} noise]", "noise"), about, meta)


def noise_during(sid: str, rng: Rng, i: int) -> Built:
    kind = ["pink", "brown", "white"][i % 3]
    dur = 1.0 + float(rng.random())
    x = noise(kind, dur, -30.0)
    off = 500 + 800 * float(rng.random())
    about = f"{dur:.1f} s of {kind} noise {off:.0f} ms into the agent's answer; the agent should go on"
    return _during(sid, "noise", rng, i, (x, f"[{kind} noise]"), "ignore", off, about)


def background_idle(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    text = BACKGROUND_TALK[i % len(BACKGROUND_TALK)]
    x = reverb(speak(text, voice, wpm, level_db=-22.0), 70, 100)
    about = "distant speech not addressed to the agent (-22 dB, reverberant); the agent should stay quiet"
    meta = {"voice": voice, "wpm": wpm}
    return _alone(sid, "background_speech", (x, text, "background"), about, meta, expect_text=text)


def background_during(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    text = BACKGROUND_TALK[(i + 3) % len(BACKGROUND_TALK)]
    x = reverb(speak(text, voice, wpm, level_db=-22.0), 70, 100)
    off = 400 + 800 * float(rng.random())
    about = f"distant background talk {off:.0f} ms into the agent's answer; the agent should go on"
    return _during(sid, "background_speech", rng, i, (x, text), "ignore", off, about)


def _echo_path(rng: Rng, with_reverb: bool) -> EchoPath:
    delay = round(30 + 120 * float(rng.random()))
    gain = round(-6 - 14 * float(rng.random()), 1)
    rv = (
        Reverb(round(150 + 350 * float(rng.random())), int(rng.integers(1 << 16)))
        if with_reverb
        else None
    )
    return EchoPath(delay, gain, None, rv)


def echo(sid: str, rng: Rng, i: int) -> Built:
    voice, wpm = _voice(rng)
    path = _echo_path(rng, with_reverb=i % 2 == 1)
    t = Track()
    q, _, end = _ask(t, rng, i, voice, wpm)
    sc = Scenario(
        sid,
        "echo",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (
            Expectation("take_turn", end_ms=end, text=q, category="smooth_turn"),
            Expectation("ignore"),
        ),
        echo=path,
        description=(
            f"the agent's voice leaks back into the microphone ({path.delay_ms:.0f} ms, {path.gain_db:.0f} dB"
            + (f", reverb RT60 {path.reverb.rt60_ms:.0f} ms" if path.reverb else "")
            + "); the agent must not interrupt itself or answer itself"
        ),
        meta={"voice": voice, "wpm": wpm},
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


def echo_interruption(sid: str, rng: Rng, i: int) -> Built:
    return interruption(sid, rng, i, echo=_echo_path(rng, with_reverb=True))


# (prefix, builder, count, how many of them are in the CI subset)
PLAN: list[tuple[str, Callable[[str, Rng, int], Built], int, int]] = [
    ("smooth", smooth_turn, 12, 3),
    ("multiturn", multi_turn, 2, 1),
    ("pause", pause, 10, 3),
    ("backchannel", backchannel, 10, 3),
    ("interrupt", interruption, 10, 3),
    ("noise-idle", noise_idle, 3, 1),
    ("noise-during", noise_during, 3, 1),
    ("background-idle", background_idle, 3, 1),
    ("background-during", background_during, 3, 1),
    ("echo", echo, 8, 2),
    ("echo-interrupt", echo_interruption, 3, 1),
]


def make_scenarios(
    folder: str | Path, *, seed: int = 0, only: list[str] | None = None
) -> list[Scenario]:
    """Write the standard set into ``folder`` (created; existing files are overwritten).

    Args:
        folder: where the WAV + JSON pairs go.
        seed: the set is a pure function of this.
        only: build only the groups whose prefix is listed (``["smooth", "echo"]``).

    Returns:
        The scenarios written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    require_sox()
    writer = ScenarioWriter(out)
    n = 0
    for prefix, build, count, ci in PLAN:
        for i in range(count):
            n += 1
            if only and prefix not in only:
                continue
            rng = np.random.default_rng([seed, n])
            built = build(f"{prefix}-{i + 1:02d}", rng, i)
            writer.write(built, ("ci",) if i < ci else ())
    return writer.finish(
        "duplex.eval.generate", GENERATOR_VERSION, seed, {"ci_subset": "ci"}
    )
