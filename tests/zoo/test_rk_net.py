import lightning as L
import numpy as np
import pytest
import torch
from hybridzoo.datamodules.digits import DigitsDataModule
from hybridzoo.datamodules.idx import write_idx
from hybridzoo.zoo.rk_net import RKNet, RKNetMNIST, count_parameters, examples_figure
from lightning.pytorch.loggers import TensorBoardLogger
from safetensors.torch import load_file, save_file

SMALL = {"width": 16, "steps": 1, "resnet_blocks": 2, "mlp_hidden": 32, "lr": 5e-3}


def _trainer(tmp_path=None, **kw):
    kw.setdefault("logger", False)
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small RK-Net (and baselines) trained a few epochs on the digits; errors before and after."""
    torch.manual_seed(0)
    log_dir = tmp_path_factory.mktemp("tb")
    model = RKNet(**SMALL)
    dm = DigitsDataModule(batch_size=64, seed=0)
    before = _trainer().validate(model, datamodule=dm, verbose=False)[0]
    trainer = _trainer(logger=TensorBoardLogger(str(log_dir), name="rk"), max_epochs=4, log_every_n_steps=5)
    trainer.fit(model, datamodule=dm)
    after = trainer.validate(model, datamodule=dm, verbose=False)[0]
    tested = trainer.test(model, datamodule=dm, verbose=False)[0]
    return model, dm, trainer, before, after, tested, log_dir


def test_short_run_accuracy_climbs_far_above_chance(trained):
    model, _, _, before, after, _, _ = trained
    assert before["val/error"] > 0.6  # untrained: near chance (0.9)
    for key in ("val/error", "val/error_resnet", "val/error_mlp"):
        assert after[key] < 0.25, (key, after[key])  # chance is 0.9
    assert after["val/error"] < before["val/error"] - 0.5
    assert after["val/nfe"] == 4.0  # one RK4 step: four evaluations of the vector field


def test_test_step_logs_exactly_the_card_keys(trained):
    model, dm, trainer, _, _, tested, _ = trained
    assert set(tested) == {"test/error", "test/error_resnet", "test/error_mlp"}
    assert all(0.0 <= v < 0.3 for v in tested.values())
    # the logged error is 1 - accuracy of the RK-Net predictions on the held-out split
    x, y = dm.splits["test"].tensors
    with torch.no_grad():
        err = (model(x).argmax(1) != y).float().mean().item()
    assert tested["test/error"] == pytest.approx(err, abs=1e-6)
    metrics = model.release_metrics(trainer, dm)
    assert set(metrics) == {"params", "params_resnet", "params_mlp"}
    assert metrics["params"] == sum(p.numel() for p in model.net["rknet"].parameters())


def test_tensorboard_confusion_matrix_and_misclassified(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    *_, log_dir = trained
    event_dirs = sorted(p.parent for p in log_dir.rglob("events.out.tfevents.*"))
    tags = set()
    for d in event_dirs:
        acc = EventAccumulator(str(d))
        acc.Reload()
        tags |= set(acc.Tags()["images"]) | set(acc.Tags()["scalars"])
    assert {"val/confusion_matrix", "val/misclassified", "test/confusion_matrix"} <= tags
    assert {"val/error", "val/error_resnet", "val/error_mlp", "val/ms_per_batch", "train/nfe"} <= tags


def test_checkpoint_round_trip(trained, tmp_path):
    model, _, trainer, *_ = trained
    x = torch.rand(5, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        ref = {m: net(x) for m, net in model.net.items()}
    path = tmp_path / "rk.ckpt"
    trainer.save_checkpoint(path)
    loaded = RKNet.load_from_checkpoint(path, weights_only=True).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "rk.safetensors")
    fresh = RKNet(**SMALL).eval()
    fresh.load_state_dict(load_file(tmp_path / "rk.safetensors"))
    with torch.no_grad():
        for other in (loaded, fresh):
            for m, net in other.net.items():
                torch.testing.assert_close(net(x), ref[m], rtol=0, atol=0)


def test_paper_mnist_network_sizes():
    # Chen et al. 2018, Table 1: ResNet 0.60 M, RK-Net 0.22 M, 1-layer MLP 0.24 M parameters
    counts = RKNetMNIST().param_counts()
    assert 0.20e6 < counts["params"] < 0.23e6
    assert 0.55e6 < counts["params_resnet"] < 0.62e6
    assert 0.23e6 < counts["params_mlp"] < 0.245e6
    model = RKNetMNIST(width=8, resnet_blocks=1, mlp_hidden=8)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("solver,adjoint", [("euler", False), ("dopri5", True), ("torchdiffeq-rk4", True)])
def test_solver_variants_train_one_step(solver, adjoint):
    torch.manual_seed(0)
    model = RKNet(
        width=8,
        steps=2,
        resnet_blocks=1,
        mlp_hidden=8,
        baselines=False,
        solver=solver,
        adjoint=adjoint,
        rtol=1e-2,
        atol=1e-2,
    )
    trainer = _trainer(fast_dev_run=1)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=16))
    m = trainer.callback_metrics
    assert list(model.net) == ["rknet"] and "val/error_resnet" not in m
    assert m["train/nfe"] > 0
    if adjoint:
        assert m["train/nfe_backward"] > 0


def test_float64_and_batched_forward():
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    out = model(x)
    assert out.dtype == torch.float64 and out.shape == (3, 10)
    torch.testing.assert_close(
        model(x[1:2]), out[1:2]
    )  # batch entries are independent (GroupNorm per sample)
    with pytest.raises(TypeError, match="model's dtype torch.float64, got torch.float32"):
        model(x.float())


def test_trains_in_float64_with_the_model_summary(tmp_path):
    # the summary runs example_input_array through the weights: it must follow their dtype
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8)
    L.Trainer(max_epochs=1, precision="64-true", limit_train_batches=2, limit_val_batches=1, logger=False,
              enable_checkpointing=False, enable_progress_bar=False, default_root_dir=str(tmp_path)).fit(
        model, datamodule=DigitsDataModule(batch_size=16))
    assert model.dtype == torch.float64 and model.example_input_array.dtype == torch.float64


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="width"):
        RKNet(width=0)
    with pytest.raises(ValueError, match="image_size"):
        RKNet(image_size=2, stem_padding=0, downsample=2)
    with pytest.raises(ValueError, match="solver"):
        RKNet(solver="rk45")
    with pytest.raises(ValueError, match="num_classes"):
        RKNet(num_classes=1)
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8)
    with pytest.raises(ValueError, match="batch images"):
        model.training_step((torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)), 0)
    with pytest.raises(ValueError, match="batch labels"):
        model.training_step((torch.rand(2, 1, 8, 8), torch.zeros(3, dtype=torch.long)), 0)


@pytest.mark.parametrize("name", ["baselines", "cosine_schedule", "adjoint"])
def test_bool_arguments_must_be_bools(name):
    # "false" is truthy: before, baselines="false" trained all three models
    with pytest.raises(TypeError, match=name):
        RKNet(width=8, resnet_blocks=1, mlp_hidden=8, **{name: "false"})


@pytest.mark.parametrize(
    "images,labels,match",
    [
        (torch.rand(3, 1, 8, 8), torch.tensor([1, 2, 3], dtype=torch.int32), "batch labels"),
        (torch.rand(3, 1, 8, 8), torch.tensor([1, 2, 3], dtype=torch.uint8), "batch labels"),
        (torch.rand(3, 1, 8, 8), torch.tensor([1.0, 2.0, 3.0]), "batch labels"),
        (torch.rand(3, 1, 8, 8, dtype=torch.float64), torch.tensor([1, 2, 3]), "batch images"),
        (torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8), torch.tensor([1, 2, 3]), "batch images"),
    ],
)
def test_batch_dtypes_are_checked(images, labels, match):
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8)
    with pytest.raises(TypeError, match=match):
        model.training_step((images, labels), 0)
    with pytest.raises(TypeError, match=match):
        model.validation_step((images, labels), 0)


def _fit_rknet_weights(baselines, clip):
    torch.manual_seed(0)
    model = RKNet(width=8, steps=1, resnet_blocks=1, mlp_hidden=16, baselines=baselines, cosine_schedule=False)
    trainer = _trainer(max_steps=4, limit_val_batches=0, gradient_clip_val=clip)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=32))
    return torch.cat([p.detach().flatten() for p in model.net["rknet"].parameters()])


def test_gradient_clipping_keeps_rknet_independent_of_its_baselines():
    # a joint clip of the summed loss's gradient would shrink RK-Net's steps by the baselines' gradients
    clip = 0.05  # well below the gradient norms here, so clipping acts at every step
    alone = _fit_rknet_weights(False, clip)
    together = _fit_rknet_weights(True, clip)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
    assert (alone - _fit_rknet_weights(False, None)).abs().max() > 1e-4  # the clip did act
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8)
    groups = model.clip_groups()
    assert [sum(p.numel() for p in g) for g in groups] == [count_parameters(net) for net in model.net.values()]


def test_predict_returns_rknet_logits_of_the_test_split():
    torch.manual_seed(0)
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8).eval()
    dm = DigitsDataModule(batch_size=100)
    out = _trainer().predict(model, datamodule=dm)
    logits = torch.cat(out)
    x, _ = dm.splits["test"].tensors
    assert logits.shape == (360, 10)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
        # a bare images tensor is a predict batch too
        torch.testing.assert_close(model.predict_step(x[:5], 0), model(x[:5]))
    with pytest.raises(ValueError, match="batch images"):
        model.predict_step(torch.rand(2, 1, 28, 28), 0)


def test_examples_figure_checks_images_and_draws_rgb():
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError, match="images"):
        examples_figure(torch.zeros(0, 1, 8, 8), torch.zeros(0), torch.zeros(0))
    fig = examples_figure(torch.rand(2, 3, 8, 8), torch.tensor([1, 2]), torch.tensor([3, 4]))
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    plt.close(fig)
    assert len(drawn) == 2 and all(a.shape == (8, 8, 3) for a in drawn)
    fig = examples_figure(torch.rand(1, 1, 8, 8), torch.tensor([1]), torch.tensor([3]))
    assert fig.axes[0].images[0].get_array().shape == (8, 8)
    plt.close(fig)


def _fake_mnist(folder, n=24):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("command", ["fit", "predict"])
@pytest.mark.parametrize("config", ["rk_net_digits", "rk_net_mnist"])
def test_cli_fast_dev_run(config, command, tmp_path, monkeypatch):
    cli = pytest.importorskip("hybridzoo.zoo.cli")
    monkeypatch.chdir(tmp_path)
    args = [command, "-c", config, "--trainer.fast_dev_run=1", "--trainer.logger=false"]
    if config == "rk_net_mnist":
        _fake_mnist(tmp_path / "mnist")
        # smaller than the paper's network so the smoke run stays fast; the config itself is parsed as shipped
        args += [
            f"--data.init_args.data_dir={tmp_path / 'mnist'}",
            "--data.init_args.val_size=8",
            "--data.init_args.batch_size=8",
            "--model.init_args.width=8",
            "--model.init_args.mlp_hidden=8",
        ]
    assert cli.lightning_cli(args) == 0


def test_shipped_checkpoint_reproduces_its_card():
    from hybridzoo.zoo.registry import read_packaged_card

    if read_packaged_card("rk-net-digits") is None:
        pytest.skip("rk-net-digits not released yet: hybridzoo zoo release rk-net-digits --out checkpoints")
    from hybridzoo.zoo import load_pretrained

    model = load_pretrained("rk-net-digits").eval()
    dm = model.datamodule()
    dm.setup("test")
    x, y = dm.splits["test"].tensors
    with torch.no_grad():
        for name, net in model.net.items():
            key = "test/error" if name == "rknet" else f"test/error_{name}"
            err = (net(x).argmax(1) != y).float().mean().item()
            assert err == pytest.approx(model.card["metrics"][key], abs=1e-6), name
    assert model.card["metrics"]["params"] == sum(p.numel() for p in model.net["rknet"].parameters())


@pytest.mark.parametrize("labels", [[0, 10, 3], [-1, 2, 3]])
def test_labels_outside_the_classes_are_refused(labels):
    # cross_entropy raises an IndexError on CPU but a device-side assert on CUDA; both name nothing
    model = RKNet(width=8, resnet_blocks=1, mlp_hidden=8)
    with pytest.raises(ValueError, match=r"batch labels must be class indices in \[0, 10\)"):
        model.training_step((torch.rand(3, 1, 8, 8), torch.tensor(labels)), 0)
    with pytest.raises(ValueError, match="batch labels"):
        model.validation_step((torch.rand(3, 1, 8, 8), torch.tensor(labels)), 0)


def test_confusion_matrix_rows_are_the_true_labels():
    from hybridzoo.zoo.rk_net import ConfusionMatrix

    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 2]), torch.tensor([1, 1, 2]))  # (preds, target)
    assert cm.compute().tolist() == [[0, 0, 0], [2, 0, 0], [0, 0, 1]]
