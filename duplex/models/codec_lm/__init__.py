"""The end-to-end codec LM backend (Moshi-class: Mimi codec + temporal and depth transformers).

- ``CodecLmConfig`` (the ``[models.codec_lm]`` table) is declared in ``duplex.config``;
- ``checkpoint``: loading a local checkpoint directory through ``moshi``'s loaders
  (and writing tiny random-weight checkpoints for tests and benchmarks);
- ``core``: the batched step (one encode, one LM step, one decode per tick);
- ``stepper``: gathering the frames of sessions on many threads into that step;
- ``sampling``: per-slot temperature and top-k;
- ``resample``: exact-frame resampling at the edges (soxr on CPU, torch on GPU);
- ``model``: ``CodecLMModel`` / ``CodecLMSession``, the ``DuplexModel`` seam.

Importing this package does not import torch; building a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duplex.config import CodecLmConfig

if TYPE_CHECKING:
    from duplex.models.codec_lm.model import CodecLMModel, CodecLMSession

__all__ = ["CodecLMModel", "CodecLMSession", "CodecLmConfig"]


def __getattr__(name: str) -> Any:
    if name in ("CodecLMModel", "CodecLMSession"):
        from duplex.models.codec_lm import model

        return getattr(model, name)
    raise AttributeError(name)
