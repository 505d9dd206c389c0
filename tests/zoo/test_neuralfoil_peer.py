"""The NeuralFoil peer: one vectorised call over rows gives NeuralFoil's own per-aerofoil answers."""

import numpy as np
import pytest
import torch
from hybridzoo.physics.airfoil import naca4_from_code
from hybridzoo.zoo.neuralfoil_peer import neuralfoil_cl

neuralfoil = pytest.importorskip("neuralfoil", reason="NeuralFoil is an optional peer (pip install neuralfoil)")


def test_rows_match_neuralfoil_per_aerofoil_calls():
    foils = [naca4_from_code(code, 60).double() for code in ("2412", "0012", "4415")]
    which = torch.tensor([0, 1, 2, 0, 2, 1, 0])  # rows interleave the aerofoils
    alpha = torch.deg2rad(torch.tensor([-4.0, 0.0, 2.0, 5.0, 8.0, 6.0, 1.5], dtype=torch.float64))
    re = torch.tensor([2e5, 1e6, 5e6, 1e6, 3e5, 2e6, 1e7], dtype=torch.float64)
    coords = torch.stack(foils)[which]
    got = neuralfoil_cl(coords, alpha, re)
    assert got.shape == (7,) and got.dtype == torch.float64
    for i in range(7):
        ref = neuralfoil.get_aero_from_coordinates(
            coords[i].numpy(), alpha=float(np.rad2deg(alpha[i])), Re=float(re[i]), model_size="xlarge"
        )
        assert got[i].item() == pytest.approx(float(np.asarray(ref["CL"]).reshape(-1)[0]), abs=1e-9)
    # lift grows with the angle on one aerofoil, and a symmetric section at 0° has almost none
    assert got[3] > got[0] and abs(got[1].item()) < 0.02


def test_no_rows_give_no_lift():
    cl = neuralfoil_cl(torch.zeros(0, 161, 2, dtype=torch.float64), torch.zeros(0), torch.zeros(0))
    assert cl.shape == (0,) and cl.dtype == torch.float64
