"""Fixed-step explicit integrators (Euler, classical RK4) and a dispatcher to torchdiffeq.

All integrators follow torchdiffeq's convention: the vector field is ``f(t, y) -> dy/dt`` with
``y`` of any shape (batch first by our convention), and trajectories are returned time-first,
shape ``(len(t), *y0.shape)``, so that ``odeint(..., method="dopri5")`` is a drop-in switch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hybridzoo.physics.validation import check_positive_int, check_tensor, check_time_grid

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

FIXED_METHODS = ("euler", "rk4")

DEFAULT_MAX_EVALS = 100_000


class IntegrationError(RuntimeError):
    """An adaptive solver gave up: its step size underflowed or it exceeded its evaluation budget.

    Both mean that the ODE blows up or is too stiff for the method. Without a budget an explicit adaptive
    method on a stiff field takes ever more steps, and when differentiating keeps every one in memory.
    """


class _Budgeted(torch.nn.Module):
    """The vector field ``f``, raising :class:`IntegrationError` at its ``max_evals + 1``-th evaluation.

    A module, so that torchdiffeq's adjoint finds ``f``'s parameters (a module ``f`` is a submodule here).
    """

    def __init__(self, f: VectorField, max_evals: int, method: str) -> None:
        super().__init__()
        self.f = f
        self.max_evals = max_evals
        self.method = method
        self.evals = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.evals += 1
        if self.evals > self.max_evals:
            raise IntegrationError(
                f"{self.method!r} exceeded max_evals={self.max_evals} evaluations of the vector field (last at "
                f"t={float(t.detach()):.6g}): the ODE is stiff or blows up; raise max_evals, loosen rtol/atol or use "
                "a fixed-step method")
        return self.f(t, y)


def euler_step(f: VectorField, t: torch.Tensor, y: torch.Tensor, dt: torch.Tensor | float) -> torch.Tensor:
    """One explicit Euler step ``y + dt * f(t, y)`` (first order; a residual block)."""
    return y + dt * f(t, y)


def rk4_step(f: VectorField, t: torch.Tensor, y: torch.Tensor, dt: torch.Tensor | float) -> torch.Tensor:
    """One classical fourth-order Runge-Kutta step of size ``dt`` from ``(t, y)``."""
    half = 0.5 * dt
    if isinstance(dt, float):
        # fused multiply-adds: a tiny ODE's cost is the number of kernels, not their size
        k1 = f(t, y)
        k2 = f(t + half, torch.add(y, k1, alpha=half))
        k3 = f(t + half, torch.add(y, k2, alpha=half))
        k4 = f(t + dt, torch.add(y, k3, alpha=dt))
        return torch.add(y, torch.add(torch.add(k1, k2 + k3, alpha=2.0), k4), alpha=dt / 6.0)
    k1 = f(t, y)
    k2 = f(t + half, y + half * k1)
    k3 = f(t + half, y + half * k2)
    k4 = f(t + dt, y + dt * k3)
    return y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


_STEPPERS = {"euler": euler_step, "rk4": rk4_step}


def odeint(
    f: VectorField,
    y0: torch.Tensor,
    t: torch.Tensor,
    *,
    method: str = "rk4",
    substeps: int = 1,
    adjoint: bool = False,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    max_evals: int | None = DEFAULT_MAX_EVALS,
) -> torch.Tensor:
    """Integrate ``dy/dt = f(t, y)`` from ``y0`` at ``t[0]`` and return ``y`` at every time in ``t``.

    Args:
        f: vector field ``f(t, y)``; ``t`` is a float (fixed-step methods, unless ``t`` requires grad) or
            a 0-d tensor, ``y`` has the shape of ``y0``.
        y0: initial state, any shape, e.g. ``(batch, state_dim)``.
        t: 1-D strictly increasing output times (same dtype/device as ``y0``).
        method: ``"euler"`` or ``"rk4"`` (ours, fixed step), or any torchdiffeq method name
            (``"dopri5"``, ``"bosh3"``, ...) for adaptive stepping.
        substeps: fixed-step methods take this many equal steps between consecutive output times.
        adjoint: torchdiffeq methods only: back-propagate with the adjoint method (O(1) memory in
            the number of steps); needs ``f`` to be an ``nn.Module``.
        rtol: relative tolerance of adaptive torchdiffeq methods.
        atol: absolute tolerance of adaptive torchdiffeq methods.
        max_evals: torchdiffeq methods only: at most this many evaluations of ``f`` per call (forward
            and, with ``adjoint``, backward together), else :class:`IntegrationError`; ``None``: no limit.
            Fixed-step methods cost a known ``substeps * 4`` (RK4) evaluations per interval.

    Returns:
        Tensor of shape ``(len(t), *y0.shape)``.

    Raises:
        IntegrationError: a torchdiffeq method's step size underflowed or it exceeded ``max_evals``.
    """
    check_tensor("y0", y0)
    t = check_time_grid("t", t)
    substeps = check_positive_int("substeps", substeps)
    if max_evals is not None:
        max_evals = check_positive_int("max_evals", max_evals)
    if method in _STEPPERS:
        if adjoint:
            raise ValueError("adjoint=True needs a torchdiffeq method (e.g. 'dopri5'); "
                             f"method={method!r} is a fixed-step method that back-propagates directly")
        step = _STEPPERS[method]
        ys = [y0]
        y = y0
        if t.requires_grad:  # differentiate with respect to the time grid too
            for i in range(t.numel() - 1):
                dt = (t[i + 1] - t[i]) / substeps
                for k in range(substeps):
                    y = step(f, t[i] + k * dt, y, dt)
                ys.append(y)
        else:  # Python floats: no tensor ops (and no device syncs) for time arithmetic
            times = t.detach().cpu().double().tolist()
            for t0, t1 in zip(times[:-1], times[1:]):
                dt = (t1 - t0) / substeps
                for k in range(substeps):
                    y = step(f, t0 + k * dt, y, dt)
                ys.append(y)
        return torch.stack(ys, dim=0)
    import torchdiffeq
    from torchdiffeq._impl.odeint import SOLVERS

    if method not in SOLVERS:
        raise ValueError(f"method must be one of {FIXED_METHODS} or a torchdiffeq method {sorted(SOLVERS)}, "
                         f"got {method!r}")
    if adjoint and not isinstance(f, torch.nn.Module):
        raise TypeError("adjoint=True needs the vector field f to be a torch.nn.Module")
    if y0.numel() == 0:  # an empty batch: an adaptive step-size control on no values reads as an underflow
        return y0.expand(t.numel(), *y0.shape)
    field = f if max_evals is None else _Budgeted(f, max_evals, method)
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    try:
        return solve(field, y0, t, method=method, rtol=rtol, atol=atol)
    except AssertionError as err:  # torchdiffeq reports a collapsed step by assert
        if not str(err).startswith("underflow in dt"):
            raise
        raise IntegrationError(f"{method!r} gave up, its step size underflowed ({err}): the ODE blows up or "
                               "is too stiff for the method") from err
