"""Synthetic tuning databases in the catalog layout: seeded, deterministic, no Kedro.

A generated folder holds ``observations.parquet`` (``task, config_id, seed, epoch, val_acc``),
``configs.jsonl``, ``train_test_pairs.json`` and ``space.yml`` (the layout of
``data/01_raw/hyperrec``), plus ``tasks.json`` (each task's family, role and drawn parameters)
and ``design.json`` (the :class:`SyntheticDesign` and the family centres), so it loads with
``ObservationCatalog.load(folder, folder / "space.yml", "val_acc")``.

**Search space** (:data:`SPACE`): ``optimizer`` in {adam, sgd}; ``lr`` in [1e-4, 1] (log);
``weight_decay`` in [1e-6, 1e-2] (log); ``batch_size`` in [16, 512] (integer, log); ``dropout``
in [0, 0.5]. ``z_c`` in [0, 1]^4 is config c's unit-cube encoding of the four numeric
hyperparameters (log scale where the space says so, exactly what every method sees) and ``o_c``
its optimizer (0 = adam, 1 = sgd). Configs are a Latin hypercube over the 5 coordinates (the
optimizer's coordinate u maps to ``floor(2 u)``).

**Families.** Family f has a centre ``m_f = 1/2 + delta * v_f`` with a sign vector
``v_f`` in {-1, +1}^4 and a preferred optimizer ``o_f``. With ``opposed=True`` (two families
only) ``v_B = -v_A`` and ``o_B = 1 - o_A``: with the default ``delta = 1/2`` the optima sit at
opposite corners of the cube. Otherwise each family takes its own corner (distinct ``v_f``) and
optimizer at random. The family landscape is the Gaussian bump

    g_f(z) = exp(-1/2 * sum_j ((z_j - m_fj) / l_j)^2),   l = ``lengthscales`` (lr, wd, bs, dropout).

**Members.** Task t of family f draws a shift ``Delta_t ~ N(0, shift^2 I_4)`` of the optimum, a
smooth perturbation ``eta_t`` (a random-Fourier-feature draw of a zero-mean GP with an RBF kernel
of length scale ``perturbation_lengthscale`` and standard deviation ``perturbation``:
``eta_t(z) = perturbation * sqrt(2/K) * sum_k cos(w_k . z + b_k)``, ``w_k ~ N(0, I / l_eta^2)``,
``b_k ~ U(0, 2 pi)``, K = 64), a base ``a_t ~ U(base)`` and a height ``h_t ~ U(height)``:

    L_t(c) = S(g_f(z_c - Delta_t)) - gamma * [o_c != o_f] + eta_t(z_c)
    A_t(c) = a_t + h_t * L_t(c)                       (the accuracy config c converges to)
    S(g)   = (1 - exp(-kappa g)) / (1 - exp(-kappa)),  kappa = ``saturation``

S maps [0, 1] onto [0, 1] and is concave: good configs crowd under a ceiling, as in real
databases, and ``eta_t`` then orders them differently on each member. Members of a family are
shifted and scaled copies of its landscape (what OptiLand's distance ignores) plus a small
shift of the optimum and a perturbation (what it does not).

**Curves.** For curve seed s (the ``seed`` column, like HyperRec's two repetitions) and epoch
e = 1..E:

    y_tcs(e) = clip(y0_t + (A_t(c) + run * zeta_tcs - y0_t) * (1 - (1 + e / beta_tc)^(-alpha))
                    + noise * eps_tcse, 0, 1)
    beta_tc  = beta0 * r_t * exp(speed_spread * xi_c - quality_speed * (L_t(c) - 1/2))

with ``y0_t ~ U(chance)`` the untrained accuracy, ``r_t ~ logU(task_speed)`` the task's pace,
``xi_c ~ N(0, 1)`` the config's own pace (shared by every task), and ``zeta, eps ~ N(0, 1)`` the
run-to-run and epoch-to-epoch noise. Configs that are good on a task rise faster there
(``quality_speed``), but each config's own pace varies too, so early epochs rank configs only
roughly: fast mediocre configs lead early and are overtaken (curves cross). The defaults are
calibrated on HyperRec's top-5 accuracy; ``benchmarks/identifiability.py --describe`` prints the
statistics side by side (docs/experiments/identifiability.md).

**Pairs.** Tasks are named ``task01``, ``task02``, ... in a random order (the name says nothing
about family or role; ``tasks.json`` does). Each family has ``train_members`` tasks that only
train and ``test_members`` tasks that only test. Pair k tests on the next unused test member of family ``k mod F`` and trains on
``train_per_family`` members of every family's training pool, drawn without replacement from
the design's seed. A test task is never a training task of any pair.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import qmc

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError

METRIC = "val_acc"
SPACE_FILE = "space.yml"
NUMERIC = ("lr", "weight_decay", "batch_size", "dropout")
OPTIMIZERS = ("adam", "sgd")
SPACE: dict[str, Any] = {
    "name": "synthetic",
    "hyperparameters": [
        {"name": "optimizer", "type": "categorical", "choices": list(OPTIMIZERS)},
        {"name": "lr", "type": "float", "lower": 1.0e-4, "upper": 1.0, "log": True},
        {"name": "weight_decay", "type": "float", "lower": 1.0e-6, "upper": 1.0e-2, "log": True},
        {"name": "batch_size", "type": "integer", "lower": 16, "upper": 512, "log": True},
        {"name": "dropout", "type": "float", "lower": 0.0, "upper": 0.5},
    ],
}
_FEATURES = 64  # random Fourier features per member perturbation


@dataclass(frozen=True)
class SyntheticDesign:
    """Every setting of a generated database (see the module docstring for the formulas).

    Sizes: ``families`` x (``train_members`` + ``test_members``) tasks, ``n_configs`` configs,
    ``n_epochs`` epochs, ``n_seeds`` curve seeds, ``n_pairs`` pairs of
    ``families * train_per_family`` training tasks each.
    """

    families: int = 2
    opposed: bool = True
    train_members: int = 4
    test_members: int = 5
    n_pairs: int = 10
    train_per_family: int = 2
    n_configs: int = 100
    n_epochs: int = 75
    n_seeds: int = 2
    seed: int = 0
    # landscapes
    delta: float = 0.5
    lengthscales: tuple[float, float, float, float] = (0.35, 0.45, 0.9, 1.5)
    gamma: float = 0.1
    saturation: float = 8.0
    shift: float = 0.05
    perturbation: float = 0.03
    perturbation_lengthscale: float = 0.3
    base: tuple[float, float] = (0.15, 0.3)
    height: tuple[float, float] = (0.45, 0.6)
    # learning curves
    chance: tuple[float, float] = (0.01, 0.1)
    alpha: float = 2.0
    beta0: float = 6.0
    task_speed: tuple[float, float] = (0.7, 1.4)
    speed_spread: float = 1.0
    quality_speed: float = 1.0
    run: float = 0.005
    noise: float = 0.006

    def check(self) -> None:
        """Raise :class:`ConfigurationError` (one line) on settings that cannot make a database."""
        positive = {"families": self.families, "train_members": self.train_members, "test_members": self.test_members,
                    "n_pairs": self.n_pairs, "train_per_family": self.train_per_family, "n_configs": self.n_configs,
                    "n_epochs": self.n_epochs, "n_seeds": self.n_seeds}
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise ConfigurationError(f"synthetic design: {name} must be a positive integer, got {value!r}")
        if self.opposed and self.families != 2:
            raise ConfigurationError(f"synthetic design: opposed families need families = 2, got {self.families}")
        if self.families > 2 ** len(NUMERIC):
            raise ConfigurationError(f"synthetic design: at most {2 ** len(NUMERIC)} families (one per corner), got {self.families}")
        if self.train_per_family > self.train_members:
            raise ConfigurationError(
                f"synthetic design: train_per_family ({self.train_per_family}) exceeds train_members ({self.train_members})"
            )
        if self.n_pairs > self.families * self.test_members:
            raise ConfigurationError(
                f"synthetic design: {self.n_pairs} pairs need {self.n_pairs} test tasks, but families x test_members "
                f"= {self.families * self.test_members}"
            )
        if len(self.lengthscales) != len(NUMERIC) or min(self.lengthscales) <= 0:
            raise ConfigurationError(f"synthetic design: lengthscales must be {len(NUMERIC)} positive numbers, got {self.lengthscales}")
        if not 0 <= self.delta <= 0.5:
            raise ConfigurationError(f"synthetic design: delta must lie in [0, 0.5] (centres inside the cube), got {self.delta}")


@dataclass
class SyntheticDatabase:
    """A generated database in memory; :meth:`write` puts it in the catalog layout.

    Attributes:
        observations: ``task, config_id, seed, epoch, val_acc``, one row per cell.
        configs: one record per config (``config_id`` + the space's names).
        pairs: ``[{"train": [...], "test": ...}]``.
        tasks: one record per task: name, family, role, drawn parameters.
        design: the settings it was generated from.
        centres: ``(families, 4)`` family centres ``m_f``; ``preferred``: ``o_f`` per family.
        Z: ``(n_configs, 4)`` the configs' numeric unit coordinates ``z_c`` (lr, wd, bs, dropout).
        truth: task -> ``{"asymptote": A_t (n_configs,), "beta": beta_t (n_configs,)}``, the
            noise-free quantities behind the curves.
    """

    observations: pd.DataFrame
    configs: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    design: SyntheticDesign
    centres: np.ndarray
    preferred: list[int]
    Z: np.ndarray = field(repr=False)
    truth: dict[str, dict[str, np.ndarray]] = field(repr=False)

    def write(self, folder: str | Path) -> Path:
        """Write the catalog folder (created; each file written atomically). Returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic(folder / "observations.parquet", lambda tmp: self.observations.to_parquet(tmp, index=False))
        lines = "".join(json.dumps(record) + "\n" for record in self.configs)
        _atomic(folder / "configs.jsonl", lambda tmp: tmp.write_text(lines))
        _atomic(folder / "train_test_pairs.json", lambda tmp: tmp.write_text(json.dumps({"pairs": self.pairs}, indent=1)))
        _atomic(folder / SPACE_FILE, lambda tmp: tmp.write_text(yaml.safe_dump(SPACE, sort_keys=False)))
        _atomic(folder / "tasks.json", lambda tmp: tmp.write_text(json.dumps(self.tasks, indent=1)))
        meta = {"design": asdict(self.design), "centres": self.centres.tolist(),
                "preferred_optimizer": [OPTIMIZERS[o] for o in self.preferred], "metric": METRIC}
        _atomic(folder / "design.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
        return folder


def synthetic_space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE, source="synthetic")


def family_landscape(Z: np.ndarray, centre: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
    """``g_f(z) = exp(-1/2 sum_j ((z_j - m_j) / l_j)^2)``; ``Z`` is ``(n, 4)``, returns ``(n,)``."""
    scaled = (np.asarray(Z, dtype=np.float64) - np.asarray(centre)) / np.asarray(lengthscales)
    return np.exp(-0.5 * np.sum(scaled**2, axis=-1))


def saturate(quality: np.ndarray, kappa: float) -> np.ndarray:
    """``S(q) = (1 - exp(-kappa q)) / (1 - exp(-kappa))`` (``S(q) = q`` at ``kappa = 0``): S(0) = 0, S(1) = 1,
    concave for ``kappa > 0``, so good configs crowd below an accuracy ceiling."""
    quality = np.asarray(quality, dtype=np.float64)
    if kappa == 0:
        return quality
    return np.expm1(-kappa * quality) / np.expm1(-kappa)


def curve_fraction(epochs: np.ndarray, beta: np.ndarray, alpha: float) -> np.ndarray:
    """``1 - (1 + e / beta)^(-alpha)``: the share of the way from ``y0`` to ``A`` after e epochs.

    ``epochs`` ``(E,)`` and ``beta`` ``(n,)`` broadcast to ``(n, E)``.
    """
    return 1.0 - (1.0 + np.asarray(epochs, dtype=np.float64)[None, :] / np.asarray(beta)[:, None]) ** (-alpha)


def generate(design: SyntheticDesign = SyntheticDesign()) -> SyntheticDatabase:
    """Draw a database from ``design`` (same design, same database, bit for bit)."""
    design.check()
    streams = np.random.SeedSequence(design.seed).spawn(5)
    space = synthetic_space()
    configs, Z, opt = _configs(space, design.n_configs, np.random.default_rng(streams[0]))
    family_rng = np.random.default_rng(streams[1])
    signs, preferred = _family_corners(design, family_rng)
    centres = 0.5 + design.delta * signs
    lengthscales = np.asarray(design.lengthscales, dtype=np.float64)
    speed_rng = np.random.default_rng(streams[2])
    config_pace = speed_rng.standard_normal(design.n_configs)  # xi_c

    task_streams = np.random.default_rng(streams[3])
    epochs = np.arange(1, design.n_epochs + 1)
    tasks: list[dict[str, Any]] = []
    truth: dict[str, dict[str, np.ndarray]] = {}
    blocks: list[pd.DataFrame] = []
    members = design.train_members + design.test_members
    # neutral names in a random order, so a task's name says nothing about its family or role
    labels = iter(np.random.default_rng(streams[4]).permutation(design.families * members) + 1)
    for f in range(design.families):
        for k in range(members):
            name = f"task{next(labels):02d}"
            rng = np.random.default_rng(task_streams.integers(2**63))
            shift = design.shift * rng.standard_normal(len(NUMERIC))
            W = rng.standard_normal((_FEATURES, len(NUMERIC))) / design.perturbation_lengthscale
            phase = rng.uniform(0.0, 2 * np.pi, _FEATURES)
            eta = design.perturbation * np.sqrt(2.0 / _FEATURES) * np.cos(Z @ W.T + phase).sum(axis=1)
            base, height = rng.uniform(*design.base), rng.uniform(*design.height)
            landscape = family_landscape(Z - shift, centres[f], lengthscales)
            level = saturate(landscape, design.saturation) - design.gamma * (opt != preferred[f]) + eta
            asymptote = base + height * level
            chance = rng.uniform(*design.chance)
            pace = float(np.exp(rng.uniform(np.log(design.task_speed[0]), np.log(design.task_speed[1]))))
            beta = design.beta0 * pace * np.exp(design.speed_spread * config_pace - design.quality_speed * (level - 0.5))
            fraction = curve_fraction(epochs, beta, design.alpha)  # (n_configs, E)
            for s in range(design.n_seeds):
                final = asymptote + design.run * rng.standard_normal(design.n_configs)
                values = chance + (final - chance)[:, None] * fraction + design.noise * rng.standard_normal(fraction.shape)
                blocks.append(_block(name, s, np.clip(values, 0.0, 1.0)))
            truth[name] = {"asymptote": asymptote, "beta": beta}
            tasks.append({
                "task": name, "family": _family_name(f), "role": "train" if k < design.train_members else "test",
                "base": base, "height": height, "shift": shift.tolist(), "chance": chance, "pace": pace,
            })
    observations = pd.concat(blocks, ignore_index=True)
    pairs = _pairs(design, tasks, np.random.default_rng(task_streams.integers(2**63)))
    return SyntheticDatabase(observations, configs, pairs, tasks, design, centres, preferred, Z, truth)


def generate_database(folder: str | Path, design: SyntheticDesign = SyntheticDesign()) -> Path:
    """:func:`generate` then :meth:`SyntheticDatabase.write` into ``folder``; returns the folder."""
    return generate(design).write(folder)


# ---------------------------------------------------------------------- helpers
def _family_name(f: int) -> str:
    return chr(ord("A") + f)


def _configs(space: SearchSpace, n: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """A Latin hypercube of ``n`` configs: records, ``Z`` ``(n, 4)`` and optimizer codes ``(n,)``."""
    U = qmc.LatinHypercube(d=1 + len(NUMERIC), rng=rng).random(n)
    opt = np.minimum((U[:, 0] * len(OPTIMIZERS)).astype(int), len(OPTIMIZERS) - 1)
    records = []
    for i, row in enumerate(U):
        record: dict[str, Any] = {"config_id": i, "optimizer": OPTIMIZERS[opt[i]]}
        for name, u in zip(NUMERIC, row[1:]):
            record[name] = space[name].from_unit(u)
        records.append(record)
    # encode after rounding (batch_size is an integer), so Z is what the methods see
    Z = np.array([[space[name].to_unit(r[name]) for name in NUMERIC] for r in records])
    return records, Z, opt


def _family_corners(design: SyntheticDesign, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Sign vectors ``v_f`` ``(families, 4)`` and preferred optimizers ``o_f``."""
    d = len(NUMERIC)
    if design.opposed:
        v = rng.choice([-1.0, 1.0], size=d)
        o = int(rng.integers(len(OPTIMIZERS)))
        return np.stack([v, -v]), [o, 1 - o]
    corners = rng.choice(2**d, size=design.families, replace=False)
    v = np.array([[1.0 if (c >> j) & 1 else -1.0 for j in range(d)] for c in corners])
    return v, [int(o) for o in rng.integers(len(OPTIMIZERS), size=design.families)]


def _block(task: str, seed: int, values: np.ndarray) -> pd.DataFrame:
    n_configs, n_epochs = values.shape
    return pd.DataFrame({
        "task": task,
        "config_id": np.repeat(np.arange(n_configs, dtype=np.int64), n_epochs),
        "seed": np.int64(seed),
        "epoch": np.tile(np.arange(1, n_epochs + 1, dtype=np.int64), n_configs),
        METRIC: values.reshape(-1),
    })


def _pairs(design: SyntheticDesign, tasks: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    pool = {f: [t["task"] for t in tasks if t["family"] == _family_name(f) and t["role"] == "train"] for f in range(design.families)}
    tests = {f: [t["task"] for t in tasks if t["family"] == _family_name(f) and t["role"] == "test"] for f in range(design.families)}
    pairs = []
    for k in range(design.n_pairs):
        f = k % design.families
        train = [str(t) for g in range(design.families) for t in rng.choice(pool[g], size=design.train_per_family, replace=False)]
        pairs.append({"train": train, "test": tests[f][k // design.families]})
    return pairs


def _atomic(path: Path, write) -> None:
    """``write(tmp)`` to a temporary name in the same folder, then ``os.replace`` onto ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
