"""Thin glue around ``transfertune.methods.at2.study``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from transfertune.core import tracking
from transfertune.core.catalog import ObservationCatalog
from transfertune.core.device import pick_device
from transfertune.errors import ConfigurationError
from transfertune.methods.at2.kernels import CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS
from transfertune.methods.at2.model import KernelChoice
from transfertune.methods.at2.study import (
    all_combinations,
    fold_test_tasks,
    kernel_study,
    plot_distances,
    ranking_column,
    report_table,
)
from transfertune.methods.at2.svgp import SVGPSettings


def _combinations(settings: dict[str, Any]) -> list[KernelChoice]:
    chosen = {
        "task": settings.get("task_kernels") or list(TASK_KERNELS),
        "config": settings.get("config_kernels") or list(CONFIG_KERNELS),
        "fidelity": settings.get("fidelity_kernels") or list(FIDELITY_KERNELS),
    }
    for kind, options in (("task", TASK_KERNELS), ("config", CONFIG_KERNELS), ("fidelity", FIDELITY_KERNELS)):
        unknown = [k for k in chosen[kind] if k not in options]
        if unknown:
            raise ConfigurationError(f"unknown {kind} kernel(s) {unknown}; choose from {list(options)}")
    return [c for c in all_combinations() if c.task in chosen["task"] and c.config in chosen["config"] and c.fidelity in chosen["fidelity"]]


def run_kernel_study(catalog: ObservationCatalog, settings: dict[str, Any], database: dict[str, Any]) -> tuple[pd.DataFrame, Any, str]:
    combinations = _combinations(settings)
    n_test = int(settings.get("n_test", 1000))
    if n_test < 2:
        raise ConfigurationError(f"n_test must be >= 2, got {n_test}")
    inference = settings.get("inference", "exact_kronecker")
    exact = settings.get("exact", {})
    with tqdm(total=len(combinations), desc="kernel combinations", unit="combo") as bar:
        table, distances = kernel_study(
            catalog, combinations, inference=inference, n_tasks=int(settings.get("n_tasks", 4)), n_test=n_test,
            settings=SVGPSettings(**{**settings.get("svgp", {}), "online_steps": 0}),
            seed=int(settings.get("seed", 0)), data_seed=int(database.get("data_seed", 0)),
            device=str(pick_device(settings.get("device", "auto"))), n_context=int(exact.get("n_context", 500)),
            fit_steps=int(exact.get("fit_steps", 150)), refit_steps=int(exact.get("refit_steps", 50)),
            n_folds=int(exact.get("n_folds", 1)),
            progress=lambda label: (bar.set_postfix_str(label), bar.update()),
        )
    figure = plot_distances(table, distances)
    best = table.iloc[0]
    key = ranking_column(inference)
    test_tasks = fold_test_tasks(table.attrs["tasks"], int(exact.get("n_folds", 1)))
    where = f" of the test task{'s' if len(test_tasks) > 1 else ''} {', '.join(test_tasks)}" if inference == "exact_kronecker" else ""
    markdown = (
        f"Tasks: {', '.join(table.attrs['tasks'])}; {n_test} held-out observations{where}; inference {inference}, ranked by {key}.\n\n"
        + report_table(table).to_markdown(index=False, floatfmt=".4f")
        + f"\n\nWinner: {best.task_kernel} x {best.config_kernel} x {best.fidelity_kernel}\n"
    )
    tracking.log_table(table, "kernel_study.csv")
    tracking.log_figure(figure, "kernel_study_distances.png")
    tracking.log_params({"kernel_study.winner": f"{best.task_kernel} x {best.config_kernel} x {best.fidelity_kernel}",
                         "kernel_study.inference": inference})
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"{key}.{row.task_kernel}.{row.config_kernel}.{row.fidelity_kernel}": getattr(row, key)})
    return table, figure, markdown
