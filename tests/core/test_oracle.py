"""The oracle floor: the best value reachable with q epochs, on a hand-made grid and as a bound."""

from __future__ import annotations

import numpy as np
import pytest

from transfertune.core.oracle import oracle_floor
from transfertune.methods.base import TransferProblem
from transfertune.methods.runner import Episode, run_episode

NAN = np.nan
# best values per config: 0.6, 0.9, 0.3 -> final ranks 1, 0, 2
GRID = np.array([
    [0.1, 0.5, 0.6, 0.55],
    [0.4, 0.45, 0.42, 0.9],
    [0.3, NAN, NAN, NAN],  # a trial recorded for one epoch only
])


def test_floor_on_a_hand_made_grid():
    floor = oracle_floor(GRID, budget=6)
    assert floor["q"].tolist() == [1, 2, 3, 4, 5, 6]
    # q = 1: only epoch 1 is reachable -> config 1's 0.4; q = 2: config 0's 0.5 at epoch 2;
    # q = 3: 0.6 (config 0, epoch 3); q >= 4: the optimum 0.9 (config 1, epoch 4)
    np.testing.assert_allclose(floor["value"], [0.4, 0.5, 0.6, 0.9, 0.9, 0.9])
    np.testing.assert_allclose(floor["regret"], [0.5, 0.4, 0.3, 0.0, 0.0, 0.0])
    assert floor["config"].tolist() == [1, 0, 0, 1, 1, 1]
    assert floor["epoch"].tolist() == [1, 2, 3, 4, 4, 4]
    assert floor["rank"].tolist() == [0, 1, 1, 0, 0, 0]


def test_floor_keeps_the_first_epoch_holding_the_best_value():
    grid = np.array([[0.2, 0.7, 0.7, 0.7]])
    assert oracle_floor(grid, 4)["epoch"].tolist() == [1, 2, 2, 2]


def test_floor_refuses_a_grid_that_is_not_two_dimensional():
    with pytest.raises(ValueError, match="n_configs, n_epochs"):
        oracle_floor(np.zeros(4), 2)


@pytest.mark.parametrize("method", ["random_search", "zero_shot", "hyperband"])
def test_no_method_beats_the_floor(method):
    rng = np.random.default_rng(0)
    n, E = 12, 8
    finals = rng.uniform(0.3, 0.9, n)
    test_grid = finals[:, None] * (1 - np.exp(-np.arange(1, E + 1) / rng.uniform(1, 4, n)[:, None])) + 0.01 * rng.standard_normal((n, E))
    train = np.stack([test_grid + 0.02 * rng.standard_normal((n, E)) for _ in range(3)])
    floor = oracle_floor(test_grid, 30)["regret"].to_numpy()
    for seed in range(3):
        problem = TransferProblem(
            config_ids=np.arange(n), configs=[{"x": float(i)} for i in range(n)], X=rng.random((n, 2)), space=None,
            n_epochs=E, train_tasks=("a", "b", "c"), train_grids=train, test_task="t", trial_length=np.full(n, E),
            budget=30, seed=seed,
        )
        regret = run_episode(Episode(method, {}, problem, test_grid, "t", 0))["regret"].to_numpy()
        assert np.all(regret >= floor - 1e-12)
