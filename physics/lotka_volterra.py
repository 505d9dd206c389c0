"""The Lotka-Volterra predator-prey system.

``dx/dt = alpha*x - beta*x*y`` (prey), ``dy/dt = gamma*x*y - delta*y`` (predator). Populations are
dimensionless counts, time in arbitrary units. The defaults are those of the UDE lectures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from hybridzoo.physics.integrators import odeint
from hybridzoo.physics.validation import check_positive_number, check_tensor, check_time_grid
from torch import nn


@dataclass(frozen=True)
class LotkaVolterraParams:
    """Rate constants of the Lotka-Volterra system, all > 0.

    ``alpha`` (prey growth) and ``delta`` (predator death) are in 1/time; ``beta`` and ``gamma`` (the
    interaction rates, multiplying ``x*y``) are in 1/(time·population).
    """

    alpha: float = 1.1
    beta: float = 0.4
    gamma: float = 0.1
    delta: float = 0.4

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            check_positive_number(k, v)

    @property
    def equilibrium(self) -> tuple[float, float]:
        """The non-trivial fixed point ``(delta/gamma, alpha/beta)``."""
        return self.delta / self.gamma, self.alpha / self.beta


def lotka_volterra_rhs(state: torch.Tensor, p: LotkaVolterraParams) -> torch.Tensor:
    """Vector field of the system. ``state``: ``(..., 2)`` holding ``(x, y)``; returns the same shape."""
    x, y = state[..., 0], state[..., 1]
    return torch.stack((p.alpha * x - p.beta * x * y, p.gamma * x * y - p.delta * y), dim=-1)


def lotka_volterra_conserved(state: torch.Tensor, p: LotkaVolterraParams) -> torch.Tensor:
    """First integral ``V = gamma*x - delta*ln(x) + beta*y - alpha*ln(y)``, constant along orbits.

    ``state``: ``(..., 2)`` with positive entries; returns shape ``state.shape[:-1]``.
    """
    check_tensor("state", state, last_dim=2, positive=True)
    x, y = state[..., 0], state[..., 1]
    return p.gamma * x - p.delta * torch.log(x) + p.beta * y - p.alpha * torch.log(y)


class LotkaVolterra(nn.Module):
    """The true system as a torch vector field ``f(t, state)`` for :func:`odeint`."""

    def __init__(self, params: LotkaVolterraParams | None = None) -> None:
        super().__init__()
        self.params = params or LotkaVolterraParams()

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return lotka_volterra_rhs(state, self.params)


def simulate_lotka_volterra(
    y0: torch.Tensor,
    t: torch.Tensor,
    params: LotkaVolterraParams | None = None,
    *,
    method: str = "rk4",
    substeps: int = 20,
) -> torch.Tensor:
    """Simulate trajectories.

    Args:
        y0: initial populations, shape ``(batch, 2)``, strictly positive.
        t: output times, shape ``(T,)``, strictly increasing, starting at the initial time.
        params: rate constants (defaults: the lectures' values).
        method: integrator (see :func:`hybridzoo.physics.odeint`).
        substeps: integrator steps per output interval.

    Returns:
        Trajectories of shape ``(batch, T, 2)``.
    """
    check_tensor("y0", y0, ndim=2, last_dim=2, positive=True)
    check_time_grid("t", t)
    traj = odeint(LotkaVolterra(params), y0, t.to(y0), method=method, substeps=substeps)
    return traj.transpose(0, 1)
