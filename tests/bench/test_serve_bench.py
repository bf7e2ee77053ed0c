"""``duplex bench serve``: clients over loopback, with the server's tick real time and memory."""

from __future__ import annotations

import json
from pathlib import Path

from duplex.bench.serve import run_serve_bench


def test_each_client_count_reports_latency_real_time_and_server_memory(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    report = run_serve_bench([1, 2], turns=1, gap_s=2.5, config_name="scripted", out=out)
    for n in ("1", "2"):
        r = report["results"][n]
        assert r["answers"] == r["expected_answers"] == int(n), r
        assert r["ticks"] > 0 and 0 < r["tick_rtf"]["p50"] < 1.0
        peak = r["server_memory_peak"]
        assert 0 < peak["uss_mb"] <= peak["rss_mb"]
        assert r["uss_per_session_mb"] < peak["uss_mb"]
    assert "USS per session" in report["table"] and "server with no client" in report["table"]
    saved = json.loads(out.read_text())
    assert saved["results"]["2"]["server_memory_peak"] == report["results"]["2"]["server_memory_peak"]
