"""Ellipse phantoms: the (modified) Shepp-Logan head phantom and random ellipses as in Adler & Öktem (2018).

An ellipse is 6 numbers ``(value, a, b, x0, y0, phi)``: the additive attenuation ``value``, semi-axes
``a`` (along x before rotation) and ``b``, centre ``(x0, y0)`` and rotation ``phi`` (radians,
counter-clockwise), all lengths in normalised coordinates where the image spans ``[-1, 1]^2`` (x to the
right, y up, like :mod:`hybridzoo.physics.tomography`). The image is the sum of the values of the ellipses
that contain each pixel centre (or the average over ``supersample^2`` sub-pixel points).
"""

from __future__ import annotations

import math

import torch
from hybridzoo.physics.validation import check_positive_int, check_positive_number, check_tensor

#: Modified Shepp-Logan (Toft 1996), as in ODL/MATLAB ``phantom('Modified Shepp-Logan')``; values in [0, 1].
SHEPP_LOGAN_ELLIPSES: tuple[tuple[float, ...], ...] = (
    (1.00, 0.6900, 0.9200, 0.00, 0.0000, 0.0),
    (-0.80, 0.6624, 0.8740, 0.00, -0.0184, 0.0),
    (-0.20, 0.1100, 0.3100, 0.22, 0.0000, -18.0),
    (-0.20, 0.1600, 0.4100, -0.22, 0.0000, 18.0),
    (0.10, 0.2100, 0.2500, 0.00, 0.3500, 0.0),
    (0.10, 0.0460, 0.0460, 0.00, 0.1000, 0.0),
    (0.10, 0.0460, 0.0460, 0.00, -0.1000, 0.0),
    (0.10, 0.0460, 0.0230, -0.08, -0.6050, 0.0),
    (0.10, 0.0230, 0.0230, 0.00, -0.6060, 0.0),
    (0.10, 0.0230, 0.0460, 0.06, -0.6050, 0.0),
)


def shepp_logan_ellipses(
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Return the modified Shepp-Logan ellipses, shape ``(10, 6)``, angles converted to radians."""
    e = torch.tensor(SHEPP_LOGAN_ELLIPSES, dtype=torch.float64)
    e[:, 5] = torch.deg2rad(e[:, 5])
    return e.to(device=device, dtype=dtype)


def render_ellipses(
    ellipses: torch.Tensor, image_size: int, supersample: int = 1
) -> torch.Tensor:
    """Rasterise ellipses onto an ``image_size x image_size`` grid over ``[-1, 1]^2``.

    Args:
        ellipses: ``(..., E, 6)`` rows ``(value, a, b, x0, y0, phi)``; rows with ``value = 0`` are padding.
        image_size: pixels per side ``n``.
        supersample: average over ``supersample^2`` points per pixel (anti-aliasing).

    Returns:
        ``(..., n, n)`` images, row 0 at the top (``y = 1``), in ``ellipses``' dtype and device.
    """
    ellipses = check_tensor("ellipses", ellipses, min_ndim=2, last_dim=6)
    n = check_positive_int("image_size", image_size)
    k = check_positive_int("supersample", supersample)
    if (ellipses[..., 1:3] <= 0).any():
        raise ValueError("ellipses semi-axes (columns 1 and 2) must be positive")
    dt, dev = ellipses.dtype, ellipses.device
    sub = (torch.arange(k, dtype=dt, device=dev) + 0.5) / k
    pos = ((torch.arange(n, dtype=dt, device=dev)[:, None] + sub[None, :]).reshape(-1) / n) * 2 - 1  # (n k)
    x = pos[None, :]
    y = -pos[:, None]
    lead = ellipses.shape[:-2]
    # an explicit batch size, not -1: a Poisson count of 0 gives E = 0, and reshape cannot infer -1 then
    batch = math.prod(lead)
    e = ellipses.reshape(batch, ellipses.shape[-2], 6)
    out = torch.zeros(batch, n * k, n * k, dtype=dt, device=dev)
    for idx in range(e.shape[1]):  # loop over ellipses keeps memory at one (B, nk, nk) grid
        v, a, b, x0, y0, phi = (e[:, idx, c].reshape(-1, 1, 1) for c in range(6))
        dx, dy = x - x0, y - y0
        c, s = torch.cos(phi), torch.sin(phi)
        u = (dx * c + dy * s) / a
        w = (-dx * s + dy * c) / b
        out = out + v * (u * u + w * w <= 1).to(dt)
    out = out.reshape(batch, n, k, n, k).mean(dim=(2, 4))
    return out.reshape(*lead, n, n)


def shepp_logan(
    image_size: int,
    supersample: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Render the modified Shepp-Logan phantom, ``(n, n)``, values in ``[0, 1]``."""
    return render_ellipses(shepp_logan_ellipses(dtype, device), image_size, supersample)


def random_ellipses(
    generator: torch.Generator,
    mean_count: float = 50.0,
    interior: bool = False,
    max_count: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Random ellipses as in Adler & Öktem's ellipse data set (their ``random_phantom``).

    The count is Poisson(``mean_count``); each ellipse has value ``(U - 1/2) * Exp(scale 0.4)``, semi-axes
    ``0.2 * Exp(1)``, centre uniform in ``[-1, 1]^2`` (``[-1/2, 1/2]^2`` when ``interior``) and a uniform
    rotation. ``max_count`` (optional) pads with zero-value rows or truncates, so draws stack into a batch.

    Returns:
        ``(E, 6)`` ellipse rows, on the CPU (the generator's device).
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator (the ellipses are drawn on the CPU), got one on "
                         f"{generator.device}")
    check_positive_number("mean_count", mean_count)
    count = int(torch.poisson(torch.tensor([float(mean_count)]), generator=generator).item())

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    def exponential(scale: float) -> torch.Tensor:
        return -torch.log1p(-uniform(count)) * scale

    value = (uniform(count) - 0.5) * exponential(0.4)
    a, b = exponential(0.2), exponential(0.2)
    half = 0.5 if interior else 1.0
    centre = (2 * uniform(count, 2) - 1) * half
    phi = uniform(count) * 2 * math.pi
    rows = torch.stack([value, a.clamp_min(1e-6), b.clamp_min(1e-6), centre[:, 0], centre[:, 1], phi], dim=1)
    if max_count is not None:
        check_positive_int("max_count", max_count)
        rows = rows[:max_count]
        pad = torch.zeros(max_count - rows.shape[0], 6, dtype=rows.dtype)
        pad[:, 1:3] = 1.0  # valid axes so padding rows render as exact zeros
        rows = torch.cat([rows, pad])
    return rows.to(dtype)
