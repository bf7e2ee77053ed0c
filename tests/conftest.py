"""Shared test fixtures: audio makers and the scripted runtime."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Derived weights (the packaged GGUF re-encoded, duplex.models.llamacpp.gguf) are made
# afresh in each test run, so the suite exercises that step; servers it starts inherit it.
if "DUPLEX_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["DUPLEX_CACHE_DIR"] = tempfile.mkdtemp(prefix="duplex-test-cache-")

SR = 16000

# Debian tools the suite drives for real (scripts/system-deps.sh installs them; `make test`
# runs it first). A missing one stops the run before any test rather than skipping tests.
SYSTEM_TOOLS = {
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "chromium": "chromium",
    "pulseaudio": "pulseaudio",
    "pactl": "pulseaudio-utils",
}


def pytest_sessionstart(session: pytest.Session) -> None:
    import shutil

    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise pytest.UsageError(
            f"the tests need the Debian packages {' '.join(missing)}: run `make test` "
            f"(installs them as root) or `sudo apt-get install -y {' '.join(missing)}`"
        )


def tone(seconds: float, freq: float = 300.0, amp: float = 0.2, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    return np.zeros(int(seconds * sr), np.float32)


@pytest.fixture
def scripted_config():
    from duplex.config import config_from_dict

    return config_from_dict({"models": {"kind": "scripted"}})


@pytest.fixture(scope="session")
def echo_speech() -> dict[str, np.ndarray]:
    """The agent's answers (``far``) and the user's questions over them (``near``),
    for the echo tests (tests/echo_path.py)."""
    import echo_path

    return echo_path.make_speech()


@pytest.fixture(scope="session")
def echo_run(echo_speech: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Agent talking alone, then the user talks over it, through webrtc's canceller:
    d80 ms, -12 dB, RT60 0.3 s."""
    import echo_path

    return echo_path.echo_run(echo_speech)
