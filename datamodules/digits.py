"""scikit-learn's bundled handwritten digits (1,797 8×8 images) as a LightningDataModule.

The data ship inside scikit-learn (UCI "Optical Recognition of Handwritten Digits", 8×8 block
counts 0..16 of 32×32 bitmaps), so this works offline; it stands in for MNIST in tests, the demo
and the ``rk-net-digits`` checkpoint. Splits are stratified and seeded; the test split is held out
from training and validation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hybridzoo.datamodules.splits import SEED_LIMIT, SplitDataModule, check_num_workers, check_seed
from hybridzoo.physics.validation import check_positive_int, is_real_number
from torch.utils.data import TensorDataset

#: Largest value of a digits pixel (each is a count of ink bits in a 4×4 block).
DIGITS_MAX = 16.0
#: Number of images and of classes in scikit-learn's digits.
DIGITS_SIZE = 1797
DIGITS_CLASSES = 10


def _check_fraction(name: str, value: object) -> float:
    if not is_real_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    return float(value)


def _round_up(x: float) -> float:
    """``x`` rounded up to 3 significant digits, so a quoted minimum is never below the true one."""
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    return math.ceil(x * scale) / scale


def _check_fractions(test_fraction: object, val_fraction: object) -> tuple[float, float]:
    """Check both fractions and that every split gets at least one image per class; return them.

    A stratified split needs as many images as classes; scikit-learn would say so only inside ``setup``
    and without naming our argument. The sizes are computed the way ``train_test_split`` does.
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    if test_fraction + val_fraction >= 1.0:
        raise ValueError(f"test_fraction + val_fraction must be < 1, got {test_fraction} + {val_fraction}")
    n, k = DIGITS_SIZE, DIGITS_CLASSES
    n_test = math.ceil(test_fraction * n)
    n_rest = n - n_test
    n_val = math.ceil(val_fraction / (1.0 - test_fraction) * n_rest)
    if n_test < k:
        raise ValueError(
            f"test_fraction={test_fraction} leaves {n_test} of the {n} images for testing, fewer than the {k} "
            f"classes (a stratified split needs one per class); test_fraction must be at least "
            f"{_round_up(k / n)}"
        )
    if n_val < k:
        raise ValueError(
            f"val_fraction={val_fraction} leaves {n_val} of the {n} images for validation, fewer than the {k} "
            f"classes (a stratified split needs one per class); val_fraction must be at least "
            f"{_round_up(k * (1.0 - test_fraction) / n_rest)} (with test_fraction={test_fraction})"
        )
    if n_rest - n_val < k:
        raise ValueError(
            f"test_fraction + val_fraction = {test_fraction} + {val_fraction} leaves {n_rest - n_val} of the {n} "
            f"images for training, fewer than the {k} classes (a stratified split needs one per class)"
        )
    return test_fraction, val_fraction


def load_digits_split(
    test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Split the digits into stratified train/val/test sets.

    Args:
        test_fraction: share of all images held out for testing.
        val_fraction: share of all images used for validation.
        seed: seed of the split, in ``[0, 2**32)``.

    Returns:
        ``{"train"|"val"|"test": (images, labels)}``; images ``(N, 1, 8, 8)`` float32 in [0, 1]
        (ink fraction), labels ``(N,)`` int64 in 0..9.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    test_fraction, val_fraction = _check_fractions(test_fraction, val_fraction)
    check_seed("seed", seed)
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / DIGITS_MAX)[:, None]
    y = bunch.target.astype(np.int64)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    # the modulo keeps seed 2**32 - 1 inside scikit-learn's range; every other seed splits as before
    val_seed = (seed + 1) % SEED_LIMIT
    train, val = train_test_split(
        rest, test_size=val_fraction / (1.0 - test_fraction), stratify=y[rest], random_state=val_seed
    )
    return {
        k: (torch.from_numpy(x[i]), torch.from_numpy(y[i]))
        for k, i in (("train", train), ("val", val), ("test", test))
    }


class DigitsDataModule(SplitDataModule):
    """Handwritten 8×8 digits from scikit-learn, split train/val/test (stratified, seeded).

    Batches are ``(images, labels)``: images ``(B, 1, 8, 8)`` float32 in [0, 1], labels ``(B,)`` int64.

    Args:
        batch_size: training batch size (evaluation uses the same).
        test_fraction: share held out for testing (never seen in training or model selection).
        val_fraction: share used for validation.
        seed: seed of the split and of the training shuffle, in ``[0, 2**32)``.
        num_workers: DataLoader workers (the data set is tiny; 0 is fastest).
    """

    num_classes = 10
    image_shape = (1, 8, 8)

    def __init__(
        self,
        batch_size: int = 64,
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int("batch_size", batch_size)
        _check_fractions(test_fraction, val_fraction)
        check_seed("seed", seed)
        check_num_workers(num_workers)
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        """Load and split the digits (cheap: they ship with scikit-learn)."""
        if not self.splits:
            h = self.hparams
            data = load_digits_split(h.test_fraction, h.val_fraction, h.seed)
            self.splits = {k: TensorDataset(*v) for k, v in data.items()}
