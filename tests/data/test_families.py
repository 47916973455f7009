"""Task families (issue 27): every factor acts as stated; bad input gives one line naming it."""

from __future__ import annotations

import numpy as np
import pytest

from transfertune.data.families import FamilySpec, FamilyTask, build_family, family_names, get_family, load_base, spec_from_params
from transfertune.errors import ConfigurationError


def _spec(**factors) -> FamilySpec:
    return FamilySpec(name="t", base="make_classification", factors=factors, n_tasks=2, n_val=100,
                      base_options={"n_samples": 1500, "n_features": 10, "n_informative": 5, "n_redundant": 0, "n_classes": 4})


def _one(**levels) -> FamilyTask:
    return build_family(_spec(**{k: [v] for k, v in levels.items()}), n_tasks=1, seed=0)[0]


def test_presets_build_and_names_are_unique():
    assert {"mnist1d_mlp", "tabular_mlp", "digits_mlp"} <= set(family_names())
    for name in family_names():
        spec = get_family(name)
        tasks = build_family(spec, n_tasks=3, seed=1)
        assert len({t.name for t in tasks}) == 3
        assert all(set(t.factors) == set(spec.factors) for t in tasks)
        assert all(len(t.raw_train) == len(t.task.y_train) for t in tasks)


def test_n_train_sets_the_training_count_and_n_val_the_validation_count():
    small, large = _one(n_train=40), _one(n_train=400)
    assert len(small.task.y_train) == 40 and len(large.task.y_train) == 400
    assert len(small.task.y_val) == len(large.task.y_val) == 100


def test_label_noise_flips_the_stated_share_of_training_labels_only():
    clean, noisy = _one(n_train=400), _one(n_train=400, label_noise=0.25)
    # same seed, same draws up to the flip: the inputs and validation labels are identical
    np.testing.assert_array_equal(clean.task.X_train, noisy.task.X_train)
    np.testing.assert_array_equal(clean.task.y_val, noisy.task.y_val)
    assert np.mean(clean.task.y_train != noisy.task.y_train) == pytest.approx(0.25)


def test_input_scale_multiplies_what_the_model_and_the_raw_view_see():
    one, ten = _one(n_train=100), _one(n_train=100, input_scale=10.0)
    np.testing.assert_allclose(ten.task.X_train, 10 * one.task.X_train, rtol=1e-5)
    np.testing.assert_allclose(ten.raw_train, 10 * one.raw_train, rtol=1e-5)
    assert one.task.X_train.std(0) == pytest.approx(np.ones(10), abs=1e-4)


def test_class_imbalance_sets_largest_over_smallest_class():
    t = _one(n_train=300, class_imbalance=4.0)
    counts = np.bincount(t.task.y_train, minlength=4)
    assert counts.sum() == 300 and counts.max() / counts.min() == pytest.approx(4.0, rel=0.1)
    assert np.ptp(np.bincount(_one(n_train=300).task.y_train)) <= 1


def test_n_classes_draws_a_class_subset():
    t = _one(n_classes=2)
    assert t.task.n_classes == 2 and set(np.unique(t.task.y_val)) == {0, 1} and len(t.task.meta["classes"]) == 2


def test_feature_noise_adds_noise_of_the_stated_sd():
    clean, noisy = _one(n_train=400), _one(n_train=400, feature_noise=1.0)
    base_sd = load_base("make_classification", _spec().base_options)[2]
    diff = noisy.raw_train - clean.raw_train
    assert diff.mean() == pytest.approx(0.0, abs=0.02 * base_sd)
    assert diff.std() == pytest.approx(base_sd, rel=0.03)


def test_occlusion_blanks_a_segment_of_each_signal():
    spec = FamilySpec(name="s", base="mnist1d", factors={"corruption": ["occlusion"]}, n_val=50, occlusion_size=0.25,
                      base_options={"num_samples": 400})
    t = build_family(spec, n_tasks=1)[0]
    zero_runs = [(row == 0).sum() for row in t.raw_train]
    assert min(zero_runs) >= 10  # 0.25 x 40 samples per signal


@pytest.mark.parametrize(
    "spec, words",
    [
        (FamilySpec(name="x", base="nope"), ["unknown base", "'nope'"]),
        (FamilySpec(name="x", base="wine", factors={"colour": [1]}), ["unknown factor", "'colour'"]),
        (FamilySpec(name="x", base="wine", factors={"label_noise": [1.5]}), ["impossible level", "label_noise"]),
        (FamilySpec(name="x", base="wine", factors={"n_classes": [7]}, n_val=30), ["impossible level", "n_classes"]),
        (FamilySpec(name="x", base="wine", factors={"n_train": [500]}, n_val=30), ["impossible level", "n_train"]),
        (FamilySpec(name="x", base="wine", factors={"corruption": ["blur"]}), ["impossible level", "corruption"]),
    ],
)
def test_bad_input_is_one_line_naming_it(spec, words):
    with pytest.raises(ConfigurationError) as err:
        build_family(spec, n_tasks=1)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words)


def test_unknown_preset_and_override():
    with pytest.raises(ConfigurationError, match="unknown task family 'zzz'"):
        get_family("zzz")
    spec = spec_from_params({"preset": "tabular_mlp", "n_tasks": 5})
    assert spec.n_tasks == 5 and spec.base == "make_classification"
    with pytest.raises(ConfigurationError, match="unknown field"):
        spec_from_params({"preset": "tabular_mlp", "colour": 1})
