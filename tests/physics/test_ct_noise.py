import pytest
import torch
from hybridzoo.physics.ct_noise import add_gaussian_noise, add_poisson_noise


def test_gaussian_level_and_seed():
    y = torch.full((4, 50, 80), 2.0)
    a = add_gaussian_noise(y, 0.05, torch.Generator().manual_seed(0))
    b = add_gaussian_noise(y, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert float((a - y).std()) == pytest.approx(0.1, rel=0.03)  # 5 % of mean |y| = 2
    assert float((a - y).mean()) == pytest.approx(0.0, abs=3e-3)


def test_poisson_mean_and_variance():
    p = torch.full((100, 100), 50.0, dtype=torch.float64)
    i0, mu = 1e4, 0.02  # optical depth 1
    noisy = add_poisson_noise(p, i0, mu, torch.Generator().manual_seed(0))
    assert float(noisy.mean()) == pytest.approx(50.0, abs=0.1)
    expected_var = torch.exp(torch.tensor(1.0)) / (i0 * mu**2)  # delta method
    assert float(noisy.var()) == pytest.approx(float(expected_var), rel=0.05)


def test_errors():
    with pytest.raises(ValueError, match="relative_level"):
        add_gaussian_noise(torch.zeros(3, 3), -0.1)
    with pytest.raises(ValueError, match="photons_per_ray"):
        add_poisson_noise(torch.zeros(3, 3), 0.0)
    with pytest.raises(TypeError, match="generator"):
        add_gaussian_noise(torch.zeros(3, 3), 0.1, generator=3)
    with pytest.raises(ValueError, match="sinogram"):
        add_gaussian_noise(torch.zeros(3), 0.1)
