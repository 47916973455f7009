"""benchmarks/hts_bench.py on tiny settings: the live ratio table, then the trace of the stored hts runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import hts_bench  # noqa: E402

# one tiny pair of the digits_mlp family (as tests/pipelines/test_hts_pipeline.py's), run alone with --pairs tiny
TINY_PAIR = ("pairs.tiny={family: digits_mlp, source: {n_train: 200, input_scale: 1.0, label_noise: 0.0}, "
             "target: {n_train: 200, input_scale: 1.0, label_noise: 0.3}}")
TINY = [TINY_PAIR, "epochs=1", "source_evaluations=10", "t_max=11", "repetitions=2", "methods.hts.n_rank_samples=200",
        "methods.hts.g_epochs=20", "methods.no_transfer.n_initial=9"]


@pytest.mark.slow
def test_live_table_then_trace(tmp_path, capsys):
    settings = [arg for item in TINY for arg in ("--set", item)] + ["--pairs", "tiny"]
    assert hts_bench.main([*settings, "--methods", "hts", "no_transfer", "linear", "--store", str(tmp_path / "stores"), "--quiet",
                           "--save", str(tmp_path / "evaluations.csv")]) == 0
    out = capsys.readouterr().out
    assert "| hts |" in out and "| no_transfer |" in out and "| linear |" in out and "t_max = 11" in out
    assert "mean best validation error (± s.e.) after n evaluations" in out and "n = 11 |" in out
    assert (tmp_path / "evaluations.csv").stat().st_size > 0
    assert hts_bench.main([*settings, "--part", "trace", "--store", str(tmp_path / "stores")]) == 0
    trace = capsys.readouterr().out
    assert "tiny, hts: every round of g, 2 repetition(s)" in trace and "st_argmin_at_bound" in trace
