"""Silero VAD on onnxruntime (no torch): the speech probability of each 32 ms frame.

The ONNX model ships inside the ``silero-vad`` wheel (installed with
``--no-deps`` so it does not pull torch).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from duplex.errors import AudioFormatError, ModelNotFound
from duplex.models.shared_weights import WeightsKey, shared_weights

log = logging.getLogger(__name__)

_PACKAGE = "silero_vad"
_FILE = "data/silero_vad.onnx"


def packaged_model_path() -> Path:
    """Path of the ONNX model inside the installed ``silero-vad`` package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "silero-vad is not installed; install it with: pip install --no-deps silero-vad "
            "(or set models.vad.path to a silero_vad.onnx file)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _FILE
    if not path.is_file():
        raise ModelNotFound(f"no VAD weights at {path}; reinstall: pip install --no-deps --force-reinstall silero-vad")
    return path


def _load_session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class SileroVad:
    """Streaming Silero VAD. One instance per stream (it carries the RNN state).

    The onnxruntime session is loaded once per process and shared between instances
    (``shared_weights``; its ``run`` is thread-safe); ``close`` releases this instance's share.
    """

    def __init__(self, model_path: str | None = None, sample_rate: int = 16000, threads: int = 1) -> None:
        if sample_rate not in (8000, 16000):
            raise AudioFormatError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        path = Path(model_path) if model_path else packaged_model_path()
        if not path.is_file():
            raise ModelNotFound(f"no VAD model at {path}; set models.vad.path to silero_vad.onnx")
        self.sample_rate = sample_rate
        self.frame_samples = 512 if sample_rate == 16000 else 256
        self._context_samples = 64 if sample_rate == 16000 else 32
        key = WeightsKey("silero vad", str(path.resolve()), (("threads", threads),))
        self._lease = shared_weights().acquire(key, lambda: _load_session(path, threads), lambda sess: None)
        self._sess = self._lease.weights
        self.reset()

    def close(self) -> None:
        """Release this instance's share of the network. Idempotent."""
        self._lease.release()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._context_samples, dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        if len(frame) != self.frame_samples:
            raise AudioFormatError(f"VAD frame must be {self.frame_samples} samples, got {len(frame)}")
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[None, :]
        out, self._state = self._sess.run(  # type: ignore[attr-defined]
            None, {"input": x, "state": self._state, "sr": np.array(self.sample_rate, dtype=np.int64)}
        )
        self._context = x[0, -self._context_samples :]
        return float(out[0, 0])
