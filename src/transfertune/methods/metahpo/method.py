"""Meta-HPO end to end on one data set (seed 003, Figure 1): sampling and HPO alternate, then the
meta transfer.

1. **Sampling** (section 3.2): a probe network ``phi_e`` is trained on the full training set. In
   each of ``rounds`` rounds it is trained ``probe_update_epochs`` epochs further (from round 2 on),
   every sample is scored by the perturbation-aware attack
   (:func:`transfertune.data.adversarial.adversarial_scores`) and ``subsets_per_round`` proxy
   subsets are drawn (:func:`transfertune.data.samplers.adversarial_proxy_subsets`). The ablation
   ``random`` ("Meta-HPO w/ RS") draws uniform subsets instead and trains the probe the same way,
   so both end with the same kind of ``phi_e``.
2. **HPO** (section 3.3): BOHB on every subset of the round, the subsets in parallel on the
   worker pool (:func:`~transfertune.methods.metahpo.bohb.bohb_on_subset`), before the next round
   samples again.
3. **Meta features** (Eq. 6-8) of every subset with the final ``phi_e``; the full set's is its
   own (``meta_features.full: own``, computed on every training row) or, as the paper writes,
   the subsets' average (``subset_mean``; the learner's input scaling centres that average to 0,
   so the full set would be queried at the subsets' centre whatever its data).
4. **hp-learner** trained by MAML on ``{M_i, theta_ik, y_ik}`` (Algorithm 1), with the labels of
   ``hp_learner.labels`` (:func:`~transfertune.methods.metahpo.bohb.labelled_observations`).
5. **Prediction**: L-BFGS over the hyperparameters at the full set's meta feature (and at the full
   budget when the budget is an input), then the **incumbent guard** (``prediction.guard``): the
   final config is BOHB's best config at the largest budget unless the learner predicts its own
   pick better by more than the learner's validation error (:func:`transfer`).

The wall clock from the start of step 1 to the end of step 5 is the method's cost, the budget the
baselines get.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.data.adversarial import (
    AttackConfig,
    ClassifierConfig,
    TrainedModel,
    adversarial_scores,
    data_box,
    perturbation_weights,
    probe_features,
    train_model,
    update_probe,
)
from transfertune.data.manifest import SubsetManifest, materialise
from transfertune.data.samplers import adversarial_proxy_subsets, random_proxy_subsets
from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.bohb import LABELS, BOHBConfig, SubsetHPO, bohb_incumbent, bohb_on_subset, labelled_observations
from transfertune.methods.metahpo.datasets import ExperimentData
from transfertune.methods.metahpo.execution import WorkerPool
from transfertune.methods.metahpo.hp_learner import FittedLearner, MAMLConfig, Task, fit_maml
from transfertune.methods.metahpo.meta_features import meta_feature
from transfertune.methods.metahpo.prediction import Prediction, predict_config
from transfertune.training.runner import TrainSettings

Strategy = Literal["adversarial", "random"]


@dataclass
class SamplingConfig:
    """Attributes:
        rounds: sampling/HPO rounds (Figure 1's alternation).
        subsets_per_round: proxy subsets drawn per round.
        ratio: subset size as a fraction of the full training set (the paper: 10 %).
        adversarial_fraction, pool_factor: see :func:`adversarial_proxy_subsets`.
        probe_update_epochs: epochs the probe trains further before each round after the first.
        classifier, attack: the probe and the attack (see :mod:`transfertune.data.adversarial`).
    """

    rounds: int = 2
    subsets_per_round: int = 4
    ratio: float = 0.1
    adversarial_fraction: float = 0.5
    pool_factor: float = 2.0
    probe_update_epochs: int = 5
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)

    def __post_init__(self) -> None:
        for name in ("rounds", "subsets_per_round"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigurationError(f"sampling.{name} must be a positive integer, got {value!r}")


@dataclass
class PredictionConfig:
    """Starts of L-BFGS: the ``n_best_starts`` best observed configs and ``n_random_starts`` random
    ones; ``region``: where it may go (see :mod:`transfertune.methods.metahpo.prediction`)."""

    n_best_starts: int = 4
    n_random_starts: int = 4
    max_iter: int = 100
    region: str = "local"
    region_radius: float = 0.1
    guard: str = "incumbent"
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.guard not in ("incumbent", "none"):
            raise ConfigurationError(f"prediction.guard must be 'incumbent' or 'none', got {self.guard!r}")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigurationError(f"prediction.holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}")


@dataclass
class MetaHPOConfig:
    """Attributes beyond the sections: ``labels`` (``hp_learner.labels``: what the learner is
    trained on, :func:`~transfertune.methods.metahpo.bohb.labelled_observations`) and ``full_meta``
    (``meta_features.full``: ``own`` or ``subset_mean``)."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    bohb: BOHBConfig = field(default_factory=BOHBConfig)
    lam: float = 1.0
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    labels: str = "budget_input"
    full_meta: str = "own"

    def __post_init__(self) -> None:
        if self.labels not in LABELS:
            raise ConfigurationError(f"hp_learner.labels must be one of {list(LABELS)}, got {self.labels!r}")
        if self.full_meta not in ("own", "subset_mean"):
            raise ConfigurationError(f"meta_features.full must be 'own' or 'subset_mean', got {self.full_meta!r}")
        subsets = self.sampling.rounds * self.sampling.subsets_per_round
        if subsets < 2 * self.maml.tasks_per_step:
            raise ConfigurationError(
                f"MAML samples hp_learner.tasks_per_step = {self.maml.tasks_per_step} of {subsets} proxy subsets (sampling.rounds x subsets_per_round); "
                f"it needs at least twice as many subsets ({2 * self.maml.tasks_per_step}) to draw different tasks"
            )


@dataclass
class Transfer:
    """The meta-transfer stage's outcome (:func:`transfer`).

    Attributes:
        learner: the hp-learner fitted on every task.
        prediction: the learner's own pick (L-BFGS; ``predicted`` in the metric's units).
        config: the final choice (the pick or the incumbent).
        chosen: ``learner`` or ``incumbent``.
        incumbent, incumbent_value: BOHB's best config at the largest budget and its subset metric.
        gain: the learner's predicted metric of its pick minus that of the incumbent (full set,
            full budget; metric units).
        validation_error: RMSE of a learner fitted without ``holdout_fraction`` of each task's
            full-budget rows, on those rows (metric units); NaN when not measured.
        tasks: the learner's tasks.
    """

    learner: FittedLearner
    prediction: Prediction
    config: dict[str, Any]
    chosen: str
    incumbent: dict[str, Any] | None
    incumbent_value: float
    gain: float
    validation_error: float
    tasks: list[Task]


@dataclass
class MetaHPOResult:
    """What one Meta-HPO run produced.

    Attributes:
        strategy: ``adversarial`` or ``random`` subsets.
        prediction: the hp-learner's pick for the full set (L-BFGS).
        transfer: the meta-transfer stage (the pick, the incumbent, the guard's decision).
        seconds: wall clock of the whole method (the budget the baselines get).
        phases: seconds per phase (``probe``, ``sampling``, ``hpo``, ``meta_features``, ``transfer``: MAML, L-BFGS and the guard).
        manifests: the proxy subsets, round by round.
        hpo: BOHB's outcome per subset.
        meta_features: subset id -> ``M_i``; ``full_meta``: the full set's (``meta_features.full``).
        learner: the trained hp-learner.
        probe: the final ``phi_e``.
        rounds: per round: probe fit, attack success rate, seconds, the adversarial cores' overlap
            with the previous round.
    """

    strategy: str
    prediction: Prediction
    transfer: Transfer
    seconds: float
    phases: dict[str, float]
    manifests: list[SubsetManifest]
    hpo: list[SubsetHPO]
    meta_features: dict[str, np.ndarray]
    full_meta: np.ndarray
    learner: FittedLearner
    probe: TrainedModel
    rounds: list[dict[str, Any]]
    probe_config: ClassifierConfig = field(default_factory=ClassifierConfig)
    probe_shape: tuple[int, ...] = ()

    @property
    def config(self) -> dict[str, Any]:
        """The final choice (after the incumbent guard)."""
        return self.transfer.config


def check_space(space: SearchSpace, settings: TrainSettings) -> None:
    """One-line error when the model needs a hyperparameter that neither the space nor the model's
    fixed settings give (the names of the model's example config are the ones it reads)."""
    from transfertune.training.models import get_model_spec

    spec = get_model_spec(settings.model)
    needed = set(spec.example) - set(spec.defaults) - set(settings.fixed)
    missing = sorted(needed - set(space.names))
    if missing:
        raise ConfigurationError(
            f"hyperparameter(s) {missing} of model '{settings.model}' are missing from the space '{space.name}'; add them to the space or set them under fixed"
        )


def subset_meta_feature(probe: TrainedModel, X: np.ndarray, y: np.ndarray, task_type: str, n_classes: int, lam: float) -> np.ndarray:
    """``M`` of one data set: Eq. 6-8 on the probe's features ``phi_e(X)``."""
    return meta_feature(probe_features(probe, X), y, task_type, n_classes, lam)


def learner_tasks(hpo: list[SubsetHPO], metas: Mapping[str, np.ndarray], space: SearchSpace, metric: str, labels: str = "largest_reached",
                  min_epochs: int = 1, max_epochs: int = 1) -> list[Task]:
    """The MAML tasks: one per subset, ``theta`` on the unit cube (with the budget as one more
    column for ``labels: budget_input``). Under ``highest_budget`` a subset with fewer than two
    configs at the largest budget is left out (MAML splits every task in two)."""
    tasks = []
    for result in hpo:
        configs, y, budget = labelled_observations(result, metric, labels, min_epochs, max_epochs)
        if labels == "highest_budget" and len(y) < 2:
            continue
        theta = space.encode(configs) if configs else np.zeros((0, space.dim))
        if budget is not None:
            theta = np.hstack([theta, budget[:, None]])
        tasks.append(Task(result.subset, np.asarray(metas[result.subset]), theta, y))
    if not tasks:
        raise ConfigurationError(f"no proxy subset has two configs at the largest budget ({max_epochs} epochs) for hp_learner.labels {labels!r}; raise bohb.trials_per_subset")
    return tasks


def full_budget_rows(task: Task, labels: str) -> np.ndarray:
    """Mask of a task's rows at the full budget (every row unless the budget is an input)."""
    if labels != "budget_input":
        return np.ones(len(task.y), dtype=bool)
    return np.isclose(task.theta[:, -1], 1.0)


def at_full_budget(objective: Callable[[torch.Tensor], torch.Tensor], labels: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The learner as a function of the hyperparameters alone: with the budget as an input, the
    budget column is held at 1 (the full budget)."""
    if labels != "budget_input":
        return objective

    def full(theta: torch.Tensor) -> torch.Tensor:
        return objective(torch.cat([theta, torch.ones(theta.shape[0], 1, dtype=theta.dtype)], dim=1))

    return full


def starts_of(tasks: list[Task], labels: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The observed configs (full-budget rows only with the budget as an input), ``(K, dim)`` and ``(K,)``."""
    rows = [(t.theta[full_budget_rows(t, labels)][:, :dim], t.y[full_budget_rows(t, labels)]) for t in tasks]
    return np.vstack([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


def validation_error(tasks: list[Task], maml: MAMLConfig, labels: str, holdout_fraction: float, seed: int, progress: bool = False) -> float:
    """The learner's error on rows it did not see: ``holdout_fraction`` of every task's full-budget
    rows (at random, at least one where the task keeps two rows to train on) are held out, a
    learner is fitted by MAML on the rest, and its RMSE on the held-out rows is returned in the
    metric's units (NaN when no row could be held out)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for t in tasks:
        target = np.flatnonzero(full_budget_rows(t, labels))
        n_out = max(1, int(round(holdout_fraction * len(target)))) if len(target) else 0
        if n_out == 0 or len(t.y) - n_out < 2:
            train.append(t)
            continue
        out = rng.choice(target, size=n_out, replace=False)
        keep = np.setdiff1d(np.arange(len(t.y)), out)
        train.append(Task(t.name, t.meta, t.theta[keep], t.y[keep]))
        held.append((t.meta, t.theta[out], t.y[out]))
    if not held:
        return float("nan")
    learner = fit_maml(train, maml, progress=progress)
    errors = np.concatenate([learner.predict(meta, theta) - y for meta, theta, y in held])
    return float(np.sqrt(np.mean(errors**2)))


def transfer(hpo: list[SubsetHPO], metas: Mapping[str, np.ndarray], full_meta: np.ndarray, space: SearchSpace, metric: str, config: MetaHPOConfig,
             seed: int = 0, progress: bool = False, fitted: tuple[FittedLearner, float] | None = None) -> Transfer:
    """The meta-transfer stage on BOHB's outcome: MAML, L-BFGS, the incumbent guard.

    Rule of ``prediction.guard: incumbent``: with ``g = phi_m(M_full, pick) - phi_m(M_full, incumbent)``
    (the learner's predicted gain of its pick over BOHB's best full-budget config, at the full
    budget) and ``e`` the learner's validation error (:func:`validation_error`), the pick replaces
    the incumbent only when ``g > e``. ``guard: none`` is the paper: the pick alone.

    ``fitted``: a learner and validation error from an earlier call on the same observations and
    labels (a study comparing prediction settings reuses them).
    """
    labels, p = config.labels, config.prediction
    maml = dataclasses.replace(config.maml, seed=config.maml.seed + seed)
    tasks = learner_tasks(hpo, metas, space, metric, labels, config.bohb.min_epochs, config.bohb.max_epochs)
    learner = fitted[0] if fitted is not None else fit_maml(tasks, maml, progress=progress)
    objective = at_full_budget(learner.torch_objective(full_meta), labels)
    theta, y = starts_of(tasks, labels, space.dim)
    prediction = predict_config(objective, space, theta, y, p.n_best_starts, p.n_random_starts, p.max_iter, seed=seed, region=p.region,
                                region_radius=p.region_radius)
    prediction.predicted = float(learner.scaler.y_back(prediction.predicted))
    prediction.relaxed_predicted = float(learner.scaler.y_back(prediction.relaxed_predicted))
    incumbent, incumbent_value = bohb_incumbent(hpo, metric, config.bohb.max_epochs)
    gain, error, final, chosen = float("nan"), float("nan"), prediction.config, "learner"
    if incumbent is not None:
        with torch.no_grad():
            at_incumbent = float(learner.scaler.y_back(float(objective(torch.as_tensor(space.encode([incumbent]), dtype=torch.float64))[0])))
        gain = prediction.predicted - at_incumbent
        if p.guard == "incumbent":
            error = fitted[1] if fitted is not None else validation_error(tasks, maml, labels, p.holdout_fraction, seed, progress)
            if not gain > error:  # a NaN error keeps the incumbent
                final, chosen = incumbent, "incumbent"
    return Transfer(learner, prediction, final, chosen, incumbent, incumbent_value, gain, error, tasks)


def full_meta_feature(probe: TrainedModel, X: np.ndarray, y: np.ndarray, metas: Mapping[str, np.ndarray], task_type: str, n_classes: int, lam: float,
                      mode: str) -> np.ndarray:
    """The full set's ``M``: Eq. 6-8 on all of ``(X, y)`` (``own``) or the mean of the subsets'
    (``subset_mean``, the paper's sentence)."""
    if mode == "subset_mean":
        return np.mean(np.stack(list(metas.values())), axis=0)
    return subset_meta_feature(probe, X, y, task_type, n_classes, lam)


def run_metahpo(
    data: ExperimentData,
    strategy: Strategy,
    space: SearchSpace,
    settings: TrainSettings,
    config: MetaHPOConfig,
    pool: WorkerPool,
    metric: str,
    seed: int = 0,
    train_seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> MetaHPOResult:
    """Meta-HPO on ``data`` (see the module docstring); ``seed`` seeds the probe, the attack, the
    subsets, SMAC and MAML, ``train_seed`` every training run."""
    if strategy not in ("adversarial", "random"):
        raise ConfigurationError(f"Meta-HPO subsets must be 'adversarial' or 'random', got {strategy!r}")
    check_space(space, settings)
    if settings.epochs < config.bohb.max_epochs:
        raise ConfigurationError(f"bohb.max_epochs ({config.bohb.max_epochs}) exceeds the training epochs ({settings.epochs})")
    device = torch.device(device) if isinstance(device, str) else device
    source, sampling = data.source, config.sampling
    phases = dict.fromkeys(("probe", "sampling", "hpo", "meta_features", "transfer"), 0.0)
    start = time.perf_counter()
    probe = train_model(source, sampling.classifier, device, seed, progress=progress)
    phases["probe"] += probe.seconds
    lower, upper = data_box(source)
    weights = perturbation_weights(source.X, sampling.attack.weights, sampling.attack.weight_floor)
    manifests: list[SubsetManifest] = []
    hpo: list[SubsetHPO] = []
    rounds: list[dict[str, Any]] = []
    previous_core: set[int] | None = None
    for r in range(sampling.rounds):
        info: dict[str, Any] = {"round": r}
        if r > 0 and sampling.probe_update_epochs:
            update_probe(probe, source, sampling.classifier, sampling.probe_update_epochs, seed=seed * 1000 + r, progress=progress)
            phases["probe"] += probe.seconds
        info["probe_fit"] = probe.train_metric
        t0 = time.perf_counter()
        sampler_seed = seed * 1000 + r
        tag = f"{data.name}-r{r}"
        if strategy == "adversarial":
            attack = dataclasses.replace(sampling.attack, seed=sampler_seed)
            scores = adversarial_scores(probe, source.X, attack, lower, upper, weights, progress=progress)
            drawn = adversarial_proxy_subsets(source, scores, sampling.subsets_per_round, sampling.ratio, sampling.adversarial_fraction,
                                              sampler_seed, pool_factor=sampling.pool_factor, tag=tag)
            info["attack_success"] = scores.success_rate
            core = set()
            a = int(round(sampling.adversarial_fraction * drawn[0].size))
            for m in drawn:
                core |= set(m.indices[:a].tolist())
            info["core_overlap_with_previous"] = (len(core & previous_core) / max(1, len(core | previous_core))) if previous_core is not None else np.nan
            previous_core = core
        else:
            drawn = random_proxy_subsets(source, sampling.subsets_per_round, sampling.ratio, sampler_seed, tag=tag)
        info["sampling_s"] = time.perf_counter() - t0
        phases["sampling"] += info["sampling_s"]
        manifests.extend(drawn)
        t0 = time.perf_counter()
        tasks = [data.task(m.subset_id, *_arrays(m, source)) for m in drawn]
        seeds = [seed * 1000 + r * 100 + i for i in range(len(tasks))]
        futures = [pool.submit(bohb_on_subset, task, space, settings, config.bohb, metric, s, train_seed) for task, s in zip(tasks, seeds)]
        hpo.extend(f.result() for f in futures)
        info["hpo_s"] = time.perf_counter() - t0
        phases["hpo"] += info["hpo_s"]
        rounds.append(info)
    t0 = time.perf_counter()
    metas = {m.subset_id: subset_meta_feature(probe, *_arrays(m, source), data.task_type, data.n_classes, config.lam) for m in manifests}
    full_meta = full_meta_feature(probe, source.X, source.y, metas, data.task_type, data.n_classes, config.lam, config.full_meta)
    phases["meta_features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcome = transfer(hpo, metas, full_meta, space, metric, config, seed=seed, progress=progress)
    phases["transfer"] = time.perf_counter() - t0
    seconds = time.perf_counter() - start
    return MetaHPOResult(strategy, outcome.prediction, outcome, seconds, phases, manifests, hpo, metas, full_meta, outcome.learner, probe, rounds,
                         sampling.classifier, source.sample_shape)


def _arrays(manifest: SubsetManifest, source: Any) -> tuple[np.ndarray, np.ndarray]:
    subset = materialise(manifest, source)
    return subset.X, subset.y


def observations_frame(result: MetaHPOResult, experiment: str) -> pd.DataFrame:
    """Every epoch of every config BOHB trained, one row each: ``experiment, strategy, subset,
    config (JSON), budgets (JSON), status, epoch`` and the trainer's metrics."""
    import json

    rows = []
    for subset in result.hpo:
        for trial in subset.trials:
            for record in trial.records:
                rows.append({"experiment": experiment, "strategy": result.strategy, "subset": subset.subset, "config": json.dumps(trial.config, sort_keys=True),
                             "budgets": json.dumps(trial.budgets), "status": trial.status, **record})
    return pd.DataFrame(rows)
