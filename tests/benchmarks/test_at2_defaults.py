"""Issue 31's rule for AT2's defaults (benchmarks/at2_defaults.py) on known tables."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from at2_defaults import EPS, load_sets, paired, rule_scores  # noqa: E402


def _write(folder: Path, prefix: str, label: str, regrets: dict[str, list[tuple[float, float, float]]]) -> None:
    """One long table: per method, per pair, R_25, R_50, R_100 (rows at q = 25, 50, 100 only)."""
    rows = []
    for method, per_pair in regrets.items():
        for p, values in enumerate(per_pair):
            for q, r in zip((25, 50, 100), values):
                rows.append({"method": method, "pair": f"p{p}", "repetition": 0, "seed": 1000 * p, "q": q, "regret": r, "wall_time_s": 1.0 + p})
    pd.DataFrame(rows).to_csv(folder / f"{prefix}_{label}.csv", index=False)


def test_the_rule_takes_the_worst_ratio_to_the_best_practitioner_per_set_and_q(tmp_path):
    practitioners = {"per_task_screening": [(0.2, 0.04, 0.010), (0.2, 0.04, 0.010)],
                     "transfer_screening": [(0.2, 0.02, 0.030), (0.2, 0.02, 0.030)],
                     "portfolio_zero_shot": [(0.2, 0.05, 0.050), (0.2, 0.05, 0.050)],
                     "zero_shot": [(0.05, 0.03, 0.02), (0.05, 0.03, 0.02)]}
    _write(tmp_path, "val_s0", "practitioners", practitioners)
    _write(tmp_path, "val_s0", "a", {"a": [(0.1, 0.021, 0.019), (0.1, 0.021, 0.021)]})
    _write(tmp_path, "val_s0", "b", {"b": [(0.1, 0.041, 0.011), (0.1, 0.041, 0.011)]})
    sets = load_sets(tmp_path, {"set": ("val_s0",)})
    scores = rule_scores(sets, ["a", "b"])
    # a: R_50 0.021 vs transfer_screening's 0.02, R_100 0.020 vs per_task_screening's 0.010
    assert scores.loc["a", "score"] == pytest.approx((0.020 + EPS) / (0.010 + EPS))
    assert scores.loc["b", "score"] == pytest.approx((0.041 + EPS) / (0.020 + EPS))
    assert scores.loc["a", "score"] < scores.loc["b", "score"]
    # a candidate missing from a set has no score
    assert np.isnan(rule_scores({**sets, "other": sets["set"][sets["set"].method != "a"]}, ["a"]).loc["a", "score"])


def test_paired_difference_and_its_standard_error(tmp_path):
    _write(tmp_path, "test_s0", "x", {"x": [(0.1, 0.1, 0.03), (0.1, 0.1, 0.01), (0.1, 0.1, 0.02)],
                                      "zero_shot": [(0.1, 0.1, 0.01), (0.1, 0.1, 0.01), (0.1, 0.1, 0.01)]})
    wide = load_sets(tmp_path, {"s": ("test_s0",)})["s"]
    mean, se = paired(wide, "x", "zero_shot", "R_100")
    assert mean == pytest.approx(0.01) and se == pytest.approx(np.std([0.02, 0.0, 0.01], ddof=1) / np.sqrt(3))
    assert wide.groupby("method")["seconds"].max()["x"] == 3.0
