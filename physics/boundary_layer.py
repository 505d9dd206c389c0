"""Integral boundary layer: Thwaites (laminar), Michel (transition), Head (turbulent), Squire-Young drag.

The classical integral methods march the momentum thickness θ and the shape factor H = δ*/θ along
a surface from the stagnation point, given the inviscid edge speed u_e(s), e.g. from the Hess-Smith
panel method. They are what a viscous panel code such as XFOIL refines, at a fraction of its cost,
and what tells a network *where* the inviscid lift stops being right.
Dimensionless throughout: free-stream speed 1, lengths in chords, ``re`` = V∞ c / ν.

- Laminar: Thwaites' quadrature θ² = 0.45 / (Re u_e⁶) ∫ u_e⁵ ds, with λ = Re θ² du_e/ds and the
  Cebeci-Bradshaw fits H(λ); laminar separation where λ < -0.09.
- Transition: Michel's criterion Re_θ > 1.174 (1 + 22400 / Re_s) Re_s^0.46, laminar separation (taken
  to reattach turbulent, a short bubble) or a forced trip, whichever comes first.
- Turbulent: Head's entrainment method with the Ludwieg-Tillmann skin friction; turbulent separation
  where H > 2.4, after which θ and H are held (the method no longer applies past separation). One step
  per station, its pressure term dθ/θ = -(H + 2) du_e/u_e integrated exactly; a speed change of more
  than a factor e^0.1 (about 10 %) between stations is split into sub-steps, so that H follows it and a
  separation part of the way is caught.
- Drag: Squire & Young's formula from the trailing-edge state of both surfaces.

These are the textbook forms (e.g. Moran, "An Introduction to Theoretical and Computational
Aerodynamics", ch. 7; Cebeci & Cousteix, "Modeling and Computation of Boundary-Layer Flows").
Everything is batched over independent surfaces and differentiable away from the switching events.
:mod:`hybridzoo.physics.aerofoil_boundary_layer` applies them to both surfaces of a panel solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hybridzoo.physics.boundary_layer_native import march_native
from hybridzoo.physics.tensor_cache import per_device
from hybridzoo.physics.validation import check_real_value, check_solver_dtype, check_tensor

LAMBDA_SEPARATION = -0.09
H_TURBULENT_START = 1.4
H_TURBULENT_SEPARATION = 2.4
#: Largest change of log u_e that one step of Head's method takes; a larger one between two stations is
#: split into up to MAX_SUBSTEPS sub-steps of equal speed ratio.
MAX_LOG_SPEED_STEP = 0.1
MAX_SUBSTEPS = 64


@dataclass
class SurfaceLayer:
    """Boundary layer along ``M`` surfaces of ``P`` stations, as returned by :func:`march`.

    Attributes:
        theta: momentum thickness at each station, chords, ``(M, P)``.
        shape_factor: H = δ*/θ at each station, ``(M, P)``.
        transition: station index where the layer turned turbulent, ``(M,)``; ``-1`` if it never did.
        laminar_separation: station index of laminar separation (λ < -0.09), ``(M,)``; ``-1`` if none.
        turbulent_separation: station index of turbulent separation (H > 2.4), ``(M,)``; ``-1`` if none.
    """

    theta: torch.Tensor
    shape_factor: torch.Tensor
    transition: torch.Tensor
    laminar_separation: torch.Tensor
    turbulent_separation: torch.Tensor

    @property
    def displacement_thickness(self) -> torch.Tensor:
        """δ* = H θ at each station, ``(M, P)``."""
        return self.shape_factor * self.theta


# ---------------------------------------------------------------------------------------- closures
def thwaites_shape_factor(lam: torch.Tensor) -> torch.Tensor:
    """Cebeci-Bradshaw fit of H(λ) for Thwaites' method (λ clipped to its fitted range [-0.1, 0.25])."""
    lam = lam.clamp(-0.1, 0.25)
    return torch.where(
        lam >= 0, 2.61 - 3.75 * lam + 5.24 * lam**2, 2.088 + 0.0731 / (lam + 0.14)
    )


def _power(base: torch.Tensor, exponent: torch.Tensor | float) -> torch.Tensor:
    """``base ** exponent`` for positive ``base`` as exp(exponent · log base).

    One vectorised exp and log instead of an elementwise ``pow``, which dominated the turbulent march;
    a per-element exponent also lets a two-branch fit cost one power instead of two.
    """
    return torch.exp(exponent * torch.log(base))


# Constants of the turbulent closures. They run once per station on small tensors, where a Python float
# operand costs a scalar conversion that takes longer than the arithmetic itself, so the closures take
# them as tensors of their data's dtype and device (:func:`_k`).
# Cebeci & Bradshaw's two-branch fit H1 = 3.3 + c (H - h0)^p has branch (h0, c, p) below and above
# H = 1.6, where H1 = 5.3; its inverse needs (h0, log c, 1/p).
_CONSTANTS = {
    "h1_base": 3.3,
    "h1_fit": ((1.1, 0.6778), (0.8234, 1.5501), (-1.287, -3.064)),
    "h1_inverse": ((1.1, 0.6778), (math.log(0.8234), math.log(1.5501)), (-1 / 1.287, -1 / 3.064)),
    "log_half_cf0": math.log(0.246 / 2),
    "cf_h": 0.678 * math.log(10.0),  # 10^(-0.678 H) = exp(-cf_h H)
    "cf_re": 0.268,
    "entrainment": 0.0306,
    "entrainment_base": 3.0,
    "entrainment_exponent": -0.6169,
    "h_separation": H_TURBULENT_SEPARATION,
}
_CONSTANT_TENSORS: dict = {}


def _k(like: torch.Tensor) -> dict[str, torch.Tensor]:
    """:data:`_CONSTANTS` as tensors of ``like``'s dtype and device (built once for each)."""
    return per_device(
        _CONSTANT_TENSORS,
        like,
        lambda t: {name: torch.tensor(v, dtype=t.dtype, device=t.device) for name, v in _CONSTANTS.items()},
    )


def _branch(low: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-element constants of a two-branch fit: ``table[i]`` is (value where ``low``, value elsewhere)."""
    k = table.reshape(table.shape[0], 2, *[1] * low.ndim)
    return torch.where(low, k[:, 0], k[:, 1]).unbind(0)


def head_entrainment_shape(h: torch.Tensor) -> torch.Tensor:
    """Head's H1(H) = (δ - δ*)/θ, in Cebeci & Bradshaw's two-branch fit."""
    k = _k(h)
    h0, coef, expo = _branch(h <= 1.6, k["h1_fit"])
    return k["h1_base"] + coef * _power((h - h0).clamp_min(1e-6), expo)


def head_shape_from_entrainment(h1: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`head_entrainment_shape` (H1 ≤ 3.3 has no inverse: it maps to a large H)."""
    k = _k(h1)
    h0, log_coef, inv_expo = _branch(h1 >= 5.3, k["h1_inverse"])
    return h0 + torch.exp((torch.log((h1 - k["h1_base"]).clamp_min(1e-6)) - log_coef) * inv_expo)


def ludwieg_tillmann_cf(h: torch.Tensor, re_theta: torch.Tensor) -> torch.Tensor:
    """Turbulent skin friction Cf = 0.246 · 10^(-0.678 H) · Re_θ^-0.268."""
    return 2 * _half_cf(h, torch.log(re_theta))


def _half_cf(h: torch.Tensor, log_re_theta: torch.Tensor) -> torch.Tensor:
    """Cf / 2 of :func:`ludwieg_tillmann_cf` from log Re_θ, which the march has without forming Re_θ."""
    k = _k(h)
    return torch.exp(k["log_half_cf0"] - k["cf_h"] * h - k["cf_re"] * log_re_theta.clamp_min(0.0))


def head_entrainment(h1: torch.Tensor) -> torch.Tensor:
    """Head's entrainment rate F = (1/u_e) d(u_e θ H1)/ds = 0.0306 (H1 - 3)^-0.6169."""
    k = _k(h1)
    return k["entrainment"] * _power((h1 - k["entrainment_base"]).clamp_min(1e-6), k["entrainment_exponent"])


def michel_re_theta(re_s: torch.Tensor) -> torch.Tensor:
    """Michel's transition Re_θ at local Reynolds number Re_s = u_e s Re."""
    re_s = re_s.clamp_min(1.0)
    return 1.174 * (1 + 22400 / re_s) * _power(re_s, 0.46)


def squire_young(theta_te: torch.Tensor, h_te: torch.Tensor, ue_te: torch.Tensor) -> torch.Tensor:
    """Squire-Young drag of one surface: 2 θ_TE u_e,TE^((H_TE + 5) / 2)."""
    return 2 * theta_te * ue_te ** ((h_te + 5) / 2)


# ---------------------------------------------------------------------------------------- march
def march(
    ue: torch.Tensor,
    s: torch.Tensor,
    re: torch.Tensor | float,
    trip: torch.Tensor | float | None = None,
) -> SurfaceLayer:
    """March the integral boundary layer along ``M`` surfaces.

    Args:
        ue: edge speed at the stations, ``(M, P)``, > 0 (free stream = 1).
        s: arc length from the stagnation point at the stations, chords, ``(M, P)``, with ``s[:, 0] > 0``
            and non-decreasing (repeated stations, ``ds = 0``, are allowed as padding and change nothing).
            Between s = 0 and the first station the speed is taken to grow linearly (stagnation flow);
            for a flat plate, start at a tiny ``s``.
        re: chord Reynolds number, scalar or ``(M,)``.
        trip: arc length of forced transition (> 0), scalar or ``(M,)``; ``None``: free transition only.

    Returns:
        :class:`SurfaceLayer` with θ and H at every station and the event station indices.
    """
    check_solver_dtype("ue", check_tensor("ue", ue, ndim=2, positive=True))
    if isinstance(s, torch.Tensor) and s.device != ue.device:
        raise ValueError(f"s is on {s.device} and ue on {ue.device}: they must be on the same device")
    check_tensor("s", s, ndim=2, positive=True)
    if s.shape != ue.shape:
        raise ValueError(f"s {tuple(s.shape)} and ue {tuple(ue.shape)} must have the same shape (M, P)")
    s = s.to(ue.dtype)  # as re and trip are: the result has ue's dtype
    m, p = ue.shape
    if p < 2:
        raise ValueError(f"ue needs at least 2 stations per surface, got shape {tuple(ue.shape)}")
    if (torch.diff(s, dim=1) < 0).any():
        raise ValueError("s must be non-decreasing along each surface")
    re = _per_surface("re", re, ue, m, positive=True)
    return _march(ue, s, re.expand(m), None if trip is None else _per_surface("trip", trip, ue, m, positive=True))


def _per_surface(
    name: str, value: object, like: torch.Tensor, m: int | None, *, positive: bool = False
) -> torch.Tensor:
    """Check ``value``, a real scalar or (if ``m`` is given) one value per surface ``(m,)``.

    Returns it as a finite tensor of ``like``'s dtype and device; raises ``TypeError``/``ValueError``
    naming ``name`` otherwise.
    """
    value = check_real_value(name, value)
    t = check_tensor(name, torch.as_tensor(value, dtype=like.dtype, device=like.device), positive=positive)
    if t.ndim != 0 and (m is None or t.shape != (m,)):
        per_surface = "" if m is None else f" or one value per surface, shape ({m},)"
        raise ValueError(f"{name} must be a scalar{per_surface}, got shape {tuple(t.shape)}")
    return t


def _head_step(
    state: tuple[torch.Tensor, ...],
    log_speed_ratio: torch.Tensor,
    log_ure: torch.Tensor,
    ds: torch.Tensor,
    uds: torch.Tensor,
    ue: torch.Tensor,
    active: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """One step of Head's method from ``state = (θ, H, H1, u_e θ H1)`` to a station of speed ``ue``.

    ``log_speed_ratio`` is log(u_start / u_end), ``log_ure`` log(u_end Re), ``ds`` the step length and
    ``uds`` u_end ds; surfaces where ``active`` is False keep their state. The momentum equation
    dθ/ds = Cf/2 - (H + 2) (θ / u_e) du_e/ds is split into its two terms: the pressure term is integrated
    exactly at the H of the step's start, dθ/θ = -(H + 2) du_e/u_e, i.e. θ (u_start / u_end)^(H + 2); the
    skin friction (small, of one sign) by an explicit step. An explicit step of the pressure term,
    θ (1 - (H + 2) Δu_e/u_e), turns negative once Δu_e/u_e > 1/(H + 2) (a 30 % speed-up over one short
    panel, as at a trailing edge), and θ collapsed to its floor.
    """
    theta, h, h1, h1u = state
    pressure = torch.exp((h + 2) * log_speed_ratio)
    theta_t = (theta * pressure + _half_cf(h, torch.log(theta) + log_ure) * ds).clamp_min(1e-9)
    h1u_t = h1u + head_entrainment(h1) * uds
    h1_t = h1u_t / (ue * theta_t)
    h_t = head_shape_from_entrainment(h1_t).clamp(1.05, 4.0)
    return tuple(torch.where(active, new, old) for new, old in zip((theta_t, h_t, h1_t, h1u_t), state))


def _march(ue: torch.Tensor, s: torch.Tensor, re: torch.Tensor, trip: torch.Tensor | None) -> SurfaceLayer:
    """:func:`march` on arguments already checked, with ``re (M,)`` and ``trip`` a tensor or ``None``.

    Runs the compiled kernel of :mod:`~hybridzoo.physics.boundary_layer_native` where it can (CPU,
    float32/float64, finite inputs, no derivative taken), and the torch version, :func:`_march_torch`, elsewhere.
    """
    fused = march_native(ue, s, re, trip)
    return _march_torch(ue, s, re, trip) if fused is None else SurfaceLayer(*fused)


def _march_torch(ue: torch.Tensor, s: torch.Tensor, re: torch.Tensor, trip: torch.Tensor | None) -> SurfaceLayer:
    """The march in torch ops: differentiable, on any device and dtype; the definition the kernel follows."""
    m, p = ue.shape
    ds = torch.diff(s, dim=1)
    trip_s = torch.full((m,), torch.inf, dtype=ue.dtype, device=ue.device) if trip is None else trip.expand(m)
    # The laminar part does not depend on what follows it, so it is solved for all stations at once;
    # only Head's turbulent march needs a loop.
    real = torch.cat([torch.ones_like(ds[:, :1], dtype=torch.bool), ds > 0], 1)  # padding repeats a station
    cols = torch.arange(p, device=ue.device)
    last_real = torch.where(real, cols, torch.zeros_like(cols)).cummax(1).values
    u0, u1 = ue[:, :-1], ue[:, 1:]
    # ∫ u⁵ ds, exact for u_e linear between stations: ds (u₁⁶ - u₀⁶) / (6 (u₁ - u₀)); linear from 0 before s₀.
    horner = u0 + u1  # Σᵢ u₁ⁱ u₀⁵⁻ⁱ by Horner's rule: products, not the slow elementwise pow
    u0_power = u0
    for _ in range(4):
        u0_power = u0_power * u0
        horner = u0_power + u1 * horner
    steps = ds * horner / 6
    integral = torch.cat([ue[:, :1] ** 5 * s[:, :1] / 6, steps], 1).cumsum(1)
    dudx = torch.cat([ue[:, :1] / s[:, :1], torch.diff(ue, dim=1) / ds.clamp_min(1e-12)], 1)
    dudx = dudx.gather(1, last_real)  # a padding station keeps the last real gradient
    ue3 = ue * ue * ue
    theta2_lam = 0.45 * integral / (re[:, None] * ue3 * ue3)
    theta_lam = torch.sqrt(theta2_lam)
    lam = re[:, None] * theta2_lam * dudx
    h_lam = thwaites_shape_factor(lam)
    lsep = real & (lam < LAMBDA_SEPARATION)
    michel = real & (ue * theta_lam * re[:, None] > michel_re_theta(ue * s * re[:, None]))
    start = lsep | michel | (real & (s >= trip_s[:, None]))
    ever = start.any(1)
    none = torch.full((m,), -1, dtype=torch.long, device=ue.device)
    i_tr = torch.where(ever, start.int().argmax(1), none)
    i_lsep = torch.where(ever & lsep.gather(1, i_tr.clamp_min(0)[:, None])[:, 0], i_tr, none)

    theta = theta_lam.gather(1, i_tr.clamp_min(0)[:, None])[:, 0]  # Head's method starts from θ at transition
    h = torch.full_like(theta, H_TURBULENT_START)
    h1 = head_entrainment_shape(h)
    h1u = ue.gather(1, i_tr.clamp_min(0)[:, None])[:, 0] * theta * h1
    thetas, shapes = [theta], [h]
    first = int(i_tr[ever].min()) if bool(ever.any()) else p
    # Everything that does not depend on the marched state is computed for all stations up front, with
    # each station's values in a contiguous row: the loop is ~35 small ops per station, and their number,
    # not their size, sets the cost of the whole boundary layer; separation (H > 2.4, after which
    # nothing steps) is read off the state afterwards for the same reason. H1 is carried as state, as
    # Head's method integrates it: re-evaluating it from H would cost a fit per station and, since the
    # fit's two branches do not quite meet at H = 1.6, would not return the H1 that was integrated.
    on = ((cols > i_tr[:, None]) & ever[:, None] & real).t().contiguous()  # turbulent at j, from j-1
    log_ue = torch.log(ue)
    log_re = torch.log(re)
    ln_ure = (log_ue + log_re[:, None]).t().contiguous()  # log Re_θ = log θ + log(u_e Re)
    # log(u_{j-1} / u_j): the pressure term of the momentum equation is integrated exactly over a step.
    log_speed_ratio = torch.cat([torch.zeros_like(ds[:, :1]), log_ue[:, :-1] - log_ue[:, 1:]], 1).t().contiguous()
    ds_t = torch.cat([torch.zeros_like(ds[:, :1]), ds], 1).t().contiguous()
    uds = ue.t() * ds_t
    ue_t = ue.t().contiguous()
    # Where u_e changes by more than a factor e^MAX_LOG_SPEED_STEP between two stations (next to a stagnation
    # point, over a short trailing-edge panel, where a panel solution is poor), one step at the H of its start
    # is far off: H moves within the step, and the layer may separate part of the way. Those steps alone are
    # split into sub-steps of equal speed ratio (each surface by its own count, so that a result does not
    # depend on the batch it is marched in); their stations, surfaces and counts are found once, up front.
    at, surface = (on & (log_speed_ratio.abs() > MAX_LOG_SPEED_STEP)).nonzero().unbind(1)
    n_sub = torch.ceil(log_speed_ratio[at, surface].abs() / MAX_LOG_SPEED_STEP).clamp_max(MAX_SUBSTEPS)
    n_split = torch.bincount(at, minlength=p).tolist()
    n_sub_max = torch.zeros(p, dtype=n_sub.dtype, device=ue.device).scatter_reduce(0, at, n_sub, "amax")
    n_sub_max = n_sub_max.long().tolist()
    split_at, n_sub = surface.split(n_split), n_sub.split(n_split)
    h_separation = _k(h)["h_separation"]
    state = (theta, h, h1, h1u)
    for j in range(max(first, 0) + 1, p):  # Head's method on surfaces turbulent at j-1
        step = on[j] & (state[1] <= h_separation)
        new = _head_step(state, log_speed_ratio[j], ln_ure[j], ds_t[j], uds[j], ue_t[j], step)
        if n_split[j]:
            idx, n = split_at[j], n_sub[j]
            sub = tuple(v[idx] for v in state)
            u_a, log_u_a = ue[idx, j - 1], log_ue[idx, j - 1]
            ratio = log_ue[idx, j] - log_u_a  # log(u_j / u_{j-1}), split into n equal parts
            ds_per_speed = ds_t[j][idx] / (ue[idx, j] - u_a)  # u_e linear in s between stations, as for Thwaites
            log_re_j = log_re[idx]
            u_prev, log_u_prev = u_a, log_u_a
            for k in range(n_sub_max[j]):
                # Past its own count a surface rests (fraction 1: no speed change, ds = 0, and inactive).
                log_u = log_u_a + ratio * ((k + 1) / n).clamp_max(1.0)
                u = torch.exp(log_u)
                d_s = (u - u_prev) * ds_per_speed
                active = (k < n) & (sub[1] <= h_separation)
                sub = _head_step(sub, log_u_prev - log_u, log_u + log_re_j, d_s, u * d_s, u, active)
                u_prev, log_u_prev = u, log_u
            new = tuple(v.index_put((idx,), w) for v, w in zip(new, sub))
        state = new
        thetas.append(state[0])
        shapes.append(state[1])
    # Column j holds the state after station j; the stations before any surface turned turbulent repeat
    # the starting state.
    n_lead = p - len(thetas)
    theta_turb = torch.stack([thetas[0]] * n_lead + thetas, -1)
    h_turb = torch.stack([shapes[0]] * n_lead + shapes, -1)
    tsep = h_turb > H_TURBULENT_SEPARATION
    i_tsep = torch.where(tsep.any(1), tsep.int().argmax(1), none)
    turbulent = (i_tr[:, None] >= 0) & (cols >= i_tr[:, None])
    theta_all = torch.where(turbulent, theta_turb, theta_lam)
    h_all = torch.where(turbulent, h_turb, h_lam)
    return SurfaceLayer(theta_all, h_all, i_tr, i_lsep, i_tsep)
