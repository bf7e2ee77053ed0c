"""Hand freed heap memory back to the operating system after an answer.

The models' native code (CTranslate2, llama.cpp, onnxruntime) allocates buffers of many
sizes: a 3 s Whisper window for one final, a 12 s one for a wider look, a long prompt
pass, a long answer's audio. glibc's malloc keeps what they free in its arenas, and the
process's RSS counts those pages. ``malloc_trim(0)`` returns them; it takes under 1 ms
here, so it runs when an answer has finished playing, at most once per interval for the
whole process. Without glibc (macOS, musl) it does nothing.

Measured in ``duplex bench soak`` (2026-12-01): a trim once a minute gave back 10-20 MB
each time, and held RSS at 1069 → 1091 MB over minutes 4-29, against 1084 → 1162 MB
untrimmed. It does not stop the occasional step of 40-80 MB (minutes 9 and 35 of one
60-minute run, none in a 14-minute run); those pages stay in use, most likely a native
allocator growing to a new largest buffer (not traced). Python objects stay at ~56 k.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _glibc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_trim = _glibc_trim()
_lock = threading.Lock()
_last = -float("inf")


def available() -> bool:
    """Can this process trim its heap (glibc)?"""
    return _trim is not None


def trim(min_interval_s: float) -> bool:
    """Return freed heap pages to the OS, unless a trim ran less than ``min_interval_s``
    ago in this process (any session). True if it trimmed."""
    global _last
    if _trim is None or min_interval_s <= 0:
        return False
    with _lock:
        now = time.monotonic()
        if now - _last < min_interval_s:
            return False
        _last = now
    _trim()
    return True
