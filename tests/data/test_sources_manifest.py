"""Sources load with the contracted shapes; manifests round-trip through a Parquet table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfertune.data import SubsetManifest, load_source, manifests_from_frame, manifests_to_frame, materialise
from transfertune.errors import ConfigurationError, DataValidationError, TransfertuneError


def test_digits_are_images_in_unit_range():
    s = load_source("digits")
    assert s.X.shape == (1797, 1, 8, 8) and s.X.dtype == np.float32
    assert s.y.dtype == np.int64 and s.task_type == "classification"
    assert s.X.min() == 0.0 and s.X.max() == 1.0 and s.data_range == (0.0, 1.0)
    assert s.classes == list(range(10))


@pytest.mark.parametrize("name, task", [("breast_cancer", "classification"), ("wine", "classification"), ("diabetes", "regression")])
def test_tables_are_standardised(name, task):
    s = load_source(name)
    assert s.X.ndim == 2 and s.X.dtype == np.float32 and s.task_type == task
    np.testing.assert_allclose(s.X.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(s.X.std(axis=0), 1.0, atol=1e-3)
    assert (s.y.dtype == np.float32) == (task == "regression")
    assert (s.classes == []) == (task == "regression")


def test_torchvision_without_files_names_folder_and_setting(tmp_path):
    for name in ("mnist", "cifar10"):
        with pytest.raises(TransfertuneError) as err:
            load_source(name, root=str(tmp_path))
        assert str(tmp_path) in str(err.value) and "download" in str(err.value)


def test_cifar_binary_records_are_read_without_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=4, dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    records = np.concatenate([labels[:, None], pixels], axis=1)
    records.tofile(folder / "test_batch.bin")
    (folder / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    s = load_source("cifar10", root=str(tmp_path), split="test")
    assert s.X.shape == (4, 3, 32, 32) and s.classes[3] == "c3"
    np.testing.assert_array_equal(s.y, labels)
    np.testing.assert_allclose(s.X[1, 2].ravel() * 255, pixels[1, 2048:], atol=1e-3)  # blue plane


def test_table_source_and_its_errors(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "colour": ["r", "g", "r", "b"], "target": ["x", "y", "x", "y"]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    s = load_source("table", path=str(path), label_column="target")
    assert s.X.shape == (4, 4) and s.classes == ["x", "y"] and list(s.y) == [0, 1, 0, 1]
    with pytest.raises(DataValidationError, match="label column 'label' is missing"):
        load_source("table", path=str(path), label_column="label")
    with pytest.raises(ConfigurationError, match="label_column"):
        load_source("table", path=str(path))
    frame.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(DataValidationError, match="no rows"):
        load_source("table", path=str(tmp_path / "empty.csv"), label_column="target")


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 5, 3), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    s = load_source("image_folder", path=str(tmp_path), image_size=[4, 4])
    assert s.X.shape == (4, 3, 4, 4) and s.classes == ["cat", "dog"] and list(s.y) == [0, 0, 1, 1]
    assert abs(s.X[3].mean() - 201 / 255) < 1e-3


def test_unknown_source_and_limit():
    with pytest.raises(ConfigurationError, match="unknown source"):
        load_source("imagenet")
    assert len(load_source("wine", limit=10)) == 10


def test_manifest_round_trip_through_parquet(tmp_path):
    s = load_source("digits")
    idx = np.flatnonzero(np.isin(s.y, [7, 3]))[:12]
    m1 = SubsetManifest("digits-class-0", "digits", "class_subset", 3, idx, classes=[7, 3], labels=s.y[idx])
    m2 = SubsetManifest("digits-adv-0", "digits", "adversarial_proxy", 3, [4, 2, 9], perturbation_norm=[0.1, np.inf, np.nan],
                        source_options={"limit": 100})
    frame = manifests_to_frame([m1, m2])
    assert list(frame.columns[:7]) == ["subset_id", "source", "strategy", "seed", "index", "label", "perturbation_norm"]
    assert len(frame) == 15
    frame.to_parquet(tmp_path / "m.parquet")
    back = manifests_from_frame(pd.read_parquet(tmp_path / "m.parquet"))
    assert [b.subset_id for b in back] == ["digits-class-0", "digits-adv-0"]
    np.testing.assert_array_equal(back[0].indices, idx)
    assert back[0].classes == [7, 3] and back[1].classes is None and back[1].source_options == {"limit": 100}
    np.testing.assert_array_equal(back[1].perturbation_norm, [0.1, np.inf, np.nan])
    sub = materialise(back[0], s)
    assert sorted(set(sub.y.tolist())) == [0, 1] and sub.classes == [7, 3]
    np.testing.assert_array_equal(sub.y == 0, s.y[idx] == 7)
    np.testing.assert_array_equal(sub.X, s.X[idx])


def test_materialise_rejects_foreign_or_out_of_range():
    s = load_source("wine")
    with pytest.raises(DataValidationError, match="indexes source"):
        materialise(SubsetManifest("x", "digits", "random_proxy", 0, [1]), s)
    with pytest.raises(DataValidationError, match="outside"):
        materialise(SubsetManifest("x", "wine", "random_proxy", 0, [1, 500]), s)
