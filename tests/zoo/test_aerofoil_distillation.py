"""Symbolic distillation of the residual aerofoil's learned correction (zoo/aerofoil_distil.py)."""

import json
import types

import pytest
import sympy
import torch
from hybridzoo.datamodules.aerofoil_features import ALPHA, LOG_RE, N_FEATURES
from hybridzoo.physics.airfoil import cst_fit, naca4_from_code, parse_naca4
from hybridzoo.zoo import distil, load_pretrained
from hybridzoo.zoo.aerofoil_distil import INPUT_NAMES, SymbolicAerofoil, shape_features, symbolic_inputs
from hybridzoo.zoo.cli import main
from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil
from hybridzoo.zoo.symbolic import SympyModule
from torch import nn

alpha, log_re, t, x_t, m, x_m, cl_panel = sympy.symbols(INPUT_NAMES)
#: The planted correction: ΔCl = 0.7 α Cl_p − 0.17 Cl_p² + 0.03 Cl_p log10(Re/1e6) − 0.5 m.
PLANTED = {alpha * cl_panel: 0.7, cl_panel**2: -0.17, cl_panel * log_re: 0.03, m: -0.5}


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained("residual-aerofoil")


@pytest.fixture(scope="module")
def dm(pretrained):
    d = pretrained.datamodule()
    d.setup()
    return d


@pytest.mark.parametrize("code", ["2412", "4415", "6409", "1408", "0012"])
def test_shape_features_match_naca4_geometry(code):
    # In NACA's own chord frame (no re-normalisation), CST order 5 reproduces the analytic section: max
    # camber m at p, thickness t at 0.2998 chord (the maximum of the NACA thickness polynomial).
    mc, p, tc = parse_naca4(code)
    got_t, got_xt, got_m, got_xm = shape_features(cst_fit(naca4_from_code(code, 100, dtype=torch.float64), 5))
    assert float(got_t) == pytest.approx(tc, abs=2e-3)
    assert float(got_xt) == pytest.approx(0.2998, abs=0.01)
    assert float(got_m) == pytest.approx(mc, abs=1e-3)
    # The order-5 CST smooths the camber line's curvature jump at p, moving its peak by up to ~0.02 chord.
    assert float(got_xm) == pytest.approx(p, abs=0.03)  # p = 0 for a symmetric section, where x_m fades to 0


def test_camber_of_a_flipped_section_is_negative():
    # NACA 4412 upside down: camber -0.04 at 0.4 chord, thickness unchanged
    xy = naca4_from_code("4412", 100, dtype=torch.float64)
    flipped = torch.stack([xy[:, 0], -xy[:, 1]], -1).flip(0)  # still upper surface first
    up = shape_features(cst_fit(xy, 5))
    down = shape_features(cst_fit(flipped, 5))
    assert float(down[2]) == pytest.approx(-float(up[2]), abs=1e-6) and float(up[2]) == pytest.approx(0.04, abs=1e-3)
    torch.testing.assert_close(down[[0, 1, 3]], up[[0, 1, 3]], rtol=0, atol=1e-6)


def test_camber_position_is_continuous_as_camber_vanishes():
    # add a growing camber to NACA 0012: x_m must rise smoothly from 0, with no jump where the camber is tiny
    base = cst_fit(naca4_from_code("0012", 100, dtype=torch.float64), 5)
    eps = torch.linspace(0.0, 2e-2, 1001, dtype=torch.float64)
    cst = base.expand(eps.numel(), -1).clone()
    cst[:, :12] += eps[:, None]  # the same weight on both surfaces bends the mean line, not the thickness
    feats = shape_features(cst)
    m, x_m = feats[:, 2], feats[:, 3]
    assert float(m[0].abs()) < 1e-12 and abs(float(x_m[0])) < 1e-20
    assert bool((m[1:] > 0).all()) and float(x_m[-1]) > 0.3  # a real camber has a real position
    assert float(x_m.diff().abs().max()) < 0.01  # the old hard threshold at m = 1e-4 jumped by ~0.3


def test_symbolic_inputs_columns_and_checks(dm):
    x, cp, _, _ = dm.datasets["train"].tensors[:4]
    inp = symbolic_inputs(x[:5], cp[:5])
    assert inp.shape == (5, len(INPUT_NAMES))
    torch.testing.assert_close(inp[:, 0], x[:5, ALPHA])  # alpha, radians
    torch.testing.assert_close(inp[:, 1], x[:5, LOG_RE] - 6.0)  # log10(Re / 1e6)
    torch.testing.assert_close(inp[:, 2:6], shape_features(x[:5, :13]))
    torch.testing.assert_close(inp[:, 6], cp[:5])
    assert shape_features(torch.zeros(2, 3, 13)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="cst"):
        shape_features(torch.zeros(4, 12))
    with pytest.raises(ValueError, match="cl_panel"):
        symbolic_inputs(x[:5], cp[:4])


class PlantedCorrection(nn.Module):
    """Stands in for the residual MLP: the :data:`PLANTED` polynomial of the interpretable inputs."""

    def __init__(self, x_mean: torch.Tensor, x_std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x_mean", x_mean.clone())
        self.register_buffer("x_std", x_std.clone())

    def forward(self, zr: torch.Tensor) -> torch.Tensor:
        # zr = (standardised data row, Cl_panel): the residual network's input with residual_sees_panel
        x = zr[:, :N_FEATURES] * self.x_std + self.x_mean
        cols = dict(zip(INPUT_NAMES, symbolic_inputs(x, zr[:, -1]).unbind(-1)))
        expr = sum(c * mono for mono, c in PLANTED.items())
        return sympy.lambdify(sympy.symbols(INPUT_NAMES), expr, "torch")(*cols.values())


def test_distillation_recovers_a_planted_correction(dm):
    model = ResidualAerofoil(hidden=8, depth=1, residual_sees_panel=True, loss="l1")
    x = dm.datasets["train"].tensors[0]
    model.x_mean.copy_(x.mean(0))
    model.x_std.copy_(x.std(0))
    model.stats_fitted.fill_(True)
    model.net["residual"] = PlantedCorrection(model.x_mean, model.x_std)
    result = distil(model, dm, backend="sindy", fine_tune_epochs=0)
    coeffs = result.terms["correction"].expression.as_coefficients_dict()
    assert set(coeffs) == set(PLANTED), result.equations()  # no spurious terms
    for mono, truth in PLANTED.items():
        assert float(coeffs[mono]) == pytest.approx(truth, rel=0.01), mono
    assert max(c.complexity for c in result.terms["correction"].pareto) <= 36  # the model's quadratic library
    met = result.metrics
    assert met["distil/mae_vs_hybrid"] < 1e-4  # the formula is the planted network
    assert met["distil/gain_kept"] == pytest.approx(1.0, abs=1e-3)
    assert met["test/mae_symbolic"] == pytest.approx(met["test/mae"], abs=1e-4) and met["distil/terms_correction"] == 4


def test_distil_shipped_checkpoint_keeps_part_of_the_gain(pretrained, dm):
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    result = distil(pretrained, dm, backend="sindy", fine_tune_epochs=5)
    met = result.metrics
    card = pretrained.card["metrics"]
    # Measured on the card's test aerofoils: panel and hybrid errors are the card's.
    assert met["test/mae_panel"] == pytest.approx(card["test/mae_panel"], abs=1e-4)
    assert met["test/mae"] == pytest.approx(card["test/mae"], abs=1e-4)
    assert met["test/mae"] < met["test/mae_symbolic"] < met["test/mae_panel"]
    assert met["test/mae_symbolic_distilled"] < met["test/mae_panel"]
    assert 0.0 < met["distil/gain_kept"] <= 1.0
    gain = (met["test/mae_panel"] - met["test/mae_symbolic"]) / (met["test/mae_panel"] - met["test/mae"])
    assert met["distil/gain_kept"] == pytest.approx(gain)
    expr = result.terms["correction"].expression
    assert expr != 0 and expr.free_symbols <= set(sympy.symbols(INPUT_NAMES))
    assert isinstance(result.model, SymbolicAerofoil)
    # Fine-tuning lowered the hybrid's own loss (L1 against XFOIL) on the training rows.
    fit = result.terms["correction"]
    distilled = SymbolicAerofoil(SympyModule(fit.pareto[fit.selected].expression, INPUT_NAMES))
    x, cp, cl, _ = dm.datasets["train"].tensors
    with torch.no_grad():
        l1 = {k: float((mod(x, cp)["symbolic"] - cl).abs().mean()) for k, mod in
              (("tuned", result.model), ("distilled", distilled))}
    assert l1["tuned"] < l1["distilled"] - 1e-3, l1
    for k, v in pretrained.state_dict().items():  # distillation leaves the hybrid untouched
        torch.testing.assert_close(v, before[k])


def test_cli_distil_writes_files(tmp_path, capsys):
    out = tmp_path / "distil"
    args = ["distil", "residual-aerofoil", "--backend", "sindy", "--fine-tune-epochs", "0", "--out", str(out)]
    assert main(args) == 0
    assert "correction:" in capsys.readouterr().out
    eq = json.loads((out / "equations.json").read_text())
    assert set(eq["equations"]) == {"correction"}
    assert {"test/mae_symbolic", "test/mae_panel", "test/mae", "distil/gain_kept"} <= set(eq["metrics"])


def test_bad_input_gives_clear_errors(pretrained, dm):
    with pytest.raises(ValueError, match="untrained"):
        distil(ResidualAerofoil(), dm, backend="sindy")
    with pytest.raises(ValueError, match="backend must be one of"):
        distil(pretrained, dm, backend="magic")
    with pytest.raises(TypeError, match="does not support distillation"):
        distil(nn.Linear(2, 2), dm, backend="sindy")
    with pytest.raises(TypeError, match="AerofoilDataModule"):
        distil(pretrained, types.SimpleNamespace(setup=lambda stage=None: None, datasets={}), backend="sindy")
    with pytest.raises(ValueError, match="exactly the term"):
        pretrained.with_terms({"prey": nn.Identity()})


def test_distillation_data_names_a_datamodule_of_another_kind():
    from hybridzoo.zoo.aerofoil_distil import distillation_data

    with pytest.raises(TypeError, match="datamodule must be an AerofoilDataModule, got object"):
        distillation_data(load_pretrained("residual-aerofoil"), object())  # was an AttributeError on .setup
