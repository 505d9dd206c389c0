"""RK-Net: a residual network whose feature block is an RK4 solve of a learned ODE (Chen et al., 2018).

The classifier is the paper's MNIST network: a downsampling stem, one feature block, and a head
(norm, ReLU, global average pool, linear); the networks live in :mod:`hybridzoo.zoo.rknet_networks`,
its TensorBoard figures in :mod:`hybridzoo.zoo.rknet_plots`.
Three models train side by side, in one run, on the same batches, each from its own parameters and
its own loss term (the total loss is their sum and gradient-norm clipping is per network, see
:meth:`RKNet.clip_groups`, so Adam updates each exactly as if it trained alone):

- ``rknet`` (the hybrid): the feature block is an :class:`~hybridzoo.zoo.ode_block.ODEBlock` that
  integrates one weight-shared conv vector field over ``[0, 1]`` with our fixed-step RK4
  (``solver="euler"`` makes it a weight-shared ResNet, ``"dopri5"`` + ``adjoint`` makes it ODE-Net);
- ``resnet``: the same stem and head around ``resnet_blocks`` residual blocks with their own weights;
- ``mlp``: the 1-hidden-layer MLP on raw pixels.

Logged: ``{train,val}/loss*``, ``val/error*`` (the monitor), ``val/nfe``, ``train/nfe``
(``train/nfe_backward`` with the adjoint), ``val/ms_per_batch*`` (forward time per batch of each
model), and at test time exactly ``test/error``, ``test/error_resnet``, ``test/error_mlp``; with a
TensorBoard logger also the RK-Net confusion matrix and its misclassified examples. Parameter
counts go to the model card through :meth:`RKNet.release_metrics`. ``trainer.predict`` (``hybridzoo
predict``) returns RK-Net logits ``(B, num_classes)`` per batch.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from hybridzoo.physics.validation import check_bool, check_positive_int
from hybridzoo.zoo.base import Freeze, HybridModule, synchronize
from hybridzoo.zoo.ode_block import ConvVectorField, ODEBlock, group_norm  # noqa: F401 (was importable here)
from hybridzoo.zoo.rknet_networks import (  # also re-exported: they lived here before
    MLP,
    ConvClassifier,
    ResBlock,
    count_parameters,
    make_head,
    make_stem,
)
from hybridzoo.zoo.rknet_plots import confusion_figure, examples_figure  # also re-exported
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

BASELINES = ("resnet", "mlp")


class ConfusionMatrix(MulticlassConfusionMatrix):
    """torchmetrics' multiclass confusion matrix, accumulated out of place.

    The parent adds in place, which fails when ``trainer.validate`` (inference mode) reset the state
    before ``trainer.fit`` validates under ``no_grad``; adding out of place works in both.
    """

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add the counts of predicted labels ``preds`` ``(B,)`` against ``target`` ``(B,)``."""
        k = self.num_classes
        counts = torch.bincount(target.long() * k + preds.long(), minlength=k * k).reshape(k, k)
        self.confmat = self.confmat + counts


class RKNet(HybridModule):
    """RK-Net image classifier with its ResNet and MLP baselines trained in the same run.

    Input images ``(B, in_channels, image_size, image_size)`` (any scale; the data modules give
    [0, 1]); ``forward`` returns RK-Net logits ``(B, num_classes)``. Training and evaluation batches are
    ``(images, labels)``: images of the model's dtype, labels ``(B,)`` int64 class indices.

    Args:
        in_channels, image_size, num_classes: the data's shape (the MLP needs ``image_size``).
        width: feature channels of the conv networks.
        downsample: stride-2 convolutions in the stem (2 for 28×28 MNIST, as in the paper).
        stem_padding: padding of the first 3×3 conv (0 in the paper's MNIST network).
        solver: ODE block solver: ``"rk4"`` (RK-Net), ``"euler"``, ``"torchdiffeq-rk4"``, ``"dopri5"`` ...
        steps: fixed-step solver steps over ``[0, 1]``.
        adjoint: adjoint back-propagation (torchdiffeq solvers only).
        rtol, atol: tolerances of adaptive solvers.
        resnet_blocks: residual blocks of the ResNet baseline (6 in the paper).
        mlp_hidden: hidden units of the MLP baseline (300 in the paper).
        baselines: also train the ResNet and MLP baselines.
        cosine_schedule: anneal the learning rate to 0 over training (cosine, per step).
        max_examples: misclassified examples shown in TensorBoard.
        lr, weight_decay, pretrained, freeze: see :class:`~hybridzoo.zoo.base.HybridModule`.
    """

    zoo_name: ClassVar[str | None] = "rk-net-digits"
    monitor: ClassVar[str] = "val/error"
    mode: ClassVar[str] = "min"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        num_classes: int = 10,
        width: int = 32,
        downsample: int = 1,
        stem_padding: int = 1,
        solver: str = "rk4",
        steps: int = 4,
        adjoint: bool = False,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        resnet_blocks: int = 6,
        mlp_hidden: int = 300,
        baselines: bool = True,
        cosine_schedule: bool = True,
        max_examples: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, pretrained=pretrained, freeze=freeze)
        for name, value in (("adjoint", adjoint), ("baselines", baselines), ("cosine_schedule", cosine_schedule)):
            check_bool(name, value)
        for name, value in (
            ("in_channels", in_channels),
            ("image_size", image_size),
            ("width", width),
            ("resnet_blocks", resnet_blocks),
            ("mlp_hidden", mlp_hidden),
        ):
            check_positive_int(name, value)
        if check_positive_int("num_classes", num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        for name, value in (
            ("downsample", downsample),
            ("stem_padding", stem_padding),
            ("max_examples", max_examples),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        feature_size = image_size + 2 * stem_padding - 2
        for _ in range(downsample):
            feature_size //= 2
        if feature_size < 1:
            raise ValueError(
                f"image_size={image_size} is too small for stem_padding={stem_padding} and "
                f"downsample={downsample}"
            )
        self.save_hyperparameters()

        def classifier(features: nn.Module) -> ConvClassifier:
            return ConvClassifier(
                make_stem(in_channels, width, downsample, stem_padding),
                features,
                make_head(width, num_classes),
            )

        block = ODEBlock(
            ConvVectorField(width), solver=solver, steps=steps, adjoint=adjoint, rtol=rtol, atol=atol
        )
        nets = {"rknet": classifier(block)}
        if baselines:
            nets["resnet"] = classifier(nn.Sequential(*(ResBlock(width) for _ in range(resnet_blocks))))
            nets["mlp"] = MLP(in_channels * image_size**2, mlp_hidden, num_classes)
        self.net = nn.ModuleDict(nets)
        self.accuracy = nn.ModuleDict(
            {
                f"{stage}_{m}": MulticlassAccuracy(num_classes, average="micro")
                for stage in ("val", "test")
                for m in nets
            }
        )
        self.confusion = nn.ModuleDict({s: ConfusionMatrix(num_classes) for s in ("val", "test")})
        self._examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ model
    @property
    def ode_block(self) -> ODEBlock:
        """The RK-Net feature block."""
        return self.net["rknet"].features

    @property
    def model_names(self) -> list[str]:
        """``"rknet"`` then the baselines that are trained."""
        return list(self.net.keys())

    @property
    def example_input_array(self) -> torch.Tensor:
        """Two blank images for Lightning's model summary, made when asked: in the weights' dtype and device."""
        h = self.hparams
        return torch.zeros(2, h.in_channels, h.image_size, h.image_size, dtype=self.dtype, device=self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RK-Net logits ``(B, num_classes)`` of images ``(B, C, H, W)`` in the model's dtype."""
        return self.net["rknet"](self._check_images(x))

    def param_counts(self) -> dict[str, int]:
        """``{"params": RK-Net, "params_resnet": ..., "params_mlp": ...}``, the card's parameter keys."""
        return {
            ("params" if m == "rknet" else f"params_{m}"): count_parameters(self.net[m]) for m in self.net
        }

    def _check_images(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"batch images must be a torch.Tensor, got {type(x).__name__}")
        h = self.hparams
        expected = (h.in_channels, h.image_size, h.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"batch images must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        # Lightning's precision plugins cast inputs to the parameters' dtype ("64-true", "bf16-true") or
        # autocast around float32 ones ("*-mixed"), so another dtype here is a data bug (e.g. raw uint8 pixels)
        if x.dtype != self.dtype:
            raise TypeError(f"batch images must have the model's dtype {self.dtype}, got {x.dtype}")
        return x

    def _check_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("batch must be a pair (images, labels)")
        x, y = batch
        x = self._check_images(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"batch labels must be a torch.Tensor, got {type(y).__name__}")
        if y.shape != x.shape[:1]:
            raise ValueError(f"batch labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        # cross_entropy takes other dtypes as probabilities (float) or fails (int32); the metrics want int64
        if y.dtype != torch.int64:
            raise TypeError(f"batch labels must be int64 class indices, got {y.dtype}")
        k = self.hparams.num_classes
        # on a GPU an out-of-range index is a device-side assert that poisons the CUDA context
        if y.numel() and not bool(((y >= 0) & (y < k)).all()):
            raise ValueError(f"batch labels must be class indices in [0, {k}), got labels from {int(y.min())} "
                             f"to {int(y.max())}")
        return x, y

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Sum of the cross-entropies of RK-Net and its baselines (each trains on its own term)."""
        x, y = self._check_batch(batch)
        losses = {m: F.cross_entropy(net(x), y) for m, net in self.net.items()}
        kw = {"batch_size": len(y), "on_step": True, "on_epoch": True}
        self.log_with_baselines("train", "loss", losses["rknet"], {m: v for m, v in losses.items() if m != "rknet"},
                                prog_bar=True, **kw)
        self.log("train/nfe", float(self.ode_block.nfe), on_step=True, on_epoch=False, batch_size=len(y))
        self._nfe_before_backward = self.ode_block.field.nfe
        return sum(losses.values())

    def on_after_backward(self) -> None:
        """With the adjoint method, log the vector-field evaluations of the backward solve."""
        if self.hparams.adjoint:
            nfe_bwd = self.ode_block.field.nfe - self._nfe_before_backward
            self.log("train/nfe_backward", float(nfe_bwd), on_step=True, on_epoch=False, batch_size=1)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """One group per network: RK-Net and each baseline train independently, so each is clipped on its own."""
        return [list(net.parameters()) for net in self.net.values()]

    def configure_optimizers(self) -> Any:
        """Use the base optimiser, with a per-step cosine decay to 0 when ``cosine_schedule``."""
        opt = super().configure_optimizers()
        return self.with_cosine_schedule(opt) if self.hparams.cosine_schedule else opt

    # ------------------------------------------------------------------ evaluation
    def _timed(self, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        synchronize(x.device)
        start = time.perf_counter()
        out = net(x)
        synchronize(x.device)
        return out, 1e3 * (time.perf_counter() - start)

    def _eval_step(self, stage: str, batch: Any) -> None:
        x, y = self._check_batch(batch)
        times, losses = {}, {}
        for m, net in self.net.items():
            logits, times[m] = self._timed(net, x)
            losses[m] = F.cross_entropy(logits, y)
            self.accuracy[f"{stage}_{m}"].update(logits, y)
            if m == "rknet":
                pred = logits.argmax(dim=1)
                self.confusion[stage].update(pred, y)
                self._keep_examples(x, pred, y)
        if stage == "val":
            kw = {"batch_size": len(y), "on_epoch": True}
            others = {m: v for m, v in losses.items() if m != "rknet"}
            self.log_with_baselines("val", "loss", losses["rknet"], others, **kw)
            self.log("val/nfe", float(self.ode_block.nfe), sync_dist=True, **kw)
            self.log_with_baselines(
                "val",
                "ms_per_batch",
                times["rknet"],
                {m: t for m, t in times.items() if m != "rknet"},
                on_epoch=True,
                batch_size=1,  # a time per batch: the epoch value is the mean over batches
            )

    def _keep_examples(self, x: torch.Tensor, pred: torch.Tensor, y: torch.Tensor) -> None:
        room = self.hparams.max_examples - sum(len(e[0]) for e in self._examples)
        if room <= 0 or self.tensorboard is None:
            return
        wrong = (pred != y).nonzero().flatten()[:room]
        if len(wrong):
            self._examples.append((x[wrong].detach().cpu(), pred[wrong].cpu(), y[wrong].cpu()))

    def _eval_epoch_end(self, stage: str) -> None:
        errors = {}
        for m in self.net:
            metric = self.accuracy[f"{stage}_{m}"]
            errors[m] = 1.0 - metric.compute()
            metric.reset()
        self.log_with_baselines(
            stage,
            "error",
            errors["rknet"],
            {m: e for m, e in errors.items() if m != "rknet"},
            prog_bar=stage == "val",
        )
        confusion = self.confusion[stage].compute()
        self.confusion[stage].reset()
        if self.tensorboard is not None:
            self.log_figure(f"{stage}/confusion_matrix", confusion_figure(confusion.cpu()))
            if self._examples:
                xs, ps, ys = (torch.cat(t) for t in zip(*self._examples))
                self.log_figure(f"{stage}/misclassified", examples_figure(xs, ps, ys))
        self._examples = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Update error counts and the confusion matrix; log losses, NFE and time per batch."""
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/error``, ``val/error_resnet``, ``val/error_mlp`` and the figures."""
        self._eval_epoch_end("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Update the test error counts and the confusion matrix."""
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        """Log ``test/error``, ``test/error_resnet``, ``test/error_mlp`` (the card keys) and the figures."""
        self._eval_epoch_end("test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """RK-Net logits ``(B, num_classes)`` of images ``(B, C, H, W)`` or of an ``(images, labels)`` batch."""
        x = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch
        return self(self._check_images(x))

    def release_metrics(self, trainer: L.Trainer, datamodule: L.LightningDataModule) -> dict[str, float]:
        """Parameter counts for the card: ``params``, ``params_resnet``, ``params_mlp``."""
        return {k: float(v) for k, v in self.param_counts().items()}


class RKNetMNIST(RKNet):
    """:class:`RKNet` with the paper's MNIST network as defaults (28×28 input, 64 channels, 0.21 M params)."""

    zoo_name: ClassVar[str | None] = "rk-net-mnist"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        width: int = 64,
        downsample: int = 2,
        stem_padding: int = 0,
        solver: str = "rk4",
        steps: int = 4,
        adjoint: bool = False,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        resnet_blocks: int = 6,
        mlp_hidden: int = 300,
        baselines: bool = True,
        cosine_schedule: bool = True,
        max_examples: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
            width=width,
            downsample=downsample,
            stem_padding=stem_padding,
            solver=solver,
            steps=steps,
            adjoint=adjoint,
            rtol=rtol,
            atol=atol,
            resnet_blocks=resnet_blocks,
            mlp_hidden=mlp_hidden,
            baselines=baselines,
            cosine_schedule=cosine_schedule,
            max_examples=max_examples,
            lr=lr,
            weight_decay=weight_decay,
            pretrained=pretrained,
            freeze=freeze,
        )
