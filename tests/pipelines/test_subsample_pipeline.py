"""`subsample` end to end through Kedro on digits, outputs in a tmp folder; bad input errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_pipeline
from transfertune.data import load_source, manifests_from_frame, materialise
from transfertune.errors import ConfigurationError, DataValidationError, TransfertuneError

FAST = {
    "progress": False,
    "class_subsets": {"n_subsets": 4, "n_per_class": 20},
    "random_proxy": {"n_subsets": 2},
    "adversarial_proxy": {"n_subsets": 2, "classifier": {"model": "mlp", "epochs": 10}, "attack": {"iterations": 40}},
}


def test_subsample_runs_end_to_end_on_digits(tmp_path):
    run_pipeline("subsample", tmp_path, {"subsample": FAST, "mlflow": {"enabled": False}})
    data = tmp_path / "data"
    frame = pd.read_parquet(data / "02_intermediate/subset_manifests.parquet")
    manifests = manifests_from_frame(frame)
    by_strategy = {s: [m for m in manifests if m.strategy == s] for s in ("class_subset", "random_proxy", "adversarial_proxy")}
    assert [len(v) for v in by_strategy.values()] == [4, 2, 2]
    digits = load_source("digits")
    for m in by_strategy["class_subset"]:
        sub = materialise(m, digits)
        assert len(sub.X) == 100 and sorted(set(sub.y.tolist())) == [0, 1, 2, 3, 4]
    for m in by_strategy["random_proxy"] + by_strategy["adversarial_proxy"]:
        assert m.size == 180 and np.all(~np.isnan(m.perturbation_norm))  # every proxy sample is scored
    scores = pd.read_parquet(data / "02_intermediate/subsample_scores.parquet")
    assert len(scores) == 1797 and scores["success"].mean() > 0.9
    comparison = pd.read_csv(data / "08_reporting/subsample_norm_comparison.csv").set_index("strategy")
    assert comparison.loc["adversarial_proxy", "median_norm"] < 0.8 * comparison.loc["random_proxy", "median_norm"]
    summary = pd.read_csv(data / "08_reporting/subsample_subsets.csv")
    assert len(summary) == 8 and set(summary["size"]) == {100, 180}
    assert (data / "08_reporting/subsample_perturbation_norms.png").stat().st_size > 10_000


def _table(tmp_path, rows: int) -> str:
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": np.arange(rows, dtype=float), "y": np.arange(rows) % 2}).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("ratio", ConfigurationError, r"ratio must be in \(0, 1\]"),
        ("classes", ConfigurationError, "has only 10 classes"),
        ("empty", DataValidationError, "has no rows"),
        ("label", DataValidationError, "label column 'target' is missing"),
        ("typo", ConfigurationError, "unknown key"),
    ],
)
def test_bad_input_ends_in_a_clear_error(tmp_path, case, error, message):
    params: dict = {"progress": False}
    if case == "ratio":
        params["random_proxy"] = {"ratio": 1.5}
        params["adversarial_proxy"] = {"enabled": False}
    elif case == "classes":
        params["class_subsets"] = {"n_classes": 11}
        params["adversarial_proxy"] = {"enabled": False}
    elif case in ("empty", "label"):
        path = _table(tmp_path, 0 if case == "empty" else 5)
        params["sources"] = {"t": {"name": "table", "options": {"path": path, "label_column": "y" if case == "empty" else "target"}}}
    else:
        params["class_subsets"] = {"n_per_clas": 3}
    with pytest.raises(TransfertuneError) as err:
        run_pipeline("subsample", tmp_path / "run", {"subsample": params, "mlflow": {"enabled": False}})
    cause = err.value
    assert isinstance(cause, error)
    assert re.search(message, str(cause))
