"""Choose AT2's acquisition settings without touching the 5 test tasks.

Each HyperRec pair has four training tasks. An *inner* pair holds one of them out as the test
task and transfers from the other three, so the 5 pairs give 20 inner pairs whose test tasks
are never the benchmark's. Settings are compared here; the winner is then run once on the 5
benchmark pairs (``benchmarks/at2_bench.py``), which keeps the benchmark a held-out test.

    python benchmarks/at2_validation.py                      # the candidates below, 1 repetition
    python benchmarks/at2_validation.py --data-seed 1         # on the database's second set of curves
    python benchmarks/at2_validation.py --candidates '{"mine": {"method": "at2", "eta": 0.5}}'
    python benchmarks/at2_validation.py --pairs random --candidates '{"transfer_screening": {}, "k5": {"method": "transfer_screening", "k": 5}}'   # any registered method
    python benchmarks/at2_validation.py --pairs random --draws 2 --out s0.csv --subsets 5   # 44 pairs shaped like the benchmark's
    python benchmarks/at2_validation.py --from-csv s0.csv s1.csv --score-against default   # is a lead more than noise?
    python benchmarks/at2_validation.py --pairs benchmark --candidates '{"at2": {"method": "at2"}}'   # the 5 test pairs: reporting only
    python benchmarks/at2_validation.py --database data/01_raw/mnist1d_scale --pairs random --draws 1 --n-train 8   # another database (its space.yml, val_acc)

``--pairs random``: a larger validation set with the benchmark's shape (``--n-train`` training
tasks, HyperRec's four). Every task that is not a benchmark test task (22 of HyperRec's 27) is the
test task once per draw, with the training tasks drawn at random from the others; the benchmark's
test tasks are never used. ``--database FOLDER`` runs on another database of that layout (its
``train_test_pairs.json`` names the test tasks kept out, its ``space.yml`` beside it, metric
``val_acc``). The draws are seeded, so every candidate sees the same pairs.

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

from hyperrec import load_database
from transfertune.core.catalog import TaskPair
from transfertune.core.metrics import summary
from transfertune.methods.runner import build_episodes, run_episodes


# An ablation ladder from the paper's Max-Trial-GP-UCB on the exact model to the default: each row
# adds one choice.
LITERAL = {"defer_switch": False, "budget_aware": False, "recommend_from": "all"}
CANDIDATES = {
    "literal Max-Trial-GP-UCB, no weight perturbation": {"method": "at2", **LITERAL, "weight_var": 0.0},
    "+weight_var auto": {"method": "at2", **LITERAL},
    "+budget_aware": {"method": "at2", **LITERAL, "budget_aware": True},
    "+best_value": {"method": "at2", "defer_switch": False},
    "+defer_switch (default)": {"method": "at2"},
}


def method_settings(candidates: dict) -> dict:
    """Each candidate's keywords for ``build_episodes``, plus zero-shot's; AT2 (``method: at2``)
    runs on the CPU, other registered methods (e.g. ``{"transfer_screening": {}}``) as given."""
    methods = {label: {"device": "cpu", **params} if params.get("method", label) == "at2" else dict(params)
               for label, params in candidates.items()}
    methods["zero_shot"] = {}
    return methods


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


NUMBERS = (("R_25", 25, "regret"), ("R_50", 50, "regret"), ("R_100", 100, "regret"), ("F_100", 100, "rank"))


def per_episode(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """R_25, R_50, R_100 and F_100 as ``episodes x methods`` tables; episodes are keyed by their
    seed (one per pair and repetition)."""
    return {name: results[results.q == q].pivot_table(index="seed", columns="method", values=column) for name, q, column in NUMBERS}


def candidates_of(results: pd.DataFrame) -> list[str]:
    return [m for m in dict.fromkeys(results["method"]) if m != "zero_shot"]


def subset_win_rates(results: pd.DataFrame, size: int, draws: int = 10000, seed: int = 0) -> pd.DataFrame:
    """How often each candidate is below zero-shot on R_25, R_50, R_100, F_100 (each, and all four
    at once) when only ``size`` of the pairs are drawn (without replacement): what a benchmark of
    that many pairs can tell apart."""
    tables = per_episode(results)
    n_episodes = len(tables["R_25"])
    if size > n_episodes:
        raise SystemExit(f"--subsets {size}: only {n_episodes} pairs x repetitions were run")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(n_episodes, size=size, replace=False) for _ in range(draws)])
    rows = {}
    for method in candidates_of(results):
        below = {name: (table[method].to_numpy()[picks].mean(1) < table["zero_shot"].to_numpy()[picks].mean(1))
                 for name, table in tables.items()}
        rows[method] = {**{name: wins.mean() for name, wins in below.items()}, "all four": np.logical_and.reduce(list(below.values())).mean()}
    return pd.DataFrame(rows).T


def ratio_scores(result_sets: list[pd.DataFrame], reference: str, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One score per candidate: the mean, over the four numbers of every result set (e.g. one set
    per curve seed), of its ratio to zero-shot's (lower is better; zero-shot is 1). Beside it, the
    difference to ``reference``'s score with its paired-bootstrap standard deviation (the pairs of
    each set resampled with replacement, the same draw for every candidate) and the bootstrap
    share of draws in which the candidate scores lower: how much of a difference is noise."""
    methods = candidates_of(result_sets[0])
    if reference not in methods:
        raise SystemExit(f"--score-against {reference!r} is not among the candidates {methods}")
    # per set and number, an (episodes, methods) array with zero-shot last: converted once, not per draw
    sets = [[table[[*methods, "zero_shot"]].to_numpy() for table in per_episode(results).values()] for results in result_sets]

    def scores(picks: list[np.ndarray]) -> dict[str, float]:
        total = np.zeros(len(methods))
        for arrays, pick in zip(sets, picks):
            for values in arrays:
                means = values[pick].mean(axis=0)
                total += means[:-1] / means[-1]
        return dict(zip(methods, total / (len(NUMBERS) * len(sets))))

    sizes = [len(arrays[0]) for arrays in sets]
    observed = scores([np.arange(size) for size in sizes])
    rng = np.random.default_rng(seed)
    boot = [scores([rng.integers(0, size, size) for size in sizes]) for _ in range(draws)]
    rows = {}
    for method in methods:
        diff = np.array([b[method] - b[reference] for b in boot])
        rows[method] = {"score": observed[method], f"minus {reference}": observed[method] - observed[reference],
                        "bootstrap sd": diff.std(), "share of draws lower": (diff < 0).mean()}
    return pd.DataFrame(rows).T


def read_result_sets(specs: list[str]) -> list[pd.DataFrame]:
    """Each spec is one result set: CSV files of ``--out`` joined by commas (runs of other
    candidates on the same pairs and curves); zero-shot's repeated rows are dropped."""
    result_sets = []
    for spec in specs:
        frames = pd.concat([pd.read_csv(path) for path in spec.split(",")], ignore_index=True)
        result_sets.append(frames.drop_duplicates(subset=["method", "seed", "q"]))
    return result_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-seed", type=int, default=0, help="which of the database's curve seeds (HyperRec: 0 or 1)")
    parser.add_argument("--candidates", default=None,
                        help="JSON {label: keywords with method: NAME (default: the label)}; at2 candidates run on the CPU")
    parser.add_argument("--pairs", choices=("inner", "random", "benchmark"), default="inner",
                        help="inner: each benchmark pair's training tasks held out in turn (20); random: see above; "
                             "benchmark: the 5 test pairs themselves (for reporting only, never for choosing)")
    parser.add_argument("--draws", type=int, default=2, help="with --pairs random: pairs per task")
    parser.add_argument("--n-train", type=int, default=4, help="with --pairs random: training tasks per pair (HyperRec's benchmark: 4)")
    parser.add_argument("--database", default=None, help="a database folder (default: HyperRec)")
    parser.add_argument("--out", default=None, help="also write the long results table (CSV) here, for per-pair looks")
    parser.add_argument("--subsets", type=int, default=0,
                        help="also print how often each candidate beats zero-shot on random subsets of this many pairs (e.g. 5, the benchmark's)")
    parser.add_argument("--from-csv", nargs="+", default=None, metavar="A.csv[,B.csv]",
                        help="read the long results of earlier --out runs instead of running: one result set per argument "
                             "(e.g. one per curve seed), files of other candidates on the same pairs joined by commas")
    parser.add_argument("--score-against", default=None, metavar="LABEL",
                        help="with --from-csv: each candidate's mean ratio to zero-shot over all sets and numbers, its "
                             "difference to LABEL and that difference's bootstrap s.d.")
    args = parser.parse_args()
    if args.score_against and not args.from_csv:
        parser.error("--score-against reads earlier runs: give them with --from-csv")
    if args.from_csv:
        result_sets = read_result_sets(args.from_csv)
        for spec, results in zip(args.from_csv, result_sets):
            print(f"\n{spec}:\n")
            print(wide_table(results).to_markdown(floatfmt=".4f"))
            if args.subsets:
                _print_subsets(results, args.subsets)
        if args.score_against:
            print(f"\nMean ratio to zero-shot over the 4 numbers x {len(result_sets)} set(s), and the difference to {args.score_against}:\n")
            print(ratio_scores(result_sets, args.score_against).sort_values("score").to_markdown(floatfmt=".4f"))
        return
    torch.set_num_threads(1)  # small tensors: more threads only contend on the shared 2 cores (runner.run_episodes)
    catalog = load_database(args.database)
    candidates = json.loads(args.candidates) if args.candidates else CANDIDATES
    methods = method_settings(candidates)
    if args.pairs == "inner":
        pairs = inner_pairs(catalog.pairs)
        what = "inner pairs (a training task held out, 3 tasks to transfer from"
    elif args.pairs == "benchmark":
        pairs = list(catalog.pairs)
        what = f"benchmark test pairs ({len(catalog.pairs[0].train)} tasks to transfer from"
    else:
        pairs = random_pairs(catalog, args.draws, n_train=args.n_train)
        what = f"random pairs ({args.draws} per task outside the benchmark's test tasks, {args.n_train} random tasks to transfer from"
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
