import math

import numpy as np
import pytest
import torch
from hybridzoo.physics.airfoil import naca4, naca4_from_code
from hybridzoo.physics.panel import hess_smith, influence_matrices, system_residual

F64 = torch.float64


def karman_trefftz(mu: complex, tau_deg: float, n: int, n_chord: int = 20000):
    """Karman-Trefftz aerofoil with n panels (Selig order), its exact lift constant and chord."""
    k = 2.0 - math.radians(tau_deg) / math.pi
    radius = abs(1 - mu)
    beta = math.atan2(mu.imag, 1 - mu.real)

    def mapped(m):
        th = torch.linspace(0, 2 * math.pi, m + 1, dtype=F64) - beta
        zeta = (mu + radius * torch.exp(1j * th)).to(torch.complex128)
        z = k * ((zeta + 1) ** k + (zeta - 1) ** k) / ((zeta + 1) ** k - (zeta - 1) ** k)
        pts = torch.stack([z.real, z.imag], -1)
        pts[0] = pts[-1] = torch.tensor([k, 0.0], dtype=F64)  # the trailing edge (0/0 in the map)
        return pts

    dense = mapped(n_chord)
    chord = (dense - dense[0]).norm(dim=-1).max()
    return mapped(n), radius, beta, chord


@pytest.mark.parametrize("code", ["0012", "0006", "0021"])
def test_symmetric_aerofoil_at_zero_incidence_has_no_lift(code):
    sol = hess_smith(naca4_from_code(code, 60, dtype=F64), torch.tensor([0.0, 0.1], dtype=F64))
    assert abs(sol.cl[0].item()) < 1e-10
    neg = hess_smith(naca4_from_code(code, 60, dtype=F64), -0.1)
    assert neg.cl.item() == pytest.approx(-sol.cl[1].item(), rel=1e-9)
    assert sol.cl[1].item() > 0.5  # a real lift at 5.7 deg, not a trivially zero solution


@pytest.mark.parametrize(
    "mu,tau,final_tol",
    [(complex(-0.1, 0.1), 10.0, 5e-3), (complex(-0.08, 0.05), 0.0, 2e-2)],  # Karman-Trefftz, Joukowski (cusp)
)
def test_converges_to_karman_trefftz_exact_lift(mu, tau, final_tol):
    alpha = math.radians(4.0)
    errors = []
    for n in (50, 100, 200, 400):
        pts, radius, beta, chord = karman_trefftz(mu, tau, n)
        exact = (8 * math.pi * radius * math.sin(alpha + beta) / chord).item()
        sol = hess_smith(pts, alpha, chord=chord)
        errors.append(abs(sol.cl.item() - exact) / exact)
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < final_tol
    if tau > 0:  # with a finite trailing-edge angle the integrated pressure converges too
        assert abs(sol.cl_pressure.item() - exact) / exact < 0.01


def test_thin_aerofoil_lift_slope_tends_to_two_pi():
    a = torch.tensor([-0.02, 0.02], dtype=F64)
    slopes = {}
    for t in (0.06, 0.03, 0.015):
        cl = hess_smith(naca4(0.0, 0.0, t, 100, dtype=F64), a).cl
        slopes[t] = ((cl[1] - cl[0]) / 0.04).item() / (2 * math.pi)
        # the classical thickness correction dCl/da = 2 pi (1 + 0.77 t/c)
        assert slopes[t] == pytest.approx(1 + 0.77 * t, abs=0.01)
    assert slopes[0.06] > slopes[0.03] > slopes[0.015] > 1.0
    zero_thickness = 2 * slopes[0.015] - slopes[0.03]  # linear extrapolation to t = 0
    assert zero_thickness == pytest.approx(1.0, abs=5e-3)


def test_thin_cambered_zero_lift_angle_matches_thin_aerofoil_theory():
    # Thin-aerofoil theory for the NACA 24xx mean line: alpha_L0 = -2.077 deg.
    a = torch.tensor([-0.02, 0.02], dtype=F64)
    cl = hess_smith(naca4(0.02, 0.4, 0.02, 100, dtype=F64), a).cl
    slope = (cl[1] - cl[0]) / 0.04
    alpha_l0 = -math.degrees((0.5 * (cl[0] + cl[1]) / slope).item())
    assert alpha_l0 == pytest.approx(-2.077, abs=0.05)


def test_influence_coefficients_equal_the_integrated_point_singularities():
    """an, at against Gauss-Legendre sums of point sources along each panel, and the vortex coefficients
    the solver derives from them (bn = at, bt = -an) against sums of point vortices."""
    coords = naca4_from_code("2412", 8, dtype=F64)[None]  # 16 panels: adjacent ones meet at 22-45 degrees
    an, at, (start, end, length, tangent, normal, mid) = influence_matrices(coords)
    nodes, weights = (torch.as_tensor(a, dtype=F64) for a in np.polynomial.legendre.leggauss(400))
    s = 0.5 * (nodes + 1)  # (Q,) on [0, 1], the quadrature points along each panel
    xi = start[0, None, :, None] + s[None, None, :, None] * (end - start)[0, None, :, None]  # (1, j, Q, 2)
    r = mid[0, :, None, None] - xi  # (i, j, Q, 2) from the sheet to the midpoint
    kernel = r / (2 * math.pi * (r**2).sum(-1, keepdim=True))  # a unit point source's velocity
    w = (0.5 * weights * length[0, :, None])[None, :, :, None]  # ds of each quadrature point
    v_source = (kernel * w).sum(2)  # (i, j, 2)
    v_vortex = torch.stack([v_source[..., 1], -v_source[..., 0]], -1)  # clockwise: the source's, turned
    off = ~torch.eye(16, dtype=torch.bool)
    dot = lambda v, e: (v * e[0, :, None]).sum(-1)  # noqa: E731  (component along the frame of panel i)
    for got, want in ((an, dot(v_source, normal)), (at, dot(v_source, tangent)),
                      (at, dot(v_vortex, normal)), (-an, dot(v_vortex, tangent))):
        torch.testing.assert_close(got[0][off], want[off], rtol=0, atol=1e-9)
    # on its own panel a source sheet pushes out with half its strength and along it not at all
    torch.testing.assert_close(torch.diagonal(an[0]), torch.full((16,), 0.5, dtype=F64))
    torch.testing.assert_close(torch.diagonal(at[0]), torch.zeros(16, dtype=F64))


def test_batched_equals_one_at_a_time_and_residual_is_small():
    codes = ["2412", "0012", "4415", "6409"]
    coords = torch.stack([naca4_from_code(c, 40, dtype=F64) for c in codes])
    alpha = torch.deg2rad(
        torch.tensor([[-2.0, 3.0, 8.0], [0.0, 1.0, 2.0], [4.0, 5.0, 6.0], [-4.0, 0.0, 10.0]], dtype=F64)
    )
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):  # the batched-LU bug of torch 2.13 appears with 2 threads
            torch.set_num_threads(threads)
            sol = hess_smith(coords, alpha)
            res = system_residual(coords, alpha, sol)
            assert res.shape == (4, 3)
            assert res.max().item() < 1e-10
            for i in range(4):
                one = hess_smith(coords[i], alpha[i])
                torch.testing.assert_close(one.cl, sol.cl[i], rtol=1e-10, atol=1e-12)
                torch.testing.assert_close(one.cp, sol.cp[i], rtol=1e-9, atol=1e-10)
    finally:
        torch.set_num_threads(old)


def test_pressure_coefficient_physics():
    sol = hess_smith(naca4_from_code("0012", 80, dtype=F64), math.radians(3.0))
    assert sol.cp.shape == (160,)
    assert 0.95 < sol.cp.max().item() <= 1.0 + 1e-9  # stagnation point
    assert sol.cl_pressure.item() == pytest.approx(sol.cl.item(), rel=0.02)


def test_float32_and_shapes():
    coords = torch.stack([naca4_from_code("2412", 30), naca4_from_code("0012", 30)])
    sol = hess_smith(coords, torch.tensor([0.0, 0.05]))
    assert sol.cl.dtype == torch.float32 and sol.cl.shape == (2, 2)
    assert sol.cp.shape == (2, 2, 60) and sol.midpoints.shape == (2, 60, 2)
    ref = hess_smith(coords.double(), torch.tensor([0.0, 0.05], dtype=F64))
    torch.testing.assert_close(sol.cl.double(), ref.cl, rtol=1e-4, atol=1e-5)


def test_gradcheck_alpha_and_shape():
    coords = naca4_from_code("2412", 6, dtype=F64).requires_grad_()
    alpha = torch.tensor([0.05, 0.1], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, a: hess_smith(c, a).cl, (coords, alpha))
    assert torch.autograd.gradcheck(lambda c, a: hess_smith(c, a).cp, (coords, alpha))
    t = torch.tensor(0.12, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: hess_smith(naca4(0.02, 0.4, t, 6), 0.1).cl, (t,))


def test_bad_inputs_name_the_argument():
    c = naca4_from_code("0012", 20, dtype=F64)
    with pytest.raises(ValueError, match="alpha"):
        hess_smith(c, 5.0)  # degrees
    with pytest.raises(TypeError, match="alpha"):
        hess_smith(c, "0.1")
    with pytest.raises(ValueError, match="alpha"):
        hess_smith(torch.stack([c, c]), torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="coords"):
        hess_smith(c[:-5], 0.1)  # open contour
    with pytest.raises(ValueError, match="coords"):
        hess_smith(torch.cat([c[:5], c[4:]]), 0.1)  # repeated point
    with pytest.raises(TypeError, match="coords"):
        hess_smith(c.tolist(), 0.1)
    with pytest.raises(TypeError, match="alpha must have a real floating dtype"):
        hess_smith(c, torch.tensor(0.1 + 0.5j))  # its imaginary part used to be dropped
    for half in (torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match="coords must be float32 or float64"):
            hess_smith(c.to(half), 0.1)


def test_numpy_angles_of_any_precision_are_real_numbers():
    c = naca4_from_code("2412", 20, dtype=F64)
    ref = hess_smith(c, 0.1).cl
    torch.testing.assert_close(hess_smith(c, np.float64(0.1)).cl, ref)
    torch.testing.assert_close(hess_smith(c, np.float32(0.1)).cl, hess_smith(c, float(np.float32(0.1))).cl)
    with pytest.raises(TypeError, match="alpha"):
        hess_smith(c, np.bool_(True))


def test_chord_is_validated():
    c = naca4_from_code("2412", 30, dtype=F64)
    batch = torch.stack([c, c])
    ref = hess_smith(c, 0.05).cl
    torch.testing.assert_close(hess_smith(c, 0.05, chord=2.0).cl, 0.5 * hess_smith(c, 0.05, chord=1.0).cl)
    per_foil = hess_smith(batch, 0.05, chord=torch.tensor([1.0, 2.0], dtype=F64)).cl
    torch.testing.assert_close(per_foil[1], 0.5 * per_foil[0])
    assert torch.isfinite(ref)
    for bad in (-1.0, 0.0, float("nan"), float("inf"), torch.tensor([1.0, -1.0], dtype=F64)):
        with pytest.raises(ValueError, match="chord"):
            hess_smith(batch, 0.05, chord=bad)
    for shape in ((3,), (2, 1), (1,)):
        with pytest.raises(ValueError, match="chord"):
            hess_smith(batch, 0.05, chord=torch.ones(shape, dtype=F64))
    with pytest.raises(TypeError, match="chord"):
        hess_smith(c, 0.05, chord="1")


def test_an_empty_batch_solves_to_an_empty_batch():
    coords = naca4_from_code("2412", 20).double()[None][:0]
    sol = hess_smith(coords, torch.zeros(0, 3, dtype=torch.float64))
    assert sol.cl.shape == (0, 3) and sol.cp.shape == (0, 3, 40)
