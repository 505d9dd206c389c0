"""Universal differential equation for Lotka-Volterra (Rackauckas et al., 2020).

The prey's growth ``alpha*x`` is known; the interaction terms are unknown and learned:

    dx/dt = alpha*x + NN_1(x, y; theta_1)
    dy/dt = NN_2(x, y; theta_2) - theta_3*y

with ``theta_3`` a learnable physical parameter (the predator's death rate). The model is trained
end to end through a fixed-step RK4 integrator on whole trajectories, first with Adam and then with
L-BFGS. For the true system ``NN_1 = -beta*x*y``, ``NN_2 = gamma*x*y`` and ``theta_3 = delta``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from hybridzoo.physics.integrators import DEFAULT_MAX_EVALS, FIXED_METHODS, odeint
from hybridzoo.physics.validation import check_positive_int, check_positive_number, check_tensor
from hybridzoo.zoo.base import Freeze, HybridModule
from hybridzoo.zoo.ude_networks import GroupedMLP, TermStack
from torch import nn

TERMS = ("prey", "predator")
#: names of the state columns in symbolic terms: prey ``x``, predator ``y``
TERM_INPUTS = ("x", "y")


def _check_method(method: object) -> str:
    """``method`` if :func:`~hybridzoo.physics.integrators.odeint` knows it, else a ``ValueError``/``TypeError``."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method in FIXED_METHODS:
        return method
    from torchdiffeq._impl.odeint import SOLVERS

    if method not in SOLVERS:
        raise ValueError(f"method must be one of {FIXED_METHODS} or a torchdiffeq method {sorted(SOLVERS)}, "
                         f"got {method!r}")
    return method


def symbolic_terms(terms: object) -> TermStack:
    """The :class:`~hybridzoo.zoo.ude_networks.TermStack` of ``terms``: ``{"prey": str, "predator": str}``.

    Each string is a formula of ``x`` (prey) and ``y`` (predator), e.g. ``"-0.4*x*y"``, turned into a
    :class:`~hybridzoo.zoo.symbolic.SympyModule` whose numeric constants are parameters. The same strings
    always give the same modules with their constants in the same order, so saved constants load back.
    """
    from hybridzoo.zoo.symbolic import SympyModule

    if not isinstance(terms, Mapping):
        raise TypeError(f"terms must be a dict {{'prey': str, 'predator': str}}, got {type(terms).__name__}")
    if set(terms) != set(TERMS):
        raise ValueError(f"terms must give exactly the terms {list(TERMS)}, got {sorted(terms)}")
    modules = {}
    for k in TERMS:
        if not isinstance(terms[k], str):
            raise TypeError(f"terms[{k!r}] must be a string (a formula of x and y), got {type(terms[k]).__name__}")
        try:
            modules[k] = SympyModule(terms[k], TERM_INPUTS)
        except Exception as err:  # sympy parse errors are of many types
            raise ValueError(f"terms[{k!r}]={terms[k]!r} is not a formula of x and y: {err}") from None
    return TermStack(modules)


class UDEPhysics(nn.Module):
    """The learnable physical parameter: the predator death rate ``theta_3`` (1/time)."""

    def __init__(self, delta_init: float) -> None:
        super().__init__()
        self.theta3 = nn.Parameter(torch.tensor(float(delta_init)))


class UDELotkaVolterra(HybridModule):
    """The UDE for Lotka-Volterra as a LightningModule.

    Batches come from :class:`~hybridzoo.datamodules.lotka_volterra.LotkaVolterraDataModule`:
    ``t (B, T)``, ``obs``/``clean`` ``(B, T, 2)``, ``y0 (B, 2)``, ``n_train (B,)``.

    Training minimises the mean squared trajectory error over the training window (each species
    scaled by its mean size). Because the untrained model grows exponentially (``dx/dt = alpha*x``),
    the fitted window grows from ``window_start`` of the training window to all of it over the first
    ``window_epochs`` epochs of the L-BFGS phase, the usual curriculum for fitting neural ODEs to long
    trajectories (Adam only has to bring the model near a good basin on the short window).

    Fine-tuning: that schedule is meant for random initial weights; on trained ones, Adam at ``lr`` on the
    short window would first undo the fit. A model holding trained weights, loaded by
    :func:`~hybridzoo.zoo.load_pretrained` or by ``pretrained=NAME`` (see :meth:`on_pretrained_loaded`),
    is marked as trained (:attr:`fine_tuning`; a copy made by :meth:`with_terms` keeps the mark). A fit then
    starts where the schedule ends: L-BFGS on the whole training window from the first epoch (Adam on the
    whole window where ``lbfgs_epochs=0``), for at most ``lbfgs_epochs`` epochs (``adam_epochs`` without
    L-BFGS). The mark is kept in Lightning checkpoints, so a resumed fine-tuning run goes on fine-tuning;
    a run from scratch, resumed or not, never sets it.

    Args:
        alpha: the known prey growth rate (1/time).
        delta_init: initial value of the learnable predator death rate ``theta_3``.
        hidden, depth, activation: size of each of the two MLPs.
        state_scale, term_scale: typical population and rate magnitudes (network input/output scaling), > 0.
        method: ``"rk4"`` or ``"euler"`` (ours, fixed step) or a torchdiffeq method (e.g. ``"dopri5"``).
        substeps: fixed steps per observation interval.
        max_evals: a torchdiffeq method's budget of vector-field evaluations per integration (``None``: no
            limit); past it the integration raises
            :class:`~hybridzoo.physics.integrators.IntegrationError` instead of taking, and when training
            storing, ever more steps on a stiff field.
        rtol, atol: a torchdiffeq method's relative and absolute tolerances (> 0; ignored by the fixed-step
            methods).
        adam_epochs: epochs (one full-batch step each) of Adam, then ``lbfgs_epochs`` epochs of L-BFGS.
        lbfgs_epochs: 0 disables the L-BFGS phase.
        lbfgs_lr, lbfgs_max_iter: L-BFGS step size and iterations (>= 1) per epoch (strong-Wolfe line search).
        window_start: fraction of the training window fitted at epoch 0 (1 disables the curriculum).
        window_epochs: L-BFGS epochs over which the fitted window grows to the whole training window.
        grad_clip: gradient-norm clip of the Adam phase (0 disables).
        lr, weight_decay, pretrained, freeze: see :class:`~hybridzoo.zoo.base.HybridModule`.
        terms: formulas that replace the two MLPs, ``{"prey": "-0.4*x*y", "predator": "0.1*x*y"}``
            (strings of ``x`` and ``y``, see :func:`symbolic_terms`), or ``None`` for the MLPs (then
            ``hidden``, ``depth``, ``activation``, ``state_scale`` and ``term_scale`` shape them).
            :meth:`with_terms` sets it, so that a distilled model's Lightning checkpoint rebuilds it.
    """

    zoo_name = "ude-lotka-volterra"
    monitor = "val/traj_mse"
    mode = "min"

    def __init__(
        self,
        alpha: float = 1.1,
        delta_init: float = 0.2,
        hidden: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        state_scale: float = 10.0,
        term_scale: float = 10.0,
        method: str = "rk4",
        substeps: int = 1,
        max_evals: int | None = DEFAULT_MAX_EVALS,
        rtol: float = 1e-7,
        atol: float = 1e-9,
        adam_epochs: int = 100,
        lbfgs_epochs: int = 30,
        lbfgs_lr: float = 1.0,
        lbfgs_max_iter: int = 20,
        window_start: float = 0.2,
        window_epochs: int = 15,
        grad_clip: float = 10.0,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        pretrained: str | None = None,
        freeze: Freeze = "none",
        terms: dict[str, str] | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, pretrained=pretrained, freeze=freeze)
        check_positive_number("alpha", alpha)
        check_positive_number("delta_init", delta_init, allow_zero=True)
        check_positive_int("substeps", substeps)
        if max_evals is not None:
            check_positive_int("max_evals", max_evals)
        check_positive_number("rtol", rtol)
        check_positive_number("atol", atol)
        check_positive_number("state_scale", state_scale)
        check_positive_number("term_scale", term_scale)
        _check_method(method)
        check_positive_number("lbfgs_lr", lbfgs_lr)
        check_positive_int("lbfgs_max_iter", lbfgs_max_iter)
        check_positive_number("grad_clip", grad_clip, allow_zero=True)
        for k, v in (("adam_epochs", adam_epochs), ("lbfgs_epochs", lbfgs_epochs), ("window_epochs", window_epochs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{k} must be a non-negative int, got {v!r}")
        if adam_epochs + lbfgs_epochs == 0:
            raise ValueError("adam_epochs + lbfgs_epochs must be positive")
        if not 0 < window_start <= 1:
            raise ValueError(f"window_start must be in (0, 1], got {window_start!r}")
        if terms is not None:
            net: nn.Module = symbolic_terms(terms)
            terms = {k: terms[k] for k in TERMS}  # a plain dict in the hyperparameters
        else:
            net = GroupedMLP(len(TERMS), 2, hidden, depth, activation, state_scale, term_scale)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.alpha = float(alpha)
        self.net = net
        self.physics = UDEPhysics(delta_init)

    # ------------------------------------------------------------------ the hybrid model
    def learned_terms(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NN terms at ``state (..., 2)`` (taken in the model's dtype): ``{"prey": NN_1, "predator": NN_2}``."""
        out = self.net(check_tensor("state", state, last_dim=2).to(self.dtype))
        return {k: out[..., i] for i, k in enumerate(TERMS)}

    def _rates(self) -> torch.Tensor:
        """``(alpha, -theta_3)``: the linear, known part of the vector field."""
        return torch.stack((self.physics.theta3.new_tensor(self.alpha), -self.physics.theta3))

    def vector_field(self, state: torch.Tensor, use_net: bool = True,
                     rates: torch.Tensor | None = None) -> torch.Tensor:
        """``d(x, y)/dt`` of the hybrid (``use_net=False``: physics-only) at ``state (..., 2)``."""
        known = state * (self._rates() if rates is None else rates)
        return known + self.net(state) if use_net else known

    def forward(self, y0: torch.Tensor, t: torch.Tensor, use_net: bool = True) -> torch.Tensor:
        """Integrate from ``y0 (B, 2)`` (populations > 0) over times ``t (T,)``; returns ``(B, T, 2)``.

        The integration runs in the model's dtype, whatever ``y0``'s.
        """
        y0 = check_tensor("y0", y0, ndim=2, last_dim=2, positive=True).to(self.dtype)
        check_tensor("t", t, ndim=1)
        h = self.hparams
        rates = self._rates().to(y0)
        traj = odeint(lambda _t, s: self.vector_field(s, use_net, rates), y0, t.to(y0),
                      method=h.method, substeps=h.substeps, max_evals=h.max_evals,
                      rtol=h.rtol, atol=h.atol)
        return traj.transpose(0, 1)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_save_checkpoint(checkpoint)
        if isinstance(self.net, TermStack) and self.hparams.get("terms") is None:
            warnings.warn("this model's learned terms are not all SympyModules: its checkpoint holds their "
                          "weights but load_from_checkpoint cannot rebuild them", stacklevel=2)

    # ------------------------------------------------------------------ training
    @staticmethod
    def _unpack(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return batch["t"][0], int(batch["n_train"][0])

    def _adam_epoch(self) -> bool:
        """Whether the current epoch is one of the Adam phase (else L-BFGS)."""
        h = self.hparams
        if self.fine_tuning:  # the schedule's last phase
            return h.lbfgs_epochs == 0
        return self.current_epoch < h.adam_epochs

    def fitted_points(self, n_train: int) -> int:
        """Number of leading time points fitted at the current epoch (the window curriculum).

        The Adam phase fits the first ``window_start`` of the training window; the L-BFGS phase
        then widens it linearly to the whole window over ``window_epochs`` epochs. Outside a fit,
        and when fine-tuning trained weights (:attr:`fine_tuning`), the whole window.
        """
        h = self.hparams
        if self._trainer is None or self.fine_tuning:
            return n_train
        lbfgs_epoch = self.current_epoch - h.adam_epochs
        if lbfgs_epoch < 0:
            frac = h.window_start
        elif h.window_epochs == 0:
            frac = 1.0
        else:
            frac = h.window_start + (1 - h.window_start) * min(1.0, (lbfgs_epoch + 1) / h.window_epochs)
        return max(2, min(n_train, round(frac * (n_train - 1)) + 1))

    def trajectory_loss(self, batch: dict[str, torch.Tensor], n_points: int | None = None) -> torch.Tensor:
        """Mean squared error over the first ``n_points`` observations, each species scaled by its mean size."""
        t, n = self._unpack(batch)
        n = n if n_points is None else n_points
        obs = batch["obs"][:, :n]
        pred = self(batch["y0"], t[:n])
        scale = batch["obs"][:, : self._unpack(batch)[1]].abs().mean(dim=(0, 1)).clamp_min(1e-6)
        return (((pred - obs) / scale) ** 2).mean()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam(W) for the first phase, L-BFGS with a strong-Wolfe line search for the second."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: is everything frozen?")
        adam = torch.optim.AdamW(params, lr=self._base_lr, weight_decay=self._base_weight_decay)
        lbfgs = torch.optim.LBFGS(params, lr=self.hparams.lbfgs_lr, max_iter=self.hparams.lbfgs_max_iter,
                                  line_search_fn="strong_wolfe", history_size=50)
        return [adam, lbfgs]

    @property
    def total_epochs(self) -> int:
        """Epochs a fit runs: both optimisation phases, or only the last one when :attr:`fine_tuning`."""
        h = self.hparams
        if self.fine_tuning:
            return h.lbfgs_epochs or h.adam_epochs
        return h.adam_epochs + h.lbfgs_epochs

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        adam, lbfgs = self.optimizers()
        use_adam = self._adam_epoch()
        opt = adam if use_adam else lbfgs
        n_points = self.fitted_points(self._unpack(batch)[1])
        if not use_adam and n_points != getattr(self, "_lbfgs_window", None):
            # a wider window is a new objective: stale curvature pairs would mislead L-BFGS
            lbfgs.optimizer.state.clear()
            self._lbfgs_window = n_points

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self.trajectory_loss(batch, n_points)
            self.manual_backward(loss)
            if use_adam and self.hparams.grad_clip > 0:
                self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
            return loss

        loss = opt.step(closure=closure)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch["obs"].shape[0])
        self.log("train/theta3", self.physics.theta3.detach(), batch_size=1)
        return loss

    def on_train_epoch_end(self) -> None:  # noqa: D102
        if self.current_epoch + 1 >= self.total_epochs:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def trajectory_errors(self, batch: dict[str, torch.Tensor], use_net: bool = True) -> dict[str, torch.Tensor]:
        """MSE against the clean truth on the training window (``traj_mse``) and after it (``extrap_mse``)."""
        t, n = self._unpack(batch)
        pred = self(batch["y0"], t, use_net=use_net)
        err = (pred - batch["clean"]) ** 2
        return {"traj_mse": err[:, :n].mean(), "extrap_mse": err[:, n:].mean(), "pred": pred}

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        hybrid = self.trajectory_errors(batch, use_net=True)
        physics = self.trajectory_errors(batch, use_net=False)
        for metric in ("traj_mse", "extrap_mse"):
            self.log_with_baselines(stage, metric, hybrid[metric], {"physics": physics[metric]},
                                    prog_bar=(stage == "val" and metric == "traj_mse"),
                                    batch_size=batch["y0"].shape[0])
        return {"hybrid": hybrid["pred"], "physics": physics["pred"]}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        preds = self._evaluate(batch, "val")
        if batch_idx == 0 and self.tensorboard is not None:
            from hybridzoo.zoo.ude_plots import trajectory_figure

            self.log_figure("val/trajectories", trajectory_figure(self, batch, preds))

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        return self(batch["y0"], batch["t"][0])

    # ------------------------------------------------------------------ distillation (see zoo/distil.py)
    def distillation_data(self, datamodule: Any, n_samples: int = 4000) -> Any:
        """Samples of the NN terms along the hybrid's own training trajectories (:mod:`hybridzoo.zoo.ude_distil`)."""
        from hybridzoo.zoo import ude_distil

        return ude_distil.distillation_data(self, datamodule, n_samples)

    def with_terms(self, modules: dict[str, nn.Module]) -> UDELotkaVolterra:
        """A copy whose NN terms are ``modules``, e.g. formulas (see :func:`hybridzoo.zoo.ude_distil.with_terms`)."""
        from hybridzoo.zoo import ude_distil

        return ude_distil.with_terms(self, modules)

    def distillation_metrics(self, symbolic: UDELotkaVolterra, datamodule: Any,
                             fine_tune_epochs: int) -> dict[str, float]:
        """Fine-tune the symbolic model's constants, then its test errors and the recovered coefficients."""
        from hybridzoo.zoo import ude_distil

        return ude_distil.distillation_metrics(self, symbolic, datamodule, fine_tune_epochs)

    # ------------------------------------------------------------------ release
    def release_metrics(self, trainer: Any, datamodule: Any) -> dict[str, float]:
        """Distil the learned terms; report the symbolic model's errors and the recovered coefficients."""
        from hybridzoo.zoo.distil import distil

        return distil(self, datamodule, backend="auto").metrics
