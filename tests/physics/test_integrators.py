import math
import warnings

import pytest
import torch
from hybridzoo.physics import IntegrationError, euler_step, odeint, rk4_step


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
    with pytest.raises(ValueError, match="max_evals must be >= 1"):
        odeint(_oscillator, y0, torch.linspace(0, 1, 3), method="dopri5", max_evals=0)


class _Decay(torch.nn.Module):
    """dy/dt = -rate * y, exact solution y0 * exp(-rate * t)."""

    def __init__(self, rate):
        super().__init__()
        self.rate = torch.nn.Parameter(torch.tensor(rate, dtype=torch.float64))
        self.evals = 0

    def forward(self, t, y):
        self.evals += 1
        return -self.rate * y


def test_adaptive_method_stops_at_its_evaluation_budget():
    # a stiff decay: dopri5's stability bound dt < 3.3 / rate forces ~3 rate steps over t in [0, 1]
    y0, t = torch.ones(1, 1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    field = _Decay(1000.0)
    with pytest.raises(IntegrationError, match="exceeded max_evals=500 evaluations.*stiff"):
        odeint(field, y0, t, method="dopri5", max_evals=500)
    with warnings.catch_warnings():  # the message reads the time without torch's warning about a grad tensor
        warnings.simplefilter("error")
        with pytest.raises(IntegrationError, match="exceeded max_evals=500"):
            odeint(_Decay(1000.0), y0, t.clone().requires_grad_(), method="dopri5", max_evals=500)
    assert field.evals == 500  # the 501st evaluation raised before calling the field
    unlimited = _Decay(1000.0)
    y = odeint(unlimited, y0, t, method="dopri5", max_evals=None, rtol=1e-6, atol=1e-12)
    assert unlimited.evals > 1000
    assert abs(y[-1].item()) < 1e-6  # exp(-1000) to the tolerance: the budget, not the solver, stopped it


def test_finite_time_blow_up_is_an_integration_error():
    # y' = y^2 from y(0) = 1 is 1 / (1 - t): it leaves every bound at t = 1, before the grid's end at 2
    with pytest.raises(IntegrationError, match="step size underflowed"):
        odeint(lambda _t, y: y**2, torch.ones(1, 1, dtype=torch.float64),
               torch.tensor([0.0, 2.0], dtype=torch.float64), method="dopri5")


def test_budgeted_adjoint_still_differentiates_the_fields_parameters():
    y0, t = torch.ones(2, 1, dtype=torch.float64), torch.linspace(0, 1, 3, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        field = _Decay(0.5)
        odeint(field, y0, t, method="dopri5", adjoint=adjoint, rtol=1e-10, atol=1e-12)[-1].sum().backward()
        grads.append(field.rate.grad)
    exact = -2 * math.exp(-0.5)  # d/d(rate) of 2 exp(-rate t) at t = 1
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=0)
    assert abs(grads[1].item() - exact) < 1e-6


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_an_empty_batch_integrates_to_an_empty_trajectory(method):
    # dopri5's step-size control on no values used to read as an underflow ("the ODE blows up")
    y = odeint(lambda t, y: -y, torch.zeros(0, 2), torch.linspace(0, 1, 4), method=method)
    assert y.shape == (4, 0, 2)


@pytest.mark.parametrize("substeps", [1, 3])
def test_a_time_grid_that_requires_grad_integrates_as_a_plain_one(substeps):
    # the differentiable-time branch does its own step arithmetic: it must give the same trajectory
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    plain = odeint(_oscillator, y0, t, substeps=substeps)
    tracked = odeint(_oscillator, y0, t.clone().requires_grad_(), substeps=substeps)
    torch.testing.assert_close(tracked.detach(), plain, atol=1e-13, rtol=0)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_substeps_of_a_time_dependent_field_see_their_own_times(requires_grad):
    # y' = cos t from 0: y(2) = sin 2; RK4 with 8 substeps of 0.25 is within 1e-5 of it only if each substep
    # evaluates the field at its own time (at the interval's start time the answer would be 2 cos 0 = 2)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=requires_grad)
    y = odeint(lambda s, y: torch.cos(torch.as_tensor(s, dtype=y.dtype)) * torch.ones_like(y),
               torch.zeros(1, 1, dtype=torch.float64), t, substeps=8)
    assert float(y[-1]) == pytest.approx(math.sin(2.0), abs=1e-5)
