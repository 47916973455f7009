"""Live summaries: regret against the run's best, mean and s.e. per epochs spent, the last q kept."""

import numpy as np
import pandas as pd
import pytest

from transfertune.live.report import SUMMARY_COLUMNS, live_curves, live_markdown, live_summary, plot_live, with_regret


def results():
    rows = []
    for method, reps in {"a": [[0.2, 0.6, 0.6], [0.4, 0.5, 0.9]], "b": [[0.3, 0.3, 0.8], [0.1, 0.7, 0.7]]}.items():
        for r, values in enumerate(reps):
            best = np.maximum.accumulate(values)
            for q, (v, b) in enumerate(zip(values, best), start=1):
                rows.append({"method": method, "task": "t", "repetition": r, "q": q, "value": v, "best": b, "t": 0.5 * q + r})
    return with_regret(pd.DataFrame(rows))


def test_regret_is_the_run_best_minus_best_so_far_and_curves_average_repetitions():
    frame = results()
    assert frame.regret.min() == 0 and frame.regret.iloc[0] == pytest.approx(0.9 - 0.2)
    table = live_curves(frame)
    assert list(table.columns) == SUMMARY_COLUMNS
    row = table[(table.method == "a") & (table.q == 3)].iloc[0]
    assert row.best_mean == pytest.approx(0.75) and row.best_se == pytest.approx(np.std([0.6, 0.9], ddof=1) / np.sqrt(2))
    assert row.regret_mean == pytest.approx(0.15) and row.seconds_mean == pytest.approx(2.0) and row.n == 2


def test_the_summary_keeps_the_asked_q_and_each_methods_last(tmp_path):
    table = live_summary(results(), qs=[1])
    assert table.q.tolist() == [1, 3, 1, 3]
    assert "| a | 3 | 0.7500 ± 0.1500 | 0.1500 ± 0.1500 | 2.0 | 2 |" in live_markdown(table)
    plot_live(results()).savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
