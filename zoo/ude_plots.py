"""TensorBoard figures of the UDE: trajectories, and learned terms against the true missing terms."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


@torch.no_grad()
def trajectory_figure(model: Any, batch: dict[str, torch.Tensor], preds: dict[str, torch.Tensor]) -> plt.Figure:
    """Observed vs hybrid vs physics-only trajectory of the batch's first item, and the learned terms along it.

    The true missing terms ``-beta*x*y`` and ``gamma*x*y`` are drawn when the trainer's DataModule
    knows the true parameters.
    """
    t = batch["t"][0].cpu()
    n = int(batch["n_train"][0])
    obs, clean = batch["obs"][0].cpu(), batch["clean"][0].cpu()
    hyb, phys = preds["hybrid"][0].cpu(), preds["physics"][0].cpu()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, color) in enumerate((("prey x", "tab:blue"), ("predator y", "tab:orange"))):
        ax0.plot(t, obs[:, k], ".", ms=3, color=color, alpha=0.5, label=f"observed {name}")
        ax0.plot(t, hyb[:, k], "-", color=color, label=f"hybrid {name}")
        ax0.plot(t, phys[:, k], ":", color=color, label=f"physics-only {name}")
    top = 1.5 * float(clean.max())
    ax0.set_ylim(-0.05 * top, top)
    ax0.axvline(float(t[n - 1]), color="k", lw=0.8, ls="--")
    ax0.text(float(t[n - 1]), 0.95 * top, " extrapolation →", va="top", fontsize=8)
    ax0.set(xlabel="time", ylabel="population", title="trajectories")
    ax0.legend(fontsize=7, ncol=2)

    terms = model.learned_terms(clean.to(model.device, model.dtype))
    x, y = clean[:, 0], clean[:, 1]
    theta3 = model.physics.theta3.item()
    # NN_2 and theta_3*y are only identifiable together, so the predator panel shows their sum
    ax1.plot(t, terms["prey"].cpu(), color="tab:blue", label="NN₁(x, y)")
    ax1.plot(t, terms["predator"].cpu() - theta3 * y, color="tab:orange", label="NN₂(x, y) − θ₃y")
    dm = getattr(getattr(model, "_trainer", None), "datamodule", None)
    params = getattr(dm, "params", None) or getattr(model, "_plot_params", None)
    if params is not None:
        ax1.plot(t, -params.beta * x * y, "--", color="tab:blue", label="true −βxy")
        ax1.plot(t, params.gamma * x * y - params.delta * y, "--", color="tab:orange", label="true γxy − δy")
    ax1.set(xlabel="time", ylabel="rate", title="learned vs missing terms along the trajectory")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig
