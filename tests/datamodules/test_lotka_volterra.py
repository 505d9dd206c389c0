import numpy as np
import pytest
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.physics import LotkaVolterraParams, simulate_lotka_volterra

SMALL = dict(n_trajectories=6, n_val=1, n_test=1, t_train=2.0, t_extrap=4.0, dt=0.2)


def test_deterministic_from_seed(tmp_path):
    assert LotkaVolterraDataModule(seed=np.int64(3), **SMALL).hparams.seed == 3  # numpy ints are ints too
    a = LotkaVolterraDataModule(seed=3, cache_dir=str(tmp_path / "a"), **SMALL).generate()
    b = LotkaVolterraDataModule(seed=3, cache_dir=str(tmp_path / "b"), **SMALL).generate()
    c = LotkaVolterraDataModule(seed=4, cache_dir=str(tmp_path / "c"), **SMALL).generate()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["obs"], c["obs"])


def test_clean_data_is_the_true_system_and_noise_is_relative(tmp_path):
    dm = LotkaVolterraDataModule(noise=0.05, cache_dir=str(tmp_path), **SMALL)
    arrays = dm.generate()
    t = torch.as_tensor(arrays["t"])
    ref = simulate_lotka_volterra(torch.as_tensor(arrays["y0"]), t, LotkaVolterraParams(), substeps=50)
    np.testing.assert_allclose(arrays["clean"], ref.numpy(), atol=1e-6)
    rel = (arrays["obs"] - arrays["clean"]).std(axis=1) / np.abs(arrays["clean"]).mean(axis=1)
    assert 0.03 < rel.mean() < 0.07
    assert tuple(arrays["y0"][0]) == (10.0, 10.0)


def test_split_by_trajectory_and_windows(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL)
    dm.prepare_data()
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    test = next(iter(dm.test_dataloader()))
    assert train["obs"].shape == (4, 21, 2) and val["obs"].shape[0] == 1 and test["obs"].shape[0] == 1
    starts = {tuple(x.tolist()) for b in (train, val, test) for x in b["y0"]}
    assert len(starts) == 6  # no trajectory in two splits
    assert int(train["n_train"][0]) == 11 and float(train["t"][0, 10]) == pytest.approx(2.0)


def test_corrupt_cache_is_rebuilt_not_used(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL)
    dm.prepare_data()
    good = dm.cache.load()
    dm.cache.arrays_path.write_bytes(b"garbage")
    dm2 = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL)
    with pytest.warns(UserWarning, match="corrupt"):
        dm2.setup()
    np.testing.assert_array_equal(dm2._arrays["obs"], good["obs"])
    assert dm2.cache.status() == "ok"


def test_build_force_regenerates(tmp_path):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL)
    where = dm.build()
    stamp = dm.cache.manifest_path.stat().st_mtime_ns
    assert dm.build() == where and dm.cache.manifest_path.stat().st_mtime_ns == stamp
    dm.build(force=True)
    assert dm.cache.status() == "ok"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(noise=-0.1), "noise must be non-negative"),
        (dict(t_train=5.0, t_extrap=4.0), "t_extrap must exceed t_train"),
        (dict(n_trajectories=2, n_val=1, n_test=1), "leaves no training trajectory"),
        (dict(ic_low=5.0, ic_high=1.0), "ic_high must exceed ic_low"),
        (dict(beta=0.0), "beta must be positive"),
        (dict(x0=float("nan")), "x0 must be finite"),
        # t_extrap > t_train, but no multiple of dt after t_train: the extrapolation error would be NaN
        (dict(t_train=10.0, t_extrap=10.04, dt=0.1), "t_extrap=10.04 leaves no observation time"),
        (dict(seed=-1), "seed must be a non-negative int"),
        (dict(seed=1.5), "seed must be a non-negative int"),
        (dict(seed="0"), "seed must be a non-negative int"),
        (dict(seed=True), "seed must be a non-negative int"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LotkaVolterraDataModule(**kwargs)


@pytest.mark.parametrize(
    ("t_train", "t_extrap", "dt", "n_train", "n_total"),
    [
        (1.0, 2.0, 0.15, 7, 14),  # round() fitted up to 1.05 > t_train
        (1.0, 2.0, 0.3, 4, 7),  # round() sampled up to 2.1 > t_extrap
        (0.3, 0.7, 0.1, 4, 8),  # 0.3/0.1 = 2.9999999999999996 in floating point: t_train stays on the grid
        (10.0, 20.0, 0.1, 101, 201),  # the shipped config's grid
    ],
)
def test_windows_never_pass_their_end_times(tmp_path, t_train, t_extrap, dt, n_train, n_total):
    dm = LotkaVolterraDataModule(cache_dir=str(tmp_path), **dict(SMALL, t_train=t_train, t_extrap=t_extrap, dt=dt))
    batch = next(iter(dm.train_dataloader()))
    t, n = batch["t"][0], int(batch["n_train"][0])
    assert (n, t.numel()) == (n_train, n_total)
    assert float(t[n - 1]) <= t_train + 1e-6 and float(t[-1]) <= t_extrap + 1e-6
    assert float(t[n]) > t_train  # the first extrapolation time is the next grid time after t_train


@pytest.mark.parametrize("setting", [{"noise": 0.05}, {"alpha": 1.2}, {"seed": 1}, {"x0": 9.0}, {"ic_high": 11.0}])
def test_every_generation_setting_keys_the_cache(tmp_path, setting):
    base = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL)
    other = LotkaVolterraDataModule(cache_dir=str(tmp_path), **SMALL, **setting)
    assert base.cache.dir != other.cache.dir
    base.setup()
    other.setup()  # must not read base's cached arrays
    assert not np.array_equal(base._arrays["obs"], other._arrays["obs"])
