import math

import pytest
import torch
from hybridzoo.physics import euler_step, odeint, rk4_step


def _oscillator(t, y):
    # y'' = -y as a first-order system; exact solution (cos t, -sin t) from (1, 0)
    return torch.stack((y[..., 1], -y[..., 0]), dim=-1)


def _final_error(method, n_steps):
    t = torch.linspace(0.0, 2.0, n_steps + 1, dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    y = odeint(_oscillator, y0, t, method=method)[-1, 0]
    exact = torch.tensor([math.cos(2.0), -math.sin(2.0)], dtype=torch.float64)
    return (y - exact).norm().item()


@pytest.mark.parametrize(("method", "order"), [("rk4", 4), ("euler", 1)])
def test_convergence_order(method, order):
    errors = [_final_error(method, n) for n in (20, 40, 80)]
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(o - order) < 0.15 for o in observed), observed


def test_substeps_equal_finer_grid():
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    coarse = torch.linspace(0, 1, 5, dtype=torch.float64)
    fine = torch.linspace(0, 1, 17, dtype=torch.float64)
    a = odeint(_oscillator, y0, coarse, substeps=4)
    b = odeint(_oscillator, y0, fine)[::4]
    torch.testing.assert_close(a, b)


def test_batched_equals_single_and_shape():
    t = torch.linspace(0, 1, 11)
    y0 = torch.randn(5, 2)
    batched = odeint(_oscillator, y0, t)
    assert batched.shape == (11, 5, 2)
    for i in range(5):
        torch.testing.assert_close(batched[:, i], odeint(_oscillator, y0[i : i + 1], t)[:, 0])


def test_matches_torchdiffeq_dopri5():
    t = torch.linspace(0, 3, 31, dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    ours = odeint(_oscillator, y0, t, method="rk4", substeps=10)
    adaptive = odeint(_oscillator, y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours, adaptive, atol=1e-8, rtol=0)


def test_gradcheck_through_rk4():
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0, 1, 6, dtype=torch.float64)

    def run(a, y0):
        return odeint(lambda _t, y: -a * y + torch.sin(y), y0, t, substeps=2)

    assert torch.autograd.gradcheck(run, (a, y0))


def test_euler_step_is_a_residual_update():
    y = torch.randn(3, 4)
    f = lambda t, y: torch.tanh(y)  # noqa: E731
    torch.testing.assert_close(euler_step(f, 0.0, y, 0.1), y + 0.1 * torch.tanh(y))


def test_rk4_exact_for_cubic_in_time():
    # RK4 integrates y' = t^3 exactly (Simpson's rule)
    y = rk4_step(lambda t, y: t**3 * torch.ones_like(y), torch.tensor(0.0), torch.zeros(1), 2.0)
    torch.testing.assert_close(y, torch.tensor([4.0]))


def test_bad_input():
    y0 = torch.ones(1, 2)
    with pytest.raises(ValueError, match="t must be strictly increasing"):
        odeint(_oscillator, y0, torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="t must hold at least 2"):
        odeint(_oscillator, y0, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="y0 contains NaN"):
        odeint(_oscillator, torch.tensor([[float("nan"), 1.0]]), torch.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="adjoint=True needs a torchdiffeq method"):
        odeint(_oscillator, y0, torch.linspace(0, 1, 3), adjoint=True)
    with pytest.raises(ValueError, match="method must be one of"):
        odeint(_oscillator, y0, torch.linspace(0, 1, 3), method="nonsense")
    with pytest.raises(ValueError, match="substeps must be >= 1"):
        odeint(_oscillator, y0, torch.linspace(0, 1, 3), substeps=0)
