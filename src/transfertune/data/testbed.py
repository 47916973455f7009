"""The testbed card (issue 27, item 3): what a task family offers transfer, measured before any
transfer method runs.

Inputs are response tables, not training code, so every statistic is checked on a table with a
known answer (tests/data/test_testbed.py):

- ``Y``: ``(n_tasks, n_configs)`` final metric (higher is better), the mean over training seeds at
  the full budget; ``Y_seeds``: ``(n_tasks, n_configs, n_seeds)`` the same per seed;
- ``P``: ``{budget: (n_tasks, n_configs)}`` the metric after ``budget`` epochs on a 10 % subset
  of each task's training part (same validation part);
- ``S``: ``(n_tasks, n_stats)`` simple dataset statistics (:func:`dataset_statistics`).

Definitions (regret of config ``c`` on task ``i``: ``r_i(c) = max_c' Y[i, c'] - Y[i, c]``):

- headroom: the median of ``r_i(c)`` over every task and config (a random config), and, per task,
  the expected regret of the best of ``k`` configs drawn without replacement (exact, from the
  order statistics of the task's ``n`` values: the ``m``-th best of ``n`` is the best of ``k``
  with probability ``C(n - m, k - 1) / C(n, k)``), its median over tasks, ``k`` = 3 and 10;
- evaluation noise: the SD of a config's final metric over training seeds, pooled as the root of
  the mean within-config variance (``ddof=1``) over the configs in the top half of their task
  (where the comparisons that matter happen; diverged configs sit at chance with no spread);
- optimum diversity: ``R[i, j] = r_i(argmax_c Y[j, c])``, task ``j``'s best config used on task
  ``i``; its median over all ordered pairs ``i != j`` (``j`` at random);
- transferable structure: ``R[i, j*(i)]`` with ``j*(i)`` the other task nearest to ``i``,
  median over ``i``: by response-surface distance ``1 - Spearman(Y[i], Y[j])`` (an oracle: it
  reads task ``i``'s responses), and by the Euclidean distance of the z-scored statistics ``S``;
- proxy fidelity: per task, Spearman between ``P[b][i]`` and ``Y[i]`` (the subset at budget
  ``b`` against the full data at the full budget), median over tasks, at the lowest and the
  highest budget;
- agreement: the median over task pairs of Spearman(``Y[i]``, ``Y[j]``) (HyperRec's: 0.93);
- factor effect: for each factor, the median of ``R[i, j]`` over pairs that differ in that
  factor only, beside the median over pairs with identical factors (twins): a factor moves the
  optimum when the first clearly exceeds the second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
import pandas as pd

from transfertune.errors import ConfigurationError

TARGETS = {
    "random_regret": "random-config median regret >= 0.10",
    "best_of_10": "best-of-10 regret >= 3 x noise SD",
    "random_other": "random other task's best: median regret >= 2 x noise SD",
    "oracle_nearest": "nearest task's best (oracle): median regret <= half the random other task's",
    "proxy_high": "proxy Spearman at the highest budget >= 0.6",
    "cost": "one full evaluation <= 3 s on one core (median CPU seconds)",
}


def response_tables(observations: pd.DataFrame, metric: str, epoch: int | None = None,
                    tasks: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """``(Y, Y_seeds, tasks, config_ids)`` from catalog observations at ``epoch`` (None: the last).

    Every (task, config) must have the same seeds; a missing cell raises.
    """
    if metric not in observations.columns:
        raise ConfigurationError(f"metric {metric!r} is not a column of the observations: {list(observations.columns)}")
    e = int(observations["epoch"].max()) if epoch is None else int(epoch)
    at = observations[observations["epoch"] == e]
    cube = at.pivot_table(index=["task", "config_id"], columns="seed", values=metric, aggfunc="first")
    names = list(tasks) if tasks is not None else sorted(at["task"].unique())
    configs = sorted(at["config_id"].unique())
    full = pd.MultiIndex.from_product([names, configs], names=["task", "config_id"])
    cube = cube.reindex(full)
    if cube.isna().any().any():
        missing = cube[cube.isna().any(axis=1)].index[0]
        raise ConfigurationError(f"observations lack {metric} at epoch {e} for task {missing[0]!r}, config {missing[1]} (some seed)")
    Y_seeds = cube.to_numpy(float).reshape(len(names), len(configs), -1)
    return Y_seeds.mean(axis=2), Y_seeds, names, [int(c) for c in configs]


def regrets(Y: np.ndarray) -> np.ndarray:
    """``r[i, c] = max_c' Y[i, c'] - Y[i, c]``."""
    return Y.max(axis=1, keepdims=True) - Y


def best_of_k_regret(values: np.ndarray, k: int) -> float:
    """Expected regret of the best of ``k`` of ``values`` drawn without replacement (exact)."""
    v = np.sort(np.asarray(values, float))[::-1]
    n = len(v)
    if not 1 <= k <= n:
        raise ConfigurationError(f"best of k needs 1 <= k <= {n}, got {k}")
    p = np.array([comb(n - m, k - 1) for m in range(1, n + 1)], float) / comb(n, k)
    return float(np.sum(p * (v[0] - v)))


def noise_sd(Y_seeds: np.ndarray, top_fraction: float = 0.5) -> float:
    """Root of the mean over-seeds variance of the configs in each task's top ``top_fraction``."""
    if Y_seeds.shape[2] < 2:
        raise ConfigurationError("evaluation noise needs at least 2 training seeds")
    mean = Y_seeds.mean(axis=2)
    var = Y_seeds.var(axis=2, ddof=1)
    keep = mean >= np.quantile(mean, 1.0 - top_fraction, axis=1, keepdims=True)
    return float(np.sqrt(var[keep].mean()))


def transfer_matrix(Y: np.ndarray) -> np.ndarray:
    """``R[i, j]``: regret on task ``i`` of task ``j``'s best config (diagonal 0)."""
    best = Y.argmax(axis=1)
    return regrets(Y)[:, best]


def off_diagonal(M: np.ndarray) -> np.ndarray:
    return M[~np.eye(len(M), dtype=bool)]


def spearman_matrix(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """``rho[i, j]`` = Spearman(A[i], B[j]) over configs (B = A when None); constant rows give 0."""
    def ranks(M: np.ndarray) -> np.ndarray:
        r = pd.DataFrame(M.T).rank().to_numpy().T
        r = r - r.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(r, axis=1, keepdims=True)
        return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)

    ra = ranks(A)
    rb = ra if B is None else ranks(B)
    return ra @ rb.T


def nearest(D: np.ndarray) -> np.ndarray:
    """For each row, the column of the smallest off-diagonal distance."""
    D = np.array(D, float, copy=True)
    np.fill_diagonal(D, np.inf)
    return D.argmin(axis=1)


def statistics_distance(S: np.ndarray) -> np.ndarray:
    """Euclidean distance between z-scored statistics rows (constant columns dropped)."""
    S = np.asarray(S, float)
    sd = S.std(axis=0)
    Z = (S[:, sd > 0] - S[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    return np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2))


def dataset_statistics(raw_train: np.ndarray, y_train: np.ndarray, n_classes: int, k_neighbours: int = 5) -> dict[str, float]:
    """Simple statistics of one task's training data, what a user can compute without training:
    log size, class count, class entropy (normalised), log input SD, mean |input|, mean
    per-feature SD over overall SD, and the share of training points whose label agrees with
    the majority of their ``k`` nearest neighbours (z-scored inputs; at most 1000 points)."""
    X = np.asarray(raw_train, float).reshape(len(raw_train), -1)
    y = np.asarray(y_train)
    counts = np.bincount(y, minlength=n_classes) / len(y)
    nz = counts[counts > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(n_classes)) if n_classes > 1 else 1.0
    sd = float(X.std()) or 1.0
    idx = np.random.default_rng(0).permutation(len(X))[:1000]
    Z = (X[idx] - X[idx].mean(0)) / np.where(X[idx].std(0) > 0, X[idx].std(0), 1.0)
    d = (Z**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2 * Z @ Z.T
    np.fill_diagonal(d, np.inf)
    k = min(k_neighbours, len(idx) - 1)
    nn = np.argsort(d, axis=1)[:, :k]
    votes = np.array([np.bincount(y[idx][row], minlength=n_classes).argmax() for row in nn])
    return {"log_n": float(np.log(len(y))), "n_classes": float(n_classes), "class_entropy": entropy,
            "log_sd": float(np.log(sd)), "mean_abs": float(np.abs(X).mean() / sd),
            "feature_sd_ratio": float(X.std(0).mean() / sd), "knn_agreement": float((votes == y[idx]).mean())}


def factor_effects(R: np.ndarray, factors: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per factor: median ``R[i, j]`` over ordered pairs differing in that factor only, and the
    twins' median (identical factors); ``n_pairs`` of each."""
    names = sorted({f for row in factors for f in row})
    n = len(factors)
    twins = [R[i, j] for i in range(n) for j in range(n) if i != j and dict(factors[i]) == dict(factors[j])]
    rows = []
    for f in names:
        vals = [R[i, j] for i in range(n) for j in range(n) if i != j and factors[i].get(f) != factors[j].get(f)
                and all(factors[i].get(g) == factors[j].get(g) for g in names if g != f)]
        rows.append({"factor": f, "median_regret_differing_only_here": float(np.median(vals)) if vals else float("nan"),
                     "n_pairs": len(vals), "median_regret_twins": float(np.median(twins)) if twins else float("nan"),
                     "n_twins": len(twins)})
    return pd.DataFrame(rows)


def card(Y: np.ndarray, Y_seeds: np.ndarray, proxy: Mapping[int, np.ndarray] | None = None, S: np.ndarray | None = None,
         seconds: Sequence[float] | None = None) -> dict[str, float]:
    """Every number of the card (see the module docstring); ``seconds``: one full evaluation's
    wall time per trial."""
    r = regrets(Y)
    R = transfer_matrix(Y)
    rho = spearman_matrix(Y)
    out: dict[str, float] = {
        "n_tasks": float(Y.shape[0]),
        "n_configs": float(Y.shape[1]),
        "n_seeds": float(Y_seeds.shape[2]),
        "best_median": float(np.median(Y.max(axis=1))),
        "random_regret": float(np.median(r)),
        "best_of_3": float(np.median([best_of_k_regret(row, min(3, Y.shape[1])) for row in Y])),
        "best_of_10": float(np.median([best_of_k_regret(row, min(10, Y.shape[1])) for row in Y])),
        "noise_sd": noise_sd(Y_seeds),
        "noise_sd_top10": noise_sd(Y_seeds, 0.1),  # reported beside the target's top-half pooling
        "noise_sd_all": noise_sd(Y_seeds, 1.0),
        "random_other": float(np.median(off_diagonal(R))),
        "oracle_nearest": float(np.median(R[np.arange(len(Y)), nearest(1.0 - rho)])),
        "agreement_spearman": float(np.median(rho[np.triu_indices(len(Y), 1)])),
    }
    if S is not None:
        out["stats_nearest"] = float(np.median(R[np.arange(len(Y)), nearest(statistics_distance(S))]))
    if proxy:
        budgets = sorted(proxy)
        for label, b in (("proxy_low", budgets[0]), ("proxy_high", budgets[-1])):
            out[label] = float(np.median(np.diag(spearman_matrix(proxy[b], Y))))
            out[f"{label}_budget"] = float(b)
    if seconds is not None and len(seconds):
        out["seconds_median"] = float(np.median(seconds))
        out["seconds_p90"] = float(np.quantile(seconds, 0.9))
    return out


def verdicts(c: Mapping[str, float]) -> dict[str, bool | None]:
    """Each target of :data:`TARGETS`: passed, failed, or None when the card lacks its number."""
    def have(*keys: str) -> bool:
        return all(k in c for k in keys)

    return {
        "random_regret": c["random_regret"] >= 0.10 if have("random_regret") else None,
        "best_of_10": c["best_of_10"] >= 3 * c["noise_sd"] if have("best_of_10", "noise_sd") else None,
        "random_other": c["random_other"] >= 2 * c["noise_sd"] if have("random_other", "noise_sd") else None,
        "oracle_nearest": c["oracle_nearest"] <= 0.5 * c["random_other"] if have("oracle_nearest", "random_other") else None,
        "proxy_high": c["proxy_high"] >= 0.6 if have("proxy_high") else None,
        "cost": (c["cpu_seconds_median"] if "cpu_seconds_median" in c else c["seconds_median"]) <= 3.0
        if have("seconds_median") or have("cpu_seconds_median") else None,
    }



def proxy_task(task: Any, fraction: float, seed: int) -> Any:
    """``task`` with a stratified ``fraction`` of its training part (at least one example a class
    present), the same validation part; named ``<task>-p<percent>``."""
    from transfertune.training.trainer import TaskData

    if not 0.0 < float(fraction) <= 1.0:
        raise ConfigurationError(f"proxy fraction must be in (0, 1], got {fraction!r}")
    rng = np.random.default_rng([int(seed), 2710])
    keep = []
    for c in np.unique(task.y_train):
        members = np.flatnonzero(task.y_train == c)
        keep.append(rng.choice(members, max(1, int(round(fraction * len(members)))), replace=False))
    idx = np.sort(np.concatenate(keep))
    name = f"{task.name}-p{round(100 * float(fraction))}"
    return TaskData(name, task.X_train[idx], task.y_train[idx], task.X_val, task.y_val, task.task_type, task.n_classes,
                    {**task.meta, "task": name, "proxy_of": task.name, "proxy_fraction": float(fraction)})


def _stored(tasks: Sequence[Any], configs: Sequence[Mapping[str, Any]], seeds: Sequence[int], settings: Any, root: Any,
            epochs: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Observations of the stored trials of the longest prefix of ``configs`` that every task and
    seed has finished (the catalog trains config-major, so an unfinished run leaves such a
    prefix), their failure log, and that prefix's length."""
    from transfertune.training.runner import make_jobs
    from transfertune.training.store import TrialStore, assemble_observations

    store = TrialStore(root)
    jobs = make_jobs(tasks, configs, seeds, settings)
    per_config = len(tasks) * len(seeds)
    k = 0
    while k < len(configs) and all(store.is_done(j.key) for j in jobs[k * per_config:(k + 1) * per_config]):
        k += 1
    frames, metas = store.collect(j.key for j in jobs[: k * per_config])
    if not frames:
        return pd.DataFrame(), pd.DataFrame(), 0
    observations, failures = assemble_observations(frames, metas, epochs, "pad")
    return observations, failures, k


def cpu_seconds(spec: Any, task: Any, configs: Sequence[Mapping[str, Any]]) -> list[float]:
    """CPU seconds (``time.process_time``, one torch thread) of one full evaluation of each config on
    ``task``: what one unloaded core takes, whatever else the machine runs (wall times taken on a
    loaded machine are only upper bounds)."""
    import time

    import torch

    from transfertune.training.trainer import train_trial

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for config in configs:
            start = time.process_time()
            train_trial(spec.model, config, task, int(spec.epochs), 0, device="cpu", fixed=dict(spec.fixed))
            out.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    return out


def train_card_shard(spec: Any, out_dir: str, shard: int, n_shards: int, n_tasks: int | None = None, n_configs: int = 50,
                     seeds: Sequence[int] = (0, 1), family_seed: int = 0, config_seed: int = 0, proxy_fraction: float = 0.1,
                     proxy_configs: int | None = None) -> int:
    """Train, in this process, the card trials of tasks ``shard, shard + n_shards, ...`` (full and
    proxy, config-major) into the stores :func:`run_card` uses: ``n_shards`` processes started
    side by side train the same trials as ``run_card`` with ``workers=n_shards``, without Dask
    (whose LocalCluster timed out on the loaded shared machine). Returns the trials trained."""
    from pathlib import Path

    from transfertune.core.params import resolve_path
    from transfertune.core.spaces import SearchSpace
    from transfertune.data.families import build_family
    from transfertune.training.build import STORE_DIRNAME
    from transfertune.training.runner import TrainSettings, make_jobs, run_trials
    from transfertune.training.sampling import sample_configs
    from transfertune.training.store import TrialStore

    if not 0 <= int(shard) < int(n_shards):
        raise ConfigurationError(f"shard must be in 0..{int(n_shards) - 1}, got {shard}")
    tasks = build_family(spec, n_tasks=n_tasks, seed=family_seed)[int(shard)::int(n_shards)]
    configs = sample_configs(SearchSpace.from_yaml(resolve_path(spec.space)), "lhs", int(n_configs), int(config_seed))
    n_proxy = len(configs) if proxy_configs is None else min(int(proxy_configs), len(configs))
    settings = TrainSettings(model=spec.model, epochs=int(spec.epochs), fixed=dict(spec.fixed), device="cpu", torch_threads=1)
    trained = 0
    for part, members, cfgs, sds in (("full", [t.task for t in tasks], configs, list(seeds)),
                                     ("proxy", [proxy_task(t.task, proxy_fraction, family_seed) for t in tasks], configs[:n_proxy], [int(seeds[0])])):
        jobs = make_jobs(members, cfgs, sds, settings)
        report = run_trials(jobs, {m.name: m for m in members}, settings, TrialStore(Path(out_dir) / part / STORE_DIRNAME), progress=False)
        trained += report.ran
    return trained


def run_card(spec: Any, out_dir: str, n_tasks: int | None = None, n_configs: int = 50, seeds: Sequence[int] = (0, 1),
             family_seed: int = 0, config_seed: int = 0, proxy_fraction: float = 0.1, workers: int = 1,
             metric: str = "val_acc", progress: bool = False, proxy_configs: int | None = None, train: bool = True, n_cost: int = 20) -> dict[str, Any]:
    """Train the family's card experiments and compute the card.

    Trains ``n_configs`` LHS configs of ``spec.space`` x the family's tasks x ``seeds`` for
    ``spec.epochs`` epochs into the catalog ``<out_dir>/full``, and the same configs (first seed)
    (or the first ``proxy_configs`` of them) on each task's ``proxy_fraction`` subset into
    ``<out_dir>/proxy`` (both resumable: :func:`transfertune.training.build.build_catalog`); one
    torch thread per trial. ``train=False`` trains nothing and computes the card on the configs
    whose trials the stores hold for every task and seed (a prefix of the config list; the card
    says how many). Cost: :func:`cpu_seconds` of the first ``n_cost`` configs on the task with the
    most training examples.

    Returns ``{"card", "verdicts", "factor_effects", "settings"}`` (JSON-friendly).
    """
    from pathlib import Path

    from transfertune.core.params import resolve_path
    from transfertune.core.spaces import SearchSpace
    from transfertune.data.families import build_family
    from transfertune.training.build import STORE_DIRNAME, build_catalog
    from transfertune.training.runner import TrainSettings
    from transfertune.training.sampling import sample_configs

    space_file = resolve_path(spec.space)
    tasks = build_family(spec, n_tasks=n_tasks, seed=family_seed)
    configs = sample_configs(SearchSpace.from_yaml(space_file), "lhs", int(n_configs), int(config_seed))
    settings = TrainSettings(model=spec.model, epochs=int(spec.epochs), fixed=dict(spec.fixed), device="cpu", torch_threads=1)
    out = Path(out_dir)
    proxies = [proxy_task(t.task, proxy_fraction, family_seed) for t in tasks]
    n_proxy = len(configs) if proxy_configs is None else min(int(proxy_configs), len(configs))
    if train:
        _, full, _ = build_catalog([t.task for t in tasks], configs, list(seeds), settings, out / "full", space_file,
                                   workers=workers, progress=progress)
        _, sub, _ = build_catalog(proxies, configs[:n_proxy], [int(seeds[0])], settings, out / "proxy", space_file, workers=workers,
                                  progress=progress)
    else:
        full, _, k = _stored([t.task for t in tasks], configs, list(seeds), settings, out / "full" / STORE_DIRNAME, int(spec.epochs))
        sub, _, n_proxy = _stored(proxies, configs[:n_proxy], [int(seeds[0])], settings, out / "proxy" / STORE_DIRNAME, int(spec.epochs))
        if k < 10:
            raise ConfigurationError(f"the store under {out} holds {k} complete configs; the card needs at least 10")
    names = [t.name for t in tasks]
    Y, Y_seeds, _, config_ids = response_tables(full, metric, tasks=names)
    S = np.array([list(dataset_statistics(t.raw_train, t.task.y_train, t.task.n_classes).values()) for t in tasks])
    done = full[~full["padded"]].groupby(["task", "config_id", "seed"])
    seconds = done["epoch_time_s"].sum()[done["epoch"].max() == int(spec.epochs)].to_numpy()
    c = card(Y, Y_seeds, None, S, seconds)
    n_proxy = min(n_proxy, len(config_ids))
    if n_proxy >= 2:
        sub = sub[sub["config_id"] < n_proxy]
        proxy = {b: response_tables(sub, metric, epoch=b, tasks=[p.name for p in proxies])[0] for b in (1, int(spec.epochs))}
        c.update({k: v for k, v in card(Y[:, :n_proxy], Y_seeds[:, :n_proxy], proxy).items() if k.startswith("proxy")})
    c["proxy_configs"] = float(n_proxy)
    largest = max(tasks, key=lambda t: len(t.task.y_train)).task
    cpu_seconds(spec, largest, configs[:1])  # warm-up: the first optimizer imports torch's compiler
    cpu = cpu_seconds(spec, largest, configs[:n_cost])
    c["cpu_seconds_median"], c["cpu_seconds_max"], c["cpu_seconds_n"] = float(np.median(cpu)), float(np.max(cpu)), float(len(cpu))
    c["diverged_share"] = float(full.groupby(["task", "config_id", "seed"])["padded"].any().mean())
    effects = factor_effects(transfer_matrix(Y), [t.factors for t in tasks])
    return {"card": c, "verdicts": verdicts(c), "factor_effects": effects.to_dict(orient="records"),
            "settings": {"family": spec.as_dict(), "n_tasks": len(tasks), "n_configs": len(config_ids), "seeds": [int(s) for s in seeds],
                         "family_seed": int(family_seed), "config_seed": int(config_seed), "proxy_fraction": float(proxy_fraction),
                         "proxy_configs": n_proxy, "metric": metric, "trained_now": bool(train)}}


def write_family_database(spec: Any, store: Any, out_dir: Any, n_configs: int = 100, seeds: Sequence[int] = (0, 1),
                          family_seed: int = 0, config_seed: int = 0, pairs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a tuning database (HyperRec layout plus tasks.json and catalog.json) of a family from
    the trials a store holds, without training: the longest prefix of the ``n_configs`` LHS configs
    that every task and seed has finished (all of them once the build is complete). The same trials
    as ``kedro run --pipeline=build_catalog`` with ``tasks.from: family`` and this store
    (``build_catalog.store_dir``), which trains what is missing. Returns ``catalog.json``'s content.
    """
    from pathlib import Path

    from transfertune.core.params import resolve_path
    from transfertune.core.spaces import SearchSpace
    from transfertune.data.families import build_family
    from transfertune.training.pairs import make_pairs
    from transfertune.training.runner import TrainSettings
    from transfertune.training.sampling import configs_to_records, sample_configs
    from transfertune.training.store import write_catalog
    from transfertune.training.tasks import describe_tasks

    space_file = resolve_path(spec.space)
    tasks = [t.task for t in build_family(spec, seed=family_seed)]
    configs = sample_configs(SearchSpace.from_yaml(space_file), "lhs", int(n_configs), int(config_seed))
    settings = TrainSettings(model=spec.model, epochs=int(spec.epochs), fixed=dict(spec.fixed), device="cpu", torch_threads=1)
    observations, failures, k = _stored(tasks, configs, list(seeds), settings, Path(store), int(spec.epochs))
    if k == 0:
        raise ConfigurationError(f"the store {store} holds no config finished on every task and seed")
    padded = observations.groupby(["task", "config_id", "seed"])["padded"].any()
    pair_list = make_pairs(sorted(t.name for t in tasks), **dict(pairs or {}))
    info = {"family": spec.as_dict(), "family_seed": int(family_seed), "model": spec.model, "epochs": int(spec.epochs),
            "seeds": [int(s) for s in seeds], "n_configs": k, "n_configs_planned": int(n_configs), "config_seed": int(config_seed),
            "tasks": [t.name for t in tasks], "trials": int(len(padded)), "trials_failed": int(len(failures)),
            "metric": "val_acc", "pairs": dict(pairs or {})}
    write_catalog(out_dir, observations, failures, configs_to_records(configs[:k]), pair_list, space_file, describe_tasks(tasks), info)
    return info
