"""A tiny synthetic transfer problem (12 configs x 6 epochs x 2 training tasks) for the baselines.

Curves are ``q_t(c) * (1 - exp(-e / 2))`` with a per-task quality ``q_t`` that depends on the
config's numeric hyperparameters, so the tasks are correlated and transfer has something to find.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.methods.base import TransferProblem
from transfertune.methods.runner import Episode

SPACE = {
    "name": "tiny",
    "hyperparameters": [
        {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True},
        {"name": "width", "type": "integer", "lower": 8, "upper": 64},
        {"name": "opt", "type": "categorical", "choices": ["adam", "sgd"]},
        {"name": "momentum", "type": "float", "lower": 0.0, "upper": 0.99, "condition": {"parent": "opt", "values": ["sgd"]}},
    ],
}


def tiny_problem(seed: int = 0, n_configs: int = 12, n_epochs: int = 6, budget: int = 30, test_like: int | None = None, flip: int | None = None) -> tuple[TransferProblem, np.ndarray]:
    """The problem and its test grid.

    Args:
        test_like: make training task ``test_like`` identical to the test task.
        flip: make training task ``flip`` the test task's mirror image (best becomes worst).
    """
    torch.set_num_threads(1)
    rng = np.random.default_rng(1234)  # the data do not depend on the repetition's seed
    space = SearchSpace.from_dict(SPACE)
    configs = space.sample(n_configs, seed=7)
    X = space.encode(configs)
    epochs = np.arange(1, n_epochs + 1)
    shape = 1 - np.exp(-epochs / 2.0)
    score = X @ np.array([1.0, 0.5, 0.3, -0.2, 0.4])  # X has 5 columns: lr, width, opt=adam, opt=sgd, momentum

    def grid(noise: float) -> np.ndarray:
        quality = 0.4 + 0.5 * (score - score.min()) / (np.ptp(score) + 1e-9)
        quality = quality + noise * rng.normal(size=n_configs)
        return np.clip(quality, 0.05, 0.99)[:, None] * shape[None, :]

    test_grid = grid(0.05)
    train = np.stack([grid(0.05), grid(0.05)])
    if test_like is not None:
        train[test_like] = test_grid
    if flip is not None:
        train[flip] = test_grid.max() + test_grid.min() - test_grid  # every pair of cells ordered the other way
    problem = TransferProblem(
        config_ids=np.arange(100, 100 + n_configs),
        configs=configs,
        X=X,
        space=space,
        n_epochs=n_epochs,
        train_tasks=("t0", "t1"),
        train_grids=train,
        test_task="test",
        trial_length=np.full(n_configs, n_epochs),
        budget=budget,
        seed=seed,
    )
    return problem, test_grid


@pytest.fixture
def tiny() -> Callable[..., tuple[TransferProblem, np.ndarray]]:
    return tiny_problem


@pytest.fixture
def tiny_episode() -> Callable[..., Episode]:
    def make(label: str, params: dict | None = None, seed: int = 0, budget: int = 30, **kwargs) -> Episode:
        problem, test_grid = tiny_problem(seed=seed, budget=budget, **kwargs)
        return Episode(label, dict(params or {}), problem, test_grid, "test", 0)

    return make
