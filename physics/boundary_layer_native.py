"""The boundary-layer march as one compiled CPU kernel (``boundary_layer_march.cpp``), for inference.

:func:`hybridzoo.physics.boundary_layer._march` calls :func:`march_native` first and runs its torch
version where this returns ``None``: on CUDA, in dtypes other than float32/float64, where a gradient is
wanted (the kernel has no backward), and where the kernel cannot be built (:mod:`hybridzoo.physics.native`).
Both compute the same algorithm, step for step; float64 results agree to rounding.
"""

from __future__ import annotations

import ctypes

import torch
from hybridzoo.physics import native

KERNEL = "boundary_layer_march"
_SYMBOLS = {torch.float32: "hz_march_f32", torch.float64: "hz_march_f64"}
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p


def _function(dtype: torch.dtype) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    lib = native.load(KERNEL)
    if lib is None:
        return None
    fn = getattr(lib, _SYMBOLS[dtype])
    fn.argtypes = [_I64, _I64, *[_PTR] * 9]
    fn.restype = None
    return fn


def march_native(
    ue: torch.Tensor, s: torch.Tensor, re: torch.Tensor, trip: torch.Tensor | None
) -> tuple[torch.Tensor, ...] | None:
    """θ, H ``(M, P)`` and the transition, laminar- and turbulent-separation stations ``(M,)`` of the march.

    Takes what :func:`~hybridzoo.physics.boundary_layer._march` takes (checked arguments: ``ue``, ``s``
    ``(M, P)``, ``re (M,)``, ``trip`` a scalar, ``(M,)`` or ``None``) and returns ``None`` where the torch
    version must run instead (see the module's docstring).
    """
    tensors = (ue, s, re) if trip is None else (ue, s, re, trip)
    if ue.device.type != "cpu" or ue.dtype not in _SYMBOLS:
        return None
    if any(t.dtype != ue.dtype or t.device != ue.device for t in tensors):  # the kernel reads raw memory
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    fn = _function(ue.dtype)
    if fn is None:
        return None
    m, p = ue.shape
    # Station-major, so that one station's surfaces are contiguous for the kernel's vector loop.
    ue_t, s_t = ue.t().contiguous(), s.t().contiguous()
    re_c = re.expand(m).contiguous()
    # No trip: a trip position no surface reaches (finite: the kernel is compiled with -ffast-math).
    trip_c = torch.full_like(re_c, torch.finfo(ue.dtype).max) if trip is None else trip.expand(m).contiguous()
    theta, h = torch.empty(2, p, m, dtype=ue.dtype)
    events = torch.empty(3, m, dtype=torch.long)
    fn(m, p, *(t.data_ptr() for t in (ue_t, s_t, re_c, trip_c, theta, h, events[0], events[1], events[2])))
    return theta.t().contiguous(), h.t().contiguous(), *events
