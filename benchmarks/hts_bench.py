"""Evaluation of HTS (seed 001), printed as tables.

    python benchmarks/hts_bench.py                                   # live: the default pairs of conf/base/parameters_hts.yml
    python benchmarks/hts_bench.py --pairs x1 --store /tmp/hts       # one of them
    python benchmarks/hts_bench.py --set t_max=20 --set repetitions=2 --methods hts no_transfer linear
    python benchmarks/hts_bench.py --store /tmp/hts --quiet          # keep the stores, then ...
    python benchmarks/hts_bench.py --part report --store /tmp/hts    # ... print the tables again from the runs' event logs (nothing trained)
    python benchmarks/hts_bench.py --part trace --store /tmp/hts     # ... replay the hts runs and print what each round of g did
    python benchmarks/hts_bench.py --part noise --store /tmp/hts     # is each source saturated? its best 5 configs retrained with 3 more seeds
    python benchmarks/hts_bench.py --part hyperrec                   # HTS's rows in the HyperRec catalog table
    python benchmarks/hts_bench.py --part hyperrec --epochs 3 --repetitions 1

live: the pipeline's experiment (the same library calls as `kedro run --pipeline=hts`): HORD tunes
the source task (Omega_S), then every method tunes the target task; printed: how many
evaluations each method needs to reach the baseline's (HORD without transfer) final mean best
error, as a ratio t_max / evaluations (the paper: up to 5x fewer), per-seed ratios, and the mean
best error curves at a few evaluations. Stores go to a temporary folder (or --store).

hyperrec: the seed-001 searchers on the 5 HyperRec pairs as the baselines' table runs them
(Q = 100 epochs, seeds 1000 p + r), each evaluation trained for --epochs epochs; their configs
snap to the nearest recorded config (off_pool: nearest). The source of a pair is its four
training tasks (mean value per config at the evaluation epoch). Reference rows: random_space with
the same evaluations, and the pool methods random_search and zero_shot.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "conf" / "base" / "parameters_hts.yml"


def _set(params: dict, assignment: str) -> None:
    key, _, value = assignment.partition("=")
    if not key or not _:
        raise SystemExit(f"--set needs key=value, got {assignment!r}")
    target = params
    parts = key.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = yaml.safe_load(value)


def _params(args: argparse.Namespace) -> dict:
    params = copy.deepcopy(yaml.safe_load(PARAMS.read_text())["hts"])
    for assignment in args.set or []:
        _set(params, assignment)
    if args.methods:
        params["methods"] = {label: params["methods"][label] for label in args.methods}
    if args.pairs:
        params["pairs"] = {label: params["pairs"][label] for label in args.pairs}
    return params


def live(args: argparse.Namespace) -> int:
    from transfertune.pipelines.hts import nodes

    torch.set_num_threads(1)  # as the trials train (execution.torch_threads); the machine is shared
    params = _params(args)
    with tempfile.TemporaryDirectory() as tmp:
        params["store_dir"] = str(args.store or Path(tmp) / "stores")
        params["progress"] = not args.quiet
        p = nodes.parse_params(params)
        start = time.perf_counter()
        pairs = nodes.prepare_tasks(params)
        catalogs, table = nodes.tune_source(pairs, params)
        source_s = time.perf_counter() - start
        results = nodes.tune_target(pairs, catalogs, params)
        total = time.perf_counter() - start
    print(f"\n{len(pairs)} pair(s), {p.epochs} epochs per evaluation, {p.source_evaluations} source evaluations, t_max = {p.t_max}, "
          f"{p.repetitions} seed(s); {total:.0f} s wall clock ({source_s:.0f} s of it the sources)")
    frames = [_print_pair(label, pair, table[table["pair"] == label], results[results["pair"] == label].drop(columns="pair"), p)
              for label, pair in pairs.items()]
    if args.save:
        pd.concat(frames, ignore_index=True).to_csv(args.save, index=False)
        print(f"\nsaved the per-evaluation table to {args.save}")
    return 0


def _print_pair(label: str, pair: dict, source_table: pd.DataFrame, results: pd.DataFrame, p) -> pd.DataFrame:
    """One pair's tables: evaluations to reach the baseline, mean best error ± s.e. at a few evaluations, seconds per run."""
    from transfertune.methods.hts.experiment import best_error_curves, evaluations, evaluations_to_reach, reach_markdown

    source, target = pair["source"], pair["target"]
    best5 = np.sort(1 - source_table["val_acc"].dropna().to_numpy())[:5]
    evals = evaluations(results, p.epochs, p.t_max)
    curves = best_error_curves(evals)
    print(f"\n## pair {label}: source {source.name} ({len(source.X_train)} training samples) -> target {target.name} "
          f"({len(target.X_train)}); source's best 5 errors {' '.join(f'{e:.4f}' for e in best5)}\n")
    print(reach_markdown(evaluations_to_reach(evals, p.baseline)))
    marks = sorted({m for m in (1, 5, 10, 15, 20, 25, 30, 40, 50) if m <= p.t_max} | {p.t_max})
    print("mean best validation error (± s.e.) after n evaluations\n")
    print("| method | " + " | ".join(f"n = {m}" for m in marks) + " |\n| --- |" + " ---: |" * len(marks))
    for method, curve in curves.groupby("method", sort=False):
        curve = curve.set_index("evaluation")
        print(f"| {method} | " + " | ".join(f"{curve.loc[m, 'best_error_mean']:.4f} ± {curve.loc[m, 'best_error_se']:.4f}" for m in marks) + " |")
    per_run = evals.groupby(["method", "repetition"], sort=False)["seconds"].max().groupby(level="method", sort=False).mean()
    print("\n| method | seconds per run (training + the method), mean |\n| --- | ---: |")
    for method, seconds in per_run.items():
        print(f"| {method} | {seconds:.1f} |")
    return evals.assign(pair=label)


def _read_events(path: Path) -> tuple[pd.DataFrame, dict[int, dict]]:
    """A run's told epochs (``trial, epoch, value, t`` and the metrics) and its configs, from its event log."""
    rows, configs = [], {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "ask" and event["trial"] is not None:
            configs[int(event["trial"]["trial"])] = event["trial"]["config"]
        elif event["event"] == "tell":
            rows.append({"trial": int(event["trial"]), "epoch": int(event["epoch"]), "value": float(event["metrics"]["val_acc"]),
                         "t": float(event["t"]), **event["metrics"]})
    return pd.DataFrame(rows), configs


def report(args: argparse.Namespace) -> int:
    """The live part's tables from the event logs of finished runs under --store (nothing is
    trained or replayed): <store>/<pair>/source/<task>/events.jsonl and
    <store>/<pair>/target/<task>/<method>/rep<j>/events.jsonl, as the live part writes them."""
    from transfertune.pipelines.hts import nodes

    if args.store is None:
        raise SystemExit("--part report needs --store: the folder of the live runs' stores")
    params = _params(args)
    params["store_dir"], params["progress"] = str(args.store), False
    p = nodes.parse_params(params)
    pairs = nodes.prepare_tasks(params)
    frames = []
    for label, pair in pairs.items():
        source_log = Path(args.store) / label / "source" / pair["source"].name / "events.jsonl"
        told, configs = _read_events(source_log)
        last = told[told["epoch"] == p.epochs].set_index("trial")["value"]
        source_table = pd.DataFrame({"val_acc": [last.get(t, np.nan) for t in configs]})
        results = []
        for method in p.methods:
            for repetition in range(p.repetitions):
                log = Path(args.store) / label / "target" / pair["target"].name / method / f"rep{repetition}" / "events.jsonl"
                if not log.is_file():
                    raise SystemExit(f"{log}: no run (run the live part with --store first)")
                told, configs = _read_events(log)
                told.insert(0, "method", method)
                told.insert(1, "repetition", repetition)
                told["config"] = told["trial"].map(lambda t: json.dumps(configs[t], sort_keys=True))
                results.append(told)
        frames.append(_print_pair(label, pair, source_table, pd.concat(results, ignore_index=True), p))
    if args.save:
        pd.concat(frames, ignore_index=True).to_csv(args.save, index=False)
        print(f"\nsaved the per-evaluation table to {args.save}")
    if args.figure:
        from transfertune.methods.hts.experiment import best_error_curves, plot_curves

        curves = pd.concat([best_error_curves(f.drop(columns="pair")).assign(pair=f["pair"].iloc[0]) for f in frames], ignore_index=True)
        plot_curves(curves, title=f"{p.repetitions} seeds, {p.epochs} epochs per evaluation", baseline=p.baseline).savefig(args.figure, dpi=100)
        print(f"saved Figure 1 to {args.figure}")
    return 0


def _from_stores(args: argparse.Namespace, why: str):
    """The parsed parameters, the pairs' tasks and the source's HORD runs replayed from --store (one
    torch thread, as the trials train): ``(p, pairs, catalogs, source_table)``."""
    from transfertune.pipelines.hts import nodes

    if args.store is None:
        raise SystemExit(f"--part {args.part} needs --store{why}")
    torch.set_num_threads(1)
    params = _params(args)
    params["store_dir"], params["progress"] = str(args.store), False
    p = nodes.parse_params(params)
    pairs = nodes.prepare_tasks(params)
    catalogs, table = nodes.tune_source(pairs, params)  # replayed from the stores
    return p, pairs, catalogs, table


def trace(args: argparse.Namespace) -> int:
    """Replay the stored runs of one hts label (--store of an earlier live run) and print each round."""
    from transfertune.methods.hts.experiment import replay, trace_rounds
    from transfertune.pipelines.hts import nodes

    p, pairs, catalogs, _ = _from_stores(args, ": the folder of an earlier live run's stores")
    label = args.label
    options = dict(p.methods[label])
    method = options.pop("method", label)
    for pair_label, pair in pairs.items():
        target = pair["target"]
        frames = []
        for repetition in range(p.repetitions):
            store = Path(p.store_dir) / pair_label / "target" / target.name / label / f"rep{repetition}"
            searcher = replay(target, method, options, nodes._space(pair["space"]), nodes._settings(p, pair["model"], pair["fixed"]),
                              catalogs[pair_label], p.t_max, store, p.seed + repetition)
            frames.append(trace_rounds(searcher.run).assign(repetition=repetition))
        table = pd.concat(frames, ignore_index=True)
        print(f"\n## pair {pair_label}, {label}: every round of g, {p.repetitions} repetition(s) (trace_rounds in methods/hts/experiment.py)\n")
        print(table.round(4).to_markdown(index=False))
        means = table.groupby("round").mean(numeric_only=True).drop(columns="repetition")
        print("\nmean over repetitions\n")
        print(means.round(4).to_markdown())
    return 0


def noise(args: argparse.Namespace) -> int:
    """Is each pair's source saturated? Its 5 best configs (of the stored HORD run, --store) are
    retrained with --noise-seeds more training seeds, on the source and on the target: the range of
    their errors against each config's SD over seeds (the evaluation noise)."""
    from transfertune.training.trainer import train_trial

    p, pairs, _, table = _from_stores(args, ": the folder of an earlier live run's stores")
    print("| pair | side | best 5 source configs' errors (seed 0) | range | mean SD over seeds | mean error over seeds | range > SD |")
    print("| --- | --- | --- | ---: | ---: | --- | --- |")
    for label, pair in pairs.items():
        rows = table[table["pair"] == label].dropna(subset=["val_acc"]).sort_values("val_acc", ascending=False, kind="stable").head(5)
        configs = [json.loads(c) for c in rows["config"]]
        for side in ("source", "target"):
            errors = np.array([[_error(train_trial(pair["model"], c, pair[side], p.epochs, seed=p.train_seed + s, device="cpu", fixed=pair["fixed"]))
                                for s in range(args.noise_seeds + 1)] for c in configs])  # (5, seeds)
            first = errors[:, 0]
            spread, sd = float(first.max() - first.min()), float(np.nanmean(errors.std(axis=1, ddof=1)))
            print(f"| {label} | {side} | {' '.join(f'{e:.4f}' for e in first)} | {spread:.4f} | {sd:.4f} | "
                  f"{' '.join(f'{e:.4f}' for e in np.nanmean(errors, axis=1))} | {'yes' if spread > sd else 'no'} |")
    return 0


def g_epochs(args: argparse.Namespace) -> int:
    """The rule that sets g's epoch count (docs/experiments/hts.md), on the pair(s) of --pairs:
    HORD's source observations (replayed from --store or run), then per seed the m Latin hypercube
    samples evaluated on the target, M from them, and g trained 400 epochs; its map of A's 5 best
    points (bounded S_S) after 25, 50, 100, 200 epochs and after the early-stopping rule, against
    the map after 400. Rule: the smallest count within 0.05 (mean distance in the unit cube) of the
    400-epoch map on every seed; none: 400."""
    from transfertune.methods.hts.algorithm import HTS
    from transfertune.methods.hts.mapping import rank_pairs, train_mapping
    from transfertune.methods.hts.surrogate import fit_rbf, predict
    from transfertune.pipelines.hts import nodes
    from transfertune.training.trainer import train_trial

    p, pairs, _, table = _from_stores(args, " (the source's HORD run is kept there)")
    counts, reference = (25, 50, 100, 200), 400
    print("| pair | seed | g epochs | distance of A's 5 best mapped to the 400-epoch map | final loss |\n| --- | ---: | --- | ---: | ---: |")
    rows = []
    for label, pair in pairs.items():
        source = table[table["pair"] == label]
        acc = source["val_acc"].to_numpy(dtype=np.float64)
        errors = 1 - np.where(np.isfinite(acc), acc, np.nanmin(acc))
        space = nodes._space(pair["space"])
        for seed in range(args.repetitions):
            run = HTS(space, [json.loads(c) for c in source["config"]], errors, seed=seed)
            for config in run.initial_design():
                error = _error(train_trial(pair["model"], config, pair["target"], p.epochs, seed=seed, device="cpu", fixed=pair["fixed"]))
                run.observe(config, 1.0 if np.isnan(error) else error, "lhs")
            X, f = run.target_observations()
            inputs, targets = rank_pairs(run.A, run.A_values, run.B, predict(fit_rbf(space, X, f, "target"), run.B))
            best, maps = run.A[run.A_order[:5]], {}
            long = train_mapping(inputs, targets, run.hidden, seed=seed, epochs=reference,
                                 on_epoch=lambda e, net: maps.__setitem__(e, net.map(best)) if e in counts + (reference,) else None)
            early = train_mapping(inputs, targets, run.hidden, seed=seed)
            maps["rule"] = early.net.map(best)
            for key in (*counts, "rule"):
                distance = float(np.mean(np.linalg.norm(maps[key] - maps[reference], axis=1)))
                loss = long.losses[key - 1] if key != "rule" else early.losses[-1]
                rows.append((key, distance))
                name = key if key != "rule" else f"rule ({early.epochs})"
                print(f"| {label} | {seed} | {name} | {distance:.4f} | {loss:.5f} |", flush=True)
    ok = [c for c in counts if all(d <= 0.05 for k, d in rows if k == c)]
    print(f"\nthe rule's count: {ok[0] if ok else reference}")
    return 0


def _error(result) -> float:
    return 1.0 - result.records[-1]["val_acc"] if result.status == "completed" and result.records else np.nan


def hyperrec(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from hyperrec import load_hyperrec

    from transfertune.core.metrics import summary, to_markdown
    from transfertune.methods.runner import build_episodes, resolve_pairs, run_episodes

    torch.set_num_threads(1)
    catalog = load_hyperrec()
    e = int(args.epochs)
    methods = {
        "hts": {"epochs": e}, "hts_random": {"method": "hts", "epochs": e, "n_random": 2}, "hts_hord": {"method": "hts", "epochs": e, "hord_after": 0.5},
        "no_transfer": {"method": "hord", "epochs": e}, "linear": {"method": "source_order", "epochs": e},
        "random_space": {"epochs": e}, "random_search": {}, "zero_shot": {},
    }
    pairs = resolve_pairs(catalog, "all")
    episodes = build_episodes(catalog, methods, pairs, args.repetitions, 100, seed=0)
    start = time.perf_counter()
    results = run_episodes(episodes, n_jobs=args.jobs, show_progress=not args.quiet)
    elapsed = time.perf_counter() - start
    print(f"\nHyperRec (curves of seed 0), {len(pairs)} pairs x {args.repetitions} repetition(s), Q = 100, {e} epochs per evaluation of the "
          f"space methods, {len(episodes)} episodes on {args.jobs} process(es), {elapsed:.0f} s wall clock\n")
    print(to_markdown(summary(results, [25, 50, 100])))
    space_rows = results[results["snap_distance"].notna()] if "snap_distance" in results else results.iloc[:0]
    print("| method | mean snap distance | seconds per episode, mean |\n| --- | ---: | ---: |")
    seconds = results.groupby(["method", "pair", "repetition"], sort=False)["wall_time_s"].max().groupby(level="method", sort=False).mean()
    snaps = space_rows.groupby("method", sort=False)["snap_distance"].mean()
    for method, s in seconds.items():
        snap = f"{snaps[method]:.3f}" if method in snaps.index else "0 (pool)"
        print(f"| {method} | {snap} | {s:.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["live", "report", "trace", "noise", "g_epochs", "hyperrec"], default="live")
    parser.add_argument("--label", default="hts", help="trace: the hts label whose rounds to trace")
    parser.add_argument("--set", action="append", help="live: override a parameter of parameters_hts.yml (dotted key=YAML value)")
    parser.add_argument("--methods", nargs="+", help="live: labels of hts.methods to run (default: all)")
    parser.add_argument("--pairs", nargs="+", help="live, trace: labels of hts.pairs to run (default: all)")
    parser.add_argument("--store", type=Path, help="live: keep the run stores here (a rerun resumes them)")
    parser.add_argument("--save", type=Path, help="live, report: write the per-evaluation table (CSV) here")
    parser.add_argument("--figure", type=Path, help="report: write Figure 1 (one panel per pair) here")
    parser.add_argument("--epochs", type=int, default=2, help="hyperrec: epochs per evaluation (default 2: 50 evaluations in Q = 100)")
    parser.add_argument("--repetitions", type=int, default=3, help="hyperrec: repetitions per pair; g_epochs: seeds")
    parser.add_argument("--jobs", type=int, default=2, help="hyperrec: parallel processes")
    parser.add_argument("--noise-seeds", type=int, default=3, help="noise: training seeds besides the first")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    return {"live": live, "report": report, "trace": trace, "noise": noise, "g_epochs": g_epochs, "hyperrec": hyperrec}[args.part](args)


if __name__ == "__main__":
    sys.exit(main())
