"""Batched preconditioned conjugate gradients, and the relative tolerances of the solvers that use them.

The pressure Poisson solve (:mod:`hybridzoo.physics.pressure`) and the implicit diffusion of
:class:`~hybridzoo.physics.navier_stokes.NavierStokes2D` both run :func:`pcg` on fields ``(..., ny, nx)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from hybridzoo.physics.validation import check_positive_int, is_real_number


def default_tol(dtype: torch.dtype) -> float:
    """The default relative residual of the iterative solves: 1e-10 in float64, 1e-5 otherwise."""
    return 1e-10 if dtype == torch.float64 else 1e-5


def check_tolerance(name: str, tol: object) -> float | None:
    """Check a relative tolerance: ``None`` (the dtype's default) or a real number in ``(0, 1)``."""
    if tol is None:
        return None
    if not is_real_number(tol):
        raise TypeError(f"{name} must be a real number in (0, 1) or None, got {type(tol).__name__} {tol!r}")
    if not 0 < float(tol) < 1:  # also rejects NaN
        raise ValueError(f"{name} must be a relative residual in (0, 1), got {tol!r}")
    return float(tol)


def pcg(apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
        precond: Callable[[torch.Tensor], torch.Tensor], *, x0: torch.Tensor | None = None,
        tol: float | None = 1e-6, max_iter: int = 500,
        project: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> tuple[torch.Tensor, int, float]:
    """Batched preconditioned conjugate gradients for an SPD (or PSD with compatible ``b``) operator.

    Reductions run over the last two dimensions, so each batch element has its own step sizes.
    Stops when every element's residual is below ``tol`` times its ``||b||``.

    Returns:
        ``(x, iterations, max relative residual)``; ``x`` is ``project``-ed, a warm start that needs no
        iteration too. An empty batch returns an empty ``x``, 0 and 0.0.

    Raises:
        ValueError/TypeError: ``tol`` not in ``(0, 1)`` (``None``: the dtype's default), ``max_iter`` not a
            positive int.
    """
    tol = check_tolerance("tol", tol)  # NaN or a negative tol ran to max_iter; max_iter <= 0 returned zeros
    check_positive_int("max_iter", max_iter)
    if tol is None:
        tol = default_tol(b.dtype)
    if b.numel() == 0:  # the residual's max over no elements would fail
        return torch.zeros_like(b), 0, 0.0
    b_zero = b.flatten(-2).norm(dim=-1) == 0
    if x0 is None:
        x = torch.zeros_like(b)
    else:  # a zero right-hand side has the solution 0; a warm start there would be judged against |b| = 0
        x = torch.where(b_zero[..., None, None], torch.zeros_like(x0), x0)
    r = b - apply_a(x) if x0 is not None else b.clone()
    bnorm = b.flatten(-2).norm(dim=-1).clamp_min(torch.finfo(b.dtype).tiny)
    rel = (r.flatten(-2).norm(dim=-1) / bnorm).max().item()
    if rel <= tol:  # a warm start within tol may still carry a null-space component
        return project(x), 0, rel
    z = project(precond(r))
    d = z
    rz = (r * z).sum(dim=(-2, -1), keepdim=True)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        ad = apply_a(d)
        dad = (d * ad).sum(dim=(-2, -1), keepdim=True)
        alpha = torch.where(dad != 0, rz / torch.where(dad != 0, dad, torch.ones_like(dad)), torch.zeros_like(dad))
        x = x + alpha * d
        r = r - alpha * ad
        rel = (r.flatten(-2).norm(dim=-1) / bnorm).max().item()
        if rel <= tol or not math.isfinite(rel):
            break
        z = project(precond(r))
        rz_new = (r * z).sum(dim=(-2, -1), keepdim=True)
        beta = torch.where(rz != 0, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        d = z + beta * d
        rz = rz_new
    return project(x), it, rel
