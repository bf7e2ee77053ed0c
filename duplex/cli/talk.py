"""``duplex talk``: a conversation through the microphone and speakers."""

from __future__ import annotations

import argparse
from pathlib import Path

from duplex.cli.common import add_config_args


def add_talk_parser(sub: argparse._SubParsersAction) -> None:
    """The ``talk`` command."""
    p = sub.add_parser("talk", help="talk through the microphone and speakers")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--input-device", default=None, help="input device index or name")
    p.add_argument("--output-device", default=None, help="output device index or name")
    p.add_argument("--save", default=None, metavar="DIR", help="save conversation.wav and events.jsonl here at the end")
    p.add_argument("--duration", type=float, default=None, help="end after this many seconds")
    add_config_args(p)
    p.set_defaults(func=_cmd_talk)


def _cmd_talk(args: argparse.Namespace) -> int:
    from duplex.runtime.runtime import Runtime
    from duplex.transports.microphone import list_devices, talk

    if args.list_devices:
        print(list_devices())
        return 0
    runtime = Runtime.from_config(args.config, args.overrides, clock="realtime")
    print("duplex: talk now (Ctrl-C to end)")
    try:
        talk(
            runtime,
            input_device=_device(args.input_device),
            output_device=_device(args.output_device),
            duration_s=args.duration,
            save_dir=Path(args.save) if args.save else None,
        )
    finally:
        runtime.close()
    if args.save:
        print(f"\nsaved {args.save}/conversation.wav and events.jsonl")
    return 0


def _device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value
