"""TensorBoard figures of the residual aerofoil model: Cl-alpha curves and the error histogram."""

from __future__ import annotations

from typing import Any

import torch
from hybridzoo.datamodules.aerofoil_features import ALPHA, LOG_RE


def cl_alpha_figure(
    x: torch.Tensor,
    cl: torch.Tensor,
    pred: dict[str, torch.Tensor],
    foil: torch.Tensor,
    names: list[str] | None,
    n_curves: int,
) -> Any:
    """Plot Cl against α (degrees) for ``n_curves`` aerofoils at the middle Re: XFOIL, panel, networks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_re = x[:, LOG_RE]
    res = torch.unique(log_re)
    mid = res[len(res) // 2]
    foils = torch.unique(foil)[:n_curves]
    fig, axes = plt.subplots(1, len(foils), figsize=(3.2 * len(foils), 3), squeeze=False)
    for ax, f in zip(axes[0], foils.tolist()):
        rows = ((foil == f) & (log_re == mid)).nonzero().squeeze(-1)
        rows = rows[torch.argsort(x[rows, ALPHA])]
        a = torch.rad2deg(x[rows, ALPHA]).cpu()
        ax.plot(a, cl[rows].cpu(), "ko", label="XFOIL")
        for m, style in (("panel", "--"), ("nn", ":"), ("residual", "-"), ("pgml", "-.")):
            ax.plot(a, pred[m][rows].cpu(), style, label=m)
        ax.set_title(f"{names[f] if names else f}  Re={10 ** mid.item():.0e}", fontsize=8)
        ax.set_xlabel("alpha [deg]")
    axes[0][0].set_ylabel("Cl")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def error_histogram(cl: torch.Tensor, pred: dict[str, torch.Tensor]) -> Any:
    """Histogram of the Cl errors against XFOIL of each mode in ``pred`` (``{mode: (N,)}``, like ``cl``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for m in pred:
        ax.hist((pred[m] - cl).detach().cpu().numpy(), bins=40, histtype="step", label=m)
    ax.set_xlabel("Cl error vs XFOIL")
    ax.set_ylabel("rows")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
