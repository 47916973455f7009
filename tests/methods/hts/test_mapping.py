"""g: the rank-paired training set M, the network's shape and range, its training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfertune.methods.hts.mapping import TransferNet, rank_pairs, train_mapping


def test_rank_pairs_pair_equal_ranks_lowest_error_first():
    A = np.array([[0.1], [0.2], [0.3], [0.4]])
    B = np.array([[1.0], [2.0], [3.0], [4.0]])
    source_values = np.array([3.0, 1.0, 4.0, 2.0])  # order of A by S_S: rows 1, 3, 0, 2
    target_values = np.array([0.5, 0.9, 0.1, 0.7])  # order of B by S_T: rows 2, 0, 3, 1
    inputs, targets = rank_pairs(A, source_values, B, target_values)
    np.testing.assert_array_equal(inputs.ravel(), [0.2, 0.4, 0.1, 0.3])
    np.testing.assert_array_equal(targets.ravel(), [3.0, 1.0, 4.0, 2.0])
    # the input with the lowest source error is paired with the sample of lowest target error
    assert inputs[0, 0] == A[np.argmin(source_values), 0] and targets[0, 0] == B[np.argmin(target_values), 0]
    with pytest.raises(ValueError):
        rank_pairs(A, source_values[:3], B, target_values)


def test_ties_keep_sample_order():
    A = np.arange(4.0)[:, None]
    inputs, targets = rank_pairs(A, np.zeros(4), A, np.zeros(4))
    np.testing.assert_array_equal(inputs, A)
    np.testing.assert_array_equal(targets, A)


def test_transfer_net_is_one_sigmoid_layer_with_outputs_in_the_unit_cube():
    net = TransferNet(8, 160)
    layers = list(net.net)
    assert [type(layer).__name__ for layer in layers] == ["Linear", "Sigmoid", "Linear", "Sigmoid"]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (8, 160, 8)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(50.0)  # saturate: outputs must still stay inside [0, 1]
    out = net.map(np.random.default_rng(0).normal(size=(100, 8)) * 10)
    assert out.shape == (100, 8) and out.min() >= 0.0 and out.max() <= 1.0


def test_training_learns_a_reversing_map_and_is_seeded():
    """Inputs ranked by x, targets ranked by -x: the rank pairing asks g(x) = 1 - x."""
    rng = np.random.default_rng(0)
    A, B = rng.random((2000, 2)), rng.random((2000, 2))
    source_values, target_values = A.sum(axis=1), -B.sum(axis=1)
    inputs, targets = rank_pairs(A, source_values, B, target_values)
    fit = train_mapping(inputs, targets, hidden=40, seed=3)
    assert fit.converged and fit.epochs < 200
    assert fit.losses[-1] < 0.5 * fit.losses[0]
    mapped = fit.net.map(np.array([[0.05, 0.05], [0.95, 0.95]]))
    assert mapped[0].sum() > 1.4 and mapped[1].sum() < 0.6  # the best source point maps to the best target region
    again = train_mapping(inputs, targets, hidden=40, seed=3)
    assert again.losses == fit.losses
    other = train_mapping(inputs, targets, hidden=40, seed=4)
    assert other.losses != fit.losses


def test_training_stops_at_max_epochs_when_not_converged():
    rng = np.random.default_rng(1)
    X = rng.random((200, 3))
    fit = train_mapping(X, X, hidden=10, seed=0, max_epochs=3, patience=10)
    assert fit.epochs == 3 and not fit.converged


def level_set_floor(targets: np.ndarray, width: int = 100) -> float:
    """The least MSE any g can reach on rank-paired data: g(x) can depend on x only through its
    rank, so the best g predicts the mean of the desired outputs of nearby ranks; the floor is the
    mean variance of the outputs within bins of ``width`` consecutive ranks."""
    n, dim = targets.shape
    return float(targets[: n // width * width].reshape(-1, width, dim).var(axis=1).mean())


def test_g_trains_until_its_loss_has_converged_on_a_known_map():
    """Quadratic bowls: S_S's optimum a, S_T's optimum b, so the level sets are spheres and the
    converged g sends a to b. The loss first sits on a plateau (g predicts each level set's mean,
    near the centre) before it falls to the floor; HTS's default training must get past the
    plateau: it explains >= 90 % of what can be explained, and maps a within 0.15 of b. The
    early-stopping rule (epochs=None) stops on the plateau: this test fails with it."""
    from transfertune.methods.hts.algorithm import DEFAULT_G_EPOCHS, HIDDEN_PER_HYPERPARAMETER

    dim = 4
    a, b = np.full(dim, 0.3), np.array([0.8, 0.15, 0.7, 0.9])
    rng = np.random.default_rng(0)
    A, B = rng.random((10_000, dim)), rng.random((10_000, dim))  # HTS's n_rank_samples
    inputs, targets = rank_pairs(A, ((A - a) ** 2).sum(axis=1), B, ((B - b) ** 2).sum(axis=1))
    total, floor = float(((targets - targets.mean(axis=0)) ** 2).mean()), level_set_floor(targets)
    assert floor < 0.8 * total  # the map explains something: there is a plateau to get past

    def explained(fit) -> float:
        return (total - fit.losses[-1]) / (total - floor)

    fit = train_mapping(inputs, targets, HIDDEN_PER_HYPERPARAMETER * dim, seed=0, epochs=DEFAULT_G_EPOCHS)
    assert explained(fit) >= 0.9, f"g stopped at {fit.losses[-1]:.4f}: {explained(fit):.0%} of the way from {total:.4f} to the floor {floor:.4f}"
    assert np.linalg.norm(fit.net.map(a[None])[0] - b) < 0.15
    early = train_mapping(inputs, targets, HIDDEN_PER_HYPERPARAMETER * dim, seed=0)
    assert early.converged and explained(early) < 0.8  # what the test guards against
    assert np.linalg.norm(early.net.map(a[None])[0] - b) > 0.2


def test_a_fixed_epoch_count_trains_exactly_that_many_epochs():
    X = np.random.default_rng(1).random((200, 3))
    fit = train_mapping(X, X, hidden=10, seed=0, epochs=7)
    assert fit.epochs == 7 and not fit.converged
    longer = train_mapping(X, X, hidden=10, seed=0, epochs=9)
    assert longer.losses[:7] == fit.losses  # the same trajectory, seeded
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train_mapping(X, X, hidden=10, seed=0, epochs=0)
