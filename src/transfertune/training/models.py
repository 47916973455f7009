"""Target models of the train stage, each with its training recipe.

Every model adapts to the input it is given: ``input_shape`` is ``(C, H, W)`` for images or
``(F,)`` for tables, ``n_outputs`` is the class count (1 for regression). Layer sizes that depend
on the input (the first fully connected layer of a CNN) are found by a dry forward pass on a zero
tensor at construction, so any image size of at least 1x1 works.

A :class:`ModelSpec` bundles what a trial needs besides the data: how to build the network from
a config, the optimizer and learning-rate schedule, the batch size, and which search space
(``conf/base/spaces/<space>.yml``) the configs come from. Settings that a space does not tune
come from ``ModelSpec.defaults`` and can be overridden per run (``fixed`` in :func:`resolve_settings`).

Kedro-free and importable with torch alone (torchvision only for the ResNet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from transfertune.errors import ConfigurationError

# ---------------------------------------------------------------------- helpers


def _flat_features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Size of ``features(x).flatten(1)`` for one sample of ``input_shape`` (dry run, no grad)."""
    was_training = features.training
    features.eval()  # batch norm must not update running stats on the dummy tensor
    with torch.no_grad():
        out = features(torch.zeros(1, *input_shape))
    features.train(was_training)
    return int(out.flatten(1).shape[1])


def _image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigurationError(
            f"model '{model}' needs image inputs shaped (C, H, W), got {tuple(input_shape)}; "
            "use model 'mlp' for tabular data"
        )
    return int(input_shape[0]), int(input_shape[1]), int(input_shape[2])


# ---------------------------------------------------------------------- HTS CNN (seed 001)


class HTSCNN(nn.Module):
    """The HTS paper's CNN (seed 001, appendix A.2).

    Two conv blocks (conv -> batch norm -> ReLU -> dropout -> max pool): 32 filters 5x5 with a 3x3
    pool, then 64 filters 3x3 with a 2x2 pool; two fully connected blocks (FC -> ReLU -> dropout)
    of ``fc1_units`` and ``fc2_units``; a linear output layer.

    Choices where the paper is silent: "same" padding so small inputs (8x8 digits) keep their
    size through the convolutions; pools with stride = kernel and ``ceil_mode=True`` so a map
    smaller than the pool still gives one output; element-wise dropout (Torch7 ``nn.Dropout``).

    Shapes: ``(B, C, H, W) -> (B, n_outputs)``.
    """

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, config: Mapping[str, Any]) -> None:
        super().__init__()
        channels, _, _ = _image_shape(input_shape, "hts_cnn")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=5, padding=2),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Dropout(float(config["dropout1"])),
            nn.MaxPool2d(3, ceil_mode=True),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Dropout(float(config["dropout2"])),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        fc1, fc2 = int(config["fc1_units"]), int(config["fc2_units"])
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_flat_features(self.features, tuple(input_shape)), fc1),
            nn.ReLU(inplace=True),
            nn.Dropout(float(config["dropout3"])),
            nn.Linear(fc1, fc2),
            nn.ReLU(inplace=True),
            nn.Dropout(float(config["dropout4"])),
            nn.Linear(fc2, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---------------------------------------------------------------------- Meta-HPO CNN (seed 003)


class MetaHPOCNN(nn.Module):
    """Meta-HPO's three-layer CNN (seed 003, section 4.1): 3x3 convolutions with tuned channel
    counts, then fully connected layers ``2048 -> 2048 -> n_outputs``.

    Choices where the paper is silent: each conv is followed by ReLU and a 2x2 max pool
    (``ceil_mode=True`` so tiny inputs stay valid), padding 1, no batch norm; ReLU between the
    fully connected layers. ``hidden`` (default 2048) is a model option so tests can shrink it.

    Shapes: ``(B, C, H, W) -> (B, n_outputs)``.
    """

    def __init__(
        self, input_shape: tuple[int, ...], n_outputs: int, config: Mapping[str, Any], hidden: int = 2048
    ) -> None:
        super().__init__()
        channels, _, _ = _image_shape(input_shape, "metahpo_cnn")
        layers: list[nn.Module] = []
        c_in = channels
        for key in ("conv1_channels", "conv2_channels", "conv3_channels"):
            c_out = int(config[key])
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_flat_features(self.features, tuple(input_shape)), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---------------------------------------------------------------------- ResNet (seed 000)

# depth -> (block, layers). 26 is seed 000's ResNet-26: bottleneck blocks [2, 2, 2, 2]
# (8 blocks x 3 convs + stem + fc = 26 weight layers); the others are torchvision's.
RESNET_DEPTHS: dict[int, tuple[str, list[int]]] = {
    10: ("basic", [1, 1, 1, 1]),
    18: ("basic", [2, 2, 2, 2]),
    26: ("bottleneck", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
}


def build_resnet(input_shape: tuple[int, ...], n_outputs: int, depth: int = 26, small_input_max: int = 64) -> nn.Module:
    """A torchvision ResNet of ``depth`` adapted to ``(C, H, W)`` inputs.

    The stem takes ``C`` channels. For inputs no larger than ``small_input_max`` pixels a side
    (digits, CIFAR), the ImageNet stem (7x7 stride-2 conv + max pool, a 4x downsampling) is
    replaced by a 3x3 stride-1 conv without pooling, as in He et al.'s CIFAR ResNets; the
    adaptive average pool makes any remaining size valid. Shapes: ``(B, C, H, W) -> (B, n_outputs)``.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    channels, height, width = _image_shape(input_shape, "resnet")
    if int(depth) not in RESNET_DEPTHS:
        raise ConfigurationError(f"resnet depth {depth} is not supported; choose one of {sorted(RESNET_DEPTHS)}")
    kind, layers = RESNET_DEPTHS[int(depth)]
    model = ResNet(BasicBlock if kind == "basic" else Bottleneck, layers, num_classes=n_outputs)
    if max(height, width) <= small_input_max:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


# ---------------------------------------------------------------------- MLP (tables)


class MLP(nn.Module):
    """Fully connected net for tables: ``n_layers`` x (Linear -> ReLU -> Dropout) then Linear.

    Image inputs are flattened, so it also runs on images. Shapes: ``(B, *input_shape) -> (B, n_outputs)``.
    """

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, config: Mapping[str, Any]) -> None:
        super().__init__()
        n_in = 1
        for d in input_shape:
            n_in *= int(d)
        width, depth, p = int(config["hidden_units"]), int(config["n_layers"]), float(config["dropout"])
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU(inplace=True), nn.Dropout(p)]
            n_in = width
        layers.append(nn.Linear(n_in, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------- recipes


def _sgd(settings: Mapping[str, Any], params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=float(settings["lr"]),
        momentum=float(settings.get("momentum", 0.0)),
        weight_decay=float(settings.get("weight_decay", 0.0)),
    )


def _adam(settings: Mapping[str, Any], params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=float(settings["lr"]), weight_decay=float(settings.get("weight_decay", 0.0)))


def _step_lr(settings: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch step decay. Independent of the total epoch count on purpose: the metric at
    epoch e must not depend on how many epochs the catalog trains (it is a fidelity axis)."""
    step = int(settings.get("lr_step_epochs", 0))
    if step <= 0:
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=float(settings.get("lr_gamma", 0.1)))


@dataclass(frozen=True)
class ModelSpec:
    """A target model and its training recipe.

    Attributes:
        name: registry key (``model`` parameter).
        space: stem of the default space YAML in ``conf/base/spaces``.
        build: ``(input_shape, n_outputs, settings, options) -> nn.Module``.
        optimizer: ``(settings, parameters) -> Optimizer``.
        scheduler: ``(settings, optimizer) -> LRScheduler | None``, stepped once per epoch.
        defaults: settings the space does not tune (batch size, momentum, ...).
        example: one reasonable config of the space (smoke tests and GPU benchmarks without
            ConfigSpace); catalogs always train configs sampled from the space.
        inputs: ``image``, ``table`` or ``any``.
    """

    name: str
    space: str
    build: Callable[[tuple[int, ...], int, Mapping[str, Any], Mapping[str, Any]], nn.Module]
    optimizer: Callable[[Mapping[str, Any], Iterable[nn.Parameter]], torch.optim.Optimizer]
    scheduler: Callable[[Mapping[str, Any], torch.optim.Optimizer], Any] = lambda settings, opt: None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    example: Mapping[str, Any] = field(default_factory=dict)
    inputs: str = "image"


MODELS: dict[str, ModelSpec] = {
    "hts_cnn": ModelSpec(
        name="hts_cnn",
        space="hts_cnn",
        build=lambda shape, k, s, o: HTSCNN(shape, k, s),
        optimizer=_sgd,
        # Seed 001 tunes neither batch size nor weight decay: 64 and 0 are this project's choice.
        defaults={"batch_size": 64, "weight_decay": 0.0},
        example={"lr": 0.05, "momentum": 0.9, "dropout1": 0.1, "dropout2": 0.1, "dropout3": 0.3,
                 "dropout4": 0.3, "fc1_units": 256, "fc2_units": 256},
    ),
    "metahpo_cnn": ModelSpec(
        name="metahpo_cnn",
        space="metahpo_cnn",
        build=lambda shape, k, s, o: MetaHPOCNN(shape, k, s, hidden=int(o.get("hidden", 2048))),
        optimizer=_adam,
        defaults={"weight_decay": 0.0},
        example={"conv1_channels": 32, "conv2_channels": 64, "conv3_channels": 128, "batch_size": 128, "lr": 1e-3},
    ),
    "resnet": ModelSpec(
        name="resnet",
        space="resnet",
        build=lambda shape, k, s, o: build_resnet(shape, k, depth=int(o.get("depth", 26))),
        optimizer=_sgd,
        scheduler=_step_lr,
        # Seed 000 tunes only batch size and initial lr; the rest is the He et al. recipe.
        defaults={"momentum": 0.9, "weight_decay": 5e-4, "lr_step_epochs": 30, "lr_gamma": 0.1},
        example={"batch_size": 64, "lr": 0.05},
    ),
    "mlp": ModelSpec(
        name="mlp",
        space="mlp",
        build=lambda shape, k, s, o: MLP(shape, k, s),
        optimizer=_adam,
        defaults={},
        example={"hidden_units": 128, "n_layers": 2, "dropout": 0.1, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-5},
        inputs="any",
    ),
    # The MLP trained by SGD with momentum (task families, issue 27): SGD's good learning rates
    # depend on the input scale, batch size and momentum together, so its optimum moves between
    # tasks more than Adam's, and random configs diverge or stall more often (headroom).
    "mlp_sgd": ModelSpec(
        name="mlp_sgd",
        space="mlp_sgd",
        build=lambda shape, k, s, o: MLP(shape, k, s),
        optimizer=_sgd,
        defaults={"momentum": 0.9, "weight_decay": 0.0, "n_layers": 2},
        example={"hidden_units": 64, "n_layers": 2, "dropout": 0.1, "batch_size": 32, "lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4},
        inputs="any",
    ),
}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigurationError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def resolve_settings(spec: ModelSpec, config: Mapping[str, Any], fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a trial uses: model defaults, overridden by ``fixed``, overridden by the config."""
    return {**spec.defaults, **dict(fixed or {}), **dict(config)}


def build_model(
    name: str,
    config: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_outputs: int,
    options: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build model ``name`` for ``input_shape`` and ``n_outputs`` from a config of its space."""
    spec = get_model_spec(name)
    if n_outputs < 1:
        raise ConfigurationError(f"n_outputs must be >= 1, got {n_outputs}")
    return spec.build(tuple(int(d) for d in input_shape), int(n_outputs), resolve_settings(spec, config, fixed), dict(options or {}))
