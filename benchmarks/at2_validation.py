"""Choose AT2's acquisition settings without touching the 5 test tasks.

Each HyperRec pair has four training tasks. An *inner* pair holds one of them out as the test
task and transfers from the other three, so the 5 pairs give 20 inner pairs whose test tasks
are never the benchmark's. Settings are compared here; the winner is then run once on the 5
benchmark pairs (``benchmarks/at2_bench.py``), which keeps the benchmark a held-out test.

    python benchmarks/at2_validation.py                      # the candidates below, 1 repetition
    python benchmarks/at2_validation.py --data-seed 1         # on the database's second set of curves
    python benchmarks/at2_validation.py --candidates '{"mine": {"method": "at2", "eta": 0.5}}'

Prints, per candidate, mean simple regret at q = 25, 50, 100 and mean final rank at q = 100 over
the inner pairs, next to zero-shot transfer.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch

from hyperrec import load_hyperrec
from transfertune.core.catalog import TaskPair
from transfertune.core.metrics import summary
from transfertune.methods.runner import build_episodes, run_episodes


# An ablation ladder from the paper's Max-Trial-GP-UCB to the default: each row adds one choice
# (the switching margin, tried before the deferred switch, is then replaced by it).
OLD_SWITCH = {"switch_margin": 1.0, "defer_switch": False}
CANDIDATES = {
    "paper": {"method": "at2", "u_init": 4.0, "switch_margin": 0.0, "defer_switch": False, "budget_aware": False, "recommend_from": "all"},
    "+u_init_20": {"method": "at2", "switch_margin": 0.0, "defer_switch": False, "budget_aware": False, "recommend_from": "all"},
    "+switch_margin_1": {"method": "at2", **OLD_SWITCH, "budget_aware": False, "recommend_from": "all"},
    "+budget_aware": {"method": "at2", **OLD_SWITCH, "recommend_from": "all"},
    "+in_sample": {"method": "at2", **OLD_SWITCH, "recommend_from": "observed"},
    "+best_value": {"method": "at2", **OLD_SWITCH},
    "+defer_switch, margin 0 (default)": {"method": "at2"},
    "default, switch_margin_1": {"method": "at2", "switch_margin": 1.0},
    "default, eta_0": {"method": "at2", "eta": 0.0},
}


def inner_pairs(pairs: list[TaskPair]) -> list[TaskPair]:
    """Leave-one-training-task-out pairs: every training task of every pair becomes a test task once."""
    inner = []
    for pair in pairs:
        for held_out in pair.train:
            inner.append(TaskPair(train=tuple(t for t in pair.train if t != held_out), test=held_out))
    return inner


def wide_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method: R_25, R_50, R_100 and F_100 (means over pairs x repetitions)."""
    table = summary(results, (25, 50, 100))
    regret = table.pivot(index="method", columns="q", values="regret_mean").add_prefix("R_")
    rank = table[table.q == 100].set_index("method")["rank_mean"].rename("F_100")
    order = list(dict.fromkeys(results["method"]))  # candidates in the order given
    return regret.join(rank).reindex(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-seed", type=int, default=0, help="which of the database's curve seeds (HyperRec: 0 or 1)")
    parser.add_argument("--candidates", default=None, help="JSON {label: AT2 keywords with method: at2}")
    args = parser.parse_args()
    torch.set_num_threads(1 if args.jobs > 1 else 2)
    catalog = load_hyperrec()
    candidates = json.loads(args.candidates) if args.candidates else CANDIDATES
    methods = {label: {"device": "cpu", **params} for label, params in candidates.items()}
    methods["zero_shot"] = {}
    pairs = inner_pairs(catalog.pairs)
    start = time.perf_counter()
    results = run_episodes(build_episodes(catalog, methods, pairs, args.repetitions, 100, seed=0, data_seed=args.data_seed),
                           n_jobs=args.jobs)
    print(f"\n{len(pairs)} inner pairs (a training task held out, 3 tasks to transfer from; curves of seed {args.data_seed}) x "
          f"{args.repetitions} repetition(s), Q = 100, {time.perf_counter() - start:.0f} s\n")
    print(wide_table(results).to_markdown(floatfmt=".4f"))


if __name__ == "__main__":
    main()
