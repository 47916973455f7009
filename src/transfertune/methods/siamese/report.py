"""Figures and the Markdown summary of the seed-000 experiment (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_target_heatmap(names: Sequence[str], matrix: np.ndarray, table: pd.DataFrame, factors: Sequence[str] | None = None, kind: str = "l1"):
    """Heat map of the target distances, datasets sorted by their factor levels (``factors``:
    columns of ``table``; default every column between ``role`` and ``n_train``), the held-out
    ones marked ``*``."""
    plt = _pyplot()
    info = table.set_index("dataset").loc[list(names)]
    if factors is None:
        columns = list(table.columns)
        start = columns.index("role") + 1
        factors = columns[start : columns.index("n_train")] if "n_train" in columns else columns[start:]
    def key(column: pd.Series) -> np.ndarray:  # numbers by value, anything else (None, names) by text
        return column.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(column) else column.astype(str).to_numpy()

    keys = [key(info[f]) for f in reversed(list(factors))]
    order = np.lexsort(keys) if keys else np.arange(len(names))
    labels = [("*" if info["role"].iloc[i] == "held_out" else "") + " ".join(f"{f}={info[f].iloc[i]}" for f in factors) for i in order]
    fig, ax = plt.subplots(figsize=(11, 9.5))
    image = ax.imshow(matrix[np.ix_(order, order)], cmap="viridis")
    ax.set_xticks(range(len(order)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(order)), labels, fontsize=6)
    fig.colorbar(image, ax=ax, label=f"target distance ({kind}) between the two mappings")
    ax.set_title(f"Target distances of {len(names)} datasets, sorted by factor levels (* held out)")
    fig.tight_layout()
    return fig


def plot_losses(losses: Mapping[int, np.ndarray], window: int = 50):
    """Algorithm 1's loss per step (moving average over ``window`` steps), one line per seed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for seed, values in losses.items():
        values = np.asarray(values)
        w = max(1, min(window, len(values)))
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(values) + 1), smooth, label=f"seed {seed}")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("mean [d_target - ||m_i - m_j||]^2 over the beta pairs")
    ax.set_yscale("log")
    ax.set_title("Algorithm 1: Siamese conv-biLSTM training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_bo_curves(curves: pd.DataFrame, title: str = ""):
    """Figure 2 of the paper: mean best-so-far validation error against evaluations per variant,
    with a band of one standard error."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for variant, group in curves.groupby("variant", sort=False):
        x, y, se = group["evaluation"].to_numpy(), group["best_error_mean"].to_numpy(), np.nan_to_num(group["se"].to_numpy())
        line = ax.plot(x, y, marker="o", ms=3, label=variant)[0]
        ax.fill_between(x, y - se, y + se, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("evaluations (trained configurations)")
    ax.set_ylabel("best validation error so far")
    ax.set_title(title or "Bayesian optimisation with transferred initial points (mean +- s.e.)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def retrieval_markdown(summary: pd.DataFrame, target: Mapping[str, Any] | None = None, k: int | None = None) -> list[str]:
    """Issue 29's retrieval regret as Markdown lines: per split, each retrieval's mean +- s.e. and
    the paired differences, then the target's verdict."""
    lines = [f"## Retrieval regret: the {k or 'k'} neighbours' best configs evaluated on the dataset's own mapping", "",
             "| split | retrieval / paired difference | regret (mean +- s.e.) | n |", "| --- | --- | ---: | ---: |"]
    for row in summary.itertuples(index=False):
        lines.append(f"| {row.split} | {row.comparison} | {row.regret_mean:+.4f} +- {np.nan_to_num(row.regret_se):.4f} | {row.n} |")
    if target is not None:
        lines += ["", (f"Target: learned retrieval regret below hand-crafted's and below random neighbours' on held-out datasets: "
                       f"{'met' if target.get('met') else 'not met'} (learned - handcrafted {target['learned_minus_handcrafted']:+.4f} +- "
                       f"{target['learned_minus_handcrafted_se']:.4f}, learned - random {target['learned_minus_random']:+.4f} +- "
                       f"{target['learned_minus_random_se']:.4f}, paired over held-out datasets x seeds).")]
    return lines + [""]


def markdown_summary(spearman_summary: pd.DataFrame, curves: pd.DataFrame, target: Mapping[str, Any], checkpoints: Sequence[int] = (1, 3, 5, 7, 10, 15, 20),
                     gaps: pd.DataFrame | None = None, retrieval: pd.DataFrame | None = None, retrieval_target: Mapping[str, Any] | None = None,
                     k: int | None = None) -> str:
    """The evaluations of issues 21 and 29 as Markdown tables, each with its target and verdict."""
    lines = ["## Meta-features: Spearman of learned vs target distances on held-out datasets", ""]
    lines += ["| meta-features | seeds | per held-out dataset (mean +- s.e.) | all pairs pooled | training pairs |", "| --- | ---: | ---: | ---: | ---: |"]
    for row in spearman_summary.itertuples(index=False):
        pooled = f"{row.pooled_mean:.3f} +- {row.pooled_se:.3f}" if pd.notna(getattr(row, "pooled_mean", np.nan)) else ""
        train = f"{row.train_pairs_mean:.3f} +- {row.train_pairs_se:.3f}" if pd.notna(getattr(row, "train_pairs_mean", np.nan)) else ""
        lines.append(f"| {row.meta_features} | {row.seeds} | {row.per_dataset_mean:.3f} +- {row.per_dataset_se:.3f} | {pooled} | {train} |")
    gap = spearman_summary[spearman_summary["meta_features"] == "learned - handcrafted"]
    if len(gap):
        value = float(gap["per_dataset_mean"].iloc[0])
        lines += ["", f"Target: learned ahead of hand-crafted by >= 0.1: {'met' if value >= 0.1 else 'not met'} (gap {value:.3f})."]
    if retrieval is not None and len(retrieval):
        lines += [""] + retrieval_markdown(retrieval, retrieval_target, k)
    lines += ["", "## Best-so-far validation error against evaluations (mean +- s.e. over repetitions)", ""]
    variants = list(dict.fromkeys(curves["variant"]))
    shown = [c for c in checkpoints if c <= int(curves["evaluation"].max())]
    lines += ["| variant | n | " + " | ".join(f"eval {c}" for c in shown) + " |", "| --- | ---: | " + " | ".join("---:" for _ in shown) + " |"]
    for variant in variants:
        group = curves[curves["variant"] == variant].set_index("evaluation")
        cells = [f"{group.loc[c, 'best_error_mean']:.4f} +- {np.nan_to_num(group.loc[c, 'se']):.4f}" for c in shown]
        lines.append(f"| {variant} | {int(group['n'].iloc[0])} | " + " | ".join(cells) + " |")
    if gaps is not None and len(gaps):
        lines += ["", f"Paired with {target['reference']} in the same repetition: best error of the variant minus {target['reference']}'s "
                  "(mean +- s.e.; negative: ahead)", ""]
        lines += ["| variant | " + " | ".join(f"eval {c}" for c in shown) + " |", "| --- | " + " | ".join("---:" for _ in shown) + " |"]
        for variant, group in gaps.groupby("variant", sort=False):
            group = group.set_index("evaluation")
            lines.append(f"| {variant} | " + " | ".join(f"{group.loc[c, 'gap_mean']:+.4f} +- {np.nan_to_num(group.loc[c, 'gap_se']):.4f}" for c in shown) + " |")
    first = target.get("first_evaluation")
    lines += ["", (f"Target: {target['method']} reaches {target['reference']}'s {target['at']}-evaluation best "
                   f"({target['reference_error']:.4f}) within {target['within']} evaluations: {'met' if target.get('met') else 'not met'} "
                   f"(its error at {target['within']}: {target.get('error_at_within', float('nan')):.4f}; first reached at evaluation "
                   f"{first if first is not None else 'never'})."), ""]
    return "\n".join(lines)
