"""Hand-crafted meta-features: each statistic by hand, and the z-scoring."""

import numpy as np
import pytest

from transfertune.methods.siamese.handcrafted import STATISTICS, HandcraftedMetaFeatures, statistics


def test_each_statistic_against_a_hand_computation():
    images = np.array([[[[0.0, 1.0]]], [[[1.0, 1.0]]], [[[0.0, 1.0]]], [[[1.0, 1.0]]]])  # (4, 1, 1, 2): feature 2 constant
    labels = np.array([0, 0, 0, 1])
    s = dict(zip(STATISTICS, statistics(images, labels)))
    assert s["log_n"] == pytest.approx(np.log(4)) and s["n_classes"] == 2
    assert s["class_entropy"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert s["pixel_mean"] == pytest.approx(6 / 8) and s["pixel_std"] == pytest.approx(np.std([0, 1, 1, 1, 0, 1, 1, 1]))
    assert s["feature_std"] == pytest.approx((0.5 + 0.0) / 2)
    # only the varying feature: z = +-1, so skewness 0 and excess kurtosis 1 - 3
    assert s["feature_skewness"] == pytest.approx(0.0) and s["feature_kurtosis"] == pytest.approx(-2.0)


def test_z_scoring_uses_the_training_datasets_and_only_centres_a_constant_statistic():
    stats = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = HandcraftedMetaFeatures().fit(stats)
    np.testing.assert_allclose(scaler.transform(stats), [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(scaler.transform(np.array([[5.0, 7.0]])), [[3.0, 2.0]])
