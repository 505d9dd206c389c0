"""The networks of RK-Net and its baselines: a conv stem and head around a feature block, and an MLP.

RK-Net and its ResNet baseline are the same :class:`ConvClassifier` (the paper's MNIST network: a
downsampling stem, one feature block, a norm-ReLU-pool-linear head) and differ only in the feature
block: an :class:`~hybridzoo.zoo.ode_block.ODEBlock` for RK-Net, a stack of :class:`ResBlock` for the
ResNet. Sharing the stem and head keeps the comparison about the feature block alone. The MLP sees
raw pixels.

Shapes: images ``(B, C, H, W)``; logits ``(B, num_classes)``.
"""

from __future__ import annotations

import torch
from hybridzoo.zoo.ode_block import group_norm
from torch import nn


class ResBlock(nn.Module):
    """Pre-activation residual block ``x + conv(relu(norm(conv(relu(norm(x))))))`` of the paper.

    Maps ``(B, C, H, W)`` to the same shape; convolutions without bias, as in the paper.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1 = group_norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One residual update of ``x``."""
        out = self.conv1(self.act(self.norm1(x)))
        return x + self.conv2(self.act(self.norm2(out)))


def make_stem(in_channels: int, width: int, downsample: int, padding: int) -> nn.Sequential:
    """Conv 3×3 to ``width`` channels, then ``downsample`` × (norm, ReLU, conv 4×4 stride 2)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, padding)]
    for _ in range(downsample):
        layers += [group_norm(width), nn.ReLU(), nn.Conv2d(width, width, 4, 2, 1)]
    return nn.Sequential(*layers)


def make_head(width: int, num_classes: int) -> nn.Sequential:
    """Norm, ReLU, global average pool, linear: ``(B, width, H, W)`` to logits ``(B, num_classes)``."""
    return nn.Sequential(
        group_norm(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
    )


class ConvClassifier(nn.Module):
    """``head(features(stem(x)))``: images ``(B, C, H, W)`` to logits ``(B, num_classes)``."""

    def __init__(self, stem: nn.Module, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.stem, self.features, self.head = stem, features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``."""
        return self.head(self.features(self.stem(x)))


class MLP(nn.Module):
    """One hidden ReLU layer on the flattened image: ``(B, C, H, W)`` to logits ``(B, num_classes)``."""

    def __init__(self, in_features: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``."""
        return self.layers(x)


def count_parameters(module: nn.Module) -> int:
    """Count the scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["MLP", "ConvClassifier", "ResBlock", "count_parameters", "make_head", "make_stem"]
