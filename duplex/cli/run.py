"""``duplex run``: a WAV file through the runtime on the offline clock."""

from __future__ import annotations

import argparse

from duplex.cli.common import add_config_args


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    """The ``run`` command."""
    p = sub.add_parser("run", help="run a WAV file through the runtime (offline clock)")
    p.add_argument("input", help="mono WAV at the profile's input rate (16 kHz by default)")
    p.add_argument("--out", "-o", default="out/run", help="output folder")
    p.add_argument("--resample", action="store_true", help="accept other sample rates by resampling")
    p.add_argument("--no-plot", action="store_true", help="skip timeline.png")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_config_args(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.config import load_config
    from duplex.report.summary import format_summary
    from duplex.transports.files import run_file

    config = load_config(args.config, args.overrides)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="frame", desc="run", disable=total < 300 or args.quiet, leave=False)
        bar.update(done - bar.n)

    result = run_file(
        args.input, args.out, config, allow_resample=args.resample, plot=not args.no_plot, progress=progress
    )
    if bar is not None:
        bar.close()
    print(format_summary(result.summary))
    print(f"\nwrote {result.out_dir}/conversation.wav, events.jsonl, summary.json" + ("" if args.no_plot else ", timeline.png"))
    return 0
