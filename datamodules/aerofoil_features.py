"""Network inputs of the residual aerofoil model: shape, flow condition and the physics' own outputs.

The same functions serve the data set (all rows at once) and :meth:`ResidualAerofoil.predict_cl` (raw
aerofoils), so that a trained model sees inputs computed the same way: :func:`stored_contours` prepares
raw contours as the data build stores them (normalised, re-panelled to the data's ``n_per_side``, checked,
float32), :func:`panel_contours` re-panels stored contours to the panel method's ``n_panels_per_side``, and
:func:`aerofoil_inputs` computes the columns below. The boundary-layer columns depend on the panels: a
raw contour re-panelled straight to ``n_panels_per_side`` gives other inputs than the same aerofoil had in
training.

Columns of ``x``:

- ``0:13`` CST weights of the shape (6 upper, 6 lower) and the trailing-edge thickness;
- ``13`` α in radians, ``14`` log10 Re;
- ``15:26`` the integral boundary layer on the panel method's surface speed
  (:meth:`hybridzoo.physics.aerofoil_boundary_layer.AerofoilLayer.features`): per surface log10 θ_TE, H_TE and
  the chordwise positions of transition, laminar and turbulent separation, then log10 of the
  Squire-Young drag.

The first 15 columns describe the problem; the last 11 are physics output. The NN-only baseline sees
only the problem, the hybrids see both (and ``Cl_panel``, returned separately).
"""

from __future__ import annotations

import torch
from hybridzoo.datamodules.aerofoil_build import prepare_shapes
from hybridzoo.physics.aerofoil_boundary_layer import N_FEATURES as N_BOUNDARY_LAYER
from hybridzoo.physics.aerofoil_boundary_layer import aerofoil_boundary_layer
from hybridzoo.physics.airfoil import (  # noqa: F401 (MIN_PANELS_PER_SIDE: imported from here before)
    MIN_PANELS_PER_SIDE,
    check_panels_per_side,
    cst_fit,
    repanel,
)
from hybridzoo.physics.panel import hess_smith
from hybridzoo.physics.validation import check_tensor

CST_ORDER = 5
N_CST = 2 * (CST_ORDER + 1) + 1
ALPHA, LOG_RE = N_CST, N_CST + 1
#: Columns that describe the problem (shape, α, Re): all that the NN-only baseline sees.
N_PROBLEM = N_CST + 2
N_FEATURES = N_PROBLEM + N_BOUNDARY_LAYER


def stored_contours(coords: torch.Tensor, n_per_side: int) -> torch.Tensor:
    """Raw contours ``(B, K, 2)`` as the data build stores them: ``(B, 2 n_per_side + 1, 2)`` float32.

    Each is normalised (leading edge at (0, 0), trailing edge at (1, 0)), re-panelled to ``n_per_side``
    panels per surface and checked by :func:`~hybridzoo.datamodules.aerofoil_build.prepare_shape`.

    Raises:
        ValueError: a contour that the data build would reject (see
            :func:`~hybridzoo.datamodules.aerofoil_build.prepare_shape`), naming the check it fails: the model
            has not seen such shapes.
    """
    check_tensor("coords", coords, ndim=3, last_dim=2)
    n_per_side = check_panels_per_side("n_per_side", n_per_side)
    if coords.shape[0] == 0:
        return coords.new_zeros(0, 2 * n_per_side + 1, 2, dtype=torch.float32)
    return prepare_shapes(coords, n_per_side).float()  # the data set stores float32


def panel_contours(stored: torch.Tensor, n_panels_per_side: int) -> torch.Tensor:
    """Stored contours ``(F, K, 2)`` as the panel method sees them: float64, ``n_panels_per_side`` panels a side.

    Contours that already have ``2 n_panels_per_side + 1`` points are used as they are (not re-panelled).
    """
    coords = check_tensor("stored", stored, ndim=3, last_dim=2).double()
    n_panels_per_side = check_panels_per_side("n_panels_per_side", n_panels_per_side)
    if coords.shape[0] == 0:
        return coords.new_zeros(0, 2 * n_panels_per_side + 1, 2)
    if coords.shape[1] != 2 * n_panels_per_side + 1:
        coords = repanel(coords, n_panels_per_side)
    return coords


def aerofoil_inputs(coords: torch.Tensor, alpha: torch.Tensor, re: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network inputs and inviscid lift of ``B`` aerofoils at ``A`` conditions each.

    Args:
        coords: ``(B, K, 2)`` chord-normalised contours in Selig order, re-panelled as the panel method
            should see them.
        alpha: ``(B, A)`` angles of attack in radians.
        re: ``(B, A)`` chord Reynolds numbers.

    Returns:
        ``x (B, A, N_FEATURES)`` (columns in the module docstring) and ``cl_panel (B, A)``, in the
        dtype of ``coords``.
    """
    check_tensor("coords", coords, ndim=3, last_dim=2)
    check_tensor("alpha", alpha, ndim=2)
    check_tensor("re", re, ndim=2, positive=True)
    if alpha.shape != re.shape or alpha.shape[0] != coords.shape[0]:
        raise ValueError(
            f"alpha {tuple(alpha.shape)} and re {tuple(re.shape)} must both be (B, A) with B = {coords.shape[0]}"
        )
    alpha, re = alpha.to(coords), re.to(coords)
    sol = hess_smith(coords, alpha)
    layer = aerofoil_boundary_layer(sol, re).features()
    cst = cst_fit(coords, CST_ORDER)[:, None].expand(-1, alpha.shape[1], -1)
    x = torch.cat([cst, alpha[..., None], torch.log10(re)[..., None], layer], -1)
    return x, sol.cl
