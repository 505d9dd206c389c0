"""Measurement noise for CT sinograms: additive Gaussian and Beer-Lambert with Poisson photon counts.

Both take an optional ``torch.Generator`` so that a sample's noise is reproducible from its seed.
"""

from __future__ import annotations

import torch
from hybridzoo.physics.validation import check_positive_number, check_tensor


def _check_generator(generator: object, device: torch.device) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is not None and generator.device != device:  # cuda:0's generator cannot draw on cuda:1
        raise ValueError(f"generator is on {generator.device}, sinogram on {device}")


def add_gaussian_noise(
    sinogram: torch.Tensor, relative_level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add white Gaussian noise with standard deviation ``relative_level * mean(|sinogram|)``.

    As in Adler & Öktem (2018): "5 % additive Gaussian noise" is ``relative_level = 0.05``, the mean
    taken per sinogram (over its last two dimensions).

    Args:
        sinogram: ``(..., num_angles, num_detectors)`` line integrals.
        relative_level: noise level relative to the mean absolute value, ``>= 0``.
        generator: random generator on the sinogram's device (``None``: the global one).

    Returns:
        A noisy copy, same shape and dtype.
    """
    sinogram = check_tensor("sinogram", sinogram, min_ndim=2)
    level = check_positive_number("relative_level", relative_level, allow_zero=True)
    _check_generator(generator, sinogram.device)
    scale = level * sinogram.abs().mean(dim=(-2, -1), keepdim=True)
    noise = torch.randn(sinogram.shape, generator=generator, dtype=sinogram.dtype, device=sinogram.device)
    return sinogram + scale * noise


def add_poisson_noise(
    sinogram: torch.Tensor,
    photons_per_ray: float,
    attenuation_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Beer-Lambert transmission with Poisson counts, converted back to line integrals.

    Counts ``N ~ Poisson(I0 exp(-mu p))`` for line integral ``p`` (``mu = attenuation_scale`` turns
    the sinogram's units into optical depth), and the returned log data ``-log(max(N, 1/2) / I0) / mu``
    (the ``1/2`` floor keeps photon-starved rays finite). Its variance is about ``exp(mu p) / (I0 mu^2)``.

    Args:
        sinogram: ``(..., num_angles, num_detectors)`` line integrals, ``mu * sinogram >= 0`` expected.
        photons_per_ray: unattenuated photon count ``I0 > 0``.
        attenuation_scale: ``mu > 0``, optical depth per sinogram unit.
        generator: random generator on the sinogram's device.

    Returns:
        Noisy line integrals, same shape and dtype.
    """
    sinogram = check_tensor("sinogram", sinogram, min_ndim=2)
    i0 = check_positive_number("photons_per_ray", photons_per_ray)
    mu = check_positive_number("attenuation_scale", attenuation_scale)
    _check_generator(generator, sinogram.device)
    expected = i0 * torch.exp(-mu * sinogram.double())
    counts = torch.poisson(expected, generator=generator).clamp_min(0.5)
    return (-torch.log(counts / i0) / mu).to(sinogram.dtype)
