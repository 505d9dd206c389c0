import pytest
import torch
from hybridzoo.physics import (
    LotkaVolterraParams,
    lotka_volterra_conserved,
    lotka_volterra_rhs,
    simulate_lotka_volterra,
)


def test_conserved_quantity_along_orbits():
    p = LotkaVolterraParams()
    y0 = torch.tensor([[10.0, 10.0], [3.0, 5.0], [6.0, 2.0]], dtype=torch.float64)
    t = torch.linspace(0, 30, 301, dtype=torch.float64)
    traj = simulate_lotka_volterra(y0, t, p, substeps=20)
    v = lotka_volterra_conserved(traj, p)
    drift = (v - v[:, :1]).abs().max()
    assert drift < 1e-6, drift
    # the orbit is closed: after one period the state returns (checked through V and positivity)
    assert (traj > 0).all()


def test_equilibrium_is_fixed_point():
    p = LotkaVolterraParams(alpha=1.3, beta=0.9, gamma=0.8, delta=1.8)
    eq = torch.tensor(p.equilibrium, dtype=torch.float64)
    torch.testing.assert_close(lotka_volterra_rhs(eq, p), torch.zeros(2, dtype=torch.float64))
    traj = simulate_lotka_volterra(eq[None], torch.linspace(0, 5, 11, dtype=torch.float64), p)
    torch.testing.assert_close(traj[0], eq.expand(11, 2))


def test_small_oscillation_period_matches_linearisation():
    # near the equilibrium the period is 2*pi/sqrt(alpha*delta)
    p = LotkaVolterraParams()
    x_eq, y_eq = p.equilibrium
    y0 = torch.tensor([[x_eq * 1.01, y_eq]], dtype=torch.float64)
    t = torch.linspace(0, 25, 2501, dtype=torch.float64)
    x = simulate_lotka_volterra(y0, t, p, substeps=4)[0, :, 0]
    peaks = [i for i in range(1, 2500) if x[i] > x[i - 1] and x[i] >= x[i + 1]]
    period = float(t[peaks[1]] - t[peaks[0]])
    expected = 2 * torch.pi / (p.alpha * p.delta) ** 0.5
    assert abs(period - expected) / expected < 0.01


def test_bad_input():
    t = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="y0 must be strictly positive"):
        simulate_lotka_volterra(torch.tensor([[-1.0, 2.0]]), t)
    with pytest.raises(ValueError, match="y0 must have last dimension 2"):
        simulate_lotka_volterra(torch.ones(2, 3), t)
    with pytest.raises(ValueError, match="y0 contains NaN"):
        simulate_lotka_volterra(torch.tensor([[float("nan"), 2.0]]), t)
    with pytest.raises(ValueError, match="beta must be positive"):
        LotkaVolterraParams(beta=-0.4)
    with pytest.raises(TypeError, match="y0 must be a torch.Tensor"):
        simulate_lotka_volterra([[1.0, 2.0]], t)
