"""A Meta-HPO study as plain functions: offline comparison (Table 1), retraining, out-of-sample
scenario (Figure 6). The pipeline ``metahpo`` and ``benchmarks/metahpo_bench.py`` call these.

Offline run of one experiment (:func:`run_offline`): Meta-HPO with adversarial subsets, then
Meta-HPO with random subsets (the ablation), then the baselines, each given Meta-HPO's measured
wall clock on the full training set (:mod:`transfertune.methods.metahpo.baselines`). All share one
worker pool, started before any clock. :func:`retrain` then trains every chosen config for real on
the whole training set through the live protocol's
:class:`~transfertune.training.objective.TrainingObjective` and scores it on the test set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.data.adversarial import AttackConfig, ClassifierConfig
from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.baselines import (
    GPBOSpaceSearch,
    RandomSpaceWarmStart,
    SearchOutcome,
    hyperband_subset_size,
    run_timed_search,
)
from transfertune.methods.metahpo.bohb import BOHBConfig
from transfertune.core.params import resolve_path
from transfertune.methods.metahpo.config import Resolved
from transfertune.methods.metahpo.datasets import ExperimentData
from transfertune.methods.metahpo.execution import WorkerPool, train_epochs
from transfertune.methods.metahpo.hp_learner import MAMLConfig, Task, fit_maml
from transfertune.methods.metahpo.method import (
    MetaHPOConfig,
    MetaHPOResult,
    PredictionConfig,
    SamplingConfig,
    at_full_budget,
    run_metahpo,
    starts_of,
    subset_meta_feature,
)
from transfertune.methods.metahpo.prediction import predict_config
from transfertune.methods.random_space import RandomSpaceSearch
from transfertune.training.models import get_model_spec
from transfertune.training.objective import TrainingObjective, train_to
from transfertune.training.runner import TrainSettings
from transfertune.training.tasks import standardise
from transfertune.training.trainer import TaskData

METHOD_LABELS = {
    "metahpo": "Meta-HPO",
    "metahpo_random": "Meta-HPO w/ RS",
    "bohb_incumbent": "BOHB incumbent",
    "random_search": "RS",
    "gp_bo": "GP-BO",
    "hyperband_subset_size": "Hyperband (subset size)",
    "static": "offline Meta-HPO config",
}


@dataclass
class Choice:
    """A method's chosen config on one run of one experiment.

    Attributes:
        method: key of :data:`METHOD_LABELS`.
        config: the config (None when the method finished nothing in its budget).
        seconds: wall clock the method spent.
        detail: method-specific numbers (evaluations, predicted value, phases).
    """

    method: str
    config: dict[str, Any] | None
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class OfflineRun:
    experiment: str
    run: int
    seed: int
    choices: list[Choice]
    metahpo: dict[str, MetaHPOResult]
    baselines: dict[str, SearchOutcome]


def space_path(resolved: Resolved) -> Path:
    """The experiment's space YAML: ``space``, else the model's own ``conf/base/spaces/<space>.yml``."""
    return resolve_path(resolved.experiment.space or f"conf/base/spaces/{get_model_spec(resolved.experiment.model).space}.yml")


def space_of(resolved: Resolved) -> SearchSpace:
    return SearchSpace.from_yaml(space_path(resolved))


def metric_of(resolved: Resolved, data: ExperimentData) -> str:
    return resolved.experiment.metric or ("val_r2" if data.task_type == "regression" else "val_acc")


def settings_of(resolved: Resolved, execution: Any, device: str) -> TrainSettings:
    e = resolved.experiment
    return TrainSettings(model=e.model, epochs=int(e.max_epochs), fixed=dict(e.fixed), options=dict(e.model_options), device=device,
                         amp=execution.amp, deterministic=execution.deterministic, torch_threads=execution.torch_threads,
                         eval_batch_size=execution.eval_batch_size)


def metahpo_config(resolved: Resolved, seed: int) -> MetaHPOConfig:
    s, b = resolved.sampling, resolved.bohb
    sampling = SamplingConfig(s.rounds, s.subsets_per_round, s.ratio, s.adversarial_fraction, s.pool_factor, s.probe_update_epochs,
                              ClassifierConfig(**s.classifier.model_dump()), AttackConfig(**{**s.attack.model_dump(), "seed": seed}))
    bohb = BOHBConfig(b.trials_per_subset, b.min_epochs, resolved.experiment.max_epochs, b.eta, b.crash_cost)
    learner = resolved.hp_learner.model_dump()
    labels = learner.pop("labels")
    maml = MAMLConfig(**learner)
    return MetaHPOConfig(sampling, bohb, resolved.meta_features.lam, maml, PredictionConfig(**resolved.prediction.model_dump()), labels,
                         resolved.meta_features.full)


def run_offline(data: ExperimentData, resolved: Resolved, pool: WorkerPool, execution: Any, run: int, seed: int, device: str = "auto",
                progress: bool = True) -> OfflineRun:
    """Meta-HPO (adversarial subsets), the ablation (random subsets) and the baselines on one
    experiment, each baseline with Meta-HPO's wall clock (see the module docstring)."""
    from transfertune.core.device import pick_device

    space, settings = space_of(resolved), settings_of(resolved, execution, device)
    metric = metric_of(resolved, data)
    config = metahpo_config(resolved, seed)
    torch_device = pick_device(device)
    results: dict[str, MetaHPOResult] = {}
    choices: list[Choice] = []
    strategies = ["adversarial"] + (["random"] if resolved.baselines.ablation_random_subsets else [])
    for strategy in strategies:
        result = run_metahpo(data, strategy, space, settings, config, pool, metric, seed=seed, train_seed=seed, device=torch_device, progress=progress)
        results[strategy] = result
        label = "metahpo" if strategy == "adversarial" else "metahpo_random"
        evaluations = sum(h.evaluations for h in result.hpo)
        t = result.transfer
        choices.append(Choice(label, result.config, result.seconds, {"predicted": result.prediction.predicted, "evaluations": evaluations,
                                                                     "subsets": len(result.hpo), "chosen": t.chosen, "predicted_gain": t.gain,
                                                                     "validation_error": t.validation_error, "learner_config": json.dumps(t.prediction.config, sort_keys=True),
                                                                     **{f"{k}_s": v for k, v in result.phases.items()}}))
        if strategy == "adversarial":
            # BOHB's own answer on the same subsets, no extra cost: the reference of the guard
            choices.append(Choice("bohb_incumbent", t.incumbent, result.seconds, {"subset_metric": t.incumbent_value}))
    budget = results["adversarial"].seconds
    task_ref = pool.scatter(data.full_task())
    full = data.full_task()
    outcomes: dict[str, SearchOutcome] = {}
    b = resolved.baselines
    if b.random_search.enabled:
        outcomes["random_search"] = run_timed_search("random_search", RandomSpaceSearch(), space, task_ref, settings, pool, budget, metric, seed, seed)
    if b.gp_bo.enabled:
        searcher = GPBOSpaceSearch(n_initial=b.gp_bo.n_initial, raw_samples=b.gp_bo.raw_samples, num_restarts=b.gp_bo.num_restarts)
        outcomes["gp_bo"] = run_timed_search("gp_bo", searcher, space, task_ref, settings, pool, budget, metric, seed, seed)
    if b.hyperband_subset_size.enabled:
        outcomes["hyperband_subset_size"] = hyperband_subset_size(full, task_ref, space, settings, pool, budget, metric, b.hyperband_subset_size.max_units,
                                                                  b.hyperband_subset_size.eta, seed, seed)
    for label, outcome in outcomes.items():
        finished = int((outcome.trials["status"] == "completed").sum()) if len(outcome.trials) else 0
        choices.append(Choice(label, outcome.config, outcome.seconds, {"trials": len(outcome.trials), "finished": finished}))
    return OfflineRun(data.name, run, seed, choices, results, outcomes)


def config_tag(config: Mapping[str, Any] | None) -> str:
    return hashlib.sha1(json.dumps(dict(config or {}), sort_keys=True).encode()).hexdigest()[:10]


def retrain(data: ExperimentData, choices: Sequence[Choice], resolved: Resolved, pool: WorkerPool, execution: Any, store: Path, train_seed: int,
            device: str = "auto") -> pd.DataFrame:
    """Train each chosen config on the whole training set for ``max_epochs`` epochs through a
    :class:`TrainingObjective` (its store ``store/<method>-<config hash>``: a rerun reuses the
    trained epochs) and score the last epoch on the test set. One row per choice:
    ``method, test_metric, seconds`` (search wall clock), ``retrain_s``, ``config`` (JSON) and the details."""
    space, settings = space_of(resolved), settings_of(resolved, execution, device)
    metric = metric_of(resolved, data)
    final = data.final_task()
    final_ref = pool.scatter(final)
    jobs, by_config = {}, {}
    for choice in choices:
        if choice.config is None:
            continue
        tag = config_tag(choice.config)
        if tag in by_config:  # the same config (e.g. the guard kept BOHB's incumbent) trains once: same seed, same result
            jobs[choice.method] = by_config[tag]
            continue
        objective = TrainingObjective(final, settings, Path(store) / f"{choice.method}-{tag}", seed=train_seed, metric=metric, space=space)
        trial = Trial(0, choice.config, int(settings.epochs))
        objective.check(trial)
        jobs[choice.method] = by_config[tag] = pool.submit(train_to, trial, final_ref, settings, str(objective.store.root), objective.seed, objective.fingerprint)
    rows = []
    for choice in choices:
        row = {"method": choice.method, "label": METHOD_LABELS.get(choice.method, choice.method), "seconds": choice.seconds,
               "config": json.dumps(choice.config, sort_keys=True) if choice.config is not None else None, **choice.detail}
        if choice.method in jobs:
            progress = jobs[choice.method].result()
            last = progress.records[-1] if progress.records else {}
            # a config whose loss diverges on the full data has no test metric (its status says so)
            row.update({"test_metric": last.get(metric, np.nan) if progress.status != "failed" else np.nan,
                        "retrain_status": "diverged" if progress.status == "failed" else "trained", "retrain_s": progress.wall_time_s})
        else:
            row.update({"test_metric": np.nan, "retrain_status": "no config", "retrain_s": 0.0})
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- out of sample
def _batch_task(name: str, X_train: np.ndarray, y_train: np.ndarray, X_eval: np.ndarray, y_eval: np.ndarray, data: ExperimentData, meta: Mapping[str, Any]) -> TaskData:
    # family tasks keep their scale (standardising again would undo the input_scale factor)
    A, B = standardise(X_train, X_eval) if data.normalise else (X_train, X_eval)
    return TaskData(name, A, y_train, B, y_eval, data.task_type, data.n_classes, dict(meta))


def run_out_of_sample(data: ExperimentData, resolved: Resolved, offline: OfflineRun, oos: Any, pool: WorkerPool, execution: Any, store: Path,
                      seed: int, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """Section 4.4 on ``data.stream``: for batch ``i`` each method picks a config using batch ``i``
    only, the config is trained on batch ``i`` and scored on batch ``i + 1``.

    * Meta-HPO: the offline hp-learner; the batch's meta feature (the mean over ``meta_subsets``
      random subsets of the proxy-subset size); ``initial_configs`` random configs trained on one
      such subset (the "initial training" of section 3.3); inner steps on them (MAML adaptation),
      L-BFGS at the batch's meta feature; then the batch joins the learner's tasks and MAML runs
      ``update_steps`` more outer steps. Its wall clock per batch is the baselines' budget.
    * the baselines (random search, GP-BO) search on batch ``i`` (training/validation split),
      starting from their previous incumbent (the paper's initialisation with the incumbent);
    * ``static``: the offline Meta-HPO config, never changed.

    Returns one row per (batch, method): ``batch, method, label, test_metric, seconds, config``.
    """
    if len(data.stream) < 2:
        raise ConfigurationError(f"the out-of-sample scenario needs at least 2 later batches in experiment {data.name!r} (data.options.stream_batches)")
    space, settings = space_of(resolved), settings_of(resolved, execution, device)
    metric = metric_of(resolved, data)
    adversarial = offline.metahpo["adversarial"]
    learner, probe = adversarial.learner, adversarial.probe
    tasks: list[Task] = list(adversarial.transfer.tasks)
    labels = resolved.hp_learner.labels
    size = adversarial.manifests[0].size
    maml = dataclasses.replace(learner.config, steps=int(oos.update_steps)) if oos.update_steps else None
    incumbents = {c.method: c.config for c in offline.choices if c.method in oos.baselines}
    static = adversarial.config
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(len(data.stream) - 1):
        (X, y), (X_next, y_next) = data.stream[i], data.stream[i + 1]
        chosen: dict[str, tuple[dict[str, Any] | None, float]] = {}
        # ---- Meta-HPO
        start = time.time()
        subsets = [rng.choice(len(X), size=min(size, len(X)), replace=False) for _ in range(int(oos.meta_subsets))]
        meta = np.mean([subset_meta_feature(probe, X[s], y[s], data.task_type, data.n_classes, resolved.meta_features.lam) for s in subsets], axis=0)
        initial = space.sample(int(oos.initial_configs), seed=int(rng.integers(2**31 - 1)))
        probe_task = data.task(f"{data.name}-batch{i}-initial", X[subsets[0]], y[subsets[0]])
        probe_ref = pool.scatter(probe_task)
        results = [f.result() for f in [pool.submit(train_epochs, probe_ref, settings, c, settings.epochs, seed) for c in initial]]
        kept = [(c, r.records[-1][metric]) for c, r in zip(initial, results) if r.records]
        theta = space.encode([c for c, _ in kept]) if kept else np.zeros((0, space.dim))
        if labels == "budget_input":  # trained the full budget
            theta = np.hstack([theta, np.ones((len(theta), 1))])
        values = np.asarray([v for _, v in kept])
        params = learner.adapt(meta, theta, values) if len(kept) else learner.params
        objective = at_full_budget(learner.torch_objective(meta, params), labels)
        p = resolved.prediction
        seen = tasks + ([Task("initial", meta, theta, values)] if len(kept) else [])
        seen_theta, seen_y = starts_of(seen, labels, space.dim)
        prediction = predict_config(objective, space, seen_theta, seen_y, p.n_best_starts, p.n_random_starts, p.max_iter, seed=seed + i,
                                    region=p.region, region_radius=p.region_radius)
        if maml is not None and len(kept) >= 2:
            tasks.append(Task(f"{data.name}-batch{i}", meta, theta, values))
            learner = fit_maml(tasks, maml, init=learner, progress=progress)
        budget = time.time() - start
        chosen["metahpo"] = (prediction.config, budget)
        # ---- baselines, same wall clock, warm-started from their incumbent
        search_ref = pool.scatter(data.task(f"{data.name}-batch{i}", X, y))
        for label in oos.baselines:
            warm = [incumbents[label]] if incumbents.get(label) else []
            if label == "random_search":
                searcher = RandomSpaceWarmStart(initial_configs=warm)
            else:
                g = resolved.baselines.gp_bo
                searcher = GPBOSpaceSearch(n_initial=g.n_initial, initial_configs=warm, raw_samples=g.raw_samples, num_restarts=g.num_restarts)
            outcome = run_timed_search(label, searcher, space, search_ref, settings, pool, budget, metric, seed + i, seed)
            incumbents[label] = outcome.config or incumbents.get(label)
            chosen[label] = (incumbents[label], outcome.seconds)
        chosen["static"] = (static, 0.0)
        # ---- train on batch i, score on batch i + 1
        eval_task = _batch_task(f"{data.name}-batch{i}-to-{i + 1}", X, y, X_next, y_next, data, {"train_batch": i, "eval_batch": i + 1})
        eval_ref = pool.scatter(eval_task)
        futures = {}
        for label, (config, _) in chosen.items():
            if config is None:
                continue
            objective = TrainingObjective(eval_task, settings, Path(store) / f"batch{i}" / f"{label}-{config_tag(config)}", seed=seed, metric=metric, space=space)
            futures[label] = pool.submit(train_to, Trial(0, config, int(settings.epochs)), eval_ref, settings, str(objective.store.root), objective.seed,
                                         objective.fingerprint)
        for label, (config, seconds) in chosen.items():
            value = np.nan
            if label in futures:
                progress_ = futures[label].result()
                value = progress_.records[-1][metric] if progress_.records and progress_.status != "failed" else np.nan
            rows.append({"batch": i, "eval_batch": i + 1, "method": label, "label": METHOD_LABELS.get(label, label), "test_metric": value,
                         "seconds": seconds, "config": json.dumps(config, sort_keys=True) if config else None})
    return pd.DataFrame(rows)
