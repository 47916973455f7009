"""Catalog report: learning curves per task and a per-task summary table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def catalog_summary(observations: pd.DataFrame, failures: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per task: trials, failed trials, and the final-epoch and best ``metric``
    (mean over seeds, then best/median over configs).

    Padded rows of failed trials count like the others (they repeat the last good value).
    """
    rows: list[dict[str, Any]] = []
    failed_per_task = failures.groupby("task").size() if len(failures) else pd.Series(dtype=int)
    for task, obs in observations.groupby("task", sort=True):
        final_epoch = obs.groupby(["config_id", "seed"])["epoch"].transform("max") == obs["epoch"]
        final = obs[final_epoch].groupby("config_id")[metric].mean()
        best = obs.groupby(["config_id", "seed"])[metric].max().groupby("config_id").mean()
        rows.append(
            {
                "task": task,
                "configs": int(obs["config_id"].nunique()),
                "trials": int(obs.groupby(["config_id", "seed"]).ngroups),
                "failed": int(failed_per_task.get(task, 0)),
                "epochs": int(obs["epoch"].max()),
                f"final_{metric}_best": float(final.max()),
                f"final_{metric}_median": float(final.median()),
                f"best_{metric}_best": float(best.max()),
            }
        )
    return pd.DataFrame(rows)


def learning_curves_figure(observations: pd.DataFrame, metric: str, max_tasks: int = 12) -> Any:
    """A grid of panels, one per task (first ``max_tasks``): ``metric`` against epoch, one line
    per config (mean over seeds); padded epochs of failed trials are drawn dotted grey."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tasks = sorted(observations["task"].unique())[:max_tasks]
    n = max(len(tasks), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    padded = observations["padded"] if "padded" in observations else pd.Series(False, index=observations.index)
    for ax, task in zip(axes.flat, tasks):
        obs = observations[observations["task"] == task].assign(_padded=padded)
        curves = obs.groupby(["config_id", "epoch"]).agg(value=(metric, "mean"), pad=("_padded", "any")).reset_index()
        finals = curves.groupby("config_id")["value"].last()
        cmap = plt.get_cmap("viridis")
        lo, hi = float(finals.min()), float(finals.max())
        for config_id, curve in curves.groupby("config_id"):
            colour = cmap((finals[config_id] - lo) / (hi - lo) if hi > lo else 0.5)
            good = curve[~curve["pad"]]
            ax.plot(good["epoch"], good["value"], color=colour, lw=1, alpha=0.8)
            if curve["pad"].any():
                ax.plot(curve["epoch"], curve["value"], color="grey", lw=0.8, ls=":", alpha=0.8)
        ax.set_title(str(task), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.suptitle(f"Learning curves ({metric}); colour = final value, dotted = padded after divergence", fontsize=10)
    fig.tight_layout()
    return fig

