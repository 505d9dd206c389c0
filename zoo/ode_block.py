"""The ODE block of RK-Net / ODE-Net and its convolutional vector field (Chen et al., NeurIPS 2018).

A residual layer ``x + h·f(x)`` is one explicit Euler step of ``dx/dt = f(x, t)``. :class:`ODEBlock`
replaces a stack of residual layers by integrating one vector field ``f(x, t; θ)`` over ``[0, t1]``:
with our fixed-step Euler it *is* a stack of weight-shared residual layers, with our classical RK4 it
is RK-Net, and with an adaptive torchdiffeq solver (optionally the adjoint method) it is ODE-Net.
"""

from __future__ import annotations

import torch
from hybridzoo.physics.integrators import odeint
from hybridzoo.physics.validation import check_bool, check_positive_int, check_positive_number, check_tensor
from torch import nn

#: Solvers integrated by ``hybridzoo.physics`` (fixed step, back-propagated directly).
OWN_SOLVERS = ("euler", "rk4")
#: Prefix selecting torchdiffeq's fixed-grid implementation of a method, e.g. ``"torchdiffeq-rk4"``.
TORCHDIFFEQ_PREFIX = "torchdiffeq-"
#: torchdiffeq's fixed-grid methods (they take ``options={"step_size": ...}``).
TORCHDIFFEQ_FIXED = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
#: torchdiffeq's adaptive methods (ODE-Net), steered by ``rtol``/``atol``.
TORCHDIFFEQ_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def group_norm(channels: int) -> nn.GroupNorm:
    """Build the paper's normalisation: GroupNorm with ``min(32, channels)`` groups."""
    return nn.GroupNorm(min(32, channels), channels)


class ConcatConv2d(nn.Module):
    """A 2-D convolution that sees the time ``t`` as one extra constant input channel.

    Input ``(B, C_in, H, W)`` and a 0-d ``t``; output ``(B, C_out, H', W')``.
    """

    def __init__(
        self, dim_in: int, dim_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in + 1, dim_out, kernel_size, stride, padding)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``[t, x]`` (``t`` broadcast to one channel)."""
        tt = torch.ones_like(x[:, :1]) * t
        return self.conv(torch.cat([tt, x], dim=1))


class ConvVectorField(nn.Module):
    """The paper's vector field ``f(t, x)``: norm-ReLU-conv-norm-ReLU-conv-norm, convs fed with ``t``.

    Maps ``(B, C, H, W)`` to ``(B, C, H, W)`` (units: feature change per unit of depth-time).
    Counts its evaluations in :attr:`nfe` (reset by :class:`ODEBlock` before each solve).

    Args:
        channels: feature channels ``C``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        self.norm1 = group_norm(channels)
        self.conv1 = ConcatConv2d(channels, channels)
        self.norm2 = group_norm(channels)
        self.conv2 = ConcatConv2d(channels, channels)
        self.norm3 = group_norm(channels)
        self.act = nn.ReLU()
        self.nfe = 0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``dx/dt`` at time ``t`` (0-d tensor) and state ``x`` ``(B, C, H, W)``."""
        self.nfe += 1
        out = self.conv1(t, self.act(self.norm1(x)))
        out = self.conv2(t, self.act(self.norm2(out)))
        return self.norm3(out)


class ODEBlock(nn.Module):
    """Integrate ``dx/dt = field(t, x)`` from ``t = 0`` to ``t1`` and return ``x(t1)``.

    Args:
        field: the vector field, an ``nn.Module`` called as ``field(t, x)``; any ``x`` shape ``(B, ...)``.
        solver: ``"rk4"`` (RK-Net) or ``"euler"`` (a weight-shared ResNet), both ours from
            :mod:`hybridzoo.physics.integrators`; ``"torchdiffeq-<method>"`` for torchdiffeq's fixed-grid
            ``method`` (e.g. ``"torchdiffeq-rk4"``, its 3/8-rule RK4); or a torchdiffeq adaptive method
            such as ``"dopri5"`` (ODE-Net).
        steps: number of equal steps of fixed-step solvers (ignored by adaptive ones).
        adjoint: back-propagate with torchdiffeq's adjoint method (torchdiffeq solvers only).
        t1: end time (the depth of the block).
        rtol, atol: tolerances of adaptive solvers.

    Attributes:
        nfe: function evaluations of the last forward pass.
    """

    def __init__(
        self,
        field: nn.Module,
        *,
        solver: str = "rk4",
        steps: int = 4,
        adjoint: bool = False,
        t1: float = 1.0,
        rtol: float = 1e-3,
        atol: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(field, nn.Module):
            raise TypeError(f"field must be a torch.nn.Module, got {type(field).__name__}")
        if not isinstance(solver, str) or not solver:
            raise TypeError(f"solver must be a solver name, got {solver!r}")
        check_bool("adjoint", adjoint)
        if adjoint and solver in OWN_SOLVERS:
            raise ValueError(
                f"adjoint=True needs a torchdiffeq solver ('dopri5', 'torchdiffeq-rk4', ...), got {solver=}; "
                "our fixed-step solvers back-propagate directly"
            )
        known = (*OWN_SOLVERS, *(TORCHDIFFEQ_PREFIX + m for m in TORCHDIFFEQ_FIXED), *TORCHDIFFEQ_ADAPTIVE)
        if solver not in known:
            raise ValueError(f"solver must be one of {list(known)}, got {solver!r}")
        self.field = field
        self.solver = solver
        self.steps = check_positive_int("steps", steps)
        self.adjoint = bool(adjoint)
        self.t1 = check_positive_number("t1", t1)
        self.rtol = check_positive_number("rtol", rtol)
        self.atol = check_positive_number("atol", atol)
        self.nfe = 0

    def _count(self) -> int:
        return int(getattr(self.field, "nfe", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x(t1)`` for ``x(0) = x``; same shape, dtype and device as ``x`` ``(B, ...)``.

        Raises:
            ValueError: ``x`` contains NaN or infinite values (with every solver: torchdiffeq's would
                integrate them on silently). The check costs one host-device sync per forward on a GPU,
                as do the time-grid checks each solver already makes.
        """
        check_tensor("x", x, min_ndim=1, finite=True)
        if hasattr(self.field, "nfe"):
            self.field.nfe = 0
        t = torch.tensor([0.0, self.t1], dtype=x.dtype, device=x.device)
        if self.solver in OWN_SOLVERS:
            out = odeint(self.field, x, t, method=self.solver, substeps=self.steps)
        elif self.solver.startswith(TORCHDIFFEQ_PREFIX):
            import torchdiffeq

            solve = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
            method = self.solver.removeprefix(TORCHDIFFEQ_PREFIX)
            out = solve(self.field, x, t, method=method, options={"step_size": self.t1 / self.steps})
        else:
            out = odeint(
                self.field, x, t, method=self.solver, adjoint=self.adjoint, rtol=self.rtol, atol=self.atol
            )
        self.nfe = self._count()
        return out[-1]

    def extra_repr(self) -> str:
        """Solver settings, shown by ``print(model)``."""
        return f"solver={self.solver!r}, steps={self.steps}, adjoint={self.adjoint}, t1={self.t1}"
