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
    # F_q, not "final rank": the rank at q of the config recommended after q queries (it changes with q)
    lines = ["| method | q | R_q (simple regret) | F_q (rank of the config recommended at q) | n |", "| --- | ---: | ---: | ---: | ---: |"]
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


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _paired_difference(results: pd.DataFrame, a: str, b: str, q: int) -> tuple[float, float, int]:
    """Mean and standard error over the episodes (pair, repetition) both methods ran of
    ``R_q(a) - R_q(b)``, and their number: the methods face the same pairs, so the difference's
    spread is the one that says whether a gap is more than noise."""
    at_q = results[results["q"] == q].set_index(["method", "pair", "repetition"])["regret"]
    diff = (at_q.loc[a] - at_q.loc[b]).dropna()
    return float(diff.mean()), _se(diff), len(diff)


def headline(results: pd.DataFrame, qs: Sequence[int], focus: str = "at2", metric: str | None = None) -> list[str]:
    """The sentences a summary opens with: what R_q and F_q are, then for each q in ``qs`` the
    method with the lowest mean R_q and the place of ``focus`` (if it ran), with the gap to the
    best (or, when ``focus`` leads, to the runner-up) and whether it exceeds its paired
    standard error."""
    table = summary(results, qs)
    n_pairs, n_reps = results["pair"].nunique(), results["repetition"].nunique()
    unit = f" of {metric}" if metric else ""
    lines = [
        f"Lower is better for both numbers. R_q: simple regret after q queries (epochs of the test task), the "
        f"test task's best value{unit} minus the best value found by query q. F_q: the rank (0 = the best) among "
        f"the test task's configs of the config the method recommends after q queries. Means ± standard error "
        f"over {n_pairs} pair(s) x {n_reps} repetition(s)."
    ]
    for q in qs:
        rows = table[table["q"] == q].sort_values("regret_mean", kind="stable")
        if rows.empty:
            continue
        cell = {r.method: f"{r.regret_mean:.4f} ± {r.regret_se:.4f}" for r in rows.itertuples()}
        means = dict(zip(rows["method"], rows["regret_mean"]))
        best_value = rows["regret_mean"].iloc[0]
        best = [m for m, v in means.items() if v <= best_value + 1e-12]
        if len(best) == 1:
            sentence = f"At q = {q}, {best[0]} has the lowest R_{q} ({cell[best[0]]})"
        else:
            sentence = f"At q = {q}, {', '.join(best)} share the lowest R_{q} ({best_value:.4f})"
        if focus in means and len(means) > 1:
            place = 1 + sum(v < means[focus] - 1e-12 for v in means.values())
            tied = sum(abs(v - means[focus]) <= 1e-12 for v in means.values()) > 1
            if focus in best and len(best) == 1:
                runner_up = rows["method"].iloc[1]
                gap, se, n = _paired_difference(results, runner_up, focus, q)
                sentence += f"; its lead over the next, {runner_up} ({cell[runner_up]}), is {gap:.4f}"
                sentence += _against_se(gap, se, n) + "."
            elif focus in best:
                sentence += "."
            else:
                gap, se, n = _paired_difference(results, focus, best[0], q)
                sentence += (f"; {focus} is {'tied ' if tied else ''}{_ordinal(place)} of {len(means)} ({cell[focus]}), "
                             f"{gap:.4f} behind {best[0]}" + _against_se(gap, se, n) + ".")
        else:
            sentence += "."
        lines.append(sentence)
    return lines


def _against_se(gap: float, se: float, n: int) -> str:
    if n < 2:
        return " (one episode: no standard error)"
    where = "within" if abs(gap) <= se else "larger than"
    return f", {where} its standard error ({se:.4f}, paired over {n} episodes)"


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
