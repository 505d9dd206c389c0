"""Tensors built once per device and dtype and reused: the solvers' operators, the closures' constants.

Small tensors that a hot loop needs in the dtype and on the device of its data (stencils, masks, fit
coefficients) are built on first use for each ``(device, dtype)`` and kept. Building them anew, or
passing Python floats that torch must convert at every op, would cost more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def per_device(cache: dict, like: torch.Tensor,
               build: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``build(like)``'s tensors, made once per ``(device, dtype)`` of ``like`` and kept in ``cache``."""
    key = (like.device, like.dtype)
    if key not in cache:
        with torch.inference_mode(False):  # a cache filled under inference mode must still serve autograd
            # .to() of a tensor already of this device and dtype returns it as it is: one made at a constructor
            # that ran under inference mode is an inference tensor, which autograd cannot save
            cache[key] = {k: v.clone() if v.is_inference() else v for k, v in build(like).items()}
    return cache[key]
