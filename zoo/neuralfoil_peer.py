"""NeuralFoil (Sharpe, pip ``neuralfoil``), the peer the residual aerofoil model is compared with."""

from __future__ import annotations

import torch


def neuralfoil_cl(
    coords: torch.Tensor, alpha: torch.Tensor, re: torch.Tensor, model_size: str = "xlarge"
) -> torch.Tensor:
    """NeuralFoil's lift for rows ``coords (N, K, 2)``, ``alpha (N,)`` in radians and ``re (N,)``.

    Returns ``(N,)`` float64 on the device of ``coords``. Raises ``ImportError`` where NeuralFoil is not
    installed.

    Rows sharing an aerofoil are evaluated in one vectorised call (NeuralFoil fits its own CST
    parameters to each contour first).
    """
    import neuralfoil

    device = coords.device
    # NeuralFoil is numpy: everything is brought to the CPU first, so that the row indices below index
    # CPU tensors whatever device the inputs are on.
    coords, alpha, re = (t.detach().double().cpu() for t in (coords, alpha, re))
    out = torch.empty(coords.shape[0], dtype=torch.float64)
    key = coords.reshape(coords.shape[0], -1)
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
    for u in range(uniq.shape[0]):
        rows = (inverse == u).nonzero().squeeze(-1)
        res = neuralfoil.get_aero_from_coordinates(
            coords[rows[0]].numpy(),
            alpha=torch.rad2deg(alpha[rows]).numpy(),
            Re=re[rows].numpy(),
            model_size=model_size,
        )
        out[rows] = torch.as_tensor(res["CL"], dtype=torch.float64).reshape(-1)
    return out.to(device)
