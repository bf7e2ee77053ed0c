"""Typed runtime configuration, loaded once from a TOML profile at the edge.

A profile is data: ``configs/default.toml`` and friends. It has one section a
part, and each part receives only its own section:

- ``runtime``: ``[audio]`` (rates, the tick), ``[engine]``, ``[server]``;
- ``models``: ``[models]`` and its stages (``vad``, ``asr``, ``llm``, ``tts``,
  ``eou``, ``eou_acoustic``, ``codec_lm``);
- ``policy``: ``[turn]``, ``[barge_in]``, ``[echo]``;
- ``profile``: ``Config`` (the whole profile) and loading it.
"""

from __future__ import annotations

from duplex.config.models import (
    AcousticEouConfig,
    AsrConfig,
    CodecLmConfig,
    EouConfig,
    LlmConfig,
    ModelsConfig,
    TtsConfig,
    VadConfig,
)
from duplex.config.policy import BargeInConfig, EchoConfig, TurnConfig
from duplex.config.profile import (
    CONFIG_DIR,
    Config,
    config_from_dict,
    load_config,
    resolve_profile,
    to_dict,
)
from duplex.config.runtime import AudioConfig, EngineConfig, ServerConfig

__all__ = [
    "CONFIG_DIR",
    "AcousticEouConfig",
    "AsrConfig",
    "AudioConfig",
    "BargeInConfig",
    "CodecLmConfig",
    "Config",
    "EchoConfig",
    "EngineConfig",
    "EouConfig",
    "LlmConfig",
    "ModelsConfig",
    "ServerConfig",
    "TtsConfig",
    "TurnConfig",
    "VadConfig",
    "config_from_dict",
    "load_config",
    "resolve_profile",
    "to_dict",
]
