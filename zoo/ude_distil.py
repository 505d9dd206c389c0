"""Symbolic distillation of the UDE's learned interaction terms (see :mod:`hybridzoo.zoo.distil`).

:class:`~hybridzoo.zoo.ude_lotka_volterra.UDELotkaVolterra` delegates its three distillation methods here:
the samples of ``NN_1``, ``NN_2`` along the hybrid's own trajectories, the copy of the model with formulas in
their place, and the fine-tuning and test of that copy with the recovered Lotka-Volterra coefficients.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any

import sympy
import torch
from hybridzoo.physics.integrators import IntegrationError
from hybridzoo.physics.validation import check_positive_int
from hybridzoo.zoo.distil import DistillationData, fit_constants
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.ude_networks import TermStack
from torch import nn
from torch.utils.data import default_collate

if TYPE_CHECKING:
    from hybridzoo.zoo.ude_lotka_volterra import UDELotkaVolterra


def distillation_data(model: UDELotkaVolterra, datamodule: Any, n_samples: int = 4000) -> DistillationData:
    """Samples of the NN terms at the states of the hybrid's own training-window trajectories.

    The hybrid is integrated from every training trajectory's initial state (all of them, whatever the
    DataModule's ``batch_size``); at most ``n_samples`` (a positive int) of the states are drawn (``torch``'s
    global RNG).
    """
    check_positive_int("n_samples", n_samples)
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
    from their formulas (inputs renamed ``x``, ``y``; constants in ``model``'s dtype, so written with the
    digits that dtype holds), which it keeps as the hyperparameter ``terms``: its Lightning checkpoints
    then load with ``load_from_checkpoint``. The copy keeps ``model``'s :attr:`fine_tuning` mark.
    """
    from hybridzoo.zoo.ude_lotka_volterra import TERM_INPUTS, TERMS

    if set(modules) != set(TERMS):
        raise ValueError(f"modules must replace exactly the terms {list(TERMS)}, got {sorted(modules)}")
    trainer, model._trainer = model._trainer, None  # never deep-copy the Trainer
    try:
        sym = copy.deepcopy(model)
    finally:
        model._trainer = trainer
    modules = dict(modules)
    predator = modules["predator"]
    for k in TERMS:
        if isinstance(modules[k], SympyModule) and len(modules[k].input_names) != len(TERM_INPUTS):
            raise ValueError(f"modules[{k!r}] must be a formula of the {len(TERM_INPUTS)} state columns (prey, "
                             f"predator), got input_names {modules[k].input_names}")
    if isinstance(predator, SympyModule):
        y = sympy.Symbol(predator.input_names[1])
        expr = sympy.expand(predator.expression(digits=17))
        c = expr.as_coefficients_dict().get(y, sympy.Integer(0))
        if c != 0:
            with torch.no_grad():
                sym.physics.theta3 -= float(c)
            # c is the expression's own coefficient, so the y term cancels exactly
            modules["predator"] = SympyModule(expr - c * y, predator.input_names, dtype=predator.constants.dtype)
    if all(isinstance(modules[k], SympyModule) for k in TERMS):
        formulas = {}
        for k in TERMS:
            m = modules[k]
            rename = {sympy.Symbol(a): sympy.Symbol(b) for a, b in zip(m.input_names, TERM_INPUTS)}
            # the constants as the model will hold them (a float32 model's are float32 values); 17
            # significant digits round-trip any float64, so the module built from the string holds them exactly
            exact = SympyModule(m.expression(digits=17), m.input_names, dtype=model.dtype)
            formulas[k] = str(exact.expression(digits=17).xreplace(rename))
        # built from the stored strings, as load_from_checkpoint rebuilds it (symbolic_terms), but in the
        # model's dtype: made in the default float32 and then cast, a float64 model's constants would be rounded
        net = TermStack({k: SympyModule(formulas[k], TERM_INPUTS, dtype=model.dtype) for k in TERMS})
        sym.hparams.terms = formulas
    else:  # a user module: no formula to store
        net = TermStack({k: modules[k] for k in TERMS})
        sym.hparams.terms = None
    sym.net = net.to(model.device, model.dtype)
    sym.card = None
    return sym


def distillation_metrics(model: UDELotkaVolterra, symbolic: UDELotkaVolterra, datamodule: Any,
                         fine_tune_epochs: int) -> dict[str, float]:
    """Fine-tune the symbolic model's constants with the Trainer (L-BFGS), then measure it on the test set.

    The fine-tuning runs ``fine_tune_epochs`` L-BFGS epochs on the whole training window on the symbolic
    model's device, and marks the model as trained (:attr:`~UDELotkaVolterra.fine_tuning`): its constants
    are fitted. The coefficient metrics (``distil/beta``, ``distil/gamma``, ``distil/delta``,
    ``distil/terms_*``) are reported for the terms that are :class:`~hybridzoo.zoo.symbolic.SympyModule` s.
    """
    if fine_tune_epochs > 0:
        symbolic.hparams.adam_epochs = 0
        symbolic.hparams.lbfgs_epochs = fine_tune_epochs
        symbolic._pretrained, symbolic._freeze = None, "none"
        # the regression's constants are already near the optimum: the window curriculum, meant for random
        # weights, would fit them to the first part of the window only (fitted_points, total_epochs)
        symbolic._fine_tuning = True
        before = {k: v.detach().clone() for k, v in symbolic.state_dict().items()}
        try:
            fit_constants(symbolic, fine_tune_epochs, datamodule=datamodule)
            failure = None if all(torch.isfinite(p).all() for p in symbolic.parameters()) else "diverged"
        except IntegrationError as err:  # an adaptive method on a candidate that made the ODE stiff
            failure = f"could not be integrated ({err})"
        if failure is not None:
            # an ill-posed candidate (e.g. a spurious cubic term) can diverge: keep the regression's fit
            warnings.warn(f"fine-tuning the symbolic model {failure}; keeping the regression's constants",
                          stacklevel=2)
            symbolic.load_state_dict(before)
    symbolic.eval()
    datamodule.setup("test")
    sums = {"traj_mse": 0.0, "extrap_mse": 0.0}
    counts = {"traj_mse": 0, "extrap_mse": 0}
    for batch in datamodule.test_dataloader():
        batch = {k: v.to(symbolic.device) for k, v in batch.items()}
        try:
            with torch.no_grad():
                err = symbolic.trajectory_errors(batch)
        except IntegrationError as e:  # scored as a fixed-step method's blown-up trajectory would be
            warnings.warn(f"the symbolic model cannot be integrated over the test window ({e}); "
                          "its test errors are inf", stacklevel=2)
            err = {"traj_mse": float("inf"), "extrap_mse": float("inf")}
        n = int(batch["n_train"][0])
        sizes = {"traj_mse": batch["clean"][:, :n].numel(), "extrap_mse": batch["clean"][:, n:].numel()}
        for k in sums:
            sums[k] += float(err[k]) * sizes[k]
            counts[k] += sizes[k]
    metrics = {
        "test/traj_mse_symbolic": sums["traj_mse"] / counts["traj_mse"],
        "test/extrap_mse_symbolic": sums["extrap_mse"] / counts["extrap_mse"],
    }
    formulas = {}
    for k, term in getattr(symbolic.net, "terms", {}).items():
        if isinstance(term, SympyModule):  # a user module has no formula to read coefficients from
            a, b = (sympy.Symbol(n) for n in term.input_names)
            # expanded, so that a factored x*(c0 + c1*y) shows its x*y coefficient
            formulas[k] = (sympy.expand(term.expression(digits=17)), a, b)

    def coef(expr: sympy.Expr, monomial: sympy.Expr) -> float:
        return float(expr.as_coefficients_dict().get(monomial, 0.0))

    if "prey" in formulas:
        expr, a, b = formulas["prey"]
        metrics["distil/beta"] = -coef(expr, a * b)
    if "predator" in formulas:
        expr, a, b = formulas["predator"]
        metrics["distil/gamma"] = coef(expr, a * b)
        metrics["distil/delta"] = symbolic.physics.theta3.item() - coef(expr, b)
    for k, (expr, _, _) in formulas.items():
        metrics[f"distil/terms_{k}"] = 0.0 if expr == 0 else float(len(sympy.Add.make_args(expr)))
    return metrics
