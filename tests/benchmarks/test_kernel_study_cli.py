"""benchmarks/kernel_study.py --only: which combinations a partial run trains."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from kernel_study import select_combinations  # noqa: E402


def test_only_keeps_the_named_combinations_in_the_study_order():
    assert len(select_combinations(None)) == 64
    chosen = select_combinations("mtbo x tree x fabolas, optiland x deep_poly x acc_curve")
    assert [c.label for c in chosen] == ["optiland x deep_poly x acc_curve", "mtbo x tree x fabolas"]
    with pytest.raises(ValueError, match="no combination"):
        select_combinations("optiland x deep_poly")
