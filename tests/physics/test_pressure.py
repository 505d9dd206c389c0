import math
import warnings

import pytest
import torch
from hybridzoo.physics.pressure import DENSE_LIMIT, PoissonOperator


def _dense(op: PoissonOperator) -> torch.Tensor:
    n = op.ny * op.nx
    eye = torch.eye(n, dtype=torch.float64).reshape(n, op.ny, op.nx)
    return op.apply(eye).reshape(n, n).T


@pytest.mark.parametrize("rules", [("periodic", "periodic"), ("neumann-dirichlet", "neumann"),
                                   ("periodic", "neumann"), ("neumann", "periodic")])
@pytest.mark.parametrize("with_solid", [False, True])
def test_operator_is_symmetric_and_matches_div_grad(rules, with_solid):
    ny, nx = 5, 7
    solid = torch.zeros(ny, nx, dtype=torch.bool)
    if with_solid:
        solid[2, 3] = solid[1, 3] = True
    op = PoissonOperator(ny, nx, 0.3, rules[0], rules[1], solid if with_solid else None)
    a = _dense(op)
    torch.testing.assert_close(a, a.T)
    eig = torch.linalg.eigvalsh(a)
    assert eig.min() > -1e-10  # positive semidefinite
    # singular exactly when nothing pins the pressure level
    assert (eig.abs().min() < 1e-9) == op.singular
    # and it is -div grad: on cells away from the boundary and the obstacle the 5-point stencil is exact
    # for a quadratic, -lap(x^2 + 3 y^2) = -8
    y, x = torch.meshgrid((torch.arange(ny, dtype=torch.float64) + 0.5) * 0.3,
                          (torch.arange(nx, dtype=torch.float64) + 0.5) * 0.3, indexing="ij")
    inner = torch.zeros(ny, nx, dtype=torch.bool)
    inner[1:-1, 1:-1] = True
    near_solid = torch.nn.functional.max_pool2d(solid[None, None].double(), 3, stride=1, padding=1)[0, 0] > 0
    inner &= ~near_solid
    assert inner.sum() >= 4
    torch.testing.assert_close(op.apply(x**2 + 3 * y**2)[inner], torch.full((int(inner.sum()),), -8.0,
                                                                           dtype=torch.float64))


def test_periodic_fft_solve_matches_analytic_mode():
    # -lap of cos(kx x) sin(ky y) on the grid is the known discrete eigenvalue times the mode
    n, L = 16, 2 * math.pi
    op = PoissonOperator(n, n, L / n, "periodic", "periodic")
    x = (torch.arange(n, dtype=torch.float64) + 0.5) * L / n
    Y, X = torch.meshgrid(x, x, indexing="ij")
    mode = torch.cos(2 * X) * torch.sin(3 * Y)
    h = L / n
    lam = (2 - 2 * math.cos(2 * h) + 2 - 2 * math.cos(3 * h)) / h**2
    p = op.solve(lam * mode[None])
    torch.testing.assert_close(p[0], mode, atol=1e-10, rtol=0)


@pytest.mark.parametrize("rules", [("neumann-dirichlet", "neumann"), ("periodic", "periodic"), ("periodic", "neumann")])
@pytest.mark.parametrize("dense_limit", [0, DENSE_LIMIT])  # the obstacle-free or the dense preconditioner
def test_pcg_with_obstacle_solves_to_tolerance(rules, dense_limit):
    torch.manual_seed(0)
    ny, nx = 12, 20
    solid = torch.zeros(ny, nx, dtype=torch.bool)
    solid[4:8, 5:8] = True
    op = PoissonOperator(ny, nx, 0.1, rules[0], rules[1], solid, dense_limit=dense_limit)
    assert op.dense == (dense_limit > 0)
    b = torch.randn(3, ny, nx, dtype=torch.float64) * (~solid)
    x, it, res = op.solve_raw(b, tol=1e-11)
    assert (0 < it <= 2 if op.dense else 5 < it < 60) and res <= 1e-11
    # compare against the dense pseudo-inverse (null space removed as the solver does)
    a = _dense(op)
    bb = op._project_nullspace(b).reshape(3, -1)
    ref = torch.linalg.lstsq(a.expand(3, -1, -1), bb.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    ref = op._project_nullspace(ref.reshape(3, ny, nx))
    torch.testing.assert_close(x, ref, atol=1e-8, rtol=0)


def test_pcg_respects_batch_and_warm_start():
    solid = torch.zeros(8, 8, dtype=torch.bool)
    solid[3:5, 2:4] = True
    op = PoissonOperator(8, 8, 0.2, "neumann-dirichlet", "neumann", solid)
    b = torch.randn(2, 8, 8, dtype=torch.float64)
    x1, it1, _ = op.solve_raw(b, tol=1e-10)
    x2, it2, _ = op.solve_raw(b, x0=x1, tol=1e-10)
    assert it2 <= 1 and torch.allclose(x1, x2, atol=1e-9)
    single, _, _ = op.solve_raw(b[1:], tol=1e-10)
    torch.testing.assert_close(single[0], x1[1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("dense_limit", [0, DENSE_LIMIT])
def test_gradient_by_adjoint_solve_passes_gradcheck(dense_limit):
    ny, nx = 4, 5
    solid = torch.zeros(ny, nx, dtype=torch.bool)
    solid[1, 2] = True
    op = PoissonOperator(ny, nx, 0.5, "neumann-dirichlet", "neumann", solid, dense_limit=dense_limit)
    b = torch.randn(2, ny, nx, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op.solve(t, tol=1e-13), (b,))


def test_backward_does_not_store_iterations():
    # the graph holds the solve as one node: backward calls the solver once more, not CG's ops
    solid = torch.zeros(16, 16, dtype=torch.bool)
    solid[6:9, 4:6] = True
    op = PoissonOperator(16, 16, 0.1, "neumann-dirichlet", "neumann", solid)
    b = torch.randn(1, 16, 16, dtype=torch.float64, requires_grad=True)
    x = op.solve(b, tol=1e-12)
    assert type(x.grad_fn).__name__ == "PoissonSolveBackward"
    w = torch.randn_like(x)
    (x * w).sum().backward()
    # the gradient is the adjoint solve A^{-1} w (A symmetric, non-singular with an outflow)
    torch.testing.assert_close(op.apply(b.grad), w, atol=1e-9, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="x_rule"):
        PoissonOperator(4, 4, 0.1, "dirichlet", "neumann")
    with pytest.raises(ValueError, match="solid"):
        PoissonOperator(4, 4, 0.1, "periodic", "periodic", torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="h must"):
        PoissonOperator(4, 4, -1.0, "periodic", "periodic")
    op = PoissonOperator(4, 4, 0.1, "periodic", "periodic")
    with pytest.raises(ValueError, match="b must"):
        op.solve(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="b contains NaN"):
        op.solve(torch.full((1, 4, 4), float("nan")))
    with pytest.raises(TypeError, match="x0 must have dtype torch.float32"):  # it came back in float64
        op.solve(torch.zeros(1, 4, 4), x0=torch.zeros(1, 4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="ny must be an int"):
        PoissonOperator(4.5, 5, 0.1, "periodic", "periodic")
    with pytest.raises(ValueError, match="nx must be >= 1"):
        PoissonOperator(4, 0, 0.1, "periodic", "periodic")
    with pytest.raises(TypeError, match="solid must be a bool tensor"):  # .bool() made a random mask all solid
        PoissonOperator(4, 4, 0.1, "periodic", "periodic", torch.rand(4, 4))


def test_the_periodic_solve_keeps_float32_precision_on_a_large_grid():
    # 2 - 2 cos k, the FFT's eigenvalue, cancels in float32 for small k: a 1024² solve was 5e-4 off float64
    n = 1024
    op = PoissonOperator(n, n, 1.0 / n, "periodic", "periodic")
    b = torch.randn(1, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b -= b.mean()
    ref = op.solve(b)
    got = op.solve(b.float()).double()
    assert float((got - ref).norm() / ref.norm()) < 1e-6
    with pytest.raises(TypeError, match="b must be float32 or float64"):
        op.solve(b.half())


@pytest.mark.parametrize("dense_limit", [0, 1024])
def test_an_empty_batch_solves_to_an_empty_batch(dense_limit):
    solid = torch.zeros(4, 6, dtype=torch.bool)
    solid[1:3, 2:4] = True
    op = PoissonOperator(4, 6, 0.1, "neumann-dirichlet", "neumann", solid, dense_limit=dense_limit)
    b = torch.zeros(0, 4, 6, requires_grad=True)
    x = op.solve(b)
    assert x.shape == (0, 4, 6)
    x.sum().backward()
    assert b.grad.shape == (0, 4, 6)


def test_adjoint_solve_of_a_huge_float32_gradient_stays_finite():
    # Gradients through long unrolled rollouts can grow large; CG's inner products of a right-hand side
    # near 1e25 overflow float32 (1e50 > 3e38), so the solve must not depend on the scale of its input.
    solid = torch.zeros(8, 12, dtype=torch.bool)
    solid[3:5, 3:5] = True
    op = PoissonOperator(8, 12, 0.25, "neumann-dirichlet", "neumann", solid)
    b = torch.randn(2, 8, 12, generator=torch.Generator().manual_seed(0))
    b = b.requires_grad_()
    x = op.solve(b)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (x * (w * 1e25)).sum().backward()
    assert torch.isfinite(b.grad).all()
    (small,) = torch.autograd.grad((op.solve(b) * w).sum(), b)
    torch.testing.assert_close(b.grad / 1e25, small, rtol=1e-5, atol=1e-6 * float(small.abs().max()))


def _obstacle_op(dense_limit: int = DENSE_LIMIT):
    solid = torch.zeros(6, 8, dtype=torch.bool)
    solid[2:4, 3:5] = True
    return PoissonOperator(6, 8, 0.25, "neumann-dirichlet", "neumann", solid, dense_limit=dense_limit)


def test_double_backward_through_the_solve_is_exact():
    op = PoissonOperator(4, 5, 0.5, "neumann-dirichlet", "neumann")
    b = torch.randn(1, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 4, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad((op.solve(b, tol=1e-13) * w).sum(), b, create_graph=True)  # g = A^{-1} w
    (h,) = torch.autograd.grad(g.sum(), w, allow_unused=True)
    assert h is not None  # the path through the adjoint solve is kept, not silently dropped
    torch.testing.assert_close(h, op.solve(torch.ones(1, 4, 5, dtype=torch.float64), tol=1e-13), atol=1e-10, rtol=0)
    op = _obstacle_op()
    b = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: op.solve(t, tol=1e-13) ** 2, (b,))


def test_a_solve_stopped_at_max_iter_warns_once_per_direction():
    op = _obstacle_op(dense_limit=0)  # the dense preconditioner converges in one iteration
    b = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    with pytest.warns(RuntimeWarning, match=r"^pressure solve stopped at max_iter=1 .*residual .* > tol=1e-10"):
        x = op.solve(b, max_iter=1)
    with pytest.warns(RuntimeWarning, match=r"^adjoint pressure solve \(backward pass\) stopped at max_iter=1"):
        x.sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op.solve(b, max_iter=1).sum().backward()  # reported once: a rollout does not repeat it every step
        _obstacle_op(dense_limit=0).solve(b).sum().backward()  # converges
    _, it, res = op.solve_raw(b.detach(), max_iter=1)  # solve_raw returns the residual instead
    assert it == 1 and res > 1e-10


def test_bad_tolerance_and_iteration_cap_are_rejected():
    op = _obstacle_op()
    b = torch.randn(1, 6, 8, dtype=torch.float64)
    for bad in (-1e-6, 0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            op.solve(b, tol=bad)
        with pytest.raises(ValueError, match="tol"):
            op.solve_raw(b, tol=bad)
    with pytest.raises(TypeError, match="tol"):
        op.solve(b, tol="1e-6")
    with pytest.raises(ValueError, match="max_iter"):
        op.solve(b, max_iter=0)


def test_zero_right_hand_side_with_a_warm_start_solves_to_zero():
    # a fluid at rest with a warm-started pressure: |b| = 0 made the relative residual inf and the solve raise
    solid = torch.zeros(8, 8, dtype=torch.bool)
    solid[3:5, 2:4] = True
    op = PoissonOperator(8, 8, 0.2, "neumann-dirichlet", "neumann", solid)
    b = torch.randn(2, 8, 8, dtype=torch.float64)
    b[0] = 0.0
    guess = torch.randn(2, 8, 8, dtype=torch.float64)
    x, _, res = op.solve_raw(b, x0=guess, tol=1e-10)
    assert math.isfinite(res) and res <= 1e-10
    assert bool((x[0] == 0).all())
    ref, _, _ = op.solve_raw(b[1:], tol=1e-10)
    torch.testing.assert_close(x[1], ref[0], atol=1e-8, rtol=0)


def test_outflow_rule_pins_the_pressure_on_the_outflow_face():
    # "neumann-dirichlet" along x: dp/dx = 0 at the inflow (x = 0) and p = 0 on the outflow face (x = L).
    # cos(3 pi x / 2L) satisfies both, so it is an eigenmode of the operator with eigenvalue
    # (2 - 2 cos(3 pi h / 2L)) / h^2, and the obstacle-free fast solve returns it.
    ny, nx, h = 4, 10, 0.1
    op = PoissonOperator(ny, nx, h, "neumann-dirichlet", "neumann")
    length = nx * h
    x = (torch.arange(nx, dtype=torch.float64) + 0.5) * h
    mode = torch.cos(1.5 * math.pi * x / length).expand(ny, nx)[None]
    lam = (2 - 2 * math.cos(1.5 * math.pi * h / length)) / h**2
    torch.testing.assert_close(op.apply(mode), lam * mode, atol=1e-9, rtol=0)
    torch.testing.assert_close(op.solve(lam * mode), mode, atol=1e-9, rtol=0)
    # and the pressure gradient on the outflow face is (0 - p_last) / (h / 2)
    gx, _ = op.gradient(mode)
    torch.testing.assert_close(gx[..., -1], -mode[..., -1] / (h / 2), atol=1e-12, rtol=0)


@pytest.mark.parametrize("rules", [("neumann-dirichlet", "neumann"), ("periodic", "periodic")])
def test_dense_preconditioner_is_the_pseudo_inverse(rules):
    solid = torch.zeros(6, 8, dtype=torch.bool)
    solid[2:4, 3:5] = True
    op = PoissonOperator(6, 8, 0.25, rules[0], rules[1], solid)
    a, m = _dense(op), op.dense_inverse(torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(a @ m @ a, a, atol=1e-9, rtol=0)  # Moore-Penrose: A M A = A, M A M = M
    torch.testing.assert_close(m @ a @ m, m, atol=1e-9, rtol=0)
    if not op.singular:  # an outflow pins the level: the true inverse
        torch.testing.assert_close(a @ m, torch.eye(48, dtype=torch.float64), atol=1e-10, rtol=0)
    assert op.dense_inverse(torch.zeros(())).dtype == torch.float32  # served in the dtype asked for


def test_dense_preconditioner_only_on_small_grids_with_an_obstacle():
    solid = torch.zeros(32, 32, dtype=torch.bool)
    solid[10:14, 10:14] = True
    assert PoissonOperator(32, 32, 0.1, "neumann-dirichlet", "neumann", solid).dense  # 1024 cells
    wider = torch.nn.functional.pad(solid, (0, 1))
    assert not PoissonOperator(32, 33, 0.1, "neumann-dirichlet", "neumann", wider).dense
    assert not PoissonOperator(8, 8, 0.1, "neumann-dirichlet", "neumann").dense  # no obstacle: the fast solve
    with pytest.raises(TypeError, match="dense_limit"):
        PoissonOperator(8, 8, 0.1, "neumann-dirichlet", "neumann", dense_limit=1.5)
    with pytest.raises(ValueError, match="dense_limit"):
        PoissonOperator(8, 8, 0.1, "neumann-dirichlet", "neumann", dense_limit=-1)


def _two_regions_and_a_pocket() -> list[tuple[str, str, torch.Tensor, int]]:
    """(x_rule, y_rule, solid, closed regions): layouts whose fluid falls into several regions."""
    walls = torch.zeros(6, 9, dtype=torch.bool)
    walls[:, 2] = walls[:, 6] = True  # a periodic ring cut in two
    ring = torch.zeros(8, 10, dtype=torch.bool)
    ring[1:7, 2:7] = True
    ring[2:6, 3:6] = False  # a pocket that the outflow cannot reach
    return [("periodic", "neumann", walls, 2), ("neumann-dirichlet", "neumann", ring, 1),
            ("periodic", "periodic", ring, 2)]


@pytest.mark.parametrize("case", range(3))
def test_the_null_space_has_one_constant_per_closed_fluid_region(case):
    x_rule, y_rule, solid, closed = _two_regions_and_a_pocket()[case]
    op = PoissonOperator(*solid.shape, 0.2, x_rule, y_rule, solid)
    assert op.closed_regions == closed and op.singular
    eig = torch.linalg.eigvalsh(_dense(op))
    assert int((eig.abs() < 1e-9).sum()) == closed


@pytest.mark.parametrize("case", range(3))
def test_each_closed_region_gets_a_compatible_right_hand_side_and_zero_mean(case):
    # Only the fluid-wide mean used to be removed: a right-hand side with zero overall mean but not per
    # region made CG diverge, and a pocket's pressure level depended on the preconditioner.
    x_rule, y_rule, solid, _ = _two_regions_and_a_pocket()[case]
    torch.manual_seed(0)
    b = torch.randn(2, *solid.shape, dtype=torch.float64) * ~solid
    regions = PoissonOperator(*solid.shape, 0.2, x_rule, y_rule, solid)
    xs = []
    for dense_limit in (0, DENSE_LIMIT):
        op = PoissonOperator(*solid.shape, 0.2, x_rule, y_rule, solid, dense_limit=dense_limit)
        x, _, res = op.solve_raw(b, tol=1e-11)
        assert res <= 1e-11
        torch.testing.assert_close(op.apply(x), op._project_nullspace(b), atol=1e-9, rtol=0)
        xs.append(x)
    torch.testing.assert_close(xs[0], xs[1], atol=1e-9, rtol=0)
    from hybridzoo.physics.fluid_regions import fluid_regions
    lab = fluid_regions(regions._fluid, regions._wx, regions._wy)
    for k in range(int(lab.max()) + 1):
        inside = lab == k
        if x_rule == "neumann-dirichlet" and inside[:, -1].any():
            continue  # the outflow pins this region's level
        assert xs[0][:, inside].mean(dim=-1).abs().max() < 1e-12


def test_a_warm_start_that_needs_no_iteration_is_still_returned_with_zero_mean():
    op = PoissonOperator(6, 8, 0.25, "periodic", "neumann")
    b = torch.randn(2, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = op.solve(b)
    for warm in (op.solve_raw(b, x0=x + 5.0)[0], op.solve(b, x0=x + 5.0)):
        assert warm.mean(dim=(-2, -1)).abs().max() < 1e-12
        torch.testing.assert_close(warm, x, atol=1e-12, rtol=0)


def test_the_cell_size_may_be_a_numpy_number_but_not_a_bool_and_the_mask_must_be_a_tensor():
    import numpy as np

    assert PoissonOperator(3, 4, np.float32(0.5), "periodic", "periodic").h == 0.5
    with pytest.raises(TypeError, match="h must be a real number"):
        PoissonOperator(3, 4, True, "periodic", "periodic")
    with pytest.raises(TypeError, match="solid must be a torch.Tensor"):
        PoissonOperator(3, 4, 0.5, "periodic", "periodic", np.zeros((3, 4), bool))


def test_a_float32_solve_on_a_closed_domain_converges_as_in_float64():
    # The closed region's mean of b was summed one value after another in float32: the right-hand side stayed
    # incompatible by ~1e-5 relative and CG stopped at max_iter (or diverged) instead of converging in ~7 steps
    solid = torch.zeros(64, 64, dtype=torch.bool)
    solid[21:32, 21:32] = True
    op = PoissonOperator(64, 64, 1 / 64, "periodic", "periodic", solid)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        b = (torch.randn(2, 64, 64, generator=g) + 10.0) * ~solid
        x, it, res = op.solve_raw(b)
        assert res <= 1e-5 and it < 30, (it, res)
        assert x.abs().max() < 0.1
