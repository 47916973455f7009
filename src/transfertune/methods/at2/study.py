"""The 64-kernel study of seed 004, section 3.3.4 and appendix C.

Four random tasks of a database, all their (config, epoch) observations, 1,000 held out at
random; every task x configuration x fidelity kernel combination is trained alike (the SVGP of
section 3.2) on the rest and ranked by the ELBO on the held-out set. Also reported: the mean log
predictive density of the held-out values, and the (true, predicted) distances of Figure 3:
500 pairs of held-out points, true distance ``|y - y'|``, predicted distance
``(1 - k(x, x') / sqrt(k(x, x) k(x', x'))) / 2``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from transfertune.core.catalog import ObservationCatalog
from transfertune.methods.at2.kernels import CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS
from transfertune.methods.at2.model import KernelChoice
from transfertune.methods.at2.svgp import SVGPAT2, SVGPSettings


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
        nan = float("nan")
        return {"task_kernel": choice.task, "config_kernel": choice.config, "fidelity_kernel": choice.fidelity,
                "test_elbo": nan, "test_log_likelihood": nan, "train_elbo": nan, "distance_corr": nan,
                "seconds": time.perf_counter() - start, "_distances": (np.zeros(0), np.zeros(0))}
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


def kernel_study(catalog: ObservationCatalog, combinations: Iterable[KernelChoice] | None = None, n_tasks: int = 4,
                 n_test: int = 1000, settings: SVGPSettings | None = None, seed: int = 0, data_seed: int = 0,
                 device: str = "cpu", progress=None) -> tuple[pd.DataFrame, dict]:
    """Train every combination alike; returns the ranked table and the distances per combination."""
    settings = settings or SVGPSettings(inducing_points=256, epochs=8, batch_size=1024, online_steps=0)
    tasks, train, held, values = split_observations(catalog, n_tasks, n_test, seed, data_seed)
    rows, distances = [], {}
    for choice in combinations or all_combinations():
        row = evaluate_combination(choice, catalog, train, held, values, settings, seed, device)
        distances[choice.label] = row.pop("_distances")
        rows.append(row)
        if progress is not None:
            progress(choice.label)
    table = pd.DataFrame(rows).sort_values("test_elbo", ascending=False, na_position="last").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs["tasks"] = tasks
    return table, distances


def plot_distances(table: pd.DataFrame, distances: dict, top: int = 3):
    """Figure 3: predicted vs true distance for the best, a middle and the worst combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [0, len(table) // 2, len(table) - 1][: min(top, len(table))]
    picks = sorted(set(picks))
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 3.8), squeeze=False)
    for ax, i in zip(axes[0], picks):
        row = table.iloc[i]
        label = f"{row.task_kernel} x {row.config_kernel} x {row.fidelity_kernel}"
        true, predicted = distances[label]
        ax.scatter(true, predicted, s=6, alpha=0.5)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="true distance", ylabel="predicted distance",
               title=f"#{row['rank']} {label}\nELBO {row.test_elbo:.3f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    fig.tight_layout()
    return fig

