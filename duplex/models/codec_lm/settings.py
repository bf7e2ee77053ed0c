"""Settings of the end-to-end codec LM backend (``[models.codec_lm]`` in a profile).

Kept next to the backend until ``duplex.config`` declares it as
``ModelsConfig.codec_lm``; the dataclass is the single definition either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
