"""Hess-Smith panel method: batched, differentiable inviscid lift and pressure of 2-D aerofoils.

Constant-strength source panels (one strength per panel) plus one vortex strength shared by all
panels, with flow tangency at the panel midpoints and the Kutta condition (equal tangential speed on
the two trailing-edge panels). Everything is dimensionless: free stream speed 1, lengths in the units
of the coordinates (chord-normalised in the zoo), angles in radians. The system is solved for two unit
free streams, along x and along y, and each angle's solution is their combination by (cos α, sin α):
any number of angles costs one solve per aerofoil.

The linear system is solved by LU, one aerofoil at a time on the CPU: torch 2.13's *batched* LU routines
return wrong answers under multi-threaded MKL on some machines, while a single matrix is solved
correctly, and a loop of LU solves is still twice as fast as one batched QR (``lstsq``).
:func:`system_residual` exists so that tests can check whatever the solver returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from hybridzoo.physics.airfoil import check_airfoil
from hybridzoo.physics.validation import check_solver_dtype, check_tensor, is_real_number

_INV_2PI = 1.0 / (2.0 * math.pi)


@dataclass
class PanelSolution:
    """Result of :func:`hess_smith` for ``B`` aerofoils of ``N`` panels at ``A`` angles each.

    Attributes:
        cl: lift coefficient from the circulation (Kutta-Joukowski), ``(B, A)``.
        cl_pressure: lift coefficient from integrating ``cp`` over the panels, ``(B, A)``.
        cp: pressure coefficient at the panel midpoints, ``(B, A, N)``.
        sigma: source strengths, ``(B, A, N)``.
        gamma: vortex strength (clockwise positive), ``(B, A)``.
        midpoints: panel midpoints ``(B, N, 2)``.
        vt: tangential surface velocity at the midpoints along the panel direction (Selig order:
            from the upper trailing edge round the nose to the lower one), ``(B, A, N)``; its sign change
            marks the stagnation point, and ``cp = 1 - vt**2``.
    """

    cl: torch.Tensor
    cl_pressure: torch.Tensor
    cp: torch.Tensor
    sigma: torch.Tensor
    gamma: torch.Tensor
    midpoints: torch.Tensor
    vt: torch.Tensor


def _geometry(coords: torch.Tensor):
    start, end = coords[:, :-1], coords[:, 1:]
    d = end - start
    length = d.norm(dim=-1)
    tangent = d / length[..., None]
    normal = torch.stack([tangent[..., 1], -tangent[..., 0]], -1)  # outward for counter-clockwise order
    return start, end, length, tangent, normal


def influence_matrices(coords: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Compute velocities at each midpoint ``i`` induced by unit singularities on panel ``j``.

    Args:
        coords: ``(B, N + 1, 2)`` panel nodes in Selig (counter-clockwise) order.

    Returns:
        ``(an, at, geometry)``: source-normal and source-tangential influence coefficients, each
        ``(B, N, N)``, and the geometry tuple. The vortex coefficients are the same numbers rotated by a
        right angle, local (beta, -ln(r1/r2)) / 2pi instead of (ln(r1/r2), beta) / 2pi: ``bn = at`` and
        ``bt = -an``, so they are never built.
    """
    start, end, length, tangent, normal = _geometry(coords)
    mid = 0.5 * (start + end)
    # Vectors from midpoint i to the ends of panel j, by component: (B, i, j) each. Working with dot
    # products of the panel frames instead of (B, i, j, 2) vectors keeps the assembly at a few passes
    # over N² entries; it is most of the panel method's time at a hundred panels.
    sx, sy = (start[:, None, :, k] - mid[:, :, None, k] for k in (0, 1))
    ex, ey = (end[:, None, :, k] - mid[:, :, None, k] for k in (0, 1))
    cross = torch.addcmul(sx * ey, sy, ex, value=-1.0)
    dot = torch.addcmul(sx * ex, sy, ey)
    beta = torch.atan2(cross, dot)
    # Angle subtended by panel j at midpoint i; on the panel itself it is -pi seen from outside
    # (the limit from the fluid side), which atan2 cannot tell from +pi at cross == 0. Autograd saves
    # atan2's inputs, not its output, so the diagonal may be overwritten in place.
    beta.diagonal(dim1=1, dim2=2).fill_(-math.pi)
    # ln(r1/r2); on the diagonal r1 = r2 = half the panel length exactly (start - mid = -(end - mid)), so 0
    log_ratio = 0.5 * torch.log(torch.addcmul(sx * sx, sy, sy) / torch.addcmul(ex * ex, ey, ey))
    # Unit source: local (ln(r1/r2), beta) / 2pi in panel j's frame (t_j, -n_j), projected on the normal
    # and tangent of panel i. In 2-D, n_i · n_j = t_i · t_j and t_i · n_j = -n_i · t_j.
    t_dot_n = (_INV_2PI * normal) @ tangent.transpose(1, 2)  # [i, j] = n_i · t_j / 2pi
    t_dot_t = (_INV_2PI * tangent) @ tangent.transpose(1, 2)  # t_i · t_j / 2pi
    an = torch.addcmul(log_ratio * t_dot_n, beta, t_dot_t, value=-1.0)
    at = torch.addcmul(log_ratio * t_dot_t, beta, t_dot_n)
    return an, at, (start, end, length, tangent, normal, mid)


def assemble(coords: torch.Tensor, alpha: torch.Tensor):
    """Assemble the Hess-Smith linear system ``M x = rhs`` with ``x = (sigma_1..N, gamma)``.

    Args:
        coords: ``(B, N + 1, 2)`` nodes, Selig order.
        alpha: ``(B, A)`` angles of attack in radians.

    Returns:
        ``(M (B, N+1, N+1), rhs (B, N+1, A), extras)`` where extras holds the influence matrices.
    """
    mat, basis, extras = _assemble_basis(coords)
    vinf = _free_stream(alpha)
    return mat, basis @ vinf.transpose(1, 2), (*extras, vinf)


def _free_stream(alpha: torch.Tensor) -> torch.Tensor:
    """Unit free-stream vectors (cos α, sin α), ``(B, A, 2)``, of angles ``(B, A)``."""
    return torch.stack([torch.cos(alpha), torch.sin(alpha)], -1)


def _assemble_basis(coords: torch.Tensor):
    """The system matrix and the right-hand sides of the two unit free streams, along x and along y.

    The right-hand side is linear in the free stream (cos α, sin α), so is the solution: one solve with
    these two columns serves every angle. Returns ``(M (B, N+1, N+1), basis (B, N+1, 2), extras)``.
    """
    an, at, geom = influence_matrices(coords)
    _, _, _, tangent, normal, _ = geom
    b, n = an.shape[0], an.shape[1]
    mat = coords.new_zeros(b, n + 1, n + 1)
    mat[:, :n, :n] = an
    mat[:, :n, n] = at.sum(-1)  # the vortex-normal row sums: bn = at
    mat[:, n, :n] = at[:, 0] + at[:, -1]
    mat[:, n, n] = -(an[:, 0] + an[:, -1]).sum(-1)  # bt = -an
    # flow tangency: -n_i · V∞ at each midpoint; Kutta: -(t_1 + t_N) · V∞
    basis = -torch.cat([normal, (tangent[:, 0] + tangent[:, -1])[:, None]], 1)  # (B, N+1, 2)
    return mat, basis, (an, at, geom)


def system_residual(coords: torch.Tensor, alpha: torch.Tensor, solution: PanelSolution) -> torch.Tensor:
    """Max-norm residual ``|M x - rhs|`` per aerofoil and angle ``(B, A)`` of a :func:`hess_smith` result."""
    coords, alpha, squeeze, scalar_alpha = _prepare(coords, alpha)
    mat, rhs, _ = assemble(coords, alpha)
    sigma, gamma = solution.sigma, solution.gamma
    if scalar_alpha:
        sigma, gamma = sigma.unsqueeze(-2), gamma.unsqueeze(-1)
    if squeeze:
        sigma, gamma = sigma[None], gamma[None]
    x = torch.cat([sigma, gamma[..., None]], -1)
    res = (mat @ x.transpose(1, 2) - rhs).abs().amax(1)
    if scalar_alpha:
        res = res[..., 0]
    return res[0] if squeeze else res


def _prepare(coords: object, alpha: object) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
    coords = check_solver_dtype("coords", check_airfoil(coords, "coords"))
    if coords.ndim not in (2, 3):
        raise ValueError(f"coords must have shape (K, 2) or (B, K, 2), got {tuple(coords.shape)}")
    squeeze = coords.ndim == 2
    if squeeze:
        coords = coords[None]
    if not isinstance(alpha, torch.Tensor):
        if not is_real_number(alpha):
            raise TypeError(f"alpha must be a tensor or a real number (radians), got {type(alpha).__name__}")
        alpha = torch.tensor(float(alpha), dtype=coords.dtype, device=coords.device)
    alpha = check_tensor("alpha", alpha, ndim=(0, 1, 2))
    if (alpha.abs() > math.pi / 2).any():
        raise ValueError("alpha must be in radians within [-pi/2, pi/2]; did you pass degrees?")
    alpha = alpha.to(coords)  # dtype and device: a CPU alpha with CUDA contours is usual
    scalar_alpha = alpha.ndim == 0
    if alpha.ndim == 0:
        alpha = alpha.expand(coords.shape[0], 1)
    elif alpha.ndim == 1:
        alpha = alpha.expand(coords.shape[0], -1)
    elif alpha.shape[0] != coords.shape[0]:
        raise ValueError(
            f"alpha of shape (B, A) must match the batch of coords ({coords.shape[0]}), "
            f"got {tuple(alpha.shape)}"
        )
    if (_geometry(coords)[2] <= 1e-12).any():
        raise ValueError("coords contains repeated consecutive points (zero-length panels)")
    return coords, alpha, squeeze, scalar_alpha


def _solve(mat: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``mat⁻¹ rhs`` for ``(B, n, n)`` matrices and ``(B, n, A)`` right-hand sides (see the module docstring)."""
    if mat.device.type != "cpu" or mat.shape[0] == 0:
        return torch.linalg.solve(mat, rhs)
    return torch.stack([torch.linalg.solve(m, r) for m, r in zip(mat, rhs)])


def _check_chord(chord: torch.Tensor | float, coords: torch.Tensor) -> torch.Tensor:
    """``chord`` as a ``(B,)`` tensor of ``coords``' dtype and device; finite, positive, shape ``()`` or ``(B,)``."""
    b = coords.shape[0]
    if isinstance(chord, bool) or not isinstance(chord, (torch.Tensor, int, float)):
        raise TypeError(f"chord must be a positive number or a tensor of shape () or ({b},), got {chord!r}")
    chord = torch.as_tensor(chord, dtype=coords.dtype, device=coords.device)
    if chord.shape not in ((), (b,)):
        raise ValueError(f"chord must have shape () or ({b},) for a batch of {b} aerofoils, got {tuple(chord.shape)}")
    if not bool((torch.isfinite(chord) & (chord > 0)).all()):
        raise ValueError(f"chord must be finite and > 0, got {chord.detach().cpu().tolist()}")
    return chord.expand(b)


def hess_smith(
    coords: torch.Tensor, alpha: torch.Tensor | float, chord: torch.Tensor | float | None = None
) -> PanelSolution:
    """Solve the Hess-Smith panel method for aerofoils ``coords`` at angles ``alpha``.

    Args:
        coords: ``(K, 2)`` or ``(B, K, 2)`` panel nodes (``N = K - 1`` panels), Selig order
            (counter-clockwise from the trailing edge), closed up to a small trailing-edge gap.
        alpha: angle(s) of attack in **radians** w.r.t. the x-axis: a scalar, ``(A,)`` shared by all
            aerofoils, or ``(B, A)``.
        chord: reference chord (finite, > 0), scalar or ``(B,)``; default: the distance from the
            trailing-edge midpoint to the farthest contour point.

    Returns:
        :class:`PanelSolution` with batch dimension ``B`` (dropped for ``(K, 2)`` input) and angle
        dimension ``A`` (dropped for a scalar ``alpha``).
        All outputs are differentiable w.r.t. ``coords`` and ``alpha``.

    Raises:
        ValueError: bad ``coords`` or ``alpha``; ``chord`` not finite and > 0, or not of shape ``()`` / ``(B,)``.
        TypeError: ``alpha`` or ``chord`` neither a tensor nor a real number.
    """
    coords, alpha, squeeze, scalar_alpha = _prepare(coords, alpha)
    if chord is not None:  # checked before the assembly; the default below is positive by construction
        chord = _check_chord(chord, coords)
    mat, basis, (an, at, geom) = _assemble_basis(coords)
    start, end, length, tangent, normal, mid = geom
    if chord is None:
        te = 0.5 * (coords[:, 0] + coords[:, -1])
        chord = (coords - te[:, None]).norm(dim=-1).amax(-1)
    x = _solve(mat, basis)  # (B, N+1, 2): the solutions for free streams along x and along y
    # Surface speed of each unit solution; an angle's is their combination by (cos α, sin α).
    vt_basis = at @ x[:, :-1] - an.sum(-1)[..., None] * x[:, -1:] + tangent  # (B, N, 2); bt = -an
    vinf = _free_stream(alpha)
    sigma = vinf @ x[:, :-1].transpose(1, 2)  # (B, A, N)
    gamma = (vinf @ x[:, -1, :, None])[..., 0]  # (B, A)
    vt = vinf @ vt_basis.transpose(1, 2)  # (B, A, N)
    cp = 1.0 - vt**2
    perimeter = length.sum(-1)
    cl = 2.0 * gamma * perimeter[:, None] / chord[:, None]
    force = -(cp @ (normal * length[..., None])) / chord[:, None, None]  # (B, A, 2)
    cl_p = force[..., 1] * vinf[..., 0] - force[..., 0] * vinf[..., 1]  # lift: normal to the free stream
    if scalar_alpha:  # a scalar angle gives no angle dimension
        cl, cl_p, cp, sigma, gamma, vt = cl[:, 0], cl_p[:, 0], cp[:, 0], sigma[:, 0], gamma[:, 0], vt[:, 0]
    sol = PanelSolution(cl, cl_p, cp, sigma, gamma, mid, vt)
    if squeeze:
        sol = PanelSolution(*(getattr(sol, f.name)[0] for f in fields(PanelSolution)))
    return sol


def panel_cl(coords: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Lift coefficient only: ``hess_smith(coords, alpha).cl``."""
    return hess_smith(coords, alpha).cl
