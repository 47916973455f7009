"""The Siamese convolutional bi-directional LSTM of seed 000, section 3 (Figure 1).

A *wing* maps a dataset of tau images to a meta-feature vector::

    images (B, tau, C, H, W)
      -> CNN on each image: conv 3x3 -> ReLU -> max pool 2 -> conv 3x3 -> ReLU -> max pool 2
                            -> FC -> ReLU -> FC -> ReLU          (two conv + two FC layers)
      -> features (B, tau, F)
      -> bi-directional LSTM over the tau images
      -> m = [h_forward(tau); h_backward(1)]                     (B, 2 * hidden)

Both wings of the Siamese network are this one module (shared weights); the learned distance of
two datasets is ``||m_i - m_j||_2``. The first FC layer's width comes from a dry forward pass at
construction, so 8x8 grey digits, 28x28 MNIST and 32x32 colour images all work (``ceil_mode``
pools keep maps of 1 pixel valid). A 1-D signal of length L is a ``1 x L`` image: along a side of
one pixel the kernels and pools have size 1 (``1 x 3`` convolutions, ``1 x 2`` pools), so no
weight multiplies padding only and L halves twice (MNIST-1D: 40 -> 20 -> 10).

Choices where the paper is silent: 3x3 convolutions with padding 1 and 2x2 max pools, the widths
below, ReLU after both FC layers, and the meta-feature as the two directions' final hidden
states (no projection after the LSTM).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transfertune.errors import ConfigurationError


class ImageCNN(nn.Module):
    """Two conv + two FC layers. Shapes: ``(N, C, H, W) -> (N, fc_units[1])``."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (16, 32), fc_units: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        if len(image_shape) != 3 or min(int(s) for s in image_shape) < 1:
            raise ConfigurationError(f"the Siamese wing needs images shaped (C, H, W), got {tuple(image_shape)}")
        if len(channels) != 2 or len(fc_units) != 2:
            raise ConfigurationError(f"the wing has two conv and two FC layers: give two channels and two fc_units, got {list(channels)}, {list(fc_units)}")
        c, h, w = (int(s) for s in image_shape)
        kernel = (3 if h > 1 else 1, 3 if w > 1 else 1)
        padding = (kernel[0] // 2, kernel[1] // 2)
        pool = (2 if h > 1 else 1, 2 if w > 1 else 1)
        self.conv = nn.Sequential(
            nn.Conv2d(c, int(channels[0]), kernel, padding=padding), nn.ReLU(), nn.MaxPool2d(pool, ceil_mode=True),
            nn.Conv2d(int(channels[0]), int(channels[1]), kernel, padding=padding), nn.ReLU(), nn.MaxPool2d(pool, ceil_mode=True),
        )
        with torch.no_grad():
            flat = int(self.conv(torch.zeros(1, *[int(s) for s in image_shape])).flatten(1).shape[1])
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, int(fc_units[0])), nn.ReLU(), nn.Linear(int(fc_units[0]), int(fc_units[1])), nn.ReLU())
        self.image_shape = tuple(int(s) for s in image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class SiameseWing(nn.Module):
    """CNN per image, then a bi-directional LSTM over the dataset's images.

    Shapes: ``(B, tau, C, H, W) -> (B, 2 * hidden)``.
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (16, 32), fc_units: Sequence[int] = (64, 32), hidden: int = 32) -> None:
        super().__init__()
        self.cnn = ImageCNN(image_shape, channels, fc_units)
        self.lstm = nn.LSTM(int(fc_units[1]), int(hidden), batch_first=True, bidirectional=True)
        self.image_shape = self.cnn.image_shape
        self.dim = 2 * int(hidden)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 5 or tuple(images.shape[2:]) != self.image_shape:
            raise ConfigurationError(f"the wing expects (B, tau, {', '.join(map(str, self.image_shape))}) images, got {tuple(images.shape)}")
        B, tau = images.shape[:2]
        features = self.cnn(images.reshape(B * tau, *self.image_shape)).reshape(B, tau, -1)
        _, (h_n, _) = self.lstm(features)  # h_n: (2, B, hidden), forward then backward direction
        return torch.cat([h_n[0], h_n[1]], dim=1)


def meta_distance(m_i: torch.Tensor, m_j: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``||m_i - m_j||_2`` row-wise, ``(B, D), (B, D) -> (B,)``; ``eps`` under the root keeps the
    gradient finite where two meta-features coincide."""
    return torch.sqrt(((m_i - m_j) ** 2).sum(dim=-1) + eps)


def siamese_loss(d_target: torch.Tensor, m_i: torch.Tensor, m_j: torch.Tensor) -> torch.Tensor:
    """Seed 000's loss averaged over the pairs: ``mean_b [d_target_b - ||m_i,b - m_j,b||_2]^2``."""
    return ((d_target - meta_distance(m_i, m_j)) ** 2).mean()
