import lightning as L
import pytest
import torch
from hybridzoo.datamodules.aerofoil import AerofoilDataModule
from hybridzoo.datamodules.aerofoil_features import ALPHA, LOG_RE, N_PROBLEM
from hybridzoo.physics.airfoil import naca4_from_code
from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil, cl_alpha_figure, error_histogram


def _trainer(tmp_path, **kw):
    kw.setdefault("logger", False)
    return L.Trainer(
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kw,
    )


@pytest.fixture(scope="module")
def dm():
    d = AerofoilDataModule(source="shipped", n_panels_per_side=40, batch_size=128)
    d.setup()
    return d


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden"):
        ResidualAerofoil(hidden=0)
    with pytest.raises(TypeError, match="depth"):
        ResidualAerofoil(depth=2.5)
    m = ResidualAerofoil()
    with pytest.raises(ValueError, match="x"):
        m(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="re"):
        m.predict_cl(naca4_from_code("0012", 30)[None], torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.warns(RuntimeWarning, match="never fitted"):
        out = m.predict_cl(naca4_from_code("0012", 30)[None], torch.zeros(1, 2), torch.full((1, 2), 1e6))
    assert torch.allclose(out["panel"], torch.zeros(1, 2), atol=1e-6)  # symmetric aerofoil at 0 deg


@pytest.mark.parametrize("boundary_layer", [True, False])
def test_only_the_hybrids_see_the_physics(dm, boundary_layer):
    torch.manual_seed(0)
    model = ResidualAerofoil(hidden=16, depth=2, residual_sees_panel=True, boundary_layer=boundary_layer)
    x, cl_panel, _, _ = dm.datasets["train"].tensors[:4]
    x, cl_panel = x[:64], cl_panel[:64]
    layer = x.clone()
    layer[:, N_PROBLEM:] += torch.randn_like(layer[:, N_PROBLEM:])  # other boundary-layer features
    panel = cl_panel + 0.1  # another panel lift
    with torch.no_grad():
        base, moved, lifted = model(x, cl_panel), model(layer, cl_panel), model(x, panel)
    torch.testing.assert_close(moved["nn"], base["nn"])  # NN-only sees shape, alpha and Re alone
    torch.testing.assert_close(lifted["nn"], base["nn"])
    for mode in ("residual", "pgml"):
        assert not torch.allclose(lifted[mode], base[mode])
        assert torch.allclose(moved[mode], base[mode]) is not boundary_layer


def test_short_training_beats_the_panel_method(dm, tmp_path):
    L.seed_everything(0)
    model = ResidualAerofoil(hidden=32, depth=2, lr=3e-3)
    trainer = _trainer(tmp_path, max_epochs=12)
    before = trainer.test(model, datamodule=dm, verbose=False)[0]
    trainer.fit(model, datamodule=dm)
    after = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert set(after) >= {"test/mae", "test/mae_pgml", "test/mae_nn", "test/mae_panel"}
    assert after["test/mae_panel"] == pytest.approx(before["test/mae_panel"])  # no learning in panel-only
    for key in ("test/mae", "test/mae_pgml", "test/mae_nn"):
        assert after[key] < 0.7 * before[key]
    assert after["test/mae"] < 0.5 * after["test/mae_panel"]
    assert bool(model.stats_fitted)

    # a raw contour through predict_cl reproduces the data-module path for a test aerofoil
    x, cl_panel, _, foil = dm.datasets["test"].tensors
    f = int(foil[0])
    rows = (foil == f).nonzero().squeeze(-1)[:3]
    with torch.no_grad():
        ref = model(x[rows], cl_panel[rows])
    got = model.predict_cl(
        dm.coords[f][None], x[rows, ALPHA][None], (10 ** x[rows, LOG_RE].double())[None], n_panels_per_side=40
    )
    for mode in ("residual", "pgml", "nn", "panel"):
        torch.testing.assert_close(got[mode][0], ref[mode], atol=2e-3, rtol=1e-3)

    # save -> load round trip keeps the predictions (the feature scaling is in the state dict)
    clone = ResidualAerofoil(hidden=32, depth=2)
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            clone(x[:50], cl_panel[:50])["residual"], model(x[:50], cl_panel[:50])["residual"]
        )


def test_figures(dm):
    x, cl_panel, cl, foil = dm.datasets["val"].tensors
    model = ResidualAerofoil(hidden=8, depth=1)
    with torch.no_grad():
        pred = model(x, cl_panel)
    fig = cl_alpha_figure(x, cl, pred, foil, dm.names, 3)
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 5  # XFOIL + four modes
    hist = error_histogram(cl, pred)
    assert len(hist.axes[0].patches) == 4


def test_tensorboard_logging(dm, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    small = AerofoilDataModule(source="shipped", n_train_foils=5, n_panels_per_side=40, batch_size=256)
    trainer = _trainer(tmp_path, max_epochs=1, logger=logger, num_sanity_val_steps=0)
    trainer.fit(ResidualAerofoil(hidden=8, depth=1), datamodule=small)
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert {"val/cl_alpha", "val/error_histogram"} <= set(acc.Tags()["images"])
    assert {"val/mae", "val/mae_panel", "val/mae_nn", "val/mae_pgml"} <= set(acc.Tags()["scalars"])


def test_cli_fast_dev_run(tmp_path, monkeypatch):
    cli = pytest.importorskip("hybridzoo.zoo.cli")
    monkeypatch.chdir(tmp_path)
    cli.lightning_cli(
        [
            "fit",
            "-c",
            "residual_aerofoil",
            "--trainer.fast_dev_run=1",
            "--trainer.logger=false",
            "--data.init_args.n_panels_per_side=40",
        ]
    )


def test_shipped_checkpoint_reproduces_its_card(dm, tmp_path):
    hub = pytest.importorskip("hybridzoo.zoo.hub")
    from hybridzoo.zoo.registry import read_packaged_card

    if read_packaged_card("residual-aerofoil") is None:
        pytest.skip("no shipped residual-aerofoil checkpoint in this checkout")
    model = hub.load_pretrained("residual-aerofoil")
    full = model.datamodule()  # the card's data config: the shipped data set at the card's panel resolution
    res = _trainer(tmp_path).test(model, datamodule=full, verbose=False)[0]
    for key in ("test/mae", "test/mae_pgml", "test/mae_nn", "test/mae_panel"):
        assert res[key] == pytest.approx(model.card["metrics"][key], rel=1e-4, abs=1e-6)
