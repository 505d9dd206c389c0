"""Acceptance of the UDE issue, from the shipped weights: distillation recovers the missing terms."""

import sympy
from hybridzoo.zoo import distil, load_pretrained


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
