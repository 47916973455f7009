"""AT2 on the 5 HyperRec pairs next to the foundation baselines: the table of docs/benchmarks.md.

    python benchmarks/at2_bench.py                       # exact_kronecker AT2, random, zero-shot
    python benchmarks/at2_bench.py --svgp                # also the SVGP inference (slow on a CPU)
    python benchmarks/at2_bench.py --repetitions 3 --jobs 2
    python benchmarks/at2_bench.py --at2 '{"config_kernel": "deep_linear"}'   # other AT2 settings
    python benchmarks/at2_bench.py --per-pair            # also a row per pair and method
    python benchmarks/at2_bench.py --data-seed 1         # the database's second set of curves

Prints the summary (mean ± s.e. over pairs x repetitions) at q = 25, 50, 100 and the wall time
per episode (offline fit + 100 queries) for each method.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hyperrec import load_hyperrec
from transfertune.core.metrics import summary, to_markdown
from transfertune.methods.runner import build_episodes, run_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--svgp", action="store_true", help="add AT2 with the paper's SVGP inference")
    parser.add_argument("--svgp-epochs", type=int, default=20)
    parser.add_argument("--svgp-inducing", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--at2", default="{}", help="JSON of AT2 keywords that replace the defaults")
    parser.add_argument("--data-seed", type=int, default=0, help="which of the database's curve seeds (HyperRec: 0 or 1)")
    parser.add_argument("--per-pair", action="store_true", help="also print regret and rank per pair and method")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: more threads only contend on the shared 2 cores (runner.run_episodes)
    catalog = load_hyperrec()
    methods: dict = {"at2": {"device": args.device, **json.loads(args.at2)}, "zero_shot": {}, "random_search": {}}
    if args.svgp:
        methods["at2_svgp"] = {"method": "at2", "inference": "svgp", "device": args.device,
                               "svgp": {"inducing_points": args.svgp_inducing, "epochs": args.svgp_epochs, "online_steps": 10}}
    start = time.perf_counter()
    episodes = build_episodes(catalog, methods, catalog.pairs, args.repetitions, args.budget, seed=0, data_seed=args.data_seed)
    results = run_episodes(episodes, n_jobs=args.jobs)
    print(f"\nHyperRec (curves of seed {args.data_seed}), {len(catalog.pairs)} pairs x {args.repetitions} repetition(s), Q = {args.budget}, "
          f"{time.perf_counter() - start:.0f} s in all\n")
    print(to_markdown(summary(results, [q for q in (25, 50, 100) if q <= args.budget])))
    if args.per_pair:
        at_q = results[results.q.isin([25, 50, 100])].pivot_table(index=["pair", "method"], columns="q", values=["regret", "rank"])
        at_q.columns = [f"{'R' if name == 'regret' else 'F'}_{q}" for name, q in at_q.columns]
        print(at_q.round(4).reset_index().to_markdown(index=False) + "\n")
    per_episode = results.groupby(["method", "pair", "repetition"], sort=False)["wall_time_s"].max()
    print("| method | seconds per pair (fit + all queries) |\n| --- | ---: |")
    for method, seconds in per_episode.groupby(level="method", sort=False).mean().items():
        print(f"| {method} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
