"""What the hp-learner learns from (the labelling rules), BOHB's incumbent and the guard that keeps it,
the full set's own meta feature, and the budget held at its largest value for the prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.data.adversarial import ClassifierConfig, probe_features, train_model
from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo import method as method_module
from transfertune.methods.metahpo.bohb import BOHBConfig, SubsetHPO, SubsetTrial, bohb_incumbent, budget_unit, labelled_observations
from transfertune.methods.metahpo.datasets import load_experiment_data
from transfertune.methods.metahpo.hp_learner import MAMLConfig, Scaler, Task
from transfertune.methods.metahpo.meta_features import meta_feature
from transfertune.methods.metahpo.method import (
    MetaHPOConfig,
    PredictionConfig,
    SamplingConfig,
    at_full_budget,
    full_meta_feature,
    learner_tasks,
    starts_of,
    transfer,
    validation_error,
)

SPACE = SearchSpace.from_dict({"name": "two", "hyperparameters": [
    {"name": "a", "type": "float", "lower": 0.0, "upper": 1.0},
    {"name": "b", "type": "float", "lower": 0.0, "upper": 1.0},
]})


def _curve(*values: float) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "val_acc": v} for i, v in enumerate(values)]


def _subset() -> SubsetHPO:
    """Budgets 1, 3, 9 (eta 3): a config stopped at 1 epoch, one promoted 1 -> 3, one 1 -> 3 -> 9, one
    started at 9, one diverged in its 2nd epoch of a 3-epoch budget."""
    return SubsetHPO("s", [
        SubsetTrial({"a": 0.1, "b": 0.1}, _curve(0.9), [1]),  # high at 1 epoch, never trained longer
        SubsetTrial({"a": 0.2, "b": 0.2}, _curve(0.3, 0.4, 0.5), [1, 3]),
        SubsetTrial({"a": 0.3, "b": 0.3}, _curve(0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.6, 0.7, 0.8), [1, 3, 9]),
        SubsetTrial({"a": 0.4, "b": 0.4}, _curve(*([0.5] * 8), 0.6), [9]),
        SubsetTrial({"a": 0.5, "b": 0.5}, _curve(0.25), [1, 3], "failed", "nan loss"),
    ], 1.0, 8)


def test_largest_reached_is_the_paper_labelling_with_mixed_budgets():
    configs, y, budget = labelled_observations(_subset(), "val_acc", "largest_reached", 1, 9)
    assert budget is None and len(configs) == 5
    np.testing.assert_allclose(y, [0.9, 0.5, 0.8, 0.6, 0.25])  # the 1-epoch 0.9 sits beside 9-epoch values


def test_highest_budget_keeps_only_the_fully_trained_configs():
    configs, y, budget = labelled_observations(_subset(), "val_acc", "highest_budget", 1, 9)
    assert budget is None
    assert [c["a"] for c in configs] == [0.3, 0.4]
    np.testing.assert_allclose(y, [0.8, 0.6])


def test_budget_input_gives_one_row_per_evaluated_budget_with_its_own_metric():
    configs, y, budget = labelled_observations(_subset(), "val_acc", "budget_input", 1, 9)
    assert [c["a"] for c in configs] == [0.1, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.5, 0.5]
    # the diverged config: 0.25 after one epoch, nothing at three (the subset's worst value, 0.2)
    np.testing.assert_allclose(y, [0.9, 0.3, 0.5, 0.2, 0.4, 0.8, 0.6, 0.25, 0.2])
    np.testing.assert_allclose(budget, [0, 0, 0.5, 0, 0.5, 1, 1, 0, 0.5])
    np.testing.assert_allclose(budget_unit(np.array([3.0, 9.0]), 3, 9), [0.0, 1.0])
    with pytest.raises(ConfigurationError, match="hp_learner.labels must be one of"):
        labelled_observations(_subset(), "val_acc", "all", 1, 9)


def test_bohb_incumbent_is_the_best_at_the_largest_budget_not_the_best_label():
    other = SubsetHPO("t", [SubsetTrial({"a": 0.9, "b": 0.9}, _curve(*([0.7] * 9)), [9])], 1.0, 1)
    config, value = bohb_incumbent([_subset(), other], "val_acc", 9)
    assert config == {"a": 0.3, "b": 0.3} and value == pytest.approx(0.8)  # not the 1-epoch 0.9
    assert bohb_incumbent([SubsetHPO("u", [SubsetTrial({"a": 0.1, "b": 0.1}, _curve(0.9), [1])], 1.0, 1)], "val_acc", 9)[0] is None


def test_budget_is_an_input_and_the_prediction_holds_it_at_the_full_budget():
    tasks = learner_tasks([_subset()], {"s": np.zeros(3)}, SPACE, "val_acc", "budget_input", 1, 9)
    assert tasks[0].theta.shape == (9, 3)  # two hyperparameters and the budget
    seen = []
    objective = at_full_budget(lambda theta: (seen.append(theta), theta.sum(1))[1], "budget_input")
    out = objective(torch.tensor([[0.2, 0.3]], dtype=torch.float64))
    assert seen[0].shape == (1, 3) and float(seen[0][0, 2]) == 1.0 and float(out[0]) == pytest.approx(1.5)
    theta, y = starts_of(tasks, "budget_input", SPACE.dim)  # L-BFGS starts: full-budget rows only, without the budget
    np.testing.assert_allclose(theta, [[0.3, 0.3], [0.4, 0.4]])
    np.testing.assert_allclose(y, [0.8, 0.6])


def _hpo(n_subsets: int, seed: int = 0) -> list[SubsetHPO]:
    """Subsets whose fully trained metric is ``0.9 - (a - 0.7)^2 - (b - 0.3)^2``."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_subsets):
        trials = []
        for _ in range(8):
            a, b = rng.random(2)
            trials.append(SubsetTrial({"a": float(a), "b": float(b)}, _curve(*([0.1] * 2), 0.9 - (a - 0.7) ** 2 - (b - 0.3) ** 2), [3]))
        out.append(SubsetHPO(f"s{s}", trials, 1.0, 8))
    return out


def _config(guard: str) -> MetaHPOConfig:
    return MetaHPOConfig(sampling=SamplingConfig(rounds=2, subsets_per_round=2), bohb=BOHBConfig(min_epochs=1, max_epochs=3),
                         maml=MAMLConfig(steps=30, hidden=8, tasks_per_step=2), prediction=PredictionConfig(n_best_starts=2, n_random_starts=2, guard=guard),
                         labels="highest_budget")


@pytest.mark.parametrize("error, expected", [(1e9, "incumbent"), (-1e9, "learner")])
def test_the_learner_pick_replaces_the_incumbent_only_when_its_predicted_gain_exceeds_the_validation_error(monkeypatch, error, expected):
    hpo = _hpo(4)
    metas = {h.subset: np.full(3, float(i)) for i, h in enumerate(hpo)}
    monkeypatch.setattr(method_module, "validation_error", lambda *a, **k: error)
    out = transfer(hpo, metas, np.full(3, 1.5), SPACE, "val_acc", _config("incumbent"))
    assert out.chosen == expected
    assert out.config == (out.incumbent if expected == "incumbent" else out.prediction.config)
    assert out.incumbent == bohb_incumbent(hpo, "val_acc", 3)[0]
    assert np.isfinite(out.gain) and out.validation_error == error
    paper = transfer(hpo, metas, np.full(3, 1.5), SPACE, "val_acc", _config("none"))
    assert paper.chosen == "learner" and np.isnan(paper.validation_error)


def test_validation_error_is_measured_on_rows_the_learner_did_not_see(monkeypatch):
    tasks = learner_tasks(_hpo(4), {f"s{i}": np.full(3, float(i)) for i in range(4)}, SPACE, "val_acc", "highest_budget", 1, 3)
    fitted = {}
    real_fit = method_module.fit_maml

    def spy(train, config, **kwargs):
        fitted["rows"] = sum(len(t.y) for t in train)
        return real_fit(train, config, **kwargs)

    monkeypatch.setattr(method_module, "fit_maml", spy)
    error = validation_error(tasks, MAMLConfig(steps=20, hidden=8, tasks_per_step=2), "highest_budget", 0.25, seed=0)
    assert fitted["rows"] == 4 * (8 - 2)  # 2 of each subset's 8 fully trained rows held out
    assert 0 < error < 1


@pytest.fixture(scope="module")
def toy():
    return load_experiment_data("toy", {"name": "drift_stream", "options": {"rows_per_batch": 300, "offline_batches": 2, "stream_batches": 0,
                                                                           "n_features": 6, "n_informative": 3, "n_classes": 3}})


def test_the_full_set_is_queried_at_its_own_meta_feature_not_at_the_subsets_centre(toy):
    source = toy.source
    probe = train_model(source, ClassifierConfig(hidden=8, epochs=3), torch.device("cpu"), seed=0, progress=False)
    rng = np.random.default_rng(0)
    # subsets biased like adversarial ones: mostly one class
    subsets = {}
    for i in range(4):
        pool = np.flatnonzero(source.y == i % 2)
        idx = rng.choice(pool, size=60, replace=False)
        subsets[f"s{i}"] = meta_feature(probe_features(probe, source.X[idx]), source.y[idx], "classification", 3, 1.0)
    tasks = [Task(k, v, np.zeros((2, 2)), np.array([0.0, 1.0])) for k, v in subsets.items()]
    scaler = Scaler.fit(tasks)
    paper = full_meta_feature(probe, source.X, source.y, subsets, "classification", 3, 1.0, "subset_mean")
    own = full_meta_feature(probe, source.X, source.y, subsets, "classification", 3, 1.0, "own")
    np.testing.assert_allclose(scaler.meta(paper), 0.0, atol=1e-9)  # the paper's: always the centre
    np.testing.assert_allclose(own, meta_feature(probe_features(probe, source.X), source.y, "classification", 3, 1.0))
    query = scaler.meta(own)
    assert np.linalg.norm(query) > 0.1
    assert min(np.linalg.norm(query - scaler.meta(v)) for v in subsets.values()) > 0.1
