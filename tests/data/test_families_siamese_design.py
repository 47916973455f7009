"""The dataset family: corruptions, label flips, the factorial design and the held-out split."""

import numpy as np
import pytest

from transfertune.errors import ConfigurationError
from transfertune.data.families import FamilyDesign, corrupt, flip_labels, split_family
from transfertune.data.families import build_design_family as build_family


def test_gaussian_noise_has_the_given_spread_and_stays_in_the_data_range():
    images = np.full((200, 1, 8, 8), 0.5, dtype=np.float32)
    out = corrupt(images, "gaussian_noise", np.random.default_rng(0), std=0.1)
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert abs(float((out - images).std()) - 0.1) < 0.005 and abs(float((out - images).mean())) < 0.005
    clipped = corrupt(images, "gaussian_noise", np.random.default_rng(0), std=5.0)
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    np.testing.assert_array_equal(images, 0.5)  # the input is not changed


def test_occlusion_blanks_one_square_of_the_given_side_per_image():
    images = np.ones((50, 3, 8, 8), dtype=np.float32)
    out = corrupt(images, "occlusion", np.random.default_rng(1), size=0.5)
    blanked = (out == 0).reshape(50, 3, -1).sum(axis=2)
    assert (blanked == 16).all()  # a 4 x 4 square in every channel of every image
    assert len({tuple(np.argwhere(o[0] == 0)[0]) for o in out}) > 1  # at random places
    np.testing.assert_array_equal(corrupt(images, "none", np.random.default_rng(0)), images)
    with pytest.raises(ConfigurationError, match="unknown corruption 'blur'"):
        corrupt(images, "blur", np.random.default_rng(0))


def test_flip_labels_changes_exactly_the_share_asked_and_only_to_other_classes():
    y = np.repeat(np.arange(5), 40)
    out = flip_labels(y, 0.3, 5, np.random.default_rng(0))
    assert (out != y).sum() == 60 and out.min() >= 0 and out.max() <= 4
    np.testing.assert_array_equal(flip_labels(y, 0.0, 5, np.random.default_rng(0)), y)


def test_every_combination_appears_once_when_the_family_has_one_member_per_row():
    design = FamilyDesign(n_datasets=12, sizes=(20, 40), label_noise=(0.0, 0.5), corruptions=("none", "gaussian_noise", "occlusion"))
    members = build_family(design)
    combos = {(m.spec["n_per_class"], m.spec["label_noise"], m.spec["corruption"]) for m in members}
    assert len(combos) == 12 and len({m.name for m in members}) == 12
    assert len({tuple(m.spec["classes"]) for m in members}) == 12  # distinct class sets
    for m in members:
        n = m.spec["n_per_class"]
        assert len(m.task.y_train) + len(m.task.y_val) == 5 * n and np.bincount(m.task.y_val).tolist() == [round(0.3 * n)] * 5
        assert m.images.shape == (len(m.task.y_train), 1, 8, 8) and 0.0 <= m.images.min() and m.images.max() <= 1.0
        # the wing sees the training part of the task, before standardisation
        standardised = (m.images - m.images.mean()) / m.images.std()
        np.testing.assert_allclose(standardised, m.task.X_train, atol=1e-4)


def test_label_noise_reaches_training_labels_only():
    clean, noisy = (build_family(FamilyDesign(n_datasets=2, sizes=(40,), label_noise=(f,), corruptions=("none",)))[0] for f in (0.0, 0.5))
    assert clean.spec["classes"] == noisy.spec["classes"]
    np.testing.assert_array_equal(clean.task.y_val, noisy.task.y_val)
    assert (clean.task.y_train != noisy.task.y_train).sum() == round(0.5 * len(clean.task.y_train))


def test_bad_designs_name_what_is_wrong():
    with pytest.raises(ConfigurationError, match=r"digits-cls-s0-000 has \d+ examples in its smallest class, fewer than size 500"):
        build_family(FamilyDesign(n_datasets=2, sizes=(500,)))
    with pytest.raises(ConfigurationError, match="corruptions"):
        build_family(FamilyDesign(corruptions=("fog",)))
    with pytest.raises(ConfigurationError, match="label_noise"):
        build_family(FamilyDesign(label_noise=(1.0,)))
    with pytest.raises(ConfigurationError, match="image classification"):
        build_family(FamilyDesign(source="wine", n_classes=2, n_datasets=2))


def test_split_family_holds_out_the_asked_number_reproducibly():
    members = build_family(FamilyDesign(n_datasets=6, sizes=(20,), label_noise=(0.0,), corruptions=("none",)))
    train, held = split_family(members, 2, seed=3)
    assert len(train) == 4 and len(held) == 2 and not {m.name for m in train} & {m.name for m in held}
    assert [m.name for m in split_family(members, 2, seed=3)[1]] == [m.name for m in held]
    with pytest.raises(ConfigurationError, match="n_heldout must be in 1..4"):
        split_family(members, 5, seed=0)


def test_a_missing_torchvision_source_is_one_line_naming_the_folder(tmp_path):
    with pytest.raises(ConfigurationError, match=f"family source 'mnist': .*{tmp_path}.*siamese.family.root"):
        build_family(FamilyDesign(source="mnist", n_datasets=2), root=str(tmp_path))
