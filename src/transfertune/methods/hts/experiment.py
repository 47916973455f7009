"""Figure 1 of seed 001 on live training: a source dataset's tuning, then every method on the
target dataset over several seeds, as mean best validation error against evaluations.

1. the source: ``hord`` (DYCORS, the paper's optimiser) tunes the HTS CNN on the source task
   for ``n`` evaluations; its trials are Omega_S (:func:`tune_source`, an in-memory catalog);
2. every method (``hts`` and its variations, ``hord`` without transfer, ``source_order`` = the
   paper's "linear") tunes the target task for t_max evaluations per repetition, through the
   trial protocol (:class:`~transfertune.live.tuner.Tuner` stores: a killed run resumes) and
   :class:`~transfertune.training.objective.TrainingObjective` (:func:`tune_target`);
3. one row per evaluation (validation error = 1 - val_acc at the evaluation's last epoch; a
   diverged evaluation has none), best-so-far curves, the mean curve over repetitions per method,
   and how many evaluations each method needs to reach the baseline's final error
   (:func:`evaluations_to_reach`, the paper's "five times less evaluations").

Repetition j of every method uses method seed ``seed + j`` and training seed ``train_seed + j``,
so the methods of one repetition see the same training noise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfertune.core.catalog import ObservationCatalog
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.training.runner import TrainSettings
from transfertune.training.trainer import TaskData

log = logging.getLogger(__name__)

EVALUATION_COLUMNS = ["method", "repetition", "evaluation", "trial", "epochs", "value", "error", "best_error", "seconds", "config"]
CURVE_COLUMNS = ["method", "evaluation", "best_error_mean", "best_error_se", "n"]
REACH_COLUMNS = ["method", "baseline", "t_max", "baseline_final_error", "method_final_error", "evaluations_to_reach", "ratio",
                 "seeds_reached", "seed_ratios"]


def make_task(
    source: str,
    source_options: Mapping[str, Any] | None = None,
    n_classes: int = 5,
    n_per_class: int | None = None,
    seed: int = 0,
    subset: int = 0,
    manifests: str | Path | None = None,
    subset_id: str | None = None,
    root: str | None = None,
    download: bool = False,
    val_fraction: float = 0.3,
    split_seed: int = 0,
) -> TaskData:
    """One task of the subsample stage: the ``subset``-th class subset of ``source`` drawn with
    ``seed`` (two specs of one source and seed draw distinct class sets), or the manifest
    ``subset_id`` of the subsample pipeline's table ``manifests``; split and standardised."""
    from transfertune.data import load_source, manifests_from_frame
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import tasks_from_manifests

    if manifests is not None:
        path = Path(manifests)
        if not path.is_file():
            raise ConfigurationError(f"manifests {str(path)!r} is not a file; run the subsample pipeline first or set manifests: null")
        found = manifests_from_frame(pd.read_parquet(path))
        known = [m.subset_id for m in found]
        if subset_id not in known:
            raise ConfigurationError(f"subset_id {subset_id!r} is not among the subsets of {path}: {known}")
        manifest = next(m for m in found if m.subset_id == subset_id)
    else:
        data = load_source(source, root=root, download=download, **dict(source_options or {}))
        manifest = class_subsets(data, n_subsets=int(subset) + 1, n_classes=n_classes, n_per_class=n_per_class, seed=seed)[int(subset)]
    return tasks_from_manifests([manifest], root=root, download=download, val_fraction=val_fraction, split_seed=split_seed)[0]


def family_pair(family: str, source_factors: Mapping[str, Any], target_factors: Mapping[str, Any], seed: int = 0,
                n_tasks: int | None = None) -> tuple[Any, TaskData, TaskData]:
    """A source -> target pair of one task family (:mod:`transfertune.data.families`): the family's
    spec and the first task of ``build_family(spec, n_tasks, seed)`` whose factor levels match
    ``source_factors``, then ``target_factors`` (factors not named: any level). One line when no
    task matches or both sides name the same task."""
    from transfertune.data.families import build_family, get_family

    spec = get_family(family)
    tasks = build_family(spec, n_tasks=n_tasks, seed=seed)
    picked = []
    for side, wanted in (("source", source_factors), ("target", target_factors)):
        unknown = sorted(set(wanted) - set(spec.factors))
        if unknown:
            raise ConfigurationError(f"HTS pair {side}: family {family!r} has no factor(s) {unknown}; its factors are {sorted(spec.factors)}")
        found = [t for t in tasks if all(t.factors.get(k) == v for k, v in wanted.items())]
        if not found:
            raise ConfigurationError(f"HTS pair {side}: no task of family {family!r} (seed {seed}) has the levels {dict(wanted)}")
        picked.append(found[0])
    if picked[0].name == picked[1].name:
        raise ConfigurationError(f"HTS pair: source and target are the same task {picked[0].name!r}; transfer needs two tasks")
    return spec, picked[0].task, picked[1].task


def _tuner(task: TaskData, method: str, options: Mapping[str, Any], space: SearchSpace, settings: TrainSettings, database: Any,
           evaluations: int, store: Path, seed: int):
    from transfertune.live.tuner import Tuner

    return Tuner(database=database, space=space, method=method, store=store, method_options=dict(options), metric="val_acc",
                 budget=int(evaluations) * int(settings.epochs), max_epochs=int(settings.epochs), seed=int(seed), task=task.name)


def _tune(task: TaskData, method: str, options: Mapping[str, Any], space: SearchSpace, settings: TrainSettings, database: Any,
          evaluations: int, store: Path, seed: int, train_seed: int, workers: int, progress: bool) -> tuple[pd.DataFrame, dict[int, dict]]:
    """One live run: ``evaluations`` x ``settings.epochs`` epochs of ``method`` on ``task``."""
    from transfertune.live.runner import run_live
    from transfertune.live.tuner import TRIALS_DIR
    from transfertune.training.objective import TrainingObjective

    with _tuner(task, method, options, space, settings, database, evaluations, store, seed) as tuner:
        objective = TrainingObjective(task, settings, store / TRIALS_DIR, seed=int(train_seed), metric="val_acc", space=space)
        run_live(tuner, objective, workers=int(workers), progress=progress)
        configs = {t: dict(s.config) for t, s in tuner.searcher.trials.items()}
        return tuner.history(), configs


def replay(task: TaskData, method: str, options: Mapping[str, Any], space: SearchSpace, settings: TrainSettings, database: Any,
           evaluations: int, store: str | Path, seed: int) -> Any:
    """The searcher of a stored run, rebuilt from its event log (nothing is trained)."""
    from transfertune.live.events import EVENTS_FILE

    if not (Path(store) / EVENTS_FILE).is_file():
        raise ConfigurationError(f"{store} holds no run to replay (no {EVENTS_FILE})")
    with _tuner(task, method, options, space, settings, database, evaluations, Path(store), seed) as tuner:
        return tuner.searcher


def tune_source(task: TaskData, space: SearchSpace, settings: TrainSettings, evaluations: int, store: str | Path, seed: int = 0,
                train_seed: int = 0, workers: int = 1, progress: bool = True) -> tuple[ObservationCatalog, pd.DataFrame]:
    """Omega_S: ``hord`` tunes ``task`` for ``evaluations`` evaluations of ``settings.epochs`` epochs.

    Returns the run as an in-memory catalog of one task (config id = trial id, curve seed 0) and
    one row per source evaluation (config, value at the last epoch; NaN for a diverged one).
    """
    history, configs = _tune(task, "hord", {}, space, settings, None, evaluations, Path(store), seed, train_seed, workers, progress)
    observations = history[["trial", "epoch", "val_acc"]].rename(columns={"trial": "config_id"})
    observations.insert(0, "task", task.name)
    observations.insert(2, "seed", 0)  # the catalog's curve seed that the target runs read (data_seed 0)
    catalog = ObservationCatalog(observations=observations.reset_index(drop=True), configs={int(t): c for t, c in configs.items()},
                                 space=space, metric="val_acc", pairs=[])
    last = history.groupby("trial").tail(1).set_index("trial")
    table = pd.DataFrame({
        "config_id": list(configs), "epochs": [int(last.loc[t, "epoch"]) if t in last.index else 0 for t in configs],
        "val_acc": [float(last.loc[t, "val_acc"]) if t in last.index and last.loc[t, "epoch"] == settings.epochs else np.nan for t in configs],
        "config": [json.dumps(c, sort_keys=True) for c in configs.values()],
    })
    return catalog, table


def tune_target(task: TaskData, source: ObservationCatalog, space: SearchSpace, settings: TrainSettings, methods: Mapping[str, Mapping[str, Any]],
                repetitions: int, t_max: int, store_dir: str | Path, seed: int = 0, train_seed: int = 0, workers: int = 1,
                progress: bool = True) -> pd.DataFrame:
    """Every method x repetition on the target for ``t_max`` evaluations; one row per told epoch
    (``method, repetition, seed, q, trial, epoch, value, t, config`` and the metrics)."""
    frames = []
    for label, options in methods.items():
        options = dict(options or {})
        name = options.pop("method", label)
        for repetition in range(int(repetitions)):
            store = Path(store_dir) / task.name / label / f"rep{repetition}"
            history, configs = _tune(task, name, options, space, settings, source, t_max, store, seed + repetition, train_seed + repetition,
                                     workers, progress)
            history.insert(0, "method", label)
            history.insert(1, "repetition", repetition)
            history.insert(2, "seed", seed + repetition)
            history["config"] = history["trial"].map(lambda t: json.dumps(configs[t], sort_keys=True))
            frames.append(history)
            log.info("hts: %s repetition %d: %d evaluations", label, repetition, history["trial"].nunique())
    return pd.concat(frames, ignore_index=True)


def evaluations(results: pd.DataFrame, epochs: int, t_max: int) -> pd.DataFrame:
    """One row per evaluation of each run (trials 0..t_max-1, in the order asked): its value at
    epoch ``epochs``, ``error = 1 - value`` (NaN for a diverged trial, also one that told no
    epoch) and the run's best error so far."""
    rows = []
    for (method, repetition), run in results.groupby(["method", "repetition"], sort=False):
        last = run.groupby("trial", sort=True).tail(1).set_index("trial")
        last = last.reindex(range(int(t_max)))
        last["epoch"] = last["epoch"].fillna(0).astype(int)
        last = last.reset_index()
        finished = last["epoch"].to_numpy() == int(epochs)
        value = np.where(finished, last["value"].to_numpy(dtype=np.float64), np.nan)
        error = 1.0 - value
        best = np.fmin.accumulate(np.where(np.isnan(error), np.inf, error))
        rows.append(pd.DataFrame({
            "method": method, "repetition": repetition, "evaluation": np.arange(1, len(last) + 1), "trial": last["trial"].to_numpy(),
            "epochs": last["epoch"].to_numpy(), "value": value, "error": error, "best_error": np.where(np.isinf(best), np.nan, best),
            "seconds": last["t"].to_numpy(), "config": last["config"].to_numpy(),
        }))
    return pd.concat(rows, ignore_index=True)[EVALUATION_COLUMNS]


def best_error_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over repetitions of the best error after each evaluation."""
    grouped = table.groupby(["method", "evaluation"], sort=False)["best_error"]
    curves = grouped.agg(best_error_mean="mean", best_error_se=lambda x: float(x.std(ddof=1) / np.sqrt(x.count())) if x.count() > 1 else 0.0,
                         n="count").reset_index()
    return curves[CURVE_COLUMNS]


def first_reach(curve: np.ndarray, level: float) -> int | None:
    """1-based index of the first entry of ``curve`` at or below ``level`` (None: never)."""
    hits = np.flatnonzero(np.asarray(curve, dtype=np.float64) <= level + 1e-12)
    return int(hits[0]) + 1 if len(hits) else None


def evaluations_to_reach(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """How many evaluations each method needs to reach the baseline's final error.

    On the mean curves (the paper reads Figure 1 so): the baseline's mean best error after its
    t_max evaluations is the level; ``evaluations_to_reach`` is the first evaluation at which the
    method's mean best error is at or below it, and ``ratio = t_max / evaluations_to_reach`` (2:
    the method needs half the evaluations; NaN: it never reaches the level). ``seed_ratios``
    does the same per repetition against the same repetition of the baseline (inf: never reached).
    """
    if baseline not in set(table["method"]):
        raise ConfigurationError(f"the baseline {baseline!r} is not among the methods run ({sorted(set(table['method']))})")
    curves = best_error_curves(table)
    base = curves[curves["method"] == baseline]
    t_max = int(base["evaluation"].max())
    level = float(base.loc[base["evaluation"] == t_max, "best_error_mean"].iloc[0])
    base_runs = {rep: run.sort_values("evaluation")["best_error"].to_numpy() for rep, run in table[table["method"] == baseline].groupby("repetition")}
    rows = []
    for method, curve in curves.groupby("method", sort=False):
        curve = curve.sort_values("evaluation")
        reach = first_reach(curve["best_error_mean"].to_numpy()[:t_max], level)
        seed_ratios = []
        for rep, run in table[table["method"] == method].groupby("repetition"):
            if rep not in base_runs:
                continue
            own = first_reach(run.sort_values("evaluation")["best_error"].to_numpy()[:t_max], float(base_runs[rep][-1]))
            seed_ratios.append(t_max / own if own else np.inf)
        rows.append({
            "method": method, "baseline": baseline, "t_max": t_max, "baseline_final_error": level,
            "method_final_error": float(curve["best_error_mean"].to_numpy()[: t_max][-1]),
            "evaluations_to_reach": reach if reach is not None else np.nan, "ratio": t_max / reach if reach else np.nan,
            "seeds_reached": f"{sum(np.isfinite(seed_ratios))}/{len(seed_ratios)}",
            "seed_ratios": " ".join(f"{r:.2f}" if np.isfinite(r) else "never" for r in seed_ratios),
        })
    return pd.DataFrame(rows, columns=REACH_COLUMNS)


def reach_markdown(reach: pd.DataFrame) -> str:
    lines = ["| method | evaluations to reach the baseline's final error | ratio (t_max / that) | final mean best error | seeds reached | per-seed ratios |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in reach.itertuples(index=False):
        reach_text = f"{int(row.evaluations_to_reach)}" if np.isfinite(row.evaluations_to_reach) else f"not within {row.t_max}"
        ratio = f"{row.ratio:.2f}" if np.isfinite(row.ratio) else "< 1"
        lines.append(f"| {row.method} | {reach_text} | {ratio} | {row.method_final_error:.4f} | {row.seeds_reached} | {row.seed_ratios} |")
    baseline = reach["baseline"].iloc[0]
    level = reach["baseline_final_error"].iloc[0]
    return "\n".join(lines) + f"\n\nBaseline {baseline}: mean best error {level:.4f} after t_max = {reach['t_max'].iloc[0]} evaluations.\n"


def plot_curves(curves: pd.DataFrame, title: str = "", baseline: str | None = None):
    """Figure 1: mean best validation error against evaluations (band: ± one standard error); one
    panel per value of a ``pair`` column when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(curves.groupby("pair", sort=False)) if "pair" in curves else [("", curves)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (label, panel) in zip(axes[0], panels):
        for method, curve in panel.groupby("method", sort=False):
            x, y, se = curve["evaluation"], curve["best_error_mean"], curve["best_error_se"]
            (line,) = ax.plot(x, y, label=method, linewidth=2.2 if method == "hts" else 1.5, linestyle="--" if method == baseline else "-")
            ax.fill_between(x, y - se, y + se, color=line.get_color(), alpha=0.15)
        if baseline is not None and baseline in set(panel["method"]):
            base = panel[panel["method"] == baseline]
            ax.axhline(float(base["best_error_mean"].iloc[-1]), color="grey", linewidth=0.8, linestyle=":", label=f"{baseline} final")
        ax.set(xlabel="evaluations on the target", ylabel="mean best validation error", title=f"{label}: {title}" if label else title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def trace_rounds(run: Any) -> pd.DataFrame:
    """What each round of a finished :class:`~transfertune.methods.hts.algorithm.HTS` did, one row per round.

    Which part fails, round by round:

    - the surrogates' fit: ``st_spearman_next``, Spearman between S_T (fitted on Omega_T before
      the round) and the errors the round then observed (the round's own points); ``ss_floor_share``:
      share of A at the bounded S_S's floor (the region the default maps, 0 without the bound);
    - g's map: ``g_loss`` (final training MSE) against ``target_variance`` (the MSE of predicting
      every desired output by their mean); ``mapped_to_st_best``: distance from the centroid of the
      round's mapped configs to the centroid of B's best points under S_T, as many as the mapped
      inputs' rank block (where a converged g sends them); ``mapped_predicted`` against
      ``mapped_error``: S_T's mean prediction at the mapped configs and their observed mean error;
    - the result: ``mapped_best_value`` against ``best_value_before`` (``-f``, e.g. val_acc);
    - geometry: ``mapped_spread`` / ``source_spread``: mean distance between the round's mapped
      configs / the inputs they came from (unit cube); ``mapped_to_centre``; ``random_to_mapped``:
      mean distance of the round's random source configs (``n_random``), once mapped, to the
      centroid of its mapped ones; ``st_argmin_at_bound``: share of the coordinates of S_T's best
      of the B samples within 0.05 of a bound (an extrapolated minimum).
    """
    from scipy.stats import spearmanr

    from transfertune.methods.hts.mapping import rank_pairs
    from transfertune.methods.hts.surrogate import fit_rbf, predict

    space = run.space
    X_all, f_all = run.target_observations()
    kinds = [o.kind for o in run.omega_t]
    centre = np.full(space.dim, 0.5)
    inputs_per_round = getattr(run, "round_inputs", [])
    floor_share = float(np.mean(run.A_values <= run.A_values.min())) if getattr(run, "bound_source", False) else 0.0
    rows = []
    start = run.m
    for i, fit in enumerate(run.fits):
        X, f = X_all[:start], f_all[:start]
        surrogate = fit_rbf(space, X, f, "trace")
        B_values = predict(surrogate, run.B)
        _, targets = rank_pairs(run.A, run.A_values, run.B, B_values)
        end = min(start + run.r + run.n_random, len(X_all))
        mapped = np.array([X_all[j] for j in range(start, end) if kinds[j] == "mapped"])
        mapped_f = np.array([f_all[j] for j in range(start, end) if kinds[j] == "mapped"])
        randoms = np.array([X_all[j] for j in range(start, end) if kinds[j] == "random"])
        inputs = inputs_per_round[i] if i < len(inputs_per_round) else run.source_X[run.source_order[: run.r]]
        block = max(int(round(floor_share * len(run.B))), len(inputs), 1) if floor_share else len(inputs)
        st_best = run.B[np.argsort(B_values, kind="stable")[:block]].mean(axis=0)
        new_X, new_f = X_all[start:end], f_all[start:end]
        best_b = run.B[np.argmin(B_values)]
        rows.append({
            "round": i + 1, "omega_t": start, "g_epochs": fit.epochs, "g_loss": fit.losses[-1],
            "target_variance": float(np.mean((targets - targets.mean(axis=0)) ** 2)),
            "st_spearman_next": float(spearmanr(predict(surrogate, new_X), new_f)[0]) if len(new_f) > 2 and np.ptp(new_f) > 0 else np.nan,
            "ss_floor_share": floor_share,
            "mapped_to_st_best": float(np.linalg.norm(mapped.mean(axis=0) - st_best)) if len(mapped) else np.nan,
            "mapped_predicted": float(predict(surrogate, mapped).mean()) if len(mapped) else np.nan,
            "mapped_error": float(mapped_f.mean()) if len(mapped) else np.nan,
            "mapped_spread": _spread(mapped), "source_spread": _spread(np.asarray(inputs)),
            "mapped_to_centre": float(np.mean(np.linalg.norm(mapped - centre, axis=1))) if len(mapped) else np.nan,
            "random_to_mapped": float(np.mean(np.linalg.norm(randoms - mapped.mean(axis=0), axis=1))) if len(randoms) and len(mapped) else np.nan,
            "st_argmin_at_bound": float(np.mean((best_b < 0.05) | (best_b > 0.95))),
            "best_value_before": float(-f.min()), "mapped_best_value": float(-f_all[start:end].min()) if end > start else np.nan,
        })
        start = end
    return pd.DataFrame(rows)


def _spread(X: np.ndarray) -> float:
    if len(X) < 2:
        return np.nan
    distances = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
    return float(distances[np.triu_indices(len(X), 1)].mean())
