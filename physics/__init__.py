"""Differentiable physics: batched, device- and dtype-agnostic torch algorithms (no Lightning here)."""

from hybridzoo.physics.integrators import IntegrationError, euler_step, odeint, rk4_step
from hybridzoo.physics.lotka_volterra import (
    LotkaVolterra,
    LotkaVolterraParams,
    lotka_volterra_conserved,
    lotka_volterra_rhs,
    simulate_lotka_volterra,
)

__all__ = [
    "IntegrationError",
    "LotkaVolterra",
    "LotkaVolterraParams",
    "euler_step",
    "lotka_volterra_conserved",
    "lotka_volterra_rhs",
    "odeint",
    "rk4_step",
    "simulate_lotka_volterra",
]
