"""Input checks for the public boundary of physics routines: every failure names the argument."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    last_dim: int | None = None,
    finite: bool = True,
    positive: bool = False,
    floating: bool = True,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Validate ``x`` and return it; raise ``TypeError``/``ValueError`` naming ``name`` otherwise.

    ``dtype``: the one dtype ``x`` must have (e.g. a model's, whose layers would fail deep inside on another).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():  # complex is refused too: every quantity here is real
        raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            dims = " or ".join(map(str, allowed))
            raise ValueError(f"{name} must have {dims} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if last_dim is not None and (x.ndim == 0 or x.shape[-1] != last_dim):
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(x.shape)}")
    if finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if positive and not (x > 0).all():
        raise ValueError(f"{name} must be strictly positive (min is {x.min().item():.4g})")
    return x


def check_real_value(name: str, value: object) -> object:
    """Check a real scalar (Python's or NumPy's) or a real tensor or array, before it is cast to a dtype.

    A cast would silently drop a complex value's imaginary part and read a bool as 0/1, so both are a
    ``TypeError`` naming ``name``, as is any other type. Returns ``value`` (a NumPy array as a tensor).
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be real, got a {value.dtype} tensor")
        return value
    if not is_real_number(value):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(value).__name__}")
    return value


def check_solver_dtype(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that ``x`` is float32 or float64 (``TypeError`` naming ``name`` otherwise) and return it.

    Half precisions are refused: a linear solve or a boundary-layer march in float16/bfloat16 overflows or
    loses every digit (a Reynolds number of 1e6 is ``inf`` in float16).
    """
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    return x


def check_time_grid(name: str, t: object) -> torch.Tensor:
    """Check that ``t`` is a finite, 1-D, strictly increasing tensor with at least two points."""
    t = check_tensor(name, t, ndim=1)
    if t.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 time points, got {t.numel()}")
    if not (t[1:] > t[:-1]).all():
        raise ValueError(f"{name} must be strictly increasing")
    return t


def is_real_number(value: object) -> bool:
    """Whether ``value`` is a real scalar: Python's or NumPy's ints and floats, not a bool (nor a tensor)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_number(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Check a positive (or non-negative) finite real scalar (NumPy's included, bool not) and return it as a float."""
    if not is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not (v == v and abs(v) != float("inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return v


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """Check a positive (or, with ``allow_zero``, non-negative) Python int and return it.

    NumPy integers are refused: callers keep the value they checked, and an ``np.int64`` stored in hparams would
    reach a model card as a string.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    low = 0 if allow_zero else 1
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Check a real ``bool`` and return it.

    A string such as ``"no"`` or ``"false"`` is truthy, so it would silently turn the option on.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_nonnegative_integral(name: str, value: object) -> int:
    """Check a non-negative integer (numpy integers too) and return it as a plain int; ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)
