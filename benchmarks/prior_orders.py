"""How good is a transfer prior's first choice? Three orderings of the training tasks on HyperRec.

With 75-epoch curves and 100 one-epoch queries a method can train about one configuration to its
plateau, so R_100 and F_100 mostly measure the prior's first choice. This prints, for the 5 test
pairs and the 20 inner pairs (benchmarks/at2_validation.py) on both sets of curves, what the
first (and the better of the first two) configurations would give if trained to the end, by
three orderings of the training tasks:

- ``mean_rank``: by the mean over training tasks of each config's rank (zero-shot transfer's order);
- ``mean_value``: by the mean over training tasks of each config's best value;
- ``mean_curve``: by the best epoch of each config's mean learning curve over the training tasks
  (closest to what AT2's GP on the raw values transfers at cold start, where every training task
  is equally close to the test task, and Max-Trial's max over epochs).

    python benchmarks/prior_orders.py
    python benchmarks/prior_orders.py --compare IP102 3 38   # two configs' best values on a pair's tasks

No model is fitted; F is the test rank (0 = best) and R the regret of the config's best value.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from at2_validation import inner_pairs

from hyperrec import load_hyperrec
from transfertune.core.catalog import ObservationCatalog, TaskPair
from transfertune.core.metrics import config_ranks


def prior_orders(train_grids: np.ndarray) -> dict[str, np.ndarray]:
    """Config indices, best first, of each ordering of the ``(T, n, E)`` training grids."""
    mean_rank = np.stack([config_ranks(grid) for grid in train_grids]).mean(axis=0)
    mean_value = train_grids.max(axis=2).mean(axis=0)
    mean_curve = train_grids.mean(axis=0).max(axis=1)
    return {"mean_rank": np.argsort(mean_rank, kind="stable"), "mean_value": np.argsort(-mean_value, kind="stable"),
            "mean_curve": np.argsort(-mean_curve, kind="stable")}


def first_choices(catalog: ObservationCatalog, pairs: list[TaskPair], data_seed: int) -> pd.DataFrame:
    rows = []
    for pair in pairs:
        test = catalog.grid(pair.test, data_seed)
        ranks, best = config_ranks(test), test.max(axis=1)
        for order_name, order in prior_orders(catalog.grids(pair.train, data_seed)).items():
            rows.append({"order": order_name, "F_first": ranks[order[0]], "R_first": best.max() - best[order[0]],
                         "F_best_of_2": ranks[order[:2]].min(), "R_best_of_2": best.max() - best[order[:2]].max()})
    return pd.DataFrame(rows).groupby("order", sort=False).mean()


def compare_configs(catalog: ObservationCatalog, test_task: str, a: int, b: int, data_seed: int = 0) -> pd.DataFrame:
    """For the benchmark pair with ``test_task``: per task, configs ``a`` and ``b``'s best values and ranks."""
    pair = next(p for p in catalog.pairs if p.test == test_task)
    rows = []
    for task in (*pair.train, pair.test):
        grid = catalog.grid(task, data_seed)
        ia, ib = (int(np.flatnonzero(catalog.config_ids == c)[0]) for c in (a, b))
        best, ranks = grid.max(axis=1), config_ranks(grid)
        rows.append({"task": task + (" (test)" if task == pair.test else ""), f"best_{a}": best[ia], f"best_{b}": best[ib],
                     f"best_{a} - best_{b}": best[ia] - best[ib], f"rank_{a}": ranks[ia], f"rank_{b}": ranks[ib]})
    return pd.DataFrame(rows)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", nargs=3, metavar=("TEST_TASK", "CONFIG_A", "CONFIG_B"))
    parser.add_argument("--data-seed", type=int, default=0, help="with --compare: which curves")
    args = parser.parse_args()
    catalog = load_hyperrec()
    if args.compare:
        task, a, b = args.compare
        print(compare_configs(catalog, task, int(a), int(b), args.data_seed).to_markdown(index=False, floatfmt=".4f"))
        return
    tables = []
    for data_seed in catalog.seeds:
        for label, pairs in (("5 test pairs", catalog.pairs), ("20 inner pairs", inner_pairs(catalog.pairs))):
            table = first_choices(catalog, pairs, data_seed).reset_index()
            table.insert(0, "curves", data_seed)
            table.insert(0, "pairs", label)
            tables.append(table)
    print(pd.concat(tables).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
