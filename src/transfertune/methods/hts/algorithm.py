"""Algorithm 1 of seed 001: Hyperparameter Transfer using Surrogates (HTS).

Inputs: Omega_S, n source configs with their errors f_S; m, the Latin hypercube samples that
start Omega_T; r, the transfer step; t_max, the evaluations allowed on the target.

    1  S_S <- RBF fitted on Omega_S
    2  Omega_T <- m Latin hypercube samples of X, evaluated on the target;  t <- m
    3  while t < t_max:
    4-5    S_T <- RBF fitted on Omega_T
    6      M <- (A sorted by S_S, B sorted by S_T), A, B: 10,000 Latin hypercube samples each
    7      g <- a network trained on M until it converges
    8      Omega_T <- Omega_T U {(g(x_i), f_T(g(x_i)))}, x_i the r best configs of Omega_S
                  (ours by default: the r best points of array A under a bounded S_S, see below)
    9      t <- t + r
    11 return Omega_T, g

Errors are lower-is-better (the paper's validation error); a caller maximising a metric passes
its negative. :class:`HTS` holds the state of one run and is driven step by step (the trial
protocol asks one config at a time, :mod:`transfertune.methods.hts.searchers`); :func:`hts` runs
the loop above with a function that evaluates a config.

Two departures from the printed algorithm, each an option with the paper's reading one flag away
(docs/methods/hts.md, "Where we differ"):
- ``map_from="surrogate"``: step 8 maps the r points of A with the lowest S_S (S_S's best region)
  instead of the r best observed configs (``"source"``). The observed best configs are points
  where S_S interpolates its own data; g is trained on A's ranks, and the observed best can sit
  far from the top of A's ranking (on the digits pair at S_S's 16th percentile), so g sends them
  to a middling level set of S_T;
- ``bound_source=True``: S_S's values on A are clipped to the range of the observed errors
  ``[min f_S, max f_S]``: a cubic RBF extrapolates past its data (val_acc 1.41 on digits), and
  an unbounded S_S ranks those impossible corners first. Clipped, every point that S_S puts at
  or below the best observed error ties at rank 1 (ties keep A's random sample order), so g
  learns to send that whole region to the centroid of S_T's equally sized best level set;
- ``g_epochs``: g trains for a fixed number of epochs (:func:`train_mapping`); None: the
  early-stopping rule.

Choices where the paper is silent (docs/methods/hts.md):
- "Latin hypercube samples of X" are drawn in the unit cube and snapped to the configs they
  decode to; the m initial samples are the most spread of 100 designs (pySOT's criterion);
- a mapped config closer than pySOT's ``dtol`` = 1e-3 sqrt(dim) to one already in Omega_T (g
  maps the same r source configs every round) is passed over for the next best source config,
  so Omega_T never holds a point twice (an RBF through a repeated point is singular);
- the two arrays of 10,000 samples are drawn once per run; A's order by S_S is fixed, B is
  re-sorted by each new S_T.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.hts.mapping import MappingFit, TransferNet, rank_pairs, train_mapping
from transfertune.methods.hts.surrogate import fit_rbf, latin_hypercube, maximin_latin_hypercube, predict, snap, tail_columns

HIDDEN_PER_HYPERPARAMETER = 20  # appendix A.3: one hidden layer of 20k sigmoid units
MAP_FROM = ("surrogate", "source")
DEFAULT_G_EPOCHS = 200  # docs/experiments/hts.md: the rule on a validation pair asked for 400; 200 is what this machine affords
PAPER_LITERAL = {"map_from": "source", "bound_source": False, "g_epochs": None}  # Algorithm 1 as printed


def initial_size_range(space: SearchSpace) -> tuple[int, int]:
    """The m HTS accepts on ``space``: ``[max(k, d + 1), 2k]`` (k hyperparameters; d + 1 points fit the RBF)."""
    k, d = len(space.names), len(tail_columns(space))
    return max(k, d + 1), 2 * k


def check_initial_size(space: SearchSpace, m: int | None) -> int:
    """``m`` (None: the smallest allowed) or a one-line error: m outside [k, 2k] (footnote 1), or
    too few points for S_T."""
    k, d = len(space.names), len(tail_columns(space))
    low, high = initial_size_range(space)
    if m is None:
        if low > high:
            raise ConfigurationError(f"HTS on space '{space.name}': no m in [k, 2k] = [{k}, {2 * k}] gives S_T the d + 1 = {d + 1} points it needs")
        return low
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)):
        raise ConfigurationError(f"HTS m must be an integer, got {m!r}")
    if not k <= m <= 2 * k:
        raise ConfigurationError(
            f"HTS m = {m} is outside [k, 2k] = [{k}, {2 * k}] for the k = {k} hyperparameters of space '{space.name}' (seed 001, footnote 1)"
        )
    if m < d + 1:
        raise ConfigurationError(
            f"HTS m = {m}: S_T is fitted on the m samples and pySOT's cubic RBF with a linear tail in d = {d} coordinates "
            f"needs d + 1 = {d + 1}; use m in [{low}, {high}]"
        )
    return int(m)


def space_differences(source: SearchSpace, target: SearchSpace) -> list[str]:
    """What differs between two spaces' hyperparameters (names, order, types, ranges, choices)."""
    if source.names != target.names:
        missing, extra = sorted(set(source.names) - set(target.names)), sorted(set(target.names) - set(source.names))
        parts = [f"source only {missing}" if missing else "", f"target only {extra}" if extra else ""]
        return [p for p in parts if p] or [f"order {source.names} vs {target.names}"]
    out = []
    for a, b in zip(source.hyperparameters, target.hyperparameters):
        if a != b:
            out.append(f"'{a.name}': {_describe(a)} vs {_describe(b)}")
    return out


def _describe(hp: Any) -> str:
    if hp.is_categorical:
        return f"{hp.type} {list(hp.choices)}"
    return f"{hp.type} [{hp.lower:g}, {hp.upper:g}]{' log' if hp.log else ''}"


def check_same_space(source: SearchSpace, target: SearchSpace) -> None:
    """One line when the target's hyperparameters are not the source's (g maps one unit cube)."""
    differences = space_differences(source, target)
    if differences:
        raise ConfigurationError(
            f"HTS maps configs between one space: the target space '{target.name}' differs from the source's '{source.name}' "
            f"({'; '.join(differences)})"
        )


@dataclass
class Observation:
    """One member of Omega_T: a config and its error on the target."""

    config: dict[str, Any]
    error: float
    kind: str  # "lhs" (step 2), "mapped" (step 8), "random" (A.1's random source samples), "fill"


@dataclass
class HTSResult:
    """What :func:`hts` returns: Omega_T in evaluation order and the latest g."""

    omega_t: list[Observation]
    g: TransferNet | None
    fits: list[MappingFit] = field(default_factory=list)


class HTS:
    """The state of one HTS run (Algorithm 1), driven step by step.

    ::

        run = HTS(space, source_configs, source_errors, seed=0)
        for config in run.initial_design():          # step 2
            run.observe(config, f_T(config), "lhs")
        while budget left:
            run.fit_transfer()                       # steps 4-7
            for config, kind in run.propose():       # step 8
                run.observe(config, f_T(config), kind)

    Args:
        space: the search space of the source and the target.
        source_configs: Omega_S's n configs.
        source_errors: ``(n,)`` their errors on the source (lower is better).
        m: Latin hypercube samples that start Omega_T, in [k, 2k] (None: the smallest that fits S_T).
        r: source configs mapped per round: the r best of Omega_S (the paper's 5).
        n_random: random configs of Omega_S mapped with the r best each round (A.1's variation; 0: the paper's Algorithm 1).
        n_rank_samples: Latin hypercube samples in each of the two arrays that form M (the paper's 10,000).
        seed: every draw (designs, arrays, random source configs, g's initial weights).
        map_from: ``"surrogate"``: step 8 maps the r points of A with the lowest (bounded) S_S;
            ``"source"``: the r observed configs of Omega_S with the lowest errors (the paper as printed).
        bound_source: clip S_S to ``[min f_S, max f_S]`` (False: the raw interpolant, the paper).
        g_epochs: epochs g trains each round (None: until the early-stopping rule ends it).
    """

    def __init__(
        self,
        space: SearchSpace,
        source_configs: Sequence[Mapping[str, Any]],
        source_errors: Sequence[float] | np.ndarray,
        m: int | None = None,
        r: int = 5,
        n_random: int = 0,
        n_rank_samples: int = 10_000,
        seed: int = 0,
        map_from: str = "surrogate",
        bound_source: bool = True,
        g_epochs: int | None = DEFAULT_G_EPOCHS,
    ) -> None:
        if map_from not in MAP_FROM:
            raise ConfigurationError(f"HTS map_from must be one of {list(MAP_FROM)}, got {map_from!r}")
        if not isinstance(bound_source, bool):
            raise ConfigurationError(f"HTS bound_source must be true or false, got {bound_source!r}")
        if g_epochs is not None and (isinstance(g_epochs, bool) or not isinstance(g_epochs, (int, np.integer)) or g_epochs < 1):
            raise ConfigurationError(f"HTS g_epochs must be a positive integer or null, got {g_epochs!r}")
        self.map_from, self.bound_source, self.g_epochs = map_from, bound_source, (None if g_epochs is None else int(g_epochs))
        for name, value, low in (("r", r, 1), ("n_random", n_random, 0), ("n_rank_samples", n_rank_samples, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigurationError(f"HTS {name} must be an integer >= {low}, got {value!r}")
        self.space = space
        self.m = check_initial_size(space, m)
        self.r, self.n_random = int(r), int(n_random)
        self.hidden = HIDDEN_PER_HYPERPARAMETER * len(space.names)
        self.dtol = 1e-3 * np.sqrt(space.dim)  # pySOT's SRBF/DYCORS minimum distance to an evaluated point
        self.rng = np.random.default_rng(seed)
        self.source_configs = [dict(c) for c in source_configs]
        self.source_errors = np.asarray(source_errors, dtype=np.float64).ravel()
        if len(self.source_configs) != len(self.source_errors):
            raise ValueError(f"{len(self.source_configs)} source configs but {len(self.source_errors)} errors")
        self.source_X = space.encode(self.source_configs)
        self.source_surrogate = fit_rbf(space, self.source_X, self.source_errors, "HTS source observations (Omega_S)")
        self.source_order = np.argsort(self.source_errors, kind="stable")  # best first
        self.A = latin_hypercube(space, n_rank_samples, self.rng)
        self.A_values = self.source_values(self.A)
        self.A_order = np.argsort(self.A_values, kind="stable")  # S_S's best region first
        self.B = latin_hypercube(space, n_rank_samples, self.rng)
        self.omega_t: list[Observation] = []
        self.g: TransferNet | None = None
        self.fits: list[MappingFit] = []
        self.target_surrogate = None
        self.round_inputs: list[np.ndarray] = []  # per round: the encoded points g mapped to the round's "mapped" configs

    def source_values(self, X: np.ndarray) -> np.ndarray:
        """S_S on rows ``X`` ``(n, dim)``, ``(n,)``; clipped to the observed errors' range when ``bound_source``."""
        values = predict(self.source_surrogate, X)
        if self.bound_source:
            values = np.clip(values, self.source_errors.min(), self.source_errors.max())
        return values

    # ------------------------------------------------------------------ steps
    def initial_design(self) -> list[dict[str, Any]]:
        """Step 2: the m Latin hypercube configs to evaluate first."""
        return self.space.decode(maximin_latin_hypercube(self.space, self.m, self.rng))

    def observe(self, config: Mapping[str, Any], error: float, kind: str) -> None:
        """Add ``(config, f_T(config))`` to Omega_T."""
        if not np.isfinite(error):
            raise ValueError(f"error {error} is not finite")
        self.omega_t.append(Observation(dict(config), float(error), kind))

    def target_observations(self) -> tuple[np.ndarray, np.ndarray]:
        """Omega_T as ``(X, f)``: ``(t, dim)`` encodings and ``(t,)`` errors."""
        X = self.space.encode([o.config for o in self.omega_t])
        return X, np.array([o.error for o in self.omega_t], dtype=np.float64)

    def fit_transfer(self) -> MappingFit:
        """Steps 4-7: S_T on Omega_T, the rank-paired training set M, g trained on it."""
        X, f = self.target_observations()
        self.target_surrogate = fit_rbf(self.space, X, f, "HTS target observations (Omega_T)")
        inputs, targets = rank_pairs(self.A, self.A_values, self.B, predict(self.target_surrogate, self.B))
        fit = _trained_mapping(inputs, targets, self.hidden, int(self.rng.integers(2**31 - 1)), self.g_epochs)
        self.g = fit.net
        self.fits.append(fit)
        return fit

    def map(self, configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """g applied to configs (through their encodings), as configs of the space."""
        if self.g is None:
            raise RuntimeError("g is not trained yet: call fit_transfer() first")
        return self.space.decode(self.g.map(self.space.encode(configs)))

    def propose(self) -> list[tuple[dict[str, Any], str]]:
        """Step 8: g of the r best points (of A under S_S, or of Omega_S: ``map_from``), plus
        ``n_random`` random configs of Omega_S, as ``(config, kind)``; a mapped config within
        ``dtol`` of Omega_T or of one already proposed is passed over for the next best point
        (then for a random sample of the space)."""
        if self.g is None:
            raise RuntimeError("g is not trained yet: call fit_transfer() first")
        taken, _ = self.target_observations()
        taken = list(taken)
        chosen: list[tuple[dict[str, Any], str]] = []

        def take(points: np.ndarray, kind: str, wanted: int) -> list[int]:
            used: list[int] = []
            if wanted <= 0 or len(points) == 0:
                return used
            mapped = snap(self.space, self.g.map(points))
            for index, x in enumerate(mapped):
                if len(used) == wanted:
                    break
                if not taken or np.min(np.linalg.norm(np.asarray(taken) - x, axis=1)) > self.dtol:
                    taken.append(x)
                    chosen.append((self.space.decode(x)[0], kind))
                    used.append(index)
            return used

        if self.map_from == "surrogate":
            candidates = self.A[self.A_order]
            used = take(candidates, "mapped", self.r)
            rest = np.arange(len(self.source_configs))
        else:
            candidates = self.source_X[self.source_order]
            used = take(candidates, "mapped", self.r)
            rest = np.array([i for i in range(len(self.source_configs)) if i not in set(self.source_order[used])], dtype=np.int64)
        self.round_inputs.append(candidates[used])
        take(self.source_X[self.rng.permutation(rest)], "random", self.n_random)
        while len(chosen) < self.r + self.n_random:  # every source config maps onto Omega_T: explore instead
            x = latin_hypercube(self.space, 1, self.rng)[0]
            if np.min(np.linalg.norm(np.asarray(taken) - x, axis=1)) > self.dtol:
                taken.append(x)
                chosen.append((self.space.decode(x)[0], "fill"))
        return chosen


_FITS: dict[tuple, MappingFit] = {}
_FITS_KEPT = 64


def _trained_mapping(inputs: np.ndarray, targets: np.ndarray, hidden: int, seed: int, epochs: int | None) -> MappingFit:
    """:func:`train_mapping`, remembered for the last ``_FITS_KEPT`` training sets: g is a pure
    function of M, the width, the seed and the epochs, and runs that share their start (``hts``
    and ``hts`` with ``hord_after`` under one seed) would otherwise train the same g again (at a
    fixed 200 epochs, seconds per round)."""
    key = (hashlib.sha1(np.ascontiguousarray(inputs).tobytes() + np.ascontiguousarray(targets).tobytes()).hexdigest(), hidden, seed, epochs)
    if key not in _FITS:
        if len(_FITS) >= _FITS_KEPT:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = train_mapping(inputs, targets, hidden, seed=seed, epochs=epochs)
    return _FITS[key]


def hts(
    space: SearchSpace,
    source_configs: Sequence[Mapping[str, Any]],
    source_errors: Sequence[float] | np.ndarray,
    evaluate: Callable[[dict[str, Any]], float],
    t_max: int,
    **options: Any,
) -> HTSResult:
    """Algorithm 1 with ``evaluate(config) -> f_T(config)`` (lower is better) for ``t_max``
    evaluations; ``options`` are :class:`HTS`'s (m, r, n_random, n_rank_samples, seed).
    Returns Omega_T and the latest g (None when t_max <= m: no round was reached)."""
    run = HTS(space, source_configs, source_errors, **options)
    for config in run.initial_design()[: int(t_max)]:
        run.observe(config, evaluate(config), "lhs")
    while len(run.omega_t) < int(t_max):
        run.fit_transfer()
        for config, kind in run.propose()[: int(t_max) - len(run.omega_t)]:
            run.observe(config, evaluate(config), kind)
    return HTSResult(run.omega_t, run.g, run.fits)
