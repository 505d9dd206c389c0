"""Networks of the UDE: the learned interaction terms, and a stack of replaceable per-term modules."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

_ACTIVATIONS = {"tanh": torch.tanh, "gelu": nn.functional.gelu, "silu": nn.functional.silu,
                "softplus": nn.functional.softplus}


class GroupedMLP(nn.Module):
    """``groups`` independent MLPs evaluated in one batched pass (one ``baddbmm`` per layer).

    Maps ``state (..., in_features)`` to ``(..., groups)``: output ``g`` is MLP number ``g`` of
    ``state / in_scale``, times ``out_scale``. Evaluating the terms together halves the number of
    small kernels per right-hand-side call, which dominates the cost of integrating a tiny ODE.

    Args:
        groups: number of independent scalar networks (terms).
        in_features: state dimension.
        hidden, depth: width and number of hidden layers of each network.
        activation: ``"tanh"``, ``"gelu"``, ``"silu"`` or ``"softplus"``.
        in_scale, out_scale: typical magnitudes of the inputs and outputs.
    """

    def __init__(self, groups: int, in_features: int, hidden: int = 32, depth: int = 2, activation: str = "tanh",
                 in_scale: float = 1.0, out_scale: float = 1.0) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        for k, v in (("groups", groups), ("in_features", in_features), ("hidden", hidden), ("depth", depth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be a positive int, got {v!r}")
        self.groups, self.in_features = groups, in_features
        self.activation = activation
        self.in_scale, self.out_scale = float(in_scale), float(out_scale)
        widths = [in_features] + [hidden] * depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(groups, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(groups, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, state: torch.Tensor) -> torch.Tensor:  # noqa: D102
        lead = state.shape[:-1]
        h = (state.reshape(1, -1, self.in_features) / self.in_scale).expand(self.groups, -1, -1)
        act = _ACTIVATIONS[self.activation]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = act(h)
        return (self.out_scale * h.squeeze(-1)).transpose(0, 1).reshape(*lead, self.groups)

    def term(self, index: int) -> nn.Module:
        """A view of one network as a module ``state (..., d) -> (...)`` (shares parameters)."""
        return _GroupSlice(self, index)


class _GroupSlice(nn.Module):
    def __init__(self, parent: GroupedMLP, index: int) -> None:
        super().__init__()
        self.parent_ref = [parent]  # a list, so the parent is not registered as a submodule
        self.index = index

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.parent_ref[0](state)[..., self.index]


class TermStack(nn.Module):
    """Named per-term modules ``state (..., d) -> (...)`` stacked into ``(..., n_terms)``.

    Used to put distilled symbolic terms (or any user module) in place of a :class:`GroupedMLP`.
    """

    def __init__(self, terms: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))

    def forward(self, state: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.stack([m(state) for m in self.terms.values()], dim=-1)
