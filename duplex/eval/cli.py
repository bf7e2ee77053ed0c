"""``duplex eval``: scenario sets → duplex-behaviour metrics, reports and plots.

Wire it into the main parser with ``add_eval_parser(subparsers)``. Verbs::

    duplex eval SCENARIOS --config PROFILE --out DIR [--jobs N] [--subset ci]
    duplex eval make-scenarios DIR [--seed S] [--set human]
    duplex eval fetch-human-speech          # the recorded human speech (Debian packages)
    duplex eval families OUT                # per-family figures of a run, held-out apart
    duplex eval compare A B
    duplex eval fdb-export RESULTS OUT
    duplex eval fdb-import FDB_DIR OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

VERBS = (
    "make-scenarios",
    "run",
    "compare",
    "fdb-export",
    "fdb-import",
    "fdb-score",
    "fetch-human-speech",
    "families",
)


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``duplex`` subparsers.

    ``eval`` takes the rest of the command line as is and parses it with
    ``build_eval_parser``, so that ``run`` can be the default verb
    (``duplex eval SCENARIOS --out DIR``).
    """
    p = subparsers.add_parser(
        "eval",
        prefix_chars="+",  # every token goes to the eval parser, options included
        add_help=False,
        help="evaluate duplex behaviour on a scenario set (TOR, latencies, false interruptions, RTF)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=_dispatch)
    return p


def _dispatch(args: argparse.Namespace) -> int:
    ns = build_eval_parser().parse_args(normalize_argv(list(args.argv)))
    return int(ns.func(ns) or 0)


def build_eval_parser() -> argparse.ArgumentParser:
    """The parser of ``duplex eval`` and its verbs."""
    p = argparse.ArgumentParser(
        prog="duplex eval",
        description=(
            "Run a scenario folder through the runtime (offline clock, closed loop) and score it. "
            "`duplex eval SCENARIOS ...` is short for `duplex eval run SCENARIOS ...`."
        ),
    )
    vsub = p.add_subparsers(dest="eval_command", required=True)

    r = vsub.add_parser("run", help="run and score a scenario folder")
    r.add_argument("scenarios", help="folder of NAME.wav + NAME.json scenario pairs")
    r.add_argument("--out", "-o", default="out/eval", help="output folder")
    r.add_argument(
        "--jobs", "-j", type=int, default=1, help="worker processes (each loads the model once)"
    )
    r.add_argument(
        "--subset", default=None, help="only scenarios with this tag (the standard set tags `ci`)"
    )
    r.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="PREFIX",
        help="only scenario ids starting with PREFIX (repeatable)",
    )
    r.add_argument("--no-plots", action="store_true", help="skip the per-scenario timeline plots")
    r.add_argument(
        "--no-audio",
        action="store_true",
        help="do not keep per-scenario WAVs (fdb-export needs them)",
    )
    r.add_argument(
        "--tail-s", type=float, default=15.0, help="at most this long on silence after the input"
    )
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.add_argument(
        "--config", "-c", default=None, help="profile path or name in configs/ (default: default)"
    )
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value (repeatable)",
    )
    r.set_defaults(func=_cmd_run)

    m = vsub.add_parser(
        "make-scenarios", help="write the standard scenario set (espeak-ng + sox, seeded)"
    )
    m.add_argument("dir", help="output folder")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="GROUP",
        help="only these groups (smooth, pause, echo, ...)",
    )
    m.add_argument(
        "--set",
        dest="scenario_set",
        choices=("standard", "human"),
        default="standard",
        help="standard (espeak-ng) or human (recorded speech families: duplex/eval/human_scenarios.py)",
    )
    m.set_defaults(func=_cmd_make)

    c = vsub.add_parser("compare", help="side-by-side table of two result folders")
    c.add_argument("a")
    c.add_argument("b")
    c.set_defaults(func=_cmd_compare)

    e = vsub.add_parser("fdb-export", help="write a result folder in Full-Duplex-Bench's layout")
    e.add_argument("results", help="a `duplex eval` output folder")
    e.add_argument("out", help="where the {task}/{ID}/ folders go")
    e.set_defaults(func=_cmd_fdb_export)

    i = vsub.add_parser("fdb-import", help="turn Full-Duplex-Bench samples into a scenario folder")
    i.add_argument("fdb_dir", help="a Full-Duplex-Bench task folder (or a tree of them)")
    i.add_argument("out", help="scenario folder to write")
    i.set_defaults(func=_cmd_fdb_import)

    s = vsub.add_parser(
        "fdb-score", help="score Full-Duplex-Bench task folders with its v1.0 TOR/latency rules"
    )
    s.add_argument("dirs", nargs="+", help="task folders ({task}/{ID}/output.json …)")
    s.set_defaults(func=_cmd_fdb_score)

    h = vsub.add_parser(
        "fetch-human-speech",
        help="download and unpack the Debian packages of human speech (no root)",
    )
    h.add_argument("--force", action="store_true", help="download again even if unpacked")
    h.set_defaults(func=_cmd_fetch_human)

    f = vsub.add_parser("families", help="per-family figures of a run (human-speech families)")
    f.add_argument("results", help="a `duplex eval` output folder")
    f.set_defaults(func=_cmd_families)
    return p


def normalize_argv(argv: list[str]) -> list[str]:
    """Make ``run`` the default verb: ``SCEN --out X`` → ``run SCEN --out X``."""
    if not argv or argv[0] in VERBS or argv[0] in ("-h", "--help"):
        return list(argv)
    return ["run", *argv]


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.config import load_config
    from duplex.eval.report import headline_rows
    from duplex.eval.runner import RunOptions, run_eval
    from duplex.eval.scenarios import load_scenarios

    config = load_config(args.config, args.overrides)
    scenarios = load_scenarios(args.scenarios, subset=args.subset, only=args.only)
    bar = tqdm(
        total=len(scenarios), unit="scenario", desc=f"eval {config.name}", disable=args.quiet
    )
    fails: list[str] = []

    def progress(sid: str, result: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{sid}: {result['status']}")
        if result["status"] == "error":
            fails.append(f"{sid}: {result['errors'][0]}")

    options = RunOptions(plots=not args.no_plots, write_audio=not args.no_audio, tail_s=args.tail_s)
    meta = {
        "scenarios_dir": str(args.scenarios),
        "subset": args.subset,
        "overrides": args.overrides,
    }
    doc = run_eval(
        scenarios, config, args.out, jobs=args.jobs, options=options, progress=progress, meta=meta
    )
    bar.close()
    rows = headline_rows(doc["summary"])
    width = max(len(m) for m, _, _ in rows)
    for m, v, b in rows:
        print(f"{m.ljust(width)}  {v}  {b}")
    from duplex.eval.families import write_family_report

    families = write_family_report(args.out)  # human-speech families, held-out apart
    if families:
        print("\n" + families)
    for f in fails:
        print(f"error: {f}", file=sys.stderr)
    print(f"\nwrote {args.out}/results.json, report.md, latency_cdf.png and scenarios/*/")
    return 1 if fails else 0


def _cmd_make(args: argparse.Namespace) -> int:
    from duplex.eval.generate import make_scenarios
    from duplex.eval.human_scenarios import make_human_scenarios

    make = make_human_scenarios if args.scenario_set == "human" else make_scenarios
    written = make(args.dir, seed=args.seed, only=args.only)
    ci = sum(1 for s in written if "ci" in s.tags)
    print(f"wrote {len(written)} scenarios ({ci} tagged ci) to {args.dir}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from duplex.eval.compare import compare_table, load_results

    print(compare_table(load_results(args.a), load_results(args.b), args.a, args.b))
    return 0


def _cmd_fdb_export(args: argparse.Namespace) -> int:
    from duplex.eval.fdb import export_fdb

    counts = export_fdb(args.results, args.out)
    for task, n in sorted(counts.items()):
        print(f"{task}: {n} samples")
    print(
        f"wrote {args.out}; score with Full-Duplex-Bench: python evaluate.py --task TASK --root_dir {args.out}/TASK"
    )
    return 0


def _cmd_fdb_import(args: argparse.Namespace) -> int:
    from duplex.eval.fdb import import_fdb

    ids = import_fdb(args.fdb_dir, args.out)
    print(f"wrote {len(ids)} scenarios to {args.out}")
    return 0


def _cmd_fdb_score(args: argparse.Namespace) -> int:
    from duplex.eval.fdb import score_fdb_layout

    for d in args.dirs:
        print(d, json.dumps(score_fdb_layout(d)))
    return 0


def _cmd_fetch_human(args: argparse.Namespace) -> int:
    from duplex.eval.human_speech import fetch_human_speech, human_clips

    where = fetch_human_speech(force=args.force)
    clips = human_clips()
    print(f"{len(clips)} human recordings under {where} (duplex/data/human_speech.json)")
    return 0


def _cmd_families(args: argparse.Namespace) -> int:
    from duplex.eval.families import write_family_report

    table = write_family_report(args.results)
    if table is None:
        print(f"no scenario in {args.results} has a family: tag", file=sys.stderr)
        return 1
    print(table)
    return 0
