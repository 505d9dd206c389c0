"""A differentiable 2-D incompressible Navier-Stokes solver on a staggered (MAC) grid.

One step (operator splitting, unit density)::

    u*      = advect(u^n; u^n, dt)              semi-Lagrangian or MacCormack, RK2 back-trace (physics/advection.py)
    u**     = u* + dt * nu * lap(u*)            explicit, or implicit (backward Euler, conjugate gradients)
    p^{n+1} = A^{-1}(-div(u**) / dt)            pressure Poisson solve (physics/pressure.py)
    u^{n+1} = u** - dt * grad(p^{n+1})          projection: div(u^{n+1}) = 0 to solver tolerance

Grid: ``nx * ny`` square cells of size ``h = length_x / nx`` (m). Pressure lives at cell centres
``(B, ny, nx)``; ``u`` at x-faces (``x = i h``, ``y = (j + 1/2) h``) and ``v`` at y-faces
(``x = (i + 1/2) h``, ``y = j h``). Shapes: ``u (B, ny, nx)`` if x is periodic else
``(B, ny, nx + 1)``; ``v (B, ny, nx)`` if y is periodic else ``(B, ny + 1, nx)``.

Boundaries: x is ``"periodic"`` or ``"inflow-outflow"`` (a prescribed inflow profile on the left
face, a zero-pressure, zero-gradient outflow on the right); y is ``"periodic"``, ``"noslip"`` or
``"slip"`` walls. Obstacles are a boolean mask of solid cells; faces touching them carry no flow.
Velocities are in m/s, ``dt`` in s, the kinematic viscosity ``nu`` in m²/s (a float or a
``(B,)`` tensor, so a batch can mix Reynolds numbers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from hybridzoo.physics.advection import maccormack, sample, semi_lagrangian
from hybridzoo.physics.conjugate_gradient import check_tolerance, default_tol, pcg
from hybridzoo.physics.pressure import FIELD_DTYPES, PoissonOperator, check_solid
from hybridzoo.physics.tensor_cache import per_device
from hybridzoo.physics.validation import check_bool, check_positive_int, check_positive_number, check_tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

XBoundary = Literal["periodic", "inflow-outflow"]
YBoundary = Literal["periodic", "noslip", "slip"]
State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
_PAD = 2  # ghost layers: enough for a back-trace of up to one cell at max_cfl <= 1


class NavierStokes2D:
    """The solver for one domain; stateless apart from cached masks, so one instance serves any batch.

    Args:
        nx, ny: cells along x and y.
        length_x: domain length along x (m); ``h = length_x / nx`` and the domain height is ``ny * h``.
        x_boundary: ``"periodic"`` or ``"inflow-outflow"``.
        y_boundary: ``"periodic"``, ``"noslip"`` or ``"slip"``.
        solid: ``(ny, nx)`` bool mask of obstacle cells, or ``None``.
        inflow: ``(ny,)`` inflow velocity profile on the left face (m/s); required for inflow-outflow. A
            constant of the solver: one that requires grad is refused, since no gradient would reach it.
        advection: ``"maccormack"`` (second order, limited) or ``"semi-lagrangian"``.
        diffusion: ``"explicit"`` (needs ``nu dt / h² <= 1/4``) or ``"implicit"``.
        max_cfl: largest ``dt * max|u| / h`` a step accepts.
        pressure_tol: relative residual of the pressure solve, in ``(0, 1)`` (default ``None``: 1e-10 in
            float64, 1e-5 otherwise).
        max_pressure_iter: CG iteration cap; a solve that reaches it above ``pressure_tol`` warns.
        validate: check the state for NaNs and the CFL number every step (one more host sync per step; the
            pressure solve's CG syncs once per iteration to test convergence either way).
    """

    def __init__(
        self,
        nx: int,
        ny: int,
        length_x: float,
        x_boundary: XBoundary = "periodic",
        y_boundary: YBoundary = "periodic",
        solid: torch.Tensor | None = None,
        inflow: torch.Tensor | None = None,
        advection: Literal["maccormack", "semi-lagrangian"] = "maccormack",
        diffusion: Literal["explicit", "implicit"] = "explicit",
        max_cfl: float = 1.0,
        pressure_tol: float | None = None,
        max_pressure_iter: int = 500,
        validate: bool = True,
    ) -> None:
        check_positive_int("nx", nx)
        check_positive_int("ny", ny)
        if nx < 2 or ny < 2:
            raise ValueError(f"nx and ny must be >= 2, got nx={nx}, ny={ny}")
        self.h = check_positive_number("length_x", length_x) / nx
        if x_boundary not in ("periodic", "inflow-outflow"):
            raise ValueError(f"x_boundary must be 'periodic' or 'inflow-outflow', got {x_boundary!r}")
        if y_boundary not in ("periodic", "noslip", "slip"):
            raise ValueError(f"y_boundary must be 'periodic', 'noslip' or 'slip', got {y_boundary!r}")
        if advection not in ("maccormack", "semi-lagrangian"):
            raise ValueError(f"advection must be 'maccormack' or 'semi-lagrangian', got {advection!r}")
        if diffusion not in ("explicit", "implicit"):
            raise ValueError(f"diffusion must be 'explicit' or 'implicit', got {diffusion!r}")
        self.max_cfl = check_positive_number("max_cfl", max_cfl)
        if self.max_cfl > _PAD - 1:
            raise ValueError(f"max_cfl must be <= {_PAD - 1} (ghost layers of the back-trace), got {max_cfl}")
        self.nx, self.ny = nx, ny
        self.x_boundary, self.y_boundary = x_boundary, y_boundary
        self.advection, self.diffusion = advection, diffusion
        self.validate = check_bool("validate", validate)  # "no" would be True, None False
        if solid is not None:
            solid = check_solid(solid, ny, nx)
        self.solid = solid
        if x_boundary == "inflow-outflow":
            if inflow is None:
                raise ValueError("inflow is required when x_boundary='inflow-outflow'")
            inflow = check_tensor("inflow", inflow, ndim=1)
            if inflow.requires_grad:  # it is a constant of the solver, cached per dtype and device
                raise ValueError("inflow must not require grad: no gradient reaches the inflow profile; "
                                 "pass inflow.detach()")
            if inflow.shape[0] != ny:
                raise ValueError(f"inflow must have shape ({ny},), got {tuple(inflow.shape)}")
            inflow = inflow.detach().double().cpu()
        elif inflow is not None:
            raise ValueError("inflow is only used with x_boundary='inflow-outflow'")
        self.inflow = inflow
        self.pressure = PoissonOperator(
            ny, nx, self.h,
            "periodic" if x_boundary == "periodic" else "neumann-dirichlet",
            "periodic" if y_boundary == "periodic" else "neumann",
            solid,
        )
        self.pressure_tol = check_tolerance("pressure_tol", pressure_tol)
        self.max_pressure_iter = check_positive_int("max_pressure_iter", max_pressure_iter)
        self.u_shape = (ny, nx if x_boundary == "periodic" else nx + 1)
        self.v_shape = (ny if y_boundary == "periodic" else ny + 1, nx)
        self._masks = self._face_masks()
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self._warned_diffusion = False

    # ------------------------------------------------------------------ geometry
    @property
    def length_x(self) -> float:
        """Domain length along x (m)."""
        return self.nx * self.h

    @property
    def length_y(self) -> float:
        """Domain height (m)."""
        return self.ny * self.h

    def _face_masks(self) -> dict[str, torch.Tensor]:
        fluid = torch.ones(self.ny, self.nx, dtype=torch.float64, device="cpu")
        if self.solid is not None:
            fluid = (~self.solid).double()
        if self.x_boundary == "periodic":
            mu = fluid * fluid.roll(1, dims=1)
        else:
            mu = torch.cat([fluid[:, :1], fluid[:, 1:] * fluid[:, :-1], fluid[:, -1:]], dim=1)
        if self.y_boundary == "periodic":
            mv = fluid * fluid.roll(1, dims=0)
        else:
            mv = torch.cat([torch.zeros_like(fluid[:1]), fluid[1:] * fluid[:-1], torch.zeros_like(fluid[:1])], dim=0)
        # faces whose velocity is not prescribed: open faces, less the inflow face (the implicit diffusion's unknowns)
        free_u = mu.clone()
        if self.inflow is not None:
            free_u[:, 0] = 0.0
        return {"mu": mu, "mv": mv, "fluid": fluid, "free_u": free_u}

    def _t(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return per_device(self._cache, like, self._cached_tensors)

    def _cached_tensors(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        kw = {"device": like.device, "dtype": like.dtype}
        c = {k: v.to(**kw) for k, v in self._masks.items()}
        if self.inflow is not None:
            c["inflow"] = self.inflow.to(**kw)
        for where in ("u", "v"):  # the face coordinates the advection traces back from, every step
            c[f"x{where}"], c[f"y{where}"] = self.coordinates(where, **kw)
        return c

    def coordinates(self, where: Literal["u", "v", "p"], *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical coordinates ``(x, y)`` (m) of the ``u``/``v`` faces or the cell centres, each ``(rows, cols)``."""
        if where not in ("u", "v", "p"):
            raise ValueError(f"where must be 'u', 'v' or 'p', got {where!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # int64 truncated every coordinate
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        shape = {"u": self.u_shape, "v": self.v_shape, "p": (self.ny, self.nx)}[where]
        ox, oy = {"u": (0.0, 0.5), "v": (0.5, 0.0), "p": (0.5, 0.5)}[where]
        xs = (torch.arange(shape[1], dtype=torch.float64, device="cpu") + ox) * self.h
        ys = (torch.arange(shape[0], dtype=torch.float64, device="cpu") + oy) * self.h
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)

    # ------------------------------------------------------------------ checks
    def check_state(self, u: object, v: object, p: object | None = None) -> None:
        """Raise ``TypeError``/``ValueError`` naming the argument if ``u``, ``v`` (, ``p``) are unusable."""
        u = check_tensor("u", u, ndim=3)
        v = check_tensor("v", v, ndim=3)
        if u.dtype not in FIELD_DTYPES:
            raise TypeError(f"u and v must be float32 or float64, got {u.dtype}")
        if tuple(u.shape[1:]) != self.u_shape:
            raise ValueError(f"u must have shape (B, {self.u_shape[0]}, {self.u_shape[1]}), got {tuple(u.shape)}")
        if tuple(v.shape[1:]) != self.v_shape:
            raise ValueError(f"v must have shape (B, {self.v_shape[0]}, {self.v_shape[1]}), got {tuple(v.shape)}")
        if v.shape[0] != u.shape[0]:
            raise ValueError(f"u and v must have the same batch size, got {u.shape[0]} and {v.shape[0]}")
        if v.dtype != u.dtype or v.device != u.device:
            raise ValueError("u and v must share dtype and device")
        if p is not None:
            p = check_tensor("p", p, ndim=3, dtype=u.dtype)
            if tuple(p.shape) != (u.shape[0], self.ny, self.nx):
                raise ValueError(f"p must have shape (B, {self.ny}, {self.nx}), got {tuple(p.shape)}")

    def _nu(self, nu: float | torch.Tensor, like: torch.Tensor, check: bool = True) -> torch.Tensor | float:
        """``nu`` as a number or a ``(B, 1, 1)`` tensor; ``check=False`` skips the value checks (host syncs)."""
        if isinstance(nu, torch.Tensor):
            nu = check_tensor("nu", nu, ndim=(0, 1), finite=check)
            if check and (nu < 0).any():
                low = nu.detach().min().item()
                raise ValueError(f"nu (kinematic viscosity) must be non-negative, got min {low:.4g}")
            if nu.ndim == 1 and nu.shape[0] not in (1, like.shape[0]):
                raise ValueError(f"nu must be a scalar or have shape ({like.shape[0]},), got {tuple(nu.shape)}")
            return nu.to(like).reshape(-1, 1, 1)
        return check_positive_number("nu", nu, allow_zero=True)

    def cfl(self, u: torch.Tensor, v: torch.Tensor, dt: float) -> float:
        """The CFL number ``dt * max|velocity| / h`` of a state (0 for an empty batch)."""
        if u.numel() == 0:
            return 0.0
        vmax = torch.maximum(u.detach().abs().max(), v.detach().abs().max())
        return float(vmax) * dt / self.h

    def check_cfl(self, u: torch.Tensor, v: torch.Tensor, dt: float, *, reported_dt: float | None = None,
                  context: str = "", advice: str | None = None) -> None:
        """Raise ``ValueError`` if a step of ``dt`` from this state breaks ``max_cfl``.

        ``reported_dt`` is the time step to name in the message when ``dt`` derives from it (e.g. a
        user's coarse step, of which ``dt`` is a fraction); ``context`` qualifies "the CFL condition";
        ``advice`` replaces the suggested smaller ``dt`` (for a caller whose ``dt`` is not the user's to
        change). A non-finite state raises ``FloatingPointError``.
        """
        dt = check_positive_number("dt", dt)  # a negative dt passed any state
        c = self.cfl(u, v, dt)
        shown = dt if reported_dt is None else reported_dt
        if not math.isfinite(c):
            raise FloatingPointError(f"non-finite velocity{context} at dt={shown:.4g}: the flow diverged")
        if c > self.max_cfl:
            hint = advice if advice is not None else f"use dt <= {self.max_cfl * shown / c:.4g}"
            raise ValueError(f"dt={shown:.4g} violates the CFL condition{context}: dt*max|u|/h = {c:.3g} > "
                             f"max_cfl={self.max_cfl} ({hint})")

    def check_diffusion(self, dt: float, nu: float | torch.Tensor) -> None:
        """Raise ``ValueError`` if explicit diffusion at viscosity ``nu`` breaks ``nu dt / h² <= 1/4`` over ``dt``.

        A no-op with implicit diffusion. ``nu`` is a number or a tensor of viscosities (the largest counts).
        A caller that steps without checks (``validate=False``) calls it once for a rollout's viscosities.
        """
        if self.diffusion != "explicit" or (isinstance(nu, torch.Tensor) and nu.numel() == 0):
            return
        nu_max = float(nu.detach().max()) if isinstance(nu, torch.Tensor) else float(nu)
        if nu_max * dt / self.h**2 > 0.25:
            raise ValueError(f"dt={dt:.4g} violates the explicit diffusion limit nu*dt/h^2 <= 1/4 "
                             f"(got {nu_max * dt / self.h**2:.3g}); use diffusion='implicit' or a smaller dt")

    def max_stable_dt(self, speed: float, nu: float | None = None) -> float:
        """Largest ``dt`` accepted at a velocity scale ``speed`` (m/s, > 0) and viscosity ``nu`` (m²/s, >= 0)."""
        speed = check_positive_number("speed", speed)
        if nu is not None:
            nu = check_positive_number("nu", nu, allow_zero=True)
        dt = self.max_cfl * self.h / speed
        if nu and self.diffusion == "explicit":
            dt = min(dt, 0.25 * self.h**2 / nu)
        return dt

    # ------------------------------------------------------------------ padding
    def _pad_u(self, u: torch.Tensor) -> torch.Tensor:
        P = _PAD
        if self.x_boundary == "periodic":
            u = torch.cat([u[..., -P:], u, u[..., :P]], dim=-1)
        else:
            u = torch.cat([u[..., :1].expand(*u.shape[:-1], P), u, u[..., -1:].expand(*u.shape[:-1], P)], dim=-1)
        return self._pad_rows(u, staggered=False)

    def _pad_v(self, v: torch.Tensor) -> torch.Tensor:
        P = _PAD
        if self.x_boundary == "periodic":
            v = torch.cat([v[..., -P:], v, v[..., :P]], dim=-1)
        else:  # v = 0 at the inflow face x = 0: odd mirror; outflow: zero gradient
            v = torch.cat([-v[..., :P].flip(-1), v, v[..., -1:].expand(*v.shape[:-1], P)], dim=-1)
        return self._pad_rows(v, staggered=True)

    def _pad_rows(self, q: torch.Tensor, staggered: bool) -> torch.Tensor:
        """Ghost rows along y; ``staggered``: ``q`` lives on the y-faces (``v``)."""
        P = _PAD
        if self.y_boundary == "periodic":
            return torch.cat([q[..., -P:, :], q, q[..., :P, :]], dim=-2)
        if staggered:  # v vanishes on the wall rows; odd mirror about them
            lo, hi = -q[..., 1:P + 1, :].flip(-2), -q[..., -P - 1:-1, :].flip(-2)
        else:
            lo, hi = q[..., :P, :].flip(-2), q[..., -P:, :].flip(-2)
            if self.y_boundary == "noslip":  # odd mirror (negation, not a product with a Python float: no copy)
                lo, hi = -lo, -hi
        return torch.cat([lo, q, hi], dim=-2)

    def _origins(self) -> dict[str, tuple[float, float]]:
        P, h = _PAD, self.h
        return {"u": (-P * h, (0.5 - P) * h), "v": ((0.5 - P) * h, -P * h)}

    # ------------------------------------------------------------------ advection (physics/advection.py)
    def _velocity_at(self, up: torch.Tensor, vp: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        o = self._origins()
        return sample(up, o["u"], self.h, x, y), sample(vp, o["v"], self.h, x, y)

    def advect(self, u: torch.Tensor, v: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-advection of the velocity over ``dt`` (s): ``u (B, *u_shape)``, ``v (B, *v_shape)``."""
        # NaN or a negative dt back-traced the wrong way, clamped
        return self._advect(u, v, check_positive_number("dt", dt))

    def _advect(self, u: torch.Tensor, v: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`advect` for a checked ``dt``."""
        up, vp = self._pad_u(u), self._pad_v(v)
        B, t = u.shape[0], self._t(u)
        xu, yu, xv, yv = (t[k].expand(B, -1, -1) for k in ("xu", "yu", "xv", "yv"))
        o = self._origins()
        own_u = (u, sample(vp, o["v"], self.h, xu, yu))
        own_v = (sample(up, o["u"], self.h, xv, yv), v)
        scheme = semi_lagrangian if self.advection == "semi-lagrangian" else maccormack
        velocity_at = partial(self._velocity_at, up, vp)  # the velocity at the start of the step advects
        u_new = scheme(u, self._pad_u, o["u"], self.h, velocity_at, (xu, yu), own_u, dt)
        v_new = scheme(v, self._pad_v, o["v"], self.h, velocity_at, (xv, yv), own_v, dt)
        return u_new, v_new

    # ------------------------------------------------------------------ diffusion
    def _laplacian(self, q: torch.Tensor, name: str) -> torch.Tensor:
        qp = (self._pad_u if name == "u" else self._pad_v)(q)
        P = _PAD
        c = qp[..., P:-P, P:-P]
        nb = qp[..., P:-P, P + 1:qp.shape[-1] - P + 1] + qp[..., P:-P, P - 1:-P - 1] \
            + qp[..., P + 1:qp.shape[-2] - P + 1, P:-P] + qp[..., P - 1:-P - 1, P:-P]
        return (nb - 4 * c) / self.h**2

    def diffuse(self, u: torch.Tensor, v: torch.Tensor, dt: float, nu: float | torch.Tensor,
                tol: float | None = None, max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Viscous step over ``dt`` with kinematic viscosity ``nu`` (m²/s: a number, or ``(B,)`` per state).

        Implicit: backward Euler, ``(I - nu dt lap) u** = u*`` on the free faces, with the wall, obstacle
        and inflow faces held at their boundary values (:meth:`apply_boundaries` of the input), solved by
        conjugate gradients on this symmetric positive-definite system to the relative residual ``tol``
        (default 1e-10 in float64, 1e-5 otherwise). Its condition number is at most ``1 + 8a`` with
        ``a = nu dt / h²``, so CG needs ``O(sqrt(a))`` iterations; a solve that stops at ``max_iter``
        above ``tol`` warns (``RuntimeWarning``, once per solver) and returns its last iterate.
        Gradients flow through the CG iterations.
        """
        dt = check_positive_number("dt", dt)
        if self.validate:
            self.check_state(u, v)
        nu_t = self._nu(nu, u)
        if self.validate:  # as step does: explicit diffusion past its limit grows instead of decaying
            self.check_diffusion(dt, nu_t)
        return self._diffuse(u, v, dt, nu_t, tol, max_iter)

    def _diffuse(self, u: torch.Tensor, v: torch.Tensor, dt: float, nu: float | torch.Tensor,
                 tol: float | None = None, max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`diffuse` for a checked ``dt`` and ``nu`` as :meth:`_nu` returns it (a number or ``(B, 1, 1)``)."""
        if self.diffusion == "explicit":
            return (u + dt * nu * self._laplacian(u, "u"), v + dt * nu * self._laplacian(v, "v"))
        tol = check_tolerance("tol", tol)
        check_positive_int("max_iter", max_iter)
        if tol is None:
            tol = default_tol(u.dtype)
        a = dt * nu / self.h**2
        t = self._t(u)
        fixed = self.apply_boundaries(u, v)  # the input on free faces, the boundary values elsewhere
        out = []
        for q, g, name, free in ((u, fixed[0], "u", t["free_u"]), (v, fixed[1], "v", t["mv"])):
            def apply_a(y: torch.Tensor, name: str = name, free: torch.Tensor = free) -> torch.Tensor:
                # (I - a h² lap) on the free faces, for y that vanishes on the prescribed ones
                return free * (y - a * self._laplacian(free * y, name) * self.h**2)

            held = (1 - free) * g
            rhs = free * (q + a * self._laplacian(held, name) * self.h**2)
            y, _, res = pcg(apply_a, rhs, lambda r: r, x0=free * q, tol=tol, max_iter=max_iter)
            out.append(free * y + held)
            # a non-finite state is left to the pressure solve, which raises on it
            if math.isfinite(res) and res > tol and not self._warned_diffusion:
                self._warned_diffusion = True
                a_max = float(a.max()) if isinstance(a, torch.Tensor) else a
                warnings.warn(f"implicit diffusion of {name} stopped at max_iter={max_iter} with relative residual "
                              f"{res:.3g} > tol={tol:.3g} at a = nu*dt/h^2 = {a_max:.3g}: the viscous step is "
                              f"inaccurate; raise max_iter or tol, or use a smaller dt. Further non-converged "
                              f"diffusion solves of this solver are not reported.", RuntimeWarning, stacklevel=2)
        return out[0], out[1]

    # ------------------------------------------------------------------ boundaries and projection
    def apply_boundaries(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Impose the inflow profile, wall and obstacle faces (returns new tensors)."""
        t = self._t(u)
        u = u * t["mu"]
        v = v * t["mv"]
        if self.inflow is not None:
            u = torch.cat([(t["inflow"] * t["fluid"][:, 0]).expand(u.shape[0], -1).unsqueeze(-1), u[..., 1:]], dim=-1)
        return u, v

    def divergence(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Cell divergence ``(B, ny, nx)`` (1/s) of face velocities."""
        return self.pressure.divergence(u, v)

    def project(self, u: torch.Tensor, v: torch.Tensor, dt: float, p0: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Make ``(u, v)`` divergence-free; returns ``(u, v, p)`` with ``p (B, ny, nx)`` in Pa/(kg/m³)."""
        # 0 divided by zero: it read as "the flow diverged"
        return self._project(u, v, check_positive_number("dt", dt), p0)

    def _project(self, u: torch.Tensor, v: torch.Tensor, dt: float, p0: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`project` for a checked ``dt``."""
        t = self._t(u)
        rhs = -self.divergence(u, v) * t["fluid"] / dt
        if not bool(torch.isfinite(rhs).all()):  # the solve's own check would name its argument b
            raise FloatingPointError("non-finite velocity entering the pressure projection: the flow diverged "
                                     "(a time step too large for the state, or a correction that blew up)")
        p = self.pressure.solve(rhs, x0=p0, tol=self.pressure_tol, max_iter=self.max_pressure_iter,
                                check_finite=False)
        gx, gy = self.pressure.gradient(p)
        return u - dt * gx, v - dt * gy, p

    # ------------------------------------------------------------------ stepping
    def step(self, u: torch.Tensor, v: torch.Tensor, dt: float, nu: float | torch.Tensor,
             p: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance ``(u, v)`` by ``dt`` (s); ``p`` (the previous pressure) only warm-starts the solve.

        Returns ``(u, v, p)`` at the new time. Raises ``ValueError`` on NaNs, wrong shapes, negative
        viscosity, a CFL number above ``max_cfl`` or an explicit diffusion number above 1/4.
        """
        dt = check_positive_number("dt", dt)
        if self.validate:
            self.check_state(u, v, p)
            self.check_cfl(u, v, dt)
        if u.shape[0] == 0:  # an empty batch: nothing to advance (the pressure solve reduces over it)
            return u, v, u.new_zeros(0, self.ny, self.nx)
        nu_t = self._nu(nu, u, check=self.validate)
        if self.validate:
            self.check_diffusion(dt, nu_t)
        u, v = self._advect(u, v, dt)  # dt is checked above: the sub-steps' own checks are for their callers
        u, v = self.apply_boundaries(u, v)
        u, v = self._diffuse(u, v, dt, nu_t)
        u, v = self.apply_boundaries(u, v)
        return self._project(u, v, dt, p0=p)

    def rollout(self, u: torch.Tensor, v: torch.Tensor, dt: float, nu: float | torch.Tensor, steps: int,
                p: torch.Tensor | None = None, checkpoint: bool = False,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``steps`` steps; returns the stacked states ``u (B, steps, ...)``, ``v``, ``p`` (initial state excluded).

        ``checkpoint=True`` recomputes each step in the backward pass instead of storing its
        intermediates, so memory grows with the number of states only.
        """
        check_bool("checkpoint", checkpoint)
        return unroll(lambda u, v, p: self.step(u, v, dt, nu, p), u, v, p, steps, checkpoint)

    # ------------------------------------------------------------------ diagnostics
    def to_centers(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Cell-centred velocity ``(B, 2, ny, nx)`` (averages of the two faces of each cell)."""
        uc = 0.5 * (u + u.roll(-1, dims=-1)) if self.x_boundary == "periodic" else 0.5 * (u[..., 1:] + u[..., :-1])
        vc = 0.5 * (v + v.roll(-1, dims=-2)) if self.y_boundary == "periodic" \
            else 0.5 * (v[..., 1:, :] + v[..., :-1, :])
        return torch.stack((uc, vc), dim=-3)

    def vorticity(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vorticity ``dv/dx - du/dy`` (1/s) at cell centres, ``(B, ny, nx)``.

        Central differences, wrapped around a periodic direction; one-sided at a wall or an inflow/outflow face.
        """
        c = self.to_centers(u, v)

        def derivative(q: torch.Tensor, dim: int, periodic: bool) -> torch.Tensor:
            if periodic:  # the neighbour across the boundary is the first cell of the other side
                return (q.roll(-1, dims=dim) - q.roll(1, dims=dim)) / (2 * self.h)
            return torch.gradient(q, spacing=self.h, dim=dim)[0]

        return (derivative(c[:, 1], -1, self.x_boundary == "periodic")
                - derivative(c[:, 0], -2, self.y_boundary == "periodic"))

    def step_count(self, t_end: float, dt: float) -> int:
        """Whole steps of size ``dt`` (s, > 0) that reach ``t_end`` (s, > 0), rounded; at least one."""
        t_end, dt = check_positive_number("t_end", t_end), check_positive_number("dt", dt)
        return max(1, int(math.floor(t_end / dt + 0.5)))


def unroll(step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], State], u: torch.Tensor,
           v: torch.Tensor, p: torch.Tensor | None, steps: int, checkpoint: bool = False,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``step(u, v, p) -> (u, v, p)`` ``steps`` times; returns the stacked states ``(B, steps, ...)``.

    ``checkpoint=True`` (under autograd) recomputes each step in the backward pass instead of storing
    its intermediates, so memory grows with the number of states only.
    """
    check_positive_int("steps", steps)
    us, vs, ps = [], [], []
    for _ in range(steps):
        if checkpoint and torch.is_grad_enabled():
            u, v, p = _checkpoint(step, u, v, p, use_reentrant=False)
        else:
            u, v, p = step(u, v, p)
        us.append(u)
        vs.append(v)
        ps.append(p)
    return torch.stack(us, 1), torch.stack(vs, 1), torch.stack(ps, 1)
