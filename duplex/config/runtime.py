"""The runtime's sections: ``[audio]`` (rates and the tick), ``[engine]`` and ``[server]``."""

from __future__ import annotations

from dataclasses import dataclass, field


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

