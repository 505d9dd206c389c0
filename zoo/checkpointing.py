"""A ModelCheckpoint that follows each zoo model's own ``monitor``/``mode``."""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

_DEFERRED_MONITOR = "<the model's monitor, set in setup>"


def logs_nowhere(trainer: Any) -> bool:
    """Whether ``trainer`` has no logger with a folder of its own: none, or ``fast_dev_run``'s DummyLogger.

    Lightning then falls back to the working directory for what would go beside the logs.
    """
    return all(isinstance(lg, DummyLogger) for lg in trainer.loggers)


class ZooCheckpoint(ModelCheckpoint):
    """Keep the best checkpoint by the model's ``monitor`` metric, plus ``last.ckpt``.

    Args are those of :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (keywords only), except
    that ``save_last`` defaults to ``True`` and that ``monitor`` and ``mode`` default to ``None``:
    ``monitor=None`` follows the LightningModule's ``monitor`` class attribute, and ``mode=None`` its
    ``mode`` where the monitored metric is the model's (else ModelCheckpoint's ``"min"``). A
    ``monitor`` or ``mode`` given explicitly is kept as given.
    """

    def __init__(
        self,
        *,
        monitor: str | None = None,
        mode: Literal["min", "max"] | None = None,
        save_last: bool | Literal["link"] | None = True,
        **kwargs: Any,
    ) -> None:
        self._user_monitor = monitor
        self._user_mode = mode
        # ModelCheckpoint refuses save_top_k > 1 without a monitor; the model's is known only in setup()
        # (where the check is repeated), so stand a placeholder in for it until then
        deferred = monitor is None and kwargs.get("save_top_k", 1) not in (-1, 0, 1)
        super().__init__(monitor=_DEFERRED_MONITOR if deferred else monitor, mode=mode or "min",
                         save_last=save_last, **kwargs)
        if deferred:
            self.monitor = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:  # noqa: D102
        if self.dirpath is None and logs_nowhere(trainer):
            # Lightning's default without a logger is ./checkpoints, which in a source checkout is the
            # folder of shipped weights: keep training checkpoints out of it
            self.dirpath = os.path.join(trainer.default_root_dir, "lightning_logs", "checkpoints")
        model_monitor = getattr(pl_module, "monitor", None)
        if self._user_monitor is None and model_monitor:
            self.monitor = model_monitor
        mode = self._user_mode
        if mode is None and model_monitor and self.monitor == model_monitor:
            mode = getattr(pl_module, "mode", "min")
            if mode not in ("min", "max"):
                raise ValueError(f"{type(pl_module).__name__}.mode must be 'min' or 'max', got {mode!r}")
        if mode is not None and mode != self.mode:
            inf = torch.tensor(float("inf"))
            self.kth_value, self.mode = (inf, "min") if mode == "min" else (-inf, "max")
        if self.monitor is None and self.save_top_k not in (-1, 0, 1):
            raise MisconfigurationException(
                f"ZooCheckpoint(save_top_k={self.save_top_k}) needs a metric to rank checkpoints by, but neither "
                f"monitor= nor {type(pl_module).__name__}.monitor names one"
            )
        super().setup(trainer, pl_module, stage)

    def _save_last_checkpoint(self, trainer: Any, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_step_of_last = trainer.global_step

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Write ``last.ckpt`` with the weights the fit ends with.

        Lightning (2.6) refreshes ``last.ckpt`` only when it saves a best-so-far checkpoint in the same step, so
        after the best epoch it kept an older state (epoch 32 of a 60-epoch fit), which ``--ckpt_path
        last.ckpt`` then tested or resumed from. Under ``fast_dev_run`` nothing is written, and
        ``save_last="link"`` keeps Lightning's meaning (a link to the latest saved checkpoint).
        """
        if trainer.fast_dev_run:
            return
        if self.save_last is not True:  # Lightning's own end-of-fit fallback (a last.ckpt if none was written)
            super().on_train_end(trainer, pl_module)
            return
        if getattr(self, "_last_step_of_last", None) != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
