import numpy as np
import pytest
import torch
from hybridzoo.datamodules.wake_flow import WakeFlowDataModule
from hybridzoo.datamodules.wake_problem import kick_sign, restrict_faces, wake_solver

TINY = dict(nx=16, ny=8, length_x=8.0, center=(2.0, 2.0), diameter=1.0, inflow_speed=1.0, dt=0.2, factor=4,
            warmup=4.0, steps=12, re_train=(100.0, 200.0), re_val=(150.0,), re_test=(250.0,), window=4,
            rollout_steps=10, batch_size=4)


def test_restriction_keeps_every_coarse_cell_divergence_free():
    fine = wake_solver(32, 16, 8.0, (2.0, 2.0), 1.0, 1.0)
    coarse = wake_solver(16, 8, 8.0, (2.0, 2.0), 1.0, 1.0)
    g = torch.Generator().manual_seed(0)
    u = torch.rand(2, *fine.u_shape, generator=g, dtype=torch.float64)
    v = torch.randn(2, *fine.v_shape, generator=g, dtype=torch.float64)
    u, v, _ = fine.project(*fine.apply_boundaries(u, v), 1.0)
    scale = float(u.abs().max()) / fine.h  # divergence of a field of this size, were it not projected
    assert fine.divergence(u, v).abs().max() < 1e-9 * scale
    uc, vc = restrict_faces(u, v, 2)
    assert uc.shape[1:] == coarse.u_shape and vc.shape[1:] == coarse.v_shape
    # the coarse flux through each coarse face is the sum of the fine fluxes through it
    assert coarse.pressure.divergence(uc, vc).abs().max() < 1e-9 * scale
    assert coarse.pressure.divergence(uc, vc).abs().max() < 1e-3 * coarse.pressure.divergence(
        *coarse.apply_boundaries(*restrict_faces(*fine.apply_boundaries(u + 0.1, v), 2))).abs().max()


def test_generation_is_deterministic_cached_and_split_by_reynolds_number(tmp_path):
    dm = WakeFlowDataModule(**TINY, cache_dir=str(tmp_path))
    dm.setup()
    a = dm._arrays
    assert a["u"].shape == (4, 13, 8, 17) and a["v"].shape == (4, 13, 9, 16)
    assert a["u2x"].shape == a["u"].shape and np.isfinite(a["u"]).all()
    assert dm.cache.status() == "ok"
    # a fresh module regenerates bit-identical arrays from the seed
    again = WakeFlowDataModule(**TINY, cache_dir=str(tmp_path / "other")).generate()
    for k in ("u", "v", "u2x", "v2x"):
        np.testing.assert_array_equal(again[k], a[k])
    # the reference starts from the same state as the 2x run, then the two drift apart
    np.testing.assert_allclose(a["u2x"][:, 0], a["u"][:, 0], rtol=0, atol=1e-6)
    assert np.abs(a["u2x"][:, -1] - a["u"][:, -1]).mean() > 1e-4
    # a developed wake: the flow behind the cylinder is not symmetric (the kick breaks the symmetry)
    assert np.abs(a["v"][:, -1]).max() > 0.05
    train = dm.train_dataset()
    assert len(train) == 2 * (13 - 4)
    item = train[0]
    assert item["u"].shape == (5, 8, 17) and float(item["re"]) == 100.0
    test = dm.rollout_dataset("test")
    assert len(test) == 1 and float(test[0]["re"]) == 250.0 and test[0]["u"].shape == (11, 8, 17)


def test_a_simulation_does_not_depend_on_the_other_reynolds_numbers_in_the_set():
    signs = {kick_sign(0, re) for re in (100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0)}
    assert signs == {-1.0, 1.0}  # the kick still varies between simulations
    small = dict(TINY, warmup=2.0, steps=3, window=2, rollout_steps=2)
    one = WakeFlowDataModule(**{**small, "re_train": (250.0, 100.0), "re_val": (150.0,), "re_test": (200.0,)})
    other = WakeFlowDataModule(**{**small, "re_train": (120.0, 200.0), "re_val": (130.0,), "re_test": (140.0,)})
    a, b = one.generate(), other.generate()
    i, j = list(a["re"]).index(200.0), list(b["re"]).index(200.0)
    assert i != j
    np.testing.assert_allclose(a["v"][i], b["v"][j], atol=1e-6)
    assert np.abs(a["v"][i, 0]).max() > 0.01


def test_corrupt_cache_is_rebuilt(tmp_path):
    dm = WakeFlowDataModule(**TINY, cache_dir=str(tmp_path))
    folder = dm.build()
    arrays = folder / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.warns(UserWarning):
        dm.setup()
    assert dm.cache.status() == "ok" and dm._arrays["u"].shape[0] == 4


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="must not share"):
        WakeFlowDataModule(**{**TINY, "re_test": (100.0,)})
    with pytest.raises(ValueError, match="center"):
        WakeFlowDataModule(**{**TINY, "center": (0.2, 2.0)})
    with pytest.raises(ValueError, match="factor must be even"):
        WakeFlowDataModule(**{**TINY, "factor": 3})
    with pytest.raises(ValueError, match="window"):
        WakeFlowDataModule(**{**TINY, "window": 12})
    with pytest.raises(ValueError, match="re_val"):
        WakeFlowDataModule(**{**TINY, "re_val": ()})
    with pytest.raises(TypeError, match="nx"):
        WakeFlowDataModule(**{**TINY, "nx": 16.5})
    with pytest.raises(TypeError, match="progress must be a bool"):  # "no" showed the bar
        WakeFlowDataModule(**{**TINY, "progress": "no"})
    dm = WakeFlowDataModule(**TINY)
    with pytest.raises(ValueError, match="split"):
        dm.rollout_dataset("holdout")


def test_a_time_step_beyond_the_cfl_limit_is_refused_before_anything_is_cached(tmp_path):
    # h = 0.5: dt = 1.0 moves the inflow itself two cells per step
    with pytest.raises(ValueError, match=r"dt=1.0 violates the CFL condition"):
        WakeFlowDataModule(**{**TINY, "dt": 1.0})
    # within the limit at the inflow speed, but the flow around the cylinder is ~1.9x faster
    dm = WakeFlowDataModule(**{**TINY, "dt": 0.45, "warmup": 1.0, "steps": 5, "window": 2, "rollout_steps": 2},
                            cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"dt=0.45 violates the CFL condition .*max\|u\|"):
        dm.prepare_data()
    assert dm.cache.status() == "missing"
    # a Reynolds number too low for the explicit diffusion of the reference grid (h = 0.125, dt = 0.05): refused
    # at construction, naming the split and the lowest Re (it was the solver's advice to use implicit diffusion,
    # an option the DataModule does not have, at prepare_data)
    with pytest.raises(ValueError, match=r"re_train holds Re=2, below 12\.8: the lowest Reynolds number"):
        WakeFlowDataModule(**{**TINY, "re_train": (100.0, 2.0)}, cache_dir=str(tmp_path))
    # at the limit the constructor and the solver's own check agree (the same test, the same arithmetic):
    # Re = 0.8064 passed construction and then failed in generate() before
    edge = dict(nx=32, ny=16, length_x=8.0, center=(2.125, 2.125), diameter=0.3, inflow_speed=0.3, factor=2,
                dt=0.07, warmup=0.0, steps=3, window=1, rollout_steps=1, re_val=(5.0,), re_test=(6.0,),
                progress=False, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="re_train holds Re=0.8064, below"):
        WakeFlowDataModule(**edge, re_train=(0.8064,))
    WakeFlowDataModule(**edge, re_train=(0.8065,)).generate()


def test_splits_hold_each_reynolds_number_once():
    with pytest.raises(ValueError, match="re_val and re_test must not share"):
        WakeFlowDataModule(**{**TINY, "re_val": (300.0,), "re_test": (300.0,)})
    with pytest.raises(ValueError, match="re_train holds a Reynolds number twice"):
        WakeFlowDataModule(**{**TINY, "re_train": (100.0, 100.0)})


@pytest.mark.parametrize("seed", [1.7, -1, True, "0"])
def test_seed_must_be_a_non_negative_int(seed):
    with pytest.raises(ValueError, match="seed"):
        WakeFlowDataModule(**TINY, seed=seed)


def test_numpy_seed_and_arrays_key_the_cache_by_their_exact_values():
    base = WakeFlowDataModule(**TINY, seed=3)
    assert WakeFlowDataModule(**TINY, seed=np.int64(3)).cache.dir == base.cache.dir
    re = np.array([100.0, 200.0])
    same = WakeFlowDataModule(**{**TINY, "re_train": re, "center": np.array([2.0, 2.0])}, seed=3)
    assert same.cache.dir == base.cache.dir  # an array keys like the tuple or list of its values
    close = WakeFlowDataModule(**{**TINY, "re_train": re + [0.0, 4e-9]}, seed=3)  # printed as [100. 200.]
    assert close.cache.dir != base.cache.dir
    assert close.data_config()["re_train"] == [100.0, 200.000000004]
    # `hybridzoo data build --data re_train=[100,200]` gives ints, a fit's typed --data.re_train floats
    assert WakeFlowDataModule(**{**TINY, "re_train": [100, 200]}, seed=3).cache.dir == base.cache.dir
    assert WakeFlowDataModule(**{**TINY, "re_train": np.array([100, 200])}, seed=3).cache.dir == base.cache.dir


def test_a_cache_dir_that_is_a_file_is_refused_before_any_simulation(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(ValueError, match="cache_dir=.* is a file"):
        WakeFlowDataModule(**TINY, cache_dir=str(afile))
    with pytest.raises(ValueError, match="cache_dir=.* lies under the file"):
        WakeFlowDataModule(**TINY, cache_dir=str(afile / "sub"))
    with pytest.raises(TypeError, match="cache_dir must be a path"):
        WakeFlowDataModule(**TINY, cache_dir=5)
    with pytest.raises(ValueError, match="cache_dir must be a folder, got an empty path"):  # it wrote into "."
        WakeFlowDataModule(**TINY, cache_dir="")
    assert afile.read_text() == "mine"
    assert WakeFlowDataModule(**TINY, cache_dir=tmp_path).cache.dir.parent.parent == tmp_path


def test_the_shipped_configs_keep_their_cache_folder():
    # configs/solver_in_the_loop_ns*.yaml (the defaults) and their cards' data: the cached data of the shipped
    # checkpoints lives here. Changes only with GENERATOR_VERSION or the set of keys in data_config.
    import yaml
    from hybridzoo.zoo.registry import config_path

    assert WakeFlowDataModule(progress=False).cache.dir.name == "353a70f1bdaf852d"
    for name in ("solver-in-the-loop-ns", "solver-in-the-loop-ns-large"):
        init = yaml.safe_load(config_path(name).read_text())["data"]["init_args"]
        assert WakeFlowDataModule(**init, progress=False).cache.dir.name == "353a70f1bdaf852d"


def test_a_cylinder_that_covers_no_cell_is_rejected():
    with pytest.raises(ValueError, match="diameter=0.3 .*covers no cell"):
        WakeFlowDataModule(**{**TINY, "diameter": 0.3, "center": (2.0, 2.0)})  # between the cell centres
    with pytest.raises(ValueError, match="center"):
        WakeFlowDataModule(**{**TINY, "center": (2.0, float("nan"))})
    with pytest.raises(ValueError, match="center"):
        WakeFlowDataModule(**{**TINY, "center": (2.0,)})


def test_evaluation_loaders_work_before_setup_and_re_lists_are_checked(tmp_path):
    small = dict(nx=16, ny=8, length_x=8.0, center=(2.0, 2.0), diameter=1.0, inflow_speed=1.0, dt=0.2, factor=2,
                 warmup=2.0, steps=6, re_train=(100.0,), re_val=(150.0,), re_test=(250.0,), window=2,
                 rollout_steps=4, progress=False, cache_dir=str(tmp_path))
    batch = next(iter(WakeFlowDataModule(**small).test_dataloader()))  # TypeError on None arrays before
    assert batch["u"].shape[:2] == (1, 5)
    with pytest.raises(TypeError, match="re_val must be a list of Reynolds numbers"):
        WakeFlowDataModule(**{**small, "re_val": 300.0})


# |u| sum, |v| sum and signed v sum of a tiny generated set, recorded at commit e50694e: a change of the
# generator's output must come with a GENERATOR_VERSION bump (and new values here), or stale caches are reused
FINGERPRINT = [2161.0337, 126.46224, -1.72634]


def test_rollouts_may_use_every_recorded_step():
    dm = WakeFlowDataModule(**{**TINY, "rollout_steps": TINY["steps"]})  # "rollout_steps <= steps"
    assert dm.hparams.rollout_steps == 12


def test_generated_wakes_keep_their_fingerprint():
    small = dict(TINY, factor=2, warmup=2.0, steps=3, window=2, rollout_steps=2, progress=False)
    a = WakeFlowDataModule(**small).generate()
    got = [float(np.abs(a["u"]).sum()), float(np.abs(a["v"]).sum()), float(a["v"].astype(np.float64).sum())]
    np.testing.assert_allclose(got, FINGERPRINT, rtol=1e-4, atol=1e-3)
