"""The cascade's playback: a "mhm" aside cut short by the answer that starts over it."""

from __future__ import annotations

import numpy as np

from duplex.models.cascade.draft import Draft
from duplex.models.cascade.playback import ASIDE_ECHO_TAIL_MS, Playback
from duplex.models.cascade.results import AudioChunk
from duplex.models.context import Dialogue
from duplex.models.scripted import ToneTts
from duplex.runtime.lanes import InlineLane

RATE, FRAME = 24000, 768  # 32 ms frames
FRAME_MS = 1000.0 * FRAME / RATE


def _playback() -> Playback:
    return Playback(
        tts=ToneTts(RATE, word_ms=600),
        respond_lane=InlineLane("respond"),
        dialogue=Dialogue("system"),
        out_rate=RATE,
        out_frame=FRAME,
        backchannel_text="Mhm.",
    )


def test_an_answer_that_cuts_a_mhm_short_leaves_only_its_echo_tail_as_the_aside() -> None:
    pb = _playback()
    pb.backchannel(0.0)
    pb.speak(0.0)  # one frame of the 600 ms "mhm"
    assert pb.status().aside
    answer = Draft("resp_1", "question", None, held=False)
    answer.audio.append(AudioChunk(np.full(RATE * 2, 0.1, np.float32), "An answer.", (), {}))
    pb.start(answer, FRAME_MS, [])
    t, aside_until = FRAME_MS, None
    for _ in range(40):
        out = pb.speak(t)
        assert not any(getattr(e, "aside", False) for e in out.events)  # the rest of the mhm is dropped
        t += FRAME_MS
        if aside_until is None and not pb.status().aside:
            aside_until = t
    # The aside ends with the echo tail after the answer began (to the frame). Before, it
    # lasted the rest of the 600 ms "mhm" and its tail: 832 ms.
    assert aside_until is not None
    assert aside_until - FRAME_MS <= ASIDE_ECHO_TAIL_MS + 2 * FRAME_MS
