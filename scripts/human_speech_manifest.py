"""Rebuild duplex/data/human_speech.json from unpacked asterisk-core-sounds packages.

The manifest names each human recording the evaluation uses: its Debian package, path,
sha256, transcript (from the package's core-sounds-LANG.txt), speaker, licence, style and
whether it is held out. Run once after unpacking the packages listed in SOURCES of
duplex/eval/human_speech.py (``duplex eval fetch-human-speech`` does that), with the
transcript packages unpacked too:

    python scripts/human_speech_manifest.py ROOT_OF_UNPACKED_DEBS > duplex/data/human_speech.json
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
from pathlib import Path

from duplex.eval.human_speech import SOURCES, is_held_out

# Prompts read with continuing intonation (the sentence goes on after them).
CONTINUES = {
    "at-tone-time-exactly",
    "conf-enteringno",
    "queue-holdtime",
    "vm-num-i-have",
    "conf-thereare",
    "queue-thereare",
    "vm-theperson",
    "vm-duration",
    "queue-quantity1",
    "dir-pls-enter",
    "if-correct-press",
    "num-was-successfully",
    "privacy-to-blacklist-last-caller",
    "confbridge-dec-list-vol-in",
    "confbridge-dec-talk-vol-in",
    "confbridge-inc-list-vol-in",
    "confbridge-inc-talk-vol-in",
    "confbridge-leave-in",
    "confbridge-lock-in",
    "confbridge-menu-exit-in",
    "confbridge-mute-in",
    "confbridge-remove-last-in",
    "confbridge-rest-list-vol-in",
    "confbridge-rest-talk-vol-in",
    "vm-onefor-full",
}
SKIP = re.compile(r"^(silence|letters|phonetic|dictate|followme)/|\[|\(|www|\*|#")


def entries(txt: Path) -> dict[str, str]:
    out = {}
    with gzip.open(txt, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ": " not in line:
                continue
            name, text = line.split(": ", 1)
            out[name.strip()] = " ".join(text.split())
    return out


def main(root: Path) -> None:
    clips = []
    for key, src in SOURCES.items():
        base = root / src.root
        texts = entries(
            root
            / f"usr/share/doc/asterisk-core-sounds-{src.language}/core-sounds-{src.language}.txt.gz"
        )
        for name, text in sorted(texts.items()):
            wav = base / f"{name}.wav"
            if not wav.is_file() or SKIP.search(name) or SKIP.search(text):
                continue
            words = len(text.split())
            if name.startswith("digits/") and re.fullmatch(r"digits/\d", name):
                style = "digit"
            elif name in CONTINUES:
                style = "continues"
            elif text.endswith("?"):
                style = "question"
            elif (
                4 <= words <= 40
                and text[-1] in ".!"
                and not text.startswith("...")
                and not text.endswith("...")
            ):
                style = "sentence"
            else:
                continue
            if src.language != "en" and style != "sentence":
                continue
            cid = f"{key}/{name}"
            clips.append(
                {
                    "id": cid,
                    "source": key,
                    "file": f"{name}.wav",
                    "sha256": hashlib.sha256(wav.read_bytes()).hexdigest(),
                    "text": text,
                    "style": style,
                    "held_out": is_held_out(cid, src),
                }
            )
    json.dump(
        {"schema": "duplex.human_speech/1", "clips": clips},
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
