"""Test doubles of methods, named by import path in a benchmark's parameters
(``benchmark.methods.<label>.class=tests.doubles.<Class>``), so a ``kedro run`` subprocess can
load them too (with this checkout's root on its PYTHONPATH). Nothing registers them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from transfertune.methods.base import Method, TransferProblem


class FailsOnPair(Method):
    """Zero-shot-like order (config index order); raises the error AT2 met on a real database
    (``numpy.linalg.LinAlgError``) in its offline fit when the test task is ``fail_on``
    (every pair when None)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on

    def fit(self, problem: TransferProblem) -> None:
        if self.fail_on is None or problem.test_task == self.fail_on:
            raise np.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge because the input matrix is ill-conditioned")

    def ask(self) -> int:
        return int(np.flatnonzero(self.continuable())[0])


class Blocks(Method):
    """Writes an empty file named by its process id into the folder ``started`` in its offline
    fit, then sleeps up to ``seconds``: a run held mid-pipeline, for a test to interrupt."""

    def __init__(self, started: str, seconds: float = 120.0) -> None:
        self.started, self.seconds = started, float(seconds)

    def fit(self, problem: TransferProblem) -> None:
        (Path(self.started) / str(os.getpid())).touch()
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            time.sleep(0.05)

    def ask(self) -> int:
        return int(np.flatnonzero(self.continuable())[0])
