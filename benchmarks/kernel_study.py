"""The 64-kernel study of AT2 (section 3.3.4) without Kedro, printing rows as they finish.

    python benchmarks/kernel_study.py --device cuda --epochs 3 --inducing 256 --out study.csv

Runs on a machine with only torch + gpytorch (+ the .gpu_site packages of
benchmarks/gpu_at2_check.sh) too. The pipeline `at2_kernel_study` does the same with MLflow and
the Figure-3 plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from transfertune.core.catalog import ObservationCatalog
from transfertune.methods.at2.study import all_combinations, evaluate_combination, split_observations
from transfertune.methods.at2.svgp import SVGPSettings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--inducing", type=int, default=256)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="kernel_study.csv")
    args = parser.parse_args()
    catalog = ObservationCatalog.load(ROOT / "data/01_raw/hyperrec", ROOT / "conf/base/spaces/hyperrec.yml", "val_top5_acc")
    tasks, train, held, values = split_observations(catalog, 4, args.n_test, args.seed)
    print("tasks:", ", ".join(tasks), flush=True)
    settings = SVGPSettings(inducing_points=args.inducing, epochs=args.epochs, batch_size=1024, online_steps=0)
    rows = []
    start = time.perf_counter()
    for choice in all_combinations():
        torch.manual_seed(args.seed)
        row = evaluate_combination(choice, catalog, train, held, values, settings, args.seed, args.device)
        row.pop("_distances")
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"{choice.label:40s} test ELBO {row['test_elbo']:8.4f}  log lik {row['test_log_likelihood']:8.4f}  "
              f"{row['seconds']:5.1f} s", flush=True)
    table = pd.DataFrame(rows).sort_values("test_elbo", ascending=False, na_position="last").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    print(f"\n{len(table)} combinations in {time.perf_counter() - start:.0f} s\n")
    print(table.drop(columns=["train_elbo"]).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
