import re

import numpy as np
import pytest
import torch
from hybridzoo.datamodules.digits import DigitsDataModule, load_digits_split


def _rows(x, y):
    return sorted(map(tuple, np.concatenate([x.reshape(len(x), -1).numpy(), y[:, None].numpy()], axis=1)))


def test_split_is_a_stratified_partition_of_the_digits():
    from sklearn.datasets import load_digits

    splits = load_digits_split(test_fraction=0.2, val_fraction=0.1, seed=0)
    sizes = {k: len(v[1]) for k, v in splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 360 and abs(sizes["val"] - 180) <= 1
    bunch = load_digits()
    full = _rows(torch.from_numpy(bunch.images / 16.0).float(), torch.from_numpy(bunch.target))
    parts = [splits[k] for k in ("train", "val", "test")]
    joined = _rows(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    assert joined == full  # every image exactly once across the three splits
    x, y = splits["test"]
    assert x.shape == (360, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    counts = torch.bincount(y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~10 % of each class


def test_split_is_seeded():
    a, b, c = (load_digits_split(seed=s)["test"][1] for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_datamodule_loaders():
    dm = DigitsDataModule(batch_size=32, seed=1)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    x2, _ = next(iter(DigitsDataModule(batch_size=32, seed=1).train_dataloader()))
    assert torch.equal(x, x2)  # seeded shuffle
    assert sum(len(b[1]) for b in dm.test_dataloader()) == 360


def test_bad_arguments():
    with pytest.raises(ValueError, match="test_fraction"):
        DigitsDataModule(test_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        DigitsDataModule(batch_size=0)
    with pytest.raises(ValueError, match="test_fraction \\+ val_fraction"):
        load_digits_split(test_fraction=0.6, val_fraction=0.5)
    with pytest.raises(TypeError, match="seed"):
        load_digits_split(seed=1.5)


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_seed_range_ends_are_usable(seed):
    # before, 2**32 - 1 passed the checks and overflowed scikit-learn's range at seed + 1
    splits = load_digits_split(seed=seed)
    assert sum(len(v[1]) for v in splits.values()) == 1797


def test_bad_seed_and_workers_are_refused_at_construction():
    with pytest.raises(ValueError, match="seed"):
        DigitsDataModule(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        DigitsDataModule(seed=2**32)
    with pytest.raises(ValueError, match="seed"):
        load_digits_split(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        DigitsDataModule(seed="0")
    with pytest.raises(ValueError, match="num_workers"):
        DigitsDataModule(num_workers=-1)
    with pytest.raises(ValueError, match="test_fraction \\+ val_fraction"):
        DigitsDataModule(test_fraction=0.6, val_fraction=0.5)


def test_predict_dataloader_is_the_test_split_in_order():
    dm = DigitsDataModule(batch_size=100, seed=2)
    x, y = zip(*dm.predict_dataloader())
    test_x, test_y = dm.splits["test"].tensors
    assert torch.equal(torch.cat(x), test_x) and torch.equal(torch.cat(y), test_y)


def test_a_reloaded_training_loader_moves_on_to_a_new_seeded_order():
    def first_batches() -> list[torch.Tensor]:  # one loader per epoch, as reload_dataloaders_every_n_epochs=1
        dm = DigitsDataModule(batch_size=2000, seed=3)
        return [next(iter(dm.train_dataloader()))[1] for _ in range(2)]

    epoch0, epoch1 = first_batches()
    assert not torch.equal(epoch0, epoch1)  # each loader used to restart the generator: the same order again
    assert all(torch.equal(a, b) for a, b in zip(first_batches(), (epoch0, epoch1)))  # same seed, same orders


@pytest.mark.parametrize("kwargs,name", [({"val_fraction": 0.004}, "val_fraction"),
                                         ({"test_fraction": 0.004}, "test_fraction"),
                                         ({"test_fraction": 0.001, "val_fraction": 0.001}, "test_fraction")])
def test_a_split_smaller_than_the_classes_is_refused_at_construction(kwargs, name):
    # 0.004 of 1797 images is 8 < 10 classes: scikit-learn refused it only in setup, without our argument's name
    message = rf"{name}=0.00\d leaves \d of the 1797 images.*10 classes.*{name} must be at least"
    with pytest.raises(ValueError, match=message):
        DigitsDataModule(**kwargs)
    with pytest.raises(ValueError, match=f"{name}="):
        load_digits_split(**kwargs)


def test_the_quoted_minimum_fraction_works():
    with pytest.raises(ValueError, match="at least") as info:
        DigitsDataModule(val_fraction=0.004, test_fraction=0.3)
    smallest = float(re.search(r"at least ([0-9.e-]+)", str(info.value)).group(1))
    dm = DigitsDataModule(val_fraction=smallest, test_fraction=0.3)
    dm.setup()
    assert 10 <= len(dm.splits["val"]) <= 11  # the minimum is quoted rounded up to 3 digits
    assert torch.bincount(dm.splits["val"].tensors[1], minlength=10).min() >= 1


def test_too_few_training_images_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"test_fraction \+ val_fraction = 0.5 \+ 0.495 leaves 8 .* training"):
        DigitsDataModule(test_fraction=0.5, val_fraction=0.495)
