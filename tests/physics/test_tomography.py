import copy
import math

import pytest
import torch
from hybridzoo.physics.tomography import ParallelBeamGeometry, RayTransform


@pytest.fixture(scope="module")
def op64():
    return RayTransform(ParallelBeamGeometry(64, 30))


def _dot_test(op, dtype, batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *op.geometry.image_shape, generator=gen, dtype=dtype)
    y = torch.rand(batch, *op.geometry.sinogram_shape, generator=gen, dtype=dtype)
    # Reduce in float64 so the test measures the operators, not the summation.
    lhs = (op(x).double() * y.double()).sum()
    rhs = (x.double() * op.adjoint(y).double()).sum()
    return float((lhs - rhs).abs() / lhs.abs())


def test_adjoint_matches_forward_float32(op64):
    assert _dot_test(op64, torch.float32) < 1e-5


def test_adjoint_matches_forward_float64(op64):
    assert _dot_test(op64, torch.float64) < 1e-12


def test_disc_projection_matches_chord_length():
    n, r = 64, 20.0  # radius in pixels (pixel size 1)
    geom = ParallelBeamGeometry(n, 12)
    op = RayTransform(geom)
    sub = 8  # supersampled disc so the test measures the projector, not the rasterisation
    c = (torch.arange(n * sub, dtype=torch.float64) + 0.5) / sub - n / 2
    inside = (c[None, :] ** 2 + c[:, None] ** 2 <= r * r).double()
    disc = inside.reshape(n, sub, n, sub).mean(dim=(1, 3))
    p = op(disc)
    s = geom.detector_positions
    chord = 2 * torch.sqrt((r * r - s**2).clamp_min(0)).expand_as(p)
    # Tangent rays (|s| near r) see the half-pixel blur of the rasterised edge: compare inside it.
    core = s.abs() < r - 1
    assert float((p - chord)[:, core].norm() / chord[:, core].norm()) < 0.01
    # Each projection carries the image's total mass (integral over s of the line integrals).
    assert torch.allclose(p.sum(-1) * geom.detector_spacing, disc.sum().expand(12), rtol=0.01)
    interior = s.abs() < 0.9 * r
    rel = ((p - chord).abs() / chord.clamp_min(1e-9))[:, interior]
    assert float(rel.max()) < 0.02


def test_point_projects_to_its_sinusoid():
    n = 33  # odd, so a pixel sits on the origin; offset pixel at x = +8, y = 0
    geom = ParallelBeamGeometry(n, 16)
    op = RayTransform(geom)
    x = torch.zeros(n, n, dtype=torch.float64)
    x[n // 2, n // 2 + 8] = 1.0
    p = op(x)
    # Centre of mass of each projection follows s = x cos(theta) + y sin(theta).
    s = geom.detector_positions
    com = (p * s).sum(-1) / p.sum(-1)
    # Joseph interpolation moves a lone pixel's centroid by up to ~0.2 bins (measured 0.18).
    assert torch.allclose(com, 8 * torch.cos(geom.angles), atol=0.25)


def test_batched_and_dtype(op64):
    x = torch.rand(2, 3, 64, 64)
    out = op64(x)
    assert out.shape == (2, 3, 30, op64.geometry.num_detectors) and out.dtype == torch.float32
    assert torch.allclose(out[1, 2], op64(x[1, 2]), atol=1e-5)
    assert op64(x.double()).dtype == torch.float64


def test_gradcheck_forward_and_adjoint():
    op = RayTransform(ParallelBeamGeometry(6, 4))
    x = torch.rand(2, 6, 6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 4, op.geometry.num_detectors, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.forward, (x,))
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    assert torch.autograd.gradgradcheck(lambda t: op.forward(t) ** 2, (x,))


def test_default_detector_covers_diagonal():
    geom = ParallelBeamGeometry(128, 30)
    assert geom.num_detectors == math.ceil(128 * math.sqrt(2))
    assert geom.sinogram_shape == (30, 182)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"image_size": 16, "num_angles": 0}, "num_angles"),
        ({"image_size": 0, "num_angles": 4}, "image_size"),
        ({"image_size": 16, "num_angles": 4, "num_detectors": 20}, "num_detectors"),
        ({"image_size": 16, "num_angles": 4, "detector_spacing": -1.0}, "detector_spacing"),
        ({"image_size": 16, "num_angles": 4, "angle_range": 0.0}, "angle_range"),
    ],
)
def test_bad_geometry(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ParallelBeamGeometry(**kwargs)


def test_bad_inputs(op64):
    with pytest.raises(ValueError, match="image"):
        op64(torch.zeros(64, 65))  # non-square image
    with pytest.raises(ValueError, match="sinogram"):
        op64.adjoint(torch.zeros(30, 90))
    with pytest.raises(TypeError, match="image"):
        op64(torch.zeros(64, 64, dtype=torch.int64))
    with pytest.raises(TypeError, match="geometry"):
        RayTransform((64, 30))
    with pytest.raises(TypeError, match="num_angles"):
        ParallelBeamGeometry(16, 4.0)


def test_operator_norm_matches_power_of_dense():
    op = RayTransform(ParallelBeamGeometry(8, 5))
    dense = op(torch.eye(64, dtype=torch.float64).reshape(64, 8, 8)).reshape(64, -1)
    assert op.operator_norm() == pytest.approx(float(torch.linalg.matrix_norm(dense, ord=2)), rel=1e-6)


def test_operator_norm_cache_is_keyed_by_iterations_and_seed():
    op = RayTransform(ParallelBeamGeometry(8, 5))
    dense = op(torch.eye(64, dtype=torch.float64).reshape(64, 8, 8)).reshape(64, -1)
    exact = float(torch.linalg.matrix_norm(dense, ord=2))
    cheap = op.operator_norm(iterations=1)
    # Unit-norm start: one step gives sqrt(||F* F x0||) <= ||F|| (an unnormalised start overshot it).
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 8, generator=gen, dtype=torch.float64)
    x0 = x0 / x0.norm()
    assert cheap == pytest.approx(math.sqrt(float(op.adjoint(op(x0)).norm())), rel=1e-12)
    assert cheap <= exact * (1 + 1e-12)
    # A cheap first call must not fix the value returned for more iterations or another seed.
    assert op.operator_norm(iterations=100) == pytest.approx(exact, rel=1e-6)
    assert op.operator_norm(iterations=100, seed=3) == pytest.approx(exact, rel=1e-6)
    assert op.operator_norm(iterations=1, seed=3) != cheap
    assert op.operator_norm(iterations=1) == cheap


def test_operator_norm_validates_even_when_cached():
    op = RayTransform(ParallelBeamGeometry(8, 5))
    op.operator_norm()
    with pytest.raises(ValueError, match="iterations"):
        op.operator_norm(iterations=0)
    with pytest.raises(TypeError, match="iterations"):
        op.operator_norm(iterations=2.5)
    with pytest.raises(TypeError, match="seed"):
        op.operator_norm(seed=1.0)


def test_default_detector_count_has_no_parity_adjustment():
    # ceil(n sqrt 2) whatever its parity: 23 (odd) for 16, 46 (even) for 32.
    assert ParallelBeamGeometry(16, 4).num_detectors == 23
    assert ParallelBeamGeometry(32, 4).num_detectors == 46


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    op = RayTransform(ParallelBeamGeometry(16, 8))
    x = torch.rand(2, 16, 16).to(dtype)
    y = op(x)
    assert y.dtype == dtype
    assert torch.equal(y, op(x.float()).to(dtype))
    s = torch.rand(2, *op.geometry.sinogram_shape).to(dtype)
    assert op.adjoint(s).dtype == dtype
    assert torch.equal(op.adjoint(s), op.adjoint(s.float()).to(dtype))
    xg = x.clone().requires_grad_()
    op(xg).float().sum().backward()
    assert xg.grad.dtype == dtype and torch.isfinite(xg.grad.float()).all()


def test_deepcopy_shares_the_matrices():
    op = RayTransform(ParallelBeamGeometry(16, 8))
    norm = op.operator_norm()
    x = torch.rand(2, 16, 16)
    before = op(x)  # populates the float32 cache
    dup = copy.deepcopy(op)
    assert dup is not op and dup.geometry == op.geometry
    assert dup._base is op._base  # immutable, so shared rather than copied
    assert torch.equal(dup(x), before)
    assert torch.equal(dup.adjoint(before), op.adjoint(before))
    assert dup.operator_norm() == norm
    assert dup._cache is not op._cache  # separate dicts (sharing the converted matrices)


def test_a_point_off_the_x_axis_follows_the_sine_part_of_its_sinusoid():
    # The x-axis point above only checks the cos(theta) part of s = x cos(theta) + y sin(theta); with a symmetric
    # angle set, a sign error in the y stepping would pass it. Rows run downwards, so row n//2 - 8 is y = +8.
    n = 33
    geom = ParallelBeamGeometry(n, 16)
    x = torch.zeros(n, n, dtype=torch.float64)
    x[n // 2 - 8, n // 2] = 1.0
    p = RayTransform(geom)(x)
    com = (p * geom.detector_positions).sum(-1) / p.sum(-1)
    assert torch.allclose(com, 8 * torch.sin(geom.angles), atol=0.25)


def test_angles_are_the_midpoints_of_an_even_partition_of_the_range():
    # ODL's uniform_partition convention (as in the learned primal-dual paper's code)
    torch.testing.assert_close(ParallelBeamGeometry(8, 4).angles,
                               torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=torch.float64) * math.pi / 8)


@pytest.mark.parametrize("num_detectors", [46, 47])
def test_a_centred_disc_projects_symmetrically_about_the_detector_centre(num_detectors):
    # the detector's centre bin lies on the rotation axis, whatever the parity of the bin count
    geom = ParallelBeamGeometry(32, 8, num_detectors=num_detectors)
    c = torch.arange(32, dtype=torch.float64) - 15.5
    disc = (c[None] ** 2 + c[:, None] ** 2 <= 10**2).double()
    p = RayTransform(geom)(disc)
    torch.testing.assert_close(p, p.flip(-1), atol=1e-9, rtol=0)
