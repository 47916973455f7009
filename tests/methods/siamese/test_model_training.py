"""The conv-biLSTM wing, the Siamese loss and Algorithm 1."""

import numpy as np
import pytest
import torch

from transfertune.errors import ConfigurationError
from transfertune.methods.siamese.model import SiameseWing, meta_distance, siamese_loss
from transfertune.methods.siamese.training import (
    SiameseSettings,
    check_sizes,
    conform_images,
    embed,
    pairwise_euclidean,
    sample_pairs,
    train_siamese,
)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 1, 1)])
def test_the_wing_adapts_to_the_image_shape(shape):
    torch.manual_seed(0)
    wing = SiameseWing(shape, channels=(4, 6), fc_units=(10, 5), hidden=7)
    m = wing(torch.rand(3, 9, *shape))
    assert m.shape == (3, 14) and wing.dim == 14
    assert sum(isinstance(layer, torch.nn.Conv2d) for layer in wing.modules()) == 2
    assert sum(isinstance(layer, torch.nn.Linear) for layer in wing.cnn.modules()) == 2
    with pytest.raises(ConfigurationError, match="expects"):
        wing(torch.rand(3, 9, 1, 5, 5))


def test_a_signal_is_a_one_row_image_with_one_row_kernels_and_pools():
    torch.manual_seed(0)
    wing = SiameseWing((1, 1, 40), channels=(4, 6), fc_units=(10, 5), hidden=7)
    convs = [layer for layer in wing.modules() if isinstance(layer, torch.nn.Conv2d)]
    pools = [layer for layer in wing.modules() if isinstance(layer, torch.nn.MaxPool2d)]
    assert [c.kernel_size for c in convs] == [(1, 3), (1, 3)] and [c.padding for c in convs] == [(0, 1), (0, 1)]
    assert [p.kernel_size for p in pools] == [(1, 2), (1, 2)]
    assert wing.cnn.fc[1].in_features == 6 * 1 * 10  # 40 -> 20 -> 10 along the signal
    assert wing(torch.rand(2, 9, 1, 1, 40)).shape == (2, 14)
    square = SiameseWing((1, 8, 8), channels=(4, 6), fc_units=(10, 5), hidden=7)
    assert [c.kernel_size for c in square.modules() if isinstance(c, torch.nn.Conv2d)] == [(3, 3), (3, 3)]


def test_the_meta_feature_is_the_final_forward_and_first_backward_hidden_state():
    torch.manual_seed(0)
    wing = SiameseWing((1, 8, 8), channels=(2, 3), fc_units=(6, 4), hidden=5)
    images = torch.rand(2, 7, 1, 8, 8)
    m = wing(images)
    features = wing.cnn(images.reshape(14, 1, 8, 8)).reshape(2, 7, -1)
    forward = torch.nn.LSTM(4, 5, batch_first=True)
    backward = torch.nn.LSTM(4, 5, batch_first=True)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        getattr(forward, name).data = getattr(wing.lstm, name).data
        getattr(backward, name).data = getattr(wing.lstm, name + "_reverse").data
    _, (h_f, _) = forward(features)
    _, (h_b, _) = backward(torch.flip(features, dims=[1]))
    torch.testing.assert_close(m[:, :5], h_f[0])
    torch.testing.assert_close(m[:, 5:], h_b[0])
    # the two wings share their weights: one dataset is at distance ~0 from itself
    with torch.no_grad():
        assert float(meta_distance(wing(images), wing(images)).max()) < 1e-5


def test_loss_is_the_mean_squared_gap_between_target_and_euclidean_distance():
    m_i = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    m_j = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    d = torch.tensor([2.0, 3.0])
    torch.testing.assert_close(meta_distance(m_i, m_j), torch.tensor([5.0, 1.0]))
    assert float(siamese_loss(d, m_i, m_j)) == pytest.approx(((2 - 5) ** 2 + (3 - 1) ** 2) / 2, rel=1e-6)
    same = torch.zeros(1, 2, requires_grad=True)
    siamese_loss(torch.tensor([1.0]), same, same.detach()).backward()
    assert torch.isfinite(same.grad).all()  # no NaN gradient where two meta-features coincide


def test_pairs_are_distinct_and_ordered():
    pairs = sample_pairs(5, 10, torch.Generator().manual_seed(0))
    assert len({tuple(p) for p in pairs}) == 10 and (pairs[:, 0] < pairs[:, 1]).all()
    with pytest.raises(ConfigurationError, match="beta=11 .* only 10 pairs; lower siamese.network.beta"):
        sample_pairs(5, 11, torch.Generator())


def test_bad_inputs_name_the_dataset():
    with pytest.raises(ConfigurationError, match="dataset 'small' has 3 images, fewer than tau=4 .*; lower siamese.network.tau"):
        check_sizes({"big": np.zeros((9, 1, 2, 2)), "small": np.zeros((3, 1, 2, 2))}, 4)
    with pytest.raises(ConfigurationError, match=r"dataset 'b' has images of shape \(1, 28, 28\) but 'a' has \(1, 8, 8\); set siamese.network.image_shape"):
        conform_images({"a": np.zeros((2, 1, 8, 8)), "b": np.zeros((2, 1, 28, 28))})
    with pytest.raises(ConfigurationError, match="tau"):
        train_siamese([np.zeros((9, 1, 4, 4)), np.zeros((3, 1, 4, 4))], np.zeros((2, 2)), SiameseSettings(tau=4, iterations=1), ["a", "b"])
    with pytest.raises(ConfigurationError, match="positive integer"):
        SiameseSettings(beta=0)


def test_conform_images_resizes_and_maps_channels():
    out = conform_images({"grey": np.ones((2, 1, 8, 8)), "colour": np.full((3, 3, 32, 32), 0.5)}, (3, 16, 16))
    assert out["grey"].shape == (2, 3, 16, 16) and out["colour"].shape == (3, 3, 16, 16)
    np.testing.assert_allclose(out["grey"], 1.0, atol=1e-6)
    assert conform_images({"c": np.full((1, 3, 4, 4), 0.3)}, (1, 4, 4))["c"].shape == (1, 1, 4, 4)


def test_algorithm_1_learns_distances_that_rank_like_the_targets():
    rng = np.random.default_rng(0)
    levels = np.linspace(0.0, 1.0, 6)
    images = [np.clip(level + 0.05 * rng.normal(size=(40, 1, 4, 4)), 0, 1).astype(np.float32) for level in levels]
    target = np.abs(levels[:, None] - levels[None, :])
    settings = SiameseSettings(beta=6, tau=8, iterations=150, lr=1e-2, channels=(4, 4), fc_units=(8, 8), hidden=4, draws=2, seed=0, device="cpu")
    result = train_siamese(images, target, settings)
    assert result.losses.shape == (150,) and result.losses[-20:].mean() < 0.3 * result.losses[:20].mean()
    m = np.stack([embed(result.model, x, 8, 4, seed=1) for x in images])
    learned = pairwise_euclidean(m, m)
    upper = np.triu_indices(6, 1)
    from scipy.stats import spearmanr

    assert spearmanr(learned[upper], target[upper]).statistic > 0.8
    np.testing.assert_allclose(embed(result.model, images[0], 8, 4, seed=1), m[0])  # seeded draws
