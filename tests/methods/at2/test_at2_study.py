"""The kernel study's exact-inference protocol: the split, one combination scored, clear errors."""

import numpy as np
import pytest

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.methods.at2.model import KernelChoice
from transfertune.methods.at2.study import evaluate_combination_exact, kernel_study, split_transfer


@pytest.fixture
def catalog(synthetic_db):
    return ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")


def test_split_transfer_holds_out_cells_the_model_never_sees(catalog):
    (split,) = split_transfer(catalog, n_tasks=3, n_test=30, n_context=20, seed=0)
    assert split.train_grids.shape[0] == 2 and split.test_grid.shape == split.train_grids.shape[1:]
    assert split.tasks[-1] not in split.tasks[:-1]
    held, context = {tuple(c) for c in split.held}, {tuple(c) for c in split.context}
    assert len(held) == 30 and len(context) == 20 and not held & context
    with pytest.raises(ConfigurationError, match="exceeds the test task"):
        split_transfer(catalog, n_tasks=3, n_test=150, n_context=20, seed=0)
    with pytest.raises(ConfigurationError, match="n_folds"):
        split_transfer(catalog, n_tasks=3, n_test=30, n_context=20, seed=0, n_folds=4)


def test_folds_make_each_drawn_task_the_test_task_once_and_fold_1_is_unchanged(catalog):
    splits = split_transfer(catalog, n_tasks=3, n_test=30, n_context=20, seed=0, n_folds=3)
    assert [s.tasks[-1] for s in splits] == splits[0].tasks[::-1]
    for split in splits:
        assert sorted(split.tasks[:-1]) == sorted(t for t in splits[0].tasks if t != split.tasks[-1])
    (single,) = split_transfer(catalog, n_tasks=3, n_test=30, n_context=20, seed=0)
    np.testing.assert_array_equal(single.held, splits[0].held)
    combos = [KernelChoice("optiland", "deep_poly", "acc_curve")]
    table, distances = kernel_study(catalog, combos, inference="exact_kronecker", n_tasks=3, n_test=30, n_context=20,
                                    fit_steps=5, refit_steps=2, n_folds=3)
    assert np.isfinite(table.test_log_likelihood).all() and len(distances[combos[0].label][0]) == 3 * 5


def test_exact_study_scores_held_out_cells_and_context_helps(catalog):
    (split,) = split_transfer(catalog, n_tasks=3, n_test=40, n_context=60, seed=1)
    row = evaluate_combination_exact(KernelChoice(), catalog, split, fit_steps=20, refit_steps=10)
    true, predicted = row.pop("_distances")
    assert len(true) == len(predicted) == 20 and ((predicted >= -1e-9) & (predicted <= 1 + 1e-9)).all()
    assert np.isfinite([row["test_log_likelihood"], row["test_rmse"]]).all()
    # the same combination with almost nothing of the test task observed predicts worse
    split.context = split.context[:2]
    blind = evaluate_combination_exact(KernelChoice(), catalog, split, fit_steps=20, refit_steps=10)
    assert blind["test_rmse"] > row["test_rmse"]


def test_kernel_study_ranks_by_the_inferences_own_score(catalog):
    combos = [KernelChoice("optiland", "deep_poly", f) for f in ("acc_curve", "rbf")]
    table, distances = kernel_study(catalog, combos, inference="exact_kronecker", n_tasks=3, n_test=30, n_context=30,
                                    fit_steps=5, refit_steps=2)
    assert list(table["rank"]) == [1, 2] and table.test_log_likelihood.is_monotonic_decreasing
    assert table.attrs["ranked_by"] == "test_log_likelihood" and set(distances) == {c.label for c in combos}
    with pytest.raises(ConfigurationError, match="inference"):
        kernel_study(catalog, combos, inference="laplace")


def test_a_diverged_exact_fit_ranks_last_instead_of_ending_the_study(catalog, monkeypatch):
    import torch

    from transfertune.methods.at2 import model as model_module

    real_observe_many = model_module.ExactAT2.observe_many

    def observe_many(self, *args, **kwargs):
        if self.model.choice.fidelity == "rbf":
            raise torch.linalg.LinAlgError("covariance of the test observations is not positive definite")
        return real_observe_many(self, *args, **kwargs)

    monkeypatch.setattr(model_module.ExactAT2, "observe_many", observe_many)
    combos = [KernelChoice("optiland", "deep_poly", f) for f in ("rbf", "acc_curve")]
    table, _ = kernel_study(catalog, combos, inference="exact_kronecker", n_tasks=3, n_test=30, n_context=30,
                            fit_steps=5, refit_steps=2)
    assert list(table.fidelity_kernel) == ["acc_curve", "rbf"] and np.isnan(table.test_log_likelihood.iloc[1])
