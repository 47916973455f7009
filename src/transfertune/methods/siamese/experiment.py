"""The whole seed-000 experiment as plain functions (the ``siamese`` pipeline and
``benchmarks/siamese_bench.py`` only call these)::

    p = parse_params(params)
    family = make_family(p)                          # tasks of a family preset (transfertune.data.families)
    catalog = make_catalog(family, p)                # 100 LHS configs x every task, trained: the mappings
    targets = target_matrix(family, catalog, p)      # L1 (or zscore_l1, rank_l1) distances of the mappings
    runs = learn_metafeatures(family, targets, p)    # Algorithm 1 per seed + hand-crafted baseline
    regret = retrieval_regret_table(family, targets, runs, p.bo.k)   # the k neighbours' best configs on each task
    results = run_bo(family, catalog, runs, p)       # Algorithm 2 and Figure 2's baselines, live
    curves = bo_curves(results)

Every setting lives in :class:`SiameseParams` (``conf/base/parameters_siamese.yml``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transfertune.core.device import torch_threads
from transfertune.core.params import resolve_path, validate_params
from transfertune.errors import ConfigurationError
from transfertune.data.families import FamilySpec, FamilyTask, build_family, spec_from_params
from transfertune.methods.siamese.distances import (
    TARGET_DISTANCES,
    mappings,
    nearest,
    random_retrieval_regret,
    retrieval_regret,
    rowwise_spearman,
    spearman,
    target_distances,
)
from transfertune.methods.siamese.handcrafted import HandcraftedMetaFeatures, statistics
from transfertune.methods.siamese.training import (
    SiameseResult,
    SiameseSettings,
    check_sizes,
    conform_images,
    embed_all,
    pairwise_euclidean,
    train_siamese,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- parameters
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FamilyParams(_Strict):
    """Which task family (a preset of :mod:`transfertune.data.families`), how many tasks, which
    are held out. ``overrides`` replace fields of the preset (``factors``, ``epochs``, ``n_val``,
    ``base_options``...)."""

    preset: str = "mnist1d_scale"
    overrides: dict[str, Any] = Field(default_factory=dict)
    n_tasks: int | None = Field(24, ge=3)
    seed: int = 0
    n_heldout: int = Field(8, ge=1)
    heldout_seed: int = 0


class ExecutionParams(_Strict):
    device: str = "auto"
    torch_threads: int | None = 1
    amp: bool | str = "auto"
    deterministic: bool = True


class CatalogParams(_Strict):
    """The mappings: ``n_configs`` configs of the family's space (``sampling``: ``lhs`` or
    ``random``) trained on every task for the family's epochs (``epochs``: null) by the family's
    model, and the target distance computed from them."""

    output_dir: str
    store_dir: str | None = None
    database: str | None = None  # a tuning database holding these very trials (seed 0): read, not trained
    n_configs: int = Field(100, ge=2)
    sampling: Literal["lhs", "random"] = "lhs"
    config_seed: int = 0
    epochs: int | None = Field(None, ge=1)
    target_distance: Literal["l1", "zscore_l1", "rank_l1"] = "rank_l1"  # by the rule of docs/methods/siamese.md
    min_shared_configs: int = Field(2, ge=1)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)


class NetworkParams(_Strict):
    beta: int = Field(8, ge=1)
    tau: int = Field(32, ge=1)
    iterations: int = Field(1500, ge=1)
    lr: float = Field(1e-3, gt=0)
    channels: tuple[int, int] = (16, 32)
    fc_units: tuple[int, int] = (64, 32)
    hidden: int = Field(32, ge=1)
    draws: int = Field(8, ge=1)
    image_shape: tuple[int, int, int] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    device: str = "auto"

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("give at least one seed")
        return seeds


class VariantParams(_Strict):
    retrieval: Literal["none", "learned", "handcrafted"] = "none"
    prior_mean: bool = False
    acquisition: Literal["ei", "ucb"] = "ei"


class BOParams(_Strict):
    k: int = Field(3, ge=1)
    evaluations: int = Field(20, ge=1)
    repetitions: int = Field(8, ge=1)
    n_jobs: int = -1
    datasets: list[str] | None = None
    n_random_init: int = Field(3, ge=1)
    ucb_beta: float = Field(4.0, gt=0)
    num_restarts: int = Field(2, ge=1)
    raw_samples: int = Field(128, ge=1)
    maxiter: int = Field(50, ge=1)
    seed: int = 0
    train_seed: int = 0
    store_dir: str
    variants: dict[str, VariantParams]
    method: str = "siamese_prior_ei"
    reference: str = "random_ei"
    target_evaluations: int = Field(10, ge=1)


class SiameseParams(_Strict):
    family: FamilyParams = Field(default_factory=FamilyParams)
    catalog: CatalogParams
    network: NetworkParams = Field(default_factory=NetworkParams)
    bo: BOParams
    progress: bool = True


def parse_params(params: Mapping[str, Any]) -> SiameseParams:
    """The ``siamese`` parameters, checked; one ConfigurationError line names each bad key."""
    if not isinstance(params, Mapping):
        raise ConfigurationError("parameters 'siamese' must be a mapping; see conf/base/parameters_siamese.yml")
    params = dict(params)
    bo = params.get("bo")
    if isinstance(bo, Mapping) and isinstance(bo.get("variants"), Mapping):
        # `label: false` turns a variant off (a command line cannot delete a key); null: the defaults
        params["bo"] = {**bo, "variants": {k: (v or {}) for k, v in bo["variants"].items() if v is not False}}
    parsed = validate_params(SiameseParams, params, "siamese")
    if not parsed.bo.variants:
        raise ConfigurationError("siamese.bo.variants is empty; name at least one, e.g. {random_ei: {}}")
    return parsed


# ---------------------------------------------------------------------------------- family
def wing_images(raw: np.ndarray) -> np.ndarray:
    """What the Siamese wing reads from a task's ``raw_train``: images ``(N, C, H, W)`` as they
    are, ``(N, H, W)`` as one channel, 1-D signals (or table rows) ``(N, L)`` as ``1 x L`` images
    ``(N, 1, 1, L)``."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 4:
        return raw
    if raw.ndim == 3:
        return raw[:, None]
    if raw.ndim == 2:
        return raw[:, None, None, :]
    raise ConfigurationError(f"the Siamese wing reads images (N, C, H, W) or signals (N, L); got raw inputs of shape {raw.shape}")


@dataclass
class Family:
    """The tasks, which are held out of meta-feature learning, and what the wing sees.

    Attributes:
        spec: the family (model, space, epochs the target model trains with).
        members: every task, in family order.
        train: names of the training tasks (Algorithm 1's and the BO's transfer source).
        held_out: names never seen by Algorithm 1 (evaluation and BO targets).
        images: name -> ``(N, C, H, W)`` wing inputs of one shape (:func:`wing_images`,
            ``image_shape`` applied).
    """

    spec: FamilySpec
    members: list[FamilyTask]
    train: list[str]
    held_out: list[str]
    images: dict[str, np.ndarray] = field(repr=False)

    def __getitem__(self, name: str) -> FamilyTask:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def table(self) -> pd.DataFrame:
        """One row per task: name, role, every factor's level, split sizes, the wing's input shape."""
        held = set(self.held_out)
        rows = []
        for m in self.members:
            row = {"dataset": m.name, "role": "held_out" if m.name in held else "train"}
            row.update({f: m.factors.get(f) for f in self.spec.factors})
            row.update({"n_train": len(m.task.y_train), "n_val": len(m.task.y_val), "n_classes": int(m.task.n_classes),
                        "wing_input": "x".join(str(s) for s in self.images[m.name].shape[1:])})
            rows.append(row)
        return pd.DataFrame(rows)


def family_spec(p: SiameseParams) -> FamilySpec:
    """The preset with ``overrides`` (one line for an unknown preset or field)."""
    return spec_from_params({"preset": p.family.preset, **dict(p.family.overrides)})


def split_tasks(names: Sequence[str], n_heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """``(training, held_out)`` names: ``n_heldout`` drawn at random (seeded); both keep the order."""
    n = len(names)
    if not 1 <= int(n_heldout) <= n - 2:
        raise ConfigurationError(f"siamese.family.n_heldout must be in 1..{n - 2} (at least two training tasks form a pair), got {n_heldout}")
    held = set(np.random.default_rng([int(seed), 22]).choice(n, size=int(n_heldout), replace=False).tolist())
    return [x for i, x in enumerate(names) if i not in held], [x for i, x in enumerate(names) if i in held]


def make_family(p: SiameseParams) -> Family:
    """Draw the family's tasks, hold ``n_heldout`` out, shape the wing's inputs."""
    spec = family_spec(p)
    members = build_family(spec, p.family.n_tasks, p.family.seed)
    train, held = split_tasks([m.name for m in members], p.family.n_heldout, p.family.heldout_seed)
    images = conform_images({m.name: wing_images(m.raw_train) for m in members}, p.network.image_shape)
    return Family(spec, members, train, held, images)


# ---------------------------------------------------------------------------------- catalog
def train_settings(p: SiameseParams, spec: FamilySpec) -> Any:
    """How every catalog and live trial trains: the family's model, epochs and fixed settings."""
    from transfertune.training.runner import TrainSettings

    c = p.catalog
    return TrainSettings(model=spec.model, epochs=int(c.epochs or spec.epochs), fixed=dict(spec.fixed), device=c.execution.device,
                         amp=c.execution.amp, deterministic=c.execution.deterministic, torch_threads=c.execution.torch_threads)


def catalog_configs(p: SiameseParams, spec: FamilySpec) -> tuple[Path, list[dict[str, Any]]]:
    """The space file of the family and the ``n_configs`` configs every task is trained on (the
    paper's 100 per dataset; Latin hypercube by default, not a grid)."""
    from transfertune.core.spaces import SearchSpace
    from transfertune.training.sampling import sample_configs

    space_file = resolve_path(spec.space)
    space = SearchSpace.from_yaml(space_file)
    return space_file, sample_configs(space, p.catalog.sampling, p.catalog.n_configs, p.catalog.config_seed)


def make_catalog(family: Family, p: SiameseParams) -> Any:
    """Train the family's model on every config x every task (the train stage's ``build_catalog``:
    resumable, a rerun trains only what is missing) and load the catalog."""
    from transfertune.core.catalog import ObservationCatalog
    from transfertune.training.build import build_catalog

    spec = family.spec
    space_file, configs = catalog_configs(p, spec)
    try:  # a setting neither the space nor `fixed` gives fails here, not once per trial
        from transfertune.training.models import build_model

        first = family.members[0].task
        build_model(spec.model, configs[0], first.input_shape, first.n_outputs, {}, dict(spec.fixed))
    except KeyError as exc:
        raise ConfigurationError(f"family {spec.name!r}: model {spec.model!r} needs {exc} from the space or from the family's fixed settings") from None
    out = Path(p.catalog.output_dir)
    if p.catalog.database:
        return _catalog_from_database(family, p, space_file, configs, out)
    report, _, _ = build_catalog(
        [m.task for m in family.members], configs, [0], train_settings(p, spec), out, space_file, store_dir=p.catalog.store_dir,
        pairs={"method": "leave_one_out"}, progress=p.progress, metadata={"metric": "val_acc", "built_by": "siamese", "family": spec.name},
    )
    if report.errors:
        first = report.errors[0]
        raise ConfigurationError(f"{len(report.errors)} catalog trial(s) raised errors; first: task={first['task']} config_id={first['config_id']}: {first['error']}")
    log.info("siamese catalog: %d trials (%d stored before) in %.1f s -> %s", report.total, report.skipped, report.wall_time_s, out)
    return ObservationCatalog.load(out, out / "space.yml", "val_acc")


def _catalog_from_database(family: Family, p: SiameseParams, space_file: Path, configs: list[dict[str, Any]], out: Path) -> Any:
    """The catalog read from ``siamese.catalog.database`` (e.g. the shipped database of the family,
    whose first tasks, LHS configs and epochs are the catalog's): the same trials, none trained.
    One line when the database does not hold them (then set ``database: null`` to train them)."""
    from transfertune.core.catalog import ObservationCatalog
    from transfertune.training.build import observations_from_database
    from transfertune.training.pairs import make_pairs
    from transfertune.training.sampling import configs_to_records
    from transfertune.training.store import write_catalog
    from transfertune.training.tasks import describe_tasks

    names = [m.name for m in family.members]
    epochs = int(train_settings(p, family.spec).epochs)
    try:
        observations, failures = observations_from_database(resolve_path(p.catalog.database), names, configs, [0], epochs)
    except ConfigurationError as exc:
        raise ConfigurationError(f"siamese.catalog.database: {exc} (database: null trains the catalog instead)") from None
    write_catalog(out, observations, failures, configs_to_records(configs), make_pairs(names, method="leave_one_out"), space_file,
                  describe_tasks([m.task for m in family.members]),
                  {"metric": "val_acc", "built_by": "siamese", "family": family.spec.name, "read_from": str(p.catalog.database)})
    log.info("siamese catalog: %d tasks x %d configs read from %s (nothing trained) -> %s", len(names), len(configs), p.catalog.database, out)
    return ObservationCatalog.load(out, out / "space.yml", "val_acc")


# ---------------------------------------------------------------------------------- target distances
@dataclass
class Targets:
    """Target distances: ``names`` (training datasets then held-out ones), ``matrix`` over them,
    the mappings they come from (``maps``, rows in ``names`` order, columns the catalog's configs)
    and the distance's ``kind``."""

    names: list[str]
    matrix: np.ndarray
    maps: np.ndarray | None = None
    kind: str = "l1"

    def block(self, rows: Sequence[str], cols: Sequence[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        return self.matrix[np.ix_([index[r] for r in rows], [index[c] for c in cols])]

    def mapping(self, names: Sequence[str]) -> np.ndarray:
        """``(len(names), C)`` the recorded mappings of ``names``."""
        index = {n: i for i, n in enumerate(self.names)}
        return self.maps[[index[n] for n in names]]

    def long(self) -> pd.DataFrame:
        i, j = np.triu_indices(len(self.names), k=1)
        return pd.DataFrame({"dataset_i": np.asarray(self.names)[i], "dataset_j": np.asarray(self.names)[j], "target_distance": self.matrix[i, j]})


def target_matrix(family: Family, catalog: Any, p: SiameseParams, kind: str | None = None) -> Targets:
    """Target distances (``kind``, default ``siamese.catalog.target_distance``) of the
    final-epoch mappings between every two datasets."""
    kind = kind or p.catalog.target_distance  # an unknown kind: one line from transform_mappings
    names = family.train + family.held_out
    maps = mappings(catalog, names)
    return Targets(names, target_distances(maps, names, p.catalog.min_shared_configs, kind=kind), maps, kind)


# ---------------------------------------------------------------------------------- meta-features
@dataclass
class MetaFeatureRun:
    """Algorithm 1 with one seed, and the distances it gives.

    Attributes:
        seed: the seed.
        result: the trained wing and its losses.
        learned: ``(n_held, n_train)`` learned distances held-out x training.
        learned_train: ``(n_train, n_train)`` learned distances among the training datasets.
    """

    seed: int
    result: SiameseResult
    learned: np.ndarray
    learned_train: np.ndarray


@dataclass
class MetaFeatures:
    """Every seed's run and the hand-crafted baseline's distances ``(n_held, n_train)``."""

    runs: list[MetaFeatureRun]
    handcrafted: np.ndarray
    handcrafted_train: np.ndarray

    def run(self, seed: int) -> MetaFeatureRun:
        return next(r for r in self.runs if r.seed == seed)


def handcrafted_distances(family: Family) -> tuple[np.ndarray, np.ndarray]:
    """Hand-crafted meta-feature distances held-out x training and training x training."""
    stats = {m.name: statistics(m.raw_train, m.labels) for m in family.members}
    scaler = HandcraftedMetaFeatures().fit(np.stack([stats[n] for n in family.train]))
    train = scaler.transform(np.stack([stats[n] for n in family.train]))
    held = scaler.transform(np.stack([stats[n] for n in family.held_out]))
    return pairwise_euclidean(held, train), pairwise_euclidean(train, train)


def learned_distances(model: Any, family: Family, tau: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learned distances held-out x training and training x training, every dataset embedded as
    the mean wing output over ``draws`` tau-samples."""
    m = embed_all(model, family.images, tau, draws, seed=seed)
    train = np.stack([m[n] for n in family.train])
    held = np.stack([m[n] for n in family.held_out])
    return pairwise_euclidean(held, train), pairwise_euclidean(train, train)


def learn_metafeatures(family: Family, targets: Targets, p: SiameseParams) -> MetaFeatures:
    """Algorithm 1 on the training datasets for each seed, then every dataset embedded."""
    net = p.network
    check_sizes(family.images, net.tau)  # every dataset, held-out ones too, before any training
    D = targets.block(family.train, family.train)
    runs = []
    # the thread count the catalog's trials train with, whether or not they trained in this process
    # (training sets it; a rerun that loads the catalog would otherwise train on torch's default and
    # get other networks from the same seed: floating-point sums differ with the thread count)
    with torch_threads(p.catalog.execution.torch_threads):
        for seed in net.seeds:
            settings = SiameseSettings(net.beta, net.tau, net.iterations, net.lr, net.channels, net.fc_units, net.hidden, net.draws, int(seed), net.device)
            result = train_siamese([family.images[n] for n in family.train], D, settings, family.train, progress=p.progress)
            runs.append(MetaFeatureRun(int(seed), result, *learned_distances(result.model, family, net.tau, net.draws, int(seed))))
            log.info("siamese: Algorithm 1 seed %d: final loss %.4f (first %.4f) in %.1f s", seed, result.losses[-20:].mean(), result.losses[:20].mean(), result.seconds)
    hand, hand_train = handcrafted_distances(family)
    return MetaFeatures(runs, hand, hand_train)


def spearman_table(family: Family, targets: Targets, features: MetaFeatures) -> pd.DataFrame:
    """Per seed: Spearman of learned and of hand-crafted distances with the target distances on
    the held-out datasets: the mean over held-out datasets of each one's ranking of the training
    datasets (``per_dataset``, the headline: what retrieval uses) and over all pairs pooled; the
    training datasets' own fit (``train_pairs``) for reference."""
    target = targets.block(family.held_out, family.train)
    target_train = targets.block(family.train, family.train)
    upper = np.triu_indices(len(family.train), k=1)
    rows = []
    for run in features.runs:
        for name, held, train in (("learned", run.learned, run.learned_train), ("handcrafted", features.handcrafted, features.handcrafted_train)):
            rows.append({"seed": run.seed, "meta_features": name, "per_dataset": float(rowwise_spearman(held, target).mean()),
                         "pooled": spearman(held, target), "train_pairs": spearman(train[upper], target_train[upper])})
    return pd.DataFrame(rows)


def spearman_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds per meta-feature kind, and the learned-minus-hand-crafted gap."""
    rows = []
    for kind, group in table.groupby("meta_features", sort=False):
        row = {"meta_features": kind, "seeds": len(group)}
        for column in ("per_dataset", "pooled", "train_pairs"):
            row[f"{column}_mean"] = float(group[column].mean())
            row[f"{column}_se"] = float(group[column].std(ddof=1) / np.sqrt(len(group))) if len(group) > 1 else float("nan")
        rows.append(row)
    gap = table.pivot(index="seed", columns="meta_features", values="per_dataset")
    diff = gap["learned"] - gap["handcrafted"]
    rows.append({"meta_features": "learned - handcrafted", "seeds": len(diff), "per_dataset_mean": float(diff.mean()),
                 "per_dataset_se": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")})
    return pd.DataFrame(rows)


def retrievals(family: Family, targets: Targets, features: MetaFeatures, k: int) -> pd.DataFrame:
    """The k nearest training datasets of each held-out dataset by learned (per seed),
    hand-crafted and target distances, with the target distance to each retrieved dataset."""
    target = targets.block(family.held_out, family.train)
    rows = []
    kinds = [(f"learned_seed{r.seed}", r.learned) for r in features.runs] + [("handcrafted", features.handcrafted), ("target", target)]
    for h, name in enumerate(family.held_out):
        for kind, distances in kinds:
            for rank, t in enumerate(nearest(distances[h], k)):
                rows.append({"dataset": name, "retrieval": kind, "rank": rank + 1, "neighbour": family.train[t], "target_distance": float(target[h, t])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- retrieval regret
def retrieval_regret_table(family: Family, targets: Targets, features: MetaFeatures, k: int) -> pd.DataFrame:
    """The retrieval regret of every dataset (issue 29): its k retrieved neighbours' best configs
    (each by its own catalog mapping) evaluated on its catalog mapping
    (:func:`~transfertune.methods.siamese.distances.retrieval_regret`).

    Two splits: ``held_out`` (each held-out dataset retrieves among the training datasets: the
    evaluation) and ``train_loo`` (each training dataset retrieves among the *other* training
    datasets: a check on data Algorithm 1 was fitted to, which chooses the target distance, never
    the held-out numbers). Retrievals: ``learned`` (one row per Algorithm-1 seed),
    ``handcrafted``, ``random`` (the exact expectation over uniformly drawn k-sets) and ``oracle``
    (the k nearest by the target distance itself).

    Returns: ``split, dataset, retrieval, seed (NaN unless learned), regret, neighbours``.
    """
    train = list(family.train)
    train_maps = targets.mapping(train)
    rows: list[dict[str, Any]] = []

    def add(split: str, name: str, retrieval: str, seed: Any, target_map: np.ndarray, candidates: Sequence[int], distances: np.ndarray | None) -> None:
        cand = np.asarray(candidates)
        if distances is None:
            regret, picked = random_retrieval_regret(target_map, train_maps[cand], k), []
        else:
            picked = cand[nearest(np.asarray(distances)[cand], k)]
            regret = retrieval_regret(target_map, train_maps[picked])
        rows.append({"split": split, "dataset": name, "retrieval": retrieval, "seed": seed, "regret": regret,
                     "neighbours": " ".join(train[i] for i in picked)})

    everyone = np.arange(len(train))
    held_target = targets.block(family.held_out, train)
    for h, name in enumerate(family.held_out):
        target_map = targets.mapping([name])[0]
        for run in features.runs:
            add("held_out", name, "learned", run.seed, target_map, everyone, run.learned[h])
        add("held_out", name, "handcrafted", np.nan, target_map, everyone, features.handcrafted[h])
        add("held_out", name, "random", np.nan, target_map, everyone, None)
        add("held_out", name, "oracle", np.nan, target_map, everyone, held_target[h])
    train_target = targets.block(train, train)
    for i, name in enumerate(train):
        others = np.delete(everyone, i)
        for run in features.runs:
            add("train_loo", name, "learned", run.seed, train_maps[i], others, run.learned_train[i])
        add("train_loo", name, "handcrafted", np.nan, train_maps[i], others, features.handcrafted_train[i])
        add("train_loo", name, "random", np.nan, train_maps[i], others, None)
        add("train_loo", name, "oracle", np.nan, train_maps[i], others, train_target[i])
    return pd.DataFrame(rows)


def _mean_se(values: np.ndarray) -> tuple[float, float, int]:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return float(values.mean()), (float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")), n


def retrieval_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per split: mean retrieval regret +- s.e. of each retrieval (learned over datasets x seeds),
    and the paired differences ``learned - handcrafted`` and ``learned - random``: one pair per
    dataset x seed (the dataset's hand-crafted or random regret repeated for every seed);
    negative: learned is ahead."""
    rows = []
    for split, part in table.groupby("split", sort=False):
        for retrieval, group in part.groupby("retrieval", sort=False):
            mean, se, n = _mean_se(group["regret"].to_numpy())
            rows.append({"split": split, "comparison": retrieval, "regret_mean": mean, "regret_se": se, "n": n})
        learned = part[part["retrieval"] == "learned"]
        for other in ("handcrafted", "random", "oracle"):
            ref = part[part["retrieval"] == other].set_index("dataset")["regret"]
            if learned.empty or ref.empty:
                continue
            diff = learned["regret"].to_numpy() - ref.loc[learned["dataset"]].to_numpy()
            mean, se, n = _mean_se(diff)
            rows.append({"split": split, "comparison": f"learned - {other}", "regret_mean": mean, "regret_se": se, "n": n})
    return pd.DataFrame(rows)


def retrieval_target(summary: pd.DataFrame, split: str = "held_out") -> dict[str, Any]:
    """Issue 29's target: learned retrieval regret below hand-crafted's and below random
    neighbours' (the paired mean differences negative), with the paired s.e. beside them."""
    part = summary[summary["split"] == split].set_index("comparison")
    out: dict[str, Any] = {"split": split}
    for other in ("handcrafted", "random"):
        key = f"learned - {other}"
        mean = float(part.loc[key, "regret_mean"]) if key in part.index else float("nan")
        out[f"learned_minus_{other}"] = mean
        out[f"learned_minus_{other}_se"] = float(part.loc[key, "regret_se"]) if key in part.index else float("nan")
    out["met"] = bool(out["learned_minus_handcrafted"] < 0 and out["learned_minus_random"] < 0)
    return out


# ---------------------------------------------------------------------------------- Algorithm 2, live
def transfer_history(catalog: Any, train: Sequence[str], task: str, budget: int, seed: int, epochs: int) -> Any:
    """The :class:`~transfertune.methods.base.TransferProblem` of the training datasets' curves."""
    from transfertune.methods.base import TransferProblem

    n = len(catalog.config_ids)
    return TransferProblem(
        config_ids=catalog.config_ids.copy(), configs=[catalog.configs[int(c)] for c in catalog.config_ids], X=catalog.encoded_configs.copy(),
        space=catalog.space, n_epochs=catalog.max_epoch, train_tasks=tuple(train), train_grids=catalog.grids(list(train), 0), test_task=task,
        trial_length=np.full(n, min(epochs, catalog.max_epoch)), budget=int(budget), seed=int(seed),
    )


def neighbours_for(variant: VariantParams, dataset: str, run: MetaFeatureRun, features: MetaFeatures, family: Family, k: int) -> list[str]:
    """The k nearest training datasets of ``dataset`` by the variant's retrieval (none: [])."""
    if variant.retrieval == "none":
        return []
    h = family.held_out.index(dataset)
    distances = run.learned[h] if variant.retrieval == "learned" else features.handcrafted[h]
    return [family.train[i] for i in nearest(distances, k)]


def live_bo(searcher: Any, task: Any, catalog: Any, train: Sequence[str], settings: Any, evaluations: int, seed: int, train_seed: int,
            store: Path) -> pd.DataFrame:
    """``evaluations`` trials of ``searcher`` on ``task``, each trained for real by a
    :class:`~transfertune.training.objective.TrainingObjective` (its store: ``store``).

    Returns one row per evaluation: ``evaluation, trial, config, val_acc`` (the trained model's
    final-epoch validation accuracy), ``error = 1 - val_acc``, ``best_error`` so far, ``seconds``
    since the start (method and training), ``status``.
    """
    from transfertune.methods.protocol import SearchProblem
    from transfertune.training.objective import TrainingObjective

    epochs = int(settings.epochs)
    budget = evaluations * epochs
    problem = SearchProblem(catalog.space, epochs, budget, int(seed), task.name, "val_acc", transfer_history(catalog, train, task.name, budget, seed, epochs), catalog)
    objective = TrainingObjective(task, settings, store, seed=train_seed, metric="val_acc", space=catalog.space)
    start = time.perf_counter()
    searcher.setup(problem)
    rows, best = [], np.inf
    for evaluation in range(1, evaluations + 1):
        trial = searcher.ask()
        progress = objective.evaluate(trial)
        for record in progress.records[trial.start_epoch : trial.epoch]:
            searcher.tell(trial, int(record["epoch"]), record)
        if progress.status == "failed":
            searcher.fail(trial, progress.reason)
        value = float(progress.records[-1]["val_acc"]) if progress.records else float("nan")
        error = 1.0 - value if np.isfinite(value) else 1.0
        best = min(best, error)
        rows.append({"evaluation": evaluation, "trial": trial.trial_id, "config": json.dumps(dict(trial.config), sort_keys=True), "val_acc": value,
                     "error": error, "best_error": best, "seconds": time.perf_counter() - start, "status": progress.status})
    return pd.DataFrame(rows)


def run_key(dataset: str, neighbours: Sequence[str], variant: VariantParams, b: BOParams, repetition: int, settings: Any) -> str:
    """A short hash of everything that decides a live run's trials, so a rerun with the same
    settings finds its store and resumes it, and a changed one (other neighbours after retraining the network, another seed)
    starts a fresh store instead of meeting trials of other configs."""
    import hashlib

    text = json.dumps({"dataset": dataset, "neighbours": list(neighbours), "variant": variant.model_dump(), "repetition": repetition,
                       "bo": b.model_dump(exclude={"variants", "datasets", "repetitions", "n_jobs", "store_dir", "method", "reference", "target_evaluations"}),
                       "training": settings.fingerprint()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def run_bo(family: Family, catalog: Any, features: MetaFeatures, p: SiameseParams) -> pd.DataFrame:
    """Every variant x repetition of Algorithm 2 and its baselines, live.

    Repetition r tunes the held-out dataset ``datasets[r mod n]`` (default: all held-out ones),
    with searcher seed ``bo.seed + r`` and the Siamese network of ``network.seeds[r mod S]``, so
    deterministic variants (neighbour starts) also vary across repetitions.
    """
    b = p.bo
    datasets = b.datasets or family.held_out
    unknown = [d for d in datasets if d not in family.held_out]
    if unknown:
        raise ConfigurationError(f"siamese.bo.datasets {unknown} are not held-out datasets; choose among {family.held_out}")
    if b.k > len(family.train):
        raise ConfigurationError(f"siamese.bo.k={b.k} exceeds the {len(family.train)} training datasets")
    settings = train_settings(p, family.spec)
    jobs = [(label, variant, r) for r in range(b.repetitions) for label, variant in b.variants.items()]
    with torch_threads(p.catalog.execution.torch_threads):  # as the trials train (see learn_metafeatures)
        return _run_bo_jobs(jobs, datasets, family, catalog, features, p, settings)


def _run_bo_jobs(jobs, datasets, family: Family, catalog: Any, features: MetaFeatures, p: SiameseParams, settings: Any) -> pd.DataFrame:
    """The jobs in turn, or in ``bo.n_jobs`` worker processes (-1: one per core). Every job seeds
    its own searcher, GP fits and trainings, so the rows do not depend on the order or the process."""
    import os

    from tqdm.auto import tqdm

    n_jobs = p.bo.n_jobs if p.bo.n_jobs > 0 else (os.cpu_count() or 1)
    n_jobs = min(n_jobs, len(jobs))
    bar = tqdm(total=len(jobs), desc=f"Algorithm 2 (live, {n_jobs} process{'es' if n_jobs > 1 else ''})", disable=not p.progress, mininterval=2.0)
    state = (datasets, family, catalog, features, p, settings)
    frames: dict[int, pd.DataFrame] = {}
    with bar:
        if n_jobs == 1:
            for i, job in enumerate(jobs):
                frames[i] = _bo_job(state, *job)
                bar.update()
        else:
            from transfertune.methods.runner import in_processes

            # the state is sent once a worker; a failed job or Ctrl-C drops the queued ones (the stores keep what finished)
            for i, frame in in_processes(_bo_worker_job, jobs, n_jobs, _bo_worker_init, (state, p.catalog.execution.torch_threads)):
                frames[i] = frame
                bar.update()
    return pd.concat([frames[i] for i in range(len(jobs))], ignore_index=True)


def _bo_job(state: tuple, label: str, variant: VariantParams, r: int) -> pd.DataFrame:
    """One live run: repetition ``r`` of variant ``label``."""
    from transfertune.methods.siamese.bo import SiameseBO

    datasets, family, catalog, features, p, settings = state
    b = p.bo
    dataset = datasets[r % len(datasets)]
    run = features.run(p.network.seeds[r % len(p.network.seeds)])
    neighbours = neighbours_for(variant, dataset, run, features, family, b.k)
    searcher = SiameseBO(neighbours=neighbours or None, prior_mean=variant.prior_mean, acquisition=variant.acquisition, ucb_beta=b.ucb_beta,
                         n_init=b.n_random_init, num_restarts=b.num_restarts, raw_samples=b.raw_samples, maxiter=b.maxiter)
    store = Path(b.store_dir) / label / f"rep{r}-{run_key(dataset, neighbours, variant, b, r, settings)}"
    frame = live_bo(searcher, family[dataset].task, catalog, family.train, settings, b.evaluations, b.seed + r, b.train_seed, store)
    frame.insert(0, "variant", label)
    frame.insert(1, "repetition", r)
    frame.insert(2, "dataset", dataset)
    frame.insert(3, "neighbours", " ".join(neighbours))
    return frame


_WORKER_STATE: tuple | None = None


def _bo_worker_init(state: tuple, threads: int | None) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _bo_worker_job(label: str, variant: VariantParams, r: int) -> pd.DataFrame:
    return _bo_job(_WORKER_STATE, label, variant, r)


def bo_curves(results: pd.DataFrame) -> pd.DataFrame:
    """Best-so-far validation error per variant and evaluation: mean, standard error, n."""
    g = results.groupby(["variant", "evaluation"], sort=False)["best_error"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["se"] = out["std"] / np.sqrt(out["count"])
    return out.rename(columns={"mean": "best_error_mean", "count": "n"})[["variant", "evaluation", "best_error_mean", "se", "n"]]


def paired_gaps(results: pd.DataFrame, reference: str = "random_ei") -> pd.DataFrame:
    """Per variant and evaluation: mean and standard error over repetitions of
    ``best_error(variant) - best_error(reference)`` in the same repetition (same dataset, same
    random initial configs), which removes the spread between datasets from the comparison.
    Negative: the variant is ahead."""
    wide = results.pivot_table(index=["repetition", "evaluation"], columns="variant", values="best_error")
    if reference not in wide:
        return pd.DataFrame(columns=["variant", "evaluation", "gap_mean", "gap_se", "n"])
    rows = []
    for variant in [v for v in dict.fromkeys(results["variant"]) if v != reference]:
        gap = (wide[variant] - wide[reference]).groupby(level="evaluation")
        stats = gap.agg(["mean", "std", "count"])
        for evaluation, row in stats.iterrows():
            rows.append({"variant": variant, "evaluation": int(evaluation), "gap_mean": float(row["mean"]),
                         "gap_se": float(row["std"] / np.sqrt(row["count"])) if row["count"] > 1 else float("nan"), "n": int(row["count"])})
    return pd.DataFrame(rows)


def bo_target(curves: pd.DataFrame, method: str = "siamese_prior_ei", reference: str = "random_ei", at: int = 20, within: int = 10) -> dict[str, Any]:
    """Does ``method``'s mean best-so-far error reach ``reference``'s at evaluation ``at`` within
    ``within`` evaluations? Returns both levels and the first evaluation that reaches it (None: never)."""
    ref = curves[(curves["variant"] == reference) & (curves["evaluation"] == at)]
    mine = curves[curves["variant"] == method].sort_values("evaluation")
    if ref.empty or mine.empty:
        return {"method": method, "reference": reference, "at": at, "within": within, "reference_error": float("nan"), "first_evaluation": None, "met": False}
    level = float(ref["best_error_mean"].iloc[0])
    reached = mine[mine["best_error_mean"] <= level + 1e-12]
    first = int(reached["evaluation"].iloc[0]) if len(reached) else None
    at_within = mine[mine["evaluation"] == within]["best_error_mean"]
    return {"method": method, "reference": reference, "at": at, "within": within, "reference_error": level,
            "error_at_within": float(at_within.iloc[0]) if len(at_within) else float("nan"),
            "first_evaluation": first, "met": first is not None and first <= within}


def seed_spread(family: Family, catalog: Any, p: SiameseParams, datasets: Sequence[str], top: int = 3, seeds: int = 5) -> pd.DataFrame:
    """How noisy one evaluation is near the optimum: the ``top`` best catalog configs of each
    dataset retrained with training seeds ``0..seeds-1``; per dataset the best catalog accuracy,
    how many catalog configs lie within two validation examples of it, and the mean over those
    configs of the standard deviation of the final validation accuracy across seeds."""
    from transfertune.training.trainer import train_trial

    settings = train_settings(p, family.spec)
    rows = []
    for name in datasets:
        task = family[name].task
        grid = catalog.grid(name)[:, -1]
        best = [catalog.configs[int(catalog.config_ids[i])] for i in np.argsort(-grid, kind="stable")[:top]]
        spreads = [np.std([train_trial(settings.model, c, task, settings.epochs, s, device=p.catalog.execution.device,
                                       fixed=dict(settings.fixed)).records[-1]["val_acc"] for s in range(seeds)], ddof=1) for c in best]
        rows.append({"dataset": name, "n_val": len(task.y_val), "best_catalog_val_acc": float(np.nanmax(grid)),
                     "catalog_configs_within_2_val_examples": int((grid >= np.nanmax(grid) - 2 / len(task.y_val)).sum()),
                     "seed_std_of_top_configs": float(np.mean(spreads))})
    return pd.DataFrame(rows)
