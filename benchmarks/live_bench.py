"""The targets of issue 20 (live tuning), printed as tables.

    python benchmarks/live_bench.py                      # all three parts
    python benchmarks/live_bench.py --part replay        # catalog replay: identical, and its slowdown
    python benchmarks/live_bench.py --part live          # live digits trials per minute, 1 and 2 Dask workers
    python benchmarks/live_bench.py --part continue      # continuing a trial by one epoch against one epoch

replay: every method on the 5 HyperRec pairs (seed 1000 p, Q = 100), through the trial protocol
(``run_episode``: PoolSearcher + TabularObjective.evaluate) and through the direct pool loop it
replaced (:func:`direct_episode`, the old ``run_episode``), one after the other in this process,
``--rounds`` times; each episode's time is the minimum over the rounds. Prints whether every
result column but the wall time is identical, the seconds of both and their ratio. On a shared
machine these times are noisy, so it also measures the protocol's own cost: the two floor
baselines (whose asks cost nothing) ``--overhead-rounds`` times each, minimum per episode; the
difference per query, times the queries, over the direct loop's seconds, bounds the slowdown of
the whole replay (the methods' own code is the same in both).

live: ``random_space`` over the MLP space on the digits task of the ``tune`` pipeline
(class subsets seed 1, subset 0), each trial 5 epochs, ``--live-trials`` trials, with 1 worker
(in-process) and 2 Dask workers (a LocalCluster of processes; its start-up is in the wall
time, ``steady`` counts from the first finished trial to the last).

continue: a TrainingObjective trains a trial to epoch 1, then continues it one epoch at a time
to ``--epochs``; each continuation's wall time (load the checkpoint and build the model: "load";
train and evaluate one epoch; write the checkpoint and the rows, fsync-ed: "store") against the epoch's own
training time (``epoch_time_s``: train + evaluate) and against one epoch of an uninterrupted
``train_trial`` (median over epochs 2..E). Restarting from scratch instead would cost e epochs
for epoch e.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from hyperrec import load_hyperrec
from transfertune.core.metrics import config_ranks, simple_regret
from transfertune.core.objectives import TabularObjective
from transfertune.methods.registry import make_method
from transfertune.methods.runner import RESULT_COLUMNS, Episode, build_episodes, run_episode

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["random_search", "zero_shot", "hyperband", "bohb", "gp_ucb", "gp_ei", "box_bo", "rgpe", "ablr", "ablr_hb", "at2",
           "transfer_screening", "per_task_screening", "portfolio_zero_shot"]


def direct_episode(episode: Episode) -> pd.DataFrame:
    """``run_episode`` before the trial protocol: pool indices straight to ``TabularObjective.query``."""
    torch.manual_seed(episode.problem.seed)
    problem = episode.problem
    objective = TabularObjective(episode.test_grid, budget=problem.budget)
    ranks = config_ranks(episode.test_grid)
    method = make_method(episode.label, episode.params)
    start = time.perf_counter()
    method.setup(problem)
    rows = []
    for q in range(1, problem.budget + 1):
        index = int(method.ask())
        if not objective.can_continue(index):
            raise RuntimeError(f"method {episode.label!r} asked config {index}, which has no epoch left")
        value = objective.query(index)
        epoch = objective.trained_epochs(index)
        method.tell(index, epoch, value)
        recommended = int(method.recommend())
        rows.append((q, int(problem.config_ids[index]), epoch, value, int(problem.config_ids[recommended]), int(ranks[recommended]),
                     time.perf_counter() - start))
    frame = pd.DataFrame(rows, columns=["q", "config_id", "epoch", "value", "recommended_config_id", "rank", "wall_time_s"])
    frame["regret"] = simple_regret(frame["value"], objective.optimum)
    frame["method"], frame["pair"], frame["repetition"], frame["seed"] = episode.label, episode.pair, episode.repetition, problem.seed
    return frame[RESULT_COLUMNS]


def replay(methods: list[str], rounds: int, overhead_rounds: int) -> bool:
    catalog = load_hyperrec()
    episodes = build_episodes(catalog, {m: {} for m in methods}, catalog.pairs, 1, 100, seed=0)
    times: dict[str, dict[str, float]] = {m: {"direct": 0.0, "protocol": 0.0} for m in methods}
    same = True
    for episode in episodes:
        best = {"direct": float("inf"), "protocol": float("inf")}
        frames = {}
        for _ in range(rounds):
            for name, run in (("direct", direct_episode), ("protocol", run_episode)):
                start = time.perf_counter()
                frames[name] = run(episode)
                best[name] = min(best[name], time.perf_counter() - start)
        equal = frames["direct"].drop(columns="wall_time_s").equals(frames["protocol"].drop(columns="wall_time_s"))
        same &= equal
        for name in best:
            times[episode.label][name] += best[name]
        print(f"  {episode.label:14s} {episode.pair:12s} direct {best['direct']:7.3f} s  protocol {best['protocol']:7.3f} s  "
              f"{'identical' if equal else 'DIFFERENT'}", flush=True)
    print(f"\nCatalog replay, HyperRec, 5 pairs x 1 repetition, Q = 100, min of {rounds} rounds per episode:\n")
    print("| method | direct loop s | trial protocol s | ratio | results |\n| --- | ---: | ---: | ---: | --- |")
    total = {"direct": 0.0, "protocol": 0.0}
    for method, t in times.items():
        total = {k: total[k] + t[k] for k in total}
        print(f"| {method} | {t['direct']:.3f} | {t['protocol']:.3f} | {t['protocol'] / t['direct']:.3f} | "
              f"{'identical' if same else 'see above'} |")
    print(f"| all | {total['direct']:.2f} | {total['protocol']:.2f} | {total['protocol'] / total['direct']:.3f} | "
          f"{'identical' if same else 'DIFFERENT'} |\n")
    overhead = protocol_overhead(catalog, overhead_rounds)
    queries = 100 * len(episodes)
    print(f"Protocol cost per query (random_search and zero_shot, min of {overhead_rounds} rounds per episode): {1e6 * overhead:.1f} us; "
          f"x {queries} queries = {overhead * queries:.3f} s, {100 * overhead * queries / total['direct']:.3f} % of the direct loop's "
          f"{total['direct']:.1f} s above\n")
    return same


def protocol_overhead(catalog, rounds: int) -> float:
    """Seconds the protocol adds per query: (protocol - direct) / 100 for methods whose asks cost nothing."""
    differences = []
    for episode in build_episodes(catalog, {"random_search": {}, "zero_shot": {}}, catalog.pairs, 1, 100, seed=0):
        best = {}
        for name, run in (("direct", direct_episode), ("protocol", run_episode)) * rounds:
            start = time.perf_counter()
            run(episode)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        differences.append((best["protocol"] - best["direct"]) / 100)
    return statistics.median(differences)


def digits_task():
    from transfertune.data import load_source
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import tasks_from_manifests

    manifests = class_subsets(load_source("digits"), n_subsets=1, n_classes=5, n_per_class=None, seed=1)
    return tasks_from_manifests(manifests)[0]


def live(workers: list[int], trials: int) -> None:
    from transfertune.live.runner import run_live
    from transfertune.live.tuner import TRIALS_DIR, Tuner
    from transfertune.training.objective import TrainingObjective
    from transfertune.training.runner import TrainSettings

    task = digits_task()
    space = ROOT / "conf" / "base" / "spaces" / "mlp.yml"
    print(f"Live digits: random_space, MLP, task {task.name} ({len(task.X_train)} + {len(task.X_val)} samples), "
          f"{trials} trials x 5 epochs:\n")
    print("| workers | trials | wall s | trials/min | steady trials/min | epochs/min |\n| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in workers:
        folder = Path(tempfile.mkdtemp(prefix="live_bench_"))
        try:
            tuner = Tuner(space=space, method="random_space", store=folder, budget=5 * trials, max_epochs=5, task=task.name)
            objective = TrainingObjective(task, TrainSettings("mlp", epochs=5, device="cpu"), folder / TRIALS_DIR, space=tuner.problem.space)
            finished = []
            start = time.perf_counter()
            run_live(tuner, objective, workers=n, progress=False,
                     on_tell=lambda row: finished.append(time.perf_counter()) if row["epoch"] == 5 else None)
            wall = time.perf_counter() - start
            tuner.close()
            steady = 60 * (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else float("nan")
            print(f"| {n} | {len(finished)} | {wall:.1f} | {60 * len(finished) / wall:.1f} | {steady:.1f} | {60 * 5 * len(finished) / wall:.0f} |", flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print()


def continuation(models: list[str], epochs: int) -> None:
    from transfertune.core.trials import Trial
    from transfertune.training.models import MODELS
    from transfertune.training.objective import TrainingObjective
    from transfertune.training.runner import TrainSettings
    from transfertune.training.trainer import train_trial

    task = digits_task()
    print(f"Continuing a trial by one epoch, task {task.name}, epochs 2..{epochs} (medians):\n")
    print("| model | continue one epoch s | of which load s | of which store s | its epoch_time_s | uninterrupted epoch s | ratio to its epoch | ratio to uninterrupted |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model in models:
        config = dict(MODELS[model].example)
        straight = train_trial(model, config, task, epochs=epochs, seed=0, device="cpu")
        uninterrupted = statistics.median(r["epoch_time_s"] for r in straight.records[1:])
        folder = Path(tempfile.mkdtemp(prefix="live_bench_"))
        try:
            objective = TrainingObjective(task, TrainSettings(model, epochs=epochs, device="cpu"), folder)
            objective.evaluate(Trial(0, config, 1))
            units = [objective.evaluate(Trial(0, config, e, start_epoch=e - 1)) for e in range(2, epochs + 1)]
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        unit = statistics.median(u.wall_time_s for u in units)
        load = statistics.median(u.load_s for u in units)
        save = statistics.median(u.save_s for u in units)
        own = statistics.median(u.records[-1]["epoch_time_s"] for u in units)
        print(f"| {model} | {unit:.4f} | {load:.4f} | {save:.4f} | {own:.4f} | {uninterrupted:.4f} | {unit / own:.2f} | {unit / uninterrupted:.2f} |", flush=True)
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["replay", "live", "continue", "all"], default="all")
    parser.add_argument("--methods", nargs="+", default=METHODS, help="replay: registry names")
    parser.add_argument("--rounds", type=int, default=1, help="replay: runs of each variant per episode (the minimum counts)")
    parser.add_argument("--overhead-rounds", type=int, default=30, help="replay: runs of the floor baselines for the per-query cost")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--live-trials", type=int, default=24)
    parser.add_argument("--models", nargs="+", default=["mlp", "hts_cnn"], help="continue: train-stage models")
    parser.add_argument("--epochs", type=int, default=8, help="continue: epochs per trial")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared 2-core CPU; Dask workers are single-threaded too
    same = True
    if args.part in ("replay", "all"):
        same = replay(args.methods, args.rounds, args.overhead_rounds)
    if args.part in ("live", "all"):
        live(args.workers, args.live_trials)
    if args.part in ("continue", "all"):
        continuation(args.models, args.epochs)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
