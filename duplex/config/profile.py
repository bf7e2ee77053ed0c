"""A whole profile (``Config``) and its loading: TOML → typed sections, checked.

Every key is declared in a section with its type and default; unknown keys and
badly typed values are errors that name the key. Command-line overrides use
dotted paths (``--set models.llm.threads=1``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from duplex.config.models import ModelsConfig
from duplex.config.policy import BargeInConfig, EchoConfig, TurnConfig
from duplex.config.runtime import AudioConfig, EngineConfig, ServerConfig
from duplex.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class Config:
    """A whole runtime profile."""

    name: str = "default"
    audio: AudioConfig = field(default_factory=AudioConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    echo: EchoConfig = field(default_factory=EchoConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    @property
    def frame_samples(self) -> int:
        return self.audio.input_sample_rate * self.audio.frame_ms // 1000

    @property
    def output_frame_samples(self) -> int:
        return self.audio.output_sample_rate * self.audio.frame_ms // 1000


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} fits none of {typing.get_args(tp)}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _build(cls: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"[{prefix}]" if prefix else "the top level"
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; known keys: {', '.join(sorted(names))}"
        )
    default = cls()
    kwargs: dict[str, Any] = {}
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        else:
            kwargs[name] = getattr(default, name)
    return cls(**kwargs)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} names no key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words are strings: --set models.tts.engine=espeak
    return key.split("."), value


def resolve_profile(profile: str | Path | None) -> Path:
    """Find a profile by path or by name in ``configs/`` (``default`` → configs/default.toml)."""
    if profile is None:
        profile = "default"
    p = Path(profile)
    if p.is_file():
        return p
    named = CONFIG_DIR / f"{profile}.toml"
    if named.is_file():
        return named
    known = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.toml"))) or "none"
    raise ConfigError(f"no profile {str(profile)!r}: not a file, and not a name in {CONFIG_DIR} ({known})")


def load_config(profile: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a TOML profile and apply dotted overrides.

    Args:
        profile: a path, a profile name in ``configs/``, or None for the default.
        overrides: items like ``"models.llm.threads=1"``.

    Raises:
        ConfigError: unreadable TOML, unknown keys or bad values, naming the key.
    """
    path = resolve_profile(profile)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for item in overrides or []:
        keys, value = _parse_override(item)
        table = data
        for k in keys[:-1]:
            table = table.setdefault(k, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {item!r}: {k} is not a table")
        table[keys[-1]] = value
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a validated Config from a plain dict (as parsed from TOML)."""
    config: Config = _build(Config, data)
    _check(config)
    return config


def _check(config: Config) -> None:
    a = config.audio
    for key, rate in (("audio.input_sample_rate", a.input_sample_rate), ("audio.output_sample_rate", a.output_sample_rate)):
        if rate not in (8000, 16000, 22050, 24000, 32000, 44100, 48000):
            raise ConfigError(f"{key} = {rate} is not a supported rate")
    if a.frame_ms <= 0 or (a.input_sample_rate * a.frame_ms) % 1000 or (a.output_sample_rate * a.frame_ms) % 1000:
        raise ConfigError(
            f"audio.frame_ms = {a.frame_ms} must give a whole number of samples at both rates"
        )
    if not 0.0 < config.turn.vad_threshold <= 1.0:
        raise ConfigError("turn.vad_threshold must lie in (0, 1]")
    if config.models.kind == "codec_lm" and a.frame_ms != 80:
        raise ConfigError("audio.frame_ms must be 80 with models.kind = 'codec_lm' (one Mimi frame)")
    if not 0.0 <= config.models.eou_acoustic.weight <= 1.0:
        raise ConfigError("models.eou_acoustic.weight must lie in [0, 1]")
    if config.models.codec_lm.slots < 1:
        raise ConfigError("models.codec_lm.slots must be at least 1")
    if config.engine.max_sessions < 1:
        raise ConfigError("engine.max_sessions must be at least 1")
    srv = config.server
    for key in ("max_message_bytes", "max_connections_per_ip", "max_connects_per_minute_per_ip", "input_burst_ms", "send_buffer_bytes"):
        if getattr(srv, key) < 1:
            raise ConfigError(f"server.{key} must be at least 1")
    for key in ("idle_timeout_s", "max_session_s", "send_timeout_s"):
        if getattr(srv, key) <= 0:
            raise ConfigError(f"server.{key} must be positive")


def to_dict(config: Config) -> dict[str, Any]:
    """The config as a plain dict (for logs and results files)."""
    return dataclasses.asdict(config)
