"""Connected fluid regions of a cell grid, joined through its open faces.

A pressure Poisson operator with Neumann walls determines the pressure only up to a constant on each
fluid region that no outflow (Dirichlet) face touches: its null space has one constant per such
region. A fluid pocket enclosed by an obstacle, or a periodic channel cut in two by walls, is a
region of its own; :class:`~hybridzoo.physics.pressure.PoissonOperator` removes the mean of each one.
"""

from __future__ import annotations

import numpy as np
import torch


def fluid_regions(fluid: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor) -> torch.Tensor:
    """Label each cell of a ``(ny, nx)`` grid with its connected fluid region; ``-1`` on solid cells.

    Args:
        fluid: ``(ny, nx)``, non-zero on fluid cells.
        wx: x-face weights, non-zero on open faces: ``(ny, nx)`` on a periodic x-axis (face ``i`` between
            cells ``i - 1`` and ``i``, wrapping around) or ``(ny, nx + 1)`` otherwise (faces ``0`` and ``nx``
            on the boundary).
        wy: y-face weights, alike: ``(ny, nx)`` periodic or ``(ny + 1, nx)``.

    Returns:
        int64 labels ``(ny, nx)``: regions are numbered ``0, 1, …`` in the row-major order of their first cell.
    """
    ny, nx = fluid.shape
    idx = np.arange(ny * nx).reshape(ny, nx)
    a, b = [], []
    for w, axis, n in ((wx.cpu().numpy(), 1, nx), (wy.cpu().numpy(), 0, ny)):
        if w.shape[axis] == n:  # periodic: face i joins cells i - 1 (wrapping) and i
            lo, hi, open_ = np.roll(idx, 1, axis=axis), idx, w != 0
        else:  # walled: only the interior faces 1..n-1 join two cells
            inner = w.take(np.arange(1, n), axis=axis) != 0
            lo, hi, open_ = idx.take(np.arange(n - 1), axis=axis), idx.take(np.arange(1, n), axis=axis), inner
        a.append(lo[open_])
        b.append(hi[open_])
    a, b = np.concatenate(a), np.concatenate(b)
    # Min-label propagation with pointer jumping: every label is the index of a cell of the same region, so
    # lab[lab] is too, and the labels settle on each region's smallest cell index.
    lab = np.arange(ny * nx)
    while True:
        low = np.minimum(lab[a], lab[b])
        new = lab.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        while not np.array_equal(new, new[new]):
            new = new[new]
        if np.array_equal(new, lab):
            break
        lab = new
    solid = (fluid == 0).cpu().numpy().reshape(-1)
    _, labels = np.unique(lab[~solid], return_inverse=True)
    out = np.full(ny * nx, -1, dtype=np.int64)
    out[~solid] = labels  # np.unique sorts the roots, which are each region's first cell in row-major order
    return torch.from_numpy(out.reshape(ny, nx))
