import numpy as np
import pytest
import sympy
import torch
from hybridzoo.zoo.distil import (
    BackendUnavailable,
    Candidate,
    fit_pysr,
    fit_sindy,
    pareto_front,
    pysr_available,
    resolve_backend,
    select,
)
from hybridzoo.zoo.symbolic import SympyModule

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

    distil = importlib.import_module("hybridzoo.zoo.distil")  # the module, not the function of that name

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
