import lightning as L
import pytest
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.zoo import create_model, load_pretrained
from hybridzoo.zoo.hub import save_pretrained
from hybridzoo.zoo.symbolic import SympyModule
from hybridzoo.zoo.ude_lotka_volterra import UDELotkaVolterra
from lightning.pytorch.callbacks import ModelCheckpoint

SMALL_DATA = dict(n_trajectories=6, n_val=1, n_test=1, t_train=3.0, t_extrap=5.0, dt=0.1, noise=0.0)
SMALL_MODEL = dict(hidden=16, adam_epochs=30, lbfgs_epochs=6, lbfgs_max_iter=10, window_start=0.3,
                   window_epochs=3)


def _trainer(epochs):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     check_val_every_n_epoch=1000)


def _full_window_loss(model, dm):
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        return float(model.trajectory_loss(batch))


def test_training_lowers_loss_and_beats_physics_only(tmp_path):
    L.seed_everything(0)
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL_DATA)
    dm.setup()
    model = create_model("ude-lotka-volterra", **SMALL_MODEL)
    before = _full_window_loss(model, dm)
    trainer = _trainer(model.total_epochs)
    trainer.fit(model, datamodule=dm)
    after = _full_window_loss(model, dm)
    assert trainer.current_epoch == model.total_epochs
    assert after < 0.05 * before, (before, after)
    m = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert m["test/traj_mse"] < 0.1 * m["test/traj_mse_physics"], m
    assert m["test/extrap_mse"] < 0.1 * m["test/extrap_mse_physics"], m


def test_freeze_network_trains_only_physics(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL_DATA)
    model = create_model("ude-lotka-volterra", freeze="network", hidden=8, adam_epochs=3, lbfgs_epochs=0)
    net_before = [p.detach().clone() for p in model.net.parameters()]
    theta_before = model.physics.theta3.item()
    _trainer(3).fit(model, datamodule=dm)
    assert all(torch.equal(a, b) for a, b in zip(net_before, model.net.parameters()))
    assert model.physics.theta3.item() != theta_before


def test_fine_tune_shipped_weights_on_shifted_system(tmp_path):
    shifted = dict(SMALL_DATA, alpha=1.2, beta=0.45, gamma=0.12, delta=0.35, t_train=5.0, t_extrap=7.0)
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **shifted)
    dm.setup()
    # the documented fine-tuning path, with the shipped schedule (100 Adam epochs first when from scratch):
    # the same as `hybridzoo fit ... --model.pretrained NAME`
    model = create_model("ude-lotka-volterra", pretrained="ude-lotka-volterra", alpha=1.2, lbfgs_max_iter=10)
    model.setup("fit")  # loads the shipped weights
    assert model.card["name"] == "ude-lotka-volterra"
    before = _full_window_loss(model, dm)
    _trainer(2).fit(model, datamodule=dm)
    after = _full_window_loss(model, dm)
    assert after < 0.5 * before, (before, after)


def test_forward_shapes_and_physics_only_is_exponential():
    model = create_model("ude-lotka-volterra", hidden=8)
    t = torch.linspace(0, 1, 11)
    out = model(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), t, use_net=False)
    assert out.shape == (2, 11, 2)
    torch.testing.assert_close(out[0, -1, 0], torch.exp(torch.tensor(1.1)), rtol=1e-4, atol=0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m(torch.tensor([[-1.0, 2.0]]), torch.linspace(0, 1, 3)), "y0 must be strictly positive"),
        (lambda m: m(torch.ones(2, 3), torch.linspace(0, 1, 3)), "y0 must have last dimension 2"),
        (lambda m: m(torch.tensor([[float("nan"), 1.0]]), torch.linspace(0, 1, 3)), "y0 contains NaN"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(create_model("ude-lotka-volterra", hidden=8))


def test_the_integration_runs_in_the_models_dtype():
    y0, t = torch.tensor([[1.0, 2.0]]), torch.linspace(0, 1, 5)
    model = create_model("ude-lotka-volterra", hidden=8)
    assert model(y0.double(), t).dtype == torch.float32  # the layers failed on float64 input
    assert model.learned_terms(y0.double())["prey"].dtype == torch.float32
    double = create_model("ude-lotka-volterra", hidden=8).double()
    assert double(y0, t).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(freeze="everything"), "freeze must be one of"),
        (dict(window_start=0.0), "window_start must be in"),
        (dict(adam_epochs=-1), "adam_epochs must be a non-negative int"),
        (dict(activation="relu6"), "activation must be one of"),
        (dict(lr=0.0), "lr must be a positive number"),
        (dict(state_scale=0.0), "state_scale must be positive"),
        (dict(state_scale=-10.0), "state_scale must be positive"),
        (dict(term_scale=float("nan")), "term_scale must be finite"),
        (dict(lbfgs_max_iter=0), "lbfgs_max_iter must be >= 1"),
        (dict(lbfgs_max_iter=-3), "lbfgs_max_iter must be >= 1"),
        (dict(method="nonsense"), "method must be one of"),
        (dict(rtol=0.0), "rtol must be positive"),
        (dict(atol=-1e-9), "atol must be positive"),
        (dict(terms={"prey": "-0.4*x*y"}), "terms must give exactly"),
        (dict(terms={"prey": "-0.4*x*z", "predator": "0.1*x*y"}), r"terms\['prey'\]"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("ude-lotka-volterra", **kwargs)


def _errors(model, dm):
    """(full-window training loss, test-trajectory MSE) of ``model`` on ``dm``."""
    with torch.no_grad():
        train = float(model.trajectory_loss(next(iter(dm.train_dataloader()))))
        test = float(model.trajectory_errors(next(iter(dm.test_dataloader())))["traj_mse"])
    return train, test


def test_fine_tuning_shipped_weights_continues_the_fit_on_its_own_data(tmp_path):
    # README: model = load_pretrained(NAME); Trainer(max_epochs=...).fit(model, datamodule=dm). Restarting the
    # schedule (Adam at lr 1e-2 on a fifth of the window) took the training loss from 1e-3 to 4e6 in one epoch.
    model = load_pretrained("ude-lotka-volterra")
    model.hparams.lbfgs_max_iter = 3  # a short L-BFGS epoch keeps the test fast
    dm = model.datamodule(cache_dir=str(tmp_path), n_trajectories=5, n_val=1, n_test=1)  # its own system
    dm.setup()
    train_before, test_before = _errors(model, dm)
    trainer = _trainer(1)
    trainer.fit(model, datamodule=dm)
    train_after, test_after = _errors(model, dm)
    assert train_after <= train_before, (train_before, train_after)  # L-BFGS with a line search on the whole window
    assert test_after < 2 * test_before, (test_before, test_after)
    adam, lbfgs = trainer.optimizers
    assert not adam.state and lbfgs.state  # no Adam warm-up


def test_pretrained_weights_mark_the_model_as_trained():
    assert not create_model("ude-lotka-volterra", hidden=8).fine_tuning  # from scratch: the full schedule
    bare = UDELotkaVolterra(pretrained="ude-lotka-volterra")
    assert not bare.fine_tuning
    bare.setup("fit")  # a bare constructor leaves the weights to the fit's setup
    assert bare.fine_tuning
    model = create_model("ude-lotka-volterra", pretrained="ude-lotka-volterra")
    assert model.fine_tuning  # create_model loads them at once
    model.trainer = L.Trainer(accelerator="cpu", logger=False)  # at epoch 0 of a fit
    assert model.fitted_points(101) == 101  # the whole window, no curriculum
    assert model.total_epochs == model.hparams.lbfgs_epochs  # only the L-BFGS phase


TINY = dict(hidden=8, adam_epochs=3, lbfgs_epochs=3, lbfgs_max_iter=2, window_start=0.3, window_epochs=2)
TINY_DATA = dict(n_trajectories=4, n_val=1, n_test=1, t_train=2.0, t_extrap=3.0, dt=0.2, noise=0.0)


@pytest.mark.parametrize("fine_tuning", [True, False])
def test_fine_tuning_mark_survives_a_checkpoint_resume_and_only_then(tmp_path, fine_tuning):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path / "data"), **TINY_DATA)
    L.seed_everything(0)
    model = create_model("ude-lotka-volterra", **TINY)
    if fine_tuning:  # a trained model, saved and loaded back the way shipped weights are
        _trainer(model.total_epochs).fit(model, datamodule=dm)
        model = load_pretrained(save_pretrained(model, tmp_path / "tiny", name="tiny"))
    first = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                      callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="run")])
    first.fit(model, datamodule=dm)
    resumed = create_model("ude-lotka-volterra", **TINY)  # fresh: only the checkpoint tells
    second = _trainer(2)
    second.fit(resumed, datamodule=dm, ckpt_path=tmp_path / "ckpt" / "run.ckpt")
    assert second.current_epoch == 2
    adam, lbfgs = second.optimizers
    n_train = int(next(iter(dm.train_dataloader()))["n_train"][0])
    if fine_tuning:  # both epochs were L-BFGS on the whole window
        assert not adam.state and lbfgs.state
        assert resumed.fitted_points(n_train) == n_train and resumed.fine_tuning
    else:  # from scratch, epochs 0 and 1 are the Adam warm-up on the short window
        assert adam.state and not lbfgs.state
        assert resumed.fitted_points(n_train) < n_train and not resumed.fine_tuning


def test_distilled_model_checkpoint_loads_back(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path / "data"), **TINY_DATA)
    model = create_model("ude-lotka-volterra", **TINY)
    # two constants per term, inputs not named x, y; the linear b term is folded into theta_3
    names = ["a", "b"]
    sym = model.with_terms({"prey": SympyModule("-0.3*a*b + 0.001*a**2", names),
                            "predator": SympyModule("0.15*a*b - 0.2*b + 0.002*b**2", names)})
    start = {k: v.clone() for k, v in sym.state_dict().items()}
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="sym")])
    trainer.fit(sym, datamodule=dm)
    tuned = sym.state_dict()
    assert not torch.equal(tuned["net.terms.prey.constants"], start["net.terms.prey.constants"])

    restored = UDELotkaVolterra.load_from_checkpoint(tmp_path / "sym.ckpt", weights_only=True)
    for k, v in tuned.items():
        torch.testing.assert_close(restored.state_dict()[k], v, rtol=0, atol=0, msg=k)
    y0, t = torch.tensor([[3.0, 4.0]]), torch.linspace(0, 2, 11)
    with torch.no_grad():
        torch.testing.assert_close(restored(y0, t), sym(y0, t), rtol=0, atol=0)
    assert str(restored.net.terms["predator"].expression()) == str(sym.net.terms["predator"].expression())
    # the formulas as plain strings of x and y (the stored templates); the constants come from the state dict
    assert restored.hparams.terms == sym.hparams.terms == {
        "prey": "0.0010000000474974513*x**2 - 0.30000001192092896*x*y",
        "predator": "0.15000000596046448*x*y + 0.0020000000949949026*y**2"}


def test_tolerances_reach_the_adaptive_solver():
    y0, t = torch.tensor([[10.0, 5.0]], dtype=torch.float64), torch.linspace(0.0, 5.0, 11, dtype=torch.float64)
    calls, results = {}, {}
    for rtol, atol in ((1e-9, 1e-11), (1e-3, 1e-5)):
        torch.manual_seed(0)  # the same network for both
        model = create_model("ude-lotka-volterra", hidden=8, method="dopri5", rtol=rtol, atol=atol).double()
        field, count = model.vector_field, [0]

        def counted(*args, field=field, count=count, **kwargs):
            count[0] += 1
            return field(*args, **kwargs)

        model.vector_field = counted
        with torch.no_grad():
            results[rtol] = model(y0, t)
        calls[rtol] = count[0]
    rk4 = create_model("ude-lotka-volterra", hidden=8, method="rk4", substeps=200).double()
    rk4.load_state_dict(model.state_dict())
    with torch.no_grad():
        exact = rk4(y0, t)  # RK4 with 200 steps per interval: converged far below either tolerance
    assert calls[1e-3] < calls[1e-9] / 3, calls
    tight, loose = (((results[r] - exact) / exact).abs().max() for r in (1e-9, 1e-3))  # relative errors
    assert tight < 1e-7 < loose, (tight, loose)


def test_the_loss_scale_is_that_of_the_whole_training_window(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = create_model("ude-lotka-volterra", hidden=8)
    batch = next(iter(dm.train_dataloader()))
    n, k = int(batch["n_train"][0]), 4
    with torch.no_grad():
        got = model.trajectory_loss(batch, k)
        pred = model(batch["y0"], batch["t"][0][:k])
    scale = batch["obs"][:, :n].abs().mean(dim=(0, 1))  # the same for every window of the curriculum
    torch.testing.assert_close(got, (((pred - batch["obs"][:, :k]) / scale) ** 2).mean())


def test_the_fitted_window_grows_linearly_over_window_epochs(at_epoch):
    model = create_model("ude-lotka-volterra", hidden=8, adam_epochs=2, lbfgs_epochs=6, window_start=0.2,
                         window_epochs=4)
    for epoch, n in ((0, 21), (1, 21), (2, 41), (3, 61), (4, 81), (5, 101), (7, 101)):
        at_epoch(model, epoch)
        assert model.fitted_points(101) == n, epoch


class _LbfgsMemory(UDELotkaVolterra):
    def trajectory_loss(self, batch, n_points=None):
        if self.current_epoch not in self.seen:  # the first loss of each epoch
            state = next(iter(self.trainer.optimizers[1].state.values()), {})
            self.seen[self.current_epoch] = (n_points, "old_dirs" in state)
        return super().trajectory_loss(batch, n_points)


def test_lbfgs_forgets_its_curvature_when_the_window_grows_and_only_then(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = _LbfgsMemory(hidden=8, adam_epochs=0, lbfgs_epochs=3, lbfgs_max_iter=2, window_start=0.3,
                         window_epochs=2)
    model.seen = {}
    L.Trainer(max_epochs=3, limit_val_batches=0, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0).fit(model, datamodule=dm)
    assert model.seen == {0: (7, False), 1: (11, False), 2: (11, True)}


def test_the_extrapolation_error_starts_after_the_training_window(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **TINY_DATA)
    model = create_model("ude-lotka-volterra", hidden=8)
    batch = dict(next(iter(dm.test_dataloader())))
    n = int(batch["n_train"][0])
    with torch.no_grad():
        clean = model(batch["y0"], batch["t"][0]).clone()
    clean[:, n - 1] += 1.0  # off at the last time of the training window only
    batch["clean"] = clean
    err = model.trajectory_errors(batch)
    assert float(err["extrap_mse"]) == 0.0
    assert float(err["traj_mse"]) == pytest.approx(1 / n)
