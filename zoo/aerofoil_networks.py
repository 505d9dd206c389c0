"""The networks of the residual aerofoil model: an MLP head, and PGML's MLP that takes the physics mid-way."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(width_in: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, hidden), nn.SiLU()]
        width_in = hidden
    return nn.Sequential(*layers)


class MLPHead(nn.Module):
    """``(B, F)`` standardised features → ``(B,)``."""

    def __init__(self, n_in: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.body = _mlp(n_in, hidden, depth)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.out(self.body(x)).squeeze(-1)


class PGMLNet(nn.Module):
    """PGML: the physics outputs ``(B, P)`` join the features after the first hidden layer (Pawar et al. 2021)."""

    def __init__(self, n_in: int, hidden: int, depth: int, n_physics: int = 1) -> None:
        super().__init__()
        self.first = _mlp(n_in, hidden, 1)
        self.rest = _mlp(hidden + n_physics, hidden, max(depth - 1, 1))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, physics: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = torch.cat([self.first(x), physics], -1)
        return self.out(self.rest(h)).squeeze(-1)
