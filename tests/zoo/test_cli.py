import json
import shlex
import warnings
from importlib import resources
from pathlib import Path

import pytest
import torch
from hybridzoo.zoo.checkpointing import ZooCheckpoint
from hybridzoo.zoo.cli import _kv, main, resolve_config_args, tools_parser

# rk_net_mnist needs MNIST's IDX files, which cannot be had offline: tests/zoo/test_rk_net.py runs its
# fast_dev_run on small IDX files that it writes
NEEDS_EXTERNAL_DATA = {"rk_net_mnist.yaml"}
CONFIGS = sorted(p.name for p in resources.files("hybridzoo.configs").iterdir()
                 if p.name.endswith(".yaml") and p.name not in NEEDS_EXTERNAL_DATA)


@pytest.mark.parametrize("config", CONFIGS)
def test_fit_fast_dev_run_for_every_config(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["fit", "-c", config.removesuffix(".yaml"), "--trainer.fast_dev_run=1",
               "--trainer.accelerator=cpu", "--trainer.devices=1"])
    assert rc == 0
    # nothing is left in the working directory: no checkpoint (Lightning wrote last.ckpt under fast_dev_run,
    # into ./checkpoints, the shipped weights' folder in a source checkout), no config.yaml
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("config.yaml"))


def test_fit_without_checkpointing(tmp_path, monkeypatch):
    # Lightning refuses a checkpoint callback beside enable_checkpointing=False: the zoo's default one goes
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", "ude_lotka_volterra", "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu",
                 "--trainer.enable_checkpointing=false", "--trainer.logger=false"]) == 0
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_bad_model_or_data_value_is_a_one_line_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="^hybridzoo: ValueError: solver must be one of .*got 'foo'$"):
        main(["fit", "-c", "rk_net_digits", "--model.solver", "foo", "--trainer.fast_dev_run=1"])
    with pytest.raises(SystemExit, match="^hybridzoo: ValueError: .*batch_size"):
        main(["fit", "-c", "rk_net_digits", "--data.init_args.batch_size", "0", "--trainer.fast_dev_run=1"])
    # --model.pretrained: an unknown name, and another model's card, before the Trainer starts
    with pytest.raises(SystemExit, match="^hybridzoo: ValueError: unknown checkpoint 'no-such-model'"):
        main(["fit", "-c", "ude_lotka_volterra", "--model.pretrained", "no-such-model", "--trainer.fast_dev_run=1"])
    with pytest.raises(SystemExit, match="^hybridzoo: ValueError: .*checkpoint of zoo model 'residual-aerofoil'"):
        main(["test", "-c", "ude_lotka_volterra", "--model.pretrained", "residual-aerofoil"])
    assert not list(tmp_path.rglob("lightning_logs"))  # refused before a Trainer ran


def test_what_would_fail_after_the_data_is_a_one_line_message_before_it(tmp_path, monkeypatch):
    # both used to fail in a traceback, after prepare_data: minutes of NS simulation before the look-ahead check
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="look-ahead 20 exceeds the DataModule's window=16"):
        main(["fit", "-c", "solver_in_the_loop_ns", "--model.curriculum", "null", "--model.look_ahead", "20",
              "--trainer.fast_dev_run=1"])
    with pytest.raises(SystemExit, match="ResidualAerofoil has no physical parameters to train"):
        main(["fit", "-c", "residual_aerofoil", "--model.freeze", "network", "--trainer.fast_dev_run=1"])


def test_the_override_warning_compares_values_not_their_spelling():
    from hybridzoo.zoo.cli_checkpoints import _warn_overridden_by_checkpoint

    saved = {"hyper_parameters": {"center": (2.0, 2.0), "hidden": 8}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tuple in the checkpoint, a list on the command line: the same value
        _warn_overridden_by_checkpoint(["--model.center", "[2.0, 2.0]", "--model.init_args.hidden=8"], saved)
    with pytest.warns(UserWarning, match="--model.hidden 16 is replaced"):
        _warn_overridden_by_checkpoint(["--model.init_args.hidden", "16"], saved)


def test_config_names_resolve_to_packaged_files():
    args = resolve_config_args(["fit", "-c", "ude-lotka-volterra"])
    assert Path(args[2]).is_file() and args[2].endswith("ude_lotka_volterra.yaml")
    assert resolve_config_args(["fit", "--config=ude_lotka_volterra"])[1].endswith("ude_lotka_volterra.yaml")
    assert resolve_config_args(["fit", "-c", "no/such.yaml"])[2] == "no/such.yaml"


def test_fit_then_test_with_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["-c", "ude_lotka_volterra", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
              "--model.adam_epochs=2", "--model.lbfgs_epochs=1", "--model.hidden=8",
              "--data.n_trajectories=5", "--data.n_val=1", "--data.n_test=1", "--data.t_train=2",
              "--data.t_extrap=3"]
    assert main(["fit", *common, "--trainer.max_epochs=3", "--trainer.check_val_every_n_epoch=1"]) == 0
    ckpts = sorted(tmp_path.glob("lightning_logs/version_0/checkpoints/*.ckpt"))
    assert any(p.name == "last.ckpt" for p in ckpts) and len(ckpts) == 2  # best by val/traj_mse + last
    assert main(["test", *common, f"--ckpt_path={ckpts[0]}"]) == 0
    # a bad --ckpt_path is one line, before prepare_data and setup (Lightning read it after them, in a traceback)
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    for ckpt, match in ((tmp_path / "none.ckpt", "none.ckpt: no such file"),
                        (tmp_path / "notes.ckpt", "not a Lightning checkpoint torch can load")):
        with pytest.raises(SystemExit, match=match):
            main(["test", *common, f"--ckpt_path={ckpt}"])
    with pytest.warns(UserWarning, match=r"--model.hidden 16 is replaced by the --ckpt_path checkpoint's own hidden=8"):
        assert main(["test", *common, "--model.hidden=16", f"--ckpt_path={ckpts[0]}"]) == 0
    # LightningCLI builds the checkpoint's own class (UDELotkaVolterra) under another model's config
    with pytest.raises(SystemExit, match="AerofoilDataModule is the DataModule of zoo model.s. residual-aerofoil"):
        main(["test", "-c", "residual_aerofoil", f"--ckpt_path={ckpts[0]}"])
    other = tmp_path / "other.ckpt"  # a checkpoint of this class whose tensors are not this model's
    torch.save({"state_dict": {"net.weight": torch.zeros(2)}, "hyper_parameters": {}}, other)
    with pytest.raises(SystemExit, match="holds another model's weights than UDELotkaVolterra's"):
        main(["test", *common, f"--ckpt_path={other}"])
    events = list(tmp_path.glob("lightning_logs/version_*/events.out.tfevents.*"))
    assert events, "TensorBoard logs were written"


def test_zoo_list_and_show(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "ude-lotka-volterra" in out and "Rackauckas" in out
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "ude-lotka-volterra" for r in rows)
    assert main(["zoo", "show", "ude-lotka-volterra"]) == 0
    card = capsys.readouterr().out
    assert '"sha256"' in card and "test/extrap_mse_physics" in card
    assert main(["zoo", "show", "ude-lotka-volterra", "--json"]) == 0  # the card alone: a JSON reader takes it
    assert json.loads(capsys.readouterr().out)["model"] == "ude-lotka-volterra"


def test_unknown_command_and_model(capsys):
    assert main(["frobnicate"]) == 2
    out, err = capsys.readouterr()
    assert "unknown command 'frobnicate'" in err and "console script" in err and not out
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert "console script" in out and not err  # asked for: on stdout, so that `hybridzoo --help | less` works
    with pytest.raises(SystemExit, match="unknown checkpoint"):
        main(["zoo", "show", "nope"])


def test_data_build(capsys):
    assert main(["data", "build", "ude-lotka-volterra", "--data", "n_trajectories=5", "n_val=1", "n_test=1"]) == 0
    assert "data ready at" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="rk-net-mnist's data needs no build step: it reads IDX files"):
        main(["data", "build", "rk-net-mnist"])


def test_repeated_override_flags_accumulate_and_a_key_twice_is_an_error():
    ns = tools_parser().parse_args(["zoo", "release", "x", "--out", "o", "--trainer", "max_steps=5",
                                    "--trainer", "max_time=00:00:01:00", "--data", "a=1"])
    assert ns.trainer == ["max_steps=5", "max_time=00:00:01:00"] and ns.data == ["a=1"]
    with pytest.raises(SystemExit, match="--data sets 'n_val' twice"):
        main(["data", "build", "ude-lotka-volterra", "--data", "n_val=1", "--data", "n_val=2"])


def test_distil_command_writes_files(tmp_path, capsys):
    out = tmp_path / "distil"
    assert main(["distil", "ude-lotka-volterra", "--backend", "sindy", "--fine-tune-epochs", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "prey" in text and "predator" in text
    eq = json.loads((out / "equations.json").read_text())
    assert set(eq["equations"]) == {"prey", "predator"}
    assert (out / "pareto.csv").read_text().startswith("term,complexity,loss")
    with pytest.raises(SystemExit, match="exist; pass --overwrite"):
        main(["distil", "ude-lotka-volterra", "--backend", "sindy", "--fine-tune-epochs", "0", "--out", str(out)])


def test_release_writes_card(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["zoo", "release", "ude-lotka-volterra", "--out", str(tmp_path / "ckpt"),
            "--trainer", "max_epochs=3", "enable_progress_bar=false", "accelerator=cpu",
            "--model", "adam_epochs=2", "lbfgs_epochs=1", "hidden=8",
            "--data", "n_trajectories=5", "n_val=1", "n_test=1", "t_train=2", "t_extrap=3"]
    assert main(args) == 0
    card = json.loads((tmp_path / "ckpt" / "ude-lotka-volterra.json").read_text())
    for key in ("test/traj_mse", "test/extrap_mse", "test/traj_mse_physics", "test/extrap_mse_physics",
                "test/extrap_mse_symbolic", "distil/beta", "distil/gamma", "distil/delta"):
        assert key in card["metrics"], key
    assert card["data"]["n_trajectories"] == 5 and card["epochs"] == 3
    # the recorded command repeats the run, overrides included
    again = tools_parser().parse_args(shlex.split(card["train_command"])[1:])
    assert (again.name, again.out, again.seed) == ("ude-lotka-volterra", str(tmp_path / "ckpt"), 0)
    assert _kv(again.model, "--model") == {"adam_epochs": 2, "lbfgs_epochs": 1, "hidden": 8}
    assert _kv(again.trainer, "--trainer")["enable_progress_bar"] is False
    assert _kv(again.data, "--data")["t_extrap"] == 3
    with pytest.raises(SystemExit, match="FileExistsError: .*--overwrite"):
        main(args)


def test_release_refuses_what_would_fail_after_training(tmp_path):
    base = ["zoo", "release", "ude-lotka-volterra", "--model", "hidden=8", "--data", "n_trajectories=5", "n_val=1",
            "n_test=1"]
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        main([*base, "--out", str(tmp_path / "afile")])
    assert (tmp_path / "afile").read_text() == "mine"
    with pytest.raises(SystemExit, match="must not set 'logger'"):
        main([*base, "--out", str(tmp_path / "o"), "--trainer", "logger=false"])
    with pytest.raises(SystemExit, match="hybridzoo: TypeError: .*bogus"):
        main([*base, "--out", str(tmp_path / "o"), "--data", "bogus=1"])
    assert not (tmp_path / "o").exists()


def test_tool_errors_are_one_line_messages(tmp_path):
    with pytest.raises(SystemExit, match="hybridzoo: ValueError: unknown checkpoint 'nonexistent'"):
        main(["distil", "nonexistent"])
    with pytest.raises(SystemExit, match="hybridzoo: ValueError: unknown zoo model"):
        main(["zoo", "release", "nonexistent", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="hybridzoo: ValueError: unknown zoo model"):
        main(["data", "build", "nonexistent"])
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit, match="is a file, not a folder"):  # before any distillation runs
        main(["distil", "ude-lotka-volterra", "--backend", "sindy", "--out", str(tmp_path / "afile")])


def test_a_backend_that_cannot_start_is_a_one_line_message(tmp_path):
    from hybridzoo.zoo.symbolic_regression import pysr_available

    ok, _ = pysr_available(timeout=120)
    if ok:
        pytest.skip("PySR starts here: there is no error to report")
    with pytest.raises(SystemExit, match="^hybridzoo: BackendUnavailable: PySR cannot start"):
        main(["distil", "ude-lotka-volterra", "--backend", "pysr", "--out", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


def test_without_logger_checkpoints_stay_out_of_shipped_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", "ude_lotka_volterra", "--trainer.logger=false", "--trainer.max_epochs=1",
                 "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--model.adam_epochs=1",
                 "--model.lbfgs_epochs=0", "--model.hidden=8", "--data.n_trajectories=5", "--data.n_val=1",
                 "--data.n_test=1", "--data.t_train=2", "--data.t_extrap=3"]) == 0
    assert not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "lightning_logs" / "checkpoints" / "last.ckpt").is_file()
    # no config.yaml in the working directory, which Lightning would write there and refuse the next run for
    assert not (tmp_path / "config.yaml").exists()


def test_a_run_without_logger_can_be_repeated_in_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["test", "-c", "ude_lotka_volterra", "--trainer.logger=false", "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false", "--model.hidden=8", "--data.n_trajectories=5", "--data.n_val=1",
            "--data.n_test=1", "--data.t_train=2", "--data.t_extrap=3"]
    assert main(args) == 0 and main(args) == 0
    assert not list(tmp_path.rglob("config.yaml"))


def test_override_values_read_numbers_like_python_and_keep_times_as_strings():
    kv = _kv(["lr=1e-3", "noise=5e-2", "n=5", "x=-2.5", "max_time=1:00:00:00", "t=00:00:01:00", "u=1:30",
              "steps=[1, 2]", "flag=true", "none=null", "name=abc"], "--model")
    assert kv == {"lr": 0.001, "noise": 0.05, "n": 5, "x": -2.5, "max_time": "1:00:00:00", "t": "00:00:01:00",
                  "u": "1:30", "steps": [1, 2], "flag": True, "none": None, "name": "abc"}
    assert type(kv["n"]) is int and type(kv["lr"]) is float
    # inside lists and mappings too (YAML 1.1 read them as strings: reynolds=[1e6] was refused); quoted stays text
    nested = _kv(["reynolds=[2e5, 1e6, .5e3]", "m={a: -2E-3, b: '1e6'}"], "--data")
    assert nested == {"reynolds": [2e5, 1e6, 500.0], "m": {"a": -2e-3, "b": "1e6"}}


def _setup(cb, model, tmp_path):
    import lightning as L

    trainer = L.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path, callbacks=[cb])
    cb.setup(trainer, model, "fit")
    return cb


def test_zoo_checkpoint_takes_model_checkpoint_arguments(tmp_path):
    import lightning as L
    from hybridzoo.zoo import create_model
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    model = create_model("ude-lotka-volterra", hidden=8)  # monitor val/traj_mse, mode min
    cb = _setup(ZooCheckpoint(save_top_k=3), model, tmp_path)
    assert (cb.monitor, cb.mode, cb.save_top_k, cb.save_last) == ("val/traj_mse", "min", 3, True)
    # a mode given by the user is kept, with or without a monitor
    assert _setup(ZooCheckpoint(save_top_k=2, mode="max"), model, tmp_path).mode == "max"
    cb = _setup(ZooCheckpoint(mode="max"), model, tmp_path)
    assert (cb.monitor, cb.mode, float(cb.kth_value)) == ("val/traj_mse", "max", float("-inf"))
    cb = _setup(ZooCheckpoint(monitor="val/extrap_mse", mode="max"), model, tmp_path)
    assert (cb.monitor, cb.mode) == ("val/extrap_mse", "max")
    # the model's mode follows its monitor
    model.mode = "max"
    assert _setup(ZooCheckpoint(), model, tmp_path).mode == "max"
    # without any monitor, top-k is refused when the model is known
    with pytest.raises(MisconfigurationException, match="needs a metric"):
        _setup(ZooCheckpoint(save_top_k=2), L.LightningModule(), tmp_path)


def test_zoo_checkpoint_from_the_command_line_follows_the_model(tmp_path, monkeypatch):
    import lightning as L
    from hybridzoo.zoo.base import HybridModule
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["hybridzoo"])  # LightningCLI warns about pytest's own arguments
    cli = LightningCLI(HybridModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                       run=False, auto_configure_optimizers=False,
                       args=resolve_config_args(["-c", "ude_lotka_volterra", "--trainer.logger=false",
                                                 "--trainer.callbacks+=hybridzoo.zoo.checkpointing.ZooCheckpoint",
                                                 "--trainer.callbacks.save_top_k=2"]))
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, ZooCheckpoint))
    cb.setup(cli.trainer, cli.model, "fit")
    assert (cb.monitor, cb.mode, cb.save_top_k, cb.save_last) == (cli.model.monitor, cli.model.mode, 2, True)


def test_test_command_restores_a_checkpoint_written_from_python(tmp_path, monkeypatch, capsys):
    # a distilled UDE trained with a plain Trainer: its hyperparameters (formulas included) are not the config's
    import lightning as L
    from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
    from hybridzoo.zoo import create_model
    from hybridzoo.zoo.symbolic import SympyModule
    from lightning.pytorch.callbacks import ModelCheckpoint

    monkeypatch.chdir(tmp_path)
    data = dict(n_trajectories=5, n_val=1, n_test=1, t_train=2.0, t_extrap=3.0)
    model = create_model("ude-lotka-volterra", hidden=8, adam_epochs=1, lbfgs_epochs=1).with_terms(
        {"prey": SympyModule("-0.3*x*y", ["x", "y"]), "predator": SympyModule("0.15*x*y", ["x", "y"])})
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="py")])
    trainer.fit(model, datamodule=LotkaVolterraDataModule(cache_dir="data", **data))
    capsys.readouterr()
    args = ["test", "-c", "ude_lotka_volterra", "--trainer.enable_progress_bar=false", "--trainer.logger=false",
            "--data.cache_dir=data", *(f"--data.{k}={v}" for k, v in data.items()), "--ckpt_path=py.ckpt"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    expected = trainer.test(model, datamodule=LotkaVolterraDataModule(cache_dir="data", **data),
                            verbose=False)[0]["test/traj_mse"]
    assert f"{expected:.6g}"[:5] in printed  # the formulas' model, not the config's MLPs, was tested


def test_card_data_config_leaves_out_this_machines_settings():
    from hybridzoo.datamodules.aerofoil import AerofoilDataModule
    from hybridzoo.zoo.release import data_config

    config = data_config(AerofoilDataModule(workers=3, n_train_foils=20))
    assert "workers" not in config and config["n_train_foils"] == 20


def test_last_ckpt_holds_the_weights_the_fit_ends_with(tmp_path):
    # Lightning 2.6 refreshes last.ckpt only in a step that also saves a best-so-far checkpoint: after the
    # best epoch, last.ckpt kept that epoch's weights (epoch 32 of a 60-epoch residual-aerofoil fit)
    import lightning as L
    import torch

    class Worsening(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            return (self.w - batch[0]).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val/loss", float(self.current_epoch))  # best at epoch 0, worse every epoch after

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=2)
    cb = ZooCheckpoint(dirpath=tmp_path, monitor="val/loss")
    model = Worsening()
    L.Trainer(max_epochs=4, callbacks=[cb], logger=False, enable_progress_bar=False, enable_model_summary=False,
              accelerator="cpu").fit(model, data, data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8  # 4 epochs of 2 steps (its epoch is 4: the fit ends after 4 epochs)
    torch.testing.assert_close(last["state_dict"]["w"], model.w.detach())
    assert len(list(tmp_path.glob("epoch=0-*.ckpt"))) == 1  # the best one is still epoch 0's
    # save_last="link" keeps Lightning's end-of-fit fallback: a last.ckpt where the fit saved nothing else
    linked = tmp_path / "link"
    L.Trainer(max_epochs=1, callbacks=[ZooCheckpoint(dirpath=linked, save_last="link", save_top_k=0)],
              logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
              limit_val_batches=0).fit(Worsening(), data)
    assert [p.name for p in linked.iterdir()] == ["last.ckpt"]
