"""Classical CT reconstructions: filtered back-projection and TV-regularised iterative reconstruction.

Both work on sinograms ``(..., num_angles, num_detectors)`` of a
:class:`~hybridzoo.physics.tomography.RayTransform` and return images ``(..., n, n)`` in the
sinogram's units per length unit (attenuation), batched and differentiable.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from hybridzoo.physics.tomography import RayTransform
from hybridzoo.physics.validation import check_bool, check_positive_int, check_positive_number, check_tensor

Filter = Literal["ramp", "hann"]
FILTERS = ("ramp", "hann")


def check_filter(name: str, value: object) -> str:
    """Check an FBP filter name (one of :data:`FILTERS`) and return it."""
    if value not in FILTERS:
        raise ValueError(f"{name} must be 'ramp' or 'hann', got {value!r}")
    return value  # type: ignore[return-value]


def _check_sinogram(op: RayTransform, sinogram: object) -> torch.Tensor:
    if not isinstance(op, RayTransform):
        raise TypeError(f"op must be a RayTransform, got {type(op).__name__}")
    sinogram = check_tensor("sinogram", sinogram, min_ndim=2)
    if tuple(sinogram.shape[-2:]) != op.geometry.sinogram_shape:
        raise ValueError(
            f"sinogram must have shape (..., {op.geometry.num_angles}, {op.geometry.num_detectors}) "
            f"for this geometry, got {tuple(sinogram.shape)}"
        )
    return sinogram


def ramp_filter(
    num_detectors: int, spacing: float, filter: Filter = "ramp", dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Frequency response of the discrete ramp filter, zero-padded length ``P >= 2 * num_detectors``.

    Built from the band-limited spatial kernel of Kak & Slaney (eq. 3.61), ``h[0] = 1/(4 tau^2)``,
    ``h[k odd] = -1/(pi k tau)^2``, so the DC term is right (a plain ``|f|`` sampled in frequency biases
    the mean). ``"hann"`` multiplies by ``(1 + cos(2 pi f)) / 2`` (``f`` in cycles per bin).

    Returns:
        ``(P,)`` real response in ``dtype`` (a real floating dtype, else ``TypeError``) to multiply the
        ``fft`` of a zero-padded projection; includes the ``tau`` of the convolution sum, so filtering
        approximates the continuous ramp convolution.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a real floating-point torch.dtype, got {dtype}")
    d = check_positive_int("num_detectors", num_detectors)
    tau = check_positive_number("spacing", spacing)
    check_filter("filter", filter)
    p = 1 << math.ceil(math.log2(2 * d))
    k = torch.fft.fftfreq(p, d=1.0 / p, dtype=torch.float64)  # integer offsets in circular order
    h = torch.zeros(p, dtype=torch.float64)
    h[k == 0] = 1 / (4 * tau * tau)
    odd = (k.abs() % 2) == 1
    h[odd] = -1 / (math.pi * k[odd] * tau) ** 2
    response = torch.fft.fft(h).real * tau
    if filter == "hann":
        response = response * 0.5 * (1 + torch.cos(2 * math.pi * torch.fft.fftfreq(p, dtype=torch.float64)))
    return response.to(device=device, dtype=dtype)


def fbp(op: RayTransform, sinogram: torch.Tensor, filter: Filter = "ramp") -> torch.Tensor:
    """Reconstruct by filtered back-projection: ramp-filter each projection, then back-project with ``F*``.

    ``F*`` is the matrix transpose, so the back-projection is scaled by ``(pi / num_angles) *
    detector_spacing / pixel_size^2`` to approximate the continuous ``integral over theta``: a
    noise-free sinogram of an image reconstructs that image (up to discretisation).

    Args:
        op: the ray transform the sinogram was measured with.
        sinogram: ``(..., num_angles, num_detectors)`` line integrals.
        filter: ``"ramp"`` (Ram-Lak) or ``"hann"`` (ramp times a Hann window; less noise, less detail).

    Returns:
        ``(..., n, n)`` image.
    """
    sinogram = _check_sinogram(op, sinogram)
    g = op.geometry
    # the CPU FFT has no float16/bfloat16 kernels: filter those in float32, back-project in their own dtype
    work = torch.float32 if sinogram.dtype in (torch.float16, torch.bfloat16) else sinogram.dtype
    response = ramp_filter(g.num_detectors, g.detector_spacing, filter, work, sinogram.device)
    if sinogram.numel() == 0:  # an empty batch: MKL's FFT refuses a zero-length transform batch
        filtered = sinogram
    else:
        spec = torch.fft.rfft(sinogram.to(work), n=response.numel(), dim=-1) * response[: response.numel() // 2 + 1]
        filtered = torch.fft.irfft(spec, n=response.numel(), dim=-1)[..., : g.num_detectors].to(sinogram.dtype)
    scale = (math.pi / g.num_angles) * g.detector_spacing / g.pixel_size**2
    return op.adjoint(filtered) * scale


def image_gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with a zero last difference (Neumann): ``(..., n, n) -> (..., 2, n, n)``."""
    dy = torch.zeros_like(x)
    dx = torch.zeros_like(x)
    dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([dy, dx], dim=-3)


def divergence(q: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`image_gradient`: ``(..., 2, n, n) -> (..., n, n)``."""
    qy, qx = q[..., 0, :, :], q[..., 1, :, :]
    out = torch.zeros_like(qy)
    out[..., :-1, :] += qy[..., :-1, :]
    out[..., 1:, :] -= qy[..., :-1, :]
    out[..., :, :-1] += qx[..., :, :-1]
    out[..., :, 1:] -= qx[..., :, :-1]
    return out


def tv_gradient(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Gradient of the smoothed isotropic TV ``sum sqrt(|grad x|^2 + eps^2)``, shape of ``x``.

    ``eps > 0`` (image units): with ``eps = 0`` the gradient is ``0 / 0`` wherever the image is flat.
    """
    eps = check_positive_number("eps", eps)
    g = image_gradient(x)
    return -divergence(g / torch.sqrt((g * g).sum(dim=-3, keepdim=True) + eps * eps))


def tv_reconstruction(
    op: RayTransform,
    sinogram: torch.Tensor,
    weight: float = 1e-3,
    iterations: int = 300,
    nonnegative: bool = False,
    x0: torch.Tensor | None = None,
    step_ratio: float = 0.1,
) -> torch.Tensor:
    """TV-regularised least squares by the primal-dual hybrid gradient (Chambolle & Pock 2011).

    Solves ``min_x  1/2 ||F x - y||^2 / ||F||^2 + weight * TV(x)`` (isotropic TV, forward differences
    in pixels) with ``F`` normalised by its operator norm, so ``weight`` does not depend on the geometry's
    scale; ``K = (F / ||F||, grad)`` has ``||K|| <= 3`` and the steps are ``tau = 0.99 / (3 r)``,
    ``sigma = 0.99 r / 3`` with ``r = step_ratio`` (``tau sigma ||K||^2 < 1``). With ``r = 0.1``, 300 iterations
    converge on 64^2 Shepp-Logan with 30 angles at ``weight = 1e-3`` (``r = 1`` needs over 1000); smaller weights
    need more: at ``3e-4`` 300 iterations are still 5 % from the solution, and at ``1e-4`` on 32^2 ellipses the
    PSNR rises from 35.2 dB (300) to 35.65 (1000) and 35.66 (3000).

    Args:
        op: the ray transform.
        sinogram: ``(..., num_angles, num_detectors)``.
        weight: TV weight (``lambda``), ``>= 0``.
        iterations: PDHG iterations.
        nonnegative: constrain ``x >= 0``.
        x0: optional starting image, the sinogram's leading dimensions by ``(n, n)``, with the
            sinogram's dtype and device (zeros otherwise).
        step_ratio: ``r``, the balance of dual to primal step size (see above).

    Returns:
        ``(..., n, n)`` image.
    """
    sinogram = _check_sinogram(op, sinogram)
    lam = check_positive_number("weight", weight, allow_zero=True)
    check_positive_int("iterations", iterations)
    check_bool("nonnegative", nonnegative)  # "no" would clip the image silently
    norm = op.operator_norm()
    y = sinogram / norm
    lead = sinogram.shape[:-2]
    shape = (*lead, *op.geometry.image_shape)
    if x0 is None:
        x = sinogram.new_zeros(shape)
    else:
        x = check_tensor("x0", x0)
        if tuple(x.shape) != shape:
            raise ValueError(f"x0 must have shape {shape}, got {tuple(x.shape)}")
        if x.dtype != sinogram.dtype:
            raise TypeError(f"x0 must have the sinogram's dtype {sinogram.dtype}, got {x.dtype}")
        if x.device != sinogram.device:
            raise ValueError(f"x0 must be on the sinogram's device {sinogram.device}, got {x.device}")
    ratio = check_positive_number("step_ratio", step_ratio)
    tau, sigma = 0.99 / (3.0 * ratio), 0.99 * ratio / 3.0
    x_bar = x
    p = torch.zeros_like(y)
    q = sinogram.new_zeros((*lead, 2, *op.geometry.image_shape))
    for _ in range(iterations):
        p = (p + sigma * (op.forward(x_bar) / norm - y)) / (1 + sigma)
        q = q + sigma * image_gradient(x_bar)
        q = q / torch.clamp(torch.sqrt((q * q).sum(dim=-3, keepdim=True)) / max(lam, 1e-30), min=1.0)
        x_new = x - tau * (op.adjoint(p) / norm - divergence(q))
        if nonnegative:
            x_new = x_new.clamp_min(0)
        x_bar = 2 * x_new - x
        x = x_new
    return x
