"""Acceptance of the UDE issue, from the shipped weights: distillation recovers the missing terms."""

import sympy
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.zoo import create_model, distil, load_pretrained


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
