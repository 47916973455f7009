"""Train/test task pairs of a catalog (``train_test_pairs.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError

PAIR_METHODS = ("leave_one_out", "random")


def make_pairs(
    tasks: Sequence[str],
    method: str = "leave_one_out",
    n_train: int | None = None,
    n_pairs: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Transfer problems over ``tasks``.

    Args:
        tasks: task names (order does not matter; they are sorted first).
        method: ``leave_one_out``: every task is the test task once, trained on the others
            (all of them, or ``n_train`` drawn at random); ``random``: ``n_pairs`` pairs, each a
            random test task and ``n_train`` random other tasks (HyperRec's layout is 4 + 1).
        n_train: training tasks per pair (None: all other tasks).
        n_pairs: number of pairs for ``random`` (None: one per task); ``leave_one_out`` keeps
            the first ``n_pairs`` test tasks in a seeded random order when given.
        seed: seeds every random draw.

    Returns:
        ``[{"train": [task, ...], "test": task}, ...]``.
    """
    names = sorted(set(map(str, tasks)))
    if method not in PAIR_METHODS:
        raise ConfigurationError(f"pairs method {method!r} is unknown; choose one of {PAIR_METHODS}")
    if len(names) < 2:
        raise ConfigurationError(f"train/test pairs need at least 2 tasks, got {names}; add subsets")
    k = len(names) - 1 if n_train is None else int(n_train)
    if not 1 <= k <= len(names) - 1:
        raise ConfigurationError(f"pairs.n_train must be in 1..{len(names) - 1} for {len(names)} tasks, got {n_train}")
    rng = np.random.default_rng(seed)
    if method == "leave_one_out":
        tests = list(names)
        if n_pairs is not None:
            tests = [names[i] for i in rng.permutation(len(names))[: int(n_pairs)]]
    else:
        count = len(names) if n_pairs is None else int(n_pairs)
        tests = [names[i] for i in rng.integers(0, len(names), size=count)]
    pairs = []
    for test in tests:
        others = [t for t in names if t != test]
        train = others if k == len(others) else sorted(others[i] for i in rng.choice(len(others), size=k, replace=False))
        pairs.append({"train": train, "test": test})
    return pairs
