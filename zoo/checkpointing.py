"""A ModelCheckpoint that follows each zoo model's own ``monitor``/``mode``."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint


class ZooCheckpoint(ModelCheckpoint):
    """Keep the best checkpoint by the model's ``monitor`` metric, plus ``last.ckpt``.

    Args are those of :class:`~lightning.pytorch.callbacks.ModelCheckpoint`; ``monitor`` and
    ``mode`` default to the LightningModule's class attributes when not given.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        self._explicit_monitor = "monitor" in kwargs
        super().__init__(**kwargs)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:  # noqa: D102
        if self.dirpath is None and not trainer.loggers:
            # Lightning's default without a logger is ./checkpoints, which in a source checkout is the
            # folder of shipped weights: keep training checkpoints out of it
            self.dirpath = os.path.join(trainer.default_root_dir, "lightning_logs", "checkpoints")
        if not self._explicit_monitor and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            mode = getattr(pl_module, "mode", "min")
            if mode not in ("min", "max"):
                raise ValueError(f"{type(pl_module).__name__}.mode must be 'min' or 'max', got {mode!r}")
            inf = torch.tensor(float("inf"))
            self.kth_value, self.mode = (inf, "min") if mode == "min" else (-inf, "max")
        super().setup(trainer, pl_module, stage)
