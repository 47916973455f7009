"""The 64-kernel study of seed 004, section 3.3.4 and appendix C, with either inference.

``svgp`` (the paper's protocol): four random tasks of a database, all their (config, epoch)
observations, 1,000 held out at random; every task x configuration x fidelity kernel combination
is trained alike (the SVGP of section 3.2) on the rest and ranked by the ELBO on the held-out set.
Also reported: the mean log predictive density of the held-out values.

``exact_kronecker`` (AT2's default inference; minutes on a CPU instead of GPU hours): the same
four random tasks, but the exact inference needs complete training grids, so the last drawn task
plays the test task: 1,000 of its cells are held out, ``n_context`` other random cells of it are
observed, the other three tasks are complete. Every combination is fitted alike (exact marginal
likelihood, then the test task's row of K_T on the observed cells) and ranked by the mean log
predictive density of the held-out values. This is the setting AT2 runs in (a partly observed
test task next to complete training tasks).

Both report the (true, predicted) distances of Figure 3: pairs of held-out points, true distance
``|y - y'|``, predicted distance ``(1 - k(x, x') / sqrt(k(x, x) k(x', x'))) / 2``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.methods.at2.kernels import CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS
from transfertune.methods.at2.model import ExactAT2, KernelChoice
from transfertune.methods.at2.svgp import SVGPAT2, SVGPSettings

STUDY_INFERENCES = ("svgp", "exact_kronecker")


def all_combinations() -> list[KernelChoice]:
    return [KernelChoice(t, c, f) for t, c, f in itertools.product(TASK_KERNELS, CONFIG_KERNELS, FIDELITY_KERNELS)]


def split_observations(catalog: ObservationCatalog, n_tasks: int, n_test: int, seed: int, data_seed: int = 0):
    """Grids of ``n_tasks`` random tasks with ``n_test`` random cells held out (NaN in the train grids).

    Returns ``(tasks, train_grids (T, n, E), test_cells (n_test, 3) [task, config, epoch-index], test_values)``.
    """
    rng = np.random.default_rng(seed)
    tasks = list(rng.choice(catalog.tasks, size=n_tasks, replace=False))
    grids = catalog.grids(tasks, data_seed)
    cells = np.argwhere(np.isfinite(grids))
    held = cells[rng.choice(len(cells), size=n_test, replace=False)]
    values = grids[held[:, 0], held[:, 1], held[:, 2]]
    train = grids.copy()
    train[held[:, 0], held[:, 1], held[:, 2]] = np.nan
    return tasks, train, held, values


def evaluate_combination(choice: KernelChoice, catalog: ObservationCatalog, train: np.ndarray, held: np.ndarray,
                         values: np.ndarray, settings: SVGPSettings, seed: int, device: str = "cpu") -> dict:
    from linear_operator.utils.errors import NotPSDError

    start = time.perf_counter()
    # the study has no test task: fit on the T tasks (the model's extra task row stays unused)
    try:
        model = SVGPAT2(choice, catalog.space, catalog.encoded_configs, train, settings, device=device, seed=seed)
    except NotPSDError:  # a combination whose training diverged ranks last instead of ending the study
        return _failed_row(choice, ("test_elbo", "test_log_likelihood", "train_elbo"), start)
    X = model.X.to(model.device)
    x = torch.cat([torch.as_tensor(held[:, :1], dtype=torch.float32), torch.as_tensor(held[:, 2:3] + 1, dtype=torch.float32),
                   X[torch.as_tensor(held[:, 1])].cpu()], dim=1).to(model.device)
    y = torch.as_tensor(values, dtype=torch.float32, device=model.device)
    model.model.eval()
    model.likelihood.eval()
    with torch.no_grad():
        f = model.model(x)
        expected = model.likelihood.expected_log_prob(y, f).mean()
        kl = model.model.variational_strategy.kl_divergence() / len(model.train_x)
        elbo = float(expected - kl)
        pll = float(model.likelihood.log_marginal(y, f).mean())
        pairs = torch.arange(len(y) - len(y) % 2, device=model.device).reshape(-1, 2)
        k = model.model.covar_module
        kxx = k(x[pairs[:, 0]], x[pairs[:, 1]], diag=True)
        k11 = k(x[pairs[:, 0]], x[pairs[:, 0]], diag=True)
        k22 = k(x[pairs[:, 1]], x[pairs[:, 1]], diag=True)
        predicted = ((1 - kxx / torch.sqrt(k11 * k22).clamp_min(1e-12)) / 2).cpu().numpy()
        true = (y[pairs[:, 0]] - y[pairs[:, 1]]).abs().cpu().numpy()
    return {
        "task_kernel": choice.task, "config_kernel": choice.config, "fidelity_kernel": choice.fidelity,
        "test_elbo": elbo, "test_log_likelihood": pll, "train_elbo": model.history[-1] if model.history else np.nan,
        "distance_corr": float(np.corrcoef(true, predicted)[0, 1]) if np.std(predicted) > 0 else 0.0,
        "seconds": time.perf_counter() - start, "_distances": (true, predicted),
    }


def _failed_row(choice: KernelChoice, scores: tuple[str, ...], start: float) -> dict:
    nan = float("nan")
    return {"task_kernel": choice.task, "config_kernel": choice.config, "fidelity_kernel": choice.fidelity,
            **{score: nan for score in scores}, "distance_corr": nan,
            "seconds": time.perf_counter() - start, "_distances": (np.zeros(0), np.zeros(0))}


@dataclass
class TransferSplit:
    """The exact study's data: complete training grids and a partly observed test task."""

    tasks: list[str]
    train_grids: np.ndarray  # (T, n, E), complete
    test_grid: np.ndarray  # (n, E)
    context: np.ndarray  # (m, 2) [config, epoch-index] cells of the test task the model sees
    held: np.ndarray  # (n_test, 2) held-out cells of the test task


def split_transfer(catalog: ObservationCatalog, n_tasks: int, n_test: int, n_context: int, seed: int,
                   data_seed: int = 0, n_folds: int = 1) -> list[TransferSplit]:
    """``n_tasks`` random tasks (the same draw as :func:`split_observations`); in fold k the k-th task
    from the end is the test task (fold 1: the last), with ``n_test`` held-out cells of its own."""
    if not 1 <= n_folds <= n_tasks:
        raise ConfigurationError(f"n_folds must be between 1 and n_tasks = {n_tasks}, got {n_folds}")
    rng = np.random.default_rng(seed)
    tasks = [str(t) for t in rng.choice(catalog.tasks, size=n_tasks, replace=False)]
    grids = catalog.grids(tasks, data_seed)
    splits = []
    for test_task in fold_test_tasks(tasks, n_folds):
        test = tasks.index(test_task)
        order = [t for t in range(n_tasks) if t != test] + [test]
        if not np.isfinite(grids[order[:-1]]).all():
            raise ConfigurationError("the exact_kronecker study needs complete training grids; use inference: svgp")
        cells = np.argwhere(np.isfinite(grids[test]))
        if n_test + n_context > len(cells):
            raise ConfigurationError(f"n_test + n_context = {n_test + n_context} exceeds the test task's {len(cells)} observations")
        perm = rng.permutation(len(cells))
        splits.append(TransferSplit([tasks[t] for t in order], grids[order[:-1]], grids[test],
                                    cells[perm[n_test:n_test + n_context]], cells[perm[:n_test]]))
    return splits


def fold_test_tasks(tasks: list[str], n_folds: int) -> list[str]:
    """The test task of each fold, in fold order: the last drawn task first."""
    return list(tasks[::-1][:n_folds])


def evaluate_combination_exact(choice: KernelChoice, catalog: ObservationCatalog, split: TransferSplit, fit_steps: int = 150,
                               refit_steps: int = 50, seed: int = 0, device: str = "cpu") -> dict:
    """Fit one combination with exact inference and score the held-out cells of the test task."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    c, e = split.context[:, 0], split.context[:, 1]
    try:
        model = ExactAT2(choice, catalog.space, catalog.encoded_configs, split.train_grids, fit_steps=fit_steps, device=device)
        model.observe_many(c, e + 1, split.test_grid[c, e], refit_steps=refit_steps)
    except torch.linalg.LinAlgError:  # a diverged fit ranks last instead of ending the study
        return _failed_row(choice, ("test_log_likelihood", "test_rmse", "train_log_likelihood"), start)
    mean, std = model.predict()
    hc, he = split.held[:, 0], split.held[:, 1]
    y = split.test_grid[hc, he]
    mu, var = mean[hc, he], std[hc, he] ** 2 + model.noise_std**2
    log_density = -0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mu) ** 2 / var
    with torch.no_grad():  # Figure 3 on pairs of held-out cells (one task, so K_T cancels)
        KC = model.model.config_matrix(model.X).cpu().numpy()
        KE = model.model.fidelity_matrix(model.epochs).cpu().numpy()
    pairs = np.arange(len(y) - len(y) % 2).reshape(-1, 2)
    (c1, e1), (c2, e2) = split.held[pairs[:, 0]].T, split.held[pairs[:, 1]].T
    k12 = KC[c1, c2] * KE[e1, e2]
    norm = np.sqrt(KC[c1, c1] * KE[e1, e1] * KC[c2, c2] * KE[e2, e2]).clip(1e-12)
    predicted = (1 - k12 / norm) / 2
    true = np.abs(y[pairs[:, 0]] - y[pairs[:, 1]])
    return {
        "task_kernel": choice.task, "config_kernel": choice.config, "fidelity_kernel": choice.fidelity,
        "test_log_likelihood": float(log_density.mean()), "test_rmse": float(np.sqrt(np.mean((y - mu) ** 2))),
        "train_log_likelihood": model.history[-1] if model.history else np.nan,
        "distance_corr": float(np.corrcoef(true, predicted)[0, 1]) if np.std(predicted) > 0 else 0.0,
        "seconds": time.perf_counter() - start, "_distances": (true, predicted),
    }


def make_evaluator(catalog: ObservationCatalog, inference: str = "svgp", n_tasks: int = 4, n_test: int = 1000,
                   settings: SVGPSettings | None = None, seed: int = 0, data_seed: int = 0, device: str = "cpu",
                   n_context: int = 500, fit_steps: int = 150, refit_steps: int = 50, n_folds: int = 1):
    """The study's data split once, and ``evaluate(choice) -> row`` that trains one combination on it.

    Returns ``(tasks, evaluate)``. ``inference: svgp`` scores by held-out ELBO (``settings``);
    ``exact_kronecker`` by held-out log predictive density (``n_context``, ``fit_steps``,
    ``refit_steps``), averaged over ``n_folds`` test tasks with ``n_test / n_folds`` cells each.
    """
    if inference not in STUDY_INFERENCES:
        raise ConfigurationError(f"kernel study inference must be one of {STUDY_INFERENCES}, got {inference!r}")
    if inference == "svgp":
        settings = settings or SVGPSettings(inducing_points=256, epochs=8, batch_size=1024, online_steps=0)
        tasks, train, held, values = split_observations(catalog, n_tasks, n_test, seed, data_seed)
        return tasks, lambda choice: evaluate_combination(choice, catalog, train, held, values, settings, seed, device)
    splits = split_transfer(catalog, n_tasks, n_test // n_folds, n_context, seed, data_seed, n_folds)

    def evaluate(choice: KernelChoice) -> dict:
        rows = [evaluate_combination_exact(choice, catalog, split, fit_steps, refit_steps, seed, device) for split in splits]
        row = dict(rows[0])  # the kernel names, and the column order of one fold's row
        for key in ("test_log_likelihood", "train_log_likelihood", "distance_corr"):
            row[key] = float(np.mean([r[key] for r in rows]))  # NaN when a fold failed
        row["test_rmse"] = float(np.sqrt(np.mean([r["test_rmse"] ** 2 for r in rows])))  # equal cells per fold
        row["seconds"] = float(sum(r["seconds"] for r in rows))
        row["_distances"] = tuple(np.concatenate([r["_distances"][i] for r in rows]) for i in range(2))
        return row

    return list(splits[0].tasks), evaluate


def kernel_study(catalog: ObservationCatalog, combinations: Iterable[KernelChoice] | None = None, progress=None,
                 inference: str = "svgp", **split_and_fit) -> tuple[pd.DataFrame, dict]:
    """Train every combination alike; returns the ranked table and the distances per combination.

    ``split_and_fit``: the keywords of :func:`make_evaluator` (tasks, held-out size, settings, seeds).
    """
    tasks, evaluate = make_evaluator(catalog, inference, **split_and_fit)
    rows, distances = [], {}
    for choice in combinations or all_combinations():
        row = evaluate(choice)
        distances[choice.label] = row.pop("_distances")
        rows.append(row)
        if progress is not None:
            progress(choice.label)
    return rank_table(rows, inference, tasks), distances


def rank_table(rows: list[dict], inference: str, tasks: list[str]) -> pd.DataFrame:
    """The rows best first (failed combinations last), with a 1-based ``rank`` column."""
    key = ranking_column(inference)
    table = pd.DataFrame(rows).sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs["tasks"] = list(tasks)
    table.attrs["ranked_by"] = key
    return table


def ranking_column(inference: str) -> str:
    return "test_elbo" if inference == "svgp" else "test_log_likelihood"


def report_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ranked table without the training scores, as the reports print it."""
    return table.drop(columns=[c for c in ("train_elbo", "train_log_likelihood") if c in table])


def plot_distances(table: pd.DataFrame, distances: dict, top: int = 3):
    """Figure 3: predicted vs true distance for the best, a middle and the worst combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = table.attrs.get("ranked_by", "test_elbo")
    picks = [0, len(table) // 2, len(table) - 1][: min(top, len(table))]
    picks = sorted(set(picks))
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 3.8), squeeze=False)
    for ax, i in zip(axes[0], picks):
        row = table.iloc[i]
        label = f"{row.task_kernel} x {row.config_kernel} x {row.fidelity_kernel}"
        true, predicted = distances[label]
        ax.scatter(true, predicted, s=6, alpha=0.5)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="true distance", ylabel="predicted distance",
               title=f"#{row['rank']} {label}\n{key} {row[key]:.3f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    fig.tight_layout()
    return fig

