"""Acceptance of the UDE issue, from the shipped weights: distillation recovers the missing terms."""

import math

import pytest
import sympy
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.zoo import create_model, distil, load_pretrained
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.ude_distil import distillation_metrics
from hybridzoo.zoo.ude_lotka_volterra import UDELotkaVolterra


def test_distil_pretrained_recovers_interaction_terms():
    model = load_pretrained("ude-lotka-volterra")
    dm = model.datamodule()
    result = distil(model, dm, backend="sindy", fine_tune_epochs=10)
    x, y = sympy.symbols("x y")
    prey = result.terms["prey"].expression.as_coefficients_dict()
    predator = result.terms["predator"].expression.as_coefficients_dict()
    assert set(prey) == {x * y} and set(predator) == {x * y}, result.equations()  # no spurious terms
    m = result.metrics
    for key, truth in (("beta", 0.4), ("gamma", 0.1), ("delta", 0.4)):
        assert abs(m[f"distil/{key}"] - truth) / truth < 0.05, (key, m[f"distil/{key}"])
    card = model.card["metrics"]
    assert m["test/extrap_mse_symbolic"] * 10 <= card["test/extrap_mse"]
    assert card["test/extrap_mse"] * 10 <= card["test/extrap_mse_physics"]
    assert {"prey", "predator"} <= {r["term"] for r in result.pareto_rows()}
    assert "x y" in result.terms["prey"].latex


def test_distillation_data_samples_every_training_trajectory_whatever_the_batch_size(tmp_path):
    model = create_model("ude-lotka-volterra", hidden=8)
    data = dict(n_trajectories=6, n_val=1, n_test=1, t_train=2.0, t_extrap=3.0, dt=0.1, cache_dir=str(tmp_path))
    whole = model.distillation_data(LotkaVolterraDataModule(**data))
    for batch_size in (1, 3):
        batched = model.distillation_data(LotkaVolterraDataModule(batch_size=batch_size, **data))
        assert batched.inputs.shape == whole.inputs.shape == (4 * 21, 2)  # 4 training trajectories x 21 times
        torch.testing.assert_close(batched.inputs, whole.inputs, rtol=0, atol=0)
        for k, v in whole.targets.items():
            torch.testing.assert_close(batched.targets[k], v, rtol=0, atol=0)


def test_a_candidate_that_makes_the_ode_stiff_is_stopped_by_the_evaluation_budget(tmp_path):
    # dopri5 needs ~ 2 * 1e4 / 3.3 steps of 6 evaluations for x' = -1e4 x over t_train = 2: far over 3000
    data = dict(n_trajectories=4, n_val=1, n_test=1, t_train=2.0, t_extrap=3.0, dt=0.2, noise=0.0)
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **data)
    model = create_model("ude-lotka-volterra", hidden=8, method="dopri5", max_evals=3000)
    sym = model.with_terms({"prey": SympyModule("-10000.0*x - 0.3*x*y", ["x", "y"]),
                            "predator": SympyModule("0.1*x*y", ["x", "y"])})
    before = {k: v.clone() for k, v in sym.state_dict().items()}
    with pytest.warns(UserWarning) as caught:
        metrics = distillation_metrics(model, sym, dm, fine_tune_epochs=1)
    messages = [str(w.message) for w in caught]
    assert any("fine-tuning the symbolic model could not be integrated" in m and "max_evals=3000" in m
               for m in messages), messages
    assert any("cannot be integrated over the test window" in m for m in messages), messages
    for k, v in before.items():  # the regression's constants are kept
        torch.testing.assert_close(sym.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert metrics["test/traj_mse_symbolic"] == metrics["test/extrap_mse_symbolic"] == math.inf
    assert metrics["distil/beta"] == pytest.approx(0.3)


def test_max_evals_is_checked():
    with pytest.raises(ValueError, match="max_evals must be >= 1"):
        create_model("ude-lotka-volterra", max_evals=0)
    assert create_model("ude-lotka-volterra", method="dopri5", max_evals=None).hparams.max_evals is None


TINY_DATA = dict(n_trajectories=4, n_val=1, n_test=1, t_train=2.0, t_extrap=3.0, dt=0.2, noise=0.0)


class _RecordingUDE(UDELotkaVolterra):
    """The UDE, noting the epoch and the number of time points of every trajectory loss it computes."""

    def trajectory_loss(self, batch, n_points=None):
        self.fitted.append((self.current_epoch, n_points))
        return super().trajectory_loss(batch, n_points)


def test_fine_tuning_a_model_trained_from_scratch_fits_the_whole_training_window(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = _RecordingUDE(hidden=8, lbfgs_max_iter=2)  # built here, not loaded: not marked as trained
    assert not model.fine_tuning and model.hparams.window_epochs > 3
    model.fitted = []
    sym = model.with_terms({"prey": SympyModule("-0.35*x*y", ["x", "y"]),
                            "predator": SympyModule("0.12*x*y", ["x", "y"])})
    distillation_metrics(model, sym, dm, fine_tune_epochs=3)
    dm.setup("fit")
    n_train = int(dm.train_dataloader().dataset[0]["n_train"])
    # the window curriculum would have fitted 3, 4 and 4 of the 11 points in epochs 0, 1 and 2
    assert {e for e, _ in sym.fitted} == {0, 1, 2}
    assert {n for _, n in sym.fitted} == {n_train}
    assert sym.fine_tuning and not model.fine_tuning  # the copy's constants are fitted; the model is untouched
    assert sym.device == model.device  # the Trainer's teardown moved it to the CPU; it is moved back


def test_coefficient_metrics_read_expanded_formulas(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = create_model("ude-lotka-volterra", hidden=8, delta_init=0.2)
    # a factored prey term (as PySR writes them); the linear predator term is folded into theta_3
    sym = model.with_terms({"prey": SympyModule("x*(0.01 - 0.4*y)", ["x", "y"]),
                            "predator": SympyModule("0.1*x*y - 0.05*y", ["x", "y"])})
    m = distillation_metrics(model, sym, dm, fine_tune_epochs=0)
    assert m["distil/beta"] == pytest.approx(0.4) and m["distil/terms_prey"] == 2.0  # was beta = -0.0, 1 term
    assert m["distil/gamma"] == pytest.approx(0.1) and m["distil/terms_predator"] == 1.0
    assert m["distil/delta"] == pytest.approx(0.25)
    # a predator term that is only c*y is all theta_3: the formula left is 0, which has no terms
    sym = model.with_terms({"prey": SympyModule("-0.4*x*y", ["x", "y"]),
                            "predator": SympyModule("-0.05*y", ["x", "y"])})
    assert sym.hparams.terms["predator"] == "0"
    m = distillation_metrics(model, sym, dm, fine_tune_epochs=0)
    assert m["distil/terms_predator"] == 0.0 and m["distil/gamma"] == 0.0
    assert m["distil/delta"] == pytest.approx(0.25)


class _Bilinear(torch.nn.Module):
    """A user's (not symbolic) term ``c * x * y``."""

    def __init__(self, c):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(c))

    def forward(self, state):
        return self.c * state[..., 0] * state[..., 1]


def test_coefficient_metrics_skip_terms_that_are_not_formulas(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = create_model("ude-lotka-volterra", hidden=8)
    sym = model.with_terms({"prey": _Bilinear(-0.4), "predator": _Bilinear(0.1)})
    m = distillation_metrics(model, sym, dm, fine_tune_epochs=0)  # was an AttributeError
    assert set(m) == {"test/traj_mse_symbolic", "test/extrap_mse_symbolic"}
    assert math.isfinite(m["test/traj_mse_symbolic"])
    # a formula beside a user module keeps its own input names
    sym = model.with_terms({"prey": _Bilinear(-0.4), "predator": SympyModule("0.1*a*b", ["a", "b"])})
    m = distillation_metrics(model, sym, dm, fine_tune_epochs=0)
    assert "distil/beta" not in m and "distil/terms_prey" not in m
    assert m["distil/gamma"] == pytest.approx(0.1) and m["distil/terms_predator"] == 1.0


@pytest.mark.parametrize(("n_samples", "error"), [(0, ValueError), (-5, ValueError), (2.5, TypeError),
                                                  (True, TypeError)])
def test_distillation_data_checks_n_samples(tmp_path, n_samples, error):
    model = create_model("ude-lotka-volterra", hidden=8)
    with pytest.raises(error, match="n_samples must be"):  # -5 used to draw all but the last 5 states
        model.distillation_data(LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA), n_samples=n_samples)


def test_a_float64_model_keeps_its_formulas_constants_in_float64(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = create_model("ude-lotka-volterra", hidden=8, lbfgs_max_iter=2).double()
    c = -0.123456789012345
    sym = model.with_terms({"prey": SympyModule(f"{c!r}*x*y", ["x", "y"], dtype=torch.float64),
                            "predator": SympyModule("0.1*x*y", ["x", "y"], dtype=torch.float64)})
    prey = sym.net.terms["prey"].constants
    assert prey.dtype == torch.float64 and prey.item() == c  # was rounded through float32
    # distil builds the regression's formulas in the model's dtype
    result = distil(model, dm, backend="sindy", fine_tune_epochs=0)
    y = sympy.Symbol("y")
    for fit in result.terms.values():
        coeffs = fit.pareto[fit.selected].expression.as_coefficients_dict()
        # with_terms moved the predator's y term into theta_3
        exact = [float(v) for k, v in coeffs.items() if not (fit.name == "predator" and k == y)]
        held = fit.module.constants
        assert held.dtype == torch.float64 and sorted(held.tolist()) == sorted(exact), fit.name
    # fine-tuning keeps the symbolic model's dtype and device
    distillation_metrics(model, sym, dm, fine_tune_epochs=1)
    assert {p.dtype for p in sym.parameters()} == {torch.float64} and sym.device == model.device


def test_a_float32_model_writes_its_formulas_with_the_digits_it_holds(tmp_path):
    model = create_model("ude-lotka-volterra", hidden=8)
    sym = model.with_terms({"prey": SympyModule("-0.3*x*y", ["x", "y"], dtype=torch.float64),
                            "predator": SympyModule("0.1*x*y", ["x", "y"])})
    assert sym.hparams.terms["prey"] == "-0.30000001192092896*x*y"  # float32(0.3), as its state dict holds
    assert sym.net.terms["prey"].constants.dtype == torch.float32
    assert sym.net.terms["prey"].constants.item() == torch.tensor(-0.3, dtype=torch.float32).item()


def test_with_terms_needs_formulas_of_both_state_columns():
    model = create_model("ude-lotka-volterra", hidden=8)
    for k in ("prey", "predator"):
        terms = {"prey": SympyModule("-0.4*x*y", ["x", "y"]), "predator": SympyModule("0.1*x*y", ["x", "y"])}
        terms[k] = SympyModule("0.1*a", ["a"])
        with pytest.raises(ValueError, match=rf"modules\['{k}'\] must be a formula of the 2 state columns"):
            model.with_terms(terms)
