"""Issue 4's baselines on the 5 HyperRec pairs: the "Baselines on HyperRec" table of docs/benchmarks.md.

    python benchmarks/baselines_bench.py                          # all baselines, 3 repetitions, 2 processes
    python benchmarks/baselines_bench.py --repetitions 1 --methods gp_ucb rgpe
    python benchmarks/baselines_bench.py --save /tmp/a.parquet    # keep the long table ...
    python benchmarks/baselines_bench.py --compare /tmp/a.parquet # ... and check a rerun matches it
    python benchmarks/baselines_bench.py --data-seed 1            # the database's second set of curves
    python benchmarks/baselines_bench.py --methods syne_zero_shot syne_cts   # Syne Tune peers (pip install 'transfertune[peers]')

Every method runs on every pair x repetition with Q = 100 (repetition r of pair p uses seed
1000 p + r, as the benchmark pipeline does). Prints the summary (mean ± s.e. over pairs x
repetitions) at q = 25, 50, 100 and the wall time per episode (offline fit + all queries).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from hyperrec import load_hyperrec
from transfertune.core.metrics import summary, to_markdown
from transfertune.methods.runner import build_episodes, resolve_pairs, run_episodes

BASELINES = ["random_search", "zero_shot", "gp_ucb", "gp_ei", "box_bo", "rgpe", "ablr", "ablr_hb", "hyperband", "bohb",
             "transfer_screening", "per_task_screening", "portfolio_zero_shot"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=BASELINES, help="registry names (default: every baseline)")
    parser.add_argument("--pairs", nargs="+", default=None, help="test tasks of the pairs (default: all 5)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (one episode each)")
    parser.add_argument("--data-seed", type=int, default=0, help="which of the database's curve seeds (HyperRec: 0 or 1)")
    parser.add_argument("--save", type=Path, help="write the long results table (parquet) here")
    parser.add_argument("--compare", type=Path, help="a saved table: check this run reproduces it exactly")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared 2-core CPU: one thread per episode process
    catalog = load_hyperrec()
    pairs = resolve_pairs(catalog, args.pairs or "all")
    episodes = build_episodes(catalog, {m: {} for m in args.methods}, pairs, args.repetitions, args.budget, seed=args.seed, data_seed=args.data_seed)
    start = time.perf_counter()
    results = run_episodes(episodes, n_jobs=args.jobs)
    elapsed = time.perf_counter() - start
    print(f"\nHyperRec (curves of seed {args.data_seed}), {len(pairs)} pairs x {args.repetitions} repetition(s), Q = {args.budget}, "
          f"{len(episodes)} episodes on {args.jobs} process(es), {elapsed:.0f} s wall clock in all\n")
    print(to_markdown(summary(results, [q for q in (25, 50, 100) if q <= args.budget])))
    per_episode = results.groupby(["method", "pair", "repetition"], sort=False)["wall_time_s"].max()
    print("| method | seconds per episode, mean | max |\n| --- | ---: | ---: |")
    for method, seconds in per_episode.groupby(level="method", sort=False):
        print(f"| {method} | {seconds.mean():.1f} | {seconds.max():.1f} |")
    if args.save:
        results.to_parquet(args.save, index=False)
        print(f"\nsaved {len(results)} rows to {args.save}")
    if args.compare:
        reference = pd.read_parquet(args.compare).drop(columns="wall_time_s")
        same = reference.equals(results.drop(columns="wall_time_s"))
        print(f"\nrerun {'reproduces' if same else 'DIFFERS FROM'} {args.compare} (all columns but wall_time_s)")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
