import math

import pytest
import torch
from hybridzoo.physics.phantoms import (
    SHEPP_LOGAN_ELLIPSES,
    random_ellipses,
    render_ellipses,
    shepp_logan,
)


def test_shepp_logan_range_and_area():
    x = shepp_logan(128, supersample=4, dtype=torch.float64)
    assert x.shape == (128, 128)
    assert float(x.min()) >= -1e-12 and float(x.max()) == pytest.approx(1.0)
    # The image's mean over [-1, 1]^2 is sum(value * pi a b) / 4, exactly, for ellipses inside the square.
    expected = sum(v * math.pi * a * b for v, a, b, *_ in SHEPP_LOGAN_ELLIPSES) / 4
    assert float(x.mean()) == pytest.approx(expected, rel=5e-3)


def test_orientation_top_is_positive_y():
    # A small disc centred at y = +0.5 must land in the top half (row 0 is the top).
    e = torch.tensor([[1.0, 0.1, 0.1, 0.0, 0.5, 0.0]])
    img = render_ellipses(e, 32)
    rows = torch.nonzero(img)[:, 0]
    assert rows.float().mean() < 16


def test_rotation_of_ellipse():
    # An ellipse long along x rotated by 90 degrees is the one long along y.
    a = torch.tensor([[1.0, 0.6, 0.2, 0.0, 0.0, math.pi / 2]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.2, 0.6, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(render_ellipses(a, 40), render_ellipses(b, 40))


def test_random_ellipses_seeded_and_poisson_count():
    e1 = random_ellipses(torch.Generator().manual_seed(3))
    e2 = random_ellipses(torch.Generator().manual_seed(3))
    e3 = random_ellipses(torch.Generator().manual_seed(4))
    assert torch.equal(e1, e2) and not torch.equal(e1[: len(e3)], e3[: len(e1)])
    gen = torch.Generator().manual_seed(0)
    draws = [random_ellipses(gen, mean_count=20).shape[0] for _ in range(300)]
    counts = torch.tensor(draws, dtype=torch.float64)
    assert float(counts.mean()) == pytest.approx(20, abs=1.0)  # Poisson: sd of the mean ~0.26
    assert float(counts.var()) == pytest.approx(20, rel=0.35)


def test_padding_rows_render_zero():
    gen = torch.Generator().manual_seed(1)
    e = random_ellipses(gen, mean_count=3, max_count=40)
    assert e.shape == (40, 6)
    nonpad = e[e[:, 0] != 0]
    assert torch.equal(render_ellipses(e, 24), render_ellipses(nonpad, 24))


def test_batched_render():
    gen = torch.Generator().manual_seed(2)
    e = torch.stack([random_ellipses(gen, 10, max_count=15) for _ in range(3)])
    imgs = render_ellipses(e, 16)
    assert imgs.shape == (3, 16, 16)
    assert torch.equal(imgs[1], render_ellipses(e[1], 16))


def test_bad_inputs():
    with pytest.raises(ValueError, match="ellipses"):
        render_ellipses(torch.zeros(3, 5), 8)
    with pytest.raises(ValueError, match="semi-axes"):
        render_ellipses(torch.tensor([[1.0, 0.0, 0.1, 0, 0, 0]]), 8)
    with pytest.raises(TypeError, match="generator"):
        random_ellipses(0)
    with pytest.raises(ValueError, match="image_size"):
        shepp_logan(0)


def test_no_ellipses_render_as_zeros():
    # A Poisson count can be 0; the image is then the empty sum, zeros (it used to fail in reshape).
    for dtype in (torch.float32, torch.float64):
        img = render_ellipses(torch.zeros(0, 6, dtype=dtype), 8, supersample=2)
        assert img.dtype == dtype and torch.equal(img, torch.zeros(8, 8, dtype=dtype))
    assert torch.equal(render_ellipses(torch.zeros(3, 0, 6), 5), torch.zeros(3, 5, 5))
    assert render_ellipses(torch.zeros(0, 4, 6), 5).shape == (0, 5, 5)
    gen = torch.Generator().manual_seed(0)
    draws = [random_ellipses(gen, mean_count=0.05) for _ in range(40)]
    empty = [e for e in draws if e.shape[0] == 0]
    assert empty and all(torch.equal(render_ellipses(e, 6), torch.zeros(6, 6)) for e in empty)


def test_non_empty_render_is_unchanged_by_the_empty_case():
    # A disc of radius 0.5 at the origin on a 4x4 grid holds exactly the four centre pixel centres (+-0.25),
    # and a batch of any leading shape renders each phantom bit for bit as on its own.
    disc = torch.tensor([[1.0, 0.5, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
    img = render_ellipses(disc, 4)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[1:3, 1:3] = 1.0
    assert torch.equal(img, expected)
    gen = torch.Generator().manual_seed(5)
    e = torch.stack([random_ellipses(gen, 6, max_count=12) for _ in range(4)]).reshape(2, 2, 12, 6)
    imgs = render_ellipses(e, 10, supersample=3)
    assert all(torch.equal(imgs[i, j], render_ellipses(e[i, j], 10, supersample=3)) for i in range(2) for j in range(2))
