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

import functools
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
    # grid_sample's coordinates in [-1, 1]: one multiply-add with cached (2,) tensors. Arithmetic with Python
    # floats copies each float into a tensor first, and at a coarse solver's sizes those copies cost more
    # than the arithmetic (a fifth of a 32x16 step).
    scale, offset = _to_grid(float(origin[0]), float(origin[1]), float(h), W, H, x.dtype, x.device)
    grid = torch.addcmul(offset, torch.stack((x, y), dim=-1), scale)
    out = F.grid_sample(padded.unsqueeze(1), grid, mode=mode, padding_mode="border", align_corners=True)
    return out.squeeze(1)


@functools.lru_cache(maxsize=256)
def _to_grid(ox: float, oy: float, h: float, width: int, height: int, dtype: torch.dtype,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, offset)`` taking physical ``(x, y)`` to ``grid_sample``'s ``[-1, 1]`` on a ``height x width`` array."""
    sx, sy = 2.0 / ((width - 1) * h), 2.0 / ((height - 1) * h)
    with torch.inference_mode(False):  # a cache filled under inference mode must still serve autograd
        return (torch.tensor([sx, sy], dtype=dtype, device=device),
                torch.tensor([-ox * sx - 1.0, -oy * sy - 1.0], dtype=dtype, device=device))


def departure_points(velocity_at: VelocityAt, x: torch.Tensor, y: torch.Tensor, dt: float,
                     own: Points) -> Points:
    """RK2 (midpoint) back-trace of the points ``(x, y)`` over ``dt``; ``own`` is the velocity at them."""
    # alpha= scales inside the kernel; a product with a Python float would copy it into a tensor first
    xm, ym = torch.add(x, own[0], alpha=-0.5 * dt), torch.add(y, own[1], alpha=-0.5 * dt)
    um, vm = velocity_at(xm, ym)
    return torch.add(x, um, alpha=-dt), torch.add(y, vm, alpha=-dt)


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
