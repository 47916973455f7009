"""The testbed card of a task family (issue 27, docs/testbeds.md): headroom, noise, optimum
diversity, transferable structure, proxy fidelity and cost, measured before any method runs.

    python benchmarks/testbed_card.py --family mnist1d_mlp
    python benchmarks/testbed_card.py --family tabular_mlp --n-tasks 24 --n-configs 50 --family-seed 1
    python benchmarks/testbed_card.py --family digits_mlp --set '{"base": "wine", "n_val": 60}'   # another base
    for p in 0 1 2 3; do python benchmarks/testbed_card.py --family digits_mlp --n-configs 100 --shard $p/4 & done; wait
    python benchmarks/testbed_card.py --family digits_mlp --n-configs 100 --no-train                # the card of the shards' trials
    python benchmarks/testbed_card.py --database hyperrec                 # a stored database's card (HyperRec or a folder)

Trains into --out (default data/07_model_output/testbed_card/<family>-s<seed>; resumable: a rerun
trains only what is missing), prints the card and the factor-effect table, writes card.json there.
``--database`` trains nothing: the headroom, noise and sharing columns of a stored database
(final-epoch values, its curve seeds as the seeds; no proxy, statistics or cost columns).
Run it with OMP_NUM_THREADS=1; every trial uses one torch thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from transfertune.data.families import get_family
from transfertune.data.testbed import TARGETS, card, run_card, train_card_shard, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default=None)
    parser.add_argument("--database", default=None, help="'hyperrec' or a database folder: the card of its stored trials")
    parser.add_argument("--set", default="{}", help="JSON of FamilySpec fields that replace the preset's")
    parser.add_argument("--n-tasks", type=int, default=None, help="default: the preset's")
    parser.add_argument("--n-configs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--family-seed", type=int, default=0)
    parser.add_argument("--config-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--proxy-configs", type=int, default=None, help="train the 10 %% subsets with the first N configs only (default: all)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--shard", default=None, help="P/N: only train tasks P, P+N, ... in this process (start N of them side by "
                        "side, then rerun with --no-train for the card)")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: the card of the configs every task and seed has finished in the stores (an unfinished run)")
    args = parser.parse_args()
    if args.database:
        return database_card(args.database)
    if not args.family:
        parser.error("give --family (a preset to train) or --database (a stored database)")
    spec = get_family(args.family).replace(**json.loads(args.set))
    out = Path(args.out or f"data/07_model_output/testbed_card/{args.family}-s{args.family_seed}")
    start = time.perf_counter()
    if args.shard:
        shard, n_shards = (int(x) for x in args.shard.split("/"))
        n = train_card_shard(spec, str(out), shard, n_shards, args.n_tasks, args.n_configs, args.seeds, args.family_seed, args.config_seed,
                             proxy_configs=args.proxy_configs)
        print(f"shard {args.shard}: trained {n} trials in {time.perf_counter() - start:.0f} s")
        return
    result = run_card(spec, str(out), args.n_tasks, args.n_configs, args.seeds, args.family_seed, args.config_seed,
                      workers=args.workers, progress=False, proxy_configs=args.proxy_configs,
                      train=not args.no_train)
    result["wall_s"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "card.json").write_text(json.dumps(result, indent=1, default=float))
    c, v = result["card"], result["verdicts"]
    print(f"\n{spec.name} ({spec.base}, {spec.model}, {spec.epochs} epochs): {int(c['n_tasks'])} tasks x {int(c['n_configs'])} configs x "
          f"{int(c['n_seeds'])} seeds ({int(c['proxy_configs'])} configs on the 10 % subsets), family seed {args.family_seed}, "
          f"{result['wall_s']:.0f} s\n")
    for key in ("best_median", "random_regret", "best_of_3", "best_of_10", "noise_sd", "noise_sd_top10", "noise_sd_all", "random_other", "oracle_nearest", "stats_nearest",
                "proxy_low", "proxy_high", "agreement_spearman", "seconds_median", "seconds_p90", "cpu_seconds_median", "cpu_seconds_max",
                "diverged_share"):
        if key in c:
            print(f"  {key:20s} {c[key]:.3f}")
    print()
    for key, text in TARGETS.items():
        print(f"  {'PASS' if v[key] else 'MISS' if v[key] is False else '  ? '}  {text}")
    print()
    print(pd.DataFrame(result["factor_effects"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


def database_card(database: str) -> None:
    import numpy as np

    from hyperrec import load_database

    catalog = load_database(None if database == "hyperrec" else database)
    tasks = list(catalog.tasks)
    # (tasks, configs, seeds): each curve seed's final epoch
    Y_seeds = np.stack([np.stack([catalog.grid(t, s)[:, -1] for s in catalog.seeds], -1) for t in tasks])
    c = card(Y_seeds.mean(-1), Y_seeds)
    v = verdicts(c)
    print(f"\n{database}: {len(tasks)} tasks x {Y_seeds.shape[1]} configs x {Y_seeds.shape[2]} curve seeds (final epoch)\n")
    for key in ("best_median", "random_regret", "best_of_3", "best_of_10", "noise_sd", "random_other", "oracle_nearest", "agreement_spearman"):
        print(f"  {key:20s} {c[key]:.4f}")
    print()
    for key, text in TARGETS.items():
        print(f"  {'PASS' if v[key] else 'MISS' if v[key] is False else '  ? '}  {text}")


if __name__ == "__main__":
    main()
