import math

import torch
from hybridzoo.physics.advection import departure_points, maccormack, sample, semi_lagrangian

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


def _periodic_channel(n: int = 32, rows: int = 4, h: float = 1.0):
    """A periodic strip of ``rows x n`` nodes, its padding with 2 ghost layers a side, and its node coordinates."""
    ghosts = 2

    def pad(q: torch.Tensor) -> torch.Tensor:
        q = torch.cat([q[..., -ghosts:], q, q[..., :ghosts]], -1)
        return torch.cat([q[..., -ghosts:, :], q, q[..., :ghosts, :]], -2)

    ys, xs = torch.meshgrid(torch.arange(rows, dtype=F64) * h, torch.arange(n, dtype=F64) * h, indexing="ij")
    return pad, (-ghosts * h, -ghosts * h), h, (xs[None], ys[None])


def test_maccormack_makes_no_new_extrema_on_a_top_hat():
    # The limiter's promise; without it the corrected values over- and undershoot at the jumps.
    pad, origin, h, (x, y) = _periodic_channel()
    q = ((x > 8) & (x < 16)).to(F64)
    speed = 0.37  # cells per step: never a whole number of cells, so every step interpolates

    def velocity(px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full_like(px, speed), torch.zeros_like(py)

    first_order = q
    for _ in range(40):
        q = maccormack(q, pad, origin, h, velocity, (x, y), velocity(x, y), 1.0)
        first_order = semi_lagrangian(first_order, pad, origin, h, velocity, (x, y), velocity(x, y), 1.0)
    assert float(q.max()) <= 1.0 + 1e-12 and float(q.min()) >= -1e-12
    # and the limiter does not make it first order: sharper than the semi-Lagrangian scheme's
    assert float((q - first_order).abs().sum()) > 0.1 and float(q.max()) > float(first_order.max()) + 0.05


def test_the_back_trace_is_second_order_in_a_solid_body_rotation():
    # Departure points of a rotation at unit angular speed are exact rotations by -dt: the RK2 trace's local
    # error is O(dt^3), halving dt divides it by 8 (a first-order trace: by 4).
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 5, 5, generator=g, dtype=F64) for _ in range(2))

    def rotation(px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return -py, px

    errors = []
    for dt in (0.1, 0.05):
        xd, yd = departure_points(rotation, x, y, dt, rotation(x, y))
        ex, ey = x * math.cos(dt) + y * math.sin(dt), -x * math.sin(dt) + y * math.cos(dt)
        errors.append(float(torch.hypot(xd - ex, yd - ey).max()))
    assert math.log2(errors[0] / errors[1]) > 2.8, errors
