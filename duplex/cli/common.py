"""What every ``duplex`` command shares: the profile options."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config`` (a profile) and ``--set KEY=VALUE`` (overrides of it)."""
    p.add_argument("--config", "-c", default=None, help="profile path or name in configs/ (default: default)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value, e.g. --set models.llm.threads=1 (repeatable)",
    )
