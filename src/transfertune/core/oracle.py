"""The oracle floor of the tuning protocol: the lowest simple regret any method can have.

A value at (config c, epoch e) can only be seen after e queries of c (epochs come in order), so
after q queries every observed cell has e <= q. The best value reachable with q epochs is

    b_q = max_c max_{e <= min(q, L_c)} f(c, e)          (L_c: the epochs recorded for c)

and it is reached by training the right config alone, so ``R_q(floor) = optimum - b_q`` is both
a lower bound on every method's R_q and attained by an oracle that knows the test task. Its
recommendation is the config holding ``b_q`` (its F_q is that config's final rank), so the floor
is 0 from q = (the optimum's epoch) on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfertune.core.metrics import config_ranks


def oracle_floor(grid: np.ndarray, budget: int) -> pd.DataFrame:
    """The floor for q = 1..budget on one test grid.

    Args:
        grid: ``(n_configs, n_epochs)`` metric values, epoch e in column e-1, NaN after a
            trial's recorded end.
        budget: Q.
    Returns:
        One row per q: ``q``, ``config`` (row index holding ``b_q``; the lowest index on ties),
        ``epoch`` (the first epoch where it holds it), ``value`` (``b_q``), ``regret``
        (``optimum - b_q``) and ``rank`` (that config's final rank, 0 = best).
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2:
        raise ValueError(f"grid must be (n_configs, n_epochs), got shape {grid.shape}")
    filled = np.where(np.isfinite(grid), grid, -np.inf)
    # running max over epochs per config, then the best config at each epoch cap
    running = np.maximum.accumulate(filled, axis=1)  # (n, E)
    optimum = float(running[:, -1].max())
    ranks = config_ranks(grid)
    rows = []
    for q in range(1, int(budget) + 1):
        cap = min(q, grid.shape[1])
        config = int(np.argmax(running[:, cap - 1]))
        value = float(running[config, cap - 1])
        epoch = int(np.argmax(filled[config, :cap] == value)) + 1
        rows.append((q, config, epoch, value, optimum - value, int(ranks[config])))
    return pd.DataFrame(rows, columns=["q", "config", "epoch", "value", "regret", "rank"])
