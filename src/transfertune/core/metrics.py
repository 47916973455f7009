"""Evaluation of the protocol: simple regret R_q and final performance ranking F_q.

R_q = (best value anywhere on the test task) - (best value among the first q queries).
F_q = rank (0 = best) among the test task's configs, by their best value over epochs, of the
config the method recommends after q queries. Both are aggregated over pairs and repetitions
as mean and standard error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ["method", "q", "regret_mean", "regret_se", "rank_mean", "rank_se", "n"]


def simple_regret(values: Sequence[float], optimum: float) -> np.ndarray:
    """R_q for q = 1..len(values): ``optimum - running max``. Shape ``(len(values),)``."""
    values = np.asarray(values, dtype=np.float64)
    return optimum - np.maximum.accumulate(values)


def config_ranks(grid: np.ndarray) -> np.ndarray:
    """Rank of every config (0 = best) by its best value over epochs; ties share the better rank.

    Args:
        grid: ``(n_configs, n_epochs)``, NaN allowed.
    Returns:
        ``(n_configs,)`` int array: the number of configs that are strictly better.
    """
    best = np.nanmax(np.where(np.isfinite(grid), grid, -np.inf), axis=1)
    return (best[None, :] > best[:, None]).sum(axis=1)


def final_rank(recommended: int, grid: np.ndarray) -> int:
    return int(config_ranks(grid)[recommended])


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def curves(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error of regret and rank per method and q.

    ``results`` is the long table of a benchmark (one row per method, pair, repetition, q).
    """
    grouped = results.groupby(["method", "q"], sort=True)
    out = grouped.agg(
        regret_mean=("regret", "mean"),
        regret_se=("regret", _se),
        rank_mean=("rank", "mean"),
        rank_se=("rank", _se),
        n=("regret", "size"),
    ).reset_index()
    return out[SUMMARY_COLUMNS]


def summary(results: pd.DataFrame, qs: Sequence[int] = (25, 50, 100)) -> pd.DataFrame:
    """The rows of :func:`curves` at the given q (those within each method's budget)."""
    table = curves(results)
    return table[table["q"].isin(list(qs))].reset_index(drop=True)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table with ``mean ± se`` cells, one row per method and q."""
    lines = ["| method | q | simple regret | final rank | n |", "| --- | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.method} | {row.q} | {row.regret_mean:.{digits}f} ± {row.regret_se:.{digits}f} "
            f"| {row.rank_mean:.2f} ± {row.rank_se:.2f} | {row.n} |"
        )
    return "\n".join(lines) + "\n"


def wide_markdown(results: pd.DataFrame, qs: Sequence[int] = (25, 50, 100), order: Sequence[str] | None = None) -> str:
    """One row per method: ``R_q`` for each q in ``qs``, ``F`` at the last q, the episodes ``n``
    and the mean seconds per episode (fit + all queries); cells are means over pairs and
    repetitions (their s.e. are in :func:`summary`). ``order``: row order (default: by name)."""
    table = summary(results, qs)
    last = max(qs)
    seconds = results.groupby(["method", "pair", "repetition"])["wall_time_s"].max().groupby(level="method").mean()
    methods = list(order) if order is not None else sorted(table["method"].unique())
    header = "| method | " + " | ".join(f"R_{q}" for q in qs) + f" | F_{last} | n | s / episode |"
    lines = [header, "| --- |" + " ---: |" * (len(qs) + 3)]
    for method in methods:
        rows = table[table.method == method].set_index("q")
        cells = [f"{rows.regret_mean[q]:.4f}" if q in rows.index else "" for q in qs]
        rank = f"{rows.rank_mean[last]:.2f}" if last in rows.index else ""
        n = int(rows.n.max()) if len(rows) else 0
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {rank} | {n} | {seconds.get(method, float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


def plot_curves(curve_table: pd.DataFrame, title: str = ""):
    """Figure-4-style plot: R_q and F_q against q, one line per method, shaded ±1 s.e.

    With more than 10 methods the colours come from ``tab20`` and the line styles cycle through
    solid, dashed and dotted, so no two of up to 60 lines look alike, and the legend sits beside
    the axes (it would cover them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted(curve_table["method"].unique())
    many = len(methods) > 10
    colours = plt.get_cmap("tab20" if many else "tab10")
    fig, axes = plt.subplots(1, 2, figsize=(13 if many else 11, 4.5 if many else 4))
    for i, method in enumerate(methods):
        group = curve_table[curve_table["method"] == method].sort_values("q")
        style = {"color": colours(i % colours.N), "linestyle": ("-", "--", ":")[i % 3] if many else "-"}
        for ax, col in zip(axes, ("regret", "rank")):
            mean, se = group[f"{col}_mean"].to_numpy(), group[f"{col}_se"].to_numpy()
            ax.plot(group["q"], mean, label=method, **style)
            ax.fill_between(group["q"], mean - se, mean + se, color=style["color"], alpha=0.06 if many else 0.15)
    axes[0].set(xlabel="query q", ylabel="simple regret $R_q$", yscale="symlog", title="Simple regret")
    axes[0].set_yscale("symlog", linthresh=1e-3)
    axes[1].set(xlabel="query q", ylabel="final performance ranking $F_q$", title="Final performance ranking")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    if many:
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", ncol=2 if len(methods) > 14 else 1, frameon=False)
    else:
        axes[1].legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig
