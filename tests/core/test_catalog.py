"""The catalog loads HyperRec, and each corruption of a copy gives a clear error."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import HYPERREC, HYPERREC_SPACE
from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import DataValidationError


def test_hyperrec_loads_with_its_full_grid(hyperrec):
    assert len(hyperrec.tasks) == 27 and len(hyperrec.config_ids) == 100 and hyperrec.max_epoch == 75
    assert len(hyperrec.pairs) == 5 and hyperrec.pairs[0].test == "CIFAR100" and len(hyperrec.pairs[0].train) == 4
    grid = hyperrec.grid("CIFAR100", seed=0)
    assert grid.shape == (100, 75) and np.isfinite(grid).all()
    obs = hyperrec.observations
    row = obs[(obs.task == "CIFAR100") & (obs.seed == 0) & (obs.epoch == 75)].sort_values("config_id").iloc[3]
    assert grid[3, 74] == row["val_top5_acc"]
    assert hyperrec.encoded_configs.shape == (100, hyperrec.space.dim)


def test_second_database_with_another_space_loads(synthetic_db):
    catalog = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    assert catalog.space.dim == 7 and catalog.max_epoch == 8 and len(catalog.pairs) == 2


@pytest.fixture
def corrupt_copy(tmp_path):
    folder = tmp_path / "hyperrec"
    shutil.copytree(HYPERREC, folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def _rewrite(folder, change):
    frame = pd.read_parquet(folder / "observations.parquet")
    frame = change(frame)
    frame.to_parquet(folder / "observations.parquet", index=False)


def _load(folder, metric="val_top5_acc"):
    return ObservationCatalog.load(folder, HYPERREC_SPACE, metric)


def _set(column, value, row=10):
    def change(frame):
        frame = frame.astype({column: "float64"}) if isinstance(value, float) else frame
        frame.loc[row, column] = value
        return frame

    return change


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda f: f.drop(columns=["epoch"]), r"observations.parquet: column\(s\) \['epoch'\] missing"),
        (_set("val_top5_acc", np.nan), r"observations.parquet: column 'val_top5_acc' has 1 NaN/missing values, e.g. row 10"),
        (_set("val_top5_acc", np.inf), r"column 'val_top5_acc' has 1 non-finite values \(inf\), e.g. row 10"),
        (lambda f: f.astype({"config_id": "float64"}), r"column 'config_id' has dtype float64, expected an integer type"),
        (lambda f: pd.concat([f, f.iloc[[5]]], ignore_index=True), r"repeat a \(task, config_id, seed, epoch\) key, e.g. \{'task'"),
        (_set("config_id", 4242), r"column 'config_id' has ids missing from configs.jsonl: \[4242\]"),
        (lambda f: f.drop(index=f.index[(f.epoch == 40)][:1]), r"column 'epoch' is not contiguous 1..E .* task="),
        (lambda f: f.assign(epoch=f.epoch - 1), r"column 'epoch' has 5400 values failing greater_than_or_equal_to\(1\), e.g. row 0"),
    ],
)
def test_corrupted_observations_raise_clear_errors(corrupt_copy, change, pattern):
    _rewrite(corrupt_copy, change)
    with pytest.raises(DataValidationError, match=pattern):
        _load(corrupt_copy)


def test_wrong_metric_name_lists_the_columns(corrupt_copy):
    with pytest.raises(DataValidationError, match=r"\['val_acc'\] missing.*database.metric.*val_top5_acc"):
        _load(corrupt_copy, metric="val_acc")


def test_config_outside_the_space(corrupt_copy):
    lines = (corrupt_copy / "configs.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["optimizer_param"]["lr"] = 5.0
    lines[2] = json.dumps(record)
    (corrupt_copy / "configs.jsonl").write_text("\n".join(lines))
    with pytest.raises(DataValidationError, match=r"configs.jsonl: line 3 \(config_id 2\) is outside the space 'hyperrec': 'lr'=5.0 is outside"):
        _load(corrupt_copy)


def test_config_missing_from_configs_file(corrupt_copy):
    lines = (corrupt_copy / "configs.jsonl").read_text().splitlines()
    (corrupt_copy / "configs.jsonl").write_text("\n".join(lines[1:]))
    with pytest.raises(DataValidationError, match=r"ids missing from configs.jsonl: \[0\]"):
        _load(corrupt_copy)


def test_unknown_task_in_pairs(corrupt_copy):
    spec = json.loads((corrupt_copy / "train_test_pairs.json").read_text())
    spec["pairs"][1]["test"] = "MNIST"
    (corrupt_copy / "train_test_pairs.json").write_text(json.dumps(spec))
    with pytest.raises(DataValidationError, match=r"train_test_pairs.json: pairs\[1\] names task\(s\) \['MNIST'\]"):
        _load(corrupt_copy)


def test_missing_folder_and_file(corrupt_copy, tmp_path):
    with pytest.raises(DataValidationError, match="database.path"):
        _load(tmp_path / "nowhere")
    (corrupt_copy / "configs.jsonl").unlink()
    with pytest.raises(DataValidationError, match="configs.jsonl: file missing"):
        _load(corrupt_copy)
