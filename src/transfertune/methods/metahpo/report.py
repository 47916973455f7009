"""Tables and figures of a Meta-HPO study: Table 1 (test metric of each method's chosen config
retrained on the full data, and the wall clock spent, mean and standard error over runs) and
Figure 6 (test metric on the next batch of a time-ordered stream)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfertune.methods.metahpo.experiment import METHOD_LABELS

ORDER = list(METHOD_LABELS)


def standard_error(values: pd.Series) -> float:
    """``s / sqrt(n)`` with the sample standard deviation (NaN for fewer than 2 values)."""
    v = values.dropna().to_numpy(dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) >= 2 else float("nan")


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, method): ``runs`` (with a test metric), ``test_mean``, ``test_se``,
    ``seconds_mean``, ``seconds_se``, ``diverged`` (retrains without a test metric)."""
    rows = []
    for (experiment, method), group in runs.groupby(["experiment", "method"], sort=False):
        rows.append({
            "experiment": experiment, "method": method, "label": METHOD_LABELS.get(method, method),
            "runs": int(group["test_metric"].notna().sum()), "test_mean": group["test_metric"].mean(), "test_se": standard_error(group["test_metric"]),
            "seconds_mean": group["seconds"].mean(), "seconds_se": standard_error(group["seconds"]),
            "diverged": int((group["retrain_status"] != "trained").sum()) if "retrain_status" in group else 0,
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["order"] = out["method"].map({m: i for i, m in enumerate(ORDER)}).fillna(len(ORDER))
    return out.sort_values(["experiment", "order"], kind="stable").drop(columns="order").reset_index(drop=True)


def paired_differences(runs: pd.DataFrame, reference: str = "metahpo") -> pd.DataFrame:
    """Per experiment and other method: ``reference - method`` test metric, paired by run.

    One row per (experiment, method): ``pairs`` (runs where both have a test metric),
    ``diff_mean``, ``diff_se`` (standard error of the paired differences), ``wins`` (runs where
    the reference is strictly higher), ``ties``."""
    rows = []
    for experiment, group in runs.groupby("experiment", sort=False):
        wide = group.pivot_table(index="run", columns="method", values="test_metric", aggfunc="first")
        if reference not in wide:
            continue
        for method in [m for m in ORDER if m in wide and m != reference] + [m for m in wide if m not in ORDER and m != reference]:
            d = (wide[reference] - wide[method]).dropna()
            rows.append({"experiment": experiment, "method": method, "label": METHOD_LABELS.get(method, method), "pairs": len(d),
                         "diff_mean": float(d.mean()) if len(d) else float("nan"), "diff_se": standard_error(d),
                         "wins": int((d > 0).sum()), "ties": int((d == 0).sum())})
    return pd.DataFrame(rows)


def paired_markdown(paired: pd.DataFrame, reference: str = "metahpo") -> str:
    """The paired differences as Markdown, one row per (experiment, method)."""
    if paired.empty:
        return "(no pairs)\n"
    lines = [f"| experiment | {METHOD_LABELS.get(reference, reference)} minus | paired difference (mean ± s.e.) | wins / ties / pairs |", "|---|---|---|---|"]
    for r in paired.itertuples(index=False):
        lines.append(f"| {r.experiment} | {r.label} | {_pm(r.diff_mean, r.diff_se, 4)} | {r.wins} / {r.ties} / {r.pairs} |")
    return "\n".join(lines) + "\n"


def _pm(mean: float, se: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")


def table1_markdown(table: pd.DataFrame) -> str:
    """Table 1 as Markdown: one column per experiment, ``test metric (wall clock s)``."""
    if table.empty:
        return "(no runs)\n"
    experiments = list(dict.fromkeys(table["experiment"]))
    lines = ["| method | " + " | ".join(f"{e}: test metric | {e}: wall clock (s)" for e in experiments) + " |",
             "|---|" + "---|---|" * len(experiments)]
    for method in dict.fromkeys(table["method"]):
        cells = []
        for e in experiments:
            row = table[(table["experiment"] == e) & (table["method"] == method)]
            if row.empty:
                cells += ["", ""]
                continue
            r = row.iloc[0]
            cells += [_pm(r.test_mean, r.test_se, 4), _pm(r.seconds_mean, r.seconds_se, 1)]
        lines.append(f"| {METHOD_LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    n = int(table["runs"].max()) if len(table) else 0
    lines.append("")
    lines.append(f"mean ± standard error over {n} run(s); the test metric of each method's chosen config retrained on the full training set.")
    return "\n".join(lines) + "\n"


def oos_summary(oos: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean test metric over the stream's batches and runs, and mean seconds per batch."""
    if oos.empty:
        return pd.DataFrame(columns=["method", "label", "test_mean", "test_se", "seconds_per_batch"])
    rows = []
    for method, group in oos.groupby("method", sort=False):
        per_run = group.groupby("run")["test_metric"].mean() if "run" in group else group["test_metric"]
        rows.append({"method": method, "label": METHOD_LABELS.get(method, method), "test_mean": group["test_metric"].mean(),
                     "test_se": standard_error(per_run), "seconds_per_batch": group["seconds"].mean()})
    return pd.DataFrame(rows)


def plot_oos(oos: pd.DataFrame, metric: str = "test accuracy"):
    """Figure 6: test metric on batch ``i + 1`` of the config chosen on batch ``i``, per method
    (mean over runs), against the batch index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for method, group in oos.groupby("method", sort=False):
        curve = group.groupby("eval_batch")["test_metric"].mean()
        axis.plot(curve.index, curve.to_numpy(), marker="o", label=METHOD_LABELS.get(method, method))
    axis.set_xlabel("evaluated on batch (trained on the batch before)")
    axis.set_ylabel(metric)
    axis.set_title("out-of-sample scenario (Figure 6)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_table1(table: pd.DataFrame):
    """Table 1 as a figure: test metric (mean ± s.e.) per method, one panel per experiment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiments = list(dict.fromkeys(table["experiment"])) or ["(none)"]
    figure, axes = plt.subplots(1, len(experiments), figsize=(5.0 * len(experiments), 3.8), squeeze=False)
    for axis, experiment in zip(axes[0], experiments):
        part = table[table["experiment"] == experiment]
        axis.barh(part["label"], part["test_mean"], xerr=part["test_se"].fillna(0.0), color="tab:blue", alpha=0.8)
        finite = part["test_mean"].dropna()
        if len(finite):
            low = float(finite.min() - 3 * max(part["test_se"].fillna(0).max(), 0.005))
            axis.set_xlim(left=max(0.0, low))
        axis.invert_yaxis()
        axis.set_title(experiment)
        axis.set_xlabel("test metric of the chosen config")
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
