"""Which configs a catalog trains: random, Latin hypercube, or an explicit list.

All three return plain dicts keyed by the space's hyperparameter names, validated against the
space, and deduplicated (an integer-only space can decode two unit-cube points to one config;
training it twice would only waste time and skew the catalog).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.training.hashing import config_hash

METHODS = ("random", "lhs", "list")


def sample_configs(
    space: SearchSpace,
    method: str = "random",
    n: int = 10,
    seed: int = 0,
    configs: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``n`` configs of ``space``.

    Args:
        space: the search space.
        method: ``random`` (ConfigSpace's sampler, respecting log scales and conditions),
            ``lhs`` (a scipy Latin hypercube on the numeric unit cube, decoded through
            ``space.decode``; categoricals get their own stratified column, decoded by argmax),
            or ``list`` (``configs`` as given; ``n`` is ignored).
        n: how many configs (random / lhs).
        seed: sampler seed; the same seed gives the same configs.
        configs: the explicit configs for ``method="list"``; raw nested records are accepted
            (read through ``space.from_raw``).

    Returns:
        A list of configs, each a member of the space.
    """
    if method not in METHODS:
        raise ConfigurationError(f"config sampling method {method!r} is unknown; choose one of {METHODS}")
    if method == "list":
        if not configs:
            raise ConfigurationError("config sampling method 'list' needs a non-empty 'configs' list")
        out = []
        for i, raw in enumerate(configs):
            if not isinstance(raw, Mapping):
                raise ConfigurationError(f"configs[{i}] must be a mapping of hyperparameter values, got {raw!r}")
            config = space.from_raw(raw)
            config = {k: _plain(v, space[k].type) for k, v in config.items()}
            problems = space.problems(config)
            if problems:
                raise ConfigurationError(f"configs[{i}] is outside the space '{space.name}': " + "; ".join(problems))
            out.append(config)
        return _unique(out)
    if int(n) < 1:
        raise ConfigurationError(f"n_configs must be >= 1, got {n}")
    if method == "random":
        return _unique(space.sample(int(n), seed=int(seed)))
    return _unique(latin_hypercube(space, int(n), int(seed)))


def latin_hypercube(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` configs from a Latin hypercube over the encoded unit cube.

    One LHS column per hyperparameter: numerics map the column through their (log-aware) unit
    scale; a categorical with ``k`` choices takes choice ``floor(u * k)``, so every choice is hit
    ``n / k`` times; encoded as a one-hot, ``space.decode`` turns it back into the choice.
    """
    from scipy.stats import qmc

    sampler = qmc.LatinHypercube(d=len(space.hyperparameters), seed=np.random.default_rng(seed))
    U = sampler.random(n)  # (n, n_hyperparameters) in [0, 1)
    slices = space.column_slices()
    X = np.full((n, space.dim), 0.5)
    for j, hp in enumerate(space.hyperparameters):
        cols = slices[hp.name]
        if hp.is_categorical:
            k = len(hp.choices)
            idx = np.minimum((U[:, j] * k).astype(int), k - 1)
            block = np.zeros((n, k))
            block[np.arange(n), idx] = 1.0
            X[:, cols] = block
        else:
            X[:, cols.start] = U[:, j]
    configs = space.decode(X)
    return [{k: _plain(v, space[k].type) for k, v in c.items()} for c in configs]


def configs_to_records(configs: Sequence[Mapping[str, Any]], start_id: int = 0) -> list[dict[str, Any]]:
    """``[{config_id, **values}]`` rows in order, ids ``start_id, start_id + 1, ...``."""
    return [{"config_id": start_id + i, **dict(c)} for i, c in enumerate(configs)]


def _plain(value: Any, kind: str | None = None) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "integer" and isinstance(value, float) and float(value).is_integer():
        value = int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _unique(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for c in configs:
        h = config_hash(c)
        if h not in seen:
            seen.add(h)
            out.append(c)
    return out
