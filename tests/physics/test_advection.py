import torch
from hybridzoo.physics.advection import sample

F64 = torch.float64


def _grid(rows: int, cols: int, origin: tuple[float, float], h: float) -> tuple[torch.Tensor, torch.Tensor]:
    ys = origin[1] + h * torch.arange(rows, dtype=F64)
    xs = origin[0] + h * torch.arange(cols, dtype=F64)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x, y


def test_bilinear_sampling_is_exact_on_nodes_and_for_bilinear_fields():
    origin, h = (-0.3, 0.7), 0.25
    x, y = _grid(6, 9, origin, h)
    field = (1.5 + 2.0 * x - 0.5 * y + 0.75 * x * y)[None]  # bilinear: reproduced exactly between nodes too
    torch.testing.assert_close(sample(field, origin, h, x[None], y[None]), field)
    g = torch.Generator().manual_seed(0)
    px = origin[0] + 8 * h * torch.rand(1, 5, 7, generator=g, dtype=F64)
    py = origin[1] + 5 * h * torch.rand(1, 5, 7, generator=g, dtype=F64)
    torch.testing.assert_close(sample(field, origin, h, px, py), 1.5 + 2.0 * px - 0.5 * py + 0.75 * px * py)


def test_points_outside_take_the_border_value_and_nearest_mode_picks_a_node():
    origin, h = (0.0, 0.0), 1.0
    field = torch.arange(12, dtype=F64).reshape(1, 3, 4)
    px = torch.tensor([[[-5.0, 10.0, 1.4]]], dtype=F64)
    py = torch.tensor([[[1.0, 2.0, 0.6]]], dtype=F64)
    got = sample(field, origin, h, px, py, mode="nearest")
    torch.testing.assert_close(got, torch.tensor([[[4.0, 11.0, 5.0]]], dtype=F64))  # row 1 col 0, row 2 col 3, (1, 1)


def test_sampling_first_used_under_inference_mode_still_serves_autograd():
    origin, h = (0.1, 0.2), 0.5
    x, y = _grid(4, 5, origin, h)
    field = torch.randn(1, 4, 5)
    with torch.inference_mode():
        sample(field, origin, h, x[None].float() + 0.1, y[None].float())  # fills the grid constants' cache
    field.requires_grad_(True)
    px = (x[None].float() + 0.1).requires_grad_(True)
    sample(field, origin, h, px, y[None].float()).sum().backward()
    assert field.grad is not None and px.grad is not None and bool(torch.isfinite(px.grad).all())
