"""Semi-Lagrangian and MacCormack advection of a field sampled on a regular grid.

Both schemes trace each grid point back along the flow over ``dt`` (RK2, midpoint) and interpolate the
field at the departure point; MacCormack then advects the result forward again, corrects half the
round-trip error and limits the result to the extrema of the cell it came from (second order, no new
extrema). Interpolation is bilinear, through ``grid_sample``, so every step is differentiable.

The grid's boundary conditions stay with the caller: a field comes with ``pad``, which adds the ghost
layers its boundaries imply, and the physical position ``origin`` (m) of the padded array's node
``(0, 0)``; nodes are ``h`` apart. The advecting velocity comes as ``velocity_at(x, y) -> (u, v)``
(m/s). Points ``x, y`` and fields ``q`` are ``(B, rows, cols)``; ``dt`` is in s.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Points = tuple[torch.Tensor, torch.Tensor]
VelocityAt = Callable[[torch.Tensor, torch.Tensor], Points]
Pad = Callable[[torch.Tensor], torch.Tensor]


def sample(padded: torch.Tensor, origin: tuple[float, float], h: float, x: torch.Tensor, y: torch.Tensor,
           mode: str = "bilinear") -> torch.Tensor:
    """Interpolate ``padded (B, H, W)`` (node (0, 0) at ``origin``, spacing ``h``) at points ``x, y (B, h, w)``."""
    H, W = padded.shape[-2:]
    gx = 2.0 * (x - origin[0]) / ((W - 1) * h) - 1.0
    gy = 2.0 * (y - origin[1]) / ((H - 1) * h) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(padded.unsqueeze(1), grid, mode=mode, padding_mode="border", align_corners=True)
    return out.squeeze(1)


def departure_points(velocity_at: VelocityAt, x: torch.Tensor, y: torch.Tensor, dt: float,
                     own: Points) -> Points:
    """RK2 (midpoint) back-trace of the points ``(x, y)`` over ``dt``; ``own`` is the velocity at them."""
    xm, ym = x - 0.5 * dt * own[0], y - 0.5 * dt * own[1]
    um, vm = velocity_at(xm, ym)
    return x - dt * um, y - dt * vm


def semi_lagrangian(q: torch.Tensor, pad: Pad, origin: tuple[float, float], h: float, velocity_at: VelocityAt,
                    points: Points, own: Points, dt: float) -> torch.Tensor:
    """First-order semi-Lagrangian advection of ``q`` over ``dt``: ``q`` at the departure points.

    Args:
        q: the field ``(B, rows, cols)`` at the grid ``points``.
        pad: adds ``q``'s ghost layers.
        origin: the position ``(x, y)`` (m) of the padded array's node (0, 0).
        h: the grid spacing (m).
        velocity_at: the advecting velocity at any points.
        points: the positions ``(x, y)`` (m) of ``q``'s nodes.
        own: the advecting velocity at ``points``.
        dt: time step (s).
    """
    xd, yd = departure_points(velocity_at, points[0], points[1], dt, own)
    return sample(pad(q), origin, h, xd, yd)


def maccormack(q: torch.Tensor, pad: Pad, origin: tuple[float, float], h: float, velocity_at: VelocityAt,
               points: Points, own: Points, dt: float) -> torch.Tensor:
    """Limited MacCormack advection of ``q`` over ``dt`` (arguments as in :func:`semi_lagrangian`).

    Where the corrected value leaves the range of the four nodes around its departure point, the
    semi-Lagrangian value is kept instead, so the scheme makes no new extrema.
    """
    xd, yd = departure_points(velocity_at, points[0], points[1], dt, own)
    qp = pad(q)
    fwd = sample(qp, origin, h, xd, yd)
    # advect back, correct half the round-trip error, limit to the local extrema
    xa, ya = departure_points(velocity_at, points[0], points[1], -dt, own)
    back = sample(pad(fwd), origin, h, xa, ya)
    corrected = fwd + 0.5 * (q - back)
    # extrema of each 2x2 cell of nodes, looked up at the cell (centre) the departure point falls in
    hi = F.max_pool2d(qp.unsqueeze(1), 2, stride=1).squeeze(1)
    lo = -F.max_pool2d(-qp.unsqueeze(1), 2, stride=1).squeeze(1)
    corner = (origin[0] + 0.5 * h, origin[1] + 0.5 * h)
    qmax = sample(hi, corner, h, xd, yd, mode="nearest")
    qmin = sample(lo, corner, h, xd, yd, mode="nearest")
    out_of_range = (corrected > qmax) | (corrected < qmin)
    return torch.where(out_of_range, fwd, corrected)


__all__ = ["departure_points", "maccormack", "sample", "semi_lagrangian"]
