import pytest
import torch
from hybridzoo.datamodules.ellipses import EllipsesDataModule, EllipsesDataset, sample_seed
from hybridzoo.physics.phantoms import shepp_logan


def _dm(**kw):
    args = {"image_size": 16, "num_angles": 8, "train_size": 6, "val_size": 2, "test_size": 3,
            "batch_size": 2}
    args.update(kw)
    dm = EllipsesDataModule(**args)
    dm.setup("fit")
    return dm


def test_items_are_deterministic_and_shaped():
    a, b = _dm(), _dm()
    x, y = a.dataset("train")[3], b.dataset("train")[3]
    assert x["phantom"].shape == (1, 16, 16)
    assert x["sinogram"].shape == (1, 8, a.geometry.num_detectors)
    assert torch.equal(x["phantom"], y["phantom"]) and torch.equal(x["sinogram"], y["sinogram"])
    assert not torch.equal(a.dataset("train")[2]["phantom"], x["phantom"])


def test_splits_are_independent_and_test_set_fixed():
    dm = _dm()
    train = torch.stack([dm.dataset("train")[i]["phantom"] for i in range(3)])
    test = torch.stack([dm.dataset("test")[i]["phantom"] for i in range(3)])
    assert not any(torch.equal(t, s) for t in train for s in test)
    bigger = _dm(train_size=50)  # the held-out set does not depend on how much we train on
    assert torch.equal(bigger.dataset("test")[1]["phantom"], test[1])
    assert len({sample_seed(0, s, i) for s in ("train", "val", "test") for i in range(100)}) == 300


def test_sinogram_is_forward_plus_noise_of_the_stated_level():
    clean = _dm(noise="none").dataset("train")[0]
    assert torch.allclose(clean["sinogram"][0], _dm().op(clean["phantom"][0]), atol=1e-6)
    noisy = _dm(noise_level=0.05, image_size=32, num_angles=40).dataset("train")[0]
    op = _dm(image_size=32, num_angles=40).op
    residual = noisy["sinogram"][0] - op(noisy["phantom"][0])
    level = float(residual.std() / op(noisy["phantom"][0]).abs().mean())
    assert level == pytest.approx(0.05, rel=0.1)


def test_shepp_logan_test_phantom_and_loaders():
    dm = _dm(test_phantom="shepp-logan")
    assert torch.equal(dm.dataset("test")[0]["phantom"][0], shepp_logan(16))
    batch = next(iter(dm.train_dataloader()))
    assert batch["phantom"].shape == (2, 1, 16, 16) and batch["sinogram"].shape[:2] == (2, 1)
    assert len(dm.test_dataloader()) == 2


def test_poisson_noise_option():
    item = _dm(noise="poisson", photons_per_ray=1e3).dataset("train")[0]
    assert torch.isfinite(item["sinogram"]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_detectors"):
        EllipsesDataModule(image_size=32, num_detectors=20)
    with pytest.raises(ValueError, match="test_phantom"):
        EllipsesDataModule(test_phantom="head")
    with pytest.raises(ValueError, match="train_size"):
        EllipsesDataModule(train_size=0)
    with pytest.raises(ValueError, match="noise"):
        EllipsesDataset(_dm().op, 3, noise="speckle")
    with pytest.raises(IndexError):
        _dm().dataset("val")[5]


def test_a_phantom_without_ellipses_is_zeros():
    # the reviewer's case: the Poisson count of this sample is 0 (it crashed in render_ellipses)
    item = EllipsesDataModule(image_size=16, num_angles=4, mean_ellipses=5.0).dataset("train")[136]
    assert torch.equal(item["phantom"], torch.zeros(1, 16, 16))
    assert torch.equal(item["sinogram"], torch.zeros_like(item["sinogram"]))  # 5 % of nothing is nothing
    sparse = _dm(mean_ellipses=0.3, noise="poisson").dataset("train")
    assert any(sparse[i]["phantom"].abs().max() == 0 and torch.isfinite(sparse[i]["sinogram"]).all()
               for i in range(6))


@pytest.mark.parametrize("seed,error", [(1.7, TypeError), (True, TypeError), ("3", TypeError),
                                        (-1, ValueError), (2**32, ValueError)])
def test_seed_must_be_an_int_in_range_at_construction(seed, error):
    # 1.7 used to be truncated to 1 (seed 1's data, silently); -1 failed only at the first item
    with pytest.raises(error, match="seed"):
        EllipsesDataModule(image_size=16, num_angles=4, seed=seed)
    if seed != 2**32:  # the data set takes derived seeds beyond the module's range (seed + 1)
        with pytest.raises(error, match="seed"):
            EllipsesDataset(_dm().op, 3, seed=seed)


def test_largest_seed_works_and_derived_seed_is_accepted():
    dm = _dm(seed=2**32 - 1)
    assert dm.dataset("test")[0]["phantom"].shape == (1, 16, 16)
    assert EllipsesDataset(dm.op, 1, "test", 2**32)[0]["phantom"].shape == (1, 16, 16)


@pytest.mark.parametrize("kwargs,error", [
    ({"noise": "Gaussian"}, ValueError), ({"noise_level": -1.0}, ValueError), ({"noise_level": "5%"}, TypeError),
    ({"supersample": 0}, ValueError), ({"supersample": 2.0}, TypeError), ({"mean_ellipses": 0}, ValueError),
    ({"photons_per_ray": 0.0}, ValueError), ({"attenuation_scale": float("nan")}, ValueError),
    ({"num_workers": -1}, ValueError), ({"batch_size": 0}, ValueError),
])
def test_settings_are_checked_at_construction(kwargs, error):
    # these used to pass __init__ and fail only at the first dataloader
    with pytest.raises(error, match=next(iter(kwargs))):
        EllipsesDataModule(image_size=16, num_angles=4, **kwargs)


def test_trainer_predict_runs_on_the_test_split(tmp_path):
    import lightning as L
    from hybridzoo.zoo.learned_primal_dual import LearnedPrimalDualCT

    torch.manual_seed(0)
    model = LearnedPrimalDualCT(image_size=16, num_angles=8, n_iter=1, width=4, lgd_iter=1, lgd_width=4,
                                tv_iterations=2)
    dm = _dm(test_size=3)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    out = trainer.predict(model, datamodule=dm)
    assert [o.shape for o in out] == [(2, 1, 16, 16), (1, 1, 16, 16)]
    sinograms = torch.stack([dm.dataset("test")[i]["sinogram"] for i in range(3)])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(torch.cat(out), model(sinograms), atol=1e-6)  # the test split, in order


def test_validation_phantoms_come_from_their_own_stream():
    dm = _dm()
    assert dm.dataset("val").split == "val"
    train = [dm.dataset("train")[i]["phantom"] for i in range(6)]
    assert not any(torch.equal(dm.dataset("val")[j]["phantom"], t) for j in range(2) for t in train)


def test_the_global_seed_changes_every_split():
    for split in ("train", "val", "test"):
        assert not torch.equal(_dm(seed=0).dataset(split)[0]["phantom"], _dm(seed=1).dataset(split)[0]["phantom"])
