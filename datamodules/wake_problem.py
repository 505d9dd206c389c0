"""The cylinder-wake problem of solver-in-the-loop: its geometry checks, solver, viscosity and limits.

A channel with slip walls, a uniform inflow on the left, an outflow on the right and a cylinder
(SI units); :class:`~hybridzoo.datamodules.wake_flow.WakeFlowDataModule` simulates it and
:class:`~hybridzoo.zoo.solver_in_the_loop.SolverInTheLoop` corrects its coarse solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hybridzoo.physics.navier_stokes import NavierStokes2D
from hybridzoo.physics.validation import check_positive_int, check_positive_number


def wake_viscosity(re: torch.Tensor | np.ndarray | float, inflow_speed: float, diameter: float) -> torch.Tensor:
    """Kinematic viscosity (m²/s) of Reynolds numbers ``re``: ν = inflow_speed · diameter / Re.

    A floating-point tensor ``re`` keeps its dtype and device (an integer one becomes torch's default float
    dtype); anything else becomes a float64 tensor.
    """
    re = re if isinstance(re, torch.Tensor) else torch.as_tensor(re, dtype=torch.float64)
    return inflow_speed * diameter / re


def kick_sign(seed: int, re: float) -> float:
    """Sign (±1) of the transverse kick that starts the shedding of the simulation at Reynolds number ``re``.

    Drawn from ``(seed, re)`` alone, so that a simulation does not change when Reynolds numbers are added
    to or removed from a data set.
    """
    entropy = np.random.SeedSequence([int(seed), int(round(float(re) * 1000))]).generate_state(1)[0]
    return float(torch.randint(0, 2, (), generator=torch.Generator().manual_seed(int(entropy)))) * 2 - 1


def check_wake_geometry(nx: int, ny: int, length_x: float, center: Any, diameter: float,
                        inflow_speed: float) -> tuple[float, float]:
    """Check a wake geometry (see :func:`wake_solver`); raise ``TypeError``/``ValueError`` naming the argument.

    The cylinder must lie inside the channel and cover at least one cell of the ``nx x ny`` grid.
    Returns ``center`` as a tuple of floats.
    """
    check_positive_int("nx", nx)
    check_positive_int("ny", ny)
    for k, val in (("length_x", length_x), ("diameter", diameter), ("inflow_speed", inflow_speed)):
        check_positive_number(k, val)
    if isinstance(center, (str, bytes)) or not hasattr(center, "__len__") or len(center) != 2:
        raise ValueError(f"center must be (x, y), got {center!r}")
    cx, cy = (check_positive_number("center", c, allow_zero=True) for c in center)
    h = length_x / nx
    r = diameter / 2
    if not (r < cx < length_x - r and r < cy < ny * h - r):
        raise ValueError(f"center={(cx, cy)} with diameter={diameter} puts the cylinder outside the "
                         f"{length_x} x {ny * h} channel")
    xc = (np.arange(nx) + 0.5) * h
    yc = (np.arange(ny) + 0.5) * h
    if not ((xc[None, :] - cx) ** 2 + (yc[:, None] - cy) ** 2 <= r**2).any():
        raise ValueError(f"diameter={diameter} at center={(cx, cy)} covers no cell of the {nx} x {ny} grid "
                         f"(cell size {h:.4g}): the cylinder would vanish")
    return cx, cy


def check_wake_cfl(dt: float, inflow_speed: float, length_x: float, nx: int, max_cfl: float = 1.0) -> None:
    """Raise ``ValueError`` if ``dt`` breaks the CFL limit already at the inflow speed: ``dt U nx / length_x``.

    The flow past the cylinder is faster still, so this is a necessary condition; the solvers check the
    state itself. (The reference at ``factor`` times the resolution, with ``dt / factor``, has the same number.)
    """
    cfl = dt * inflow_speed * nx / length_x
    if cfl > max_cfl:
        raise ValueError(f"dt={dt} violates the CFL condition at the inflow speed: dt*inflow_speed/h = {cfl:.3g} > "
                         f"{max_cfl} (h = length_x/nx = {length_x / nx:.4g}); use dt <= {max_cfl * dt / cfl:.4g}, "
                         f"less since the flow past the cylinder is faster")


def min_reynolds(nx: int, length_x: float, dt: float, inflow_speed: float, diameter: float) -> float:
    """The lowest Reynolds number whose explicit diffusion is stable on ``nx`` cells along ``length_x`` at ``dt``.

    The limit ν dt / h² <= 1/4 with ν = inflow_speed · diameter / Re: Re >= 4 inflow_speed diameter dt / h².
    """
    h = length_x / nx
    return 4 * inflow_speed * diameter * dt / h**2


def wake_solver(nx: int, ny: int, length_x: float, center: tuple[float, float], diameter: float,
                inflow_speed: float, **kwargs: Any) -> NavierStokes2D:
    """The cylinder-in-a-channel solver at ``nx x ny`` cells (cylinder = cells whose centre lies inside)."""
    h = length_x / nx
    yc = (torch.arange(ny, dtype=torch.float64, device="cpu") + 0.5) * h
    xc = (torch.arange(nx, dtype=torch.float64, device="cpu") + 0.5) * h
    Y, X = torch.meshgrid(yc, xc, indexing="ij")
    solid = (X - center[0]) ** 2 + (Y - center[1]) ** 2 <= (diameter / 2) ** 2
    inflow = torch.full((ny,), float(inflow_speed), dtype=torch.float64, device="cpu")
    return NavierStokes2D(nx, ny, length_x, x_boundary="inflow-outflow", y_boundary="slip", solid=solid,
                          inflow=inflow, **kwargs)


def restrict_faces(u: torch.Tensor, v: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Face velocities of a grid ``factor`` times coarser (inflow-outflow x, walls in y).

    ``u (..., ny*f, nx*f + 1) -> (..., ny, nx + 1)``: every ``f``-th x-face, averaged over the ``f`` fine
    faces along it; likewise for ``v``. Fluxes are kept, so a divergence-free field stays divergence-free.
    """
    f = int(factor)
    if f == 1:
        return u, v
    uu = u[..., ::f]
    uu = uu.reshape(*uu.shape[:-2], uu.shape[-2] // f, f, uu.shape[-1]).mean(-2)
    vv = v[..., ::f, :]
    vv = vv.reshape(*vv.shape[:-1], vv.shape[-1] // f, f).mean(-1)
    return uu, vv
