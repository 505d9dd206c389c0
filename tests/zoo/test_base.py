import warnings

import lightning as L
import pytest
import torch
from hybridzoo.datamodules.digits import DigitsDataModule
from hybridzoo.zoo import create_model, load_pretrained
from hybridzoo.zoo.base import HybridModule
from hybridzoo.zoo.hub import load_state_dict
from hybridzoo.zoo.registry import create_datamodule
from hybridzoo.zoo.rk_net import RKNet
from hybridzoo.zoo.ude_lotka_volterra import UDELotkaVolterra
from torch.utils.data import DataLoader, TensorDataset

QUIET = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
         "accelerator": "cpu", "devices": 1}


def test_load_from_checkpoint_keeps_fine_tuned_weights_over_pretrained(tmp_path):
    model = create_model("ude-lotka-volterra", pretrained="ude-lotka-volterra")
    model.setup("fit")  # copies the shipped weights in, as at the start of fine-tuning
    shipped, _ = load_state_dict("ude-lotka-volterra")
    with torch.no_grad():  # stands for fine-tuning
        for p in model.parameters():
            p.add_(0.25)
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    assert not all(torch.equal(tuned[k], shipped[k]) for k in shipped)
    ckpt = tmp_path / "tuned.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": L.__version__}, ckpt)

    restored = UDELotkaVolterra.load_from_checkpoint(ckpt, weights_only=True)
    assert restored.hparams.pretrained == "ude-lotka-volterra"
    dm = create_datamodule("ude-lotka-volterra", n_trajectories=5, n_val=1, n_test=1, t_train=2, t_extrap=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        L.Trainer(**QUIET).validate(restored, datamodule=dm, verbose=False)
    for k, v in restored.state_dict().items():
        torch.testing.assert_close(v, tuned[k], rtol=0, atol=0, msg=f"{k} was replaced by the shipped weights")


def test_on_pretrained_loaded_is_called_once_the_weights_are_in(monkeypatch):
    shipped, _ = load_state_dict("ude-lotka-volterra")
    seen = []
    monkeypatch.setattr(UDELotkaVolterra, "on_pretrained_loaded",
                        lambda self: seen.append({k: v.clone() for k, v in self.state_dict().items()}))
    load_pretrained("ude-lotka-volterra")  # the hub
    create_model("ude-lotka-volterra", pretrained="ude-lotka-volterra").setup("fit")  # pretrained=NAME
    assert len(seen) == 2
    for state in seen:
        for k, v in shipped.items():
            torch.testing.assert_close(state[k], v, rtol=0, atol=0, msg=k)


class _MeanOfBatch(HybridModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(1, 1)

    def validation_step(self, batch, batch_idx):
        x = batch[0]
        self.log_with_baselines("val", "err", x.mean(), {"plain": x.mean()})


def test_log_with_baselines_epoch_value_is_the_mean_over_samples():
    x = torch.cat([torch.zeros(8), torch.ones(2)]).unsqueeze(1)  # batches [0,0,0,0] [0,0,0,0] [1,1]
    loader = DataLoader(TensorDataset(x), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = L.Trainer(**QUIET).validate(_MeanOfBatch(), loader, verbose=False)[0]
    assert res["val/err"] == pytest.approx(0.2)  # not the mean of batch means, 1/3
    assert res["val/err_plain"] == pytest.approx(0.2)


def test_weights_that_do_not_fit_leave_the_model_untouched():
    # hidden=8 against the shipped hidden=32: theta_3 and one bias have the shipped shapes, the rest do not
    model = UDELotkaVolterra(hidden=8, pretrained="ude-lotka-volterra")  # a bare constructor loads in setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"does not fit this model.*size mismatch for net\.") as err:
        model.setup("fit")
    assert "more)" in str(err.value)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=f"{k} was changed by a failed load")
    assert model.card is None


def test_a_checkpoint_of_another_zoo_model_is_refused_by_name():
    model = UDELotkaVolterra(pretrained="residual-aerofoil")
    message = "is a checkpoint of zoo model 'residual-aerofoil' .ResidualAerofoil., not of a UDELotkaVolterra"
    with pytest.raises(ValueError, match=message):
        model.setup("fit")
    assert model.card is None
    with pytest.raises(ValueError, match=message):
        create_model("ude-lotka-volterra", pretrained="residual-aerofoil")  # at once


def test_freeze_switches_its_own_groups_and_keeps_what_the_user_froze():
    model = create_model("ude-lotka-volterra", hidden=8)
    first = next(model.net.parameters())
    first.requires_grad_(False)  # frozen by hand
    model.setup("fit")  # freeze="none": before, this made every parameter trainable again
    assert not first.requires_grad and model.physics.theta3.requires_grad
    model.apply_freeze("physics")
    assert not model.physics.theta3.requires_grad
    model.apply_freeze("network")  # the physics group comes back, the network goes
    assert model.physics.theta3.requires_grad
    assert not any(p.requires_grad for p in model.net.parameters())
    model.apply_freeze("none")  # releases what freeze froze, not what the user froze
    assert not first.requires_grad
    assert all(p.requires_grad for p in model.net.parameters() if p is not first)


def test_freezing_the_network_of_a_model_without_physical_parameters_is_refused_at_setup():
    # it failed in configure_optimizers, after the data: "no trainable parameters: is everything frozen?"
    from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil

    model = ResidualAerofoil(hidden=8, depth=1, freeze="network")
    model.setup("test")  # nothing to train is fine where nothing trains
    with pytest.raises(ValueError, match="freeze='network', and ResidualAerofoil has no physical parameters"):
        model.setup("fit")
    by_hand = ResidualAerofoil(hidden=8, depth=1)
    by_hand.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter has requires_grad=False"):  # not blamed on freeze
        by_hand.setup("fit")


def test_the_cosine_schedule_decays_per_step_to_zero():
    model = RKNet(width=8, steps=1, resnet_blocks=1, mlp_hidden=8, lr=1e-2)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, num_sanity_val_steps=0, **QUIET)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=16, seed=0))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # 4 steps of T_max 4


def test_numpy_hyperparameters_leave_a_checkpoint_that_loads_with_weights_only(tmp_path):
    # np.float32(1e-3) passes as a learning rate, but a NumPy scalar in the saved hyperparameters made
    # load_from_checkpoint (torch.load with weights_only=True) fail with an UnpicklingError
    import numpy as np

    for bad in ({"lr": float("inf")}, {"lr": float("nan")}, {"weight_decay": float("inf")}):  # inf passed before
        with pytest.raises(ValueError, match=next(iter(bad))):
            RKNet(**bad)
    model = RKNet(lr=np.float32(1e-3), weight_decay=np.float64(0.0))
    trainer = L.Trainer(**QUIET)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "np.ckpt"
    trainer.save_checkpoint(ckpt)
    restored = RKNet.load_from_checkpoint(ckpt, weights_only=True)
    assert restored.hparams.lr == pytest.approx(1e-3) and type(restored.hparams.lr) is float
