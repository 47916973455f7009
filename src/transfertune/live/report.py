"""Summaries of live runs: best-so-far against epochs spent and against seconds.

A live task has no recorded optimum, so regret is measured against the best value any run of
the same task reached (``regret = reference - best so far``, reference = max over methods and
repetitions of the task): it ranks the methods of one run, it is not the distance to the true
optimum. There is no final-rank column either (no pool to rank against).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

RESULT_COLUMNS = ["method", "task", "repetition", "seed", "q", "trial", "epoch", "config_id", "value", "best", "regret", "t", "config"]
SUMMARY_COLUMNS = ["method", "q", "best_mean", "best_se", "regret_mean", "regret_se", "seconds_mean", "n"]


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def with_regret(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with ``regret`` = (best value of any run on the task) - ``best``."""
    out = results.copy()
    out["regret"] = out.groupby("task")["best"].transform("max") - out["best"]
    return out


def live_curves(results: pd.DataFrame) -> pd.DataFrame:
    """Per method and epochs spent q: mean and s.e. of best-so-far and regret over tasks x
    repetitions, and the mean seconds spent by then (``SUMMARY_COLUMNS``)."""
    grouped = results.groupby(["method", "q"], sort=True)
    table = grouped.agg(
        best_mean=("best", "mean"), best_se=("best", _se), regret_mean=("regret", "mean"), regret_se=("regret", _se),
        seconds_mean=("t", "mean"), n=("best", "size"),
    ).reset_index()
    return table[SUMMARY_COLUMNS]


def live_summary(results: pd.DataFrame, qs: Sequence[int]) -> pd.DataFrame:
    """The rows of :func:`live_curves` at the given q, plus each method's last q."""
    table = live_curves(results)
    last = table.groupby("method")["q"].transform("max")
    return table[table["q"].isin(list(qs)) | (table["q"] == last)].reset_index(drop=True)


def live_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    lines = ["| method | epochs | best so far | regret to the run's best | seconds | n |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.method} | {row.q} | {row.best_mean:.{digits}f} ± {row.best_se:.{digits}f} "
            f"| {row.regret_mean:.{digits}f} ± {row.regret_se:.{digits}f} | {row.seconds_mean:.1f} | {row.n} |"
        )
    return "\n".join(lines) + "\n"


def plot_live(results: pd.DataFrame, metric: str = "value", title: str = ""):
    """Best-so-far against epochs spent (mean ± s.e. over runs) and against seconds (one step
    line per run), one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = live_curves(results)
    colours = {}
    for method, group in curves.groupby("method", sort=True):
        (line,) = axes[0].plot(group["q"], group["best_mean"], label=method)
        colours[method] = line.get_color()
        axes[0].fill_between(group["q"], group["best_mean"] - group["best_se"], group["best_mean"] + group["best_se"], color=line.get_color(), alpha=0.15)
    for (method, _, _), run in results.groupby(["method", "task", "repetition"], sort=True):
        axes[1].step(run["t"], run["best"], where="post", color=colours[method], alpha=0.8, label=method)
    handles, labels = axes[1].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[0].set(xlabel="epochs spent", ylabel=f"best {metric} so far", title="Against epochs")
    axes[1].set(xlabel="seconds", ylabel=f"best {metric} so far", title="Against wall-clock time")
    axes[1].legend(unique.values(), unique.keys(), loc="lower right", fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
