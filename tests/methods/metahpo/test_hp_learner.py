"""Algorithm 1 (MAML) against a hand-computed two-step case, the support/query split, the network of
Figure 3, and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.hp_learner import (
    HPLearner,
    MAMLConfig,
    Scaler,
    Task,
    check_tasks,
    fit_maml,
    inner_update,
    load_learner,
    outer_step,
    split_batch,
)


class Slope(nn.Module):
    """``y_hat = w * theta[:, 0]``: one parameter, so MAML's update can be written out by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, meta: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return self.w * theta[:, 0]


def _side(x: list[float], y: list[float], width: int) -> tuple[torch.Tensor, ...]:
    pad = width - len(x)
    return (torch.zeros(1, dtype=torch.float64), torch.tensor(x + [0.0] * pad, dtype=torch.float64)[:, None],
            torch.tensor(y + [0.0] * pad, dtype=torch.float64), torch.tensor([1.0] * len(x) + [0.0] * pad, dtype=torch.float64))


def _stack(*tasks: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(parts) for parts in zip(*tasks))


def _by_hand(w: float, tasks: list[tuple[list, list, list, list]], alpha: float, beta: float) -> float:
    """One outer step of Algorithm 1 for y_hat = w x and L = mean_k (w x_k - y_k)^2, in plain floats:
    L'(w) = 2/n sum (w x - y) x, L''(w) = 2/n sum x^2, w'_i = w - alpha L_s'(w),
    d L_q(w'_i)/dw = L_q'(w'_i) (1 - alpha L_s''), w <- w - beta sum_i d L_q(w'_i)/dw."""
    total = 0.0
    for xs, ys, xq, yq in tasks:
        g_s = 2.0 / len(xs) * sum((w * a - b) * a for a, b in zip(xs, ys))
        h_s = 2.0 / len(xs) * sum(a * a for a in xs)
        w_inner = w - alpha * g_s
        g_q = 2.0 / len(xq) * sum((w_inner * a - b) * a for a, b in zip(xq, yq))
        total += g_q * (1.0 - alpha * h_s)
    return w - beta * total


def test_maml_outer_update_matches_the_hand_computed_two_step_case():
    tasks = [([1.0, 2.0], [1.0, 0.0], [1.0], [2.0]), ([1.0], [0.0], [2.0, 1.0], [1.0, 1.0])]
    alpha, beta = 0.1, 0.05
    support = _stack(*(_side(t[0], t[1], 2) for t in tasks))  # task 2's support is padded
    query = _stack(*(_side(t[2], t[3], 2) for t in tasks))  # task 1's query is padded
    model = Slope(0.5)
    params = {"w": torch.tensor(0.5, dtype=torch.float64)}
    w = 0.5
    # Worked out on paper: step 1: task 1 w' = 0.35, dL_q/dw = 2(0.35 - 2)(1 - 0.1*5) = -1.65; task 2
    # w' = 0.4, dL_q/dw = (5*0.4 - 3)(1 - 0.1*2) = -0.8; w = 0.5 + 0.05*2.45 = 0.6225. Step 2 the same
    # way: -1.58875 and -0.408, w = 0.7223375. (First order, without the 1 - alpha L'' factors, step 1
    # alone would give 0.715.)
    for expected in (0.6225, 0.7223375):
        params, _ = outer_step(model, params, support, query, alpha, beta)
        w = _by_hand(w, tasks, alpha, beta)
        assert w == pytest.approx(expected, abs=1e-12)
        assert float(params["w"]) == pytest.approx(expected, abs=1e-12)


def test_inner_update_is_one_gradient_step_on_the_support():
    model = Slope(0.5)
    support = _side([1.0, 2.0], [1.0, 0.0], 2)
    adapted = inner_update(model, {"w": torch.tensor(0.5, dtype=torch.float64)}, support, alpha=0.1)
    assert float(adapted["w"]) == pytest.approx(0.5 - 0.1 * (5 * 0.5 - 1), abs=1e-12)  # L_s' = 5w - 1


def test_hp_learner_layers_follow_figure_3():
    net = HPLearner(meta_dim=10, hp_dim=4, hidden=8, meta_latent=5, hp_latent=3)
    linear = lambda m: [layer for layer in m if isinstance(layer, nn.Linear)]  # noqa: E731
    assert [(l.in_features, l.out_features) for l in linear(net.meta_encoder)] == [(10, 8), (8, 5)]
    assert [(l.in_features, l.out_features) for l in linear(net.hp_encoder)] == [(4, 8), (8, 3)]
    assert [(l.in_features, l.out_features) for l in linear(net.predictor)] == [(8, 8), (8, 8), (8, 1)]
    meta, theta = torch.randn(10), torch.rand(7, 4)
    out = net(meta, theta)
    assert out.shape == (7,)
    torch.testing.assert_close(out, net(meta.expand(7, -1), theta))  # one M broadcast = M per row


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(2, 9), min_size=1, max_size=5), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_support_and_query_partition_every_task(sizes, fraction, seed):
    rng = np.random.default_rng(seed)
    tasks = [Task(f"t{i}", rng.normal(size=3), rng.random((k, 2)), np.arange(k, dtype=float) + 10 * i) for i, k in enumerate(sizes)]
    scaler = Scaler(np.zeros(3), 1.0, 0.0, 1.0)
    support, query = split_batch(tasks, scaler, fraction, rng)
    for i, task in enumerate(tasks):
        s = support[2][i][support[3][i] > 0].numpy()
        q = query[2][i][query[3][i] > 0].numpy()
        assert len(s) >= 1 and len(q) >= 1
        np.testing.assert_allclose(np.sort(np.concatenate([s, q])), task.y)  # a partition: nothing lost, nothing twice


def test_fit_maml_learns_a_shared_landscape_and_reloads():
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(6):
        theta = rng.random((20, 2))
        tasks.append(Task(f"t{i}", rng.normal(size=4) * 0.1, theta, 0.9 - ((theta - 0.6) ** 2).sum(1)))
    learner = fit_maml(tasks, MAMLConfig(steps=600, beta=0.05, hidden=16, seed=0), progress=False)
    assert np.mean(learner.losses[-20:]) < 0.3 * np.mean(learner.losses[:20])
    grid = rng.random((50, 2))
    truth = 0.9 - ((grid - 0.6) ** 2).sum(1)
    assert np.corrcoef(learner.predict(tasks[0].meta, grid), truth)[0, 1] > 0.9
    again = load_learner(learner.state_dict())
    np.testing.assert_allclose(again.predict(tasks[0].meta, grid), learner.predict(tasks[0].meta, grid))


def test_a_subset_too_small_for_the_split_is_one_line():
    tasks = [Task("digits-r0-adv-s0-000", np.zeros(3), np.zeros((1, 2)), np.array([0.5]))]
    with pytest.raises(ConfigurationError, match=r"subset 'digits-r0-adv-s0-000' has 1 observation\(s\); the support/query split of MAML needs at least 2"):
        check_tasks(tasks)
    with pytest.raises(ConfigurationError, match="support_fraction"):
        MAMLConfig(support_fraction=1.0)
