"""The web page in a real headless Chromium with a WAV file as its fake microphone: one
spoken turn, and what the page's ``window.duplexStats`` says of it (shared by the page
tests against the plain server and through Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "out" / "test-artifacts"


def page_turn(url: str, mic_wav: Path, screenshot: str) -> tuple[dict[str, Any], list[str]]:
    """Open ``url`` with ``mic_wav`` (looped) as the microphone, wait for the agent's
    first answer (at most 60 s), and return the page's stats and its script errors."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={mic_wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            # Polled with evaluate, not wait_for_function: the server's Content-Security-Policy
            # (no eval) stays enforced, and the page must work under it.
            for _ in range(300):
                if page.evaluate("window.duplexStats && window.duplexStats.agentTexts.length > 0"):
                    break
                page.wait_for_timeout(200)
            page.wait_for_timeout(500)
            stats = page.evaluate("window.duplexStats")
            page.screenshot(path=str(ARTIFACTS / screenshot))
        finally:
            browser.close()
    return stats, errors
