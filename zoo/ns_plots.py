"""TensorBoard figures of solver-in-the-loop: vorticity fields and rollout error against time."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hybridzoo.physics.navier_stokes import NavierStokes2D  # noqa: E402

LABELS = {"sol": "SOL (hybrid)", "non": "NON", "src": "SRC (coarse solver)", "2x": "coarse solver at 2x"}


@torch.no_grad()
def vorticity_figure(solver: NavierStokes2D, batch: dict[str, torch.Tensor],
                     preds: dict[str, tuple[torch.Tensor, torch.Tensor]], item: int = 0) -> plt.Figure:
    """Vorticity (1/s) at the last rollout step: reference, SRC, NON, SOL, and SOL's error; solid cells grey."""
    def w(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return solver.vorticity(u[item:item + 1, -1].double().cpu(), v[item:item + 1, -1].double().cpu())[0]

    ref = w(batch["u"], batch["v"])
    panels = [("reference", ref)] + [(LABELS[m], w(*preds[m])) for m in ("src", "non", "sol") if m in preds]
    panels.append(("SOL - reference", panels[-1][1] - ref))
    lim = float(ref.abs().max()) or 1.0
    extent = (0, solver.length_x, 0, solver.length_y)
    solid = solver.solid.numpy() if solver.solid is not None else None
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(9, 1.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (title, field) in zip(axes.flat, panels):
        im = ax.imshow(field.numpy(), origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        if solid is not None:
            ax.contourf(solid, levels=[0.5, 1.5], colors="0.6", origin="lower", extent=extent)
        ax.set_title(f"{title}, Re={float(batch['re'][item]):.0f}", fontsize=8)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="vorticity (1/s)")
    return fig


def error_curve_figure(curves: dict[str, torch.Tensor], dt: float) -> plt.Figure:
    """Mean absolute velocity error (m/s) of each method against time, averaged over the batch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for m, c in curves.items():
        c = c.detach().float().mean(0).cpu()
        t = (torch.arange(c.shape[0], device="cpu") + 1) * dt  # for matplotlib, whatever the default device
        ax.plot(t, c, label=LABELS.get(m, m))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("velocity MAE (m/s)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["error_curve_figure", "vorticity_figure"]
