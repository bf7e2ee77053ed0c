"""The web page in a real headless Chromium, with a WAV file as the fake microphone,
against ``duplex serve``'s server and the real default models."""

from __future__ import annotations

import numpy as np
import pytest

from duplex.audio.wav import write_wav
from duplex.bench.speech import speak
from duplex.runtime.runtime import Runtime
from duplex.transports.server import BackgroundServer

from browser_page import CHROMIUM, page_turn

TOKEN = "browser-test-token"  # the page takes it from its URL


@pytest.fixture(scope="module")
def live_server():
    runtime = Runtime.from_config("default", clock="realtime")
    with BackgroundServer(runtime, token=TOKEN) as server:
        yield server
    runtime.close()


@pytest.mark.slow
def test_browser_completes_a_spoken_turn_and_plays_the_answer(live_server, tmp_path):
    # Chromium loops the file: speech, then a long silence so the agent can answer.
    mic = tmp_path / "mic.wav"
    write_wav(mic, np.concatenate([np.zeros(16000 * 3, np.float32), speak("What is the capital of France?", "en-us+f3"), np.zeros(16000 * 20, np.float32)]), 16000)
    stats, errors = page_turn(f"http://127.0.0.1:{live_server.port}/?autostart=1&processing=off&token={TOKEN}", mic, "browser.png")
    assert not errors, errors
    assert any("capital" in t.lower() for t in stats["userFinals"]), stats["userFinals"]
    assert stats["agentTexts"][0].strip()  # an answer (its relevance is tested offline, in test_cli_run)
    assert stats["audioBytes"] > 16000  # agent PCM arrived
    assert stats["playedSamples"] > 8000  # and the player worklet played it
    assert stats["latencies"] and stats["latencies"][0] > 0


def test_the_page_asks_for_the_token_when_its_url_has_none(tmp_path):
    """Scripted model: the page learns from /healthz that a token is needed, asks for it
    (a prompt), connects with it and gets an answer; the page runs under its CSP."""
    from playwright.sync_api import sync_playwright

    from duplex.config import config_from_dict
    from duplex.models.scripted import scripted_model

    cfg = config_from_dict({"models": {"kind": "scripted"}})
    runtime = Runtime(cfg, model=scripted_model(cfg, script=["Hello there."]), clock="realtime")
    mic = tmp_path / "mic.wav"
    t = np.arange(16000) / 16000
    write_wav(mic, np.concatenate([np.zeros(8000, np.float32), (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), np.zeros(16000 * 6, np.float32)]), 16000)
    asked: list[str] = []
    with BackgroundServer(runtime, token=TOKEN) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)

            def answer(dialog) -> None:  # noqa: ANN001
                asked.append(dialog.message)
                dialog.accept(TOKEN)

            page.on("dialog", answer)
            page.goto(f"http://127.0.0.1:{server.port}/?autostart=1&processing=off")
            for _ in range(150):
                if page.evaluate("window.duplexStats.agentTexts.length > 0"):
                    break
                page.wait_for_timeout(200)
            stats = page.evaluate("window.duplexStats")
        finally:
            browser.close()
    runtime.close()
    assert asked and "token" in asked[0]
    assert not errors, errors
    assert stats["agentTexts"], stats
