"""The hearing lanes' jobs: a partial transcript, and a final with its end of turn.

A job reads and scores; the tick records what it read (``hearing.Hearing.listen``),
and only for the job still wanted: a job cancelled mid-read leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from duplex.models.asr_rescore import Looker, look_again
from duplex.models.cascade.results import (
    EouScore,
    Final,
    HearingResult,
    Kept,
    LookingAgain,
    Partial,
    Revised,
)
from duplex.models.stages import EndOfUtteranceScorer, SpeechRecognizer


def partial_job(audio: np.ndarray, asr: SpeechRecognizer) -> Callable[[], Iterator[HearingResult]]:
    """The partial lane's job: transcribe the speech so far.

    Its end of turn is not scored here. In real time a pass still running when the
    final is asked made the final ~50 ms slower, and a final read at the first quiet
    frame seldom reads the same words as the last partial, so the cached score was
    seldom used (models/eou.md, "Partials no longer scored").
    """

    def job() -> Iterator[HearingResult]:
        yield Partial(asr.transcribe(audio).text.strip())

    return job


def final_job(
    audio: np.ndarray,
    head: str,
    asr: SpeechRecognizer,
    eou: EndOfUtteranceScorer | None,
    second_look: Looker | None,
    rescore_below: float,
) -> Callable[[], Iterator[HearingResult]]:
    """The listen lane's job for one final: read, score, look again while it reads unfinished.

    The job reads; the tick records what it read (in ``listen``), and only for the
    final still wanted: a job cancelled mid-read must not leave its words behind.
    """

    def job() -> Iterator[HearingResult]:
        heard = asr.transcribe(audio)
        new = heard.text.strip()
        text = f"{head} {new}".strip()
        yield Final(text, new, heard.confidence, heard.compute_ms)
        if eou is None or not text:
            return
        score = eou.end_score(text)
        if second_look is not None:
            # While it reads as unfinished, the turn-taker would wait a while anyway:
            # time for the recognizer's other readings (a mis-heard question often
            # reads as a fragment). A better one replaces the final and its score.
            def end_score(words: str) -> float:
                return eou.end_score(f"{head} {words}".strip())

            for step in look_again(second_look, audio, new, score, end_score, rescore_below):
                if step is None:
                    yield LookingAgain()  # the draft pauses: the look needs the cores
                    continue
                again, score = step
                better = again.text.strip()
                ms = heard.compute_ms + again.compute_ms
                yield Revised(f"{head} {better}".strip(), better, again.confidence, ms)
        yield EouScore(score)

    return job


def look_job(
    audio: np.ndarray,
    head: str,
    words: str,
    read_ms: float,
    eou: EndOfUtteranceScorer,
    looker: Looker,
    min_gain: float,
) -> Callable[[], Iterator[HearingResult]]:
    """The listen lane's job for a look the turn-taker asked for (``LookAgain``).

    The final of ``audio`` read ``words`` (after ``head``, the turn's earlier
    stretches) and is held for its form. One look: the recognizer's readings re-ranked
    (``asr_rescore``). Other words, if the LM finds them ``min_gain`` nats a token
    likelier, come back ``Revised`` with their score; else the words are ``Kept``.
    ``read_ms`` is the first read's compute time (``Revised`` counts both). The draft
    goes on meanwhile: the turn is held for over a second.
    """

    def job() -> Iterator[HearingResult]:
        again = looker.other_reading(audio, words, min_gain)
        if again is None:
            yield Kept()
            return
        better = again.text.strip()
        text = f"{head} {better}".strip()
        yield Revised(text, better, again.confidence, read_ms + again.compute_ms)
        yield EouScore(eou.end_score(text))

    return job
