"""The parameters of a Meta-HPO study (``conf/base/parameters_metahpo.yml``), checked by one
pydantic model; :func:`parse_params` turns a bad key or value into one ``ConfigurationError`` line.

The top-level sections (``sampling``, ``bohb``, ``meta_features``, ``hp_learner``, ``prediction``,
``baselines``) apply to every experiment; an experiment's ``overrides`` replaces any of their keys
for that experiment only (deep merge), e.g. ``overrides: {sampling: {ratio: 0.2}}``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transfertune.core.params import validate_params
from transfertune.errors import ConfigurationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutionParams(_Strict):
    workers: int = Field(2, ge=1)
    scheduler_address: str | None = None
    threads_per_worker: int = Field(1, ge=1)
    torch_threads: int | None = 1
    amp: bool | str = "auto"
    deterministic: bool = True
    eval_batch_size: int = Field(1024, ge=1)


class ClassifierParams(_Strict):
    model: Literal["auto", "mlp", "cnn"] = "auto"
    hidden: int = Field(64, ge=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class AttackParams(_Strict):
    iterations: int = Field(100, ge=1)
    lr: float = Field(0.01, gt=0)
    lr_final_fraction: float = Field(0.1, gt=0, le=1)
    batch_size: int = Field(1024, ge=1)
    c: float = Field(0.1, gt=0)
    sigma: float = Field(0.5, gt=0)
    scores: Literal["probabilities", "logits"] = "probabilities"
    target: Literal["runner_up", "all"] = "runner_up"
    weights: Literal["data", "uniform"] = "data"
    weight_floor: float = Field(0.1, gt=0, le=1)
    init_noise: float = Field(1e-3, ge=0)
    weighting: Literal["min_norm", "fixed"] = "min_norm"
    fixed_lambda: tuple[float, float] = (1.0, 1.0)


class SamplingParams(_Strict):
    rounds: int = Field(2, ge=1)
    subsets_per_round: int = Field(4, ge=1)
    ratio: float = Field(0.1, gt=0, le=1)
    adversarial_fraction: float = Field(0.5, ge=0, le=1)
    pool_factor: float = Field(2.0, ge=1)
    probe_update_epochs: int = Field(5, ge=0)
    classifier: ClassifierParams = Field(default_factory=ClassifierParams)
    attack: AttackParams = Field(default_factory=AttackParams)


class BOHBParams(_Strict):
    trials_per_subset: int = Field(10, ge=1)
    min_epochs: int = Field(3, ge=1)
    eta: int = Field(3, ge=2)
    crash_cost: float = 0.0


class MetaFeatureParams(_Strict):
    lam: float = Field(1.0, gt=0)
    full: Literal["own", "subset_mean"] = "own"


class HPLearnerParams(_Strict):
    hidden: int = Field(64, ge=1)
    meta_latent: int = Field(32, ge=1)
    hp_latent: int = Field(16, ge=1)
    activation: Literal["tanh", "relu", "silu"] = "tanh"
    alpha: float = Field(0.05, ge=0)
    beta: float = Field(0.02, gt=0)
    inner_steps: int = Field(1, ge=0)
    steps: int = Field(500, ge=1)
    tasks_per_step: int = Field(4, ge=1)
    support_fraction: float = Field(0.5, gt=0, lt=1)
    labels: Literal["largest_reached", "highest_budget", "budget_input"] = "budget_input"


class PredictionParams(_Strict):
    n_best_starts: int = Field(4, ge=0)
    n_random_starts: int = Field(4, ge=0)
    max_iter: int = Field(100, ge=1)
    region: Literal["box", "local"] = "local"
    region_radius: float = Field(0.1, gt=0)
    guard: Literal["incumbent", "none"] = "incumbent"
    holdout_fraction: float = Field(0.2, gt=0, lt=1)


class RandomSearchParams(_Strict):
    enabled: bool = True


class GPBOParams(_Strict):
    enabled: bool = True
    n_initial: int = Field(3, ge=1)
    raw_samples: int = Field(256, ge=1)
    num_restarts: int = Field(4, ge=1)


class HyperbandSizeParams(_Strict):
    enabled: bool = True
    max_units: int = Field(27, ge=1)
    eta: int = Field(3, ge=2)


class BaselineParams(_Strict):
    ablation_random_subsets: bool = True
    random_search: RandomSearchParams = Field(default_factory=RandomSearchParams)
    gp_bo: GPBOParams = Field(default_factory=GPBOParams)
    hyperband_subset_size: HyperbandSizeParams = Field(default_factory=HyperbandSizeParams)


class DataParams(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExperimentParams(_Strict):
    enabled: bool = True
    data: DataParams
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.3, gt=0, lt=1)
    split_seed: int = 0
    model: str = "mlp"
    model_options: dict[str, Any] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    space: str | None = None
    max_epochs: int = Field(9, ge=1)
    metric: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class OutOfSampleParams(_Strict):
    enabled: bool = True
    experiment: str = "mnist1d_family"
    initial_configs: int = Field(4, ge=1)
    meta_subsets: int = Field(4, ge=1)
    update_steps: int = Field(100, ge=0)
    baselines: list[Literal["random_search", "gp_bo"]] = Field(default_factory=lambda: ["random_search", "gp_bo"])


class StudyParams(_Strict):
    """Every knob of ``kedro run --pipeline=metahpo``."""

    seed: int = 0
    runs: int = Field(1, ge=1)
    device: str = "auto"
    progress: bool = True
    root: str | None = None
    store_dir: str = "data/06_models/metahpo"
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    experiments: dict[str, ExperimentParams]
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    bohb: BOHBParams = Field(default_factory=BOHBParams)
    meta_features: MetaFeatureParams = Field(default_factory=MetaFeatureParams)
    hp_learner: HPLearnerParams = Field(default_factory=HPLearnerParams)
    prediction: PredictionParams = Field(default_factory=PredictionParams)
    baselines: BaselineParams = Field(default_factory=BaselineParams)
    out_of_sample: OutOfSampleParams = Field(default_factory=OutOfSampleParams)


class Resolved(_Strict):
    """One experiment with the common sections merged with its overrides."""

    name: str
    experiment: ExperimentParams
    sampling: SamplingParams
    bohb: BOHBParams
    meta_features: MetaFeatureParams
    hp_learner: HPLearnerParams
    prediction: PredictionParams
    baselines: BaselineParams


SECTIONS = ("sampling", "bohb", "meta_features", "hp_learner", "prediction", "baselines")


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else copy.deepcopy(value)
    return out


def parse_params(params: Mapping[str, Any]) -> StudyParams:
    """The ``metahpo`` parameters, checked (one ConfigurationError naming every bad key)."""
    if not isinstance(params, Mapping):
        raise ConfigurationError("parameters 'metahpo' must be a mapping; see conf/base/parameters_metahpo.yml")
    parsed = validate_params(StudyParams, params, "metahpo")
    if not any(e.enabled for e in parsed.experiments.values()):
        raise ConfigurationError("metahpo.experiments: no experiment is enabled")
    for name in parsed.experiments:
        resolve(parsed, name)  # overrides fail here, before any work
    if parsed.out_of_sample.enabled and parsed.out_of_sample.experiment not in parsed.experiments:
        raise ConfigurationError(f"metahpo.out_of_sample.experiment {parsed.out_of_sample.experiment!r} is not one of the experiments {sorted(parsed.experiments)}")
    return parsed


def resolve(study: StudyParams, name: str) -> Resolved:
    """Experiment ``name`` with its overrides applied to the common sections."""
    experiment = study.experiments[name]
    unknown = sorted(set(experiment.overrides) - set(SECTIONS))
    if unknown:
        raise ConfigurationError(f"metahpo.experiments.{name}.overrides: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
    merged = {s: _merge(getattr(study, s).model_dump(), experiment.overrides.get(s) or {}) for s in SECTIONS}
    resolved = validate_params(Resolved, {"name": name, "experiment": experiment.model_dump(), **merged}, f"metahpo.experiments.{name}.overrides")
    subsets, per_step = resolved.sampling.rounds * resolved.sampling.subsets_per_round, resolved.hp_learner.tasks_per_step
    if subsets < 2 * per_step:
        raise ConfigurationError(
            f"metahpo.experiments.{name}: MAML samples hp_learner.tasks_per_step = {per_step} of {subsets} proxy subsets (sampling.rounds x subsets_per_round); "
            f"it needs at least twice as many subsets ({2 * per_step}) to draw different tasks"
        )
    return resolved
