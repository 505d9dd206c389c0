"""Symbolic distillation of the residual aerofoil's learned lift correction.

The residual model predicts ``Cl = Cl_panel + NN(shape, α, Re, Cl_panel)``. Distillation replaces the network
by a formula ``ΔCl = f(α, log_re, t, x_t, m, x_m, cl_panel)`` of a few interpretable inputs (see
:data:`INPUT_NAMES`), fitted by :func:`hybridzoo.zoo.distil.distil` to the network's correction
``ΔCl = Cl_hybrid − Cl_panel`` at the training rows, and measures on the unseen test aerofoils how much of the
network's gain over the panel method the formula keeps.

The shape features are read off the CST description every data row already carries (no contour needed), so
the symbolic model takes the same ``(x, cl_panel)`` inputs as the hybrid and is a drop-in replacement.
:class:`~hybridzoo.zoo.residual_aerofoil.ResidualAerofoil` delegates its three distillation methods here.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import sympy
import torch
from hybridzoo.datamodules.aerofoil import AerofoilDataModule
from hybridzoo.datamodules.aerofoil_features import ALPHA, CST_ORDER, LOG_RE, N_CST, N_FEATURES
from hybridzoo.physics.airfoil import cst_surface
from hybridzoo.physics.validation import check_positive_int, check_tensor
from hybridzoo.zoo.base import HybridModule
from hybridzoo.zoo.distil import DistillationData, fit_constants
from hybridzoo.zoo.residual_aerofoil import _LOSSES
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.ude_networks import TermStack
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MeanAbsoluteError

if TYPE_CHECKING:
    from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil

#: The formula's inputs, in column order: angle of attack (radians), log10(Re / 10^6), max thickness t/c and
#: its chordwise position x/c, signed max camber (chord units) and its position x/c, and the panel method's lift.
INPUT_NAMES = ("alpha", "log_re", "t", "x_t", "m", "x_m", "cl_panel")
#: The one learned term of the residual model.
TERM = "correction"
#: Log10 of the reference Reynolds number: centring log Re keeps the polynomial library well conditioned
#: (``log_re`` and its powers are otherwise almost collinear with the constant), which STLSQ needs.
LOG_RE_REF = 6.0
#: Camber scale (chord units) below which the camber position fades to 0: ``x_m`` is weighted by
#: ``m² / (m² + CAMBER_FADE²)``, so that a symmetric section, whose camber "peak" is rounding noise, has
#: ``x_m = 0`` while ``x_m`` stays continuous in the shape (a hard threshold made it jump by a third of
#: the chord, and the distilled formula's lift with it).
CAMBER_FADE = 1e-3


# ---------------------------------------------------------------------------------------- features
def _peak(values: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum and its position of ``values (B, M)`` sampled at stations ``psi (M,)``, refined by a parabola."""
    i = values.argmax(-1).clamp(1, psi.numel() - 2)
    x0, x1, x2 = psi[i - 1], psi[i], psi[i + 1]
    y0, y1, y2 = (values.gather(-1, (i + k)[:, None])[:, 0] for k in (-1, 0, 1))
    # Parabola through the three samples around the grid maximum: a sub-station estimate of the peak, so the
    # position does not jump between stations when the shape changes slightly.
    d = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / d
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / d
    c = y1 - a * x1**2 - b * x1
    concave = a < 0
    xv = torch.where(concave, -b / (2 * torch.where(concave, a, -1.0)), x1)
    xv = torch.minimum(torch.maximum(xv, x0), x2)
    return torch.where(concave, a * xv**2 + b * xv + c, y1), xv


def shape_features(cst: torch.Tensor, n_stations: int = 201) -> torch.Tensor:
    """Max thickness, camber and their chordwise positions of CST-described aerofoils.

    The surfaces are evaluated at ``n_stations`` cosine-spaced chord stations; thickness is the vertical
    distance between the surfaces and camber their mean, in the chord frame of the CST fit (for the data set:
    the chord line from the leading edge to the trailing edge, the reference of α).

    Args:
        cst: ``(..., 13)`` CST values as in :func:`hybridzoo.physics.airfoil.cst_fit` (order 5): 6 upper and
            6 lower Bernstein weights, then the trailing-edge thickness (chord units).
        n_stations: chord stations used to locate the maxima.

    Returns:
        ``(..., 4)``: ``t`` (max thickness / chord), ``x_t`` (its position / chord), ``m`` (the camber of
        largest magnitude / chord, negative for a section cambered downwards) and ``x_m`` (its position /
        chord, faded to 0 for a nearly symmetric aerofoil, see :data:`CAMBER_FADE`).
    """
    cst = check_tensor("cst", cst, min_ndim=1, last_dim=N_CST)
    n = check_positive_int("n_stations", n_stations)
    if n < 3:
        raise ValueError(f"n_stations must be at least 3, got {n}")
    flat = cst.reshape(-1, N_CST)
    beta = torch.linspace(0.0, math.pi, n, dtype=cst.dtype, device=cst.device)
    psi = 0.5 * (1.0 - torch.cos(beta))  # clustered at LE and TE, where the surfaces curve most
    grid = psi.expand(flat.shape[0], -1)
    half_te = 0.5 * flat[:, N_CST - 1]
    upper = cst_surface(flat[:, : CST_ORDER + 1], grid, half_te)
    lower = cst_surface(flat[:, CST_ORDER + 1 : N_CST - 1], grid, -half_te)
    t, x_t = _peak(upper - lower, psi)
    camber = 0.5 * (upper + lower)
    # the extreme of |camber|, with its sign: a section cambered downwards (or flipped) has m < 0
    sign = torch.where(camber.gather(-1, camber.abs().argmax(-1, keepdim=True))[:, 0] < 0, -1.0, 1.0).to(camber)
    m, x_m = _peak(sign[:, None] * camber, psi)
    m = sign * m
    x_m = x_m * m**2 / (m**2 + CAMBER_FADE**2)
    return torch.stack([t, x_t, m, x_m], -1).reshape(*cst.shape[:-1], 4)


def symbolic_inputs(x: torch.Tensor, cl_panel: torch.Tensor) -> torch.Tensor:
    """The formula's inputs (:data:`INPUT_NAMES`) of data rows.

    Args:
        x: ``(B, N_FEATURES)`` rows of :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule`: 13 CST
            values, α in radians, log10 Re, boundary-layer features (unused here).
        cl_panel: ``(B,)`` Hess-Smith lift coefficients of the rows.

    Returns:
        ``(B, 7)``: α (radians), log10(Re / 10^6), t, x_t, m, x_m (chord units), Cl_panel.
    """
    check_tensor("x", x, ndim=2, last_dim=N_FEATURES)
    check_tensor("cl_panel", cl_panel, ndim=1)
    if cl_panel.shape[0] != x.shape[0]:
        raise ValueError(f"cl_panel {tuple(cl_panel.shape)} must have one value per row of x {tuple(x.shape)}")
    shape = shape_features(x[:, :N_CST])
    log_re = x[:, LOG_RE] - LOG_RE_REF
    return torch.cat([x[:, ALPHA, None], log_re[:, None], shape, cl_panel[:, None].to(x.dtype)], -1)


# ---------------------------------------------------------------------------------------- symbolic model
class SymbolicAerofoil(HybridModule):
    """``Cl = Cl_panel + f(α, log_re, t, x_t, m, x_m, Cl_panel)`` with a distilled formula ``f``.

    Takes the hybrid's batches ``(x, cl_panel, cl, foil)``, where ``x`` may also be the ``(B, 7)`` formula
    inputs of :func:`symbolic_inputs` (computed once by :func:`fine_tune`, as the shape features do not
    change while the constants train). ``f`` sits in ``net.terms["correction"]`` (a
    :class:`~hybridzoo.zoo.symbolic.SympyModule` whose constants train, or any module of ``(B, 7) → (B,)``).
    Training fine-tunes ``f`` against XFOIL's lift with full-batch L-BFGS (one L-BFGS step per epoch, so
    feed the training rows as a single batch). Logs ``<stage>/mae`` (symbolic) and ``<stage>/mae_panel``.

    Args:
        correction: the formula module.
        loss: ``"mse"``, ``"l1"`` or ``"huber"``: the fine-tuning loss (the hybrid's own by default).
        lr: L-BFGS step size.
        max_iter: L-BFGS iterations per step (strong-Wolfe line search).
    """

    monitor = "val/mae"
    mode = "min"

    def __init__(self, correction: nn.Module, loss: str = "mse", lr: float = 1.0, max_iter: int = 20) -> None:
        super().__init__(lr=lr)
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
        check_positive_int("max_iter", max_iter)
        self.save_hyperparameters(ignore=["correction"])
        self.net = TermStack({TERM: correction})
        self.metrics = nn.ModuleDict(
            {stage: nn.ModuleDict({m: MeanAbsoluteError() for m in ("symbolic", "panel")}) for stage in ("val", "test")}
        )

    def forward(self, x: torch.Tensor, cl_panel: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"symbolic": (B,), "panel": (B,)}`` lift coefficients from ``x`` and ``cl_panel (B,)``.

        ``x`` is ``(B, N_FEATURES)`` data rows or ``(B, 7)`` formula inputs from :func:`symbolic_inputs`.
        """
        precomputed = x.ndim == 2 and x.shape[-1] == len(INPUT_NAMES)
        delta = self.net.terms[TERM](x if precomputed else symbolic_inputs(x, cl_panel))
        return {"symbolic": cl_panel + delta, "panel": cl_panel}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """L-BFGS: the formula has a handful of constants, so a quasi-Newton full-batch fit converges in a few steps."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: the formula has no constants, or everything is frozen")
        return torch.optim.LBFGS(params, lr=self._base_lr, max_iter=self.hparams.max_iter,
                                 line_search_fn="strong_wolfe", history_size=20)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Loss of the symbolic lift against XFOIL's."""
        x, cl_panel, cl, _ = batch
        loss = _LOSSES[self.hparams.loss](self(x, cl_panel)["symbolic"], cl)
        self.log("train/loss", loss, batch_size=x.shape[0])
        return loss

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, ...]) -> None:
        x, cl_panel, cl, _ = batch
        pred = self(x, cl_panel)
        metrics = self.metrics[stage]
        for m in ("symbolic", "panel"):
            metrics[m].update(pred[m], cl)
        self.log_with_baselines(stage, "mae", metrics["symbolic"], {"panel": metrics["panel"]}, on_step=False,
                                on_epoch=True, batch_size=x.shape[0])

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """``val/mae`` (symbolic) and ``val/mae_panel``."""
        self._eval_step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """``test/mae`` (symbolic) and ``test/mae_panel``."""
        self._eval_step("test", batch)


# ---------------------------------------------------------------------------------------- distillation
def _training_rows(datamodule: Any) -> TensorDataset:
    if not isinstance(datamodule, AerofoilDataModule):
        raise TypeError(f"datamodule must be an AerofoilDataModule, got {type(datamodule).__name__}")
    datamodule.setup("fit")
    rows = getattr(datamodule, "datasets", {}).get("train")
    if not isinstance(rows, TensorDataset) or len(rows.tensors) != 4:
        raise TypeError(
            f"datamodule must be an AerofoilDataModule with a 'train' split, got {type(datamodule).__name__}"
        )
    return rows


def distillation_data(model: ResidualAerofoil, datamodule: Any) -> DistillationData:
    """The learned correction ``ΔCl = Cl_hybrid − Cl_panel`` at every training row, over :data:`INPUT_NAMES`.

    Args:
        model: a trained residual aerofoil model.
        datamodule: its :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule`.

    Returns:
        ``inputs (N, 7)`` (float64; α in radians, ``log_re`` = log10(Re / 10^6)) and ``targets["correction"]
        (N,)`` in Cl units, N the number of training rows.
    """
    if not bool(model.stats_fitted):
        raise ValueError("the model is untrained (its feature scaling was never fitted): train or load it first")
    x, cl_panel, _, _ = _training_rows(datamodule).tensors
    x, cl_panel = x.to(model.x_mean), cl_panel.to(model.x_mean)
    with torch.no_grad():
        correction = model(x, cl_panel)["residual"] - cl_panel
    inputs = symbolic_inputs(x.double(), cl_panel.double())  # float64: the least squares see exact features
    return DistillationData(inputs.cpu(), list(INPUT_NAMES), {TERM: correction.double().cpu()})


def with_terms(model: ResidualAerofoil, modules: dict[str, nn.Module]) -> SymbolicAerofoil:
    """A :class:`SymbolicAerofoil` whose correction is ``modules["correction"]``, fine-tuned with the model's loss."""
    if set(modules) != {TERM}:
        raise ValueError(f"modules must replace exactly the term {[TERM]}, got {sorted(modules)}")
    return SymbolicAerofoil(modules[TERM], loss=model.hparams.loss).to(model.x_mean)  # device and dtype


def fine_tune(symbolic: SymbolicAerofoil, rows: TensorDataset, epochs: int) -> None:
    """Fit the formula's constants to XFOIL on ``rows`` with the Trainer, ``epochs`` full-batch L-BFGS steps.

    Runs on the formula's device, where it stays.

    Keeps the distilled constants (with a warning) if the fit diverges.
    """
    if not any(p.requires_grad for p in symbolic.parameters()):
        return  # a constant-free formula (e.g. 0) has nothing to tune
    before = {k: v.detach().clone() for k, v in symbolic.state_dict().items()}
    x, cl_panel, cl, foil = (t.to(symbolic.device) for t in rows.tensors)
    inputs = symbolic_inputs(x.to(cl_panel.dtype), cl_panel)  # once: the shape features do not change
    # One batch: L-BFGS needs the same objective at every call of its closure.
    loader = DataLoader(TensorDataset(inputs, cl_panel, cl, foil), batch_size=len(rows))
    symbolic.train()
    with warnings.catch_warnings():  # a one-batch loader and no validation are intended: Lightning's hints are noise
        warnings.filterwarnings("ignore", message=".*(num_workers|log_every_n_steps|val_dataloader).*")
        fit_constants(symbolic, epochs, train_dataloaders=loader)
    if not all(torch.isfinite(p).all() for p in symbolic.parameters()):
        warnings.warn("fine-tuning the symbolic model diverged; keeping the regression's constants", stacklevel=2)
        symbolic.load_state_dict(before)


def _gain_kept(mae_panel: float, mae_hybrid: float, mae: float) -> float:
    """Fraction of the hybrid's MAE reduction over the panel method that ``mae`` keeps (NaN if there is none)."""
    gain = mae_panel - mae_hybrid
    return (mae_panel - mae) / gain if gain > 0 else float("nan")


def distillation_metrics(
    model: ResidualAerofoil, symbolic: SymbolicAerofoil, datamodule: Any, fine_tune_epochs: int
) -> dict[str, float]:
    """Measure the symbolic model against the panel method and the hybrid on the test aerofoils.

    Optionally fine-tunes the formula's constants first (``fine_tune_epochs`` full-batch L-BFGS steps on the
    training rows, against XFOIL, with the hybrid's loss).

    Returns:
        ``test/mae_panel``, ``test/mae`` (hybrid), ``test/mae_symbolic`` (the returned symbolic model) and
        ``test/mae_symbolic_distilled`` (the formula as distilled, before fine-tuning): Cl mean absolute
        errors against XFOIL; ``distil/gain_kept`` and ``distil/gain_kept_distilled``:
        ``(mae_panel − mae_symbolic) / (mae_panel − mae_hybrid)``; ``distil/mae_vs_hybrid``: mean
        ``|Cl_symbolic − Cl_hybrid|`` on the test rows; ``distil/terms_correction``: terms in the formula.
    """
    rows = _training_rows(datamodule)
    datamodule.setup("test")
    x, cl_panel, cl, _ = (t.to(model.x_mean) for t in datamodule.datasets["test"].tensors)

    def mae_symbolic() -> tuple[float, torch.Tensor]:
        symbolic.eval()
        with torch.no_grad():
            pred = symbolic(x, cl_panel)["symbolic"]
        return float((pred - cl).abs().mean()), pred

    with torch.no_grad():
        hybrid = model(x, cl_panel)["residual"]
    mae_panel, mae_hybrid = float((cl_panel - cl).abs().mean()), float((hybrid - cl).abs().mean())
    mae_distilled, _ = mae_symbolic()
    if fine_tune_epochs > 0:
        fine_tune(symbolic, rows, fine_tune_epochs)
    mae_final, pred = mae_symbolic()
    metrics = {
        "test/mae_panel": mae_panel,
        "test/mae": mae_hybrid,
        "test/mae_symbolic": mae_final,
        "test/mae_symbolic_distilled": mae_distilled,
        "distil/gain_kept": _gain_kept(mae_panel, mae_hybrid, mae_final),
        "distil/gain_kept_distilled": _gain_kept(mae_panel, mae_hybrid, mae_distilled),
        "distil/mae_vs_hybrid": float((pred - hybrid).abs().mean()),
    }
    term = symbolic.net.terms[TERM]
    if isinstance(term, SympyModule):
        expr = term.expression()
        metrics["distil/terms_correction"] = 0.0 if expr == 0 else float(len(sympy.Add.make_args(expr)))
    return metrics
