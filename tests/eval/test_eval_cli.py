"""`duplex eval` on the command line: the default verb, make/run/compare/fdb verbs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import soundfile as sf

from duplex.eval.cli import add_eval_parser, build_eval_parser, normalize_argv
from duplex.eval.scenarios import SCHEMA


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="duplex")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_run_is_the_default_verb():
    assert normalize_argv(["scen", "--out", "x"]) == ["run", "scen", "--out", "x"]
    assert normalize_argv(["compare", "a", "b"]) == ["compare", "a", "b"]
    ns = build_eval_parser().parse_args(
        normalize_argv(["scen", "--config", "scripted", "-j", "2", "--subset", "ci"])
    )
    assert (ns.eval_command, ns.scenarios, ns.config, ns.jobs, ns.subset) == (
        "run",
        "scen",
        "scripted",
        2,
        "ci",
    )


def test_eval_run_then_compare(tmp_path, capsys):
    scen = tmp_path / "scen"
    scen.mkdir()
    x = np.zeros(int(2.5 * 16000), np.float32)
    x[8000:24000] = 0.2 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    sf.write(str(scen / "q.wav"), x, 16000)
    (scen / "q.json").write_text(
        json.dumps(
            {
                "schema": SCHEMA,
                "category": "smooth_turn",
                "expect": [{"behaviour": "take_turn", "end_ms": 1500}],
            }
        )
    )
    for name in ("a", "b"):
        assert (
            _main(
                [
                    "eval",
                    str(scen),
                    "--config",
                    "scripted",
                    "--out",
                    str(tmp_path / name),
                    "-q",
                    "--no-plots",
                ]
            )
            == 0
        )
    assert "TOR smooth turn" in capsys.readouterr().out
    assert _main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    table = capsys.readouterr().out
    assert "response latency p50 / p95 (audible)" in table and "scripted" in table
    assert "endpoint lag" in table and "lead-in" in table
    assert _main(["eval", "fdb-export", str(tmp_path / "a"), str(tmp_path / "fdb")]) == 0
    assert (tmp_path / "fdb" / "smooth_turn_taking" / "1" / "turn_taking.json").is_file()


def test_make_scenarios_writes_the_standard_set(tmp_path, capsys):
    assert _main(["eval", "make-scenarios", str(tmp_path / "s"), "--only", "pause"]) == 0
    assert "wrote 10 scenarios" in capsys.readouterr().out
