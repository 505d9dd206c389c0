import numpy as np
import pytest
import sympy
import torch
from hybridzoo.zoo.distil import DistillationData, distil, trainer_device
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.symbolic_regression import (
    BackendUnavailable,
    Candidate,
    fit_pysr,
    fit_sindy,
    pareto_front,
    pysr_available,
    resolve_backend,
    select,
)

x, y = sympy.symbols("x y")


def _samples(fn, n=800, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.5, 10.0, size=(n, 2))
    target = fn(X[:, 0], X[:, 1])
    return X, target + noise * np.abs(target).mean() * rng.standard_normal(n)


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_sindy_recovers_planted_interaction_term(noise):
    X, target = _samples(lambda a, b: -0.4 * a * b, noise=noise)
    front = fit_sindy(X, target, ["x", "y"])
    best = front[select(front)]
    coeffs = best.expression.as_coefficients_dict()
    assert set(coeffs) == {x * y}, best.expression  # no spurious terms
    assert float(coeffs[x * y]) == pytest.approx(-0.4, rel=0.01)
    # the front is ordered by complexity with strictly falling loss
    assert [c.complexity for c in front] == sorted(c.complexity for c in front)
    assert all(a.loss > b.loss for a, b in zip(front, front[1:]))


def test_sindy_recovers_two_term_expression():
    X, target = _samples(lambda a, b: 0.1 * a * b - 0.4 * b)
    best = (front := fit_sindy(X, target, ["x", "y"]))[select(front)]
    coeffs = best.expression.as_coefficients_dict()
    assert set(coeffs) == {x * y, y}
    assert float(coeffs[y]) == pytest.approx(-0.4, rel=1e-3)


def test_pareto_front_and_selection():
    cands = [Candidate(1, 10.0, x), Candidate(2, 0.01, x * y), Candidate(3, 0.009, x * y + y),
             Candidate(3, 0.5, y), Candidate(4, 0.02, x)]
    front = pareto_front(cands)
    assert [c.complexity for c in front] == [1, 2, 3]
    assert front[select(front)].expression == x * y


def test_sympy_module_evaluates_and_trains():
    m = SympyModule(sympy.Float(-0.5) * x * y + sympy.Float(0.25) * y**2, ["x", "y"])
    inp = torch.tensor([[2.0, 3.0], [1.0, -1.0]])
    torch.testing.assert_close(m(inp), torch.tensor([-0.5 * 6 + 0.25 * 9, 0.5 + 0.25]))
    assert m.constants.numel() == 2
    opt = torch.optim.LBFGS(m.parameters(), line_search_fn="strong_wolfe")
    target = -0.4 * inp[:, 0] * inp[:, 1] + 0.1 * inp[:, 1] ** 2

    def closure():
        opt.zero_grad()
        loss = ((m(inp) - target) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    coeffs = m.expression().as_coefficients_dict()
    assert float(coeffs[x * y]) == pytest.approx(-0.4, abs=1e-4)
    with pytest.raises(ValueError, match="not among input_names"):
        SympyModule(x * sympy.Symbol("z"), ["x", "y"])


def test_backend_argument_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("magic")


def test_pysr_backend():
    ok, why = pysr_available(timeout=120)
    if not ok:
        with pytest.raises(BackendUnavailable, match="PySR"):
            fit_pysr(np.ones((4, 2)), np.ones(4), ["x", "y"])
        pytest.skip(why)
    X, target = _samples(lambda a, b: -0.4 * a * b, n=200)
    front = fit_pysr(X, target, ["x", "y"], niterations=20)
    best = front[select(front)]
    assert float(sympy.expand(best.expression).as_coefficients_dict()[x * y]) == pytest.approx(-0.4, rel=0.05)


def test_equal_constants_get_a_parameter_each():
    m = SympyModule("0.5*x + 0.5*y", ["x", "y"])
    assert m.constants.numel() == 2
    with torch.no_grad():
        m.constants[0] = 2.0
    e = m.expression()
    assert float(e.coeff(x)) == 2.0 and float(e.coeff(y)) == 0.5
    torch.testing.assert_close(m(torch.tensor([[1.0, 1.0]])), torch.tensor([2.5]))


@pytest.mark.parametrize(("text", "names"), [("0.3*gamma + 0.1*x", ["gamma", "x"]),
                                             ("0.2*S*I - 0.1*E", ["S", "I", "E"]), ("0.5*beta*N", ["beta", "N"])])
def test_input_names_that_sympy_knows_are_plain_symbols(text, names):
    m = SympyModule(text, names)
    assert m.expression().free_symbols == {sympy.Symbol(n) for n in names}
    inp = torch.arange(1.0, 1.0 + len(names)).unsqueeze(0)
    ref = sympy.lambdify([sympy.Symbol(n) for n in names], m.expression())(*inp[0].tolist())
    torch.testing.assert_close(m(inp), torch.tensor([float(ref)]))


def test_pysr_expressions_are_parsed_with_the_input_names(monkeypatch, tmp_path):
    import importlib
    import json
    import subprocess

    distil = importlib.import_module("hybridzoo.zoo.symbolic_regression")  # where fit_pysr looks them up

    rows = [{"complexity": 1, "loss": 1.0, "expression": "0.1"},
            {"complexity": 5, "loss": 0.01, "expression": "0.3*gamma*S - 0.3*I"}]

    def fake_run(cmd, **kwargs):  # [python, -c, worker, data.npz, out.json, options]: write out.json
        with open(cmd[4], "w") as fh:
            json.dump(rows, fh)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(distil, "pysr_available", lambda *a, **k: (True, "ok"))
    monkeypatch.setattr(distil.subprocess, "run", fake_run)
    front = fit_pysr(np.ones((4, 3)), np.ones(4), ["gamma", "S", "I"])
    best = front[-1].expression
    g, s, i = sympy.symbols("gamma S I")
    assert best.free_symbols == {g, s, i}
    assert SympyModule(best, ["gamma", "S", "I"]).constants.numel() == 2


# ---------------------------------------------------------------------------------------- input checks
def test_sindy_leaves_out_an_input_column_that_is_always_zero():
    X, _ = _samples(lambda a, b: a)
    X[:, 1] = 0.0  # every monomial with y is 0 at every sample: its column scaling used to divide by 0
    front = fit_sindy(X, 2.0 * X[:, 0], ["x", "y"])
    best = front[select(front)].expression
    assert set(best.as_coefficients_dict()) == {x}, best
    assert float(best.coeff(x)) == pytest.approx(2.0)
    zero = fit_sindy(X, np.zeros(len(X)), ["x", "y"])  # a zero target is fitted by 0, without warnings
    assert [c.expression for c in zero] == [0]


@pytest.mark.parametrize("where", ["inputs", "target"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sindy_and_pysr_refuse_non_finite_samples(where, bad):
    X, target = _samples(lambda a, b: a * b)
    (X if where == "inputs" else target)[3] = bad
    for fit in (fit_sindy, fit_pysr):  # checked before PySR is even looked for
        with pytest.raises(ValueError, match=f"{where} contains NaN or infinite values"):
            fit(X, target, ["x", "y"])


def test_input_names_must_name_every_input_column():
    X, target = _samples(lambda a, b: a * b)
    for fit in (fit_sindy, fit_pysr):
        with pytest.raises(ValueError, match=r"input_names must name each of the 2 input columns, got 1"):
            fit(X, target, ["x"])  # zip used to drop y: x*y came back as 1.0*x
        with pytest.raises(ValueError, match="input_names must name each of the 2 input columns, got 3"):
            fit(X, target, ["x", "y", "z"])
        with pytest.raises(TypeError, match="input_names must be a list of strings, got str"):
            fit(X, target, "xy")
    with pytest.raises(ValueError, match=r"target must have shape \(800,\)"):
        fit_sindy(X, target[:-1], ["x", "y"])
    with pytest.raises(ValueError, match="n_thresholds must be >= 1"):
        fit_sindy(X, target, ["x", "y"], n_thresholds=0)
    with pytest.raises(TypeError, match="max_degree must be an int"):
        fit_sindy(X, target, ["x", "y"], max_degree=2.5)


def test_pysr_timeout_is_backend_unavailable(monkeypatch):
    import importlib

    distil_module = importlib.import_module("hybridzoo.zoo.symbolic_regression")
    # Julia is not needed to reach the timeout: the worker subprocess really starts, and is killed
    monkeypatch.setattr(distil_module, "pysr_available", lambda *a, **k: (True, "ok"))
    with pytest.raises(BackendUnavailable, match=r"PySR did not finish within timeout=0.01 s"):
        fit_pysr(np.ones((5, 1)), np.ones(5), ["x"], timeout=0.01)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        fit_pysr(np.ones((5, 1)), np.ones(5), ["x"], timeout=0)


# ---------------------------------------------------------------------------------------- SympyModule
@pytest.mark.parametrize(("names", "error", "match"), [
    ("xy", TypeError, "input_names must be a list of strings, got str 'xy'"),
    (["x", 1], TypeError, "input_names must be a list of strings, got 1"),
    (["x", "x"], ValueError, r"input_names must be distinct, got \['x'\] more than once"),
])
def test_sympy_module_checks_input_names(names, error, match):
    with pytest.raises(error, match=match):
        SympyModule("2.0*x", names)


def test_sympy_module_constants_keep_the_precision_of_their_dtype():
    c = 0.123456789012345
    m64 = SympyModule(f"{c!r}*x", ["x"], dtype=torch.float64)
    assert m64.constants.dtype == torch.float64 and m64.constants.item() == c  # not rounded via float32
    inp = torch.tensor([[3.0]], dtype=torch.float64)
    assert m64(inp).item() == c * 3.0
    assert float(m64.expression(digits=17).coeff(x)) == c
    m32 = SympyModule(f"{c!r}*x", ["x"])  # the default dtype, like any module's parameters
    assert m32.constants.dtype == torch.get_default_dtype() == torch.float32
    for m in (m32, m64.float(), SympyModule(f"{c!r}*x", ["x"], dtype=torch.float64).to(torch.float32)):
        out = m(torch.tensor([[3.0]]))
        assert m.constants.dtype == out.dtype == torch.float32
        assert out.item() == (torch.tensor(c, dtype=torch.float32) * 3.0).item()
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):
        SympyModule("2.0*x", ["x"], dtype=torch.int64)


# ---------------------------------------------------------------------------------------- distil
class _Toy:
    """A conforming model outside the zoo: one term ``f = 3 x`` of an input drawn from torch's global RNG."""

    def __init__(self, names=("x",), symbolic_factory=None):
        self.names = list(names)
        self.symbolic_factory = symbolic_factory
        self.samples = []

    def distillation_data(self, dm):
        inp = torch.rand(200, 1)
        self.samples.append(inp)
        return DistillationData(inp, self.names, {"f": 3 * inp[:, 0]})

    def with_terms(self, modules):
        return (self.symbolic_factory or _HoldsTermInNet)(modules["f"])

    def distillation_metrics(self, symbolic, dm, fine_tune_epochs):
        return {}


class _HoldsTermInNet(torch.nn.Module):
    """A symbolic model laid out like the zoo's: its term in ``.net.terms``."""

    def __init__(self, f):
        super().__init__()
        from hybridzoo.zoo.ude_networks import TermStack

        self.net = TermStack({"f": f})


class _HoldsTermAsF(torch.nn.Module):
    """A symbolic model that keeps its term as ``.f``, not in ``.net.terms``."""

    def __init__(self, f):
        super().__init__()
        self.f = f


def test_distil_needs_no_net_attribute_on_the_symbolic_model():
    result = distil(_Toy(symbolic_factory=_HoldsTermAsF), datamodule=object(), backend="sindy")
    assert float(result.terms["f"].expression.coeff(x)) == pytest.approx(3.0)
    assert result.terms["f"].module is result.model.f


def test_distil_leaves_the_callers_rng_alone_and_samples_from_its_seed():
    toy = _Toy()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    distil(toy, datamodule=object(), backend="sindy", seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # it used to be left reseeded to 5
    torch.manual_seed(999)
    distil(toy, datamodule=object(), backend="sindy", seed=5)
    distil(toy, datamodule=object(), backend="sindy", seed=6)
    assert torch.equal(toy.samples[0], toy.samples[1])  # the seed, not the caller's state, decides
    assert not torch.equal(toy.samples[0], toy.samples[2])


@pytest.mark.parametrize(("seed", "error"), [(True, TypeError), (1.5, TypeError), ("7", TypeError),
                                             (-1, ValueError), (2**32, ValueError)])
def test_distil_checks_the_seed(seed, error):
    with pytest.raises(error, match="seed must be"):
        distil(_Toy(), datamodule=object(), backend="sindy", seed=seed)


def test_distil_checks_the_input_names_of_the_models_samples():
    with pytest.raises(ValueError, match="input_names must name each of the 1 input columns, got 2"):
        distil(_Toy(names=["x", "y"]), datamodule=object(), backend="sindy")


# ---------------------------------------------------------------------------------------- CSV
def test_to_csv_refuses_to_overwrite_unless_asked(tmp_path):
    result = distil(_Toy(), datamodule=object(), backend="sindy")
    path = tmp_path / "pareto.csv"
    assert result.to_csv(path) == path
    first = path.read_text()
    assert first.splitlines()[0] == "term,complexity,loss,score,selected,expression"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="pareto.csv exists; pass overwrite=True"):
        result.to_csv(path)
    assert path.read_text() == "keep me"
    result.to_csv(path, overwrite=True)
    assert path.read_text() == first == result.pareto_csv().replace("\r\n", "\n")


@pytest.mark.parametrize(("device", "expected"), [
    (torch.device("cpu"), {"accelerator": "cpu", "devices": 1}),
    (torch.device("cuda", 1), {"accelerator": "gpu", "devices": [1]}),
])
def test_fine_tuning_runs_on_the_models_device(device, expected):
    assert trainer_device(device) == expected
