"""The ``duplex`` command line: run, talk, serve, models, bench and eval, a module a
command (``duplex.cli.run`` …; eval's is ``duplex.eval.cli``).

The CLI owns user-facing output (tables, progress bars). Errors the runtime
raises on purpose print one clear line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from duplex.cli.bench import add_bench_parser
from duplex.cli.models import add_models_parser
from duplex.cli.run import add_run_parser
from duplex.cli.serve import add_serve_parser
from duplex.cli.talk import add_talk_parser
from duplex.errors import DuplexError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duplex", description="Full-duplex speech dialogue runtime.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    add_talk_parser(sub)
    add_serve_parser(sub)
    add_models_parser(sub)
    add_bench_parser(sub)

    from duplex.eval.cli import add_eval_parser

    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except DuplexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

