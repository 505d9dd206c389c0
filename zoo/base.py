"""The base LightningModule shared by every zoo model.

What every hybrid does alike lives here: optimiser defaults, the ``monitor``/``mode`` pair used by
checkpoint callbacks, logging a hybrid metric beside its physics-only baseline(s), TensorBoard
figures and images, starting from shipped weights (``pretrained=NAME``) and freezing the network
or the physics parameters for fine-tuning.

Conventions a subclass follows:
- call ``self.save_hyperparameters()`` in ``__init__`` (plain values only, so checkpoints load
  with ``weights_only=True``);
- keep the learnable network(s) under ``self.net`` and learnable physical parameters under
  ``self.physics`` (both ``nn.Module``), so ``freeze="network"|"physics"`` finds them;
- set the class attributes ``zoo_name`` (registry name), ``monitor`` and ``mode``.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from hybridzoo.physics.validation import is_real_number

Freeze = Literal["none", "network", "physics"]
#: checkpoint entry that says the run fine-tunes trained weights (:attr:`HybridModule.fine_tuning`)
FINE_TUNING_KEY = "hybridzoo_fine_tuning"
_FREEZE_CHOICES = ("none", "network", "physics")


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays, also inside lists, tuples and dicts, as plain Python values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class HybridModule(L.LightningModule):
    """Base class of the zoo's hybrid physics + NN models.

    Args:
        lr: learning rate of the default Adam optimiser.
        weight_decay: decoupled weight decay (AdamW when > 0).
        adam_beta2: Adam's second-moment decay (torch's default 0.999). A smaller value (0.99) lets the
            step size follow a sudden rise of the gradient's scale sooner, such as a longer unroll brings.
        pretrained: name of a shipped checkpoint (or a path/URL of a card) whose weights are loaded
            for fine-tuning: by :func:`~hybridzoo.zoo.registry.create_model` and the CLI at once, else when
            the fit (or test) sets the model up. ``None`` starts from scratch.
        freeze: ``"none"``, ``"network"`` (train only physical parameters) or ``"physics"`` (train
            only the network).
    """

    zoo_name: ClassVar[str | None] = None
    monitor: ClassVar[str] = "val/loss"
    mode: ClassVar[str] = "min"
    #: Hyperparameters that pretrained weights must have been trained with, though the same weights fit the
    #: shapes of other values (a start image, a grid, an input scale): :meth:`check_pretrained_card` compares them.
    pretrained_must_match: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        adam_beta2: float = 0.999,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__()
        if freeze not in _FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {_FREEZE_CHOICES}, got {freeze!r}")
        if not (is_real_number(lr) and 0 < lr < math.inf):  # inf and NaN too: the first step would wreck the weights
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (is_real_number(weight_decay) and 0 <= weight_decay < math.inf):
            raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        if not (is_real_number(adam_beta2) and 0.0 <= adam_beta2 < 1.0):
            raise ValueError(f"adam_beta2 must be a number in [0, 1), got {adam_beta2!r}")
        self._base_lr = float(lr)
        self._base_weight_decay = float(weight_decay)
        self._adam_betas = (0.9, float(adam_beta2))
        self._pretrained = pretrained
        self._pretrained_done = False
        self._fine_tuning = False  # set by on_pretrained_loaded, kept in checkpoints
        self._freeze: str = freeze
        self._frozen_by_freeze: list[torch.nn.Parameter] = []
        #: JSON model card, set by :func:`hybridzoo.zoo.load_pretrained`.
        self.card: dict[str, Any] | None = None

    # ------------------------------------------------------------------ parameters and fine-tuning
    def network_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the learnable network(s) (``self.net``)."""
        net = getattr(self, "net", None)
        return list(net.parameters()) if isinstance(net, torch.nn.Module) else []

    def physics_parameters(self) -> list[torch.nn.Parameter]:
        """Learnable physical parameters (``self.physics``)."""
        phys = getattr(self, "physics", None)
        return list(phys.parameters()) if isinstance(phys, torch.nn.Module) else []

    def _freeze_group(self, freeze: str) -> list[torch.nn.Parameter]:
        """The parameters ``freeze`` freezes (none for ``"none"``)."""
        return {"network": self.network_parameters(), "physics": self.physics_parameters()}.get(freeze, [])

    def apply_freeze(self, freeze: Freeze | None = None) -> None:
        """Freeze the network or the physics parameters (``None``: the ``freeze`` init argument)."""
        freeze = self._freeze if freeze is None else freeze
        if freeze not in _FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {_FREEZE_CHOICES}, got {freeze!r}")
        self._freeze = freeze
        # undo only what an earlier call froze: parameters the user froze by hand stay frozen
        for p in self._frozen_by_freeze:
            p.requires_grad_(True)
        frozen = self._freeze_group(freeze)
        self._frozen_by_freeze = [p for p in frozen if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        if freeze != "none" and not frozen:
            warnings.warn(f"freeze={freeze!r}: this model has no {freeze} parameters to freeze", stacklevel=2)

    def _check_card_model(self, name_or_path: str, card: dict[str, Any]) -> None:
        """Refuse a card of another zoo model by name (its weights would only read as a mismatch of keys)."""
        from hybridzoo.zoo.registry import model_class, names

        other = card.get("model")
        if isinstance(other, str) and other in names() and not isinstance(self, model_class(other)):
            raise ValueError(f"pretrained={name_or_path!r} is a checkpoint of zoo model {other!r} "
                             f"({model_class(other).__name__}), not of a {type(self).__name__}")

    def load_pretrained_weights(self, name_or_path: str) -> None:
        """Copy the weights of a shipped checkpoint (or a card path/URL) into this model."""
        from hybridzoo.zoo.hub import load_state_dict

        state, card = load_state_dict(name_or_path)
        self._check_card_model(name_or_path, card)
        self.check_pretrained_card(card)
        # checked before any copy: load_state_dict(strict=False) would fill the fitting tensors, then fail
        own = self.state_dict()
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        shapes = [f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} here"
                  for k, v in own.items() if k in state and state[k].shape != v.shape]
        problems = []
        if missing:
            problems.append(f"missing keys {missing[:5]}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected[:5]}")
        if shapes:
            problems.append(f"size mismatch for {shapes[0]}" + (f" (and {len(shapes) - 1} more)" if shapes[1:] else ""))
        if problems:
            raise ValueError(
                f"pretrained={name_or_path!r} does not fit this model (architecture differs): {'; '.join(problems)}; "
                f"the checkpoint was trained with hparams {card.get('hparams')}"
            )
        self.load_state_dict(state, strict=True)
        self.card = card
        self._pretrained_done = True
        self.on_pretrained_loaded()

    def check_pretrained_card(self, card: dict[str, Any]) -> None:
        """Refuse ``pretrained`` weights whose card says they cannot work in this model.

        Called by :meth:`load_pretrained_weights` before any weight is copied. Names and shapes are checked
        there; here each of :attr:`pretrained_must_match` in ``card["hparams"]`` must equal this model's
        (compared as JSON holds them: a tuple equals the list it was saved as), else a ``ValueError`` names
        every setting that differs.
        """
        trained = card.get("hparams", {})
        ours = {k: self.hparams.get(k) for k in self.pretrained_must_match}
        differ = [k for k in self.pretrained_must_match if k in trained and _as_json(trained[k]) != _as_json(ours[k])]
        if differ:
            def listed(values: dict[str, Any]) -> str:
                return ", ".join(f"{k}={values[k]!r}" for k in differ)

            raise ValueError(f"pretrained weights were trained with {listed(trained)}, but this model has "
                             f"{listed(ours)}: set {listed(trained)} to use them")

    def on_pretrained_loaded(self) -> None:
        """Called after shipped/pretrained weights were loaded into this model: marks it :attr:`fine_tuning`.

        :meth:`load_pretrained_weights` (``pretrained=NAME``) and :func:`hybridzoo.zoo.load_pretrained` call it
        once the weights are in. Subclasses that override it must call ``super().on_pretrained_loaded()``.
        """
        self._fine_tuning = True

    @property
    def fine_tuning(self) -> bool:
        """Whether the model started from trained weights, so that a fit skips what is meant for random ones.

        Set by :meth:`on_pretrained_loaded`; a model whose training schedule has a warm-up (a curriculum, a
        short first window) starts it where it ends when this is set. Kept in Lightning checkpoints, so that
        a resumed fine-tuning run goes on fine-tuning; a run from scratch, resumed or not, never sets it.
        """
        return self._fine_tuning

    @property
    def attached_datamodule(self) -> L.LightningDataModule | None:
        """The DataModule of the Trainer this model is attached to, if any."""
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    def setup(self, stage: str) -> None:
        """Check the DataModule's pairing, load ``pretrained`` weights once, then apply ``freeze``.

        The weights are loaded before any ``ckpt_path`` restore, which replaces them.
        """
        if self.attached_datamodule is not None:
            from hybridzoo.zoo.registry import check_pairing

            check_pairing(self, self.attached_datamodule)
        self.load_pending_pretrained()
        self.apply_freeze()
        if stage == "fit":
            self.check_trainable()

    def check_trainable(self) -> None:
        """Raise ``ValueError`` where nothing is left to train.

        E.g. ``freeze="network"`` on a model whose parameters are all network ones: found at setup (and by the
        CLI before any data), not first by the optimiser after the data. It counts the group ``freeze`` names as
        frozen, so it answers before :meth:`apply_freeze` has run as after it.
        """
        frozen = {id(p) for p in self._freeze_group(self._freeze)}
        if not any(p.requires_grad and id(p) not in frozen for p in self.parameters()):
            if self._freeze == "network" and not self.physics_parameters():
                why = f"freeze='network', and {type(self).__name__} has no physical parameters to train"
            elif self._freeze != "none":
                why = f"freeze={self._freeze!r} froze the rest"
            else:
                why = "every parameter has requires_grad=False"
            raise ValueError(f"no trainable parameters: {why}")

    def load_pending_pretrained(self) -> None:
        """Load the ``pretrained`` weights given to the constructor, unless they (or a checkpoint's) are in.

        :meth:`setup` calls it; ``hybridzoo fit|test|...`` calls it as soon as the model is built, so that an
        unknown name or another model's card is a one-line message, not a traceback from inside the Trainer.
        """
        if self._pretrained and not self._pretrained_done:
            self.load_pretrained_weights(self._pretrained)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Name this model's class in the checkpoint's hyperparameters, as LightningCLI does for its own.

        ``hybridzoo test|fit --ckpt_path`` (LightningCLI in subclass mode) rebuilds the model from a checkpoint's
        hyperparameters only where they say which class they are for; a model built in Python leaves no
        ``_class_path`` of its own. ``load_from_checkpoint`` ignores the key.

        Subclasses that override this hook must call ``super().on_save_checkpoint(checkpoint)``.
        """
        super().on_save_checkpoint(checkpoint)
        # NumPy numbers (np.float32(1e-3) passes as a learning rate) would make the checkpoint unreadable by
        # torch.load(weights_only=True), Lightning's default: store them as the Python numbers they stand for
        for key in (self.CHECKPOINT_HYPER_PARAMS_KEY, "datamodule_hyper_parameters"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint[key] = {k: _plain(v) for k, v in checkpoint[key].items()}
        hparams = checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY)
        if isinstance(hparams, dict) and "_class_path" not in hparams:
            hparams["_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint[FINE_TUNING_KEY] = self._fine_tuning

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A restored checkpoint already holds the (fine-tuned) weights: never copy ``pretrained`` over them.

        Restores the :attr:`fine_tuning` mark (a checkpoint from before the mark leaves it as it is).
        Subclasses that override this hook must call ``super().on_load_checkpoint(checkpoint)``.
        """
        super().on_load_checkpoint(checkpoint)
        self._pretrained_done = True
        self._fine_tuning = bool(checkpoint.get(FINE_TUNING_KEY, self._fine_tuning))

    # ------------------------------------------------------------------ optimisation
    def clip_groups(self) -> list[list[torch.nn.Parameter]] | None:
        """Parameter sets that gradient-norm clipping treats each on its own; ``None``: one joint clip.

        A model that trains independent networks side by side in one run returns one set per network,
        so that one network's large gradient does not shrink the others' steps.
        """
        return None

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping, except that norm clipping follows :meth:`clip_groups` where it is set."""
        groups = self.clip_groups()
        if groups is None or gradient_clip_val is None or gradient_clip_algorithm not in (None, "norm"):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        for params in groups:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], gradient_clip_val)

    def configure_optimizers(self) -> Any:
        """Adam (AdamW with weight decay) over the trainable parameters."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            self.check_trainable()  # names the cause
            raise ValueError("no trainable parameters: is everything frozen?")
        if self._base_weight_decay > 0:
            return torch.optim.AdamW(params, lr=self._base_lr, betas=self._adam_betas,
                                     weight_decay=self._base_weight_decay)
        return torch.optim.Adam(params, lr=self._base_lr, betas=self._adam_betas)

    def with_cosine_schedule(self, optimizer: torch.optim.Optimizer) -> Any:
        """Wrap ``optimizer`` with a per-step cosine decay of the learning rate to 0 over the whole run.

        Returns the optimiser alone where the run's length is unknown (no trainer, or an unbounded
        ``max_steps``/``max_epochs``).
        """
        if self._trainer is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            return optimizer
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(total), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ data
    def datamodule(self, **overrides: Any) -> L.LightningDataModule:
        """Build this model's paired DataModule: zoo config, then the card's data config, then ``overrides``."""
        from hybridzoo.zoo.registry import datamodule_for

        return datamodule_for(self, **overrides)

    # ------------------------------------------------------------------ logging
    def log_with_baselines(
        self,
        stage: str,
        metric: str,
        hybrid: torch.Tensor | float,
        baselines: dict[str, torch.Tensor | float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Log ``<stage>/<metric>`` for the hybrid and ``<stage>/<metric>_<name>`` for each baseline.

        ``kwargs`` go to :meth:`log` (``sync_dist`` defaults to ``True``). A value computed per batch and
        averaged over the epoch should come with ``batch_size`` (the number of samples it averages), so
        that the epoch value is the mean over samples; without it Lightning infers the size from the
        batch. Values logged once per epoch and torchmetrics ``Metric`` objects need none.
        """
        kwargs.setdefault("sync_dist", True)
        self.log(f"{stage}/{metric}", hybrid, **kwargs)
        for name, value in (baselines or {}).items():
            self.log(f"{stage}/{metric}_{name}", value, **kwargs)

    @property
    def tensorboard(self) -> Any | None:
        """The TensorBoard ``SummaryWriter`` of the first TensorBoard logger, or ``None`` (rank 0 only)."""
        if self._trainer is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return None
        from lightning.pytorch.loggers import TensorBoardLogger

        for logger in self.trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    def log_figure(self, tag: str, figure: Any) -> None:
        """Send a matplotlib figure to TensorBoard (no-op without a TensorBoard logger); closes it."""
        import matplotlib.pyplot as plt

        writer = self.tensorboard
        if writer is not None:
            writer.add_figure(tag, figure, global_step=self.global_step)
        plt.close(figure)

    def log_image(self, tag: str, image: torch.Tensor) -> None:
        """Send an image ``(C, H, W)`` with values in [0, 1] to TensorBoard (no-op without one)."""
        writer = self.tensorboard
        if writer is not None:
            writer.add_image(tag, image.detach().float().cpu().clamp(0, 1), global_step=self.global_step)

    # ------------------------------------------------------------------ release
    def release_metrics(self, trainer: L.Trainer, datamodule: L.LightningDataModule) -> dict[str, float]:
        """Extra card metrics computed after testing (e.g. distillation results); none by default."""
        return {}


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on ``device`` (CUDA, MPS, XPU run asynchronously), for timings; CPU: nothing."""
    if device.type == "cpu":
        return
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6; before it, each backend's own module
    if accelerator is not None and hasattr(accelerator, "synchronize"):
        accelerator.synchronize(device)
    else:
        getattr(torch, device.type).synchronize(device)


def _as_json(value: Any) -> Any:
    """``value`` as a model card's JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))
