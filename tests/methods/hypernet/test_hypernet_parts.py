"""Target model, L2 parametrisations, hypernet and data split: shapes, layout, gradients."""

import pytest
import torch
import torch.nn.functional as F

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet import (
    DatasetNotFoundError,
    HyperNet,
    L2Hyperparameters,
    LogisticRegression,
    load_split,
)


def test_logistic_regression_shapes_and_loss_match_torch(target, digits):
    assert target.n_weights == 650
    assert LogisticRegression(784, 10).n_weights == 7850  # the paper's MNIST model
    torch.manual_seed(0)
    w = torch.randn(3, target.n_weights)
    x, y = digits.x_val, digits.y_val
    assert target.logits(x, w).shape == (3, len(y), 10)
    assert target.logits(x, w[0]).shape == (len(y), 10)
    losses = target.data_loss(x, y, w)
    assert losses.shape == (3,)
    matrix, bias = target.split(w[1])
    assert torch.allclose(losses[1], F.cross_entropy(x @ matrix + bias, y), atol=1e-5)
    assert target.error(x, y, w).shape == (3,)


def test_class_index_follows_the_weight_layout(target):
    w = torch.arange(target.n_weights, dtype=torch.float32)
    matrix, bias = target.split(w)
    idx = target.class_index()
    for c in range(10):
        expected = torch.cat([matrix[:, c], bias[c : c + 1]])
        assert torch.equal(torch.sort(w[idx == c]).values, torch.sort(expected).values)


@pytest.mark.parametrize("size, dim", [("global", 1), ("per_class", 10), ("per_weight", 650)])
def test_penalty_at_three_sizes(target, size, dim):
    hp = L2Hyperparameters(size, target)
    assert hp.dim == dim
    torch.manual_seed(1)
    w = torch.randn(4, target.n_weights)
    lam = torch.randn(4, dim)
    pen = hp.penalty(w, lam)
    assert pen.shape == (4,)
    matrix, bias = target.split(w[2])
    if size == "global":
        expected = lam[2, 0].exp() * w[2].pow(2).sum()
    elif size == "per_class":
        expected = sum(lam[2, c].exp() * (matrix[:, c].pow(2).sum() + bias[c] ** 2) for c in range(10))
    else:
        expected = (lam[2].exp() * w[2].pow(2)).sum()
    assert torch.allclose(pen[2], expected, rtol=1e-5)


def test_unknown_size_is_a_user_error(target):
    with pytest.raises(ConfigurationError, match="per_weight"):
        L2Hyperparameters("per_layer", target)


def test_hypernet_output_shapes_and_gradient_reaches_lambda(target, digits):
    hp = L2Hyperparameters("per_class", target)
    torch.manual_seed(0)
    net = HyperNet(hp.dim, target.n_weights, hidden=8, center=-7.0, scale=7.0)
    assert net(torch.zeros(5, 10)).shape == (5, 650) and net(torch.zeros(10)).shape == (650,)
    torch.nn.init.normal_(net.head.weight, std=0.1)  # the zero init would make w independent of lambda
    lam = torch.full((10,), -5.0, requires_grad=True)
    loss = target.data_loss(digits.x_val, digits.y_val, net(lam))
    (grad,) = torch.autograd.grad(loss, lam)
    assert grad.abs().sum() > 0
    # the gradient is the true derivative of lambda -> L_val(w_phi(lambda)) (central differences)
    eps, k = 1e-2, 3
    with torch.no_grad():
        step = torch.zeros(10)
        step[k] = eps
        up = target.data_loss(digits.x_val, digits.y_val, net(lam + step))
        down = target.data_loss(digits.x_val, digits.y_val, net(lam - step))
    assert torch.isclose(grad[k], (up - down) / (2 * eps), rtol=2e-2, atol=1e-5)


def test_digits_split_is_stratified_and_sized(digits):
    assert digits.sizes() == {"n_train": 50, "n_val": 100, "n_test": 200}
    assert set(digits.y_train.tolist()) == set(range(10))
    assert digits.x_train.shape == (50, 64) and 0 <= float(digits.x_train.min()) and float(digits.x_train.max()) <= 1


def test_missing_mnist_names_the_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
        load_split("mnist", mnist_root=tmp_path)


@pytest.mark.parametrize("kwargs, message", [({"dataset": "cifar"}, "unknown"), ({"n_train": 1700}, "lower n_train")])
def test_bad_split_parameters(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        load_split(**kwargs)


def _write_idx(path, array):
    """An uncompressed idx file as MNIST ships it (uint8 data, big-endian int32 header)."""
    import numpy as np

    header = np.array([0x0800 + array.ndim, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_a_local_torchvision_folder_gives_the_papers_7850_weights(tmp_path):
    import numpy as np

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    split = load_split("mnist", n_train=30, n_val=20, n_test=None, mnist_root=tmp_path)
    assert split.sizes() == {"n_train": 30, "n_val": 20, "n_test": 40}  # test = MNIST's own test set
    assert split.n_features == 784 and float(split.x_train.max()) <= 1.0
    target = LogisticRegression(split.n_features, split.n_classes)
    hp = L2Hyperparameters("per_weight", target)
    assert hp.dim == target.n_weights == 7850
    net = HyperNet(1, target.n_weights, hidden=4)  # a per-weight linear hypernet would hold 7850^2 floats
    assert target.data_loss(split.x_val, split.y_val, net(torch.tensor([-5.0]))).shape == ()
