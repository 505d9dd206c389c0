import copy

import lightning as L
import pytest
import torch
from hybridzoo.datamodules.ellipses import EllipsesDataModule
from hybridzoo.physics.tomography import ParallelBeamGeometry, RayTransform
from hybridzoo.zoo import load_pretrained
from hybridzoo.zoo.ct_networks import LearnedGradientDescent, LearnedPrimalDual
from hybridzoo.zoo.learned_primal_dual import LearnedPrimalDualCT

SMALL = {"image_size": 16, "num_angles": 12}
TINY_NETS = {"n_iter": 4, "width": 8, "lgd_iter": 4, "lgd_width": 8, "tv_iterations": 100, "tv_weight": 1e-4,
             "lpd_init": "fbp", "fbp_filter": "ramp"}


def _trainer(tmp_path, **kw):
    args = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp_path)}
    args.update(kw)
    return L.Trainer(**args)


def test_gradcheck_through_unrolled_networks():
    torch.manual_seed(0)
    op = RayTransform(ParallelBeamGeometry(6, 4))
    lpd = LearnedPrimalDual(op, n_iter=2, n_primal=2, n_dual=2, width=3).double()
    lgd = LearnedGradientDescent(op, n_iter=2, n_memory=2, width=3).double()
    y = torch.rand(2, 1, 4, op.geometry.num_detectors, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lpd, (y,), atol=1e-6)
    assert torch.autograd.gradcheck(lgd, (y, lam), atol=1e-6)


def test_training_lifts_psnr_above_fbp(tmp_path):
    torch.manual_seed(0)
    dm = EllipsesDataModule(**SMALL, train_size=256, val_size=4, test_size=16, batch_size=8, seed=0)
    model = LearnedPrimalDualCT(**SMALL, **TINY_NETS, lr=3e-3, cosine_schedule=False)
    before = _trainer(tmp_path).test(model, datamodule=dm, verbose=False)[0]
    _trainer(tmp_path, max_steps=64, limit_val_batches=0).fit(model, datamodule=dm)
    after = _trainer(tmp_path).test(model, datamodule=dm, verbose=False)[0]
    assert set(after) >= {"test/psnr", "test/ssim", "test/psnr_lgd", "test/ssim_lgd", "test/psnr_tv",
                          "test/ssim_tv", "test/psnr_fbp", "test/ssim_fbp"}
    assert after["test/psnr_fbp"] == pytest.approx(before["test/psnr_fbp"], abs=1e-4)  # same data, same FBP
    # Measured (64 steps, 16^2, 12 views): FBP 24.3 dB, LPD 25.0, LGD 25.1.
    assert after["test/psnr"] > before["test/psnr"] + 0.5
    assert after["test/psnr"] > after["test/psnr_fbp"] + 0.3
    assert after["test/psnr_lgd"] > after["test/psnr_fbp"] + 0.3


def test_checkpoint_round_trip(tmp_path):
    dm = EllipsesDataModule(**SMALL, train_size=8, val_size=2, test_size=2, batch_size=4)
    model = LearnedPrimalDualCT(**SMALL, **TINY_NETS)
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    path = tmp_path / "lpd.ckpt"
    trainer.save_checkpoint(path)
    loaded = LearnedPrimalDualCT.load_from_checkpoint(path, weights_only=True)
    y = dm.dataset("test")[0]["sinogram"][None]
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(y), loaded(y))
        assert torch.equal(model.learned_gradient_descent(y), loaded.learned_gradient_descent(y))
    assert float(loaded.physics.lam) == pytest.approx(float(model.physics.lam))


def test_geometry_mismatch_and_bad_inputs(tmp_path):
    dm = EllipsesDataModule(image_size=16, num_angles=10, train_size=4, val_size=2, test_size=2)
    model = LearnedPrimalDualCT(**SMALL, **TINY_NETS)
    with pytest.raises(ValueError, match="geometry"):
        _trainer(tmp_path, max_steps=1).fit(model, datamodule=dm)
    with pytest.raises(ValueError, match="sinogram"):
        model(torch.zeros(1, 1, 10, 23))
    with pytest.raises(ValueError, match="fbp_filter"):
        LearnedPrimalDualCT(**SMALL, fbp_filter="shepp")
    with pytest.raises(ValueError, match="n_iter"):
        LearnedPrimalDualCT(**SMALL, n_iter=0)
    with pytest.raises(ValueError, match="adam_beta2"):
        LearnedPrimalDualCT(**SMALL, adam_beta2=1.0)


def test_optimiser_uses_adam_beta2_and_clips_each_network_on_its_own():
    model = LearnedPrimalDualCT(**SMALL, **TINY_NETS, adam_beta2=0.9, cosine_schedule=False)
    assert all(g["betas"][1] == 0.9 for g in model.configure_optimizers().param_groups)
    lgd = [*model.net["lgd"].parameters(), *model.physics.parameters()]
    for p in model.net["lpd"].parameters():
        p.grad = torch.full_like(p, 10.0)
    for p in lgd:
        p.grad = torch.full_like(p, 1e-4)
    lgd_before = torch.cat([p.grad.flatten() for p in lgd]).clone()
    model.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    lpd_norm = torch.cat([p.grad.flatten() for p in model.net["lpd"].parameters()]).norm()
    assert torch.isclose(lpd_norm, torch.tensor(1.0), rtol=1e-4)
    # a joint clip would have scaled LGD's small gradient down with LPD's large one
    assert torch.equal(torch.cat([p.grad.flatten() for p in lgd]), lgd_before)


def test_fit_through_cli_fast_dev_run(tmp_path):
    cli = pytest.importorskip("hybridzoo.zoo.cli")
    rc = cli.main([
        "fit", "-c", "learned_primal_dual_ct", "--trainer.fast_dev_run", "1", "--trainer.logger", "false",
        f"--trainer.default_root_dir={tmp_path}", "--model.tv_iterations", "5", "--model.n_iter", "2",
        "--model.lgd_iter", "2", "--data.train_size", "4", "--data.val_size", "4",
    ])
    assert rc == 0


def test_n_primal_below_two_is_rejected_at_construction():
    op = RayTransform(ParallelBeamGeometry(16, 8))
    with pytest.raises(ValueError, match="n_primal"):
        LearnedPrimalDual(op, n_iter=2, n_primal=1, n_dual=1, width=4)
    with pytest.raises(ValueError, match="n_primal"):
        LearnedPrimalDualCT(**SMALL, **TINY_NETS, n_primal=1)
    net = LearnedPrimalDual(op, n_iter=1, n_primal=2, n_dual=1, width=4)
    assert net(torch.rand(2, 1, *op.geometry.sinogram_shape)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("tv_eps", [0.0, -1.0])
def test_lgd_requires_positive_tv_eps(tv_eps):
    op = RayTransform(ParallelBeamGeometry(16, 8))
    with pytest.raises(ValueError, match="tv_eps"):
        LearnedGradientDescent(op, 1, 2, 4, tv_eps=tv_eps)


def test_deepcopy_and_averaged_model():
    from torch.optim.swa_utils import AveragedModel

    torch.manual_seed(0)
    model = LearnedPrimalDualCT(**SMALL, n_iter=1, width=4, lgd_iter=1, lgd_width=4, tv_iterations=5)
    model.eval()
    y = torch.rand(2, 1, *model.geometry.sinogram_shape)
    with torch.no_grad():
        ref, ref_lgd = model(y), model.learned_gradient_descent(y)
    dup = copy.deepcopy(model)
    assert dup.op is dup.net["lpd"].op is dup.net["lgd"].op  # still one operator inside the copy
    assert dup.op is not model.op
    avg = AveragedModel(model)
    with torch.no_grad():
        assert torch.equal(dup(y), ref)
        assert torch.equal(dup.learned_gradient_descent(y), ref_lgd)
        assert torch.equal(avg(y), ref)
    avg.update_parameters(model)


def test_release_metrics_uses_the_datamodule_supersample(monkeypatch):
    import hybridzoo.datamodules.ellipses as ellipses

    seen = []
    init = ellipses.EllipsesDataset.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((self.phantom, self.supersample))

    monkeypatch.setattr(ellipses.EllipsesDataset, "__init__", spy)
    dm = EllipsesDataModule(**SMALL, supersample=3, test_size=2, test_phantom="ellipses")
    model = LearnedPrimalDualCT(**SMALL, n_iter=1, width=4, lgd_iter=1, lgd_width=4, tv_iterations=5)
    out = model.release_metrics(None, dm)
    assert "shepp_logan/psnr" in out
    assert ("shepp-logan", 3) in seen and all(ss == 3 for _, ss in seen)


def test_unrolled_networks_check_their_sizes_and_filter():
    op = RayTransform(ParallelBeamGeometry(16, 8))
    bad = ((dict(n_iter=0), "n_iter"), (dict(width=0), "width"), (dict(fbp_filter="bogus"), "fbp_filter"))
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            LearnedPrimalDual(op, **kwargs)
        with pytest.raises(ValueError, match=match):
            LearnedGradientDescent(op, **kwargs)
    with pytest.raises(ValueError, match="n_memory"):
        LearnedGradientDescent(op, n_memory=0)
    with pytest.raises(ValueError, match="lpd_init must be"):
        LearnedPrimalDualCT(**SMALL, lpd_init="FBP")
    with pytest.raises(ValueError, match="image_size must be at least 6"):
        LearnedPrimalDualCT(image_size=5, num_angles=4)


def test_unrolled_networks_name_a_sinogram_of_the_wrong_dtype_or_with_nans():
    op = RayTransform(ParallelBeamGeometry(8, 4))
    lpd, lgd = LearnedPrimalDual(op, n_iter=1, width=2), LearnedGradientDescent(op, n_iter=1, width=2)
    y = torch.rand(2, 1, 4, op.geometry.num_detectors)
    assert lpd(y).shape == lgd(y, 0.1).shape == (2, 1, 8, 8)
    with pytest.raises(TypeError, match="dtype torch.float64 but the network's weights are torch.float32"):
        lpd(y.double())
    with pytest.raises(TypeError, match="dtype torch.float64"):
        lgd(y.double(), 0.1)
    y[1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="sinogram contains NaN"):
        lpd(y)


def test_pretrained_weights_of_another_start_image_are_refused_before_any_copy():
    # the shipped weights were trained from the ramp FBP: behind a zero start they fit every shape and
    # scored 17.6 dB instead of 36.7, without a word
    card = load_pretrained("learned-primal-dual-ct").card["hparams"]
    model = LearnedPrimalDualCT(image_size=card["image_size"], num_angles=card["num_angles"],
                                pretrained="learned-primal-dual-ct")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="trained with lpd_init='fbp'"):
        model.setup("fit")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    fitting = LearnedPrimalDualCT(**{k: card[k] for k in ("image_size", "num_angles", "lpd_init", "fbp_filter",
                                                          "n_iter", "width", "lgd_iter", "lgd_width")},
                                  pretrained="learned-primal-dual-ct")
    fitting.setup("fit")  # the card's own settings load
    assert fitting.card is not None


def test_lpd_iterates_as_adler_and_oktem_algorithm_3():
    # h <- h + Gamma(h, K f^(2), g);  f <- f + Lambda(f, K* h^(1))   (operators scaled by ||K||)
    torch.manual_seed(0)
    op = RayTransform(ParallelBeamGeometry(8, 6))
    net = LearnedPrimalDual(op, n_iter=2, n_primal=3, n_dual=2, width=4).double()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    y = torch.rand(2, 1, *op.geometry.sinogram_shape, dtype=torch.float64)
    norm = op.operator_norm()
    f = y.new_zeros(2, 3, 8, 8)
    h = y.new_zeros(2, 2, *op.geometry.sinogram_shape)
    with torch.no_grad():
        for dual, primal in zip(net.dual, net.primal):
            h = h + dual(torch.cat([h, op(f[:, 1:2]) / norm, y / norm], 1))
            f = f + primal(torch.cat([f, op.adjoint(h[:, :1]) / norm], 1))
        torch.testing.assert_close(net(y), f[:, :1])


def test_lgd_output_depends_on_its_tv_weight():
    torch.manual_seed(0)
    op = RayTransform(ParallelBeamGeometry(16, 8))
    lgd = LearnedGradientDescent(op, n_iter=2, n_memory=2, width=4)
    y = op(torch.rand(1, 1, 16, 16))
    lam = torch.tensor(0.1, requires_grad=True)
    (grad,) = torch.autograd.grad(lgd(y, lam).sum(), lam, allow_unused=True)
    assert grad is not None and float(grad.abs()) > 0


def test_pretrained_weights_of_another_fbp_filter_are_refused():
    card = load_pretrained("learned-primal-dual-ct").card["hparams"]
    other = "hann" if card["fbp_filter"] == "ramp" else "ramp"
    kw = {k: card[k] for k in ("image_size", "num_angles", "lpd_init", "n_iter", "width", "lgd_iter", "lgd_width")}
    model = LearnedPrimalDualCT(**kw, fbp_filter=other, pretrained="learned-primal-dual-ct")
    with pytest.raises(ValueError, match="trained with fbp_filter"):
        model.setup("fit")
