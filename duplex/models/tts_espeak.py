"""Instant, robotic fallback TTS: espeak-ng through ctypes.

Uses the shared library and voice data shipped in the ``espeakng-loader`` wheel, so
it works with no system install. Synthesis takes a few milliseconds a sentence,
which makes it the fallback when the neural voice (``tts_piper``) is too slow or
missing, and the engine of choice for tests that need speech fast.

Word timings are exact: they come from espeak-ng's own word events (millisecond
resolution). This module also holds the text helpers both TTS engines share
(sentence and word splitting, proportional word-timing estimates).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from duplex.audio.level import voiced_span
from duplex.errors import BackendError, ModelNotFound
from duplex.models.stages import SpeechChunk, WordTiming

_LOGGER = logging.getLogger(__name__)

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets)
# followed by whitespace. Common abbreviations are not sentence ends.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"')\]\u201d\u2019]*\s+")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "no",
        "fig",
        "mt",
    ]
)
_WORD_STRIP = "\"'()[]{}<>.,;:!?\u2026\u201c\u201d\u2018\u2019-\u2013\u2014*_/"


# Silence kept before a chunk's first sound: enough for a soft onset ("h", "f")
# under the voiced threshold, short next to what a listener waits.
LEAD_PAD_MS = 10.0


def trim_leading_silence(chunk: SpeechChunk, sample_rate: int, pad_ms: float = LEAD_PAD_MS) -> SpeechChunk:
    """``chunk`` without the silence a synthesizer puts before its first sound, but
    ``pad_ms`` of it; word timings move with the audio.

    Every sentence chunk starts this way, so the first sound of an answer comes as soon
    as its first chunk is played (Piper puts 40-90 ms of silence there, espeak-ng up to
    50 ms). The silence after a sentence is kept: it is the pause before the next one.
    """
    start, _ = voiced_span(chunk.samples, sample_rate)
    cut = max(0, start - int(pad_ms * sample_rate / 1000.0))
    if cut == 0:
        return chunk
    words = tuple(
        WordTiming(w.word, max(0, w.start_sample - cut), max(0, w.end_sample - cut)) for w in chunk.words
    )
    return SpeechChunk(chunk.samples[cut:], chunk.text, words)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping their punctuation.

    Args:
        text: Any text; whitespace is normalised.

    Returns:
        The non-empty sentences in order. Abbreviations such as ``Dr.`` do not
        end a sentence.
    """
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()]
        last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower()
        if last_word in _ABBREVIATIONS:
            continue
        sentences.append(candidate)
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if split_words(s)]


def split_words(text: str) -> list[str]:
    """The spoken words of ``text``: whitespace tokens without surrounding punctuation.

    Tokens made only of punctuation (``--``, ``...``) are dropped.
    """
    words = (token.strip(_WORD_STRIP) for token in text.split())
    return [w for w in words if w]


def estimate_word_timings(
    words: Sequence[str], weights: Sequence[float], start: int, end: int
) -> tuple[WordTiming, ...]:
    """Spread ``words`` over samples [start, end) in proportion to ``weights``.

    Args:
        words: The words, in spoken order.
        weights: One positive weight a word (phoneme or character count).
        start: First sample of speech.
        end: One past the last sample of speech.

    Returns:
        Contiguous, monotonic word timings covering [start, end).
    """
    if not words:
        return ()
    w = np.maximum(np.asarray(weights, dtype=np.float64), 1e-6)
    edges = start + np.round(np.concatenate([[0.0], np.cumsum(w)]) / w.sum() * (end - start))
    edges = edges.astype(np.int64)
    return tuple(WordTiming(word, int(edges[i]), int(edges[i + 1])) for i, word in enumerate(words))


# --- espeak-ng C API (speak_lib.h) -------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

# espeak-ng keeps one global engine a process: every call goes through this lock,
# and the library is initialised once.
_ENGINE_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


class _Engine:
    """The process-wide espeak-ng library, initialised for synchronous synthesis."""

    def __init__(self, library_path: str, data_path: str) -> None:
        try:
            self.lib = ctypes.CDLL(library_path)
        except OSError as exc:
            raise ModelNotFound(
                f"cannot load espeak-ng from {library_path}: {exc}; "
                "reinstall it with `pip install --force-reinstall espeakng-loader`"
            ) from exc
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        # The data path is the folder that *contains* espeak-ng-data.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(Path(data_path).parent).encode(), 0
        )
        if rate <= 0:
            raise ModelNotFound(
                f"espeak-ng failed to initialise with data at {data_path}; "
                "reinstall it with `pip install --force-reinstall espeakng-loader`"
            )
        self.sample_rate = int(rate)
        self._pcm: list[np.ndarray] = []
        self._word_events: list[tuple[int, int, int]] = []
        # Keep a reference: ctypes callbacks must outlive their use by C.
        self._callback = _SYNTH_CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer, n_samples: int, events: ctypes._Pointer) -> int:
        if n_samples > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._word_events.append((event.text_position, event.length, event.audio_position))
            i += 1
        return 0  # 0 = continue synthesis

    def synth(
        self, text: str, voice: str, rate_wpm: int | None
    ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Synthesize ``text``; returns int16 PCM and (char_pos, char_len, ms) word events."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ModelNotFound(
                f"espeak-ng has no voice {voice!r}; use a name from its voices list, e.g. 'en-us'"
            )
        if rate_wpm is not None:
            self.lib.espeak_SetParameter(1, rate_wpm, 0)  # espeakRATE, absolute
        self._pcm, self._word_events = [], []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise BackendError(f"espeak_Synth failed with status {status} for text {text!r}")
        pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, dtype=np.int16)
        return pcm, self._word_events


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise ModelNotFound(
                "espeak-ng is not installed; run `pip install espeakng-loader`"
            ) from exc
        _ENGINE = _Engine(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
    return _ENGINE


class EspeakSynthesizer:
    """Formant-synthesis TTS with espeak-ng: instant and robotic.

    Synthesizes one sentence a chunk. Word timings come from espeak-ng's word
    events, so they are exact (to the millisecond). espeak-ng is one global engine
    a process: instances share it under a lock, so any number of instances may be
    used from any threads (calls are serialised).

    Attributes:
        sample_rate: Output rate in Hz (22050 for espeak-ng).
    """

    def __init__(self, voice: str = "en-us", rate_wpm: int | None = None) -> None:
        """Load espeak-ng (once a process) and check the voice.

        Args:
            voice: espeak-ng voice name, e.g. ``"en-us"``.
            rate_wpm: Speaking rate in words a minute (espeak's default is 175).

        Raises:
            ModelNotFound: the library, its data or the voice is missing.
        """
        self.voice = voice
        self.rate_wpm = rate_wpm
        with _ENGINE_LOCK:
            engine = _engine()
            if engine.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ModelNotFound(
                    f"espeak-ng has no voice {voice!r}; use a name such as 'en-us' or 'en-gb'"
                )
        self.sample_rate: int = engine.sample_rate

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """Yield one chunk a sentence of ``text``, each synthesized when asked for.

        Args:
            text: Text to speak; empty or whitespace-only text yields nothing.

        Yields:
            Mono float32 speech at ``sample_rate`` with exact word timings.
        """
        for sentence in split_sentences(text):
            with _ENGINE_LOCK:
                pcm, events = _engine().synth(sentence, self.voice, self.rate_wpm)
            samples = pcm.astype(np.float32) / 32768.0
            chunk = SpeechChunk(samples, sentence, self._word_timings(sentence, samples, events))
            yield trim_leading_silence(chunk, self.sample_rate)

    def close(self) -> None:
        """Nothing to release: the engine is one a process (``_engine``), never unloaded."""

    def _word_timings(
        self, sentence: str, samples: np.ndarray, events: list[tuple[int, int, int]]
    ) -> tuple[WordTiming, ...]:
        words = split_words(sentence)
        _, speech_end = voiced_span(samples, self.sample_rate)
        starts = sorted(min(int(ms * self.sample_rate / 1000), len(samples)) for _, _, ms in events)
        if len(starts) != len(words):
            # espeak expands numbers and symbols into several words: fall back to an
            # estimate over the voiced span rather than guess which event is which.
            _LOGGER.debug("espeak gave %d word events for %d words", len(starts), len(words))
            start, end = voiced_span(samples, self.sample_rate)
            return estimate_word_timings(words, [len(w) for w in words], start, end)
        ends = [*starts[1:], max(speech_end, starts[-1])]
        return tuple(WordTiming(w, s, e) for w, s, e in zip(words, starts, ends, strict=True))
