"""TensorBoard figures of RK-Net: the confusion matrix and the misclassified examples."""

from __future__ import annotations

from typing import Any

import torch


def confusion_figure(confusion: torch.Tensor) -> Any:
    """Draw a ``(K, K)`` confusion matrix as a matplotlib heat map (rows: true, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(confusion.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if confusion[i, j] > 0:
                ax.text(
                    j,
                    i,
                    int(confusion[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black",
                )
    ax.set(
        xlabel="predicted", ylabel="true", xticks=range(k), yticks=range(k), title="RK-Net confusion matrix"
    )
    fig.tight_layout()
    return fig


def examples_figure(images: torch.Tensor, pred: torch.Tensor, true: torch.Tensor) -> Any:
    """Draw images ``(N, C, H, W)``, ``N >= 1``, in a grid titled ``predicted (true)``.

    Three-channel images are drawn in RGB, each min-max scaled to [0, 1] (the model takes any scale);
    for any other ``C`` only channel 0 is drawn, in grey. ``pred`` and ``true`` are ``(N,)`` labels.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got {getattr(images, 'shape', images)}")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty: there are no examples to draw")
    if len(pred) != n or len(true) != n:
        raise ValueError(f"pred and true must hold one label per image ({n}), got {len(pred)} and {len(true)}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.35 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, p, t in zip(axes.flat, images, pred, true):
        img = img.detach().float().cpu()
        if img.shape[0] == 3:
            lo, hi = img.min(), img.max()
            ax.imshow(((img - lo) / (hi - lo).clamp_min(1e-12)).permute(1, 2, 0).numpy())
        else:
            ax.imshow(img[0].numpy(), cmap="gray_r")
        ax.set_title(f"{int(p)} ({int(t)})", fontsize=8, color="red")
    fig.suptitle("RK-Net misclassified: predicted (true)", fontsize=9)
    fig.tight_layout()
    return fig
