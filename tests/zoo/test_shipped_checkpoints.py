"""Each shipped checkpoint reproduces the test metrics on its card, from a fresh process' point of view."""

import math

import lightning as L
import pytest
from hybridzoo.zoo import list_models, load_pretrained

SHIPPED = [r["name"] for r in list_models() if r["weights"]]
# metrics that are not a function of weights and data (wall-clock ratios) are not reproduced exactly
NOT_REPRODUCIBLE = ("time", "throughput")


@pytest.mark.parametrize("name", SHIPPED)
def test_card_metrics_reproduce(name):
    model = load_pretrained(name)
    dm = model.datamodule()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    measured = trainer.test(model, datamodule=dm, verbose=False)[0]
    card = model.card["metrics"]
    checked = 0
    for key, value in measured.items():
        if key in card and not any(w in key for w in NOT_REPRODUCIBLE):
            assert math.isclose(float(value), card[key], rel_tol=2e-2, abs_tol=1e-9), (key, float(value), card[key])
            checked += 1
    assert checked >= 2, f"{name}: no card metric was reproduced ({sorted(measured)} vs {sorted(card)})"
