import math

import pytest
import torch
from hybridzoo.zoo.ode_block import ConvVectorField, ODEBlock
from torch import nn
from torch.func import functional_call


class DampedRotation(nn.Module):
    """dx/dt = A x with A = [[-a, w], [-w, -a]]; exact flow exp(-a t) R(w t). State (B, 2)."""

    def __init__(self, a: float = 0.5, w: float = 3.0):
        super().__init__()
        self.a, self.w = a, w
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))  # adjoint needs a parameter
        self.nfe = 0

    def forward(self, t, x):
        self.nfe += 1
        a, w = self.a, self.w
        return self.scale * torch.stack([-a * x[:, 0] + w * x[:, 1], -w * x[:, 0] - a * x[:, 1]], dim=1)

    def exact(self, x, t):
        c, s = math.cos(self.w * t), math.sin(self.w * t)
        return math.exp(-self.a * t) * torch.stack(
            [c * x[:, 0] + s * x[:, 1], -s * x[:, 0] + c * x[:, 1]], dim=1
        )


def _orders(solver, steps_list=(4, 8, 16, 32)):
    field = DampedRotation()
    x0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=torch.float64)
    exact = field.exact(x0, 1.0)
    errs = [(ODEBlock(field, solver=solver, steps=n)(x0) - exact).abs().max().item() for n in steps_list]
    return [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)], errs


def test_rk4_block_is_fourth_order_on_linear_ode():
    orders, errs = _orders("rk4")
    assert errs[-1] < 1e-5
    assert all(3.8 < p < 4.3 for p in orders), orders


def test_euler_block_is_first_order_and_torchdiffeq_rk4_fourth_order():
    orders, _ = _orders("euler", (16, 32, 64, 128))
    assert all(0.85 < p < 1.15 for p in orders), orders
    orders, _ = _orders("torchdiffeq-rk4")
    assert all(3.8 < p < 4.4 for p in orders), orders


def test_euler_block_equals_stack_of_weight_shared_residual_blocks():
    torch.manual_seed(0)
    field = ConvVectorField(8)
    x = torch.randn(3, 8, 5, 5)
    for steps in (1, 3):
        block = ODEBlock(field, solver="euler", steps=steps)
        h = 1.0 / steps
        expected = x
        for i in range(steps):  # x_{i+1} = x_i + h f(t_i, x_i): a plain residual block
            expected = expected + h * field(torch.tensor(i * h), expected)
        torch.testing.assert_close(block(x), expected, rtol=1e-6, atol=1e-6)
        assert block.nfe == steps


def test_rk4_block_nfe_and_shapes_dtype():
    field = ConvVectorField(4).double()
    block = ODEBlock(field, solver="rk4", steps=3)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    y = block(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert block.nfe == 12


def test_gradcheck_rk4_block_input_and_weights():
    torch.manual_seed(0)
    block = ODEBlock(ConvVectorField(2), solver="rk4", steps=2).double()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    w = block.field.conv1.conv.weight.detach().clone().requires_grad_(True)

    def run(x, w):
        return functional_call(block, {"field.conv1.conv.weight": w}, (x,))

    assert torch.autograd.gradcheck(run, (x, w), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("solver", ["dopri5", "torchdiffeq-rk4"])
def test_adjoint_gradient_matches_analytic(solver):
    # |x(1)|^2 = exp(-2 a s) |x0|^2 for dx/dt = s A x, so d/ds = -2 a exp(-2 a s) |x0|^2 at s = 1.
    field = DampedRotation(a=0.5, w=3.0)
    x0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=torch.float64)
    block = ODEBlock(field, solver=solver, steps=64, adjoint=True, rtol=1e-8, atol=1e-8)
    out = block(x0)
    forward_nfe = block.nfe
    out.square().sum().backward()
    expected = -2 * 0.5 * math.exp(-1.0) * x0.square().sum().item()
    assert field.scale.grad.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(out.detach(), field.exact(x0, 1.0), rtol=1e-6, atol=1e-6)
    assert forward_nfe > 0 and field.nfe > forward_nfe  # the backward solve also evaluates f


def test_bad_arguments_are_named():
    field = ConvVectorField(4)
    with pytest.raises(ValueError, match="solver"):
        ODEBlock(field, solver="rk5")
    with pytest.raises(ValueError, match="adjoint"):
        ODEBlock(field, solver="rk4", adjoint=True)
    with pytest.raises(TypeError, match="field"):
        ODEBlock(lambda t, x: x)
    with pytest.raises(ValueError, match="steps"):
        ODEBlock(field, steps=0)
    with pytest.raises(TypeError, match="x"):
        ODEBlock(field)([1.0])
    with pytest.raises(ValueError, match="channels"):
        ConvVectorField(0)


@pytest.mark.parametrize("solver", ["rk4", "euler", "torchdiffeq-rk4", "torchdiffeq-euler", "dopri5"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises_naming_x_with_every_solver(solver, bad):
    # before, our solvers named their internal "y0" and torchdiffeq's integrated NaN on silently
    x = torch.randn(2, 4, 3, 3)
    x[1, 2, 0, 1] = bad
    with pytest.raises(ValueError, match="^x contains NaN or infinite values"):
        ODEBlock(ConvVectorField(4), solver=solver)(x)


def test_adjoint_must_be_a_bool():
    with pytest.raises(TypeError, match="adjoint"):
        ODEBlock(ConvVectorField(4), solver="dopri5", adjoint="false")  # "false" is truthy
