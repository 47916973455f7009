"""Spaces and synthetic source/target error functions for the HTS tests."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import HYPERREC_SPACE, ROOT
from transfertune.core.spaces import SearchSpace

HTS_SPACE = ROOT / "conf" / "base" / "spaces" / "hts_cnn.yml"
SOURCE_OPTIMUM = np.full(8, 0.3)
TARGET_OPTIMUM = np.array([0.75, 0.2, 0.8, 0.55, 0.3, 0.65, 0.4, 0.9])


@pytest.fixture(scope="session")
def cnn_space() -> SearchSpace:
    return SearchSpace.from_yaml(HTS_SPACE)


@pytest.fixture(scope="session")
def hyperrec_space() -> SearchSpace:
    return SearchSpace.from_yaml(HYPERREC_SPACE)


def quadratic(space: SearchSpace, optimum: np.ndarray):
    """f(config) = ||encode(config) - optimum||^2 (lower is better)."""

    def f(config) -> float:
        return float(np.sum((space.encode([config])[0] - optimum) ** 2))

    return f
