"""Recordings of real human speech for the evaluation, from Debian packages.

The voice prompts of the Asterisk PBX are studio recordings of professional
voice talents reading whole sentences, lists of digits and sentence fragments
that continue ("The estimated hold time is currently ..."), with transcripts.
Debian ships them as ``asterisk-core-sounds-LANG-wav`` (8 kHz, 16-bit mono):

| source | package | speaker | licence |
|---|---|---|---|
| ``en`` | asterisk-core-sounds-en-wav 1.6.1-1 | Allison Smith (US English, female) | CC-BY-SA-3.0 |
| ``fr`` | asterisk-core-sounds-fr-wav 1.6.1-1 | June Wallack (Canadian French, female) | CC-BY-SA-3.0 |
| ``it`` | asterisk-core-sounds-it-wav 1.6.1-1 | Carlo Flora (Italian, male) | CC-BY-3.0 |

No audio is kept in git. ``duplex/data/human_speech.json`` (the manifest) names
each clip the scenarios use: source, file, sha256, transcript, style and split.
The files come from the installed package (``/usr/share/asterisk/sounds``) or
from a cache that :func:`fetch_human_speech` fills with ``apt-get download`` and
``dpkg -x`` (no root needed); every file is checked against its sha256.

**Held-out split.** A clip is held out when its source is a held-out speaker
(``it``), or, for the other sources, when the first byte of sha256 of its id is
below 64 (a quarter of the recordings). The split is by speaker and recording,
deterministic, and never changes with the seed. Tune on ``held_out=False`` only.

Other helpers use :func:`human_clips` for paths, transcripts, speakers and licences.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from duplex.audio.resample import resample
from duplex.errors import DuplexError

log = logging.getLogger(__name__)

MANIFEST = "human_speech.json"
SYSTEM_ROOT = Path("/")


class HumanSpeechMissing(DuplexError):
    """The Debian packages holding the human recordings are neither installed nor cached."""


@dataclass(frozen=True)
class SpeechSource:
    """One Debian package of recordings by one speaker."""

    package: str
    version: str
    deb_sha256: str
    root: str  # folder of the WAVs inside the package
    speaker: str
    language: str
    licence: str
    held_out: bool  # every recording of this speaker is held out


SOURCES: dict[str, SpeechSource] = {
    "en": SpeechSource(
        "asterisk-core-sounds-en-wav",
        "1.6.1-1",
        "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
        "usr/share/asterisk/sounds/en_US_f_Allison",
        "Allison Smith",
        "en",
        "CC-BY-SA-3.0",
        False,
    ),
    "fr": SpeechSource(
        "asterisk-core-sounds-fr-wav",
        "1.6.1-1",
        "8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e",
        "usr/share/asterisk/sounds/fr_CA_f_June",
        "June Wallack",
        "fr",
        "CC-BY-SA-3.0",
        False,
    ),
    "it": SpeechSource(
        "asterisk-core-sounds-it-wav",
        "1.6.1-1",
        "5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb",
        "usr/share/asterisk/sounds/it_IT_m_Carlo",
        "Carlo Flora",
        "it",
        "CC-BY-3.0",
        True,
    ),
}


@dataclass(frozen=True)
class HumanClip:
    """One human recording: where it is, what is said, who said it, under which licence.

    ``style`` is ``sentence`` (a finished sentence), ``continues`` (a fragment read
    with continuing intonation), ``question`` or ``digit`` (one digit, 0–9).
    """

    id: str
    path: Path
    text: str
    speaker: str
    language: str
    licence: str
    package: str
    style: str
    held_out: bool
    sha256: str

    def load(self, rate: int = 16000) -> np.ndarray:
        """The clip as float32 mono at ``rate``, checked against its sha256."""
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise HumanSpeechMissing(
                f"{self.path} does not match its sha256 in duplex/data/{MANIFEST}; "
                f"reinstall {self.package} or run `duplex eval fetch-human-speech --force`"
            )
        x, sr = sf.read(str(self.path), dtype="float32")
        x = np.asarray(x, np.float32)
        if x.ndim > 1:
            x = x.mean(axis=1)
        return resample(x, int(sr), rate) if sr != rate else x


def is_held_out(clip_id: str, source: SpeechSource) -> bool:
    """The deterministic split: a held-out speaker, or a quarter of the recordings by hash."""
    return source.held_out or hashlib.sha256(clip_id.encode()).digest()[0] < 64


def cache_dir() -> Path:
    """Where fetched packages are unpacked (``$DUPLEX_HUMAN_SPEECH`` overrides)."""
    env = os.environ.get("DUPLEX_HUMAN_SPEECH")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "duplex" / "human-speech"


def source_dir(key: str) -> Path:
    """The folder holding ``key``'s WAVs: the installed package, else the cache.

    Raises:
        HumanSpeechMissing: neither has it; the message says how to get it.
    """
    src = SOURCES[key]
    for root in (SYSTEM_ROOT, cache_dir()):
        d = root / src.root
        if d.is_dir():
            return d
    raise HumanSpeechMissing(
        f"no human recordings of {src.speaker} ({src.package}); run "
        f"`duplex eval fetch-human-speech` (apt-get download, no root) or "
        f"`apt-get install {src.package}`"
    )


@cache
def _manifest() -> dict:
    text = resources.files("duplex.data").joinpath(MANIFEST).read_text(encoding="utf-8")
    return json.loads(text)


def human_clips(
    *,
    held_out: bool | None = None,
    style: str | None = None,
    language: str | None = None,
) -> list[HumanClip]:
    """The human recordings in the manifest, with paths on this machine.

    Args:
        held_out: True for the held-out part only, False for the tuning part, None for both.
        style: keep one style (``sentence``, ``continues``, ``question``, ``digit``).
        language: keep one language (``en``, ``fr``, ``it``).

    Raises:
        HumanSpeechMissing: a needed package is neither installed nor fetched.
    """
    out = []
    dirs: dict[str, Path] = {}
    for c in _manifest()["clips"]:
        src = SOURCES[c["source"]]
        if held_out is not None and bool(c["held_out"]) != held_out:
            continue
        if style is not None and c["style"] != style:
            continue
        if language is not None and src.language != language:
            continue
        if c["source"] not in dirs:
            dirs[c["source"]] = source_dir(c["source"])
        out.append(
            HumanClip(
                id=c["id"],
                path=dirs[c["source"]] / c["file"],
                text=c["text"],
                speaker=src.speaker,
                language=src.language,
                licence=src.licence,
                package=f"{src.package}={src.version}",
                style=c["style"],
                held_out=bool(c["held_out"]),
                sha256=c["sha256"],
            )
        )
    return out


def fetch_human_speech(dest: Path | None = None, *, force: bool = False) -> Path:
    """Download and unpack every source package into ``dest`` (default :func:`cache_dir`).

    Uses ``apt-get download PACKAGE=VERSION`` (Debian's mirror, no root) and
    ``dpkg -x``; each .deb is checked against its sha256 first.

    Raises:
        HumanSpeechMissing: apt-get or dpkg is missing, or a download fails or mismatches.
    """
    dest = dest or cache_dir()
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    if apt is None or dpkg is None:
        raise HumanSpeechMissing(
            "apt-get and dpkg are needed to fetch the human recordings (Debian packages "
            f"{', '.join(s.package for s in SOURCES.values())}); unpack them by hand into {dest}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for src in SOURCES.values():
        if (dest / src.root).is_dir() and not force:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [apt, "download", f"{src.package}={src.version}"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
            debs = list(Path(tmp).glob("*.deb"))
            if proc.returncode != 0 or len(debs) != 1:
                raise HumanSpeechMissing(
                    f"apt-get download {src.package}={src.version} failed: {proc.stderr.strip()}"
                )
            digest = hashlib.sha256(debs[0].read_bytes()).hexdigest()
            if digest != src.deb_sha256:
                raise HumanSpeechMissing(
                    f"{debs[0].name} has sha256 {digest}, expected {src.deb_sha256}"
                )
            subprocess.run([dpkg, "-x", str(debs[0]), str(dest)], check=True)
        log.info("unpacked %s into %s", src.package, dest)
    return dest
