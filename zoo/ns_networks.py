"""The correction CNN of solver-in-the-loop and the packing of staggered fields into one image.

A MAC grid keeps ``u``, ``v`` and ``p`` on three slightly different lattices (x-faces, y-faces, cell
centres). Interpolating them to one lattice would blur exactly the sub-cell detail a correction has
to restore, so the network sees them on a common canvas of ``(max rows, max cols)`` pixels, each field
zero-padded at its high end, and its output is cropped back to the face lattices. A fully
convolutional network then learns one local correction stencil that works at any grid size.
"""

from __future__ import annotations

import torch
from hybridzoo.physics.validation import check_positive_int
from torch import nn


def canvas_shape(u_shape: tuple[int, int], v_shape: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of the common canvas of ``u`` ``(rows, cols)`` and ``v`` ``(rows, cols)``."""
    return max(u_shape[0], v_shape[0]), max(u_shape[1], v_shape[1])


def to_canvas(field: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Zero-pad ``field (B, rows, cols)`` at its high ends to ``(B, *shape)``."""
    return nn.functional.pad(field, (0, shape[1] - field.shape[-1], 0, shape[0] - field.shape[-2]))


class CorrectionCNN(nn.Module):
    """A plain stack of ``depth`` convolutions mapping the solver state to a velocity correction.

    Input channels: ``u``, ``v``, ``p`` (on the canvas), the fluid mask and the Reynolds number
    (scaled, constant over the image): ``(B, 5, rows, cols)``. Output: ``(B, 2, rows, cols)``,
    the corrections of ``u`` and ``v`` in m/s. The last layer starts at zero, so an untrained
    network leaves the source solver unchanged and training starts from its trajectory.

    Args:
        width: channels of the hidden layers.
        depth: number of convolutions (>= 2).
        kernel: odd kernel size; the receptive field is ``depth * (kernel - 1) + 1`` cells.
    """

    in_channels = 5

    def __init__(self, width: int = 32, depth: int = 4, kernel: int = 5) -> None:
        super().__init__()
        for name, value in (("width", width), ("depth", depth), ("kernel", kernel)):
            check_positive_int(name, value)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd integer, got {kernel}")
        layers: list[nn.Module] = []
        channels = self.in_channels
        for _ in range(depth - 1):
            layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.GELU()]
            channels = width
        last = nn.Conv2d(channels, 2, kernel, padding=kernel // 2)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.layers = nn.Sequential(*layers)

    def forward(self, u: torch.Tensor, v: torch.Tensor, p: torch.Tensor, fluid: torch.Tensor,
                re_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrections ``(du, dv)`` with the shapes of ``u (B, *u_shape)`` and ``v (B, *v_shape)``.

        Args:
            u: x-face velocities (m/s).
            v: y-face velocities (m/s).
            p: cell pressures ``(B, ny, nx)``.
            fluid: ``(ny, nx)`` 1 in fluid cells, 0 in solid ones.
            re_feature: ``(B,)`` the scaled Reynolds number of each sample.
        """
        shape = canvas_shape(tuple(u.shape[-2:]), tuple(v.shape[-2:]))
        b = u.shape[0]
        planes = [to_canvas(u, shape), to_canvas(v, shape), to_canvas(p, shape),
                  to_canvas(fluid.expand(b, -1, -1), shape),
                  re_feature.reshape(b, 1, 1).expand(b, *shape)]
        out = self.layers(torch.stack(planes, dim=1))
        return out[:, 0, : u.shape[-2], : u.shape[-1]], out[:, 1, : v.shape[-2], : v.shape[-1]]


__all__ = ["CorrectionCNN", "canvas_shape", "to_canvas"]
