import warnings

import lightning as L
import pytest
import torch
from hybridzoo.datamodules.wake_flow import WakeFlowDataModule
from hybridzoo.zoo.solver_in_the_loop import SolverInTheLoop, velocity_mae

GEOMETRY = dict(nx=16, ny=8, length_x=8.0, center=(2.0, 2.0), diameter=1.0, inflow_speed=1.0, dt=0.2)
DATA = dict(**GEOMETRY, factor=2, warmup=10.0, steps=30, re_train=(100.0, 200.0), re_val=(150.0,),
            re_test=(250.0,), window=4, rollout_steps=20, batch_size=4, progress=False)
NET = dict(width=8, depth=3, kernel=3)


def _trainer(tmp_path, **kw):
    args = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path)}
    args.update(kw)
    return L.Trainer(**args)


@pytest.fixture(scope="module")
def datamodule():
    dm = WakeFlowDataModule(**DATA)
    dm.setup()
    return dm


def test_untrained_correction_is_the_source_solver(datamodule):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=4, **NET)
    batch = next(iter(datamodule.test_dataloader()))
    preds = model.rollouts(batch)
    # the last layer starts at zero: SOL and NON reproduce SRC exactly before training
    torch.testing.assert_close(preds["sol"][0], preds["src"][0], rtol=0, atol=0)
    torch.testing.assert_close(preds["non"][1], preds["src"][1], rtol=0, atol=0)
    assert preds["sol"][0].shape == (1, 20, 8, 17)
    err = velocity_mae(*preds["src"], batch["u"][:, 1:], batch["v"][:, 1:])
    assert err.shape == (1, 20) and bool((err[:, -1] > err[:, 0]).all())  # the coarse solver drifts away


def test_sol_training_lowers_rollout_error_below_the_source(datamodule, tmp_path):
    torch.manual_seed(0)
    model = SolverInTheLoop(**GEOMETRY, look_ahead=4, **NET, lr=3e-3, cosine_schedule=False)
    before = _trainer(tmp_path).test(model, datamodule=datamodule, verbose=False)[0]
    assert before["test/rollout_mae"] == pytest.approx(before["test/rollout_mae_src"], rel=1e-6)
    _trainer(tmp_path, max_epochs=3, limit_val_batches=0).fit(model, datamodule=datamodule)
    after = _trainer(tmp_path).test(model, datamodule=datamodule, verbose=False)[0]
    assert set(after) >= {"test/rollout_mae", "test/rollout_mae_non", "test/rollout_mae_src", "test/rollout_mae_2x",
                          "test/step_time_ratio_src"}
    assert after["test/rollout_mae_src"] == pytest.approx(before["test/rollout_mae_src"], rel=1e-6)
    # Measured (3 epochs, 16x8, 20-step rollouts at the unseen Re=250): SRC 0.052, SOL 0.034
    assert after["test/rollout_mae"] < 0.85 * after["test/rollout_mae_src"], after


def test_gradient_through_the_unrolled_solver_and_checkpointing(datamodule):
    torch.manual_seed(0)
    model = SolverInTheLoop(**GEOMETRY, look_ahead=3, **NET)
    for p in model.net["sol"].layers[-1].parameters():
        torch.nn.init.normal_(p, std=1e-2)
    batch = next(iter(datamodule.train_dataloader()))
    grads = []
    for ck in (False, True):
        model.zero_grad()
        us, vs = model.rollout(batch["u"][:, 0], batch["v"][:, 0], batch["re"], 3, "sol", gradient_checkpointing=ck)
        ((us - batch["u"][:, 1:4]) ** 2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.net["sol"].parameters()]))
    assert grads[0].abs().sum() > 0 and torch.isfinite(grads[0]).all()
    # every layer, not only the last, gets a gradient through three solver steps
    assert all(p.grad.abs().sum() > 0 for p in model.net["sol"].parameters())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_curriculum_and_non_flag():
    model = SolverInTheLoop(**GEOMETRY, curriculum=[2, 4, 8], curriculum_epochs=3, train_non=False, **NET)
    assert model.look_ahead == 2 and set(model.net) == {"sol"}
    with pytest.raises(ValueError, match="method"):
        model.hybrid_step(torch.zeros(1, 8, 17), torch.zeros(1, 9, 16), torch.tensor([100.0]), method="non")


def test_fine_tuning_shipped_weights_skips_the_curriculum():
    from hybridzoo.zoo.registry import create_model

    scratch = create_model("solver-in-the-loop-ns")
    assert scratch.hparams.curriculum == [4, 8, 16] and scratch.look_ahead == 4 and not scratch.fine_tuning
    tuned = create_model("solver-in-the-loop-ns", pretrained="solver-in-the-loop-ns")
    tuned.setup("fit")  # loads the shipped weights
    assert tuned.fine_tuning and tuned.look_ahead == 16  # not the warm-up's 4 again


def test_adam_beta2_reaches_the_optimiser_and_the_large_config_sets_it():
    from hybridzoo.zoo.registry import create_model

    betas = {g["betas"] for g in SolverInTheLoop(**GEOMETRY, **NET, cosine_schedule=False)
             .configure_optimizers().param_groups}
    assert betas == {(0.9, 0.999)}  # torch's default: the small shipped config trained with it
    large = create_model("solver-in-the-loop-ns-large", cosine_schedule=False)
    assert {g["betas"] for g in large.configure_optimizers().param_groups} == {(0.9, 0.99)}
    decayed = SolverInTheLoop(**GEOMETRY, **NET, weight_decay=1e-4, adam_beta2=0.95, cosine_schedule=False)
    opt = decayed.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and {g["betas"] for g in opt.param_groups} == {(0.9, 0.95)}
    with pytest.raises(ValueError, match="adam_beta2"):
        SolverInTheLoop(**GEOMETRY, **NET, adam_beta2=-0.1)


def test_a_late_state_is_differentiated_through_every_solver_step():
    # SOL's premise: the loss on step n reaches the state n steps back through the solver. A rollout that
    # detached the state each step still trained (and still beat NON); its gradient is wrong, which gradcheck sees.
    torch.manual_seed(0)
    model = SolverInTheLoop(**GEOMETRY, look_ahead=3, width=4, depth=2, kernel=3).double()
    for p in model.net["sol"].layers[-1].parameters():  # the last layer starts at 0: make the correction act
        torch.nn.init.normal_(p, std=1e-2)
    s = model.solver
    g = torch.Generator().manual_seed(1)
    u = 1.0 + 0.1 * torch.rand(1, *s.u_shape, generator=g, dtype=torch.float64)
    v = 0.05 * torch.randn(1, *s.v_shape, generator=g, dtype=torch.float64)
    u, v, _ = s.project(*s.apply_boundaries(u, v), 1.0)
    re = torch.tensor([150.0], dtype=torch.float64)
    u = u.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda u0: model.rollout(u0, v, re, 2, "sol")[0][:, -1], (u,),
                                    atol=1e-6, rtol=1e-4, fast_mode=True)


def test_checkpoint_round_trip(datamodule, tmp_path):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "sol.ckpt"
    trainer.save_checkpoint(path)
    loaded = SolverInTheLoop.load_from_checkpoint(path, weights_only=True)
    batch = next(iter(datamodule.test_dataloader()))
    a, b = model.rollouts(batch), loaded.rollouts(batch)
    for m in ("sol", "non"):
        torch.testing.assert_close(a[m][0], b[m][0], rtol=0, atol=0)


def test_mismatched_geometry_and_bad_input(datamodule, tmp_path):
    model = SolverInTheLoop(**{**GEOMETRY, "dt": 0.1}, look_ahead=2, **NET)
    with pytest.raises(ValueError, match="dt"):
        _trainer(tmp_path, max_steps=1).fit(model, datamodule=datamodule)
    model = SolverInTheLoop(**GEOMETRY, look_ahead=8, **NET)
    with pytest.raises(ValueError, match=r"window=4: give the DataModule window=8 or more \(--data.window 8\)"):
        _trainer(tmp_path, max_steps=1).fit(model, datamodule=datamodule)
    # a DataModule not yet simulated is checked before it simulates (it used to be after, at setup)
    fresh = WakeFlowDataModule(**{**DATA, "dt": 0.1}, cache_dir=tmp_path / "fresh")
    with pytest.raises(ValueError, match="dt"):
        _trainer(tmp_path, max_steps=1).fit(model, datamodule=fresh)
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").iterdir())
    u, v, re = torch.ones(2, 8, 17), torch.zeros(2, 9, 16), torch.tensor([100.0, 200.0])
    with pytest.raises(ValueError, match="^u must have shape"):
        model.rollout(u[..., :-1], v, re, 2)
    with pytest.raises(ValueError, match="re must have shape"):
        model.rollout(u, v, re[:1], 2)
    with pytest.raises(ValueError, match="re must be strictly positive"):
        model.rollout(u, v, -re, 2)
    # the model's solver steps without checks: a Reynolds number too low for explicit diffusion is refused first
    with pytest.raises(ValueError, match=r"re holds 1, below 3\.2: the lowest Reynolds number"):
        model.rollout(u, v, torch.tensor([100.0, 1.0]), 2)
    bad = v.clone()
    bad[0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="v contains NaN"):
        model.rollout(u, bad, re, 2)
    with pytest.raises(ValueError, match="curriculum"):
        SolverInTheLoop(**GEOMETRY, curriculum=[8, 4])
    with pytest.raises(ValueError, match="increasing"):  # a repeated stage was accepted
        SolverInTheLoop(**GEOMETRY, curriculum=[2, 2, 4])
    with pytest.raises(TypeError, match="look_ahead"):
        SolverInTheLoop(**GEOMETRY, look_ahead=2.5)
    # the CFL message names what the caller can change: the model's dt is not it
    with pytest.raises(ValueError, match=r"dt is the model's, fixed by its training: its states need "
                                         r"max\|velocity\| <= 2\.5 m/s"):
        model.rollout(u * 5, v, re, 2)
    # a state that blows up inside a rollout is reported as such, not as the pressure solve's argument b
    blown = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    with torch.no_grad():
        blown.net["sol"].layers[-1].bias.fill_(3e38)
    with pytest.raises(FloatingPointError, match="the flow diverged"):
        blown.rollout(u, v, re, 3)


def test_look_ahead_and_curriculum_must_agree():
    assert SolverInTheLoop(**GEOMETRY, **NET).hparams.look_ahead == 16
    model = SolverInTheLoop(**GEOMETRY, **NET, curriculum=[2, 4])
    assert model.hparams.look_ahead == 4 and model._max_look_ahead() == 4
    assert SolverInTheLoop(**GEOMETRY, **NET, look_ahead=4, curriculum=[2, 4]).hparams.look_ahead == 4
    # it was ignored: hparams said 2 while the curriculum trained 4, then 8, then 16
    with pytest.raises(ValueError, match=r"look_ahead=2 differs from the last stage of curriculum=\[4, 8, 16\]"):
        SolverInTheLoop(**GEOMETRY, **NET, look_ahead=2, curriculum=[4, 8, 16])
    from hybridzoo.zoo.registry import create_model

    with pytest.raises(ValueError, match="look_ahead=2"):
        create_model("solver-in-the-loop-ns", look_ahead=2)  # the zoo config has a curriculum
    assert create_model("solver-in-the-loop-ns", look_ahead=2, curriculum=None).look_ahead == 2


def test_shipped_weights_refuse_another_grid_time_step_or_re_scale():
    from hybridzoo.zoo.registry import create_model

    for override in ({"re_scale": 100.0}, {"dt": 0.05}, {"nx": 64, "ny": 32}):
        key = next(iter(override))
        with pytest.raises(ValueError, match=f"pretrained weights were trained with {key}="):
            create_model("solver-in-the-loop-ns", pretrained="solver-in-the-loop-ns", **override)


def test_a_rollout_outside_the_training_data_or_past_the_cfl_limit_warns():
    # Re = 1e5 on the shipped weights: |u| reached 27 m/s (CFL ~10) within 40 steps, clamped back-traces, no word
    from hybridzoo.zoo.registry import create_model

    model = create_model("solver-in-the-loop-ns", pretrained="solver-in-the-loop-ns").eval()
    assert model.re_range() == (100.0, 400.0)  # the card's re_train
    u, v = model.solver.apply_boundaries(torch.ones(1, *model.solver.u_shape), torch.zeros(1, *model.solver.v_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.rollout(u, v, torch.tensor([300.0]), 3)
    with pytest.warns(UserWarning, match="outside the training data's Re 100 to 400"), \
            pytest.warns(UserWarning, match=r"SOL rollout broke the CFL limit .* at step 1 of 3"):
        model.rollout(u, v, torch.tensor([1e5]), 3)
    with pytest.raises(TypeError, match="gradient_checkpointing must be a bool"):
        model.rollout(u, v, torch.tensor([300.0]), 2, gradient_checkpointing="no")


def test_a_fitted_models_own_rollout_still_warns_outside_its_training_range(datamodule, tmp_path):
    # the check once looked only for "no Trainer attached", so it fell silent after any fit or test
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, train_non=False, **NET)
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=datamodule)
    batch = next(iter(datamodule.test_dataloader()))
    with pytest.warns(UserWarning, match="outside the training data's Re 100 to 200"):
        model.rollout(batch["u"][:, 0], batch["v"][:, 0], torch.full_like(batch["re"], 1000.0), 2)


class _OverflowOnce(SolverInTheLoop):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if batch_idx == 0 else loss


def test_an_update_with_a_non_finite_gradient_is_skipped(datamodule, tmp_path):
    model = _OverflowOnce(**GEOMETRY, look_ahead=2, train_non=False, **NET)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.warns(UserWarning, match="non-finite gradient"):
        _trainer(tmp_path, max_steps=2, gradient_clip_val=1.0).fit(model, datamodule=datamodule)
    assert model.skipped_steps == 1
    ckpt = tmp_path / "skipped.ckpt"
    trainer = _trainer(tmp_path, max_steps=2, gradient_clip_val=1.0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(ckpt)  # a resumed fit goes on counting from the checkpoint's count
    resumed = SolverInTheLoop(**GEOMETRY, look_ahead=2, train_non=False, **NET)
    resumed.on_load_checkpoint(torch.load(ckpt, weights_only=True))
    assert resumed.skipped_steps == 1
    assert resumed.re_range() == (100.0, 200.0)  # the fit's data's, kept for a later rollout's range warning
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # the second, finite step did update


@pytest.mark.parametrize(("override", "name"), [
    ({"diameter": -1.0}, "diameter"), ({"diameter": 0.0}, "diameter"), ({"diameter": 0.1}, "diameter"),
    ({"inflow_speed": 0.0}, "inflow_speed"), ({"inflow_speed": -1.0}, "inflow_speed"),
    ({"center": (50.0, 50.0)}, "center"), ({"center": (2.0, 2.0, 1.0)}, "center"), ({"dt": 0.6}, "dt"),
])
def test_bad_wake_geometry_is_rejected_with_the_argument_named(override, name):
    with pytest.raises(ValueError, match=name):
        SolverInTheLoop(**{**GEOMETRY, **override}, **NET)


def test_curriculum_must_hold_whole_look_aheads():
    for bad in ([1.9, 4.7], [2, 4.5], [0, 2], [True, 2], [], "248"):
        with pytest.raises(ValueError, match="curriculum"):
            SolverInTheLoop(**GEOMETRY, curriculum=bad, **NET)
    model = SolverInTheLoop(**GEOMETRY, curriculum=[2.0, 4], **NET)
    assert model.hparams.curriculum == [2, 4] and model.look_ahead == 2


def test_the_default_solves_converge_forward_and_backward(datamodule):
    # float32 at the default tolerance: no pressure solve of a training step stops at its iteration cap
    torch.manual_seed(0)
    model = SolverInTheLoop(**GEOMETRY, look_ahead=4, **NET)
    batch = next(iter(datamodule.train_dataloader()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        us, vs = model.rollout(batch["u"][:, 0], batch["v"][:, 0], batch["re"], 4, "sol")
        (((us - batch["u"][:, 1:]) ** 2).mean() + ((vs - batch["v"][:, 1:]) ** 2).mean()).backward()
        model.rollouts(next(iter(datamodule.test_dataloader())))


def test_sol_and_non_are_clipped_and_skipped_each_on_their_own():
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    groups = model.clip_groups()
    assert [len(g) for g in groups] == [len(list(model.net[m].parameters())) for m in ("sol", "non")]
    for p in model.net["sol"].parameters():
        p.grad = torch.full_like(p, float("inf"))
    for p in model.net["non"].parameters():
        p.grad = torch.ones_like(p)
    with pytest.warns(UserWarning, match="non-finite gradient"):
        model.on_before_optimizer_step(None)
    # before, NON's finite update was thrown away with SOL's
    assert all(p.grad is None for p in model.net["sol"].parameters())
    assert all(p.grad is not None for p in model.net["non"].parameters())


def test_rollout_and_training_refuse_what_they_would_get_wrong(datamodule):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=4, **NET)
    batch = next(iter(datamodule.train_dataloader()))
    short = {k: (v[:, :2] if k in ("u", "v") else v) for k, v in batch.items()}
    with pytest.raises(ValueError, match="look-ahead 4 needs windows of 5 states"):  # broadcast silently before
        model.training_step(short, 0)
    u, v, re = batch["u"][:, 0], batch["v"][:, 0], batch["re"]
    with pytest.raises(TypeError, match="model's dtype"):
        model.rollout(u.double(), v.double(), re, 2)
    with pytest.raises(ValueError, match="CFL"):  # the solver runs unchecked, so the start is checked
        model.rollout(3 * u, 3 * v, re, 2)
    with pytest.raises(TypeError, match="train_non must be a bool"):
        SolverInTheLoop(**GEOMETRY, train_non="no", **NET)


def test_a_single_hybrid_step_checks_its_state_as_a_rollout_does(datamodule):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    batch = next(iter(datamodule.train_dataloader()))
    u, v, re = batch["u"][:, 0], batch["v"][:, 0], batch["re"]
    with torch.no_grad():
        us, vs = model.rollout(u, v, re, 1)
        u1, v1, p1 = model.hybrid_step(u, v, re)
    assert torch.equal(u1, us[:, 0]) and torch.equal(v1, vs[:, 0])
    assert p1.shape == (u.shape[0], model.solver.ny, model.solver.nx)
    with pytest.raises(ValueError, match="^u must have shape"):
        model.hybrid_step(u[:, :, :-1], v, re)
    with pytest.raises(TypeError, match="model's dtype"):
        model.hybrid_step(u.double(), v.double(), re)
    with pytest.raises(ValueError, match="re must have shape"):
        model.hybrid_step(u, v, re[:1])
    with pytest.raises(ValueError, match="CFL"):
        model.hybrid_step(3 * u, 3 * v, re)
    bad = v.clone()
    bad[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="v contains NaN"):
        model.hybrid_step(u, bad, re)
    with pytest.raises(ValueError, match="^p must have shape"):
        model.hybrid_step(u, v, re, p=torch.zeros(u.shape[0], 3, 3))
    with pytest.raises(TypeError, match="^p must have dtype torch.float32, got torch.float64"):
        model.hybrid_step(u, v, re, p=p1.double())
    with torch.no_grad():  # Reynolds numbers are a parameter of the flow: any floating dtype will do
        u2, _, _ = model.hybrid_step(u, v, re.double())
    assert torch.equal(u2, u1)


def test_predict_rolls_out_the_test_reynolds_numbers(datamodule, tmp_path):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    (u, v), = _trainer(tmp_path).predict(model, datamodule=datamodule)
    batch = next(iter(datamodule.test_dataloader()))
    steps = batch["u"].shape[1] - 1
    assert u.shape == (len(datamodule.hparams.re_test), steps, *batch["u"].shape[2:])
    assert v.shape == (len(datamodule.hparams.re_test), steps, *batch["v"].shape[2:])
    with torch.no_grad():
        ref_u, _ = model.rollout(batch["u"][:, 0], batch["v"][:, 0], batch["re"], steps)
    assert torch.equal(u, ref_u)
    # a user's batch holds the states and Reynolds numbers only: no 2x grid, no baselines rolled out
    own = torch.utils.data.DataLoader([{k: batch[k] for k in ("u", "v", "re")}], batch_size=None)
    (u2, _), = _trainer(tmp_path).predict(model, own)
    assert torch.equal(u2, ref_u)
    with pytest.raises(ValueError, match="at least 2 states"):
        model.predict_step({k: batch[k][:, :1] if k != "re" else batch[k] for k in ("u", "v", "re")}, 0)
    for bad, got in (({"u": batch["u"], "v": batch["v"]}, r"\['u', 'v'\]"), ((batch["u"], batch["v"]), "tuple")):
        with pytest.raises(ValueError, match=f"batch must be a dict with 'u', 'v' and 're'.*got {got}"):
            model.predict_step(bad, 0)


def test_an_empty_batch_rolls_out_to_an_empty_batch():
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    u, v = torch.zeros(0, *model.solver.u_shape), torch.zeros(0, *model.solver.v_shape)
    us, vs = model.rollout(u, v, torch.ones(0), 3)
    assert us.shape == (0, 3, *u.shape[1:]) and vs.shape == (0, 3, *v.shape[1:])


def test_non_is_trained_on_one_step_pairs_from_reference_states(datamodule):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)  # zero last layers: SOL = NON = SRC
    batch = next(iter(datamodule.train_dataloader()))
    n = 2
    u, v, re = batch["u"][:, : n + 1], batch["v"][:, : n + 1], batch["re"]
    with torch.no_grad(), pytest.warns(UserWarning):
        got = model.training_step(batch, 0)
        us, vs = model.rollout(u[:, 0], v[:, 0], re, n, "src")
        un, vn, _ = model.hybrid_step(u[:, :-1].flatten(0, 1), v[:, :-1].flatten(0, 1), re.repeat_interleave(n),
                                      method="src")
    mse = torch.nn.functional.mse_loss
    sol = mse(us, u[:, 1:]) + mse(vs, v[:, 1:])
    non = mse(un, u[:, 1:].flatten(0, 1)) + mse(vn, v[:, 1:].flatten(0, 1))  # the step after each state
    torch.testing.assert_close(got, sol + non, rtol=1e-5, atol=0)


def test_the_curriculum_advances_every_curriculum_epochs(at_epoch):
    model = SolverInTheLoop(**GEOMETRY, curriculum=[2, 4, 8], curriculum_epochs=3, **NET)
    for epoch, n in ((0, 2), (2, 2), (3, 4), (5, 4), (6, 8), (40, 8)):
        at_epoch(model, epoch)
        assert model.look_ahead == n, epoch


def test_velocity_mae_is_the_mean_over_all_faces():
    u, v = torch.zeros(2, 3, 8, 17), torch.zeros(2, 3, 9, 16)
    torch.testing.assert_close(velocity_mae(u + 0.5, v + 0.5, u, v), torch.full((2, 3), 0.5))
    dv = v.clone()
    dv[..., 0, 0] = 1.0  # one face of 8 * 17 + 9 * 16 = 280
    torch.testing.assert_close(velocity_mae(u, dv, u, v), torch.full((2, 3), 1 / 280))


def test_the_2x_baseline_is_compared_step_for_step(datamodule):
    model = SolverInTheLoop(**GEOMETRY, look_ahead=2, **NET)
    batch = dict(next(iter(datamodule.test_dataloader())))
    batch["u2x"], batch["v2x"] = batch["u"].clone(), batch["v"].clone()  # a "2x" run that is the reference
    u, v = model.rollouts(batch)["2x"]
    assert float(velocity_mae(u, v, batch["u"][:, 1:], batch["v"][:, 1:]).max()) == 0.0


def test_the_correction_cnn_checks_its_sizes_by_name():
    from hybridzoo.zoo.ns_networks import CorrectionCNN

    with pytest.raises(ValueError, match="width"):
        CorrectionCNN(width=0)  # was built: a network that can only output 0
    with pytest.raises(TypeError, match="depth"):
        CorrectionCNN(depth=2.0)
    with pytest.raises(ValueError, match="kernel"):
        CorrectionCNN(kernel=4)
