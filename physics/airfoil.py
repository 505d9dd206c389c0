"""Aerofoil geometry: NACA 4-digit shapes, Selig/Lednicer ``.dat`` files, checks, re-panelling, CST.

Conventions used throughout the zoo:

- coordinates are chord-normalised and dimensionless, shape ``(..., K, 2)`` with columns ``(x, y)``;
- points are in **Selig order**: trailing edge → upper surface → leading edge → lower surface →
  trailing edge, i.e. counter-clockwise, so the shoelace area is positive;
- the contour is closed up to a small trailing-edge gap (first and last points may differ by the
  blunt-trailing-edge thickness); the panel method treats that gap as open.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from hybridzoo.physics.validation import (
    check_bool,
    check_positive_int,
    check_real_value,
    check_solver_dtype,
    check_tensor,
    is_real_number,
)

#: Largest trailing-edge gap (fraction of the contour's x-extent) accepted as "closed".
MAX_TE_GAP = 0.05
MIN_POINTS = 8


# ---------------------------------------------------------------------------------------- NACA 4-digit
def parse_naca4(code: str) -> tuple[float, float, float]:
    """``"2412"`` → ``(m, p, t) = (0.02, 0.4, 0.12)``: max camber, its chord position, thickness."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a string like '2412', got {type(code).__name__}")
    digits = code.strip().upper().removeprefix("NACA").strip()
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"code must be a NACA 4-digit designation like '2412', got {code!r}")
    m, p, t = int(digits[0]) / 100, int(digits[1]) / 10, int(digits[2:]) / 100
    if t <= 0:
        raise ValueError(f"code {code!r} has zero thickness")
    if (m > 0) != (p > 0):
        raise ValueError(f"code {code!r}: camber and its position must both be zero or both non-zero")
    return m, p, t


#: Fewest panels per surface that make a contour :func:`check_airfoil` accepts.
MIN_PANELS_PER_SIDE = MIN_POINTS // 2


def check_panels_per_side(name: str, value: object) -> int:
    """Check a panels-per-surface count (an int >= :data:`MIN_PANELS_PER_SIDE`) and return it."""
    if check_positive_int(name, value) < MIN_PANELS_PER_SIDE:
        raise ValueError(f"{name} must be >= {MIN_PANELS_PER_SIDE} (a contour of at least {MIN_POINTS} points), "
                         f"got {value}")
    return value


def naca4(
    m: torch.Tensor | float,
    p: torch.Tensor | float,
    t: torch.Tensor | float,
    n_per_side: int = 80,
    *,
    closed_te: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """NACA 4-digit aerofoil(s) with cosine spacing, Selig order.

    Args:
        m: maximum camber (fraction of chord), scalar or shape ``(B,)``.
        p: chord position of maximum camber (fraction of chord); ignored where ``m == 0``.
        t: maximum thickness (fraction of chord), ``> 0``.
        n_per_side: panels per surface; the result has ``2 * n_per_side + 1`` points.
        closed_te: use the closed-trailing-edge thickness coefficient (-0.1036 instead of -0.1015).
        dtype: of the result (default: that of tensor inputs, else torch's default).
        device: of the result (default: that of tensor inputs).

    Returns:
        Coordinates ``(2 n + 1, 2)`` for scalar inputs, ``(B, 2 n + 1, 2)`` otherwise; differentiable
        in ``m``, ``p`` and ``t``.
    """
    n = check_panels_per_side("n_per_side", n_per_side)
    check_bool("closed_te", closed_te)  # "no" would be read as True
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float64), got {dtype!r}")
    m, p, t = (check_real_value(name, v) for name, v in (("m", m), ("p", p), ("t", t)))
    tensors = [v for v in (m, p, t) if isinstance(v, torch.Tensor)]
    dtype = dtype or (functools.reduce(torch.promote_types, [v.dtype for v in tensors]) if tensors
                      else torch.get_default_dtype())
    if not dtype.is_floating_point:
        raise TypeError(f"m, p and t give the dtype {dtype}: pass a floating tensor among them, or dtype=")
    device = device or (tensors[0].device if tensors else None)
    m, p, t = (torch.as_tensor(v, dtype=dtype, device=device) for v in (m, p, t))
    scalar = m.ndim == 0 and p.ndim == 0 and t.ndim == 0
    for name, v in (("m", m), ("p", p), ("t", t)):
        if v.ndim > 1:  # a (2, 3) m was flattened into 6 aerofoils
            raise ValueError(f"{name} must be a scalar or of shape (B,), got shape {tuple(v.shape)}")
    sizes = {v.shape[0] for v in (m, p, t) if v.ndim == 1 and v.shape[0] != 1}
    if len(sizes) > 1:
        raise ValueError(f"m, p and t must be scalars or of one length B, got shapes "
                         f"{tuple(m.shape)}, {tuple(p.shape)}, {tuple(t.shape)}")
    m, p, t = torch.broadcast_tensors(m.reshape(-1), p.reshape(-1), t.reshape(-1))
    for name, v, lo, hi in (("m", m, 0.0, 0.2), ("p", p, 0.0, 0.95), ("t", t, 1e-4, 0.5)):
        check_tensor(name, v)
        outside = (v < lo) | (v > hi)
        if name == "p":  # the documented contract: p is ignored where there is no camber
            outside = outside & (m != 0)
        if outside.any():
            raise ValueError(f"{name} must lie in [{lo}, {hi}], got {v.tolist()}")
    if ((m > 0) & (p <= 0)).any():
        raise ValueError("p must be positive where the camber m is positive")
    # an uncambered section's p, which may lie anywhere, only ever multiplies m = 0; one at 1 would divide 0 by 0
    p = torch.where((m == 0) & ((p < 0) | (p > 0.95)), torch.full_like(p, 0.5), p)

    beta = torch.linspace(0.0, math.pi, n + 1, dtype=dtype, device=device)
    x = 0.5 * (1.0 - torch.cos(beta))  # (n+1,) from LE to TE
    x = x.expand(m.shape[0], -1)
    t_, m_, p_ = t[:, None], m[:, None], p[:, None].clamp_min(1e-6)
    a4 = -0.1036 if closed_te else -0.1015
    yt = 5 * t_ * (0.2969 * x.clamp_min(0).sqrt() - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3 + a4 * x**4)
    fore = x < p_
    yc = torch.where(
        fore, m_ / p_**2 * (2 * p_ * x - x**2), m_ / (1 - p_) ** 2 * (1 - 2 * p_ + 2 * p_ * x - x**2)
    )
    dyc = torch.where(fore, 2 * m_ / p_**2 * (p_ - x), 2 * m_ / (1 - p_) ** 2 * (p_ - x))
    th = torch.atan(dyc)
    xu, yu = x - yt * torch.sin(th), yc + yt * torch.cos(th)
    xl, yl = x + yt * torch.sin(th), yc - yt * torch.cos(th)
    upper = torch.stack([xu, yu], -1).flip(1)  # TE → LE
    lower = torch.stack([xl, yl], -1)[:, 1:]  # LE (shared) → TE
    coords = torch.cat([upper, lower], 1)
    return coords[0] if scalar else coords


def naca4_from_code(code: str, n_per_side: int = 80, **kwargs) -> torch.Tensor:
    """NACA 4-digit aerofoil from its designation, e.g. ``naca4_from_code("2412")`` → ``(2n+1, 2)``."""
    return naca4(*parse_naca4(code), n_per_side=n_per_side, **kwargs)


# ---------------------------------------------------------------------------------------- files
def parse_dat(text: str, *, name: str = "text") -> tuple[str, torch.Tensor]:
    """Parse Selig or Lednicer aerofoil text into ``(title, coords (K, 2) float64, Selig order)``.

    Lednicer files (a count line ``n_upper n_lower``, then upper and lower surfaces from the leading
    edge) are converted to Selig order.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {type(text).__name__}")
    title, rows = "", []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            vals = None
        if vals is None or len(vals) != 2:
            if not rows and parts and not title:
                title = line.strip()
            continue
        if not all(math.isfinite(v) for v in vals):  # float() reads "nan" and "inf" as numbers
            raise ValueError(f"{name}: line {number} holds a non-finite coordinate: {line.strip()!r}")
        rows.append(vals)
    if len(rows) < MIN_POINTS:
        raise ValueError(f"{name}: found {len(rows)} coordinate rows, need at least {MIN_POINTS}")
    pts = torch.tensor(rows, dtype=torch.float64)
    nu, nl = pts[0].tolist()
    if nu > 1.5 and nl > 1.5 and nu == int(nu) and nl == int(nl):  # Lednicer count line
        nu, nl = int(nu), int(nl)
        body = pts[1:]
        if body.shape[0] < nu + nl:
            raise ValueError(f"{name}: Lednicer header announces {nu}+{nl} points, found {body.shape[0]}")
        upper, lower = body[:nu], body[nu : nu + nl]
        first_lower = 1 if torch.allclose(upper[0], lower[0]) else 0
        pts = torch.cat([upper.flip(0), lower[first_lower:]], 0)
    return title, pts


def read_dat(path: str | PathLike[str]) -> tuple[str, torch.Tensor]:
    """Read a Selig- or Lednicer-format ``.dat`` file; returns ``(title, coords (K, 2) float64)``."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path {str(p)!r} is not a file")
    return parse_dat(p.read_text(errors="replace"), name=str(p))


def write_dat(path: str | PathLike[str], coords: torch.Tensor, title: str = "aerofoil") -> None:
    """Write ``coords (K, 2)`` as a Selig-format ``.dat`` file (what XFOIL's ``LOAD`` reads)."""
    coords = check_tensor("coords", coords, ndim=2, last_dim=2)
    lines = [title.replace("\n", " ")] + [f"{x: .8f} {y: .8f}" for x, y in coords.detach().cpu().tolist()]
    Path(path).write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------- checks
def signed_area(coords: torch.Tensor) -> torch.Tensor:
    """Shoelace area of the (implicitly closed) contour ``(..., K, 2)`` → ``(...)``; > 0 counter-clockwise."""
    x, y = coords[..., 0], coords[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)


def _segments_cross(coords: torch.Tensor) -> torch.Tensor:
    """Whether any two non-adjacent segments of each polyline ``(..., K, 2)`` properly cross → ``(...)``.

    The orientation products are formed in float64 whatever the dtype of ``coords``: near a leading edge
    consecutive points are ~1e-4 chords apart and almost collinear, and in float32 the rounding of these
    products (relative error ~1e-7 of terms ~1e-12 that nearly cancel) flips their signs, so valid
    float32 contours read as crossing. Float32 coordinates and their differences are exact in float64,
    so the test answers for the polyline the float32 values actually describe: a float32 contour that
    does cross is still caught.
    """
    # MPS has no float64: the check is cheap enough to run on the CPU there.
    device = torch.device("cpu") if coords.device.type == "mps" else coords.device
    coords = coords.detach().to(device=device, dtype=torch.float64)
    lead, k = coords.shape[:-2], coords.shape[-2] - 1
    flat = coords.reshape(-1, k + 1, 2)
    # On a CPU, chunks whose (k, k) matrices fit in a core's cache (~256 KB) run 3-4x faster than one batch
    # of them all (300 contours of 161 points: 37 against 144 ms). A GPU takes as many as keep each of the
    # few (chunk, k, k) float64 temporaries near 128 MB.
    chunk = max(1, (2**15 if device.type == "cpu" else 2**24) // max(1, k * k))
    far = _far_pairs(k, device)
    out = [_crossing(flat[i : i + chunk], far) for i in range(0, flat.shape[0], chunk)]
    return (torch.cat(out) if out else flat.new_zeros(0, dtype=torch.bool)).reshape(lead)


def _crossing(coords: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    a, b = coords[:, :-1], coords[:, 1:]
    # side[i, j]: orientation of point j against segment i (a_i -> b_i). Segment j runs from point j to
    # point j + 1, so the four orientation tests of the pair (i, j) are entries of this one matrix: a_j and
    # b_j against segment i straddle it where apart[i, j], and a_i and b_i against segment j where apart[j, i].
    e = b - a
    side = e[:, :, None, 0] * (coords[:, None, :, 1] - a[:, :, None, 1])
    side -= e[:, :, None, 1] * (coords[:, None, :, 0] - a[:, :, None, 0])
    apart = side[:, :, :-1] * side[:, :, 1:] < 0
    return (apart & apart.mT & far).flatten(1).any(1)


@functools.lru_cache(maxsize=16)
def _far_pairs(k: int, device: torch.device) -> torch.Tensor:
    """``(k, k)``: pairs of segments of a closed polyline of ``k`` segments that share no end point."""
    idx = torch.arange(k, device=device)
    far = (idx[:, None] - idx[None, :]).abs() > 1
    far[0, k - 1] = far[k - 1, 0] = False  # the first and last segments meet at the trailing edge
    return far


def check_airfoil(coords: object, name: str = "coords", *, max_te_gap: float = MAX_TE_GAP) -> torch.Tensor:
    """Validate aerofoil contours ``(..., K, 2)``; return them unchanged.

    Raises ``TypeError``/``ValueError`` naming ``name`` for: a non-tensor or integer tensor, fewer than
    ``MIN_POINTS`` points, NaN/inf, an open contour (trailing-edge gap above ``max_te_gap`` of the
    x-extent), clockwise order (not Selig order), or a self-intersecting contour.
    """
    coords = check_tensor(name, coords, min_ndim=2, last_dim=2)
    if not is_real_number(max_te_gap) or not max_te_gap >= 0:  # NaN turned the check off; inf does so on purpose
        raise ValueError(f"max_te_gap must be a non-negative number (inf: any gap), got {max_te_gap!r}")
    if coords.shape[-2] < MIN_POINTS:
        raise ValueError(f"{name} must hold at least {MIN_POINTS} points per contour, got {coords.shape[-2]}")
    extent = (coords[..., 0].amax(-1) - coords[..., 0].amin(-1)).clamp_min(1e-12)
    gap = (coords[..., 0, :] - coords[..., -1, :]).norm(dim=-1) / extent
    if (gap > max_te_gap).any():
        raise ValueError(
            f"{name} is an open contour: trailing-edge gap {gap.max().item():.3g} of the chord "
            f"exceeds {max_te_gap} (first and last points must meet at the trailing edge)"
        )
    if (signed_area(coords) <= 0).any():
        raise ValueError(f"{name} must be counter-clockwise (Selig order: TE → upper → LE → lower → TE)")
    if _segments_cross(coords).any():
        raise ValueError(f"{name} is self-intersecting")
    return coords


# ---------------------------------------------------------------------------------------- normalising
def normalize(coords: torch.Tensor) -> torch.Tensor:
    """Translate, rotate and scale ``(..., K, 2)`` so the leading edge is (0, 0) and the TE is (1, 0).

    The leading edge is the point farthest from the trailing-edge midpoint; the chord line
    through them becomes the x-axis, which is the reference for the angle of attack.

    Raises:
        TypeError/ValueError: not a real floating tensor ``(..., K, 2)``, NaN or infinite values, or a contour
            of no extent (all points at the trailing-edge midpoint).
    """
    coords = check_tensor("coords", coords, min_ndim=2, last_dim=2)
    te = 0.5 * (coords[..., 0, :] + coords[..., -1, :])
    dist = (coords - te[..., None, :]).norm(dim=-1)
    le = torch.gather(coords, -2, dist.argmax(-1)[..., None, None].expand(*coords.shape[:-2], 1, 2))[
        ..., 0, :
    ]
    chord = te - le
    c = chord.norm(dim=-1, keepdim=True)
    if (c == 0).any():  # every point at the trailing-edge midpoint: no chord line to turn onto the x-axis
        raise ValueError("coords has a contour of zero chord (all its points at the trailing edge)")
    cos, sin = (chord / c).unbind(-1)
    rel = coords - le[..., None, :]
    x = (rel[..., 0] * cos[..., None] + rel[..., 1] * sin[..., None]) / c
    y = (-rel[..., 0] * sin[..., None] + rel[..., 1] * cos[..., None]) / c
    return torch.stack([x, y], -1)


def _interp(s: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``fp (B, M, 2)`` sampled at non-decreasing ``xp (B, M)`` at points ``s (B, P)``."""
    s = torch.minimum(torch.maximum(s, xp[:, :1]), xp[:, -1:])  # no extrapolation: the weight stays in [0, 1]
    # the first sample not below s: xp[i - 1] < s <= xp[i], so a run of equal samples never divides by 0
    i = torch.searchsorted(xp.contiguous(), s.contiguous()).clamp(1, xp.shape[1] - 1)
    lo, hi = xp.gather(1, i - 1), xp.gather(1, i)
    w = ((s - lo) / (hi - lo).clamp_min(1e-15)).clamp(0, 1)[..., None]
    below, above = (fp.gather(1, j[..., None].expand(-1, -1, 2)) for j in (i - 1, i))
    return below * (1 - w) + above * w


def repanel(coords: torch.Tensor, n_per_side: int = 80) -> torch.Tensor:
    """Re-sample contours ``(K, 2)`` or ``(B, K, 2)`` with cosine spacing in arc length on each surface.

    Each surface (trailing edge to leading edge, split at the point of minimum x) gets
    ``n_per_side`` panels, clustered at both ends where curvature and pressure gradients are largest.
    Linear interpolation along the input polyline; points within 1e-9 of their predecessor count as one.
    Returns ``(2 n + 1, 2)`` or ``(B, 2 n + 1, 2)`` in Selig order. A batch gives each contour the result
    it gets alone, bit for bit.
    """
    coords = check_airfoil(coords)
    if coords.ndim not in (2, 3):
        raise ValueError(f"coords must be one contour (K, 2) or a batch (B, K, 2), got shape {tuple(coords.shape)}")
    n = check_panels_per_side("n_per_side", n_per_side)
    single = coords.ndim == 2
    pts = coords[None] if single else coords
    b, k = pts.shape[:2]
    if b == 0:
        return pts.new_zeros(0, 2 * n + 1, 2)
    idx = torch.arange(k, device=pts.device)
    # A point within 1e-9 of its predecessor is moved onto the last point kept before it, so that it adds an
    # arc length of exactly 0: the same arithmetic as dropping it.
    keep = torch.ones(b, k, dtype=torch.bool, device=pts.device)
    keep[:, 1:] = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1) > 1e-9
    last_kept = torch.where(keep, idx, 0).cummax(1).values
    pts = pts.gather(1, last_kept[..., None].expand(-1, -1, 2))
    ile = pts[..., 0].argmin(1)  # the first of equal minima, as in the kept points alone
    at_end = (pts[torch.arange(b, device=pts.device), ile] == pts[:, -1]).all(-1)
    if ((ile == 0) | at_end).any():
        raise ValueError("coords: the leading edge (minimum x) must lie between the two trailing-edge points")
    step = torch.cat([pts.new_zeros(b, 1), (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)], 1)  # (B, K)
    upper = idx <= ile[:, None]
    # Each surface's arc length is summed from its own start (0 at the TE, 0 again at the LE), as it would be
    # for that surface alone; past its end it stays constant.
    s_up = torch.where(upper, step, 0).cumsum(1)
    s_low = torch.where(upper, 0, step).cumsum(1)
    frac = 0.5 * (1 - torch.cos(torch.linspace(0.0, math.pi, n + 1, dtype=pts.dtype, device=pts.device)))
    up = _interp(frac * s_up[:, -1:], s_up, pts)
    # the lower surface starts at the LE: the samples before it are moved onto it, so they add no length
    low_pts = pts.gather(1, torch.maximum(idx, ile[:, None])[..., None].expand(-1, -1, 2))
    low = _interp(frac[1:] * s_low[:, -1:], s_low, low_pts)
    out = torch.cat([up, low], 1)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------- CST
def _bernstein(psi: torch.Tensor, order: int) -> torch.Tensor:
    k = torch.arange(order + 1, dtype=psi.dtype, device=psi.device)
    binom = torch.tensor(
        [math.comb(order, int(i)) for i in range(order + 1)], dtype=psi.dtype, device=psi.device
    )
    return binom * psi[..., None] ** k * (1 - psi[..., None]) ** (order - k)


def cst_surface(
    weights: torch.Tensor, psi: torch.Tensor, te_offset: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Kulfan CST surface ``y(ψ) = ψ^0.5 (1-ψ) Σ_i w_i B_i(ψ) + ψ Δ``.

    Args:
        weights: ``(..., n + 1)`` Bernstein weights.
        psi: ``(..., M)`` chord stations in [0, 1].
        te_offset: trailing-edge ordinate Δ (half the TE thickness, signed).

    Returns:
        ``(..., M)`` ordinates.
    """
    basis = _bernstein(psi, weights.shape[-1] - 1)
    shape = (basis * weights[..., None, :]).sum(-1)
    te = torch.as_tensor(te_offset, dtype=psi.dtype, device=psi.device)
    return psi.clamp_min(0).sqrt() * (1 - psi) * shape + psi * te[..., None]


def cst_fit(coords: torch.Tensor, order: int = 5) -> torch.Tensor:
    """Least-squares Kulfan CST weights of chord-normalised contours ``(..., K, 2)`` in Selig order.

    Returns ``(..., 2 (order + 1) + 1)``: upper weights, lower weights, then the TE thickness. The
    surfaces are split at the point of minimum x; the TE thickness is the y-distance of the end points.
    Coordinates should be normalised first (:func:`normalize`); each contour is fitted separately.
    Chord stations are clamped to [0, 1], which absorbs the small overshoots of a normalised contour.

    Raises:
        ValueError: fewer than ``MIN_POINTS`` points, a clockwise contour (its surfaces would swap), or one
            reaching beyond x/c in [-0.05, 1.05] (not normalised: the clamp would flatten it).
        TypeError: a dtype other than float32/float64.
    """
    coords = check_solver_dtype("coords", check_tensor("coords", coords, min_ndim=2, last_dim=2))
    order = check_positive_int("order", order)
    flat = coords.reshape(-1, *coords.shape[-2:])  # (B, K, 2)
    if flat.shape[1] < MIN_POINTS:
        raise ValueError(f"coords must hold at least {MIN_POINTS} points per contour, got {flat.shape[1]}")
    if flat.shape[0]:
        lo, hi = float(flat[..., 0].amin()), float(flat[..., 0].amax())
        if lo < -0.05 or hi > 1.05:
            raise ValueError(f"coords must be chord-normalised (x/c in [0, 1]; see normalize), got x from "
                             f"{lo:.3g} to {hi:.3g}")
        if (signed_area(flat) <= 0).any():
            raise ValueError("coords must be counter-clockwise (Selig order: TE → upper → LE → lower → TE)")
    rows = torch.arange(flat.shape[1], device=flat.device)
    ile = flat[..., 0].argmin(-1)[:, None]  # (B, 1)
    te_thick = flat[:, 0, 1] - flat[:, -1, 1]  # (B,)
    psi = flat[..., 0].clamp(0, 1)
    # sqrt has an infinite slope at the leading edge (psi = 0), which made every coordinate gradient NaN
    # (inf * 0); the double where takes the one-sided 0 there instead
    inside = psi > 0
    root = torch.where(inside, torch.where(inside, psi, 1.0).sqrt(), 0.0)
    basis = (root * (1 - psi))[..., None] * _bernstein(psi, order)  # (B, K, order + 1)
    weights = []
    # Both surfaces share the leading-edge point; zeroed rows drop the other surface's points from
    # each least-squares problem, so that all contours are fitted in one batched call.
    for on_surface, sign in ((rows <= ile, 1.0), (rows >= ile, -1.0)):
        design = basis * on_surface[..., None]
        rhs = (flat[..., 1] - psi * sign * 0.5 * te_thick[:, None]) * on_surface
        weights.append(torch.linalg.lstsq(design, rhs[..., None]).solution[..., 0])
    return torch.cat([*weights, te_thick[:, None]], -1).reshape(*coords.shape[:-2], 2 * (order + 1) + 1)


def thickness_camber(
    coords: torch.Tensor, stations: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)
) -> torch.Tensor:
    """Thickness and camber at fixed chord stations of normalised contours ``(..., K, 2)``.

    Returns ``(..., 2 * len(stations))``: thickness values then camber values, both in chord units.

    Raises:
        ValueError: ``stations`` empty, or not finite fractions of the chord in [0, 1] (not percent).
    """
    coords = check_tensor("coords", coords, min_ndim=2, last_dim=2)
    flat = coords.reshape(-1, *coords.shape[-2:])
    st = torch.as_tensor(stations, dtype=coords.dtype, device=coords.device)
    if st.ndim != 1 or st.numel() == 0 or not bool((torch.isfinite(st) & (st >= 0) & (st <= 1)).all()):
        raise ValueError(
            f"stations must be a non-empty sequence of chord fractions in [0, 1], got {stations!r}"
        )
    b, k = flat.shape[:2]
    if b == 0:
        return flat.new_zeros(*coords.shape[:-2], 2 * st.numel())
    idx = torch.arange(k, device=flat.device)
    ile = flat[..., 0].argmin(1, keepdim=True)  # (B, 1): the first of equal minima, as one contour alone
    nose = flat.gather(1, ile[..., None].expand(-1, 1, 2))
    # Each surface keeps its own points; the other surface's are moved onto the leading edge, where they sort
    # first among equal x and never lie between two samples an interpolation uses.
    yu, yl = (_interp_x(st, torch.where(other[..., None], nose, flat)) for other in (idx > ile, idx < ile))
    out = torch.cat([yu - yl, 0.5 * (yu + yl)], -1)
    return out.reshape(*coords.shape[:-2], 2 * st.numel())


def _interp_x(x: torch.Tensor, surf: torch.Tensor) -> torch.Tensor:
    """``y`` of the surfaces ``(B, M, 2)`` (any order along x) at chord stations ``x (S,)`` → ``(B, S)``."""
    order = torch.argsort(surf[..., 0], dim=1)
    s = surf.gather(1, order[..., None].expand(-1, -1, 2))
    return _interp(x.expand(s.shape[0], -1), s[..., 0], s)[..., 1]
