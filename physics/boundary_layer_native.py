"""The boundary-layer march as one compiled CPU kernel (``boundary_layer_march.cpp``), for inference.

:func:`hybridzoo.physics.boundary_layer._march` calls :func:`march_native` first and runs its torch
version where this returns ``None``: on CUDA, in dtypes other than float32/float64, where a derivative is
taken (backward, forward mode, ``torch.func``: the kernel has none), for inputs that are not all finite, and
where the kernel cannot be built (:mod:`hybridzoo.physics.native`). Both compute the same algorithm, step
for step; float64 results agree to rounding (a sub-step count taken by ``ceil`` can differ where a log speed
ratio lies within rounding of a multiple of 0.1, as libmvec's and torch's ``log`` round differently).
"""

from __future__ import annotations

import ctypes

import torch
from hybridzoo.physics import native
from torch.autograd import forward_ad

KERNEL = "boundary_layer_march"
_SYMBOLS = {torch.float32: "hz_march_f32", torch.float64: "hz_march_f64"}
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p


def _function(dtype: torch.dtype) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    lib = native.load(KERNEL)
    if lib is None:
        return None
    fn = getattr(lib, _SYMBOLS[dtype])
    fn.argtypes = [_I64, _I64, _PTR, _PTR, _PTR, _PTR, ctypes.c_int, *[_PTR] * 7]
    fn.restype = None
    return fn


def _traced(t: torch.Tensor) -> bool:
    """Whether a derivative is being taken through ``t``: backward, forward-mode or a torch.func transform."""
    if t.requires_grad and torch.is_grad_enabled():
        return True
    if forward_ad.unpack_dual(t).tangent is not None:
        return True
    return torch._C._functorch.is_functorch_wrapped_tensor(t)  # grad, jvp, vmap: no storage of their own


def march_native(
    ue: torch.Tensor, s: torch.Tensor, re: torch.Tensor, trip: torch.Tensor | None
) -> tuple[torch.Tensor, ...] | None:
    """θ, H ``(M, P)`` and the transition, laminar- and turbulent-separation stations ``(M,)`` of the march.

    Takes what :func:`~hybridzoo.physics.boundary_layer._march` takes (checked arguments: ``ue``, ``s``
    ``(M, P)``, ``re (M,)``, ``trip`` a scalar, ``(M,)`` or ``None``) and returns ``None`` where the torch
    version must run instead: see the module's docstring, and also for inputs that are not all finite (the
    kernel assumes finite math; the torch version carries a NaN through).
    """
    tensors = (ue, s, re) if trip is None else (ue, s, re, trip)
    if ue.device.type != "cpu" or ue.dtype not in _SYMBOLS:
        return None
    if any(t.dtype != ue.dtype or t.device != ue.device for t in tensors):  # the kernel reads raw memory
        return None
    if any(_traced(t) for t in tensors):
        return None
    fn = _function(ue.dtype)
    if fn is None:
        return None
    # A NaN or infinity anywhere makes the sum non-finite (as does a sum overflowing, which only sends
    # absurd inputs to the torch version); summing is ~25x cheaper than an elementwise isfinite.
    if not all(bool(torch.isfinite(t.sum())) for t in tensors):
        return None
    m, p = ue.shape
    # Raw memory must hold the values themselves: resolve lazy negation/conjugation, then make the arrays
    # station-major, so that one station's surfaces are contiguous for the kernel's vector loop.
    ue_t, s_t = (t.resolve_neg().resolve_conj().t().contiguous() for t in (ue, s))
    re_c = re.resolve_neg().resolve_conj().expand(m).contiguous()
    trip_c = re_c if trip is None else trip.resolve_neg().resolve_conj().expand(m).contiguous()  # read if given
    # On ue's device, not the default one: under `with torch.device("cuda")` the kernel would get GPU pointers.
    theta, h = ue.new_empty(2, p, m)
    events = [ue.new_empty(m, dtype=torch.long) for _ in range(3)]
    scratch = ue.new_empty(12 * m)
    integral = ue.new_empty(m, dtype=torch.float64)
    fn(m, p, ue_t.data_ptr(), s_t.data_ptr(), re_c.data_ptr(), trip_c.data_ptr(), int(trip is not None),
       *(t.data_ptr() for t in (theta, h, *events, scratch, integral)))
    return theta.t().contiguous(), h.t().contiguous(), *events
