"""HPO on one proxy subset with BOHB (Meta-HPO, seed 003, section 3.3): SMAC3's multi-fidelity
facade (Hyperband over epochs with a random-forest model proposing the configs; SMAC's authors
describe it as their reimplementation of BOHB, with a random forest instead of BOHB's KDE).

The fidelity is the epoch: budgets ``min_epochs .. max_epochs`` in Hyperband's geometric steps
(``eta``). A config promoted to a larger budget continues its training run instead of starting
again (its :class:`~transfertune.training.trainer.TrainingRun` stays in memory while the subset is
tuned, with its own state of the global random generators, which dropout draws from), so its
curve is the one training straight through would give. SMAC minimises; its cost is
``-metric``. A run whose loss diverges is reported as crashed (cost ``crash_cost``).

Why these SMAC settings: the random forest is built with ``max_leaf_nodes=None``. SMAC's default
(``2**20``) makes scikit-learn use its best-first tree builder, which allocates for that many
leaves on every fit: 93 ms per tree here, about 1.7 s per model-based proposal, against 0.6 s
without the cap, which is never reached on tens of observations (the trees grow until the
``min_samples`` limits stop them either way). ``n_jobs=1``: the workers are single-threaded
processes already.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.training.runner import TrainSettings, worker_device
from transfertune.training.trainer import TaskData, TrainingRun, divergence


@dataclass
class BOHBConfig:
    """Attributes:
        trials_per_subset: SMAC evaluations (config x budget) per subset.
        min_epochs, max_epochs: the smallest and largest budget, in epochs.
        eta: Hyperband's halving rate.
        crash_cost: SMAC's cost of a diverged run (cost = -metric).
    """

    trials_per_subset: int = 24
    min_epochs: int = 1
    max_epochs: int = 9
    eta: int = 3
    crash_cost: float = 0.0

    def __post_init__(self) -> None:
        for name in ("trials_per_subset", "min_epochs", "max_epochs", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < (2 if name == "eta" else 1):
                raise ConfigurationError(f"bohb.{name} must be an integer >= {2 if name == 'eta' else 1}, got {value!r}")
        if self.min_epochs > self.max_epochs:
            raise ConfigurationError(f"bohb.min_epochs ({self.min_epochs}) exceeds max_epochs ({self.max_epochs})")


@dataclass
class SubsetTrial:
    """One config tuned on a subset: its curve up to the largest budget it was given.

    Attributes:
        config: the config (space names).
        records: one dict per epoch trained (``epoch`` and the trainer's metrics).
        budgets: the budgets (epochs) SMAC evaluated it at, in order.
        status: ``completed`` or ``failed`` (diverged).
        reason: why it failed.
    """

    config: dict[str, Any]
    records: list[dict[str, float]] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)
    status: str = "completed"
    reason: str = ""


@dataclass
class SubsetHPO:
    """The outcome of :func:`bohb_on_subset` for one subset."""

    subset: str
    trials: list[SubsetTrial]
    seconds: float
    evaluations: int


def plain_config(space: SearchSpace, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The space's active hyperparameters of ``raw`` as plain Python numbers (ConfigSpace hands
    out NumPy scalars)."""
    out: dict[str, Any] = {}
    for name, value in space.from_raw(raw).items():
        hp = space[name]
        out[name] = int(value) if hp.type == "integer" else float(value) if hp.type == "float" else value
    return out


def _key(config: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, float(v) if isinstance(v, (int, float, np.number)) else v) for k, v in config.items()))


def bohb_on_subset(task: TaskData, space: SearchSpace, settings: TrainSettings, bohb: BOHBConfig, metric: str, seed: int, train_seed: int) -> SubsetHPO:
    """Tune ``settings.model`` on ``task`` with SMAC's multi-fidelity facade (see the module docstring).

    Runs in a Dask worker or in-process; ``seed`` seeds SMAC, ``train_seed`` every training run.
    """
    import torch
    from smac import MultiFidelityFacade, Scenario
    from smac.model.random_forest import RandomForest
    from smac.runhistory.dataclasses import TrialValue
    from smac.runhistory.enumerations import StatusType

    start = time.perf_counter()
    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    device = worker_device(settings.device)
    runs: dict[tuple, TrainingRun] = {}
    rng_states: dict[tuple, dict[str, Any]] = {}
    trials: dict[tuple, SubsetTrial] = {}
    evaluations = 0
    with tempfile.TemporaryDirectory(prefix="smac-") as folder:
        scenario = Scenario(space.configspace, name=task.name, output_directory=folder, deterministic=True, n_trials=int(bohb.trials_per_subset),
                            min_budget=int(bohb.min_epochs), max_budget=int(bohb.max_epochs), seed=int(seed), crash_cost=float(bohb.crash_cost))
        model = RandomForest(space.configspace, log_y=True, seed=int(seed), n_jobs=1, max_leaf_nodes=None)
        facade = MultiFidelityFacade(scenario, lambda config, seed=0, budget=1: 0.0, model=model,
                                     intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=int(bohb.eta)), overwrite=True, logging_level=False)
        for _ in range(int(bohb.trials_per_subset)):
            info = facade.ask()
            config = plain_config(space, dict(info.config))
            epochs = int(round(info.budget))
            key = _key(config)
            trial = trials.setdefault(key, SubsetTrial(config))
            trial.budgets.append(epochs)
            evaluations += 1
            t0 = time.perf_counter()
            if trial.status == "completed" and len(trial.records) < epochs:
                run = runs.get(key)
                if run is None:
                    run = runs[key] = TrainingRun(settings.model, config, task, train_seed, device=device, amp=settings.amp, fixed=settings.fixed,
                                                  options=settings.options, deterministic=settings.deterministic, eval_batch_size=settings.eval_batch_size)
                else:
                    # dropout draws from the global generators, which other configs' runs moved on
                    _set_rng(rng_states[key], run.device)
                while run.epoch < epochs:
                    record = run.train_epoch()
                    why = divergence(record)
                    if why:
                        trial.status, trial.reason = "failed", why
                        runs.pop(key, None)
                        break
                    trial.records.append(record)
                if key in runs:
                    rng_states[key] = _rng(run.device)
            seconds = time.perf_counter() - t0
            if trial.status == "failed" and len(trial.records) < epochs:
                facade.tell(info, TrialValue(cost=float(bohb.crash_cost), time=seconds, status=StatusType.CRASHED))
            else:
                facade.tell(info, TrialValue(cost=-float(trial.records[epochs - 1][metric]), time=seconds))
    return SubsetHPO(task.name, list(trials.values()), time.perf_counter() - start, evaluations)


def _rng(device: Any) -> dict[str, Any]:
    import torch

    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng(state: dict[str, Any], device: Any) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


LABELS = ("largest_reached", "highest_budget", "budget_input")


def learner_observations(hpo: SubsetHPO, metric: str) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The hp-learner's examples ``{theta_ik, y_ik}`` of one subset as the paper's Figure 3 has
    them (``labels: largest_reached``): every config with the metric at the largest budget it was
    trained to (BOHB promotes the well-performing configs to the larger budgets); a config that
    diverged before any epoch gets the worst value of the subset."""
    configs, values = [], []
    for trial in hpo.trials:
        configs.append(trial.config)
        values.append(trial.records[-1][metric] if trial.records else np.nan)
    return configs, _fill_worst(np.asarray(values, dtype=np.float64))


def budget_unit(epochs: np.ndarray | float, min_epochs: int, max_epochs: int) -> np.ndarray:
    """A budget on the unit interval, log scale: ``log(b / min) / log(max / min)`` (1 at the
    largest budget; all ones when ``min == max``)."""
    b = np.asarray(epochs, dtype=np.float64)
    if max_epochs <= min_epochs:
        return np.ones_like(b)
    return np.log(b / min_epochs) / np.log(max_epochs / min_epochs)


def labelled_observations(hpo: SubsetHPO, metric: str, labels: str, min_epochs: int, max_epochs: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray | None]:
    """The learner's examples of one subset under a labelling rule (``hp_learner.labels``).

    * ``largest_reached`` (the paper, as Figure 3 reads): :func:`learner_observations`; no budget.
    * ``highest_budget``: only the configs BOHB evaluated at ``max_epochs``, labelled with the
      metric there (Eq. 1's ``f`` is the fully trained metric); one that diverged on the way gets
      the subset's worst value.
    * ``budget_input``: one example per (config, budget SMAC evaluated it at), labelled with the
      metric after that many epochs; the budget is returned as a third column on the unit interval
      (:func:`budget_unit`), an input of the learner, which is queried at 1 (the full budget).

    Returns ``configs``, ``y (K,)`` and ``budget (K,)`` (``None`` unless ``budget_input``).
    """
    if labels == "largest_reached":
        configs, y = learner_observations(hpo, metric)
        return configs, y, None
    if labels not in LABELS:
        raise ConfigurationError(f"hp_learner.labels must be one of {list(LABELS)}, got {labels!r}")
    configs, values, budgets = [], [], []
    for trial in hpo.trials:
        evaluated = sorted(set(int(b) for b in trial.budgets))
        if labels == "highest_budget":
            evaluated = [b for b in evaluated if b >= max_epochs]
        for b in evaluated:
            configs.append(trial.config)
            values.append(trial.records[b - 1][metric] if len(trial.records) >= b else np.nan)
            budgets.append(b)
    y = _fill_worst(np.asarray(values, dtype=np.float64))
    if labels == "highest_budget":
        return configs, y, None
    return configs, y, budget_unit(np.asarray(budgets, dtype=np.float64), min_epochs, max_epochs)


def bohb_incumbent(hpo: list[SubsetHPO], metric: str, max_epochs: int) -> tuple[dict[str, Any] | None, float]:
    """BOHB's own answer: the config with the best metric at the largest budget over all subsets
    (the first when tied); ``(None, nan)`` when no config reached it."""
    best, value = None, -np.inf
    for subset in hpo:
        for trial in subset.trials:
            if len(trial.records) >= max_epochs and max_epochs in trial.budgets:
                v = float(trial.records[max_epochs - 1][metric])
                if np.isfinite(v) and v > value:
                    best, value = trial.config, v
    return best, (value if best is not None else float("nan"))


def _fill_worst(y: np.ndarray) -> np.ndarray:
    """A diverged run (NaN) gets the worst value of its subset (0 when none is finite)."""
    if not np.isnan(y).any():
        return y
    worst = np.nanmin(y) if np.isfinite(y).any() else 0.0
    return np.where(np.isnan(y), worst, y)
