import pytest
import torch
from hybridzoo.physics.conjugate_gradient import pcg


def _spd(n: int, seed: int, shift: float = 0.1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, dtype=torch.float64, generator=g)
    return m @ m.T + shift * torch.eye(n, dtype=torch.float64)


def test_generic_pcg_on_spd_matrix():
    a = _spd(6, 1, shift=6.0)
    b = torch.randn(1, 6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x, _, res = pcg(lambda z: a @ z, b, lambda r: r, tol=1e-12)
    torch.testing.assert_close(a @ x, b, atol=1e-10, rtol=0)


def test_the_exact_preconditioner_converges_in_one_iteration_and_none_does_not():
    a = _spd(12, 2)
    b = torch.randn(3, 12, 1, dtype=torch.float64)
    inv = torch.linalg.inv(a)
    x, it, res = pcg(lambda z: a @ z, b, lambda r: inv @ r, tol=1e-10)
    assert it == 1 and res <= 1e-10
    _, it_plain, _ = pcg(lambda z: a @ z, b, lambda r: r, tol=1e-10)
    assert it_plain > 5
    torch.testing.assert_close(a @ x, b, atol=1e-9, rtol=0)


def test_batch_elements_of_very_different_scales_each_reach_the_tolerance():
    a = _spd(8, 3)
    b = torch.randn(2, 8, 1, dtype=torch.float64)
    b[1] *= 1e-8  # a relative tolerance: the small system must not ride on the large one's residual
    x, _, _ = pcg(lambda z: a @ z, b, lambda r: r, tol=1e-9)
    rel = ((a @ x - b).flatten(-2).norm(dim=-1) / b.flatten(-2).norm(dim=-1))
    assert bool((rel <= 1e-9).all()), rel


def test_a_warm_start_at_the_solution_takes_no_iteration():
    a = _spd(6, 4)
    b = torch.randn(1, 6, 1, dtype=torch.float64)
    exact = torch.linalg.solve(a, b[0])[None]
    x, it, res = pcg(lambda z: a @ z, b, lambda r: r, x0=exact, tol=1e-8)
    assert it == 0 and res <= 1e-8 and torch.equal(x, exact)


def test_an_empty_batch_returns_an_empty_solution():
    x, it, res = pcg(lambda x: x, torch.zeros(0, 4, 4), lambda r: r)
    assert x.shape == (0, 4, 4) and it == 0 and res == 0.0


def test_tolerance_and_iteration_cap_are_checked():
    # NaN or a negative tol ran to max_iter; max_iter <= 0 returned zeros with residual 1
    a = torch.eye(4, dtype=torch.float64)[None] * 2.0
    b = torch.ones(1, 4, 1, dtype=torch.float64)
    apply_a = lambda x: a @ x  # noqa: E731
    for tol in (float("nan"), -1.0, 0.0, 1.0):
        with pytest.raises(ValueError, match="tol must be a relative residual in"):
            pcg(apply_a, b, lambda r: r, tol=tol)
    for max_iter, error in ((0, ValueError), (-5, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="max_iter"):
            pcg(apply_a, b, lambda r: r, max_iter=max_iter)
    x, _, res = pcg(apply_a, b, lambda r: r, tol=None)  # None: the dtype's default, as the solvers take it
    torch.testing.assert_close(x, b / 2)
    assert res < 1e-9
