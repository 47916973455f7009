"""Why did AT2 query what it queried? A per-query trace of one HyperRec pair (exact inference).

    python benchmarks/at2_trace.py CUB200                          # the benchmark pair tuning CUB200
    python benchmarks/at2_trace.py CUB200 --watch 3,38,34,87       # also follow these config ids
    python benchmarks/at2_trace.py CUB200 --at2 '{"eta": 1.0}' --data-seed 1
    python benchmarks/at2_trace.py OIPETS --inner                  # an inner pair (at2_validation.py)
    python benchmarks/at2_trace.py task09 --db /tmp/ident_db       # a pair of another database (identifiability.py --db)

At the queries listed by ``--at`` it prints the config just queried (with its true rank on the
test task), how the test task is tied to each training task (OptiLand's distance D, its row of
K_T before the shrinkage that keeps the task matrix positive definite, and the weight
of each training task in the test task's prior, ``A^-1 a`` after the positive-definiteness
shrinkage, with the share of the test task's variance the training tasks leave unexplained), the
model's five favourite configs, and for the watched configs (default: the test task's top three
and the model's cold-start favourite) the forecast best value with its standard deviation next to
the truth. It ends with the query sequence as ``config(rank) x epochs`` runs.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch

from at2_validation import inner_pairs
from hyperrec import load_database
from transfertune.core.metrics import config_ranks
from transfertune.methods.runner import Episode, make_problem, run_episode


def task_weights(model) -> tuple[np.ndarray, np.ndarray, float]:
    """The test task's weights on the training tasks: OptiLand's (the mixture's) and given the
    observations (with the posterior of the weight perturbation), and the unexplained share."""
    with torch.no_grad():
        mix = model.mixture()
        return mix.w.cpu().numpy(), model.weights().cpu().numpy(), float(mix.unexplained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test_task", help="test task of one of the database's pairs, e.g. CUB200")
    parser.add_argument("--inner", action="store_true", help="the inner pair (benchmarks/at2_validation.py) that holds this training task out")
    parser.add_argument("--at2", default="{}", help="JSON of AT2 keywords that replace the defaults")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--db", default=None, help="another database folder (with its space.yml), e.g. one kept by identifiability.py --db")
    parser.add_argument("--metric", default="val_acc", help="with --db: the metric column")
    parser.add_argument("--seed", type=int, default=None, help="the repetition's seed (default: the benchmark's, 1000 x pair index)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--watch", default="", help="comma-separated config ids to follow")
    parser.add_argument("--at", default="0,1,2,5,10,20,30,50,75,100", help="queries after which to print the state")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: more threads only contend on the shared 2 cores
    catalog = load_database(args.db, args.metric)
    pairs = inner_pairs(catalog.pairs) if args.inner else catalog.pairs
    names = [pair.test for pair in pairs]
    if args.test_task not in names:
        raise SystemExit(f"no {'inner ' if args.inner else ''}pair tunes {args.test_task!r}; their test tasks are {names}")
    pair_index = names.index(args.test_task)
    pair = pairs[pair_index]
    seed = 1000 * pair_index if args.seed is None else args.seed  # as at2_bench.py and at2_validation.py seed it
    problem, grid = make_problem(catalog, pair, args.budget, seed, args.data_seed)
    ranks, best = config_ranks(grid), np.nanmax(grid, axis=1)
    ids = [int(i) for i in problem.config_ids]
    at = {int(q) for q in args.at.split(",")}
    watch: list[int] = []

    def state(q: int, method) -> None:
        model = method.model
        weights, posterior, unexplained = task_weights(model)
        parts = [f"q {q:3d}"]
        if model.optiland:
            task = model.model.product.task
            parts.append("D " + " ".join(f"{float(d):.3f}" for d in task.distance[model.T, : model.T])
                         + f"  U {float(task.u.detach()):.2f}  xi {float(task.xi.detach()):.3f}")
        parts.append(f"noise sd {model.noise_std:.4f}")
        parts.append("weights " + " ".join(f"{w:.2f}" for w in weights) + " -> " + " ".join(f"{w:.2f}" for w in posterior)
                     + f"  unexplained {unexplained:.3f}")
        favourites = np.argsort(-method.mean.max(axis=1))[:5]
        parts.append("top " + " ".join(f"{ids[i]}(r{ranks[i]})" for i in favourites))
        print(" | ".join(parts))
        for i in watch:
            e = int(np.argmax(method.mean[i]))
            print(f"        config {ids[i]:3d} (rank {ranks[i]:2d}): forecast {method.mean[i, e]:.3f} ± {method.std[i, e]:.3f} "
                  f"at epoch {e + 1}, true best {best[i]:.3f}, {method.trained_epochs(i)} epochs queried")

    def observe(q: int, method) -> None:
        if q == 0:  # after the offline fit
            if not hasattr(method.model, "posterior"):
                raise SystemExit("the trace reads the exact inference's posterior; run it with inference: exact_kronecker")
            cold_favourite = int(np.argmax(method.mean.max(axis=1)))
            watch.extend([ids.index(int(c)) for c in args.watch.split(",") if c] or list(np.argsort(ranks, kind="stable")[:3]) + [cold_favourite])
            print(f"{pair.test} from {', '.join(pair.train)}; curves of seed {args.data_seed}; Q = {args.budget}")
            with torch.no_grad():
                block = method.model.model.task_matrix()[: len(pair.train), : len(pair.train)].cpu().numpy()
            print("training block of K_T:\n" + "\n".join("    " + " ".join(f"{v:.2f}" for v in line) for line in block))
        if q in at:
            state(q, method)

    episode = Episode("at2", {"device": "cpu", **json.loads(args.at2)}, problem, grid, pair.test, repetition=0)
    frame = run_episode(episode, observe=observe)
    runs = [(int(c), len(list(group))) for c, group in itertools.groupby(frame.config_id)]
    print("queries: " + " ".join(f"{c}(r{ranks[ids.index(c)]})x{n}" for c, n in runs))
    regret = frame.regret.to_numpy()
    print(f"R_25 {regret[min(25, len(regret)) - 1]:.4f}  R_100 {regret[-1]:.4f}  F_{args.budget} {frame['rank'].iloc[-1]}")


if __name__ == "__main__":
    main()
