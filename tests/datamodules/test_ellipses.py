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
