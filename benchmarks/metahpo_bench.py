"""Meta-HPO (seed 003) evaluation, printed as tables.

    python benchmarks/metahpo_bench.py --out /tmp/metahpo              # Table 1 + out-of-sample, 3 runs
    python benchmarks/metahpo_bench.py --out /tmp/metahpo --runs 1 --experiments synthetic_mlp
    python benchmarks/metahpo_bench.py --print /tmp/metahpo            # print the tables of an earlier --out
    python benchmarks/metahpo_bench.py --part region --out /tmp/region # L-BFGS region: box vs local, on validation
    python benchmarks/metahpo_bench.py --part options --out /tmp/opt   # labels x region x guard, on validation
    python benchmarks/metahpo_bench.py --part headroom --experiments tabular_family   # random configs on the full set
    python benchmarks/metahpo_bench.py --part fidelity --out /tmp/metahpo --experiments mnist1d_family   # subset vs full ranks of BOHB's configs

``--part table1`` (default): the pipeline's study (``conf/base/parameters_metahpo.yml``, the same
node functions) with ``runs`` repetitions: per experiment and method, the test metric of the chosen
config retrained on the full training set and the wall clock spent, mean ± standard error over
runs; then the out-of-sample scenario (Figure 6) per method. Writes ``runs.csv``, ``table1.csv``,
``table1.md``, ``out_of_sample.csv`` and the figures into ``--out``.

``--part region``: for each experiment and seed, one Meta-HPO run (adversarial subsets); from its
hp-learner, L-BFGS over the whole cube (``box``, the paper) and the trust region (``local``); and, as
a reference without the learner, BOHB's best observed subset config. Each config is trained on the
full set's training part and scored on its validation part (never the test set): the measurement
that chooses ``prediction.region`` (issue 23, with the mixed-budget learner).

``--part options`` (issue 30): for each experiment and seed, one Meta-HPO run's sampling and BOHB
(adversarial subsets), then from the same observations a learner per ``hp_learner.labels``
(``largest_reached``, the paper; ``highest_budget``; ``budget_input``), each predicting with
``region`` box and local; per (labels, region) the learner's own pick and the guarded choice
(``prediction.guard: incumbent``); plus the paper's query point (``meta_features.full:
subset_mean``, labels ``largest_reached``, box, no guard) and BOHB's incumbent. Every distinct
config is trained on the full set's training part and scored on its validation part (never the
test set). Writes ``options.csv``; prints the table and the paired differences the rules of
docs/experiments/metahpo.md read.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "conf" / "base" / "parameters_metahpo.yml"
CHANCE = {"mnist1d_family": 0.1, "tabular_family": 0.1, "synthetic_mlp": 0.2, "digits_cnn": 0.1}  # 1 / classes: the score of a config that diverges


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def load_params(out: Path, runs: int | None, experiments: list[str] | None, workers: int | None, no_hyperband: bool = False,
                override: str | None = None) -> dict:
    params = yaml.safe_load(PARAMS.read_text())["metahpo"]
    if override:
        params = _merge(params, json.loads(override))
    if no_hyperband:
        params["baselines"]["hyperband_subset_size"]["enabled"] = False
    params["store_dir"] = str(out / "store")
    params["progress"] = False
    if runs is not None:
        params["runs"] = runs
    if workers is not None:
        params["execution"]["workers"] = workers
    if experiments:
        unknown = sorted(set(experiments) - set(params["experiments"]))
        if unknown:
            raise SystemExit(f"unknown experiment(s) {unknown}; the parameter file has {sorted(params['experiments'])}")
        for name, experiment in params["experiments"].items():
            experiment["enabled"] = name in experiments
        if params["out_of_sample"]["experiment"] not in experiments:
            params["out_of_sample"]["enabled"] = False
    return params


def print_tables(out: Path) -> None:
    from transfertune.methods.metahpo.report import oos_summary, table1, table1_markdown

    from transfertune.methods.metahpo.report import paired_differences, paired_markdown

    runs = pd.read_csv(out / "runs.csv")
    print("\nTable 1: test metric of the chosen config retrained on the full training set, wall clock (s)\n")
    print(table1_markdown(table1(runs)))
    print("Paired by run: Meta-HPO minus each method\n")
    print(paired_markdown(paired_differences(runs)))
    diverged = runs["retrain_status"].eq("diverged")
    if diverged.any():
        # a diverged retrain has no test metric, and the pairs above leave its run out; scored as
        # chance (1 / classes) every pair counts
        chance = runs.assign(test_metric=runs["test_metric"].where(~diverged, runs["experiment"].map(CHANCE)))
        print(f"{int(diverged.sum())} retrain(s) diverged ({sorted(set(runs.loc[diverged, 'experiment'] + '/' + runs.loc[diverged, 'method']))}); "
              "scored as chance (1 / classes):\n")
        print(table1_markdown(table1(chance)))
        print(paired_markdown(paired_differences(chance)))
    print_trace(runs)
    if (out / "out_of_sample.csv").is_file():
        oos = pd.read_csv(out / "out_of_sample.csv")
        if len(oos):
            print("Out-of-sample (Figure 6): test metric on batch i + 1 of the config chosen on batch i\n")
            curve = oos.pivot_table(index="label", columns="eval_batch", values="test_metric", aggfunc="mean")
            curve.columns = [f"batch {c}" for c in curve.columns]
            summary = oos_summary(oos).set_index("label")[["test_mean", "test_se", "seconds_per_batch"]]
            print(curve.join(summary).to_markdown(floatfmt=".4f"))
            print()


def print_trace(runs: pd.DataFrame) -> None:
    """Per experiment and run, what separates the task from the method: BOHB's incumbent (its
    best full-budget subset config) and random search's choice, both retrained on the full set;
    the incumbent's subset score; whether the guard kept the incumbent, the learner's predicted gain
    and validation error; the evaluations each made in the same clock."""
    wide = runs.pivot_table(index=["experiment", "run"], columns="method", values="test_metric", aggfunc="first")
    def first(method: str, column: str) -> pd.Series:
        part = runs[runs["method"] == method].set_index(["experiment", "run"])
        return part[column] if column in part else pd.Series(np.nan, index=part.index)
    trace = pd.DataFrame({
        "incumbent_test": wide.get("bohb_incumbent"), "rs_test": wide.get("random_search"), "wrs_test": wide.get("metahpo_random"),
        "incumbent_subset": first("bohb_incumbent", "subset_metric"), "kept": first("metahpo", "chosen"),
        "gain": first("metahpo", "predicted_gain"), "learner_error": first("metahpo", "validation_error"),
        "bohb_evals": first("metahpo", "evaluations"), "rs_finished": first("random_search", "finished"), "clock_s": first("metahpo", "seconds"),
        "transfer_s": first("metahpo", "transfer_s"),
    })
    trace["rs_minus_incumbent"] = trace["rs_test"] - trace["incumbent_test"]
    print("Trace (test metric on the full set's retrain; kept: the guard's final choice, incumbent or learner):\n")
    print(trace.reset_index().to_markdown(index=False, floatfmt=".4f"))
    print()


def part_table1(args: argparse.Namespace) -> None:
    """One run at a time (seed + r), the files rewritten after each, so a stopped study keeps its
    finished runs (``--print`` reads them). ``--start-run K`` runs ``r = K .. K + runs - 1`` and keeps
    the rows of runs ``< K`` already in ``--out`` (a stopped study goes on; or run 0 copied there
    from ``kedro run --pipeline=metahpo``'s reporting files, the same node functions)."""
    from transfertune.pipelines.metahpo import nodes

    params = load_params(args.out, args.runs, args.experiments, args.workers, args.no_hyperband, args.override)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    data = nodes.prepare(params)
    first = int(args.start_run)
    runs, observations, oos = [], [], []
    for name, frames, read in (("runs.csv", runs, pd.read_csv), ("observations.parquet", observations, pd.read_parquet),
                               ("out_of_sample.csv", oos, pd.read_csv)):
        if first and (args.out / name).is_file():
            kept = read(args.out / name)
            frames.append(kept[kept["run"] < first])
            print(f"kept runs {sorted(set(frames[-1]['run']))} of {args.out / name}", flush=True)
    for r in range(first, first + params["runs"]):
        one = {**params, "runs": 1, "seed": params["seed"] + r, "store_dir": str(args.out / "store" / f"r{r}")}
        table, obs, _, _, offline = nodes.compare(data, one)
        runs.append(table.assign(run=r))
        observations.append(obs.assign(run=r))
        frame = nodes.out_of_sample(data, offline, one)
        oos.append(frame.assign(run=r))
        pd.concat(runs, ignore_index=True).to_csv(args.out / "runs.csv", index=False)
        pd.concat(observations, ignore_index=True).to_parquet(args.out / "observations.parquet", index=False)
        pd.concat(oos, ignore_index=True).to_csv(args.out / "out_of_sample.csv", index=False)
        print(f"run {r} done at {time.time() - start:.0f} s", flush=True)
    runs_frame, oos_frame = pd.read_csv(args.out / "runs.csv"), pd.read_csv(args.out / "out_of_sample.csv")
    table, markdown, figure, _, oos_figure = nodes.report(runs_frame, oos_frame)
    table.to_csv(args.out / "table1.csv", index=False)
    (args.out / "table1.md").write_text(markdown)
    figure.savefig(args.out / "table1.png", dpi=120)
    oos_figure.savefig(args.out / "out_of_sample.png", dpi=120)
    print(f"runs {first}..{first + params['runs'] - 1} in {time.time() - start:.0f} s; files in {args.out}")
    print_tables(args.out)


def enabled_experiments(study, pool):
    """Each enabled experiment of ``study`` with what the study parts train on:
    ``(name, resolved, data, space, settings, metric, full)``, ``full`` the full task scattered to ``pool``."""
    from transfertune.methods.metahpo.config import resolve
    from transfertune.methods.metahpo.datasets import load_experiment_data
    from transfertune.methods.metahpo.experiment import metric_of, settings_of, space_of

    for name, experiment in study.experiments.items():
        if not experiment.enabled:
            continue
        resolved = resolve(study, name)
        data = load_experiment_data(name, experiment.data.model_dump(), experiment.test_fraction, experiment.val_fraction, experiment.split_seed, study.root)
        space, settings = space_of(resolved), settings_of(resolved, study.execution, study.device)
        yield name, resolved, data, space, settings, metric_of(resolved, data), pool.scatter(data.full_task())


def part_region(args: argparse.Namespace) -> None:
    from transfertune.core.device import pick_device
    from transfertune.methods.metahpo.config import parse_params
    from transfertune.methods.metahpo.execution import WorkerPool, train_epochs
    from transfertune.methods.metahpo.experiment import metahpo_config
    from transfertune.methods.metahpo.method import learner_tasks, run_metahpo
    from transfertune.methods.metahpo.prediction import predict_config

    params = load_params(args.out, None, args.experiments, args.workers)
    study = parse_params(params)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with WorkerPool(study.execution.workers, study.execution.scheduler_address) as pool:
        for name, resolved, data, space, settings, metric, full in enabled_experiments(study, pool):
            for seed in args.seeds:
                result = run_metahpo(data, "adversarial", space, settings, metahpo_config(resolved, seed), pool, metric, seed, seed, pick_device(study.device), False)
                tasks = learner_tasks(result.hpo, result.meta_features, space, metric)
                theta, y = np.vstack([t.theta for t in tasks]), np.concatenate([t.y for t in tasks])
                p = resolved.prediction
                choices = {}
                for region in ("box", "local"):
                    choices[region] = predict_config(result.learner.torch_objective(result.full_meta), space, theta, y, p.n_best_starts, p.n_random_starts,
                                                     p.max_iter, seed=seed, region=region, region_radius=p.region_radius).config
                choices["best observed (no learner)"] = space.decode(theta[int(np.argmax(y))][None])[0]
                futures = {k: pool.submit(train_epochs, full, settings, c, settings.epochs, seed) for k, c in choices.items()}
                for variant, future in futures.items():
                    done = future.result()
                    value = done.records[-1][metric] if done.status == "completed" else np.nan
                    rows.append({"experiment": name, "seed": seed, "variant": variant, "val_metric": value, "config": json.dumps(choices[variant], sort_keys=True)})
                    print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "region.csv", index=False)
    table = frame.pivot_table(index=["experiment", "seed"], columns="variant", values="val_metric")
    print("\nFull-data validation metric of the predicted config\n")
    print(table.to_markdown(floatfmt=".4f"))
    diff = (table["local"] - table["box"]).dropna()
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    print(f"\nlocal - box: mean {diff.mean():+.4f} (s.e. {se:.4f}) over {len(diff)} paired runs")


def part_options(args: argparse.Namespace) -> None:
    import dataclasses

    from transfertune.core.device import pick_device
    from transfertune.methods.metahpo.bohb import LABELS
    from transfertune.methods.metahpo.config import parse_params
    from transfertune.methods.metahpo.execution import WorkerPool, train_epochs
    from transfertune.methods.metahpo.experiment import metahpo_config
    from transfertune.methods.metahpo.hp_learner import fit_maml
    from transfertune.methods.metahpo.method import learner_tasks, run_metahpo, transfer, validation_error

    params = load_params(args.out, None, args.experiments, args.workers, override=args.override)
    study = parse_params(params)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with WorkerPool(study.execution.workers, study.execution.scheduler_address) as pool:
        for name, resolved, data, space, settings, metric, full in enabled_experiments(study, pool):
            for seed in args.seeds:
                t0 = time.time()
                base = metahpo_config(resolved, seed)
                result = run_metahpo(data, "adversarial", space, settings, base, pool, metric, seed, seed, pick_device(study.device), False)
                choices: dict[str, dict] = {}
                variants = []
                for labels in LABELS:
                    config = dataclasses.replace(base, labels=labels)
                    maml = dataclasses.replace(config.maml, seed=config.maml.seed + seed)
                    tasks = learner_tasks(result.hpo, result.meta_features, space, metric, labels, config.bohb.min_epochs, config.bohb.max_epochs)
                    fitted = (fit_maml(tasks, maml, progress=False),
                              validation_error(tasks, maml, labels, config.prediction.holdout_fraction, seed))
                    for region in ("box", "local"):
                        c = dataclasses.replace(config, prediction=dataclasses.replace(config.prediction, region=region, guard="incumbent"))
                        out = transfer(result.hpo, result.meta_features, result.full_meta, space, metric, c, seed, fitted=fitted)
                        variants.append({"labels": labels, "region": region, "pick": out.prediction.config, "final": out.config, "chosen": out.chosen,
                                         "gain": out.gain, "validation_error": out.validation_error, "predicted": out.prediction.predicted})
                        if labels == "largest_reached" and region == "box":
                            paper = transfer(result.hpo, result.meta_features, np.mean(list(result.meta_features.values()), axis=0), space, metric,
                                             dataclasses.replace(c, prediction=dataclasses.replace(c.prediction, guard="none")), seed, fitted=fitted)
                            variants.append({"labels": "paper: subset_mean", "region": "box", "pick": paper.prediction.config, "final": paper.config,
                                             "chosen": "learner", "gain": paper.gain, "validation_error": float("nan"), "predicted": paper.prediction.predicted})
                incumbent = result.transfer.incumbent
                for v in variants:
                    choices[json.dumps(v["pick"], sort_keys=True)] = v["pick"]
                choices[json.dumps(incumbent, sort_keys=True)] = incumbent
                futures = {k: pool.submit(train_epochs, full, settings, c, settings.epochs, seed) for k, c in choices.items() if c is not None}
                scores = {}
                for k, f in futures.items():
                    done = f.result()
                    scores[k] = done.records[-1][metric] if done.status == "completed" and done.records else np.nan
                inc_score = scores.get(json.dumps(incumbent, sort_keys=True), np.nan)
                for v in variants:
                    pick = scores[json.dumps(v["pick"], sort_keys=True)]
                    final = scores.get(json.dumps(v["final"], sort_keys=True), np.nan)
                    rows.append({"experiment": name, "seed": seed, "labels": v["labels"], "region": v["region"], "pick_val": pick, "final_val": final,
                                 "incumbent_val": inc_score, "chosen": v["chosen"], "predicted": v["predicted"], "gain": v["gain"],
                                 "validation_error": v["validation_error"], "pick": json.dumps(v["pick"], sort_keys=True)})
                    print({k: rows[-1][k] for k in ("experiment", "seed", "labels", "region", "pick_val", "final_val", "incumbent_val", "chosen", "gain",
                                                    "validation_error")}, flush=True)
                print(f"{name} seed {seed}: {time.time() - t0:.0f} s (Meta-HPO {result.seconds:.0f} s)", flush=True)
                pd.DataFrame(rows).to_csv(args.out / "options.csv", index=False)
    print_options(args.out)


def print_options(out: Path) -> None:
    frame = pd.read_csv(out / "options.csv")
    frame["variant"] = frame["labels"] + " / " + frame["region"]
    # a config that diverges on the full set has no metric: it counts as chance (1 / classes)
    chance = frame["experiment"].map(CHANCE)
    for column in ("pick_val", "final_val", "incumbent_val"):
        frame[f"{column}_diverged"] = frame[column].isna()
        frame[column] = frame[column].fillna(chance)
    print("\nFull-data validation metric of the learner's pick (mean over seeds), and of the guarded choice\n")
    summary = frame.groupby(["experiment", "variant"]).agg(pick=("pick_val", "mean"), final=("final_val", "mean"), incumbent=("incumbent_val", "mean"),
                                                         learner_kept=("chosen", lambda c: int((c == "learner").sum())),
                                                         pick_diverged=("pick_val_diverged", "sum"), runs=("seed", "count"))
    print(summary.to_markdown(floatfmt=".4f"))
    ref = frame[frame["variant"] == "largest_reached / box"].set_index(["experiment", "seed"])["pick_val"]
    print("\nPaired differences of the pick against largest_reached / box (all experiments and seeds)\n")
    for variant, group in frame.groupby("variant"):
        d = (group.set_index(["experiment", "seed"])["pick_val"] - ref).dropna()
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"{variant:32s} {d.mean():+.4f} (s.e. {se:.4f}, n {len(d)})")
    for labels, group in frame[frame["labels"] != "paper: subset_mean"].groupby("labels"):
        box = group[group["region"] == "box"].set_index(["experiment", "seed"])["pick_val"]
        local = group[group["region"] == "local"].set_index(["experiment", "seed"])["pick_val"]
        d = (local - box).dropna()
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"local - box, {labels:18s} {d.mean():+.4f} (s.e. {se:.4f}, n {len(d)})")
    d = (frame["final_val"] - frame["incumbent_val"]).dropna()
    print(f"guarded choice - incumbent, all variants: {d.mean():+.4f} (s.e. {d.std(ddof=1) / np.sqrt(max(len(d), 1)):.4f}, n {len(d)}); "
          f"learner kept in {(frame['chosen'] == 'learner').sum()} of {len(frame)}")


def part_headroom(args: argparse.Namespace) -> None:
    """Random configs of the experiment's space trained ``max_epochs`` on the full set's training
    part, scored on its validation part: a quick look at the headroom before any method runs."""
    from transfertune.methods.metahpo.config import parse_params, resolve
    from transfertune.methods.metahpo.datasets import load_experiment_data
    from transfertune.methods.metahpo.experiment import metric_of, settings_of, space_of
    from transfertune.training.trainer import train_trial

    params = load_params(args.out, None, args.experiments, args.workers, override=args.override)
    study = parse_params(params)
    for name, experiment in study.experiments.items():
        if not experiment.enabled:
            continue
        resolved = resolve(study, name)
        data = load_experiment_data(name, experiment.data.model_dump(), experiment.test_fraction, experiment.val_fraction, experiment.split_seed, study.root)
        space, settings, metric = space_of(resolved), settings_of(resolved, study.execution, "cpu"), metric_of(resolved, data)
        full = data.full_task()
        values, t0 = [], time.time()
        for config in space.sample(args.n_configs, seed=1):
            done = train_trial(settings.model, config, full, settings.epochs, seed=0, device="cpu", fixed=settings.fixed)
            values.append(done.records[-1][metric] if done.records and done.status != "failed" else float("nan"))
        print(f"{name}: {len(data.source)} training rows; {args.n_configs} random configs, {metric} sorted: {np.round(sorted(values), 3).tolist()}; "
              f"{(time.time() - t0) / args.n_configs:.1f} s per evaluation", flush=True)


def part_fidelity(args: argparse.Namespace) -> None:
    """Do the proxy subsets rank configs as the full data does? From a table1 ``--out`` folder's
    ``observations.parquet``: every config BOHB trained to the full budget (``max_epochs``) on a
    subset, with its subset validation score, is trained ``max_epochs`` on the full set's training
    part and scored on its validation part (never the test set). Per experiment, run and strategy:
    Spearman between subset and full scores, the full score of the config best on its subset
    (BOHB's incumbent), and the best full score among those configs. Writes ``fidelity.csv``."""
    from scipy.stats import spearmanr

    from transfertune.methods.metahpo.config import parse_params, resolve
    from transfertune.methods.metahpo.datasets import load_experiment_data
    from transfertune.methods.metahpo.experiment import metric_of, settings_of, space_of
    from transfertune.training.trainer import train_trial

    observations = pd.read_parquet(args.out / "observations.parquet")
    params = load_params(args.out, None, args.experiments, args.workers, override=args.override)
    study = parse_params(params)
    rows = []
    for name, experiment in study.experiments.items():
        if not experiment.enabled:
            continue
        resolved = resolve(study, name)
        data = load_experiment_data(name, experiment.data.model_dump(), experiment.test_fraction, experiment.val_fraction, experiment.split_seed, study.root)
        space, settings, metric = space_of(resolved), settings_of(resolved, study.execution, "cpu"), metric_of(resolved, data)
        full, cache = data.full_task(), {}
        done = observations[(observations["experiment"] == name) & (observations["epoch"] == settings.epochs)]
        for (run, strategy), group in done.groupby(["run", "strategy"]):
            t0 = time.time()
            for row in group.itertuples(index=False):
                if row.config not in cache:
                    out = train_trial(settings.model, json.loads(row.config), full, settings.epochs, seed=0, device="cpu", fixed=settings.fixed)
                    cache[row.config] = out.records[-1][metric] if out.records and out.status != "failed" else CHANCE.get(name, 0.0)
            sub = group[metric].to_numpy(dtype=float)
            fullv = np.array([cache[c] for c in group["config"]])
            rows.append({"experiment": name, "run": int(run), "strategy": strategy, "configs": len(group),
                         "spearman": float(spearmanr(sub, fullv).statistic), "incumbent_full": float(fullv[int(np.argmax(sub))]),
                         "best_full": float(fullv.max()), "median_full": float(np.median(fullv)), "seconds": time.time() - t0})
            print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(args.out / "fidelity.csv", index=False)
    frame = pd.DataFrame(rows)
    print("\nProxy fidelity of BOHB's full-budget subset configs (validation part of the full set; diverged = chance):\n")
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    print("\nMean over runs:\n")
    print(frame.groupby(["experiment", "strategy"])[["configs", "spearman", "incumbent_full", "best_full", "median_full"]].mean().to_markdown(floatfmt=".3f"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["table1", "region", "options", "headroom", "fidelity"], default="table1")
    parser.add_argument("--n-configs", type=int, default=10, help="random configs of --part headroom")
    parser.add_argument("--out", type=Path, default=Path("/tmp/metahpo_bench"), help="folder for the tables, figures and stores")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of table1 (seed + r)")
    parser.add_argument("--start-run", type=int, default=0, help="table1: first run index (seed + r); rows of earlier runs in --out are kept")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of --part region")
    parser.add_argument("--experiments", nargs="+", default=None, help="experiments of the parameter file (default: the enabled ones)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the parameter file's)")
    parser.add_argument("--override", default=None, help="JSON deep-merged into the metahpo parameters, e.g. a smaller study")
    parser.add_argument("--no-hyperband", action="store_true", help="leave out Hyperband over the subset size (saves a fifth of a run)")
    parser.add_argument("--print", dest="print_only", type=Path, default=None, help="only print the tables of an earlier --out folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.print_only:
        print_options(args.print_only) if args.part == "options" else print_tables(args.print_only)
    elif args.part == "region":
        part_region(args)
    elif args.part == "options":
        part_options(args)
    elif args.part == "headroom":
        part_headroom(args)
    elif args.part == "fidelity":
        part_fidelity(args)
    else:
        part_table1(args)


if __name__ == "__main__":
    main()
