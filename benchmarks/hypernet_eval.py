"""Evaluation of hyper-training with hypernets (Lorraine & Duvenaud), printed as three tables.

    python benchmarks/hypernet_eval.py                        # digits, conf/base/parameters_hypernet.yml
    python benchmarks/hypernet_eval.py --seeds 0 1 2          # mean (std) over data splits and seeds
    python benchmarks/hypernet_eval.py --figures /tmp/figs    # also write the three figures as PNG
    python benchmarks/hypernet_eval.py --dataset mnist --mnist-root /data/torchvision

1. Figure 2: one global L2. The global (Algorithm 1) and local (Algorithm 2) hypernets' predicted
   train/validation cross-entropy against models trained directly at a grid of lambdas (mean
   absolute error at the grid points; the local one within 2 sigma of its lambda_hat), the
   lambda_hat each algorithm ends at, and the validation loss of a model retrained there.
2. Figure 3: validation loss at lambdas ~ p(lambda), trained for real, predicted by a GP fitted on
   25 (lambda, val loss) samples, a hypernet fitted on the same 25 (lambda, w*) pairs and the
   hyper-trained hypernet: RMSE, mean of predicted - true, Spearman, training runs used.
3. Validation / test cross-entropy reached by local hyper-training with one L2 per weight (also per
   class and one global) against the best single global L2 of Bayesian optimisation (Optuna GP),
   with the training runs and the examples processed (forward + backward) by each.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from transfertune.core.device import pick_device
from transfertune.methods.hypernet.data import load_split
from transfertune.methods.hypernet.evaluation import (
    ExperimentConfig,
    comparison_experiment,
    figure2_experiment,
    figure3_experiment,
    plot_comparison,
    plot_figure2,
    plot_figure3,
)

PARAMS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_hypernet.yml"


def _aggregate(frames: list[pd.DataFrame], key: str, columns: list[str]) -> pd.DataFrame:
    """Mean over seeds, with the standard deviation in brackets when there are several."""
    both = pd.concat(frames, ignore_index=True)
    order = list(dict.fromkeys(both[key]))
    grouped = both.groupby(key, sort=False)[columns]
    mean, std = grouped.mean().loc[order], grouped.std().loc[order]
    out = mean.copy().astype(object)
    for col in columns:
        counts = col in ("hyperparameters", "training_runs", "examples")
        if len(frames) == 1:
            out[col] = [f"{m:,.0f}" if counts else f"{m:.4g}" for m in mean[col]]
        else:
            out[col] = [f"{m:,.0f}" if counts else f"{m:.4g} ({s:.2g})" for m, s in zip(mean[col], std[col])]
    return out.reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (split and algorithms); default: the parameter file's")
    parser.add_argument("--dataset", choices=["digits", "mnist"], default=None)
    parser.add_argument("--mnist-root", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fair on a shared machine)")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the three PNG figures (first seed)")
    parser.add_argument("--only", choices=["figure2", "figure3", "comparison"], nargs="+", default=["figure2", "figure3", "comparison"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    params = yaml.safe_load(PARAMS.read_text())["hypernet"]
    data_params = dict(params.get("data") or {})
    if args.dataset:
        data_params["dataset"] = args.dataset
    if args.mnist_root:
        data_params["mnist_root"] = args.mnist_root
    device = pick_device(args.device)
    seeds = args.seeds if args.seeds is not None else [int(params.get("seed", 0))]
    rest = {k: v for k, v in params.items() if k not in ("data", "device", "progress", "seed")}

    tables: dict[str, list[pd.DataFrame]] = {"figure2": [], "figure3": [], "comparison": []}
    timings: dict[str, float] = {}
    for i, seed in enumerate(seeds):
        cfg = ExperimentConfig.from_dict({**copy.deepcopy(rest), "seed": seed})
        data = load_split(seed=seed, **data_params).to(device)
        if i == 0:
            print(f"{data.name}: {data.sizes()}, {data.n_features} features, device {device}, seeds {seeds}, "
                  f"log-L2 range {cfg.log_l2_range}, lambda_hat starts at {cfg.init_log_l2}")
        for name, run, plot in (("figure2", figure2_experiment, lambda r: plot_figure2(r)),
                                ("figure3", figure3_experiment, lambda r: plot_figure3(r.points)),
                                ("comparison", comparison_experiment, lambda r: plot_comparison(r.curves))):
            if name not in args.only:
                continue
            start = time.perf_counter()
            result = run(data, cfg)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            tables[name].append({"figure2": lambda r: r.summary, "figure3": lambda r: r.summary,
                                 "comparison": lambda r: r.table}[name](result))
            if args.figures is not None and i == 0:
                args.figures.mkdir(parents=True, exist_ok=True)
                plot(result).savefig(args.figures / f"hypernet_{name}.png", dpi=120)

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if tables["figure2"]:
        print(f"\n== Figure 2: one global L2, hypernet vs trained models ({timings['figure2']:.0f} s) ==")
        print(_aggregate(tables["figure2"], "algorithm", ["lam_hat", "predicted_val_loss", "retrained_val_loss",
                                                          "mae_train_loss", "mae_val_loss"]).to_string(index=False))
    if tables["figure3"]:
        print(f"\n== Figure 3: predicted vs true validation loss, {cfg.figure3.size} L2 "
              f"({cfg.figure3.n_samples} samples, {cfg.figure3.n_test} test lambdas; {timings['figure3']:.0f} s) ==")
        print(_aggregate(tables["figure3"], "method", ["rmse", "mean_diff", "spearman", "under_predicted",
                                                       "training_runs", "examples", "seconds"]).to_string(index=False))
    if tables["comparison"]:
        print(f"\n== Many hyperparameters vs Bayesian optimisation of one global L2 ({timings['comparison']:.0f} s) ==")
        print(_aggregate(tables["comparison"], "method", ["hyperparameters", "training_runs", "examples", "seconds",
                                                          "val_loss", "test_loss", "test_error"]).to_string(index=False))


if __name__ == "__main__":
    main()
