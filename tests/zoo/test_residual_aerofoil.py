import lightning as L
import pytest
import torch
from hybridzoo.datamodules.aerofoil import AerofoilDataModule
from hybridzoo.datamodules.aerofoil_features import ALPHA, LOG_RE, N_PROBLEM
from hybridzoo.physics.airfoil import naca4_from_code, repanel
from hybridzoo.zoo.aerofoil_plots import cl_alpha_figure, error_histogram
from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil


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
    # "false" was stored and read as True; 2 built a network that forward then failed to multiply
    for flag, value in (("boundary_layer", "false"), ("residual_sees_panel", 2), ("residual_sees_panel", None)):
        with pytest.raises(TypeError, match=f"{flag} must be a bool"):
            ResidualAerofoil(**{flag: value})
    with pytest.raises(ValueError, match="loss must be one of"):  # "unhashable type: 'list'" before
        ResidualAerofoil(loss=["mse"])
    m = ResidualAerofoil()
    with pytest.raises(ValueError, match="x"):
        m(torch.zeros(4, 3), torch.zeros(4))
    x = torch.zeros(4, m.x_mean.shape[0])
    with pytest.raises(TypeError, match="x must have dtype torch.float32, got torch.float64"):
        m(x.double(), torch.zeros(4))  # the linear layers failed with "mat1 and mat2 must have the same dtype"
    with pytest.raises(TypeError, match="cl_panel must have dtype torch.float32"):
        m(x, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="re"):
        m.predict_cl(naca4_from_code("0012", 30)[None], torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.warns(RuntimeWarning, match="never fitted"):
        out = m.predict_cl(naca4_from_code("0012", 30)[None], torch.zeros(1, 2), torch.full((1, 2), 1e6))
    assert torch.allclose(out["panel"], torch.zeros(1, 2), atol=1e-6)  # symmetric aerofoil at 0 deg
    foil = naca4_from_code("0012", 30)[None]
    for coords, shape in ((foil[:0], (0, 2)), (foil, (1, 0))):  # no aerofoil, or no condition
        out = m.predict_cl(coords, torch.zeros(shape), torch.full(shape, 1e6))
        assert {k: tuple(v.shape) for k, v in out.items()} == {k: shape for k in ("residual", "pgml", "nn", "panel")}


def test_predict_cl_uses_the_training_resolution_and_the_model_dtype():
    m = ResidualAerofoil(hidden=8, depth=1)
    assert m.data_resolution() == (80, 60)  # AerofoilDataModule's defaults, which the zoo config keeps
    m.card = {"data": {"n_per_side": 80, "n_panels_per_side": 40}}  # a loaded checkpoint's card
    assert m.data_resolution() == (80, 40)
    m.stats_fitted.fill_(True)
    m.double()
    original = naca4_from_code("2412", 100, closed_te=False, dtype=torch.float32)
    alpha, re = torch.tensor([[0.0, 0.1]]), torch.full((1, 2), 1e6)
    got = m.predict_cl(original[None], alpha, re)
    assert all(v.dtype == torch.float64 and v.shape == (1, 2) for v in got.values())
    # the same as the 40-panel lift of the contour prepared as the data build stores it
    from hybridzoo.datamodules.aerofoil_build import prepare_shape
    from hybridzoo.physics.panel import hess_smith

    stored = prepare_shape(original, 80).float().double()
    expected = hess_smith(repanel(stored, 40), alpha[0].double()).cl
    torch.testing.assert_close(got["panel"][0], expected, rtol=1e-12, atol=1e-12)
    # each refusal says which check failed
    with pytest.raises(ValueError, match=r"coords\[0\] is not an aerofoil the data set admits: its height is 0\.012"):
        m.predict_cl(naca4_from_code("0012", 60)[None] * torch.tensor([1.0, 0.1]), alpha, re)  # 1.2 % thick
    with pytest.raises(ValueError, match=r"coords\[1\] .*clockwise"):
        m.predict_cl(torch.stack([original, original.flip(0)]), alpha.expand(2, -1), re.expand(2, -1))
    with pytest.raises(TypeError, match="n_panels_per_side"):
        m.predict_cl(original[None], alpha, re, n_panels_per_side=40.0)


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

    # The original contour of a test aerofoil through predict_cl gets the inputs, and so the lift, that its
    # rows have in the data set: predict_cl prepares it as the data build did (normalised, 80 panels a side,
    # float32) and re-panels it to the 40 panels a side of this fit, which the model noted. Before, it was
    # re-panelled straight to a fixed 60, and its boundary-layer inputs differed.
    assert model.data_resolution() == (80, 40)
    x, cl_panel, _, foil = dm.datasets["test"].tensors
    codes = ("6408", "0006")  # where a contour re-panelled straight to 40 moved a transition by 0.035 chords
    rows = [(foil == dm.names.index(f"naca{c}")).nonzero().squeeze(-1) for c in codes]
    rows = torch.stack([r[: min(map(len, rows))] for r in rows])  # (2, A)
    with torch.no_grad():
        ref = model(x[rows.reshape(-1)], cl_panel[rows.reshape(-1)])
    # the original contours, as the data build makes them
    originals = torch.stack([naca4_from_code(c, 200, closed_te=False, dtype=torch.float64) for c in codes])
    got = model.predict_cl(originals, x[rows, ALPHA].double(), 10 ** x[rows, LOG_RE].double())
    for mode in ("residual", "pgml", "nn", "panel"):
        torch.testing.assert_close(got[mode].reshape(-1), ref[mode], atol=1e-6, rtol=1e-6)
    # the resolution travels with Lightning checkpoints
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    restored = ResidualAerofoil(hidden=32, depth=2)
    restored.on_load_checkpoint(checkpoint)
    assert restored.data_resolution() == (80, 40)
    assert model.data_range() == restored.data_range() == ((-4.0, 10.0), (2e5, 1e7))  # and so does the range

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


@pytest.mark.parametrize("precision", ["32-true", "64-true"])
def test_tensorboard_logging(dm, tmp_path, precision):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    small = AerofoilDataModule(source="shipped", n_train_foils=5, n_panels_per_side=40, batch_size=256)
    # 64-true: the figures' validation rows are the data set's float32, which the float64 model refused
    trainer = _trainer(tmp_path, max_epochs=1, logger=logger, num_sanity_val_steps=0, precision=precision)
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
    # trained on the data set that ships: a rebuilt data file needs a re-released checkpoint
    from hybridzoo.datamodules.aerofoil import shipped_path
    from hybridzoo.datamodules.cache import sha256_file

    assert model.card["data_summary"]["sha256"] == sha256_file(shipped_path())
    full = model.datamodule()  # the card's data config: the shipped data set at the card's panel resolution
    res = _trainer(tmp_path).test(model, datamodule=full, verbose=False)[0]
    for key in ("test/mae", "test/mae_pgml", "test/mae_nn", "test/mae_panel"):
        assert res[key] == pytest.approx(model.card["metrics"][key], rel=1e-4, abs=1e-6)


QUIET = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False, num_sanity_val_steps=0)


def test_predict_cl_warns_outside_the_training_data():
    import warnings

    m = ResidualAerofoil(hidden=8, depth=1)
    m.stats_fitted.fill_(True)
    m.card = {"data": {"alphas": [-2.0, 0.0, 6.0], "reynolds": [1e6, 3e6]}}  # a loaded checkpoint's card
    assert m.data_range() == ((-2.0, 6.0), (1e6, 3e6))
    foil = naca4_from_code("2412", 60)[None]
    inside = torch.deg2rad(torch.tensor([[-2.0, 6.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.predict_cl(foil, inside, torch.tensor([[1e6, 3e6]]))
    degrees = r"alpha spans 0 to 85.9 deg, the training data -2 to 6 \(alpha is in radians\)"
    with pytest.warns(UserWarning, match=degrees):
        m.predict_cl(foil, torch.tensor([[0.0, 1.5]]), torch.full((1, 2), 1e6))  # 1.5 meant as degrees
    with pytest.warns(UserWarning, match=r"re spans 6 to 6, the training data 1e\+06 to 3e\+06"):
        m.predict_cl(foil, inside, torch.full((1, 2), 6.0))  # log10 Re given for Re
    assert ResidualAerofoil(hidden=8, depth=1).data_range() == ((-4.0, 10.0), (2e5, 1e7))  # the data's defaults
    with pytest.raises(ValueError, match="n_panels_per_side must be >= 4"):  # it was blamed on coords
        m.predict_cl(foil, inside, torch.full((1, 2), 1e6), n_panels_per_side=2)


def test_a_loaded_card_describes_the_data_by_what_it_held_not_by_its_generation_settings():
    # A model trained on a file of 40-point contours at 0-4 deg and Re 1e6 kept its data module's generation
    # settings (the defaults: 80 points, -4 to 10 deg, 2e5 to 1e7) in its card's "data": reloaded, it fed the
    # network other contours and lift, and did not warn at 8 deg
    m = ResidualAerofoil(hidden=8, depth=1)
    m.card = {"data": {"n_per_side": 80, "n_panels_per_side": 60, "alphas": [-4.0, 10.0], "reynolds": [2e5, 1e7]},
              "data_summary": {"n_per_side": 40, "n_panels_per_side": 60, "alpha_range_deg": [0.0, 4.0],
                               "reynolds": [1e6]}}
    assert m.data_resolution() == (40, 60)
    assert m.data_range() == ((0.0, 4.0), (1e6, 1e6))
    del m.card["data_summary"]  # a card without a summary (save_pretrained without one) keeps the settings
    assert m.data_resolution() == (80, 60) and m.data_range() == ((-4.0, 10.0), (2e5, 1e7))


def test_feature_scaling_is_fitted_on_the_training_rows_only(tmp_path):
    dm = AerofoilDataModule(source="shipped", n_train_foils=5, n_panels_per_side=40, batch_size=256)
    model = ResidualAerofoil(hidden=8, depth=1)
    L.Trainer(max_steps=1, limit_val_batches=0, **QUIET).fit(model, datamodule=dm)
    x = dm.datasets["train"].tensors[0]
    torch.testing.assert_close(model.x_mean, x.mean(0))
    torch.testing.assert_close(model.x_std, x.std(0).clamp_min(1e-6))


@pytest.mark.parametrize("loss", ["l1", "huber"])
def test_the_loss_argument_is_the_training_loss(loss):
    dm = AerofoilDataModule(source="shipped", n_train_foils=5, n_panels_per_side=40)
    dm.setup()
    torch.manual_seed(0)
    model = ResidualAerofoil(hidden=8, depth=1, loss=loss)
    batch = tuple(t[:64] for t in dm.datasets["train"].tensors)
    with torch.no_grad(), pytest.warns(UserWarning):  # self.log without a Trainer
        got = model.training_step(batch, 0)
        pred = model(batch[0], batch[1])
    reference = {"l1": torch.nn.functional.l1_loss,  # torch's own, not the module's table
                 "huber": lambda a, b: torch.nn.functional.huber_loss(a, b, delta=0.05)}[loss]
    want = sum(reference(pred[m], batch[2]) for m in ("residual", "pgml", "nn"))
    mse = sum(torch.nn.functional.mse_loss(pred[m], batch[2]) for m in ("residual", "pgml", "nn"))
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, mse)


def test_the_residual_mode_is_the_panel_lift_plus_a_correction_of_the_inputs():
    # y = Cl_panel + NN(x): without residual_sees_panel the network never sees Cl_panel, so shifting it shifts
    # the prediction by exactly as much (a model that dropped the panel term still trained and beat the panel)
    torch.manual_seed(0)
    model = ResidualAerofoil(hidden=8, depth=1)
    x, cl_panel = torch.randn(16, model.x_mean.shape[0]), torch.randn(16)
    with torch.no_grad():
        base, shifted = model(x, cl_panel), model(x, cl_panel + 0.1)
    torch.testing.assert_close(shifted["residual"] - base["residual"], torch.full((16,), 0.1))
    assert not torch.allclose(shifted["pgml"] - base["pgml"], torch.full((16,), 0.1))  # PGML feeds it inside


def test_trainer_predict_gives_every_mode_of_the_test_rows(dm, tmp_path):
    # there was no predict_step (forward got the whole batch) and no predict_dataloader
    torch.manual_seed(0)
    model = ResidualAerofoil(hidden=8)
    model.x_mean.copy_(dm.datasets["train"].tensors[0].mean(0))
    model.stats_fitted.fill_(True)
    batches = _trainer(tmp_path).predict(model, datamodule=dm)
    x, cl_panel = dm.datasets["test"].tensors[:2]
    with torch.no_grad():
        expected = model(x, cl_panel)
    for mode in ("residual", "pgml", "nn", "panel"):
        torch.testing.assert_close(torch.cat([b[mode] for b in batches]), expected[mode])
    with pytest.warns(RuntimeWarning, match="never fitted"):
        ResidualAerofoil(hidden=8).predict_step((x[:4], cl_panel[:4]), 0)
