"""Target models: output shapes on digits- and CIFAR-sized inputs, adaptation, bad inputs."""

import pytest
import torch

from transfertune.errors import ConfigurationError
from transfertune.training.models import MODELS, build_model, get_model_spec

DIGITS, CIFAR = (1, 8, 8), (3, 32, 32)
OPTIONS = {"resnet": {"depth": 10}, "metahpo_cnn": {"hidden": 256}, "hts_cnn": {}, "mlp": {}, "mlp_sgd": {}}
SIGNAL_MODELS = {"cnn1d"}  # 1-D inputs only: tested below


@pytest.mark.parametrize("name", sorted(set(MODELS) - SIGNAL_MODELS))
@pytest.mark.parametrize("shape, k", [(DIGITS, 5), (CIFAR, 10), ((1, 28, 28), 3), ((3, 3, 5), 2)])
def test_output_shape_for_every_model_and_input(name, shape, k):
    torch.manual_seed(0)
    model = build_model(name, MODELS[name].example, shape, k, OPTIONS[name])
    model.train()  # batch norm in training mode is the case that needs >1 value per channel
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, k)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(40,), (2, 40), (1, 3)])
def test_cnn1d_on_signals_of_any_length_and_channels(shape):
    model = build_model("cnn1d", {**MODELS["cnn1d"].example, "n_layers": 3, "channels": 6}, shape, 4)
    assert model(torch.randn(5, *shape)).shape == (5, 4)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == [6, 6, 6] and convs[0].in_channels == (shape[0] if len(shape) == 2 else 1)
    with pytest.raises(ConfigurationError, match="cnn1d"):
        build_model("cnn1d", MODELS["cnn1d"].example, DIGITS, 4)


def test_mlp_sgd_trains_with_momentum_sgd():
    spec = get_model_spec("mlp_sgd")
    model = build_model("mlp_sgd", spec.example, (13,), 3)
    opt = spec.optimizer({**spec.defaults, **spec.example}, model.parameters())
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == spec.example["momentum"]


def test_mlp_on_tables_and_regression():
    model = build_model("mlp", MODELS["mlp"].example, (13,), 1)
    assert model(torch.randn(7, 13)).shape == (7, 1)
    config = {**MODELS["mlp"].example, "n_layers": 3, "hidden_units": 17}
    linear = [m for m in build_model("mlp", config, (13,), 4).modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [17, 17, 17, 4]


def test_config_values_shape_the_network():
    config = {**MODELS["hts_cnn"].example, "fc1_units": 123, "fc2_units": 321, "dropout3": 0.7}
    model = build_model("hts_cnn", config, CIFAR, 10)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [123, 321, 10]
    # 32x32 -> 3x3 pool (ceil) -> 11x11 -> 2x2 pool (ceil) -> 6x6, 64 channels
    assert linear[0].in_features == 64 * 6 * 6
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)][2] == pytest.approx(0.7)
    convs = [m for m in build_model("metahpo_cnn", {**MODELS["metahpo_cnn"].example, "conv2_channels": 99}, CIFAR, 10, {"hidden": 64}).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 99, 128] and convs[0].kernel_size == (3, 3)


def test_resnet_depths_and_stems():
    small = build_model("resnet", {}, CIFAR, 10, {"depth": 26})
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    blocks = sum(len(layer) for layer in (small.layer1, small.layer2, small.layer3, small.layer4))
    assert blocks == 8 and type(small.layer1[0]).__name__ == "Bottleneck"  # ResNet-26 of seed 000
    large = build_model("resnet", {}, (3, 96, 96), 10, {"depth": 18})
    assert large.conv1.kernel_size == (7, 7) and not isinstance(large.maxpool, torch.nn.Identity)
    assert build_model("resnet", {}, (1, 8, 8), 4, {"depth": 10}).conv1.in_channels == 1


def test_bad_requests_raise_configuration_errors():
    with pytest.raises(ConfigurationError, match="unknown model"):
        get_model_spec("vgg")
    with pytest.raises(ConfigurationError, match="depth 19"):
        build_model("resnet", {}, CIFAR, 10, {"depth": 19})
    with pytest.raises(ConfigurationError, match="use model 'mlp'"):
        build_model("hts_cnn", MODELS["hts_cnn"].example, (13,), 2)
