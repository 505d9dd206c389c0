"""Residual aerofoil: Hess-Smith panel lift plus a learned viscous correction.

After Pawar, San, Aksoylu, Rasheed & Kvamsdal, "Physics guided machine learning using simplified
theories", Physics of Fluids 33, 011701 (2021). Given an aerofoil shape (CST weights), the angle of
attack α and the Reynolds number Re, four predictors of XFOIL's lift coefficient are measured in the
same run, on the same unseen aerofoils:

- ``panel``: the inviscid Hess-Smith panel method alone (no learning);
- ``nn``: an MLP of (shape, α, Re) alone;
- ``residual`` (the hybrid, ``test/mae``): ``Cl = Cl_panel + MLP(shape, α, Re, physics)``;
- ``pgml``: the paper's PGML network, which feeds the physics into a hidden layer.

"physics" is ``Cl_panel`` and, with ``boundary_layer=True`` (the default), the state of an integral
boundary layer (Thwaites-Michel-Head, :mod:`hybridzoo.physics.boundary_layer`) marched on the panel
method's surface speed: where it transitions and separates, how thick it is at the trailing edge.
That is the simplified theory of *viscous* lift that the correction is about; the NN-only baseline
sees the same shape, α and Re but none of the physics.

The three networks have the same widths and are trained together (independent parameters, one summed
loss), so their comparison costs one run.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from hybridzoo.datamodules.aerofoil import N_PANELS_PER_SIDE, N_PER_SIDE
from hybridzoo.datamodules.aerofoil_build import DEFAULT_ALPHAS, DEFAULT_REYNOLDS
from hybridzoo.datamodules.aerofoil_features import (
    ALPHA,
    LOG_RE,
    N_FEATURES,
    N_PROBLEM,
    aerofoil_inputs,
    check_panels_per_side,
    panel_contours,
    stored_contours,
)
from hybridzoo.physics.validation import check_bool, check_positive_int, check_tensor
from hybridzoo.zoo.aerofoil_networks import MLPHead, PGMLNet
from hybridzoo.zoo.aerofoil_plots import cl_alpha_figure, error_histogram
from hybridzoo.zoo.base import Freeze, HybridModule
from hybridzoo.zoo.neuralfoil_peer import neuralfoil_cl
from torch import nn
from torchmetrics import MeanAbsoluteError

MODES = ("residual", "pgml", "nn", "panel")
_LOSSES = {
    "mse": torch.nn.functional.mse_loss,
    "l1": torch.nn.functional.l1_loss,
    "huber": lambda a, b: torch.nn.functional.huber_loss(a, b, delta=0.05),
}


class ResidualAerofoil(HybridModule):
    """Lift-coefficient predictors (panel / NN / residual / PGML) trained and measured in one run.

    Batches ``(x, cl_panel, cl, foil)`` come from
    :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule`: ``x (B, 26)`` = 13 CST/TE values,
    α in radians, log10 Re and 11 boundary-layer values (see
    :mod:`hybridzoo.datamodules.aerofoil_features`); ``cl_panel (B,)`` the Hess-Smith lift;
    ``cl (B,)`` XFOIL's lift.

    Args:
        hidden: width of every hidden layer.
        depth: hidden layers per network; PGML's are at least 2 (the physics joins after the first).
        n_curves: aerofoils drawn in the validation Cl-α figure.
        residual_sees_panel: also feed ``Cl_panel`` to the residual network (``Cl_panel + NN(x, Cl_panel)``),
            which lets it scale the inviscid lift; ``False`` is the paper's ``Cl_panel + NN(x)``.
        boundary_layer: give the residual and PGML networks the boundary-layer features as well;
            ``False``: only ``Cl_panel``, as in the paper.
        loss: ``"mse"``, ``"l1"`` or ``"huber"`` (δ = 0.05 in Cl): the training loss of every network.
        lr, weight_decay, pretrained, freeze: see :class:`~hybridzoo.zoo.base.HybridModule`.
    """

    zoo_name = "residual-aerofoil"
    monitor = "val/mae"
    mode = "min"
    #: Quadratic SINDy library over the 7 inputs (36 candidates): a cubic one (120) overfits the stall rows
    #: and its Pareto front jumps to formulas of dozens of terms.
    distillation_options: ClassVar[dict[str, dict[str, Any]]] = {"sindy": {"max_degree": 2}}

    def __init__(
        self,
        hidden: int = 64,
        depth: int = 3,
        n_curves: int = 4,
        residual_sees_panel: bool = False,
        boundary_layer: bool = True,
        loss: str = "mse",
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, pretrained=pretrained, freeze=freeze)
        check_positive_int("hidden", hidden)
        check_positive_int("depth", depth)
        check_positive_int("n_curves", n_curves)
        check_bool("residual_sees_panel", residual_sees_panel)  # "false" would be read as True
        check_bool("boundary_layer", boundary_layer)
        if not isinstance(loss, str) or loss not in _LOSSES:  # a list failed as "unhashable type"
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
        self.save_hyperparameters()
        n_layer = N_FEATURES - N_PROBLEM if boundary_layer else 0
        self.net = nn.ModuleDict(
            {
                "residual": MLPHead(N_PROBLEM + n_layer + int(residual_sees_panel), hidden, depth),
                "nn": MLPHead(N_PROBLEM, hidden, depth),
                "pgml": PGMLNet(N_PROBLEM, hidden, depth, n_physics=1 + n_layer),
            }
        )
        # Feature standardisation, fitted on the training rows at the first fit and then saved
        # with the weights, so a loaded model needs no data to predict.
        self.register_buffer("x_mean", torch.zeros(N_FEATURES))
        self.register_buffer("x_std", torch.ones(N_FEATURES))
        self.register_buffer("stats_fitted", torch.tensor(False))
        # (n_per_side, n_panels_per_side) of the data of the last fit; see data_resolution.
        self._data_resolution: tuple[int, int] | None = None
        # (alpha_min, alpha_max) in degrees and (re_min, re_max) of the data of the last fit; see data_range.
        self._data_range: tuple[tuple[float, float], tuple[float, float]] | None = None
        self.metrics = nn.ModuleDict(
            {stage: nn.ModuleDict({m: MeanAbsoluteError() for m in MODES}) for stage in ("val", "test")}
        )

    # ------------------------------------------------------------------ prediction
    def forward(self, x: torch.Tensor, cl_panel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Lift coefficient of every mode, each ``(B,)``, from ``x (B, 26)`` and ``cl_panel (B,)``."""
        check_tensor("x", x, ndim=2, last_dim=N_FEATURES, dtype=self.x_mean.dtype)
        check_tensor("cl_panel", cl_panel, ndim=1, dtype=self.x_mean.dtype)
        if cl_panel.shape[0] != x.shape[0]:
            raise ValueError(f"cl_panel {tuple(cl_panel.shape)} must have one value per row of x {tuple(x.shape)}")
        z = (x - self.x_mean) / self.x_std
        problem = z[:, :N_PROBLEM]
        layer = z[:, N_PROBLEM:] if self.hparams.boundary_layer else z[:, :0]
        zr = torch.cat([problem, layer] + ([cl_panel[:, None]] if self.hparams.residual_sees_panel else []), -1)
        return {
            "residual": cl_panel + self.net["residual"](zr),
            "pgml": self.net["pgml"](problem, torch.cat([cl_panel[:, None], layer], -1)),
            "nn": self.net["nn"](problem),
            "panel": cl_panel,
        }

    def data_resolution(self) -> tuple[int, int]:
        """``(n_per_side, n_panels_per_side)`` of the data this model was trained on.

        Panels per surface of the data set's stored contours and of the panel method, taken from the
        data module of this model's last fit (kept in its Lightning checkpoints), else from its model card's
        ``data_summary`` (what the loaded data held: a card written by ``zoo release``), else its ``data``
        (the generation settings), else the :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule`
        defaults (which the zoo config keeps).
        """
        if self._data_resolution is not None:
            return self._data_resolution
        data = self._card_data()
        return int(data.get("n_per_side", N_PER_SIDE)), int(data.get("n_panels_per_side", N_PANELS_PER_SIDE))

    def data_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((alpha_min, alpha_max), (re_min, re_max))`` of the data this model was trained on, α in degrees.

        From the data module of the last fit (kept in Lightning checkpoints), else the model card's
        ``data_summary``, else its ``data``, else the :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule`
        defaults.
        """
        if self._data_range is not None:
            return self._data_range
        data = self._card_data()
        alphas = data.get("alpha_range_deg") or data.get("alphas") or DEFAULT_ALPHAS
        reynolds = data.get("reynolds") or DEFAULT_REYNOLDS
        return (float(min(alphas)), float(max(alphas))), (float(min(reynolds)), float(max(reynolds)))

    def _card_data(self) -> dict[str, Any]:
        """The card's ``data`` settings, overridden by what its ``data_summary`` says the loaded data held.

        The settings say how data would be generated; a data set read from a file (the shipped one, or a
        path) holds what its file holds, which the summary records.
        """
        card = self.card or {}
        return {**(card.get("data") or {}), **(card.get("data_summary") or {})}

    def _warn_if_untrained(self, what: str) -> None:
        if not bool(self.stats_fitted):
            warnings.warn(f"{what} on a model whose feature statistics were never fitted (not trained): the network "
                          "modes are untrained and unscaled; only 'panel' is meaningful", RuntimeWarning, stacklevel=3)

    def _warn_outside_data(self, alpha: torch.Tensor, re: torch.Tensor) -> None:
        (a_lo, a_hi), (re_lo, re_hi) = self.data_range()
        deg = torch.rad2deg(alpha.detach().double())
        outside = []
        if deg.numel() and (float(deg.min()) < a_lo - 1e-6 or float(deg.max()) > a_hi + 1e-6):
            outside.append(f"alpha spans {float(deg.min()):.3g} to {float(deg.max()):.3g} deg, the training data "
                           f"{a_lo:.3g} to {a_hi:.3g} (alpha is in radians)")
        if re.numel() and (float(re.min()) < re_lo * (1 - 1e-6) or float(re.max()) > re_hi * (1 + 1e-6)):
            outside.append(f"re spans {float(re.min()):.3g} to {float(re.max()):.3g}, the training data "
                           f"{re_lo:.3g} to {re_hi:.3g}")
        if outside:
            warnings.warn("predict_cl outside the training data: " + "; ".join(outside)
                          + ". The learned modes extrapolate there.", UserWarning, stacklevel=3)

    @torch.no_grad()
    def predict_cl(
        self,
        coords: torch.Tensor,
        alpha: torch.Tensor,
        re: torch.Tensor,
        n_panels_per_side: int | None = None,
        n_per_side: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Lift coefficients of raw aerofoils at angles ``alpha`` and Reynolds numbers ``re``.

        The contours go through what the training data went through
        (:mod:`~hybridzoo.datamodules.aerofoil_features`): normalised, re-panelled to ``n_per_side`` and
        checked as the data build does, rounded to float32 as the data set stores them, then re-panelled
        to the panel method's ``n_panels_per_side``. The boundary-layer inputs depend on these panels, so
        an aerofoil the data set holds gets the inputs, and the lift, it had in training.

        Args:
            coords: ``(B, K, 2)`` contours in Selig order (any chord/position: they are normalised).
            alpha: ``(B, A)`` angles of attack in radians, w.r.t. the line from the trailing edge to the
                contour point farthest from it (the data's normalisation: for a cambered NACA section up to
                a few tenths of a degree off its nominal chord line).
            re: ``(B, A)`` chord Reynolds numbers.
            n_panels_per_side: panels per surface of the panel method; ``None``: the training data's
                (:meth:`data_resolution`).
            n_per_side: panels per surface of the data set's stored contours; ``None``: the training data's.

        Returns:
            ``{mode: (B, A)}`` for the four modes, on the model's device.

        Warns:
            UserWarning: an angle or Reynolds number outside the training data's range (:meth:`data_range`).

        Raises:
            ValueError: bad shapes, or a contour the data set would not admit (see
                :func:`~hybridzoo.datamodules.aerofoil_features.stored_contours`).
        """
        coords = check_tensor("coords", coords, ndim=3, last_dim=2)
        alpha = check_tensor("alpha", alpha, ndim=2)
        re = check_tensor("re", re, ndim=2, positive=True)
        if alpha.shape != re.shape or alpha.shape[0] != coords.shape[0]:
            raise ValueError(
                f"alpha {tuple(alpha.shape)} and re {tuple(re.shape)} must both be (B, A) "
                f"with B = {coords.shape[0]}"
            )
        trained_n_per_side, trained_n_panels = self.data_resolution()
        n_panels_per_side = check_panels_per_side(
            "n_panels_per_side", trained_n_panels if n_panels_per_side is None else n_panels_per_side
        )
        n_per_side = check_panels_per_side("n_per_side", trained_n_per_side if n_per_side is None else n_per_side)
        self._warn_if_untrained("predict_cl")
        self._warn_outside_data(alpha, re)
        b, a = alpha.shape
        if b * a == 0:  # no aerofoil or no condition: nothing to predict
            return {m: self.x_mean.new_zeros(b, a) for m in MODES}
        shapes = panel_contours(stored_contours(coords, n_per_side), n_panels_per_side)
        x, cl_panel = aerofoil_inputs(shapes, alpha.double(), re.double())
        # The physics runs where the contours are, in float64; the network where the model is.
        out = self(x.reshape(b * a, -1).to(self.x_mean), cl_panel.reshape(-1).to(self.x_mean))
        return {k: v.reshape(b, a) for k, v in out.items()}

    # ------------------------------------------------------------------ training
    def configure_optimizers(self) -> Any:
        """Use the base optimiser with a per-step cosine decay over the run (``max_epochs`` or ``max_steps``)."""
        return self.with_cosine_schedule(super().configure_optimizers())

    def on_fit_start(self) -> None:
        """Note the data's panel resolution and range (for :meth:`predict_cl`); fit the feature scaling (once)."""
        dm = getattr(self.trainer, "datamodule", None)
        if hasattr(dm, "stored_n_per_side"):  # an AerofoilDataModule, set up
            self._data_resolution = (int(dm.stored_n_per_side), int(dm.hparams.n_panels_per_side))
        if getattr(dm, "alphas_deg", None) and getattr(dm, "reynolds", None):
            self._data_range = ((min(dm.alphas_deg), max(dm.alphas_deg)), (min(dm.reynolds), max(dm.reynolds)))
        if bool(self.stats_fitted):
            return
        if dm is None or "train" not in getattr(dm, "datasets", {}):
            raise ValueError(
                "ResidualAerofoil needs an AerofoilDataModule (datamodule=...) to fit its feature scaling"
            )
        x = dm.datasets["train"].tensors[0].to(self.x_mean)
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-6))
        self.stats_fitted.fill_(True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the data's panel resolution and range (:meth:`data_resolution`, :meth:`data_range`) in checkpoints."""
        super().on_save_checkpoint(checkpoint)
        if self._data_resolution is not None:
            checkpoint["aerofoil_data_resolution"] = list(self._data_resolution)
        if self._data_range is not None:
            checkpoint["aerofoil_data_range"] = [list(r) for r in self._data_range]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the data's panel resolution and range saved by :meth:`on_save_checkpoint`."""
        super().on_load_checkpoint(checkpoint)
        if "aerofoil_data_resolution" in checkpoint:
            n_stored, n_panels = checkpoint["aerofoil_data_resolution"]
            self._data_resolution = (int(n_stored), int(n_panels))
        if "aerofoil_data_range" in checkpoint:
            (a_lo, a_hi), (re_lo, re_hi) = checkpoint["aerofoil_data_range"]
            self._data_range = ((float(a_lo), float(a_hi)), (float(re_lo), float(re_hi)))

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Sum of the three networks' Cl losses (their parameters are disjoint, so they do not interact)."""
        x, cl_panel, cl, _ = batch
        pred = self(x, cl_panel)
        fn = _LOSSES[self.hparams.loss]
        losses = {m: fn(pred[m], cl) for m in ("residual", "pgml", "nn")}
        loss = sum(losses.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        for m, v in losses.items():
            self.log(f"train/loss_{m}", v, batch_size=x.shape[0])
        return loss

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, ...]) -> None:
        x, cl_panel, cl, _ = batch
        pred = self(x, cl_panel)
        for m in MODES:
            self.metrics[stage][m].update(pred[m], cl)
        if stage == "val":
            self.log(
                "val/loss", torch.mean((pred["residual"] - cl) ** 2), batch_size=x.shape[0], sync_dist=True
            )
        metrics = self.metrics[stage]
        self.log_with_baselines(
            stage,
            "mae",
            metrics["residual"],
            {m: metrics[m] for m in ("pgml", "nn", "panel")},
            on_step=False,
            on_epoch=True,
            batch_size=x.shape[0],
        )

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Mean absolute Cl error of each mode on unseen aerofoils: ``val/mae``, ``val/mae_<mode>``."""
        self._eval_step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """``test/mae`` (residual), ``test/mae_pgml``, ``test/mae_nn``, ``test/mae_panel``."""
        self._eval_step("test", batch)

    @torch.no_grad()
    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> dict[str, torch.Tensor]:
        """Every mode's Cl ``{mode: (B,)}`` of a batch ``(x, cl_panel, ...)`` (the labels, if any, are not read)."""
        x, cl_panel = batch[0], batch[1]
        if batch_idx == 0:
            self._warn_if_untrained("predict")
        return self(x, cl_panel)

    # ------------------------------------------------------------------ pictures
    def on_validation_epoch_end(self) -> None:
        """TensorBoard: Cl-α curves of a few validation aerofoils and the error histogram, every 10 epochs."""
        last = self.trainer.max_epochs is not None and self.current_epoch + 1 >= self.trainer.max_epochs
        if self.tensorboard is None or (self.current_epoch % 10 != 0 and not last):
            return
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or "val" not in getattr(dm, "datasets", {}):
            return
        x, cl_panel, cl, foil = dm.datasets["val"].tensors
        # the data set's float32 in the model's dtype (a 64-true fit), the aerofoil indices only moved
        x, cl_panel, cl, foil = x.to(self.x_mean), cl_panel.to(self.x_mean), cl.to(self.x_mean), foil.to(self.device)
        with torch.no_grad():
            pred = self(x, cl_panel)
        names = getattr(dm, "names", None)
        self.log_figure("val/cl_alpha", cl_alpha_figure(x, cl, pred, foil, names, self.hparams.n_curves))
        self.log_figure("val/error_histogram", error_histogram(cl, pred))

    # ------------------------------------------------------------------ distillation
    def distillation_data(self, datamodule: Any) -> Any:
        """The learned correction ``Cl_hybrid − Cl_panel`` at the training rows over interpretable inputs.

        See :func:`hybridzoo.zoo.aerofoil_distil.distillation_data`.
        """
        from hybridzoo.zoo import aerofoil_distil

        return aerofoil_distil.distillation_data(self, datamodule)

    def with_terms(self, modules: dict[str, nn.Module]) -> Any:
        """A symbolic model ``Cl_panel + modules["correction"]`` (see :mod:`hybridzoo.zoo.aerofoil_distil`)."""
        from hybridzoo.zoo import aerofoil_distil

        return aerofoil_distil.with_terms(self, modules)

    def distillation_metrics(self, symbolic: Any, datamodule: Any, fine_tune_epochs: int) -> dict[str, float]:
        """Test MAE of panel / hybrid / symbolic and the fraction of the hybrid's gain the formula keeps."""
        from hybridzoo.zoo import aerofoil_distil

        return aerofoil_distil.distillation_metrics(self, symbolic, datamodule, fine_tune_epochs)

    # ------------------------------------------------------------------ release
    def release_metrics(self, trainer: Any, datamodule: Any) -> dict[str, float]:
        """The distilled formula's errors (:mod:`~hybridzoo.zoo.aerofoil_distil`) and ``test/mae_neuralfoil``.

        NeuralFoil (if installed) is run on the same test rows, from the stored contours XFOIL labelled (not
        the panel method's re-panelled ones), and scored against XFOIL.
        """
        from hybridzoo.zoo.distil import distil

        metrics = dict(distil(self, datamodule, backend="auto").metrics)
        try:
            x, _, cl, foil = datamodule.datasets["test"].tensors
            stored = torch.from_numpy(datamodule.load()["coords"]).double()
            pred = neuralfoil_cl(stored[foil], x[:, ALPHA].double(), 10 ** x[:, LOG_RE].double())
        except ImportError:
            return metrics
        metrics["test/mae_neuralfoil"] = float((pred.float() - cl).abs().mean())
        return metrics
