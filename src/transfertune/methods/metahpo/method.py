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
3. **Meta features** (Eq. 6-8) of every subset with the final ``phi_e``; the full set's is their
   average.
4. **hp-learner** trained by MAML on ``{M_i, theta_ik, y_ik}`` (Algorithm 1).
5. **Prediction**: L-BFGS over the hyperparameters at the full set's meta feature.

The wall clock from the start of step 1 to the end of step 5 is the method's cost, the budget the
baselines get.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
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
from transfertune.methods.metahpo.bohb import BOHBConfig, SubsetHPO, bohb_on_subset, learner_observations
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
    subsets_per_round: int = 2
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


@dataclass
class MetaHPOConfig:
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    bohb: BOHBConfig = field(default_factory=BOHBConfig)
    lam: float = 1.0
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)


@dataclass
class MetaHPOResult:
    """What one Meta-HPO run produced.

    Attributes:
        strategy: ``adversarial`` or ``random`` subsets.
        prediction: the config chosen for the full set (L-BFGS on the hp-learner).
        seconds: wall clock of the whole method (the budget the baselines get).
        phases: seconds per phase (``probe``, ``sampling``, ``hpo``, ``meta_features``, ``maml``, ``prediction``).
        manifests: the proxy subsets, round by round.
        hpo: BOHB's outcome per subset.
        meta_features: subset id -> ``M_i``; ``full_meta``: the full set's (their mean).
        learner: the trained hp-learner.
        probe: the final ``phi_e``.
        rounds: per round: probe fit, attack success rate, seconds, the adversarial cores' overlap
            with the previous round.
    """

    strategy: str
    prediction: Prediction
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
        return self.prediction.config


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


def learner_tasks(hpo: list[SubsetHPO], metas: Mapping[str, np.ndarray], space: SearchSpace, metric: str) -> list[Task]:
    """The MAML tasks: one per subset, ``theta`` on the unit cube."""
    tasks = []
    for result in hpo:
        configs, y = learner_observations(result, metric)
        tasks.append(Task(result.subset, np.asarray(metas[result.subset]), space.encode(configs), y))
    return tasks


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
    phases = dict.fromkeys(("probe", "sampling", "hpo", "meta_features", "maml", "prediction"), 0.0)
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
    full_meta = np.mean(np.stack(list(metas.values())), axis=0)
    phases["meta_features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tasks = learner_tasks(hpo, metas, space, metric)
    learner = fit_maml(tasks, dataclasses.replace(config.maml, seed=config.maml.seed + seed), progress=progress)
    phases["maml"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = config.prediction
    prediction = predict_config(learner.torch_objective(full_meta), space, np.vstack([t.theta for t in tasks]), np.concatenate([t.y for t in tasks]),
                                p.n_best_starts, p.n_random_starts, p.max_iter, seed=seed, region=p.region, region_radius=p.region_radius)
    prediction.predicted = float(learner.scaler.y_back(prediction.predicted))
    prediction.relaxed_predicted = float(learner.scaler.y_back(prediction.relaxed_predicted))
    phases["prediction"] = time.perf_counter() - t0
    seconds = time.perf_counter() - start
    return MetaHPOResult(strategy, prediction, seconds, phases, manifests, hpo, metas, full_meta, learner, probe, rounds, sampling.classifier, source.sample_shape)


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
