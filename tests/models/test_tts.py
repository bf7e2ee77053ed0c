"""Specification of the TTS stages, run through the real engines (Piper and espeak-ng)."""

from __future__ import annotations

import numpy as np
import pytest

from duplex.audio.level import AUDIBLE_DB, first_audible_ms
from duplex.errors import ModelNotFound
from duplex.models import tts_espeak
from duplex.models.stages import SpeechSynthesizer
from duplex.models.tts_espeak import EspeakSynthesizer, split_words
from duplex.models.tts_piper import PiperSynthesizer

SENTENCE = "I think we should meet at the cafe on Tuesday afternoon."
TWO_SENTENCES = "Sure, I can help with that. What time works best for you?"


@pytest.fixture(scope="module", params=["piper", "espeak"])
def synth(request: pytest.FixtureRequest) -> SpeechSynthesizer:
    if request.param == "piper":
        return PiperSynthesizer(threads=1)
    return EspeakSynthesizer()


def test_engines_satisfy_the_protocol(synth: SpeechSynthesizer) -> None:
    assert isinstance(synth, SpeechSynthesizer)
    assert synth.sample_rate == 22050


def test_sentence_gives_non_silent_speech_of_plausible_duration(synth: SpeechSynthesizer) -> None:
    chunks = list(synth.synthesize(SENTENCE))
    assert len(chunks) == 1
    samples = chunks[0].samples
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.all(np.abs(samples) <= 1.0)
    assert np.sqrt(np.mean(samples**2)) > 0.02
    seconds_per_word = len(samples) / synth.sample_rate / len(split_words(SENTENCE))
    assert 0.2 <= seconds_per_word <= 0.8


def test_two_sentences_stream_as_two_lazy_chunks(
    synth: SpeechSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthesized: list[str] = []
    if isinstance(synth, PiperSynthesizer):
        owner, name = synth._voice, "synthesize"
    else:
        owner, name = tts_espeak._engine(), "synth"
    original = getattr(owner, name)

    def recording(text: str, *args: object, **kwargs: object) -> object:
        synthesized.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    stream = synth.synthesize(TWO_SENTENCES)
    first = next(stream)
    assert first.text == "Sure, I can help with that."
    assert synthesized == ["Sure, I can help with that."]  # the second is not started yet
    second = next(stream)
    assert second.text == "What time works best for you?"
    assert len(synthesized) == 2
    assert next(stream, None) is None


def test_word_timings_are_monotonic_complete_and_inside_the_chunk(
    synth: SpeechSynthesizer,
) -> None:
    for chunk in synth.synthesize(TWO_SENTENCES + " It costs 42 dollars, in the end."):
        assert [w.word for w in chunk.words] == split_words(chunk.text)
        previous_end = 0
        for timing in chunk.words:
            assert previous_end <= timing.start_sample <= timing.end_sample <= len(chunk.samples)
            previous_end = timing.end_sample
        assert chunk.words[-1].end_sample > chunk.words[0].start_sample


@pytest.mark.parametrize(
    "text",
    ["I think a good way is to drink water.", "Paris is the capital of France.", "Hello there!"],
)
def test_a_chunk_starts_sounding_at_once(synth: SpeechSynthesizer, text: str) -> None:
    """A listener waits for any silence before the first sound. What is left is a
    10 ms pad and the soft start of the first sound (Piper's own silence is 40-90 ms)."""
    chunk = next(iter(synth.synthesize(text)))
    rate = synth.sample_rate
    sound = first_audible_ms(chunk.samples, rate, threshold_db=AUDIBLE_DB - 10.0)
    assert sound is not None and sound <= 20.0  # the first sound begins
    audible = first_audible_ms(chunk.samples, rate)
    assert audible is not None and audible <= 40.0  # and is heard


@pytest.mark.parametrize("text", ["", "   \n\t ", " -- "])
def test_empty_text_yields_nothing(synth: SpeechSynthesizer, text: str) -> None:
    assert list(synth.synthesize(text)) == []


def test_missing_piper_model_raises_model_not_found_naming_the_fix(tmp_path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelNotFound, match="nope.onnx.*model_path"):
        PiperSynthesizer(model_path=str(missing))


def test_piper_model_without_config_says_which_file_is_missing(tmp_path) -> None:
    (tmp_path / "voice.onnx").write_bytes(b"")
    with pytest.raises(ModelNotFound, match=r"voice\.onnx\.json"):
        PiperSynthesizer(model_path=str(tmp_path))


def test_unknown_espeak_voice_raises_model_not_found() -> None:
    with pytest.raises(ModelNotFound, match="no voice"):
        EspeakSynthesizer(voice="xx-nonexistent")
