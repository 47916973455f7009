"""The 64-kernel study of AT2 (section 3.3.4) without Kedro, printing rows as they finish.

    python benchmarks/kernel_study.py --inference exact_kronecker            # AT2's default inference, CPU minutes
    python benchmarks/kernel_study.py --inference exact_kronecker --folds 4  # each task the test task once (x4 time)
    python benchmarks/kernel_study.py --device cuda --epochs 3 --inducing 256  # the paper's SVGP protocol
    python benchmarks/kernel_study.py --epochs 1 --inducing 1000 --only "optiland x deep_poly x acc_curve"  # time one

Runs on a machine with only torch + gpytorch (+ the .gpu_site packages of
benchmarks/gpu_at2_check.sh) too. The CSV is rewritten after every combination, so a stopped
run keeps what it finished. The pipeline `at2_kernel_study` does the same with MLflow and the
Figure-3 plot.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from hyperrec import load_hyperrec
from transfertune.methods.at2.study import STUDY_INFERENCES, all_combinations, fold_test_tasks, make_evaluator, rank_table, report_table
from transfertune.methods.at2.svgp import SVGPSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inference", default="svgp", choices=STUDY_INFERENCES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=8, help="svgp: training epochs")
    parser.add_argument("--inducing", type=int, default=256, help="svgp: inducing points")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-context", type=int, default=500, help="exact_kronecker: observed cells of the test task")
    parser.add_argument("--fit-steps", type=int, default=150, help="exact_kronecker: Adam steps on the marginal likelihood")
    parser.add_argument("--folds", type=int, default=1, help="exact_kronecker: test tasks in turn (n_test / folds cells each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--only", default=None, metavar="LABELS",
                        help="comma-separated combinations to run (e.g. 'optiland x deep_poly x acc_curve'); default: all 64")
    parser.add_argument("--out", default="kernel_study.csv")
    parser.add_argument("--summarize", metavar="CSV", help="only print the tables of a finished run's CSV")
    args = parser.parse_args()
    if args.summarize:  # the CSV's own columns say which protocol wrote it
        rows = pd.read_csv(args.summarize)
        print_tables(rows, "svgp" if "test_elbo" in rows else "exact_kronecker", [])
        return
    try:
        choices = select_combinations(args.only)
    except ValueError as error:
        parser.error(str(error))
    catalog = load_hyperrec()
    settings = SVGPSettings(inducing_points=args.inducing, epochs=args.epochs, batch_size=1024, online_steps=0)
    tasks, evaluate = make_evaluator(catalog, args.inference, n_test=args.n_test, settings=settings, seed=args.seed,
                                     data_seed=args.data_seed, device=args.device, n_context=args.n_context, fit_steps=args.fit_steps,
                                     n_folds=args.folds)
    test_tasks = ", ".join(fold_test_tasks(tasks, args.folds))
    print(f"tasks: {', '.join(tasks)}" + (f" (test tasks in turn: {test_tasks})" if args.inference == "exact_kronecker" else ""), flush=True)
    rows = []
    start = time.perf_counter()
    for choice in choices:
        torch.manual_seed(args.seed)
        row = evaluate(choice)
        row.pop("_distances")
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        scores = "  ".join(f"{k} {row[k]:8.4f}" for k in ("test_elbo", "test_log_likelihood", "test_rmse") if k in row)
        print(f"{choice.label:40s} {scores}  {row['seconds']:5.1f} s", flush=True)
    print(f"\n{len(rows)} combinations in {time.perf_counter() - start:.0f} s\n")
    print_tables(pd.DataFrame(rows), args.inference, tasks)


def select_combinations(only: str | None) -> list:
    """The 64 combinations in the study's order, or those named in ``only`` (comma-separated labels)."""
    choices = all_combinations()
    if not only:
        return choices
    wanted = [label.strip() for label in only.split(",")]
    unknown = sorted(set(wanted) - {choice.label for choice in choices})
    if unknown:
        raise ValueError(f"--only: no combination {unknown}; labels look like 'optiland x deep_poly x acc_curve'")
    return [choice for choice in choices if choice.label in wanted]


def print_tables(rows: pd.DataFrame, inference: str, tasks: list[str]) -> None:
    """The ranked table, then each component kernel's mean score over the combinations using it."""
    table = rank_table(rows.to_dict("records"), inference, tasks)
    print(report_table(table).to_markdown(index=False, floatfmt=".4f"))
    scores = [c for c in ("test_elbo", "test_log_likelihood", "test_rmse") if c in table]
    for component in ("task_kernel", "config_kernel", "fidelity_kernel"):
        means = table.groupby(component)[scores].agg(["mean", "median"])
        means.columns = [f"{score} {stat}" for score, stat in means.columns]
        print("\n" + means.reset_index().to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
