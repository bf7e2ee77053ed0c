"""Loading a Moshi-class checkpoint from a local directory, through ``moshi``'s own loaders.

A checkpoint directory holds what a Hugging Face repository such as
``kyutai/moshiko-pytorch-bf16`` holds: the LM weights (``model.safetensors``),
the Mimi codec weights (``tokenizer-e351c8d8-checkpoint125.safetensors``), the
SentencePiece text tokenizer (``tokenizer_spm_32k_3.model``) and, optionally,
``config.json`` naming those files and the LM architecture (without it, the
Moshi 7B architecture is assumed). Nothing is fetched from a hub.

``write_tiny_checkpoint`` writes a small random-weight checkpoint with the same
layout, for tests and CPU benchmarks.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duplex.errors import ConfigError, ModelNotFound

log = logging.getLogger(__name__)

_INSTALL = 'pip install "torch==2.13.0" && pip install --no-deps moshi==0.2.13'


def import_moshi(device: str = "cpu") -> Any:
    """Import ``moshi`` with hub access off (and torch.compile off on CPU).

    ``NO_TORCH_COMPILE`` is read when moshi's modules are imported, so it is set
    before the first import. ``moshi.server`` is never imported (it starts a
    server at import).

    Raises:
        ModelNotFound: torch or moshi is not installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not device.startswith("cuda"):
        os.environ.setdefault("NO_TORCH_COMPILE", "1")
    try:
        import moshi.models  # noqa: F401
    except ImportError as exc:
        raise ModelNotFound(
            f"the codec LM backend needs torch and moshi ({exc}); install them with: {_INSTALL} "
            "safetensors sentencepiece einops huggingface-hub"
        ) from exc
    import moshi

    return moshi


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"models.codec_lm.device = {device!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of a checkpoint directory and the configuration read from it."""

    directory: Path
    lm_weights: Path
    mimi_weights: Path
    tokenizer: Path
    lm_config: dict[str, Any] | None  # None: the Moshi 7B architecture
    mimi_config: dict[str, Any] | None  # None: the published Mimi
    model_type: str = "moshi"


def checkpoint_files(directory: str | Path) -> CheckpointFiles:
    """Find the checkpoint's files, reading ``config.json`` when there is one.

    Raises:
        ModelNotFound: the directory or some of its files are missing; the message
            lists every missing file and what it is.
    """
    from moshi.models import loaders

    if not str(directory):
        raise ModelNotFound(
            "no codec LM checkpoint configured; set models.codec_lm.path to a directory holding "
            "the files listed in models/moshi-7b.toml"
        )
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ModelNotFound(
            f"no codec LM checkpoint at {root} (not a directory); place the files listed in "
            "models/moshi-7b.toml there or set models.codec_lm.path"
        )
    raw: dict[str, Any] | None = None
    config_path = root / "config.json"
    if config_path.is_file():
        try:
            raw = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelNotFound(f"{config_path} is not valid JSON ({exc}); restore it from the model's repository") from exc
    lm_config = dict(raw) if raw is not None else None
    cfg = lm_config if lm_config is not None else {}
    names = {
        "LM weights": cfg.pop("moshi_name", loaders.MOSHI_NAME),
        "Mimi codec weights": cfg.pop("mimi_name", loaders.MIMI_NAME),
        "text tokenizer": cfg.pop("tokenizer_name", loaders.TEXT_TOKENIZER_NAME),
    }
    mimi_config_name = cfg.pop("mimi_config_name", None)
    if mimi_config_name:
        names["Mimi config"] = mimi_config_name
    model_type = cfg.pop("model_type", "moshi")
    if cfg.pop("lora_name", None) or cfg.get("lora"):
        raise ConfigError(f"{config_path}: LoRA checkpoints are not supported by the codec LM backend")
    for key in ("lm_gen_config", "tts_config", "stt_config", "model_id"):
        cfg.pop(key, None)
    missing = [f"{name} ({what})" for what, name in names.items() if not (root / name).is_file()]
    if missing:
        have = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
        raise ModelNotFound(
            f"codec LM checkpoint at {root} is incomplete; missing: {'; '.join(missing)}. "
            f"It holds: {have}. Place the files listed in models/moshi-7b.toml there."
        )
    mimi_config = json.loads((root / mimi_config_name).read_text()) if mimi_config_name else None
    if model_type != "moshi":
        raise ConfigError(f"{config_path}: model_type {model_type!r} is not a duplex dialogue model (need 'moshi')")
    return CheckpointFiles(
        directory=root,
        lm_weights=root / names["LM weights"],
        mimi_weights=root / names["Mimi codec weights"],
        tokenizer=root / names["text tokenizer"],
        lm_config=lm_config,
        mimi_config=mimi_config,
        model_type=model_type,
    )


@dataclass
class CodecBundle:
    """A loaded checkpoint: Mimi, the LM and the text tokenizer."""

    mimi: Any  # moshi.models.MimiModel
    lm: Any  # moshi.models.LMModel
    tokenizer: Any  # sentencepiece.SentencePieceProcessor
    files: CheckpointFiles | None = None


def load_checkpoint(directory: str | Path, device: str = "auto", dtype: str = "auto") -> CodecBundle:
    """Load a checkpoint directory through ``moshi.models.loaders.CheckpointInfo``.

    Args:
        directory: the checkpoint directory.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32`` (the LM's; Mimi stays float32).

    Raises:
        ModelNotFound: torch/moshi missing, or checkpoint files missing (all listed).
    """
    import_moshi(device if device != "auto" else "cpu")
    from moshi.models import loaders

    device = resolve_device(device)
    files = checkpoint_files(directory)
    info = loaders.CheckpointInfo(
        moshi_weights=files.lm_weights,
        mimi_weights=files.mimi_weights,
        tokenizer=files.tokenizer,
        lm_config=files.lm_config,
        raw_config=None,
        mimi_config=files.mimi_config,
        model_type=files.model_type,
    )
    log.info("loading codec LM from %s on %s", files.directory, device)
    mimi = info.get_mimi(device=device)
    lm = info.get_moshi(device=device, dtype=resolve_dtype(dtype, device))
    tokenizer = info.get_text_tokenizer()
    return CodecBundle(mimi, lm, tokenizer, files)


# ---------------------------------------------------------------- tiny checkpoints

_TINY_TEXT = [
    "hello there, how are you today?",
    "i am fine, thank you. and you?",
    "the weather is nice; let us talk about music and films.",
    "what would you like to hear about next?",
    "sure, i can tell you a short story about a small robot.",
]


def tiny_configs(text_card: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """LM and Mimi configurations of a tiny model with Moshi's layout.

    Same streams as Moshi (n_q 16 with dep_q 8: the model hears the user's 8
    codebooks and speaks 8; the same delays; 24 kHz, 12.5 Hz frames), with
    small widths so a CPU steps a large batch.
    """
    from moshi.models import loaders

    seanet = dict(loaders._seanet_kwargs, dimension=32, n_filters=4)
    mimi = {
        "sample_rate": 24000,
        "channels": 1,
        "frame_rate": 12.5,
        "seanet": seanet,
        "quantizer": dict(loaders._quantizer_kwargs, dimension=16, n_q=16, bins=64, input_dimension=32, output_dimension=32),
        "transformer": dict(
            loaders._transformer_kwargs,
            d_model=32, num_heads=2, num_layers=1, dim_feedforward=64,
            input_dimension=32, output_dimensions=[32], context=50,
        ),
    }
    lm = dict(
        loaders._lm_kwargs,
        dim=32, text_card=text_card, card=64, num_heads=2, num_layers=2, hidden_scale=2, context=375,
        depformer_dim=32, depformer_dim_feedforward=64, depformer_num_heads=2, depformer_num_layers=1,
    )
    return lm, mimi


def build_tiny_models(seed: int = 0, text_card: int = 48) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """A tiny random-weight (Mimi, LM) pair in float32 on CPU, and their configs."""
    import_moshi("cpu")
    import torch
    from moshi.models import loaders

    lm_cfg, mimi_cfg = tiny_configs(text_card)
    torch.manual_seed(seed)
    mimi = loaders.get_mimi(None, mimi_cfg, num_codebooks=8)
    lm = loaders.get_moshi_lm(None, lm_cfg, device="cpu", dtype=torch.float32)
    return mimi, lm, lm_cfg, mimi_cfg


def _train_tokenizer(path: Path, vocab_size: int) -> int:
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_TINY_TEXT * 20),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,  # 3 is Moshi's text padding token
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path)).vocab_size()


def write_tiny_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint in the real layout (for tests and benchmarks).

    Files: ``config.json``, ``mimi_config.json``, ``model.safetensors``,
    ``mimi.safetensors``, ``tokenizer.model``. Returns the directory.
    """
    from safetensors.torch import save_file

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    text_card = _train_tokenizer(root / "tokenizer.model", 48)
    mimi, lm, lm_cfg, mimi_cfg = build_tiny_models(seed, text_card)
    save_file({k: v.detach().contiguous().clone() for k, v in lm.state_dict().items()}, str(root / "model.safetensors"))
    save_file({k: v.detach().contiguous().clone() for k, v in mimi.state_dict().items()}, str(root / "mimi.safetensors"))
    (root / "mimi_config.json").write_text(json.dumps(mimi_cfg, indent=1))
    config = dict(
        lm_cfg,
        moshi_name="model.safetensors",
        mimi_name="mimi.safetensors",
        mimi_config_name="mimi_config.json",
        tokenizer_name="tokenizer.model",
        model_type="moshi",
    )
    (root / "config.json").write_text(json.dumps(config, indent=1))
    return root
