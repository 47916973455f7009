"""ObservationCatalog: a tuning database in the HyperRec layout, validated on load.

A database is a folder with
- ``observations.parquet``: one row per (task, config_id, seed, epoch) with metric columns;
- ``configs.jsonl``: one JSON record per config (``config_id`` + hyperparameter values, keys
  addressed by the space YAML's ``key``);
- ``train_test_pairs.json``: ``{"pairs": [{"train": [...], "test": "..."}]}``.

Loading needs the folder, a search-space YAML and the name of the metric column: nothing about a
particular database is hard-coded, so a new database is a new YAML and three parameters. Every
problem found on load raises :class:`DataValidationError` naming the file, the column and an
example row; nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from transfertune.core.spaces import SearchSpace
from transfertune.errors import DataValidationError

OBSERVATIONS_FILE = "observations.parquet"
CONFIGS_FILE = "configs.jsonl"
PAIRS_FILE = "train_test_pairs.json"
KEY_COLUMNS = ["task", "config_id", "seed", "epoch"]


@dataclass(frozen=True)
class TaskPair:
    """One transfer problem: tune ``test`` using what was observed on ``train``."""

    train: tuple[str, ...]
    test: str

    @property
    def name(self) -> str:
        return self.test


@dataclass
class ObservationCatalog:
    """A validated tuning database.

    Attributes:
        observations: tidy table with ``task, config_id, seed, epoch`` and the metric column.
        configs: ``config_id`` -> config dict (space names, active hyperparameters only).
        space: the search space the configs belong to.
        metric: name of the objective column (higher is better).
        pairs: the database's train/test task pairs.
        path: the folder it was read from.
    """

    observations: pd.DataFrame
    configs: dict[int, dict[str, Any]]
    space: SearchSpace
    metric: str
    pairs: list[TaskPair]
    path: Path | None = None
    _grid_cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, space: str | Path | SearchSpace, metric: str) -> "ObservationCatalog":
        path = Path(path)
        if not path.is_dir():
            raise DataValidationError(
                f"database folder {path} does not exist; set the parameter database.path to a folder "
                f"with {OBSERVATIONS_FILE}, {CONFIGS_FILE} and {PAIRS_FILE}"
            )
        for name in (OBSERVATIONS_FILE, CONFIGS_FILE, PAIRS_FILE):
            if not (path / name).is_file():
                raise DataValidationError(f"{path / name}: file missing from the database folder")
        space = space if isinstance(space, SearchSpace) else SearchSpace.from_yaml(space)
        observations = _read_observations(path / OBSERVATIONS_FILE, metric)
        configs = _read_configs(path / CONFIGS_FILE, space)
        _check_config_ids(path / OBSERVATIONS_FILE, observations, configs)
        _check_epochs(path / OBSERVATIONS_FILE, observations)
        pairs = _read_pairs(path / PAIRS_FILE, set(observations["task"].unique()))
        return cls(observations=observations, configs=configs, space=space, metric=metric, pairs=pairs, path=path)

    # ------------------------------------------------------------------ structure
    @cached_property
    def tasks(self) -> list[str]:
        return sorted(self.observations["task"].unique())

    @cached_property
    def config_ids(self) -> np.ndarray:
        """Config ids present in the observations, sorted; the row order of every grid."""
        return np.sort(self.observations["config_id"].unique())

    @cached_property
    def epochs(self) -> np.ndarray:
        return np.sort(self.observations["epoch"].unique())

    @property
    def max_epoch(self) -> int:
        return int(self.epochs.max())

    @cached_property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.observations["seed"].unique())

    @cached_property
    def encoded_configs(self) -> np.ndarray:
        """Unit-cube encoding of ``config_ids`` in order, ``(n_configs, space.dim)``."""
        return self.space.encode([self.configs[int(c)] for c in self.config_ids])

    def pair(self, name: str) -> TaskPair:
        for p in self.pairs:
            if p.name == name:
                return p
        raise KeyError(name)

    def grid(self, task: str, seed: int | None = 0) -> np.ndarray:
        """The ``(n_configs, n_epochs)`` metric grid of one task; NaN where nothing was observed.

        ``seed=None`` averages the available seeds. Rows follow ``config_ids``, columns ``epochs``.
        """
        key = (task, seed)
        if key not in self._grid_cache:
            obs = self.observations[self.observations["task"] == task]
            if obs.empty:
                raise KeyError(f"task {task!r} is not in the catalog")
            if seed is not None:
                obs = obs[obs["seed"] == seed]
                if obs.empty:
                    raise KeyError(f"task {task!r} has no observations with seed {seed}")
            table = obs.pivot_table(index="config_id", columns="epoch", values=self.metric, aggfunc="mean")
            table = table.reindex(index=self.config_ids, columns=self.epochs)
            self._grid_cache[key] = table.to_numpy(dtype=np.float64)
        return self._grid_cache[key]

    def grids(self, tasks: list[str] | tuple[str, ...], seed: int | None = 0) -> np.ndarray:
        """Stacked grids ``(n_tasks, n_configs, n_epochs)``."""
        return np.stack([self.grid(t, seed) for t in tasks])

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tasks": len(self.tasks),
            "configs": len(self.config_ids),
            "epochs": self.max_epoch,
            "seeds": self.seeds,
            "pairs": len(self.pairs),
            "metric": self.metric,
            "space": self.space.name,
            "rows": len(self.observations),
        }


# ---------------------------------------------------------------------- validation
def _example(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> str:
    row = frame[mask].head(1)
    return row.to_dict(orient="records")[0].__repr__() if len(row) else "<none>"


def _read_observations(file: Path, metric: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataValidationError(f"{file}: cannot be read as Parquet ({exc})") from exc
    required = [*KEY_COLUMNS, metric]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{file}: column(s) {missing} missing; required {required} (is database.metric right? "
            f"columns present: {list(frame.columns)})"
        )
    # Dtype families first (any int width, any string type), then normalise, then pandera checks.
    wrong = []
    for column in ("config_id", "seed", "epoch"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            wrong.append(f"column '{column}' has dtype {frame[column].dtype}, expected an integer type")
    if not (pd.api.types.is_string_dtype(frame["task"]) or isinstance(frame["task"].dtype, pd.CategoricalDtype)):
        wrong.append(f"column 'task' has dtype {frame['task'].dtype}, expected strings")
    if not pd.api.types.is_numeric_dtype(frame[metric]) or pd.api.types.is_bool_dtype(frame[metric]):
        wrong.append(f"column '{metric}' has dtype {frame[metric].dtype}, expected numbers")
    if wrong:
        raise DataValidationError(f"{file}: " + "; ".join(wrong))
    frame = frame.astype({"config_id": "int64", "seed": "int64", "epoch": "int64", metric: "float64"})
    frame["task"] = frame["task"].astype(str)
    schema = pa.DataFrameSchema(
        {
            "task": pa.Column(nullable=False),
            "config_id": pa.Column(nullable=False),
            "seed": pa.Column(nullable=False),
            "epoch": pa.Column(checks=pa.Check.ge(1), nullable=False),
            metric: pa.Column(checks=pa.Check(np.isfinite, error="finite"), nullable=False),
        },
        strict=False,
    )
    try:
        frame = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise DataValidationError(_describe_schema_errors(file, frame, exc.failure_cases)) from None
    dup = frame.duplicated(KEY_COLUMNS, keep=False)
    if dup.any():
        raise DataValidationError(
            f"{file}: {int(dup.sum())} rows repeat a (task, config_id, seed, epoch) key, e.g. {_example(frame, dup)}"
        )
    return frame.reset_index(drop=True)


def _describe_schema_errors(file: Path, frame: pd.DataFrame, failures: pd.DataFrame) -> str:
    lines = []
    for column, group in failures.groupby("column", sort=False, dropna=False):
        first = group.iloc[0]
        check = str(first["check"])
        if "dtype" in check:
            lines.append(f"column '{column}' has dtype {frame[column].dtype}, expected {check}")
            continue
        index = first["index"]
        example = frame.loc[[index]].to_dict(orient="records")[0] if index in frame.index else first["failure_case"]
        what = "NaN/missing values" if "not_nullable" in check else ("non-finite values (inf)" if check == "finite" else f"values failing {check}")
        lines.append(f"column '{column}' has {len(group)} {what}, e.g. row {index}: {example}")
    return f"{file}: " + "; ".join(lines)


def _read_configs(file: Path, space: SearchSpace) -> dict[int, dict[str, Any]]:
    configs: dict[int, dict[str, Any]] = {}
    with file.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataValidationError(f"{file}: line {line_no} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "config_id" not in record:
                raise DataValidationError(f"{file}: line {line_no} has no 'config_id' column: {line.strip()[:200]}")
            config_id = record["config_id"]
            if isinstance(config_id, bool) or not isinstance(config_id, int):
                raise DataValidationError(f"{file}: line {line_no}: column 'config_id' must be an integer, got {config_id!r}")
            if config_id in configs:
                raise DataValidationError(f"{file}: line {line_no}: config_id {config_id} appears twice")
            config = space.from_raw(record)
            problems = space.problems(config)
            if problems:
                raise DataValidationError(
                    f"{file}: line {line_no} (config_id {config_id}) is outside the space '{space.name}': "
                    + "; ".join(problems)
                )
            configs[config_id] = config
    if not configs:
        raise DataValidationError(f"{file}: no configurations")
    return configs


def _check_config_ids(file: Path, observations: pd.DataFrame, configs: dict[int, Any]) -> None:
    unknown = ~observations["config_id"].isin(list(configs))
    if unknown.any():
        ids = [int(i) for i in sorted(observations.loc[unknown, "config_id"].unique())[:10]]
        raise DataValidationError(
            f"{file}: column 'config_id' has ids missing from {CONFIGS_FILE}: {ids}, e.g. {_example(observations, unknown)}"
        )


def _check_epochs(file: Path, observations: pd.DataFrame) -> None:
    """Each (task, config, seed) trial must cover epochs 1..E without gaps (E may differ per trial)."""
    g = observations.groupby(["task", "config_id", "seed"])["epoch"]
    stats = pd.DataFrame({"min": g.min(), "max": g.max(), "n": g.size()})
    bad = stats[(stats["min"] != 1) | (stats["max"] != stats["n"])]
    if len(bad):
        task, config_id, seed = bad.index[0]
        row = bad.iloc[0]
        raise DataValidationError(
            f"{file}: column 'epoch' is not contiguous 1..E for {len(bad)} trial(s), e.g. task={task!r}, "
            f"config_id={config_id}, seed={seed} has {int(row['n'])} epochs spanning {int(row['min'])}..{int(row['max'])}"
        )


def _read_pairs(file: Path, tasks: set[str]) -> list[TaskPair]:
    try:
        spec = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"{file}: not valid JSON ({exc.msg})") from None
    raw_pairs = spec.get("pairs") if isinstance(spec, dict) else None
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise DataValidationError(f"{file}: needs a non-empty 'pairs' list of {{'train': [...], 'test': ...}}")
    pairs = []
    for i, raw in enumerate(raw_pairs):
        if not isinstance(raw, dict) or "train" not in raw or "test" not in raw:
            raise DataValidationError(f"{file}: pairs[{i}] needs 'train' and 'test', got {raw!r}")
        names = [*raw["train"], raw["test"]]
        unknown = [t for t in names if t not in tasks]
        if unknown:
            raise DataValidationError(f"{file}: pairs[{i}] names task(s) {unknown} that have no observations: {raw!r}")
        if raw["test"] in raw["train"]:
            raise DataValidationError(f"{file}: pairs[{i}] uses its test task {raw['test']!r} for training")
        pairs.append(TaskPair(train=tuple(raw["train"]), test=str(raw["test"])))
    return pairs
