"""``duplex bench serve --soak``, shortened: a real ``duplex serve`` process under
every kind of misbehaving client, while one client keeps getting answers."""

from __future__ import annotations

import pytest

from duplex.bench.serve_soak import run_serve_soak


@pytest.mark.slow
def test_a_short_serve_soak_keeps_the_well_behaved_client_talking(tmp_path):
    report = run_serve_soak(0.5, quiet_s=10, out=tmp_path / "soak.json")
    assert report["server_exit_code"] == 0
    assert report["client_failure_count"] == 0, report["client_failures"]
    assert report["answers"]["quiet"] >= 1 and report["answers"]["load"] >= 2
    assert all(n >= 1 for n in report["misbehaviours"].values()), report["misbehaviours"]
    assert report["healthz_ms"]["count"] > 50
    assert report["healthz_ms"]["p99"] < 250  # the goal is 50 ms; CI machines are shared
    assert (tmp_path / "soak.json").is_file()
