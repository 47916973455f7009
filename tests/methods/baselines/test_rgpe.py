"""RGPE: ranking loss, weights, the dilution guard, and weights on a task equal to the test task."""

import numpy as np

from transfertune.methods.baselines.rgpe import ranking_loss, ranking_weights
from transfertune.methods.registry import make_method


def test_ranking_loss_counts_misordered_pairs_both_ways():
    y = np.array([0.1, 0.2, 0.3])
    samples = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    np.testing.assert_array_equal(ranking_loss(samples, y), [0, 6, 2])


def test_weights_go_to_the_model_with_the_lowest_loss():
    rng = np.random.default_rng(0)
    losses = np.array([[0, 0, 1, 0], [5, 5, 5, 5], [3, 3, 0, 3]])  # base 0, base 1, target
    w = ranking_weights(losses, rng, dilution_percentile=None)
    np.testing.assert_allclose(w, [0.75, 0.0, 0.25])
    tied = ranking_weights(np.zeros((2, 4000)), rng, dilution_percentile=None)
    assert abs(tied[0] - 0.5) < 0.05  # ties are split at random


def test_dilution_guard_drops_a_base_model_worse_than_the_target():
    rng = np.random.default_rng(0)
    # base 0 sometimes wins a sample, but its median loss is above the target's 95th percentile
    losses = np.array([[0, 9, 9, 9, 9], [4, 4, 4, 4, 4], [5, 5, 5, 5, 5]])
    assert ranking_weights(losses, rng, dilution_percentile=None)[0] == 0.2
    w = ranking_weights(losses, rng, dilution_percentile=95)
    assert w[0] == 0 and w[1] == 1.0


def test_weights_favour_the_training_task_identical_to_the_test_task(tiny):
    problem, test_grid = tiny(test_like=0, flip=1)
    method = make_method("rgpe", {"full_refits": 2, "maxiter": 20, "base_maxiter": 50})
    method.setup(problem)
    rng = np.random.default_rng(3)
    for config in rng.choice(problem.n_configs, size=8, replace=False):  # 8 configs, 2 epochs each
        for epoch in (1, 2):
            method.tell(int(config), epoch, test_grid[config, epoch - 1])
    method.recommend()  # fits the test GP and computes the weights
    weights = method.weights  # (base 0, base 1, target)
    assert weights.shape == (3,) and np.isclose(weights.sum(), 1.0)
    assert weights[0] > 0.5 and weights[1] == 0.0  # the mirrored task is useless, and dropped
