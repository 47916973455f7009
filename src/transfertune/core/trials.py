"""The unit of work of the tuning protocol: a trial, and the checks every told metric passes.

A *trial* is one config's training run. ``ask()`` hands out a :class:`Trial`: train
``config`` from the epochs it already has (``start_epoch``) to ``epoch``. Continuing the same
config later gives a new :class:`Trial` with the same ``trial_id`` and a later ``epoch``, so a
trainer resumes its checkpoint instead of starting over. ``tell`` reports one epoch at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transfertune.errors import ProtocolError


@dataclass(frozen=True)
class Trial:
    """Train ``config`` through epoch ``epoch``.

    Attributes:
        trial_id: stable id of the config's training run (0, 1, 2, ... in order of first ask);
            continuing the run keeps it.
        config: the active hyperparameters, a member of the search space.
        epoch: the epoch to train to (1-based).
        start_epoch: epochs already told for this trial; the work is epochs
            ``start_epoch + 1 .. epoch``.
        pool_index: row of the config in the method's pool (pool methods), else None.
    """

    trial_id: int
    config: Mapping[str, Any]
    epoch: int
    start_epoch: int = 0
    pool_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"trial": self.trial_id, "config": dict(self.config), "epoch": self.epoch,
                "start_epoch": self.start_epoch, "pool_index": self.pool_index}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Trial":
        pool = record.get("pool_index")
        return cls(int(record["trial"]), dict(record["config"]), int(record["epoch"]), int(record.get("start_epoch", 0)),
                   None if pool is None else int(pool))


def objective_value(metrics: Mapping[str, Any] | float, metric: str, where: str) -> tuple[float, dict[str, float]]:
    """The objective value and the metrics as plain floats; one-line errors for bad input.

    ``metrics`` is a mapping that holds ``metric`` (other keys are kept), or the value itself.
    """
    if type(metrics) is float:  # the common case of a replay: one number
        if not math.isfinite(metrics):
            raise ProtocolError(f"{where}: {metric}={metrics} is not finite; report a diverged run with fail(trial, reason) instead")
        return metrics, {metric: metrics}
    if isinstance(metrics, Mapping):
        if metric not in metrics:
            raise ProtocolError(f"{where}: the metrics {sorted(metrics)} lack the objective metric {metric!r}")
        try:
            values = {str(k): float(v) for k, v in metrics.items()}
        except (TypeError, ValueError):
            raise ProtocolError(f"{where}: every metric must be a number, got {dict(metrics)!r}") from None
    else:
        try:
            values = {metric: float(metrics)}
        except (TypeError, ValueError):
            raise ProtocolError(f"{where}: the metric must be a number or a mapping, got {metrics!r}") from None
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        name, value = next(iter(bad.items()))
        raise ProtocolError(f"{where}: {name}={value} is not finite; report a diverged run with fail(trial, reason) instead")
    return values[metric], values
