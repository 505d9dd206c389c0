"""Unrolled CT reconstruction networks: learned primal-dual and learned gradient descent.

Both run the ray transform ``F`` and its adjoint inside every iteration, normalised by ``||F||`` so the
networks see order-one quantities whatever the geometry (as Adler's reference code does).

Shapes: sinograms ``(B, 1, num_angles, num_detectors)`` in line-integral units; images ``(B, 1, n, n)``.
"""

from __future__ import annotations

import torch
from hybridzoo.physics.reconstruction import check_filter, fbp, tv_gradient
from hybridzoo.physics.tomography import RayTransform
from hybridzoo.physics.validation import check_positive_int, check_positive_number
from torch import nn


def conv_block(in_channels: int, out_channels: int, width: int) -> nn.Sequential:
    """Build the paper's update network: three 3x3 convolutions, ``width`` channels, PReLU between them."""
    block = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.PReLU(width),
        nn.Conv2d(width, width, 3, padding=1),
        nn.PReLU(width),
        nn.Conv2d(width, out_channels, 3, padding=1),
    )
    # Small (not zero) last layer: updates start near zero, which keeps the unrolled iterations stable,
    # while every block still gets a gradient at the first step (all-zero blocks would block each other).
    with torch.no_grad():
        block[-1].weight.mul_(0.1)
        block[-1].bias.zero_()
    return block


def _check_op(op: object) -> RayTransform:
    if not isinstance(op, RayTransform):
        raise TypeError(f"op must be a RayTransform, got {type(op).__name__}")
    return op


def check_n_primal(n_primal: object) -> int:
    """Check learned primal-dual's primal memory: an int ``>= 2`` (channel 0 is the output, 1 feeds ``F``)."""
    check_positive_int("n_primal", n_primal)
    if n_primal < 2:  # type: ignore[operator]
        raise ValueError(
            f"n_primal must be >= 2 (channel 0 is the reconstruction, channel 1 is projected), got {n_primal}"
        )
    return n_primal  # type: ignore[return-value]


def _check_sinogram(op: RayTransform, sinogram: object, net: nn.Module) -> torch.Tensor:
    """``sinogram`` if it is a finite ``(B, 1, A, D)`` tensor of ``op``'s geometry in ``net``'s dtype."""
    if not isinstance(sinogram, torch.Tensor):
        raise TypeError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
    expected = op.geometry.sinogram_shape
    if sinogram.ndim != 4 or sinogram.shape[1] != 1 or tuple(sinogram.shape[-2:]) != expected:
        want = f"(B, 1, {expected[0]}, {expected[1]})"
        raise ValueError(f"sinogram must have shape {want}, got {tuple(sinogram.shape)}")
    dtype = next(net.parameters()).dtype
    if sinogram.dtype != dtype:  # a convolution would fail deep inside with "Input type ... and bias type ..."
        raise TypeError(f"sinogram has dtype {sinogram.dtype} but the network's weights are {dtype}: "
                        f"convert one of them (e.g. sinogram.to({dtype}))")
    if not bool(torch.isfinite(sinogram).all()):
        raise ValueError("sinogram contains NaN or infinite values")
    return sinogram


class LearnedPrimalDual(nn.Module):
    """Learned primal-dual reconstruction (Adler & Öktem, IEEE TMI 2018, Algorithm 3).

    ``h_{k+1} = h_k + Gamma_k(h_k, F f_k^(1), g)``, ``f_{k+1} = f_k + Lambda_k(f_k, F* h_{k+1}^(1))``
    with primal memory ``f`` (``n_primal`` channels) and dual memory ``h`` (``n_dual``); the reconstruction
    is ``f^(0)`` after ``n_iter`` iterations. Separate weights per iteration. ``h`` starts at zero; ``f``
    at zero as in the paper (``init="zero"``) or with the FBP in every primal channel (``init="fbp"``),
    which trains far faster from scratch (64 steps on 16^2 ellipses: FBP-level instead of below it).

    Args:
        op: the ray transform.
        n_iter: unrolled iterations (10 in the paper).
        n_primal, n_dual: memory channels (5 in the paper); ``n_primal >= 2`` since the dual update reads
            the primal channel 1 (``f^(1)``) and the output is channel 0.
        width: channels of the hidden layers (32 in the paper).
        init: starting primal iterate, ``"zero"`` (paper) or ``"fbp"``.
        fbp_filter: filter of the FBP start.
    """

    def __init__(
        self, op: RayTransform, n_iter: int = 10, n_primal: int = 5, n_dual: int = 5, width: int = 32,
        init: str = "zero", fbp_filter: str = "ramp",
    ):
        super().__init__()
        self.op = _check_op(op)
        if init not in ("zero", "fbp"):
            raise ValueError(f"init must be 'zero' or 'fbp', got {init!r}")
        check_n_primal(n_primal)
        check_positive_int("n_dual", n_dual)
        check_positive_int("n_iter", n_iter)  # 0 iterations returned zeros (init "zero") without a word
        check_positive_int("width", width)
        check_filter("fbp_filter", fbp_filter)
        self.init, self.fbp_filter = init, fbp_filter
        self.n_primal, self.n_dual = n_primal, n_dual
        self.dual = nn.ModuleList(conv_block(n_dual + 2, n_dual, width) for _ in range(n_iter))
        self.primal = nn.ModuleList(conv_block(n_primal + 1, n_primal, width) for _ in range(n_iter))

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(B, 1, n, n)`` from ``(B, 1, num_angles, num_detectors)``."""
        sinogram = _check_sinogram(self.op, sinogram, self)
        norm = self.op.operator_norm()
        g = sinogram / norm
        b = g.shape[0]
        if self.init == "fbp":
            f = fbp(self.op, sinogram, self.fbp_filter).expand(-1, self.n_primal, -1, -1).contiguous()  # type: ignore[arg-type]
        else:
            f = g.new_zeros((b, self.n_primal, *self.op.geometry.image_shape))
        h = g.new_zeros((b, self.n_dual, *self.op.geometry.sinogram_shape))
        for dual, primal in zip(self.dual, self.primal):
            h = h + dual(torch.cat([h, self.op(f[:, 1:2]) / norm, g], dim=1))
            f = f + primal(torch.cat([f, self.op.adjoint(h[:, :1]) / norm], dim=1))
        return f[:, :1]


class LGDPhysics(nn.Module):
    """The learnable physical parameter of learned gradient descent: the TV weight ``lambda > 0``."""

    def __init__(self, lambda_init: float = 1e-2) -> None:
        super().__init__()
        self.log_lambda = nn.Parameter(torch.tensor(float(lambda_init)).log())

    @property
    def lam(self) -> torch.Tensor:
        """``lambda = exp(log_lambda)``."""
        return self.log_lambda.exp()


class LearnedGradientDescent(nn.Module):
    """Learned gradient descent (Adler & Öktem, Inverse Problems 2017), the lectures' hybrid.

    For ``L(x) = 1/2 ||F x - y||^2 / ||F||^2 + lambda TV_eps(x)`` it iterates
    ``x <- x - NN_k(x, dL_data/dx, lambda dTV/dx, s)`` with memory ``s`` (``n_memory`` channels), from the
    FBP. The learnable ``lambda`` is passed to :meth:`forward` (it lives in an :class:`LGDPhysics` held by
    the LightningModule, apart from the network weights, so either can be frozen).

    Args:
        op: the ray transform.
        n_iter: unrolled iterations.
        n_memory: memory channels.
        width: hidden channels.
        tv_eps: smoothing of the TV gradient, image units, ``> 0``.
        fbp_filter: filter of the starting FBP.
    """

    def __init__(
        self, op: RayTransform, n_iter: int = 10, n_memory: int = 5, width: int = 32,
        tv_eps: float = 1e-2, fbp_filter: str = "hann",
    ):
        super().__init__()
        self.op = _check_op(op)
        tv_eps = check_positive_number("tv_eps", tv_eps)
        check_positive_int("n_iter", n_iter)  # 0 iterations returned the FBP without a word
        check_positive_int("n_memory", n_memory)
        check_positive_int("width", width)
        check_filter("fbp_filter", fbp_filter)
        self.n_memory, self.tv_eps, self.fbp_filter = n_memory, tv_eps, fbp_filter
        self.steps = nn.ModuleList(conv_block(n_memory + 3, n_memory + 1, width) for _ in range(n_iter))

    def forward(self, sinogram: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        """Reconstruct ``(B, 1, n, n)`` from ``(B, 1, num_angles, num_detectors)`` with TV weight ``lam``."""
        sinogram = _check_sinogram(self.op, sinogram, self)
        norm = self.op.operator_norm()
        x = fbp(self.op, sinogram, self.fbp_filter)  # type: ignore[arg-type]
        s = x.new_zeros((x.shape[0], self.n_memory, *x.shape[-2:]))
        for step in self.steps:
            data_grad = self.op.adjoint(self.op(x) / norm - sinogram / norm) / norm
            reg_grad = lam * tv_gradient(x[:, 0], self.tv_eps)[:, None]
            out = step(torch.cat([x, data_grad, reg_grad, s], dim=1))
            x = x - out[:, :1]
            s = s + out[:, 1:]
        return x
