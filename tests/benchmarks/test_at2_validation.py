"""The validation tooling of benchmarks/at2_validation.py: pair sets and the subset win rates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from at2_validation import inner_pairs, method_settings, random_pairs, ratio_scores, read_result_sets, subset_win_rates  # noqa: E402
from transfertune.core.catalog import TaskPair  # noqa: E402


class _Catalog:
    def __init__(self, tasks, pairs):
        self.tasks, self.pairs = tasks, pairs


def test_random_pairs_never_use_the_benchmark_test_tasks_and_are_reproducible():
    tasks = [f"T{i}" for i in range(9)]
    catalog = _Catalog(tasks, [TaskPair(train=("T0", "T1", "T2", "T3"), test="T8")])
    pairs = random_pairs(catalog, draws=3)
    assert len(pairs) == 3 * 8  # every task but the benchmark's test task, 3 times
    for pair in pairs:
        assert "T8" not in pair.train and pair.test != "T8"
        assert len(set(pair.train)) == 4 and pair.test not in pair.train
    assert pairs == random_pairs(catalog, draws=3)
    assert [p.test for p in inner_pairs(catalog.pairs)] == ["T0", "T1", "T2", "T3"]


def test_candidates_may_be_any_registered_method_and_only_at2_gets_the_cpu_device():
    methods = method_settings({"mine": {"method": "at2", "eta": 0.5}, "at2": {}, "transfer_screening": {}, "k5": {"method": "transfer_screening", "k": 5}})
    assert methods == {"mine": {"device": "cpu", "method": "at2", "eta": 0.5}, "at2": {"device": "cpu"}, "transfer_screening": {},
                       "k5": {"method": "transfer_screening", "k": 5}, "zero_shot": {}}


def test_random_pairs_refuse_too_few_tasks():
    catalog = _Catalog(["A", "B", "C", "D", "E"], [TaskPair(train=("A", "B"), test="E")])
    with pytest.raises(SystemExit, match="too few"):
        random_pairs(catalog, draws=1)


def _results(regret_by_method: dict[str, list[float]], rank_by_method: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method, regrets in regret_by_method.items():
        for episode, (regret, rank) in enumerate(zip(regrets, rank_by_method[method])):
            for q in (25, 50, 100):
                rows.append({"method": method, "seed": 1000 * episode, "q": q, "regret": regret, "rank": rank})
    return pd.DataFrame(rows)


def test_subset_win_rates_known_cases():
    n = 6
    results = _results(
        {"always_better": [0.0] * n, "always_worse": [0.5] * n, "tied": [0.1] * n, "zero_shot": [0.1] * n},
        {"always_better": [0] * n, "always_worse": [9] * n, "tied": [3] * n, "zero_shot": [3] * n},
    )
    table = subset_win_rates(results, size=3, draws=200)
    assert table.loc["always_better"].tolist() == [1.0] * 5
    assert table.loc["always_worse"].tolist() == [0.0] * 5
    assert table.loc["tied"].tolist() == [0.0] * 5  # a tie is not "below"


def test_subset_win_rates_one_pair_decides():
    # better than zero-shot on one of 4 pairs by a lot, worse on the others by a little: the mean
    # over a subset is below exactly when the subset holds that pair
    results = _results({"a": [0.0, 0.2, 0.2, 0.2], "zero_shot": [0.5, 0.1, 0.1, 0.1]}, {"a": [0, 0, 0, 0], "zero_shot": [1, 1, 1, 1]})
    table = subset_win_rates(results, size=2, draws=4000, seed=1)
    assert table.loc["a", "R_100"] == pytest.approx(0.5, abs=0.04)  # P(pair 0 among 2 of 4) = 1/2
    assert table.loc["a", "F_100"] == 1.0
    assert np.isclose(table.loc["a", "all four"], table.loc["a", "R_25"])


def test_subset_win_rates_refuse_subsets_larger_than_the_run():
    results = _results({"a": [0.0], "zero_shot": [0.1]}, {"a": [0], "zero_shot": [1]})
    with pytest.raises(SystemExit, match="only 1"):
        subset_win_rates(results, size=5)


def test_ratio_scores_known_case_and_noise():
    # "half" is half of zero-shot's regret and rank on every pair: score 0.5; "same" scores 1
    n = 8
    results = _results({"same": [0.2] * n, "half": [0.1] * n, "zero_shot": [0.2] * n},
                       {"same": [4] * n, "half": [2] * n, "zero_shot": [4] * n})
    table = ratio_scores([results, results], reference="same", draws=100)
    assert table.loc["half", "score"] == pytest.approx(0.5)
    assert table.loc["same", "score"] == pytest.approx(1.0)
    assert table.loc["half", "minus same"] == pytest.approx(-0.5)
    assert table.loc["half", "bootstrap sd"] == pytest.approx(0.0, abs=1e-12)  # no spread across pairs
    assert table.loc["half", "share of draws lower"] == 1.0
    with pytest.raises(SystemExit, match="not among"):
        ratio_scores([results], reference="nope")


def test_read_result_sets_joins_runs_of_one_set(tmp_path):
    first = _results({"a": [0.1, 0.2], "zero_shot": [0.3, 0.3]}, {"a": [1, 2], "zero_shot": [3, 3]})
    second = _results({"b": [0.0, 0.1], "zero_shot": [0.3, 0.3]}, {"b": [0, 1], "zero_shot": [3, 3]})
    first.to_csv(tmp_path / "first.csv", index=False)
    second.to_csv(tmp_path / "second.csv", index=False)
    (joined,) = read_result_sets([f"{tmp_path / 'first.csv'},{tmp_path / 'second.csv'}"])
    assert sorted(joined.method.unique()) == ["a", "b", "zero_shot"]
    assert len(joined[joined.method == "zero_shot"]) == 2 * 3  # two pairs x three q, once
