"""The trial store: one Parquet file per finished trial, written atomically, and its
consolidation into a catalog folder in the HyperRec layout.

Why one file per trial: a trial is the unit of work, so a finished trial must survive anything
that happens to the run after it (Ctrl-C, kill -9, a crash of another trial). Each file is
written to a temporary name in the same folder, flushed to disk, then ``os.replace``-d onto its
final name: a reader sees either no file or the whole file, never a partial one. The final
name is a function of the trial's identity (task, config id, seed and a fingerprint of
everything that determines the result), so writing a trial twice replaces the file instead of
adding a row, and a rerun skips every trial whose file exists.

Failed (diverged) trials are stored too: rerunning them with the same seed would diverge again.
Trials that raised an error (out of memory, a bug) are not stored, so a rerun retries them.

Consolidation (:func:`write_catalog`) turns the files of the current job list into
``observations.parquet``, ``failed_trials.parquet``, ``configs.jsonl``, ``train_test_pairs.json``,
``space.yml``, ``tasks.json`` and ``catalog.json``; each is written atomically as well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from transfertune.errors import ConfigurationError, StoreError
from transfertune.training.trainer import TrialResult

KEY_COLUMNS = ["task", "config_id", "seed", "epoch"]
FAILED_POLICIES = ("pad", "drop")
_META_KEY = b"transfertune.trial"
_TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class TrialKey:
    """Identity of a trial. ``fingerprint`` hashes the config values, the task data and the
    training settings, so a changed config, subset or epoch count is a different trial."""

    task: str
    config_id: int
    seed: int
    fingerprint: str

    @property
    def filename(self) -> str:
        return f"c{self.config_id:06d}_s{self.seed}_{self.fingerprint}.parquet"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name) or "_"


class TrialStore:
    """A folder of per-trial Parquet files: ``<root>/<task>/c<config>_s<seed>_<fp>.parquet``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: TrialKey) -> Path:
        return self.root / _safe(key.task) / key.filename

    def is_done(self, key: TrialKey) -> bool:
        return self.path(key).is_file()

    def clean_temporary(self) -> int:
        """Remove temporary files left by a killed writer. Call only while no writer runs."""
        removed = 0
        if self.root.is_dir():
            for p in self.root.rglob(f"*{_TMP_MARK}*"):
                p.unlink(missing_ok=True)
                removed += 1
        return removed

    def write(self, key: TrialKey, result: TrialResult, extra: Mapping[str, Any] | None = None) -> Path:
        """Write one trial atomically (temp file in the same folder, fsync, ``os.replace``)."""
        frame = pd.DataFrame(result.records)
        if frame.empty:
            frame = pd.DataFrame({"epoch": pd.Series([], dtype="int64")})
        frame.insert(0, "task", key.task)
        frame.insert(1, "config_id", key.config_id)
        frame.insert(2, "seed", key.seed)
        frame["epoch"] = frame["epoch"].astype("int64")
        frame[["config_id", "seed"]] = frame[["config_id", "seed"]].astype("int64")
        meta = {
            "task": key.task,
            "config_id": key.config_id,
            "seed": key.seed,
            "fingerprint": key.fingerprint,
            "status": result.status,
            "last_good_epoch": result.last_good_epoch,
            "failed_epoch": result.failed_epoch,
            "reason": result.reason,
            "initial": result.initial,
            "device": result.device,
            "wall_time_s": result.wall_time_s,
            "n_parameters": result.n_parameters,
            **dict(extra or {}),
        }
        return write_frame_atomic(self.path(key), frame, meta)

    def read(self, key: TrialKey) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The per-epoch rows and the metadata of one stored trial."""
        return read_frame(self.path(key))

    def collect(self, keys: Iterable[TrialKey]) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
        """Frames and metadata of the stored trials among ``keys`` (missing ones are skipped)."""
        frames, metas = [], []
        for key in keys:
            if self.is_done(key):
                frame, meta = self.read(key)
                frames.append(frame)
                metas.append(meta)
        return frames, metas


def write_frame_atomic(final: Path, frame: pd.DataFrame | pa.Table, meta: Mapping[str, Any]) -> Path:
    """Write ``frame`` as Parquet with ``meta`` (JSON) in its schema metadata, atomically:
    temporary file in the same folder, flush, fsync, ``os.replace``."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(dict(meta), default=str).encode()})
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_frame(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame and metadata written by :func:`write_frame_atomic`."""
    table = pq.read_table(path)
    return table.to_pandas(), json.loads((table.schema.metadata or {})[_META_KEY])


def read_meta(path: Path) -> dict[str, Any]:
    """Only the metadata written by :func:`write_frame_atomic` (reads no rows)."""
    return json.loads((pq.read_schema(path).metadata or {})[_META_KEY])


# ---------------------------------------------------------------------- live trials


@dataclass
class LiveTrialState:
    """What the store holds for one live trial.

    Attributes:
        records: one dict per trained epoch (``epoch`` 1..k and the metric columns).
        status: ``running`` (may be continued), or ``failed`` (diverged; never continued).
        reason: why it failed ("" otherwise).
        checkpoint: the training state after epoch k (None before the first epoch or when
            not asked for).
    """

    records: list[dict[str, Any]]
    status: str = "running"
    reason: str = ""
    checkpoint: dict[str, Any] | None = None

    @property
    def epochs(self) -> int:
        return len(self.records)


class LiveTrialStore:
    """The per-trial files of live tuning: ``<root>/t<trial:06d>.parquet`` (per-epoch rows and
    metadata, written atomically as :class:`TrialStore` writes a trial) and
    ``<root>/t<trial:06d>.pt`` (the training checkpoint).

    After each epoch the checkpoint is written first, then the rows: both atomic (temporary
    file, fsync, ``os.replace``). The checkpoint also holds every record so far, so a kill
    between the two writes loses nothing: :meth:`load` takes the records from whichever is
    further and rewrites the rows. A row is keyed by its epoch and a file replaced whole, so
    nothing is duplicated either. Checkpoints are ``torch.save`` of state dicts, read with
    ``torch.load(weights_only=True)``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def rows_path(self, trial_id: int) -> Path:
        return self.root / f"t{int(trial_id):06d}.parquet"

    def checkpoint_path(self, trial_id: int) -> Path:
        return self.root / f"t{int(trial_id):06d}.pt"

    def trial_ids(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in self.root.glob("t*.parquet") if _TMP_MARK not in p.name)

    def save_epoch(self, trial_id: int, records: Sequence[Mapping[str, Any]], checkpoint: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Store the trial after its last epoch: the checkpoint (with the records), then the rows."""
        import torch

        path = self.checkpoint_path(trial_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as handle:
                # records and meta as JSON text: one string each, quick for the weights_only unpickler
                torch.save({**dict(checkpoint), "records": json.dumps(list(map(dict, records))), "meta": json.dumps(dict(meta), default=str)}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self._write_rows(trial_id, records, {**dict(meta), "status": "running", "reason": ""})

    def save_failure(self, trial_id: int, records: Sequence[Mapping[str, Any]], reason: str, meta: Mapping[str, Any]) -> None:
        """Mark the trial failed; its good epochs and checkpoint stay."""
        self._write_rows(trial_id, records, {**dict(meta), "status": "failed", "reason": str(reason)})

    def _write_rows(self, trial_id: int, records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
        if records:
            table = pa.Table.from_pylist([{"trial": int(trial_id), **dict(r), "epoch": int(r["epoch"])} for r in records])
        else:
            table = pa.table({"trial": pa.array([], pa.int64()), "epoch": pa.array([], pa.int64())})
        write_frame_atomic(self.rows_path(trial_id), table, {**dict(meta), "trial": int(trial_id), "epochs": len(records)})

    def load(self, trial_id: int, checkpoint: bool = True) -> LiveTrialState:
        """The trial as stored (no files: no epochs).

        With ``checkpoint`` the records come from the checkpoint (rows that lag it, after a kill
        between the two writes, are rewritten); without, from the rows alone.
        """
        import torch

        rows_path, checkpoint_path = self.rows_path(trial_id), self.checkpoint_path(trial_id)
        meta = read_meta(rows_path) if rows_path.is_file() else {}
        state = None
        if checkpoint and checkpoint_path.is_file():
            state = torch.load(checkpoint_path, weights_only=True, map_location="cpu")
            records = json.loads(state["records"])
            stored = int(meta.get("epochs", 0))
            if len(records) > stored:  # killed between the checkpoint and the rows
                meta = {**json.loads(state["meta"]), "status": "running", "reason": ""}
                self._write_rows(trial_id, records, meta)
            elif len(records) < stored:
                raise StoreError(
                    f"{checkpoint_path}: its checkpoint is of epoch {len(records)}, older than the {stored} epochs in "
                    f"{rows_path.name}; the store was changed by hand"
                )
        elif rows_path.is_file():
            rows, _ = read_frame(rows_path)
            records = [{k: v for k, v in r.items() if k != "trial"} for r in rows.to_dict(orient="records")]
        else:
            records = []
        for r in records:
            r["epoch"] = int(r["epoch"])
        return LiveTrialState(records, str(meta.get("status", "running")), str(meta.get("reason", "")), state)

    def clean_temporary(self) -> int:
        """Remove temporary files left by a killed writer. Call only while no writer runs."""
        return TrialStore(self.root).clean_temporary()


# ---------------------------------------------------------------------- consolidation


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def assemble_observations(
    frames: Sequence[pd.DataFrame], metas: Sequence[Mapping[str, Any]], epochs: int, failed_policy: str = "pad"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the observations table and the failure table from stored trials.

    A completed trial contributes its epochs 1..E as they are. A failed trial is listed in the
    failure table with its last good epoch; in observations it is
    - ``drop``: absent (the catalog grid has NaN for it);
    - ``pad``: present with epochs 1..E, where epochs after the last good one repeat the last good
      values (or, if it failed in epoch 1, the untrained model's values) and ``epoch_time_s`` is 0;
      padded rows have ``padded=True``.
    Either way every trial in observations covers 1..E contiguously and every metric is finite.

    Returns:
        ``(observations, failures)``: observations sorted by the key columns with a boolean
        ``padded`` column; failures with one row per failed trial.
    """
    if failed_policy not in FAILED_POLICIES:
        raise ConfigurationError(f"failed_trials policy {failed_policy!r} is unknown; choose one of {FAILED_POLICIES}")
    rows: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    for frame, meta in zip(frames, metas):
        frame = frame.copy()
        frame["padded"] = False
        if meta["status"] == "completed":
            rows.append(frame)
            continue
        failures.append(
            {
                "task": meta["task"],
                "config_id": int(meta["config_id"]),
                "seed": int(meta["seed"]),
                "last_good_epoch": int(meta["last_good_epoch"]),
                "failed_epoch": int(meta["failed_epoch"]) if meta.get("failed_epoch") is not None else -1,
                "reason": str(meta.get("reason", "")),
            }
        )
        if failed_policy == "drop":
            continue
        if len(frame):
            last = frame.iloc[-1].to_dict()
        elif meta.get("initial"):
            last = {"task": meta["task"], "config_id": int(meta["config_id"]), "seed": int(meta["seed"]), **meta["initial"]}
        else:
            continue  # nothing finite to pad with: listed in failures only
        pads = []
        for epoch in range(int(meta["last_good_epoch"]) + 1, int(epochs) + 1):
            pads.append({**last, "epoch": epoch, "epoch_time_s": 0.0, "padded": True})
        rows.append(pd.concat([frame, pd.DataFrame(pads)], ignore_index=True) if len(frame) else pd.DataFrame(pads))
    failure_columns = ["task", "config_id", "seed", "last_good_epoch", "failed_epoch", "reason"]
    failures_frame = pd.DataFrame(failures, columns=failure_columns)
    if not rows:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "padded"]), failures_frame
    obs = pd.concat(rows, ignore_index=True)
    obs = obs.astype({"config_id": "int64", "seed": "int64", "epoch": "int64", "padded": "bool"})
    obs["task"] = obs["task"].astype(str)
    obs = obs.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    return obs, failures_frame.sort_values(["task", "config_id", "seed"]).reset_index(drop=True)


def write_catalog(
    out_dir: str | Path,
    observations: pd.DataFrame,
    failures: pd.DataFrame,
    config_records: Sequence[Mapping[str, Any]],
    pairs: Sequence[Mapping[str, Any]],
    space_file: str | Path,
    tasks: Sequence[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a catalog folder (the HyperRec layout plus failure log, tasks and metadata).

    Args:
        out_dir: the folder (created).
        observations: from :func:`assemble_observations`.
        failures: from :func:`assemble_observations`.
        config_records: ``[{config_id, <space names>...}]``, one per config.
        pairs: ``[{"train": [...], "test": ...}]``.
        space_file: the space YAML, copied to ``space.yml``.
        tasks: one description per task (``tasks.json``).
        metadata: run settings (``catalog.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if observations.empty:
        raise ConfigurationError(
            f"no trial completed, so there is nothing to write to {out}; see failed_trials in the run summary"
        )
    _atomic_parquet(out / "observations.parquet", observations)
    _atomic_parquet(out / "failed_trials.parquet", failures)
    lines = "".join(json.dumps(dict(r), sort_keys=False) + "\n" for r in config_records)
    _atomic_bytes(out / "configs.jsonl", lines.encode())
    _atomic_bytes(out / "train_test_pairs.json", json.dumps({"pairs": list(pairs)}, indent=1).encode())
    tmp = out / f"space.yml{_TMP_MARK}{uuid.uuid4().hex}"
    shutil.copyfile(space_file, tmp)
    os.replace(tmp, out / "space.yml")
    _atomic_bytes(out / "tasks.json", json.dumps(list(tasks), indent=1, default=str).encode())
    _atomic_bytes(out / "catalog.json", json.dumps(dict(metadata or {}), indent=1, default=str).encode())
    return out
