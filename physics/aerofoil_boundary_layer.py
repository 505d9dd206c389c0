"""The boundary layers of both surfaces of an aerofoil, from a Hess-Smith panel solution.

Each surface is marched (:func:`hybridzoo.physics.boundary_layer.march`) from the stagnation point to
the trailing edge on the panel method's tangential speed; their trailing-edge state and the positions
of transition and separation are the network inputs of the residual aerofoil model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hybridzoo.physics.boundary_layer import _march, _per_surface, squire_young
from hybridzoo.physics.panel import PanelSolution
from hybridzoo.physics.validation import check_real_value, check_tensor


@dataclass
class AerofoilLayer:
    """Trailing-edge state and event positions of both surfaces of ``B`` aerofoils at ``A`` angles.

    The last dimension of every ``(B, A, 2)`` field is (upper, lower) surface.

    Attributes:
        theta_te: momentum thickness at the trailing edge, chords, ``(B, A, 2)``.
        shape_factor_te: H at the trailing edge, ``(B, A, 2)``.
        x_transition, x_laminar_separation, x_turbulent_separation: chordwise position x/c of each
            event, ``(B, A, 2)``; the trailing-edge x where it does not happen on that surface.
        x_stagnation: chordwise position of the stagnation point, ``(B, A)``.
        cd: Squire-Young profile drag coefficient, ``(B, A)``.
    """

    theta_te: torch.Tensor
    shape_factor_te: torch.Tensor
    x_transition: torch.Tensor
    x_laminar_separation: torch.Tensor
    x_turbulent_separation: torch.Tensor
    x_stagnation: torch.Tensor
    cd: torch.Tensor

    def features(self) -> torch.Tensor:
        """``(B, A, 11)`` network inputs: per surface log10 θ_TE, H_TE and the three event positions, then log10 cd."""
        per_surface = torch.stack(
            [
                torch.log10(self.theta_te),
                self.shape_factor_te,
                self.x_transition,
                self.x_laminar_separation,
                self.x_turbulent_separation,
            ],
            -1,
        )  # (B, A, 2, 5)
        return torch.cat([per_surface.flatten(-2), torch.log10(self.cd)[..., None]], -1)


N_FEATURES = 11


def _stagnation(vt: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index k with vt[k] < 0 <= vt[k+1] nearest the leading edge, and the fraction of the way to k+1."""
    change = (vt[..., :-1] < 0) & (vt[..., 1:] >= 0)  # (..., N-1)
    x_pair = torch.where(change, x[..., :-1], torch.full_like(x[..., :-1], torch.inf))
    k = x_pair.argmin(-1)
    fallback = vt.abs().argmin(-1).clamp_max(vt.shape[-1] - 2)
    k = torch.where(change.any(-1), k, fallback)
    v0 = vt.gather(-1, k[..., None])[..., 0]
    v1 = vt.gather(-1, (k + 1)[..., None])[..., 0]
    frac = (-v0 / (v1 - v0)).clamp(0, 1).nan_to_num(0.5)
    return k, frac


def aerofoil_boundary_layer(
    solution: PanelSolution, re: torch.Tensor | float, trip: float | None = None
) -> AerofoilLayer:
    """Both surfaces' boundary layers of a batched panel solution at Reynolds number ``re``.

    Args:
        solution: :func:`~hybridzoo.physics.panel.hess_smith` result with a batch and an angle
            dimension (``vt (B, A, N)``, ``midpoints (B, N, 2)``), chord-normalised contours.
        re: chord Reynolds number, scalar or ``(B, A)``.
        trip: forced transition at this arc length from the stagnation point (chords, > 0), or ``None``.

    Returns:
        :class:`AerofoilLayer`; the surfaces are split at the stagnation point, found as the sign
        change of the tangential velocity nearest the leading edge.
    """
    vt, mid = solution.vt, solution.midpoints
    if vt.ndim != 3 or mid.ndim != 3:
        raise ValueError(
            f"solution must be batched over aerofoils and angles (vt (B, A, N)), got vt {tuple(vt.shape)}"
        )
    b, a, n = vt.shape
    re = check_real_value("re", re)
    re_t = check_tensor("re", torch.as_tensor(re, dtype=vt.dtype, device=vt.device), positive=True)
    if re_t.ndim and re_t.shape != (b, a):
        raise ValueError(f"re must be a scalar or (B, A) = {(b, a)}, got shape {tuple(re_t.shape)}")
    re_t = re_t.expand(b, a)
    if b * a == 0:  # no aerofoil or no angle: nothing to march
        per_surface, per_case = vt.new_zeros(b, a, 2), vt.new_zeros(b, a)
        return AerofoilLayer(*[per_surface] * 5, per_case, per_case)
    x = mid[..., 0][:, None].expand(b, a, n)
    arc = torch.cat([mid.new_zeros(b, 1), (mid[:, 1:] - mid[:, :-1]).norm(dim=-1).cumsum(-1)], -1)
    arc = arc[:, None].expand(b, a, n)
    k, frac = _stagnation(vt, x)
    arc_k = arc.gather(-1, k[..., None])[..., 0]
    arc_st = arc_k + frac * (arc.gather(-1, (k + 1)[..., None])[..., 0] - arc_k)
    x_k = x.gather(-1, k[..., None])[..., 0]
    x_st = x_k + frac * (x.gather(-1, (k + 1)[..., None])[..., 0] - x_k)
    # Both surfaces march together, each padded (by repeating its last station) to the longer one.
    length = torch.maximum(k + 1, n - 1 - k).amax().item()
    steps = torch.arange(length, device=vt.device)
    idx = torch.stack(
        [
            (k[..., None] - steps).clamp_min(0),  # stagnation → upper trailing edge
            (k[..., None] + 1 + steps).clamp_max(n - 1),  # stagnation → lower trailing edge
        ]
    )  # (2, B, A, P)
    ue = vt.abs()[None].expand(2, -1, -1, -1).gather(-1, idx).clamp_min(1e-6)
    s = (arc[None].expand(2, -1, -1, -1).gather(-1, idx) - arc_st[..., None]).abs().clamp_min(1e-6)
    s = torch.cummax(s, -1).values
    m = 2 * b * a
    trip_t = None if trip is None else _per_surface("trip", trip, vt, None, positive=True)
    # ue and s are valid by construction (clamped, cumulative): skip march's checks.
    layer = _march(ue.reshape(m, length), s.reshape(m, length), re_t[None].expand(2, -1, -1).reshape(-1), trip_t)
    xs = x[None].expand(2, -1, -1, -1).gather(-1, idx).reshape(m, length)
    x_te = xs[:, -1]

    def where(event: torch.Tensor) -> torch.Tensor:
        at = torch.where(event >= 0, xs.gather(-1, event.clamp_min(0)[:, None])[:, 0], x_te)
        return at.reshape(2, b, a).movedim(0, -1)

    def te(field: torch.Tensor) -> torch.Tensor:
        return field[:, -1].reshape(2, b, a).movedim(0, -1)

    theta_te, h_te = te(layer.theta), te(layer.shape_factor)
    cd = squire_young(theta_te, h_te, ue[..., -1].movedim(0, -1)).sum(-1)
    return AerofoilLayer(
        theta_te,
        h_te,
        where(layer.transition),
        where(layer.laminar_separation),
        where(layer.turbulent_separation),
        x_st,
        cd,
    )
