"""NeuralFoil (Sharpe, pip ``neuralfoil``), the peer the residual aerofoil model is compared with."""

from __future__ import annotations

import numpy as np
import torch


def neuralfoil_cl(
    coords: torch.Tensor, alpha: torch.Tensor, re: torch.Tensor, model_size: str = "xlarge"
) -> torch.Tensor:
    """NeuralFoil's lift for rows ``coords (N, K, 2)``, ``alpha (N,)`` in radians and ``re (N,)``.

    Returns ``(N,)`` float64 on the device of ``coords``. Raises ``ImportError`` where NeuralFoil is not
    installed.

    Each distinct contour is normalised and fitted with NeuralFoil's CST (Kulfan) parameters once, as
    ``neuralfoil.get_aero_from_airfoil`` does, and then every row goes through NeuralFoil's networks in
    one vectorised call: the fastest way to use NeuralFoil on many rows that share a few aerofoils, and
    the same answers as one ``get_aero_from_coordinates`` call per aerofoil.
    """
    import aerosandbox as asb
    import neuralfoil

    device = coords.device
    if coords.shape[0] == 0:  # no rows: nothing for NeuralFoil to fit
        return torch.zeros(0, dtype=torch.float64, device=device)
    # NeuralFoil is numpy: everything is brought to the CPU first, so that the row indices below index
    # CPU tensors whatever device the inputs are on.
    coords, alpha, re = (t.detach().double().cpu() for t in (coords, alpha, re))
    uniq, inverse = torch.unique(coords.reshape(coords.shape[0], -1), dim=0, return_inverse=True)
    params, rotation, scale = [], [], []
    for contour in uniq.reshape(-1, coords.shape[1], 2).numpy():
        normal = asb.Airfoil(coordinates=contour).normalize(return_dict=True)
        kulfan = normal["airfoil"].to_kulfan_airfoil(n_weights_per_side=8, normalize_coordinates=False)
        params.append(kulfan.kulfan_parameters)
        rotation.append(normal["rotation_angle"])  # degrees
        scale.append(normal["scale_factor"])
    rows = inverse.numpy()
    # Per row: the weight arrays as (8, N), the scalar parameters as (N,), as NeuralFoil broadcasts them.
    per_row = {
        name: np.stack([np.asarray(p[name], dtype=float) for p in params])[rows].T for name in params[0]
    }
    res = neuralfoil.get_aero_from_kulfan_parameters(
        kulfan_parameters=per_row,
        alpha=torch.rad2deg(alpha).numpy() + np.asarray(rotation)[rows],
        Re=re.numpy() / np.asarray(scale)[rows],
        model_size=model_size,
    )
    return torch.as_tensor(np.asarray(res["CL"], dtype=float).reshape(-1)).to(device)
