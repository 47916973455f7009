"""`import_history` then `recommend` through Kedro: the imported catalog loads, the recommendation
table names catalog configs; a missing storage is one line."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from tests.conftest import run_pipeline
from transfertune.errors import ConfigurationError

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_import_history_then_recommend(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    for name, scale in (("old1", 1.0), ("old2", 0.9)):
        study = optuna.create_study(study_name=name, storage=url, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t: [t.report(scale * t.suggest_float("x", 0.0, 1.0) * e / 3, e) for e in (1, 2, 3)] and t.params["x"], n_trials=4)
    out = tmp_path / "imported"
    run_pipeline("import_history", tmp_path, {"import_history": {"storage": url, "out": str(out), "metric": "acc"}})
    report = json.loads((tmp_path / "data/08_reporting/import_history.json").read_text())
    assert report["tasks"] == 2 and report["trials"] == 8 and report["recurring_configs"] == 4  # same seed: same x
    assert (out / "space.yml").is_file()
    run_pipeline("recommend", tmp_path, {"recommend": {"database": str(out), "space": None, "metric": None, "pair": "old2",
                                                       "method": "zero_shot", "n": 2}})
    table = pd.read_csv(tmp_path / "data/08_reporting/recommend.csv")
    assert list(table.kind) == ["next", "next"] and table.config_id.notna().all()
    assert "no posterior" in (tmp_path / "data/08_reporting/recommend.md").read_text()


def test_import_history_without_a_storage_is_one_line(tmp_path):
    with pytest.raises(Exception) as info:
        run_pipeline("import_history", tmp_path, {"import_history": {"out": str(tmp_path / "x")}})
    error = info.value
    while not isinstance(error, ConfigurationError) and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__
    assert isinstance(error, ConfigurationError) and "import_history.storage is not set" in str(error)
