"""Solver-in-the-loop (Um, Brand, Fei, Holl & Thuerey, NeurIPS 2020) on cylinder wakes.

Every coarse step of the differentiable Navier-Stokes solver is followed by a CNN correction::

    (u*, v*, p) = NavierStokes2D.step(u_t, v_t)          advection, diffusion, pressure projection
    (u_{t+1}, v_{t+1}) = (u*, v*) + NN(u*, v*, p, fluid, Re; theta)

SOL-n trains the correction through ``n`` unrolled hybrid steps against the reference (the same
solver at ``factor`` times the resolution, restricted to the coarse grid), so the network sees the
states its own corrections produce. NON, the paper's non-interacting baseline, is the same network
trained on one-step pairs that always start from reference states. Both train in the same run
(independent weights, one summed loss), and every evaluation rolls out SRC (the coarse solver
alone), NON and SOL from the same reference state, beside the coarse solver run at 2x resolution.

Only the velocity is corrected: in a projection method the pressure is recomputed from scratch each
step (the previous one merely warm-starts the solve), so a pressure correction would have no effect.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from hybridzoo.datamodules.wake_problem import (
    check_wake_cfl,
    check_wake_geometry,
    min_reynolds,
    wake_solver,
    wake_viscosity,
)
from hybridzoo.physics.navier_stokes import NavierStokes2D, unroll
from hybridzoo.physics.validation import (
    check_bool,
    check_positive_int,
    check_positive_number,
    check_tensor,
    is_real_number,
)
from hybridzoo.zoo.base import Freeze, HybridModule, synchronize
from hybridzoo.zoo.ns_networks import CorrectionCNN
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric

#: Rollouts compared at every evaluation: the hybrid first (logged without suffix), then the baselines.
METHODS = ("sol", "non", "src", "2x")
#: Attributes of the wake geometry that the model and its DataModule must share.
GEOMETRY = ("nx", "ny", "length_x", "center", "diameter", "inflow_speed", "dt")
#: Settings that trained weights fit the shapes of under any value, but work only under the trained one: the
#: correction is learned for one grid and time step, and its Reynolds-number input is ``re / re_scale``.
PRETRAINED_MUST_MATCH = (*GEOMETRY, "re_scale")
#: SOL's look-ahead when neither ``look_ahead`` nor a curriculum sets it.
DEFAULT_LOOK_AHEAD = 16
#: checkpoint entry with the count of updates skipped for a non-finite gradient (``train/skipped_steps``)
SKIPPED_STEPS_KEY = "hybridzoo_skipped_steps"
#: Checkpoint key of the training data's (re_min, re_max).
RE_RANGE_KEY = "hybridzoo_re_range"


def velocity_mae(u: torch.Tensor, v: torch.Tensor, u_ref: torch.Tensor, v_ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute velocity error (m/s) over all u and v faces, per leading index: ``(B, T, ...) -> (B, T)``."""
    du = (u - u_ref).abs().flatten(2)
    dv = (v - v_ref).abs().flatten(2)
    return (du.sum(-1) + dv.sum(-1)) / (du.shape[-1] + dv.shape[-1])


class SolverInTheLoop(HybridModule):
    """A coarse Navier-Stokes solver with a learned per-step correction (SOL) and its NON baseline.

    State: face velocities ``u (B, ny, nx + 1)``, ``v (B, ny + 1, nx)`` in m/s of the channel flow
    past a cylinder (see :func:`hybridzoo.datamodules.wake_problem.wake_solver`), and the Reynolds
    number ``re (B,)``; the viscosity is ``inflow_speed * diameter / re``.

    Args:
        nx, ny, length_x, center, diameter, inflow_speed, dt: the coarse solver's wake geometry (m, m/s,
            s); must equal the DataModule's.
        look_ahead: SOL's number of unrolled steps per training window (the ``n`` of SOL-n); ``None``: the
            curriculum's last stage, else 16. With a curriculum it must equal the last stage (``ValueError``
            otherwise: the curriculum decides the look-ahead, and a different one would be ignored).
        curriculum: optional increasing look-aheads, one per ``curriculum_epochs`` epochs (e.g.
            ``[2, 4, 8, 16]``); the last one stays, and is the only one when fine-tuning trained weights.
            ``None`` trains with ``look_ahead`` throughout.
        curriculum_epochs: epochs per curriculum stage.
        train_non: also train the NON baseline in the same run.
        width, depth, kernel: the correction CNN (see :class:`CorrectionCNN`).
        re_scale: the Reynolds number enters the network as ``re / re_scale``.
        gradient_checkpointing: recompute each unrolled step in the backward pass instead of storing
            it (memory grows with the number of states only; for long look-aheads on big grids).
        cosine_schedule: cosine-anneal the learning rate to 0 over the run.
        lr, weight_decay, adam_beta2, pretrained, freeze: see :class:`HybridModule`.
    """

    zoo_name = "solver-in-the-loop-ns"
    monitor = "val/rollout_mae"
    # The shipped weights behind re_scale=100 instead of 1000 load, and score 0.35 instead of 0.007
    pretrained_must_match = PRETRAINED_MUST_MATCH
    mode = "min"

    def __init__(
        self,
        nx: int = 32,
        ny: int = 16,
        length_x: float = 8.0,
        center: tuple[float, float] = (2.0, 2.0),
        diameter: float = 1.0,
        inflow_speed: float = 1.0,
        dt: float = 0.1,
        look_ahead: int | None = None,
        curriculum: list[int] | None = None,
        curriculum_epochs: int = 2,
        train_non: bool = True,
        width: int = 32,
        depth: int = 4,
        kernel: int = 5,
        re_scale: float = 1000.0,
        gradient_checkpointing: bool = False,
        cosine_schedule: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        adam_beta2: float = 0.999,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, adam_beta2=adam_beta2, pretrained=pretrained,
                         freeze=freeze)
        for name in ("curriculum_epochs", "width", "depth", "kernel"):
            check_positive_int(name, locals()[name])
        if look_ahead is not None:
            check_positive_int("look_ahead", look_ahead)
        for name in ("dt", "re_scale"):
            check_positive_number(name, locals()[name])
        for name in ("train_non", "gradient_checkpointing", "cosine_schedule"):
            check_bool(name, locals()[name])
        check_wake_geometry(nx, ny, length_x, center, diameter, inflow_speed)  # the DataModule's checks
        check_wake_cfl(dt, inflow_speed, length_x, nx)
        if curriculum is not None:
            curriculum = _look_aheads(curriculum)
            if look_ahead is not None and look_ahead != curriculum[-1]:
                raise ValueError(f"look_ahead={look_ahead} differs from the last stage of curriculum={curriculum}, "
                                 f"which sets the look-ahead: pass curriculum=None (--model.curriculum null) to "
                                 f"train SOL-{look_ahead} throughout, or end the curriculum at {look_ahead}")
            look_ahead = curriculum[-1]
        elif look_ahead is None:
            look_ahead = DEFAULT_LOOK_AHEAD
        self.save_hyperparameters()  # with look_ahead resolved: the hparams say what trains
        self.solver: NavierStokes2D = wake_solver(nx, ny, length_x, tuple(center), diameter, inflow_speed,
                                                  validate=False)
        self.register_buffer("fluid", self.solver._masks["fluid"].float(), persistent=False)
        nets = {"sol": CorrectionCNN(width, depth, kernel)}
        if train_non:
            nets["non"] = CorrectionCNN(width, depth, kernel)
        self.net = nn.ModuleDict(nets)
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({m: MeanMetric() for m in METHODS}) for stage in ("val", "test")
        })
        self._curves: dict[str, torch.Tensor] | None = None
        self.skipped_steps = 0
        self._re_range: tuple[float, float] | None = None  # the training data's Re range; see re_range
        self._timing = False  # step_time_ratio's timed rollouts skip the warning checks

    # ------------------------------------------------------------------ the hybrid solver
    def viscosity(self, re: torch.Tensor) -> torch.Tensor:
        """Kinematic viscosity (m²/s) of Reynolds numbers ``re (B,)``."""
        return wake_viscosity(re, self.hparams.inflow_speed, self.hparams.diameter)

    @property
    def look_ahead(self) -> int:
        """The look-ahead ``n`` of the current epoch (curriculum stage, or ``look_ahead``).

        A model that started from trained weights (:attr:`fine_tuning`) skips the curriculum: its short
        look-aheads are a warm-up for random weights, and would train a corrector for short rollouts.
        """
        hp = self.hparams
        if not hp.curriculum:
            return int(hp.look_ahead)
        if self.fine_tuning:
            return int(hp.curriculum[-1])
        epoch = self.current_epoch if self._trainer is not None else 0
        return int(hp.curriculum[min(epoch // hp.curriculum_epochs, len(hp.curriculum) - 1)])

    def _net(self, method: str) -> nn.Module | None:
        if method == "src":
            return None
        if method not in self.net:
            raise ValueError(f"method must be one of {tuple(self.net)} or 'src', got {method!r}")
        return self.net[method]

    def hybrid_step(self, u: torch.Tensor, v: torch.Tensor, re: torch.Tensor, p: torch.Tensor | None = None,
                    method: str = "sol", validate: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One coarse step of ``dt``, then the ``method``'s correction (``"src"``: none); returns ``(u, v, p)``.

        ``u (B, ny, nx+1)``, ``v (B, ny+1, nx)`` and ``re (B,)`` as for :meth:`rollout`; ``p (B, ny, nx)``, the
        previous pressure, only warm-starts the solve. ``validate=False`` skips the input checks (shapes,
        dtype, finiteness, CFL), as a loop that checked its starting state does at every step.
        """
        net = self._net(method)
        if validate:
            re = self._check_inputs(u, v, re, p, context=" of the step's state")
        u, v, p = self.solver.step(u, v, self.hparams.dt, self.viscosity(re), p)
        if net is None:
            return u, v, p
        du, dv = net(u, v, p, self.fluid.to(u.dtype), re / self.hparams.re_scale)
        u, v = self.solver.apply_boundaries(u + du, v + dv)
        return u, v, p

    def _check_inputs(self, u: torch.Tensor, v: torch.Tensor, re: torch.Tensor, p: torch.Tensor | None,
                      context: str) -> torch.Tensor:
        """Check a state and its Reynolds numbers (``TypeError``/``ValueError`` naming them); returns ``re``."""
        self.solver.check_state(u, v, p)
        dtype = next(self.net["sol"].parameters()).dtype
        if u.dtype != dtype or v.dtype != dtype:
            raise TypeError(f"u and v must have the model's dtype {dtype}, got {u.dtype} and {v.dtype}")
        # a parameter of the flow, not state: moved to the state's device and the model's dtype
        re = check_tensor("re", re, ndim=1, positive=True).to(device=u.device, dtype=dtype)
        if re.shape[0] != u.shape[0]:
            raise ValueError(f"re must have shape ({u.shape[0]},), got {tuple(re.shape)}")
        # the solver is built without per-step checks (speed); a state that already breaks the CFL condition
        # would be back-traced beyond the ghost cells and clamped without a word
        dt = self.hparams.dt
        # the solver steps unchecked (speed): a Reynolds number too low for its explicit diffusion is caught here
        try:
            self.solver.check_diffusion(dt, self.viscosity(re))
        except ValueError:  # its advice (implicit diffusion, a smaller dt) is not the model's to take
            hp = self.hparams
            lowest = min_reynolds(hp.nx, hp.length_x, dt, hp.inflow_speed, hp.diameter)
            raise ValueError(f"re holds {float(re.detach().min()):.4g}, below {lowest:.4g}: the lowest Reynolds number "
                             f"whose explicit diffusion the model's grid and dt (fixed by its training) are stable "
                             f"for") from None
        self.solver.check_cfl(u, v, dt, context=context,
                              advice=f"dt is the model's, fixed by its training: its states need max|velocity| <= "
                                     f"{self.solver.max_cfl * self.solver.h / dt:.4g} m/s")
        return re

    def rollout(self, u: torch.Tensor, v: torch.Tensor, re: torch.Tensor, steps: int, method: str = "sol",
                gradient_checkpointing: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll ``steps`` hybrid steps out of ``u (B, ny, nx+1)``, ``v (B, ny+1, nx)`` at Reynolds numbers ``re (B,)``.

        Returns:
            ``u (B, steps, ny, nx+1)`` and ``v (B, steps, ny+1, nx)``, the states after each step.

        Warns:
            UserWarning: a Reynolds number outside the training data's (:meth:`re_range`); a rollout whose states
            left the solver's CFL limit or turned non-finite (the states after that step are not a flow).
        """
        check_positive_int("steps", steps)
        self._net(method)
        re = self._check_inputs(u, v, re, None, context=" of the rollout's initial state")
        ck = self.hparams.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
        check_bool("gradient_checkpointing", ck)
        t = self._trainer
        in_loop = t is not None and (t.training or t.validating or t.testing or t.sanity_checking)
        if not in_loop and not self._timing:  # a user's rollout (predict too); evaluation chose its Re on purpose
            self._warn_outside_data(re)
        us, vs, _ = unroll(lambda u, v, p: self.hybrid_step(u, v, re, p, method, validate=False), u, v, None, steps, ck)
        if not (t is not None and t.training) and not self._timing:  # not a sync per training step, nor timed
            self._warn_if_unstable(us, vs, method)
        return us, vs

    def re_range(self) -> tuple[float, float] | None:
        """``(re_min, re_max)`` of the training data: the last fit's (kept in checkpoints), else the card's ``data``."""
        if self._re_range is not None:
            return self._re_range
        re_train = ((self.card or {}).get("data") or {}).get("re_train")
        return (float(min(re_train)), float(max(re_train))) if re_train else None

    def _warn_outside_data(self, re: torch.Tensor) -> None:
        known = self.re_range()
        if known is None or re.numel() == 0:
            return
        lo, hi = torch.stack([re.detach().min(), re.detach().max()]).tolist()  # one host sync
        if lo < known[0] or hi > known[1]:
            rank_zero_warn(f"re holds {lo:.4g} to {hi:.4g}, outside the training data's Re {known[0]:.4g} to "
                           f"{known[1]:.4g}: the correction was never trained there")

    def _warn_if_unstable(self, us: torch.Tensor, vs: torch.Tensor, method: str) -> None:
        """One host sync per rollout: the solver steps unchecked, so a state past the CFL limit would be clamped."""
        if us.numel() == 0:
            return
        speed = torch.maximum(us.detach().abs().amax((0, 2, 3)), vs.detach().abs().amax((0, 2, 3)))  # (steps,)
        cfl = speed * self.hparams.dt / self.solver.h
        bad = ~(cfl <= self.solver.max_cfl)  # NaN counts
        if bool(bad.any()):
            k = int(bad.nonzero()[0, 0]) + 1
            rank_zero_warn(f"the {method.upper()} rollout broke the CFL limit (dt*max|velocity|/h > "
                           f"{self.solver.max_cfl}) or diverged at step {k} of {us.shape[1]}: the states from there "
                           f"on are not a flow (a Reynolds number outside the training data's, or a state unlike "
                           f"its states?)")

    def forward(self, u: torch.Tensor, v: torch.Tensor, re: torch.Tensor, steps: int = 1,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """SOL rollout (see :meth:`rollout`)."""
        return self.rollout(u, v, re, steps, "sol")

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:  # noqa: D102
        super().setup(stage)
        self.check_datamodule(self.attached_datamodule, stage)

    def check_datamodule(self, dm: Any, stage: str) -> None:
        """Refuse a wake DataModule of another geometry, or (``stage="fit"``) windows shorter than the look-ahead.

        :class:`~hybridzoo.datamodules.wake_flow.WakeFlowDataModule` calls it from ``prepare_data``, before it
        simulates anything; :meth:`setup` calls it again for other DataModules.
        """
        hp = getattr(dm, "hparams", None)
        if hp is None or "nx" not in hp:
            return
        differ = [k for k in GEOMETRY if _plain(hp[k]) != _plain(self.hparams[k])]
        if differ:
            raise ValueError("the DataModule's wake geometry differs from the model's in "
                             + ", ".join(f"{k} ({hp[k]} vs {self.hparams[k]})" for k in differ))
        if stage == "fit" and hp.get("re_train"):
            self._re_range = (float(min(hp["re_train"])), float(max(hp["re_train"])))
        if stage == "fit" and self._max_look_ahead() > hp["window"]:
            n = self._max_look_ahead()
            raise ValueError(f"look-ahead {n} exceeds the DataModule's window={hp['window']}: give the "
                             f"DataModule window={n} or more (--data.window {n})")

    def _max_look_ahead(self) -> int:
        hp = self.hparams
        return int(max(hp.curriculum)) if hp.curriculum else int(hp.look_ahead)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        n = self.look_ahead
        if batch["u"].shape[1] < n + 1:  # setup() checks a WakeFlowDataModule's window; plain loaders land here
            raise ValueError(f"look-ahead {n} needs windows of {n + 1} states, got batches of {batch['u'].shape[1]}")
        u_ref, v_ref, re = batch["u"][:, : n + 1], batch["v"][:, : n + 1], batch["re"]
        us, vs = self.rollout(u_ref[:, 0], v_ref[:, 0], re, n, "sol")
        loss = _mse(us, u_ref[:, 1:]) + _mse(vs, v_ref[:, 1:])
        bs = re.shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self.log("train/look_ahead", float(n), batch_size=1)
        if "non" in self.net:
            # NON: one step from every reference state of the window, never from its own output
            un, vn, _ = self.hybrid_step(u_ref[:, :-1].flatten(0, 1), v_ref[:, :-1].flatten(0, 1),
                                         re.repeat_interleave(n), None, "non", validate=False)
            loss_non = _mse(un, u_ref[:, 1:].flatten(0, 1)) + _mse(vn, v_ref[:, 1:].flatten(0, 1))
            self.log("train/loss_non", loss_non.detach(), batch_size=bs)
            loss = loss + loss_non
        return loss

    def configure_optimizers(self) -> Any:  # noqa: D102
        opt = super().configure_optimizers()
        return self.with_cosine_schedule(opt) if self.hparams.cosine_schedule else opt

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """SOL and NON each clipped on their own: a spike of SOL's long unroll must not shrink NON's step."""
        return [list(net.parameters()) for net in self.net.values()]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the update of a network (SOL or NON) whose gradient is not finite, as AMP's gradient scaler does.

        Gradients through a long look-ahead can overflow when the curriculum lengthens it (seen at the
        switch to 16 steps); clipping cannot repair an infinite norm, and one such update turns every
        weight into NaN. The count is logged as ``train/skipped_steps``.
        """
        bad = False
        for net in self.net.values():  # SOL and NON train independently: one's overflow must not cost the other
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            if grads and not bool(torch.stack([g.abs().amax() for g in grads]).isfinite().all()):
                for p in net.parameters():
                    p.grad = None  # the optimiser leaves parameters without a gradient untouched
                bad = True
        if not bad:
            return
        self.skipped_steps += 1
        if self.skipped_steps == 1:  # once: the count goes to the logger
            rank_zero_warn("non-finite gradient: update skipped (further skips are logged as train/skipped_steps)")
        if self._trainer is not None:
            self.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def rollouts(self, batch: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every method's rollout over the batch's recorded steps, ``{method: (u, v)}`` each ``(B, T, ...)``.

        ``"2x"`` is read from the batch (computed when the data was generated).
        """
        steps = batch["u"].shape[1] - 1
        u0, v0, re = batch["u"][:, 0], batch["v"][:, 0], batch["re"]
        out = {m: self.rollout(u0, v0, re, steps, m) for m in ("sol", *(("non",) if "non" in self.net else ()), "src")}
        out["2x"] = (batch["u2x"][:, 1:], batch["v2x"][:, 1:])
        return out

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        preds = self.rollouts(batch)
        curves = {m: velocity_mae(u, v, batch["u"][:, 1:], batch["v"][:, 1:]) for m, (u, v) in preds.items()}
        for m, c in curves.items():
            self.metrics[stage][m].update(c.mean(1))
        self.log(f"{stage}/loss", _mse(preds["sol"][0], batch["u"][:, 1:]) + _mse(preds["sol"][1], batch["v"][:, 1:]),
                 batch_size=batch["re"].shape[0], sync_dist=True)
        return {"preds": preds, "curves": curves}

    def _log_epoch(self, stage: str) -> None:
        values = {m: self.metrics[stage][m].compute() for m in METHODS if self.metrics[stage][m].update_called}
        self.log_with_baselines(stage, "rollout_mae", values["sol"], {m: v for m, v in values.items() if m != "sol"},
                                prog_bar=stage == "val")
        for m in METHODS:
            self.metrics[stage][m].reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        out = self._evaluate(batch, "val")
        if batch_idx == 0 and self.tensorboard is not None:
            from hybridzoo.zoo.ns_plots import error_curve_figure, vorticity_figure

            self.log_figure("val/vorticity", vorticity_figure(self.solver, batch, out["preds"]))
            self.log_figure("val/rollout_error", error_curve_figure(out["curves"], self.hparams.dt))

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._log_epoch("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "test")
        if batch_idx == 0:
            ratio = self.step_time_ratio(batch["u"][:, 0], batch["v"][:, 0], batch["re"])
            self.log("test/step_time_ratio_src", ratio, batch_size=1, sync_dist=True)

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._log_epoch("test")

    @torch.no_grad()
    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """SOL's rollout from the batch's first state: ``u (B, steps, ny, nx+1)``, ``v (B, steps, ny+1, nx)``.

        The batch needs ``u (B, steps + 1, ny, nx+1)`` (only its first state and length are read), ``v`` alike and
        ``re (B,)``; the other methods and the 2x grid's states are neither rolled out nor needed.
        """
        if not isinstance(batch, dict) or not {"u", "v", "re"} <= batch.keys():  # a KeyError or TypeError before
            have = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"batch must be a dict with 'u', 'v' and 're' (as WakeFlowDataModule's loaders give), "
                             f"got {have}")
        steps = batch["u"].shape[1] - 1
        if steps < 1:  # rollout would name its own `steps`, which the user never passed
            raise ValueError(f"batch['u'] must hold at least 2 states (the first and as many as to predict), "
                             f"shape (B, steps + 1, ny, nx+1); got {tuple(batch['u'].shape)}")
        return self.rollout(batch["u"][:, 0], batch["v"][:, 0], batch["re"], steps, "sol")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the count of skipped updates, so that a resumed fit's ``train/skipped_steps`` goes on from it."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[SKIPPED_STEPS_KEY] = self.skipped_steps
        if self._re_range is not None:
            checkpoint[RE_RANGE_KEY] = list(self._re_range)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_load_checkpoint(checkpoint)
        self.skipped_steps = int(checkpoint.get(SKIPPED_STEPS_KEY, self.skipped_steps))
        if RE_RANGE_KEY in checkpoint and self._re_range is None:  # a resumed fit's data (setup, earlier) win
            lo, hi = checkpoint[RE_RANGE_KEY]
            self._re_range = (float(lo), float(hi))

    @torch.no_grad()
    def step_time_ratio(self, u: torch.Tensor, v: torch.Tensor, re: torch.Tensor, steps: int = 10,
                        repeats: int = 3) -> float:
        """Wall time of ``steps`` SOL steps over that of ``steps`` source steps from the same state.

        Each time is the best of ``repeats``, after one warm-up rollout.
        """
        check_positive_int("steps", steps)
        check_positive_int("repeats", repeats)
        def timed(method: str) -> float:
            best = float("inf")
            self._timing = True  # no warning checks (a host sync each) inside the timed region
            try:
                for _ in range(repeats):
                    synchronize(u.device)
                    start = time.perf_counter()
                    self.rollout(u, v, re, steps, method)
                    synchronize(u.device)
                    best = min(best, time.perf_counter() - start)
            finally:
                self._timing = False
            return best

        timed("sol")  # warm-up: caches, kernels
        return timed("sol") / timed("src")


def _look_aheads(curriculum: Any) -> list[int]:
    """The curriculum as a list of ints; ``ValueError`` unless a non-empty increasing list of positive integers."""
    values = list(curriculum) if isinstance(curriculum, (list, tuple)) else None
    if not values or any(not is_real_number(n) or not float(n).is_integer()
                         or n < 1 for n in values):
        raise ValueError(f"curriculum must be a non-empty increasing list of positive integer look-aheads, "
                         f"got {curriculum!r}")
    values = [int(n) for n in values]
    if any(a >= b for a, b in zip(values, values[1:])):  # [2, 2, 4] would repeat a stage
        raise ValueError(f"curriculum must be a non-empty increasing list of look-aheads, got {curriculum!r}")
    return values


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mean((a - b) ** 2)


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal as lists (YAML gives lists, Python defaults tuples)."""
    return [float(x) for x in value] if isinstance(value, (list, tuple)) else float(value)


__all__ = ["SolverInTheLoop", "velocity_mae"]
