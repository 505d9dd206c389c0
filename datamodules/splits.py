"""A DataModule base for data held in memory as fixed train/val/test datasets."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class SplitDataModule(L.LightningDataModule):
    """Loaders over ``self.splits = {"train", "val", "test": Dataset}``, filled by the subclass's ``setup``.

    The subclass saves ``batch_size``, ``seed`` and ``num_workers`` as hyperparameters; training batches
    are shuffled by a generator seeded with ``seed``, so an epoch's order is reproducible.
    """

    def __init__(self) -> None:
        super().__init__()
        self.splits: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            self.setup()
        gen = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=gen,
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
