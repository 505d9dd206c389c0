import lightning as L
import pytest
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.zoo import create_model

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
    # the documented fine-tuning path: the same as `hybridzoo fit ... --model.pretrained NAME`
    model = create_model("ude-lotka-volterra", pretrained="ude-lotka-volterra", alpha=1.2,
                         adam_epochs=0, lbfgs_epochs=2, lbfgs_max_iter=10, window_epochs=0)
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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(freeze="everything"), "freeze must be one of"),
        (dict(window_start=0.0), "window_start must be in"),
        (dict(adam_epochs=-1), "adam_epochs must be a non-negative int"),
        (dict(activation="relu6"), "activation must be one of"),
        (dict(lr=0.0), "lr must be a positive number"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("ude-lotka-volterra", **kwargs)
