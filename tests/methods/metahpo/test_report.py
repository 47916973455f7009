"""Table 1's aggregation: mean and standard error over runs, one row per experiment and method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfertune.methods.metahpo.report import (
    oos_summary,
    paired_differences,
    paired_markdown,
    plot_oos,
    plot_table1,
    standard_error,
    table1,
    table1_markdown,
)


def _runs() -> pd.DataFrame:
    rows = []
    for run, (a, b) in enumerate([(0.80, 0.70), (0.84, 0.74), (0.86, np.nan)]):
        rows.append({"experiment": "e", "run": run, "method": "random_search", "test_metric": b, "seconds": 10.0 + run,
                     "retrain_status": "trained" if np.isfinite(b) else "diverged"})
        rows.append({"experiment": "e", "run": run, "method": "metahpo", "test_metric": a, "seconds": 10.0, "retrain_status": "trained"})
    return pd.DataFrame(rows)


def test_table1_gives_mean_and_standard_error_over_runs():
    table = table1(_runs())
    assert list(table["method"]) == ["metahpo", "random_search"]  # the paper's order, Meta-HPO first
    meta = table.iloc[0]
    assert meta["test_mean"] == pytest.approx(0.8333333333)
    assert meta["test_se"] == pytest.approx(np.std([0.80, 0.84, 0.86], ddof=1) / np.sqrt(3))
    rs = table.iloc[1]
    assert rs["runs"] == 2 and rs["diverged"] == 1  # the diverged retrain has no test metric
    assert rs["test_mean"] == pytest.approx(0.72) and rs["test_se"] == pytest.approx(0.02)
    assert rs["seconds_mean"] == pytest.approx(11.0) and rs["seconds_se"] == pytest.approx(1 / np.sqrt(3))
    markdown = table1_markdown(table)
    assert "| Meta-HPO | 0.8333 ± 0.0176 | 10.0 ± 0.0 |" in markdown
    assert standard_error(pd.Series([1.0])) != standard_error(pd.Series([1.0]))  # NaN for one run


def test_paired_differences_are_taken_run_by_run():
    runs = _runs()
    paired = paired_differences(runs)
    row = paired.iloc[0]
    assert row["method"] == "random_search" and row["pairs"] == 2 and row["wins"] == 2  # run 2 has no RS metric: no pair
    assert row["diff_mean"] == pytest.approx(0.10)  # 0.80 - 0.70 and 0.84 - 0.74
    assert row["diff_se"] == pytest.approx(0.0, abs=1e-12)  # paired: the runs' common offset cancels
    swapped = paired_differences(runs.assign(test_metric=np.where(runs["method"] == "metahpo", runs["test_metric"] - 0.2, runs["test_metric"])))
    assert swapped.iloc[0]["diff_mean"] == pytest.approx(-0.10) and swapped.iloc[0]["wins"] == 0
    assert "| e | RS | 0.1000 ± 0.0000 | 2 / 0 / 2 |" in paired_markdown(paired)


def test_out_of_sample_summary_and_figures():
    oos = pd.DataFrame({"run": [0, 0, 1, 1], "batch": [0, 1, 0, 1], "eval_batch": [1, 2, 1, 2], "method": ["metahpo"] * 4,
                        "test_metric": [0.7, 0.8, 0.6, 0.9], "seconds": [1.0, 2.0, 3.0, 4.0]})
    summary = oos_summary(oos)
    assert summary.iloc[0]["test_mean"] == pytest.approx(0.75)
    assert summary.iloc[0]["test_se"] == pytest.approx(0.0)  # both runs average 0.75
    assert summary.iloc[0]["seconds_per_batch"] == pytest.approx(2.5)
    assert plot_oos(oos).axes[0].lines[0].get_ydata().tolist() == pytest.approx([0.65, 0.85])
    assert plot_table1(table1(_runs())) is not None
