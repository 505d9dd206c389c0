"""A DataModule base for data held in memory as fixed train/val/test datasets."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

#: Seeds lie in ``[0, SEED_LIMIT)``, the range scikit-learn's ``random_state`` takes (torch takes more).
SEED_LIMIT = 2**32


def check_seed(name: str, value: object) -> int:
    """Check a seed: an int in ``[0, 2**32)``, the same range for every data module; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**32), got {value}")
    return value


def check_num_workers(value: object) -> int:
    """Check the DataLoader worker count ``num_workers`` (a non-negative int); return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"num_workers must be a non-negative int, got {value!r}")
    return value


class SplitDataModule(L.LightningDataModule):
    """Loaders over ``self.splits = {"train", "val", "test": Dataset}``, filled by the subclass's ``setup``.

    The subclass saves ``batch_size``, ``seed`` and ``num_workers`` as hyperparameters; training batches
    are shuffled by a generator seeded with ``seed``, so an epoch's order is reproducible. The generator
    is made once and kept: each epoch, and each new training loader (``reload_dataloaders_every_n_epochs``),
    continues its sequence instead of repeating the first epoch's order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.splits: dict[str, Dataset] = {}
        self._shuffle: torch.Generator | None = None

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            self.setup()
        if shuffle and self._shuffle is None:
            self._shuffle = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=self._shuffle if shuffle else None,
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        """Return validation batches, in order."""
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        """Held-out test batches, in order."""
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        """Test batches, in order (what ``trainer.predict`` and ``hybridzoo predict`` run on)."""
        return self._loader("test", False)
