"""The evaluation of Figure 1: evaluations from told epochs, best-error curves, the ratio of
evaluations to reach the baseline's final error, the tasks of a pair."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from transfertune.errors import ConfigurationError
from transfertune.methods.hts.experiment import (
    best_error_curves,
    evaluations,
    evaluations_to_reach,
    first_reach,
    make_task,
    plot_curves,
    reach_markdown,
)


def told(method: str, repetition: int, values: list[float | None], epochs: int = 2) -> pd.DataFrame:
    """Told epochs of a run: trial i reaches ``values[i]`` at its last epoch (None: diverged after epoch 1)."""
    rows = []
    for trial, value in enumerate(values):
        last = epochs if value is not None else 1
        for epoch in range(1, last + 1):
            v = value if value is not None and epoch == epochs else 0.5
            rows.append({"method": method, "repetition": repetition, "trial": trial, "epoch": epoch, "value": v, "t": float(len(rows)),
                         "config": json.dumps({"trial": trial})})
    return pd.DataFrame(rows)


def runs(curves: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Per-evaluation tables from best-error lists (error = 1 - value), one list per repetition."""
    frames = [told(m, r, [1 - e for e in errors]) for m, reps in curves.items() for r, errors in enumerate(reps)]
    return evaluations(pd.concat(frames, ignore_index=True), 2, max(len(e) for reps in curves.values() for e in reps))


def test_evaluations_take_the_last_epoch_and_skip_diverged_trials():
    table = evaluations(told("hts", 0, [0.7, None, 0.9, 0.8]), epochs=2, t_max=4)
    assert table["evaluation"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(table["error"], [0.3, np.nan, 0.1, 0.2])
    np.testing.assert_allclose(table["best_error"], [0.3, 0.3, 0.1, 0.1])
    assert table["epochs"].tolist() == [2, 1, 2, 2]
    first_diverged = evaluations(told("hts", 0, [None, 0.6]), epochs=2, t_max=2)
    assert np.isnan(first_diverged["best_error"].iloc[0]) and first_diverged["best_error"].iloc[1] == pytest.approx(0.4)
    # a trial that diverged in its first epoch told nothing: it is still an evaluation
    silent = told("hts", 0, [0.7, 0.8, 0.9])
    silent = silent[silent.trial != 1]
    table = evaluations(silent, epochs=2, t_max=3)
    assert table["trial"].tolist() == [0, 1, 2] and table["epochs"].tolist() == [2, 0, 2]
    np.testing.assert_allclose(table["best_error"], [0.3, 0.3, 0.1])


def test_curves_average_the_repetitions():
    table = runs({"a": [[0.4, 0.2], [0.6, 0.6]]})
    curves = best_error_curves(table)
    np.testing.assert_allclose(curves["best_error_mean"], [0.5, 0.4])
    np.testing.assert_allclose(curves["best_error_se"], [0.1, 0.2])
    assert curves["n"].tolist() == [2, 2]


def test_the_ratio_counts_evaluations_to_the_baselines_final_error():
    base = [0.5, 0.4, 0.3, 0.3, 0.25, 0.2, 0.2, 0.2, 0.2, 0.1]  # final 0.1 after t_max = 10
    fast = [0.5, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05]  # reaches 0.1 at evaluation 4: 10 / 4
    slow = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.15]  # never
    table = runs({"hord": [base, base], "hts": [fast, fast], "linear": [slow, slow]})
    reach = evaluations_to_reach(table, "hord").set_index("method")
    assert reach.loc["hts", "evaluations_to_reach"] == 4 and reach.loc["hts", "ratio"] == pytest.approx(2.5)
    assert reach.loc["hord", "ratio"] == pytest.approx(1.0) and reach.loc["hord", "baseline_final_error"] == pytest.approx(0.1)
    assert np.isnan(reach.loc["linear", "ratio"]) and reach.loc["linear", "seeds_reached"] == "0/2"
    assert reach.loc["hts", "seed_ratios"] == "2.50 2.50" and reach.loc["hts", "method_final_error"] == pytest.approx(0.05)
    text = reach_markdown(reach.reset_index())
    assert "| hts | 4 | 2.50 |" in text and "| linear | not within 10 | < 1 |" in text
    with pytest.raises(ConfigurationError, match="baseline 'gp' is not among the methods"):
        evaluations_to_reach(table, "gp")


def test_per_seed_ratios_use_the_same_seed_of_the_baseline():
    table = runs({"hord": [[0.3, 0.2], [0.5, 0.4]], "hts": [[0.2, 0.2], [0.45, 0.45]]})
    reach = evaluations_to_reach(table, "hord").set_index("method")
    assert reach.loc["hts", "seed_ratios"] == "2.00 never"
    assert np.isnan(reach.loc["hts", "evaluations_to_reach"])  # mean curves: 0.325 never reaches the baseline's 0.3
    assert first_reach(np.array([0.5, 0.3, 0.3]), 0.3) == 2 and first_reach(np.array([0.5]), 0.3) is None


def test_a_figure_is_drawn():
    table = runs({"hord": [[0.3, 0.2]], "hts": [[0.2, 0.1]]})
    figure = plot_curves(best_error_curves(table), title="t", baseline="hord")
    assert len(figure.axes[0].lines) == 3
    other = runs({"hord": [[0.5, 0.4]], "hts": [[0.6, 0.3]]})
    both = pd.concat([best_error_curves(table).assign(pair="a"), best_error_curves(other).assign(pair="b")])
    figure = plot_curves(both, title="t", baseline="hord")
    assert len(figure.axes) == 2 and [ax.get_title() for ax in figure.axes] == ["a: t", "b: t"]
    assert list(figure.axes[1].lines[0].get_ydata()) == [0.5, 0.4]  # each panel draws its own pair's curves


def test_a_pair_of_one_draw_has_distinct_class_sets():
    source = make_task("digits", n_classes=5, seed=0, subset=0)
    target = make_task("digits", n_classes=5, seed=0, subset=1)
    assert source.name != target.name and source.meta["classes"] != target.meta["classes"]
    assert source.X_train.shape[1:] == (1, 8, 8) and target.n_classes == 5
    with pytest.raises(ConfigurationError, match="is not a file"):
        make_task("digits", manifests="/nonexistent/manifests.parquet", subset_id="x")


def test_trace_rounds_reads_each_round_of_a_run(cnn_space):
    from tests.methods.hts.conftest import SOURCE_OPTIMUM, TARGET_OPTIMUM, quadratic
    from transfertune.methods.hts.algorithm import HTS
    from transfertune.methods.hts.experiment import trace_rounds

    configs = cnn_space.sample(40, seed=1)
    f_source, f_target = quadratic(cnn_space, SOURCE_OPTIMUM), quadratic(cnn_space, TARGET_OPTIMUM)
    run = HTS(cnn_space, configs, [f_source(c) for c in configs], n_random=1, n_rank_samples=2000, seed=0)
    for config in run.initial_design():
        run.observe(config, f_target(config), "lhs")
    for _ in range(2):
        run.fit_transfer()
        for config, kind in run.propose():
            run.observe(config, f_target(config), kind)
    table = trace_rounds(run)
    assert table["round"].tolist() == [1, 2] and table["omega_t"].tolist() == [9, 15]
    errors = [o.error for o in run.omega_t]
    assert table["best_value_before"].tolist() == [-min(errors[:9]), -min(errors[:15])]
    assert table["mapped_best_value"].tolist() == [-min(errors[9:15]), -min(errors[15:21])]
    X = cnn_space.encode([o.config for o in run.omega_t])
    assert table["random_to_mapped"].iloc[0] == pytest.approx(np.linalg.norm(X[14] - X[9:14].mean(axis=0)))
    assert (table["g_loss"] < table["target_variance"]).all() and (table["target_variance"] < 0.1).all()  # ~1/12: uniform samples
    assert (table["mapped_spread"] > 0).all() and (table["st_argmin_at_bound"].between(0, 1)).all()
    # which part fails: S_T's rank agreement with the round's errors, the map's distance to S_T's best block
    assert table["ss_floor_share"].nunique() == 1 and 0 < table["ss_floor_share"].iloc[0] < 1
    assert table["st_spearman_next"].between(-1, 1).all()
    assert table["mapped_error"].tolist() == pytest.approx([np.mean(errors[9:14]), np.mean(errors[15:20])])
    # on quadratic bowls a trained g lands near the centroid of S_T's best block (a uniform point is ~0.8 from anywhere)
    assert table["mapped_to_st_best"].iloc[-1] < 0.3
