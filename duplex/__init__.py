"""duplex: a full-duplex speech dialogue runtime.

The agent listens while it speaks. A frame-clocked, time-sliced loop interleaves
input encoding, decoding and output synthesis every frame, for one user or many.

Typical use::

    from duplex import Runtime

    runtime = Runtime.from_config("configs/default.toml")
    session = runtime.open_session()
    session.push_audio(pcm_float32_16k)
    async for event in session.events():
        ...
"""

from __future__ import annotations

__version__ = "0.1.0"

from duplex.runtime.runtime import Runtime  # noqa: E402

__all__ = ["Runtime", "__version__"]
