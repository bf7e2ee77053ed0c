"""Acoustic end-of-turn score: Smart Turn v3.2 on onnxruntime, P(turn end) from audio.

Smart Turn v3.2 (Daily, BSD-2-Clause) is a Whisper-tiny encoder with a small
classification head, trained on human speech cut at turn ends and at mid-turn
pauses. It reads the last 8 s of the user's audio (left-padded with zeros when
shorter) as Whisper log-mel features and returns the probability that the turn
is over. It hears what a transcript cannot: pitch and energy falling or holding
at the pause, a lengthened last syllable.

The weights ship inside the ``pipecat-ai`` wheel. They are extracted from the
wheel (downloaded with ``--no-deps``; pipecat's own dependencies are never
installed) by ``models/scripts/fetch_smart_turn.py`` (``make install`` runs it) into
the Python environment's ``share/duplex`` (``weights_dir``), and checked against
``models/smart-turn-v3.2.toml``.

The log-mel features are written here with numpy, from the definition of
``transformers.WhisperFeatureExtractor`` (n_fft 400, hop 160, 80 Slaney mel
bands, log10 clamped 8 decades below the maximum); the test compares them with
the numpy port that ships in the same wheel.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex.errors import AudioFormatError, ModelNotFound
from duplex.models.shared_weights import WeightsKey, shared_weights

_LOGGER = logging.getLogger(__name__)

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
INSTALL_COMMAND = "python models/scripts/fetch_smart_turn.py (part of `make install`)"

SAMPLE_RATE = 16000
WINDOW_S = 8  # the model reads the last 8 s
_N_FFT = 400
_HOP = 160
_N_MELS = 80
_N_FRAMES = WINDOW_S * SAMPLE_RATE // _HOP  # 800


def weights_dir() -> Path:
    """Where weights extracted from wheels live: the Python environment's ``share/duplex``
    (they go with the environment, as the weights that ship inside installed packages)."""
    return Path(sys.prefix) / "share" / "duplex"


def default_model_path() -> Path:
    """Where ``fetch_smart_turn.py`` puts the weights extracted from the pipecat-ai wheel."""
    return weights_dir() / MODEL_FILE


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    lin = 3.0 * hz / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, lin)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    lin = 200.0 * mel / 3.0
    log = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, log, lin)


def _mel_filters() -> np.ndarray:
    """Slaney-normalised triangular filters, shape (n_fft // 2 + 1, 80), 0 Hz to 8 kHz."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), _N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)
    rising = (bins[:, None] - edges[None, :-2]) / np.diff(edges)[None, :-1]
    falling = (edges[None, 2:] - bins[:, None]) / np.diff(edges)[None, 1:]
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS = _mel_filters()
_WINDOW = np.hanning(_N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window


def fit_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of 16 kHz ``audio``, left-padded with zeros when shorter."""
    n = WINDOW_S * SAMPLE_RATE
    x = np.asarray(audio, dtype=np.float32)[-n:]
    return np.pad(x, (n - len(x), 0)) if len(x) < n else x


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper log-mel features of exactly 8 s of 16 kHz audio: float32, shape (80, 800).

    The waveform is normalised to zero mean and unit variance first (the extractor's
    ``do_normalize``), as Smart Turn was trained.

    Raises:
        AudioFormatError: ``audio`` is not one-dimensional or not 8 s long.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or len(x) != WINDOW_S * SAMPLE_RATE:
        raise AudioFormatError(
            f"log_mel takes 1-D audio of {WINDOW_S * SAMPLE_RATE} samples (use fit_window), got shape {x.shape}"
        )
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(power @ _FILTERS, 1e-10)).T[:, :_N_FRAMES]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def _load_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class AcousticScore:
    """P(the turn is over) from the audio, and what it cost."""

    probability: float
    audio_ms: float  # how much of the user's audio the model heard (at most 8000)
    compute_ms: float


class SmartTurn:
    """Smart Turn v3.2: the probability that the user's turn ends at this pause.

    The onnxruntime session is loaded once per process and shared between instances
    (``shared_weights``; its ``run`` is thread-safe); ``close`` releases this share.
    """

    def __init__(self, model_path: str | None = None, *, threads: int = 1) -> None:
        """Load the model.

        Args:
            model_path: the ``smart-turn-v3.2-cpu.onnx`` file; None for the copy
                extracted from the pipecat-ai wheel (``default_model_path``).
            threads: onnxruntime intra-op threads.

        Raises:
            ModelNotFound: no file at the path; the message names the install command.
        """
        path = Path(model_path).expanduser() if model_path else default_model_path()
        if not path.is_file():
            raise ModelNotFound(
                f"no Smart Turn weights at {path}; extract them from the pipecat-ai wheel with: "
                f"{INSTALL_COMMAND}, or set models.eou_acoustic.path to a smart-turn-v3.2-cpu.onnx file"
            )
        key = WeightsKey("smart turn", str(path.resolve()), (("threads", threads),))
        self._lease = shared_weights().acquire(key, lambda: _load_session(path, threads), lambda s: None)
        self._session: Any = self._lease.weights
        self.model_path = path

    def score(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> AcousticScore:
        """Score the user's audio up to now (speech and the pause after it, mono float).

        Only the last 8 s matter. Audio at another rate is resampled to 16 kHz.

        Raises:
            AudioFormatError: ``audio`` is not mono or is empty.
        """
        import time

        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise AudioFormatError(f"Smart Turn scores non-empty mono audio, got shape {x.shape}")
        t0 = time.perf_counter()
        if sample_rate != SAMPLE_RATE:
            import soxr

            x = soxr.resample(x[-(WINDOW_S + 1) * sample_rate :], sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
        heard_ms = min(len(x), WINDOW_S * SAMPLE_RATE) / SAMPLE_RATE * 1000.0
        features = log_mel(fit_window(x))[None]
        if self._session is None:
            raise ModelNotFound("this SmartTurn is closed; make a new one")
        (out,) = self._session.run(None, {"input_features": features})[:1]
        p = float(np.asarray(out).reshape(-1)[0])
        return AcousticScore(p, heard_ms, (time.perf_counter() - t0) * 1000.0)

    def close(self) -> None:
        """Release this instance's share of the session. Idempotent."""
        if self._session is not None:
            self._session = None
            self._lease.release()
