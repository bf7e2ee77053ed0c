"""Cutting the LLM's text into speakable clauses, and trimming the seams between them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from duplex.models.cascade.clauses import ClauseSplitter, trim_seam
from duplex.models.spoken_text import spoken_pieces


def clauses_of(pieces: Iterable[str]) -> list[str]:
    """Every clause a ``ClauseSplitter`` cuts from ``pieces``, fed one at a time."""
    splitter = ClauseSplitter()
    out = [clause for piece in pieces for clause in splitter.feed(piece)]
    return out + splitter.finish()


def pieces(text: str) -> list[str]:
    """``text`` as an LLM streams it: " word" pieces."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def test_the_first_clause_is_short_and_does_not_end_on_a_weak_word():
    clauses = clauses_of(pieces("The capital of France is Paris and it is lovely."))
    assert clauses[0] == "The capital of France"  # not "The capital of"
    assert " ".join(clauses) == "The capital of France is Paris and it is lovely."
    assert clauses_of(pieces("Sure, here is one.")) == ["Sure,", "here is one."]
    assert clauses_of(pieces("Yes.")) == ["Yes."]
    # A first clause of only weak words is still cut, at the latest after six words.
    first = clauses_of(pieces("If it is to be so then it will be done by them"))[0]
    assert len(first.split()) <= 6


def test_a_clause_is_cut_between_two_pieces_as_soon_as_it_is_complete():
    splitter = ClauseSplitter()
    fed = [splitter.feed(p) for p in pieces("The capital of France is Paris.")]
    # "France" completes the first clause only once the next word begins.
    assert fed[:4] == [[], [], [], []]
    assert fed[4] == ["The capital of France"]
    assert splitter.finish() == ["is Paris."]


def test_a_list_becomes_clauses_without_markers() -> None:
    list_pieces = ["1", ".", " Stay", " hydrated", ".", "\n", "2", ".", " Rest", "."]
    assert clauses_of(spoken_pieces(list_pieces)) == ["Stay hydrated.", "Rest."]


def test_trim_seam_shortens_silence_between_clauses_and_moves_word_timings():
    rate = 24000
    tone = 0.3 * np.sin(np.arange(rate // 2) * 2 * np.pi * 220 / rate).astype(np.float32)
    audio = np.concatenate([np.zeros(rate // 5, np.float32), tone, np.zeros(rate // 5, np.float32)])
    words = [("hello", rate // 5, rate // 5 + rate // 2)]
    kept, moved = trim_seam(audio, words, rate, lead=True, tail=True)
    assert len(kept) < rate // 2 + rate // 10  # 0.2 s either side became about 0.03 s
    assert moved[0][1] <= int(0.04 * rate) and moved[0][2] - moved[0][1] == rate // 2
    same, _ = trim_seam(audio, words, rate, lead=False, tail=False)
    assert len(same) == len(audio)
