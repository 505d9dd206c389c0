"""The pressure Poisson solve of a staggered (MAC) grid, differentiable by implicit differentiation.

The discrete operator is ``A p = -D W G p`` on cell-centred pressures, where ``G`` takes cell values
to face gradients, ``W`` is 1 on open faces and 0 on closed ones (walls, inflow, obstacle faces) and
``D`` is the face-to-cell divergence. Boundary rules per axis:

- ``"periodic"``: the grid wraps around;
- ``"neumann"``: ``dp/dn = 0`` on both ends (walls, or a prescribed velocity);
- ``"neumann-dirichlet"``: ``dp/dn = 0`` at the low end, ``p = 0`` on the high end's face (an
  outflow), written with a ghost value ``-p`` so ``A`` stays symmetric.

Solid (obstacle) cells are decoupled: ``A`` is the identity there, so a solve returns ``b``'s values
on them (0 in :class:`~hybridzoo.physics.navier_stokes.NavierStokes2D`, whose divergence is 0 there).
Each fluid region that no outflow face reaches has its pressure fixed up to a constant: solves
return the solution of zero mean on each such region (see :mod:`~hybridzoo.physics.fluid_regions`).
Solvers:

- obstacle-free, fully periodic domains: an exact FFT solve;
- otherwise: conjugate gradients preconditioned by the exact obstacle-free operator, which is
  separable and inverted with per-axis eigenbases (a fast Poisson solver for any mix of the rules
  above). Without obstacles it converges in one iteration; thin obstacles add a few dozen.
- small grids with an obstacle (up to ``dense_limit`` cells, :data:`DENSE_LIMIT` by default):
  conjugate gradients preconditioned by the operator's own (pseudo-)inverse, a dense matrix built once.
  CG then stops after one or two iterations, each one matrix product: on the coarse grids of
  solver-in-the-loop training a step's many small kernels, not its arithmetic, are the cost.

Gradients never store the CG iterations: :class:`PoissonSolve` is an ``autograd.Function`` whose
backward runs one more solve with the (self-adjoint) operator, ``dL/db = A^{-1} dL/dp``, through the
same Function, so a double backward (``create_graph=True``) is exact too.

A solve that stops at ``max_iter`` with its residual above ``tol`` returns its last iterate with a
``RuntimeWarning`` (once per operator and direction, forward or adjoint, so that a rollout does not
repeat it every step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from hybridzoo.physics.conjugate_gradient import check_tolerance, default_tol, pcg
from hybridzoo.physics.fluid_regions import fluid_regions
from hybridzoo.physics.tensor_cache import per_device
from hybridzoo.physics.validation import check_positive_int, check_positive_number, check_tensor

AxisRule = Literal["periodic", "neumann", "neumann-dirichlet"]
_RULES = ("periodic", "neumann", "neumann-dirichlet")
#: Field dtypes the solvers accept: no FFT for half precision on the CPU, and CG needs the digits anyway.
FIELD_DTYPES = (torch.float32, torch.float64)


def check_solid(solid: object, ny: int, nx: int) -> torch.Tensor:
    """An obstacle mask ``(ny, nx)`` (True in the obstacle) on the CPU; ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(solid, torch.Tensor):
        raise TypeError(f"solid must be a torch.Tensor (a bool mask of shape {(ny, nx)}), got {type(solid).__name__}")
    if tuple(solid.shape) != (ny, nx):
        raise ValueError(f"solid must be a bool tensor of shape {(ny, nx)}, got "
                         f"{tuple(solid.shape)}")
    if solid.dtype != torch.bool:  # .bool() of a float mask marks every non-zero cell solid
        raise TypeError(f"solid must be a bool tensor (True in the obstacle), got dtype {solid.dtype}")
    solid = solid.cpu()
    if bool(solid.all()):  # no fluid: every step returned zeros
        raise ValueError("solid marks every cell: there is no fluid to solve for")
    return solid


#: Obstacle grids of up to this many cells are preconditioned by their dense inverse (8 MiB in float64 at the
#: limit, built once in ~0.2 s). Its product grows as the square of the cells: on one CPU thread a cylinder
#: channel's solve took 0.26 against 0.70 ms at 512 cells, 0.49 against 0.87 at 1152 and 1.0 against 1.0 at
#: 2048 (batch 2; at batch 16, 1.3 against 1.5 and 4.0 against 2.4), so larger grids keep the fast
#: obstacle-free preconditioner.
DENSE_LIMIT = 1024


def _laplacian_1d(n: int, rule: str) -> torch.Tensor:
    """The positive-semidefinite 1-D operator ``-d2/dx2`` (unit spacing) under ``rule``, float64 ``(n, n)``."""
    a = torch.zeros(n, n, dtype=torch.float64, device="cpu")
    idx = torch.arange(n, device="cpu")
    a[idx, idx] = 2.0
    a[idx[:-1], idx[:-1] + 1] = -1.0
    a[idx[1:], idx[1:] - 1] = -1.0
    if rule == "periodic":
        if n == 1:
            a[0, 0] = 0.0
        else:
            a[0, -1] -= 1.0
            a[-1, 0] -= 1.0
    else:
        a[0, 0] = 1.0  # Neumann at the low end
        a[-1, -1] = 3.0 if rule == "neumann-dirichlet" else 1.0
        if n == 1:
            a[0, 0] = 2.0 if rule == "neumann-dirichlet" else 0.0
    return a


class PoissonOperator:
    """``A = -D W G`` on a ``(ny, nx)`` cell grid with spacing ``h``, optional obstacle, any axis rules.

    Args:
        ny, nx: cells along y (rows) and x (columns).
        h: cell size (m); the operator has units 1/m².
        x_rule, y_rule: boundary rule of each axis (see the module docstring).
        solid: ``(ny, nx)`` bool mask of obstacle cells, or ``None``.
        dense_limit: with an obstacle, grids of at most this many cells precondition CG with the operator's
            dense (pseudo-)inverse; ``0`` never does.
    """

    def __init__(self, ny: int, nx: int, h: float, x_rule: AxisRule, y_rule: AxisRule,
                 solid: torch.Tensor | None = None, dense_limit: int = DENSE_LIMIT) -> None:
        for name, rule in (("x_rule", x_rule), ("y_rule", y_rule)):
            if rule not in _RULES:
                raise ValueError(f"{name} must be one of {_RULES}, got {rule!r}")
        if y_rule == "neumann-dirichlet":
            raise ValueError("y_rule 'neumann-dirichlet' is not supported (outflow is along x)")
        check_positive_int("ny", ny)
        check_positive_int("nx", nx)
        self.ny, self.nx, self.h = int(ny), int(nx), check_positive_number("h", h)
        self.x_rule, self.y_rule = x_rule, y_rule
        if solid is not None:
            solid = check_solid(solid, ny, nx)
            if not solid.any():
                solid = None
        self.solid = solid
        check_positive_int("dense_limit", dense_limit, allow_zero=True)
        #: whether CG is preconditioned by the dense inverse (small grids with an obstacle)
        self.dense = solid is not None and ny * nx <= dense_limit
        fluid = torch.ones(ny, nx, dtype=torch.float64, device="cpu") if solid is None else (~solid).double()
        self._fluid = fluid
        # open faces: x-faces i between cells i-1 and i (i=0..nx-1 periodic; i=0..nx otherwise)
        if x_rule == "periodic":
            self._wx = fluid * fluid.roll(1, dims=1)
        else:
            wx = torch.zeros(ny, nx + 1, dtype=torch.float64, device="cpu")
            wx[:, 1:nx] = fluid[:, 1:] * fluid[:, :-1]
            if x_rule == "neumann-dirichlet":
                wx[:, nx] = fluid[:, -1]
            self._wx = wx
        if y_rule == "periodic":
            self._wy = fluid * fluid.roll(1, dims=0)
        else:
            wy = torch.zeros(ny + 1, nx, dtype=torch.float64, device="cpu")
            wy[1:ny] = fluid[1:] * fluid[:-1]
            self._wy = wy
        # The null space: a constant on each fluid region that no outflow face touches. Its label is the
        # region's number among those (0..K-1); solid cells and outflow-bound regions get K.
        regions = fluid_regions(fluid, self._wx, self._wy)
        n_regions = int(regions.max()) + 1
        bound = set(regions[:, -1][self._wx[:, -1] > 0].tolist()) if x_rule == "neumann-dirichlet" else set()
        closed = [k for k in range(n_regions) if k not in bound]
        lookup = torch.full((n_regions + 1,), len(closed), dtype=torch.int64, device="cpu")
        lookup[torch.tensor(closed, dtype=torch.int64, device="cpu")] = torch.arange(len(closed), device="cpu")
        self._closed = lookup[regions].reshape(-1)  # regions -1 (solid) read the last entry: K
        #: the number of closed fluid regions: the null space's dimension (0: the operator is invertible)
        self.closed_regions = len(closed)
        #: True when the operator has a null space (a closed fluid region: no outflow, or a pocket)
        self.singular = self.closed_regions > 0
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self._dense_cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self._dense_f64: torch.Tensor | None = None
        self._eig = None
        self._warned: set[str] = set()  # directions ("forward", "adjoint") that warned of non-convergence

    # ------------------------------------------------------------------ cached tensors
    def _t(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return per_device(self._cache, like, self._cached_tensors)

    def _cached_tensors(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._eig is None:
            self._eig = {}
            for axis, n, rule in (("x", self.nx, self.x_rule), ("y", self.ny, self.y_rule)):
                lam, q = torch.linalg.eigh(_laplacian_1d(n, rule))
                lam = lam.clamp_min(0.0)
                lam[lam < 1e-10] = 0.0
                self._eig[axis] = (lam, q)
        lx, qx = self._eig["x"]
        ly, qy = self._eig["y"]
        denom = (ly[:, None] + lx[None, :]) / self.h**2
        inv = torch.where(denom > 0, 1.0 / denom.clamp_min(1e-300), torch.zeros_like(denom))
        diag = self._diagonal()
        kw = {"device": like.device, "dtype": like.dtype}
        out = {
            "wx": self._wx.to(**kw), "wy": self._wy.to(**kw), "fluid": self._fluid.to(**kw),
            "qx": qx.to(**kw), "qy": qy.to(**kw), "inv": inv.to(**kw), "diag": diag.to(**kw),
            "closed": self._closed.to(like.device),
        }
        cells = torch.bincount(self._closed, minlength=self.closed_regions + 1).double()
        out["closed_inv_cells"] = torch.cat([1.0 / cells[:-1], cells.new_zeros(1)]).to(like.device)
        out["closed_mask"] = (self._closed == 0).reshape(self.ny, self.nx).to(**kw)  # region 0 (of one or more)
        if self.x_rule == "periodic" and self.y_rule == "periodic":
            # the FFT's eigenvalues, in float64 and as 4 sin²(k/2): 2 - 2 cos k cancels for small k, and in
            # float32 left 5e-4 relative error in a 1024² solve
            ky = 2 * math.pi * torch.fft.fftfreq(self.ny, dtype=torch.float64)
            kx = 2 * math.pi * torch.fft.rfftfreq(self.nx, dtype=torch.float64)
            lam = (4 * torch.sin(ky / 2) ** 2)[:, None] + (4 * torch.sin(kx / 2) ** 2)[None, :]
            out["inv_fft"] = torch.where(lam > 1e-12, self.h**2 / lam.clamp_min(1e-300), torch.zeros_like(lam)).to(**kw)
        return out

    def dense_inverse(self, like: torch.Tensor) -> torch.Tensor:
        """The pseudo-inverse of ``A``, ``(ny nx, ny nx)`` in ``like``'s dtype and device (built once, in float64).

        ``A`` is symmetric; the null space of a closed domain (a constant on each connected fluid region) maps
        to 0. It holds ``(ny nx)²`` numbers: meant for the small grids below ``dense_limit``.
        """
        return per_device(self._dense_cache, like, lambda t: {"m": self._dense_float64().to(t)})["m"]

    def _dense_float64(self) -> torch.Tensor:
        if self._dense_f64 is None:
            n = self.ny * self.nx
            with torch.no_grad():
                basis = torch.eye(n, dtype=torch.float64, device="cpu").reshape(n, self.ny, self.nx)
                a = self.apply(basis).reshape(n, n)  # row k is A e_k
                lam, q = torch.linalg.eigh(0.5 * (a + a.T))
                keep = lam > lam.abs().max() * n * torch.finfo(torch.float64).eps
                self._dense_f64 = (q * torch.where(keep, 1.0 / torch.where(keep, lam, 1.0), 0.0)) @ q.T
        return self._dense_f64

    def _diagonal(self) -> torch.Tensor:
        wx, wy = self._wx, self._wy
        if self.x_rule == "periodic":
            dx = wx + wx.roll(-1, dims=1)
        else:
            dx = wx[:, :-1] + wx[:, 1:]
            if self.x_rule == "neumann-dirichlet":
                dx = dx.clone()
                dx[:, -1] += wx[:, -1]  # the ghost -p doubles the outflow face's coupling
        dy = wy + wy.roll(-1, dims=0) if self.y_rule == "periodic" else wy[:-1] + wy[1:]
        d = (dx + dy) / self.h**2
        return torch.where(self._fluid > 0, d.clamp_min(1e-30), torch.ones_like(d))

    # ------------------------------------------------------------------ G, D and A
    def gradient(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face gradients ``W G p`` of ``p (..., ny, nx)``.

        Returns:
            x-faces ``(..., ny, nx[+1])`` and y-faces ``(..., ny[+1], nx)``.
        """
        t = self._t(p)
        h = self.h
        if self.x_rule == "periodic":
            gx = (p - p.roll(1, dims=-1)) / h
        else:
            zero = torch.zeros_like(p[..., :1])
            hi = -2.0 * p[..., -1:] / h if self.x_rule == "neumann-dirichlet" else zero
            gx = torch.cat([zero, (p[..., 1:] - p[..., :-1]) / h, hi], dim=-1)
        if self.y_rule == "periodic":
            gy = (p - p.roll(1, dims=-2)) / h
        else:
            zero = torch.zeros_like(p[..., :1, :])
            gy = torch.cat([zero, (p[..., 1:, :] - p[..., :-1, :]) / h, zero], dim=-2)
        return gx * t["wx"], gy * t["wy"]

    def divergence(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        """Cell divergence ``D f`` of face fluxes ``fx``, ``fy`` (shapes as :meth:`gradient` returns)."""
        h = self.h
        dx = (fx.roll(-1, dims=-1) - fx) / h if self.x_rule == "periodic" else (fx[..., 1:] - fx[..., :-1]) / h
        dy = (fy.roll(-1, dims=-2) - fy) / h if self.y_rule == "periodic" else (fy[..., 1:, :] - fy[..., :-1, :]) / h
        return dx + dy

    def apply(self, p: torch.Tensor) -> torch.Tensor:
        """``A p`` for ``p (..., ny, nx)``; the identity on solid cells."""
        t = self._t(p)
        gx, gy = self.gradient(p)
        ap = -self.divergence(gx, gy)
        return ap * t["fluid"] + p * (1 - t["fluid"])

    # ------------------------------------------------------------------ solvers
    def fast_solve(self, b: torch.Tensor) -> torch.Tensor:
        """Exact solve of the obstacle-free operator (pseudo-inverse on its null space), ``b (..., ny, nx)``.

        FFT when both axes are periodic, per-axis eigenbases otherwise.
        """
        t = self._t(b)
        if self.x_rule == "periodic" and self.y_rule == "periodic":
            return torch.fft.irfft2(torch.fft.rfft2(b) * t["inv_fft"], s=(self.ny, self.nx))
        qx, qy = t["qx"], t["qy"]
        coef = qy.transpose(0, 1) @ b @ qx
        return qy @ (coef * t["inv"]) @ qx.transpose(0, 1)

    def _precondition(self, r: torch.Tensor) -> torch.Tensor:
        if self.solid is None:
            return self.fast_solve(r)
        if self.dense:
            return (r.flatten(-2) @ self.dense_inverse(r)).reshape(r.shape)
        f = self._t(r)["fluid"]
        return self.fast_solve(r * f) * f + r * (1 - f)

    def _project_nullspace(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` less its mean on each closed fluid region."""
        if not self.singular:
            return x
        t = self._t(x)
        label, k = t["closed"], self.closed_regions
        if k == 1:  # the common case, one masked sum (pairwise, accurate in float32 too) and no scatter
            m = t["closed_mask"]
            return x - (x * m).sum(dim=(-2, -1), keepdim=True) * t["closed_inv_cells"][0] * m
        # index_add sums one value after another: in float32 the means then left b incompatible enough that
        # CG stalled (500 iterations instead of 6 on a 64² periodic box with an obstacle), so sum in float64
        wide = x.to(torch.float64)
        sums = wide.new_zeros(*x.shape[:-2], k + 1).index_add_(-1, label, wide.flatten(-2))
        mean = (sums * t["closed_inv_cells"]).to(x.dtype)  # 0 in the last slot: solid and outflow-bound cells
        return x - mean.index_select(-1, label).reshape(x.shape)

    def solve_raw(self, b: torch.Tensor, x0: torch.Tensor | None = None, tol: float | None = None,
                  max_iter: int = 500) -> tuple[torch.Tensor, int, float]:
        """Solve ``A x = b`` without autograd; returns ``(x, iterations, max relative residual)``.

        On a singular operator (a closed fluid region: no outflow, or a pocket that the outflow does not
        reach) the mean of ``b`` on each closed region is removed first (a compatible right-hand side), and
        the solution returned has zero mean on each closed region. A residual above ``tol`` (CG stopped at
        ``max_iter``) is returned, not reported: check it.
        """
        tol = check_tolerance("tol", tol)
        check_positive_int("max_iter", max_iter)
        if tol is None:
            tol = default_tol(b.dtype)
        with torch.no_grad():
            b = self._project_nullspace(b)
            if self.solid is None and x0 is None:
                x = self._project_nullspace(self.fast_solve(b))
                return x, 0, 0.0
            return pcg(self.apply, b, self._precondition, x0=x0, tol=tol, max_iter=max_iter,
                       project=self._project_nullspace)

    def solve(self, b: torch.Tensor, x0: torch.Tensor | None = None, tol: float | None = None,
              max_iter: int = 500, *, check_finite: bool = True) -> torch.Tensor:
        """Differentiable ``A^{-1} b`` for ``b (..., ny, nx)``; the backward pass is one adjoint solve.

        Warns (``RuntimeWarning``, once per operator and direction) when CG stops at ``max_iter`` with
        the relative residual above ``tol`` (default 1e-10 in float64, 1e-5 otherwise).
        ``check_finite=False`` skips the test for NaN and infinity in ``b`` and ``x0``, for a caller that
        made it (one pass over the data and a host sync less).
        """
        tol = check_tolerance("tol", tol)
        check_positive_int("max_iter", max_iter)
        b = check_tensor("b", b, min_ndim=2, finite=check_finite)
        if b.dtype not in FIELD_DTYPES:
            raise TypeError(f"b must be float32 or float64, got {b.dtype}")
        if b.shape[-2:] != (self.ny, self.nx):
            raise ValueError(f"b must end in shape {(self.ny, self.nx)}, got {tuple(b.shape)}")
        if x0 is not None:
            x0 = check_tensor("x0", x0, finite=check_finite, dtype=b.dtype)
            if x0.shape != b.shape:
                raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")
            x0 = x0.detach()
        if b.numel() == 0:  # an empty batch: CG's reductions over it would fail
            return b * 0

        def raw(rhs: torch.Tensor, guess: torch.Tensor | None, direction: str = "forward") -> torch.Tensor:
            # The system is linear: solve for rhs scaled to |rhs| ≈ 1 per batch element, then scale back.
            # Gradients from long unrolled rollouts can reach 1e20 and more, where CG's inner products
            # would overflow float32; a power-of-two scale is exact, so results are otherwise unchanged.
            peak = rhs.detach().abs().amax(dim=(-2, -1), keepdim=True)
            exponent = torch.frexp(torch.where(peak > 0, peak, torch.ones_like(peak))).exponent
            scaled = None if guess is None else torch.ldexp(guess, -exponent)
            x, _, res = self.solve_raw(torch.ldexp(rhs, -exponent), scaled, tol, max_iter)
            if not math.isfinite(res):
                raise FloatingPointError("pressure solve diverged (non-finite residual)")
            goal = default_tol(rhs.dtype) if tol is None else tol
            if res > goal and direction not in self._warned:
                self._warned.add(direction)
                where = "adjoint pressure solve (backward pass)" if direction == "adjoint" else "pressure solve"
                warnings.warn(f"{where} stopped at max_iter={max_iter} with relative residual {res:.3g} > "
                              f"tol={goal:.3g}: the result is inaccurate; raise the iteration cap (NavierStokes2D's "
                              f"max_pressure_iter) or the tolerance. Further non-converged {direction} solves of "
                              f"this operator are not reported.", RuntimeWarning, stacklevel=2)
            return torch.ldexp(x, exponent)

        return PoissonSolve.apply(b, x0, raw)


class PoissonSolve(torch.autograd.Function):
    """``x = A^{-1} b`` with ``A`` symmetric: forward by any solver, backward by the adjoint solve ``A^{-1} g``.

    ``raw(rhs, x0, direction)`` solves without autograd; ``direction`` (``"forward"`` or ``"adjoint"``)
    only labels its warnings. ``A`` is fixed, so the backward is the same linear map applied to the
    incoming gradient; it runs through this Function again, which makes it differentiable in turn
    (double backward with ``create_graph=True``: ``d/dg (A^{-1} g) = A^{-1}``, and no other path exists).
    """

    @staticmethod
    def forward(ctx, b: torch.Tensor, x0: torch.Tensor | None,  # noqa: D102
                raw: Callable[..., torch.Tensor], direction: str = "forward") -> torch.Tensor:
        ctx.raw = raw
        return raw(b, x0, direction)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:  # noqa: D102
        if grad is None:
            return None, None, None, None
        try:
            # grad mode is on here only under create_graph=True; then this records a differentiable node
            return PoissonSolve.apply(grad.contiguous(), None, ctx.raw, "adjoint"), None, None, None
        except FloatingPointError:
            # A non-finite gradient in gives a non-finite gradient out, as from any other op, so that
            # the optimiser's side can see it and skip the update (the forward solve still raises).
            return torch.full_like(grad, math.nan), None, None, None
