"""Symbolic distillation of the UDE's learned interaction terms (see :mod:`hybridzoo.zoo.distil`).

:class:`~hybridzoo.zoo.ude_lotka_volterra.UDELotkaVolterra` delegates its three distillation methods here:
the samples of ``NN_1``, ``NN_2`` along the hybrid's own trajectories, the copy of the model with formulas in
their place, and the fine-tuning and test of that copy with the recovered Lotka-Volterra coefficients.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any

import lightning as L
import sympy
import torch
from hybridzoo.zoo.distil import DistillationData
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.ude_networks import TermStack
from torch import nn
from torch.utils.data import default_collate

if TYPE_CHECKING:
    from hybridzoo.zoo.ude_lotka_volterra import UDELotkaVolterra


def distillation_data(model: UDELotkaVolterra, datamodule: Any, n_samples: int = 4000) -> DistillationData:
    """Samples of the NN terms at the states of the hybrid's own training-window trajectories.

    The hybrid is integrated from every training trajectory's initial state (all of them, whatever the
    DataModule's ``batch_size``); at most ``n_samples`` of the states are drawn (``torch``'s global RNG).
    """
    datamodule.setup("fit")
    dataset = datamodule.train_dataloader().dataset  # the loader's batches may hold only some trajectories
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    t, n = model._unpack(batch)
    with torch.no_grad():
        states = model(batch["y0"].to(model.device, model.dtype), t[:n].to(model.device, model.dtype)).reshape(-1, 2)
        if states.shape[0] > n_samples:
            states = states[torch.randperm(states.shape[0])[:n_samples]]
        terms = model.learned_terms(states)
    return DistillationData(states.cpu(), ["x", "y"], {k: v.cpu() for k, v in terms.items()})


def with_terms(model: UDELotkaVolterra, modules: dict[str, nn.Module]) -> UDELotkaVolterra:
    """A copy of ``model`` whose NN terms are replaced by ``modules`` (e.g. symbolic expressions).

    ``theta_3*y`` and a term ``c*y`` inside ``NN_2`` cannot be told apart from data, so a linear
    ``y`` term of a symbolic ``NN_2`` is folded into ``theta_3`` (an identity: the model is unchanged).

    Where both modules are :class:`~hybridzoo.zoo.symbolic.SympyModule` s, the copy holds them rebuilt
    from their formulas (inputs renamed ``x``, ``y``), which it keeps as the hyperparameter ``terms``:
    its Lightning checkpoints then load with ``load_from_checkpoint``. The copy keeps ``model``'s
    :attr:`fine_tuning` mark.
    """
    from hybridzoo.zoo.ude_lotka_volterra import TERM_INPUTS, TERMS, symbolic_terms

    if set(modules) != set(TERMS):
        raise ValueError(f"modules must replace exactly the terms {list(TERMS)}, got {sorted(modules)}")
    trainer, model._trainer = model._trainer, None  # never deep-copy the Trainer
    try:
        sym = copy.deepcopy(model)
    finally:
        model._trainer = trainer
    modules = dict(modules)
    predator = modules["predator"]
    if isinstance(predator, SympyModule):
        y = sympy.Symbol(predator.input_names[1])
        expr = sympy.expand(predator.expression(digits=15))
        c = float(expr.as_coefficients_dict().get(y, 0.0))
        if c != 0.0:
            with torch.no_grad():
                sym.physics.theta3 -= c
            modules["predator"] = SympyModule(expr - sympy.Float(c, 15) * y, predator.input_names)
    if all(isinstance(modules[k], SympyModule) for k in TERMS):
        formulas = {}
        for k in TERMS:
            m = modules[k]
            rename = {sympy.Symbol(a): sympy.Symbol(b) for a, b in zip(m.input_names, TERM_INPUTS)}
            # 17 significant digits round-trip any float64: the constants come back exactly
            formulas[k] = str(m.expression(digits=17).xreplace(rename))
        net = symbolic_terms(formulas)  # built from the stored strings, so that a checkpoint rebuilds it alike
        sym.hparams.terms = formulas
    else:  # a user module: no formula to store
        net = TermStack({k: modules[k] for k in TERMS})
        sym.hparams.terms = None
    sym.net = net.to(model.device, model.dtype)
    sym.card = None
    return sym


def distillation_metrics(model: UDELotkaVolterra, symbolic: UDELotkaVolterra, datamodule: Any,
                         fine_tune_epochs: int) -> dict[str, float]:
    """Fine-tune the symbolic model's constants with the Trainer (L-BFGS), then measure it on the test set."""
    if fine_tune_epochs > 0:
        symbolic.hparams.adam_epochs = 0
        symbolic.hparams.lbfgs_epochs = fine_tune_epochs
        symbolic._pretrained, symbolic._freeze = None, "none"
        trainer = L.Trainer(max_epochs=fine_tune_epochs, accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, limit_val_batches=0)
        before = {k: v.detach().clone() for k, v in symbolic.state_dict().items()}
        trainer.fit(symbolic, datamodule=datamodule)
        if not all(torch.isfinite(p).all() for p in symbolic.parameters()):
            # an ill-posed candidate (e.g. a spurious cubic term) can diverge: keep the regression's fit
            warnings.warn("fine-tuning the symbolic model diverged; keeping the regression's constants",
                          stacklevel=2)
            symbolic.load_state_dict(before)
    symbolic.eval()
    datamodule.setup("test")
    sums = {"traj_mse": 0.0, "extrap_mse": 0.0}
    counts = {"traj_mse": 0, "extrap_mse": 0}
    for batch in datamodule.test_dataloader():
        batch = {k: v.to(symbolic.device) for k, v in batch.items()}
        err = symbolic.trajectory_errors(batch)
        n = int(batch["n_train"][0])
        sizes = {"traj_mse": batch["clean"][:, :n].numel(), "extrap_mse": batch["clean"][:, n:].numel()}
        for k in sums:
            sums[k] += float(err[k]) * sizes[k]
            counts[k] += sizes[k]
    x, y = sympy.symbols("x y")
    prey = symbolic.net.terms["prey"].expression()
    predator = symbolic.net.terms["predator"].expression()

    def coef(expr: Any, monomial: Any) -> float:
        return float(expr.as_coefficients_dict().get(monomial, 0.0))

    return {
        "test/traj_mse_symbolic": sums["traj_mse"] / counts["traj_mse"],
        "test/extrap_mse_symbolic": sums["extrap_mse"] / counts["extrap_mse"],
        "distil/beta": -coef(prey, x * y),
        "distil/gamma": coef(predator, x * y),
        "distil/delta": symbolic.physics.theta3.item() - coef(predator, y),
        "distil/terms_prey": float(len(sympy.Add.make_args(prey))),
        "distil/terms_predator": float(len(sympy.Add.make_args(predator))),
    }
