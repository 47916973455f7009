"""Figures and the Markdown summary: they draw what they are given and state the verdicts."""

import numpy as np
import pandas as pd

from transfertune.methods.siamese import experiment as ex
from transfertune.methods.siamese import report


def test_markdown_states_both_targets_and_the_paired_gaps():
    summary = pd.DataFrame([{"meta_features": "learned", "seeds": 3, "per_dataset_mean": 0.4, "per_dataset_se": 0.05, "pooled_mean": 0.3,
                             "pooled_se": 0.02, "train_pairs_mean": 0.8, "train_pairs_se": 0.01},
                            {"meta_features": "learned - handcrafted", "seeds": 3, "per_dataset_mean": 0.05, "per_dataset_se": 0.02}])
    rows = [(v, r, e, b) for v, base in (("random_ei", 0.3), ("siamese_prior_ei", 0.2)) for r in (0, 1) for e, b in ((1, base), (2, base - 0.1))]
    results = pd.DataFrame(rows, columns=["variant", "repetition", "evaluation", "best_error"])
    curves = ex.bo_curves(results)
    text = report.markdown_summary(summary, curves, ex.bo_target(curves, at=2, within=1), checkpoints=(1, 2), gaps=ex.paired_gaps(results))
    assert "learned ahead of hand-crafted by >= 0.1: not met (gap 0.050)" in text
    assert "reaches random_ei's 2-evaluation best (0.2000) within 1 evaluations: met" in text
    assert "| siamese_prior_ei | -0.1000 +- 0.0000 | -0.1000 +- 0.0000 |" in text
    regret = pd.DataFrame([{"split": "held_out", "comparison": "learned", "regret_mean": 0.02, "regret_se": 0.005, "n": 24},
                           {"split": "held_out", "comparison": "learned - handcrafted", "regret_mean": -0.01, "regret_se": 0.004, "n": 24},
                           {"split": "held_out", "comparison": "learned - random", "regret_mean": -0.03, "regret_se": 0.006, "n": 24}])
    text = report.markdown_summary(summary, curves, ex.bo_target(curves, at=2, within=1), checkpoints=(1, 2), retrieval=regret,
                                   retrieval_target=ex.retrieval_target(regret), k=3)
    assert "| held_out | learned - handcrafted | -0.0100 +- 0.0040 | 24 |" in text
    assert "below hand-crafted's and below random neighbours' on held-out datasets: met (learned - handcrafted -0.0100 +- 0.0040" in text


def test_figures_have_one_line_per_variant_and_one_cell_per_pair():
    curves = pd.DataFrame({"variant": ["a", "a", "b", "b"], "evaluation": [1, 2, 1, 2], "best_error_mean": [0.3, 0.2, 0.25, 0.2],
                           "se": [0.01, 0.01, np.nan, 0.0], "n": [2, 2, 2, 2]})
    assert len(report.plot_bo_curves(curves).axes[0].get_lines()) == 2
    table = pd.DataFrame({"dataset": ["x", "y", "z"], "role": ["train", "held_out", "train"], "input_scale": [10.0, 0.1, 0.1],
                          "n_train": [100, 100, 50], "n_val": [50, 50, 50]})
    figure = report.plot_target_heatmap(["x", "y", "z"], np.array([[0.0, 0.2, 0.3], [0.2, 0.0, 0.1], [0.3, 0.1, 0.0]]), table)
    assert figure.axes[0].images[0].get_array().shape == (3, 3)
    # sorted by the factor columns between role and n_train (here input_scale only), held-out marked
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["*input_scale=0.1", "input_scale=0.1", "input_scale=10.0"]
    two = report.plot_target_heatmap(["x", "y", "z"], np.zeros((3, 3)), table, factors=["input_scale", "n_train"])
    assert [t.get_text() for t in two.axes[0].get_yticklabels()] == ["input_scale=0.1 n_train=50", "*input_scale=0.1 n_train=100",
                                                                       "input_scale=10.0 n_train=100"]
    assert len(report.plot_losses({0: np.linspace(1, 0.1, 100), 1: np.linspace(1, 0.2, 100)}).axes[0].get_lines()) == 2
