import math

import pytest
import torch
from hybridzoo.physics.airfoil import (
    check_airfoil,
    cst_fit,
    cst_surface,
    naca4,
    naca4_from_code,
    normalize,
    parse_dat,
    parse_naca4,
    read_dat,
    repanel,
    signed_area,
    thickness_camber,
    write_dat,
)

F64 = torch.float64


def test_naca4_geometry():
    c = naca4_from_code("0012", 100, dtype=F64)
    assert c.shape == (201, 2)
    torch.testing.assert_close(c[0], torch.tensor([1.0, 0.0], dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(c[-1], c[0])
    torch.testing.assert_close(c[:, 1], -c.flip(0)[:, 1])  # symmetric
    assert (c[:, 1].max() - c[:, 1].min()).item() == pytest.approx(0.12, rel=2e-3)
    # Area of the NACA 4-digit thickness form: 10 t * (0.2969*2/3 - 0.126/2 - 0.3516/3 + 0.2843/4 - 0.1036/5)
    exact = 10 * 0.12 * (0.2969 * 2 / 3 - 0.126 / 2 - 0.3516 / 3 + 0.2843 / 4 - 0.1036 / 5)
    assert signed_area(c).item() == pytest.approx(exact, rel=2e-3)


def test_naca4_camber_and_batch():
    m = torch.tensor([0.0, 0.02, 0.04], dtype=F64)
    p = torch.tensor([0.0, 0.4, 0.4], dtype=F64)
    batch = naca4(m, p, 0.12, 50)
    assert batch.shape == (3, 101, 2)
    torch.testing.assert_close(batch[1], naca4_from_code("2412", 50, dtype=F64))
    tc = thickness_camber(naca4_from_code("2412", 200, dtype=F64), stations=(0.4,))
    # NACA mean line: camber m at x = p; thickness form at x = 0.4: 5t(...) * 2
    x = 0.4
    yt = 5 * 0.12 * (0.2969 * math.sqrt(x) - 0.126 * x - 0.3516 * x**2 + 0.2843 * x**3 - 0.1036 * x**4)
    assert tc[1].item() == pytest.approx(0.02, rel=0.02)
    assert tc[0].item() == pytest.approx(2 * yt, rel=0.02)


def test_naca4_ignores_the_camber_position_of_an_uncambered_section():
    # documented: p is ignored where m == 0; it was range-checked, and p = 1 would have divided 0 by 0
    ref = naca4(0.0, 0.4, 0.12, 40, dtype=F64)
    for p in (0.99, 1.0, -0.5):
        torch.testing.assert_close(naca4(0.0, p, 0.12, 40, dtype=F64), ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="p must lie in"):
        naca4(0.02, 0.99, 0.12, 40)


def test_parse_naca4_errors():
    assert parse_naca4("NACA 4415") == (0.04, 0.4, 0.15)
    for bad in ("241", "24x2", "2012", "0400", "2400"):
        with pytest.raises(ValueError, match="code"):
            parse_naca4(bad)
    with pytest.raises(TypeError, match="code"):
        parse_naca4(2412)


def test_selig_and_lednicer_files(tmp_path):
    c = naca4_from_code("2412", 30, dtype=F64)
    write_dat(tmp_path / "a.dat", c, "NACA 2412")
    title, back = read_dat(tmp_path / "a.dat")
    assert title == "NACA 2412"
    torch.testing.assert_close(back, c, atol=1e-8, rtol=0)
    upper, lower = c[:31].flip(0), c[30:]  # both from the leading edge
    lines = ["NACA 2412 Lednicer", f"{len(upper)}. {len(lower)}.", ""]
    lines += [f"{x} {y}" for x, y in upper.tolist()] + [""] + [f"{x} {y}" for x, y in lower.tolist()]
    _, led = parse_dat("\n".join(lines))
    torch.testing.assert_close(led, c)
    with pytest.raises(ValueError, match="path"):
        read_dat(tmp_path / "missing.dat")
    with pytest.raises(ValueError, match="rows"):
        parse_dat("title\n1 0\n0 0\n")
    text = (tmp_path / "a.dat").read_text().splitlines()
    for bad in ("0.5 nan", "inf 0.0"):  # float() reads both: they came back as coordinates
        with pytest.raises(ValueError, match=f"x.dat: line 5 holds a non-finite coordinate: '{bad}'"):
            parse_dat("\n".join(text[:4] + [bad] + text[5:]), name="x.dat")


def test_real_uiuc_file_matches_generated_naca():
    asb = pytest.importorskip("aerosandbox")
    from pathlib import Path

    path = Path(asb.__file__).parent / "geometry" / "airfoil" / "airfoil_database" / "naca2412.dat"
    _, raw = read_dat(path)
    ours = repanel(normalize(raw), 80)
    ref = normalize(naca4_from_code("2412", 80, closed_te=False, dtype=F64))  # same chord-line convention
    stations = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    # 1.5e-3: the file's coarse nose moves the leading-edge point (and so the chord line) slightly
    torch.testing.assert_close(
        thickness_camber(ours, stations), thickness_camber(ref, stations), atol=1.5e-3, rtol=0
    )


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c[:-8], "open contour"),
        (lambda c: c.flip(0), "counter-clockwise"),
        (lambda c: c[:5], "at least"),
        (lambda c: torch.where(torch.arange(len(c))[:, None] == 7, float("nan"), c), "NaN"),
    ],
)
def test_check_airfoil_errors(mutate, match):
    c = naca4_from_code("2412", 30, dtype=F64)
    check_airfoil(c)
    with pytest.raises(ValueError, match=match):
        check_airfoil(mutate(c), "shape")


def test_check_airfoil_self_intersection_and_types():
    c = naca4_from_code("0012", 30, dtype=F64).clone()
    c[5:10, 1] = -c[5:10, 1] - 0.1  # upper surface dives through the lower one
    with pytest.raises(ValueError, match="self-intersecting"):
        check_airfoil(c)
    with pytest.raises(TypeError, match="coords"):
        check_airfoil(torch.zeros(20, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="coords"):
        check_airfoil([[0.0, 0.0]] * 20)
    with pytest.raises(ValueError, match="coords"):
        check_airfoil(torch.zeros(20, 3))
    open_contour = naca4_from_code("0012", 30, dtype=F64)[:-3]
    for gap in (float("nan"), -1.0):  # NaN turned the open-contour check off; -1 called a closed contour open
        with pytest.raises(ValueError, match="max_te_gap"):
            check_airfoil(open_contour, max_te_gap=gap)


def _float32_contour_with_a_straight_leading_edge() -> torch.Tensor:
    """A closed float32 contour whose upper surface ends in four nearly collinear points at the LE.

    The six points before the leading edge are those of UIUC goe402 re-panelled to 60 panels per side and
    stored in float32 (the shipped data set): ~1e-3 chords apart on an almost straight line.
    """
    upper = [(1.0, 0.0), (0.75, 0.045), (0.5, 0.07), (0.25, 0.06), (0.1, 0.035), (0.03, 0.02)]
    le = [
        (0.00596017437055707, 0.009569656103849411),
        (0.0033579671289771795, 0.005391552112996578),
        (0.0014941361732780933, 0.0023989849723875523),
        (0.0003737901570275426, 0.0006001574802212417),
        (0.0, 0.0),
        (0.0006394365336745977, -0.00025219377130270004),
        (0.0025559933856129646, -0.0010080838110297918),
    ]
    lower = [(0.03, -0.006), (0.1, -0.01), (0.25, -0.012), (0.5, -0.01), (0.75, -0.005), (1.0, 0.0)]
    return torch.tensor(upper + le + lower, dtype=torch.float32)


def test_float32_contours_are_checked_without_rounding_artefacts():
    # In float32 the orientation products of the nearly collinear LE segments are rounding noise (~1e-13
    # against a true ~3e-13): they used to flip sign, and valid float32 aerofoils (goe402, goe409 and goe14k
    # of the shipped data at 60 panels per side) were rejected as self-intersecting, by hess_smith too.
    c = _float32_contour_with_a_straight_leading_edge()
    assert check_airfoil(c) is c
    check_airfoil(c.double())
    # a float32 contour that does cross is still rejected, at the scale of the leading-edge panels too
    lower_through_upper = c.clone()
    lower_through_upper[11] = torch.tensor([0.0009, 0.0025])  # the point after the LE jumps above the upper surface
    big = naca4_from_code("0012", 30, dtype=torch.float32).clone()
    big[5:10, 1] = -big[5:10, 1] - 0.1
    for bad in (lower_through_upper, big):
        with pytest.raises(ValueError, match="self-intersecting"):
            check_airfoil(bad)


def test_repanel_cosine_and_on_contour():
    dense = naca4_from_code("4412", 400, dtype=F64)
    r = repanel(dense, 40)
    assert r.shape == (81, 2)
    torch.testing.assert_close(r[0], dense[0])
    torch.testing.assert_close(r[-1], dense[-1])
    assert r[40, 0].item() == pytest.approx(dense[:, 0].min().item(), abs=1e-12)
    lengths = (r[1:] - r[:-1]).norm(dim=-1)
    assert lengths[0] < 0.3 * lengths[20] and lengths[39] < 0.3 * lengths[20]  # clustered at TE and LE
    coarse = naca4_from_code("4412", 40, dtype=F64)
    # resampled points lie on the original curve: compare y at the same x on the upper surface
    up = r[:41].flip(0)
    yref = torch.from_numpy(
        __import__("numpy").interp(
            up[:, 0].numpy(), dense[:401, 0].flip(0).numpy(), dense[:401, 1].flip(0).numpy()
        )
    )
    away = up[:, 0] > 0.05  # linear interpolation of the reference is too coarse at the round nose
    assert (up[away, 1] - yref[away]).abs().max().item() < 1e-4
    assert coarse.shape == r.shape


def test_normalize_undoes_similarity_transform():
    c = naca4_from_code("2412", 60, closed_te=False, dtype=F64)
    th = 0.3
    rot = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=F64)
    moved = 2.5 * c @ rot.T + torch.tensor([3.0, -1.0], dtype=F64)
    back = normalize(moved)
    torch.testing.assert_close(back, normalize(c), atol=1e-12, rtol=0)
    assert back[:, 0].min().item() == pytest.approx(0.0, abs=1e-12)


def test_cst_recovers_its_own_shape_and_fits_naca():
    psi = 0.5 * (1 - torch.cos(torch.linspace(0, math.pi, 61, dtype=F64)))
    wu = torch.tensor([0.17, 0.15, 0.2, 0.14, 0.19, 0.16], dtype=F64)
    wl = torch.tensor([-0.15, -0.1, -0.12, -0.05, -0.02, 0.01], dtype=F64)
    yu, yl = cst_surface(wu, psi, 0.001), cst_surface(wl, psi, -0.001)
    coords = torch.cat([torch.stack([psi, yu], -1).flip(0), torch.stack([psi, yl], -1)[1:]])
    w = cst_fit(coords, 5)
    assert w.shape == (13,)
    torch.testing.assert_close(w[:6], wu, atol=1e-8, rtol=0)
    torch.testing.assert_close(w[6:12], wl, atol=1e-8, rtol=0)
    assert w[12].item() == pytest.approx(0.002, abs=1e-10)
    naca = naca4_from_code("2412", 80, closed_te=False, dtype=F64)
    wn = cst_fit(naca, 5)
    up = naca[:81].flip(0)
    fit = cst_surface(wn[:6], up[:, 0], 0.5 * wn[12])
    assert (fit - up[:, 1]).abs().max().item() < 3e-3  # 5th-order CST misses a little at the nose
    assert (fit - up[:, 1]).pow(2).mean().sqrt().item() < 5e-4
    assert cst_fit(torch.stack([naca, naca]), 5).shape == (2, 13)


def test_cst_fit_is_differentiable_at_the_leading_edge_point():
    # The leading-edge point of a normalised contour has x = 0, where sqrt's slope is infinite: every
    # coordinate's gradient came out NaN.
    coords = naca4_from_code("2412", 12, dtype=F64).requires_grad_()
    assert coords[12, 0].item() == 0.0
    (grad,) = torch.autograd.grad(cst_fit(coords, 3).square().sum(), coords)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    interior = coords.detach()[1:-1].clone().requires_grad_()  # the trailing-edge points stay fixed
    keep = torch.ones(coords.shape[0], dtype=torch.bool)
    keep[12] = False  # away from the leading edge, where the fit is smooth, the gradient is checked
    le = coords.detach()[12]

    def fit(inner: torch.Tensor) -> torch.Tensor:
        full = torch.cat([coords.detach()[:1], inner, coords.detach()[-1:]])
        return cst_fit(torch.where(keep[:, None], full, le), 3)

    assert torch.autograd.gradcheck(fit, (interior,))


def test_naca4_promotes_mixed_tensor_dtypes():
    m32, t64 = torch.tensor(0.02), torch.tensor(0.12, dtype=F64)
    assert naca4(m32, 0.4, t64, 10).dtype == F64  # the float32 m used to set the dtype and round t
    assert naca4(t64 * 0 + 0.02, 0.4, t64.float(), 10).dtype == F64
    assert naca4(m32, 0.4, 0.12, 10).dtype == torch.float32
    with pytest.raises(TypeError, match="t must be real"):  # a complex t lost its imaginary part, blaming m
        naca4(0.02, 0.4, torch.tensor(0.12 + 0.01j), 10, dtype=F64)
    with pytest.raises(TypeError, match="m, p and t give the dtype torch.int64"):
        naca4(0.02, 0.4, torch.tensor(1), 10)


def test_cst_fit_of_a_batch_equals_one_contour_at_a_time():
    # Contours with their leading edge at different indices (40 upper points and 80 lower, and the
    # reverse) share one batched least-squares call.
    def contour(n_up: int, n_low: int, wu: list[float], wl: list[float]) -> torch.Tensor:
        psi_u = 0.5 * (1 - torch.cos(torch.linspace(0, math.pi, n_up, dtype=F64)))
        psi_l = 0.5 * (1 - torch.cos(torch.linspace(0, math.pi, n_low, dtype=F64)))
        up = torch.stack([psi_u, cst_surface(torch.tensor(wu, dtype=F64), psi_u, 0.001)], -1).flip(0)
        low = torch.stack([psi_l, cst_surface(torch.tensor(wl, dtype=F64), psi_l, -0.001)], -1)
        return torch.cat([up, low[1:]])

    shapes = torch.stack(
        [
            contour(40, 81, [0.2, 0.1, 0.25, 0.1, 0.2, 0.15], [-0.1, -0.1, -0.05, 0.0, 0.02, 0.05]),
            contour(80, 41, [0.15, 0.2, 0.1, 0.2, 0.1, 0.2], [-0.2, -0.15, -0.1, -0.1, -0.05, 0.0]),
        ]
    )
    batched = cst_fit(shapes, 5)
    for b in range(2):
        torch.testing.assert_close(batched[b], cst_fit(shapes[b], 5), atol=1e-12, rtol=0)
    torch.testing.assert_close(batched[0, :6], torch.tensor([0.2, 0.1, 0.25, 0.1, 0.2, 0.15], dtype=F64))


def test_thickness_camber_rejects_stations_outside_the_chord():
    c = naca4_from_code("2412", 80, closed_te=False, dtype=F64)
    ok = thickness_camber(c, (0.0, 0.3, 1.0))
    assert torch.isfinite(ok).all() and ok[1] == pytest.approx(0.12 * 1.0, abs=0.02)
    for bad in ((30.0, 100.0), (-0.5,), (0.3, 1.0001), (float("nan"),), ()):
        with pytest.raises(ValueError, match="stations"):
            thickness_camber(c, bad)


def test_interpolation_never_extrapolates():
    from hybridzoo.physics.airfoil import _interp

    xp = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    fp = torch.tensor([[0.0, 0.0], [1.0, 10.0], [2.0, 0.0]], dtype=F64)
    got = _interp(torch.tensor([[-1.0, 0.5, 1.5, 3.0]], dtype=F64), xp[None], fp[None])[0]
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.0], [0.5, 5.0], [1.5, 5.0], [2.0, 0.0]], dtype=F64))


def test_cst_surface_default_te_offset_follows_psi():
    w, psi = torch.ones(6, device="meta"), torch.linspace(0, 1, 5, device="meta")
    assert cst_surface(w, psi).device.type == "meta"  # stands in for CUDA: no CPU tensor is mixed in
    w32, psi32 = torch.ones(6), torch.linspace(0, 1, 5)
    assert cst_surface(w32, psi32).dtype == torch.float32
    assert cst_surface(w32.double(), psi32.double()).dtype == F64


def test_segment_crossing_matches_a_pairwise_reference():
    # every pair of non-adjacent segments of short random polylines, tested one by one in plain Python
    from hybridzoo.physics.airfoil import _segments_cross

    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def crosses(pts):
        k = len(pts) - 1
        for i in range(k):
            for j in range(k):
                if abs(i - j) <= 1 or {i, j} == {0, k - 1}:
                    continue
                a, b, c, d = pts[i], pts[i + 1], pts[j], pts[j + 1]
                if orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0:
                    return True
        return False

    g = torch.Generator().manual_seed(0)
    lines = torch.rand(300, 6, 2, generator=g, dtype=torch.float64)
    lines[::2, :, 0] = torch.linspace(0, 1, 6, dtype=torch.float64)  # monotone in x: these never cross
    expected = torch.tensor([crosses(p.tolist()) for p in lines])
    assert 50 < int(expected.sum()) < 250  # both outcomes are exercised
    assert torch.equal(_segments_cross(lines), expected)


def test_shape_features_of_an_empty_batch_are_empty():
    none = naca4_from_code("2412", 30).double()[None][:0]
    assert cst_fit(none).shape == (0, 13) and cst_fit(none, 3).shape == (0, 9)
    assert thickness_camber(none).shape == (0, 10)


def test_shape_fits_and_normalize_refuse_what_they_would_get_wrong():
    c = naca4_from_code("2412", 30, dtype=F64)
    with pytest.raises(ValueError, match=r"chord-normalised .* x from 0.5 to 1.5"):  # weights ~ -133 before
        cst_fit(c + torch.tensor([0.5, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="counter-clockwise"):  # the surfaces swapped silently
        cst_fit(c.flip(0))
    with pytest.raises(ValueError, match="at least"):
        cst_fit(c[::20])
    with pytest.raises(TypeError, match="float32 or float64"):
        cst_fit(c.half())
    slightly_over = c.clone()
    slightly_over[:, 0] = slightly_over[:, 0] * 1.01 - 0.005  # a normalised contour's small overshoots pass
    assert torch.isfinite(cst_fit(slightly_over)).all()
    with pytest.raises(ValueError, match="coords contains NaN"):
        normalize(c.index_fill(0, torch.tensor([3]), float("nan")))
    with pytest.raises(ValueError, match="zero chord"):
        normalize(torch.zeros(10, 2, dtype=F64))
    with pytest.raises(TypeError, match="coords must be a torch.Tensor"):
        normalize(c.numpy())


def test_naca4_and_repanel_arguments_are_checked():
    with pytest.raises(TypeError, match="closed_te must be a bool"):  # "no" gave the closed trailing edge
        naca4(0.02, 0.4, 0.12, 20, closed_te="no")
    with pytest.raises(ValueError, match=r"m must be a scalar or of shape \(B,\), got shape \(2, 3\)"):
        naca4(torch.full((2, 3), 0.02), 0.4, 0.12, 20)  # flattened into 6 aerofoils before
    with pytest.raises(ValueError, match="one length B"):  # a raw broadcast error before
        naca4(torch.full((2,), 0.02), torch.full((3,), 0.4), 0.12, 20)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        naca4(0.02, 0.4, 0.12, 20, dtype="float64")
    assert naca4(torch.full((3,), 0.02), torch.full((1,), 0.4), 0.12, 20).shape == (3, 41, 2)  # (1,) broadcasts
    for make in (lambda n: naca4(0.0, 0.0, 0.12, n), lambda n: repanel(naca4_from_code("0012", 30), n)):
        with pytest.raises(ValueError, match="n_per_side must be >= 4"):  # 3 points that no check accepts
            make(1)
        assert make(4).shape[-2] == 9


def test_thickness_camber_of_a_batch_is_each_contours_own():
    # 81 points each, the leading edge near index 40, 20 and 60: surfaces of 40 and 60 panels, or 20
    a = naca4_from_code("4415", 40, dtype=F64)
    coarse, fine = naca4_from_code("0012", 40, dtype=F64), naca4_from_code("0012", 60, dtype=F64)
    b = torch.cat([coarse[:41:2], fine[61:]])  # upper: 20 panels, lower: 60
    cambered_fine, cambered_coarse = naca4(0.06, 0.3, 0.06, 60, dtype=F64), naca4(0.06, 0.3, 0.06, 40, dtype=F64)
    c = torch.cat([cambered_fine[:61], cambered_coarse[42::2]])  # upper: 60 panels, lower: 20
    batch = normalize(torch.stack([a, b, c]))
    assert len(set(batch[..., 0].argmin(1).tolist())) == 3  # the surfaces split at three indices
    stations = (0.0, 0.02, 0.25, 0.5, 0.99, 1.0)
    one = torch.stack([thickness_camber(x, stations) for x in batch])
    got = thickness_camber(batch[None].expand(2, -1, -1, -1), stations)
    assert got.shape == (2, 3, 12)
    torch.testing.assert_close(got, one.expand(2, -1, -1), rtol=0, atol=0)
    assert (one[:, 1:5] > 0).all()  # thickness inside the chord
    assert (one[[0, 2], 8:10] > 0.01).all() and one[1, 6:].abs().max() < 1e-3  # camber: cambered, symmetric


def test_naca4_thickness_is_laid_off_normal_to_the_mean_line():
    # Abbott & von Doenhoff: upper/lower = (x -/+ yt sin(th), yc +/- yt cos(th)), tan(th) = dyc/dx. Both surfaces
    # share the parameter x, so their midpoint is the mean line and half their difference is yt (-sin, cos).
    n, m, p = 200, 0.04, 0.4
    c = naca4_from_code("4412", n, dtype=F64)
    upper, lower = c[: n + 1].flip(0), c[n:]  # both from the leading edge to the trailing edge
    mid, half = 0.5 * (upper + lower), 0.5 * (upper - lower)
    x = mid[:, 0]
    yc = torch.where(x < p, m / p**2 * (2 * p * x - x**2), m / (1 - p) ** 2 * (1 - 2 * p + 2 * p * x - x**2))
    slope = torch.where(x < p, 2 * m / p**2 * (p - x), 2 * m / (1 - p) ** 2 * (p - x))
    torch.testing.assert_close(mid[:, 1], yc, atol=1e-12, rtol=0)
    torch.testing.assert_close(-half[:, 0], half[:, 1] * slope, atol=1e-12, rtol=0)


def test_repanelling_keeps_a_symmetric_aerofoil_symmetric():
    # the lower surface is resampled as the upper one is (the on-contour test above reads the upper only)
    r = repanel(naca4_from_code("0012", 25, dtype=F64), 40)
    torch.testing.assert_close(r[:, 1], -r.flip(0)[:, 1], atol=1e-12, rtol=0)
    torch.testing.assert_close(r[:, 0], r.flip(0)[:, 0], atol=1e-12, rtol=0)


def test_repanel_of_a_batch_is_each_contour_repanelled_alone_and_drops_repeated_points():
    a = naca4_from_code("4412", 30, dtype=F64)
    b = normalize(naca4_from_code("0015", 30, dtype=F64) @ torch.tensor([[1.0, 0.1], [-0.1, 1.0]], dtype=F64))
    # c: a's points with its leading edge and one upper point repeated (a repeat within 1e-9 counts as one),
    # less two lower points, so that its leading edge sits at another index
    c = torch.cat([a[:10], a[9:10] + 1e-10, a[10:31], a[30:31], a[31:40], a[42:]])
    batch = torch.stack([a, b, c])
    out = repanel(batch, 25)
    for i, contour in enumerate((a, b, c)):
        assert torch.equal(out[i], repanel(contour, 25))
    assert torch.equal(repanel(c, 25), repanel(torch.cat([a[:10], a[10:40], a[42:]]), 25))
    assert repanel(batch[:0], 25).shape == (0, 51, 2)
