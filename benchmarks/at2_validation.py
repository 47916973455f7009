"""Choose AT2's acquisition settings without touching the 5 test tasks.

Each HyperRec pair has four training tasks. An *inner* pair holds one of them out as the test
task and transfers from the other three, so the 5 pairs give 20 inner pairs whose test tasks
are never the benchmark's. Settings are compared here; the winner is then run once on the 5
benchmark pairs (``benchmarks/at2_bench.py``), which keeps the benchmark a held-out test.

    python benchmarks/at2_validation.py                      # the candidates below, 1 repetition
    python benchmarks/at2_validation.py --data-seed 1         # on the database's second set of curves
    python benchmarks/at2_validation.py --candidates '{"mine": {"method": "at2", "eta": 0.5}}'
    python benchmarks/at2_validation.py --pairs random --draws 2   # 44 pairs shaped like the benchmark's

``--pairs random``: a larger validation set with the benchmark's shape (four training tasks).
Every task that is not a benchmark test task (22 of HyperRec's 27) is the test task once per
draw, with four training tasks drawn at random from the other 21; the benchmark's test tasks are
never used. The draws are seeded, so every candidate sees the same pairs.

Prints, per candidate, mean simple regret at q = 25, 50, 100 and mean final rank at q = 100 over
the pairs, next to zero-shot transfer.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
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


def random_pairs(catalog, draws: int, n_train: int = 4, seed: int = 0) -> list[TaskPair]:
    """``draws`` pairs per non-benchmark-test task, each with ``n_train`` random training tasks
    from the other non-benchmark-test tasks (seeded: the same pairs for every candidate)."""
    held_out = {pair.test for pair in catalog.pairs}
    pool = [task for task in catalog.tasks if task not in held_out]
    if len(pool) <= n_train:
        raise SystemExit(f"{len(pool)} tasks outside the benchmark's test tasks: too few for {n_train} training tasks")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(draws):
        for test in pool:
            others = [task for task in pool if task != test]
            train = tuple(str(t) for t in rng.choice(others, size=n_train, replace=False))
            pairs.append(TaskPair(train=train, test=test))
    return pairs


def wide_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method: R_25, R_50, R_100 and F_100 (means over pairs x repetitions)."""
    table = summary(results, (25, 50, 100))
    regret = table.pivot(index="method", columns="q", values="regret_mean").add_prefix("R_")
    rank = table[table.q == 100].set_index("method")["rank_mean"].rename("F_100")
    order = list(dict.fromkeys(results["method"]))  # candidates in the order given
    return regret.join(rank).reindex(order)


def subset_win_rates(results: pd.DataFrame, size: int, draws: int = 10000, seed: int = 0) -> pd.DataFrame:
    """How often each candidate is below zero-shot on R_25, R_50, R_100, F_100 (each, and all four
    at once) when only ``size`` of the pairs are drawn (without replacement): what a benchmark of
    that many pairs can tell apart. Episodes are keyed by their seed (one per pair and repetition)."""
    per_episode = {}
    for name, q, column in (("R_25", 25, "regret"), ("R_50", 50, "regret"), ("R_100", 100, "regret"), ("F_100", 100, "rank")):
        rows = results[results.q == q]
        per_episode[name] = rows.pivot_table(index="seed", columns="method", values=column)
    episodes = per_episode["R_25"].index.to_numpy()
    if size > len(episodes):
        raise SystemExit(f"--subsets {size}: only {len(episodes)} pairs x repetitions were run")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(len(episodes), size=size, replace=False) for _ in range(draws)])
    rows = {}
    for method in [m for m in dict.fromkeys(results["method"]) if m != "zero_shot"]:
        below = {name: (table[method].to_numpy()[picks].mean(1) < table["zero_shot"].to_numpy()[picks].mean(1))
                 for name, table in per_episode.items()}
        rows[method] = {**{name: wins.mean() for name, wins in below.items()}, "all four": np.logical_and.reduce(list(below.values())).mean()}
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-seed", type=int, default=0, help="which of the database's curve seeds (HyperRec: 0 or 1)")
    parser.add_argument("--candidates", default=None, help="JSON {label: AT2 keywords with method: at2}")
    parser.add_argument("--pairs", choices=("inner", "random"), default="inner",
                        help="inner: each benchmark pair's training tasks held out in turn (20); random: see above")
    parser.add_argument("--draws", type=int, default=2, help="with --pairs random: pairs per task")
    parser.add_argument("--out", default=None, help="also write the long results table (CSV) here, for per-pair looks")
    parser.add_argument("--subsets", type=int, default=0,
                        help="also print how often each candidate beats zero-shot on random subsets of this many pairs (e.g. 5, the benchmark's)")
    parser.add_argument("--from-csv", default=None, help="read the long results of an earlier --out instead of running")
    args = parser.parse_args()
    if args.from_csv:
        results = pd.read_csv(args.from_csv)
        print(wide_table(results).to_markdown(floatfmt=".4f"))
        if args.subsets:
            _print_subsets(results, args.subsets)
        return
    torch.set_num_threads(1 if args.jobs > 1 else 2)
    catalog = load_hyperrec()
    candidates = json.loads(args.candidates) if args.candidates else CANDIDATES
    methods = {label: {"device": "cpu", **params} for label, params in candidates.items()}
    methods["zero_shot"] = {}
    if args.pairs == "inner":
        pairs = inner_pairs(catalog.pairs)
        what = "inner pairs (a training task held out, 3 tasks to transfer from"
    else:
        pairs = random_pairs(catalog, args.draws)
        what = f"random pairs ({args.draws} per task outside the benchmark's test tasks, 4 random tasks to transfer from"
    start = time.perf_counter()
    results = run_episodes(build_episodes(catalog, methods, pairs, args.repetitions, 100, seed=0, data_seed=args.data_seed),
                           n_jobs=args.jobs)
    if args.out:
        results.to_csv(args.out, index=False)
    print(f"\n{len(pairs)} {what}; curves of seed {args.data_seed}) x "
          f"{args.repetitions} repetition(s), Q = 100, {time.perf_counter() - start:.0f} s\n")
    print(wide_table(results).to_markdown(floatfmt=".4f"))
    if args.subsets:
        _print_subsets(results, args.subsets)


def _print_subsets(results: pd.DataFrame, size: int) -> None:
    print(f"\nShare of 10,000 random subsets of {size} pairs on which the candidate's mean is below zero-shot's:\n")
    print(subset_win_rates(results, size).to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
