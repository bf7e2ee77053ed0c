"""``duplex models check``: is every manifest's weight file installed and intact."""

from __future__ import annotations

import argparse


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    """The ``models`` command."""
    p = sub.add_parser("models", help="model weights: check that every manifest's file is installed")
    msub = p.add_subparsers(dest="models_command", required=True)
    c = msub.add_parser("check", help="verify each model file (presence, size, sha256)")
    c.add_argument("--fast", action="store_true", help="skip the sha256 check")
    c.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from duplex.models.manifest import check_all, load_manifests

    manifests = load_manifests()
    results = check_all(manifests, verify_hash=not args.fast)
    width = max(len(m.name) for m in manifests)
    bad = 0
    for r in results:
        status = "ok" if r.ok else "MISSING" if r.missing else "BAD"
        print(f"{r.manifest.name.ljust(width)}  {r.manifest.stage:8}  {status:7}  {r.detail}")
        bad += not r.ok
    return 1 if bad else 0
