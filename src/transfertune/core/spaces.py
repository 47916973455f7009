"""Search spaces as data: a YAML file read into a ConfigSpace ``ConfigurationSpace``.

YAML layout (``conf/base/spaces/<name>.yml``)::

    name: hyperrec
    hyperparameters:
      - name: optimizer              # unique name in the space
        type: categorical            # float | integer | categorical
        choices: [Adam, SGD]
      - name: lr
        key: optimizer_param.lr      # dotted path in the raw config (default: name)
        type: float
        lower: 1.0e-4
        upper: 1.0e-1
        log: true
      - name: beta0
        key: optimizer_param.betas.0 # list items are addressed by index
        type: float
        lower: 0.5
        upper: 0.999
        log: true
        condition: {parent: optimizer, values: [Adam]}   # active only for these parent values

Encoding to the unit cube (what every surrogate model sees): numeric hyperparameters are
scaled to [0, 1] (on the log scale when ``log: true``), categoricals are one-hot, and an
inactive hyperparameter takes the neutral value 0.5 (its parent's one-hot already tells the
model that it is inactive). ``decode`` inverts ``encode`` up to rounding of integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ConfigSpace import (
    CategoricalHyperparameter,
    Configuration,
    ConfigurationSpace,
    EqualsCondition,
    InCondition,
    UniformFloatHyperparameter,
    UniformIntegerHyperparameter,
)

from transfertune.errors import ConfigurationError

INACTIVE_VALUE = 0.5
_TYPES = ("float", "integer", "categorical")


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of a space, as read from YAML."""

    name: str
    type: str
    key: str
    lower: float | None = None
    upper: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    parent: str | None = None
    parent_values: tuple[Any, ...] = ()

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    def to_unit(self, value: float) -> float:
        """Scale a numeric value into [0, 1] (log-aware)."""
        lo, hi, v = float(self.lower), float(self.upper), float(value)
        if self.log:
            lo, hi, v = np.log(lo), np.log(hi), np.log(v)
        return float((v - lo) / (hi - lo)) if hi > lo else 0.5

    def from_unit(self, u: float) -> float | int:
        lo, hi = float(self.lower), float(self.upper)
        u = float(np.clip(u, 0.0, 1.0))
        value = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))) if self.log else lo + u * (hi - lo)
        if self.type == "integer":
            return int(np.clip(round(value), self.lower, self.upper))
        return float(np.clip(value, lo, hi))


@dataclass
class SearchSpace:
    """An ordered list of hyperparameters with conditions, backed by ConfigSpace.

    Attributes:
        name: the space's name.
        hyperparameters: in file order; parents come before their children.
        configspace: the equivalent ``ConfigSpace.ConfigurationSpace`` (validation, sampling).
    """

    name: str
    hyperparameters: list[Hyperparameter]
    configspace: ConfigurationSpace = field(repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"search space file {path} does not exist")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"search space file {path} is not valid YAML: {exc}") from exc
        return cls.from_dict(spec, source=str(path))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "<dict>") -> "SearchSpace":
        if not isinstance(spec, Mapping) or not isinstance(spec.get("hyperparameters"), list):
            raise ConfigurationError(f"{source}: a space needs a top-level 'hyperparameters' list")
        hps: list[Hyperparameter] = []
        seen: dict[str, Hyperparameter] = {}
        for i, raw in enumerate(spec["hyperparameters"]):
            hp = _parse_hyperparameter(raw, i, source, seen)
            seen[hp.name] = hp
            hps.append(hp)
        if not hps:
            raise ConfigurationError(f"{source}: the space has no hyperparameters")
        return cls(name=str(spec.get("name", Path(source).stem)), hyperparameters=hps, configspace=_to_configspace(hps, spec))

    # ------------------------------------------------------------------ structure
    @property
    def names(self) -> list[str]:
        return [hp.name for hp in self.hyperparameters]

    def __getitem__(self, name: str) -> Hyperparameter:
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        """Names of the encoded columns: ``name`` for numerics, ``name=choice`` for one-hots."""
        cols: list[str] = []
        for hp in self.hyperparameters:
            cols.extend([f"{hp.name}={c}" for c in hp.choices] if hp.is_categorical else [hp.name])
        return cols

    @property
    def dim(self) -> int:
        return len(self.column_names)

    def column_slices(self) -> dict[str, slice]:
        """Which encoded columns belong to each hyperparameter."""
        out, start = {}, 0
        for hp in self.hyperparameters:
            width = len(hp.choices) if hp.is_categorical else 1
            out[hp.name] = slice(start, start + width)
            start += width
        return out

    def is_active(self, hp: Hyperparameter, config: Mapping[str, Any]) -> bool:
        if hp.parent is None:
            return True
        parent = self[hp.parent]
        return self.is_active(parent, config) and config.get(parent.name) in hp.parent_values

    # ------------------------------------------------------------------ configs
    def from_raw(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Pick this space's hyperparameters out of a raw (possibly nested) config record.

        Keys of the record that the space does not name are ignored (metadata such as an id).
        Only active hyperparameters are returned.
        """
        flat = flatten_record(raw)
        config: dict[str, Any] = {}
        for hp in self.hyperparameters:
            if not self.is_active(hp, config):
                continue
            if hp.key in flat:
                config[hp.name] = flat[hp.key]
        return config

    def problems(self, config: Mapping[str, Any]) -> list[str]:
        """Why ``config`` is not a member of the space (empty list when it is)."""
        issues = []
        for hp in self.hyperparameters:
            active = self.is_active(hp, config)
            if active and hp.name not in config:
                issues.append(f"'{hp.name}' (key '{hp.key}') is missing")
                continue
            if not active:
                continue
            value = config[hp.name]
            if hp.is_categorical:
                if value not in hp.choices:
                    issues.append(f"'{hp.name}'={value!r} is not one of {list(hp.choices)}")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    issues.append(f"'{hp.name}'={value!r} is not a number")
                elif not np.isfinite(value) or not (hp.lower <= value <= hp.upper):
                    issues.append(f"'{hp.name}'={value!r} is outside [{hp.lower}, {hp.upper}]")
                elif hp.type == "integer" and float(value) != int(value):
                    issues.append(f"'{hp.name}'={value!r} is not an integer")
        return issues

    def to_configuration(self, config: Mapping[str, Any]) -> Configuration:
        """The ConfigSpace ``Configuration`` of a valid config (raises on invalid ones)."""
        problems = self.problems(config)
        if problems:
            raise ConfigurationError("config outside the space: " + "; ".join(problems))
        values = {k: (int(v) if self[k].type == "integer" else v) for k, v in config.items() if k in self.names}
        return Configuration(self.configspace, values=values)

    def sample(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` random configs from the space's own distributions (ConfigSpace sampler)."""
        self.configspace.seed(seed)
        samples = self.configspace.sample_configuration(n)
        samples = samples if isinstance(samples, list) else [samples]
        return [_plain(dict(c)) for c in samples]

    # ------------------------------------------------------------------ unit cube
    def encode(self, configs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Encode configs to the unit cube. Returns ``(n, dim)`` float64."""
        rows = []
        for config in configs:
            row: list[float] = []
            for hp in self.hyperparameters:
                active = self.is_active(hp, config) and hp.name in config
                if hp.is_categorical:
                    onehot = [0.0] * len(hp.choices)
                    if active:
                        onehot[hp.choices.index(config[hp.name])] = 1.0
                    row.extend(onehot)
                else:
                    row.append(hp.to_unit(config[hp.name]) if active else INACTIVE_VALUE)
            rows.append(row)
        return np.asarray(rows, dtype=np.float64).reshape(-1, self.dim)

    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Decode unit-cube rows back to configs (argmax for one-hots, rounding for integers)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        slices = self.column_slices()
        out = []
        for x in X:
            config: dict[str, Any] = {}
            for hp in self.hyperparameters:
                if not self.is_active(hp, config):
                    continue
                part = x[slices[hp.name]]
                config[hp.name] = hp.choices[int(np.argmax(part))] if hp.is_categorical else hp.from_unit(part[0])
            out.append(config)
        return out


# ---------------------------------------------------------------------- helpers
def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b.0": 1, "a.b.1": 2}``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_record(value, name + "."))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.update(flatten_record(item, f"{name}.{i}."))
                else:
                    out[f"{name}.{i}"] = item
        else:
            out[name] = value
    return out


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items()}


def _parse_hyperparameter(raw: Any, i: int, source: str, seen: Mapping[str, Hyperparameter]) -> Hyperparameter:
    where = f"{source}: hyperparameters[{i}]"
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigurationError(f"{where} needs a 'name'")
    name = str(raw["name"])
    where = f"{source}: hyperparameter '{name}'"
    if name in seen:
        raise ConfigurationError(f"{where} is defined twice")
    kind = raw.get("type")
    if kind not in _TYPES:
        raise ConfigurationError(f"{where}: type must be one of {_TYPES}, got {kind!r}")
    parent, parent_values = None, ()
    if raw.get("condition") is not None:
        cond = raw["condition"]
        if not isinstance(cond, Mapping) or "parent" not in cond or "values" not in cond:
            raise ConfigurationError(f"{where}: condition needs 'parent' and 'values'")
        parent = str(cond["parent"])
        if parent not in seen:
            raise ConfigurationError(f"{where}: condition parent '{parent}' must be defined earlier in the file")
        if not seen[parent].is_categorical:
            raise ConfigurationError(f"{where}: condition parent '{parent}' must be categorical")
        parent_values = tuple(cond["values"]) if isinstance(cond["values"], list) else (cond["values"],)
        unknown = [v for v in parent_values if v not in seen[parent].choices]
        if unknown:
            raise ConfigurationError(f"{where}: condition values {unknown} are not choices of '{parent}'")
    common = dict(name=name, type=kind, key=str(raw.get("key", name)), parent=parent, parent_values=parent_values)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or len(choices) < 1 or len(set(map(str, choices))) != len(choices):
            raise ConfigurationError(f"{where}: 'choices' must be a non-empty list of distinct values")
        return Hyperparameter(choices=tuple(choices), **common)
    try:
        lower, upper = float(raw["lower"]), float(raw["upper"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: numeric hyperparameters need numeric 'lower' and 'upper'") from exc
    log = bool(raw.get("log", False))
    if not lower < upper:
        raise ConfigurationError(f"{where}: lower ({lower}) must be below upper ({upper})")
    if log and lower <= 0:
        raise ConfigurationError(f"{where}: a log-scale range needs lower > 0, got {lower}")
    return Hyperparameter(lower=lower, upper=upper, log=log, **common)


def _to_configspace(hps: list[Hyperparameter], spec: Mapping[str, Any]) -> ConfigurationSpace:
    cs = ConfigurationSpace(name=str(spec.get("name", "space")))
    objects = {}
    for hp in hps:
        if hp.type == "categorical":
            obj = CategoricalHyperparameter(hp.name, list(hp.choices))
        elif hp.type == "integer":
            obj = UniformIntegerHyperparameter(hp.name, int(hp.lower), int(hp.upper), log=hp.log)
        else:
            obj = UniformFloatHyperparameter(hp.name, hp.lower, hp.upper, log=hp.log)
        objects[hp.name] = obj
    cs.add(list(objects.values()))
    conditions = []
    for hp in hps:
        if hp.parent is None:
            continue
        child, parent = objects[hp.name], objects[hp.parent]
        if len(hp.parent_values) == 1:
            conditions.append(EqualsCondition(child, parent, hp.parent_values[0]))
        else:
            conditions.append(InCondition(child, parent, list(hp.parent_values)))
    if conditions:
        cs.add(conditions)
    return cs
